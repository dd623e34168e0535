/*
 * errno_cached: errno across blocking calls in plain -O2 code, the checks
 * of errno_tls.c without its afresh look-ups:
 *
 *     int rc = connect(...);     // fails: ECONNREFUSED
 *     usleep(1000);              // parks
 *     if (errno == ECONNREFUSED) // ...
 *
 * glibc declares __errno_location const, so the compiler may compute
 * errno's address once and keep it across usleep.  Natively that is right;
 * under LD_PRELOAD=libunblock.so a coroutine that resumes on another worker
 * then reads (and writes) the old worker's errno, which by then belongs
 * to another coroutine.  The README documents this ("compiled code may
 * keep errno's address across a call that parks"); the runner
 * (tests/test_preload.c) marks the comparison TODO, and shows how often it
 * happens in ordinary code.  With one worker nothing migrates.
 *
 *   - errno after a failed call survives sleeps and yields: connect to a
 *     loopback port nobody listens on (ECONNREFUSED), read of an empty
 *     non-blocking pipe (EAGAIN), recv that waits out SO_RCVTIMEO (EAGAIN),
 *     in 8 threads at once and in main while 4 threads set theirs;
 *   - a call that succeeds leaves errno alone: usleep, a read that waits
 *     for its data, a read at end of file, write, poll that times out.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


static struct sockaddr_in refused_addr; /* bound, not listening: RST */

static void setup_refused_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        printf("FAIL - setting up a loopback port: %s\n", strerror(errno));
        exit(1);
    }
    refused_addr = a; /* s stays open, so that nobody else takes the port */
}

/* Leaves errno as connect to the refused port sets it. */
static int refused_connect(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(s, (struct sockaddr *)&refused_addr, sizeof refused_addr);
    int e = errno;
    close(s);
    errno = e;
    return rc;
}

/* Leaves errno as a read of an empty non-blocking pipe sets it. */
static ssize_t empty_pipe_read(int fd)
{
    char c;
    return read(fd, &c, 1);
}

/* Sleeps and yields, so that a coroutine parks and may come back on
 * another worker, after other coroutines set their own errno. */
static void park_a_while(int i)
{
    usleep(1000 + 100 * (unsigned)(i % 5));
    sched_yield();
    usleep(200);
}

/* ---- errno across parks, many threads ----------------------------------- */

#define NTHREADS 8
#define ITERS 20

static atomic_int errno_kept, errno_set_right;

static void *errno_thread(void *arg)
{
    int id = (int)(long)arg;
    int p[2];
    if (pipe2(p, O_NONBLOCK) != 0)
        return NULL;
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct timeval tv = {0, 5000};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int kept = 0, set_right = 0;
    for (int i = 0; i < ITERS; i++) {
        int want;
        int failed;
        switch ((id + i) % 3) {
        case 0:
            failed = refused_connect() == -1;
            want = ECONNREFUSED;
            break;
        case 1:
            failed = empty_pipe_read(p[0]) == -1;
            want = EAGAIN;
            break;
        default: {
            char c;
            failed = recv(sv[0], &c, 1, 0) == -1; /* waits 5 ms, then EAGAIN */
            want = EAGAIN;
            break;
        }
        }
        if (failed && errno == want)
            set_right++;
        park_a_while(i);
        if (errno == want)
            kept++;
    }
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    if (set_right == ITERS)
        atomic_fetch_add(&errno_set_right, 1);
    if (kept == ITERS)
        atomic_fetch_add(&errno_kept, 1);
    return NULL;
}

static void test_errno_threads(void)
{
    phase = "errno in threads";
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        t[i] = spawn(errno_thread, (void *)i);
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
    if (!check(errno_set_right == NTHREADS,
               "errno: connect ECONNREFUSED, empty pipe EAGAIN, SO_RCVTIMEO recv "
               "EAGAIN in "
               "%d threads",
               NTHREADS))
        detail("%d of %d threads got them all", (int)errno_set_right, NTHREADS);
    if (!check(
            errno_kept == NTHREADS,
            "errno: each thread's errno survives its sleeps and yields (%d threads x "
            "%d)",
            NTHREADS, ITERS))
        detail("%d of %d threads kept it every time", (int)errno_kept, NTHREADS);
}

/* Threads that set errno to values of their own and sleep, meanwhile. */
static atomic_int busy_stop;

static void *busy_sleeper(void *arg)
{
    for (int i = 0; i < 5000 && !atomic_load(&busy_stop); i++) {
        errno = 1000 + i;
        usleep(100);
    }
    return NULL;
}

