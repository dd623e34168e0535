/*
 * cond: pthread condition variables as an ordinary program uses them.  Run
 * natively and under LD_PRELOAD=libunblock.so by tests/test_preload.c,
 * which wants the same stdout and exit status from both.
 *
 *   - a thread pool: a bounded work queue under a mutex with two condition
 *     variables (static initialisers), 8 workers, 20,000 jobs submitted by
 *     main, results summed and compared with the closed form; a lost
 *     wake-up hangs, which the watchdog turns into a failure;
 *   - pthread_cond_broadcast wakes all of 50 waiters;
 *   - a ping-pong of 10,000 round trips on two condition variables, each
 *     wait bounded;
 *   - pthread_cond_timedwait returns ETIMEDOUT no earlier than the deadline
 *     on the realtime clock by default and on CLOCK_MONOTONIC when the
 *     attribute says so, pthread_cond_clockwait on either clock, and the
 *     mutex is held again on return (an error-checking mutex unlocks with
 *     0); EINVAL for a bad clock or tv_nsec, ETIMEDOUT for a past deadline;
 *   - a signal before the deadline ends the wait with 0;
 *   - a signal or broadcast with no waiter is not remembered.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


/* ---- a thread pool ------------------------------------------------------ */

#define POOL_WORKERS 8
#define POOL_JOBS 20000
#define QCAP 64

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static long queue[QCAP];
static int qhead, qlen, qclosed;
static long pool_sum, pool_done;

static void *pool_worker(void *arg)
{
    long sum = 0, done = 0;
    for (;;) {
        pthread_mutex_lock(&qlock);
        while (qlen == 0 && !qclosed)
            pthread_cond_wait(&not_empty, &qlock);
        if (qlen == 0) {
            pthread_mutex_unlock(&qlock);
            break;
        }
        long job = queue[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&qlock);

        sum += job * job;
        done++;
        if (job % 1000 == 0)
            usleep(100);
    }
    pthread_mutex_lock(&qlock);
    pool_sum += sum;
    pool_done += done;
    pthread_mutex_unlock(&qlock);
    return NULL;
}

static void test_pool(void)
{
    phase = "thread pool";
    pthread_t t[POOL_WORKERS];
    for (int i = 0; i < POOL_WORKERS; i++)
        t[i] = spawn(pool_worker, NULL);
    for (long j = 1; j <= POOL_JOBS; j++) {
        pthread_mutex_lock(&qlock);
        while (qlen == QCAP)
            pthread_cond_wait(&not_full, &qlock);
        queue[(qhead + qlen) % QCAP] = j;
        qlen++;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&qlock);
    }
    pthread_mutex_lock(&qlock);
    qclosed = 1;
    pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&qlock);
    for (int i = 0; i < POOL_WORKERS; i++)
        join(t[i]);
    long n = POOL_JOBS;
    long want = n * (n + 1) * (2 * n + 1) / 6;
    if (!check(pool_done == POOL_JOBS, "pool: %d workers ran all %d jobs", POOL_WORKERS,
               POOL_JOBS))
        detail("ran %ld", pool_done);
    if (!check(pool_sum == want, "pool: sum of squares is %ld", want))
        detail("got %ld", pool_sum);
}

/* ---- broadcast wakes every waiter --------------------------------------- */

#define WAITERS 50

static pthread_mutex_t bc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bc_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t bc_main = PTHREAD_COND_INITIALIZER;
static int bc_ready, bc_go, bc_woken;

static void *bc_waiter(void *arg)
{
    pthread_mutex_lock(&bc_lock);
    bc_ready++;
    pthread_cond_signal(&bc_main);
    while (!bc_go)
        pthread_cond_wait(&bc_cond, &bc_lock);
    bc_woken++;
    pthread_cond_signal(&bc_main);
    pthread_mutex_unlock(&bc_lock);
    return NULL;
}

/* Waits on bc_main until *count reaches want; gives up at the deadline. */
static int bc_wait_count(int *count, int want, long ms)
{
    struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), ms);
    while (*count < want)
        if (pthread_cond_timedwait(&bc_main, &bc_lock, &dl) == ETIMEDOUT)
            break;
    return *count;
}

