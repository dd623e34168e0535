/* The contended path of the runtime's futex mutex (lock.h). */
#include "lock.h"

void unb__lock_slow(struct unb__lock *l)
{
    /* Spin briefly: the holders of these locks hold them for nanoseconds. */
    for (int i = 0; i < 100; i++) {
        uint32_t expect = 0;
        if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(
                &l->state, &expect, 1, memory_order_acquire, memory_order_relaxed))
            return;
        unb__cpu_relax();
    }
    /* Mark contended and sleep until the holder's unlock wakes us. */
    while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
        unb__futex_wait(&l->state, 2, NULL);
}
