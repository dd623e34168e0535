/*
 * test_io: the read/write families on socketpairs, pipes and files.
 *
 *   - bulk transfers between coroutines (1 MiB each way in random-sized
 *     chunks) and a 10,000-message ping-pong, every byte checked;
 *   - a blocking write larger than the socket buffer completes fully
 *     against a slow reader, natively and in a coroutine;
 *   - readv/writev (also a large writev that needs several tries),
 *     sendmsg/recvmsg with SCM_RIGHTS, MSG_PEEK, MSG_WAITALL: a coroutine
 *     gets what a plain thread gets; zero-length reads wait or not as
 *     natively;
 *   - MSG_DONTWAIT, and a fd the program made non-blocking (O_NONBLOCK,
 *     FIONBIO, SOCK_NONBLOCK), get EAGAIN at once and no park; F_GETFL
 *     shows the program only the O_NONBLOCK it set itself;
 *   - SO_RCVTIMEO / SO_SNDTIMEO as natively;
 *   - close/dup2/dup3 of a fd under a parked coroutine wakes it with
 *     EBADF, the reused fd number never reaches the old waiter, and closes
 *     right after two-way traffic never crash the runtime (in a child);
 *   - pipes park, for reads and for writes larger than the pipe (other
 *     coroutines keep running); regular files never park and read the
 *     same bytes;
 *   - unb_wait_fd: ready, timeout, EINVAL, EBADF, from both sides;
 *   - EINTR: a handler without SA_RESTART interrupts a parked read or
 *     write, one with SA_RESTART does not (except where the kernel never
 *     restarts), as on a plain thread; also for a plain thread using a
 *     socket a coroutine made.
 *
 * Where a case says "as natively", the same scenario function runs on a
 * plain thread (the hooks pass through) and inside a coroutine, and the
 * results (return values, errno, bytes) are compared.  A call that might
 * wait forever under a runtime bug is released after a while (data
 * written, a peer drained) or reported as hung, so the program always
 * ends in bounded time.
 *
 * errno is read through noinline helpers after calls that may park: glibc
 * declares __errno_location() const, and a coroutine may resume on
 * another worker.
 */
#define _GNU_SOURCE
#include "tap.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <unblock.h>

extern char **environ;

/* ---- helpers ------------------------------------------------------------- */

__attribute__((noinline)) static int get_errno(void)
{
    return errno;
}

__attribute__((noinline)) static void set_errno(int e)
{
    errno = e;
}

static const char *ename(int e)
{
    if (e == 0)
        return "0";
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleeps the calling thread, or parks the calling coroutine. */
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && get_errno() == EINTR)
        ;
}

static uint64_t parks(void)
{
    unb_stats_t st;
    if (unb_stats(&st) != 0)
        BAIL("unb_stats failed");
    return st.parks;
}

static unsigned workers(void)
{
    unb_stats_t st;
    if (unb_stats(&st) != 0)
        BAIL("unb_stats failed");
    return (unsigned)st.workers;
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

/* Is thread tid in syscall nr (the call under test: not a lock, which
 * under valgrind is where a thread waits for the tool's thread lock, nor
 * a short call before it)?  /proc/self/task/TID/syscall gives the
 * number, or "running". */
static bool in_syscall(pid_t tid, long nr)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool in = fgets(buf, sizeof buf, f) && buf[0] >= '0' && buf[0] <= '9' &&
              atol(buf) == nr;
    fclose(f);
    return in;
}

/* Stops the program with a failure when something hangs: a parked
 * coroutine nobody wakes cannot be cancelled, so the rest cannot run. */
static void hung(const char *what, double limit_s)
{
    ok(0, "%s finished within %.0f s", what, limit_s);
    diag("%s hangs: stopping here", what);
    fflush(stdout);
    done_testing();
    _exit(1);
}

/* Runs fn(arg) on a plain thread (coroutine false) or in a coroutine, and
 * waits at most limit_s for it. */
struct bounded {
    void *(*fn)(void *);
    void *arg;
    _Atomic int done;
};

static void *bounded_run(void *a)
{
    struct bounded *b = a;
    b->fn(b->arg);
    atomic_store(&b->done, 1);
    return NULL;
}

static void run_in(bool coroutine, void *(*fn)(void *), void *arg, const char *what)
{
    const double limit = 15;
    struct bounded *b = calloc(1, sizeof *b); /* leaked if it hangs */
    if (!b)
        BAIL("out of memory");
    b->fn = fn;
    b->arg = arg;
    unb_coro_t *co = NULL;
    pthread_t th;
    if (coroutine)
        co = spawn(bounded_run, b);
    else if (pthread_create(&th, NULL, bounded_run, b) != 0)
        BAIL("pthread_create failed");
    if (!wait_flag(&b->done, limit))
        hung(what, limit);
    if (coroutine)
        join(co);
    else
        pthread_join(th, NULL);
    free(b);
}

/* Waits (bounded) for a coroutine that sets *done when it finishes. */
static void join_within(unb_coro_t *co, _Atomic int *done, double limit_s,
                        const char *what)
{
    if (!wait_flag(done, limit_s))
        hung(what, limit_s);
    join(co);
}

/* A helper that runs beside a scenario: a coroutine when the scenario
 * runs in one, else a plain thread. */
struct task {
    bool is_co;
    unb_coro_t *co;
    pthread_t th;
};

static void task_start(struct task *t, void *(*fn)(void *), void *arg)
{
    t->is_co = unb_self() != NULL;
    if (t->is_co)
        t->co = spawn(fn, arg);
    else if (pthread_create(&t->th, NULL, fn, arg) != 0)
        BAIL("pthread_create failed");
}

static void task_join(struct task *t)
{
    if (t->is_co)
        join(t->co);
    else
        pthread_join(t->th, NULL);
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rnd(&s) >> 56);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        BAIL("out of memory");
    return p;
}

static void make_pair(int sv[2], int type)
{
    if (socketpair(AF_UNIX, type, 0, sv) != 0)
        BAIL("socketpair: %s", strerror(errno));
}

static void make_pipe(int p[2])
{
    if (pipe(p) != 0)
        BAIL("pipe: %s", strerror(errno));
}

/* Reads exactly n bytes unless EOF or an error comes first. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0)
            return got ? (ssize_t)got : -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Runs with O_NONBLOCK set by the program (so nothing waits), then
 * restores the flags.  Not MSG_DONTWAIT: see test_dontwait. */
static int nonblock_on(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return fl;
}

/* Reads and drops whatever is queued now (never waits). */
static void drain(int fd)
{
    char buf[65536];
    int fl = nonblock_on(fd);
    while (read(fd, buf, sizeof buf) > 0)
        ;
    fcntl(fd, F_SETFL, fl);
}

/* Fills the socket's send path until the kernel says EAGAIN (no park). */
static long fill_socket(int fd)
{
    static char junk[65536];
    long total = 0;
    ssize_t n;
    int fl = nonblock_on(fd);
    while ((n = write(fd, junk, sizeof junk)) > 0)
        total += n;
    fcntl(fd, F_SETFL, fl);
    return total;
}

/* The file status flags as the kernel holds them (/proc/self/fdinfo), or
 * -1: F_GETFL through the hooks may hide O_NONBLOCK. */
static long kernel_flags(int fd)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long flags = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "flags: %lo", &flags) == 1)
            break;
    fclose(f);
    return flags;
}

static int getfl_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : (fl & O_NONBLOCK) != 0;
}

/* One call's outcome: its return value, and errno when it failed. */
struct rec {
    long ret;
    int err;
};

#define REC(r, call)                                                                   \
    do {                                                                               \
        set_errno(0);                                                                  \
        long ret_ = (long)(call);                                                      \
        (r).err = ret_ < 0 ? get_errno() : 0;                                          \
        (r).ret = ret_;                                                                \
    } while (0)

struct want {
    const char *name;
    long ret; /* LONG_MIN: no fixed value, only "as natively" */
    int err;
};

/* Checks native against the stated expectation and the coroutine
 * against native, case by case. */
static void compare(const char *topic, const struct want *w, const struct rec *nat,
                    const struct rec *co, int n)
{
    for (int i = 0; i < n; i++) {
        note("%s / %s: native %ld %s, coroutine %ld %s", topic, w[i].name, nat[i].ret,
             ename(nat[i].err), co[i].ret, ename(co[i].err));
        if (w[i].ret != LONG_MIN)
            is_int(nat[i].ret, w[i].ret, "native: %s gives %ld", w[i].name, w[i].ret);
        is_int(nat[i].err, w[i].err, "native: %s sets errno %s", w[i].name,
               ename(w[i].err));
        is_int(co[i].ret, nat[i].ret, "in a coroutine: %s gives %ld, as natively",
               w[i].name, nat[i].ret);
        is_int(co[i].err, nat[i].err, "in a coroutine: %s sets errno %s, as natively",
               w[i].name, ename(nat[i].err));
    }
}

static void *noop(void *arg)
{
    return arg;
}

/* ---- streams between coroutines ----------------------------------------- */

/* One side of a transfer: writes (or reads) len bytes of buf in chunks of
 * random size. */
struct pump {
    int fd;
    unsigned char *buf;
    size_t len;
    uint64_t seed;
    size_t max_chunk;
    int delay_ms; /* sleep after each read: a slow reader */
    size_t done;
    long calls, short_calls;
    int err;  /* errno of a failed call */
    bool eof; /* a read returned 0 early */
};

static void *pump_write(void *arg)
{
    struct pump *p = arg;
    uint64_t s = p->seed | 1;
    while (p->done < p->len) {
        size_t want = 1 + (size_t)(rnd(&s) % p->max_chunk);
        if (want > p->len - p->done)
            want = p->len - p->done;
        ssize_t n = write(p->fd, p->buf + p->done, want);
        if (n < 0) {
            p->err = get_errno();
            break;
        }
        p->calls++;
        p->short_calls += (size_t)n != want;
        p->done += (size_t)n;
    }
    return NULL;
}

static void *pump_read(void *arg)
{
    struct pump *p = arg;
    uint64_t s = p->seed | 1;
    while (p->done < p->len) {
        size_t want = 1 + (size_t)(rnd(&s) % p->max_chunk);
        if (want > p->len - p->done)
            want = p->len - p->done;
        ssize_t n = read(p->fd, p->buf + p->done, want);
        if (n < 0) {
            p->err = get_errno();
            break;
        }
        if (n == 0) {
            p->eof = true;
            break;
        }
        p->calls++;
        p->short_calls += (size_t)n != want;
        p->done += (size_t)n;
        if (p->delay_ms)
            sleep_ms(p->delay_ms);
    }
    return NULL;
}

#define BULK_LEN (1 << 20)

struct bulk {
    unsigned char *src[2], *dst[2];
    struct pump w[2], r[2];
    double elapsed;
};

/* In a coroutine: a socketpair made here, and four coroutines moving
 * 1 MiB each way at once (a writer and a reader on each end). */