static void test_broadcast(void)
{
    phase = "broadcast";
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        t[i] = spawn(bc_waiter, NULL);
    pthread_mutex_lock(&bc_lock);
    int ready = bc_wait_count(&bc_ready, WAITERS, slow_ms(5000));
    /* Each waiter counted itself and waits with the lock released
     * atomically: with the lock held here, all of them are waiting. */
    if (!check(ready == WAITERS, "broadcast: all %d waiters are waiting", WAITERS)) {
        detail("%d ready", ready);
        exit(1);
    }
    bc_go = 1;
    pthread_cond_broadcast(&bc_cond);
    int woken = bc_wait_count(&bc_woken, WAITERS, slow_ms(5000));
    pthread_mutex_unlock(&bc_lock);
    if (!check(woken == WAITERS, "broadcast: one broadcast wakes all %d waiters",
               WAITERS)) {
        detail("%d woke within %ld ms", woken, slow_ms(5000));
        exit(1);
    }
    for (int i = 0; i < WAITERS; i++)
        join(t[i]);
}

/* ---- ping-pong ---------------------------------------------------------- */

#define ROUNDS 10000

static pthread_mutex_t pp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_cond[2] = {PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};
static int pp_turn, pp_abort;
static long pp_moves[2];

static void *pp_player(void *arg)
{
    int me = (int)(long)arg;
    pthread_mutex_lock(&pp_lock);
    for (int i = 0; i < ROUNDS && !pp_abort; i++) {
        while (pp_turn != me && !pp_abort) {
            struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), slow_ms(5000));
            if (pthread_cond_timedwait(&pp_cond[me], &pp_lock, &dl) == ETIMEDOUT &&
                pp_turn != me) {
                pp_abort = 1; /* a lost wake-up */
                pthread_cond_signal(&pp_cond[!me]);
            }
        }
        if (pp_abort)
            break;
        pp_moves[me]++;
        pp_turn = !me;
        pthread_cond_signal(&pp_cond[!me]);
    }
    pthread_mutex_unlock(&pp_lock);
    return NULL;
}

static void test_pingpong(void)
{
    phase = "ping-pong";
    pthread_t a = spawn(pp_player, (void *)0L);
    pthread_t b = spawn(pp_player, (void *)1L);
    join(a);
    join(b);
    if (!check(!pp_abort && pp_moves[0] == ROUNDS && pp_moves[1] == ROUNDS,
               "ping-pong: %d round trips on two condition variables, no lost wake-up",
               ROUNDS))
        detail("moves %ld and %ld, aborted %d", pp_moves[0], pp_moves[1], pp_abort);
}

/* ---- timed waits -------------------------------------------------------- */

/* How one timed wait is made: timedwait on the cond's clock, or clockwait. */
struct timed_case {
    const char *what;
    pthread_cond_t *cond;
    clockid_t clock;
    int clockwait;
};

static void timed_wait_times_out(pthread_mutex_t *m, const struct timed_case *tc,
                                 long ms)
{
    pthread_mutex_lock(m);
    struct timespec t0 = now_on(tc->clock);
    struct timespec dl = ts_add_ms(t0, ms);
    int rc = tc->clockwait ? pthread_cond_clockwait(tc->cond, m, tc->clock, &dl)
                           : pthread_cond_timedwait(tc->cond, m, &dl);
    struct timespec t1 = now_on(tc->clock);
    int urc = pthread_mutex_unlock(m);
    if (!check(rc == ETIMEDOUT, "%s: returns ETIMEDOUT", tc->what))
        detail("got %s", ename(rc));
    if (!check(ts_reached(t1, dl), "%s: returns no earlier than the deadline",
               tc->what))
        detail("returned after %.3f ms of %ld", ts_minus_ms(t1, t0), ms);
    if (!check(urc == 0, "%s: the mutex is held again on return", tc->what))
        detail("unlock returned %s", ename(urc));
}

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sig_cond = PTHREAD_COND_INITIALIZER;
static int sig_flag;

static void *signaller(void *arg)
{
    usleep(20000);
    pthread_mutex_lock(&sig_lock);
    sig_flag = 1;
    pthread_cond_signal(&sig_cond);
    pthread_mutex_unlock(&sig_lock);
    return NULL;
}

