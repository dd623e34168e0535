/*
 * The M:N scheduler.
 *
 * Concepts
 * --------
 * A *coroutine* is a function running on its own mmap'd stack (stack.c).
 * A *worker* runs coroutines on an OS thread; there are UNBLOCK_WORKERS of
 * them, started by the first unb_spawn.  Normally each worker keeps its
 * thread for good; when that thread is stuck in a call or a computation,
 * the monitor gives the worker to a spare thread (see "The monitor"), so
 * a worker is Go's P and the thread running it Go's M (struct unb__m).
 * Each worker owns:
 *
 *   - a run queue: a Chase-Lev deque (deque.c) of runnable coroutines.  Only
 *     the owner pushes; the owner and idle workers take from the top.
 *   - a libev loop.  A coroutine that waits for a fd or a timer starts a
 *     watcher on the loop of the worker it is running on, then parks; the
 *     watcher's callback, run by that worker, makes it runnable again.  A
 *     loop is only ever touched by its own worker (libev loops are not
 *     thread-safe); other threads talk to a worker through its mailbox
 *     (unb__worker_post), which is an ev_async plus a lock-free list.
 *   - a cache of finished coroutines whose stacks can be reused.
 *
 * There is one more queue, the global *inject queue* (a locked list), for
 * coroutines made runnable by threads that are not workers: a plain thread
 * calling unb_spawn, a coroutine woken from a foreign thread.
 *
 * Switching
 * ---------
 * Switches go directly from one coroutine to the next where possible: a
 * coroutine that parks or yields takes the next coroutine from its own
 * worker's queue and jumps to it (one switch, about 6 ns).  Only when the
 * queue is empty, and on every 64th switch, does it jump to the worker's
 * scheduler context (the OS thread's own stack), which polls the loop,
 * looks at the inject queue, steals, or sleeps.
 *
 * A coroutine that parks must publish itself to its waker (put itself on a
 * wait list, start a watcher) before it switches away, yet must not be
 * resumed by another worker until its registers are saved.  So every switch
 * carries an *after* action that the next context runs on the same thread,
 * once the parked coroutine is off its stack (Go's gopark unlockf): release
 * the wait list's lock, push the yielder back on the queue, free the stack
 * of a finished coroutine.  Invariant: a coroutine is resumed only after
 * the after action of the switch that suspended it has run.
 *
 * Queue order and fairness
 * ------------------------
 * The owner takes from the *top* of its own deque, oldest first, with the
 * same CAS a thief uses.  Rejected: the classic owner LIFO pop.  It keeps
 * caches warm, but a coroutine that yields is pushed at the bottom and would
 * be popped straight back (yield would not yield), and two coroutines that
 * wake each other would starve everything older in the queue.  Go and Tokio
 * pair LIFO with a FIFO and a cap for the same reason; a FIFO alone costs
 * one uncontended CAS per switch.  Every 61st scheduler pass the inject
 * queue is served before the local one, so foreign work cannot starve.
 *
 * Stealing and idle workers (the wake protocol)
 * ---------------------------------------------
 * A worker with nothing to run becomes *spinning* (looking for work: it
 * steals half of a random victim's queue, and looks at the inject queue)
 * if fewer than half of the busy workers are already spinning, and spins
 * for up to 20 us: a producer that makes work every few hundred
 * nanoseconds then feeds it without a single wake-up (spinning less, a
 * burst of 10,000 spawns cost 6,940 wake-ups; with the spin it costs a
 * handful).  A worker that finds nothing becomes *idle*: it blocks in its
 * loop (epoll_wait) until I/O, a timer, or a wake-up by ev_async_send.
 *
 * Waking costs a syscall (an eventfd write), so it must be rare: a worker
 * that makes work available wakes an idle worker only if there is an idle
 * worker and no worker is spinning (Go's wakep).  A burst of a thousand
 * spawns therefore wakes at most one worker; that worker, once it finds
 * work, stops spinning and, if more work is visible, wakes the next.  The
 * protocol that makes this free of lost wake-ups:
 *
 *   producer                              worker going idle
 *   1. push work (deque or inject)        1. join the idle list, nidle++
 *   2. seq_cst fence                      2. if spinning: nspinning--
 *   3. if nidle > 0 and nspinning == 0:   3. seq_cst fence
 *        CAS nspinning 0 -> 1, pop an     4. look at every queue again; if
 *        idle worker, mark it woken         any has work, leave the idle
 *        spinning, ev_async_send it         list and go back to work
 *                                         5. block in ev_run(EVRUN_ONCE)
 *
 * The fences order 1 before 3 on both sides, so either the producer sees
 * the idle worker (and wakes it) or the worker sees the work (and takes
 * it).  A wake-up sent between 4 and 5 is not lost: libev's async flag
 * makes the next epoll_wait return at once.  A spinning worker that finds
 * work decrements nspinning before running it, and wakes another worker if
 * more work is visible (step 3 skipped waking because it was spinning).
 *
 * Polling.  A busy worker polls its loop without blocking every 61
 * switches, or once per queue length if its queue is longer, and only
 * while some coroutine waits on it (`waiting`), so compute and yield loops
 * make no syscalls at all.  Polling more often than the queue drains
 * gains nothing and costs much: epoll is level-triggered, so every fd
 * whose coroutine is still queued is reported again, and the kernel
 * re-polls each one (at 10,000 connections, polling every 61 switches
 * spent most of the time in tcp_poll).  A worker whose queue
 * runs dry does not poll first: it steals, and then blocks in its loop,
 * whose epoll_wait returns at once with whatever is already ready (one
 * syscall, not a non-blocking poll followed by a blocking one).
 * Callbacks that make coroutines runnable during a poll do not wake other
 * workers one by one; after the poll, one wakep if more than one
 * coroutine became runnable.
 *
 * Stack reuse.  A finished coroutine's stack goes to its worker's cache,
 * and past 128 cached, half of them move to a shared pool in one locked
 * step; a worker with an empty cache refills 64 at a time from the pool.
 * So stacks circulate when one worker spawns and another finishes the
 * coroutines (the common case under stealing) instead of being unmapped
 * on one side and mapped on the other.  The pool holds at most 4096;
 * beyond that stacks are unmapped.
 *
 * Threads and the kernel's scheduler
 * ----------------------------------
 * Two workers on a machine whose CPUs are all busy (two CPUs, one of them
 * taken by a load client) serve an echo load slower than one: each worker
 * runs dry, sleeps in epoll_wait, and on its wake-up preempts the thread
 * running there, the client more often than not, which then waits for the
 * CPU while the other idles (echo_server at 100 connections: 0.3 CPUs
 * idle, each worker waiting for a CPU 30% of the time; about 100k
 * requests/s, against 150k with one worker or a libev loop).  Spinning
 * less or polling less did not change it; SCHED_BATCH, under which a
 * woken thread does not preempt, did: medians 133-151k against 101-115k
 * in three sets of five runs.  It is not the default, because it is what
 * it says: with the CPUs busy with other programs, a woken worker waits
 * for the running thread's slice to end (one connection beside two
 * CPU-bound loops: p99 3 ms against 0.6 ms).  So UNBLOCK_SCHED_BATCH=1
 * asks for it (sched_batch): the threads that start as workers, once
 * there are two workers or more, and only from SCHED_OTHER.  Not the
 * monitor, nor the spare threads it starts: they exist to act at once (a
 * worker's thread that lost its worker in a handoff keeps its policy as a
 * spare).
 *
 * The program's main, under the preload
 * -------------------------------------
 * unb__sched_run_main starts the runtime with the process's initial thread
 * as worker 0 (one OS thread fewer than a separate worker would cost) and
 * main as the first coroutine.  That thread never returns to glibc: the
 * program ends by exit() on whichever worker runs the coroutine that calls
 * it, and at exit the workers are left running, as a native process's
 * threads run on during exit().
 *
 * Threads as coroutines add three things to a coroutine: a magic first
 * word (so that a pthread_t can be told from a real thread's), a pointer
 * for the hook layer's per-thread data (keys), run down by an exit hook
 * when the coroutine ends, and a *pinned* count: while a coroutine holds
 * something that belongs to its OS thread (a stdio lock taken with
 * flockfile), its waits block the thread instead of parking, so no other
 * coroutine runs on that thread meanwhile (unb__sched_parkable).
 *
 * fork
 * ----
 * The child of a fork has only the calling thread.  The child keeps the
 * calling worker's thread and scheduler context (its M), forgets the
 * spares and starts a monitor of its own, gives every worker a new
 * loop and an empty queue (the parent's epoll instance is shared with the
 * parent and must not be touched), drops every other coroutine (they were
 * other threads), and starts threads for the other workers.
 *
 * Thread-local state
 * ------------------
 * The current coroutine and worker are __thread variables of the OS
 * thread.  A coroutine can resume on another worker, and the compiler may
 * keep a TLS address in a register across a call, so code that parks reads
 * them again only through UNB_TLS_FRESH (sched.h).
 *
 * errno is per thread, so each coroutine keeps its own: switch_out saves
 * it before a switch and restores it after, through a fresh TLS address
 * (unb_errno, common.h).  A coroutine starts with errno 0, as a thread
 * does.  The program's own __thread variables (and its libraries', not
 * libc's) are per coroutine the same way when threads are coroutines:
 * switch_out saves its static TLS blocks into the coroutine's save area
 * (above the struct, in its mapping), and resumed() loads them unless the
 * thread still holds them (m->tls_owner is the coroutine, and it last
 * ran on this thread); runtime/tls.c says which blocks and how pointers
 * into them move with a coroutine to another thread.  A signal mask is
 * a thread's too: resumed() gives the thread the coroutine's mask when
 * it differs from the one the thread has (m->kmask), and a worker that
 * waits for work waits with what every coroutine blocks (sigmask.h).  Compiled code may
 * keep errno's address (glibc declares __errno_location const) or a
 * __thread variable's address across a call that parks, which is why a
 * coroutine must come back to the same thread (and why a handoff gives
 * the worker back to its own thread, "Taking the worker back" below):
 *
 * Affinity
 * --------
 * A coroutine is stealable only until it first runs.  The worker that runs
 * it first becomes its *home* and it runs there from then on: its
 * wake-ups go to the home (unb__sched_ready queues it locally on the home,
 * or posts co->ready_msg to the home's mailbox from anywhere else), into
 * a FIFO of homed coroutines that only the owner touches (no CAS).  New
 * coroutines stay in the Chase-Lev deque, where idle workers steal them;
 * so load spreads when coroutines start, which for servers is when
 * connections arrive.  Stealing alone did not spread them when they came
 * one at a time: the spawner's worker took each from its own deque as
 * soon as the spawner parked, before the woken worker could steal it, and
 * a thread-per-connection server under the preload homed all its
 * connections on one worker in about 1 run in 5 (a server computing 50 us
 * a request then ran at half its native speed for good).  So each worker
 * counts the live coroutines homed on it (nlive), and a worker taking a
 * new coroutine from its own deque gives it to one home to at most half
 * as many, less one (place_elsewhere: posted to that worker's
 * mailbox, homed there before it runs).  Only a gross imbalance: an even
 * split (placing at a difference of two) cost the preloaded echo_threads
 * 2-9% at 1,000 connections on the 2-CPU bench machine, whose client
 * leaves the second worker no CPU of its own; stealing does the rest.
 * Rejected: stealing running coroutines.  It balances
 * long-lived compute better, but it made cached errno addresses read
 * another thread's errno in most runs of an ordinary -O2 program
 * (tests/preload/errno_cached.c), and moving I/O coroutines cost a
 * mailbox round trip each.  The owner takes from the homed FIFO, and every
 * 8th take from the deque first, so new work starts even on a busy worker.
 * The one exception: a coroutine that parks on a fd homed on another
 * worker moves there to park (fd.h); its wake-up brings it home before
 * the hook returns.  Home is a worker, not a thread: after a handoff the
 * worker's coroutines run on its new thread (a documented difference:
 * cached errno and __thread addresses belong to the old thread).
 *
 * The monitor
 * -----------
 * A coroutine can hold its thread in ways no hook sees: a raw syscall(),
 * a blocking call glibc makes internally (stdio's write to a full socket,
 * the resolver), a lock another process holds, or a computation without
 * calls.  Its worker's other coroutines would wait.  A monitor thread
 * watches for that.  Each thread counts a *beat* when it switches
 * coroutines, and stamps it with the cycle counter (the TSC: 3 ns a
 * switch).  A worker whose thread has not beaten for a while, outside the
 * runtime, while something else waits on it (its queue, its mailbox, or a
 * watcher on its loop; coroutines not yet started only if no worker is
 * idle to steal them) is stuck if its thread is in a call marked as
 * blocking (the hooks of libunblock/blocking.c, read and write on files
 * and devices) or asleep in the kernel (/proc's state: a raw syscall,
 * glibc's internal locks and I/O); a thread that runs has to have made no
 * switch for two ticks (0.5 ms) and to have used the CPU for half of the
 * time measured (a computation).  A runnable thread the kernel has not run
 * (the CPUs are busy) is not stuck: another thread would run no sooner.
 * Before anything else, the monitor asks the thread to yield (yield_req):
 * the end of a marked call in the program's code is a safe point, so a
 * loop of short calls (the resolver, page-cached reads) yields there at
 * the next call's end, and a marked call still running a tick later is
 * handed off.  Such a yield polls the loop on the way, before the
 * coroutine goes back on the queue, so that what the poll wakes runs
 * first (queued behind it, a heartbeat beside a resolver loop waited a
 * slice more: p99 gap 1.76 ms, now 1.24-1.47); and while the coroutine
 * goes on making marked calls with others waiting, the monitor asks again
 * each tick: a loop of short calls gives way each 0.25 ms (as a busy
 * worker's own watchdog would fire only 0.625 ms after the yield, a
 * heartbeat beside a resolver loop waited up to 5 ms).  A marked call
 * also yields by itself, before it starts and when it ends, once a timer
 * of its worker is due: each park with a deadline leaves the worker's
 * soonest one, in cycles, with its thread (due_cyc, cycles_at), and the
 * call compares it with the counter (a load when no deadline waits, and
 * an rdtsc of 10 ns each side when one does).  So a sleeper's timer fires
 * at the first call's end after it is due, without waiting for a watchdog
 * and a look; and a call that may block long does not start with a timer
 * already due behind it (a coroutine that computed and then read a file
 * into a fresh buffer, 3 ms of page faults, kept a heartbeat due before
 * the read waiting for the read and the handoff's latency on top).
 *
 * When to look: the watchdog.  Looking at every worker each tick (0.25
 * ms) cost a busy echo server 12% of its throughput: on these machines a
 * thread's sleep and wake-up cost about 17 us of CPU, and 4000 wake-ups a
 * second also preempt the busy threads.  So the monitor sleeps until a
 * worker may be stuck.  Each worker has a watchdog, a timerfd, which its
 * own thread arms at a switch, at most once a tick, to fire 2.5 ticks
 * later (a syscall of about 2 us, with a read of the thread's CPU clock
 * for the judgement above; it also marks the worker's poll as due).  A
 * worker that keeps switching keeps pushing its watchdog back, and the
 * monitor sleeps (in ppoll on the watchdogs and an eventfd for stop and
 * dump requests).  A watchdog fires only when its worker has not switched
 * for 1.5 ticks or more, or sleeps in its loop: then the monitor watches
 * that worker, looking each tick or sooner where a rule says when, until
 * it switches (and so arms its watchdog again) or sleeps in its loop
 * (whose next switch arms it).  A worker it can do nothing for yet (its
 * thread inside the runtime, or runnable and not run) it looks at again
 * after one tick, then two, then four (look_later): on two CPUs shared
 * with the echo bench's client, preempted workers woke the monitor about
 * 700 times a second otherwise.  An idle worker costs one wake-up after
 * the last switch.  A computation is handed off 2 to 2.5 ticks after its
 * last switch, a thread asleep in a call 1.5 to 2.5 ticks after.
 * A watchdog fires on the CPU of the thread that armed it, and the kernel
 * then tends to wake the monitor there, behind the computation: with the
 * default slice the monitor waited for the scheduler's next tick, up to
 * 4 ms, in half of bench_monitor's compute runs.  So the monitor asks for
 * a 0.1 ms slice (Linux 6.12's EEVDF; older kernels ignore it), with which
 * a woken thread preempts at once.  That preempts code in user space
 * only: a thread inside a long system call (a read taking page faults)
 * keeps its CPU, on a kernel without preemption, until the call returns
 * or the next scheduler tick.  And a machine that describes no shared
 * caches (a Firecracker VM) never looks for an idle CPU at a wake-up: a
 * thread wakes where it last ran or on its waker's CPU.  So the monitor
 * keeps itself off the CPUs its workers' threads were last seen on, where
 * that leaves one (monitor_place: a thread notes its CPU when it arms its
 * watchdog, the monitor when it reads /proc), and a spare is woken off
 * the stuck thread's CPU (place_spare); a new spare may start on any CPU,
 * and the kernel, starting a thread, does look for the idlest.
 * bench_monitor's file read (the first 1 MiB into a fresh buffer, 4 to
 * 6 ms of page faults): largest gap 3.3-5.0 ms before, 1.4-2.0 ms in most
 * runs after.  In the others, and in every run after another scenario,
 * the monitor started the first spare thread at the handoff, and after
 * its clone3 ran nothing until the reader's read returned (perf trace):
 * 4.0-5.9 ms.  So the monitor starts one spare as it starts
 * (spare_prepare): 1.2-1.3 ms.  A ready spare completes handoffs that a
 * thread's creation let lapse, and while each moved the stuck coroutine
 * to the spare for good, scm_rights under ASan beside a busy CI run read
 * a stale errno (the limit in "Thread-local state") in 59 of 120 runs
 * with it, 5 of 120 without; since the worker goes back to its own
 * thread ("Taking the worker back"), 0 of 60 with it beside two CPU
 * hogs (14 of 60 before, interleaved).
 *
 * A stuck worker is *handed off*: a spare thread takes the worker over, its queue,
 * its loop and its caches, and runs it from where it stood.  The stuck
 * coroutine goes on running on the old thread; at its next entry into the
 * runtime (the blocking call's end, or its next hook) it sees that its
 * thread lost the worker.  A pinned coroutine cannot move: it goes on as
 * a plain thread would until it unpins.
 *
 * Taking the worker back.  Each worker has a *home* thread, the one
 * started for it (for worker 0 under the preload, the process's initial
 * thread), and runs elsewhere only while its home is stuck.  A home that
 * lost its worker waits for it at that entry (home_wait: w->home_wants,
 * and a wake-up of the worker's loop), with its coroutine where it
 * stands: the spare gives the worker back at its next pass through the
 * scheduler (find_runnable, which every 64th switch and every idle
 * moment reaches), or the monitor gives it back in place of a spare if
 * the spare is stuck in its turn (has_work counts the waiting home).  The
 * spare goes back to the pool.  So the stuck coroutine never moves, and
 * the others move to the spare and back: their code's cached errno and
 * __thread addresses are the home's, wrong only while the spare runs them
 * and right again after.  What stays wrong: addresses that code computed
 * on the spare (a thread that started there, a function entered there)
 * and keeps after the worker went home.  Before, the coroutine posted
 * itself to its worker's mailbox and the old thread became a spare, so a
 * handoff moved every coroutine of the worker for good, the stuck one
 * first: tests/preload/errno_handoff.c (errno through an address kept
 * across a raw nanosleep, a computation and a terminal's read, each
 * handed off) failed 12 of its 20 checks in each of 6 runs with one
 * worker (5 or 6 with two), and passes.
 * A thread other than the home (a spare) that loses the worker still
 * posts its coroutine to the mailbox and joins the pool.  A spare's
 * worker pointer (w->m) is set before the spare is woken: set after,
 * as it was, it could overwrite a spare's quick give back, and the
 * monitor, taking the worker from a thread that no longer ran it, gave
 * one worker to two threads (tests/diff/pipe_workers, 1 run in 4).
 *
 * The protocol.  A thread touches its worker only inside a *runtime
 * section* (unb__rt_enter/unb__rt_leave, sched.h; a depth counter that
 * each coroutine carries across its switches).  The monitor takes a
 * worker only from a thread outside every section: it announces the take
 * (take = PENDING), fences every thread of the process with membarrier
 * (each running thread executes a full barrier), and then reads the
 * thread's depth: nonzero, it backs off; zero, the take is DONE and the
 * worker is the spare's.  The thread, entering a section, raises its depth
 * and reads the take with only a compiler barrier between, so the common
 * path pays two plain stores and a load: either the monitor sees the depth,
 * or the thread sees the take (and waits for the decision if PENDING).
 * Without membarrier, the entry pays a full fence instead.  A thread is
 * inside a section while it runs its scheduler, so an idle worker (asleep
 * in epoll_wait) is never taken; a new spare starts inside one until it
 * runs a coroutine.  A switch's after action belongs to the section of the
 * side that switched: the resumed coroutine runs it before it lowers the
 * depth to its own (a yield's requeue, run after the lowering, once let a
 * spare and the old thread push to one worker's queue).  A runtime wait
 * that blocks its thread for a pinned coroutine (a futex wait in the
 * parking lot) leaves its section for the duration.  The parking lot's
 * spinlocks are taken inside a section, so a coroutine never moves to
 * another thread while holding one.
 *
 * Spares: at most UNBLOCK_SPARE_THREADS (64 by default; 0 turns the
 * monitor off) beyond the workers; idle ones wait 2 s for a worker to take
 * over, then exit (the process's initial thread stays).  The monitor
 * starts the first as it starts (above); a spare takes a malloc arena
 * only at its first malloc, not as it starts (an arena is 64 MiB of
 * mappings made under the process's mmap lock).  The monitor
 * also marks a watched worker's poll as due at each look, so timers and
 * I/O wait at most a tick on a worker whose coroutines run long between
 * switches.  (Marking it only on a worker that had not polled since the
 * last look saved no measurable CPU in an echo server, which polls often
 * anyway, and let a timer wait two looks: not kept.)
 * A handoff costs about as much as two thread wake-ups; a coroutine that
 * computes for long keeps being handed off each millisecond or so, which
 * works as coarse preemption without interrupting it.
 *
 * The monitor's /proc reads (a thread's state; statm before a spare
 * under RLIMIT_AS) go through a thread with a file table of its own, the
 * reader (proc.c).  Opened in the process's table, each file held the
 * lowest free number while it was open: a dup or accept of the program's
 * got another number, or EMFILE at the program's limit, and a number the
 * program had just freed was taken from under it (test_net's EMFILE
 * check, 3 of 40 runs under ASan beside two busy loops; fd_lowest, 7 of
 * 8 runs).  The monitor asks and waits on a futex, the reader kept on
 * the monitor's CPU, and a read that takes longer than 4 ticks counts as
 * not known: the monitor looks again.
 *
 * Under valgrind the rules are in the tool's time.  Its threads run one
 * at a time, each while it holds the tool's lock, which it gives up at
 * each syscall that may block and after a slice of 100,000 blocks of
 * code (about 5 ms under memcheck, which runs code 20 to 50 times
 * slower).  A thread that waits for the lock sleeps in the kernel, so
 * /proc says the same of a worker that waits for its turn as of one
 * stuck in a call; and since the monitor takes the lock between any two
 * syscalls of a worker, a look each 0.25 ms finds a worker "without a
 * beat" between two calls of one coroutine.  So there a tick is 10 ms
 * (VALGRIND_TICK_FACTOR times longer) and the monitor takes a worker that
 * has not beaten for two ticks as stuck, in a call or not, without
 * reading /proc: 20 to 25 ms, a few of the tool's slices, as natively
 * two ticks are a few of the kernel's.  With the tool's fair lock
 * (--fair-sched=yes, as make test-valgrind runs it) a worker that only
 * waits for its turn gets it within a slice per runnable thread; with
 * the default lock, which lets a computing thread keep it, a worker can
 * wait longer and be handed off although nothing blocks it.
 *
 * The dump
 *
 * When a dump signal is set, every coroutine is in a registry from its
 * creation to its end: lists striped by id, each under its own lock, so a
 * birth or a death costs one uncontended lock.  Nothing in scheduling
 * reads it; it is there so that the dump (dump.c), on the monitor thread,
 * can list every coroutine.
 * Each park records what the coroutine waits in (the program's call and
 * its object, calls.h) and the loop time, and each switch records the
 * coroutine's state and the thread that runs it; these are plain stores
 * beside the switch's own.  The dump's copy holds a stripe's lock while
 * it reads that stripe's coroutines, so none can end and free its stack
 * while its frame pointers are followed; a UNBLOCK_DUMP_SIGNAL keeps the
 * monitor thread running even with the spares off (then it only waits
 * for dumps).
 */
