/*
 * once_keys: pthread_once and thread-specific data (keys) as an ordinary
 * program uses them.  Run natively and under LD_PRELOAD=libunblock.so by
 * tests/test_preload.c, which wants the same stdout and exit status from
 * both.
 *
 *   - pthread_once raced by 32 threads runs the init exactly once, even
 *     though the init sleeps, and every thread sees its effect on return;
 *     an init that calls pthread_once on another control works;
 *   - keys: each of 50 threads sets its own value, sleeps (so a coroutine
 *     parks and may move), reads back its own value; a new thread starts
 *     with NULL; main's value is its own and survives; destructors run at
 *     thread exit, by return or by pthread_exit from a nested function,
 *     once per thread with that thread's last value, with the key already
 *     NULL; not for a NULL value; again when a destructor sets a value
 *     (up to PTHREAD_DESTRUCTOR_ITERATIONS rounds, as glibc does); not
 *     after pthread_key_delete, whose key then gives EINVAL, and a key
 *     created afterwards reads NULL in a thread that had set the deleted
 *     one;
 *   - 64 keys at once per thread.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
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


/* ---- pthread_once ------------------------------------------------------- */

#define ONCE_THREADS 32

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_once_t once_inner = PTHREAD_ONCE_INIT;
static atomic_int init_runs, inner_runs;
static int init_value, inner_value; /* plain: pthread_once must publish them */
static atomic_int saw_value, gate_open;
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;

static void inner_init(void)
{
    atomic_fetch_add(&inner_runs, 1);
    inner_value = 7;
}

static void init_routine(void)
{
    atomic_fetch_add(&init_runs, 1);
    usleep(20000); /* the others wait in pthread_once meanwhile */
    pthread_once(&once_inner, inner_init);
    init_value = 42 + inner_value;
}

static void *once_racer(void *arg)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    int rc = pthread_once(&once, init_routine);
    if (rc == 0 && init_value == 49)
        atomic_fetch_add(&saw_value, 1);
    return NULL;
}

static void test_once(void)
{
    phase = "once";
    pthread_t t[ONCE_THREADS];
    for (int i = 0; i < ONCE_THREADS; i++)
        t[i] = spawn(once_racer, NULL);
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    for (int i = 0; i < ONCE_THREADS; i++)
        join(t[i]);
    if (!check(atomic_load(&init_runs) == 1,
               "once: %d threads racing run the init exactly once", ONCE_THREADS))
        detail("ran %d times", (int)atomic_load(&init_runs));
    if (!check(atomic_load(&saw_value) == ONCE_THREADS,
               "once: every thread sees the init's effect when pthread_once returns"))
        detail("%d of %d saw it", (int)atomic_load(&saw_value), ONCE_THREADS);
    pthread_once(&once, init_routine);
    pthread_once(&once_inner, inner_init);
    check(atomic_load(&init_runs) == 1 && atomic_load(&inner_runs) == 1,
          "once: later calls, and the nested control, do not run the init again");
}

/* ---- keys --------------------------------------------------------------- */

#define KEY_THREADS 50

struct slot {
    int id;
    atomic_int destroyed;   /* destructor calls with this slot */
    atomic_int key_was_set; /* ... during which getspecific was not NULL */
};

static pthread_key_t key;
static struct slot slots[KEY_THREADS], slots2[KEY_THREADS], main_slot;
static atomic_int dtor_calls, started_null, read_back, null_key_reads;

static void key_dtor(void *p)
{
    struct slot *s = p;
    atomic_fetch_add(&dtor_calls, 1);
    atomic_fetch_add(&s->destroyed, 1);
    if (pthread_getspecific(key) != NULL)
        atomic_fetch_add(&s->key_was_set, 1);
}

static pthread_key_t unset_key; /* created, never set by anyone */

__attribute__((noinline)) static void leave_inner(void)
{
    pthread_exit(NULL);
}

__attribute__((noinline)) static void leave_by_pthread_exit(void)
{
    leave_inner();
}

