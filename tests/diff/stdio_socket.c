/*
 * stdio_socket: stdio streams on sockets, from one thread.
 *
 *   - fdopen both ends of a TCP connection; fprintf 200 numbered lines on
 *     one (fully buffered, then fflush), fgets them on the other: all
 *     arrive, in order;
 *   - fscanf of numbers, getline of a long line (10,000 bytes), fputc and
 *     fgetc, ungetc;
 *   - after fclose of the writing stream (which closes its socket), fgets
 *     gives NULL with feof set;
 *   - a line-buffered stream on a socketpair: each fputs of a line is
 *     readable at once by a plain recv;
 *   - fgets on a socket with SO_RCVTIMEO 50 ms and nothing coming: NULL,
 *     ferror set, errno EAGAIN.
 */
#define _GNU_SOURCE
#include "diff.h"

int main(void)
{
    diff_start(1);
    int c, s;
    tcp_pair(&c, &s);
    FILE *w = fdopen(c, "w"), *r = fdopen(s, "r");
    if (!w || !r) {
        printf("fdopen failed: %s\n", ename(errno));
        return 1;
    }
    for (int i = 0; i < 200; i++)
        fprintf(w, "line %d of %d\n", i, 200);
    SYS("fflush", fflush(w));
    char line[256];
    int in_order = 0;
    for (int i = 0; i < 200; i++) {
        char want[64];
        snprintf(want, sizeof want, "line %d of %d\n", i, 200);
        if (fgets(line, sizeof line, r) && strcmp(line, want) == 0)
            in_order++;
    }
    printf("200 lines sent, %d read back in order\n", in_order);

    fprintf(w, "%d %d %d\n", 17, -4, 123456);
    char *longline = malloc(10002);
    memset(longline, 'z', 10000);
    longline[10000] = '\n';
    longline[10001] = '\0';
    fputs(longline, w);
    fputc('Q', w);
    fputc('!', w);
    fflush(w);
    int a = 0, b = 0, cc = 0;
    int k = fscanf(r, "%d %d %d\n", &a, &b, &cc);
    printf("fscanf = %d: %d %d %d\n", k, a, b, cc);
    char *got = NULL;
    size_t cap = 0;
    ssize_t n = getline(&got, &cap, r);
    printf("getline = %zd, all z: %s\n", n,
           n == 10001 && memcmp(got, longline, 10001) == 0 ? "yes" : "no");
    int ch = fgetc(r);
    printf("fgetc = %c\n", ch);
    ungetc(ch, r);
    int ch1 = fgetc(r), ch2 = fgetc(r);
    printf("after ungetc, fgetc = %c, then %c\n", ch1, ch2);
    free(got);
    free(longline);

    SYS("fclose of the writing stream", fclose(w));
    char *e = fgets(line, sizeof line, r);
    printf("fgets after the peer closed: %s, feof %d, ferror %d\n",
           e ? "a line" : "NULL", feof(r) != 0, ferror(r) != 0);
    fclose(r);

    int sp[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    FILE *lw = fdopen(sp[0], "w");
    setvbuf(lw, NULL, _IOLBF, 0);
    char b2[64];
    fputs("first\n", lw);
    SYS("recv after one line-buffered fputs", recv(sp[1], b2, sizeof b2, MSG_DONTWAIT));
    fputs("partial", lw);
    GSYS("recv after an fputs without newline",
         recv(sp[1], b2, sizeof b2, MSG_DONTWAIT));
    fputs(" line\n", lw);
    SYS("recv after the newline", recv(sp[1], b2, sizeof b2, MSG_DONTWAIT));
    fclose(lw);
    MUST(close(sp[1]));

    struct timeval tv = {0, 50000};
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    MUST(setsockopt(sp[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    FILE *tr = fdopen(sp[1], "r");
    errno = 0;
    double t0 = now_ms();
    e = fgets(line, sizeof line, tr);
    int err = errno;
    printf("fgets with SO_RCVTIMEO 50 ms: %s, ferror %d, errno %s\n",
           e ? "a line" : "NULL", ferror(tr) != 0, ename(err));
    elapsed("  and it", t0, 40, 1500);
    fclose(tr);
    close(sp[0]);
    return 0;
}
