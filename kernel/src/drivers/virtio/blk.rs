//! virtio-blk (virtio 1.x §5.2) over virtio-mmio: synchronous, polled read, write and flush of
//! 512-byte sectors, with multi-segment requests built from the caller's buffers.
//!
//! Owns one claimed block device: its transport, its single request queue, a small coherent
//! block for the request header and status byte, and the streaming DMA mappings of the caller's
//! buffers while a request is in flight. A request is `header (device reads) | data segments |
//! status byte (device writes)`; the data is split at the page boundaries of the caller's
//! buffers (which may be unaligned and span pages), each piece borrowed by its own
//! `dma_map_single` mapping (bounced by the DMA API if the device cannot reach it) for as long as
//! the request runs, contiguous pieces merged into one
//! descriptor, and requests longer than the device's segment limit split into several.
//! Must never start I/O outside the disk (checked first), never report success for a request
//! the device did not complete with status OK, and never let a device that stopped answering
//! keep memory the caller gets back: after a timeout the device is reset and the driver refuses
//! further requests. Implements mm's block-device port (`mm::blkdev::BlockDevice`), through which
//! swap uses the disk: an `IOERR` status is a media error, every other failure a driver error.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::mem::ManuallyDrop;
use core::sync::atomic::{fence, Ordering};

use super::device_id;
use super::mmio::{MmioError, MmioErrorKind, MmioTransport, Version};
use super::queue::{queue_size, QueueError, Segment, VirtQueue};
use crate::addr::{PhysAddr, PAGE_SIZE};
use crate::machine::VirtioMmio;
use crate::mm::blkdev::{BlockDevice, BlockError, BlockStats};
use crate::mm::dma::{
    dma_alloc_coherent, dma_bit_mask, dma_map_single, Direction, DmaAddr, DmaBuf, DmaCoherent,
    DmaDevice, DmaError, DmaMapping, DmaPod, FromDevice, ToDevice,
};

/// The unit of every virtio-blk address and length.
pub const SECTOR_SIZE: usize = 512;

/// Feature bits (§5.2.3).
pub mod feature {
    pub const SIZE_MAX: u64 = 1 << 1;
    pub const SEG_MAX: u64 = 1 << 2;
    pub const RO: u64 = 1 << 5;
    pub const BLK_SIZE: u64 = 1 << 6;
    pub const FLUSH: u64 = 1 << 9;
}

/// What this driver accepts when offered (`VERSION_1` is added by the transport).
/// ACCESS_PLATFORM: the device's DMA goes through the platform's translation (its `dma-ranges`),
/// which is what the DMA API gives it anyway.
const SUPPORTED: u64 = feature::SIZE_MAX
    | feature::SEG_MAX
    | feature::BLK_SIZE
    | feature::FLUSH
    | super::mmio::feature::ACCESS_PLATFORM;

// Configuration space offsets (§5.2.4).
const CFG_CAPACITY: u64 = 0;
const CFG_SIZE_MAX: u64 = 8;
const CFG_SEG_MAX: u64 = 12;

// Request types and status values (§5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;
/// Written into the status byte before submission: still there means the device never wrote it.
const S_NOT_WRITTEN: u8 = 0xff;

/// The request header (`struct virtio_blk_req`'s first fields, little-endian), at the start of
/// the driver's coherent block.
#[derive(Clone, Copy)]
#[repr(C)]
struct ReqHeader {
    kind: u32,
    reserved: u32,
    sector: u64,
}

// SAFETY: `#[repr(C)]` of two u32 and a u64 at offsets 0, 4 and 8: no padding, and every bit
// pattern is a value.
unsafe impl DmaPod for ReqHeader {}

/// The request header's and status byte's places in the driver's coherent block.
const HEADER_LEN: u32 = core::mem::size_of::<ReqHeader>() as u32;
const STATUS_OFFSET: usize = 16;
const REQ_BLOCK: usize = 64;

