/*
 * pipe_workers: 8 threads share one pipe: 4 producers write fixed-size
 * records (atomic: smaller than PIPE_BUF), 4 consumers read them.
 *
 *   - each producer writes 3000 records of 32 bytes (its id, a sequence
 *     number, a checksum); consumers read exactly one record per read;
 *   - records arrive whole (reads of 32 bytes return 32), none lost or
 *     duplicated, and each producer's records are seen in order by each
 *     consumer; after the producers finish, main closes the write end
 *     and every consumer ends on EOF.
 */
#define _GNU_SOURCE
#include <stddef.h>

#include "diff.h"

#define PRODUCERS 4
#define CONSUMERS 4
#define RECORDS 3000

struct rec {
    unsigned producer, seq;
    unsigned long sum;
    char pad[16];
};
_Static_assert(sizeof(struct rec) == 32, "record size");

static int p[2];
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long seen[PRODUCERS], torn, bad_sum, out_of_order, eofs;
static unsigned char got[PRODUCERS][RECORDS];

static void *producer(void *arg)
{
    unsigned id = (unsigned)(long)arg;
    for (unsigned i = 0; i < RECORDS; i++) {
        struct rec r;
        memset(&r, 0, sizeof r);
        r.producer = id;
        r.seq = i;
        r.sum = fnv(&r, offsetof(struct rec, sum), FNV_INIT);
        write_all(p[1], &r, sizeof r);
        if (i % 500 == 499)
            msleep(1);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    long last[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        last[i] = -1;
    for (;;) {
        struct rec r;
        ssize_t n = read(p[0], &r, sizeof r);
        pthread_mutex_lock(&m);
        if (n == 0) {
            eofs++;
            pthread_mutex_unlock(&m);
            break;
        }
        if (n != (ssize_t)sizeof r) {
            torn++;
            pthread_mutex_unlock(&m);
            break;
        }
        if (r.producer >= PRODUCERS || r.seq >= RECORDS ||
            r.sum != fnv(&r, offsetof(struct rec, sum), FNV_INIT)) {
            bad_sum++;
        } else {
            seen[r.producer]++;
            got[r.producer][r.seq]++;
            if ((long)r.seq <= last[r.producer])
                out_of_order++;
            last[r.producer] = r.seq;
        }
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

int main(void)
{
    diff_start(1);
    MUST(pipe(p));
    pthread_t pt[PRODUCERS], ct[CONSUMERS];
    for (long i = 0; i < CONSUMERS; i++)
        ct[i] = spawn(consumer, (void *)i);
    for (long i = 0; i < PRODUCERS; i++)
        pt[i] = spawn(producer, (void *)i);
    for (int i = 0; i < PRODUCERS; i++)
        join(pt[i]);
    MUST(close(p[1]));
    for (int i = 0; i < CONSUMERS; i++)
        join(ct[i]);
    long missing = 0, dup = 0;
    for (int i = 0; i < PRODUCERS; i++)
        for (int k = 0; k < RECORDS; k++) {
            missing += got[i][k] == 0;
            dup += got[i][k] > 1;
        }
    for (int i = 0; i < PRODUCERS; i++)
        printf("producer %d: %ld records seen\n", i, seen[i]);
    printf("missing %ld, duplicated %ld, torn %ld, bad %ld, out of order %ld\n",
           missing, dup, torn, bad_sum, out_of_order);
    printf("consumers that ended on EOF: %ld\n", eofs);
    return 0;
}
