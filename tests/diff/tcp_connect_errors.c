/*
 * tcp_connect_errors: connect's failures, blocking and not.
 *
 *   - a blocking connect to a closed port: ECONNREFUSED, SO_ERROR then 0;
 *     the refused socket may connect again, to a listener, which succeeds
 *     (and a further connect is EISCONN);
 *   - a blocking connect to a listener: 0, errno untouched;
 *   - a non-blocking connect to a listener: EINPROGRESS, then poll gives
 *     POLLOUT, SO_ERROR is 0, and the connection carries data;
 *   - a non-blocking connect to a closed port: EINPROGRESS, then poll
 *     gives POLLOUT|POLLERR|POLLHUP and SO_ERROR is ECONNREFUSED (and is
 *     cleared by reading it);
 *   - connect with a short address length: EINVAL; with AF_UNIX on an
 *     AF_INET socket: EAFNOSUPPORT; on a pipe: ENOTSOCK; on a bad fd:
 *     EBADF; to a refused AF_UNIX path: ENOENT.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <sys/un.h>

#include "diff.h"

static void so_error(const char *what, int fd)
{
    int e = -1;
    socklen_t len = sizeof e;
    MUST(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len));
    printf("%s: SO_ERROR %s\n", what, ename(e));
}

static void poll_out(const char *what, int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n = poll(&p, 1, 1000);
    printf("%s: poll = %d, revents %s\n", what, n, revents_str(p.revents));
}

int main(void)
{
    diff_start(1);
    signal(SIGPIPE, SIG_IGN);
    unsigned short closed = closed_port();
    struct sockaddr_in ca = loopback(closed);
    int fd = (int)MUST(socket(AF_INET, SOCK_STREAM, 0));
    SYS("blocking connect to a closed port",
        connect(fd, (struct sockaddr *)&ca, sizeof ca));
    so_error("after it", fd);
    unsigned short port;
    int l = tcp_listener(&port, 8);
    struct sockaddr_in la = loopback(port);
    if (SYS("the same socket connects to a listener",
            connect(fd, (struct sockaddr *)&la, sizeof la)) == 0) {
        int s = (int)MUST(accept(l, NULL, NULL));
        MUST(close(s));
    }
    if (SYS("and again", connect(fd, (struct sockaddr *)&la, sizeof la)) == 0) {
        int s = (int)MUST(accept(l, NULL, NULL));
        MUST(close(s));
    }
    MUST(close(fd));

    fd = (int)MUST(socket(AF_INET, SOCK_STREAM, 0));
    SYS("a fresh socket's blocking connect to a listener",
        connect(fd, (struct sockaddr *)&la, sizeof la));
    MUST(close(fd));
    MUST(close((int)accept(l, NULL, NULL)));

    fd = (int)MUST(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    long r = connect(fd, (struct sockaddr *)&la, sizeof la);
    int e = errno;
    printf("non-blocking connect to a listener: %s\n", r == 0 ? "0"
                                                       : e == EINPROGRESS
                                                           ? "EINPROGRESS"
                                                           : ename(e));
    poll_out("then", fd);
    so_error("then", fd);
    int s = (int)MUST(accept(l, NULL, NULL));
    SYS("send", send(fd, "hi", 2, 0));
    char b[8];
    SYS("recv on the accepted side", recv(s, b, sizeof b, 0));
    MUST(close(s));
    MUST(close(fd));

    fd = (int)MUST(socket(AF_INET, SOCK_STREAM, 0));
    int fl = (int)MUST(fcntl(fd, F_GETFL));
    MUST(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
    r = connect(fd, (struct sockaddr *)&ca, sizeof ca);
    e = errno;
    printf("non-blocking connect to a closed port: %s\n", r == 0 ? "0"
                                                          : e == EINPROGRESS
                                                              ? "EINPROGRESS"
                                                              : ename(e));
    poll_out("then", fd);
    so_error("then", fd);
    so_error("read again", fd);
    MUST(close(fd));

    fd = (int)MUST(socket(AF_INET, SOCK_STREAM, 0));
    SYS("connect with a short length", connect(fd, (struct sockaddr *)&la, 4));
    struct sockaddr_un ua;
    memset(&ua, 0, sizeof ua);
    ua.sun_family = AF_UNIX;
    strcpy(ua.sun_path, "/nonexistent/diff-socket");
    SYS("connect AF_INET socket to an AF_UNIX address",
        connect(fd, (struct sockaddr *)&ua, sizeof ua));
    MUST(close(fd));
    int p[2];
    MUST(pipe(p));
    SYS("connect on a pipe", connect(p[0], (struct sockaddr *)&la, sizeof la));
    MUST(close(p[0]));
    SYS("connect on a closed fd", connect(p[0], (struct sockaddr *)&la, sizeof la));
    MUST(close(p[1]));
    fd = (int)MUST(socket(AF_UNIX, SOCK_STREAM, 0));
    SYS("connect to a missing AF_UNIX path",
        connect(fd, (struct sockaddr *)&ua, sizeof ua));
    MUST(close(fd));
    MUST(close(l));
    return 0;
}
