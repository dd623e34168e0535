/*
 * Threads as coroutines: pthread_create, join, detach, exit, self, the
 * calls that take a pthread_t, thread-specific data (keys), and stdio's
 * FILE locks.
 *
 * When threads become coroutines (unb__threads_are_coroutines(), decided
 * by start.c), pthread_create spawns a coroutine and its pthread_t is the
 * coroutine's address.  Calls that take a pthread_t tell a coroutine from
 * a real thread by its first word (UNB_CORO_MAGIC; a real thread's points
 * to itself) and hand real threads to glibc, so threads that stay real
 * (the runtime's workers, threads from before the switch) keep working.
 *
 * Keys are ours for every caller, coroutine or thread, so a key means the
 * same thing everywhere: glibc's keys live in the OS thread's descriptor,
 * which the coroutines of one worker share.  A coroutine keeps its values
 * in co->tsd; a plain thread in a __thread pointer, whose destructors run
 * at thread exit through one glibc key.
 *
 * pthread_exit unwinds the coroutine's stack as glibc unwinds a thread's
 * (see "Exit"): C++ destructors and cleanup handlers run, innermost first,
 * then key destructors.
 *
 * pthread_cancel is deferred cancellation (see "Cancellation").
 *
 * What is not done: a signal sent to a coroutine with
 * pthread_sigqueue goes to the process; scheduling and affinity calls on
 * a coroutine are accepted and ignored.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "../runtime/sched.h"
#include "../runtime/sigmask.h"
#include "../runtime/tls.h"
#include "real.h"
#include "sigs.h"
#include "thread.h"

/* After libev's header: <elf.h> defines EV_NONE and EV_CURRENT. */
#include <link.h>

bool unb__threads_coro;

/* Program threads alive (coroutines made by pthread_create, and main):
 * when main has called pthread_exit, the last one to end exits the
 * process with status 0, as natively. */
static _Atomic long live_threads;
static _Atomic bool main_exited;

/* Not instrumented, for the hooks ThreadSanitizer's runtime calls on a
 * thread it has not started yet (pthread_self, pthread_getattr_np). */
static inline UNB_NO_TSAN struct unb_coro *as_coro(pthread_t t)
{
    struct unb_coro *co = (struct unb_coro *)t;
    return co && co->magic == UNB_CORO_MAGIC ? co : NULL;
}

void unb__thread_main_started(void)
{
    atomic_fetch_add(&live_threads, 1);
}

void unb__thread_fork_child(void)
{
    struct unb_coro *co = unb__sched_current();
    atomic_store(&live_threads, co && co->pthread ? 1 : 0);
    /* Forked by a thread other than main: main is not in the child, so
     * the process ends, with status 0, when this thread does (as natively,
     * where the last thread's end is exit(0)).  Before, the child waited
     * for ever once it returned. */
    if (co && co->pthread && co != unb__main_coro)
        atomic_store(&main_exited, true);
    if (co)
        unb__main_coro = co; /* the child's only thread is its main one */
}

/* ---- thread-specific data --------------------------------------------- */

#define KEYS_MAX PTHREAD_KEYS_MAX
#define BLOCK 32

/* A key is in use while its sequence number is odd; a value is valid only
 * under the sequence it was set with, so a deleted and re-created key never
 * shows an old value. */
static struct {
    _Atomic uintptr_t seq;
    void (*_Atomic dtor)(void *);
    bool os_thread; /* its values belong to the OS thread (see below) */
    pthread_key_t real_key; /* then the glibc key that holds them */
} keys[KEYS_MAX];

/*
 * In a sanitizer build, the sanitizer's runtime keeps its per-thread state
 * (AddressSanitizer's current thread, which its fake stacks, error reports
 * and stack-switch annotations rely on) under a key it makes while it
 * initialises, before our constructors run, and that key reaches our hook
 * like any other.  Its state is the OS thread's, not a coroutine's, so such
 * an early key is a glibc key underneath (real_key): its values are per OS
 * thread even when read in a coroutine, and its destructors run when the
 * OS thread ends, as the sanitizer expects.  Keys made once our
 * constructors ran are per coroutine, as in every build.
 *
 * ThreadSanitizer also makes its key, and sets and reads it on each new
 * thread, before it has started the thread's state, when no instrumented
 * code can run: so the entries of the key calls are not instrumented, and
 * nor is the early keys' whole path (no allocation either: its allocator
 * cannot serve a thread it has not started).
 */
