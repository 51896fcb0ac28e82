//! The kernel command line (`/chosen/bootargs`, QEMU `-append`): which job to run and how loudly.
//! Owns parsing and the list of options Ferrite knows; must never fail: a bad or unknown option is
//! kept aside so the boot log can warn about it, and bytes that are not UTF-8 spoil only the word
//! they are in. A job's own options (`memstress.size=`) are collected here and judged by the boot
//! code against the job's declared options, since this module names no job.
#![forbid(unsafe_code)]

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use log::LevelFilter;

/// What a deliberate fault injection asks the self-test job to do (tests of the test runner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// One self-test fails.
    Fail,
    /// The kernel panics after the tests.
    Panic,
    /// The kernel takes an unexpected exception after the tests.
    Fault,
    /// The kernel reads through a null pointer after the tests (a translation fault).
    Null,
    /// The kernel reads the guard page after a vmalloc area.
    Guard,
    /// A recursion overflows a vmalloc'ed kernel stack.
    Stack,
    /// A recursion overflows the application's own stack (into its guard).
    AppStack,
    /// The kernel allocates until memory runs out (the out-of-memory report).
    Oom,
    /// A timer's function, in interrupt context, reads through a null pointer.
    IrqFault,
}

/// `swap=`: how the boot picks its swap disk (the boot's swap setup turns it into what mm's
/// swapon takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SwapMode {
    /// The first disk carrying the swap signature (the default).
    #[default]
    Auto,
    /// No swap, whatever the disks hold.
    Off,
    /// The first disk with a usable swap area; only when there is none, a fresh header on the
    /// first writable disk that is blank.
    Format,
    /// A fresh header on disk N (counted from 0 in the order they are found: the command-line
    /// order of QEMU `virt`'s `-device virtio-blk-device`), whatever it holds.
    FormatDisk(usize),
}

