/* Shared by the hook files of the I/O families (io.c, net.c, poll.c). */
#ifndef UNB_IO_H
#define UNB_IO_H

#include <stddef.h>
#include <sys/types.h>

#include "../runtime/fd.h"

/* The fd's entry if it is a socket or pipe the runtime can park on (it
 * looks at an unknown fd once: fstat, and O_NONBLOCK on sockets), else
 * NULL. */
struct unb__fd *unb__io_classify(int fd);

/* The absolute deadline for the fd's SO_RCVTIMEO (dir 0) or SO_SNDTIMEO
 * (dir 1), or 0. */
int64_t unb__io_deadline(const struct unb__fd *e, int dir);

/* Parks until fd is ready for dir; 0, or -1 with errno (EAGAIN on
 * timeout, EBADF if closed, EINTR).  call: the program's call (calls.h). */
int unb__io_park(int fd, struct unb__fd *e, int dir, int64_t deadline,
                 enum unb__call call);

/* The engines behind the read and write families (io.c). */
ssize_t unb__io_read(int fd, struct unb__fd *e, ssize_t (*op)(int, void *), void *ctx,
                     size_t want, enum unb__call call);
ssize_t unb__io_write(int fd, struct unb__fd *e, ssize_t (*op)(int, void *, size_t),
                      void *ctx, size_t want, enum unb__call call);


#endif
