/*
 * stdio_socket: printf from many threads into one socket through one FILE,
 * and one FILE read by two threads, as ordinary programs do (a log stream,
 * a line protocol).  Run natively and under LD_PRELOAD=libunblock.so by
 * tests/test_preload.c, which wants the same stdout and exit status from
 * both.
 *
 * Over a SOCK_STREAM socketpair with small socket buffers, 32 writer
 * threads share one `FILE *` (fdopen, line-buffered, a 1 KiB buffer) and
 * each fprintf 500 lines "thread T line L len N <N pad bytes>"; every 50th
 * line is over 4 KiB, longer than the FILE buffer and the socket buffers,
 * so one fprintf makes several write calls that block while it holds the
 * FILE lock.  The reading side checks that every line arrives intact
 * (well-formed, its pad bytes all the one expected byte, not interleaved
 * with another) and every (T, L) exactly once:
 *
 *   read   one reader thread with read() of small, varying sizes, pausing
 *          now and then so that the socket fills;
 *   fgets  fdopen(sv[1], "r") shared by two reader threads calling fgets,
 *          one of them pausing now and then.
 *
 * argv[1] picks one variant; without it both run.  Output is deterministic:
 * one "ok - ..." or "FAIL - ..." line per check.  Exit status 0 when every
 * check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


#define WRITERS 32
#define LINES 500
#define LONG_EVERY 50
#define MAX_LINE 8192

static int pad_len(int t, int l)
{
    return l % LONG_EVERY == LONG_EVERY - 1 ? 4200 + 13 * t : (t + 3 * l) % 40;
}

static char pad_char(int t, int l)
{
    return (char)('a' + (7 * t + l) % 26);
}

/* ---- the checking side -------------------------------------------------- */

static unsigned char seen[WRITERS][LINES];
static long lines_ok, malformed, duplicates;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

/* One line, without its newline. */
static void check_line(const char *s, size_t len)
{
    int t, l, n, off = 0;
    int good = sscanf(s, "thread %d line %d len %d %n", &t, &l, &n, &off) == 3 &&
               off > 0 && t >= 0 && t < WRITERS && l >= 0 && l < LINES &&
               n == pad_len(t, l) && len == (size_t)off + (size_t)n;
    if (good) {
        char c = pad_char(t, l);
        for (size_t i = (size_t)off; i < len && good; i++)
            good = s[i] == c;
    }
    pthread_mutex_lock(&seen_lock);
    if (!good) {
        if (malformed < 3)
            printf("    malformed line (%zu bytes): %.60s\n", len, s);
        malformed++;
    } else if (seen[t][l]++) {
        duplicates++;
    } else {
        lines_ok++;
    }
    pthread_mutex_unlock(&seen_lock);
}

static void reset_seen(void)
{
    memset(seen, 0, sizeof seen);
    lines_ok = malformed = duplicates = 0;
}

static void report(const char *variant)
{
    int missing = 0;
    for (int t = 0; t < WRITERS; t++)
        for (int l = 0; l < LINES; l++)
            missing += seen[t][l] == 0;
    if (!check(malformed == 0, "%s: every line arrives well-formed, not interleaved",
               variant))
        detail("%ld malformed", malformed);
    if (!check(duplicates == 0 && missing == 0 && lines_ok == WRITERS * LINES,
               "%s: each of the %d x %d lines arrives exactly once", variant, WRITERS,
               LINES))
        detail("%ld distinct, %ld duplicates, %d missing", lines_ok, duplicates,
               missing);
}

/* ---- writers ------------------------------------------------------------ */

static FILE *wf;
static atomic_int write_errors;

static void *writer(void *arg)
{
    int t = (int)(long)arg;
    char pad[MAX_LINE];
    for (int l = 0; l < LINES; l++) {
        int n = pad_len(t, l);
        memset(pad, pad_char(t, l), (size_t)n);
        if (fprintf(wf, "thread %d line %d len %d %.*s\n", t, l, n, n, pad) < 0)
            atomic_fetch_add(&write_errors, 1);
        if ((l + t) % 100 == 0)
            usleep(200);
    }
    return NULL;
}

static int make_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        printf("FAIL - socketpair: %s\n", strerror(errno));
        return -1;
    }
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    return 0;
}

static void run_writers(int fd)
{
    static char fbuf[1024];
    wf = fdopen(fd, "w");
    setvbuf(wf, fbuf, _IOLBF, sizeof fbuf);
    atomic_store(&write_errors, 0);
    pthread_t t[WRITERS];
    for (long i = 0; i < WRITERS; i++)
        t[i] = spawn(writer, (void *)i);
    for (int i = 0; i < WRITERS; i++)
        join(t[i]);
    int rc = fclose(wf); /* flushes and closes: the reader sees end of file */
    if (!check(rc == 0 && atomic_load(&write_errors) == 0,
               "%d writers: every fprintf and the fclose succeed", WRITERS))
        detail("%d fprintf errors, fclose %d", (int)atomic_load(&write_errors), rc);
}

/* ---- variant read: one reader, read() in small pieces ------------------- */

static void *raw_reader(void *arg)
{
    int fd = *(int *)arg;
    static char line[MAX_LINE + 1];
    size_t len = 0;
    int overlong = 0;
    char buf[1024];
    for (unsigned i = 0;; i++) {
        size_t want = 1 + (i * 37) % 997;
        ssize_t r = read(fd, buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t k = 0; k < r; k++) {
            if (buf[k] == '\n') {
                line[len] = '\0';
                if (overlong)
                    check_line("", 1); /* counts as malformed */
                else
                    check_line(line, len);
                len = 0;
                overlong = 0;
            } else if (len < MAX_LINE) {
                line[len++] = buf[k];
            } else {
                overlong = 1;
            }
        }
        if (i % 100 == 0)
            usleep(2000); /* the socket fills meanwhile */
    }
    if (len > 0)
        check_line("", 1); /* a partial last line */
    return NULL;
}

static void variant_read(void)
{
    phase = "read";
    reset_seen();
    int sv[2];
    if (make_pair(sv) != 0)
        exit(1);
    pthread_t r = spawn(raw_reader, &sv[1]);
    run_writers(sv[0]);
    join(r);
    close(sv[1]);
    report("read");
}

/* ---- variant fgets: one FILE, two readers ------------------------------- */

static FILE *rf;

static void *line_reader(void *arg)
{
    int pauses = (int)(long)arg;
    char *line = malloc(MAX_LINE + 2);
    for (unsigned i = 0; fgets(line, MAX_LINE + 2, rf); i++) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        else
            len = (size_t)-1; /* no newline: counts as malformed */
        check_line(line, len == (size_t)-1 ? 0 : len);
        if (pauses && i % 300 == 0)
            usleep(2000);
    }
    free(line);
    return NULL;
}

static void variant_fgets(void)
{
    phase = "fgets";
    reset_seen();
    int sv[2];
    if (make_pair(sv) != 0)
        exit(1);
    rf = fdopen(sv[1], "r");
    pthread_t r1 = spawn(line_reader, (void *)1L);
    pthread_t r2 = spawn(line_reader, (void *)0L);
    run_writers(sv[0]);
    join(r1);
    join(r2);
    fclose(rf);
    report("fgets");
}

int main(int argc, char **argv)
{
    watchdog(10);
    signal(SIGPIPE, SIG_IGN);
    const char *v = argc > 1 ? argv[1] : "both";
    if (strcmp(v, "read") == 0 || strcmp(v, "both") == 0)
        variant_read();
    if (strcmp(v, "fgets") == 0 || strcmp(v, "both") == 0)
        variant_fgets();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