impl SwapMode {
    /// The value of `swap=`: `auto`, `off`, `format` or `format:N`.
    pub fn parse(value: &str) -> Option<SwapMode> {
        Some(match value {
            "auto" => SwapMode::Auto,
            "off" => SwapMode::Off,
            "format" => SwapMode::Format,
            _ => SwapMode::FormatDisk(value.strip_prefix("format:")?.parse().ok()?),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOptions {
    /// `run=`: the job to run (`demo` when the command line names none).
    pub job: String,
    /// Whether the command line said `run=` (when it did not, an image holding one application
    /// runs that one).
    pub job_named: bool,
    /// `loglevel=`: Linux numbers (0-8) or names (off, error, warn, info, debug, trace).
    pub log_level: LevelFilter,
    /// `semihosting`: QEMU was started with `-semihosting`, so the exit status can be passed out.
    pub semihosting: bool,
    /// `ktest.filter=`: run only self-tests whose name contains this.
    pub ktest_filter: Option<String>,
    /// `ktest.order=name|reverse`, `ktest.shuffle=SEED`: the order self-tests run in.
    pub ktest_order: crate::ktest::Order,
    /// `ktest.inject=fail|panic|fault|null|guard|stack|app-stack|oom|irq-fault`.
    pub inject: Option<Inject>,
    /// `zone_dma_bits=N`: the DMA zone ends at 2^N (overrides the device tree's `dma-ranges`).
    pub zone_dma_bits: Option<u32>,
    /// `debug_pagealloc[=on]`: poison free pages and check the poison when they are reused.
    pub debug_pagealloc: bool,
    /// `slub_debug[=FZP]`: slab red zones (Z), poisoning (P), consistency checks (F); all if bare.
    pub slub_debug: u32,
    /// `swap=auto|off|format|format:N`: which disk to swap to (auto: the first with a swap
    /// signature; format: that, or a blank disk formatted; format:N: disk N formatted).
    pub swap: SwapMode,
    /// `icount`: QEMU runs with `-icount shift=0`, so a nanosecond of virtual time is one
    /// instruction (scripts/qemu-run adds it with ICOUNT=1; `run=bench` labels its figures so).
    pub icount: bool,
    /// `swappiness=N` (Linux's `vm.swappiness`, 0-200, default 60): how reclaim weighs the
    /// application's anonymous pages against reclaimable slab.
    pub swappiness: u32,
    /// `lockdep`: check the kernel's lock order and interrupt safety at run time.
    pub lockdep: bool,
    /// Options of the form `job.key=value` (`memstress.size=64M`), full key and value, for the
    /// boot code to check against the jobs' declared options.
    pub job_params: Vec<(String, String)>,
    /// The words after `--`: the application's arguments, not options (as Linux hands what
    /// follows `--` to init).
    pub args: Vec<String>,
    /// Options that were not understood, verbatim, with the reason.
    pub rejected: Vec<(String, &'static str)>,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            job: "demo".into(),
            job_named: false,
            log_level: LevelFilter::Info,
            semihosting: false,
            ktest_filter: None,
            ktest_order: crate::ktest::Order::Name,
            inject: None,
            zone_dma_bits: None,
            debug_pagealloc: false,
            slub_debug: 0,
            swap: SwapMode::Auto,
            icount: false,
            swappiness: 60,
            lockdep: false,
            job_params: Vec::new(),
            args: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

/// Linux's console log level (messages of a priority below N are shown: 4 shows errors, 5
/// warnings, 7 information, 8 debugging) mapped onto `log`'s levels, or a level by name.
pub fn parse_level(value: &str) -> Option<LevelFilter> {
    if let Ok(n) = value.parse::<u32>() {
        return Some(match n {
            0 => LevelFilter::Off,
            1..=4 => LevelFilter::Error,
            5 | 6 => LevelFilter::Warn,
            7 => LevelFilter::Info,
            8 => LevelFilter::Debug,
            _ => LevelFilter::Trace,
        });
    }
    Some(match value {
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        "off" => LevelFilter::Off,
        _ => return None,
    })
}

impl BootOptions {
    /// A job's option by full name (`memstress.size`).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.job_params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn parse(cmdline: &str) -> BootOptions {
        Self::parse_bytes(cmdline.as_bytes())
    }

    /// Parses the property as the device tree holds it: bytes, NUL-terminated, normally ASCII.
    /// A word that is not UTF-8 is rejected alone (shown with `\xNN` escapes); a `run=` word
    /// among them still names the job, so a boot never runs another job than the one asked for.
    pub fn parse_bytes(cmdline: &[u8]) -> BootOptions {
        let mut o = BootOptions::default();
        let end = cmdline
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(cmdline.len());
        let mut words = cmdline[..end]
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty());
        for word in words.by_ref() {
            if word == b"--" {
                break;
            }
            match core::str::from_utf8(word) {
                Ok(word) => o.parse_word(word),
                Err(_) => {
                    let shown = escape_bytes(word);
                    if word.starts_with(b"run=") {
                        o.job = shown["run=".len()..].into();
                        o.job_named = true;
                    }
                    o.rejected
                        .push((shown, "not UTF-8 text (bad bytes shown as \\xNN)"));
                }
            }
        }
        // The application's arguments: bytes that are not UTF-8 shown escaped, as above.
        o.args = words
            .map(|w| core::str::from_utf8(w).map_or_else(|_| escape_bytes(w), String::from))
            .collect();
        o
    }

    fn parse_word(&mut self, word: &str) {
        let o = self;
        {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word, None),
            };
            let mut reject = |why| o.rejected.push((word.to_string(), why));
            match (key, value) {
                // An empty name still asks for a job: the boot fails rather than run the default.
                ("run", Some(job)) => {
                    o.job = job.into();
                    o.job_named = true;
                }
                ("run", None) => {
                    o.job = String::new();
                    o.job_named = true;
                    reject("expected run=JOB");
                }
                ("loglevel", Some(v)) => match parse_level(v) {
                    Some(level) => o.log_level = level,
                    None => reject("not a log level"),
                },
                // As Linux: `quiet` is loglevel 4 (errors), `debug` is 10 (everything).
                ("quiet", None) => o.log_level = LevelFilter::Error,
                ("debug", None) => o.log_level = LevelFilter::Trace,
                ("semihosting", None) => o.semihosting = true,
                ("ktest.filter", Some(v)) => o.ktest_filter = Some(v.into()),
                ("ktest.order", Some("name")) => o.ktest_order = crate::ktest::Order::Name,
                ("ktest.order", Some("reverse")) => o.ktest_order = crate::ktest::Order::Reverse,
                ("ktest.order", Some(_)) => reject("expected ktest.order=name or reverse"),
                ("ktest.shuffle", Some(v)) => match v.parse::<u64>() {
                    Ok(seed) => o.ktest_order = crate::ktest::Order::Shuffle(seed),
                    Err(_) => reject("expected a number (the shuffle's seed)"),
                },
                ("ktest.inject", Some(v)) => match v {
                    "fail" => o.inject = Some(Inject::Fail),
                    "panic" => o.inject = Some(Inject::Panic),
                    "fault" => o.inject = Some(Inject::Fault),
                    "null" => o.inject = Some(Inject::Null),
                    "guard" => o.inject = Some(Inject::Guard),
                    "stack" => o.inject = Some(Inject::Stack),
                    "app-stack" => o.inject = Some(Inject::AppStack),
                    "oom" => o.inject = Some(Inject::Oom),
                    "irq-fault" => o.inject = Some(Inject::IrqFault),
                    _ => reject(
                        "expected fail, panic, fault, null, guard, stack, app-stack, oom or irq-fault",
                    ),
                },
                ("zone_dma_bits", Some(v)) => match v.parse::<u32>() {
                    Ok(bits) if (24..=48).contains(&bits) => o.zone_dma_bits = Some(bits),
                    _ => reject("expected a number of bits from 24 to 48"),
                },
                ("debug_pagealloc", None | Some("on")) => o.debug_pagealloc = true,
                ("debug_pagealloc", Some("off")) => o.debug_pagealloc = false,
                ("slub_debug", None) => o.slub_debug = crate::mm::slab::SLAB_DEBUG_ALL,
                ("slub_debug", Some(v)) => {
                    let mut flags = 0;
                    for c in v.chars() {
                        flags |= match c {
                            'F' | 'f' => crate::mm::slab::SLAB_CONSISTENCY,
                            'Z' | 'z' => crate::mm::slab::SLAB_RED_ZONE,
                            'P' | 'p' => crate::mm::slab::SLAB_POISON,
                            '-' => 0,
                            _ => u32::MAX,
                        };
                    }
                    if flags == u32::MAX {
                        reject("expected slub_debug or slub_debug=[FZP]");
                    } else {
                        o.slub_debug =
                            flags | (crate::mm::slab::SLAB_CONSISTENCY * (flags != 0) as u32);
                    }
                }
                ("swap", Some(v)) => match SwapMode::parse(v) {
                    Some(mode) => o.swap = mode,
                    None => reject("expected swap=auto, swap=off, swap=format or swap=format:N"),
                },
                ("icount", None) => o.icount = true,
                ("lockdep", None) => o.lockdep = true,
                ("swappiness", Some(v)) => match v.parse::<u32>() {
                    Ok(n) if n <= 200 => o.swappiness = n,
                    _ => reject("expected swappiness=N with N from 0 to 200"),
                },
                // Kernel options with a dot are matched above; the rest belong to a job.
                (k, v) if k.contains('.') && !k.starts_with("ktest.") => {
                    o.job_params.push((k.into(), v.unwrap_or("").into()))
                }
                // Options meant for Linux or the firmware that may share a command line.
                ("console" | "earlycon" | "root" | "rootwait" | "rw" | "ro", _) => {}
                _ => reject("unknown option"),
            }
        }
    }
}

/// `bytes` as text, with every byte that is not printable ASCII shown as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_modes_parse() {
        assert_eq!(SwapMode::parse("auto"), Some(SwapMode::Auto));
        assert_eq!(SwapMode::parse("off"), Some(SwapMode::Off));
        assert_eq!(SwapMode::parse("format"), Some(SwapMode::Format));
        assert_eq!(SwapMode::parse("format:0"), Some(SwapMode::FormatDisk(0)));
        assert_eq!(SwapMode::parse("format:12"), Some(SwapMode::FormatDisk(12)));
        for bad in ["", "on", "format:", "format:x", "format:-1", "format1"] {
            assert_eq!(SwapMode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn swap_modes_parse_and_bad_ones_are_rejected() {
        assert_eq!(BootOptions::parse("").swap, SwapMode::Auto);
        assert_eq!(BootOptions::parse("swap=off").swap, SwapMode::Off);
        assert_eq!(BootOptions::parse("swap=format").swap, SwapMode::Format);
        assert_eq!(
            BootOptions::parse("swap=format:1").swap,
            SwapMode::FormatDisk(1)
        );
        assert_eq!(BootOptions::parse("swap=format:x").rejected.len(), 1);
        let o = BootOptions::parse("swap=format swap=auto");
        assert_eq!(o.swap, SwapMode::Auto);
        let o = BootOptions::parse("swap=yes");
        assert_eq!(o.swap, SwapMode::Auto);
        assert_eq!(o.rejected.len(), 1);
        assert!(o.rejected[0].1.contains("swap=auto"));
    }

    #[test]
    fn words_after_two_dashes_are_the_applications_arguments() {
        let o = BootOptions::parse("run=hello loglevel=7 -- one run=two  --three -- \t");
        assert_eq!(o.job, "hello");
        assert_eq!(o.args, ["one", "run=two", "--three", "--"]);
        assert!(o.rejected.is_empty(), "{:?}", o.rejected);
        assert!(BootOptions::parse("run=hello --").args.is_empty());
        let o = BootOptions::parse_bytes(b"-- a\xff b");
        assert_eq!(o.args, ["a\\xff", "b"]);
    }

    #[test]
    fn defaults_to_demo_at_info() {
        let o = BootOptions::parse("");
        assert_eq!(o.job, "demo");
        assert!(!o.job_named);
        assert_eq!(o.log_level, LevelFilter::Info);
        assert!(!o.semihosting);
        assert!(o.rejected.is_empty());
    }

    #[test]
    fn parses_known_options() {
        let o = BootOptions::parse(
            "  run=selftest loglevel=8 semihosting ktest.inject=null ktest.filter=machine ",
        );
        assert_eq!(o.job, "selftest");
        assert!(o.job_named);
        assert_eq!(o.log_level, LevelFilter::Debug);
        assert!(o.semihosting);
        assert_eq!(o.inject, Some(Inject::Null));
        assert_eq!(o.ktest_filter.as_deref(), Some("machine"));
        use crate::ktest::Order;
        assert_eq!(o.ktest_order, Order::Name);
        let o = BootOptions::parse("ktest.order=reverse");
        assert_eq!(o.ktest_order, Order::Reverse);
        let o = BootOptions::parse("ktest.order=reverse ktest.shuffle=42");
        assert_eq!(o.ktest_order, Order::Shuffle(42));
        let o = BootOptions::parse("ktest.order=random ktest.shuffle=x");
        assert_eq!((o.ktest_order, o.rejected.len()), (Order::Name, 2));
        let o = BootOptions::parse("zone_dma_bits=30 debug_pagealloc=on");
        assert_eq!((o.zone_dma_bits, o.debug_pagealloc), (Some(30), true));
        assert!(o.rejected.is_empty());
    }

    #[test]
    fn keeps_bad_options_aside() {
        let o = BootOptions::parse("frobnicate=3 loglevel=loud console=ttyAMA0 ktest.inject=x");
        assert_eq!(o.job, "demo");
        assert_eq!(o.log_level, LevelFilter::Info);
        let words: Vec<&str> = o.rejected.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["frobnicate=3", "loglevel=loud", "ktest.inject=x"]);
        assert!(o.rejected[2].1.contains("app-stack"));
    }

    #[test]
    fn an_empty_run_never_becomes_the_default_job() {
        assert_eq!(BootOptions::parse("run=").job, "");
        assert!(BootOptions::parse("run=").job_named);
        let o = BootOptions::parse("run");
        assert_eq!(o.job, "");
        assert_eq!(o.rejected[0].1, "expected run=JOB");
    }

    #[test]
    fn bytes_that_are_not_utf8_spoil_only_their_word() {
        let o = BootOptions::parse_bytes(b"run=selftest \xff loglevel=8 swap=o\xffff\0junk");
        assert_eq!(o.job, "selftest");
        assert_eq!(o.log_level, LevelFilter::Debug);
        let words: Vec<&str> = o.rejected.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["\\xff", "swap=o\\xffff"]);
        assert!(o.rejected[0].1.contains("not UTF-8"));
        // A job name with a bad byte stays a (missing) job, never the default one.
        let o = BootOptions::parse_bytes(b"run=nosuchjob\xfe");
        assert_eq!(o.job, "nosuchjob\\xfe");
    }

    #[test]
    fn job_options_are_collected_for_the_boot_code() {
        let o = BootOptions::parse("memstress.size=1G memstress.passes= app.flag icount");
        assert_eq!(
            o.job_params,
            [
                ("memstress.size".into(), "1G".into()),
                ("memstress.passes".into(), String::new()),
                ("app.flag".into(), String::new())
            ]
        );
        assert!(o.icount && o.rejected.is_empty());
        assert_eq!(o.swappiness, 60);
        let o = BootOptions::parse("swappiness=0");
        assert_eq!((o.swappiness, o.rejected.len()), (0, 0));
        let o = BootOptions::parse("swappiness=201 swappiness=x");
        assert_eq!((o.swappiness, o.rejected.len()), (60, 2));
    }

    #[test]
    fn linux_levels_map_onto_log_levels() {
        assert_eq!(parse_level("0"), Some(LevelFilter::Off));
        assert_eq!(parse_level("4"), Some(LevelFilter::Error));
        assert_eq!(parse_level("5"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("7"), Some(LevelFilter::Info));
        assert_eq!(parse_level("8"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("15"), Some(LevelFilter::Trace));
        assert_eq!(parse_level("loud"), None);
    }
}
