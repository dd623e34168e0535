/*
 * pipe_blocking: a blocking pipe between threads.
 *
 *   - a reader thread blocked on an empty pipe gets the bytes written later;
 *   - one 200,000-byte write (three times the pipe's capacity) completes
 *     while the other side reads it in odd-sized pieces, and returns the
 *     full count; the bytes arrive intact and in order;
 *   - EOF: read returns 0 once the write end is closed and drained, and
 *     again on every later call;
 *   - a read of 0 bytes returns 0 at once, on an empty pipe too.
 */
#define _GNU_SOURCE
#include "diff.h"

#define BIG 200000

static int p[2];
static char big[BIG], got[BIG];
static long write_result;

static void *late_writer(void *arg)
{
    (void)arg;
    msleep(50);
    write_all(p[1], "late", 4);
    return NULL;
}

static void *big_writer(void *arg)
{
    (void)arg;
    write_result = write(p[1], big, BIG);
    return NULL;
}

int main(void)
{
    diff_start(1);
    char buf[64];
    MUST(pipe(p));

    SYS("read of 0 bytes on an empty pipe", read(p[0], buf, 0));

    pthread_t t = spawn(late_writer, NULL);
    SYS("read blocked until a late write", read(p[0], buf, sizeof buf));
    printf("data: %.4s\n", buf);
    join(t);

    for (int i = 0; i < BIG; i++)
        big[i] = (char)(i * 7 + i / 251);
    t = spawn(big_writer, NULL);
    size_t total = 0;
    int reads = 0;
    while (total < BIG) {
        size_t want = 1 + (size_t)(reads * 1237) % 9000;
        if (want > BIG - total)
            want = BIG - total;
        ssize_t k = read(p[0], got + total, want);
        if (k <= 0) {
            printf("read during the big write = %zd %s\n", k, ename(errno));
            break;
        }
        total += (size_t)k;
        reads++;
    }
    join(t);
    printf("big write returned %ld\n", write_result);
    printf("read %zu bytes, %s\n", total,
           memcmp(big, got, BIG) == 0 ? "intact" : "CORRUPT");

    write_all(p[1], "tail", 4);
    MUST(close(p[1]));
    SYS("read of the tail after close of the write end", read(p[0], buf, sizeof buf));
    SYS("read at EOF", read(p[0], buf, sizeof buf));
    SYS("read at EOF again", read(p[0], buf, sizeof buf));
    MUST(close(p[0]));
    return 0;
}
