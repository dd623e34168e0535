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

#include "check.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int release;

/* Threads that have started.  The fork waits for all of them: a thread
 * still starting may hold a lock of a sanitizer's allocator (GCC 12's
 * ASan does not take its locks around fork), and the child's thread then
 * waits for it for ever in calloc (natively under ASan, 18 of 60 runs
 * beside three busy loops; gdb showed the child's thread in ASan's
 * SizeClassAllocator64::GetFromAllocator). */
static pthread_cond_t started_cond = PTHREAD_COND_INITIALIZER;
static int started;

static void say_started(void)
{
    started++;
    pthread_cond_broadcast(&started_cond);
}

static void *waiter(void *arg)
{
    pthread_mutex_lock(&lock);
    say_started();
    while (!release)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return (void *)1L;
}

static void *sleeper(void *arg)
{
    pthread_mutex_lock(&lock);
    say_started();
    pthread_mutex_unlock(&lock);
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
    pthread_mutex_lock(&lock);
    while (started < 5)
        pthread_cond_wait(&started_cond, &lock);
    pthread_mutex_unlock(&lock);
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
