//! `dtb-info` on the real trees of `$FERRITE_DTB_DIR` (QEMU `virt` dumps and the Raspberry Pi
//! trees of Debian's kernel package): every tree gives JSON with the keys the issue names, and
//! the trees we know give the facts we know. A tree that is absent is reported as SKIPPED, or
//! fails the test under `make test` (`FERRITE_REQUIRE_TREES=1`).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Runs `dtb-info` on a file and parses its JSON, failing on anything but a clean success.
fn dtb_info(path: &Path) -> Json {
    let out = Command::new(env!("CARGO_BIN_EXE_dtb-info"))
        .arg(path)
        .output()
        .expect("running dtb-info");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dtb-info {} failed ({:?}): {stderr}",
        path.display(),
        out.status
    );
    assert!(
        stderr.is_empty(),
        "dtb-info {} wrote to stderr: {stderr}",
        path.display()
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    Json::parse(&text).unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{text}", path.display()))
}

fn is_hex(j: &Json) -> bool {
    matches!(j, Json::Str(s) if s.starts_with("0x") && s.len() > 2 && u64::from_str_radix(&s[2..], 16).is_ok())
}

/// The keys and shapes the issue asks of every description.
fn check_shape(name: &str, j: &Json) {
    let pairs = |key: &str| {
        for p in j.get(key).items() {
            assert!(
                p.items().len() == 2 && p.items().iter().all(is_hex),
                "{name}: {key} entry {p}"
            );
        }
    };
    pairs("memory");
    pairs("memreserve");
    for r in j.get("reserved_memory").items() {
        assert!(matches!(r.get("name"), Json::Str(_)), "{name}: {r}");
        assert!(
            is_hex(r.get("base")) && is_hex(r.get("size")),
            "{name}: {r}"
        );
        assert!(matches!(r.get("no_map"), Json::Bool(_)), "{name}: {r}");
    }
    let dma = j.get("dma_limit");
    assert!(dma.is_null() || is_hex(dma), "{name}: dma_limit {dma}");
    let uart = j.get("uart");
    if !uart.is_null() {
        assert!(
            matches!(uart.get("compatible"), Json::Str(_)),
            "{name}: uart {uart}"
        );
        assert!(is_hex(uart.get("base")), "{name}: uart {uart}");
    }
    for v in j.get("virtio_mmio").items() {
        let v = v.items();
        assert!(
            v.len() == 3 && is_hex(&v[0]) && is_hex(&v[1]),
            "{name}: virtio {v:?}"
        );
        assert!(
            matches!(v[2], Json::Num(_) | Json::Null),
            "{name}: virtio {v:?}"
        );
    }
    let psci = j.get("psci_method");
    assert!(
        psci.is_null() || psci.str() == "hvc" || psci.str() == "smc",
        "{name}: psci {psci}"
    );
    j.get("cpus").u64();
    assert!(matches!(j.get("bootargs"), Json::Str(_)), "{name}");
    let initrd = j.get("initrd");
    assert!(
        initrd.is_null() || initrd.items().iter().all(is_hex),
        "{name}"
    );
}

fn reserved<'a>(j: &'a Json, name: &str) -> Option<&'a Json> {
    j.get("reserved_memory")
        .items()
        .iter()
        .find(|r| r.get("name").str() == name)
}

fn check_pi3(name: &str, j: &Json) {
    assert_eq!(
        j.get("memory").to_string(),
        r#"[["0x0","0x40000000"]]"#,
        "{name}"
    );
    assert_eq!(
        j.get("memreserve").to_string(),
        r#"[["0x0","0x1000"]]"#,
        "{name}"
    );
    check_bcm2837(name, j);
    let zones = j.get("zones");
    assert_eq!(zones.get("dma_end").str(), "0x3f000000", "{name}: {zones}");
    assert_eq!(
        zones.get("dma32_end").str(),
        "0x40000000",
        "{name}: {zones}"
    );
    let uart = j.get("uart");
    assert_eq!(
        uart.get("compatible").str(),
        "brcm,bcm2835-aux-uart",
        "{name}"
    );
    assert_eq!(uart.get("base").str(), "0x3f215040", "{name}");
    assert_eq!(
        uart.get("from_stdout_path"),
        &Json::Bool(true),
        "{name}: stdout-path is serial1"
    );
    let cma = reserved(j, "linux,cma").unwrap_or_else(|| panic!("{name}: no linux,cma"));
    assert_eq!(cma.get("size").str(), "0x4000000", "{name}");
    // 64 MiB at the top of the 1 GiB, 4 MiB aligned.
    assert_eq!(cma.get("base").str(), "0x3c000000", "{name}");
    assert_eq!(cma.get("dynamic"), &Json::Bool(true), "{name}");
    assert_eq!(cma.get("reusable"), &Json::Bool(true), "{name}");
    assert_eq!(cma.get("no_map"), &Json::Bool(false), "{name}");
    assert!(j.get("refused_reservations").items().is_empty(), "{name}");
}

