/*
 * bench_monitor: how long one worker's other coroutines stall while a
 * coroutine on it is stuck in a call no hook can park, or in a computation
 * (the monitor's handoff, runtime/sched.c).
 *
 * usage: bench_monitor [--threads] [SCENARIO...]
 *   (default: all, in the order idle fileread resolver flock compute
 *   nanosleep; the thread-count measurement follows the last one)
 *
 * --threads: the same with the heartbeat and the scenario on two plain
 * threads, the runtime never started: what the machine itself does to a
 * thread that nothing blocks (its timer wake-ups, the hypervisor).  Its
 * largest gap is the floor under any runtime's; no handoffs, no thread
 * count.
 *
 * On one worker, a heartbeat coroutine sleeps 1 ms in a loop (usleep(1000))
 * and stamps each wake-up (CLOCK_MONOTONIC), while a second coroutine on
 * the same worker does one of:
 *   idle       usleep for 0.5 s: nothing blocks; the heartbeat's own jitter
 *   nanosleep  a 2 s sleep through raw syscall(SYS_nanosleep, ...)
 *   compute    a 2 s loop of volatile arithmetic, no calls (timed by the TSC)
 *   flock      flock(LOCK_EX) on a file that a child process holds for 1 s
 *   resolver   getaddrinfo("localhost", ...) in a loop for 1 s
 *   fileread   read() of a 256 MiB file from the page cache in 1 MiB chunks
 *              (created in $TMPDIR or /tmp, read once to warm the cache,
 *              unlinked at once, so it goes with the process)
 * Gaps are between consecutive heartbeat wake-ups, counting every gap that
 * overlaps the scenario [t0, t1].  Ticks are wake-ups inside [t0, t1];
 * expected is (t1 - t0) / 1 ms.  One line per scenario on stdout:
 *
 *   scenario=NAME seconds=S max_gap_ms=G max_gap_at_ms=A onset_gap_ms=B
 *     p99_gap_ms=P gaps_over_2ms=O ticks=N expected=E calls=C handoffs=H
 *     spares=T spare_peak=K                          (one line)
 *
 * max_gap_at_ms: where the largest gap began, from t0 (negative: before
 * the scenario began); onset_gap_ms: the largest gap that began before
 * t0 + 2 ms, the one the monitor must end by a handoff (the rest of a
 * long scenario adds the machine's own scheduling noise); gaps_over_2ms:
 * how many gaps exceeded the 2 ms target (the first few, with where they
 * began, are listed on stderr); handoffs: unb_stats().handoffs during the
 * scenario; spares: its spare_threads right after; spare_peak: spare_peak
 * so far; calls: the blocking calls the scenario made (reads, getaddrinfo
 * calls).
 *
 * Then, after the last scenario, /proc/self/task is counted every 100 ms
 * until it is back to the runtime's lasting threads before the first
 * scenario (settled_threads: the idle spares not counted; spare threads
 * exit after 2 s idle), for at most 10 s:
 *
 *   threads before=N after=M peak=K return_ms=R      (R is -1 if never)
 *
 * UNBLOCK_WORKERS is set to 1 before the runtime starts unless it is
 * already set (then a warning goes to stderr if it is not 1).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <unblock.h>

#define TICK_US 1000
#define MAX_STAMPS (1 << 16) /* 65 s of 1 ms ticks: far more than a scenario */
#define SETTLE_US 20000      /* the heartbeat ticks this long before t0 */
#define FILE_BYTES (256u << 20)
#define CHUNK (1u << 20)
#define RETURN_POLL_NS 100000000ull /* 100 ms */
#define RETURN_LIMIT_NS 10000000000ull
#define LONG_GAP_NS 2000000 /* the target: a gap longer is listed on stderr */
#define ONSET_NS 2000000    /* gaps that begin this soon after t0: the onset */
/* How long the runtime's own threads may take to start (settled_threads). */
#define SETTLE_LIMIT_NS 1000000000ull

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static _Noreturn void die(const char *what, int err)
{
    fprintf(stderr, "bench_monitor: %s: %s\n", what, strerror(err));
    exit(1);
}

