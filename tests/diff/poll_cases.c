/*
 * poll_cases: poll's results on ready, idle, closed and invalid fds.
 *
 *   - timeout 0 on an empty pipe: 0 at once; 60 ms: 0 after about 60 ms;
 *   - nfds 0 with a timeout: a 30 ms sleep that returns 0;
 *   - a pipe with data: POLLIN; the write end: POLLOUT; the read end after
 *     the writer closed: POLLHUP (POLLIN|POLLHUP with data left); the write
 *     end after the reader closed: POLLOUT|POLLERR;
 *   - a closed fd: POLLNVAL, counted in the result; a negative fd is
 *     ignored (revents 0); events 0 still reports POLLHUP;
 *   - a thread blocked in poll (no timeout) on two pipes wakes when a
 *     second thread writes to one of them 40 ms later, with that one set;
 *   - nfds beyond RLIMIT_NOFILE: EINVAL; a bad pointer: EFAULT.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/resource.h>

#include "diff.h"

static int p1[2], p2[2];
static struct pollfd tp[2];
static int tres;

static void *late_writer(void *arg)
{
    (void)arg;
    msleep(40);
    write_all(p2[1], "x", 1);
    return NULL;
}

static void *poller(void *arg)
{
    (void)arg;
    tres = poll(tp, 2, -1);
    return NULL;
}

static void show(const char *what, struct pollfd *p, int n, int r)
{
    printf("%s = %d:", what, r);
    for (int i = 0; i < n; i++)
        printf(" %s", revents_str(p[i].revents));
    printf("\n");
}

int main(void)
{
    diff_start(1);
    MUST(pipe(p1));
    MUST(pipe(p2));
    struct pollfd p[4];

    p[0] = (struct pollfd){.fd = p1[0], .events = POLLIN};
    double t0 = now_ms();
    SYS("poll timeout 0 on an empty pipe", poll(p, 1, 0));
    elapsed("  and it", t0, 0, 200);
    t0 = now_ms();
    SYS("poll timeout 60 on an empty pipe", poll(p, 1, 60));
    elapsed("  and it", t0, 55, 1000);
    t0 = now_ms();
    SYS("poll of no fds, timeout 30", poll(NULL, 0, 30));
    elapsed("  and it", t0, 25, 1000);

    write_all(p1[1], "ab", 2);
    p[0] = (struct pollfd){.fd = p1[0], .events = POLLIN | POLLOUT};
    p[1] = (struct pollfd){.fd = p1[1], .events = POLLIN | POLLOUT};
    p[2] = (struct pollfd){.fd = -1, .events = POLLIN};
    p[3] = (struct pollfd){.fd = p2[0], .events = 0};
    show("poll pipe with data, write end, fd -1, empty pipe with events 0", p, 4,
         poll(p, 4, 1000));

    int dead[2];
    MUST(pipe(dead));
    MUST(close(dead[0]));
    MUST(close(p1[1]));
    p[0] = (struct pollfd){.fd = p1[0], .events = POLLIN};
    p[1] = (struct pollfd){.fd = dead[1], .events = POLLOUT};
    p[2] = (struct pollfd){.fd = dead[0], .events = POLLIN};
    p[3] = (struct pollfd){.fd = p1[0], .events = 0};
    show("poll read end with data after writer closed, write end without reader, "
         "closed fd, "
         "events 0",
         p, 4, poll(p, 4, 1000));
    char b[8];
    MUST(read(p1[0], b, sizeof b));
    p[0] = (struct pollfd){.fd = p1[0], .events = POLLIN};
    show("poll drained read end after writer closed", p, 1, poll(p, 1, 1000));
    p[0] = (struct pollfd){.fd = dead[0], .events = POLLIN};
    show("poll of only a closed fd, timeout 1000", p, 1, poll(p, 1, 1000));
    MUST(close(p1[0]));
    MUST(close(dead[1]));

    MUST(pipe(p1));
    tp[0] = (struct pollfd){.fd = p1[0], .events = POLLIN};
    tp[1] = (struct pollfd){.fd = p2[0], .events = POLLIN};
    pthread_t a = spawn(poller, NULL), w = spawn(late_writer, NULL);
    join(w);
    join(a);
    show("blocked poll on two pipes, one written later", tp, 2, tres);

    struct rlimit rl;
    MUST(getrlimit(RLIMIT_NOFILE, &rl));
    /* The kernel refuses the count before it reads the array; a sanitizer's
     * interceptor reads all of it first, past the end of p, and memcheck
     * checks it too (and makes the call fail with EFAULT). */
    if (!diff_checks_buffers())
        SYS("poll with nfds beyond RLIMIT_NOFILE", poll(p, (nfds_t)rl.rlim_cur + 1, 0));
    struct pollfd *volatile bad = (struct pollfd *)8;
    if (!diff_checks_buffers())
        SYS("poll with a bad pointer", poll(bad, 1, 0));
    return 0;
}
