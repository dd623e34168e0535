/* The real-symbol table (see real.h). */
#define _GNU_SOURCE
#include "real.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

struct unb__real_table unb__real;
intptr_t unb__errno_offset;

/* Not instrumented: ThreadSanitizer's runtime can reach a hook (and so
 * this) while it initialises, before it can run instrumented code. */
static UNB_NO_TSAN void errno_init(void)
{
    char *tp;
    __asm__ volatile("movq %%fs:0, %0" : "=r"(tp));
    unb__errno_offset = (char *)&errno - tp;
}

/* The loaded object that holds address p (its link map), or NULL.
 * _dl_find_object is a lookup in a sorted table; dladdr, which also
 * looks for the nearest symbol, cost dd 1.3 million instructions for
 * seven calls at start-up.  Not instrumented: run by unb__real_resolve. */
static UNB_NO_TSAN const void *object_of(const void *p)
{
#if __GLIBC_PREREQ(2, 35)
    struct dl_find_object found;
    return _dl_find_object((void *)p, &found) == 0 ? (const void *)found.dlfo_link_map
                                                   : NULL;
#else
    Dl_info info;
    return dladdr(p, &info) ? info.dli_fbase : NULL;
#endif
}

/* Is fn glibc's own, in the object that defines gnu_get_libc_version
 * (which no interposer does)? */
static UNB_NO_TSAN bool in_libc(const void *fn, const void *libc)
{
    return libc && object_of(fn) == libc;
}

UNB_NO_TSAN void unb__real_resolve(void)
{
    errno_init();
#define UNB_REAL_LOOKUP(name)                                                          \
    do {                                                                               \
        void *sym = dlsym(RTLD_NEXT, #name);                                           \
        if (!sym)                                                                      \
            unb__die("cannot resolve the real %s(): %s", #name,                        \
                     dlerror() ?: "not found");                                        \
        memcpy(&unb__real.name, &sym, sizeof sym);                                     \
    } while (0);
    UNB_REAL_SYMBOLS(UNB_REAL_LOOKUP)
#undef UNB_REAL_LOOKUP
    void *version = dlsym(RTLD_DEFAULT, "gnu_get_libc_version");
    const void *libc = version ? object_of(version) : NULL;
    bool direct = in_libc((void *)unb__real.read, libc) &&
                  in_libc((void *)unb__real.write, libc) &&
                  in_libc((void *)unb__real.pread, libc) &&
                  in_libc((void *)unb__real.pread64, libc) &&
                  in_libc((void *)unb__real.pwrite, libc) &&
                  in_libc((void *)unb__real.pwrite64, libc);
    atomic_store_explicit(&unb__real.direct, direct, memory_order_relaxed);
    atomic_store_explicit(&unb__real.ready, true, memory_order_release);
}

#ifdef UNB_TSAN
/*
 * ThreadSanitizer symbolizes its first report with libbacktrace, which
 * then opens and closes the program's files, and that close() is our
 * hook: instrumented code run inside the report, where a race it finds
 * makes the tool wait for its own report's lock (the process hangs
 * instead of reporting).  So symbolize once here, before any thread.
 */
__attribute__((constructor(104))) static void tsan_symbolizer_init(void)
{
    char buf[256];
    void *pc;
    void *fn = (void *)tsan_symbolizer_init;
    memcpy(&pc, &fn, sizeof pc);
    __sanitizer_symbolize_pc(pc, "%F", buf, sizeof buf);
}
#endif

/* Resolve before main() so that the first hooked call pays nothing. */
__attribute__((constructor(101))) static void real_init(void)
{
    if (!atomic_load_explicit(&unb__real.ready, memory_order_acquire))
        unb__real_resolve();
}

#if defined(UNB_ASAN) || defined(UNB_TSAN)
UNB_TLS bool unb__real_own_thread;

int unb__real_thread_create(pthread_t *t, const pthread_attr_t *attr,
                            void *(*fn)(void *), void *arg)
{
    static int (*_Atomic intercept)(pthread_t *, const pthread_attr_t *,
                                    void *(*)(void *), void *);
    __typeof__(intercept) f = atomic_load_explicit(&intercept, memory_order_relaxed);
    if (!f) {
        void *sym = dlsym(RTLD_DEFAULT, "__interceptor_pthread_create");
        if (!sym)
            sym = (void *)UNB_REAL(pthread_create);
        memcpy(&f, &sym, sizeof sym);
        atomic_store_explicit(&intercept, f, memory_order_relaxed);
    }
    unb__real_own_thread = true;
    int e = f(t, attr, fn, arg);
    unb__real_own_thread = false;
    return e;
}

int unb__real_thread_join(pthread_t t, void **ret)
{
    static int (*_Atomic intercept)(pthread_t, void **);
    __typeof__(intercept) f = atomic_load_explicit(&intercept, memory_order_relaxed);
    if (!f) {
        void *sym = dlsym(RTLD_DEFAULT, "__interceptor_pthread_join");
        if (!sym)
            sym = (void *)UNB_REAL(pthread_join);
        memcpy(&f, &sym, sizeof sym);
        atomic_store_explicit(&intercept, f, memory_order_relaxed);
    }
    return f(t, ret);
}
#else
int unb__real_thread_join(pthread_t t, void **ret)
{
    return UNB_REAL(pthread_join)(t, ret);
}

int unb__real_thread_create(pthread_t *t, const pthread_attr_t *attr,
                            void *(*fn)(void *), void *arg)
{
    return UNB_REAL(pthread_create)(t, attr, fn, arg);
}
#endif
