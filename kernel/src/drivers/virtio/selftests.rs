//! Self-tests of the virtio-mmio transport, the split virtqueue and virtio-blk on the running
//! machine. The data tests write only to a disk that says it is a scratch disk: its first sector
//! starts with [`SCRATCH_SIGNATURE`] (the boot tests write it into the disk they attach), it is
//! writable and holds at least 16 MiB; they write only at sectors 2048 and above, so the
//! signature stays. A disk without the signature is never written, whatever its size; without a
//! scratch disk the data tests are skipped. Every byte written is read back and compared; the
//! patterns depend on the disk offset and on a per-run seed, so misplaced sectors and stale data
//! from an earlier run both fail. The disks are the block layer's (`block`): the tests open them
//! there, one at a time, never probe them a second time, and give each back as they found it.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::blk::{BlkError, VirtioBlk, SECTOR_SIZE, S_UNSUPP};
use super::mmio::{MmioError, MmioErrorKind, MmioTransport, LEGACY_PAGE};
use super::queue::{queue_size, QueueLayout, MAX_QUEUE_SIZE, RING_ALIGN};
use crate::arch::aarch64::timer;
use crate::block::{self, Bdev, DiskState};
use crate::ktest::TestError;
use crate::mm::blkdev::{BlockDevice, BlockError};
use crate::mm::gfp::Gfp;
use crate::mm::init::PAGES;
use crate::{kassert, kassert_eq, ktest};

/// The bytes a scratch disk's first sector starts with: the tests may write to it (and to no
/// other disk). `printf FERRITE-SCRATCH-DISK | dd of=disk.img conv=notrunc` makes one.
pub const SCRATCH_SIGNATURE: &str = "FERRITE-SCRATCH-DISK";
/// The least a scratch disk holds (the tests write up to about 12 MiB into it).
const SCRATCH_BYTES: u64 = 16 << 20;
/// Nothing below this sector is ever written.
const FIRST_SCRATCH_SECTOR: u64 = 2048;
const PAGE: usize = 4096;

fn fail(what: impl core::fmt::Display) -> TestError {
    TestError::Fail(format!("{what}"))
}

/// The scratch disk, open in the block layer until dropped, which gives it back with the
/// driver's settings as they were (the self-test hooks change them).
struct Scratch(Bdev);

impl Scratch {
    /// The driver, for its own calls and test hooks.
    fn disk(&mut self) -> &mut VirtioBlk {
        self.0.device()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.disk().restore_defaults();
    }
}

/// The scratch disk, opened in the block layer (other disks opened on the way are given back
/// at once): the first free writable disk of at least 16 MiB whose first sector starts with
/// [`SCRATCH_SIGNATURE`]. Other disks are only read (their first sector), never written; the
/// swap device is not opened at all.
fn scratch_disk() -> Result<Scratch, TestError> {
    let mut sector = vec![0u8; SECTOR_SIZE];
    for info in block::devices() {
        if info.state != DiskState::Free || info.read_only || info.bytes() < SCRATCH_BYTES {
            continue;
        }
        let Ok(handle) = block::open(&info.name) else {
            continue;
        };
        let mut d = Scratch(handle);
        d.disk().restore_defaults();
        sector.fill(0);
        if d.disk().read(0, &mut sector).is_ok() && sector.starts_with(SCRATCH_SIGNATURE.as_bytes())
        {
            return Ok(d);
        }
    }
    Err(TestError::Skip(format!(
        "no scratch disk (a writable virtio-blk disk of at least 16 MiB whose first sector starts \
         with {SCRATCH_SIGNATURE}; scripts/run-tests attaches one); no other disk is ever written"
    )))
}

/// A seed that differs from run to run.
fn seed() -> u64 {
    timer::ticks() | 1
}

/// The byte expected at disk offset `pos` for `seed`.
fn pattern(seed: u64, pos: u64) -> u8 {
    let x = (pos ^ seed.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ pos as u8
}

fn fill(buf: &mut [u8], seed: u64, sector: u64) {
    let base = sector * SECTOR_SIZE as u64;
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(seed, base + i as u64);
    }
}

