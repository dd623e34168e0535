/* Per-fd state and parking on fds (fd.h). */
#define _GNU_SOURCE
#include "fd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "intr.h"
#include "lock.h"
#include "sanitize.h"
#include "sched.h"

#define PAGE_SHIFT UNB_FD_PAGE_SHIFT
#define PAGE_ENTRIES UNB_FD_PAGE_ENTRIES
#define FD_LIMIT_MAX (1 << 24)

/*
 * The table's memory comes from mmap, not malloc: hooks of calls that are
 * async-signal-safe (pipe, socket, dup, close) fill it, and they may run
 * where malloc must not, in a signal handler that interrupted malloc, or
 * where another thread holds the allocator's lock and cannot release it
 * (LeakSanitizer's stopped world calls pipe() to probe memory, and hung in
 * ASan's malloc under our hook).
 */
static void *table_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

struct unb__fd_table unb__fd_table;
static struct unb__lock table_lock; /* for allocating pages */

/* The page array, read without the lock: made once, published with a
 * release store after npages, so a reader that sees it sees npages too
 * (a plain mov on x86 either way; a plain read was a data race with
 * table_init's write). */
static inline _Atomic(struct unb__fd *) *table_pages(void)
{
    return __atomic_load_n(&unb__fd_table.pages, __ATOMIC_ACQUIRE);
}

int64_t unb__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool table_init(void)
{
    if (table_pages())
        return true;
    unb__lock(&table_lock);
    if (!unb__fd_table.pages) {
        struct rlimit rl;
        uint64_t max = FD_LIMIT_MAX;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
            rl.rlim_max < max)
            max = rl.rlim_max;
        unsigned n = (unsigned)((max + PAGE_ENTRIES - 1) >> PAGE_SHIFT);
        _Atomic(struct unb__fd *) *p = table_alloc((n ? n : 1) * sizeof *p);
        if (p) {
            unb__fd_table.npages = n;
            __atomic_store_n(&unb__fd_table.pages, p, __ATOMIC_RELEASE);
        }
    }
    unb__unlock(&table_lock);
    return unb__fd_table.pages != NULL;
}

_Atomic uint32_t unb__fd_forks;

static void entry_init(struct unb__fd *e)
{
    memset(e, 0, sizeof *e);
    atomic_init(&e->rd_ready, 1); /* unknown: try the call first */
    atomic_init(&e->wr_ready, 1);
    e->dup_next = -1;
}

struct unb__fd *unb__fd_get(int fd)
{
    struct unb__fd *e = unb__fd_peek(fd);
    if (unb_likely(e))
        return e;
    if (fd < 0 || !table_init() || (unsigned)fd >> PAGE_SHIFT >= unb__fd_table.npages)
        return NULL;
    unb__lock(&table_lock);
    struct unb__fd *page = atomic_load(&unb__fd_table.pages[fd >> PAGE_SHIFT]);
    if (!page) {
        page = table_alloc(sizeof *page * PAGE_ENTRIES);
        if (page) {
            for (int i = 0; i < PAGE_ENTRIES; i++)
                entry_init(&page[i]);
            atomic_store_explicit(&unb__fd_table.pages[fd >> PAGE_SHIFT], page,
                                  memory_order_release);
        }
    }
    unb__unlock(&table_lock);
    return page ? &page[fd & (PAGE_ENTRIES - 1)] : NULL;
}

/* ---- poll descriptors ------------------------------------------------- */

struct waiter {
    struct waiter *next;
    struct unb__pd *pd;
    struct unb__worker *home;
    int dir;    /* 0 read, 1 write */
    int result; /* 0 ready, or a negative errno */
    bool live;  /* queued, counted in `waiting`, maybe timed */
    bool timed;
    ev_timer timer;
    struct unb__intr it;
};

struct unb__pd {
    struct unb__worker *home; /* the only thread that touches the rest */
    struct unb__fd *e;        /* for the readiness hints */
    ev_io io[2];              /* read and write watchers, on home's loop */
    struct waiter *q[2];      /* parked coroutines, by direction */
    uint8_t idle_fires[2];    /* ready with nobody waiting, since the last park */
};

static void on_io(struct ev_loop *loop, ev_io *io, int revents);

