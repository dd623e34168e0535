/*
 * poll, ppoll, select, pselect.
 *
 * Inside a coroutine, a wait that would block parks the coroutine: the
 * runtime first asks the kernel with a zero timeout; if nothing is ready,
 * it starts a libev watcher per fd (and a timer) on the current worker's
 * loop, parks until one fires, and asks the kernel again for the exact
 * revents.  The answer is always the kernel's own, so results, POLLNVAL and
 * errors are native.  EINTR: these calls are never restarted, so any
 * program handler interrupts them (runtime/intr.h).
 *
 * libev watches only readability and writability (EPOLLIN, EPOLLOUT).
 * Urgent data (POLLPRI, select's exceptfds) shows only as EPOLLPRI, and an
 * fd polled for no event at all still reports POLLHUP and POLLERR: such
 * fds go into an epoll instance of the call's own (EPOLLPRI, or no event:
 * epoll always reports hang-ups and errors), itself watched for
 * readability on the loop.  That costs an epoll_create1, an epoll_ctl per
 * such fd and a close, only in calls that ask for them.
 *
 * A per-call watcher costs an epoll_ctl per fd per blocking call; programs
 * that poll one fd at a time in a loop are better served by plain blocking
 * reads, which park for free.  ppoll's and pselect's signal mask is the
 * coroutine's for the call (runtime/sigmask.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#include "../runtime/fd.h"
#include "../runtime/intr.h"
#include "../runtime/sched.h"
#include "../runtime/sigmask.h"
#include "real.h"
#include "sigs.h"

struct pollwait;

struct pw {
    ev_io io;
    struct pollwait *pwait;
};

struct pollwait {
    struct unb__worker *w;
    struct pw *ws;
    nfds_t n;
    struct pw pri; /* on `epfd`, the fds that libev cannot watch, or -1 */
    bool timed, done;
    ev_timer timer;
    struct unb__intr it;
};

/* Stops every watcher; on the worker's thread, once. */
static void stop_all(struct pollwait *p)
{
    if (p->done)
        return;
    p->done = true;
    struct ev_loop *loop = unb__worker_loop(p->w);
    for (nfds_t i = 0; i < p->n; i++)
        if (ev_is_active(&p->ws[i].io))
            ev_io_stop(loop, &p->ws[i].io);
    if (ev_is_active(&p->pri.io))
        ev_io_stop(loop, &p->pri.io);
    if (p->timed)
        ev_timer_stop(loop, &p->timer);
    unb__worker_waiting_add(p->w, -1);
}

static void wake(struct pollwait *p)
{
    bool mine = unb__intr_complete_on_worker(&p->it);
    stop_all(p);
    if (mine)
        unb__sched_ready(p->it.co);
}

static void on_fd(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    wake(((struct pw *)io)->pwait);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct pollwait *p =
        (struct pollwait *)((char *)t - offsetof(struct pollwait, timer));
    p->timed = false;
    wake(p);
}

static void cancel(struct unb__intr *it)
{
    stop_all((struct pollwait *)((char *)it - offsetof(struct pollwait, it)));
}

/* Parks until one of fds may be ready or the deadline (ns, 0: none)
 * passes.  0, or -EINTR / -ENOMEM. */
