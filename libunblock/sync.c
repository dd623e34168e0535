/*
 * pthread synchronisation that parks coroutines: mutexes, condition
 * variables, rwlocks, semaphores, barriers, once.
 *
 * Natively these block the OS thread on a futex, so two coroutines of one
 * worker contending a mutex would deadlock the worker.  Here they keep
 * their state in the program's own object (so PTHREAD_*_INITIALIZER, all
 * zeros or glibc's constants, works without an init call) and queue their
 * waiters in the parking lot (runtime/plot.h): a coroutine parks, a plain
 * thread sleeps on a futex, and an object shared between the two works.
 * Every caller in the process goes through these versions, coroutine or
 * not, so that each object has one implementation.
 *
 * Objects the parking lot cannot serve go to glibc: process-shared ones
 * (their waiters may be in another process), robust and priority-aware
 * mutexes.  Their init functions are glibc's, and their operations are
 * recognised by the attributes glibc recorded in the object.  They block
 * the worker while they wait.
 *
 * Layouts.  We reuse glibc's fields where their meaning matches, so that
 * the static initialisers mean the same thing:
 *   mutex   __lock: 0 free, 1 held, 2 held and maybe waited on; __count:
 *           recursion depth; __kind: type and flags as glibc's; the owner
 *           (a coroutine, or glibc's thread descriptor) in __list.__prev.
 *   cond    __wseq (low word): a sequence bumped by signal and broadcast;
 *           __wrefs bit 0: process-shared, bit 1: CLOCK_MONOTONIC (glibc's).
 *   rwlock  __readers: our state word; __shared and __flags: glibc's; the
 *           writer in __pad2.
 *   sem     glibc's: value in the low half of the first word, waiters in
 *           the high half; `private` tells process-shared ones.
 *   barrier our own, with glibc's `shared` field at the same place.
 *   once    0 not run, 1 running, 2 done.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "../runtime/plot.h"
#include "../runtime/sched.h"
#include "real.h"

/* Who is calling: the coroutine, or glibc's descriptor of the thread. */
static inline void *self_id(void)
{
    struct unb_coro *co = unb__sched_current();
    if (co)
        return co;
    void *tp;
    __asm__("movq %%fs:16, %0" : "=r"(tp)); /* tcbhead_t.self */
    return tp;
}

