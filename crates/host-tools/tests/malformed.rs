//! Generated malformed trees: each is refused with the defect it has, as a value (never a panic),
//! and `dtb-info` refuses each with one line naming it and a non-zero status.

mod common;

use common::*;
use ferrite_machine::{BootRanges, FdtDefect, Machine, MachineError};

use FdtDefect as D;
use MachineError::{BadProperty, Malformed};

/// A malformed blob, the error it must give and a word of the message naming the defect.
struct Case {
    name: String,
    blob: Vec<u8>,
    expect: fn(&MachineError) -> bool,
    word: &'static str,
}

fn case(name: &str, blob: Vec<u8>, expect: fn(&MachineError) -> bool, word: &'static str) -> Case {
    Case {
        name: name.into(),
        blob,
        expect,
        word,
    }
}

/// A well-formed tree the header and structure cases damage.
fn good() -> Fdt {
    Fdt::new(
        Node::root(2, 2)
            .string("model", "good")
            .child(memory_node(2, 2, &[(0x4000_0000, 0x4000_0000)]))
            .child(Node::new("chosen").string("bootargs", "console=ttyAMA0")),
    )
    .memreserve(0x4000_0000, 0x1000)
}

fn patched(at: usize, value: u32) -> Vec<u8> {
    let mut blob = good().build();
    put_be32(&mut blob, at, value);
    blob
}

/// A blob from a hand-written structure block.
fn structure(write: impl FnOnce(&mut StructWriter)) -> Vec<u8> {
    let mut w = StructWriter::new();
    write(&mut w);
    w.blob(&[])
}

/// A tree whose one node `/bus` has the property `name` = `value`.
fn bus_prop(name: &str, value: &[u8]) -> Vec<u8> {
    Fdt::new(Node::root(2, 2).child(Node::new("bus").prop(name, value))).build()
}

