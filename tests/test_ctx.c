/*
 * The raw context switch (runtime/ctx.h, arch/x86_64/switch.S): what the
 * System V ABI says a callee preserves survives a switch away and back,
 * new contexts start with the creator's floating-point control state and
 * an ABI-aligned stack, the switch reports who switched, and a long
 * ping-pong loses no step.
 *
 * Built with runtime/ctx.c and switch.S directly (see the Makefile).
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "tap.h"

#include "ctx.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#endif
#endif

#define STACK_SIZE (64 * 1024)

/* ---- stacks --------------------------------------------------------------- */

/* A 64 KiB mmap'd stack with a PROT_NONE guard page at the bottom; returns
 * its top (one past the highest usable byte). */
static char *stack_new(void)
{
    char *m = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        BAIL("mmap of a %d-byte stack failed", STACK_SIZE);
    if (mprotect(m, 4096, PROT_NONE) != 0)
        BAIL("mprotect of a guard page failed");
#ifdef HAVE_VALGRIND
    VALGRIND_STACK_REGISTER(m + 4096, m + STACK_SIZE);
#endif
    return m + STACK_SIZE;
}

/* ---- register probe ------------------------------------------------------- */

/*
 * probe_switch(from, to, out, vals), in assembly below: saves the caller's
 * callee-saved registers and FP control state on its own stack, loads every
 * callee-saved register, MXCSR and the x87 control word from *vals, records
 * rsp, calls unb__ctx_switch(from, to), and when resumed stores what it
 * finds in those registers (and rsp, and the switch's return value) in
 * *out before restoring the caller's state.  Both sides of a switch use
 * it, each with its own distinctive values, so each side clobbers every
 * register the other relies on.
 */
struct regs {
    uint64_t gp[6];      /* rbx, rbp, r12, r13, r14, r15 */
    uint64_t rsp_before; /* rsp at the call to unb__ctx_switch */
    uint64_t rsp_after;  /* rsp after it returned */
    uint64_t ret;        /* what unb__ctx_switch returned */
    uint32_t mxcsr;
    uint16_t fpucw;
    uint16_t pad;
};
_Static_assert(offsetof(struct regs, rsp_before) == 48, "probe layout");
_Static_assert(offsetof(struct regs, rsp_after) == 56, "probe layout");
_Static_assert(offsetof(struct regs, ret) == 64, "probe layout");
_Static_assert(offsetof(struct regs, mxcsr) == 72, "probe layout");
_Static_assert(offsetof(struct regs, fpucw) == 76, "probe layout");

static const char *const gp_name[6] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};

__attribute__((visibility("hidden"))) void probe_switch(struct unb__ctx *from,
                                                        const struct unb__ctx *to,
                                                        struct regs *out,
                                                        const struct regs *vals);

__asm__("    .text\n"
        "    .globl  probe_switch\n"
        "    .hidden probe_switch\n"
        "    .type   probe_switch, @function\n"
        "    .p2align 4\n"
        "probe_switch:\n"
        "    pushq   %rbx\n"
        "    pushq   %rbp\n"
        "    pushq   %r12\n"
        "    pushq   %r13\n"
        "    pushq   %r14\n"
        "    pushq   %r15\n"
        "    subq    $24, %rsp\n" /* 16-byte aligned again for the call */
        "    stmxcsr 0(%rsp)\n"   /* the caller's FP control state */
        "    fnstcw  4(%rsp)\n"
        "    movq    %rdx, 8(%rsp)\n" /* out */
        "    movq    0(%rcx), %rbx\n" /* the distinctive values */
        "    movq    8(%rcx), %rbp\n"
        "    movq    16(%rcx), %r12\n"
        "    movq    24(%rcx), %r13\n"
        "    movq    32(%rcx), %r14\n"
        "    movq    40(%rcx), %r15\n"
        "    ldmxcsr 72(%rcx)\n"
        "    fldcw   76(%rcx)\n"
        "    movq    %rsp, 48(%rdx)\n"
        "    call    unb__ctx_switch@PLT\n"
        "    movq    8(%rsp), %rcx\n"
        "    movq    %rbx, 0(%rcx)\n"
        "    movq    %rbp, 8(%rcx)\n"
        "    movq    %r12, 16(%rcx)\n"
        "    movq    %r13, 24(%rcx)\n"
        "    movq    %r14, 32(%rcx)\n"
        "    movq    %r15, 40(%rcx)\n"
        "    movq    %rsp, 56(%rcx)\n"
        "    movq    %rax, 64(%rcx)\n"
        "    stmxcsr 72(%rcx)\n"
        "    fnstcw  76(%rcx)\n"
        "    ldmxcsr 0(%rsp)\n"
        "    fldcw   4(%rsp)\n"
        "    addq    $24, %rsp\n"
        "    popq    %r15\n"
        "    popq    %r14\n"
        "    popq    %r13\n"
        "    popq    %r12\n"
        "    popq    %rbp\n"
        "    popq    %rbx\n"
        "    ret\n"
        "    .size   probe_switch, .-probe_switch\n");

