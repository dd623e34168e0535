/*
 * Running a child process and reading what it said, for the tests that
 * check what a process prints or how it ends (test_config, test_overflow,
 * test_secure): each starts its child its own way, then hands the two
 * pipes and the pid to child_collect.  Include after tap.h.
 */
#ifndef UNB_TEST_CHILD_H
#define UNB_TEST_CHILD_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct child {
    int status;
    char out[16384];
    char err[16384];
};

/* Forks with the child's stdout and stderr on two new pipes: returns 0 in
 * the child, and the child's pid in the parent, which gets the pipes' read
 * ends in *out_fd and *err_fd for child_collect. */
static inline pid_t child_fork(int *out_fd, int *err_fd)
{
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0)
        BAIL("pipe2: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        BAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        return 0;
    }
    close(po[1]);
    close(pe[1]);
    *out_fd = po[0];
    *err_fd = pe[0];
    return pid;
}

/* Reads both pipes to the end into c->out and c->err (closing them), then
 * waits for pid and keeps its wait status. */
static inline void child_collect(struct child *c, int out_fd, int err_fd, pid_t pid)
{
    size_t lens[2] = {0, 0};
    char *bufs[2] = {c->out, c->err};
    struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN},
                            {.fd = err_fd, .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            BAIL("poll: %s", strerror(errno));
        }
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            char tmp[4096];
            ssize_t r = read(pfd[i].fd, tmp, sizeof tmp);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                open_fds--;
                continue;
            }
            size_t room = sizeof c->out - 1 - lens[i];
            size_t k = (size_t)r < room ? (size_t)r : room;
            memcpy(bufs[i] + lens[i], tmp, k);
            lens[i] += k;
        }
    }
    c->out[lens[0]] = '\0';
    c->err[lens[1]] = '\0';
    while (waitpid(pid, &c->status, 0) < 0)
        if (errno != EINTR)
            BAIL("waitpid: %s", strerror(errno));
}

static inline const char *status_str(int st)
{
    static char buf[64];
    if (WIFEXITED(st))
        snprintf(buf, sizeof buf, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, sizeof buf, "killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(buf, sizeof buf, "wait status %#x", st);
    return buf;
}

/* Shows text as diagnostic lines, one "# " line per line of text. */
static inline void diag_text(const char *what, const char *s)
{
    if (!*s) {
        diag("  %s: (empty)", what);
        return;
    }
    while (*s) {
        int n = (int)strcspn(s, "\n");
        diag("  %s: %.*s", what, n, s);
        s += n;
        if (*s == '\n')
            s++;
    }
}

static inline void diag_child(const struct child *c)
{
    diag("  child %s", status_str(c->status));
    diag_text("child stdout", c->out);
    diag_text("child stderr", c->err);
}

/* The value of "key=value" in s (pairs separated by spaces or lines), or
 * NULL.  Two static buffers, so two values can be compared. */
static inline const char *kv(const char *s, const char *key)
{
    static char vals[2][256];
    static int which;
    char *val = vals[which++ & 1];
    size_t kl = strlen(key);
    for (const char *q = s; *q;) {
        if (strncmp(q, key, kl) == 0 && q[kl] == '=') {
            const char *v = q + kl + 1;
            size_t n = strcspn(v, " \n");
            if (n >= sizeof vals[0])
                n = sizeof vals[0] - 1;
            memcpy(val, v, n);
            val[n] = '\0';
            return val;
        }
        q += strcspn(q, " \n");
        q += strspn(q, " \n");
    }
    return NULL;
}

static inline int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static inline int exited_with(const struct child *c, int code)
{
    return WIFEXITED(c->status) && WEXITSTATUS(c->status) == code;
}

#endif
