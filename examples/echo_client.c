/*
 * echo_client: closed-loop load generator and verifier for TCP echo servers.
 *
 * usage: echo_client [-h HOST] -p PORT [-c CONNECTIONS] [-s MSGSIZE]
 *                    [-d SECONDS] [-n TOTAL_REQUESTS] [-t THREADS]
 *                    [-w WARMUP_SECONDS]
 *
 * Defaults: HOST 127.0.0.1, 10 connections, 64-byte messages, 5 seconds,
 * no request limit, 1 thread, no warmup.  -d 0 means no time limit (only
 * allowed together with -n).
 *
 * All connections are opened first (in batches, so the server's listen
 * backlog is not overrun).  Then each connection repeatedly sends one
 * MSGSIZE message, waits for the complete echo, verifies every byte and
 * records the round-trip latency (CLOCK_MONOTONIC).  Message content is a
 * pseudo-random stream keyed by (connection, request number), so bytes
 * delivered to the wrong connection or request are detected.  With -t the
 * connections are split over THREADS threads, each with its own epoll set.
 *
 * Measurement starts WARMUP_SECONDS after the connections are up and runs
 * for SECONDS or until TOTAL_REQUESTS round trips completed, whichever is
 * first.  A request is counted when its echo completes inside the
 * measurement window.  Mismatches and errors are counted over the whole
 * run, warmup included.  A connection whose peer closes or resets (or that
 * cannot be established) counts as an error and is dropped.
 *
 * Output, one line on stdout:
 *   requests=N seconds=F rps=F p50_us=F p99_us=F mismatches=N errors=N
 *   connections=N
 * where connections is the number of connections established.
 * Exit status: 0 if requests > 0 and there were no mismatches and no
 * errors, 1 otherwise, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK (64 * 1024)         /* max bytes per read/write call */
#define MAX_EVENTS 256               /* epoll_wait batch */
#define CONNECT_BATCH 128            /* connections in flight while connecting */
#define CONNECT_RETRY_NS 3000000000LL /* retry refused connects this long */
#define CONNECT_TIMEOUT_NS 10000000000LL /* give up a pending connect */
#define POLL_MS 50                   /* epoll timeout: bounds stop latency */

/* ---------------------------------------------------------------------- */
/* Latency histogram: log-linear buckets, 128 sub-buckets per power of two,
 * so a bucket spans at most 1/128 (< 0.8%) of its lower bound; reported
 * values are bucket midpoints. */

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t total;
};

/* Maps a value in ns to its bucket index. */
static unsigned hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= SUB_BITS + 1 */
    uint64_t m = v >> (e - HIST_SUB_BITS);           /* in [SUB, 2*SUB) */
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + (unsigned)(m - HIST_SUB);
}

/* Midpoint of bucket idx, in ns. */
static double hist_value(unsigned idx)
{
    if (idx < 2 * HIST_SUB)
        return (double)idx;
    unsigned e = idx / HIST_SUB + HIST_SUB_BITS - 1;
    uint64_t m = HIST_SUB + idx % HIST_SUB;
    uint64_t width = 1ull << (e - HIST_SUB_BITS);
    return (double)(m << (e - HIST_SUB_BITS)) + (double)(width - 1) / 2.0;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->total++;
}

static void hist_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->count[i] += src->count[i];
    dst->total += src->total;
}

