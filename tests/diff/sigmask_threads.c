/*
 * sigmask_threads: a signal mask is each thread's own.
 *
 *   - a thread that blocks SIGUSR1 changes its own mask, not main's or
 *     another thread's, and a thread it creates inherits it;
 *   - main and one thread block SIGUSR1, another lets it in and sleeps:
 *     SIGUSR1 sent to the process is handled once and interrupts that
 *     thread's sleep (EINTR), not the other sleeper's;
 *   - SIGUSR1 raised while blocked stays pending and is handled before
 *     pthread_sigmask, unblocking it, returns;
 *   - an unknown `how`: EINVAL from both calls.
 */
#define _GNU_SOURCE
#include "diff.h"

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
    (void)sig;
    handled++;
}

static const char *blocks(void)
{
    sigset_t s;
    pthread_sigmask(SIG_SETMASK, NULL, &s);
    return sigismember(&s, SIGUSR1) ? "blocks" : "lets in";
}

static void *child(void *arg)
{
    (void)arg;
    printf("  its child %s SIGUSR1\n", blocks());
    return NULL;
}

static void *blocker(void *arg)
{
    (void)arg;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    MUST0(pthread_sigmask(SIG_BLOCK, &usr1, NULL));
    printf("a thread that blocked SIGUSR1 %s it\n", blocks());
    join(spawn(child, NULL));
    return NULL;
}

static void *other(void *arg)
{
    (void)arg;
    printf("another thread %s SIGUSR1\n", blocks());
    return NULL;
}

/* Sleeps 400 ms with SIGUSR1 blocked or let in; reports how it ended. */
static void *sleeper(void *arg)
{
    int let_in = arg != NULL;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    MUST0(pthread_sigmask(let_in ? SIG_UNBLOCK : SIG_BLOCK, &usr1, NULL));
    struct timespec ts = {0, 400 * 1000 * 1000};
    int r = nanosleep(&ts, NULL);
    return (void *)(long)(r == 0 ? 0 : errno);
}

int main(void)
{
    diff_start(1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    MUST(sigaction(SIGUSR1, &sa, NULL));

    printf("main %s SIGUSR1\n", blocks());
    join(spawn(blocker, NULL));
    join(spawn(other, NULL));
    printf("main still %s SIGUSR1\n", blocks());

    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    MUST0(pthread_sigmask(SIG_BLOCK, &usr1, NULL));
    pthread_t in = spawn(sleeper, (void *)1), out = spawn(sleeper, NULL);
    msleep(100);
    MUST(kill(getpid(), SIGUSR1));
    long e_in = (long)join(in), e_out = (long)join(out);
    printf("SIGUSR1 to the process: handled %d times; the sleeper that lets it in: %s; "
           "the one that blocks it: %s\n",
           (int)handled, e_in ? ename((int)e_in) : "slept", e_out ? ename((int)e_out) : "slept");

    MUST(raise(SIGUSR1));
    printf("raised while blocked: handled %d times\n", (int)handled);
    MUST0(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL));
    printf("right after unblocking: handled %d times\n", (int)handled);

    ERR("pthread_sigmask(how 99)", pthread_sigmask(99, &usr1, NULL));
    SYS("sigprocmask(how 99)", sigprocmask(99, &usr1, NULL));
    return 0;
}
