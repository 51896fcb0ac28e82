//! What `Machine::from_blob` makes of well-formed trees built for the purpose: RAM banks,
//! reservations, address translation, DMA reach, the console, virtio, PSCI, CPUs, the GIC.

mod common;

use common::*;
use ferrite_addr::{PhysAddr, PhysRange};
use ferrite_machine::{BootRanges, Machine, PciEcam, PsciMethod, ReservationKind, UartKind};

fn warned(m: &Machine, words: &str) -> bool {
    m.warnings.iter().any(|w| w.contains(words))
}

fn sorted(mut v: Vec<PhysRange>) -> Vec<PhysRange> {
    v.sort();
    v
}

fn ranges(list: &[(u64, u64)]) -> Vec<PhysRange> {
    list.iter().map(|&(b, s)| range(b, s)).collect()
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// RAM banks.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_memory_node_and_every_reg_entry_is_ram() {
    let fdt = Fdt::new(
        Node::root(2, 2)
            .child(memory_node(2, 2, &[(0x1_0000_0000, GIB)]))
            .child(memory_node(
                2,
                2,
                &[(0x8000_0000, 0x1000_0000), (0x4000_0000, 0x1000_0000)],
            ))
            .child(
                memory_node(2, 2, &[(0x2_0000_0000, GIB)])
                    .string("status", "disabled")
                    .nop(),
            )
            // Not memory: no device_type.
            .child(Node::new("memory@300000000").reg(2, 2, &[(0x3_0000_0000, GIB)])),
    );
    let m = machine(&fdt);
    assert_eq!(
        m.memory,
        ranges(&[
            (0x4000_0000, 0x1000_0000),
            (0x8000_0000, 0x1000_0000),
            (0x1_0000_0000, GIB)
        ])
    );
    assert_eq!(m.ram_bytes(), 0x6000_0000);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn cells_one_one() {
    let m = machine(&Fdt::new(Node::root(1, 1).child(memory_node(
        1,
        1,
        &[(0, 0x4000_0000), (0xc000_0000, 0x1000)],
    ))));
    assert_eq!(m.memory, ranges(&[(0, 0x4000_0000), (0xc000_0000, 0x1000)]));
}

#[test]
fn cells_two_two() {
    let m = machine(&Fdt::new(Node::root(2, 2).child(memory_node(
        2,
        2,
        &[(0x8_0000_0000, 0x2_0000_0000)],
    ))));
    assert_eq!(m.memory, ranges(&[(0x8_0000_0000, 0x2_0000_0000)]));
}

#[test]
fn cells_two_one() {
    let m = machine(&Fdt::new(Node::root(2, 1).child(memory_node(
        2,
        1,
        &[(0x1_0000_0000, 0x8000_0000), (0x4000_0000, 0x1000_0000)],
    ))));
    assert_eq!(
        m.memory,
        ranges(&[(0x4000_0000, 0x1000_0000), (0x1_0000_0000, 0x8000_0000)])
    );
}

#[test]
fn cells_are_those_of_the_parent_not_of_the_writer() {
    // Two 1+1-cell entries read under a 2+2-cell root are one entry.
    let m = machine(&Fdt::new(Node::root(2, 2).child(memory_node(
        1,
        1,
        &[(0x1, 0x2), (0x3, 0x4)],
    ))));
    assert_eq!(m.memory, ranges(&[(0x1_0000_0002, 0x3_0000_0004)]));
}

#[test]
fn absent_cell_counts_default_to_two_and_one() {
    let m = machine(&Fdt::new(Node::new("").child(memory_node(
        2,
        1,
        &[(0x1_4000_0000, 0x1000_0000)],
    ))));
    assert_eq!(m.memory, ranges(&[(0x1_4000_0000, 0x1000_0000)]));
}

#[test]
fn zero_sized_bank_is_skipped_with_a_warning() {
    let m = machine(&Fdt::new(Node::root(2, 2).child(memory_node(
        2,
        2,
        &[(0x4000_0000, 0), (0x5000_0000, 0x1000)],
    ))));
    assert_eq!(m.memory, ranges(&[(0x5000_0000, 0x1000)]));
    assert!(
        warned(&m, "zero-sized bank at 0x40000000"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn overlapping_banks_are_merged_and_counted_once() {
    let m = machine(&Fdt::new(
        Node::root(2, 2)
            .child(memory_node(2, 2, &[(0x4000_0000, 0x2000_0000)]))
            .child(memory_node(2, 2, &[(0x5000_0000, 0x2000_0000)]))
            // Wholly inside the first, and a duplicate of the second.
            .child(memory_node(
                2,
                2,
                &[(0x4100_0000, 0x1000), (0x5000_0000, 0x2000_0000)],
            )),
    ));
    assert_eq!(m.memory, ranges(&[(0x4000_0000, 0x3000_0000)]));
    assert_eq!(m.ram_bytes(), 0x3000_0000);
    assert!(warned(&m, "overlap"), "{:?}", m.warnings);
}

#[test]
fn adjacent_banks_join_without_a_warning() {
    let m = machine(&Fdt::new(
        Node::root(2, 2)
            .child(memory_node(2, 2, &[(0x5000_0000, 0x1000_0000)]))
            .child(memory_node(2, 2, &[(0x4000_0000, 0x1000_0000)])),
    ));
    assert_eq!(m.memory, ranges(&[(0x4000_0000, 0x2000_0000)]));
    assert_eq!(m.ram_bytes(), 0x2000_0000);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn bank_wrapping_past_2_pow_64_is_refused() {
    let m = machine(&Fdt::new(Node::root(2, 2).child(memory_node(
        2,
        2,
        &[
            (0x4000_0000, 0x1000_0000),
            (0xffff_ffff_ffff_0000, 0x2_0000),
            // Ending exactly at 2^64 does not wrap.
            (0xffff_ffff_ffff_f000, 0x1000),
        ],
    ))));
    assert_eq!(
        m.memory,
        ranges(&[(0x4000_0000, 0x1000_0000), (0xffff_ffff_ffff_f000, 0x1000)])
    );
    assert!(warned(&m, "wraps past 2^64"), "{:?}", m.warnings);
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
}

#[test]
fn a_tree_without_memory_describes_no_ram() {
    let fdt = Fdt::new(
        Node::root(2, 2)
            .string("model", "empty")
            .child(Node::new("chosen").string("bootargs", "run=selftest")),
    )
    .memreserve(0x4000_0000, 0x1000);
    let m = Machine::from_blob(&fdt.build(), BootRanges::default()).expect("no RAM is no error");
    assert!(m.memory.is_empty());
    assert_eq!(m.ram_bytes(), 0);
    assert!(m.memreserve.is_empty());
    assert_eq!(m.model, "empty");
    assert_eq!(m.bootargs, "run=selftest");
    assert!(warned(&m, "outside RAM"), "{:?}", m.warnings);
}

// ---------------------------------------------------------------------------------------------
// Reservations.
// ---------------------------------------------------------------------------------------------

fn two_bank_root() -> Node {
    Node::root(2, 2).child(memory_node(
        2,
        2,
        &[(0x4000_0000, 0x1000_0000), (0x6000_0000, 0x1000_0000)],
    ))
}

#[test]
fn memreserve_is_clipped_to_ram() {
    let fdt = Fdt::new(two_bank_root())
        .memreserve(0x3fff_f000, 0x2000) // partly below RAM
        .memreserve(0x1000, 0x1000) // wholly outside
        .memreserve(0x4fff_f000, 0x1001_2000) // across the hole between the banks
        .memreserve(0x4800_0000, 0x1000) // inside
        .memreserve(0x4800_0000, 0) // empty
        .memreserve(0xffff_ffff_ffff_f000, 0x2000); // wraps, outside
    let m = machine(&fdt);
    assert_eq!(
        sorted(m.memreserve.clone()),
        ranges(&[
            (0x4000_0000, 0x1000),
            (0x4800_0000, 0x1000),
            (0x4fff_f000, 0x1000),
            (0x6000_0000, 0x1_1000),
        ])
    );
    let outside = m
        .warnings
        .iter()
        .filter(|w| w.contains("outside RAM"))
        .count();
    assert_eq!(outside, 2, "{:?}", m.warnings);
    assert_eq!(m.reserved_bytes(), 0x1000 + 0x1000 + 0x1000 + 0x1_1000);
}

#[test]
fn reserved_memory_is_clipped_to_ram_and_keeps_its_flags() {
    let fdt = Fdt::new(
        two_bank_root().child(
            Node::new("reserved-memory")
                .u32("#address-cells", 2)
                .u32("#size-cells", 2)
                .flag("ranges")
                .child(
                    Node::new("firmware@3ff00000")
                        .reg(2, 2, &[(0x3ff0_0000, 0x20_0000)])
                        .flag("no-map"),
                )
                .child(Node::new("nowhere@1000").reg(2, 2, &[(0x1000, 0x1000)]))
                .child(
                    Node::new("pool@48000000")
                        .reg(2, 2, &[(0x4800_0000, 0x10_0000)])
                        .flag("reusable"),
                )
                .child(
                    Node::new("off@49000000")
                        .reg(2, 2, &[(0x4900_0000, 0x10_0000)])
                        .string("status", "disabled"),
                ),
        ),
    );
    let m = machine(&fdt);
    let got: Vec<(&str, PhysRange, bool, bool, bool)> = m
        .reserved_memory
        .iter()
        .map(|r| (r.name.as_str(), r.range, r.no_map, r.reusable, r.dynamic))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "firmware@3ff00000",
                range(0x4000_0000, 0x10_0000),
                true,
                false,
                false
            ),
            (
                "pool@48000000",
                range(0x4800_0000, 0x10_0000),
                false,
                true,
                false
            ),
        ]
    );
    assert!(warned(&m, "nowhere@1000"), "{:?}", m.warnings);
    let kinds: Vec<ReservationKind> = m.reservations().into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds,
        vec![
            ReservationKind::ReservedMemory { no_map: true },
            ReservationKind::ReservedMemory { no_map: false },
        ]
    );
}

fn reserved(children: Vec<Node>) -> Node {
    let mut node = Node::new("reserved-memory")
        .u32("#address-cells", 1)
        .u32("#size-cells", 1)
        .flag("ranges");
    for c in children {
        node = node.child(c);
    }
    node
}

fn dynamic(name: &str, size: u32) -> Node {
    Node::new(name).u32("size", size)
}

/// RAM 0x40000000..0x80000000 under 1+1 cells, plus `/reserved-memory` with these children.
fn one_gib_with(children: Vec<Node>) -> Fdt {
    Fdt::new(
        Node::root(1, 1)
            .child(memory_node(1, 1, &[(0x4000_0000, 0x4000_0000)]))
            .child(reserved(children)),
    )
}

fn placed(m: &Machine, name: &str) -> PhysRange {
    let r = m
        .reserved_memory
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| {
            panic!(
                "{name} not placed: {:?} {:?}",
                m.reserved_memory, m.refused_reservations
            )
        });
    assert!(r.dynamic);
    r.range
}

