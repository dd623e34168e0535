/*
 * Sockets: socket, socketpair, accept, accept4, connect, setsockopt.
 *
 * A socket keeps the file status flags the program gave it (io.c says
 * why); the entry records whether the program asked for non-blocking mode.
 * Two calls need the kernel's help to wait without blocking the worker:
 *
 *   - accept has no per-call non-blocking flag, so a listening socket that
 *     a coroutine accepts on is made non-blocking in the kernel, once (the
 *     entry's sys_nonblock; F_GETFL still shows the program its own flags,
 *     and a plain thread's accept on it still blocks: it waits in poll).
 *   - connect on a blocking socket is made non-blocking for the duration of
 *     the call (FIONBIO, one syscall each way), parks until the handshake
 *     ends, and leaves the socket blocking again.  A connect to an AF_UNIX
 *     listener whose backlog is full fails with EAGAIN when non-blocking;
 *     the blocking call waits for room (until SO_SNDTIMEO runs out: then
 *     EAGAIN).  Nothing can be polled for that room, so the coroutine
 *     tries again after naps of 1 ms doubling up to 16 ms.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "../runtime/fd.h"
#include "../runtime/sched.h"
#include "../runtime/timer.h"
#include "io.h"
#include "real.h"

/* Records a socket fd just created with `flags` (SOCK_NONBLOCK...) by the
 * program. */
static void record(int fd, int flags)
{
    if (fd >= 0)
        unb__fd_reset(fd, UNB_FD_SOCKET, (flags & SOCK_NONBLOCK) != 0, false);
}

UNB_EXPORT int socket(int domain, int type, int protocol)
{
    int fd = UNB_REAL(socket)(domain, type, protocol);
    record(fd, type);
    return fd;
}

UNB_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
    int rc = UNB_REAL(socketpair)(domain, type, protocol, sv);
    if (rc == 0) {
        record(sv[0], type);
        record(sv[1], type);
    }
    return rc;
}

/* Makes a listening socket non-blocking in the kernel for accept; false if
 * that failed (the caller then blocks, as natively). */
static bool listener_nonblock(int fd, struct unb__fd *e)
{
    if (e->sys_nonblock)
        return true;
    /* O_NONBLOCK found already set is taken as the runtime's: a listener
     * shared by the processes of a pre-forking server is made non-blocking
     * by the first one that accepts in a coroutine. */
    int fl = UNB_REAL(fcntl)(fd, F_GETFL);
    if (fl < 0 || UNB_REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return false;
    unb__fd_set(fd, UNB_FDF_SYS_NONBLOCK, 1);
    return true;
}

/*
 * Outside a coroutine, a listening socket the runtime made non-blocking
 * must still block for a program that never asked otherwise (a plain
 * thread accepting on it).  Called only after an EAGAIN: waits and returns
 * 1 to retry, or 0 to report the EAGAIN (SO_RCVTIMEO ran out).
 */
static int block_outside(int fd)
{
    struct unb__fd *e = unb__fd_peek(fd);
    if (!e || e->kind != UNB_FD_SOCKET || e->user_nonblock || !e->sys_nonblock)
        return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t t = e->rcvtimeo_ns; /* more ms than poll's int can hold: ppoll */
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    int r = UNB_REAL(ppoll)(&p, 1, t ? &ts : NULL, NULL);
    if (r == 0) {
        unb_errno = EAGAIN;
        return 0;
    }
    return r > 0;
}

UNB_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    unb__cancel_point();
    struct unb__fd *e = unb__sched_parkable() ? unb__io_classify(fd) : NULL;
    if (!e || e->user_nonblock || e->kind != UNB_FD_SOCKET ||
        !listener_nonblock(fd, e)) {
        int nfd;
        while ((nfd = UNB_REAL(accept4)(fd, addr, addrlen, flags)) < 0 &&
               (unb_errno == EAGAIN || unb_errno == EWOULDBLOCK) && !e &&
               block_outside(fd))
            ;
        record(nfd, flags);
        return nfd;
    }
    struct unb__io_wait cw = unb__io_begin();
    int saved = unb_errno; /* a call that succeeds leaves errno alone */
    for (;;) {
        int nfd = UNB_REAL(accept4)(fd, addr, addrlen, flags);
        if (nfd >= 0) {
            record(nfd, flags);
            unb_errno = saved;
            return nfd;
        }
        if (unb_errno != EAGAIN && unb_errno != EWOULDBLOCK)
            return -1;
        if (!unb__io_look(fd, e, 0, &cw) ||
            unb__io_park(fd, e, 0, &cw, UNB_CALL_ACCEPT) != 0)
            return -1;
    }
}

