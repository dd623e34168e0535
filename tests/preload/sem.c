/*
 * sem: POSIX unnamed semaphores as an ordinary program uses them, both
 * process-private (pshared 0, the usual kind) and process-shared (pshared
 * 1, used within the process).  Run natively and under
 * LD_PRELOAD=libunblock.so by tests/test_preload.c, which wants the same
 * stdout and exit status from both.
 *
 *   - ping-pong between two threads, 100,000 round trips on two
 *     semaphores (20,000 on the shared kind);
 *   - sem_trywait EAGAIN; sem_timedwait and sem_clockwait ETIMEDOUT no
 *     earlier than the deadline; EINVAL for a bad tv_nsec (glibc checks it
 *     even when the value is positive, and takes nothing) or clock;
 *     sem_getvalue; EOVERFLOW at SEM_VALUE_MAX; EINVAL from sem_init
 *     beyond it;
 *   - a counting semaphore of 3 lets exactly 3 of 20 threads in at once;
 *   - 20 waiters, 20 posts from main: every waiter gets one.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
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


static const char *kind(int pshared)
{
    return pshared ? "process-shared" : "private";
}

/* ---- ping-pong ---------------------------------------------------------- */

#define ROUNDS 100000
#define ROUNDS_SHARED 20000

struct pingpong {
    sem_t a, b;
    long count_a, count_b;
};

static long rounds;

static void *ponger(void *arg)
{
    struct pingpong *p = arg;
    for (long i = 0; i < rounds; i++) {
        sem_wait(&p->a);
        p->count_b++;
        sem_post(&p->b);
    }
    return NULL;
}

static void test_pingpong(int pshared)
{
    phase = "ping-pong";
    static struct pingpong p;
    memset(&p, 0, sizeof p);
    sem_init(&p.a, pshared, 0);
    sem_init(&p.b, pshared, 0);
    rounds = pshared ? ROUNDS_SHARED : ROUNDS;
    /* Natively, both threads on one CPU: a round trip is then two direct
     * switches instead of two cross-CPU wake-ups (0.4 s rather than 1-4 s
     * on two CPUs).  The new thread inherits the mask. */
    cpu_set_t saved, one;
    int pinned = pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) == 0 &&
                 sched_getcpu() >= 0;
    if (pinned) {
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu(), &one);
        pinned = pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
    }
    pthread_t t = spawn(ponger, &p);
    for (long i = 0; i < rounds; i++) {
        p.count_a++;
        sem_post(&p.a);
        sem_wait(&p.b);
    }
    join(t);
    if (pinned)
        pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    if (!check(p.count_a == rounds && p.count_b == rounds,
               "%s: ping-pong of %ld round trips on two semaphores", kind(pshared),
               rounds))
        detail("counts %ld and %ld", p.count_a, p.count_b);
    sem_destroy(&p.a);
    sem_destroy(&p.b);
}

/* ---- the calls and their errors ----------------------------------------- */

static int value_of(sem_t *s)
{
    int v = -1;
    sem_getvalue(s, &v);
    return v;
}