#define _GNU_SOURCE
#include "sched.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>

#include <unblock.h>

#include "../libunblock/real.h"
#include "config.h"
#include "deque.h"
#include "dump.h"
#include "intr.h"
#include "fd.h"
#include "lock.h"
#include "plot.h"
#include "proc.h"
#include "sanitize.h"
#include "sys.h"
#include "sigmask.h"
#include "tls.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* Finished coroutines kept for reuse: per worker, then in a shared pool. */
#define POOL_WORKER_MAX 128
#define POOL_BATCH 64
#define POOL_GLOBAL_MAX 4096
/* Scheduler passes between looks at the inject queue / the loop. */
#define FAIR_INTERVAL 61
#define SWITCHES_PER_SCHED_PASS 64
/* How long a spinning worker looks for work before it sleeps. */
#ifndef SPIN_NS
#define SPIN_NS 20000
#endif
#define SPIN_ROUNDS 64
/* A new coroutine starts on another worker if that one is home to n live
 * coroutines and n * PLACE_RATIO + PLACE_SLACK <= this one's count (see
 * "Affinity"). */
#define PLACE_SLACK 2
#define PLACE_RATIO 2
#ifndef SPIN_POLL_ROUNDS
#define SPIN_POLL_ROUNDS 16
#endif
/* How far below its stack a coroutine's stack pointer is taken for an
 * overflow (of a stack without a guard page, seen at a switch). */
#define OVERFLOW_REACH (256u * 1024)

struct unb__worker {
    struct unb__deque runq;
    _Atomic(struct unb__m *) m; /* the OS thread running this worker */
    uint32_t tick;              /* switches out of coroutines */
    uint32_t last_poll_tick;
    uint32_t last_inject_tick;
    uint32_t rng;          /* victim selection */
    int waiting;           /* coroutines parked on our loop */
    bool spinning;         /* counted in rt.nspinning */
    bool in_poll;          /* inside ev_run */
    bool in_sleeping_poll; /* inside a blocking ev_run */
    bool poll_due;         /* a tick passed (the watchdog, the monitor): poll */
    int64_t soonest;       /* the soonest deadline of a park (ns), or 0 */
    struct unb_coro *homed_head, *homed_tail; /* runnable coroutines homed here */
    uint32_t nhomed;
    _Atomic uint32_t nlive; /* live coroutines homed here (see "Affinity") */
    uint32_t take_rr;
    struct unb_coro *pool; /* finished coroutines to reuse */
    unsigned npool;
    struct ev_loop *loop;
    ev_async wake; /* mailbox and wakep signal */
    _Atomic(struct unb__msg *) mailbox;
    /* Under rt.idle_lock: */
    struct unb__worker *idle_next;
    bool in_idle_list;
    bool woken_spinning; /* popped by wakep; spin on wake */
    /* Its own thread, started for it; others run it only while that one
     * is stuck (see "Taking the worker back"). */
    struct unb__m *home_m;
    _Atomic uint32_t home_wants; /* home_m, back from its call, waits for it */
    /* The watchdog (see "The monitor"), armed by the worker's thread at
     * a switch, at most once a tick; read by the monitor. */
    int watch_fd;                     /* its timerfd, or -1 */
    _Atomic uint64_t watch_cyc;       /* cycle count at the last arming */
    _Atomic int64_t watch_cpu;        /* the arming thread's CPU time then */
    _Atomic(struct unb__m *) watch_m; /* the arming thread */
    /* The monitor's own view (monitor thread only): */
    uint64_t mon_next;    /* cycle count of its next look; 0: not watched */
    uint64_t mon_armed;   /* watch_cyc when the watchdog fired */
    struct unb__m *mon_m; /* the thread it last looked at, */
    uint32_t mon_beat;    /* and that thread's beat then */
    bool mon_asked;       /* a yield was asked of that beat's marked call */
    bool mon_calls;       /* and so of a loop of them: ask each tick */
    uint8_t mon_backoff;  /* looks it could not act on, that beat (look_later) */
    int64_t mon_cpu;      /* that thread's CPU time at mon_cpu_cyc, or -1 */
    uint64_t mon_cpu_cyc;
    /* Counters: written by the owner only, read by anyone. */
    _Atomic uint64_t n_switches, n_steals, n_parks, n_wakeups;
    _Atomic uint64_t n_parks_by[UNB_CALL_COUNT];
    unsigned id;
    _Atomic uint32_t exited;
} UNB_ALIGNED_LINE;

/*
 * An OS thread that runs workers (Go's M; a worker is its P): one per
 * worker at start, and spare threads that take a worker over from a thread
 * stuck in a call or a computation (see "The monitor").  `st` is first:
 * sched.h's inline runtime-section markers see only it.
 */
struct unb__m {
    struct unb__m_state st;
    _Atomic uint64_t stamp; /* cycle count at its last beat */
    struct unb__ctx sched_ctx; /* the OS thread's own context */
    void (*after_fn)(void *);  /* action for the next context */
    void *after_arg;
    _Atomic(struct unb__worker *) w; /* the worker it runs, or NULL */
    _Atomic uint32_t wake;           /* futex: a spare's wake-up */
    _Atomic uint32_t set_up;         /* futex: 1 once thread_setup is done */
    struct unb__m *next;             /* rt.spares, rt.free_m */
    bool initial;                    /* the process's initial thread: stays */
    bool idle;                       /* in rt.spares (under rt.spare_lock) */
    bool reserved;                   /* new: spare_wait must not list it (spare_get
                                      * took it, or spare_prepare listed it) */
    bool first_worker;               /* started to run a worker, not as a spare */
    bool narrowed;                   /* kept off a CPU by the monitor (place_spare) */
    _Atomic int cpu;                 /* its CPU at its last watchdog arming, or -1 */
    _Atomic pid_t tid;               /* the kernel's id of the thread; 0
                                        until it has started (the monitor
                                        reads it) */
    pthread_t thread;
    void *altstack;
    struct unb_coro *tls_owner; /* whose TLS values its blocks hold */
    uint64_t kmask;             /* its kernel signal mask (sigmask.h) */
    void *thread_stack_lo; /* the OS thread's stack, for ASan */
    size_t thread_stack_size;
#ifdef UNB_TSAN
    void *tsan_fiber;
#endif
} UNB_ALIGNED_LINE;

enum { RT_STOPPED, RT_RUNNING };

static struct {
    _Atomic int state;
    _Atomic int stopping;
    struct unb__lock start_lock;
    unsigned nworkers;
    size_t stack_size;
    struct unb__worker *workers;

    _Atomic uint32_t nspinning UNB_ALIGNED_LINE;
    _Atomic uint32_t nidle;
    struct unb__lock idle_lock;
    struct unb__worker *idle_list;

    struct unb__lock inject_lock UNB_ALIGNED_LINE;
    _Atomic uint64_t ninject;
    struct unb_coro *inject_head, *inject_tail;

    struct unb__lock pool_lock UNB_ALIGNED_LINE;
    struct unb_coro *pool;
    unsigned npool;
    /* A stack could not be mapped (RLIMIT_AS): from then on stacks are
     * not cached, and each worker drops its cache at its next pass. */
    _Atomic bool as_tight;

    _Atomic uint64_t spawned UNB_ALIGNED_LINE;
    _Atomic int64_t alive;
    _Atomic int64_t peak_alive;
    _Atomic uint64_t foreign_wakeups;

    /* The monitor and its spare threads (see "The monitor"). */
    struct unb__lock spare_lock UNB_ALIGNED_LINE;
    struct unb__m *spares; /* idle spare threads */
    struct unb__m *free_m; /* structs of spares that exited, for reuse */
    unsigned nthreads;     /* live threads that run workers */
    unsigned nthreads_peak;
    _Atomic uint64_t handoffs;
    pthread_t monitor;
    bool monitor_running;
    _Atomic uint32_t monitor_stop;
    _Atomic int monitor_efd;   /* eventfd: wakes the monitor (stop, dump), or -1 */
    _Atomic uint32_t dump_req; /* a dump was asked for */
    _Atomic bool lazy; /* preload: only worker 0 runs until a second coroutine */
    sigset_t sigmask;  /* the workers' signal mask: spares take it too */
    bool said_no_spare;
    _Atomic bool batched; /* a worker's thread was made SCHED_BATCH */
} rt = {.monitor_efd = -1};

UNB_TLS struct unb__worker *unb__tls_worker;
UNB_TLS struct unb_coro *unb__tls_cur;
UNB_TLS struct unb__m_state *unb__tls_m;
bool unb__rt_fence;
/* The deadline a blocking poll on this thread waits for, or 0. */
static UNB_TLS int64_t tls_poll_deadline;
/* Plain reads, for code that has not parked since it read them last. */
#define tls_worker unb__tls_worker
#define tls_cur unb__tls_cur
#define tls_m ((struct unb__m *)unb__tls_m)
#define fresh_m() ((struct unb__m *)UNB_TLS_FRESH(unb__tls_m))

/* A plain field that only its owner writes and other threads (the monitor,
 * the statistics) read racily with relaxed atomic loads: the owner's writes
 * are relaxed atomic stores too (a plain mov on x86, as before), so the
 * reads are not data races. */
#define OWNER_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

#define STAT_INC(w, field)                                                             \
    atomic_store_explicit(&(w)->field,                                                 \
                          atomic_load_explicit(&(w)->field, memory_order_relaxed) + 1, \
                          memory_order_relaxed)

/* ---- accessors ---------------------------------------------------------- */

const struct unb__stack *unb__sched_current_stack(void)
{
    struct unb_coro *co = tls_cur;
    return co ? &co->stack : NULL;
}

struct ev_loop *unb__worker_loop(struct unb__worker *w)
{
    return w->loop;
}

bool unb__worker_sleeping_poll(struct unb__worker *w)
{
    return w->in_sleeping_poll;
}

void unb__worker_waiting_add(struct unb__worker *w, int delta)
{
    OWNER_SET(w->waiting, w->waiting + delta);
}

/* ---- switching ---------------------------------------------------------- */

static void run_after(struct unb__m *m)
{
    void (*fn)(void *) = m->after_fn;
    if (fn) {
        m->after_fn = NULL;
        fn(m->after_arg);
    }
}

/* ---- the watchdog ---------------------------------------------------------
 * (see "The monitor").  The cycle counter: the TSC where there is one (the
 * kernel keeps it in step across CPUs; a few cycles' skew only makes a
 * look early or late), else the monotonic clock in ns. */
static uint64_t now_ns(void);

static inline uint64_t cycles(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return now_ns();
#endif
}

/* Cycles between armings of a worker's watchdog (a tick), and how long
 * an armed watchdog waits (ns).  Set once by the monitor when it has
 * measured the cycle counter; until then nobody arms. */
static _Atomic uint64_t watch_period_cyc = UINT64_MAX;
static _Atomic long watch_delay_ns;

