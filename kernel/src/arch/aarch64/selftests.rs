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
    // Jobs run on the application's stack; anything else runs on the boot stack.
    kassert!(
        (bottom <= sp && sp < top)
            || (crate::mm::layout::USER_START..crate::mm::layout::USER_END).contains(&sp),
        "sp {sp:#x} neither on the boot stack nor on the application's"
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

/// Loads all 32 vector registers and FPCR, stores to `addr` (which faults), and checks that they
/// come back as they were: the kernel's own code uses SIMD registers (copies, zeroing,
/// vectorised loops), so an exception must hand the interrupted code back its v0-v31, FPSR and
/// FPCR untouched.
fn vectors_survive_a_fault_at(region: u64) -> Result<(), crate::ktest::TestError> {
    let before: [u128; 32] = core::array::from_fn(|i| {
        0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128.rotate_left(i as u32 * 7) ^ i as u128
    });
    let mut after = [0u128; 32];
    let fpcr_in: u64 = 3 << 22; // round towards zero: not the reset value
    let fpcr_out: u64;
    // SAFETY: `before` and `after` are 512-byte arrays; `region` is a fresh lazy page of the
    // application's space, so the store faults once and is retried; every vector register is
    // declared clobbered, and FPCR is restored to its previous value before the block ends.
    unsafe {
        asm!(
            "mrs {saved}, fpcr",
            "msr fpcr, {fin}",
            "ldp q0, q1, [{b}, #0]",
            "ldp q2, q3, [{b}, #32]",
            "ldp q4, q5, [{b}, #64]",
            "ldp q6, q7, [{b}, #96]",
            "ldp q8, q9, [{b}, #128]",
            "ldp q10, q11, [{b}, #160]",
            "ldp q12, q13, [{b}, #192]",
            "ldp q14, q15, [{b}, #224]",
            "ldp q16, q17, [{b}, #256]",
            "ldp q18, q19, [{b}, #288]",
            "ldp q20, q21, [{b}, #320]",
            "ldp q22, q23, [{b}, #352]",
            "ldp q24, q25, [{b}, #384]",
            "ldp q26, q27, [{b}, #416]",
            "ldp q28, q29, [{b}, #448]",
            "ldp q30, q31, [{b}, #480]",
            "str {one}, [{addr}]",
            "stp q0, q1, [{a}, #0]",
            "stp q2, q3, [{a}, #32]",
            "stp q4, q5, [{a}, #64]",
            "stp q6, q7, [{a}, #96]",
            "stp q8, q9, [{a}, #128]",
            "stp q10, q11, [{a}, #160]",
            "stp q12, q13, [{a}, #192]",
            "stp q14, q15, [{a}, #224]",
            "stp q16, q17, [{a}, #256]",
            "stp q18, q19, [{a}, #288]",
            "stp q20, q21, [{a}, #320]",
            "stp q22, q23, [{a}, #352]",
            "stp q24, q25, [{a}, #384]",
            "stp q26, q27, [{a}, #416]",
            "stp q28, q29, [{a}, #448]",
            "stp q30, q31, [{a}, #480]",
            "mrs {fout}, fpcr",
            "msr fpcr, {saved}",
            b = in(reg) before.as_ptr(),
            a = in(reg) after.as_mut_ptr(),
            addr = in(reg) region,
            one = in(reg) 1u64,
            fin = in(reg) fpcr_in,
            fout = out(reg) fpcr_out,
            saved = out(reg) _,
            out("v0") _,
            out("v1") _,
            out("v2") _,
            out("v3") _,
            out("v4") _,
            out("v5") _,
            out("v6") _,
            out("v7") _,
            out("v8") _,
            out("v9") _,
            out("v10") _,
            out("v11") _,
            out("v12") _,
            out("v13") _,
            out("v14") _,
            out("v15") _,
            out("v16") _,
            out("v17") _,
            out("v18") _,
            out("v19") _,
            out("v20") _,
            out("v21") _,
            out("v22") _,
            out("v23") _,
            out("v24") _,
            out("v25") _,
            out("v26") _,
            out("v27") _,
            out("v28") _,
            out("v29") _,
            out("v30") _,
            out("v31") _,
        );
    }
    for i in 0..32 {
        kassert!(
            after[i] == before[i],
            "v{i} is {:#x} after the fault, was {:#x}",
            after[i],
            before[i]
        );
    }
    kassert_eq!(fpcr_out, fpcr_in);
    Ok(())
}

fn simd_region() -> Result<u64, crate::ktest::TestError> {
    crate::mm::app_space::mmap(4096, crate::mm::vma::Prot::RW, "ktest-simd")
        .map_err(|e| crate::ktest::TestError::Fail(alloc::format!("{e}")))
}

ktest!(faults_preserve_the_interrupted_codes_vector_registers, {
    // A demand-zero fault (the allocator, page zeroing, the table walk) inside the block.
    let region = simd_region()?;
    let result = vectors_survive_a_fault_at(region);
    let _ = crate::mm::app_space::munmap(region, 4096);
    result
});

ktest!(
    swap_in_faults_preserve_the_interrupted_codes_vector_registers,
    {
        // A swap-in fault (disk I/O, checksums, reclaim) inside the block: that path's code does
        // use SIMD registers.
        if !crate::mm::swapfile::SWAP.active() {
            return Err(crate::ktest::TestError::Skip("no active swap area".into()));
        }
        let region = simd_region()?;
        // SAFETY: inside the region just mapped.
        unsafe { (region as *mut u64).write_volatile(7) };
        let result = crate::mm::app_space::madvise_pageout(region, 4096)
            .map_err(|e| crate::ktest::TestError::Fail(alloc::format!("{e}")))
            .and_then(|_| vectors_survive_a_fault_at(region));
        let _ = crate::mm::app_space::munmap(region, 4096);
        result
    }
);

ktest!(jobs_run_on_the_application_stack, {
    // The job (this self-test runner) runs on the stack app::run mapped in the low half.
    let sp: u64;
    // SAFETY: reads the stack pointer only.
    unsafe { asm!("mov {}, sp", out(reg) sp) };
    kassert!(
        (crate::mm::layout::USER_START..crate::mm::layout::USER_END).contains(&sp),
        "sp {sp:#x} is not in the application's half"
    );
    let spsel: u64;
    // SAFETY: reads SPSel only.
    unsafe { asm!("mrs {}, spsel", out(reg) spsel) };
    kassert!(spsel == 0, "not running on SP_EL0");
    Ok(())
});

ktest!(simd_fletcher_sums_match_the_portable_ones, {
    // Every bit of the swap checksum's SIMD sums must equal the portable definition's.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut words = alloc::vec![0u64; 1024];
    for w in words.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *w = x;
    }
    // Both the aligned (vector) and the unaligned (portable) starts.
    for start in [0, 1, 2] {
        for len in [0, 4, 8, 12, 512, 1020] {
            let a = [x, !x, x.rotate_left(7), 3];
            let b = [1, 2, x ^ 5, 0];
            let w = &words[start..start + len];
            kassert_eq!(
                super::simd::fletcher4(a, b, w),
                crate::mm::swapfile::fletcher4_portable(a, b, w)
            );
        }
    }
    Ok(())
});
