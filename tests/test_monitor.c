/*
 * test_monitor: one worker (UNBLOCK_WORKERS=1), where nothing else can
 * hide a stall.  A heartbeat coroutine sleeps 1 ms in a loop and records
 * the largest gap between its wake-ups while another coroutine on the same
 * worker
 *
 *   - sleeps 2 s through a raw syscall(SYS_nanosleep), which no hook sees;
 *   - waits 1 s on an flock that another process holds;
 *   - computes for 2 s without a call;
 *   - resolves "localhost" with getaddrinfo for 0.5 s;
 *   - reads a 64 MiB file over and over for 0.5 s (short calls, one after
 *     another, hold the worker as surely as one long call);
 *   - waits 1 s for a child in waitpid;
 *   - computes for 0.5 s, yielding after each 0.4 ms (the worker switches
 *     more often than a computation is judged, so nothing is handed off;
 *     with a short queue the worker polls its loop only every 61
 *     switches, so the heartbeat's timer waits for the poll to be marked
 *     as due, each tick, by the watchdog's arming: without that, gaps of
 *     24 ms).
 *
 * And while two coroutines switch without pause for 0.5 s, the monitor
 * sleeps: their worker keeps pushing its watchdog back (a monitor that
 * looked each 0.25 ms woke 2,000 times).
 *
 * Each call must give its native result, the heartbeat must keep ticking
 * (largest gap well under the stall; the 2 ms target is a benchmark, not
 * a test), and the spare threads must be gone again a little after.  As a
 * control, the same raw sleep with UNBLOCK_SPARE_THREADS=0 (in a child
 * process) must stall the heartbeat: the check can fail.  And with the
 * monitor off too, a loop of file reads must not stall it: the end of
 * each read yields once the heartbeat's timer is due (sched.h,
 * unb__rt_timer_due), with no monitor to ask.
 */
#define _GNU_SOURCE
#include "tap.h"

#define TOOL_LATENCY "a latency bound, and the tool changes thread scheduling"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <unblock.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the heartbeat ------------------------------------------------------ */

static struct {
    atomic_bool stop;
    atomic_bool measuring;
    atomic_long ticks;
    atomic_llong max_gap_ns;
    atomic_ullong spares_seen; /* unb_stats spare_threads, largest seen */
    atomic_llong mark_ns;      /* set by a scenario: ... */
    atomic_llong after_mark_ns; /* the first tick at or after it */
} hb;

static void *heartbeat(void *arg)
{
    (void)arg;
    int64_t last = now_ns();
    while (!atomic_load(&hb.stop)) {
        usleep(1000);
        int64_t t = now_ns();
        int64_t mark = atomic_load(&hb.mark_ns);
        if (mark && t >= mark && !atomic_load(&hb.after_mark_ns))
            atomic_store(&hb.after_mark_ns, t);
        if (atomic_load(&hb.measuring)) {
            if (t - last > atomic_load(&hb.max_gap_ns))
                atomic_store(&hb.max_gap_ns, t - last);
            atomic_fetch_add(&hb.ticks, 1);
            unb_stats_t st;
            unb_stats(&st);
            if (st.spare_threads > atomic_load(&hb.spares_seen))
                atomic_store(&hb.spares_seen, st.spare_threads);
        }
        last = t;
    }
    return NULL;
}

struct scenario {
    const char *name;
    void *(*fn)(void *);
    double seconds; /* how long the call blocks */
    long result;    /* fn's verdict: 1 when the call gave the native result */
    double share;   /* of the heartbeat's ticks that must happen meanwhile */
    double max_gap_ms; /* a tighter bound on the largest gap than 100 ms, or 0 */
};