/* A CPU clock's reading in ns, or -1 (a thread that has exited). */
static int64_t cpu_clock_ns(clockid_t clk)
{
    struct timespec ts;
    if (unb__sys3(SYS_clock_gettime, clk, (long)&ts, 0) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sets w's watchdog to fire one delay from now; by its thread m, or by
 * the monitor (m NULL). */
static void watch_arm(struct unb__worker *w, struct unb__m *m, uint64_t now)
{
    long delay = atomic_load_explicit(&watch_delay_ns, memory_order_acquire);
    if (m) {
        atomic_store_explicit(&w->watch_cyc, now, memory_order_relaxed);
        atomic_store_explicit(&w->watch_m, m, memory_order_relaxed);
        atomic_store_explicit(&w->watch_cpu, cpu_clock_ns(CLOCK_THREAD_CPUTIME_ID), memory_order_relaxed);
        atomic_store_explicit(&m->cpu, sched_getcpu(), memory_order_relaxed); /* see monitor_place */
        /* A tick passed: timers and I/O are due a look, however long this
         * worker's coroutines run between switches. */
        __atomic_store_n(&w->poll_due, true, __ATOMIC_RELAXED);
    }
    if (w->watch_fd >= 0 && delay > 0) {
        struct itimerspec its = {.it_value = {delay / 1000000000, delay % 1000000000}};
        unb__sys6(SYS_timerfd_settime, w->watch_fd, 0, (long)&its, 0, 0, 0);
    }
}

/* A switch: the thread's sign of progress, and the watchdog's arming. */
static void beat(struct unb__m *m, struct unb__worker *w)
{
    uint64_t now = cycles();
    atomic_store_explicit(&m->stamp, now, memory_order_relaxed);
    atomic_store_explicit(&m->st.beat,
                          atomic_load_explicit(&m->st.beat, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (unb_unlikely(now - atomic_load_explicit(&w->watch_cyc, memory_order_relaxed) >=
                     atomic_load_explicit(&watch_period_cyc, memory_order_relaxed)))
        watch_arm(w, m, now);
}

/*
 * Saves the running context in *from and resumes `to` (a coroutine, or the
 * thread's scheduler when NULL).  `dying`: the current coroutine will never
 * be resumed (its stack is about to be freed).
 */
static void do_switch(struct unb__m *m, struct unb__ctx *from, struct unb_coro *to,
                      bool dying)
{
#ifdef UNB_ASAN
    void *fake_stack = NULL;
    if (to)
        __sanitizer_start_switch_fiber(dying ? NULL : &fake_stack, to->stack.lo,
                                       (size_t)(to->stack.hi - to->stack.lo));
    else
        __sanitizer_start_switch_fiber(dying ? NULL : &fake_stack, m->thread_stack_lo,
                                       m->thread_stack_size);
#endif
#ifdef UNB_TSAN
    __tsan_switch_to_fiber(to ? to->tsan_fiber : m->tsan_fiber, 0);
#endif
    (void)dying;
    unb__ctx_switch(from, to ? &to->ctx : &m->sched_ctx);
#ifdef UNB_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, NULL, NULL);
#endif
}

static void inject(struct unb_coro *co);

/* Owner: queues a runnable coroutine homed on w (its FIFO is w's alone). */
static void homed_push(struct unb__worker *w, struct unb_coro *co)
{
    co->next = NULL;
    if (w->homed_tail)
        w->homed_tail->next = co;
    else
        w->homed_head = co;
    w->homed_tail = co;
    OWNER_SET(w->nhomed, w->nhomed + 1);
}

static struct unb_coro *homed_pop(struct unb__worker *w)
{
    struct unb_coro *co = w->homed_head;
    if (co) {
        w->homed_head = co->next;
        if (!w->homed_head)
            w->homed_tail = NULL;
        OWNER_SET(w->nhomed, w->nhomed - 1);
    }
    return co;
}

static struct unb_coro *deque_take(struct unb__worker *w)
{
    if (rt.nworkers == 1) /* no thieves: no CAS */
        return unb__deque_take_alone(&w->runq);
    for (;;) {
        void *co = unb__deque_steal(&w->runq);
        if (co != UNB_DEQUE_ABORT)
            return co;
    }
}

/* Owner: the next coroutine of w's own queues, or NULL.  Mostly the homed
 * FIFO; every 8th take the stealable deque goes first, so that new
 * coroutines start even while old ones keep the worker busy. */
static bool place_elsewhere(struct unb__worker *w, struct unb_coro *co);

static struct unb_coro *take_local(struct unb__worker *w)
{
    struct unb_coro *co;
    if (w->homed_head && (++w->take_rr & 7) != 0)
        return homed_pop(w);
    while ((co = deque_take(w)) && place_elsewhere(w, co))
        ;
    return co ? co : homed_pop(w);
}

/* Owner: queues a runnable coroutine on w: a homed one in the FIFO, a new
 * one where thieves can take it. */
static void local_push(struct unb__worker *w, struct unb_coro *co)
{
    if (co->home)
        homed_push(w, co);
    else if (unb__deque_push(&w->runq, co) != 0)
        inject(co);
}

/* A coroutine about to run on m: its TLS values into m's blocks, unless
 * they are there already (it was the last to use them, and it last ran
 * here). */
static inline void tls_in(struct unb__m *m, struct unb_coro *co)
{
    if (unb__tls_size && (m->tls_owner != co || co->tls_on != m)) {
        unb__tls_load(co->tls, &co->tls_tp);
        m->tls_owner = co;
        co->tls_on = m;
    }
}

/* A coroutine leaving its thread: its TLS values into its save area. */
static inline void tls_out(struct unb_coro *co)
{
    if (unb__tls_size)
        unb__tls_save(co->tls, &co->tls_tp);
}

/* A coroutine about to run on m: its signal mask, if m's differs. */
static inline void sigmask_in(struct unb__m *m, struct unb_coro *co)
{
    if (!unb__sigmask_on)
        return;
    if (unb_unlikely(co->sigmask != m->kmask))
        unb__sigmask_apply(&m->kmask, co->sigmask);
    /* Signals sent to it alone (pthread_kill) arrive as it runs. */
    if (unb_unlikely(atomic_load_explicit(&co->sigpending, memory_order_relaxed) &
                     ~co->sigmask))
        unb__sigmask_deliver(co, m->tid);
}

void unb__sched_set_sigmask(uint64_t mask)
{
    struct unb_coro *co = tls_cur;
    struct unb__m *m = tls_m;
    unb__sigmask_set(co, mask);
    if (co->sigmask != m->kmask) /* pending signals it lets in arrive now */
        unb__sigmask_apply(&m->kmask, co->sigmask);
    if (atomic_load_explicit(&co->sigpending, memory_order_relaxed) & ~co->sigmask)
        unb__sigmask_deliver(co, m->tid);
}

void unb__sched_signal_coro(struct unb_coro *co, int sig)
{
    uint64_t bit = UINT64_C(1) << (sig - 1);
    /* Running on a thread inside a call marked as blocking (sigwait,
     * pause, sigsuspend, a raw wait): the kernel must see it on that
     * thread, which takes it as that thread would (a blocked signal stays
     * pending there for its sigwait).  Racy only if the call ends at the
     * same moment: then the coroutine, still running there, takes it. */
    struct unb__m *m = atomic_load_explicit(&co->on, memory_order_acquire);
    if (m && atomic_load_explicit(&co->state, memory_order_relaxed) == UNB_CO_RUNNING &&
        atomic_load_explicit(&m->st.blocking, memory_order_relaxed)) {
        unb__sys3(SYS_tgkill, unb__sys3(SYS_getpid, 0, 0, 0), m->tid, sig);
        return;
    }
    atomic_fetch_or(&co->sigpending, bit);
    if (co->sigmask & bit)
        return; /* pending for it until it lets it in, or takes it (sigwait) */
    unb__intr_interrupt_signal(co, sig);
    /* Parked: it takes the signal as it resumes.  Otherwise at its next
     * switch. */
}

uint64_t unb__sched_sigpending_take(uint64_t set)
{
    struct unb_coro *co = tls_cur;
    uint64_t have = atomic_load(&co->sigpending) & set;
    if (!have)
        return 0;
    uint64_t bit = have & -have; /* the lowest, as the kernel takes them */
    return atomic_fetch_and(&co->sigpending, ~bit) & bit;
}

void unb__sched_sigmask_resync(void)
{
    struct unb_coro *co = tls_cur;
    struct unb__m *m = tls_m;
    m->kmask = unb__sigmask_read();
    unb__sigmask_set(co, m->kmask);
}

void unb__sched_sigmask_will_be(uint64_t mask)
{
    struct unb_coro *co = tls_cur;
    struct unb__m *m = tls_m;
    unb__sigmask_set(co, mask);
    m->kmask = co->sigmask;
}

bool unb__sched_own_task(void)
{
    struct unb__m *m = tls_m;
    return m && m->tid == (pid_t)unb__sys3(SYS_gettid, 0, 0, 0);
}

bool unb__sched_idle_sigmask(sigset_t *out)
{
    struct unb__m *m = tls_m;
    if (!unb__sigmask_on || !m)
        return false;
    uint64_t idle = unb__sigmask_idle();
    if (idle == m->kmask)
        return false;
    unb__sigset_from_bits(out, idle);
    return true;
}

/* After a coroutine resumes: the action of whoever switched to it, then
 * the coroutine's errno, TLS, signal mask and runtime-section depth, on
 * whichever thread it resumes.  The action first, as in coro_main: it is
 * the switching side's runtime code, so it runs inside that side's
 * section (the depth still says so: a spare cannot take the worker while
 * it pushes to the worker's queue or polls its loop) and cannot leave its
 * errno to the coroutine. */
static void resumed(struct unb_coro *self, uint32_t depth)
{
    struct unb__m *m = fresh_m();
    run_after(m);
    unb_errno = self->saved_errno;
    tls_in(m, self);
    sigmask_in(m, self);
    /* Release, as unb__rt_leave: when this lowers the depth to 0, the
     * monitor's acquire load of it that lets a spare take the worker must
     * see every write this thread made to the worker before. */
    atomic_store_explicit(&m->st.depth, depth, memory_order_release);
}

/*
 * Leaves the running coroutine `self` for the next runnable one on this
 * worker, or for the scheduler.  The caller is in a runtime section and
 * has set m->after_fn.  Returns when self is resumed, possibly on another
 * worker, with its section depth less `leave` (a caller whose section
 * ends with the switch closes it there, saving a thread-local read).
 */
static void switch_out(struct unb__m *m, struct unb__worker *w, struct unb_coro *self,
                       bool dying, uint32_t leave)
{
    /* An overflow of a stack without a guard page shows up here at the
     * latest: the stack pointer is just below the stack.  Further away it
     * is a stack of the program's own (ucontext, a coroutine library of
     * its own), which may park as well. */
    char *sp = __builtin_frame_address(0);
    if (unb_unlikely(sp < self->stack.lo && sp >= self->stack.lo - OVERFLOW_REACH))
        unb__stack_overflow_die((size_t)(self->stack.hi - self->stack.map));

    struct unb_coro *next = NULL;
    if (unb_likely(++w->tick % SWITCHES_PER_SCHED_PASS != 0))
        next = take_local(w);
    tls_cur = next;
    if (next) {
        STAT_INC(w, n_switches);
        atomic_store_explicit(&next->on, m, memory_order_release);
        atomic_store_explicit(&next->state, UNB_CO_RUNNING, memory_order_relaxed);
    }
    beat(m, w);
    /* errno is per thread; give each coroutine its own, as it would have
     * had as a thread, on whichever thread it resumes. */
    self->saved_errno = unb_errno;
    if (!dying)
        tls_out(self);
    uint32_t depth = atomic_load_explicit(&m->st.depth, memory_order_relaxed);
    do_switch(m, &self->ctx, next, dying);
    resumed(self, depth - leave);
}

void unb__sched_park(void (*after)(void *), void *arg, enum unb__call call, int64_t obj)
{
    struct unb__worker *w = unb__rt_enter();
    struct unb__m *m = tls_m; /* fresh after the enter */
    struct unb_coro *self = tls_cur;
    UNB_ASSERT(w && self);
    m->after_fn = after;
    m->after_arg = arg;
    STAT_INC(w, n_parks);
    STAT_INC(w, n_parks_by[call]);
    self->wait_call = (uint8_t)call;
    self->wait_obj = obj;
    self->wait_since = ev_now(w->loop); /* the loop's clock: no syscall */
    atomic_store_explicit(&self->state, UNB_CO_PARKED, memory_order_relaxed);
    switch_out(m, w, self, false, 1);
}

/* ---- making work available ---------------------------------------------- */

static void wakep(void);

static void inject(struct unb_coro *co)
{
    co->next = NULL;
    unb__lock(&rt.inject_lock);
    if (rt.inject_tail)
        rt.inject_tail->next = co;
    else
        rt.inject_head = co;
    rt.inject_tail = co;
    atomic_fetch_add_explicit(&rt.ninject, 1, memory_order_relaxed);
    unb__unlock(&rt.inject_lock);
}

/* Takes one coroutine from the inject queue, moving up to a fair share of
 * the rest to w's queue. */
static struct unb_coro *take_inject(struct unb__worker *w)
{
    if (atomic_load_explicit(&rt.ninject, memory_order_relaxed) == 0)
        return NULL;
    unb__lock(&rt.inject_lock);
    uint64_t n = atomic_load_explicit(&rt.ninject, memory_order_relaxed);
    uint64_t want = n / rt.nworkers + 1;
    if (want > 128)
        want = 128;
    struct unb_coro *first = rt.inject_head, *co = first;
    uint64_t took = 0;
    while (co && took < want) {
        struct unb_coro *next = co->next;
        if (took > 0 && unb__deque_push(&w->runq, co) != 0)
            break;
        took++;
        co = next;
    }
    rt.inject_head = co;
    if (!co)
        rt.inject_tail = NULL;
    atomic_fetch_sub_explicit(&rt.ninject, took, memory_order_relaxed);
    unb__unlock(&rt.inject_lock);
    return first && took ? first : NULL;
}

static void arrive_home(struct unb__worker *w, struct unb__msg *m);
static uint32_t next_rand(struct unb__worker *w);

/* Queues co on its home worker from another: through the home's mailbox. */
static void post_home(struct unb_coro *co)
{
    co->ready_msg.fn = arrive_home;
    unb__worker_post(co->home, &co->ready_msg);
}

/*
 * Owner, taking a coroutine that has not run from its own deque: if
 * another worker is home to far fewer live coroutines (n * PLACE_RATIO +
 * PLACE_SLACK <= ours), make that one its home and post it there (see
 * "Affinity").  The other worker is the lesser of two picked at random
 * (all of them with three workers or fewer).
 */
static bool place_elsewhere(struct unb__worker *w, struct unb_coro *co)
{
    if (rt.nworkers < 2)
        return false;
    uint32_t mine = atomic_load_explicit(&w->nlive, memory_order_relaxed), least = mine;
    if (mine < PLACE_SLACK)
        return false;
    struct unb__worker *to = NULL;
    unsigned picks = rt.nworkers <= 3 ? rt.nworkers : 2;
    for (unsigned i = 0; i < picks; i++) {
        struct unb__worker *v =
            rt.nworkers <= 3 ? &rt.workers[i] : &rt.workers[next_rand(w) % rt.nworkers];
        uint32_t n = atomic_load_explicit(&v->nlive, memory_order_relaxed);
        if (v != w && n < least && n * PLACE_RATIO + PLACE_SLACK <= mine) {
            least = n;
            to = v;
        }
    }
    if (!to)
        return false;
    co->home = to;
    atomic_fetch_add_explicit(&to->nlive, 1, memory_order_relaxed);
    post_home(co);
    return true;
}

void unb__sched_ready(struct unb_coro *co)
{
    struct unb__worker *w = unb__rt_enter();
    struct unb__worker *home = co->home;
    if (home) {
        atomic_store_explicit(&co->state, UNB_CO_READY, memory_order_relaxed);
        /* It has run: it resumes where it ran (see "Affinity"). */
        if (home == w) {
            homed_push(w, co);
        } else {
            post_home(co);
        }
    } else if (unb_unlikely(!w || unb__deque_push(&w->runq, co) != 0)) {
        inject(co);
        wakep();
    } else if (!w->in_poll) { /* after a poll: one wakep, not one per callback */
        wakep();
    }
    unb__rt_leave();
}

/* Is there work anywhere?  Racy; used after the idle-side fence. */
static bool work_visible(void)
{
    if (atomic_load_explicit(&rt.ninject, memory_order_relaxed) != 0)
        return true;
    for (unsigned i = 0; i < rt.nworkers; i++)
        if (unb__deque_size(&rt.workers[i].runq) > 0)
            return true;
    return false;
}

/* Wakes an idle worker to spin, if there is one and nobody spins. */
static void wakep(void)
{
    unb__fence(); /* producer step 2 */
    if (atomic_load_explicit(&rt.nidle, memory_order_relaxed) == 0 ||
        atomic_load_explicit(&rt.nspinning, memory_order_relaxed) != 0)
        return;
    uint32_t zero = 0;
    if (!atomic_compare_exchange_strong(&rt.nspinning, &zero, 1))
        return;
    unb__lock(&rt.idle_lock);
    struct unb__worker *v = rt.idle_list;
    if (v) {
        rt.idle_list = v->idle_next;
        v->in_idle_list = false;
        v->woken_spinning = true;
        atomic_fetch_sub(&rt.nidle, 1);
    }
    unb__unlock(&rt.idle_lock);
    if (!v) {
        atomic_fetch_sub(&rt.nspinning, 1);
        return;
    }
    struct unb__worker *self = unb__sched_worker();
    if (self)
        STAT_INC(self, n_wakeups);
    else
        atomic_fetch_add_explicit(&rt.foreign_wakeups, 1, memory_order_relaxed);
    ev_async_send(v->loop, &v->wake);
}

/* ---- the mailbox ---------------------------------------------------------- */

void unb__worker_post(struct unb__worker *w, struct unb__msg *m)
{
    struct unb__msg *head = atomic_load_explicit(&w->mailbox, memory_order_relaxed);
    do
        m->next = head;
    while (!atomic_compare_exchange_weak_explicit(
        &w->mailbox, &head, m, memory_order_release, memory_order_relaxed));
    ev_async_send(w->loop, &w->wake);
}

struct migration {
    struct unb__msg msg; /* first: the message is the migration */
    struct unb_coro *co;
    struct unb__worker *to;
};

static void migrate_arrive(struct unb__worker *w, struct unb__msg *m)
{
    struct unb_coro *co = ((struct migration *)m)->co;
    /* The mailbox runs in the scheduler: queue it here, no wakep needed.
     * It runs here until it parks; its wake-up takes it home. */
    homed_push(w, co);
}

static void arrive_home(struct unb__worker *w, struct unb__msg *m)
{
    homed_push(w,
               (struct unb_coro *)((char *)m - offsetof(struct unb_coro, ready_msg)));
}

static void migrate_leave(void *arg)
{
    struct migration *mg = arg;
    unb__worker_post(mg->to, &mg->msg);
}

void unb__sched_migrate(struct unb__worker *to)
{
    struct migration mg = {.msg = {.fn = migrate_arrive}, .co = tls_cur, .to = to};
    unb__sched_park(migrate_leave, &mg, UNB_CALL_MIGRATE, 0);
}

static void drain_mailbox(struct unb__worker *w)
{
    if (atomic_load_explicit(&w->mailbox, memory_order_relaxed) == NULL)
        return;
    struct unb__msg *m =
        atomic_exchange_explicit(&w->mailbox, NULL, memory_order_acquire);
    /* Posted newest first: reverse to run them in order. */
    struct unb__msg *fifo = NULL;
    while (m) {
        struct unb__msg *next = m->next;
        m->next = fifo;
        fifo = m;
        m = next;
    }
    while (fifo) {
        struct unb__msg *next = fifo->next;
        fifo->fn(w, fifo);
        fifo = next;
    }
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    drain_mailbox(a->data);
    unb__intr_process();
}

void unb__sched_signal_arrived(bool restart, int sig)
{
    struct unb__worker *w = tls_worker;
    /* On a thread of the runtime's that runs no coroutine (an idle worker,
     * or a spare waiting for one, which without per-coroutine masks lets
     * the program's signals in), no thread of the program took it: the
     * kernel would have picked a blocked one. */
    unb__intr_signal_pending(tls_m && !tls_cur, restart, sig);
    if (atomic_load_explicit(&rt.state, memory_order_acquire) != RT_RUNNING)
        return;
    if (!w)
        w = &rt.workers[0];
    ev_async_send(w->loop, &w->wake);
}

/* ---- finding work --------------------------------------------------------- */

/* The cycle counter and the clock when the runtime started: the counter's
 * rate, measured over the runtime's life so far (cycles_at). */
static uint64_t cal_cyc0;
static int64_t cal_ns0;

/* The cycle count at deadline_ns (CLOCK_MONOTONIC), or 0 while the rate is
 * not measured yet (the runtime's first 10 ms), for a deadline more than an
 * hour away (no use as a hint, and its cycle count could overflow), or
 * without a counter. */
static uint64_t cycles_at(int64_t deadline_ns)
{
#if defined(__x86_64__)
    uint64_t c = cycles();
    int64_t t = (int64_t)now_ns(), span = t - cal_ns0;
    if (span < 10000000 || c <= cal_cyc0 || deadline_ns - t > 3600 * INT64_C(1000000000))
        return 0;
    double per_ns = (double)(c - cal_cyc0) / (double)span;
    int64_t left = deadline_ns > t ? deadline_ns - t : 0;
    return c + (uint64_t)((double)left * per_ns);
#else
    (void)deadline_ns;
    return 0;
#endif
}

void unb__worker_deadline(struct unb__worker *w, int64_t deadline_ns)
{
    /* A soonest that has passed is forgotten: it fired or was cancelled. */
    if (w && (w->soonest == 0 || deadline_ns < w->soonest ||
              w->soonest <= (int64_t)now_ns())) {
        w->soonest = deadline_ns;
        /* For the ends of marked calls on this thread (sched.h,
         * unb__rt_timer_due).  A handoff gives the spare the worker's
         * (give); the old thread keeps its own: at worst one yield
         * there that nothing needed. */
        fresh_m()->st.due_cyc = cycles_at(deadline_ns);
    }
}

int64_t unb__sched_precise_wait(void)
{
    int64_t at = tls_poll_deadline;
    if (!at)
        return -1;
    int64_t left = at - (int64_t)now_ns();
    return left > 0 ? left : 0;
}

static void poll_loop(struct unb__worker *w, bool block)
{
    w->in_poll = true;
    __atomic_store_n(&w->in_sleeping_poll, block, __ATOMIC_RELAXED);
    if (block && w->soonest) {
        if (w->soonest <= (int64_t)now_ns())
            w->soonest = 0; /* passed: libev has it, or it was cancelled */
        else
            tls_poll_deadline = w->soonest;
    }
    ev_run(w->loop, block ? EVRUN_ONCE : EVRUN_NOWAIT);
    tls_poll_deadline = 0;
    w->in_poll = false;
    if (block)
        __atomic_store_n(&w->in_sleeping_poll, false, __ATOMIC_RELAXED);
    w->last_poll_tick = w->tick;
    if (unb__deque_size(&w->runq) > 1)
        wakep();
}

/* Steals about half of v's queue into w's; returns one coroutine to run. */
static struct unb_coro *steal_from(struct unb__worker *w, struct unb__worker *v)
{
    int64_t n = unb__deque_size(&v->runq);
    if (n <= 0)
        return NULL;
    int64_t want = (n + 1) / 2;
    struct unb_coro *first = NULL;
    for (int64_t i = 0; i < want; i++) {
        void *co = unb__deque_steal(&v->runq);
        if (co == UNB_DEQUE_EMPTY)
            break;
        if (co == UNB_DEQUE_ABORT)
            continue;
        STAT_INC(w, n_steals);
        if (!first)
            first = co;
        else if (unb__deque_push(&w->runq, co) != 0)
            inject(co);
    }
    return first;
}

static uint32_t next_rand(struct unb__worker *w)
{
    /* xorshift32 */
    uint32_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return w->rng = x;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct unb_coro *try_steal(struct unb__worker *w)
{
    if (rt.nworkers < 2)
        return NULL;
    if (!w->spinning) {
        uint32_t busy = rt.nworkers - atomic_load(&rt.nidle);
        if (2 * atomic_load(&rt.nspinning) >= busy)
            return NULL;
        w->spinning = true;
        atomic_fetch_add(&rt.nspinning, 1);
    }
    /* Spin for a while before giving up: a wake-up costs the waker a
     * syscall and us a trip through epoll_wait, so bridging a gap of a few
     * microseconds between two pieces of work is cheaper than sleeping.
     * Work comes to a spinner from other workers' queues and from its own
     * loop (a reply on one of its sockets): it looks at both, the loop
     * every SPIN_POLL_ROUNDS rounds, as Go's spinning threads look at the
     * network poller. */
    uint64_t deadline = now_ns() + SPIN_NS;
    for (int round = 0;; round++) {
        /* Both a time and a count of rounds: a spinner that the kernel
         * preempted must still look a few times after it runs again. */
        if (round >= SPIN_ROUNDS && now_ns() >= deadline)
            break;
        if (round % SPIN_POLL_ROUNDS == SPIN_POLL_ROUNDS - 1 && w->waiting > 0) {
            poll_loop(w, false);
            struct unb_coro *co = take_local(w);
            if (co)
                return co;
        }
        unsigned start = next_rand(w) % rt.nworkers;
        for (unsigned i = 0; i < rt.nworkers; i++) {
            struct unb__worker *v = &rt.workers[(start + i) % rt.nworkers];
            if (v == w)
                continue;
            struct unb_coro *co = steal_from(w, v);
            if (co)
                return co;
        }
        struct unb_coro *co = take_inject(w);
        if (co)
            return co;
        unb__cpu_relax();
    }
    return NULL;
}

static void stop_spinning(struct unb__worker *w)
{
    w->spinning = false;
    if (atomic_fetch_sub(&rt.nspinning, 1) == 1 && work_visible())
        wakep();
}

/* Leaves the idle list after a wake-up; takes over the spinning state a
 * wakep gave us. */
static void leave_idle(struct unb__worker *w)
{
    unb__lock(&rt.idle_lock);
    if (w->in_idle_list) {
        struct unb__worker **p = &rt.idle_list;
        while (*p != w)
            p = &(*p)->idle_next;
        *p = w->idle_next;
        w->in_idle_list = false;
        atomic_fetch_sub(&rt.nidle, 1);
    } else if (w->woken_spinning) {
        w->woken_spinning = false;
        w->spinning = true;
    }
    unb__unlock(&rt.idle_lock);
}

static void go_idle(struct unb__worker *w)
{
    unb__lock(&rt.idle_lock);
    w->idle_next = rt.idle_list;
    rt.idle_list = w;
    w->in_idle_list = true;
    atomic_fetch_add(&rt.nidle, 1);
    unb__unlock(&rt.idle_lock);
    if (w->spinning) {
        w->spinning = false;
        atomic_fetch_sub(&rt.nspinning, 1);
    }
    unb__fence(); /* idle step 3 */
    if (!work_visible() && !atomic_load(&rt.stopping))
        poll_loop(w, true);
    leave_idle(w);
}

static bool caches_drop(struct unb__worker *w);

/* The next coroutine for w to run, or NULL when the runtime stops or w's
 * home thread wants it back. */
static struct unb_coro *find_runnable(struct unb__worker *w)
{
    for (;;) {
        /* w's home thread waits for it (home_wait): run_worker gives it. */
        if (unb_unlikely(atomic_load_explicit(&w->home_wants, memory_order_relaxed)))
            return NULL;
        if (unb_unlikely(atomic_load_explicit(&rt.stopping, memory_order_relaxed)))
            return NULL;
        drain_mailbox(w);
        unb__intr_process();
        if (unb_unlikely(atomic_load_explicit(&rt.as_tight, memory_order_relaxed)) &&
            w->pool)
            caches_drop(w); /* another worker's mapping failed: give the room back */
        struct unb_coro *co = NULL;
        int64_t queued = unb__deque_size(&w->runq) + w->nhomed;
        /* The monitor's poll_due brings the poll forward only while the
         * queue is short: what a poll wakes joins the queue's end, so with
         * a long one it would run no sooner, and each poll reports again
         * every fd whose woken coroutine still waits in the queue (with
         * 10,000 of them, a poll each look was most of the worker's time). */
        if (w->waiting > 0 && (w->tick - w->last_poll_tick >=
                                   (queued > FAIR_INTERVAL ? queued : FAIR_INTERVAL) ||
                               (queued < FAIR_INTERVAL &&
                                __atomic_load_n(&w->poll_due, __ATOMIC_RELAXED)))) {
            __atomic_store_n(&w->poll_due, false, __ATOMIC_RELAXED);
            poll_loop(w, false);
        }
        if (w->tick - w->last_inject_tick >= FAIR_INTERVAL) {
            w->last_inject_tick = w->tick;
            co = take_inject(w);
        }
        if (!co)
            co = take_local(w);
        if (!co)
            co = take_inject(w);
        if (!co)
            co = try_steal(w);
        if (co) {
            if (w->spinning)
                stop_spinning(w);
            return co;
        }
        go_idle(w);
    }
}

static void run(struct unb__m *m, struct unb__worker *w, struct unb_coro *co)
{
    tls_cur = co;
    atomic_store_explicit(&co->on, m, memory_order_release);
    atomic_store_explicit(&co->state, UNB_CO_RUNNING, memory_order_relaxed);
    STAT_INC(w, n_switches);
    beat(m, w);
    do_switch(m, &m->sched_ctx, co, false);
    /* Back on the scheduler's stack: someone switched to us. */
    atomic_store_explicit(&m->st.depth, 1, memory_order_relaxed);
    run_after(m);
}

/* ---- the registry of live coroutines ---------------------------------- */

/*
 * Every coroutine from its creation to its end, for the dump only (see
 * "The dump"), and so only when a dump signal is set: otherwise a birth
 * and a death pay nothing for it (with it, about 40 ns of the ~150 of a
 * spawn and join).  Striped by id, so that workers creating and ending
 * coroutines at the same time rarely meet on a lock: each costs one
 * uncontended lock at birth and one at death.
 */
#define REG_STRIPES 16

static struct reg_stripe {
    struct unb__lock lock;
    struct unb_coro *head;
} UNB_ALIGNED_LINE registry[REG_STRIPES];

static struct reg_stripe *reg_stripe(const struct unb_coro *co)
{
    return &registry[co->id % REG_STRIPES];
}

static void registry_add(struct unb_coro *co)
{
    co->registered = unb__config.dump_signal != 0;
    if (!co->registered)
        return;
    struct reg_stripe *r = reg_stripe(co);
    unb__lock(&r->lock);
    co->reg_prev = NULL;
    co->reg_next = r->head;
    if (r->head)
        r->head->reg_prev = co;
    r->head = co;
    unb__unlock(&r->lock);
}

static void registry_remove(struct unb_coro *co)
{
    if (!co->registered)
        return;
    struct reg_stripe *r = reg_stripe(co);
    unb__lock(&r->lock);
    if (co->reg_prev)
        co->reg_prev->reg_next = co->reg_next;
    else
        r->head = co->reg_next;
    if (co->reg_next)
        co->reg_next->reg_prev = co->reg_prev;
    unb__unlock(&r->lock);
}

/* In a forked child only `keep` (the forking coroutine) exists. */
static void registry_fork_child(struct unb_coro *keep)
{
    for (unsigned i = 0; i < REG_STRIPES; i++) {
        atomic_store(&registry[i].lock.state, 0);
        registry[i].head = NULL;
    }
    if (keep && keep->registered) {
        keep->reg_prev = keep->reg_next = NULL;
        reg_stripe(keep)->head = keep;
    }
}

/* ---- coroutines: birth, reuse, death ---------------------------------- */

/* The struct, then the TLS save area, at the top of the mapping. */
static size_t coro_struct_size(void)
{
    return (sizeof(struct unb_coro) + 63) & ~(size_t)63;
}

static size_t coro_header_size(void)
{
    return coro_struct_size() + ((unb__tls_size + 63) & ~(size_t)63);
}

/* rt.pool is changed under rt.pool_lock and peeked at without it: the
 * peek is a relaxed atomic load and the changes relaxed atomic stores (the
 * lock orders everything else), so the peek is not a data race. */
#define POOL_PEEK() __atomic_load_n(&rt.pool, __ATOMIC_RELAXED)
#define POOL_SET(v) __atomic_store_n(&rt.pool, (v), __ATOMIC_RELAXED)

/* Moves up to n shells from the shared pool to w's cache. */
static void pool_refill(struct unb__worker *w, unsigned n)
{
    unb__lock(&rt.pool_lock);
    while (n-- && rt.pool) {
        struct unb_coro *co = rt.pool;
        POOL_SET(co->next);
        rt.npool--;
        co->next = w->pool;
        w->pool = co;
        w->npool++;
    }
    unb__unlock(&rt.pool_lock);
}

/* When a stack cannot be mapped (RLIMIT_AS, vm.max_map_count): unmaps the
 * shells cached in the shared pool and in w's cache (w: the caller's
 * worker or NULL), so that a stack of another size, which the caches
 * cannot give, finds the room they held.  Returns whether any was
 * unmapped. */
static bool caches_drop(struct unb__worker *w)
{
    unb__lock(&rt.pool_lock);
    struct unb_coro *list = rt.pool;
    POOL_SET(NULL);
    rt.npool = 0;
    unb__unlock(&rt.pool_lock);
    bool any = list != NULL;
    while (list) {
        struct unb_coro *co = list;
        list = co->next;
        struct unb__stack st = co->stack; /* co lives in the mapping */
        unb__stack_unmap(&st);
    }
    while (w && w->pool) {
        struct unb_coro *co = w->pool;
        w->pool = co->next;
        w->npool--;
        struct unb__stack st = co->stack;
        unb__stack_unmap(&st);
        any = true;
    }
    return any;
}

/* A coroutine shell (stack + header) from the caches, or a new mapping.
 * Only stacks of the default size are cached. */
static struct unb_coro *coro_alloc(struct unb__worker *w, size_t size, int *err)
{
    struct unb_coro *co = NULL;
    if (size != rt.stack_size)
        goto map;
    if (w && !w->pool && POOL_PEEK()) /* racy peek; checked under the lock */
        pool_refill(w, POOL_BATCH);
    if (w && w->pool) {
        co = w->pool;
        w->pool = co->next;
        w->npool--;
        return co;
    }
    if (!w && POOL_PEEK()) {
        unb__lock(&rt.pool_lock);
        co = rt.pool;
        if (co) {
            POOL_SET(co->next);
            rt.npool--;
        }
        unb__unlock(&rt.pool_lock);
        if (co)
            return co;
    }
map:;
    struct unb__stack st;
    int rc = unb__stack_map(size, &st);
    if (rc != 0)
        atomic_store(&rt.as_tight, true);
    if (rc != 0 && caches_drop(w))
        rc = unb__stack_map(size, &st); /* the address space they held is free */
    if (rc != 0) {
        *err = -rc;
        return NULL;
    }
    co = (struct unb_coro *)(st.hi - coro_header_size());
    co->stack = st;
    return co;
}

/* Gives a list of n shells to the shared pool; unmaps what does not fit. */
static void pool_give(struct unb_coro *list)
{
    struct unb_coro *excess = NULL;
    unb__lock(&rt.pool_lock);
    while (list) {
        struct unb_coro *co = list;
        list = co->next;
        if (rt.npool < POOL_GLOBAL_MAX) {
            co->next = rt.pool;
            POOL_SET(co);
            rt.npool++;
        } else {
            co->next = excess;
            excess = co;
        }
    }
    unb__unlock(&rt.pool_lock);
    while (excess) {
        struct unb_coro *co = excess;
        excess = co->next;
        struct unb__stack st = co->stack; /* co lives in the mapping */
        unb__stack_unmap(&st);
    }
}

/* Returns a finished, released coroutine's shell to a cache or unmaps it.
 * Must not run on co's own stack. */
static void coro_free(struct unb_coro *co)
{
#ifdef UNB_TSAN
    __tsan_destroy_fiber(co->tsan_fiber);
#endif
#ifdef UNB_ASAN
    /* The next user of this stack must not inherit its poison. */
    __asan_unpoison_memory_region(co->stack.lo, (size_t)((char *)co - co->stack.lo));
    __lsan_unregister_root_region(co->stack.lo, (size_t)(co->stack.hi - co->stack.lo));
#endif
    if ((size_t)(co->stack.hi - co->stack.map) != rt.stack_size ||
        unb_unlikely(atomic_load_explicit(&rt.as_tight, memory_order_relaxed))) {
        struct unb__stack st = co->stack; /* a size of its own, or no room */
        unb__stack_unmap(&st);
        return;
    }
    struct unb__worker *w = unb__rt_enter(); /* its cache is the worker's */
    struct unb_coro *give = co;              /* to the shared pool */
    co->next = NULL;
    if (w) {
        co->next = w->pool;
        w->pool = co;
        give = NULL;
        if (++w->npool > POOL_WORKER_MAX) {
            /* Over the cap: hand half of the cache to the shared pool. */
            for (unsigned i = 0; i < POOL_BATCH; i++) {
                struct unb_coro *c = w->pool;
                w->pool = c->next;
                c->next = give;
                give = c;
            }
            w->npool -= POOL_BATCH;
        }
    }
    unb__rt_leave();
    if (give)
        pool_give(give);
}

/* After action of a finishing coroutine: it is off its stack now. */
static void finish_exit(void *arg)
{
    struct unb_coro *co = arg;
    registry_remove(co);
    atomic_fetch_sub_explicit(&rt.alive, 1, memory_order_relaxed);
    unb__spin_lock(&co->lock);
    co->done = 1;
    struct unb__waiter *joiner = co->joiner;
    bool release = co->detached;
    unb__spin_unlock(&co->lock);
    if (joiner)
        unb__waiter_wake(joiner);
    else if (release)
        coro_free(co);
}

void (*unb__sched_exit_hook)(struct unb_coro *co);

/* ---- cancellation (sched.h) ------------------------------------------- */

_Atomic unsigned unb__cancels;
void (*unb__sched_cancel_hook)(void);

void unb__cancel_test(void)
{
    struct unb_coro *co = unb__sched_current();
    if (!co || co->cancel_off || !atomic_load(&co->cancel_pending) ||
        !unb__sched_cancel_hook)
        return;
    co->cancel_off |= UNB_CANCEL_ACTING; /* the handlers are no cancellation points */
    atomic_fetch_sub(&unb__cancels, 1);
    unb__sched_cancel_hook();
}

void unb__sched_cancel(struct unb_coro *co)
{
    if (atomic_exchange(&co->cancel_pending, 1))
        return; /* already asked */
    atomic_fetch_add(&unb__cancels, 1);
    if (co->cancel_off || unb__intr_interrupt(co))
        return;
    /* A condition variable's or a semaphore's waiters may wake for no
     * reason, and look again: wake every one on its address.  The waiter
     * publishes the address, then looks at cancel_pending, under the
     * address's bucket lock, which the wake takes too (sync.c): either it
     * sees the cancel and does not park, or we see the address and wake it
     * once it is parked. */
    const void *addr = atomic_load(&co->cancel_addr);
    if (addr)
        unb__plot_wake_some(addr, UINT_MAX, NULL);
}

/* Runs the exit hook, then leaves for good: finish_exit frees or hands
 * over the stack once we are off it. */
__attribute__((noreturn)) static void coro_finish(struct unb_coro *co, void *result)
{
    co->result = result;
    if (unb__sched_exit_hook && !co->exiting) {
        co->exiting = 1;
        unb__sched_exit_hook(co);
    }
    co->pinned = 0; /* a thread's stdio locks do not outlive it */
    if (unb__sigmask_on)
        unb__sigmask_died(co);
    atomic_fetch_sub_explicit(&co->home->nlive, 1, memory_order_relaxed);
    struct unb__worker *w = unb__rt_enter();
    struct unb__m *m = tls_m;
    m->after_fn = finish_exit;
    m->after_arg = co;
    switch_out(m, w, co, true, 0);
    unb__die("a finished coroutine was resumed");
}

static void coro_main(struct unb__ctx *from, void *arg)
{
    (void)from;
    struct unb_coro *co = arg;
#ifdef UNB_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    struct unb__m *m = tls_m;
    if (!co->home) { /* else placed here by another worker */
        co->home = tls_worker; /* from now on it runs here (see "Affinity") */
        atomic_fetch_add_explicit(&co->home->nlive, 1, memory_order_relaxed);
    }
    run_after(m);
    unb_errno = 0; /* as in a new thread */
    tls_in(m, co);
    sigmask_in(m, co);
    atomic_store_explicit(&m->st.depth, 0, memory_order_release); /* its own code */
    coro_finish(co, co->fn(co->arg));
}

void unb__sched_exit(void *result)
{
    struct unb_coro *co = unb__sched_current();
    UNB_ASSERT(co);
    coro_finish(co, result);
}

/* A new coroutine, not yet runnable. */
static int coro_new(void *(*fn)(void *), void *arg, size_t stack_size,
                    struct unb_coro **out)
{
    struct unb__worker *w = unb__sched_worker();
    int err = EAGAIN;
    if (stack_size == 0)
        stack_size = rt.stack_size;
    struct unb_coro *co = coro_alloc(w, stack_size, &err);
    if (!co)
        return -err;
    co->magic = UNB_CORO_MAGIC;
    co->pinned = 0;
    co->exiting = 0;
    co->pthread = 0;
    co->home = NULL;
    co->tsd = NULL;
    co->cleanup = NULL;
    co->unwinding = NULL;
    co->tls_dtors = NULL;
    atomic_store_explicit(&co->cancel_pending, 0, memory_order_relaxed);
    co->cancel_off = 0;
    co->cancel_async = 0;
    co->intr = NULL;
    atomic_store_explicit(&co->cancel_addr, NULL, memory_order_relaxed);
    co->name[0] = 0;
    co->fn = fn;
    co->arg = arg;
    co->result = NULL;
    co->joiner = NULL;
    co->next = NULL;
    atomic_init(&co->lock, 0);
    co->done = 0;
    co->detached = 0;
    co->id = atomic_fetch_add_explicit(&rt.spawned, 1, memory_order_relaxed) + 1;
    atomic_store_explicit(&co->state, UNB_CO_NEW, memory_order_relaxed);
    co->wait_call = UNB_CALL_OTHER;
    co->tls = (char *)co + coro_struct_size();
    co->tls_on = NULL;
    if (unb__tls_size)
        unb__tls_init(co->tls, &co->tls_tp); /* as a new thread's */
    co->sigmask = 0;
    atomic_store_explicit(&co->sigpending, 0, memory_order_relaxed);
    if (unb__sigmask_on)
        unb__sigmask_born(co, tls_cur); /* its creator's, as a thread's */
    registry_add(co);
#ifdef UNB_TSAN
    co->tsan_fiber = __tsan_create_fiber(0);
#endif
#ifdef UNB_ASAN
    /* LeakSanitizer scans the stacks of threads it knows, and of a thread
     * only the stack it runs on: a parked coroutine's stack and header are
     * roots too, or what only they point to is reported as leaked. */
    __lsan_register_root_region(co->stack.lo, (size_t)(co->stack.hi - co->stack.lo));
#endif
    unb__ctx_make(&co->ctx, co, coro_main, co);

    int64_t alive = atomic_fetch_add_explicit(&rt.alive, 1, memory_order_relaxed) + 1;
    int64_t peak = atomic_load_explicit(&rt.peak_alive, memory_order_relaxed);
    while (alive > peak && !atomic_compare_exchange_weak_explicit(
                               &rt.peak_alive, &peak, alive, memory_order_relaxed,
                               memory_order_relaxed))
        ;
    *out = co;
    return 0;
}

static void start_rest(void);

int unb__sched_spawn(void *(*fn)(void *), void *arg, struct unb_coro **out)
{
    int rc = unb__sched_start();
    if (rc != 0)
        return rc;
    if (unb_unlikely(atomic_load_explicit(&rt.lazy, memory_order_relaxed)))
        start_rest();
    unb__rt_enter();
    rc = coro_new(fn, arg, 0, out);
    if (rc == 0)
        unb__sched_ready(*out);
    unb__rt_leave();
    return rc;
}

int unb__sched_spawn_thread(void *(*fn)(void *), void *arg, size_t stack_size,
                            uintptr_t *id)
{
    int rc = unb__sched_start();
    if (rc != 0)
        return rc;
    /* A size is a minimum: one within the default gets a pooled stack of
     * the default size (committed lazily, so no more memory). */
    if (stack_size <= rt.stack_size - 2 * unb__page_size)
        stack_size = 0;
    else /* usable size asked for, plus the guard page and our header */
        stack_size =
            ((stack_size + unb__page_size - 1) & ~(unb__page_size - 1)) +
            unb__page_size +
            ((coro_header_size() + unb__page_size - 1) & ~(unb__page_size - 1));
    if (unb_unlikely(atomic_load_explicit(&rt.lazy, memory_order_relaxed)))
        start_rest();
    struct unb_coro *co;
    unb__rt_enter();
    rc = coro_new(fn, arg, stack_size, &co);
    if (rc == 0) {
        co->pthread = 1;
        *id = (uintptr_t)co;
        unb__sched_ready(co);
    }
    unb__rt_leave();
    return rc;
}

static void unlock_spin(void *lock)
{
    unb__spin_unlock(lock);
}

static int join_in(struct unb_coro *co, void **result, enum unb__call call);

/* In a section from the start: join parks while holding co->lock, and a
 * coroutine must not move threads with a spinlock held (see "The
 * monitor"). */
int unb__sched_join(struct unb_coro *co, void **result, enum unb__call call)
{
    unb__rt_enter();
    int rc = join_in(co, result, call);
    unb__rt_leave();
    return rc;
}

static int join_in(struct unb_coro *co, void **result, enum unb__call call)
{
    if (co == unb__sched_current())
        return -EDEADLK;
    unb__spin_lock(&co->lock);
    if (co->detached || co->joiner) {
        unb__spin_unlock(&co->lock);
        return -EINVAL;
    }
    if (!co->done) {
        struct unb__waiter wt;
        unb__waiter_init(&wt);
        co->joiner = &wt;
        unb__waiter_wait(&wt, &co->lock, call, (int64_t)co->id);
    } else {
        unb__spin_unlock(&co->lock);
    }
    if (result)
        *result = co->result;
    coro_free(co); /* finished and released */
    return 0;
}

int unb__sched_tryjoin(struct unb_coro *co, void **result)
{
    if (co == unb__sched_current())
        return -EDEADLK;
    unb__spin_lock(&co->lock);
    if (co->detached || co->joiner) {
        unb__spin_unlock(&co->lock);
        return -EINVAL;
    }
    bool done = co->done;
    unb__spin_unlock(&co->lock);
    if (!done)
        return -EBUSY;
    if (result)
        *result = co->result;
    coro_free(co);
    return 0;
}

bool unb__sched_detached(struct unb_coro *co)
{
    return co->detached;
}

int unb__sched_detach(struct unb_coro *co)
{
    unb__spin_lock(&co->lock);
    if (co->detached || co->joiner) {
        unb__spin_unlock(&co->lock);
        return -EINVAL;
    }
    co->detached = 1;
    bool done = co->done;
    unb__spin_unlock(&co->lock);
    if (done)
        coro_free(co); /* finished and released */
    return 0;
}

static void requeue(void *arg)
{
    struct unb_coro *co = arg;
    atomic_store_explicit(&co->state, UNB_CO_READY, memory_order_relaxed);
    local_push(tls_worker, co);
}

/*
 * The after action of a yield the monitor asked for (unb__rt_yield_requested):
 * when nothing else was queued (we are on the scheduler's stack), look at
 * the loop before queueing the coroutine again, so that what the poll wakes
 * (the timers and fds that waited while it ran) runs before it rather than
 * after its next slice.
 */
static void requeue_after_poll(void *arg)
{
    struct unb__worker *w = tls_worker;
    if (!tls_cur && w->waiting > 0) {
        __atomic_store_n(&w->poll_due, false, __ATOMIC_RELAXED);
        poll_loop(w, false);
    }
    requeue(arg);
}

static void yield_then(void (*after)(void *))
{
    struct unb__worker *w = unb__rt_enter();
    struct unb_coro *self = tls_cur;
    if (unb_unlikely(!w)) { /* a pinned coroutine whose worker was handed away */
        unb__rt_leave();
        UNB_REAL(sched_yield)();
        return;
    }
    struct unb__m *m = tls_m;
    m->after_fn = after;
    m->after_arg = self;
    switch_out(m, w, self, false, 1);
}

void unb__sched_yield(void)
{
    yield_then(requeue);
}

/* ---- waiters ---------------------------------------------------------- */

void unb__waiter_init(struct unb__waiter *wt)
{
    wt->co = unb__sched_parkable(); /* a pinned coroutine waits as a thread */
    atomic_init(&wt->woken, 0);
}

void unb__waiter_wait(struct unb__waiter *wt, _Atomic uint8_t *lock, enum unb__call call,
                      int64_t obj)
{
    if (wt->co) {
        unb__sched_park(unlock_spin, lock, call, obj);
        return;
    }
    unb__spin_unlock(lock);
    /* A pinned coroutine blocks its thread: let the monitor hand the
     * worker on meanwhile. */
    uint32_t depth = unb__rt_block_begin(unb__call_label(call));
    while (!atomic_load_explicit(&wt->woken, memory_order_acquire))
        unb__futex_wait(&wt->woken, 0, NULL);
    unb__rt_block_end(depth);
}

void unb__waiter_wake(struct unb__waiter *wt)
{
    struct unb_coro *co = wt->co;
    if (co) {
        unb__sched_ready(co);
        return;
    }
    atomic_store_explicit(&wt->woken, 1, memory_order_release);
    unb__futex_wake(&wt->woken, 1);
}

/* ---- threads that run workers ------------------------------------------ */

/*
 * glibc gives a thread its malloc arena at its first malloc: 64 MiB of
 * address space (PROT_NONE, MAP_NORESERVE) when it makes a new one.  A
 * worker's first malloc would come at whatever moment a coroutine or libev
 * first allocates on it, and a program that measures or limits its address
 * space (RLIMIT_AS) would see 64 MiB go at a moment it cannot know.  The
 * workers' threads take theirs as they start, before start_threads
 * returns (a thread that finds no room falls back to an existing arena, as
 * malloc does).  Spares start at moments no one can know anyway, and take
 * theirs at their first malloc, if any.
 */
static void malloc_bind(void)
{
    void *volatile p = malloc(1); /* volatile: a malloc+free pair is elided */
    free(p);
}

/* A thread's scheduling attributes (sched_getattr(2); glibc 2.36 has no
 * wrapper or struct for it). */
struct sched_attributes {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
    uint32_t util_min, util_max;
};

static bool sched_attr_get(pid_t tid, struct sched_attributes *a)
{
    memset(a, 0, sizeof *a);
    return unb__sys6(SYS_sched_getattr, tid, (long)a, sizeof *a, 0, 0, 0) == 0;
}

static void sched_attr_set(pid_t tid, struct sched_attributes *a)
{
    a->size = sizeof *a;
    a->flags = 0;
    unb__sys3(SYS_sched_setattr, tid, (long)a, 0);
}

/*
 * UNBLOCK_SCHED_BATCH=1: the threads of two or more workers run
 * SCHED_BATCH (see "Threads and the kernel's scheduler").  Only a thread
 * the program or its user left at SCHED_OTHER (so a second call changes
 * nothing); its nice value is kept.
 */
static void sched_batch(struct unb__m *m)
{
    if (!unb__config.sched_batch || rt.nworkers < 2)
        return;
    pid_t tid = atomic_load_explicit(&m->tid, memory_order_relaxed);
    struct sched_attributes a;
    if (!sched_attr_get(tid, &a) || a.policy != SCHED_OTHER)
        return;
    a.policy = SCHED_BATCH;
    a.runtime = 0; /* the default slice */
    atomic_store_explicit(&rt.batched, true, memory_order_relaxed);
    sched_attr_set(tid, &a);
}

static void thread_setup(struct unb__m *m)
{
    unb__tls_m = &m->st;
    if (unb__sigmask_on) {
        /* Its mask is the coroutine's it runs, or what they all block
         * while it waits in its loop (sigmask.h); until then, and while
         * it is an idle spare, it takes no signal. */
        unb__sigmask_apply(&m->kmask, unb__sigmask_all());
    } else {
        /* Spares are made by the monitor, which blocks every signal:
         * give them the mask the workers started with, so that the
         * program's signals reach coroutines whichever thread runs them. */
        pthread_sigmask(SIG_SETMASK, &rt.sigmask, NULL);
        m->kmask = unb__sigmask_read();
    }
    m->tid = (pid_t)unb__sys3(SYS_gettid, 0, 0, 0);
    /* Mapped by m_spawn; the initial thread's here (the map leaves it
     * NULL on failure).  Without one, overflows die without the message. */
    if (!m->altstack)
        unb__stack_altstack_map(&m->altstack);
    if (m->altstack && unb__stack_altstack_use(m->altstack) != 0) {
        unb__stack_altstack_unmap(m->altstack);
        m->altstack = NULL;
    }
    if (m->first_worker) /* a worker's thread, not a spare */
        malloc_bind();
    if (m->first_worker && !m->initial) /* the initial thread: in start_threads */
        sched_batch(m);
#ifdef UNB_ASAN
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &m->thread_stack_lo, &m->thread_stack_size);
        pthread_attr_destroy(&attr);
    }
#endif
#ifdef UNB_TSAN
    m->tsan_fiber = __tsan_get_current_fiber();
#endif
    atomic_store_explicit(&m->set_up, 1, memory_order_release);
    unb__futex_wake(&m->set_up, 1);
}

/*
 * Gives worker w to thread m, which waits for it: a spare in spare_wait,
 * or w's home thread in home_wait (from the thread that runs w, between
 * two coroutines, or from the monitor, in place of a spare).  A spare is
 * in the runtime (see m_alloc) until its scheduler runs a coroutine; the
 * home's depth is its own, since it waits inside a section.
 */
static void give(struct unb__m *m, struct unb__worker *w)
{
    if (m != w->home_m)
        atomic_store_explicit(&m->st.depth, 1, memory_order_relaxed);
    atomic_store_explicit(&m->st.take, UNB_TAKE_NONE, memory_order_relaxed);
    atomic_store_explicit(&m->st.yield_req, 0, memory_order_relaxed);
    /* The worker's timer hint, not the one this thread had for another
     * (its thread, out of the runtime, writes neither now). */
    m->st.due_cyc = w->soonest ? cycles_at(w->soonest) : 0;
    /* w->m before the wake-up: once running, a spare may give w on (to
     * its home) and set it again. */
    atomic_store_explicit(&w->m, m, memory_order_release);
    atomic_store_explicit(&m->w, w, memory_order_release);
    atomic_store_explicit(&m->wake, 1, memory_order_release);
    unb__futex_wake(&m->wake, 1);
}

/* Runs worker w on thread m until the runtime stops (false), or w is
 * handed to another thread while m is stuck in a coroutine, or m (a
 * spare) gives w back to its home thread (true). */
static bool run_worker(struct unb__m *m, struct unb__worker *w)
{
    tls_worker = w;
    /* Taken over from a stuck thread: its timers are due, its fds may be
     * ready; queue what waited before anything else runs. */
    if (w->waiting > 0)
        poll_loop(w, false);
    struct unb_coro *co;
    while ((co = find_runnable(w)) != NULL) {
        run(m, w, co);
        if (atomic_load_explicit(&m->w, memory_order_relaxed) != w) {
            tls_worker = NULL;
            tls_cur = NULL;
            return true;
        }
    }
    tls_worker = NULL;
    if (atomic_exchange_explicit(&w->home_wants, 0, memory_order_acquire)) {
        atomic_store_explicit(&m->w, NULL, memory_order_relaxed);
        give(w->home_m, w);
        return true;
    }
    atomic_store_explicit(&w->exited, 1, memory_order_release);
    unb__futex_wake(&w->exited, 1);
    return false;
}

static bool spare_wait(struct unb__m *m);
static void spare_taken(struct unb__m *m);
static void spare_widen(struct unb__m *m);

/* An OS thread's life: run a worker; when it is handed away, wait in the
 * spare pool for another, until a quiet period ends the thread. */
static void *thread_main(void *arg)
{
    struct unb__m *m = arg;
    thread_setup(m);
    for (;;) {
        struct unb__worker *w = atomic_load_explicit(&m->w, memory_order_acquire);
        if (w) {
            spare_taken(m);
            spare_widen(m);
            if (!run_worker(m, w))
                break;
        }
        if (!spare_wait(m))
            return NULL; /* m is in rt.free_m already */
    }
    /* The runtime stopped (rt_exit): m goes where spare_wait puts the
     * structs of spares that end, for the next start to reuse; nothing
     * else points to it once this thread is gone (LeakSanitizer found
     * one per worker lost at each stop). */
    unb__stack_altstack_free(m->altstack);
    m->altstack = NULL;
    unb__tls_m = NULL;
    unb__lock(&rt.spare_lock);
    m->next = rt.free_m;
    rt.free_m = m; /* not counted: the next start counts threads afresh */
    unb__unlock(&rt.spare_lock);
    return NULL;
}

/*
 * Slow path of unb__rt_enter: the monitor is taking, or took, this
 * thread's worker.  Once it is decided, a lost worker means the running
 * coroutine must go to the thread that runs its worker now: it switches to
 * this thread's own scheduler context, whose after action posts it home
 * (the mailbox), and this thread becomes a spare.
 */
static void rejoin_post(void *arg)
{
    post_home(arg);
}

/* The end of a blocking call in the program's code, after the monitor
 * found the worker without a switch for a look: a loop of short calls
 * (the resolver, page-cached reads) yields here instead of costing a
 * handoff per look. */
void unb__rt_yield_requested(void)
{
    struct unb__m *m = fresh_m();
    atomic_store_explicit(&m->st.yield_req, 0, memory_order_relaxed);
    struct unb_coro *self = unb__sched_current();
    if (!self || self->pinned)
        return;
    /* What waits is mostly timers and fds: look at them on the way (at
     * once if nothing else is queued, see requeue_after_poll; else at the
     * scheduler's next pass). */
    struct unb__worker *w = unb__sched_worker();
    if (w)
        __atomic_store_n(&w->poll_due, true, __ATOMIC_RELAXED);
    yield_then(requeue_after_poll);
}

/*
 * The slow path's end on a worker's home thread: it waits, signals
 * blocked, until the thread that runs its worker w now gives it back
 * (between two coroutines, or by the monitor when that thread is stuck
 * in its turn), and goes on running the coroutine where it stood.
 */
static void home_wait(struct unb__m *m, struct unb__worker *w)
{
    int saved_errno = unb_errno;
    uint64_t mask = unb__sigmask_on ? m->kmask : unb__sigmask_read();
    unb__sigmask_apply(&m->kmask, unb__sigmask_all());
    /* No coroutine meanwhile: libev's write to the loop's eventfd goes
     * through our hook, which must make it as a plain thread's. */
    struct unb_coro *self = tls_cur;
    tls_cur = NULL;
    atomic_store_explicit(&w->home_wants, 1, memory_order_release);
    ev_async_send(w->loop, &w->wake); /* its thread may be asleep in its loop */
    while (atomic_load_explicit(&m->wake, memory_order_acquire) == 0)
        unb__futex_wait(&m->wake, 0, NULL);
    atomic_store_explicit(&m->wake, 0, memory_order_relaxed);
    UNB_ASSERT(atomic_load_explicit(&m->w, memory_order_relaxed) == w);
    spare_widen(m); /* the monitor may have placed it */
    tls_worker = w;
    tls_cur = self;
    unb__sigmask_apply(&m->kmask, mask);
    beat(m, w);
    unb_errno = saved_errno;
}

void unb__rt_reclaim(void)
{
    struct unb__m *m = tls_m;
    uint32_t take;
    for (int spins = 0;
         (take = atomic_load_explicit(&m->st.take, memory_order_acquire)) ==
         UNB_TAKE_PENDING;
         spins++) {
        if (spins < 64)
            unb__cpu_relax();
        else
            UNB_REAL(sched_yield)(); /* the monitor was preempted mid-decision */
    }
    if (take == UNB_TAKE_NONE)
        return;
    struct unb_coro *self = tls_cur;
    UNB_ASSERT(self); /* a scheduler is always inside the runtime */
    struct unb__worker *lost = tls_worker;
    tls_worker = NULL; /* not ours any more */
    if (self->pinned)
        return; /* a pinned coroutine goes on here, as a plain thread would */
    if (lost && lost->home_m == m) {
        home_wait(m, lost);
        return;
    }
    m->after_fn = rejoin_post;
    m->after_arg = self;
    tls_cur = NULL;
    self->saved_errno = unb_errno;
    tls_out(self);
    uint32_t depth = atomic_load_explicit(&m->st.depth, memory_order_relaxed);
    do_switch(m, &self->ctx, NULL, false);
    resumed(self, depth);
}

/* ---- the monitor and its spare threads ---------------------------------- */

/* How often the monitor looks, and for how many looks a worker may make
 * no progress before it is handed on: inside a call marked as blocking or
 * asleep in the kernel, and otherwise (a computation, or a marked call
 * that runs rather than sleeps). */
#ifndef MONITOR_TICK_NS
#define MONITOR_TICK_NS 250000
#endif
#define STILL_OTHER 2
/* How long an armed watchdog waits, in half ticks: it fires when its worker
 * has not switched for at least this less a tick (it is armed again at a
 * switch a tick or more after the last arming). */
#ifndef WATCH_DELAY_HALF_TICKS
#define WATCH_DELAY_HALF_TICKS 5
#endif
#ifndef WATCH_PERIOD_TICKS
#define WATCH_PERIOD_TICKS 1
#endif
/* The monitor's scheduler slice (see monitor_sched). */
#define MONITOR_SLICE_NS 100000
/* How long an idle spare thread waits for work before it exits. */
#define SPARE_IDLE_S 2
/* Under valgrind, how many times less often the monitor looks (see "The
 * monitor"). */
#define VALGRIND_TICK_FACTOR 40

/* Set by the monitor thread for itself: under valgrind, whose threads run
 * one at a time, and how long it sleeps between looks. */
static bool monitor_serialised;
static long monitor_tick_ns = MONITOR_TICK_NS;
/* The cycle counter's rate, measured once, and a tick in its units. */
static double monitor_ns_per_cyc;
static uint64_t monitor_tick_cyc;

/*
 * Where the monitor and a spare wake up.  The kernel wakes a thread on the
 * CPU it last ran on, or on the waker's, and looks for an idle CPU only
 * among CPUs that share a cache with that one.  A machine that describes
 * no caches (a Firecracker VM: each CPU its own domain) never looks: the
 * monitor, woken by a watchdog that fires on a stuck worker's CPU, waited
 * there behind the worker while the other CPU idled.  A thread computing
 * in user space is preempted at once (monitor_sched), but one inside a
 * long system call is not until the call returns or the next scheduler
 * tick (a kernel without preemption): bench_monitor's first 1 MiB read
 * into a fresh buffer (2.9 ms of page faults) kept the heartbeat waiting
 * 3.3 to 5 ms.  So the monitor keeps itself off the CPUs its workers'
 * threads were last seen on (at their watchdog's arming) where that
 * leaves one, and a spare given a stuck thread's worker is woken off that
 * thread's CPU, then takes every CPU back.  All of it only where the
 * process may use two CPUs or more, and not under valgrind.
 */
static cpu_set_t cpus_allowed; /* the process's, when the monitor started */
static cpu_set_t monitor_cpus; /* the monitor's own */
static bool cpus_placing;      /* there is a choice to make */

static void cpus_init(void)
{
    cpus_placing = false;
    if (monitor_serialised ||
        unb__sys3(SYS_sched_getaffinity, 0, sizeof cpus_allowed, (long)&cpus_allowed) <= 0)
        return;
    monitor_cpus = cpus_allowed;
    cpus_placing = CPU_COUNT(&cpus_allowed) > 1;
}

/* Before the monitor sleeps: off its workers' CPUs, where that leaves one. */
static void monitor_place(void)
{
    if (!cpus_placing)
        return;
    cpu_set_t want = cpus_allowed;
    for (unsigned i = 0; i < rt.nworkers; i++) {
        struct unb__m *m = atomic_load_explicit(&rt.workers[i].m, memory_order_acquire);
        int cpu = m ? atomic_load_explicit(&m->cpu, memory_order_relaxed) : -1;
        if (cpu >= 0 && cpu < CPU_SETSIZE)
            CPU_CLR(cpu, &want);
    }
    if (CPU_COUNT(&want) == 0)
        want = cpus_allowed;
    if (CPU_EQUAL(&want, &monitor_cpus))
        return;
    if (unb__sys3(SYS_sched_setaffinity, 0, sizeof want, (long)&want) == 0)
        monitor_cpus = want;
}

/* Before a spare is woken to take over from thread `from`: off from's CPU
 * (as the monitor last read it from /proc, or from's watchdog arming).  A
 * new spare, not started yet, is left to the kernel (m_spawn). */
static void place_spare(struct unb__m *spare, struct unb__m *from)
{
    if (!cpus_placing)
        return;
    pid_t tid = atomic_load_explicit(&spare->tid, memory_order_relaxed);
    int cpu = atomic_load_explicit(&from->cpu, memory_order_relaxed);
    if (tid <= 0 || cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &cpus_allowed))
        return;
    cpu_set_t want = cpus_allowed;
    CPU_CLR(cpu, &want);
    if (unb__sys3(SYS_sched_setaffinity, tid, sizeof want, (long)&want) == 0)
        spare->narrowed = true;
}

/* A spare that was placed, now running: every CPU again.  It runs on one
 * of the narrower set, so this moves nothing. */
static void spare_widen(struct unb__m *m)
{
    if (!m->narrowed)
        return;
    m->narrowed = false;
    unb__sys3(SYS_sched_setaffinity, 0, sizeof cpus_allowed, (long)&cpus_allowed);
}

static void fence_others(void)
{
    if (unb__rt_fence)
        atomic_thread_fence(memory_order_seq_cst);
    else if (unb__sys3(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        unb__die("membarrier failed after it was registered");
}

static struct unb__m *m_alloc(void)
{
    struct unb__m *m = rt.free_m;
    if (m)
        rt.free_m = m->next;
    else if (!(m = aligned_alloc(UNB_CACHELINE, sizeof *m)))
        return NULL;
    memset(m, 0, sizeof *m);
    /* In the runtime until it runs a coroutine: the monitor must not take
     * a worker from a thread that has not started running it. */
    atomic_init(&m->st.depth, 1);
    atomic_init(&m->cpu, -1);
    return m;
}

/* A fork child's struct of a thread it does not have: free for reuse. */
static void m_forget(struct unb__m *m)
{
    unb__stack_altstack_unmap(m->altstack);
    m->altstack = NULL;
    m->next = rt.free_m;
    rt.free_m = m;
}

static void m_count(int delta)
{
    rt.nthreads += (unsigned)delta;
    if (rt.nthreads > rt.nthreads_peak)
        rt.nthreads_peak = rt.nthreads;
}

/* Starts an OS thread for m (which has its worker set, or will be given
 * one); 0 or an errno value.  Under rt.spare_lock or before the runtime
 * runs. */
static int m_spawn(struct unb__m *m)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The scheduler's stack: libev callbacks, and signal handlers that
     * land while no coroutine runs. */
    pthread_attr_setstacksize(&attr, 1u << 20);
    /* A spare, which the monitor starts: not the monitor's CPUs but any,
     * the kernel's choice of the idlest (see monitor_place).  (Workers'
     * threads are started by others, and inherit theirs.) */
    if (!m->first_worker && cpus_placing)
        pthread_attr_setaffinity_np(&attr, sizeof cpus_allowed, &cpus_allowed);
    /* Its signal stack too, here: a thread counted holds all the address
     * space it will (room_for_thread, and a program that lowers
     * RLIMIT_AS once the runtime's threads are there, see it). */
    unb__stack_altstack_map(&m->altstack); /* if it fails, thread_setup tries again */
    int e = unb__real_thread_create(&m->thread, &attr, thread_main, m);
    pthread_attr_destroy(&attr);
    if (e == 0) {
        m_count(1);
    } else {
        unb__stack_altstack_unmap(m->altstack);
        m->altstack = NULL;
    }
    return e;
}

/* Waits, as a spare, to be given a worker: true when it has one, false
 * when the thread should end (the quiet period passed, or the runtime
 * stops).  The thread touches nothing of m's after a false return. */
static bool spare_wait(struct unb__m *m)
{
    if (unb__sigmask_on && m->kmask != unb__sigmask_all())
        unb__sigmask_apply(&m->kmask, unb__sigmask_all()); /* see thread_setup */
    unb__lock(&rt.spare_lock);
    if (!m->reserved) {
        m->idle = true;
        m->next = rt.spares;
        rt.spares = m;
    }
    unb__unlock(&rt.spare_lock);
    for (;;) {
        if (atomic_load_explicit(&m->w, memory_order_acquire))
            return true;
        struct timespec idle = {SPARE_IDLE_S, 0};
        bool stop = atomic_load(&rt.stopping) != 0;
        if (!stop &&
            unb__futex_wait(&m->wake, 0, m->initial ? NULL : &idle) != -ETIMEDOUT)
            continue;
        unb__lock(&rt.spare_lock);
        if (atomic_load_explicit(&m->w, memory_order_relaxed) || !m->idle) {
            unb__unlock(&rt.spare_lock); /* given a worker meanwhile */
            continue;
        }
        struct unb__m **p = &rt.spares;
        while (*p != m)
            p = &(*p)->next;
        *p = m->next;
        m->idle = false;
        unb__unlock(&rt.spare_lock);
        unb__stack_altstack_free(m->altstack);
        unb__tls_m = NULL;
        unb__lock(&rt.spare_lock);
        m->next = rt.free_m;
        rt.free_m = m;
        m_count(-1);
        unb__unlock(&rt.spare_lock);
        return false;
    }
}

/* A thread starts on the worker it was given: a new one is no longer
 * reserved, and the wake-up is used. */
static void spare_taken(struct unb__m *m)
{
    unb__lock(&rt.spare_lock);
    m->reserved = false;
    unb__unlock(&rt.spare_lock);
    atomic_store_explicit(&m->wake, 0, memory_order_relaxed);
}

/* Address space a new spare thread needs: its 1 MiB stack and signal
 * stack, and what a sanitizer maps for a thread (ASan dies, rather than
 * fail pthread_create, when it cannot).  Its malloc arena is optional:
 * glibc falls back to another when there is no room for one. */
#define SPARE_ROOM (4L << 20)

/* Is there room under RLIMIT_AS for another thread?  A process at its
 * limit (its own spawns failing with EAGAIN) gets no spare and no message:
 * the monitor leaves the worker to its thread, as it does when all spares
 * are busy.  Reads /proc only under a finite limit, and only when a new
 * thread would be started (a handoff with no idle spare). */
static bool room_for_thread(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return true;
    char buf[64];
    if (!unb__proc_read("/proc/self/statm", buf, sizeof buf))
        return true;
    unsigned long pages = strtoul(buf, NULL, 10); /* the first field: VmSize */
    return pages * unb__page_size + SPARE_ROOM <= rl.rlim_cur;
}

/* A thread to take a worker over: an idle spare, or a new thread within
 * UNBLOCK_SPARE_THREADS and the address space (room_for_thread).  It
 * waits until give. */
static struct unb__m *spare_get(void)
{
    unb__lock(&rt.spare_lock);
    struct unb__m *m = rt.spares;
    int e = 0; /* why no thread could be started, or 0: all are busy */
    if (m) {
        rt.spares = m->next;
        m->idle = false;
    } else if (rt.nthreads < rt.nworkers + unb__config.spares) {
        if (!room_for_thread()) {
            unb__unlock(&rt.spare_lock);
            return NULL;
        }
        if (!(m = m_alloc())) {
            e = ENOMEM;
        } else {
            m->reserved = true;
            if ((e = m_spawn(m)) != 0) {
                m->next = rt.free_m;
                rt.free_m = m;
                m = NULL;
            }
        }
    }
    bool say = !m && !rt.said_no_spare;
    rt.said_no_spare |= say;
    unb__unlock(&rt.spare_lock);
    if (say && e)
        unb__say("could not start a spare thread (%s); a worker stays blocked "
                 "until a call returns",
                 strerror(e));
    else if (say)
        unb__say("all %u spare threads are busy (UNBLOCK_SPARE_THREADS); a worker "
                 "stays blocked until a call returns",
                 unb__config.spares);
    return m;
}

/*
 * A spare thread started ahead of the first handoff, as the monitor
 * starts.  Started at the handoff instead, on the monitor's thread, a
 * thread's creation can hold the monitor itself off its CPU: perf trace of
 * bench_monitor's file read showed the monitor run nothing for 4 ms after
 * its clone3, until the reader's first read (5.6 ms of page faults into a
 * fresh buffer) returned.  This one waits in the pool and, unused, ends
 * after the quiet period like any other.  Within the same bounds as
 * spare_get; nothing if a spare is idle.
 */
static void spare_prepare(void)
{
    unb__lock(&rt.spare_lock);
    struct unb__m *m = NULL;
    if (!rt.spares && rt.nthreads < rt.nworkers + unb__config.spares &&
        room_for_thread() && (m = m_alloc()) != NULL) {
        m->reserved = true; /* listed here, as it starts */
        m->idle = true;
        m->next = rt.spares;
        rt.spares = m;
        if (m_spawn(m) != 0) {
            rt.spares = m->next;
            m->next = rt.free_m;
            rt.free_m = m;
        }
    }
    unb__unlock(&rt.spare_lock);
}

static void spare_putback(struct unb__m *m)
{
    unb__lock(&rt.spare_lock);
    m->idle = true;
    m->next = rt.spares;
    rt.spares = m;
    unb__unlock(&rt.spare_lock);
}

/* Does anything on w wait for its thread?  Racy reads; a wrong answer
 * costs one tick.  Coroutines that have not started yet are stealable:
 * they count only when no other worker is idle to take them. */
static bool has_work(struct unb__worker *w)
{
    if (__atomic_load_n(&w->waiting, __ATOMIC_RELAXED) > 0 ||
        __atomic_load_n(&w->nhomed, __ATOMIC_RELAXED) > 0 ||
        atomic_load_explicit(&w->home_wants, memory_order_relaxed) ||
        atomic_load_explicit(&w->mailbox, memory_order_relaxed) != NULL)
        return true;
    if (unb__deque_size(&w->runq) <= 0 &&
        atomic_load_explicit(&rt.ninject, memory_order_relaxed) == 0)
        return false;
    return rt.nworkers == 1 ||
           (atomic_load_explicit(&rt.nidle, memory_order_relaxed) == 0 &&
            atomic_load_explicit(&rt.nspinning, memory_order_relaxed) == 0);
}

/*
 * Hands worker w from thread m, which made no progress (beat b) outside
 * the runtime, to a spare thread.  The asymmetric Dekker: we announce the
 * take, then fence every thread of the process (membarrier: each running
 * thread executes a full barrier); m announces a section (depth) and then
 * reads the take with a compiler barrier only.  So either we see m's
 * depth and back off, or m sees the take and waits for our decision.
 */
static bool handoff(struct unb__worker *w, struct unb__m *m, uint32_t b)
{
    /* w's home thread, back from its own call and waiting, before a spare.
     * Only m's thread (inside a section) or we claim its request, and m's
     * is outside one when the take is done: the claim below is a last
     * guard, which fails only if m's thread gave w home meanwhile. */
    bool home = atomic_load_explicit(&w->home_wants, memory_order_relaxed);
    struct unb__m *spare = home ? w->home_m : spare_get();
    if (!spare)
        return false;
    atomic_store_explicit(&m->st.take, UNB_TAKE_PENDING, memory_order_relaxed);
    fence_others();
    if (atomic_load_explicit(&m->st.depth, memory_order_acquire) != 0 ||
        atomic_load_explicit(&m->st.beat, memory_order_relaxed) != b ||
        (home && !atomic_exchange_explicit(&w->home_wants, 0, memory_order_acquire))) {
        atomic_store_explicit(&m->st.take, UNB_TAKE_NONE, memory_order_release);
        if (!home)
            spare_putback(spare);
        return false;
    }
    atomic_store_explicit(&m->w, NULL, memory_order_relaxed);
    atomic_store_explicit(&m->st.take, UNB_TAKE_DONE, memory_order_release);
    place_spare(spare, m);
    give(spare, w);
    atomic_fetch_add_explicit(&rt.handoffs, 1, memory_order_relaxed);
    return true;
}

/* The CPU time a thread has used, in ns, or -1 (the clock id is the
 * kernel's per-thread scheduler clock: ~tid << 3 | 6). */
static int64_t thread_cpu_ns(pid_t tid)
{
    return tid > 0 ? cpu_clock_ns((clockid_t)((~(unsigned)tid << 3) | 6)) : -1;
}

/* The state letter of m's thread from /proc (R running or runnable, S or D
 * asleep in the kernel), or 0; and the CPU it is on or last ran on, into
 * m->cpu (field 39, for place_spare).  On the way to every handoff of a
 * thread that stopped switching, so no printf-family call: a process's
 * first one takes about 95 us (its code paged in; 1 us after), and in a
 * program that had not printed, snprintf of the path was 85-95 us of the
 * 1.1 ms from the watchdog's arming to the heartbeat running on the spare
 * in bench_monitor's first handoff (TSC reads around it, 8 of 8 runs).
 * The hand-made path takes 1 us. */
static char thread_state(struct unb__m *m)
{
    char path[64], buf[512], *end;
    end = stpcpy(path, "/proc/self/task/");
    unb__put_u64(&end, (uint64_t)m->tid);
    strcpy(end, "/stat");
    if (!unb__proc_read(path, buf, sizeof buf))
        return 0;
    const char *p = strrchr(buf, ')'); /* the name may hold anything */
    if (!p || p[1] != ' ')
        return 0;
    char st = p[2];
    /* p ends on the space before field `field`: 3 (the state) first. */
    for (int field = 3; field <= 39 && (p = strchr(p + 1, ' ')) != NULL; field++)
        ;
    if (p && p[1] >= '0' && p[1] <= '9') {
        int cpu = 0;
        for (p++; *p >= '0' && *p <= '9' && cpu < 1 << 20; p++)
            cpu = cpu * 10 + (*p - '0');
        atomic_store_explicit(&m->cpu, cpu, memory_order_relaxed);
    }
    return st;
}

/*
 * Is a thread that made no switch for a while really holding its worker?
 * Asleep in the kernel (a call), it is.  Using the CPU (a computation),
 * it is once it has used half the time of a window inside the still
 * period (or since its watchdog's arming, which the worker's thread
 * measured then).  Runnable but not run (the CPUs are busy with other
 * threads), it is not: another thread would not run the worker's
 * coroutines any sooner, and a handoff would add a thread to CPUs that are
 * already short.  The thread's CPU clock is read first: a thread that used
 * half the window computes, whatever its state, and /proc is not asked (a
 * round trip to the reader: 17 us at the median and 56 us at the 90th
 * percentile, proc.c, and 90-110 us at a process's first handoff, which
 * opens the file).  Only a thread that did not is looked
 * up in /proc, to tell asleep from not run; `st` is its state if the
 * caller has just read it, else 0.  Returns 1 (holds), 0 (does not: look
 * again) or -1 (not yet known: look again at `*again`).
 */
static int thread_holds(struct unb__worker *w, struct unb__m *m, uint64_t now, char st,
                        uint64_t *again)
{
    int64_t cpu = thread_cpu_ns(m->tid);
    int64_t base = w->mon_cpu;
    uint64_t base_cyc = w->mon_cpu_cyc;
    if (base < 0 && atomic_load_explicit(&w->watch_m, memory_order_relaxed) == m) {
        base = atomic_load_explicit(&w->watch_cpu, memory_order_relaxed);
        base_cyc = atomic_load_explicit(&w->watch_cyc, memory_order_relaxed);
    }
    bool window = cpu >= 0 && base >= 0 && now - base_cyc >= monitor_tick_cyc / 4;
    if (window &&
        (double)(cpu - base) >= (double)(now - base_cyc) * monitor_ns_per_cyc / 2)
        return 1;
    if (!st)
        st = thread_state(m);
    if (st != 'R')
        return st != 0;
    if (cpu < 0)
        return 1;
    w->mon_cpu = cpu;
    w->mon_cpu_cyc = now;
    if (!window) {
        *again = now + monitor_tick_cyc / 2; /* a window to measure */
        return -1;
    }
    return 0;
}

/*
 * When to look again at a worker whose thread made no switch but cannot
 * be handed off now: it is inside the runtime (which no handoff may
 * interrupt), or runnable and not run (the CPUs are busy: see
 * thread_holds).  Both last as long as the kernel keeps the thread off a
 * CPU, a scheduler slice of some milliseconds when busy threads outnumber
 * the CPUs; looked at each tick meanwhile, a preempted worker woke the
 * monitor a dozen times for nothing, and the echo bench's server (two
 * workers and the client on two CPUs) woke it about 700 times a second
 * this way, each a preemption of a busy thread.  So such looks back off:
 * a tick, two, then four, until the thread switches (a new beat).  A
 * computation that begins right after such a wait is handed off up to a
 * millisecond later.
 */
#define LOOK_BACKOFF_MAX 2

static uint64_t look_later(struct unb__worker *w, uint64_t now)
{
    uint64_t at = now + (monitor_tick_cyc << w->mon_backoff);
    if (w->mon_backoff < LOOK_BACKOFF_MAX)
        w->mon_backoff++;
    return at;
}

/*
 * One look at worker w, whose watchdog fired (it has not switched for the
 * watchdog's delay less a tick) or which the monitor watches already.
 * Returns when to look again (a cycle count), or 0: w is idle in its loop
 * or has switched since, and its next switch arms the watchdog again.
 */
static uint64_t monitor_look(struct unb__worker *w, uint64_t now)
{
    uint64_t tick = monitor_tick_cyc;
    uint64_t armed = atomic_load_explicit(&w->watch_cyc, memory_order_relaxed);
    struct unb__m *m = atomic_load_explicit(&w->m, memory_order_acquire);
    if (w->watch_fd >= 0 && armed != w->mon_armed) {
        /* It has switched since.  A yield we asked of a loop of short
         * marked calls: while it goes on making such calls with others
         * waiting, ask again each tick (it gives way only where asked);
         * otherwise it is left to its watchdog. */
        w->mon_armed = armed;
        if (w->mon_calls && m && !__atomic_load_n(&w->in_sleeping_poll, __ATOMIC_RELAXED) &&
            atomic_load_explicit(&m->st.blocking, memory_order_relaxed) &&
            atomic_load_explicit(&m->st.depth, memory_order_relaxed) == 0 && has_work(w)) {
            __atomic_store_n(&w->poll_due, true, __ATOMIC_RELAXED);
            atomic_store_explicit(&m->st.yield_req, 1, memory_order_relaxed);
            return now + tick;
        }
        w->mon_calls = false;
        return 0;
    }
    if (!m || __atomic_load_n(&w->in_sleeping_poll, __ATOMIC_RELAXED)) {
        w->mon_calls = false;
        return 0;
    }
    /* Timers and I/O wait at most a tick on a busy worker, however long
     * its coroutines run between switches. */
    __atomic_store_n(&w->poll_due, true, __ATOMIC_RELAXED);
    uint32_t b = atomic_load_explicit(&m->st.beat, memory_order_relaxed);
    if (m != w->mon_m || b != w->mon_beat) {
        w->mon_m = m;
        w->mon_beat = b;
        w->mon_asked = false;
        w->mon_backoff = 0;
        w->mon_cpu = -1;
    }
    if (atomic_load_explicit(&m->st.depth, memory_order_relaxed) != 0)
        return look_later(w, now); /* in the runtime: its own loop, or a switch */
    uint64_t stamp = atomic_load_explicit(&m->stamp, memory_order_relaxed);
    uint64_t still = now - stamp;
    if ((int64_t)still < 0)
        still = 0; /* another CPU's counter, a little ahead */
    if (still < tick)
        return stamp + tick;
    if (!has_work(w))
        return now + tick;
    /* The end of a marked call is a safe point: ask for a yield there
     * first, which costs no thread. */
    atomic_store_explicit(&m->st.yield_req, 1, memory_order_relaxed);
    bool blocking = atomic_load_explicit(&m->st.blocking, memory_order_relaxed);
    uint64_t again = now + tick;
    if (monitor_serialised) {
        /* /proc cannot tell a call from a wait for the tool's lock. */
        if (still < STILL_OTHER * tick)
            return stamp + STILL_OTHER * tick;
    } else if (blocking) {
        /* Asleep in the kernel: hand off now.  Running (a short call,
         * one of many): the yield comes first; hand off if it has not
         * come a tick later. */
        if (thread_state(m) == 'R' && (!w->mon_asked || still < STILL_OTHER * tick)) {
            bool asked = w->mon_asked;
            w->mon_asked = true;
            w->mon_calls = true;
            return asked ? stamp + STILL_OTHER * tick : now + tick;
        }
    } else {
        char st = 0;
        if (still < STILL_OTHER * tick && (st = thread_state(m)) == 'R')
            return stamp + STILL_OTHER * tick; /* not a computation yet */
        int holds = thread_holds(w, m, now, st, &again);
        if (holds == 0)
            return look_later(w, now); /* preempted (or not known): not stuck */
        if (holds < 0)
            return again; /* a window to measure */
    }
    handoff(w, m, b); /* its new thread arms the watchdog */
    w->mon_calls = false;
    return now + tick;
}

static void monitor_dump_if_asked(void)
{
    if (unb_unlikely(atomic_load_explicit(&rt.dump_req, memory_order_relaxed)) &&
        atomic_exchange(&rt.dump_req, 0))
        unb__dump_run();
}

/* Measures the cycle counter against the monotonic clock, once. */
static void watch_calibrate(void)
{
    if (monitor_ns_per_cyc > 0)
        return;
    uint64_t c0 = cycles(), t0 = now_ns();
    struct timespec ms = {0, 2000000};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &ms, NULL);
    uint64_t c1 = cycles(), t1 = now_ns();
    double ns_per_cyc = c1 > c0 && t1 > t0 ? (double)(t1 - t0) / (double)(c1 - c0) : 1.0;
    monitor_ns_per_cyc = ns_per_cyc;
}

/*
 * A watchdog fires on the CPU of the thread that armed it, and the kernel
 * then tends to wake the monitor on that CPU, behind the thread that is
 * stuck computing: with the default slice, the monitor waited there for
 * the next scheduler tick (up to 4 ms) in half of bench_monitor's compute
 * runs.  Since Linux 6.12 a thread may ask for a shorter slice (EEVDF's
 * sched_runtime for SCHED_OTHER), and a woken thread with a short slice
 * preempts at once.  Older kernels ignore it.  (Not under valgrind, which
 * runs one thread at a time anyway.)  The thread's nice value is kept.
 */
static void monitor_sched(bool short_slice)
{
    struct sched_attributes attr;
    if (!sched_attr_get(0, &attr))
        return;
    /* Started by a worker's thread made SCHED_BATCH (sched_batch): the
     * monitor must preempt, so it takes back the policy the program had. */
    bool changed = false;
    if (attr.policy == SCHED_BATCH &&
        atomic_load_explicit(&rt.batched, memory_order_relaxed)) {
        attr.policy = SCHED_OTHER;
        changed = true;
    }
    if (attr.policy == SCHED_OTHER && short_slice) {
        attr.runtime = MONITOR_SLICE_NS;
        changed = true;
    }
    if (changed)
        sched_attr_set(0, &attr);
}

/* The reader of /proc (proc.c), which the monitor waits for, is
 * scheduled as the monitor is. */
static void monitor_sched_reader(void)
{
    monitor_sched(!monitor_serialised);
}

static void *monitor_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the program's signals go to workers */
    prctl(PR_SET_NAME, "unblock-monitor");
    prctl(PR_SET_TIMERSLACK, 1000); /* looks on time, within a microsecond */
    monitor_serialised = RUNNING_ON_VALGRIND != 0;
    monitor_sched(!monitor_serialised);
    /* A thread's first malloc gives it an arena: mappings, under the
     * process's mmap lock.  Made at a handoff (m_alloc), that waited for
     * the stuck thread when it was taking page faults (the lock's holder
     * between them), behind it on its CPU: 1.8 ms in one bench_monitor
     * fileread run.  So the monitor takes its arena now (volatile: the
     * compiler drops a malloc that is freed unused). */
    void *volatile arena = malloc(1);
    free(arena);
    if (monitor_serialised)
        monitor_tick_ns = (long)MONITOR_TICK_NS * VALGRIND_TICK_FACTOR;
    int efd = atomic_load(&rt.monitor_efd);
    unsigned nw = unb__config.spares ? rt.nworkers : 0; /* none: here for the dump only */
    struct pollfd fds[1 + nw];
    if (nw) {
        cpus_init();
        watch_calibrate();
        monitor_tick_cyc = (uint64_t)((double)monitor_tick_ns / monitor_ns_per_cyc);
        atomic_store_explicit(&watch_delay_ns, monitor_tick_ns * WATCH_DELAY_HALF_TICKS / 2,
                              memory_order_release);
        atomic_store_explicit(&watch_period_cyc, monitor_tick_cyc * WATCH_PERIOD_TICKS,
                              memory_order_release);
        /* Workers that have not switched since have not armed theirs. */
        for (unsigned i = 0; i < nw; i++) {
            rt.workers[i].mon_next = 0;
            watch_arm(&rt.workers[i], NULL, 0);
        }
        /* /proc without taking the program's numbers; an answer later than
         * 4 ticks counts as not known.  A thread, so only with room for
         * one under RLIMIT_AS (a program may have lowered it by now);
         * without the reader, the monitor reads in the process's table. */
        if (room_for_thread())
            unb__proc_start(monitor_sched_reader, monitor_tick_ns * 4);
        spare_prepare();
    }
    while (!atomic_load_explicit(&rt.monitor_stop, memory_order_relaxed)) {
        monitor_dump_if_asked();
        uint64_t now = cycles(), next = UINT64_MAX;
        nfds_t n = 0;
        fds[n++] = (struct pollfd){.fd = efd, .events = POLLIN};
        for (unsigned i = 0; i < nw; i++) {
            struct unb__worker *w = &rt.workers[i];
            if (w->watch_fd < 0 && !w->mon_next)
                w->mon_next = now + monitor_tick_cyc; /* no watchdog: each tick */
            if (w->mon_next && w->mon_next < next)
                next = w->mon_next;
            fds[n++] = (struct pollfd){.fd = w->watch_fd, .events = POLLIN};
        }
        if (nw)
            monitor_place();
        struct timespec ts, *timeout = NULL;
        if (next != UINT64_MAX) {
            double left = next > now ? (double)(next - now) * monitor_ns_per_cyc : 0;
            ts.tv_sec = (time_t)(left / 1e9);
            ts.tv_nsec = (long)(left - (double)ts.tv_sec * 1e9);
            timeout = &ts;
        }
        unb__sys6(SYS_ppoll, (long)fds, (long)n, (long)timeout, 0, 0, 0);
        uint64_t buf;
        if (fds[0].revents)
            unb__sys3(SYS_read, efd, (long)&buf, sizeof buf);
        now = cycles();
        for (unsigned i = 0; i < nw; i++) {
            struct unb__worker *w = &rt.workers[i];
            if (fds[1 + i].revents) {
                /* Watched until it arms again: after this firing. */
                unb__sys3(SYS_read, w->watch_fd, (long)&buf, sizeof buf);
                w->mon_next = now;
                w->mon_armed = atomic_load_explicit(&w->watch_cyc, memory_order_relaxed);
            }
            if (w->mon_next && w->mon_next <= now)
                w->mon_next = monitor_look(w, now);
        }
    }
    unb__proc_stop();
    return NULL;
}

/* Registers for the cheap fence (without it, sections fence themselves).
 * Before the process has threads: with threads, the kernel makes the
 * registration wait for an RCU grace period (about 8 ms here). */
static void membarrier_register(void)
{
    unb__rt_fence =
        unb__sys3(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0;
}

/* Wakes the monitor (from anywhere, a signal handler too). */
static void monitor_wake(void)
{
    int efd = atomic_load(&rt.monitor_efd);
    uint64_t one = 1;
    if (efd >= 0)
        unb__sys3(SYS_write, efd, (long)&one, sizeof one);
}

/* The monitor's eventfd, made with the workers' loops: a descriptor that
 * appeared with the program's second thread would show in its count of
 * open files. */
static void monitor_efd_open(void)
{
    if ((unb__config.spares == 0 && !unb__config.dump_signal) ||
        atomic_load(&rt.monitor_efd) >= 0)
        return;
    int efd = (int)unb__sys3(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK, 0);
    if (efd < 0)
        unb__say("cannot make the monitor's eventfd (%s): a worker stuck in a call "
                 "stalls its coroutines",
                 strerror(-efd));
    else
        atomic_store(&rt.monitor_efd, efd);
}

static void monitor_start(void)
{
    /* Without spare threads it runs only to write dumps. */
    if ((unb__config.spares == 0 && !unb__config.dump_signal) || rt.monitor_running)
        return;
    monitor_efd_open();
    if (atomic_load(&rt.monitor_efd) < 0)
        return;
    atomic_store(&rt.monitor_stop, 0);
    int e = unb__real_thread_create(&rt.monitor, NULL, monitor_main, NULL);
    if (e != 0) {
        unb__say("cannot start the monitor thread (%s): a worker stuck in a call "
                 "stalls its coroutines",
                 strerror(e));
        return;
    }
    rt.monitor_running = true;
}

static void monitor_stop(void)
{
    if (!rt.monitor_running)
        return;
    atomic_store(&rt.monitor_stop, 1);
    monitor_wake();
    unb__real_thread_join(rt.monitor, NULL);
    int efd = atomic_exchange(&rt.monitor_efd, -1);
    unb__sys3(SYS_close, efd, 0, 0);
    rt.monitor_running = false;
}

/*
 * libev's allocator.  Its own aborts when an allocation fails, which under
 * RLIMIT_AS (a program that made threads until pthread_create failed)
 * killed the process in the middle of a park.  Ours first gives back the
 * address space the stack caches hold, then waits for the program to free
 * some (its threads ending), as libev's documentation suggests, and gives
 * up with a message only after 10 s.
 */
#define EV_ALLOC_WAIT_MS 10
#define EV_ALLOC_TRIES 1000

static void *ev_alloc(void *ptr, long size)
{
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    for (unsigned tries = 0;; tries++) {
        void *p = realloc(ptr, (size_t)size);
        if (p)
            return p;
        if (tries == 0) {
            atomic_store(&rt.as_tight, true);
            caches_drop(UNB_TLS_FRESH(unb__tls_worker));
            continue;
        }
        if (tries == 1)
            unb__say("out of memory for the event loop (%ld bytes); waiting for some "
                     "to be freed",
                     size);
        if (tries >= EV_ALLOC_TRIES)
            unb__die("out of memory for the event loop (%ld bytes) for %d s", size,
                     EV_ALLOC_TRIES * EV_ALLOC_WAIT_MS / 1000);
        struct timespec ts = {0, EV_ALLOC_WAIT_MS * 1000000L};
        unb__sys3(SYS_nanosleep, (long)&ts, 0, 0); /* no hook: this thread waits */
    }
}

static int worker_init(struct unb__worker *w, unsigned id)
{
    static bool ev_alloc_set;
    if (!ev_alloc_set) { /* before the first loop: libev's allocator is global */
        ev_alloc_set = true;
        ev_set_allocator(ev_alloc);
    }
    memset(w, 0, sizeof *w);
    w->id = id;
    w->rng = 0x9e3779b9u * (id + 1);
    if (unb__deque_init(&w->runq, 8) != 0)
        return -ENOMEM;
    w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!w->loop)
        w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!w->loop) {
        unb__deque_fini(&w->runq);
        return -EAGAIN;
    }
    ev_async_init(&w->wake, on_wake);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    /* Without one (EMFILE), the monitor looks at this worker each tick. */
    w->watch_fd = (int)unb__sys3(SYS_timerfd_create, CLOCK_MONOTONIC,
                                 TFD_CLOEXEC | TFD_NONBLOCK, 0);
    if (w->watch_fd < 0)
        w->watch_fd = -1;
    return 0;
}

