/*
 * Configuration from the environment (runtime/config.c), seen from outside:
 * this program re-executes itself with UNBLOCK_WORKERS / UNBLOCK_STACK_SIZE
 * set, and the child spawns and joins coroutines and reports what it saw.
 *
 *  - A bad value gives exactly one line on stderr naming the variable, the
 *    bad value and the value used instead; the program runs normally.
 *  - A good value prints nothing and takes effect: workers in unb_stats(),
 *    the stack size as the extent of the running coroutine's stack mapping
 *    in /proc/self/maps, and as which recursion depth fits.
 *  - When stacks cannot be mapped (RLIMIT_AS), unb_spawn fails with EAGAIN
 *    and the runtime keeps working afterwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <unblock.h>

#include "tap.h"
#include "child.h"

extern char **environ;

#define DEFAULT_STACK 262144 /* 256k, as unblock.h documents */

/* ---- running a child ------------------------------------------------------ */

#define CHILD_TIMEOUT 30 /* seconds; a hung child dies by SIGALRM */

/* Runs this program with `mode` as its argument, the environment without
 * any UNBLOCK_* variable plus `env_add` (NULL or one "NAME=value"), and
 * collects stdout, stderr and the wait status. */
static void run_child(struct child *c, const char *mode, const char *env_add)
{
    static char *envp[4096];
    size_t n = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "UNBLOCK_", 8) != 0 && n < 4000)
            envp[n++] = *e;
    if (env_add)
        envp[n++] = (char *)env_add;
    envp[n] = NULL;

    int out_fd, err_fd;
    pid_t pid = child_fork(&out_fd, &err_fd);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        alarm(CHILD_TIMEOUT); /* survives execve */
        char *argv[] = {"test_config", (char *)mode, NULL};
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

/* ---- the child ------------------------------------------------------------ */

#define NCORO 8

/* Coroutine i returns i*i + 1; the child prints the sum. */
static void *square_coro(void *arg)
{
    intptr_t i = (intptr_t)arg;
    unb_yield();
    return (void *)(i * i + 1);
}

static long long expected_result(void)
{
    long long sum = 0;
    for (int i = 0; i < NCORO; i++)
        sum += (long long)i * i + 1;
    return sum;
}

/*
 * The size of the running coroutine's stack mapping, from /proc/self/maps:
 * the coroutine's header (unb_self()) sits at the top of its mapping, so
 * the mapping ends at the page boundary above it; it starts at the bottom
 * of the mapping that holds our locals, plus the PROT_NONE guard page
 * right below that if there is one.  Returns 0 if the layout is not as
 * expected.
 */
static void *measure_coro(void *arg)
{
    volatile char here = 0;
    uintptr_t sp = (uintptr_t)&here;
    uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t hi = ((uintptr_t)unb_self() | (ps - 1)) + 1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return NULL;
    char line[512], perms[8] = "", prev_perms[8] = "";
    uintptr_t lo = 0, end = 0, prev_end = 0;
    int guard = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        uintptr_t s, e;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &s, &e, perms) != 3)
            continue;
        if (s <= sp && sp < e) {
            lo = s;
            end = e;
            guard = prev_end == s && strcmp(prev_perms, "---p") == 0;
            found = 1;
            break;
        }
        prev_end = e;
        memcpy(prev_perms, perms, sizeof perms);
    }
    fclose(f);
    if (!found || hi > end || hi <= sp)
        return NULL;
    *(int *)arg = guard;
    return (void *)(hi - lo + (guard ? ps : 0));
}

/* About 1 KiB per frame, every 64 bytes touched so that the guard page
 * cannot be stepped over; the store after the call keeps the frame live. */
static volatile int recursion_limit = 100; /* > 100 KiB of stack */

__attribute__((noinline)) static int recurse(int depth)
{
    volatile char frame[1024];
    /* The address escapes, so the whole array must really be on the stack
     * (clang otherwise keeps only the bytes it sees used). */
    __asm__ volatile("" : : "r"(frame) : "memory");
    for (size_t i = 0; i < sizeof frame; i += 64)
        frame[i] = (char)depth;
    if (depth >= recursion_limit)
        return depth;
    int r = recurse(depth + 1);
    frame[1] = (char)r;
    return r;
}

