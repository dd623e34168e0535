/*
 * Interruptible parks: how a signal handler's EINTR reaches a parked
 * coroutine.
 *
 * Natively, a signal whose handler runs interrupts one blocked thread: the
 * kernel prefers the main thread, else any thread not blocking the signal.
 * That thread's sleep, or its read without SA_RESTART, returns EINTR.
 * Under the runtime, handlers run on whatever worker the kernel picked,
 * usually one idle in epoll_wait, so the runtime chooses the coroutine:
 *
 *   - the main coroutine (under the preload), if it is parked in an
 *     interruptible call;
 *   - otherwise, if the handler ran on a thread of the runtime's that was
 *     not running a coroutine (an idle worker, or a spare thread waiting
 *     for a worker: no running "thread" took the signal), the coroutine
 *     that has been parked longest in an interruptible call;
 *   - otherwise nobody, as a signal taken by a running thread interrupts
 *     no blocked one.
 *
 * In both cases a coroutine whose signal mask (sigmask.h; ppoll's and
 * pselect's for their duration) blocks the signal is passed over, as the
 * kernel passes over a thread that blocks it.
 *
 * Only a park within a call that began before the signal arrived can be
 * its victim: a signal taken while the thread ran, or sat in a call that
 * blocks its worker (pause), interrupts none of its later calls, however
 * late the arrival is processed.  A call that parks more than once (a
 * read woken without data, a connect retried) counts from its start, as
 * the native thread is blocked from its start: the call notes
 * unb__intr_since() when it begins and arms each park with it.
 *
 * A park is "restartable" when a handler installed with SA_RESTART would
 * have the kernel restart the call (read, write, accept... on a socket
 * without a timeout); sleeps and poll are not.  Only parks that some
 * installed handler could interrupt are listed, so a program without
 * handlers pays nothing.
 */
#ifndef UNB_INTR_H
#define UNB_INTR_H

#include <stdbool.h>
#include <stdint.h>

#include "sched.h"

struct unb__intr {
    struct unb__intr *prev, *next; /* the global list, under its lock */
    struct unb_coro *co;
    struct unb__worker *w; /* whose loop holds the watchers */
    /* Stops the park's watchers; runs on w's thread. */
    void (*cancel)(struct unb__intr *it);
    struct unb__msg msg;
    _Atomic int state; /* UNB_INTR_* */
    uint64_t armed;    /* signal arrivals counted when its call began */
    /* In the list: written under its lock, peeked at without it by the
     * parked coroutine and by an interrupter (relaxed atomics). */
    _Atomic bool listed;
    bool restartable;
};

enum { UNB_INTR_WAITING, UNB_INTR_DONE, UNB_INTR_INTERRUPTED };

/* Signal arrivals so far (a count; see above). */
extern _Atomic uint64_t unb__intr_arrivals;

static inline uint64_t unb__intr_since(void)
{
    return atomic_load_explicit(&unb__intr_arrivals, memory_order_relaxed);
}

/* As unb__intr_arm, for a park of a call that began when the count of
 * arrivals was `since`. */
void unb__intr_arm_since(struct unb__intr *it, bool restartable,
                         void (*cancel)(struct unb__intr *it), uint64_t since);

/* Before parking: makes the park interruptible.  On the worker's thread,
 * after the watchers are started.  If the coroutine has a cancel pending,
 * the park is interrupted at once (it returns EINTR as soon as it parks). */
void unb__intr_arm(struct unb__intr *it, bool restartable,
                   void (*cancel)(struct unb__intr *it));

/* From a watcher callback (w's thread): the park completed normally.
 * Returns true if the caller must ready the coroutine, false if an
 * interruption already owns the wake-up. */
bool unb__intr_complete(struct unb__intr *it);

/* As unb__intr_complete, from a watcher's callback on the park's worker:
 * signal arrivals recorded but not processed yet (the thread that took
 * the signal has not come round to them) are processed first, so that a
 * handler that ran while the call was parked gives it EINTR, as the
 * native call would, whatever became ready since. */
bool unb__intr_complete_on_worker(struct unb__intr *it);

/* After resuming: returns true if the park was interrupted (EINTR). */
bool unb__intr_disarm(struct unb__intr *it);

/* Interrupts co's interruptible park, if it is in one, as a signal would
 * (its call sees EINTR); for cancellation.  Returns whether it did. */
bool unb__intr_interrupt(struct unb_coro *co);

/* Interrupts co's interruptible park for a signal sent to it alone
 * (pthread_kill), as the kernel would: not a restartable park when the
 * signal's handler has SA_RESTART.  Returns whether it did. */
bool unb__intr_interrupt_signal(struct unb_coro *co, int sig);

/* Signals whose program handler has SA_RESTART (bit n - 1 for signal n),
 * kept by the hook layer. */
extern _Atomic uint64_t unb__intr_restart_sigs;

/* Counts of installed program handlers, kept by the hook layer. */
void unb__intr_handlers_add(int any, int norestart);

/* Records a signal arrival (async-signal-safe); see sched.c. */
void unb__intr_signal_pending(bool on_idle_thread, bool restart, int sig);

/* Processes pending signal arrivals; called by workers. */
void unb__intr_process(void);

/* The coroutine to prefer, as the kernel prefers the main thread. */
void unb__intr_set_main(struct unb_coro *co);

/* In a child after fork: no parks are left; co (or NULL) is the only
 * thread, hence the main one. */
void unb__intr_fork_child(struct unb_coro *co);

#endif
