/*
 * test_sleep: the sleep hooks inside coroutines.
 *
 *   - 10,000 coroutines sleeping 200 ms at once take about one sleep, and
 *     none wakes early;
 *   - nanosleep, clock_nanosleep (relative and absolute, monotonic and
 *     realtime), sleep and usleep never return early; invalid arguments
 *     and clocks the runtime does not handle give what the native calls
 *     give; clock_nanosleep never touches errno and a successful sleep()
 *     leaves it alone, also when the coroutine resumes on another worker;
 *   - EINTR: tests/helpers/sleeper.c, run natively and (the same code)
 *     inside a coroutine, prints the same lines;
 *   - one signal interrupts one parked coroutine, the one parked longest,
 *     and a signal taken by a running thread (a plain thread, or a
 *     coroutine that raises it) interrupts none (runtime/intr.h).
 *
 * The main thread blocks SIGALRM once the workers are running (they keep
 * it unblocked), so a process-directed SIGALRM lands on a worker: taken by
 * main, which is no worker, it would interrupt no coroutine, as a signal
 * taken by a thread interrupts no other thread's sleep.
 */
#define _GNU_SOURCE
#include "tap.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <unblock.h>

#define SLEEPER_NO_MAIN
#include "helpers/sleeper.c"

extern char **environ;

#define NSEC 1000000000L

static double ts_s(const struct timespec *ts)
{
    return (double)ts->tv_sec + (double)ts->tv_nsec * 1e-9;
}

static double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts_s(&ts);
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* a - b in nanoseconds */
static long long ts_diff_ns(struct timespec a, struct timespec b)
{
    return (long long)(a.tv_sec - b.tv_sec) * NSEC + (a.tv_nsec - b.tv_nsec);
}

static struct timespec ts_add_ns(struct timespec a, long long ns)
{
    long long t = (long long)a.tv_nsec + ns;
    a.tv_sec += (time_t)(t / NSEC);
    a.tv_nsec = (long)(t % NSEC);
    if (a.tv_nsec < 0) {
        a.tv_sec--;
        a.tv_nsec += NSEC;
    }
    return a;
}

static struct timespec ts_now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts;
}

/* Sleeps the calling plain thread (the hooks pass through outside a
 * coroutine). */
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Runs fn(arg) on a new plain thread and waits for it. */
static void on_plain_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0)
        BAIL("pthread_create failed");
    pthread_join(t, NULL);
}

static int wait_flag(_Atomic int *flag, double limit_s)
{
    double end = now_s() + limit_s;
    while (!atomic_load(flag)) {
        if (now_s() > end)
            return 0;
        sleep_ms(1);
    }
    return 1;
}

static void *noop(void *arg)
{
    return arg;
}

/* ---- 10,000 coroutines sleep at once ------------------------------------ */

#define MANY 10000
#define MANY_US 200000

struct many {
    double elapsed;
    int ret;
};

static void *many_sleeper(void *arg)
{
    struct many *m = arg;
    double t0 = now_s();
    m->ret = usleep(MANY_US);
    m->elapsed = now_s() - t0;
    return NULL;
}