#define BUSY 4
static pthread_t busy[BUSY];

static void busy_start(void)
{
    atomic_store(&busy_stop, 0);
    for (int i = 0; i < BUSY; i++)
        busy[i] = spawn(busy_sleeper, NULL);
}

static void busy_end(void)
{
    atomic_store(&busy_stop, 1);
    for (int i = 0; i < BUSY; i++)
        join(busy[i]);
}

#define MAIN_ITERS 20

static void test_errno_main(void)
{
    phase = "errno in main";
    busy_start();
    int refused = 0, kept = 0, again = 0, kept2 = 0;
    int p[2];
    pipe2(p, O_NONBLOCK);
    for (int i = 0; i < MAIN_ITERS; i++) {
        refused += refused_connect() == -1 && errno == ECONNREFUSED;
        park_a_while(i);
        kept += errno == ECONNREFUSED;
        again += empty_pipe_read(p[0]) == -1 && errno == EAGAIN;
        usleep(500);
        kept2 += errno == EAGAIN;
    }
    int last = errno;
    close(p[0]);
    close(p[1]);
    busy_end();
    check(refused == MAIN_ITERS && again == MAIN_ITERS,
          "errno: main's connect gives ECONNREFUSED, its empty pipe read EAGAIN");
    if (!check(
            kept == MAIN_ITERS,
            "errno: main's ECONNREFUSED survives sleeps while threads set theirs (%d "
            "times)",
            MAIN_ITERS))
        detail("kept %d times of %d", kept, MAIN_ITERS);
    if (!check(
            kept2 == MAIN_ITERS,
            "errno: main's EAGAIN survives usleep while threads set theirs (%d times)",
            MAIN_ITERS))
        detail("kept %d times of %d, errno at the end %s", kept2, MAIN_ITERS,
               ename(last));
}

/* ---- success leaves errno alone ----------------------------------------- */

struct feeder {
    int fd;
};

static void *feeder_fn(void *arg)
{
    struct feeder *f = arg;
    usleep(5000);
    ssize_t w = write(f->fd, "x", 1);
    usleep(5000);
    close(f->fd);
    return (void *)w;
}

static void test_success_keeps_errno(void)
{
    phase = "success keeps errno";
    int p[2];
    if (pipe(p) != 0)
        return;
    struct feeder f = {p[1]};
    busy_start();
    pthread_t t = spawn(feeder_fn, &f);

    errno = ENOTTY;
    int rc = usleep(2000);
    if (!check(rc == 0 && errno == ENOTTY,
               "errno: a successful usleep leaves it alone"))
        detail("errno %s", ename(errno));

    errno = EXDEV;
    char c = 0;
    ssize_t r = read(p[0], &c, 1); /* waits for the feeder */
    if (!check(r == 1 && c == 'x' && errno == EXDEV,
               "errno: a read that waits for its data leaves it alone"))
        detail("r %zd, errno %s", r, ename(errno));

    errno = EROFS;
    r = read(p[0], &c, 1); /* waits for the close */
    if (!check(r == 0 && errno == EROFS,
               "errno: a read that waits for end of file leaves "
               "it alone"))
        detail("r %zd, errno %s", r, ename(errno));
    join(t);
    close(p[0]);

    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    errno = ESPIPE;
    r = write(sv[0], "abc", 3);
    if (!check(r == 3 && errno == ESPIPE, "errno: a successful write leaves it alone"))
        detail("r %zd, errno %s", r, ename(errno));
    struct pollfd pfd = {.fd = sv[1], .events = POLLOUT | POLLIN};
    read(sv[1], &c, 1);
    read(sv[1], &c, 1);
    read(sv[1], &c, 1);
    pfd.events = POLLIN;
    errno = EMLINK;
    rc = poll(&pfd, 1, 5);
    if (!check(rc == 0 && errno == EMLINK,
               "errno: a poll that times out leaves it alone"))
        detail("rc %d, errno %s", rc, ename(errno));
    close(sv[0]);
    close(sv[1]);

    int same = 0;
    for (int i = 0; i < MAIN_ITERS; i++) {
        errno = EDOM + i;
        usleep(300);
        same += errno == EDOM + i;
    }
    if (!check(same == MAIN_ITERS,
               "errno: %d successful usleeps in a row leave it alone", MAIN_ITERS))
        detail("%d of %d", same, MAIN_ITERS);
    busy_end();
}

int main(void)
{
    watchdog(10);
    setup_refused_port();
    test_errno_main();
    test_errno_threads();
    test_success_keeps_errno();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
