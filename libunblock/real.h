/*
 * The real-symbol table: the libc functions that libunblock interposes (and
 * a few the runtime needs), resolved once with dlsym(RTLD_NEXT, ...).
 *
 * Everything in runtime/ and libunblock/ calls these through UNB_REAL(),
 * never by their public names, so the runtime's own calls (and libev's,
 * which pass through the hooks' outside-a-coroutine branch) never recurse
 * into a hook.
 */
#ifndef UNB_REAL_H
#define UNB_REAL_H

#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include <ucontext.h>
#include <errno.h>
#include <unistd.h>

#include "../runtime/common.h"
#include "../runtime/sanitize.h"

/* glibc's, for libstdc++'s thread_local destructors; in no header. */
int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso_symbol);
/* _FORTIFY_SOURCE's longjmp; in no header. */
void __longjmp_chk(struct __jmp_buf_tag env[1], int val) __attribute__((noreturn));

/* X(name): one entry per function; its type is that of libc's declaration. */
#define UNB_REAL_SYMBOLS(X)  \
    X(read)                  \
    X(write)                 \
    X(readv)                 \
    X(writev)                \
    X(recv)                  \
    X(send)                  \
    X(recvfrom)              \
    X(sendto)                \
    X(recvmsg)               \
    X(sendmsg)               \
    X(accept)                \
    X(accept4)               \
    X(connect)               \
    X(socket)                \
    X(socketpair)            \
    X(setsockopt)            \
    X(pipe)                  \
    X(pipe2)                 \
    X(dup)                   \
    X(dup2)                  \
    X(dup3)                  \
    X(fcntl)                 \
    X(fcntl64)               \
    X(ioctl)                 \
    X(poll)                  \
    X(ppoll)                 \
    X(select)                \
    X(pselect)               \
    X(close)                 \
    X(nanosleep)             \
    X(clock_nanosleep)       \
    X(usleep)                \
    X(sleep)                 \
    X(sigaction)             \
    X(signal)                \
    X(pthread_create)        \
    X(pthread_join)          \
    X(pthread_tryjoin_np)    \
    X(pthread_timedjoin_np)  \
    X(pthread_clockjoin_np)  \
    X(pthread_detach)        \
    X(pthread_exit)          \
    X(pthread_self)          \
    X(pthread_equal)         \
    X(pthread_kill)          \
    X(pthread_cancel)        \
    X(pthread_setcancelstate) \
    X(pthread_setcanceltype) \
    X(pthread_testcancel)    \
    X(__pthread_register_cancel)   \
    X(__pthread_unregister_cancel) \
    X(__pthread_unwind_next) \
    X(pthread_setname_np)    \
    X(pthread_getname_np)    \
    X(pthread_getattr_np)    \
    X(pthread_setschedparam) \
    X(pthread_getschedparam) \
    X(pthread_setschedprio)  \
    X(pthread_setaffinity_np) \
    X(pthread_getaffinity_np) \
    X(pthread_getcpuclockid) \
    X(pthread_sigqueue)      \
    X(pthread_key_create)    \
    X(pthread_key_delete)    \
    X(pthread_getspecific)   \
    X(pthread_setspecific)   \
    X(pthread_mutex_init)    \
    X(pthread_mutex_destroy) \
    X(pthread_mutex_lock)    \
    X(pthread_mutex_trylock) \
    X(pthread_mutex_timedlock) \
    X(pthread_mutex_clocklock) \
    X(pthread_mutex_unlock)  \
    X(pthread_cond_init)     \
    X(pthread_cond_destroy)  \
    X(pthread_cond_wait)     \
    X(pthread_cond_timedwait) \
    X(pthread_cond_clockwait) \
    X(pthread_cond_signal)   \
    X(pthread_cond_broadcast) \
    X(pthread_rwlock_init)   \
    X(pthread_rwlock_destroy) \
    X(pthread_rwlock_rdlock) \
    X(pthread_rwlock_wrlock) \
    X(pthread_rwlock_tryrdlock) \
    X(pthread_rwlock_trywrlock) \
    X(pthread_rwlock_timedrdlock) \
    X(pthread_rwlock_timedwrlock) \
    X(pthread_rwlock_clockrdlock) \
    X(pthread_rwlock_clockwrlock) \
    X(pthread_rwlock_unlock) \
    X(pthread_barrier_init)  \
    X(pthread_barrier_destroy) \
    X(pthread_barrier_wait)  \
    X(sem_wait)              \
    X(sem_trywait)           \
    X(sem_timedwait)         \
    X(sem_clockwait)         \
    X(sem_post)              \
    X(flockfile)             \
    X(ftrylockfile)          \
    X(funlockfile)           \
    X(pread)                 \
    X(pread64)               \
    X(pwrite)                \
    X(pwrite64)              \
    X(preadv)                \
    X(preadv64)              \
    X(preadv2)               \
    X(pwritev)               \
    X(pwritev64)             \
    X(pwritev2)              \
    X(open)                  \
    X(open64)                \
    X(openat)                \
    X(openat64)              \
    X(fsync)                 \
    X(fdatasync)             \
    X(syncfs)                \
    X(flock)                 \
    X(lockf)                 \
    X(lockf64)               \
    X(wait)                  \
    X(waitpid)               \
    X(waitid)                \
    X(wait3)                 \
    X(wait4)                 \
    X(system)                \
    X(getaddrinfo)           \
    X(getnameinfo)           \
    X(gethostbyname)         \
    X(gethostbyname2)        \
    X(gethostbyaddr)         \
    X(gethostbyname_r)       \
    X(gethostbyname2_r)      \
    X(gethostbyaddr_r)       \
    X(epoll_wait)            \
    X(epoll_pwait)           \
    X(pause)                 \
    X(sigsuspend)            \
    X(sigwait)               \
    X(sigwaitinfo)           \
    X(sigtimedwait)          \
    X(exit)                  \
    X(sched_yield)           \
    X(sigprocmask)           \
    X(pthread_sigmask)       \
    X(sigsetmask)            \
    X(sigblock)              \
    X(sighold)               \
    X(sigrelse)              \
    X(sigset)                \
    X(siglongjmp)            \
    X(longjmp)               \
    X(_longjmp)              \
    X(__longjmp_chk)         \
    X(setcontext)            \
    X(swapcontext)           \
    X(__cxa_thread_atexit_impl)

