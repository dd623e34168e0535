/*
 * iovec_io: readv and writev with many buffers.
 *
 *   - writev of 1024 (IOV_MAX) iovecs of varying sizes, some empty, to a
 *     socketpair: the full count; readv of 777 iovecs on the other side
 *     fills them in order;
 *   - writev of 1025 iovecs: EINVAL; readv with iovcnt -1: EINVAL; with
 *     iovcnt 0: 0;
 *   - a thread's blocking writev of 300,000 bytes in 200 pieces to a
 *     socketpair (pipe_blocking does pipes), read by main in odd-sized readv calls: the
 * full count, the bytes intact;
 *   - a readv blocked in a thread on a TCP socket returns what one write
 *     delivered later (a short read across its iovecs);
 *   - readv of a closed fd: EBADF.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <sys/uio.h>

#include "diff.h"

#define BIGN 300000
static char src[BIGN], dst[BIGN];
static int p[2], c, s;
static long res;

static void *piece_writer(void *arg)
{
    (void)arg;
    struct iovec iov[200];
    size_t off = 0;
    for (int i = 0; i < 200; i++) {
        size_t n = i == 199 ? BIGN - off : 1000 + (size_t)(i * 37) % 1000;
        iov[i] = (struct iovec){src + off, n};
        off += n;
    }
    res = writev(p[1], iov, 200);
    return NULL;
}

static char rbuf[64];
static void *blocked_readv(void *arg)
{
    (void)arg;
    struct iovec iov[4] = {{rbuf, 3}, {rbuf + 3, 0}, {rbuf + 3, 5}, {rbuf + 8, 40}};
    res = readv(s, iov, 4);
    return NULL;
}

int main(void)
{
    diff_start(1);
    for (int i = 0; i < BIGN; i++)
        src[i] = (char)(i % 253);

    int sp[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    static struct iovec iov[IOV_MAX + 1];
    size_t off = 0;
    for (int i = 0; i <= IOV_MAX; i++) {
        size_t n = i % 10 == 3 ? 0 : (size_t)(i % 17) + 1;
        iov[i] = (struct iovec){src + off, n};
        off += n;
    }
    size_t total = 0;
    for (int i = 0; i < IOV_MAX; i++)
        total += iov[i].iov_len;
    printf("writev of %d iovecs carrying %zu bytes\n", IOV_MAX, total);
    SYS("writev", writev(sp[0], iov, IOV_MAX));
    SYS("writev of IOV_MAX + 1 iovecs", writev(sp[0], iov, IOV_MAX + 1));
    static struct iovec rv[777];
    size_t roff = 0;
    for (int i = 0; i < 777; i++) {
        size_t n = (size_t)(i % 5) + 1;
        rv[i] = (struct iovec){dst + roff, n};
        roff += n;
    }
    SYS("readv of 777 iovecs", readv(sp[1], rv, 777));
    size_t rest = total > roff ? total - roff : 0;
    struct iovec last = {dst + roff, rest + 100};
    SYS("readv of the rest", readv(sp[1], &last, 1));
    printf("bytes in order: %s\n", memcmp(src, dst, total) == 0 ? "yes" : "no");
    volatile int minus_one = -1;
    SYS("readv iovcnt -1", readv(sp[1], rv, minus_one));
    SYS("readv iovcnt 0", readv(sp[1], rv, 0));
    MUST(close(sp[0]));
    MUST(close(sp[1]));
    SYS("readv of a closed fd", readv(sp[1], rv, 1));

    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, p));
    memset(dst, 0, sizeof dst);
    pthread_t t = spawn(piece_writer, NULL);
    size_t got = 0;
    int calls = 0;
    while (got < BIGN) {
        size_t a = 1 + (size_t)(calls * 311) % 3000,
               b = 1 + (size_t)(calls * 71) % 2000;
        struct iovec two[2] = {{dst + got, a}, {dst + got + a, b}};
        if (got + a + b > BIGN) {
            two[0].iov_len = BIGN - got;
            two[1].iov_len = 0;
        }
        ssize_t k = readv(p[0], two, 2);
        if (k <= 0)
            break;
        got += (size_t)k;
        calls++;
    }
    join(t);
    printf("blocking writev of 200 pieces to a socketpair = %ld; read %zu bytes, %s\n",
           res, got, memcmp(src, dst, BIGN) == 0 ? "intact" : "CORRUPT");
    MUST(close(p[0]));
    MUST(close(p[1]));

    tcp_pair(&c, &s);
    t = spawn(blocked_readv, NULL);
    msleep(30);
    write_all(c, "0123456789ABCDEFGHIJ", 20);
    join(t);
    printf("blocked readv = %ld: %.20s\n", res, rbuf);
    MUST(close(c));
    MUST(close(s));
    return 0;
}
