/*
 * libev_echo: single-threaded, single-loop libev TCP echo server; the
 * hand-written best-case baseline for the echo benchmarks.
 *
 * usage: libev_echo PORT
 *
 * Listens on 127.0.0.1:PORT (SO_REUSEADDR, backlog SOMAXCONN).  Every
 * connection has one ev_io that stays started for EV_READ in the steady
 * state, so a request/response costs no epoll_ctl.  Data is read into one
 * shared 64 KiB buffer and written straight back; only if a write is
 * partial is the remainder copied to a per-connection buffer and the
 * watcher switched to EV_WRITE (no reads) until it drains.  Connections
 * are closed on EOF or error.  SIGTERM/SIGINT stop the loop (exit 0).
 * Nothing is printed on stdout; errors go to stderr.
 */
#define _GNU_SOURCE
#include <ev.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)

/* One client connection.  `io` must stay the first member (callbacks cast
 * the watcher pointer back to the connection). */
struct conn {
    ev_io io;
    char *pending;   /* unsent echo data, NULL when none */
    size_t pend_off; /* first unsent byte in pending */
    size_t pend_len; /* total bytes in pending */
};

/* Shared read buffer: the loop is single-threaded and data never outlives
 * a callback here (leftovers are copied into conn->pending). */
static char rbuf[BUF_SIZE];

static ev_io accept_watcher;
static ev_timer accept_backoff;

/* Stops and frees a connection and closes its socket. */
static void conn_close(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c->pending);
    free(c);
}

/* Re-arms the watcher for `events`.  Stop/modify/start of the same fd is
 * coalesced by libev into a single EPOLL_CTL_MOD at the next iteration. */
static void conn_rearm(struct ev_loop *loop, struct conn *c, int events)
{
    ev_io_stop(loop, &c->io);
    ev_io_modify(&c->io, events);
    ev_io_start(loop, &c->io);
}

/*
 * Writes buf[0..len) to fd.  Returns the number of bytes written (possibly
 * short, 0 on EAGAIN) or -1 on a fatal error.
 */
static ssize_t write_some(int fd, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    return (ssize_t)off;
}

/* Readable: read once and echo; writable: drain the pending buffer. */
static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = (struct conn *)w;

    if (revents & EV_WRITE) {
        ssize_t n = write_some(w->fd, c->pending + c->pend_off,
                               c->pend_len - c->pend_off);
        if (n < 0) {
            conn_close(loop, c);
            return;
        }
        c->pend_off += (size_t)n;
        if (c->pend_off == c->pend_len) {
            free(c->pending);
            c->pending = NULL;
            conn_rearm(loop, c, EV_READ);
        }
        return;
    }

    if (!(revents & EV_READ))
        return;

    ssize_t n = read(w->fd, rbuf, sizeof rbuf);
    if (n == 0) {
        conn_close(loop, c);
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_close(loop, c);
        return;
    }

    ssize_t wr = write_some(w->fd, rbuf, (size_t)n);
    if (wr < 0) {
        conn_close(loop, c);
        return;
    }
    if (wr == n)
        return;

    /* Partial write: keep the rest and wait for writability. */
    size_t rest = (size_t)(n - wr);
    c->pending = malloc(rest);
    if (!c->pending) {
        fprintf(stderr, "libev_echo: out of memory\n");
        conn_close(loop, c);
        return;
    }
    memcpy(c->pending, rbuf + wr, rest);
    c->pend_off = 0;
    c->pend_len = rest;
    conn_rearm(loop, c, EV_WRITE);
}

/* Re-enables accepting after an fd-exhaustion pause. */
static void backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_io_start(loop, &accept_watcher);
}

/* Accepts until EAGAIN; each new socket gets a conn in EV_READ mode. */
static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Level-triggered listener would spin: pause 10 ms. */
                perror("libev_echo: accept4");
                ev_io_stop(loop, w);
                ev_timer_set(&accept_backoff, 0.01, 0.0);
                ev_timer_start(loop, &accept_backoff);
                return;
            }
            perror("libev_echo: accept4");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            fprintf(stderr, "libev_echo: out of memory\n");
            close(fd);
            continue;
        }
        ev_io_init(&c->io, conn_cb, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

/* SIGTERM/SIGINT: leave the loop. */
static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || end == argv[1] || port < 1 || port > 65535) {
        fprintf(stderr, "libev_echo: bad port '%s'\n", argv[1]);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

    /* Many connections need many fds: soft limit up to the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        perror("libev_echo: socket");
        return 1;
    }
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
        perror("libev_echo: SO_REUSEADDR");
        return 1;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("libev_echo: bind");
        return 1;
    }
    if (listen(lfd, SOMAXCONN) < 0) {
        perror("libev_echo: listen");
        return 1;
    }

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO | EVBACKEND_EPOLL);
    if (!loop) {
        fprintf(stderr, "libev_echo: cannot initialise libev epoll loop\n");
        return 1;
    }

    ev_io_init(&accept_watcher, accept_cb, lfd, EV_READ);
    ev_io_start(loop, &accept_watcher);
    ev_init(&accept_backoff, backoff_cb);

    ev_signal sigterm, sigint;
    ev_signal_init(&sigterm, signal_cb, SIGTERM);
    ev_signal_start(loop, &sigterm);
    ev_signal_init(&sigint, signal_cb, SIGINT);
    ev_signal_start(loop, &sigint);

    ev_run(loop, 0);

    /* Open connections are reclaimed by process exit. */
    close(lfd);
    return 0;
}
