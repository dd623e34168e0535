/*
 * soak_client: churns connections against a TCP echo server and checks
 * every byte.  An ordinary pthread program (run natively).
 *
 *   soak_client PORT CONNECTIONS CONCURRENCY [SEED [SECONDS]]
 *
 * CONCURRENCY threads each open connections one after another (each
 * disconnect is followed by a reconnect) until CONNECTIONS have been made.
 * A connection sends 1 to 8 messages of random sizes (1 byte to 64 KiB,
 * one in eight up to 256 KiB), reading the echo while it writes (poll),
 * and ends in one of four ways, chosen at random:
 *
 *   clean      every message echoed, then close: every byte must come back;
 *   mid-close  close (FIN) partway through a message, unread echo pending;
 *   mid-reset  the same with SO_LINGER {1, 0}: the server sees a reset;
 *   reset      every message echoed, then a reset instead of a FIN.
 *
 * Every byte that comes back must be the byte sent at that position
 * (mismatched), a connection that ends cleanly must get all its bytes back
 * (lost), and no connection may wait 20 s for progress (stalled).  Exit 0
 * if all three are zero and every connection was made; the last line has
 * the counts.  SECONDS (default 600) bounds the whole run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STALL_MS 20000
#define MAX_MSGS 8
#define BIG_MSG (256 * 1024)

static unsigned short port;
static long total, concurrency;
static unsigned seed0;
static double deadline;

static _Atomic long next_conn, conns_done, messages, bytes_sent, bytes_echoed;
static _Atomic long mismatched, lost, stalled, failed_connects, connect_retries;
static _Atomic long ends[4];
static const char *end_names[4] = {"clean", "mid-close", "mid-reset", "reset"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* The byte at position i of connection c's stream. */
static inline unsigned char byte_at(uint64_t c, uint64_t i)
{
    return (unsigned char)(mix(c * 0x9e3779b97f4a7c15ULL + (i >> 3)) >> ((i & 7) * 8));
}

static int connect_to_server(void)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            usleep(10000);
            continue;
        }
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            fcntl(fd, F_SETFL, O_NONBLOCK);
            return fd;
        }
        close(fd);
        atomic_fetch_add(&connect_retries, 1);
        usleep(10000); /* refused (backlog full, server restarting): again */
    }
    return -1;
}

/*
 * Sends [from, to) of connection c's stream and reads its echo up to
 * `to`, both at once.  *sent and *got advance.  Stops writing at `cut`
 * (if cut < to) and returns 1 at once when it is reached (the caller then
 * ends the connection mid-message).  Returns 0 when everything came back,
 * -1 on EOF, an error or a stall.
 */
static int exchange(int fd, uint64_t c, uint64_t *sent, uint64_t *got, uint64_t to,
                    uint64_t cut)
{
    unsigned char buf[16384];
    while (*got < to) {
        if (*sent >= cut && cut < to)
            return 1;
        struct pollfd p = {.fd = fd, .events = POLLIN | (*sent < to ? POLLOUT : 0)};
        int r = poll(&p, 1, STALL_MS);
        if (r == 0) {
            atomic_fetch_add(&stalled, 1);
            return -1;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if ((p.revents & POLLOUT) && *sent < to) {
            uint64_t lim = cut < to ? cut : to;
            size_t n = lim - *sent < sizeof buf ? (size_t)(lim - *sent) : sizeof buf;
            for (size_t i = 0; i < n; i++)
                buf[i] = byte_at(c, *sent + i);
            ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
            if (k > 0) {
                *sent += (uint64_t)k;
                atomic_fetch_add_explicit(&bytes_sent, k, memory_order_relaxed);
            } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                return -1;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = recv(fd, buf, sizeof buf, 0);
            if (k == 0)
                return -1;
            if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                return -1;
            }
            long bad = 0;
            for (ssize_t i = 0; i < k; i++)
                bad += buf[i] != byte_at(c, *got + (uint64_t)i);
            if (bad || *got + (uint64_t)k > *sent) {
                atomic_fetch_add(&mismatched, bad ? bad : k);
                return -1;
            }
            *got += (uint64_t)k;
            atomic_fetch_add_explicit(&bytes_echoed, k, memory_order_relaxed);
        }
    }
    return 0;
}