/* ---- the scenarios ------------------------------------------------------- */

/* TSC cycles per nanosecond, measured over 50 ms before the runtime starts. */
static double tsc_per_ns;

static void tsc_calibrate(void)
{
    uint64_t t0 = now_ns(), c0 = __builtin_ia32_rdtsc();
    sleep_ns(50000000);
    uint64_t t1 = now_ns(), c1 = __builtin_ia32_rdtsc();
    tsc_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
}

static volatile uint64_t sink;

/* The flock helper: a child forked before the runtime starts, so that it
 * is an ordinary single-threaded process.  On each byte from `cmd` it
 * takes an exclusive lock on the file (its own open file description),
 * answers on `ack`, holds the lock for 1 s and drops it. */
static struct {
    char path[64];
    int cmd, ack; /* our ends of the two pipes */
    pid_t pid;
} locker = {.cmd = -1, .ack = -1, .pid = -1};

static void locker_child(int cmd, int ack)
{
    int fd = open(locker.path, O_RDWR);
    char c;
    while (fd >= 0 && read(cmd, &c, 1) == 1) {
        if (flock(fd, LOCK_EX) != 0 || write(ack, "k", 1) != 1)
            break;
        sleep_ns(1000000000u);
        flock(fd, LOCK_UN);
    }
    _exit(0);
}

static void locker_start(void)
{
    const char *dir = getenv("TMPDIR");
    snprintf(locker.path, sizeof locker.path, "%s/unb-bench-flock.XXXXXX",
             dir && strlen(dir) < 32 ? dir : "/tmp");
    int fd = mkstemp(locker.path);
    if (fd < 0)
        die("mkstemp for the flock file", errno);
    close(fd);
    int c[2], a[2];
    if (pipe(c) != 0 || pipe(a) != 0)
        die("pipe", errno);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", errno);
    if (pid == 0) {
        close(c[1]);
        close(a[0]);
        locker_child(c[0], a[1]);
    }
    close(c[0]);
    close(a[1]);
    locker.cmd = c[1];
    locker.ack = a[0];
    locker.pid = pid;
}

static void locker_stop(void)
{
    if (locker.pid < 0)
        return;
    close(locker.cmd);
    close(locker.ack);
    waitpid(locker.pid, NULL, 0);
    unlink(locker.path);
    locker.pid = -1;
}

/* The page-cache file: written, read once, unlinked; the fd keeps it. */
static int big_fd = -1;

