/*
 * Context switch for x86-64, System V ABI.
 *
 *   void unb__ctx_switch(struct unb__ctx *from, const struct unb__ctx *to);
 *
 * Saves the callee-saved state of the caller into *from and resumes *to.
 * The caller's return address is saved as from->rip and the caller resumes
 * by a jump to it with the stack pointer it would have had after `ret`, so
 * the CPU's return-stack buffer is never fed a return it did not see a call
 * for.  On resume, rax and rdi hold `from` of the switch that resumed us.
 *
 *   void unb__ctx_trampoline(void);
 *
 * First code of a new context (see unb__ctx_make in ctx.c): calls
 * r13(rdi = the context we came from, rsi = r12).  The entry never returns.
 */
#include "ctx.h"

    .text
    .globl  unb__ctx_switch
    .hidden unb__ctx_switch
    .type   unb__ctx_switch, @function
    .p2align 4
unb__ctx_switch:
    .cfi_startproc
    movq    (%rsp), %rdx                /* our return address ...             */
    leaq    8(%rsp), %rcx               /* ... and the rsp after a `ret`      */
    movq    %rdx, UNB_CTX_RIP(%rdi)
    movq    %rcx, UNB_CTX_RSP(%rdi)
    movq    %rbx, UNB_CTX_RBX(%rdi)
    movq    %rbp, UNB_CTX_RBP(%rdi)
    movq    %r12, UNB_CTX_R12(%rdi)
    movq    %r13, UNB_CTX_R13(%rdi)
    movq    %r14, UNB_CTX_R14(%rdi)
    movq    %r15, UNB_CTX_R15(%rdi)
    stmxcsr UNB_CTX_MXCSR(%rdi)         /* rounding mode, exception masks     */
    fnstcw  UNB_CTX_FPUCW(%rdi)         /* x87 precision and rounding control */

    movq    UNB_CTX_RBX(%rsi), %rbx
    movq    UNB_CTX_RBP(%rsi), %rbp
    movq    UNB_CTX_R12(%rsi), %r12
    movq    UNB_CTX_R13(%rsi), %r13
    movq    UNB_CTX_R14(%rsi), %r14
    movq    UNB_CTX_R15(%rsi), %r15
    movl    UNB_CTX_MXCSR(%rsi), %eax   /* loading MXCSR and the x87 word */
    cmpl    UNB_CTX_MXCSR(%rdi), %eax   /* stalls the pipeline: skip the   */
    je      1f                          /* loads when they would not change */
    ldmxcsr UNB_CTX_MXCSR(%rsi)         /* anything, which is nearly always */
1:  movzwl  UNB_CTX_FPUCW(%rsi), %eax
    cmpw    UNB_CTX_FPUCW(%rdi), %ax
    je      2f
    fldcw   UNB_CTX_FPUCW(%rsi)
2:
    movq    UNB_CTX_RSP(%rsi), %rsp     /* from here on we are on `to`'s stack */
    movq    %rdi, %rax                  /* tell the resumed side who switched  */
    jmpq    *UNB_CTX_RIP(%rsi)          /* resume: a jump, not a ret           */
    .cfi_endproc
    .size   unb__ctx_switch, .-unb__ctx_switch

    .globl  unb__ctx_trampoline
    .hidden unb__ctx_trampoline
    .type   unb__ctx_trampoline, @function
    .p2align 4
unb__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip                  /* outermost frame: backtraces stop here */
    movq    %r12, %rsi                  /* the entry's argument                */
    callq   *%r13                       /* rdi still holds the `from` context  */
    ud2                                 /* the entry must never return         */
    .cfi_endproc
    .size   unb__ctx_trampoline, .-unb__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
