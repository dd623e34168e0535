/* Messages to stderr and fatal errors (common.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "sys.h"

static void vsay(const char *fmt, va_list ap)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "libunblock: ");
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof buf - 2)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    /* A raw write: no hook, no stdio lock, one call so lines do not mix. */
    unb__sys3(SYS_write, 2, (long)buf, (long)len);
}

void unb__say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

void unb__die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    abort();
}

void unb__assert_fail(const char *what, const char *file, int line)
{
    unb__die("internal error: %s (%s:%d)", what, file, line);
}
