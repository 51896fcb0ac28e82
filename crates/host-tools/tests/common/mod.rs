//! Shared helpers of the host integration tests: a flattened device tree *writer* (so tests can
//! build exactly the tree they need, well formed or not), access to the real trees in
//! `$FERRITE_DTB_DIR`, and a small permissive JSON reader for `dtb-info`'s output.
//!
//! Every test file includes this module with `mod common;` and uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use ferrite_addr::{PhysAddr, PhysRange};
use ferrite_machine::{BootRanges, Machine};

// ---------------------------------------------------------------------------------------------
// Tokens, header layout and raw word access.
// ---------------------------------------------------------------------------------------------

pub const FDT_MAGIC: u32 = 0xd00d_feed;
pub const FDT_BEGIN_NODE: u32 = 1;
pub const FDT_END_NODE: u32 = 2;
pub const FDT_PROP: u32 = 3;
pub const FDT_NOP: u32 = 4;
pub const FDT_END: u32 = 9;
pub const HEADER_SIZE: usize = 40;

/// Byte offsets of the header fields.
pub mod hdr {
    pub const MAGIC: usize = 0;
    pub const TOTALSIZE: usize = 4;
    pub const OFF_STRUCT: usize = 8;
    pub const OFF_STRINGS: usize = 12;
    pub const OFF_RSVMAP: usize = 16;
    pub const VERSION: usize = 20;
    pub const LAST_COMP_VERSION: usize = 24;
    pub const BOOT_CPUID: usize = 28;
    pub const SIZE_STRINGS: usize = 32;
    pub const SIZE_STRUCT: usize = 36;
}

pub fn get_be32(blob: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(blob[at..at + 4].try_into().unwrap())
}

