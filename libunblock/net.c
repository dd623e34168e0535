/*
 * Sockets: socket, socketpair, accept, accept4, connect, setsockopt.
 *
 * Sockets a coroutine creates are made non-blocking in the kernel from
 * the start (SOCK_NONBLOCK: no extra syscall), and the entry remembers
 * whether the *program* asked for that.  Sockets made outside coroutines
 * are left alone until a coroutine first uses them (io.c classifies).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "../runtime/fd.h"
#include "../runtime/sched.h"
#include "io.h"
#include "real.h"

/* Records a socket fd just created with `type` flags by the program. */
static void record(int fd, int flags, bool in_coro)
{
    if (fd < 0)
        return;
    if (in_coro)
        unb__fd_reset(fd, UNB_FD_SOCKET, (flags & SOCK_NONBLOCK) != 0, true);
    else
        unb__fd_reset(fd, UNB_FD_UNKNOWN, false, false);
}

UNB_EXPORT int socket(int domain, int type, int protocol)
{
    bool co = unb__sched_current() != NULL;
    int fd = UNB_REAL(socket)(domain, co ? type | SOCK_NONBLOCK : type, protocol);
    record(fd, type, co);
    return fd;
}

UNB_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
    bool co = unb__sched_current() != NULL;
    int rc =
        UNB_REAL(socketpair)(domain, co ? type | SOCK_NONBLOCK : type, protocol, sv);
    if (rc == 0) {
        record(sv[0], type, co);
        record(sv[1], type, co);
    }
    return rc;
}

UNB_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    struct unb__fd *e = unb__sched_current() ? unb__io_classify(fd) : NULL;
    if (!e || e->user_nonblock) {
        int nfd;
        while ((nfd = UNB_REAL(accept4)(fd, addr, addrlen, flags)) < 0 &&
               (unb_errno == EAGAIN || unb_errno == EWOULDBLOCK) && !e &&
               unb__io_block_outside(fd, 0))
            ;
        record(nfd, flags, false);
        return nfd;
    }
    int64_t deadline = unb__io_deadline(e, 0);
    for (;;) {
        int nfd = UNB_REAL(accept4)(fd, addr, addrlen, flags | SOCK_NONBLOCK);
        if (nfd >= 0) {
            record(nfd, flags, true);
            return nfd;
        }
        if (unb_errno != EAGAIN && unb_errno != EWOULDBLOCK)
            return -1;
        if (unb__io_park(fd, e, 0, deadline) != 0)
            return -1;
    }
}

UNB_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return accept4(fd, addr, addrlen, 0);
}

UNB_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct unb__fd *e = unb__sched_current() ? unb__io_classify(fd) : NULL;
    int rc = UNB_REAL(connect)(fd, addr, len);
    if (rc == 0 || !e || e->user_nonblock || e->kind != UNB_FD_SOCKET ||
        unb_errno != EINPROGRESS)
        return rc;
    /* A blocking connect waits for the handshake: park until writable,
     * then report its outcome as the blocking call would. */
    if (unb__io_park(fd, e, 1, unb__io_deadline(e, 1)) != 0) {
        if (unb_errno == EAGAIN) /* SO_SNDTIMEO ran out */
            unb_errno = EINPROGRESS;
        return -1;
    }
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
        return -1;
    if (err != 0) {
        unb_errno = err;
        return -1;
    }
    return 0;
}

static int64_t timeval_ns(const void *v, socklen_t len)
{
    if (len < sizeof(struct timeval))
        return -1;
    const struct timeval *tv = v;
    if (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)
        return -1;
    return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

UNB_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    int rc = UNB_REAL(setsockopt)(fd, level, name, val, len);
    if (rc != 0 || level != SOL_SOCKET || (name != SO_RCVTIMEO && name != SO_SNDTIMEO))
        return rc;
    int64_t ns = timeval_ns(val, len);
    struct unb__fd *e = unb__fd_get(fd);
    if (e && ns >= 0) {
        if (name == SO_RCVTIMEO)
            e->rcvtimeo_ns = ns;
        else
            e->sndtimeo_ns = ns;
    }
    return rc;
}
