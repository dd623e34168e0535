/*
 * Sleeping coroutines (timer.h).
 *
 * A sleep starts an ev_timer (relative and monotonic deadlines) or an
 * ev_periodic (absolute CLOCK_REALTIME deadlines, which must follow clock
 * changes) on the loop of the worker it runs on, then parks.  libev fires
 * a timer only once its time has strictly passed, and we refresh the
 * loop's notion of now before starting it, so a sleep never ends early.
 */
#define _GNU_SOURCE
#include "timer.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "fd.h"
#include "intr.h"
#include "sched.h"

struct sleeper {
    union {
        ev_timer timer;
        ev_periodic periodic;
    } u;
    bool periodic;
    bool counted; /* in the worker's `waiting` count: taken out once */
    struct unb__intr it;
};

/* On the loop's thread.  Both the firing and an interruption end the
 * wait, and both may happen (a signal as the timer fires): the worker's
 * count of waits must drop once, or it goes negative and the worker
 * counts as having nothing to wait for (its loop is then neither polled
 * between coroutines nor handed off by the monitor when its thread is
 * stuck: a parked coroutine waits forever). */
static void uncount(struct sleeper *s)
{
    if (s->counted) {
        s->counted = false;
        unb__worker_waiting_add(s->it.w, -1);
    }
}

#define NSEC 1000000000L
#define TIME_T_MAX ((time_t)INT64_MAX)
_Static_assert(sizeof(time_t) == sizeof(int64_t), "a 64-bit time_t");

static void fired(struct sleeper *s)
{
    uncount(s);
    if (unb__intr_complete_on_worker(&s->it))
        unb__sched_ready(s->it.co);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    fired((struct sleeper *)((char *)t - offsetof(struct sleeper, u.timer)));
}

static void on_periodic(struct ev_loop *loop, ev_periodic *p, int revents)
{
    (void)loop;
    (void)revents;
    fired((struct sleeper *)((char *)p - offsetof(struct sleeper, u.periodic)));
}

/* Interruption: stop the watcher (we are on its loop's thread). */
static void cancel(struct unb__intr *it)
{
    struct sleeper *s = (struct sleeper *)((char *)it - offsetof(struct sleeper, it));
    struct ev_loop *loop = unb__worker_loop(it->w);
    if (s->periodic)
        ev_periodic_stop(loop, &s->u.periodic);
    else
        ev_timer_stop(loop, &s->u.timer);
    uncount(s);
}

static double ts_to_double(const struct timespec *ts)
{
    return (double)ts->tv_sec + (double)ts->tv_nsec * 1e-9;
}

static struct timespec ts_sub(struct timespec a, struct timespec b)
{
    struct timespec d = {a.tv_sec - b.tv_sec, a.tv_nsec - b.tv_nsec};
    if (d.tv_nsec < 0) {
        d.tv_sec--;
        d.tv_nsec += NSEC;
    }
    if (d.tv_sec < 0)
        d = (struct timespec){0, 0};
    return d;
}

/* a + b for b >= 0, saturating (as the kernel's timespec64_add_safe). */
static struct timespec ts_add(struct timespec a, struct timespec b)
{
    struct timespec s = {0, a.tv_nsec + b.tv_nsec};
    if (s.tv_nsec >= NSEC) {
        s.tv_nsec -= NSEC;
        if (__builtin_add_overflow(a.tv_sec, 1, &a.tv_sec))
            return (struct timespec){TIME_T_MAX, NSEC - 1};
    }
    if (__builtin_add_overflow(a.tv_sec, b.tv_sec, &s.tv_sec))
        return (struct timespec){TIME_T_MAX, NSEC - 1};
    return s;
}

static int sleep_in(clockid_t clock, int flags, const struct timespec *req,
                    enum unb__call call, struct timespec *rem, bool restartable,
                    uint64_t since)
{
    if (!req)
        return -EFAULT;
    if (req->tv_nsec < 0 || req->tv_nsec >= NSEC || req->tv_sec < 0)
        return -EINVAL;
    bool abs = flags & TIMER_ABSTIME;
    clockid_t base; /* the clock the deadline is measured on */
    switch (clock) {
    case CLOCK_REALTIME: base = abs ? CLOCK_REALTIME : CLOCK_MONOTONIC; break;
    case CLOCK_MONOTONIC:
    case CLOCK_BOOTTIME: base = CLOCK_MONOTONIC; break;
    default: return -ENOTSUP;
    }

    /* The deadline on `base`, to compute what is left on interruption. */
    struct timespec now, deadline;
    clock_gettime(abs ? clock : base, &now);
    deadline = abs ? *req : ts_add(now, *req);
    struct timespec delay = ts_sub(deadline, now);
    if (delay.tv_sec == 0 && delay.tv_nsec == 0) {
        unb__sched_yield(); /* a zero sleep still lets others run */
        return 0;
    }

    struct sleeper s;
    struct unb__worker *w = unb__sched_worker();
    struct ev_loop *loop = unb__worker_loop(w);
    s.periodic = abs && clock == CLOCK_REALTIME;
    if (s.periodic) {
        ev_periodic_init(&s.u.periodic, on_periodic, ts_to_double(&deadline), 0, 0);
        ev_periodic_start(loop, &s.u.periodic);
    } else {
        /* The loop's clock must not lag ours, or the timer fires early. */
        ev_now_update(loop);
        ev_timer_init(&s.u.timer, on_timer, ts_to_double(&delay), 0.);
        ev_timer_start(loop, &s.u.timer);
        unb__worker_deadline(w, unb__ns_after(unb__now_ns(),
                                              unb__ns(delay.tv_sec, delay.tv_nsec)));
    }
    unb__worker_waiting_add(w, 1);
    s.counted = true;
    unb__intr_arm_since(&s.it, restartable, cancel, since);
    unb__sched_park(NULL, NULL, call, unb__ns(delay.tv_sec, delay.tv_nsec));

    if (!unb__intr_disarm(&s.it))
        return 0;
    if (rem && !abs) {
        clock_gettime(base, &now);
        *rem = ts_sub(deadline, now);
    }
    return -EINTR;
}

int unb__sleep(clockid_t clock, int flags, const struct timespec *req,
               struct timespec *rem, enum unb__call call)
{
    unb__cancel_point();
    unb__rt_enter(); /* the loop is touched only in a section (sched.h) */
    int rc = sleep_in(clock, flags, req, call, rem, false, unb__intr_since());
    unb__rt_leave();
    if (rc == -EINTR)
        unb__cancel_point(); /* interrupted by pthread_cancel? */
    return rc;
}

int unb__nap(int64_t ns, bool restartable, enum unb__call call, uint64_t since)
{
    struct timespec ts = {(time_t)(ns / NSEC), (long)(ns % NSEC)};
    unb__rt_enter();
    int rc = sleep_in(CLOCK_MONOTONIC, 0, &ts, call, NULL, restartable, since);
    unb__rt_leave();
    if (rc == -EINTR)
        unb__cancel_point();
    return rc;
}