pub fn put_be32(blob: &mut [u8], at: usize, value: u32) {
    blob[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Big-endian bytes of 32-bit cells.
pub fn cells(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// One number as `count` cells (the low 32 × `count` bits, most significant first).
pub fn number(value: u64, count: u32) -> Vec<u8> {
    (0..count)
        .rev()
        .flat_map(|i| ((value.checked_shr(32 * i).unwrap_or(0)) as u32).to_be_bytes())
        .collect()
}

/// Entries of several numbers each, number `i` of every entry written as `shape[i]` cells: `reg`
/// is shape `[ac, sc]`, `ranges` is `[child ac, parent ac, sc]`.
pub fn entries(shape: &[u32], list: &[&[u64]]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in list {
        assert_eq!(
            entry.len(),
            shape.len(),
            "entry {entry:x?} does not have shape {shape:?}"
        );
        for (&value, &count) in entry.iter().zip(shape) {
            out.extend(number(value, count));
        }
    }
    out
}

/// A NUL-terminated string.
pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A string list (`compatible`).
pub fn cstrs(list: &[&str]) -> Vec<u8> {
    list.iter().flat_map(|s| cstr(s)).collect()
}

// ---------------------------------------------------------------------------------------------
// The writer.
// ---------------------------------------------------------------------------------------------

/// The strings block, with each name stored once.
#[derive(Debug, Clone, Default)]
pub struct Strings {
    pub bytes: Vec<u8>,
    offsets: HashMap<String, u32>,
}

impl Strings {
    pub fn offset(&mut self, name: &str) -> u32 {
        if let Some(&off) = self.offsets.get(name) {
            return off;
        }
        let off = self.bytes.len() as u32;
        self.bytes.extend(cstr(name));
        self.offsets.insert(name.to_string(), off);
        off
    }
}

/// Writes a structure block token by token. Tests of malformed trees use it directly to write
/// sequences a `Node` cannot express.
#[derive(Debug, Clone, Default)]
pub struct StructWriter {
    pub bytes: Vec<u8>,
    pub strings: Strings,
}

impl StructWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn word(&mut self, w: u32) -> &mut Self {
        self.bytes.extend(w.to_be_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    pub fn begin(&mut self, name: &str) -> &mut Self {
        self.word(FDT_BEGIN_NODE);
        self.bytes.extend(cstr(name));
        self.pad();
        self
    }

    pub fn end_node(&mut self) -> &mut Self {
        self.word(FDT_END_NODE)
    }

    pub fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let nameoff = self.strings.offset(name);
        self.prop_raw(value.len() as u32, nameoff, value)
    }

    /// A property with a length field and name offset of the caller's choosing.
    pub fn prop_raw(&mut self, len: u32, nameoff: u32, value: &[u8]) -> &mut Self {
        self.word(FDT_PROP).word(len).word(nameoff);
        self.bytes.extend(value);
        self.pad();
        self
    }

    pub fn nop(&mut self) -> &mut Self {
        self.word(FDT_NOP)
    }

    pub fn end(&mut self) -> &mut Self {
        self.word(FDT_END)
    }

    /// A whole blob around this structure block.
    pub fn blob(&self, memreserve: &[(u64, u64)]) -> Vec<u8> {
        assemble(memreserve, &self.bytes, &self.strings.bytes)
    }
}

/// A version 17 blob: header, reservation map (8-aligned, zero-terminated), structure block,
/// strings block, in that order, with `totalsize` the exact length.
pub fn assemble(memreserve: &[(u64, u64)], structure: &[u8], strings: &[u8]) -> Vec<u8> {
    let off_rsvmap = HEADER_SIZE; // 40: already 8-aligned
    let off_struct = off_rsvmap + 16 * (memreserve.len() + 1);
    let off_strings = off_struct + structure.len();
    let total = off_strings + strings.len();
    let mut blob = vec![0u8; HEADER_SIZE];
    put_be32(&mut blob, hdr::MAGIC, FDT_MAGIC);
    put_be32(&mut blob, hdr::TOTALSIZE, total as u32);
    put_be32(&mut blob, hdr::OFF_STRUCT, off_struct as u32);
    put_be32(&mut blob, hdr::OFF_STRINGS, off_strings as u32);
    put_be32(&mut blob, hdr::OFF_RSVMAP, off_rsvmap as u32);
    put_be32(&mut blob, hdr::VERSION, 17);
    put_be32(&mut blob, hdr::LAST_COMP_VERSION, 16);
    put_be32(&mut blob, hdr::BOOT_CPUID, 0);
    put_be32(&mut blob, hdr::SIZE_STRINGS, strings.len() as u32);
    put_be32(&mut blob, hdr::SIZE_STRUCT, structure.len() as u32);
    for &(addr, size) in memreserve.iter().chain([(0, 0)].iter()) {
        blob.extend(addr.to_be_bytes());
        blob.extend(size.to_be_bytes());
    }
    blob.extend(structure);
    blob.extend(strings);
    assert_eq!(blob.len(), total);
    blob
}

/// What a node holds, in the order it is written.
#[derive(Debug, Clone)]
pub enum Item {
    Prop(String, Vec<u8>),
    Child(Node),
    /// An `FDT_NOP` token here.
    Nop,
}

/// A node to write. Builder methods take and return `self`.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub name: String,
    pub items: Vec<Item>,
}

impl Node {
    pub fn new(name: &str) -> Self {
        Node {
            name: name.into(),
            items: Vec::new(),
        }
    }

    /// The root node with the given `#address-cells` and `#size-cells`.
    pub fn root(ac: u32, sc: u32) -> Self {
        Node::new("")
            .u32("#address-cells", ac)
            .u32("#size-cells", sc)
    }

    pub fn prop(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.items
            .push(Item::Prop(name.into(), value.as_ref().to_vec()));
        self
    }

    /// A property without a value (`no-map`, `ranges`, `dma-coherent`).
    pub fn flag(self, name: &str) -> Self {
        self.prop(name, [])
    }

    pub fn u32(self, name: &str, value: u32) -> Self {
        self.prop(name, value.to_be_bytes())
    }

    pub fn u32s(self, name: &str, values: &[u32]) -> Self {
        self.prop(name, cells(values))
    }

    pub fn u64(self, name: &str, value: u64) -> Self {
        self.prop(name, value.to_be_bytes())
    }

    pub fn string(self, name: &str, value: &str) -> Self {
        self.prop(name, cstr(value))
    }

    pub fn strings(self, name: &str, list: &[&str]) -> Self {
        self.prop(name, cstrs(list))
    }

    /// `reg` with `ac` address cells and `sc` size cells per entry.
    pub fn reg(self, ac: u32, sc: u32, list: &[(u64, u64)]) -> Self {
        let list: Vec<[u64; 2]> = list.iter().map(|&(a, s)| [a, s]).collect();
        let refs: Vec<&[u64]> = list.iter().map(|e| &e[..]).collect();
        self.prop("reg", entries(&[ac, sc], &refs))
    }

    /// `ranges` or `dma-ranges` entries (child address, parent address, size) of the given shape.
    pub fn ranges(self, name: &str, shape: [u32; 3], list: &[(u64, u64, u64)]) -> Self {
        let list: Vec<[u64; 3]> = list.iter().map(|&(c, p, s)| [c, p, s]).collect();
        let refs: Vec<&[u64]> = list.iter().map(|e| &e[..]).collect();
        self.prop(name, entries(&shape, &refs))
    }

    pub fn child(mut self, node: Node) -> Self {
        self.items.push(Item::Child(node));
        self
    }

    pub fn nop(mut self) -> Self {
        self.items.push(Item::Nop);
        self
    }

    fn write(&self, w: &mut StructWriter, nops: bool) {
        w.begin(&self.name);
        for item in &self.items {
            if nops {
                w.nop();
            }
            match item {
                Item::Prop(name, value) => {
                    w.prop(name, value);
                }
                Item::Child(node) => node.write(w, nops),
                Item::Nop => {
                    w.nop();
                }
            }
        }
        if nops {
            w.nop();
        }
        w.end_node();
    }
}

/// A whole tree to write.
#[derive(Debug, Clone)]
pub struct Fdt {
    pub root: Node,
    pub memreserve: Vec<(u64, u64)>,
    /// Put an `FDT_NOP` before every property, every subnode and every `END_NODE`, and around
    /// the root (what `fdtput -d` and overlays leave behind).
    pub nops: bool,
}

impl Fdt {
    pub fn new(root: Node) -> Self {
        Fdt {
            root,
            memreserve: Vec::new(),
            nops: false,
        }
    }

    pub fn memreserve(mut self, addr: u64, size: u64) -> Self {
        self.memreserve.push((addr, size));
        self
    }

    pub fn with_nops(mut self) -> Self {
        self.nops = true;
        self
    }

    pub fn writer(&self) -> StructWriter {
        let mut w = StructWriter::new();
        if self.nops {
            w.nop();
        }
        self.root.write(&mut w, self.nops);
        if self.nops {
            w.nop();
        }
        w.end();
        w
    }

    pub fn build(&self) -> Vec<u8> {
        self.writer().blob(&self.memreserve)
    }
}

// ---------------------------------------------------------------------------------------------
// Describing built trees.
// ---------------------------------------------------------------------------------------------

pub fn range(base: u64, size: u64) -> PhysRange {
    PhysRange::new(PhysAddr::new(base), size)
}

pub fn machine_with(fdt: &Fdt, boot: BootRanges) -> Machine {
    let blob = fdt.build();
    match Machine::from_blob(&blob, boot) {
        Ok(m) => m,
        Err(e) => panic!("the tree should describe, but: {e}"),
    }
}

pub fn machine(fdt: &Fdt) -> Machine {
    machine_with(fdt, BootRanges::default())
}

/// A GIC v2 at the QEMU virt addresses, phandle 1, three interrupt cells.
pub fn gic_node() -> Node {
    Node::new("intc@8000000")
        .string("compatible", "arm,cortex-a15-gic")
        .u32("#interrupt-cells", 3)
        .flag("interrupt-controller")
        .reg(2, 2, &[(0x800_0000, 0x1_0000), (0x801_0000, 0x1_0000)])
        .u32("phandle", 1)
}

pub fn memory_node(ac: u32, sc: u32, banks: &[(u64, u64)]) -> Node {
    let unit = banks.first().map_or(0, |b| b.0);
    Node::new(&format!("memory@{unit:x}"))
        .string("device_type", "memory")
        .reg(ac, sc, banks)
}

/// Trees made with the writer, for tests that want some without `$FERRITE_DTB_DIR`: a QEMU
/// virt look-alike, a Raspberry Pi 3 look-alike (bus addresses, dma-ranges, CMA), one with
/// 1/1 cells and static reservations, and a minimal one.
pub fn sample_trees() -> Vec<(String, Fdt)> {
    let virt = Fdt::new(
        Node::root(2, 2)
            .u32("interrupt-parent", 1)
            .string("model", "linux,dummy-virt")
            .string("compatible", "linux,dummy-virt")
            .child(
                Node::new("psci")
                    .strings("compatible", &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])
                    .string("method", "hvc"),
            )
            .child(memory_node(2, 2, &[(0x4000_0000, 0x4000_0000)]))
            .child(memory_node(2, 2, &[(0x1_0000_0000, 0x4000_0000)]))
            .child(gic_node())
            .child(
                Node::new("virtio_mmio@a000000")
                    .flag("dma-coherent")
                    .u32s("interrupts", &[0, 0x10, 1])
                    .reg(2, 2, &[(0xa00_0000, 0x200)])
                    .string("compatible", "virtio,mmio"),
            )
            .child(
                Node::new("virtio_mmio@a000200")
                    .u32s("interrupts", &[0, 0x11, 1])
                    .reg(2, 2, &[(0xa00_0200, 0x200)])
                    .string("compatible", "virtio,mmio"),
            )
            .child(
                Node::new("apb-pclk")
                    .u32("#clock-cells", 0)
                    .u32("clock-frequency", 24_000_000)
                    .u32("phandle", 2),
            )
            .child(
                Node::new("pl011@9000000")
                    .strings("compatible", &["arm,pl011", "arm,primecell"])
                    .reg(2, 2, &[(0x900_0000, 0x1000)])
                    .u32s("clocks", &[2, 2])
                    .strings("clock-names", &["uartclk", "apb_pclk"]),
            )
            .child(
                Node::new("cpus")
                    .u32("#address-cells", 1)
                    .u32("#size-cells", 0)
                    .child(
                        Node::new("cpu@0")
                            .string("device_type", "cpu")
                            .string("enable-method", "psci")
                            .u32("reg", 0),
                    )
                    .child(
                        Node::new("cpu@1")
                            .string("device_type", "cpu")
                            .string("enable-method", "psci")
                            .u32("reg", 1),
                    ),
            )
            .child(
                Node::new("chosen")
                    .string("stdout-path", "/pl011@9000000")
                    .string("bootargs", "run=demo loglevel=7")
                    .u64("linux,initrd-start", 0x4800_0000)
                    .u64("linux,initrd-end", 0x4810_0000),
            ),
    );
    let pi = Fdt::new(
        Node::root(1, 1)
            .string("model", "Raspberry Pi 3 Model B")
            .strings("compatible", &["raspberrypi,3-model-b", "brcm,bcm2837"])
            .child(Node::new("aliases").string("serial1", "/soc/serial@7e215040"))
            .child(Node::new("chosen").string("stdout-path", "serial1:115200n8"))
            .child(
                Node::new("reserved-memory")
                    .u32("#address-cells", 1)
                    .u32("#size-cells", 1)
                    .flag("ranges")
                    .child(
                        Node::new("linux,cma")
                            .string("compatible", "shared-dma-pool")
                            .u32("size", 0x400_0000)
                            .flag("reusable")
                            .flag("linux,cma-default"),
                    ),
            )
            .child(
                Node::new("soc")
                    .string("compatible", "simple-bus")
                    .u32("#address-cells", 1)
                    .u32("#size-cells", 1)
                    .ranges(
                        "ranges",
                        [1, 1, 1],
                        &[
                            (0x7e00_0000, 0x3f00_0000, 0x100_0000),
                            (0x4000_0000, 0x4000_0000, 0x1000),
                        ],
                    )
                    .ranges("dma-ranges", [1, 1, 1], &[(0xc000_0000, 0, 0x3f00_0000)])
                    .child(
                        Node::new("serial@7e201000")
                            .strings("compatible", &["arm,pl011", "arm,primecell"])
                            .reg(1, 1, &[(0x7e20_1000, 0x200)]),
                    )
                    .child(
                        Node::new("serial@7e215040")
                            .string("compatible", "brcm,bcm2835-aux-uart")
                            .reg(1, 1, &[(0x7e21_5040, 0x40)]),
                    ),
            )
            .child(
                Node::new("cpus")
                    .u32("#address-cells", 1)
                    .u32("#size-cells", 0)
                    .child(
                        Node::new("cpu@0")
                            .string("device_type", "cpu")
                            .string("enable-method", "spin-table")
                            .u32("reg", 0),
                    ),
            )
            .child(memory_node(1, 1, &[(0, 0x4000_0000)])),
    )
    .memreserve(0, 0x1000);
    let small = Fdt::new(
        Node::root(1, 1)
            .child(memory_node(
                1,
                1,
                &[(0x8000_0000, 0x1000_0000), (0x9000_0000, 0x1000_0000)],
            ))
            .child(
                Node::new("reserved-memory")
                    .u32("#address-cells", 1)
                    .u32("#size-cells", 1)
                    .flag("ranges")
                    .child(
                        Node::new("fw@80000000")
                            .reg(1, 1, &[(0x8000_0000, 0x10_0000)])
                            .flag("no-map"),
                    )
                    .child(
                        Node::new("pool")
                            .string("compatible", "shared-dma-pool")
                            .u32("size", 0x20_0000)
                            .u32("alignment", 0x10_0000)
                            .u32s("alloc-ranges", &[0x8000_0000, 0x1000_0000]),
                    ),
            )
            .child(
                Node::new("chosen")
                    .u32("linux,initrd-start", 0x8100_0000)
                    .u32("linux,initrd-end", 0x8120_0000),
            ),
    )
    .memreserve(0x8800_0000, 0x1000)
    .memreserve(0x7000_0000, 0x1000);
    let minimal = Fdt::new(Node::root(2, 1).child(memory_node(2, 1, &[(0x4000_0000, 0x800_0000)])));
    vec![
        ("built-virt".into(), virt),
        ("built-pi".into(), pi),
        ("built-small".into(), small),
        ("built-minimal".into(), minimal),
    ]
}

// ---------------------------------------------------------------------------------------------
// Real trees.
// ---------------------------------------------------------------------------------------------

/// Whether the real trees must be there (`make test` sets `FERRITE_REQUIRE_TREES=1`): then a
/// missing directory or tree fails the test instead of skipping its cases.
pub fn trees_required() -> bool {
    std::env::var_os("FERRITE_REQUIRE_TREES").is_some_and(|v| v == "1")
}

/// Reports that real trees are missing: a failure when they are required, else a line saying
/// which cases were SKIPPED (never a silent pass).
pub fn missing_trees(what: &str) {
    if trees_required() {
        panic!("{what}, and FERRITE_REQUIRE_TREES=1 (make test) requires them: run scripts/dtb-corpus DIR");
    }
    // Straight to stderr: the test harness hides what a passing test prints with eprintln!.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what}; the cases that need them did not run (make test runs them)"
    );
}