static bool valid_ts(const struct timespec *ts)
{
    return ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

static bool valid_clock(clockid_t c)
{
    return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC;
}

/* Brief spinning before parking: a holder on another worker often lets go
 * within a few hundred nanoseconds. */
#define SPIN_TRIES 100

/*
 * A coroutine waiting on an object that stays glibc's (process-shared,
 * robust) must not block its worker: other coroutines of this process may
 * be the ones to release it.  It polls instead: for up to 200 us by
 * yielding to the other runnable coroutines (a partner on this worker
 * gets to post; one on another worker usually posts within microseconds),
 * then with sleeps that park it, doubling from 50 us (a millisecond, in
 * practice: the loop's timer resolution) to 5 ms.  The monitor (a later
 * release) will do better.
 */
static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int glibc_poll_wait(int (*try)(void *), void *obj, const struct unb__deadline *dl)
{
    long nap = 50000;
    int64_t spin_until = mono_ns() + 200000;
    for (int round = 0;; round++) {
        int rc = try(obj);
        if (rc != EBUSY && rc != EAGAIN)
            return rc;
        if (dl) {
            if (!valid_ts(&dl->at))
                return EINVAL;
            struct timespec now;
            clock_gettime(dl->clock, &now);
            if (now.tv_sec > dl->at.tv_sec ||
                (now.tv_sec == dl->at.tv_sec && now.tv_nsec >= dl->at.tv_nsec))
                return ETIMEDOUT;
        }
        if (round < 64 || mono_ns() < spin_until) {
            unb__sched_yield();
            unb__cpu_relax();
            continue;
        }
        struct timespec ts = {0, nap};
        nanosleep(&ts, NULL);
        if (nap < 5000000)
            nap *= 2;
    }
}

/* ---- mutexes ------------------------------------------------------------ */

#define MUTEX_TYPE_MASK 3
/* glibc's flags for robust, priority-inherit, priority-protect and
 * process-shared mutexes; a destroyed mutex has __kind == -1. */
#define MUTEX_GLIBC_FLAGS (16 | 32 | 64 | 128)

struct umutex {
    _Atomic int lock;
    unsigned count;
    int owner_tid; /* unused: glibc's */
    unsigned nusers;
    int kind;
    short spins, elision;
    void *owner;
    void *unused;
};
_Static_assert(sizeof(struct umutex) == sizeof(pthread_mutex_t), "mutex layout");
_Static_assert(offsetof(struct umutex, kind) ==
                   offsetof(pthread_mutex_t, __data.__kind),
               "mutex kind");

static inline struct umutex *um(pthread_mutex_t *m)
{
    return (struct umutex *)m;
}

static inline bool mutex_is_glibc(const pthread_mutex_t *m)
{
    return (((const struct umutex *)m)->kind & MUTEX_GLIBC_FLAGS) != 0;
}

static int mutex_lock_slow(struct umutex *m, const struct unb__deadline *dl)
{
    for (int i = 0; i < SPIN_TRIES; i++) {
        int expect = 0;
        if (atomic_load_explicit(&m->lock, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&m->lock, &expect, 1,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
        unb__cpu_relax();
    }
    if (dl && !valid_ts(&dl->at))
        return EINVAL; /* as glibc: checked only when it has to wait */
    for (;;) {
        if (atomic_exchange_explicit(&m->lock, 2, memory_order_acquire) == 0)
            return 0;
        struct unb__bucket *b = unb__plot_lock(m);
        if (atomic_load_explicit(&m->lock, memory_order_relaxed) != 2) {
            unb__plot_unlock(b); /* released meanwhile: try again */
            continue;
        }
        if (unb__plot_wait(b, m, 0, dl, UNB_CALL_MUTEX) == -ETIMEDOUT)
            return ETIMEDOUT;
    }
}

static int mutex_lock(pthread_mutex_t *pm, const struct unb__deadline *dl, bool try)
{
    struct umutex *m = um(pm);
    int type = m->kind & MUTEX_TYPE_MASK;
    void *me = NULL;
    if (type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK) {
        me = self_id();
        /* owner: read by any locker (is it me?) while the holder sets it,
         * so relaxed atomics (plain accesses were a data race); only the
         * holder ever finds itself there. */
        if (__atomic_load_n(&m->owner, __ATOMIC_RELAXED) == me) {
            if (type == PTHREAD_MUTEX_ERRORCHECK)
                return try ? EBUSY : EDEADLK;
            if (m->count == UINT_MAX)
                return EAGAIN;
            m->count++;
            return 0;
        }
    }
    int expect = 0;
    if (unb_unlikely(!atomic_compare_exchange_strong_explicit(
            &m->lock, &expect, 1, memory_order_acquire, memory_order_relaxed))) {
        if (try)
            return EBUSY;
        int rc = mutex_lock_slow(m, dl);
        if (rc != 0)
            return rc;
    }
    if (me) {
        __atomic_store_n(&m->owner, me, __ATOMIC_RELAXED);
        m->count = 1;
    }
    return 0;
}

static int mutex_unlock(pthread_mutex_t *pm)
{
    struct umutex *m = um(pm);
    int type = m->kind & MUTEX_TYPE_MASK;
    if (type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK) {
        if (__atomic_load_n(&m->owner, __ATOMIC_RELAXED) != self_id())
            return EPERM;
        if (--m->count != 0)
            return 0;
        __atomic_store_n(&m->owner, NULL, __ATOMIC_RELAXED);
    }
    if (atomic_exchange_explicit(&m->lock, 0, memory_order_release) == 2)
        unb__plot_wake_some(m, 1, NULL);
    return 0;
}

UNB_EXPORT int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
{
    /* glibc validates and decodes the attributes into __kind. */
    int rc = UNB_REAL(pthread_mutex_init)(m, attr);
    if (rc != 0 || mutex_is_glibc(m))
        return rc;
    struct umutex *u = um(m);
    atomic_store_explicit(&u->lock, 0, memory_order_relaxed);
    u->count = 0;
    u->owner = NULL;
    return 0;
}

UNB_EXPORT int pthread_mutex_destroy(pthread_mutex_t *m)
{
    if (mutex_is_glibc(m))
        return UNB_REAL(pthread_mutex_destroy)(m);
    if (atomic_load_explicit(&um(m)->lock, memory_order_relaxed) != 0)
        return EBUSY;
    um(m)->kind = -1; /* as glibc: later use gets EINVAL from glibc */
    return 0;
}

static int mutex_try_glibc(void *m)
{
    return UNB_REAL(pthread_mutex_trylock)(m);
}

UNB_EXPORT int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (unb_unlikely(mutex_is_glibc(m))) {
        /* Robust, priority-aware or process-shared: glibc's; a coroutine
         * polls rather than block its worker (see glibc_poll_wait). */
        if (unb__sched_parkable() && um(m)->kind != -1) {
            int rc = mutex_try_glibc(m);
            return rc == EBUSY ? glibc_poll_wait(mutex_try_glibc, m, NULL) : rc;
        }
        return UNB_REAL(pthread_mutex_lock)(m);
    }
    return mutex_lock(m, NULL, false);
}

UNB_EXPORT int pthread_mutex_trylock(pthread_mutex_t *m)
{
    if (unb_unlikely(mutex_is_glibc(m)))
        return UNB_REAL(pthread_mutex_trylock)(m);
    return mutex_lock(m, NULL, true);
}

UNB_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                                       const struct timespec *at)
{
    if (unb_unlikely(mutex_is_glibc(m)))
        return UNB_REAL(pthread_mutex_clocklock)(m, clock, at);
    if (!valid_clock(clock))
        return EINVAL;
    struct unb__deadline dl = {.clock = clock, .at = *at};
    return mutex_lock(m, &dl, false);
}

UNB_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *at)
{
    if (unb_unlikely(mutex_is_glibc(m)))
        return UNB_REAL(pthread_mutex_timedlock)(m, at);
    struct unb__deadline dl = {.clock = CLOCK_REALTIME, .at = *at};
    return mutex_lock(m, &dl, false);
}

