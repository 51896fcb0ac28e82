//! Puts the kernel's linker script on the link search path of whatever links the kernel (the
//! image, an application's own binary), as `ferrite.ld`, so their link line names it by that name
//! (`-C link-arg=-Tferrite.ld`, in the target's flags) wherever they are built from. Tells cargo
//! to rebuild when the script or the assembly it includes changes.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::copy(format!("{dir}/linker.ld"), format!("{out}/ferrite.ld"))
        .expect("copying linker.ld to OUT_DIR");
    println!("cargo:rustc-link-search={out}");
    for path in [
        "linker.ld",
        "src/arch/aarch64/entry.S",
        "src/arch/aarch64/vectors.S",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