static void test_many_sleepers(void)
{
    if (under_tool("tsan")) {
        static const char *const names[] = {
            "usleep(200 ms) returned 0 in all %d coroutines",
            "no usleep(200 ms) of %d concurrent coroutines returned early",
            "%d coroutines sleeping 200 ms at once take about one sleep"};
        for (int i = 0; i < 3; i++)
            skip("ThreadSanitizer keeps state of its own for each live coroutine (a fiber); with 10,000 alive at once it runs out of memory mappings (vm.max_map_count) and dies", names[i], MANY);
        return;
    }
    struct many *m = calloc(MANY, sizeof *m);
    unb_coro_t **h = calloc(MANY, sizeof *h);
    if (!m || !h)
        BAIL("out of memory");
    double t0 = now_s();
    for (int i = 0; i < MANY; i++)
        h[i] = spawn(many_sleeper, &m[i]);
    for (int i = 0; i < MANY; i++)
        join(h[i]);
    double total = now_s() - t0;
    int failed = 0;
    double min = 1e9, max = 0;
    for (int i = 0; i < MANY; i++) {
        failed += m[i].ret != 0;
        if (m[i].elapsed < min)
            min = m[i].elapsed;
        if (m[i].elapsed > max)
            max = m[i].elapsed;
    }
    free(m);
    free(h);
    note("%d coroutines x usleep(200 ms), spawned from main: %.3f s in all; "
         "each slept %.4f..%.4f s", MANY, total, min, max);
    is_int(failed, 0, "usleep(200 ms) returned 0 in all %d coroutines", MANY);
    cmp_ok(min, >=, MANY_US * 1e-6,
           "no usleep(200 ms) of %d concurrent coroutines returned early", MANY);
    /* Serially they would take MANY x 200 ms (2000 s): the bound is
     * liveness, scaled for a tool (memcheck spawns 10,000 in ~2.5 s). */
    cmp_ok(total, <, 2.0 * test_slow(),
           "%d coroutines sleeping 200 ms at once take about one sleep, not %d",
           MANY, MANY);
}

/* ---- sleeps never return early -------------------------------------------- */

enum kind {
    K_NANOSLEEP,
    K_USLEEP,
    K_SLEEP,
    K_MONO_REL,
    K_MONO_ABS,
    K_REAL_REL,
    K_REAL_ABS,
    K_BOOT_REL,
    K_ZERO,
    NKINDS
};

static const char *const kind_name[NKINDS] = {
    "nanosleep(150 ms)",
    "usleep(150 ms)",
    "sleep(1)",
    "clock_nanosleep(MONOTONIC, 150 ms)",
    "clock_nanosleep(MONOTONIC, TIMER_ABSTIME, now+150 ms)",
    "clock_nanosleep(REALTIME, 150 ms)",
    "clock_nanosleep(REALTIME, TIMER_ABSTIME, now+150 ms)",
    "clock_nanosleep(BOOTTIME, 150 ms)",
    "nanosleep(0)",
};

struct timed {
    enum kind kind;
    int ret, err;
    int errno_before;   /* set before the call, for sleep() */
    long long early_ns; /* > 0: by how much it returned early */
    long long late_ns;  /* how long after the deadline it returned */
};

#define SHORT_NS (150 * 1000000LL)

static void *timed_sleep(void *arg)
{
    struct timed *t = arg;
    struct timespec req = {0, SHORT_NS}, rem = {0, 0}, dl;
    clockid_t clock = CLOCK_MONOTONIC;
    long long want = SHORT_NS;
    struct timespec t0 = ts_now(CLOCK_MONOTONIC);
    sleeper_set_errno(t->errno_before);
    switch (t->kind) {
    case K_NANOSLEEP:
        t->ret = nanosleep(&req, &rem);
        break;
    case K_USLEEP:
        t->ret = usleep((useconds_t)(SHORT_NS / 1000));
        break;
    case K_SLEEP:
        want = NSEC;
        t->ret = (int)sleep(1);
        break;
    case K_MONO_REL:
        t->ret = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
        break;
    case K_MONO_ABS:
        dl = ts_add_ns(t0, SHORT_NS);
        t->ret = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, &rem);
        break;
    case K_REAL_REL:
        t->ret = clock_nanosleep(CLOCK_REALTIME, 0, &req, &rem);
        break;
    case K_REAL_ABS:
        clock = CLOCK_REALTIME;
        t0 = ts_now(CLOCK_REALTIME);
        dl = ts_add_ns(t0, SHORT_NS);
        t->ret = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &dl, &rem);
        break;
    case K_BOOT_REL:
        t->ret = clock_nanosleep(CLOCK_BOOTTIME, 0, &req, &rem);
        break;
    case K_ZERO:
        want = 0;
        req.tv_nsec = 0;
        t->ret = nanosleep(&req, &rem);
        break;
    default:
        break;
    }
    t->err = sleeper_get_errno();
    long long slept = ts_diff_ns(ts_now(clock), t0);
    t->early_ns = want - slept;
    t->late_ns = slept - want;
    return NULL;
}