/// Every byte of `buf` against the pattern of the sectors from `sector`.
fn check(buf: &[u8], seed: u64, sector: u64, what: &str) -> Result<(), TestError> {
    let base = sector * SECTOR_SIZE as u64;
    for (i, &b) in buf.iter().enumerate() {
        let want = pattern(seed, base + i as u64);
        if b != want {
            let bad = buf
                .iter()
                .enumerate()
                .filter(|&(k, &v)| v != pattern(seed, base + k as u64))
                .count();
            return Err(fail(format!(
                "{what}: byte {i} (sector {}+{}) is {b:#04x}, not {want:#04x}; {bad}/{} differ",
                sector + (i / SECTOR_SIZE) as u64,
                i % SECTOR_SIZE,
                buf.len()
            )));
        }
    }
    Ok(())
}

fn io(e: BlkError) -> TestError {
    fail(e)
}

/// A slice of `len` bytes inside `v` starting `skew` bytes past a page boundary.
fn skewed(v: &mut [u8], skew: usize, len: usize) -> &mut [u8] {
    let start = (PAGE - v.as_ptr() as usize % PAGE) % PAGE + skew;
    &mut v[start..start + len]
}

#[repr(C, align(4096))]
struct Page([u8; PAGE]);

ktest!(queue_layout_fits_both_transports, {
    for shift in 0..=15u32 {
        let n = 1u16 << shift;
        let l = QueueLayout::new(n);
        let size = n as usize;
        kassert_eq!(l.desc, 0);
        // Legacy: the available ring right after the table, the used ring at the next
        // QueueAlign boundary after the available ring (used_event included).
        kassert_eq!(l.avail, 16 * size);
        kassert_eq!(
            l.used as u64,
            ((l.avail + 6 + 2 * size) as u64).next_multiple_of(LEGACY_PAGE)
        );
        // Modern: 16-, 2- and 4-byte alignment.
        kassert!(l.avail.is_multiple_of(2) && l.used.is_multiple_of(RING_ALIGN));
        kassert_eq!(l.bytes, l.used + 6 + 8 * size);
    }
    kassert_eq!(queue_size(0), None);
    kassert_eq!(queue_size(1), Some(1));
    kassert_eq!(queue_size(100), Some(64));
    kassert_eq!(queue_size(256), Some(MAX_QUEUE_SIZE));
    kassert_eq!(queue_size(u32::MAX), Some(MAX_QUEUE_SIZE));
    Ok(())
});

ktest!(mmio_probe_tells_empty_slots_from_devices, {
    let k = crate::kernel::get().ok_or(fail("kernel state not published"))?;
    let slots = &k.machine.virtio_mmio;
    if slots.is_empty() {
        return Err(TestError::Skip(
            "no virtio-mmio slots on this machine".into(),
        ));
    }
    let (mut empty, mut devices) = (0, 0);
    for slot in slots {
        match MmioTransport::probe(slot) {
            Ok(t) => {
                kassert!(t.device_id() != 0);
                kassert_eq!(t.base(), slot.base);
                devices += 1;
            }
            Err(MmioError {
                kind: MmioErrorKind::NoDevice,
                base,
            }) => {
                kassert_eq!(base, slot.base);
                empty += 1;
            }
            Err(e) => return Err(fail(e)),
        }
    }
    kassert_eq!(empty + devices, slots.len());
    Ok(())
});

ktest!(blk_page_aligned_single_page, {
    let mut scratch = scratch_disk()?;
    let disk = scratch.disk();
    let s = seed();
    let sector = FIRST_SCRATCH_SECTOR;
    let mut out = Box::new(Page([0; PAGE]));
    fill(&mut out.0, s, sector);
    // The scratch disk's signature was read once already.
    let before = disk.stats();
    disk.write(sector, &out.0).map_err(io)?;
    let mut back = Box::new(Page([0x5a; PAGE]));
    disk.read(sector, &mut back.0).map_err(io)?;
    check(&back.0, s, sector, "page-aligned read-back")?;
    let after = disk.stats();
    kassert!(
        after.write_requests == before.write_requests + 1
            && after.read_requests == before.read_requests + 1
    );
    Ok(())
});

ktest!(blk_unaligned_multi_page, {
    let mut scratch = scratch_disk()?;
    let disk = scratch.disk();
    let s = seed();
    let sector = FIRST_SCRATCH_SECTOR + 512;
    let len = 3 * PAGE + 512;
    // Odd start, four pages spanned, pieces that are not whole sectors.
    let mut out_mem = vec![0u8; len + 2 * PAGE];
    let out = skewed(&mut out_mem, 0x201, len);
    kassert!(out.as_ptr() as usize % 2 == 1);
    fill(out, s, sector);
    disk.write(sector, out).map_err(io)?;
    let mut back_mem = vec![0xa5u8; len + 2 * PAGE];
    let back = skewed(&mut back_mem, 0xfff, len);
    disk.read(sector, back).map_err(io)?;
    check(back, s, sector, "unaligned read-back")?;
    // The bytes around the buffer are untouched.
    let start = back.as_ptr() as usize - back_mem.as_ptr() as usize;
    kassert!(back_mem[..start].iter().all(|&b| b == 0xa5));
    kassert!(back_mem[start + len..].iter().all(|&b| b == 0xa5));
    Ok(())
});

