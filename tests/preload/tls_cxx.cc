/*
 * tls_cxx: C++ thread_local objects are each thread's own: constructed on
 * the thread's first use, kept across blocking calls (a short
 * std::string, whose characters live inside the object, and a std::list,
 * whose empty header points to itself), destroyed when the thread ends
 * and, for main's, when exit() runs, before the atexit handlers.  One
 * thread sits in a raw nanosleep meanwhile: with one worker under the
 * preload, the others move to another OS thread (tests/test_preload.c
 * runs it so).
 *
 * An ordinary program: run natively and under the preload by
 * tests/test_preload.c, which compares the output.
 */
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <pthread.h>
#include <string>
#include <sys/syscall.h>
#include <unistd.h>

static std::atomic<int> constructed, destroyed;
static int failures;

struct Tracker {
    std::string name;
    std::list<int> items;
    Tracker() { constructed++; }
    ~Tracker()
    {
        /* What it holds at the end is what its thread put there. */
        if (!name.empty() && items.size() != 20)
            std::printf("FAIL - %s's tracker holds %zu items\n", name.c_str(), items.size());
        destroyed++;
    }
};

static thread_local Tracker tracker;
static thread_local std::string label;
static int bad[9];

static void *thread(void *arg)
{
    long id = reinterpret_cast<long>(arg);
    label = "t" + std::to_string(id);
    tracker.name = label;
    for (int i = 0; i < 20; i++) {
        tracker.items.push_back(i);
        usleep(20 * 1000); /* 0.4 s in all, across the raw sleep below */
        if (label != "t" + std::to_string(id) || tracker.name != label ||
            tracker.items.size() != static_cast<size_t>(i) + 1 || tracker.items.back() != i)
            bad[id]++;
    }
    return nullptr;
}

static void *stuck(void *)
{
    label = "stuck";
    struct timespec ts = {0, 200 * 1000 * 1000};
    syscall(SYS_nanosleep, &ts, nullptr); /* no hook sees it */
    bad[8] = label != "stuck";
    return nullptr;
}

static void at_exit(void)
{
    /* glibc runs the exiting thread's thread_local destructors first. */
    std::printf("at exit: %d constructed, %d destroyed\n", constructed.load(),
                destroyed.load());
    std::fflush(stdout);
}

int main()
{
    std::atexit(at_exit);
    alarm(20);
    tracker.name = "main";
    for (int i = 0; i < 20; i++)
        tracker.items.push_back(i);
    pthread_t t[8], s;
    pthread_create(&s, nullptr, stuck, nullptr);
    for (long i = 0; i < 8; i++)
        pthread_create(&t[i], nullptr, thread, reinterpret_cast<void *>(i));
    pthread_join(s, nullptr);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], nullptr);
    for (int i = 0; i < 9; i++) {
        std::printf("%s - thread %d: its thread_local objects stayed its own (%d wrong)\n",
                    bad[i] ? "FAIL" : "ok", i, bad[i]);
        failures += bad[i] != 0;
    }
    /* Every thread's (a first use of one thread_local constructs all of
     * its file's), main's still alive. */
    bool counts = constructed == 10 && destroyed == 9;
    std::printf("%s - after the joins: %d constructed, %d destroyed\n", counts ? "ok" : "FAIL",
                constructed.load(), destroyed.load());
    failures += !counts;
    std::printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