static void bigfile_make(void)
{
    const char *dir = getenv("TMPDIR");
    char path[80];
    snprintf(path, sizeof path, "%s/unb-bench-read.XXXXXX",
             dir && strlen(dir) < 48 ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp for the read file", errno);
    unlink(path);
    char *buf = malloc(CHUNK);
    if (!buf)
        die("malloc", ENOMEM);
    for (size_t i = 0; i < CHUNK; i++)
        buf[i] = (char)(i * 131u);
    for (size_t done = 0; done < FILE_BYTES; done += CHUNK)
        if (write(fd, buf, CHUNK) != (ssize_t)CHUNK)
            die("writing the read file", errno ? errno : ENOSPC);
    if (lseek(fd, 0, SEEK_SET) != 0)
        die("lseek", errno);
    while (read(fd, buf, CHUNK) > 0) /* warm the page cache */
        ;
    free(buf);
    big_fd = fd;
}

struct scen {
    const char *name;
    /* Runs the scenario in the second coroutine; returns the calls made. */
    long (*run)(void);
};

static long run_idle(void)
{
    usleep(500000);
    return 0;
}

static long run_nanosleep(void)
{
    struct timespec ts = {2, 0};
    while (syscall(SYS_nanosleep, &ts, &ts) != 0)
        if (errno != EINTR)
            die("syscall(SYS_nanosleep)", errno);
    return 1;
}

static long run_compute(void)
{
    uint64_t end = __builtin_ia32_rdtsc() + (uint64_t)(2e9 * tsc_per_ns);
    while (__builtin_ia32_rdtsc() < end)
        for (int i = 0; i < 1000; i++)
            sink = sink * 6364136223846793005u + 1442695040888963407u;
    return 0;
}

static long run_flock(void)
{
    int fd = open(locker.path, O_RDWR);
    if (fd < 0)
        die("open the flock file", errno);
    char c;
    errno = 0;
    if (write(locker.cmd, "L", 1) != 1 || read(locker.ack, &c, 1) != 1)
        die("talking to the flock child", errno ? errno : EPIPE);
    if (flock(fd, LOCK_EX) != 0) /* the child holds it for 1 s */
        die("flock", errno);
    flock(fd, LOCK_UN);
    close(fd);
    return 1;
}

static long run_resolver(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    uint64_t end = now_ns() + 1000000000u;
    long calls = 0;
    do {
        struct addrinfo *res;
        int e = getaddrinfo("localhost", "80", &hints, &res);
        if (e != 0) {
            fprintf(stderr, "bench_monitor: getaddrinfo(localhost): %s\n",
                    gai_strerror(e));
            exit(1);
        }
        freeaddrinfo(res);
        calls++;
    } while (now_ns() < end);
    return calls;
}

static long run_fileread(void)
{
    char *buf = malloc(CHUNK);
    if (!buf)
        die("malloc", ENOMEM);
    if (lseek(big_fd, 0, SEEK_SET) != 0)
        die("lseek", errno);
    long calls = 0;
    size_t total = 0;
    ssize_t n;
    while ((n = read(big_fd, buf, CHUNK)) > 0) {
        total += (size_t)n;
        calls++;
    }
    if (n < 0 || total != FILE_BYTES)
        die("reading the file", n < 0 ? errno : EIO);
    free(buf);
    return calls;
}

static const struct scen scens[] = {
    {"idle", run_idle},   {"fileread", run_fileread}, {"resolver", run_resolver},
    {"flock", run_flock}, {"compute", run_compute},   {"nanosleep", run_nanosleep},
};
#define NSCENS (sizeof scens / sizeof scens[0])

/* ---- the heartbeat and one scenario's run -------------------------------- */

static bool threads_mode; /* --threads */

struct run {
    const struct scen *scen;
    uint64_t *stamps; /* heartbeat wake-ups */
    size_t nstamps;
    _Atomic int stop;
    uint64_t t0, t1;
    long calls;
    unb_stats_t before, after;
};

static void *heartbeat(void *arg)
{
    struct run *r = arg;
    r->stamps[r->nstamps++] = now_ns();
    while (!atomic_load_explicit(&r->stop, memory_order_acquire)) {
        usleep(TICK_US);
        uint64_t t = now_ns();
        if (r->nstamps < MAX_STAMPS)
            r->stamps[r->nstamps++] = t;
    }
    return NULL;
}

static void *scenario(void *arg)
{
    struct run *r = arg;
    usleep(SETTLE_US); /* the heartbeat ticks meanwhile */
    if (!threads_mode)
        unb_stats(&r->before);
    r->t0 = now_ns();
    r->calls = r->scen->run();
    r->t1 = now_ns();
    if (!threads_mode)
        unb_stats(&r->after);
    atomic_store_explicit(&r->stop, 1, memory_order_release);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void run_scenario(const struct scen *s, uint64_t *stamps, uint64_t *gaps)
{
    struct run r = {.scen = s, .stamps = stamps};
    if (threads_mode) {
        pthread_t hb, sc;
        int e = pthread_create(&hb, NULL, heartbeat, &r);
        if (e == 0)
            e = pthread_create(&sc, NULL, scenario, &r);
        if (e != 0)
            die("pthread_create", e);
        pthread_join(sc, NULL);
        pthread_join(hb, NULL);
    } else {
        unb_coro_t *hb = unb_spawn(heartbeat, &r);
        if (!hb)
            die("unb_spawn", errno);
        unb_coro_t *sc = unb_spawn(scenario, &r);
        if (!sc)
            die("unb_spawn", errno);
        int e = unb_join(sc, NULL);
        if (e == 0)
            e = unb_join(hb, NULL);
        if (e != 0)
            die("unb_join", e);
    }

    size_t ngaps = 0, ticks = 0, over = 0;
    uint64_t max = 0, onset = 0;
    int64_t max_at = 0;
    char long_gaps[512] = "";
    size_t used = 0;
    for (size_t i = 1; i < r.nstamps; i++) {
        if (stamps[i] <= r.t0 || stamps[i - 1] >= r.t1)
            continue; /* the gap does not overlap the scenario */
        uint64_t g = stamps[i] - stamps[i - 1];
        int64_t at = (int64_t)(stamps[i - 1] - r.t0);
        gaps[ngaps++] = g;
        if (g > max) {
            max = g;
            max_at = at;
        }
        if (at < ONSET_NS && g > onset)
            onset = g;
        if (stamps[i] <= r.t1)
            ticks++;
        if (g > LONG_GAP_NS && over++ < 8 && used < sizeof long_gaps)
            used += (size_t)snprintf(long_gaps + used, sizeof long_gaps - used,
                                     " %.2f@%+.1f", (double)g / 1e6, (double)at / 1e6);
    }
    if (r.nstamps >= MAX_STAMPS)
        fprintf(stderr, "bench_monitor: %s: heartbeat stamps truncated\n", s->name);
    qsort(gaps, ngaps, sizeof *gaps, cmp_u64);
    uint64_t p99 = ngaps ? gaps[(ngaps * 99 + 99) / 100 - 1] : 0;
    double secs = (double)(r.t1 - r.t0) / 1e9;
    if (over)
        fprintf(
            stderr,
            "bench_monitor: %s: %zu gaps over %.0f ms (ms@start, ms from t0):%s%s\n",
            s->name, over, LONG_GAP_NS / 1e6, long_gaps, over > 8 ? " ..." : "");
    printf(
        "scenario=%s seconds=%.3f max_gap_ms=%.3f max_gap_at_ms=%.1f onset_gap_ms=%.3f "
        "p99_gap_ms=%.3f gaps_over_2ms=%zu ticks=%zu "
        "expected=%llu calls=%ld handoffs=%llu spares=%llu spare_peak=%llu\n",
        s->name, secs, (double)max / 1e6, (double)max_at / 1e6, (double)onset / 1e6,
        (double)p99 / 1e6, over, ticks,
        (unsigned long long)((r.t1 - r.t0) / (TICK_US * 1000ull)), r.calls,
        (unsigned long long)(r.after.handoffs - r.before.handoffs),
        (unsigned long long)r.after.spare_threads,
        (unsigned long long)r.after.spare_peak);
    fflush(stdout);
}

/* ---- threads ---------------------------------------------------------------- */

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        die("opendir /proc/self/task", errno);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/*
 * The runtime's own threads, the ones that stay: the count once the
 * monitor has started what it starts as it starts (its /proc reader and
 * one ready spare, a few milliseconds after the runtime), less the idle
 * spares, which end after their quiet period like any other.  Counted
 * right after the runtime starts, the baseline missed the reader, and the
 * count never came back to it.
 */
static int settled_threads(void)
{
    unb_stats_t st;
    uint64_t t0 = now_ns();
    /* The ready spare is the monitor's last start; none comes without
     * spare threads (UNBLOCK_SPARE_THREADS=0) or room for one. */
    while (unb_stats(&st) == 0 && st.spare_peak == 0 && now_ns() - t0 < SETTLE_LIMIT_NS)
        sleep_ns(1000000);
    int n = count_threads(), same = 0;
    while (same < 3 && now_ns() - t0 < SETTLE_LIMIT_NS) {
        sleep_ns(10000000);
        int m = count_threads();
        same = m == n ? same + 1 : 0;
        n = m;
    }
    if (unb_stats(&st) != 0)
        die("unb_stats", errno);
    return n - (int)st.spare_threads;
}

static void *nothing(void *arg)
{
    return arg;
}

/* The end of either mode: the lock holder, the file, the buffers. */
static void finish(uint64_t *stamps, uint64_t *gaps)
{
    locker_stop();
    if (big_fd >= 0)
        close(big_fd);
    free(stamps);
    free(gaps);
}

int main(int argc, char **argv)
{
    const struct scen *chosen[NSCENS * 4];
    size_t nchosen = 0;
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--threads") == 0) {
        threads_mode = true;
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        size_t k;
        for (k = 0; k < NSCENS && strcmp(argv[i], scens[k].name) != 0; k++)
            ;
        if (k == NSCENS || nchosen == sizeof chosen / sizeof chosen[0]) {
            fprintf(stderr,
                    "usage: %s [--threads] [idle|fileread|resolver|flock|compute|"
                    "nanosleep]...\n",
                    argv[0]);
            return 2;
        }
        chosen[nchosen++] = &scens[k];
    }
    if (nchosen == 0)
        for (size_t k = 0; k < NSCENS; k++)
            chosen[nchosen++] = &scens[k];

    const char *given = getenv("UNBLOCK_WORKERS");
    if (!given)
        setenv("UNBLOCK_WORKERS", "1", 1);

    /* Before the runtime starts: no threads yet to copy into a child. */
    tsc_calibrate();
    bool need_file = false, need_lock = false;
    for (size_t i = 0; i < nchosen; i++) {
        need_file |= chosen[i]->run == run_fileread;
        need_lock |= chosen[i]->run == run_flock;
    }
    if (need_lock)
        locker_start();
    if (need_file)
        bigfile_make();

    uint64_t *stamps = malloc(sizeof *stamps * MAX_STAMPS);
    uint64_t *gaps = malloc(sizeof *gaps * MAX_STAMPS);
    if (!stamps || !gaps)
        die("malloc", ENOMEM);

    if (threads_mode) {
        for (size_t i = 0; i < nchosen; i++)
            run_scenario(chosen[i], stamps, gaps);
        finish(stamps, gaps);
        return 0;
    }

    /* Start the runtime, then count its threads. */
    unb_coro_t *co = unb_spawn(nothing, NULL);
    if (!co || unb_join(co, NULL) != 0)
        die("starting the runtime", errno);
    unb_stats_t st;
    unb_stats(&st);
    if (st.workers != 1)
        fprintf(stderr,
                "bench_monitor: warning: %llu workers (UNBLOCK_WORKERS=%s), "
                "not the single worker this benchmark is meant for\n",
                (unsigned long long)st.workers, given ? given : "1");
    int before = settled_threads();

    for (size_t i = 0; i < nchosen; i++)
        run_scenario(chosen[i], stamps, gaps);

    uint64_t t0 = now_ns();
    int after = count_threads(), peak = after, n = after;
    long long back = -1;
    for (;;) {
        if (n <= before) {
            back = (long long)((now_ns() - t0) / 1000000u);
            break;
        }
        if (now_ns() - t0 >= RETURN_LIMIT_NS)
            break;
        sleep_ns(RETURN_POLL_NS);
        n = count_threads();
        if (n > peak)
            peak = n;
    }
    printf("threads before=%d after=%d peak=%d return_ms=%lld\n", before, after, peak,
           back);

    finish(stamps, gaps);
    return 0;
}
