/*
 * rwlock: pthread rwlocks as an ordinary program uses them.  Run natively
 * and under LD_PRELOAD=libunblock.so by tests/test_preload.c, which wants
 * the same stdout and exit status from both.
 *
 *   - 4 readers hold the read lock at the same time: each, holding it,
 *     waits (bounded) until all 4 have it;
 *   - writers exclude readers and other writers: 4 writers and 8 readers,
 *     some sleeping or yielding inside, on a static PTHREAD_RWLOCK_INITIALIZER
 *     lock and on a writer-preferring one; a writer updates two variables
 *     that readers find equal, and nobody sees the other kind inside;
 *   - tryrdlock/trywrlock EBUSY; timedrdlock/timedwrlock/clock* ETIMEDOUT
 *     no earlier than the deadline, and 0 when the holder lets go first;
 *     the same thread's wrlock twice, or rdlock under its own wrlock,
 *     EDEADLK; a read lock taken twice needs two unlocks; EINVAL for a bad
 *     clock or tv_nsec.
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


/* ---- readers share ------------------------------------------------------ */

#define READERS 4

static pthread_rwlock_t share_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t rv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rv_cond = PTHREAD_COND_INITIALIZER;
static int rv_arrived, rv_met, rv_rdlock_errors;
static struct timespec rv_deadline; /* one deadline for all: a failure costs 3 s */

static void *sharing_reader(void *arg)
{
    if (pthread_rwlock_rdlock(&share_lock) != 0) {
        pthread_mutex_lock(&rv_lock);
        rv_rdlock_errors++;
        pthread_mutex_unlock(&rv_lock);
        return NULL;
    }
    pthread_mutex_lock(&rv_lock);
    rv_arrived++;
    pthread_cond_broadcast(&rv_cond);
    while (rv_arrived < READERS)
        if (pthread_cond_timedwait(&rv_cond, &rv_lock, &rv_deadline) == ETIMEDOUT)
            break;
    if (rv_arrived >= READERS)
        rv_met++;
    pthread_mutex_unlock(&rv_lock);
    pthread_rwlock_unlock(&share_lock);
    return NULL;
}

static void test_readers_share(void)
{
    phase = "readers share";
    rv_deadline = ts_add_ms(now_on(CLOCK_REALTIME), 3000);
    pthread_t t[READERS];
    for (int i = 0; i < READERS; i++)
        t[i] = spawn(sharing_reader, NULL);
    for (int i = 0; i < READERS; i++)
        join(t[i]);
    if (!check(rv_met == READERS && rv_rdlock_errors == 0,
               "%d readers hold the read lock at the same time", READERS))
        detail("%d of %d saw all the others inside, %d rdlock errors", rv_met, READERS,
               rv_rdlock_errors);
}

/* ---- writers exclude ---------------------------------------------------- */

#define WRITERS 4
#define WRITER_ITERS 500
#define XREADERS 8
#define READER_ITERS 2000

struct excl {
    pthread_rwlock_t *lock;
    atomic_int readers_in, writers_in;
    atomic_int violations, torn, errors;
    volatile long x, y; /* a writer increments both; readers see them equal */
};

static void *excl_writer(void *arg)
{
    struct excl *e = arg;
    for (int i = 0; i < WRITER_ITERS; i++) {
        if (pthread_rwlock_wrlock(e->lock) != 0) {
            e->errors++;
            continue;
        }
        if (atomic_fetch_add(&e->writers_in, 1) != 0 ||
            atomic_load(&e->readers_in) != 0)
            e->violations++;
        e->x = e->x + 1;
        if (i % 50 == 0)
            usleep(100);
        else if (i % 5 == 0)
            sched_yield();
        e->y = e->y + 1;
        atomic_fetch_sub(&e->writers_in, 1);
        pthread_rwlock_unlock(e->lock);
    }
    return NULL;
}

static void *excl_reader(void *arg)
{
    struct excl *e = arg;
    for (int i = 0; i < READER_ITERS; i++) {
        if (pthread_rwlock_rdlock(e->lock) != 0) {
            e->errors++;
            continue;
        }
        atomic_fetch_add(&e->readers_in, 1);
        if (atomic_load(&e->writers_in) != 0)
            e->violations++;
        long a = e->x;
        if (i % 200 == 0)
            usleep(100);
        else if (i % 20 == 0)
            sched_yield();
        long b = e->y;
        if (a != b)
            e->torn++;
        atomic_fetch_sub(&e->readers_in, 1);
        pthread_rwlock_unlock(e->lock);
    }
    return NULL;
}