#if defined(UNB_ASAN) || defined(UNB_TSAN)
static bool keys_per_coro;
#else
#define keys_per_coro true
#endif

struct slot {
    uintptr_t seq;
    void *val;
};

struct tsd {
    struct slot *blocks[KEYS_MAX / BLOCK];
};

static UNB_TLS void *thread_tsd; /* struct tsd */
static pthread_key_t thread_exit_key; /* glibc's, for thread_tsd's dtors */
static pthread_once_t thread_exit_once = PTHREAD_ONCE_INIT;

/* Runs the destructors of *owner's values, then detaches and frees it.
 * *owner stays set while destructors run (one may set a value again),
 * and is cleared before the memory goes: a destructor's pthread_getspecific,
 * or free()'s own (a sanitizer's allocator asks for its thread's key), must
 * not read freed blocks. */
static void tsd_destroy(void **owner)
{
    struct tsd *t = *owner;
    for (int round = 0; round < PTHREAD_DESTRUCTOR_ITERATIONS; round++) {
        bool again = false;
        for (unsigned b = 0; b < KEYS_MAX / BLOCK; b++) {
            struct slot *blk = t->blocks[b];
            for (unsigned i = 0; blk && i < BLOCK; i++) {
                unsigned k = b * BLOCK + i;
                void *v = blk[i].val;
                void (*dtor)(void *) = atomic_load(&keys[k].dtor);
                if (!v || blk[i].seq != atomic_load(&keys[k].seq) || !dtor)
                    continue;
                blk[i].val = NULL;
                dtor(v);
                again = true;
            }
        }
        if (!again)
            break;
    }
    *owner = NULL;
    for (unsigned b = 0; b < KEYS_MAX / BLOCK; b++)
        free(t->blocks[b]);
    free(t);
}

static void thread_exit_dtor(void *t)
{
    (void)t; /* thread_tsd, which the destructors may still use */
    tsd_destroy(&thread_tsd);
}

static void thread_exit_key_init(void)
{
    UNB_REAL(pthread_key_create)(&thread_exit_key, thread_exit_dtor);
}

/* The caller's data for `key`; with `make`, created if missing (NULL if
 * no memory). */
static struct tsd *tsd_of_caller(pthread_key_t key, bool make)
{
    struct unb_coro *co = unb__sched_current();
    struct tsd *t = co ? co->tsd : thread_tsd;
    if (t || !make)
        return t;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (co) {
        co->tsd = t;
    } else {
        pthread_once(&thread_exit_once, thread_exit_key_init);
        thread_tsd = t;
        UNB_REAL(pthread_setspecific)(thread_exit_key, t);
    }
    return t;
}

/* Not instrumented: ThreadSanitizer makes its own key while it starts. */
UNB_EXPORT UNB_NO_TSAN int pthread_key_create(pthread_key_t *key, void (*dtor)(void *))
{
    for (unsigned k = 0; k < KEYS_MAX; k++) {
        uintptr_t s = atomic_load_explicit(&keys[k].seq, memory_order_relaxed);
        if (s & 1)
            continue;
        atomic_store(&keys[k].dtor, dtor);
        if (atomic_compare_exchange_strong(&keys[k].seq, &s, s + 1)) {
            keys[k].os_thread = !keys_per_coro;
#if defined(UNB_ASAN) || defined(UNB_TSAN)
            int e = keys[k].os_thread ? UNB_REAL(pthread_key_create)(&keys[k].real_key, dtor)
                                      : 0;
            if (e) {
                keys[k].os_thread = false;
                atomic_store(&keys[k].seq, s + 2);
                return e;
            }
#endif
            *key = k;
            return 0;
        }
    }
    return EAGAIN;
}