/* Runs sc->fn in a coroutine beside the heartbeat and checks both. */
static void run_scenario(struct scenario *sc)
{
    atomic_store(&hb.ticks, 0);
    atomic_store(&hb.max_gap_ns, 0);
    atomic_store(&hb.spares_seen, 0);
    unb_stats_t before, after;
    unb_stats(&before);
    usleep(5000); /* the heartbeat is running */
    atomic_store(&hb.measuring, true);
    int64_t t0 = now_ns();
    unb_coro_t *co = unb_spawn(sc->fn, sc);
    void *res = NULL;
    unb_join(co, &res);
    int64_t elapsed = now_ns() - t0;
    atomic_store(&hb.measuring, false);
    unb_stats(&after);
    double gap_ms = (double)atomic_load(&hb.max_gap_ns) / 1e6;
    long ticks = atomic_load(&hb.ticks);
    note("%s: %.2f s, heartbeat %ld ticks, largest gap %.2f ms, %" PRIu64
         " handoffs, up to %llu spare threads",
         sc->name, (double)elapsed / 1e9, ticks, gap_ms,
         after.handoffs - before.handoffs,
         (unsigned long long)atomic_load(&hb.spares_seen));
    ok(sc->result == 1, "%s: the call gives its native result", sc->name);
    cmp_ok((double)elapsed / 1e9, >=, sc->seconds * 0.9,
           "%s: it took as long as the call", sc->name);
    if (test_tool()[0]) {
        /* These bound the monitor's latency, which the tool changes:
         * valgrind runs one thread at a time, and a sanitizer's slower
         * code and its own locks shift every tick. */
        skip(TOOL_LATENCY, "%s: the heartbeat on the same worker never stalls %.0f ms",
             sc->name, sc->max_gap_ms ? sc->max_gap_ms : 100);
        skip(TOOL_LATENCY, "%s: the heartbeat ticked through it", sc->name);
        return;
    }
    double bound = sc->max_gap_ms ? sc->max_gap_ms : 100;
    cmp_ok(gap_ms, <, bound, "%s: the heartbeat on the same worker never stalls %.0f ms",
           sc->name, bound);
    /* A tick costs about 1.1 ms (the loop's millisecond timeout).  During
     * one long call the heartbeat runs on the spare thread all along; a
     * loop of short calls goes back to its worker after each, and is
     * handed off again after a tick, so the heartbeat gets a share. */
    cmp_ok((double)ticks, >=, (double)elapsed / 1e6 / 1.1 * sc->share,
           "%s: the heartbeat ticked through it (%.0f%% of the ticks at least)",
           sc->name, sc->share * 100);
}

/* ---- the scenarios ------------------------------------------------------ */

static void *raw_sleep(void *arg)
{
    struct scenario *sc = arg;
    struct timespec ts = {(time_t)sc->seconds,
                          (long)((sc->seconds - (double)(time_t)sc->seconds) * 1e9)};
    errno = 0;
    long rc = syscall(SYS_nanosleep, &ts, NULL);
    sc->result = rc == 0 && errno == 0;
    return NULL;
}

static void *compute(void *arg)
{
    struct scenario *sc = arg;
    volatile uint64_t x = 1;
    int64_t end = now_ns() + (int64_t)(sc->seconds * 1e9);
    /* No calls but the vDSO clock, every million rounds. */
    for (;;) {
        for (int i = 0; i < 1000000; i++)
            x = x * 6364136223846793005u + 1442695040888963407u;
        if (now_ns() >= end)
            break;
    }
    sc->result = x != 0;
    return NULL;
}

/* Computes for sc->seconds in slices of 0.4 ms, yielding after each. */
static void *compute_yielding(void *arg)
{
    struct scenario *sc = arg;
    volatile uint64_t x = 1;
    int64_t end = now_ns() + (int64_t)(sc->seconds * 1e9);
    long yields = 0;
    for (int64_t t = now_ns(); t < end; t = now_ns()) {
        while (now_ns() - t < 400000)
            for (int i = 0; i < 1000; i++)
                x = x * 6364136223846793005u + 1442695040888963407u;
        unb_yield();
        yields++;
    }
    /* The heartbeat takes its share; under a tool, far more. */
    sc->result = x != 0 && yields >= (long)(sc->seconds / 0.0004 / 4);
    return NULL;
}

static char lock_path[] = "/tmp/unblock-monitor-lock-XXXXXX";

