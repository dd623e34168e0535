/*
 * stuck_calls: a heartbeat thread sleeping 1 ms in a loop keeps ticking
 * while other threads sit in calls that block their OS thread and that no
 * hook can park: a raw syscall(SYS_nanosleep), a loop that computes
 * without calls, a read of a pseudo-terminal with nothing to read yet,
 * and stdio lines to a socket that a slow reader drains.  Natively each is a thread of
 * its own.  Under the preload with one worker, the monitor hands the worker to spare
 * threads.  Prints one line per scenario; run natively and under LD_PRELOAD (also with
 * UNBLOCK_WORKERS=1) by tests/test_preload.c.  With "no-close-range" it first
 * forbids close_range with a seccomp filter: a runtime that reads /proc from
 * a file table of its own must do without one, and still hand workers off.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

/* How long each call holds its thread: 600 ms, and under a tool that is
 * 20 or more times slower (UNB_TEST_SLOW; memcheck's 30) UNB_TEST_SLOW / 10
 * times that (1.8 s under memcheck), so that the heartbeat's bound can grow with the
 * tool's scheduling delays and stay well under what a call nobody hands off leaves (see
 * measure). */
static long stuck_ms = 600;

static atomic_bool measuring, stop;
static atomic_long ticks;
static _Atomic double max_gap_ms;

static void *heartbeat(void *arg)
{
    (void)arg;
    struct timespec last = now_on(CLOCK_MONOTONIC);
    while (!atomic_load(&stop)) {
        usleep(1000);
        struct timespec t = now_on(CLOCK_MONOTONIC);
        if (atomic_load(&measuring)) {
            double gap = ts_minus_ms(t, last);
            if (gap > atomic_load(&max_gap_ms))
                atomic_store(&max_gap_ms, gap);
            atomic_fetch_add(&ticks, 1);
        }
        last = t;
    }
    return NULL;
}

static void *raw_sleep(void *arg)
{
    (void)arg;
    struct timespec ts = {stuck_ms / 1000, stuck_ms % 1000 * 1000000};
    return (void *)(long)syscall(SYS_nanosleep, &ts, NULL);
}

static void *compute(void *arg)
{
    (void)arg;
    volatile uint64_t x = 1;
    struct timespec end = ts_add_ms(now_on(CLOCK_MONOTONIC), stuck_ms);
    while (!ts_reached(now_on(CLOCK_MONOTONIC), end))
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005u + 1;
    return (void *)(long)(x == 0);
}

/* A read of a pseudo-terminal's main side, which another thread writes to
 * after stuck_ms: a tty is not a socket or a pipe, so the read blocks its
 * OS thread. */
static int pty;

static void *tty_read(void *arg)
{
    (void)arg;
    char buf[16];
    ssize_t n = read(pty, buf, sizeof buf);
    return (void *)(long)(n > 0 ? 0 : -1);
}

static void *tty_write_later(void *arg)
{
    int fd = (int)(long)arg;
    struct timespec ts = {stuck_ms / 1000, stuck_ms % 1000 * 1000000};
    syscall(SYS_nanosleep, &ts, NULL);
    (void)!write(fd, "hello\n", 6);
    return NULL;
}

/* stdio lines to a socket with a small buffer: the writers block inside
 * glibc (its internal write, its FILE lock) until the reader, which
 * sleeps between reads, drains them. */
static FILE *wf;

static void *line_writer(void *arg)
{
    for (int i = 0; i < 200; i++)
        fprintf(wf, "writer %ld line %d\n", (long)arg, i);
    return NULL;
}

static void *slow_reader(void *arg)
{
    int fd = (int)(long)arg;
    char buf[512];
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        total += n;
        usleep(500);
    }
    return (void *)total;
}

