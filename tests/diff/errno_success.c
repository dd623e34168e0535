/*
 * errno_success: calls that succeed leave errno as it was.
 *
 * libc's wrappers set errno only on failure, and code that checks errno
 * after a successful call (wrongly, but commonly, e.g. after a loop of
 * calls, or strtol-style "errno = 0; call; if (errno)") relies on it.
 * Here errno is set to EDOM before each call; the line says whether a
 * successful call changed it.  The calls are the ones that wait: a
 * blocking connect, a recv (plain, MSG_PEEK, MSG_WAITALL ended by EOF) or
 * accept that waits for a peer, a send that waits for room, a read of an
 * empty pipe, poll and nanosleep, and pthread waits (mutex, condition
 * variable, semaphore, join).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>

#include "diff.h"

static int c, s, lfd, p[2];
static sem_t sem;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready;

struct rec {
    const char *what;
    long r;
    int e;
};
static struct rec recs[32];
static int nrec;

static void note(const char *what, long r, int e)
{
    recs[nrec++] = (struct rec){what, r, e};
}

/* errno = EDOM; the call; then errno is read (in that order). */
#define NOTE(what, expr)                                                               \
    do {                                                                               \
        errno = EDOM;                                                                  \
        long note_r_ = (long)(expr);                                                   \
        note((what), note_r_, errno);                                                  \
    } while (0)

/* Runs in a thread: each waits for the main thread to act. */
static void *waiter(void *arg)
{
    char b[8192];
    switch ((int)(long)arg) {
    case 0: NOTE("recv that waited for data", recv(s, b, 16, 0)); break;
    case 1:
        NOTE("accept that waited for a connection",
             accept(lfd, NULL, NULL) >= 0 ? 0 : -1);
        break;
    case 2: NOTE("read of a pipe that waited for data", read(p[0], b, 16)); break;
    case 3: {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        NOTE("poll that waited for data", poll(&pf, 1, 2000));
        break;
    }
    case 4:
        NOTE("recv MSG_WAITALL ended by EOF", recv(s, b, sizeof b, MSG_WAITALL));
        break;
    case 5:
        NOTE("pthread_mutex_lock that waited", pthread_mutex_lock(&m));
        pthread_mutex_unlock(&m);
        break;
    case 6:
        pthread_mutex_lock(&m);
        errno = EDOM;
        while (!ready)
            pthread_cond_wait(&cv, &m);
        note("pthread_cond_wait that waited", 0, errno);
        pthread_mutex_unlock(&m);
        break;
    case 7: NOTE("sem_wait that waited", sem_wait(&sem)); break;
    case 8:
        NOTE("recv MSG_PEEK that waited for data", recv(s, b, 16, MSG_PEEK));
        (void)!recv(s, b, 16, 0);
        break;
    case 9:
        NOTE("recv MSG_WAITALL of 3000, 2500 sent in pieces, then EOF",
             recv(s, b, 3000, MSG_WAITALL));
        break;
    case 10:
        NOTE("recv that waited, after an EAGAIN while O_NONBLOCK was set",
             recv(s, b, 16, 0));
        break;
    }
    return NULL;
}

static void *slow_exit(void *arg)
{
    (void)arg;
    msleep(30);
    return NULL;
}

static void run(int which, void (*act)(void))
{
    pthread_t t = spawn(waiter, (void *)(long)which);
    msleep(30);
    act();
    join(t);
}

static void send_some(void)
{
    write_all(c, "data", 4);
}
static void connect_one(void)
{
    close(tcp_connect(port_of(lfd)));
}
static void pipe_some(void)
{
    write_all(p[1], "data", 4);
}
static void pipe_drain(void)
{
    char b[8];
    (void)!read(p[0], b, sizeof b);
}
static void send_close(void)
{
    write_all(c, "abc", 3);
    shutdown(c, SHUT_WR);
}
static void send_pieces(void)
{
    char piece[1000];
    memset(piece, 'x', sizeof piece);
    write_all(c, piece, 1000);
    msleep(20);
    write_all(c, piece, 1000);
    msleep(20);
    write_all(c, piece, 500);
    shutdown(c, SHUT_WR);
}
static void unlock_m(void)
{
    pthread_mutex_unlock(&m);
}
static void signal_cv(void)
{
    pthread_mutex_lock(&m);
    ready = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&m);
}
static void post_sem(void)
{
    sem_post(&sem);
}

int main(void)
{
    diff_start(1);
    errno_kept_checked = 1;
    unsigned short port;
    lfd = tcp_listener(&port, 8);
    c = (int)MUST(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = loopback(port);
    SYS("blocking connect to a listener", connect(c, (struct sockaddr *)&a, sizeof a));
    s = (int)MUST(accept(lfd, NULL, NULL));
    MUST(pipe(p));
    MUST(sem_init(&sem, 0, 0));

    run(0, send_some);
    run(1, connect_one);
    run(2, pipe_some);
    run(3, pipe_some);
    pipe_drain();
    run(4, send_close);
    MUST(close(c));
    MUST(close(s));
    tcp_pair(&c, &s);
    run(8, send_some);
    run(9, send_pieces);
    MUST(close(c));
    MUST(close(s));
    tcp_pair(&c, &s);
    int fl = (int)MUST(fcntl(s, F_GETFL));
    MUST(fcntl(s, F_SETFL, fl | O_NONBLOCK));
    char b[4];
    if (recv(s, b, sizeof b, 0) != -1 || errno != EAGAIN)
        printf("recv on an empty non-blocking socket: not EAGAIN?\n");
    MUST(fcntl(s, F_SETFL, fl));
    run(10, send_some);
    pthread_mutex_lock(&m);
    run(5, unlock_m);
    run(6, signal_cv);
    run(7, post_sem);
    for (int i = 0; i < nrec; i++) {
        if (recs[i].r == -1)
            printf("%s = -1 %s\n", recs[i].what, ename(recs[i].e));
        else
            printf("%s = %ld, errno %s\n", recs[i].what, recs[i].r,
                   recs[i].e == EDOM ? "kept" : ename(recs[i].e));
    }

    int sp[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    static char big[1 << 20];
    pthread_t t = spawn(slow_exit, NULL);
    SYS("pthread_join that waited", pthread_join(t, NULL));
    SYS("nanosleep 20 ms", nanosleep(&(struct timespec){0, 20000000}, NULL));
    SYS("usleep 20 ms", usleep(20000));
    SYS("send of 1 MB on a socketpair nobody reads, SO_SNDTIMEO 50 ms",
        (setsockopt(sp[0], SOL_SOCKET, SO_SNDTIMEO, &(struct timeval){0, 50000},
                    sizeof(struct timeval)),
         send(sp[0], big, sizeof big, 0)) > 0
            ? 1
            : -1);
    return 0;
}
