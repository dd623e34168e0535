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
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "../runtime/common.h"

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
    X(pthread_join)

struct unb__real_table {
    _Atomic bool ready;
#define UNB_REAL_FIELD(name) __typeof__(&name) name;
    UNB_REAL_SYMBOLS(UNB_REAL_FIELD)
#undef UNB_REAL_FIELD
};

extern struct unb__real_table unb__real;

/* Fills the table; safe to call more than once and from several threads. */
void unb__real_resolve(void);

/* The real `name`: one predictable branch once the table is filled. */
#define UNB_REAL(name)                                                                 \
    ((unb_likely(atomic_load_explicit(&unb__real.ready, memory_order_acquire))         \
          ? (void)0                                                                    \
          : unb__real_resolve()),                                                      \
     unb__real.name)

#endif
