/*
 * unwind_cxx: pthread_exit in a C++ thread runs the destructors of the
 * objects on its stack, innermost first, and C++'s pthread_cleanup_push;
 * a catch (...) that rethrows lets the exit go on.  An ordinary program:
 * run natively and under the preload by tests/test_preload.c, which
 * compares the output.
 */
#include <pthread.h>
#include <stdio.h>
#include <string>
#include <unistd.h>

static std::string order;
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static int failures;

static void note(const char *s)
{
    pthread_mutex_lock(&order_lock);
    order += s;
    pthread_mutex_unlock(&order_lock);
}

static void note_handler(void *arg)
{
    note(static_cast<const char *>(arg));
}

struct Guard {
    const char *name;
    explicit Guard(const char *n) : name(n) {}
    ~Guard() { note(name); }
};

__attribute__((noinline)) static void leave(void)
{
    Guard g("c");
    usleep(1000); /* parks under the preload */
    pthread_exit(reinterpret_cast<void *>(9L));
}

__attribute__((noinline)) static void middle(void)
{
    Guard g("b");
    try {
        leave();
    } catch (...) {
        note("!");
        throw; /* a forced unwind must be rethrown */
    }
}

static void *thread_main(void *)
{
    Guard g("a");
    pthread_cleanup_push(note_handler, const_cast<char *>("h"));
    middle();
    pthread_cleanup_pop(0);
    return nullptr;
}

static void check(bool pass, const char *what)
{
    printf("%s - %s\n", pass ? "ok" : "FAIL", what);
    if (!pass)
        failures++;
}

int main()
{
    pthread_t t;
    if (pthread_create(&t, nullptr, thread_main, nullptr) != 0)
        return 1;
    void *r = nullptr;
    if (pthread_join(t, &r) != 0)
        return 1;
    check(r == reinterpret_cast<void *>(9L), "join gets pthread_exit's value");
    check(order == "c!bha", "destructors, the catch block and the cleanup handler ran, innermost first");
    if (order != "c!bha")
        printf("    ran \"%s\"\n", order.c_str());
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