static struct unb__pd *pd_new(struct unb__fd *e, int fd, struct unb__worker *home)
{
#ifdef UNB_ASAN
    /* Only the table points to it, and LeakSanitizer does not scan mmap'd
     * memory (nor can the table be registered with it: the registration
     * takes the lock LeakSanitizer holds while it calls pipe()). */
    __lsan_disable();
#endif
    struct unb__pd *pd = calloc(1, sizeof *pd);
#ifdef UNB_ASAN
    __lsan_enable();
#endif
    if (!pd)
        return NULL;
    pd->home = home;
    pd->e = e;
    ev_io_init(&pd->io[0], on_io, fd, EV_READ);
    ev_io_init(&pd->io[1], on_io, fd, EV_WRITE);
    pd->io[0].data = pd->io[1].data = pd;
    return pd;
}

/* Home thread: takes w off its queue and its timer, once. */
static void teardown(struct waiter *w)
{
    if (!w->live)
        return;
    w->live = false;
    struct waiter **p = &w->pd->q[w->dir];
    while (*p && *p != w)
        p = &(*p)->next;
    if (*p)
        *p = w->next;
    if (w->timed)
        ev_timer_stop(unb__worker_loop(w->home), &w->timer);
    unb__worker_waiting_add(w->home, -1);
}

/* Home thread: ends w's park with `result` unless an interruption owns it
 * (then its cancel() delivers EINTR). */
static void finish(struct waiter *w, int result)
{
    bool mine = unb__intr_complete_on_worker(&w->it);
    teardown(w);
    if (mine) {
        w->result = result;
        unb__sched_ready(w->it.co);
    }
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct unb__pd *pd = io->data;
    int dir = io == &pd->io[1];
    if (!pd->q[dir]) {
        /* Ready with nobody waiting: remember it.  Usually its coroutine
         * was woken and waits in a long run queue: it will park again
         * soon, so keep the watcher (stopping and restarting it costs two
         * epoll_ctl).  But a level-triggered fd nobody reads would make an
         * idle worker's blocking epoll_wait return at once, again and
         * again: stop watching when the worker is about to sleep, or when
         * the fd keeps firing with nobody waiting. */
        atomic_store_explicit(dir ? &pd->e->wr_ready : &pd->e->rd_ready, 1,
                              memory_order_relaxed);
        if (unb__worker_sleeping_poll(pd->home) || ++pd->idle_fires[dir] >= 64)
            ev_io_stop(loop, io);
        return;
    }
    pd->idle_fires[dir] = 0;
    while (pd->q[dir])
        finish(pd->q[dir], 0);
    /* Writes rarely wait: stop the write watcher rather than have it fire
     * on every poll.  The read watcher stays, ready for the next park. */
    if (dir)
        ev_io_stop(loop, io);
}

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct waiter *w = (struct waiter *)((char *)t - offsetof(struct waiter, timer));
    w->timed = false; /* a fired timer is already stopped */
    finish(w, -ETIMEDOUT);
}

/* Interruption (intr.c), on the home thread. */
static void cancel(struct unb__intr *it)
{
    struct waiter *w = (struct waiter *)((char *)it - offsetof(struct waiter, it));
    teardown(w);
    w->result = -EINTR;
}

/* Home thread: the fd was closed; wake everyone with EBADF and free. */
static void pd_close(struct unb__pd *pd)
{
    struct ev_loop *loop = unb__worker_loop(pd->home);
    for (int d = 0; d < 2; d++) {
        ev_io_stop(loop, &pd->io[d]);
        while (pd->q[d])
            finish(pd->q[d], -EBADF);
    }
    free(pd);
}

/*
 * A close on another thread than the descriptor's home.  libev requires
 * watchers to be stopped before their fd is closed (else a pending change
 * reaches epoll_ctl with a dead fd, and libev asserts), so the closer waits
 * until the home has run pd_close, and only then closes the fd.
 */
struct close_req {
    struct unb__msg msg; /* first */
    struct unb__pd *pd;
    struct unb__waiter done;
};

static void close_at_home(struct unb__worker *w, struct unb__msg *m)
{
    (void)w;
    struct close_req *req = (struct close_req *)m;
    pd_close(req->pd);
    unb__waiter_wake(&req->done);
}

static void post_close(void *arg)
{
    struct close_req *req = arg;
    unb__worker_post(req->pd->home, &req->msg);
}

static void close_remote(struct unb__pd *pd)
{
    struct close_req req = {.msg = {.fn = close_at_home}, .pd = pd};
    /* Read now: once posted, the home frees pd (pd_close). */
    int fd = pd->io[0].fd;
    unb__waiter_init(&req.done);
    if (req.done.co) {
        /* Post only once parked: the home may answer at once. */
        unb__sched_park(post_close, &req, UNB_CALL_CLOSE, fd);
    } else {
        post_close(&req);
        _Atomic uint8_t lock = 1;
        unb__waiter_wait(&req.done, &lock, UNB_CALL_CLOSE, fd);
    }
}

