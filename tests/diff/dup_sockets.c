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
 *     connection;
 *   - FIONBIO through an F_DUPFD duplicate: the original's read is EAGAIN;
 *   - a socket passed with SCM_RIGHTS (the sender keeps its descriptor):
 *     O_NONBLOCK set by the sender afterwards makes a recv on the received
 *     one EAGAIN; cleared through the received one, the sender's read
 *     waits again for a late write;
 *   - after a fork, O_NONBLOCK set by the parent shows in the child: its
 *     read is EAGAIN; cleared by the child, the parent's read waits (not
 *     in a ThreadSanitizer build: diff.h, DIFF_TSAN);
 *   - a listener a thread has accepted on, and its duplicate: F_GETFL on
 *     the duplicate shows no O_NONBLOCK, and an accept through it waits
 *     for a late connect; set on the duplicate, O_NONBLOCK makes accept
 *     on the original EAGAIN.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

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

static int pass_fd(int via, int fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {"f", 1};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    return (int)sendmsg(via, &m, 0);
}

static int receive_fd(int via)
{
    char cbuf[CMSG_SPACE(sizeof(int))], b;
    struct iovec iov = {&b, 1};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    if (recvmsg(via, &m, 0) != 1)
        return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    int fd = -1;
    if (cm && cm->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

static unsigned short late_port;
static void *late_connect(void *arg)
{
    (void)arg;
    msleep(40);
    int fd = tcp_connect(late_port);
    msleep(20);
    close(fd);
    return NULL;
}

static void listener_dup(void)
{
    int l = tcp_listener(&late_port, 4);
    int c1 = tcp_connect(late_port);
    int a = (int)MUST(accept(l, NULL, NULL));
    MUST(close(a));
    MUST(close(c1));
    int d = (int)MUST(dup(l));
    flags("listener's dup", d);
    pthread_t t = spawn(late_connect, NULL);
    SYS("accept on the dup waits for a late connect",
        (a = accept(d, NULL, NULL)) >= 0 ? 0 : -1);
    if (a >= 0)
        MUST(close(a));
    join(t);
    int fl = (int)MUST(fcntl(d, F_GETFL));
    SYS("O_NONBLOCK set on the dup", fcntl(d, F_SETFL, fl | O_NONBLOCK));
    flags("listener", l);
    GSYS("accept on the listener", accept(l, NULL, NULL));
    MUST(close(d));
    MUST(close(l));
}

/* Beyond the dups: FIONBIO, SCM_RIGHTS and fork. */
static void other_sharing(void)
{
    char b[16];
    int c1, s1, c2, s2;
    tcp_pair(&c1, &s1);
    int d = (int)MUST(fcntl(c1, F_DUPFD, 0));
    int on = 1;
    SYS("FIONBIO on through F_DUPFD's descriptor", ioctl(d, FIONBIO, &on));
    flags("original", c1);
    GSYS("read on the original", read(c1, b, sizeof b));
    MUST(close(d));
    MUST(close(c1));
    MUST(close(s1));

    tcp_pair(&c1, &s1);
    int via[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, via));
    MUST(pass_fd(via[0], c1));
    int got = receive_fd(via[1]);
    printf("received the socket through SCM_RIGHTS: %s\n", got >= 0 ? "yes" : "no");
    SYS("recv on the received one, data waiting",
        (send(s1, "x", 1, 0), recv(got, b, 1, 0)));
    int fl = (int)MUST(fcntl(c1, F_GETFL));
    SYS("the sender sets O_NONBLOCK on its own", fcntl(c1, F_SETFL, fl | O_NONBLOCK));
    flags("received", got);
    GSYS("recv on the received one", recv(got, b, sizeof b, 0));
    SYS("O_NONBLOCK cleared through the received one", fcntl(got, F_SETFL, fl));
    late_fd = s1;
    pthread_t t = spawn(late_writer, NULL);
    SYS("the sender's read waits for a late write", read(c1, b, sizeof b));
    join(t);
    MUST(close(got));
    MUST(close(via[0]));
    MUST(close(via[1]));

    if (DIFF_TSAN) {
        MUST(close(c1));
        MUST(close(s1));
        return;
    }
    tcp_pair(&c2, &s2);
    int ready[2];
    MUST(pipe(ready));
    pid_t pid = (pid_t)MUST(fork());
    if (pid == 0) {
        char x;
        if (read(ready[0], &x, 1) != 1) /* the parent has set O_NONBLOCK */
            _exit(3);
        GSYS("child: read on the inherited socket", read(c2, b, sizeof b));
        SYS("child: O_NONBLOCK cleared", fcntl(c2, F_SETFL, fl));
        _exit(0);
    }
    SYS("parent sets O_NONBLOCK after the fork", fcntl(c2, F_SETFL, fl | O_NONBLOCK));
    MUST(write(ready[1], "g", 1));
    int st;
    MUST(waitpid(pid, &st, 0));
    printf("child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    flags("parent's", c2);
    late_fd = s2;
    t = spawn(late_writer, NULL);
    SYS("the parent's read waits for a late write", read(c2, b, sizeof b));
    join(t);
    MUST(close(c2));
    MUST(close(s2));
    MUST(close(c1));
    MUST(close(s1));
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

    other_sharing();
    listener_dup();
    return 0;
}
