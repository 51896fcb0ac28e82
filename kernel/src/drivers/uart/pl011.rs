//! ARM PrimeCell PL011 UART. Owns its register block; never blocks forever (a transmitter that
//! stays busy is given up on after a bounded wait, so a dead UART cannot hang the kernel).

#![forbid(unsafe_code)]

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

use super::spin_until;
use crate::drivers::regs::Mmio;

register_bitfields! [u32,
    FR [
        TXFE OFFSET(7) NUMBITS(1) [],
        TXFF OFFSET(5) NUMBITS(1) [],
        RXFE OFFSET(4) NUMBITS(1) [],
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
    pub Registers {
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

pub struct Pl011 {
    pub(super) regs: Mmio<Registers>,
}

impl Pl011 {
    /// Takes the UART and turns it on, programming 115200 8N1 when its clock is known (else the
    /// firmware's settings stay).
    pub fn new(regs: Mmio<Registers>, clock_hz: Option<u32>) -> Pl011 {
        let uart = Pl011 { regs };
        let r = uart.regs.regs();
        if let Some(clock) = clock_hz.filter(|&c| c >= 16 * BAUD) {
            uart.flush();
            r.cr.write(CR::UARTEN::CLEAR);
            r.icr.set(0x7ff);
            // Divisor in 1/64ths: clock / (16 * baud), rounded.
            let div64 = (4 * clock as u64 + BAUD as u64 / 2) / BAUD as u64;
            r.ibrd.set((div64 >> 6) as u32);
            r.fbrd.set((div64 & 0x3f) as u32);
            // 8N1; the FIFO as the firmware left it. Changing LCR_H.FEN empties the receive
            // FIFO (QEMU's model does, as the hardware may), losing what was typed before the
            // kernel ran; under QEMU, which holds input back while the one-byte register is
            // full, no byte is lost without it either.
            let fifo = r.lcr_h.read(LCR_H::FEN);
            r.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN.val(fifo));
        }
        r.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
        uart
    }

    pub fn write_byte(&self, byte: u8) {
        let r = self.regs.regs();
        spin_until(|| !r.fr.is_set(FR::TXFF));
        r.dr.set(byte as u32);
    }

    pub fn flush(&self) {
        let r = self.regs.regs();
        spin_until(|| !r.fr.is_set(FR::BUSY));
    }

    /// The next received byte, if one is waiting.
    pub fn try_read_byte(&self) -> Option<u8> {
        let r = self.regs.regs();
        (!r.fr.is_set(FR::RXFE)).then(|| r.dr.get() as u8)
    }
}