UNB_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m)
{
    if (unb_unlikely(mutex_is_glibc(m)))
        return UNB_REAL(pthread_mutex_unlock)(m);
    return mutex_unlock(m);
}

/* ---- condition variables ------------------------------------------------ */

#define COND_SHARED 1u
#define COND_MONOTONIC 2u

static inline _Atomic uint32_t *cond_seq(pthread_cond_t *c)
{
    return (_Atomic uint32_t *)&c->__data.__wseq;
}

static inline bool cond_is_glibc(const pthread_cond_t *c)
{
    return (c->__data.__wrefs & COND_SHARED) != 0;
}

UNB_EXPORT int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *attr)
{
    /* glibc records the clock and process-shared flag in __wrefs. */
    return UNB_REAL(pthread_cond_init)(c, attr);
}

UNB_EXPORT int pthread_cond_destroy(pthread_cond_t *c)
{
    if (cond_is_glibc(c))
        return UNB_REAL(pthread_cond_destroy)(c);
    return 0;
}

/*
 * Cancellation of a coroutine waiting on a condition variable or a
 * semaphore (sched.c, unb__sched_cancel): with addr's bucket locked, the
 * waiter publishes addr and then looks for a pending cancel; the canceller
 * sets the cancel and then wakes every waiter on a published address,
 * which takes the same bucket lock.  Returns whether to skip the wait.
 *
 * A plain thread (threads native, or a program linking -lunblock) is
 * cancelled by glibc, whose SIGCANCEL handler ends glibc's own waits but
 * restarts our futex wait (plot.c): pthread_cancel of such a thread
 * waited for ever.  So the same protocol runs on the thread's TLS: after
 * glibc's pthread_cancel, unb__sync_thread_cancel marks the thread asked
 * and wakes the waiters on the address it published; the wait comes back
 * as a spurious wake-up, and the cancellation point after it
 * (cancel_point) calls glibc's pthread_testcancel, which acts.  A thread
 * with cancellation disabled waits on; a later cancellation point acts.
 */
static UNB_TLS _Atomic(const void *) thread_cancel_addr;
static UNB_TLS _Atomic bool thread_cancel_asked;

/* glibc's cancellation state of the calling plain thread: enabled? */
static bool thread_cancel_enabled(void)
{
    int old;
    UNB_REAL(pthread_setcancelstate)(PTHREAD_CANCEL_DISABLE, &old);
    UNB_REAL(pthread_setcancelstate)(old, NULL);
    return old == PTHREAD_CANCEL_ENABLE;
}

/* Will the caller's next cancellation point act? */
static bool cancel_due(void)
{
    struct unb_coro *co = unb__sched_current();
    if (co)
        return atomic_load(&co->cancel_pending) && !co->cancel_off;
    return atomic_load(&thread_cancel_asked) && thread_cancel_enabled();
}

static bool cancel_before_wait(const void *addr)
{
    struct unb_coro *co = unb__sched_current();
    if (co)
        atomic_store(&co->cancel_addr, addr);
    else
        atomic_store(&thread_cancel_addr, addr);
    return cancel_due();
}

