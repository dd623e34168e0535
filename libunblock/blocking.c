/*
 * Calls that block and that no hook can park: regular-file I/O (pread,
 * pwrite, open, fsync), the resolver (getaddrinfo and the gethostby*
 * family, whose network I/O glibc makes through internal calls), file
 * locks (flock, lockf; fcntl's F_SETLKW in fdops.c), child waits (wait,
 * waitpid, system), a program's own epoll loop, and signal waits.  read
 * and write on files, terminals and devices are marked the same way in
 * io.c.  syscall() is not hooked: libraries call it for futexes and gettid
 * at rates where even the brackets would show, and the monitor finds a
 * thread asleep in the kernel at its first look anyway.
 *
 * Each is made as the program asked, but bracketed as a blocking call
 * (sched.h, UNB_BLOCKING): while inside, the monitor hands the worker's
 * other coroutines to a spare thread at its first look instead of its
 * second, and the coroutine goes back to its worker when the call
 * returns.  Outside a worker the brackets cost one thread-local load.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runtime/sched.h"
#include "../runtime/sigmask.h"
#include "real.h"

/* ---- file I/O ------------------------------------------------------------ */

UNB_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    return UNB_BLOCKING_SYS(pread, SYS_pread64, fd, buf, n, off);
}

UNB_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    return UNB_BLOCKING_SYS(pread64, SYS_pread64, fd, buf, n, off);
}

UNB_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return UNB_BLOCKING_SYS(pwrite, SYS_pwrite64, fd, buf, n, off);
}

UNB_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    return UNB_BLOCKING_SYS(pwrite64, SYS_pwrite64, fd, buf, n, off);
}

UNB_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
    return UNB_BLOCKING(UNB_REAL(preadv)(fd, iov, n, off));
}

UNB_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
    return UNB_BLOCKING(UNB_REAL(preadv64)(fd, iov, n, off));
}

UNB_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    return UNB_BLOCKING(UNB_REAL(preadv2)(fd, iov, n, off, flags));
}

UNB_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    return UNB_BLOCKING(UNB_REAL(pwritev)(fd, iov, n, off));
}

UNB_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
    return UNB_BLOCKING(UNB_REAL(pwritev64)(fd, iov, n, off));
}

UNB_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off,
                            int flags)
{
    return UNB_BLOCKING(UNB_REAL(pwritev2)(fd, iov, n, off, flags));
}

/* open blocks on a FIFO until the other end opens, and on slow storage. */
static mode_t open_mode(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t)
                                                                 : 0;
}

UNB_EXPORT int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return UNB_BLOCKING(UNB_REAL(open)(path, flags, mode));
}

UNB_EXPORT int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return UNB_BLOCKING(UNB_REAL(open64)(path, flags, mode));
}

UNB_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return UNB_BLOCKING(UNB_REAL(openat)(dirfd, path, flags, mode));
}

UNB_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return UNB_BLOCKING(UNB_REAL(openat64)(dirfd, path, flags, mode));
}

UNB_EXPORT int fsync(int fd)
{
    return UNB_BLOCKING(UNB_REAL(fsync)(fd));
}

UNB_EXPORT int fdatasync(int fd)
{
    return UNB_BLOCKING(UNB_REAL(fdatasync)(fd));
}

UNB_EXPORT int syncfs(int fd)
{
    return UNB_BLOCKING(UNB_REAL(syncfs)(fd));
}

/* ---- file locks ---------------------------------------------------------- */

UNB_EXPORT int flock(int fd, int op)
{
    if (op & LOCK_NB)
        return UNB_REAL(flock)(fd, op);
    return UNB_BLOCKING(UNB_REAL(flock)(fd, op));
}

UNB_EXPORT int lockf(int fd, int cmd, off_t len)
{
    return UNB_BLOCKING(UNB_REAL(lockf)(fd, cmd, len));
}

UNB_EXPORT int lockf64(int fd, int cmd, off64_t len)
{
    return UNB_BLOCKING(UNB_REAL(lockf64)(fd, cmd, len));
}

/* ---- child processes ----------------------------------------------------- */

UNB_EXPORT pid_t wait(int *status)
{
    return UNB_BLOCKING(UNB_REAL(wait)(status));
}

UNB_EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
    if (options & WNOHANG)
        return UNB_REAL(waitpid)(pid, status, options);
    return UNB_BLOCKING(UNB_REAL(waitpid)(pid, status, options));
}

UNB_EXPORT int waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
    if (options & WNOHANG)
        return UNB_REAL(waitid)(type, id, info, options);
    return UNB_BLOCKING(UNB_REAL(waitid)(type, id, info, options));
}

UNB_EXPORT pid_t wait3(int *status, int options, struct rusage *ru)
{
    if (options & WNOHANG)
        return UNB_REAL(wait3)(status, options, ru);
    return UNB_BLOCKING(UNB_REAL(wait3)(status, options, ru));
}

UNB_EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    if (options & WNOHANG)
        return UNB_REAL(wait4)(pid, status, options, ru);
    return UNB_BLOCKING(UNB_REAL(wait4)(pid, status, options, ru));
}

UNB_EXPORT int system(const char *command)
{
    return UNB_BLOCKING(UNB_REAL(system)(command));
}

/* ---- the resolver -------------------------------------------------------- */

UNB_EXPORT int getaddrinfo(const char *node, const char *service,
                           const struct addrinfo *hints, struct addrinfo **res)
{
    return UNB_BLOCKING(UNB_REAL(getaddrinfo)(node, service, hints, res));
}

