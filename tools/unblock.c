/*
 * unblock: runs a command with libunblock preloaded.
 *
 *   unblock [options] [--] command [args...]
 *   unblock --dump PID
 *
 * It puts libunblock first in LD_PRELOAD (the user's other entries follow
 * in their order; an entry that already names a libunblock.so* is dropped,
 * since one process cannot hold two copies of the runtime), sets the
 * UNBLOCK_* variables its options name, and executes the command in its
 * own place with execvp.  Nothing of the launcher stays behind: the
 * command's exit status, or the signal that killed it, is what the parent
 * sees, and the command's children inherit the preload with the
 * environment.
 *
 * The library: UNBLOCK_LIBRARY if set; otherwise found from the launcher's
 * own path (/proc/self/exe): libunblock.so in the same directory (a build
 * tree), then ../lib/libunblock.so.0 (an installed tree).
 *
 * Option values are checked here with the runtime's ranges, so a typo
 * stops with a one-line message and status 2 rather than a warning from
 * every process the command starts.  Exit status of the launcher itself,
 * as env(1): 2 for a usage error, 125 when the library cannot be found,
 * 126 when the command cannot be executed, 127 when it does not exist.
 *
 * --dump PID asks a running process for its coroutine dump (runtime/dump.c)
 * and prints it: the process must have been started with a dump signal
 * (UNBLOCK_DUMP_SIGNAL, --dump-signal), which the launcher reads from its
 * /proc/PID/environ and checks it catches, so that a process without one
 * is never sent a signal that would kill it.  The signal goes with
 * sigqueue and a value naming a pipe, whose read end gets the dump.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/dumpsig.h"

#ifndef UNB_VERSION
#define UNB_VERSION "unknown" /* the Makefile passes its VERSION */
#endif

enum {
    EXIT_USAGE = 2,   /* a bad option or value */
    EXIT_SETUP = 125, /* the launcher could not prepare the environment */
    EXIT_CANNOT_RUN = 126,
    EXIT_NOT_FOUND = 127,
};

/* The runtime's ranges (runtime/config.h). */
#define WORKERS_MAX 1024
#define SPARES_MAX 4096
#define STACK_MIN (16ull << 10)
#define STACK_MAX (1ull << 30)

/* LD_PRELOAD's separators, as the dynamic linker and the runtime read it. */
#define PRELOAD_SEPS ": \t"

static const char usage_text[] =
    "Usage: unblock [options] [--] command [args...]\n"
    "       unblock --dump PID\n"
    "Runs command with libunblock preloaded: main and every thread become\n"
    "coroutines, and blocking calls park them instead of blocking OS threads.\n"
    "\n"
    "Options:\n"
    "  -w, --workers N        worker threads, 1 to 1024 (UNBLOCK_WORKERS;\n"
    "                         default: the CPUs available)\n"
    "  -s, --stack-size SIZE  coroutine stack size, 16k to 1g, suffix k, m or g\n"
    "                         (UNBLOCK_STACK_SIZE; default 256k)\n"
    "      --spare-threads N  OS threads the monitor may add while workers are\n"
    "                         stuck in calls no hook parks, 0 to 4096, 0 turns\n"
    "                         handoff off (UNBLOCK_SPARE_THREADS; default 64)\n"
    "      --stats            print the runtime's statistics on stderr at exit\n"
    "                         (UNBLOCK_STATS=1)\n"
    "      --sched-batch      with two workers or more, their threads run\n"
    "                         SCHED_BATCH: more throughput when the CPUs are\n"
    "                         oversubscribed, later wake-ups when other\n"
    "                         programs compete (UNBLOCK_SCHED_BATCH=1)\n"
    "      --native-threads   keep threads as OS threads; only calls made in\n"
    "                         coroutines park (UNBLOCK_THREADS=native)\n"
    "      --dump-signal SIG  on signal SIG (a name like USR2, RTMIN+n or a\n"
    "                         number) write a dump of every coroutine to\n"
    "                         stderr and go on (UNBLOCK_DUMP_SIGNAL; default none)\n"
    "      --dump PID         print the coroutine dump of process PID, which\n"
    "                         was started with a dump signal, and exit\n"
    "  -h, --help             print this help and exit\n"
    "  -V, --version          print the version and exit\n"
    "\n"
    "Environment: UNBLOCK_LIBRARY names the library to preload (default:\n"
    "libunblock.so beside this program, or ../lib/libunblock.so.0 from it).\n"
    "\n"
    "Exit status: the command's own; 2 for a usage error, 125 if the library\n"
    "is missing, 126 if command cannot be executed, 127 if it is not found.\n"
    "See unblock(1) and libunblock(3).\n";