static void *deep_coro(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

static _Atomic int release_holders;

static void *hold_coro(void *arg)
{
    while (!atomic_load(&release_holders))
        unb_yield();
    return arg;
}

static void *nop_coro(void *arg)
{
    return arg;
}

/* Spawns fn(arg) and joins it; returns 1 if the result is arg. */
static int spawn_join(void *(*fn)(void *), void *arg)
{
    unb_coro_t *co = unb_spawn(fn, arg);
    void *res = NULL;
    return co && unb_join(co, &res) == 0 && res == arg;
}

/* Threads (worker threads, as gettid() says) seen running warm_coro. */
static _Atomic int warm_tids[64];

/* Makes the worker thread it runs on allocate, so that the thread's malloc
 * arena exists before memory gets tight, and records the thread. */
static void *warm_coro(void *arg)
{
    void *p = malloc(256);
    /* The pointer escapes, so the compiler cannot drop the malloc/free
     * pair (both gcc and clang otherwise do). */
    __asm__ volatile("" : : "r"(p) : "memory");
    free(p);
    int tid = gettid();
    for (int i = 0; i < 64; i++) {
        int expect = 0;
        if (atomic_load(&warm_tids[i]) == tid ||
            atomic_compare_exchange_strong(&warm_tids[i], &expect, tid))
            break;
    }
    unb_yield();
    return arg;
}

static int warm_threads_seen(void)
{
    int n = 0;
    while (n < 64 && atomic_load(&warm_tids[n]))
        n++;
    return n;
}

/* VmSize, without a malloc (it is also read under the lowered limit). */
static long vm_size_kb(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return strtol(buf, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024); /* pages */
}

#define HOLD_MAX 4096
/* Room for about 12 default stacks, and less than the 4 MiB the monitor
 * wants before it starts a thread (SPARE_ROOM in runtime/sched.c): one it
 * started as the stacks eat the margin could find no room for ASan's own
 * maps, and ASan dies of that (1 in 20 runs beside three busy loops). */
#define AS_MARGIN (3L << 20)

/* Stacks run out under RLIMIT_AS; the runtime survives it. */
static int child_rlimit(void)
{
    static unb_coro_t *held[HOLD_MAX + 16];
    char out[512];

    /* Start the runtime and let every worker run coroutines (and so set
     * up its event loop's arrays and its thread's malloc arena) before
     * lowering the limit: the workers need a little memory as they go,
     * and once the stacks have eaten the margin there is none left. */
    if (!spawn_join(nop_coro, (void *)1))
        return 3;
    unb_stats_t st0;
    unb_stats(&st0);
    for (int round = 0; round < 200 && warm_threads_seen() < (int)st0.workers;
         round++) {
        unb_coro_t *w[16];
        for (int i = 0; i < 16; i++)
            w[i] = unb_spawn(warm_coro, NULL);
        for (int i = 0; i < 16; i++)
            if (w[i])
                unb_join(w[i], NULL);
    }
    int warm = warm_threads_seen();
    /* And let the monitor finish starting: after a 2 ms calibration it
     * starts its /proc reader and one ready spare, threads that need
     * address space.  Natively a thread that cannot start is only not
     * there, and one that starts late takes room the stacks below are
     * measured against; ASan dies instead.  A machine busy enough delayed
     * the monitor until the stacks had eaten the margin (a CI run's ASan
     * stage).  The ready spare is the last it starts, counted once its
     * stacks are mapped; a sanitizer maps more in the thread as it runs,
     * so wait for VmSize to hold still too. */
    unb_stats_t st1;
    for (int ms = 0; ms < 5000 && unb_stats(&st1) == 0 && st1.spare_peak == 0; ms++)
        usleep(1000);
    long kb = vm_size_kb();
    for (int still = 0, tries = 0; still < 3 && tries < 200; tries++) {
        usleep(10000);
        long now = vm_size_kb();
        still = now == kb ? still + 1 : 0;
        kb = now;
    }
    struct rlimit orig, low;
    if (kb <= 0 || getrlimit(RLIMIT_AS, &orig) != 0)
        return 3;
    low.rlim_cur = (rlim_t)kb * 1024 + AS_MARGIN;
    low.rlim_max = orig.rlim_max;
    if (setrlimit(RLIMIT_AS, &low) != 0)
        return 3;

    int n = 0, err = 0;
    while (n < HOLD_MAX) {
        errno = 0;
        unb_coro_t *co = unb_spawn(hold_coro, (void *)(intptr_t)(n + 1));
        if (!co) {
            err = errno;
            break;
        }
        held[n++] = co;
    }
    unb_stats_t st_fail;
    unb_stats(&st_fail);
    long kb_fail = vm_size_kb();

    atomic_store(&release_holders, 1);
    int joined_ok = 0;
    for (int i = 0; i < n; i++) {
        void *res = NULL;
        joined_ok += unb_join(held[i], &res) == 0 && res == (void *)(intptr_t)(i + 1);
    }

    /* Still under the limit: the stacks just released are reused. */
    atomic_store(&release_holders, 0);
    int reuse_spawned = 0, reuse_ok = 0;
    for (int i = 0; i < n; i++) {
        held[i] = unb_spawn(hold_coro, (void *)(intptr_t)(i + 1));
        reuse_spawned += held[i] != NULL;
    }
    atomic_store(&release_holders, 1);
    for (int i = 0; i < n; i++) {
        void *res = NULL;
        if (held[i])
            reuse_ok +=
                unb_join(held[i], &res) == 0 && res == (void *)(intptr_t)(i + 1);
    }

    unb_stats_t st_reuse;
    unb_stats(&st_reuse);
    long kb_reuse = vm_size_kb();

    /* Limit raised back: more stacks than ever held at once can be mapped. */
    int raised = setrlimit(RLIMIT_AS, &orig) == 0;
    atomic_store(&release_holders, 0);
    int more = n + 8, more_ok = 0;
    for (int i = 0; i < more; i++)
        held[i] = unb_spawn(hold_coro, (void *)(intptr_t)(i + 1));
    atomic_store(&release_holders, 1);
    for (int i = 0; i < more; i++) {
        void *res = NULL;
        if (held[i])
            more_ok += unb_join(held[i], &res) == 0 && res == (void *)(intptr_t)(i + 1);
    }

    snprintf(out, sizeof out,
             "held=%d fail_errno=%s joined_ok=%d reuse_spawned=%d reuse_ok=%d "
             "raised=%d more=%d more_ok=%d alive_at_fail=%" PRIu64
             " warm_threads=%d workers=%" PRIu64 " handoffs=%" PRIu64 ",%" PRIu64
             ",%" PRIu64 " spares=%" PRIu64 ",%" PRIu64 ",%" PRIu64
             " vm_kb=%ld,%ld,%ld\n",
             n,
             err == EAGAIN ? "EAGAIN"
             : err         ? strerror(err)
                           : "none",
             joined_ok, reuse_spawned, reuse_ok, raised, more, more_ok, st_fail.alive,
             warm, st0.workers, st1.handoffs, st_fail.handoffs, st_reuse.handoffs,
             st1.spare_threads, st_fail.spare_threads, st_reuse.spare_threads, kb,
             kb_fail, kb_reuse);
    fputs(out, stdout);
    return 0;
}

static int child_main(const char *mode)
{
    if (strcmp(mode, "run") == 0) {
        unb_coro_t *co[NCORO];
        for (int i = 0; i < NCORO; i++)
            if (!(co[i] = unb_spawn(square_coro, (void *)(intptr_t)i)))
                return 3;
        long long sum = 0;
        for (int i = 0; i < NCORO; i++) {
            void *res;
            if (unb_join(co[i], &res) != 0)
                return 4;
            sum += (intptr_t)res;
        }
        int guard = -1;
        unb_coro_t *m = unb_spawn(measure_coro, &guard);
        void *size = NULL;
        if (!m || unb_join(m, &size) != 0)
            return 5;
        unb_stats_t st;
        unb_stats(&st);
        printf("result=%lld workers=%" PRIu64 " stack=%zu guard=%d\n", sum, st.workers,
               (size_t)(uintptr_t)size, guard);
        return 0;
    }
    if (strcmp(mode, "deep") == 0) {
        unb_coro_t *co = unb_spawn(deep_coro, NULL);
        void *res = NULL;
        if (!co || unb_join(co, &res) != 0)
            return 3;
        printf("deep=%d\n", (int)(intptr_t)res);
        return 0;
    }
    if (strcmp(mode, "rlimit") == 0)
        return child_rlimit();
    fprintf(stderr, "child: unknown mode %s\n", mode);
    return 2;
}

/* ---- the tests ------------------------------------------------------------ */

static int cpus_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set) > 1024 ? 1024 : CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void check_ran(const struct child *c, const char *env)
{
    int pass = exited_with(c, 0);
    ok(pass, "%s: the program runs and exits 0", env);
    if (!pass)
        diag_child(c);
    char want[32];
    snprintf(want, sizeof want, "%lld", expected_result());
    is_str(kv(c->out, "result"), want,
           "%s: %d coroutines spawned and joined give the right result", env, NCORO);
}

