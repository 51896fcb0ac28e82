//! Turns a `DeviceTree` into a `Machine`, following what Linux does with the same tree. Owns the
//! rules (which nodes are RAM, how reservations are placed and clipped, how addresses translate);
//! must never fail on a semantic oddity that Linux tolerates: those become warnings.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::tree::{read_cells, DeviceTree};
use super::*;
use crate::addr::PAGE_SIZE;

/// Minimum alignment of a reusable DMA pool (CMA): one 4 MiB pageblock, as Linux uses.
const CMA_MIN_ALIGN: u64 = 4 << 20;

const UART_COMPATIBLES: &[(&str, UartKind)] = &[
    ("arm,pl011", UartKind::Pl011),
    ("brcm,bcm2835-aux-uart", UartKind::MiniUart),
];

const GIC_COMPATIBLES: &[(&str, u8)] = &[
    ("arm,gic-v3", 3),
    ("arm,gic-400", 2),
    ("arm,cortex-a15-gic", 2),
    ("arm,cortex-a9-gic", 2),
    ("arm,cortex-a7-gic", 2),
];

fn bad(tree: &DeviceTree, node: usize, property: &'static str, reason: String) -> MachineError {
    MachineError::BadProperty {
        path: tree.path(node),
        property,
        reason,
    }
}

/// `ranges` minus every range in `holes`.
fn subtract(ranges: &[PhysRange], holes: &[PhysRange]) -> Vec<PhysRange> {
    let mut free: Vec<PhysRange> = ranges.to_vec();
    for hole in holes {
        let mut next = Vec::new();
        for r in free {
            if r.intersect(hole).is_none() {
                next.push(r);
                continue;
            }
            if hole.base > r.base {
                next.push(PhysRange::new(r.base, hole.base.as_u64() - r.base.as_u64()));
            }
            if hole.end() < r.end() {
                let base = hole.end() as u64;
                next.push(PhysRange::new(
                    PhysAddr::new(base),
                    (r.end() - base as u128) as u64,
                ));
            }
        }
        free = next;
    }
    free
}

/// Parts of `range` that are RAM.
fn clip_to_ram(range: PhysRange, memory: &[PhysRange]) -> Vec<PhysRange> {
    memory
        .iter()
        .filter_map(|bank| bank.intersect(&range))
        .collect()
}

/// A node's `reg` as (address, size) pairs in its parent's address space, lengths checked.
fn reg(tree: &DeviceTree, node: usize) -> Result<Vec<(u64, u64)>, MachineError> {
    let Some(value) = tree.prop(node, "reg") else {
        return Ok(Vec::new());
    };
    let Some(parent) = tree.node(node).parent else {
        return Ok(Vec::new());
    };
    let (ac, sc) = (tree.address_cells(parent), tree.size_cells(parent));
    if ac == 0 {
        return Err(bad(
            tree,
            node,
            "reg",
            "parent's #address-cells is 0".into(),
        ));
    }
    if sc > 2 {
        return Err(bad(
            tree,
            node,
            "reg",
            format!("absurd #size-cells = {sc} in parent"),
        ));
    }
    entries(tree, node, "reg", value, &[ac, sc])
        .map(|list| list.into_iter().map(|e| (e[0], e[1])).collect())
}

/// Splits a property into entries of the given cell counts, refusing lengths that are not whole.
fn entries(
    tree: &DeviceTree,
    node: usize,
    property: &'static str,
    value: &[u8],
    cells: &[u32],
) -> Result<Vec<[u64; 3]>, MachineError> {
    let entry_bytes: usize = cells.iter().map(|&c| c as usize * 4).sum();
    if entry_bytes == 0 {
        return Err(bad(tree, node, property, "entries of zero cells".into()));
    }
    if !value.len().is_multiple_of(entry_bytes) {
        let shape: Vec<String> = cells.iter().map(|c| c.to_string()).collect();
        return Err(bad(
            tree,
            node,
            property,
            format!(
                "length {} is not a whole number of ({})-cell entries",
                value.len(),
                shape.join("+")
            ),
        ));
    }
    let mut out = Vec::with_capacity(value.len() / entry_bytes);
    for chunk in value.chunks_exact(entry_bytes) {
        let mut entry = [0u64; 3];
        let mut at = 0;
        for (i, &c) in cells.iter().enumerate() {
            entry[i] = read_cells(&chunk[at..], c);
            at += c as usize * 4;
        }
        out.push(entry);
    }
    Ok(out)
}

