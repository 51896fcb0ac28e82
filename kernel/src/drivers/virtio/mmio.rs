//! The virtio-mmio transport (virtio 1.x §4.2): one register window per device slot, in the
//! modern (version 2) layout or the legacy (version 1) one QEMU uses unless told otherwise.
//!
//! Owns a slot's register window (through `ioremap`) and the device's status handshake: probing
//! (magic, version, device and vendor ID), reset, feature negotiation, queue registration,
//! `DRIVER_OK`, notifications, interrupt acknowledgement and config-space reads. A slot is claimed
//! by at most one driver at a time, and a claimed device is reset when its transport is dropped,
//! so it stops using the driver's memory before that memory is freed. Must never allocate or
//! free memory the device uses (the queue and the device driver own that) and never panic on
//! what a device or an empty slot reports: every surprise is an `MmioError`.
#![forbid(unsafe_code)]

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{fence, Ordering};

use spin::Mutex;

use super::device_id;
use crate::addr::{DmaRange, PhysAddr};
use crate::arch::aarch64::timer;
use crate::machine::VirtioMmio;
use crate::mm::ioremap::{ioremap, IoMem, IoremapError};

/// "virt" in little-endian ASCII.
pub const MAGIC: u32 = 0x7472_6976;

// Register offsets (§4.2.2, legacy ones from §4.2.4).
const MAGIC_VALUE: u64 = 0x000;
const VERSION: u64 = 0x004;
const DEVICE_ID: u64 = 0x008;
const VENDOR_ID: u64 = 0x00c;
const DEVICE_FEATURES: u64 = 0x010;
const DEVICE_FEATURES_SEL: u64 = 0x014;
const DRIVER_FEATURES: u64 = 0x020;
const DRIVER_FEATURES_SEL: u64 = 0x024;
const LEGACY_GUEST_PAGE_SIZE: u64 = 0x028;
const QUEUE_SEL: u64 = 0x030;
const QUEUE_NUM_MAX: u64 = 0x034;
const QUEUE_NUM: u64 = 0x038;
const LEGACY_QUEUE_ALIGN: u64 = 0x03c;
const LEGACY_QUEUE_PFN: u64 = 0x040;
const QUEUE_READY: u64 = 0x044;
const QUEUE_NOTIFY: u64 = 0x050;
const INTERRUPT_STATUS: u64 = 0x060;
const INTERRUPT_ACK: u64 = 0x064;
const STATUS: u64 = 0x070;
const QUEUE_DESC_LOW: u64 = 0x080;
const QUEUE_DESC_HIGH: u64 = 0x084;
const QUEUE_DRIVER_LOW: u64 = 0x090;
const QUEUE_DRIVER_HIGH: u64 = 0x094;
const QUEUE_DEVICE_LOW: u64 = 0x0a0;
const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
const CONFIG_GENERATION: u64 = 0x0fc;
/// Device-specific configuration space.
const CONFIG: u64 = 0x100;
/// The register window every slot has (config space included).
const WINDOW: u64 = 0x200;

/// Device status bits (§2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// Device-independent feature bits (§6).
pub mod feature {
    pub const VERSION_1: u64 = 1 << 32;
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
}

/// The page size and used-ring alignment the legacy transport is told (`GuestPageSize`,
/// `QueueAlign`); the queue's layout is built for it.
pub const LEGACY_PAGE: u64 = 4096;

/// Which register layout the slot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Version 1: `QueuePFN`, 32 feature bits, no `FEATURES_OK`.
    Legacy,
    /// Version 2 (virtio 1.0 and later).
    Modern,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Legacy => "legacy v1",
            Version::Modern => "modern v2",
        })
    }
}

