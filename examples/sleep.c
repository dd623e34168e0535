/*
 * sleep: five coroutines each sleep 500 ms with the ordinary sleep call.
 * On threads-as-coroutines the program ends after about 500 ms, not 2.5 s,
 * and uses no thread per sleeper.
 *
 *   build/examples/sleep
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unblock.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *sleeper(void *arg)
{
    double t0 = now();
    usleep(500 * 1000); /* parks this coroutine, not the thread */
    printf("coroutine %d slept %.0f ms\n", (int)(intptr_t)arg, (now() - t0) * 1e3);
    return NULL;
}

int main(void)
{
    enum { N = 5 };
    unb_coro_t *co[N];
    double t0 = now();
    for (int i = 0; i < N; i++) {
        co[i] = unb_spawn(sleeper, (void *)(intptr_t)i);
        if (!co[i]) {
            perror("unb_spawn");
            return 1;
        }
    }
    for (int i = 0; i < N; i++)
        unb_join(co[i], NULL);
    unb_stats_t st;
    unb_stats(&st);
    printf("%d coroutines slept 500 ms each in %.0f ms on %llu worker threads\n", N,
           (now() - t0) * 1e3, (unsigned long long)st.workers);
    return 0;
}
