//! Self-tests of the block layer's registry on the running machine: the disks found are named
//! `vda`, `vdb`, ... once each, the active swap device is never handed out, an open disk is
//! its opener's alone until the handle drops, and a handle moves sectors between a disk and an
//! application's swappable memory through its kernel bounce buffers. Writes go only to the
//! tests' scratch disk (its first sector starts with `FERRITE-SCRATCH-DISK`, see the README's
//! *Disks*), at sectors no other self-test uses; other disks are only read (their first sector).

use alloc::vec;
use alloc::vec::Vec;

use crate::block::{self, Bdev, BlockError, DiskState};
use crate::ktest::TestError;
use crate::mm::context::Context;
use crate::mm::layout::USER_END;
use crate::mm::swapfile::SWAP;
use crate::{kassert, kassert_eq, ktest};

/// The first sector these tests write (14 MiB in: the driver's tests stay below 11 MiB).
const FIRST_SECTOR: u64 = 28672;

fn fail(what: impl core::fmt::Display) -> TestError {
    TestError::Fail(alloc::format!("{what}"))
}

fn no_disk() -> TestError {
    TestError::Skip("no virtio-blk disk attached".into())
}

/// The scratch disk, opened: the first free writable disk of at least 16 MiB whose first sector,
/// read through a handle, starts with the signature (other disks are given back at once).
fn scratch() -> Result<Bdev, TestError> {
    for info in block::devices() {
        if info.state != DiskState::Free || info.read_only || info.bytes() < 16 << 20 {
            continue;
        }
        let Ok(mut disk) = block::open(&info.name) else {
            continue;
        };
        let mut first = vec![0u8; info.sector_size as usize];
        if disk.read(0, &mut first).is_ok() && first.starts_with(b"FERRITE-SCRATCH-DISK") {
            return Ok(disk);
        }
    }
    Err(TestError::Skip(
        "no scratch disk (a writable disk whose first sector starts with FERRITE-SCRATCH-DISK)"
            .into(),
    ))
}

ktest!(block_disks_are_named_in_probe_order_once_each, {
    let disks = block::devices();
    if disks.is_empty() {
        return Err(no_disk());
    }
    for (i, d) in disks.iter().enumerate() {
        kassert_eq!(d.name, block::disk_name("vd", i));
        kassert!(d.sectors > 0 && d.sector_size.is_power_of_two());
        kassert!(
            disks[..i].iter().all(|e| e.device != d.device),
            "{} ({}) is registered twice",
            d.name,
            d.device
        );
    }
    // At most one is swap, and only with an active area.
    let swap = disks.iter().filter(|d| d.state == DiskState::Swap).count();
    kassert_eq!(swap, SWAP.active() as usize);
    Ok(())
});

ktest!(block_swap_device_cannot_be_opened, {
    let disks = block::devices();
    let Some(swap) = disks.iter().find(|d| d.state == DiskState::Swap) else {
        return Err(TestError::Skip(
            "no swap device (attach a mkswap'd virtio-blk disk)".into(),
        ));
    };
    match block::open(&swap.name) {
        Err(e @ BlockError::SwapDevice { .. }) => kassert_eq!(e.errno(), "EBUSY"),
        Err(e) => return Err(fail(alloc::format!("opening {}: {e}", swap.name))),
        Ok(_) => return Err(fail(alloc::format!("{} (swap) was handed out", swap.name))),
    }
    // Still swap, and swap still works through it.
    kassert_eq!(block::devices(), disks);
    kassert!(SWAP.active());
    Ok(())
});

ktest!(block_open_is_exclusive_until_the_handle_drops, {
    let Some(free) = block::devices()
        .into_iter()
        .find(|d| d.state == DiskState::Free)
    else {
        return Err(no_disk());
    };
    let handle = block::open(&free.name).map_err(fail)?;
    kassert_eq!(handle.sectors(), free.sectors);
    let listed = block::devices();
    let me = listed.iter().find(|d| d.name == free.name);
    kassert!(me.is_some_and(|d| d.state == DiskState::Open));
    match block::open(&free.name) {
        Err(BlockError::AlreadyOpen { .. }) => {}
        Err(e) => return Err(fail(e)),
        Ok(_) => return Err(fail(alloc::format!("{} opened twice", free.name))),
    }
    drop(handle);
    let listed = block::devices();
    let me = listed.iter().find(|d| d.name == free.name);
    kassert!(me.is_some_and(|d| d.state == DiskState::Free));
    kassert!(matches!(
        block::open("nosuchdisk"),
        Err(BlockError::NoSuchDisk { .. })
    ));
    Ok(())
});

ktest!(
    block_handle_moves_application_memory_through_bounce_buffers,
    {
        let mut disk = scratch()?;
        if crate::runtime::heap::stats().is_none() {
            return Err(TestError::Skip(
                "no application heap (jobs get one from runtime::run)".into(),
            ));
        }
        let seed = crate::arch::aarch64::timer::ticks();
        let byte = |i: usize| ((i as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8;
        // 10 pages and 3 sectors from an odd sector, out of the application's heap (the low half,
        // swappable), the way an application's buffer comes: whole-page runs and a read-modify-write.
        let len = 10 * 4096 + 3 * 512;
        let sector = FIRST_SECTOR + 1;
        let out: Vec<u8> = {
            let _application = Context::enter_application();
            (0..len).map(byte).collect()
        };
        kassert!((out.as_ptr() as u64) < USER_END, "not application memory");
        // With swap, its pages go out first: the handle's copy faults them back in.
        if SWAP.active() {
            let start = (out.as_ptr() as u64).next_multiple_of(4096);
            let end = (out.as_ptr() as u64 + len as u64) & !4095;
            crate::mm::app_space::madvise_pageout(start, end - start)
                .map_err(|e| fail(alloc::format!("madvise_pageout: {e:?}")))?;
        }
        disk.write(sector, &out).map_err(fail)?;
        disk.flush().map_err(fail)?;
        let mut back: Vec<u8> = {
            let _application = Context::enter_application();
            vec![0u8; len]
        };
        disk.read(sector, &mut back).map_err(fail)?;
        let bad = (0..len).filter(|&i| back[i] != byte(i)).count();
        kassert!(bad == 0, "{bad} of {len} bytes read back differ");
        // The sectors around it are the driver's way too: the same bytes through it.
        let mut raw = vec![0u8; len];
        disk.device().read(sector, &mut raw).map_err(fail)?;
        kassert!(raw == out, "the driver reads other bytes than were written");
        // Errors come before the device: a misaligned length, the sector past the end.
        let reads = crate::mm::blkdev::BlockDevice::stats(disk.device()).read_requests;
        kassert!(matches!(
            disk.read(sector, &mut back[..100]),
            Err(BlockError::BadLength { len: 100, .. })
        ));
        let end = disk.sectors();
        kassert!(matches!(
            disk.write(end, &out[..512]),
            Err(BlockError::OutOfRange { .. })
        ));
        kassert_eq!(
            crate::mm::blkdev::BlockDevice::stats(disk.device()).read_requests,
            reads
        );
        Ok(())
    }
);
