//! Mutation test of the reader: real trees from `$FERRITE_DTB_DIR` and trees made with the writer
//! are damaged thousands of times each (byte flips, word overwrites with interesting values,
//! truncations, splices within and across trees, insertions and deletions in the structure block,
//! header damage, properties renamed, property cells overwritten) and each result goes through
//! `Machine::from_blob` and the JSON and boot-log renderings. Any panic, and any parse taking longer than a second,
//! fails the test with the tree, case number and mutations to reproduce it; a watchdog fails the
//! test if the whole run does not finish (an endless loop).
//!
//! `FERRITE_FUZZ_CASES=N` changes the number of cases per tree (default 3000, 10000 optimized);
//! `FERRITE_FUZZ_CASE=TREE:N` runs one case only. Failing blobs are written to
//! `target/<triple>/tmp/fuzz-failures/`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ferrite_addr::{PhysAddr, PhysRange};
use ferrite_machine::{BootRanges, Machine};

/// Cases per tree: 3000 in a debug build (where arithmetic overflow panics too), more when
/// optimized.
const DEFAULT_CASES: usize = if cfg!(debug_assertions) { 3000 } else { 10_000 };
/// No single parse may take this long.
const SLOW_PARSE: Duration = Duration::from_secs(1);
/// The whole run must end within this (generous, for debug builds on slow machines).
const WATCHDOG: Duration = Duration::from_secs(300);
const MAX_REPORTED: usize = 10;

/// xorshift64*: small, deterministic, good enough to choose mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that neighbouring seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The structure block's place in a blob, if the header still says something sensible.
fn struct_block(blob: &[u8]) -> Option<(usize, usize)> {
    if blob.len() < HEADER_SIZE {
        return None;
    }
    let off = get_be32(blob, hdr::OFF_STRUCT) as usize;
    let size = get_be32(blob, hdr::SIZE_STRUCT) as usize;
    (size > 0 && off.checked_add(size)? <= blob.len()).then_some((off, size))
}

/// An offset to damage: mostly in the structure block (where the reader has the most to get
/// wrong), sometimes anywhere.
fn target(rng: &mut Rng, blob: &[u8], align: bool) -> usize {
    let at = match struct_block(blob) {
        Some((off, size)) if rng.chance(80) => off + rng.below(size),
        _ => rng.below(blob.len()),
    };
    if align {
        at & !3
    } else {
        at
    }
}

fn interesting(rng: &mut Rng, blob: &[u8]) -> u32 {
    let len = blob.len() as u32;
    let choices = [
        0,
        1,
        2,
        3,
        4,
        9,
        0x20,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_fff0,
        0xffff_ffff,
        len,
        len.wrapping_add(1),
        len.wrapping_sub(1),
        len.wrapping_sub(4),
        len.wrapping_add(0x1000),
        0x1_0000,
        0xd00d_feed,
        0x4000_0000,
        5,
        8,
        0x1000,
        0xffff_f000,
        rng.next() as u32,
    ];
    choices[rng.below(choices.len())]
}

/// The properties of a (possibly already damaged) blob, as (offset of the value, length, offset
/// of the `nameoff` word), found by walking the structure block as far as it makes sense.
fn properties(blob: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let Some((off, size)) = struct_block(blob) else {
        return out;
    };
    let end = off + size;
    let mut at = off;
    while at + 4 <= end {
        match get_be32(blob, at) {
            FDT_BEGIN_NODE => {
                let Some(nul) = blob[at + 4..end].iter().position(|&b| b == 0) else {
                    break;
                };
                at = (at + 4 + nul + 1 + 3) & !3;
            }
            FDT_PROP if at + 12 <= end => {
                let len = get_be32(blob, at + 4) as usize;
                if at + 12 + len > end {
                    break;
                }
                out.push((at + 12, len, at + 8));
                at = (at + 12 + len + 3) & !3;
            }
            FDT_END_NODE | FDT_NOP => at += 4,
            _ => break,
        }
    }
    out
}

/// Offsets of the names in the strings block.
fn names(blob: &[u8]) -> Vec<u32> {
    if blob.len() < HEADER_SIZE {
        return Vec::new();
    }
    let off = get_be32(blob, hdr::OFF_STRINGS) as usize;
    let size = get_be32(blob, hdr::SIZE_STRINGS) as usize;
    let Some(strings) = off.checked_add(size).and_then(|end| blob.get(off..end)) else {
        return Vec::new();
    };
    let mut out = vec![0];
    for (i, &b) in strings.iter().enumerate() {
        if b == 0 && i + 1 < strings.len() {
            out.push(i as u32 + 1);
        }
    }
    out
}

