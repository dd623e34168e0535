/*
 * sigmask_glibc: the calls through which glibc changes a thread's signal
 * mask without sigprocmask, each followed by a read of the mask with
 * pthread_sigmask, and again after a blocking call (a sleep):
 *
 *   - sigsetmask, sigblock, sighold, sigrelse (BSD and System V);
 *   - siglongjmp to a sigsetjmp that saved the mask, and longjmp to one
 *     that did not;
 *   - swapcontext and setcontext to contexts saved with other masks;
 *   - a vfork child that sets its own mask before it execs (a shell does)
 *     leaves the parent's alone.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <sys/wait.h>
#include <ucontext.h>

#include "diff.h"

/* USR1, USR2 and TERM: blocked (1) or not, as three bits. */
static int mask_now(void)
{
    sigset_t s;
    sigemptyset(&s);
    pthread_sigmask(SIG_SETMASK, NULL, &s);
    return sigismember(&s, SIGUSR1) | sigismember(&s, SIGUSR2) << 1 |
           sigismember(&s, SIGTERM) << 2;
}

static void show(const char *what)
{
    int m = mask_now();
    printf("%-44s USR1 %-7s USR2 %-7s TERM %s\n", what, m & 1 ? "blocked" : "open",
           m & 2 ? "blocked" : "open", m & 4 ? "blocked" : "open");
    msleep(2);
    if (mask_now() != m)
        printf("  ...and another mask after a sleep\n");
}

static void set(int how, int sig)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    MUST0(pthread_sigmask(how, &s, NULL));
}

static sigjmp_buf env;
static ucontext_t uc_main, uc_other;
static char other_stack[64 * 1024];

static void other(void)
{
    show("in a context made with USR2 blocked");
    set(SIG_UNBLOCK, SIGUSR2);
    swapcontext(&uc_other, &uc_main);
}

int main(void)
{
    diff_start(1);
    show("at start");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    sigsetmask(1 << (SIGUSR1 - 1));
    show("sigsetmask(USR1)");
    sigblock(1 << (SIGUSR2 - 1));
    show("sigblock(USR2)");
    sigrelse(SIGUSR1);
    show("sigrelse(USR1)");
    sighold(SIGTERM);
    show("sighold(TERM)");
    sigsetmask(0);
    show("sigsetmask(0)");
#pragma GCC diagnostic pop

    set(SIG_BLOCK, SIGUSR1);
    if (sigsetjmp(env, 1) == 0) {
        set(SIG_SETMASK, SIGTERM);
        show("before siglongjmp, mask TERM");
        siglongjmp(env, 1);
    }
    show("after siglongjmp to a saved USR1");
    if (sigsetjmp(env, 0) == 0) {
        set(SIG_SETMASK, SIGUSR2);
        longjmp(env, 1);
    }
    show("after longjmp to an unsaved mask (USR2)");

    set(SIG_SETMASK, SIGUSR2);
    MUST(getcontext(&uc_other));
    uc_other.uc_stack.ss_sp = other_stack;
    uc_other.uc_stack.ss_size = sizeof other_stack;
    uc_other.uc_link = NULL;
    makecontext(&uc_other, other, 0);
    set(SIG_SETMASK, SIGTERM);
    MUST(swapcontext(&uc_main, &uc_other));
    show("back from it (saved with TERM blocked)");

    set(SIG_SETMASK, SIGUSR1);
    pid_t pid = vfork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int st;
    MUST(waitpid(pid, &st, 0));
    show("after a vfork child cleared its own");
    return 0;
}
