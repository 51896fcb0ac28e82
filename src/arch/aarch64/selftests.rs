//! Self-tests of the boot path and the exception vectors, run under `run=selftest`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::arch::asm;

use aarch64_cpu::registers::{Readable, VBAR_EL1};

use super::exception::catch_exception;
use super::{boot, cpu, esr, timer};
use crate::{kassert, kassert_eq, ktest};

ktest!(runs_at_el1_after_entry_at_el1_or_el2, {
    kassert_eq!(cpu::current_el(), 1);
    let entry = crate::kernel::get().map(|k| k.boot.entry_el).unwrap_or(0);
    kassert!(entry == 1 || entry == 2, "entered at EL{entry}");
    Ok(())
});

fn marker() -> u64 {
    0x5eed
}

/// A pointer stored in data: correct only if entry.S applied the image's relocations.
static MARKER: fn() -> u64 = marker;

ktest!(relocations_applied, {
    // `marker as *const () as usize` is computed PC-relative; MARKER was written by the relocation loop.
    kassert_eq!(MARKER as *const () as usize, marker as *const () as usize);
    kassert_eq!(MARKER(), 0x5eed);
    let image = boot::image();
    let addr = marker as *const () as usize as u64;
    kassert!(
        image.text.0 <= addr && addr < image.text.1,
        "marker {addr:#x} outside the text"
    );
    kassert!(
        addr >= crate::mm::layout::KIMAGE_BASE,
        "running below the high half"
    );
    Ok(())
});

ktest!(image_sections_are_ordered_and_page_aligned, {
    let i = boot::image();
    for (start, end) in [i.text, i.rodata, i.data] {
        kassert!(
            start % 4096 == 0 && start <= end,
            "section {start:#x}..{end:#x}"
        );
    }
    kassert!(i.text.1 <= i.rodata.0 && i.rodata.1 <= i.data.0 && i.data.1 <= i.bss.0);
    let (bottom, top) = boot::boot_stack();
    kassert!(
        i.bss.0 <= bottom && top <= i.bss.1,
        "boot stack outside BSS"
    );
    let sp: u64;
    // SAFETY: reads the stack pointer into a register, nothing else.
    unsafe { asm!("mov {}, sp", out(reg) sp) };
    kassert!(
        bottom <= sp && sp < top,
        "sp {sp:#x} outside the boot stack"
    );
    Ok(())
});

ktest!(vectors_installed, {
    kassert_eq!(VBAR_EL1.get(), boot::vectors_addr());
    kassert!(boot::vectors_addr().is_multiple_of(2048));
    Ok(())
});

ktest!(brk_is_caught_and_decoded, {
    let caught = catch_exception(|| {
        // SAFETY: BRK raises a synchronous exception that catch_exception absorbs.
        unsafe { asm!("brk #0x42") }
    });
    let Some(c) = caught else {
        return Err(crate::ktest::TestError::Fail("BRK did not trap".into()));
    };
    kassert_eq!(esr::class(c.esr), esr::ec::BRK64);
    kassert_eq!(esr::iss(c.esr) & 0xffff, 0x42);
    kassert_eq!(
        esr::describe(c.esr),
        "BRK instruction (EC 0x3c): comment 0x42"
    );
    Ok(())
});

ktest!(undefined_instruction_is_caught_and_decoded, {
    let caught = catch_exception(|| {
        // SAFETY: UDF is permanently undefined; catch_exception absorbs the exception.
        unsafe { asm!("udf #0x1") }
    });
    kassert!(caught.is_some(), "UDF did not trap");
    kassert_eq!(esr::class(caught.unwrap().esr), esr::ec::UNKNOWN);
    kassert!(
        catch_exception(|| {}).is_none(),
        "nothing trapped, nothing reported"
    );
    Ok(())
});

ktest!(timer_counts_forward, {
    kassert!(
        timer::frequency() >= 1_000_000,
        "CNTFRQ {}",
        timer::frequency()
    );
    let a = timer::ticks();
    let mut spin = 0u64;
    while timer::ticks() == a && spin < 10_000_000 {
        spin += 1;
    }
    kassert!(timer::ticks() > a, "counter stuck at {a}");
    Ok(())
});

ktest!(fp_simd_usable, {
    let x = core::hint::black_box(1.5f64);
    let y = core::hint::black_box(2.25f64);
    kassert_eq!(x * y, 3.375);
    let v: Vec<f32> = (0..64).map(|i| i as f32 * 0.5).collect();
    kassert_eq!(v.iter().sum::<f32>(), 1008.0);
    Ok(())
});

ktest!(heap_collections_work, {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..10_000u64 {
        v.push(i * i);
    }
    kassert_eq!(v[9_999], 99_980_001);
    let mut map = BTreeMap::new();
    for i in 0..1_000u32 {
        map.insert(i.wrapping_mul(2_654_435_761), i);
    }
    kassert_eq!(map.len(), 1_000);
    kassert!(map.values().map(|&v| v as u64).sum::<u64>() == 499_500);
    let boxed = alloc::vec![0xa5u8; 256 * 1024].into_boxed_slice();
    kassert!(boxed.iter().all(|&b| b == 0xa5));
    Ok(())
});
