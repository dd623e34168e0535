/*
 * diff.h: what the differential programs (tests/diff/NAME.c) share.
 *
 * Each program is an ordinary POSIX/pthread program that prints what it
 * observes: return values, errno names, flags, counts, and which of a few
 * deterministic outcomes happened.  tests/test_diff.sh runs it natively
 * and under LD_PRELOAD=libunblock.so and wants the same stdout and exit
 * status, so stdout holds nothing that varies from run to run (no times,
 * pids, addresses, fd numbers that depend on timing); threads record what
 * they saw and the main thread prints it after joining them.
 *
 *   SYS("read closed fd", read(fd, b, 1))    read closed fd = -1 EBADF
 *   ERR("trylock", pthread_mutex_trylock(&m)) trylock = EBUSY
 *
 * SYS can also report a call that succeeded but changed errno, which
 * libc's own wrappers never do (errno_success.c turns that on).  GSYS and
 * GERR bound a call that should not wait with a timer (100 ms unless the
 * program sets guard_ms; EINTR if it waits), so that a wait shows in the
 * output instead of as a hang.  Setup steps use MUST: a failure there is
 * the environment's fault, reported with exit status 99.  A watchdog
 * (5 s; 60 s under memcheck; or DIFF_WATCHDOG_S) ends a hang with
 * status 98.
 *
 * Plain C and pthreads; the programs never mention libunblock.
 */
#ifndef DIFF_H
#define DIFF_H

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define UNUSED __attribute__((unused))

/* Sanitizers check the buffers a call is given, so the checks that pass
 * deliberately bad pointers (EFAULT) are left out of sanitizer builds. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DIFF_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DIFF_SANITIZED 1
#endif
#endif
#ifndef DIFF_SANITIZED
#define DIFF_SANITIZED 0
#endif

/* ThreadSanitizer follows a fork made in a multi-threaded process only in
 * part: in the child it may report the runtime's scheduler, whose fiber
 * switches it saw in the parent, as racing (test_diff.sh skips fork_wait
 * and fork_exec for it; dup_sockets' child met it in 1 of 40 preloaded
 * runs on a loaded machine).  Programs leave a fork out of a
 * ThreadSanitizer build. */
#if defined(__SANITIZE_THREAD__)
#define DIFF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DIFF_TSAN 1
#endif
#endif
#ifndef DIFF_TSAN
#define DIFF_TSAN 0
#endif

/* The same for memcheck (make test-valgrind), which runs the normal build:
 * known at run time, from UNB_TEST_TOOL, which the native and the
 * preloaded runs both see, so that both leave the same checks out. */
static inline int diff_checks_buffers(void)
{
    const char *t = getenv("UNB_TEST_TOOL");
    return DIFF_SANITIZED || (t && strcmp(t, "valgrind") == 0);
}

/* How many times longer a timing-based program spaces its events: 10
 * under memcheck, whose runs of one thread at a time on a loaded host
 * delay a 1 ms timer's wake-up by 100 ms (sleep_order's wake-ups 40 ms
 * apart came in the wrong order there); 1 otherwise. */
static inline int diff_slow(void)
{
    const char *t = getenv("UNB_TEST_TOOL");
    return t && strcmp(t, "valgrind") == 0 ? 10 : 1;
}

/* errno values by name: the ones these programs can meet. */
UNUSED static const char *ename(int e)
{
    static const struct {
        int e;
        const char *name;
    } names[] = {
    /* clang-format off */
#define N(x) {x, #x}
        N(EPERM), N(ENOENT), N(ESRCH), N(EINTR), N(EIO), N(ENXIO), N(E2BIG),
        N(ENOEXEC), N(EBADF), N(ECHILD), N(EAGAIN), N(ENOMEM), N(EACCES), N(EFAULT),
        N(EBUSY), N(EEXIST), N(ENODEV), N(ENOTDIR), N(EISDIR), N(EINVAL), N(ENFILE),
        N(EMFILE), N(ENOTTY), N(EFBIG), N(ENOSPC), N(ESPIPE), N(EROFS), N(EPIPE),
        N(EDOM), N(ERANGE), N(EDEADLK), N(ENAMETOOLONG), N(ENOSYS), N(ENOTEMPTY),
        N(ELOOP), N(ENOMSG), N(EOVERFLOW), N(ENOTSOCK), N(EDESTADDRREQ), N(EMSGSIZE),
        N(EPROTOTYPE), N(ENOPROTOOPT), N(EPROTONOSUPPORT), N(ESOCKTNOSUPPORT),
        N(EOPNOTSUPP), N(EPFNOSUPPORT), N(EAFNOSUPPORT), N(EADDRINUSE),
        N(EADDRNOTAVAIL), N(ENETDOWN), N(ENETUNREACH), N(ECONNABORTED), N(ECONNRESET),
        N(ENOBUFS), N(EISCONN), N(ENOTCONN), N(ESHUTDOWN), N(ETIMEDOUT),
        N(ECONNREFUSED), N(EHOSTUNREACH), N(EALREADY), N(EINPROGRESS), N(ECANCELED),
        N(EOWNERDEAD), N(ENOTRECOVERABLE),
#undef N
        /* clang-format on */
    };
    static __thread char other[32];
    if (e == 0)
        return "0";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].e == e)
            return names[i].name;
    snprintf(other, sizeof other, "errno%d", e);
    return other;
}

