//! Structural validation of a flattened device tree blob, before anything else reads it.
//!
//! The `fdt` crate navigates a blob quickly but trusts it: a truncated block, a bad string offset or
//! an unbalanced node would make it panic or read out of bounds. This module walks every byte of the
//! header, the reservation map and the structure block with checked arithmetic and refuses the blob
//! with one clear error naming the defect. It must never index without a bound check, never loop
//! without progress and never allocate: it runs before the kernel has a heap worth the name.

use core::fmt;

pub const FDT_MAGIC: u32 = 0xd00d_feed;
pub const HEADER_SIZE: usize = 40;
/// Deeper trees than this are refused; real trees are under 10 levels deep and the `fdt` crate
/// keeps 64 levels of parents.
pub const MAX_DEPTH: usize = 32;
/// Cell counts above this are absurd (the largest in use is 3, for PCI).
pub const MAX_CELLS: u32 = 4;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// What is wrong with a blob. Each variant prints as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdtDefect {
    Truncated {
        needed: u64,
        have: u64,
        what: &'static str,
    },
    BadMagic(u32),
    UnsupportedVersion {
        version: u32,
        last_compatible: u32,
    },
    BlockOutOfBounds {
        block: &'static str,
        offset: u32,
        size: u32,
        total: u32,
    },
    Misaligned {
        what: &'static str,
        offset: u32,
    },
    UnterminatedReservations,
    BadToken {
        token: u32,
        offset: usize,
    },
    UnterminatedName {
        offset: usize,
    },
    NameNotUtf8 {
        offset: usize,
    },
    PropertyPastEnd {
        offset: usize,
        len: u32,
    },
    BadStringOffset {
        offset: usize,
        nameoff: u32,
        strings_size: u32,
    },
    PropertyAfterSubnode {
        offset: usize,
    },
    UnbalancedEndNode {
        offset: usize,
    },
    TooDeep {
        offset: usize,
    },
    UnterminatedNode {
        depth: usize,
    },
    MissingEnd,
    SecondRoot {
        offset: usize,
    },
    RootNotFirst,
    TrailingData {
        offset: usize,
    },
    BadCellsLength {
        name: &'static str,
        len: u32,
        offset: usize,
    },
    AbsurdCells {
        name: &'static str,
        value: u32,
        offset: usize,
    },
}

impl fmt::Display for FdtDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FdtDefect::*;
        match self {
            Truncated { needed, have, what } => {
                write!(f, "truncated {what}: needs {needed} bytes, only {have} present")
            }
            BadMagic(m) => write!(f, "bad magic {m:#010x} (expected {FDT_MAGIC:#010x})"),
            UnsupportedVersion { version, last_compatible } => write!(
                f,
                "unsupported version {version} (last compatible {last_compatible}); need version 17"
            ),
            BlockOutOfBounds { block, offset, size, total } => write!(
                f,
                "{block} block at offset {offset:#x} size {size:#x} extends past the end of the blob ({total:#x} bytes)"
            ),
            Misaligned { what, offset } => write!(f, "{what} at offset {offset:#x} is misaligned"),
            UnterminatedReservations => {
                write!(f, "memory reservation map has no terminating zero entry")
            }
            BadToken { token, offset } => {
                write!(f, "bad token {token:#010x} at structure offset {offset:#x}")
            }
            UnterminatedName { offset } => {
                write!(f, "node name at structure offset {offset:#x} is not NUL-terminated")
            }
            NameNotUtf8 { offset } => write!(f, "name at structure offset {offset:#x} is not UTF-8"),
            PropertyPastEnd { offset, len } => write!(
                f,
                "property at structure offset {offset:#x} with length {len} runs past the structure block"
            ),
            BadStringOffset { offset, nameoff, strings_size } => write!(
                f,
                "property at structure offset {offset:#x} names string offset {nameoff:#x} outside the strings block ({strings_size:#x} bytes) or unterminated"
            ),
            PropertyAfterSubnode { offset } => {
                write!(f, "property after a subnode at structure offset {offset:#x}")
            }
            UnbalancedEndNode { offset } => {
                write!(f, "END_NODE without a node at structure offset {offset:#x}")
            }
            TooDeep { offset } => {
                write!(f, "nodes nested deeper than {MAX_DEPTH} at structure offset {offset:#x}")
            }
            UnterminatedNode { depth } => write!(
                f,
                "structure block ends inside a node ({depth} unterminated node(s))"
            ),
            MissingEnd => write!(f, "structure block has no END token"),
            SecondRoot { offset } => write!(f, "second root node at structure offset {offset:#x}"),
            RootNotFirst => write!(f, "structure block does not start with the root node"),
            TrailingData { offset } => {
                write!(f, "data after the END token at structure offset {offset:#x}")
            }
            BadCellsLength { name, len, offset } => write!(
                f,
                "{name} at structure offset {offset:#x} is {len} bytes, not one 32-bit cell"
            ),
            AbsurdCells { name, value, offset } => write!(
                f,
                "absurd {name} = {value} at structure offset {offset:#x} (at most {MAX_CELLS})"
            ),
        }
    }
}

