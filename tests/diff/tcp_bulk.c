/*
 * tcp_bulk: 16 MB each way over one TCP loopback connection at once.
 *
 *   - each side has a writer thread doing blocking writes of 1 MB (each
 *     returns 1 MB: a blocking write writes everything) and a reader
 *     thread reading in 7,777-byte pieces; neither side reads until its
 *     own writer has started, so both directions fill up at once;
 *   - the checksums of what each side received equal those of what the
 *     other sent; each reader ends on EOF after the peer's shutdown.
 */
#define _GNU_SOURCE
#include "diff.h"

#define CHUNK (1 << 20)
#define CHUNKS 16

struct side {
    int fd;
    unsigned seed;
    unsigned long sent_sum, got_sum;
    long got, short_writes;
};

static void fill(char *b, size_t n, unsigned seed, int k)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (char)((i * 2654435761u) >> 13 ^ seed ^ (unsigned)k);
}

static void *writer(void *arg)
{
    struct side *s = arg;
    char *b = malloc(CHUNK);
    unsigned long h = FNV_INIT;
    for (int k = 0; k < CHUNKS; k++) {
        fill(b, CHUNK, s->seed, k);
        h = fnv(b, CHUNK, h);
        ssize_t n = write(s->fd, b, CHUNK);
        if (n != CHUNK) {
            s->short_writes++;
            if (n > 0)
                write_all(s->fd, b + n, (size_t)(CHUNK - n));
            else
                break;
        }
    }
    s->sent_sum = h;
    shutdown(s->fd, SHUT_WR);
    free(b);
    return NULL;
}

static void *reader(void *arg)
{
    struct side *s = arg;
    char b[7777];
    unsigned long h = FNV_INIT;
    for (;;) {
        ssize_t n = read(s->fd, b, sizeof b);
        if (n <= 0)
            break;
        h = fnv(b, (size_t)n, h);
        s->got += n;
    }
    s->got_sum = h;
    return NULL;
}

int main(void)
{
    diff_start(1);
    struct side a = {.seed = 1}, b = {.seed = 2};
    tcp_pair(&a.fd, &b.fd);
    pthread_t wa = spawn(writer, &a), wb = spawn(writer, &b);
    msleep(20);
    pthread_t ra = spawn(reader, &a), rb = spawn(reader, &b);
    join(wa);
    join(wb);
    join(ra);
    join(rb);
    printf("a -> b: %ld bytes, checksums %s, short writes %ld\n", b.got,
           b.got_sum == a.sent_sum ? "equal" : "DIFFER", a.short_writes);
    printf("b -> a: %ld bytes, checksums %s, short writes %ld\n", a.got,
           a.got_sum == b.sent_sum ? "equal" : "DIFFER", b.short_writes);
    return 0;
}
