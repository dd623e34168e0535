/*
 * Reading /proc without taking a descriptor number from the program.
 *
 * The monitor reads /proc/self/task/TID/stat to learn whether a worker's
 * thread that stopped switching is asleep in the kernel, and
 * /proc/self/statm before it starts a thread under RLIMIT_AS.  Opened in
 * the process's file table, each such file takes the lowest free number
 * for as long as it is open, and the program's threads share that table:
 *
 *   - an open, dup, socket or accept of the program's at that moment gets
 *     a higher number than the kernel would have given it, and a number
 *     the program has just freed for a purpose is taken from under it
 *     (close(0) then open() no longer yields 0);
 *   - at RLIMIT_NOFILE, the program's call fails with EMFILE.
 *
 * A program that never made a thread cannot see either natively.  Under
 * the preload it runs beside the runtime's threads, and the monitor reads
 * most when the CPUs are busy, which is also when the program is slowest
 * past such a window.  test_net's EMFILE check lost its freed number this
 * way in 3 of 40 runs under ASan beside two busy loops.
 *
 * So the reads are made by a thread of their own, the reader, whose file
 * table is its own: close_range(CLOSE_RANGE_UNSHARE) over every number
 * gives it an empty one, without ever holding the program's files (a copy
 * would keep a pipe's write end open past the program's close).  The
 * monitor asks, and waits on a futex for the answer.  The reader keeps
 * each file it opens and reads it again from offset 0 (the kernel makes
 * /proc's text anew on each read from the start): one pread per look in
 * place of an open, a read and a close.  A file of a thread that has
 * ended reads ESRCH; it is closed and opened afresh, once.
 *
 * Where the kernel refuses (before Linux 5.9, or a sandbox that forbids
 * close_range), or the thread cannot start (no room for it under
 * RLIMIT_AS as the monitor starts), the reader is not used and the
 * monitor opens the files in the process's table, as it did before.
 */
#define _GNU_SOURCE
#include "proc.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "../libunblock/real.h"
#include "common.h"
#include "fd.h"
#include "sys.h"

#define PROC_PATH_MAX 64
#define PROC_BUF_MAX 1024
#define PROC_CACHE 16
/* The reader's stack: it makes a few syscalls and calls nothing deep.
 * Room for a sanitizer's larger frames; the default (RLIMIT_STACK, 8 MiB)
 * would be address space counted against RLIMIT_AS for nothing. */
#define PROC_STACK (256u << 10)

enum { READER_OFF, READER_STARTING, READER_ON, READER_REFUSED };

static struct {
    pthread_t thread;
    void (*setup)(void);
    long wait_ns; /* how long the monitor waits for an answer */
    int cpu;      /* the one CPU the reader may run on, or -1 */
    _Atomic pid_t tid;
    _Atomic uint32_t state;    /* READER_*; a futex while it starts */
    _Atomic uint32_t asked;    /* requests made: the reader's futex */
    _Atomic uint32_t answered; /* requests answered: the monitor's futex */
    _Atomic bool stop;
    bool ok;                  /* the answer to request `answered` */
    char path[PROC_PATH_MAX]; /* the request */
    char buf[PROC_BUF_MAX];   /* the answer, NUL-terminated */
    struct {
        char path[PROC_PATH_MAX];
        int fd; /* in the reader's own table, or -1 */
    } cache[PROC_CACHE];
    unsigned next_slot;
} rd;

/* ---- the reader ----------------------------------------------------------- */

static int cache_slot(const char *path)
{
    for (int i = 0; i < PROC_CACHE; i++)
        if (rd.cache[i].fd >= 0 && strcmp(rd.cache[i].path, path) == 0)
            return i;
    int i = (int)(rd.next_slot++ % PROC_CACHE);
    if (rd.cache[i].fd >= 0)
        unb__sys3(SYS_close, rd.cache[i].fd, 0, 0);
    rd.cache[i].fd = -1;
    strcpy(rd.cache[i].path, path);
    return i;
}

static bool cached_read(const char *path, char *buf, size_t size)
{
    int i = cache_slot(path);
    for (int tries = 0; tries < 2; tries++) {
        if (rd.cache[i].fd < 0) {
            long fd = unb__sys3(SYS_open, (long)path, O_RDONLY | O_CLOEXEC, 0);
            if (fd < 0)
                return false;
            rd.cache[i].fd = (int)fd;
        }
        long n =
            unb__sys6(SYS_pread64, rd.cache[i].fd, (long)buf, (long)size - 1, 0, 0, 0);
        if (n > 0) {
            buf[n] = 0;
            return true;
        }
        /* The thread it describes has ended (ESRCH): its number may now
         * be another thread's, which a fresh open finds. */
        unb__sys3(SYS_close, rd.cache[i].fd, 0, 0);
        rd.cache[i].fd = -1;
    }
    return false;
}

/* Its signals are blocked already: a thread starts with its creator's
 * mask, and the monitor blocks them all. */
