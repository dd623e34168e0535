/*
 * What changes an fd under the runtime's feet: close, dup, dup2, dup3,
 * pipe, pipe2, fcntl (O_NONBLOCK, F_DUPFD, F_DUPFD_CLOEXEC), ioctl
 * (FIONBIO), fork.
 *
 * close() of a fd a coroutine is parked on wakes it with EBADF (the entry
 * detaches its poll descriptor first, so a reused fd number never delivers
 * another file's readiness to the old waiter).  The program's own
 * non-blocking mode is tracked per open file (runtime/fd.h: a duplicate
 * joins its original's ring; a fork makes every open file shared), and
 * F_GETFL shows it only what it set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../runtime/fd.h"
#include "../runtime/sched.h"
#include "real.h"

UNB_EXPORT int close(int fd)
{
    unb__fd_closing(fd);
    return UNB_REAL(close)(fd);
}

UNB_EXPORT int dup(int oldfd)
{
    int fd = UNB_REAL(dup)(oldfd);
    if (fd >= 0)
        unb__fd_dup(oldfd, fd);
    return fd;
}

UNB_EXPORT int dup2(int oldfd, int newfd)
{
    if (oldfd != newfd)
        unb__fd_closing(newfd);
    int fd = UNB_REAL(dup2)(oldfd, newfd);
    if (fd >= 0)
        unb__fd_dup(oldfd, fd);
    return fd;
}

UNB_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    if (oldfd != newfd)
        unb__fd_closing(newfd);
    int fd = UNB_REAL(dup3)(oldfd, newfd, flags);
    if (fd >= 0)
        unb__fd_dup(oldfd, fd);
    return fd;
}

static void record_pipe(int fds[2], int flags)
{
    /* Pipes stay blocking in the kernel: a child process may share them. */
    bool nb = (flags & O_NONBLOCK) != 0;
    unb__fd_reset(fds[0], UNB_FD_PIPE, nb, false);
    unb__fd_reset(fds[1], UNB_FD_PIPE, nb, false);
    struct unb__fd *e;
    if ((e = unb__fd_peek(fds[0])))
        e->accmode = O_RDONLY;
    if ((e = unb__fd_peek(fds[1])))
        e->accmode = O_WRONLY;
}

UNB_EXPORT int pipe(int fds[2])
{
    int rc = UNB_REAL(pipe)(fds);
    if (rc == 0)
        record_pipe(fds, 0);
    return rc;
}

UNB_EXPORT int pipe2(int fds[2], int flags)
{
    int rc = UNB_REAL(pipe2)(fds, flags);
    if (rc == 0)
        record_pipe(fds, flags);
    return rc;
}

/* Files open at a fork are shared with the child from then on (fd.h). */
__attribute__((constructor)) static void fdops_init(void)
{
    pthread_atfork(unb__fd_forking, NULL, NULL);
}

/* The fd's entry if the runtime holds O_NONBLOCK in the kernel for it. */
static struct unb__fd *managed(int fd)
{
    struct unb__fd *e = unb__fd_peek(fd);
    return e && e->sys_nonblock ? e : NULL;
}

static int do_fcntl(__typeof__(&fcntl) real, int fd, int cmd, void *arg)
{
    struct unb__fd *e;
    switch (cmd) {
    case F_GETFL: {
        int fl = real(fd, cmd);
        if (fl >= 0 && (e = managed(fd)) && !e->user_nonblock)
            fl &= ~O_NONBLOCK;
        return fl;
    }
    case F_SETFL: {
        int fl = (int)(long)arg;
        e = managed(fd);
        int rc = real(fd, cmd, e ? fl | O_NONBLOCK : fl);
        if (rc == 0)
            unb__fd_set(fd, UNB_FDF_USER_NONBLOCK, (fl & O_NONBLOCK) != 0);
        return rc;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int nfd = real(fd, cmd, arg);
        if (nfd >= 0)
            unb__fd_dup(fd, nfd);
        return nfd;
    }
    case F_SETLKW:
    case F_OFD_SETLKW: /* waits for another process's lock: may block long */
        return UNB_BLOCKING(real(fd, cmd, arg));
    default: return real(fd, cmd, arg);
    }
}

UNB_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *); /* as glibc: every argument fits */
    va_end(ap);
    return do_fcntl(UNB_REAL(fcntl), fd, cmd, arg);
}

UNB_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(UNB_REAL(fcntl64), fd, cmd, arg);
}

UNB_EXPORT int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct unb__fd *e;
    if (req == FIONBIO && arg && (e = unb__fd_peek(fd))) {
        int on = *(int *)arg;
        int keep = 1;
        int rc = UNB_REAL(ioctl)(fd, req, e->sys_nonblock ? &keep : arg);
        if (rc == 0)
            unb__fd_set(fd, UNB_FDF_USER_NONBLOCK, on != 0);
        return rc;
    }
    return UNB_REAL(ioctl)(fd, req, arg);
}