static void test_calls(int pshared)
{
    phase = "calls";
    const char *k = kind(pshared);
    sem_t s;
    int rc = sem_init(&s, pshared, 0);
    check(rc == 0, "%s: sem_init returns 0", k);
    errno = 0;
    rc = sem_trywait(&s);
    int e = errno;
    if (!check(rc == -1 && e == EAGAIN, "%s: sem_trywait at 0 fails with EAGAIN", k))
        detail("got %d, errno %s", rc, ename(e));

    struct timespec t0 = now_on(CLOCK_REALTIME);
    struct timespec dl = ts_add_ms(t0, 100);
    errno = 0;
    rc = sem_timedwait(&s, &dl);
    e = errno;
    struct timespec t1 = now_on(CLOCK_REALTIME);
    if (!check(rc == -1 && e == ETIMEDOUT,
               "%s: sem_timedwait at 0 fails with ETIMEDOUT", k))
        detail("got %d, errno %s", rc, ename(e));
    if (!check(ts_reached(t1, dl),
               "%s: sem_timedwait returns no earlier than the deadline", k))
        detail("after %.3f ms of 100", ts_minus_ms(t1, t0));

    t0 = now_on(CLOCK_MONOTONIC);
    dl = ts_add_ms(t0, 50);
    errno = 0;
    rc = sem_clockwait(&s, CLOCK_MONOTONIC, &dl);
    e = errno;
    t1 = now_on(CLOCK_MONOTONIC);
    if (!check(rc == -1 && e == ETIMEDOUT,
               "%s: sem_clockwait CLOCK_MONOTONIC fails with ETIMEDOUT", k))
        detail("got %d, errno %s", rc, ename(e));
    if (!check(ts_reached(t1, dl),
               "%s: sem_clockwait returns no earlier than the deadline", k))
        detail("after %.3f ms of 50", ts_minus_ms(t1, t0));

    struct timespec past = {1, 0};
    errno = 0;
    rc = sem_timedwait(&s, &past);
    e = errno;
    if (!check(rc == -1 && e == ETIMEDOUT,
               "%s: sem_timedwait with a past deadline fails with ETIMEDOUT", k))
        detail("got %d, errno %s", rc, ename(e));
    struct timespec bad = {0, 1000000000L};
    errno = 0;
    rc = sem_timedwait(&s, &bad);
    e = errno;
    if (!check(rc == -1 && e == EINVAL,
               "%s: sem_timedwait with tv_nsec = 1e9 fails with EINVAL", k))
        detail("got %d, errno %s", rc, ename(e));
    dl = ts_add_ms(now_on(CLOCK_MONOTONIC), 50);
    errno = 0;
    rc = sem_clockwait(&s, CLOCK_PROCESS_CPUTIME_ID, &dl);
    e = errno;
    if (!check(rc == -1 && e == EINVAL,
               "%s: sem_clockwait on CLOCK_PROCESS_CPUTIME_ID fails with EINVAL", k))
        detail("got %d, errno %s", rc, ename(e));

    int posts = 0;
    for (int i = 0; i < 3; i++)
        posts += sem_post(&s) == 0;
    check(posts == 3, "%s: sem_post returns 0", k);
    int v = value_of(&s);
    if (!check(v == 3, "%s: sem_getvalue after 3 posts gives 3", k))
        detail("got %d", v);
    errno = 0;
    rc = sem_timedwait(&s, &bad);
    e = errno;
    v = value_of(&s);
    if (!check(rc == -1 && e == EINVAL && v == 3,
               "%s: sem_timedwait with tv_nsec = 1e9 fails with EINVAL even at 3, and "
               "takes nothing",
               k))
        detail("got %d, errno %s, value now %d", rc, ename(e), v);
    rc = sem_trywait(&s);
    int rc2 = sem_wait(&s);
    dl = ts_add_ms(now_on(CLOCK_REALTIME), 10000);
    int rc3 = sem_timedwait(&s, &dl);
    v = value_of(&s);
    if (!check(rc == 0 && rc2 == 0 && rc3 == 0 && v == 0,
               "%s: trywait, wait and timedwait each take one", k))
        detail("got %d %d %d, value %d", rc, rc2, rc3, v);
    check(sem_destroy(&s) == 0, "%s: sem_destroy returns 0", k);

    rc = sem_init(&s, pshared, SEM_VALUE_MAX);
    errno = 0;
    rc2 = sem_post(&s);
    e = errno;
    v = value_of(&s);
    if (!check(rc == 0 && rc2 == -1 && e == EOVERFLOW && v == SEM_VALUE_MAX,
               "%s: sem_post at SEM_VALUE_MAX fails with EOVERFLOW", k))
        detail("init %d, post %d, errno %s, value %d", rc, rc2, ename(e), v);
    sem_destroy(&s);
    errno = 0;
    rc = sem_init(&s, pshared, (unsigned)SEM_VALUE_MAX + 1u);
    e = errno;
    if (!check(rc == -1 && e == EINVAL,
               "%s: sem_init beyond SEM_VALUE_MAX fails with EINVAL", k))
        detail("got %d, errno %s", rc, ename(e));
}

