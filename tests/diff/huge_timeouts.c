/*
 * huge_timeouts: a timeout too long to count in nanoseconds is a wait
 * with no end, not one that has passed.
 *
 * The kernel saturates a timeout it cannot represent (timespec64_add_safe,
 * KTIME_MAX), so a program may pass tv_sec = LONG_MAX for "forever":
 *
 *   - nanosleep, clock_nanosleep (relative and absolute), select, pselect
 *     and ppoll with such a time wait until the guard's SIGALRM (EINTR);
 *   - pthread_cond_timedwait, pthread_mutex_timedlock and sem_timedwait
 *     with such a deadline wait for the signal, unlock or post another
 *     thread makes 100 ms later (0), not ETIMEDOUT;
 *   - select with microseconds past a second on a huge tv_sec;
 *   - recv on a socket whose SO_RCVTIMEO is LONG_MAX s (the kernel's
 *     "none") or 30 days (more milliseconds than an int holds) waits
 *     until the guard's SIGALRM too.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <poll.h>
#include <semaphore.h>
#include <sys/select.h>

#include "diff.h"

static const struct timespec forever = {LONG_MAX, 999999999};

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int flag;
static sem_t sem;

static void *signal_later(void *arg)
{
    (void)arg;
    msleep(100);
    pthread_mutex_lock(&m);
    flag = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&m);
    return NULL;
}

static void *unlock_later(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m);
    __atomic_store_n(&flag, 1, __ATOMIC_RELEASE);
    msleep(100);
    pthread_mutex_unlock(&m);
    return NULL;
}

static void *post_later(void *arg)
{
    (void)arg;
    msleep(100);
    sem_post(&sem);
    return NULL;
}

int main(void)
{
    diff_start(1);
    int p[2];
    MUST(pipe(p));

    GSYS("nanosleep(LONG_MAX s)", nanosleep(&forever, NULL));
    GERR("clock_nanosleep(MONOTONIC, LONG_MAX s)",
         clock_nanosleep(CLOCK_MONOTONIC, 0, &forever, NULL));
    GERR("clock_nanosleep(MONOTONIC, ABSTIME, LONG_MAX s)",
         clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &forever, NULL));
    GERR("clock_nanosleep(REALTIME, ABSTIME, LONG_MAX s)",
         clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &forever, NULL));

    struct pollfd pfd = {p[0], POLLIN, 0};
    GSYS("ppoll(LONG_MAX s)", ppoll(&pfd, 1, &forever, NULL));
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    GSYS("pselect(LONG_MAX s)", pselect(p[0] + 1, &rd, NULL, NULL, &forever, NULL));
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    struct timeval tv = {LONG_MAX, 0};
    GSYS("select(LONG_MAX s)", select(p[0] + 1, &rd, NULL, NULL, &tv));
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    tv = (struct timeval){LONG_MAX / 2, 999999};
    GSYS("select(LONG_MAX/2 s)", select(p[0] + 1, &rd, NULL, NULL, &tv));

    int sv[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    static const long secs[] = {LONG_MAX, 30L * 86400};
    for (int i = 0; i < 2; i++) {
        struct timeval to = {secs[i], 0};
        MUST(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &to, sizeof to));
        char c;
        GSYS(i == 0 ? "recv, SO_RCVTIMEO LONG_MAX s" : "recv, SO_RCVTIMEO 30 days",
             recv(sv[0], &c, 1, 0));
    }

    pthread_t t = spawn(signal_later, NULL);
    pthread_mutex_lock(&m);
    int r = 0;
    while (!flag && r == 0)
        r = pthread_cond_timedwait(&cv, &m, &forever);
    pthread_mutex_unlock(&m);
    ERR("cond_timedwait(LONG_MAX s)", r);
    join(t);

    flag = 0;
    t = spawn(unlock_later, NULL);
    while (!__atomic_load_n(&flag, __ATOMIC_ACQUIRE))
        msleep(1);
    r = pthread_mutex_timedlock(&m, &forever);
    ERR("mutex_timedlock(LONG_MAX s)", r);
    if (r == 0)
        pthread_mutex_unlock(&m);
    join(t);

    MUST(sem_init(&sem, 0, 0));
    t = spawn(post_later, NULL);
    SYS("sem_timedwait(LONG_MAX s)", sem_timedwait(&sem, &forever));
    join(t);
    return 0;
}
