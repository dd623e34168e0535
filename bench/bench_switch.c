/*
 * bench_switch: raw cost of one unb__ctx_switch, the assembly under every
 * coroutine switch, without the scheduler.
 *
 * usage: bench_switch [ITERATIONS]   (default 10000000)
 *
 * Measured exactly as bench/baseline/boost_switch.cc measures
 * jump_fcontext, so the two numbers compare like for like: the main context
 * and one coroutine (64 KiB mmap'd stack) ping-pong ITERATIONS times; every
 * iteration is two switches (main -> coroutine, coroutine -> main), and each
 * counts as one switch.  Every run starts a fresh context on the same stack
 * and enters it once untimed.  Best of 5 runs is reported as
 *   unb_switch <ns> ns/switch
 * on stdout.  Errors go to stderr with a nonzero exit status.
 *
 * Both switches save and restore the same state (six callee-saved
 * registers, stack pointer, MXCSR and the x87 control word), and both are
 * plain calls into an assembly function, so the loop bodies are the same
 * shape.  Built from runtime/ctx.c and switch.S directly (see Makefile).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "ctx.h"

#define STACK_SIZE (64 * 1024)
#define RUNS 5

static struct unb__ctx main_ctx __attribute__((aligned(64)));
static struct unb__ctx coro_ctx __attribute__((aligned(64)));

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Coroutine body: bounce straight back to main, forever.  The context is
 * abandoned after each run (it must never return). */
static void bounce(struct unb__ctx *from, void *arg)
{
    (void)from;
    (void)arg;
    for (;;)
        unb__ctx_switch(&coro_ctx, &main_ctx);
}

int main(int argc, char **argv)
{
    unsigned long long iters = 10000000ULL;
    if (argc > 2) {
        fprintf(stderr, "usage: %s [ITERATIONS]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        char *end;
        errno = 0;
        iters = strtoull(argv[1], &end, 10);
        if (errno || *end || end == argv[1] || iters == 0) {
            fprintf(stderr, "bench_switch: bad iteration count '%s'\n", argv[1]);
            return 2;
        }
    }

    void *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        perror("bench_switch: mmap");
        return 1;
    }
    void *stack_top = (char *)stack + STACK_SIZE;

    double best = 0.0;
    for (int run = 0; run < RUNS; run++) {
        unb__ctx_make(&coro_ctx, stack_top, bounce, NULL);
        unb__ctx_switch(&main_ctx, &coro_ctx); /* enters bounce; untimed */

        uint64_t t0 = now_ns();
        for (unsigned long long i = 0; i < iters; i++)
            unb__ctx_switch(&main_ctx, &coro_ctx);
        uint64_t t1 = now_ns();

        double ns = (double)(t1 - t0) / (2.0 * (double)iters);
        if (run == 0 || ns < best)
            best = ns;
    }

    munmap(stack, STACK_SIZE);
    printf("unb_switch %.2f ns/switch\n", best);
    return 0;
}
