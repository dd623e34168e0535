/*
 * The read and write families: read, write, readv, writev, recv, send,
 * recvfrom, sendto, recvmsg, sendmsg, and the fortified __*_chk variants.
 *
 * Inside a coroutine, on a socket or pipe the program did not make
 * non-blocking itself, a call that would block parks the coroutine
 * (runtime/fd.c) and returns what the blocking call would have returned:
 *
 *   - reads return as soon as any data is there (a short read is fine);
 *     recv with MSG_WAITALL keeps going until the length, EOF or an error;
 *   - writes keep going until everything is written, as a blocking write
 *     does; a signal or a timeout after partial progress returns the count
 *     written so far, an error after partial progress likewise (the error
 *     shows on the next call, as natively);
 *   - SO_RCVTIMEO/SO_SNDTIMEO end the wait with EAGAIN;
 *   - EINTR where the blocking call would give it (runtime/intr.h).
 *
 * Sockets stay as the program made them in the kernel: blocking unless it
 * asked otherwise.  Inside a coroutine, each attempt is made non-blocking
 * by the call itself (MSG_DONTWAIT: read becomes recv, write send, readv
 * recvmsg, writev sendmsg, which on a socket mean the same), and parks
 * only on EAGAIN.  So nothing the runtime does is visible to the kernel's
 * file status flags: stdio on a socket (whose I/O glibc makes with its
 * internal read and write, which no hook sees) blocks as natively instead
 * of failing with EAGAIN; a child process sharing the socket sees the
 * flags the program set; a plain thread blocks in the kernel as it
 * expects.  The one exception is a listening socket, which accept needs
 * non-blocking in the kernel (net.c).
 *
 * Syscall economy.  The fd's readiness hint lets a read that follows a
 * short read (the socket is then most likely drained) park at once
 * instead of paying for an EAGAIN first.  The park costs no syscall: the
 * watcher stays started across parks.  An echo round trip is then one
 * read and one write plus a share of one epoll_wait.
 *
 * Pipes stay blocking in the kernel (a child process may share them), so
 * a coroutine waits for readiness first (poll with a zero timeout, then a
 * park), and then makes the call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../runtime/fd.h"
#include "../runtime/sched.h"
#include "io.h"
#include "real.h"

/* ---- classification ------------------------------------------------- */

struct unb__fd *unb__io_classify_new(int fd)
{
    struct unb__fd *e = unb__fd_get(fd);
    if (!e)
        return NULL;
    if (e->kind != UNB_FD_UNKNOWN) /* classified by another thread meanwhile */
        return e->kind == UNB_FD_NATIVE ? NULL : e;
    /* A file the runtime did not see created: it may be shared with
     * whoever made it (runtime/fd.h). */
    struct stat st;
    if (fstat(fd, &st) != 0)
        return NULL; /* EBADF and friends: the native call reports them */
    e->shared = 1;
    int fl = UNB_REAL(fcntl)(fd, F_GETFL);
    if (fl < 0)
        return NULL;
    if (S_ISSOCK(st.st_mode)) {
        e->user_nonblock = (fl & O_NONBLOCK) != 0;
        e->kind = UNB_FD_SOCKET;
    } else if (S_ISFIFO(st.st_mode)) {
        e->user_nonblock = (fl & O_NONBLOCK) != 0;
        e->accmode = (uint8_t)(fl & O_ACCMODE);
        e->kind = UNB_FD_PIPE;
    } else {
        e->kind = UNB_FD_NATIVE;
        return NULL;
    }
    return e;
}

