/*
 * tls_cxx: C++ thread_local objects are each thread's own: constructed on
 * the thread's first use, kept across blocking calls (a short
 * std::string, whose characters live inside the object, a std::list that
 * stays empty, whose header points to itself, and a std::vector, whose
 * elements are on the heap), destroyed when the thread ends and, for
 * main's, when exit() runs, before the atexit handlers.  One thread sits
 * in a raw nanosleep meanwhile: with one worker under the preload, the
 * others run on a spare OS thread until it ends (tests/test_preload.c
 * runs it so), swapping their objects there, and main goes there and
 * back.  The threads start and end inside that call: their code keeps
 * the objects' addresses across its sleeps (the compiler computes a
 * thread_local's address once per function), which a move to another
 * thread would leave pointing at the old one (README, "What remains
 * different"); so would a std::list with elements, whose nodes point
 * back at the object.
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
#include <vector>
#include <sys/syscall.h>
#include <unistd.h>

static std::atomic<int> constructed, destroyed;
static int failures;

struct Tracker {
    std::string name;
    std::vector<int> items;
    std::list<int> none;
    Tracker() { constructed++; }
    ~Tracker()
    {
        /* What it holds at the end is what its thread put there. */
        if (!name.empty() && (items.size() != 20 || !none.empty() || none.begin() != none.end()))
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
        usleep(20 * 1000); /* 0.4 s in all, inside the raw sleep below */
        if (label != "t" + std::to_string(id) || tracker.name != label ||
            tracker.items.size() != static_cast<size_t>(i) + 1 || tracker.items.back() != i ||
            !tracker.none.empty() || tracker.none.begin() != tracker.none.end())
            bad[id]++;
    }
    return nullptr;
}

static void *stuck(void *)
{
    label = "stuck";
    /* The threads take 0.4 s; more under a slow tool (UNB_TEST_SLOW, 30
     * under memcheck), whose scheduling delays their wake-ups. */
    const char *slow = std::getenv("UNB_TEST_SLOW");
    long ms = slow && std::atoi(slow) >= 20 ? 2500 : 700;
    struct timespec ts = {ms / 1000, ms % 1000 * 1000 * 1000};
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
