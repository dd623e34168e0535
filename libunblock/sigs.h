/*
 * What the signal hooks (signal.c) tell the other hooks.
 */
#ifndef UNB_SIGS_H
#define UNB_SIGS_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* Whether the program installed a handler for sig (not SIG_DFL/SIG_IGN). */
bool unb__signal_handled(int sig);

/* Program handlers run on the calling OS thread so far (a counter). */
unsigned long unb__signal_runs(void);

/*
 * For a call that takes a signal mask for its duration (ppoll, pselect),
 * in a coroutine with per-coroutine masks: makes `mask` the coroutine's,
 * keeping the old one in *saved.  False, with the old mask back, if a
 * handler ran as it was set (a pending signal it lets in): the call
 * returns EINTR at once, as natively.
 */
bool unb__sigmask_enter(const sigset_t *mask, uint64_t *saved);

/* The call's end: the coroutine's own mask again (errno kept). */
void unb__sigmask_leave(uint64_t saved);

#endif
