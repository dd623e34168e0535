/*
 * Coroutine stack overflows and the program's own SIGSEGV handling.
 *
 *  - An overflow in a coroutine is reported in one line on stderr naming
 *    the stack size and UNBLOCK_STACK_SIZE, and the process dies by SIGSEGV
 *    (default size and UNBLOCK_STACK_SIZE=64k).
 *  - The runtime's fault handler stays in front for overflows even when the
 *    program installed its own SIGSEGV handler, before or after the runtime
 *    started (stack.c checks for an overflow before chaining).
 *  - Every other fault reaches the program's handler, in a coroutine and on
 *    a plain thread, with the handler installed before or after the runtime
 *    started; the handler can siglongjmp out, exit, or fix the fault and
 *    return.  Without a handler such a fault kills the process by SIGSEGV
 *    and is not called an overflow.
 *  - sigaction(SIGSEGV, NULL, &old) gives back the program's own action.
 *
 * Each case runs in a child: this program re-executed with a mode argument.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <unblock.h>

#include "tap.h"
#include "child.h"

extern char **environ;

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* ---- running a child ------------------------------------------------------ */

#define CHILD_TIMEOUT 30 /* seconds; a hung child dies by SIGALRM */

/* Runs this program with `mode` as its argument, the environment without
 * any UNBLOCK_* variable plus `env_add`, and collects stdout, stderr and
 * the wait status. */
static void run_child(struct child *c, const char *mode, const char *const *env_add)
{
    static char *envp[4096];
    size_t n = 0;
    for (char **e = environ; *e; e++) {
        int replaced = 0; /* env_add sets it anew */
        for (const char *const *a = env_add; a && *a && !replaced; a++) {
            size_t k = strcspn(*a, "=");
            replaced = strncmp(*e, *a, k) == 0 && (*e)[k] == '=';
        }
        if (strncmp(*e, "UNBLOCK_", 8) != 0 && !replaced && n < 4000)
            envp[n++] = *e;
    }
    for (; env_add && *env_add; env_add++)
        envp[n++] = (char *)*env_add;
    envp[n] = NULL;

    int out_fd, err_fd;
    pid_t pid = child_fork(&out_fd, &err_fd);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        alarm(CHILD_TIMEOUT * (unsigned)test_slow()); /* survives execve */
        char *argv[] = {"test_overflow", (char *)mode, NULL};
        /* By the path readlink gives, not /proc/self/exe: under
         * valgrind that would name valgrind's own binary. */
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        self[len > 0 ? len : 0] = 0;
        execve(self, argv, envp);
        _exit(127);
    }
    child_collect(c, out_fd, err_fd, pid);
}

static int died_by_sigsegv(const struct child *c)
{
    return WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGSEGV;
}

/* ---- the children --------------------------------------------------------- */

static volatile int recursion_limit = INT_MAX;

/* About 1 KiB per frame, every 64 bytes touched so that the guard page
 * cannot be stepped over; the store after the call keeps the frame live
 * (no tail call, no accumulator loop). */
__attribute__((noinline)) static int recurse(int depth)
{
    volatile char frame[1024];
    /* The address escapes, so the whole array must really be on the stack
     * (clang otherwise keeps only the bytes it sees used). */
    __asm__ volatile("" : : "r"(frame) : "memory");
    for (size_t i = 0; i < sizeof frame; i += 64)
        frame[i] = (char)depth;
    if (depth >= recursion_limit)
        return frame[0];
    int r = recurse(depth + 1);
    frame[1] = (char)r;
    return frame[1] + frame[64];
}