/* Set by a program to have SYS report successes that changed errno
 * (errno_success.c); elsewhere only results and failures are compared. */
static int errno_kept_checked;

/* One line: "what = r", or "what = -1 ENAME" when r is -1. */
UNUSED static void show_sys(const char *what, long r, int e, int e_before)
{
    if (r == -1)
        printf("%s = -1 %s\n", what, ename(e));
    else if (errno_kept_checked && e != e_before)
        printf("%s = %ld (and errno changed to %s on success)\n", what, r, ename(e));
    else
        printf("%s = %ld\n", what, r);
}

/* A call in the -1-and-errno convention; its value is the call's. */
#define SYS(what, expr)                                                                \
    ({                                                                                 \
        errno = EDOM; /* a value no call here sets */                                  \
        long sys_r_ = (long)(expr);                                                    \
        int sys_e_ = errno;                                                            \
        show_sys((what), sys_r_, sys_e_, EDOM);                                        \
        errno = sys_e_;                                                                \
        sys_r_;                                                                        \
    })

/* A call that returns 0 or an errno value (pthread_*, clock_nanosleep). */
#define ERR(what, expr)                                                                \
    ({                                                                                 \
        int err_r_ = (expr);                                                           \
        printf("%s = %s\n", (what), ename(err_r_));                                    \
        err_r_;                                                                        \
    })

/* A setup step that must not fail: status 99 if it does. */
#define MUST(expr)                                                                     \
    ({                                                                                 \
        long must_r_ = (long)(expr);                                                   \
        if (must_r_ == -1) {                                                           \
            printf("SETUP FAILED: %s: %s (line %d)\n", #expr, ename(errno), __LINE__); \
            exit(99);                                                                  \
        }                                                                              \
        must_r_;                                                                       \
    })

/* The same for calls that return an errno value. */
#define MUST0(expr)                                                                    \
    do {                                                                               \
        int must_e_ = (expr);                                                          \
        if (must_e_ != 0) {                                                            \
            printf("SETUP FAILED: %s: %s (line %d)\n", #expr, ename(must_e_),          \
                   __LINE__);                                                          \
            exit(99);                                                                  \
        }                                                                              \
    } while (0)

/* ---- start-up, a watchdog, and guarded calls ------------------------------ */

/* Every program ends within 2 s natively; the watchdog ends a hang
 * sooner than the runner's own time limit, with a line saying so.  The
 * runner shortens it (DIFF_WATCHDOG_S) where a hang is a known TODO.
 * Under memcheck it is 60 s: tcp_echo_100's 200 threads take 5 to 10 s
 * there, natively too. */
static unsigned watchdog_s = 5;
#define WATCHDOG_S watchdog_s

static volatile sig_atomic_t guarding; /* SIGALRM is a guard, not the watchdog */
static int watchdog_on;

static void on_sigalrm(int sig)
{
    static const char msg[] = "WATCHDOG: still running after the time limit\n";
    (void)sig;
    if (guarding)
        return; /* the guarded call returns EINTR */
    ssize_t r = write(1, msg, sizeof msg - 1);
    (void)r;
    _exit(98);
}

/* Line-buffered stdout (so that output survives a death by signal and
 * is not doubled by fork) and, if `watchdog`, a SIGALRM watchdog
 * (programs that use SIGALRM themselves pass 0 and cannot use GSYS: the
 * runner's time limit still applies). */
UNUSED static void diff_start(int watchdog)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (diff_slow() > 1)
        watchdog_s = 60;
    const char *w = getenv("DIFF_WATCHDOG_S");
    if (w && atoi(w) > 0)
        watchdog_s = (unsigned)atoi(w);
    if (watchdog) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigalrm; /* no SA_RESTART: a guard gives EINTR */
        sigaction(SIGALRM, &sa, NULL);
        watchdog_on = 1;
        alarm(WATCHDOG_S);
    }
}

