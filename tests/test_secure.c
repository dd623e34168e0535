/*
 * Security of the runtime, seen from outside (issue 7):
 *
 *  - In a secure-execution process (setuid: getauxval(AT_SECURE) is 1),
 *    every UNBLOCK_* variable is ignored: the worker count, the stack size
 *    and the thread mode are the defaults, statistics stay off, and a
 *    malformed value is not even mentioned (nothing of the environment is
 *    echoed by a privileged program).  The same program without setuid,
 *    given the same environment, honours it: so the check can fail.
 *    This needs root (to make a setuid-root copy of this program and run it
 *    as nobody); elsewhere those checks are skipped.
 *  - What the runtime creates for itself (its event loops' descriptors, a
 *    copy of stderr for UNBLOCK_STATS) is not a file or a socket, is
 *    closed on exec, and is not accessible to other users; it maps nothing
 *    shared and leaves no file behind in the working or temporary directory.
 *
 * The child modes re-execute this program; the checks read what they print.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <unblock.h>

#include "tap.h"
#include "child.h"

extern char **environ;

#define CHILD_TIMEOUT 30 /* seconds; a hung child dies by SIGALRM */
#define NOBODY 65534

/* ---- running a child ------------------------------------------------------ */

struct how {
    const char *exe;     /* the program to run (default: this one) */
    const char *mode;    /* its argv[1] */
    const char *cwd;     /* NULL: stay */
    int as_nobody;       /* drop to uid/gid 65534 before exec */
    const char *env[16]; /* "NAME=value" added to the environment */
};

/*
 * In a sanitizer build the child gets LD_PRELOAD=libunblock.so:<sanitizer
 * runtime>, as tests/test_preload.c explains.  Linked, the sanitizer's
 * pthread_create interceptor comes first: with UNBLOCK_THREADS=coroutines
 * it wraps a coroutine in a sanitizer thread of its own, and ASan stops
 * ("CHECK failed: asan_thread.cpp ... AsanTSDGet()") on the worker, which
 * has one already.  A setuid child ignores the variable (a path with a
 * slash), as it should.
 */
static char san_preload[2 * 4096 + 16];

static int find_preload(struct dl_phdr_info *info, size_t size, void *data)
{
    static char lib[4096], rt[4096];
    const char *n = info->dlpi_name;
    if (n && strstr(n, "/libunblock.so"))
        snprintf(lib, sizeof lib, "%s", n);
    if (n && (strstr(n, "/libasan.so") || strstr(n, "/libtsan.so")))
        snprintf(rt, sizeof rt, "%s", n);
    if (lib[0] && rt[0])
        snprintf(san_preload, sizeof san_preload, "LD_PRELOAD=%s:%s", lib, rt);
    return 0;
}

/* Runs a child as `how` says, with the environment less every UNBLOCK_*
 * variable plus how->env, and collects its output and wait status. */
