//! Links the kernel with its linker script (by absolute path, so a build from any directory
//! finds it), for the kernel's target only: the host build of this crate (its host tests) links
//! as an ordinary program. Tells cargo to relink when the script or the assembly it includes
//! changes.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    if std::env::var("TARGET").is_ok_and(|t| t == "aarch64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    }
    for path in [
        "linker.ld",
        "src/arch/aarch64/entry.S",
        "src/arch/aarch64/vectors.S",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