/* Value (ns) at quantile q in [0,1]; 0 if the histogram is empty. */
static double hist_quantile(const struct hist *h, double q)
{
    if (h->total == 0)
        return 0.0;
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* ---------------------------------------------------------------------- */
/* Payload: byte i of message (conn, seq) is byte i%8 of
 * mix(key + i/8), key = mix(conn, seq).  Any slice can be regenerated, so
 * no per-connection copy of the message is kept. */

static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t payload_key(uint32_t conn_id, uint64_t seq)
{
    return mix64(((uint64_t)conn_id << 40) ^ seq ^ 0x5eed000000000000ull);
}

/* Fills out[0..len) with message bytes [off, off+len) for key. */
static void payload_fill(uint64_t key, size_t off, size_t len,
                         unsigned char *out)
{
    size_t i = 0;
    while (i < len) {
        size_t pos = off + i;
        uint64_t w = mix64(key + (pos >> 3));
        for (unsigned b = (unsigned)(pos & 7); b < 8 && i < len; b++, i++)
            out[i] = (unsigned char)(w >> (8 * b));
    }
}

/* ---------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Options. */
static const char *opt_host = "127.0.0.1";
static const char *opt_port;
static long opt_conns = 10;
static size_t opt_msgsize = 64;
static double opt_seconds = 5.0;
static uint64_t opt_total; /* 0: unlimited */
static long opt_threads = 1;
static double opt_warmup = 0.0;

/* Run-wide state shared by the worker threads. */
static uint64_t g_measure_start; /* ns; completions before are warmup */
static uint64_t g_deadline;      /* ns; UINT64_MAX if no time limit */
static atomic_bool g_stop;
static atomic_uint_fast64_t g_done;   /* counted requests (only with -n) */
static atomic_uint_fast64_t g_stop_at; /* ns when the -n limit was reached */

enum conn_state { SENDING, RECEIVING };

/* One client connection, owned by exactly one worker thread. */
struct conn {
    int fd;
    uint32_t id;      /* global connection number, keys the payload */
    uint64_t seq;     /* current request number */
    uint64_t key;     /* payload key of the current request */
    size_t sent;      /* bytes of the current request written */
    size_t recvd;     /* bytes of the current echo received and checked */
    uint64_t t_start; /* send time of the current request */
    bool want_out;    /* EPOLLOUT currently registered */
    bool bad;         /* current echo had a mismatching byte */
    bool dead;
};

struct worker {
    pthread_t thread;
    struct conn *conns;
    long nconns;
    long alive;
    int ep;
    unsigned char wbuf[IO_CHUNK];
    unsigned char rbuf[IO_CHUNK];
    unsigned char xbuf[IO_CHUNK];
    uint64_t requests;
    uint64_t mismatches;
    uint64_t errors;
    uint64_t end_time; /* when this worker stopped */
    struct hist hist;
};

static void conn_drop(struct worker *w, struct conn *c)
{
    if (c->dead)
        return;
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->dead = true;
    w->alive--;
    w->errors++;
}

/* Sets the epoll interest to EPOLLIN, plus EPOLLOUT if want_out. */
static int conn_interest(struct worker *w, struct conn *c, bool want_out)
{
    if (c->want_out == want_out)
        return 0;
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                              .data.ptr = c };
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -1;
    c->want_out = want_out;
    return 0;
}

/* Writes as much of the current request as the socket takes.  Registers
 * EPOLLOUT while data remains.  Returns -1 if the connection was dropped. */
