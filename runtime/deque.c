/*
 * Chase-Lev work-stealing deque (deque.h).  The orderings below are those
 * of Lê et al., "Correct and Efficient Work-Stealing for Weak Memory
 * Models", PPoPP 2013, figure 1; comments name the fences they pair with.
 */
#include "deque.h"

#include <errno.h>
#include <stdlib.h>

static struct unb__deque_buf *buf_new(int64_t capacity)
{
    struct unb__deque_buf *b =
        malloc(sizeof *b + (size_t)capacity * sizeof(b->slot[0]));
    if (!b)
        return NULL;
    b->mask = capacity - 1;
    b->next = NULL;
    return b;
}

int unb__deque_init(struct unb__deque *q, unsigned log2_capacity)
{
    struct unb__deque_buf *b = buf_new((int64_t)1 << log2_capacity);
    if (!b)
        return -ENOMEM;
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    atomic_init(&q->buf, b);
    q->retired = NULL;
    return 0;
}

void unb__deque_fini(struct unb__deque *q)
{
    free(atomic_load_explicit(&q->buf, memory_order_relaxed));
    for (struct unb__deque_buf *b = q->retired, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    q->retired = NULL;
}

/* Owner only: doubles the buffer, copying items top..bottom-1.  Kept out
 * of line so that push stays a leaf without register spills. */
__attribute__((noinline, cold)) static struct unb__deque_buf *
grow(struct unb__deque *q, struct unb__deque_buf *old, int64_t t, int64_t b)
{
    struct unb__deque_buf *nb = buf_new((old->mask + 1) * 2);
    if (!nb)
        return NULL;
    for (int64_t i = t; i < b; i++)
        atomic_store_explicit(
            &nb->slot[i & nb->mask],
            atomic_load_explicit(&old->slot[i & old->mask], memory_order_relaxed),
            memory_order_relaxed);
    old->next = q->retired;
    q->retired = old;
    /* Release: a thief that sees the new buffer sees its contents. */
    atomic_store_explicit(&q->buf, nb, memory_order_release);
    return nb;
}

int unb__deque_push(struct unb__deque *q, void *item)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    struct unb__deque_buf *a = atomic_load_explicit(&q->buf, memory_order_relaxed);
    if (unb_unlikely(b - t > a->mask)) {
        a = grow(q, a, t, b);
        if (!a)
            return -ENOMEM;
    }
    atomic_store_explicit(&a->slot[b & a->mask], item, memory_order_relaxed);
    /* Publish the item, and what it points to, with the new bottom (pairs
     * with steal's acquire load of bottom).  Lê et al. write a release
     * fence and a relaxed store; a release store orders the same writes
     * before it, compiles to the same plain mov on x86, and is what
     * ThreadSanitizer can follow (it does not model fences). */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
    return 0;
}

void *unb__deque_steal(struct unb__deque *q)
{
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    /*
     * Lê et al. put a seq_cst fence here, to order this load of top before
     * the load of bottom against the owner's pop of the bottom.  This deque
     * has no pop, so nothing else moves bottom down: a stale bottom only
     * makes us see fewer items, and the CAS on top below rejects a stale
     * top.  Leaving the fence out saves an mfence per take.
     */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b)
        return UNB_DEQUE_EMPTY;
    /* Lê et al. use consume here; acquire is what compilers give for it. */
    struct unb__deque_buf *a = atomic_load_explicit(&q->buf, memory_order_acquire);
    void *item = atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(
            &q->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed))
        return UNB_DEQUE_ABORT;
    return item;
}
