/*
 * fd_flags: file status flags and FIONREAD, as the program sees them.
 *
 *   - F_GETFL of new sockets (SOCK_STREAM, SOCK_DGRAM, SOCK_NONBLOCK), a
 *     listening socket before and after a thread blocked in accept on it,
 *     an accepted socket (which does not inherit the listener's
 *     O_NONBLOCK), and pipes;
 *   - F_SETFL keeps the access mode; O_NONBLOCK set on a socket makes
 *     recv, send (when full), accept and connect non-blocking (EAGAIN,
 *     EINPROGRESS); cleared, a recv waits for a late write again;
 *   - FIONBIO likewise, seen through F_GETFL;
 *   - F_GETFD/F_SETFD FD_CLOEXEC, SOCK_CLOEXEC, pipe2(O_CLOEXEC);
 *   - O_APPEND and O_NONBLOCK together on a pipe, as F_GETFL shows;
 *   - FIONREAD on a pipe, a socketpair, a TCP socket (bytes queued), a
 *     UDP socket (the next datagram's size) and an empty socket (0);
 *     TIOCOUTQ (SIOCOUTQ) on a socketpair with unread data.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/ioctl.h>

#include "diff.h"

static int late_fd, lfd;
static long res;

static void *late_writer(void *arg)
{
    (void)arg;
    msleep(40);
    write_all(late_fd, "late", 4);
    return NULL;
}

static void *acceptor(void *arg)
{
    (void)arg;
    res = accept(lfd, NULL, NULL);
    return NULL;
}

static void flags(const char *what, int fd)
{
    int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
    const char *acc = (fl & O_ACCMODE) == O_RDWR     ? "O_RDWR"
                      : (fl & O_ACCMODE) == O_RDONLY ? "O_RDONLY"
                                                     : "O_WRONLY";
    printf("  %-44s %s%s%s%s\n", what, acc, fl & O_NONBLOCK ? "|O_NONBLOCK" : "",
           fl & O_APPEND ? "|O_APPEND" : "", fdf & FD_CLOEXEC ? ", FD_CLOEXEC" : "");
}

static void fionread(const char *what, int fd)
{
    int n = -1;
    long r = ioctl(fd, FIONREAD, &n);
    printf("  FIONREAD %-35s = %ld, %d\n", what, r, n);
}

int main(void)
{
    diff_start(1);
    printf("F_GETFL and F_GETFD:\n");
    int tcp = (int)MUST(socket(AF_INET, SOCK_STREAM, 0));
    int udp = (int)MUST(socket(AF_INET, SOCK_DGRAM, 0));
    int nb = (int)MUST(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    flags("socket(SOCK_STREAM)", tcp);
    flags("socket(SOCK_DGRAM)", udp);
    flags("socket(SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC)", nb);
    unsigned short port;
    lfd = tcp_listener(&port, 4);
    flags("listening socket", lfd);
    pthread_t t = spawn(acceptor, NULL);
    msleep(30);
    flags("listening socket, a thread in accept", lfd);
    int c = tcp_connect(port);
    join(t);
    int s = (int)res;
    flags("listening socket after the accept", lfd);
    flags("accepted socket", s);
    int p[2];
    MUST(pipe2(p, O_CLOEXEC));
    flags("pipe2(O_CLOEXEC) read end", p[0]);
    flags("pipe2(O_CLOEXEC) write end", p[1]);

    printf("F_SETFL:\n");
    SYS("F_SETFL O_NONBLOCK|O_APPEND on the write end",
        fcntl(p[1], F_SETFL, O_NONBLOCK | O_APPEND));
    flags("write end", p[1]);
    SYS("F_SETFL 0 on the write end", fcntl(p[1], F_SETFL, 0));
    flags("write end", p[1]);
    SYS("F_SETFD 0 on the read end", fcntl(p[0], F_SETFD, 0));
    flags("read end", p[0]);
    int fl = (int)MUST(fcntl(s, F_GETFL));
    SYS("F_SETFL O_NONBLOCK on the accepted socket",
        fcntl(s, F_SETFL, fl | O_NONBLOCK));
    flags("accepted socket", s);
    char b[16];
    SYS("recv", recv(s, b, sizeof b, 0));
    SYS("read", read(s, b, sizeof b));
    SYS("F_SETFL without O_NONBLOCK", fcntl(s, F_SETFL, fl));
    flags("accepted socket", s);
    late_fd = c;
    t = spawn(late_writer, NULL);
    SYS("recv waits for a late write", recv(s, b, sizeof b, 0));
    join(t);

    fl = (int)MUST(fcntl(lfd, F_GETFL));
    SYS("F_SETFL O_NONBLOCK on the listener", fcntl(lfd, F_SETFL, fl | O_NONBLOCK));
    flags("listening socket", lfd);
    GSYS("accept with nobody connecting", accept(lfd, NULL, NULL));
    SYS("F_SETFL without O_NONBLOCK", fcntl(lfd, F_SETFL, fl));
    flags("listening socket", lfd);

    int on = 1, off = 0;
    SYS("FIONBIO 1 on the TCP socket", ioctl(tcp, FIONBIO, &on));
    flags("socket(SOCK_STREAM)", tcp);
    struct sockaddr_in a = loopback(port);
    long r = connect(tcp, (struct sockaddr *)&a, sizeof a);
    printf("  connect: %s\n", r == 0 ? "0" : ename(errno));
    int s2 = (int)MUST(accept(lfd, NULL, NULL));
    SYS("FIONBIO 0", ioctl(tcp, FIONBIO, &off));
    flags("socket(SOCK_STREAM)", tcp);

    printf("FIONREAD:\n");
    fionread("of an empty pipe", p[0]);
    write_all(p[1], "12345", 5);
    fionread("of a pipe with 5 bytes", p[0]);
    fionread("of an empty TCP socket", s2);
    write_all(tcp, "1234567", 7);
    msleep(10);
    fionread("of a TCP socket with 7 bytes", s2);
    int sp[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    write_all(sp[0], "abc", 3);
    write_all(sp[0], "defg", 4);
    fionread("of a socketpair with 3 + 4 bytes", sp[1]);
    int outq = -1;
    SYS("TIOCOUTQ of the sending end", ioctl(sp[0], TIOCOUTQ, &outq));
    printf("  unsent/unread bytes: %d\n", outq);
    int u2 = bound_socket(SOCK_DGRAM);
    struct sockaddr_in ua = loopback(port_of(u2));
    MUST(sendto(udp, "123", 3, 0, (struct sockaddr *)&ua, sizeof ua));
    MUST(sendto(udp, "12345678", 8, 0, (struct sockaddr *)&ua, sizeof ua));
    msleep(10);
    fionread("of UDP with datagrams of 3 and 8", u2);
    return 0;
}
