/*
 * Signal masks per coroutine, when threads are coroutines.
 *
 * A thread's signal mask is the thread's own; under the preload the
 * program's threads are coroutines sharing a few OS threads, so each
 * coroutine keeps its mask (co->sigmask, signals 1-64 as bits 0-63), and
 * an OS thread's kernel mask follows the coroutine it runs: resuming one
 * whose mask differs from the thread's costs one rt_sigprocmask (none
 * when all threads have the same mask, the common case).
 *
 * A process-directed signal goes to a thread that does not block it.  A
 * worker waiting in epoll for work runs no coroutine: it waits with the
 * signals every live coroutine blocks blocked (unb__sigmask_idle), so a
 * signal that all threads block stays pending for a thread that takes it
 * (sigwait, or an unblock), and one that some thread lets in can arrive
 * while that thread is parked.
 *
 * The live coroutines' masks are counted by class (distinct mask values;
 * programs have one or a few), so a birth or a death is one atomic add.
 */
#ifndef UNB_SIGMASK_H
#define UNB_SIGMASK_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

struct unb_coro;

/* Set once, before the first coroutine, when threads are coroutines. */
extern bool unb__sigmask_on;

/* Turns per-coroutine masks on: the calling thread's mask is main's. */
void unb__sigmask_enable(void);

/* A new coroutine takes its creator's mask (NULL: the initial one). */
void unb__sigmask_born(struct unb_coro *co, const struct unb_coro *creator);

/* A coroutine's end. */
void unb__sigmask_died(struct unb_coro *co);

/* Changes co's mask (its class; not the kernel's mask). */
void unb__sigmask_set(struct unb_coro *co, uint64_t mask);

/* Every signal a mask can block, but glibc's own (setuid() waits for
 * every thread to take SIGSETXID): the mask of a thread that runs no
 * coroutine and waits for none (a new or idle spare). */
uint64_t unb__sigmask_all(void);

/* The signals every live coroutine blocks. */
uint64_t unb__sigmask_idle(void);

/* Sets the calling thread's kernel mask; *kmask caches it. */
void unb__sigmask_apply(uint64_t *kmask, uint64_t mask);

/* The calling thread's kernel mask, read from the kernel. */
uint64_t unb__sigmask_read(void);

/*
 * Signals sent to one coroutine (pthread_kill): kept in co->sigpending
 * until it runs with them let in, then sent by tgkill to the thread it
 * runs on, whose handler runs at once, on the coroutine's stack (SI_TKILL:
 * the handler wrapper interrupts no other coroutine for it).
 */
/* Sends co's pending signals that its mask lets in to the calling thread,
 * which runs co (tid: the thread's). */
void unb__sigmask_deliver(struct unb_coro *co, int tid);

/* After fork, in the child: co (or NULL) is the only coroutine. */
void unb__sigmask_fork_child(struct unb_coro *co);

/* sigset_t <-> the 64-bit form: glibc keeps signal n in bit n - 1 of the
 * set's first word, as the kernel does. */
static inline uint64_t unb__sigset_bits(const sigset_t *s)
{
    uint64_t bits;
    memcpy(&bits, s, sizeof bits);
    return bits;
}

static inline void unb__sigset_from_bits(sigset_t *s, uint64_t bits)
{
    memset(s, 0, sizeof *s);
    memcpy(s, &bits, sizeof bits);
}

#endif