/* Many short sleeps of varied lengths: none may end early. */
struct series {
    int index;
    int n, failed, early;
    long long min_margin_ns;
};

#define SERIES 4
#define SERIES_SLEEPS 100

static void *sleep_series(void *arg)
{
    struct series *s = arg;
    s->min_margin_ns = 1LL << 62;
    for (int i = 0; i < SERIES_SLEEPS; i++) {
        /* 1 ms to ~4.6 ms, odd microseconds and nanoseconds */
        long long ns = 1000000LL + (long long)((i * 37 + s->index * 911) % 3600) * 1000 +
                       (i * 7919) % 1000;
        struct timespec req = {0, (long)ns};
        struct timespec t0 = ts_now(CLOCK_MONOTONIC);
        int rc = i % 2 ? nanosleep(&req, NULL)
                       : clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
        long long margin = ts_diff_ns(ts_now(CLOCK_MONOTONIC), t0) - ns;
        s->n++;
        s->failed += rc != 0;
        s->early += margin < 0;
        if (margin < s->min_margin_ns)
            s->min_margin_ns = margin;
    }
    return NULL;
}

/* ---- sub-millisecond sleeps ------------------------------------------ */

#define SHORT_US 200
#define SHORT_N 101

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *short_sleeps(void *arg)
{
    double *d = arg;
    for (int i = 0; i < SHORT_N; i++) {
        double t0 = now_s();
        usleep(SHORT_US);
        d[i] = now_s() - t0;
    }
    return NULL;
}

/* Does the kernel take epoll_pwait2 (Linux 5.11; valgrind 3.19 does not
 * know the call and answers ENOSYS)?  An invalid descriptor tells. */
static bool have_epoll_pwait2(void)
{
    struct timespec ts = {0, 0};
    return syscall(SYS_epoll_pwait2, -1, NULL, 1, &ts, NULL, 0) < 0 && errno != ENOSYS;
}

/* libev waits in whole milliseconds; the runtime waits for the soonest
 * deadline to the nanosecond (sched.h, "Timers finer than libev's poll"),
 * with epoll_pwait2.  The median, so that a loaded machine's odd slow
 * wake-up does not count; natively it is about 100 us over.  Without
 * epoll_pwait2 the README promises libev's milliseconds: up to 1 ms late,
 * so a median under 2 ms (a sleep a whole millisecond later than that is
 * a regression still). */
static void test_short_sleeps(void)
{
    double d[SHORT_N];
    join(spawn(short_sleeps, d));
    qsort(d, SHORT_N, sizeof d[0], cmp_double);
    double med = d[SHORT_N / 2] * 1e6;
    bool precise = have_epoll_pwait2();
    note("usleep(%d) in a coroutine: median %.0f us, fastest %.0f us%s", SHORT_US, med,
         d[0] * 1e6, precise ? "" : " (no epoll_pwait2: libev's milliseconds)");
    ok(d[0] * 1e6 >= SHORT_US, "usleep(%d) never returns early", SHORT_US);
    if (precise)
        ok(med < 800, "usleep(%d) lasts well under a millisecond (median %.0f us, < 800)",
           SHORT_US, med);
    else
        ok(med < 2000,
           "usleep(%d) without epoll_pwait2 lasts under libev's millisecond and one "
           "(median %.0f us, < 2000)",
           SHORT_US, med);
}