/// `$FERRITE_DTB_DIR`, if set and a directory; says the real trees are skipped otherwise (or
/// fails, when they are required).
pub fn dtb_dir() -> Option<PathBuf> {
    match std::env::var_os("FERRITE_DTB_DIR") {
        Some(dir) if PathBuf::from(&dir).is_dir() => Some(PathBuf::from(dir)),
        Some(dir) => {
            missing_trees(&format!(
                "FERRITE_DTB_DIR={} is not a directory",
                dir.to_string_lossy()
            ));
            None
        }
        None => {
            missing_trees("FERRITE_DTB_DIR is not set");
            None
        }
    }
}

/// Every `*.dtb` in `$FERRITE_DTB_DIR`, sorted by name (none, with a note, without the dir).
pub fn real_tree_files() -> Vec<(String, PathBuf)> {
    let Some(dir) = dtb_dir() else {
        return Vec::new();
    };
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_string();
            name.ends_with(".dtb").then_some((name, path))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        missing_trees(&format!("there are no .dtb files in {}", dir.display()));
    }
    files
}

pub fn real_trees() -> Vec<(String, Vec<u8>)> {
    real_tree_files()
        .into_iter()
        .map(|(name, path)| {
            let blob =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (name, blob)
        })
        .collect()
}

/// The path of one named real tree, if present (SKIPPED, or a failure when required, otherwise).
pub fn real_tree_path(name: &str) -> Option<PathBuf> {
    let path = dtb_dir()?.join(name);
    if path.is_file() {
        Some(path)
    } else {
        missing_trees(&format!("{name} is not in FERRITE_DTB_DIR"));
        None
    }
}

