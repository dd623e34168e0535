/*
 * file_calls: read, write, pread and pwrite on files and devices, the
 * calls dd and cp make for every block (under the preload the hook makes
 * their syscall itself when glibc's function is the real one: results and
 * errno must be glibc's).
 *
 *   - a file written in odd-sized pieces, read back in others; a read at
 *     the end: 0; pwrite past the end leaves a hole that pread reads as
 *     zeros; the offset pread and pwrite leave alone;
 *   - failures: read of a directory (EISDIR), write to a file opened for
 *     reading and read of one opened for writing (EBADF), pread at a
 *     negative offset (EINVAL), pread and pwrite of a pipe (ESPIPE), a
 *     closed fd (EBADF), write to /dev/full (ENOSPC), a bad buffer
 *     (EFAULT; not in sanitizer or memcheck runs, which check buffers);
 *   - /dev/zero and /dev/null: a large read, a large write;
 *   - errno is left alone by every call that succeeds;
 *   - the same from 4 threads at once, each on its own file: the counts
 *     and the bytes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>

#include "diff.h"

#define PIECES 50

static char dir[64];

static void fill(char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (char)('a' + (seed + i * 7) % 26);
}

static void pieces(void)
{
    char path[96], in[4096], out[4096];
    snprintf(path, sizeof path, "%s/pieces", dir);
    int fd = MUST(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
    fill(out, sizeof out, 3);
    errno_kept_checked = 1;
    size_t off = 0;
    for (int i = 1; off < sizeof out; i++) {
        size_t n = (size_t)i * 13 % 211 + 1;
        if (n > sizeof out - off)
            n = sizeof out - off;
        ssize_t w = write(fd, out + off, n);
        if (w != (ssize_t)n) {
            printf("write of %zu at %zu = %zd\n", n, off, w);
            return;
        }
        off += n;
    }
    printf("wrote %zu bytes in pieces\n", off);
    SYS("lseek to 0", lseek(fd, 0, SEEK_SET));
    size_t got = 0;
    for (int i = 1;; i++) {
        ssize_t r = read(fd, in + got, (size_t)i * 17 % 301 + 1);
        if (r <= 0) {
            printf("read ended with %zd after %zu bytes\n", r, got);
            break;
        }
        got += (size_t)r;
    }
    printf("the bytes read back match: %s\n",
           got == sizeof out && memcmp(in, out, sizeof out) == 0 ? "yes" : "no");
    SYS("read at the end", read(fd, in, sizeof in));
    SYS("pwrite 5 bytes at 10000", pwrite(fd, "hello", 5, 10000));
    SYS("offset after pwrite", lseek(fd, 0, SEEK_CUR));
    memset(in, 'x', 16);
    SYS("pread 16 bytes at 4090", pread(fd, in, 16, 4090));
    int zeros = 1;
    for (int i = 6; i < 16; i++)
        zeros &= in[i] == 0;
    printf("the hole reads as zeros: %s\n", zeros ? "yes" : "no");
    SYS("pread64 at 10000", pread64(fd, in, 100, 10000));
    printf("pread64 read: %.5s\n", in);
    SYS("pwrite64 at 2", pwrite64(fd, "XY", 2, 2));
    SYS("pread back at 0", pread(fd, in, 4, 0));
    printf("pread back read: %.4s\n", in);
    SYS("pread 0 bytes", pread(fd, in, 0, 0));
    SYS("read 0 bytes", read(fd, in, 0));
    SYS("write 0 bytes", write(fd, in, 0));
    errno_kept_checked = 0;
    close(fd);
    unlink(path);
}

static void failures(void)
{
    char path[96], b[64] = "";
    snprintf(path, sizeof path, "%s/ro", dir);
    int fd = MUST(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600));
    MUST(write(fd, "some bytes", 10));
    SYS("read of a file opened for writing", read(fd, b, 1));
    SYS("pread of a file opened for writing", pread(fd, b, 1, 0));
    close(fd);
    fd = MUST(open(path, O_RDONLY));
    SYS("write to a file opened for reading", write(fd, "x", 1));
    SYS("pwrite to a file opened for reading", pwrite(fd, "x", 1, 0));
    SYS("pread at a negative offset", pread(fd, b, 1, -1));
    SYS("pwrite64 at a negative offset", pwrite64(fd, b, 1, -1));
    int dfd = MUST(open(dir, O_RDONLY | O_DIRECTORY));
    SYS("read of a directory", read(dfd, b, sizeof b));
    SYS("pread of a directory", pread(dfd, b, sizeof b, 0));
    close(dfd);
    int p[2];
    MUST(pipe(p));
    SYS("pread of a pipe", pread(p[0], b, 1, 0));
    SYS("pwrite of a pipe", pwrite(p[1], "x", 1, 0));
    close(p[0]);
    close(p[1]);
    int full = open("/dev/full", O_WRONLY);
    if (full >= 0) {
        SYS("write to /dev/full", write(full, "x", 1));
        close(full);
    } else {
        printf("write to /dev/full = -1 ENOSPC\n"); /* no /dev/full: as Linux */
    }
    if (!diff_checks_buffers()) {
        char *volatile bad = (char *)16;
        SYS("read into a bad buffer", read(fd, bad, 1));
        SYS("write from a bad buffer", write(1, bad, 1));
        SYS("pread into a bad buffer", pread(fd, bad, 1, 0));
    } else {
        printf("(bad buffers left out under a tool that checks them)\n");
    }
    close(fd);
    SYS("read of a closed fd", read(fd, b, 1));
    SYS("write to a closed fd", write(fd, "x", 1));
    SYS("pread of a closed fd", pread(fd, b, 1, 0));
    SYS("pwrite of a closed fd", pwrite(fd, "x", 1, 0));
    unlink(path);
}

