//! The YCSB core workloads over a [`Store`]: a load phase inserting `records` records of
//! `value_size` bytes, then `operations` reads and updates in workload A's, B's or C's mix, the
//! keys chosen by YCSB's scrambled Zipfian generator, every read verified. Owns the run's state
//! (the store, the generator, the counts); must never read a clock or print (the caller times
//! and reports the phases, which it drives in chunks of its choosing) and never keep a second
//! copy of the values (every value is derived from its key and version; see [`crate::value`]).
//!
//! As in YCSB (`CoreWorkload` with its defaults: hashed inserts, `requestdistribution=zipfian`,
//! `readallfields`), record number `n` has key [`key_of`]`(n)`, the load inserts record numbers
//! in order, and each operation draws its kind from the workload's read proportion and then its
//! record number from [`ScrambledZipfian`] over `[0, records)`. Where this differs from YCSB:
//! the key is [`mix64`] of the record number rather than `fnvhash64` (a bijection, so two
//! records can never share a key), and an update rewrites the whole value (YCSB's default
//! writes one field of ten).

use crate::rng::{mix64, Rng};
use crate::store::{KvError, Store};
use crate::value::{fill_value, verify_value, Mismatch, HEADER_LEN};
use crate::zipf::ScrambledZipfian;
use alloc::vec::Vec;
use core::fmt;

/// A YCSB core workload.
///
/// ```
/// use kvstore::Workload;
/// assert_eq!(Workload::from_name("b"), Some(Workload::B));
/// assert_eq!(Workload::B.read_proportion(), 0.95);
/// assert_eq!(Workload::C.name(), "c");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Update heavy: 50% reads, 50% updates (YCSB's session store).
    A,
    /// Read mostly: 95% reads, 5% updates (photo tagging).
    B,
    /// Read only: 100% reads (user profile cache).
    C,
}

impl Workload {
    /// The fraction of operations that are reads; the rest are updates.
    #[must_use]
    pub const fn read_proportion(self) -> f64 {
        match self {
            Self::A => 0.5,
            Self::B => 0.95,
            Self::C => 1.0,
        }
    }

    /// The workload's letter, lower case, as the bench's output names it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
            Self::C => "c",
        }
    }

    /// The workload named by its letter, either case.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "a" | "A" => Some(Self::A),
            "b" | "B" => Some(Self::B),
            "c" | "C" => Some(Self::C),
            _ => None,
        }
    }
}

/// A run's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Records the load phase inserts (and the operations choose among).
    pub records: u64,
    /// Bytes of each value; at least [`HEADER_LEN`], so every value names its version.
    pub value_size: usize,
    /// Operations the run phase performs.
    pub operations: u64,
    /// The mix of operations.
    pub workload: Workload,
    /// Seeds the operation and key choices; the same seed gives the same run.
    pub seed: u64,
}

impl Default for Config {
    /// A small run: 100 000 records of 100 bytes, 200 000 operations of workload A, seed 1.
    fn default() -> Self {
        Self {
            records: 100_000,
            value_size: 100,
            operations: 200_000,
            workload: Workload::A,
            seed: 1,
        }
    }
}

/// The key of record number `n`.
///
/// ```
/// assert_ne!(kvstore::key_of(0), kvstore::key_of(1));
/// ```
#[must_use]
pub const fn key_of(n: u64) -> u64 {
    mix64(n)
}

/// What was wrong with a record a read (or [`Bench::verify_all`]) looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The store has no record for the key.
    Missing,
    /// The value is not `value_size` bytes long.
    Length {
        /// The configured value size.
        expected: usize,
        /// The stored value's length.
        found: usize,
    },
    /// The bytes are not those of the current version.
    Bytes(Mismatch),
}

/// One verification failure: which record, the version the store says is current, and what was
/// wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The record number.
    pub record: u64,
    /// Its key.
    pub key: u64,
    /// The version the index holds (`None` if the record is missing).
    pub expected_version: Option<u64>,
    /// What was wrong.
    pub problem: Problem,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {} key {:#x}", self.record, self.key)?;
        if let Some(v) = self.expected_version {
            write!(f, " version {v}")?;
        }
        match self.problem {
            Problem::Missing => write!(f, ": missing"),
            Problem::Length { expected, found } => {
                write!(f, ": value is {found} bytes, expected {expected}")
            }
            Problem::Bytes(m) => write!(f, ": {m}"),
        }
    }
}

/// How many failures a report keeps in full; the rest are only counted.
pub const KEPT_FAILURES: usize = 8;

