//! `/proc/meminfo`-format reports. Owns the format (label padded to 16 columns, value in kB right
//! aligned in 8, as Linux's `show_val_kb`); the numbers come from whoever owns the memory.

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
        for (label, bytes) in &self.lines {
            let key = format!("{label}:");
            out.push_str(&format!("{key:<16}{:>8} kB\n", bytes / 1024));
        }
        out
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
