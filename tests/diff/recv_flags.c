/*
 * recv_flags: MSG_PEEK, MSG_DONTWAIT and MSG_WAITALL on a blocking TCP
 * connection.
 *
 *   - MSG_DONTWAIT on an empty blocking socket: EAGAIN, at once;
 *   - a thread blocked in recv(MSG_PEEK) wakes when data arrives and sees
 *     it; the data is still there for the next recv;
 *   - MSG_PEEK of more than is queued returns what is queued;
 *   - MSG_WAITALL for 3000 bytes sent as 3 x 1000 bytes 20 ms apart:
 *     returns 3000 at once; a MSG_WAITALL recv cut short by the peer's
 *     close returns what came;
 *   - MSG_PEEK|MSG_DONTWAIT on an empty socket: EAGAIN.
 */
#define _GNU_SOURCE
#include "diff.h"

static int c, s;
static long res;
static char got[4096];

static void *peeker(void *arg)
{
    (void)arg;
    res = recv(s, got, sizeof got, MSG_PEEK);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    res = recv(s, got, sizeof got, 0);
    return NULL;
}

static void *slow_sender(void *arg)
{
    int close_after = (int)(long)arg;
    char chunk[1000];
    for (int i = 0; i < 3; i++) {
        memset(chunk, 'a' + i, sizeof chunk);
        msleep(20);
        write_all(c, chunk, i == 2 && close_after ? 500 : sizeof chunk);
    }
    if (close_after)
        shutdown(c, SHUT_WR);
    return NULL;
}

int main(void)
{
    diff_start(1);
    char b[4096];
    tcp_pair(&c, &s);
    double t0 = now_ms();
    SYS("recv MSG_DONTWAIT on an empty blocking socket",
        recv(s, b, sizeof b, MSG_DONTWAIT));
    elapsed("  and it", t0, 0, 500);
    SYS("recv MSG_PEEK|MSG_DONTWAIT", recv(s, b, sizeof b, MSG_PEEK | MSG_DONTWAIT));

    pthread_t t = spawn(peeker, NULL);
    msleep(30);
    write_all(c, "peekaboo", 8);
    join(t);
    printf("blocked MSG_PEEK = %ld (%.8s)\n", res, got);
    SYS("MSG_PEEK again into 4", recv(s, b, 4, MSG_PEEK));
    SYS("recv", recv(s, b, sizeof b, 0));
    printf("data: %.8s\n", b);
    t = spawn(reader, NULL);
    msleep(30);
    write_all(c, "later", 5);
    join(t);
    printf("blocked recv = %ld (%.5s)\n", res, got);

    t = spawn(slow_sender, (void *)0L);
    SYS("recv MSG_WAITALL of 3000 sent in three pieces", recv(s, b, 3000, MSG_WAITALL));
    join(t);
    printf("pieces in order: %s\n", b[0] == 'a' && b[999] == 'a' && b[1000] == 'b' &&
                                            b[2000] == 'c' && b[2999] == 'c'
                                        ? "yes"
                                        : "no");
    t = spawn(slow_sender, (void *)1L);
    SYS("recv MSG_WAITALL of 3000 when the peer stops at 2500",
        recv(s, b, 3000, MSG_WAITALL));
    join(t);
    SYS("recv MSG_WAITALL at EOF", recv(s, b, 3000, MSG_WAITALL));
    MUST(close(c));
    MUST(close(s));
    return 0;
}