/// Applies one random mutation, describing it in `log`.
fn mutate(rng: &mut Rng, blob: &mut Vec<u8>, donors: &[Vec<u8>], log: &mut Vec<String>) {
    if blob.len() < 8 {
        blob.push(rng.next() as u8);
        log.push("append a byte".into());
        return;
    }
    match rng.below(12) {
        9 | 10 => {
            // Give a property another property's name: `reg` becomes `ranges`, a string becomes
            // `#address-cells`, and so on.
            let props = properties(blob);
            let names = names(blob);
            if !props.is_empty() && !names.is_empty() {
                let (_, _, nameoff_at) = props[rng.below(props.len())];
                let name = names[rng.below(names.len())];
                put_be32(blob, nameoff_at, name);
                log.push(format!(
                    "rename property at {nameoff_at:#x} to string {name:#x}"
                ));
                return;
            }
        }
        11 => {
            // Overwrite one cell of a property's value.
            let props: Vec<_> = properties(blob).into_iter().filter(|p| p.1 >= 4).collect();
            if !props.is_empty() {
                let (value_at, len, _) = props[rng.below(props.len())];
                let at = value_at + 4 * rng.below(len / 4);
                let value = interesting(rng, blob);
                put_be32(blob, at, value);
                log.push(format!("property cell {at:#x} = {value:#x}"));
                return;
            }
        }
        _ => {}
    }
    match rng.below(9) {
        0 | 1 => {
            let at = target(rng, blob, false);
            let mask = if rng.chance(50) {
                1u8 << rng.below(8)
            } else {
                (rng.next() as u8) | 1
            };
            blob[at] ^= mask;
            log.push(format!("xor byte {at:#x} with {mask:#04x}"));
        }
        2 | 3 => {
            let align = rng.chance(85);
            let at = target(rng, blob, align).min(blob.len() - 4);
            let value = interesting(rng, blob);
            put_be32(blob, at, value);
            log.push(format!("word {at:#x} = {value:#x}"));
        }
        4 => {
            let field = [
                hdr::TOTALSIZE,
                hdr::OFF_STRUCT,
                hdr::OFF_STRINGS,
                hdr::OFF_RSVMAP,
                hdr::VERSION,
                hdr::LAST_COMP_VERSION,
                hdr::SIZE_STRINGS,
                hdr::SIZE_STRUCT,
            ][rng.below(8)];
            if blob.len() >= HEADER_SIZE {
                let old = get_be32(blob, field);
                let value = if rng.chance(50) {
                    interesting(rng, blob)
                } else {
                    old.wrapping_add((rng.below(33) as u32).wrapping_sub(16))
                };
                put_be32(blob, field, value);
                log.push(format!("header field {field} = {value:#x}"));
            }
        }
        5 => {
            let cut = rng.below(blob.len());
            blob.truncate(cut);
            // Half the time say so in the header, so the reader gets past totalsize.
            if cut >= HEADER_SIZE && rng.chance(50) {
                put_be32(blob, hdr::TOTALSIZE, cut as u32);
                log.push(format!("truncate to {cut:#x}, totalsize too"));
            } else {
                log.push(format!("truncate to {cut:#x}"));
            }
        }
        6 => {
            let donor_index = rng.below(donors.len() + 1);
            let donor = donors
                .get(donor_index)
                .cloned()
                .unwrap_or_else(|| blob.clone());
            let longest = if rng.chance(70) { 16 } else { 256 };
            let n = 1 + rng.below(longest);
            let n = n.min(donor.len()).min(blob.len());
            let from = rng.below(donor.len() - n + 1);
            let align = rng.chance(50);
            let to = target(rng, blob, align).min(blob.len() - n);
            blob[to..to + n].copy_from_slice(&donor[from..from + n]);
            let source = if donor_index < donors.len() {
                format!("tree {donor_index}")
            } else {
                "itself".to_string()
            };
            log.push(format!(
                "splice {n} bytes from {source} at {from:#x} to {to:#x}"
            ));
        }
        _ => {
            // Insert or delete whole words in the structure block, keeping the header's sizes
            // in step so the damage is found by the structure walk, not by the header check.
            let Some((off, size)) = struct_block(blob) else {
                blob[rng.below(8)] ^= 0x10;
                log.push("flip a header bit".into());
                return;
            };
            let at = (off + rng.below(size)) & !3;
            let words = 1 + rng.below(4);
            let delete = rng.chance(50) && at + 4 * words <= off + size;
            let delta: i64 = if delete {
                blob.drain(at..at + 4 * words);
                -(4 * words as i64)
            } else {
                let value = interesting(rng, blob);
                let bytes: Vec<u8> = (0..words).flat_map(|_| value.to_be_bytes()).collect();
                blob.splice(at..at, bytes);
                4 * words as i64
            };
            let adjust = |blob: &mut Vec<u8>, field: usize| {
                let v = get_be32(blob, field) as i64 + delta;
                put_be32(blob, field, v as u32);
            };
            adjust(blob, hdr::SIZE_STRUCT);
            adjust(blob, hdr::TOTALSIZE);
            for field in [hdr::OFF_STRINGS, hdr::OFF_RSVMAP] {
                if get_be32(blob, field) as usize > at {
                    adjust(blob, field);
                }
            }
            let what = if delete { "delete" } else { "insert" };
            log.push(format!("{what} {words} word(s) at {at:#x}"));
        }
    }
}