/// How long one request may take before the device is declared dead.
const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Why a block operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlkError {
    Mmio(MmioError),
    Queue(QueueError),
    Dma(DmaError),
    /// A buffer whose length is not a multiple of 512.
    BadLength {
        len: usize,
    },
    /// The request reaches past the end of the disk.
    OutOfRange {
        sector: u64,
        sectors: u64,
        capacity: u64,
    },
    /// A write to a device that offers `VIRTIO_BLK_F_RO`.
    ReadOnly,
    /// The device completed the request with a status other than OK.
    Io {
        sector: u64,
        status: u8,
    },
    /// The device's segment limit is too small for the buffers' layout.
    TooFragmented,
    /// The device stopped answering earlier and was reset; the driver is out of service.
    Broken,
    /// No memory for the request's bookkeeping (a clear error instead of an abort: swap I/O
    /// runs when memory is short).
    NoMemory,
}

/// A vector with room for `n` entries, or `NoMemory`: the per-request lists never grow past
/// what is reserved here, so pushing onto them never allocates.
fn scratch<T>(n: usize) -> Result<Vec<T>, BlkError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| BlkError::NoMemory)?;
    Ok(v)
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkError::Mmio(e) => write!(f, "{e}"),
            BlkError::Queue(e) => write!(f, "virtio-blk: {e}"),
            BlkError::Dma(e) => write!(f, "virtio-blk: {e}"),
            BlkError::BadLength { len } => {
                write!(
                    f,
                    "virtio-blk: {len}-byte buffer is not whole 512-byte sectors"
                )
            }
            BlkError::OutOfRange {
                sector,
                sectors,
                capacity,
            } => write!(
                f,
                "virtio-blk: sectors {sector}+{sectors} past the end ({capacity} sectors)"
            ),
            BlkError::ReadOnly => write!(f, "virtio-blk: the disk is read-only"),
            BlkError::Io { sector, status } => {
                let what = match *status {
                    S_IOERR => "I/O error (IOERR)",
                    S_UNSUPP => "request not supported (UNSUPP)",
                    S_NOT_WRITTEN => "no status written by the device",
                    _ => "unknown status",
                };
                write!(f, "virtio-blk: {what} at sector {sector} (status {status})")
            }
            BlkError::TooFragmented => {
                write!(
                    f,
                    "virtio-blk: buffers too fragmented for the segment limit"
                )
            }
            BlkError::Broken => write!(f, "virtio-blk: out of service after a device failure"),
            BlkError::NoMemory => write!(f, "virtio-blk: no memory for the request"),
        }
    }
}

impl From<MmioError> for BlkError {
    fn from(e: MmioError) -> BlkError {
        BlkError::Mmio(e)
    }
}
impl From<QueueError> for BlkError {
    fn from(e: QueueError) -> BlkError {
        BlkError::Queue(e)
    }
}
impl From<DmaError> for BlkError {
    fn from(e: DmaError) -> BlkError {
        BlkError::Dma(e)
    }
}

/// What a failure means to a user of the block-device port: only the device's `IOERR` says
/// anything about the media.
impl From<BlkError> for BlockError {
    fn from(e: BlkError) -> BlockError {
        match e {
            BlkError::Io {
                sector,
                status: S_IOERR,
            } => BlockError::Media {
                sector,
                detail: text(&e, "virtio-blk: I/O error (IOERR)"),
            },
            // Fixed words need no allocation (the failure may be running out of memory).
            BlkError::NoMemory => BlockError::Driver {
                detail: "virtio-blk: no memory for the request".into(),
            },
            BlkError::Broken => BlockError::Driver {
                detail: "virtio-blk: out of service after a device failure".into(),
            },
            e => BlockError::Driver {
                detail: text(&e, "virtio-blk: the request failed"),
            },
        }
    }
}