static void cancel_after_wait(void)
{
    struct unb_coro *co = unb__sched_current();
    if (co)
        atomic_store_explicit(&co->cancel_addr, NULL, memory_order_relaxed);
    else
        atomic_store_explicit(&thread_cancel_addr, NULL, memory_order_relaxed);
}

/* A cancellation point of the waits here, for a coroutine or a thread. */
static void cancel_point(void)
{
    unb__cancel_point();
    if (unb_unlikely(atomic_load_explicit(&thread_cancel_asked, memory_order_relaxed)) &&
        !unb__sched_current())
        UNB_REAL(pthread_testcancel)();
}

#if defined(__x86_64__)
/* The address in thread t of the calling thread's initial-exec TLS
 * variable *mine: glibc's pthread_t is the thread pointer here, and such
 * a variable lies at the same offset from it in every thread (as errno
 * does, common.h). */
static void *tls_of(pthread_t t, void *mine)
{
    char *tp;
    __asm__ volatile("movq %%fs:0, %0" : "=r"(tp));
    return (char *)t + ((char *)mine - tp);
}

void unb__sync_thread_cancel(pthread_t t)
{
    _Atomic bool *asked = tls_of(t, (void *)&thread_cancel_asked);
    _Atomic(const void *) *addr = tls_of(t, (void *)&thread_cancel_addr);
    atomic_store(asked, true);
    const void *a = atomic_load(addr);
    if (a)
        unb__plot_wake_some(a, UINT_MAX, NULL);
}
#else
void unb__sync_thread_cancel(pthread_t t)
{
    (void)t; /* another TLS layout: a wait of ours is no cancellation point */
}
#endif

static int cond_wait(pthread_cond_t *c, pthread_mutex_t *m, const struct unb__deadline *dl)
{
    cancel_point(); /* a cancellation point: acts with the mutex held */
    if (dl && !valid_ts(&dl->at))
        return EINVAL;
    /* The sequence read under the mutex: a signal after the unlock changes
     * it, and the check under the bucket lock sees that (a spurious
     * wake-up, which POSIX allows, rather than a lost one). */
    uint32_t seq = atomic_load_explicit(cond_seq(c), memory_order_relaxed);
    int rc = pthread_mutex_unlock(m);
    if (rc != 0)
        return rc;
    struct unb__bucket *b = unb__plot_lock(c);
    int w = 0;
    if (!cancel_before_wait(c) &&
        atomic_load_explicit(cond_seq(c), memory_order_relaxed) == seq)
        w = unb__plot_wait(b, c, 0, dl, UNB_CALL_COND);
    else
        unb__plot_unlock(b);
    cancel_after_wait();
    /* Relock without a deadline, as natively. */
    rc = pthread_mutex_lock(m);
    if (rc != 0)
        return rc;
    cancel_point(); /* cancelled while waiting: the handlers find it locked */
    return w == -ETIMEDOUT ? ETIMEDOUT : 0;
}

UNB_EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    if (unb_unlikely(cond_is_glibc(c)))
        return UNB_REAL(pthread_cond_wait)(c, m);
    return cond_wait(c, m, NULL);
}

UNB_EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                      const struct timespec *at)
{
    if (unb_unlikely(cond_is_glibc(c)))
        return UNB_REAL(pthread_cond_timedwait)(c, m, at);
    clockid_t clock =
        (c->__data.__wrefs & COND_MONOTONIC) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
    struct unb__deadline dl = {.clock = clock, .at = *at};
    return cond_wait(c, m, &dl);
}

UNB_EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m,
                                      clockid_t clock, const struct timespec *at)
{
    if (unb_unlikely(cond_is_glibc(c)))
        return UNB_REAL(pthread_cond_clockwait)(c, m, clock, at);
    if (!valid_clock(clock))
        return EINVAL;
    struct unb__deadline dl = {.clock = clock, .at = *at};
    return cond_wait(c, m, &dl);
}

UNB_EXPORT int pthread_cond_signal(pthread_cond_t *c)
{
    if (unb_unlikely(cond_is_glibc(c)))
        return UNB_REAL(pthread_cond_signal)(c);
    atomic_fetch_add_explicit(cond_seq(c), 1, memory_order_seq_cst);
    unb__plot_wake_some(c, 1, NULL);
    return 0;
}

