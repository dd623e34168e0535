/* Shared by the thread and start hooks (thread.c, start.c). */
#ifndef UNB_THREAD_H
#define UNB_THREAD_H

#include <stdatomic.h>
#include <stdbool.h>

#include "../runtime/sched.h"

/* pthread_create makes coroutines (UNBLOCK_THREADS; set once at start). */
extern bool unb__threads_coro;

/* The coroutine running main, or NULL when main is a thread. */
extern struct unb_coro *unb__main_coro;

/* Counts main among the program's live threads (see thread.c). */
void unb__thread_main_started(void);

/* exit() has begun: the process is ending (its handlers run). */
extern _Atomic bool unb__exiting;

/* In a child after fork: the calling thread is the only one. */
void unb__thread_fork_child(void);

/* After glibc's pthread_cancel(t) of a plain thread (not a coroutine):
 * ends a wait of t's in a condition variable or semaphore of ours, as
 * glibc's own waits end (sync.c). */
void unb__sync_thread_cancel(pthread_t t);

#endif
