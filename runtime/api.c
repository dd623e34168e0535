/*
 * The public API (unblock.h): argument checks and the conversion from the
 * runtime's negative errno returns to the API's conventions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>

#include <unblock.h>
#include "common.h"
#include "sched.h"

UNB_EXPORT unb_coro_t *unb_spawn(void *(*fn)(void *), void *arg)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    struct unb_coro *co;
    int rc = unb__sched_spawn(fn, arg, &co);
    if (rc != 0) {
        errno = -rc;
        return NULL;
    }
    return co;
}

UNB_EXPORT int unb_join(unb_coro_t *co, void **result)
{
    if (!co)
        return EINVAL;
    return -unb__sched_join(co, result);
}

UNB_EXPORT int unb_detach(unb_coro_t *co)
{
    if (!co)
        return EINVAL;
    return -unb__sched_detach(co);
}

UNB_EXPORT void unb_yield(void)
{
    if (unb__sched_current())
        unb__sched_yield();
    else
        sched_yield();
}

UNB_EXPORT unb_coro_t *unb_self(void)
{
    return unb__sched_current();
}

UNB_EXPORT int unb_stats(unb_stats_t *st)
{
    if (!st)
        return EINVAL;
    unb__sched_stats(st);
    return 0;
}
