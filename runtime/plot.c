/* The parking lot (plot.h). */
#define _GNU_SOURCE
#include "plot.h"

#include <errno.h>
#include <stddef.h>

#include "fd.h"
#include "lock.h"
#include "sys.h"

#define NBUCKETS 1024 /* a power of two */

struct unb__bucket {
    _Atomic uint8_t lock;
    struct unb__pwaiter *head, *tail;
} UNB_ALIGNED_LINE;

static struct unb__bucket buckets[NBUCKETS];

static struct unb__bucket *bucket_of(const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    a ^= a >> 17;
    a *= 0x9e3779b97f4a7c15u; /* Fibonacci hashing */
    return &buckets[a >> (64 - 10)];
}

/* A bucket is held inside a runtime section (sched.h): a coroutine must
 * not move to another thread while it holds a spinlock that the thread's
 * other coroutines may spin on, so it enters first, with nothing held. */
struct unb__bucket *unb__plot_lock(const void *addr)
{
    struct unb__bucket *b = bucket_of(addr);
    unb__rt_enter();
    unb__spin_lock(&b->lock);
    return b;
}

void unb__plot_unlock(struct unb__bucket *b)
{
    unb__spin_unlock(&b->lock);
    unb__rt_leave();
}

struct unb__pwaiter *unb__plot_first(struct unb__bucket *b, const void *addr)
{
    struct unb__pwaiter *p = b->head;
    while (p && p->addr != addr)
        p = p->next;
    return p;
}

struct unb__pwaiter *unb__plot_next(struct unb__pwaiter *p)
{
    const void *addr = p->addr;
    for (p = p->next; p && p->addr != addr; p = p->next)
        ;
    return p;
}

static void enqueue(struct unb__bucket *b, struct unb__pwaiter *p)
{
    p->next = NULL;
    p->prev = b->tail;
    if (b->tail)
        b->tail->next = p;
    else
        b->head = p;
    b->tail = p;
    p->queued = true;
}

void unb__plot_remove(struct unb__bucket *b, struct unb__pwaiter *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        b->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        b->tail = p->prev;
    p->queued = false;
}

void unb__plot_wake(struct unb__pwaiter *p)
{
    /* An interrupted wait is readied by its interruption. */
    if (p->intr && !unb__intr_complete(p->intr))
        return;
    unb__waiter_wake(&p->w);
}

unsigned unb__plot_wake_some(const void *addr, unsigned max, bool *more)
{
    struct unb__bucket *b = unb__plot_lock(addr);
    struct unb__pwaiter *list = NULL, **tail = &list;
    unsigned n = 0;
    struct unb__pwaiter *p = unb__plot_first(b, addr);
    while (p && n < max) {
        struct unb__pwaiter *next = unb__plot_next(p);
        unb__plot_remove(b, p);
        *tail = p; /* reuse next as the wake list: p is ours now */
        p->next = NULL;
        tail = &p->next;
        n++;
        p = next;
    }
    if (more)
        *more = p != NULL;
    unb__plot_unlock(b);
    /* Read each link before waking: a woken waiter's memory goes away. */
    while (list) {
        struct unb__pwaiter *next = list->next;
        unb__plot_wake(list);
        list = next;
    }
    return n;
}

/* ---- deadlines -------------------------------------------------------- */

/* A coroutine's deadline: a libev watcher on the loop of the worker it
 * parked on.  A periodic follows changes of the real-time clock. */
struct timed {
    union {
        ev_timer timer;
        ev_periodic periodic;
    } u;
    bool periodic;
    struct unb__worker *w;
    struct unb__pwaiter *p;
    struct unb__bucket *b;
};

static void expire(struct timed *t)
{
    unb__worker_waiting_add(t->w, -1);
    struct unb__pwaiter *p = t->p;
    unb__spin_lock(&t->b->lock);
    bool mine = p->queued;
    if (mine) {
        unb__plot_remove(t->b, p);
        p->timed_out = true;
    }
    unb__spin_unlock(&t->b->lock);
    if (mine && (!p->intr || unb__intr_complete(p->intr)))
        unb__sched_ready(p->w.co);
    /* else a waker dequeued it first and readies it, or a signal
     * interrupted it (intr.c readies it). */
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    expire((struct timed *)((char *)w - offsetof(struct timed, u.timer)));
}

static void on_periodic(struct ev_loop *loop, ev_periodic *w, int revents)
{
    (void)loop;
    (void)revents;
    expire((struct timed *)((char *)w - offsetof(struct timed, u.periodic)));
}

static double ts_seconds(const struct timespec *ts)
{
    return (double)ts->tv_sec + (double)ts->tv_nsec * 1e-9;
}

static void timed_start(struct timed *t, const struct unb__deadline *dl)
{
    struct ev_loop *loop = unb__worker_loop(t->w);
    t->periodic = dl->clock == CLOCK_REALTIME;
    if (t->periodic) {
        ev_periodic_init(&t->u.periodic, on_periodic, ts_seconds(&dl->at), 0, 0);
        ev_periodic_start(loop, &t->u.periodic);
    } else {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double delay = ts_seconds(&dl->at) - ts_seconds(&now);
        ev_now_update(loop); /* the loop's clock must not lag ours */
        ev_timer_init(&t->u.timer, on_timer, delay > 0 ? delay : 0., 0.);
        ev_timer_start(loop, &t->u.timer);
        unb__worker_deadline(t->w, unb__ns(dl->at.tv_sec, dl->at.tv_nsec));
    }
    unb__worker_waiting_add(t->w, 1);
}

/* After a wake-up by a waker: the watcher is still started on t->w's loop,
 * which only t->w's thread may touch. */