UNB_EXPORT int pthread_key_delete(pthread_key_t key)
{
    if (key >= KEYS_MAX)
        return EINVAL;
    uintptr_t s = atomic_load(&keys[key].seq);
    if (!(s & 1) || !atomic_compare_exchange_strong(&keys[key].seq, &s, s + 1))
        return EINVAL;
#if defined(UNB_ASAN) || defined(UNB_TSAN)
    if (keys[key].os_thread) {
        keys[key].os_thread = false;
        UNB_REAL(pthread_key_delete)(keys[key].real_key);
    }
#endif
    return 0;
}

#if defined(UNB_ASAN) || defined(UNB_TSAN)
static void *getspecific(pthread_key_t key);
static int setspecific(pthread_key_t key, const void *val) __attr_access_none(2);

UNB_EXPORT UNB_NO_TSAN void *pthread_getspecific(pthread_key_t key)
{
    if (key < KEYS_MAX && keys[key].os_thread)
        return UNB_REAL(pthread_getspecific)(keys[key].real_key);
    return getspecific(key);
}

UNB_EXPORT UNB_NO_TSAN int pthread_setspecific(pthread_key_t key, const void *val)
{
    if (key < KEYS_MAX && keys[key].os_thread)
        return UNB_REAL(pthread_setspecific)(keys[key].real_key, val);
    return setspecific(key, val);
}
#define KEY_CALL static __attribute__((noinline))
#else
#define getspecific pthread_getspecific
#define setspecific pthread_setspecific
#define KEY_CALL UNB_EXPORT
#endif

KEY_CALL void *getspecific(pthread_key_t key)
{
    if (key >= KEYS_MAX)
        return NULL;
    struct tsd *t = tsd_of_caller(key, false);
    struct slot *blk = t ? t->blocks[key / BLOCK] : NULL;
    if (!blk)
        return NULL;
    struct slot *sl = &blk[key % BLOCK];
    return sl->seq == atomic_load_explicit(&keys[key].seq, memory_order_relaxed)
               ? sl->val
               : NULL;
}

KEY_CALL int setspecific(pthread_key_t key, const void *val)
{
    if (key >= KEYS_MAX)
        return EINVAL;
    uintptr_t seq = atomic_load_explicit(&keys[key].seq, memory_order_relaxed);
    if (!(seq & 1))
        return EINVAL;
    struct tsd *t = tsd_of_caller(key, true);
    if (!t)
        return ENOMEM;
    struct slot **blk = &t->blocks[key / BLOCK];
    if (!*blk && !(*blk = calloc(BLOCK, sizeof **blk)))
        return ENOMEM;
    (*blk)[key % BLOCK] = (struct slot){.seq = seq, .val = (void *)val};
    return 0;
}

/* ---- C++ thread_local destructors ---------------------------------------- */

/*
 * A thread_local object with a destructor is constructed on a thread's
 * first use and registered through glibc's __cxa_thread_atexit_impl, which
 * keeps a list per OS thread and runs it when that thread exits (or calls
 * exit).  A coroutine's thread_local variables are its own (runtime/tls.h),
 * so their destructors are too: kept per coroutine, run as it ends, last
 * registered first, before its key destructors, as glibc orders them.  A
 * registration holds a reference on the object's module (dlopen with
 * RTLD_NOLOAD), as glibc does, so it cannot be unloaded before.
 */
struct tls_dtor {
    void (*fn)(void *);
    void *obj;
    uintptr_t tp; /* the thread pointer then: obj is where it was below it */
    void *module; /* a dlopen reference, or NULL for the program */
    struct tls_dtor *next;
};

UNB_EXPORT int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso_symbol)
{
    struct unb_coro *co = unb__tls_size ? unb__sched_current() : NULL;
    if (!co)
        return UNB_REAL(__cxa_thread_atexit_impl)(fn, obj, dso_symbol);
    struct tls_dtor *d = malloc(sizeof *d);
    if (!d)
        unb__die("cannot register a thread_local destructor: out of memory");
    *d = (struct tls_dtor){
        .fn = fn, .obj = obj, .tp = unb__tls_thread_pointer(), .next = co->tls_dtors};
    Dl_info info;
    struct link_map *lm = NULL;
    if (dso_symbol && dladdr1(dso_symbol, &info, (void **)&lm, RTLD_DL_LINKMAP) && lm &&
        lm->l_name && *lm->l_name)
        d->module = dlopen(lm->l_name, RTLD_LAZY | RTLD_NOLOAD);
    co->tls_dtors = d;
    return 0;
}

