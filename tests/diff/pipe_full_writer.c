/*
 * pipe_full_writer: a thread's write larger than the pipe's capacity,
 * while nobody reads, and then the reader closes (SIGPIPE ignored).
 *
 *   - the pipe fills (65536 bytes) and the writer waits; the main thread
 *     goes on sleeping and polling meanwhile;
 *   - when the reader closes, the waiting 100,000-byte write returns the
 *     partial count, and the next write is EPIPE.
 */
#define _GNU_SOURCE
#include <sys/ioctl.h>

#include "diff.h"

static char big[100000];
static int p[2];
static long wres;
static int werr;

static void *blocked_writer(void *arg)
{
    (void)arg;
    errno = 0;
    wres = write(p[1], big, sizeof big);
    werr = errno;
    return NULL;
}

int main(void)
{
    diff_start(1);
    signal(SIGPIPE, SIG_IGN);
    MUST(pipe(p));
    pthread_t t = spawn(blocked_writer, NULL);
    int last = -1, same = 0, n = 0;
    for (int i = 0; i < 200 && same < 3; i++) {
        msleep(10);
        MUST(ioctl(p[0], FIONREAD, &n));
        same = n == last && n > 0 ? same + 1 : 0;
        last = n;
    }
    printf("the pipe holds %d bytes while the writer waits\n", n);
    MUST(close(p[0]));
    join(t);
    printf("the waiting write after the reader closed = %ld%s%s\n", wres,
           wres < 0 ? " " : "", wres < 0 ? ename(werr) : "");
    char c = 'x';
    SYS("next write", write(p[1], &c, 1));
    MUST(close(p[1]));
    return 0;
}
