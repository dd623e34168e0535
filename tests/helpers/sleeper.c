/*
 * sleeper: what the sleep calls report when a signal handler interrupts
 * them.  An ordinary program, never linked with libunblock.
 *
 * For each way of installing a SIGALRM handler (sigaction without
 * SA_RESTART; signal(), which glibc gives BSD semantics, so SA_RESTART),
 * it arms alarm(1), pauses 0.5 s, calls a 3 s sleep, and prints one line:
 * the call, its return value, errno, the time left rounded to 0.1 s (so
 * the output is stable) and how many times the handler ran.
 *
 * tests/test_sleep.c includes this file with SLEEPER_NO_MAIN defined and
 * runs sleeper_run() inside a coroutine: both outputs must be the same.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Atomic, not volatile sig_atomic_t: the handler may run on another
 * thread than the one that reads the count (a data race otherwise). */
static _Atomic int sleeper_hits;

/*
 * errno through functions of their own: glibc declares __errno_location()
 * const, so a compiler may keep &errno in a register across a call, and a
 * coroutine may resume on another thread.  Reading it afresh after each
 * call makes the output depend on what the calls did, not on the compiler.
 */
__attribute__((noinline)) static int sleeper_get_errno(void)
{
    return errno;
}

__attribute__((noinline)) static void sleeper_set_errno(int e)
{
    errno = e;
}

static void sleeper_on_alarm(int sig)
{
    (void)sig;
    sleeper_hits++;
}

static const char *sleeper_errno_name(int e)
{
    static char other[32];
    switch (e) {
    case 0:
        return "0";
    case EINTR:
        return "EINTR";
    case EINVAL:
        return "EINVAL";
    case EFAULT:
        return "EFAULT";
    case ENOTSUP:
        return "ENOTSUP";
    default:
        snprintf(other, sizeof other, "errno%d", e);
        return other;
    }
}

/* A value no call writes to rem: shows that rem was left alone. */
static const struct timespec sleeper_untouched = {12345, 6789};

static void sleeper_report(FILE *out, const char *how, const char *call, long ret,
                           int err, const struct timespec *rem)
{
    fprintf(out, "%s %s: ret=%ld errno=%s", how, call, ret, sleeper_errno_name(err));
    if (rem) {
        if (rem->tv_sec == sleeper_untouched.tv_sec &&
            rem->tv_nsec == sleeper_untouched.tv_nsec)
            fprintf(out, " rem=untouched");
        else
            fprintf(out, " rem=%.1f",
                    (double)rem->tv_sec + (double)rem->tv_nsec * 1e-9);
    }
    fprintf(out, " handler=%d\n", (int)sleeper_hits);
}

/* Installs the SIGALRM handler: with sigaction (no SA_RESTART) or signal(). */
static int sleeper_install(int use_signal)
{
    if (use_signal)
        return signal(SIGALRM, sleeper_on_alarm) == SIG_ERR ? -1 : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sleeper_on_alarm;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGALRM, &sa, NULL);
}

/*
 * Arms alarm(1), waits half a second, and resets what a call reports.  The
 * call that follows is interrupted about 0.5 s in, so what is left of a 3 s
 * sleep is about 2.5 s, far from a rounding boundary: without the pause it
 * would be 2 s plus or minus microseconds, and sleep(3) would return 1 or
 * 2 (the whole seconds left) by chance.
 */
static void sleeper_arm(struct timespec *rem)
{
    const struct timespec half = {0, 500000000};
    sleeper_hits = 0;
    *rem = sleeper_untouched;
    alarm(1);
    nanosleep(&half, NULL);
    sleeper_set_errno(0);
}

static int sleeper_run(FILE *out)
{
    static const char *const hows[] = {"sigaction", "signal"};
    const struct timespec three = {3, 0};
    struct timespec rem, when;
    long ret;
    int err;

    for (int use_signal = 0; use_signal < 2; use_signal++) {
        const char *how = hows[use_signal];
        if (sleeper_install(use_signal) != 0) {
            fprintf(out, "%s: cannot install the handler: %s\n", how,
                    strerror(sleeper_get_errno()));
            return 1;
        }

        sleeper_arm(&rem);
        ret = nanosleep(&three, &rem);
        err = sleeper_get_errno();
        alarm(0);
        sleeper_report(out, how, "nanosleep(3 s)", ret, err, &rem);

        sleeper_arm(&rem);
        ret = sleep(3);
        err = sleeper_get_errno();
        alarm(0);
        sleeper_report(out, how, "sleep(3)", ret, err, NULL);

        if (use_signal)
            continue; /* the other calls once, to keep the run short */

        sleeper_arm(&rem);
        ret = usleep(3000000);
        err = sleeper_get_errno();
        alarm(0);
        sleeper_report(out, how, "usleep(3 s)", ret, err, NULL);

        sleeper_arm(&rem);
        ret = clock_nanosleep(CLOCK_MONOTONIC, 0, &three, &rem);
        err = sleeper_get_errno();
        alarm(0);
        sleeper_report(out, how, "clock_nanosleep(MONOTONIC, 3 s)", ret, err, &rem);

        clock_gettime(CLOCK_REALTIME, &when);
        when.tv_sec += 3;
        sleeper_arm(&rem);
        ret = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &when, &rem);
        err = sleeper_get_errno();
        alarm(0);
        sleeper_report(out, how, "clock_nanosleep(REALTIME, ABSTIME now+3 s)", ret,
                       err, &rem);
    }
    signal(SIGALRM, SIG_DFL);
    return 0;
}

#ifndef SLEEPER_NO_MAIN
int main(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    int rc = sleeper_run(stdout);
    fflush(stdout);
    return rc;
}
#endif