/* Some are obsolete (sigsetmask, sighold...): still hooked, for the
 * programs that call them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct unb__real_table {
    _Atomic bool ready;
    _Atomic bool direct; /* read, write, pread and pwrite are glibc's own */
#define UNB_REAL_FIELD(name) __typeof__(&name) name;
    UNB_REAL_SYMBOLS(UNB_REAL_FIELD)
#undef UNB_REAL_FIELD
};
#pragma GCC diagnostic pop

extern struct unb__real_table unb__real;

/* Fills the table; safe to call more than once and from several threads. */
void unb__real_resolve(void);

/* The real `name`: one predictable branch once the table is filled. */
#define UNB_REAL(name)                                                                 \
    ((unb_likely(atomic_load_explicit(&unb__real.ready, memory_order_acquire))         \
          ? (void)0                                                                    \
          : unb__real_resolve()),                                                      \
     unb__real.name)

/*
 * Direct calls.  A hook that calls glibc's read pays two returns after the
 * syscall instead of one (glibc's into the hook, the hook's into the
 * program), and here a return that follows a syscall is mispredicted: a
 * hooked read and write of a file cost 35 ns a pair more than natively
 * (415 ns for 1 byte from /dev/zero and to /dev/null), 12 ns when the hook
 * makes the syscall itself; dd bs=4k of a cached file took 1.026x its
 * native time, now 1.017x (medians of 41 runs).  So when read, write, pread
 * and pwrite are glibc's own (unb__real.direct, set by unb__real_resolve),
 * whose body is the syscall and errno, a coroutine's call of them on a
 * file makes the syscall here (UNB_BLOCKING_SYS).  Not on a plain thread:
 * there glibc's function is also a cancellation point of the thread's own
 * (a coroutine's are the runtime's, unb__cancel_point).  When another
 * library interposes them after us (a sanitizer's runtime, a tracer), its
 * function is called, as always.
 */
static inline bool unb__direct(void)
{
#if defined(__x86_64__)
    return atomic_load_explicit(&unb__real.direct, memory_order_relaxed);
#else
    return false;
#endif
}

/* The syscall nr(a, b, c, d), with glibc's result: -1 and errno on
 * failure.  Only where unb__direct() is true. */
static inline ssize_t unb__sys(long nr, long a, long b, long c, long d)
{
    long r;
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
#else
    (void)nr, (void)a, (void)b, (void)c, (void)d;
    r = -ENOSYS;
#endif
    if (unb_unlikely((unsigned long)r > -4096UL)) {
        unb_errno = (int)-r;
        return -1;
    }
    return r;
}

/* UNB_BLOCKING (runtime/sched.h) of the real name(a, b, c, d), whose
 * syscall is nr: the syscall itself in a coroutine when unb__direct(). */
#define UNB_BLOCKING_SYS(name, nr, a, b, c, d)                                         \
    UNB_BLOCKING_AS(UNB_REAL(name)(a, b, c, d),                                        \
                    unb__direct() ? unb__sys(nr, (long)(a), (long)(b), (long)(c), d)   \
                                  : UNB_REAL(name)(a, b, c, d))
/* The same for name(a, b, c). */
#define UNB_BLOCKING_SYS3(name, nr, a, b, c)                                           \
    UNB_BLOCKING_AS(UNB_REAL(name)(a, b, c),                                           \
                    unb__direct() ? unb__sys(nr, (long)(a), (long)(b), (long)(c), 0)   \
                                  : UNB_REAL(name)(a, b, c))

/*
 * pthread_create for the runtime's own threads (workers, spares, the
 * monitor).  A sanitizer must see every thread that runs instrumented code
 * start (ThreadSanitizer cannot run code on a thread it did not see start;
 * AddressSanitizer follows stack switches only on threads it knows), but
 * UNB_REAL reaches past the sanitizer's interceptor when the sanitizer's
 * runtime comes before us in the library order (a program built with
 * -fsanitize).  So a sanitizer build starts them through the interceptor;
 * if the interceptor's own "real" call lands in our hook (its runtime
 * precedes us), the hook sees unb__real_own_thread and goes on to glibc.
 * Other builds: UNB_REAL(pthread_create).
 */
int unb__real_thread_create(pthread_t *t, const pthread_attr_t *attr,
                            void *(*fn)(void *), void *arg);
/* pthread_join for them, likewise: the sanitizer must see the join (a
 * thread it saw start and never saw joined is a leak to it, and the join
 * orders the thread's last writes before the joiner's next ones).  The
 * interceptor's own call of the real pthread_join may land in our hook,
 * which passes a thread that is no coroutine on to glibc. */
int unb__real_thread_join(pthread_t t, void **ret);
#if defined(UNB_ASAN) || defined(UNB_TSAN)
extern UNB_TLS bool unb__real_own_thread;
#else
#define unb__real_own_thread false
#endif

#endif