UNB_EXPORT int pthread_cond_broadcast(pthread_cond_t *c)
{
    if (unb_unlikely(cond_is_glibc(c)))
        return UNB_REAL(pthread_cond_broadcast)(c);
    atomic_fetch_add_explicit(cond_seq(c), 1, memory_order_seq_cst);
    unb__plot_wake_some(c, UINT_MAX, NULL);
    return 0;
}

/* ---- rwlocks ------------------------------------------------------------ */

/*
 * State word: WRITER while write-locked, WAITERS while someone may be
 * parked, and the number of readers below.  Readers are preferred, as by
 * glibc's default kind: a reader gets in whenever no writer holds the
 * lock, so a thread may take a read lock recursively.  Waiters are all
 * woken when the lock becomes free, and those that lose park again.
 *
 * PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP (glibc's __flags 2, set by
 * pthread_rwlockattr_setkind_np or its static initialiser) prefers
 * writers, as glibc does: while a writer waits, a new reader waits too
 * (tryrdlock: EBUSY), so a reader taking its read lock again then
 * deadlocks, as natively.  The waiting writers are counted in __writers
 * (glibc's, unused by us otherwise) from the writer's first wait until it
 * gets the lock or times out; a time-out that takes the count to zero
 * wakes the readers it held back.
 */
#define RW_WRITER 0x80000000u
#define RW_WAITERS 0x40000000u
#define RW_READERS 0x3fffffffu

static inline _Atomic uint32_t *rw_state(pthread_rwlock_t *l)
{
    return (_Atomic uint32_t *)&l->__data.__readers;
}

static inline void **rw_writer(pthread_rwlock_t *l)
{
    return (void **)&l->__data.__pad2;
}

static inline bool rw_is_glibc(const pthread_rwlock_t *l)
{
    return l->__data.__shared != 0;
}

static inline _Atomic uint32_t *rw_wwait(pthread_rwlock_t *l)
{
    return (_Atomic uint32_t *)&l->__data.__writers;
}

static inline bool rw_prefer_writer(const pthread_rwlock_t *l)
{
    return l->__data.__flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
}

/* With the state s seen, must this caller wait? */
static inline bool rw_blocked(pthread_rwlock_t *l, uint32_t s, bool write)
{
    if (write)
        return (s & (RW_WRITER | RW_READERS)) != 0;
    return (s & RW_WRITER) != 0 ||
           (rw_prefer_writer(l) &&
            atomic_load_explicit(rw_wwait(l), memory_order_relaxed) != 0);
}

/* A writer of a writer-preferring lock stops waiting. */
static void rw_unwait(pthread_rwlock_t *l, bool acquired)
{
    if (atomic_fetch_sub_explicit(rw_wwait(l), 1, memory_order_relaxed) == 1 &&
        !acquired)
        unb__plot_wake_some(l, UINT_MAX, NULL); /* the readers held back */
}

static int rw_lock(pthread_rwlock_t *l, bool write, bool try,
                   const struct unb__deadline *dl)
{
    _Atomic uint32_t *st = rw_state(l);
    void *me = self_id();
    if (dl && !valid_ts(&dl->at))
        return EINVAL; /* glibc checks first */
    bool counted = false; /* a writer counted in rw_wwait */
    for (;;) {
        uint32_t s = atomic_load_explicit(st, memory_order_relaxed);
        if (!rw_blocked(l, s, write)) {
            uint32_t n = write ? s | RW_WRITER : s + 1;
            if (!write && (s & RW_READERS) == RW_READERS)
                return EAGAIN; /* too many readers */
            if (atomic_compare_exchange_weak_explicit(st, &s, n, memory_order_acquire,
                                                      memory_order_relaxed)) {
                if (write) /* read racily below: relaxed atomics */
                    __atomic_store_n(rw_writer(l), me, __ATOMIC_RELAXED);
                if (counted)
                    rw_unwait(l, true);
                return 0;
            }
            continue;
        }
        if (try)
            return EBUSY;
        if ((s & RW_WRITER) && __atomic_load_n(rw_writer(l), __ATOMIC_RELAXED) == me)
            return EDEADLK;
        if (write && !counted && rw_prefer_writer(l)) {
            /* Hold new readers back from now on (they check under the
             * bucket lock before they park, and are woken by the unlock
             * that lets this writer in, or by rw_unwait). */
            atomic_fetch_add_explicit(rw_wwait(l), 1, memory_order_relaxed);
            counted = true;
        }
        struct unb__bucket *b = unb__plot_lock(l);
        s = atomic_load_explicit(st, memory_order_relaxed);
        if (!rw_blocked(l, s, write) ||
            (!(s & RW_WAITERS) &&
             !atomic_compare_exchange_strong_explicit(st, &s, s | RW_WAITERS,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))) {
            unb__plot_unlock(b); /* it changed: look again */
            continue;
        }
        if (unb__plot_wait(b, l, write, dl, write ? UNB_CALL_RWLOCK_WR : UNB_CALL_RWLOCK_RD) ==
            -ETIMEDOUT) {
            if (counted)
                rw_unwait(l, false);
            return ETIMEDOUT;
        }
    }
}

