/*
 * Signal masks per coroutine (sigmask.h).
 *
 * Classes: each distinct mask that a live coroutine has is a class with a
 * count of coroutines.  Classes are added under a lock and never change or
 * go away, so readers scan them without one; a program with more than
 * MAX_CLASSES distinct masks counts the extra ones in a last class that
 * stands for "blocks nothing" (its signals then reach idle workers, as
 * they did before masks were per coroutine).
 */
#define _GNU_SOURCE
#include "sigmask.h"

#include <sys/syscall.h>

#include "common.h"
#include "lock.h"
#include "sched.h"
#include "sys.h"

#define MAX_CLASSES 16

bool unb__sigmask_on;

static struct {
    struct unb__lock lock;
    _Atomic unsigned n;
    struct {
        uint64_t mask;
        _Atomic int64_t count;
    } c[MAX_CLASSES];
} classes;

/* Signals no mask can block (the kernel ignores them), and glibc's own
 * (cancellation, setxid), which its sigprocmask never blocks. */
#define UNBLOCKABLE                                                                    \
    ((UINT64_C(1) << (SIGKILL - 1)) | (UINT64_C(1) << (SIGSTOP - 1)) |                 \
     (UINT64_C(1) << 31) | (UINT64_C(1) << 32))

static unsigned class_of(uint64_t mask)
{
    unsigned n = atomic_load_explicit(&classes.n, memory_order_acquire);
    for (unsigned i = 0; i < n; i++)
        if (classes.c[i].mask == mask)
            return i;
    unb__lock(&classes.lock);
    n = atomic_load_explicit(&classes.n, memory_order_relaxed);
    unsigned i;
    for (i = 0; i < n; i++)
        if (classes.c[i].mask == mask)
            break;
    if (i == n) {
        if (n == MAX_CLASSES) {
            i = MAX_CLASSES - 1; /* "blocks nothing" (see above) */
        } else {
            classes.c[n].mask = n == MAX_CLASSES - 1 ? 0 : mask;
            atomic_store_explicit(&classes.n, n + 1, memory_order_release);
        }
    }
    unb__unlock(&classes.lock);
    return i;
}

uint64_t unb__sigmask_read(void)
{
    uint64_t old = 0;
    unb__sys6(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&old, sizeof old, 0, 0);
    return old;
}

void unb__sigmask_enable(void)
{
    unb__sigmask_on = true;
}

void unb__sigmask_born(struct unb_coro *co, const struct unb_coro *creator)
{
    co->sigmask = creator ? creator->sigmask : unb__sigmask_read() & ~UNBLOCKABLE;
    co->sigclass = (uint8_t)(creator ? creator->sigclass : class_of(co->sigmask));
    atomic_fetch_add_explicit(&classes.c[co->sigclass].count, 1, memory_order_relaxed);
}

void unb__sigmask_died(struct unb_coro *co)
{
    atomic_fetch_sub_explicit(&classes.c[co->sigclass].count, 1, memory_order_relaxed);
}

void unb__sigmask_set(struct unb_coro *co, uint64_t mask)
{
    mask &= ~UNBLOCKABLE;
    if (mask == co->sigmask)
        return;
    unsigned c = class_of(mask);
    atomic_fetch_add_explicit(&classes.c[c].count, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&classes.c[co->sigclass].count, 1, memory_order_relaxed);
    co->sigclass = (uint8_t)c;
    co->sigmask = mask;
}

uint64_t unb__sigmask_all(void)
{
    return ~UNBLOCKABLE;
}

uint64_t unb__sigmask_idle(void)
{
    uint64_t all = ~UINT64_C(0);
    unsigned n = atomic_load_explicit(&classes.n, memory_order_acquire);
    for (unsigned i = 0; i < n; i++)
        if (atomic_load_explicit(&classes.c[i].count, memory_order_relaxed) > 0)
            all &= classes.c[i].mask;
    return all & ~UNBLOCKABLE;
}

void unb__sigmask_apply(uint64_t *kmask, uint64_t mask)
{
    unb__sys6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, sizeof mask, 0, 0);
    *kmask = mask;
}

void unb__sigmask_fork_child(struct unb_coro *co)
{
    atomic_store_explicit(&classes.lock.state, 0, memory_order_relaxed);
    unsigned n = atomic_load_explicit(&classes.n, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        atomic_store_explicit(&classes.c[i].count, 0, memory_order_relaxed);
    if (co)
        atomic_store_explicit(&classes.c[co->sigclass].count, 1, memory_order_relaxed);
}

void unb__sigmask_deliver(struct unb_coro *co, int tid)
{
    uint64_t in = atomic_fetch_and(&co->sigpending, co->sigmask) & ~co->sigmask;
    long pid = unb__sys3(SYS_getpid, 0, 0, 0);
    for (int sig = 1; in; sig++, in >>= 1) {
        if (!(in & 1))
            continue;
        unb__sys3(SYS_tgkill, pid, tid, sig); /* its handler runs as this returns */
    }
}
