//! Exception Syndrome Register decoding, in words a person can act on: the exception class, and
//! for aborts the fault kind, the translation level and the access. Pure: no registers are read
//! here, so the host tests check the decoding (Arm ARM D17.2.37, ESR_EL1).
#![forbid(unsafe_code)]

use alloc::string::String;
use core::fmt;

/// The exception class field, ESR[31:26].
pub fn class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// The instruction-specific syndrome, ESR[24:0].
pub fn iss(esr: u64) -> u32 {
    (esr & 0x1ff_ffff) as u32
}

pub mod ec {
    pub const UNKNOWN: u8 = 0x00;
    pub const WFX: u8 = 0x01;
    pub const FP_ACCESS: u8 = 0x07;
    pub const ILLEGAL_STATE: u8 = 0x0e;
    pub const SVC64: u8 = 0x15;
    pub const HVC64: u8 = 0x16;
    pub const SMC64: u8 = 0x17;
    pub const SYSREG: u8 = 0x18;
    pub const INSN_ABORT_LOWER: u8 = 0x20;
    pub const INSN_ABORT_SAME: u8 = 0x21;
    pub const PC_ALIGNMENT: u8 = 0x22;
    pub const DATA_ABORT_LOWER: u8 = 0x24;
    pub const DATA_ABORT_SAME: u8 = 0x25;
    pub const SP_ALIGNMENT: u8 = 0x26;
    pub const FP_EXCEPTION: u8 = 0x2c;
    pub const SERROR: u8 = 0x2f;
    pub const BREAKPOINT_LOWER: u8 = 0x30;
    pub const BREAKPOINT_SAME: u8 = 0x31;
    pub const STEP_LOWER: u8 = 0x32;
    pub const STEP_SAME: u8 = 0x33;
    pub const WATCHPOINT_LOWER: u8 = 0x34;
    pub const WATCHPOINT_SAME: u8 = 0x35;
    pub const BRK64: u8 = 0x3c;
}

/// The exception class in words.
pub fn class_name(ec: u8) -> &'static str {
    match ec {
        ec::UNKNOWN => "Unknown reason (undefined instruction)",
        ec::WFX => "Trapped WFI/WFE",
        ec::FP_ACCESS => "Trapped FP/SIMD access",
        ec::ILLEGAL_STATE => "Illegal execution state",
        ec::SVC64 => "SVC from AArch64",
        ec::HVC64 => "HVC from AArch64",
        ec::SMC64 => "SMC from AArch64",
        ec::SYSREG => "Trapped system register access",
        ec::INSN_ABORT_LOWER => "Instruction Abort from a lower EL",
        ec::INSN_ABORT_SAME => "Instruction Abort from the current EL",
        ec::PC_ALIGNMENT => "PC alignment fault",
        ec::DATA_ABORT_LOWER => "Data Abort from a lower EL",
        ec::DATA_ABORT_SAME => "Data Abort from the current EL",
        ec::SP_ALIGNMENT => "SP alignment fault",
        ec::FP_EXCEPTION => "Floating-point exception",
        ec::SERROR => "SError interrupt",
        ec::BREAKPOINT_LOWER | ec::BREAKPOINT_SAME => "Breakpoint",
        ec::STEP_LOWER | ec::STEP_SAME => "Software step",
        ec::WATCHPOINT_LOWER | ec::WATCHPOINT_SAME => "Watchpoint",
        ec::BRK64 => "BRK instruction",
        _ => "Reserved or unhandled exception class",
    }
}

/// What kind of memory access an abort was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Execute => "execute",
        }
    }
}

/// The fault status code of an abort, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    AddressSize { level: i8 },
    Translation { level: i8 },
    AccessFlag { level: i8 },
    Permission { level: i8 },
    Alignment,
    SyncExternal,
    SyncExternalOnWalk { level: i8 },
    TlbConflict,
    Other(u8),
}

impl FaultKind {
    pub fn from_fsc(fsc: u8) -> FaultKind {
        let level = (fsc & 0b11) as i8;
        match fsc {
            0x00..=0x03 => FaultKind::AddressSize { level },
            0x04..=0x07 => FaultKind::Translation { level },
            0x09..=0x0b => FaultKind::AccessFlag { level },
            0x0d..=0x0f => FaultKind::Permission { level },
            0x10 => FaultKind::SyncExternal,
            0x14..=0x17 => FaultKind::SyncExternalOnWalk { level },
            0x21 => FaultKind::Alignment,
            0x30 => FaultKind::TlbConflict,
            other => FaultKind::Other(other),
        }
    }

    pub fn level(self) -> Option<i8> {
        match self {
            FaultKind::AddressSize { level }
            | FaultKind::Translation { level }
            | FaultKind::AccessFlag { level }
            | FaultKind::Permission { level }
            | FaultKind::SyncExternalOnWalk { level } => Some(level),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::AddressSize { .. } => "address size fault",
            FaultKind::Translation { .. } => "translation fault",
            FaultKind::AccessFlag { .. } => "access flag fault",
            FaultKind::Permission { .. } => "permission fault",
            FaultKind::Alignment => "alignment fault",
            FaultKind::SyncExternal => "synchronous external abort",
            FaultKind::SyncExternalOnWalk { .. } => "synchronous external abort on table walk",
            FaultKind::TlbConflict => "TLB conflict abort",
            FaultKind::Other(_) => "other fault",
        }
    }
}

/// An abort's syndrome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort {
    pub kind: FaultKind,
    pub access: Access,
    /// FAR holds the faulting address (FnV clear).
    pub far_valid: bool,
}

