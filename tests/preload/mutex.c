/*
 * mutex: pthread mutexes as an ordinary program uses them.  Run natively
 * and under LD_PRELOAD=libunblock.so by tests/test_preload.c, which wants
 * the same stdout and exit status from both.
 *
 *   - 64 threads x 20,000 increments of a counter under a statically
 *     initialised mutex; some critical sections sleep or yield while
 *     holding it, between reading the counter and writing it back, so a
 *     mutex that lets a second holder in loses increments;
 *   - recursive (also PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP) and
 *     error-checking mutexes: ownership belongs to the thread, not to
 *     whatever OS thread runs it: contended across sleeps, they neither
 *     let two threads in nor report EDEADLK to a thread that does not own
 *     them;
 *   - the error codes glibc gives: EDEADLK, EPERM, EBUSY, ETIMEDOUT,
 *     EINVAL, including the cases where the deadline is not checked;
 *   - timedlock and clocklock wait at least until the deadline, and
 *     succeed when the holder lets go before it;
 *   - a lock handed back and forth between two threads;
 *   - a spinlock counter (no sleeping while holding it).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


/* ---- many threads, one counter, sleeping while holding the lock --------- */

#define NTHREADS 64
#define NINCR 20000

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static int inside, overlaps;

static void *incrementer(void *arg)
{
    long id = (long)arg;
    for (long i = 0; i < NINCR; i++) {
        pthread_mutex_lock(&counter_lock);
        if (inside++)
            overlaps++;
        long v = counter;
        /* A park between the read and the write-back: a mutex that lets a
         * second holder in here loses that holder's increments. */
        if ((i + id) % 1000 == 0)
            usleep(50);
        else if ((i + id) % 1000 == 500)
            sched_yield();
        counter = v + 1;
        inside--;
        pthread_mutex_unlock(&counter_lock);
    }
    return NULL;
}

static void test_counter(void)
{
    phase = "counter";
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        t[i] = spawn(incrementer, (void *)i);
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
    if (!check(counter == (long)NTHREADS * NINCR,
               "counter: %d threads x %d increments under a static mutex give %ld",
               NTHREADS, NINCR, (long)NTHREADS * NINCR))
        detail("counter is %ld", counter);
    if (!check(overlaps == 0, "counter: never two holders at once"))
        detail("%d overlaps", overlaps);
}

/* ---- helpers: one operation on a mutex from another thread -------------- */

enum op { OP_TRYLOCK, OP_UNLOCK };

struct other {
    pthread_mutex_t *m;
    enum op op;
    int rc;
};

static void *other_fn(void *arg)
{
    struct other *o = arg;
    if (o->op == OP_TRYLOCK) {
        o->rc = pthread_mutex_trylock(o->m);
        if (o->rc == 0)
            pthread_mutex_unlock(o->m);
    } else {
        o->rc = pthread_mutex_unlock(o->m);
    }
    return NULL;
}

/* What `op` on m returns when another thread calls it. */
static int from_other_thread(pthread_mutex_t *m, enum op op)
{
    struct other o = {m, op, -1};
    join(spawn(other_fn, &o));
    return o.rc;
}

/* ---- normal mutexes ----------------------------------------------------- */

static void test_normal(void)
{
    phase = "normal";
    pthread_mutex_t m;
    int rc = pthread_mutex_init(&m, NULL);
    check(rc == 0, "normal: init returns 0");
    rc = pthread_mutex_trylock(&m);
    check(rc == 0, "normal: trylock of a free mutex returns 0");
    rc = pthread_mutex_trylock(&m);
    if (!check(rc == EBUSY, "normal: trylock by the holder returns EBUSY"))
        detail("got %s", ename(rc));
    rc = from_other_thread(&m, OP_TRYLOCK);
    if (!check(rc == EBUSY, "normal: trylock from another thread returns EBUSY"))
        detail("got %s", ename(rc));
    rc = pthread_mutex_destroy(&m);
    if (!check(rc == EBUSY, "normal: destroy of a locked mutex returns EBUSY"))
        detail("got %s", ename(rc));
    rc = pthread_mutex_unlock(&m);
    check(rc == 0, "normal: unlock returns 0");
    rc = from_other_thread(&m, OP_TRYLOCK);
    if (!check(rc == 0, "normal: trylock from another thread after unlock returns 0"))
        detail("got %s", ename(rc));
    rc = pthread_mutex_destroy(&m);
    check(rc == 0, "normal: destroy of a free mutex returns 0");
}

/* ---- recursive mutexes -------------------------------------------------- */

