/*
 * The coroutine dump: Go's goroutine traceback for libunblock.
 *
 * A program opts in with UNBLOCK_DUMP_SIGNAL (or `unblock --dump-signal`),
 * naming a signal it does not use itself.  When that signal arrives, the
 * runtime writes every live coroutine with its state, what it waits in
 * (`read(fd 7)`, `pthread_mutex_lock(0x...)`, `nanosleep, 1.2 s left`), and
 * a backtrace where the frames can be found, and the program goes on.
 *
 * Where it goes.  A plain `kill -USR2 PID` gets it on the process's
 * stderr, as Go's SIGQUIT does.  `unblock --dump PID` sends the signal with
 * sigqueue and a value that names the write end of a pipe in the sender
 * (dumpsig.h); the dump opens that pipe through /proc/SENDER/fd/N, which
 * the kernel allows only to a process that could read the sender's memory
 * anyway (same user, or privileged), and the launcher prints what comes
 * through.  If the open fails, stderr it is.
 *
 * Who writes it.  A signal handler can do almost nothing safely, so the
 * handler only records the request and wakes the monitor thread
 * (sched.c), which copies the coroutines (unb__sched_snapshot) and writes
 * the text.  The monitor runs whenever the dump is configured, even with
 * the spare threads off.  Writes give up after 2 s without progress, so a
 * reader that stops reading cannot keep the monitor from its work.
 *
 * Backtraces come from frame pointers (sched.c, walk_frames): the runtime
 * keeps them, so every parked coroutine shows at least the program's call
 * of the hook; deeper frames show where the program was built with
 * -fno-omit-frame-pointer.  Names come from dladdr, so only exported
 * symbols have them (an executable's own functions need -rdynamic); each
 * frame also shows its object and the offset in it, for addr2line.
 */
#define _GNU_SOURCE
#include "dump.h"

#include <dlfcn.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../libunblock/real.h"
#include "calls.h"
#include "config.h"
#include "dumpsig.h"
#include "sched.h"
#include "sys.h"

/* ---- call labels (calls.h) ----------------------------------------------- */

#define UNB_CALL_LABEL_(name, label, obj) label,
static const char *const call_labels[] = {UNB_CALLS(UNB_CALL_LABEL_)};
#undef UNB_CALL_LABEL_
#define UNB_CALL_OBJ_(name, label, obj) obj,
static const enum unb__obj call_objs[] = {UNB_CALLS(UNB_CALL_OBJ_)};
#undef UNB_CALL_OBJ_

const char *unb__call_label(unsigned call)
{
    return call < UNB_CALL_COUNT ? call_labels[call] : "?";
}

enum unb__obj unb__call_obj(unsigned call)
{
    return call < UNB_CALL_COUNT ? call_objs[call] : UNB_OBJ_NONE;
}

/* ---- the request ---------------------------------------------------------- */

/* Where the last request asked the dump to go: a pipe in process
 * req_pid, or stderr when req_pid is 0. */
static _Atomic int req_pid;
static _Atomic int req_fd;

static void on_dump_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    int saved = errno;
    int v = si->si_value.sival_int;
    if (si->si_code == SI_QUEUE && si->si_pid > 0 &&
        (v & UNB_DUMP_TAG_MASK) == UNB_DUMP_TAG) {
        atomic_store(&req_fd, v & UNB_DUMP_FD_MASK);
        atomic_store(&req_pid, si->si_pid);
    } else {
        atomic_store(&req_pid, 0);
    }
    unb__sched_dump_request();
    errno = saved;
}

