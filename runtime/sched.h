/*
 * The scheduler's interface to the rest of the runtime and to the hooks.
 * The design is described at the top of sched.c.
 */
#ifndef UNB_SCHED_H
#define UNB_SCHED_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "ctx.h"
#include "sanitize.h"
#include "stack.h"

struct unb__worker;

/*
 * A coroutine.  The struct lives at the top of the coroutine's own stack
 * mapping, so one mmap holds both and a pooled stack is a pooled coroutine.
 */
struct unb_coro {
    struct unb__ctx ctx;   /* registers while not running */
    struct unb_coro *next; /* intrusive link: inject queue, pool */
    void *(*fn)(void *);   /* entry and its argument */
    void *arg;
    void *result;               /* fn's return value, once done */
    struct unb__stack stack;    /* the mapping this struct lives in */
    struct unb__waiter *joiner; /* who waits in unb_join, under lock */
    uint64_t id;                /* 1, 2, ... in spawn order */
    _Atomic uint8_t lock;       /* guards done/detached/joiner */
    uint8_t done;               /* fn returned and the stack is free */
    uint8_t detached;           /* unb_detach was called */
    int saved_errno;            /* errno while switched out */
#ifdef UNB_ASAN
    void *asan_fake_stack;
#endif
#ifdef UNB_TSAN
    void *tsan_fiber;
#endif
};

/*
 * Something waiting to be woken: a parked coroutine, or a plain thread
 * sleeping on a futex.  Lives on the waiter's stack.
 */
struct unb__waiter {
    struct unb_coro *co;    /* the coroutine, or NULL for a thread */
    _Atomic uint32_t woken; /* thread waiters: 0 until woken */
};

/*
 * Thread-local state.  The current coroutine and worker belong to the OS
 * thread, and a coroutine may resume on another thread after a park, but
 * the compiler assumes a thread's TLS address never changes within a
 * function and may keep it in a register across the switch.  So reads
 * that may follow a park go through UNB_TLS_FRESH: an asm load the compiler
 * can neither merge nor move (one GOT load and one %fs-relative load, as
 * the initial-exec model does anyway).
 */
extern UNB_TLS struct unb__worker *unb__tls_worker;
extern UNB_TLS struct unb_coro *unb__tls_cur;

#define UNB_TLS_FRESH(var)                                                             \
    ({                                                                                 \
        __typeof__(var) v_;                                                            \
        __asm__ volatile("movq " #var "@gottpoff(%%rip), %0\n\tmovq %%fs:(%0), %0"     \
                         : "=r"(v_));                                                  \
        v_;                                                                            \
    })

/* The coroutine running on this thread, or NULL. */
static inline struct unb_coro *unb__sched_current(void)
{
    return UNB_TLS_FRESH(unb__tls_cur);
}

/* The worker the calling thread runs, or NULL.  Its loop and queue may be
 * touched only until the caller next parks. */
static inline struct unb__worker *unb__sched_worker(void)
{
    return UNB_TLS_FRESH(unb__tls_worker);
}

/* The stack of the running coroutine, or NULL; async-signal-safe. */
const struct unb__stack *unb__sched_current_stack(void);

/* The worker's libev loop: only its own thread may touch it. */
struct ev_loop *unb__worker_loop(struct unb__worker *w);

/* Coroutines parked on watchers of w's loop: the scheduler polls the loop
 * while this is nonzero.  Owner thread only. */
void unb__worker_waiting_add(struct unb__worker *w, int delta);

/* Starts the runtime once; 0 or a negative errno. */
int unb__sched_start(void);

/*
 * Parks the calling coroutine.  Once it is off its stack and its registers
 * are saved, after(arg) runs on the same thread (so after may release the
 * lock under which the coroutine made itself findable by a waker: nobody
 * can resume it before that).  Returns when unb__sched_ready() resumes it,
 * possibly on another worker.  after must not park or touch the parked
 * coroutine's stack.
 */
void unb__sched_park(void (*after)(void *), void *arg);

/* Makes a parked coroutine runnable.  Any thread, any context. */
void unb__sched_ready(struct unb_coro *co);

/* Lets the other runnable coroutines on this worker run first. */
void unb__sched_yield(void);

/* Initialises w for the calling context (coroutine or thread). */
void unb__waiter_init(struct unb__waiter *w);

/* Waits until unb__waiter_wake(w).  *lock (a spinlock) is held on entry
 * and released once the caller is parked or about to sleep. */
void unb__waiter_wait(struct unb__waiter *w, _Atomic uint8_t *lock);

void unb__waiter_wake(struct unb__waiter *w);

/*
 * A message to a worker, run on its thread by its scheduler: the only way
 * to touch another worker's loop.  The message memory must stay valid
 * until fn has run.
 */
struct unb__msg {
    struct unb__msg *next;
    void (*fn)(struct unb__worker *w, struct unb__msg *m);
};

void unb__worker_post(struct unb__worker *w, struct unb__msg *m);

/*
 * Moves the calling coroutine to worker `to`: it parks and is made
 * runnable by `to`'s own thread, so that it can then touch `to`'s loop.
 * Costs a mailbox message (a syscall only if `to` sleeps).
 */
void unb__sched_migrate(struct unb__worker *to);

/* The machinery behind the public API (api.c); negative errno returns. */
int unb__sched_spawn(void *(*fn)(void *), void *arg, struct unb_coro **out);
int unb__sched_join(struct unb_coro *co, void **result);
int unb__sched_detach(struct unb_coro *co);
struct unb_stats;
void unb__sched_stats(struct unb_stats *st);

/*
 * Async-signal-safe: a program's signal handler just ran on this thread.
 * restart: the handler was installed with SA_RESTART.  The runtime picks
 * the parked coroutine the signal interrupts (see intr.h).
 */
void unb__sched_signal_arrived(bool restart);

#endif