fn cases() -> Vec<Case> {
    let good_blob = good().build();
    let len = good_blob.len();
    let mut all = Vec::new();

    // The header.
    for cut in [
        0,
        1,
        3,
        4,
        7,
        8,
        20,
        39,
        40,
        41,
        56,
        len / 2,
        len - 4,
        len - 1,
    ] {
        all.push(case(
            &format!("truncated at {cut}"),
            good_blob[..cut].to_vec(),
            |e| matches!(e, Malformed(D::Truncated { .. })),
            "truncated",
        ));
    }
    all.push(case(
        "bad magic",
        patched(hdr::MAGIC, 0xd00d_fee1),
        |e| *e == Malformed(D::BadMagic(0xd00d_fee1)),
        "bad magic",
    ));
    all.push(case(
        "bad magic, short",
        b"<?xml version".to_vec(),
        |e| matches!(e, Malformed(D::BadMagic(_))),
        "bad magic",
    ));
    all.push(case(
        "totalsize larger than the file",
        patched(hdr::TOTALSIZE, len as u32 + 1),
        |e| matches!(e, Malformed(D::Truncated { what: "blob", .. })),
        "truncated",
    ));
    all.push(case(
        "totalsize smaller than a header",
        patched(hdr::TOTALSIZE, 20),
        |e| matches!(e, Malformed(D::Truncated { .. })),
        "truncated",
    ));
    all.push(case(
        "version 16",
        patched(hdr::VERSION, 16),
        |e| matches!(e, Malformed(D::UnsupportedVersion { version: 16, .. })),
        "unsupported version 16 (last compatible 16); need version 17",
    ));
    let off_struct = get_be32(&good_blob, hdr::OFF_STRUCT);
    let off_strings = get_be32(&good_blob, hdr::OFF_STRINGS);
    all.push(case(
        "structure size past the end",
        patched(hdr::SIZE_STRUCT, len as u32 - off_struct + 4),
        |e| {
            matches!(
                e,
                Malformed(D::BlockOutOfBounds {
                    block: "structure",
                    ..
                })
            )
        },
        "past the end",
    ));
    all.push(case(
        "structure offset past the end",
        patched(hdr::OFF_STRUCT, len as u32 + 8),
        |e| {
            matches!(
                e,
                Malformed(D::BlockOutOfBounds {
                    block: "structure",
                    ..
                })
            )
        },
        "past the end",
    ));
    all.push(case(
        "structure offset inside the header",
        patched(hdr::OFF_STRUCT, 8),
        |e| {
            matches!(
                e,
                Malformed(D::BlockOutOfBounds {
                    block: "structure",
                    ..
                })
            )
        },
        "past the end",
    ));
    all.push(case(
        "strings size past the end",
        patched(hdr::SIZE_STRINGS, len as u32 - off_strings + 1),
        |e| {
            matches!(
                e,
                Malformed(D::BlockOutOfBounds {
                    block: "strings",
                    ..
                })
            )
        },
        "past the end",
    ));
    all.push(case(
        "strings offset near 2^32",
        patched(hdr::OFF_STRINGS, 0xffff_fff0),
        |e| {
            matches!(
                e,
                Malformed(D::BlockOutOfBounds {
                    block: "strings",
                    ..
                })
            )
        },
        "past the end",
    ));
    all.push(case(
        "misaligned reservation map",
        patched(hdr::OFF_RSVMAP, 44),
        |e| matches!(e, Malformed(D::Misaligned { .. })),
        "misaligned",
    ));
    all.push(case(
        "unterminated reservation map",
        patched(hdr::OFF_RSVMAP, (len as u32 - 8) & !7),
        |e| *e == Malformed(D::UnterminatedReservations),
        "no terminating",
    ));

    // The structure block.
    all.push(case(
        "bad string offset",
        structure(|w| {
            w.begin("");
            let past = w.strings.bytes.len() as u32 + 100;
            w.prop_raw(4, past, &[0, 0, 0, 1]).end_node().end();
        }),
        |e| matches!(e, Malformed(D::BadStringOffset { .. })),
        "string offset",
    ));
    all.push(case(
        "unterminated string in the strings block",
        {
            let mut blob = good().build();
            let size = get_be32(&blob, hdr::SIZE_STRINGS);
            put_be32(&mut blob, hdr::SIZE_STRINGS, size - 1);
            blob
        },
        |e| matches!(e, Malformed(D::BadStringOffset { .. })),
        "string offset",
    ));
    all.push(case(
        "unterminated node name",
        structure(|w| {
            w.begin("").word(FDT_BEGIN_NODE);
            w.bytes.extend(b"serial@0");
        }),
        |e| matches!(e, Malformed(D::UnterminatedName { .. })),
        "not NUL-terminated",
    ));
    all.push(case(
        "node name not UTF-8",
        structure(|w| {
            w.begin("").word(FDT_BEGIN_NODE);
            w.bytes.extend(b"\xff\xfe\0\0");
            w.end_node().end_node().end();
        }),
        |e| matches!(e, Malformed(D::NameNotUtf8 { .. })),
        "not UTF-8",
    ));
    all.push(case(
        "missing END_NODE",
        structure(|w| {
            w.begin("").begin("chosen").end_node().end();
        }),
        |e| *e == Malformed(D::UnterminatedNode { depth: 1 }),
        "inside a node",
    ));
    all.push(case(
        "structure block ends inside nodes",
        structure(|w| {
            w.begin("").begin("a").begin("b");
        }),
        |e| *e == Malformed(D::UnterminatedNode { depth: 3 }),
        "inside a node",
    ));
    all.push(case(
        "missing END",
        structure(|w| {
            w.begin("").end_node();
        }),
        |e| *e == Malformed(D::MissingEnd),
        "no END",
    ));
    for token in [0u32, 5, 7, 0x0300_0000, 0xffff_ffff] {
        all.push(Case {
            name: format!("bad token {token:#x}"),
            blob: structure(|w| {
                w.begin("").word(token).end_node().end();
            }),
            expect: |e| matches!(e, Malformed(D::BadToken { offset: 8, .. })),
            word: "bad token",
        });
    }
    all.push(case(
        "END_NODE without a node",
        structure(|w| {
            w.begin("").end_node().end_node().end();
        }),
        |e| matches!(e, Malformed(D::UnbalancedEndNode { .. })),
        "without a node",
    ));
    all.push(case(
        "property before the root",
        structure(|w| {
            w.prop("model", b"x\0").begin("").end_node().end();
        }),
        |e| *e == Malformed(D::RootNotFirst),
        "root node",
    ));
    all.push(case(
        "property after the root",
        structure(|w| {
            w.begin("").end_node().prop("model", b"x\0").end();
        }),
        |e| matches!(e, Malformed(D::TrailingData { .. })),
        "after the END",
    ));
    for len in [0x100u32, 0xffff_fff8, 0xffff_ffff] {
        all.push(Case {
            name: format!("property length {len:#x} past the end"),
            blob: structure(|w| {
                w.begin("");
                let nameoff = w.strings.offset("model");
                w.prop_raw(len, nameoff, b"abc\0").end_node().end();
            }),
            expect: |e| matches!(e, Malformed(D::PropertyPastEnd { .. })),
            word: "runs past",
        });
    }
    all.push(case(
        "property header cut by the end of the block",
        structure(|w| {
            w.begin("").word(FDT_PROP).word(4);
        }),
        |e| matches!(e, Malformed(D::PropertyPastEnd { .. })),
        "runs past",
    ));
    all.push(case(
        "property after a subnode",
        structure(|w| {
            w.begin("")
                .begin("chosen")
                .end_node()
                .prop("model", b"late\0")
                .end_node()
                .end();
        }),
        |e| matches!(e, Malformed(D::PropertyAfterSubnode { .. })),
        "after a subnode",
    ));
    all.push(case(
        "nesting too deep",
        structure(|w| {
            for _ in 0..40 {
                w.begin("n");
            }
            for _ in 0..40 {
                w.end_node();
            }
            w.end();
        }),
        |e| matches!(e, Malformed(D::TooDeep { .. })),
        "deeper than",
    ));
    all.push(case(
        "second root",
        structure(|w| {
            w.begin("").end_node().begin("").end_node().end();
        }),
        |e| matches!(e, Malformed(D::SecondRoot { .. })),
        "second root",
    ));

    // Cells.
    all.push(case(
        "reg not whole cells",
        Fdt::new(
            Node::root(2, 2).child(
                Node::new("memory@0")
                    .string("device_type", "memory")
                    .u32s("reg", &[0, 0x4000_0000, 0]),
            ),
        )
        .build(),
        |e| matches!(e, BadProperty { property: "reg", path, .. } if path == "/memory@0"),
        "reg of /memory@0",
    ));
    all.push(case(
        "reg of a device not whole cells",
        Fdt::new(Node::root(1, 1).child(Node::new("serial@0").prop("reg", [0, 0, 0x10, 0, 0, 0])))
            .build(),
        |e| {
            matches!(
                e,
                BadProperty {
                    property: "reg",
                    ..
                }
            )
        },
        "reg of /serial@0",
    ));
    all.push(case(
        "ranges not whole cells",
        Fdt::new(
            Node::root(1, 1).child(
                Node::new("soc")
                    .u32("#address-cells", 1)
                    .u32("#size-cells", 1)
                    .u32s("ranges", &[0x7e00_0000, 0x3f00_0000, 0x100_0000, 0]),
            ),
        )
        .build(),
        |e| matches!(e, BadProperty { property: "ranges", path, .. } if path == "/soc"),
        "ranges of /soc",
    ));
    all.push(case(
        "dma-ranges not whole cells",
        Fdt::new(
            Node::root(1, 1).child(
                Node::new("soc")
                    .u32("#address-cells", 2)
                    .u32("#size-cells", 1)
                    .u32s("dma-ranges", &[0, 0, 0]),
            ),
        )
        .build(),
        |e| {
            matches!(
                e,
                BadProperty {
                    property: "dma-ranges",
                    ..
                }
            )
        },
        "dma-ranges of /soc",
    ));
    all.push(case(
        "#address-cells = 0 above a reg",
        Fdt::new(
            Node::root(1, 1).child(
                Node::new("bus")
                    .u32("#address-cells", 0)
                    .u32("#size-cells", 1)
                    .child(Node::new("dev").u32("reg", 0x1000)),
            ),
        )
        .build(),
        |e| matches!(e, BadProperty { property: "reg", path, .. } if path == "/bus/dev"),
        "#address-cells is 0",
    ));
    all.push(case(
        "#address-cells = 9",
        bus_prop("#address-cells", &9u32.to_be_bytes()),
        |e| {
            matches!(
                e,
                Malformed(D::AbsurdCells {
                    name: "#address-cells",
                    value: 9,
                    ..
                })
            )
        },
        "absurd #address-cells",
    ));
    all.push(case(
        "#size-cells = 0xffffffff",
        bus_prop("#size-cells", &u32::MAX.to_be_bytes()),
        |e| {
            matches!(
                e,
                Malformed(D::AbsurdCells {
                    name: "#size-cells",
                    ..
                })
            )
        },
        "absurd #size-cells",
    ));
    all.push(case(
        "#size-cells of 2 bytes",
        bus_prop("#size-cells", &[0, 1]),
        |e| {
            matches!(
                e,
                Malformed(D::BadCellsLength {
                    name: "#size-cells",
                    len: 2,
                    ..
                })
            )
        },
        "#size-cells",
    ));
    all.push(case(
        "#address-cells without a value",
        bus_prop("#address-cells", &[]),
        |e| {
            matches!(
                e,
                Malformed(D::BadCellsLength {
                    name: "#address-cells",
                    len: 0,
                    ..
                })
            )
        },
        "#address-cells",
    ));
    all.push(case(
        "#size-cells = 3 above a reg",
        Fdt::new(
            Node::root(1, 1).child(
                Node::new("bus")
                    .u32("#address-cells", 1)
                    .u32("#size-cells", 3)
                    .child(Node::new("dev").u32s("reg", &[0, 0, 0, 0])),
            ),
        )
        .build(),
        |e| {
            matches!(
                e,
                BadProperty {
                    property: "reg",
                    ..
                }
            )
        },
        "#size-cells",
    ));
    all.push(case(
        "reserved-memory size not its cells",
        Fdt::new(
            Node::root(1, 1).child(
                Node::new("reserved-memory")
                    .u32("#address-cells", 1)
                    .u32("#size-cells", 1)
                    .flag("ranges")
                    .child(Node::new("pool").u64("size", 0x100_0000)),
            ),
        )
        .build(),
        |e| {
            matches!(
                e,
                BadProperty {
                    property: "size",
                    ..
                }
            )
        },
        "size of /reserved-memory/pool",
    ));
    all
}