UNUSED static void guard_timer(long ms)
{
    struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* GSYS: SYS for a call that returns at once (or soon) natively but might
 * wait under the preload: a SIGALRM after guard_ms turns such a wait into
 * EINTR, so
 * the difference shows in the output instead of as a hang.  Needs
 * diff_start(1) (the guard borrows the watchdog's timer). */
UNUSED static long guard_ms = 100; /* a program may lengthen it */
#define GUARD_MS guard_ms
#define GSYS(what, expr)                                                               \
    ({                                                                                 \
        guarding = 1;                                                                  \
        guard_timer(GUARD_MS);                                                         \
        long gsys_r_ = SYS(what, expr);                                                \
        int gsys_e_ = errno;                                                           \
        guard_timer(0);                                                                \
        guarding = 0;                                                                  \
        if (watchdog_on)                                                               \
            alarm(WATCHDOG_S);                                                         \
        errno = gsys_e_;                                                               \
        gsys_r_;                                                                       \
    })
#define GERR(what, expr)                                                               \
    ({                                                                                 \
        guarding = 1;                                                                  \
        guard_timer(GUARD_MS);                                                         \
        int gerr_r_ = ERR(what, expr);                                                 \
        guard_timer(0);                                                                \
        guarding = 0;                                                                  \
        if (watchdog_on)                                                               \
            alarm(WATCHDOG_S);                                                         \
        gerr_r_;                                                                       \
    })

/* ---- time ----------------------------------------------------------------- */

UNUSED static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

UNUSED static struct timespec ts_in(clockid_t clk, long ms)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Prints whether the time since t0 lies in [lo, hi] ms; only the verdict
 * is deterministic, so the time itself is printed only when it is out. */
UNUSED static void elapsed(const char *what, double t0, double lo, double hi)
{
    double ms = now_ms() - t0;
    if (ms >= lo && ms <= hi)
        printf("%s: elapsed within [%.0f, %.0f] ms\n", what, lo, hi);
    else
        printf("%s: elapsed %.1f ms, outside [%.0f, %.0f] ms\n", what, ms, lo, hi);
}

UNUSED static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- threads -------------------------------------------------------------- */

UNUSED static pthread_t spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    MUST0(pthread_create(&t, NULL, fn, arg));
    return t;
}

UNUSED static void *join(pthread_t t)
{
    void *r = NULL;
    MUST0(pthread_join(t, &r));
    return r;
}

/* ---- loopback sockets ----------------------------------------------------- */

UNUSED static struct sockaddr_in loopback(unsigned short port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

UNUSED static unsigned short port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    MUST(getsockname(fd, (struct sockaddr *)&a, &len));
    return ntohs(a.sin_port);
}

/* A socket of `type` bound to 127.0.0.1 on a port the kernel picks. */
UNUSED static int bound_socket(int type)
{
    int fd = (int)MUST(socket(AF_INET, type, 0));
    struct sockaddr_in a = loopback(0);
    MUST(bind(fd, (struct sockaddr *)&a, sizeof a));
    return fd;
}

/* A TCP socket listening on 127.0.0.1; *port gets its port. */
UNUSED static int tcp_listener(unsigned short *port, int backlog)
{
    int fd = bound_socket(SOCK_STREAM);
    MUST(listen(fd, backlog));
    if (port)
        *port = port_of(fd);
    return fd;
}

UNUSED static int tcp_connect(unsigned short port)
{
    int fd = (int)MUST(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = loopback(port);
    MUST(connect(fd, (struct sockaddr *)&a, sizeof a));
    return fd;
}

/* A connected TCP pair over loopback, made by one thread (the kernel
 * completes the handshake in the backlog). */
UNUSED static void tcp_pair(int *client, int *server)
{
    unsigned short port;
    int l = tcp_listener(&port, 1);
    *client = tcp_connect(port);
    *server = (int)MUST(accept(l, NULL, NULL));
    close(l);
}

/* A port nobody listens on: bound, then closed.  Another process could
 * take it meanwhile; on a test machine that is rare. */
UNUSED static unsigned short closed_port(void)
{
    int fd = bound_socket(SOCK_STREAM);
    unsigned short p = port_of(fd);
    close(fd);
    return p;
}

/* Writes all of buf (blocking fds); exits 99 on a failure. */
UNUSED static void write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            printf("SETUP FAILED: write_all: %s\n", k < 0 ? ename(errno) : "0");
            exit(99);
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Reads exactly n bytes unless EOF comes first; returns the count. */
UNUSED static size_t read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, p + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            printf("SETUP FAILED: read_full: %s\n", ename(errno));
            exit(99);
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return got;
}

/* A cheap checksum for payloads: FNV-1a. */
UNUSED static unsigned long fnv(const void *buf, size_t n, unsigned long h)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211UL;
    }
    return h;
}
#define FNV_INIT 14695981039346656037UL

/* Poll revents as names, for printing (four calls may share a printf). */
UNUSED static const char *revents_str(short re)
{
    static __thread char bufs[4][128];
    static __thread int which;
    char *buf = bufs[which++ % 4];
    buf[0] = '\0';
    static const struct {
        short bit;
        const char *name;
    } bits[] = {{0x001, "IN"},     {0x002, "PRI"},    {0x004, "OUT"},
                {0x008, "ERR"},    {0x010, "HUP"},    {0x020, "NVAL"},
                {0x040, "RDNORM"}, {0x080, "RDBAND"}, {0x100, "WRNORM"},
                {0x200, "WRBAND"}, {0x2000, "RDHUP"}};
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (re & bits[i].bit) {
            if (buf[0])
                strcat(buf, "|");
            strcat(buf, bits[i].name);
        }
    if (!buf[0])
        strcpy(buf, "0");
    return buf;
}

#endif
