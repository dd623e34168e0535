/*
 * exit: how a threaded program ends.  argv[1] is the mode; the runner
 * (tests/test_preload.c) runs each natively and under
 * LD_PRELOAD=libunblock.so and wants the same stdout and wait status.
 *
 *   return             main returns 3 while a thread is blocked: status 3
 *   exit-thread        a thread calls exit(5) while main is blocked in
 *                      pthread_join on a thread blocked in a read: status
 *                      5, atexit handlers run, stdio is flushed
 *   atexit             handlers registered in order (two by main, one by
 *                      a thread) run in reverse at return from main: 0
 *   pthread-exit-main  main calls pthread_exit while a thread runs on; the
 *                      thread prints after a sleep, the process exits 0
 *                      when it ends, and atexit handlers run then
 *   exit-blocked       main returns 7 while 10 threads are blocked in a
 *                      mutex, a condition variable, a semaphore, a
 *                      barrier, a read, a sleep and a join
 *   raise              a thread raises SIGTERM: killed by SIGTERM
 *
 * A watchdog (alarm) turns a hang into "FAIL" and status 2.
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


static int never_written[2]; /* a pipe nobody writes: reads block */

static void *blocked_reader(void *arg)
{
    char c;
    ssize_t r = read(never_written[0], &c, 1);
    printf("FAIL - the blocked read returned %zd\n", r);
    return NULL;
}

static void say_atexit(void)
{
    printf("atexit handler ran\n");
}

/* ---- return ------------------------------------------------------------- */

static int mode_return(void)
{
    spawn(blocked_reader, NULL);
    printf("main returns 3 while a thread is blocked in read\n");
    return 3;
}

/* ---- exit-thread -------------------------------------------------------- */

static void *exiter(void *arg)
{
    usleep(50000); /* main is in pthread_join by now, most likely */
    printf("a thread calls exit(5)\n");
    exit(5);
}

static int mode_exit_thread(void)
{
    atexit(say_atexit);
    pthread_t blocked = spawn(blocked_reader, NULL);
    spawn(exiter, NULL);
    printf("main joins a blocked thread\n");
    join(blocked);
    printf("FAIL - pthread_join returned\n");
    return 1;
}

/* ---- atexit ------------------------------------------------------------- */

static void atexit_1(void)
{
    printf("atexit 1 (registered first by main, runs last)\n");
}

static void atexit_2(void)
{
    printf("atexit 2 (registered second by main)\n");
}

static void atexit_3(void)
{
    printf("atexit 3 (registered by a thread, runs first)\n");
}

static void *registers(void *arg)
{
    usleep(1000);
    atexit(atexit_3);
    return NULL;
}

static int mode_atexit(void)
{
    atexit(atexit_1);
    atexit(atexit_2);
    join(spawn(registers, NULL));
    printf("main returns 0\n");
    return 0;
}

/* ---- pthread-exit-main -------------------------------------------------- */

static void *outlives_main(void *arg)
{
    usleep(100000);
    printf("the thread still runs after main called pthread_exit\n");
    usleep(1000);
    printf("the thread returns\n");
    return NULL;
}

static int mode_pthread_exit_main(void)
{
    atexit(say_atexit);
    spawn(outlives_main, NULL);
    printf("main calls pthread_exit\n");
    fflush(stdout);
    pthread_exit(NULL);
}

/* ---- exit-blocked ------------------------------------------------------- */

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static sem_t sem;
static pthread_barrier_t bar;

static void *on_mutex(void *arg)
{
    pthread_mutex_lock(&held);
    printf("FAIL - got the held mutex\n");
    return NULL;
}

static void *on_cond(void *arg)
{
    pthread_mutex_lock(&cv_lock);
    for (;;)
        pthread_cond_wait(&cv, &cv_lock);
    return NULL;
}

static void *on_sem(void *arg)
{
    sem_wait(&sem);
    printf("FAIL - sem_wait returned\n");
    return NULL;
}

static void *on_barrier(void *arg)
{
    pthread_barrier_wait(&bar);
    printf("FAIL - the barrier opened\n");
    return NULL;
}

static void *on_sleep(void *arg)
{
    sleep(100);
    printf("FAIL - the sleep ended\n");
    return NULL;
}

static void *on_join(void *arg)
{
    join(*(pthread_t *)arg);
    printf("FAIL - the join returned\n");
    return NULL;
}

static int mode_exit_blocked(void)
{
    pthread_mutex_lock(&held);
    sem_init(&sem, 0, 0);
    pthread_barrier_init(&bar, NULL, 3);
    spawn(on_mutex, NULL);
    spawn(on_mutex, NULL);
    spawn(on_cond, NULL);
    spawn(on_cond, NULL);
    spawn(on_sem, NULL);
    spawn(on_barrier, NULL);
    spawn(on_barrier, NULL);
    static pthread_t reader;
    reader = spawn(blocked_reader, NULL);
    spawn(on_sleep, NULL);
    spawn(on_join, &reader);
    usleep(20000);
    printf("main returns 7 with 10 threads blocked\n");
    return 7;
}

/* ---- raise -------------------------------------------------------------- */

static void *raiser(void *arg)
{
    usleep(1000);
    printf("a thread raises SIGTERM\n");
    fflush(stdout);
    raise(SIGTERM);
    printf("FAIL - survived SIGTERM\n");
    return NULL;
}

static int mode_raise(void)
{
    join(spawn(raiser, NULL));
    printf("FAIL - join returned\n");
    return 1;
}

int main(int argc, char **argv)
{
    watchdog(10);
    if (pipe(never_written) != 0) {
        printf("FAIL - pipe: %s\n", strerror(errno));
        return 1;
    }
    const char *mode = argc > 1 ? argv[1] : "return";
    phase = mode;
    printf("mode %s\n", mode);
    if (strcmp(mode, "return") == 0)
        return mode_return();
    if (strcmp(mode, "exit-thread") == 0)
        return mode_exit_thread();
    if (strcmp(mode, "atexit") == 0)
        return mode_atexit();
    if (strcmp(mode, "pthread-exit-main") == 0)
        return mode_pthread_exit_main();
    if (strcmp(mode, "exit-blocked") == 0)
        return mode_exit_blocked();
    if (strcmp(mode, "raise") == 0)
        return mode_raise();
    printf("FAIL - unknown mode %s\n", mode);
    return 1;
}