static void unlock_spin(void *lock)
{
    unb__spin_unlock(lock);
}

static int wait_in(int fd, int events, int64_t deadline_ns, bool restartable,
                   enum unb__call call, uint64_t since)
{
    struct unb__fd *e = unb__fd_get(fd);
    if (!e)
        return -ENOMEM;
    int dir = events == EV_WRITE;
    uint32_t gen = atomic_load(&e->gen);
    for (;;) {
        struct unb__worker *me = unb__sched_worker();
        unb__spin_lock(&e->lock);
        if (atomic_load(&e->gen) != gen) { /* closed while we moved */
            unb__spin_unlock(&e->lock);
            return -EBADF;
        }
        struct unb__pd *pd = e->pd;
        if (!pd) {
            pd = pd_new(e, fd, me);
            if (!pd) {
                unb__spin_unlock(&e->lock);
                return -ENOMEM;
            }
            e->pd = pd;
        }
        if (pd->home != me) {
            struct unb__worker *home = pd->home;
            unb__spin_unlock(&e->lock);
            unb__sched_migrate(home);
            continue;
        }

        struct ev_loop *loop = unb__worker_loop(me);
        struct waiter w = {.pd = pd, .home = me, .dir = dir, .live = true};
        w.next = pd->q[dir];
        pd->q[dir] = &w;
        pd->idle_fires[dir] = 0;
        if (!ev_is_active(&pd->io[dir]))
            ev_io_start(loop, &pd->io[dir]);
        if (deadline_ns) {
            int64_t left = deadline_ns - unb__now_ns();
            ev_now_update(loop);
            ev_timer_init(&w.timer, on_timeout, left > 0 ? (double)left * 1e-9 : 0.,
                          0.);
            ev_timer_start(loop, &w.timer);
            unb__worker_deadline(me, deadline_ns);
            w.timed = true;
        }
        unb__worker_waiting_add(me, 1);
        unb__intr_arm_since(&w.it, restartable, cancel, since);
        unb__sched_park(unlock_spin, &e->lock, call, fd);
        if (unb__intr_disarm(&w.it))
            return -EINTR;
        if (w.result == 0)
            atomic_store_explicit(dir ? &e->wr_ready : &e->rd_ready, 1,
                                  memory_order_relaxed);
        return w.result;
    }
}

int unb__fd_wait(int fd, int events, int64_t deadline_ns, bool restartable,
                 enum unb__call call, uint64_t since)
{
    unb__rt_enter(); /* the loop is touched only in a section (sched.h) */
    int rc = wait_in(fd, events, deadline_ns, restartable, call, since);
    unb__rt_leave();
    if (rc == -EINTR)
        unb__cancel_point(); /* interrupted by pthread_cancel? */
    return rc;
}

/* ---- open files shared by several descriptors -------------------------- */

/*
 * The rings of duplicates (fd.h).  One lock for all of them: they change
 * only in dup, in the close of a duplicate, and when the program sets a
 * flag or a timeout (all rare next to reads and writes).  A setter takes
 * it even for a descriptor alone, so that a dup made meanwhile copies
 * the value either before or after the change, never half of it.
 */
static struct unb__lock share_lock;

static void field_set(struct unb__fd *e, enum unb__fd_field f, int64_t v)
{
    switch (f) {
    case UNB_FDF_USER_NONBLOCK: e->user_nonblock = v != 0; break;
    case UNB_FDF_SYS_NONBLOCK: e->sys_nonblock = v != 0; break;
    case UNB_FDF_RCVTIMEO: e->rcvtimeo_ns = v; break;
    case UNB_FDF_SNDTIMEO: e->sndtimeo_ns = v; break;
    case UNB_FDF_SHARED: e->shared = v != 0; break;
    }
}

void unb__fd_set(int fd, enum unb__fd_field f, int64_t value)
{
    struct unb__fd *e = unb__fd_peek(fd);
    if (!e)
        return;
    unb__lock(&share_lock);
    int n = fd;
    for (int guard = 0; guard < FD_LIMIT_MAX; guard++) {
        struct unb__fd *d = unb__fd_peek(n);
        if (!d)
            break;
        field_set(d, f, value);
        n = d->dup_next;
        if (n < 0 || n == fd)
            break;
    }
    unb__unlock(&share_lock);
}

