/* Configuration from the environment (config.h). */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "common.h"
#include "dumpsig.h"
#include "stack.h"

struct unb__config unb__config = {
    .workers = 1,
    .stack_size = UNB_STACK_SIZE_DEFAULT,
    .spares = UNB_SPARES_DEFAULT,
};

bool unb__parse_size(const char *s, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return false;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    default: break;
    }
    if (shift && (*end == 'i' || *end == 'I'))
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0')
        return false;
    if (v > (SIZE_MAX >> shift))
        return false;
    *out = (size_t)v << shift;
    return true;
}

/*
 * A value as a message shows it: printable ASCII as it is, any other byte
 * (a newline that would forge a second line, a control character, bytes
 * that are not UTF-8, the backslash itself) as \xHH, and at most SHOWN_MAX
 * bytes of the value, then "...", so that the message stays one line and
 * its end (the value used instead) is never cut off.
 */
#define SHOWN_MAX 40
struct shown {
    char s[SHOWN_MAX * 4 + 4];
};

static const char *shown(const char *v, struct shown *out)
{
    static const char hex[] = "0123456789abcdef";
    char *p = out->s;
    size_t i = 0;
    for (; v[i] && i < SHOWN_MAX; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        *p++ = 'x';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 15];
    }
    if (v[i]) {
        memcpy(p, "...", 3);
        p += 3;
    }
    *p = '\0';
    return out->s;
}

/* A count: decimal digits only (no sign, no spaces, no base prefix), at
 * most max.  Returns false for anything else. */
static bool parse_count(const char *v, long max, long *out)
{
    if (*v < '0' || *v > '9')
        return false;
    errno = 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || errno != 0 || n > max)
        return false;
    *out = n;
    return true;
}

static unsigned cpus_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return (unsigned)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static void load_workers(const char *v)
{
    unsigned dflt = cpus_available();
    if (dflt > UNB_WORKERS_MAX)
        dflt = UNB_WORKERS_MAX;
    unb__config.workers = dflt;
    if (!v)
        return;
    long n;
    struct shown sh;
    if (!parse_count(v, UNB_WORKERS_MAX, &n) || n < 1) {
        unb__say("UNBLOCK_WORKERS=%s is not a worker count from 1 to %d; "
                 "using %u (the CPUs available)",
                 shown(v, &sh), UNB_WORKERS_MAX, dflt);
        return;
    }
    unb__config.workers = (unsigned)n;
}

static void load_stack_size(const char *v)
{
    unb__config.stack_size = UNB_STACK_SIZE_DEFAULT;
    if (!v)
        return;
    size_t n;
    struct shown sh;
    if (!unb__parse_size(v, &n)) {
        unb__say("UNBLOCK_STACK_SIZE=%s is not a size (like 256k or 1m); "
                 "using the default 256k",
                 shown(v, &sh));
        return;
    }
    if (n < UNB_STACK_SIZE_MIN || n > UNB_STACK_SIZE_MAX) {
        unb__say("UNBLOCK_STACK_SIZE=%s is outside 16k to 1g; "
                 "using the default 256k",
                 shown(v, &sh));
        return;
    }
    size_t ps = unb__page_size;
    unb__config.stack_size = (n + ps - 1) / ps * ps;
}

static void load_spares(const char *v)
{
    unb__config.spares = UNB_SPARES_DEFAULT;
    if (!v)
        return;
    long n;
    struct shown sh;
    if (!parse_count(v, UNB_SPARES_MAX, &n)) {
        unb__say("UNBLOCK_SPARE_THREADS=%s is not a thread count from 0 to %d; "
                 "using the default %d",
                 shown(v, &sh), UNB_SPARES_MAX, UNB_SPARES_DEFAULT);
        return;
    }
    unb__config.spares = (unsigned)n;
}

/* A flag: 1 sets *out; 0, empty or unset clears it; anything else is
 * reported with `otherwise` (what happens instead) and clears it. */
static void load_flag(const char *name, const char *v, bool *out, const char *otherwise)
{
    *out = false;
    if (!v || strcmp(v, "0") == 0 || *v == '\0')
        return;
    if (strcmp(v, "1") == 0) {
        *out = true;
        return;
    }
    struct shown sh;
    unb__say("%s=%s is neither 0 nor 1; %s", name, shown(v, &sh), otherwise);
}

static void load_dump_signal(const char *v)
{
    unb__config.dump_signal = 0;
    int sig = unb__dump_signal_parse(v);
    if (sig >= 0) {
        unb__config.dump_signal = sig;
        return;
    }
    unb__say("UNBLOCK_DUMP_SIGNAL=%s is not a signal the dump can use (a name like "
             "USR2 or QUIT, RTMIN+n, or a number); no dump signal",
             v);
}

void unb__config_load(void)
{
    /* In a setuid or otherwise secure-execution process the environment
     * belongs to someone less trusted than the program: ignore it. */
    bool secure = getauxval(AT_SECURE) != 0;
    load_workers(secure ? NULL : getenv("UNBLOCK_WORKERS"));
    load_stack_size(secure ? NULL : getenv("UNBLOCK_STACK_SIZE"));
    load_spares(secure ? NULL : getenv("UNBLOCK_SPARE_THREADS"));
    load_flag("UNBLOCK_STATS", secure ? NULL : getenv("UNBLOCK_STATS"),
              &unb__config.stats, "statistics stay off");
    load_flag("UNBLOCK_SCHED_BATCH", secure ? NULL : getenv("UNBLOCK_SCHED_BATCH"),
              &unb__config.sched_batch, "workers keep their scheduling policy");
    load_dump_signal(secure ? NULL : getenv("UNBLOCK_DUMP_SIGNAL"));
}

/* Is `path` (an LD_PRELOAD entry) this library? */
static bool is_us(const char *path, size_t len)
{
    const char *base = path;
    for (size_t i = 0; i < len; i++)
        if (path[i] == '/')
            base = path + i + 1;
    size_t blen = len - (size_t)(base - path);
    return blen >= 13 && strncmp(base, "libunblock.so", 13) == 0;
}

bool unb__config_preloaded(void)
{
    const char *p = getenv("LD_PRELOAD");
    while (p && *p) {
        size_t n = strcspn(p, ": \t");
        if (n && is_us(p, n))
            return true;
        p += n;
        p += strspn(p, ": \t");
    }
    return false;
}

bool unb__config_threads_as_coroutines(void)
{
    bool dflt = unb__config_preloaded();
    const char *v = getauxval(AT_SECURE) ? NULL : getenv("UNBLOCK_THREADS");
    if (!v)
        return dflt;
    if (strcmp(v, "coroutines") == 0)
        return true;
    if (strcmp(v, "native") == 0)
        return false;
    struct shown sh;
    unb__say("UNBLOCK_THREADS=%s is neither \"coroutines\" nor \"native\"; "
             "using \"%s\" (%s)",
             shown(v, &sh), dflt ? "coroutines" : "native",
             dflt ? "the default under LD_PRELOAD" : "the default when linked");
    return dflt;
}
