/*
 * A small TAP producer for the test programs: each check prints "ok N -
 * name" or "not ok N - name" with the expected and actual values, and
 * done_testing() prints the plan.  Header-only; one test program each.
 * As in Test::More, what explains a failure (the got and expected values,
 * diag()) goes to stderr, which prove shows; note() writes informational
 * "# ..." comments to stdout, which prove hides unless run verbose.
 */
#ifndef UNB_TAP_H
#define UNB_TAP_H

#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

/* While set, results are TAP TODO items: known gaps, tracked by an open
 * issue; prove reports them but they do not fail the run. */
static const char *tap_todo;

static void tap_result(int pass, const char *fmt, va_list ap)
{
    printf("%sok %d - ", pass ? "" : "not ", ++tap_n);
    vprintf(fmt, ap);
    if (tap_todo)
        printf(" # TODO %s", tap_todo);
    printf("\n");
    fflush(stdout);
    if (!pass && !tap_todo)
        tap_failed++;
}

/* Writes a failure's details to stderr, after what stdout holds so far. */
static inline void tap_diag_raw(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void tap_diag_raw(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

/* ok(cond, name...): passes if cond is true. */
static inline int ok(int pass, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int ok(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_result(pass, fmt, ap);
    va_end(ap);
    return pass;
}

/* is_int(got, want, name...): passes if got == want; shows both if not. */
#define is_int(got, want, ...)                                                 \
    tap_is_int((long long)(got), (long long)(want), #got, __VA_ARGS__)
static inline int tap_is_int(long long got, long long want, const char *expr,
                             const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int tap_is_int(long long got, long long want, const char *expr,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_result(got == want, fmt, ap);
    va_end(ap);
    if (got != want)
        tap_diag_raw("#   %s\n#        got: %lld\n#   expected: %lld\n", expr, got,
                     want);
    return got == want;
}

/* cmp_ok(got, op, bound, name...): a numeric comparison, e.g. "<=". */
#define cmp_ok(got, op, bound, ...)                                            \
    tap_cmp((double)(got), #op, (double)(bound), ((got)op(bound)), #got,      \
            __VA_ARGS__)
static inline int tap_cmp(double got, const char *op, double bound, int pass,
                          const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static inline int tap_cmp(double got, const char *op, double bound, int pass,
                          const char *expr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_result(pass, fmt, ap);
    va_end(ap);
    if (!pass)
        tap_diag_raw("#   %s = %g, expected %s %g\n", expr, got, op, bound);
    return pass;
}

/* is_str(got, want, name...) */
#define is_str(got, want, ...) tap_is_str((got), (want), __VA_ARGS__)
static inline int tap_is_str(const char *got, const char *want,
                             const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int tap_is_str(const char *got, const char *want,
                             const char *fmt, ...)
{
    int pass = got && want && strcmp(got, want) == 0;
    va_list ap;
    va_start(ap, fmt);
    tap_result(pass, fmt, ap);
    va_end(ap);
    if (!pass)
        tap_diag_raw("#        got: \"%s\"\n#   expected: \"%s\"\n",
                     got ? got : "(null)", want ? want : "(null)");
    return pass;
}

/* diag(fmt...): "# ..." on stderr, which prove shows: what explains a
 * failure, or what a reader of a failed run needs. */
static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "# ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
}

/* note(fmt...): "# ..." on stdout, which prove hides: informational
 * figures printed on every run. */
static inline void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

/* skip(reason, name...): a check that cannot mean anything here, with why. */
static inline void skip(const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void skip(const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("ok %d - ", ++tap_n);
    vprintf(fmt, ap);
    printf(" # SKIP %s\n", reason);
    va_end(ap);
    fflush(stdout);
}

/*
 * The tool the suite runs under (make test-asan, test-tsan, test-valgrind
 * set UNB_TEST_TOOL to asan, tsan or valgrind), or "" in a normal run.
 * A check whose quantity the tool itself changes (memory per coroutine
 * with shadow memory and quarantines) is skipped under it, with the reason.
 */
static inline const char *test_tool(void)
{
    const char *t = getenv("UNB_TEST_TOOL");
    return t ? t : "";
}

static inline int under_tool(const char *name)
{
    return strcmp(test_tool(), name) == 0;
}

/*
 * How many times slower the tool makes the code (UNB_TEST_SLOW, set by the
 * same targets; 1 in a normal run).  Liveness bounds (a deadline for
 * something that must happen at all) are multiplied by it; bounds that
 * measure the runtime's own latency keep their normal values and are
 * skipped under a tool instead.
 */
static inline double test_slow(void)
{
    const char *s = getenv("UNB_TEST_SLOW");
    double v = s ? atof(s) : 1;
    return v >= 1 ? v : 1;
}

/* Stops the test at once: a precondition failed. */
#define BAIL(...)                                                              \
    do {                                                                       \
        printf("Bail out! ");                                                  \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        exit(255);                                                             \
    } while (0)

static inline int done_testing(void)
{
    printf("1..%d\n", tap_n);
    fflush(stdout);
    return tap_failed ? 1 : 0;
}

#endif
