/*
 * sigwait_thread: the classic signal-handling thread.  main blocks
 * SIGUSR1, SIGUSR2 and SIGTERM before creating any thread, so every
 * thread inherits the mask; one thread takes them with sigwait.
 *
 *   - main sends SIGUSR1, then SIGUSR2, then SIGTERM to the process, each
 *     after the previous one was taken: the thread takes all three, in
 *     order (none kills the process);
 *   - sigtimedwait with 50 ms and nothing pending: EAGAIN;
 *   - a signal sent while nobody waits stays pending (sigpending) until
 *     sigwaitinfo takes it, with si_code SI_USER.
 */
#define _GNU_SOURCE
#include "diff.h"

static sigset_t set;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int taken[3], ntaken;

static void *sig_thread(void *arg)
{
    (void)arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            break;
        pthread_mutex_lock(&m);
        taken[ntaken++] = sig;
        pthread_cond_signal(&c);
        pthread_mutex_unlock(&m);
        if (sig == SIGTERM || ntaken == 3)
            break;
    }
    return NULL;
}

static void wait_taken(int n)
{
    struct timespec dl = ts_in(CLOCK_REALTIME, 2000);
    pthread_mutex_lock(&m);
    while (ntaken < n)
        if (pthread_cond_timedwait(&c, &m, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&m);
}

static const char *sname(int sig)
{
    return sig == SIGUSR1   ? "SIGUSR1"
           : sig == SIGUSR2 ? "SIGUSR2"
           : sig == SIGTERM ? "SIGTERM"
                            : "?";
}

int main(void)
{
    diff_start(1);
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGTERM);
    MUST0(pthread_sigmask(SIG_BLOCK, &set, NULL));

    struct timespec ts = {0, 50000000};
    SYS("sigtimedwait 50 ms, nothing pending", sigtimedwait(&set, NULL, &ts));

    pthread_t t = spawn(sig_thread, NULL);
    int sigs[3] = {SIGUSR1, SIGUSR2, SIGTERM};
    for (int i = 0; i < 3; i++) {
        msleep(20);
        MUST(kill(getpid(), sigs[i]));
        wait_taken(i + 1);
    }
    join(t);
    printf("the thread took %d signals:", ntaken);
    for (int i = 0; i < ntaken; i++)
        printf(" %s", sname(taken[i]));
    printf("\n");

    MUST(kill(getpid(), SIGUSR2));
    sigset_t pend;
    sigpending(&pend);
    printf("SIGUSR2 pending: %s\n", sigismember(&pend, SIGUSR2) ? "yes" : "no");
    siginfo_t si;
    long r = SYS("sigwaitinfo", sigwaitinfo(&set, &si));
    printf("  took %s, si_code %s\n", sname((int)r),
           si.si_code == SI_USER ? "SI_USER" : "other");
    return 0;
}
