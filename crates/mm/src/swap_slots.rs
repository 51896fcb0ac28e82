//! Swap slot allocation: which page of the swap area holds which swapped-out page. Slots are
//! handed out in clusters of 256 (as Linux's SWAPFILE_CLUSTER), so neighbouring pages go to
//! neighbouring slots and a batch becomes few large disk writes; finding a slot stays fast as the
//! area fills (clusters with room are kept in a two-level bitmap). The per-slot and per-cluster
//! tables are chunked (`swap_table`), so an area of any size whose tables fit in memory works.
//! Owns slot bookkeeping only; must never touch the disk, and never allocates after `new` (it
//! runs inside reclaim, when memory is short).
#![forbid(unsafe_code)]

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

use super::swap_table::SwapTable;

pub const CLUSTER: u64 = 256;
const FREE: u8 = 0;
const USED: u8 = 1;
const BAD: u8 = 0xff;

pub struct SwapSlots {
    /// Per slot: FREE, USED or BAD. Slot 0 is the header page, never used.
    state: SwapTable<u8>,
    /// Free slots per cluster.
    cluster_free: SwapTable<u32>,
    /// Clusters with at least one free slot.
    with_room: ClusterSet,
    /// The cluster being filled, and the next slot to try in it.
    current: Option<(u64, u64)>,
    free: u64,
    /// Slots that are not bad (free or in use).
    total: u64,
}

/// A set of cluster numbers as a bitmap with a summary word per 64 words: insert and remove
/// touch two words, the lowest member is found in a scan of the summary (1/4096 of the clusters).
struct ClusterSet {
    words: Vec<u64>,
    summary: Vec<u64>,
    len: u64,
}

impl ClusterSet {
    fn new(clusters: u64) -> Result<ClusterSet, TryReserveError> {
        let n = clusters.div_ceil(64) as usize;
        let mut words = Vec::new();
        words.try_reserve_exact(n)?;
        words.resize(n, 0);
        let mut summary = Vec::new();
        summary.try_reserve_exact(n.div_ceil(64))?;
        summary.resize(n.div_ceil(64), 0);
        Ok(ClusterSet {
            words,
            summary,
            len: 0,
        })
    }

    fn insert(&mut self, c: u64) {
        let (w, b) = ((c / 64) as usize, c % 64);
        if self.words[w] & (1 << b) == 0 {
            self.words[w] |= 1 << b;
            self.summary[w / 64] |= 1 << (w % 64);
            self.len += 1;
        }
    }

    fn remove(&mut self, c: u64) {
        let (w, b) = ((c / 64) as usize, c % 64);
        if self.words[w] & (1 << b) != 0 {
            self.words[w] &= !(1 << b);
            if self.words[w] == 0 {
                self.summary[w / 64] &= !(1 << (w % 64));
            }
            self.len -= 1;
        }
    }

