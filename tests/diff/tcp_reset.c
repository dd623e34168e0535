/*
 * tcp_reset: a connection reset by SO_LINGER {1, 0} and close.
 *
 *   - the peer of the reset socket: poll shows the reset; recv gives
 *     ECONNRESET once, then 0; send gives EPIPE (SIGPIPE ignored);
 *   - a thread blocked in recv when the reset arrives: ECONNRESET;
 *   - closing with unread data in the receive queue resets too: the
 *     peer's recv is ECONNRESET, its next send EPIPE;
 *   - SO_LINGER reads back as set.
 */
#define _GNU_SOURCE
#include <poll.h>

#include "diff.h"

static int c, s;
static long res;
static int err;

static void *blocked_recv(void *arg)
{
    (void)arg;
    char b[8];
    errno = 0;
    res = recv(c, b, sizeof b, 0);
    err = errno;
    return NULL;
}

static void reset(int fd)
{
    struct linger lg = {1, 0};
    MUST(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    struct linger back;
    socklen_t len = sizeof back;
    MUST(getsockopt(fd, SOL_SOCKET, SO_LINGER, &back, &len));
    printf("SO_LINGER reads back {%d, %d}\n", back.l_onoff != 0, back.l_linger);
    MUST(close(fd));
}

int main(void)
{
    diff_start(1);
    signal(SIGPIPE, SIG_IGN);
    char b[64];

    tcp_pair(&c, &s);
    reset(s);
    struct pollfd p = {.fd = c, .events = POLLIN | POLLOUT | POLLRDHUP};
    SYS("poll after the reset", poll(&p, 1, 1000));
    printf("revents %s\n", revents_str(p.revents));
    SYS("recv after the reset", recv(c, b, sizeof b, 0));
    SYS("recv again", recv(c, b, sizeof b, 0));
    SYS("send after the reset", send(c, "x", 1, 0));
    SYS("read", read(c, b, sizeof b));
    MUST(close(c));

    tcp_pair(&c, &s);
    pthread_t t = spawn(blocked_recv, NULL);
    msleep(30);
    reset(s);
    join(t);
    printf("the blocked recv = %ld %s\n", res, res < 0 ? ename(err) : "");
    MUST(close(c));

    tcp_pair(&c, &s);
    write_all(c, "unread", 6);
    msleep(20);
    MUST(close(s)); /* unread data: the kernel resets */
    t = spawn(blocked_recv, NULL);
    join(t);
    printf("recv after a close with unread data = %ld %s\n", res,
           res < 0 ? ename(err) : "");
    SYS("send", send(c, "x", 1, 0));
    MUST(close(c));
    return 0;
}