/* One line on stderr, then exit with `status`. */
__attribute__((noreturn, format(printf, 2, 3))) static void fail(int status,
                                                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("unblock: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (status == EXIT_USAGE)
        fputs(" (see unblock --help)", stderr);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

/*
 * Decimal digits only, no sign or spaces.  Returns 0 and *out, -EINVAL if
 * s is not a number, -ERANGE if it is above max.
 */
static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
    if (*s == '\0')
        return -EINVAL;
    unsigned long v = 0;
    bool big = false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        if (!big)
            v = v * 10 + (unsigned long)(*p - '0');
        if (v > max)
            big = true;
    }
    if (big)
        return -ERANGE;
    *out = v;
    return 0;
}

/*
 * A size as the runtime reads UNBLOCK_STACK_SIZE: digits, then optionally
 * k, m or g (powers of 1024, either case), an "i" after that suffix, and a
 * final "b".  Returns false for anything else or a value that overflows.
 */
static bool parse_size(const char *s, unsigned long long *out)
{
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (ULLONG_MAX - 9) / 10)
            return false;
        v = v * 10 + (unsigned long long)(*s - '0');
    }
    unsigned shift = 0;
    const char *units = "kmg";
    const char *unit = *s ? strchr(units, *s | 0x20) : NULL;
    if (unit) {
        shift = 10 * (unsigned)(unit - units + 1);
        s++;
        if (*s == 'i' || *s == 'I')
            s++;
    }
    if (*s == 'b' || *s == 'B')
        s++;
    if (*s != '\0' || v > (ULLONG_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}

static void set(const char *name, const char *value)
{
    if (setenv(name, value, 1) != 0)
        fail(EXIT_SETUP, "cannot set %s: %s", name, strerror(errno));
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        fail(EXIT_SETUP, "out of memory");
    return d;
}

/* An absolute, readable path to the library to preload (malloc'd). */
static char *find_library(void)
{
    const char *env = getenv("UNBLOCK_LIBRARY");
    if (env && *env) {
        char *path;
        if (env[0] == '/') {
            path = xstrdup(env);
        } else {
            /* A relative entry would be looked up again from the working
             * directory of every program the command executes. */
            char *cwd = getcwd(NULL, 0);
            if (!cwd || asprintf(&path, "%s/%s", cwd, env) < 0)
                fail(EXIT_SETUP,
                     "UNBLOCK_LIBRARY=%s: cannot make the path absolute: %s", env,
                     strerror(errno));
            free(cwd);
        }
        if (access(path, R_OK) != 0)
            fail(EXIT_SETUP, "UNBLOCK_LIBRARY=%s: %s", env, strerror(errno));
        return path;
    }

    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        fail(EXIT_SETUP,
             "cannot find libunblock: /proc/self/exe is unreadable (%s); "
             "set UNBLOCK_LIBRARY to the library's path",
             n < 0 ? strerror(errno) : "empty");
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        fail(EXIT_SETUP,
             "cannot find libunblock: /proc/self/exe is %s; "
             "set UNBLOCK_LIBRARY to the library's path",
             exe);
    *slash = '\0'; /* exe is now the launcher's directory */

    char *beside, *installed;
    char *up = strrchr(exe, '/'); /* the parent of the launcher's directory */
    if (asprintf(&beside, "%s/libunblock.so", exe) < 0 ||
        asprintf(&installed, "%.*s/lib/libunblock.so.0", up ? (int)(up - exe) : 0,
                 exe) < 0)
        fail(EXIT_SETUP, "out of memory");
    if (access(beside, R_OK) == 0) {
        free(installed);
        return beside;
    }
    if (access(installed, R_OK) == 0) {
        free(beside);
        return installed;
    }
    fail(EXIT_SETUP,
         "cannot find libunblock: neither %s nor %s exists; "
         "set UNBLOCK_LIBRARY to the library's path",
         beside, installed);
}

/* Does an LD_PRELOAD entry of `len` bytes name a libunblock.so*? */
static bool names_libunblock(const char *entry, size_t len)
{
    const char *base = entry;
    for (size_t i = 0; i < len; i++)
        if (entry[i] == '/')
            base = entry + i + 1;
    size_t blen = len - (size_t)(base - entry);
    return blen >= 13 && memcmp(base, "libunblock.so", 13) == 0;
}

/* "lib:entry:entry...": lib first, then the entries of `old` that do not
 * name a libunblock, in their order (malloc'd). */
static char *preload_value(const char *lib, const char *old)
{
    size_t cap = strlen(lib) + (old ? strlen(old) : 0) + 2;
    char *v = malloc(cap);
    if (!v)
        fail(EXIT_SETUP, "out of memory");
    size_t len = strlen(lib);
    memcpy(v, lib, len);
    for (const char *p = old; p && *p;) {
        p += strspn(p, PRELOAD_SEPS);
        size_t n = strcspn(p, PRELOAD_SEPS);
        if (n && !names_libunblock(p, n)) {
            v[len++] = ':';
            memcpy(v + len, p, n);
            len += n;
        }
        p += n;
    }
    v[len] = '\0';
    return v;
}

/* Long options without a short form: values no character has. */
enum { OPT_SPARES = 256, OPT_STATS, OPT_BATCH, OPT_NATIVE, OPT_DUMP_SIGNAL, OPT_DUMP };

static const struct option longopts[] = {
    {"workers", required_argument, NULL, 'w'},
    {"stack-size", required_argument, NULL, 's'},
    {"spare-threads", required_argument, NULL, OPT_SPARES},
    {"stats", no_argument, NULL, OPT_STATS},
    {"sched-batch", no_argument, NULL, OPT_BATCH},
    {"native-threads", no_argument, NULL, OPT_NATIVE},
    {"dump-signal", required_argument, NULL, OPT_DUMP_SIGNAL},
    {"dump", required_argument, NULL, OPT_DUMP},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/*
 * The message for getopt_long's '?', from what it leaves in optopt: 0 for
 * a long option it does not know (or an ambiguous abbreviation), which
 * optind has passed; the value of a long option given "=value" it does
 * not take (a valid short option never ends here); else the character of
 * an unknown short option.
 */
__attribute__((noreturn)) static void bad_option(char **argv)
{
    if (optopt == 0)
        fail(EXIT_USAGE, "unknown option %s", argv[optind - 1]);
    for (const struct option *o = longopts; o->name; o++)
        if (o->val == optopt && o->has_arg == no_argument)
            fail(EXIT_USAGE, "--%s takes no value", o->name);
    fail(EXIT_USAGE, "unknown option -%c", optopt);
}

/* ---- --dump PID ---------------------------------------------------------- */

/* The value of UNBLOCK_DUMP_SIGNAL in process pid's initial environment,
 * or NULL; exits on an unreadable environment. */
static char *target_dump_signal(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/environ", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        fail(1, "cannot read the environment of process %ld: %s", pid, strerror(errno));
    static const char key[] = "UNBLOCK_DUMP_SIGNAL=";
    char *entry = NULL, *value = NULL;
    size_t cap = 0;
    while (getdelim(&entry, &cap, '\0', f) > 0)
        if (strncmp(entry, key, sizeof key - 1) == 0) {
            free(value);
            value = strdup(entry + sizeof key - 1);
        }
    free(entry);
    fclose(f);
    return value;
}

/* Whether process pid catches sig (its /proc status's SigCgt mask). */
static bool target_catches(long pid, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    unsigned long long mask = 0;
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "SigCgt: %llx", &mask) == 1) {
            found = true;
            break;
        }
    fclose(f);
    return found && sig <= 64 && (mask >> (sig - 1) & 1);
}