/// The error's words without risking an allocation failure (this runs inside reclaim, when
/// memory may be out): formatted into a buffer on the stack, then copied into a string only if
/// memory allows; `fallback` otherwise.
fn text(e: &BlkError, fallback: &'static str) -> alloc::borrow::Cow<'static, str> {
    struct Buf {
        bytes: [u8; 192],
        len: usize,
    }
    impl fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            if end > self.bytes.len() {
                return Err(fmt::Error);
            }
            self.bytes[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut buf = Buf {
        bytes: [0; 192],
        len: 0,
    };
    let mut out = String::new();
    if fmt::Write::write_fmt(&mut buf, format_args!("{e}")).is_err()
        || out.try_reserve_exact(buf.len).is_err()
    {
        return fallback.into();
    }
    // Whole `&str`s were copied in, so the bytes are UTF-8.
    out.push_str(core::str::from_utf8(&buf.bytes[..buf.len]).unwrap_or(fallback));
    out.into()
}

/// How requests were laid out, since the device was set up (the port's `BlockStats` count the
/// requests, sectors and waits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentStats {
    /// Data descriptors handed to the device (after merging contiguous pieces).
    pub data: u64,
    /// Data pieces the DMA API had to bounce (out of the device's reach).
    pub bounced: u64,
}

/// A virtio block device, claimed and ready.
pub struct VirtioBlk {
    transport: MmioTransport,
    /// `virtio-blk at 0xa003e00`: the port's name for it.
    name: String,
    /// Dropped by hand, only after the device has been reset (see `Drop`).
    queue: ManuallyDrop<VirtQueue>,
    /// Request header at 0, status byte at `STATUS_OFFSET`; dropped like `queue`.
    req: ManuallyDrop<DmaCoherent>,
    dev: DmaDevice,
    capacity: u64,
    read_only: bool,
    /// Data descriptors one request may carry.
    max_segments: usize,
    /// Bytes one descriptor may carry.
    size_max: u32,
    /// The DMA mask, coherence and segment limit as set up, which the self-tests' hooks change
    /// and `restore_defaults` puts back (the disk outlives a test: the block layer keeps it).
    defaults: (u64, bool, usize),
    broken: bool,
    stats: BlockStats,
    segments: SegmentStats,
    /// Scratch for building a chain, kept to avoid an allocation per request.
    chain: Vec<Segment>,
}

impl fmt::Debug for VirtioBlk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VirtioBlk({}, {} sectors, {:?})",
            self.transport.base(),
            self.capacity,
            *self.queue
        )
    }
}

impl VirtioBlk {
    /// Every virtio-blk device the machine description lists, set up, from the highest slot
    /// address down: on QEMU `virt` the first `-device virtio-blk-device` takes the highest
    /// slot, so this is command-line order there. Slots that are empty, hold other devices or
    /// are claimed already are skipped; devices that fail to initialise are reported in the
    /// log and skipped.
    pub fn probe_all() -> Vec<VirtioBlk> {
        let mut disks = Vec::new();
        let Some(kernel) = crate::kernel::get() else {
            return disks;
        };
        let mut slots: Vec<&VirtioMmio> = kernel.machine.virtio_mmio.iter().collect();
        slots.sort_by_key(|s| core::cmp::Reverse(s.base));
        for slot in slots {
            match MmioTransport::probe(slot) {
                Ok(t) if t.device_id() == device_id::BLOCK => match VirtioBlk::new(t) {
                    Ok(disk) => disks.push(disk),
                    Err(BlkError::Mmio(MmioError {
                        kind: MmioErrorKind::Busy,
                        ..
                    })) => {}
                    Err(e) => log::warn!("{e}"),
                },
                Ok(_) => {}
                Err(MmioError {
                    kind: MmioErrorKind::NoDevice,
                    ..
                }) => {}
                Err(e) => log::warn!("{e}"),
            }
        }
        disks
    }