ktest!(blk_boxed_64k, {
    let mut scratch = scratch_disk()?;
    let disk = scratch.disk();
    let s = seed();
    let sector = FIRST_SCRATCH_SECTOR + 2048;
    let mut out: Box<[u8]> = vec![0u8; 64 << 10].into_boxed_slice();
    fill(&mut out, s, sector);
    disk.write(sector, &out).map_err(io)?;
    disk.flush().map_err(io)?;
    let mut back: Box<[u8]> = vec![0u8; 64 << 10].into_boxed_slice();
    disk.read(sector, &mut back).map_err(io)?;
    check(&back, s, sector, "64 KiB read-back")?;
    // A part of it by itself lands where it should.
    let mut part = vec![0u8; 3 * SECTOR_SIZE];
    disk.read(sector + 37, &mut part).map_err(io)?;
    check(&part, s, sector + 37, "partial read")?;
    Ok(())
});

ktest!(blk_vectored_and_split_requests, {
    let mut scratch = scratch_disk()?;
    let disk = scratch.disk();
    let s = seed();
    // Three buffers, one of them unaligned, to consecutive sectors in one request.
    let sector = FIRST_SCRATCH_SECTOR + 6144;
    let mut a = vec![0u8; SECTOR_SIZE];
    let mut b_mem = vec![0u8; 3 * PAGE];
    let b = skewed(&mut b_mem, 0x333, 2 * PAGE);
    let mut c = vec![0u8; 3 * SECTOR_SIZE];
    fill(&mut a, s, sector);
    fill(b, s, sector + 1);
    fill(&mut c, s, sector + 1 + (2 * PAGE / SECTOR_SIZE) as u64);
    let before = disk.stats();
    disk.write_vectored(sector, &[&a, b, &c]).map_err(io)?;
    kassert_eq!(disk.stats().write_requests, before.write_requests + 1);
    let total = a.len() + b.len() + c.len();
    let mut back = vec![0u8; total];
    disk.read(sector, &mut back).map_err(io)?;
    check(&back, s, sector, "vectored write, contiguous read")?;
    let mut x = vec![0u8; 2 * SECTOR_SIZE];
    let mut y = vec![0u8; total - 2 * SECTOR_SIZE];
    disk.read_vectored(sector, &mut [&mut x, &mut y])
        .map_err(io)?;
    check(&x, s, sector, "vectored read, first")?;
    check(&y, s, sector + 2, "vectored read, second")?;

    // With three segments a request, an unaligned 40 KiB buffer needs many requests whose
    // boundaries fall inside pieces.
    disk.limit_segments(3);
    let sector = FIRST_SCRATCH_SECTOR + 6656;
    let len = 40 << 10;
    let mut out_mem = vec![0u8; len + 2 * PAGE];
    let out = skewed(&mut out_mem, 0x123, len);
    fill(out, s ^ 0xff, sector);
    let before = disk.stats();
    disk.write(sector, out).map_err(io)?;
    let writes = disk.stats().write_requests - before.write_requests;
    kassert!(
        writes >= 4,
        "only {writes} requests for 11 pieces at 3 a request"
    );
    let mut back_mem = vec![0u8; len + 2 * PAGE];
    let back = skewed(&mut back_mem, 0x5, len);
    disk.read(sector, back).map_err(io)?;
    check(back, s ^ 0xff, sector, "split read-back")?;
    Ok(())
});

ktest!(blk_large_request_is_split_by_segment_limit, {
    let mut scratch = scratch_disk()?;
    let disk = scratch.disk();
    let s = seed();
    let sector = FIRST_SCRATCH_SECTOR + 14336;
    let len = 1 << 20;
    let mut out = vec![0u8; len];
    fill(&mut out, s, sector);
    let before = disk.stats();
    disk.write(sector, &out).map_err(io)?;
    let writes = disk.stats().write_requests - before.write_requests;
    let pages = len / PAGE;
    kassert_eq!(writes as usize, pages.div_ceil(disk.max_segments()));
    let mut back = vec![0u8; len];
    disk.read(sector, &mut back).map_err(io)?;
    check(&back, s, sector, "1 MiB read-back")?;
    Ok(())
});

