/*
 * cond_clock: condition variables and their clocks.
 *
 *   - condattr_setclock(CLOCK_MONOTONIC) reads back; CLOCK_PROCESS_CPUTIME_ID
 *     is EINVAL;
 *   - timedwait on a CLOCK_MONOTONIC condvar, deadline 60 ms ahead on the
 *     monotonic clock: ETIMEDOUT after about 60 ms, the mutex held again
 *     (trylock from another thread EBUSY);
 *   - a deadline in the past: ETIMEDOUT at once; tv_nsec -1 or 1e9: EINVAL;
 *   - a realtime condvar with a realtime deadline: ETIMEDOUT likewise;
 *     pthread_cond_clockwait with CLOCK_MONOTONIC: ETIMEDOUT; with
 *     CLOCK_PROCESS_CPUTIME_ID: EINVAL;
 *   - a signal 30 ms into a 2 s timedwait: 0, well before the deadline;
 *   - broadcast wakes all of 6 waiters; signal wakes one at a time (each
 *     wait returns once per signal, counted under the mutex).
 */
#define _GNU_SOURCE
#include "diff.h"

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mono, rt = PTHREAD_COND_INITIALIZER;
static int flag, woken, tickets;

static void *signaler(void *arg)
{
    (void)arg;
    msleep(30);
    pthread_mutex_lock(&m);
    flag = 1;
    pthread_cond_signal(&mono);
    pthread_mutex_unlock(&m);
    return NULL;
}

static int trylock_res;
static void *try_m(void *arg)
{
    (void)arg;
    trylock_res = pthread_mutex_trylock(&m);
    if (trylock_res == 0)
        pthread_mutex_unlock(&m);
    return NULL;
}

static void *waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m);
    while (tickets == 0)
        pthread_cond_wait(&rt, &m);
    tickets--;
    woken++;
    pthread_mutex_unlock(&m);
    return NULL;
}

static int count_woken(void)
{
    pthread_mutex_lock(&m);
    int w = woken;
    pthread_mutex_unlock(&m);
    return w;
}

int main(void)
{
    diff_start(1);
    pthread_condattr_t ca;
    MUST0(pthread_condattr_init(&ca));
    ERR("condattr_setclock CLOCK_PROCESS_CPUTIME_ID",
        pthread_condattr_setclock(&ca, CLOCK_PROCESS_CPUTIME_ID));
    ERR("condattr_setclock CLOCK_MONOTONIC",
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC));
    clockid_t clk = -1;
    MUST0(pthread_condattr_getclock(&ca, &clk));
    printf("  reads back CLOCK_MONOTONIC: %s\n", clk == CLOCK_MONOTONIC ? "yes" : "no");
    MUST0(pthread_cond_init(&mono, &ca));
    MUST0(pthread_condattr_destroy(&ca));

    pthread_mutex_lock(&m);
    struct timespec dl = ts_in(CLOCK_MONOTONIC, 60);
    double t0 = now_ms();
    ERR("timedwait, monotonic deadline +60 ms", pthread_cond_timedwait(&mono, &m, &dl));
    elapsed("  and it", t0, 55, 1500);
    join(spawn(try_m, NULL));
    printf("  mutex held again (trylock elsewhere): %s\n", ename(trylock_res));
    dl = ts_in(CLOCK_MONOTONIC, -1000);
    t0 = now_ms();
    ERR("timedwait, deadline 1 s ago", pthread_cond_timedwait(&mono, &m, &dl));
    elapsed("  and it", t0, 0, 200);
    dl = ts_in(CLOCK_MONOTONIC, 100);
    dl.tv_nsec = 1000000000;
    ERR("timedwait, tv_nsec 1e9", pthread_cond_timedwait(&mono, &m, &dl));
    dl.tv_nsec = -1;
    ERR("timedwait, tv_nsec -1", pthread_cond_timedwait(&mono, &m, &dl));

    dl = ts_in(CLOCK_REALTIME, 60);
    t0 = now_ms();
    ERR("realtime condvar, realtime deadline +60 ms",
        pthread_cond_timedwait(&rt, &m, &dl));
    elapsed("  and it", t0, 55, 1500);
    dl = ts_in(CLOCK_MONOTONIC, 60);
    t0 = now_ms();
    ERR("clockwait CLOCK_MONOTONIC +60 ms",
        pthread_cond_clockwait(&rt, &m, CLOCK_MONOTONIC, &dl));
    elapsed("  and it", t0, 55, 1500);
    ERR("clockwait CLOCK_PROCESS_CPUTIME_ID",
        pthread_cond_clockwait(&rt, &m, CLOCK_PROCESS_CPUTIME_ID, &dl));

    pthread_t t = spawn(signaler, NULL);
    dl = ts_in(CLOCK_MONOTONIC, 2000);
    t0 = now_ms();
    int r = 0;
    while (!flag && r == 0)
        r = pthread_cond_timedwait(&mono, &m, &dl);
    printf("timedwait 2 s, signalled at 30 ms = %s, flag %d\n", ename(r), flag);
    elapsed("  and it", t0, 20, 1500);
    pthread_mutex_unlock(&m);
    join(t);

    pthread_t w[6];
    for (int i = 0; i < 6; i++)
        w[i] = spawn(waiter, NULL);
    msleep(30);
    for (int i = 0; i < 3; i++) {
        pthread_mutex_lock(&m);
        tickets++;
        pthread_cond_signal(&rt);
        pthread_mutex_unlock(&m);
        for (int k = 0; k < 200 && count_woken() < i + 1; k++)
            msleep(2);
        printf("after signal %d: %d woken\n", i + 1, count_woken());
    }
    pthread_mutex_lock(&m);
    tickets += 3;
    pthread_cond_broadcast(&rt);
    pthread_mutex_unlock(&m);
    for (int i = 0; i < 6; i++)
        join(w[i]);
    printf("after broadcast: %d woken\n", woken);
    return 0;
}
