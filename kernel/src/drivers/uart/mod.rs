//! Serial consoles: the PL011 (QEMU virt, Raspberry Pi uart0) and the BCM2835 mini-UART
//! (Raspberry Pi uart1, the header pins on a Pi 3 and 4 by default). What the two share lives
//! here once: the typed register block (`Mmio`, built here from the machine description's kind),
//! the bounded wait on the transmitter, and the move to another mapping.

pub mod mini_uart;
pub mod pl011;
#[cfg(target_os = "none")]
mod selftests;

use crate::addr::VirtAddr;
use crate::drivers::regs::Mmio;
use crate::machine::{Uart, UartKind};

/// Polls of a status register before a transmitter that stays busy is given up on (far longer
/// than a character takes): a dead UART must not hang the kernel.
const SPIN_LIMIT: u32 = 1_000_000;

/// Polls until `done`, or gives up after `SPIN_LIMIT` tries.
fn spin_until(done: impl Fn() -> bool) {
    let mut spins = 0;
    while !done() && spins < SPIN_LIMIT {
        spins += 1;
        core::hint::spin_loop();
    }
}

/// A console UART of either kind.
pub enum SerialPort {
    Pl011(pl011::Pl011),
    MiniUart(mini_uart::MiniUart),
}

impl SerialPort {
    /// Takes the UART the machine description names, whose registers are mapped at `va`, and
    /// programs it for 115200 8N1 where the tree gives its clock; otherwise keeps the firmware's
    /// settings.
    ///
    /// # Safety
    /// `va` must map `uart`'s register block as device memory for the kernel's lifetime (or
    /// until `move_to`), and nothing else may drive it.
    pub unsafe fn new(uart: &Uart, va: VirtAddr) -> SerialPort {
        match uart.kind {
            // SAFETY: the caller vouches for the mapping; the tree says it is a PL011.
            UartKind::Pl011 => SerialPort::Pl011(pl011::Pl011::new(
                unsafe { Mmio::new(va, uart.base) },
                uart.clock_hz,
            )),
            // SAFETY: as above, a mini-UART.
            UartKind::MiniUart => SerialPort::MiniUart(mini_uart::MiniUart::new(unsafe {
                Mmio::new(va, uart.base)
            })),
        }
    }

    pub fn write_byte(&self, byte: u8) {
        match self {
            SerialPort::Pl011(u) => u.write_byte(byte),
            SerialPort::MiniUart(u) => u.write_byte(byte),
        }
    }

    /// The next byte received, if one is waiting (the receiver is polled: no interrupts yet).
    pub fn try_read_byte(&self) -> Option<u8> {
        match self {
            SerialPort::Pl011(u) => u.try_read_byte(),
            SerialPort::MiniUart(u) => u.try_read_byte(),
        }
    }

    /// Waits until everything written has left the transmitter.
    pub fn flush(&self) {
        match self {
            SerialPort::Pl011(u) => u.flush(),
            SerialPort::MiniUart(u) => u.flush(),
        }
    }

    /// Where the registers are mapped now.
    pub fn addr(&self) -> VirtAddr {
        match self {
            SerialPort::Pl011(u) => u.regs.addr(),
            SerialPort::MiniUart(u) => u.regs.addr(),
        }
    }

    /// Moves to `io`, another mapping of the same registers (the boot mapping to `ioremap`'s),
    /// kept for good. Refused (the mapping handed back) if `io` maps other registers.
    #[cfg(target_os = "none")]
    pub fn move_to(&self, io: crate::mm::ioremap::IoMem) -> Result<(), crate::mm::ioremap::IoMem> {
        match self {
            SerialPort::Pl011(u) => u.regs.move_to(io),
            SerialPort::MiniUart(u) => u.regs.move_to(io),
        }
    }
}
