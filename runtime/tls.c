/*
 * The program's thread-local variables, per coroutine.
 *
 * Which blocks
 * ------------
 * On x86-64 a thread's static TLS (variant II) lies just below its thread
 * pointer: each module loaded at start-up has a block at the same offset
 * from the thread pointer in every thread, which dl_iterate_phdr shows as
 * dlpi_tls_data.  The blocks that follow coroutines are those of the
 * program and its libraries.  Not these, whose per-thread state belongs
 * to the OS thread that runs the coroutines: the C library (errno, which
 * the scheduler keeps per coroutine by itself, malloc's caches, locales),
 * the dynamic linker, libunblock and libev, the sanitizers' and valgrind's
 * runtimes, and malloc replacements (their caches are per OS thread by
 * design).  Modules loaded later by dlopen get dynamic TLS, allocated on
 * first use and not at a fixed offset: they stay per OS thread.
 *
 * Swapping
 * --------
 * The scheduler saves the running coroutine's values into its save area
 * when it switches out, and loads them when it resumes, unless the thread
 * still holds them (nothing else loaded there since).  Each switch to a
 * different coroutine costs a copy out and a copy in of unb__tls_size
 * bytes; nothing when no module has static TLS (most C servers), which is
 * the common case and costs one predictable branch.
 *
 * Moving between threads
 * ----------------------
 * A coroutine resumes on another thread after a handoff (sched.c, "The
 * monitor") and while it parks on a fd homed elsewhere.  The other
 * thread's blocks are at other addresses, and TLS often points into
 * itself: a C++ thread_local std::string's short buffer, an empty
 * std::list's header, `__thread char *cur = buf`.  So a load on a thread
 * other than the one that saved moves every aligned word that points into
 * the saving thread's static TLS by the distance between the two thread
 * pointers, to the same variable in this thread.  An integer that happens
 * to equal such an address (in a span of a few kilobytes near the top of
 * the address space) would be moved too; none does in practice.  What
 * lives outside the blocks (a pointer kept on the stack or in the heap)
 * keeps pointing at the old thread: README, "What remains different".
 */
#define _GNU_SOURCE
#include "tls.h"

#include <dlfcn.h>
#include <link.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sanitize.h"

size_t unb__tls_size;

struct region {
    intptr_t off;      /* the block's start, from the thread pointer */
    size_t len;        /* its size (p_memsz) */
    const void *image; /* its initialisation image (p_filesz bytes) */
    size_t filesz;
    size_t area_off; /* where it goes in a save area */
};

static struct region *regions;
static unsigned nregions;
/* Static TLS spans [tp - span, tp) in every thread: what a pointer into
 * TLS, moved between threads, can point to. */
static uintptr_t span;

/* Per-thread state that must stay with the OS thread (see "Which blocks"). */
static bool stays_with_thread(const char *path, const char *self)
{
    static const char *const prefixes[] = {
        "libc.so",     "ld-linux",    "libunblock",        "libev.so",
        "libasan",     "libtsan",     "libubsan",          "liblsan",
        "libhwasan",   "libclang_rt", "vgpreload",         "libjemalloc",
        "libtcmalloc", "libmimalloc", "libc_malloc_debug", "libmemusage",
    };
    if (self && strcmp(path, self) == 0)
        return true;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < UNB_ARRAY_LEN(prefixes); i++)
        if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

struct scan {
    uintptr_t tp;
    const char *self;
    unsigned n, cap;
};

