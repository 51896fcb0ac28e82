//! virtio over virtio-mmio: the transport (`mmio`: probing a slot, status handshake, feature
//! negotiation, queue registration for the legacy v1 and modern v2 register layouts), the split
//! virtqueue (`queue`: rings in one DMA-coherent buffer, descriptor free list, polling with a
//! deadline) and the block device (`blk`: read, write, flush with multi-segment requests).
//!
//! Owns the virtio devices it claims and the memory it gives them (rings, request headers, data
//! mappings for the duration of a request). Must never hand a device memory the CPU could free
//! while the device may still use it: a device that stops answering is reset before its buffers
//! are let go. Must never touch system registers or page tables itself: registers come from
//! `ioremap`, memory the device reaches from the DMA API. Kernel only.

#[cfg(target_os = "none")]
pub mod blk;
#[cfg(target_os = "none")]
pub mod mmio;
#[cfg(target_os = "none")]
pub mod queue;
#[cfg(target_os = "none")]
mod selftests;

/// virtio device IDs (virtio 1.x §5) this kernel knows by name.
pub mod device_id {
    pub const NET: u32 = 1;
    pub const BLOCK: u32 = 2;
    pub const CONSOLE: u32 = 3;
    pub const ENTROPY: u32 = 4;

    /// A printable name for a device ID.
    pub fn name(id: u32) -> &'static str {
        match id {
            NET => "network",
            BLOCK => "block",
            CONSOLE => "console",
            ENTROPY => "entropy",
            _ => "other",
        }
    }
}
