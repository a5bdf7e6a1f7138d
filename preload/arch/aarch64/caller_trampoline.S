/* dltrace_call_with_return_address(fn, gadget, a0, a1, a2) -> fn(a0, a1, a2)
 *
 * Calls fn with x30 = `gadget`, an epilogue `ldp x29, x30, [sp], #N ; [autiasp ;] ret` inside
 * the original caller's object (return_gadget.cpp): glibc's dl* functions identify their caller
 * from x30. fn returns onto the gadget with sp as it was at fn's entry; the gadget pops x29 and
 * x30 from there and returns to our continuation, which restores our frame from x29.
 *
 * Stack at fn's entry (sp 16-byte aligned; N decoded from the gadget's ldp):
 *     sp+0     our x29        <- the gadget's ldp reloads x29 (our frame) ...
 *     sp+8     continuation   <- ... and x30; signed with sp+N as modifier if the gadget
 *                                authenticates (autiasp/retaa), as autiasp will check it
 *     sp+N     saved x29      <- x29 points here (our frame record)
 *     sp+N+8   our return address
 *
 * fn is entered with `br x16`, which a BTI landing pad (`bti c`, paciasp) accepts as a call.
 * pacia1716 is in the hint space: a NOP on CPUs without pointer authentication.
 */
#if defined(__aarch64__)
        .text
        .globl  dltrace_call_with_return_address
        .hidden dltrace_call_with_return_address
        .type   dltrace_call_with_return_address, %function
        .p2align 4
dltrace_call_with_return_address:
        .cfi_startproc
        hint    #34                     /* bti c */
        stp     x29, x30, [sp, #-16]!
        .cfi_def_cfa_offset 16
        .cfi_offset x29, -16
        .cfi_offset x30, -8
        mov     x29, sp
        .cfi_def_cfa x29, 16
        ldr     w9, [x1]                /* the gadget's ldp x29, x30, [sp], #N */
        ubfx    x10, x9, #15, #7        /* imm7 = N / 8 */
        sub     sp, sp, x10, lsl #3     /* the N bytes the gadget pops */
        adr     x17, .Lcontinue
        ldr     w9, [x1, #4]            /* the instruction after the ldp */
        movz    w11, #0x23bf
        movk    w11, #0xd503, lsl #16   /* autiasp */
        cmp     w9, w11
        movz    w11, #0x0bff
        movk    w11, #0xd65f, lsl #16   /* retaa */
        ccmp    w9, w11, #4, ne         /* Z set if autiasp or retaa */
        b.ne    1f
        mov     x16, x29                /* sp after the gadget's pop: the modifier it checks */
        hint    #8                      /* pacia1716: x17 = PACIA(x17, x16) */
1:
        stp     x29, x17, [sp]
        mov     x16, x0                 /* fn */
        mov     x30, x1                 /* the gadget, as fn's return address */
        mov     x0, x2
        mov     x1, x3
        mov     x2, x4
        br      x16
.Lcontinue:
        mov     sp, x29
        ldp     x29, x30, [sp], #16
        .cfi_def_cfa sp, 0
        .cfi_restore x29
        .cfi_restore x30
        ret
        .cfi_endproc
        .size   dltrace_call_with_return_address, .-dltrace_call_with_return_address

/* Built with -mbranch-protection (BTI and/or PAC), the rest of the library is marked as such; this
 * file then says it complies too (it lands with `bti c`, and .Lcontinue is only reached by `ret`),
 * or the linker would drop the marking for the whole library. */
#if defined(__ARM_FEATURE_BTI_DEFAULT)
#define DLTRACE_FEATURE_BTI 1
#else
#define DLTRACE_FEATURE_BTI 0
#endif
#if defined(__ARM_FEATURE_PAC_DEFAULT)
#define DLTRACE_FEATURE_PAC 2
#else
#define DLTRACE_FEATURE_PAC 0
#endif
#if DLTRACE_FEATURE_BTI || DLTRACE_FEATURE_PAC
        .pushsection .note.gnu.property, "a"
        .p2align 3
        .word   4                       /* name size: "GNU" */
        .word   16                      /* descriptor size */
        .word   5                       /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .word   0xc0000000              /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
        .word   4
        .word   DLTRACE_FEATURE_BTI | DLTRACE_FEATURE_PAC
        .word   0
        .popsection
#endif
#endif
        .section .note.GNU-stack,"",%progbits