static void exclusion(pthread_rwlock_t *lock, const char *what)
{
    static struct excl e;
    memset(&e, 0, sizeof e);
    e.lock = lock;
    pthread_t w[WRITERS], r[XREADERS];
    for (int i = 0; i < XREADERS; i++)
        r[i] = spawn(excl_reader, &e);
    for (int i = 0; i < WRITERS; i++)
        w[i] = spawn(excl_writer, &e);
    for (int i = 0; i < WRITERS; i++)
        join(w[i]);
    for (int i = 0; i < XREADERS; i++)
        join(r[i]);
    if (!check(e.errors == 0 && e.violations == 0,
               "%s: a writer is alone inside (%d writers, %d readers)", what, WRITERS,
               XREADERS))
        detail("%d violations, %d lock errors", (int)e.violations, (int)e.errors);
    if (!check(e.torn == 0, "%s: readers never see a half-done write", what))
        detail("%d torn reads", (int)e.torn);
    if (!check(e.x == WRITERS * WRITER_ITERS && e.y == WRITERS * WRITER_ITERS,
               "%s: no write lost: x = y = %d", what, WRITERS * WRITER_ITERS))
        detail("x = %ld, y = %ld", e.x, e.y);
}

static pthread_rwlock_t excl_static = PTHREAD_RWLOCK_INITIALIZER;

static void test_exclusion(void)
{
    phase = "exclusion";
    exclusion(&excl_static, "static rwlock");
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_t wp;
    pthread_rwlock_init(&wp, &a);
    pthread_rwlockattr_destroy(&a);
    exclusion(&wp, "writer-preferring rwlock");
    pthread_rwlock_destroy(&wp);
}

/* ---- errors and timeouts ------------------------------------------------ */

struct holder {
    pthread_rwlock_t *lock;
    int write;
    struct event held, release;
};

static void *holder_fn(void *arg)
{
    struct holder *h = arg;
    if (h->write)
        pthread_rwlock_wrlock(h->lock);
    else
        pthread_rwlock_rdlock(h->lock);
    event_set(&h->held);
    event_wait(&h->release);
    usleep(20000);
    pthread_rwlock_unlock(h->lock);
    return NULL;
}

enum kind { TIMEDRD, TIMEDWR, CLOCKRD, CLOCKWR };
static const char *const kind_name[] = {"timedrdlock", "timedwrlock", "clockrdlock",
                                        "clockwrlock"};

static int timed(pthread_rwlock_t *l, enum kind k, clockid_t clk,
                 const struct timespec *dl)
{
    switch (k) {
    case TIMEDRD: return pthread_rwlock_timedrdlock(l, dl);
    case TIMEDWR: return pthread_rwlock_timedwrlock(l, dl);
    case CLOCKRD: return pthread_rwlock_clockrdlock(l, clk, dl);
    default: return pthread_rwlock_clockwrlock(l, clk, dl);
    }
}

static void expect_timeout(pthread_rwlock_t *l, enum kind k, clockid_t clk, long ms,
                           const char *held)
{
    if (k == TIMEDRD || k == TIMEDWR)
        clk = CLOCK_REALTIME;
    struct timespec t0 = now_on(clk);
    struct timespec dl = ts_add_ms(t0, ms);
    int rc = timed(l, k, clk, &dl);
    struct timespec t1 = now_on(clk);
    const char *cn = clk == CLOCK_MONOTONIC ? " CLOCK_MONOTONIC" : "";
    if (!check(rc == ETIMEDOUT, "%s%s under another thread's %s returns ETIMEDOUT",
               kind_name[k], cn, held))
        detail("got %s", ename(rc));
    if (!check(ts_reached(t1, dl), "%s%s returns no earlier than the deadline",
               kind_name[k], cn))
        detail("returned after %.3f ms of %ld", ts_minus_ms(t1, t0), ms);
    if (rc == 0)
        pthread_rwlock_unlock(l);
}

