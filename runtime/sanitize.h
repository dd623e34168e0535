/*
 * Telling AddressSanitizer and ThreadSanitizer about stack switches.  In a
 * normal build every macro here is empty.
 */
#ifndef UNB_SANITIZE_H
#define UNB_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__)
#define UNB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNB_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define UNB_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNB_TSAN 1
#endif
#endif

#ifdef UNB_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif
#ifdef UNB_TSAN
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/tsan_interface.h>
/* For a function ThreadSanitizer's runtime calls while it initialises,
 * before it can take the calls instrumented code makes. */
#define UNB_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define UNB_NO_TSAN
#endif


/*
 * An ordering that ThreadSanitizer cannot see because the kernel makes it,
 * told to it: a fd number that one thread closes and another then gets
 * back from socket(), accept() or open() (the kernel hands the number out
 * only after the close); our per-fd entry is written on both sides.
 * Nothing in other builds.
 */
#ifdef UNB_TSAN
#define unb__tsan_acquire(addr) __tsan_acquire((void *)(addr))
#define unb__tsan_release(addr) __tsan_release((void *)(addr))
#else
#define unb__tsan_acquire(addr) ((void)0)
#define unb__tsan_release(addr) ((void)0)
#endif

#endif
