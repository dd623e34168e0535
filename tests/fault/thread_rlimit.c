/*
 * thread_rlimit: threads are created under RLIMIT_AS until a thread's
 * stack can no longer be mapped.
 *
 *   - pthread_create fails with EAGAIN (as natively: the stack's mmap
 *     failed), with the default attributes and with a 1 MiB stack size;
 *   - every thread created before the failure runs and joins with its
 *     value; the program goes on working under the limit (a pipe between
 *     two threads carries its bytes);
 *   - once those are joined, as many threads can be created again (their
 *     stacks are reused or unmapped), and threads with a larger stack
 *     (1 MiB) too: the room the joined ones held is not kept from them;
 *   - with the limit raised back, more threads than before can be made.
 *
 * How many threads fit differs (8 MiB native stacks, 256 KiB coroutine
 * stacks): the counts go to stderr, the verdicts to stdout.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/resource.h>

#include "../diff/diff.h"

#define MAX_THREADS 4096
/* Room under the limit: 256 MiB.  With 64 MiB, a spare thread that the
 * monitor started under load (the machine busy with other tests) could
 * take all of it, by the 64 MiB of address space a glibc malloc arena
 * reserves for a new thread, and not one coroutine fitted (once in CI;
 * 1 in 30 runs three at a time, with the previous monitor too). */
#define MARGIN (256L << 20)

/* The threads wait at a gate (a condition variable): parked, they leave
 * the process idle while it fills (with a 1 ms poll, a thousand coroutines
 * kept the workers busy, and a slow mmap then made the monitor start
 * spare threads, whose stacks and malloc arenas took room from the next
 * fill). */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_open = PTHREAD_COND_INITIALIZER;
static intptr_t gate = INTPTR_MAX; /* threads numbered above it may go */
static pthread_t held[MAX_THREADS + 64];

static void set_gate(intptr_t above)
{
    pthread_mutex_lock(&gate_lock);
    gate = above;
    pthread_cond_broadcast(&gate_open);
    pthread_mutex_unlock(&gate_lock);
}

/* arg: the thread's number, from 1; it returns it. */
static void *hold(void *arg)
{
    pthread_mutex_lock(&gate_lock);
    while ((intptr_t)arg <= gate)
        pthread_cond_wait(&gate_open, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return arg;
}

static long vm_size_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* Creates threads until one fails or there are max; returns the count,
 * *err the error. */
static int fill(const pthread_attr_t *attr, int max, int *err)
{
    int n = 0;
    *err = 0;
    set_gate(INTPTR_MAX);
    while (n < max) {
        int e = pthread_create(&held[n], attr, hold, (void *)(intptr_t)(n + 1));
        if (e) {
            *err = e;
            break;
        }
        n++;
    }
    return n;
}

/* Releases and joins n threads; returns how many gave their own value. */
static int drain(int n)
{
    set_gate(0);
    int good = 0;
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        good += pthread_join(held[i], &r) == 0 && r == (void *)(intptr_t)(i + 1);
    }
    return good;
}

static int pfd[2];
static void *pipe_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        write_all(pfd[1], "0123456789", 10);
    close(pfd[1]);
    return NULL;
}

int main(void)
{
    diff_start(0);
    alarm(60);
    /* Warm up: the first thread starts what the process needs for threads
     * (under the preload, the workers and the monitor). */
    pthread_t t = spawn(hold, (void *)1);
    set_gate(0);
    join(t);

    struct rlimit orig, low;
    MUST(getrlimit(RLIMIT_AS, &orig));
    low = orig;
    low.rlim_cur = (rlim_t)vm_size_kb() * 1024 + MARGIN;
    MUST(setrlimit(RLIMIT_AS, &low));

    int err;
    int n = fill(NULL, MAX_THREADS, &err);
    printf("default attributes: pthread_create fails at last: %s (%s)\n",
           n < MAX_THREADS ? "yes" : "no", ename(err));
    /* Under the limit, with the threads held: I/O between two more. */
    int alive_io = 0;
    if (n > 2) {
        set_gate(n - 2); /* the last two go */
        void *r;
        MUST0(pthread_join(held[--n], &r));
        MUST0(pthread_join(held[--n], &r));
        MUST(pipe(pfd));
        pthread_t w;
        if (pthread_create(&w, NULL, pipe_writer, NULL) == 0) {
            char buf[64];
            size_t got = 0;
            ssize_t k;
            while ((k = read(pfd[0], buf, sizeof buf)) > 0)
                got += (size_t)k;
            MUST0(pthread_join(w, NULL));
            alive_io = got == 1000;
        }
        close(pfd[0]);
    }
    printf("under the limit, two threads still pass 1000 bytes through a pipe: %s\n",
           alive_io ? "yes" : "no");
    int good = drain(n);
    printf("every thread created before the failure joins with its value: %s\n",
           good == n ? "yes" : "no");
    int n2 = fill(NULL, MAX_THREADS, &err);
    int good2 = drain(n2);
    printf("after joining them, as many can be created again: %s; they join: %s\n",
           n2 >= n ? "yes" : "no", good2 == n2 ? "yes" : "no");

    pthread_attr_t big;
    pthread_attr_init(&big);
    pthread_attr_setstacksize(&big, 1 << 20);
    int nb = fill(&big, MAX_THREADS, &err);
    int goodb = drain(nb);
    printf("1 MiB stacks: some are created: %s; pthread_create fails at last: %s (%s); "
           "the others join: %s\n",
           nb > 0 ? "yes" : "no", nb < MAX_THREADS ? "yes" : "no", ename(err),
           goodb == nb ? "yes" : "no");
    pthread_attr_destroy(&big);

    MUST(setrlimit(RLIMIT_AS, &orig));
    int n3 = fill(NULL, n + 8, &err);
    int good3 = drain(n3);
    printf("limit raised back: more threads than before: %s; they join: %s\n",
           n3 == n + 8 ? "yes" : "no", good3 == n3 ? "yes" : "no");
    fprintf(stderr,
            "threads held: %d under the limit (%d again, %d with 1 MiB stacks), "
            "%d with the limit raised (asked for %d)\n",
            n, n2, nb, n3, n + 8);
    return 0;
}
