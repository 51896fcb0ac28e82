//! The application's environment: its name (what `run=` selected) and its own command-line
//! options, `<name>.<key>=<value>` (declared with [`AppOption`](crate::AppOption) and checked
//! by the boot before `main` runs, so a value read here is one the option accepts).
//!
//! ```ignore
//! // make run BOOTARGS="run=hello hello.size=1G -- input.txt"
//! let size = ferrite::env::option("size").unwrap_or("64M");
//! let files = ferrite::env::args(); // ["input.txt"]
//! ferrite::println!("{} runs with size={size}", ferrite::env::app_name());
//! ```
#![forbid(unsafe_code)]

/// The running application's name: what `run=` selected, or the image's only application (empty
/// before the boot chose one).
pub fn app_name() -> &'static str {
    ferrite_kernel::runtime::current().map_or("", |job| job.name)
}

/// The value of the application's option `key` (given as `<name>.<key>=<value>`), if the command
/// line has it; the last one wins.
pub fn option(key: &str) -> Option<&'static str> {
    let k = ferrite_kernel::kernel::get()?;
    let name = app_name();
    k.options
        .job_params
        .iter()
        .rev()
        .find(|(full, _)| {
            full.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('.'))
                == Some(key)
        })
        .map(|(_, value)| value.as_str())
}

/// The application's arguments: the words of the command line after `--`, which the kernel does
/// not read (as Linux hands them to init).
pub fn args() -> &'static [alloc::string::String] {
    ferrite_kernel::kernel::get().map_or(&[], |k| k.options.args.as_slice())
}
