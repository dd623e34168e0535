/* Shared by the hook files of the I/O families (io.c, net.c, poll.c). */
#ifndef UNB_IO_H
#define UNB_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../runtime/fd.h"
#include "../runtime/intr.h"

/* The first look at an fd (unb__io_classify). */
struct unb__fd *unb__io_classify_new(int fd);

/* The fd's entry if it is a socket or pipe the runtime can park on (it
 * looks at an unknown fd once: fstat, and O_NONBLOCK on sockets), else
 * NULL.  An fd looked at before costs two loads and no call. */
static inline struct unb__fd *unb__io_classify(int fd)
{
    struct unb__fd *e = unb__fd_peek(fd);
    if (unb_likely(e && e->kind != UNB_FD_UNKNOWN))
        return e->kind == UNB_FD_NATIVE ? NULL : e;
    return unb__io_classify_new(fd);
}

/* A call's waiting state: what it learns of its fd's file before its
 * first park, and when it began (for signals).  Made with unb__io_begin()
 * at the call's start, and kept across the pieces of one call. */
struct unb__io_wait {
    int64_t deadline; /* from SO_RCVTIMEO or SO_SNDTIMEO (ns), 0 for none */
    uint64_t since;   /* signal arrivals when the call began (intr.h) */
    bool looked;
    bool nonblock; /* the program's file is non-blocking: do not wait */
};

static inline struct unb__io_wait unb__io_begin(void)
{
    return (struct unb__io_wait){.since = unb__intr_since()};
}

/*
 * Before a call's first park on fd (dir 0 read, 1 write): true if the
 * call may wait, and then cw->deadline is set.  For a file the runtime
 * cannot follow (runtime/fd.h: shared) it asks the kernel (F_GETFL and the
 * socket's timeout); otherwise it costs no syscall.
 */
bool unb__io_look(int fd, struct unb__fd *e, int dir, struct unb__io_wait *cw);

/* Parks until fd is ready for dir; 0, or -1 with errno (EAGAIN on
 * timeout, EBADF if closed, EINTR).  call: the program's call (calls.h). */
int unb__io_park(int fd, struct unb__fd *e, int dir, const struct unb__io_wait *cw,
                 enum unb__call call);

/* The engines behind the read and write families (io.c). */
ssize_t unb__io_read(int fd, struct unb__fd *e, ssize_t (*op)(int, void *), void *ctx,
                     size_t want, enum unb__call call, struct unb__io_wait *cw);
ssize_t unb__io_write(int fd, struct unb__fd *e, ssize_t (*op)(int, void *, size_t),
                      void *ctx, size_t want, enum unb__call call,
                      struct unb__io_wait *cw);

#endif