static void *flock_wait(void *arg)
{
    struct scenario *sc = arg;
    int fd = open(lock_path, O_RDWR);
    int rc = fd < 0 ? -1 : flock(fd, LOCK_EX);
    sc->result = rc == 0;
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void *resolve(void *arg)
{
    struct scenario *sc = arg;
    int64_t end = now_ns() + (int64_t)(sc->seconds * 1e9);
    long good = 0, calls = 0;
    do {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        if (getaddrinfo("localhost", "80", &hints, &res) == 0 && res) {
            const struct sockaddr_in *sin = (const void *)res->ai_addr;
            good += ntohl(sin->sin_addr.s_addr) == INADDR_LOOPBACK;
            freeaddrinfo(res);
        }
        calls++;
    } while (now_ns() < end);
    sc->result = good == calls;
    return NULL;
}

static char file_path[] = "/tmp/unblock-monitor-file-XXXXXX";
#define FILE_MB 64

static void *read_file(void *arg)
{
    struct scenario *sc = arg;
    static char buf[1 << 20];
    int64_t end = now_ns() + (int64_t)(sc->seconds * 1e9);
    long good = 0, rounds = 0;
    do {
        int fd = open(file_path, O_RDONLY);
        long long total = 0;
        ssize_t r;
        int bad = 0;
        while (fd >= 0 && (r = read(fd, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < r; i += 4096)
                bad += buf[i] != (char)((total + i) >> 20);
            total += r;
        }
        if (fd >= 0)
            close(fd);
        good += total == (long long)FILE_MB << 20 && bad == 0;
        rounds++;
    } while (now_ns() < end);
    sc->result = good == rounds;
    return NULL;
}

static void *child_wait(void *arg)
{
    struct scenario *sc = arg;
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec ts = {1, 0};
        syscall(SYS_nanosleep, &ts, NULL);
        _exit(7);
    }
    int status = 0;
    pid_t got = waitpid(pid, &status, 0);
    sc->result = got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7;
    return NULL;
}

/* A signal raised by a coroutine that runs on a spare thread (its worker
 * was handed off) runs the handler: spares take the workers' signal mask,
 * not the monitor's, which blocks everything. */
static atomic_int usr1;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&usr1, 1);
}

static void *raise_usr1(void *arg)
{
    (void)arg;
    raise(SIGUSR1);
    return NULL;
}

static void signal_on_spare(void)
{
    signal(SIGUSR1, on_usr1);
    struct scenario sc = {"raw sleep under a signal", raw_sleep, 0.3, 0, 0, 0};
    unb_coro_t *sleeper = unb_spawn(raw_sleep, &sc);
    usleep(100000); /* the worker is on a spare thread by now */
    unb_stats_t st;
    unb_stats(&st);
    unb_join(unb_spawn(raise_usr1, NULL), NULL);
    unb_join(sleeper, NULL);
    ok(st.spare_threads > 0,
       "a spare thread runs the worker while a raw sleep holds its thread");
    is_int(atomic_load(&usr1), 1,
           "a signal raised by a coroutine on the spare thread ran its handler");
    signal(SIGUSR1, SIG_DFL);
}

/*
 * A process-directed signal goes to any thread that lets it in, and in a
 * linked program an idle spare thread does (spares take the workers'
 * mask, see signal_on_spare).  Such a thread runs no coroutine, like an
 * idle worker: the handler's EINTR goes to the call parked longest, as
 * the kernel, had the coroutines been threads, would have picked a
 * blocked one.  It used to count as a running thread catching the
 * signal, which interrupts nobody (test_io's interrupted unb_wait_fd
 * under memcheck returned the data that came 100 ms later).  Here each
 * thread that lets SIGALRM in is sent one while a coroutine waits in
 * unb_wait_fd, the worker's thread and an idle spare among them: the
 * kernel's choice made deterministic with rt_tgsigqueueinfo, whose
 * SI_QUEUE is what sigqueue() to the process gives (tgkill's SI_TKILL
 * would mean a signal for that thread alone).
 */
static atomic_int alrm;

static void on_alrm(int sig)
{
    (void)sig;
    atomic_fetch_add(&alrm, 1);
}

struct waiter {
    int fd, r, err;
};

static void *wait_in(void *arg)
{
    struct waiter *wt = arg;
    wt->r = unb_wait_fd(wt->fd, POLLIN, (int)(3000 * test_slow()));
    wt->err = errno;
    return NULL;
}