UNB_EXPORT int pthread_rwlock_init(pthread_rwlock_t *l, const pthread_rwlockattr_t *a)
{
    return UNB_REAL(pthread_rwlock_init)(l, a); /* zeroes, records kind, shared */
}

UNB_EXPORT int pthread_rwlock_destroy(pthread_rwlock_t *l)
{
    if (rw_is_glibc(l))
        return UNB_REAL(pthread_rwlock_destroy)(l);
    return 0;
}

#define RW_DISPATCH(real_call)                                                         \
    do {                                                                               \
        if (unb_unlikely(rw_is_glibc(l)))                                              \
            return real_call;                                                          \
    } while (0)

UNB_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    RW_DISPATCH(UNB_REAL(pthread_rwlock_rdlock)(l));
    return rw_lock(l, false, false, NULL);
}

UNB_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    RW_DISPATCH(UNB_REAL(pthread_rwlock_wrlock)(l));
    return rw_lock(l, true, false, NULL);
}

UNB_EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t *l)
{
    RW_DISPATCH(UNB_REAL(pthread_rwlock_tryrdlock)(l));
    return rw_lock(l, false, true, NULL);
}

UNB_EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t *l)
{
    RW_DISPATCH(UNB_REAL(pthread_rwlock_trywrlock)(l));
    return rw_lock(l, true, true, NULL);
}

UNB_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *l, const struct timespec *at)
{
    RW_DISPATCH(UNB_REAL(pthread_rwlock_timedrdlock)(l, at));
    struct unb__deadline dl = {.clock = CLOCK_REALTIME, .at = *at};
    return rw_lock(l, false, false, &dl);
}

UNB_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *l, const struct timespec *at)
{
    RW_DISPATCH(UNB_REAL(pthread_rwlock_timedwrlock)(l, at));
    struct unb__deadline dl = {.clock = CLOCK_REALTIME, .at = *at};
    return rw_lock(l, true, false, &dl);
}

UNB_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *l, clockid_t clock,
                                          const struct timespec *at)
{
    RW_DISPATCH(UNB_REAL(pthread_rwlock_clockrdlock)(l, clock, at));
    if (!valid_clock(clock))
        return EINVAL;
    struct unb__deadline dl = {.clock = clock, .at = *at};
    return rw_lock(l, false, false, &dl);
}

UNB_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *l, clockid_t clock,
                                          const struct timespec *at)
{
    RW_DISPATCH(UNB_REAL(pthread_rwlock_clockwrlock)(l, clock, at));
    if (!valid_clock(clock))
        return EINVAL;
    struct unb__deadline dl = {.clock = clock, .at = *at};
    return rw_lock(l, true, false, &dl);
}

UNB_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
    RW_DISPATCH(UNB_REAL(pthread_rwlock_unlock)(l));
    _Atomic uint32_t *st = rw_state(l);
    uint32_t s = atomic_load_explicit(st, memory_order_relaxed), n;
    do {
        if (s & RW_WRITER)
            n = s & ~RW_WRITER;
        else if (s & RW_READERS)
            n = s - 1;
        else
            return EPERM; /* not locked */
    } while (!atomic_compare_exchange_weak_explicit(st, &s, n, memory_order_release,
                                                    memory_order_relaxed));
    if ((s & RW_WRITER))
        /* After the release: only we match it.  Atomic, as other lockers
         * read it at any time (a plain store here was a data race). */
        __atomic_store_n(rw_writer(l), NULL, __ATOMIC_RELAXED);
    if ((n & RW_WAITERS) && (n & (RW_WRITER | RW_READERS)) == 0) {
        struct unb__bucket *b = unb__plot_lock(l);
        atomic_fetch_and_explicit(st, ~RW_WAITERS, memory_order_relaxed);
        unb__plot_unlock(b);
        unb__plot_wake_some(l, UINT_MAX, NULL);
    }
    return 0;
}

/* ---- semaphores ----------------------------------------------------------- */