    /// Sets up the block device behind a probed transport: negotiation, the request queue,
    /// `DRIVER_OK`.
    pub fn new(mut t: MmioTransport) -> Result<VirtioBlk, BlkError> {
        if t.device_id() != device_id::BLOCK {
            return Err(BlkError::Mmio(MmioError {
                base: t.base(),
                kind: MmioErrorKind::WrongDevice {
                    expected: device_id::BLOCK,
                    found: t.device_id(),
                },
            }));
        }
        let features = t.negotiate(SUPPORTED)?;
        let read_only = t.device_features() & feature::RO != 0;
        // The legacy transport takes the ring's page number in 32 bits: rings below 2^44.
        let mask = match t.version() {
            Version::Legacy => dma_bit_mask(44),
            Version::Modern => dma_bit_mask(64),
        };
        let dev = DmaDevice::new(
            "virtio-blk",
            t.dma_ranges().to_vec(),
            mask,
            t.dma_coherent(),
        );
        let max = t.queue_max(0)?;
        let size = queue_size(max).filter(|&s| s >= 4).ok_or(MmioError {
            base: t.base(),
            kind: MmioErrorKind::QueueTooSmall {
                queue: 0,
                max,
                need: 4,
            },
        })?;
        let queue = VirtQueue::new(&dev, 0, size)?;
        let req = dma_alloc_coherent(&dev, REQ_BLOCK)?;
        let (desc, avail, used) = queue.addresses();
        t.setup_queue(0, size, desc, avail, used)?;

        let capacity = t.config_read64(CFG_CAPACITY);
        let seg_max = if features & feature::SEG_MAX != 0 {
            t.config_read32(CFG_SEG_MAX)
        } else {
            0
        };
        let size_max = match t.config_read32(CFG_SIZE_MAX) {
            n if features & feature::SIZE_MAX != 0 && n >= PAGE_SIZE as u32 => n,
            _ => u32::MAX,
        };
        // Header and status take two descriptors of the queue.
        let mut max_segments = size as usize - 2;
        if seg_max != 0 {
            max_segments = max_segments.min(seg_max as usize);
        }
        if let Err(e) = t.driver_ok() {
            // The queue is live: the device must forget it before its memory goes.
            let _ = t.reset();
            return Err(e.into());
        }
        log::info!(
            "virtio-blk at {} ({}, irq {}): {} sectors ({} MiB){}, queue {}, {} segments, features {:#x}",
            t.base(),
            t.version(),
            t.irq().map_or(alloc::string::String::from("none"), |i| alloc::format!("{i}")),
            capacity,
            capacity / 2048,
            if read_only { ", read-only" } else { "" },
            size,
            max_segments,
            features
        );
        let defaults = (dev.mask, dev.coherent, max_segments);
        Ok(VirtioBlk {
            name: alloc::format!("virtio-blk at {:#x}", t.base().as_u64()),
            transport: t,
            queue: ManuallyDrop::new(queue),
            req: ManuallyDrop::new(req),
            dev,
            capacity,
            read_only,
            max_segments,
            size_max,
            defaults,
            broken: false,
            stats: BlockStats::default(),
            segments: SegmentStats::default(),
            chain: Vec::with_capacity(size as usize),
        })
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity * SECTOR_SIZE as u64
    }
    /// The slot's base address (identifies the disk).
    pub fn base(&self) -> PhysAddr {
        self.transport.base()
    }
    /// Whether writes may sit in a volatile cache until `flush` (FLUSH negotiated).
    pub fn has_flush(&self) -> bool {
        self.transport.features() & feature::FLUSH != 0
    }
    /// Data descriptors one request carries at most.
    pub fn max_segments(&self) -> usize {
        self.max_segments
    }
    /// How requests were laid out (the port's [`BlockDevice::stats`] count them).
    pub fn segment_stats(&self) -> SegmentStats {
        self.segments
    }
    /// False once the device stopped answering and was reset.
    pub fn is_usable(&self) -> bool {
        !self.broken
    }