/// Why a slot cannot be driven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MmioErrorKind {
    Ioremap(IoremapError),
    BadMagic(u32),
    UnsupportedVersion(u32),
    /// Device ID 0: a placeholder slot with nothing behind it.
    NoDevice,
    /// Another driver has claimed the device.
    Busy,
    WrongDevice {
        expected: u32,
        found: u32,
    },
    /// A modern device that does not offer `VIRTIO_F_VERSION_1`.
    NoVersion1 {
        offered: u64,
    },
    /// `FEATURES_OK` did not stick: the device refused the subset we accepted.
    FeaturesRefused {
        accepted: u64,
    },
    /// The status register did not read 0 after a reset.
    ResetTimeout {
        status: u32,
    },
    /// `QueueNumMax` is 0.
    QueueUnavailable {
        queue: u16,
    },
    /// The queue is already live (`QueueReady` or `QueuePFN` non-zero) before setup.
    QueueInUse {
        queue: u16,
    },
    QueueTooSmall {
        queue: u16,
        max: u32,
        need: u32,
    },
    /// The queue's addresses do not fit what the transport can express.
    QueueAddress {
        queue: u16,
        why: &'static str,
    },
    /// The device set `DEVICE_NEEDS_RESET` or `FAILED`.
    DeviceFailed {
        status: u32,
    },
}

/// A transport error with the slot it happened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmioError {
    pub base: PhysAddr,
    pub kind: MmioErrorKind,
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "virtio-mmio at {}: ", self.base)?;
        match &self.kind {
            MmioErrorKind::Ioremap(e) => write!(f, "cannot map the registers: {e}"),
            MmioErrorKind::BadMagic(m) => {
                write!(f, "bad magic {m:#010x} (expected {MAGIC:#010x}, \"virt\")")
            }
            MmioErrorKind::UnsupportedVersion(v) => {
                write!(f, "unsupported transport version {v} (1 and 2 are known)")
            }
            MmioErrorKind::NoDevice => write!(f, "empty slot (device ID 0)"),
            MmioErrorKind::Busy => write!(f, "device already claimed by another driver"),
            MmioErrorKind::WrongDevice { expected, found } => write!(
                f,
                "device ID {found} ({}), expected {expected} ({})",
                device_id::name(*found),
                device_id::name(*expected)
            ),
            MmioErrorKind::NoVersion1 { offered } => write!(
                f,
                "modern transport without VIRTIO_F_VERSION_1 (device features {offered:#x})"
            ),
            MmioErrorKind::FeaturesRefused { accepted } => write!(
                f,
                "device refused the features we accepted ({accepted:#x}): FEATURES_OK did not stick"
            ),
            MmioErrorKind::ResetTimeout { status } => {
                write!(f, "reset did not complete (status {status:#x})")
            }
            MmioErrorKind::QueueUnavailable { queue } => {
                write!(f, "queue {queue} not available (QueueNumMax 0)")
            }
            MmioErrorKind::QueueInUse { queue } => {
                write!(f, "queue {queue} already in use before setup")
            }
            MmioErrorKind::QueueTooSmall { queue, max, need } => write!(
                f,
                "queue {queue} too small: at most {max} descriptors, {need} needed"
            ),
            MmioErrorKind::QueueAddress { queue, why } => write!(f, "queue {queue}: {why}"),
            MmioErrorKind::DeviceFailed { status } => {
                write!(f, "device reports an error (status {status:#x})")
            }
        }
    }
}

/// Bases of the slots a driver has claimed.
static CLAIMED: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// How long a reset may take before the device is declared stuck.
const RESET_TIMEOUT_MS: u64 = 1000;

/// One virtio-mmio slot with a device behind it.
pub struct MmioTransport {
    regs: IoMem,
    base: PhysAddr,
    version: Version,
    device_id: u32,
    vendor_id: u32,
    irq: Option<u32>,
    dma_coherent: bool,
    dma_ranges: Vec<DmaRange>,
    /// Features both sides agreed on (valid after `negotiate`).
    features: u64,
    claimed: bool,
}

impl fmt::Debug for MmioTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MmioTransport({}, {}, device {} ({}), vendor {:#x})",
            self.base,
            self.version,
            self.device_id,
            device_id::name(self.device_id),
            self.vendor_id
        )
    }
}