static void run_tls_dtors(struct unb_coro *co)
{
    struct tls_dtor *d;
    while ((d = co->tls_dtors)) { /* a destructor may register more */
        co->tls_dtors = d->next;
        /* A thread_local object is in the blocks of whichever thread the
         * coroutine runs on now (a handoff may have moved it since). */
        d->fn(unb__tls_here(d->obj, d->tp));
        if (d->module)
            dlclose(d->module);
        free(d);
    }
}

_Atomic bool unb__exiting;

/* exit() runs the calling thread's thread_local destructors first. */
UNB_EXPORT void exit(int status)
{
    struct unb_coro *co = unb__sched_current();
    if (co)
        run_tls_dtors(co);
    atomic_store_explicit(&unb__exiting, true, memory_order_relaxed);
    UNB_REAL(exit)(status);
}

static void cancel_now(void);

/* Every coroutine, as it ends: its thread_local and key destructors, and
 * the last-thread rule. */
static void on_coro_exit(struct unb_coro *co)
{
    if (atomic_load(&co->cancel_pending) && !(co->cancel_off & UNB_CANCEL_ACTING))
        atomic_fetch_sub(&unb__cancels, 1); /* never acted on */
    run_tls_dtors(co);
    if (co->tsd)
        tsd_destroy(&co->tsd);
    if (co->pthread && atomic_fetch_sub(&live_threads, 1) == 1 &&
        atomic_load(&main_exited))
        exit(0);
}

__attribute__((constructor(102))) static void thread_init(void)
{
    unb__sched_exit_hook = on_coro_exit;
    unb__sched_cancel_hook = cancel_now;
#if defined(UNB_ASAN) || defined(UNB_TSAN)
    keys_per_coro = true;
#endif
}

/* ---- creating, joining, ending ------------------------------------------ */

/* The stack the attributes ask for, or 0 for the runtime's default. */
static size_t requested_stack(const pthread_attr_t *attr)
{
    size_t sz, def = 0;
    if (!attr || pthread_attr_getstacksize(attr, &sz) != 0)
        return 0;
    pthread_attr_t d;
    if (pthread_getattr_default_np(&d) == 0) {
        pthread_attr_getstacksize(&d, &def);
        pthread_attr_destroy(&d);
    }
    /* glibc reports its default (RLIMIT_STACK, 8 MiB) for an attribute
     * nobody set a size on: that one gets UNBLOCK_STACK_SIZE. */
    return sz == def ? 0 : sz;
}

UNB_EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr,
                              void *(*fn)(void *), void *arg)
{
    if (!unb__threads_coro || unb__real_own_thread)
        return UNB_REAL(pthread_create)(t, attr, fn, arg);
    int detach = PTHREAD_CREATE_JOINABLE;
    if (attr)
        pthread_attr_getdetachstate(attr, &detach);
    atomic_fetch_add(&live_threads, 1);
    uintptr_t id;
    int rc = unb__sched_spawn_thread(fn, arg, requested_stack(attr), &id);
    if (rc != 0) {
        atomic_fetch_sub(&live_threads, 1);
        return EAGAIN; /* as glibc when it cannot get a stack */
    }
    *t = (pthread_t)id;
    if (detach == PTHREAD_CREATE_DETACHED)
        unb__sched_detach((struct unb_coro *)id);
    return 0;
}

UNB_EXPORT int pthread_join(pthread_t t, void **ret)
{
    unb__cancel_point();
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_join)(t, ret);
    return -unb__sched_join(co, ret, UNB_CALL_JOIN);
}

UNB_EXPORT int pthread_tryjoin_np(pthread_t t, void **ret)
{
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_tryjoin_np)(t, ret);
    return -unb__sched_tryjoin(co, ret);
}

