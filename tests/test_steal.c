/*
 * test_steal: work moves between workers, idle workers are woken sparingly,
 * and one worker's queue is fair.
 *
 *   - two CPU-bound coroutines spawned by one coroutine run in parallel on
 *     two workers: one of them was stolen;
 *   - a burst of spawns wakes far fewer workers than it spawns;
 *   - long-lived coroutines started one at a time by one coroutine get
 *     their homes on both workers, not all on the spawner's (which took
 *     each from its own queue before the other worker could steal it);
 *   - with one worker (a child process, as the configuration is read once):
 *     yielding coroutines alternate, and a runnable coroutine is not
 *     starved by two others that ping-pong.
 */
#define _GNU_SOURCE
#include "tap.h"
#include "util.h"

#include <errno.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <unblock.h>

extern char **environ;

static double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static unb_stats_t stats(void)
{
    unb_stats_t st;
    if (unb_stats(&st) != 0)
        BAIL("unb_stats failed");
    return st;
}

/* ---- two CPU-bound coroutines run in parallel --------------------------- */

#define SPIN_CPU_S 0.3

struct spinner {
    pid_t tid_start, tid_end;
    double t0, t1, cpu;
    uint64_t work;
};

static void *spinner(void *arg)
{
    struct spinner *s = arg;
    s->tid_start = gettid();
    s->t0 = now_s();
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    volatile uint64_t x = 1;
    do {
        for (int i = 0; i < 10000; i++)
            x = x * 6364136223846793005u + 1442695040888963407u;
        s->work++;
    } while (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0 < SPIN_CPU_S);
    s->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    s->t1 = now_s();
    s->tid_end = gettid();
    return (void *)(uintptr_t)x;
}

static void *spin_parent(void *arg)
{
    struct spinner *s = arg;
    unb_coro_t *a = unb_spawn(spinner, &s[0]);
    unb_coro_t *b = unb_spawn(spinner, &s[1]);
    if (a)
        unb_join(a, NULL);
    if (b)
        unb_join(b, NULL);
    return (void *)(uintptr_t)(a && b);
}

static void test_parallel(void)
{
    struct spinner s[2];
    memset(s, 0, sizeof s);
    unb_stats_t before = stats();
    void *spawned = join(spawn(spin_parent, s));
    unb_stats_t after = stats();
    if (!spawned)
        BAIL("the parent coroutine could not spawn its children");

    pid_t main_tid = gettid();
    note("spinner A: thread %d, %.3f..%.3f s, %.3f s CPU; spinner B: thread %d, "
         "%.3f..%.3f s, %.3f s CPU (times from A's start)",
         (int)s[0].tid_start, 0.0, s[0].t1 - s[0].t0, s[0].cpu, (int)s[1].tid_start,
         s[1].t0 - s[0].t0, s[1].t1 - s[0].t0, s[1].cpu);
    is_int(s[0].tid_end, s[0].tid_start, "spinner A ran on one thread throughout");
    is_int(s[1].tid_end, s[1].tid_start, "spinner B ran on one thread throughout");
    ok(s[0].tid_start != main_tid && s[1].tid_start != main_tid,
       "the spinners ran on worker threads, not on main");
    ok(s[0].tid_start != s[1].tid_start,
       "the two CPU-bound coroutines ran on different threads (%d and %d)",
       (int)s[0].tid_start, (int)s[1].tid_start);
    double overlap = (s[0].t1 < s[1].t1 ? s[0].t1 : s[1].t1) -
                     (s[0].t0 > s[1].t0 ? s[0].t0 : s[1].t0);
    cmp_ok(overlap, >, 0.0, "their run intervals overlap (by %.3f s)", overlap);
    cmp_ok(after.steals - before.steals, >=, 1,
           "stats.steals grew (by %" PRIu64 "): one was taken from the spawner's "
           "queue", after.steals - before.steals);
}

/* ---- a burst of spawns wakes few workers -------------------------------- */

#define BURST 10000

static _Atomic long burst_ran;

static void *trivial(void *arg)
{
    atomic_fetch_add_explicit(&burst_ran, 1, memory_order_relaxed);
    return arg;
}

struct burst {
    uint64_t wakeups_spawning; /* during the spawns alone */
    long spawn_failures, wrong;
};