ktest!(blk_bounced_buffers, {
    let mut scratch = scratch_disk()?;
    let disk = scratch.disk();
    let s = seed();
    let sector = FIRST_SCRATCH_SECTOR + 10240;
    let first_bank = crate::kernel::get()
        .and_then(|k| k.machine.memory.first())
        .ok_or(fail("no RAM in the machine description"))?;
    let (ram, bank) = (first_bank.base.as_u64(), first_bank.size);
    // The device reaches RAM below `limit` (rings, request block and at least 32 MiB, or half
    // of a smaller first bank); the buffers are pages above it, so every piece of them bounces.
    let limit = (disk.min_dma_mask() + 1)
        .max(ram + (32 << 20).min(bank / 2))
        .next_multiple_of(1 << 20);
    const ORDER: u8 = 5;
    let len = (PAGE << ORDER) / 2;
    let mut held = Vec::new();
    let block = loop {
        // Everything below the limit is taken on the way; running out means there is no block
        // above it.
        let Ok(b) = PAGES.alloc_box(Gfp::KERNEL | Gfp::NOWARN, ORDER) else {
            break None;
        };
        if b.phys().as_u64() >= limit || held.len() > 100_000 {
            break Some(b);
        }
        held.push(b);
    };
    drop(held);
    let Some(mut block) = block else {
        return Err(TestError::Skip(format!(
            "no free {} KiB block above {limit:#x}",
            (PAGE << ORDER) >> 10
        )));
    };
    let result = (|| {
        if block.phys().as_u64() < limit {
            return Err(TestError::Skip(format!("no free pages above {limit:#x}")));
        }
        kassert!(disk.restrict_dma_mask(limit - 1));
        let (out, back) = block.as_mut_slice().split_at_mut(len);
        fill(out, s, sector);
        back.fill(0);
        let before = disk.segment_stats();
        disk.write(sector, out).map_err(io)?;
        disk.read(sector, back).map_err(io)?;
        let bounced = disk.segment_stats().bounced - before.bounced;
        kassert!(
            bounced >= 2 * (len / PAGE) as u64,
            "only {bounced} bounced pieces below {limit:#x}"
        );
        check(back, s, sector, "bounced read-back")
    })();
    drop(block);
    result
});

ktest!(blk_flush_range_checks_and_device_errors, {
    let mut scratch = scratch_disk()?;
    let disk = scratch.disk();
    let cap = disk.capacity_sectors();
    disk.flush().map_err(io)?;
    let mut buf = vec![0u8; 2 * SECTOR_SIZE];
    let before = disk.stats();
    for (sector, len) in [
        (cap - 1, 1024),
        (cap, 512),
        (u64::MAX, 512),
        (u64::MAX - 1, 1024),
    ] {
        match disk.read(sector, &mut buf[..len]) {
            Err(BlkError::OutOfRange { .. }) => {}
            other => return Err(fail(format!("read of {len} bytes at {sector}: {other:?}"))),
        }
    }
    match disk.write(cap, &buf[..512]) {
        Err(BlkError::OutOfRange { .. }) => {}
        other => return Err(fail(format!("write past the end: {other:?}"))),
    }
    match disk.read(FIRST_SCRATCH_SECTOR, &mut buf[..100]) {
        Err(BlkError::BadLength { len: 100 }) => {}
        other => return Err(fail(format!("read of 100 bytes: {other:?}"))),
    }
    // Refused before any I/O.
    kassert_eq!(disk.stats(), before);
    // The last sector is readable.
    disk.read(cap - 1, &mut buf[..512]).map_err(io)?;
    // A request type the device does not know comes back as UNSUPP, and the device still works.
    match disk.raw_request(0x40) {
        Err(BlkError::Io { status, .. }) if status == S_UNSUPP => {}
        other => return Err(fail(format!("unknown request type: {other:?}"))),
    }
    kassert!(disk.is_usable());
    disk.read(cap - 1, &mut buf[..512]).map_err(io)?;
    // An empty transfer is fine and does nothing.
    disk.read(FIRST_SCRATCH_SECTOR, &mut []).map_err(io)?;
    Ok(())
});