static void worker_fini(struct unb__worker *w)
{
    ev_async_stop(w->loop, &w->wake);
    ev_loop_destroy(w->loop);
    unb__deque_fini(&w->runq);
    if (w->watch_fd >= 0)
        unb__sys3(SYS_close, w->watch_fd, 0, 0);
    while (w->pool) {
        struct unb_coro *co = w->pool;
        w->pool = co->next;
        struct unb__stack st = co->stack;
        unb__stack_unmap(&st);
    }
}

static void rt_exit(void);

/* True once the runtime runs the program's main (unb__sched_run_main). */
static bool owns_main;

/* Starts a thread for worker w; 0 or an errno value. */
static int worker_spawn(struct unb__worker *w)
{
    unb__lock(&rt.spare_lock);
    struct unb__m *m = m_alloc();
    int e = ENOMEM;
    if (m) {
        /* Release: the monitor reads m's fields once it sees it here. */
        atomic_store_explicit(&w->m, m, memory_order_release);
        atomic_store_explicit(&m->w, w, memory_order_release);
        m->first_worker = true;
        w->home_m = m;
        if ((e = m_spawn(m)) != 0) {
            w->home_m = NULL;
            atomic_store_explicit(&w->m, NULL, memory_order_relaxed);
            m->next = rt.free_m;
            rt.free_m = m;
        }
    }
    unb__unlock(&rt.spare_lock);
    return e;
}