void unb__dump_install(void)
{
    static bool installed;
    int sig = unb__config.dump_signal;
    if (!sig || installed)
        return;
    struct sigaction old;
    if (UNB_REAL(sigaction)(sig, NULL, &old) == 0 &&
        ((old.sa_flags & SA_SIGINFO) ||
         (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))) {
        unb__say("UNBLOCK_DUMP_SIGNAL: the program handles signal %d itself; "
                 "no coroutine dump",
                 sig);
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_dump_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (UNB_REAL(sigaction)(sig, &sa, NULL) != 0) {
        unb__say("UNBLOCK_DUMP_SIGNAL: cannot catch signal %d (%s)", sig,
                 strerror(errno));
        return;
    }
    installed = true;
}

/* ---- the text ------------------------------------------------------------- */

struct text {
    char *p;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt,
                                                      ...)
{
    for (;;) {
        if (t->failed)
            return;
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->p ? t->p + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static const char *state_name(uint8_t state)
{
    switch (state) {
    case UNB_CO_NEW: return "new, not yet run";
    case UNB_CO_READY: return "runnable";
    case UNB_CO_RUNNING: return "running";
    case UNB_CO_PARKED: return "parked";
    default: return "ending";
    }
}

/* What a parked coroutine waits in: "read(fd 7)", "nanosleep, 1.20 s left". */
static void put_wait(struct text *t, const struct unb__dump_coro *c, double waited)
{
    const char *label = unb__call_label(c->wait_call);
    int64_t o = c->wait_obj;
    switch (unb__call_obj(c->wait_call)) {
    case UNB_OBJ_FD: put(t, "%s(fd %d)", label, (int)o); break;
    case UNB_OBJ_NFDS: {
        unsigned n = (unsigned)((uint64_t)o >> 32);
        int first = (int)(uint32_t)o;
        if (n == 0)
            put(t, "%s(no fds)", label);
        else if (n == 1)
            put(t, "%s(fd %d)", label, first);
        else
            put(t, "%s(%u fds: fd %d, ...)", label, n, first);
        break;
    }
    case UNB_OBJ_DEADLINE: {
        double left = (double)o * 1e-9 - waited;
        put(t, "%s, %.3f s left", label, left > 0 ? left : 0.);
        break;
    }
    case UNB_OBJ_ADDR: put(t, "%s(%#llx)", label, (unsigned long long)o); break;
    case UNB_OBJ_CORO: put(t, "%s(coroutine %lld)", label, (long long)o); break;
    default: put(t, "%s", label); break;
    }
}

/* One address: "0x7f.. name+0x1f (/path/to/object+0x11f3)". */
static void put_addr(struct text *t, uintptr_t a)
{
    Dl_info info;
    put(t, "%#lx", (unsigned long)a);
    if (!dladdr((void *)a, &info) || !info.dli_fname) {
        put(t, " (?)\n");
        return;
    }
    if (info.dli_sname && info.dli_saddr)
        put(t, " %s+%#lx", info.dli_sname, (unsigned long)(a - (uintptr_t)info.dli_saddr));
    put(t, " (%s+%#lx)\n", info.dli_fname, (unsigned long)(a - (uintptr_t)info.dli_fbase));
}

/* Is a an address in this library? */
static bool in_runtime(uintptr_t a, uintptr_t self_base)
{
    Dl_info info;
    return dladdr((void *)a, &info) && (uintptr_t)info.dli_fbase == self_base;
}

static void put_coro(struct text *t, const struct unb__dump_coro *c, double now,
                     uintptr_t self_base)
{
    put(t, "coroutine %llu", (unsigned long long)c->id);
    if (c->name[0])
        put(t, " \"%s\"", c->name);
    put(t, " [");
    if (c->state == UNB_CO_PARKED) {
        double waited = now - c->wait_since;
        if (waited < 0)
            waited = 0;
        put_wait(t, c, waited);
        put(t, ", parked %.3f s", waited);
    } else if (c->state == UNB_CO_RUNNING) {
        put(t, "running on thread %d", (int)c->tid);
        if (c->blocking)
            put(t, ", in the blocking call %s", c->blocking);
    } else {
        put(t, "%s", state_name(c->state));
    }
    if (c->worker >= 0)
        put(t, ", worker %d", c->worker);
    if (c->pthread)
        put(t, ", a thread of the program");
    if (c->pinned)
        put(t, ", pinned to its thread");
    put(t, "]:\n");
    /* The runtime's own frames come first (switch, park, the hook's
     * engine) and last (the coroutine's start): the program's are those
     * between, from its call of the hook to its thread's function. */
    unsigned i = 0, end = c->nframes;
    while (i < end && in_runtime(c->frames[i], self_base))
        i++;
    while (end > i && in_runtime(c->frames[end - 1], self_base))
        end--;
    if (i == end) { /* all the runtime's: show them, rather than nothing */
        i = 0;
        end = c->nframes;
    }
    for (unsigned k = 0; i < end; i++, k++) {
        put(t, "    #%u ", k);
        put_addr(t, c->frames[i]);
    }
    if (c->state == UNB_CO_NEW && c->entry) {
        put(t, "    entry ");
        put_addr(t, c->entry);
    } else if (c->nframes == 0 && c->state != UNB_CO_RUNNING) {
        put(t, "    (no backtrace: it moved while it was copied)\n");
    }
    put(t, "\n");
}

static void format(struct text *t, const struct unb__dump *d)
{
    unsigned counts[UNB_CO_DONE + 1] = {0};
    for (size_t i = 0; i < d->nco; i++)
        counts[d->co[i].state <= UNB_CO_DONE ? d->co[i].state : UNB_CO_DONE]++;
    time_t wall = time(NULL);
    struct tm tm;
    char when[32] = "";
    if (gmtime_r(&wall, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    put(t, "libunblock: coroutine dump of %s (pid %d), %s\n",
        program_invocation_short_name, (int)getpid(), when);
    put(t,
        "libunblock: %zu coroutines: %u running, %u runnable, %u parked, %u new; "
        "%u workers, %u spare threads, %llu handoffs so far\n\n",
        d->nco, counts[UNB_CO_RUNNING], counts[UNB_CO_READY], counts[UNB_CO_PARKED],
        counts[UNB_CO_NEW], d->nw, d->spare_threads, (unsigned long long)d->handoffs);
    for (unsigned i = 0; i < d->nw; i++) {
        const struct unb__dump_worker *w = &d->w[i];
        if (!w->tid) {
            put(t, "worker %u: not started\n", w->id);
            continue;
        }
        put(t, "worker %u: thread %d, %s, %u queued\n", w->id, (int)w->tid,
            w->sleeping ? "asleep in its loop" : "busy", w->queued);
    }
    put(t, "\n");
    Dl_info self;
    uintptr_t self_base = dladdr((void *)unb__dump_run, &self) ? (uintptr_t)self.dli_fbase
                                                               : 0;
    double now = ev_time();
    for (size_t i = 0; i < d->nco; i++)
        put_coro(t, &d->co[i], now, self_base);
    put(t, "libunblock: end of the coroutine dump\n");
}

/* ---- writing it ----------------------------------------------------------- */

/* The requester's pipe, or -1. */
static int open_requester(void)
{
    int pid = atomic_exchange(&req_pid, 0);
    if (pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, atomic_load(&req_fd));
    int fd = (int)unb__sys3(SYS_openat, AT_FDCWD, (long)path,
                            O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    struct stat st;
    if (unb__sys3(SYS_fstat, fd, (long)&st, 0) != 0 || !S_ISFIFO(st.st_mode)) {
        unb__sys3(SYS_close, fd, 0, 0);
        return -1;
    }
    return fd;
}

/* Writes all of p, waiting at most 2 s for each bit of progress. */
static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        long r = unb__sys3(SYS_write, fd, (long)p, (long)n);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == -EINTR)
            continue;
        if (r != -EAGAIN)
            return;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        if (unb__sys3(SYS_poll, (long)&pf, 1, 2000) <= 0)
            return;
    }
}

/*
 * stderr, for a dump nobody asked to receive.  A pipe or a terminal gets
 * a file description of its own, opened non-blocking, so that a reader
 * that stops reading cannot hold the monitor; a file or a socket is
 * written through fd 2 itself (reopening a file would lose its append
 * mode and offset).  Returns the fd, and whether to close it.
 */
static int open_stderr(bool *own)
{
    struct stat st;
    *own = false;
    if (unb__sys3(SYS_fstat, 2, (long)&st, 0) != 0)
        return -1;
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
        int fd = (int)unb__sys3(SYS_openat, AT_FDCWD, (long)"/proc/self/fd/2",
                                O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0) {
            *own = true;
            return fd;
        }
    }
    return 2;
}

void unb__dump_run(void)
{
    bool own = true;
    int fd = open_requester();
    if (fd < 0)
        fd = open_stderr(&own);
    struct unb__dump d;
    struct text t = {0};
    if (unb__sched_snapshot(&d) != 0)
        put(&t, "libunblock: coroutine dump: out of memory\n");
    else
        format(&t, &d);
    unb__sched_snapshot_free(&d);
    if (fd >= 0) {
        static const char oom[] = "libunblock: coroutine dump: out of memory\n";
        if (t.failed)
            write_all(fd, oom, sizeof oom - 1);
        else
            write_all(fd, t.p, t.len);
        if (own)
            unb__sys3(SYS_close, fd, 0, 0);
    }
    free(t.p);
}
