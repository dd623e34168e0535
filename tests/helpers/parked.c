/*
 * parked: an ordinary pthread program, never linked with libunblock, for
 * tests/test_dump.sh.  Five threads each block in a different call and stay
 * there:
 *
 *   reader    read() of a pipe nobody writes to
 *   locker    pthread_mutex_lock() of a mutex main holds
 *   waiter    pthread_cond_wait() on a condition nobody signals
 *   sleeper   nanosleep() of 60 s
 *   acceptor  accept() on a listening loopback socket nobody connects to
 *   spinner   a loop without calls, until main sees EOF
 *
 * Each blocks inside a function of its own (wait_in_*), so a backtrace of
 * it shows that function above the thread's start routine.  Then main
 * prints one line, "ready READ_FD MUTEX_ADDRESS LISTEN_FD", and reads its
 * stdin until EOF, when it exits 0 (taking the blocked threads with it).
 * Built with frame pointers and -rdynamic, so that backtraces go through
 * its frames and name its functions.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int pipe_fds[2];
static int listen_fd;
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cond_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static _Atomic int done; /* main sets it, the spinner polls it: atomic */

#define BLOCKER __attribute__((noinline, used))

BLOCKER void wait_in_read(void)
{
    char c;
    if (read(pipe_fds[0], &c, 1) != 0)
        perror("parked: read");
}

BLOCKER void wait_in_lock(void)
{
    pthread_mutex_lock(&held);
    pthread_mutex_unlock(&held);
}

BLOCKER void wait_in_cond(void)
{
    pthread_mutex_lock(&cond_lock);
    pthread_cond_wait(&never, &cond_lock);
    pthread_mutex_unlock(&cond_lock);
}

BLOCKER void wait_in_sleep(void)
{
    struct timespec ts = {60, 0};
    nanosleep(&ts, NULL);
}

BLOCKER void wait_in_accept(void)
{
    int fd = accept(listen_fd, NULL, NULL);
    if (fd >= 0)
        close(fd);
}

BLOCKER void *spinner_main(void *arg)
{
    while (!atomic_load_explicit(&done, memory_order_relaxed))
        ;
    return arg;
}

BLOCKER void *reader_main(void *arg)
{
    wait_in_read();
    return arg;
}

BLOCKER void *locker_main(void *arg)
{
    wait_in_lock();
    return arg;
}

BLOCKER void *waiter_main(void *arg)
{
    wait_in_cond();
    return arg;
}

BLOCKER void *sleeper_main(void *arg)
{
    wait_in_sleep();
    return arg;
}

BLOCKER void *acceptor_main(void *arg)
{
    wait_in_accept();
    return arg;
}

int main(void)
{
    if (pipe(pipe_fds) != 0) {
        perror("parked: pipe");
        return 1;
    }
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listen_fd, 4) != 0) {
        perror("parked: socket");
        return 1;
    }
    pthread_mutex_lock(&held);
    void *(*mains[])(void *) = {reader_main, locker_main, waiter_main, sleeper_main,
                                acceptor_main, spinner_main};
    for (size_t i = 0; i < sizeof mains / sizeof mains[0]; i++) {
        pthread_t t;
        int e = pthread_create(&t, NULL, mains[i], NULL);
        if (e != 0) {
            fprintf(stderr, "parked: pthread_create: %s\n", strerror(e));
            return 1;
        }
        pthread_detach(t);
    }
    usleep(100 * 1000); /* let them all reach their calls */
    printf("ready %d %p %d\n", pipe_fds[0], (void *)&held, listen_fd);
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0)
        ;
    done = 1;
    return 0;
}
