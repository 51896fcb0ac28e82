//! The machine description as boot-log lines, in the spirit of Linux's early boot messages.
//! Owns wording only.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Machine;

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

pub fn lines(m: &Machine) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "Machine model: {}",
        if m.model.is_empty() { "(unnamed)" } else { &m.model }
    ));
    out.push(format!("Memory: {} in {} bank(s)", mib(m.ram_bytes()), m.memory.len()));
    for bank in &m.memory {
        out.push(format!("  bank   {bank} {}", mib(bank.size)));
    }
    for (range, kind) in m.reservations() {
        out.push(format!("  reserved {range} {}", kind.label()));
    }
    for r in &m.reserved_memory {
        out.push(format!(
            "  reserved-memory {} {}{}{}{}",
            r.name,
            r.range,
            if r.no_map { " no-map" } else { "" },
            if r.reusable { " reusable" } else { "" },
            if r.dynamic { " (placed dynamically)" } else { "" }
        ));
    }
    out.push(match m.dma_limit {
        Some(limit) => format!("DMA limit: {limit:#x} (most restrictive dma-ranges)"),
        None => "DMA limit: none (no dma-ranges restricts DMA)".into(),
    });
    if let Some(u) = &m.uart {
        out.push(format!(
            "Console: {} at {:#x} ({}{})",
            u.compatible,
            u.base.as_u64(),
            u.path,
            if u.from_stdout_path { ", stdout-path" } else { ", first UART" }
        ));
    }
    out.push(format!(
        "CPUs: {}{}",
        m.cpus,
        m.cpu_enable_method.as_ref().map(|e| format!(" (enable-method {e})")).unwrap_or_default()
    ));
    out.push(format!(
        "PSCI: {}",
        m.psci_method.map(|p| p.as_str()).unwrap_or("none")
    ));
    if let Some(g) = &m.gic {
        let regs: Vec<String> = g.regs.iter().map(|r| format!("{:#x}", r.base.as_u64())).collect();
        out.push(format!("GIC: v{} {} at {}", g.version, g.compatible, regs.join(", ")));
    }
    for v in &m.virtio_mmio {
        out.push(format!(
            "virtio-mmio: {:#x} size {:#x} irq {}{}",
            v.base.as_u64(),
            v.size,
            v.irq.map(|i| format!("{i}")).unwrap_or_else(|| "none".into()),
            if v.dma_coherent { " dma-coherent" } else { "" }
        ));
    }
    if let Some(i) = &m.initrd {
        out.push(format!("initrd: {i}"));
    }
    out.push(format!("Command line: {}", m.bootargs));
    for w in &m.warnings {
        out.push(format!("device tree: {w}"));
    }
    out
}
