//! Self-tests of the console UART on the running machine: the UART the console writes to is the
//! one the machine description names, mapped in the ioremap area.

use crate::addr::VirtAddr;
use crate::arch::aarch64::mmu;
use crate::kernel;
use crate::ktest::TestError;
use crate::mm::layout::{self, Region};
use crate::{kassert_eq, ktest};

ktest!(console_is_the_uart_in_use, {
    let k = kernel::get().ok_or(TestError::Fail("kernel state not published".into()))?;
    let uart = k
        .machine
        .uart
        .as_ref()
        .ok_or(TestError::Fail("no UART described".into()))?;
    let va = crate::console::base().ok_or(TestError::Fail("no console".into()))?;
    let va = VirtAddr::new(va as u64);
    kassert_eq!(
        layout::region_of(va.as_u64(), &k.boot.kimage),
        Region::Ioremap
    );
    // The MMU itself must take the console's mapping to the UART the tree names.
    kassert_eq!(mmu::translate_hw(va), Some(uart.base));
    Ok(())
});