static int conn_write(struct worker *w, struct conn *c)
{
    while (c->sent < opt_msgsize) {
        size_t len = opt_msgsize - c->sent;
        if (len > IO_CHUNK)
            len = IO_CHUNK;
        payload_fill(c->key, c->sent, len, w->wbuf);
        ssize_t n = send(c->fd, w->wbuf, len, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            if ((size_t)n < len)
                break; /* socket buffer full */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_drop(w, c);
        return -1;
    }
    if (conn_interest(w, c, c->sent < opt_msgsize) < 0) {
        conn_drop(w, c);
        return -1;
    }
    return 0;
}

/* Starts request seq+1 at time now. */
static int conn_start(struct worker *w, struct conn *c, uint64_t now)
{
    c->seq++;
    c->key = payload_key(c->id, c->seq);
    c->sent = 0;
    c->recvd = 0;
    c->bad = false;
    c->t_start = now;
    return conn_write(w, c);
}

/* Sets the global stop flag; the first caller records the time. */
static void request_stop(uint64_t when)
{
    uint_fast64_t zero = 0;
    atomic_compare_exchange_strong(&g_stop_at, &zero, when);
    atomic_store(&g_stop, true);
}

/* Accounts a completed echo at time now. */
static void conn_complete(struct worker *w, struct conn *c, uint64_t now)
{
    if (c->bad)
        w->mismatches++;
    if (now < g_measure_start || now >= g_deadline)
        return;
    if (opt_total) {
        uint_fast64_t n = atomic_fetch_add(&g_done, 1);
        if (n >= opt_total)
            return;
        if (n + 1 == opt_total)
            request_stop(now);
    }
    w->requests++;
    hist_add(&w->hist, now - c->t_start);
}

/* Reads and verifies echo bytes; on a complete echo, accounts it and starts
 * the next request.  Returns -1 if the connection was dropped. */
static int conn_read(struct worker *w, struct conn *c)
{
    for (;;) {
        size_t want = opt_msgsize - c->recvd;
        if (want == 0) {
            /* Data while nothing is outstanding is checked against the
             * next request once it is sent; nothing to do now. */
            return 0;
        }
        if (want > IO_CHUNK)
            want = IO_CHUNK;
        ssize_t n = read(c->fd, w->rbuf, want);
        if (n == 0) {
            conn_drop(w, c); /* peer closed */
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            conn_drop(w, c);
            return -1;
        }
        /* Bytes echoed beyond what was sent so far are wrong by
         * definition (the server cannot know them yet). */
        if (c->recvd + (size_t)n > c->sent)
            c->bad = true;
        payload_fill(c->key, c->recvd, (size_t)n, w->xbuf);
        if (memcmp(w->rbuf, w->xbuf, (size_t)n) != 0) {
            if (!c->bad && w->mismatches < 3)
                fprintf(stderr,
                        "echo_client: mismatch on connection %u request %llu"
                        " near offset %zu\n",
                        c->id, (unsigned long long)c->seq, c->recvd);
            c->bad = true;
        }
        c->recvd += (size_t)n;
        if (c->recvd == opt_msgsize) {
            uint64_t now = now_ns();
            conn_complete(w, c, now);
            if (atomic_load_explicit(&g_stop, memory_order_relaxed))
                return 0;
            return conn_start(w, c, now);
        }
        if ((size_t)n < want)
            return 0; /* drained for now; level-triggered epoll re-reports */
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];

    uint64_t now = now_ns();
    for (long i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (conn_start(w, c, now) < 0)
            continue;
    }

    while (w->alive > 0 && !atomic_load_explicit(&g_stop,
                                                 memory_order_relaxed)) {
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, POLL_MS);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("echo_client: epoll_wait");
            w->errors++;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->dead)
                continue;
            uint32_t ev = evs[i].events;
            if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (conn_read(w, c) < 0)
                    continue;
            }
            if ((ev & EPOLLOUT) && c->sent < opt_msgsize)
                conn_write(w, c);
        }
        if (now_ns() >= g_deadline)
            atomic_store(&g_stop, true);
    }
    w->end_time = now_ns();
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Connection setup. */

struct pending {
    int fd;           /* -1 when not connecting */
    long idx;         /* connection slot */
    uint64_t first;   /* first attempt */
    uint64_t attempt; /* current attempt */
    uint64_t retry_at;/* next attempt time, 0 if none scheduled */
};

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;

static int resolve(void)
{
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(opt_host, opt_port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "echo_client: %s:%s: %s\n", opt_host, opt_port,
                gai_strerror(rc));
        return -1;
    }
    memcpy(&g_addr, res->ai_addr, res->ai_addrlen);
    g_addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Starts a non-blocking connect.  Returns 1 if connected at once, 0 if in
 * progress (fd registered for EPOLLOUT in ep), 2 if it should be retried,
 * -1 on a hard error.  *fdp receives the socket. */
static int connect_start(int ep, uint32_t slot, int *fdp)
{
    int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
                    SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("echo_client: socket");
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *fdp = fd;
    if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) == 0)
        return 1;
    if (errno == EINPROGRESS || errno == EINTR) {
        struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = slot };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("echo_client: epoll_ctl");
            close(fd);
            return -1;
        }
        return 0;
    }
    int err = errno;
    close(fd);
    *fdp = -1;
    if (err == ECONNREFUSED || err == EAGAIN || err == EADDRNOTAVAIL)
        return 2;
    fprintf(stderr, "echo_client: connect: %s\n", strerror(err));
    return -1;
}

/* Opens opt_conns connections, at most CONNECT_BATCH in flight.  fds[i] is
 * the socket of connection i or -1 if it failed.  Returns the number of
 * failures. */
