/*
 * cleanup_cancel: cancellation (cleanup_exit.c tests the handlers that
 * pthread_exit runs).
 *
 *   - pthread_cancel of threads blocked in read, poll, sem_wait,
 *     pthread_cond_wait (whose
 *     cleanup handler must unlock the mutex it holds again) and nanosleep:
 *     join gets PTHREAD_CANCELED and the handlers ran; cancelling with
 *     cancellation disabled waits until it is enabled again.
 *
 * Run natively and under LD_PRELOAD=libunblock.so (with one worker and
 * two) by tests/test_preload.c, which compares the output.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "trace.h"


/* ---- cancellation ------------------------------------------------------- */

static int never[2];
static pthread_mutex_t cv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct event in_place = EVENT_INIT;

static void *cancel_in_read(void *arg)
{
    pthread_cleanup_push(note, "r");
    event_set(&in_place);
    char c;
    ssize_t r = read(never[0], &c, 1);
    (void)r;
    pthread_cleanup_pop(0);
    return NULL;
}

static void *cancel_in_poll(void *arg)
{
    pthread_cleanup_push(note, "p");
    event_set(&in_place);
    struct pollfd p = {.fd = never[0], .events = POLLIN};
    int r = poll(&p, 1, 30000);
    (void)r;
    pthread_cleanup_pop(0);
    return NULL;
}

static sem_t sem;

static void *cancel_in_sem_wait(void *arg)
{
    pthread_cleanup_push(note, "w");
    event_set(&in_place);
    sem_wait(&sem);
    pthread_cleanup_pop(0);
    return NULL;
}

static void unlock_cv(void *arg)
{
    note("c");
    pthread_mutex_unlock(&cv_lock);
}

static void *cancel_in_cond_wait(void *arg)
{
    pthread_mutex_lock(&cv_lock);
    pthread_cleanup_push(unlock_cv, NULL);
    event_set(&in_place);
    for (;;)
        pthread_cond_wait(&cv, &cv_lock);
    pthread_cleanup_pop(1);
    return NULL;
}

static void *cancel_in_sleep(void *arg)
{
    pthread_cleanup_push(note, "s");
    event_set(&in_place);
    struct timespec ts = {30, 0};
    nanosleep(&ts, NULL);
    pthread_cleanup_pop(0);
    return NULL;
}

static struct event enable_go = EVENT_INIT;

static void *cancel_disabled(void *arg)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    event_set(&in_place);
    event_wait(&enable_go); /* a cancellation point, but disabled */
    note("d");
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    pthread_testcancel();
    note("X");
    return NULL;
}

/* Cancels a thread started with fn once it is in place; expects the
 * handler trace `want`.  If the cancel fails, lets the thread go (a byte
 * on `never`, a broadcast) so that the join ends. */
static void cancel_case(void *(*fn)(void *), const char *what, const char *want,
                        struct event *before_join)
{
    order_reset();
    event_reset(&in_place);
    pthread_t t = spawn(fn, NULL);
    event_wait(&in_place);
    usleep(2000); /* into the blocking call */
    int rc = pthread_cancel(t);
    if (!check(rc == 0, "cancel %s: pthread_cancel returns 0", what)) {
        detail("got %s", ename(rc));
        ssize_t w = write(never[1], "x", 1);
        (void)w;
        sem_post(&sem);
        pthread_mutex_lock(&cv_lock);
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&cv_lock);
        pthread_detach(t); /* the cond waiter never ends */
        if (before_join)
            event_set(before_join);
        return;
    }
    if (before_join)
        event_set(before_join);
    void *r = join(t);
    if (!check(r == PTHREAD_CANCELED, "cancel %s: join gets PTHREAD_CANCELED", what))
        detail("got %p", r);
    pthread_mutex_lock(&order_lock);
    int same = strcmp(order, want) == 0;
    char got[sizeof order];
    strcpy(got, order);
    pthread_mutex_unlock(&order_lock);
    if (!check(same, "cancel %s: the cleanup handlers ran (\"%s\")", what, want))
        detail("ran \"%s\"", got);
}

int main(void)
{
    watchdog(10);
    if (pipe(never) != 0)
        return 1;

    phase = "cancel";
    cancel_case(cancel_in_read, "in read", "r", NULL);
    cancel_case(cancel_in_poll, "in poll", "p", NULL);
    if (sem_init(&sem, 0, 0) != 0)
        return 1;
    cancel_case(cancel_in_sem_wait, "in sem_wait", "w", NULL);
    int v = -1;
    sem_getvalue(&sem, &v);
    check(v == 0, "a cancelled sem_wait takes nothing");
    cancel_case(cancel_in_cond_wait, "in pthread_cond_wait", "c", NULL);
    int rc = pthread_mutex_trylock(&cv_lock);
    if (!check(rc == 0, "the cond waiter's handler unlocked the mutex it held again"))
        detail("trylock got %s", ename(rc));
    if (rc == 0)
        pthread_mutex_unlock(&cv_lock);
    cancel_case(cancel_in_sleep, "in nanosleep", "s", NULL);
    cancel_case(cancel_disabled, "with cancellation disabled", "d", &enable_go);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
