/*
 * UNBLOCK_STATS=1: the runtime's counters (unb_stats) on stderr at exit.
 */
#ifndef UNB_STATS_H
#define UNB_STATS_H

/*
 * Makes the statistics print from an atexit handler rather than from the
 * library's destructor.  Call it after the runtime has started, from the
 * thread that started it or any other, as often as you like (the first
 * call registers, the others return at once).  A handler registered after
 * the scheduler's own one runs before it, while the workers' counters
 * still exist: a program linked with -lunblock stops its workers at exit,
 * so a destructor would see them gone.  Under the preload the workers run
 * until the process ends and the destructor alone is enough.
 */
void unb__stats_arm(void);

#endif
