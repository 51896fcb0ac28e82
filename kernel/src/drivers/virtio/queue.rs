//! A split virtqueue (virtio 1.x §2.6): descriptor table, available (driver) ring and used
//! (device) ring in ONE DMA-coherent buffer, laid out so that both transports accept it: the
//! contiguous legacy layout (table, available ring right after it, used ring at the next 4 KiB
//! boundary) also meets the modern alignment rules (16, 2 and 4 bytes).
//!
//! Owns the ring memory and the descriptor free list: it hands out descriptor chains, publishes
//! them in the available ring, and takes them back from the used ring. Must never reuse a
//! descriptor the device still owns, never trust an index the device writes without checking it,
//! and never wait without a deadline. It knows nothing about the transport: the caller notifies
//! the device, and resets it before dropping a queue with requests in flight. The ring memory
//! is reached only through `DmaCoherent`'s checked volatile accessors.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::arch::aarch64::timer;
use crate::mm::dma::{dma_alloc_coherent, DmaAddr, DmaCoherent, DmaDevice, DmaError, DmaPod};

/// The largest queue this driver builds (the device may allow more).
pub const MAX_QUEUE_SIZE: u16 = 128;
/// Alignment of the used ring (legacy `QueueAlign`, also the table's alignment).
pub const RING_ALIGN: usize = 4096;

/// A descriptor as the device reads it (`struct virtq_desc`, fields little-endian): written whole,
/// one checked access instead of four.
#[derive(Clone, Copy)]
#[repr(C)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

// SAFETY: `#[repr(C)]` of a u64, a u32 and two u16 at offsets 0, 8, 12 and 14: no padding, and
// every bit pattern is a value.
unsafe impl DmaPod for Desc {}

const DESC_SIZE: usize = core::mem::size_of::<Desc>();
/// `VIRTQ_DESC_F_NEXT`: the chain continues in `next`.
const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the device writes this buffer.
const DESC_F_WRITE: u16 = 2;

/// Where the parts of a queue of `size` entries lie in its buffer (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLayout {
    pub size: u16,
    /// Descriptor table: `size` × 16 bytes, at 0.
    pub desc: usize,
    /// Available ring: flags, idx, `size` × u16, used_event.
    pub avail: usize,
    /// Used ring: flags, idx, `size` × (id u32, len u32), avail_event; 4 KiB aligned.
    pub used: usize,
    /// Bytes the whole queue needs.
    pub bytes: usize,
}

impl QueueLayout {
    pub const fn new(size: u16) -> QueueLayout {
        let n = size as usize;
        let avail = DESC_SIZE * n;
        let avail_end = avail + 6 + 2 * n;
        let used = avail_end.next_multiple_of(RING_ALIGN);
        QueueLayout {
            size,
            desc: 0,
            avail,
            used,
            bytes: used + 6 + 8 * n,
        }
    }
}

/// The queue size to use when the device allows at most `max` entries: the largest power of
/// two up to `min(max, MAX_QUEUE_SIZE)` (split rings want a power of two), or `None` for 0.
pub fn queue_size(max: u32) -> Option<u16> {
    let n = max.min(MAX_QUEUE_SIZE as u32);
    if n == 0 {
        return None;
    }
    Some(1u16 << (31 - n.leading_zeros()))
}

/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// Building the rings failed.
    Dma(DmaError),
    /// The ring buffer's bus address is not 4 KiB aligned.
    Misaligned(u64),
    /// A chain with no buffers.
    EmptyChain,
    /// Not enough free descriptors for the chain.
    Full { needed: usize, free: usize },
    /// A buffer longer than a descriptor can describe.
    TooLong(usize),
    /// The device did not return the chain before the deadline.
    Timeout { head: u16, waited_ms: u64 },
    /// The device returned an ID that is not a chain in flight.
    BadUsed { id: u32 },
    /// The device returned another chain than the one awaited.
    UnexpectedHead { expected: u16, got: u16 },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Dma(e) => write!(f, "virtqueue memory: {e}"),
            QueueError::Misaligned(a) => {
                write!(f, "virtqueue at bus address {a:#x}: not 4 KiB aligned")
            }
            QueueError::EmptyChain => write!(f, "virtqueue: empty descriptor chain"),
            QueueError::Full { needed, free } => {
                write!(
                    f,
                    "virtqueue full: {needed} descriptors needed, {free} free"
                )
            }
            QueueError::TooLong(n) => write!(
                f,
                "virtqueue: buffer of {n} bytes too long for a descriptor"
            ),
            QueueError::Timeout { head, waited_ms } => write!(
                f,
                "virtqueue: device did not complete chain {head} within {waited_ms} ms"
            ),
            QueueError::BadUsed { id } => {
                write!(
                    f,
                    "virtqueue: device returned id {id}, which is not in flight"
                )
            }
            QueueError::UnexpectedHead { expected, got } => write!(
                f,
                "virtqueue: device returned chain {got} while chain {expected} was awaited"
            ),
        }
    }
}

