/*
 * timeout_shared: SO_RCVTIMEO belongs to the socket and bounds the whole
 * call.
 *
 *   - recv(MSG_WAITALL) of 100 bytes with SO_RCVTIMEO 150 ms while a
 *     thread sends 10 bytes every 60 ms, 80 in all (the first before the
 *     call): the timeout counts
 *     from the start of the call, so it returns the part that came in
 *     time, after about 150 ms (not all 80, after the pieces stop);
 *   - SO_RCVTIMEO set through one descriptor applies through its
 *     duplicate (dup), and to a socket passed with SCM_RIGHTS after the
 *     sender set it: recv with nothing coming is EAGAIN after about
 *     100 ms.  (A guard turns a longer wait into EINTR at 600 ms.)
 *   - set through a duplicate after the dup, it applies to the original;
 *     set by the receiver of a socket passed with SCM_RIGHTS, to the
 *     sender's descriptor; set by a child after a fork, to the parent's.
 */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "diff.h"

static int c, s;
static _Atomic int stop;

/* The first piece is sent before the recv starts; 7 more follow. */
static void *pieces(void *arg)
{
    (void)arg;
    for (int i = 1; i < 8 && !stop; i++) {
        msleep(60);
        if (send(c, "0123456789", 10, MSG_NOSIGNAL) != 10)
            break;
    }
    return NULL;
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

int main(void)
{
    diff_start(1);
    signal(SIGPIPE, SIG_IGN);
    guard_ms = 600;
    struct timeval tv = {0, 150000};
    char b[100];

    tcp_pair(&c, &s);
    MUST(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    tv = (struct timeval){0, 100000};
    write_all(c, "0123456789", 10);
    pthread_t t = spawn(pieces, NULL);
    double t0 = now_ms();
    long r = recv(s, b, sizeof b, MSG_WAITALL);
    int e = errno;
    printf("recv MSG_WAITALL of 100, SO_RCVTIMEO 150 ms, 10 bytes every 60 ms (80 in "
           "all): %s\n",
           r >= 10 && r < 80 ? "part of them"
           : r == 80         ? "all of them"
           : r < 0           ? ename(e)
                             : "too few");
    elapsed("  and it", t0, 140, 420);
    stop = 1;
    MUST(close(s));
    join(t);
    MUST(close(c));

    int sp[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    MUST(setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    int d = (int)MUST(dup(sp[0]));
    t0 = now_ms();
    GSYS("recv on a dup of the socket that has SO_RCVTIMEO 100 ms", recv(d, b, 10, 0));
    elapsed("  and it", t0, 90, 550);
    t0 = now_ms();
    GSYS("recv on the socket itself", recv(sp[0], b, 10, 0));
    elapsed("  and it", t0, 90, 550);

    int via[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, via));
    int q[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, q));
    MUST(setsockopt(q[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    MUST(pass_fd(via[0], q[0]));
    MUST(close(q[0]));
    int got = receive_fd(via[1]);
    printf("received a socket through SCM_RIGHTS: %s\n", got >= 0 ? "yes" : "no");
    t0 = now_ms();
    GSYS("recv on it (the sender set SO_RCVTIMEO 100 ms)", recv(got, b, 10, 0));
    elapsed("  and it", t0, 90, 550);

    int u[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, u));
    d = (int)MUST(dup(u[0]));
    MUST(setsockopt(d, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    t0 = now_ms();
    GSYS("recv on the original, SO_RCVTIMEO 100 ms set through a dup made before",
         recv(u[0], b, 10, 0));
    elapsed("  and it", t0, 90, 550);

    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, q));
    MUST(pass_fd(via[0], q[0]));
    got = receive_fd(via[1]);
    MUST(setsockopt(got, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    t0 = now_ms();
    GSYS("recv on the sender's descriptor (the receiver set SO_RCVTIMEO 100 ms)",
         recv(q[0], b, 10, 0));
    elapsed("  and it", t0, 90, 550);

    int f[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, f));
    pid_t pid = (pid_t)MUST(fork());
    if (pid == 0) {
        setsockopt(f[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        _exit(0);
    }
    MUST(waitpid(pid, NULL, 0));
    t0 = now_ms();
    GSYS("recv in the parent (a child set SO_RCVTIMEO 100 ms)", recv(f[0], b, 10, 0));
    elapsed("  and it", t0, 90, 550);
    return 0;
}
