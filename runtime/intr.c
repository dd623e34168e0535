/* Interruptible parks and signal delivery to coroutines (intr.h). */
#include "intr.h"

#include "lock.h"

static struct {
    struct unb__lock lock;
    struct unb__intr *head, *tail;  /* oldest first */
    _Atomic int handlers_any;       /* installed program handlers */
    _Atomic int handlers_norestart; /* of which without SA_RESTART */
    /* Signal arrivals not yet processed, by kind; and for each kind the
     * number (in unb__intr_arrivals) of the latest: parks armed since are not
     * theirs to interrupt. */
    _Atomic uint32_t pending_main, pending_any;
    _Atomic uint32_t pending_main_norestart, pending_any_norestart;
    _Atomic uint64_t latest_main, latest_any;
    _Atomic uint64_t latest_main_norestart, latest_any_norestart;
    /* And which signals (signal n as bit n - 1): a park whose coroutine
     * blocks them all is not theirs (per-coroutine masks, sigmask.h). */
    _Atomic uint64_t sigs_main, sigs_any, sigs_main_norestart, sigs_any_norestart;
    /* By kind, the number of the latest arrival that found no park to
     * interrupt, 0 once claimed: a call that began before it and was
     * between two of its parks (a read woken without data, a connect
     * between attempts) takes it at its next park, as the native thread,
     * blocked in the call throughout, would have. */
    _Atomic uint64_t unclaimed_main, unclaimed_any;
    _Atomic uint64_t unclaimed_main_norestart, unclaimed_any_norestart;
    struct unb_coro *main;
} intr;

void unb__intr_handlers_add(int any, int norestart)
{
    atomic_fetch_add(&intr.handlers_any, any);
    atomic_fetch_add(&intr.handlers_norestart, norestart);
}

void unb__intr_set_main(struct unb_coro *co)
{
    intr.main = co;
}

static bool interrupt_co(struct unb_coro *co, bool restart);

_Atomic uint64_t unb__intr_arrivals;

/* Takes an unclaimed arrival made after `since`, if there is one. */
static bool claim(_Atomic uint64_t *u, uint64_t since)
{
    uint64_t v = atomic_load_explicit(u, memory_order_relaxed);
    while (v > since)
        if (atomic_compare_exchange_weak(u, &v, 0))
            return true;
    return false;
}

/* Records an arrival that found no park to interrupt. */
static void unclaimed(_Atomic uint64_t *u, uint64_t arrival)
{
    uint64_t v = atomic_load(u);
    while (v < arrival && !atomic_compare_exchange_weak(u, &v, arrival))
        ;
}

void unb__intr_arm(struct unb__intr *it, bool restartable,
                   void (*cancel)(struct unb__intr *it))
{
    unb__intr_arm_since(it, restartable, cancel, unb__intr_since());
}

void unb__intr_arm_since(struct unb__intr *it, bool restartable,
                         void (*cancel)(struct unb__intr *it), uint64_t since)
{
    it->co = unb__sched_current();
    it->w = unb__sched_worker();
    it->cancel = cancel;
    it->restartable = restartable;
    atomic_init(&it->listed, false);
    it->armed = since;
    atomic_init(&it->state, UNB_INTR_WAITING);
    if (it->co) { /* findable by a canceller (unb__intr_interrupt) */
        unb__spin_lock(&it->co->lock);
        it->co->intr = it;
        unb__spin_unlock(&it->co->lock);
    }
    int n = restartable
                ? atomic_load_explicit(&intr.handlers_norestart, memory_order_relaxed)
                : atomic_load_explicit(&intr.handlers_any, memory_order_relaxed);
    if (n != 0) {
        unb__lock(&intr.lock);
        it->next = NULL;
        it->prev = intr.tail;
        if (intr.tail)
            intr.tail->next = it;
        else
            intr.head = it;
        intr.tail = it;
        atomic_store_explicit(&it->listed, true, memory_order_relaxed);
        unb__unlock(&intr.lock);
    }
    /* A cancel that came before the park was findable: interrupt it now
     * (the wake-up waits in our mailbox until the park is done). */
    if (it->co && unb_unlikely(atomic_load(&it->co->cancel_pending)) &&
        !it->co->cancel_off) {
        unb__intr_interrupt(it->co);
        return;
    }
    /* Likewise a signal that came during this call, between its parks. */
    if (atomic_load_explicit(&it->listed, memory_order_relaxed) && it->co) {
        bool is_main = it->co == intr.main;
        if ((is_main && claim(&intr.unclaimed_main_norestart, since)) ||
            claim(&intr.unclaimed_any_norestart, since) ||
            (!restartable && ((is_main && claim(&intr.unclaimed_main, since)) ||
                              claim(&intr.unclaimed_any, since))))
            unb__intr_interrupt(it->co);
    }
    /* Likewise a signal sent to it (pthread_kill) that it lets in. */
    if (it->co &&
        unb_unlikely(atomic_load_explicit(&it->co->sigpending, memory_order_relaxed) &
                     ~it->co->sigmask)) {
        uint64_t in = atomic_load(&it->co->sigpending) & ~it->co->sigmask;
        if (in)
            interrupt_co(it->co, (in & ~atomic_load(&unb__intr_restart_sigs)) == 0);
    }
}