    /// Reads `buf.len() / 512` sectors starting at `sector` into `buf` (any alignment; its
    /// length a multiple of 512).
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        self.transfer::<FromDevice>(T_IN, sector, &mut [buf])
    }

    /// Writes `buf` to the sectors starting at `sector`.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlkError> {
        self.transfer::<ToDevice>(T_OUT, sector, &mut [buf])
    }

    /// Reads consecutive sectors starting at `sector` into several buffers, in order, in as few
    /// requests as the device allows (each buffer a multiple of 512 bytes).
    pub fn read_vectored(&mut self, sector: u64, bufs: &mut [&mut [u8]]) -> Result<(), BlkError> {
        let mut list = scratch(bufs.len())?;
        list.extend(bufs.iter_mut().map(|b| &mut **b));
        self.transfer::<FromDevice>(T_IN, sector, &mut list)
    }

    /// Writes several buffers to consecutive sectors starting at `sector`.
    pub fn write_vectored(&mut self, sector: u64, bufs: &[&[u8]]) -> Result<(), BlkError> {
        let mut list = scratch(bufs.len())?;
        list.extend(bufs.iter().copied());
        self.transfer::<ToDevice>(T_OUT, sector, &mut list)
    }

    /// Makes every completed write durable. A device without `VIRTIO_BLK_F_FLUSH` writes
    /// through, so there is nothing to do.
    pub fn flush(&mut self) -> Result<(), BlkError> {
        self.usable()?;
        if !self.has_flush() {
            return Ok(());
        }
        self.stats.flushes += 1;
        self.submit(T_FLUSH, 0, 0)
    }

    /// A request of type `kind` with no data (self-tests: an unknown type must give UNSUPP).
    pub(super) fn raw_request(&mut self, kind: u32) -> Result<(), BlkError> {
        self.usable()?;
        self.submit(kind, 0, 0)
    }

    /// The lowest DMA mask that still covers the rings and the request block.
    pub(super) fn min_dma_mask(&self) -> u64 {
        let (desc, _, _) = self.queue.addresses();
        let rings_end = desc + self.queue.layout().bytes as u64;
        let req_end = self.req.dma_addr().as_u64() + REQ_BLOCK as u64;
        rings_end.max(req_end) - 1
    }

    /// Narrows the DMA mask (self-tests of bounce buffers: memory above it is bounced). Refused
    /// (false) below `min_dma_mask`.
    pub(super) fn restrict_dma_mask(&mut self, mask: u64) -> bool {
        if mask < self.min_dma_mask() {
            return false;
        }
        self.dev.mask = mask;
        true
    }

    /// Treats the device as not snooping the caches (self-tests of the DMA API's cache
    /// maintenance with a device that really does DMA).
    pub(super) fn set_coherent(&mut self, coherent: bool) {
        self.dev.coherent = coherent;
    }

    /// Lowers the segment limit (self-tests of request splitting).
    pub(super) fn limit_segments(&mut self, n: usize) {
        self.max_segments = n.clamp(1, self.max_segments);
    }

    /// Undoes the self-test hooks above: the DMA mask, coherence and segment limit the device
    /// was set up with.
    pub(super) fn restore_defaults(&mut self) {
        (self.dev.mask, self.dev.coherent, self.max_segments) = self.defaults;
    }

    fn usable(&self) -> Result<(), BlkError> {
        if self.broken {
            Err(BlkError::Broken)
        } else {
            Ok(())
        }
    }

    /// Checks a request and runs it as one or more device requests of at most `max_segments`
    /// data pieces, each a whole number of sectors.
    fn transfer<'b, D: Direction>(
        &mut self,
        kind: u32,
        sector: u64,
        bufs: &mut [D::Buf<'b>],
    ) -> Result<(), BlkError> {
        self.usable()?;
        let mut total = 0usize;
        for b in bufs.iter() {
            let len = b.len();
            if len % SECTOR_SIZE != 0 {
                return Err(BlkError::BadLength { len });
            }
            total += len;
        }
        let sectors = (total / SECTOR_SIZE) as u64;
        if sector
            .checked_add(sectors)
            .is_none_or(|end| end > self.capacity)
        {
            return Err(BlkError::OutOfRange {
                sector,
                sectors,
                capacity: self.capacity,
            });
        }
        if kind == T_OUT && self.read_only {
            return Err(BlkError::ReadOnly);
        }
        if total == 0 {
            return Ok(());
        }

        // Each device request takes the next pieces of the buffers, a piece ending at a page
        // boundary or at its buffer's end (so it is physically contiguous), split off its
        // buffer so that it keeps the borrow.
        let page = PAGE_SIZE as usize;
        let mut segs: Vec<D::Buf<'b>> = scratch(self.max_segments)?;
        // Pieces a request gave back (cut to whole sectors), latest first: the next request
        // starts with them.
        let mut carry: Vec<D::Buf<'b>> = Vec::new();
        let mut sector = sector;
        // `bufs[..k]` are used up; `bufs[k]` is what is left of the next one.
        let mut k = 0;
        while k < bufs.len() || !carry.is_empty() {
            segs.clear();
            let mut bytes = 0;
            while segs.len() < self.max_segments {
                let piece = if let Some(p) = carry.pop() {
                    p
                } else if let Some(b) = bufs.get_mut(k) {
                    if b.is_empty() {
                        k += 1;
                        continue;
                    }
                    let n = (page - b.addr() % page).min(b.len());
                    let (piece, rest) = core::mem::take(b).split_at(n);
                    *b = rest;
                    piece
                } else {
                    break;
                };
                bytes += piece.len();
                segs.push(piece);
            }
            // Stopped by the segment limit inside a sector: give the tail back to the next
            // request. (When every piece was taken the total is whole sectors already.)
            let mut trim = bytes % SECTOR_SIZE;
            bytes -= trim;
            while trim > 0 {
                let Some(last) = segs.pop() else { break };
                carry.try_reserve(1).map_err(|_| BlkError::NoMemory)?;
                let len = last.len();
                if len > trim {
                    let (keep, back) = last.split_at(len - trim);
                    segs.push(keep);
                    carry.push(back);
                    trim = 0;
                } else {
                    trim -= len;
                    carry.push(last);
                }
            }
            if bytes == 0 || segs.is_empty() {
                if k >= bufs.len() && carry.is_empty() {
                    // Only empty buffers were left.
                    break;
                }
                return Err(BlkError::TooFragmented);
            }
            self.transfer_chunk::<D>(kind, sector, &mut segs, bytes)?;
            sector += (bytes / SECTOR_SIZE) as u64;
        }
        Ok(())
    }

    /// One device request over `segs` (at most `max_segments`, `bytes` in all), which it empties:
    /// each piece is borrowed by its mapping until the device is done.
    fn transfer_chunk<'b, D: Direction>(
        &mut self,
        kind: u32,
        sector: u64,
        segs: &mut Vec<D::Buf<'b>>,
        bytes: usize,
    ) -> Result<(), BlkError> {
        let mut maps: Vec<DmaMapping<'b, D>> = scratch(segs.len())?;
        self.chain.clear();
        self.chain.push((self.req.dma_addr(), HEADER_LEN, false));
        for seg in segs.drain(..) {
            let len = seg.len();
            let m = dma_map_single::<D>(&self.dev, seg)?;
            let addr = m.dma_addr().as_u64();
            if m.is_bounced() {
                self.segments.bounced += 1;
            }
            maps.push(m);
            let last = self.chain.len() - 1;
            let (prev_addr, prev_len, _) = self.chain[last];
            if last > 0
                && prev_addr.as_u64() + prev_len as u64 == addr
                && prev_len as u64 + len as u64 <= self.size_max as u64
            {
                self.chain[last].1 += len as u32;
            } else {
                self.chain
                    .push((DmaAddr::new(addr), len as u32, D::FROM_DEVICE));
            }
        }
        let data_segments = self.chain.len() as u64 - 1;
        let result = self.submit(kind, sector, bytes);
        // Unmapping syncs the CPU's view of what the device wrote (and frees bounce buffers).
        drop(maps);
        result?;
        self.segments.data += data_segments;
        let sectors = (bytes / SECTOR_SIZE) as u64;
        if kind == T_OUT {
            self.stats.write_requests += 1;
            self.stats.sectors_written += sectors;
        } else {
            self.stats.read_requests += 1;
            self.stats.sectors_read += sectors;
        }
        Ok(())
    }

    /// Sends `header | self.chain[1..] | status` and waits for the device. `self.chain` holds
    /// the header descriptor and the data descriptors (or is rebuilt here when `bytes` is 0).
    fn submit(&mut self, kind: u32, sector: u64, bytes: usize) -> Result<(), BlkError> {
        if bytes == 0 {
            self.chain.clear();
            self.chain.push((self.req.dma_addr(), HEADER_LEN, false));
        }
        // The device does not read the request block while no request is in flight (requests
        // are synchronous).
        self.req.write(
            0,
            ReqHeader {
                kind: kind.to_le(),
                reserved: 0,
                sector: sector.to_le(),
            },
        );
        self.req.write(STATUS_OFFSET, S_NOT_WRITTEN);
        let status_addr = DmaAddr::new(self.req.dma_addr().as_u64() + STATUS_OFFSET as u64);
        self.chain.push((status_addr, 1, true));
        let head = self.queue.add_chain(&self.chain)?;
        self.transport.notify(self.queue.index());
        let waited_before = self.queue.wait_ticks();
        let completed = self.queue.wait_for(head, REQUEST_TIMEOUT_MS);
        let waited = self.queue.wait_ticks() - waited_before;
        if kind == T_IN {
            self.stats.read_wait_ticks += waited;
        } else {
            self.stats.write_wait_ticks += waited;
        }
        if let Err(e) = completed {
            self.take_out_of_service(&e);
            return Err(e.into());
        }
        self.transport.ack_interrupt();
        fence(Ordering::SeqCst);
        // The device has returned the chain, so the status byte is final.
        let status = self.req.read::<u8>(STATUS_OFFSET);
        if status != S_OK {
            return Err(BlkError::Io { sector, status });
        }
        Ok(())
    }

    /// The device failed to return a request (or returned garbage): reset it so it lets go of
    /// every buffer it was given, and refuse further requests.
    fn take_out_of_service(&mut self, why: &QueueError) {
        let status = self.transport.status();
        let reset = self.transport.reset();
        self.broken = true;
        log::error!(
            "virtio-blk at {}: {why} (device status {status:#x}); device reset{}, out of service",
            self.transport.base(),
            if reset.is_ok() { "" } else { " FAILED" }
        );
    }
}

