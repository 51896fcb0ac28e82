//! The kernel's own jobs, registered in the image for `run=`: `demo`, `selftest` (the in-kernel
//! self-test runner, which stays in the kernel as KUnit does), `bench` and `memstress`. Only the
//! registrations live here (their files forbid unsafe code, which a linker section counts as).

pub mod bench;
pub mod demo;
pub mod memstress;
pub mod selftest;

crate::register_app!(demo::JOB);
crate::register_app!(selftest::JOB);
crate::register_app!(bench::JOB);
crate::register_app!(memstress::JOB);

#[cfg(test)]
mod tests {
    use crate::runtime::check_options;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_jobs_bad_options_stop_it_and_others_are_ignored() {
        let (errors, warnings) = check_options(
            &super::memstress::JOB,
            &params(&[
                ("memstress.size", "64M"),
                ("memstress.passes", "0"),
                ("memstress.passes", "abc"),
                ("memstress.seed", "abc"),
                ("memstress.size", "18446744073709551615"),
                ("memstress.colour", "red"),
                ("nosuch.x", "1"),
            ]),
        );
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("memstress.passes=0: expected"));
        assert!(errors[2].starts_with("memstress.seed=abc: expected"));
        assert!(errors[3].starts_with("memstress.size=18446744073709551615: expected"));
        assert!(errors[4].contains("size, pattern, passes, seed"));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("unknown option"));
        let (errors, _) = check_options(&super::demo::JOB, &params(&[("demo.x", "1")]));
        assert_eq!(errors, ["demo.x: job demo takes no options"]);
    }
}
