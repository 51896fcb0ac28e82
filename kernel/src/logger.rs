//! The `log` backend: each record goes to the console with a Linux-style timestamp from the generic
//! timer (`[    1.234567]`). Owns the level filter; must not allocate (it runs before and during
//! memory trouble).
#![forbid(unsafe_code)]

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::arch::aarch64::timer;

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let us = timer::uptime_us();
        let prefix = match record.level() {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
            Level::Debug => "debug: ",
            Level::Trace => "trace: ",
        };
        crate::console::print(format_args!(
            "[{:5}.{:06}] {}{}\n",
            us / 1_000_000,
            us % 1_000_000,
            prefix,
            record.args()
        ));
    }

    fn flush(&self) {
        crate::console::flush();
    }
}

pub fn init(level: LevelFilter) {
    // A second initialisation only changes the level.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