UNB_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return accept4(fd, addr, addrlen, 0);
}

static void set_fionbio(int fd, int on)
{
    int saved = unb_errno;
    UNB_REAL(ioctl)(fd, FIONBIO, &on);
    unb_errno = saved;
}

UNB_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    unb__cancel_point();
    struct unb__fd *e = unb__sched_parkable() ? unb__io_classify(fd) : NULL;
    struct unb__io_wait cw = unb__io_begin();
    if (!e || e->kind != UNB_FD_SOCKET || !unb__io_look(fd, e, 1, &cw))
        return UNB_REAL(connect)(fd, addr, len);
    bool toggle = !e->sys_nonblock;
    int saved = unb_errno; /* a blocking call that succeeds leaves errno alone */
    if (toggle)
        set_fionbio(fd, 1);
    int64_t deadline = cw.deadline;
    int rc;
    /* A blocking connect waits for the handshake: park until writable,
     * then connect again, which is how the kernel reports the outcome and
     * moves the socket to connected (0) or back to unconnected (the error),
     * as the blocking call leaves it. */
    bool unix_peer =
        addr && len >= sizeof addr->sa_family && addr->sa_family == AF_UNIX;
    int64_t nap = 1000000; /* ns, for a full AF_UNIX backlog */
    while ((rc = UNB_REAL(connect)(fd, addr, len)) != 0 &&
           (unb_errno == EINPROGRESS || unb_errno == EALREADY ||
            (unb_errno == EAGAIN && unix_peer))) {
        if (unb_errno == EAGAIN) {
            int64_t left = deadline ? deadline - unb__now_ns() : nap;
            if (left <= 0)
                goto out; /* SO_SNDTIMEO ran out: EAGAIN, as the kernel */
            int r = unb__nap(left < nap ? left : nap, !deadline, UNB_CALL_CONNECT,
                             cw.since);
            if (r != 0) {
                unb_errno = -r;
                goto out;
            }
            if (nap < 16000000)
                nap *= 2;
            continue;
        }
        if (unb__io_park(fd, e, 1, &cw, UNB_CALL_CONNECT) != 0) {
            if (unb_errno == EAGAIN) /* SO_SNDTIMEO ran out */
                unb_errno = EINPROGRESS;
            goto out;
        }
    }
    if (rc == 0)
        unb_errno = saved;
out:
    if (toggle && (rc == 0 || unb_errno != EBADF))
        set_fionbio(fd, 0);
    return rc;
}

static int64_t timeval_ns(const void *v, socklen_t len)
{
    if (len < sizeof(struct timeval))
        return -1;
    const struct timeval *tv = v;
    if (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)
        return -1;
    return unb__ns(tv->tv_sec, (int64_t)tv->tv_usec * 1000);
}

UNB_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    int rc = UNB_REAL(setsockopt)(fd, level, name, val, len);
    if (rc != 0 || level != SOL_SOCKET || (name != SO_RCVTIMEO && name != SO_SNDTIMEO))
        return rc;
    int64_t ns = timeval_ns(val, len);
    if (ns >= 0 && unb__fd_get(fd)) /* on every descriptor of the socket */
        unb__fd_set(fd, name == SO_RCVTIMEO ? UNB_FDF_RCVTIMEO : UNB_FDF_SNDTIMEO, ns);
    return rc;
}
