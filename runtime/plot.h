/*
 * The parking lot: wait queues keyed by address, for coroutines and
 * threads alike, with optional deadlines.
 *
 * The synchronisation objects of the hook layer (mutexes, condition
 * variables, rwlocks, semaphores, barriers, once; libunblock/sync.c) keep
 * their state in the program's own pthread_*_t storage, which has no room
 * for a wait queue and must work zero-initialised.  Waiters go here
 * instead, into one of a fixed set of buckets chosen by the object's
 * address (WebKit's ParkingLot and Go's semaphore table work the same way).
 *
 * A bucket is a spinlock and a list.  The protocol that makes it free of
 * lost wake-ups: a waiter locks the bucket, checks under the lock that it
 * still has to wait (the object's state), enqueues itself and parks; the
 * bucket is unlocked only once it is parked (the switch's after action),
 * or, for a thread, before it sleeps on its futex.  A waker changes the
 * state first, then locks the bucket and dequeues.  Either the waiter saw
 * the new state, or the waker sees the waiter.
 *
 * A waiter is a coroutine (it parks) or a plain thread (it sleeps on a
 * futex in its waiter), so objects shared between coroutines and real
 * threads (the runtime's helpers, a library's threads, a program linking
 * -lunblock without the preload) work.
 */
#ifndef UNB_PLOT_H
#define UNB_PLOT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "intr.h"
#include "sched.h"

struct unb__bucket;

/* A waiter: lives on the waiting context's stack. */
struct unb__pwaiter {
    struct unb__pwaiter *next, *prev;
    const void *addr;
    uintptr_t token; /* the object's own use (e.g. reader or writer) */
    struct unb__waiter w;
    bool queued;    /* in its bucket's list; under the bucket lock */
    bool timed_out; /* the deadline took it off the list */
    struct unb__intr *intr; /* its interruptible park (a semaphore's), or NULL */
};

/* An absolute deadline on CLOCK_REALTIME or CLOCK_MONOTONIC. */
struct unb__deadline {
    clockid_t clock;
    struct timespec at;
};

/* Locks and returns the bucket of addr, inside a runtime section
 * (sched.h) that unb__plot_unlock or unb__plot_wait closes. */
struct unb__bucket *unb__plot_lock(const void *addr);
void unb__plot_unlock(struct unb__bucket *b);

/*
 * With b locked (b is addr's bucket): enqueues the caller with token,
 * releases b, and waits until a waker dequeues it or the deadline (NULL for
 * none) passes.  Returns 0 when woken, -ETIMEDOUT.  b is unlocked on
 * return.
 */
int unb__plot_wait(struct unb__bucket *b, const void *addr, uintptr_t token,
                   const struct unb__deadline *dl, enum unb__call call);

/* The same, and a signal handler without SA_RESTART (intr.h) may
 * interrupt the wait, a coroutine's or a thread's, as it interrupts a
 * futex wait: -EINTR.  A waker that dequeued it meanwhile wakes nobody
 * (its wake-up is the interruption's): the caller passes it on if it
 * must (sem_wait: another waiter may take the value). */
int unb__plot_wait_interruptible(struct unb__bucket *b, const void *addr, uintptr_t token,
                                 const struct unb__deadline *dl, enum unb__call call);

/* With b locked: the oldest waiter on addr, or NULL; and the next one
 * after p on the same address. */
struct unb__pwaiter *unb__plot_first(struct unb__bucket *b, const void *addr);
struct unb__pwaiter *unb__plot_next(struct unb__pwaiter *p);

/* With b locked: takes p off the list.  The caller wakes it with
 * unb__plot_wake once it has unlocked b. */
void unb__plot_remove(struct unb__bucket *b, struct unb__pwaiter *p);

/* Wakes a waiter taken off its list.  Any context. */
void unb__plot_wake(struct unb__pwaiter *p);

/* Wakes up to max waiters on addr, oldest first; returns how many.  If
 * more is not NULL, *more says whether waiters remain. */
unsigned unb__plot_wake_some(const void *addr, unsigned max, bool *more);

/* Child after fork: every bucket unlocked and empty (the waiters were
 * other threads, which the child does not have). */
void unb__plot_reset(void);

#endif