/* Whether thread tid lets `sig` in (its SigBlk in /proc). */
static bool lets_in(pid_t tid, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "r");
    unsigned long long blk = ~0ull;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "SigBlk: %llx", &blk) == 1)
            break;
    if (f)
        fclose(f);
    return !(blk >> (sig - 1) & 1);
}

/* The threads other than the first that let `sig` in, into tids. */
static int open_threads(pid_t *tids, int max, int sig)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid > 0 && tid != getpid() && lets_in(tid, sig))
            tids[n++] = tid;
    }
    if (d)
        closedir(d);
    return n;
}

static void signal_to_idle_threads(void)
{
    struct sigaction sa = {.sa_handler = on_alrm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    /* A spare: a raw sleep holds the worker's thread while another
     * coroutine waits on the worker's loop; when the sleep ends, the
     * old thread waits in the spare pool (for 2 s). */
    int hold[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, hold) != 0)
        BAIL("socketpair: %s", strerror(errno));
    struct waiter holder = {hold[0], 0, 0};
    unb_coro_t *h = unb_spawn(wait_in, &holder);
    struct scenario sc = {"raw sleep for a spare", raw_sleep, 0.3, 0, 0, 0};
    unb_join(unb_spawn(raw_sleep, &sc), NULL);
    (void)!write(hold[1], "x", 1); /* not a park for the signals below */
    unb_join(h, NULL);
    is_int(holder.r, 1, "the coroutine that waited beside the raw sleep saw its data");
    close(hold[0]);
    close(hold[1]);
    unb_stats_t st;
    unb_stats(&st);
    ok(st.spare_threads > 0,
       "a raw sleep while a coroutine waits leaves a spare thread");

    /* One worker: its thread, and the spare (the monitor blocks all).
     * Under valgrind, whose threads run one at a time, the monitor also
     * hands the worker off now and then, and a thread it has just started
     * has its mask (all blocked) until it sets its own: look again for a
     * while before deciding. */
    pid_t tids[64];
    int n = 0;
    for (int64_t t0 = now_ns(); n < 2 && now_ns() - t0 < 2000000000; usleep(10000))
        n = open_threads(tids, 64, SIGALRM);
    cmp_ok(n, >=, 2, "threads that let SIGALRM in: the worker's and a spare at least");
    int interrupted = 0;
    for (int i = 0; i < n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
            BAIL("socketpair: %s", strerror(errno));
        struct waiter wt = {sv[0], 0, 0};
        unb_stats(&st);
        uint64_t p0 = st.parks;
        int hits = atomic_load(&alrm);
        unb_coro_t *co = unb_spawn(wait_in, &wt);
        int64_t t0 = now_ns();
        do {
            usleep(1000);
            unb_stats(&st);
        } while (st.parks == p0 && now_ns() - t0 < 5000000000);
        usleep(10000); /* into its park's wait, not between its steps */
        siginfo_t si = {.si_signo = SIGALRM,
                        .si_code = SI_QUEUE,
                        .si_pid = getpid(),
                        .si_uid = getuid()};
        int rc = (int)syscall(SYS_rt_tgsigqueueinfo, getpid(), tids[i], SIGALRM, &si);
        unb_join(co, NULL);
        if (rc != 0) { /* it ended meanwhile */
            diag("thread %d: %s", (int)tids[i], strerror(errno));
        } else {
            interrupted += wt.r == -1 && wt.err == EINTR;
            if (wt.r != -1 || wt.err != EINTR)
                diag(
                    "thread %d took the signal (handler runs %d): unb_wait_fd gave %d, "
                    "errno %s",
                    (int)tids[i], atomic_load(&alrm) - hits, wt.r, strerror(wt.err));
        }
        close(sv[0]);
        close(sv[1]);
    }
    is_int(interrupted, n,
           "a SIGALRM taken by any thread running no coroutine (idle worker, idle "
           "spare) interrupts the parked unb_wait_fd with EINTR");
    signal(SIGALRM, SIG_DFL);
}

/* ---- a busy worker does not wake the monitor ------------------------------ */

