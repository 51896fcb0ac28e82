//! Device drivers. Each driver owns its register block and nothing else; mapping the registers
//! (today the boot identity view, later `ioremap`) is its caller's job.

pub mod pci;
pub mod uart;
pub mod virtio;
