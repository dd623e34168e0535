/*
 * sigaction() and signal().
 *
 * Two reasons to stand between a program and the kernel here:
 *
 *  1. EINTR.  When a program's handler runs, a parked coroutine may have to
 *     see EINTR, as the thread the kernel interrupted would natively.  We
 *     install a wrapper that calls the program's handler and then tells
 *     the runtime (runtime/intr.h picks the coroutine).
 *  2. Stack overflows.  The runtime's SIGSEGV/SIGBUS handler must stay in
 *     front; the program's own action is kept beside it and runs for every
 *     fault that is not a coroutine stack overflow.
 *
 * What the program reads back (the old action, sigaction(sig, NULL, &old))
 * is always what it set, never our wrapper.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "../runtime/intr.h"
#include "../runtime/sched.h"
#include "../runtime/sigmask.h"
#include "../runtime/stack.h"
#include "real.h"
#include "sigs.h"

/* The program's actions for signals whose handler we wrapped. */
static struct sigaction user_act[NSIG];
/* What the wrapper needs of them, read by whichever thread takes the
 * signal, maybe while another changes the action: atomic copies (the
 * flags, then the handler, stored before the kernel's action changes; a
 * signal taken between the two stores may still pair the old handler with
 * the new flags).  A plain copy of the struct was a data race. */
static _Atomic int user_flags[NSIG];
static void *_Atomic user_fn[NSIG];
/* Signals 1-64 with such a handler (bit n - 1 for signal n). */
static _Atomic uint64_t handled_sigs;

bool unb__signal_handled(int sig)
{
    return sig >= 1 && sig <= 64 &&
           (atomic_load_explicit(&handled_sigs, memory_order_relaxed) >> (sig - 1) & 1);
}

static bool is_handler(const struct sigaction *a)
{
    return (a->sa_flags & SA_SIGINFO) ||
           (a->sa_handler != SIG_DFL && a->sa_handler != SIG_IGN);
}

/* Faults are synchronous: they interrupt no parked call, and the runtime's
 * fault handler chains to the program's own action directly. */
static bool wrap(int sig, const struct sigaction *a)
{
    return sig != SIGSEGV && sig != SIGBUS && is_handler(a);
}

/* Program handlers run on this thread (unb__signal_runs). */
static UNB_TLS unsigned long runs;

unsigned long unb__signal_runs(void)
{
    return UNB_TLS_FRESH(runs);
}

static void wrapper(int sig, siginfo_t *si, void *uc)
{
    runs++;
    void *fn = atomic_load_explicit(&user_fn[sig], memory_order_acquire);
    int flags = atomic_load_explicit(&user_flags[sig], memory_order_relaxed);
    if (flags & SA_RESETHAND) /* the kernel has just reset it to SIG_DFL */
        unb__intr_handlers_add(-1, -!(flags & SA_RESTART));
    if (flags & SA_SIGINFO)
        ((void (*)(int, siginfo_t *, void *))fn)(sig, si, uc);
    else
        ((void (*)(int))fn)(sig);
    /* A signal sent to this thread (raise, pthread_kill, and ours to a
     * coroutine) was for whoever runs here: it interrupts no other. */
    if (si && si->si_code == SI_TKILL)
        return;
#ifdef UNB_TSAN
    /* ThreadSanitizer's own handler saves errno before it calls this one
     * and restores it after (CallUserSignalHandler), in code it does not
     * instrument.  A save and restore here would be writes in a handler,
     * which the tool runs either where the signal came or at the next
     * interceptor of the fiber that was current then, and which it
     * intermittently pairs with the next coroutine's errno restore on the
     * same OS thread (tests/fault/eintr_storm, preloaded): two writes one
     * thread made one after the other, which cannot race. */
    unb__sched_signal_arrived(flags & SA_RESTART, sig);
#else
    int saved = errno;
    unb__sched_signal_arrived(flags & SA_RESTART, sig);
    errno = saved;
#endif
}

/* Keeps the runtime's count of installed handlers in step. */
static void count(int sig, const struct sigaction *was, const struct sigaction *now)
{
    int any = 0, norestart = 0;
    if (was && wrap(sig, was)) {
        any--;
        norestart -= !(was->sa_flags & SA_RESTART);
    }
    if (now && wrap(sig, now)) {
        any++;
        norestart += !(now->sa_flags & SA_RESTART);
    }
    if (any || norestart)
        unb__intr_handlers_add(any, norestart);
}