/* Starts the threads of workers first.. and the monitor; 0, or -EAGAIN
 * if not even worker 0 could start. */
static int start_threads(unsigned first)
{
    for (unsigned n = first; n < rt.nworkers; n++) {
        int e = worker_spawn(&rt.workers[n]);
        if (e != 0) {
            /* Run with the workers we have; zero is an error. */
            if (n == 0)
                return -EAGAIN;
            unb__say("could start only %u of %u workers: %s", n, rt.nworkers,
                     strerror(e));
            for (unsigned i = n; i < rt.nworkers; i++)
                worker_fini(&rt.workers[i]);
            rt.nworkers = n;
            break;
        }
    }
    /* The process is settled when this returns: the workers' threads have
     * their signal stacks and malloc arenas (see malloc_bind). */
    for (unsigned n = first; n < rt.nworkers; n++) {
        struct unb__m *m = atomic_load_explicit(&rt.workers[n].m, memory_order_acquire);
        while (!atomic_load_explicit(&m->set_up, memory_order_acquire))
            unb__futex_wait(&m->set_up, 0, NULL);
    }
    if (first == 1) /* the preload's initial thread, worker 0 until now alone */
        sched_batch(atomic_load_explicit(&rt.workers[0].m, memory_order_acquire));
    monitor_start();
    return 0;
}

