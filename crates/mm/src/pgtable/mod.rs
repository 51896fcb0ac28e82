//! The one page-table API every mapping goes through (kernel image, linear map, vmalloc, ioremap,
//! the application's space): map, unmap, protect, translate and walk over VMSAv8-64 tables with a
//! 4 KiB granule and 48-bit VAs, for either half. Portable: table pages come from a `TableAlloc`
//! and TLB maintenance goes through a `TlbFlush`, so the host tests drive this exact code over
//! simulated memory. Must never touch a system register itself.

pub mod desc;
pub mod table;

pub use desc::{Attrs, MemType};
pub use table::{Half, MapError, PageTable, TableAlloc, TlbFlush, Translation};

#[cfg(test)]
pub(crate) mod tests;
