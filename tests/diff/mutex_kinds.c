/*
 * mutex_kinds: what each mutex type returns.
 *
 *   - normal: trylock of a locked mutex EBUSY (from the owner and from
 *     another thread); timedlock from another thread ETIMEDOUT after about
 *     50 ms; timedlock with tv_nsec 1e9: EINVAL when it would wait, 0 when
 *     the mutex is free (glibc checks the time only before waiting);
 *     destroy of a locked mutex: EBUSY;
 *   - error-checking: relock by the owner EDEADLK; unlock by another
 *     thread EPERM; unlock of an unlocked mutex EPERM; trylock by the
 *     owner EBUSY;
 *   - recursive: locked three times, trylock by the owner 0, unlocked
 *     four times; then another thread gets it; unlock by another thread
 *     EPERM; one unlock too many EPERM;
 *   - a statically initialised recursive and error-checking mutex
 *     (PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP...) behave the same;
 *   - mutexattr_settype with a bad type: EINVAL; gettype reads back;
 *   - 4 threads x 20000 increments under a normal mutex: 80000.
 */
#define _GNU_SOURCE
#include "diff.h"

static pthread_mutex_t *target;
static int op; /* what other_thread does */
static int other_res;

static void *other_thread(void *arg)
{
    (void)arg;
    switch (op) {
    case 0: other_res = pthread_mutex_trylock(target); break;
    case 1: other_res = pthread_mutex_unlock(target); break;
    case 2: {
        struct timespec dl = ts_in(CLOCK_REALTIME, 50);
        double t0 = now_ms();
        other_res = pthread_mutex_timedlock(target, &dl);
        double ms = now_ms() - t0;
        if (other_res == ETIMEDOUT && (ms < 40 || ms > 1500))
            other_res = -1;
        break;
    }
    case 3: {
        struct timespec dl = {0, 1000000000};
        other_res = pthread_mutex_timedlock(target, &dl);
        break;
    }
    case 4:
        other_res = pthread_mutex_lock(target);
        if (other_res == 0)
            pthread_mutex_unlock(target);
        break;
    }
    return NULL;
}

static int in_other(pthread_mutex_t *mx, int what)
{
    target = mx;
    op = what;
    join(spawn(other_thread, NULL));
    return other_res;
}

static const char *timed(int r)
{
    return r == -1 ? "ETIMEDOUT at a wrong time" : ename(r);
}

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static void *incr(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&counter_lock);
        counter++;
        pthread_mutex_unlock(&counter_lock);
    }
    return NULL;
}

static pthread_mutex_t s_rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t s_err = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;

static void init(pthread_mutex_t *mx, int type)
{
    pthread_mutexattr_t a;
    MUST0(pthread_mutexattr_init(&a));
    MUST0(pthread_mutexattr_settype(&a, type));
    MUST0(pthread_mutex_init(mx, &a));
    MUST0(pthread_mutexattr_destroy(&a));
}

static void errorcheck(const char *name, pthread_mutex_t *mx)
{
    printf("-- %s\n", name);
    ERR("lock", pthread_mutex_lock(mx));
    ERR("lock again by the owner", pthread_mutex_lock(mx));
    ERR("trylock by the owner", pthread_mutex_trylock(mx));
    printf("unlock by another thread = %s\n", ename(in_other(mx, 1)));
    ERR("unlock", pthread_mutex_unlock(mx));
    ERR("unlock when unlocked", pthread_mutex_unlock(mx));
}

static void recursive(const char *name, pthread_mutex_t *mx)
{
    printf("-- %s\n", name);
    ERR("lock", pthread_mutex_lock(mx));
    ERR("lock", pthread_mutex_lock(mx));
    ERR("lock", pthread_mutex_lock(mx));
    ERR("trylock by the owner", pthread_mutex_trylock(mx));
    printf("trylock by another thread = %s\n", ename(in_other(mx, 0)));
    printf("unlock by another thread = %s\n", ename(in_other(mx, 1)));
    for (int i = 0; i < 4; i++)
        ERR("unlock", pthread_mutex_unlock(mx));
    printf("lock and unlock by another thread = %s\n", ename(in_other(mx, 4)));
    ERR("unlock once too many", pthread_mutex_unlock(mx));
}

int main(void)
{
    diff_start(1);
    pthread_mutex_t n, e, r;
    init(&n, PTHREAD_MUTEX_NORMAL);
    init(&e, PTHREAD_MUTEX_ERRORCHECK);
    init(&r, PTHREAD_MUTEX_RECURSIVE);

    printf("-- normal\n");
    ERR("lock", pthread_mutex_lock(&n));
    ERR("trylock by the owner", pthread_mutex_trylock(&n));
    printf("trylock by another thread = %s\n", ename(in_other(&n, 0)));
    printf("timedlock 50 ms by another thread = %s\n", timed(in_other(&n, 2)));
    printf("timedlock with tv_nsec 1e9 by another thread = %s\n",
           ename(in_other(&n, 3)));
    ERR("destroy while locked", pthread_mutex_destroy(&n));
    ERR("unlock", pthread_mutex_unlock(&n));
    printf("timedlock with tv_nsec 1e9 of the free mutex = %s\n",
           ename(in_other(&n, 3)));
    ERR("unlock (the other thread's timedlock took it)", pthread_mutex_unlock(&n));
    ERR("destroy", pthread_mutex_destroy(&n));

    errorcheck("error-checking", &e);
    errorcheck("static error-checking", &s_err);
    recursive("recursive", &r);
    recursive("static recursive", &s_rec);

    pthread_mutexattr_t a;
    MUST0(pthread_mutexattr_init(&a));
    ERR("mutexattr_settype 12345", pthread_mutexattr_settype(&a, 12345));
    MUST0(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE));
    int type = -1;
    ERR("mutexattr_gettype", pthread_mutexattr_gettype(&a, &type));
    printf("  type is recursive: %s\n", type == PTHREAD_MUTEX_RECURSIVE ? "yes" : "no");
    MUST0(pthread_mutexattr_destroy(&a));

    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = spawn(incr, NULL);
    for (int i = 0; i < 4; i++)
        join(t[i]);
    printf("4 threads x 20000 increments: %ld\n", counter);
    return 0;
}
