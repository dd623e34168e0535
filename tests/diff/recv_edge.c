/*
 * recv_edge: receives at the edges of the socket API.
 *
 *   - recv and read of 0 bytes on an empty TCP socket: 0 at once; recv of
 *     0 bytes on an empty AF_UNIX stream or datagram socket waits for
 *     data (a guard timer makes that EINTR in both runs), and returns 0
 *     once a datagram is there;
 *   - urgent data: after send(MSG_OOB) poll shows POLLPRI (and not
 *     POLLIN), recv(MSG_OOB) returns the byte at once; recv(MSG_OOB)
 *     with none pending: EINVAL at once; with SO_OOBINLINE the byte is
 *     read in the stream;
 *   - recvmsg likewise: an empty vector on an empty TCP socket gives 0,
 *     MSG_OOB the urgent byte or EINVAL, at once.
 */
#define _GNU_SOURCE
#include <poll.h>

#include "diff.h"

int main(void)
{
    diff_start(1);
    char b[8];
    int c, s;
    tcp_pair(&c, &s);
    GSYS("recv of 0 bytes on an empty TCP socket", recv(s, b, 0, 0));
    GSYS("read of 0 bytes on an empty TCP socket", read(s, b, 0));
    int sp[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    GSYS("recv of 0 bytes on an empty AF_UNIX stream socket", recv(sp[0], b, 0, 0));
    int dg[2];
    MUST(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg));
    GSYS("recv of 0 bytes on an empty AF_UNIX datagram socket (waits)",
         recv(dg[0], b, 0, 0));
    SYS("send of a datagram", send(dg[1], "abc", 3, 0));
    GSYS("recv of 0 bytes then", recv(dg[0], b, 0, 0));

    GSYS("recv MSG_OOB with no urgent data", recv(s, b, 1, MSG_OOB));
    SYS("send MSG_OOB", send(c, "!", 1, MSG_OOB));
    struct pollfd p[2] = {{s, POLLIN | POLLPRI, 0}, {s, POLLOUT, 0}};
    SYS("poll", poll(p, 2, 1000));
    printf("  revents %s / %s\n", revents_str(p[0].revents), revents_str(p[1].revents));
    GSYS("recv MSG_OOB", recv(s, b, 1, MSG_OOB));
    GSYS("recv MSG_OOB again", recv(s, b, 1, MSG_OOB));
    int c2, s2;
    tcp_pair(&c2, &s2);
    struct iovec iov = {b, 0};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    GSYS("recvmsg of 0 bytes on an empty TCP socket", recvmsg(s2, &mh, 0));
    iov.iov_len = 1;
    GSYS("recvmsg MSG_OOB with no urgent data", recvmsg(s2, &mh, MSG_OOB));
    SYS("send MSG_OOB", send(c2, "?", 1, MSG_OOB));
    msleep(10);
    GSYS("recvmsg MSG_OOB", recvmsg(s2, &mh, MSG_OOB));
    printf("  byte: %c\n", b[0]);
    int on = 1;
    MUST(setsockopt(s, SOL_SOCKET, SO_OOBINLINE, &on, sizeof on));
    SYS("send \"ab\"", send(c, "ab", 2, 0));
    SYS("then MSG_OOB \"!\"", send(c, "!", 1, MSG_OOB));
    msleep(10);
    long n = GSYS("recv with SO_OOBINLINE", recv(s, b, sizeof b, 0));
    if (n > 0)
        printf("  data: %.*s\n", (int)n, b);
    return 0;
}
