/* Coroutine stacks: mapping, guard pages, and overflow reports (stack.h). */
#define _GNU_SOURCE
#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "../libunblock/real.h"
#include "common.h"
#include "sched.h"
#include "sys.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNB_HAVE_VALGRIND 1
#define VALGRIND_GUARDED_MAX 2000
#endif
#endif

size_t unb__page_size = 4096;

/* VMAs left to the program's own mappings before guard pages stop. */
#define MAP_COUNT_RESERVE 8192

static _Atomic uint64_t guarded_live, unguarded_live;
static uint64_t guarded_budget = 28000; /* recomputed in unb__stack_init() */

static uint64_t read_max_map_count(void)
{
    char buf[32];
    if (!unb__read_proc("/proc/sys/vm/max_map_count", buf, sizeof buf))
        return 65530;
    uint64_t v = 0;
    for (int i = 0; buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(buf[i] - '0');
    return v ? v : 65530;
}

void unb__stack_init(void)
{
    static _Atomic int done;
    if (atomic_exchange(&done, 1))
        return;
    long ps = sysconf(_SC_PAGESIZE);
    if (ps > 0)
        unb__page_size = (size_t)ps;
    uint64_t maps = read_max_map_count();
    guarded_budget = maps > MAP_COUNT_RESERVE ? (maps - MAP_COUNT_RESERVE) / 2 : 0;
#ifdef UNB_HAVE_VALGRIND
    /* Valgrind's own table of address-space segments is far smaller than
     * the kernel's (it gives up past about 12,000 mappings), and a guarded
     * stack is two segments where unguarded ones merge: under valgrind,
     * guard the first 2,000 stacks only. */
    if (RUNNING_ON_VALGRIND && guarded_budget > VALGRIND_GUARDED_MAX)
        guarded_budget = VALGRIND_GUARDED_MAX;
#endif
}

static int map_unguarded(size_t size, struct unb__stack *st)
{
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -EAGAIN;
    st->map = st->lo = m;
    st->guarded = 0;
    atomic_fetch_add_explicit(&unguarded_live, 1, memory_order_relaxed);
    return 0;
}

int unb__stack_map(size_t size, struct unb__stack *st)
{
    UNB_ASSERT(size % unb__page_size == 0 && size >= 4 * unb__page_size);
    int rc;

    uint64_t n = atomic_fetch_add_explicit(&guarded_live, 1, memory_order_relaxed);
    if (n >= guarded_budget) {
        atomic_fetch_sub_explicit(&guarded_live, 1, memory_order_relaxed);
        rc = map_unguarded(size, st);
    } else {
        /* Map it all inaccessible, then open everything above the guard:
         * no window where the guard page is writable. */
        void *m = mmap(NULL, size, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            atomic_fetch_sub_explicit(&guarded_live, 1, memory_order_relaxed);
            return -EAGAIN;
        }
        char *lo = (char *)m + unb__page_size;
        if (mprotect(lo, size - unb__page_size, PROT_READ | PROT_WRITE) != 0) {
            /* Out of VMAs (ENOMEM): fall back to a stack without a guard. */
            munmap(m, size);
            atomic_fetch_sub_explicit(&guarded_live, 1, memory_order_relaxed);
            rc = map_unguarded(size, st);
        } else {
            st->map = m;
            st->lo = lo;
            st->guarded = 1;
            rc = 0;
        }
    }
    if (rc != 0)
        return rc;
    st->hi = st->map + size;
#ifdef UNB_HAVE_VALGRIND
    st->vg_id = VALGRIND_STACK_REGISTER(st->lo, st->hi);
#else
    st->vg_id = 0;
#endif
    return 0;
}

void unb__stack_unmap(struct unb__stack *st)
{
#ifdef UNB_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
    munmap(st->map, (size_t)(st->hi - st->map));
    atomic_fetch_sub_explicit(st->guarded ? &guarded_live : &unguarded_live, 1,
                              memory_order_relaxed);
}

uint64_t unb__stack_count(void)
{
    return atomic_load_explicit(&guarded_live, memory_order_relaxed) +
           atomic_load_explicit(&unguarded_live, memory_order_relaxed);
}

uint64_t unb__stack_count_unguarded(void)
{
    return atomic_load_explicit(&unguarded_live, memory_order_relaxed);
}

/* ---- overflow reports --------------------------------------------------- */

static void put_str(char **p, const char *s)
{
    size_t n = strlen(s);
    memcpy(*p, s, n);
    *p += n;
}

void unb__stack_overflow_die(size_t size)
{
    char msg[256], *p = msg;
    put_str(&p, "libunblock: coroutine stack overflow (stack size ");
    unb__put_u64(&p, size);
    put_str(&p, " bytes = ");
    unb__put_u64(&p, size >> 10);
    put_str(&p, " KiB); raise UNBLOCK_STACK_SIZE, e.g. UNBLOCK_STACK_SIZE=");
    unb__put_u64(&p, (size >> 10) * 4);
    put_str(&p, "k\n");
    unb__sys3(SYS_write, 2, (long)msg, p - msg);

    /* Die by SIGSEGV, as the program would have without us. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    UNB_REAL(sigaction)(SIGSEGV, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSEGV);
    unb__sys6(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&set, 0, sizeof(long) * 1, 0, 0);
    unb__sys3(SYS_tgkill, unb__sys3(SYS_getpid, 0, 0, 0),
              unb__sys3(SYS_gettid, 0, 0, 0), SIGSEGV);
    for (;;)
        unb__sys3(SYS_exit_group, 128 + SIGSEGV, 0, 0);
}

/* The program's own actions for the two fault signals; index 0 SIGSEGV,
 * 1 SIGBUS.  Guarded by being written only from sigaction() calls, which a
 * program does not race with its own faults. */
static struct sigaction chain[2];
static _Atomic bool fault_handler_installed;

static int chain_index(int sig)
{
    return sig == SIGBUS;
}

bool unb__stack_fault_chain_set(int sig, const struct sigaction *act)
{
    if ((sig != SIGSEGV && sig != SIGBUS) || !atomic_load(&fault_handler_installed))
        return false;
    chain[chain_index(sig)] = *act;
    return true;
}

bool unb__stack_fault_chain_get(int sig, struct sigaction *act)
{
    if ((sig != SIGSEGV && sig != SIGBUS) || !atomic_load(&fault_handler_installed))
        return false;
    *act = chain[chain_index(sig)];
    return true;
}

static int is_overflow(const struct unb__stack *st, const siginfo_t *si,
                       const ucontext_t *uc)
{
    uintptr_t addr = (uintptr_t)si->si_addr;
    uintptr_t lo = (uintptr_t)st->lo;
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    /* A touch of the guard page, or a stack pointer already below the
     * stack with the fault near it (a big frame can skip the guard). */
    if (st->guarded && addr >= (uintptr_t)st->map && addr < lo)
        return 1;
    return sp < lo && addr < lo && lo - addr <= (1u << 20);
}

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
    const struct unb__stack *st = unb__sched_current_stack();
    if (st && sig == SIGSEGV && si->si_code > 0 && is_overflow(st, si, ucv))
        unb__stack_overflow_die((size_t)(st->hi - st->map));

    struct sigaction *next = &chain[chain_index(sig)];
    if (next->sa_flags & SA_SIGINFO) {
        next->sa_sigaction(sig, si, ucv);
        return;
    }
    if (next->sa_handler != SIG_DFL && next->sa_handler != SIG_IGN) {
        next->sa_handler(sig);
        return;
    }
    /* Default action: take ours away and let the fault happen again (or,
     * for a fault sent by kill(), send it again). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    UNB_REAL(sigaction)(sig, &dfl, NULL);
    if (si->si_code <= 0)
        unb__sys3(SYS_tgkill, unb__sys3(SYS_getpid, 0, 0, 0),
                  unb__sys3(SYS_gettid, 0, 0, 0), sig);
}

void unb__stack_install_fault_handler(void)
{
    static _Atomic int done;
    if (atomic_exchange(&done, 1))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    UNB_REAL(sigaction)(SIGSEGV, &sa, &chain[0]);
    UNB_REAL(sigaction)(SIGBUS, &sa, &chain[1]);
    atomic_store(&fault_handler_installed, true);
}

#define ALTSTACK_SIZE (64 * 1024)

int unb__stack_altstack_map(void **mem)
{
    void *m = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    *mem = m;
    return 0;
}

int unb__stack_altstack_use(void *mem)
{
    stack_t ss = {.ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    return sigaltstack(&ss, NULL) == 0 ? 0 : -errno;
}

void unb__stack_altstack_free(void *mem)
{
    if (!mem)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(mem, ALTSTACK_SIZE);
}

void unb__stack_altstack_unmap(void *mem)
{
    if (mem)
        munmap(mem, ALTSTACK_SIZE);
}