static void *bulk_main(void *arg)
{
    struct bulk *b = arg;
    int sv[2];
    make_pair(sv, SOCK_STREAM);
    unb_coro_t *h[4];
    for (int d = 0; d < 2; d++) {
        b->w[d] = (struct pump){.fd = sv[d],
                                .buf = b->src[d],
                                .len = BULK_LEN,
                                .seed = 11 + (uint64_t)d,
                                .max_chunk = 65536};
        b->r[d] = (struct pump){.fd = sv[1 - d],
                                .buf = b->dst[d],
                                .len = BULK_LEN,
                                .seed = 23 + (uint64_t)d,
                                .max_chunk = 65536};
    }
    double t0 = now_s();
    for (int d = 0; d < 2; d++) {
        h[2 * d] = spawn(pump_write, &b->w[d]);
        h[2 * d + 1] = spawn(pump_read, &b->r[d]);
    }
    for (int i = 0; i < 4; i++)
        join(h[i]);
    b->elapsed = now_s() - t0;
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_bulk(void)
{
    struct bulk b;
    memset(&b, 0, sizeof b);
    for (int d = 0; d < 2; d++) {
        b.src[d] = xmalloc(BULK_LEN);
        b.dst[d] = xmalloc(BULK_LEN);
        fill_random(b.src[d], BULK_LEN, 1000 + (uint64_t)d);
        memset(b.dst[d], 0, BULK_LEN);
    }
    run_in(true, bulk_main, &b, "1 MiB each way over a socketpair");
    for (int d = 0; d < 2; d++) {
        const char *dir = d ? "sv[1] -> sv[0]" : "sv[0] -> sv[1]";
        note("%s: %ld writes (%ld short), %ld reads (%ld short), %.3f s", dir,
             b.w[d].calls, b.w[d].short_calls, b.r[d].calls, b.r[d].short_calls,
             b.elapsed);
        is_int(b.w[d].err, 0, "%s: no write failed (errno %s)", dir, ename(b.w[d].err));
        is_int(b.w[d].done, BULK_LEN, "%s: the writer wrote 1 MiB", dir);
        is_int(b.w[d].short_calls, 0,
               "%s: every blocking write of up to 64 KiB wrote all it was given", dir);
        is_int(b.r[d].err, 0, "%s: no read failed (errno %s)", dir, ename(b.r[d].err));
        ok(!b.r[d].eof, "%s: no early EOF", dir);
        is_int(b.r[d].done, BULK_LEN, "%s: the reader got 1 MiB", dir);
        ok(memcmp(b.src[d], b.dst[d], BULK_LEN) == 0,
           "%s: the bytes read are the bytes written", dir);
        free(b.src[d]);
        free(b.dst[d]);
    }
}

#define PINGS 10000

struct pingpong {
    int fd;
    long rounds, bad;
    int err;
    _Atomic int done;
};

/* Message i: a 4-byte length, then len bytes (i + k) & 0xff; the reply is
 * the same with every payload byte plus one. */
static void *ping(void *arg)
{
    struct pingpong *p = arg;
    unsigned char msg[4 + 512], reply[4 + 512];
    for (long i = 0; i < PINGS; i++) {
        uint32_t len = 1 + (uint32_t)((i * 131) % 500);
        memcpy(msg, &len, 4);
        for (uint32_t k = 0; k < len; k++)
            msg[4 + k] = (unsigned char)(i + k);
        if (write(p->fd, msg, 4 + len) != (ssize_t)(4 + len)) {
            p->err = get_errno();
            break;
        }
        if (read_full(p->fd, reply, 4 + len) != (ssize_t)(4 + len)) {
            p->err = get_errno();
            break;
        }
        bool good = memcmp(reply, msg, 4) == 0;
        for (uint32_t k = 0; k < len && good; k++)
            good = reply[4 + k] == (unsigned char)(msg[4 + k] + 1);
        p->bad += !good;
        p->rounds++;
    }
    shutdown(p->fd, SHUT_WR);
    atomic_store(&p->done, 1);
    return NULL;
}

static void *pong(void *arg)
{
    struct pingpong *p = arg;
    unsigned char msg[4 + 512];
    for (;;) {
        ssize_t n = read_full(p->fd, msg, 4);
        if (n == 0)
            break;
        uint32_t len;
        memcpy(&len, msg, 4);
        if (n != 4 || len > 512 || read_full(p->fd, msg + 4, len) != (ssize_t)len) {
            p->err = n < 0 ? get_errno() : -1;
            break;
        }
        for (uint32_t k = 0; k < len; k++)
            msg[4 + k]++;
        if (write(p->fd, msg, 4 + len) != (ssize_t)(4 + len)) {
            p->err = get_errno();
            break;
        }
        p->rounds++;
    }
    atomic_store(&p->done, 1);
    return NULL;
}

static void test_pingpong(void)
{
    int sv[2];
    make_pair(sv, SOCK_STREAM); /* made on the main thread, used in coroutines */
    struct pingpong a = {.fd = sv[0]}, b = {.fd = sv[1]};
    uint64_t p0 = parks();
    double t0 = now_s();
    unb_coro_t *hb = spawn(pong, &b);
    unb_coro_t *ha = spawn(ping, &a);
    join_within(ha, &a.done, 15, "the ping side of the ping-pong");
    join_within(hb, &b.done, 5, "the pong side of the ping-pong");
    double el = now_s() - t0;
    note("ping-pong: %ld round trips in %.3f s (%.1f us each), %llu parks", a.rounds,
         el, el * 1e6 / (a.rounds ? (double)a.rounds : 1.0),
         (unsigned long long)(parks() - p0));
    is_int(a.err, 0, "ping: no call failed (errno %s)", ename(a.err));
    is_int(b.err, 0, "pong: no call failed, and it saw EOF after the last message");
    is_int(a.rounds, PINGS, "ping: %d messages sent and answered", PINGS);
    is_int(b.rounds, PINGS, "pong: %d messages answered", PINGS);
    is_int(a.bad, 0, "every reply was the message, transformed");
    close(sv[0]);
    close(sv[1]);
}

/* ---- a write larger than the socket buffer ------------------------------- */

#define BIG_LEN (4 << 20)

struct bigw {
    struct rec write;
    size_t got;
    bool same;
    long reads, short_reads;
    struct rec small_write, short_read;
    double elapsed;
};

static void *big_write_scenario(void *arg)
{
    struct bigw *r = arg;
    int sv[2];
    make_pair(sv, SOCK_STREAM);
    unsigned char *src = xmalloc(BIG_LEN), *dst = xmalloc(BIG_LEN);
    fill_random(src, BIG_LEN, 4242);

    /* A short read: 100 bytes there, 4096 asked. */
    char small[4096];
    REC(r->small_write, write(sv[0], src, 100));
    REC(r->short_read, read(sv[1], small, sizeof small));

    struct pump rd = {.fd = sv[1],
                      .buf = dst,
                      .len = BIG_LEN,
                      .seed = 7,
                      .max_chunk = 65536,
                      .delay_ms = 1};
    struct task t;
    task_start(&t, pump_read, &rd);
    double t0 = now_s();
    REC(r->write, write(sv[0], src, BIG_LEN));
    r->elapsed = now_s() - t0;
    task_join(&t);
    r->got = rd.done;
    r->same = rd.done == BIG_LEN && memcmp(src, dst, BIG_LEN) == 0;
    r->reads = rd.calls;
    r->short_reads = rd.short_calls;
    close(sv[0]);
    close(sv[1]);
    free(src);
    free(dst);
    return NULL;
}

static void test_big_write(void)
{
    struct bigw nat, co;
    memset(&nat, 0, sizeof nat);
    memset(&co, 0, sizeof co);
    run_in(false, big_write_scenario, &nat, "a 4 MiB write on plain threads");
    run_in(true, big_write_scenario, &co, "a 4 MiB write in coroutines");
    struct bigw *r[2] = {&nat, &co};
    const char *where[2] = {"native", "in a coroutine"};
    for (int i = 0; i < 2; i++) {
        note("%s: write(4 MiB) = %ld (%s) in %.3f s; the slow reader made %ld reads, "
             "%ld short",
             where[i], r[i]->write.ret, ename(r[i]->write.err), r[i]->elapsed,
             r[i]->reads, r[i]->short_reads);
        is_int(r[i]->short_read.ret, 100,
               "%s: read(4096) with 100 bytes queued returns the 100 (a short read)",
               where[i]);
        is_int(r[i]->write.ret, BIG_LEN,
               "%s: a blocking 4 MiB write on a socketpair returns the full length",
               where[i]);
        is_int(r[i]->got, BIG_LEN, "%s: the slow reader got 4 MiB", where[i]);
        ok(r[i]->same, "%s: the bytes read are the bytes written", where[i]);
    }
}

/* ---- vectors, messages and flags ----------------------------------------- */

enum vcase {
    V_WRITEV,
    V_READV,
    V_READV_LAYOUT,
    V_READV_EINVAL,
    V_WRITEV_EINVAL,
    V_BIG_WRITEV,
    V_BIG_WRITEV_DATA,
    V_SENDMSG_FD,
    V_RECVMSG_FD,
    V_RECVMSG_FD_WORKS,
    V_BIG_SENDMSG,
    V_BIG_SENDMSG_FDS,
    V_BIG_SENDMSG_DATA,
    V_PEEK,
    V_PEEK_DATA,
    V_READ_AFTER_PEEK,
    V_PEEK_WAITS,
    V_READ_AFTER_PEEK_WAITS,
    V_WAITALL,
    V_WAITALL_DATA,
    V_WAITALL_WAITED,
    V_SHUTDOWN_READ,
    V_SHUTDOWN_RECV,
    NV
};

#define BIG_IOVS 37
#define WAITALL_LEN 100000
#define WAITALL_PIECES 10

static const struct want vwant[NV] = {
    [V_WRITEV] = {"writev of 3 iovecs (10+20+30 bytes)", 60, 0},
    [V_READV] = {"readv into 3 iovecs (5+25+100) with 60 queued", 60, 0},
    [V_READV_LAYOUT] = {"readv fills the iovecs in order (1 = right)", 1, 0},
    [V_READV_EINVAL] = {"readv with iovcnt -1", -1, EINVAL},
    [V_WRITEV_EINVAL] = {"writev with iovcnt IOV_MAX+1", -1, EINVAL},
    [V_BIG_WRITEV] = {"writev of 37 iovecs (~4.6 MB) against a slow reader", LONG_MIN,
                      0},
    [V_BIG_WRITEV_DATA] = {"the big writev's bytes arrive in order (1 = right)", 1, 0},
    [V_SENDMSG_FD] = {"sendmsg of 2 iovecs (11 bytes) with SCM_RIGHTS", 11, 0},
    [V_RECVMSG_FD] = {"recvmsg of that message", 11, 0},
    [V_RECVMSG_FD_WORKS] = {"recvmsg: data right and the passed fd works (1 = yes)", 1,
                            0},
    [V_BIG_SENDMSG] = {"sendmsg of 2 MiB with SCM_RIGHTS against a slow reader",
                       2 << 20, 0},
    [V_BIG_SENDMSG_FDS] = {"fds the reader of the big sendmsg received", 1, 0},
    [V_BIG_SENDMSG_DATA] = {"the big sendmsg's bytes arrive in order (1 = right)", 1,
                            0},
    [V_PEEK] = {"recv(4, MSG_PEEK) with 9 bytes queued", 4, 0},
    [V_PEEK_DATA] = {"MSG_PEEK saw the first 4 bytes (1 = yes)", 1, 0},
    [V_READ_AFTER_PEEK] = {"read(64) after the peek gets all 9 bytes", 9, 0},
    [V_PEEK_WAITS] = {"recv(MSG_PEEK) on an empty socket, 5 bytes 50 ms later", 5, 0},
    [V_READ_AFTER_PEEK_WAITS] = {"read after that peek gets the 5 bytes", 5, 0},
    [V_WAITALL] = {"recv(100000, MSG_WAITALL) fed in 10 pieces", WAITALL_LEN, 0},
    [V_WAITALL_DATA] = {"the MSG_WAITALL bytes are right (1 = yes)", 1, 0},
    [V_WAITALL_WAITED] = {"MSG_WAITALL waited for the last piece (1 = yes)", 1, 0},
    [V_SHUTDOWN_READ] = {"read after the peer's shutdown(SHUT_WR)", 0, 0},
    [V_SHUTDOWN_RECV] = {"recv after the peer's shutdown(SHUT_WR)", 0, 0},
};

/* A slow reader that uses recvmsg and counts the fds that come along. */
struct msg_reader {
    int fd;
    unsigned char *buf;
    size_t len, done;
    int fds;
    int err;
};

static void *msg_reader(void *arg)
{
    struct msg_reader *m = arg;
    while (m->done < m->len) {
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(4 * sizeof(int))];
        } u;
        size_t want = m->len - m->done < 65536 ? m->len - m->done : 65536;
        struct iovec iov = {m->buf + m->done, want};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = u.buf,
                             .msg_controllen = sizeof u.buf};
        ssize_t n = recvmsg(m->fd, &msg, 0);
        if (n <= 0) {
            m->err = n < 0 ? get_errno() : -1;
            break;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            int nfd = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int k = 0; k < nfd; k++) {
                int got;
                memcpy(&got, CMSG_DATA(c) + k * sizeof(int), sizeof got);
                close(got);
            }
            m->fds += nfd;
        }
        m->done += (size_t)n;
        sleep_ms(1);
    }
    return NULL;
}

