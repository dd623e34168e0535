/*
 * The scheduler's interface to the rest of the runtime and to the hooks.
 * The design is described at the top of sched.c.
 */
#ifndef UNB_SCHED_H
#define UNB_SCHED_H

#include <ev.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "calls.h"
#include "common.h"
#include "ctx.h"
#include "sanitize.h"
#include "stack.h"

struct unb__worker;
struct unb__m;

/*
 * A message to a worker, run on its thread by its scheduler: the only way
 * to touch another worker's loop.  The message memory must stay valid
 * until fn has run.
 */
struct unb__msg {
    struct unb__msg *next;
    void (*fn)(struct unb__worker *w, struct unb__msg *m);
};

/*
 * A coroutine.  The struct lives at the top of the coroutine's own stack
 * mapping, so one mmap holds both and a pooled stack is a pooled coroutine.
 */
/* The first word of every coroutine: tells a coroutine's pthread_t from a
 * real thread's, whose first word points to itself (glibc's tcbhead_t).
 * Not a canonical address, so never a pointer. */
#define UNB_CORO_MAGIC 0x21b10c6e75626c6bull

struct unb_coro {
    uint64_t magic;        /* UNB_CORO_MAGIC while the coroutine exists */
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
    uint8_t pinned;             /* parks block the thread (see unb__sched_pin) */
    uint8_t exiting;            /* in unb__sched_exit: no more key destructors */
    uint8_t pthread;            /* made by pthread_create (or is main) */
    void *tsd;                  /* the hook layer's per-thread data (keys) */
    void *cleanup;              /* pthread_cleanup_push buffers, innermost
                                   first (libunblock/thread.c) */
    void *unwinding;            /* pthread_exit's unwind, while it runs */
    void *tls_dtors;            /* C++ thread_local destructors (thread.c) */
    uint64_t sigmask;           /* its signal mask (runtime/sigmask.h) */
    _Atomic uint64_t sigpending; /* signals sent to it, not yet delivered */
    uint8_t sigclass;           /* the mask's class there */
    _Atomic uint8_t cancel_pending; /* pthread_cancel asked (thread.c) */
    uint8_t cancel_off;         /* UNB_CANCEL_*: no cancellation now */
    uint8_t cancel_async;       /* PTHREAD_CANCEL_ASYNCHRONOUS (as deferred) */
    struct unb__intr *intr;     /* its interruptible park, under `lock` */
    _Atomic(const void *) cancel_addr; /* the condition variable or semaphore
                                          it waits on, for a canceller */
    char name[16];              /* pthread_setname_np */
    struct unb__worker *home;   /* where it first ran, and runs from then on */
    struct unb__msg ready_msg;  /* a wake-up sent home (sched.c, "Affinity") */
    /* For the dump (sched.c, "The dump"): what it is doing, and what it
     * waits in while parked.  Written by whoever moves it, read racily. */
    _Atomic uint8_t state;     /* UNB_CO_* */
    uint8_t wait_call;         /* enum unb__call of its last park */
    int64_t wait_obj;          /* the call's object (calls.h) */
    double wait_since;         /* its worker's loop time at the park */
    /* The thread that last ran it; release/acquire: a signaller reads it
     * and then the thread's fields (sched.c, unb__sched_signal_coro). */
    _Atomic(struct unb__m *) on;
    /* The program's static TLS while switched out (runtime/tls.h): the
     * save area (above the struct, in its mapping), the thread pointer of
     * the thread that saved it, and the thread that last loaded it. */
    void *tls;
    uintptr_t tls_tp;
    struct unb__m *tls_on;
    bool registered;           /* in the registry (a dump signal is set) */
    struct unb_coro *reg_prev; /* the registry of live coroutines */
    struct unb_coro *reg_next;
#ifdef UNB_ASAN
    void *asan_fake_stack;
#endif
#ifdef UNB_TSAN
    void *tsan_fiber;
#endif
};

/* A coroutine's state, as the dump shows it. */
enum { UNB_CO_NEW, UNB_CO_READY, UNB_CO_RUNNING, UNB_CO_PARKED, UNB_CO_DONE };

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

