/*
 * threads: an ordinary pthread program, never linked with libunblock, for
 * tests/test_launcher.sh.  Starts N threads (argv[1], default 10), each of
 * which sleeps 1 ms and returns its number; joins them all and prints the
 * sum of the numbers.  Exit status 0 when every call succeeded, 1 otherwise.
 * Under the preload, main and the N threads are N + 1 coroutines, which
 * UNBLOCK_STATS=1 counts.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *thread_main(void *arg)
{
    usleep(1000);
    return arg;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10;
    if (n < 0 || n > 10000) {
        fprintf(stderr, "threads: bad count %s\n", argv[1]);
        return 1;
    }
    pthread_t *t = calloc((size_t)n + 1, sizeof *t);
    if (!t)
        return 1;
    for (long i = 0; i < n; i++) {
        int e = pthread_create(&t[i], NULL, thread_main, (void *)i);
        if (e != 0) {
            fprintf(stderr, "threads: pthread_create: %s\n", strerror(e));
            return 1;
        }
    }
    long sum = 0;
    for (long i = 0; i < n; i++) {
        void *r;
        int e = pthread_join(t[i], &r);
        if (e != 0) {
            fprintf(stderr, "threads: pthread_join: %s\n", strerror(e));
            return 1;
        }
        sum += (long)r;
    }
    printf("%ld\n", sum);
    free(t);
    return 0;
}