static void test_errors(void)
{
    phase = "errors and timeouts";
    pthread_rwlock_t l;
    pthread_rwlock_init(&l, NULL);
    struct holder h = {&l, 1, EVENT_INIT, EVENT_INIT};

    /* Another thread holds the write lock. */
    pthread_t t = spawn(holder_fn, &h);
    event_wait(&h.held);
    int rc = pthread_rwlock_tryrdlock(&l);
    if (!check(rc == EBUSY,
               "tryrdlock under another thread's write lock returns EBUSY"))
        detail("got %s", ename(rc));
    rc = pthread_rwlock_trywrlock(&l);
    if (!check(rc == EBUSY,
               "trywrlock under another thread's write lock returns EBUSY"))
        detail("got %s", ename(rc));
    expect_timeout(&l, TIMEDRD, CLOCK_REALTIME, 100, "write lock");
    expect_timeout(&l, CLOCKRD, CLOCK_MONOTONIC, 50, "write lock");
    expect_timeout(&l, TIMEDWR, CLOCK_REALTIME, 50, "write lock");
    struct timespec bad = {0, 1000000000L};
    rc = pthread_rwlock_timedrdlock(&l, &bad);
    if (!check(rc == EINVAL, "timedrdlock with tv_nsec = 1e9 returns EINVAL"))
        detail("got %s", ename(rc));
    event_set(&h.release);
    struct timespec dl = ts_add_ms(now_on(CLOCK_MONOTONIC), 10000);
    rc = pthread_rwlock_clockrdlock(&l, CLOCK_MONOTONIC, &dl);
    if (!check(rc == 0,
               "clockrdlock returns 0 when the writer unlocks before the deadline"))
        detail("got %s", ename(rc));
    if (rc == 0)
        pthread_rwlock_unlock(&l);
    join(t);

    /* Another thread holds a read lock. */
    h.write = 0;
    event_reset(&h.held);
    event_reset(&h.release);
    t = spawn(holder_fn, &h);
    event_wait(&h.held);
    rc = pthread_rwlock_tryrdlock(&l);
    if (!check(rc == 0, "tryrdlock under another thread's read lock returns 0"))
        detail("got %s", ename(rc));
    if (rc == 0)
        pthread_rwlock_unlock(&l);
    rc = pthread_rwlock_trywrlock(&l);
    if (!check(rc == EBUSY, "trywrlock under another thread's read lock returns EBUSY"))
        detail("got %s", ename(rc));
    expect_timeout(&l, TIMEDWR, CLOCK_REALTIME, 100, "read lock");
    expect_timeout(&l, CLOCKWR, CLOCK_MONOTONIC, 50, "read lock");
    event_set(&h.release);
    dl = ts_add_ms(now_on(CLOCK_REALTIME), 10000);
    rc = pthread_rwlock_timedwrlock(&l, &dl);
    if (!check(rc == 0,
               "timedwrlock returns 0 when the reader unlocks before the deadline"))
        detail("got %s", ename(rc));
    if (rc == 0)
        pthread_rwlock_unlock(&l);
    join(t);

    /* The same thread. */
    rc = pthread_rwlock_wrlock(&l);
    check(rc == 0, "wrlock returns 0");
    rc = pthread_rwlock_wrlock(&l);
    if (!check(rc == EDEADLK,
               "wrlock by the thread holding the write lock returns EDEADLK"))
        detail("got %s", ename(rc));
    rc = pthread_rwlock_rdlock(&l);
    if (!check(rc == EDEADLK,
               "rdlock by the thread holding the write lock returns EDEADLK"))
        detail("got %s", ename(rc));
    dl = ts_add_ms(now_on(CLOCK_REALTIME), 10000);
    rc = pthread_rwlock_timedwrlock(&l, &dl);
    if (!check(rc == EDEADLK,
               "timedwrlock by the writer itself returns EDEADLK at once"))
        detail("got %s", ename(rc));
    rc = pthread_rwlock_tryrdlock(&l);
    if (!check(rc == EBUSY, "tryrdlock by the writer itself returns EBUSY"))
        detail("got %s", ename(rc));
    rc = pthread_rwlock_unlock(&l);
    check(rc == 0, "unlock of the write lock returns 0");

    rc = pthread_rwlock_rdlock(&l);
    int rc2 = pthread_rwlock_rdlock(&l);
    check(rc == 0 && rc2 == 0, "a thread takes the read lock twice");
    pthread_rwlock_unlock(&l);
    rc = pthread_rwlock_trywrlock(&l);
    if (!check(rc == EBUSY, "after one unlock the read lock is still held"))
        detail("trywrlock got %s", ename(rc));
    if (rc == 0)
        pthread_rwlock_unlock(&l);
    pthread_rwlock_unlock(&l);
    rc = pthread_rwlock_trywrlock(&l);
    if (!check(rc == 0, "after the second unlock the lock is free"))
        detail("trywrlock got %s", ename(rc));
    if (rc == 0)
        pthread_rwlock_unlock(&l);

    /* glibc checks the deadline even when the lock is free. */
    rc = pthread_rwlock_timedwrlock(&l, &bad);
    if (!check(rc == EINVAL,
               "timedwrlock with tv_nsec = 1e9 on a free lock returns EINVAL"))
        detail("got %s", ename(rc));
    if (rc == 0)
        pthread_rwlock_unlock(&l);
    dl = ts_add_ms(now_on(CLOCK_MONOTONIC), 100);
    rc = pthread_rwlock_clockrdlock(&l, CLOCK_PROCESS_CPUTIME_ID, &dl);
    if (!check(rc == EINVAL, "clockrdlock on CLOCK_PROCESS_CPUTIME_ID returns EINVAL"))
        detail("got %s", ename(rc));
    if (rc == 0)
        pthread_rwlock_unlock(&l);
    check(pthread_rwlock_destroy(&l) == 0, "destroy of a free rwlock returns 0");
}

int main(void)
{
    watchdog(10);
    test_errors();
    test_readers_share();
    test_exclusion();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
