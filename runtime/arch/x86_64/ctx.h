/*
 * Saved state of a suspended x86-64 context (System V ABI).
 *
 * Only what the ABI says a callee must preserve is kept: rbx, rbp, r12-r15,
 * the stack pointer, the MXCSR control bits and the x87 control word.  Every
 * other register is caller-saved, so a call to unb__ctx_switch() has already
 * given it up.
 *
 *   offset  field    holds
 *        0  rsp      stack pointer to resume with
 *        8  rip      address to jump to on resume
 *       16  rbx ... r15 (six callee-saved general registers)
 *       64  mxcsr    SSE control/status register
 *       68  fpucw    x87 FPU control word
 *
 * switch.S uses the offsets below; the static asserts in ctx.c keep the
 * struct and the offsets in step.
 */
#ifndef UNB_ARCH_X86_64_CTX_H
#define UNB_ARCH_X86_64_CTX_H

#define UNB_CTX_RSP 0
#define UNB_CTX_RIP 8
#define UNB_CTX_RBX 16
#define UNB_CTX_RBP 24
#define UNB_CTX_R12 32
#define UNB_CTX_R13 40
#define UNB_CTX_R14 48
#define UNB_CTX_R15 56
#define UNB_CTX_MXCSR 64
#define UNB_CTX_FPUCW 68

#ifndef __ASSEMBLER__
#include <stdint.h>

struct unb__ctx {
    void *rsp;
    void *rip;
    uint64_t rbx, rbp, r12, r13, r14, r15;
    uint32_t mxcsr;
    uint16_t fpucw;
};
#endif

#endif
