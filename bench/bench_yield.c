/*
 * bench_yield: cost of one unb_yield between two coroutines on one worker.
 *
 * usage: bench_yield [TOTAL_YIELDS]   (default 5000000, split evenly over
 * the two coroutines)
 *
 * The same shape as bench/baseline/gosched.go with GOMAXPROCS=1: a driver
 * coroutine (Go's main goroutine) starts the clock, spawns two coroutines
 * that each call unb_yield TOTAL/2 times, joins both (wg.Wait) and stops
 * the clock.  While the driver waits the two yielders alternate.  Total
 * time / total yields, best of 3 runs, is reported as
 *   unb_yield <ns> ns/yield
 * on stdout.
 *
 * UNBLOCK_WORKERS is set to 1 before the runtime starts unless it is
 * already set (then the given value is used, and a warning goes to stderr
 * if it is not 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unblock.h>

#define RUNS 3

struct run {
    long per_head; /* yields per coroutine */
    int err;       /* errno of a failed spawn or join, or 0 */
    double ns;     /* ns per yield */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *yielder(void *arg)
{
    long n = *(const long *)arg;
    for (long i = 0; i < n; i++)
        unb_yield();
    return NULL;
}

/* One timed run, inside a coroutine as Go's oneRun is inside a goroutine. */
static void *driver(void *arg)
{
    struct run *r = arg;
    uint64_t t0 = now_ns();
    unb_coro_t *a = unb_spawn(yielder, &r->per_head);
    if (!a) {
        r->err = errno;
        return NULL;
    }
    unb_coro_t *b = unb_spawn(yielder, &r->per_head);
    if (!b) {
        r->err = errno;
        unb_join(a, NULL);
        return NULL;
    }
    int e1 = unb_join(a, NULL);
    int e2 = unb_join(b, NULL);
    uint64_t t1 = now_ns();
    r->err = e1 ? e1 : e2;
    r->ns = (double)(t1 - t0) / (2.0 * (double)r->per_head);
    return NULL;
}

int main(int argc, char **argv)
{
    long total = 5000000;
    if (argc > 2) {
        fprintf(stderr, "usage: %s [TOTAL_YIELDS]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        char *end;
        errno = 0;
        total = strtol(argv[1], &end, 10);
        if (errno || *end || end == argv[1] || total < 2) {
            fprintf(stderr, "bench_yield: bad yield count '%s'\n", argv[1]);
            return 2;
        }
    }
    const char *given = getenv("UNBLOCK_WORKERS");
    if (!given)
        setenv("UNBLOCK_WORKERS", "1", 1);

    double best = 0.0;
    for (int i = 0; i < RUNS; i++) {
        struct run r = {.per_head = total / 2};
        unb_coro_t *d = unb_spawn(driver, &r);
        if (!d) {
            fprintf(stderr, "bench_yield: unb_spawn: %s\n", strerror(errno));
            return 1;
        }
        int e = unb_join(d, NULL);
        if (e == 0)
            e = r.err;
        if (e != 0) {
            fprintf(stderr, "bench_yield: %s\n", strerror(e));
            return 1;
        }
        if (i == 0 || r.ns < best)
            best = r.ns;
    }

    unb_stats_t st;
    unb_stats(&st);
    if (st.workers != 1)
        fprintf(stderr,
                "bench_yield: warning: %llu workers (UNBLOCK_WORKERS=%s), "
                "not the single worker this benchmark is meant for\n",
                (unsigned long long)st.workers, given ? given : "1");
    printf("unb_yield %.2f ns/yield\n", best);
    return 0;
}
