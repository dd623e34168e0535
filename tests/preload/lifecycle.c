/*
 * lifecycle: creating, identifying, detaching, ending and joining
 * threads, as an ordinary program does.  Run natively and under
 * LD_PRELOAD=libunblock.so by tests/test_preload.c, which wants the same
 * stdout and exit status from both.
 *
 *   - pthread_attr_setstacksize(4 MiB) is honoured: the thread uses a
 *     2 MiB local array, and pthread_getattr_np shows a stack of at least
 *     4 MiB around its locals (main's too contains its locals);
 *   - detached threads (by attribute and by pthread_detach) run to the end
 *     and report through a semaphore; pthread_detach twice and
 *     pthread_join of a detached thread that still runs give EINVAL;
 *   - pthread_exit(value) from a nested function ends the thread there and
 *     join gets the value; a returned value likewise;
 *   - pthread_join(pthread_self()) is EDEADLK, in main and in a thread;
 *     pthread_tryjoin_np EBUSY and pthread_timedjoin_np ETIMEDOUT while the
 *     thread runs, then 0;
 *   - pthread_self in a thread equals the id pthread_create gave; 16 live
 *     threads have 16 distinct ids, none equal to main's;
 *   - pthread_setname_np / getname_np: each thread reads back its own
 *     name across sleeps, and main reads a live thread's name;
 *   - 2,000 threads created and joined in batches of 100; a thread that
 *     creates threads that create threads (85 in a tree).
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
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


/* Whether addr lies in the stack pthread_getattr_np reports for t, and
 * that stack's size. */
static int stack_holds(pthread_t t, const void *addr, size_t *size)
{
    pthread_attr_t a;
    if (pthread_getattr_np(t, &a) != 0)
        return 0;
    void *base = NULL;
    size_t sz = 0;
    pthread_attr_getstack(&a, &base, &sz);
    pthread_attr_destroy(&a);
    *size = sz;
    uintptr_t p = (uintptr_t)addr, lo = (uintptr_t)base;
    return p >= lo && p < lo + sz;
}

/* ---- stack size --------------------------------------------------------- */

#define BIG_STACK (4u << 20)
#define BIG_ARRAY (2u << 20)

struct big_result {
    long sum;
    int holds;
    size_t size;
};

__attribute__((noinline)) static long use_big_array(void)
{
    char buf[BIG_ARRAY];
    volatile char *p = buf;
    for (size_t i = 0; i < BIG_ARRAY; i += 512)
        p[i] = (char)(i >> 9);
    long sum = 0;
    for (size_t i = 0; i < BIG_ARRAY; i += 512)
        sum += p[i];
    return sum;
}

static void *big_thread(void *arg)
{
    struct big_result *r = arg;
    int local;
    r->holds = stack_holds(pthread_self(), &local, &r->size);
    usleep(1000);
    r->sum = use_big_array();
    return NULL;
}

static void test_stack_size(void)
{
    phase = "stack size";
    pthread_attr_t a;
    pthread_attr_init(&a);
    int rc = pthread_attr_setstacksize(&a, BIG_STACK);
    size_t got = 0;
    pthread_attr_getstacksize(&a, &got);
    check(rc == 0 && got == BIG_STACK,
          "attr_setstacksize(4 MiB) returns 0 and reads back");
    struct big_result r = {0, 0, 0};
    pthread_t t;
    rc = pthread_create(&t, &a, big_thread, &r);
    pthread_attr_destroy(&a);
    if (!check(rc == 0, "pthread_create with a 4 MiB stack returns 0")) {
        detail("got %s", ename(rc));
        return;
    }
    join(t);
    long want = 0;
    for (size_t i = 0; i < BIG_ARRAY; i += 512)
        want += (char)(i >> 9);
    if (!check(r.sum == want, "a thread with a 4 MiB stack uses a 2 MiB local array"))
        detail("sum %ld, want %ld", r.sum, want);
    if (!check(
            r.holds && r.size >= BIG_STACK,
            "pthread_getattr_np in that thread: a stack of at least 4 MiB around its "
            "locals"))
        detail("contains the local: %d, size %zu", r.holds, r.size);
    int local;
    size_t main_size = 0;
    if (!check(stack_holds(pthread_self(), &local, &main_size),
               "pthread_getattr_np in main: the stack contains main's locals"))
        detail("size %zu", main_size);
}

/* ---- detached threads --------------------------------------------------- */

#define DETACHED 100

static sem_t detached_done;
static atomic_long detached_sum;

static void *detached_fn(void *arg)
{
    long id = (long)arg;
    if (id % 10 == 0)
        usleep(1000);
    atomic_fetch_add(&detached_sum, id);
    sem_post(&detached_done);
    return NULL;
}

static struct event late_go = EVENT_INIT;

static void *late_detached_fn(void *arg)
{
    event_wait(&late_go);
    atomic_fetch_add(&detached_sum, 1000);
    sem_post(&detached_done);
    return NULL;
}

