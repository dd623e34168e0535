/*
 * sleep_order: threads sleeping different lengths wake in order.
 *
 *   - 8 threads, started in a scrambled order, sleep until 20, 60, 100,
 *     ... ms after a common start (ten times that under memcheck) with
 *     nanosleep, usleep, clock_nanosleep (relative and absolute) and
 *     sleep-free poll timeouts in turn; the order in which they record
 *     their wake-ups follows the durations;
 *   - each sleep lasts at least its duration;
 *   - meanwhile the main thread computes (a busy loop of about 30 ms):
 *     the sleepers do not depend on it yielding.
 */
#define _GNU_SOURCE
#include <poll.h>

#include "diff.h"

#define N 8

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static int order[N], norder, short_sleeps;
static double start;

static void *sleeper(void *arg)
{
    int id = (int)(long)arg;
    /* Due 20 + 40 * id ms after the common start, whenever this thread
     * began: starting eight threads took over 40 ms under ThreadSanitizer
     * on a slow host, and the last started then woke after the first. */
    double t0 = now_ms();
    long ms = (20 + 40L * id) * diff_slow() - (long)(t0 - start);
    if (ms < 1)
        ms = 1;
    switch (id % 5) {
    case 0:
        nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
        break;
    case 1: usleep((useconds_t)(ms * 1000)); break;
    case 2:
        clock_nanosleep(CLOCK_MONOTONIC, 0,
                        &(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
        break;
    case 3: {
        struct timespec dl = ts_in(CLOCK_MONOTONIC, ms);
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);
        break;
    }
    case 4: poll(NULL, 0, (int)ms); break;
    }
    double took = now_ms() - t0;
    pthread_mutex_lock(&m);
    order[norder++] = id;
    if (took < (double)ms - 1)
        short_sleeps++;
    pthread_mutex_unlock(&m);
    return NULL;
}

int main(void)
{
    diff_start(1);
    static const int start_order[N] = {5, 2, 7, 0, 3, 6, 1, 4};
    pthread_t t[N];
    start = now_ms();
    for (int i = 0; i < N; i++)
        t[i] = spawn(sleeper, (void *)(long)start_order[i]);
    volatile unsigned long x = 0;
    double t0 = now_ms();
    while (now_ms() - t0 < 30)
        x++;
    for (int i = 0; i < N; i++)
        join(t[i]);
    printf("wake-up order:");
    for (int i = 0; i < norder; i++)
        printf(" %d", order[i]);
    printf("\nsleeps shorter than asked: %d\n", short_sleeps);
    return 0;
}