static void *overflow_coro(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

static void *nop_coro(void *arg)
{
    return arg;
}

/* Starts the runtime: one spawn and join. */
static void start_runtime(void)
{
    void *res = NULL;
    unb_coro_t *co = unb_spawn(nop_coro, (void *)(intptr_t)7);
    if (!co || unb_join(co, &res) != 0 || res != (void *)(intptr_t)7) {
        fprintf(stderr, "child: could not start the runtime\n");
        exit(3);
    }
}

static volatile sig_atomic_t handler_calls;
static void *volatile fault_addr;
static sigjmp_buf *volatile jump_to;
static char *bad_page; /* PROT_NONE, mapped by the child */

static void h_longjmp(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    handler_calls++;
    fault_addr = si->si_addr;
    siglongjmp(*jump_to, 1);
}

static void h_exit42(int sig)
{
    (void)sig;
    exit(42);
}

static void h_report_exit42(int sig)
{
    (void)sig;
    static const char msg[] = "user handler ran\n";
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(43);
    _exit(42);
}

static void h_fixup(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    handler_calls++;
    fault_addr = si->si_addr;
    mprotect(bad_page, 4096, PROT_READ | PROT_WRITE);
}

static void install(int sa_flags, void (*h)(int), void (*sh)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    if (sa_flags & SA_SIGINFO)
        sa.sa_sigaction = sh;
    else
        sa.sa_handler = h;
    sa.sa_flags = sa_flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0) {
        fprintf(stderr, "child: sigaction: %s\n", strerror(errno));
        exit(3);
    }
}

/* Faults on bad_page and comes back through the handler's siglongjmp. */
static int fault_and_recover(void)
{
    sigjmp_buf env;
    jump_to = &env;
    if (sigsetjmp(env, 1) == 0) {
        *(volatile char *)bad_page = 1;
        return 0; /* the write did not fault */
    }
    return 1;
}

static void *fault_coro(void *arg)
{
    *(int *)arg = unb_self() != NULL;
    return (void *)(intptr_t)fault_and_recover();
}

static void *fault_thread(void *arg)
{
    *(int *)arg = unb_self() != NULL;
    return (void *)(intptr_t)fault_and_recover();
}

/* Runs fn in a coroutine or on a new plain thread and returns its result. */
static intptr_t run_in(int in_coro, void *(*fn)(void *), int *flag)
{
    void *res = NULL;
    if (in_coro) {
        unb_coro_t *co = unb_spawn(fn, flag);
        if (!co || unb_join(co, &res) != 0) {
            fprintf(stderr, "child: spawn/join failed\n");
            exit(3);
        }
    } else {
        pthread_t t;
        if (pthread_create(&t, NULL, fn, flag) != 0 || pthread_join(t, &res) != 0) {
            fprintf(stderr, "child: pthread_create/join failed\n");
            exit(3);
        }
    }
    return (intptr_t)res;
}

static const char *action_name(const struct sigaction *a)
{
    static char buf[64];
    if (a->sa_flags & SA_SIGINFO) {
        if (a->sa_sigaction == h_longjmp)
            return "h_longjmp";
        snprintf(buf, sizeof buf, "unknown-siginfo@%p", (void *)a->sa_sigaction);
        return buf;
    }
    if (a->sa_handler == SIG_DFL)
        return "SIG_DFL";
    if (a->sa_handler == SIG_IGN)
        return "SIG_IGN";
    if (a->sa_handler == h_report_exit42)
        return "h_report_exit42";
    snprintf(buf, sizeof buf, "unknown@%p", (void *)a->sa_handler);
    return buf;
}

static void print_action(const char *key, const struct sigaction *a)
{
    printf("%s=%s %s_siginfo=%d %s_restart=%d\n", key, action_name(a), key,
           !!(a->sa_flags & SA_SIGINFO), key, !!(a->sa_flags & SA_RESTART));
}

