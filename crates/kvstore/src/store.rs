//! The store: a hash index from `u64` keys to versioned values, each value its own heap
//! allocation. Owns the index and the values; must never panic or abort on allocation failure
//! where Rust lets it choose (every allocation goes through `try_reserve_exact` and comes back
//! as [`KvError::OutOfMemory`], leaving the store as it was), and never interpret the bytes it
//! holds (the value format belongs to the caller; see [`crate::value`]).
//!
//! # Why open addressing
//!
//! The index is one array of slots probed linearly (open addressing), not buckets of chained
//! nodes. The table this store is for is bigger than RAM and partly in swap, so what matters is
//! how many distinct pages a lookup touches: here the probe walks adjacent slots of one
//! contiguous array (usually one cache line, one page) and then touches exactly one value
//! allocation. A chained table would allocate a node per record (more allocator overhead, and
//! nodes scattered over the heap next to cold values), and a lookup could fault once per node of
//! the chain. The slot array stays small and dense (32 bytes a slot, 16 of them the value's
//! pointer and length), so it stays hot in RAM while the values page in and out.
//!
//! Linear probing's weak points are avoided rather than handled: there is no delete (the
//! workloads never remove a record), so no tombstones, and the load factor is kept at or below
//! 3/4 with a strong hash ([`mix64`]) of the key, which keeps probe sequences short even for
//! sequential keys. The slot count need not be a power of two (the hash is reduced by a multiply,
//! not a mask), so an index sized in advance by [`Store::with_capacity`] / [`Store::try_reserve`]
//! is exactly 4/3 slots a record, about 43 bytes, rather than up to twice that. Growing on demand
//! doubles the slot array; for the duration of a resize both arrays are live, which sizing the
//! index once avoids.
//!
//! # Versions
//!
//! Each record carries a version beside its value in the index: 0 when inserted, one more on each
//! update. The store assigns it and hands it to the `_with` forms' fill closure, so a caller that
//! writes the version into the value (as [`crate::value`] does) can check on every read that the
//! bytes it got belong to exactly the version the index says is current.

use crate::rng::mix64;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;

/// Why a store operation did not happen; the store is unchanged by a failed operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvError {
    /// The allocator refused (or the size could not even be expressed): `bytes` were asked for.
    OutOfMemory {
        /// The size of the refused allocation.
        bytes: usize,
    },
    /// [`Store::insert`] of a key already present.
    KeyExists {
        /// The key.
        key: u64,
    },
    /// [`Store::update`] of a key not present.
    NotFound {
        /// The key.
        key: u64,
    },
    /// A workload asked for something it cannot do (the message says what).
    Invalid(&'static str),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory { bytes } => write!(f, "out of memory allocating {bytes} bytes"),
            Self::KeyExists { key } => write!(f, "key {key:#x} already present"),
            Self::NotFound { key } => write!(f, "key {key:#x} not present"),
            Self::Invalid(why) => write!(f, "invalid request: {why}"),
        }
    }
}

impl core::error::Error for KvError {}

/// One record: the index's part (key, version) and its value's allocation.
#[derive(Debug)]
struct Slot {
    key: u64,
    version: u64,
    value: Box<[u8]>,
}

/// The index never fills beyond `MAX_LOAD_NUM / MAX_LOAD_DEN` of its slots.
const MAX_LOAD_NUM: usize = 3;
const MAX_LOAD_DEN: usize = 4;

/// The first slot array a store allocates.
const MIN_CAPACITY: usize = 16;

/// A record as read: its current version and its value's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The version the index holds for the key.
    pub version: u64,
    /// The value.
    pub value: &'a [u8],
}

/// What [`Store::read_into`] found: the version and the value's full length (which may exceed
/// what the buffer took).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadInfo {
    /// The record's current version.
    pub version: u64,
    /// The value's length in bytes.
    pub len: usize,
}

/// The store's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records held.
    pub records: u64,
    /// Bytes of values held (the sum of their lengths; the allocator's own overhead is not
    /// counted).
    pub value_bytes: u64,
    /// Bytes of the index's slot array.
    pub index_bytes: u64,
    /// Slots in the index.
    pub index_slots: u64,
}

/// A hash table from `u64` keys to versioned byte values; see the [module](self) for its design.
///
/// ```
/// use kvstore::Store;
/// let mut store = Store::new();
/// assert_eq!(store.insert(42, b"hello").unwrap(), 0);
/// assert_eq!(store.update(42, b"world!").unwrap(), 1);
/// let record = store.get(42).unwrap();
/// assert_eq!((record.version, record.value), (1, &b"world!"[..]));
///
/// let mut buf = [0u8; 16];
/// let info = store.read_into(42, &mut buf).unwrap();
/// assert_eq!(&buf[..info.len], b"world!");
///
/// let stats = store.stats();
/// assert_eq!((stats.records, stats.value_bytes), (1, 6));
/// ```
#[derive(Debug, Default)]
pub struct Store {
    /// The slots (none before the first insert); never more than 3/4 full.
    slots: Vec<Option<Slot>>,
    records: usize,
    value_bytes: u64,
}