static int park_in(struct pollfd *fds, nfds_t n, int64_t deadline, enum unb__call call,
                   uint64_t since)
{
    struct pw small[8];
    struct pw *ws = n <= 8 ? small : malloc(sizeof *ws * n);
    if (!ws)
        return -ENOMEM;
    struct pollwait p = {.w = unb__sched_worker(), .ws = ws, .n = n};
    struct ev_loop *loop = unb__worker_loop(p.w);
    int epfd = -1;
    int saved = unb_errno; /* the epoll calls' failures are not the program's */
    for (nfds_t i = 0; i < n; i++) {
        int ev = (fds[i].events & (POLLIN | POLLRDHUP) ? EV_READ : 0) |
                 (fds[i].events & POLLOUT ? EV_WRITE : 0);
        ws[i].pwait = &p;
        ev_io_init(&ws[i].io, on_fd, fds[i].fd, ev ? ev : EV_READ);
        if (fds[i].fd < 0)
            continue;
        if (ev)
            ev_io_start(loop, &ws[i].io);
        if ((fds[i].events & POLLPRI) || !ev) {
            if (epfd < 0 && (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
                continue; /* out of fds: the watchers above still wake us */
            /* EEXIST (the fd twice) and EPERM (a file, always ready: the
             * zero-timeout look answered already) are fine. */
            struct epoll_event e = {.events = fds[i].events & POLLPRI ? EPOLLPRI : 0};
            epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i].fd, &e);
        }
    }
    unb_errno = saved;
    p.pri.pwait = &p;
    ev_io_init(&p.pri.io, on_fd, epfd, EV_READ);
    if (epfd >= 0)
        ev_io_start(loop, &p.pri.io);
    if (deadline) {
        int64_t left = deadline - unb__now_ns();
        ev_now_update(loop);
        ev_timer_init(&p.timer, on_timer, left > 0 ? (double)left * 1e-9 : 0., 0.);
        ev_timer_start(loop, &p.timer);
        unb__worker_deadline(p.w, deadline);
        p.timed = true;
    }
    unb__worker_waiting_add(p.w, 1);
    unb__intr_arm_since(&p.it, false, cancel, since);
    /* The dump shows the count and the first fd (poll(NULL, 0, t) sleeps). */
    uint32_t first = n ? (uint32_t)fds[0].fd : (uint32_t)-1;
    unb__sched_park(NULL, NULL, call, (int64_t)((uint64_t)n << 32 | first));
    bool intr = unb__intr_disarm(&p.it);
    if (ws != small)
        free(ws);
    if (epfd >= 0)
        UNB_REAL(close)(epfd); /* its watcher was stopped by stop_all */
    unb_errno = saved;
    return intr ? -EINTR : 0;
}

static int park_on(struct pollfd *fds, nfds_t n, int64_t deadline, enum unb__call call,
                   uint64_t since)
{
    unb__rt_enter(); /* the loop is touched only in a section (sched.h) */
    int rc = park_in(fds, n, deadline, call, since);
    unb__rt_leave();
    if (rc == -EINTR)
        unb__cancel_point(); /* interrupted by pthread_cancel? */
    return rc;
}

/* poll() for a coroutine; deadline in ns (0: none), block: may park. */
static int co_poll(struct pollfd *fds, nfds_t n, int64_t deadline, bool block,
                   enum unb__call call)
{
    unb__cancel_point();
    uint64_t since = unb__intr_since(); /* the parks below are one call's */
    for (;;) {
        int r = UNB_REAL(poll)(fds, n, 0);
        if (r != 0 || !block)
            return r;
        if (deadline && unb__now_ns() >= deadline)
            return 0;
        int rc = park_on(fds, n, deadline, call, since);
        if (rc != 0) {
            unb_errno = -rc;
            return -1;
        }
    }
}

static int64_t deadline_ms(int timeout)
{
    return timeout > 0 ? unb__now_ns() + (int64_t)timeout * 1000000 : 0;
}

UNB_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (!unb__sched_parkable() || timeout == 0)
        return UNB_REAL(poll)(fds, n, timeout);
    return co_poll(fds, n, deadline_ms(timeout), true, UNB_CALL_POLL);
}

UNB_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    extern void __chk_fail(void) __attribute__((noreturn));
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return poll(fds, n, timeout);
}

/* ppoll's and pselect's mask is the coroutine's for the call (see
 * runtime/sigmask.h): a signal it lets in interrupts the park; one that
 * was pending arrives as the mask is set, and the call fails with EINTR
 * at once, as natively.  Without per-coroutine masks (the library mode)
 * a call with a mask goes to the kernel. */
static bool mask_parks(const sigset_t *mask)
{
    return !mask || unb__sigmask_on;
}

static bool zero_time(const struct timespec *ts)
{
    return ts && ts->tv_sec == 0 && ts->tv_nsec == 0;
}

UNB_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                     const sigset_t *mask)
{
    if (!unb__sched_parkable() || !mask_parks(mask) || (zero_time(ts) && !mask))
        return UNB_REAL(ppoll)(fds, n, ts, mask);
    if (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)) {
        unb_errno = EINVAL;
        return -1;
    }
    uint64_t saved;
    if (mask && !unb__sigmask_enter(mask, &saved)) {
        unb_errno = EINTR;
        return -1;
    }
    int r;
    if (zero_time(ts)) {
        r = UNB_REAL(ppoll)(fds, n, ts, NULL);
    } else {
        int64_t deadline =
            ts ? unb__ns_after(unb__now_ns(), unb__ns(ts->tv_sec, ts->tv_nsec)) : 0;
        r = co_poll(fds, n, deadline, true, UNB_CALL_POLL);
    }
    if (mask)
        unb__sigmask_leave(saved);
    return r;
}