/// The header fields a reader needs, all checked against the blob's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdtHeader {
    pub total_size: u32,
    pub off_struct: u32,
    pub size_struct: u32,
    pub off_strings: u32,
    pub size_strings: u32,
    pub off_rsvmap: u32,
    pub version: u32,
    pub boot_cpuid: u32,
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn be64(data: &[u8], at: usize) -> Option<u64> {
    let hi = be32(data, at)? as u64;
    let lo = be32(data, at.checked_add(4)?)? as u64;
    Some(hi << 32 | lo)
}

/// Reads the total size a blob claims, to know how many bytes to look at. Only the magic and the
/// size are checked here.
pub fn claimed_size(first_bytes: &[u8]) -> Result<u32, FdtDefect> {
    let magic = be32(first_bytes, 0).ok_or(FdtDefect::Truncated {
        needed: 8,
        have: first_bytes.len() as u64,
        what: "header",
    })?;
    if magic != FDT_MAGIC {
        return Err(FdtDefect::BadMagic(magic));
    }
    be32(first_bytes, 4).ok_or(FdtDefect::Truncated {
        needed: 8,
        have: first_bytes.len() as u64,
        what: "header",
    })
}

/// Checks the whole blob. On success every structure the `fdt` crate walks is in bounds, every
/// token is known, nodes balance, names and property names are terminated UTF-8, and the cell-count
/// properties are single sane cells.
pub fn validate(blob: &[u8]) -> Result<FdtHeader, FdtDefect> {
    let have = blob.len() as u64;
    if blob.len() < HEADER_SIZE {
        // A blob too short for a header may still have a wrong magic: say that first.
        if let Some(m) = be32(blob, 0) {
            if m != FDT_MAGIC {
                return Err(FdtDefect::BadMagic(m));
            }
        }
        return Err(FdtDefect::Truncated {
            needed: HEADER_SIZE as u64,
            have,
            what: "header",
        });
    }
    let field = |i: usize| be32(blob, i * 4).unwrap_or(0);
    let magic = field(0);
    if magic != FDT_MAGIC {
        return Err(FdtDefect::BadMagic(magic));
    }
    let header = FdtHeader {
        total_size: field(1),
        off_struct: field(2),
        off_strings: field(3),
        off_rsvmap: field(4),
        version: field(5),
        boot_cpuid: field(7),
        size_strings: field(8),
        size_struct: field(9),
    };
    let last_compatible = field(6);
    if (header.total_size as u64) > have {
        return Err(FdtDefect::Truncated {
            needed: header.total_size as u64,
            have,
            what: "blob",
        });
    }
    if (header.total_size as usize) < HEADER_SIZE {
        return Err(FdtDefect::Truncated {
            needed: HEADER_SIZE as u64,
            have: header.total_size as u64,
            what: "header (totalsize)",
        });
    }
    if header.version < 17 || last_compatible > 17 {
        return Err(FdtDefect::UnsupportedVersion {
            version: header.version,
            last_compatible,
        });
    }
    let total = header.total_size;
    let check_block = |block: &'static str, offset: u32, size: u32| {
        if offset as u64 + size as u64 > total as u64 || (offset as usize) < HEADER_SIZE {
            Err(FdtDefect::BlockOutOfBounds {
                block,
                offset,
                size,
                total,
            })
        } else {
            Ok(())
        }
    };
    check_block("structure", header.off_struct, header.size_struct)?;
    check_block("strings", header.off_strings, header.size_strings)?;
    if !header.off_struct.is_multiple_of(4) || !header.size_struct.is_multiple_of(4) {
        return Err(FdtDefect::Misaligned {
            what: "structure block",
            offset: header.off_struct,
        });
    }
    if !header.off_rsvmap.is_multiple_of(8) {
        return Err(FdtDefect::Misaligned {
            what: "reservation map",
            offset: header.off_rsvmap,
        });
    }
    let blob = &blob[..total as usize];
    check_reservations(blob, header.off_rsvmap as usize)?;
    let strings = &blob[header.off_strings as usize..][..header.size_strings as usize];
    let structure = &blob[header.off_struct as usize..][..header.size_struct as usize];
    check_structure(structure, strings)?;
    Ok(header)
}

