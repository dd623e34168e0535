/*
 * echo_server: a TCP echo server written as plain blocking code, one
 * coroutine per connection (the linked API).  Every read and write below
 * is the ordinary libc call; inside a coroutine it parks instead of
 * blocking the thread.
 *
 *   build/examples/echo_server [PORT]      (default 7000, on 127.0.0.1)
 *
 * It runs until killed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unblock.h>
#include <unistd.h>

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        if (write(fd, buf, (size_t)n) != n)
            break;
    }
    close(fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            perror("accept"); /* EMFILE and friends: keep serving */
            usleep(10000);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        unb_coro_t *co = unb_spawn(serve, (void *)(intptr_t)fd);
        if (!co) {
            perror("unb_spawn");
            close(fd);
            continue;
        }
        unb_detach(co);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 7000;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(lfd, SOMAXCONN) != 0) {
        perror("echo_server: listen");
        return 1;
    }
    unb_coro_t *co = unb_spawn(acceptor, (void *)(intptr_t)lfd);
    if (!co) {
        perror("unb_spawn");
        return 1;
    }
    unb_join(co, NULL);
    return 0;
}