// A disk may be handed to whichever CPU runs its user (behind a lock).
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<VirtioBlk>();
};

impl Drop for VirtioBlk {
    fn drop(&mut self) {
        if self.transport.reset().is_ok() {
            // SAFETY: the device is reset and no longer uses the rings or the request block; the
            // fields are never touched again (the transport drops after this).
            unsafe {
                ManuallyDrop::drop(&mut self.queue);
                ManuallyDrop::drop(&mut self.req);
            }
        } else {
            log::error!(
                "virtio-blk at {}: device will not reset; its ring memory is leaked",
                self.transport.base()
            );
        }
    }
}

/// The block-device port over this driver: a page list is one vectored request (split only by
/// the device's segment limit). The driver accepts any whole sectors, more than the port asks.
impl BlockDevice for VirtioBlk {
    fn name(&self) -> &str {
        &self.name
    }
    fn sector_size(&self) -> u32 {
        SECTOR_SIZE as u32
    }
    fn capacity_sectors(&self) -> u64 {
        self.capacity
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_pages(&mut self, sector: u64, pages: &mut [&mut [u8]]) -> Result<(), BlockError> {
        Ok(self.read_vectored(sector, pages)?)
    }
    fn write_pages(&mut self, sector: u64, pages: &[&[u8]]) -> Result<(), BlockError> {
        Ok(self.write_vectored(sector, pages)?)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(VirtioBlk::flush(self)?)
    }
    fn stats(&self) -> BlockStats {
        self.stats
    }
}
