/* Creation of new contexts; the switch itself is in arch/<arch>/switch.S. */
#include "ctx.h"

#include <stdint.h>

_Static_assert(offsetof(struct unb__ctx, rsp) == UNB_CTX_RSP, "ctx layout");
_Static_assert(offsetof(struct unb__ctx, rip) == UNB_CTX_RIP, "ctx layout");
_Static_assert(offsetof(struct unb__ctx, rbx) == UNB_CTX_RBX, "ctx layout");
_Static_assert(offsetof(struct unb__ctx, rbp) == UNB_CTX_RBP, "ctx layout");
_Static_assert(offsetof(struct unb__ctx, r12) == UNB_CTX_R12, "ctx layout");
_Static_assert(offsetof(struct unb__ctx, r13) == UNB_CTX_R13, "ctx layout");
_Static_assert(offsetof(struct unb__ctx, r14) == UNB_CTX_R14, "ctx layout");
_Static_assert(offsetof(struct unb__ctx, r15) == UNB_CTX_R15, "ctx layout");
_Static_assert(offsetof(struct unb__ctx, mxcsr) == UNB_CTX_MXCSR, "ctx layout");
_Static_assert(offsetof(struct unb__ctx, fpucw) == UNB_CTX_FPUCW, "ctx layout");

void unb__ctx_trampoline(void);

void unb__ctx_make(struct unb__ctx *ctx, void *stack_top,
                   void (*entry)(struct unb__ctx *from, void *arg), void *arg)
{
    /*
     * The trampoline is entered by a jump with rsp 16-byte aligned, so its
     * `call` leaves the entry with rsp+8 aligned, as the ABI requires.
     */
    uintptr_t sp = (uintptr_t)stack_top & ~(uintptr_t)15;

    *ctx = (struct unb__ctx){
        .rsp = (void *)sp,
        .rip = (void *)unb__ctx_trampoline,
        .r12 = (uint64_t)(uintptr_t)arg,
        .r13 = (uint64_t)(uintptr_t)entry,
    };
    __asm__ volatile("stmxcsr %0" : "=m"(ctx->mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(ctx->fpucw));
}