/* MXCSR bits 0-5 are status flags (caller-saved in the ABI); the rest is
 * control. */
#define MXCSR_CONTROL 0xffc0u
#define MXCSR_DEFAULT 0x1f80u /* all exceptions masked, round to nearest */
#define MXCSR_FTZ 0x8000u
#define MXCSR_DAZ 0x0040u
#define MXCSR_RC_DOWN 0x2000u
#define MXCSR_RC_UP 0x4000u
#define MXCSR_RC_ZERO 0x6000u

/* x87 control word: exception masks (0x3f), reserved bit 6, precision
 * control in bits 8-9, rounding control in bits 10-11. */
#define FPUCW_MASKS 0x007fu
#define FPUCW_PC_SINGLE 0x0000u
#define FPUCW_PC_DOUBLE 0x0200u
#define FPUCW_PC_EXTENDED 0x0300u
#define FPUCW_RC_DOWN 0x0400u
#define FPUCW_RC_UP 0x0800u
#define FPUCW_RC_ZERO 0x0c00u

/*
 * The bits compared.  Valgrind models neither FTZ/DAZ nor x87 precision
 * control (it reads them back as it likes), so under valgrind only the
 * rounding and exception-mask bits are compared; they differ between all
 * the values used here too.
 */
static uint32_t mxcsr_cmp = MXCSR_CONTROL;
static uint16_t fpucw_cmp = 0xffffu;

static void pick_compared_bits(void)
{
#ifdef HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND) {
        mxcsr_cmp = MXCSR_CONTROL & ~(MXCSR_FTZ | MXCSR_DAZ);
        fpucw_cmp = (uint16_t)~FPUCW_PC_EXTENDED;
        note("under valgrind: FTZ, DAZ and x87 precision bits are not compared");
    }
#endif
}

