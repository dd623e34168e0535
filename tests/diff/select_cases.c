/*
 * select_cases: select's results and how it updates its arguments.
 *
 *   - timeout {0, 0} on an empty pipe: 0, the set cleared;
 *   - a 60 ms timeout: 0 after about 60 ms, the timeval left at {0, 0}
 *     (Linux writes back the time not slept);
 *   - nfds 0 with a 30 ms timeout: a sleep;
 *   - ready fds: the count, and the sets keep only the ready ones; a
 *     timeout left partly unused: the timeval is written back smaller;
 *   - the read end after the writer closed is readable; the write end
 *     without a reader is writable;
 *   - a closed fd in a set: EBADF, the sets untouched; nfds -1: EINVAL;
 *     a negative timeval: EINVAL; tv_usec beyond a second is accepted
 *     (the kernel carries it into seconds);
 *   - a thread blocked in select (no timeout) wakes when another thread
 *     writes 40 ms later;
 *   - pselect with a zero timeout: 0; its timespec is not written.
 */
#define _GNU_SOURCE
#include <sys/select.h>

#include "diff.h"

static int p1[2], p2[2];
static fd_set tset;
static int tres;

static void *late_writer(void *arg)
{
    (void)arg;
    msleep(40);
    write_all(p2[1], "x", 1);
    return NULL;
}

static void *selecter(void *arg)
{
    (void)arg;
    tres = select(FD_SETSIZE, &tset, NULL, NULL, NULL);
    return NULL;
}

static void show_set(const char *what, fd_set *s, const int *fds, const char **names,
                     int n)
{
    printf("  %s:", what);
    for (int i = 0; i < n; i++)
        if (FD_ISSET(fds[i], s))
            printf(" %s", names[i]);
    printf("\n");
}

int main(void)
{
    diff_start(1);
    MUST(pipe(p1));
    MUST(pipe(p2));
    int fds[4] = {p1[0], p1[1], p2[0], p2[1]};
    const char *names[4] = {"p1r", "p1w", "p2r", "p2w"};
    fd_set r, w;
    int nfds = 0;
    for (int i = 0; i < 4; i++)
        if (fds[i] >= nfds)
            nfds = fds[i] + 1;

    FD_ZERO(&r);
    FD_SET(p1[0], &r);
    struct timeval tv = {0, 0};
    SYS("select {0,0} on an empty pipe", select(nfds, &r, NULL, NULL, &tv));
    show_set("read set", &r, fds, names, 4);
    FD_SET(p1[0], &r);
    tv = (struct timeval){0, 60000};
    double t0 = now_ms();
    SYS("select 60 ms on an empty pipe", select(nfds, &r, NULL, NULL, &tv));
    elapsed("  and it", t0, 55, 1000);
    printf("  timeval after: {%ld, %ld}\n", (long)tv.tv_sec, (long)tv.tv_usec);
    tv = (struct timeval){0, 30000};
    t0 = now_ms();
    SYS("select of no fds, 30 ms", select(0, NULL, NULL, NULL, &tv));
    elapsed("  and it", t0, 25, 1000);

    write_all(p1[1], "ab", 2);
    FD_ZERO(&r);
    FD_ZERO(&w);
    for (int i = 0; i < 4; i++) {
        FD_SET(fds[i], &r);
        FD_SET(fds[i], &w);
    }
    tv = (struct timeval){5, 0};
    SYS("select all four for reading and writing, 5 s",
        select(nfds, &r, &w, NULL, &tv));
    show_set("read set", &r, fds, names, 4);
    show_set("write set", &w, fds, names, 4);
    printf("  timeval written back smaller: %s\n",
           tv.tv_sec < 5 || (tv.tv_sec == 5 && tv.tv_usec == 0)
               ? (tv.tv_sec == 5 ? "no" : "yes")
               : "no");

    int d[2];
    MUST(pipe(d));
    MUST(close(d[0]));
    signal(SIGPIPE, SIG_IGN);
    MUST(close(p1[1]));
    int nf = d[1] >= nfds ? d[1] + 1 : nfds;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(p1[0], &r);
    FD_SET(d[1], &w);
    SYS("select read end after writer closed, write end without reader",
        select(nf, &r, &w, NULL, NULL));
    printf("  readable %s, writable %s\n", FD_ISSET(p1[0], &r) ? "yes" : "no",
           FD_ISSET(d[1], &w) ? "yes" : "no");

    FD_ZERO(&r);
    FD_SET(p1[0], &r);
    FD_SET(d[0], &r); /* closed */
    tv = (struct timeval){1, 0};
    SYS("select with a closed fd in the set", select(nf, &r, NULL, NULL, &tv));
    printf("  set untouched: %s\n",
           FD_ISSET(p1[0], &r) && FD_ISSET(d[0], &r) ? "yes" : "no");
    SYS("select nfds -1", select(-1, NULL, NULL, NULL, &tv));
    tv = (struct timeval){0, 2000000};
    FD_ZERO(&w);
    FD_SET(p2[1], &w);
    SYS("select, a writable fd, tv_usec 2000000 (Linux takes it as 2 s)",
        select(nf, NULL, &w, NULL, &tv));
    tv = (struct timeval){-1, 0};
    FD_SET(p2[1], &w);
    SYS("select, a writable fd, tv_sec -1", select(nf, NULL, &w, NULL, &tv));
    MUST(close(d[1]));

    FD_ZERO(&tset);
    FD_SET(p2[0], &tset);
    pthread_t a = spawn(selecter, NULL), b = spawn(late_writer, NULL);
    join(b);
    join(a);
    printf("blocked select = %d, p2r set: %s\n", tres,
           FD_ISSET(p2[0], &tset) ? "yes" : "no");

    char c;
    MUST(read(p2[0], &c, 1));
    FD_ZERO(&r);
    FD_SET(p2[0], &r);
    struct timespec ts = {0, 0};
    SYS("pselect {0,0}", pselect(nf, &r, NULL, NULL, &ts, NULL));
    ts = (struct timespec){0, 20000000};
    FD_SET(p2[0], &r);
    SYS("pselect 20 ms", pselect(nf, &r, NULL, NULL, &ts, NULL));
    printf("  timespec after: {%ld, %ld}\n", (long)ts.tv_sec, ts.tv_nsec);
    return 0;
}
