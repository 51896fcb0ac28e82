//! BCM2835 auxiliary mini-UART. Its baud rate divides the VPU core clock, which only the firmware
//! knows (`core_freq` in config.txt), so the driver keeps the firmware's line settings
//! (`enable_uart=1` sets them up) and only makes sure the transmitter is on.

#![forbid(unsafe_code)]

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use super::spin_until;
use crate::drivers::regs::Mmio;

register_bitfields! [u32,
    LSR [
        TX_IDLE OFFSET(6) NUMBITS(1) [],
        TX_EMPTY OFFSET(5) NUMBITS(1) [],
        DATA_READY OFFSET(0) NUMBITS(1) []
    ],
    CNTL [
        TX_ENABLE OFFSET(1) NUMBITS(1) [],
        RX_ENABLE OFFSET(0) NUMBITS(1) []
    ]
];

register_structs! {
    pub Registers {
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

pub struct MiniUart {
    pub(super) regs: Mmio<Registers>,
}

impl MiniUart {
    /// Takes the UART (the AUX block enabled by the firmware) and makes sure its transmitter
    /// and receiver are on, with interrupts off.
    pub fn new(regs: Mmio<Registers>) -> MiniUart {
        let r = regs.regs();
        r.ier.set(0);
        r.cntl.modify(CNTL::TX_ENABLE::SET + CNTL::RX_ENABLE::SET);
        MiniUart { regs }
    }

    pub fn write_byte(&self, byte: u8) {
        let r = self.regs.regs();
        spin_until(|| r.lsr.is_set(LSR::TX_EMPTY));
        r.io.set(byte as u32);
    }

    pub fn flush(&self) {
        let r = self.regs.regs();
        spin_until(|| r.lsr.is_set(LSR::TX_IDLE));
    }

    /// The next received byte, if one is waiting.
    pub fn try_read_byte(&self) -> Option<u8> {
        let r = self.regs.regs();
        r.lsr.is_set(LSR::DATA_READY).then(|| r.io.get() as u8)
    }
}
