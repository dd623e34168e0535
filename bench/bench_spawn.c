/*
 * bench_spawn: cost of spawning, finishing and joining coroutines, in
 * batches of 1000.
 *
 * usage: bench_spawn [TOTAL_COROUTINES]   (default 1000000)
 *
 * The same shape as bench/baseline/gospawn.go: a driver coroutine (Go's
 * main goroutine) spawns a batch of coroutines, each of which computes a
 * value from its batch and index and stores it in a shared array; the
 * driver joins all of them (wg.Wait), verifies the array, and goes on to
 * the next batch.  Workers are left at the default (the CPUs available,
 * or UNBLOCK_WORKERS), as gospawn leaves GOMAXPROCS at its default.
 * Total time / coroutines, best of 3 runs, is reported as
 *   unb_spawn <ns> ns/spawn
 * on stdout.
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
#define BATCH 1000

struct run {
    long total;
    int err;   /* errno of a failed spawn or join, or 0 */
    long bad;  /* batch * BATCH + index of a wrong result, or -1 */
    double ns; /* ns per coroutine */
};

static long results[BATCH];
static unb_coro_t *handles[BATCH];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The trivial per-coroutine computation, as gospawn's work(). */
static long work(long batch, long i)
{
    return i * i + 7 * batch + 1;
}

static void *child(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    long batch = (long)(v >> 32), idx = (long)(v & 0xffffffffu);
    results[idx] = work(batch, idx);
    return NULL;
}

/* One timed run, inside a coroutine as Go's oneRun is inside a goroutine. */
static void *driver(void *arg)
{
    struct run *r = arg;
    r->bad = -1;
    uint64_t t0 = now_ns();
    for (long done = 0, batch = 0; done < r->total; batch++) {
        long n = r->total - done;
        if (n > BATCH)
            n = BATCH;
        long spawned = 0;
        for (; spawned < n; spawned++) {
            uintptr_t v = (uintptr_t)batch << 32 | (uintptr_t)spawned;
            handles[spawned] = unb_spawn(child, (void *)v);
            if (!handles[spawned]) {
                r->err = errno;
                break;
            }
        }
        for (long i = 0; i < spawned; i++) {
            int e = unb_join(handles[i], NULL);
            if (e != 0 && r->err == 0)
                r->err = e;
        }
        if (r->err != 0)
            return NULL;
        for (long i = 0; i < n; i++) {
            if (results[i] != work(batch, i)) {
                r->bad = batch * BATCH + i;
                return NULL;
            }
        }
        done += n;
    }
    uint64_t t1 = now_ns();
    r->ns = (double)(t1 - t0) / (double)r->total;
    return NULL;
}

int main(int argc, char **argv)
{
    long total = 1000000;
    if (argc > 2) {
        fprintf(stderr, "usage: %s [TOTAL_COROUTINES]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        char *end;
        errno = 0;
        total = strtol(argv[1], &end, 10);
        if (errno || *end || end == argv[1] || total < 1 || total / BATCH > INT32_MAX) {
            fprintf(stderr, "bench_spawn: bad coroutine count '%s'\n", argv[1]);
            return 2;
        }
    }

    double best = 0.0;
    for (int i = 0; i < RUNS; i++) {
        struct run r = {.total = total};
        unb_coro_t *d = unb_spawn(driver, &r);
        if (!d) {
            fprintf(stderr, "bench_spawn: unb_spawn: %s\n", strerror(errno));
            return 1;
        }
        int e = unb_join(d, NULL);
        if (e == 0)
            e = r.err;
        if (e != 0) {
            fprintf(stderr, "bench_spawn: %s\n", strerror(e));
            return 1;
        }
        if (r.bad >= 0) {
            long b = r.bad / BATCH, idx = r.bad % BATCH;
            fprintf(stderr,
                    "bench_spawn: verification failed: batch %ld index %ld: "
                    "got %ld want %ld\n",
                    b, idx, results[idx], work(b, idx));
            return 1;
        }
        if (i == 0 || r.ns < best)
            best = r.ns;
    }
    printf("unb_spawn %.2f ns/spawn\n", best);
    return 0;
}
