/*
 * Configuration from the environment, read once when the runtime starts.
 * Bad values are reported in one line on stderr and replaced by defaults.
 */
#ifndef UNB_CONFIG_H
#define UNB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define UNB_STACK_SIZE_DEFAULT (256u * 1024)
#define UNB_STACK_SIZE_MIN (16u * 1024)
#define UNB_STACK_SIZE_MAX (1024u * 1024 * 1024)
#define UNB_WORKERS_MAX 1024

#define UNB_SPARES_DEFAULT 64
#define UNB_SPARES_MAX 4096

struct unb__config {
    unsigned workers;  /* UNBLOCK_WORKERS */
    size_t stack_size; /* UNBLOCK_STACK_SIZE, page-rounded */
    unsigned spares;   /* UNBLOCK_SPARE_THREADS: 0 turns the monitor off */
    bool stats;        /* UNBLOCK_STATS=1: print statistics at exit */
    bool sched_batch;  /* UNBLOCK_SCHED_BATCH=1: workers' threads SCHED_BATCH */
    int dump_signal;   /* UNBLOCK_DUMP_SIGNAL: the coroutine dump's, or 0 */
};

extern struct unb__config unb__config;

/* Fills unb__config from the environment (ignored in setuid programs). */
void unb__config_load(void);

/*
 * Parses a size: digits with an optional k, m or g suffix (powers of 1024,
 * either case, optionally followed by "b" or "ib").  Returns false for
 * anything else or on overflow.
 */
bool unb__parse_size(const char *s, size_t *out);

/* Whether this library was loaded through LD_PRELOAD (an entry whose
 * file name starts with libunblock.so) rather than linked. */
bool unb__config_preloaded(void);

/*
 * UNBLOCK_THREADS: "coroutines" (main and pthread_create become
 * coroutines) or "native" (threads stay threads).  The default is
 * coroutines under LD_PRELOAD and native for a program linked with
 * -lunblock, which spawns coroutines itself.  Read once, at the program's
 * start.
 */
bool unb__config_threads_as_coroutines(void);

#endif