#ifdef UNB_TSAN
/*
 * ThreadSanitizer's runtime installs its own handlers while it initialises
 * (before our constructors run), and when it precedes us in the library
 * order (a program built with -fsanitize=thread that links -lunblock) its
 * "real" sigaction is this hook.  Instrumented code cannot run then (the
 * runtime has no thread state yet), so the hook's entry is not
 * instrumented, and until our constructors have run it goes straight to
 * the real call: nothing of ours is installed yet to stand in front of.
 */
static bool hooks_ready;
__attribute__((constructor(101))) static void signal_init(void)
{
    hooks_ready = true;
}
static int sigaction_hooked(int sig, const struct sigaction *act, struct sigaction *old);

UNB_EXPORT UNB_NO_TSAN int sigaction(int sig, const struct sigaction *act,
                                     struct sigaction *old)
{
    if (!unb_likely(hooks_ready))
        return UNB_REAL(sigaction)(sig, act, old);
    return sigaction_hooked(sig, act, old);
}

static __attribute__((noinline)) int sigaction_hooked(int sig, const struct sigaction *act,
                                                      struct sigaction *old)
#else
UNB_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
#endif
{
    if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
        return UNB_REAL(sigaction)(sig, act, old);

    struct sigaction prev;
    if (unb__stack_fault_chain_get(sig, &prev)) {
        /* The runtime's fault handler stays installed; keep theirs here. */
        if (act)
            unb__stack_fault_chain_set(sig, act);
        if (old)
            *old = prev;
        return 0;
    }

    struct sigaction kact, kold;
    const struct sigaction *pass = act;
    struct sigaction saved_user = user_act[sig];
    if (act && wrap(sig, act)) {
        user_act[sig] = *act;
        atomic_store_explicit(&user_flags[sig], act->sa_flags, memory_order_relaxed);
        atomic_store_explicit(&user_fn[sig],
                              (act->sa_flags & SA_SIGINFO) ? (void *)act->sa_sigaction
                                                           : (void *)act->sa_handler,
                              memory_order_release);
        kact = *act;
        kact.sa_sigaction = wrapper;
        kact.sa_flags |= SA_SIGINFO;
        pass = &kact;
    }
    if (UNB_REAL(sigaction)(sig, pass, &kold) != 0) {
        user_act[sig] = saved_user;
        atomic_store_explicit(&user_flags[sig], saved_user.sa_flags, memory_order_relaxed);
        atomic_store_explicit(&user_fn[sig],
                              (saved_user.sa_flags & SA_SIGINFO)
                                  ? (void *)saved_user.sa_sigaction
                                  : (void *)saved_user.sa_handler,
                              memory_order_release);
        return -1;
    }
    if (kold.sa_sigaction == wrapper && (kold.sa_flags & SA_SIGINFO))
        kold = saved_user;
    if (act) {
        count(sig, &kold, act);
        if (sig <= 64) {
            uint64_t bit = UINT64_C(1) << (sig - 1);
            if (wrap(sig, act))
                atomic_fetch_or(&handled_sigs, bit);
            else
                atomic_fetch_and(&handled_sigs, ~bit);
            if (wrap(sig, act) && (act->sa_flags & SA_RESTART))
                atomic_fetch_or(&unb__intr_restart_sigs, bit);
            else
                atomic_fetch_and(&unb__intr_restart_sigs, ~bit);
        }
    }
    if (old)
        *old = kold;
    return 0;
}

UNB_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    /* glibc's signal() has BSD semantics: restart, no reset, the signal
     * blocked while its handler runs. */
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sig > 0 && sig < NSIG)
        sigaddset(&act.sa_mask, sig);
    if (sigaction(sig, &act, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* ---- masks ---------------------------------------------------------------- */

/* A coroutine's mask is its own (runtime/sigmask.h): the calls change it,
 * and the kernel's mask of the thread that runs it follows.  Outside a
 * coroutine (a real thread, the library mode), the kernel's. */
static int coro_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    struct unb_coro *co = unb__sched_current();
    uint64_t was = co->sigmask, now = was;
    if (set) {
        uint64_t bits = unb__sigset_bits(set);
        switch (how) {
        case SIG_BLOCK:
            now = was | bits;
            break;
        case SIG_UNBLOCK:
            now = was & ~bits;
            break;
        case SIG_SETMASK:
            now = bits;
            break;
        default:
            return EINVAL;
        }
    }
    if (old)
        unb__sigset_from_bits(old, was);
    if (set)
        unb__sched_set_sigmask(now);
    return 0;
}

static bool masks_per_coroutine(void)
{
    if (!unb__sigmask_on || !unb__sched_current())
        return false;
    struct unb__m_state *m = UNB_TLS_FRESH(unb__tls_m);
    if (atomic_load_explicit(&m->depth, memory_order_relaxed) != 0)
        return false; /* the runtime's own */
    /* A vfork child (a shell sets its mask before exec) must leave the
     * parent's coroutine and thread as they are. */
    return unb__sched_own_task();
}

UNB_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    if (!masks_per_coroutine())
        return UNB_REAL(pthread_sigmask)(how, set, old);
    return coro_sigmask(how, set, old);
}

