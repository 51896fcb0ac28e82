// The EL1 exception vector table. Each entry saves a full register frame on the current stack and
// calls `handle_exception(frame, kind)` in Rust; if it returns, the frame (possibly changed) is
// restored and the exception returns. The frame holds the SIMD/FP registers too: the kernel's
// Rust code uses them (copies, zeroing, vectorised loops), and the interrupted code (the
// application, or kernel code between two vector instructions) must get them back untouched.

.equ GP_SIZE, 36 * 8                      // x0-x30, elr, spsr, esr, far, sp (ExceptionFrame)
.equ FP_OFFSET, GP_SIZE                   // q0-q31, then fpsr and fpcr
.equ FP_SIZE, 32 * 16 + 16
.equ FRAME_SIZE, GP_SIZE + FP_SIZE

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
    stp     q0, q1, [sp, #FP_OFFSET + 0 * 32]
    stp     q2, q3, [sp, #FP_OFFSET + 1 * 32]
    stp     q4, q5, [sp, #FP_OFFSET + 2 * 32]
    stp     q6, q7, [sp, #FP_OFFSET + 3 * 32]
    stp     q8, q9, [sp, #FP_OFFSET + 4 * 32]
    stp     q10, q11, [sp, #FP_OFFSET + 5 * 32]
    stp     q12, q13, [sp, #FP_OFFSET + 6 * 32]
    stp     q14, q15, [sp, #FP_OFFSET + 7 * 32]
    stp     q16, q17, [sp, #FP_OFFSET + 8 * 32]
    stp     q18, q19, [sp, #FP_OFFSET + 9 * 32]
    stp     q20, q21, [sp, #FP_OFFSET + 10 * 32]
    stp     q22, q23, [sp, #FP_OFFSET + 11 * 32]
    stp     q24, q25, [sp, #FP_OFFSET + 12 * 32]
    stp     q26, q27, [sp, #FP_OFFSET + 13 * 32]
    stp     q28, q29, [sp, #FP_OFFSET + 14 * 32]
    stp     q30, q31, [sp, #FP_OFFSET + 15 * 32]
    mrs     x1, fpsr
    mrs     x2, fpcr
    str     x1, [sp, #FP_OFFSET + 32 * 16]
    str     x2, [sp, #FP_OFFSET + 32 * 16 + 8]

    mov     x1, x0                        // kind
    mov     x0, sp                        // frame
    bl      handle_exception

    ldp     q0, q1, [sp, #FP_OFFSET + 0 * 32]
    ldp     q2, q3, [sp, #FP_OFFSET + 1 * 32]
    ldp     q4, q5, [sp, #FP_OFFSET + 2 * 32]
    ldp     q6, q7, [sp, #FP_OFFSET + 3 * 32]
    ldp     q8, q9, [sp, #FP_OFFSET + 4 * 32]
    ldp     q10, q11, [sp, #FP_OFFSET + 5 * 32]
    ldp     q12, q13, [sp, #FP_OFFSET + 6 * 32]
    ldp     q14, q15, [sp, #FP_OFFSET + 7 * 32]
    ldp     q16, q17, [sp, #FP_OFFSET + 8 * 32]
    ldp     q18, q19, [sp, #FP_OFFSET + 9 * 32]
    ldp     q20, q21, [sp, #FP_OFFSET + 10 * 32]
    ldp     q22, q23, [sp, #FP_OFFSET + 11 * 32]
    ldp     q24, q25, [sp, #FP_OFFSET + 12 * 32]
    ldp     q26, q27, [sp, #FP_OFFSET + 13 * 32]
    ldp     q28, q29, [sp, #FP_OFFSET + 14 * 32]
    ldp     q30, q31, [sp, #FP_OFFSET + 15 * 32]
    ldr     x1, [sp, #FP_OFFSET + 32 * 16]
    ldr     x2, [sp, #FP_OFFSET + 32 * 16 + 8]
    msr     fpsr, x1
    msr     fpcr, x2
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