static void *reader_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "unblock-proc");
    if (rd.setup)
        rd.setup();
    for (int i = 0; i < PROC_CACHE; i++)
        rd.cache[i].fd = -1;
    bool own = unb__sys3(SYS_close_range, 0, ~0U, CLOSE_RANGE_UNSHARE) == 0;
    atomic_store_explicit(&rd.tid, own ? (pid_t)unb__sys3(SYS_gettid, 0, 0, 0) : 0,
                          memory_order_relaxed);
    /* Before the monitor may ask: a request made between READER_ON and
     * this load would count as seen, and go unanswered for good (every
     * later read then fails as "still at an earlier request", and the
     * monitor hands nothing off: pipe_workers hung under ASan). */
    uint32_t seen = atomic_load_explicit(&rd.asked, memory_order_acquire);
    atomic_store_explicit(&rd.state, own ? READER_ON : READER_REFUSED,
                          memory_order_release);
    unb__futex_wake(&rd.state, 1);
    if (!own)
        return NULL;
    while (!atomic_load_explicit(&rd.stop, memory_order_acquire)) {
        uint32_t a = atomic_load_explicit(&rd.asked, memory_order_acquire);
        if (a == seen) {
            unb__futex_wait(&rd.asked, a, NULL);
            continue;
        }
        rd.ok = cached_read(rd.path, rd.buf, sizeof rd.buf);
        seen = a;
        atomic_store_explicit(&rd.answered, a, memory_order_release);
        unb__futex_wake(&rd.answered, 1);
    }
    return NULL; /* its table, and the files in it, go with it */
}

/* ---- the monitor's side --------------------------------------------------- */

void unb__proc_start(void (*setup)(void), long wait_ns)
{
    if (atomic_load_explicit(&rd.state, memory_order_relaxed) != READER_OFF)
        return;
    rd.setup = setup;
    rd.wait_ns = wait_ns;
    rd.cpu = -1;
    atomic_store(&rd.stop, false);
    atomic_store(&rd.state, READER_STARTING);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, PROC_STACK);
    int e = unb__real_thread_create(&rd.thread, &attr, reader_main, NULL);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        atomic_store(&rd.state, READER_OFF);
        return;
    }
    uint32_t s;
    while ((s = atomic_load_explicit(&rd.state, memory_order_acquire)) ==
           READER_STARTING)
        unb__futex_wait(&rd.state, s, NULL);
    if (s == READER_REFUSED) {
        unb__real_thread_join(rd.thread, NULL);
        /* Stays refused: the kernel will not change its mind. */
    }
}

void unb__proc_stop(void)
{
    if (atomic_load_explicit(&rd.state, memory_order_relaxed) != READER_ON)
        return;
    atomic_store_explicit(&rd.stop, true, memory_order_release);
    atomic_fetch_add_explicit(&rd.asked, 1, memory_order_release);
    unb__futex_wake(&rd.asked, 1);
    unb__real_thread_join(rd.thread, NULL);
    atomic_store(&rd.answered, atomic_load(&rd.asked));
    atomic_store(&rd.tid, 0);
    atomic_store(&rd.state, READER_OFF);
}

void unb__proc_forget(void)
{
    if (atomic_load_explicit(&rd.state, memory_order_relaxed) == READER_ON)
        atomic_store(&rd.state, READER_OFF);
    atomic_store(&rd.answered, atomic_load(&rd.asked));
    atomic_store(&rd.tid, 0);
}

/* Keeps the reader on the asking thread's CPU, which the asker leaves to
 * it as it waits on the futex: no idle CPU to wake.  Measured over 1,300
 * reads of fd_lowest's looks: 17 us at the median and 56 us at the 90th
 * percentile, against 9 and 22 us for an open, a read and a close made
 * by the monitor itself.  Left free, the reader took 91 us at the median
 * (an idle virtual CPU woken); kept off the asker's CPU with the asker
 * spinning, 18 and 79 us.  In about 1 read in 100 either way, the asker
 * got its CPU back only 1 to 4 ms after the answer, behind a thread that
 * computes (it went to sleep just after it ran, and the scheduler does
 * not let such a thread preempt at once).  The asking thread moves rarely
 * (monitor_place in sched.c), so this costs a syscall now and then. */
static void keep_beside(void)
{
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu == rd.cpu || cpu >= CPU_SETSIZE)
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pid_t tid = atomic_load_explicit(&rd.tid, memory_order_relaxed);
    if (unb__sys3(SYS_sched_setaffinity, tid, sizeof one, (long)&one) == 0)
        rd.cpu = cpu;
}

bool unb__proc_read(const char *path, char *buf, size_t size)
{
    if (atomic_load_explicit(&rd.state, memory_order_acquire) != READER_ON)
        return unb__read_proc(path, buf, size);
    uint32_t a = atomic_load_explicit(&rd.asked, memory_order_relaxed);
    if (atomic_load_explicit(&rd.answered, memory_order_acquire) != a ||
        strlen(path) >= sizeof rd.path)
        return false; /* still at an earlier request: not known now */
    strcpy(rd.path, path);
    keep_beside();
    atomic_store_explicit(&rd.asked, ++a, memory_order_release);
    unb__futex_wake(&rd.asked, 1);
    int64_t end = unb__now_ns() + rd.wait_ns;
    uint32_t got;
    while ((got = atomic_load_explicit(&rd.answered, memory_order_acquire)) != a) {
        int64_t now = unb__now_ns();
        if (now >= end)
            return false;
        struct timespec left = {(end - now) / 1000000000, (end - now) % 1000000000};
        unb__futex_wait(&rd.answered, got, &left);
    }
    if (!rd.ok)
        return false;
    size_t n = strlen(rd.buf);
    if (n >= size)
        n = size - 1;
    memcpy(buf, rd.buf, n);
    buf[n] = 0;
    return true;
}
