/*
 * Coroutine stacks.
 *
 * One stack is one anonymous private mapping, committed lazily by the
 * kernel as it is touched, with the lowest page made PROT_NONE as a guard:
 *
 *   map                  lo                                        hi
 *    | guard (1 page)     | usable stack, grows down  <-- ... | header |
 *
 * `size` is the whole mapping; the coroutine header (struct unb__coro) is
 * carved from the top of the usable part by the caller.
 *
 * A guard page splits the mapping into two VMAs, and the kernel allows
 * vm.max_map_count of those per process (65530 by default).  So guarded
 * stacks are budgeted: past (max_map_count - reserve) / 2 live guarded
 * stacks, new stacks are mapped without a guard (counted in stats as
 * unguarded); adjacent unguarded stacks merge into few VMAs, which is what
 * lets a process hold a million idle coroutines.  An overflow of an
 * unguarded stack is caught late, by the stack-pointer check when the
 * coroutine next switches out.
 */
#ifndef UNB_STACK_H
#define UNB_STACK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct unb__stack {
    char *map;       /* start of the mapping (the guard page, if guarded) */
    char *lo;        /* lowest usable address */
    char *hi;        /* one past the highest usable address */
    uint32_t vg_id;  /* valgrind's id for the stack, 0 if not registered */
    uint8_t guarded; /* 1 if map..lo is a PROT_NONE guard page */
};

/* The system page size, known after unb__stack_init(). */
extern size_t unb__page_size;

/* Reads the page size and the map-count budget.  Idempotent. */
void unb__stack_init(void);

/*
 * Maps a stack of `size` bytes (a multiple of the page size, at least four
 * pages).  Returns 0, or -EAGAIN if the kernel refused the mapping.
 */
int unb__stack_map(size_t size, struct unb__stack *st);

/* Unmaps a stack from unb__stack_map(). */
void unb__stack_unmap(struct unb__stack *st);

/* Live stacks: all, and those without a guard page. */
uint64_t unb__stack_count(void);
uint64_t unb__stack_count_unguarded(void);

/*
 * Installs the fault handler that reports coroutine stack overflows, once.
 * Every thread that runs coroutines must also call unb__stack_altstack_use().
 */
void unb__stack_install_fault_handler(void);

/* Maps an alternate signal stack for the fault handler, for a thread
 * about to be started (its creator maps it, so that a thread counted as
 * started holds all its address space); 0 or a negative errno. */
int unb__stack_altstack_map(void **mem);
/* Makes mem the calling thread's alternate signal stack; 0 or a negative
 * errno.  unb__stack_altstack_free() undoes it before the thread exits. */
int unb__stack_altstack_use(void *mem);
void unb__stack_altstack_free(void *mem);
/* Unmaps the alternate signal stack of a thread that no longer exists (a
 * fork child's copy of another thread's), leaving the caller's alone. */
void unb__stack_altstack_unmap(void *mem);

/*
 * The action to take for SIGSEGV/SIGBUS faults that are not stack
 * overflows: the program's own, as it set it with sigaction().  Once the
 * fault handler is installed, the hook layer keeps the program's action
 * here instead of in the kernel.  Both return false (and do nothing) for
 * other signals or before the handler is installed.
 */
bool unb__stack_fault_chain_set(int sig, const struct sigaction *act);
bool unb__stack_fault_chain_get(int sig, struct sigaction *act);

/*
 * Reports an overflow of the stack of `size` bytes and kills the process
 * with SIGSEGV.  Async-signal-safe.
 */
__attribute__((noreturn)) void unb__stack_overflow_die(size_t size);

#endif
