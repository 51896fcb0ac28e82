//! A portable in-memory key-value store and a YCSB-style workload generator: the heart of a
//! memory-hungry application whose table may be bigger than RAM (on Ferrite, partly in swap),
//! and the same code as an ordinary Linux program for comparison.
//!
//! Owns: the store ([`Store`], a hash index of `u64` keys to versioned heap values), the value
//! format that lets every read be verified ([`fill_value`], [`verify_value`]), the YCSB core key
//! and operation generators ([`Zipfian`], [`ScrambledZipfian`], [`Rng`]) and the workload driver
//! ([`Bench`]).
//!
//! Must never: name a Ferrite type or depend on a Ferrite crate (it is `no_std` + `alloc` and
//! needs only an allocator); use `unsafe`; read a clock, print or draw entropy (the caller times
//! the phases it drives and passes the seed); panic on allocation failure where Rust allows a
//! fallible allocation (indexes and values are reserved with `try_reserve_exact` and a refusal is
//! a [`KvError::OutOfMemory`]).
//!
//! ```
//! use kvstore::{Bench, Config, Workload};
//! let mut bench = Bench::new(Config { records: 500, operations: 2000, ..Config::default() }).unwrap();
//! bench.load_all().unwrap(); // time this: the load phase
//! bench.run_all().unwrap(); // and this: the run phase
//! let report = bench.report();
//! assert_eq!(report.reads + report.updates, 2000);
//! assert_eq!(report.verify_failures, 0);
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod rng;
pub mod store;
pub mod value;
pub mod workload;
pub mod zipf;

pub use rng::{mix64, Rng, SplitMix64};
pub use store::{KvError, ReadInfo, Record, Stats, Store};
pub use value::{fill_value, verify_value, Mismatch, HEADER_LEN};
pub use workload::{
    key_of, Bench, Config, Problem, Report, VerifyFailure, Workload, KEPT_FAILURES,
};
pub use zipf::{
    fnvhash64, zeta, ScrambledZipfian, Zipfian, YCSB_ITEM_COUNT, YCSB_ZETAN, YCSB_ZIPFIAN_CONSTANT,
};
