/*
 * What a parked coroutine waits in: the call the program made, as the
 * program named it.  Every park is labelled with one; UNBLOCK_STATS
 * counts parks by label and the coroutine dump (dump.c) shows the label of
 * each parked coroutine with the object it waits on.
 *
 * A label is the name of the hooked function, or of the family when the
 * members differ only in their arguments (recv counts for recv and
 * recvfrom, nanosleep for nanosleep and thrd_sleep, and so on).
 */
#ifndef UNB_CALLS_H
#define UNB_CALLS_H

/* X(name, label, what the object is) */
#define UNB_CALLS(X)                                                                   \
    X(OTHER, "other", UNB_OBJ_NONE)                                                    \
    X(READ, "read", UNB_OBJ_FD)                                                        \
    X(READV, "readv", UNB_OBJ_FD)                                                      \
    X(RECV, "recv", UNB_OBJ_FD)                                                        \
    X(RECVMSG, "recvmsg", UNB_OBJ_FD)                                                  \
    X(WRITE, "write", UNB_OBJ_FD)                                                      \
    X(WRITEV, "writev", UNB_OBJ_FD)                                                    \
    X(SEND, "send", UNB_OBJ_FD)                                                        \
    X(SENDMSG, "sendmsg", UNB_OBJ_FD)                                                  \
    X(ACCEPT, "accept", UNB_OBJ_FD)                                                    \
    X(CONNECT, "connect", UNB_OBJ_FD)                                                  \
    X(CLOSE, "close", UNB_OBJ_FD)                                                      \
    X(POLL, "poll", UNB_OBJ_NFDS)                                                      \
    X(SELECT, "select", UNB_OBJ_NFDS)                                                  \
    X(WAIT_FD, "unb_wait_fd", UNB_OBJ_FD)                                              \
    X(SLEEP, "sleep", UNB_OBJ_DEADLINE)                                                \
    X(USLEEP, "usleep", UNB_OBJ_DEADLINE)                                              \
    X(NANOSLEEP, "nanosleep", UNB_OBJ_DEADLINE)                                        \
    X(CLOCK_NANOSLEEP, "clock_nanosleep", UNB_OBJ_DEADLINE)                            \
    X(MUTEX, "pthread_mutex_lock", UNB_OBJ_ADDR)                                       \
    X(COND, "pthread_cond_wait", UNB_OBJ_ADDR)                                         \
    X(RWLOCK_RD, "pthread_rwlock_rdlock", UNB_OBJ_ADDR)                                \
    X(RWLOCK_WR, "pthread_rwlock_wrlock", UNB_OBJ_ADDR)                                \
    X(SEM, "sem_wait", UNB_OBJ_ADDR)                                                   \
    X(BARRIER, "pthread_barrier_wait", UNB_OBJ_ADDR)                                   \
    X(ONCE, "pthread_once", UNB_OBJ_ADDR)                                              \
    X(JOIN, "pthread_join", UNB_OBJ_CORO)                                              \
    X(UNB_JOIN, "unb_join", UNB_OBJ_CORO)                                              \
    X(MIGRATE, "(moving to the fd's worker)", UNB_OBJ_NONE)

enum unb__obj { UNB_OBJ_NONE, UNB_OBJ_FD, UNB_OBJ_NFDS, UNB_OBJ_DEADLINE, UNB_OBJ_ADDR,
                UNB_OBJ_CORO };

#define UNB_CALL_ENUM_(name, label, obj) UNB_CALL_##name,
enum unb__call { UNB_CALLS(UNB_CALL_ENUM_) UNB_CALL_COUNT };
#undef UNB_CALL_ENUM_

/* The label of a call, and what its object is. */
const char *unb__call_label(unsigned call);
enum unb__obj unb__call_obj(unsigned call);

#endif