struct usem {
    _Atomic uint64_t data; /* value | waiters << 32 */
    int private;           /* glibc's futex flag: 0 private, 128 process-shared */
};
_Static_assert(sizeof(struct usem) <= sizeof(sem_t), "sem layout");

#define SEM_WAITER ((uint64_t)1 << 32)
#define SEM_VALUE(d) ((uint32_t)(d))

static inline struct usem *us(sem_t *s)
{
    return (struct usem *)s;
}

static inline bool sem_is_glibc(sem_t *s)
{
    return us(s)->private != 0;
}

static int sem_try_glibc(void *s)
{
    return UNB_REAL(sem_trywait)(s) == 0 ? 0 : unb_errno;
}

/* sem_*wait on a process-shared semaphore: glibc's, polled in a coroutine. */
static int sem_wait_glibc(sem_t *s, const struct unb__deadline *dl)
{
    if (dl && !valid_ts(&dl->at)) {
        unb_errno = EINVAL;
        return -1;
    }
    if (!unb__sched_parkable()) {
        if (!dl)
            return UNB_REAL(sem_wait)(s);
        return UNB_REAL(sem_clockwait)(s, dl->clock, &dl->at);
    }
    int rc = glibc_poll_wait(sem_try_glibc, s, dl);
    if (rc == 0)
        return 0;
    unb_errno = rc;
    return -1;
}