/// A blob cut down to what its header says is used: QEMU pads its trees to 1 MiB, which would
/// make every mutation test case copy and scan a megabyte of zeros.
pub fn compact(blob: &[u8]) -> Vec<u8> {
    if blob.len() < HEADER_SIZE || get_be32(blob, 0) != FDT_MAGIC {
        return blob.to_vec();
    }
    let end_of =
        |off: usize, size: usize| get_be32(blob, off) as usize + get_be32(blob, size) as usize;
    let used =
        end_of(hdr::OFF_STRUCT, hdr::SIZE_STRUCT).max(end_of(hdr::OFF_STRINGS, hdr::SIZE_STRINGS));
    let total = get_be32(blob, hdr::TOTALSIZE) as usize;
    if used >= total || used > blob.len() {
        return blob.to_vec();
    }
    let mut out = blob[..used].to_vec();
    put_be32(&mut out, hdr::TOTALSIZE, used as u32);
    out
}

// ---------------------------------------------------------------------------------------------
// A small JSON reader (dtb-info's output only needs objects, arrays, strings, integers, booleans
// and null; anything else is an error).
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's text.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            text,
            s: text.as_bytes(),
            at: 0,
        };
        let value = p.value()?;
        p.ws();
        if p.at != p.s.len() {
            return Err(format!("trailing data at byte {}", p.at));
        }
        Ok(value)
    }

    /// The member `key` of an object (panics, naming the key, when absent).
    pub fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(members) => members
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no key {key:?} in {self}")),
            other => panic!("{other} is not an object (looking up {key:?})"),
        }
    }

    pub fn at(&self, index: usize) -> &Json {
        match self {
            Json::Arr(items) => items
                .get(index)
                .unwrap_or_else(|| panic!("no item {index} in {self}")),
            other => panic!("{other} is not an array"),
        }
    }

    pub fn items(&self) -> &[Json] {
        match self {
            Json::Arr(items) => items,
            other => panic!("{other} is not an array"),
        }
    }

    pub fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("{other} is not a string"),
        }
    }

    pub fn u64(&self) -> u64 {
        match self {
            Json::Num(n) => n.parse().unwrap_or_else(|_| panic!("{n} is not a u64")),
            other => panic!("{other} is not a number"),
        }
    }

    pub fn is_null(&self) -> bool {
        *self == Json::Null
    }
}