static void run_child(struct child *c, const struct how *how)
{
    static char *envp[4096];
    static int looked;
    if (!looked++)
        dl_iterate_phdr(find_preload, NULL);
    size_t n = 0;
    for (char **e = environ; *e && n < 4000; e++)
        if (strncmp(*e, "UNBLOCK_", 8) != 0 &&
            (!san_preload[0] || strncmp(*e, "LD_PRELOAD=", 11) != 0))
            envp[n++] = *e;
    if (san_preload[0])
        envp[n++] = san_preload;
    for (int i = 0; i < 16 && how->env[i]; i++)
        envp[n++] = (char *)how->env[i];
    envp[n] = NULL;

    int out_fd, err_fd;
    pid_t pid = child_fork(&out_fd, &err_fd);
    if (pid == 0) {
        /* Nothing inherited besides 0, 1 and 2: what the child holds
         * beyond them it made itself. */
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        if (how->cwd && chdir(how->cwd) != 0)
            _exit(126);
        if (how->as_nobody &&
            (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(125);
        alarm(CHILD_TIMEOUT); /* survives execve */
        const char *exe = how->exe ? how->exe : "/proc/self/exe";
        char *argv[] = {"test_secure", (char *)how->mode, NULL};
        execve(exe, argv, envp);
        _exit(127);
    }
    child_collect(c, out_fd, err_fd, pid);
}

static int exited_0(const struct child *c)
{
    return WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0;
}

/* ---- child: what configuration is in force -------------------------------- */

/* The size of the running coroutine's stack: from the bottom of the mapping
 * that holds its locals (a guard page below keeps it from merging with
 * anything lower) to the page boundary above the coroutine's header, which
 * sits at the top of its stack (as in test_config). */
static void *stack_size_coro(void *arg)
{
    (void)arg;
    volatile char here = 0;
    uintptr_t sp = (uintptr_t)&here;
    uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t hi = ((uintptr_t)unb_self() | (ps - 1)) + 1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return NULL;
    char line[512];
    uintptr_t size = 0;
    while (fgets(line, sizeof line, f)) {
        uintptr_t s, e;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &s, &e) == 2 && s <= sp && sp < e) {
            size = hi > s ? hi - s : 0;
            break;
        }
    }
    fclose(f);
    return (void *)size;
}

static void *in_coroutine_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)(unb_self() != NULL);
}

/* Prints what is in force: secure=0/1 euid=N workers=N stack=N
 * thread_coro=0/1 (whether pthread_create made a coroutine). */
static int child_report(void)
{
    unb_coro_t *co = unb_spawn(stack_size_coro, NULL);
    void *size = NULL;
    if (!co || unb_join(co, &size) != 0)
        return 3;
    pthread_t t;
    void *is_coro = NULL;
    if (pthread_create(&t, NULL, in_coroutine_thread, NULL) != 0 ||
        pthread_join(t, &is_coro) != 0)
        return 4;
    unb_stats_t st;
    unb_stats(&st);
    printf("secure=%lu euid=%d workers=%" PRIu64 " stack=%zu thread_coro=%d\n",
           getauxval(AT_SECURE), (int)geteuid(), st.workers, (size_t)(uintptr_t)size,
           (int)(intptr_t)is_coro);
    return 0;
}

/* ---- child: what the runtime creates --------------------------------------- */

static int pipe_rd, pipe_wr;

static void *ping_coro(void *arg)
{
    (void)arg;
    char b[64];
    for (int i = 0; i < 100; i++)
        if (read(pipe_rd, b, 1) != 1)
            return (void *)1;
    return NULL;
}

static void *pong_coro(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        if (write(pipe_wr, "x", 1) != 1)
            return (void *)1;
    return NULL;
}

/* A sleep the hooks cannot see (a raw system call): the monitor hands the
 * worker to a spare thread, which has its own state to create. */
static void *stuck_coro(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 50 * 1000 * 1000};
    syscall(SYS_nanosleep, &ts, NULL);
    return NULL;
}

/*
 * Brings the runtime fully up (all workers, I/O parks, a handoff to a
 * spare thread, UNBLOCK_STATS's stderr copy), closes its own descriptors,
 * and prints one line per descriptor left besides 0, 1 and 2:
 *   fd=N target=... cloexec=0/1 mode=octal same_as_stderr=0/1
 * then shared=N, the count of shared mappings.
 */