static void *burst_spawner(void *arg)
{
    struct burst *b = arg;
    unb_coro_t **h = malloc(sizeof *h * BURST);
    if (!h)
        return NULL;
    uint64_t w0 = stats().wakeups;
    for (uintptr_t i = 0; i < BURST; i++)
        if (!(h[i] = unb_spawn(trivial, (void *)i)))
            b->spawn_failures++;
    b->wakeups_spawning = stats().wakeups - w0;
    for (uintptr_t i = 0; i < BURST; i++) {
        void *r = NULL;
        if (h[i] && (unb_join(h[i], &r) != 0 || (uintptr_t)r != i))
            b->wrong++;
    }
    free(h);
    return b;
}

static void test_burst_wakeups(void)
{
    if (under_tool("tsan")) {
        skip("ThreadSanitizer keeps state of its own for each live coroutine (a fiber); with 10,000 alive at once it runs out of memory mappings (vm.max_map_count) and dies", "a burst of %d spawns from one coroutine", BURST);
        return;
    }
    struct burst b = {0, 0, 0};
    atomic_store(&burst_ran, 0);
    unb_stats_t before = stats();
    double t0 = now_s();
    if (!join(spawn(burst_spawner, &b)))
        BAIL("out of memory");
    double dt = now_s() - t0;
    unb_stats_t after = stats();
    uint64_t wakeups = after.wakeups - before.wakeups;
    note("%d spawns from one coroutine: %" PRIu64 " wake-ups while spawning, %" PRIu64
         " in all (spawns and joins), %" PRIu64 " steals, %.1f ms",
         BURST, b.wakeups_spawning, wakeups, after.steals - before.steals, dt * 1e3);
    is_int(b.spawn_failures, 0, "a burst of %d spawns: none fails", BURST);
    is_int(atomic_load(&burst_ran), BURST, "all %d coroutines of the burst ran", BURST);
    is_int(b.wrong, 0, "all %d were joined with their results", BURST);
    /* A wake-up per spawn is the failure this looks for.  How many fewer
     * depends on how often the other worker runs dry, which a loaded
     * machine changes: under 1,000 on a quiet one (the old bound, which
     * CI met), 2,600 to 3,500 at a load average of 7, before and after
     * session 4's changes alike; so the bound is half the spawns.  Under
     * ASan the burst takes 1.9 s instead of about 0.1, and the other
     * worker runs dry more often: 1,230 to 4,840 with session 14's library
     * and 1,255 to 5,211 with session 15's, interleaved beside a TSan run,
     * and 5,841 in a clean-clone CI run; there the bound is three
     * quarters, which a wake-up per spawn still exceeds. */
    int bound = under_tool("asan") ? BURST * 3 / 4 : BURST / 2;
    cmp_ok(wakeups, <, (uint64_t)bound,
           "the burst woke workers far fewer times than it spawned (%d; bound %d)", BURST,
           bound);
}

/* ---- long-lived coroutines started one at a time spread ---------------- */

#define SPREAD_N 24

static _Atomic int spread_release;

/* Records the thread it starts on (its home from then on) and stays alive,
 * parked, until released. */
static void *spread_child(void *arg)
{
    *(pid_t *)arg = gettid();
    while (!atomic_load(&spread_release))
        usleep(1000);
    return NULL;
}

static void *spread_parent(void *arg)
{
    pid_t *tids = arg;
    unb_coro_t *h[SPREAD_N];
    for (int i = 0; i < SPREAD_N; i++) {
        h[i] = unb_spawn(spread_child, &tids[i]);
        usleep(1000); /* one at a time: parked, the spawner leaves it the queue */
    }
    atomic_store(&spread_release, 1);
    for (int i = 0; i < SPREAD_N; i++)
        if (h[i])
            unb_join(h[i], NULL);
    return NULL;
}

