/*
 * dup_sockets: duplicated socket descriptors share one open file.
 *
 *   - dup, dup2, dup3(O_CLOEXEC), fcntl(F_DUPFD_CLOEXEC) of a connected
 *     socket: each sends and receives on the same connection; FD_CLOEXEC
 *     is per descriptor (only where asked for);
 *   - closing the original leaves the duplicate working; the peer sees EOF
 *     only when the last one closes;
 *   - O_NONBLOCK set through one descriptor shows through F_GETFL on its
 *     duplicate, and a read on the duplicate is EAGAIN; cleared through
 *     the duplicate, a read on the original waits again for a late write;
 *   - dup2 onto a descriptor a thread is not using replaces it: the old
 *     socket's peer sees EOF;
 *   - a thread blocked in recv on a duplicate gets data sent to the
 *     connection.
 */
#define _GNU_SOURCE
#include <fcntl.h>

#include "diff.h"

static int c, s;
static int late_fd;
static long res;
static int reader_fd;

static void *late_writer(void *arg)
{
    (void)arg;
    msleep(40);
    write_all(late_fd, "late", 4);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    char b[16];
    res = recv(reader_fd, b, sizeof b, 0);
    return NULL;
}

static void flags(const char *what, int fd)
{
    int fl = fcntl(fd, F_GETFL), fd_fl = fcntl(fd, F_GETFD);
    printf("  %s: %s%s%s\n", what, (fl & O_ACCMODE) == O_RDWR ? "O_RDWR" : "?",
           fl & O_NONBLOCK ? "|O_NONBLOCK" : "",
           fd_fl & FD_CLOEXEC ? ", FD_CLOEXEC" : "");
}

static void roundtrip(const char *what, int fd)
{
    char b[16];
    long n1 = send(fd, "ping", 4, 0);
    long n2 = recv(s, b, sizeof b, 0);
    long n3 = send(s, "pong", 4, 0);
    long n4 = recv(fd, b, sizeof b, 0);
    printf("%s: send %ld, peer got %ld, peer sent %ld, got %ld\n", what, n1, n2, n3,
           n4);
}

int main(void)
{
    diff_start(1);
    tcp_pair(&c, &s);
    int d1 = (int)MUST(dup(c));
    int d2 = (int)MUST(dup2(c, 200));
    int d3 = (int)MUST(dup3(c, 201, O_CLOEXEC));
    int d4 = (int)MUST(fcntl(c, F_DUPFD_CLOEXEC, 210));
    printf("dup2 gave 200: %s, dup3 gave 201: %s, F_DUPFD_CLOEXEC gave >= 210: %s\n",
           d2 == 200 ? "yes" : "no", d3 == 201 ? "yes" : "no",
           d4 >= 210 ? "yes" : "no");
    roundtrip("original", c);
    roundtrip("dup", d1);
    roundtrip("dup2", d2);
    roundtrip("dup3", d3);
    roundtrip("F_DUPFD_CLOEXEC", d4);
    flags("original", c);
    flags("dup", d1);
    flags("dup3 O_CLOEXEC", d3);
    flags("F_DUPFD_CLOEXEC", d4);

    int fl = (int)MUST(fcntl(c, F_GETFL));
    SYS("F_SETFL O_NONBLOCK on the original", fcntl(c, F_SETFL, fl | O_NONBLOCK));
    flags("original", c);
    flags("dup", d1);
    flags("dup2", d2);
    char b[16];
    GSYS("recv on the dup", recv(d1, b, sizeof b, 0));
    GSYS("read on dup2", read(d2, b, sizeof b));
    SYS("F_SETFL without O_NONBLOCK on dup3", fcntl(d3, F_SETFL, fl & ~O_NONBLOCK));
    flags("original", c);
    flags("dup", d1);
    late_fd = s;
    pthread_t t = spawn(late_writer, NULL);
    SYS("read on the original waits for a late write", read(c, b, sizeof b));
    join(t);

    reader_fd = d4;
    t = spawn(reader, NULL);
    msleep(30);
    SYS("send to the connection", send(s, "to dup", 6, 0));
    join(t);
    printf("the blocked recv on F_DUPFD_CLOEXEC's descriptor = %ld\n", res);

    MUST(close(c));
    roundtrip("dup after the original closed", d1);
    MUST(close(d1));
    MUST(close(d2));
    MUST(close(d3));
    SYS("peer recv MSG_DONTWAIT, one descriptor left",
        recv(s, b, sizeof b, MSG_DONTWAIT));
    MUST(close(d4));
    SYS("peer recv after the last one closed", recv(s, b, sizeof b, 0));
    MUST(close(s));

    int c2, s2;
    tcp_pair(&c, &s);
    tcp_pair(&c2, &s2);
    SYS("dup2 of the second connection onto the first", dup2(c2, c) == c ? 0 : -2);
    SYS("the first connection's peer sees EOF", recv(s, b, sizeof b, 0));
    SYS("send through the replaced number", send(c, "two", 3, 0));
    SYS("the second connection's peer gets it", recv(s2, b, sizeof b, 0));
    return 0;
}
