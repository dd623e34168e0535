/*
 * A work-stealing deque: Chase and Lev's dynamic circular deque (SPAA 2005)
 * with the C11 memory orderings proved correct by Lê, Pop, Cohen and
 * Zappa Nardelli (PPoPP 2013).
 *
 * One owner thread pushes at the bottom; any thread, the owner included,
 * takes from the top with unb__deque_steal().  The owner's LIFO pop of the
 * bottom is left out on purpose: the scheduler consumes its own deque from
 * the top, oldest first, for fairness (see the essay in sched.c).
 *
 * The buffer grows by doubling when full and never shrinks.  Retired
 * buffers stay mapped until unb__deque_fini(): a thief may still be reading
 * one, and the total is bounded by twice the largest buffer.
 */
#ifndef UNB_DEQUE_H
#define UNB_DEQUE_H

#include <stdint.h>

#include "common.h"

struct unb__deque_buf {
    int64_t mask;                /* capacity - 1; capacity a power of 2 */
    struct unb__deque_buf *next; /* retired-list link */
    _Atomic(void *) slot[];
};

static inline void *unb__deque_buf_slot(struct unb__deque_buf *a, int64_t i)
{
    return atomic_load_explicit(&a->slot[i & a->mask], memory_order_relaxed);
}

struct unb__deque {
    _Atomic int64_t top UNB_ALIGNED_LINE;    /* next to steal; thieves CAS it */
    _Atomic int64_t bottom UNB_ALIGNED_LINE; /* next free slot; owner writes */
    _Atomic(struct unb__deque_buf *) buf;
    struct unb__deque_buf *retired; /* older buffers, freed at fini */
};

/* Results of unb__deque_steal() besides an item. */
#define UNB_DEQUE_EMPTY ((void *)0)
#define UNB_DEQUE_ABORT ((void *)1) /* lost a race; the deque may be non-empty */

/* Returns 0 or -ENOMEM. */
int unb__deque_init(struct unb__deque *q, unsigned log2_capacity);
void unb__deque_fini(struct unb__deque *q);

/* Owner only.  Returns 0, or -ENOMEM if the buffer had to grow and could
 * not; the item is then not pushed. */
int unb__deque_push(struct unb__deque *q, void *item);

/* Any thread: the oldest item, UNB_DEQUE_EMPTY, or UNB_DEQUE_ABORT. */
void *unb__deque_steal(struct unb__deque *q);

/*
 * The oldest item or UNB_DEQUE_EMPTY, for an owner that knows no other
 * thread takes from this deque (a runtime with one worker has no thieves):
 * the same as steal, without the CAS.
 */
static inline void *unb__deque_take_alone(struct unb__deque *q)
{
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    if (t >= b)
        return UNB_DEQUE_EMPTY;
    struct unb__deque_buf *a = atomic_load_explicit(&q->buf, memory_order_relaxed);
    void *item = unb__deque_buf_slot(a, t);
    atomic_store_explicit(&q->top, t + 1, memory_order_release);
    return item;
}

/* A racy estimate of the number of items; exact for the owner when no
 * thief is active. */
static inline int64_t unb__deque_size(struct unb__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    return b > t ? b - t : 0;
}

#endif
