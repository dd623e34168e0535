/*
 * Reading /proc without taking a descriptor number from the program
 * (proc.c).  For the monitor thread: one caller at a time.
 */
#ifndef UNB_PROC_H
#define UNB_PROC_H

#include <stdbool.h>
#include <stddef.h>

/* Starts the reader thread, which gets a file table of its own, and runs
 * `setup` on it first (the monitor's scheduling).  Called by the monitor
 * as it starts; without the reader (a kernel that refuses the table),
 * reads open their files in the process's table.  A read whose answer
 * takes longer than wait_ns (a reader held off its CPU) fails, and so do
 * the reads asked until that answer comes: the monitor looks again. */
void unb__proc_start(void (*setup)(void), long wait_ns);

/* Stops the reader and waits for it (the monitor, as it ends). */
void unb__proc_stop(void);

/* In a forked child: the reader is not there (no thread survives fork),
 * and its descriptors were in a table the child does not have. */
void unb__proc_forget(void);

/* Reads the start of the small /proc file `path` into buf, NUL-terminated
 * (what fits in size - 1 bytes).  False if it cannot be read. */
bool unb__proc_read(const char *path, char *buf, size_t size);

#endif
