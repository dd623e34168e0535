/*
 * rwlock_calls: read-write locks.
 *
 *   - two threads hold read locks at once (each waits, holding it, until
 *     the other has it too); trywrlock meanwhile: EBUSY;
 *   - while one thread writes: tryrdlock and trywrlock from others EBUSY;
 *     timedrdlock 50 ms: ETIMEDOUT; timedwrlock with tv_nsec 1e9: EINVAL;
 *   - wrlock by the writer again: EDEADLK; rdlock by the writer: EDEADLK;
 *   - with PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP, a waiting writer
 *     goes before a reader that arrives after it (the order of entry is
 *     recorded); while a writer waits, tryrdlock is EBUSY; a reader held
 *     back by a writer whose timedwrlock runs out gets in then;
 *   - 3 writers and 3 readers, 2000 iterations each: the readers always
 *     see the two fields equal; the count ends at 6000.
 */
#define _GNU_SOURCE
#include "diff.h"

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int readers_in;

static void *reader_together(void *arg)
{
    (void)arg;
    pthread_rwlock_rdlock(&rw);
    pthread_mutex_lock(&m);
    readers_in++;
    pthread_cond_broadcast(&c);
    struct timespec dl = ts_in(CLOCK_REALTIME, 2000);
    while (readers_in < 2)
        if (pthread_cond_timedwait(&c, &m, &dl) != 0)
            break;
    pthread_mutex_unlock(&m);
    msleep(20);
    pthread_rwlock_unlock(&rw);
    return NULL;
}

static int op, res;
static void *other(void *arg)
{
    (void)arg;
    struct timespec dl;
    switch (op) {
    case 0: res = pthread_rwlock_tryrdlock(&rw); break;
    case 1: res = pthread_rwlock_trywrlock(&rw); break;
    case 2:
        dl = ts_in(CLOCK_REALTIME, 50);
        res = pthread_rwlock_timedrdlock(&rw, &dl);
        break;
    case 3:
        dl = ts_in(CLOCK_REALTIME, 50);
        dl.tv_nsec = 1000000000;
        res = pthread_rwlock_timedwrlock(&rw, &dl);
        break;
    }
    if (res == 0)
        pthread_rwlock_unlock(&rw);
    return NULL;
}

static int in_other(int what)
{
    op = what;
    join(spawn(other, NULL));
    return res;
}

static pthread_rwlock_t pw;
static char order[8];
static int norder;
static void note(char who)
{
    pthread_mutex_lock(&m);
    order[norder++] = who;
    pthread_mutex_unlock(&m);
}
static void *pw_writer(void *arg)
{
    (void)arg;
    pthread_rwlock_wrlock(&pw);
    note('W');
    pthread_rwlock_unlock(&pw);
    return NULL;
}
static double reader_in_ms; /* when pw_reader got its read lock */
static void *pw_reader(void *arg)
{
    (void)arg;
    pthread_rwlock_rdlock(&pw);
    reader_in_ms = now_ms();
    note('R');
    pthread_rwlock_unlock(&pw);
    return NULL;
}

static int timed_res;
static double writer_from_ms; /* when pw_timed_writer began to wait */
static void *pw_timed_writer(void *arg)
{
    (void)arg;
    writer_from_ms = now_ms();
    struct timespec dl = ts_in(CLOCK_REALTIME, 400);
    timed_res = pthread_rwlock_timedwrlock(&pw, &dl);
    note(timed_res == 0 ? 'W' : 'T');
    if (timed_res == 0)
        pthread_rwlock_unlock(&pw);
    return NULL;
}
static void *pw_tryreader(void *arg)
{
    (void)arg;
    res = pthread_rwlock_tryrdlock(&pw);
    if (res == 0)
        pthread_rwlock_unlock(&pw);
    return NULL;
}

static long a, b, total;
static _Atomic int torn;
static void *mixed_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        pthread_rwlock_wrlock(&rw);
        a++;
        if (i % 100 == 0)
            sched_yield();
        b++;
        total++;
        pthread_rwlock_unlock(&rw);
    }
    return NULL;
}
static void *mixed_reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        pthread_rwlock_rdlock(&rw);
        if (a != b)
            torn++;
        pthread_rwlock_unlock(&rw);
    }
    return NULL;
}

int main(void)
{
    diff_start(1);
    pthread_t t1 = spawn(reader_together, NULL), t2 = spawn(reader_together, NULL);
    msleep(10);
    int tw = pthread_rwlock_trywrlock(&rw);
    join(t1);
    join(t2);
    printf("two readers held it at once: %s\n", readers_in == 2 ? "yes" : "no");
    printf("trywrlock meanwhile = %s\n",
           tw == 0 ? "0 (the readers were done?)" : ename(tw));
    if (tw == 0)
        pthread_rwlock_unlock(&rw);

    ERR("wrlock", pthread_rwlock_wrlock(&rw));
    printf("tryrdlock by another thread = %s\n", ename(in_other(0)));
    printf("trywrlock by another thread = %s\n", ename(in_other(1)));
    printf("timedrdlock 50 ms by another thread = %s\n", ename(in_other(2)));
    printf("timedwrlock tv_nsec 1e9 by another thread = %s\n", ename(in_other(3)));
    ERR("wrlock again by the writer", pthread_rwlock_wrlock(&rw));
    ERR("rdlock by the writer", pthread_rwlock_rdlock(&rw));
    ERR("unlock", pthread_rwlock_unlock(&rw));
    ERR("rdlock", pthread_rwlock_rdlock(&rw));
    ERR("rdlock again (recursive read)", pthread_rwlock_rdlock(&rw));
    ERR("unlock", pthread_rwlock_unlock(&rw));
    ERR("unlock", pthread_rwlock_unlock(&rw));

    pthread_rwlockattr_t ra;
    MUST0(pthread_rwlockattr_init(&ra));
    MUST0(pthread_rwlockattr_setkind_np(&ra,
                                        PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP));
    MUST0(pthread_rwlock_init(&pw, &ra));
    MUST0(pthread_rwlockattr_destroy(&ra));
    MUST0(pthread_rwlock_rdlock(&pw));
    pthread_t w = spawn(pw_writer, NULL);
    msleep(50);
    pthread_t r = spawn(pw_reader, NULL);
    msleep(50);
    note('M');
    MUST0(pthread_rwlock_unlock(&pw));
    join(w);
    join(r);
    printf("writer-preferring lock, order of entry: %.*s\n", norder, order);

    norder = 0;
    MUST0(pthread_rwlock_rdlock(&pw));
    w = spawn(pw_timed_writer, NULL);
    msleep(100);
    join(spawn(pw_tryreader, NULL));
    printf("tryrdlock while a writer waits = %s\n", ename(res));
    r = spawn(pw_reader, NULL);
    join(w);
    join(r);
    MUST0(pthread_rwlock_unlock(&pw));
    /* The reader that came while the writer waited enters when the writer
     * gives up (it and the writer's own return then race: no order). */
    printf("timedwrlock 400 ms behind a reader = %s; the later reader got in %s\n",
           ename(timed_res),
           reader_in_ms - writer_from_ms >= 350 ? "after the writer gave up"
                                                : "while the writer waited");

    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        th[i] = spawn(i % 2 ? mixed_reader : mixed_writer, NULL);
    for (int i = 0; i < 6; i++)
        join(th[i]);
    printf("3 writers, 3 readers: total %ld, torn reads %d\n", total, (int)torn);
    return 0;
}
