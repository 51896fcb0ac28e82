//! The panic handler: location and message on the console, then a failure exit. A panic while
//! panicking stops at once instead of recursing.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::aarch64::{cpu, power};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::SeqCst) {
        cpu::halt();
    }
    match info.location() {
        Some(l) => crate::console::emergency_print(format_args!(
            "\nKernel panic at {}:{}:{}: {}\n",
            l.file(),
            l.line(),
            l.column(),
            info.message()
        )),
        None => {
            crate::console::emergency_print(format_args!("\nKernel panic: {}\n", info.message()))
        }
    }
    power::shutdown(power::ExitStatus::Failure)
}
