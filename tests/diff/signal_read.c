/*
 * signal_read: a signal handler interrupting blocked I/O (one thread;
 * SIGALRM from setitimer 100 ms into the wait).  The handler writes one
 * byte into a pipe or socket when asked to.
 *
 *   - read of an empty pipe: without SA_RESTART -1 EINTR, even though the
 *     handler wrote a byte (it runs after the call gave up); with
 *     SA_RESTART the read is restarted and returns the handler's byte;
 *   - recv on a socketpair likewise; but with SO_RCVTIMEO set, SA_RESTART
 *     does not restart it: EINTR;
 *   - accept without SA_RESTART: EINTR;
 *   - poll and select: EINTR even with SA_RESTART;
 *   - a 4 MB send that filled the socket buffers: the partial count,
 *     with or without SA_RESTART; the next send, interrupted before any
 *     progress, EINTR without SA_RESTART.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/select.h>
#include <sys/time.h>

#include "diff.h"

#define BIG (4 << 20)
static char big[BIG];
static volatile sig_atomic_t alarms;
static volatile int feed_fd = -1;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
    if (feed_fd >= 0) {
        ssize_t r = write(feed_fd, "!", 1);
        (void)r;
    }
}

/* The timer fires `ms` after the handler is installed. */
static void handler_in(int flags, int feed, long ms)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = flags;
    MUST(sigaction(SIGALRM, &sa, NULL));
    feed_fd = feed;
    struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    MUST(setitimer(ITIMER_REAL, &it, NULL));
}

static void handler(int flags, int feed)
{
    handler_in(flags, feed, 100);
}

int main(void)
{
    diff_start(0);
    int p[2], s[2];
    char b[16];
    MUST(pipe(p));
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s));

    handler(0, p[1]);
    SYS("pipe read, no SA_RESTART, the handler writes a byte", read(p[0], b, sizeof b));
    SYS("  then the byte", read(p[0], b, sizeof b));
    handler(SA_RESTART, p[1]);
    SYS("pipe read, SA_RESTART, the handler writes a byte", read(p[0], b, sizeof b));

    handler(0, s[1]);
    SYS("socket recv, no SA_RESTART, the handler sends a byte",
        recv(s[0], b, sizeof b, 0));
    SYS("  then the byte", recv(s[0], b, sizeof b, 0));
    handler(SA_RESTART, s[1]);
    SYS("socket recv, SA_RESTART, the handler sends a byte",
        recv(s[0], b, sizeof b, 0));
    struct timeval tv = {5, 0};
    MUST(setsockopt(s[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    handler(SA_RESTART, -1);
    SYS("socket recv with SO_RCVTIMEO 5 s, SA_RESTART", recv(s[0], b, sizeof b, 0));
    tv = (struct timeval){0, 0};
    MUST(setsockopt(s[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));

    unsigned short port;
    int l = tcp_listener(&port, 4);
    handler(0, -1);
    SYS("accept, no SA_RESTART", accept(l, NULL, NULL));
    MUST(close(l));

    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    handler(SA_RESTART, -1);
    SYS("poll, SA_RESTART", poll(&pf, 1, 5000));
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    handler(SA_RESTART, -1);
    SYS("select, SA_RESTART", select(p[0] + 1, &r, NULL, NULL, NULL));

    handler_in(0, -1, 200); /* time to fill the buffers first */
    long n = send(s[0], big, BIG, 0);
    printf("4 MB send, no SA_RESTART: %s (%ld)\n",
           n > 0 && n < BIG ? "a partial count" : "?", n);
    handler(0, -1);
    SYS("next send, no SA_RESTART", send(s[0], big, BIG, 0));
    SYS("send MSG_DONTWAIT, the buffers still full", send(s[0], big, 1, MSG_DONTWAIT));
    printf("SIGALRM handled %d times\n", (int)alarms);
    return 0;
}
