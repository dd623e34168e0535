# libunblock: make, make test, make soak, make bench, make demo, make install, make clean.
#
#   BUILD=dir     output directory (default: build)
#   CC=clang      any C11 compiler with GNU extensions
#   SAN=address   a sanitizer build (address, thread), in build-$(SAN)
#   PREFIX=dir    where make install puts things (default: /usr/local)
#   DESTDIR=dir   a staging root prepended to every installed path

SAN ?=
BUILD ?= build$(if $(SAN),-$(SAN))
# A build directory inside the tree is named relative to it, however it was
# given (tests/test_launcher.sh passes an absolute one): the dependency
# files name their objects as the rules do, or a changed header would not
# rebuild an object some absolute-path build compiled last (a stale
# real-symbol table once called sigtimedwait for sched_yield).
override BUILD := $(patsubst $(CURDIR)/%,%,$(BUILD))
CC ?= cc
VERSION := 0.1.0
SOMAJOR := 0

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter
OPT := -O2 -g
# -Wno-tsan: ThreadSanitizer does not model a standalone fence, and gcc says
# so at each of the runtime's (some 60 warnings a build).  Ours pair with
# membarrier or with seq_cst atomics (sched.h, the runtime sections); an
# order the tool could not see would show as a race report, and
# tests/tsan.supp lists none for them.
SANFLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer $(if $(filter address,$(SAN)),-fsanitize=undefined) $(if $(filter thread,$(SAN)),-Wno-tsan))
CFLAGS ?= $(OPT)
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -pthread -Iinclude
# Frame pointers: the coroutine dump walks them (runtime/dump.c).
LIB_CFLAGS := $(ALL_CFLAGS) -fPIC -fvisibility=hidden -fno-omit-frame-pointer
LDLIBS_LIB := -lev -ldl -pthread