static void test_never_early(void)
{
    struct timed t[NKINDS];
    unb_coro_t *h[NKINDS];
    struct series s[SERIES];
    unb_coro_t *hs[SERIES];
    /* A distinct errno in each: they share worker threads. */
    for (int k = 0; k < NKINDS; k++) {
        t[k] = (struct timed){.kind = (enum kind)k, .errno_before = 1000 + k};
        h[k] = spawn(timed_sleep, &t[k]);
    }
    for (int i = 0; i < SERIES; i++) {
        s[i] = (struct series){.index = i};
        hs[i] = spawn(sleep_series, &s[i]);
    }
    for (int k = 0; k < NKINDS; k++)
        join(h[k]);
    for (int i = 0; i < SERIES; i++)
        join(hs[i]);

    for (int k = 0; k < NKINDS; k++) {
        is_int(t[k].ret, 0, "%s in a coroutine returns 0", kind_name[k]);
        cmp_ok(t[k].early_ns, <=, 0, "%s in a coroutine does not return early",
               kind_name[k]);
        note("%s: returned %.3f ms after its deadline; errno %d before, %d after",
             kind_name[k], (double)t[k].late_ns * 1e-6, t[k].errno_before, t[k].err);
    }
    is_int(t[K_SLEEP].err, t[K_SLEEP].errno_before,
           "a successful sleep() in a coroutine leaves errno as it was");
    for (int k = K_MONO_REL; k <= K_BOOT_REL; k++)
        is_int(t[k].err, t[k].errno_before,
               "%s in a coroutine leaves errno untouched, whatever ran meanwhile",
               kind_name[k]);

    int n = 0, failed = 0, early = 0;
    long long min_margin = 1LL << 62;
    for (int i = 0; i < SERIES; i++) {
        n += s[i].n;
        failed += s[i].failed;
        early += s[i].early;
        if (s[i].min_margin_ns < min_margin)
            min_margin = s[i].min_margin_ns;
    }
    note("%d short sleeps (1..4.6 ms) in %d coroutines: smallest margin past the "
         "deadline %lld ns", n, SERIES, min_margin);
    is_int(failed, 0, "%d short nanosleep/clock_nanosleep calls return 0", n);
    is_int(early, 0, "none of %d short sleeps of odd lengths returns early", n);
}

/* ---- errno across a sleep that resumes on another worker ----------------- */

/*
 * A successful sleep() leaves errno as it was, also when the coroutine
 * resumes on another worker.  One worker is kept busy by a yielding
 * coroutine, so the sleepers its timers wake are often stolen by the idle
 * one; each sleeper sets a distinct errno, so a value restored into the
 * wrong thread shows.
 */
#define MIGRANTS 2000

struct migrant {
    int want, err;
    unsigned ret;
    pid_t tid0, tid1;
};

static _Atomic int hog_stop, hog_running;

static void *hog(void *arg)
{
    (void)arg;
    atomic_store(&hog_running, 1);
    while (!atomic_load(&hog_stop))
        unb_yield();
    return NULL;
}

static void *migrant(void *arg)
{
    struct migrant *m = arg;
    m->tid0 = gettid();
    sleeper_set_errno(m->want);
    m->ret = sleep(1);
    m->err = sleeper_get_errno();
    m->tid1 = gettid();
    return NULL;
}

/* One round; returns how many resumed on another worker, adds to *lost
 * and *failed. */
static int migrant_round(int *lost, int *failed, int *stayed_lost)
{
    struct migrant *m = calloc(MIGRANTS, sizeof *m);
    unb_coro_t **h = calloc(MIGRANTS, sizeof *h);
    if (!m || !h)
        BAIL("out of memory");
    atomic_store(&hog_stop, 0);
    atomic_store(&hog_running, 0);
    unb_coro_t *g = spawn(hog, NULL);
    if (!wait_flag(&hog_running, 10))
        BAIL("the busy coroutine did not start within 10 s");
    for (int i = 0; i < MIGRANTS; i++) {
        m[i].want = 1000 + i;
        h[i] = spawn(migrant, &m[i]);
        if (i % 100 == 99)
            sleep_ms(20); /* spread the deadlines over 0.4 s */
    }
    for (int i = 0; i < MIGRANTS; i++)
        join(h[i]);
    atomic_store(&hog_stop, 1);
    join(g);
    int moved = 0, moved_lost = 0, same_lost = 0;
    for (int i = 0; i < MIGRANTS; i++) {
        int l = m[i].err != m[i].want;
        *failed += m[i].ret != 0;
        if (m[i].tid0 != m[i].tid1) {
            moved++;
            moved_lost += l;
        } else {
            same_lost += l;
        }
    }
    free(m);
    free(h);
    note("%d sleep(1) calls beside a busy worker: %d resumed on another worker "
         "(%d of them lost errno), %d on the same (%d lost errno)",
         MIGRANTS, moved, moved_lost, MIGRANTS - moved, same_lost);
    *lost += moved_lost;
    *stayed_lost += same_lost;
    return moved;
}

