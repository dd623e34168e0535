/*
 * bench_sleep_rss: resident memory per coroutine parked in sleep().
 *
 * usage: bench_sleep_rss [COROUTINES]   (default 100000)
 *
 * The same shape as bench/baseline/gosleep.go: with the runtime started,
 * read VmRSS; a driver coroutine spawns COROUTINES detached coroutines that
 * each bump a counter and sleep(60); wait until every one of them has parked
 * (the counter and unb_stats().parks), let things settle for 100 ms, read
 * VmRSS again and report
 *   unb_sleep_rss <bytes> B/coroutine
 * on stdout, then _exit(0) without waiting for the sleepers.
 *
 * On stderr, for the README: the page-table share (VmPTE delta / n; the
 * kernel does not count page tables in VmRSS) and how many of the stacks
 * have no guard page (unb_stats().stacks_unguarded: past the VMA budget
 * from vm.max_map_count, stacks are mapped without one).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <unblock.h>

/* Longer than the deadline, so no sleeper wakes (and frees its stack)
 * before the reading, however slowly a loaded machine spawns them. */
#define SLEEP_SECONDS 60
#define DEADLINE_NS (30 * 1000000000ull) /* for all to park, as gosleep */
#define SETTLE_US (100 * 1000)

/* Sleepers that have started and that have woken again: the reading is
 * valid only if none had woken (and freed its stack) by then. */
static _Atomic long started, woke;
static long n_coros = 100000;
static int spawn_err;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A "Vm...:  <n> kB" field of /proc/self/status in bytes, or -1. */
static long long status_bytes(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    size_t len = strlen(field);
    long long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) != 0 || line[len] != ':')
            continue;
        char unit[8];
        long long kb;
        if (sscanf(line + len + 1, "%lld %7s", &kb, unit) == 2 &&
            strcmp(unit, "kB") == 0)
            v = kb * 1024;
        break;
    }
    fclose(f);
    return v;
}

static void *nothing(void *arg)
{
    return arg;
}

static void *sleeper(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
    sleep(SLEEP_SECONDS);
    atomic_fetch_add_explicit(&woke, 1, memory_order_relaxed);
    return NULL;
}

/* Spawns the sleepers from a coroutine, as gosleep does from a goroutine. */
static void *driver(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_coros; i++) {
        unb_coro_t *co = unb_spawn(sleeper, NULL);
        if (!co) {
            spawn_err = errno;
            return NULL;
        }
        unb_detach(co);
    }
    return NULL;
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_sleep_rss: %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "usage: %s [COROUTINES]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        char *end;
        errno = 0;
        n_coros = strtol(argv[1], &end, 10);
        if (errno || *end || end == argv[1] || n_coros < 1) {
            fprintf(stderr, "bench_sleep_rss: bad coroutine count '%s'\n", argv[1]);
            return 2;
        }
    }

    /* Start the runtime first: its workers and loops are not per-coroutine
     * memory (Go's runtime is up before gosleep's first reading, too). */
    unb_coro_t *co = unb_spawn(nothing, NULL);
    if (!co || unb_join(co, NULL) != 0)
        return fail("cannot start the runtime");

    unb_stats_t st0, st;
    unb_stats(&st0);
    long long rss0 = status_bytes("VmRSS"), pte0 = status_bytes("VmPTE");
    if (rss0 < 0 || pte0 < 0)
        return fail("no VmRSS/VmPTE in /proc/self/status");

    uint64_t t0 = now_ns();
    co = unb_spawn(driver, NULL);
    if (!co || unb_join(co, NULL) != 0)
        return fail("cannot spawn the driver");
    if (spawn_err) {
        fprintf(stderr, "bench_sleep_rss: unb_spawn failed after %ld coroutines: %s\n",
                (long)atomic_load(&started), strerror(spawn_err));
        _exit(1);
    }

    /* Every sleeper has parked once started == n and the runtime has
     * counted n more parks (the counter is bumped just before sleep). */
    for (;;) {
        unb_stats(&st);
        if (atomic_load(&started) == n_coros &&
            st.parks - st0.parks >= (uint64_t)n_coros)
            break;
        if (atomic_load(&woke) != 0 || now_ns() - t0 > DEADLINE_NS) {
            fprintf(stderr,
                    "bench_sleep_rss: only %ld of %ld coroutines started, "
                    "%llu parked after %.1f s (and %ld woke again)\n",
                    (long)atomic_load(&started), n_coros,
                    (unsigned long long)(st.parks - st0.parks),
                    (double)(now_ns() - t0) / 1e9, (long)atomic_load(&woke));
            _exit(1);
        }
        usleep(1000); /* a plain thread: the real usleep */
    }
    double parked_s = (double)(now_ns() - t0) / 1e9;
    usleep(SETTLE_US);

    long long rss1 = status_bytes("VmRSS"), pte1 = status_bytes("VmPTE");
    unb_stats(&st);
    if (atomic_load(&woke) != 0) {
        fprintf(stderr,
                "bench_sleep_rss: measured too late: %ld sleepers had woken "
                "(spawning took %.1f s of their %d s)\n",
                (long)atomic_load(&woke), parked_s, SLEEP_SECONDS);
        _exit(1);
    }
    if (rss1 < 0 || pte1 < 0) {
        fprintf(stderr, "bench_sleep_rss: no VmRSS/VmPTE in /proc/self/status\n");
        _exit(1);
    }

    fprintf(stderr,
            "bench_sleep_rss: %ld coroutines parked in %.2f s on %llu workers; "
            "VmRSS +%lld kB (%.0f B/coroutine); page tables (VmPTE, not in VmRSS) "
            "+%lld kB (%.0f B/coroutine); stacks mapped %llu, unguarded %llu\n",
            n_coros, parked_s, (unsigned long long)st.workers, (rss1 - rss0) / 1024,
            (double)(rss1 - rss0) / (double)n_coros, (pte1 - pte0) / 1024,
            (double)(pte1 - pte0) / (double)n_coros,
            (unsigned long long)st.stacks_mapped,
            (unsigned long long)st.stacks_unguarded);
    printf("unb_sleep_rss %.0f B/coroutine\n", (double)(rss1 - rss0) / (double)n_coros);
    fflush(stdout);
    _exit(0);
}
