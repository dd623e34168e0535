/*
 * poll_events: a thread blocked in poll or select for events other than
 * plain readability wakes when they happen (another thread acts 50 ms
 * later).
 *
 *   - POLLPRI only: urgent data (send MSG_OOB) wakes it with POLLPRI;
 *   - select with the socket in exceptfds only: urgent data wakes it;
 *   - POLLRDHUP only: the peer's shutdown(SHUT_WR) wakes it;
 *   - POLLOUT on a socket whose send buffer is full: the peer reading
 *     wakes it;
 *   - POLLIN on a pipe whose writer closes: POLLHUP wakes it;
 *   - events 0 on a socket whose peer half-closes: nothing to report, the
 *     100 ms timeout ends it; on a socket that has shut down its own
 *     writing, the peer's close wakes it with POLLHUP;
 *   - POLLPRI only, ordinary data arrives: not reported, the 100 ms
 *     timeout ends it.
 * A guard timer turns a wait longer than 300 ms into EINTR.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/select.h>

#include "diff.h"

static int c, s, act, p[2];

static void *later(void *arg)
{
    (void)arg;
    msleep(50);
    char b[65536];
    switch (act) {
    case 0: send(c, "!", 1, MSG_OOB); break;
    case 1: shutdown(c, SHUT_WR); break;
    case 2:
        for (int i = 0; i < 64; i++)
            if (recv(s, b, sizeof b, MSG_DONTWAIT) <= 0)
                break;
        break;
    case 3: close(p[1]); break;
    case 4: close(c); break;
    case 5: send(c, "x", 1, 0); break;
    }
    return NULL;
}

static pthread_t after(int what)
{
    act = what;
    return spawn(later, NULL);
}

int main(void)
{
    diff_start(1);
    guard_ms = 300;
    char b[4];
    tcp_pair(&c, &s);

    pthread_t t = after(0);
    struct pollfd pf = {s, POLLPRI, 0};
    GSYS("poll POLLPRI, urgent data 50 ms later", poll(&pf, 1, 2000));
    printf("  revents %s\n", revents_str(pf.revents));
    join(t);
    MUST(recv(s, b, 1, MSG_OOB));

    fd_set ex;
    FD_ZERO(&ex);
    FD_SET(s, &ex);
    t = after(0);
    GSYS("select on exceptfds, urgent data 50 ms later",
         select(s + 1, NULL, NULL, &ex, &(struct timeval){2, 0}));
    printf("  in exceptfds: %s\n", FD_ISSET(s, &ex) ? "yes" : "no");
    join(t);
    MUST(recv(s, b, 1, MSG_OOB));

    /* s's send buffer full, c does not read yet.  Small buffers: with the
     * defaults the kernel lets 4 MiB in, and draining that takes the
     * other thread about a millisecond of computation, long enough for
     * the preload's monitor to hand its worker to a spare thread (README,
     * "Calls that block a thread"), which is not what this checks; main,
     * parked meanwhile, would then go on with the old thread's errno
     * address, which -O2 computes once per function (README, the TLS
     * limits). */
    int sz = 16384;
    MUST(setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz));
    MUST(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz));
    int fl = 0;
    static char big[65536];
    while (send(s, big, sizeof big, MSG_DONTWAIT) > 0 && fl++ < 1000)
        ;
    int tmp = s;
    s = c; /* the thread drains the other end */
    c = tmp;
    t = after(2);
    pf = (struct pollfd){c, POLLOUT, 0};
    GSYS("poll POLLOUT on a full socket, the peer reads 50 ms later",
         poll(&pf, 1, 2000));
    printf("  revents %s\n", revents_str(pf.revents));
    join(t);
    tmp = s;
    s = c;
    c = tmp;

    t = after(1);
    pf = (struct pollfd){s, POLLRDHUP, 0};
    GSYS("poll POLLRDHUP, the peer shuts down its side 50 ms later",
         poll(&pf, 1, 2000));
    printf("  revents %s\n", revents_str(pf.revents));
    join(t);
    MUST(close(c));
    MUST(close(s));

    MUST(pipe(p));
    t = after(3);
    pf = (struct pollfd){p[0], POLLIN, 0};
    GSYS("poll POLLIN on a pipe whose writer closes 50 ms later", poll(&pf, 1, 2000));
    printf("  revents %s\n", revents_str(pf.revents));
    join(t);

    tcp_pair(&c, &s);
    t = after(1);
    pf = (struct pollfd){s, 0, 0};
    GSYS("poll events 0, the peer half-closes 50 ms later, timeout 100 ms",
         poll(&pf, 1, 100));
    printf("  revents %s\n", revents_str(pf.revents));
    join(t);
    MUST(close(c));
    MUST(close(s));
    tcp_pair(&c, &s);
    MUST(shutdown(s, SHUT_WR));
    t = after(4);
    pf = (struct pollfd){s, 0, 0};
    GSYS("poll events 0, this side shut for writing, the peer closes 50 ms later",
         poll(&pf, 1, 2000));
    printf("  revents %s\n", revents_str(pf.revents));
    join(t);
    MUST(close(s));

    tcp_pair(&c, &s);
    t = after(5);
    pf = (struct pollfd){s, POLLPRI, 0};
    GSYS("poll POLLPRI, ordinary data 50 ms later, timeout 100 ms", poll(&pf, 1, 100));
    printf("  revents %s\n", revents_str(pf.revents));
    join(t);
    return 0;
}
