// Ferrite's first instructions: the arm64 Image header, then position-independent code that runs
// with the MMU off. It parks every core but the boot core, drops from EL2 to EL1, enables FP/SIMD,
// applies the image's own relocations for the load address, zeroes BSS, sets the boot stack and
// vectors, and calls `arch_early_mmu` (Rust, still at the load address) to build the boot tables
// and turn the MMU on. It then moves every relocated pointer to the high-half address, jumps there
// and calls `arch_boot_entry`. Nothing here may use an absolute address.

.equ R_AARCH64_RELATIVE, 1027
.equ HCR_EL2_RW,         (1 << 31)
.equ CNTHCTL_EL1PCEN_PCTEN, 3
.equ CPTR_EL2_RES1,      0x33ff           // RES1 bits, TFP (bit 10) clear: FP/SIMD not trapped
.equ SCTLR_EL1_RES1,     0x30d00800       // MMU, caches and alignment checks off, little-endian
.equ SPSR_EL1H_MASKED,   0x3c5            // EL1h, D A I F masked
.equ CPACR_EL1_FPEN,     (3 << 20)

.section .text.head, "ax"
.global _head
_head:
    b       primary_entry                 // code0
    .long   0                             // code1
    .quad   0x80000                       // text_offset
    .quad   __image_size                  // image_size, BSS included
    .quad   0xa                           // flags: little-endian, 4 KiB pages, anywhere in RAM
    .quad   0                             // res2
    .quad   0                             // res3
    .quad   0                             // res4
    .ascii  "ARM\x64"                     // magic
    .long   0                             // res5: no PE/COFF header

.section .text.boot, "ax"
primary_entry:
    mrs     x23, cntvct_el0               // when Ferrite started, for the boot-cost report
    mov     x19, x0                       // device tree address from the loader
    mrs     x20, CurrentEL
    lsr     x20, x20, #2                  // entry exception level, reported later
    mrs     x1, mpidr_el1
    and     x1, x1, #0xffffff             // Aff2.Aff1.Aff0
    cbnz    x1, park

    cmp     x20, #2
    b.eq    drop_from_el2
    b.hi    park                          // EL3: we are not firmware
    b       at_el1

drop_from_el2:
    mov     x1, #HCR_EL2_RW               // EL1 runs AArch64, nothing trapped to EL2
    msr     hcr_el2, x1
    isb                                   // E2H is now 0: CNTHCTL_EL2 has its EL1 layout
    mrs     x1, cnthctl_el2
    orr     x1, x1, #CNTHCTL_EL1PCEN_PCTEN
    msr     cnthctl_el2, x1
    msr     cntvoff_el2, xzr
    mov     x1, #CPTR_EL2_RES1
    msr     cptr_el2, x1
    msr     hstr_el2, xzr
    // A GICv3 CPU interface (ID_AA64PFR0_EL1.GIC, bits 27:24, non-zero): let EL1 use its system
    // registers (ICC_SRE_EL2.Enable and SRE), as Linux's el2_setup does; EL1 sets its own SRE.
    mrs     x1, id_aa64pfr0_el1
    ubfx    x1, x1, #24, #4
    cbz     x1, 1f
    mrs     x1, S3_4_C12_C9_5             // ICC_SRE_EL2
    orr     x1, x1, #0x8                  // Enable (bit 3)
    orr     x1, x1, #0x1                  // SRE (bit 0)
    msr     S3_4_C12_C9_5, x1
    isb
1:  ldr     x1, =SCTLR_EL1_RES1
    msr     sctlr_el1, x1
    mov     x1, #SPSR_EL1H_MASKED
    msr     spsr_el2, x1
    adr     x1, at_el1
    msr     elr_el2, x1
    eret

at_el1:
    ldr     x1, =SCTLR_EL1_RES1           // a known state, whoever ran EL1 before us
    msr     sctlr_el1, x1
    msr     spsel, #1
    mov     x1, #CPACR_EL1_FPEN           // Rust code uses NEON registers
    msr     cpacr_el1, x1
    isb

    // The loader may have left dirty cache lines over our data and BSS; one evicted while we
    // write with the caches off would overwrite our writes. Discard them first (the boot
    // protocol has the loader clean the image itself to memory).
    adrp    x2, __data_start
    add     x2, x2, :lo12:__data_start
    adrp    x3, __noinit_start
    add     x3, x3, :lo12:__noinit_start
    mrs     x4, ctr_el0
    ubfx    x4, x4, #16, #4               // DminLine: log2(words)
    mov     x5, #4
    lsl     x5, x5, x4                    // line size in bytes
    sub     x6, x5, #1
    bic     x2, x2, x6
0:  cmp     x2, x3
    b.hs    9f
    dc      ivac, x2
    add     x2, x2, x5
    b       0b
9:  dsb     sy

    // Apply R_AARCH64_RELATIVE relocations: *(base + offset) = base + addend.
    adrp    x21, __kernel_start
    add     x21, x21, :lo12:__kernel_start
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
1:  cmp     x2, x3
    b.hs    2f
    ldp     x4, x5, [x2], #16             // r_offset, r_info
    ldr     x6, [x2], #8                  // r_addend
    cmp     w5, #R_AARCH64_RELATIVE
    b.ne    park                          // the linker produced something we cannot apply
    add     x6, x6, x21
    str     x6, [x4, x21]
    b       1b

2:  adrp    x2, __bss_start
    add     x2, x2, :lo12:__bss_start
    adrp    x3, __bss_end
    add     x3, x3, :lo12:__bss_end
3:  cmp     x2, x3
    b.hs    4f
    stp     xzr, xzr, [x2], #16
    b       3b

4:  adrp    x2, __boot_stack_top
    add     x2, x2, :lo12:__boot_stack_top
    mov     sp, x2
    mov     x29, xzr
    mov     x30, xzr
    adrp    x2, exception_vectors
    add     x2, x2, :lo12:exception_vectors
    msr     vbar_el1, x2
    isb

    mov     x0, x19                       // device tree
    mov     x1, x21                       // where the image was loaded
    bl      arch_early_mmu                // MMU on; x0 = high-half address - load address
    mov     x22, x0

    // The relocated pointers now say load address + addend; make them high-half addresses.
    // The image is identity mapped (TTBR0), so these writes go where they did before.
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
5:  cmp     x2, x3
    b.hs    6f
    ldr     x4, [x2], #24                 // r_offset (type already checked above)
    ldr     x6, [x4, x21]
    add     x6, x6, x22
    str     x6, [x4, x21]
    b       5b

6:  adr     x2, 7f
    add     x2, x2, x22
    br      x2                            // to the same code in the high half
7:  add     sp, sp, x22
    adrp    x2, exception_vectors
    add     x2, x2, :lo12:exception_vectors
    msr     vbar_el1, x2
    isb
    mov     x0, x19                       // device tree (physical)
    mov     x1, x21                       // where the image was loaded (physical)
    mov     x2, x20                       // entry exception level
    mov     x3, x23                       // counter at the first instruction
    bl      arch_boot_entry
park:
    wfe
    b       park

// The boot core's stack, in BSS (zeroed above before it is used).
.section .bss.boot_stack, "aw", %nobits
.balign 16
.global __boot_stack_bottom
__boot_stack_bottom:
    .space  64 * 1024
.global __boot_stack_top
__boot_stack_top:
