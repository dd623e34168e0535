/*
 * alarm_calls: alarm() and the SIGALRM it sends.
 *
 *   - alarm(5) returns 0 (none pending); alarm(0) cancels it and returns
 *     the seconds left (5, rounded up);
 *   - alarm(1) then a blocking recv on a socketpair with nothing coming:
 *     the handler (no SA_RESTART) makes it EINTR after about 1 s;
 *   - ualarm(100 ms) and a SA_RESTART handler: a blocking read of a pipe
 *     goes on after the signal and returns the byte the handler wrote;
 *   - SIGALRM with the default action kills the process (argv[1] "die":
 *     alarm(1), then a blocking read; the status shows SIGALRM).
 */
#define _GNU_SOURCE
#include "diff.h"

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

int main(int argc, char **argv)
{
    diff_start(0);
    char b[8];
    int p[2];
    MUST(pipe(p));
    if (argc > 1 && strcmp(argv[1], "die") == 0) {
        printf("alarm(1) with the default action, then a blocking read\n");
        alarm(1);
        SYS("read", read(p[0], b, sizeof b));
        printf("still alive\n");
        return 0;
    }
    printf("alarm(5) = %u\n", alarm(5));
    printf("alarm(0) = %u\n", alarm(0));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    MUST(sigaction(SIGALRM, &sa, NULL));
    int s[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    double t0 = now_ms();
    alarm(1);
    SYS("recv, alarm(1), no SA_RESTART", recv(s[0], b, sizeof b, 0));
    elapsed("  and it", t0, 900, 2000);

    sa.sa_flags = SA_RESTART;
    MUST(sigaction(SIGALRM, &sa, NULL));
    feed_fd = p[1];
    ualarm(100000, 0);
    SYS("pipe read, ualarm(100 ms), SA_RESTART, the handler writes",
        read(p[0], b, sizeof b));
    printf("SIGALRM handled %d times; alarm(0) now = %u\n", (int)alarms, alarm(0));
    return 0;
}