/// What every BCM2837 (Raspberry Pi 3, Zero 2, CM3) tree says.
fn check_bcm2837(name: &str, j: &Json) {
    assert_eq!(j.get("dma_limit").str(), "0x3f000000", "{name}");
    // DMA below the dma-ranges window (or the end of a smaller RAM); DMA32 up to 4 GiB, clipped
    // to the RAM there is.
    let zones = j.get("zones");
    let dma_end = u64::from_str_radix(&zones.get("dma_end").str()[2..], 16).unwrap();
    assert!(dma_end > 0 && dma_end <= 0x3f00_0000, "{name}: {zones}");
    assert_eq!(j.get("cpus").u64(), 4, "{name}");
    assert_eq!(j.get("cpu_enable_method").str(), "spin-table", "{name}");
    assert!(j.get("psci_method").is_null(), "{name}");
    assert!(j.get("gic").is_null(), "{name}: the BCM2837 has no GIC");
    assert!(j.get("virtio_mmio").items().is_empty(), "{name}");
    let uart = j.get("uart");
    assert!(
        uart.get("base").str().starts_with("0x3f2"),
        "{name}: uart {uart}"
    );
}

/// What every BCM2711 (Raspberry Pi 4, 400, CM4) tree says.
fn check_bcm2711(name: &str, j: &Json) {
    // The firmware fills in the memory node at boot; as shipped it is a [0, 0] placeholder.
    assert_eq!(j.get("memory").to_string(), "[]", "{name}");
    assert!(
        j.get("warnings")
            .items()
            .iter()
            .any(|w| w.str().contains("zero-sized bank")),
        "{name}: {}",
        j.get("warnings")
    );
    assert_eq!(j.get("dma_limit").str(), "0x40000000", "{name}");
    // The 1 GiB DMA zone and DMA32 to 4 GiB, for the RAM the firmware will report from 0.
    let zones = j.get("zones");
    assert_eq!(zones.get("dma_end").str(), "0x40000000", "{name}: {zones}");
    assert_eq!(
        zones.get("dma32_end").str(),
        "0x100000000",
        "{name}: {zones}"
    );
    assert_eq!(
        zones.get("ram_known"),
        &Json::Bool(false),
        "{name}: {zones}"
    );
    assert_eq!(j.get("cpus").u64(), 4, "{name}");
    let uart = j.get("uart");
    assert_eq!(
        uart.get("compatible").str(),
        "brcm,bcm2835-aux-uart",
        "{name}"
    );
    assert_eq!(uart.get("base").str(), "0xfe215040", "{name}");
    let gic = j.get("gic");
    assert_eq!(gic.get("compatible").str(), "arm,gic-400", "{name}");
    assert_eq!(gic.get("version").u64(), 2, "{name}");
    // Bus address 0x40041000, through /soc's ranges (0x40000000 -> 0xff800000).
    assert_eq!(gic.get("regs").at(0).at(0).str(), "0xff841000", "{name}");
    // No RAM, so CMA cannot be placed.
    assert!(reserved(j, "linux,cma").is_none(), "{name}");
    assert!(
        j.get("refused_reservations")
            .items()
            .iter()
            .any(|r| r.get("name").str() == "linux,cma"),
        "{name}: {}",
        j.get("refused_reservations")
    );
}

fn check_virt(name: &str, j: &Json) {
    let uart = j.get("uart");
    assert_eq!(uart.get("compatible").str(), "arm,pl011", "{name}");
    assert_eq!(uart.get("base").str(), "0x9000000", "{name}");
    assert_eq!(uart.get("clock_hz").u64(), 24_000_000, "{name}");
    assert!(j.get("dma_limit").is_null(), "{name}");
    // Nothing restricts DMA: everything below 4 GiB is the DMA zone, DMA32 is empty.
    let zones = j.get("zones");
    assert_eq!(
        zones.get("dma_end"),
        zones.get("dma32_end"),
        "{name}: {zones}"
    );
    let virtio = j.get("virtio_mmio").items();
    assert_eq!(virtio.len(), 32, "{name}");
    assert_eq!(
        virtio[0].to_string(),
        r#"["0xa000000","0x200",48]"#,
        "{name}"
    );
    assert_eq!(
        virtio[31].to_string(),
        r#"["0xa003e00","0x200",79]"#,
        "{name}"
    );
    // The PCIe host bridge (where QEMU's -drive if=virtio puts a disk): ECAM high or low.
    let ecam = j.get("pci_ecam").items();
    assert_eq!(ecam.len(), 1, "{name}");
    assert!(
        ["0x4010000000", "0x3f000000"].contains(&ecam[0].at(0).str()),
        "{name}: {}",
        ecam[0]
    );
    assert_eq!(ecam[0].at(2).u64(), 0, "{name}");
    let gic = j.get("gic");
    assert_eq!(gic.get("version").u64(), 2, "{name}");
    assert_eq!(gic.get("regs").at(0).at(0).str(), "0x8000000", "{name}");
    assert!(j.get("memreserve").items().is_empty(), "{name}");
    assert!(
        j.get("warnings").items().is_empty(),
        "{name}: {}",
        j.get("warnings")
    );
    let memory = j.get("memory").items();
    assert_eq!(memory.len(), 1, "{name}");
    assert_eq!(memory[0].at(0).str(), "0x40000000", "{name}");
}