/* Reads what arrives on fd to stdout; false if nothing came within
 * `first_ms`.  Closes `ours` (our copy of the write end) once the target
 * writes, so that its close ends the read. */
static bool relay(int fd, int ours, int first_ms)
{
    bool got = false;
    char buf[65536];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, got ? 10000 : first_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return got;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return got;
        if (!got && ours >= 0) {
            close(ours);
            ours = -1;
        }
        got = true;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            fail(1, "cannot write the dump: %s", strerror(errno));
    }
}

__attribute__((noreturn)) static void dump(const char *pid_text)
{
    unsigned long pid;
    if (parse_count(pid_text, INT_MAX, &pid) != 0 || pid == 0)
        fail(EXIT_USAGE, "--dump %s is not a process id", pid_text);
    char *value = target_dump_signal((long)pid);
    int sig = unb__dump_signal_parse(value);
    if (sig <= 0)
        fail(1,
             "process %lu has no dump signal: start it with unblock --dump-signal "
             "SIG or UNBLOCK_DUMP_SIGNAL=SIG",
             pid);
    if (!target_catches((long)pid, sig))
        fail(1,
             "process %lu does not catch its dump signal %s (%d): it is not running "
             "libunblock, or the program took the signal over; not sending it",
             pid, value, sig);
    free(value);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        fail(1, "pipe: %s", strerror(errno));
    if (p[1] > UNB_DUMP_FD_MASK)
        fail(1, "too many open files to name a pipe to process %lu", pid);
    union sigval v = {.sival_int = UNB_DUMP_TAG | p[1]};
    if (sigqueue((pid_t)pid, sig, v) != 0)
        fail(1, "cannot signal process %lu: %s", pid, strerror(errno));
    if (!relay(p[0], p[1], 5000))
        fail(1,
             "no dump from process %lu within 5 s; if it cannot open this "
             "process's pipe (another user), it wrote the dump to its stderr",
             pid);
    if (fflush(stdout) != 0)
        fail(1, "cannot write the dump: %s", strerror(errno));
    exit(0);
}