/// Decodes an instruction or data abort; `None` for other classes.
/// The page-fault fast path's question: is this a data abort at the current EL for a
/// translation fault (any level) with a valid FAR, and if so, was it a write? Decided from the
/// raw syndrome with a few masks; [`abort`] gives the full decoding.
#[inline(always)]
pub fn data_translation_fault(esr: u64) -> Option<bool> {
    let iss = esr & 0x01ff_ffff;
    let translation = iss & 0x3c == 0x04; // DFSC 0b0001LL
    let far_valid = iss & (1 << 10) == 0;
    (class(esr) == ec::DATA_ABORT_SAME && translation && far_valid)
        .then_some(iss & (1 << 6) != 0 && iss & (1 << 8) == 0)
}

pub fn abort(esr: u64) -> Option<Abort> {
    let ec = class(esr);
    let iss = iss(esr);
    let kind = FaultKind::from_fsc((iss & 0x3f) as u8);
    let far_valid = iss & (1 << 10) == 0;
    let access = match ec {
        ec::INSN_ABORT_LOWER | ec::INSN_ABORT_SAME => Access::Execute,
        ec::DATA_ABORT_LOWER | ec::DATA_ABORT_SAME => {
            // WnR; cache maintenance (CM) reports as a write but is not one of ours.
            if iss & (1 << 6) != 0 && iss & (1 << 8) == 0 {
                Access::Write
            } else {
                Access::Read
            }
        }
        _ => return None,
    };
    Some(Abort {
        kind,
        access,
        far_valid,
    })
}

/// One line: class, and for aborts the fault, level and access; for BRK the comment. A
/// `Display` value, so the exception report can print it without allocating.
pub struct Describe(pub u64);

impl fmt::Display for Describe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let esr = self.0;
        let ec = class(esr);
        write!(f, "{} (EC {:#04x})", class_name(ec), ec)?;
        if let Some(a) = abort(esr) {
            write!(f, ": {}", a.kind.name())?;
            if let Some(level) = a.kind.level() {
                write!(f, " at level {level}")?;
            }
            if let FaultKind::Other(code) = a.kind {
                write!(f, " (status {code:#04x})")?;
            }
            write!(f, ", {} access", a.access.as_str())?;
            if !a.far_valid {
                write!(f, ", FAR not valid")?;
            }
        } else if ec == ec::BRK64 {
            write!(f, ": comment {:#x}", iss(esr) & 0xffff)?;
        } else if matches!(ec, ec::SVC64 | ec::HVC64 | ec::SMC64) {
            write!(f, ": immediate {:#x}", iss(esr) & 0xffff)?;
        }
        Ok(())
    }
}

/// `Describe` as a string (tests, logs).
pub fn describe(esr: u64) -> String {
    alloc::format!("{}", Describe(esr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_agrees_with_the_full_decoding() {
        for ec in [
            ec::DATA_ABORT_SAME,
            ec::DATA_ABORT_LOWER,
            ec::INSN_ABORT_SAME,
            0x15,
        ] {
            for iss in [
                0u64, 0x04, 0x05, 0x06, 0x07, 0x0b, 0x0f, 0x44, 0x47, 0x147, 0x407, 0x08, 0x10,
            ] {
                let esr = (ec as u64) << 26 | 1 << 25 | iss;
                let full = abort(esr).and_then(|a| {
                    (matches!(a.kind, FaultKind::Translation { .. })
                        && a.far_valid
                        && ec == ec::DATA_ABORT_SAME)
                        .then_some(a.access == Access::Write)
                });
                assert_eq!(data_translation_fault(esr), full, "esr {esr:#x}");
            }
        }
    }

    #[test]
    fn decodes_a_write_translation_fault() {
        // EC 0x25, IL, WnR, DFSC 0x07: level 3 translation fault on a write.
        let esr = 0x9600_0047;
        assert_eq!(class(esr), ec::DATA_ABORT_SAME);
        let a = abort(esr).unwrap();
        assert_eq!(a.kind, FaultKind::Translation { level: 3 });
        assert_eq!(a.access, Access::Write);
        assert!(a.far_valid);
        assert_eq!(
            describe(esr),
            "Data Abort from the current EL (EC 0x25): translation fault at level 3, write access"
        );
    }

    #[test]
    fn decodes_permission_and_access_flag_faults() {
        assert_eq!(
            abort(0x9600_004f).unwrap().kind,
            FaultKind::Permission { level: 3 }
        );
        assert_eq!(
            abort(0x9200_000a).unwrap().kind,
            FaultKind::AccessFlag { level: 2 }
        );
        assert_eq!(abort(0x9200_000a).unwrap().access, Access::Read);
        let insn = abort(0x8600_000f).unwrap();
        assert_eq!(insn.access, Access::Execute);
        assert_eq!(insn.kind, FaultKind::Permission { level: 3 });
    }

    #[test]
    fn cache_maintenance_is_not_a_write() {
        // WnR and CM both set: a DC instruction faulted.
        assert_eq!(abort(0x9600_0147).unwrap().access, Access::Read);
    }

    #[test]
    fn fnv_clears_far_validity() {
        assert!(!abort(0x9600_0410).unwrap().far_valid);
        assert!(describe(0x9600_0410).contains("FAR not valid"));
    }

    #[test]
    fn names_other_classes() {
        assert_eq!(
            describe(0xf200_0042),
            "BRK instruction (EC 0x3c): comment 0x42"
        );
        assert_eq!(
            describe(0x0200_0000),
            "Unknown reason (undefined instruction) (EC 0x00)"
        );
        assert_eq!(
            describe(0x5600_0000),
            "SVC from AArch64 (EC 0x15): immediate 0x0"
        );
        assert!(abort(0xf200_0042).is_none());
    }
}
