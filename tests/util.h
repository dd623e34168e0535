/*
 * Helpers shared by the test programs that link libunblock: spawn and join
 * that stop the program (BAIL) when the runtime fails, so a test reads as
 * what it checks.  Include after tap.h.
 */
#ifndef UNB_TEST_UTIL_H
#define UNB_TEST_UTIL_H

#include <errno.h>
#include <string.h>

#include <unblock.h>

static inline unb_coro_t *spawn(void *(*fn)(void *), void *arg)
{
    unb_coro_t *co = unb_spawn(fn, arg);
    if (!co)
        BAIL("unb_spawn failed: %s", strerror(errno));
    return co;
}

static inline void *join(unb_coro_t *co)
{
    void *r = NULL;
    int rc = unb_join(co, &r);
    if (rc != 0)
        BAIL("unb_join failed: %s", strerror(rc));
    return r;
}

#endif