static void test_spread(void)
{
    pid_t tids[SPREAD_N] = {0};
    join(spawn(spread_parent, tids));
    /* How many started on the thread the first one started on. */
    int same = 0, started = 0;
    for (int i = 0; i < SPREAD_N; i++) {
        started += tids[i] != 0;
        same += tids[i] == tids[0];
    }
    is_int(started, SPREAD_N, "%d long-lived coroutines spawned one at a time all started",
           SPREAD_N);
    note("spread: %d of %d started on the first one's thread", same, SPREAD_N);
    ok(same >= SPREAD_N / 4 && same <= SPREAD_N - SPREAD_N / 4,
       "they got their homes on both workers (%d of %d on one; want between %d and %d)",
       same, SPREAD_N, SPREAD_N / 4, SPREAD_N - SPREAD_N / 4);
}

/* ---- fairness on one worker (child process) ----------------------------- */

#define ALT_ROUNDS 1000
#define PING_CAP 1000000L

/* Yield in a loop, logging a letter each turn. */
static char alt_log[2 * ALT_ROUNDS + 1];
static int alt_len;

static void *alternator(void *arg)
{
    char letter = (char)(uintptr_t)arg;
    for (int i = 0; i < ALT_ROUNDS; i++) {
        alt_log[alt_len++] = letter;
        unb_yield();
    }
    return NULL;
}

static void *alt_parent(void *arg)
{
    (void)arg;
    unb_coro_t *a = spawn(alternator, (void *)(uintptr_t)'A');
    unb_coro_t *b = spawn(alternator, (void *)(uintptr_t)'B');
    join(a);
    join(b);
    return NULL;
}

/*
 * Ping-pong partners run until the third coroutine has run (or a cap):
 * by yielding to each other, or by waking each other (each turn spawns a
 * child and joins it, so the child's exit wakes the partner).
 */
static _Atomic long pings;         /* turns taken by the partners */
static _Atomic int third_ran;
static _Atomic long third_seen_at; /* pings when the third ran */
static _Atomic long third_spawned_at;

static void *third(void *arg)
{
    (void)arg;
    atomic_store(&third_seen_at, atomic_load(&pings));
    atomic_store(&third_ran, 1);
    return NULL;
}

static void *nothing(void *arg)
{
    return arg;
}

struct partner {
    int by_join;       /* wake by spawn+join rather than yield */
    int spawns_third;  /* spawn the third after 100 turns */
    unb_coro_t *third; /* the handle, if this partner spawned it */
};

static void *partner(void *arg)
{
    struct partner *p = arg;
    for (long i = 0; i < PING_CAP && !atomic_load(&third_ran); i++) {
        long n = atomic_fetch_add(&pings, 1) + 1;
        if (p->spawns_third && n >= 100 && !p->third) {
            p->third = spawn(third, NULL);
            atomic_store(&third_spawned_at, atomic_load(&pings));
        }
        if (p->by_join)
            join(spawn(nothing, NULL));
        else
            unb_yield();
    }
    return NULL;
}

/* Two partners ping-pong; the third is spawned by a partner (on the
 * worker's queue) or by main (a plain thread: the inject queue). */
static void ping_pong(const char *name, int by_join, int from_main)
{
    atomic_store(&pings, 0);
    atomic_store(&third_ran, 0);
    atomic_store(&third_seen_at, -1);
    atomic_store(&third_spawned_at, -1);
    struct partner p1 = {by_join, !from_main, NULL}, p2 = {by_join, 0, NULL};
    unb_coro_t *a = spawn(partner, &p1);
    unb_coro_t *b = spawn(partner, &p2);
    unb_coro_t *t = NULL;
    if (from_main) {
        double end = now_s() + 10;
        while (atomic_load(&pings) < 100 && now_s() < end)
            ;
        t = spawn(third, NULL);
        /* Counted from when the spawn returned: it may have been slow. */
        atomic_store(&third_spawned_at, atomic_load(&pings));
    }
    join(a);
    join(b);
    if (p1.third)
        join(p1.third);
    if (t)
        join(t);
    printf("%s %d %ld %ld %ld\n", name, atomic_load(&third_ran),
           atomic_load(&third_spawned_at), atomic_load(&third_seen_at),
           atomic_load(&pings));
}

static int fairness_child(void)
{
    alarm(30); /* a hang kills the child, not the test */
    join(spawn(alt_parent, NULL));
    int breaks = 0;
    for (int i = 1; i < alt_len; i++)
        breaks += alt_log[i] == alt_log[i - 1];
    printf("workers %" PRIu64 "\n", stats().workers);
    printf("alternation %d %d %.16s\n", alt_len, breaks, alt_log);
    ping_pong("yield-local", 0, 0);
    ping_pong("yield-inject", 0, 1);
    ping_pong("join-local", 1, 0);
    ping_pong("join-inject", 1, 1);
    fflush(stdout);
    return 0;
}

