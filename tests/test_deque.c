/*
 * The Chase-Lev deque (runtime/deque.h): FIFO order from the top, growth
 * past the initial capacity, EMPTY when empty, and under a concurrent
 * stress every pushed item is taken exactly once.
 *
 * Built with runtime/deque.c directly (see the Makefile).  C11 threads, not
 * <pthread.h>: the build puts runtime/ on the include path with -I, and its
 * sched.h would shadow the <sched.h> that <pthread.h> includes.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <threads.h>
#include <time.h>

#include "tap.h"

#include "deque.h"

/* ThreadSanitizer (gcc 12, clang 14) does not intercept thrd_create: a
 * thread started with it crashes in its first instrumented function. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* Items are small integers encoded so that none is EMPTY (0) or ABORT (1). */
static void *item(uint64_t i)
{
    return (void *)(uintptr_t)((i + 1) * 8);
}

/* The index of an item, or UINT64_MAX for something that is not one. */
static uint64_t index_of(void *p)
{
    uintptr_t v = (uintptr_t)p;
    if (v < 8 || v % 8 != 0)
        return UINT64_MAX;
    return v / 8 - 1;
}

static void init_or_bail(struct unb__deque *q, unsigned log2)
{
    if (unb__deque_init(q, log2) != 0)
        BAIL("unb__deque_init(%u) failed", log2);
}

/* Single-threaded: no thief races, so a steal never aborts. */
static void *steal1(struct unb__deque *q)
{
    return unb__deque_steal(q);
}

static void test_empty(void)
{
    struct unb__deque q;
    init_or_bail(&q, 2);
    ok(steal1(&q) == UNB_DEQUE_EMPTY, "steal from a new deque returns EMPTY");
    is_int(unb__deque_size(&q), 0, "a new deque has size 0");
    is_int(unb__deque_push(&q, item(0)), 0, "push into a new deque succeeds");
    is_int(index_of(steal1(&q)), 0, "steal returns the one item pushed");
    ok(steal1(&q) == UNB_DEQUE_EMPTY, "steal from a drained deque returns EMPTY");
    ok(steal1(&q) == UNB_DEQUE_EMPTY, "steal from a drained deque stays EMPTY");
    unb__deque_fini(&q);
}

static void test_fifo(void)
{
    struct unb__deque q;
    init_or_bail(&q, 2); /* capacity 4: fill it exactly */
    int push_fail = 0;
    for (uint64_t i = 0; i < 4; i++)
        push_fail += unb__deque_push(&q, item(i)) != 0;
    is_int(push_fail, 0, "4 pushes fill a capacity-4 deque without error");
    is_int(unb__deque_size(&q), 4, "size is 4 after 4 pushes");
    for (uint64_t i = 0; i < 4; i++)
        is_int(index_of(steal1(&q)), i,
               "steal #%" PRIu64 " returns push #%" PRIu64 " (FIFO from the top)",
               i + 1, i + 1);
    ok(steal1(&q) == UNB_DEQUE_EMPTY, "EMPTY after taking all 4");

    /* Push 3, take 3, many times: the ring wraps around its 4 slots. */
    uint64_t next_push = 100, next_take = 100, bad = 0, empty_early = 0;
    for (int round = 0; round < 1000; round++) {
        for (int k = 0; k < 3; k++)
            if (unb__deque_push(&q, item(next_push++)) != 0)
                bad++;
        for (int k = 0; k < 3; k++) {
            void *p = steal1(&q);
            if (p == UNB_DEQUE_EMPTY || p == UNB_DEQUE_ABORT)
                empty_early++;
            else if (index_of(p) != next_take++)
                bad++;
        }
    }
    is_int(bad, 0, "order stays FIFO while the ring wraps 750 times");
    is_int(empty_early, 0, "no steal comes up empty while items remain");
    is_int(next_take, next_push, "every item pushed across the wraps was taken");
    ok(steal1(&q) == UNB_DEQUE_EMPTY, "EMPTY after the wrap-around rounds");
    unb__deque_fini(&q);
}

