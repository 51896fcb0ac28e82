//! KTAP output (the format of Linux's KUnit): `KTAP version 1`, a plan `1..N`, one `ok`/`not ok`
//! line per test with diagnostics as `# …` lines, and a closing summary. Runs the selected tests
//! by name, in reverse or in a seeded shuffle (tests must not depend on each other's leftovers);
//! a filter that selects nothing is a failure. Portable: the host tests run it over fake tests.

use core::fmt::Write;

use super::{KTest, TestError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    /// No test failed, and at least one ran (a filter that selects nothing tested nothing).
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.passed + self.skipped > 0
    }
}

/// The order the selected tests run in (`ktest.order=`, `ktest.shuffle=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// By name (the default).
    #[default]
    Name,
    /// By name, last first.
    Reverse,
    /// A shuffle that the seed determines, so a failing order can be run again.
    Shuffle(u64),
}

/// Puts `tests` in `order` (a Fisher-Yates shuffle over splitmix64 for `Shuffle`).
fn arrange(tests: &mut [&KTest], order: Order) {
    tests.sort_by_key(|t| t.name);
    match order {
        Order::Name => {}
        Order::Reverse => tests.reverse(),
        Order::Shuffle(seed) => {
            let mut state = seed;
            let mut next = || {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let z = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            };
            for i in (1..tests.len()).rev() {
                tests.swap(i, (next() % (i as u64 + 1)) as usize);
            }
        }
    }
}