fn check_reservations(blob: &[u8], mut at: usize) -> Result<(), FdtDefect> {
    loop {
        let (Some(addr), Some(size)) = (be64(blob, at), be64(blob, at + 8)) else {
            return Err(FdtDefect::UnterminatedReservations);
        };
        if addr == 0 && size == 0 {
            return Ok(());
        }
        at += 16;
    }
}

fn check_name(bytes: &[u8], offset: usize) -> Result<usize, FdtDefect> {
    let len = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(FdtDefect::UnterminatedName { offset })?;
    core::str::from_utf8(&bytes[..len]).map_err(|_| FdtDefect::NameNotUtf8 { offset })?;
    Ok(len)
}

fn check_structure(s: &[u8], strings: &[u8]) -> Result<(), FdtDefect> {
    let mut at = 0usize;
    let mut depth = 0usize;
    let mut root_seen = false;
    // Whether the innermost open node already had a subnode (then no more properties may follow).
    let mut had_child = [false; MAX_DEPTH + 1];
    loop {
        let Some(token) = be32(s, at) else {
            return Err(if depth > 0 {
                FdtDefect::UnterminatedNode { depth }
            } else {
                FdtDefect::MissingEnd
            });
        };
        let token_at = at;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                if depth == 0 {
                    if root_seen {
                        return Err(FdtDefect::SecondRoot { offset: token_at });
                    }
                    root_seen = true;
                } else {
                    had_child[depth] = true;
                }
                if depth >= MAX_DEPTH {
                    return Err(FdtDefect::TooDeep { offset: token_at });
                }
                let len = check_name(&s[at..], at)?;
                at = (at + len + 1 + 3) & !3;
                depth += 1;
                had_child[depth] = false;
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(FdtDefect::UnbalancedEndNode { offset: token_at });
                }
                depth -= 1;
            }
            FDT_PROP => {
                if depth == 0 {
                    return Err(if root_seen {
                        FdtDefect::TrailingData { offset: token_at }
                    } else {
                        FdtDefect::RootNotFirst
                    });
                }
                if had_child[depth] {
                    return Err(FdtDefect::PropertyAfterSubnode { offset: token_at });
                }
                let (Some(len), Some(nameoff)) = (be32(s, at), be32(s, at + 4)) else {
                    return Err(FdtDefect::PropertyPastEnd {
                        offset: token_at,
                        len: 0,
                    });
                };
                let value_at = at + 8;
                let end = value_at
                    .checked_add(len as usize)
                    .filter(|&e| e <= s.len())
                    .ok_or(FdtDefect::PropertyPastEnd {
                        offset: token_at,
                        len,
                    })?;
                let bad_string = FdtDefect::BadStringOffset {
                    offset: token_at,
                    nameoff,
                    strings_size: strings.len() as u32,
                };
                let name_bytes = strings.get(nameoff as usize..).ok_or(bad_string.clone())?;
                let name_len = name_bytes.iter().position(|&b| b == 0).ok_or(bad_string)?;
                let name = core::str::from_utf8(&name_bytes[..name_len])
                    .map_err(|_| FdtDefect::NameNotUtf8 { offset: token_at })?;
                if name == "#address-cells" || name == "#size-cells" {
                    let key = if name == "#address-cells" {
                        "#address-cells"
                    } else {
                        "#size-cells"
                    };
                    if len != 4 {
                        return Err(FdtDefect::BadCellsLength {
                            name: key,
                            len,
                            offset: token_at,
                        });
                    }
                    let value = be32(s, value_at).unwrap_or(0);
                    if value > MAX_CELLS {
                        return Err(FdtDefect::AbsurdCells {
                            name: key,
                            value,
                            offset: token_at,
                        });
                    }
                }
                at = (end + 3) & !3;
            }
            FDT_NOP => {}
            FDT_END => {
                if depth > 0 {
                    return Err(FdtDefect::UnterminatedNode { depth });
                }
                if !root_seen {
                    return Err(FdtDefect::RootNotFirst);
                }
                return Ok(());
            }
            other => {
                return Err(FdtDefect::BadToken {
                    token: other,
                    offset: token_at,
                })
            }
        }
        // NOPs may come before the root (libfdt and Linux skip them there too).
        if depth == 0 && !root_seen && token != FDT_NOP {
            return Err(FdtDefect::RootNotFirst);
        }
    }
}
