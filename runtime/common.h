/*
 * Definitions shared by every file of the runtime and the hook layer.
 */
#ifndef UNB_COMMON_H
#define UNB_COMMON_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Marks a symbol that is part of the library's ABI (the API and the hooks). */
#define UNB_EXPORT __attribute__((visibility("default")))

#define unb_likely(x) __builtin_expect(!!(x), 1)
#define unb_unlikely(x) __builtin_expect(!!(x), 0)

#define UNB_CACHELINE 64
#define UNB_ALIGNED_LINE __attribute__((aligned(UNB_CACHELINE)))

/* Thread-local storage that is one %fs-relative load: valid for a library
 * that is preloaded or linked, which are the two ways libunblock is used. */
#define UNB_TLS __thread __attribute__((tls_model("initial-exec")))

#define UNB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Invariant checks.  They stay in release builds: a broken invariant in a
 * scheduler corrupts memory far from its cause, so we stop at the cause.
 */
#define UNB_ASSERT(cond)                                                               \
    do {                                                                               \
        if (unb_unlikely(!(cond)))                                                     \
            unb__assert_fail(#cond, __FILE__, __LINE__);                               \
    } while (0)

__attribute__((noreturn, cold)) void unb__assert_fail(const char *what,
                                                      const char *file, int line);

/*
 * Writes a message to stderr with the real write(), in one call, prefixed by
 * "libunblock: " and followed by a newline.  Async-signal-safe.
 */
void unb__say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Like unb__say(), then aborts. */
__attribute__((noreturn, cold)) void unb__die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * A full (seq_cst) fence.  On x86 a locked add to the stack is one as much
 * as mfence is, and several times cheaper; it is what gcc emits for
 * atomic_thread_fence(seq_cst), while clang emits mfence.  ThreadSanitizer
 * understands only the C11 fence.
 */
static inline void unb__fence(void)
{
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && !defined(UNB_TSAN)
    __asm__ volatile("lock orq $0, (%%rsp)" ::: "memory", "cc");
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/*
 * errno of the thread we are running on *now*.  glibc declares
 * __errno_location() const, so the compiler may compute errno's address
 * once per function and reuse it after a park, when the coroutine may be
 * running on another thread.  Code that can park uses `unb_errno`, never
 * `errno`.  The offset of errno from the thread pointer is the same in
 * every thread (glibc's TLS block is static), so a fresh read is one
 * %fs load and an add.
 */
extern intptr_t unb__errno_offset;
static inline int *unb__errno_fresh(void)
{
    char *tp;
    __asm__ volatile("movq %%fs:0, %0" : "=r"(tp));
    return (int *)(tp + unb__errno_offset);
}
#define unb_errno (*unb__errno_fresh())

/* Appends the decimal form of v at *p and moves *p past it.  For the
 * paths where printf does not belong: a signal handler's report, and the
 * monitor's look at a stuck thread, where a process's first snprintf took
 * 90 us (see thread_state in sched.c). */
static inline void unb__put_u64(char **p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        *(*p)++ = tmp[--n];
}

/* Pause hint for spin loops. */
static inline void unb__cpu_relax(void)
{
    __builtin_ia32_pause();
}

#endif