/* The preload's second coroutine: the other workers and the monitor. */
static void start_rest(void)
{
    unb__lock(&rt.start_lock);
    if (atomic_load(&rt.lazy)) {
        start_threads(1);
        atomic_store(&rt.lazy, false);
    }
    unb__unlock(&rt.start_lock);
}

/* Sets up the workers and starts their threads; with `adopt`, worker 0 is
 * left for the calling thread to run. */
static int start_locked(bool adopt)
{
    cal_cyc0 = cycles();
    cal_ns0 = (int64_t)now_ns();
    unb__real_resolve();
    unb__stack_init();
    unb__config_load();
    unb__stack_install_fault_handler();
    rt.stack_size = unb__config.stack_size;
    rt.nworkers = unb__config.workers;

    struct unb__worker *ws = aligned_alloc(UNB_CACHELINE, sizeof *ws * rt.nworkers);
    if (!ws)
        return -EAGAIN;
    unsigned n;
    int rc = 0;
    for (n = 0; n < rt.nworkers; n++)
        if ((rc = worker_init(&ws[n], n)) != 0)
            break;
    if (rc != 0) {
        while (n--)
            worker_fini(&ws[n]);
        free(ws);
        return rc;
    }
    rt.workers = ws;
    atomic_store(&rt.stopping, 0);

    rt.nthreads = 0;
    pthread_sigmask(SIG_SETMASK, NULL, &rt.sigmask);
    membarrier_register();
    /* Under the preload the calling thread is worker 0, and the others
     * and the monitor start with the program's second coroutine: a
     * program that never makes a thread stays single-threaded (a
     * multithreaded process pays the kernel's file-table and file-position
     * locking on every read and write). */
    unb__dump_install();
    monitor_efd_open();
    if (adopt) {
        atomic_store(&rt.lazy, true);
        if (unb__config.dump_signal)
            monitor_start(); /* the dump must be answered at once */
    } else if ((rc = start_threads(0)) != 0) {
        for (unsigned i = 0; i < rt.nworkers; i++)
            worker_fini(&ws[i]);
        free(ws);
        rt.workers = NULL;
        return rc;
    }
    static bool atexit_done;
    if (!atexit_done) {
        atexit_done = true;
        atexit(rt_exit);
    }
    return 0;
}

