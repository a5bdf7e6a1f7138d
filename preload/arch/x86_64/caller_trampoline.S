/* dltrace_call_with_return_address(fn, gadget, a0, a1, a2) -> fn(a0, a1, a2)
 *
 * Calls fn so that its return address is `gadget`, a `ret` byte inside the original caller's
 * object: glibc's dl* functions identify their caller from that address. fn returns onto the
 * gadget, whose `ret` pops our continuation. The frame is %rbp-based so that the CFA stays
 * correct while the fake return addresses are on the stack.
 *
 * Stack at fn's entry (must be 8 mod 16, as after a call):
 *     rsp+0   gadget        <- fn's return address (written over the second call's)
 *     rsp+8   continuation  <- pushed by the first call, popped by the gadget's ret
 *     rsp+16  padding (alignment)
 *     rsp+24  saved %rbp    <- %rbp points here
 *     rsp+32  our return address
 * Deliberately no .note.gnu.property: the fake return address is incompatible with SHSTK.
 */
#if defined(__x86_64__)
        .text
        .globl  dltrace_call_with_return_address
        .hidden dltrace_call_with_return_address
        .type   dltrace_call_with_return_address, @function
        .p2align 4
dltrace_call_with_return_address:
        .cfi_startproc
        pushq   %rbp
        .cfi_def_cfa_offset 16
        .cfi_offset %rbp, -16
        movq    %rsp, %rbp
        .cfi_def_cfa_register %rbp
        movq    %rdi, %rax              /* fn */
        movq    %rsi, %r11              /* gadget */
        movq    %rdx, %rdi              /* a0 */
        movq    %rcx, %rsi              /* a1 */
        movq    %r8, %rdx               /* a2 */
        subq    $8, %rsp                /* rsp is 0 mod 16 here; fn must see 8 mod 16 */
        /* Two calls push the continuation and a slot for the gadget, so that the CPU's stack of
         * return predictions holds one entry per return to come: fn's return (onto the gadget)
         * is the one mispredicted; the gadget's return to .Lcontinue, ours and our callers' are
         * predicted. (Pushing both addresses and jumping left every later return mispredicted.) */
        call    .Lpush_gadget
.Lcontinue:
        leave
        .cfi_def_cfa %rsp, 8
        .cfi_restore %rbp
        ret
        .cfi_def_cfa %rbp, 16
        .cfi_offset %rbp, -16
.Lpush_gadget:
        call    .Lenter
        int3                            /* never run: a call to the very next instruction is one */
.Lenter:                                /* that CPUs may leave out of their return predictions */
        movq    %r11, (%rsp)            /* the return address fn sees: the gadget */
        jmp     *%rax
        .cfi_endproc
        .size   dltrace_call_with_return_address, .-dltrace_call_with_return_address
#endif
        .section .note.GNU-stack,"",@progbits