static void test_growth(void)
{
    enum { N = 10000 };
    struct unb__deque q;
    init_or_bail(&q, 2);
    int push_fail = 0;
    for (uint64_t i = 0; i < N; i++)
        push_fail += unb__deque_push(&q, item(i)) != 0;
    is_int(push_fail, 0,
           "10,000 pushes into a capacity-4 deque all succeed (it grows)");
    is_int(unb__deque_size(&q), N, "size is 10,000 after growing");
    uint64_t taken = 0, first_bad = UINT64_MAX;
    for (;;) {
        void *p = steal1(&q);
        if (p == UNB_DEQUE_EMPTY)
            break;
        if (index_of(p) != taken && first_bad == UINT64_MAX)
            first_bad = taken;
        taken++;
        if (taken > N)
            break;
    }
    is_int(taken, N, "10,000 steals take all items after growth");
    ok(first_bad == UINT64_MAX, "items come out in push order after growth");
    if (first_bad != UINT64_MAX)
        diag("  first out-of-order item at position %" PRIu64, first_bad);
    ok(steal1(&q) == UNB_DEQUE_EMPTY, "EMPTY after draining a grown deque");

    /* Growth with the live items not starting at slot 0 of the buffer. */
    uint64_t bad = 0;
    for (uint64_t i = 0; i < 3; i++)
        unb__deque_push(&q, item(i));
    for (uint64_t i = 0; i < 3; i++)
        bad += index_of(steal1(&q)) != i;
    for (uint64_t i = 0; i < 40000; i++)
        bad += unb__deque_push(&q, item(i)) != 0;
    for (uint64_t i = 0; i < 40000; i++)
        bad += index_of(steal1(&q)) != i;
    is_int(bad, 0, "growth from an offset top keeps every item and the order");
    unb__deque_fini(&q);
}

/* ---- concurrency ------------------------------------------------------- */

#define STRESS_ITEMS 2000000u
#define THIEVES 3

static struct unb__deque sq;
static _Atomic uint8_t taken_count[STRESS_ITEMS];
static _Atomic int owner_done;
static _Atomic uint64_t bogus_items;

struct taker {
    thrd_t thread;
    uint64_t taken, aborts, order_violations, last;
    _Atomic uint64_t progress UNB_ALIGNED_LINE; /* taken, for the owner */
} UNB_ALIGNED_LINE;

static void take(struct taker *t, void *p)
{
    uint64_t i = index_of(p);
    if (i >= STRESS_ITEMS) {
        atomic_fetch_add(&bogus_items, 1);
        return;
    }
    atomic_fetch_add_explicit(&taken_count[i], 1, memory_order_relaxed);
    /* Everyone takes from the top, so each taker sees increasing items. */
    if (t->taken > 0 && i <= t->last)
        t->order_violations++;
    t->last = i;
    t->taken++;
    atomic_store_explicit(&t->progress, t->taken, memory_order_relaxed);
}

