//! A per-slot table of a swap area (slot states, checksums, per-cluster counts) in chunks of
//! `CHUNK` entries, each its own allocation, behind one directory: a 32 GiB area needs 72 MiB of
//! tables, far more than one contiguous allocation can give (the buddy allocator's largest block
//! is 4 MiB), while 64 KiB chunks of checksums come from anywhere. An index is a shift and a mask
//! (the chunk's length is in its type, so only the directory is bounds-checked besides the
//! table's length). Owns the storage only; allocates everything in `new`, fallibly, and never
//! afterwards (swap-out runs inside reclaim, when memory is short).
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::ops::{Index, IndexMut};

/// Entries per chunk: 8192 (64 KiB of `u64` checksums, 8 KiB of `u8` states).
const SHIFT: u32 = 13;
pub const CHUNK: usize = 1 << SHIFT;
const MASK: usize = CHUNK - 1;

pub struct SwapTable<T> {
    chunks: Vec<Box<[T; CHUNK]>>,
    len: usize,
}

impl<T: Copy> SwapTable<T> {
    /// `len` entries holding `value`; an error (not an abort) when memory does not allow it.
    pub fn new(len: usize, value: T) -> Result<SwapTable<T>, TryReserveError> {
        let mut chunks = Vec::new();
        chunks.try_reserve_exact(len.div_ceil(CHUNK))?;
        for _ in 0..len.div_ceil(CHUNK) {
            let mut v = Vec::new();
            v.try_reserve_exact(CHUNK)?;
            v.resize(CHUNK, value);
            // The length is CHUNK by construction, so the conversion cannot fail.
            if let Ok(chunk) = Box::<[T; CHUNK]>::try_from(v.into_boxed_slice()) {
                chunks.push(chunk);
            }
        }
        debug_assert_eq!(chunks.len(), len.div_ceil(CHUNK));
        Ok(SwapTable { chunks, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry at `i`, `None` past the end.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| self[i])
    }

    /// The entries `start..end` when they lie in one chunk (a cluster of slots always does:
    /// `CHUNK` is a multiple of the cluster size), so a scan indexes the directory once.
    #[inline]
    pub fn run(&self, start: usize, end: usize) -> &[T] {
        assert!(
            start <= end && end <= self.len,
            "run {start}..{end} of {}",
            self.len
        );
        if start == end {
            return &[];
        }
        let from = start & MASK;
        assert!(end - start <= CHUNK - from, "a run crosses a chunk");
        &self.chunks[start >> SHIFT][from..from + (end - start)]
    }

    /// Bytes the table takes for `len` entries (what a refusal reports).
    pub fn bytes_for(len: usize) -> usize {
        len.div_ceil(CHUNK) * (CHUNK * core::mem::size_of::<T>() + core::mem::size_of::<usize>())
    }
}

impl<T> Index<usize> for SwapTable<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        assert!(i < self.len, "slot table index {i} past {}", self.len);
        &self.chunks[i >> SHIFT][i & MASK]
    }
}

impl<T> IndexMut<usize> for SwapTable<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        assert!(i < self.len, "slot table index {i} past {}", self.len);
        &mut self.chunks[i >> SHIFT][i & MASK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    #[test]
    fn agrees_with_a_vec_across_chunk_boundaries() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 77] {
            let mut t = SwapTable::new(len, 7u64).unwrap();
            let mut model = alloc::vec![7u64; len];
            assert_eq!((t.len(), t.is_empty()), (len, len == 0));
            let mut rng = Rng::new(len as u64);
            for _ in 0..4 * len.min(20_000) {
                let i = rng.below(len as u64) as usize;
                let v = rng.next();
                t[i] = v;
                model[i] = v;
            }
            for (i, &v) in model.iter().enumerate() {
                assert_eq!(t[i], v, "len {len} index {i}");
                assert_eq!(t.get(i), Some(v));
            }
            assert_eq!(t.get(len), None);
            // Runs inside one chunk read what single entries read; an empty run anywhere is
            // empty (the end of a full last chunk included).
            for start in (0..len).step_by(256) {
                let end = (start + 256).min(len);
                assert_eq!(t.run(start, end), &model[start..end]);
            }
            assert!(t.run(len, len).is_empty());
        }
    }

    #[test]
    #[should_panic(expected = "past")]
    fn an_index_past_the_end_panics_like_a_vec() {
        let t = SwapTable::new(CHUNK + 1, 0u8).unwrap();
        let _ = t[CHUNK + 1];
    }

    #[test]
    #[should_panic(expected = "crosses a chunk")]
    fn a_run_never_crosses_a_chunk() {
        let t = SwapTable::new(2 * CHUNK, 0u8).unwrap();
        let _ = t.run(CHUNK - 1, CHUNK + 1);
    }

    #[test]
    fn tables_for_32_gib_of_swap_are_many_small_allocations() {
        // 8 Mi slots: 64 MiB of checksums in 1024 chunks of 64 KiB, none of them large.
        let slots = (32usize << 30) / 4096;
        assert_eq!(slots.div_ceil(CHUNK), 1024);
        assert_eq!(CHUNK * 8, 64 << 10);
        assert!(SwapTable::<u64>::bytes_for(slots) < (65 << 20));
        // Refused, not aborted, when memory cannot hold them.
        assert!(SwapTable::new(usize::MAX / 2, 0u64).is_err());
    }
}