/* A join with a deadline: rare enough to poll every millisecond (the
 * sleep parks a coroutine). */
static int join_until(struct unb_coro *co, void **ret, clockid_t clock,
                      const struct timespec *at)
{
    if (at && (at->tv_nsec < 0 || at->tv_nsec >= 1000000000L))
        return EINVAL;
    for (;;) {
        int rc = -unb__sched_tryjoin(co, ret);
        if (rc != EBUSY)
            return rc;
        struct timespec now;
        clock_gettime(clock, &now);
        if (at && (now.tv_sec > at->tv_sec ||
                   (now.tv_sec == at->tv_sec && now.tv_nsec >= at->tv_nsec)))
            return ETIMEDOUT;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

UNB_EXPORT int pthread_timedjoin_np(pthread_t t, void **ret, const struct timespec *at)
{
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_timedjoin_np)(t, ret, at);
    return join_until(co, ret, CLOCK_REALTIME, at);
}

UNB_EXPORT int pthread_clockjoin_np(pthread_t t, void **ret, clockid_t clock,
                                    const struct timespec *at)
{
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_clockjoin_np)(t, ret, clock, at);
    if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC)
        return EINVAL;
    return join_until(co, ret, clock, at);
}

UNB_EXPORT int pthread_detach(pthread_t t)
{
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_detach)(t);
    return -unb__sched_detach(co);
}

UNB_EXPORT UNB_NO_TSAN pthread_t pthread_self(void)
{
    struct unb_coro *co = UNB_TLS_FRESH(unb__tls_cur);
    if (co)
        return (pthread_t)co;
    return UNB_REAL(pthread_self)();
}

/*
 * Exit.  glibc ends a thread by unwinding its stack: a forced unwind
 * (_Unwind_ForcedUnwind) runs every frame's C++ destructors and the
 * cleanup handlers of code built with -fexceptions, and its stop function
 * jumps into each cleanup buffer that pthread_cleanup_push registered
 * (C without -fexceptions) as the unwind reaches the frame that holds it.
 * The handler runs there and calls __pthread_unwind_next, which goes on
 * unwinding from that frame.  glibc keeps the chain of buffers in the OS
 * thread's descriptor, which a worker's coroutines share, so the chain is
 * ours for coroutines (co->cleanup, linked through the buffer's private
 * words) and glibc's for plain threads.  The unwind ends at the
 * coroutine's first frame (the switch trampoline marks the outermost
 * frame), where the coroutine ends as if its function had returned.
 */
struct unwinding {
    struct _Unwind_Exception exc; /* what the unwinder carries */
    struct unb_coro *co;
    void *result;
};

#define UNWIND_CLASS 0x554e424c65786974ull /* "UNBLexit" */

static _Unwind_Reason_Code unwind_stop(int version, _Unwind_Action actions,
                                       _Unwind_Exception_Class cls,
                                       struct _Unwind_Exception *exc,
                                       struct _Unwind_Context *ctx, void *arg);

static void unwind_cleanup(_Unwind_Reason_Code rc, struct _Unwind_Exception *exc)
{
    (void)rc;
    (void)exc;
    unb__die("a coroutine's pthread_exit was caught and not rethrown");
}

__attribute__((noreturn)) static void unwind_finish(struct unwinding *u)
{
    void *result = u->result;
    u->co->unwinding = NULL;
    free(u);
    unb__sched_exit(result);
}

/* Jumps into a cleanup buffer: its first words are a jmp_buf, saved by
 * __sigsetjmp without the signal mask (the rest of a full jmp_buf, which
 * longjmp would read only with a saved mask, is not there: hence the
 * pointer the compiler cannot follow). */
__attribute__((noreturn)) static void jump_to(__pthread_unwind_buf_t *buf)
{
    struct __jmp_buf_tag *env = (struct __jmp_buf_tag *)(void *)buf->__cancel_jmp_buf;
    __asm__("" : "+r"(env));
    longjmp(env, 1);
}

