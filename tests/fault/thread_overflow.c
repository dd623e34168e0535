/*
 * thread_overflow: a thread recurses without end.  Natively it runs into
 * the guard page below its stack and the process dies by SIGSEGV; so it
 * must under the preload (where the thread is a coroutine), which also
 * names the stack size and UNBLOCK_STACK_SIZE on stderr.  Before that, a
 * thread created with a 2 MiB stack size recurses 1 MiB deep and returns:
 * the attribute is honoured.
 *
 *   thread_overflow          the whole program (dies by SIGSEGV)
 */
#define _GNU_SOURCE
#include "../diff/diff.h"

static volatile int limit;

__attribute__((noinline)) static int recurse(int depth)
{
    volatile char frame[1024];
    __asm__ volatile("" : : "r"(frame) : "memory");
    for (size_t i = 0; i < sizeof frame; i += 64)
        frame[i] = (char)depth;
    if (limit > 0 && depth >= limit)
        return depth;
    int r = recurse(depth + 1);
    frame[1] = (char)r;
    return r;
}

static void *deep(void *arg)
{
    return (void *)(intptr_t)recurse(0);
}

int main(void)
{
    diff_start(0);
    alarm(30);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 2 << 20);
    limit = 1024; /* about 1 MiB */
    pthread_t t;
    MUST0(pthread_create(&t, &a, deep, NULL));
    printf("2 MiB stack, 1 MiB deep: returned depth %ld\n", (long)(intptr_t)join(t));
    limit = 0; /* no end */
    MUST0(pthread_create(&t, NULL, deep, NULL));
    join(t);
    printf("not reached: the recursion returned\n");
    return 0;
}