static void measure(const char *what, void *(*fn)(void *), void *arg, void *want)
{
    atomic_store(&ticks, 0);
    atomic_store(&max_gap_ms, 0);
    phase = what;
    atomic_store(&measuring, true);
    pthread_t t = spawn(fn, arg);
    void *res = join(t);
    atomic_store(&measuring, false);
    double gap = atomic_load(&max_gap_ms);
    check(res == want, "%s: the call returns what it should", what);
    /* Under memcheck (make test-valgrind) one thread runs at a time, in
     * slices of about 5 ms that each runnable thread takes in turn, and
     * the monitor looks each 10 ms (runtime/sched.c, "The monitor"): the
     * heartbeat's gaps reach 90 ms natively there with 6 CPU hogs beside
     * it, 150 ms preloaded on a loaded machine, and more than 300 ms
     * natively at load averages of 5 to 9.  The bound is a quarter of the
     * stuck call's length (half under memcheck): a call nobody hands off
     * leaves a gap of all of it. */
    const char *tool = getenv("UNB_TEST_TOOL");
    double bound = (double)stuck_ms / (tool && strcmp(tool, "valgrind") == 0 ? 2 : 4);
    if (!check(gap < bound && atomic_load(&ticks) >= 50,
               "%s: the heartbeat keeps ticking", what))
        detail("largest gap %.1f ms (bound %.0f), %ld ticks", gap, bound,
               atomic_load(&ticks));
}

static void *stdio_scenario(void *arg)
{
    (void)arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return (void *)-1L;
    int small = 2048;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    wf = fdopen(sv[0], "w");
    setvbuf(wf, NULL, _IOLBF, 256);
    pthread_t r = spawn(slow_reader, (void *)(long)sv[1]);
    pthread_t w[8];
    for (long i = 0; i < 8; i++)
        w[i] = spawn(line_writer, (void *)i);
    for (int i = 0; i < 8; i++)
        join(w[i]);
    fclose(wf);
    long total = (long)join(r);
    close(sv[1]);
    long want = 0;
    for (int i = 0; i < 8; i++)
        for (int l = 0; l < 200; l++)
            want += snprintf(NULL, 0, "writer %d line %d\n", i, l);
    return (void *)(long)(total == want ? 0 : -1);
}

/* With "no-close-range": close_range fails with EPERM from here on, as in
 * a sandbox that forbids it (or ENOSYS before Linux 5.9).  Installed before
 * the program's second thread, which is when a runtime under the preload
 * would start its helpers. */
static void forbid_close_range(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_close_range, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        printf("FAIL - cannot install the seccomp filter: %s\n", strerror(errno));
        exit(1);
    }
}

/* Threads named unblock-proc: a runtime's reader of /proc with a file
 * table of its own.  Natively none; with close_range forbidden, none
 * either (the monitor must read /proc in the process's table). */
static int proc_readers(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        n += fgets(name, sizeof name, f) && strncmp(name, "unblock-proc", 12) == 0;
        fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    bool sandboxed = argc > 1 && strcmp(argv[1], "no-close-range") == 0;
    if (sandboxed)
        forbid_close_range();
    if (slow_factor() >= 20)
        stuck_ms = 600 * (long)(slow_factor() / 10);
    watchdog(20);
    pthread_t hb = spawn(heartbeat, NULL);
    usleep(20000);

    char what[3][80];
    snprintf(what[0], sizeof what[0], "raw syscall(SYS_nanosleep) %ld ms", stuck_ms);
    snprintf(what[1], sizeof what[1], "%ld ms of computation", stuck_ms);
    snprintf(what[2], sizeof what[2],
             "read of a terminal with nothing to read for %ld ms", stuck_ms);
    measure(what[0], raw_sleep, NULL, (void *)0);
    measure(what[1], compute, NULL, (void *)0);

    pty = posix_openpt(O_RDWR | O_NOCTTY);
    int sub = -1;
    if (pty >= 0 && grantpt(pty) == 0 && unlockpt(pty) == 0)
        sub = open(ptsname(pty), O_RDWR | O_NOCTTY);
    if (sub < 0) {
        printf("FAIL - no pseudo-terminal: %s\n", strerror(errno));
        return 1;
    }
    pthread_t w = spawn(tty_write_later, (void *)(long)sub);
    measure(what[2], tty_read, NULL, (void *)0);
    join(w);
    close(sub);
    close(pty);

    measure("stdio from 8 threads to a slowly read socket", stdio_scenario, NULL,
            (void *)0);

    if (sandboxed)
        printf("threads reading /proc with a file table of their own: %d\n",
               proc_readers());
    atomic_store(&stop, true);
    join(hb);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
