/*
 * Machine contexts: a saved register set that a coroutine or a worker's
 * scheduler resumes from.  The layout is per architecture (arch/<arch>/ctx.h);
 * this header is the interface the rest of the runtime uses.
 */
#ifndef UNB_CTX_H
#define UNB_CTX_H

#include <stddef.h>

#if defined(__x86_64__)
#include "arch/x86_64/ctx.h"
#else
#error "libunblock: no context switch for this architecture yet"
#endif

/*
 * Saves the caller's callee-saved state in *from and resumes *to.  Returns
 * (in the context that is resumed later) the `from` of the switch that
 * resumed it.  from and to must differ.
 */
struct unb__ctx *unb__ctx_switch(struct unb__ctx *from, const struct unb__ctx *to);

/*
 * Prepares *ctx so that switching to it calls entry(from, arg) on the stack
 * whose highest address is stack_top, with the caller's MXCSR and x87
 * control word (as a new thread inherits its creator's floating-point
 * environment).  entry must never return.
 */
void unb__ctx_make(struct unb__ctx *ctx, void *stack_top,
                   void (*entry)(struct unb__ctx *from, void *arg), void *arg);

#endif