ktest!(blk_block_device_port, {
    let mut scratch = scratch_disk()?;
    let disk = scratch.disk();
    let s = seed();
    let sector = FIRST_SCRATCH_SECTOR + 4096;
    let base = disk.base().as_u64();
    let port: &mut dyn BlockDevice = disk;
    kassert_eq!(port.name(), format!("virtio-blk at {base:#x}"));
    kassert_eq!((port.sector_size(), port.sectors_per_page()), (512, 8));
    kassert!(!port.read_only());
    // Three pages to consecutive sectors: one device request each way.
    let mut out: Vec<Box<Page>> = (0..3).map(|_| Box::new(Page([0; PAGE]))).collect();
    for (i, p) in out.iter_mut().enumerate() {
        fill(&mut p.0, s, sector + 8 * i as u64);
    }
    let before = port.stats();
    let pages: Vec<&[u8]> = out.iter().map(|p| &p.0[..]).collect();
    port.write_pages(sector, &pages).map_err(fail)?;
    let mut back: Vec<Box<Page>> = (0..3).map(|_| Box::new(Page([0; PAGE]))).collect();
    let mut bufs: Vec<&mut [u8]> = back.iter_mut().map(|p| &mut p.0[..]).collect();
    port.read_pages(sector, &mut bufs).map_err(fail)?;
    for (i, p) in back.iter().enumerate() {
        check(&p.0, s, sector + 8 * i as u64, "page through the port")?;
    }
    let after = port.stats();
    kassert_eq!(after.write_requests, before.write_requests + 1);
    kassert_eq!(after.read_requests, before.read_requests + 1);
    kassert_eq!(after.sectors_written, before.sectors_written + 24);
    kassert_eq!(after.sectors_read, before.sectors_read + 24);
    kassert!(after.write_wait_ticks >= before.write_wait_ticks);
    // Past the end: refused by the driver, never sent; not a media error.
    let end = port.capacity_sectors();
    let mut spare = Box::new(Page([0; PAGE]));
    match port.read_pages(end - 4, &mut [&mut spare.0[..]]) {
        Err(e @ BlockError::Driver { .. }) => kassert!(e.detail().contains("past the end")),
        other => return Err(fail(format!("read past the end: {other:?}"))),
    }
    kassert_eq!(port.stats().read_requests, after.read_requests);
    Ok(())
});

ktest!(blk_claimed_disk_is_not_probed_twice, {
    let mut scratch = scratch_disk()?;
    let base = scratch.disk().base();
    // Every disk is claimed (by the block layer, a handle or swap): a probe sets none up again.
    let again = VirtioBlk::probe_all();
    kassert!(
        again.iter().all(|d| d.base() != base),
        "the claimed disk at {base} was set up a second time"
    );
    drop(again);
    let name = scratch.0.name().to_string();
    kassert!(
        matches!(
            block::open(&name),
            Err(block::BlockError::AlreadyOpen { .. })
        ),
        "{name} opened twice"
    );
    drop(scratch);
    // Given back on drop: it opens again, the same device.
    let mut d = scratch_disk()?;
    kassert_eq!(d.disk().base(), base);
    Ok(())
});

ktest!(blk_non_coherent_cache_maintenance_each_direction, {
    use crate::mm::dma::CACHE_OPS;
    use core::sync::atomic::Ordering::Relaxed;
    let mut scratch = scratch_disk()?;
    let disk = scratch.disk();
    disk.set_coherent(false);
    let s = seed() ^ 0x55;
    let sector = FIRST_SCRATCH_SECTOR + 20480;
    let ops = || {
        [
            CACHE_OPS[0].load(Relaxed),
            CACHE_OPS[1].load(Relaxed),
            CACHE_OPS[2].load(Relaxed),
        ]
    };
    // An unaligned multi-page buffer: written (clean), read back (bounced for partial lines, then
    // invalidated and copied).
    let len = 3 * PAGE + 1024;
    let mut out = alloc::vec![0u8; len + 8];
    let mut back = alloc::vec![0u8; len + 8];
    let (o, b) = (&mut out[3..3 + len], &mut back[5..5 + len]);
    fill(o, s, sector);
    let before = ops();
    disk.write(sector, o).map_err(io)?;
    let after_write = ops();
    kassert!(
        after_write[0] > before[0],
        "no clean before the device read the buffer"
    );
    disk.read(sector, b).map_err(io)?;
    let after_read = ops();
    kassert!(
        after_read[1] > after_write[1],
        "no invalidate before the CPU read what the device wrote"
    );
    kassert!(
        after_read[2] > after_write[2],
        "no clean+invalidate before the device wrote"
    );
    check(b, s, sector, "non-coherent read-back")
});
