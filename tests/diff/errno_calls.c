/*
 * errno_calls: the errno of failing calls, and errno left alone by
 * succeeding ones (SYS reports a success that changed errno).
 *
 * Each line is one call on one kind of fd: closed fds (EBADF), the wrong
 * kind of fd (ENOTSOCK, EINVAL, ESPIPE...), bad arguments (EINVAL,
 * EFAULT), and unsuitable sockets; none of them waits: socket receives on
 * an empty pipe fail at once (ENOTSOCK), a read of a pipe's write end
 * (EBADF) likewise.  Each runs under a 100 ms timer, so that a call that
 * waits shows as EINTR rather than a hang.  Then errno in threads:
 * each of 4 threads fails a call, sleeps while the others fail theirs with
 * other errnos, and still sees its own errno.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "diff.h"

static _Atomic int wrong;
static void *own_errno(void *arg)
{
    long id = (long)arg;
    static const int want[4] = {EBADF, ENOTSOCK, EINVAL, ESPIPE};
    int p[2];
    if (pipe(p) != 0)
        return NULL;
    char b;
    switch (id) {
    case 0: (void)!read(-1, &b, 1); break;
    case 1: (void)!shutdown(p[0], SHUT_RD); break;
    case 2: (void)!fcntl(p[0], 12345); break;
    case 3: (void)!lseek(p[0], 0, SEEK_SET); break;
    }
    int first = errno;
    for (int i = 0; i < 5; i++) {
        msleep(2);
        if (errno != want[id] || first != want[id])
            wrong++;
    }
    return NULL;
}

int main(void)
{
    diff_start(1);
    signal(SIGPIPE, SIG_IGN);
    char b[16] = {0}; /* written as it is: memcheck flags uninitialised bytes */
    int p[2], sp[2];
    MUST(pipe(p));
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    int file = (int)MUST(open("/dev/null", O_RDWR));
    int dead = (int)MUST(dup(p[0])); /* the highest fd: not reused below */
    MUST(close(dead));
    int scratch[2];
    struct iovec iov = {b, sizeof b};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    printf("-- a closed fd\n");
    GSYS("read", read(dead, b, 1));
    GSYS("write", write(dead, b, 1));
    GSYS("readv", readv(dead, &iov, 1));
    GSYS("writev", writev(dead, &iov, 1));
    GSYS("recv", recv(dead, b, 1, 0));
    GSYS("send", send(dead, b, 1, 0));
    GSYS("recvfrom", recvfrom(dead, b, 1, 0, NULL, NULL));
    GSYS("sendto", sendto(dead, b, 1, 0, NULL, 0));
    GSYS("recvmsg", recvmsg(dead, &mh, 0));
    GSYS("sendmsg", sendmsg(dead, &mh, 0));
    GSYS("accept", accept(dead, NULL, NULL));
    GSYS("accept4", accept4(dead, NULL, NULL, SOCK_CLOEXEC));
    GSYS("close", close(dead));
    GSYS("dup2 from it", dup2(dead, 100));
    GSYS("dup3 from it", dup3(dead, 100, 0));
    GSYS("fcntl F_GETFL", fcntl(dead, F_GETFL));
    GSYS("fcntl F_SETFL", fcntl(dead, F_SETFL, O_NONBLOCK));
    int on = 1;
    GSYS("ioctl FIONBIO", ioctl(dead, FIONBIO, &on));
    GSYS("setsockopt SO_RCVTIMEO",
         setsockopt(dead, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){1, 0},
                    sizeof(struct timeval)));
    GSYS("shutdown", shutdown(dead, SHUT_RDWR));
    GSYS("listen", listen(dead, 1));
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(dead, &rs);
    GSYS("select on it", select(dead + 1, &rs, NULL, NULL, &(struct timeval){0, 0}));

    printf("-- the wrong kind of fd\n");
    GSYS("recv on a pipe", recv(p[0], b, 1, MSG_DONTWAIT));
    GSYS("send on a pipe", send(p[1], b, 1, 0));
    GSYS("accept on a pipe", accept(p[0], NULL, NULL));
    GSYS("connect on /dev/null",
         connect(file, (struct sockaddr *)&(struct sockaddr_in){.sin_family = AF_INET},
                 sizeof(struct sockaddr_in)));
    GSYS("shutdown on a pipe", shutdown(p[0], SHUT_RD));
    GSYS("setsockopt on a pipe",
         setsockopt(p[0], SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){1, 0},
                    sizeof(struct timeval)));
    GSYS("write to a pipe's read end", write(p[0], "x", 1));
    GSYS("read from a pipe's write end", read(p[1], b, 1));
    GSYS("lseek on a pipe", lseek(p[0], 0, SEEK_CUR));
    GSYS("lseek on a socket", lseek(sp[0], 0, SEEK_CUR));
    GSYS("accept on a socketpair", accept(sp[0], NULL, NULL));
    GSYS("listen on a socketpair", listen(sp[0], 1));
    int u = (int)MUST(socket(AF_INET, SOCK_DGRAM, 0));
    GSYS("listen on UDP", listen(u, 1));
    GSYS("accept on UDP", accept(u, NULL, NULL));
    GSYS("recv MSG_OOB on a pipe", recv(p[0], b, 1, MSG_OOB));
    GSYS("recv MSG_OOB on a socketpair", recv(sp[0], b, 1, MSG_OOB));
    GSYS("recv on an empty pipe", recv(p[0], b, 1, 0));
    GSYS("recvfrom on an empty pipe", recvfrom(p[0], b, 1, 0, NULL, NULL));
    GSYS("recvmsg on an empty pipe", recvmsg(p[0], &mh, 0));
    MUST(close(u));

    printf("-- bad arguments\n");
    GSYS("fcntl with command 12345", fcntl(p[0], 12345));
    GSYS("dup2 to -1", dup2(p[0], -1));
    GSYS("dup2 onto itself", dup2(p[0], p[0]) == p[0] ? 0 : -2);
    GSYS("dup3 onto itself", dup3(p[0], p[0], 0));
    GSYS("dup3 with flags 1", dup3(p[0], 100, 1));
    GSYS("pipe2 with flags 1", pipe2(scratch, 1));
    GSYS("socket AF 12345", socket(12345, SOCK_STREAM, 0));
    GSYS("socket type 12345", socket(AF_INET, 12345, 0));
    GSYS("socket AF_INET SOCK_STREAM protocol UDP",
         socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    GSYS("socketpair AF_INET", socketpair(AF_INET, SOCK_STREAM, 0, scratch));
    GSYS("accept4 with flags 1", accept4(sp[0], NULL, NULL, 1));
    GSYS("setsockopt level 12345", setsockopt(sp[0], 12345, 1, &on, sizeof on));
    GSYS("setsockopt SO_RCVTIMEO length 3",
         setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &on, 3));
    GSYS("getsockopt option 12345",
         getsockopt(sp[0], SOL_SOCKET, 12345, &on, &(socklen_t){sizeof on}));
    write_all(sp[1], "xy", 2);
    char *volatile nul = NULL;
    if (!diff_checks_buffers()) {
        GSYS("read into NULL with data waiting", read(sp[0], nul, 2));
        GSYS("recv into NULL with data waiting", recv(sp[0], nul, 2, 0));
        GSYS("write from NULL", write(sp[1], nul, 2));
        GSYS("write from NULL to a pipe", write(p[1], nul, 2));
    }
    (void)!recv(sp[0], b, sizeof b, MSG_DONTWAIT);
    GSYS("nanosleep tv_nsec -1", nanosleep(&(struct timespec){0, -1}, NULL));
    GSYS("nanosleep tv_sec -1", nanosleep(&(struct timespec){-1, 0}, NULL));
    GERR("clock_nanosleep clock 12345",
         clock_nanosleep((clockid_t)12345, 0, &(struct timespec){0, 1000}, NULL));
    GERR("clock_nanosleep tv_nsec 1e9",
         clock_nanosleep(CLOCK_MONOTONIC, 0, &(struct timespec){0, 1000000000}, NULL));
    GERR(
        "clock_nanosleep CLOCK_THREAD_CPUTIME_ID",
        clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &(struct timespec){0, 1000}, NULL));
    GSYS("usleep 0", usleep(0));
    GSYS("sleep 0", (long)sleep(0));
    struct pollfd *volatile badp = (struct pollfd *)16;
    if (!diff_checks_buffers())
        GSYS("poll of a bad pointer", poll(badp, 1, 10));
    GSYS("select nfds -1", select(-1, NULL, NULL, NULL, NULL));

    printf("-- succeeding calls leave errno alone\n");
    GSYS("write to a pipe", write(p[1], "ok", 2));
    GSYS("read from it", read(p[0], b, sizeof b));
    GSYS("send", send(sp[1], "ok", 2, 0));
    GSYS("recv", recv(sp[0], b, sizeof b, 0));
    GSYS("fcntl F_GETFL", fcntl(sp[0], F_GETFL) >= 0 ? 0 : -1);
    GSYS("poll, nothing ready, 10 ms",
         poll(&(struct pollfd){.fd = p[0], .events = POLLIN}, 1, 10));
    GSYS("nanosleep 1 ms", nanosleep(&(struct timespec){0, 1000000}, NULL));
    GSYS("close", close(file));

    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        t[i] = spawn(own_errno, (void *)i);
    for (int i = 0; i < 4; i++)
        join(t[i]);
    printf("4 threads each kept their own errno across sleeps: %s\n",
           wrong == 0 ? "yes" : "no");
    return 0;
}
