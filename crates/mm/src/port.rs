//! A port: a table of functions mm calls and the kernel installs once at boot (`mm::cpu`'s CPU
//! services, `mm::kspace`'s table operations). Owns only the installed pointer; a use before the
//! kernel installed the table is a boot-order bug and panics naming the port.
// A named exception to the crate's `deny(unsafe_code)`: a port is installed once and read without a lock.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicPtr, Ordering};

pub struct Port<T: 'static> {
    table: AtomicPtr<T>,
    /// The port's name, for the panic of a use before `install`.
    name: &'static str,
}

impl<T: 'static> Port<T> {
    /// A port with nothing installed yet.
    pub const fn new(name: &'static str) -> Self {
        Port {
            table: AtomicPtr::new(core::ptr::null_mut()),
            name,
        }
    }

    /// A port with `table` installed from the start (the host builds' portable tables).
    pub const fn with(table: &'static T, name: &'static str) -> Self {
        Port {
            table: AtomicPtr::new(table as *const T as *mut T),
            name,
        }
    }

    /// Installs `table` (the running address of a static: install it after the jump to the high
    /// half, not before).
    pub fn install(&self, table: &'static T) {
        self.table
            .store(table as *const T as *mut T, Ordering::Release);
    }

    /// The installed table.
    #[inline(always)]
    pub fn get(&self) -> &'static T {
        let p = self.table.load(Ordering::Acquire);
        if p.is_null() {
            not_installed(self.name);
        }
        // SAFETY: the only non-null pointers stored come from `&'static T` (`install`, `with`).
        unsafe { &*p }
    }
}

#[cold]
#[inline(never)]
fn not_installed(name: &str) -> ! {
    panic!("{name} is used before the kernel installed it")
}

#[cfg(test)]
mod tests {
    use super::*;

    static ONE: u32 = 1;
    static TWO: u32 = 2;

    #[test]
    fn a_port_gives_what_was_installed_last() {
        let p = Port::with(&ONE, "test port");
        assert_eq!(*p.get(), 1);
        p.install(&TWO);
        assert_eq!(*p.get(), 2);
    }

    #[test]
    #[should_panic(expected = "test port is used before the kernel installed it")]
    fn a_use_before_install_panics_naming_the_port() {
        let p: Port<u32> = Port::new("test port");
        p.get();
    }
}