int unb__sched_start(void)
{
    if (unb_likely(atomic_load_explicit(&rt.state, memory_order_acquire) == RT_RUNNING))
        return 0;
    unb__lock(&rt.start_lock);
    int rc = 0;
    if (atomic_load(&rt.state) != RT_RUNNING) {
        rc = start_locked(false);
        if (rc == 0)
            atomic_store_explicit(&rt.state, RT_RUNNING, memory_order_release);
    }
    unb__unlock(&rt.start_lock);
    return rc;
}

bool unb__sched_owns_main(void)
{
    return owns_main;
}

int unb__sched_run_main(void *(*fn)(void *), void *arg, size_t stack_size)
{
    unb__lock(&rt.start_lock);
    if (atomic_load(&rt.state) == RT_RUNNING) {
        /* A constructor started the runtime already; main stays a thread. */
        unb__unlock(&rt.start_lock);
        return -EBUSY;
    }
    int rc = start_locked(true);
    if (rc != 0) {
        unb__unlock(&rt.start_lock);
        return rc;
    }
    owns_main = true;
    atomic_store_explicit(&rt.state, RT_RUNNING, memory_order_release);
    unb__unlock(&rt.start_lock);

    struct unb__worker *w = &rt.workers[0];
    unb__lock(&rt.spare_lock);
    struct unb__m *m = m_alloc();
    if (m) {
        m->initial = true; /* never exits: the process's first thread */
        m->first_worker = true;
        w->home_m = m;
        m->kmask = unb__sigmask_read();
        atomic_store_explicit(&m->w, w, memory_order_relaxed);
        atomic_store_explicit(&w->m, m, memory_order_release);
        m_count(1);
    }
    unb__unlock(&rt.spare_lock);
    if (!m)
        return -ENOMEM;
    struct unb_coro *co;
    stack_size = (stack_size + unb__page_size - 1) & ~(unb__page_size - 1);
    tls_worker = w;
    rc = coro_new(fn, arg, stack_size, &co);
    if (rc != 0)
        rc = coro_new(fn, arg, 0, &co); /* a smaller stack, rather than none */
    if (rc != 0) {
        tls_worker = NULL;
        return rc;
    }
    co->pthread = 1;
    tls_out(co); /* main's TLS is the initial thread's, as constructors left it */
    unb__intr_set_main(co);
    unb__sched_ready(co);
    thread_main(m);
    /* Only when the runtime stops, which it does not while it owns main:
     * the process ends by exit() on some worker. */
    for (;;) {
        _Atomic uint32_t forever = 0;
        unb__futex_wait(&forever, 0, NULL);
    }
}

