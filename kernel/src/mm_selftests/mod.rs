//! The memory manager's in-kernel self-tests (`run=selftest`): what needs the booted kernel, the
//! architecture (provoked faults, AT, ticks) or real devices, so it lives at kernel level and mm
//! itself names neither. Logic that needs no machine is tested on the host beside its code in mm.

mod dma;
mod fault;
mod heap;
pub(crate) mod page_alloc;
mod swap;