int main(int argc, char **argv)
{
    const char *workers = NULL, *stack = NULL, *spares = NULL, *dump_signal = NULL;
    bool stats = false, batch = false, native = false;

    opterr = 0; /* our own one-line messages */
    int c;
    /* "+": options end at the command, whose own options are its own. */
    while ((c = getopt_long(argc, argv, "+:w:s:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'w': workers = optarg; break;
        case 's': stack = optarg; break;
        case OPT_SPARES: spares = optarg; break;
        case OPT_STATS: stats = true; break;
        case OPT_BATCH: batch = true; break;
        case OPT_NATIVE: native = true; break;
        case OPT_DUMP_SIGNAL: dump_signal = optarg; break;
        case OPT_DUMP: dump(optarg);
        case 'h': fputs(usage_text, stdout); return fflush(stdout) == 0 ? 0 : 1;
        case 'V':
            printf("unblock (libunblock) %s\n", UNB_VERSION);
            return fflush(stdout) == 0 ? 0 : 1;
        /* A missing value is missing at the end: the last argument. */
        case ':': fail(EXIT_USAGE, "%s needs a value", argv[optind - 1]);
        default: bad_option(argv);
        }
    }
    if (optind >= argc)
        fail(EXIT_USAGE, "no command given");
    if (dump_signal && unb__dump_signal_parse(dump_signal) <= 0)
        fail(EXIT_USAGE,
             "--dump-signal %s is not a signal the dump can use (a name like USR2 "
             "or QUIT, RTMIN+n, or a number; not KILL, STOP, CHLD or a fault)",
             dump_signal);

    unsigned long n;
    int rc;
    if (workers && (rc = parse_count(workers, WORKERS_MAX, &n)) == 0 && n == 0)
        rc = -ERANGE;
    if (workers && rc != 0)
        fail(EXIT_USAGE, "--workers %s is not a worker count from 1 to %d", workers,
             WORKERS_MAX);
    if (spares && parse_count(spares, SPARES_MAX, &n) != 0)
        fail(EXIT_USAGE, "--spare-threads %s is not a thread count from 0 to %d",
             spares, SPARES_MAX);
    unsigned long long size;
    if (stack && !parse_size(stack, &size))
        fail(EXIT_USAGE, "--stack-size %s is not a size (like 256k or 1m)", stack);
    if (stack && (size < STACK_MIN || size > STACK_MAX))
        fail(EXIT_USAGE, "--stack-size %s is outside 16k to 1g", stack);

    char *lib = find_library();
    if (lib[strcspn(lib, PRELOAD_SEPS)] != '\0')
        fail(EXIT_SETUP,
             "%s: LD_PRELOAD cannot hold a path with ':' or whitespace; "
             "set UNBLOCK_LIBRARY to another path to the library",
             lib);
    char *preload = preload_value(lib, getenv("LD_PRELOAD"));
    set("LD_PRELOAD", preload); /* setenv copies */
    free(preload);
    free(lib);
    if (workers)
        set("UNBLOCK_WORKERS", workers);
    if (stack)
        set("UNBLOCK_STACK_SIZE", stack);
    if (spares)
        set("UNBLOCK_SPARE_THREADS", spares);
    if (stats)
        set("UNBLOCK_STATS", "1");
    if (batch)
        set("UNBLOCK_SCHED_BATCH", "1");
    if (native)
        set("UNBLOCK_THREADS", "native");
    if (dump_signal)
        set("UNBLOCK_DUMP_SIGNAL", dump_signal);

    const char *cmd = argv[optind];
    execvp(cmd, argv + optind);
    int e = errno;
    if (e == ENOENT && !strchr(cmd, '/'))
        fail(EXIT_NOT_FOUND, "%s: command not found", cmd);
    fail(e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN, "%s: %s", cmd, strerror(e));
}