struct Failure {
    tree: String,
    case: usize,
    log: Vec<String>,
    what: String,
    blob: Vec<u8>,
}

#[derive(Default)]
struct Stats {
    cases: usize,
    accepted: usize,
    slowest: Duration,
    slowest_case: String,
}

fn boot_ranges() -> BootRanges {
    BootRanges {
        image: Some(PhysRange::new(PhysAddr::new(0x4020_0000), 0x20_0000)),
        dtb: Some(PhysRange::new(PhysAddr::new(0x4800_0000), 0x1_0000)),
    }
}

/// Runs the cases of one tree.
fn run_tree(
    name: &str,
    tree_index: usize,
    original: &[u8],
    donors: &[Vec<u8>],
    cases: usize,
    only: Option<usize>,
    current: &Mutex<String>,
) -> (Stats, Vec<Failure>) {
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for case in 0..cases {
        if only.is_some_and(|n| n != case) {
            continue;
        }
        let mut rng = Rng::new((tree_index as u64) << 32 | case as u64);
        let mut blob = original.to_vec();
        let mut log = Vec::new();
        let count = 1 + rng.below(3);
        for _ in 0..count {
            mutate(&mut rng, &mut blob, donors, &mut log);
        }
        *current.lock().unwrap() = format!("{name} case {case}: {}", log.join("; "));
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            Machine::from_blob(&blob, boot_ranges()).map(|m| {
                // Use the description as the kernel would.
                let _ = (m.ram_bytes(), m.reserved_bytes(), m.reservations());
                let (start, end) = match (m.memory.first(), m.memory.last()) {
                    (Some(f), Some(l)) => (f.base.as_u64(), l.end().min(u64::MAX as u128) as u64),
                    _ => (0, u64::MAX),
                };
                let limits = ferrite_mm::zone::zone_limits(m.dma_limit, None, start, end);
                let zones = ferrite_machine::json::Zones {
                    dma_end: limits.dma_end,
                    dma32_end: limits.dma32_end,
                };
                let _ = ferrite_machine::json::to_json(&m, zones);
                let _ = ferrite_machine::report::lines(&m);
            })
        }));
        let took = start.elapsed();
        stats.cases += 1;
        if took > stats.slowest {
            stats.slowest = took;
            stats.slowest_case = format!("{name} case {case}");
        }
        let what = match result {
            Err(payload) => Some(
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .map_or("panic".to_string(), |m| format!("panic: {m}")),
            ),
            Ok(_) if took > SLOW_PARSE => Some(format!("parse took {took:?}")),
            Ok(Ok(())) => {
                stats.accepted += 1;
                None
            }
            Ok(Err(_)) => None,
        };
        if let Some(what) = what {
            failures.push(Failure {
                tree: name.into(),
                case,
                log,
                what,
                blob,
            });
            if failures.len() >= MAX_REPORTED {
                break;
            }
        }
    }
    (stats, failures)
}

