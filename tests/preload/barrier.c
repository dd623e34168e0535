/*
 * barrier: pthread barriers as an ordinary program uses them.  Run natively
 * and under LD_PRELOAD=libunblock.so by tests/test_preload.c, which wants
 * the same stdout and exit status from both.
 *
 *   - 16 threads x 1,000 rounds of one barrier: in every round exactly one
 *     thread gets PTHREAD_BARRIER_SERIAL_THREAD and the others 0, and no
 *     thread leaves round k before all 16 arrived in it (per-round arrival
 *     counts); some threads sleep before arriving;
 *   - a barrier of 1 returns PTHREAD_BARRIER_SERIAL_THREAD every time;
 *     a count of 0 is EINVAL; a barrier destroyed and initialised again
 *     with another count works with the new count.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


#define NTHREADS 16
#define ROUNDS 1000

static pthread_barrier_t bar;
static atomic_int arrived[ROUNDS], serial[ROUNDS];
static atomic_int early, bad_rc;

static void *runner(void *arg)
{
    long id = (long)arg;
    for (int k = 0; k < ROUNDS; k++) {
        if ((k + id) % 97 == 0)
            usleep(200);
        else if ((k + id) % 13 == 0)
            sched_yield();
        atomic_fetch_add(&arrived[k], 1);
        int rc = pthread_barrier_wait(&bar);
        if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
            atomic_fetch_add(&serial[k], 1);
        else if (rc != 0)
            atomic_fetch_add(&bad_rc, 1);
        if (atomic_load(&arrived[k]) != NTHREADS)
            atomic_fetch_add(&early, 1);
    }
    return NULL;
}

static void test_rounds(void)
{
    phase = "rounds";
    int rc = pthread_barrier_init(&bar, NULL, NTHREADS);
    check(rc == 0, "barrier_init(%d) returns 0", NTHREADS);
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        t[i] = spawn(runner, (void *)i);
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
    int rounds_one_serial = 0, all_arrived = 0;
    for (int k = 0; k < ROUNDS; k++) {
        rounds_one_serial += atomic_load(&serial[k]) == 1;
        all_arrived += atomic_load(&arrived[k]) == NTHREADS;
    }
    if (!check(rounds_one_serial == ROUNDS,
               "%d threads x %d rounds: exactly one PTHREAD_BARRIER_SERIAL_THREAD per "
               "round",
               NTHREADS, ROUNDS))
        detail("%d rounds had exactly one", rounds_one_serial);
    if (!check(atomic_load(&bad_rc) == 0, "every other wait returns 0"))
        detail("%d other return values", (int)atomic_load(&bad_rc));
    if (!check(atomic_load(&early) == 0 && all_arrived == ROUNDS,
               "no thread leaves a round before all %d arrived", NTHREADS))
        detail("%d early departures", (int)atomic_load(&early));
    rc = pthread_barrier_destroy(&bar);
    check(rc == 0, "barrier_destroy returns 0");
}

/* ---- small cases -------------------------------------------------------- */

static pthread_barrier_t pair;
static atomic_int pair_serial, pair_zero;

static void *pair_fn(void *arg)
{
    for (int i = 0; i < 100; i++) {
        int rc = pthread_barrier_wait(&pair);
        if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
            atomic_fetch_add(&pair_serial, 1);
        else if (rc == 0)
            atomic_fetch_add(&pair_zero, 1);
    }
    return NULL;
}

static void test_small(void)
{
    phase = "small";
    pthread_barrier_t one;
    int rc = pthread_barrier_init(&one, NULL, 0);
    if (!check(rc == EINVAL, "barrier_init with count 0 returns EINVAL"))
        detail("got %s", ename(rc));
    pthread_barrier_init(&one, NULL, 1);
    int serials = 0;
    for (int i = 0; i < 10; i++)
        serials += pthread_barrier_wait(&one) == PTHREAD_BARRIER_SERIAL_THREAD;
    check(serials == 10,
          "a barrier of 1 returns PTHREAD_BARRIER_SERIAL_THREAD every time");
    pthread_barrier_destroy(&one);

    /* 3 threads, then the same object again for 2. */
    for (int count = 3; count >= 2; count--) {
        atomic_store(&pair_serial, 0);
        atomic_store(&pair_zero, 0);
        pthread_barrier_init(&pair, NULL, (unsigned)count);
        pthread_t t[3];
        for (int i = 0; i < count; i++)
            t[i] = spawn(pair_fn, NULL);
        for (int i = 0; i < count; i++)
            join(t[i]);
        if (!check(atomic_load(&pair_serial) == 100 &&
                       atomic_load(&pair_zero) == 100 * (count - 1),
                   "barrier of %d (re-initialised): 100 rounds, one serial thread each",
                   count))
            detail("%d serial, %d zero", (int)atomic_load(&pair_serial),
                   (int)atomic_load(&pair_zero));
        pthread_barrier_destroy(&pair);
    }
}

int main(void)
{
    watchdog(10);
    test_small();
    test_rounds();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
