/*
 * UNBLOCK_STATS=1 (stats.h): a few lines of counters on stderr when the
 * process exits, each prefixed "libunblock: ".
 *
 * When: from whichever comes first of an atexit handler that unb_spawn
 * registers once the runtime has started (it runs before the scheduler's
 * own handler, which stops a linked program's workers and frees their
 * counters), and this library's destructor (the preload, whose workers run
 * to the end).  Both test unb__config.stats, which only unb__config_load
 * sets, and it runs only when the runtime starts: a process that never
 * started the runtime prints nothing.  _exit, a fatal signal and exec
 * print nothing either; a forked child that exits prints its own counters,
 * so the first line names the program and its pid.
 *
 * Where: the stderr the process started with.  Many programs close their
 * standard streams at exit, before any destructor runs (every coreutils
 * program fcloses stderr in an atexit handler), so when UNBLOCK_STATS asks
 * for statistics the constructor keeps a close-on-exec duplicate of fd 2,
 * numbered 100 or above to stay out of the program's way.  The duplicate
 * is used only if it still is the file it was (a program may close every
 * fd and open others); otherwise fd 2 is.  The cost of keeping it: a
 * program that daemonizes keeps the original stderr open in its child.
 *
 * How: one raw write(2) of all the lines, so neither a stdio stream nor a
 * hook is involved and the lines of processes exiting together do not mix.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <unblock.h>
#include "common.h"
#include "config.h"
#include "sched.h"
#include "stats.h"
#include "sys.h"

/* The lowest descriptor number the duplicate of stderr may take. */
#define STDERR_COPY_MIN 100

static atomic_bool armed;
static atomic_bool printed;

/* The duplicate of the initial stderr, and what it was, or -1. */
static int err_fd = -1;
static dev_t err_dev;
static ino_t err_ino;

/* A buffer of lines, each prefixed "libunblock: ". */
struct out {
    char buf[2048];
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void line(struct out *o, const char *fmt,
                                                       ...)
{
    static const char prefix[] = "libunblock: ";
    size_t room = sizeof o->buf - o->len;
    if (room < sizeof prefix + 1)
        return;
    memcpy(o->buf + o->len, prefix, sizeof prefix - 1);
    o->len += sizeof prefix - 1;
    room -= sizeof prefix - 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, room - 1, fmt, ap); /* room for '\n' */
    va_end(ap);
    if (n < 0)
        n = 0;
    o->len += (size_t)n < room - 2 ? (size_t)n : room - 2;
    o->buf[o->len++] = '\n';
}

/* Where to write: the duplicate if it is still the initial stderr. */
static int out_fd(void)
{
    struct stat st;
    if (err_fd >= 0 && unb__sys3(SYS_fstat, err_fd, (long)&st, 0) == 0 &&
        st.st_dev == err_dev && st.st_ino == err_ino)
        return err_fd;
    return 2;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        long r = unb__sys3(SYS_write, fd, (long)p, (long)n);
        if (r == -EINTR)
            continue;
        if (r <= 0)
            return;
        p += r;
        n -= (size_t)r;
    }
}

static unsigned long long u(uint64_t v)
{
    return (unsigned long long)v;
}

/* "parks by call: read 812, write 40, ...", the most frequent first. */
static void parks_by_call(struct out *o)
{
    uint64_t n[UNB_CALL_COUNT];
    unb__sched_parks_by_call(n);
    char text[768];
    size_t len = 0;
    for (;;) {
        unsigned best = UNB_CALL_COUNT;
        for (unsigned c = 0; c < UNB_CALL_COUNT; c++)
            if (n[c] && (best == UNB_CALL_COUNT || n[c] > n[best]))
                best = c;
        if (best == UNB_CALL_COUNT)
            break;
        int k = snprintf(text + len, sizeof text - len, "%s%s %llu", len ? ", " : "",
                         unb__call_label(best), u(n[best]));
        if (k < 0 || (size_t)k >= sizeof text - len)
            break;
        len += (size_t)k;
        n[best] = 0;
    }
    line(o, "  parks by call: %s", len ? text : "none");
}

static void print_stats(void)
{
    if (!unb__config.stats || atomic_exchange(&printed, true))
        return;
    unb_stats_t st;
    unb__sched_stats(&st);
    struct out o = {.len = 0};
    line(&o, "statistics of %s (pid %ld):", program_invocation_short_name,
         (long)getpid());
    line(&o,
         "  coroutines: %llu spawned, %llu alive at peak, %llu alive now; "
         "%llu workers",
         u(st.spawned), u(st.peak_alive), u(st.alive), u(st.workers));
    line(&o, "  scheduling: %llu switches, %llu steals, %llu parks, %llu wakeups",
         u(st.switches), u(st.steals), u(st.parks), u(st.wakeups));
    line(&o, "  monitor: %llu handoffs, %llu spare threads now, %llu at peak",
         u(st.handoffs), u(st.spare_threads), u(st.spare_peak));
    line(&o, "  stacks: %llu mapped, %llu of them unguarded", u(st.stacks_mapped),
         u(st.stacks_unguarded));
    parks_by_call(&o);
    write_all(out_fd(), o.buf, o.len);
}

void unb__stats_arm(void)
{
    if (atomic_load_explicit(&armed, memory_order_relaxed) ||
        atomic_exchange(&armed, true))
        return;
    int saved = unb_errno;
    if (atexit(print_stats) != 0)
        atomic_store(&armed, false); /* the destructor prints instead */
    unb_errno = saved;
}

/*
 * Keeps a duplicate of stderr when UNBLOCK_STATS may ask for statistics.
 * Runs before the configuration is read, so it tests the variable loosely
 * (set, not empty, not "0"); whether to print is unb__config.stats's
 * decision, at exit.
 */
__attribute__((constructor)) static void stats_init(void)
{
    int saved = errno;
    const char *v = secure_getenv("UNBLOCK_STATS"); /* NULL if setuid */
    if (v && *v && strcmp(v, "0") != 0) {
        struct stat st;
        long fd = unb__sys3(SYS_fcntl, 2, F_DUPFD_CLOEXEC, STDERR_COPY_MIN);
        if (fd < 0) /* RLIMIT_NOFILE is below the minimum */
            fd = unb__sys3(SYS_fcntl, 2, F_DUPFD_CLOEXEC, 3);
        if (fd >= 0 && unb__sys3(SYS_fstat, fd, (long)&st, 0) == 0) {
            err_fd = (int)fd;
            err_dev = st.st_dev;
            err_ino = st.st_ino;
        } else if (fd >= 0) {
            unb__sys3(SYS_close, fd, 0, 0);
        }
    }
    errno = saved;
}

__attribute__((destructor)) static void stats_fini(void)
{
    int saved = unb_errno;
    print_stats();
    unb_errno = saved;
}
