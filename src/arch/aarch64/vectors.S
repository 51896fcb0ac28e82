// The EL1 exception vector table. Each entry saves a full register frame on the current stack and
// calls `handle_exception(frame, kind)` in Rust; if it returns, the frame (possibly changed) is
// restored and the exception returns.

.equ FRAME_SIZE, 36 * 8

.macro VECTOR kind
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0 * 16]
    mov     x0, #\kind
    b       exception_common
.endm

.section .text.vectors, "ax"
.global exception_vectors
.balign 2048
exception_vectors:
    VECTOR 0        // current EL, SP_EL0: synchronous
    VECTOR 1        //                      IRQ
    VECTOR 2        //                      FIQ
    VECTOR 3        //                      SError
    VECTOR 4        // current EL, SP_ELx: synchronous
    VECTOR 5        //                      IRQ
    VECTOR 6        //                      FIQ
    VECTOR 7        //                      SError
    VECTOR 8        // lower EL, AArch64:   synchronous
    VECTOR 9        //                      IRQ
    VECTOR 10       //                      FIQ
    VECTOR 11       //                      SError
    VECTOR 12       // lower EL, AArch32:   synchronous
    VECTOR 13       //                      IRQ
    VECTOR 14       //                      FIQ
    VECTOR 15       //                      SError

.section .text.vectors_common, "ax"
exception_common:
    stp     x2, x3, [sp, #1 * 16]
    stp     x4, x5, [sp, #2 * 16]
    stp     x6, x7, [sp, #3 * 16]
    stp     x8, x9, [sp, #4 * 16]
    stp     x10, x11, [sp, #5 * 16]
    stp     x12, x13, [sp, #6 * 16]
    stp     x14, x15, [sp, #7 * 16]
    stp     x16, x17, [sp, #8 * 16]
    stp     x18, x19, [sp, #9 * 16]
    stp     x20, x21, [sp, #10 * 16]
    stp     x22, x23, [sp, #11 * 16]
    stp     x24, x25, [sp, #12 * 16]
    stp     x26, x27, [sp, #13 * 16]
    stp     x28, x29, [sp, #14 * 16]
    mrs     x1, elr_el1
    stp     x30, x1, [sp, #15 * 16]       // x30, elr
    mrs     x1, spsr_el1
    mrs     x2, esr_el1
    stp     x1, x2, [sp, #16 * 16]        // spsr, esr
    mrs     x1, far_el1
    add     x2, sp, #FRAME_SIZE           // the interrupted stack pointer
    stp     x1, x2, [sp, #17 * 16]        // far, sp

    mov     x1, x0                        // kind
    mov     x0, sp                        // frame
    bl      handle_exception

    ldp     x30, x1, [sp, #15 * 16]
    msr     elr_el1, x1
    ldr     x1, [sp, #16 * 16]
    msr     spsr_el1, x1
    ldp     x2, x3, [sp, #1 * 16]
    ldp     x4, x5, [sp, #2 * 16]
    ldp     x6, x7, [sp, #3 * 16]
    ldp     x8, x9, [sp, #4 * 16]
    ldp     x10, x11, [sp, #5 * 16]
    ldp     x12, x13, [sp, #6 * 16]
    ldp     x14, x15, [sp, #7 * 16]
    ldp     x16, x17, [sp, #8 * 16]
    ldp     x18, x19, [sp, #9 * 16]
    ldp     x20, x21, [sp, #10 * 16]
    ldp     x22, x23, [sp, #11 * 16]
    ldp     x24, x25, [sp, #12 * 16]
    ldp     x26, x27, [sp, #13 * 16]
    ldp     x28, x29, [sp, #14 * 16]
    ldp     x0, x1, [sp, #0 * 16]
    add     sp, sp, #FRAME_SIZE
    eret