/// The (child, parent, size) entries of a `ranges`-like property of `node`.
fn range_entries(
    tree: &DeviceTree,
    node: usize,
    property: &'static str,
) -> Result<Option<Vec<[u64; 3]>>, MachineError> {
    let Some(value) = tree.prop(node, property) else {
        return Ok(None);
    };
    let Some(parent) = tree.node(node).parent else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let (cac, pac, sc) = (
        tree.address_cells(node),
        tree.address_cells(parent),
        tree.size_cells(node),
    );
    if cac == 0 || pac == 0 {
        return Err(bad(tree, node, property, "#address-cells is 0".into()));
    }
    if sc > 2 {
        return Err(bad(
            tree,
            node,
            property,
            format!("absurd #size-cells = {sc}"),
        ));
    }
    entries(tree, node, property, value, &[cac, pac, sc]).map(Some)
}

fn map_through(entries: &[[u64; 3]], addr: u64) -> Option<u64> {
    entries.iter().find_map(|&[child, parent, size]| {
        let offset = addr.checked_sub(child)?;
        (offset < size)
            .then(|| parent.checked_add(offset))
            .flatten()
    })
}

/// Translates an address in the space `bus` gives its children up to a CPU physical address,
/// through each ancestor's `property` (`ranges` or `dma-ranges`). A missing `ranges` means the bus
/// is not memory mapped; a missing `dma-ranges` means 1:1, as in Linux.
fn translate_from(
    tree: &DeviceTree,
    mut bus: usize,
    mut addr: u64,
    property: &'static str,
) -> Option<u64> {
    while let Some(up) = tree.node(bus).parent {
        match range_entries(tree, bus, property).ok()? {
            None if property == "ranges" => return None,
            None => {}
            Some(list) if list.is_empty() => {}
            Some(list) => addr = map_through(&list, addr)?,
        }
        bus = up;
    }
    Some(addr)
}

/// A node's `reg` entries as CPU physical ranges (untranslatable entries left out).
fn reg_cpu(tree: &DeviceTree, node: usize) -> Result<Vec<PhysRange>, MachineError> {
    let parent = match tree.node(node).parent {
        Some(p) => p,
        None => return Ok(Vec::new()),
    };
    Ok(reg(tree, node)?
        .into_iter()
        .filter_map(|(addr, size)| {
            translate_from(tree, parent, addr, "ranges")
                .map(|a| PhysRange::new(PhysAddr::new(a), size))
        })
        .collect())
}

/// Checks every `reg`, `ranges` and `dma-ranges` in the tree for whole-cell lengths and sane
/// cell counts, so a malformed property is reported wherever it is.
fn check_address_properties(tree: &DeviceTree) -> Result<(), MachineError> {
    for node in tree.all() {
        reg(tree, node)?;
        range_entries(tree, node, "ranges")?;
        range_entries(tree, node, "dma-ranges")?;
    }
    Ok(())
}

/// Describes the machine. Fails only on properties that cannot be read at all.
pub fn describe(tree: &DeviceTree, boot: BootRanges) -> Result<Machine, MachineError> {
    check_address_properties(tree)?;
    let root = tree.root();
    let mut m = Machine {
        model: tree.prop_str(root, "model").unwrap_or("").into(),
        compatible: tree
            .prop_strs(root, "compatible")
            .map(String::from)
            .collect(),
        boot,
        ..Machine::default()
    };

    describe_memory(tree, &mut m)?;
    describe_chosen(tree, &mut m);
    for &(addr, size) in &tree.memreserve {
        if size == 0 {
            continue;
        }
        let end = (addr as u128 + size as u128).min(1u128 << 64);
        let range = PhysRange::new(
            PhysAddr::new(addr),
            (end - addr as u128).min(u64::MAX as u128) as u64,
        );
        let parts = clip_to_ram(range, &m.memory);
        if parts.is_empty() {
            m.warnings
                .push(format!("memreserve {range} lies outside RAM; ignored"));
        }
        m.memreserve.extend(parts);
    }
    describe_reserved_memory(tree, &mut m)?;
    m.dma_limit = dma_limit(tree);
    m.uart = find_uart(tree)?;
    if let Some(path) = m.uart.as_ref().map(|u| u.path.clone()) {
        if let Some(node) = tree.find(&path) {
            m.platform_dma = dma_view(tree, node);
        }
    }
    for node in tree.all() {
        if tree.is_compatible(node, "virtio,mmio") && tree.is_available(node) {
            if let Some(&range) = reg_cpu(tree, node)?.first() {
                m.virtio_mmio.push(VirtioMmio {
                    base: range.base,
                    size: range.size,
                    irq: interrupt_id(tree, node),
                    dma_coherent: is_dma_coherent(tree, node),
                    dma_ranges: dma_view(tree, node),
                });
            }
        }
    }
    for node in tree.all() {
        if tree.is_compatible(node, "pci-host-ecam-generic") && tree.is_available(node) {
            if let Some(&range) = reg_cpu(tree, node)?.first() {
                m.pci_ecam
                    .push(pci_ecam(tree, node, range, &mut m.warnings));
            }
        }
    }
    m.psci_method = psci_method(tree);
    if let Some(cpus) = tree.find("/cpus") {
        let mut methods: Vec<&str> = Vec::new();
        for &c in &tree.node(cpus).children {
            if tree.prop_str(c, "device_type") == Some("cpu") && tree.is_enabled(c) {
                m.cpus += 1;
                if let Some(method) = tree.prop_str(c, "enable-method") {
                    if !methods.contains(&method) {
                        methods.push(method);
                    }
                }
            }
        }
        if methods.len() == 1 {
            m.cpu_enable_method = Some(methods[0].into());
        }
    }
    m.gic = find_gic(tree)?;
    // One pass over the nodes for the timer and the Pi 3's controllers (a boot-time cost).
    let [timer, local, armctrl] = first_compatible(
        tree,
        [
            &["arm,armv8-timer", "arm,armv7-timer"],
            &["brcm,bcm2836-l1-intc"],
            &["brcm,bcm2836-armctrl-ic"],
        ],
    );
    m.timer = timer.map(|n| timer_of(tree, n));
    m.bcm2836_intc = bcm2836_intc(tree, local, armctrl)?;
    Ok(m)
}

/// An ECAM host bridge at `range`: its buses from `bus-range` (two cells; 0-255 when absent, as
/// Linux assumes), no more than the window holds at 1 MiB a bus.
fn pci_ecam(
    tree: &DeviceTree,
    node: usize,
    range: PhysRange,
    warnings: &mut Vec<String>,
) -> PciEcam {
    let buses_mapped = (range.size >> 20).clamp(1, 256) - 1;
    let (start, end) = match tree.prop(node, "bus-range").map(|v| (v.len(), v)) {
        None => (0, 255),
        Some((8, v)) => (
            u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
        ),
        Some(_) => (u32::MAX, 0),
    };
    let (start, end) = if start <= end && end <= 255 {
        (start as u8, end.min(start + buses_mapped as u32) as u8)
    } else {
        warnings.push(format!(
            "{}: bus-range is not two cells from 0 to 255 in order; buses 0-{buses_mapped} assumed",
            tree.path(node)
        ));
        (0, buses_mapped as u8)
    };
    PciEcam {
        base: range.base.as_u64(),
        size: range.size,
        bus_start: start,
        bus_end: end,
    }
}