static int child_main(const char *mode)
{
    bad_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bad_page == MAP_FAILED)
        return 3;

    if (strcmp(mode, "overflow") == 0) {
        start_runtime();
        intptr_t r = run_in(1, overflow_coro, NULL);
        printf("survived=1 r=%d\n", (int)r);
        return 0;
    }
    if (strcmp(mode, "overflow-handler-before") == 0) {
        install(0, h_report_exit42, NULL);
        start_runtime();
        run_in(1, overflow_coro, NULL);
        printf("survived=1\n");
        return 0;
    }
    if (strcmp(mode, "overflow-handler-after") == 0) {
        start_runtime();
        install(0, h_report_exit42, NULL);
        run_in(1, overflow_coro, NULL);
        printf("survived=1\n");
        return 0;
    }

    /* A siglongjmp handler installed before or after the runtime started;
     * the fault in a coroutine or on a plain thread. */
    static const struct {
        const char *mode;
        int in_coro, before;
    } longjmp_modes[] = {
        {"fault-coro-before", 1, 1},
        {"fault-coro-after", 1, 0},
        {"fault-thread-before", 0, 1},
        {"fault-thread-after", 0, 0},
    };
    for (size_t i = 0; i < sizeof longjmp_modes / sizeof longjmp_modes[0]; i++) {
        if (strcmp(mode, longjmp_modes[i].mode) != 0)
            continue;
        int in_coro = longjmp_modes[i].in_coro;
        if (longjmp_modes[i].before)
            install(SA_SIGINFO, NULL, h_longjmp);
        start_runtime();
        if (!longjmp_modes[i].before)
            install(SA_SIGINFO, NULL, h_longjmp);
        int flag = -1;
        intptr_t recovered =
            run_in(in_coro, in_coro ? fault_coro : fault_thread, &flag);
        printf("handler_calls=%d recovered=%d addr_ok=%d in_coro=%d\n",
               (int)handler_calls, (int)recovered, fault_addr == bad_page, flag);
        return 0;
    }
    if (strcmp(mode, "fault-coro-exit") == 0) {
        start_runtime();
        install(0, h_exit42, NULL);
        int flag;
        run_in(1, fault_coro, &flag);
        printf("survived=1\n");
        return 0;
    }
    if (strcmp(mode, "fault-thread-exit") == 0) {
        install(0, h_exit42, NULL);
        start_runtime();
        int flag;
        run_in(0, fault_thread, &flag);
        printf("survived=1\n");
        return 0;
    }
    if (strcmp(mode, "fault-coro-fixup") == 0) {
        install(SA_SIGINFO, NULL, h_fixup);
        start_runtime();
        int flag;
        /* The write faults once, the handler opens the page and returns,
         * and the write is retried. */
        intptr_t r = run_in(1, fault_coro, &flag);
        printf("handler_calls=%d addr_ok=%d value=%d returned=%d\n", (int)handler_calls,
               fault_addr == bad_page, bad_page[0], (int)r);
        return 0;
    }
    if (strcmp(mode, "fault-coro-nohandler") == 0) {
        start_runtime();
        int flag;
        run_in(1, fault_coro, &flag);
        printf("survived=1\n");
        return 0;
    }
    if (strcmp(mode, "readback") == 0) {
        struct sigaction old;
        install(SA_RESTART, h_report_exit42, NULL);
        sigaction(SIGSEGV, NULL, &old);
        print_action("before_start", &old);
        start_runtime();
        sigaction(SIGSEGV, NULL, &old);
        print_action("after_start", &old);
        struct sigaction a2;
        memset(&a2, 0, sizeof a2);
        a2.sa_sigaction = h_longjmp;
        a2.sa_flags = SA_SIGINFO;
        sigemptyset(&a2.sa_mask);
        sigaction(SIGSEGV, &a2, &old);
        print_action("replaced", &old);
        sigaction(SIGSEGV, NULL, &old);
        print_action("after_replace", &old);
        sighandler_t prev = signal(SIGSEGV, SIG_DFL);
        printf("signal_returned=%s\n", (void *)prev == (void *)h_longjmp ? "h_longjmp"
                                       : prev == SIG_DFL                 ? "SIG_DFL"
                                                                         : "other");
        sigaction(SIGSEGV, NULL, &old);
        print_action("after_dfl", &old);
        /* The runtime is still in front: an overflow is still reported. */
        fflush(stdout);
        run_in(1, overflow_coro, NULL);
        printf("survived=1\n");
        return 0;
    }
    fprintf(stderr, "child: unknown mode %s\n", mode);
    return 2;
}

/* ---- the tests ------------------------------------------------------------ */

