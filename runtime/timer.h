/* Sleeping coroutines on libev timers. */
#ifndef UNB_TIMER_H
#define UNB_TIMER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "calls.h"

/*
 * Parks the calling coroutine until `req` has passed on `clock`, or until
 * the absolute time `req` if flags has TIMER_ABSTIME.  Returns 0;
 * -EINTR when a signal handler interrupted the sleep (*rem, if not NULL
 * and the sleep was relative, gets the time left); -EINVAL for a bad
 * timespec; -EFAULT for a NULL req; -ENOTSUP for a clock the runtime
 * cannot wait on (the caller then makes the native call).
 */
int unb__sleep(clockid_t clock, int flags, const struct timespec *req,
               struct timespec *rem, enum unb__call call);

/*
 * Parks the calling coroutine for ns nanoseconds, as a wait inside another
 * call (`call`, begun when the signal arrivals counted `since`: intr.h)
 * that has no event to wait for: 0, or -EINTR when a signal handler
 * interrupted it (a handler with SA_RESTART does not if `restartable`).
 */
int unb__nap(int64_t ns, bool restartable, enum unb__call call, uint64_t since);

#endif