static int child_creations(void)
{
    int p[2];
    if (pipe(p) != 0)
        return 3;
    pipe_rd = p[0];
    pipe_wr = p[1];
    unb_coro_t *co[6];
    co[0] = unb_spawn(ping_coro, NULL);
    co[1] = unb_spawn(pong_coro, NULL);
    co[2] = unb_spawn(stuck_coro, NULL);
    co[3] = unb_spawn(stuck_coro, NULL);
    co[4] = unb_spawn(ping_coro, NULL);
    co[5] = unb_spawn(pong_coro, NULL);
    for (int i = 0; i < 6; i++) {
        void *r = (void *)1;
        if (!co[i] || unb_join(co[i], &r) != 0 || r != NULL)
            return 4;
    }
    close(p[0]);
    close(p[1]);
    unb_stats_t st;
    unb_stats(&st);
    printf("handoffs=%" PRIu64 " spare_peak=%" PRIu64 "\n", st.handoffs, st.spare_peak);

    struct stat err_st;
    if (fstat(2, &err_st) != 0)
        return 5;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 6;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
            continue;
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        struct stat fst;
        int flags = fcntl(fd, F_GETFD);
        if (fstat(fd, &fst) != 0 || flags < 0)
            return 7;
        printf("fd=%d target=%s cloexec=%d mode=%o same_as_stderr=%d\n", fd, target,
               (flags & FD_CLOEXEC) != 0, (unsigned)(fst.st_mode & 07777),
               fst.st_dev == err_st.st_dev && fst.st_ino == err_st.st_ino);
    }
    closedir(d);

    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 8;
    char line[512];
    int shared = 0;
    while (fgets(line, sizeof line, f)) {
        char perms[8];
        if (sscanf(line, "%*s %7s", perms) == 1 && perms[3] == 's') {
            shared++;
            printf("shared mapping: %s", line);
        }
    }
    fclose(f);
    printf("shared=%d\n", shared);
    fflush(stdout);
    return 0;
}

/* ---- the checks: secure execution ----------------------------------------- */

/* The environment a user might pass to a privileged program. */
#define HOSTILE_ENV                                                                    \
    "UNBLOCK_WORKERS=3", "UNBLOCK_STACK_SIZE=1m", "UNBLOCK_THREADS=coroutines",        \
        "UNBLOCK_STATS=1", "UNBLOCK_SPARE_THREADS=abc", "UNBLOCK_SCHED_BATCH=maybe"

static char tmpdir[64];
static char setuid_exe[128];

static void cleanup(void)
{
    if (setuid_exe[0])
        unlink(setuid_exe);
    if (tmpdir[0])
        rmdir(tmpdir);
}

/* A setuid-root copy of this program in a directory nobody can reach.
 * Returns NULL (and says why) if that cannot be had here. */
