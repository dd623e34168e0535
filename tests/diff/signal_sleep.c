/*
 * signal_sleep: a signal with a handler interrupts sleeps (single thread;
 * SIGALRM from setitimer, 100 ms into a 2 s sleep).
 *
 *   - nanosleep: -1 EINTR, the remaining time written back (between 1.5
 *     and 1.99 s); also with SA_RESTART (sleeps are never restarted);
 *   - clock_nanosleep, relative: returns EINTR (the value, not errno) and
 *     writes the remainder; absolute (TIMER_ABSTIME): EINTR, no remainder
 *     written;
 *   - usleep: -1 EINTR;  sleep(3): returns the seconds left (rounded as
 *     glibc does);  pause: -1 EINTR;
 *   - a signal handled while the thread runs (a busy loop), or while it
 *     waits in pause, interrupts nothing later: a 150 ms nanosleep after
 *     it returns 0;
 *   - a signal with the default "ignore" action (SIGCHLD from a child that
 *     exits) or explicitly ignored (SIGUSR2, raised) does not interrupt a
 *     150 ms nanosleep: it returns 0.
 */
#define _GNU_SOURCE
#include <sys/time.h>
#include <sys/wait.h>

#include "diff.h"

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void handler(int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = flags;
    MUST(sigaction(SIGALRM, &sa, NULL));
}

static void arm(long ms)
{
    struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    MUST(setitimer(ITIMER_REAL, &it, NULL));
}

static void rem_check(const char *what, struct timespec rem)
{
    double ms = (double)rem.tv_sec * 1e3 + (double)rem.tv_nsec * 1e-6;
    printf("  %s: %s\n", what,
           ms >= 1500 && ms <= 1990 ? "between 1.5 and 1.99 s" : "implausible");
    if (!(ms >= 1500 && ms <= 1990))
        printf("    (%.1f ms)\n", ms);
}

int main(void)
{
    diff_start(0);
    handler(0);
    struct timespec two = {2, 0}, rem;

    arm(100);
    rem = (struct timespec){-1, -1};
    SYS("nanosleep 2 s, SIGALRM at 100 ms", nanosleep(&two, &rem));
    rem_check("remaining", rem);

    handler(SA_RESTART);
    arm(100);
    rem = (struct timespec){-1, -1};
    SYS("nanosleep 2 s, SA_RESTART handler", nanosleep(&two, &rem));
    rem_check("remaining", rem);
    handler(0);

    arm(100);
    rem = (struct timespec){-1, -1};
    ERR("clock_nanosleep CLOCK_MONOTONIC relative 2 s",
        clock_nanosleep(CLOCK_MONOTONIC, 0, &two, &rem));
    rem_check("remaining", rem);

    arm(100);
    struct timespec dl = ts_in(CLOCK_MONOTONIC, 2000);
    rem = (struct timespec){-1, -1};
    ERR("clock_nanosleep TIMER_ABSTIME +2 s",
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, &rem));
    printf("  remainder untouched: %s\n",
           rem.tv_sec == -1 && rem.tv_nsec == -1 ? "yes" : "no");

    arm(100);
    SYS("usleep 2 s", usleep(2000000));

    arm(100);
    double t0 = now_ms();
    SYS("sleep(3)", sleep(3));
    elapsed("  and it", t0, 40, 1500);

    struct timespec short_ts = {0, 150000000};
    int before = alarms;
    arm(100);
    t0 = now_ms();
    while (alarms == before && now_ms() - t0 < 2000)
        ; /* busy: the handler runs while this thread runs */
    printf("SIGALRM handled while running: %s\n", alarms != before ? "yes" : "no");
    SYS("then nanosleep 150 ms", nanosleep(&short_ts, NULL));

    arm(100);
    SYS("pause", pause());
    SYS("then nanosleep 150 ms", nanosleep(&short_ts, NULL));
    printf("SIGALRM handled %d times\n", (int)alarms);

    signal(SIGCHLD, SIG_DFL);
    pid_t pid = (pid_t)MUST(fork());
    if (pid == 0)
        _exit(0);
    SYS("nanosleep 150 ms while a child exits (SIGCHLD default)",
        nanosleep(&short_ts, NULL));
    MUST(waitpid(pid, NULL, 0));
    signal(SIGUSR2, SIG_IGN);
    MUST(raise(SIGUSR2));
    SYS("nanosleep 150 ms after an ignored SIGUSR2", nanosleep(&short_ts, NULL));
    return 0;
}