/// A run's counts so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records inserted by the load phase.
    pub loaded: u64,
    /// Reads done by the run phase.
    pub reads: u64,
    /// Updates done by the run phase.
    pub updates: u64,
    /// Records checked by [`Bench::verify_all`].
    pub scanned: u64,
    /// Verification failures, all of them.
    pub verify_failures: u64,
    /// The first [`KEPT_FAILURES`] failures.
    pub failures: Vec<VerifyFailure>,
}

impl Report {
    /// Operations done by the run phase.
    #[must_use]
    pub const fn operations(&self) -> u64 {
        self.reads + self.updates
    }
}

/// One YCSB run over its own [`Store`]: build it, drive [`Bench::load`] then [`Bench::run`] in
/// chunks (reading a clock around them), and read the [`Report`].
///
/// ```
/// use kvstore::{Bench, Config, Workload};
/// let config = Config { records: 1000, value_size: 64, operations: 5000, workload: Workload::B, seed: 7 };
/// let mut bench = Bench::new(config).unwrap();
/// // A caller with a clock reads it around each call; chunks let it show progress.
/// while bench.load(256).unwrap() > 0 {}
/// assert_eq!(bench.run(u64::MAX).unwrap(), 5000);
/// let report = bench.report();
/// assert_eq!((report.loaded, report.operations()), (1000, 5000));
/// assert_eq!(report.verify_failures, 0);
/// assert_eq!(bench.verify_all(), 0);
/// ```
#[derive(Debug)]
pub struct Bench {
    config: Config,
    store: Store,
    keys: ScrambledZipfian,
    rng: Rng,
    /// Where reads land, as a client's receive buffer would.
    buf: Vec<u8>,
    report: Report,
}

impl Bench {
    /// A run of `config` with its index sized for all the records (so the load never resizes
    /// it) and its read buffer allocated; refuses a configuration it cannot run, and reports an
    /// allocation the allocator refused.
    pub fn new(config: Config) -> Result<Self, KvError> {
        if config.value_size < HEADER_LEN {
            return Err(KvError::Invalid(
                "value size below the 16-byte key and version header",
            ));
        }
        let keys = ScrambledZipfian::new(config.records)
            .ok_or(KvError::Invalid("a workload needs at least one record"))?;
        let records = usize::try_from(config.records)
            .map_err(|_| KvError::Invalid("more records than this machine can address"))?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(config.value_size)
            .map_err(|_| KvError::OutOfMemory {
                bytes: config.value_size,
            })?;
        buf.resize(config.value_size, 0);
        Ok(Self {
            config,
            store: Store::with_capacity(records)?,
            keys,
            rng: Rng::new(config.seed),
            buf,
            report: Report::default(),
        })
    }

    /// The run's parameters.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// The store, for its [`Store::stats`].
    #[must_use]
    pub const fn store(&self) -> &Store {
        &self.store
    }

    /// The counts so far.
    #[must_use]
    pub const fn report(&self) -> &Report {
        &self.report
    }

    /// Whether the load phase has inserted every record.
    #[must_use]
    pub const fn loaded(&self) -> bool {
        self.report.loaded == self.config.records
    }

    /// Inserts up to `max` more records of the load phase and says how many (0 once it is
    /// complete). On an allocation failure the records before it stay inserted and the next call
    /// retries the one that failed.
    pub fn load(&mut self, max: u64) -> Result<u64, KvError> {
        let start = self.report.loaded;
        let end = start.saturating_add(max).min(self.config.records);
        for n in start..end {
            let key = key_of(n);
            self.store
                .insert_with(key, self.config.value_size, |v, buf| {
                    fill_value(key, v, buf)
                })?;
            self.report.loaded += 1;
        }
        Ok(end - start)
    }

    /// Runs the whole load phase; says how many records it inserted.
    pub fn load_all(&mut self) -> Result<u64, KvError> {
        self.load(u64::MAX)
    }

    /// Performs up to `max` more operations of the run phase and says how many (0 once all
    /// `operations` are done). Refused before the load phase is complete (the keys would be
    /// missing); an update's allocation failure is returned (the operation is not counted).
    pub fn run(&mut self, max: u64) -> Result<u64, KvError> {
        if !self.loaded() {
            return Err(KvError::Invalid("run before the load phase is complete"));
        }
        let remaining = self.config.operations - self.report.operations();
        let count = remaining.min(max);
        let read_proportion = self.config.workload.read_proportion();
        for _ in 0..count {
            // Kind first, then key, as YCSB's doTransaction draws them.
            let read = self.rng.next_f64() < read_proportion;
            let record = self.keys.next(&mut self.rng);
            if read {
                self.read(record);
                self.report.reads += 1;
            } else {
                self.update(record)?;
                self.report.updates += 1;
            }
        }
        Ok(count)
    }

    /// Runs every remaining operation; says how many.
    pub fn run_all(&mut self) -> Result<u64, KvError> {
        self.run(u64::MAX)
    }