static void test_sleep_errno_across_workers(void)
{
    int lost = 0, stayed_lost = 0, failed = 0, moved = 0, rounds = 0;
    /* Whether a sleeper is stolen is up to timing: try up to three rounds
     * for at least one that resumed elsewhere. */
    while (rounds < 3 && moved == 0) {
        moved += migrant_round(&lost, &failed, &stayed_lost);
        rounds++;
    }
    if (moved == 0)
        note("no sleeper resumed on another worker in %d rounds: the check below "
             "covers only the same-worker case", rounds);
    is_int(failed, 0, "all %d sleep(1) calls return 0", rounds * MIGRANTS);
    is_int(lost + stayed_lost, 0,
           "a successful sleep() leaves errno as it was in all %d coroutines, "
           "%d of which resumed on another worker", rounds * MIGRANTS, moved);
}

/* ---- invalid arguments and unhandled clocks, as native ------------------ */

enum bad {
    B_NS_NSEC_1E9,
    B_NS_NSEC_NEG,
    B_NS_SEC_NEG,
    B_CNS_NSEC_1E9,
    B_CNS_NSEC_NEG,
    B_CNS_ABS_NSEC_1E9,
    B_CNS_SEC_NEG,
    B_CNS_BAD_CLOCK,
    B_CNS_THREAD_CPU,
    B_CNS_THREAD_CPU_ABS,
    B_CNS_PROCESS_CPU_ABS_PAST,
    NBAD
};

static const char *const bad_name[NBAD] = {
    "nanosleep with tv_nsec = 1e9",
    "nanosleep with tv_nsec = -1",
    "nanosleep with tv_sec = -1",
    "clock_nanosleep(MONOTONIC) with tv_nsec = 1e9",
    "clock_nanosleep(MONOTONIC) with tv_nsec = -1",
    "clock_nanosleep(REALTIME, TIMER_ABSTIME) with tv_nsec = 1e9",
    "clock_nanosleep(MONOTONIC) with tv_sec = -1",
    "clock_nanosleep on clock id 12345",
    "clock_nanosleep(THREAD_CPUTIME_ID, 1 ms)",
    "clock_nanosleep(THREAD_CPUTIME_ID, TIMER_ABSTIME)",
    "clock_nanosleep(PROCESS_CPUTIME_ID, TIMER_ABSTIME, 0)",
};

/* What a call returned and what errno was after it (set to a sentinel
 * before, to see whether the call touched it). */
struct bad_results {
    int ret[NBAD], err[NBAD];
    int in_coroutine;
};

#define ERRNO_SENTINEL 4242