static void unlink_locked(struct unb__intr *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        intr.head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        intr.tail = it->prev;
    atomic_store_explicit(&it->listed, false, memory_order_relaxed);
}

bool unb__intr_complete(struct unb__intr *it)
{
    int expect = UNB_INTR_WAITING;
    return atomic_compare_exchange_strong(&it->state, &expect, UNB_INTR_DONE);
}

bool unb__intr_complete_on_worker(struct unb__intr *it)
{
    if (atomic_load_explicit(&it->listed, memory_order_relaxed))
        unb__intr_process();
    return unb__intr_complete(it);
}

bool unb__intr_disarm(struct unb__intr *it)
{
    if (it->co) {
        unb__spin_lock(&it->co->lock);
        it->co->intr = NULL;
        unb__spin_unlock(&it->co->lock);
    }
    /* A peek: the interrupter clears it under the lock. */
    if (atomic_load_explicit(&it->listed, memory_order_relaxed)) {
        unb__lock(&intr.lock);
        if (atomic_load_explicit(&it->listed, memory_order_relaxed))
            unlink_locked(it);
        unb__unlock(&intr.lock);
    }
    return atomic_load(&it->state) == UNB_INTR_INTERRUPTED;
}

/* Runs on the park's worker: stop the watchers and wake the coroutine. */
static void deliver(struct unb__worker *w, struct unb__msg *m)
{
    (void)w;
    struct unb__intr *it =
        (struct unb__intr *)((char *)m - offsetof(struct unb__intr, msg));
    it->cancel(it);
    unb__sched_ready(it->co);
}

/* Picks and interrupts one listed park armed before arrival number
 * `arrival` whose coroutine lets in one of `sigs`: the main coroutine's,
 * or (if any_allowed) the oldest.  restart_handler: a signal with
 * SA_RESTART, which interrupts only parks that are not restartable. */
static void interrupt_one(bool any_allowed, bool restart_handler, uint64_t arrival,
                          uint64_t sigs, _Atomic uint64_t *unclaimed_kind)
{
    struct unb__intr *victim = NULL;
    unb__lock(&intr.lock);
    for (struct unb__intr *it = intr.head; it; it = it->next) {
        if (restart_handler && it->restartable)
            continue;
        if (it->armed >= arrival)
            continue; /* parked after the signal was handled */
        if (it->co && sigs && (it->co->sigmask & sigs) == sigs)
            continue; /* blocks them: another thread took them */
        if (atomic_load(&it->state) != UNB_INTR_WAITING)
            continue;
        if (it->co == intr.main && intr.main) {
            victim = it;
            break;
        }
        if (any_allowed && !victim)
            victim = it;
    }
    if (victim) {
        int expect = UNB_INTR_WAITING;
        if (atomic_compare_exchange_strong(&victim->state, &expect,
                                           UNB_INTR_INTERRUPTED))
            unlink_locked(victim);
        else
            victim = NULL;
    }
    unb__unlock(&intr.lock);
    if (victim) {
        victim->msg.fn = deliver;
        unb__worker_post(victim->w, &victim->msg);
    } else {
        unclaimed(unclaimed_kind, arrival);
    }
}

_Atomic uint64_t unb__intr_restart_sigs;

/* Interrupts co's park unless `restart` and the park is restartable. */
static bool interrupt_co(struct unb_coro *co, bool restart)
{
    unb__spin_lock(&co->lock);
    struct unb__intr *it = co->intr;
    int expect = UNB_INTR_WAITING;
    bool mine =
        it && !(restart && it->restartable) &&
        atomic_compare_exchange_strong(&it->state, &expect, UNB_INTR_INTERRUPTED);
    unb__spin_unlock(&co->lock);
    if (!mine)
        return false;
    /* It stays parked until `deliver` readies it: `it` lives on. */
    if (atomic_load_explicit(&it->listed, memory_order_relaxed)) {
        unb__lock(&intr.lock);
        if (atomic_load_explicit(&it->listed, memory_order_relaxed))
            unlink_locked(it);
        unb__unlock(&intr.lock);
    }
    it->msg.fn = deliver;
    unb__worker_post(it->w, &it->msg);
    return true;
}