/*
 * Runtime sections (sched.c, "The monitor").  A thread that runs a worker
 * may lose it to a spare thread while it is outside the runtime: in the
 * program's own code, or in a call marked as blocking.  So code that
 * touches the worker (its queues, its loop, its caches) does so only
 * between unb__rt_enter and unb__rt_leave, which nest.  unb__rt_enter
 * returns the worker the calling thread now runs: if the worker was handed
 * away, the coroutine first moves to the thread that runs it now (a pinned
 * one cannot move: it gets NULL and goes on as a plain thread would).
 */
struct unb__m_state {
    _Atomic uint32_t depth;     /* > 0: inside the runtime */
    _Atomic uint32_t take;      /* UNB_TAKE_*: set by the monitor */
    _Atomic(const char *) blocking; /* inside this call marked as blocking */
    _Atomic uint32_t beat;      /* progress: switches to another coroutine */
    _Atomic uint32_t yield_req; /* the monitor asks the running coroutine to
                                   yield at the end of its blocking call */
    uint64_t due_cyc; /* the cycle count at which a timer of the worker's is
                         due (its soonest park deadline), or 0; this thread's
                         alone (see unb__rt_block_end) */
};
enum { UNB_TAKE_NONE, UNB_TAKE_PENDING, UNB_TAKE_DONE };

extern UNB_TLS struct unb__m_state *unb__tls_m;
/* True when the monitor cannot fence other threads (no membarrier): the
 * section's entry then pays for the fence itself. */
extern bool unb__rt_fence;

void unb__rt_reclaim(void);
void unb__rt_yield_requested(void);

static inline void unb__rt_fence_enter(void)
{
    if (unb_unlikely(unb__rt_fence))
        atomic_thread_fence(memory_order_seq_cst);
    else
        atomic_signal_fence(memory_order_seq_cst);
}

