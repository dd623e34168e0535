/*
 * yield_spin: two threads take turns through a shared variable, each
 * spinning with sched_yield() until its turn comes, 500 times each; a
 * third counts in a pthread_yield() loop meanwhile, and main spins with
 * sched_yield() until it has counted.  Natively the kernel
 * runs the other thread when one yields.  Under LD_PRELOAD=libunblock.so
 * with one worker the three share one OS thread, and only a yield that
 * lets the worker's other coroutines run gets the turns through (the
 * kernel's sched_yield would return to the spinner at once).
 *
 * An ordinary program: run natively and under the preload by
 * tests/test_preload.c, which compares the output.  Exit status 0 when
 * every check passes, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>

#include "check.h"

#define TURNS 500

static _Atomic int turn;
static _Atomic int done;
static long spins[2];

static void *player(void *arg)
{
    int me = (int)(long)arg;
    for (int i = 0; i < TURNS; i++) {
        while (atomic_load(&turn) != me)
            spins[me]++, sched_yield();
        atomic_store(&turn, 1 - me);
    }
    return NULL;
}

/* pthread_yield is deprecated: the header maps it to sched_yield, and
 * the symbol is only for programs built before glibc 2.34, which call it
 * as this one does. */
extern int old_pthread_yield(void);
__asm__(".symver old_pthread_yield, pthread_yield@GLIBC_2.2.5");

static _Atomic long yields;

static void *bystander(void *arg)
{
    (void)arg;
    while (!atomic_load(&done))
        atomic_fetch_add(&yields, 1), old_pthread_yield();
    return NULL;
}

int main(void)
{
    watchdog(20); /* natively, on a loaded machine, each turn may wait a time slice */
    phase = "turns";
    pthread_t b = spawn(bystander, NULL);
    while (atomic_load(&yields) == 0) /* main spins too, until it runs */
        sched_yield();
    pthread_t p0 = spawn(player, (void *)0L), p1 = spawn(player, (void *)1L);
    join(p0);
    join(p1);
    long before = atomic_load(&yields);
    while (atomic_load(&yields) < before + 10)
        sched_yield();
    atomic_store(&done, 1);
    join(b);
    check(atomic_load(&turn) == 0, "%d turns each went through", TURNS);
    check(atomic_load(&yields) >= before + 10, "the bystander ran beside them");
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