bool unb__io_look(int fd, struct unb__fd *e, int dir, struct unb__io_wait *cw)
{
    if (cw->looked)
        return !cw->nonblock;
    cw->looked = true;
    int64_t t = dir ? e->sndtimeo_ns : e->rcvtimeo_ns;
    if (unb_unlikely(unb__fd_shared(e))) {
        /* Another descriptor of the file (another process's, one passed
         * with SCM_RIGHTS) may have changed it: ask the kernel, which has
         * the program's flag unless the runtime set O_NONBLOCK itself. */
        int saved = unb_errno;
        if (!e->sys_nonblock) {
            int fl = UNB_REAL(fcntl)(fd, F_GETFL);
            if (fl >= 0)
                e->user_nonblock = (fl & O_NONBLOCK) != 0;
        }
        struct timeval tv;
        socklen_t len = sizeof tv;
        int opt = dir ? SO_SNDTIMEO : SO_RCVTIMEO;
        if (!e->user_nonblock && e->kind == UNB_FD_SOCKET &&
            getsockopt(fd, SOL_SOCKET, opt, &tv, &len) == 0 && len == sizeof tv) {
            t = unb__ns(tv.tv_sec, (int64_t)tv.tv_usec * 1000);
            if (dir)
                e->sndtimeo_ns = t;
            else
                e->rcvtimeo_ns = t;
        }
        unb_errno = saved;
    }
    cw->nonblock = e->user_nonblock;
    cw->deadline = !cw->nonblock && t ? unb__ns_after(unb__now_ns(), t) : 0;
    return !cw->nonblock;
}

/* Parks until fd is ready for dir: 0, or -1 with errno (EAGAIN for a
 * timeout, as SO_RCVTIMEO/SO_SNDTIMEO give it). */
static int wait_ready(int fd, int dir, const struct unb__io_wait *cw,
                      enum unb__call call)
{
    int rc = unb__fd_wait(fd, dir ? EV_WRITE : EV_READ, cw->deadline, !cw->deadline,
                          call, cw->since);
    if (rc == 0)
        return 0;
    unb_errno = rc == -ETIMEDOUT ? EAGAIN : -rc;
    return -1;
}

/* Waits until a pipe is ready without blocking the worker: 0 (ready, or
 * the program's file is non-blocking after all: the call is made as it
 * is), or -1 with errno. */
static int pipe_ready(int fd, struct unb__fd *e, int dir, struct unb__io_wait *cw,
                      enum unb__call call)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = dir ? POLLOUT : POLLIN};
        int saved = unb_errno;
        int r = UNB_REAL(poll)(&p, 1, 0);
        if (r < 0 && unb_errno == EINTR) {
            /* A handler ran on this thread during the look: the thread was
             * running, not blocked, so this is no interruption of the
             * program's call (the runtime delivers those, intr.h); poll
             * gives EINTR even with SA_RESTART.  Look again. */
            unb_errno = saved;
            continue;
        }
        if (r != 0)
            return r < 0 ? -1 : 0; /* ready, hung up, or an error: call */
        if (!unb__io_look(fd, e, dir, cw))
            return 0;
        if (wait_ready(fd, dir, cw, call) != 0)
            return -1;
    }
}

int unb__io_park(int fd, struct unb__fd *e, int dir, const struct unb__io_wait *cw,
                 enum unb__call call)
{
    atomic_store_explicit(dir ? &e->wr_ready : &e->rd_ready, 0, memory_order_relaxed);
    return wait_ready(fd, dir, cw, call);
}

/*
 * The read engine: op(fd, ctx) makes one non-blocking attempt.  `want` is
 * the size asked for (a shorter result clears the readiness hint).
 */
ssize_t unb__io_read(int fd, struct unb__fd *e, ssize_t (*op)(int, void *), void *ctx,
                     size_t want, enum unb__call call, struct unb__io_wait *cw)
{
    unb__cancel_point();
    int saved = unb_errno; /* a call that succeeds leaves errno alone */
    if (e->kind == UNB_FD_PIPE && e->accmode == O_WRONLY)
        return op(fd, ctx); /* EBADF at once, as natively */
    for (;;) {
        if (e->kind == UNB_FD_PIPE) {
            if (pipe_ready(fd, e, 0, cw, call) != 0)
                return -1;
            ssize_t n = op(fd, ctx);
            if (n >= 0)
                unb_errno = saved;
            return n;
        }
        bool tried = false;
        if (atomic_load_explicit(&e->rd_ready, memory_order_relaxed)) {
            ssize_t n = op(fd, ctx);
            if (n >= 0) {
                if ((size_t)n < want)
                    atomic_store_explicit(&e->rd_ready, 0, memory_order_relaxed);
                unb_errno = saved;
                return n;
            }
            if (unb_errno != EAGAIN && unb_errno != EWOULDBLOCK)
                return -1;
            tried = true;
        }
        if (!unb__io_look(fd, e, 0, cw)) /* non-blocking after all */
            return tried ? -1 : op(fd, ctx);
        if (unb__io_park(fd, e, 0, cw, call) != 0)
            return -1;
    }
}