static void test_detached(void)
{
    phase = "detached";
    sem_init(&detached_done, 0, 0);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int ds = -1;
    pthread_attr_getdetachstate(&a, &ds);
    check(ds == PTHREAD_CREATE_DETACHED, "attr_getdetachstate reads back DETACHED");
    int created = 0;
    for (long i = 0; i < DETACHED; i++) {
        pthread_t t;
        created += pthread_create(&t, &a, detached_fn, (void *)i) == 0;
    }
    pthread_attr_destroy(&a);
    check(created == DETACHED, "%d detached threads created", DETACHED);

    pthread_t late = spawn(late_detached_fn, NULL);
    int rc = pthread_detach(late);
    check(rc == 0, "pthread_detach of a running thread returns 0");
    rc = pthread_detach(late);
    if (!check(rc == EINVAL, "pthread_detach again returns EINVAL"))
        detail("got %s", ename(rc));
    rc = pthread_join(late, NULL);
    if (!check(rc == EINVAL,
               "pthread_join of a detached thread that still runs returns "
               "EINVAL"))
        detail("got %s", ename(rc));
    event_set(&late_go);

    int reported = 0;
    for (int i = 0; i < DETACHED + 1; i++) {
        struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), slow_ms(5000));
        if (sem_timedwait(&detached_done, &dl) != 0)
            break;
        reported++;
    }
    long want = (long)DETACHED * (DETACHED - 1) / 2 + 1000;
    if (!check(reported == DETACHED + 1 && atomic_load(&detached_sum) == want,
               "all %d detached threads ran to the end (sum %ld)", DETACHED + 1, want))
        detail("%d reported, sum %ld", reported, (long)atomic_load(&detached_sum));
}

/* ---- ending and joining ------------------------------------------------- */

static atomic_int after_exit_ran;

__attribute__((noinline)) static void deep_exit(long v)
{
    pthread_exit((void *)(v * 2));
}

__attribute__((noinline)) static void nested(long v)
{
    deep_exit(v + 1);
    atomic_fetch_add(&after_exit_ran, 1);
}

static void *exits_nested(void *arg)
{
    usleep(1000);
    nested((long)arg);
    atomic_fetch_add(&after_exit_ran, 1);
    return (void *)-1L;
}

static void *returns_value(void *arg)
{
    return (void *)((long)arg + 7);
}

static void *joins_itself(void *arg)
{
    return (void *)(long)pthread_join(pthread_self(), NULL);
}

static struct event run_go = EVENT_INIT;

static void *runs_until_go(void *arg)
{
    event_wait(&run_go);
    return (void *)99L;
}

static void test_end_and_join(void)
{
    phase = "end and join";
    void *r = join(spawn(exits_nested, (void *)20L));
    if (!check(
            r == (void *)42L && atomic_load(&after_exit_ran) == 0,
            "pthread_exit(42) from a nested function: join gets 42, nothing after it "
            "runs"))
        detail("join got %ld, code after pthread_exit ran %d times", (long)r,
               (int)atomic_load(&after_exit_ran));
    r = join(spawn(returns_value, (void *)5L));
    if (!check(r == (void *)12L, "a returned value reaches join"))
        detail("got %ld", (long)r);

    int rc = pthread_join(pthread_self(), NULL);
    if (!check(rc == EDEADLK, "pthread_join(pthread_self()) in main returns EDEADLK"))
        detail("got %s", ename(rc));
    r = join(spawn(joins_itself, NULL));
    if (!check((long)r == EDEADLK,
               "pthread_join(pthread_self()) in a thread returns EDEADLK"))
        detail("got %s", ename((int)(long)r));

    pthread_t t = spawn(runs_until_go, NULL);
    rc = pthread_tryjoin_np(t, &r);
    if (!check(rc == EBUSY, "pthread_tryjoin_np of a running thread returns EBUSY"))
        detail("got %s", ename(rc));
    struct timespec t0 = now_on(CLOCK_REALTIME);
    struct timespec dl = ts_add_ms(t0, 50);
    rc = pthread_timedjoin_np(t, &r, &dl);
    struct timespec t1 = now_on(CLOCK_REALTIME);
    if (!check(rc == ETIMEDOUT && ts_reached(t1, dl),
               "pthread_timedjoin_np of a running thread returns ETIMEDOUT at the "
               "deadline"))
        detail("got %s after %.3f ms of 50", ename(rc), ts_minus_ms(t1, t0));
    event_set(&run_go);
    dl = ts_add_ms(now_on(CLOCK_REALTIME), 10000);
    r = NULL;
    rc = pthread_timedjoin_np(t, &r, &dl);
    if (!check(rc == 0 && r == (void *)99L,
               "pthread_timedjoin_np returns 0 and the value when the thread ends"))
        detail("got %s, value %ld", ename(rc), (long)r);
}

/* ---- identity ----------------------------------------------------------- */

#define LIVE 16

static pthread_t selves[LIVE];
static struct event ids_go = EVENT_INIT;
static atomic_int ids_ready;

static void *records_self(void *arg)
{
    selves[(long)arg] = pthread_self();
    atomic_fetch_add(&ids_ready, 1);
    event_wait(&ids_go);
    return NULL;
}