/* Only printable ASCII and the final newline: a value's control bytes, a
 * newline that would forge a second message, or bytes that are not UTF-8
 * must come out escaped. */
static int printable_line(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + 1 < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return n > 0 && s[n - 1] == '\n';
}

/* A bad value: one line on stderr naming the variable, the value as `named`
 * shows it (escaped, shortened), and what is used instead (`used`); the
 * runtime runs with workers/stack as given.  `label` names the case. */
static void check_bad_shown(const char *label, const char *env, const char *named,
                            const char *used, int workers, long stack)
{
    struct child c;
    run_child(&c, "run", env);
    check_ran(&c, label);
    env = label;
    int pass = count_lines(c.err) == 1 && c.err[strlen(c.err) - 1] == '\n';
    ok(pass, "%s: exactly one line on stderr", env);
    if (!pass)
        diag_text("stderr", c.err);
    pass = printable_line(c.err);
    ok(pass, "%s: the line is printable ASCII (the value escaped)", env);
    if (!pass)
        diag_text("stderr", c.err);
    pass = strstr(c.err, named) != NULL;
    ok(pass, "%s: the line names the variable and its bad value (\"%s\")", env, named);
    if (!pass)
        diag_text("stderr", c.err);
    pass = strstr(c.err, used) != NULL;
    ok(pass, "%s: the line names the value used instead (\"%s\")", env, used);
    if (!pass)
        diag_text("stderr", c.err);
    char want[32];
    snprintf(want, sizeof want, "%d", workers);
    is_str(kv(c.out, "workers"), want, "%s: the runtime runs with %d workers", env,
           workers);
    snprintf(want, sizeof want, "%ld", stack);
    is_str(kv(c.out, "stack"), want, "%s: coroutine stacks are %ld bytes", env, stack);
}

