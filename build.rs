//! Tells cargo to relink the kernel when the linker script or the assembly it includes changes.
fn main() {
    for path in [
        "linker.ld",
        "src/arch/aarch64/entry.S",
        "src/arch/aarch64/vectors.S",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
