/*
 * sem_calls: unnamed semaphores.
 *
 *   - sem_trywait on 0: EAGAIN; sem_getvalue follows posts and waits;
 *   - sem_timedwait on 0 with a deadline 50 ms ahead: ETIMEDOUT after about
 *     50 ms; with one in the past: ETIMEDOUT at once;
 *   - sem_timedwait with tv_nsec 1e9: EINVAL, even when the semaphore
 *     could be taken at once (glibc checks the time first), and the value
 *     is unchanged; sem_clockwait with a bad clock: EINVAL;
 *   - sem_init with a value above SEM_VALUE_MAX: EINVAL; sem_post at
 *     SEM_VALUE_MAX: EOVERFLOW;
 *   - a thread blocked in sem_wait wakes on a post 30 ms later;
 *   - 4 producers post 500 times each, 4 consumers take 500 each through
 *     a second semaphore: all 2000 pass, the values end at 0.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <semaphore.h>

#include "diff.h"

static sem_t s, items;
static long taken;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;

static void *late_post(void *arg)
{
    (void)arg;
    msleep(30);
    sem_post(&s);
    return NULL;
}

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 500; i++) {
        sem_post(&items);
        if (i % 50 == 0)
            msleep(1);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 500; i++) {
        while (sem_wait(&items) != 0)
            ;
        pthread_mutex_lock(&m);
        taken++;
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static void value(const char *what, sem_t *x)
{
    int v = -1;
    sem_getvalue(x, &v);
    printf("  %s: value %d\n", what, v);
}

int main(void)
{
    diff_start(1);
    MUST(sem_init(&s, 0, 0));
    SYS("sem_trywait on 0", sem_trywait(&s));
    SYS("sem_post", sem_post(&s));
    SYS("sem_post", sem_post(&s));
    value("after two posts", &s);
    SYS("sem_trywait", sem_trywait(&s));
    SYS("sem_wait", sem_wait(&s));
    value("after two waits", &s);

    struct timespec dl = ts_in(CLOCK_REALTIME, 50);
    double t0 = now_ms();
    SYS("sem_timedwait +50 ms on 0", sem_timedwait(&s, &dl));
    elapsed("  and it", t0, 45, 1500);
    dl = ts_in(CLOCK_REALTIME, -2000);
    t0 = now_ms();
    SYS("sem_timedwait, deadline 2 s ago", sem_timedwait(&s, &dl));
    elapsed("  and it", t0, 0, 200);
    dl.tv_nsec = 1000000000;
    SYS("sem_timedwait tv_nsec 1e9 on 0", sem_timedwait(&s, &dl));
    MUST(sem_post(&s));
    SYS("sem_timedwait tv_nsec 1e9 on 1", sem_timedwait(&s, &dl));
    value("after it", &s);
    dl = ts_in(CLOCK_MONOTONIC, 10);
    SYS("sem_clockwait CLOCK_PROCESS_CPUTIME_ID",
        sem_clockwait(&s, CLOCK_PROCESS_CPUTIME_ID, &dl));
    dl = ts_in(CLOCK_MONOTONIC, 0);
    SYS("sem_clockwait CLOCK_MONOTONIC, now, on 1",
        sem_clockwait(&s, CLOCK_MONOTONIC, &dl));
    value("after it", &s);

    sem_t big;
    SYS("sem_init above SEM_VALUE_MAX",
        sem_init(&big, 0, (unsigned)SEM_VALUE_MAX + 1u));
    MUST(sem_init(&big, 0, SEM_VALUE_MAX));
    SYS("sem_post at SEM_VALUE_MAX", sem_post(&big));
    MUST(sem_destroy(&big));

    pthread_t t = spawn(late_post, NULL);
    t0 = now_ms();
    SYS("sem_wait, posted 30 ms later by a thread", sem_wait(&s));
    elapsed("  and it", t0, 20, 1500);
    join(t);

    MUST(sem_init(&items, 0, 0));
    pthread_t th[8];
    for (int i = 0; i < 4; i++)
        th[i] = spawn(consumer, NULL);
    for (int i = 4; i < 8; i++)
        th[i] = spawn(producer, NULL);
    for (int i = 0; i < 8; i++)
        join(th[i]);
    printf("4 producers, 4 consumers: %ld taken\n", taken);
    value("items at the end", &items);
    value("s at the end", &s);
    return 0;
}
