/*
 * test_preload: ordinary pthread programs (tests/preload/NAME.c, which never
 * mention libunblock) run twice, natively and under
 * LD_PRELOAD=libunblock.so, and must behave the same:
 *
 *   - both runs end with the expected status (an exit code, or a signal);
 *   - their stdouts are byte-identical (each program prints one line per
 *     check it made, deterministic whatever the interleaving);
 *   - the preloaded run writes no "libunblock:" line on stderr.
 *
 * The preloaded runs use UNBLOCK_WORKERS=2; a few programs run again with
 * UNBLOCK_WORKERS=1 (two threads contending a lock on one worker is where
 * a lock that blocks instead of parking deadlocks) and with
 * UNBLOCK_THREADS=native (real threads, the same output), or with one
 * worker and no spare threads (yield_spin: spinning threads get through
 * only if sched_yield lets the worker's other coroutines run).  exit runs
 * once per mode.  threads_count holds 200 threads blocked in read while this
 * program counts the OS threads in /proc/PID/status: natively 201 or more,
 * under the preload at most UNBLOCK_WORKERS + 5 (the workers, the monitor,
 * its /proc reader, the spare it keeps ready, one more spare, and a
 * sanitizer's own thread).
 *
 * __thread and C++ thread_local variables stay each thread's own across
 * blocking calls and a move to another OS thread (tls_counter, tls_vars,
 * tls_cxx; runtime/tls.c).  A documented gap would be a TAP TODO item (none
 * now; README.md, "What remains different").  stdio on a socket shared by
 * many threads (stdio_socket) blocks threads inside glibc, where no hook
 * sees it: the monitor's spare threads keep it running.
 *
 * Every run has a time limit (each program also has its own alarm), so a
 * hang is a failure, not a hung test.  The build directory is $UNB_BUILD
 * (default "build").
 */
#define _GNU_SOURCE
#include "tap.h"

#include <dirent.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define RUN_TIMEOUT_S 25.0 /* the programs' own watchdogs fire at 10 s */
#define OUT_CAP (4u << 20) /* bytes of stdout or stderr kept per run */
#define WORKERS 2          /* UNBLOCK_WORKERS of the preloaded runs */
#define NATIVE_THREADS 201 /* threads_count: main and 200 threads */

static char build_dir[PATH_MAX], prog_dir[PATH_MAX + 32], lib_path[PATH_MAX];

/* In a sanitizer build (make SAN=address or SAN=thread), the programs and
 * the library use a sanitizer runtime.  It goes into LD_PRELOAD right
 * after libunblock: the program's pthread_create must reach our hook
 * first (were the sanitizer's interceptor first, it would wrap each
 * coroutine in a sanitizer thread of its own), and the sanitizer must
 * come before libc, so that its malloc is the one.  ASan then needs
 * ASAN_OPTIONS=verify_asan_link_order=0, which make test-asan sets.  This
 * test is built the same way, so the runtime it loaded is the one. */
static char san_runtime[PATH_MAX];

