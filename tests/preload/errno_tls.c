/*
 * errno_tls: errno and __thread variables in the patterns real code uses,
 * in threads that park (sleep, wait on a socket) between the call that
 * set errno and the code that reads it.  Run natively and under
 * LD_PRELOAD=libunblock.so by tests/test_preload.c, which wants the same
 * stdout and exit status from both.
 *
 *   - errno after a failed call survives sleeps and yields: connect to a
 *     loopback port nobody listens on (ECONNREFUSED), read of an empty
 *     non-blocking pipe (EAGAIN), recv that waits out SO_RCVTIMEO (EAGAIN),
 *     in 8 threads at once, each its own errno, and in main;
 *   - a call that succeeds leaves errno alone: usleep, a read that waits
 *     for its data, a read at end of file, write, poll that times out;
 *     main's checks run while other threads set errno and sleep;
 *   - a __thread variable written and read with no blocking call between
 *     gives the thread's own value.
 *
 * errno is looked up afresh after each call (see get_errno below); the
 * same checks in plain code are errno_cached.c.  (A __thread variable
 * kept across a blocking call is tls_counter.c.)
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


/* errno read and written through volatile function pointers.  glibc
 * declares __errno_location const, so in code like
 *
 *     if (connect(...) < 0) { usleep(1000); if (errno == ECONNREFUSED) ... }
 *
 * the compiler may compute errno's address once and keep it across usleep;
 * a coroutine that resumes on another worker then reads the old worker's
 * errno.  That is a documented limit of the preload (errno_cached.c shows
 * it); this program checks what the runtime itself promises, errno saved
 * and restored per thread, so it looks errno up afresh every time. */
static int errno_get(void)
{
    return errno;
}

static void errno_put(int v)
{
    errno = v;
}

static int (*volatile get_errno)(void) = errno_get;
static void (*volatile set_errno)(int) = errno_put;

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

/* Leaves get_errno() as connect to the refused port sets it. */
static int refused_connect(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(s, (struct sockaddr *)&refused_addr, sizeof refused_addr);
    int e = get_errno();
    close(s); /* may park */
    set_errno(e);
    return rc;
}

/* Leaves get_errno() as a read of an empty non-blocking pipe sets it. */
static ssize_t empty_pipe_read(int fd)
{
    char c;
    return read(fd, &c, 1);
}

/* Sleeps and yields, so that a coroutine parks and may come back on
 * another worker, after other coroutines set their own get_errno(). */
static void park_a_while(int i)
{
    usleep(1000 + 100 * (unsigned)(i % 5));
    sched_yield();
    usleep(200);
}

/* ---- get_errno() across parks, many threads ----------------------------------- */

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
        if (failed && get_errno() == want)
            set_right++;
        park_a_while(i);
        if (get_errno() == want)
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
    phase = "get_errno() in threads";
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        t[i] = spawn(errno_thread, (void *)i);
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
    if (!check(errno_set_right == NTHREADS,
               "get_errno(): connect ECONNREFUSED, empty pipe EAGAIN, SO_RCVTIMEO recv "
               "EAGAIN in "
               "%d threads",
               NTHREADS))
        detail("%d of %d threads got them all", (int)errno_set_right, NTHREADS);
    if (!check(errno_kept == NTHREADS,
               "get_errno(): each thread's get_errno() survives its sleeps and yields "
               "(%d threads x "
               "%d)",
               NTHREADS, ITERS))
        detail("%d of %d threads kept it every time", (int)errno_kept, NTHREADS);
}

/* Threads that set get_errno() to values of their own and sleep, meanwhile. */
static atomic_int busy_stop;

