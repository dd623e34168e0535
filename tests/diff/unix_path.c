/*
 * unix_path: AF_UNIX stream sockets bound to a path and in the abstract
 * namespace.
 *
 *   - connect to a path nobody bound: ENOENT; to a socket bound but not
 *     listening: ECONNREFUSED; bind to a path in use: EADDRINUSE;
 *   - a thread blocked in accept gets the connection; getpeername of the
 *     client's end names the server's path; data flows both ways;
 *   - a listener with backlog 1 and three clients: the extra connects
 *     made non-blocking give EAGAIN once the backlog is full; a blocking
 *     connect then waits until an accept makes room, and succeeds; one
 *     with SO_SNDTIMEO 100 ms gives EAGAIN after that time; a signal
 *     handler (without SA_RESTART) interrupts one without: EINTR;
 *   - abstract names: bind, connect, and EADDRINUSE likewise.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "diff.h"

static int lfd;
static long res;

static void *acceptor(void *arg)
{
    (void)arg;
    res = accept(lfd, NULL, NULL);
    return NULL;
}

static struct sockaddr_un *conn_addr;
static socklen_t conn_len;
static long cres;
static int cerr, cfd = -1;

static void *blocking_connect(void *arg)
{
    (void)arg;
    cfd = socket(AF_UNIX, SOCK_STREAM, 0);
    errno = 0;
    cres = connect(cfd, (struct sockaddr *)conn_addr, conn_len);
    cerr = errno;
    return NULL;
}

static socklen_t path_addr(struct sockaddr_un *a, const char *path, int abstract)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (abstract) {
        snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "%s", path);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path));
    }
    snprintf(a->sun_path, sizeof a->sun_path, "%s", path);
    return (socklen_t)sizeof *a;
}

static void run(const char *label, const char *name, int abstract)
{
    printf("-- %s\n", label);
    struct sockaddr_un a;
    socklen_t alen = path_addr(&a, name, abstract);
    int c = (int)MUST(socket(AF_UNIX, SOCK_STREAM, 0));
    SYS("connect to a name nobody bound", connect(c, (struct sockaddr *)&a, alen));
    MUST(close(c));
    lfd = (int)MUST(socket(AF_UNIX, SOCK_STREAM, 0));
    SYS("bind", bind(lfd, (struct sockaddr *)&a, alen));
    c = (int)MUST(socket(AF_UNIX, SOCK_STREAM, 0));
    SYS("connect to a bound socket that does not listen",
        connect(c, (struct sockaddr *)&a, alen));
    MUST(close(c));
    int other = (int)MUST(socket(AF_UNIX, SOCK_STREAM, 0));
    SYS("bind of another socket to the same name",
        bind(other, (struct sockaddr *)&a, alen));
    MUST(close(other));
    SYS("listen", listen(lfd, 1));

    pthread_t t = spawn(acceptor, NULL);
    msleep(30);
    c = (int)MUST(socket(AF_UNIX, SOCK_STREAM, 0));
    SYS("connect to the listener", connect(c, (struct sockaddr *)&a, alen));
    join(t);
    int s = (int)res;
    printf("blocked accept: %s\n", s >= 0 ? "a socket" : ename(errno));
    struct sockaddr_un peer;
    socklen_t plen = sizeof peer;
    MUST(getpeername(c, (struct sockaddr *)&peer, &plen));
    int same = abstract ? plen == alen && memcmp(&peer, &a, alen) == 0
                        : strcmp(peer.sun_path, a.sun_path) == 0;
    printf("client's peer is the listener's name: %s\n", same ? "yes" : "no");
    char b[16];
    SYS("send", send(c, "hello", 5, 0));
    SYS("recv", recv(s, b, sizeof b, 0));
    SYS("send back", send(s, "world!", 6, 0));
    SYS("recv", recv(c, b, sizeof b, 0));
    MUST(close(s));
    MUST(close(c));

    int q[4], queued = 0, refused = 0;
    for (int i = 0; i < 4; i++) {
        q[i] = (int)MUST(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
        if (connect(q[i], (struct sockaddr *)&a, alen) == 0)
            queued++;
        else if (errno == EAGAIN)
            refused++;
        else
            printf("non-blocking connect %d: %s\n", i, ename(errno));
    }
    printf("4 non-blocking connects to a backlog of 1: %d queued, %d EAGAIN\n", queued,
           refused);

    /* With SO_SNDTIMEO, it gives up when the time runs out. */
    int tc = (int)MUST(socket(AF_UNIX, SOCK_STREAM, 0));
    struct timeval tv = {0, 100000};
    MUST(setsockopt(tc, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    double t0 = now_ms();
    SYS("blocking connect to the full backlog, SO_SNDTIMEO 100 ms",
        connect(tc, (struct sockaddr *)&a, alen));
    elapsed("  and it", t0, 90, 550);
    MUST(close(tc));
    tc = (int)MUST(socket(AF_UNIX, SOCK_STREAM, 0));
    GSYS("blocking connect to the full backlog, a signal handler runs",
         connect(tc, (struct sockaddr *)&a, alen));
    MUST(close(tc));

    /* A blocking connect to the full backlog waits until an accept makes
     * room. */
    conn_addr = &a;
    conn_len = alen;
    t = spawn(blocking_connect, NULL);
    msleep(40);
    for (int i = 0; i < 2; i++) {
        s = (int)MUST(accept(lfd, NULL, NULL));
        MUST(close(s));
    }
    join(t);
    printf("blocking connect to the full backlog, accepted 40 ms later = %ld %s\n",
           cres, cres < 0 ? ename(cerr) : "");
    for (int i = 0; i < 4; i++)
        MUST(close(q[i]));
    if (cfd >= 0)
        MUST(close(cfd));
    MUST(close(lfd));
}

int main(void)
{
    diff_start(1);
    char dir[] = "/tmp/unb-diff-XXXXXX";
    if (!mkdtemp(dir)) {
        printf("SETUP FAILED: mkdtemp: %s\n", ename(errno));
        return 99;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/sock", dir);
    run("a path", path, 0);
    unlink(path);
    rmdir(dir);
    char abstract[64];
    snprintf(abstract, sizeof abstract, "unb-diff-%ld", (long)getpid());
    run("an abstract name", abstract, 1);
    return 0;
}