/*
 * The write engine: op(fd, ctx, done) writes from offset `done` of the
 * caller's data; the engine loops until `want` bytes are written.
 */
ssize_t unb__io_write(int fd, struct unb__fd *e, ssize_t (*op)(int, void *, size_t),
                      void *ctx, size_t want, enum unb__call call,
                      struct unb__io_wait *cw)
{
    unb__cancel_point();
    size_t done = 0;
    int entry_errno = unb_errno; /* a call that succeeds leaves errno alone */
    if (e->kind == UNB_FD_PIPE && e->accmode == O_RDONLY)
        return op(fd, ctx, 0); /* EBADF at once, as natively */
    for (;;) {
        if (e->kind == UNB_FD_PIPE && pipe_ready(fd, e, 1, cw, call) != 0)
            return done ? (ssize_t)done : -1;
        ssize_t n = op(fd, ctx, done);
        if (n >= 0) {
            done += (size_t)n;
            if (done >= want || e->kind == UNB_FD_PIPE ||
                !unb__io_look(fd, e, 1, cw)) { /* non-blocking: a short write */
                unb_errno = entry_errno;
                return (ssize_t)done;
            }
            continue;
        }
        if (unb_errno != EAGAIN && unb_errno != EWOULDBLOCK)
            return done ? (ssize_t)done : -1;
        if (!unb__io_look(fd, e, 1, cw)) { /* non-blocking after all */
            if (!done)
                return -1;
            unb_errno = entry_errno;
            return (ssize_t)done;
        }
        if (e->kind == UNB_FD_PIPE)
            continue;
        if (unb__io_park(fd, e, 1, cw, call) != 0) {
            if (!done)
                return -1;
            unb_errno = entry_errno; /* partial progress: a count, no error */
            return (ssize_t)done;
        }
    }
}

/* Is this call one for the runtime to park?  Returns the entry, or NULL
 * for the native call. */
static inline struct unb__fd *parkable(int fd)
{
    if (!unb__sched_parkable())
        return NULL;
    struct unb__fd *e = unb__io_classify(fd);
    /* A shared file the program made non-blocking may have been made
     * blocking through another descriptor: the engine asks before it
     * parks (unb__io_look). */
    return e && (!e->user_nonblock || unb__fd_shared(e)) ? e : NULL;
}

/* For the socket calls (recv, send and their families): on anything but a
 * socket they fail at once (ENOTSOCK), so they are made natively. */
static inline struct unb__fd *sock_parkable(int fd)
{
    struct unb__fd *e = parkable(fd);
    return e && e->kind == UNB_FD_SOCKET ? e : NULL;
}

/*
 * Receives that a blocking socket answers at once: recv(MSG_OOB) never
 * waits (the urgent byte, EINVAL without one, EAGAIN before it arrives),
 * and a TCP recv of 0 bytes returns 0 at once, while a non-blocking
 * attempt at either gets EAGAIN.  (An AF_UNIX or UDP recv of 0 bytes does
 * wait for data.)  These go to the kernel as the program made them.  The
 * protocol is asked only for receives of 0 bytes.
 */
static bool recv_at_once(int fd, size_t want, int flags)
{
    if (flags & MSG_OOB)
        return true;
    if (want != 0)
        return false;
    int proto = 0, saved = unb_errno;
    socklen_t len = sizeof proto;
    bool tcp = getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 &&
               proto == IPPROTO_TCP;
    unb_errno = saved;
    return tcp;
}

/* ---- read family ------------------------------------------------------ */

struct rd {
    bool sock; /* a socket: attempts carry MSG_DONTWAIT */
    void *buf;
    size_t len;
    int flags;
    struct sockaddr *addr;
    socklen_t *addrlen;
    const struct iovec *iov;
    int iovcnt;
    struct msghdr *msg;
};

static ssize_t op_read(int fd, void *c)
{
    struct rd *r = c;
    if (r->sock)
        return UNB_REAL(recvfrom)(fd, r->buf, r->len, MSG_DONTWAIT, NULL, NULL);
    return UNB_REAL(read)(fd, r->buf, r->len);
}