static void *bad_calls(void *arg)
{
    struct bad_results *r = arg;
    r->in_coroutine = unb_self() != NULL;
    for (int b = 0; b < NBAD; b++) {
        struct timespec req = {0, 1000000}, rem = {0, 0};
        int ret = -999;
        sleeper_set_errno(ERRNO_SENTINEL);
        switch ((enum bad)b) {
        case B_NS_NSEC_1E9:
            req.tv_nsec = NSEC;
            ret = nanosleep(&req, &rem);
            break;
        case B_NS_NSEC_NEG:
            req.tv_nsec = -1;
            ret = nanosleep(&req, &rem);
            break;
        case B_NS_SEC_NEG:
            req.tv_sec = -1;
            ret = nanosleep(&req, &rem);
            break;
        case B_CNS_NSEC_1E9:
            req.tv_nsec = NSEC;
            ret = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
            break;
        case B_CNS_NSEC_NEG:
            req.tv_nsec = -1;
            ret = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
            break;
        case B_CNS_ABS_NSEC_1E9:
            req = ts_now(CLOCK_REALTIME);
            req.tv_nsec = NSEC;
            ret = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &req, &rem);
            break;
        case B_CNS_SEC_NEG:
            req.tv_sec = -1;
            ret = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
            break;
        case B_CNS_BAD_CLOCK:
            ret = clock_nanosleep((clockid_t)12345, 0, &req, &rem);
            break;
        case B_CNS_THREAD_CPU:
            ret = clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &req, &rem);
            break;
        case B_CNS_THREAD_CPU_ABS:
            req = ts_now(CLOCK_THREAD_CPUTIME_ID);
            ret = clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, TIMER_ABSTIME, &req, &rem);
            break;
        case B_CNS_PROCESS_CPU_ABS_PAST:
            req = (struct timespec){0, 0};
            ret = clock_nanosleep(CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME, &req, &rem);
            break;
        case NBAD:
            break;
        }
        r->ret[b] = ret;
        r->err[b] = sleeper_get_errno();
    }
    return NULL;
}

static void test_bad_arguments(void)
{
    struct bad_results native, co;
    memset(&native, 0, sizeof native);
    memset(&co, 0, sizeof co);
    on_plain_thread(bad_calls, &native);
    join(spawn(bad_calls, &co));
    if (native.in_coroutine || !co.in_coroutine)
        BAIL("the calls did not run where intended");

    /* What native gives, stated, so the comparison is not vacuous. */
    for (int b = B_NS_NSEC_1E9; b <= B_NS_SEC_NEG; b++) {
        is_int(native.ret[b], -1, "native %s returns -1", bad_name[b]);
        is_int(native.err[b], EINVAL, "native %s sets errno to EINVAL", bad_name[b]);
    }
    for (int b = B_CNS_NSEC_1E9; b <= B_CNS_BAD_CLOCK; b++)
        is_int(native.ret[b], EINVAL, "native %s returns EINVAL", bad_name[b]);

    for (int b = 0; b < NBAD; b++) {
        note("%s: native ret %d errno %d, coroutine ret %d errno %d", bad_name[b],
             native.ret[b], native.err[b], co.ret[b], co.err[b]);
        is_int(co.ret[b], native.ret[b],
               "%s in a coroutine returns what native returns", bad_name[b]);
        is_int(co.err[b], native.err[b],
               "%s in a coroutine leaves errno as native does", bad_name[b]);
    }
    for (int b = B_CNS_NSEC_1E9; b < NBAD; b++)
        if (co.ret[b] != 0)
            is_int(co.err[b], ERRNO_SENTINEL,
                   "%s in a coroutine does not touch errno", bad_name[b]);
}

/* ---- EINTR: the sleeper helper, natively and in a coroutine -------------- */

/* Starts the native sleeper with its stdout on a pipe; returns the pid. */
static pid_t start_native_sleeper(int *fd)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        BAIL("readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash || (size_t)(slash - exe) + sizeof "/helpers/sleeper" > sizeof exe)
        BAIL("odd path %s", exe);
    strcpy(slash, "/helpers/sleeper");
    if (access(exe, X_OK) != 0)
        BAIL("%s is missing: run make tests", exe);

    int fds[2];
    if (pipe(fds) != 0)
        BAIL("pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    /* Not our blocked SIGALRM: the helper gets a clean mask. */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, alrm;
    sigemptyset(&none);
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &alrm);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {exe, NULL};
    pid_t pid;
    int e = posix_spawn(&pid, exe, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(fds[1]);
    if (e != 0)
        BAIL("posix_spawn %s: %s", exe, strerror(e));
    *fd = fds[0];
    return pid;
}

static char *read_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    while (out) {
        ssize_t got = read(fd, out + len, cap - len - 1);
        if (got == 0)
            break;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        len += (size_t)got;
        if (cap - len < 1024)
            out = realloc(out, cap *= 2);
    }
    if (!out)
        BAIL("out of memory");
    out[len] = '\0';
    return out;
}

