/*
 * fork_exec: a threaded program that starts processes, as ordinary
 * programs do (a server that forks, a tool that runs popen or system from
 * a worker thread).  Run natively and under LD_PRELOAD=libunblock.so by
 * tests/test_preload.c, which wants the same stdout and exit status.
 *
 *   - fork from main while 4 threads wait on a condition variable and one
 *     sleeps: the child has one thread and can create and join threads,
 *     lock a mutex, time out on a condition variable and sleep; it reports
 *     through its exit status; the parent's threads run on;
 *   - fork from a thread likewise;
 *   - popen("echo ...") from a thread reads the line, pclose gives 0;
 *     system("exit 3") from a thread gives status 3.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- checks, watchdog, time (the same in every program here) ---------- */

#define UNUSED __attribute__((unused))

static int failures;

static int check(int pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
UNUSED static int check(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(pass ? "ok - " : "FAIL - ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
    if (!pass)
        failures++;
    return pass;
}

/* Details of a failed check: not compared, since the check already fails. */
static void detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
UNUSED static void detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("    ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

static const char *volatile phase = "start";

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL - watchdog: still running after the time limit in ";
    ssize_t r = write(1, msg, sizeof msg - 1);
    r = write(1, phase, strlen(phase));
    r = write(1, "\n", 1);
    (void)r;
    _exit(2);
}

UNUSED static void watchdog(unsigned seconds)
{
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

/* An errno value's name, or its number; for failure details only. */
UNUSED static const char *ename(int e)
{
    static __thread char buf[32];
    const char *n = strerrorname_np(e);
    if (e == 0)
        return "0";
    if (n)
        return n;
    snprintf(buf, sizeof buf, "%d", e);
    return buf;
}

UNUSED static struct timespec now_on(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts;
}

UNUSED static struct timespec ts_add_ms(struct timespec ts, long ms)
{
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

UNUSED static int ts_reached(struct timespec now, struct timespec deadline)
{
    return now.tv_sec > deadline.tv_sec ||
           (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

UNUSED static double ts_minus_ms(struct timespec a, struct timespec b)
{
    return (double)(a.tv_sec - b.tv_sec) * 1e3 + (double)(a.tv_nsec - b.tv_nsec) * 1e-6;
}

UNUSED static pthread_t spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int e = pthread_create(&t, NULL, fn, arg);
    if (e != 0) {
        printf("FAIL - pthread_create: %s\n", strerror(e));
        exit(1);
    }
    return t;
}

UNUSED static void *join(pthread_t t)
{
    void *r = NULL;
    int e = pthread_join(t, &r);
    if (e != 0) {
        printf("FAIL - pthread_join: %s\n", strerror(e));
        exit(1);
    }
    return r;
}

/* A one-shot event (mutex, condition variable, flag): how the programs
 * other than sem.c hand a thread the go-ahead, so that they do not depend
 * on semaphores.  A wait longer than 10 s is a failure. */
struct event {
    pthread_mutex_t m;
    pthread_cond_t c;
    int set;
};
#define EVENT_INIT                                                                     \
    {                                                                                  \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0                         \
    }

UNUSED static void event_set(struct event *e)
{
    pthread_mutex_lock(&e->m);
    e->set = 1;
    pthread_cond_broadcast(&e->c);
    pthread_mutex_unlock(&e->m);
}

UNUSED static void event_wait(struct event *e)
{
    struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), 10000);
    int rc = 0;
    pthread_mutex_lock(&e->m);
    while (!e->set && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&e->c, &e->m, &dl);
    int set = e->set;
    pthread_mutex_unlock(&e->m);
    if (!set) {
        check(0, "an event was not set within 10 s in %s", phase);
        exit(1);
    }
}

/* Only when nobody waits on it. */
UNUSED static void event_reset(struct event *e)
{
    pthread_mutex_lock(&e->m);
    e->set = 0;
    pthread_mutex_unlock(&e->m);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int release;

static void *waiter(void *arg)
{
    pthread_mutex_lock(&lock);
    while (!release)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return (void *)1L;
}

static void *sleeper(void *arg)
{
    for (int i = 0; i < 20; i++)
        usleep(1000);
    return (void *)1L;
}

static void *child_thread(void *arg)
{
    usleep(1000);
    return (void *)((long)arg + 1);
}

/* What a forked child does: threads, a mutex, a timed-out condition
 * variable, a sleep.  Exits 42 when all went as natively. */
static void child_work(void)
{
    alarm(8);
    int good = 1;
    pthread_t t;
    void *r = NULL;
    good &= pthread_create(&t, NULL, child_thread, (void *)41L) == 0;
    good &= good && pthread_join(t, &r) == 0 && r == (void *)42L;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_lock(&m);
    struct timespec dl = ts_add_ms(now_on(CLOCK_REALTIME), 20);
    good &= pthread_cond_timedwait(&c, &m, &dl) == ETIMEDOUT;
    pthread_mutex_unlock(&m);
    good &= usleep(1000) == 0;
    _exit(good ? 42 : 1);
}

static int fork_and_wait(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        child_work();
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void *forks(void *arg)
{
    return (void *)(long)fork_and_wait();
}

static void *runs_popen(void *arg)
{
    char line[64] = "";
    FILE *p = popen("echo popen from a thread", "r");
    if (!p)
        return (void *)-1L;
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    int st = pclose(p);
    return (void *)(long)(strcmp(line, "popen from a thread\n") == 0 && st == 0);
}

static void *runs_system(void *arg)
{
    int st = system("exit 3");
    return (void *)(long)(WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(void)
{
    watchdog(10);
    phase = "fork from main";
    pthread_t w[4];
    for (int i = 0; i < 4; i++)
        w[i] = spawn(waiter, NULL);
    pthread_t s = spawn(sleeper, NULL);
    usleep(2000);
    int st = fork_and_wait();
    if (!check(st == 42, "fork from main while threads wait: the child runs threads, "
                         "locks and sleeps"))
        detail("child status %d", st);
    st = (int)(long)join(spawn(forks, NULL));
    if (!check(st == 42,
               "fork from a thread: the child runs threads, locks and sleeps"))
        detail("child status %d", st);
    pthread_mutex_lock(&lock);
    release = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    long ran = (long)join(s);
    for (int i = 0; i < 4; i++)
        ran += (long)join(w[i]);
    check(ran == 5, "the parent's threads ran on through the forks");

    phase = "popen";
    long ok_popen = (long)join(spawn(runs_popen, NULL));
    check(ok_popen == 1,
          "popen(\"echo ...\") from a thread reads its line; pclose gives 0");
    phase = "system";
    long sys = (long)join(spawn(runs_system, NULL));
    if (!check(sys == 3, "system(\"exit 3\") from a thread gives status 3"))
        detail("got %ld", sys);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
