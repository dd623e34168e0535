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
 * O_NONBLOCK belongs to the open file, and the timeouts to the socket, not
 * to the descriptor: every descriptor of one open file sees a change made
 * through any of them.  The entries of descriptors the runtime saw made
 * from one another (dup, dup2, dup3, F_DUPFD, F_DUPFD_CLOEXEC) are linked
 * in a ring, and a change is written to all of them.  Other sharing cannot
 * be followed: a file the runtime did not see created (inherited, received
 * with SCM_RIGHTS, opened by a call no hook sees), one sent with
 * SCM_RIGHTS, and every file open at a fork (parent and child share it
 * from then on) is *shared*: its entry is a cache that a call checks
 * against the kernel (F_GETFL, getsockopt) before its first park.  The
 * common case, a socket or pipe made in this process and not shared since,
 * costs no syscall.
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
    uint8_t shared;                     /* the file may be shared unseen (above) */
    _Atomic uint32_t gen;               /* bumped when the fd is closed or reset */
    uint32_t forks;                     /* unb__fd_forks when the file was recorded */
    int32_t dup_next;                   /* next fd of the same open file, or -1 */
    int64_t rcvtimeo_ns;                /* SO_RCVTIMEO, 0 for none */
    int64_t sndtimeo_ns;                /* SO_SNDTIMEO, 0 for none */
    struct unb__pd *pd;                 /* watchers and waiters, or NULL */
};

/* Forks made so far (bumped before each): files recorded before one are
 * shared with the other process. */
extern _Atomic uint32_t unb__fd_forks;

/* May the entry's file be shared beyond what the runtime saw? */
static inline bool unb__fd_shared(const struct unb__fd *e)
{
    return e->shared ||
           e->forks != atomic_load_explicit(&unb__fd_forks, memory_order_relaxed);
}

/* What the program sets on an open file or socket (unb__fd_set). */
enum unb__fd_field {
    UNB_FDF_USER_NONBLOCK,
    UNB_FDF_SYS_NONBLOCK,
    UNB_FDF_RCVTIMEO,
    UNB_FDF_SNDTIMEO,
    UNB_FDF_SHARED,
};

/* Sets a field on fd's entry and on those of its duplicates (nothing if
 * fd has no entry). */
void unb__fd_set(int fd, enum unb__fd_field f, int64_t value);

/* After newfd was made a duplicate of oldfd (newfd's old file, if any,
 * already forgotten through unb__fd_closing): newfd joins oldfd's file. */
void unb__fd_dup(int oldfd, int newfd);

/* In the parent, before a fork: every open file becomes shared. */
void unb__fd_forking(void);

/* The entry for fd, allocating its page; NULL for a negative fd, one past
 * the table, or when memory runs out (callers then act natively). */
struct unb__fd *unb__fd_get(int fd);

/* The table (fd.c): an array of pages of UNB_FD_PAGE_ENTRIES entries,
 * made once with npages slots and published with a release store after
 * npages; a slot's page is published the same way once allocated. */
#define UNB_FD_PAGE_SHIFT 10
#define UNB_FD_PAGE_ENTRIES (1 << UNB_FD_PAGE_SHIFT)
struct unb__fd_table {
    _Atomic(struct unb__fd *) *pages;
    unsigned npages;
};
extern struct unb__fd_table unb__fd_table;

/* The entry if its page exists, else NULL; never allocates.  Inline: every
 * hooked read and write looks here first, and for a file or a device
 * that is all the lookup costs. */
static inline struct unb__fd *unb__fd_peek(int fd)
{
    _Atomic(struct unb__fd *) *pages =
        __atomic_load_n(&unb__fd_table.pages, __ATOMIC_ACQUIRE);
    if (unb_unlikely(!pages) || (unsigned)fd >> UNB_FD_PAGE_SHIFT >= unb__fd_table.npages)
        return NULL; /* a negative fd too: unsigned, it is past the table */
    struct unb__fd *page =
        atomic_load_explicit(&pages[(unsigned)fd >> UNB_FD_PAGE_SHIFT], memory_order_acquire);
    return page ? &page[fd & (UNB_FD_PAGE_ENTRIES - 1)] : NULL;
}

/* Forgets what was known of fd and records a new file there. */
void unb__fd_reset(int fd, enum unb__fd_kind kind, bool user_nonblock,
                   bool sys_nonblock);

/*
 * Parks the calling coroutine until fd is ready for `events` (EV_READ or
 * EV_WRITE), the deadline (CLOCK_MONOTONIC ns, 0 for none) passes, or the
 * fd is closed.  Returns 0, -ETIMEDOUT, -EBADF (closed while parked), or
 * -EINTR (a signal handler interrupted it; `restartable` says whether an
 * SA_RESTART handler would have the kernel restart the call instead).
 * `call`: the program's call that waits (calls.h); `since`: the signal
 * arrivals counted when it began (intr.h: unb__intr_since).
 */
int unb__fd_wait(int fd, int events, int64_t deadline_ns, bool restartable,
                 enum unb__call call, uint64_t since);

/* Called before the real close (or dup2/dup3 over fd): parked waiters get
 * EBADF, and the entry forgets the file. */
void unb__fd_closing(int fd);

/* In a child after fork: forgets the parent's watchers and waiters. */
void unb__fd_fork_child(void);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t unb__now_ns(void);

/*
 * sec seconds and nsec nanoseconds in nanoseconds, and the time ns after
 * `at`, saturating as the kernel does a timeout it cannot represent: a
 * program may pass tv_sec = LONG_MAX for "forever", and that must be a
 * wait with no end (INT64_MAX, 292 years), not an overflow into the past.
 */
static inline int64_t unb__ns(int64_t sec, int64_t nsec)
{
    int64_t r;
    if (__builtin_mul_overflow(sec, INT64_C(1000000000), &r) ||
        __builtin_add_overflow(r, nsec, &r))
        return sec < 0 ? INT64_MIN : INT64_MAX;
    return r;
}

static inline int64_t unb__ns_after(int64_t at, int64_t ns)
{
    int64_t r;
    if (__builtin_add_overflow(at, ns, &r))
        return ns < 0 ? INT64_MIN : INT64_MAX;
    return r;
}

#endif