#[test]
fn every_malformed_tree_is_refused_with_its_defect() {
    let mut failures = Vec::new();
    for c in cases() {
        match Machine::from_blob(&c.blob, BootRanges::default()) {
            Ok(_) => failures.push(format!("{}: accepted", c.name)),
            Err(e) if !(c.expect)(&e) => failures.push(format!("{}: wrong error {e:?}", c.name)),
            Err(e) => {
                let line = e.to_string();
                if !line.contains(c.word) || line.contains('\n') {
                    failures.push(format!("{}: message {line:?} lacks {:?}", c.name, c.word));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_good_tree_and_its_nesting_limit_are_accepted() {
    Machine::from_blob(&good().build(), BootRanges::default()).expect("the undamaged tree");
    // 32 levels (the root and 31 below it) are allowed; the 33rd is not.
    let nested = |levels: usize| {
        structure(|w| {
            w.begin("");
            for _ in 1..levels {
                w.begin("n");
            }
            for _ in 0..levels {
                w.end_node();
            }
            w.end();
        })
    };
    Machine::from_blob(&nested(32), BootRanges::default()).expect("32 levels");
    assert!(matches!(
        Machine::from_blob(&nested(33), BootRanges::default()),
        Err(Malformed(D::TooDeep { .. }))
    ));
}

#[test]
fn trailing_bytes_after_totalsize_are_ignored() {
    let mut blob = good().build();
    blob.extend([0xffu8; 64]);
    Machine::from_blob(&blob, BootRanges::default()).expect("bytes past totalsize are not read");
}

#[test]
fn dtb_info_refuses_each_with_one_line() {
    use std::process::Command;

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("malformed");
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for (i, c) in cases().into_iter().enumerate() {
        let file = dir.join(format!("case-{i}.dtb"));
        std::fs::write(&file, &c.blob).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_dtb-info"))
            .arg(&file)
            .output()
            .expect("running dtb-info");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        if out.status.success() {
            failures.push(format!("{}: exit status 0", c.name));
        } else if out.status.code() != Some(1) {
            failures.push(format!(
                "{}: exit status {:?} (a crash?)",
                c.name, out.status
            ));
        }
        if lines.len() != 1 || !lines[0].contains(c.word) || stderr.contains("panicked") {
            failures.push(format!(
                "{}: stderr {stderr:?} (want one line with {:?})",
                c.name, c.word
            ));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{}: printed to stdout", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