/* ---- a counting semaphore limits concurrency ---------------------------- */

#define LIMIT 3
#define CONTENDERS 20
#define ROUNDS_EACH 5

static sem_t limit_sem;
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static int limit_cur, limit_max, limit_errors;
static long limit_entries;

static void *contender(void *arg)
{
    for (int i = 0; i < ROUNDS_EACH; i++) {
        struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), slow_ms(5000));
        if (sem_timedwait(&limit_sem, &dl) != 0) {
            pthread_mutex_lock(&limit_lock);
            limit_errors++;
            pthread_mutex_unlock(&limit_lock);
            continue;
        }
        pthread_mutex_lock(&limit_lock);
        limit_entries++;
        if (++limit_cur > limit_max)
            limit_max = limit_cur;
        pthread_mutex_unlock(&limit_lock);
        usleep(2000);
        pthread_mutex_lock(&limit_lock);
        limit_cur--;
        pthread_mutex_unlock(&limit_lock);
        sem_post(&limit_sem);
    }
    return NULL;
}

static void test_limit(int pshared)
{
    phase = "counting semaphore";
    limit_cur = limit_max = limit_errors = 0;
    limit_entries = 0;
    sem_init(&limit_sem, pshared, LIMIT);
    pthread_t t[CONTENDERS];
    for (int i = 0; i < CONTENDERS; i++)
        t[i] = spawn(contender, NULL);
    for (int i = 0; i < CONTENDERS; i++)
        join(t[i]);
    if (!check(limit_errors == 0 && limit_entries == CONTENDERS * ROUNDS_EACH,
               "%s: %d threads x %d entries through a semaphore of %d", kind(pshared),
               CONTENDERS, ROUNDS_EACH, LIMIT))
        detail("%ld entries, %d timeouts", limit_entries, limit_errors);
    if (!check(limit_max == LIMIT, "%s: at most (and at some point exactly) %d inside",
               kind(pshared), LIMIT))
        detail("at most %d inside", limit_max);
    int v = value_of(&limit_sem);
    if (!check(v == LIMIT, "%s: the value is %d again at the end", kind(pshared),
               LIMIT))
        detail("got %d", v);
    sem_destroy(&limit_sem);
}

/* ---- many waiters, one post each ---------------------------------------- */

#define WAITERS 20

static sem_t many_sem;
static int many_got, many_timeouts;
static pthread_mutex_t many_lock = PTHREAD_MUTEX_INITIALIZER;

static void *many_waiter(void *arg)
{
    struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), slow_ms(5000));
    int rc = sem_timedwait(&many_sem, &dl);
    pthread_mutex_lock(&many_lock);
    if (rc == 0)
        many_got++;
    else
        many_timeouts++;
    pthread_mutex_unlock(&many_lock);
    return NULL;
}

static void test_many_waiters(int pshared)
{
    phase = "many waiters";
    many_got = many_timeouts = 0;
    sem_init(&many_sem, pshared, 0);
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        t[i] = spawn(many_waiter, NULL);
    for (int i = 0; i < WAITERS; i++) {
        sem_post(&many_sem);
        if (i % 5 == 0)
            usleep(1000);
    }
    for (int i = 0; i < WAITERS; i++)
        join(t[i]);
    int v = value_of(&many_sem);
    if (!check(many_got == WAITERS && v == 0,
               "%s: %d waiters, %d posts: each waiter gets one", kind(pshared), WAITERS,
               WAITERS))
        detail("%d got one, %d timed out, value %d", many_got, many_timeouts, v);
    sem_destroy(&many_sem);
}

int main(void)
{
    watchdog(10);
    for (int pshared = 0; pshared <= 1; pshared++) {
        test_calls(pshared);
        test_many_waiters(pshared);
        test_limit(pshared);
        test_pingpong(pshared);
    }
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
