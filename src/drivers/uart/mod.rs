//! Serial consoles: the PL011 (QEMU virt, Raspberry Pi uart0) and the BCM2835 mini-UART
//! (Raspberry Pi uart1, the header pins on a Pi 3 and 4 by default).

pub mod mini_uart;
pub mod pl011;
#[cfg(target_os = "none")]
mod selftests;

use crate::machine::{Uart, UartKind};

/// A console UART of either kind.
pub enum SerialPort {
    Pl011(pl011::Pl011),
    MiniUart(mini_uart::MiniUart),
}

impl SerialPort {
    /// Takes the UART the machine description names, whose registers are mapped at `base`, and
    /// programs it for 115200 8N1 where the tree gives its clock; otherwise keeps the firmware's
    /// settings.
    ///
    /// # Safety
    /// `base` must map `uart`'s register block as device memory for the kernel's lifetime, and
    /// nothing else may drive it.
    pub unsafe fn new(uart: &Uart, base: usize) -> SerialPort {
        match uart.kind {
            // SAFETY: the caller vouches for the register block.
            UartKind::Pl011 => SerialPort::Pl011(unsafe { pl011::Pl011::new(base, uart.clock_hz) }),
            // SAFETY: as above.
            UartKind::MiniUart => SerialPort::MiniUart(unsafe { mini_uart::MiniUart::new(base) }),
        }
    }

    pub fn write_byte(&self, byte: u8) {
        match self {
            SerialPort::Pl011(u) => u.write_byte(byte),
            SerialPort::MiniUart(u) => u.write_byte(byte),
        }
    }

    /// Waits until everything written has left the transmitter.
    pub fn flush(&self) {
        match self {
            SerialPort::Pl011(u) => u.flush(),
            SerialPort::MiniUart(u) => u.flush(),
        }
    }

    pub fn base(&self) -> usize {
        match self {
            SerialPort::Pl011(u) => u.base(),
            SerialPort::MiniUart(u) => u.base(),
        }
    }

    /// Moves to another mapping of the same registers (the boot mapping to `ioremap`'s).
    ///
    /// # Safety
    /// `base` must map this port's register block for the rest of the kernel's life.
    pub unsafe fn rebase(&self, base: usize) {
        match self {
            // SAFETY: forwarded.
            SerialPort::Pl011(u) => unsafe { u.rebase(base) },
            // SAFETY: forwarded.
            SerialPort::MiniUart(u) => unsafe { u.rebase(base) },
        }
    }
}
