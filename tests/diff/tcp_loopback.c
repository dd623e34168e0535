/*
 * tcp_loopback: TCP over 127.0.0.1 between threads.
 *
 *   - a thread blocked in accept gets the connection a later connect makes;
 *     the accepted socket's peer is the client's local address, and the
 *     other way round;
 *   - half-close: after the client's shutdown(SHUT_WR) the server reads
 *     the request, then 0, and can still answer; the client reads the
 *     answer, then 0 once the server closes;
 *   - a thread blocked in recv wakes with 0 when its own socket is shut
 *     down for reading (SHUT_RD);
 *   - a thread blocked in accept wakes with EINVAL when the listening
 *     socket is shut down;
 *   - getpeername on an unconnected socket: ENOTCONN; listen on a
 *     connected one: EINVAL; a second connect: EISCONN.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>

#include "diff.h"

static int lfd, cfd, sfd;
static long res;
static int err;
static struct sockaddr_in peer;

static void *acceptor(void *arg)
{
    (void)arg;
    socklen_t len = sizeof peer;
    errno = 0;
    res = accept(lfd, (struct sockaddr *)&peer, &len);
    err = errno;
    return NULL;
}

static void *server(void *arg)
{
    (void)arg;
    char req[64];
    size_t n = read_full(sfd, req, sizeof req);
    char b[8];
    long again = read(sfd, b, sizeof b);
    char ans[128];
    int k = snprintf(ans, sizeof ans, "got %zu bytes (%.*s), then read = %ld", n,
                     (int)n, req, again);
    write_all(sfd, ans, (size_t)k);
    close(sfd);
    return NULL;
}

static void *blocked_recv(void *arg)
{
    (void)arg;
    char b[8];
    errno = 0;
    res = recv(sfd, b, sizeof b, 0);
    err = errno;
    return NULL;
}

static int same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_family == b->sin_family && a->sin_port == b->sin_port &&
           a->sin_addr.s_addr == b->sin_addr.s_addr;
}

int main(void)
{
    diff_start(1);
    signal(SIGPIPE, SIG_IGN);
    unsigned short port;
    lfd = tcp_listener(&port, 8);

    pthread_t t = spawn(acceptor, NULL);
    msleep(30);
    cfd = tcp_connect(port);
    join(t);
    printf("blocked accept returned %s\n", res >= 0 ? "a socket" : ename(err));
    sfd = (int)res;
    struct sockaddr_in cl, cpeer, sl;
    socklen_t len = sizeof cl;
    MUST(getsockname(cfd, (struct sockaddr *)&cl, &len));
    len = sizeof cpeer;
    MUST(getpeername(cfd, (struct sockaddr *)&cpeer, &len));
    len = sizeof sl;
    MUST(getsockname(sfd, (struct sockaddr *)&sl, &len));
    printf("accept's address is the client's name: %s\n",
           same_addr(&peer, &cl) ? "yes" : "no");
    printf("client's peer is the server's name: %s\n",
           same_addr(&cpeer, &sl) ? "yes" : "no");
    printf("server port is the listener's: %s\n",
           ntohs(sl.sin_port) == port ? "yes" : "no");
    struct sockaddr_in a = loopback(port);
    SYS("connect again", connect(cfd, (struct sockaddr *)&a, sizeof a));
    SYS("connect a third time", connect(cfd, (struct sockaddr *)&a, sizeof a));
    SYS("listen on a connected socket", listen(cfd, 1));

    t = spawn(server, NULL);
    write_all(cfd, "request", 7);
    SYS("shutdown SHUT_WR", shutdown(cfd, SHUT_WR));
    char b[256];
    size_t n = read_full(cfd, b, sizeof b - 1);
    b[n] = '\0';
    printf("answer after the half-close: %s\n", b);
    SYS("read after the server closed", read(cfd, b, sizeof b));
    SYS("write after SHUT_WR", write(cfd, "x", 1));
    join(t);
    MUST(close(cfd));

    cfd = tcp_connect(port);
    sfd = (int)MUST(accept(lfd, NULL, NULL));
    t = spawn(blocked_recv, NULL);
    msleep(30);
    SYS("shutdown SHUT_RD of the socket a thread waits on", shutdown(sfd, SHUT_RD));
    join(t);
    printf("the blocked recv = %ld %s\n", res, res < 0 ? ename(err) : "");
    MUST(close(sfd));
    MUST(close(cfd));

    t = spawn(acceptor, NULL);
    msleep(30);
    SYS("shutdown of the listening socket a thread accepts on",
        shutdown(lfd, SHUT_RDWR));
    join(t);
    printf("the blocked accept = %ld %s\n", res, res < 0 ? ename(err) : "");
    MUST(close(lfd));

    int u = (int)MUST(socket(AF_INET, SOCK_STREAM, 0));
    len = sizeof cl;
    SYS("getpeername unconnected", getpeername(u, (struct sockaddr *)&cl, &len));
    SYS("recv unconnected", recv(u, b, 1, 0));
    SYS("send unconnected", send(u, "x", 1, 0));
    SYS("shutdown unconnected", shutdown(u, SHUT_RDWR));
    SYS("accept on a socket that does not listen", accept(u, NULL, NULL));
    MUST(close(u));
    return 0;
}
