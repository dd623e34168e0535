/*
 * A trace of which cleanup handlers ran, in order, for cleanup_exit.c and
 * cleanup_cancel.c: note(arg) appends the first character of arg.
 */
#ifndef PRELOAD_TRACE_H
#define PRELOAD_TRACE_H

#include <pthread.h>
#include <string.h>

#include "check.h"

static char order[32];
static int order_len;
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;

UNUSED static void note(void *arg)
{
    pthread_mutex_lock(&order_lock);
    if (order_len < (int)sizeof order - 1)
        order[order_len++] = *(const char *)arg;
    order[order_len] = '\0';
    pthread_mutex_unlock(&order_lock);
}

UNUSED static void order_reset(void)
{
    pthread_mutex_lock(&order_lock);
    order_len = 0;
    order[0] = '\0';
    pthread_mutex_unlock(&order_lock);
}

/* Whether the trace is `want`; says what it was if not. */
UNUSED static int order_is(const char *want)
{
    pthread_mutex_lock(&order_lock);
    int same = strcmp(order, want) == 0;
    if (!same)
        detail("ran \"%s\", want \"%s\"", order, want);
    pthread_mutex_unlock(&order_lock);
    return same;
}

#endif
