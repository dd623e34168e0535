/*
 * accept4_flags: accept4's flags on the new socket, seen through fcntl.
 *
 *   - accept4(SOCK_CLOEXEC|SOCK_NONBLOCK): O_NONBLOCK and FD_CLOEXEC set;
 *     a recv on it with nothing queued is EAGAIN at once; a send that
 *     fills the buffers ends in EAGAIN; after clearing O_NONBLOCK with
 *     F_SETFL, a recv waits for a late write;
 *   - accept4(0) and accept: neither flag;
 *   - accept4(SOCK_NONBLOCK) by a thread that blocked in it first;
 *   - accept4 with an unknown flag: EINVAL;
 *   - the peer address accept4 fills in is the client's.
 */
#define _GNU_SOURCE
#include <fcntl.h>

#include "diff.h"

static int lfd, late_fd;
static long res;

static void *blocked_accept4(void *arg)
{
    (void)arg;
    res = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    return NULL;
}

static void *late_writer(void *arg)
{
    (void)arg;
    msleep(40);
    write_all(late_fd, "late", 4);
    return NULL;
}

static void flags(const char *what, int fd)
{
    int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
    printf("  %s: %s%s%s\n", what, (fl & O_ACCMODE) == O_RDWR ? "O_RDWR" : "?",
           fl & O_NONBLOCK ? "|O_NONBLOCK" : "",
           fdf & FD_CLOEXEC ? ", FD_CLOEXEC" : "");
}

int main(void)
{
    diff_start(1);
    unsigned short port;
    lfd = tcp_listener(&port, 8);
    char b[65536] = {0}; /* sent as it is: memcheck flags uninitialised bytes */

    int c = tcp_connect(port);
    struct sockaddr_in peer, cl;
    socklen_t len = sizeof peer;
    int s = (int)MUST(
        accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC | SOCK_NONBLOCK));
    socklen_t cl_len = sizeof cl;
    MUST(getsockname(c, (struct sockaddr *)&cl, &cl_len));
    printf("  peer address is the client's: %s\n",
           peer.sin_port == cl.sin_port && peer.sin_addr.s_addr == cl.sin_addr.s_addr
               ? "yes"
               : "no");
    flags("accepted with SOCK_CLOEXEC|SOCK_NONBLOCK", s);
    double t0 = now_ms();
    GSYS("recv with nothing queued", recv(s, b, sizeof b, 0));
    elapsed("  and it", t0, 0, 150);
    GSYS("read with nothing queued", read(s, b, sizeof b));
    long total = 0, r;
    int sends = 0;
    while ((r = send(s, b, sizeof b, 0)) > 0 && sends < 10000) {
        total += r;
        sends++;
    }
    printf("  sends until the buffers are full end in: %s\n",
           r < 0 ? ename(errno) : "?");
    /* drain what the client got, so that the connection is quiet */
    long drained = 0;
    while (drained < total) {
        long k = recv(c, b, sizeof b, 0);
        if (k <= 0)
            break;
        drained += k;
    }
    printf("  the client received everything sent: %s\n",
           drained == total ? "yes" : "no");
    int fl = (int)MUST(fcntl(s, F_GETFL));
    SYS("F_SETFL without O_NONBLOCK", fcntl(s, F_SETFL, fl & ~O_NONBLOCK));
    flags("after it", s);
    late_fd = c;
    pthread_t t = spawn(late_writer, NULL);
    SYS("recv waits for a late write", recv(s, b, sizeof b, 0));
    join(t);
    MUST(close(s));
    MUST(close(c));

    c = tcp_connect(port);
    s = (int)MUST(accept4(lfd, NULL, NULL, 0));
    flags("accepted with accept4(0)", s);
    MUST(close(s));
    MUST(close(c));
    c = tcp_connect(port);
    s = (int)MUST(accept(lfd, NULL, NULL));
    flags("accepted with accept", s);
    MUST(close(s));
    MUST(close(c));

    t = spawn(blocked_accept4, NULL);
    msleep(30);
    c = tcp_connect(port);
    join(t);
    if (res >= 0) {
        flags("accepted by a thread blocked in accept4(SOCK_NONBLOCK)", (int)res);
        GSYS("recv on it", recv((int)res, b, sizeof b, 0));
        MUST(close((int)res));
    } else {
        printf("  blocked accept4 failed: %s\n", ename(errno));
    }
    MUST(close(c));
    SYS("accept4 with flags 0x4000000", accept4(lfd, NULL, NULL, 0x4000000));
    return 0;
}