#[test]
fn mutated_trees_never_panic_or_hang() {
    let cases = std::env::var("FERRITE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let only: Option<(String, usize)> = std::env::var("FERRITE_FUZZ_CASE").ok().map(|v| {
        let (tree, case) = v.rsplit_once(':').expect("FERRITE_FUZZ_CASE=TREE:N");
        (
            tree.to_string(),
            case.parse().expect("FERRITE_FUZZ_CASE=TREE:N"),
        )
    });

    let mut corpus: Vec<(String, Vec<u8>)> = real_trees()
        .into_iter()
        .map(|(name, blob)| (name, compact(&blob)))
        .collect();
    for (name, fdt) in sample_trees() {
        corpus.push((format!("{name}-nops"), fdt.clone().with_nops().build()));
        corpus.push((name, fdt.build()));
    }
    for (name, blob) in &corpus {
        assert!(
            Machine::from_blob(blob, BootRanges::default()).is_ok(),
            "{name} must be valid before it is damaged"
        );
    }
    let donors: Arc<Vec<Vec<u8>>> = Arc::new(corpus.iter().map(|(_, b)| b.clone()).collect());
    let corpus = Arc::new(corpus);

    // Silence the default hook's report of each caught panic; the failures are reported below.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let next = Arc::new(AtomicUsize::new(0));
    let currents: Vec<Arc<Mutex<String>>> = (0..workers)
        .map(|_| Arc::new(Mutex::new(String::new())))
        .collect();
    let (done_tx, done_rx) = mpsc::channel();
    let started = Instant::now();
    for current in &currents {
        let (corpus, donors, next, current, done_tx, only) = (
            corpus.clone(),
            donors.clone(),
            next.clone(),
            current.clone(),
            done_tx.clone(),
            only.clone(),
        );
        std::thread::spawn(move || {
            let mut stats = Vec::new();
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((name, blob)) = corpus.get(i) else {
                    break;
                };
                let case = match &only {
                    Some((tree, _)) if tree != name => continue,
                    Some((_, case)) => Some(*case),
                    None => None,
                };
                let (s, f) = run_tree(name, i, blob, &donors, cases, case, &current);
                stats.push((name.clone(), s));
                failures.extend(f);
            }
            let _ = done_tx.send((stats, failures));
        });
    }
    drop(done_tx);

    let mut all_stats = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..workers {
        let left = WATCHDOG.saturating_sub(started.elapsed());
        match done_rx.recv_timeout(left) {
            Ok((s, f)) => {
                all_stats.extend(s);
                failures.extend(f);
            }
            Err(_) => {
                std::panic::set_hook(default_hook);
                let running: Vec<String> =
                    currents.iter().map(|c| c.lock().unwrap().clone()).collect();
                panic!(
                    "the mutation run did not finish in {WATCHDOG:?}: a hang? Cases running:\n{}",
                    running.join("\n")
                );
            }
        }
    }
    std::panic::set_hook(default_hook);

    let total: usize = all_stats.iter().map(|(_, s)| s.cases).sum();
    let accepted: usize = all_stats.iter().map(|(_, s)| s.accepted).sum();
    let slowest = all_stats.iter().max_by_key(|(_, s)| s.slowest);
    eprintln!(
        "{total} mutated trees from {} originals in {:?}: {accepted} still described, the rest refused; slowest parse {:?} ({})",
        corpus.len(),
        started.elapsed(),
        slowest.map(|(_, s)| s.slowest).unwrap_or_default(),
        slowest.map(|(_, s)| s.slowest_case.as_str()).unwrap_or("-"),
    );

    if !failures.is_empty() {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let mut report = Vec::new();
        for f in failures.iter().take(MAX_REPORTED) {
            let file = dir.join(format!(
                "{}-{}.dtb",
                f.tree.trim_end_matches(".dtb"),
                f.case
            ));
            let _ = std::fs::write(&file, &f.blob);
            report.push(format!(
                "{} case {} ({}): {}\n    reproduce: FERRITE_FUZZ_CASE={}:{} cargo test --target <host> --test fuzz_trees \
                 (same FERRITE_DTB_DIR); blob in {}",
                f.tree,
                f.case,
                f.log.join("; "),
                f.what,
                f.tree,
                f.case,
                file.display()
            ));
        }
        panic!(
            "{} mutated tree(s) broke the reader:\n{}",
            failures.len(),
            report.join("\n")
        );
    }
    if only.is_none() {
        assert_eq!(total, corpus.len() * cases, "every case ran");
        // The mutations must reach past the header checks often enough to exercise the
        // description, not only the validator.
        assert!(
            accepted * 20 > total,
            "only {accepted} of {total} mutated trees were described"
        );
    }
}