/* The monitor thread's voluntary context switches (its wake-ups), or -1. */
static long monitor_wakeups(void)
{
    DIR *d = opendir("/proc/self/task");
    long n = -1;
    struct dirent *e;
    while (d && n < 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool is_monitor = fgets(buf, sizeof buf, f) && strncmp(buf, "unblock-monitor", 15) == 0;
        fclose(f);
        if (!is_monitor)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        while (fgets(buf, sizeof buf, f))
            if (sscanf(buf, "voluntary_ctxt_switches: %ld", &n) == 1)
                break;
        fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

static atomic_bool pingpong_stop;

static void *pingpong(void *arg)
{
    long *switches = arg;
    while (!atomic_load(&pingpong_stop)) {
        unb_yield();
        ++*switches;
    }
    return NULL;
}

static void monitor_sleeps_while_busy(void)
{
    long a = 0, b = 0;
    atomic_store(&pingpong_stop, false);
    unb_coro_t *pa = unb_spawn(pingpong, &a), *pb = unb_spawn(pingpong, &b);
    usleep(50000); /* the pair runs; the heartbeat's worker is theirs too */
    long before = monitor_wakeups();
    usleep(500000);
    long after = monitor_wakeups();
    atomic_store(&pingpong_stop, true);
    unb_join(pa, NULL);
    unb_join(pb, NULL);
    note("two coroutines switching for 0.5 s (%ld switches): the monitor woke %ld times",
         a + b, after - before);
    ok(before >= 0 && after >= before, "the monitor thread is found in /proc");
    cmp_ok(after - before, <, 200,
           "while its worker switches without pause, the monitor sleeps (fewer than "
           "200 wake-ups in 0.5 s; looks each 0.25 ms made 2,000)");
}

/* ---- helpers ------------------------------------------------------------ */

static int os_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* A child holds an flock on the lock file for `seconds`; returns its pid
 * once it holds it. */
static pid_t hold_lock(double seconds)
{
    int ready[2];
    if (pipe(ready) != 0)
        BAIL("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(lock_path, O_RDWR);
        if (fd < 0 || flock(fd, LOCK_EX) != 0)
            _exit(1);
        (void)!write(ready[1], "x", 1);
        struct timespec ts = {(time_t)seconds,
                              (long)((seconds - (double)(time_t)seconds) * 1e9)};
        syscall(SYS_nanosleep, &ts, NULL);
        _exit(0);
    }
    close(ready[1]);
    char c;
    if (read(ready[0], &c, 1) != 1)
        BAIL("the lock holder did not start");
    close(ready[0]);
    return pid;
}

/* The control: in a child with UNBLOCK_SPARE_THREADS=0, a raw 0.5 s sleep
 * stalls the heartbeat.  Prints the largest gap in ms on stdout. */
static int control_child(void)
{
    unb_coro_t *h = unb_spawn(heartbeat, NULL);
    usleep(20000);
    atomic_store(&hb.measuring, true);
    struct scenario sc = {"control", raw_sleep, 0.5, 0, 0, 0};
    unb_join(unb_spawn(raw_sleep, &sc), NULL);
    /* The join may run before the heartbeat's first tick after the stall,
     * which is the tick that measures it (once in a make test run, 1.3 ms
     * was all it saw): let that tick come first. */
    usleep(5000);
    atomic_store(&hb.measuring, false);
    atomic_store(&hb.stop, true);
    unb_join(h, NULL);
    printf("%.1f\n", (double)atomic_load(&hb.max_gap_ns) / 1e6);
    return 0;
}

/* The other one: in a child with UNBLOCK_SPARE_THREADS=0, a coroutine
 * reads an 8 MiB file in 1 MiB calls for 0.5 s.  Prints the largest gap
 * in ms. */
static void *pread_loop(void *arg)
{
    static char chunk[1 << 20];
    int fd = *(int *)arg;
    int64_t end = now_ns() + 500000000;
    do
        for (int i = 0; i < 8; i++)
            if (pread(fd, chunk, sizeof chunk, (off_t)i << 20) != (ssize_t)sizeof chunk)
                return (void *)1;
    while (now_ns() < end);
    return NULL;
}

static int control_reads_child(void)
{
    static char chunk[1 << 20];
    int fd = mkstemp(file_path);
    if (fd < 0)
        return 1;
    unlink(file_path);
    for (int i = 0; i < 8; i++) {
        memset(chunk, (char)i, sizeof chunk);
        if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk)
            return 1;
    }
    unb_coro_t *h = unb_spawn(heartbeat, NULL);
    usleep(20000);
    atomic_store(&hb.measuring, true);
    void *failed = NULL;
    unb_join(unb_spawn(pread_loop, &fd), &failed);
    usleep(5000); /* the heartbeat's tick after the stall first (control_child) */
    atomic_store(&hb.measuring, false);
    atomic_store(&hb.stop, true);
    unb_join(h, NULL);
    if (failed)
        return 1;
    printf("%.1f\n", (double)atomic_load(&hb.max_gap_ns) / 1e6);
    return 0;
}

/* The third: in a child with UNBLOCK_SPARE_THREADS=0, a coroutine
 * computes for 5 ms (the heartbeat's timer comes due meanwhile) and then
 * waits 300 ms for a child process in waitpid, a marked call.  The call
 * yields before it starts, so the heartbeat ticks at once, not after the
 * wait.  Prints, in ms, how long after the call began the heartbeat
 * ticked. */
static void *compute_then_wait(void *arg)
{
    (void)arg;
    int64_t end = now_ns() + 5000000;
    while (now_ns() < end)
        ;
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec ts = {0, 300000000};
        syscall(SYS_nanosleep, &ts, NULL);
        _exit(0);
    }
    if (pid < 0)
        return (void *)1;
    atomic_store(&hb.mark_ns, now_ns());
    int status;
    return waitpid(pid, &status, 0) == pid ? NULL : (void *)1;
}