static void check_overflow_report(const struct child *c, const char *what,
                                  const char *size)
{
    int pass = died_by_sigsegv(c);
    ok(pass, "overflow %s kills the process by SIGSEGV", what);
    if (!pass)
        diag_child(c);
    const char *line = strstr(c->err, "coroutine stack overflow");
    pass = line != NULL;
    ok(pass, "overflow %s prints \"coroutine stack overflow\" on stderr", what);
    if (!pass)
        diag_child(c);
    char want[64];
    snprintf(want, sizeof want, "stack size %s bytes", size);
    pass = line && strstr(c->err, want) && strstr(c->err, "UNBLOCK_STACK_SIZE");
    ok(pass, "overflow report %s names the size (%s bytes) and UNBLOCK_STACK_SIZE",
       what, size);
    if (!pass)
        diag_text("stderr", c->err);
    is_int(count_lines(c->err), 1, "overflow %s writes exactly one line on stderr",
           what);
    ok(!strstr(c->out, "survived"), "overflow %s does not return to the program", what);
}

static void test_overflow_reports(void)
{
    struct child c;

    run_child(&c, "overflow", NULL);
    check_overflow_report(&c, "at the default size", "262144");

    const char *env64k[] = {"UNBLOCK_STACK_SIZE=64k", NULL};
    run_child(&c, "overflow", env64k);
    check_overflow_report(&c, "with UNBLOCK_STACK_SIZE=64k", "65536");

    run_child(&c, "overflow-handler-before", NULL);
    check_overflow_report(&c, "with the program's handler installed before start",
                          "262144");
    ok(!strstr(c.err, "user handler ran"),
       "the program's handler (installed before start) is not called for an overflow");

    run_child(&c, "overflow-handler-after", NULL);
    check_overflow_report(&c, "with the program's handler installed after start",
                          "262144");
    ok(!strstr(c.err, "user handler ran"),
       "the program's handler (installed after start) is not called for an overflow");
}

static void test_program_handler(const char *mode, const char *where, const char *when)
{
    struct child c;
    run_child(&c, mode, NULL);
    int pass = exited_with(&c, 0);
    ok(pass, "a fault %s with a handler installed %s leaves the program running", where,
       when);
    if (!pass)
        diag_child(&c);
    const char *v = kv(c.out, "handler_calls");
    is_str(v, "1", "the program's handler ran once for a fault %s (installed %s)",
           where, when);
    v = kv(c.out, "recovered");
    is_str(v, "1",
           "the handler's siglongjmp resumes the faulting code %s (installed %s)",
           where, when);
    v = kv(c.out, "addr_ok");
    is_str(v, "1",
           "the handler gets the faulting address in si_addr (%s, installed %s)", where,
           when);
    v = kv(c.out, "in_coro");
    is_str(v, strstr(mode, "-coro-") ? "1" : "0",
           "the fault happened %s (unb_self says so)", where);
    ok(!strstr(c.err, "stack overflow"),
       "a fault %s is not reported as an overflow (%s)", where, when);
    if (strstr(c.err, "stack overflow"))
        diag_text("stderr", c.err);
}