static pthread_mutex_t rec_static = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static void recursive_checks(pthread_mutex_t *m, const char *what)
{
    int rc[3];
    for (int i = 0; i < 3; i++)
        rc[i] = pthread_mutex_lock(m);
    check(rc[0] == 0 && rc[1] == 0 && rc[2] == 0,
          "%s: locking three times by the owner returns 0 each time", what);
    int r = pthread_mutex_trylock(m);
    if (!check(r == 0, "%s: trylock by the owner returns 0", what))
        detail("got %s", ename(r));
    r = from_other_thread(m, OP_TRYLOCK);
    if (!check(r == EBUSY, "%s: trylock from another thread returns EBUSY", what))
        detail("got %s", ename(r));
    r = from_other_thread(m, OP_UNLOCK);
    if (!check(r == EPERM, "%s: unlock from another thread returns EPERM", what))
        detail("got %s", ename(r));
    int bad = 0;
    for (int i = 0; i < 3; i++)
        if (pthread_mutex_unlock(m) != 0)
            bad++;
    r = from_other_thread(m, OP_TRYLOCK);
    if (!check(r == EBUSY, "%s: still held after 3 of 4 unlocks", what))
        detail("got %s", ename(r));
    if (pthread_mutex_unlock(m) != 0)
        bad++;
    check(bad == 0, "%s: the four unlocks return 0", what);
    r = pthread_mutex_unlock(m);
    if (!check(r == EPERM, "%s: a fifth unlock returns EPERM", what))
        detail("got %s", ename(r));
    r = from_other_thread(m, OP_TRYLOCK);
    if (!check(r == 0, "%s: free after the last unlock", what))
        detail("got %s", ename(r));
}

/* Contended across sleeps: the owner is the thread, so a second thread
 * that happens to run on the same OS thread must wait, not re-enter. */
#define REC_THREADS 8
#define REC_ITERS 200

static long rec_counter;

static void *rec_worker(void *arg)
{
    pthread_mutex_t *m = arg;
    for (int i = 0; i < REC_ITERS; i++) {
        pthread_mutex_lock(m);
        pthread_mutex_lock(m);
        long v = rec_counter;
        if (i % 10 == 0)
            usleep(100);
        else
            sched_yield();
        rec_counter = v + 1;
        pthread_mutex_unlock(m);
        pthread_mutex_unlock(m);
    }
    return NULL;
}

static void test_recursive(void)
{
    phase = "recursive";
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_t m;
    pthread_mutex_init(&m, &a);
    pthread_mutexattr_destroy(&a);
    recursive_checks(&m, "recursive");
    recursive_checks(&rec_static, "recursive static initializer");

    pthread_t t[REC_THREADS];
    for (int i = 0; i < REC_THREADS; i++)
        t[i] = spawn(rec_worker, &rec_static);
    for (int i = 0; i < REC_THREADS; i++)
        join(t[i]);
    if (!check(rec_counter == REC_THREADS * REC_ITERS,
               "recursive: %d threads sleeping while holding it lose no increments",
               REC_THREADS))
        detail("counter %ld, expected %d", rec_counter, REC_THREADS * REC_ITERS);
    pthread_mutex_destroy(&m);
}

/* ---- error-checking mutexes --------------------------------------------- */

#define ERR_THREADS 8
#define ERR_ITERS 200

static long err_counter;
static int err_bad_lock, err_bad_unlock;
static pthread_mutex_t err_stats = PTHREAD_MUTEX_INITIALIZER;

static void *err_worker(void *arg)
{
    pthread_mutex_t *m = arg;
    int bad_lock = 0, bad_unlock = 0;
    for (int i = 0; i < ERR_ITERS; i++) {
        if (pthread_mutex_lock(m) != 0) {
            bad_lock++;
            continue;
        }
        long v = err_counter;
        if (i % 10 == 0)
            usleep(100);
        else
            sched_yield();
        err_counter = v + 1;
        if (pthread_mutex_unlock(m) != 0)
            bad_unlock++;
    }
    pthread_mutex_lock(&err_stats);
    err_bad_lock += bad_lock;
    err_bad_unlock += bad_unlock;
    pthread_mutex_unlock(&err_stats);
    return NULL;
}

static pthread_mutex_t err_static = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;

