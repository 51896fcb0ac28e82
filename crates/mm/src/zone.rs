//! Zones: DMA, DMA32 and NORMAL, their limits (derived as Linux arm64 derives them), and the
//! buddy allocator each zone runs over its free pages, with a per-CPU-style cache of order-0 pages
//! in front. Owns free lists and counts; must not choose between zones (that is `page_alloc`).
//! The list operations trust the frames they are given (they are `pub(crate)` for that reason):
//! only the page allocator, which checks every frame first, calls them.
// A named exception to the crate's `deny(unsafe_code)`: the order-0 fast path reads page metadata without a bounds check.
#![allow(unsafe_code)]

use super::page::{MemMap, Page, NIL, ORDER_MASK, PG_BUDDY, PG_PCP};

/// Orders 0..=MAX_ORDER: blocks of 4 KiB to 4 MiB.
pub const MAX_ORDER: u8 = 10;
pub const NR_ORDERS: usize = MAX_ORDER as usize + 1;
/// Order-0 pages kept on a zone's per-CPU list before a batch goes back to the buddy lists.
pub const PCP_HIGH: usize = 128;
pub const PCP_BATCH: usize = 64;
const PCP_BATCH_ORDER: u8 = PCP_BATCH.trailing_zeros() as u8;
const _: () = assert!(1 << PCP_BATCH_ORDER == PCP_BATCH);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ZoneId {
    Dma = 0,
    Dma32 = 1,
    Normal = 2,
}

pub const ZONES: [ZoneId; 3] = [ZoneId::Dma, ZoneId::Dma32, ZoneId::Normal];

impl ZoneId {
    pub fn name(self) -> &'static str {
        match self {
            ZoneId::Dma => "DMA",
            ZoneId::Dma32 => "DMA32",
            ZoneId::Normal => "Normal",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn all() -> [ZoneId; 3] {
        ZONES
    }
}

/// Where the zones end, as physical addresses (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneLimits {
    pub dma_end: u64,
    pub dma32_end: u64,
}

/// A zone limit for RAM that spans `[dram_start, dram_end)`: `limit` itself when RAM starts below
/// it, else widened to the `limit`-sized window RAM starts in (RAM starting at 32 GiB gets a
/// 32-bit zone at 32-36 GiB, as Linux's `max_zone_phys` does for such machines); never past RAM.
pub fn zone_limit(limit: u64, dram_start: u64, dram_end: u64) -> u64 {
    let limit = if dram_start < limit {
        limit
    } else {
        let bits = 64 - (limit.max(2) - 1).leading_zeros();
        let window = 1u128 << bits;
        let offset = dram_start as u128 & !(window - 1);
        (offset + window).min(u64::MAX as u128) as u64
    };
    limit.min(dram_end).max(dram_start)
}

/// Linux arm64's zones: DMA below the most restrictive `dma-ranges` limit (or `zone_dma_bits`),
/// capped at 32 bits; DMA32 below 4 GiB; NORMAL above.
pub fn zone_limits(
    dma_limit: Option<u64>,
    zone_dma_bits: Option<u32>,
    dram_start: u64,
    dram_end: u64,
) -> ZoneLimits {
    const FOUR_GIB: u64 = 1 << 32;
    let dma = match zone_dma_bits {
        Some(bits) => 1u64.checked_shl(bits.clamp(24, 63)).unwrap_or(u64::MAX),
        None => dma_limit.unwrap_or(FOUR_GIB),
    }
    .min(FOUR_GIB);
    let dma32_end = zone_limit(FOUR_GIB, dram_start, dram_end);
    let dma_end = zone_limit(dma, dram_start, dram_end).min(dma32_end);
    ZoneLimits { dma_end, dma32_end }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FreeArea {
    pub head: u64,
    pub count: u64,
}

/// Counters, as /proc/vmstat reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneStats {
    pub alloc_success: u64,
    pub alloc_fail: u64,
    pub frees: u64,
    pub splits: u64,
    pub merges: u64,
}

pub struct Zone {
    pub id: ZoneId,
    /// Frames `[start_pfn, end_pfn)` (the span; holes included).
    pub start_pfn: u64,
    pub end_pfn: u64,
    /// RAM pages in the span.
    pub present: u64,
    /// Pages given to the allocator (present minus reserved).
    pub managed: u64,
    /// Free pages, the per-CPU list included.
    pub free: u64,
    pub free_area: [FreeArea; NR_ORDERS],
    pcp: [u64; PCP_HIGH],
    pcp_count: usize,
    /// min, low, high, in pages.
    pub watermark: [u64; 3],
    /// Pages kept back from allocations that prefer a higher zone, per preferred zone.
    pub lowmem_reserve: [u64; 3],
    pub stats: ZoneStats,
}

