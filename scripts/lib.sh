# Shared helpers for Ferrite's scripts. Sourced, never run.
FERRITE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FERRITE_BUILD="${FERRITE_BUILD:-$FERRITE_ROOT/build}"
FERRITE_CACHE="${FERRITE_CACHE:-$HOME/.cache/ferrite}"

die() { echo "error: $*" >&2; exit 1; }

# The llvm-tools binary directory of the pinned toolchain.
llvm_bin() {
    local sysroot host
    sysroot="$(cd "$FERRITE_ROOT" && rustc --print sysroot)"
    host="$(cd "$FERRITE_ROOT" && rustc -vV | sed -n 's/^host: //p')"
    echo "$sysroot/lib/rustlib/$host/bin"
}


# make_image ELF IMAGE: the raw arm64 Image (header included) from the kernel ELF.
make_image() {
    local elf="$1" image="$2"
    if [ ! -f "$image" ] || [ "$elf" -nt "$image" ]; then
        mkdir -p "$(dirname "$image")"
        "$(llvm_bin)/llvm-objcopy" -O binary "$elf" "$image.tmp" && mv "$image.tmp" "$image"
    fi
}

# board_dtb BOARD: compiles the board's DTS (if it has one) and prints the .dtb path.
board_dtb() {
    local board="$1" DTS=""
    # shellcheck disable=SC1090
    . "$FERRITE_ROOT/boards/$board/board.env"
    [ -n "$DTS" ] || return 0
    local out="$FERRITE_BUILD/$board.dtb"
    if [ ! -f "$out" ] || [ "$FERRITE_ROOT/$DTS" -nt "$out" ]; then
        mkdir -p "$FERRITE_BUILD"
        dtc -q -I dts -O dtb -o "$out" "$FERRITE_ROOT/$DTS" || die "dtc failed on $DTS"
    fi
    echo "$out"
}