/* Under share_lock: takes fd (entry e) out of its ring. */
static void ring_leave(int fd, struct unb__fd *e)
{
    int n = e->dup_next;
    if (n < 0)
        return;
    /* The predecessor: the member whose next is fd. */
    int p = n;
    for (int guard = 0; guard < FD_LIMIT_MAX; guard++) {
        struct unb__fd *pe = unb__fd_peek(p);
        if (!pe || pe->dup_next < 0)
            break; /* broken: should not happen */
        if (pe->dup_next == fd) {
            pe->dup_next = n == p ? -1 : n; /* a ring of two becomes one alone */
            break;
        }
        p = pe->dup_next;
    }
    e->dup_next = -1;
}

void unb__fd_dup(int oldfd, int newfd)
{
    if (oldfd == newfd)
        return;
    struct unb__fd *o = unb__fd_peek(oldfd), *n = unb__fd_get(newfd);
    if (!n)
        return;
    if (!o) {
        /* A file the runtime never looked at: newfd is looked at when used
         * (fd.h: then shared). */
        unb__fd_closing(newfd);
        return;
    }
    unb__fd_closing(newfd); /* whatever newfd's entry remembered is gone */
    unb__lock(&share_lock);
    n->kind = o->kind;
    n->accmode = o->accmode;
    n->user_nonblock = o->user_nonblock;
    n->sys_nonblock = o->sys_nonblock;
    n->shared = o->shared;
    n->forks = o->forks;
    n->rcvtimeo_ns = o->rcvtimeo_ns;
    n->sndtimeo_ns = o->sndtimeo_ns;
    n->dup_next = o->dup_next < 0 ? oldfd : o->dup_next;
    o->dup_next = newfd;
    unb__unlock(&share_lock);
}

void unb__fd_forking(void)
{
    atomic_fetch_add(&unb__fd_forks, 1);
}

static struct unb__pd *detach(struct unb__fd *e)
{
    unb__spin_lock(&e->lock);
    struct unb__pd *pd = e->pd;
    e->pd = NULL;
    atomic_fetch_add(&e->gen, 1);
    unb__spin_unlock(&e->lock);
    return pd;
}

void unb__fd_closing(int fd)
{
    struct unb__fd *e = unb__fd_peek(fd);
    if (!e)
        return;
    unb__tsan_acquire(e); /* from the fd's last closer or creator */
    struct unb__pd *pd = detach(e);
    if (e->dup_next >= 0) {
        unb__lock(&share_lock);
        ring_leave(fd, e);
        unb__unlock(&share_lock);
    }
    e->kind = UNB_FD_UNKNOWN;
    e->user_nonblock = e->sys_nonblock = 0;
    e->shared = 0;
    e->forks = atomic_load_explicit(&unb__fd_forks, memory_order_relaxed);
    e->rcvtimeo_ns = e->sndtimeo_ns = 0;
    atomic_store(&e->rd_ready, 1);
    atomic_store(&e->wr_ready, 1);
    unb__tsan_release(e); /* to whoever gets the number next */
    if (!pd)
        return;
    if (pd->home == unb__rt_enter())
        pd_close(pd);
    else
        close_remote(pd);
    unb__rt_leave();
}

void unb__fd_reset(int fd, enum unb__fd_kind kind, bool user_nonblock,
                   bool sys_nonblock)
{
    unb__fd_closing(fd); /* whatever was there before is gone */
    struct unb__fd *e = unb__fd_get(fd);
    if (!e)
        return;
    e->kind = (uint8_t)kind;
    e->user_nonblock = user_nonblock;
    e->sys_nonblock = sys_nonblock;
    e->shared = 0; /* made here, since the last fork */
    e->forks = atomic_load_explicit(&unb__fd_forks, memory_order_relaxed);
    unb__tsan_release(e);
}

void unb__fd_fork_child(void)
{
    /* The poll descriptors' watchers lived on the parent's loops, which the
     * child does not run (they are destroyed without looking at their
     * watchers), and their waiters were other threads' coroutines: free
     * them (only this table points to them: dropped, each was lost in
     * every child, as memcheck found).  What the program set on its fds
     * (O_NONBLOCK, timeouts) still holds. */
    atomic_store(&table_lock.state, 0);
    atomic_store(&share_lock.state, 0);
    for (unsigned i = 0; table_pages() && i < unb__fd_table.npages; i++) {
        struct unb__fd *page = atomic_load(&unb__fd_table.pages[i]);
        for (int j = 0; page && j < PAGE_ENTRIES; j++) {
            atomic_store(&page[j].lock, 0);
            free(page[j].pd);
            page[j].pd = NULL;
        }
    }
}
