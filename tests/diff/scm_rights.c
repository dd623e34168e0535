/*
 * scm_rights: passing fds with sendmsg/recvmsg and SCM_RIGHTS.
 *
 *   - a thread blocked in recvmsg receives a message carrying three fds
 *     (a pipe's two ends and a socket); they are new numbers for the same
 *     files (fstat), and the passed pipe carries data both ways;
 *   - MSG_CMSG_CLOEXEC: the received fd has FD_CLOEXEC; without it, not;
 *   - a control buffer too small for the fds: MSG_CTRUNC set;
 *   - a passed socket is usable (a send through it reaches its peer),
 *     including a blocking read on it that waits for a later write;
 *   - sendmsg of SCM_RIGHTS with a closed fd: EBADF.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>

#include "diff.h"

static int sp[2];
static int rfds[3], rcount, rflags;
static long rres;
static char rdata[16];

static long send_fds(int sock, const int *fds, int n, const char *data)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {(void *)data, strlen(data)};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = cbuf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n);
    return sendmsg(sock, &m, 0);
}

/* Receives into rfds; cspace is the control buffer's size in fds. */
static long recv_fds(int sock, int cspace, int flags)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {rdata, sizeof rdata - 1};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = cbuf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)cspace)};
    memset(rdata, 0, sizeof rdata);
    long r = recvmsg(sock, &m, flags);
    rcount = 0;
    rflags = m.msg_flags;
    if (r < 0)
        return r;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            rcount = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(rfds, CMSG_DATA(cm), sizeof(int) * (size_t)rcount);
        }
    return r;
}

static void *receiver(void *arg)
{
    (void)arg;
    rres = recv_fds(sp[1], 4, 0);
    return NULL;
}

static int same_file(int a, int b)
{
    struct stat x, y;
    return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev &&
           x.st_ino == y.st_ino;
}

static int blocked_fd;
static long bres;
static void *blocked_reader(void *arg)
{
    (void)arg;
    char b[16];
    bres = read(blocked_fd, b, sizeof b);
    return NULL;
}

int main(void)
{
    diff_start(1);
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    int p[2], q[2];
    MUST(pipe(p));
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, q));
    int fds[3] = {p[0], p[1], q[0]};

    pthread_t t = spawn(receiver, NULL);
    msleep(30);
    SYS("sendmsg with 3 fds", send_fds(sp[0], fds, 3, "fds"));
    join(t);
    printf("blocked recvmsg = %ld (%s), %d fds\n", rres, rdata, rcount);
    for (int i = 0; i < rcount && i < 3; i++)
        printf("  fd %d: same file %s, new number %s\n", i,
               same_file(rfds[i], fds[i]) ? "yes" : "no",
               rfds[i] != fds[i] ? "yes" : "no");
    char b[16];
    SYS("write to the passed pipe's write end", write(rfds[1], "via", 3));
    SYS("read from the original read end", read(p[0], b, sizeof b));
    SYS("write to the original write end", write(p[1], "back", 4));
    SYS("read from the passed read end", read(rfds[0], b, sizeof b));
    SYS("send through the passed socket", send(rfds[2], "sock", 4, 0));
    SYS("recv at its peer", recv(q[1], b, sizeof b, 0));
    blocked_fd = rfds[2];
    t = spawn(blocked_reader, NULL);
    msleep(30);
    write_all(q[1], "later", 5);
    join(t);
    printf("blocked read on the passed socket = %ld\n", bres);
    for (int i = 0; i < rcount && i < 3; i++)
        close(rfds[i]);

    SYS("sendmsg with 1 fd", send_fds(sp[0], fds, 1, "x"));
    SYS("recvmsg MSG_CMSG_CLOEXEC", recv_fds(sp[1], 4, MSG_CMSG_CLOEXEC));
    printf("  FD_CLOEXEC: %s\n",
           rcount == 1 && (fcntl(rfds[0], F_GETFD) & FD_CLOEXEC) ? "yes" : "no");
    close(rfds[0]);
    SYS("sendmsg with 1 fd", send_fds(sp[0], fds, 1, "y"));
    SYS("recvmsg", recv_fds(sp[1], 4, 0));
    printf("  FD_CLOEXEC: %s\n",
           rcount == 1 && (fcntl(rfds[0], F_GETFD) & FD_CLOEXEC) ? "yes" : "no");
    close(rfds[0]);

    SYS("sendmsg with 3 fds", send_fds(sp[0], fds, 3, "z"));
    SYS("recvmsg with room for 1", recv_fds(sp[1], 1, 0));
    printf("  MSG_CTRUNC: %s, %d fds\n", rflags & MSG_CTRUNC ? "yes" : "no", rcount);
    for (int i = 0; i < rcount; i++)
        close(rfds[i]);

    int dead = (int)MUST(dup(p[0]));
    MUST(close(dead));
    int bad[1] = {dead};
    SYS("sendmsg with a closed fd", send_fds(sp[0], bad, 1, "w"));
    return 0;
}
