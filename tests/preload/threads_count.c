/*
 * threads_count: the scale claim.  200 threads each block in read() on a
 * socketpair of their own; when all 200 are about to block, main writes
 * "ready" to stderr and reads stdin until a byte or end of file (the
 * runner, tests/test_preload.c, counts the process's OS threads in
 * /proc/PID/status meanwhile: natively 201 or more, under the preload at
 * most UNBLOCK_WORKERS + 5).  Then main sends each thread its number, each
 * thread answers with a function of it, and main prints the checksum.
 *
 * Run by hand it waits for a line on stdin (or </dev/null).  Exit status 0
 * when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


#define NTHREADS 200

static int pairs[NTHREADS][2];
static atomic_int about_to_read;

static void *blocker(void *arg)
{
    long i = (long)arg;
    int fd = pairs[i][1];
    atomic_fetch_add(&about_to_read, 1);
    long v;
    ssize_t r = read(fd, &v, sizeof v); /* blocks until main writes */
    if (r != (ssize_t)sizeof v)
        return (void *)-1L;
    long answer = v * v + 1;
    if (write(fd, &answer, sizeof answer) != (ssize_t)sizeof answer)
        return (void *)-1L;
    return (void *)0L;
}

int main(void)
{
    watchdog(10);
    phase = "threads_count";
    for (int i = 0; i < NTHREADS; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]) != 0) {
            printf("FAIL - socketpair: %s\n", strerror(errno));
            return 1;
        }
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        t[i] = spawn(blocker, (void *)i);
    for (int n = 0; n < 10000 && atomic_load(&about_to_read) < NTHREADS; n++)
        usleep(1000);
    check(atomic_load(&about_to_read) == NTHREADS,
          "%d threads started and block in read", NTHREADS);

    fputs("ready\n", stderr);
    fflush(stderr);
    char c;
    ssize_t r;
    while ((r = read(0, &c, 1)) < 0 && errno == EINTR)
        ;

    long sum = 0;
    int bad = 0;
    for (long i = 0; i < NTHREADS; i++)
        if (write(pairs[i][0], &i, sizeof i) != (ssize_t)sizeof i)
            bad++;
    for (long i = 0; i < NTHREADS; i++) {
        long a;
        if (read(pairs[i][0], &a, sizeof a) == (ssize_t)sizeof a)
            sum += a;
        else
            bad++;
    }
    for (int i = 0; i < NTHREADS; i++) {
        if (join(t[i]) != NULL)
            bad++;
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
    long want = 0;
    for (long i = 0; i < NTHREADS; i++)
        want += i * i + 1;
    if (!check(bad == 0 && sum == want, "every thread answered: checksum %ld", want))
        detail("%d errors, sum %ld", bad, sum);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
