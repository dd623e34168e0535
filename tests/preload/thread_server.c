/*
 * thread_server: what a user tries first, a thread-per-connection TCP
 * server and its clients in one program, mixing pthreads with blocking
 * sockets, poll, select, sleeps, a mutex and condition variables.  Run
 * natively and under LD_PRELOAD=libunblock.so by tests/test_preload.c,
 * which wants the same stdout and exit status from both.
 *
 *   - an acceptor thread accepts 16 connections on 127.0.0.1 and starts a
 *     detached handler thread for each, which answers every request line
 *     with a reply computed from it, until end of file;
 *   - 16 client threads each send 50 requests, waiting for each reply with
 *     poll (even requests) or select (odd ones), both with a 5 s timeout,
 *     sometimes sleeping (nanosleep, clock_nanosleep) between them;
 *   - a ticker thread sleeps in 1 ms steps until told to stop by a
 *     condition variable (timedwait);
 *   - main waits on a pipe with select for a thread's "done" byte, and on a
 *     condition variable for the handlers to finish.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


#define CLIENTS 16
#define REQUESTS 50

static int listener;
static struct sockaddr_in server_addr;

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t handlers_cond = PTHREAD_COND_INITIALIZER;
static int handlers_done, handler_errors;
static long requests_served;

/* Reads one '\n'-terminated line; 1, 0 at end of file, -1 on error. */
static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return n == 0 ? 0 : -1;
        if (c == '\n') {
            buf[n] = '\0';
            return 1;
        }
        if (n + 1 >= cap)
            return -1;
        buf[n++] = c;
    }
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The reply to "client C request R": the sum C * 1000 + R, squared. */
static long answer(int c, int r)
{
    long v = (long)c * 1000 + r;
    return v * v;
}

static void *handler(void *arg)
{
    int fd = (int)(long)arg;
    char line[128];
    long served = 0;
    int err = 0, rc;
    while ((rc = read_line(fd, line, sizeof line)) == 1) {
        int c, r;
        if (sscanf(line, "client %d request %d", &c, &r) != 2) {
            err = 1;
            break;
        }
        char reply[64];
        int n = snprintf(reply, sizeof reply, "answer %ld\n", answer(c, r));
        if (write_all(fd, reply, (size_t)n) != 0) {
            err = 1;
            break;
        }
        served++;
    }
    if (rc < 0)
        err = 1;
    close(fd);
    pthread_mutex_lock(&stats_lock);
    requests_served += served;
    handler_errors += err;
    handlers_done++;
    pthread_cond_signal(&handlers_cond);
    pthread_mutex_unlock(&stats_lock);
    return NULL;
}

static void *acceptor(void *arg)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int accepted = 0;
    while (accepted < CLIENTS) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        pthread_t t;
        if (pthread_create(&t, &a, handler, (void *)(long)fd) != 0) {
            close(fd);
            break;
        }
        accepted++;
    }
    pthread_attr_destroy(&a);
    return (void *)(long)accepted;
}

/* Waits until fd is readable: poll or select, 5 s at most. */
static int wait_readable(int fd, int use_select)
{
    if (!use_select) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        return poll(&p, 1, 5000) == 1 && (p.revents & POLLIN);
    }
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(fd, &rs);
    struct timeval tv = {5, 0};
    return select(fd + 1, &rs, NULL, NULL, &tv) == 1 && FD_ISSET(fd, &rs);
}

static void *client(void *arg)
{
    int c = (int)(long)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) != 0)
        return (void *)0L;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    long good = 0;
    for (int r = 0; r < REQUESTS; r++) {
        char req[64], line[128];
        int n = snprintf(req, sizeof req, "client %d request %d\n", c, r);
        if (write_all(fd, req, (size_t)n) != 0)
            break;
        if (!wait_readable(fd, r % 2))
            break;
        if (read_line(fd, line, sizeof line) != 1)
            break;
        long v;
        if (sscanf(line, "answer %ld", &v) == 1 && v == answer(c, r))
            good++;
        if (r % 10 == 3) {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
        } else if (r % 10 == 7) {
            struct timespec ts = {0, 300000};
            clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        }
    }
    close(fd);
    return (void *)good;
}

