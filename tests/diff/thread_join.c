/*
 * thread_join: creating, joining and detaching threads.
 *
 *   - return values and pthread_exit values arrive through pthread_join;
 *   - pthread_join of oneself: EDEADLK; tryjoin of a running thread: EBUSY;
 *     timedjoin with a deadline 40 ms ahead on a thread that runs 200 ms:
 *     ETIMEDOUT, then a plain join gets its value;
 *   - a detached thread (attribute, or pthread_detach) runs to its end;
 *     its work is visible once it signals;
 *   - a thread created with a 1 MB stack size attribute has at least
 *     that much (pthread_getattr_np) and can use 600 KB of it;
 *   - pthread_equal of self and of two different threads;
 *   - 200 threads created and joined in a row, each returning its index.
 */
#define _GNU_SOURCE
#include "diff.h"

static void *ret_arg(void *arg)
{
    return arg;
}
static void *exit_arg(void *arg)
{
    pthread_exit((char *)arg + 1);
}
static void *slow(void *arg)
{
    msleep(200);
    return arg;
}

static pthread_t main_id;
static int self_res, equal_self, equal_main;
static void *self_join(void *arg)
{
    (void)arg;
    self_res = pthread_join(pthread_self(), NULL);
    equal_self = pthread_equal(pthread_self(), pthread_self());
    equal_main = pthread_equal(pthread_self(), main_id);
    return NULL;
}

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int detached_done;
static void *detached(void *arg)
{
    msleep(10);
    pthread_mutex_lock(&m);
    detached_done += (int)(long)arg;
    pthread_cond_broadcast(&c);
    pthread_mutex_unlock(&m);
    return NULL;
}

static size_t stack_seen;
static int deep(int n)
{
    volatile char pad[1024];
    pad[0] = (char)n;
    return n == 0 ? pad[0] : deep(n - 1) + pad[0];
}
static void *big_stack(void *arg)
{
    (void)arg;
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstacksize(&a, &stack_seen);
        pthread_attr_destroy(&a);
    }
    return (void *)(long)deep(600);
}

int main(void)
{
    diff_start(1);
    main_id = pthread_self();
    static char tag[4] = "abc";
    printf("return value: %s\n",
           (char *)join(spawn(ret_arg, tag)) == tag ? "the argument" : "wrong");
    printf("pthread_exit value: %s\n", (char *)join(spawn(exit_arg, tag)) == tag + 1
                                           ? "the argument + 1"
                                           : "wrong");
    join(spawn(self_join, NULL));
    printf("join of oneself = %s; equal(self, self) %s; equal(self, main) %s\n",
           ename(self_res), equal_self ? "yes" : "no", equal_main ? "yes" : "no");

    pthread_t t = spawn(slow, tag);
    ERR("tryjoin of a running thread", pthread_tryjoin_np(t, NULL));
    struct timespec dl = ts_in(CLOCK_REALTIME, 40);
    ERR("timedjoin 40 ms of a thread that runs 200 ms",
        pthread_timedjoin_np(t, NULL, &dl));
    void *v = NULL;
    ERR("join", pthread_join(t, &v));
    printf("  its value: %s\n", v == tag ? "the argument" : "wrong");

    pthread_attr_t a;
    MUST0(pthread_attr_init(&a));
    MUST0(pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED));
    MUST0(pthread_create(&t, &a, detached, (void *)1L));
    MUST0(pthread_attr_destroy(&a));
    t = spawn(detached, (void *)10L);
    ERR("pthread_detach", pthread_detach(t));
    pthread_mutex_lock(&m);
    dl = ts_in(CLOCK_REALTIME, 2000);
    while (detached_done != 11)
        if (pthread_cond_timedwait(&c, &m, &dl) != 0)
            break;
    pthread_mutex_unlock(&m);
    printf("detached threads done: %d\n", detached_done);

    MUST0(pthread_attr_init(&a));
    MUST0(pthread_attr_setstacksize(&a, 1 << 20));
    MUST0(pthread_create(&t, &a, big_stack, NULL));
    MUST0(pthread_attr_destroy(&a));
    join(t);
    printf("1 MB stack attribute: at least 1 MB seen: %s; 600 KB of recursion: done\n",
           stack_seen >= (1 << 20) ? "yes" : "no");

    long sum = 0;
    for (long i = 0; i < 200; i++)
        sum += (long)join(spawn(ret_arg, (void *)i));
    printf("200 threads in a row, sum of their values: %ld\n", sum);
    return 0;
}