impl std::fmt::Display for Json {
    /// Compact JSON, e.g. `[["0x0","0x1000"]]`, which tests compare against.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Num(n) => f.write_str(n),
            Json::Str(s) => write!(f, "{s:?}"),
            Json::Arr(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Obj(members) => {
                f.write_str("{")?;
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k:?}:{v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

struct JsonParser<'a> {
    text: &'a str,
    s: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.at).is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", c as char, self.at))
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at byte {}", self.at))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.at) {
            None => Err("unexpected end".into()),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("expected , or ] at byte {}", self.at)),
                    }
                }
            }
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                self.ws();
                if self.s.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(Json::Obj(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.eat(b':')?;
                    members.push((key, self.value()?));
                    self.ws();
                    match self.s.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Json::Obj(members));
                        }
                        _ => return Err(format!("expected , or }} at byte {}", self.at)),
                    }
                }
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.at;
                self.at += 1;
                while self.s.get(self.at).is_some_and(|c| c.is_ascii_digit()) {
                    self.at += 1;
                }
                Ok(Json::Num(
                    String::from_utf8_lossy(&self.s[start..self.at]).into_owned(),
                ))
            }
            Some(c) => Err(format!("unexpected {:?} at byte {}", *c as char, self.at)),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let c = self.text[self.at..]
                .chars()
                .next()
                .ok_or("unterminated string")?;
            self.at += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = *self.s.get(self.at).ok_or("unterminated escape")?;
                    self.at += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let hex = self.s.get(self.at..self.at + 4).ok_or("short \\u escape")?;
                            let code = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                16,
                            )
                            .map_err(|e| e.to_string())?;
                            self.at += 4;
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        other => return Err(format!("bad escape \\{}", other as char)),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

/// Hex text of a number the way `dtb-info` writes it.
pub fn hex(v: u64) -> String {
    format!("{v:#x}")
}