fn describe_memory(tree: &DeviceTree, m: &mut Machine) -> Result<(), MachineError> {
    let root = tree.root();
    let mut banks = Vec::new();
    for &node in &tree.node(root).children {
        if tree.prop_str(node, "device_type") != Some("memory") || !tree.is_enabled(node) {
            continue;
        }
        for (base, size) in reg(tree, node)? {
            let path = tree.path(node);
            if size == 0 {
                m.warnings
                    .push(format!("{path}: zero-sized bank at {base:#x} skipped"));
            } else if base.checked_add(size - 1).is_none() {
                m.warnings.push(format!(
                    "{path}: bank {base:#x} + {size:#x} wraps past 2^64; refused"
                ));
            } else {
                banks.push(PhysRange::new(PhysAddr::new(base), size));
            }
        }
    }
    let before: u128 = banks.iter().map(|b| b.size as u128).sum();
    crate::addr::normalize(&mut banks);
    let after: u128 = banks.iter().map(|b| b.size as u128).sum();
    if after < before {
        m.warnings.push(format!(
            "memory banks overlap by {:#x} bytes; merged",
            before - after
        ));
    }
    m.memory = banks;
    Ok(())
}

fn describe_chosen(tree: &DeviceTree, m: &mut Machine) {
    let Some(chosen) = tree.find("/chosen") else {
        return;
    };
    // Bytes that are not UTF-8 show as U+FFFD here; the command-line parser reports them.
    if let Some(args) = tree.prop(chosen, "bootargs") {
        let end = args.iter().position(|&b| b == 0).unwrap_or(args.len());
        m.bootargs = String::from_utf8_lossy(&args[..end]).into_owned();
    }
    let start = tree.prop_u64(chosen, "linux,initrd-start");
    let end = tree.prop_u64(chosen, "linux,initrd-end");
    match (start, end) {
        (Some(s), Some(e)) if e > s => {
            m.initrd = Some(PhysRange::new(PhysAddr::new(s), e - s));
        }
        (Some(s), Some(e)) if e < s => {
            m.warnings.push(format!(
                "initrd ends ({e:#x}) before it starts ({s:#x}); refused"
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            m.warnings
                .push("initrd has only one of linux,initrd-start/-end; ignored".into());
        }
        _ => {}
    }
}

fn describe_reserved_memory(tree: &DeviceTree, m: &mut Machine) -> Result<(), MachineError> {
    let Some(parent) = tree.find("/reserved-memory") else {
        return Ok(());
    };
    let (ac, sc) = (tree.address_cells(parent), tree.size_cells(parent));
    let mut dynamic = Vec::new();
    for &node in &tree.node(parent).children {
        if !tree.is_enabled(node) {
            continue;
        }
        let name = String::from(tree.node(node).name);
        let no_map = tree.has_prop(node, "no-map");
        let reusable = tree.has_prop(node, "reusable");
        if tree.has_prop(node, "reg") {
            for (base, size) in reg(tree, node)? {
                if size == 0 {
                    continue;
                }
                let end = (base as u128 + size as u128).min(1u128 << 64);
                let range = PhysRange::new(
                    PhysAddr::new(base),
                    (end - base as u128).min(u64::MAX as u128) as u64,
                );
                let parts = clip_to_ram(range, &m.memory);
                if parts.is_empty() {
                    m.warnings.push(format!(
                        "reserved-memory {name} {range} lies outside RAM; ignored"
                    ));
                }
                for part in parts {
                    m.reserved_memory.push(ReservedRegion {
                        name: name.clone(),
                        range: part,
                        no_map,
                        reusable,
                        dynamic: false,
                    });
                }
            }
        } else if let Some(size_bytes) = tree.prop(node, "size") {
            if sc == 0 || size_bytes.len() != sc as usize * 4 {
                return Err(bad(
                    tree,
                    node,
                    "size",
                    format!("length {} is not {} cell(s)", size_bytes.len(), sc),
                ));
            }
            dynamic.push((node, name, no_map, reusable, read_cells(size_bytes, sc)));
        }
    }
    for (node, name, no_map, reusable, size) in dynamic {
        let mut align = match tree.prop(node, "alignment") {
            Some(v) if v.len() == 4 || v.len() == 8 => read_cells(v, v.len() as u32 / 4),
            Some(v) => {
                return Err(bad(
                    tree,
                    node,
                    "alignment",
                    format!("length {} is not 1 or 2 cells", v.len()),
                ))
            }
            None => PAGE_SIZE,
        };
        if reusable && tree.is_compatible(node, "shared-dma-pool") {
            align = align.max(CMA_MIN_ALIGN);
        }
        let align = align.max(PAGE_SIZE);
        if !align.is_power_of_two() {
            m.refused_reservations.push(RefusedReservation {
                name: name.clone(),
                reason: format!("alignment {align:#x} is not a power of two"),
            });
            continue;
        }
        let windows: Vec<PhysRange> = match tree.prop(node, "alloc-ranges") {
            Some(v) => entries(tree, node, "alloc-ranges", v, &[ac, sc])?
                .into_iter()
                .map(|e| PhysRange::new(PhysAddr::new(e[0]), e[1]))
                .collect(),
            None => m.memory.clone(),
        };
        let mut taken: Vec<PhysRange> = m.reservations().into_iter().map(|(r, _)| r).collect();
        crate::addr::normalize(&mut taken);
        let free_in = |windows: &[PhysRange]| -> Vec<PhysRange> {
            windows
                .iter()
                .flat_map(|w| subtract(&clip_to_ram(*w, &m.memory), &taken))
                .collect()
        };
        // As Linux: `alloc-ranges` are tried in the order given and the first with room wins;
        // without them, the highest room in all of RAM.
        let placed = if tree.has_prop(node, "alloc-ranges") {
            windows
                .iter()
                .find_map(|w| place_top_down(&free_in(core::slice::from_ref(w)), size, align))
        } else {
            place_top_down(&free_in(&windows), size, align)
        };
        match placed {
            Some(base) => m.reserved_memory.push(ReservedRegion {
                name,
                range: PhysRange::new(base, size),
                no_map,
                reusable,
                dynamic: true,
            }),
            None => m.refused_reservations.push(RefusedReservation {
                reason: format!(
                    "no free {size:#x} bytes aligned to {align:#x} in {} window(s)",
                    windows.len()
                ),
                name,
            }),
        }
    }
    for r in &m.refused_reservations {
        m.warnings
            .push(format!("reserved-memory {}: {}", r.name, r.reason));
    }
    Ok(())
}

/// The PSCI conduit of the first available `arm,psci*` node.
pub fn psci_method(tree: &DeviceTree) -> Option<PsciMethod> {
    tree.all()
        .find(|&n| {
            tree.prop_strs(n, "compatible")
                .any(|c| c.starts_with("arm,psci"))
                && tree.is_available(n)
        })
        .and_then(|n| match tree.prop_str(n, "method") {
            Some("hvc") => Some(PsciMethod::Hvc),
            Some("smc") => Some(PsciMethod::Smc),
            _ => None,
        })
}

/// The highest `align`-aligned base where `size` bytes fit in one of `free`, as memblock allocates.
pub fn place_top_down(free: &[PhysRange], size: u64, align: u64) -> Option<PhysAddr> {
    if size == 0 {
        return None;
    }
    free.iter()
        .filter_map(|hole| {
            let end = hole.end().min(u64::MAX as u128 + 1);
            let start = end.checked_sub(size as u128)? as u64 & !(align - 1);
            (start >= hole.base.as_u64()).then_some(PhysAddr::new(start))
        })
        .max()
}

/// Linux's `of_dma_get_max_cpu_address`: per node with `dma-ranges`, the highest CPU address its
/// ranges reach; over all available nodes, the lowest of those. Returned as one past the end.
fn dma_limit(tree: &DeviceTree) -> Option<u64> {
    let mut limit: Option<u128> = None;
    for node in tree.all() {
        if !tree.is_available(node) {
            continue;
        }
        let Some(parent) = tree.node(node).parent else {
            continue;
        };
        let Ok(Some(list)) = range_entries(tree, node, "dma-ranges") else {
            continue;
        };
        let mut node_end: Option<u128> = None;
        for [_, parent_addr, size] in list {
            if let Some(cpu) = translate_from(tree, parent, parent_addr, "dma-ranges") {
                let end = cpu as u128 + size as u128;
                node_end = Some(node_end.map_or(end, |e: u128| e.max(end)));
            }
        }
        if let Some(end) = node_end {
            limit = Some(limit.map_or(end, |l| l.min(end)));
        }
    }
    limit.filter(|&l| l <= u64::MAX as u128).map(|l| l as u64)
}

/// A device's DMA windows: the nearest ancestor bus with a non-empty `dma-ranges` gives bus
/// addresses (child side) for CPU addresses (its parent side, translated up to the CPU).
pub fn dma_view(tree: &DeviceTree, node: usize) -> Vec<crate::addr::DmaRange> {
    let mut bus = tree.node(node).parent;
    while let Some(b) = bus {
        if let Ok(Some(list)) = range_entries(tree, b, "dma-ranges") {
            if !list.is_empty() {
                let Some(parent) = tree.node(b).parent else {
                    return Vec::new();
                };
                return list
                    .into_iter()
                    .filter_map(|[child, parent_addr, size]| {
                        let cpu = translate_from(tree, parent, parent_addr, "dma-ranges")?;
                        Some(crate::addr::DmaRange {
                            cpu: PhysAddr::new(cpu),
                            bus: child,
                            size,
                        })
                    })
                    .collect();
            }
        }
        bus = tree.node(b).parent;
    }
    Vec::new()
}

fn is_dma_coherent(tree: &DeviceTree, node: usize) -> bool {
    let mut n = Some(node);
    while let Some(i) = n {
        if tree.has_prop(i, "dma-coherent") {
            return true;
        }
        n = tree.node(i).parent;
    }
    false
}

/// The interrupt parent of a node: its own or an ancestor's `interrupt-parent`.
fn interrupt_parent(tree: &DeviceTree, node: usize) -> Option<usize> {
    let mut n = Some(node);
    while let Some(i) = n {
        if let Some(ph) = tree.prop_u32(i, "interrupt-parent") {
            return tree.by_phandle(ph);
        }
        n = tree.node(i).parent;
    }
    None
}

/// A node's interrupt specifiers, each with the controller it goes to: `interrupts-extended`
/// (a phandle, then that controller's `#interrupt-cells` cells, repeated) when the node has it,
/// else `interrupts` cut in `#interrupt-cells` pieces of its interrupt parent. A specifier that
/// names no controller, a controller without `#interrupt-cells`, or more than four cells ends
/// the list (as Linux's `of_irq_parse_one` gives up on it). Allocates nothing: it runs for every
/// device at boot.
fn interrupt_specs<'t>(
    tree: &'t DeviceTree,
    node: usize,
) -> impl Iterator<Item = (usize, Cells)> + 't {
    let extended = tree.prop(node, "interrupts-extended");
    let plain = match extended {
        Some(_) => None,
        None => tree
            .prop(node, "interrupts")
            .zip(interrupt_parent(tree, node)),
    };
    let value = extended.or(plain.map(|(v, _)| v)).unwrap_or(&[]);
    let words = value.len() / 4;
    let cell = move |i: usize| read_cells(&value[i * 4..], 1) as u32;
    let mut at = 0;
    core::iter::from_fn(move || {
        if at >= words {
            return None;
        }
        let (controller, first) = match plain {
            Some((_, parent)) => (parent, at),
            None => (tree.by_phandle(cell(at))?, at + 1),
        };
        let n = tree.prop_u32(controller, "#interrupt-cells")? as usize;
        if n == 0 || n > 4 || first + n > words {
            return None;
        }
        let mut cells = Cells::default();
        for i in 0..n {
            cells.0[i] = cell(first + i);
        }
        cells.1 = n;
        at = first + n;
        Some((controller, cells))
    })
}

