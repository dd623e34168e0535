/*
 * errno_handoff: errno through an address computed before a call that
 * holds its OS thread, in plain -O2 code:
 *
 *     errno = ENOTTY;              // errno's address, computed once
 *     syscall(SYS_nanosleep, ...); // no hook can park it
 *     if (errno == ENOTTY) ...     // the same address
 *
 * glibc declares __errno_location const, so the compiler keeps errno's
 * address in a register across the calls (`across` computes it once; the
 * build's own disassembly shows one call).  Under LD_PRELOAD=libunblock.so
 * with one worker, a heartbeat thread waits on the worker meanwhile, so
 * the monitor hands the worker to a spare OS thread while the call holds
 * its own; when the call ends, the thread takes its worker back and the
 * coroutine goes on where its address points.  Each of three stuck calls
 * (a raw nanosleep, a computation, a read of a terminal with nothing to
 * read yet), in main and in a thread:
 *   - errno set before the call is still there after it (the call
 *     succeeds and leaves it alone);
 *   - a hooked call that fails just after (read of fd -1: EBADF) sets
 *     errno where the address points;
 *   - errno's address is the same after the call as before.
 * And the heartbeat, which waited on the worker during the calls (and
 * ran on the spare), reads its own errno through the address it computed
 * before them, once they are over.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Run natively and under the preload (also with UNBLOCK_WORKERS=1) by
 * tests/test_preload.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

/* How long each call holds its thread: long enough for the monitor to
 * hand the worker off (about a millisecond natively, 20-25 ms under
 * memcheck, which runs the monitor's ticks 40 times longer). */
static long stuck_ms = 40;

/* errno's address, looked up afresh: through a pointer the compiler
 * cannot see through, so the call is not merged with the others. */
static int *(*volatile errno_addr)(void) = __errno_location;

static void raw_sleep(void)
{
    struct timespec ts = {0, stuck_ms * 1000000};
    syscall(SYS_nanosleep, &ts, NULL);
}

static void compute(void)
{
    volatile uint64_t x = 1;
    struct timespec end = ts_add_ms(now_on(CLOCK_MONOTONIC), stuck_ms);
    while (!ts_reached(now_on(CLOCK_MONOTONIC), end))
        for (int i = 0; i < 20000; i++)
            x = x * 6364136223846793005u + 1;
}

/* A terminal's main side, which a thread writes to after stuck_ms: a read
 * of it blocks the OS thread (a tty is neither a socket nor a pipe). */
static int pty, pty_sub;

static void *tty_write_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, stuck_ms * 1000000};
    syscall(SYS_nanosleep, &ts, NULL);
    (void)!write(pty_sub, "x\n", 2);
    return NULL;
}

static void tty_read(void)
{
    pthread_t t = spawn(tty_write_later, NULL);
    char buf[8];
    (void)!read(pty, buf, sizeof buf);
    join(t);
}

struct outcome {
    int kept;     /* errno after the stuck call (set before it) */
    int failed;   /* errno after read(-1) */
    int same;     /* errno's address unchanged */
};

/* The pattern: errno's address computed once, used across the calls. */
static __attribute__((noinline)) struct outcome across(void (*stuck)(void))
{
    struct outcome o;
    int *before = errno_addr();
    errno = ENOTTY;
    stuck();
    o.kept = errno;
    errno = EDOM;
    char c;
    ssize_t r = read(-1, &c, 1);
    o.failed = r == -1 ? errno : 0;
    o.same = before == errno_addr();
    return o;
}

static void report(const char *who, const char *what, struct outcome o)
{
    if (!check(o.kept == ENOTTY, "%s, %s: errno set before is kept", who, what))
        detail("errno %s", ename(o.kept));
    if (!check(o.failed == EBADF, "%s, %s: a failing read just after sets errno", who,
               what))
        detail("errno %s", ename(o.failed));
    check(o.same, "%s, %s: errno's address is the same after the call", who, what);
}

static const struct {
    const char *what;
    void (*fn)(void);
} calls[] = {
    {"raw syscall(SYS_nanosleep)", raw_sleep},
    {"a computation without calls", compute},
    {"a read of a terminal with nothing to read yet", tty_read},
};
#define NCALLS (sizeof calls / sizeof calls[0])

static atomic_bool stop;
static atomic_long ticks;

/* Ticks each millisecond until stopped; its errno's address is computed
 * before the first tick, its value checked after the last. */
static __attribute__((noinline)) void *heartbeat(void *arg)
{
    (void)arg;
    errno = ENOEXEC;
    while (!atomic_load(&stop)) {
        usleep(1000);
        atomic_fetch_add(&ticks, 1);
    }
    usleep(2000); /* once more, with every stuck call over */
    return (void *)(long)errno;
}

static void *in_thread(void *arg)
{
    for (size_t i = 0; i < NCALLS; i++) {
        phase = calls[i].what;
        report("a thread", calls[i].what, across(calls[i].fn));
    }
    return arg;
}

int main(void)
{
    if (slow_factor() >= 20)
        stuck_ms = 40 * (long)(slow_factor() / 10);
    watchdog(20);
    pty = posix_openpt(O_RDWR | O_NOCTTY);
    if (pty < 0 || grantpt(pty) != 0 || unlockpt(pty) != 0 ||
        (pty_sub = open(ptsname(pty), O_RDWR | O_NOCTTY)) < 0) {
        printf("FAIL - no pseudo-terminal: %s\n", strerror(errno));
        return 1;
    }
    pthread_t hb = spawn(heartbeat, NULL);
    usleep(5000);
    for (size_t i = 0; i < NCALLS; i++) {
        phase = calls[i].what;
        report("main", calls[i].what, across(calls[i].fn));
    }
    join(spawn(in_thread, NULL));
    atomic_store(&stop, true);
    phase = "the heartbeat's end";
    int hb_errno = (int)(long)join(hb);
    if (!check(hb_errno == ENOEXEC,
               "a thread that waited during the calls keeps its errno after them"))
        detail("errno %s", ename(hb_errno));
    check(atomic_load(&ticks) > 0, "the heartbeat ticked");
    close(pty_sub);
    close(pty);
    return failures ? 1 : 0;
}