static ssize_t send_with_fd(int sock, struct iovec *iov, int iovcnt, int passfd)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = iov,
                       .msg_iovlen = (size_t)iovcnt,
                       .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &passfd, sizeof passfd);
    return sendmsg(sock, &m, 0);
}

/* Writes `pieces` pieces of `piece` bytes, `gap_ms` apart. */
struct feeder {
    int fd;
    const unsigned char *buf;
    size_t piece;
    int pieces, gap_ms, first_ms;
    double last_at;
    _Atomic int *cancel; /* if set before the first piece is due: write nothing */
};

static void *feeder(void *arg)
{
    struct feeder *f = arg;
    if (f->cancel) {
        for (int waited = 0; waited < f->first_ms; waited += 10) {
            if (atomic_load(f->cancel))
                return NULL;
            sleep_ms(10);
        }
    } else {
        sleep_ms(f->first_ms);
    }
    for (int i = 0; i < f->pieces; i++) {
        if (i)
            sleep_ms(f->gap_ms);
        f->last_at = now_s();
        if (write(f->fd, f->buf + (size_t)i * f->piece, f->piece) != (ssize_t)f->piece)
            break;
    }
    return NULL;
}

static void *vectors_scenario(void *arg)
{
    struct rec *r = arg;
    int sv[2];
    make_pair(sv, SOCK_STREAM);
    unsigned char src[64], a[5], b[25], c[100];
    fill_random(src, sizeof src, 99);

    /* writev / readv */
    struct iovec wv[3] = {{src, 10}, {src + 10, 20}, {src + 30, 30}};
    REC(r[V_WRITEV], writev(sv[0], wv, 3));
    struct iovec rv[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    REC(r[V_READV], readv(sv[1], rv, 3));
    r[V_READV_LAYOUT].ret = memcmp(a, src, 5) == 0 && memcmp(b, src + 5, 25) == 0 &&
                            memcmp(c, src + 30, 30) == 0;
    volatile int negative = -1; /* hidden from the compiler's checks */
    REC(r[V_READV_EINVAL], readv(sv[1], rv, negative));
    static struct iovec many[IOV_MAX + 1];
    for (int i = 0; i <= IOV_MAX; i++)
        many[i] = (struct iovec){src, 1};
    REC(r[V_WRITEV_EINVAL], writev(sv[0], many, IOV_MAX + 1));

    /* A large writev: the kernel takes it in several pieces, the runtime
     * resumes mid-iovec; a slow reader checks the stream. */
    size_t total = 0, sizes[BIG_IOVS];
    for (int i = 0; i < BIG_IOVS; i++)
        total += sizes[i] = 50000 + (size_t)((i * 7919) % 150001);
    unsigned char *big = xmalloc(total), *got = xmalloc(total);
    fill_random(big, total, 31337);
    struct iovec biov[BIG_IOVS];
    for (size_t i = 0, off = 0; i < BIG_IOVS; off += sizes[i], i++)
        biov[i] = (struct iovec){big + off, sizes[i]};
    struct pump rd = {.fd = sv[1],
                      .buf = got,
                      .len = total,
                      .seed = 5,
                      .max_chunk = 65536,
                      .delay_ms = 1};
    struct task t;
    task_start(&t, pump_read, &rd);
    REC(r[V_BIG_WRITEV], writev(sv[0], biov, BIG_IOVS));
    task_join(&t);
    r[V_BIG_WRITEV_DATA].ret = rd.done == total && memcmp(big, got, total) == 0;
    free(got);

    /* sendmsg with SCM_RIGHTS (a pipe's write end), recvmsg */
    int p[2];
    make_pipe(p);
    struct iovec mv[2] = {{"hello ", 6}, {"world", 5}};
    REC(r[V_SENDMSG_FD], send_with_fd(sv[0], mv, 2, p[1]));
    {
        char buf[64] = "";
        union {
            struct cmsghdr h;
            char cbuf[CMSG_SPACE(sizeof(int))];
        } u;
        struct iovec iov = {buf, sizeof buf - 1};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = u.cbuf,
                           .msg_controllen = sizeof u.cbuf};
        REC(r[V_RECVMSG_FD], recvmsg(sv[1], &m, 0));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        int passed = -1;
        if (cm && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&passed, CMSG_DATA(cm), sizeof passed);
        char pb[4] = "";
        bool works = passed >= 0 && write(passed, "fd!", 3) == 3 &&
                     read(p[0], pb, 3) == 3 && memcmp(pb, "fd!", 3) == 0;
        r[V_RECVMSG_FD_WORKS].ret = works && strcmp(buf, "hello world") == 0;
        if (passed >= 0)
            close(passed);
    }

    /* A large sendmsg with ancillary data: the fd goes along once. */
    size_t mlen = 2 << 20;
    unsigned char *mgot = xmalloc(mlen);
    struct iovec bm[2] = {{big, mlen / 2}, {big + mlen / 2, mlen / 2}};
    struct msg_reader mr = {.fd = sv[1], .buf = mgot, .len = mlen};
    task_start(&t, msg_reader, &mr);
    REC(r[V_BIG_SENDMSG], send_with_fd(sv[0], bm, 2, p[0]));
    task_join(&t);
    r[V_BIG_SENDMSG_FDS].ret = mr.fds;
    r[V_BIG_SENDMSG_DATA].ret = mr.done == mlen && memcmp(mgot, big, mlen) == 0;
    free(mgot);
    close(p[0]);
    close(p[1]);

    /* MSG_PEEK */
    char pk[64] = "";
    write(sv[0], "peekaboo!", 9);
    REC(r[V_PEEK], recv(sv[1], pk, 4, MSG_PEEK));
    r[V_PEEK_DATA].ret = memcmp(pk, "peek", 4) == 0;
    memset(pk, 0, sizeof pk);
    REC(r[V_READ_AFTER_PEEK], read(sv[1], pk, sizeof pk));
    if (memcmp(pk, "peekaboo!", 9) != 0)
        r[V_READ_AFTER_PEEK].ret = -100; /* wrong bytes */
    struct feeder f5 = {.fd = sv[0],
                        .buf = (const unsigned char *)"later",
                        .piece = 5,
                        .pieces = 1,
                        .first_ms = 50};
    task_start(&t, feeder, &f5);
    REC(r[V_PEEK_WAITS], recv(sv[1], pk, 16, MSG_PEEK));
    task_join(&t);
    REC(r[V_READ_AFTER_PEEK_WAITS], read(sv[1], pk, 16));

    /* MSG_WAITALL gets the full length, fed in pieces */
    unsigned char *wa = xmalloc(WAITALL_LEN);
    struct feeder fw = {.fd = sv[0],
                        .buf = big,
                        .piece = WAITALL_LEN / WAITALL_PIECES,
                        .pieces = WAITALL_PIECES,
                        .gap_ms = 20,
                        .first_ms = 20};
    task_start(&t, feeder, &fw);
    REC(r[V_WAITALL], recv(sv[1], wa, WAITALL_LEN, MSG_WAITALL));
    double done_at = now_s();
    task_join(&t);
    r[V_WAITALL_DATA].ret = memcmp(wa, big, WAITALL_LEN) == 0;
    r[V_WAITALL_WAITED].ret = done_at >= fw.last_at;
    free(wa);
    free(big);

    /* EOF */
    shutdown(sv[0], SHUT_WR);
    REC(r[V_SHUTDOWN_READ], read(sv[1], pk, sizeof pk));
    REC(r[V_SHUTDOWN_RECV], recv(sv[1], pk, sizeof pk, 0));
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_vectors(void)
{
    struct rec nat[NV], co[NV];
    memset(nat, 0, sizeof nat);
    memset(co, 0, sizeof co);
    run_in(false, vectors_scenario, nat,
           "the vector/message scenario on a plain thread");
    run_in(true, vectors_scenario, co, "the vector/message scenario in a coroutine");
    compare("vectors", vwant, nat, co, NV);
    size_t total = 0;
    for (int i = 0; i < BIG_IOVS; i++)
        total += 50000 + (size_t)((i * 7919) % 150001);
    is_int(nat[V_BIG_WRITEV].ret, (long)total,
           "native: the big writev returns its total");
}

/*
 * Zero-length reads on an empty socket, after a short read (the runtime
 * then believes the socket drained).  Natively read and readv of nothing
 * return 0 at once, while recv/recvmsg of nothing wait for data (on a
 * datagram socket a zero-length recvmsg is how one receives an empty
 * message or ancillary data alone).  A peer writes a byte after 400 ms,
 * so a call that waits ends anyway and shows as having waited.
 */
enum zcase { Z_READ, Z_READV, Z_RECV, Z_DGRAM_RECV, Z_SEQPACKET_RECVMSG, NZ };
static const char *const zcase_name[NZ] = {
    "read(fd, buf, 0) on a stream socket",
    "readv(fd, iov, 0) on a stream socket",
    "recv(fd, buf, 0, 0) on a stream socket",
    "recv(fd, buf, 0, 0) on a datagram socket",
    "recvmsg with no iovec on a SOCK_SEQPACKET socket",
};

struct zero {
    enum zcase c;
    struct rec first, r;
    double elapsed;
};

static void *zero_scenario(void *arg)
{
    struct zero *z = arg;
    int sv[2];
    char buf[64];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = NULL, .msg_iovlen = 0};
    int type = z->c == Z_DGRAM_RECV          ? SOCK_DGRAM
               : z->c == Z_SEQPACKET_RECVMSG ? SOCK_SEQPACKET
                                             : SOCK_STREAM;
    make_pair(sv, type);
    write(sv[1], "short", 5);
    REC(z->first, read(sv[0], buf, sizeof buf));
    _Atomic int returned = 0;
    struct feeder f = {.fd = sv[1],
                       .buf = (const unsigned char *)"!",
                       .piece = 1,
                       .pieces = 1,
                       .first_ms = 400,
                       .cancel = &returned};
    struct task t;
    task_start(&t, feeder, &f);
    double t0 = now_s();
    switch (z->c) {
    case Z_READ: REC(z->r, read(sv[0], buf, 0)); break;
    case Z_READV: REC(z->r, readv(sv[0], &iov, 0)); break;
    case Z_RECV:
    case Z_DGRAM_RECV: REC(z->r, recv(sv[0], buf, 0, 0)); break;
    case Z_SEQPACKET_RECVMSG: REC(z->r, recvmsg(sv[0], &m, 0)); break;
    default: break;
    }
    z->elapsed = now_s() - t0;
    atomic_store(&returned, 1);
    task_join(&t);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_zero_length(void)
{
    for (int c = 0; c < NZ; c++) {
        struct zero nat = {.c = (enum zcase)c}, co = {.c = (enum zcase)c};
        run_in(false, zero_scenario, &nat, "a zero-length read on a plain thread");
        run_in(true, zero_scenario, &co, "a zero-length read in a coroutine");
        note("%s, after a short read: native %ld %s in %.3f s, coroutine %ld %s in "
             "%.3f s",
             zcase_name[c], nat.r.ret, ename(nat.r.err), nat.elapsed, co.r.ret,
             ename(co.r.err), co.elapsed);
        is_int(co.first.ret, 5, "the short read before it returned 5");
        is_int(co.r.ret, nat.r.ret, "in a coroutine: %s returns %ld, as natively",
               zcase_name[c], nat.r.ret);
        is_int(co.r.err, nat.r.err, "in a coroutine: %s sets errno %s, as natively",
               zcase_name[c], ename(nat.r.err));
        bool nat_now = nat.elapsed < 0.2, co_now = co.elapsed < 0.2;
        is_int(co_now, nat_now, "in a coroutine: %s %s, as natively (%.3f s)",
               zcase_name[c], nat_now ? "returns at once" : "waits for data",
               co.elapsed);
    }
}

/*
 * MSG_DONTWAIT never waits: on an empty socket a recv, on a full one a
 * send, fails with EAGAIN at once, natively, in a coroutine (no park), and
 * on a plain thread using a socket a coroutine made (which the runtime
 * holds non-blocking).  A call that waits is released by the main thread
 * after 300 ms (a byte written, or the peer drained), so it ends and shows
 * as having waited.
 */
enum dcase { D_RECV, D_RECVMSG, D_SEND, D_SENDMSG, ND };
static const char *const dcase_name[ND] = {
    "recv(MSG_DONTWAIT) on an empty socket", "recvmsg(MSG_DONTWAIT) on an empty socket",
    "send(MSG_DONTWAIT) on a full socket", "sendmsg(MSG_DONTWAIT) on a full socket"};

struct dontwait {
    enum dcase c;
    int fd;
    struct rec r;
    double elapsed;
    uint64_t parks;
    _Atomic int done;
};

static void *dontwait_call(void *arg)
{
    struct dontwait *d = arg;
    char buf[64] = "x";
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    uint64_t p0 = parks();
    double t0 = now_s();
    switch (d->c) {
    case D_RECV: REC(d->r, recv(d->fd, buf, sizeof buf, MSG_DONTWAIT)); break;
    case D_RECVMSG: REC(d->r, recvmsg(d->fd, &m, MSG_DONTWAIT)); break;
    case D_SEND: REC(d->r, send(d->fd, buf, 1, MSG_DONTWAIT)); break;
    case D_SENDMSG:
        iov.iov_len = 1;
        REC(d->r, sendmsg(d->fd, &m, MSG_DONTWAIT));
        break;
    default: break;
    }
    d->elapsed = now_s() - t0;
    d->parks = parks() - p0;
    atomic_store(&d->done, 1);
    return NULL;
}

static void *make_pair_co(void *arg)
{
    make_pair(arg, SOCK_STREAM);
    return NULL;
}

/* where: 0 a plain thread, 1 a coroutine, 2 a coroutine on a socket a
 * coroutine made, 3 a plain thread on a socket a coroutine made. */
static const char *const dw_where[4] = {
    "native", "in a coroutine (socket made on the main thread)",
    "in a coroutine (socket made by a coroutine)",
    "on a plain thread (socket made by a coroutine)"};

static struct dontwait dontwait_run(enum dcase c, int where)
{
    int sv[2];
    if (where >= 2)
        join(spawn(make_pair_co, sv));
    else
        make_pair(sv, SOCK_STREAM);
    bool sending = c == D_SEND || c == D_SENDMSG;
    if (sending)
        fill_socket(sv[0]);
    struct dontwait *d = calloc(1, sizeof *d);
    if (!d)
        BAIL("out of memory");
    d->c = c;
    d->fd = sv[0];
    bool in_co = where == 1 || where == 2;
    unb_coro_t *co = NULL;
    pthread_t th;
    if (in_co)
        co = spawn(dontwait_call, d);
    else if (pthread_create(&th, NULL, dontwait_call, d) != 0)
        BAIL("pthread_create failed");
    if (!wait_flag(&d->done, 0.3)) {
        double end = now_s() + 5;
        while (!atomic_load(&d->done) && now_s() < end) {
            if (sending)
                drain(sv[1]);
            else
                write(sv[1], "!", 1);
            sleep_ms(50);
        }
        if (!atomic_load(&d->done))
            hung(dcase_name[c], 5.5);
    }
    if (in_co)
        join(co);
    else
        pthread_join(th, NULL);
    struct dontwait out = {.c = c, .r = d->r, .elapsed = d->elapsed, .parks = d->parks};
    free(d);
    close(sv[0]);
    close(sv[1]);
    return out;
}

static void test_dontwait(void)
{
    for (int c = 0; c < ND; c++) {
        struct dontwait nat = dontwait_run((enum dcase)c, 0);
        is_int(nat.r.ret, -1, "native: %s returns -1", dcase_name[c]);
        is_int(nat.r.err, EAGAIN, "native: %s sets EAGAIN", dcase_name[c]);
        for (int w = 1; w < 4; w++) {
            struct dontwait x = dontwait_run((enum dcase)c, w);
            note("%s: native %ld %s in %.3f s; %s: %ld %s in %.3f s", dcase_name[c],
                 nat.r.ret, ename(nat.r.err), nat.elapsed, dw_where[w], x.r.ret,
                 ename(x.r.err), x.elapsed);
            is_int(x.r.ret, nat.r.ret, "%s: %s returns %ld, as natively", dw_where[w],
                   dcase_name[c], nat.r.ret);
            is_int(x.r.err, nat.r.err, "%s: %s sets errno %s, as natively", dw_where[w],
                   dcase_name[c], ename(nat.r.err));
            cmp_ok(x.elapsed, <, 0.2, "%s: %s does not wait", dw_where[w],
                   dcase_name[c]);
            if (w == 1 || w == 2)
                is_int(x.parks, 0, "%s: %s does not park", dw_where[w], dcase_name[c]);
        }
    }
}

/* ---- fds the program made non-blocking ------------------------------------ */

enum nbcase {
    NB_FLAG_GETFL,      /* socketpair(SOCK_NONBLOCK): F_GETFL */
    NB_FLAG_READ,       /* read on it, empty */
    NB_FLAG_WRITE_MANY, /* write(1 MiB): a partial count (1 = 0 < n < len) */
    NB_FLAG_WRITE_FULL, /* write again: EAGAIN */
    NB_PLAIN_GETFL,     /* socketpair(): F_GETFL */
    NB_SETFL_GETFL,     /* after F_SETFL O_NONBLOCK */
    NB_SETFL_READ,
    NB_CLEAR_GETFL, /* after F_SETFL without O_NONBLOCK */
    NB_CLEAR_READ,  /* blocks again: data 50 ms later */
    NB_FIONBIO_GETFL,
    NB_FIONBIO_READ,
    NB_FIONBIO_OFF_GETFL,
    NB_FIONBIO_OFF_READ,
    NB_PIPE2_GETFL,
    NB_PIPE2_READ,
    NB_PIPE_SETFL_READ,
    NB_PIPE_WRITE_FULL, /* a non-blocking pipe, full: EAGAIN */
    NNB
};

static const struct want nbwant[NNB] = {
    [NB_FLAG_GETFL] = {"F_GETFL of socketpair(SOCK_NONBLOCK) shows O_NONBLOCK", 1, 0},
    [NB_FLAG_READ] = {"read on an empty SOCK_NONBLOCK socket", -1, EAGAIN},
    [NB_FLAG_WRITE_MANY] =
        {"write(1 MiB) on a SOCK_NONBLOCK socket is partial (1 = yes)", 1, 0},
    [NB_FLAG_WRITE_FULL] = {"write on a full SOCK_NONBLOCK socket", -1, EAGAIN},
    [NB_PLAIN_GETFL] = {"F_GETFL of a plain socketpair shows no O_NONBLOCK", 0, 0},
    [NB_SETFL_GETFL] = {"F_GETFL after F_SETFL O_NONBLOCK shows it", 1, 0},
    [NB_SETFL_READ] = {"read on an empty socket after F_SETFL O_NONBLOCK", -1, EAGAIN},
    [NB_CLEAR_GETFL] = {"F_GETFL after clearing O_NONBLOCK shows none", 0, 0},
    [NB_CLEAR_READ] = {"read after clearing O_NONBLOCK waits for the 5 bytes", 5, 0},
    [NB_FIONBIO_GETFL] = {"F_GETFL after ioctl(FIONBIO, 1) shows O_NONBLOCK", 1, 0},
    [NB_FIONBIO_READ] = {"read on an empty socket after FIONBIO 1", -1, EAGAIN},
    [NB_FIONBIO_OFF_GETFL] = {"F_GETFL after ioctl(FIONBIO, 0) shows none", 0, 0},
    [NB_FIONBIO_OFF_READ] = {"read after FIONBIO 0 waits for the 5 bytes", 5, 0},
    [NB_PIPE2_GETFL] = {"F_GETFL of pipe2(O_NONBLOCK) shows O_NONBLOCK", 1, 0},
    [NB_PIPE2_READ] = {"read on an empty pipe2(O_NONBLOCK)", -1, EAGAIN},
    [NB_PIPE_SETFL_READ] = {"read on an empty pipe after F_SETFL O_NONBLOCK", -1,
                            EAGAIN},
    [NB_PIPE_WRITE_FULL] = {"write on a full non-blocking pipe", -1, EAGAIN},
};

struct nb {
    struct rec r[NNB];
    uint64_t parks_eagain; /* parks during all the EAGAIN cases */
    long kflags_plain;     /* kernel flags of the plain socket made here */
    long kflags_cleared;   /* after F_SETFL without O_NONBLOCK */
    long kflags_fionbio_off;
};

static void *nonblock_scenario(void *arg)
{
    struct nb *s = arg;
    struct rec *r = s->r;
    char buf[64];
    int sv[2], one = 1, zero = 0;
    struct task t;
    uint64_t p0;

    make_pair(sv, SOCK_STREAM | SOCK_NONBLOCK);
    REC(r[NB_FLAG_GETFL], getfl_nonblock(sv[0]));
    p0 = parks();
    REC(r[NB_FLAG_READ], read(sv[0], buf, sizeof buf));
    {
        size_t len = 1 << 20;
        char *big = xmalloc(len);
        memset(big, 'n', len);
        ssize_t n = write(sv[0], big, len);
        r[NB_FLAG_WRITE_MANY].ret = n > 0 && (size_t)n < len;
        REC(r[NB_FLAG_WRITE_FULL], write(sv[0], big, len));
        free(big);
    }
    s->parks_eagain += parks() - p0;
    close(sv[0]);
    close(sv[1]);

    make_pair(sv, SOCK_STREAM);
    REC(r[NB_PLAIN_GETFL], getfl_nonblock(sv[0]));
    s->kflags_plain = kernel_flags(sv[0]);
    int fl = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
    REC(r[NB_SETFL_GETFL], getfl_nonblock(sv[0]));
    p0 = parks();
    REC(r[NB_SETFL_READ], read(sv[0], buf, sizeof buf));
    s->parks_eagain += parks() - p0;
    fcntl(sv[0], F_SETFL, fl & ~O_NONBLOCK);
    REC(r[NB_CLEAR_GETFL], getfl_nonblock(sv[0]));
    s->kflags_cleared = kernel_flags(sv[0]);
    struct feeder f = {.fd = sv[1],
                       .buf = (const unsigned char *)"again",
                       .piece = 5,
                       .pieces = 1,
                       .first_ms = 50};
    task_start(&t, feeder, &f);
    REC(r[NB_CLEAR_READ], read(sv[0], buf, sizeof buf));
    task_join(&t);

    ioctl(sv[0], FIONBIO, &one);
    REC(r[NB_FIONBIO_GETFL], getfl_nonblock(sv[0]));
    p0 = parks();
    REC(r[NB_FIONBIO_READ], read(sv[0], buf, sizeof buf));
    s->parks_eagain += parks() - p0;
    ioctl(sv[0], FIONBIO, &zero);
    REC(r[NB_FIONBIO_OFF_GETFL], getfl_nonblock(sv[0]));
    s->kflags_fionbio_off = kernel_flags(sv[0]);
    task_start(&t, feeder, &f);
    REC(r[NB_FIONBIO_OFF_READ], read(sv[0], buf, sizeof buf));
    task_join(&t);
    close(sv[0]);
    close(sv[1]);

    int p[2];
    if (pipe2(p, O_NONBLOCK) != 0)
        BAIL("pipe2: %s", strerror(errno));
    REC(r[NB_PIPE2_GETFL], getfl_nonblock(p[0]));
    p0 = parks();
    REC(r[NB_PIPE2_READ], read(p[0], buf, sizeof buf));
    {
        static char junk[65536];
        while (write(p[1], junk, sizeof junk) > 0)
            ;
        REC(r[NB_PIPE_WRITE_FULL], write(p[1], junk, sizeof junk));
    }
    s->parks_eagain += parks() - p0;
    close(p[0]);
    close(p[1]);
    make_pipe(p);
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    p0 = parks();
    REC(r[NB_PIPE_SETFL_READ], read(p[0], buf, sizeof buf));
    s->parks_eagain += parks() - p0;
    close(p[0]);
    close(p[1]);
    return NULL;
}

/* A socket made on the main thread, used by a coroutine, and then by a
 * plain thread again. */
struct shared_sock {
    int fd, peer;
    struct rec co_read;
    struct rec plain_read;
    double plain_elapsed;
    _Atomic pid_t reader; /* the plain thread that reads */
};

static void *shared_co_read(void *arg)
{
    struct shared_sock *s = arg;
    char buf[16];
    REC(s->co_read, read(s->fd, buf, sizeof buf));
    return NULL;
}

/* Writes 100 ms after the reader is in its read (on a loaded machine, and
 * under valgrind, the reader's thread may start after 100 ms). */
static void *late_writer(void *arg)
{
    struct shared_sock *s = arg;
    double end = now_s() + 5;
    pid_t reader;
    while (!((reader = atomic_load(&s->reader)) && in_syscall(reader, SYS_read)) &&
           now_s() < end)
        sleep_ms(1);
    sleep_ms(100);
    write(s->peer, "plain", 5);
    return NULL;
}

static void *shared_plain_read(void *arg)
{
    struct shared_sock *s = arg;
    char buf[16];
    atomic_store(&s->reader, gettid());
    double t0 = now_s();
    REC(s->plain_read, read(s->fd, buf, sizeof buf));
    s->plain_elapsed = now_s() - t0;
    return NULL;
}

static void test_nonblock(void)
{
    struct nb nat, co;
    memset(&nat, 0, sizeof nat);
    memset(&co, 0, sizeof co);
    run_in(false, nonblock_scenario, &nat,
           "the non-blocking scenario on a plain thread");
    run_in(true, nonblock_scenario, &co, "the non-blocking scenario in a coroutine");
    compare("non-blocking", nbwant, nat.r, co.r, NNB);
    is_int(co.parks_eagain, 0,
           "in a coroutine, no call on a fd the program made non-blocking parked");
    note("kernel flags (octal): native plain socket %lo; in a coroutine: plain %lo, "
         "after clearing O_NONBLOCK %lo, after FIONBIO 0 %lo",
         nat.kflags_plain, co.kflags_plain, co.kflags_cleared, co.kflags_fionbio_off);
    is_int(nat.kflags_plain & O_NONBLOCK, 0,
           "native: a plain socketpair is blocking in the kernel");
    is_int(co.kflags_plain & O_NONBLOCK, 0,
           "a socket made in a coroutine is blocking in the kernel too (the runtime "
           "waits with MSG_DONTWAIT, not with the fd's flags)");
    is_int(co.kflags_cleared & O_NONBLOCK, 0,
           "after the program clears O_NONBLOCK, the kernel has it cleared");
    is_int(co.kflags_fionbio_off & O_NONBLOCK, 0, "after FIONBIO 0, likewise");

    /* Made outside, used inside, then by a plain thread again. */
    int sv[2];
    make_pair(sv, SOCK_STREAM);
    struct shared_sock s = {.fd = sv[0], .peer = sv[1]};
    is_int(getfl_nonblock(sv[0]), 0,
           "a socketpair made on the main thread: no O_NONBLOCK");
    write(sv[1], "first", 5);
    run_in(true, shared_co_read, &s, "a coroutine reading a socket made outside");
    is_int(s.co_read.ret, 5, "a coroutine reads a socket made on the main thread");
    is_int(getfl_nonblock(sv[0]), 0,
           "after the coroutine used it, F_GETFL on the main thread still shows no "
           "O_NONBLOCK");
    is_int(kernel_flags(sv[0]) & O_NONBLOCK, 0,
           "and the kernel's flags are still the program's: blocking");
    pthread_t th;
    if (pthread_create(&th, NULL, late_writer, &s) != 0)
        BAIL("pthread_create failed");
    run_in(false, shared_plain_read, &s, "a plain thread reading that socket");
    pthread_join(th, NULL);
    is_int(s.plain_read.ret, 5,
           "a plain thread's read on it still blocks until data comes (no EAGAIN: %s)",
           ename(s.plain_read.err));
    cmp_ok(s.plain_elapsed, >=, 0.09,
           "and it waited for the data written 100 ms later");
    close(sv[0]);
    close(sv[1]);
}

/* ---- socket timeouts ------------------------------------------------------ */

struct timeo {
    struct rec rcv, rcv_data, snd_partial, snd_full;
    double rcv_s, rcv_data_s, snd_partial_s, snd_full_s;
};

static void *timeo_scenario(void *arg)
{
    struct timeo *r = arg;
    int sv[2];
    make_pair(sv, SOCK_STREAM);
    struct timeval tv = {0, 200000};
    if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        BAIL("setsockopt SO_RCVTIMEO: %s", strerror(errno));
    char buf[16];
    double t0 = now_s();
    REC(r->rcv, read(sv[0], buf, sizeof buf));
    r->rcv_s = now_s() - t0;

    /* Data before the timeout: the read returns it.  The feeder writes
     * 50 ms in, if it gets to run: under a tool (UNB_TEST_SLOW) the
     * timeout of this read is that many times longer, and the read must
     * still return well before it. */
    struct timeval tv_data = {0, 200000};
    if (test_slow() > 1) {
        double t = 0.2 * test_slow();
        tv_data.tv_sec = (time_t)t;
        tv_data.tv_usec = (suseconds_t)((t - (double)tv_data.tv_sec) * 1e6);
    }
    if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv_data, sizeof tv_data) != 0)
        BAIL("setsockopt SO_RCVTIMEO: %s", strerror(errno));
    struct feeder f = {.fd = sv[1],
                       .buf = (const unsigned char *)"quick",
                       .piece = 5,
                       .pieces = 1,
                       .first_ms = 50};
    struct task t;
    task_start(&t, feeder, &f);
    t0 = now_s();
    REC(r->rcv_data, read(sv[0], buf, sizeof buf));
    r->rcv_data_s = now_s() - t0;
    task_join(&t);

    /* SO_SNDTIMEO: a write nobody reads stops after the timeout with the
     * count written so far; the next one fails with EAGAIN. */
    if (setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
        BAIL("setsockopt SO_SNDTIMEO: %s", strerror(errno));
    size_t len = 4 << 20;
    char *big = xmalloc(len);
    memset(big, 's', len);
    t0 = now_s();
    REC(r->snd_partial, write(sv[1], big, len));
    r->snd_partial_s = now_s() - t0;
    t0 = now_s();
    REC(r->snd_full, write(sv[1], big, len));
    r->snd_full_s = now_s() - t0;
    free(big);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_timeouts(void)
{
    struct timeo nat, co;
    memset(&nat, 0, sizeof nat);
    memset(&co, 0, sizeof co);
    run_in(false, timeo_scenario, &nat,
           "the socket timeout scenario on a plain thread");
    run_in(true, timeo_scenario, &co, "the socket timeout scenario in a coroutine");
    struct timeo *r[2] = {&nat, &co};
    const char *where[2] = {"native", "in a coroutine"};
    for (int i = 0; i < 2; i++) {
        note("%s: read %ld %s after %.3f s; with data %ld after %.3f s; write(4 MiB) "
             "%ld after %.3f s, then %ld %s after %.3f s",
             where[i], r[i]->rcv.ret, ename(r[i]->rcv.err), r[i]->rcv_s,
             r[i]->rcv_data.ret, r[i]->rcv_data_s, r[i]->snd_partial.ret,
             r[i]->snd_partial_s, r[i]->snd_full.ret, ename(r[i]->snd_full.err),
             r[i]->snd_full_s);
        is_int(r[i]->rcv.ret, -1,
               "%s: read with SO_RCVTIMEO 200 ms on an idle socket "
               "returns -1",
               where[i]);
        is_int(r[i]->rcv.err, EAGAIN, "%s: ... with EAGAIN", where[i]);
        cmp_ok(r[i]->rcv_s, >=, 0.2, "%s: ... after at least 200 ms", where[i]);
        cmp_ok(r[i]->rcv_s, <, 2.0, "%s: ... and well before 2 s", where[i]);
        is_int(r[i]->rcv_data.ret, 5, "%s: data 50 ms in: the read returns it",
               where[i]);
        cmp_ok(r[i]->rcv_data_s, <, 0.19 * test_slow(), "%s: ... before the timeout",
               where[i]);
        ok(r[i]->snd_partial.ret > 0 && r[i]->snd_partial.ret < (4 << 20),
           "%s: a 4 MiB write nobody reads, SO_SNDTIMEO 200 ms: a partial count (%ld)",
           where[i], r[i]->snd_partial.ret);
        cmp_ok(r[i]->snd_partial_s, >=, 0.2, "%s: ... after at least 200 ms", where[i]);
        ok(r[i]->snd_full.ret == -1 && r[i]->snd_full.err == EAGAIN,
           "%s: the next write fails with EAGAIN (%ld %s)", where[i],
           r[i]->snd_full.ret, ename(r[i]->snd_full.err));
        cmp_ok(r[i]->snd_full_s, >=, 0.2, "%s: ... after at least 200 ms", where[i]);
        cmp_ok(r[i]->snd_full_s, <, 2.0, "%s: ... and well before 2 s", where[i]);
    }
    is_int(co.rcv.err, nat.rcv.err, "SO_RCVTIMEO: the coroutine's errno is native's");
    is_int(co.snd_partial.ret, nat.snd_partial.ret,
           "SO_SNDTIMEO: the partial count is native's");
}

/* ---- close / dup2 / dup3 under a parked coroutine --------------------------- */

enum parked_op { P_READ, P_WRITE, P_PIPE_READ, P_WAIT_FD };

struct parked {
    int fd;
    enum parked_op op;
    char buf[16];
    struct rec r;
    double returned_at;
    _Atomic int done;
};

static void *parked_call(void *arg)
{
    struct parked *p = arg;
    memset(p->buf, '#', sizeof p->buf);
    switch (p->op) {
    case P_READ:
    case P_PIPE_READ: REC(p->r, read(p->fd, p->buf, sizeof p->buf)); break;
    case P_WRITE: REC(p->r, write(p->fd, "0123456789", 10)); break;
    case P_WAIT_FD: REC(p->r, unb_wait_fd(p->fd, POLLIN, 10000)); break;
    }
    p->returned_at = now_s();
    atomic_store(&p->done, 1);
    return NULL;
}

/* Spawns a coroutine making the call and waits until it has parked. */
static unb_coro_t *spawn_parked(struct parked *p)
{
    uint64_t p0 = parks();
    unb_coro_t *co = spawn(parked_call, p);
    double end = now_s() + 5;
    while (parks() == p0 && !atomic_load(&p->done) && now_s() < end)
        sleep_ms(1);
    sleep_ms(20);
    if (atomic_load(&p->done))
        diag("the call returned before it could be closed under (%ld %s)", p->r.ret,
             ename(p->r.err));
    return co;
}

enum closer { BY_CLOSE, BY_DUP2, BY_DUP3 };
static const char *const closer_name[] = {"close", "dup2", "dup3"};

struct closing {
    int fd, other;
    enum closer how;
    double at;
    int rc;
};

static void do_close(struct closing *c)
{
    c->at = now_s();
    switch (c->how) {
    case BY_CLOSE: c->rc = close(c->fd); break;
    case BY_DUP2: c->rc = dup2(c->other, c->fd); break;
    case BY_DUP3: c->rc = dup3(c->other, c->fd, O_CLOEXEC); break;
    }
}

static void *close_in_coroutine(void *arg)
{
    do_close(arg);
    return NULL;
}

/* A fresh reader on the reused fd number gets what is written to it. */
struct fresh {
    int fd;
    char buf[16];
    struct rec r;
    _Atomic int done;
};

static void *fresh_read(void *arg)
{
    struct fresh *f = arg;
    memset(f->buf, 0, sizeof f->buf);
    REC(f->r, read(f->fd, f->buf, sizeof f->buf - 1));
    atomic_store(&f->done, 1);
    return NULL;
}

static void close_under_reader(enum closer how, bool from_coroutine)
{
    char what[160];
    snprintf(what, sizeof what, "%s from %s under a coroutine parked in read",
             closer_name[how], from_coroutine ? "another coroutine" : "a plain thread");
    int sv[2], other[2];
    make_pair(sv, SOCK_STREAM);
    make_pair(other, SOCK_STREAM);
    int fd = sv[0];
    struct parked p = {.fd = fd, .op = P_READ};
    unb_coro_t *a = spawn_parked(&p);
    struct closing c = {.fd = fd, .other = other[0], .how = how};
    if (from_coroutine)
        join(spawn(close_in_coroutine, &c));
    else
        do_close(&c);

    /* At once, before the waiter has surely woken: a new file on the same
     * number (for close), and data on it. */
    int nsv[2] = {-1, -1};
    int reused = -1, writer = -1;
    if (how == BY_CLOSE) {
        make_pair(nsv, SOCK_STREAM);
        reused = nsv[0] == fd ? nsv[0] : nsv[1] == fd ? nsv[1] : -1;
        writer = reused == nsv[0] ? nsv[1] : nsv[0];
    } else {
        reused = fd; /* now the other pair's socket */
        writer = other[1];
    }
    if (reused >= 0)
        write(writer, "fresh", 5);

    join_within(a, &p.done, 5, what);
    is_int(c.rc, how == BY_CLOSE ? 0 : fd, "%s: the call succeeded", what);
    is_int(p.r.ret, -1, "%s: the parked read returns -1", what);
    is_int(p.r.err, EBADF, "%s: ... with EBADF", what);
    cmp_ok(p.returned_at - c.at, <, 1.0, "%s: ... promptly (%.1f ms)", what,
           (p.returned_at - c.at) * 1e3);
    ok(p.buf[0] == '#', "%s: the old waiter's buffer was not written", what);
    if (how == BY_CLOSE)
        is_int(reused, fd, "%s: the next socketpair reuses fd %d", what, fd);
    if (reused >= 0) {
        struct fresh f = {.fd = reused};
        unb_coro_t *r = spawn(fresh_read, &f);
        join_within(r, &f.done, 5, "a fresh reader on the reused fd");
        is_int(f.r.ret, 5, "%s: a fresh reader on fd %d gets the 5 bytes meant for it",
               what, reused);
        is_str(f.buf, "fresh", "%s: ... and they are the right bytes", what);
    }
    if (how == BY_CLOSE) {
        close(nsv[0]);
        close(nsv[1]);
    } else {
        close(fd);
    }
    close(sv[1]);
    close(other[0]);
    close(other[1]);
}

static void close_under(enum parked_op op, const char *what)
{
    int fds[2];
    if (op == P_PIPE_READ)
        make_pipe(fds);
    else
        make_pair(fds, SOCK_STREAM);
    if (op == P_WRITE)
        fill_socket(fds[0]);
    struct parked p = {.fd = fds[0], .op = op};
    unb_coro_t *a = spawn_parked(&p);
    struct closing c = {.fd = fds[0], .how = BY_CLOSE};
    do_close(&c);
    join_within(a, &p.done, 5, what);
    ok(p.r.ret == -1 && p.r.err == EBADF, "%s: returns -1 with EBADF (%ld %s)", what,
       p.r.ret, ename(p.r.err));
    cmp_ok(p.returned_at - c.at, <, 1.0, "%s: ... promptly", what);
    close(fds[1]);
}

static void test_close_under_parked(void)
{
    close_under_reader(BY_CLOSE, true);
    close_under_reader(BY_CLOSE, false);
    close_under_reader(BY_DUP2, true);
    close_under_reader(BY_DUP2, false);
    close_under_reader(BY_DUP3, false);
    close_under(P_WRITE, "close under a coroutine parked in write (buffer full)");
    close_under(P_PIPE_READ, "close under a coroutine parked in a pipe read");
    close_under(P_WAIT_FD, "close under a coroutine parked in unb_wait_fd");
}

/*
 * Closing right after traffic in both directions, round after round: the
 * closer is often not the worker whose loop watches the fd, and that loop
 * must never see the closed fd (libev aborts the process on EBADF from
 * epoll_ctl).  Run in a child process (this program, re-executed), so a
 * crash is a failed check, not the end of the test.
 */
#define RACE_LEN (256 * 1024)
#define RACE_SECONDS 2.0

struct race_side {
    int fd;
    unsigned char *buf;
};

static void *race_write(void *arg)
{
    struct race_side *r = arg;
    if (write(r->fd, r->buf, RACE_LEN) != RACE_LEN)
        _exit(3);
    return NULL;
}

static void *race_read(void *arg)
{
    struct race_side *r = arg;
    if (read_full(r->fd, r->buf, RACE_LEN) != RACE_LEN)
        _exit(4);
    return NULL;
}

static void *race_round(void *arg)
{
    unsigned char **bufs = arg;
    int sv[2];
    make_pair(sv, SOCK_STREAM);
    struct race_side s[4] = {
        {sv[0], bufs[0]}, {sv[1], bufs[1]}, {sv[1], bufs[2]}, {sv[0], bufs[3]}};
    unb_coro_t *h[4] = {spawn(race_write, &s[0]), spawn(race_read, &s[1]),
                        spawn(race_write, &s[2]), spawn(race_read, &s[3])};
    for (int i = 0; i < 4; i++)
        join(h[i]);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static int close_race_child(void)
{
    unsigned char *bufs[4];
    for (int i = 0; i < 4; i++) {
        bufs[i] = xmalloc(RACE_LEN);
        memset(bufs[i], 'r', RACE_LEN); /* written: memcheck flags uninitialised bytes */
    }
    double end = now_s() + RACE_SECONDS;
    long rounds = 0;
    while (now_s() < end) {
        join(spawn(race_round, bufs));
        rounds++;
    }
    for (int i = 0; i < 4; i++)
        free(bufs[i]);
    printf("%ld\n", rounds);
    fflush(stdout);
    return 0;
}

/* Runs this program again with one argument; returns the wait status and
 * the first line it printed. */
static int run_self(const char *arg, char *out, size_t outlen)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        BAIL("readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';
    int p[2];
    make_pipe(p);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    char *args[] = {exe, (char *)arg, NULL};
    pid_t pid;
    int e = posix_spawn(&pid, exe, &fa, &at, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (e != 0)
        BAIL("posix_spawn %s: %s", exe, strerror(e));
    close(p[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < outlen && (r = read(p[0], out + len, outlen - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static void test_close_race(void)
{
    char out[64];
    int status = run_self("close-race", out, sizeof out);
    note("close right after two-way traffic, for %.0f s in a child: status %#x, %s "
         "rounds done",
         RACE_SECONDS, status, out[0] ? out : "no");
    if (WIFSIGNALED(status))
        diag("the child died by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "closing fds right after two-way traffic between coroutines never crashes the "
       "runtime (rounds of 256 KiB each way, then close, for %.0f s)",
       RACE_SECONDS);
}

/* ---- pipes ---------------------------------------------------------------- */

#define PIPE_LEN (1 << 20)

struct pipe_pair {
    int p[2];
    struct pump w, r;
};

static void *pipe_bulk(void *arg)
{
    struct pipe_pair *pp = arg;
    unb_coro_t *hw = spawn(pump_write, &pp->w);
    unb_coro_t *hr = spawn(pump_read, &pp->r);
    join(hw);
    join(hr);
    return NULL;
}

static void test_pipe_bulk(void)
{
    struct pipe_pair pp;
    memset(&pp, 0, sizeof pp);
    make_pipe(pp.p);
    unsigned char *src = xmalloc(PIPE_LEN), *dst = xmalloc(PIPE_LEN);
    fill_random(src, PIPE_LEN, 777);
    /* Chunks up to 16 KiB: a pipe holds 64 KiB. */
    pp.w = (struct pump){
        .fd = pp.p[1], .buf = src, .len = PIPE_LEN, .seed = 3, .max_chunk = 16384};
    pp.r = (struct pump){
        .fd = pp.p[0], .buf = dst, .len = PIPE_LEN, .seed = 4, .max_chunk = 65536};
    run_in(true, pipe_bulk, &pp, "1 MiB through a pipe between coroutines");
    note("pipe: %ld writes (%ld short), %ld reads (%ld short)", pp.w.calls,
         pp.w.short_calls, pp.r.calls, pp.r.short_calls);
    is_int(pp.w.err, 0, "pipe: no write failed (%s)", ename(pp.w.err));
    is_int(pp.w.done, PIPE_LEN, "pipe: the writer wrote 1 MiB");
    is_int(pp.w.short_calls, 0, "pipe: every write of up to 16 KiB wrote it all");
    is_int(pp.r.done, PIPE_LEN, "pipe: the reader read 1 MiB");
    ok(memcmp(src, dst, PIPE_LEN) == 0, "pipe: the bytes read are the bytes written");
    close(pp.p[0]);
    close(pp.p[1]);
    free(src);
    free(dst);
}

/* Readers parked on pipes, more of them than workers, while a ticker
 * coroutine ticks: a pipe read parks, it does not hold a worker. */
struct ticker {
    _Atomic int stop;
    _Atomic long ticks;
};

static void *tick(void *arg)
{
    struct ticker *t = arg;
    while (!atomic_load(&t->stop)) {
        sleep_ms(10);
        atomic_fetch_add(&t->ticks, 1);
    }
    return NULL;
}

struct pipe_reader {
    int fd;
    struct rec r;
    double elapsed, returned_at;
    long ticks_at_start, ticks_at_end;
    struct ticker *t;
    _Atomic int started, done;
};

static void *pipe_reader(void *arg)
{
    struct pipe_reader *pr = arg;
    char buf[16];
    atomic_store(&pr->started, 1);
    pr->ticks_at_start = atomic_load(&pr->t->ticks);
    double t0 = now_s();
    REC(pr->r, read(pr->fd, buf, sizeof buf));
    pr->returned_at = now_s();
    pr->elapsed = pr->returned_at - t0;
    pr->ticks_at_end = atomic_load(&pr->t->ticks);
    atomic_store(&pr->done, 1);
    return NULL;
}

#define MAX_READERS 16

/* Writes "data" to each pipe after 300 ms, from a plain thread (so a
 * broken park still ends). */
struct late_pipes {
    int n;
    int *fds;
    double written_at;
};

static void *late_pipe_writer(void *arg)
{
    struct late_pipes *l = arg;
    sleep_ms(300);
    l->written_at = now_s();
    for (int i = 0; i < l->n; i++)
        write(l->fds[i], "data", 4);
    return NULL;
}

static void test_pipe_parks(void)
{
    int n = (int)workers() + 1;
    if (n > MAX_READERS)
        n = MAX_READERS;
    int p[MAX_READERS][2], wfds[MAX_READERS];
    struct pipe_reader pr[MAX_READERS];
    unb_coro_t *h[MAX_READERS];
    struct ticker t = {0};
    memset(pr, 0, sizeof pr);
    unb_coro_t *th = spawn(tick, &t);
    for (int i = 0; i < n; i++) {
        make_pipe(p[i]);
        wfds[i] = p[i][1];
        pr[i].fd = p[i][0];
        pr[i].t = &t;
        h[i] = spawn(pipe_reader, &pr[i]);
    }
    struct late_pipes l = {n, wfds, 0};
    pthread_t w;
    if (pthread_create(&w, NULL, late_pipe_writer, &l) != 0)
        BAIL("pthread_create failed");
    for (int i = 0; i < n; i++)
        join_within(h[i], &pr[i].done, 5, "a pipe reader");
    pthread_join(w, NULL);
    atomic_store(&t.stop, 1);
    join(th);
    int got = 0, waited = 0;
    long min_ticks = 1L << 40;
    for (int i = 0; i < n; i++) {
        got += pr[i].r.ret == 4;
        waited += pr[i].returned_at >= l.written_at;
        long dt = pr[i].ticks_at_end - pr[i].ticks_at_start;
        if (dt < min_ticks)
            min_ticks = dt;
    }
    note(
        "%d pipe readers (%u workers): the ticker ticked at least %ld times while each "
        "waited",
        n, workers(), min_ticks);
    is_int(got, n, "%d coroutines reading pipes all got their 4 bytes", n);
    is_int(waited, n, "each waited until the data came (300 ms)");
    cmp_ok(min_ticks, >=, 10,
           "a 10 ms ticker coroutine kept ticking while %d pipe reads (more than the "
           "workers) waited",
           n);
}

/* A pipe write bigger than the pipe's buffer, in more coroutines than
 * workers: each must park, not hold a worker in the kernel. */
struct pipe_writer {
    int fd;
    struct rec r;
    struct ticker *t;
    long ticks_at_start, ticks_at_end;
    _Atomic int done;
};

#define PIPE_BIG (256 * 1024)

static void *pipe_big_writer(void *arg)
{
    struct pipe_writer *pw = arg;
    char *buf = xmalloc(PIPE_BIG);
    memset(buf, 'w', PIPE_BIG);
    pw->ticks_at_start = atomic_load(&pw->t->ticks);
    REC(pw->r, write(pw->fd, buf, PIPE_BIG));
    pw->ticks_at_end = atomic_load(&pw->t->ticks);
    free(buf);
    atomic_store(&pw->done, 1);
    return NULL;
}

/* Plain thread: after 300 ms, drains each pipe fully. */
struct late_drain {
    int n;
    int *fds;
    long got[MAX_READERS];
};

static void *late_pipe_drainer(void *arg)
{
    struct late_drain *l = arg;
    sleep_ms(300);
    char *buf = xmalloc(PIPE_BIG);
    for (int i = 0; i < l->n; i++) {
        ssize_t r = read_full(l->fds[i], buf, PIPE_BIG);
        l->got[i] = r;
    }
    free(buf);
    return NULL;
}

static void test_pipe_big_writes(void)
{
    int n = (int)workers() + 1;
    if (n > MAX_READERS)
        n = MAX_READERS;
    int p[MAX_READERS][2], rfds[MAX_READERS];
    struct pipe_writer pw[MAX_READERS];
    unb_coro_t *h[MAX_READERS];
    struct ticker t = {0};
    memset(pw, 0, sizeof pw);
    unb_coro_t *th = spawn(tick, &t);
    sleep_ms(20);
    for (int i = 0; i < n; i++) {
        make_pipe(p[i]);
        rfds[i] = p[i][0];
        pw[i].fd = p[i][1];
        pw[i].t = &t;
        h[i] = spawn(pipe_big_writer, &pw[i]);
    }
    struct late_drain l = {.n = n, .fds = rfds};
    pthread_t d;
    if (pthread_create(&d, NULL, late_pipe_drainer, &l) != 0)
        BAIL("pthread_create failed");
    for (int i = 0; i < n; i++)
        join_within(h[i], &pw[i].done, 10, "a big pipe write");
    pthread_join(d, NULL);
    atomic_store(&t.stop, 1);
    join(th);
    int full = 0, drained = 0;
    long min_ticks = 1L << 40;
    for (int i = 0; i < n; i++) {
        full += pw[i].r.ret == PIPE_BIG;
        drained += l.got[i] == PIPE_BIG;
        long dt = pw[i].ticks_at_end - pw[i].ticks_at_start;
        if (dt < min_ticks)
            min_ticks = dt;
    }
    note("%d coroutines each writing 256 KiB into a pipe drained after 300 ms: the "
         "ticker "
         "ticked at least %ld times during each write",
         n, min_ticks);
    is_int(full, n, "%d blocking 256 KiB pipe writes each returned the full length", n);
    is_int(drained, n, "the reader got 256 KiB from each pipe");
    /* The write blocks its thread (pipes stay blocking in the kernel); the
     * monitor hands the worker's other coroutines to a spare thread. */
    cmp_ok(
        min_ticks, >=, 10,
        "a 10 ms ticker kept ticking while %d pipe writes larger than the pipe (more "
        "than the workers) waited for a reader",
        n);
}

/* EOF and EPIPE on pipes, as natively. */
enum pcase { PC_EOF_PARKED, PC_EPIPE, NPC };
static const struct want pcwant[NPC] = {
    [PC_EOF_PARKED] = {"a pipe read waiting when the write end is closed (EOF)", 0, 0},
    [PC_EPIPE] = {"a pipe write with the read end closed (SIGPIPE ignored)", -1, EPIPE},
};

struct closer_later {
    int fd;
    int ms;
};

static void *close_later(void *arg)
{
    struct closer_later *c = arg;
    sleep_ms(c->ms);
    close(c->fd);
    return NULL;
}

static void *pipe_end_scenario(void *arg)
{
    struct rec *r = arg;
    int p[2];
    char buf[8];
    make_pipe(p);
    struct closer_later cl = {p[1], 50};
    struct task t;
    task_start(&t, close_later, &cl);
    REC(r[PC_EOF_PARKED], read(p[0], buf, sizeof buf));
    task_join(&t);
    close(p[0]);
    make_pipe(p);
    close(p[0]);
    REC(r[PC_EPIPE], write(p[1], "x", 1));
    close(p[1]);
    return NULL;
}

static void test_pipe_ends(void)
{
    struct rec nat[NPC], co[NPC];
    memset(nat, 0, sizeof nat);
    memset(co, 0, sizeof co);
    run_in(false, pipe_end_scenario, nat, "pipe ends on a plain thread");
    run_in(true, pipe_end_scenario, co, "pipe ends in a coroutine");
    compare("pipe ends", pcwant, nat, co, NPC);
}

/* ---- regular files -------------------------------------------------------- */

#define FILE_LEN (300 * 1024 + 123)

struct file_read {
    const char *path;
    unsigned char *buf;
    size_t got;
    long reads;
    struct rec eof, wr;
    uint64_t parks;
};

static void *file_scenario(void *arg)
{
    struct file_read *f = arg;
    uint64_t p0 = parks();
    int fd = open(f->path, O_RDONLY);
    if (fd < 0)
        BAIL("open %s: %s", f->path, strerror(errno));
    size_t chunk = 1;
    for (;;) {
        ssize_t n = read(fd, f->buf + f->got, chunk);
        if (n <= 0)
            break;
        f->got += (size_t)n;
        f->reads++;
        chunk = chunk * 3 + 7;
        if (chunk > 65536)
            chunk = 4093;
        if (f->got + chunk > FILE_LEN + 100)
            chunk = FILE_LEN + 100 - f->got;
    }
    REC(f->eof, read(fd, f->buf, 16));
    close(fd);
    int wfd = open(f->path, O_WRONLY | O_APPEND);
    REC(f->wr, write(wfd, "tail", 4));
    close(wfd);
    f->parks = parks() - p0;
    return NULL;
}

static void test_files(void)
{
    char path[] = "/tmp/unb_test_io_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        BAIL("mkstemp: %s", strerror(errno));
    unsigned char *src = xmalloc(FILE_LEN);
    fill_random(src, FILE_LEN, 555);
    if (write(fd, src, FILE_LEN) != FILE_LEN)
        BAIL("writing %s failed", path);
    close(fd);
    struct file_read nat = {.path = path, .buf = xmalloc(FILE_LEN + 100)};
    struct file_read co = {.path = path, .buf = xmalloc(FILE_LEN + 100)};
    run_in(false, file_scenario, &nat, "reading a file on a plain thread");
    if (truncate(path, FILE_LEN) != 0)
        BAIL("truncate: %s", strerror(errno));
    run_in(true, file_scenario, &co, "reading a file in a coroutine");
    unlink(path);
    is_int(nat.got, FILE_LEN, "native: the whole file was read");
    is_int(co.got, nat.got, "in a coroutine: as many bytes as natively (%zu)", nat.got);
    is_int(co.reads, nat.reads, "in a coroutine: in as many reads as natively");
    ok(co.got == FILE_LEN && memcmp(co.buf, src, FILE_LEN) == 0 &&
           memcmp(nat.buf, src, FILE_LEN) == 0,
       "in a coroutine: the same bytes as natively");
    ok(co.eof.ret == 0 && nat.eof.ret == 0,
       "read at the end of the file gives 0 in both "
       "(native %ld, coroutine %ld)",
       nat.eof.ret, co.eof.ret);
    ok(co.wr.ret == 4 && nat.wr.ret == 4, "a write to a file gives 4 in both");
    is_int(co.parks, 0,
           "reading and writing a regular file in a coroutine never parks");
    free(src);
    free(nat.buf);
    free(co.buf);
}

/* ---- unb_wait_fd ---------------------------------------------------------- */

enum wcase {
    W_DATA_LATER,
    W_DATA_LATER_WAITED,
    W_READY_NOW,
    W_TIMEOUT,
    W_TIMEOUT_RESPECTED,
    W_ZERO_TIMEOUT,
    W_POLLOUT,
    W_HANGUP,
    W_PIPE_LATER,
    W_FILE,
    W_EINVAL_BOTH,
    W_EINVAL_ZERO,
    W_EINVAL_PRI,
    W_EBADF,
    W_EBADF_NEG,
    NW
};

static const struct want wwant[NW] = {
    [W_DATA_LATER] = {"POLLIN, data 100 ms later (timeout 5 s)", 1, 0},
    [W_DATA_LATER_WAITED] = {"... it waited for the data, not the timeout (1 = yes)", 1,
                             0},
    [W_READY_NOW] = {"POLLIN with data already queued", 1, 0},
    [W_TIMEOUT] = {"POLLIN, no data, timeout 200 ms", 0, 0},
    [W_TIMEOUT_RESPECTED] = {"... after 200 ms to 2 s (1 = yes)", 1, 0},
    [W_ZERO_TIMEOUT] = {"POLLIN, no data, timeout 0", 0, 0},
    [W_POLLOUT] = {"POLLOUT on an empty socket", 1, 0},
    [W_HANGUP] = {"POLLIN after the peer closed (hang-up counts as ready)", 1, 0},
    [W_PIPE_LATER] = {"POLLIN on a pipe, data 50 ms later", 1, 0},
    [W_FILE] = {"POLLIN on a regular file", 1, 0},
    [W_EINVAL_BOTH] = {"events POLLIN|POLLOUT", -1, EINVAL},
    [W_EINVAL_ZERO] = {"events 0", -1, EINVAL},
    [W_EINVAL_PRI] = {"events POLLPRI", -1, EINVAL},
    [W_EBADF] = {"a closed fd", -1, EBADF},
    [W_EBADF_NEG] = {"fd -1 (timeout 100 ms)", -1, EBADF},
};

static void *wait_scenario(void *arg)
{
    struct rec *r = arg;
    int sv[2];
    make_pair(sv, SOCK_STREAM);
    struct feeder f = {.fd = sv[1],
                       .buf = (const unsigned char *)"ready",
                       .piece = 5,
                       .pieces = 1,
                       .first_ms = 100};
    struct task t;
    task_start(&t, feeder, &f);
    double t0 = now_s();
    REC(r[W_DATA_LATER], unb_wait_fd(sv[0], POLLIN, 5000));
    double el = now_s() - t0;
    task_join(&t);
    r[W_DATA_LATER_WAITED].ret = el >= 0.09 && el < 4.0;
    REC(r[W_READY_NOW], unb_wait_fd(sv[0], POLLIN, 0));
    drain(sv[0]);
    t0 = now_s();
    REC(r[W_TIMEOUT], unb_wait_fd(sv[0], POLLIN, 200));
    el = now_s() - t0;
    r[W_TIMEOUT_RESPECTED].ret = el >= 0.2 && el < 2.0;
    if (!r[W_TIMEOUT_RESPECTED].ret)
        diag("unb_wait_fd(200 ms) took %.6f s", el);
    REC(r[W_ZERO_TIMEOUT], unb_wait_fd(sv[0], POLLIN, 0));
    REC(r[W_POLLOUT], unb_wait_fd(sv[0], POLLOUT, 1000));
    REC(r[W_EINVAL_BOTH], unb_wait_fd(sv[0], POLLIN | POLLOUT, 100));
    REC(r[W_EINVAL_ZERO], unb_wait_fd(sv[0], 0, 100));
    REC(r[W_EINVAL_PRI], unb_wait_fd(sv[0], POLLPRI, 100));
    close(sv[1]);
    REC(r[W_HANGUP], unb_wait_fd(sv[0], POLLIN, 1000));
    close(sv[0]);
    REC(r[W_EBADF], unb_wait_fd(sv[0], POLLIN, 100));
    REC(r[W_EBADF_NEG], unb_wait_fd(-1, POLLIN, 100));

    int p[2];
    make_pipe(p);
    struct feeder fp = {.fd = p[1],
                        .buf = (const unsigned char *)"pipe",
                        .piece = 4,
                        .pieces = 1,
                        .first_ms = 50};
    task_start(&t, feeder, &fp);
    REC(r[W_PIPE_LATER], unb_wait_fd(p[0], POLLIN, 5000));
    task_join(&t);
    close(p[0]);
    close(p[1]);

    int fd = open("/proc/self/exe", O_RDONLY);
    REC(r[W_FILE], unb_wait_fd(fd, POLLIN, 1000));
    close(fd);
    return NULL;
}

static void test_wait_fd(void)
{
    struct rec pl[NW], co[NW];
    memset(pl, 0, sizeof pl);
    memset(co, 0, sizeof co);
    run_in(false, wait_scenario, pl, "unb_wait_fd on a plain thread");
    run_in(true, wait_scenario, co, "unb_wait_fd in a coroutine");
    /* The API's documented results, on both sides (a plain thread blocks
     * in poll(), a coroutine parks). */
    for (int i = 0; i < NW; i++) {
        note("unb_wait_fd / %s: plain thread %ld %s, coroutine %ld %s", wwant[i].name,
             pl[i].ret, ename(pl[i].err), co[i].ret, ename(co[i].err));
        is_int(pl[i].ret, wwant[i].ret, "unb_wait_fd on a plain thread: %s gives %ld",
               wwant[i].name, wwant[i].ret);
        is_int(pl[i].err, wwant[i].err, "unb_wait_fd on a plain thread: %s: errno %s",
               wwant[i].name, ename(wwant[i].err));
        is_int(co[i].ret, wwant[i].ret, "unb_wait_fd in a coroutine: %s gives %ld",
               wwant[i].name, wwant[i].ret);
        is_int(co[i].err, wwant[i].err, "unb_wait_fd in a coroutine: %s: errno %s",
               wwant[i].name, ename(wwant[i].err));
    }
}

/* ---- EINTR ----------------------------------------------------------------- */

/* Atomic, not volatile sig_atomic_t: the handler runs on whichever thread
 * takes the signal, and main reads the count on another. */
static _Atomic int alarm_hits;

static void on_alarm(int sig)
{
    (void)sig;
    alarm_hits++;
}

static void install_alarm(bool restart)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        BAIL("sigaction: %s", strerror(errno));
}

enum ecase { E_READ, E_READ_TIMEO, E_PIPE_READ, E_WRITE_FULL, E_WAIT_FD, NE };
static const char *const ecase_name[NE] = {
    "a socket read",
    "a socket read with SO_RCVTIMEO 3 s",
    "a pipe read",
    "a write on a full socket",
    "unb_wait_fd(POLLIN, 3 s)",
};

struct eintr {
    enum ecase c;
    int fd;
    bool plain_unblock; /* on a plain thread: unblock SIGALRM first */
    _Atomic pid_t tid;  /* the thread that makes the call */
    struct rec r;
    double elapsed, returned_at;
    _Atomic int started, done;
};

static void *eintr_call(void *arg)
{
    struct eintr *e = arg;
    if (e->plain_unblock) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGALRM);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    }
    char buf[1000];
    memset(buf, 'e', sizeof buf);
    atomic_store(&e->tid, gettid());
    atomic_store(&e->started, 1);
    double t0 = now_s();
    switch (e->c) {
    case E_READ:
    case E_READ_TIMEO:
    case E_PIPE_READ: REC(e->r, read(e->fd, buf, sizeof buf)); break;
    case E_WRITE_FULL: REC(e->r, write(e->fd, buf, sizeof buf)); break;
    case E_WAIT_FD: REC(e->r, unb_wait_fd(e->fd, POLLIN, 3000)); break;
    default: break;
    }
    e->returned_at = now_s();
    e->elapsed = e->returned_at - t0;
    atomic_store(&e->done, 1);
    return NULL;
}

#define SIGNAL_AT_MS 100
#define DATA_AT_MS 200


struct eintr_out {
    struct rec r;
    double elapsed;
    bool before_data; /* returned before the data (or room) came */
    int hits;
};

/*
 * Runs case c with the handler (restart or not) in one of three places:
 * 0 a plain thread on a native socket (pthread_kill to it), 1 a coroutine
 * (kill to the process: main blocks SIGALRM, so a worker takes it), 2 a
 * plain thread on a socket a coroutine made (the runtime holds
 * O_NONBLOCK on it).  The signal comes at 150 ms, the data (or room to
 * write) at 300 ms.
 */
static struct eintr_out eintr_run(enum ecase c, bool restart, int where)
{
    int fds[2];
    if (c == E_PIPE_READ)
        make_pipe(fds);
    else if (where == 2)
        join(spawn(make_pair_co, fds));
    else
        make_pair(fds, SOCK_STREAM);
    if (c == E_READ_TIMEO) {
        struct timeval tv = {3, 0};
        setsockopt(fds[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    if (c == E_WRITE_FULL)
        fill_socket(fds[0]);
    install_alarm(restart);
    alarm_hits = 0;

    struct eintr e = {.c = c, .fd = fds[0], .plain_unblock = where != 1};
    unb_coro_t *co = NULL;
    pthread_t th;
    uint64_t p0 = parks();
    double t0 = now_s();
    if (where == 1)
        co = spawn(eintr_call, &e);
    else if (pthread_create(&th, NULL, eintr_call, &e) != 0)
        BAIL("pthread_create failed");
    if (!wait_flag(&e.started, 5))
        hung("starting the EINTR case", 5);
    if (where == 1) {
        while (parks() == p0 && now_s() - t0 < 5)
            sleep_ms(1);
    } else {
        /* A plain thread must be in its call when the signal comes; on a
         * loaded machine, and under valgrind, SIGNAL_AT_MS may not do. */
        long nr = c == E_WRITE_FULL ? SYS_write : c == E_WAIT_FD ? SYS_poll : SYS_read;
        while (!in_syscall(atomic_load(&e.tid), nr) && now_s() - t0 < 5)
            sleep_ms(1);
    }
    double left = SIGNAL_AT_MS * 1e-3 - (now_s() - t0);
    if (left > 0)
        sleep_ms((long)(left * 1e3));
    if (where == 1)
        kill(getpid(), SIGALRM);
    else
        pthread_kill(th, SIGALRM);
    /* The data comes after the handler has run: natively the call it
     * interrupted then gives EINTR (or restarts) whatever comes after, and
     * under the runtime the interruption must not be lost to the data.
     * On a loaded machine, and under valgrind, the handler may not have
     * run 100 ms after the signal. */
    double t_sig = now_s();
    while (alarm_hits == 0 && now_s() - t_sig < 5 * test_slow())
        sleep_ms(1);
    left = DATA_AT_MS * 1e-3 - (now_s() - t0);
    if (left > 0)
        sleep_ms((long)(left * 1e3));
    double data_at = now_s();
    if (c == E_WRITE_FULL)
        drain(fds[1]);
    else
        write(fds[1], "data", 4);
    if (!wait_flag(&e.done, 5))
        hung("the interrupted call", 5);
    if (where == 1)
        join(co);
    else
        pthread_join(th, NULL);
    struct eintr_out out = {e.r, e.elapsed, e.returned_at < data_at, alarm_hits};
    signal(SIGALRM, SIG_IGN);
    close(fds[0]);
    close(fds[1]);
    return out;
}

static void test_eintr(void)
{
    static const char *const where_name[3] = {
        "native", "in a coroutine", "on a plain thread, socket made by a coroutine"};
    for (int restart = 0; restart < 2; restart++) {
        for (int c = 0; c < NE; c++) {
            struct eintr_out nat = eintr_run((enum ecase)c, restart, 0);
            struct eintr_out co = eintr_run((enum ecase)c, restart, 1);
            const char *how = restart ? "SA_RESTART" : "no SA_RESTART";
            note("%s, %s: native %ld %s after %.3f s; coroutine %ld %s after %.3f s",
                 ecase_name[c], how, nat.r.ret, ename(nat.r.err), nat.elapsed, co.r.ret,
                 ename(co.r.err), co.elapsed);
            is_int(nat.hits, 1, "native: the handler ran once");
            is_int(co.hits, 1, "in a coroutine: the handler ran once");
            bool want_eintr = !restart || c == E_READ_TIMEO || c == E_WAIT_FD;
            is_int(nat.r.err, want_eintr ? EINTR : 0, "native, %s, %s: %s", how,
                   ecase_name[c], want_eintr ? "EINTR" : "restarted, it completes");
            is_int(co.r.ret, nat.r.ret,
                   "in a coroutine, %s, %s: returns %ld as natively", how,
                   ecase_name[c], nat.r.ret);
            is_int(co.r.err, nat.r.err, "in a coroutine, %s, %s: errno %s as natively",
                   how, ecase_name[c], ename(nat.r.err));
            if (want_eintr)
                ok(co.before_data,
                   "in a coroutine, %s, %s: interrupted before the data "
                   "came (after %.3f s)",
                   how, ecase_name[c], co.elapsed);
            else
                ok(!co.before_data,
                   "in a coroutine, %s, %s: it waited for the data "
                   "(%.3f s)",
                   how, ecase_name[c], co.elapsed);
        }
        /* A plain thread on a socket a coroutine used must still see the
         * blocking call's EINTR behaviour. */
        struct eintr_out nat = eintr_run(E_READ, restart, 0);
        struct eintr_out pl = eintr_run(E_READ, restart, 2);
        const char *how = restart ? "SA_RESTART" : "no SA_RESTART";
        note("socket read, %s: native %ld %s; %s: %ld %s after %.3f s", how, nat.r.ret,
             ename(nat.r.err), where_name[2], pl.r.ret, ename(pl.r.err), pl.elapsed);
        is_int(pl.r.ret, nat.r.ret, "%s, %s: a socket read returns %ld as natively",
               where_name[2], how, nat.r.ret);
        is_int(pl.r.err, nat.r.err, "%s, %s: errno %s as natively", where_name[2], how,
               ename(nat.r.err));
    }
    signal(SIGALRM, SIG_DFL);
}

/* Runs one group of checks and says how long it took. */
#define TIMED(fn)                                                                      \
    do {                                                                               \
        double t_ = now_s();                                                           \
        fn();                                                                          \
        note("%s: %.2f s", #fn, now_s() - t_);                                         \
    } while (0)

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "close-race") == 0)
        return close_race_child();
    signal(SIGPIPE, SIG_IGN);
    /* Start the workers with SIGALRM unblocked, then block it here, so a
     * process-directed SIGALRM lands on a worker. */
    join(spawn(noop, NULL));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    note("%u workers", workers());

    double t0 = now_s();
    TIMED(test_bulk);
    TIMED(test_pingpong);
    TIMED(test_big_write);
    TIMED(test_vectors);
    TIMED(test_zero_length);
    TIMED(test_dontwait);
    TIMED(test_nonblock);
    TIMED(test_timeouts);
    TIMED(test_close_under_parked);
    TIMED(test_close_race);
    TIMED(test_pipe_bulk);
    TIMED(test_pipe_parks);
    TIMED(test_pipe_ends);
    TIMED(test_files);
    TIMED(test_wait_fd);
    TIMED(test_eintr);
    TIMED(test_pipe_big_writes); /* last: a worker blocked in the kernel would stall the
                                    rest */
    note("test_io: %.1f s", now_s() - t0);
    return done_testing();
}
