//! ARM PrimeCell PL011 UART. Owns its register block; never blocks forever (a transmitter that
//! stays busy is given up on after a bounded wait, so a dead UART cannot hang the kernel).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_bitfields! [u32,
    FR [
        TXFE OFFSET(7) NUMBITS(1) [],
        TXFF OFFSET(5) NUMBITS(1) [],
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    LCR_H [
        WLEN OFFSET(5) NUMBITS(2) [EightBit = 0b11],
        FEN OFFSET(4) NUMBITS(1) []
    ],
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) []
    ]
];

register_structs! {
    Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: ReadWrite<u32>),
        (0x28 => fbrd: ReadWrite<u32>),
        (0x2c => lcr_h: ReadWrite<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

const BAUD: u32 = 115_200;
/// Polls of the flag register before a write is dropped (far longer than a character takes).
const SPIN_LIMIT: u32 = 1_000_000;

pub struct Pl011 {
    /// Where the registers are mapped now (`rebase` moves it: boot mapping, then ioremap).
    base: core::sync::atomic::AtomicUsize,
}

// SAFETY: the registers are only read and written whole through volatile accesses; the console
// lock orders normal writers, and an emergency writer interleaving bytes cannot break the device.
unsafe impl Sync for Pl011 {}
// SAFETY: as above; the register block is not tied to a thread.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must address a PL011 register block, valid for the kernel's lifetime.
    pub unsafe fn new(base: usize, clock_hz: Option<u32>) -> Pl011 {
        // SAFETY: the caller guarantees `base` is the register block.
        let regs = unsafe { &*(base as *const Registers) };
        let base = core::sync::atomic::AtomicUsize::new(base);
        let uart = Pl011 { base };
        if let Some(clock) = clock_hz.filter(|&c| c >= 16 * BAUD) {
            uart.flush();
            regs.cr.write(CR::UARTEN::CLEAR);
            regs.icr.set(0x7ff);
            // Divisor in 1/64ths: clock / (16 * baud), rounded.
            let div64 = (4 * clock as u64 + BAUD as u64 / 2) / BAUD as u64;
            regs.ibrd.set((div64 >> 6) as u32);
            regs.fbrd.set((div64 & 0x3f) as u32);
            regs.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        }
        regs.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
        uart
    }

    pub fn write_byte(&self, byte: u8) {
        let mut spins = 0;
        while self.regs().fr.is_set(FR::TXFF) && spins < SPIN_LIMIT {
            spins += 1;
            core::hint::spin_loop();
        }
        self.regs().dr.set(byte as u32);
    }

    pub fn flush(&self) {
        let mut spins = 0;
        while self.regs().fr.is_set(FR::BUSY) && spins < SPIN_LIMIT {
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
