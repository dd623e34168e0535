/*
 * barrier_once: barriers and pthread_once.
 *
 *   - 5 threads pass a barrier of 5 in 4 rounds: in each round exactly one
 *     gets PTHREAD_BARRIER_SERIAL_THREAD, the others 0, and no thread
 *     starts a round before all finished the previous one;
 *   - barrier_init with count 0: EINVAL; a barrier of 1 returns
 *     PTHREAD_BARRIER_SERIAL_THREAD at once, every time;
 *   - pthread_once from 8 threads at once: the routine runs once, and
 *     every caller returns after it finished (it sleeps 30 ms);
 *   - a second pthread_once on the same control: nothing runs.
 */
#define _GNU_SOURCE
#include "diff.h"

#define N 5
#define ROUNDS 4

static pthread_barrier_t bar;
static int serial[ROUNDS], zero[ROUNDS], other[ROUNDS];
static int arrived[ROUNDS], early;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;

static void *racer(void *arg)
{
    long id = (long)arg;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_mutex_lock(&m);
        arrived[r]++;
        if (r > 0 && arrived[r - 1] != N)
            early++;
        pthread_mutex_unlock(&m);
        if ((id + r) % 3 == 0)
            msleep(5);
        int rc = pthread_barrier_wait(&bar);
        pthread_mutex_lock(&m);
        if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
            serial[r]++;
        else if (rc == 0)
            zero[r]++;
        else
            other[r]++;
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int runs, done, saw_done;
static void init_routine(void)
{
    runs++;
    msleep(30);
    done = 1;
}

static void *oncer(void *arg)
{
    (void)arg;
    pthread_once(&once, init_routine);
    pthread_mutex_lock(&m);
    saw_done += done;
    pthread_mutex_unlock(&m);
    return NULL;
}

int main(void)
{
    diff_start(1);
    pthread_barrier_t b0;
    ERR("barrier_init count 0", pthread_barrier_init(&b0, NULL, 0));
    MUST0(pthread_barrier_init(&b0, NULL, 1));
    for (int i = 0; i < 3; i++)
        printf("barrier of 1: %s\n",
               pthread_barrier_wait(&b0) == PTHREAD_BARRIER_SERIAL_THREAD
                   ? "SERIAL"
                   : "not serial");
    ERR("barrier_destroy", pthread_barrier_destroy(&b0));

    MUST0(pthread_barrier_init(&bar, NULL, N));
    pthread_t t[8];
    for (long i = 0; i < N; i++)
        t[i] = spawn(racer, (void *)i);
    for (int i = 0; i < N; i++)
        join(t[i]);
    for (int r = 0; r < ROUNDS; r++)
        printf("round %d: %d SERIAL, %d zero, %d other\n", r, serial[r], zero[r],
               other[r]);
    printf("threads that started a round early: %d\n", early);
    ERR("barrier_destroy", pthread_barrier_destroy(&bar));

    for (int i = 0; i < 8; i++)
        t[i] = spawn(oncer, NULL);
    for (int i = 0; i < 8; i++)
        join(t[i]);
    printf("pthread_once from 8 threads: ran %d times, %d callers saw it done\n", runs,
           saw_done);
    ERR("pthread_once again", pthread_once(&once, init_routine));
    printf("ran %d times\n", runs);
    return 0;
}