static bool sem_trytake(struct usem *s)
{
    uint64_t d = atomic_load_explicit(&s->data, memory_order_relaxed);
    while (SEM_VALUE(d) > 0)
        if (atomic_compare_exchange_weak_explicit(&s->data, &d, d - 1,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    return false;
}

static int sem_wait_dl(sem_t *sem, const struct unb__deadline *dl)
{
    struct usem *s = us(sem);
    if (dl && !valid_ts(&dl->at)) { /* glibc checks first */
        unb_errno = EINVAL;
        return -1;
    }
    cancel_point();
    if (sem_trytake(s))
        return 0;
    for (;;) {
        struct unb__bucket *b = unb__plot_lock(s);
        /* Counting ourselves and looking at the value is one atomic step
         * on one word, and so is a post's increment and look at waiters:
         * one of the two sees the other. */
        uint64_t d = atomic_fetch_add_explicit(&s->data, SEM_WAITER, memory_order_seq_cst);
        int rc = 0;
        if (SEM_VALUE(d) == 0 && !cancel_before_wait(s))
            rc = unb__plot_wait_interruptible(b, s, 0, dl, UNB_CALL_SEM);
        else
            unb__plot_unlock(b);
        cancel_after_wait();
        d = atomic_fetch_sub_explicit(&s->data, SEM_WAITER, memory_order_relaxed);
        /* A cancelled wait takes nothing; a post's wake-up that came to
         * us goes on to another waiter (the canceller woke those waiting
         * when it came, but not if we had left the wait by then). */
        if (SEM_VALUE(d) > 0 && rc != -EINTR && cancel_due())
            unb__plot_wake_some(s, 1, NULL);
        cancel_point();
        if (rc == -EINTR) {
            /* A signal handler without SA_RESTART ran: EINTR, as glibc's
             * futex wait.  A post's wake-up may have come to us too: pass
             * it on to another waiter. */
            if (SEM_VALUE(d) > 0)
                unb__plot_wake_some(s, 1, NULL);
            unb_errno = EINTR;
            return -1;
        }
        if (sem_trytake(s))
            return 0;
        if (rc == -ETIMEDOUT) {
            unb_errno = ETIMEDOUT;
            return -1;
        }
    }
}

UNB_EXPORT int sem_wait(sem_t *s)
{
    if (unb_unlikely(sem_is_glibc(s)))
        return sem_wait_glibc(s, NULL);
    return sem_wait_dl(s, NULL);
}

UNB_EXPORT int sem_trywait(sem_t *s)
{
    if (unb_unlikely(sem_is_glibc(s)))
        return UNB_REAL(sem_trywait)(s);
    if (sem_trytake(us(s)))
        return 0;
    unb_errno = EAGAIN;
    return -1;
}

UNB_EXPORT int sem_timedwait(sem_t *s, const struct timespec *at)
{
    struct unb__deadline dl = {.clock = CLOCK_REALTIME, .at = *at};
    if (unb_unlikely(sem_is_glibc(s)))
        return sem_wait_glibc(s, &dl);
    return sem_wait_dl(s, &dl);
}

UNB_EXPORT int sem_clockwait(sem_t *s, clockid_t clock, const struct timespec *at)
{
    if (!valid_clock(clock)) {
        unb_errno = EINVAL;
        return -1;
    }
    struct unb__deadline dl = {.clock = clock, .at = *at};
    if (unb_unlikely(sem_is_glibc(s)))
        return sem_wait_glibc(s, &dl);
    return sem_wait_dl(s, &dl);
}

UNB_EXPORT int sem_post(sem_t *sem)
{
    if (unb_unlikely(sem_is_glibc(sem)))
        return UNB_REAL(sem_post)(sem);
    struct usem *s = us(sem);
    uint64_t d = atomic_load_explicit(&s->data, memory_order_relaxed);
    do {
        if (SEM_VALUE(d) == SEM_VALUE_MAX) {
            unb_errno = EOVERFLOW;
            return -1;
        }
    } while (!atomic_compare_exchange_weak_explicit(&s->data, &d, d + 1,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
    if (d >> 32)
        unb__plot_wake_some(s, 1, NULL);
    return 0;
}

/* ---- barriers ------------------------------------------------------------- */

struct ubarrier {
    unsigned count;   /* threads per round */
    unsigned arrived; /* in this round, under the bucket lock */
    unsigned round;
    int shared; /* where glibc keeps its futex flag (0 or 128): ours marks it */
};
_Static_assert(sizeof(struct ubarrier) <= sizeof(pthread_barrier_t), "barrier layout");
#define BARRIER_OURS 0x756e62 /* "unb": neither of glibc's values */

static inline struct ubarrier *ub(pthread_barrier_t *b)
{
    return (struct ubarrier *)b;
}

UNB_EXPORT int pthread_barrier_init(pthread_barrier_t *b, const pthread_barrierattr_t *a,
                                    unsigned count)
{
    int shared = PTHREAD_PROCESS_PRIVATE;
    if (a)
        pthread_barrierattr_getpshared(a, &shared);
    if (count == 0 || count > INT_MAX || shared != PTHREAD_PROCESS_PRIVATE)
        return UNB_REAL(pthread_barrier_init)(b, a, count);
    *ub(b) = (struct ubarrier){.count = count, .shared = BARRIER_OURS};
    return 0;
}

UNB_EXPORT int pthread_barrier_destroy(pthread_barrier_t *b)
{
    if (ub(b)->shared != BARRIER_OURS)
        return UNB_REAL(pthread_barrier_destroy)(b);
    struct unb__bucket *bk = unb__plot_lock(b);
    bool busy = ub(b)->arrived != 0;
    unb__plot_unlock(bk);
    return busy ? EBUSY : 0;
}

UNB_EXPORT int pthread_barrier_wait(pthread_barrier_t *b)
{
    struct ubarrier *u = ub(b);
    if (u->shared != BARRIER_OURS)
        return UNB_REAL(pthread_barrier_wait)(b);
    struct unb__bucket *bk = unb__plot_lock(b);
    if (++u->arrived < u->count) {
        /* Only the last arrival wakes us, and the lot has no spurious
         * wake-ups. */
        unb__plot_wait(bk, b, 0, NULL, UNB_CALL_BARRIER);
        return 0;
    }
    u->arrived = 0;
    u->round++;
    unb__plot_unlock(bk);
    unb__plot_wake_some(b, UINT_MAX, NULL);
    return PTHREAD_BARRIER_SERIAL_THREAD;
}

/* ---- once ------------------------------------------------------------------ */

enum { ONCE_NEW, ONCE_RUNNING, ONCE_DONE };

UNB_EXPORT int pthread_once(pthread_once_t *o, void (*init)(void))
{
    _Atomic int *st = (_Atomic int *)o;
    if (atomic_load_explicit(st, memory_order_acquire) == ONCE_DONE)
        return 0;
    int expect = ONCE_NEW;
    if (atomic_compare_exchange_strong_explicit(st, &expect, ONCE_RUNNING,
                                                memory_order_acquire,
                                                memory_order_acquire)) {
        init();
        atomic_store_explicit(st, ONCE_DONE, memory_order_release);
        unb__plot_wake_some(o, UINT_MAX, NULL);
        return 0;
    }
    for (;;) {
        struct unb__bucket *b = unb__plot_lock(o);
        if (atomic_load_explicit(st, memory_order_acquire) == ONCE_DONE) {
            unb__plot_unlock(b);
            return 0;
        }
        unb__plot_wait(b, o, 0, NULL, UNB_CALL_ONCE);
    }
}
