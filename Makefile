# Ferrite: `make run` boots it, `make test` tests it. Both install what they need first.
#   make run  [BOARD=virt|raspi3b] [MEM=2G] [SMP=4] [BOOTARGS="run=selftest loglevel=7"] [APP=dir]
#   make test
#   make bench       benchmarks under QEMU -icount shift=0 (table + `bench NAME VALUE UNIT` lines)
#   make image       build/Image (arm64 Image, for QEMU -kernel, U-Boot booti, Pi kernel8.img)
#   make sdcard [BOARD=rpi4|rpi3]   Raspberry Pi SD-card image build/sdcard-BOARD.img (default rpi4)
#   APP=dir (run, image, sdcard): the application crate in dir alone (one scripts/new-app made, or
#   one of apps/) instead of the workspace's image with every app of apps/ linked in
#   make dtb-info DTB=file.dtb
SHELL := /bin/bash
BOARD ?= virt
MEM ?=
SMP ?=
BOOTARGS ?=
BUILD := build
APP ?=
ifeq ($(APP),)
ELF := target/aarch64-unknown-none/release/ferrite
BUILD_KERNEL := cargo build --release --target aarch64-unknown-none -p ferrite-image
else
APP_NAME := $(shell sed -n 's/^name *= *"\(.*\)"/\1/p' "$(APP)/Cargo.toml" 2>/dev/null | head -n 1)
ifeq ($(patsubst $(CURDIR)/apps/%,,$(abspath $(APP))),)
# One of the workspace's applications (apps/NAME): its own image, the kernel with it alone.
ELF := target/aarch64-unknown-none/release/$(APP_NAME)
BUILD_KERNEL := cargo build --release --target aarch64-unknown-none -p $(APP_NAME) --bin $(APP_NAME)
else
ELF := $(abspath $(APP))/target/aarch64-unknown-none/release/$(APP_NAME)
BUILD_KERNEL := @[ -n "$(APP_NAME)" ] || { echo "APP=$(APP): no Cargo.toml with a package name there" >&2; exit 1; }; cd "$(APP)" && cargo build --release
endif
endif

.PHONY: all setup kernel image sdcard run test test-host bench dtb-info clean
all: image

setup:
	@scripts/setup

kernel: setup
	$(BUILD_KERNEL)

image: kernel
	@mkdir -p $(BUILD)
	@cp $(ELF) $(BUILD)/ferrite.elf
	@source scripts/lib.sh && make_image $(BUILD)/ferrite.elf $(BUILD)/Image
	@echo "$(BUILD)/Image ($$(stat -c %s $(BUILD)/Image) bytes), ELF for debugging: $(BUILD)/ferrite.elf"

# BOARD left at its default (virt, for make run) means rpi4 here; QEMU boards are refused.
sdcard: image
	@b="$(if $(filter file,$(origin BOARD)),rpi4,$(BOARD))"; scripts/mksdcard "$$b" "$(BUILD)/sdcard-$$b.img"

run: image
	@BOARD=$(BOARD) MEM=$(MEM) SMP=$(SMP) BOOTARGS="$(BOOTARGS)" scripts/qemu-run $(BUILD)/Image

test: setup
	@scripts/run-tests

test-host: setup
	@scripts/run-tests --only host

bench: image
	@scripts/bench

dtb-info: setup
	@scripts/dtb-info $(DTB)

clean:
	cargo clean
	rm -rf $(BUILD)
