/*
 * A small futex mutex for the runtime's own short critical sections (the
 * idle-worker list, the inject queue, the stack pool).
 *
 * The runtime cannot use pthread_mutex_t: under the preload, pthread mutexes
 * are hooked to park coroutines, and the runtime's own locking must never
 * park.  These locks block the OS thread; hold them for a few instructions.
 * States: 0 free, 1 held, 2 held with (possible) sleepers.
 */
#ifndef UNB_LOCK_H
#define UNB_LOCK_H

#include "common.h"
#include "sys.h"

struct unb__lock {
    _Atomic uint32_t state;
};

#define UNB_LOCK_INIT                                                                  \
    {                                                                                  \
        0                                                                              \
    }

void unb__lock_slow(struct unb__lock *l);

static inline void unb__lock(struct unb__lock *l)
{
    uint32_t expect = 0;
    if (unb_likely(atomic_compare_exchange_weak_explicit(
            &l->state, &expect, 1, memory_order_acquire, memory_order_relaxed)))
        return;
    unb__lock_slow(l);
}

static inline void unb__unlock(struct unb__lock *l)
{
    if (unb_unlikely(atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2))
        unb__futex_wake(&l->state, 1);
}

/* A spinlock for critical sections of a few instructions that may be
 * entered from a coroutine about to park (no sleeping: the holder is never
 * descheduled by us). */
static inline void unb__spin_lock(_Atomic uint8_t *l)
{
    while (atomic_exchange_explicit(l, 1, memory_order_acquire))
        while (atomic_load_explicit(l, memory_order_relaxed))
            unb__cpu_relax();
}

static inline void unb__spin_unlock(_Atomic uint8_t *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

#endif
