//! KTAP output (the format of Linux's KUnit): `KTAP version 1`, a plan `1..N`, one `ok`/`not ok`
//! line per test with diagnostics as `# …` lines, and a closing summary. Portable: the host tests
//! run it over fake tests.

use core::fmt::Write;

use super::{KTest, TestError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }
}

/// Runs the tests whose name contains `filter` (all when `None`), sorted by name, printing KTAP.
pub fn run(tests: &[KTest], filter: Option<&str>, out: &mut dyn Write) -> Summary {
    let mut selected: alloc::vec::Vec<&KTest> = tests
        .iter()
        .filter(|t| filter.is_none_or(|f| t.name.contains(f)))
        .collect();
    selected.sort_by_key(|t| t.name);
    let mut summary = Summary::default();
    let _ = writeln!(out, "KTAP version 1");
    let _ = writeln!(out, "1..{}", selected.len());
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
            name: "ferrite::b::fails",
            func: fail,
        },
        KTest {
            name: "ferrite::a::passes",
            func: pass,
        },
        KTest {
            name: "ferrite::c::skips",
            func: skip,
        },
    ];

    #[test]
    fn prints_ktap_sorted_with_diagnostics() {
        let mut out = String::new();
        let s = run(&TESTS, None, &mut out);
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
            "KTAP version 1\n1..3\nok 1 a::passes\n# first line\n# second line\nnot ok 2 b::fails\n\
             ok 3 c::skips # SKIP no disk\n# totals: pass:1 fail:1 skip:1\n"
        );
    }

    #[test]
    fn filter_selects_by_name() {
        let mut out = String::new();
        let s = run(&TESTS, Some("a::"), &mut out);
        assert_eq!(
            s,
            Summary {
                passed: 1,
                failed: 0,
                skipped: 0
            }
        );
        assert!(out.contains("1..1\nok 1 a::passes\n"));
    }

    // The macro must expand on the host too, where the registry is simply not collected.
    crate::ktest!(expands_on_the_host, { Ok(()) });
}