static long connect_all(int *fds)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("echo_client: epoll_create1");
        for (long i = 0; i < opt_conns; i++)
            fds[i] = -1;
        return opt_conns;
    }
    struct pending slots[CONNECT_BATCH];
    int nslots = CONNECT_BATCH;
    long next = 0, failed = 0, refused_reported = 0;

    for (int s = 0; s < nslots; s++)
        slots[s].idx = -1;

    for (;;) {
        uint64_t now = now_ns();
        int busy = 0;
        for (int s = 0; s < nslots; s++) {
            struct pending *p = &slots[s];
            if (p->idx < 0 && next < opt_conns) {
                p->idx = next++;
                p->fd = -1;
                p->first = now;
                p->retry_at = now;
            }
            if (p->idx < 0)
                continue;
            busy++;
            if (p->fd >= 0) {
                if (now - p->attempt > CONNECT_TIMEOUT_NS) {
                    fprintf(stderr, "echo_client: connect timed out\n");
                    close(p->fd);
                    fds[p->idx] = -1;
                    failed++;
                    p->idx = -1;
                }
                continue;
            }
            if (now < p->retry_at)
                continue;
            int fd = -1;
            p->attempt = now;
            int rc = connect_start(ep, (uint32_t)s, &fd);
            if (rc == 1) {
                fds[p->idx] = fd;
                p->idx = -1;
            } else if (rc == 0) {
                p->fd = fd;
            } else if (rc == 2 && now - p->first < CONNECT_RETRY_NS) {
                p->retry_at = now + 10000000ull; /* 10 ms */
            } else {
                if (rc == 2 && !refused_reported++)
                    fprintf(stderr, "echo_client: connect: giving up after"
                            " retries\n");
                fds[p->idx] = -1;
                failed++;
                p->idx = -1;
            }
        }
        if (busy == 0)
            break;

        struct epoll_event evs[CONNECT_BATCH];
        int n = epoll_wait(ep, evs, CONNECT_BATCH, 5);
        for (int i = 0; i < n; i++) {
            struct pending *p = &slots[evs[i].data.u32];
            if (p->idx < 0 || p->fd < 0)
                continue;
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
            if (err == 0) {
                fds[p->idx] = p->fd;
                p->idx = -1;
                continue;
            }
            close(p->fd);
            p->fd = -1;
            if ((err == ECONNREFUSED || err == EAGAIN) &&
                now_ns() - p->first < CONNECT_RETRY_NS) {
                p->retry_at = now_ns() + 10000000ull;
                continue;
            }
            if (!refused_reported++)
                fprintf(stderr, "echo_client: connect: %s\n", strerror(err));
            fds[p->idx] = -1;
            failed++;
            p->idx = -1;
        }
    }
    close(ep);
    return failed;
}

/* ---------------------------------------------------------------------- */

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [-h HOST] -p PORT [-c CONNECTIONS] [-s MSGSIZE]"
            " [-d SECONDS] [-n TOTAL_REQUESTS] [-t THREADS]"
            " [-w WARMUP_SECONDS]\n", prog);
    exit(2);
}

static long parse_long(const char *s, long min, long max, const char *prog)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        usage(prog);
    return v;
}