static void test_timed(void)
{
    phase = "timed waits";
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_t m;
    pthread_mutex_init(&m, &ma);
    pthread_mutexattr_destroy(&ma);

    pthread_cond_t c_default;
    pthread_cond_init(&c_default, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    check(rc == 0, "condattr_setclock(CLOCK_MONOTONIC) returns 0");
    clockid_t got_clock = -1;
    pthread_condattr_getclock(&ca, &got_clock);
    check(got_clock == CLOCK_MONOTONIC, "condattr_getclock gives CLOCK_MONOTONIC");
    pthread_cond_t c_mono;
    pthread_cond_init(&c_mono, &ca);
    pthread_condattr_destroy(&ca);

    const struct timed_case cases[] = {
        {"timedwait, default clock (realtime)", &c_default, CLOCK_REALTIME, 0},
        {"timedwait, condattr CLOCK_MONOTONIC", &c_mono, CLOCK_MONOTONIC, 0},
        {"clockwait CLOCK_MONOTONIC", &c_default, CLOCK_MONOTONIC, 1},
        {"clockwait CLOCK_REALTIME", &c_default, CLOCK_REALTIME, 1},
        {"clockwait CLOCK_REALTIME on a monotonic cond", &c_mono, CLOCK_REALTIME, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        timed_wait_times_out(&m, &cases[i], i < 2 ? 100 : 50);

    pthread_mutex_lock(&m);
    struct timespec past = {1, 0};
    rc = pthread_cond_timedwait(&c_default, &m, &past);
    if (!check(rc == ETIMEDOUT,
               "timedwait with a deadline in the past returns ETIMEDOUT"))
        detail("got %s", ename(rc));
    struct timespec bad = {0, 1000000000L};
    rc = pthread_cond_timedwait(&c_default, &m, &bad);
    if (!check(rc == EINVAL, "timedwait with tv_nsec = 1e9 returns EINVAL"))
        detail("got %s", ename(rc));
    struct timespec dl = ts_add_ms(now_on(CLOCK_MONOTONIC), 100);
    rc = pthread_cond_clockwait(&c_default, &m, CLOCK_PROCESS_CPUTIME_ID, &dl);
    if (!check(rc == EINVAL, "clockwait on CLOCK_PROCESS_CPUTIME_ID returns EINVAL"))
        detail("got %s", ename(rc));
    rc = pthread_mutex_unlock(&m);
    if (!check(rc == 0, "the mutex is still held after those errors"))
        detail("unlock returned %s", ename(rc));

    /* A signal before the deadline ends the wait with 0. */
    pthread_mutex_lock(&sig_lock);
    pthread_t t = spawn(signaller, NULL);
    rc = 0;
    dl = ts_add_ms(now_on(CLOCK_REALTIME), 10000);
    while (!sig_flag && rc == 0)
        rc = pthread_cond_timedwait(&sig_cond, &sig_lock, &dl);
    pthread_mutex_unlock(&sig_lock);
    join(t);
    if (!check(rc == 0 && sig_flag,
               "timedwait returns 0 when signalled before the deadline"))
        detail("got %s, flag %d", ename(rc), sig_flag);

    /* A signal or broadcast with nobody waiting is lost. */
    pthread_cond_signal(&c_default);
    pthread_cond_broadcast(&c_mono);
    pthread_mutex_lock(&m);
    dl = ts_add_ms(now_on(CLOCK_REALTIME), 50);
    int rc1 = pthread_cond_timedwait(&c_default, &m, &dl);
    dl = ts_add_ms(now_on(CLOCK_MONOTONIC), 50);
    int rc2 = pthread_cond_timedwait(&c_mono, &m, &dl);
    pthread_mutex_unlock(&m);
    if (!check(rc1 == ETIMEDOUT, "a signal with no waiter is not remembered"))
        detail("timedwait after it returned %s", ename(rc1));
    if (!check(rc2 == ETIMEDOUT, "a broadcast with no waiter is not remembered"))
        detail("timedwait after it returned %s", ename(rc2));

    check(pthread_cond_destroy(&c_default) == 0 && pthread_cond_destroy(&c_mono) == 0,
          "destroy of conds nobody waits on returns 0");
    pthread_mutex_destroy(&m);
}

int main(void)
{
    watchdog(10);
    test_timed();
    test_broadcast();
    test_pingpong();
    test_pool();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
