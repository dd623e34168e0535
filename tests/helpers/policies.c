/*
 * policies: the scheduling policy of each of the process's OS threads.  An
 * ordinary pthread program, never linked with libunblock, for
 * tests/test_launcher.sh.
 *
 * Starts 4 threads that sleep 50 ms each (under the preload the second
 * coroutine starts the runtime's other workers and its monitor), waits
 * 20 ms, and prints one line for the threads other than the first:
 *
 *     batch N monitor POLICY
 *
 * N counts the threads whose policy is SCHED_BATCH (the runtime's monitor
 * thread excluded), POLICY is the monitor's ("none" without one); then,
 * on a second line, `main POLICY`: what sched_getscheduler(0) says in
 * main.  Policies print as batch, other, fifo, rr, idle or a number.
 * (Threads of other policies are not counted: how many there are depends
 * on the build, a sanitizer's runtime has one of its own.)  Exit status
 * 0, or 1 when a call failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 4

static void *nap(void *arg)
{
    usleep(50000);
    return arg;
}

static const char *policy_name(int p)
{
    static char num[16];
    switch (p) {
    case SCHED_OTHER: return "other";
    case SCHED_BATCH: return "batch";
    case SCHED_FIFO: return "fifo";
    case SCHED_RR: return "rr";
    case SCHED_IDLE: return "idle";
    }
    snprintf(num, sizeof num, "%d", p);
    return num;
}

int main(void)
{
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, nap, NULL) != 0) {
            perror("policies: pthread_create");
            return 1;
        }
    usleep(20000);

    int batch = 0, monitor = -1;
    DIR *d = opendir("/proc/self/task");
    if (!d) {
        perror("policies: /proc/self/task");
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid <= 0 || tid == getpid())
            continue;
        char path[64], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tid);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = 0;
            fclose(f);
        }
        int p = sched_getscheduler(tid);
        if (p < 0)
            continue; /* it ended meanwhile */
        if (strncmp(comm, "unblock-monitor", 15) == 0)
            monitor = p;
        else if (p == SCHED_BATCH)
            batch++;
    }
    closedir(d);
    printf("batch %d monitor %s\n", batch, monitor < 0 ? "none" : policy_name(monitor));
    printf("main %s\n", policy_name(sched_getscheduler(0)));
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    return 0;
}