static void check_bad(const char *env, const char *used, int workers, long stack)
{
    check_bad_shown(env, env, env, used, workers, stack);
}

/* A good value: nothing on stderr, and it takes effect. */
static void check_good(const char *env_add, int workers, long stack)
{
    struct child c;
    const char *env = env_add ? env_add : "no UNBLOCK_* set";
    run_child(&c, "run", env_add);
    check_ran(&c, env);
    int pass = c.err[0] == '\0';
    ok(pass, "%s: nothing on stderr", env);
    if (!pass)
        diag_text("stderr", c.err);
    char want[32];
    snprintf(want, sizeof want, "%d", workers);
    is_str(kv(c.out, "workers"), want, "%s: unb_stats() reports %d workers", env,
           workers);
    snprintf(want, sizeof want, "%ld", stack);
    is_str(kv(c.out, "stack"), want, "%s: coroutine stacks are %ld bytes", env, stack);
    is_str(kv(c.out, "guard"), "1", "%s: the stack has a guard page below it", env);
}

static void test_values(void)
{
    int cpus = cpus_available();
    char using_cpus[32];
    snprintf(using_cpus, sizeof using_cpus, "using %d", cpus);
    note("CPUs available: %d", cpus);

    check_good(NULL, cpus, DEFAULT_STACK);

    check_bad("UNBLOCK_WORKERS=abc", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_WORKERS=0", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_WORKERS=-3", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_WORKERS=99999", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_STACK_SIZE=1", "256k", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_STACK_SIZE=zzz", "256k", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_STACK_SIZE=2g", "256k", cpus, DEFAULT_STACK);

    /* Malformed values of every kind: sign, spaces, a base prefix, junk,
     * overflow, a newline (which must not forge a second message), bytes
     * that are not UTF-8, a value longer than a message line. */
    check_bad("UNBLOCK_WORKERS=", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_WORKERS= 3", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_WORKERS=3 ", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_WORKERS=+3", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_WORKERS=0x3", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_WORKERS=3abc", using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_WORKERS=99999999999999999999999", using_cpus, cpus,
              DEFAULT_STACK);
    check_bad_shown("UNBLOCK_WORKERS=3<newline>libunblock: forged",
                    "UNBLOCK_WORKERS=3\nlibunblock: forged",
                    "UNBLOCK_WORKERS=3\\x0alibunblock: forged", using_cpus, cpus,
                    DEFAULT_STACK);
    check_bad_shown("UNBLOCK_WORKERS=<0xff 0xfe, not UTF-8>",
                    "UNBLOCK_WORKERS=\377\376", "UNBLOCK_WORKERS=\\xff\\xfe",
                    using_cpus, cpus, DEFAULT_STACK);
    static char huge[4096 + 32];
    snprintf(huge, sizeof huge, "UNBLOCK_WORKERS=");
    memset(huge + strlen(huge), '7', 4096);
    check_bad_shown("UNBLOCK_WORKERS=<4096 digits>", huge,
                    "UNBLOCK_WORKERS=7777777777777777777777777777777777777777...",
                    using_cpus, cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_STACK_SIZE=", "256k", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_STACK_SIZE=-64k", "256k", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_STACK_SIZE=64kk", "256k", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_STACK_SIZE=18446744073709551616", "256k", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_STACK_SIZE=99999999999999g", "256k", cpus, DEFAULT_STACK);
    check_bad_shown("UNBLOCK_STACK_SIZE=64k<tab>", "UNBLOCK_STACK_SIZE=64k\t",
                    "UNBLOCK_STACK_SIZE=64k\\x09", "256k", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_SPARE_THREADS=-1", "the default 64", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_SPARE_THREADS=4097", "the default 64", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_SPARE_THREADS=many", "the default 64", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_STATS=yes", "statistics stay off", cpus, DEFAULT_STACK);
    check_bad_shown("UNBLOCK_STATS=<escape sequence>", "UNBLOCK_STATS=\033[2J",
                    "UNBLOCK_STATS=\\x1b[2J", "statistics stay off", cpus,
                    DEFAULT_STACK);
    check_bad("UNBLOCK_THREADS=threads", "using \"native\"", cpus, DEFAULT_STACK);
    check_bad("UNBLOCK_SCHED_BATCH=yes", "workers keep their scheduling policy", cpus,
              DEFAULT_STACK);

    check_good("UNBLOCK_WORKERS=3", 3, DEFAULT_STACK);
    check_good("UNBLOCK_STACK_SIZE=64k", cpus, 65536);
    check_good("UNBLOCK_STACK_SIZE=1m", cpus, 1048576);
    check_good("UNBLOCK_STACK_SIZE=131072", cpus, 131072);
    check_good("UNBLOCK_SCHED_BATCH=1", cpus, DEFAULT_STACK);
    check_good("UNBLOCK_SCHED_BATCH=0", cpus, DEFAULT_STACK);
}

/* The size takes effect where it matters: what recursion fits. */
static void test_depth(void)
{
    struct child c;
    run_child(&c, "deep", "UNBLOCK_STACK_SIZE=64k");
    int pass = WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGSEGV;
    ok(pass, "UNBLOCK_STACK_SIZE=64k: a 100 KiB recursion dies by SIGSEGV");
    if (!pass)
        diag_child(&c);
    pass = strstr(c.err, "coroutine stack overflow") && strstr(c.err, "65536");
    ok(pass, "UNBLOCK_STACK_SIZE=64k: the overflow report names 65536");
    if (!pass)
        diag_text("stderr", c.err);

    run_child(&c, "deep", "UNBLOCK_STACK_SIZE=1m");
    pass = exited_with(&c, 0);
    ok(pass, "UNBLOCK_STACK_SIZE=1m: a 100 KiB recursion completes");
    if (!pass)
        diag_child(&c);
    is_str(kv(c.out, "deep"), "100",
           "UNBLOCK_STACK_SIZE=1m: the recursion reached depth 100");
    ok(c.err[0] == '\0', "UNBLOCK_STACK_SIZE=1m: nothing on stderr");

    run_child(&c, "deep", NULL);
    pass = exited_with(&c, 0);
    ok(pass, "default stack: a 100 KiB recursion completes");
    if (!pass)
        diag_child(&c);
}

static void test_rlimit(void)
{
    if (under_tool("valgrind")) {
        /* valgrind allocates inside the child's address space too: under
         * the low RLIMIT_AS it runs out of memory itself ("aspacem <<<
         * SHOW_SEGMENTS: out_of_memory") and ends the child with status 1
         * before the runtime's own failure is reached. */
        for (int i = 0; i < 9; i++)
            skip("valgrind's own allocations hit the RLIMIT_AS first",
                 "RLIMIT_AS: stacks run out, the runtime survives (check %d of 9)",
                 i + 1);
        return;
    }
    if (under_tool("tsan")) {
        /* ThreadSanitizer maps its shadow and its own heap in the child's
         * address space too: under the low RLIMIT_AS its internal
         * allocator runs out first ("ThreadSanitizer: internal allocator
         * is out of memory") and it ends the child before the runtime's
         * own failure is reached. */
        for (int i = 0; i < 9; i++)
            skip("ThreadSanitizer's own allocator hits the RLIMIT_AS first",
                 "RLIMIT_AS: stacks run out, the runtime survives (check %d of 9)",
                 i + 1);
        return;
    }
    struct child c;
    run_child(&c, "rlimit", NULL);
    int pass = exited_with(&c, 0);
    ok(pass, "RLIMIT_AS child runs to the end and exits 0");
    if (!pass)
        diag_child(&c);
    const char *held = kv(c.out, "held");
    int n = held ? atoi(held) : -1;
    note("coroutines held when stacks ran out: %d (workers warmed up: %s of %s)", n,
         kv(c.out, "warm_threads") ? kv(c.out, "warm_threads") : "?",
         kv(c.out, "workers") ? kv(c.out, "workers") : "?");
    /* kv's buffers last two calls. */
    char handoffs[64], spares[64];
    snprintf(handoffs, sizeof handoffs, "%s",
             kv(c.out, "handoffs") ? kv(c.out, "handoffs") : "?");
    snprintf(spares, sizeof spares, "%s",
             kv(c.out, "spares") ? kv(c.out, "spares") : "?");
    note("handoffs (monitor started, at the failure, after the reuse): %s; spare "
         "threads: "
         "%s; VmSize in KiB: %s",
         handoffs, spares, kv(c.out, "vm_kb") ? kv(c.out, "vm_kb") : "?");
    cmp_ok(n, <, HOLD_MAX, "under RLIMIT_AS, unb_spawn eventually fails");
    is_str(kv(c.out, "fail_errno"), "EAGAIN",
           "unb_spawn fails with errno EAGAIN when no stack can be mapped");
    char want[32];
    snprintf(want, sizeof want, "%d", n);
    is_str(kv(c.out, "joined_ok"), want,
           "every coroutine spawned before the failure joins with its result");
    is_str(
        kv(c.out, "reuse_spawned"), want,
        "still under the limit, as many spawns succeed again (released stacks reused)");
    is_str(kv(c.out, "reuse_ok"), want, "and they all join with their results");
    is_str(kv(c.out, "raised"), "1", "the limit can be raised back");
    snprintf(want, sizeof want, "%d", n + 8);
    is_str(kv(c.out, "more_ok"), want,
           "with the limit raised, more coroutines than before spawn and join");
    ok(c.err[0] == '\0', "running out of stacks prints nothing on stderr");
    if (c.err[0])
        diag_text("stderr", c.err);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return child_main(argv[1]);
    test_values();
    test_depth();
    test_rlimit();
    return done_testing();
}
