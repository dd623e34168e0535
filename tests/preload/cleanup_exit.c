/*
 * cleanup_exit: pthread_exit unwinds the thread.
 *
 *   - pthread_cleanup_pop(1) runs the handler; pop(0) does not;
 *   - pthread_exit from a nested function (after a call that blocks) runs
 *     the pushed handlers, last pushed first, in the frames that pushed
 *     them, and join gets the value;
 *   - handlers pushed in two functions, one calling the other, all run;
 *   - key destructors run after the cleanup handlers;
 *   - a thread that returns normally runs none of its popped handlers.
 *
 * Built twice (tests/preload/cleanup_exit and cleanup_exit_eh): plain C,
 * where pthread_cleanup_push registers a buffer with glibc, and with
 * -fexceptions, where it is a cleanup attribute that only an unwind runs.
 *
 * Output is deterministic: one "ok - ..." or "FAIL - ..." line per check.
 * Exit status 0 when every check passed, 1 otherwise, 2 on the watchdog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "trace.h"

static void *pops(void *arg)
{
    pthread_cleanup_push(note, "a");
    pthread_cleanup_push(note, "b");
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(1);
    return arg;
}

__attribute__((noinline)) static void exit_deep(void)
{
    usleep(1000); /* parks under the preload: the exit comes after a switch */
    pthread_exit((void *)77L);
}

static void *exits_with_handlers(void *arg)
{
    pthread_cleanup_push(note, "1");
    pthread_cleanup_push(note, "2");
    pthread_cleanup_push(note, "3");
    exit_deep();
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return arg;
}

/* A local whose value after the exit tells that the handler ran in its
 * frame, with the frame intact. */
static int frame_value;

static void read_local(void *arg)
{
    frame_value = *(int *)arg;
    note("L");
}

__attribute__((noinline)) static void inner(void)
{
    int local = 4242;
    pthread_cleanup_push(read_local, &local);
    pthread_cleanup_push(note, "i");
    exit_deep();
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
}

static void *nested_functions(void *arg)
{
    pthread_cleanup_push(note, "o");
    inner();
    pthread_cleanup_pop(0);
    return arg;
}

static pthread_key_t key;

static void key_dtor(void *v)
{
    note(v);
}

static void *with_key(void *arg)
{
    pthread_setspecific(key, "K");
    pthread_cleanup_push(note, "h");
    exit_deep();
    pthread_cleanup_pop(0);
    return arg;
}

static void *returns(void *arg)
{
    pthread_cleanup_push(note, "x");
    usleep(1000);
    pthread_cleanup_pop(0);
    return (void *)5L;
}

static void *run(void *(*fn)(void *))
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, NULL) != 0) {
        printf("FAIL - pthread_create\n");
        exit(1);
    }
    void *r;
    if (pthread_join(t, &r) != 0) {
        printf("FAIL - pthread_join\n");
        exit(1);
    }
    return r;
}

int main(void)
{
    watchdog(10);

    run(pops);
    check(order_is("a"), "pthread_cleanup_pop(1) runs the handler, pop(0) does not");

    order_reset();
    void *r = run(exits_with_handlers);
    check(r == (void *)77L, "pthread_exit(77) inside cleanup handlers: join gets 77");
    check(order_is("321"), "pthread_exit runs the cleanup handlers, last pushed first");

    order_reset();
    r = run(nested_functions);
    check(r == (void *)77L && order_is("iLo"),
          "handlers pushed by two nested functions all run, innermost first");
    check(frame_value == 4242, "a handler runs in the frame that pushed it, its locals intact");

    if (pthread_key_create(&key, key_dtor) != 0)
        return 1;
    order_reset();
    run(with_key);
    check(order_is("hK"), "key destructors run after the cleanup handlers");

    order_reset();
    r = run(returns);
    check(r == (void *)5L && order_is(""), "a thread that returns runs no popped handler");

    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