static void errorcheck_checks(pthread_mutex_t *m, const char *what)
{
    int rc = pthread_mutex_unlock(m);
    if (!check(rc == EPERM, "%s: unlock of an unlocked mutex returns EPERM", what))
        detail("got %s", ename(rc));
    rc = pthread_mutex_lock(m);
    check(rc == 0, "%s: lock returns 0", what);
    rc = pthread_mutex_lock(m);
    if (!check(rc == EDEADLK, "%s: relock by the owner returns EDEADLK", what))
        detail("got %s", ename(rc));
    rc = pthread_mutex_trylock(m);
    if (!check(rc == EBUSY, "%s: trylock by the owner returns EBUSY", what))
        detail("got %s", ename(rc));
    struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), 10000);
    rc = pthread_mutex_timedlock(m, &dl);
    if (!check(rc == EDEADLK, "%s: timedlock by the owner returns EDEADLK at once",
               what))
        detail("got %s", ename(rc));
    rc = from_other_thread(m, OP_UNLOCK);
    if (!check(rc == EPERM, "%s: unlock by a thread that does not own it returns EPERM",
               what))
        detail("got %s", ename(rc));
    rc = from_other_thread(m, OP_TRYLOCK);
    if (!check(rc == EBUSY, "%s: still held by its owner after that", what))
        detail("got %s", ename(rc));
    rc = pthread_mutex_unlock(m);
    check(rc == 0, "%s: unlock by the owner returns 0", what);
    rc = pthread_mutex_unlock(m);
    if (!check(rc == EPERM, "%s: a second unlock returns EPERM", what))
        detail("got %s", ename(rc));
}

static void test_errorcheck(void)
{
    phase = "errorcheck";
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_t m;
    pthread_mutex_init(&m, &a);
    pthread_mutexattr_destroy(&a);
    errorcheck_checks(&m, "errorcheck");
    errorcheck_checks(&err_static, "errorcheck static initializer");

    pthread_t t[ERR_THREADS];
    for (int i = 0; i < ERR_THREADS; i++)
        t[i] = spawn(err_worker, &m);
    for (int i = 0; i < ERR_THREADS; i++)
        join(t[i]);
    if (!check(err_bad_lock == 0 && err_bad_unlock == 0,
               "errorcheck: contended across sleeps, lock and unlock always return 0"))
        detail("%d failed locks, %d failed unlocks", err_bad_lock, err_bad_unlock);
    if (!check(err_counter == ERR_THREADS * ERR_ITERS,
               "errorcheck: %d threads sleeping while holding it lose no increments",
               ERR_THREADS))
        detail("counter %ld, expected %d", err_counter, ERR_THREADS * ERR_ITERS);
    pthread_mutex_destroy(&m);
}

/* ---- timed locking ------------------------------------------------------ */

struct holder {
    pthread_mutex_t *m;
    struct event held, release;
    long hold_after_release_us; /* keeps holding this long after `release` */
};

static void *holder_fn(void *arg)
{
    struct holder *h = arg;
    pthread_mutex_lock(h->m);
    event_set(&h->held);
    event_wait(&h->release);
    if (h->hold_after_release_us)
        usleep((useconds_t)h->hold_after_release_us);
    pthread_mutex_unlock(h->m);
    return NULL;
}

/* timedlock-like call with the deadline `ms` from now on clk; checks it
 * times out and returns no earlier than the deadline. */
static void expect_timeout(pthread_mutex_t *m, clockid_t clk, int use_clocklock,
                           long ms, const char *what)
{
    struct timespec t0 = now_on(clk);
    struct timespec dl = ts_add_ms(t0, ms);
    int rc = use_clocklock ? pthread_mutex_clocklock(m, clk, &dl)
                           : pthread_mutex_timedlock(m, &dl);
    struct timespec t1 = now_on(clk);
    if (!check(rc == ETIMEDOUT, "%s: returns ETIMEDOUT while another thread holds it",
               what))
        detail("got %s", ename(rc));
    if (!check(ts_reached(t1, dl), "%s: returns no earlier than the deadline", what))
        detail("returned after %.3f ms, deadline %ld ms", ts_minus_ms(t1, t0), ms);
    if (rc == 0)
        pthread_mutex_unlock(m);
}