static uint32_t get_mxcsr(void)
{
    uint32_t v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

static void set_mxcsr(uint32_t v)
{
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static uint16_t get_fpucw(void)
{
    uint16_t v;
    __asm__ volatile("fnstcw %0" : "=m"(v));
    return v;
}

static void set_fpucw(uint16_t v)
{
    __asm__ volatile("fldcw %0" : : "m"(v));
}

static struct unb__ctx main_ctx;

/* Compares one side's registers after a round trip, one check per item. */
static void check_side(const char *side, const struct regs *got,
                       const struct regs *want, const struct unb__ctx *switcher)
{
    for (int i = 0; i < 6; i++) {
        int pass = got->gp[i] == want->gp[i];
        ok(pass, "switch preserves %s (%s)", gp_name[i], side);
        if (!pass)
            diag("  %s: got 0x%016" PRIx64 ", expected 0x%016" PRIx64, gp_name[i],
                 got->gp[i], want->gp[i]);
    }
    int pass = got->rsp_after == got->rsp_before;
    ok(pass, "switch preserves rsp (%s)", side);
    if (!pass)
        diag("  rsp: got 0x%" PRIx64 ", expected 0x%" PRIx64, got->rsp_after,
             got->rsp_before);
    pass = (got->mxcsr & mxcsr_cmp) == (want->mxcsr & mxcsr_cmp);
    ok(pass, "switch preserves the MXCSR control bits (%s)", side);
    if (!pass)
        diag("  mxcsr: got 0x%04x, expected 0x%04x (bits compared 0x%04x)", got->mxcsr,
             want->mxcsr, mxcsr_cmp);
    pass = (got->fpucw & fpucw_cmp) == (want->fpucw & fpucw_cmp);
    ok(pass, "switch preserves the x87 control word (%s)", side);
    if (!pass)
        diag("  fpucw: got 0x%04x, expected 0x%04x", got->fpucw, want->fpucw);
    pass = got->ret == (uint64_t)(uintptr_t)switcher;
    ok(pass, "switch returns the context that switched back (%s)", side);
    if (!pass)
        diag("  returned %#" PRIx64 ", expected %p", got->ret, (void *)switcher);
}

/* ---- 1. callee-saved state, both directions ------------------------------ */

static struct unb__ctx clob_ctx;
static struct regs clob_out;
static const struct regs clob_vals = {
    .gp = {0xc1c1c1c1c1c10001u, 0xc2c2c2c2c2c20003u, 0xc3c3c3c3c3c30005u,
           0xc4c4c4c4c4c40007u, 0xc5c5c5c5c5c50009u, 0xc6c6c6c6c6c6000bu},
    .mxcsr = MXCSR_DEFAULT | MXCSR_RC_UP | MXCSR_DAZ,
    .fpucw = FPUCW_MASKS | FPUCW_PC_DOUBLE | FPUCW_RC_DOWN,
};

static void clobber_entry(struct unb__ctx *from, void *arg)
{
    (void)from;
    (void)arg;
    /* Clobber everything the main side relies on and switch back; resumed
     * by main's second probe, which clobbers everything we rely on. */
    probe_switch(&clob_ctx, &main_ctx, &clob_out, &clob_vals);
    for (;;)
        unb__ctx_switch(&clob_ctx, &main_ctx);
}

static void test_callee_saved(void)
{
    static const struct regs main_vals = {
        .gp = {0x1b1b000000000001u, 0x2b2b000000000003u, 0x3b3b000000000005u,
               0x4b4b000000000007u, 0x5b5b000000000009u, 0x6b6b00000000000bu},
        .mxcsr = MXCSR_DEFAULT | MXCSR_RC_ZERO | MXCSR_FTZ,
        .fpucw = FPUCW_MASKS | FPUCW_PC_SINGLE | FPUCW_RC_UP,
    };
    static const struct regs main_vals2 = {
        .gp = {0x7d7d00000000000du, 0x8d8d00000000000fu, 0x9d9d000000000011u,
               0xadad000000000013u, 0xbdbd000000000015u, 0xcdcd000000000017u},
        .mxcsr = MXCSR_DEFAULT | MXCSR_RC_DOWN,
        .fpucw = FPUCW_MASKS | FPUCW_PC_EXTENDED | FPUCW_RC_ZERO,
    };
    static struct regs main_out, main_out2;

    unb__ctx_make(&clob_ctx, stack_new(), clobber_entry, NULL);

    /* Round 1: main loads its values, the new context starts, clobbers
     * them all with its own and switches back. */
    probe_switch(&main_ctx, &clob_ctx, &main_out, &main_vals);
    check_side("main side, resumed after another context clobbered all", &main_out,
               &main_vals, &clob_ctx);

    /* Round 2: main loads other values and resumes the suspended context,
     * which finds its own values back. */
    probe_switch(&main_ctx, &clob_ctx, &main_out2, &main_vals2);
    check_side("suspended side, resumed after main clobbered all", &clob_out,
               &clob_vals, &main_ctx);
}

/* ---- 2. a new context inherits the creator's FP control state ------------ */

static struct unb__ctx inh_ctx;
static struct unb__ctx *inh_from;
static uint32_t inh_mxcsr;
static uint16_t inh_fpucw;

static void inherit_entry(struct unb__ctx *from, void *arg)
{
    /* First thing: read what we were started with. */
    inh_mxcsr = get_mxcsr();
    inh_fpucw = get_fpucw();
    inh_from = from;
    *(int *)arg = 1;
    for (;;)
        unb__ctx_switch(&inh_ctx, from);
}

static void test_inherit(void)
{
    uint32_t orig_mxcsr = get_mxcsr();
    uint16_t orig_fpucw = get_fpucw();
    const uint32_t want_mxcsr = MXCSR_DEFAULT | MXCSR_RC_ZERO | MXCSR_FTZ;
    const uint16_t want_fpucw = FPUCW_MASKS | FPUCW_PC_SINGLE | FPUCW_RC_UP;
    int ran = 0;

    /* The creator's state at unb__ctx_make time is what the context gets,
     * even when the creator has changed its own state back since. */
    set_mxcsr(want_mxcsr);
    set_fpucw(want_fpucw);
    unb__ctx_make(&inh_ctx, stack_new(), inherit_entry, &ran);
    set_mxcsr(orig_mxcsr);
    set_fpucw(orig_fpucw);

    struct unb__ctx *back = unb__ctx_switch(&main_ctx, &inh_ctx);
    uint32_t after_mxcsr = get_mxcsr();
    uint16_t after_fpucw = get_fpucw();

    is_int(ran, 1, "the entry of a new context runs with its argument");
    ok(inh_from == &main_ctx, "entry's from is the context that switched to it");
    is_int(inh_mxcsr & mxcsr_cmp, want_mxcsr & mxcsr_cmp,
           "new context starts with the creator's MXCSR (round toward zero, FTZ)");
    is_int(inh_fpucw & fpucw_cmp, want_fpucw & fpucw_cmp,
           "new context starts with the creator's x87 control word "
           "(single precision, round up)");
    ok(back == &inh_ctx, "switch returns the new context that switched back");
    is_int(after_mxcsr & mxcsr_cmp, orig_mxcsr & mxcsr_cmp,
           "switching back restores the switcher's own MXCSR");
    is_int(after_fpucw & fpucw_cmp, orig_fpucw & fpucw_cmp,
           "switching back restores the switcher's own x87 control word");
}

/* ---- 3. stack alignment at entry ------------------------------------------ */

/* rsp at the first instruction of the entry, recorded by align_entry. */
__attribute__((visibility("hidden"))) uint64_t align_entry_rsp;
__attribute__((visibility("hidden"))) void align_entry(struct unb__ctx *from,
                                                       void *arg);
__attribute__((visibility("hidden"))) void align_entry_c(struct unb__ctx *from,
                                                         void *arg);

__asm__("    .text\n"
        "    .globl  align_entry\n"
        "    .hidden align_entry\n"
        "    .type   align_entry, @function\n"
        "    .p2align 4\n"
        "align_entry:\n"
        "    movq    %rsp, align_entry_rsp(%rip)\n"
        "    jmp     align_entry_c\n" /* same rsp: the C entry sees it too */
        "    .size   align_entry, .-align_entry\n");

static struct unb__ctx align_ctx;

/* Something that needs the ABI's alignment: an aligned 16-byte store to
 * the stack (movaps faults on a misaligned one). */
__attribute__((noinline)) static float aligned_vector_store(void)
{
    typedef float v4sf __attribute__((vector_size(16)));
    volatile v4sf v = {1, 2, 3, 4};
    return v[2];
}

void align_entry_c(struct unb__ctx *from, void *arg)
{
    /* Only try it on a well-aligned stack, so that a misaligned one is
     * reported by the checks rather than by a crash. */
    if ((align_entry_rsp + 8) % 16 == 0)
        *(float *)arg = aligned_vector_store();
    for (;;)
        unb__ctx_switch(&align_ctx, from);
}

static void test_alignment(void)
{
    char *top = stack_new();
    static const int offsets[] = {0, 1, 7, 8, 9, 15, 24, 40};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        char *st = top - offsets[i];
        float got = 0;
        align_entry_rsp = 0;
        unb__ctx_make(&align_ctx, st, align_entry, &got);
        unb__ctx_switch(&main_ctx, &align_ctx);
        uint64_t rsp = align_entry_rsp;
        int pass = (rsp + 8) % 16 == 0;
        ok(pass, "entry starts with (rsp+8) %% 16 == 0 for a stack top at -%d",
           offsets[i]);
        if (!pass)
            diag("  rsp at entry 0x%" PRIx64 ", (rsp+8) %% 16 = %" PRIu64, rsp,
                 (rsp + 8) % 16);
        uint64_t t = (uint64_t)(uintptr_t)st;
        pass = rsp < t && t - rsp <= 64;
        ok(pass, "entry's stack is just below the given top (-%d)", offsets[i]);
        if (!pass)
            diag("  rsp 0x%" PRIx64 ", top 0x%" PRIx64, rsp, t);
        is_int((int)got, 3, "aligned vector store works on the new stack (-%d)",
               offsets[i]);
    }
}

/* ---- 4. `from` names the context that switched ----------------------------- */

static struct unb__ctx ring1, ring2;
static struct unb__ctx *ring1_from_entry, *ring2_from_entry;
static struct unb__ctx *ring1_from_resume, *ring2_from_resume;

static void ring1_entry(struct unb__ctx *from, void *arg)
{
    (void)arg;
    ring1_from_entry = from;
    ring1_from_resume = unb__ctx_switch(&ring1, &ring2); /* resumed by ring2 */
    unb__ctx_switch(&ring1, &main_ctx);
    for (;;)
        unb__ctx_switch(&ring1, &main_ctx);
}

static void ring2_entry(struct unb__ctx *from, void *arg)
{
    (void)arg;
    ring2_from_entry = from;
    ring2_from_resume = unb__ctx_switch(&ring2, &main_ctx); /* resumed by main */
    unb__ctx_switch(&ring2, &ring1);
    for (;;)
        unb__ctx_switch(&ring2, &main_ctx);
}

static void test_from(void)
{
    unb__ctx_make(&ring1, stack_new(), ring1_entry, NULL);
    unb__ctx_make(&ring2, stack_new(), ring2_entry, NULL);
    /* main -> ring1 -> ring2 -> main: main was resumed by ring2, not by
     * the ring1 it switched to. */
    struct unb__ctx *r = unb__ctx_switch(&main_ctx, &ring1);
    ok(ring1_from_entry == &main_ctx,
       "first entry's from is main, which switched to it");
    ok(ring2_from_entry == &ring1,
       "second entry's from is the first, which switched to it");
    ok(r == &ring2, "main's switch returns ring2, which resumed it (not ring1)");
    if (r != &ring2)
        diag("  got %p; main %p, ring1 %p, ring2 %p", (void *)r, (void *)&main_ctx,
             (void *)&ring1, (void *)&ring2);
    /* main -> ring2 -> ring1 -> main. */
    r = unb__ctx_switch(&main_ctx, &ring2);
    ok(ring2_from_resume == &main_ctx,
       "a resumed context's switch returns main, which resumed it");
    ok(ring1_from_resume == &ring2, "ring1's switch returns ring2, which resumed it");
    ok(r == &ring1, "main's second switch returns ring1, which resumed it");
}

/* ---- 5. ping-pong ---------------------------------------------------------- */

#define PINGPONG_SWITCHES 1000000u

static struct unb__ctx ping_ctx, pong_ctx;
static uint64_t pp_counter, pp_ping_bad, pp_pong_bad, pp_pong_turns;

static void ping_entry(struct unb__ctx *from, void *arg)
{
    (void)from;
    (void)arg;
    for (uint64_t i = 0; i < PINGPONG_SWITCHES / 2; i++) {
        if (pp_counter != 2 * i)
            pp_ping_bad++;
        pp_counter++;
        unb__ctx_switch(&ping_ctx, &pong_ctx);
    }
    for (;;)
        unb__ctx_switch(&ping_ctx, &main_ctx);
}

static void pong_entry(struct unb__ctx *from, void *arg)
{
    (void)from;
    (void)arg;
    for (uint64_t i = 0;; i++) {
        if (pp_counter != 2 * i + 1)
            pp_pong_bad++;
        pp_counter++;
        pp_pong_turns = i + 1;
        unb__ctx_switch(&pong_ctx, &ping_ctx);
    }
}

static void test_pingpong(void)
{
    unb__ctx_make(&ping_ctx, stack_new(), ping_entry, NULL);
    unb__ctx_make(&pong_ctx, stack_new(), pong_entry, NULL);
    struct unb__ctx *r = unb__ctx_switch(&main_ctx, &ping_ctx);
    is_int(pp_counter, PINGPONG_SWITCHES,
           "ping-pong of 1,000,000 switches counts every one");
    is_int(pp_ping_bad, 0, "ping always sees the count pong left");
    is_int(pp_pong_bad, 0, "pong always sees the count ping left");
    is_int(pp_pong_turns, PINGPONG_SWITCHES / 2, "pong ran exactly half the turns");
    ok(r == &ping_ctx, "after the ping-pong, main is resumed by ping");
}

int main(void)
{
    pick_compared_bits();
    test_callee_saved();
    test_inherit();
    test_alignment();
    test_from();
    test_pingpong();
    return done_testing();
}
