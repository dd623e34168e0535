/*
 * Checks, a watchdog and clock helpers shared by the programs in
 * tests/preload/: one "ok - ..." or "FAIL - ..." line per check on stdout,
 * and an alarm that turns a hang into a FAIL line and exit status 2.
 * Plain C and pthreads: the programs never mention libunblock.
 */
#ifndef PRELOAD_CHECK_H
#define PRELOAD_CHECK_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* How many times slower a tool makes the program (UNB_TEST_SLOW, set by
 * make test-valgrind, test-asan and test-tsan for the native and the
 * preloaded runs alike); 1 without one. */
UNUSED static unsigned slow_factor(void)
{
    const char *slow = getenv("UNB_TEST_SLOW");
    return slow && atoi(slow) > 1 ? (unsigned)atoi(slow) : 1;
}

/* A liveness deadline of `ms` natively (something must happen at all: a
 * wake-up that never comes still fails it), UNB_TEST_SLOW times longer
 * under a tool. */
UNUSED static long slow_ms(long ms)
{
    return ms * (long)slow_factor();
}

/* Under a tool the watchdog waits UNB_TEST_SLOW times longer: it only
 * catches hangs. */
UNUSED static void watchdog(unsigned seconds)
{
    signal(SIGALRM, on_alarm);
    alarm(seconds * slow_factor());
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

#endif