    /// Starts another run phase over the same loaded store: `operations` more operations, of
    /// `workload` (YCSB runs A, B and C one after another on one load). The phase's counts start
    /// at zero; the verification failures found so far stay in the report.
    pub fn next_phase(&mut self, workload: Workload) {
        self.config.workload = workload;
        self.report.reads = 0;
        self.report.updates = 0;
    }

    /// Reads and verifies every loaded record once, in record order (a check after the run, or
    /// after the table has been through swap); returns the failures it found, which are also
    /// added to the report.
    pub fn verify_all(&mut self) -> u64 {
        let before = self.report.verify_failures;
        for record in 0..self.report.loaded {
            self.read(record);
            self.report.scanned += 1;
        }
        self.report.verify_failures - before
    }

    /// Reads record number `record` into the buffer and checks it is the current version.
    fn read(&mut self, record: u64) {
        let key = key_of(record);
        let Some(info) = self.store.read_into(key, &mut self.buf) else {
            return self.fail(record, key, None, Problem::Missing);
        };
        let expected_version = Some(info.version);
        if info.len != self.config.value_size {
            let problem = Problem::Length {
                expected: self.config.value_size,
                found: info.len,
            };
            return self.fail(record, key, expected_version, problem);
        }
        if let Err(m) = verify_value(key, info.version, &self.buf) {
            self.fail(record, key, expected_version, Problem::Bytes(m));
        }
    }

