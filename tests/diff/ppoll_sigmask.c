/*
 * ppoll_sigmask: ppoll and pselect with signal masks.  SIGUSR1 has a
 * handler (no SA_RESTART) and is blocked in every thread except inside
 * the calls whose mask lets it in.
 *
 *   - SIGUSR1 pending before ppoll with an empty mask: EINTR at once, the
 *     handler ran; with a mask that keeps it blocked: the timeout (0), the
 *     signal stays pending; pselect likewise;
 *   - another thread (which inherited the blocked SIGUSR1) sends it to the
 *     process 40 ms into a ppoll with an empty mask: EINTR, handler ran;
 *     into a ppoll that keeps it blocked: the timeout, the signal pending
 *     until the program unblocks it;
 *   - ppoll's timespec is not written; ppoll with an invalid timespec:
 *     EINVAL.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/select.h>

#include "diff.h"

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
    (void)sig;
    handled++;
}

static void *late_kill(void *arg)
{
    (void)arg;
    msleep(40);
    kill(getpid(), SIGUSR1);
    return NULL;
}

static void pending(const char *what)
{
    sigset_t s;
    sigpending(&s);
    printf("  %s: handler ran %d times, SIGUSR1 %s\n", what, (int)handled,
           sigismember(&s, SIGUSR1) ? "pending" : "not pending");
}

int main(void)
{
    diff_start(1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    MUST(sigaction(SIGUSR1, &sa, NULL));
    sigset_t usr1, none;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&none);
    MUST(sigprocmask(SIG_BLOCK, &usr1, NULL));

    int p[2];
    MUST(pipe(p));
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    struct timespec ts = {1, 0};

    MUST(raise(SIGUSR1));
    pending("raised while blocked");
    SYS("ppoll, empty mask, signal pending", ppoll(&pf, 1, &ts, &none));
    pending("after");
    printf("  timespec after: {%ld, %ld}\n", (long)ts.tv_sec, ts.tv_nsec);

    MUST(raise(SIGUSR1));
    ts = (struct timespec){0, 50000000};
    SYS("ppoll 50 ms, mask blocking SIGUSR1, signal pending",
        ppoll(&pf, 1, &ts, &usr1));
    pending("after");
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    ts = (struct timespec){1, 0};
    SYS("pselect, empty mask, signal pending",
        pselect(p[0] + 1, &r, NULL, NULL, &ts, &none));
    pending("after");

    MUST(raise(SIGUSR1));
    FD_SET(p[0], &r);
    ts = (struct timespec){0, 50000000};
    SYS("pselect 50 ms, mask blocking SIGUSR1, signal pending",
        pselect(p[0] + 1, &r, NULL, NULL, &ts, &usr1));
    pending("after");
    MUST(sigprocmask(SIG_UNBLOCK, &usr1, NULL));
    pending("after unblocking");
    MUST(sigprocmask(SIG_BLOCK, &usr1, NULL));

    pthread_t t = spawn(late_kill, NULL);
    ts = (struct timespec){1, 0};
    SYS("ppoll 1 s, empty mask, another thread sends SIGUSR1",
        ppoll(&pf, 1, &ts, &none));
    join(t);
    pending("after");

    t = spawn(late_kill, NULL);
    ts = (struct timespec){0, 150000000};
    SYS("ppoll 150 ms, mask blocking SIGUSR1, another thread sends it",
        ppoll(&pf, 1, &ts, &usr1));
    join(t);
    pending("after");
    MUST(sigprocmask(SIG_UNBLOCK, &usr1, NULL));
    pending("after unblocking");

    ts = (struct timespec){0, 1000000000};
    SYS("ppoll with tv_nsec 1000000000", ppoll(&pf, 1, &ts, NULL));
    ts = (struct timespec){-1, 0};
    SYS("ppoll with tv_sec -1", ppoll(&pf, 1, &ts, NULL));
    return 0;
}
