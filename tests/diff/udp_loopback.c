/*
 * udp_loopback: UDP datagrams over 127.0.0.1.
 *
 *   - sendto/recvfrom: the sender's address comes back; boundaries kept;
 *   - a thread blocked in recvfrom gets a later datagram;
 *   - a short buffer: recvfrom returns the buffer's size, MSG_TRUNC makes
 *     it return the real size, recvmsg sets MSG_TRUNC in msg_flags;
 *   - an empty datagram reads as 0; MSG_PEEK leaves the datagram queued;
 *     MSG_DONTWAIT on an empty socket: EAGAIN;
 *   - FIONREAD gives the size of the next datagram;
 *   - a connected UDP socket that sent to a closed port gets ECONNREFUSED
 *     on its next recv (the ICMP error), then waits normally;
 *   - sendto with a 70,000-byte datagram: EMSGSIZE.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/ioctl.h>

#include "diff.h"

static int a, b;
static long res;
static char got[64];

static void *blocked_recvfrom(void *arg)
{
    (void)arg;
    res = recvfrom(b, got, sizeof got, 0, NULL, NULL);
    return NULL;
}

int main(void)
{
    diff_start(1);
    a = bound_socket(SOCK_DGRAM);
    b = bound_socket(SOCK_DGRAM);
    struct sockaddr_in ba = loopback(port_of(b));
    unsigned short aport = port_of(a);
    char buf[100000];

    SYS("sendto 5", sendto(a, "hello", 5, 0, (struct sockaddr *)&ba, sizeof ba));
    SYS("sendto 6", sendto(a, "world!", 6, 0, (struct sockaddr *)&ba, sizeof ba));
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    SYS("recvfrom", recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen));
    printf("from the sender's port: %s, length %s\n",
           ntohs(from.sin_port) == aport ? "yes" : "no",
           flen == sizeof from ? "ok" : "wrong");
    SYS("recvfrom", recvfrom(b, buf, sizeof buf, 0, NULL, NULL));
    printf("data: %.6s\n", buf);

    pthread_t t = spawn(blocked_recvfrom, NULL);
    msleep(30);
    SYS("sendto to the blocked reader",
        sendto(a, "late", 4, 0, (struct sockaddr *)&ba, sizeof ba));
    join(t);
    printf("blocked recvfrom = %ld (%.4s)\n", res, got);

    SYS("sendto 10", sendto(a, "0123456789", 10, 0, (struct sockaddr *)&ba, sizeof ba));
    int n = -1;
    msleep(5);
    SYS("FIONREAD", ioctl(b, FIONREAD, &n));
    printf("FIONREAD says %d\n", n);
    SYS("recv MSG_PEEK into 64", recv(b, buf, 64, MSG_PEEK));
    SYS("recv into 4", recv(b, buf, 4, 0));
    SYS("sendto 10", sendto(a, "0123456789", 10, 0, (struct sockaddr *)&ba, sizeof ba));
    SYS("recv into 4, MSG_TRUNC", recv(b, buf, 4, MSG_TRUNC));
    SYS("sendto 10", sendto(a, "0123456789", 10, 0, (struct sockaddr *)&ba, sizeof ba));
    struct iovec iov = {buf, 4};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    SYS("recvmsg into 4", recvmsg(b, &m, 0));
    printf("msg_flags has MSG_TRUNC: %s\n", m.msg_flags & MSG_TRUNC ? "yes" : "no");
    SYS("sendto 0", sendto(a, "", 0, 0, (struct sockaddr *)&ba, sizeof ba));
    SYS("recv of the empty datagram", recv(b, buf, 64, 0));
    SYS("recv MSG_DONTWAIT of nothing", recv(b, buf, 64, MSG_DONTWAIT));
    SYS("sendto 70000", sendto(a, buf, 70000, 0, (struct sockaddr *)&ba, sizeof ba));

    int c = bound_socket(SOCK_DGRAM);
    struct sockaddr_in ca = loopback(closed_port());
    MUST(connect(c, (struct sockaddr *)&ca, sizeof ca));
    SYS("send to a closed port", send(c, "x", 1, 0));
    struct pollfd p = {.fd = c, .events = POLLIN};
    SYS("poll", poll(&p, 1, 1000));
    printf("revents %s\n", revents_str(p.revents));
    SYS("recv after the ICMP error", recv(c, buf, 64, 0));
    SYS("recv MSG_DONTWAIT", recv(c, buf, 64, MSG_DONTWAIT));
    MUST(close(c));
    MUST(close(a));
    MUST(close(b));
    return 0;
}