UNB_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    if (!masks_per_coroutine())
        return UNB_REAL(sigprocmask)(how, set, old);
    int e = coro_sigmask(how, set, old);
    if (e == 0)
        return 0;
    errno = e;
    return -1;
}

bool unb__sigmask_enter(const sigset_t *mask, uint64_t *saved)
{
    *saved = unb__sched_current()->sigmask;
    unsigned long before = unb__signal_runs();
    unb__sched_set_sigmask(unb__sigset_bits(mask));
    if (unb__signal_runs() == before)
        return true;
    unb__sched_set_sigmask(*saved);
    return false;
}

void unb__sigmask_leave(uint64_t saved)
{
    int e = unb_errno;
    unb__sched_set_sigmask(saved);
    unb_errno = e;
}

/*
 * glibc changes a thread's mask without sigprocmask in a few places: the
 * BSD and System V calls, and jumps and context switches that restore a
 * saved mask.  After the first kind the coroutine takes the mask the call
 * left (one more syscall, to read it); before the second, the mask the
 * jump will restore.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void resync(void)
{
    if (masks_per_coroutine())
        unb__sched_sigmask_resync();
}

UNB_EXPORT int sigsetmask(int mask)
{
    int r = UNB_REAL(sigsetmask)(mask);
    resync();
    return r;
}

UNB_EXPORT int sigblock(int mask)
{
    int r = UNB_REAL(sigblock)(mask);
    resync();
    return r;
}

UNB_EXPORT int sighold(int sig)
{
    int r = UNB_REAL(sighold)(sig);
    resync();
    return r;
}

UNB_EXPORT int sigrelse(int sig)
{
    int r = UNB_REAL(sigrelse)(sig);
    resync();
    return r;
}

UNB_EXPORT sighandler_t sigset(int sig, sighandler_t disp)
{
    sighandler_t r = UNB_REAL(sigset)(sig, disp);
    resync();
    return r;
}
#pragma GCC diagnostic pop

/* Before a jump that restores the mask sigsetjmp saved. */
static void before_jump(const struct __jmp_buf_tag *env)
{
    if (env->__mask_was_saved && masks_per_coroutine())
        unb__sched_sigmask_will_be(unb__sigset_bits(&env->__saved_mask));
}

UNB_EXPORT void siglongjmp(sigjmp_buf env, int val)
{
    before_jump(env);
    UNB_REAL(siglongjmp)(env, val);
}

UNB_EXPORT void longjmp(jmp_buf env, int val)
{
    before_jump(env);
    UNB_REAL(longjmp)(env, val);
}

UNB_EXPORT void _longjmp(jmp_buf env, int val)
{
    before_jump(env);
    UNB_REAL(_longjmp)(env, val);
}

UNB_EXPORT void __longjmp_chk(struct __jmp_buf_tag env[1], int val)
{
    before_jump(env);
    UNB_REAL(__longjmp_chk)(env, val);
}

UNB_EXPORT int setcontext(const ucontext_t *ucp)
{
    if (masks_per_coroutine())
        unb__sched_sigmask_will_be(unb__sigset_bits(&ucp->uc_sigmask));
    return UNB_REAL(setcontext)(ucp);
}

UNB_EXPORT int swapcontext(ucontext_t *restrict oucp, const ucontext_t *restrict ucp)
{
    if (masks_per_coroutine())
        unb__sched_sigmask_will_be(unb__sigset_bits(&ucp->uc_sigmask));
    return UNB_REAL(swapcontext)(oucp, ucp);
}
