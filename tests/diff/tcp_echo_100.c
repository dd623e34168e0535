/*
 * tcp_echo_100: a thread-per-connection echo server and 100 client
 * threads over TCP loopback.
 *
 *   - the server thread accepts 100 connections and starts a thread for
 *     each, which echoes until EOF;
 *   - each client connects, sends 5 messages of different sizes (up to
 *     20 KB, so some echoes take several reads), reads each echo back in
 *     full, checks it, then half-closes and waits for the server's EOF;
 *   - all 100 clients finish with every byte echoed; the server saw 100
 *     connections and 100 EOFs.
 */
#define _GNU_SOURCE
#include "diff.h"

#define CLIENTS 100
#define MSGS 5

static int lfd;
static unsigned short port;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long server_eofs, server_bytes, client_ok, client_bad, client_eof;

static void *echo_conn(void *arg)
{
    int fd = (int)(long)arg;
    char buf[4096];
    long bytes = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) {
            pthread_mutex_lock(&m);
            server_eofs += n == 0;
            server_bytes += bytes;
            pthread_mutex_unlock(&m);
            break;
        }
        write_all(fd, buf, (size_t)n);
        bytes += n;
    }
    close(fd);
    return NULL;
}

static void *server(void *arg)
{
    (void)arg;
    pthread_t t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        int fd = (int)MUST(accept(lfd, NULL, NULL));
        t[i] = spawn(echo_conn, (void *)(long)fd);
    }
    for (int i = 0; i < CLIENTS; i++)
        join(t[i]);
    return NULL;
}

static void *client(void *arg)
{
    long id = (long)arg;
    int fd = tcp_connect(port);
    static const size_t sizes[MSGS] = {1, 100, 1500, 9000, 20000};
    char out[20000], in[20000];
    int ok = 1;
    for (int k = 0; k < MSGS; k++) {
        size_t n = sizes[(k + (size_t)id) % MSGS];
        for (size_t i = 0; i < n; i++)
            out[i] = (char)(id * 31 + (long)i * 7 + k);
        write_all(fd, out, n);
        if (read_full(fd, in, n) != n || memcmp(in, out, n) != 0)
            ok = 0;
    }
    shutdown(fd, SHUT_WR);
    char c;
    long eof = read(fd, &c, 1);
    close(fd);
    pthread_mutex_lock(&m);
    if (ok)
        client_ok++;
    else
        client_bad++;
    client_eof += eof == 0;
    pthread_mutex_unlock(&m);
    return NULL;
}

int main(void)
{
    diff_start(1);
    lfd = tcp_listener(&port, 128);
    pthread_t srv = spawn(server, NULL);
    pthread_t c[CLIENTS];
    for (long i = 0; i < CLIENTS; i++)
        c[i] = spawn(client, (void *)i);
    for (int i = 0; i < CLIENTS; i++)
        join(c[i]);
    join(srv);
    printf("clients: %ld echoed everything, %ld did not, %ld saw EOF\n", client_ok,
           client_bad, client_eof);
    printf("server: %ld connections ended with EOF, %ld bytes echoed\n", server_eofs,
           server_bytes);
    return 0;
}
