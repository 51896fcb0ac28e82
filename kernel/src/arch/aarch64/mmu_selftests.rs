//! Self-tests of the translation tables on the running machine: W^X and the fault kinds each
//! forbidden access must give, the linear map's block sizes, and the MMU's own translation (AT)
//! against the software walk over the whole layout.

use alloc::vec::Vec;
use core::arch::asm;

use super::esr::{self, Access, FaultKind};
use super::exception::{catch_exception, Caught};
use super::{boot, mmu};
use crate::addr::{PhysAddr, VirtAddr};
use crate::ktest::TestError;
use crate::mm::layout::{self, Region};
use crate::{kassert, kassert_eq, ktest};

const RET: u32 = 0xd65f_03c0;

fn fault(c: Option<Caught>, what: &str) -> Result<(Caught, esr::Abort), TestError> {
    let c = c.ok_or_else(|| TestError::Fail(alloc::format!("{what} did not fault")))?;
    let a = esr::abort(c.esr).ok_or_else(|| {
        TestError::Fail(alloc::format!(
            "{what}: not an abort: {}",
            esr::describe(c.esr)
        ))
    })?;
    Ok((c, a))
}

fn read_at(addr: u64) -> Option<Caught> {
    catch_exception(|| {
        // SAFETY: the read is expected to fault; catch_exception skips it.
        unsafe { asm!("ldr {t}, [{a}]", a = in(reg) addr, t = out(reg) _) }
    })
}

fn call_at(addr: u64) -> Option<Caught> {
    catch_exception(|| {
        // SAFETY: the branch is expected to fault; catch_exception returns to the link register.
        // Everything the callee could clobber is declared.
        unsafe { asm!("blr {a}", a = in(reg) addr, clobber_abi("C")) }
    })
}

fn marker() {}

ktest!(write_to_kernel_text_is_a_permission_fault, {
    let addr = marker as *const () as u64;
    let caught = catch_exception(|| {
        // SAFETY: the write is expected to fault (text is read-only); catch_exception skips it.
        unsafe { asm!("str xzr, [{}]", in(reg) addr) }
    });
    let (c, a) = fault(caught, "a write to kernel text")?;
    kassert_eq!(esr::class(c.esr), esr::ec::DATA_ABORT_SAME);
    kassert_eq!(a.kind, FaultKind::Permission { level: 3 });
    kassert_eq!(a.access, Access::Write);
    kassert_eq!(c.far, addr);
    kassert_eq!(layout::region_of(c.far, &boot::image()), Region::KernelText);
    Ok(())
});

ktest!(executing_the_stack_is_a_permission_fault, {
    let code = [RET; 4];
    let addr = code.as_ptr() as u64;
    let (c, a) = fault(call_at(addr), "a jump to the stack")?;
    kassert_eq!(esr::class(c.esr), esr::ec::INSN_ABORT_SAME);
    kassert_eq!(a.access, Access::Execute);
    kassert!(
        matches!(a.kind, FaultKind::Permission { .. }),
        "{:?}",
        a.kind
    );
    kassert_eq!(c.far, addr);
    // Jobs run on the application's stack (the boot stack is in the kernel's BSS).
    kassert!(matches!(
        layout::region_of(addr, &boot::image()),
        Region::Application | Region::KernelBss
    ));
    Ok(())
});

/// Instructions in the kernel image's data, so they have a linear-map alias.
static CODE: [u32; 4] = [RET; 4];

ktest!(executing_the_linear_map_is_a_permission_fault, {
    let code = &CODE;
    let pa = boot::image().pa_of(code.as_ptr() as u64);
    let alias = layout::phys_to_virt(pa).as_u64();
    // The linear alias reads the same bytes: it is the same RAM.
    // SAFETY: `alias` maps the RAM of `code`, which lives until the end of this test.
    kassert_eq!(unsafe { (alias as *const u32).read_volatile() }, RET);
    let (c, a) = fault(call_at(alias), "a jump into the linear map")?;
    kassert_eq!(a.access, Access::Execute);
    kassert!(
        matches!(a.kind, FaultKind::Permission { .. }),
        "{:?}",
        a.kind
    );
    kassert_eq!(c.far, alias);
    kassert_eq!(layout::region_of(alias, &boot::image()), Region::LinearMap);
    Ok(())
});

ktest!(null_pointer_read_is_a_translation_fault, {
    let (c, a) = fault(read_at(0), "a null pointer read")?;
    // The walk stops wherever the tables end: level 0 with nothing in the application's space,
    // deeper once its regions (the stack) share the first 512 GiB with page 0.
    kassert!(
        matches!(a.kind, FaultKind::Translation { .. }),
        "{:?}",
        a.kind
    );
    kassert_eq!(a.access, Access::Read);
    kassert_eq!(c.far, 0);
    kassert_eq!(layout::region_of(0, &boot::image()), Region::NullPage);
    Ok(())
});

fn kernel() -> Result<&'static crate::kernel::Kernel, TestError> {
    crate::kernel::get().ok_or(TestError::Fail("kernel state not published".into()))
}