/* Runs this program again with argument mode and UNBLOCK_WORKERS=1;
 * returns its output (malloc'd) and exit status. */
static char *run_child(const char *mode, int *status)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        BAIL("readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';

    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 2, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "UNBLOCK_WORKERS=", 16) != 0)
            envp[k++] = environ[i];
    envp[k++] = "UNBLOCK_WORKERS=1";
    envp[k] = NULL;

    int fds[2];
    if (pipe(fds) != 0)
        BAIL("pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = {exe, (char *)mode, NULL};
    pid_t pid;
    int e = posix_spawn(&pid, exe, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    close(fds[1]);
    if (e != 0)
        BAIL("posix_spawn %s: %s", exe, strerror(e));

    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    ssize_t got;
    while (out && (got = read(fds[0], out + len, cap - len - 1)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        len += (size_t)got;
        if (cap - len < 1024)
            out = realloc(out, cap *= 2);
    }
    close(fds[0]);
    if (!out)
        BAIL("out of memory");
    out[len] = '\0';
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    return out;
}

static const char *find_line(const char *out, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return p + kl + 1;
    return NULL;
}

static void check_ping_pong(const char *out, const char *name, long max_lag,
                            const char *how)
{
    const char *l = find_line(out, name);
    int ran = 0;
    long spawned_at = -1, seen_at = -1, total = -1;
    if (!l || sscanf(l, "%d %ld %ld %ld", &ran, &spawned_at, &seen_at, &total) != 4) {
        ok(0, "%s: the child reported the ping-pong", name);
        return;
    }
    /* The third may run before its spawner reads the count again. */
    long lag = seen_at > spawned_at ? seen_at - spawned_at : 0;
    note("%s: third spawned at turn %ld, ran at turn %ld (lag %ld), %ld turns in all",
         name, spawned_at, seen_at, lag, total);
    is_int(ran, 1, "%s: a third coroutine runs while two others ping-pong (%s)", name,
           how);
    ok(ran && lag >= 0 && lag <= max_lag,
       "%s: it ran within %ld turns of the ping-pong after its spawn (lag %ld)", name,
       max_lag, lag);
}

static void test_fairness(void)
{
    int status = -1;
    char *out = run_child("fairness", &status);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "the one-worker child exits with 0 (status %#x)", status);

    const char *l = find_line(out, "workers");
    is_int(l ? atol(l) : -1, 1, "the child runs one worker (UNBLOCK_WORKERS=1)");

    int len = -1, breaks = -1;
    char head[17] = "";
    l = find_line(out, "alternation");
    if (!l || sscanf(l, "%d %d %16s", &len, &breaks, head) != 3)
        len = breaks = -1;
    is_int(len, 2 * ALT_ROUNDS, "two yielding coroutines each took %d turns", ALT_ROUNDS);
    is_int(breaks, 0, "on one worker two yielding coroutines strictly alternate");
    is_str(head, "ABABABABABABABAB", "the turns go A, B, A, B, ...");

    /* FIFO order: a coroutine queued locally runs within one round of the
     * two partners; one injected by a plain thread within a scheduler
     * pass (every 64 switches, see sched.c), with slack. */
    check_ping_pong(out, "yield-local", 4, "yield, spawned by a partner");
    check_ping_pong(out, "yield-inject", 256, "yield, spawned by main");
    check_ping_pong(out, "join-local", 4, "spawn+join wake-ups, spawned by a partner");
    check_ping_pong(out, "join-inject", 256, "spawn+join wake-ups, spawned by main");
    free(out);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "fairness") == 0)
        return fairness_child();

    /* Read once, when the first spawn starts the runtime. */
    setenv("UNBLOCK_WORKERS", "2", 1);
    test_parallel();
    is_int(stats().workers, 2, "UNBLOCK_WORKERS=2 gives two workers");
    test_burst_wakeups();
    test_spread();
    test_fairness();
    return done_testing();
}