#[test]
fn dynamic_reservation_goes_to_the_top_of_ram() {
    let m = machine(&one_gib_with(vec![dynamic("a", MIB as u32)]));
    assert_eq!(placed(&m, "a"), range(0x8000_0000 - MIB, MIB));
    assert!(m.refused_reservations.is_empty());
}

#[test]
fn dynamic_reservation_honours_alignment() {
    let m = machine(&one_gib_with(vec![
        dynamic("a", MIB as u32).u32("alignment", 0x1000_0000)
    ]));
    assert_eq!(placed(&m, "a"), range(0x7000_0000, MIB));
}

#[test]
fn cma_pool_is_aligned_to_4_mib() {
    let m = machine(&one_gib_with(vec![dynamic("linux,cma", MIB as u32)
        .string("compatible", "shared-dma-pool")
        .flag("reusable")]));
    assert_eq!(placed(&m, "linux,cma"), range(0x8000_0000 - 4 * MIB, MIB));
    assert!(m.reserved_memory[0].reusable);
}

#[test]
fn dynamic_reservation_stays_in_its_alloc_ranges() {
    let m = machine(&one_gib_with(vec![
        dynamic("low", MIB as u32).u32s("alloc-ranges", &[0x4000_0000, 0x1000_0000]),
        // As Linux: the windows are tried in order, the first with room wins (not the highest).
        dynamic("first", MIB as u32).u32s(
            "alloc-ranges",
            &[0x5000_0000, 0x1000_0000, 0x7000_0000, 0x1000_0000],
        ),
        // A window without room (taken by "low") passes to the next.
        dynamic("next", MIB as u32).u32s(
            "alloc-ranges",
            &[0x4ff0_0000, 0x10_0000, 0x6000_0000, 0x1000_0000],
        ),
        // The part of a window outside RAM is not used.
        dynamic("straddle", MIB as u32).u32s("alloc-ranges", &[0x7ff0_0000, 0x1000_0000]),
    ]));
    assert_eq!(placed(&m, "low"), range(0x5000_0000 - MIB, MIB));
    assert_eq!(placed(&m, "first"), range(0x6000_0000 - MIB, MIB));
    assert_eq!(placed(&m, "next"), range(0x7000_0000 - MIB, MIB));
    assert_eq!(placed(&m, "straddle"), range(0x7ff0_0000, MIB));
}