static const char *make_setuid_copy(void)
{
    if (geteuid() != 0) {
        note("not root: no setuid-root copy can be made");
        return NULL;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/unb_secure.XXXXXX");
    if (!mkdtemp(tmpdir) || chmod(tmpdir, 0755) != 0) {
        diag("mkdtemp: %s", strerror(errno));
        tmpdir[0] = '\0';
        return NULL;
    }
    atexit(cleanup);
    snprintf(setuid_exe, sizeof setuid_exe, "%s/prog", tmpdir);
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    int out = open(setuid_exe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    if (in < 0 || out < 0)
        BAIL("copying this program: %s", strerror(errno));
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            BAIL("copying this program: %s", strerror(errno));
    close(in);
    if (fchown(out, 0, 0) != 0 || fchmod(out, 04755) != 0)
        BAIL("chmod 4755: %s", strerror(errno));
    close(out);
    return setuid_exe;
}

static void test_secure_execution(void)
{
    const char *exe = make_setuid_copy();
    struct child base, ctl, sec;

    /* The defaults: no UNBLOCK_* at all. */
    struct how h_base = {.mode = "report"};
    run_child(&base, &h_base);
    if (!exited_0(&base))
        diag_child(&base);
    ok(exited_0(&base) && base.err[0] == '\0',
       "no UNBLOCK_* set: the report runs and says nothing on stderr");

    /* Control: the same environment without setuid is honoured. */
    struct how h_ctl = {.mode = "report", .env = {HOSTILE_ENV}};
    run_child(&ctl, &h_ctl);
    if (!exited_0(&ctl))
        diag_child(&ctl);
    ok(exited_0(&ctl), "control (no setuid), UNBLOCK_* set: the program runs");
    is_str(kv(ctl.out, "secure"), "0", "control: AT_SECURE is 0");
    is_str(kv(ctl.out, "workers"), "3", "control: UNBLOCK_WORKERS=3 is honoured");
    const char *bs = kv(base.out, "stack"), *cs = kv(ctl.out, "stack");
    ok(bs && cs && atol(cs) > atol(bs),
       "control: UNBLOCK_STACK_SIZE=1m gives a larger stack (%s) than the default "
       "(%s)",
       cs ? cs : "?", bs ? bs : "?");
    is_str(
        kv(ctl.out, "thread_coro"), "1",
        "control: UNBLOCK_THREADS=coroutines makes pthread_create spawn a coroutine");
    ok(strstr(ctl.err, "UNBLOCK_SPARE_THREADS=abc") != NULL,
       "control: the malformed UNBLOCK_SPARE_THREADS is reported");
    ok(strstr(ctl.err, "UNBLOCK_SCHED_BATCH=maybe") != NULL,
       "control: the malformed UNBLOCK_SCHED_BATCH is reported");
    ok(strstr(ctl.err, "libunblock: ") && strstr(ctl.err, "switches"),
       "control: UNBLOCK_STATS=1 prints statistics at exit");

    if (!exe) {
        for (int i = 0; i < 9; i++)
            ok(1, "# SKIP no setuid-root copy (needs root and a suid mount)");
        return;
    }

    /* The setuid-root copy run by nobody: secure execution. */
    struct how h_sec = {
        .exe = exe, .mode = "report", .as_nobody = 1, .env = {HOSTILE_ENV}};
    run_child(&sec, &h_sec);
    if (!exited_0(&sec))
        diag_child(&sec);
    if (!kv(sec.out, "secure") || strcmp(kv(sec.out, "secure"), "1") != 0) {
        diag_child(&sec);
        for (int i = 0; i < 9; i++)
            ok(1, "# SKIP the setuid copy did not run in secure-execution mode "
                  "(a nosuid mount, or no_new_privs)");
        return;
    }
    ok(exited_0(&sec), "setuid-root program run by nobody, UNBLOCK_* set: it runs");
    is_str(kv(sec.out, "secure"), "1", "setuid: AT_SECURE is 1");
    is_str(kv(sec.out, "euid"), "0", "setuid: it runs with euid 0");
    const char *bw = kv(base.out, "workers"), *sw = kv(sec.out, "workers");
    ok(bw && sw && strcmp(bw, sw) == 0,
       "setuid: UNBLOCK_WORKERS=3 is ignored (%s workers, the default %s)",
       sw ? sw : "?", bw ? bw : "?");
    bs = kv(base.out, "stack");
    const char *ss = kv(sec.out, "stack");
    ok(bs && ss && strcmp(bs, ss) == 0,
       "setuid: UNBLOCK_STACK_SIZE=1m is ignored (stack mapping %s, the default's "
       "%s)",
       ss ? ss : "?", bs ? bs : "?");
    is_str(kv(sec.out, "thread_coro"), "0",
           "setuid: UNBLOCK_THREADS=coroutines is ignored (pthread_create makes a "
           "thread)");
    ok(sec.err[0] == '\0',
       "setuid: nothing on stderr (no statistics, no word of the malformed value)");
    if (sec.err[0])
        diag_text("stderr", sec.err);

    /* Malformed values of every kind, in a privileged process: silence. */
    struct how h_bad = {.exe = exe,
                        .mode = "report",
                        .as_nobody = 1,
                        .env = {"UNBLOCK_WORKERS=\n\377forged", "UNBLOCK_STACK_SIZE=-1",
                                "UNBLOCK_THREADS=\033[2J", "UNBLOCK_STATS=yes",
                                "UNBLOCK_SPARE_THREADS=99999999999999999999999"}};
    run_child(&sec, &h_bad);
    ok(exited_0(&sec) && sec.err[0] == '\0',
       "setuid, malformed UNBLOCK_* values: runs, and nothing on stderr");
    if (!exited_0(&sec) || sec.err[0])
        diag_child(&sec);
    bw = kv(base.out, "workers");
    sw = kv(sec.out, "workers");
    ok(bw && sw && strcmp(bw, sw) == 0, "setuid, malformed values: default workers");
}

/* ---- the checks: what the runtime creates --------------------------------- */

static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void test_creations(void)
{
    char dir[64] = "/tmp/unb_creat.XXXXXX";
    if (!mkdtemp(dir))
        BAIL("mkdtemp: %s", strerror(errno));
    char tmpenv[80];
    snprintf(tmpenv, sizeof tmpenv, "TMPDIR=%s", dir);
    struct child c;
    struct how h = {.mode = "creations",
                    .cwd = dir,
                    .env = {"UNBLOCK_THREADS=coroutines", "UNBLOCK_STATS=1",
                            "UNBLOCK_WORKERS=2", tmpenv}};
    run_child(&c, &h);
    ok(exited_0(&c), "runtime fully up (workers, parks, handoff, statistics): runs");
    if (!exited_0(&c))
        diag_child(&c);
    note("%.*s", (int)strcspn(c.out, "\n"), c.out);

    int fds = 0, bad_kind = 0, no_cloexec = 0, open_mode = 0;
    for (const char *q = c.out; *q;) {
        char line[512];
        size_t n = strcspn(q, "\n");
        snprintf(line, sizeof line, "%.*s", (int)n, q);
        q += n + (q[n] == '\n');
        if (strncmp(line, "fd=", 3) != 0)
            continue;
        fds++;
        const char *target = kv(line, "target");
        const char *same = kv(line, "same_as_stderr");
        int is_stderr = same && strcmp(same, "1") == 0;
        int kind_ok = target && (strcmp(target, "anon_inode:[eventpoll]") == 0 ||
                                 strcmp(target, "anon_inode:[eventfd]") == 0 ||
                                 strcmp(target, "anon_inode:[timerfd]") == 0);
        if (!kind_ok && !is_stderr) {
            bad_kind++;
            diag("  not an event loop's or watchdog's descriptor, nor a copy of stderr: %s",
                 line);
        }
        const char *ce = kv(line, "cloexec");
        if (!ce || strcmp(ce, "1") != 0) {
            no_cloexec++;
            diag("  not close-on-exec: %s", line);
        }
        const char *m = kv(line, "mode");
        if (!is_stderr && (!m || (strtol(m, NULL, 8) & 077) != 0)) {
            open_mode++;
            diag("  accessible to group or others: %s", line);
        }
    }
    note("descriptors the runtime holds: %d", fds);
    cmp_ok(fds, >=, 2,
           "the runtime's own descriptors are seen (an event loop at least)");
    is_int(bad_kind, 0,
           "every descriptor the runtime holds is an epoll, an eventfd or a timerfd (or "
           "its copy of stderr): no file, no socket");
    is_int(no_cloexec, 0, "every descriptor the runtime holds is close-on-exec");
    is_int(open_mode, 0, "none of them is accessible to group or others (mode & 077)");
    is_str(kv(c.out, "shared"), "0",
           "the runtime maps nothing shared (no memfd, no shm)");
    is_int(dir_entries(dir), 0,
           "nothing is left in the working directory or TMPDIR by the runtime");
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "report") == 0)
            return child_report();
        if (strcmp(argv[1], "creations") == 0)
            return child_creations();
        return 2;
    }
    if (under_tool("valgrind")) {
        /* What it checks is the process itself: its descriptors, its
         * mappings, a setuid copy of its executable.  Under memcheck those
         * are valgrind's too (its vgdb pipes and shared memory), it cannot
         * run a setuid program, and /proc/self/exe is valgrind's own. */
        printf("1..0 # SKIP under valgrind the process's descriptors, mappings and "
               "executable are the tool's too\n");
        return 0;
    }
    test_secure_execution();
    test_creations();
    return done_testing();
}