static void timed_stop(struct timed *t)
{
    if (unb__sched_worker() != t->w)
        unb__sched_migrate(t->w);
    struct ev_loop *loop = unb__worker_loop(t->w);
    /* It may have fired after the waker dequeued us (expire did nothing
     * then, but the one-shot watcher stopped itself). */
    if (t->periodic ? !ev_is_active(&t->u.periodic) : !ev_is_active(&t->u.timer))
        return;
    if (t->periodic)
        ev_periodic_stop(loop, &t->u.periodic);
    else
        ev_timer_stop(loop, &t->u.timer);
    unb__worker_waiting_add(t->w, -1);
}

static bool passed(const struct unb__deadline *dl)
{
    struct timespec now;
    clock_gettime(dl->clock, &now);
    return now.tv_sec > dl->at.tv_sec ||
           (now.tv_sec == dl->at.tv_sec && now.tv_nsec >= dl->at.tv_nsec);
}

static void unlock_bucket(void *b)
{
    unb__spin_unlock(&((struct unb__bucket *)b)->lock);
}

/* A thread waits on its futex, with the deadline as an absolute timeout;
 * if interruptible, a signal handler without SA_RESTART ends the wait with
 * -EINTR, as it ends glibc's futex wait (the kernel restarts the wait
 * after the others). */
static int thread_wait(struct unb__bucket *b, struct unb__pwaiter *p,
                       const struct unb__deadline *dl, enum unb__call call,
                       bool interruptible)
{
    unb__spin_unlock(&b->lock);
    int op = FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG;
    if (dl && dl->clock == CLOCK_REALTIME)
        op |= FUTEX_CLOCK_REALTIME;
    /* A pinned coroutine blocks its thread: let the monitor hand the
     * worker on meanwhile. */
    uint32_t depth = unb__rt_block_begin(unb__call_label(call));
    int ret = 0;
    while (!atomic_load_explicit(&p->w.woken, memory_order_acquire)) {
        long rc =
            unb__sys6(SYS_futex, (long)&p->w.woken, op, 0, (long)(dl ? &dl->at : NULL),
                      0, (long)FUTEX_BITSET_MATCH_ANY);
        if (!(rc == -ETIMEDOUT || (rc == -EINTR && interruptible)))
            continue;
        unb__spin_lock(&b->lock);
        bool mine = p->queued;
        if (mine)
            unb__plot_remove(b, p);
        unb__spin_unlock(&b->lock);
        if (mine) {
            ret = (int)rc;
            break;
        }
        /* A waker took us off the list: its wake-up is coming, and is the
         * interruption's (the caller passes it on), as for a coroutine. */
        if (rc == -EINTR)
            ret = -EINTR;
        dl = NULL;
        interruptible = false;
    }
    unb__rt_block_end(depth);
    return ret;
}

/* An interruptible wait and what its interruption needs. */
struct pintr {
    struct unb__intr it;
    struct unb__pwaiter *p;
    struct unb__bucket *b;
};

/* The interruption, on the park's worker: off the list, if no waker or
 * deadline took it off first (their wake-up is then the interruption's:
 * unb__plot_wake and expire see it). */
static void intr_cancel(struct unb__intr *it)
{
    struct pintr *pi = (struct pintr *)((char *)it - offsetof(struct pintr, it));
    unb__spin_lock(&pi->b->lock);
    if (pi->p->queued)
        unb__plot_remove(pi->b, pi->p);
    unb__spin_unlock(&pi->b->lock);
}

static int wait_in(struct unb__bucket *b, const void *addr, uintptr_t token,
                   const struct unb__deadline *dl, enum unb__call call,
                   bool interruptible)
{
    if (dl && passed(dl)) {
        unb__spin_unlock(&b->lock);
        return -ETIMEDOUT;
    }
    struct unb__pwaiter p = {.addr = addr, .token = token};
    unb__waiter_init(&p.w);
    enqueue(b, &p);
    if (!p.w.co)
        return thread_wait(b, &p, dl, call, interruptible);
    struct pintr pi;
    if (interruptible) {
        pi.p = &p;
        pi.b = b;
        p.intr = &pi.it;
        unb__intr_arm(&pi.it, true,
                      intr_cancel); /* as a futex wait: SA_RESTART goes on */
    }
    struct timed t = {.w = unb__sched_worker(), .p = &p, .b = b};
    if (dl)
        timed_start(&t, dl);
    unb__sched_park(unlock_bucket, b, call, (int64_t)(uintptr_t)addr);
    bool interrupted = interruptible && unb__intr_disarm(&pi.it);
    if (dl && !p.timed_out)
        timed_stop(&t);
    if (interrupted)
        return -EINTR;
    return p.timed_out ? -ETIMEDOUT : 0;
}

int unb__plot_wait(struct unb__bucket *b, const void *addr, uintptr_t token,
                   const struct unb__deadline *dl, enum unb__call call)
{
    int rc = wait_in(b, addr, token, dl, call, false);
    unb__rt_leave(); /* the section unb__plot_lock entered */
    return rc;
}

int unb__plot_wait_interruptible(struct unb__bucket *b, const void *addr,
                                 uintptr_t token, const struct unb__deadline *dl,
                                 enum unb__call call)
{
    int rc = wait_in(b, addr, token, dl, call, true);
    unb__rt_leave();
    return rc;
}

void unb__plot_reset(void)
{
    for (unsigned i = 0; i < NBUCKETS; i++) {
        atomic_store(&buckets[i].lock, 0);
        buckets[i].head = buckets[i].tail = NULL;
    }
}
