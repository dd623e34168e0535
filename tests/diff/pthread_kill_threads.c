/*
 * pthread_kill_threads: a signal sent to one thread is that thread's.
 *
 *   - a thread blocked in read() on a pipe, sent SIGUSR1 (a handler
 *     without SA_RESTART): its read fails with EINTR, and the handler ran
 *     on that thread; a thread sleeping meanwhile is not interrupted;
 *   - a thread in nanosleep, sent SIGUSR1: EINTR, with time left;
 *   - a thread in read() sent SIGUSR2, whose handler has SA_RESTART: the
 *     handler runs and the read goes on, returning the data sent later;
 *   - a thread that blocks SIGUSR1, sent it: pending for it, taken by its
 *     sigwait, and not by main's sigtimedwait;
 *   - pthread_kill(pthread_self()) runs the handler before it returns;
 *   - threads in sem_wait: sent SIGUSR1, EINTR; sent SIGUSR2 (SA_RESTART),
 *     the wait goes on (glibc's futex wait is restarted, whatever
 *     signal(7) says); two posts then wake the two left waiting;
 *   - signal 0 checks the thread; an invalid signal: EINVAL.
 */
#define _GNU_SOURCE
#include <semaphore.h>

#include "diff.h"

static volatile sig_atomic_t handled_usr1, handled_usr2;
static pthread_t _Atomic handler_thread;

static void on_usr1(int sig)
{
    (void)sig;
    handled_usr1++;
    handler_thread = pthread_self();
}

static void on_usr2(int sig)
{
    (void)sig;
    handled_usr2++;
    handler_thread = pthread_self();
}

static int p[2], q[2];
static _Atomic int ready;

static void *reader(void *arg)
{
    int fd = *(int *)arg;
    char c;
    ready++;
    errno = 0;
    long r = read(fd, &c, 1);
    return (void *)(r == 1 ? (long)c : r == 0 ? -1000 : -(long)errno);
}

static void *sleeper(void *arg)
{
    long ms = (long)arg;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000}, rem = {0, 0};
    ready++;
    int r = nanosleep(&ts, &rem);
    if (r == 0)
        return (void *)0L;
    return (void *)(long)(rem.tv_sec > 0 || rem.tv_nsec > 0 ? -errno : -9999);
}

static void *blocker(void *arg)
{
    (void)arg;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    MUST0(pthread_sigmask(SIG_BLOCK, &usr1, NULL));
    ready++;
    msleep(150);
    int sig = 0;
    if (sigwait(&usr1, &sig) != 0)
        return (void *)-1L;
    return (void *)(long)sig;
}

static sem_t sem;

static void *sem_waiter(void *arg)
{
    (void)arg;
    ready++;
    errno = 0;
    int r = sem_wait(&sem);
    return (void *)(long)(r == 0 ? 0 : -errno);
}

static void wait_ready(int n)
{
    while (ready < n)
        msleep(1);
    msleep(60); /* in its call by now */
}

static const char *result(long v)
{
    static char buf[64];
    if (v <= -1 && v > -200)
        snprintf(buf, sizeof buf, "-1 %s", ename((int)-v));
    else
        snprintf(buf, sizeof buf, "%ld", v);
    return buf;
}

int main(void)
{
    diff_start(1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    MUST(sigaction(SIGUSR1, &sa, NULL));
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    MUST(sigaction(SIGUSR2, &sa, NULL));
    MUST(pipe(p));
    MUST(pipe(q));

    ready = 0;
    pthread_t r = spawn(reader, &p[0]), s = spawn(sleeper, (void *)300L);
    wait_ready(2);
    ERR("pthread_kill(reader, SIGUSR1)", pthread_kill(r, SIGUSR1));
    long vr = (long)join(r), vs = (long)join(s);
    printf("  the reader's read = %s; the handler ran %d times, on the reader: %s\n",
           result(vr), (int)handled_usr1, pthread_equal(handler_thread, r) ? "yes" : "no");
    printf("  the other sleeper: %s\n", vs == 0 ? "slept its 300 ms" : result(vs));

    ready = 0;
    s = spawn(sleeper, (void *)2000L);
    wait_ready(1);
    ERR("pthread_kill(sleeper, SIGUSR1)", pthread_kill(s, SIGUSR1));
    vs = (long)join(s);
    printf("  its nanosleep = %s, handler ran %d times, on it: %s\n", result(vs),
           (int)handled_usr1, pthread_equal(handler_thread, s) ? "yes" : "no");

    ready = 0;
    r = spawn(reader, &q[0]);
    wait_ready(1);
    ERR("pthread_kill(reader, SIGUSR2 with SA_RESTART)", pthread_kill(r, SIGUSR2));
    msleep(50);
    MUST(write(q[1], "x", 1));
    long v2 = (long)join(r);
    printf("  its read = %s (%s); handler ran %d times\n", result(v2 == 'x' ? 1 : v2),
           v2 == 'x' ? "the byte sent after" : "?", (int)handled_usr2);

    ready = 0;
    pthread_t b = spawn(blocker, NULL);
    wait_ready(1);
    ERR("pthread_kill(a thread that blocks SIGUSR1, SIGUSR1)", pthread_kill(b, SIGUSR1));
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    MUST0(pthread_sigmask(SIG_BLOCK, &usr1, NULL));
    struct timespec zero = {0, 0};
    SYS("main's sigtimedwait for it, at once", sigtimedwait(&usr1, NULL, &zero));
    MUST0(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL));
    long got = (long)join(b);
    printf("  its sigwait took %s; handler ran %d times\n",
           got == SIGUSR1 ? "SIGUSR1" : result(got), (int)handled_usr1);

    MUST(sem_init(&sem, 0, 0));
    ready = 0;
    pthread_t w1 = spawn(sem_waiter, NULL), w2 = spawn(sem_waiter, NULL),
              w3 = spawn(sem_waiter, NULL);
    wait_ready(3);
    ERR("pthread_kill(sem waiter, SIGUSR1)", pthread_kill(w1, SIGUSR1));
    ERR("pthread_kill(sem waiter, SIGUSR2 with SA_RESTART)", pthread_kill(w2, SIGUSR2));
    long v1 = (long)join(w1);
    printf("  the first's sem_wait = %s\n", result(v1));
    msleep(50);
    MUST(sem_post(&sem));
    MUST(sem_post(&sem));
    long v2w = (long)join(w2), v3 = (long)join(w3);
    printf("  after two posts, the others' = %s and %s\n", result(v2w), result(v3));

    int before = handled_usr1;
    ERR("pthread_kill(pthread_self(), SIGUSR1)", pthread_kill(pthread_self(), SIGUSR1));
    printf("  handled before it returned: %s\n", handled_usr1 == before + 1 ? "yes" : "no");
    ERR("pthread_kill(self, 0)", pthread_kill(pthread_self(), 0));
    ERR("pthread_kill(self, 9999)", pthread_kill(pthread_self(), 9999));
    return 0;
}