ktest!(unmapped_linear_map_hole_is_a_translation_fault, {
    let m = &kernel()?.machine;
    let end = m.memory.last().map(|b| b.end() as u64).unwrap_or(0);
    let hole = layout::phys_to_virt(PhysAddr::new(end)).as_u64();
    kassert!(hole < layout::LINEAR_END);
    let (c, a) = fault(
        read_at(hole),
        "a read past the end of RAM in the linear map",
    )?;
    kassert!(
        matches!(a.kind, FaultKind::Translation { .. }),
        "{:?}",
        a.kind
    );
    kassert_eq!(c.far, hole);
    Ok(())
});

ktest!(no_kernel_mapping_is_writable_and_executable, {
    let guard = crate::mm::kspace::KERNEL_PT.lock();
    let pt = guard
        .as_ref()
        .ok_or(TestError::Fail("no kernel tables".into()))?;
    let mut bad = Vec::new();
    let mut exec = 0;
    pt.for_each_mapping(|va, t, _| {
        if t.attrs.write && (t.attrs.kernel_exec || t.attrs.user_exec) {
            bad.push(va);
        }
        exec += t.attrs.kernel_exec as usize;
    });
    kassert!(bad.is_empty(), "W+X mappings at {:?}", bad);
    kassert!(exec > 0, "no executable mapping at all");
    Ok(())
});

ktest!(linear_map_uses_the_largest_blocks, {
    let m = &kernel()?.machine;
    let guard = crate::mm::kspace::KERNEL_PT.lock();
    let pt = guard
        .as_ref()
        .ok_or(TestError::Fail("no kernel tables".into()))?;
    let mut checked = 0;
    for r in mmu::linear_ranges(m) {
        let (start, end) = (r.base.as_u64(), r.end() as u64);
        for (size, level) in [(1u64 << 30, 1u8), (2 << 20, 2)] {
            let mut chunk = start.next_multiple_of(size);
            while chunk + size <= end {
                let t = pt
                    .translate(layout::phys_to_virt(PhysAddr::new(chunk)))
                    .ok_or(TestError::Fail(alloc::format!(
                        "RAM {chunk:#x} not in the linear map"
                    )))?;
                kassert!(
                    t.level <= level,
                    "RAM {chunk:#x}: level {} where {level} fits",
                    t.level
                );
                checked += 1;
                chunk += size;
                if size == 2 << 20 && checked > 4096 {
                    break;
                }
            }
        }
    }
    kassert!(checked > 0);
    Ok(())
});

ktest!(hardware_and_software_walks_agree, {
    let k = kernel()?;
    let image = boot::image();
    let mut probes: Vec<u64> = Vec::new();
    for (s, e) in [image.text, image.rodata, image.data, image.bss] {
        probes.extend([s, s + (e - s) / 2, e - 1, e]);
    }
    for r in mmu::linear_ranges(&k.machine) {
        let base = layout::phys_to_virt(r.base).as_u64();
        probes.extend([base, base + r.size / 3, base + r.size - 1, base + r.size]);
    }
    let console = crate::console::base().unwrap_or(0) as u64;
    probes.extend([
        console,
        console + 0x1000,
        layout::VMALLOC_START,
        layout::IOREMAP_START - 8,
    ]);
    probes.extend([
        0,
        0x1000,
        0x4000_0000,
        layout::USER_END - 8,
        layout::KIMAGE_BASE - 8,
    ]);
    let kernel_pt = crate::mm::kspace::KERNEL_PT.lock();
    for va in probes {
        let sw = if va >= layout::PAGE_OFFSET {
            kernel_pt
                .as_ref()
                .and_then(|pt| pt.translate(VirtAddr::new(va)))
        } else {
            crate::mm::app_space::translate(VirtAddr::new(va))
        }
        .map(|t| t.pa);
        let hw = mmu::translate_hw(VirtAddr::new(va));
        kassert!(sw == hw, "{va:#x}: software walk {sw:?}, AT S1E1R {hw:?}");
    }
    Ok(())
});

ktest!(page_tables_outgrow_the_boot_pool_into_the_page_allocator, {
    use crate::mm::pgtable::Attrs;
    use crate::mm_selftests::page_alloc::free_pages_settled;
    let free_before = free_pages_settled();
    let mut guard = crate::mm::kspace::KERNEL_PT.lock();
    let pt = guard
        .as_mut()
        .ok_or(TestError::Fail("no kernel tables".into()))?;
    let tables_before = pt.tables_in_use();
    // 160 pages 1 GiB apart: each needs its own level-2 and level-3 table.
    let base = layout::VMALLOC_START + (1 << 40);
    let target = crate::addr::PhysAddr::new(0x4000_0000);
    for i in 0..160u64 {
        pt.map(
            VirtAddr::new(base + (i << 30)),
            target,
            4096,
            Attrs::KERNEL_RO,
        )
        .map_err(|e| TestError::Fail(alloc::format!("map {i}: {e}")))?;
    }
    kassert!(
        pt.tables_in_use() >= tables_before + 320,
        "tables: {}",
        pt.tables_in_use()
    );
    for i in [0u64, 77, 159] {
        let va = VirtAddr::new(base + (i << 30));
        kassert_eq!(pt.translate(va).map(|t| t.pa), Some(target));
        kassert_eq!(mmu::translate_hw(va), Some(target));
    }
    pt.unmap(VirtAddr::new(base), 160 << 30)
        .map_err(|e| TestError::Fail(alloc::format!("{e}")))?;
    kassert_eq!(pt.tables_in_use(), tables_before);
    drop(guard);
    kassert_eq!(free_pages_settled(), free_before);
    Ok(())
});
