//! BCM2835 auxiliary mini-UART. Its baud rate divides the VPU core clock, which only the firmware
//! knows (`core_freq` in config.txt), so the driver keeps the firmware's line settings
//! (`enable_uart=1` sets them up) and only makes sure the transmitter is on.

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields! [u32,
    LSR [
        TX_IDLE OFFSET(6) NUMBITS(1) [],
        TX_EMPTY OFFSET(5) NUMBITS(1) []
    ],
    CNTL [
        TX_ENABLE OFFSET(1) NUMBITS(1) [],
        RX_ENABLE OFFSET(0) NUMBITS(1) []
    ]
];

register_structs! {
    Registers {
        (0x00 => io: ReadWrite<u32>),
        (0x04 => ier: ReadWrite<u32>),
        (0x08 => iir: ReadWrite<u32>),
        (0x0c => lcr: ReadWrite<u32>),
        (0x10 => mcr: ReadWrite<u32>),
        (0x14 => lsr: ReadOnly<u32, LSR::Register>),
        (0x18 => msr: ReadOnly<u32>),
        (0x1c => scratch: ReadWrite<u32>),
        (0x20 => cntl: ReadWrite<u32, CNTL::Register>),
        (0x24 => stat: ReadOnly<u32>),
        (0x28 => baud: ReadWrite<u32>),
        (0x2c => @END),
    }
}

const SPIN_LIMIT: u32 = 1_000_000;

pub struct MiniUart {
    /// Where the registers are mapped now (`rebase` moves it: boot mapping, then ioremap).
    base: core::sync::atomic::AtomicUsize,
}

// SAFETY: the registers are only read and written whole through volatile accesses; the console
// lock orders normal writers, and an emergency writer interleaving bytes cannot break the device.
unsafe impl Sync for MiniUart {}
// SAFETY: as above; the register block is not tied to a thread.
unsafe impl Send for MiniUart {}

impl MiniUart {
    /// # Safety
    /// `base` must address the mini-UART register block (AUX_MU_IO), valid for the kernel's
    /// lifetime, with the AUX block enabled by the firmware.
    pub unsafe fn new(base: usize) -> MiniUart {
        // SAFETY: the caller guarantees `base` is the register block.
        let regs = unsafe { &*(base as *const Registers) };
        let base = core::sync::atomic::AtomicUsize::new(base);
        regs.ier.set(0);
        regs.cntl
            .modify(CNTL::TX_ENABLE::SET + CNTL::RX_ENABLE::SET);
        MiniUart { base }
    }

    pub fn write_byte(&self, byte: u8) {
        let mut spins = 0;
        while !self.regs().lsr.is_set(LSR::TX_EMPTY) && spins < SPIN_LIMIT {
            spins += 1;
            core::hint::spin_loop();
        }
        self.regs().io.set(byte as u32);
    }

    pub fn flush(&self) {
        let mut spins = 0;
        while !self.regs().lsr.is_set(LSR::TX_IDLE) && spins < SPIN_LIMIT {
            spins += 1;
            core::hint::spin_loop();
        }
    }

    pub fn base(&self) -> usize {
        self.base.load(core::sync::atomic::Ordering::Relaxed)
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new` and `rebase` only accept addresses mapping this device's registers.
        unsafe { &*(self.base() as *const Registers) }
    }

    /// Moves to another mapping of the same registers.
    ///
    /// # Safety
    /// `base` must map this device's register block for the rest of the kernel's life.
    pub unsafe fn rebase(&self, base: usize) {
        self.base.store(base, core::sync::atomic::Ordering::SeqCst);
    }
}
