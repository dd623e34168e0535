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
#include "../runtime/stack.h"
#include "real.h"

/* The program's actions for signals whose handler we wrapped. */
static struct sigaction user_act[NSIG];
/* What the wrapper needs of them, read by whichever thread takes the
 * signal, maybe while another changes the action: atomic copies (the
 * flags, then the handler, stored before the kernel's action changes; a
 * signal taken between the two stores may still pair the old handler with
 * the new flags).  A plain copy of the struct was a data race. */
static _Atomic int user_flags[NSIG];
static void *_Atomic user_fn[NSIG];

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

static void wrapper(int sig, siginfo_t *si, void *uc)
{
    void *fn = atomic_load_explicit(&user_fn[sig], memory_order_acquire);
    int flags = atomic_load_explicit(&user_flags[sig], memory_order_relaxed);
    if (flags & SA_RESETHAND) /* the kernel has just reset it to SIG_DFL */
        unb__intr_handlers_add(-1, -!(flags & SA_RESTART));
    if (flags & SA_SIGINFO)
        ((void (*)(int, siginfo_t *, void *))fn)(sig, si, uc);
    else
        ((void (*)(int))fn)(sig);
    int saved = errno;
    unb__sched_signal_arrived(flags & SA_RESTART);
    errno = saved;
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
    if (act)
        count(sig, &kold, act);
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
