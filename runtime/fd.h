/*
 * Per-fd state and parking on fds.
 *
 * Every fd a coroutine uses has an entry (struct unb__fd) in a two-level
 * table sized by the process's fd limit, allocated a page of entries at a
 * time and never freed.  An entry records what the hooks must know to keep
 * native semantics: the kind of file, whether the *program* asked for
 * O_NONBLOCK (it then gets EAGAIN, never a park), the socket timeouts, and
 * readiness hints.
 *
 * Parking uses a poll descriptor (struct unb__pd, in fd.c) created at the
 * fd's first park on the worker that parks, its *home*: the libev watchers
 * live on the home's loop and stay started across parks, so a coroutine
 * that reads, is woken, reads and parks again costs no epoll_ctl.  A
 * coroutine that parks on a fd homed elsewhere first moves to the home
 * worker (unb__sched_migrate), so all of a descriptor's watchers and
 * waiters are only ever touched by one thread.  close() detaches the
 * descriptor from the entry and has the home stop its watchers and wake
 * its waiters with EBADF before the fd is really closed (libev must never
 * see a closed fd in a started watcher); a close on another thread waits
 * for the home's answer.
 */
#ifndef UNB_FD_H
#define UNB_FD_H

#include <stdbool.h>
#include <stdint.h>

#include "calls.h"
#include "common.h"

enum unb__fd_kind {
    UNB_FD_UNKNOWN = 0, /* not looked at yet */
    UNB_FD_SOCKET,      /* parkable; O_NONBLOCK set in the kernel */
    UNB_FD_PIPE,        /* parkable on readiness; kernel flags untouched */
    UNB_FD_NATIVE,      /* never parked: files, ttys, devices, ... */
};

struct unb__pd;

/* The plain bytes come first, in a 4-byte word of their own: gcc merges
 * tests of two of them (kind and accmode) into one load of the aligned
 * word that holds both, and ThreadSanitizer instruments that load; if it
 * also held the atomic bytes, it would be reported as racing with their
 * updates. */
struct unb__fd {
    uint8_t kind;                       /* enum unb__fd_kind */
    uint8_t user_nonblock;              /* the program set O_NONBLOCK itself */
    uint8_t sys_nonblock;               /* O_NONBLOCK is set in the kernel */
    uint8_t accmode;                    /* a pipe's O_RDONLY, O_WRONLY or O_RDWR */
    _Atomic uint8_t lock;               /* guards pd */
    _Atomic uint8_t rd_ready, wr_ready; /* hints: try the call before parking */
    _Atomic uint32_t gen;               /* bumped when the fd is closed or reset */
    int64_t rcvtimeo_ns;                /* SO_RCVTIMEO, 0 for none */
    int64_t sndtimeo_ns;                /* SO_SNDTIMEO, 0 for none */
    struct unb__pd *pd;                 /* watchers and waiters, or NULL */
};

/* The entry for fd, allocating its page; NULL for a negative fd, one past
 * the table, or when memory runs out (callers then act natively). */
struct unb__fd *unb__fd_get(int fd);

/* The entry if its page exists, else NULL; never allocates. */
struct unb__fd *unb__fd_peek(int fd);

/* Forgets what was known of fd and records a new file there. */
void unb__fd_reset(int fd, enum unb__fd_kind kind, bool user_nonblock,
                   bool sys_nonblock);

/*
 * Parks the calling coroutine until fd is ready for `events` (EV_READ or
 * EV_WRITE), the deadline (CLOCK_MONOTONIC ns, 0 for none) passes, or the
 * fd is closed.  Returns 0, -ETIMEDOUT, -EBADF (closed while parked), or
 * -EINTR (a signal handler interrupted it; `restartable` says whether an
 * SA_RESTART handler would have the kernel restart the call instead).
 * `call`: the program's call that waits (calls.h).
 */
int unb__fd_wait(int fd, int events, int64_t deadline_ns, bool restartable,
                 enum unb__call call);

/* Called before the real close (or dup2/dup3 over fd): parked waiters get
 * EBADF, and the entry forgets the file. */
void unb__fd_closing(int fd);

/* In a child after fork: forgets the parent's watchers and waiters. */
void unb__fd_fork_child(void);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t unb__now_ns(void);

#endif