impl MmioTransport {
    /// Maps a slot and identifies what is behind it, without touching the device's state. An
    /// empty slot is `MmioErrorKind::NoDevice`.
    pub fn probe(slot: &VirtioMmio) -> Result<MmioTransport, MmioError> {
        let base = slot.base;
        let err = |kind| MmioError { base, kind };
        let size = if slot.size == 0 { WINDOW } else { slot.size };
        if size < WINDOW {
            // The tree says the window is smaller than the registers we read: refuse rather than
            // let `IoMem`'s bounds checks panic later.
            return Err(err(MmioErrorKind::QueueAddress {
                queue: 0,
                why: "register window smaller than 0x200 bytes",
            }));
        }
        let regs = ioremap(base, size).map_err(|e| err(MmioErrorKind::Ioremap(e)))?;
        let magic = regs.read32(MAGIC_VALUE);
        if magic != MAGIC {
            return Err(err(MmioErrorKind::BadMagic(magic)));
        }
        let version = match regs.read32(VERSION) {
            1 => Version::Legacy,
            2 => Version::Modern,
            v => return Err(err(MmioErrorKind::UnsupportedVersion(v))),
        };
        let device_id = regs.read32(DEVICE_ID);
        if device_id == 0 {
            return Err(err(MmioErrorKind::NoDevice));
        }
        let vendor_id = regs.read32(VENDOR_ID);
        Ok(MmioTransport {
            regs,
            base,
            version,
            device_id,
            vendor_id,
            irq: slot.irq,
            dma_coherent: slot.dma_coherent,
            dma_ranges: slot.dma_ranges.clone(),
            features: 0,
            claimed: false,
        })
    }

    fn err(&self, kind: MmioErrorKind) -> MmioError {
        MmioError {
            base: self.base,
            kind,
        }
    }

    pub fn base(&self) -> PhysAddr {
        self.base
    }
    pub fn version(&self) -> Version {
        self.version
    }
    pub fn device_id(&self) -> u32 {
        self.device_id
    }
    pub fn vendor_id(&self) -> u32 {
        self.vendor_id
    }
    pub fn irq(&self) -> Option<u32> {
        self.irq
    }
    pub fn dma_coherent(&self) -> bool {
        self.dma_coherent
    }
    /// The slot's DMA windows from the device tree (empty: bus addresses are CPU addresses).
    pub fn dma_ranges(&self) -> &[DmaRange] {
        &self.dma_ranges
    }
    /// The negotiated features (0 before `negotiate`).
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Takes the device for this driver; `Busy` if another transport holds it.
    pub fn claim(&mut self) -> Result<(), MmioError> {
        if self.claimed {
            return Ok(());
        }
        if !CLAIMED.lock().insert(self.base.as_u64()) {
            return Err(self.err(MmioErrorKind::Busy));
        }
        self.claimed = true;
        Ok(())
    }

    pub fn status(&self) -> u32 {
        self.regs.read32(STATUS)
    }

    fn add_status(&self, bits: u32) {
        let s = self.status();
        self.regs.write32(STATUS, s | bits);
    }

    /// Tells the device the driver gave up on it (`FAILED`).
    pub fn fail(&self) {
        self.add_status(status::FAILED);
    }

    /// Resets the device (status 0) and waits until it reads back 0: afterwards the device no
    /// longer touches any queue or buffer it was given.
    pub fn reset(&self) -> Result<(), MmioError> {
        // Ring updates made so far are ordered before the reset.
        fence(Ordering::SeqCst);
        self.regs.write32(STATUS, 0);
        let deadline = timer::ticks() + timer::frequency() * RESET_TIMEOUT_MS / 1000;
        loop {
            let s = self.status();
            if s == 0 {
                fence(Ordering::SeqCst);
                return Ok(());
            }
            if timer::ticks() > deadline {
                return Err(self.err(MmioErrorKind::ResetTimeout { status: s }));
            }
            core::hint::spin_loop();
        }
    }

    /// Every feature bit the device offers (legacy devices have 32).
    pub fn device_features(&self) -> u64 {
        self.regs.write32(DEVICE_FEATURES_SEL, 0);
        let low = self.regs.read32(DEVICE_FEATURES) as u64;
        if self.version == Version::Legacy {
            return low;
        }
        self.regs.write32(DEVICE_FEATURES_SEL, 1);
        let high = self.regs.read32(DEVICE_FEATURES) as u64;
        low | high << 32
    }

