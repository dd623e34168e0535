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