bool unb__intr_interrupt(struct unb_coro *co)
{
    return interrupt_co(co, false);
}

bool unb__intr_interrupt_signal(struct unb_coro *co, int sig)
{
    uint64_t bit = UINT64_C(1) << (sig - 1);
    return interrupt_co(co, atomic_load(&unb__intr_restart_sigs) & bit);
}

static uint32_t take(_Atomic uint32_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed) ? atomic_exchange(c, 0) : 0;
}

/* The count is taken before the latest arrival's number is read, and a
 * handler records the number before the count (unb__intr_signal_pending),
 * so the number is at least that of every arrival counted.  Several
 * arrivals are bounded by the latest: a park armed between two of them
 * may take the earlier one's EINTR, which the later one gives it anyway. */
static void process(_Atomic uint32_t *pending, _Atomic uint64_t *latest,
                    _Atomic uint64_t *sigs, _Atomic uint64_t *unclaimed_kind,
                    bool any_allowed, bool restart_handler)
{
    uint32_t n = take(pending);
    if (!n)
        return;
    uint64_t arrival = atomic_load(latest);
    uint64_t which = atomic_exchange(sigs, 0);
    while (n--)
        interrupt_one(any_allowed, restart_handler, arrival, which, unclaimed_kind);
}

void unb__intr_process(void)
{
    process(&intr.pending_main, &intr.latest_main, &intr.sigs_main, &intr.unclaimed_main,
            false, true);
    process(&intr.pending_any, &intr.latest_any, &intr.sigs_any, &intr.unclaimed_any, true,
            true);
    process(&intr.pending_main_norestart, &intr.latest_main_norestart,
            &intr.sigs_main_norestart, &intr.unclaimed_main_norestart, false, false);
    process(&intr.pending_any_norestart, &intr.latest_any_norestart,
            &intr.sigs_any_norestart, &intr.unclaimed_any_norestart, true, false);
}

void unb__intr_signal_pending(bool on_idle_thread, bool restart, int sig)
{
    /* In a signal handler: lock-free atomics only. */
    _Atomic uint32_t *c;
    _Atomic uint64_t *latest, *sigs;
    if (restart) {
        c = on_idle_thread ? &intr.pending_any : &intr.pending_main;
        latest = on_idle_thread ? &intr.latest_any : &intr.latest_main;
        sigs = on_idle_thread ? &intr.sigs_any : &intr.sigs_main;
    } else {
        c = on_idle_thread ? &intr.pending_any_norestart
                           : &intr.pending_main_norestart;
        latest =
            on_idle_thread ? &intr.latest_any_norestart : &intr.latest_main_norestart;
        sigs = on_idle_thread ? &intr.sigs_any_norestart : &intr.sigs_main_norestart;
    }
    uint64_t me = atomic_fetch_add(&unb__intr_arrivals, 1) + 1;
    uint64_t old = atomic_load(latest);
    while (old < me && !atomic_compare_exchange_weak(latest, &old, me))
        ;
    if (sig >= 1 && sig <= 64)
        atomic_fetch_or(sigs, UINT64_C(1) << (sig - 1));
    atomic_fetch_add(c, 1);
}

void unb__intr_fork_child(struct unb_coro *co)
{
    atomic_store(&intr.lock.state, 0);
    intr.head = intr.tail = NULL;
    atomic_store(&intr.pending_main, 0);
    atomic_store(&intr.pending_any, 0);
    atomic_store(&intr.pending_main_norestart, 0);
    atomic_store(&intr.pending_any_norestart, 0);
    atomic_store(&intr.sigs_main, 0);
    atomic_store(&intr.sigs_any, 0);
    atomic_store(&intr.sigs_main_norestart, 0);
    atomic_store(&intr.sigs_any_norestart, 0);
    atomic_store(&intr.unclaimed_main, 0);
    atomic_store(&intr.unclaimed_any, 0);
    atomic_store(&intr.unclaimed_main_norestart, 0);
    atomic_store(&intr.unclaimed_any_norestart, 0);
    intr.main = co;
}
