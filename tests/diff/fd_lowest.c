/*
 * fd_lowest: a new descriptor is the lowest free number, and at
 * RLIMIT_NOFILE a freed number is the program's to take, while other
 * threads sleep and compute.
 *
 *   - two threads repeat a raw 2 ms sleep (syscall(SYS_nanosleep), which
 *     no wrapper sees), 1 ms of computation and a plain 0.2 ms usleep,
 *     for as long as the main thread runs its loops: a runtime that
 *     watches its threads for calls that hold them looks at these often;
 *   - meanwhile the main thread calls dup and close 10,000 times (and for
 *     at least 0.15 s; 1.5 s under memcheck): each dup returns the lowest
 *     free number;
 *   - then as many again with the soft RLIMIT_NOFILE lowered so that
 *     exactly one number is free: each dup gets it.
 *
 * The kernel gives the lowest free number, and none of this program's
 * threads opens anything while the loop runs; so natively every dup gets
 * it.  A runtime that opened files in the process's table behind the
 * program (say, to read /proc) would make some of these dups fail with
 * EMFILE or return a higher number.  The counts printed are the wrong
 * numbers and the failures: 0 and 0.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "diff.h"

#define DUPS 20000

static atomic_int stop;

static void *sleeper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        struct timespec ts = {0, 2000000};
        syscall(SYS_nanosleep, &ts, NULL);
        double end = now_ms() + 1;
        while (now_ms() < end && !atomic_load(&stop))
            ;
        usleep(200);
    }
    return NULL;
}

int main(void)
{
    diff_start(1);
    int src = open("/dev/null", O_RDONLY);
    MUST(src >= 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        MUST0(pthread_create(&th[i], NULL, sleeper, NULL));

    /* The lowest free number now. */
    int lowest = dup(src);
    MUST(lowest >= 0);
    MUST0(close(lowest));

    /* First with the limit as it is: a dup gets the lowest free number. */
    long moved = 0, n = 0;
    double end = now_ms() + 150.0 * diff_slow();
    for (; n < DUPS / 2 || now_ms() < end; n++) {
        int fd = dup(src);
        MUST(fd >= 0);
        moved += fd != lowest;
        close(fd);
    }

    /* Then with one number free: a dup gets it. */
    struct rlimit old, one;
    MUST0(getrlimit(RLIMIT_NOFILE, &old));
    one = (struct rlimit){(rlim_t)lowest + 1, old.rlim_max};
    MUST0(setrlimit(RLIMIT_NOFILE, &one));
    long failed = 0;
    int first_errno = 0;
    end = now_ms() + 150.0 * diff_slow();
    for (long i = 0; i < DUPS / 2 || now_ms() < end; i++, n++) {
        int fd = dup(src);
        if (fd < 0) {
            if (!failed++)
                first_errno = errno;
            continue;
        }
        close(fd);
    }
    MUST0(setrlimit(RLIMIT_NOFILE, &old));
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        MUST0(pthread_join(th[i], NULL));

    printf("dups that returned another number than the lowest free: %ld\n", moved);
    printf("dups that failed, with one number free: %ld%s%s\n", failed,
           failed ? ", the first with " : "", failed ? ename(first_errno) : "");
    printf("at least %d dups made: %s\n", DUPS, n >= DUPS ? "yes" : "no");
    return 0;
}