/* Goes on unwinding co's stack from the caller's frame. */
__attribute__((noreturn)) static void unwind_on(struct unwinding *u)
{
    _Unwind_ForcedUnwind(&u->exc, unwind_stop, u);
    /* No unwind information: jump straight to the cleanup buffers. */
    __pthread_unwind_buf_t *top = u->co->cleanup;
    if (top)
        jump_to(top);
    unwind_finish(u);
}

static _Unwind_Reason_Code unwind_stop(int version, _Unwind_Action actions,
                                       _Unwind_Exception_Class cls,
                                       struct _Unwind_Exception *exc,
                                       struct _Unwind_Context *ctx, void *arg)
{
    (void)version;
    (void)cls;
    (void)exc;
    struct unwinding *u = arg;
    __pthread_unwind_buf_t *top = u->co->cleanup;
    /* The buffer lives in the frame that pushed it: once the unwind has
     * reached a frame whose CFA lies above it, that frame is the buffer's,
     * and the frames below have been unwound. */
    if (top && ((actions & _UA_END_OF_STACK) || _Unwind_GetCFA(ctx) > (uintptr_t)top))
        jump_to(top);
    if (actions & _UA_END_OF_STACK)
        unwind_finish(u);
    return _URC_NO_REASON;
}

UNB_EXPORT void pthread_exit(void *ret)
{
    struct unb_coro *co = unb__sched_current();
    if (!co)
        UNB_REAL(pthread_exit)(ret);
    if (co->pthread && co == unb__main_coro)
        atomic_store(&main_exited, true);
    struct unwinding *u = co->unwinding ? NULL : calloc(1, sizeof *u);
    if (!u) /* no memory, or exit from a cleanup handler: no unwind */
        unb__sched_exit(ret);
    u->exc.exception_class = UNWIND_CLASS;
    u->exc.exception_cleanup = unwind_cleanup;
    u->co = co;
    u->result = ret;
    co->unwinding = u;
    unwind_on(u);
}

/* pthread_cleanup_push and pop in code built without -fexceptions. */
UNB_EXPORT void __pthread_register_cancel(__pthread_unwind_buf_t *buf)
{
    struct unb_coro *co = unb__sched_current();
    if (!co) {
        UNB_REAL(__pthread_register_cancel)(buf);
        return;
    }
    buf->__pad[0] = co->cleanup;
    co->cleanup = buf;
}

UNB_EXPORT void __pthread_unregister_cancel(__pthread_unwind_buf_t *buf)
{
    struct unb_coro *co = unb__sched_current();
    if (!co) {
        UNB_REAL(__pthread_unregister_cancel)(buf);
        return;
    }
    co->cleanup = buf->__pad[0];
}

/* Called by a cleanup handler's code once the handler has run. */
UNB_EXPORT void __pthread_unwind_next(__pthread_unwind_buf_t *buf)
{
    struct unb_coro *co = unb__sched_current();
    if (!co || !co->unwinding)
        UNB_REAL(__pthread_unwind_next)(buf);
    co->cleanup = buf->__pad[0];
    unwind_on(co->unwinding);
}

/* ---- calls that take a pthread_t ---------------------------------------- */

/*
 * A signal to one coroutine, as to one thread: with per-coroutine masks
 * (sigmask.h), it is the coroutine's alone, pending while its mask blocks
 * it (sigwait takes it), and its handler runs on the coroutine's stack,
 * interrupting a park as the kernel interrupts a thread's call (sched.c,
 * unb__sched_signal_coro).  To the caller itself it goes by tgkill to its
 * own thread, as natively.  A signal without a handler that the
 * coroutine does not block acts on the process (its default action), as
 * it would natively; so does every signal without per-coroutine masks.
 */
UNB_EXPORT int pthread_kill(pthread_t t, int sig)
{
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_kill)(t, sig);
    if (sig < 0 || sig >= NSIG)
        return EINVAL;
    if (sig == 0)
        return 0;
    uint64_t bit = sig <= 64 ? UINT64_C(1) << (sig - 1) : 0;
    if (!unb__sigmask_on || !bit || (!(co->sigmask & bit) && !unb__signal_handled(sig)))
        return kill(getpid(), sig) == 0 ? 0 : errno;
    if (co == unb__sched_current() && unb__sched_own_task()) {
        long r = syscall(SYS_tgkill, getpid(), gettid(), sig);
        return r == 0 ? 0 : errno;
    }
    unb__sched_signal_coro(co, sig);
    return 0;
}

