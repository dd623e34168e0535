/*
 * thread_keys: thread-specific data and its destructors.
 *
 *   - a new thread sees NULL for a key main has set; its own value is its
 *     own across sleeps while 6 threads run;
 *   - destructors run when each thread ends (return or pthread_exit) with
 *     the thread's non-NULL value; a NULL value gets no call;
 *   - a destructor that sets the value again is called again (up to
 *     PTHREAD_DESTRUCTOR_ITERATIONS rounds), here once more;
 *   - pthread_key_delete runs no destructors; getspecific of a deleted
 *     key gives NULL in a new thread; setspecific and key_delete of a key
 *     out of range (PTHREAD_KEYS_MAX): EINVAL;
 *   - main returning does not run destructors for main's values.
 */
#define _GNU_SOURCE
#include <limits.h>

#include "diff.h"

static pthread_key_t k1, k2, k3;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static int d1_calls, d1_sum, d2_calls, d3_calls;
static int mismatches;

static void d1(void *v)
{
    pthread_mutex_lock(&m);
    d1_calls++;
    d1_sum += (int)(long)v;
    pthread_mutex_unlock(&m);
}

static void d2(void *v)
{
    (void)v;
    pthread_mutex_lock(&m);
    d2_calls++;
    pthread_mutex_unlock(&m);
}

static void d3(void *v)
{
    long n = (long)v;
    pthread_mutex_lock(&m);
    d3_calls++;
    pthread_mutex_unlock(&m);
    if (n < 2)
        pthread_setspecific(k3, (void *)(n + 1));
}

static void *worker(void *arg)
{
    long id = (long)arg;
    if (pthread_getspecific(k1) != NULL) {
        pthread_mutex_lock(&m);
        mismatches++;
        pthread_mutex_unlock(&m);
    }
    pthread_setspecific(k1, (void *)(id + 1));
    if (id % 2 == 0)
        pthread_setspecific(k2, (void *)1L);
    for (int i = 0; i < 5; i++) {
        msleep(3);
        if (pthread_getspecific(k1) != (void *)(id + 1)) {
            pthread_mutex_lock(&m);
            mismatches++;
            pthread_mutex_unlock(&m);
        }
    }
    if (id == 5)
        pthread_exit(NULL);
    return NULL;
}

static void *reborn(void *arg)
{
    (void)arg;
    pthread_setspecific(k3, (void *)1L);
    return NULL;
}

static void *deleted_reader(void *arg)
{
    (void)arg;
    return pthread_getspecific(k2);
}

int main(void)
{
    diff_start(1);
    MUST0(pthread_key_create(&k1, d1));
    MUST0(pthread_key_create(&k2, d2));
    MUST0(pthread_key_create(&k3, d3));
    ERR("setspecific in main", pthread_setspecific(k1, (void *)100L));
    pthread_t t[6];
    for (long i = 0; i < 6; i++)
        t[i] = spawn(worker, (void *)i);
    for (int i = 0; i < 6; i++)
        join(t[i]);
    printf("6 threads: %d mismatches; k1 destructor %d calls, sum %d; k2 destructor %d "
           "calls\n",
           mismatches, d1_calls, d1_sum, d2_calls);
    printf("main's own value is still %ld\n", (long)pthread_getspecific(k1));

    join(spawn(reborn, NULL));
    printf("a destructor that sets the value again: called %d times\n", d3_calls);

    ERR("setspecific k2 in main", pthread_setspecific(k2, (void *)7L));
    ERR("key_delete k2", pthread_key_delete(k2));
    printf("k2 destructor calls after the delete: %d\n", d2_calls);
    printf("getspecific of the deleted key in a new thread: %s\n",
           join(spawn(deleted_reader, NULL)) == NULL ? "NULL" : "a value");
    ERR("setspecific of key PTHREAD_KEYS_MAX",
        pthread_setspecific((pthread_key_t)PTHREAD_KEYS_MAX, NULL));
    ERR("key_delete of key PTHREAD_KEYS_MAX",
        pthread_key_delete((pthread_key_t)PTHREAD_KEYS_MAX));
    return 0;
}
