//! Architecture support. Only `aarch64` exists; the portable kernel reaches the hardware through
//! the small functions this layer exports, never through registers of its own.

pub mod aarch64;
