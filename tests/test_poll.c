/*
 * poll, ppoll, select and pselect inside coroutines: the results are the
 * kernel's, a wait parks the coroutine (others keep running), timeouts are
 * kept, and a closed fd reports POLLNVAL/EBADF as natively.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unblock.h>
#include <unistd.h>

#include "tap.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* errno through a call the compiler cannot merge across a park. */
__attribute__((noinline)) static int get_errno(void)
{
    return errno;
}

static int sv[2];
static atomic_int ticks;
static atomic_int stop_ticker;

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_ticker)) {
        usleep(10000);
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

static void *writer_later(void *arg)
{
    usleep((useconds_t)(intptr_t)arg);
    return (void *)(intptr_t)write(sv[1], "x", 1);
}

struct result {
    int r, err;
    short revents;
    double secs;
};

static void *poll_timeout(void *arg)
{
    struct result *res = arg;
    struct pollfd p = {.fd = sv[0], .events = POLLIN};
    double t0 = now();
    res->r = poll(&p, 1, 200);
    res->err = get_errno();
    res->revents = p.revents;
    res->secs = now() - t0;
    return NULL;
}

static void *poll_data(void *arg)
{
    struct result *res = arg;
    struct pollfd p[2] = {{.fd = -1, .events = POLLIN}, {.fd = sv[0], .events = POLLIN}};
    double t0 = now();
    res->r = poll(p, 2, 5000);
    res->revents = p[1].revents;
    res->secs = now() - t0;
    return NULL;
}

static void *select_data(void *arg)
{
    struct result *res = arg;
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(sv[0], &rd);
    struct timeval tv = {5, 0};
    double t0 = now();
    res->r = select(sv[0] + 1, &rd, NULL, NULL, &tv);
    res->revents = (short)FD_ISSET(sv[0], &rd);
    res->secs = now() - t0;
    return NULL;
}

static void *select_badf(void *arg)
{
    struct result *res = arg;
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(sv[0], &rd);
    FD_SET(1000, &rd);
    struct timeval tv = {1, 0};
    res->r = select(1001, &rd, NULL, NULL, &tv);
    res->err = get_errno();
    return NULL;
}

static void *ppoll_timeout(void *arg)
{
    struct result *res = arg;
    struct pollfd p = {.fd = sv[0], .events = POLLIN};
    struct timespec ts = {0, 150 * 1000 * 1000};
    double t0 = now();
    res->r = ppoll(&p, 1, &ts, NULL);
    res->secs = now() - t0;
    return NULL;
}

static void drain(void)
{
    char c;
    while (recv(sv[0], &c, 1, MSG_DONTWAIT) == 1)
        ;
}

int main(void)
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        BAIL("socketpair: %s", strerror(errno));
    unb_coro_t *tk = unb_spawn(ticker, NULL);

    struct result r = {0};
    int t0 = atomic_load(&ticks);
    unb_join(unb_spawn(poll_timeout, &r), NULL);
    is_int(r.r, 0, "poll on an idle socket times out with 0");
    cmp_ok(r.secs, >=, 0.2, "poll waited its whole 200 ms timeout");
    cmp_ok(r.secs, <, 2.0, "poll timed out in reasonable time");
    cmp_ok(atomic_load(&ticks) - t0, >=, 5, "other coroutines ran while poll waited");

    memset(&r, 0, sizeof r);
    unb_coro_t *w = unb_spawn(writer_later, (void *)(intptr_t)100000);
    unb_join(unb_spawn(poll_data, &r), NULL);
    unb_join(w, NULL);
    is_int(r.r, 1, "poll returns 1 when the data arrives");
    ok(r.revents & POLLIN, "poll sets POLLIN on the readable fd (revents %#x)", r.revents);
    cmp_ok(r.secs, <, 4.0, "poll woke on the data, not the timeout");
    drain();

    memset(&r, 0, sizeof r);
    w = unb_spawn(writer_later, (void *)(intptr_t)100000);
    unb_join(unb_spawn(select_data, &r), NULL);
    unb_join(w, NULL);
    is_int(r.r, 1, "select returns 1 when the data arrives");
    ok(r.revents, "select leaves the readable fd in the set");
    drain();

    memset(&r, 0, sizeof r);
    unb_join(unb_spawn(select_badf, &r), NULL);
    is_int(r.r, -1, "select on a closed fd fails");
    is_int(r.err, EBADF, "select on a closed fd gives EBADF");

    memset(&r, 0, sizeof r);
    unb_join(unb_spawn(ppoll_timeout, &r), NULL);
    is_int(r.r, 0, "ppoll times out with 0");
    cmp_ok(r.secs, >=, 0.15, "ppoll waited its whole timeout");

    struct pollfd p = {.fd = 999, .events = POLLIN};
    struct result nat = {0};
    nat.r = poll(&p, 1, 0);
    is_int(nat.r, 1, "native poll reports the closed fd");
    is_int(p.revents, POLLNVAL, "native poll: POLLNVAL");

    atomic_store(&stop_ticker, 1);
    unb_join(tk, NULL);
    return done_testing();
}
