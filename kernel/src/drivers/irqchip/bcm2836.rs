//! The Raspberry Pi 3's interrupt controllers (BCM2836/BCM2837, as Linux's irq-bcm2836 and
//! irq-bcm2835 drive them): the per-core local controller (ARM local peripherals) raises the
//! generic timer's lines directly and summarises the GPU's interrupts on line 8, which the
//! BCM2835 ARM controller, chained behind it, resolves into its three banks (0: the ARM block's
//! basic lines, 1 and 2: the GPU's peripherals 0-63). One chip for the kernel: lines 0-31 are
//! the local controller's, 32 + bank * 32 + line the ARM controller's. Core 0 takes them all.
//! Owns the registers; must never run a handler.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;

use crate::irq::IrqChip;
use crate::machine::{Bcm2836Intc, Irq, Trigger};
use crate::mm::ioremap::{ioremap, IoMem};

// Local controller (ARM local peripherals).
const LOCAL_TIMER_IRQ_CNTL0: u64 = 0x40;
const LOCAL_IRQ_SOURCE0: u64 = 0x60;
/// The local controller's line that summarises the ARM controller.
const LOCAL_GPU: u32 = 8;
// ARM controller.
const PENDING: [u64; 3] = [0x00, 0x04, 0x08];
const ENABLE: [u64; 3] = [0x18, 0x10, 0x14];
const DISABLE: [u64; 3] = [0x24, 0x1c, 0x20];
/// Basic-pending bits that are banks 0's own lines (the rest summarise banks 1 and 2 or repeat
/// lines of them).
const BASIC_OWN: u32 = 0xff;

pub struct Bcm2836 {
    local: IoMem,
    armctrl: Option<IoMem>,
    local_path: String,
    armctrl_path: Option<String>,
}

impl Bcm2836 {
    pub fn new(b: &Bcm2836Intc) -> Result<Bcm2836, String> {
        let local = ioremap(b.local.base, b.local.size)
            .map_err(|e| format!("ioremap of the BCM2836 local controller: {e}"))?;
        let armctrl = match b.armctrl {
            Some(r) => Some(
                ioremap(r.base, r.size)
                    .map_err(|e| format!("ioremap of the BCM2835 ARM controller: {e}"))?,
            ),
            None => None,
        };
        // Every timer line off for core 0; every ARM controller line off.
        local.write32(LOCAL_TIMER_IRQ_CNTL0, 0);
        if let Some(a) = &armctrl {
            for d in DISABLE {
                a.write32(d, !0);
            }
        }
        Ok(Bcm2836 {
            local,
            armctrl,
            local_path: b.local_path.clone(),
            armctrl_path: b.armctrl_path.clone(),
        })
    }
}

impl IrqChip for Bcm2836 {
    fn name(&self) -> &'static str {
        "bcm2836"
    }

    fn lines(&self) -> u32 {
        if self.armctrl.is_some() {
            32 + 3 * 32
        } else {
            32
        }
    }

    fn map(&self, irq: &Irq) -> Option<u32> {
        if irq.controller == self.local_path && irq.hwirq < 32 {
            Some(irq.hwirq)
        } else if self.armctrl_path.as_deref() == Some(irq.controller.as_str()) && irq.hwirq < 96 {
            Some(32 + irq.hwirq)
        } else {
            None
        }
    }

    fn enable(&self, hwirq: u32, _trigger: Trigger) {
        match hwirq {
            // The generic timer's four lines: core 0's timer control, IRQ (not FIQ).
            0..=3 => {
                let v = self.local.read32(LOCAL_TIMER_IRQ_CNTL0);
                self.local.write32(LOCAL_TIMER_IRQ_CNTL0, v | 1 << hwirq);
            }
            32.. => {
                if let Some(a) = &self.armctrl {
                    let (bank, line) = ((hwirq - 32) / 32, (hwirq - 32) % 32);
                    a.write32(ENABLE[bank as usize], 1 << line);
                }
            }
            // The GPU summary line is always routed to core 0 (the reset routing); mailboxes
            // and the local timer are not used.
            _ => {}
        }
    }

    fn disable(&self, hwirq: u32) {
        match hwirq {
            0..=3 => {
                let v = self.local.read32(LOCAL_TIMER_IRQ_CNTL0);
                self.local.write32(LOCAL_TIMER_IRQ_CNTL0, v & !(1 << hwirq));
            }
            32.. => {
                if let Some(a) = &self.armctrl {
                    let (bank, line) = ((hwirq - 32) / 32, (hwirq - 32) % 32);
                    a.write32(DISABLE[bank as usize], 1 << line);
                }
            }
            _ => {}
        }
    }

    fn acknowledge(&self) -> Option<u32> {
        let source = self.local.read32(LOCAL_IRQ_SOURCE0);
        // The local lines first (the timer), then what the ARM controller has pending.
        let own = source & !(1 << LOCAL_GPU);
        if own != 0 {
            return Some(own.trailing_zeros());
        }
        if source & (1 << LOCAL_GPU) == 0 {
            return None;
        }
        let a = self.armctrl.as_ref()?;
        for (bank, &register) in PENDING.iter().enumerate() {
            let mut pending = a.read32(register);
            if bank == 0 {
                pending &= BASIC_OWN;
            }
            if pending != 0 {
                return Some(32 + bank as u32 * 32 + pending.trailing_zeros());
            }
        }
        None
    }

    fn hwirq_of(&self, ack: u32) -> u32 {
        ack
    }

    fn end(&self, _ack: u32) {
        // Level-triggered lines: the device's own acknowledgement lowers them.
    }
}