LIB_SRCS := $(wildcard runtime/*.c) $(wildcard libunblock/*.c)
ASM_SRCS := runtime/arch/x86_64/switch.S
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(ASM_SRCS:%.S=$(BUILD)/obj/%.o)
LIB_REAL := $(BUILD)/libunblock.so.$(VERSION)
LIB := $(BUILD)/libunblock.so
# The launcher: `unblock [options] command` runs command preloaded.
LAUNCHER := $(BUILD)/unblock
MAN_PAGES := $(BUILD)/man/unblock.1 $(BUILD)/man/libunblock.3

# make install.  The launcher finds the library as ../lib/libunblock.so.0
# from its own directory, so bin and lib stay siblings under PREFIX.
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
LIBDIR = $(PREFIX)/lib
INCLUDEDIR = $(PREFIX)/include
PKGCONFIGDIR = $(LIBDIR)/pkgconfig
MANDIR = $(PREFIX)/share/man

EXAMPLES := $(BUILD)/examples/sleep $(BUILD)/examples/echo_server
TEST_SRCS := $(wildcard tests/test_*.c)
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(wildcard tests/helpers/*.c))
# Ordinary pthread programs run natively and under the preload (tests/preload/).
PRELOAD_PROGS := $(patsubst tests/preload/%.c,$(BUILD)/tests/preload/%,$(wildcard tests/preload/*.c)) \
    $(BUILD)/tests/preload/cleanup_exit_eh $(BUILD)/tests/preload/unwind_cxx \
    $(BUILD)/tests/preload/tls_cxx
# The differential suite: small ordinary programs whose output and status
# under the preload must equal the native run's (tests/diff/).
DIFF_PROGS := $(patsubst tests/diff/%.c,$(BUILD)/tests/diff/%,$(wildcard tests/diff/*.c))
# Fault injection (tests/fault/, run by tests/test_fault.sh) and the soak
# client (tests/soak/, also used there): ordinary programs too.
FAULT_PROGS := $(patsubst tests/fault/%.c,$(BUILD)/tests/fault/%,$(wildcard tests/fault/*.c))
SOAK_CLIENT := $(BUILD)/tests/soak/soak_client
# Test scripts (TAP on stdout) that drive real programs.
TEST_SCRIPTS := $(wildcard tests/test_*.sh)
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCHES := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

# Programs linked with the library find it in $(BUILD) without installing.
LINK_UNBLOCK = -L$(BUILD) -lunblock -Wl,-rpath,$(abspath $(BUILD))

.PHONY: soak all lib launcher man examples tests test test-asan test-tsan test-valgrind bench bench-quick demo clean format deps deps-bench install uninstall
all: lib launcher man examples

# On a fresh machine, `make test` and `make demo` install what they need.
deps:
	@tools/install-deps test
deps-bench:
	@tools/install-deps bench

lib: $(LIB)

include bench/baseline/Makefile.inc

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/%.o: %.S
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB_REAL): $(LIB_OBJS)
	$(CC) -shared $(SANFLAGS) -Wl,-soname,libunblock.so.$(SOMAJOR) -Wl,-z,defs \
	    -o $@ $^ $(LDLIBS_LIB)

$(LIB): $(LIB_REAL)
	ln -sf libunblock.so.$(VERSION) $(BUILD)/libunblock.so.$(SOMAJOR)
	ln -sf libunblock.so.$(SOMAJOR) $@

launcher: $(LAUNCHER)

$(LAUNCHER): tools/unblock.c runtime/dumpsig.h Makefile
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DUNB_VERSION='"$(VERSION)"' -o $@ $<

man: $(MAN_PAGES)

# The man pages' sources say @VERSION@ where the version goes.
$(BUILD)/man/%: man/% Makefile
	@mkdir -p $(@D)
	sed 's/@VERSION@/$(VERSION)/g' $< >$@

examples: $(EXAMPLES) $(ECHO_CLIENT) $(BUILD)/examples/echo_threads

# An ordinary pthread program: built without any reference to libunblock.
$(BUILD)/examples/echo_threads: examples/echo_threads.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $<

$(BUILD)/examples/%: examples/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LINK_UNBLOCK)

# Tests: one process each, TAP on stdout, run by prove with a timeout.
# Under SAN=thread they are compiled, then linked with the library ahead of
# libtsan (gcc's driver would put libtsan first): so our hooks run before
# ThreadSanitizer's interceptors, as under the preload, and not inside the
# interceptors of blocking calls, where it ignores the atomics that order
# the runtime's threads (README, "Tests").
ifeq ($(SAN),thread)
$(BUILD)/tests/%: tests/%.c tests/tap.h tests/util.h tests/child.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -c -o $@.o $<
	$(CC) $(filter-out -fsanitize=thread,$(ALL_CFLAGS)) -o $@ $@.o $(LINK_UNBLOCK) -ltsan -lm
	rm -f $@.o
else
$(BUILD)/tests/%: tests/%.c tests/tap.h tests/util.h tests/child.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(LINK_UNBLOCK) -lm
endif

# Unit tests of internal pieces build those sources in directly.
UNIT_CTX_SRCS := runtime/ctx.c runtime/arch/x86_64/switch.S
UNIT_DEQUE_SRCS := runtime/deque.c
$(BUILD)/tests/test_ctx: tests/test_ctx.c tests/tap.h $(UNIT_CTX_SRCS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -iquote runtime -o $@ $< $(UNIT_CTX_SRCS)
$(BUILD)/tests/test_deque: tests/test_deque.c tests/tap.h $(UNIT_DEQUE_SRCS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -iquote runtime -o $@ $< $(UNIT_DEQUE_SRCS)

# Helpers are ordinary programs that never mention libunblock.
$(BUILD)/tests/helpers/%: tests/helpers/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $<

# The dump's test reads this one's backtraces: frame pointers and exported
# names, as a user debugging with the dump would build.
$(BUILD)/tests/helpers/parked: tests/helpers/parked.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fno-omit-frame-pointer -rdynamic -o $@ $<

# Programs for the preload tests never mention libunblock either.
$(BUILD)/tests/preload/%: tests/preload/%.c tests/preload/check.h tests/preload/trace.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< -lm

# cleanup_exit again with -fexceptions (cleanup handlers that only an
# unwind runs), and a C++ program (destructors).
$(BUILD)/tests/preload/cleanup_exit_eh: tests/preload/cleanup_exit.c tests/preload/check.h tests/preload/trace.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fexceptions -o $@ $<
$(BUILD)/tests/preload/%: tests/preload/%.cc
	@mkdir -p $(@D)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra $(SANFLAGS) -pthread -o $@ $<

# So are the differential programs.
$(BUILD)/tests/diff/%: tests/diff/%.c $(wildcard tests/diff/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< -lm

$(BUILD)/tests/fault/%: tests/fault/%.c $(wildcard tests/diff/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< -lm

$(SOAK_CLIENT): tests/soak/soak_client.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $<

tests: $(TESTS) $(TEST_HELPERS) $(PRELOAD_PROGS) $(DIFF_PROGS) $(FAULT_PROGS) $(SOAK_CLIENT) \
    $(LAUNCHER) $(MAN_PAGES) examples

test: deps
	$(MAKE) tests
	UNB_BUILD=$(BUILD) prove -f --exec tests/run-test $(TESTS) $(TEST_SCRIPTS)

# The soak (issue 7; minutes, not part of make test): 10,000 connections
# with random disconnects through the preloaded examples/echo_threads.
soak: deps
	$(MAKE) $(LIB) $(SOAK_CLIENT) $(BUILD)/examples/echo_threads
	UNB_BUILD=$(BUILD) tests/soak/run-soak

# The whole suite under a tool (README, "Tests").  Each builds its own
# directory; UNB_TEST_TOOL tells the tests which tool runs them (a few
# parts skip, with the reason) and UNB_TEST_SLOW how much slower the tool
# makes the code, for the checks with a liveness bound.  A report from the
# tool fails the test that caused it.
SAN_OPTIONS := ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0:suppressions=$(CURDIR)/tests/tsan.supp
SUITE = $(patsubst $(BUILD)/%,$(1)/%,$(TESTS)) $(TEST_SCRIPTS)

test-asan: deps
	$(MAKE) SAN=address BUILD=build-address tests
	$(SAN_OPTIONS) UNB_TEST_TOOL=asan UNB_TEST_SLOW=3 UNB_TEST_TIMEOUT=600 UNB_BUILD=build-address \
	    prove -f --exec tests/run-test $(call SUITE,build-address)

test-tsan: deps
	$(MAKE) SAN=thread BUILD=build-thread tests
	$(SAN_OPTIONS) UNB_TEST_TOOL=tsan UNB_TEST_SLOW=10 UNB_TEST_TIMEOUT=600 UNB_BUILD=build-thread \
	    prove -f --exec tests/run-test $(call SUITE,build-thread)

# memcheck over the normal build, in its own directory (valgrind.h present,
# so coroutine stacks are registered); tests/run-test starts each test
# program under valgrind (tests/valgrind.supp, each entry explained).
test-valgrind:
	@tools/install-deps valgrind
	$(MAKE) BUILD=build-valgrind tests
	UNB_TEST_TOOL=valgrind UNB_TEST_SLOW=30 UNB_TEST_TIMEOUT=600 UNB_BUILD=build-valgrind \
	    prove -f --exec tests/run-test $(call SUITE,build-valgrind)

$(BUILD)/bench/bench_%: bench/bench_%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LINK_UNBLOCK)

# The raw switch benchmark measures the assembly itself.
$(BUILD)/bench/bench_switch: bench/bench_switch.c $(UNIT_CTX_SRCS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -iquote runtime -o $@ $< $(UNIT_CTX_SRCS)

bench: deps-bench
	$(MAKE) $(BENCHES) $(BASELINE_BINS) examples
	BUILD=$(BUILD) bench/run

bench-quick: deps-bench
	$(MAKE) $(BENCHES) $(BASELINE_BINS) examples
	BUILD=$(BUILD) bench/run --quick

demo: deps
	$(MAKE) examples
	$(BUILD)/examples/sleep
	BUILD=$(BUILD) tools/echo-demo

# The library with its SONAME and development links, the header, a
# pkg-config file for this PREFIX, the launcher and the man pages.
# `make uninstall` (with the same PREFIX and DESTDIR) removes exactly those.
INSTALLED := $(LIBDIR)/libunblock.so.$(VERSION) $(LIBDIR)/libunblock.so.$(SOMAJOR) \
    $(LIBDIR)/libunblock.so $(INCLUDEDIR)/unblock.h $(PKGCONFIGDIR)/unblock.pc \
    $(BINDIR)/unblock $(MANDIR)/man1/unblock.1 $(MANDIR)/man3/libunblock.3

install: $(LIB) $(LAUNCHER) $(MAN_PAGES) unblock.pc.in
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 755 $(LIB_REAL) $(DESTDIR)$(LIBDIR)/libunblock.so.$(VERSION)
	ln -sfn libunblock.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libunblock.so.$(SOMAJOR)
	ln -sfn libunblock.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libunblock.so
	install -m 644 include/unblock.h $(DESTDIR)$(INCLUDEDIR)/unblock.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' unblock.pc.in \
	    >$(DESTDIR)$(PKGCONFIGDIR)/unblock.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/unblock.pc
	install -m 755 $(LAUNCHER) $(DESTDIR)$(BINDIR)/unblock
	install -m 644 $(BUILD)/man/unblock.1 $(DESTDIR)$(MANDIR)/man1/unblock.1
	install -m 644 $(BUILD)/man/libunblock.3 $(DESTDIR)$(MANDIR)/man3/libunblock.3

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

format:
	clang-format -i $(LIB_SRCS) include/*.h runtime/*.h runtime/arch/*/*.h libunblock/*.h tests/*.c tests/*.h examples/*.c bench/*.c tools/*.c

clean:
	rm -rf build build-*

-include $(LIB_OBJS:.o=.d)
