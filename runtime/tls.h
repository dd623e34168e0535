/*
 * The program's thread-local variables, per coroutine (runtime/tls.c).
 *
 * When threads become coroutines, a `__thread` variable of the program
 * must be the coroutine's, as it was the thread's: a counter, a "current
 * request" pointer, C++ thread_local objects.  The OS thread has one copy;
 * each coroutine keeps its own in a save area and the scheduler swaps
 * them: the running coroutine's values are in the thread's blocks, a
 * switched-out one's in its save area.
 */
#ifndef UNB_TLS_H
#define UNB_TLS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Bytes of a coroutine's save area: 0 until unb__tls_follow_coroutines()
 * has run, and then while no module's TLS follows coroutines.
 */
extern size_t unb__tls_size;

/*
 * Finds the static TLS blocks that follow coroutines (the program's and
 * its libraries', but not the C library's, the dynamic linker's, ours, or
 * a tool's or allocator's) and sets unb__tls_size.  Once, before the first
 * coroutine exists.
 */
void unb__tls_follow_coroutines(void);

/* The calling thread's pointer (%fs base): where its static TLS ends. */
static inline uintptr_t unb__tls_thread_pointer(void)
{
    uintptr_t tp;
    __asm__("movq %%fs:0, %0" : "=r"(tp));
    return tp;
}

/* Fills a save area as a new thread's blocks start: the initialisation
 * images, then zeros.  Records no thread (*tp = 0). */
void unb__tls_init(void *area, uintptr_t *tp);

/* Copies the calling thread's blocks into a save area; *tp = its thread
 * pointer. */
void unb__tls_save(void *area, uintptr_t *tp);

/*
 * Copies a save area into the calling thread's blocks.  Saved on another
 * thread (*tp differs), values pointing into that thread's static TLS are
 * moved to the same place in this one's first (see tls.c); *tp becomes
 * this thread's.
 */
void unb__tls_load(void *area, uintptr_t *tp);

/*
 * An address the running coroutine took in its static TLS while it ran on
 * the thread whose pointer was `from`, where it is now (on the calling
 * thread); any other address unchanged.  For what the program keeps
 * outside the blocks on its behalf (C++ thread_local destructors).
 */
void *unb__tls_here(void *addr, uintptr_t from);

#endif