/*
 * At exit: stop the workers that are idle and wait briefly for them.  A
 * worker busy in a coroutine (or the worker exit() was called on) cannot
 * be stopped; then nothing is freed and the process exits around it, as
 * it would around a running thread.
 */
static void rt_exit(void)
{
    /* Under the preload the coroutines are the program's threads: they go
     * on running during exit(), as threads do, until the process ends. */
    if (owns_main)
        return;
    unb__lock(&rt.start_lock);
    if (atomic_load(&rt.state) != RT_RUNNING) {
        unb__unlock(&rt.start_lock);
        return;
    }
    monitor_stop();
    atomic_store(&rt.stopping, 1);
    for (unsigned i = 0; i < rt.nworkers; i++)
        ev_async_send(rt.workers[i].loop, &rt.workers[i].wake);
    unb__lock(&rt.spare_lock);
    for (struct unb__m *m = rt.spares; m; m = m->next) {
        atomic_store(&m->wake, 1);
        unb__futex_wake(&m->wake, 1);
    }
    unb__unlock(&rt.spare_lock);
    bool all = true;
    struct unb__worker *self = unb__sched_worker();
    for (unsigned i = 0; i < rt.nworkers; i++) {
        struct unb__worker *w = &rt.workers[i];
        if (w == self) {
            all = false;
            continue;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        for (int tries = 0; tries < 20 && !atomic_load(&w->exited); tries++)
            unb__futex_wait(&w->exited, 0, &ts);
        if (!atomic_load(&w->exited))
            all = false;
    }
    if (all) {
        /* The threads are detached; past `exited` they touch no worker. */
        for (unsigned i = 0; i < rt.nworkers; i++)
            worker_fini(&rt.workers[i]);
        free(rt.workers);
        rt.workers = NULL;
        rt.nworkers = 0;
        while (rt.pool) {
            struct unb_coro *co = rt.pool;
            rt.pool = co->next;
            struct unb__stack st = co->stack;
            unb__stack_unmap(&st);
        }
        rt.npool = 0;
        atomic_store(&rt.nidle, 0);
        atomic_store(&rt.nspinning, 0);
        rt.idle_list = NULL;
        atomic_store(&rt.state, RT_STOPPED);
    }
    atomic_store(&rt.stopping, 0);
    unb__unlock(&rt.start_lock);
}

/* ---- fork ------------------------------------------------------------- */

/*
 * fork() copies only the calling thread.  In the child, the other workers
 * and every coroutine they ran or queued are gone, as the other threads of
 * a native process are; the caller (a coroutine, or a plain thread) goes on
 * alone.  The parent's libev loops must not be used: their epoll instance
 * is shared with the parent, and a child's epoll_ctl would change the
 * parent's interest list.  So the child gives every worker a new loop and
 * an empty queue, keeps the calling worker's thread, and starts threads for
 * the others.  Locks are taken in prepare so that the child inherits no lock
 * held by a vanished thread mid-update.
 */
void unb__sched_fork_prepare(void)
{
    unb__lock(&rt.start_lock);
    unb__lock(&rt.inject_lock);
    unb__lock(&rt.pool_lock);
    unb__lock(&rt.idle_lock);
    unb__lock(&rt.spare_lock);
}

void unb__sched_fork_parent(void)
{
    unb__unlock(&rt.spare_lock);
    unb__unlock(&rt.idle_lock);
    unb__unlock(&rt.pool_lock);
    unb__unlock(&rt.inject_lock);
    unb__unlock(&rt.start_lock);
}

void unb__sched_fork_child(void)
{
    atomic_store(&rt.spare_lock.state, 0);
    atomic_store(&rt.idle_lock.state, 0);
    atomic_store(&rt.pool_lock.state, 0);
    atomic_store(&rt.inject_lock.state, 0);
    unb__plot_reset();
    unb__fd_fork_child();
    struct unb_coro *cur = tls_cur;
    if (cur) {
        /* A thread the child does not have may have held its lock at the
         * fork: the coroutine registering as its joiner (join right after
         * spawn), or a canceller.  The child's first park spun on it for
         * ever (fork_exec under ASan).  Nor is the joiner in the child. */
        atomic_store(&cur->lock, 0);
        cur->joiner = NULL;
    }
    registry_fork_child(cur);
    unb__intr_fork_child(cur);
    if (unb__sigmask_on)
        unb__sigmask_fork_child(cur);
    if (atomic_load(&rt.state) != RT_RUNNING) {
        atomic_store(&rt.start_lock.state, 0);
        return;
    }
    rt.inject_head = rt.inject_tail = NULL;
    atomic_store(&rt.ninject, 0);
    rt.idle_list = NULL;
    atomic_store(&rt.nidle, 0);
    atomic_store(&rt.nspinning, 0);
    atomic_store(&rt.alive, cur ? 1 : 0);
    /* The monitor and every other thread are gone: the structs of the
     * idle spares and of the other workers' threads join rt.free_m (which
     * keeps its own), for the child's threads to reuse.  Dropped, each
     * fork lost one per worker (memcheck found them).  A thread that was
     * handed away while stuck in a call is in no list: its struct stays
     * behind. */
    rt.monitor_running = false;
    unb__proc_forget();
    int efd = atomic_exchange(&rt.monitor_efd, -1); /* the parent's */
    if (efd >= 0) {
        unb__sys3(SYS_close, efd, 0, 0);
        monitor_efd_open();
    }
    struct unb__worker *self = tls_worker;
    struct unb__m *me = tls_m;
    while (rt.spares) {
        struct unb__m *m = rt.spares;
        rt.spares = m->next;
        m_forget(m);
    }
    for (unsigned i = 0; i < rt.nworkers; i++) {
        struct unb__m *m = atomic_load(&rt.workers[i].m);
        if (m && m != me)
            m_forget(m);
    }
    rt.nthreads = rt.nthreads_peak = 0;
    if (!self || !me) {
        /* Forked by a plain thread: no worker goes on; the next spawn
         * starts the runtime afresh.  The old workers' memory is left. */
        rt.workers = NULL;
        rt.nworkers = 0;
        atomic_store(&rt.state, RT_STOPPED);
        owns_main = false;
        atomic_store(&rt.start_lock.state, 0);
        return;
    }
    for (unsigned i = 0; i < rt.nworkers; i++) {
        struct unb__worker *w = &rt.workers[i];
        struct unb__worker keep = *w;
        if (worker_init(w, keep.id) != 0) /* in place: the loop knows &w->wake */
            unb__die("cannot set up worker %u after fork", keep.id);
        if (w == self) {
            /* Keep the stacks this thread cached; the scheduler context
             * it returns to is its own (me). */
            w->pool = keep.pool;
            w->npool = keep.npool;
            w->tick = keep.tick;
        }
        /* The old loop's memory and its descriptors (the epoll instance
         * shared with the parent, the wake-up eventfd) are this process's
         * copies: free and close them, which leaves the parent's interest
         * list alone (no epoll_ctl).  Kept, each fork leaked them in the
         * child (LeakSanitizer found the memory). */
        ev_loop_destroy(keep.loop);
        unb__deque_fini(&keep.runq);
        if (keep.watch_fd >= 0) /* the parent's timer: the same file */
            unb__sys3(SYS_close, keep.watch_fd, 0, 0);
    }
    /* This thread runs its worker again, even if the parent's monitor
     * was handing it away during the fork. */
    atomic_store(&me->st.take, UNB_TAKE_NONE);
    atomic_store(&me->w, self);
    self->home_m = me; /* the others' threads are started afresh, below */
    if (cur) /* the one coroutine left, homed here (worker_init cleared the counts) */
        atomic_store_explicit(&cur->home->nlive, 1, memory_order_relaxed);
    me->tid = (pid_t)unb__sys3(SYS_gettid, 0, 0, 0); /* the monitor reads /proc by it */
    atomic_store(&self->m, me);
    m_count(1);
    membarrier_register(); /* the child's memory map is a new one */
    if (!atomic_load(&rt.lazy)) {
        for (unsigned i = 0; i < rt.nworkers; i++) {
            struct unb__worker *w = &rt.workers[i];
            if (w != self && worker_spawn(w) != 0)
                unb__say("worker %u could not be started after fork", w->id);
        }
        monitor_start();
    } else if (unb__config.dump_signal) {
        monitor_start();
    }
    atomic_store(&rt.start_lock.state, 0);
}

/* ---- the dump ------------------------------------------------------------ */

/*
 * The dump itself (dump.c) runs on the monitor thread, since a signal
 * handler may do little more than ask for it.  It starts from a copy of
 * every live coroutine taken here, under the registry's locks, so no
 * coroutine can end and free its stack while its frames are read.  The
 * copy is racy otherwise: a coroutine may move on while it is copied, and
 * then shows a state it had a moment ago.
 */

void unb__sched_dump_request(void)
{
    atomic_store(&rt.dump_req, 1);
    monitor_wake();
}

/*
 * The return addresses of a switched-out coroutine, innermost first: its
 * resume address, then up the chain of frame pointers from the rbp it saved.
 * The runtime keeps frame pointers, so the chain reaches at least the hook
 * and the program's call of it; the program's own frames follow where it
 * was built with them too.  Every frame must lie above the last one and
 * inside the coroutine's stack, so a wrong guess ends the walk and can
 * never read outside the stack.  The stack is live memory another thread
 * may be writing: hence no sanitizer here.
 */
__attribute__((no_sanitize("address", "thread"))) static unsigned
walk_frames(const struct unb_coro *co, uintptr_t *out, unsigned max)
{
    uintptr_t lo = (uintptr_t)co->ctx.rsp, hi = (uintptr_t)co; /* the header's base */
    if (lo < (uintptr_t)co->stack.lo || lo >= hi || max == 0)
        return 0;
    unsigned n = 0;
    out[n++] = (uintptr_t)co->ctx.rip;
    uintptr_t fp = (uintptr_t)co->ctx.rbp;
    while (n < max && fp >= lo && fp + 16 <= hi && (fp & 7) == 0) {
        const volatile uintptr_t *frame = (const volatile uintptr_t *)fp;
        uintptr_t next = frame[0], ret = frame[1];
        if (ret < 4096)
            break;
        out[n++] = ret;
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

static void snap_coro(struct unb__dump_coro *d, struct unb_coro *co)
{
    memset(d, 0, sizeof *d);
    d->id = co->id;
    memcpy(d->name, co->name, sizeof d->name);
    d->name[sizeof d->name - 1] = 0;
    d->pthread = co->pthread;
    d->pinned = co->pinned;
    d->entry = (uintptr_t)co->fn;
    struct unb__worker *home = co->home;
    d->worker = home ? (int)home->id : -1;
    uint8_t state = atomic_load_explicit(&co->state, memory_order_acquire);
    d->state = state;
    if (state == UNB_CO_RUNNING) {
        struct unb__m *m = atomic_load_explicit(&co->on, memory_order_acquire);
        if (m) {
            d->tid = m->tid;
            d->blocking = atomic_load_explicit(&m->st.blocking, memory_order_relaxed);
        }
        return;
    }
    if (state == UNB_CO_PARKED) {
        d->wait_call = co->wait_call;
        d->wait_obj = co->wait_obj;
        d->wait_since = co->wait_since;
    }
    if (state == UNB_CO_PARKED || state == UNB_CO_READY) {
        d->nframes = walk_frames(co, d->frames, UNB_DUMP_FRAMES);
        /* Resumed meanwhile: the frames may be half old, half new. */
        if (atomic_load_explicit(&co->state, memory_order_acquire) != state)
            d->nframes = 0;
    }
}

int unb__sched_snapshot(struct unb__dump *d)
{
    memset(d, 0, sizeof *d);
    if (atomic_load_explicit(&rt.state, memory_order_acquire) != RT_RUNNING)
        return 0;
    size_t cap = 0;
    for (unsigned i = 0; i < REG_STRIPES; i++) {
        struct reg_stripe *r = &registry[i];
        unb__lock(&r->lock);
        for (struct unb_coro *co = r->head; co; co = co->reg_next) {
            if (d->nco == cap) {
                size_t ncap = cap ? 2 * cap : 256;
                struct unb__dump_coro *n = realloc(d->co, ncap * sizeof *n);
                if (!n) {
                    unb__unlock(&r->lock);
                    unb__sched_snapshot_free(d);
                    return -ENOMEM;
                }
                d->co = n;
                cap = ncap;
            }
            snap_coro(&d->co[d->nco++], co);
        }
        unb__unlock(&r->lock);
    }
    d->nw = rt.nworkers;
    d->w = calloc(d->nw ? d->nw : 1, sizeof *d->w);
    if (!d->w) {
        unb__sched_snapshot_free(d);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < d->nw; i++) {
        struct unb__worker *w = &rt.workers[i];
        struct unb__m *m = atomic_load_explicit(&w->m, memory_order_acquire);
        d->w[i].id = w->id;
        d->w[i].tid = m ? m->tid : 0;
        d->w[i].sleeping = __atomic_load_n(&w->in_sleeping_poll, __ATOMIC_RELAXED);
        int64_t q = unb__deque_size(&w->runq);
        d->w[i].queued = (unsigned)(q > 0 ? q : 0) +
                         __atomic_load_n(&w->nhomed, __ATOMIC_RELAXED);
    }
    unb__lock(&rt.spare_lock);
    d->spare_threads = rt.nthreads > rt.nworkers ? rt.nthreads - rt.nworkers : 0;
    unb__unlock(&rt.spare_lock);
    d->handoffs = atomic_load(&rt.handoffs);
    return 0;
}

void unb__sched_snapshot_free(struct unb__dump *d)
{
    free(d->co);
    free(d->w);
    d->co = NULL;
    d->w = NULL;
    d->nco = d->nw = 0;
}

/* ---- statistics ------------------------------------------------------- */

void unb__sched_stats(struct unb_stats *st)
{
    memset(st, 0, sizeof *st);
    st->spawned = atomic_load(&rt.spawned);
    int64_t alive = atomic_load(&rt.alive);
    st->alive = alive > 0 ? (uint64_t)alive : 0;
    st->peak_alive = (uint64_t)atomic_load(&rt.peak_alive);
    st->wakeups = atomic_load(&rt.foreign_wakeups);
    st->stacks_mapped = unb__stack_count();
    st->stacks_unguarded = unb__stack_count_unguarded();
    st->handoffs = atomic_load(&rt.handoffs);
    unb__lock(&rt.spare_lock);
    unsigned nw = rt.nworkers;
    st->spare_threads = rt.nthreads > nw ? rt.nthreads - nw : 0;
    st->spare_peak = rt.nthreads_peak > nw ? rt.nthreads_peak - nw : 0;
    unb__unlock(&rt.spare_lock);
    if (atomic_load_explicit(&rt.state, memory_order_acquire) != RT_RUNNING)
        return;
    st->workers = rt.nworkers;
    for (unsigned i = 0; i < rt.nworkers; i++) {
        struct unb__worker *w = &rt.workers[i];
        st->switches += atomic_load_explicit(&w->n_switches, memory_order_relaxed);
        st->steals += atomic_load_explicit(&w->n_steals, memory_order_relaxed);
        st->parks += atomic_load_explicit(&w->n_parks, memory_order_relaxed);
        st->wakeups += atomic_load_explicit(&w->n_wakeups, memory_order_relaxed);
    }
}

void unb__sched_parks_by_call(uint64_t out[UNB_CALL_COUNT])
{
    memset(out, 0, sizeof(uint64_t) * UNB_CALL_COUNT);
    if (atomic_load_explicit(&rt.state, memory_order_acquire) != RT_RUNNING)
        return;
    for (unsigned i = 0; i < rt.nworkers; i++)
        for (unsigned c = 0; c < UNB_CALL_COUNT; c++)
            out[c] += atomic_load_explicit(&rt.workers[i].n_parks_by[c],
                                           memory_order_relaxed);
}
