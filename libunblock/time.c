/*
 * The time family: sleep, usleep, nanosleep, clock_nanosleep.  Inside a
 * coroutine they park it on a timer (runtime/timer.c) and return what the
 * native call returns, EINTR and the time left included.  Outside one they
 * are the real calls.  And sched_yield (pthread_yield): a thread giving
 * up its CPU to other threads is a coroutine letting its worker's other
 * coroutines run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "../runtime/sched.h"
#include "../runtime/timer.h"
#include "real.h"
#include "thread.h"

UNB_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!unb__sched_parkable())
        return UNB_REAL(nanosleep)(req, rem);
    int rc = unb__sleep(CLOCK_MONOTONIC, 0, req, rem, UNB_CALL_NANOSLEEP);
    if (rc == -ENOTSUP)
        return UNB_REAL(nanosleep)(req, rem);
    if (rc == 0)
        return 0;
    unb_errno = -rc;
    return -1;
}

UNB_EXPORT int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                               struct timespec *rem)
{
    if (!unb__sched_parkable())
        return UNB_REAL(clock_nanosleep)(clock, flags, req, rem);
    int rc = unb__sleep(clock, flags, req, rem, UNB_CALL_CLOCK_NANOSLEEP);
    if (rc == -ENOTSUP) /* e.g. a CPU-time clock: the kernel decides */
        return UNB_REAL(clock_nanosleep)(clock, flags, req, rem);
    return -rc; /* clock_nanosleep returns the error, errno untouched */
}

UNB_EXPORT int usleep(useconds_t usec)
{
    if (!unb__sched_parkable())
        return UNB_REAL(usleep)(usec);
    struct timespec ts = {(time_t)(usec / 1000000), (long)(usec % 1000000) * 1000};
    int rc = unb__sleep(CLOCK_MONOTONIC, 0, &ts, NULL, UNB_CALL_USLEEP);
    if (rc == 0)
        return 0;
    unb_errno = -rc;
    return -1;
}

UNB_EXPORT unsigned int sleep(unsigned int seconds)
{
    if (!unb__sched_parkable())
        return UNB_REAL(sleep)(seconds);
    /* As glibc: on interruption, the whole seconds not slept, the
     * fraction dropped; errno unchanged on success. */
    int saved = unb_errno;
    struct timespec ts = {(time_t)seconds, 0}, rem = {0, 0};
    if (unb__sleep(CLOCK_MONOTONIC, 0, &ts, &rem, UNB_CALL_SLEEP) == -EINTR) {
        unb_errno = EINTR;
        return (unsigned int)rem.tv_sec;
    }
    unb_errno = saved;
    return 0;
}

/* A spin-wait with sched_yield waits for another coroutine, which may
 * well be queued on the same worker: the kernel's sched_yield would not
 * run it. */
UNB_EXPORT int sched_yield(void)
{
    /* Once exit() runs, the kernel's: LeakSanitizer's exit-time check
     * spins with sched_yield while its tracer stops every thread, ours
     * included, and a coroutine switch there never comes back. */
    if (!unb__sched_parkable() || atomic_load_explicit(&unb__exiting, memory_order_relaxed))
        return UNB_REAL(sched_yield)();
    unb__sched_yield();
    return 0;
}

/* For programs built before glibc 2.34 made the name an alias of
 * sched_yield in its header; glibc's pthread_yield calls its own
 * sched_yield directly, which no hook sees.  The asm name: the header
 * redirects the C name to sched_yield. */
UNB_EXPORT int unb__pthread_yield(void) __asm__("pthread_yield");
UNB_EXPORT int unb__pthread_yield(void)
{
    return sched_yield();
}
