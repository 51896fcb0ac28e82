//! The machine description as boot-log lines, in the spirit of Linux's early boot messages.
//! Owns wording only.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Irq, Machine};

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
        if m.model.is_empty() {
            "(unnamed)"
        } else {
            &m.model
        }
    ));
    out.push(format!(
        "Memory: {} in {} bank(s)",
        mib(m.ram_bytes()),
        m.memory.len()
    ));
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
            if r.dynamic {
                " (placed dynamically)"
            } else {
                ""
            }
        ));
    }
    out.push(match m.dma_limit {
        Some(limit) => format!("DMA limit: {limit:#x} (most restrictive dma-ranges)"),
        None => "DMA limit: none (no dma-ranges restricts DMA)".into(),
    });
    for r in &m.platform_dma {
        out.push(format!(
            "Platform DMA window: CPU {:#x}-{:#x} is bus {:#x}",
            r.cpu.as_u64(),
            r.cpu.as_u64() + r.size.saturating_sub(1),
            r.bus
        ));
    }
    if let Some(u) = &m.uart {
        out.push(format!(
            "Console: {} at {:#x} ({}{})",
            u.compatible,
            u.base.as_u64(),
            u.path,
            if u.from_stdout_path {
                ", stdout-path"
            } else {
                ", first UART"
            }
        ));
    }
    out.push(format!(
        "CPUs: {}{}",
        m.cpus,
        m.cpu_enable_method
            .as_ref()
            .map(|e| format!(" (enable-method {e})"))
            .unwrap_or_default()
    ));
    out.push(format!(
        "PSCI: {}",
        m.psci_method.map(|p| p.as_str()).unwrap_or("none")
    ));
    if let Some(g) = &m.gic {
        let regs: Vec<String> = g
            .regs
            .iter()
            .map(|r| format!("{:#x}", r.base.as_u64()))
            .collect();
        out.push(format!(
            "GIC: v{} {} at {}",
            g.version,
            g.compatible,
            regs.join(", ")
        ));
    }
    if let Some(b) = &m.bcm2836_intc {
        out.push(format!(
            "Interrupt controllers: BCM2836 local at {:#x}{}",
            b.local.base.as_u64(),
            b.armctrl.map_or(String::new(), |a| format!(
                ", BCM2835 ARM controller at {:#x} (chained)",
                a.base.as_u64()
            ))
        ));
    }
    if let Some(t) = &m.timer {
        let irq = |name: &str, i: &Option<Irq>| {
            i.as_ref()
                .map(|i| format!(" {name} {} {}", i.hwirq, i.trigger.as_str()))
        };
        let lines: Vec<String> = [
            irq("phys", &t.phys),
            irq("virt", &t.virt),
            irq("hyp", &t.hyp),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.push(format!(
            "Timer: arm,armv8-timer, interrupts{}",
            lines.join(",")
        ));
    }
    out.extend(virtio_lines(&m.virtio_mmio));
    for p in &m.pci_ecam {
        out.push(format!(
            "PCIe ECAM: {:#x} size {:#x}, buses {}-{}",
            p.base, p.size, p.bus_start, p.bus_end
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

/// QEMU lists 32 identical virtio-mmio slots; a regular run of them is one line.
fn virtio_lines(devices: &[super::VirtioMmio]) -> Vec<String> {
    let regular = devices.len() > 2
        && devices.windows(2).all(|w| {
            w[1].size == w[0].size
                && w[0].base.checked_add(w[0].size) == Some(w[1].base)
                && w[0].irq.zip(w[1].irq).is_some_and(|(a, b)| b == a + 1)
                && w[0].dma_coherent == w[1].dma_coherent
        });
    let coherent = |c: bool| if c { " dma-coherent" } else { "" };
    if regular {
        let (first, last) = (&devices[0], &devices[devices.len() - 1]);
        return alloc::vec![format!(
            "virtio-mmio: {} slots at {:#x}..{:#x}, {:#x} bytes each, irq {}-{}{}",
            devices.len(),
            first.base.as_u64(),
            last.base.as_u64() + last.size,
            first.size,
            first.irq.unwrap_or(0),
            last.irq.unwrap_or(0),
            coherent(first.dma_coherent)
        )];
    }
    devices
        .iter()
        .map(|v| {
            format!(
                "virtio-mmio: {:#x} size {:#x} irq {}{}",
                v.base.as_u64(),
                v.size,
                v.irq
                    .map(|i| format!("{i}"))
                    .unwrap_or_else(|| "none".into()),
                coherent(v.dma_coherent)
            )
        })
        .collect()
}

/// A `/proc/iomem`-style map of RAM and what is reserved inside it.
pub fn iomem(m: &Machine) -> String {
    let mut out = String::new();
    let reservations = m.reservations();
    for bank in &m.memory {
        let end = bank.end().saturating_sub(1) as u64;
        out.push_str(&format!(
            "{:08x}-{:08x} : System RAM\n",
            bank.base.as_u64(),
            end
        ));
        for (r, kind) in &reservations {
            if let Some(part) = bank.intersect(r) {
                let end = part.end().saturating_sub(1) as u64;
                out.push_str(&format!(
                    "  {:08x}-{:08x} : {}\n",
                    part.base.as_u64(),
                    end,
                    kind.label()
                ));
            }
        }
    }
    out
}
