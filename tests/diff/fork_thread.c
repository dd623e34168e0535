/*
 * fork_thread: a child forked by a thread other than main.  Its only
 * thread is the forking one; main is not in it.
 *
 *   - the forking thread, which main is joining, returns in the child:
 *     the child ends with status 0 (the last thread's end is exit(0)),
 *     its stdout flushed, and main's code after the join does not run in
 *     the child;
 *   - the same with pthread_exit(NULL) in the child;
 *   - a detached thread forks; its child returns likewise;
 *   - the parent goes on in each case, and main's join gives the
 *     thread's result.
 */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "diff.h"

enum how { RETURN, PTHREAD_EXIT };

static void report(const char *what, pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        printf("%s: waitpid failed: %s\n", what, ename(errno));
    else if (WIFEXITED(st))
        printf("%s: the child exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: the child was killed by signal %d\n", what, WTERMSIG(st));
}

static void *forker(void *arg)
{
    enum how how = (enum how)(long)arg;
    msleep(30); /* main is in pthread_join by now */
    pid_t pid = (pid_t)MUST(fork());
    if (pid == 0) {
        printf("  child of the %s thread: its only thread ends\n",
               how == RETURN ? "returning" : "exiting");
        if (how == PTHREAD_EXIT)
            pthread_exit(NULL);
        return NULL;
    }
    report(how == RETURN ? "return" : "pthread_exit", pid);
    return (void *)42L;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int detached_done;

static void *detached_forker(void *arg)
{
    (void)arg;
    pid_t pid = (pid_t)MUST(fork());
    if (pid == 0) {
        printf("  child of the detached thread: its only thread ends\n");
        return NULL;
    }
    report("detached", pid);
    pthread_mutex_lock(&lock);
    detached_done = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void)
{
    diff_start(1);
    printf("main: join a thread that forks and returns\n");
    printf("main: joined, result %ld\n",
           (long)join(spawn(forker, (void *)(long)RETURN)));
    printf("main: join a thread that forks and calls pthread_exit\n");
    printf("main: joined, result %ld\n",
           (long)join(spawn(forker, (void *)(long)PTHREAD_EXIT)));

    printf("main: a detached thread forks\n");
    pthread_t t = spawn(detached_forker, NULL);
    MUST(pthread_detach(t));
    pthread_mutex_lock(&lock);
    while (!detached_done)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    printf("main: done\n");
    return 0;
}