impl Zone {
    pub fn new(id: ZoneId, start_pfn: u64, end_pfn: u64) -> Zone {
        Zone {
            id,
            start_pfn,
            end_pfn,
            present: 0,
            managed: 0,
            free: 0,
            free_area: [FreeArea {
                head: NIL,
                count: 0,
            }; NR_ORDERS],
            pcp: [0; PCP_HIGH],
            pcp_count: 0,
            watermark: [0; 3],
            lowmem_reserve: [0; 3],
            stats: ZoneStats::default(),
        }
    }

    #[inline]
    pub fn spans(&self, pfn: u64) -> bool {
        pfn >= self.start_pfn && pfn < self.end_pfn
    }

    pub fn pcp_count(&self) -> usize {
        self.pcp_count
    }

    // The page accessors below take the map explicitly: the zone does not own it.

    #[inline]
    fn page(map: &mut MemMap, pfn: u64) -> &mut Page {
        // SAFETY: callers pass frames of this zone, whose sections are populated.
        unsafe { map.get_mut(pfn).unwrap_unchecked() }
    }

    fn push(&mut self, map: &mut MemMap, pfn: u64, order: u8) {
        let area = &mut self.free_area[order as usize];
        let head = area.head;
        {
            let p = Self::page(map, pfn);
            p.flags = (p.flags & !(PG_PCP)) | PG_BUDDY;
            p.set_order(order);
            p.prev = NIL;
            p.next = head;
        }
        if head != NIL {
            Self::page(map, head).prev = pfn;
        }
        area.head = pfn;
        area.count += 1;
    }

    fn unlink(&mut self, map: &mut MemMap, pfn: u64, order: u8) {
        let (prev, next) = {
            let p = Self::page(map, pfn);
            p.flags &= !PG_BUDDY;
            (p.prev, p.next)
        };
        if prev != NIL {
            Self::page(map, prev).next = next;
        } else {
            self.free_area[order as usize].head = next;
        }
        if next != NIL {
            Self::page(map, next).prev = prev;
        }
        self.free_area[order as usize].count -= 1;
    }

    /// Takes a block of `order` from the buddy lists, splitting a larger one if needed.
    /// `init_block` is called on a max-order block before it is first split or handed out
    /// (lazy metadata initialisation).
    pub(crate) fn buddy_alloc(
        &mut self,
        map: &mut MemMap,
        order: u8,
        init_block: &mut dyn FnMut(&mut MemMap, u64),
    ) -> Option<u64> {
        // No limit: the head of the first non-empty list at or above `order`.
        self.buddy_alloc_below(map, order, u64::MAX, init_block)
    }

    /// Like `buddy_alloc`, but only a block whose first 2^order pages end at or below `limit_pfn`
    /// (for devices that cannot reach higher). Scans the free lists: for rare DMA allocations.
    pub(crate) fn buddy_alloc_below(
        &mut self,
        map: &mut MemMap,
        order: u8,
        limit_pfn: u64,
        init_block: &mut dyn FnMut(&mut MemMap, u64),
    ) -> Option<u64> {
        for o in order..=MAX_ORDER {
            let mut pfn = self.free_area[o as usize].head;
            while pfn != NIL && pfn + (1 << order) > limit_pfn {
                pfn = Self::page(map, pfn).next;
            }
            if pfn == NIL {
                continue;
            }
            self.unlink(map, pfn, o);
            if o == MAX_ORDER {
                init_block(map, pfn);
            }
            let mut k = o;
            while k > order {
                k -= 1;
                self.push(map, pfn + (1 << k), k);
                self.stats.splits += 1;
            }
            return Some(pfn);
        }
        None
    }

    /// Returns a block to the buddy lists, merging it with free buddies.
    pub(crate) fn buddy_free(&mut self, map: &mut MemMap, mut pfn: u64, mut order: u8) {
        while order < MAX_ORDER {
            let buddy = pfn ^ (1 << order);
            if !self.spans(buddy) {
                break;
            }
            let Some(b) = map.get_mut(buddy) else { break };
            if !b.has(PG_BUDDY) || b.order() != order {
                break;
            }
            self.unlink(map, buddy, order);
            self.stats.merges += 1;
            pfn = pfn.min(buddy);
            order += 1;
        }
        self.push(map, pfn, order);
    }

    /// Puts a block on the free lists without merging (boot: max-order blocks of free RAM).
    pub(crate) fn add_free_block(&mut self, map: &mut MemMap, pfn: u64, order: u8) {
        self.push(map, pfn, order);
    }