static double parse_seconds(const char *s, const char *prog)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0) || v > 1e6)
        usage(prog);
    return v;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "h:p:c:s:d:n:t:w:")) != -1) {
        switch (opt) {
        case 'h': opt_host = optarg; break;
        case 'p':
            parse_long(optarg, 1, 65535, argv[0]);
            opt_port = optarg;
            break;
        case 'c': opt_conns = parse_long(optarg, 1, 1000000, argv[0]); break;
        case 's':
            opt_msgsize = (size_t)parse_long(optarg, 1, 1L << 30, argv[0]);
            break;
        case 'd': opt_seconds = parse_seconds(optarg, argv[0]); break;
        case 'n':
            opt_total = (uint64_t)parse_long(optarg, 1, LONG_MAX, argv[0]);
            break;
        case 't': opt_threads = parse_long(optarg, 1, 1024, argv[0]); break;
        case 'w': opt_warmup = parse_seconds(optarg, argv[0]); break;
        default: usage(argv[0]);
        }
    }
    if (optind != argc || !opt_port || (opt_seconds == 0.0 && !opt_total))
        usage(argv[0]);
    if (opt_threads > opt_conns)
        opt_threads = opt_conns;

    signal(SIGPIPE, SIG_IGN);

    /* One fd per connection plus a few: soft limit up to the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < (rlim_t)opt_conns + (rlim_t)opt_threads + 16) {
            fprintf(stderr, "echo_client: RLIMIT_NOFILE %llu too low for %ld"
                    " connections\n", (unsigned long long)rl.rlim_cur,
                    opt_conns);
            return 1;
        }
    }

    if (resolve() < 0)
        return 1;

    int *fds = malloc(sizeof *fds * (size_t)opt_conns);
    struct conn *conns = calloc((size_t)opt_conns, sizeof *conns);
    struct worker *workers = calloc((size_t)opt_threads, sizeof *workers);
    if (!fds || !conns || !workers) {
        fprintf(stderr, "echo_client: out of memory\n");
        return 1;
    }

    long connect_failures = connect_all(fds);

    /* Hand the established connections to the workers, round robin by
     * contiguous shares. */
    long established = 0;
    for (long i = 0; i < opt_conns; i++) {
        if (fds[i] < 0)
            continue;
        conns[established].fd = fds[i];
        conns[established].id = (uint32_t)i;
        established++;
    }
    free(fds);

    for (long t = 0; t < opt_threads; t++) {
        struct worker *w = &workers[t];
        long lo = established * t / opt_threads;
        long hi = established * (t + 1) / opt_threads;
        w->conns = conns + lo;
        w->nconns = hi - lo;
        w->alive = w->nconns;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0) {
            perror("echo_client: epoll_create1");
            return 1;
        }
        for (long i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
            if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
                perror("echo_client: epoll_ctl");
                return 1;
            }
        }
    }

    uint64_t t0 = now_ns();
    g_measure_start = t0 + (uint64_t)(opt_warmup * 1e9);
    g_deadline = opt_seconds > 0.0
                     ? g_measure_start + (uint64_t)(opt_seconds * 1e9)
                     : UINT64_MAX;

    for (long t = 0; t < opt_threads; t++) {
        int rc = pthread_create(&workers[t].thread, NULL, worker_main,
                                &workers[t]);
        if (rc != 0) {
            fprintf(stderr, "echo_client: pthread_create: %s\n",
                    strerror(rc));
            return 1;
        }
    }

    struct hist *all = calloc(1, sizeof *all);
    if (!all) {
        fprintf(stderr, "echo_client: out of memory\n");
        return 1;
    }
    uint64_t requests = 0, mismatches = 0;
    uint64_t errors = (uint64_t)connect_failures;
    uint64_t end = 0;
    for (long t = 0; t < opt_threads; t++) {
        struct worker *w = &workers[t];
        pthread_join(w->thread, NULL);
        requests += w->requests;
        mismatches += w->mismatches;
        errors += w->errors;
        hist_merge(all, &w->hist);
        if (w->end_time > end)
            end = w->end_time;
    }
    for (long i = 0; i < established; i++)
        if (!conns[i].dead)
            close(conns[i].fd);

    /* Measured interval: warmup end to the deadline, the moment the -n
     * limit was hit, or the moment the last worker gave up. */
    uint64_t stop_at = atomic_load(&g_stop_at);
    if (stop_at)
        end = stop_at;
    if (end > g_deadline)
        end = g_deadline;
    double seconds = end > g_measure_start
                         ? (double)(end - g_measure_start) / 1e9 : 0.0;
    double rps = seconds > 0.0 ? (double)requests / seconds : 0.0;

    printf("requests=%llu seconds=%.3f rps=%.1f p50_us=%.2f p99_us=%.2f"
           " mismatches=%llu errors=%llu connections=%ld\n",
           (unsigned long long)requests, seconds, rps,
           hist_quantile(all, 0.50) / 1000.0,
           hist_quantile(all, 0.99) / 1000.0,
           (unsigned long long)mismatches, (unsigned long long)errors,
           established);

    free(all);
    free(conns);
    free(workers);
    return (requests > 0 && mismatches == 0 && errors == 0) ? 0 : 1;
}