/// The facts known of a tree, by file name; `false` when the name is not known.
fn check_known(name: &str, j: &Json) -> bool {
    let memory = j.get("memory").to_string();
    let psci = || j.get("psci_method").str().to_string();
    match name {
        "bcm2837-rpi-3-b.dtb" | "bcm2837-rpi-3-b-plus.dtb" => check_pi3(name, j),
        n if n.starts_with("bcm2837-") => check_bcm2837(name, j),
        n if n.starts_with("bcm2711-") => check_bcm2711(name, j),
        "virt-1G.dtb" | "virt-disks.dtb" => {
            check_virt(name, j);
            assert_eq!(memory, r#"[["0x40000000","0x40000000"]]"#, "{name}");
            assert_eq!(psci(), "hvc", "{name}");
            assert_eq!(j.get("cpus").u64(), 1, "{name}");
        }
        "virt-5G.dtb" => {
            check_virt(name, j);
            // 5 GiB from 1 GiB: across the 4 GiB line.
            assert_eq!(memory, r#"[["0x40000000","0x140000000"]]"#, "{name}");
            assert_eq!(psci(), "hvc", "{name}");
        }
        "virt-highmem-off.dtb" => {
            check_virt(name, j);
            let bank = j.get("memory").at(0);
            let size = u64::from_str_radix(&bank.at(1).str()[2..], 16).unwrap();
            assert!(
                0x4000_0000 + size <= 1 << 32,
                "{name}: RAM above 4 GiB: {memory}"
            );
            assert_eq!(psci(), "hvc", "{name}");
        }
        "virt-smp4.dtb" => {
            check_virt(name, j);
            assert_eq!(j.get("cpus").u64(), 4, "{name}");
            assert_eq!(j.get("cpu_enable_method").str(), "psci", "{name}");
            assert_eq!(psci(), "hvc", "{name}");
        }
        "virt-el2.dtb" => {
            check_virt(name, j);
            // With EL2 for the guest, PSCI calls go to the firmware by SMC.
            assert_eq!(psci(), "smc", "{name}");
        }
        _ => return false,
    }
    true
}

#[test]
fn dtb_info_describes_every_real_tree() {
    let files = real_tree_files();
    let mut known = Vec::new();
    for (name, path) in &files {
        let j = dtb_info(path);
        check_shape(name, &j);
        if check_known(name, &j) {
            known.push(name.as_str());
        } else {
            eprintln!("note: {name}: no known facts; checked the shape of its description only");
        }
    }
    eprintln!(
        "{} tree(s) described, {} checked against known facts",
        files.len(),
        known.len()
    );
    for expected in [
        "bcm2837-rpi-3-b.dtb",
        "bcm2837-rpi-3-b-plus.dtb",
        "bcm2711-rpi-4-b.dtb",
        "virt-1G.dtb",
        "virt-5G.dtb",
        "virt-highmem-off.dtb",
        "virt-disks.dtb",
        "virt-smp4.dtb",
    ] {
        if !files.is_empty() && !known.contains(&expected) {
            missing_trees(&format!("{expected} is not in FERRITE_DTB_DIR"));
        }
    }
}

#[test]
fn dtb_info_describes_a_built_tree_exactly() {
    // Every key of the description of one tree (keys added later are not checked).
    let (_, fdt) = sample_trees().swap_remove(1);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join("built-pi.dtb");
    std::fs::write(&file, fdt.build()).unwrap();
    let j = dtb_info(&file);
    check_shape("built-pi", &j);
    let expected = concat!(
        r#"{"model":"Raspberry Pi 3 Model B","compatible":["raspberrypi,3-model-b","brcm,bcm2837"],"#,
        r#""memory":[["0x0","0x40000000"]],"memory_total":"0x40000000","memreserve":[["0x0","0x1000"]],"#,
        r#""reserved_memory":[{"name":"linux,cma","base":"0x3c000000","size":"0x4000000","no_map":false,"reusable":true,"dynamic":true}],"#,
        r#""refused_reservations":[],"dma_limit":"0x3f000000","#,
        r#""uart":{"compatible":"brcm,bcm2835-aux-uart","base":"0x3f215040","size":"0x40","path":"/soc/serial@7e215040","clock_hz":null,"from_stdout_path":true},"#,
        r#""virtio_mmio":[],"psci_method":null,"cpus":1,"cpu_enable_method":"spin-table","gic":null,"#,
        r#""bootargs":"","initrd":null,"warnings":[]}"#
    );
    let Json::Obj(members) = Json::parse(expected).unwrap() else {
        unreachable!()
    };
    for (key, value) in &members {
        assert_eq!(j.get(key), value, "{key}");
    }
}

#[test]
fn dtb_info_reports_a_missing_file_and_bad_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_dtb-info"))
        .arg("/nonexistent/tree.dtb")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/tree.dtb"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_dtb-info"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}
