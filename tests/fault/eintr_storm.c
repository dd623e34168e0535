/*
 * eintr_storm: a thread sends SIGUSR1 at a high rate (pthread_kill to each
 * of the other threads in turn, and every 16th time kill() to the process)
 * while those threads are blocked in read and write (a pipe, a loopback TCP
 * connection), accept, connect, nanosleep, pthread_cond_wait and sem_wait.
 * Twice: with a handler installed with SA_RESTART, then without.
 *
 * Every call's result is checked against the native contract:
 *   - read, write, accept, connect: EINTR only without SA_RESTART (these
 *     fds have no timeout); write may return a partial count;
 *   - nanosleep: 0 only after the whole time; EINTR (with either handler)
 *     leaves a remainder no larger than what was asked;
 *   - pthread_cond_wait and pthread_mutex_lock: always 0 (never EINTR);
 *   - sem_wait: 0, or -1 EINTR (with either handler);
 * and nothing is lost: every byte a write acknowledged is read, in order
 * and intact; every connection is accepted with its id; every item and
 * every post is taken exactly once.
 *
 * stdout holds only verdicts, the same natively and under the preload;
 * stderr says how many calls saw EINTR and how many signals were handled
 * (those vary from run to run).
 */
#define _GNU_SOURCE
#include <poll.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>

#include "../diff/diff.h"

#define PIPE_BYTES (4 << 20)
#define TCP_BYTES (4 << 20)
#define CHUNK_MAX (96 * 1024)
#define CONNS 200
#define SLEEPS 200
#define SLEEP_NS 2000000L /* 2 ms */
#define ITEMS 1500
#define DEADLINE_MS 30000 /* the storm ends by itself at the latest then */

static int restart; /* this phase's handler has SA_RESTART */
static _Atomic long handled, violations;
static _Atomic int done; /* participants finished */
static unsigned char pattern[PIPE_BYTES > TCP_BYTES ? PIPE_BYTES : TCP_BYTES];

enum { C_READ, C_WRITE, C_ACCEPT, C_CONNECT, C_SLEEP, C_SEM, C_NCALLS };
static const char *call_names[C_NCALLS] = {"read",    "write",     "accept",
                                           "connect", "nanosleep", "sem_wait"};
static _Atomic long eintr[C_NCALLS];

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "VIOLATION (%s): ", restart ? "SA_RESTART" : "no SA_RESTART");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    atomic_fetch_add(&violations, 1);
}

/* An EINTR from a call that SA_RESTART would have restarted. */
static void got_eintr(int call, int restartable)
{
    atomic_fetch_add_explicit(&eintr[call], 1, memory_order_relaxed);
    if (restartable && restart)
        violation("%s returned EINTR under an SA_RESTART handler", call_names[call]);
}

/* A small deterministic generator per thread. */
static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* Sleeps ms with nanosleep, checking its contract on every return. */
static void checked_sleep_ns(long ns)
{
    struct timespec req = {ns / 1000000000L, ns % 1000000000L}, rem;
    double t0 = now_ms(), want = (double)ns / 1e6;
    for (;;) {
        rem = (struct timespec){-1, -1};
        int r = nanosleep(&req, &rem);
        if (r == 0)
            break;
        if (errno != EINTR) {
            violation("nanosleep: %s", ename(errno));
            return;
        }
        got_eintr(C_SLEEP, 0);
        /* Linux computes the remainder from the timer's expiry, which
         * includes the thread's timer slack (50 us by default): it may
         * exceed the request by that much, never by a millisecond. */
        double rem_ms = (double)rem.tv_sec * 1e3 + (double)rem.tv_nsec / 1e6;
        double req_ms = (double)req.tv_sec * 1e3 + (double)req.tv_nsec / 1e6;
        if (rem.tv_sec < 0 || rem.tv_nsec < 0 || rem.tv_nsec >= 1000000000L ||
            rem_ms > req_ms + 1.0) {
            violation("nanosleep: EINTR with a remainder %ld.%09ld beyond the "
                      "request %ld.%09ld",
                      (long)rem.tv_sec, rem.tv_nsec, (long)req.tv_sec, req.tv_nsec);
            return;
        }
        req = rem;
    }
    /* Whole milliseconds of slack for the clock reads around the call. */
    if (now_ms() - t0 < want - 0.05)
        violation("nanosleep returned 0 after %.3f ms of %.3f ms", now_ms() - t0, want);
}