static int thief_main(void *arg)
{
    struct taker *t = arg;
    for (;;) {
        /* Read the flag before stealing: once the owner is done it has
         * emptied the deque, so an EMPTY after that is final. */
        int done = atomic_load(&owner_done);
        void *p = unb__deque_steal(&sq);
        if (p == UNB_DEQUE_ABORT) {
            t->aborts++;
        } else if (p == UNB_DEQUE_EMPTY) {
            if (done)
                break;
        } else {
            take(t, p);
        }
    }
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_stress(void)
{
#ifdef UNDER_TSAN
    ok(1, "concurrent stress # SKIP C11 threads are not seen by ThreadSanitizer");
    return;
#endif
    init_or_bail(&sq, 2); /* small, so it grows while thieves steal */
    static struct taker thieves[THIEVES], owner;
    for (int i = 0; i < THIEVES; i++) {
        if (thrd_create(&thieves[i].thread, thief_main, &thieves[i]) != thrd_success)
            BAIL("thrd_create failed");
    }

    double t0 = now();
    uint64_t push_fail = 0, last_progress = 0;
    double waited = 0;
    uint32_t rng = 12345;
    for (uint64_t i = 0; i < STRESS_ITEMS; i++) {
        if (unb__deque_push(&sq, item(i)) != 0)
            push_fail++;
        /* Make sure thieves really steal while the owner pushes, even where
         * threads are not truly parallel (one CPU, valgrind): if no thief
         * has taken anything since the last look, let them run (waiting
         * a few seconds at most in all). */
        if (i % 65536 == 65535) {
            uint64_t sum = 0;
            for (int k = 0; k < THIEVES; k++)
                sum += atomic_load_explicit(&thieves[k].progress, memory_order_relaxed);
            if (sum == last_progress && waited < 5.0) {
                double w0 = now();
                while (sum == last_progress && now() - w0 < 0.1) {
                    thrd_yield();
                    sum = 0;
                    for (int k = 0; k < THIEVES; k++)
                        sum += atomic_load_explicit(&thieves[k].progress,
                                                    memory_order_relaxed);
                }
                waited += now() - w0;
            }
            last_progress = sum;
        }
        /* Interleave the owner's own steals: about one in four pushes,
         * in bursts, so the deque both grows and runs dry. */
        rng = rng * 1103515245u + 12345u;
        if ((rng >> 16) % 4 == 0) {
            int burst = 1 + (int)((rng >> 20) % 4);
            for (int k = 0; k < burst; k++) {
                void *p = unb__deque_steal(&sq);
                if (p == UNB_DEQUE_ABORT)
                    owner.aborts++;
                else if (p != UNB_DEQUE_EMPTY)
                    take(&owner, p);
            }
        }
    }
    /* Drain what the thieves left; EMPTY is final for the owner now. */
    for (;;) {
        void *p = unb__deque_steal(&sq);
        if (p == UNB_DEQUE_EMPTY)
            break;
        if (p == UNB_DEQUE_ABORT)
            owner.aborts++;
        else
            take(&owner, p);
    }
    atomic_store(&owner_done, 1);
    for (int i = 0; i < THIEVES; i++)
        thrd_join(thieves[i].thread, NULL);
    double secs = now() - t0;

    uint64_t lost = 0, dup = 0, first_lost = UINT64_MAX, first_dup = UINT64_MAX;
    for (uint64_t i = 0; i < STRESS_ITEMS; i++) {
        unsigned c = atomic_load(&taken_count[i]);
        if (c == 0) {
            if (!lost++)
                first_lost = i;
        } else if (c > 1) {
            if (!dup++)
                first_dup = i;
        }
    }
    uint64_t total = owner.taken, aborts = owner.aborts,
             violations = owner.order_violations;
    for (int i = 0; i < THIEVES; i++) {
        total += thieves[i].taken;
        aborts += thieves[i].aborts;
        violations += thieves[i].order_violations;
    }
    note("stress: %.2f s (%.2f s waiting for thieves); owner took %" PRIu64
         ", thieves %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", %" PRIu64 " aborted steals",
         secs, waited, owner.taken, thieves[0].taken, thieves[1].taken,
         thieves[2].taken, aborts);

    is_int(push_fail, 0, "all 2,000,000 concurrent pushes succeed");
    is_int(lost, 0, "no item is lost with 3 thieves stealing concurrently");
    if (lost)
        diag("  first lost item: %" PRIu64, first_lost);
    is_int(dup, 0, "no item is taken twice with 3 thieves stealing concurrently");
    if (dup)
        diag("  first duplicated item: %" PRIu64, first_dup);
    is_int(atomic_load(&bogus_items), 0,
           "no steal returns a value that was never pushed");
    is_int(total, STRESS_ITEMS, "takers took exactly 2,000,000 items in total");
    is_int(violations, 0, "each taker receives items in push order");
    ok(owner.taken > 0, "the owner's interleaved steals took items too");
    int thieves_took = 0;
    for (int i = 0; i < THIEVES; i++)
        thieves_took += thieves[i].taken > 0;
    cmp_ok(thieves_took, >=, 1, "thieves stole items while the owner pushed");
    ok(unb__deque_steal(&sq) == UNB_DEQUE_EMPTY, "EMPTY after the stress");
    unb__deque_fini(&sq);
}

int main(void)
{
    test_empty();
    test_fifo();
    test_growth();
    test_stress();
    return done_testing();
}