static int control_due_child(void)
{
    unb_coro_t *h = unb_spawn(heartbeat, NULL);
    usleep(20000);
    void *failed = NULL;
    unb_join(unb_spawn(compute_then_wait, NULL), &failed);
    atomic_store(&hb.stop, true);
    unb_join(h, NULL);
    int64_t mark = atomic_load(&hb.mark_ns), after = atomic_load(&hb.after_mark_ns);
    if (failed || !mark || !after)
        return 1;
    printf("%.1f\n", (double)(after - mark) / 1e6);
    return 0;
}

/* Runs this program again with `arg`, one worker and no spare threads;
 * returns the largest gap it printed, or -1. */
static double control_run(const char *self, const char *arg)
{
    int out[2];
    if (pipe(out) != 0)
        BAIL("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        setenv("UNBLOCK_SPARE_THREADS", "0", 1);
        setenv("UNBLOCK_WORKERS", "1", 1);
        execl(self, self, arg, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char buf[64] = {0};
    ssize_t n = read(out[0], buf, sizeof buf - 1);
    close(out[0]);
    int status;
    waitpid(pid, &status, 0);
    return n > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? atof(buf) : -1;
}

static void control(const char *self)
{
    double gap = control_run(self, "--control");
    note("control: without spare threads the heartbeat's largest gap is %.1f ms", gap);
    if (test_tool()[0]) {
        skip(TOOL_LATENCY, "control: without spare threads a raw 0.5 s sleep stalls "
                           "its worker");
        return;
    }
    cmp_ok(gap, >=, 400,
           "control: without spare threads (UNBLOCK_SPARE_THREADS=0) a raw 0.5 s sleep "
           "stalls its worker");

    gap = control_run(self, "--control-reads");
    note("without spare threads, beside 0.5 s of 1 MiB file reads, the heartbeat's "
         "largest gap is %.1f ms",
         gap);
    if (test_tool()[0]) {
        skip(TOOL_LATENCY, "without the monitor, a loop of file reads lets a due timer "
                           "fire");
        return;
    }
    ok(gap > 0 && gap < 100,
       "without the monitor (UNBLOCK_SPARE_THREADS=0), a loop of file reads lets the "
       "heartbeat's due timer fire: largest gap under 100 ms, not the loop's 500");

    double after = control_run(self, "--control-due");
    note("without spare threads, a waitpid of 300 ms begun with the heartbeat's timer "
         "due: the heartbeat ticked %.1f ms after the call began",
         after);
    ok(after >= 0 && after < 150,
       "without the monitor, a marked call begun with a timer due lets it fire first: "
       "the heartbeat ticks within 150 ms of the call's start, not after its 300 ms");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--control") == 0)
        return control_child();
    if (argc > 1 && strcmp(argv[1], "--control-reads") == 0)
        return control_reads_child();
    if (argc > 1 && strcmp(argv[1], "--control-due") == 0)
        return control_due_child();
    setenv("UNBLOCK_WORKERS", "1", 1);
    unsetenv("UNBLOCK_SPARE_THREADS");

    int fd = mkstemp(lock_path);
    if (fd < 0)
        BAIL("mkstemp: %s", strerror(errno));
    close(fd);
    fd = mkstemp(file_path);
    if (fd < 0)
        BAIL("mkstemp: %s", strerror(errno));
    static char chunk[1 << 20];
    for (int i = 0; i < FILE_MB; i++) {
        memset(chunk, (char)i, sizeof chunk);
        if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk)
            BAIL("cannot write the test file");
    }
    close(fd);

    /* A second coroutine starts the monitor, and the monitor one spare
     * thread, unused until a handoff.  The process's threads without the
     * spares are the count the end comes back to. */
    unb_coro_t *h = unb_spawn(heartbeat, NULL);
    usleep(20000);
    unb_stats_t st0;
    int64_t w0 = now_ns();
    do {
        unb_stats(&st0);
        if (st0.spare_threads > 0)
            break;
        usleep(10000);
    } while (now_ns() - w0 < 1000000000);
    /* Under memcheck, which runs one thread at a time, a handoff can come
     * by itself this early (a thread waiting for the tool's lock looks
     * stuck); then the spare counted may be the one it made. */
    ok(st0.spare_threads >= 1 && (st0.handoffs == 0 || under_tool("valgrind")),
       "the monitor starts one spare thread as it starts (%" PRIu64 ", %" PRIu64
       " handoffs)",
       st0.spare_threads, st0.handoffs);
    int threads_before = os_threads() - (int)st0.spare_threads;

    struct scenario sleep2 = {"raw syscall(SYS_nanosleep) for 2 s", raw_sleep, 2, 0,
                              0.5, 0};
    run_scenario(&sleep2);

    pid_t holder = hold_lock(1);
    struct scenario fl = {"flock held by another process for 1 s", flock_wait, 0.9, 0,
                          0.5, 0};
    run_scenario(&fl);
    waitpid(holder, NULL, 0);

    struct scenario cpu = {"a 2 s computation without calls", compute, 2, 0, 0.5, 0};
    run_scenario(&cpu);

    struct scenario gai = {"getaddrinfo(\"localhost\") for 0.5 s", resolve, 0.5, 0,
                           0.1, 0};
    run_scenario(&gai);

    struct scenario rd = {"reading a 64 MiB file for 0.5 s", read_file, 0.5, 0, 0.1, 0};
    run_scenario(&rd);

    struct scenario wt = {"waitpid for a child that exits after 1 s", child_wait, 0.9,
                          0, 0.5, 0};
    run_scenario(&wt);

    /* 15 ms: far above the ~2 ms that a tick, two looks and a slice
     * allow, well under the 24 ms of a poll only every 61 switches. */
    struct scenario yl = {"computing 0.5 s, yielding each 0.4 ms", compute_yielding,
                          0.5, 0, 0.5, 15};
    run_scenario(&yl);

    signal_on_spare();
    monitor_sleeps_while_busy();

    /* The spare threads exit after 2 s idle. */
    int64_t t0 = now_ns();
    unb_stats_t st;
    do {
        usleep(100000);
        unb_stats(&st);
    } while ((st.spare_threads > 0 || os_threads() > threads_before) &&
             now_ns() - t0 < 6000000000);
    note("spare threads gone after %.1f s (peak %" PRIu64 ", %" PRIu64 " handoffs)",
         (double)(now_ns() - t0) / 1e9, st.spare_peak, st.handoffs);
    ok(st.spare_peak > 0 && st.handoffs > 0, "the monitor used spare threads");
    is_int(st.spare_threads, 0, "the spare threads are gone again a little after");
    is_int(os_threads(), threads_before,
           "the process has as many threads as before, spares aside");

    atomic_store(&hb.stop, true);
    unb_join(h, NULL);
    unlink(lock_path);
    unlink(file_path);

    signal_to_idle_threads();
    control(argv[0]);
    return done_testing();
}