/* select via poll: builds the pollfd array, maps revents back. */
static int co_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int64_t deadline,
                     bool block)
{
    if (nfds < 0 || nfds > FD_SETSIZE) {
        unb_errno = EINVAL;
        return -1;
    }
    struct pollfd small[64];
    struct pollfd *p = small;
    int n = 0;
    for (int fd = 0; fd < nfds; fd++)
        n += (rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) ||
             (ex && FD_ISSET(fd, ex));
    if (n > 64 && !(p = malloc(sizeof *p * (size_t)n))) {
        unb_errno = ENOMEM;
        return -1;
    }
    int k = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((rd && FD_ISSET(fd, rd) ? POLLIN : 0) |
                           (wr && FD_ISSET(fd, wr) ? POLLOUT : 0) |
                           (ex && FD_ISSET(fd, ex) ? POLLPRI : 0));
        if (ev)
            p[k++] = (struct pollfd){.fd = fd, .events = ev};
    }
    int r = co_poll(p, (nfds_t)n, deadline, block, UNB_CALL_SELECT);
    int count = 0;
    if (r >= 0) {
        for (int i = 0; i < n; i++)
            if (p[i].revents & POLLNVAL) {
                r = -1;
                unb_errno = EBADF;
            }
    }
    if (r >= 0) {
        if (rd)
            FD_ZERO(rd);
        if (wr)
            FD_ZERO(wr);
        if (ex)
            FD_ZERO(ex);
        for (int i = 0; i < n; i++) {
            short re = p[i].revents;
            if (rd && (p[i].events & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR))) {
                FD_SET(p[i].fd, rd);
                count++;
            }
            if (wr && (p[i].events & POLLOUT) && (re & (POLLOUT | POLLERR))) {
                FD_SET(p[i].fd, wr);
                count++;
            }
            if (ex && (p[i].events & POLLPRI) && (re & POLLPRI)) {
                FD_SET(p[i].fd, ex);
                count++;
            }
        }
    }
    if (p != small)
        free(p);
    return r < 0 ? -1 : count;
}

UNB_EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    if (!unb__sched_parkable() || (tv && tv->tv_sec == 0 && tv->tv_usec == 0))
        return UNB_REAL(select)(nfds, rd, wr, ex, tv);
    /* As the kernel: microseconds past a second carry into the seconds
     * (wrapping, as it does); only a negative time is invalid. */
    long sec = 0;
    if (tv) {
        __builtin_add_overflow(tv->tv_sec, tv->tv_usec / 1000000, &sec);
        if (tv->tv_usec < 0 || sec < 0) {
            unb_errno = EINVAL;
            return -1;
        }
    }
    int64_t deadline =
        tv ? unb__ns_after(unb__now_ns(), unb__ns(sec, tv->tv_usec % 1000000 * 1000)) : 0;
    int r = co_select(nfds, rd, wr, ex, deadline, true);
    if (tv) { /* Linux reports the time left */
        int64_t left = deadline - unb__now_ns();
        if (left < 0)
            left = 0;
        tv->tv_sec = left / 1000000000;
        tv->tv_usec = (left % 1000000000) / 1000;
    }
    return r;
}

UNB_EXPORT int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex,
                       const struct timespec *ts, const sigset_t *mask)
{
    if (!unb__sched_parkable() || !mask_parks(mask) || (zero_time(ts) && !mask))
        return UNB_REAL(pselect)(nfds, rd, wr, ex, ts, mask);
    if (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)) {
        unb_errno = EINVAL;
        return -1;
    }
    uint64_t saved;
    if (mask && !unb__sigmask_enter(mask, &saved)) {
        unb_errno = EINTR;
        return -1;
    }
    int r;
    if (zero_time(ts)) {
        r = UNB_REAL(pselect)(nfds, rd, wr, ex, ts, NULL);
    } else {
        int64_t deadline =
            ts ? unb__ns_after(unb__now_ns(), unb__ns(ts->tv_sec, ts->tv_nsec)) : 0;
        r = co_select(nfds, rd, wr, ex, deadline, true);
    }
    if (mask)
        unb__sigmask_leave(saved);
    return r;
}