static int scan_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct scan *s = arg;
    (void)size;
    if (!info->dlpi_tls_data)
        return 0;
    const ElfW(Phdr) *tls = NULL;
    for (unsigned i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_TLS)
            tls = &info->dlpi_phdr[i];
    if (!tls || tls->p_memsz == 0)
        return 0;
    uintptr_t data = (uintptr_t)info->dlpi_tls_data;
    /* Static TLS is below the thread pointer, close to it; anything else
     * is dynamic TLS, at no fixed offset. */
    if (data >= s->tp || s->tp - data > (64u << 20))
        return 0;
    if (s->tp - data > span)
        span = s->tp - data;
    const char *name = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "";
    if (*name && stays_with_thread(name, s->self))
        return 0;
    if (s->n == s->cap) {
        unsigned cap = s->cap ? 2 * s->cap : 4;
        struct region *r = realloc(regions, cap * sizeof *r);
        if (!r)
            return 1; /* what fits follows coroutines */
        regions = r;
        s->cap = cap;
    }
    regions[s->n++] = (struct region){
        .off = (intptr_t)(data - s->tp),
        .len = tls->p_memsz,
        .image = (const void *)(info->dlpi_addr + tls->p_vaddr),
        .filesz = tls->p_filesz,
    };
    return 0;
}

void unb__tls_follow_coroutines(void)
{
    Dl_info self;
    struct scan s = {.tp = unb__tls_thread_pointer()};
    if (dladdr((void *)unb__tls_follow_coroutines, &self) && self.dli_fname)
        s.self = self.dli_fname;
    dl_iterate_phdr(scan_module, &s);
    size_t size = 0;
    for (unsigned i = 0; i < s.n; i++) {
        regions[i].area_off = size;
        size += (regions[i].len + 15) & ~(size_t)15;
    }
    nregions = s.n;
    unb__tls_size = size;
}

void unb__tls_init(void *area, uintptr_t *tp)
{
    for (unsigned i = 0; i < nregions; i++) {
        const struct region *r = &regions[i];
        char *to = (char *)area + r->area_off;
        memcpy(to, r->image, r->filesz);
        memset(to + r->filesz, 0, r->len - r->filesz);
    }
    *tp = 0;
}

void unb__tls_save(void *area, uintptr_t *tp)
{
    uintptr_t me = unb__tls_thread_pointer();
    for (unsigned i = 0; i < nregions; i++)
        memcpy((char *)area + regions[i].area_off, (const char *)(me + regions[i].off),
               regions[i].len);
    *tp = me;
    /* For ThreadSanitizer: the thread's blocks pass from this coroutine to
     * the next that loads there (it cannot see the copies as handing them
     * over, across a handoff in particular). */
    unb__tsan_release(me);
}

/* An address in the static TLS of the thread whose pointer was `from`,
 * moved to the same place below `to`; any other value unchanged. */
static inline uintptr_t moved(uintptr_t v, uintptr_t from, uintptr_t to)
{
    return v < from && from - v <= span ? v - from + to : v;
}

/* Moves the words of a region's saved copy that point into the static TLS
 * of the thread whose pointer was `from` to the same place below `to`. */
static void relocate(char *saved, const struct region *r, uintptr_t from, uintptr_t to)
{
    /* Words aligned as they are in the blocks (tp is aligned to 64). */
    size_t k = (size_t)(-r->off) & 7;
    for (; k + 8 <= r->len; k += 8) {
        uintptr_t v, m;
        memcpy(&v, saved + k, sizeof v);
        if ((m = moved(v, from, to)) != v)
            memcpy(saved + k, &m, sizeof m);
    }
}

void *unb__tls_here(void *addr, uintptr_t from)
{
    uintptr_t me;
    __asm__ volatile("movq %%fs:0, %0" : "=r"(me)); /* fresh: after a switch */
    return from ? (void *)moved((uintptr_t)addr, from, me) : addr;
}

void unb__tls_load(void *area, uintptr_t *tp)
{
    uintptr_t me = unb__tls_thread_pointer();
    unb__tsan_acquire(me); /* from the coroutine that saved them last */
    bool moved = *tp != 0 && *tp != me;
    for (unsigned i = 0; i < nregions; i++) {
        char *saved = (char *)area + regions[i].area_off;
        if (unb_unlikely(moved))
            relocate(saved, &regions[i], *tp, me);
        memcpy((char *)(me + regions[i].off), saved, regions[i].len);
    }
    *tp = me;
}