    /// Claims the device, resets it and negotiates: ACKNOWLEDGE, DRIVER, the offered features
    /// that are also in `supported` (plus `VERSION_1`, required on the modern transport), and
    /// on the modern transport `FEATURES_OK`, checked to have stuck. Returns the agreed set.
    /// On failure the device is left with `FAILED` set.
    pub fn negotiate(&mut self, supported: u64) -> Result<u64, MmioError> {
        self.claim()?;
        self.reset()?;
        self.add_status(status::ACKNOWLEDGE);
        self.add_status(status::DRIVER);
        let offered = self.device_features();
        let mut accepted = offered & supported;
        match self.version {
            Version::Modern => {
                if offered & feature::VERSION_1 == 0 {
                    self.fail();
                    return Err(self.err(MmioErrorKind::NoVersion1 { offered }));
                }
                accepted |= feature::VERSION_1;
            }
            Version::Legacy => accepted &= 0xffff_ffff,
        }
        self.regs.write32(DRIVER_FEATURES_SEL, 0);
        self.regs.write32(DRIVER_FEATURES, accepted as u32);
        if self.version == Version::Modern {
            self.regs.write32(DRIVER_FEATURES_SEL, 1);
            self.regs.write32(DRIVER_FEATURES, (accepted >> 32) as u32);
            self.add_status(status::FEATURES_OK);
            if self.status() & status::FEATURES_OK == 0 {
                self.fail();
                return Err(self.err(MmioErrorKind::FeaturesRefused { accepted }));
            }
        }
        self.features = accepted;
        Ok(accepted)
    }

    /// The largest size queue `queue` allows; checks that it exists and is not live yet.
    pub fn queue_max(&self, queue: u16) -> Result<u32, MmioError> {
        self.regs.write32(QUEUE_SEL, queue as u32);
        let live = match self.version {
            Version::Legacy => self.regs.read32(LEGACY_QUEUE_PFN) != 0,
            Version::Modern => self.regs.read32(QUEUE_READY) != 0,
        };
        if live {
            return Err(self.err(MmioErrorKind::QueueInUse { queue }));
        }
        match self.regs.read32(QUEUE_NUM_MAX) {
            0 => Err(self.err(MmioErrorKind::QueueUnavailable { queue })),
            n => Ok(n),
        }
    }

    /// Registers queue `queue` of `size` entries whose descriptor table, driver (available)
    /// ring and device (used) ring are at the given bus addresses, and makes it live.
    ///
    /// The legacy transport only takes the table's page number: the rings must follow it in the
    /// contiguous legacy layout (available ring right after the table, used ring at the next
    /// `LEGACY_PAGE` boundary), which is checked.
    pub fn setup_queue(
        &self,
        queue: u16,
        size: u16,
        desc: u64,
        driver: u64,
        device: u64,
    ) -> Result<(), MmioError> {
        let max = self.queue_max(queue)?;
        if size == 0 || size as u32 > max {
            return Err(self.err(MmioErrorKind::QueueTooSmall {
                queue,
                max,
                need: size as u32,
            }));
        }
        let bad = |why| self.err(MmioErrorKind::QueueAddress { queue, why });
        match self.version {
            Version::Legacy => {
                let n = size as u64;
                if !desc.is_multiple_of(LEGACY_PAGE) {
                    return Err(bad("descriptor table not page aligned (legacy QueuePFN)"));
                }
                if driver != desc + 16 * n {
                    return Err(bad("available ring does not follow the descriptor table"));
                }
                let used = (driver + 6 + 2 * n).next_multiple_of(LEGACY_PAGE);
                if device != used {
                    return Err(bad("used ring not at the legacy aligned position"));
                }
                let pfn = desc / LEGACY_PAGE;
                if pfn > u32::MAX as u64 {
                    return Err(bad("queue above 16 TiB: legacy QueuePFN is 32 bits"));
                }
                self.regs
                    .write32(LEGACY_GUEST_PAGE_SIZE, LEGACY_PAGE as u32);
                self.regs.write32(QUEUE_SEL, queue as u32);
                self.regs.write32(QUEUE_NUM, size as u32);
                self.regs.write32(LEGACY_QUEUE_ALIGN, LEGACY_PAGE as u32);
                // The zeroed rings are visible before the device learns where they are.
                fence(Ordering::SeqCst);
                self.regs.write32(LEGACY_QUEUE_PFN, pfn as u32);
            }
            Version::Modern => {
                if !desc.is_multiple_of(16)
                    || !driver.is_multiple_of(2)
                    || !device.is_multiple_of(4)
                {
                    return Err(bad("ring addresses misaligned (16/2/4 bytes)"));
                }
                self.regs.write32(QUEUE_SEL, queue as u32);
                self.regs.write32(QUEUE_NUM, size as u32);
                self.regs.write32(QUEUE_DESC_LOW, desc as u32);
                self.regs.write32(QUEUE_DESC_HIGH, (desc >> 32) as u32);
                self.regs.write32(QUEUE_DRIVER_LOW, driver as u32);
                self.regs.write32(QUEUE_DRIVER_HIGH, (driver >> 32) as u32);
                self.regs.write32(QUEUE_DEVICE_LOW, device as u32);
                self.regs.write32(QUEUE_DEVICE_HIGH, (device >> 32) as u32);
                fence(Ordering::SeqCst);
                self.regs.write32(QUEUE_READY, 1);
            }
        }
        Ok(())
    }

