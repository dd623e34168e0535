/*
 * The public API (unblock.h): argument checks and the conversion from the
 * runtime's negative errno returns to the API's conventions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>

#include <unblock.h>
#include "common.h"
#include "sched.h"
#include "fd.h"
#include "intr.h"
#include "config.h"
#include "stats.h"
#include "../libunblock/real.h"

UNB_EXPORT unb_coro_t *unb_spawn(void *(*fn)(void *), void *arg)
{
    if (!fn) {
        unb_errno = EINVAL;
        return NULL;
    }
    struct unb_coro *co;
    int rc = unb__sched_spawn(fn, arg, &co);
    if (rc != 0) {
        unb_errno = -rc;
        return NULL;
    }
    if (unb_unlikely(unb__config.stats))
        unb__stats_arm();
    return co;
}

UNB_EXPORT int unb_join(unb_coro_t *co, void **result)
{
    if (!co)
        return EINVAL;
    return -unb__sched_join(co, result, UNB_CALL_UNB_JOIN);
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

UNB_EXPORT int unb_wait_fd(int fd, int events, int timeout_ms)
{
    if (events != POLLIN && events != POLLOUT) {
        unb_errno = EINVAL;
        return -1;
    }
    if (fd < 0) {
        unb_errno = EBADF;
        return -1;
    }
    if (!unb__sched_parkable()) {
        struct pollfd p = {.fd = fd, .events = (short)events};
        int r = UNB_REAL(poll)(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
        if (r > 0 && (p.revents & POLLNVAL)) {
            unb_errno = EBADF;
            return -1;
        }
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1; /* EBADF */
    if (!S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
        return 1; /* files are always ready, as poll() says */
    /* Already ready (or a zero timeout): the kernel answers, no park. */
    struct pollfd p = {.fd = fd, .events = (short)events};
    int r = UNB_REAL(poll)(&p, 1, 0);
    if (r != 0 || timeout_ms == 0)
        return r < 0 ? -1 : r;
    int64_t deadline =
        timeout_ms < 0 ? 0 : unb__now_ns() + (int64_t)timeout_ms * 1000000 + 1;
    int rc = unb__fd_wait(fd, events == POLLIN ? EV_READ : EV_WRITE, deadline, false,
                          UNB_CALL_WAIT_FD, unb__intr_since());
    if (rc == 0)
        return 1;
    if (rc == -ETIMEDOUT)
        return 0;
    unb_errno = -rc;
    return -1;
}