/* ---- a byte stream: writer and reader ---------------------------------------- */

struct stream {
    const char *name;
    int wfd, rfd;
    size_t total;
    size_t acked; /* sum of the writes' counts */
    size_t got;   /* bytes read */
    int intact;
};

static void *stream_writer(void *arg)
{
    struct stream *s = arg;
    unsigned seed = 7;
    size_t off = 0;
    int n = 0;
    while (off < s->total) {
        size_t want = 1 + next_rand(&seed) % CHUNK_MAX;
        if (want > s->total - off)
            want = s->total - off;
        ssize_t k = write(s->wfd, pattern + off, want);
        if (k < 0 && errno == EINTR) {
            got_eintr(C_WRITE, 1);
            continue;
        }
        if (k <= 0) {
            violation("%s write: %s", s->name, k < 0 ? ename(errno) : "0");
            break;
        }
        off += (size_t)k;
        s->acked = off;
        if (++n % 4 == 0)
            checked_sleep_ns(200000); /* the reader drains and parks again */
    }
    s->acked = off;
    close(s->wfd);
    atomic_fetch_add(&done, 1);
    return NULL;
}

static void *stream_reader(void *arg)
{
    struct stream *s = arg;
    unsigned char *buf = malloc(65536); /* not __thread: a coroutine may move */
    if (!buf)
        return NULL;
    unsigned seed = 11;
    s->intact = 1;
    for (;;) {
        size_t want = 1 + next_rand(&seed) % 65536;
        ssize_t k = read(s->rfd, buf, want);
        if (k < 0 && errno == EINTR) {
            got_eintr(C_READ, 1);
            continue;
        }
        if (k < 0) {
            violation("%s read: %s", s->name, ename(errno));
            break;
        }
        if (k == 0)
            break;
        if (s->got + (size_t)k > s->total ||
            memcmp(buf, pattern + s->got, (size_t)k) != 0)
            s->intact = 0;
        s->got += (size_t)k;
    }
    free(buf);
    close(s->rfd);
    atomic_fetch_add(&done, 1);
    return NULL;
}

/* ---- accept and connect ------------------------------------------------------ */

static int listener;
static unsigned short lport;
static int accepted_ok;

static void *acceptor(void *arg)
{
    (void)arg;
    int seen[CONNS] = {0};
    for (int i = 0; i < CONNS; i++) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0 && errno == EINTR) {
            got_eintr(C_ACCEPT, 1);
            i--;
            continue;
        }
        if (fd < 0) {
            violation("accept: %s", ename(errno));
            break;
        }
        int id = -1;
        size_t got = 0;
        while (got < sizeof id) {
            ssize_t k = read(fd, (char *)&id + got, sizeof id - got);
            if (k < 0 && errno == EINTR) {
                got_eintr(C_READ, 1);
                continue;
            }
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        if (got == sizeof id && id >= 0 && id < CONNS && !seen[id]) {
            seen[id] = 1;
            accepted_ok++;
        } else {
            violation("accepted connection %d: bad id %d (%zu bytes)", i, id, got);
        }
        close(fd);
    }
    atomic_fetch_add(&done, 1);
    return NULL;
}

/* Natively an interrupted connect goes on in the background: wait for it
 * and read its outcome, as a careful program does. */
static int finish_connect(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    for (;;) {
        int r = poll(&p, 1, 5000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 1)
            return -1;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
            return -1;
        return 0;
    }
}

static void *connector(void *arg)
{
    (void)arg;
    struct sockaddr_in a = loopback(lport);
    for (int i = 0; i < CONNS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            violation("socket: %s", ename(errno));
            break;
        }
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            if (errno != EINTR) {
                violation("connect: %s", ename(errno));
                close(fd);
                break;
            }
            got_eintr(C_CONNECT, 1);
            if (finish_connect(fd) != 0) {
                violation("connect interrupted, then it failed");
                close(fd);
                break;
            }
        }
        size_t sent = 0;
        while (sent < sizeof i) {
            ssize_t k = write(fd, (char *)&i + sent, sizeof i - sent);
            if (k < 0 && errno == EINTR) {
                got_eintr(C_WRITE, 1);
                continue;
            }
            if (k <= 0)
                break;
            sent += (size_t)k;
        }
        close(fd);
        checked_sleep_ns(500000);
    }
    atomic_fetch_add(&done, 1);
    return NULL;
}