static ssize_t op_readv(int fd, void *c)
{
    struct rd *r = c;
    if (r->sock) {
        struct msghdr m = {.msg_iov = (struct iovec *)r->iov,
                           .msg_iovlen = (size_t)r->iovcnt};
        return UNB_REAL(recvmsg)(fd, &m, MSG_DONTWAIT);
    }
    return UNB_REAL(readv)(fd, r->iov, r->iovcnt);
}

static ssize_t op_recvfrom(int fd, void *c)
{
    struct rd *r = c;
    return UNB_REAL(recvfrom)(fd, r->buf, r->len,
                              r->flags | (r->sock ? MSG_DONTWAIT : 0), r->addr,
                              r->addrlen);
}

static ssize_t op_recvmsg(int fd, void *c)
{
    struct rd *r = c;
    return UNB_REAL(recvmsg)(fd, r->msg, r->flags | (r->sock ? MSG_DONTWAIT : 0));
}

static size_t iov_total(const struct iovec *iov, int n)
{
    size_t t = 0;
    for (int i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

UNB_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
    struct unb__fd *e = parkable(fd);
    if (!e) /* a file, a terminal, a device: may block */
        return UNB_BLOCKING_SYS3(read, SYS_read, fd, buf, len);
    struct rd r = {.sock = e->kind == UNB_FD_SOCKET, .buf = buf, .len = len};
    if (len == 0) /* read(2) of nothing never waits (recv of nothing does) */
        return UNB_REAL(read)(fd, buf, len);
    struct unb__io_wait cw = unb__io_begin();
    return unb__io_read(fd, e, op_read, &r, len, UNB_CALL_READ, &cw);
}

UNB_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    struct unb__fd *e = parkable(fd);
    if (!e) /* a file, a terminal, a device: may block */
        return UNB_BLOCKING(UNB_REAL(readv)(fd, iov, iovcnt));
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return UNB_REAL(readv)(fd, iov, iovcnt); /* EINVAL */
    struct rd r = {.sock = e->kind == UNB_FD_SOCKET, .iov = iov, .iovcnt = iovcnt};
    size_t want = iov_total(iov, iovcnt);
    if (want == 0)
        return UNB_REAL(readv)(fd, iov, iovcnt);
    struct unb__io_wait cw = unb__io_begin();
    return unb__io_read(fd, e, op_readv, &r, want, UNB_CALL_READV, &cw);
}

UNB_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
                            struct sockaddr *addr, socklen_t *addrlen)
{
    if (flags & MSG_DONTWAIT) /* the program asked not to wait */
        return UNB_REAL(recvfrom)(fd, buf, len, flags, addr, addrlen);
    struct unb__fd *e = sock_parkable(fd);
    if (!e)
        return UNB_REAL(recvfrom)(fd, buf, len, flags, addr, addrlen);
    if (recv_at_once(fd, len, flags)) {
        unb__cancel_point();
        return UNB_REAL(recvfrom)(fd, buf, len, flags, addr, addrlen);
    }
    struct rd r = {.sock = e->kind == UNB_FD_SOCKET,
                   .buf = buf,
                   .len = len,
                   .flags = flags,
                   .addr = addr,
                   .addrlen = addrlen};
    struct unb__io_wait cw = unb__io_begin();
    if (!(flags & MSG_WAITALL) || e->kind != UNB_FD_SOCKET)
        return unb__io_read(fd, e, op_recvfrom, &r, len, UNB_CALL_RECV, &cw);
    /* MSG_WAITALL: the kernel does not wait on a MSG_DONTWAIT attempt.
     * One SO_RCVTIMEO deadline bounds the whole call, as in the kernel. */
    size_t got = 0;
    while (got < len) {
        r.buf = (char *)buf + got;
        r.len = len - got;
        ssize_t n = unb__io_read(fd, e, op_recvfrom, &r, r.len, UNB_CALL_RECV, &cw);
        if (n <= 0)
            return got ? (ssize_t)got : n;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

UNB_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    return recvfrom(fd, buf, len, flags, NULL, NULL);
}

/*
 * Descriptors passed with SCM_RIGHTS share their open file with the
 * sender's (runtime/fd.h).  The sender's become shared; a received one's
 * entry forgets what it knew of the number (the file is looked at when
 * used, and is then shared).  Only messages with ancillary data pay.
 */
static void passed_fds(const struct msghdr *msg, bool received)
{
    if (!msg || !msg->msg_control || msg->msg_controllen < sizeof(struct cmsghdr))
        return;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c;
         c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *p = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int pfd;
            memcpy(&pfd, p + i * sizeof pfd, sizeof pfd);
            if (received)
                unb__fd_closing(pfd);
            else
                unb__fd_set(pfd, UNB_FDF_SHARED, 1);
        }
    }
}