UNB_EXPORT int pthread_sigqueue(pthread_t t, int sig, const union sigval val)
{
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_sigqueue)(t, sig, val);
    if (sig < 0 || sig >= NSIG)
        return EINVAL;
    return sigqueue(getpid(), sig, val) == 0 ? 0 : errno;
}

/*
 * Cancellation, deferred.  pthread_cancel marks the coroutine and wakes it
 * from a park at a cancellation point (sched.c, unb__sched_cancel); the
 * cancellation points of the hooks (the read, write, socket and poll
 * families, sleeps, condition variables, semaphores, pthread_join,
 * pthread_testcancel, and the calls marked as blocking at their entry)
 * act on it when it is enabled: the coroutine ends as
 * pthread_exit(PTHREAD_CANCELED), unwinding (see "Exit").  The state and
 * type are the coroutine's own (glibc keeps them in the OS thread's
 * descriptor).  Asynchronous cancellation is taken as deferred: a
 * coroutine is never cancelled between two instructions.
 */
static void cancel_now(void)
{
    pthread_exit(PTHREAD_CANCELED);
}

UNB_EXPORT int pthread_cancel(pthread_t t)
{
    struct unb_coro *co = as_coro(t);
    if (!co) {
        int rc = UNB_REAL(pthread_cancel)(t);
        if (rc == 0)
            unb__sync_thread_cancel(t);
        return rc;
    }
    unb__sched_cancel(co);
    return 0;
}

UNB_EXPORT int pthread_setcancelstate(int state, int *old)
{
    struct unb_coro *co = unb__sched_current();
    if (!co)
        return UNB_REAL(pthread_setcancelstate)(state, old);
    if (state != PTHREAD_CANCEL_ENABLE && state != PTHREAD_CANCEL_DISABLE)
        return EINVAL;
    if (old)
        *old = co->cancel_off & UNB_CANCEL_DISABLED ? PTHREAD_CANCEL_DISABLE
                                                    : PTHREAD_CANCEL_ENABLE;
    if (state == PTHREAD_CANCEL_DISABLE)
        co->cancel_off |= UNB_CANCEL_DISABLED;
    else
        co->cancel_off &= (uint8_t)~UNB_CANCEL_DISABLED;
    return 0;
}

UNB_EXPORT int pthread_setcanceltype(int type, int *old)
{
    struct unb_coro *co = unb__sched_current();
    if (!co)
        return UNB_REAL(pthread_setcanceltype)(type, old);
    if (type != PTHREAD_CANCEL_DEFERRED && type != PTHREAD_CANCEL_ASYNCHRONOUS)
        return EINVAL;
    if (old)
        *old = co->cancel_async ? PTHREAD_CANCEL_ASYNCHRONOUS : PTHREAD_CANCEL_DEFERRED;
    co->cancel_async = type == PTHREAD_CANCEL_ASYNCHRONOUS;
    return 0;
}

UNB_EXPORT void pthread_testcancel(void)
{
    if (!unb__sched_current()) {
        UNB_REAL(pthread_testcancel)();
        return;
    }
    unb__cancel_point();
}

UNB_EXPORT int pthread_setname_np(pthread_t t, const char *name)
{
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_setname_np)(t, name);
    size_t n = strlen(name);
    if (n >= sizeof co->name)
        return ERANGE;
    memcpy(co->name, name, n + 1);
    return 0;
}

UNB_EXPORT int pthread_getname_np(pthread_t t, char *buf, size_t len)
{
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_getname_np)(t, buf, len);
    const char *name = co->name[0] ? co->name : program_invocation_short_name;
    size_t n = strnlen(name, sizeof co->name - 1);
    if (len < n + 1)
        return ERANGE;
    memcpy(buf, name, n);
    buf[n] = 0;
    return 0;
}