static void *busy_sleeper(void *arg)
{
    for (int i = 0; i < 5000 && !atomic_load(&busy_stop); i++) {
        set_errno(1000 + i);
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
    phase = "get_errno() in main";
    busy_start();
    int refused = 0, kept = 0, again = 0, kept2 = 0;
    int p[2];
    pipe2(p, O_NONBLOCK);
    for (int i = 0; i < MAIN_ITERS; i++) {
        refused += refused_connect() == -1 && get_errno() == ECONNREFUSED;
        park_a_while(i);
        kept += get_errno() == ECONNREFUSED;
        again += empty_pipe_read(p[0]) == -1 && get_errno() == EAGAIN;
        usleep(500);
        kept2 += get_errno() == EAGAIN;
    }
    int last = get_errno();
    close(p[0]);
    close(p[1]);
    busy_end();
    check(refused == MAIN_ITERS && again == MAIN_ITERS,
          "get_errno(): main's connect gives ECONNREFUSED, its empty pipe read EAGAIN");
    if (!check(kept == MAIN_ITERS,
               "get_errno(): main's ECONNREFUSED survives sleeps while threads set "
               "theirs (%d "
               "times)",
               MAIN_ITERS))
        detail("kept %d times of %d", kept, MAIN_ITERS);
    if (!check(kept2 == MAIN_ITERS,
               "get_errno(): main's EAGAIN survives usleep while threads set theirs "
               "(%d times)",
               MAIN_ITERS))
        detail("kept %d times of %d, get_errno() at the end %s", kept2, MAIN_ITERS,
               ename(last));
}

/* ---- success leaves get_errno() alone ----------------------------------------- */

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
    phase = "success keeps get_errno()";
    int p[2];
    if (pipe(p) != 0)
        return;
    struct feeder f = {p[1]};
    busy_start();
    pthread_t t = spawn(feeder_fn, &f);

    set_errno(ENOTTY);
    int rc = usleep(2000);
    if (!check(rc == 0 && get_errno() == ENOTTY,
               "get_errno(): a successful usleep leaves it alone"))
        detail("get_errno() %s", ename(get_errno()));

    set_errno(EXDEV);
    char c = 0;
    ssize_t r = read(p[0], &c, 1); /* waits for the feeder */
    if (!check(r == 1 && c == 'x' && get_errno() == EXDEV,
               "get_errno(): a read that waits for its data leaves it alone"))
        detail("r %zd, get_errno() %s", r, ename(get_errno()));

    set_errno(EROFS);
    r = read(p[0], &c, 1); /* waits for the close */
    if (!check(r == 0 && get_errno() == EROFS,
               "get_errno(): a read that waits for end of file leaves "
               "it alone"))
        detail("r %zd, get_errno() %s", r, ename(get_errno()));
    join(t);
    close(p[0]);

    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    set_errno(ESPIPE);
    r = write(sv[0], "abc", 3);
    if (!check(r == 3 && get_errno() == ESPIPE,
               "get_errno(): a successful write leaves it alone"))
        detail("r %zd, get_errno() %s", r, ename(get_errno()));
    struct pollfd pfd = {.fd = sv[1], .events = POLLOUT | POLLIN};
    read(sv[1], &c, 1);
    read(sv[1], &c, 1);
    read(sv[1], &c, 1);
    pfd.events = POLLIN;
    set_errno(EMLINK);
    rc = poll(&pfd, 1, 5);
    if (!check(rc == 0 && get_errno() == EMLINK,
               "get_errno(): a poll that times out leaves it alone"))
        detail("rc %d, get_errno() %s", rc, ename(get_errno()));
    close(sv[0]);
    close(sv[1]);

    int same = 0;
    for (int i = 0; i < MAIN_ITERS; i++) {
        set_errno(EDOM + i);
        usleep(300);
        same += get_errno() == EDOM + i;
    }
    if (!check(same == MAIN_ITERS,
               "get_errno(): %d successful usleeps in a row leave it alone",
               MAIN_ITERS))
        detail("%d of %d", same, MAIN_ITERS);
    busy_end();
}

/* ---- __thread between blocking calls ------------------------------------ */

static __thread long tls_value;
static atomic_int tls_good;

__attribute__((noinline)) static long mix(long x)
{
    for (int i = 0; i < 100; i++)
        x = x * 6364136223846793005L + 1442695040888963407L;
    return x;
}

static void *tls_thread(void *arg)
{
    long id = (long)arg;
    int good = 1;
    for (long i = 0; i < 200; i++) {
        tls_value = id * 100000 + i;
        long m = mix(tls_value); /* no blocking call between write and read */
        good &= tls_value == id * 100000 + i && m == mix(id * 100000 + i);
        if (i % 10 == 0)
            usleep(100);
        else
            sched_yield();
    }
    if (good)
        atomic_fetch_add(&tls_good, 1);
    return NULL;
}

static void test_tls(void)
{
    phase = "__thread";
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        t[i] = spawn(tls_thread, (void *)i);
    for (int i = 0; i < NTHREADS; i++)
        join(t[i]);
    if (!check(tls_good == NTHREADS,
               "__thread: written and read with no blocking call between, each of %d "
               "threads sees its own value",
               NTHREADS))
        detail("%d of %d", (int)tls_good, NTHREADS);
}

int main(void)
{
    watchdog(10);
    setup_refused_port();
    test_errno_main();
    test_errno_threads();
    test_success_keeps_errno();
    test_tls();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
