/*
 * The dump signal's names and the tag of a request that says where to
 * write, shared by the library (config.c, dump.c) and the launcher
 * (tools/unblock.c), which parse the same UNBLOCK_DUMP_SIGNAL values.
 * Header-only, so the launcher needs nothing of the library's.
 */
#ifndef UNB_DUMPSIG_H
#define UNB_DUMPSIG_H

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * `unblock --dump PID` sends the signal with sigqueue and this value:
 * the tag in the high bits, in the low 16 the number of a pipe's write end
 * in the sender, which the dump then opens through /proc/SENDER/fd/N.
 * Any other sender (kill(1)) gets the dump on the process's stderr.
 */
#define UNB_DUMP_TAG 0x55db0000
#define UNB_DUMP_TAG_MASK 0x7fff0000
#define UNB_DUMP_FD_MASK 0x0000ffff

/*
 * The signal an UNBLOCK_DUMP_SIGNAL value names, or 0 for "off" ("" or
 * "0"), or -1 for a value that is not one the dump may use.  Accepted: a
 * name with or without SIG (any case) among those below, RTMIN+n,
 * RTMAX-n, or a number.  Refused: signals that cannot be caught, that
 * report faults (the runtime's own stack-overflow handler is on SIGSEGV
 * and SIGBUS), that glibc keeps for itself (below SIGRTMIN), and SIGCHLD
 * and the job-control stops, whose handling changes what the program sees.
 */
static inline int unb__dump_signal_parse(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},     {"URG", SIGURG},
        {"PIPE", SIGPIPE}, {"WINCH", SIGWINCH}, {"PWR", SIGPWR},     {"XCPU", SIGXCPU},
        {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"IO", SIGIO},
    };
    if (!s || !*s || strcmp(s, "0") == 0)
        return 0;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    int sig = -1;
    char *end;
    if (*s >= '0' && *s <= '9') {
        long v = strtol(s, &end, 10);
        sig = *end || v < 1 || v > SIGRTMAX ? -1 : (int)v;
    } else if (strncasecmp(s, "RTMIN", 5) == 0 || strncasecmp(s, "RTMAX", 5) == 0) {
        bool max = strncasecmp(s, "RTMAX", 5) == 0;
        long off = 0;
        if (s[5]) {
            if (s[5] != (max ? '-' : '+') || s[6] < '0' || s[6] > '9')
                return -1;
            off = strtol(s + 6, &end, 10);
            if (*end || off > SIGRTMAX - SIGRTMIN)
                return -1;
        }
        sig = max ? SIGRTMAX - (int)off : SIGRTMIN + (int)off;
    } else {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcasecmp(s, names[i].name) == 0)
                sig = names[i].sig;
    }
    if (sig < 1)
        return -1;
    if (sig >= SIGRTMIN)
        return sig <= SIGRTMAX ? sig : -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == sig)
            return sig;
    return -1; /* KILL, STOP, the faults, CHLD, CONT, TSTP, TTIN, TTOU, SYS... */
}

#endif