static int coro_getattr(struct unb_coro *co, pthread_attr_t *attr);

/* Not instrumented at its entry: ThreadSanitizer asks for a new thread's
 * stack before it has started the thread. */
UNB_EXPORT UNB_NO_TSAN int pthread_getattr_np(pthread_t t, pthread_attr_t *attr)
{
    struct unb_coro *co = as_coro(t);
    if (!co)
        return UNB_REAL(pthread_getattr_np)(t, attr);
    return coro_getattr(co, attr);
}

static __attribute__((noinline)) int coro_getattr(struct unb_coro *co, pthread_attr_t *attr)
{
    int rc = pthread_attr_init(attr);
    if (rc != 0)
        return rc;
    /* The usable stack: from its lowest address up to the coroutine's
     * header at the top of the mapping. */
    char *lo = co->stack.lo, *hi = (char *)co;
    pthread_attr_setstack(attr, lo, (size_t)(hi - lo));
    pthread_attr_setguardsize(attr, co->stack.guarded ? (size_t)(co->stack.lo - co->stack.map) : 0);
    pthread_attr_setdetachstate(attr, unb__sched_detached(co) ? PTHREAD_CREATE_DETACHED
                                                              : PTHREAD_CREATE_JOINABLE);
    return 0;
}

UNB_EXPORT int pthread_getschedparam(pthread_t t, int *policy, struct sched_param *p)
{
    if (!as_coro(t))
        return UNB_REAL(pthread_getschedparam)(t, policy, p);
    *policy = SCHED_OTHER;
    p->sched_priority = 0;
    return 0;
}

UNB_EXPORT int pthread_setschedparam(pthread_t t, int policy, const struct sched_param *p)
{
    if (!as_coro(t))
        return UNB_REAL(pthread_setschedparam)(t, policy, p);
    return 0; /* a coroutine has no scheduling policy of its own */
}

UNB_EXPORT int pthread_setschedprio(pthread_t t, int prio)
{
    if (!as_coro(t))
        return UNB_REAL(pthread_setschedprio)(t, prio);
    return 0;
}

UNB_EXPORT int pthread_setaffinity_np(pthread_t t, size_t size, const cpu_set_t *set)
{
    if (!as_coro(t))
        return UNB_REAL(pthread_setaffinity_np)(t, size, set);
    return 0; /* coroutines run on whichever worker has them */
}

UNB_EXPORT int pthread_getaffinity_np(pthread_t t, size_t size, cpu_set_t *set)
{
    if (!as_coro(t))
        return UNB_REAL(pthread_getaffinity_np)(t, size, set);
    return sched_getaffinity(0, size, set) == 0 ? 0 : errno;
}

UNB_EXPORT int pthread_getcpuclockid(pthread_t t, clockid_t *clock)
{
    if (!as_coro(t))
        return UNB_REAL(pthread_getcpuclockid)(t, clock);
    return ENOENT; /* a coroutine's CPU time is not accounted separately */
}

/* ---- stdio locks --------------------------------------------------------- */

/*
 * glibc's FILE lock is recursive per OS thread.  A coroutine that parked
 * while holding one would let the next coroutine on its worker into the
 * same FILE.  stdio's own I/O never reaches our hooks (glibc calls its
 * internal read and write), so a single stdio call never parks; only a
 * lock held across calls with flockfile can span a park.  The holder is
 * pinned to its thread until funlockfile: its hooks block instead of
 * parking.
 */
UNB_EXPORT void flockfile(FILE *f)
{
    struct unb_coro *co = unb__sched_current();
    if (co)
        co->pinned++;
    UNB_REAL(flockfile)(f);
}

UNB_EXPORT int ftrylockfile(FILE *f)
{
    int rc = UNB_REAL(ftrylockfile)(f);
    struct unb_coro *co = unb__sched_current();
    if (rc == 0 && co)
        co->pinned++;
    return rc;
}

UNB_EXPORT void funlockfile(FILE *f)
{
    UNB_REAL(funlockfile)(f);
    struct unb_coro *co = unb__sched_current();
    if (co && co->pinned)
        co->pinned--;
}