/* ---- the ticker --------------------------------------------------------- */

static pthread_mutex_t tick_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tick_cond = PTHREAD_COND_INITIALIZER;
static int tick_stop;

static void *ticker(void *arg)
{
    long ticks = 0;
    pthread_mutex_lock(&tick_lock);
    while (!tick_stop) {
        pthread_mutex_unlock(&tick_lock);
        usleep(1000);
        ticks++;
        pthread_mutex_lock(&tick_lock);
        struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), 1);
        if (!tick_stop)
            pthread_cond_timedwait(&tick_cond, &tick_lock, &dl);
    }
    pthread_mutex_unlock(&tick_lock);
    return (void *)ticks;
}

/* ---- a pipe and select in main ------------------------------------------ */

static int done_pipe[2];

static void *says_done(void *arg)
{
    usleep(10000);
    ssize_t w = write(done_pipe[1], "d", 1);
    return (void *)w;
}

int main(void)
{
    watchdog(10);
    signal(SIGPIPE, SIG_IGN);
    phase = "setup";
    listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    server_addr.sin_family = AF_INET;
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof server_addr;
    if (bind(listener, (struct sockaddr *)&server_addr, sizeof server_addr) != 0 ||
        listen(listener, 64) != 0 ||
        getsockname(listener, (struct sockaddr *)&server_addr, &len) != 0) {
        printf("FAIL - listening socket: %s\n", strerror(errno));
        return 1;
    }

    phase = "serving";
    pthread_t tk = spawn(ticker, NULL);
    pthread_t acc = spawn(acceptor, NULL);
    pthread_t cl[CLIENTS];
    for (long i = 0; i < CLIENTS; i++)
        cl[i] = spawn(client, (void *)i);
    long good = 0;
    for (int i = 0; i < CLIENTS; i++)
        good += (long)join(cl[i]);
    long accepted = (long)join(acc);
    check(accepted == CLIENTS, "the acceptor accepted %d connections", CLIENTS);
    if (!check(
            good == CLIENTS * REQUESTS,
            "%d clients x %d requests: every reply right, waited for by poll or select",
            CLIENTS, REQUESTS))
        detail("%ld right", good);

    phase = "handlers";
    struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), 5000);
    pthread_mutex_lock(&stats_lock);
    while (handlers_done < CLIENTS)
        if (pthread_cond_timedwait(&handlers_cond, &stats_lock, &dl) == ETIMEDOUT)
            break;
    int done = handlers_done, errs = handler_errors;
    long served = requests_served;
    pthread_mutex_unlock(&stats_lock);
    if (!check(done == CLIENTS && errs == 0 && served == CLIENTS * REQUESTS,
               "%d detached handlers served %d requests and saw end of file", CLIENTS,
               CLIENTS * REQUESTS))
        detail("%d done, %d errors, %ld served", done, errs, served);

    phase = "select on a pipe";
    if (pipe(done_pipe) != 0)
        return 1;
    pthread_t sd = spawn(says_done, NULL);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(done_pipe[0], &rs);
    struct timeval tv = {5, 0};
    int n = select(done_pipe[0] + 1, &rs, NULL, NULL, &tv);
    char c = 0;
    ssize_t r = n == 1 ? read(done_pipe[0], &c, 1) : -1;
    join(sd);
    check(n == 1 && r == 1 && c == 'd',
          "select in main wakes for a thread's write to a pipe");

    phase = "ticker";
    pthread_mutex_lock(&tick_lock);
    tick_stop = 1;
    pthread_cond_signal(&tick_cond);
    pthread_mutex_unlock(&tick_lock);
    long ticks = (long)join(tk);
    if (!check(ticks > 0, "the ticker ticked meanwhile and stopped when told"))
        detail("%ld ticks", ticks);
    close(listener);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