/* ---- sleeps ---------------------------------------------------------------- */

static void *sleeper(void *arg)
{
    (void)arg;
    for (int i = 0; i < SLEEPS; i++)
        checked_sleep_ns(SLEEP_NS);
    atomic_fetch_add(&done, 1);
    return NULL;
}

/* ---- a condition variable: producer and consumer ---------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int queue_len, produced_all;
static long consumed, consumed_sum;

static void *cond_producer(void *arg)
{
    (void)arg;
    for (int i = 1; i <= ITEMS; i++) {
        int e = pthread_mutex_lock(&mu);
        if (e)
            violation("pthread_mutex_lock = %s", ename(e));
        queue_len++;
        consumed_sum += i; /* the consumer subtracts what it takes */
        if ((e = pthread_cond_signal(&cv)))
            violation("pthread_cond_signal = %s", ename(e));
        pthread_mutex_unlock(&mu);
        if (i % 4 == 0)
            checked_sleep_ns(100000);
    }
    pthread_mutex_lock(&mu);
    produced_all = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    atomic_fetch_add(&done, 1);
    return NULL;
}

static void *cond_consumer(void *arg)
{
    (void)arg;
    int e = pthread_mutex_lock(&mu);
    if (e)
        violation("pthread_mutex_lock = %s", ename(e));
    long next = 1;
    for (;;) {
        while (queue_len == 0 && !produced_all) {
            e = pthread_cond_wait(&cv, &mu);
            if (e)
                violation("pthread_cond_wait = %s", ename(e));
        }
        if (queue_len == 0)
            break;
        queue_len--;
        consumed++;
        consumed_sum -= next++;
    }
    pthread_mutex_unlock(&mu);
    atomic_fetch_add(&done, 1);
    return NULL;
}

/* ---- a semaphore ------------------------------------------------------------- */

static sem_t sem;
static long sem_taken;

static void *sem_producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < ITEMS; i++) {
        if (sem_post(&sem) != 0)
            violation("sem_post: %s", ename(errno));
        if (i % 4 == 0)
            checked_sleep_ns(100000);
    }
    atomic_fetch_add(&done, 1);
    return NULL;
}

static void *sem_consumer(void *arg)
{
    (void)arg;
    while (sem_taken < ITEMS) {
        if (sem_wait(&sem) == 0) {
            sem_taken++;
            continue;
        }
        if (errno == EINTR) {
            got_eintr(C_SEM, 0);
            continue;
        }
        violation("sem_wait: %s", ename(errno));
        break;
    }
    atomic_fetch_add(&done, 1);
    return NULL;
}

/* ---- the storm --------------------------------------------------------------- */

#define NPART 12
static pthread_t parts[NPART];
static int nparts;
static long sent;

static struct stream *progress[2];

static void *signaller(void *arg)
{
    (void)arg;
    double t0 = now_ms();
    int i = 0;
    while (atomic_load(&done) < nparts) {
        if (now_ms() - t0 > DEADLINE_MS) {
            violation("the participants were not done after %d ms", DEADLINE_MS);
            fprintf(stderr,
                    "  progress: pipe acked %zu got %zu, tcp acked %zu got %zu, "
                    "accepted %d, consumed %ld queue %d, sem taken %ld\n",
                    progress[0] ? progress[0]->acked : 0,
                    progress[0] ? progress[0]->got : 0,
                    progress[1] ? progress[1]->acked : 0,
                    progress[1] ? progress[1]->got : 0, accepted_ok, consumed,
                    queue_len, sem_taken);
            break;
        }
        int e = pthread_kill(parts[i++ % nparts], SIGUSR1);
        if (e)
            violation("pthread_kill = %s", ename(e));
        if (i % 16 == 0 && kill(getpid(), SIGUSR1) != 0)
            violation("kill: %s", ename(errno));
        sent++;
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL); /* interrupted or not: the next one goes */
    }
    return NULL;
}