/// One buffer of a chain: bus address, length, and whether the device writes it.
pub type Segment = (DmaAddr, u32, bool);

/// A split virtqueue in DMA-coherent memory.
pub struct VirtQueue {
    mem: DmaCoherent,
    layout: QueueLayout,
    index: u16,
    /// Shadow of each descriptor's `next` (the free list is threaded through it), kept in driver
    /// memory so the device cannot corrupt it.
    next: Vec<u16>,
    /// Per head: descriptors in its chain while it is in flight, else 0.
    chain_len: Vec<u16>,
    free_head: u16,
    num_free: u16,
    /// Our copy of the available ring's index.
    avail_idx: u16,
    /// The used ring's index up to which we have consumed entries.
    last_used: u16,
    /// Counter ticks spent polling for the device (the driver reports them as its waits).
    wait_ticks: u64,
}

impl fmt::Debug for VirtQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VirtQueue({} of {} entries, {} free, at {:#x})",
            self.index,
            self.layout.size,
            self.num_free,
            self.mem.dma_addr().as_u64()
        )
    }
}

impl VirtQueue {
    /// Builds queue `index` with `size` entries (a power of two) in zeroed coherent memory.
    pub fn new(dev: &DmaDevice, index: u16, size: u16) -> Result<VirtQueue, QueueError> {
        assert!(
            size.is_power_of_two(),
            "virtqueue size {size} not a power of two"
        );
        let layout = QueueLayout::new(size);
        let mem = dma_alloc_coherent(dev, layout.bytes).map_err(QueueError::Dma)?;
        let bus = mem.dma_addr().as_u64();
        if !bus.is_multiple_of(RING_ALIGN as u64)
            || !mem.cpu_addr().as_u64().is_multiple_of(RING_ALIGN as u64)
        {
            return Err(QueueError::Misaligned(bus));
        }
        let n = size as usize;
        Ok(VirtQueue {
            mem,
            layout,
            index,
            next: (1..=n as u16).collect(),
            chain_len: vec![0; n],
            free_head: 0,
            num_free: size,
            avail_idx: 0,
            last_used: 0,
            wait_ticks: 0,
        })
    }

    pub fn index(&self) -> u16 {
        self.index
    }
    pub fn size(&self) -> u16 {
        self.layout.size
    }
    pub fn layout(&self) -> QueueLayout {
        self.layout
    }

    /// Bus addresses of the descriptor table, the available ring and the used ring.
    pub fn addresses(&self) -> (u64, u64, u64) {
        let base = self.mem.dma_addr().as_u64();
        (
            base + self.layout.desc as u64,
            base + self.layout.avail as u64,
            base + self.layout.used as u64,
        )
    }