struct captured {
    char *buf;
    size_t len;
    int rc;
};

static void *sleeper_in_coroutine(void *arg)
{
    struct captured *c = arg;
    FILE *f = open_memstream(&c->buf, &c->len);
    if (!f) {
        c->rc = -1;
        return NULL;
    }
    c->rc = sleeper_run(f);
    fclose(f);
    return NULL;
}

/* Splits s into lines in place; returns the count (at most max). */
static int split_lines(char *s, char **lines, int max)
{
    int n = 0;
    while (*s && n < max) {
        lines[n++] = s;
        char *nl = strchr(s, '\n');
        if (!nl)
            break;
        *nl = '\0';
        s = nl + 1;
    }
    return n;
}

#define SLEEPER_LINES 7

static void test_eintr_like_native(void)
{
    /* Both run at once: about 7 s instead of 14. */
    int fd;
    pid_t pid = start_native_sleeper(&fd);
    struct captured c = {NULL, 0, -1};
    join(spawn(sleeper_in_coroutine, &c));
    char *native = read_all(fd);
    close(fd);
    int status = -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "the native sleeper exits with 0 (status %#x)", status);
    is_int(c.rc, 0, "the sleeper code ran inside a coroutine");

    char *nl[16], *cl[16];
    int nn = split_lines(native, nl, 16);
    int cn = c.buf ? split_lines(c.buf, cl, 16) : 0;
    is_int(nn, SLEEPER_LINES, "the native sleeper printed %d lines", SLEEPER_LINES);
    is_int(cn, SLEEPER_LINES, "the sleeper in a coroutine printed %d lines",
           SLEEPER_LINES);

    /* Native sanity: every call was interrupted by the handler. */
    int interrupted = 0;
    for (int i = 0; i < nn; i++)
        interrupted += strstr(nl[i], "errno=EINTR") && strstr(nl[i], "handler=1");
    is_int(interrupted, SLEEPER_LINES - 2,
           "natively every sleep but clock_nanosleep (which returns the error) "
           "sets EINTR once the handler ran");
    ok(nn > 0 && strstr(nl[0], "ret=-1 errno=EINTR rem=2.5 handler=1"),
       "native nanosleep(3 s) interrupted 0.5 s in: -1, EINTR, 2.5 s left (%s)",
       nn > 0 ? nl[0] : "no output");

    for (int i = 0; i < nn || i < cn; i++) {
        const char *want = i < nn ? nl[i] : "(no line)";
        const char *got = i < cn ? cl[i] : "(no line)";
        note("native:    %s", want);
        note("coroutine: %s", got);
        is_str(got, want, "in a coroutine as natively: %s", want);
    }
    free(native);
    free(c.buf);
}

/* ---- which coroutine a signal interrupts ------------------------------- */

/* Atomic: the handler runs on whichever thread takes the signal. */
static _Atomic int alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

struct napper {
    _Atomic int started;
    long long req_ns;
    int ret, err;
    double elapsed, rem;
};

static void *napper(void *arg)
{
    struct napper *n = arg;
    struct timespec req = {(time_t)(n->req_ns / NSEC), (long)(n->req_ns % NSEC)};
    struct timespec rem = {0, 0};
    atomic_store(&n->started, 1);
    double t0 = now_s();
    sleeper_set_errno(0);
    n->ret = nanosleep(&req, &rem);
    n->err = sleeper_get_errno();
    n->elapsed = now_s() - t0;
    n->rem = ts_s(&rem);
    return NULL;
}

/* Spawns a napper and waits until it is (surely) parked in its sleep. */
static unb_coro_t *spawn_parked(struct napper *n, long long req_ns)
{
    n->req_ns = req_ns;
    unb_coro_t *co = spawn(napper, n);
    if (!wait_flag(&n->started, 10))
        BAIL("a sleeping coroutine did not start within 10 s");
    sleep_ms(30);
    return co;
}