static void phase(int with_restart)
{
    restart = with_restart;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = with_restart ? SA_RESTART : 0;
    MUST(sigaction(SIGUSR1, &sa, NULL));
    atomic_store(&done, 0);
    atomic_store(&violations, 0);
    atomic_store(&handled, 0);
    for (int c = 0; c < C_NCALLS; c++)
        atomic_store(&eintr[c], 0);
    sent = 0;

    int p[2];
    MUST(pipe(p));
    struct stream ps = {.name = "pipe", .wfd = p[1], .rfd = p[0], .total = PIPE_BYTES};
    int tc, ts;
    tcp_pair(&tc, &ts);
    struct stream ts_ = {.name = "tcp", .wfd = tc, .rfd = ts, .total = TCP_BYTES};
    listener = tcp_listener(&lport, 64);
    accepted_ok = 0;
    queue_len = produced_all = 0;
    consumed = consumed_sum = 0;
    MUST(sem_init(&sem, 0, 0));
    sem_taken = 0;

    progress[0] = &ps;
    progress[1] = &ts_;
    nparts = 0;
    parts[nparts++] = spawn(stream_reader, &ps);
    parts[nparts++] = spawn(stream_writer, &ps);
    parts[nparts++] = spawn(stream_reader, &ts_);
    parts[nparts++] = spawn(stream_writer, &ts_);
    parts[nparts++] = spawn(acceptor, NULL);
    parts[nparts++] = spawn(connector, NULL);
    parts[nparts++] = spawn(sleeper, NULL);
    parts[nparts++] = spawn(cond_consumer, NULL);
    parts[nparts++] = spawn(cond_producer, NULL);
    parts[nparts++] = spawn(sem_consumer, NULL);
    parts[nparts++] = spawn(sem_producer, NULL);
    pthread_t sig = spawn(signaller, NULL);
    join(sig);
    for (int i = 0; i < nparts; i++)
        join(parts[i]);
    close(listener);

    int semval = -1;
    sem_getvalue(&sem, &semval);
    sem_destroy(&sem);

    const char *h = with_restart ? "SA_RESTART" : "no SA_RESTART";
    printf("phase: a SIGUSR1 handler with %s\n", h);
    printf("  pipe: acknowledged by write == read: %s; content intact: %s\n",
           ps.acked == PIPE_BYTES && ps.got == ps.acked ? "yes" : "no",
           ps.intact ? "yes" : "no");
    printf("  tcp: acknowledged by write == read: %s; content intact: %s\n",
           ts_.acked == TCP_BYTES && ts_.got == ts_.acked ? "yes" : "no",
           ts_.intact ? "yes" : "no");
    printf("  accept: %d of %d connections, each id once\n", accepted_ok, CONNS);
    printf("  cond_wait: %ld of %d items taken, in order: %s\n", consumed, ITEMS,
           consumed_sum == 0 ? "yes" : "no");
    printf("  sem_wait: %ld of %d posts taken, value left %d\n", sem_taken, ITEMS,
           semval);
    printf("  results outside the native contract: %ld\n", atomic_load(&violations));
    printf("  the storm sent at least 500 signals: %s\n", sent >= 500 ? "yes" : "no");
    fprintf(stderr, "%s: %ld signals sent, %ld handled; EINTR:", h, sent,
            atomic_load(&handled));
    for (int c = 0; c < C_NCALLS; c++)
        fprintf(stderr, " %s %ld", call_names[c], atomic_load(&eintr[c]));
    fprintf(stderr, "\n");
    if (ps.acked != ps.got || ts_.acked != ts_.got)
        fprintf(stderr, "pipe acked %zu read %zu; tcp acked %zu read %zu\n", ps.acked,
                ps.got, ts_.acked, ts_.got);
}

int main(void)
{
    diff_start(0);
    alarm(90); /* a hang dies by SIGALRM */
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(i * 131 + (i >> 11));
    phase(1);
    phase(0);
    return 0;
}
