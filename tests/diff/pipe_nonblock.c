/*
 * pipe_nonblock: a pipe the program made non-blocking never waits.
 *
 *   - pipe2(O_NONBLOCK): F_GETFL shows it; a read of the empty pipe is
 *     EAGAIN; writes fill it (65536 bytes by default) and then give EAGAIN;
 *     after a read frees two pages, a large write is partial; a write of
 *     PIPE_BUF bytes that does not fit whole is EAGAIN (atomicity);
 *   - fcntl(F_SETFL, O_NONBLOCK) on a blocking pipe: EAGAIN at once; after
 *     clearing it, a read waits for a late writer again;
 *   - ioctl(FIONBIO) likewise, seen through F_GETFL;
 *   - a non-blocking read after the writer closed is 0 (EOF), not EAGAIN.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <sys/ioctl.h>

#include "diff.h"

static char buf[200000];
static int late_fd;

static void *late_writer(void *arg)
{
    (void)arg;
    msleep(50);
    write_all(late_fd, "late", 4);
    return NULL;
}

static void show_flags(const char *what, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    printf("%s: F_GETFL %s%s\n", what,
           (fl & O_ACCMODE) == O_RDONLY ? "O_RDONLY" : "O_WRONLY",
           fl & O_NONBLOCK ? "|O_NONBLOCK" : "");
}

int main(void)
{
    diff_start(1);
    int p[2];
    MUST(pipe2(p, O_NONBLOCK));
    show_flags("pipe2 read end", p[0]);
    show_flags("pipe2 write end", p[1]);
    SYS("read of the empty non-blocking pipe", read(p[0], buf, 10));

    long total = 0, r;
    int writes = 0;
    while ((r = write(p[1], buf, 4096)) > 0 && writes < 1000) {
        total += r;
        writes++;
    }
    printf("filled with %d writes, %ld bytes, then %s\n", writes, total,
           r < 0 ? ename(errno) : "no error");
    SYS("write of 1 byte to the full pipe", write(p[1], buf, 1));
    SYS("read of 5000 bytes", read(p[0], buf, 5000));
    SYS("write of PIPE_BUF bytes into the free page", write(p[1], buf, PIPE_BUF));
    SYS("write of 1 byte to the full pipe", write(p[1], buf, 1));
    SYS("read of 10000 bytes", read(p[0], buf, 10000));
    SYS("write of 100000 bytes with two pages free", write(p[1], buf, 100000));
    SYS("write again", write(p[1], buf, 100000));
    SYS("read of 100 bytes", read(p[0], buf, 100));
    SYS("write of PIPE_BUF bytes that do not fit whole", write(p[1], buf, PIPE_BUF));
    MUST(close(p[1]));
    long drained = 0;
    while ((r = read(p[0], buf, sizeof buf)) > 0)
        drained += r;
    printf("drained %ld bytes, then read = %ld %s\n", drained, r,
           r < 0 ? ename(errno) : "");
    MUST(close(p[0]));

    /* O_NONBLOCK set and cleared with fcntl on a blocking pipe. */
    MUST(pipe(p));
    show_flags("pipe read end", p[0]);
    int fl = (int)MUST(fcntl(p[0], F_GETFL));
    SYS("F_SETFL O_NONBLOCK", fcntl(p[0], F_SETFL, fl | O_NONBLOCK));
    show_flags("after F_SETFL", p[0]);
    SYS("read of the empty pipe", read(p[0], buf, 10));
    SYS("F_SETFL without O_NONBLOCK", fcntl(p[0], F_SETFL, fl & ~O_NONBLOCK));
    show_flags("after clearing", p[0]);
    late_fd = p[1];
    pthread_t t = spawn(late_writer, NULL);
    SYS("read waits for the late writer", read(p[0], buf, 10));
    join(t);

    /* FIONBIO. */
    int on = 1, off = 0;
    SYS("ioctl FIONBIO 1", ioctl(p[0], FIONBIO, &on));
    show_flags("after FIONBIO 1", p[0]);
    SYS("read of the empty pipe", read(p[0], buf, 10));
    SYS("ioctl FIONBIO 0", ioctl(p[0], FIONBIO, &off));
    show_flags("after FIONBIO 0", p[0]);
    t = spawn(late_writer, NULL);
    SYS("read waits for the late writer", read(p[0], buf, 10));
    join(t);

    /* EOF on a non-blocking read end. */
    SYS("F_SETFL O_NONBLOCK", fcntl(p[0], F_SETFL, fl | O_NONBLOCK));
    MUST(close(p[1]));
    SYS("non-blocking read after the writer closed", read(p[0], buf, 10));
    MUST(close(p[0]));
    return 0;
}
