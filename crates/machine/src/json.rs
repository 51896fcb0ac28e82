//! The machine description as JSON, for `scripts/dtb-info` and for tests that compare trees.
//! Addresses and sizes are `"0x…"` strings (JSON numbers lose precision above 2^53). Owns only the
//! output format; must not interpret the tree.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::{Irq, Machine};
use crate::addr::PhysRange;

fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hex(v: u64) -> String {
    format!("\"{v:#x}\"")
}

fn pair(r: &PhysRange) -> String {
    format!("[{}, {}]", hex(r.base.as_u64()), hex(r.size))
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    let inner: Vec<String> = items.iter().map(f).collect();
    format!("[{}]", inner.join(", "))
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "null".into())
}

/// Where the zones end (exclusive), for the `zones` key. The machine description does not decide
/// zones (that is the memory manager's rule): the caller computes them and passes them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zones {
    pub dma_end: u64,
    pub dma32_end: u64,
}

/// One JSON object describing the machine, with `zones` as given, keys in a fixed order.
pub fn to_json(m: &Machine, zones: Zones) -> String {
    let mut fields: Vec<(&str, String)> = Vec::new();
    fields.push(("model", string(&m.model)));
    fields.push(("compatible", list(&m.compatible, |c| string(c))));
    fields.push(("memory", list(&m.memory, pair)));
    fields.push(("memory_total", hex(m.ram_bytes())));
    fields.push(("memreserve", list(&m.memreserve, pair)));
    fields.push((
        "reserved_memory",
        list(&m.reserved_memory, |r| {
            format!(
                "{{\"name\": {}, \"base\": {}, \"size\": {}, \"no_map\": {}, \"reusable\": {}, \"dynamic\": {}}}",
                string(&r.name),
                hex(r.range.base.as_u64()),
                hex(r.range.size),
                r.no_map,
                r.reusable,
                r.dynamic
            )
        }),
    ));
    fields.push((
        "refused_reservations",
        list(&m.refused_reservations, |r| {
            format!(
                "{{\"name\": {}, \"reason\": {}}}",
                string(&r.name),
                string(&r.reason)
            )
        }),
    ));
    fields.push(("dma_limit", opt(m.dma_limit.map(hex))));
    fields.push((
        "zones",
        format!(
            "{{\"dma_end\": {}, \"dma32_end\": {}, \"ram_known\": {}}}",
            hex(zones.dma_end),
            hex(zones.dma32_end),
            !m.memory.is_empty()
        ),
    ));
    fields.push((
        "uart",
        opt(m.uart.as_ref().map(|u| {
            format!(
                "{{\"compatible\": {}, \"base\": {}, \"size\": {}, \"path\": {}, \"clock_hz\": {}, \"from_stdout_path\": {}}}",
                string(&u.compatible),
                hex(u.base.as_u64()),
                hex(u.size),
                string(&u.path),
                opt(u.clock_hz.map(|c| format!("{c}"))),
                u.from_stdout_path
            )
        })),
    ));
    fields.push((
        "virtio_mmio",
        list(&m.virtio_mmio, |v| {
            format!(
                "[{}, {}, {}]",
                hex(v.base.as_u64()),
                hex(v.size),
                opt(v.irq.map(|i| format!("{i}")))
            )
        }),
    ));
    fields.push((
        "pci_ecam",
        list(&m.pci_ecam, |p| {
            format!(
                "[{}, {}, {}, {}]",
                hex(p.base),
                hex(p.size),
                p.bus_start,
                p.bus_end
            )
        }),
    ));
    fields.push((
        "platform_dma",
        list(&m.platform_dma, |r| {
            format!("[{}, {}, {}]", hex(r.cpu.as_u64()), hex(r.bus), hex(r.size))
        }),
    ));
    fields.push((
        "psci_method",
        opt(m.psci_method.map(|p| string(p.as_str()))),
    ));
    fields.push(("cpus", format!("{}", m.cpus)));
    fields.push((
        "cpu_enable_method",
        opt(m.cpu_enable_method.as_deref().map(string)),
    ));
    fields.push((
        "gic",
        opt(m.gic.as_ref().map(|g| {
            format!(
                "{{\"compatible\": {}, \"version\": {}, \"regs\": {}}}",
                string(&g.compatible),
                g.version,
                list(&g.regs, pair)
            )
        })),
    ));
    fields.push((
        "timer",
        opt(m.timer.as_ref().map(|t| {
            let irq = |i: &Option<Irq>| {
                opt(i.as_ref().map(|i| {
                    format!(
                        "{{\"controller\": {}, \"hwirq\": {}, \"trigger\": {}}}",
                        string(&i.controller),
                        i.hwirq,
                        string(i.trigger.as_str())
                    )
                }))
            };
            format!(
                "{{\"phys\": {}, \"virt\": {}, \"hyp\": {}}}",
                irq(&t.phys),
                irq(&t.virt),
                irq(&t.hyp)
            )
        })),
    ));
    fields.push(("bootargs", string(&m.bootargs)));
    fields.push(("initrd", opt(m.initrd.as_ref().map(pair))));
    fields.push(("warnings", list(&m.warnings, |w| string(w))));

    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("  {}: {}", string(k), v))
        .collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}