/// One specifier's cells (at most four; `.1` of them used).
#[derive(Default, Clone, Copy)]
struct Cells([u32; 4], usize);

impl Cells {
    fn get(&self) -> &[u32] {
        &self.0[..self.1]
    }
}

/// One specifier decoded by the rules of its controller: the GIC's three cells (type, number,
/// flags), the BCM2836 local controller's two (line, flags), the BCM2835 ARM controller's two
/// (bank, line); any other controller's first cell as the number. `None` for a specifier its
/// controller's rules refuse. Allocates nothing (it runs for every device at boot).
fn decode_hwirq(tree: &DeviceTree, controller: usize, cells: &[u32]) -> Option<(u32, Trigger)> {
    let is = |c: &str| tree.is_compatible(controller, c);
    let flags_trigger = |flags: u32| {
        if flags & 0xc != 0 {
            Trigger::Level
        } else {
            Trigger::Edge
        }
    };
    if GIC_COMPATIBLES.iter().any(|(c, _)| is(c)) {
        if cells.len() < 3 {
            return None;
        }
        let base = match cells[0] {
            0 => 32,
            1 => 16,
            _ => return None,
        };
        // PPIs are 0-15 (16-31); SPIs up to 987 (1019).
        let limit = if base == 16 { 16 } else { 988 };
        if cells[1] >= limit {
            return None;
        }
        Some((base + cells[1], flags_trigger(cells[2])))
    } else if is("brcm,bcm2836-l1-intc") {
        Some((
            *cells.first()?,
            cells.get(1).map_or(Trigger::Level, |&f| flags_trigger(f)),
        ))
    } else if is("brcm,bcm2836-armctrl-ic") || is("brcm,bcm2835-armctrl-ic") {
        let (bank, line) = (*cells.first()?, *cells.get(1)?);
        if bank > 2 || line > 31 {
            return None;
        }
        Some((bank * 32 + line, Trigger::Level))
    } else {
        Some((*cells.first()?, Trigger::Level))
    }
}

