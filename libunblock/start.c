/*
 * The program's start and fork.
 *
 * Under the preload, the dynamic linker binds the program's call to
 * __libc_start_main to ours.  We hand glibc a main of our own, which glibc
 * calls after the program's constructors: it starts the runtime with the
 * initial thread as worker 0 and runs the program's main as the first
 * coroutine, on a stack as large as the main thread's would be (lazily
 * committed, so it costs address space only).  When main returns, its
 * coroutine calls exit() with the value, as glibc would: atexit handlers
 * and stdio flushing run as natively, and the exit status is main's.  The
 * other coroutines go on running meanwhile, as threads do, until the
 * process ends.
 *
 * Which mode we are in: UNBLOCK_THREADS (runtime/config.h).  A program
 * linked with -lunblock binds __libc_start_main to us too, but keeps main
 * and its threads native unless it sets UNBLOCK_THREADS=coroutines.
 *
 * fork: a handler registered with pthread_atfork before any of the
 * program's (so its child part runs first) resets the runtime in the child
 * (runtime/sched.c, "fork").  exec needs nothing: LD_PRELOAD is inherited
 * with the environment, so a program the child executes is preloaded too.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../runtime/config.h"
#include "../runtime/sched.h"
#include "../runtime/sigmask.h"
#include "../runtime/tls.h"
#include "real.h"
#include "thread.h"

struct unb_coro *unb__main_coro;

typedef int (*main_fn)(int, char **, char **);

static struct {
    main_fn main;
    int argc;
    char **argv, **envp;
} prog;

/* main's stack: what the main thread would have had (RLIMIT_STACK),
 * between 8 MiB and 256 MiB. */
static size_t main_stack_size(void)
{
    const size_t min = 8u << 20, max = 256u << 20;
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return min;
    size_t n = (size_t)rl.rlim_cur;
    return n < min ? min : n > max ? max : n;
}

static void *main_coro(void *arg)
{
    (void)arg;
    unb__main_coro = unb__sched_current();
    exit(prog.main(prog.argc, prog.argv, prog.envp));
}

static int main_wrapper(int argc, char **argv, char **envp)
{
    prog.argc = argc;
    prog.argv = argv;
    prog.envp = envp;
    unb__thread_main_started();
    int rc = unb__sched_run_main(main_coro, NULL, main_stack_size());
    /* Only on failure: run the program natively rather than not at all. */
    unb__threads_coro = false;
    if (rc != -EBUSY)
        unb__say("cannot start the runtime (%s); the program runs with native threads",
                 strerror(-rc));
    return prog.main(argc, argv, envp);
}

typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void),
                        void (*)(void), void *);

UNB_EXPORT int __libc_start_main(main_fn main, int argc, char **argv,
                                 void (*init)(void), void (*fini)(void),
                                 void (*rtld_fini)(void), void *stack_end)
{
    start_fn real;
    void *sym = dlsym(RTLD_NEXT, "__libc_start_main");
    if (!sym)
        unb__die("cannot resolve the real __libc_start_main(): %s",
                 dlerror() ?: "not found");
    memcpy(&real, &sym, sizeof sym);
    unb__threads_coro = unb__config_threads_as_coroutines();
    if (!unb__threads_coro)
        return real(main, argc, argv, init, fini, rtld_fini, stack_end);
    /* Before the program's constructors, which may start coroutines: the
     * save areas' size is fixed from the first one on. */
    unb__tls_follow_coroutines();
    unb__sigmask_enable();
    prog.main = main;
    return real(main_wrapper, argc, argv, init, fini, rtld_fini, stack_end);
}

/* ---- fork ----------------------------------------------------------------- */

static void fork_prepare(void)
{
    unb__sched_fork_prepare();
}

static void fork_parent(void)
{
    unb__sched_fork_parent();
}

static void fork_child(void)
{
    unb__sched_fork_child();
    unb__thread_fork_child();
}

__attribute__((constructor(103))) static void start_init(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}
