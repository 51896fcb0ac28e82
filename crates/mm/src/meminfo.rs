//! `/proc/meminfo`-format reports. Owns the format (label padded to 16 columns, value in kB right
//! aligned in 8, as Linux's `show_val_kb`); the numbers come from whoever owns the memory.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// One report: (label, bytes) in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub lines: Vec<(&'static str, u64)>,
}

impl MemInfo {
    pub fn push(&mut self, label: &'static str, bytes: u64) {
        self.lines.push((label, bytes));
    }

    /// The report as Linux prints it: `MemTotal:        1015840 kB`.
    pub fn format(&self) -> String {
        let mut out = String::new();
        for &(label, bytes) in &self.lines {
            out.push_str(&format!("{}\n", Line(label, bytes)));
        }
        out
    }
}

/// One line of the report, formatted without allocating (for reports made when memory is out).
pub struct Line(pub &'static str, pub u64);

impl core::fmt::Display for Line {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Line(label, bytes) = *self;
        // The label and its colon fill 16 columns, as `{key:<16}` with key = "label:".
        let pad = 15usize.saturating_sub(label.len());
        write!(f, "{label}:{:pad$}{:>8} kB", "", bytes / 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_proc_meminfo() {
        let mut m = MemInfo::default();
        m.push("MemTotal", 1024 * 1015840);
        m.push("MemFree", 0);
        m.push("Shmem", 4096);
        assert_eq!(
            m.format(),
            "MemTotal:        1015840 kB\nMemFree:               0 kB\nShmem:                 4 kB\n"
        );
    }
}