static void *key_thread(void *arg)
{
    int i = (int)(long)arg;
    if (pthread_getspecific(key) == NULL)
        atomic_fetch_add(&started_null, 1);
    if (pthread_getspecific(unset_key) == NULL)
        atomic_fetch_add(&null_key_reads, 1);
    int good = 1;
    pthread_setspecific(key, &slots[i]);
    usleep(1000 + 100 * (unsigned)(i % 7));
    good &= pthread_getspecific(key) == &slots[i];
    pthread_setspecific(key, &slots2[i]);
    sched_yield();
    good &= pthread_getspecific(key) == &slots2[i];
    usleep(500);
    good &= pthread_getspecific(key) == &slots2[i];
    if (good)
        atomic_fetch_add(&read_back, 1);
    /* Thread 0 clears its value: no destructor for it. */
    if (i == 0)
        pthread_setspecific(key, NULL);
    if (i % 2)
        leave_by_pthread_exit();
    return NULL;
}

static void test_keys(void)
{
    phase = "keys";
    int rc = pthread_key_create(&key, key_dtor);
    check(rc == 0, "keys: pthread_key_create returns 0");
    pthread_key_create(&unset_key, NULL);
    check(pthread_getspecific(unset_key) == NULL, "keys: a key nobody set reads NULL");
    pthread_setspecific(key, &main_slot);

    pthread_t t[KEY_THREADS];
    for (int i = 0; i < KEY_THREADS; i++) {
        slots[i].id = slots2[i].id = i;
        t[i] = spawn(key_thread, (void *)(long)i);
    }
    for (int i = 0; i < KEY_THREADS; i++)
        join(t[i]);

    if (!check(started_null == KEY_THREADS && null_key_reads == KEY_THREADS,
               "keys: a new thread reads NULL, whatever main set"))
        detail("%d and %d of %d", (int)started_null, (int)null_key_reads, KEY_THREADS);
    if (!check(read_back == KEY_THREADS,
               "keys: %d threads each read back their own value across sleeps",
               KEY_THREADS))
        detail("%d of %d", (int)read_back, KEY_THREADS);
    int first = 0, last_once = 0, key_set = 0;
    for (int i = 0; i < KEY_THREADS; i++) {
        first += atomic_load(&slots[i].destroyed);
        last_once += atomic_load(&slots2[i].destroyed) == (i == 0 ? 0 : 1);
        key_set += atomic_load(&slots2[i].key_was_set);
    }
    if (!check(atomic_load(&dtor_calls) == KEY_THREADS - 1 && first == 0 &&
                   last_once == KEY_THREADS,
               "keys: the destructor runs once per exiting thread with its last value "
               "(%d calls; none for the NULL value; return and pthread_exit alike)",
               KEY_THREADS - 1))
        detail("%d calls, %d with a replaced value, %d slots right", (int)dtor_calls,
               first, last_once);
    if (!check(key_set == 0, "keys: the key reads NULL inside its destructor"))
        detail("%d destructors saw it set", key_set);
    if (!check(pthread_getspecific(key) == &main_slot && main_slot.destroyed == 0,
               "keys: main's value is untouched by the threads"))
        detail("main reads %p, destroyed %d", pthread_getspecific(key),
               (int)main_slot.destroyed);
    pthread_setspecific(key, NULL);
    pthread_key_delete(key);
    pthread_key_delete(unset_key);
}

/* ---- destructors that set values again ---------------------------------- */

static pthread_key_t again_key, forever_key;
static atomic_int again_calls, forever_calls;

static void again_dtor(void *p)
{
    int n = atomic_fetch_add(&again_calls, 1) + 1;
    if (n < 3)
        pthread_setspecific(again_key, p); /* twice more, then stop */
}

static void forever_dtor(void *p)
{
    atomic_fetch_add(&forever_calls, 1);
    pthread_setspecific(forever_key, p);
}

static void *again_thread(void *arg)
{
    static int v1, v2;
    pthread_setspecific(again_key, &v1);
    pthread_setspecific(forever_key, &v2);
    usleep(1000);
    return NULL;
}

static void test_destructor_rounds(void)
{
    phase = "destructor rounds";
    pthread_key_create(&again_key, again_dtor);
    pthread_key_create(&forever_key, forever_dtor);
    join(spawn(again_thread, NULL));
    if (!check(
            atomic_load(&again_calls) == 3,
            "keys: a destructor that sets the value again is called again (3 calls)"))
        detail("%d calls", (int)atomic_load(&again_calls));
    if (!check(atomic_load(&forever_calls) == PTHREAD_DESTRUCTOR_ITERATIONS,
               "keys: one that always sets it is called PTHREAD_DESTRUCTOR_ITERATIONS "
               "(%d) times",
               PTHREAD_DESTRUCTOR_ITERATIONS))
        detail("%d calls", (int)atomic_load(&forever_calls));
    pthread_key_delete(again_key);
    pthread_key_delete(forever_key);
}

