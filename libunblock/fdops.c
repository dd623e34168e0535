/*
 * What changes an fd under the runtime's feet: close, dup2, dup3, pipe,
 * pipe2, fcntl (O_NONBLOCK), ioctl (FIONBIO).
 *
 * close() of a fd a coroutine is parked on wakes it with EBADF (the entry
 * detaches its poll descriptor first, so a reused fd number never delivers
 * another file's readiness to the old waiter).  The program's own
 * non-blocking mode is tracked, and F_GETFL shows it only what it set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

UNB_EXPORT int dup2(int oldfd, int newfd)
{
    if (oldfd != newfd)
        unb__fd_closing(newfd);
    return UNB_REAL(dup2)(oldfd, newfd);
}

UNB_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    if (oldfd != newfd)
        unb__fd_closing(newfd);
    return UNB_REAL(dup3)(oldfd, newfd, flags);
}

static void record_pipe(int fds[2])
{
    /* Pipes stay blocking in the kernel: a child process may share them. */
    unb__fd_reset(fds[0], UNB_FD_UNKNOWN, false, false);
    unb__fd_reset(fds[1], UNB_FD_UNKNOWN, false, false);
}

UNB_EXPORT int pipe(int fds[2])
{
    int rc = UNB_REAL(pipe)(fds);
    if (rc == 0)
        record_pipe(fds);
    return rc;
}

UNB_EXPORT int pipe2(int fds[2], int flags)
{
    int rc = UNB_REAL(pipe2)(fds, flags);
    if (rc == 0)
        record_pipe(fds);
    return rc;
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
        if (rc == 0 && (e || (e = unb__fd_peek(fd))))
            e->user_nonblock = (fl & O_NONBLOCK) != 0;
        return rc;
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
            e->user_nonblock = on != 0;
        return rc;
    }
    return UNB_REAL(ioctl)(fd, req, arg);
}
