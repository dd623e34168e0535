/*
 * sock_timeouts: SO_RCVTIMEO and SO_SNDTIMEO.
 *
 *   - both read back as set (getsockopt); the default is {0, 0};
 *   - recv on a socketpair with SO_RCVTIMEO 100 ms and nothing coming:
 *     EAGAIN after about 100 ms; read likewise; data arriving before the
 *     timeout is returned;
 *   - accept on a listening socket with SO_RCVTIMEO 80 ms: EAGAIN;
 *   - send of 4 MB on a socketpair with SO_SNDTIMEO 100 ms and nobody
 *     reading: the partial count after the timeout, then EAGAIN;
 *   - SO_RCVTIMEO with tv_usec 1000000: EDOM.
 */
#define _GNU_SOURCE
#include "diff.h"

#define BIG (4 << 20)
static char big[BIG];
static int sp[2];

static void *late_writer(void *arg)
{
    (void)arg;
    msleep(30);
    write_all(sp[1], "soon", 4);
    return NULL;
}

static void show_timeo(const char *what, int fd, int opt)
{
    struct timeval tv = {-1, -1};
    socklen_t len = sizeof tv;
    MUST(getsockopt(fd, SOL_SOCKET, opt, &tv, &len));
    printf("%s reads back {%ld, %ld}\n", what, (long)tv.tv_sec, (long)tv.tv_usec);
}

int main(void)
{
    diff_start(1);
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    show_timeo("default SO_RCVTIMEO", sp[0], SO_RCVTIMEO);
    struct timeval tv = {0, 100000};
    SYS("setsockopt SO_RCVTIMEO 100 ms",
        setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    show_timeo("SO_RCVTIMEO", sp[0], SO_RCVTIMEO);
    char b[16];
    double t0 = now_ms();
    SYS("recv with nothing coming", recv(sp[0], b, sizeof b, 0));
    elapsed("  and it", t0, 90, 1500);
    t0 = now_ms();
    SYS("read with nothing coming", read(sp[0], b, sizeof b));
    elapsed("  and it", t0, 90, 1500);
    pthread_t t = spawn(late_writer, NULL);
    SYS("recv with data coming in 30 ms", recv(sp[0], b, sizeof b, 0));
    join(t);

    unsigned short port;
    int l = tcp_listener(&port, 4);
    tv = (struct timeval){0, 80000};
    SYS("setsockopt SO_RCVTIMEO 80 ms on a listener",
        setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    t0 = now_ms();
    SYS("accept with nobody connecting", accept(l, NULL, NULL));
    elapsed("  and it", t0, 70, 1500);
    MUST(close(l));

    tv = (struct timeval){0, 100000};
    SYS("setsockopt SO_SNDTIMEO 100 ms",
        setsockopt(sp[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    show_timeo("SO_SNDTIMEO", sp[0], SO_SNDTIMEO);
    t0 = now_ms();
    long r = send(sp[0], big, BIG, 0);
    int e = errno;
    /* The partial count depends on the socket buffer sizes only. */
    printf("send of 4 MB, nobody reading: %s (%ld)\n",
           r > 0 && r < BIG ? "a partial count"
           : r < 0          ? ename(e)
                            : "all of it?",
           r);
    elapsed("  and it", t0, 90, 1500);
    t0 = now_ms();
    SYS("send of 1 byte more", send(sp[0], big, 1, 0));
    elapsed("  and it", t0, 90, 1500);

    tv = (struct timeval){0, 1000000};
    SYS("setsockopt SO_RCVTIMEO tv_usec 1000000",
        setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    tv = (struct timeval){0, 0};
    SYS("setsockopt SO_RCVTIMEO {0, 0}",
        setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    show_timeo("SO_RCVTIMEO", sp[0], SO_RCVTIMEO);
    SYS("recv MSG_DONTWAIT", recv(sp[0], b, sizeof b, MSG_DONTWAIT));
    return 0;
}