#[test]
fn dynamic_reservations_avoid_every_other_reservation() {
    let top = 0x8000_0000u64;
    let fdt = Fdt::new(
        Node::root(1, 1)
            .child(memory_node(1, 1, &[(0x4000_0000, 0x4000_0000)]))
            .child(
                Node::new("chosen")
                    .u32("linux,initrd-start", (top - 3 * MIB) as u32)
                    .u32("linux,initrd-end", (top - 2 * MIB) as u32),
            )
            .child(reserved(vec![
                Node::new("fixed").reg(1, 1, &[(top - MIB, MIB)]),
                dynamic("a", MIB as u32),
                dynamic("b", MIB as u32),
            ])),
    )
    .memreserve(top - 2 * MIB, MIB);
    let boot = BootRanges {
        dtb: Some(range(top - 4 * MIB, MIB)),
        image: Some(range(top - 6 * MIB, 2 * MIB)),
    };
    let m = machine_with(&fdt, boot);
    assert_eq!(placed(&m, "a"), range(top - 7 * MIB, MIB));
    assert_eq!(placed(&m, "b"), range(top - 8 * MIB, MIB));
    // Nothing overlaps anything else.
    let all = m.reservations();
    for (i, (r, _)) in all.iter().enumerate() {
        for (s, _) in &all[i + 1..] {
            assert!(r.intersect(s).is_none(), "{r} overlaps {s}");
        }
    }
    assert_eq!(m.reserved_bytes(), 8 * MIB);
}

