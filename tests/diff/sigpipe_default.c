/*
 * sigpipe_default: SIGPIPE with its default disposition.  argv[1]:
 *
 *   pipe            write to a pipe without a reader: death by SIGPIPE;
 *   socket          send on a socketpair whose peer closed: likewise;
 *   nosignal        send with MSG_NOSIGNAL instead: EPIPE, no death (0);
 *   socket-partial  a thread's blocking 4 MB send fills the socket
 *                   buffers and waits; the peer closes: the send returns
 *                   the partial count and no signal is sent (the kernel
 *                   raises SIGPIPE only when nothing was sent), exit 0;
 *   tcp-partial     the same over TCP loopback (the peer's close with
 *                   unread data resets the connection).
 */
#define _GNU_SOURCE
#include <sys/ioctl.h>

#include "diff.h"

#define BIG (4 << 20)
static char big[BIG];
static int s[2];
static long wres;
static int werr;

static void *blocked_sender(void *arg)
{
    (void)arg;
    errno = 0;
    wres = send(s[0], big, BIG, 0);
    werr = errno;
    return NULL;
}

int main(int argc, char **argv)
{
    diff_start(1);
    signal(SIGPIPE, SIG_DFL);
    const char *mode = argc > 1 ? argv[1] : "";
    char c = 'x';
    if (strcmp(mode, "pipe") == 0) {
        int p[2];
        MUST(pipe(p));
        MUST(close(p[0]));
        printf("writing to a pipe without a reader\n");
        SYS("write", write(p[1], &c, 1));
        printf("still alive\n");
        return 0;
    }
    if (strcmp(mode, "tcp-partial") == 0) {
        tcp_pair(&s[0], &s[1]);
        /* Buffers of a fixed size, on both runs: left to the kernel's
         * autotuning (here up to 4 MiB to send and 32 MiB to receive) they
         * grew, in one preloaded run under ThreadSanitizer, until the
         * whole 4 MiB was queued before the peer closed, and the send
         * returned everything.  What is compared is the blocked send's
         * end, not how far the kernel lets buffers grow. */
        int size = 64 << 10;
        MUST(setsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
        MUST(setsockopt(s[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size));
    } else
        MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    if (strcmp(mode, "socket") == 0 || strcmp(mode, "nosignal") == 0) {
        MUST(close(s[1]));
        printf("sending to a closed peer\n");
        SYS("send", send(s[0], &c, 1, mode[0] == 'n' ? MSG_NOSIGNAL : 0));
        printf("still alive\n");
        return 0;
    }
    if (strcmp(mode, "socket-partial") == 0 || strcmp(mode, "tcp-partial") == 0) {
        pthread_t t = spawn(blocked_sender, NULL);
        int last = -1, same = 0, n = 0;
        for (int i = 0; i < 200 && same < 3; i++) {
            msleep(10);
            MUST(ioctl(s[1], FIONREAD, &n));
            same = n == last && n > 0 ? same + 1 : 0;
            last = n;
        }
        printf("the peer has %s bytes queued while the sender waits\n",
               n > 0 ? "some" : "no");
        MUST(close(s[1]));
        join(t);
        printf("the waiting send after the peer closed: %s\n",
               wres > 0 && wres < BIG ? "partial count"
               : wres < 0             ? ename(werr)
                                      : "everything?");
        printf("still alive\n");
        return 0;
    }
    printf("usage: sigpipe_default pipe|socket|nosignal|socket-partial|tcp-partial\n");
    return 2;
}