static ssize_t recvmsg_in(int fd, struct msghdr *msg, int flags);

UNB_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    ssize_t n = recvmsg_in(fd, msg, flags);
    if (n >= 0 && msg && msg->msg_controllen) {
        int saved = unb_errno;
        passed_fds(msg, true);
        unb_errno = saved;
    }
    return n;
}

static ssize_t recvmsg_in(int fd, struct msghdr *msg, int flags)
{
    if (flags & MSG_DONTWAIT)
        return UNB_REAL(recvmsg)(fd, msg, flags);
    struct unb__fd *e = sock_parkable(fd);
    if (!e)
        return UNB_REAL(recvmsg)(fd, msg, flags);
    struct rd r = {.sock = e->kind == UNB_FD_SOCKET, .msg = msg, .flags = flags};
    size_t want = msg && msg->msg_iovlen <= IOV_MAX
                      ? iov_total(msg->msg_iov, (int)msg->msg_iovlen)
                      : 0;
    if (recv_at_once(fd, want, flags)) {
        unb__cancel_point();
        return UNB_REAL(recvmsg)(fd, msg, flags);
    }
    struct unb__io_wait cw = unb__io_begin();
    return unb__io_read(fd, e, op_recvmsg, &r, want, UNB_CALL_RECVMSG, &cw);
}

/* ---- write family ----------------------------------------------------- */

struct wr {
    bool sock; /* a socket: attempts carry MSG_DONTWAIT */
    const void *buf;
    size_t len;
    int flags;
    const struct sockaddr *addr;
    socklen_t addrlen;
    const struct iovec *iov;
    int iovcnt;
    const struct msghdr *msg;
};

/* A blocking send cut short by the peer after some bytes went returns the
 * count without SIGPIPE (the kernel raises it only when nothing was
 * sent): the attempts after partial progress must not raise it either. */
static inline int nosignal_after(size_t done)
{
    return done ? MSG_NOSIGNAL : 0;
}

static ssize_t op_write(int fd, void *c, size_t done)
{
    struct wr *w = c;
    if (w->sock)
        return UNB_REAL(sendto)(fd, (const char *)w->buf + done, w->len - done,
                                MSG_DONTWAIT | nosignal_after(done), NULL, 0);
    return UNB_REAL(write)(fd, (const char *)w->buf + done, w->len - done);
}

static ssize_t op_sendto(int fd, void *c, size_t done)
{
    struct wr *w = c;
    return UNB_REAL(sendto)(fd, (const char *)w->buf + done, w->len - done,
                            w->flags | MSG_DONTWAIT | nosignal_after(done), w->addr,
                            w->addrlen);
}

/*
 * Vectored writes resume after partial progress on a copy of the vector
 * advanced past what was written (only when that happens).
 */
static ssize_t writev_from(int fd, const struct msghdr *msg, int flags, size_t done,
                           bool is_msg)
{
    const struct iovec *iov = msg->msg_iov;
    int n = (int)msg->msg_iovlen;
    if (done == 0) {
        if (is_msg)
            return UNB_REAL(sendmsg)(fd, msg, flags);
        return UNB_REAL(writev)(fd, iov, n);
    }
    int i = 0;
    while (i < n && done >= iov[i].iov_len)
        done -= iov[i++].iov_len;
    struct iovec small[8];
    struct iovec *rest = n - i <= 8 ? small : malloc(sizeof *rest * (size_t)(n - i));
    if (!rest) {
        unb_errno = ENOMEM;
        return -1;
    }
    memcpy(rest, iov + i, sizeof *rest * (size_t)(n - i));
    if (n > i) {
        rest[0].iov_base = (char *)rest[0].iov_base + done;
        rest[0].iov_len -= done;
    }
    ssize_t r;
    if (is_msg) {
        struct msghdr m = *msg;
        m.msg_iov = rest;
        m.msg_iovlen = (size_t)(n - i);
        m.msg_control = NULL; /* ancillary data went with the first part */
        m.msg_controllen = 0;
        r = UNB_REAL(sendmsg)(fd, &m, flags);
    } else {
        r = UNB_REAL(writev)(fd, rest, n - i);
    }
    if (rest != small) {
        int saved = unb_errno;
        free(rest);
        unb_errno = saved;
    }
    return r;
}