#[test]
fn dynamic_reservation_without_room_is_refused_with_a_reason() {
    let m = machine(&one_gib_with(vec![
        dynamic("huge", 0x8000_0000),
        dynamic("elsewhere", MIB as u32).u32s("alloc-ranges", &[0x1000_0000, 0x1000_0000]),
        dynamic("odd", MIB as u32).u32("alignment", 0x3000),
        dynamic("fits", MIB as u32),
    ]));
    let refused: Vec<(&str, &str)> = m
        .refused_reservations
        .iter()
        .map(|r| (r.name.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(refused[0].0, "huge");
    assert!(
        refused[0].1.contains("no free 0x80000000 bytes"),
        "{refused:?}"
    );
    assert_eq!(refused[1].0, "elsewhere");
    assert!(refused[1].1.contains("no free"), "{refused:?}");
    assert_eq!(refused[2].0, "odd");
    assert!(refused[2].1.contains("power of two"), "{refused:?}");
    assert_eq!(placed(&m, "fits"), range(0x8000_0000 - MIB, MIB));
    for name in ["huge", "elsewhere", "odd"] {
        assert!(warned(&m, name), "{:?}", m.warnings);
    }
}

#[test]
fn dynamic_reservation_without_ram_is_refused() {
    let m = machine(&Fdt::new(Node::root(1, 1).child(reserved(
        vec![dynamic("linux,cma", 0x400_0000)
            .string("compatible", "shared-dma-pool")
            .flag("reusable")],
    ))));
    assert!(m.reserved_memory.is_empty());
    assert_eq!(m.refused_reservations.len(), 1);
    assert_eq!(m.refused_reservations[0].name, "linux,cma");
}

// ---------------------------------------------------------------------------------------------
// initrd.
// ---------------------------------------------------------------------------------------------

fn with_chosen(chosen: Node) -> Machine {
    machine(&Fdt::new(
        Node::root(2, 2)
            .child(memory_node(2, 2, &[(0x4000_0000, GIB)]))
            .child(chosen),
    ))
}

#[test]
fn initrd_with_32_bit_cells() {
    let m = with_chosen(
        Node::new("chosen")
            .u32("linux,initrd-start", 0x4800_0000)
            .u32("linux,initrd-end", 0x4812_3000),
    );
    assert_eq!(m.initrd, Some(range(0x4800_0000, 0x12_3000)));
    assert!(m
        .reservations()
        .contains(&(range(0x4800_0000, 0x12_3000), ReservationKind::Initrd)));
}

#[test]
fn initrd_with_64_bit_cells() {
    let m = with_chosen(
        Node::new("chosen")
            .u64("linux,initrd-start", 0x1_4800_0000)
            .u64("linux,initrd-end", 0x1_4900_0000),
    );
    assert_eq!(m.initrd, Some(range(0x1_4800_0000, 0x100_0000)));
}

#[test]
fn backwards_initrd_is_refused_with_a_warning() {
    let m = with_chosen(
        Node::new("chosen")
            .u64("linux,initrd-start", 0x4900_0000)
            .u64("linux,initrd-end", 0x4800_0000),
    );
    assert_eq!(m.initrd, None);
    assert!(warned(&m, "initrd"), "{:?}", m.warnings);
}

// ---------------------------------------------------------------------------------------------
// Address translation.
// ---------------------------------------------------------------------------------------------

fn aux_uart(unit: u64, ac: u32, sc: u32) -> Node {
    Node::new(&format!("serial@{unit:x}"))
        .string("compatible", "brcm,bcm2835-aux-uart")
        .reg(ac, sc, &[(unit, 0x40)])
}

fn pl011(unit: u64, ac: u32, sc: u32) -> Node {
    Node::new(&format!("serial@{unit:x}"))
        .strings("compatible", &["arm,pl011", "arm,primecell"])
        .reg(ac, sc, &[(unit, 0x200)])
}

fn bus(name: &str, ac: u32, sc: u32) -> Node {
    Node::new(name)
        .string("compatible", "simple-bus")
        .u32("#address-cells", ac)
        .u32("#size-cells", sc)
}

#[test]
fn uart_under_a_bus_is_translated_to_cpu_physical() {
    let m = machine(&Fdt::new(
        Node::root(1, 1).child(
            bus("soc", 1, 1)
                .ranges(
                    "ranges",
                    [1, 1, 1],
                    &[
                        (0x7e00_0000, 0x3f00_0000, 0x100_0000),
                        (0x4000_0000, 0x4000_0000, 0x1000),
                    ],
                )
                .child(pl011(0x7e20_1000, 1, 1)),
        ),
    ));
    let uart = m.uart.expect("a UART");
    assert_eq!(uart.base, PhysAddr::new(0x3f20_1000));
    assert_eq!(uart.size, 0x200);
    assert_eq!(uart.kind, UartKind::Pl011);
    assert_eq!(uart.path, "/soc/serial@7e201000");
    assert!(!uart.from_stdout_path);
}

#[test]
fn translation_goes_through_nested_buses() {
    let m = machine(&Fdt::new(
        Node::root(2, 2).child(
            bus("outer", 1, 1)
                .ranges("ranges", [1, 2, 1], &[(0, 0x1_0000_0000, 0x1000_0000)])
                .child(
                    bus("inner", 1, 1)
                        .ranges(
                            "ranges",
                            [1, 1, 1],
                            &[(0x8000_0000, 0x200_0000, 0x100_0000)],
                        )
                        .child(pl011(0x8000_1000, 1, 1)),
                ),
        ),
    ));
    assert_eq!(m.uart.expect("a UART").base, PhysAddr::new(0x1_0200_1000));
}

#[test]
fn empty_ranges_is_identity() {
    let m = machine(&Fdt::new(
        Node::root(2, 2).child(
            bus("bus", 2, 2)
                .flag("ranges")
                .child(pl011(0x900_0000, 2, 2)),
        ),
    ));
    assert_eq!(m.uart.expect("a UART").base, PhysAddr::new(0x900_0000));
}

#[test]
fn device_under_a_bus_without_ranges_is_not_translatable() {
    let m = machine(&Fdt::new(
        Node::root(2, 2)
            .u32("interrupt-parent", 1)
            .child(gic_node())
            .child(
                bus("i2c", 2, 2).child(pl011(0x900_0000, 2, 2)).child(
                    Node::new("virtio_mmio@a000000")
                        .string("compatible", "virtio,mmio")
                        .reg(2, 2, &[(0xa00_0000, 0x200)]),
                ),
            )
            // Outside every range of its bus.
            .child(
                bus("soc", 1, 1)
                    .ranges("ranges", [1, 2, 1], &[(0x7e00_0000, 0x3f00_0000, 0x1000)])
                    .child(aux_uart(0x7e21_5040, 1, 1)),
            ),
    ));
    assert_eq!(m.uart, None);
    assert!(m.virtio_mmio.is_empty());
}

// ---------------------------------------------------------------------------------------------
// DMA reach.
// ---------------------------------------------------------------------------------------------

#[test]
fn dma_limit_is_the_lowest_of_the_per_node_highest_ends() {
    let m = machine(&Fdt::new(
        Node::root(1, 1)
            .child(memory_node(1, 1, &[(0, GIB)]))
            .child(bus("soc", 1, 1).flag("ranges").ranges(
                "dma-ranges",
                [1, 1, 1],
                &[(0xc000_0000, 0, 0x3f00_0000)],
            ))
            .child(bus("scb", 2, 2).flag("ranges").ranges(
                "dma-ranges",
                [2, 1, 2],
                &[
                    (0, 0, 0x4000_0000),
                    (0x1_0000_0000, 0x8000_0000, 0x8000_0000),
                ],
            ))
            // Disabled: ignored, and so are its children.
            .child(
                bus("off", 1, 1)
                    .string("status", "disabled")
                    .ranges("dma-ranges", [1, 1, 1], &[(0, 0, 0x100_0000)])
                    .child(bus("child", 1, 1).ranges(
                        "dma-ranges",
                        [1, 1, 1],
                        &[(0, 0, 0x200_0000)],
                    )),
            )
            // Empty: no restriction.
            .child(bus("wide", 1, 1).flag("dma-ranges")),
    ));
    assert_eq!(m.dma_limit, Some(0x3f00_0000));
}

#[test]
fn empty_or_absent_dma_ranges_mean_no_limit() {
    let m = machine(&Fdt::new(
        Node::root(1, 1)
            .child(bus("soc", 1, 1).flag("ranges").flag("dma-ranges"))
            .child(bus("other", 1, 1).flag("ranges")),
    ));
    assert_eq!(m.dma_limit, None);
}

#[test]
fn dma_ranges_are_translated_through_ancestor_dma_ranges() {
    let m = machine(&Fdt::new(
        Node::root(1, 1).child(
            bus("bus", 1, 1)
                .ranges("dma-ranges", [1, 1, 1], &[(0, 0x1000_0000, 0x8000_0000)])
                .child(bus("sub", 1, 1).ranges("dma-ranges", [1, 1, 1], &[(0, 0, 0x2000_0000)])),
        ),
    ));
    // sub reaches bus addresses [0, 0x20000000), which are CPU [0x10000000, 0x30000000).
    assert_eq!(m.dma_limit, Some(0x3000_0000));
}

// ---------------------------------------------------------------------------------------------
// The console.
// ---------------------------------------------------------------------------------------------

fn two_uarts(chosen: Node, first_status: Option<&str>) -> Machine {
    let mut first = aux_uart(0x7e21_5040, 1, 1);
    if let Some(s) = first_status {
        first = first.string("status", s);
    }
    machine(&Fdt::new(
        Node::root(1, 1)
            .child(
                Node::new("aliases")
                    .string("serial0", "/soc/serial@7e201000")
                    .string("serial1", "/soc/serial@7e215040"),
            )
            .child(chosen)
            .child(
                bus("soc", 1, 1)
                    .ranges(
                        "ranges",
                        [1, 1, 1],
                        &[(0x7e00_0000, 0x3f00_0000, 0x100_0000)],
                    )
                    .child(first)
                    .child(pl011(0x7e20_1000, 1, 1)),
            ),
    ))
}

#[test]
fn stdout_path_through_an_alias_with_options() {
    let m = two_uarts(
        Node::new("chosen").string("stdout-path", "serial0:115200n8"),
        None,
    );
    let uart = m.uart.expect("a UART");
    assert_eq!(uart.base, PhysAddr::new(0x3f20_1000));
    assert_eq!(uart.compatible, "arm,pl011");
    assert!(uart.from_stdout_path);
}

#[test]
fn stdout_path_as_a_full_path_with_options() {
    let m = two_uarts(
        Node::new("chosen").string("stdout-path", "/soc/serial@7e201000:115200n8"),
        None,
    );
    let uart = m.uart.expect("a UART");
    assert_eq!(uart.base, PhysAddr::new(0x3f20_1000));
    assert!(uart.from_stdout_path);
}

#[test]
fn linux_stdout_path_is_understood_too() {
    let m = two_uarts(
        Node::new("chosen").string("linux,stdout-path", "serial0"),
        None,
    );
    assert_eq!(m.uart.expect("a UART").base, PhysAddr::new(0x3f20_1000));
}

#[test]
fn without_a_usable_stdout_path_the_first_enabled_uart_is_used() {
    for chosen in [
        Node::new("chosen"),
        Node::new("chosen").string("stdout-path", "serial7:115200n8"),
        Node::new("chosen").string("stdout-path", "/nowhere"),
    ] {
        let m = two_uarts(chosen, None);
        let uart = m.uart.expect("a UART");
        assert_eq!(uart.kind, UartKind::MiniUart);
        assert_eq!(uart.base, PhysAddr::new(0x3f21_5040));
        assert!(!uart.from_stdout_path);
    }
}

#[test]
fn disabled_uart_is_skipped() {
    // stdout-path names the disabled one: fall back to the first enabled one.
    let m = two_uarts(
        Node::new("chosen").string("stdout-path", "serial1:115200n8"),
        Some("disabled"),
    );
    let uart = m.uart.expect("a UART");
    assert_eq!(uart.kind, UartKind::Pl011);
    assert_eq!(uart.base, PhysAddr::new(0x3f20_1000));
    assert!(!uart.from_stdout_path);
}

#[test]
fn uart_clock_comes_from_its_fixed_clock() {
    let (_, virt) = sample_trees().swap_remove(0);
    let uart = machine(&virt).uart.expect("a UART");
    assert_eq!(uart.clock_hz, Some(24_000_000));
    assert_eq!(uart.base, PhysAddr::new(0x900_0000));
    assert!(uart.from_stdout_path);
}

// ---------------------------------------------------------------------------------------------
// virtio, PSCI, CPUs, GIC, command line.
// ---------------------------------------------------------------------------------------------

fn virtio(unit: u64, interrupts: &[u32]) -> Node {
    Node::new(&format!("virtio_mmio@{unit:x}"))
        .string("compatible", "virtio,mmio")
        .reg(2, 2, &[(unit, 0x200)])
        .u32s("interrupts", interrupts)
}

#[test]
fn virtio_interrupts_are_gic_interrupt_ids() {
    let m = machine(&Fdt::new(
        Node::root(2, 2)
            .u32("interrupt-parent", 1)
            .child(gic_node())
            .child(virtio(0xa00_0000, &[0, 16, 1]).flag("dma-coherent"))
            .child(virtio(0xa00_0200, &[1, 13, 4]))
            .child(virtio(0xa00_0400, &[0, 17, 1]).string("status", "disabled"))
            .child(virtio(0xa00_0600, &[]))
            .child(virtio(0xa00_0800, &[2, 1, 1])),
    ));
    let got: Vec<(u64, u64, Option<u32>, bool)> = m
        .virtio_mmio
        .iter()
        .map(|v| (v.base.as_u64(), v.size, v.irq, v.dma_coherent))
        .collect();
    assert_eq!(
        got,
        vec![
            (0xa00_0000, 0x200, Some(48), true),
            (0xa00_0200, 0x200, Some(29), false),
            (0xa00_0600, 0x200, None, false),
            (0xa00_0800, 0x200, None, false),
        ]
    );
}

fn pcie(unit: u64, size: u64) -> Node {
    Node::new(&format!("pcie@{unit:x}"))
        .string("compatible", "pci-host-ecam-generic")
        .string("device_type", "pci")
        .reg(2, 2, &[(unit, size)])
}

#[test]
fn pci_ecam_host_bridges_and_their_buses() {
    let m = machine(&Fdt::new(
        Node::root(2, 2)
            .child(pcie(0x40_1000_0000, 0x1000_0000).u32s("bus-range", &[0, 0xff]))
            // No bus-range: as many buses as the window maps (16 MiB: 16).
            .child(pcie(0x3f00_0000, 0x100_0000))
            .child(pcie(0x5000_0000, 0x20_0000).u32s("bus-range", &[2, 3]))
            // A bus-range that is not two ordered cells: a warning, the window's buses.
            .child(pcie(0x6000_0000, 0x40_0000).u32s("bus-range", &[3]))
            .child(pcie(0x7000_0000, 0x1000_0000).string("status", "disabled")),
    ));
    let ecam = |base: u64, size: u64, bus_start: u8, bus_end: u8| PciEcam {
        base,
        size,
        bus_start,
        bus_end,
    };
    assert_eq!(
        m.pci_ecam,
        vec![
            ecam(0x40_1000_0000, 0x1000_0000, 0, 255),
            ecam(0x3f00_0000, 0x100_0000, 0, 15),
            ecam(0x5000_0000, 0x20_0000, 2, 3),
            ecam(0x6000_0000, 0x40_0000, 0, 3),
        ]
    );
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(
        m.warnings[0].contains("/pcie@60000000: bus-range"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn psci_method() {
    let psci = |method: Option<&str>| {
        let mut node = Node::new("psci").strings("compatible", &["arm,psci-0.2", "arm,psci"]);
        if let Some(method) = method {
            node = node.string("method", method);
        }
        machine(&Fdt::new(Node::root(2, 2).child(node))).psci_method
    };
    assert_eq!(psci(Some("hvc")), Some(PsciMethod::Hvc));
    assert_eq!(psci(Some("smc")), Some(PsciMethod::Smc));
    assert_eq!(psci(Some("svc")), None);
    assert_eq!(psci(None), None);
    // A disabled PSCI node is no PSCI (as Linux's psci_dt_init has it).
    let disabled = Node::new("psci")
        .strings("compatible", &["arm,psci-1.0"])
        .string("method", "smc")
        .string("status", "disabled");
    assert_eq!(
        machine(&Fdt::new(Node::root(2, 2).child(disabled))).psci_method,
        None
    );
    assert_eq!(machine(&Fdt::new(Node::root(2, 2))).psci_method, None);
}

fn cpu(n: u32, method: &str) -> Node {
    Node::new(&format!("cpu@{n}"))
        .string("device_type", "cpu")
        .strings("compatible", &["arm,cortex-a53"])
        .u32("reg", n)
        .string("enable-method", method)
}

#[test]
fn cpus_are_counted() {
    let m = machine(&Fdt::new(
        Node::root(2, 2).child(
            Node::new("cpus")
                .u32("#address-cells", 1)
                .u32("#size-cells", 0)
                .child(Node::new("cpu-map").child(Node::new("cluster0")))
                .child(cpu(0, "psci"))
                .child(cpu(1, "psci"))
                .child(cpu(2, "psci"))
                .child(cpu(3, "psci"))
                .child(Node::new("l2-cache0").string("compatible", "cache")),
        ),
    ));
    assert_eq!(m.cpus, 4);
    assert_eq!(m.cpu_enable_method.as_deref(), Some("psci"));

    let mixed = machine(&Fdt::new(
        Node::root(2, 2).child(
            Node::new("cpus")
                .u32("#address-cells", 1)
                .u32("#size-cells", 0)
                .child(cpu(0, "psci"))
                .child(cpu(1, "spin-table")),
        ),
    ));
    assert_eq!(mixed.cpus, 2);
    assert_eq!(mixed.cpu_enable_method, None);
    assert_eq!(machine(&Fdt::new(Node::root(2, 2))).cpus, 0);
}

#[test]
fn gic_v2_and_v3() {
    let m = machine(&Fdt::new(Node::root(2, 2).child(gic_node())));
    let gic = m.gic.expect("a GIC");
    assert_eq!(gic.compatible, "arm,cortex-a15-gic");
    assert_eq!(gic.version, 2);
    assert_eq!(
        gic.regs,
        ranges(&[(0x800_0000, 0x1_0000), (0x801_0000, 0x1_0000)])
    );

    let v3 = machine(&Fdt::new(
        Node::root(2, 2).child(
            Node::new("interrupt-controller@8000000")
                .string("compatible", "arm,gic-v3")
                .u32("#interrupt-cells", 3)
                .reg(2, 2, &[(0x800_0000, 0x1_0000), (0x80a_0000, 0xf6_0000)]),
        ),
    ));
    let gic = v3.gic.expect("a GIC");
    assert_eq!(gic.version, 3);
    assert_eq!(
        gic.regs,
        ranges(&[(0x800_0000, 0x1_0000), (0x80a_0000, 0xf6_0000)])
    );
}

#[test]
fn gic_under_a_bus_is_translated() {
    // The Raspberry Pi 4 layout: the GIC sits at bus address 0x40041000.
    let m = machine(&Fdt::new(
        Node::root(2, 1).child(
            bus("soc", 1, 1)
                .ranges(
                    "ranges",
                    [1, 2, 1],
                    &[(0x4000_0000, 0xff80_0000, 0x80_0000)],
                )
                .child(
                    Node::new("interrupt-controller@40041000")
                        .string("compatible", "arm,gic-400")
                        .reg(1, 1, &[(0x4004_1000, 0x1000), (0x4004_2000, 0x2000)]),
                ),
        ),
    ));
    let gic = m.gic.expect("a GIC");
    assert_eq!(gic.version, 2);
    assert_eq!(
        gic.regs,
        ranges(&[(0xff84_1000, 0x1000), (0xff84_2000, 0x2000)])
    );
}

#[test]
fn model_compatible_and_bootargs() {
    let (_, virt) = sample_trees().swap_remove(0);
    let m = machine(&virt);
    assert_eq!(m.model, "linux,dummy-virt");
    assert_eq!(m.compatible, vec!["linux,dummy-virt".to_string()]);
    assert_eq!(m.bootargs, "run=demo loglevel=7");
    assert_eq!(m.cpus, 2);
    assert_eq!(m.psci_method, Some(PsciMethod::Hvc));
}

// ---------------------------------------------------------------------------------------------
// NOP tokens.
// ---------------------------------------------------------------------------------------------

#[test]
fn nop_tokens_between_properties_and_nodes_change_nothing() {
    for (name, fdt) in sample_trees() {
        let plain = Machine::from_blob(&fdt.build(), BootRanges::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let with_nops = fdt.clone().with_nops();
        let blob = with_nops.build();
        assert!(
            blob.len() > fdt.build().len(),
            "{name}: the writer put no NOPs"
        );
        let nopped = Machine::from_blob(&blob, BootRanges::default())
            .unwrap_or_else(|e| panic!("{name} with NOPs: {e}"));
        assert_eq!(plain, nopped, "{name}");
    }
}

#[test]
fn explicit_nops_in_odd_places() {
    let m = machine(&Fdt::new(
        Node::root(2, 2)
            .nop()
            .nop()
            .string("model", "nops")
            .nop()
            .child(memory_node(2, 2, &[(0x4000_0000, GIB)]).nop().nop())
            .nop()
            .child(Node::new("chosen").nop().string("bootargs", "x"))
            .nop(),
    ));
    assert_eq!(m.model, "nops");
    assert_eq!(m.memory, ranges(&[(0x4000_0000, GIB)]));
    assert_eq!(m.bootargs, "x");
}

#[test]
fn sample_trees_describe_as_expected() {
    // Sanity of the trees the other tests reuse.
    let all: Vec<(String, Machine)> = sample_trees()
        .into_iter()
        .map(|(name, fdt)| {
            let m = machine(&fdt);
            (name, m)
        })
        .collect();
    let virt = &all[0].1;
    assert_eq!(
        virt.memory,
        ranges(&[(0x4000_0000, GIB), (0x1_0000_0000, GIB)])
    );
    assert_eq!(virt.initrd, Some(range(0x4800_0000, MIB)));
    assert_eq!(virt.virtio_mmio.len(), 2);
    let pi = &all[1].1;
    assert_eq!(pi.memreserve, ranges(&[(0, 0x1000)]));
    assert_eq!(pi.dma_limit, Some(0x3f00_0000));
    assert_eq!(
        pi.uart.as_ref().map(|u| u.base),
        Some(PhysAddr::new(0x3f21_5040))
    );
    assert_eq!(placed(pi, "linux,cma"), range(0x3c00_0000, 0x400_0000));
    let small = &all[2].1;
    assert_eq!(small.memory, ranges(&[(0x8000_0000, 0x2000_0000)]));
    assert_eq!(placed(small, "pool"), range(0x8fe0_0000, 2 * MIB));
    let minimal = &all[3].1;
    assert_eq!(minimal.memory, ranges(&[(0x4000_0000, 0x800_0000)]));
}

// ---------------------------------------------------------------------------------------------
// Interrupt specifiers: the generic timer, interrupts-extended, the Raspberry Pi 3's controllers.
// ---------------------------------------------------------------------------------------------

fn timer_node(interrupts: &[u32]) -> Node {
    Node::new("timer")
        .string("compatible", "arm,armv8-timer")
        .u32s("interrupts", interrupts)
}

#[test]
fn the_timer_interrupts_are_gic_ppis_with_their_trigger() {
    // QEMU virt's timer: PPIs 13, 14, 11, 10 with level-high flags (0x104 with the CPU mask).
    let m = machine(&Fdt::new(
        Node::root(2, 2)
            .u32("interrupt-parent", 1)
            .child(gic_node())
            .child(timer_node(&[
                1, 13, 0x104, 1, 14, 0x104, 1, 11, 0x104, 1, 10, 0x104,
            ])),
    ));
    let t = m.timer.expect("a timer");
    let irq = |i: Option<ferrite_machine::Irq>| i.map(|i| (i.controller, i.hwirq, i.trigger));
    use ferrite_machine::Trigger::*;
    assert_eq!(
        irq(t.secure_phys),
        Some(("/intc@8000000".into(), 29, Level))
    );
    assert_eq!(irq(t.phys), Some(("/intc@8000000".into(), 30, Level)));
    assert_eq!(irq(t.virt), Some(("/intc@8000000".into(), 27, Level)));
    assert_eq!(irq(t.hyp), Some(("/intc@8000000".into(), 26, Level)));
}

#[test]
fn a_timer_with_bad_specifiers_is_described_without_them() {
    // A PPI number past 15 and a type the GIC does not have: refused one by one, never a crash;
    // a short list leaves the rest absent.
    let m = machine(&Fdt::new(
        Node::root(2, 2)
            .u32("interrupt-parent", 1)
            .child(gic_node())
            .child(timer_node(&[1, 16, 4, 7, 1, 4, 1, 11, 1])),
    ));
    let t = m.timer.expect("a timer");
    assert_eq!(t.secure_phys, None);
    assert_eq!(t.phys, None);
    assert_eq!(
        t.virt.map(|i| (i.hwirq, i.trigger)),
        Some((27, ferrite_machine::Trigger::Edge))
    );
    assert_eq!(t.hyp, None);
    // No timer node: no timer.
    assert_eq!(
        machine(&Fdt::new(Node::root(2, 2).child(gic_node()))).timer,
        None
    );
}

#[test]
fn interrupts_extended_names_each_controller() {
    // The Raspberry Pi 3's way: the timer on the per-core local controller (two cells), a device
    // on the ARM controller (bank, line), both through interrupts-extended.
    let local = Node::new("local_intc@40000000")
        .string("compatible", "brcm,bcm2836-l1-intc")
        .u32("#interrupt-cells", 2)
        .flag("interrupt-controller")
        .u32("phandle", 2);
    let armctrl = Node::new("interrupt-controller@7e00b200")
        .string("compatible", "brcm,bcm2836-armctrl-ic")
        .u32("#interrupt-cells", 2)
        .flag("interrupt-controller")
        .u32("phandle", 3);
    let m = machine(&Fdt::new(
        Node::root(1, 1)
            .child(local)
            .child(armctrl)
            .child(
                Node::new("timer")
                    .string("compatible", "arm,armv7-timer")
                    .u32s("interrupts-extended", &[2, 0, 4, 2, 1, 4, 2, 3, 4, 2, 2, 4]),
            )
            .child(
                Node::new("virtio_mmio@a000000")
                    .string("compatible", "virtio,mmio")
                    .reg(1, 1, &[(0xa00_0000, 0x200)])
                    .u32s("interrupts-extended", &[3, 2, 6]),
            ),
    ));
    let t = m.timer.expect("a timer");
    let virt = t.virt.expect("the virtual timer");
    assert_eq!(
        (virt.controller.as_str(), virt.hwirq),
        ("/local_intc@40000000", 3)
    );
    assert_eq!(t.phys.map(|i| i.hwirq), Some(1));
    assert_eq!(m.virtio_mmio[0].irq, Some(2 * 32 + 6));
    // Both controllers described; without reg they cannot be driven, so there is none.
    assert_eq!(m.bcm2836_intc, None);
}

#[test]
fn the_pi3_controllers_are_found_with_their_registers() {
    let local = Node::new("local_intc@40000000")
        .string("compatible", "brcm,bcm2836-l1-intc")
        .u32("#interrupt-cells", 2)
        .flag("interrupt-controller")
        .reg(1, 1, &[(0x4000_0000, 0x100)])
        .u32("phandle", 2);
    let armctrl = Node::new("interrupt-controller@3f00b200")
        .string("compatible", "brcm,bcm2836-armctrl-ic")
        .u32("#interrupt-cells", 2)
        .flag("interrupt-controller")
        .reg(1, 1, &[(0x3f00_b200, 0x200)])
        .u32("interrupt-parent", 2)
        .u32s("interrupts", &[8, 4]);
    let m = machine(&Fdt::new(Node::root(1, 1).child(local).child(armctrl)));
    let b = m.bcm2836_intc.expect("the Pi 3's controllers");
    assert_eq!(b.local_path, "/local_intc@40000000");
    assert_eq!(b.local, range(0x4000_0000, 0x100));
    assert_eq!(
        b.armctrl_path.as_deref(),
        Some("/interrupt-controller@3f00b200")
    );
    assert_eq!(b.armctrl, Some(range(0x3f00_b200, 0x200)));
}

#[test]
fn interrupts_extended_with_an_unknown_phandle_stops_the_list() {
    let m = machine(&Fdt::new(Node::root(2, 2).child(gic_node()).child(
        timer_node(&[]).u32s("interrupts-extended", &[1, 1, 13, 4, 9, 1, 14, 4]),
    )));
    let t = m.timer.expect("a timer");
    assert_eq!(t.secure_phys.map(|i| i.hwirq), Some(29));
    assert_eq!(t.phys, None);
}

// ---------------------------------------------------------------------------------------------
// A tree too large for the boot heap: counted without parsing, and its console's part alone.
// ---------------------------------------------------------------------------------------------

#[test]
fn census_counts_and_parse_filtered_keeps_only_what_is_asked() {
    use ferrite_machine::tree::DeviceTree;
    let mut many = Node::new("many");
    for i in 0..50 {
        many = many.child(Node::new(&format!("n{i}")).string("compatible", "x,y"));
    }
    let fdt = Fdt::new(
        Node::root(1, 1)
            .child(Node::new("chosen").string("stdout-path", "serial0:115200n8"))
            .child(Node::new("aliases").string("serial0", "/soc/serial@1000"))
            .child(
                Node::new("soc")
                    .u32("#address-cells", 1)
                    .u32("#size-cells", 1)
                    .flag("ranges")
                    .child(
                        Node::new("serial@1000")
                            .string("compatible", "arm,pl011")
                            .reg(1, 1, &[(0x1000, 0x100)]),
                    )
                    .child(Node::new("other@2000").string("compatible", "x,z")),
            )
            .child(many),
    );
    let blob = fdt.build();
    let census = DeviceTree::census(&blob).expect("a valid tree");
    let (nodes, props) = (census.nodes, census.props);
    assert_eq!(census.parse().nodes.len(), nodes);
    assert_eq!(nodes, 1 + 1 + 1 + 1 + 2 + 1 + 50);
    assert!(props >= 50 + 4);
    assert!(DeviceTree::heap_estimate(20_000, 200) > 2 << 20);
    assert!(DeviceTree::heap_estimate(nodes, props) < 64 << 10);
    // /chosen and /aliases first, then the console's path.
    let small = DeviceTree::parse_filtered(&blob, &mut |n| {
        n.len() == 1 && matches!(n[0], "chosen" | "aliases")
    })
    .unwrap();
    assert_eq!(small.nodes.len(), 3);
    let target = ferrite_machine::describe::stdout_path(&small).unwrap();
    assert_eq!(target, "/soc/serial@1000");
    let part = DeviceTree::parse_filtered(&blob, &mut |n| {
        let mut segs = target.split('/').filter(|c| !c.is_empty());
        n.iter().all(|x| segs.next() == Some(x))
    })
    .unwrap();
    assert_eq!(part.nodes.len(), 3, "root, soc, serial");
    assert!(part.find("/soc/other@2000").is_none());
    assert!(part.find("/many").is_none());
    assert_eq!(part.find("/soc/serial@1000").map(|_| ()), Some(()));
}