    /// An order-0 page from the per-CPU list, refilled in a batch from the buddy lists.
    #[inline]
    pub(crate) fn pcp_alloc(
        &mut self,
        map: &mut MemMap,
        init_block: &mut dyn FnMut(&mut MemMap, u64),
    ) -> Option<u64> {
        if self.pcp_count == 0 {
            // One block of a whole batch when there is one: a single buddy operation instead
            // of one per page (Linux's rmqueue_bulk takes them one at a time).
            if let Some(pfn) = self.buddy_alloc(map, PCP_BATCH_ORDER, init_block) {
                // Highest frame first on the stack, so pages leave it in ascending order.
                for i in (0..PCP_BATCH as u64).rev() {
                    let p = Self::page(map, pfn + i);
                    p.flags = (p.flags & !(PG_BUDDY | ORDER_MASK)) | PG_PCP;
                    self.pcp[self.pcp_count] = pfn + i;
                    self.pcp_count += 1;
                }
            }
            for _ in self.pcp_count..PCP_BATCH {
                let Some(pfn) = self.buddy_alloc(map, 0, init_block) else {
                    break;
                };
                Self::page(map, pfn).flags |= PG_PCP;
                self.pcp[self.pcp_count] = pfn;
                self.pcp_count += 1;
            }
        }
        if self.pcp_count == 0 {
            return None;
        }
        self.pcp_count -= 1;
        let pfn = self.pcp[self.pcp_count];
        Self::page(map, pfn).flags &= !PG_PCP;
        Some(pfn)
    }

    /// Returns an order-0 page to the per-CPU list, draining a batch when it is full.
    #[inline]
    pub(crate) fn pcp_free(&mut self, map: &mut MemMap, pfn: u64) {
        if self.pcp_count == PCP_HIGH {
            self.pcp_drain(map, PCP_BATCH);
        }
        Self::page(map, pfn).flags |= PG_PCP;
        self.pcp[self.pcp_count] = pfn;
        self.pcp_count += 1;
    }

    /// The fast path of an order-0 allocation: the top of a non-empty per-CPU list, if the zone
    /// stays above `floor` free pages. The caller updates the page's flags (it clears PG_PCP).
    #[inline(always)]
    pub(crate) fn pcp_pop_raw(&mut self, floor: u64) -> Option<u64> {
        if self.pcp_count == 0 || self.free <= floor {
            return None;
        }
        self.pcp_count -= 1;
        self.free -= 1;
        // SAFETY: pcp_count was in 1..=PCP_HIGH, so the index is in bounds.
        Some(unsafe { *self.pcp.get_unchecked(self.pcp_count) })
    }

    /// The fast path of an order-0 free: onto the per-CPU list if it has room. The caller has set
    /// PG_PCP on the page.
    #[inline(always)]
    pub(crate) fn pcp_push_raw(&mut self, pfn: u64) -> bool {
        if self.pcp_count == PCP_HIGH {
            return false;
        }
        self.pcp[self.pcp_count] = pfn;
        self.pcp_count += 1;
        self.free += 1;
        true
    }

    /// Gives up to `n` per-CPU pages back to the buddy lists (oldest first).
    pub(crate) fn pcp_drain(&mut self, map: &mut MemMap, n: usize) {
        let n = n.min(self.pcp_count);
        for i in 0..n {
            let pfn = self.pcp[i];
            Self::page(map, pfn).flags &= !PG_PCP;
            self.buddy_free(map, pfn, 0);
        }
        self.pcp.copy_within(n..self.pcp_count, 0);
        self.pcp_count -= n;
    }

    /// Free blocks per order (the numbers /proc/buddyinfo prints), the per-CPU list not counted.
    pub fn buddyinfo(&self) -> [u64; NR_ORDERS] {
        let mut out = [0; NR_ORDERS];
        for (o, area) in self.free_area.iter().enumerate() {
            out[o] = area.count;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    #[test]
    fn qemu_virt_has_everything_below_4g_in_dma() {
        let l = zone_limits(None, None, G, 9 * G);
        assert_eq!(
            l,
            ZoneLimits {
                dma_end: 4 * G,
                dma32_end: 4 * G
            }
        );
        let small = zone_limits(None, None, G, G + (512 << 20));
        assert_eq!(
            small,
            ZoneLimits {
                dma_end: G + (512 << 20),
                dma32_end: G + (512 << 20)
            }
        );
    }

    #[test]
    fn raspberry_pi_4_dma_is_the_first_gib() {
        let l = zone_limits(Some(G), None, 0, 8 * G);
        assert_eq!(
            l,
            ZoneLimits {
                dma_end: G,
                dma32_end: 4 * G
            }
        );
    }

    #[test]
    fn zone_dma_bits_overrides_the_tree() {
        let l = zone_limits(None, Some(30), G, 9 * G);
        // RAM starts at 1 GiB, above a 30-bit limit: the window widens to [1 GiB, 2 GiB).
        assert_eq!(
            l,
            ZoneLimits {
                dma_end: 2 * G,
                dma32_end: 4 * G
            }
        );
        let pi = zone_limits(None, Some(30), 0, 8 * G);
        assert_eq!(pi.dma_end, G);
    }

    #[test]
    fn limits_widen_when_ram_starts_above_them() {
        let l = zone_limits(None, None, 32 * G, 40 * G);
        assert_eq!(
            l,
            ZoneLimits {
                dma_end: 36 * G,
                dma32_end: 36 * G
            }
        );
        let l = zone_limits(Some(G), None, 32 * G, 40 * G);
        assert_eq!(
            l,
            ZoneLimits {
                dma_end: 33 * G,
                dma32_end: 36 * G
            }
        );
    }
}