UNB_EXPORT int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                           socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
    return UNB_BLOCKING(
        UNB_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags));
}

/* The non-reentrant ones keep their result in the thread's static buffer:
 * a coroutine that moved reads it through the pointer returned, which
 * stays valid (the buffer is per thread, not freed). */
UNB_EXPORT struct hostent *gethostbyname(const char *name)
{
    return UNB_BLOCKING(UNB_REAL(gethostbyname)(name));
}

UNB_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
    return UNB_BLOCKING(UNB_REAL(gethostbyname2)(name, af));
}

UNB_EXPORT struct hostent *gethostbyaddr(const void *addr, socklen_t len, int type)
{
    return UNB_BLOCKING(UNB_REAL(gethostbyaddr)(addr, len, type));
}

UNB_EXPORT int gethostbyname_r(const char *name, struct hostent *ret, char *buf,
                               size_t buflen, struct hostent **result, int *h_errnop)
{
    return UNB_BLOCKING(
        UNB_REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop));
}

UNB_EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *ret,
                                char *buf, size_t buflen, struct hostent **result,
                                int *h_errnop)
{
    return UNB_BLOCKING(
        UNB_REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop));
}

UNB_EXPORT int gethostbyaddr_r(const void *addr, socklen_t len, int type,
                               struct hostent *ret, char *buf, size_t buflen,
                               struct hostent **result, int *h_errnop)
{
    return UNB_BLOCKING(
        UNB_REAL(gethostbyaddr_r)(addr, len, type, ret, buf, buflen, result, h_errnop));
}

/* ---- a program's own event loop, and signal waits ------------------------ */

/*
 * The runtime's own blocking poll (libev's, on a worker) waits for the
 * soonest park deadline to the nanosecond (sched.h,
 * unb__sched_precise_wait) rather than libev's whole milliseconds; on a
 * kernel without epoll_pwait2 (before 5.11), in milliseconds as before.
 */
static int precise_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    static _Atomic bool no_pwait2;
    /* With per-coroutine signal masks, an idle worker waits with the
     * signals every thread of the program blocks blocked (sigmask.h). */
    sigset_t idle;
    const sigset_t *mask = unb__sched_idle_sigmask(&idle) ? &idle : NULL;
    int64_t left = unb__sched_precise_wait();
    if (left < 0 || timeout == 0 || atomic_load_explicit(&no_pwait2, memory_order_relaxed) ||
        (timeout > 0 && left >= (int64_t)timeout * 1000000))
        return mask ? UNB_REAL(epoll_pwait)(epfd, ev, max, timeout, mask)
                    : UNB_REAL(epoll_wait)(epfd, ev, max, timeout);
    struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
    long r = syscall(SYS_epoll_pwait2, epfd, ev, max, &ts, mask, mask ? _NSIG / 8 : 0);
    if (r < 0 && errno == ENOSYS) {
        atomic_store(&no_pwait2, true);
        return mask ? UNB_REAL(epoll_pwait)(epfd, ev, max, timeout, mask)
                    : UNB_REAL(epoll_wait)(epfd, ev, max, timeout);
    }
    return (int)r;
}

UNB_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    if (timeout == 0)
        return UNB_REAL(epoll_wait)(epfd, ev, max, timeout);
    struct unb__m_state *m = UNB_TLS_FRESH(unb__tls_m);
    if (m && atomic_load_explicit(&m->depth, memory_order_relaxed) != 0)
        return precise_epoll_wait(epfd, ev, max, timeout); /* libev's, for a worker */
    return UNB_BLOCKING(UNB_REAL(epoll_wait)(epfd, ev, max, timeout));
}

UNB_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
                           const sigset_t *mask)
{
    if (timeout == 0)
        return UNB_REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
    return UNB_BLOCKING(UNB_REAL(epoll_pwait)(epfd, ev, max, timeout, mask));
}

UNB_EXPORT int pause(void)
{
    return UNB_BLOCKING(UNB_REAL(pause)());
}

UNB_EXPORT int sigsuspend(const sigset_t *mask)
{
    return UNB_BLOCKING(UNB_REAL(sigsuspend)(mask));
}

/* A signal sent to this coroutine alone (pthread_kill) that it blocks
 * waits in co->sigpending: sigwait and its family take it first, as the
 * kernel takes a thread's own pending signals. */
static int own_pending(const sigset_t *set, siginfo_t *info)
{
    if (!unb__sigmask_on || !unb__sched_current() || !set)
        return 0;
    uint64_t bit = unb__sched_sigpending_take(unb__sigset_bits(set));
    if (!bit)
        return 0;
    int sig = __builtin_ctzll(bit) + 1;
    if (info) {
        memset(info, 0, sizeof *info);
        info->si_signo = sig;
        info->si_code = SI_TKILL;
        info->si_pid = getpid();
        info->si_uid = getuid();
    }
    return sig;
}

UNB_EXPORT int sigwait(const sigset_t *set, int *sig)
{
    int own = own_pending(set, NULL);
    if (own) {
        *sig = own;
        return 0;
    }
    return UNB_BLOCKING(UNB_REAL(sigwait)(set, sig));
}

UNB_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
    int own = own_pending(set, info);
    if (own)
        return own;
    return UNB_BLOCKING(UNB_REAL(sigwaitinfo)(set, info));
}

UNB_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info,
                            const struct timespec *timeout)
{
    int own = own_pending(set, info);
    if (own)
        return own;
    return UNB_BLOCKING(UNB_REAL(sigtimedwait)(set, info, timeout));
}
