/*
 * flockfile: a thread that holds a FILE with flockfile across a sleep
 * keeps every other thread out of that FILE until funlockfile, so its two
 * lines stay together.  glibc's FILE lock is recursive per OS thread;
 * under the preload, coroutines share OS threads, so this only holds if a
 * coroutine holding the lock does not let another coroutine of its thread
 * run (README, "pinned").  Run natively and under LD_PRELOAD, with one
 * worker too, by tests/test_preload.c.
 */
#define _GNU_SOURCE
#include <stdatomic.h>

#include "check.h"

static FILE *f;
static atomic_int holding;

static void *holder(void *arg)
{
    for (int round = 0; round < 20; round++) {
        flockfile(f);
        atomic_store(&holding, 1);
        fprintf(f, "held %d first\n", round);
        usleep(2000); /* another thread tries the FILE meanwhile */
        fprintf(f, "held %d second\n", round);
        atomic_store(&holding, 0);
        funlockfile(f);
        usleep(1000);
    }
    return NULL;
}

static void *intruder(void *arg)
{
    for (int i = 0; i < 200; i++) {
        fprintf(f, "intruder %d\n", i);
        usleep(200);
    }
    return NULL;
}

int main(void)
{
    watchdog(10);
    f = tmpfile();
    if (!f) {
        printf("FAIL - tmpfile: %s\n", strerror(errno));
        return 1;
    }
    pthread_t a = spawn(holder, NULL), b = spawn(intruder, NULL);
    join(a);
    join(b);
    rewind(f);
    char line[128], prev[128] = "";
    int pairs = 0, broken = 0, intruders = 0;
    while (fgets(line, sizeof line, f)) {
        int r;
        if (strstr(line, " second") && sscanf(line, "held %d", &r) == 1) {
            char want[64];
            snprintf(want, sizeof want, "held %d first\n", r);
            if (strcmp(prev, want) == 0)
                pairs++;
            else
                broken++;
        } else if (strncmp(line, "intruder ", 9) == 0) {
            intruders++;
        }
        snprintf(prev, sizeof prev, "%s", line);
    }
    check(pairs == 20 && broken == 0,
          "each flockfile'd pair of lines is adjacent (%d of 20 whole, %d broken)",
          pairs, broken);
    check(intruders == 200, "the other thread's 200 lines are all there (%d)",
          intruders);
    fclose(f);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