/* ---- pthread_key_delete ------------------------------------------------- */

static pthread_key_t del_key, new_key;
static atomic_int del_dtor_calls, new_key_null;
static struct event del_set = EVENT_INIT, del_go = EVENT_INIT;

static void del_dtor(void *p)
{
    atomic_fetch_add(&del_dtor_calls, 1);
}

static void *del_thread(void *arg)
{
    static int v;
    pthread_setspecific(del_key, &v);
    event_set(&del_set);
    event_wait(&del_go);
    if (pthread_getspecific(new_key) == NULL)
        atomic_fetch_add(&new_key_null, 1);
    return NULL;
}

static void test_key_delete(void)
{
    phase = "key delete";
    pthread_key_create(&del_key, del_dtor);
    pthread_t t = spawn(del_thread, NULL);
    event_wait(&del_set);
    int rc = pthread_key_delete(del_key);
    check(rc == 0, "key_delete: returns 0 while a thread has a value");
    rc = pthread_key_delete(del_key);
    if (!check(rc == EINVAL, "key_delete: deleting it again returns EINVAL"))
        detail("got %s", ename(rc));
    static int x;
    rc = pthread_setspecific(del_key, &x);
    if (!check(rc == EINVAL,
               "key_delete: setspecific on the deleted key returns EINVAL"))
        detail("got %s", ename(rc));
    pthread_key_create(&new_key, NULL);
    event_set(&del_go);
    join(t);
    check(atomic_load(&new_key_null) == 1,
          "key_delete: a key created afterwards reads NULL in that thread");
    if (!check(atomic_load(&del_dtor_calls) == 0,
               "key_delete: no destructor runs for a deleted key"))
        detail("%d calls", (int)atomic_load(&del_dtor_calls));
    pthread_key_delete(new_key);
}

/* ---- many keys ---------------------------------------------------------- */

#define MANY_KEYS 64
#define MANY_THREADS 8

static pthread_key_t many[MANY_KEYS];
static atomic_int many_dtor_calls, many_good;
static long many_vals[MANY_THREADS][MANY_KEYS];

static void many_dtor(void *p)
{
    atomic_fetch_add(&many_dtor_calls, 1);
}

static void *many_thread(void *arg)
{
    int t = (int)(long)arg;
    for (int k = 0; k < MANY_KEYS; k++)
        pthread_setspecific(many[k], &many_vals[t][k]);
    usleep(2000);
    int good = 1;
    for (int k = 0; k < MANY_KEYS; k++)
        good &= pthread_getspecific(many[k]) == &many_vals[t][k];
    if (good)
        atomic_fetch_add(&many_good, 1);
    return NULL;
}

static void test_many_keys(void)
{
    phase = "many keys";
    int created = 0;
    for (int k = 0; k < MANY_KEYS; k++)
        created += pthread_key_create(&many[k], many_dtor) == 0;
    check(created == MANY_KEYS, "%d keys created", MANY_KEYS);
    pthread_t t[MANY_THREADS];
    for (int i = 0; i < MANY_THREADS; i++)
        t[i] = spawn(many_thread, (void *)(long)i);
    for (int i = 0; i < MANY_THREADS; i++)
        join(t[i]);
    if (!check(many_good == MANY_THREADS && many_dtor_calls == MANY_THREADS * MANY_KEYS,
               "%d threads x %d keys: own values, %d destructor calls", MANY_THREADS,
               MANY_KEYS, MANY_THREADS * MANY_KEYS))
        detail("%d threads read back, %d destructor calls", (int)many_good,
               (int)many_dtor_calls);
    for (int k = 0; k < MANY_KEYS; k++)
        pthread_key_delete(many[k]);
}

int main(void)
{
    watchdog(10);
    test_once();
    test_keys();
    test_destructor_rounds();
    test_key_delete();
    test_many_keys();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
