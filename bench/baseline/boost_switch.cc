// boost_switch: raw context-switch cost of boost.context's fcontext layer.
//
// usage: boost_switch [ITERATIONS]   (default 10000000)
//
// The main context and one coroutine ping-pong ITERATIONS times; every
// iteration is two jump_fcontext calls (main -> coro, coro -> main), and
// each jump counts as one switch.  Best of 5 runs is reported as
//   boost_switch <ns> ns/switch
// on stdout.  Errors go to stderr with a nonzero exit status.

#include <boost/context/detail/fcontext.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sys/mman.h>

namespace ctx = boost::context::detail;

static const std::size_t kStackSize = 64 * 1024;
static const int kRuns = 5;

// Monotonic clock in nanoseconds.
static std::uint64_t now_ns()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (std::uint64_t)ts.tv_sec * 1000000000u + (std::uint64_t)ts.tv_nsec;
}

// Coroutine body: bounce straight back to whoever jumped in, forever.
// It never returns (returning from an fcontext entry exits the thread);
// the context is simply abandoned after each run.
static void bounce(ctx::transfer_t t)
{
    for (;;)
        t = ctx::jump_fcontext(t.fctx, t.data);
}

int main(int argc, char **argv)
{
    unsigned long long iters = 10000000ULL;
    if (argc > 2) {
        std::fprintf(stderr, "usage: %s [ITERATIONS]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        char *end;
        errno = 0;
        iters = std::strtoull(argv[1], &end, 10);
        if (errno || *end || end == argv[1] || iters == 0) {
            std::fprintf(stderr, "boost_switch: bad iteration count '%s'\n",
                         argv[1]);
            return 2;
        }
    }

    void *stack = mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        std::perror("boost_switch: mmap");
        return 1;
    }
    void *stack_top = (char *)stack + kStackSize;

    double best = 0.0;
    for (int run = 0; run < kRuns; run++) {
        // Fresh context on the same stack for every run.
        ctx::fcontext_t coro = ctx::make_fcontext(stack_top, kStackSize,
                                                  bounce);
        // First jump enters bounce(); not timed.
        coro = ctx::jump_fcontext(coro, nullptr).fctx;

        std::uint64_t t0 = now_ns();
        for (unsigned long long i = 0; i < iters; i++)
            coro = ctx::jump_fcontext(coro, nullptr).fctx;
        std::uint64_t t1 = now_ns();

        double ns = (double)(t1 - t0) / (2.0 * (double)iters);
        if (run == 0 || ns < best)
            best = ns;
    }

    munmap(stack, kStackSize);
    std::printf("boost_switch %.2f ns/switch\n", best);
    return 0;
}
