/*
 * cleanup_cancel: cleanup handlers and cancellation.
 *
 *   - pthread_cleanup_pop(1) runs the handler; pop(0) does not;
 *   - pthread_exit from a nested function runs the pushed handlers, last
 *     pushed first, and join gets the value;
 *   - pthread_cancel of threads blocked in read, pthread_cond_wait (whose
 *     cleanup handler must unlock the mutex it holds again) and nanosleep:
 *     join gets PTHREAD_CANCELED and the handlers ran; cancelling with
 *     cancellation disabled waits until it is enabled again.
 *
 * Under LD_PRELOAD=libunblock.so these are documented gaps (README: "What
 * remains different"): pthread_exit does not unwind a coroutine, so its
 * cleanup handlers do not run, and pthread_cancel of a coroutine returns
 * ENOTSUP.  The runner (tests/test_preload.c) marks the comparison TODO.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- checks, watchdog, time (the same in every program here) ---------- */

#define UNUSED __attribute__((unused))

static int failures;

static int check(int pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
UNUSED static int check(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(pass ? "ok - " : "FAIL - ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
    if (!pass)
        failures++;
    return pass;
}

/* Details of a failed check: not compared, since the check already fails. */
static void detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
UNUSED static void detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("    ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

static const char *volatile phase = "start";

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL - watchdog: still running after the time limit in ";
    ssize_t r = write(1, msg, sizeof msg - 1);
    r = write(1, phase, strlen(phase));
    r = write(1, "\n", 1);
    (void)r;
    _exit(2);
}

UNUSED static void watchdog(unsigned seconds)
{
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

/* An errno value's name, or its number; for failure details only. */
UNUSED static const char *ename(int e)
{
    static __thread char buf[32];
    const char *n = strerrorname_np(e);
    if (e == 0)
        return "0";
    if (n)
        return n;
    snprintf(buf, sizeof buf, "%d", e);
    return buf;
}

UNUSED static struct timespec now_on(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts;
}

UNUSED static struct timespec ts_add_ms(struct timespec ts, long ms)
{
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

UNUSED static int ts_reached(struct timespec now, struct timespec deadline)
{
    return now.tv_sec > deadline.tv_sec ||
           (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

UNUSED static double ts_minus_ms(struct timespec a, struct timespec b)
{
    return (double)(a.tv_sec - b.tv_sec) * 1e3 + (double)(a.tv_nsec - b.tv_nsec) * 1e-6;
}

UNUSED static pthread_t spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int e = pthread_create(&t, NULL, fn, arg);
    if (e != 0) {
        printf("FAIL - pthread_create: %s\n", strerror(e));
        exit(1);
    }
    return t;
}

UNUSED static void *join(pthread_t t)
{
    void *r = NULL;
    int e = pthread_join(t, &r);
    if (e != 0) {
        printf("FAIL - pthread_join: %s\n", strerror(e));
        exit(1);
    }
    return r;
}

/* A one-shot event (mutex, condition variable, flag): how the programs
 * other than sem.c hand a thread the go-ahead, so that they do not depend
 * on semaphores.  A wait longer than 10 s is a failure. */
struct event {
    pthread_mutex_t m;
    pthread_cond_t c;
    int set;
};
#define EVENT_INIT                                                                     \
    {                                                                                  \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0                         \
    }

UNUSED static void event_set(struct event *e)
{
    pthread_mutex_lock(&e->m);
    e->set = 1;
    pthread_cond_broadcast(&e->c);
    pthread_mutex_unlock(&e->m);
}

UNUSED static void event_wait(struct event *e)
{
    struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), 10000);
    int rc = 0;
    pthread_mutex_lock(&e->m);
    while (!e->set && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&e->c, &e->m, &dl);
    int set = e->set;
    pthread_mutex_unlock(&e->m);
    if (!set) {
        check(0, "an event was not set within 10 s in %s", phase);
        exit(1);
    }
}

/* Only when nobody waits on it. */
UNUSED static void event_reset(struct event *e)
{
    pthread_mutex_lock(&e->m);
    e->set = 0;
    pthread_mutex_unlock(&e->m);
}

static char order[16];
static int order_len;
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;

static void note(void *arg)
{
    pthread_mutex_lock(&order_lock);
    if (order_len < (int)sizeof order - 1)
        order[order_len++] = *(const char *)arg;
    order[order_len] = '\0';
    pthread_mutex_unlock(&order_lock);
}

static void order_reset(void)
{
    pthread_mutex_lock(&order_lock);
    order_len = 0;
    order[0] = '\0';
    pthread_mutex_unlock(&order_lock);
}

/* ---- pop ---------------------------------------------------------------- */

static void *pops(void *arg)
{
    pthread_cleanup_push(note, "a");
    pthread_cleanup_push(note, "b");
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(1);
    return NULL;
}

/* ---- pthread_exit runs the handlers -------------------------------------- */

__attribute__((noinline)) static void exit_deep(void)
{
    usleep(1000);
    pthread_exit((void *)77L);
}

static void *exits_with_handlers(void *arg)
{
    pthread_cleanup_push(note, "1");
    pthread_cleanup_push(note, "2");
    pthread_cleanup_push(note, "3");
    exit_deep();
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return NULL;
}

/* ---- cancellation ------------------------------------------------------- */

static int never[2];
static pthread_mutex_t cv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct event in_place = EVENT_INIT;

static void *cancel_in_read(void *arg)
{
    pthread_cleanup_push(note, "r");
    event_set(&in_place);
    char c;
    ssize_t r = read(never[0], &c, 1);
    (void)r;
    pthread_cleanup_pop(0);
    return NULL;
}

static void unlock_cv(void *arg)
{
    note("c");
    pthread_mutex_unlock(&cv_lock);
}

static void *cancel_in_cond_wait(void *arg)
{
    pthread_mutex_lock(&cv_lock);
    pthread_cleanup_push(unlock_cv, NULL);
    event_set(&in_place);
    for (;;)
        pthread_cond_wait(&cv, &cv_lock);
    pthread_cleanup_pop(1);
    return NULL;
}

static void *cancel_in_sleep(void *arg)
{
    pthread_cleanup_push(note, "s");
    event_set(&in_place);
    struct timespec ts = {30, 0};
    nanosleep(&ts, NULL);
    pthread_cleanup_pop(0);
    return NULL;
}

static struct event enable_go = EVENT_INIT;

static void *cancel_disabled(void *arg)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    event_set(&in_place);
    event_wait(&enable_go); /* a cancellation point, but disabled */
    note("d");
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    pthread_testcancel();
    note("X");
    return NULL;
}

/* Cancels a thread started with fn once it is in place; expects the
 * handler trace `want`.  If the cancel fails, lets the thread go (a byte
 * on `never`, a broadcast) so that the join ends. */
static void cancel_case(void *(*fn)(void *), const char *what, const char *want,
                        struct event *before_join)
{
    order_reset();
    event_reset(&in_place);
    pthread_t t = spawn(fn, NULL);
    event_wait(&in_place);
    usleep(2000); /* into the blocking call */
    int rc = pthread_cancel(t);
    if (!check(rc == 0, "cancel %s: pthread_cancel returns 0", what)) {
        detail("got %s", ename(rc));
        ssize_t w = write(never[1], "x", 1);
        (void)w;
        pthread_mutex_lock(&cv_lock);
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&cv_lock);
        pthread_detach(t); /* the cond waiter never ends */
        if (before_join)
            event_set(before_join);
        return;
    }
    if (before_join)
        event_set(before_join);
    void *r = join(t);
    if (!check(r == PTHREAD_CANCELED, "cancel %s: join gets PTHREAD_CANCELED", what))
        detail("got %p", r);
    pthread_mutex_lock(&order_lock);
    int same = strcmp(order, want) == 0;
    char got[16];
    strcpy(got, order);
    pthread_mutex_unlock(&order_lock);
    if (!check(same, "cancel %s: the cleanup handlers ran (\"%s\")", what, want))
        detail("ran \"%s\"", got);
}

int main(void)
{
    watchdog(10);
    if (pipe(never) != 0)
        return 1;

    phase = "pop";
    join(spawn(pops, NULL));
    check(strcmp(order, "a") == 0,
          "pthread_cleanup_pop(1) runs the handler, pop(0) does not");

    phase = "pthread_exit";
    order_reset();
    void *r = join(spawn(exits_with_handlers, NULL));
    check(r == (void *)77L, "pthread_exit(77) inside cleanup handlers: join gets 77");
    if (!check(strcmp(order, "321") == 0,
               "pthread_exit runs the cleanup handlers, last pushed first"))
        detail("ran \"%s\"", order);

    phase = "cancel";
    cancel_case(cancel_in_read, "in read", "r", NULL);
    cancel_case(cancel_in_cond_wait, "in pthread_cond_wait", "c", NULL);
    int rc = pthread_mutex_trylock(&cv_lock);
    if (!check(rc == 0, "the cond waiter's handler unlocked the mutex it held again"))
        detail("trylock got %s", ename(rc));
    if (rc == 0)
        pthread_mutex_unlock(&cv_lock);
    cancel_case(cancel_in_sleep, "in nanosleep", "s", NULL);
    cancel_case(cancel_disabled, "with cancellation disabled", "d", &enable_go);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
