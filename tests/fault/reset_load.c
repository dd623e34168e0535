/*
 * reset_load: 64 clients at once fetch 2 MiB each from a thread-per-
 * connection server; every other client resets its connection (SO_LINGER
 * {1, 0}, then close) after reading a random part, while the server is
 * still writing.  Four rounds.
 *
 *   - the server's writes return counts, or -1 with EPIPE or ECONNRESET
 *     (SIGPIPE ignored) once the peer is gone; never anything else;
 *   - a client that reads to the end gets every byte the server's writes
 *     acknowledged, intact; a resetting client never reads more than was
 *     acknowledged;
 *   - the process stays up, the server serves one more client in full,
 *     and its descriptors return to what they were before the load.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdatomic.h>

#include "../diff/diff.h"

#define CLIENTS 64
#define ROUNDS 4
#define BYTES (2 << 20)

static unsigned char payload[BYTES];
static int listener;
static unsigned short port;
static _Atomic long bad_errors, write_resets, full_reads;

struct conn {
    int fd;
    size_t acked;
};
static struct conn conns[CLIENTS];

static void *serve(void *arg)
{
    struct conn *c = arg;
    size_t off = 0;
    /* Small buffers: the writes cannot all be absorbed by the kernel
     * before a client resets, so the reset meets a writing server. */
    int small = 65536;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    while (off < BYTES) {
        size_t n = BYTES - off < 65536 ? BYTES - off : 65536;
        ssize_t k = write(c->fd, payload + off, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            if (errno == EPIPE || errno == ECONNRESET) {
                atomic_fetch_add(&write_resets, 1);
            } else {
                fprintf(stderr, "server write: %s\n", ename(errno));
                atomic_fetch_add(&bad_errors, 1);
            }
            break;
        }
        off += (size_t)k;
    }
    c->acked = off;
    close(c->fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    int n = (int)(intptr_t)arg;
    pthread_t t[CLIENTS];
    for (int i = 0; i < n; i++) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", ename(errno));
            atomic_fetch_add(&bad_errors, 1);
            n = i;
            break;
        }
        int id = -1;
        read_full(fd, &id, sizeof id);
        if (id < 0 || id >= CLIENTS) {
            atomic_fetch_add(&bad_errors, 1);
            close(fd);
            continue;
        }
        conns[id].fd = fd;
        t[i] = spawn(serve, &conns[id]);
    }
    for (int i = 0; i < n; i++)
        join(t[i]);
    return NULL;
}

struct client {
    int id, reset;
    size_t cut, got;
    int intact;
};

static void *client(void *arg)
{
    struct client *c = arg;
    int fd = tcp_connect(port);
    write_all(fd, &c->id, sizeof c->id);
    unsigned char buf[16384]; /* not __thread: a coroutine may move */
    c->intact = 1;
    c->got = 0;
    size_t stop = c->reset ? c->cut : BYTES;
    while (c->got < stop) {
        size_t want = stop - c->got < sizeof buf ? stop - c->got : sizeof buf;
        ssize_t k = read(fd, buf, want);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (memcmp(buf, payload + c->got, (size_t)k) != 0)
            c->intact = 0;
        c->got += (size_t)k;
    }
    if (!c->reset && c->got == BYTES && c->intact)
        atomic_fetch_add(&full_reads, 1);
    if (c->reset) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    return NULL;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* One round of n clients; returns the number of checks that failed. */
static int round_of(int n, unsigned *seed)
{
    static struct client cl[CLIENTS];
    pthread_t acc = spawn(acceptor, (void *)(intptr_t)n);
    pthread_t t[CLIENTS];
    for (int i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        cl[i] = (struct client){.id = i,
                                .reset = n > 1 && i % 2 == 1,
                                .cut = 1 + (*seed >> 8) % (BYTES / 2)};
        t[i] = spawn(client, &cl[i]);
    }
    for (int i = 0; i < n; i++)
        join(t[i]);
    join(acc);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (!cl[i].intact || cl[i].got > conns[i].acked ||
            (!cl[i].reset && (cl[i].got != BYTES || conns[i].acked != BYTES))) {
            fprintf(stderr,
                    "client %d (reset %d): got %zu, server acknowledged %zu, "
                    "intact %d\n",
                    i, cl[i].reset, cl[i].got, conns[i].acked, cl[i].intact);
            bad++;
        }
    }
    return bad;
}

int main(void)
{
    diff_start(0);
    alarm(120);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < BYTES; i++)
        payload[i] = (unsigned char)(i * 7 + (i >> 9));
    listener = tcp_listener(&port, CLIENTS);
    int fds0 = count_fds();
    unsigned seed = 1;
    int bad = 0;
    for (int r = 0; r < ROUNDS; r++)
        bad += round_of(CLIENTS, &seed);
    printf("%d rounds of %d clients, every other one resetting mid-transfer\n", ROUNDS,
           CLIENTS);
    printf("clients whose bytes differ from what the server acknowledged: %d\n", bad);
    printf("server write errors other than EPIPE and ECONNRESET: %ld\n",
           atomic_load(&bad_errors));
    printf("clients that read to the end and got all 2 MiB intact: %ld of %d\n",
           atomic_load(&full_reads), ROUNDS * CLIENTS / 2);
    printf("some server write saw the reset: %s\n",
           atomic_load(&write_resets) > 0 ? "yes" : "no");
    int after = round_of(1, &seed);
    printf("then one more client is served in full: %s\n", after == 0 ? "yes" : "no");
    int fds1 = count_fds();
    printf("descriptors back to what they were before the load: %s\n",
           fds1 == fds0 ? "yes" : "no");
    fprintf(stderr, "server writes that saw the reset: %ld; descriptors %d -> %d\n",
            atomic_load(&write_resets), fds0, fds1);
    return 0;
}