/// The registered tests per crate (the first segment of their module path), in name order.
pub fn linked_per_crate(tests: &[KTest]) -> alloc::vec::Vec<(&'static str, usize)> {
    let mut counts: alloc::vec::Vec<(&'static str, usize)> = alloc::vec::Vec::new();
    for t in tests {
        let krate = t.name.split("::").next().unwrap_or(t.name);
        match counts.iter_mut().find(|(c, _)| *c == krate) {
            Some((_, n)) => *n += 1,
            None => counts.push((krate, 1)),
        }
    }
    counts.sort();
    counts
}

/// Runs the tests whose name contains `filter` (all when `None`) in `order`, printing KTAP.
pub fn run(tests: &[KTest], filter: Option<&str>, order: Order, out: &mut dyn Write) -> Summary {
    let mut selected: alloc::vec::Vec<&KTest> = tests
        .iter()
        .filter(|t| filter.is_none_or(|f| t.name.contains(f)))
        .collect();
    arrange(&mut selected, order);
    let mut summary = Summary::default();
    let _ = writeln!(out, "KTAP version 1");
    let _ = writeln!(out, "1..{}", selected.len());
    // What the image holds per crate, whatever is selected: the runner compares it with the
    // crates' sources, so a self-test the linker dropped (a `.ktest` entry of a dependency crate
    // that nothing kept) is a failure, not silence.
    for (krate, n) in linked_per_crate(tests) {
        let _ = writeln!(out, "# linked: {krate} {n}");
    }
    match order {
        Order::Name => {}
        Order::Reverse => {
            let _ = writeln!(out, "# order: by name, last first (ktest.order=reverse)");
        }
        Order::Shuffle(seed) => {
            let _ = writeln!(out, "# order: shuffled (ktest.shuffle={seed})");
        }
    }
    if selected.is_empty() {
        let _ = match filter {
            Some(f) => writeln!(
                out,
                "# error: ktest.filter={f} matches no self-test: nothing was tested"
            ),
            None => writeln!(
                out,
                "# error: no self-test is registered: nothing was tested"
            ),
        };
    }
    for (i, test) in selected.iter().enumerate() {
        let n = i + 1;
        let name = test.short_name();
        let _ = match (test.func)() {
            Ok(()) => {
                summary.passed += 1;
                writeln!(out, "ok {n} {name}")
            }
            Err(TestError::Skip(reason)) => {
                summary.skipped += 1;
                writeln!(out, "ok {n} {name} # SKIP {reason}")
            }
            Err(TestError::Fail(message)) => {
                summary.failed += 1;
                for line in message.lines() {
                    let _ = writeln!(out, "# {line}");
                }
                writeln!(out, "not ok {n} {name}")
            }
        };
    }
    let _ = writeln!(
        out,
        "# totals: pass:{} fail:{} skip:{}",
        summary.passed, summary.failed, summary.skipped
    );
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn pass() -> crate::ktest::TestResult {
        Ok(())
    }
    fn fail() -> crate::ktest::TestResult {
        Err(TestError::Fail("first line\nsecond line".into()))
    }
    fn skip() -> crate::ktest::TestResult {
        Err(TestError::Skip("no disk".into()))
    }

    const TESTS: [KTest; 3] = [
        KTest {
            name: "ferrite_kernel::b::fails",
            func: fail,
        },
        KTest {
            name: "ferrite_kernel::a::passes",
            func: pass,
        },
        KTest {
            name: "ferrite_kernel::c::skips",
            func: skip,
        },
    ];

    #[test]
    fn prints_ktap_sorted_with_diagnostics() {
        let mut out = String::new();
        let s = run(&TESTS, None, Order::Name, &mut out);
        assert_eq!(
            s,
            Summary {
                passed: 1,
                failed: 1,
                skipped: 1
            }
        );
        assert!(!s.all_passed());
        assert_eq!(
            out,
            "KTAP version 1\n1..3\n# linked: ferrite_kernel 3\nok 1 a::passes\n# first line\n# second line\nnot ok 2 b::fails\n\
             ok 3 c::skips # SKIP no disk\n# totals: pass:1 fail:1 skip:1\n"
        );
    }

    #[test]
    fn counts_what_each_crate_linked() {
        let tests = [
            KTest {
                name: "ferrite_kernel::x::one",
                func: pass,
            },
            KTest {
                name: "ferrite_mm::y::two",
                func: pass,
            },
            KTest {
                name: "ferrite_kernel::z::three",
                func: pass,
            },
        ];
        assert_eq!(
            linked_per_crate(&tests),
            [("ferrite_kernel", 2), ("ferrite_mm", 1)]
        );
        let mut out = String::new();
        run(&tests, Some("one"), Order::Name, &mut out);
        assert!(
            out.contains("# linked: ferrite_kernel 2\n# linked: ferrite_mm 1\n"),
            "{out}"
        );
    }

    #[test]
    fn filter_selects_by_name() {
        let mut out = String::new();
        let s = run(&TESTS, Some("a::"), Order::Name, &mut out);
        assert_eq!(
            s,
            Summary {
                passed: 1,
                failed: 0,
                skipped: 0
            }
        );
        assert!(out.contains("1..1\n# linked: ferrite_kernel 3\nok 1 a::passes\n"));
        assert!(s.all_passed());
    }

    #[test]
    fn a_filter_that_matches_nothing_fails() {
        let mut out = String::new();
        let s = run(&TESTS, Some("no-such-test"), Order::Name, &mut out);
        assert_eq!(s, Summary::default());
        assert!(!s.all_passed(), "nothing tested must not count as a pass");
        assert!(
            out.contains(
                "1..0\n# linked: ferrite_kernel 3\n# error: ktest.filter=no-such-test matches no self-test: nothing was tested\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn reverse_and_shuffled_orders_run_every_test_once() {
        fn names(order: Order) -> alloc::vec::Vec<&'static str> {
            let many: alloc::vec::Vec<KTest> = ["a", "b", "c", "d", "e", "f", "g", "h"]
                .iter()
                .map(|&name| KTest { name, func: pass })
                .collect();
            let mut out = String::new();
            run(&many, None, order, &mut out);
            out.lines()
                .filter_map(|l| l.strip_prefix("ok "))
                .map(|l| {
                    let name = l.split(' ').nth(1).unwrap_or("");
                    ["a", "b", "c", "d", "e", "f", "g", "h"]
                        .into_iter()
                        .find(|&n| n == name)
                        .unwrap_or("?")
                })
                .collect()
        }
        let by_name = names(Order::Name);
        assert_eq!(by_name, ["a", "b", "c", "d", "e", "f", "g", "h"]);
        assert_eq!(
            names(Order::Reverse),
            ["h", "g", "f", "e", "d", "c", "b", "a"]
        );
        let shuffled = names(Order::Shuffle(42));
        assert_eq!(
            shuffled,
            names(Order::Shuffle(42)),
            "a seed gives one order"
        );
        assert_ne!(shuffled, by_name);
        assert_ne!(shuffled, names(Order::Shuffle(43)));
        let mut sorted = shuffled.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, by_name, "every test once");
        let mut out = String::new();
        run(&TESTS, None, Order::Shuffle(7), &mut out);
        assert!(
            out.contains("# order: shuffled (ktest.shuffle=7)\n"),
            "{out}"
        );
    }

    // The macro must expand on the host too, where the registry is simply not collected.
    crate::ktest!(expands_on_the_host, { Ok(()) });
}
