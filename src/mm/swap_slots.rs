//! Swap slot allocation: which page of the swap area holds which swapped-out page. Slots are
//! handed out in clusters of 256 (as Linux's SWAPFILE_CLUSTER), so neighbouring pages go to
//! neighbouring slots and a batch becomes few large disk writes; finding a slot stays O(log n) as
//! the area fills (clusters with room are indexed). Owns slot bookkeeping only; must never touch
//! the disk.

use alloc::collections::{BTreeSet, TryReserveError};
use alloc::vec::Vec;

pub const CLUSTER: u64 = 256;
const FREE: u8 = 0;
const USED: u8 = 1;
const BAD: u8 = 0xff;

pub struct SwapSlots {
    /// Per slot: FREE, USED or BAD. Slot 0 is the header page, never used.
    state: Vec<u8>,
    /// Free slots per cluster.
    cluster_free: Vec<u32>,
    /// Clusters with at least one free slot.
    with_room: BTreeSet<u64>,
    /// The cluster being filled, and the next slot to try in it.
    current: Option<(u64, u64)>,
    free: u64,
    /// Slots that are not bad (free or in use).
    total: u64,
}

impl SwapSlots {
    /// Slots 1..=last_page, minus `bad` ones.
    /// An error, not an abort, when the tables do not fit in memory (a huge swap disk on a
    /// small machine).
    pub fn new(last_page: u64, bad: &[u64]) -> Result<SwapSlots, TryReserveError> {
        let n = last_page + 1;
        let mut state = Vec::new();
        state.try_reserve_exact(n as usize)?;
        state.resize(n as usize, FREE);
        state[0] = BAD;
        for &b in bad {
            if (b as usize) < state.len() {
                state[b as usize] = BAD;
            }
        }
        let clusters = n.div_ceil(CLUSTER);
        let mut cluster_free = Vec::new();
        cluster_free.try_reserve_exact(clusters as usize)?;
        cluster_free.resize(clusters as usize, 0u32);
        let mut free = 0;
        for (i, s) in state.iter().enumerate() {
            if *s == FREE {
                cluster_free[i / CLUSTER as usize] += 1;
                free += 1;
            }
        }
        let with_room = (0..clusters)
            .filter(|&c| cluster_free[c as usize] > 0)
            .collect();
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
            self.with_room.remove(&c);
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
                    let c = self.with_room.iter().next().copied()?;
                    (c, c * CLUSTER)
                }
            };
            let end = ((c + 1) * CLUSTER).min(self.state.len() as u64);
            if let Some(slot) = (next..end).find(|&s| self.state[s as usize] == FREE) {
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

    /// Up to `n` slots, as contiguous as the area allows.
    pub fn alloc_batch(&mut self, n: usize) -> Vec<u64> {
        (0..n).map_while(|_| self.alloc()).collect()
    }

    /// Whether `slot` holds a page.
    pub fn in_use(&self, slot: u64) -> bool {
        self.state.get(slot as usize) == Some(&USED)
    }

    /// Gives a slot back. A slot that is not in use is left alone (reported as `false`).
    pub fn free(&mut self, slot: u64) -> bool {
        if self.state.get(slot as usize) != Some(&USED) {
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
        if self.state.get(slot as usize) == Some(&USED) {
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
        let batch = s.alloc_batch(16);
        assert_eq!(batch, (1..=16).collect::<Vec<_>>());
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
    fn freed_clusters_are_reused_and_stay_contiguous() {
        let mut s = SwapSlots::new(10 * CLUSTER - 1, &[]).unwrap();
        let all = s.alloc_batch(10 * CLUSTER as usize);
        assert_eq!(all.len() as u64, 10 * CLUSTER - 1);
        for slot in 3 * CLUSTER..4 * CLUSTER {
            s.free(slot);
        }
        let again = s.alloc_batch(8);
        assert_eq!(again, (3 * CLUSTER..3 * CLUSTER + 8).collect::<Vec<_>>());
    }
}
