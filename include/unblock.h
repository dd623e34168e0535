/*
 * unblock.h: the public API of libunblock.
 *
 * libunblock runs coroutines on a few OS threads ("workers").  Inside a
 * coroutine, blocking libc calls (sleep, read, write, ...) park the coroutine
 * instead of blocking the thread, so ordinary blocking code scales like an
 * event loop.  The same library can be preloaded into a program that was
 * never written for it (LD_PRELOAD=libunblock.so); this header is for
 * programs that want to spawn coroutines themselves (-lunblock).
 *
 * Configuration is by environment, read once when the runtime starts:
 *   UNBLOCK_WORKERS     worker threads (default: the CPUs this process may use)
 *   UNBLOCK_STACK_SIZE  coroutine stack size, with an optional k/m/g suffix
 *                       (default 256k)
 * A bad value is reported in one line on stderr and the default is used.
 */
#ifndef UNBLOCK_H
#define UNBLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UNBLOCK_VERSION_MAJOR 0
#define UNBLOCK_VERSION_MINOR 1
#define UNBLOCK_VERSION_PATCH 0

/* A coroutine.  The handle stays valid until unb_join or unb_detach. */
typedef struct unb_coro unb_coro_t;

/*
 * Starts fn(arg) in a new coroutine and returns its handle.  Works from any
 * thread; the first call starts the runtime.  On failure returns NULL with
 * errno set: EAGAIN when no stack could be had (mmap failed), EINVAL when fn
 * is NULL.
 */
unb_coro_t *unb_spawn(void *(*fn)(void *), void *arg);

/*
 * Waits for co to finish and stores its return value in *result (if result
 * is not NULL), then releases the handle.  Called from a coroutine it parks
 * the caller; from a plain thread it blocks the thread.  Returns 0, or an
 * errno value as pthread_join does: EINVAL if co is detached or already has
 * a joiner, EDEADLK if co is the caller.
 */
int unb_join(unb_coro_t *co, void **result);

/*
 * Marks co so that its resources are released when it finishes; the handle
 * must not be used afterwards.  Returns 0, or EINVAL if co is already
 * detached or joined.
 */
int unb_detach(unb_coro_t *co);

/* Lets other runnable coroutines run.  Outside a coroutine, sched_yield(). */
void unb_yield(void);

/* The calling coroutine, or NULL outside a coroutine. */
unb_coro_t *unb_self(void);

/*
 * Waits until fd is ready for `events` (POLLIN or POLLOUT, from <poll.h>)
 * or timeout_ms passes (negative: no timeout).  In a coroutine it parks;
 * on a plain thread it blocks in poll().  Returns 1 when ready (an error or
 * hang-up on the fd counts as ready: the next call reports it), 0 on
 * timeout, -1 with errno: EINVAL for other events, EBADF if fd is not open
 * or is closed while waiting, EINTR if a signal handler interrupted it.
 */
int unb_wait_fd(int fd, int events, int timeout_ms);

/*
 * Counters of the runtime since it started.  Reading them is cheap and safe
 * from any thread; each field is exact for finished work and may lag by a
 * few events for work in flight.
 */
typedef struct unb_stats {
    uint64_t workers;          /* worker threads running coroutines */
    uint64_t spawned;          /* coroutines created */
    uint64_t alive;            /* coroutines created and not yet finished */
    uint64_t peak_alive;       /* the largest value of alive so far */
    uint64_t switches;         /* context switches into coroutines */
    uint64_t steals;           /* coroutines taken from another worker's queue */
    uint64_t parks;            /* times a coroutine parked (waited) */
    uint64_t wakeups;          /* times an idle worker was woken by another */
    uint64_t stacks_mapped;    /* coroutine stacks currently mapped */
    uint64_t stacks_unguarded; /* of those, stacks without a guard page */
    uint64_t handoffs;         /* workers handed to a spare OS thread because the
                                  thread was stuck in a call or a computation */
    uint64_t spare_threads;    /* OS threads beyond the workers now: blocked in a
                                  call, or idle in the spare pool */
    uint64_t spare_peak;       /* the largest value of spare_threads so far */
} unb_stats_t;

/* Fills *st.  Returns 0, or EINVAL if st is NULL. */
int unb_stats(unb_stats_t *st);

#ifdef __cplusplus
}
#endif

#endif /* UNBLOCK_H */
