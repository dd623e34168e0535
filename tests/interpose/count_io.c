/*
 * count_io: a library that interposes read and write as tracers and
 * fault injectors do, preloaded after libunblock by test_launcher.sh.  It
 * counts the calls of exactly COUNT_IO_LEN bytes (default 777, a size
 * nothing else uses) and passes every call on to the next definition;
 * at exit it appends "count_io: read N write M" to the file COUNT_IO_FILE
 * names (not stderr: dd closes its stderr before the destructors run).  Under the
 * preload the program's calls must still reach it: libunblock's hooks
 * call the next library's function, and make the syscall themselves only
 * when the next one is glibc's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static _Atomic long nread, nwrite;

static size_t counted_len(void)
{
    static size_t len;
    if (!len) {
        const char *s = getenv("COUNT_IO_LEN");
        len = s && atol(s) > 0 ? (size_t)atol(s) : 777;
    }
    return len;
}

ssize_t read(int fd, void *buf, size_t n)
{
    static ssize_t (*next)(int, void *, size_t);
    if (!next)
        next = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    if (n == counted_len())
        nread++;
    return next(fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*next)(int, const void *, size_t);
    if (!next)
        next = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (n == counted_len())
        nwrite++;
    return next(fd, buf, n);
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("COUNT_IO_FILE");
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
    if (fd >= 0) {
        dprintf(fd, "count_io: read %ld write %ld\n", nread, nwrite);
        close(fd);
    }
}