static void test_program_handlers(void)
{
    test_program_handler("fault-coro-before", "in a coroutine", "before start");
    test_program_handler("fault-coro-after", "in a coroutine", "after start");
    test_program_handler("fault-thread-before", "on a plain thread", "before start");
    test_program_handler("fault-thread-after", "on a plain thread", "after start");

    struct child c;
    run_child(&c, "fault-coro-exit", NULL);
    int pass = exited_with(&c, 42);
    ok(pass, "a handler (installed after start) that calls exit(42) on a fault in a "
             "coroutine exits with 42");
    if (!pass)
        diag_child(&c);

#ifdef UNDER_TSAN
    /* exit() in a signal handler is not async-signal-safe, and
     * ThreadSanitizer reports the frees that exit's handlers make there
     * (ours among them): the program's deliberate choice, so not for it
     * to report here. */
    static char tsan_opts[1024];
    const char *was = getenv("TSAN_OPTIONS");
    snprintf(tsan_opts, sizeof tsan_opts, "TSAN_OPTIONS=%s%sreport_signal_unsafe=0",
             was ? was : "", was && *was ? ":" : "");
    const char *exit_env[] = {tsan_opts, NULL};
#else
    const char *const *exit_env = NULL;
#endif
    run_child(&c, "fault-thread-exit", exit_env);
    pass = exited_with(&c, 42);
    ok(pass, "a handler (installed before start) that calls exit(42) on a fault on a "
             "plain thread exits with 42");
    if (!pass)
        diag_child(&c);

    run_child(&c, "fault-coro-fixup", NULL);
    pass = exited_with(&c, 0);
    ok(pass, "a handler (installed before start) that unprotects the page and returns "
             "lets the coroutine go on");
    if (!pass)
        diag_child(&c);
    is_str(kv(c.out, "handler_calls"), "1", "the fixing handler ran once");
    is_str(kv(c.out, "addr_ok"), "1", "the fixing handler got the faulting address");
    is_str(kv(c.out, "value"), "1", "the retried write landed after the fix");

    run_child(&c, "fault-coro-nohandler", NULL);
#ifdef UNDER_ASAN
    /* AddressSanitizer's SEGV handler was there first: it is the action the
     * runtime chains to, and it reports and exits. */
    pass = WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0 &&
           strstr(c.err, "ERROR: AddressSanitizer");
    ok(pass, "a fault in a coroutine without a handler goes to AddressSanitizer's");
#elif defined(UNDER_TSAN)
    /* So was ThreadSanitizer's. */
    pass = WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0 &&
           strstr(c.err, "ThreadSanitizer");
    ok(pass, "a fault in a coroutine without a handler goes to ThreadSanitizer's");
#else
    pass = died_by_sigsegv(&c);
    ok(pass, "a fault in a coroutine without a handler kills the process by SIGSEGV");
#endif
    if (!pass)
        diag_child(&c);
    pass = !strstr(c.err, "stack overflow");
    ok(pass, "a wild write in a coroutine is not reported as a stack overflow");
    if (!pass)
        diag_text("stderr", c.err);
}

static void test_readback(void)
{
    struct child c;
    int all = 1;
    run_child(&c, "readback", NULL);
    /* Set before start: a plain handler with SA_RESTART. */
    all &= is_str(
        kv(c.out, "before_start"), "h_report_exit42",
        "sigaction(SIGSEGV, NULL, &old) before start gives the program's handler");
    all &=
        is_str(kv(c.out, "after_start"), "h_report_exit42",
               "sigaction(SIGSEGV, NULL, &old) after start still gives the handler the "
               "program set before start, not the runtime's");
    all &= is_str(
        kv(c.out, "after_start_siginfo"), "0",
        "the handler set before start reads back after start without SA_SIGINFO, "
        "as it was set");
    all &= is_str(
        kv(c.out, "after_start_restart"), "1",
        "the handler set before start reads back after start with its SA_RESTART");
    all &= is_str(
        kv(c.out, "replaced"), "h_report_exit42",
        "replacing the handler after start returns the program's previous one as "
        "old");
    /* Set after start: an SA_SIGINFO handler. */
    all &=
        is_str(kv(c.out, "after_replace"), "h_longjmp",
               "sigaction(SIGSEGV, NULL, &old) after start gives the handler set after "
               "start");
    all &= is_str(kv(c.out, "after_replace_siginfo"), "1",
                  "the handler set after start reads back with its SA_SIGINFO");
    all &= is_str(kv(c.out, "signal_returned"), "h_longjmp",
                  "signal(SIGSEGV, SIG_DFL) returns the program's previous handler");
    all &= is_str(kv(c.out, "after_dfl"), "SIG_DFL",
                  "SIG_DFL set by the program reads back");
    int pass = died_by_sigsegv(&c) && strstr(c.err, "coroutine stack overflow");
    all &= ok(pass, "with SIG_DFL set by the program after start, an overflow is "
                    "still reported and kills by SIGSEGV");
    if (!all)
        diag_child(&c);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return child_main(argv[1]);
    test_overflow_reports();
    test_program_handlers();
    test_readback();
    return done_testing();
}
