/*
 * tls_vars: a thread's __thread variables are its own across blocking
 * calls: one with an initialiser, one a constructor set in the initial
 * thread (main's), a "current request" pointer, and a pointer into the
 * thread's own __thread buffer.  One thread sits 300 ms in a raw
 * nanosleep meanwhile: with one worker under LD_PRELOAD=libunblock.so,
 * the monitor moves the other threads to another OS thread, whose
 * __thread blocks are elsewhere, and the pointer into the buffer must
 * still point into the thread's own (tests/test_preload.c runs it so).
 *
 * An ordinary program: run natively and under the preload by
 * tests/test_preload.c, which compares the output.  Exit status 0 when
 * every check passes, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define NTHREADS 8

static __thread int seeded = 42;
static __thread long by_ctor;
static __thread const char *current;
static __thread char buf[64];
static __thread char *cur;

static int bad[NTHREADS + 1];

/* The buffer's address on the thread that runs the caller now.  The
 * compiler may keep a __thread variable's address in a register across a
 * call (the thread pointer cannot change for it); under the preload a
 * coroutine can resume on another OS thread, so a check made with such an
 * address would test the compiler, not the runtime.  README, "What
 * remains different", has that limit. */
__attribute__((noinline)) static char *buf_now(void)
{
    __asm__ volatile("" ::: "memory");
    return buf;
}

__attribute__((constructor)) static void set_in_initial_thread(void)
{
    by_ctor = 7;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sets the thread's variables, then parks again and again for `secs`,
 * counting the times they were not what it set. */
static int keep(long id, const char *name, double secs)
{
    int wrong = 0;
    if (seeded != 42 || (id >= 0 && by_ctor != 0))
        wrong++;
    seeded = 42 + (int)id;
    current = name;
    snprintf(buf, sizeof buf, "%s", name);
    cur = buf;
    double end = now() + secs;
    do {
        usleep(1000);
        if (seeded != 42 + (int)id || current != name || cur != buf_now() ||
            strcmp(cur, name))
            wrong++;
    } while (now() < end);
    return wrong;
}

static void *thread(void *arg)
{
    long id = (long)arg;
    char name[32];
    snprintf(name, sizeof name, "thread %ld", id);
    bad[id] = keep(id, name, 0.6);
    return NULL;
}

static void *stuck(void *arg)
{
    (void)arg;
    seeded = 1;
    struct timespec ts = {0, 300 * 1000 * 1000};
    syscall(SYS_nanosleep, &ts, NULL); /* no hook sees it */
    bad[NTHREADS] = seeded != 1;
    return NULL;
}

int main(void)
{
    watchdog(10);
    phase = "main's own";
    check(by_ctor == 7, "main sees the value a constructor set in the initial thread");
    check(seeded == 42, "main sees the initialiser");
    phase = "threads";
    pthread_t t[NTHREADS], s = spawn(stuck, NULL);
    for (long i = 0; i < NTHREADS; i++)
        t[i] = spawn(thread, (void *)i);
    int mine = keep(-1, "main", 0.4);
    join(s);
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
    check(mine == 0 && by_ctor == 7, "main's variables stayed its own (%d wrong)", mine);
    for (int i = 0; i < NTHREADS; i++)
        check(bad[i] == 0, "thread %d: its variables stayed its own (%d wrong)", i, bad[i]);
    check(bad[NTHREADS] == 0, "the thread in a raw nanosleep kept its own");
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