static inline struct unb__worker *unb__rt_enter(void)
{
    struct unb__m_state *m = UNB_TLS_FRESH(unb__tls_m);
    if (!m)
        return NULL;
    atomic_store_explicit(&m->depth,
                          atomic_load_explicit(&m->depth, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    unb__rt_fence_enter();
    if (unb_unlikely(atomic_load_explicit(&m->take, memory_order_acquire) !=
                     UNB_TAKE_NONE))
        unb__rt_reclaim();
    return UNB_TLS_FRESH(unb__tls_worker);
}

static inline void unb__rt_leave(void)
{
    struct unb__m_state *m = UNB_TLS_FRESH(unb__tls_m);
    if (m)
        atomic_store_explicit(&m->depth,
                              atomic_load_explicit(&m->depth, memory_order_relaxed) - 1,
                              memory_order_release);
}

/* Has the worker's soonest timer come due?  Then a marked call yields
 * before it starts and when it ends, so that a loop of short calls
 * (page-cached reads, the resolver) lets a timer fire on time, without
 * waiting for the monitor to ask, and a long call does not start with a
 * timer already due behind it. */
static inline bool unb__rt_timer_due(const struct unb__m_state *m)
{
#if defined(__x86_64__)
    return m->due_cyc != 0 && __builtin_ia32_rdtsc() >= m->due_cyc;
#else
    (void)m;
    return false;
#endif
}

/* Outside the runtime, between calls: a timer is due, let it fire. */
static inline void unb__rt_yield_if_due(struct unb__m_state *m)
{
    if (unb_unlikely(unb__rt_timer_due(m))) {
        m->due_cyc = 0;
        unb__rt_yield_requested();
    }
}

/*
 * Brackets a call that may block the thread for long (a file read, the
 * resolver, a lock, a wait): while inside, the monitor hands the worker
 * to a spare thread at its first look if the thread sleeps in the kernel,
 * and the call's end is a safe point where the coroutine yields if the
 * monitor asked (yield_req).  begin returns what end needs.  After end,
 * the coroutine runs on the worker's current thread again (unless
 * pinned); inside a runtime section, re-read the worker.
 */
static inline uint32_t unb__rt_block_begin(const char *what)
{
    struct unb__m_state *m = UNB_TLS_FRESH(unb__tls_m);
    if (!m)
        return 0;
    uint32_t depth = atomic_load_explicit(&m->depth, memory_order_relaxed);
    /* No beat: a coroutine that makes one short call after another keeps
     * its worker from the others as surely as one long call does. */
    atomic_store_explicit(&m->blocking, what, memory_order_relaxed);
    if (depth)
        atomic_store_explicit(&m->depth, 0, memory_order_release);
    return depth;
}

static inline void unb__rt_block_end(uint32_t depth)
{
    struct unb__m_state *m = UNB_TLS_FRESH(unb__tls_m);
    if (!m)
        return;
    atomic_store_explicit(&m->blocking, NULL, memory_order_relaxed);
    if (depth) {
        atomic_store_explicit(&m->depth, depth, memory_order_relaxed);
        unb__rt_fence_enter();
        if (unb_unlikely(atomic_load_explicit(&m->take, memory_order_acquire) !=
                         UNB_TAKE_NONE))
            unb__rt_reclaim();
    } else if (unb_unlikely(atomic_load_explicit(&m->take, memory_order_acquire) !=
                            UNB_TAKE_NONE)) {
        unb__rt_enter(); /* back to the worker now, not at the next call */
        unb__rt_leave();
    } else if (unb_unlikely(
                   atomic_load_explicit(&m->yield_req, memory_order_relaxed))) {
        unb__rt_yield_requested(); /* a safe point: let the others run */
    } else {
        unb__rt_yield_if_due(m);
    }
}

/* Makes `call` as a blocking call, from the program's code.  Inside the
 * runtime (libev calls epoll_wait and read through the same hooks) it is
 * made plainly: the runtime's own waits say so themselves.  errno travels
 * with the coroutine if it moves to another thread (the switch saves and
 * restores it). */
#define UNB_BLOCKING(call) UNB_BLOCKING_AS(call, call)

/* The same, where a coroutine makes `marked` instead: an equivalent of
 * `call` that only a worker's thread may use (libunblock/real.h, "Direct
 * calls"). */
#define UNB_BLOCKING_AS(call, marked)                                                  \
    ({                                                                                 \
        struct unb__m_state *m_ = UNB_TLS_FRESH(unb__tls_m);                           \
        __typeof__(call) r_;                                                           \
        if (!m_ || atomic_load_explicit(&m_->depth, memory_order_relaxed) != 0) {      \
            r_ = (call);                                                               \
        } else {                                                                       \
            unb__cancel_point();                                                       \
            unb__rt_yield_if_due(m_);                                                  \
            unb__rt_block_begin(__func__);                                             \
            r_ = (marked);                                                             \
            unb__rt_block_end(0);                                                      \
        }                                                                              \
        r_;                                                                            \
    })

/*
 * Deferred cancellation of coroutines (pthread_cancel; thread.c).  A
 * cancellation point calls unb__cancel_point(): one load of a global count
 * of pending cancels, so it costs nothing until a program cancels.  When
 * the calling coroutine has one pending and enabled, it is acted on:
 * unb__sched_cancel_hook ends the coroutine as pthread_exit(PTHREAD_CANCELED).
 */
enum { UNB_CANCEL_DISABLED = 1, UNB_CANCEL_ACTING = 2 };
extern _Atomic unsigned unb__cancels;
extern void (*unb__sched_cancel_hook)(void);
void unb__cancel_test(void);

static inline void unb__cancel_point(void)
{
    if (unb_unlikely(atomic_load_explicit(&unb__cancels, memory_order_relaxed)))
        unb__cancel_test();
}

/* Marks co cancelled and wakes it from a park at a cancellation point
 * (an interruptible one: fds, sleeps, poll; or a condition variable or
 * semaphore, whose waiters may wake spuriously).  Any thread. */
void unb__sched_cancel(struct unb_coro *co);

/* The coroutine running on this thread, or NULL. */
static inline struct unb_coro *unb__sched_current(void)
{
    return UNB_TLS_FRESH(unb__tls_cur);
}

/*
 * The running coroutine if it may park, else NULL: on a plain thread, in
 * a coroutine *pinned* to its OS thread because it holds something that
 * belongs to the thread (a stdio FILE lock taken with flockfile), or off
 * the coroutine's own stack.
 * Hooks park only when this is not NULL; otherwise they make the blocking
 * call, which blocks the worker, as the thread would have blocked.
 */
static inline struct unb_coro *unb__sched_parkable(void)
{
    struct unb_coro *co = unb__sched_current();
    if (!co || co->pinned)
        return NULL;
    /* Only on its own stack: not in a signal handler on the alternate
     * stack (LeakSanitizer's exit-time check calls sched_yield from the
     * handler that called exit), nor on a stack the program switched to
     * (ucontext).  There the call is the kernel's, as natively. */
    const char *sp = __builtin_frame_address(0);
    return sp >= co->stack.lo && sp < co->stack.hi ? co : NULL;
}

/* The worker the calling thread runs, or NULL.  Its loop and queue may be
 * touched only inside a runtime section, and only until the caller next
 * parks. */
static inline struct unb__worker *unb__sched_worker(void)
{
    return UNB_TLS_FRESH(unb__tls_worker);
}

/* Signal masks, when per coroutine (runtime/sigmask.h).  The running
 * coroutine's mask becomes `mask` (signals 1-64 as bits 0-63), applied to
 * its thread at once, so that pending signals it now lets in arrive
 * before this returns. */
void unb__sched_set_sigmask(uint64_t mask);

/* Sends sig to co alone (pthread_kill; sig 1-64, co not the caller): it
 * runs co's handler on co's stack when co next runs with sig let in, and
 * interrupts a park of co as the kernel interrupts a thread's call. */
void unb__sched_signal_coro(struct unb_coro *co, int sig);

/* Takes the lowest signal of `set` sent to the running coroutine alone and
 * still pending (for sigwait); its bit, or 0. */
uint64_t unb__sched_sigpending_take(uint64_t set);

/* glibc set the running coroutine's thread's mask itself: the coroutine
 * takes what the kernel has. */
void unb__sched_sigmask_resync(void);

/* glibc is about to set the running coroutine's thread's mask to `mask`
 * (a longjmp that restores a saved one). */
void unb__sched_sigmask_will_be(uint64_t mask);

/* Whether the caller is the task that runs this thread's coroutines, and
 * not the child of a vfork made by one (it shares our memory until it
 * execs: state it changes would be the parent's).  A syscall. */
bool unb__sched_own_task(void);

/* For a worker's blocking poll, on its thread: true and the mask to wait
 * with (what every live coroutine blocks) if it is not the thread's. */
bool unb__sched_idle_sigmask(sigset_t *out);

/* The stack of the running coroutine, or NULL; async-signal-safe. */
const struct unb__stack *unb__sched_current_stack(void);

/* The worker's libev loop: only its own thread may touch it. */
struct ev_loop *unb__worker_loop(struct unb__worker *w);

/* Coroutines parked on watchers of w's loop: the scheduler polls the loop
 * while this is nonzero.  Owner thread only. */
void unb__worker_waiting_add(struct unb__worker *w, int delta);

/*
 * Timers finer than libev's poll.  libev's epoll backend waits in whole
 * milliseconds, rounded up, and at least one: a timer due in 40 us waits
 * 1 ms.  Each park with a deadline tells its worker (CLOCK_MONOTONIC ns);
 * the worker remembers the soonest, and while it sleeps in its loop,
 * unb__sched_precise_wait() gives the epoll_wait hook the time left to
 * it, which it waits with epoll_pwait2's nanoseconds instead.  Only the
 * soonest deadline is known: after it passes, the later ones have libev's
 * rounding again until the next park with a deadline.  Owner thread only.
 */
void unb__worker_deadline(struct unb__worker *w, int64_t deadline_ns);

/* Inside the runtime's own blocking poll: ns until the soonest deadline
 * (0 if it has passed), or -1 for none.  One TLS load when there is none. */
int64_t unb__sched_precise_wait(void);

/* Whether w is in a blocking poll (it found nothing to run).  Owner
 * thread only. */
bool unb__worker_sleeping_poll(struct unb__worker *w);

/* Starts the runtime once; 0 or a negative errno. */
int unb__sched_start(void);

/*
 * Parks the calling coroutine.  Once it is off its stack and its registers
 * are saved, after(arg) runs on the same thread (so after may release the
 * lock under which the coroutine made itself findable by a waker: nobody
 * can resume it before that).  Returns when unb__sched_ready() resumes it,
 * possibly on another worker.  after must not park or touch the parked
 * coroutine's stack.  `call` and `obj` say what the coroutine waits in
 * (calls.h): the statistics count parks by call, and the dump shows them.
 */
void unb__sched_park(void (*after)(void *), void *arg, enum unb__call call, int64_t obj);

/* Makes a parked coroutine runnable.  Any thread, any context. */
void unb__sched_ready(struct unb_coro *co);

/* Lets the other runnable coroutines on this worker run first. */
void unb__sched_yield(void);

/* Initialises w for the calling context (coroutine or thread). */
void unb__waiter_init(struct unb__waiter *w);

/* Waits until unb__waiter_wake(w).  *lock (a spinlock) is held on entry
 * and released once the caller is parked or about to sleep.  call and
 * obj: as for unb__sched_park. */
void unb__waiter_wait(struct unb__waiter *w, _Atomic uint8_t *lock, enum unb__call call,
                      int64_t obj);

void unb__waiter_wake(struct unb__waiter *w);

/* Runs m->fn(w, m) on w's thread. */
void unb__worker_post(struct unb__worker *w, struct unb__msg *m);

/*
 * Moves the calling coroutine to worker `to`: it parks and is made
 * runnable by `to`'s own thread, so that it can then touch `to`'s loop.
 * Costs a mailbox message (a syscall only if `to` sleeps).
 */
void unb__sched_migrate(struct unb__worker *to);

/* The machinery behind the public API (api.c); negative errno returns. */
int unb__sched_spawn(void *(*fn)(void *), void *arg, struct unb_coro **out);

/* pthread_create's spawn: *id gets the coroutine before it can run, and
 * the coroutine is marked as one of the program's threads. */
int unb__sched_spawn_thread(void *(*fn)(void *), void *arg, size_t stack_size,
                            uintptr_t *id);

/* pthread_tryjoin_np: -EBUSY while co runs. */
int unb__sched_tryjoin(struct unb_coro *co, void **result);

/* Whether co was detached; its stack's usable bounds. */
bool unb__sched_detached(struct unb_coro *co);
/* call: UNB_CALL_JOIN or UNB_CALL_UNB_JOIN, for the dump. */
int unb__sched_join(struct unb_coro *co, void **result, enum unb__call call);
int unb__sched_detach(struct unb_coro *co);
struct unb_stats;
void unb__sched_stats(struct unb_stats *st);
/* Parks so far by call (calls.h), summed over the workers. */
void unb__sched_parks_by_call(uint64_t out[UNB_CALL_COUNT]);

/* Ends the calling coroutine now with `result`, as if its function had
 * returned it (the exit hook runs first).  Its stack is abandoned, not
 * unwound. */
__attribute__((noreturn)) void unb__sched_exit(void *result);

/* Set by the hook layer: runs in every coroutine after its function
 * returns or unb__sched_exit is called (thread-specific data destructors). */
extern void (*unb__sched_exit_hook)(struct unb_coro *co);

/*
 * The preload's start: runs the runtime with the calling thread (the
 * process's initial thread) as worker 0 and fn(arg) as the first coroutine
 * on a stack of stack_size bytes.  Never returns: the program ends by
 * exit(), from that coroutine or another.  Returns a negative errno only if
 * the runtime cannot start (the caller then runs main natively).
 */
int unb__sched_run_main(void *(*fn)(void *), void *arg, size_t stack_size);

/* True when the runtime runs the program's main (the preload). */
bool unb__sched_owns_main(void);

/* fork(): prepare in the parent (takes the runtime's locks), then parent
 * or child.  The child keeps only the calling thread, as natively: other
 * coroutines are gone, and the runtime starts its workers afresh. */
void unb__sched_fork_prepare(void);
void unb__sched_fork_parent(void);
void unb__sched_fork_child(void);

/*
 * Async-signal-safe: a program's signal handler just ran on this thread.
 * restart: the handler was installed with SA_RESTART; sig: the signal.
 * The runtime picks the parked coroutine the signal interrupts (see
 * intr.h).
 */
void unb__sched_signal_arrived(bool restart, int sig);

#endif