static int find_san_runtime(struct dl_phdr_info *info, size_t size, void *data)
{
    const char *n = info->dlpi_name;
    if (n && (strstr(n, "/libasan.so") || strstr(n, "/libtsan.so"))) {
        snprintf(san_runtime, sizeof san_runtime, "%s", n);
        return 1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- what to run -------------------------------------------------------- */

/* An expected status: an exit code, or minus a signal number. */
#define BY_SIGNAL(sig) (-(sig))

struct spec {
    const char *prog;
    const char *arg;       /* argv[1], or NULL */
    int want;              /* expected status */
    const char *todo;      /* the preloaded runs are TODO, for this reason */
    int libunblock_stderr; /* a "libunblock:" line on stderr is expected */
    int also_one_worker;   /* run again with UNBLOCK_WORKERS=1 */
    int also_native_mode;  /* run again with UNBLOCK_THREADS=native */
    int also_no_monitor;   /* run again with UNBLOCK_WORKERS=1 and
                              UNBLOCK_SPARE_THREADS=0: no handoff helps */
};

static const struct spec specs[] = {
    {"barrier", NULL, 0, NULL, 0, 0, 0, 0},
    {"cleanup_cancel", NULL, 0, NULL, 0, 1, 1, 0},
    {"cleanup_exit", NULL, 0, NULL, 0, 1, 0, 0},
    {"cleanup_exit_eh", NULL, 0, NULL, 0, 0, 0, 0},
    {"cond", NULL, 0, NULL, 0, 1, 0, 0},
    {"errno_cached", NULL, 0, NULL, 0, 0, 0, 0},
    {"errno_handoff", NULL, 0, NULL, 0, 1, 0, 0},
    {"errno_tls", NULL, 0, NULL, 0, 1, 0, 0},
    {"exit", "return", 3, NULL, 0, 0, 0, 0},
    {"exit", "exit-thread", 5, NULL, 0, 1, 0, 0},
    {"exit", "atexit", 0, NULL, 0, 0, 0, 0},
    {"exit", "pthread-exit-main", 0, NULL, 0, 1, 0, 0},
    {"exit", "exit-blocked", 7, NULL, 0, 1, 0, 0},
    {"exit", "raise", BY_SIGNAL(SIGTERM), NULL, 0, 0, 0, 0},
    {"flockfile", NULL, 0, NULL, 0, 1, 0, 0},
    {"fork_exec", NULL, 0, NULL, 0, 0, 0, 0},
    {"lifecycle", NULL, 0, NULL, 0, 0, 1, 0},
    {"mutex", NULL, 0, NULL, 0, 1, 1, 0},
    {"once_keys", NULL, 0, NULL, 0, 0, 1, 0},
    {"rwlock", NULL, 0, NULL, 0, 1, 0, 0},
    {"sem", NULL, 0, NULL, 0, 1, 0, 0},
    {"stdio_socket", NULL, 0, NULL, 0, 0, 0, 0},
    {"stuck_calls", NULL, 0, NULL, 0, 1, 0, 0},
    {"stuck_calls", "no-close-range", 0, NULL, 0, 1, 0, 0},
    {"thread_server", NULL, 0, NULL, 0, 1, 0, 0},
    {"threads_count", NULL, 0, NULL, 0, 0, 0, 0},
    {"tls_counter", NULL, 0, NULL, 0, 1, 0, 0},
    {"tls_cxx", NULL, 0, NULL, 0, 1, 0, 0},
    {"tls_vars", NULL, 0, NULL, 0, 1, 0, 0},
    {"unwind_cxx", NULL, 0, NULL, 0, 0, 0, 0},
    {"yield_spin", NULL, 0, NULL, 0, 1, 0, 1},
};
#define NSPECS (sizeof specs / sizeof specs[0])

/* ---- running one program ------------------------------------------------ */

struct buf {
    char *p;
    size_t len;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n > OUT_CAP)
        n = OUT_CAP - b->len;
    char *p = realloc(b->p, b->len + n + 1);
    if (!p)
        BAIL("out of memory");
    b->p = p;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

struct run {
    int status;    /* wait status */
    int timed_out; /* killed by this program after RUN_TIMEOUT_S */
    double wall;   /* seconds */
    struct buf out, err;
    int threads; /* threads_count: OS threads while blocked, or -1 */
};

static void run_free(struct run *r)
{
    free(r->out.p);
    free(r->err.p);
}

/* How a run is made: natively, or preloaded with these variables. */
struct mode {
    const char *name; /* for test names: "native", "preload", ... */
    int preload;
    const char *workers; /* UNBLOCK_WORKERS, or NULL */
    const char *threads; /* UNBLOCK_THREADS, or NULL */
    const char *spares;  /* UNBLOCK_SPARE_THREADS, or NULL */
};

static const struct mode native_mode = {"native", 0, NULL, NULL, NULL};
static const struct mode preload_mode = {"preload", 1, "2", NULL, NULL};
static const struct mode one_worker_mode = {"preload UNBLOCK_WORKERS=1", 1, "1", NULL,
                                             NULL};
static const struct mode threads_native_mode = {"preload UNBLOCK_THREADS=native", 1,
                                                "2", "native", NULL};
static const struct mode no_monitor_mode = {
    "preload UNBLOCK_WORKERS=1 UNBLOCK_SPARE_THREADS=0", 1, "1", NULL, "0"};

/* The environment: ours without LD_PRELOAD and UNBLOCK_*, plus the mode's. */
static char **make_env(const struct mode *m)
{
    static char *envp[8192];
    static char preload[2 * PATH_MAX + 16], workers[64], threads[64], spares[64];
    size_t n = 0;
    for (char **e = environ; *e && n < 8000; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0 && strncmp(*e, "UNBLOCK_", 8) != 0)
            envp[n++] = *e;
    if (m->preload) {
        snprintf(preload, sizeof preload, "LD_PRELOAD=%s%s%s", lib_path,
                 san_runtime[0] ? ":" : "", san_runtime);
        envp[n++] = preload;
    }
    if (m->workers) {
        snprintf(workers, sizeof workers, "UNBLOCK_WORKERS=%s", m->workers);
        envp[n++] = workers;
    }
    if (m->threads) {
        snprintf(threads, sizeof threads, "UNBLOCK_THREADS=%s", m->threads);
        envp[n++] = threads;
    }
    if (m->spares) {
        snprintf(spares, sizeof spares, "UNBLOCK_SPARE_THREADS=%s", m->spares);
        envp[n++] = spares;
    }
    envp[n] = NULL;
    return envp;
}

/* "Threads:" of /proc/PID/status, or -1. */
static int os_threads(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* Runs prog [arg] in mode m and collects what it did.  With `sample`, its
 * stdin is a pipe: when "ready\n" appears on its stderr, the OS threads
 * are counted, then a byte on stdin lets it go on.  Otherwise stdin is
 * /dev/null. */
static void run_prog(struct run *r, const char *prog, const char *arg,
                     const struct mode *m, int sample)
{
    memset(r, 0, sizeof *r);
    r->threads = -1;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", prog_dir, prog);
    char **envp = make_env(m);

    int po[2], pe[2], pi[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0 ||
        (sample && pipe2(pi, O_CLOEXEC) != 0))
        BAIL("pipe2: %s", strerror(errno));
    fflush(stdout);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0)
        BAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphans if this test dies */
        int in = sample ? pi[0] : open("/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *argv[] = {(char *)prog, (char *)arg, NULL};
        execve(path, argv, envp);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    if (sample)
        close(pi[0]);

    struct pollfd pfd[2] = {{.fd = po[0], .events = POLLIN},
                            {.fd = pe[0], .events = POLLIN}};
    struct buf *bufs[2] = {&r->out, &r->err};
    int open_fds = 2, sampled = 0;
    double deadline = t0 + RUN_TIMEOUT_S * test_slow();
    while (open_fds > 0) {
        double left = deadline - now_s();
        if (left <= 0) {
            kill(pid, SIGKILL);
            r->timed_out = 1;
            break;
        }
        int n = poll(pfd, 2, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            BAIL("poll: %s", strerror(errno));
        for (int i = 0; i < 2 && n > 0; i++) {
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            char tmp[65536];
            ssize_t k = read(pfd[i].fd, tmp, sizeof tmp);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                open_fds--;
                continue;
            }
            buf_add(bufs[i], tmp, (size_t)k);
        }
        if (sample && !sampled && r->err.p && strstr(r->err.p, "ready\n")) {
            sampled = 1;
            r->threads = os_threads(pid);
            ssize_t w = write(pi[1], "g", 1);
            (void)w;
            close(pi[1]);
            pi[1] = -1;
        }
    }
    for (int i = 0; i < 2; i++)
        if (pfd[i].fd >= 0)
            close(pfd[i].fd);
    if (pi[1] >= 0)
        close(pi[1]);
    while (waitpid(pid, &r->status, 0) < 0)
        if (errno != EINTR)
            BAIL("waitpid: %s", strerror(errno));
    r->wall = now_s() - t0;
    if (!r->out.p)
        buf_add(&r->out, "", 0);
    if (!r->err.p)
        buf_add(&r->err, "", 0);
}

/* ---- checking runs ------------------------------------------------------ */

static const char *status_str(const struct run *r)
{
    static char buf[2][96];
    static int which;
    char *b = buf[which ^= 1];
    int st = r->status;
    if (r->timed_out)
        snprintf(b, sizeof buf[0], "killed after %.0f s (a hang)", RUN_TIMEOUT_S * test_slow());
    else if (WIFEXITED(st))
        snprintf(b, sizeof buf[0], "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(b, sizeof buf[0], "killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(b, sizeof buf[0], "wait status %#x", st);
    return b;
}

static const char *want_str(int want)
{
    static char buf[96];
    if (want >= 0)
        snprintf(buf, sizeof buf, "exit status %d", want);
    else
        snprintf(buf, sizeof buf, "killed by signal %d (%s)", -want, strsignal(-want));
    return buf;
}

static int status_is(const struct run *r, int want)
{
    if (r->timed_out)
        return 0;
    if (want >= 0)
        return WIFEXITED(r->status) && WEXITSTATUS(r->status) == want;
    return WIFSIGNALED(r->status) && WTERMSIG(r->status) == -want;
}

/* Shows up to max lines of text as diagnostics, from line `from`. */
static void diag_lines(const char *what, const char *s, int from, int max)
{
    int line = 0, shown = 0;
    while (*s && shown < max) {
        int n = (int)strcspn(s, "\n");
        if (line >= from) {
            diag("  %s %d: %.*s", what, line + 1, n, s);
            shown++;
        }
        s += n;
        if (*s == '\n')
            s++;
        line++;
    }
    if (line == 0 && !*s)
        diag("  %s: (empty)", what);
}

/* The first line (0-based) where a and b differ. */
static int first_diff_line(const char *a, const char *b)
{
    int line = 0;
    while (*a && *a == *b) {
        if (*a == '\n')
            line++;
        a++;
        b++;
    }
    return line;
}

/* A "libunblock:" line on stderr. */
static int has_libunblock_line(const char *s)
{
    for (const char *p = s; (p = strstr(p, "libunblock:")) != NULL; p++)
        if (p == s || p[-1] == '\n')
            return 1;
    return 0;
}

static void label(char *buf, size_t n, const struct spec *sp)
{
    if (sp->arg)
        snprintf(buf, n, "%s %s", sp->prog, sp->arg);
    else
        snprintf(buf, n, "%s", sp->prog);
}

/* Checks a preloaded run against the native one. */
static void compare(const struct spec *sp, const char *name, const struct mode *m,
                    const struct run *nat, const struct run *pre)
{
    tap_todo = sp->todo;
    if (!ok(status_is(pre, sp->want), "%s: %s: %s", name, m->name,
            want_str(sp->want))) {
        diag("  got %s", status_str(pre));
        if (pre->err.len)
            diag_lines("stderr", pre->err.p, 0, 10);
    }
    int same = nat->out.len == pre->out.len &&
               memcmp(nat->out.p, pre->out.p, nat->out.len) == 0;
    if (!ok(same, "%s: %s: stdout is byte-identical to the native run's", name,
            m->name)) {
        int from = first_diff_line(nat->out.p, pre->out.p);
        diag("  first difference at line %d", from + 1);
        diag_lines("native ", nat->out.p, from, 8);
        diag_lines("preload", pre->out.p, from, 12);
    }
    tap_todo = NULL; /* a gap is no reason for libunblock to complain */
    if (!sp->libunblock_stderr) {
        if (!ok(!has_libunblock_line(pre->err.p),
                "%s: %s: no libunblock: line on stderr", name, m->name))
            diag_lines("stderr", pre->err.p, 0, 10);
    }
    note("%s: native %.2f s, %s %.2f s", name, nat->wall, m->name, pre->wall);
}

/* Natively under ThreadSanitizer, a program whose main calls pthread_exit
 * never ends: the tool's background thread, which blocks every signal, is
 * a thread of the process that outlives the program's own last thread
 * (glibc ends the process when its last thread exits), so even the
 * watchdog's SIGALRM finds no thread to take it.  There is no native
 * result to compare with. */
static const char skip_tsan_pthread_exit[] =
    "natively under ThreadSanitizer the process outlives its last thread (the "
    "tool's background thread), so there is no native run to compare with";

/* The other programs whose native run ThreadSanitizer cannot give, and
 * the latency bound it changes. */
static const char *tsan_skip(const struct spec *sp)
{
    if (sp->arg && strcmp(sp->arg, "pthread-exit-main") == 0)
        return skip_tsan_pthread_exit;
    if (strcmp(sp->prog, "lifecycle") == 0)
        return "natively ThreadSanitizer aborts in one of the program's pthread_join "
               "calls (its CHECK tid < kMaxTid: a thread it has no record of)";
    if (strcmp(sp->prog, "fork_exec") == 0)
        return "natively the children forked from the threaded program die under "
               "ThreadSanitizer (\"dup thread with used id\")";
    if (strcmp(sp->prog, "tls_vars") == 0)
        return "ThreadSanitizer's instrumentation reads the thread pointer once per "
               "function (the program's own accesses stay %fs-relative): after the move "
               "to another OS thread it reports accesses at the old thread's TLS";
    if (strcmp(sp->prog, "stuck_calls") == 0)
        return "a latency bound (a heartbeat's gaps under 150 ms while another thread "
               "is stuck), and the tool changes thread scheduling";
    return NULL;
}

/* A run in an extra mode that a tool cannot give, and why. */
static const char *mode_skip(const struct spec *sp, const struct mode *m)
{
    if (m == &threads_native_mode && under_tool("asan") &&
        strcmp(sp->prog, "cleanup_cancel") == 0)
        return "glibc's cancellation of a real thread unwinds through the hook's "
               "instrumented frame without unpoisoning its redzones, and "
               "AddressSanitizer's own __asan_handle_no_return then reports its "
               "sigaltstack call on that stale poison (a false stack-buffer-overflow; "
               "an uninstrumented libunblock leaves no redzones)";
    return NULL;
}

static void test_spec(const struct spec *orig)
{
    const char *why = under_tool("tsan") ? tsan_skip(orig) : NULL;
    if (why) {
        char skipped[128];
        label(skipped, sizeof skipped, orig);
        skip(why, "%s: native and preloaded runs", skipped);
        return;
    }
    const struct spec *sp = orig;
    char name[128];
    label(name, sizeof name, sp);
    int sample = strcmp(sp->prog, "threads_count") == 0;

    struct run nat, pre;
    run_prog(&nat, sp->prog, sp->arg, &native_mode, sample);
    if (!ok(status_is(&nat, sp->want), "%s: native: %s", name, want_str(sp->want))) {
        diag("  got %s", status_str(&nat));
        diag_lines("stdout", nat.out.p, 0, 20);
        diag_lines("stderr", nat.err.p, 0, 10);
    }
    run_prog(&pre, sp->prog, sp->arg, &preload_mode, sample);
    compare(sp, name, &preload_mode, &nat, &pre);

    if (sample) {
        ok(nat.threads >= NATIVE_THREADS,
           "%s: natively, 200 threads blocked in read are %d OS threads or more", name,
           NATIVE_THREADS);
        ok(pre.threads >= 1 && pre.threads <= WORKERS + 5,
           "%s: under the preload with UNBLOCK_WORKERS=%d they are at most %d OS "
           "threads",
           name, WORKERS, WORKERS + 5);
        note("%s: OS threads while blocked: natively %d, under the preload %d", name,
             nat.threads, pre.threads);
    }

    const struct mode *extra[3] = {sp->also_one_worker ? &one_worker_mode : NULL,
                                   sp->also_native_mode ? &threads_native_mode : NULL,
                                   sp->also_no_monitor ? &no_monitor_mode : NULL};
    for (int i = 0; i < 3; i++) {
        if (!extra[i])
            continue;
        const char *why_not = mode_skip(sp, extra[i]);
        if (why_not) {
            skip(why_not, "%s: %s", name, extra[i]->name);
            continue;
        }
        struct run again;
        run_prog(&again, sp->prog, sp->arg, extra[i], 0);
        compare(sp, name, extra[i], &nat, &again);
        run_free(&again);
    }
    run_free(&nat);
    run_free(&pre);
}

/* ---- the programs there are --------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const char *b = getenv("UNB_BUILD");
    if (!b || !*b)
        b = "build";
    if (!realpath(b, build_dir))
        BAIL("build directory %s: %s", b, strerror(errno));
    char lib[PATH_MAX + 32];
    snprintf(lib, sizeof lib, "%s/libunblock.so", build_dir);
    if (!realpath(lib, lib_path))
        BAIL("%s: %s", lib, strerror(errno));
    snprintf(prog_dir, sizeof prog_dir, "%s/tests/preload", build_dir);
    dl_iterate_phdr(find_san_runtime, NULL);
    signal(SIGPIPE, SIG_IGN);

    DIR *d = opendir(prog_dir);
    if (!d)
        BAIL("%s: %s (run make tests)", prog_dir, strerror(errno));
    char *names[256];
    int nnames = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nnames < 256) {
        char p[PATH_MAX + 300];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", prog_dir, de->d_name);
        if (de->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode) &&
            access(p, X_OK) == 0)
            names[nnames++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nnames, sizeof names[0], cmp_names);
    note("library %s; programs in %s", lib_path, prog_dir);
    if (san_runtime[0])
        note("sanitizer runtime preloaded after the library: %s", san_runtime);

    /* Every program in the table was built. */
    for (size_t i = 0; i < NSPECS; i++) {
        if (i > 0 && strcmp(specs[i].prog, specs[i - 1].prog) == 0)
            continue;
        int found = 0;
        for (int j = 0; j < nnames; j++)
            found |= strcmp(names[j], specs[i].prog) == 0;
        ok(found, "%s is built", specs[i].prog);
    }

    double t0 = now_s();
    for (int j = 0; j < nnames; j++) {
        int known = 0;
        for (size_t i = 0; i < NSPECS; i++)
            if (strcmp(specs[i].prog, names[j]) == 0) {
                test_spec(&specs[i]);
                known = 1;
            }
        if (!known) {
            /* A program added without an entry: no argument, status 0. */
            struct spec sp = {names[j], NULL, 0, NULL, 0, 0, 0, 0};
            test_spec(&sp);
        }
        free(names[j]);
    }
    note("all runs: %.1f s", now_s() - t0);
    return done_testing();
}
