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
#include <sanitizer/tsan_interface.h>
/* For a function ThreadSanitizer's runtime calls while it initialises,
 * before it can take the calls instrumented code makes. */
#define UNB_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define UNB_NO_TSAN
#endif

#endif
