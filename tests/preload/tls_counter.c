/*
 * tls_counter: a __thread counter incremented across blocking calls.
 * Each of 8 threads increments its own `__thread long` 1,000 times and
 * sleeps (usleep) every 100 increments; natively each ends at 1,000.
 *
 * Under LD_PRELOAD=libunblock.so the threads are coroutines that share
 * a few OS threads, and each must still see its own counter
 * (runtime/tls.c).  An ordinary program: run natively and under the
 * preload by tests/test_preload.c, which compares the output.
 *
 * Prints each thread's final value in thread order; exit status 0 when
 * all are 1,000, 1 otherwise, 2 on the watchdog.
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

#include "check.h"


#define NTHREADS 8

static __thread long counter;
static long finals[NTHREADS];

static void *count(void *arg)
{
    long id = (long)arg;
    for (int i = 1; i <= 1000; i++) {
        counter++;
        if (i % 100 == 0)
            usleep(100);
    }
    finals[id] = counter;
    return NULL;
}

int main(void)
{
    watchdog(10);
    phase = "tls counter";
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        t[i] = spawn(count, (void *)i);
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
    for (int i = 0; i < NTHREADS; i++)
        check(finals[i] == 1000, "thread %d: its __thread counter reads %ld", i,
              finals[i]);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