static ssize_t op_writev(int fd, void *c, size_t done)
{
    struct wr *w = c;
    struct msghdr m = {.msg_iov = (struct iovec *)w->iov,
                       .msg_iovlen = (size_t)w->iovcnt};
    /* On a socket, writev is sendmsg without ancillary data. */
    return writev_from(fd, &m, MSG_DONTWAIT | nosignal_after(done), done, w->sock);
}

static ssize_t op_sendmsg(int fd, void *c, size_t done)
{
    struct wr *w = c;
    return writev_from(fd, w->msg, w->flags | MSG_DONTWAIT | nosignal_after(done), done,
                       true);
}

UNB_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
    struct unb__fd *e = parkable(fd);
    if (!e) /* a file, a terminal, a device: may block */
        return UNB_BLOCKING_SYS3(write, SYS_write, fd, buf, len);
    struct wr w = {.sock = e->kind == UNB_FD_SOCKET, .buf = buf, .len = len};
    struct unb__io_wait cw = unb__io_begin();
    return unb__io_write(fd, e, op_write, &w, len, UNB_CALL_WRITE, &cw);
}

UNB_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
                          const struct sockaddr *addr, socklen_t addrlen)
{
    if (flags & MSG_DONTWAIT)
        return UNB_REAL(sendto)(fd, buf, len, flags, addr, addrlen);
    struct unb__fd *e = sock_parkable(fd);
    if (!e)
        return UNB_REAL(sendto)(fd, buf, len, flags, addr, addrlen);
    struct wr w = {.sock = e->kind == UNB_FD_SOCKET,
                   .buf = buf,
                   .len = len,
                   .flags = flags,
                   .addr = addr,
                   .addrlen = addrlen};
    struct unb__io_wait cw = unb__io_begin();
    return unb__io_write(fd, e, op_sendto, &w, len, UNB_CALL_SEND, &cw);
}

UNB_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    return sendto(fd, buf, len, flags, NULL, 0);
}

UNB_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    struct unb__fd *e = parkable(fd);
    if (!e || iovcnt < 0 || iovcnt > IOV_MAX) /* a file, a terminal, a device */
        return UNB_BLOCKING(UNB_REAL(writev)(fd, iov, iovcnt));
    struct wr w = {.sock = e->kind == UNB_FD_SOCKET, .iov = iov, .iovcnt = iovcnt};
    struct unb__io_wait cw = unb__io_begin();
    return unb__io_write(fd, e, op_writev, &w, iov_total(iov, iovcnt), UNB_CALL_WRITEV,
                         &cw);
}

UNB_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (msg && msg->msg_controllen)
        passed_fds(msg, false); /* before: the receiver may act at once */
    if (flags & MSG_DONTWAIT)
        return UNB_REAL(sendmsg)(fd, msg, flags);
    struct unb__fd *e = sock_parkable(fd);
    if (!e || !msg || msg->msg_iovlen > IOV_MAX)
        return UNB_REAL(sendmsg)(fd, msg, flags);
    struct wr w = {.sock = e->kind == UNB_FD_SOCKET, .msg = msg, .flags = flags};
    struct unb__io_wait cw = unb__io_begin();
    return unb__io_write(fd, e, op_sendmsg, &w,
                         iov_total(msg->msg_iov, (int)msg->msg_iovlen),
                         UNB_CALL_SENDMSG, &cw);
}

/* ---- fortified variants ------------------------------------------------ */

extern void __chk_fail(void) __attribute__((noreturn));

UNB_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    if (len > buflen)
        __chk_fail();
    return read(fd, buf, len);
}

UNB_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
    if (len > buflen)
        __chk_fail();
    return recvfrom(fd, buf, len, flags, NULL, NULL);
}

UNB_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen,
                                  int flags, struct sockaddr *addr, socklen_t *addrlen)
{
    if (len > buflen)
        __chk_fail();
    return recvfrom(fd, buf, len, flags, addr, addrlen);
}
