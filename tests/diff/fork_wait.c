/*
 * fork_wait: fork and waitpid.
 *
 *   - five children exit with statuses 10..14; waitpid on each, in
 *     reverse order, gives its status;
 *   - a child blocked reading a pipe: waitpid WNOHANG is 0; after the
 *     parent writes, the child echoes the byte + 1 back through a second
 *     pipe and exits 0;
 *   - a child killed by SIGTERM: WIFSIGNALED, WTERMSIG 15;
 *   - a child that creates threads, joins them, sleeps and exits with
 *     their sum; a child whose thread calls exit(7);
 *   - a SIGCHLD handler (SA_RESTART) counts the exits while the parent
 *     reads a pipe the last child writes to;
 *   - waitpid of a pid that is not a child, and wait with no children:
 *     ECHILD;
 *   - fork while other threads wait on a condition variable: they run on
 *     in the parent.
 */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "diff.h"

static volatile sig_atomic_t chld;
static void on_chld(int sig)
{
    (void)sig;
    chld++;
}

static void *add_one(void *arg)
{
    msleep(5);
    return (void *)((long)arg + 1);
}

static void *exit_seven(void *arg)
{
    (void)arg;
    msleep(10);
    exit(7);
}

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int go, woke;
static void *cond_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m);
    while (!go)
        pthread_cond_wait(&c, &m);
    woke++;
    pthread_mutex_unlock(&m);
    return NULL;
}

static void status(const char *what, int st)
{
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
    else
        printf("%s: status %#x\n", what, st);
}

int main(void)
{
    diff_start(1);
    pid_t kids[5];
    for (int i = 0; i < 5; i++) {
        kids[i] = (pid_t)MUST(fork());
        if (kids[i] == 0)
            _exit(10 + i);
    }
    for (int i = 4; i >= 0; i--) {
        int st;
        if (waitpid(kids[i], &st, 0) == kids[i]) {
            char what[32];
            snprintf(what, sizeof what, "child %d", i);
            status(what, st);
        }
    }

    int down[2], up[2];
    MUST(pipe(down));
    MUST(pipe(up));
    pid_t pid = (pid_t)MUST(fork());
    if (pid == 0) {
        char x;
        if (read(down[0], &x, 1) != 1)
            _exit(1);
        x++;
        _exit(write(up[1], &x, 1) == 1 ? 0 : 2);
    }
    int st;
    msleep(20);
    SYS("waitpid WNOHANG of a child blocked in read", waitpid(pid, &st, WNOHANG));
    write_all(down[1], "A", 1);
    char x = 0;
    SYS("read its answer", read(up[0], &x, 1));
    printf("  answer %c\n", x);
    if (waitpid(pid, &st, 0) == pid)
        status("echo child", st);

    pid = (pid_t)MUST(fork());
    if (pid == 0) {
        for (;;)
            pause();
    }
    msleep(20);
    MUST(kill(pid, SIGTERM));
    if (waitpid(pid, &st, 0) == pid)
        status("paused child sent SIGTERM", st);

    pid = (pid_t)MUST(fork());
    if (pid == 0) {
        pthread_t t[4];
        for (long i = 0; i < 4; i++)
            t[i] = spawn(add_one, (void *)i);
        long sum = 0;
        for (int i = 0; i < 4; i++)
            sum += (long)join(t[i]);
        msleep(10);
        _exit((int)sum);
    }
    if (waitpid(pid, &st, 0) == pid)
        status("child with 4 threads", st);
    pid = (pid_t)MUST(fork());
    if (pid == 0) {
        spawn(exit_seven, NULL);
        for (;;)
            msleep(100);
    }
    if (waitpid(pid, &st, 0) == pid)
        status("child whose thread calls exit(7)", st);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    MUST(sigaction(SIGCHLD, &sa, NULL));
    for (int i = 0; i < 3; i++) {
        kids[i] = (pid_t)MUST(fork());
        if (kids[i] == 0) {
            msleep(20 * (i + 1));
            if (i == 2)
                write_all(up[1], "done", 4);
            _exit(0);
        }
    }
    char b[8];
    SYS("read while children exit (SIGCHLD handler, SA_RESTART)", read(up[0], b, 4));
    for (int i = 0; i < 3; i++)
        MUST(waitpid(kids[i], NULL, 0));
    printf("  SIGCHLD handled: %s\n", chld >= 1 ? "yes" : "no");
    signal(SIGCHLD, SIG_DFL);

    SYS("waitpid of a non-child", waitpid(1, &st, 0));
    SYS("wait with no children", wait(&st));

    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        t[i] = spawn(cond_waiter, NULL);
    msleep(20);
    pid = (pid_t)MUST(fork());
    if (pid == 0)
        _exit(woke == 0 ? 3 : 4);
    if (waitpid(pid, &st, 0) == pid)
        status("child forked while 3 threads wait", st);
    pthread_mutex_lock(&m);
    go = 1;
    pthread_cond_broadcast(&c);
    pthread_mutex_unlock(&m);
    for (int i = 0; i < 3; i++)
        join(t[i]);
    printf("threads woken in the parent after the fork: %d\n", woke);
    return 0;
}
