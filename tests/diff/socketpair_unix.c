/*
 * socketpair_unix: AF_UNIX socketpairs between threads.
 *
 *   - SOCK_STREAM: 2000 ping-pong round trips between two threads, each
 *     side blocked in read between messages; bytes arrive in order;
 *   - a reader blocked in recv wakes with 0 when the peer shuts down its
 *     writing side; a send after SHUT_WR is EPIPE (SIGPIPE ignored);
 *   - SOCK_DGRAM: message boundaries kept; a short buffer truncates the
 *     datagram (recv returns the buffer's size, with MSG_TRUNC the real
 *     size; recvmsg sets MSG_TRUNC in msg_flags); an empty datagram
 *     reads as 0;
 *   - SOCK_SEQPACKET: boundaries and EOF.
 */
#define _GNU_SOURCE
#include "diff.h"

#define ROUNDS 2000

static int s[2];
static long pong_bad;

static void *ponger(void *arg)
{
    (void)arg;
    unsigned v;
    for (int i = 0; i < ROUNDS; i++) {
        if (read_full(s[1], &v, sizeof v) != sizeof v || v != (unsigned)i * 3) {
            pong_bad++;
            break;
        }
        v++;
        write_all(s[1], &v, sizeof v);
    }
    return NULL;
}

static long eof_res;
static int eof_err;

static void *eof_reader(void *arg)
{
    (void)arg;
    char b[8];
    errno = 0;
    eof_res = recv(s[1], b, sizeof b, 0);
    eof_err = errno;
    return NULL;
}

int main(void)
{
    diff_start(1);
    signal(SIGPIPE, SIG_IGN);
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    pthread_t t = spawn(ponger, NULL);
    int bad = 0;
    for (int i = 0; i < ROUNDS; i++) {
        unsigned v = (unsigned)i * 3;
        write_all(s[0], &v, sizeof v);
        if (read_full(s[0], &v, sizeof v) != sizeof v || v != (unsigned)i * 3 + 1) {
            bad++;
            break;
        }
    }
    join(t);
    printf("stream: %d round trips, %d bad here, %ld bad there\n", ROUNDS, bad,
           pong_bad);

    t = spawn(eof_reader, NULL);
    msleep(30);
    SYS("shutdown SHUT_WR", shutdown(s[0], SHUT_WR));
    join(t);
    printf("blocked recv after the peer's SHUT_WR = %ld %s\n", eof_res,
           eof_res < 0 ? ename(eof_err) : "");
    SYS("send after SHUT_WR", send(s[0], "x", 1, 0));
    SYS("the other way still works: send", send(s[1], "back", 4, 0));
    char b[64];
    SYS("recv", recv(s[0], b, sizeof b, 0));
    MUST(close(s[0]));
    MUST(close(s[1]));

    MUST(socketpair(AF_UNIX, SOCK_DGRAM, 0, s));
    SYS("dgram send 10", send(s[0], "0123456789", 10, 0));
    SYS("dgram send 3", send(s[0], "abc", 3, 0));
    SYS("dgram send 0", send(s[0], "", 0, 0));
    SYS("dgram send 10", send(s[0], "0123456789", 10, 0));
    SYS("dgram send 10", send(s[0], "0123456789", 10, 0));
    SYS("recv into 64: the first datagram only", recv(s[1], b, sizeof b, 0));
    SYS("recv into 64", recv(s[1], b, sizeof b, 0));
    SYS("recv of the empty datagram", recv(s[1], b, sizeof b, 0));
    SYS("recv into 4, MSG_TRUNC", recv(s[1], b, 4, MSG_TRUNC));
    struct iovec iov = {b, 4};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    SYS("recvmsg into 4", recvmsg(s[1], &m, 0));
    printf("msg_flags has MSG_TRUNC: %s\n", m.msg_flags & MSG_TRUNC ? "yes" : "no");
    SYS("recv MSG_DONTWAIT of nothing", recv(s[1], b, sizeof b, MSG_DONTWAIT));
    MUST(close(s[0]));
    MUST(close(s[1]));

    MUST(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s));
    SYS("seqpacket send 5", send(s[0], "hello", 5, 0));
    SYS("seqpacket send 5", send(s[0], "world", 5, 0));
    SYS("recv into 64", recv(s[1], b, sizeof b, 0));
    SYS("recv into 2", recv(s[1], b, 2, 0));
    MUST(close(s[0]));
    SYS("recv after the peer closed", recv(s[1], b, sizeof b, 0));
    MUST(close(s[1]));
    return 0;
}
