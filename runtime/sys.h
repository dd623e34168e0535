/*
 * Raw system calls for the runtime's own use.
 *
 * The runtime must never call a symbol the hook layer may interpose (a raw
 * syscall() hook would see the scheduler's own futex waits), and it wants
 * no errno traffic: these return the kernel's result, a negative errno on
 * failure, as musl's __syscall does before __syscall_ret.
 */
#ifndef UNB_SYS_H
#define UNB_SYS_H

#include <fcntl.h>
#include <linux/futex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

static inline long unb__sys3(long n, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

/* Reads a small /proc or /sys file into buf (NUL-terminated; what fits in
 * size - 1 bytes) with raw syscalls, outside any hook.  False if it cannot
 * be read. */
static inline bool unb__read_proc(const char *path, char *buf, size_t size)
{
    long fd = unb__sys3(SYS_open, (long)path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return false;
    long n = unb__sys3(SYS_read, fd, (long)buf, (long)size - 1);
    unb__sys3(SYS_close, fd, 0, 0);
    if (n <= 0)
        return false;
    buf[n] = 0;
    return true;
}

static inline long unb__sys6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* Sleeps while *addr == val (or until woken, a signal, or the timeout). */
static inline long unb__futex_wait(_Atomic uint32_t *addr, uint32_t val,
                                   const struct timespec *rel_timeout)
{
    return unb__sys6(SYS_futex, (long)addr, FUTEX_WAIT_PRIVATE, (long)val,
                     (long)rel_timeout, 0, 0);
}

/* Wakes up to n waiters on addr. */
static inline long unb__futex_wake(_Atomic uint32_t *addr, int n)
{
    return unb__sys3(SYS_futex, (long)addr, FUTEX_WAKE_PRIVATE, n);
}

#endif
