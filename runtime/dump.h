/*
 * The coroutine dump (dump.c): on a signal the program opted into
 * (UNBLOCK_DUMP_SIGNAL), every live coroutine with its state, what it
 * waits in, and a backtrace where one can be had.
 */
#ifndef UNB_DUMP_H
#define UNB_DUMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Frames kept per coroutine. */
#define UNB_DUMP_FRAMES 32

/* One coroutine as the scheduler saw it (sched.c, unb__sched_snapshot). */
struct unb__dump_coro {
    uint64_t id;
    char name[16];
    uint8_t state;     /* UNB_CO_* */
    uint8_t wait_call; /* enum unb__call, while parked */
    bool pthread;      /* one of the program's threads (or main) */
    bool pinned;       /* holds a stdio lock: waits block its thread */
    int64_t wait_obj;
    double wait_since; /* loop time (ev_time's clock) at the park */
    int worker;        /* the worker it runs on, or -1 before it first ran */
    pid_t tid;         /* running: its OS thread */
    const char *blocking; /* running: the marked blocking call it is in */
    uintptr_t entry;      /* the function it was started with */
    unsigned nframes;
    uintptr_t frames[UNB_DUMP_FRAMES]; /* return addresses, innermost first */
};

/* One worker. */
struct unb__dump_worker {
    unsigned id;
    pid_t tid;     /* the OS thread running it now, or 0 */
    bool sleeping; /* in its loop, with nothing to run */
    unsigned queued;
};

struct unb__dump {
    struct unb__dump_coro *co;
    size_t nco;
    struct unb__dump_worker *w;
    unsigned nw;
    unsigned spare_threads;
    uint64_t handoffs;
};

/* Fills d with every live coroutine and every worker (malloc'd arrays;
 * free with unb__sched_snapshot_free).  0, or -ENOMEM.  Any thread; holds
 * the registry's locks while it copies, so a coroutine that ends meanwhile
 * waits for the copy. */
int unb__sched_snapshot(struct unb__dump *d);
void unb__sched_snapshot_free(struct unb__dump *d);

/* Asks the monitor thread for a dump (async-signal-safe). */
void unb__sched_dump_request(void);

/* Installs the dump signal's handler if UNBLOCK_DUMP_SIGNAL asked for one
 * (after the configuration is loaded). */
void unb__dump_install(void);

/* Writes the dump the last request asked for; on the monitor thread. */
void unb__dump_run(void);

#endif
