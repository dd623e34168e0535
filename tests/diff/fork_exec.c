/*
 * fork_exec: starting programs.
 *
 *   - fork + execl("/bin/echo"): its line appears on the shared stdout
 *     before the parent's next line (the parent waits); exit status 0;
 *   - fork + exec with stdout on a pipe: the parent reads the line from
 *     the pipe (blocking until it comes), then EOF;
 *   - exec of a missing program: the child reports ENOENT through a
 *     close-on-exec pipe (the classic pattern), and exits 127;
 *   - exec of /bin/sh -c "exit 3": status 3;
 *   - posix_spawn of /bin/echo, popen of "echo ..." (fgets, pclose 0),
 *     system("exit 5") (status 5), all from a thread.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include "diff.h"

extern char **environ;

static void status(const char *what, int st)
{
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
}

static void *from_thread(void *arg)
{
    (void)arg;
    pid_t pid;
    char *argv[] = {"echo", "posix_spawn", "from", "a", "thread", NULL};
    int e = posix_spawn(&pid, "/bin/echo", NULL, NULL, argv, environ);
    int st = 0;
    pid_t w = e == 0 ? waitpid(pid, &st, 0) : -1;
    printf("posix_spawn = %s\n", ename(e));
    if (w == pid)
        status("  echo", st);
    FILE *f = popen("echo popen line", "r");
    char line[64] = "";
    if (f && fgets(line, sizeof line, f))
        printf("popen read: %s", line);
    if (f)
        printf("pclose = %d\n", pclose(f));
    st = system("exit 5");
    status("system(\"exit 5\")", st);
    return NULL;
}

int main(void)
{
    diff_start(1);
    int st;
    pid_t pid = (pid_t)MUST(fork());
    if (pid == 0) {
        execl("/bin/echo", "echo", "hello from /bin/echo", (char *)NULL);
        _exit(127);
    }
    if (waitpid(pid, &st, 0) == pid)
        status("echo", st);

    int p[2];
    MUST(pipe(p));
    pid = (pid_t)MUST(fork());
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl("/bin/sh", "sh", "-c", "sleep 0.05; echo through a pipe", (char *)NULL);
        _exit(127);
    }
    MUST(close(p[1]));
    char b[64];
    long n = SYS("read the child's line", read(p[0], b, sizeof b - 1));
    if (n > 0)
        printf("  line: %.*s", (int)n, b);
    SYS("read at EOF", read(p[0], b, sizeof b));
    MUST(close(p[0]));
    if (waitpid(pid, &st, 0) == pid)
        status("sh", st);

    MUST(pipe2(p, O_CLOEXEC));
    pid = (pid_t)MUST(fork());
    if (pid == 0) {
        execl("/nonexistent/program", "program", (char *)NULL);
        int e = errno;
        ssize_t w = write(p[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    MUST(close(p[1]));
    int e = 0;
    n = read(p[0], &e, sizeof e);
    printf("exec of a missing program: the child reports %s\n",
           n == sizeof e ? ename(e) : "nothing");
    MUST(close(p[0]));
    if (waitpid(pid, &st, 0) == pid)
        status("  child", st);

    pid = (pid_t)MUST(fork());
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "exit 3", (char *)NULL);
        _exit(127);
    }
    if (waitpid(pid, &st, 0) == pid)
        status("sh -c 'exit 3'", st);

    join(spawn(from_thread, NULL));
    return 0;
}