static void devices(void)
{
    static char big[1 << 20];
    memset(big, 1, sizeof big);
    int z = MUST(open("/dev/zero", O_RDONLY));
    int nul = MUST(open("/dev/null", O_WRONLY));
    errno_kept_checked = 1;
    SYS("read 1 MiB of /dev/zero", read(z, big, sizeof big));
    int all0 = 1;
    for (size_t i = 0; i < sizeof big; i += 4096)
        all0 &= big[i] == 0;
    printf("all zeros: %s\n", all0 ? "yes" : "no");
    SYS("write 1 MiB to /dev/null", write(nul, big, sizeof big));
    SYS("pread of /dev/zero", pread(z, big, 100, 12345));
    errno_kept_checked = 0;
    close(z);
    close(nul);
}

struct job {
    int id;
    long bytes;
    int same;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    char path[96], out[1000], in[1000];
    snprintf(path, sizeof path, "%s/t%d", dir, j->id);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return NULL;
    j->same = 1;
    for (int i = 0; i < PIECES; i++) {
        fill(out, sizeof out, (unsigned)(j->id * 100 + i));
        if (pwrite(fd, out, sizeof out, (off_t)i * (off_t)sizeof out) == sizeof out)
            j->bytes += (long)sizeof out;
    }
    for (int i = 0; i < PIECES; i++) {
        fill(out, sizeof out, (unsigned)(j->id * 100 + i));
        if (read(fd, in, sizeof in) != sizeof in || memcmp(in, out, sizeof in) != 0)
            j->same = 0;
    }
    close(fd);
    unlink(path);
    return NULL;
}

int main(void)
{
    diff_start(1);
    snprintf(dir, sizeof dir, "%s/file_calls.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        printf("SETUP FAILED: mkdtemp: %s\n", ename(errno));
        return 99;
    }
    pieces();
    failures();
    devices();
    struct job jobs[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){.id = i};
        t[i] = spawn(worker, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        printf("thread %d: %ld bytes written, read back the same: %s\n", i,
               jobs[i].bytes, jobs[i].same ? "yes" : "no");
    }
    rmdir(dir);
    return 0;
}