static void test_timed(void)
{
    phase = "timed";
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    struct holder h = {&m, EVENT_INIT, EVENT_INIT, 20000};
    pthread_t t = spawn(holder_fn, &h);
    event_wait(&h.held);

    int rc = pthread_mutex_trylock(&m);
    if (!check(rc == EBUSY, "trylock of a mutex another thread holds returns EBUSY"))
        detail("got %s", ename(rc));
    expect_timeout(&m, CLOCK_REALTIME, 0, 100, "timedlock (realtime)");
    expect_timeout(&m, CLOCK_MONOTONIC, 1, 100, "clocklock CLOCK_MONOTONIC");
    expect_timeout(&m, CLOCK_REALTIME, 1, 50, "clocklock CLOCK_REALTIME");

    struct timespec past = {1, 0};
    rc = pthread_mutex_timedlock(&m, &past);
    if (!check(rc == ETIMEDOUT,
               "timedlock with a deadline in the past returns ETIMEDOUT"))
        detail("got %s", ename(rc));
    struct timespec bad = {0, 1000000000L};
    rc = pthread_mutex_timedlock(&m, &bad);
    if (!check(rc == EINVAL,
               "timedlock with tv_nsec = 1e9 on a held mutex returns EINVAL"))
        detail("got %s", ename(rc));
    struct timespec dl = ts_add_ms(now_on(CLOCK_MONOTONIC), 100);
    rc = pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &dl);
    if (!check(rc == EINVAL, "clocklock on CLOCK_PROCESS_CPUTIME_ID returns EINVAL"))
        detail("got %s", ename(rc));

    /* The holder lets go 20 ms after `release`: a long deadline succeeds. */
    struct timespec t0 = now_on(CLOCK_MONOTONIC);
    event_set(&h.release);
    dl = ts_add_ms(t0, 10000);
    rc = pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &dl);
    if (!check(rc == 0,
               "clocklock succeeds when the holder unlocks before the deadline"))
        detail("got %s after %.3f ms", ename(rc),
               ts_minus_ms(now_on(CLOCK_MONOTONIC), t0));
    if (rc == 0)
        pthread_mutex_unlock(&m);
    join(t);

    /* On a free mutex glibc does not look at the deadline. */
    rc = pthread_mutex_timedlock(&m, &bad);
    if (!check(rc == 0,
               "timedlock with tv_nsec = 1e9 on a free mutex locks it (returns 0)"))
        detail("got %s", ename(rc));
    if (rc == 0)
        pthread_mutex_unlock(&m);
    dl = ts_add_ms(now_on(CLOCK_MONOTONIC), 100);
    rc = pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &dl);
    if (!check(rc == EINVAL, "clocklock on CLOCK_PROCESS_CPUTIME_ID of a free mutex "
                             "returns EINVAL"))
        detail("got %s", ename(rc));
    if (rc == 0)
        pthread_mutex_unlock(&m);
}

/* ---- a lock handed between two threads ---------------------------------- */

#define HAND_ITERS 2000

static pthread_mutex_t hand_lock = PTHREAD_MUTEX_INITIALIZER;
static int hand_last = -1, hand_inside, hand_overlaps;
static long hand_total, hand_changes;

static void *hander(void *arg)
{
    int me = (int)(long)arg;
    for (int i = 0; i < HAND_ITERS; i++) {
        pthread_mutex_lock(&hand_lock);
        if (hand_inside++)
            hand_overlaps++;
        if (hand_last != me)
            hand_changes++;
        hand_last = me;
        long v = hand_total;
        if (i % 4 == 0)
            usleep(10);
        hand_total = v + 1;
        hand_inside--;
        pthread_mutex_unlock(&hand_lock);
        /* Give the other thread its chance at the lock. */
        if (i % 4 == 2)
            usleep(10);
    }
    return NULL;
}

static void test_handoff(void)
{
    phase = "handoff";
    pthread_t a = spawn(hander, (void *)0L);
    pthread_t b = spawn(hander, (void *)1L);
    join(a);
    join(b);
    if (!check(hand_total == 2 * HAND_ITERS && hand_overlaps == 0,
               "handoff: two threads take the lock %d times in all, one at a time",
               2 * HAND_ITERS))
        detail("total %ld, overlaps %d", hand_total, hand_overlaps);
    if (!check(hand_changes >= 2, "handoff: the lock passes between the two threads"))
        detail("%ld changes of holder", hand_changes);
}

/* ---- spinlock ----------------------------------------------------------- */

#define SPIN_THREADS 8
#define SPIN_ITERS 20000

static pthread_spinlock_t spin;
static long spin_counter;

static void *spinner(void *arg)
{
    for (int i = 0; i < SPIN_ITERS; i++) {
        pthread_spin_lock(&spin);
        spin_counter++;
        pthread_spin_unlock(&spin);
    }
    return NULL;
}

static void test_spin(void)
{
    phase = "spinlock";
    pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
    pthread_t t[SPIN_THREADS];
    for (int i = 0; i < SPIN_THREADS; i++)
        t[i] = spawn(spinner, NULL);
    for (int i = 0; i < SPIN_THREADS; i++)
        join(t[i]);
    if (!check(spin_counter == SPIN_THREADS * SPIN_ITERS,
               "spinlock: %d threads x %d increments", SPIN_THREADS, SPIN_ITERS))
        detail("counter %ld", spin_counter);
    int rc = pthread_spin_trylock(&spin);
    int rc2 = pthread_spin_trylock(&spin);
    if (!check(rc == 0 && rc2 == EBUSY, "spinlock: trylock 0, then EBUSY"))
        detail("got %s, %s", ename(rc), ename(rc2));
    pthread_spin_unlock(&spin);
    pthread_spin_destroy(&spin);
}

int main(void)
{
    watchdog(10);
    test_normal();
    test_recursive();
    test_errorcheck();
    test_timed();
    test_handoff();
    test_spin();
    test_counter();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