static void test_identity(void)
{
    phase = "identity";
    pthread_t t[LIVE];
    for (long i = 0; i < LIVE; i++)
        t[i] = spawn(records_self, (void *)i);
    for (int n = 0; n < 10000 && atomic_load(&ids_ready) < LIVE; n++)
        usleep(1000);
    int distinct = 1, same_as_create = 0, not_main = 1;
    if (atomic_load(&ids_ready) == LIVE) {
        for (int i = 0; i < LIVE; i++) {
            same_as_create += pthread_equal(selves[i], t[i]) != 0;
            not_main &= !pthread_equal(selves[i], pthread_self());
            for (int j = 0; j < i; j++)
                distinct &= !pthread_equal(selves[i], selves[j]);
        }
    }
    event_set(&ids_go);
    for (int i = 0; i < LIVE; i++)
        join(t[i]);
    if (!check(same_as_create == LIVE,
               "pthread_self in a thread equals the id pthread_create gave"))
        detail("%d of %d", same_as_create, LIVE);
    check(distinct, "%d live threads have distinct ids", LIVE);
    check(not_main, "no thread's id equals main's");
    check(pthread_equal(pthread_self(), pthread_self()) != 0,
          "pthread_equal(pthread_self(), pthread_self()) in main");
}

/* ---- names -------------------------------------------------------------- */

#define NAMED 8

static struct event names_done_go = EVENT_INIT;
static atomic_int names_set, names_kept;

static void *named_thread(void *arg)
{
    long i = (long)arg;
    char want[16], got[16] = "";
    snprintf(want, sizeof want, "worker-%ld", i);
    pthread_setname_np(pthread_self(), want);
    usleep(1000 + 200 * (unsigned)i);
    pthread_getname_np(pthread_self(), got, sizeof got);
    if (strcmp(got, want) == 0)
        atomic_fetch_add(&names_kept, 1);
    atomic_fetch_add(&names_set, 1);
    event_wait(&names_done_go);
    return NULL;
}

static void test_names(void)
{
    phase = "names";
    pthread_t t[NAMED];
    for (long i = 0; i < NAMED; i++)
        t[i] = spawn(named_thread, (void *)i);
    for (int n = 0; n < 10000 && atomic_load(&names_set) < NAMED; n++)
        usleep(1000);
    int main_reads = 0;
    for (long i = 0; i < NAMED; i++) {
        char want[16], got[16] = "";
        snprintf(want, sizeof want, "worker-%ld", i);
        if (pthread_getname_np(t[i], got, sizeof got) == 0 && strcmp(got, want) == 0)
            main_reads++;
    }
    event_set(&names_done_go);
    for (int i = 0; i < NAMED; i++)
        join(t[i]);
    if (!check(atomic_load(&names_kept) == NAMED,
               "pthread_setname_np: each of %d threads reads back its own name after "
               "sleeping",
               NAMED))
        detail("%d of %d", (int)atomic_load(&names_kept), NAMED);
    if (!check(main_reads == NAMED,
               "pthread_getname_np from main reads each thread's name"))
        detail("%d of %d", main_reads, NAMED);
}

/* ---- many threads, threads creating threads ----------------------------- */

#define TOTAL 2000
#define BATCH 100

static void *times_three(void *arg)
{
    long i = (long)arg;
    if (i % 50 == 0)
        usleep(100);
    return (void *)(i * 3);
}

static void test_many(void)
{
    phase = "2000 threads";
    long sum = 0;
    int joined = 0;
    for (long b = 0; b < TOTAL; b += BATCH) {
        pthread_t t[BATCH];
        for (long i = 0; i < BATCH; i++)
            t[i] = spawn(times_three, (void *)(b + i));
        for (int i = 0; i < BATCH; i++) {
            sum += (long)join(t[i]);
            joined++;
        }
    }
    long want = 3L * TOTAL * (TOTAL - 1) / 2;
    if (!check(joined == TOTAL && sum == want,
               "%d threads in batches of %d: every join gets its value (sum %ld)",
               TOTAL, BATCH, want))
        detail("%d joined, sum %ld", joined, sum);
}

#define FANOUT 4

static void *tree_node(void *arg)
{
    long depth = (long)arg;
    long count = 1;
    if (depth > 0) {
        pthread_t kids[FANOUT];
        for (int i = 0; i < FANOUT; i++)
            kids[i] = spawn(tree_node, (void *)(depth - 1));
        usleep(200);
        for (int i = 0; i < FANOUT; i++)
            count += (long)join(kids[i]);
    }
    return (void *)count;
}

static void test_tree(void)
{
    phase = "tree";
    long n = (long)join(spawn(tree_node, (void *)3L));
    if (!check(n == 85,
               "threads creating threads: a tree of 85 threads, joined by their "
               "creators"))
        detail("counted %ld", n);
}

int main(void)
{
    watchdog(10);
    test_stack_size();
    test_end_and_join();
    test_identity();
    test_names();
    test_detached();
    test_tree();
    test_many();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