static void one_connection(uint64_t c)
{
    uint64_t rnd = mix(c ^ ((uint64_t)seed0 << 32));
    int how = (int)(rnd & 3);
    int nmsg = 1 + (int)((rnd >> 2) % MAX_MSGS);
    int cut_msg = (int)((rnd >> 8) % (uint64_t)nmsg);
    int fd = connect_to_server();
    if (fd < 0) {
        atomic_fetch_add(&failed_connects, 1);
        return;
    }
    uint64_t sent = 0, got = 0;
    int ok = 1;
    for (int m = 0; m < nmsg && ok; m++) {
        uint64_t r = mix(rnd + (uint64_t)m + 1);
        uint64_t size = (r & 7) == 0 ? 1 + (r >> 3) % BIG_MSG : 1 + (r >> 3) % 65536;
        uint64_t to = sent + size, cut = UINT64_MAX;
        if ((how == 1 || how == 2) && m == cut_msg)
            cut = sent + (r >> 40) % size; /* partway into this message */
        int e = exchange(fd, c, &sent, &got, to, cut);
        if (e == 1)
            break; /* cut: end it now */
        if (e < 0) {
            ok = 0;
            break;
        }
        atomic_fetch_add_explicit(&messages, 1, memory_order_relaxed);
    }
    if (!ok && (how == 0 || how == 3))
        atomic_fetch_add(&lost, 1); /* a connection that should have ended well */
    if (how == 2 || how == 3) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    atomic_fetch_add(&ends[how], 1);
    atomic_fetch_add(&conns_done, 1);
}

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        long c = atomic_fetch_add(&next_conn, 1);
        if (c >= total || now_s() > deadline)
            break;
        one_connection((uint64_t)c);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr,
                "usage: soak_client PORT CONNECTIONS CONCURRENCY [SEED [SECONDS]]\n");
        return 2;
    }
    port = (unsigned short)atoi(argv[1]);
    total = atol(argv[2]);
    concurrency = atol(argv[3]);
    seed0 = argc > 4 ? (unsigned)atol(argv[4]) : 1;
    double limit = argc > 5 ? atof(argv[5]) : 600;
    if (concurrency < 1 || concurrency > 4096 || total < 1) {
        fprintf(stderr, "soak_client: bad counts\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    double t0 = now_s();
    deadline = t0 + limit;
    pthread_t *t = calloc((size_t)concurrency, sizeof *t);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    long started = 0;
    for (long i = 0; i < concurrency; i++)
        if (pthread_create(&t[i], &a, worker, NULL) == 0)
            started++;
        else
            break;
    for (long i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
    pthread_attr_destroy(&a);
    double secs = now_s() - t0;
    long done = atomic_load(&conns_done);
    printf("soak: connections=%ld of %ld concurrency=%ld reconnects=%ld messages=%ld "
           "bytes_sent=%ld bytes_echoed=%ld mismatched=%ld lost=%ld stalled=%ld "
           "failed_connects=%ld connect_retries=%ld",
           done, total, started, done > started ? done - started : 0,
           atomic_load(&messages), atomic_load(&bytes_sent), atomic_load(&bytes_echoed),
           atomic_load(&mismatched), atomic_load(&lost), atomic_load(&stalled),
           atomic_load(&failed_connects), atomic_load(&connect_retries));
    for (int i = 0; i < 4; i++)
        printf(" %s=%ld", end_names[i], atomic_load(&ends[i]));
    printf(" seconds=%.1f\n", secs);
    int pass = done == total && atomic_load(&mismatched) == 0 &&
               atomic_load(&lost) == 0 && atomic_load(&stalled) == 0 &&
               atomic_load(&failed_connects) == 0;
    return pass ? 0 : 1;
}