    /// `DRIVER_OK`: the device may start processing queues. Fails if the device has flagged an
    /// error meanwhile.
    pub fn driver_ok(&self) -> Result<(), MmioError> {
        self.add_status(status::DRIVER_OK);
        self.check()
    }

    /// `DeviceFailed` if the device asks for a reset or has failed.
    pub fn check(&self) -> Result<(), MmioError> {
        let s = self.status();
        if s & (status::DEVICE_NEEDS_RESET | status::FAILED) != 0 {
            return Err(self.err(MmioErrorKind::DeviceFailed { status: s }));
        }
        Ok(())
    }

    /// Tells the device there are new buffers in queue `queue`. Everything written to the rings
    /// before is visible to the device first.
    pub fn notify(&self, queue: u16) {
        crate::arch::aarch64::barrier::wmb();
        self.regs.write32(QUEUE_NOTIFY, queue as u32);
    }

    /// Reads and acknowledges the interrupt causes (bit 0: used buffer, bit 1: config change).
    pub fn ack_interrupt(&self) -> u32 {
        let causes = self.regs.read32(INTERRUPT_STATUS);
        if causes != 0 {
            self.regs.write32(INTERRUPT_ACK, causes);
        }
        causes
    }

    /// A 32-bit field of the device-specific configuration space.
    pub fn config_read32(&self, offset: u64) -> u32 {
        self.regs.read32(CONFIG + offset)
    }

    /// A 64-bit field of the configuration space, read as two 32-bit halves; on the modern
    /// transport retried until the config generation shows a consistent snapshot.
    pub fn config_read64(&self, offset: u64) -> u64 {
        for _ in 0..16 {
            let gen = self.config_generation();
            let low = self.config_read32(offset) as u64;
            let high = self.config_read32(offset + 4) as u64;
            if gen == self.config_generation() {
                return low | high << 32;
            }
        }
        // A device that keeps changing its config: the last read is as good as any.
        self.config_read32(offset) as u64 | (self.config_read32(offset + 4) as u64) << 32
    }

    fn config_generation(&self) -> u32 {
        match self.version {
            Version::Modern => self.regs.read32(CONFIG_GENERATION),
            Version::Legacy => 0,
        }
    }
}

impl Drop for MmioTransport {
    fn drop(&mut self) {
        if self.claimed {
            // The device must stop using the driver's memory before the driver frees it (the
            // transport is dropped before the queue and buffers, see `VirtioBlk`). A device that
            // will not reset is left claimed so nobody hands it memory again.
            if self.reset().is_ok() {
                CLAIMED.lock().remove(&self.base.as_u64());
            } else {
                log::error!(
                    "virtio-mmio at {}: reset failed on release; slot left claimed",
                    self.base
                );
            }
        }
    }
}