/// A node's interrupts, decoded, with their controller's path.
fn interrupts(tree: &DeviceTree, node: usize) -> Vec<Option<Irq>> {
    interrupt_specs(tree, node)
        .map(|(controller, cells)| {
            decode_hwirq(tree, controller, cells.get()).map(|(hwirq, trigger)| Irq {
                controller: tree.path(controller),
                hwirq,
                trigger,
            })
        })
        .collect()
}

/// The first interrupt of a node as its controller numbers it (a GIC interrupt ID: SPI n is
/// 32 + n, PPI n is 16 + n).
fn interrupt_id(tree: &DeviceTree, node: usize) -> Option<u32> {
    let (controller, cells) = interrupt_specs(tree, node).next()?;
    decode_hwirq(tree, controller, cells.get()).map(|(hwirq, _)| hwirq)
}

/// For each group of compatible strings, the first available node compatible with one of them,
/// in one pass over the tree (each node's `compatible` list read once).
fn first_compatible<const N: usize>(tree: &DeviceTree, groups: [&[&str]; N]) -> [Option<usize>; N] {
    let mut found = [None; N];
    for node in tree.all() {
        for c in tree.prop_strs(node, "compatible") {
            for (g, group) in groups.iter().enumerate() {
                if found[g].is_none() && group.contains(&c) && tree.is_available(node) {
                    found[g] = Some(node);
                }
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
}

/// The Raspberry Pi 3's local controller and the ARM controller chained on it.
fn bcm2836_intc(
    tree: &DeviceTree,
    local: Option<usize>,
    armctrl: Option<usize>,
) -> Result<Option<Bcm2836Intc>, MachineError> {
    let Some(local) = local else {
        return Ok(None);
    };
    let Some(&local_regs) = reg_cpu(tree, local)?.first() else {
        return Ok(None);
    };
    let armctrl_regs = match armctrl {
        Some(n) => reg_cpu(tree, n)?.first().copied(),
        None => None,
    };
    Ok(Some(Bcm2836Intc {
        local_path: tree.path(local),
        local: local_regs,
        armctrl_path: armctrl
            .filter(|_| armctrl_regs.is_some())
            .map(|n| tree.path(n)),
        armctrl: armctrl_regs,
    }))
}

/// The generic timer (the first enabled `arm,armv8-timer` or `arm,armv7-timer` node): its
/// interrupts.
fn timer_of(tree: &DeviceTree, node: usize) -> ArchTimer {
    let mut irqs = interrupts(tree, node).into_iter();
    ArchTimer {
        secure_phys: irqs.next().flatten(),
        phys: irqs.next().flatten(),
        virt: irqs.next().flatten(),
        hyp: irqs.next().flatten(),
    }
}

/// The frequency of the clock a node names (`uartclk` if named, else its first), when fixed.
fn clock_hz(tree: &DeviceTree, node: usize) -> Option<u32> {
    let value = tree.prop(node, "clocks")?;
    let wanted = tree
        .prop_strs(node, "clock-names")
        .position(|n| n == "uartclk")
        .unwrap_or(0);
    let mut at = 0usize;
    let mut index = 0usize;
    while at + 4 <= value.len() {
        let provider = tree.by_phandle(read_cells(&value[at..], 1) as u32)?;
        let cells = tree.prop_u32(provider, "#clock-cells").unwrap_or(0) as usize;
        if index == wanted {
            return tree.prop_u32(provider, "clock-frequency");
        }
        at += 4 + cells * 4;
        index += 1;
    }
    None
}

fn uart_at(
    tree: &DeviceTree,
    node: usize,
    from_stdout_path: bool,
) -> Result<Option<Uart>, MachineError> {
    let Some((compatible, kind)) = UART_COMPATIBLES
        .iter()
        .find(|(c, _)| tree.is_compatible(node, c))
        .copied()
    else {
        return Ok(None);
    };
    let Some(&range) = reg_cpu(tree, node)?.first() else {
        return Ok(None);
    };
    Ok(Some(Uart {
        kind,
        compatible: compatible.into(),
        path: tree.path(node),
        base: range.base,
        size: range.size,
        clock_hz: clock_hz(tree, node),
        from_stdout_path,
    }))
}

/// The absolute path `/chosen/stdout-path` names (an alias resolved through `/aliases`, the
/// options after `:` left out), if the tree has one.
pub fn stdout_path<'a>(tree: &DeviceTree<'a>) -> Option<&'a str> {
    let chosen = tree.find("/chosen")?;
    let path = tree
        .prop_str(chosen, "stdout-path")
        .or_else(|| tree.prop_str(chosen, "linux,stdout-path"))?;
    let path = path.split(':').next().unwrap_or("");
    if path.starts_with('/') {
        return Some(path);
    }
    let aliases = tree.find("/aliases")?;
    tree.prop_str(aliases, path).filter(|p| p.starts_with('/'))
}

/// The console: `/chosen/stdout-path` if it names a UART we drive, else the first enabled one.
pub fn find_uart(tree: &DeviceTree) -> Result<Option<Uart>, MachineError> {
    if let Some(chosen) = tree.find("/chosen") {
        let path = tree
            .prop_str(chosen, "stdout-path")
            .or_else(|| tree.prop_str(chosen, "linux,stdout-path"));
        if let Some(path) = path {
            let path = path.split(':').next().unwrap_or("");
            if let Some(node) = tree.find(path) {
                if tree.is_available(node) {
                    if let Some(uart) = uart_at(tree, node, true)? {
                        return Ok(Some(uart));
                    }
                }
            }
        }
    }
    for node in tree.all() {
        if tree.is_available(node) {
            if let Some(uart) = uart_at(tree, node, false)? {
                return Ok(Some(uart));
            }
        }
    }
    Ok(None)
}

fn find_gic(tree: &DeviceTree) -> Result<Option<Gic>, MachineError> {
    for node in tree.all() {
        for &(compatible, version) in GIC_COMPATIBLES {
            if tree.is_compatible(node, compatible) && tree.is_available(node) {
                return Ok(Some(Gic {
                    compatible: compatible.into(),
                    version,
                    regs: reg_cpu(tree, node)?,
                }));
            }
        }
    }
    Ok(None)
}