    fn write_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        // The device does not read a descriptor we have not published.
        self.mem.write(
            self.layout.desc + DESC_SIZE * i as usize,
            Desc {
                addr: addr.to_le(),
                len: len.to_le(),
                flags: flags.to_le(),
                next: next.to_le(),
            },
        );
    }

    /// Puts a chain of buffers (device-readable ones first, as virtio requires of a request)
    /// into the descriptor table and publishes its head in the available ring. Returns the
    /// head; the caller then notifies the device.
    pub fn add_chain(&mut self, segments: &[Segment]) -> Result<u16, QueueError> {
        if segments.is_empty() {
            return Err(QueueError::EmptyChain);
        }
        if segments.len() > self.num_free as usize {
            return Err(QueueError::Full {
                needed: segments.len(),
                free: self.num_free as usize,
            });
        }
        let head = self.free_head;
        let mut i = head;
        for (k, (addr, len, writable)) in segments.iter().enumerate() {
            let last = k + 1 == segments.len();
            let mut flags = if *writable { DESC_F_WRITE } else { 0 };
            if !last {
                flags |= DESC_F_NEXT;
            }
            let next = self.next[i as usize];
            self.write_desc(i, addr.as_u64(), *len, flags, if last { 0 } else { next });
            i = next;
        }
        self.free_head = i;
        self.num_free -= segments.len() as u16;
        self.chain_len[head as usize] = segments.len() as u16;

        let slot = (self.avail_idx % self.layout.size) as usize;
        // `ring[slot]` of the available ring.
        self.mem
            .write(self.layout.avail + 4 + 2 * slot, head.to_le());
        // The descriptors and the ring entry are visible before the index that publishes them.
        crate::arch::aarch64::barrier::dma_wmb();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // The available ring's `idx` field.
        self.mem
            .write(self.layout.avail + 2, self.avail_idx.to_le());
        // The index is visible before whatever comes next (the notification).
        crate::arch::aarch64::barrier::dma_wmb();
        Ok(head)
    }

    /// Takes the next completed chain from the used ring, if any, and frees its descriptors:
    /// `(head, bytes the device wrote)`.
    pub fn pop_used(&mut self) -> Result<Option<(u16, u32)>, QueueError> {
        // The used ring's `idx` field, which the device writes.
        let used_idx = u16::from_le(self.mem.read::<u16>(self.layout.used + 2));
        if used_idx == self.last_used {
            return Ok(None);
        }
        // A device cannot have returned more chains than the ring holds: a larger gap is garbage.
        if used_idx.wrapping_sub(self.last_used) > self.layout.size {
            return Err(QueueError::BadUsed {
                id: used_idx as u32,
            });
        }
        // The entry is read after the index that says it is there.
        crate::arch::aarch64::barrier::dma_rmb();
        let slot = (self.last_used % self.layout.size) as usize;
        let elem = self.layout.used + 4 + 8 * slot;
        // `ring[slot]` of the used ring.
        let id = u32::from_le(self.mem.read::<u32>(elem));
        let len = u32::from_le(self.mem.read::<u32>(elem + 4));
        self.last_used = self.last_used.wrapping_add(1);
        if id >= self.layout.size as u32 || self.chain_len[id as usize] == 0 {
            return Err(QueueError::BadUsed { id });
        }
        self.free_chain(id as u16);
        Ok(Some((id as u16, len)))
    }

    fn free_chain(&mut self, head: u16) {
        let n = self.chain_len[head as usize];
        let mut last = head;
        for _ in 1..n {
            last = self.next[last as usize];
        }
        self.next[last as usize] = self.free_head;
        self.free_head = head;
        self.num_free += n;
        self.chain_len[head as usize] = 0;
    }

    /// Polls until the device returns chain `head`: the bytes it wrote. Gives up after
    /// `timeout_ms` (the chain then stays with the device: the caller must reset the device
    /// before reusing or freeing anything the chain points at).
    pub fn wait_for(&mut self, head: u16, timeout_ms: u64) -> Result<u32, QueueError> {
        let start = timer::ticks();
        let r = self.poll_until(head, start, timeout_ms);
        self.wait_ticks += timer::ticks() - start;
        r
    }

    /// Counter ticks [`wait_for`](Self::wait_for) has spent polling, since the queue was built.
    pub fn wait_ticks(&self) -> u64 {
        self.wait_ticks
    }

    fn poll_until(&mut self, head: u16, start: u64, timeout_ms: u64) -> Result<u32, QueueError> {
        let freq = timer::frequency();
        let deadline = start.saturating_add(freq.saturating_mul(timeout_ms) / 1000);
        let mut spins: u64 = 0;
        loop {
            if let Some((id, len)) = self.pop_used()? {
                if id == head {
                    return Ok(len);
                }
                return Err(QueueError::UnexpectedHead {
                    expected: head,
                    got: id,
                });
            }
            // Spin on the used ring's index alone, one load a round (checked once): under
            // `-icount` every instruction of this loop is virtual time the wait costs.
            let used_idx = self.mem.cell::<u16>(self.layout.used + 2);
            while u16::from_le(used_idx.read()) == self.last_used {
                spins += 1;
                if spins.is_multiple_of(64) {
                    let now = timer::ticks();
                    if now > deadline {
                        return Err(QueueError::Timeout {
                            head,
                            waited_ms: (now - start) * 1000 / freq,
                        });
                    }
                }
                core::hint::spin_loop();
            }
        }
    }
}