    fn first(&self) -> Option<u64> {
        let (i, s) = self.summary.iter().enumerate().find(|(_, &s)| s != 0)?;
        let w = i * 64 + s.trailing_zeros() as usize;
        Some(w as u64 * 64 + self.words[w].trailing_zeros() as u64)
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl SwapSlots {
    /// Slots 1..=last_page, minus `bad` ones.
    /// An error, not an abort, when the tables do not fit in memory (a huge swap disk on a
    /// small machine). Work per cluster, not per slot: a 32 GiB area has 8 Mi slots.
    pub fn new(last_page: u64, bad: &[u64]) -> Result<SwapSlots, TryReserveError> {
        let n = last_page + 1;
        let mut state = SwapTable::new(n as usize, FREE)?;
        let clusters = n.div_ceil(CLUSTER);
        let mut cluster_free = SwapTable::new(clusters as usize, 0u32)?;
        for c in 0..clusters {
            cluster_free[c as usize] = (n - c * CLUSTER).min(CLUSTER) as u32;
        }
        let mut free = n;
        for &b in core::iter::once(&0).chain(bad) {
            if b < n && state[b as usize] == FREE {
                state[b as usize] = BAD;
                cluster_free[(b / CLUSTER) as usize] -= 1;
                free -= 1;
            }
        }
        let mut with_room = ClusterSet::new(clusters)?;
        for c in 0..clusters {
            if cluster_free[c as usize] > 0 {
                with_room.insert(c);
            }
        }
        Ok(SwapSlots {
            state,
            cluster_free,
            with_room,
            current: None,
            free,
            total: free,
        })
    }

    pub fn free_slots(&self) -> u64 {
        self.free
    }
    pub fn total_slots(&self) -> u64 {
        self.total
    }

    fn take(&mut self, slot: u64) {
        self.state[slot as usize] = USED;
        let c = slot / CLUSTER;
        self.cluster_free[c as usize] -= 1;
        if self.cluster_free[c as usize] == 0 {
            self.with_room.remove(c);
        }
        self.free -= 1;
    }

    /// One slot, next to the previous one where possible.
    pub fn alloc(&mut self) -> Option<u64> {
        loop {
            let (c, next) = match self.current {
                Some(cur) => cur,
                None => {
                    // The lowest cluster with room: the area fills from its start, in order.
                    let c = self.with_room.first()?;
                    (c, c * CLUSTER)
                }
            };
            let end = ((c + 1) * CLUSTER).min(self.state.len() as u64);
            let run = self.state.run(next as usize, end as usize);
            if let Some(k) = run.iter().position(|&s| s == FREE) {
                let slot = next + k as u64;
                self.take(slot);
                self.current = Some((c, slot + 1));
                return Some(slot);
            }
            self.current = None;
            if self.with_room.is_empty() {
                return None;
            }
        }
    }

    /// Fills `out` with slots, as contiguous as the area allows; returns how many it found.
    pub fn alloc_batch(&mut self, out: &mut [u64]) -> usize {
        for (i, o) in out.iter_mut().enumerate() {
            match self.alloc() {
                Some(slot) => *o = slot,
                None => return i,
            }
        }
        out.len()
    }

    /// Whether `slot` holds a page.
    pub fn in_use(&self, slot: u64) -> bool {
        self.state.get(slot as usize) == Some(USED)
    }

    /// Gives a slot back. A slot that is not in use is left alone (reported as `false`).
    pub fn free(&mut self, slot: u64) -> bool {
        if self.state.get(slot as usize) != Some(USED) {
            return false;
        }
        self.state[slot as usize] = FREE;
        let c = slot / CLUSTER;
        self.cluster_free[c as usize] += 1;
        self.with_room.insert(c);
        self.free += 1;
        true
    }

    /// Marks a slot bad after a write error: it is never handed out again.
    pub fn mark_bad(&mut self, slot: u64) {
        if self.state.get(slot as usize) == Some(USED) {
            self.state[slot as usize] = BAD;
            self.total -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_contiguous_and_the_area_fills_completely() {
        let mut s = SwapSlots::new(4096, &[300, 301]).unwrap();
        assert_eq!(s.total_slots(), 4096 - 2);
        let mut batch = [0u64; 16];
        assert_eq!(s.alloc_batch(&mut batch), 16);
        assert_eq!(batch.to_vec(), (1..=16).collect::<Vec<_>>());
        let mut seen = std::collections::BTreeSet::new();
        seen.extend(batch);
        while let Some(slot) = s.alloc() {
            assert!(slot != 0 && slot != 300 && slot != 301 && slot <= 4096);
            assert!(seen.insert(slot), "slot {slot} handed out twice");
        }
        assert_eq!(seen.len() as u64, s.total_slots());
        assert_eq!(s.free_slots(), 0);
        assert!(s.free(2000));
        assert!(!s.free(2000), "freeing a free slot is refused");
        assert!(!s.free(300), "bad slots are never in use");
        assert_eq!(s.alloc(), Some(2000));
        s.mark_bad(2000);
        assert!(!s.free(2000));
    }

    #[test]
    fn the_cluster_bitmap_agrees_with_a_set() {
        // Past one summary word (4096 clusters), with a xorshift stream of inserts and removes.
        let n = 3 * 4096 + 77;
        let mut set = ClusterSet::new(n).unwrap();
        let mut model = std::collections::BTreeSet::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly around one spot, sometimes anywhere, so words and summaries empty and refill.
            let c = if step % 8 == 0 {
                x % n
            } else {
                (x % 200 + 4000) % n
            };
            if x & (1 << 40) != 0 {
                set.insert(c);
                model.insert(c);
            } else {
                set.remove(c);
                model.remove(&c);
            }
            assert_eq!(set.first(), model.iter().next().copied(), "step {step}");
            assert_eq!(set.is_empty(), model.is_empty());
        }
    }

    #[test]
    fn an_area_of_32_gib_works_across_its_table_chunks() {
        use crate::swap_table::CHUNK;
        let last = (32u64 << 30) / 4096 - 1;
        let chunk = CHUNK as u64;
        let bad = [chunk - 1, chunk, 5 * chunk + 3, last, last + 10, chunk];
        let mut s = SwapSlots::new(last, &bad).unwrap();
        // Slot 0, and four distinct bad slots inside the area.
        assert_eq!(s.total_slots(), last - 4);
        assert_eq!(s.free_slots(), s.total_slots());
        assert!(!s.in_use(chunk) && !s.free(chunk));
        // Fill up to the first chunk boundary and past it: the bad slots are stepped over.
        let mut batch = alloc::vec![0u64; CHUNK + 64];
        assert_eq!(s.alloc_batch(&mut batch), batch.len());
        let want: Vec<u64> = (1..)
            .filter(|x| *x != chunk - 1 && *x != chunk)
            .take(batch.len())
            .collect();
        assert_eq!(batch, want);
        assert!(batch.iter().all(|&x| s.in_use(x)));
        // Freed slots are taken again once the current cluster is full (lowest cluster first).
        assert!(!s.in_use(5 * chunk + 200));
        for &x in &batch[100..300] {
            assert!(s.free(x));
        }
        let mut again = alloc::vec![0u64; 2 * CLUSTER as usize];
        assert_eq!(s.alloc_batch(&mut again), again.len());
        assert!(batch[100..300].iter().all(|x| again.contains(x)));
        assert!(!s.in_use(last) && !s.in_use(last + 1));
    }

    #[test]
    fn freed_clusters_are_reused_and_stay_contiguous() {
        let mut s = SwapSlots::new(10 * CLUSTER - 1, &[]).unwrap();
        let mut all = alloc::vec![0u64; 10 * CLUSTER as usize];
        assert_eq!(s.alloc_batch(&mut all) as u64, 10 * CLUSTER - 1);
        for slot in 3 * CLUSTER..4 * CLUSTER {
            s.free(slot);
        }
        let mut again = [0u64; 8];
        assert_eq!(s.alloc_batch(&mut again), 8);
        assert_eq!(
            again.to_vec(),
            (3 * CLUSTER..3 * CLUSTER + 8).collect::<Vec<_>>()
        );
    }
}