#define NAPPERS 6
#define NAP_NS (1500 * 1000000LL)

static void test_one_interrupted(void)
{
    struct napper n[NAPPERS];
    unb_coro_t *h[NAPPERS];
    memset(n, 0, sizeof n);
    alarms = 0;
    for (int i = 0; i < NAPPERS; i++)
        h[i] = spawn_parked(&n[i], NAP_NS);
    kill(getpid(), SIGALRM);
    for (int i = 0; i < NAPPERS; i++)
        join(h[i]);

    is_int(alarms, 1, "the handler ran once for one SIGALRM sent to the process");
    int eintr = 0, completed = 0, victim = -1;
    for (int i = 0; i < NAPPERS; i++) {
        note("napper %d: ret %d errno %s, slept %.3f s, rem %.3f s", i, n[i].ret,
             sleeper_errno_name(n[i].err), n[i].elapsed, n[i].rem);
        if (n[i].ret == -1 && n[i].err == EINTR) {
            eintr++;
            victim = i;
        } else if (n[i].ret == 0 && n[i].elapsed >= NAP_NS * 1e-9) {
            completed++;
        }
    }
    is_int(eintr, 1, "one signal, %d coroutines asleep: exactly one gets EINTR",
           NAPPERS);
    is_int(completed, NAPPERS - 1, "the other %d sleep their full 1.5 s and return 0",
           NAPPERS - 1);
    is_int(victim, 0, "the interrupted one is the coroutine parked longest");
    if (victim >= 0) {
        cmp_ok(n[victim].elapsed, <, NAP_NS * 1e-9, "the interrupted sleep ended early");
        cmp_ok(n[victim].rem, >, 0.0, "and reports the time left in rem (%.3f s)",
               n[victim].rem);
    }
}

static void *raise_unblocked(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGALRM); /* to this thread: the handler runs here */
    return NULL;
}

static void *raise_in_coroutine(void *arg)
{
    (void)arg;
    raise(SIGALRM); /* on the worker, while this coroutine runs */
    return NULL;
}

#define SHORT_NAP_NS (500 * 1000000LL)

static void test_nobody_interrupted(void)
{
    struct napper n;

    memset(&n, 0, sizeof n);
    alarms = 0;
    unb_coro_t *co = spawn_parked(&n, SHORT_NAP_NS);
    on_plain_thread(raise_unblocked, NULL);
    join(co);
    is_int(alarms, 1, "a SIGALRM raised by a plain thread ran the handler there");
    ok(n.ret == 0 && n.elapsed >= SHORT_NAP_NS * 1e-9,
       "a signal taken by a plain thread interrupts no sleeping coroutine "
       "(ret %d, errno %s, slept %.3f s)", n.ret, sleeper_errno_name(n.err), n.elapsed);

    memset(&n, 0, sizeof n);
    alarms = 0;
    co = spawn_parked(&n, SHORT_NAP_NS);
    join(spawn(raise_in_coroutine, NULL));
    join(co);
    is_int(alarms, 1, "a SIGALRM raised by a coroutine ran the handler");
    ok(n.ret == 0 && n.elapsed >= SHORT_NAP_NS * 1e-9,
       "a signal taken by a running coroutine interrupts no sleeping one "
       "(ret %d, errno %s, slept %.3f s)", n.ret, sleeper_errno_name(n.err), n.elapsed);
}

static void test_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        BAIL("sigaction: %s", strerror(errno));
    test_one_interrupted();
    test_nobody_interrupted();
    signal(SIGALRM, SIG_DFL);
}

int main(void)
{
    /* Start the workers with SIGALRM unblocked, then block it here. */
    join(spawn(noop, NULL));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    test_many_sleepers();
    test_never_early();
    test_short_sleeps();
    test_sleep_errno_across_workers();
    test_bad_arguments();
    test_signals();
    test_eintr_like_native();
    return done_testing();
}