    /// Writes the next version of record number `record`.
    fn update(&mut self, record: u64) -> Result<(), KvError> {
        let key = key_of(record);
        let size = self.config.value_size;
        match self
            .store
            .update_with(key, size, |v, buf| fill_value(key, v, buf))
        {
            Ok(_) => Ok(()),
            Err(KvError::NotFound { .. }) => {
                self.fail(record, key, None, Problem::Missing);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn fail(&mut self, record: u64, key: u64, expected_version: Option<u64>, problem: Problem) {
        self.report.verify_failures += 1;
        if self.report.failures.len() < KEPT_FAILURES {
            self.report.failures.push(VerifyFailure {
                record,
                key,
                expected_version,
                problem,
            });
        }
    }

    /// The store, for tests to corrupt.
    #[cfg(test)]
    pub(crate) fn store_mut_for_test(&mut self) -> &mut Store {
        &mut self.store
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::ToString;

    fn config(workload: Workload, operations: u64) -> Config {
        Config {
            records: 5_000,
            value_size: 48,
            operations,
            workload,
            seed: 99,
        }
    }

    fn run(config: Config) -> Bench {
        let mut bench = Bench::new(config).unwrap();
        assert_eq!(bench.load_all().unwrap(), config.records);
        assert_eq!(bench.run_all().unwrap(), config.operations);
        bench
    }

    #[test]
    fn phases_run_one_after_another_on_one_load() {
        let mut bench = Bench::new(config(Workload::A, 2_000)).unwrap();
        bench.load_all().unwrap();
        assert_eq!(bench.run_all().unwrap(), 2_000);
        for w in [Workload::B, Workload::C] {
            bench.next_phase(w);
            assert_eq!(bench.config().workload, w);
            assert_eq!(bench.run_all().unwrap(), 2_000);
            assert_eq!(bench.report().operations(), 2_000);
        }
        assert_eq!(bench.report().updates, 0, "workload C only reads");
        assert_eq!(bench.verify_all(), 0);
    }

    #[test]
    fn workload_mixes_match_their_proportions() {
        let ops = 40_000;
        for (workload, tolerance) in [(Workload::A, 0.02), (Workload::B, 0.005)] {
            let report = run(config(workload, ops)).report().clone();
            let reads = report.reads as f64 / ops as f64;
            assert!(
                (reads - workload.read_proportion()).abs() < tolerance,
                "{workload:?}: read fraction {reads}"
            );
            assert_eq!(report.verify_failures, 0);
        }
        let report = run(config(Workload::C, ops)).report().clone();
        assert_eq!((report.reads, report.updates), (ops, 0));
    }

    #[test]
    fn a_fixed_seed_fixes_the_run() {
        let final_versions = |seed| {
            let bench = run(Config {
                seed,
                ..config(Workload::A, 20_000)
            });
            let versions: Vec<u64> = (0..5_000)
                .map(|n| bench.store().version(key_of(n)).unwrap())
                .collect();
            (bench.report().clone(), versions)
        };
        assert_eq!(final_versions(5), final_versions(5));
        assert_ne!(final_versions(5).1, final_versions(6).1);
    }

    #[test]
    fn updates_leave_verifiable_versions_and_the_load_is_chunked() {
        let mut bench = Bench::new(config(Workload::A, 30_000)).unwrap();
        assert_eq!(
            bench.run(1),
            Err(KvError::Invalid("run before the load phase is complete"))
        );
        let mut chunks = 0;
        while bench.load(777).unwrap() > 0 {
            chunks += 1;
        }
        assert_eq!(chunks, 5_000usize.div_ceil(777));
        while bench.run(1000).unwrap() > 0 {}
        assert_eq!(bench.report().operations(), 30_000);
        // The hottest record has been updated many times; a full scan checks every version.
        let hottest = bench.keys.item_of_rank(0);
        assert!(bench.store().version(key_of(hottest)).unwrap() > 100);
        assert_eq!(bench.verify_all(), 0);
        assert_eq!(bench.report().scanned, 5_000);
        let stats = bench.store().stats();
        assert_eq!((stats.records, stats.value_bytes), (5_000, 5_000 * 48));
    }

    #[test]
    fn a_corrupted_byte_is_caught_and_reported() {
        let mut bench = run(config(Workload::C, 0));
        let record = 1234;
        let key = key_of(record);
        let value = bench.store_mut_for_test().value_mut_for_test(key).unwrap();
        let good = value[30];
        value[30] ^= 0x5a;
        assert_eq!(bench.verify_all(), 1);
        let report = bench.report();
        assert_eq!(report.verify_failures, 1);
        let failure = report.failures[0];
        assert_eq!(
            (failure.record, failure.key, failure.expected_version),
            (1234, key, Some(0))
        );
        let Problem::Bytes(m) = failure.problem else {
            panic!("{failure:?}")
        };
        assert_eq!(
            (m.offset, m.found_key, m.found_version),
            (30, Some(key), Some(0))
        );
        assert_eq!((m.expected[0], m.found[0]), (good, good ^ 0x5a));
        let text = failure.to_string();
        assert!(
            text.contains("record 1234") && text.contains("byte 30"),
            "{text}"
        );
    }

    #[test]
    fn a_stale_version_is_caught_by_the_zipfian_reads() {
        // A value rolled back to an older version (a lost write, a stale swap page) has valid
        // bytes for that version: only the version check catches it.
        let mut bench = run(config(Workload::A, 20_000));
        let hot = bench.keys.item_of_rank(0);
        let key = key_of(hot);
        let current = bench.store().version(key).unwrap();
        assert!(current > 1);
        let value = bench.store_mut_for_test().value_mut_for_test(key).unwrap();
        fill_value(key, current - 1, value);
        bench.config.operations += 2_000;
        bench.config.workload = Workload::C;
        bench.run_all().unwrap();
        let report = bench.report();
        assert!(report.verify_failures > 10, "{report:?}");
        let failure = report.failures[0];
        assert_eq!(failure.expected_version, Some(current));
        let Problem::Bytes(m) = failure.problem else {
            panic!("{failure:?}")
        };
        assert_eq!((m.offset, m.found_version), (8, Some(current - 1)));
        assert!(format!("{failure}").contains(&format!("version {}", current - 1)));
        // Only the first failures are kept in full.
        assert_eq!(report.failures.len(), KEPT_FAILURES);
    }

    #[test]
    fn refuses_what_it_cannot_run_and_reports_allocation_failure() {
        let small = Config {
            value_size: 8,
            ..Config::default()
        };
        assert!(matches!(Bench::new(small), Err(KvError::Invalid(_))));
        let empty = Config {
            records: 0,
            ..Config::default()
        };
        assert!(matches!(Bench::new(empty), Err(KvError::Invalid(_))));
        // A value size no allocator gives: the read buffer's try_reserve refuses.
        let huge = Config {
            value_size: 1 << 52,
            ..Config::default()
        };
        assert_eq!(
            Bench::new(huge).unwrap_err(),
            KvError::OutOfMemory { bytes: 1 << 52 }
        );
        let overflow = Config {
            value_size: usize::MAX,
            ..Config::default()
        };
        assert!(matches!(
            Bench::new(overflow),
            Err(KvError::OutOfMemory { .. })
        ));
        // An index no allocator gives.
        let too_many = Config {
            records: 1 << 56,
            ..Config::default()
        };
        assert!(matches!(
            Bench::new(too_many),
            Err(KvError::OutOfMemory { .. })
        ));
    }

    #[test]
    fn a_missing_record_is_a_failure_not_a_panic() {
        let mut bench = run(config(Workload::A, 0));
        // Pretend the load covered one record more than it did.
        bench.config.records += 1;
        bench.report.loaded += 1;
        bench.verify_all();
        let failure = bench.report().failures[0];
        assert_eq!((failure.record, failure.problem), (5_000, Problem::Missing));
    }
}