/// The smallest slot count that holds `records` within the load factor.
fn capacity_for(records: usize) -> Option<usize> {
    let needed = records.checked_mul(MAX_LOAD_DEN)?.div_ceil(MAX_LOAD_NUM);
    Some(needed.max(MIN_CAPACITY))
}

/// The bytes of `slots` slots, saturating (an error report only needs it to be huge).
fn slot_bytes(slots: usize) -> usize {
    slots.saturating_mul(size_of::<Option<Slot>>())
}

/// A value allocation of `len` bytes, zeroed, or the allocator's refusal.
fn alloc_value(len: usize) -> Result<Box<[u8]>, KvError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| KvError::OutOfMemory { bytes: len })?;
    // Exactly `len` was reserved, so turning it into a box does not reallocate.
    v.resize(len, 0);
    Ok(v.into_boxed_slice())
}

impl Store {
    /// An empty store; it allocates nothing until the first insert.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            slots: Vec::new(),
            records: 0,
            value_bytes: 0,
        }
    }

    /// An empty store whose index already holds `records` records without growing.
    pub fn with_capacity(records: usize) -> Result<Self, KvError> {
        let mut store = Self::new();
        store.try_reserve(records)?;
        Ok(store)
    }

    /// Sizes the index for `additional` more records, so inserting them never resizes.
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), KvError> {
        let wanted = self.records.checked_add(additional);
        let capacity = wanted
            .and_then(capacity_for)
            .ok_or(KvError::OutOfMemory { bytes: usize::MAX })?;
        if capacity > self.slots.len() {
            self.resize(capacity)?;
        }
        Ok(())
    }

    /// The number of records.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.records
    }

    /// Whether the store holds no record.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Sizes, for reports.
    #[must_use]
    pub fn stats(&self) -> Stats {
        Stats {
            records: self.records as u64,
            value_bytes: self.value_bytes,
            index_bytes: slot_bytes(self.slots.len()) as u64,
            index_slots: self.slots.len() as u64,
        }
    }

    /// Inserts `key` with a copy of `value` at version 0, which it returns.
    pub fn insert(&mut self, key: u64, value: &[u8]) -> Result<u64, KvError> {
        self.insert_with(key, value.len(), |_, buf| buf.copy_from_slice(value))
    }

    /// Inserts `key` with a value of `len` bytes written by `fill(version, bytes)` in place (no
    /// intermediate copy); returns the version, 0.
    pub fn insert_with(
        &mut self,
        key: u64,
        len: usize,
        fill: impl FnOnce(u64, &mut [u8]),
    ) -> Result<u64, KvError> {
        if self.find(key).is_some() {
            return Err(KvError::KeyExists { key });
        }
        let mut value = alloc_value(len)?;
        let version = 0;
        fill(version, &mut value);
        self.grow_for_one()?;
        let slot = self.vacancy(key);
        self.slots[slot] = Some(Slot {
            key,
            version,
            value,
        });
        self.records += 1;
        self.value_bytes += len as u64;
        Ok(version)
    }

    /// The record of `key`, if present.
    #[must_use]
    pub fn get(&self, key: u64) -> Option<Record<'_>> {
        let slot = self.slots[self.find(key)?].as_ref()?;
        Some(Record {
            version: slot.version,
            value: &slot.value,
        })
    }

    /// The current version of `key`, if present.
    #[must_use]
    pub fn version(&self, key: u64) -> Option<u64> {
        self.get(key).map(|r| r.version)
    }

    /// Copies the value of `key` into `buf` (as much as fits) and says its version and full
    /// length; `None` if the key is absent. A caller that needs the whole value checks
    /// `len <= buf.len()`.
    pub fn read_into(&self, key: u64, buf: &mut [u8]) -> Option<ReadInfo> {
        let record = self.get(key)?;
        let n = record.value.len().min(buf.len());
        buf[..n].copy_from_slice(&record.value[..n]);
        Some(ReadInfo {
            version: record.version,
            len: record.value.len(),
        })
    }

    /// Replaces the value of `key` with a copy of `value` and returns its new version (one more
    /// than before).
    pub fn update(&mut self, key: u64, value: &[u8]) -> Result<u64, KvError> {
        self.update_with(key, value.len(), |_, buf| buf.copy_from_slice(value))
    }

    /// Replaces the value of `key` with `len` bytes written by `fill(new_version, bytes)` and
    /// returns the new version. A value of the same length is overwritten in place (no
    /// allocation, as a store updating a record in its page would); another length gets a new
    /// allocation first, so a refusal leaves the old value and version.
    pub fn update_with(
        &mut self,
        key: u64,
        len: usize,
        fill: impl FnOnce(u64, &mut [u8]),
    ) -> Result<u64, KvError> {
        let index = self.find(key).ok_or(KvError::NotFound { key })?;
        let Some(slot) = self.slots[index].as_mut() else {
            return Err(KvError::NotFound { key });
        };
        let version = slot.version.wrapping_add(1);
        if slot.value.len() == len {
            fill(version, &mut slot.value);
        } else {
            let mut value = alloc_value(len)?;
            fill(version, &mut value);
            self.value_bytes = self.value_bytes - slot.value.len() as u64 + len as u64;
            slot.value = value;
        }
        slot.version = version;
        Ok(version)
    }

    /// Makes room for one more record, doubling the index when it would pass the load factor
    /// (so inserting n records one by one moves each O(1) times on average).
    fn grow_for_one(&mut self) -> Result<(), KvError> {
        let oom = KvError::OutOfMemory { bytes: usize::MAX };
        let needed = self
            .records
            .checked_add(1)
            .and_then(capacity_for)
            .ok_or(oom)?;
        if needed > self.slots.len() {
            let doubled = self.slots.len().checked_mul(2).ok_or(oom)?;
            self.resize(needed.max(doubled))?;
        }
        Ok(())
    }

    /// Where the probe for `key` starts: the hash scaled onto `[0, slots)` by a multiply
    /// (Lemire's reduction), which needs no power-of-two slot count. The index is not empty.
    fn home(&self, key: u64) -> usize {
        ((u128::from(mix64(key)) * self.slots.len() as u128) >> 64) as usize
    }

    /// The slot after `i`, wrapping at the end of the array.
    fn next_slot(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// The slot holding `key`, if any.
    fn find(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(key);
        // The load factor keeps a vacant slot, so the probe ends.
        loop {
            match &self.slots[i] {
                None => return None,
                Some(slot) if slot.key == key => return Some(i),
                Some(_) => i = self.next_slot(i),
            }
        }
    }

    /// The vacant slot where `key` (known absent) goes; the index has one.
    fn vacancy(&self, key: u64) -> usize {
        let mut i = self.home(key);
        while self.slots[i].is_some() {
            i = self.next_slot(i);
        }
        i
    }

    /// Moves every record into a new slot array of `capacity` slots; on refusal
    /// the old array stays.
    fn resize(&mut self, capacity: usize) -> Result<(), KvError> {
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(capacity)
            .map_err(|_| KvError::OutOfMemory {
                bytes: slot_bytes(capacity),
            })?;
        slots.resize_with(capacity, || None);
        let old = core::mem::replace(&mut self.slots, slots);
        for slot in old.into_iter().flatten() {
            let i = self.vacancy(slot.key);
            self.slots[i] = Some(slot);
        }
        Ok(())
    }

    /// The value of `key` for tests to corrupt behind the version's back.
    #[cfg(test)]
    pub(crate) fn value_mut_for_test(&mut self, key: u64) -> Option<&mut [u8]> {
        let i = self.find(key)?;
        self.slots[i].as_mut().map(|s| &mut *s.value)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::rng::Rng;
    use std::collections::hash_map::Entry;
    use std::collections::HashMap;
    use std::vec;

    #[test]
    fn slots_stay_32_bytes() {
        // The niche of the box makes Option free; the module doc's arithmetic relies on it.
        assert_eq!(size_of::<Option<Slot>>(), 32);
    }

    #[test]
    fn matches_a_hashmap_model_under_random_operations() {
        let mut rng = Rng::new(2024);
        let mut store = Store::new();
        let mut model: HashMap<u64, (u64, Vec<u8>)> = HashMap::new();
        let mut buf = [0u8; 24];
        for step in 0..60_000 {
            // A small keyspace so inserts collide with existing keys and updates hit.
            let key = rng.below(3000) * 0x1_0000_0001;
            let len = rng.below(40) as usize;
            let value: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            match rng.below(4) {
                0 => {
                    let got = store.insert(key, &value);
                    match model.entry(key) {
                        Entry::Occupied(_) => {
                            assert_eq!(got, Err(KvError::KeyExists { key }), "step {step}")
                        }
                        Entry::Vacant(slot) => {
                            assert_eq!(got, Ok(0));
                            slot.insert((0, value));
                        }
                    }
                }
                1 => {
                    let got = store.update(key, &value);
                    match model.get_mut(&key) {
                        None => assert_eq!(got, Err(KvError::NotFound { key })),
                        Some(entry) => {
                            entry.0 += 1;
                            entry.1 = value;
                            assert_eq!(got, Ok(entry.0));
                        }
                    }
                }
                2 => {
                    let got = store.get(key);
                    let want = model.get(&key).map(|(v, bytes)| Record {
                        version: *v,
                        value: bytes,
                    });
                    assert_eq!(got, want, "step {step}");
                }
                _ => {
                    buf.fill(0xaa);
                    let got = store.read_into(key, &mut buf);
                    match model.get(&key) {
                        None => assert_eq!(got, None),
                        Some((v, bytes)) => {
                            let n = bytes.len().min(buf.len());
                            assert_eq!(
                                got,
                                Some(ReadInfo {
                                    version: *v,
                                    len: bytes.len()
                                })
                            );
                            assert_eq!(&buf[..n], &bytes[..n]);
                            assert!(buf[n..].iter().all(|&b| b == 0xaa));
                        }
                    }
                }
            }
        }
        let stats = store.stats();
        assert_eq!(stats.records as usize, model.len());
        assert_eq!(
            stats.value_bytes,
            model.values().map(|(_, b)| b.len() as u64).sum()
        );
        for (key, (version, bytes)) in &model {
            assert_eq!(
                store.get(*key),
                Some(Record {
                    version: *version,
                    value: bytes
                })
            );
        }
    }

    #[test]
    fn grows_through_many_resizes_keeping_every_record() {
        let mut store = Store::new();
        let mut capacities = vec![store.stats().index_slots];
        let n = 200_000u64;
        for key in 0..n {
            store.insert(key, &key.to_le_bytes()).unwrap();
            let slots = store.stats().index_slots;
            if capacities.last() != Some(&slots) {
                capacities.push(slots);
            }
        }
        // 0, 16, 32, ... 2^18: well past several resizes, each a doubling.
        assert!(capacities.len() > 10, "{capacities:?}");
        assert!(capacities.windows(2).skip(1).all(|w| w[1] == 2 * w[0]));
        let stats = store.stats();
        assert!(stats.records * 4 <= stats.index_slots * 3);
        assert_eq!(stats.index_bytes, stats.index_slots * 32);
        for key in 0..n {
            assert_eq!(store.get(key).unwrap().value, key.to_le_bytes());
        }
        assert!(store.get(n).is_none());
    }

    #[test]
    fn with_capacity_sizes_the_index_exactly_and_does_not_resize_while_filling() {
        let mut store = Store::with_capacity(10_000).unwrap();
        let slots = store.stats().index_slots;
        assert_eq!(slots, 13_334);
        for key in 0..10_000 {
            store.insert(key, &[]).unwrap();
        }
        assert_eq!(store.stats().index_slots, slots);
    }

    #[test]
    fn allocation_failure_is_an_error_and_changes_nothing() {
        let mut store = Store::new();
        store.insert(1, b"one").unwrap();
        let before = store.stats();
        // Beyond isize::MAX: try_reserve refuses before asking the allocator.
        let huge = usize::MAX / 2 + 1;
        assert_eq!(
            store.insert_with(2, huge, |_, _| unreachable!()),
            Err(KvError::OutOfMemory { bytes: huge })
        );
        // 4 PiB: a size the allocator (mmap, past any 48-bit address space) refuses.
        let refused = 1usize << 52;
        assert_eq!(
            store.insert_with(3, refused, |_, _| unreachable!()),
            Err(KvError::OutOfMemory { bytes: refused })
        );
        assert_eq!(
            store.update_with(1, refused, |_, _| unreachable!()),
            Err(KvError::OutOfMemory { bytes: refused })
        );
        assert!(matches!(
            Store::with_capacity(1 << 58),
            Err(KvError::OutOfMemory { .. })
        ));
        assert!(matches!(
            Store::with_capacity(usize::MAX),
            Err(KvError::OutOfMemory { .. })
        ));
        assert!(matches!(
            store.try_reserve(usize::MAX),
            Err(KvError::OutOfMemory { .. })
        ));
        assert_eq!(store.stats(), before);
        assert_eq!(
            store.get(1),
            Some(Record {
                version: 0,
                value: b"one"
            })
        );
    }

    #[test]
    fn same_length_update_overwrites_in_place_and_bumps_the_version() {
        let mut store = Store::new();
        store.insert(9, &[1; 8]).unwrap();
        let before = store.get(9).unwrap().value.as_ptr();
        assert_eq!(store.update_with(9, 8, |v, b| b.fill(v as u8 + 10)), Ok(1));
        let after = store.get(9).unwrap();
        assert_eq!(after.value.as_ptr(), before);
        assert_eq!((after.version, after.value), (1, &[11u8; 8][..]));
    }
}
