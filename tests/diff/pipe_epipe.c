/*
 * pipe_epipe: EPIPE with SIGPIPE ignored.
 *
 *   - write and writev to a pipe without a reader: -1 EPIPE;
 *   - send on a socketpair whose peer closed: EPIPE, with and without
 *     MSG_NOSIGNAL;
 *   - a blocking 4 MB send on a socketpair that filled the buffers and
 *     waits when the peer closes: returns the partial count, and the next
 *     send is EPIPE.
 *
 * A writer blocked on a full pipe is pipe_full_writer's.
 */
#define _GNU_SOURCE
#include <sys/ioctl.h>
#include <sys/uio.h>

#include "diff.h"

#define BIG (4 << 20)
static char big[BIG];
static int wfd;
static long wres;
static int werr;
static size_t wlen;

static void *blocked_writer(void *arg)
{
    (void)arg;
    errno = 0;
    wres = write(wfd, big, wlen);
    werr = errno;
    return NULL;
}

/* Until the bytes queued for fd stop growing (the writer waits). */
static int settle(int fd)
{
    int last = -1, same = 0, n = 0;
    for (int i = 0; i < 200 && same < 3; i++) {
        msleep(10);
        MUST(ioctl(fd, FIONREAD, &n));
        same = n == last && n > 0 ? same + 1 : 0;
        last = n;
    }
    return n;
}

int main(void)
{
    diff_start(1);
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    char c = 'x';

    MUST(pipe(p));
    MUST(close(p[0]));
    SYS("write to a pipe without a reader", write(p[1], &c, 1));
    struct iovec iov[3] = {{&c, 1}, {&c, 1}, {&c, 1}};
    SYS("writev to a pipe without a reader", writev(p[1], iov, 3));
    MUST(close(p[1]));

    int s[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    MUST(close(s[1]));
    SYS("send to a closed peer", send(s[0], &c, 1, 0));
    SYS("send MSG_NOSIGNAL to a closed peer", send(s[0], &c, 1, MSG_NOSIGNAL));
    SYS("write to a closed peer", write(s[0], &c, 1));
    MUST(close(s[0]));

    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    wfd = s[0];
    wlen = BIG;
    pthread_t t = spawn(blocked_writer, NULL);
    int queued = settle(s[1]);
    printf("peer has %s bytes queued while the writer waits\n",
           queued > 0 ? "some" : "no");
    MUST(close(s[1]));
    join(t);
    printf("blocked 4 MB write after the peer closed: %s\n",
           wres > 0 && wres < BIG ? "partial count"
           : wres < 0             ? ename(werr)
                                  : "everything?");
    SYS("next send", send(s[0], &c, 1, 0));
    MUST(close(s[0]));
    return 0;
}
