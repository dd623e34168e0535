#!/usr/bin/env bash
# test_launcher: the ecosystem around the library.  TAP on stdout.
#
#   UNB_BUILD=build prove -v --exec tests/run-test tests/test_launcher.sh
#
# - the unblock launcher: the command's exit status and signal death pass
#   through unchanged; LD_PRELOAD gets the library first, keeps the user's
#   entries and never holds two copies; each option sets its variable and
#   takes effect; bad values, unknown options and a missing command stop
#   with one line and status 2; 125/126/127 as env(1); --help, --version;
#   UNBLOCK_LIBRARY and the search beside the launcher;
# - UNBLOCK_SCHED_BATCH=1 (--sched-batch): the workers' threads run
#   SCHED_BATCH when there are two or more, the monitor does not, and a
#   policy the user chose is kept;
# - UNBLOCK_STATS=1: the lines at exit under the preload (a program with 10
#   threads reports at least 11 coroutines) and when linked, even when the
#   program closes its stderr; nothing when unset, 0, or the runtime never
#   started;
# - make install DESTDIR=... PREFIX=/usr: exactly the files promised; a
#   program built with pkg-config against that tree runs on its library;
#   the installed launcher finds the installed library; make uninstall
#   leaves no file behind;
# - the man pages render without warnings (groff, mandoc or man, else a
#   TAP skip) and name every variable and option there is;
# - make demo's script stops with status 1 and says why when a server
#   cannot listen, even with another server answering on its port (it
#   once printed a figure measured against that).
#
# Every command runs under timeout; all files live in one mktemp -d
# directory, removed at exit.  The whole script takes a few seconds.
set -u
export LC_ALL=C
unset UNBLOCK_WORKERS UNBLOCK_STACK_SIZE UNBLOCK_SPARE_THREADS UNBLOCK_STATS \
    UNBLOCK_THREADS UNBLOCK_SCHED_BATCH UNBLOCK_LIBRARY LD_PRELOAD

UNB_BUILD=${UNB_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=10 # limit for one command, seconds

n=0
nfail=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); nfail=$((nfail + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
# diag: "# ..." lines on stderr, which prove shows (what explains a failure);
# note: the same on stdout, which prove hides (figures printed on every run).
diag() { local l; while IFS= read -r l; do echo "# $l" >&2; done <<<"$*"; }
note() { local l; while IFS= read -r l; do echo "# $l"; done <<<"$*"; }
diag_file() { [ -s "$1" ] && diag "$(head -n "${2:-10}" "$1")"; return 0; }
# is ACTUAL EXPECTED NAME
is() {
    if [ "$1" = "$2" ]; then
        pass "$3"
    else
        fail "$3"
        diag "expected: '$2'"
        diag "     got: '$1'"
    fi
}
# ok CONDITION-STATUS NAME [DIAGNOSTIC]: pass when the status ($?) is 0.
ok() {
    if [ "$1" = 0 ]; then pass "$2"; else fail "$2"; [ -n "${3:-}" ] && diag "$3"; fi
    return 0
}

B=$(realpath "$UNB_BUILD" 2>/dev/null)
L=$B/unblock
LIB=$B/libunblock.so
THREADS=$B/tests/helpers/threads
POLICIES=$B/tests/helpers/policies
for f in "$L" "$LIB" "$THREADS" "$B/man/unblock.1" "$B/man/libunblock.3"; do
    if [ -z "$B" ] || [ ! -e "$f" ]; then
        echo "Bail out! no $f: run make tests first"
        exit 1
    fi
done

if [ "${UNB_TEST_TOOL:-}" = valgrind ]; then
    # The launcher only rewrites the environment and execs; what it runs
    # is covered under memcheck by test_preload and test_diff.
    echo "1..0 # SKIP the launcher under valgrind: an exec wrapper, covered by the other tests"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/unb_launcher.XXXXXX") || { echo "Bail out! mktemp -d failed"; exit 1; }
trap 'rm -rf "$tmp"' EXIT

# run CMD...: with the time limit; stdout and stderr to $tmp/out, $tmp/err.
run() {
    timeout -k 2 "$T" "$@" >"$tmp/out" 2>"$tmp/err"
}
# The raw wait status of CMD (exit code << 8, or the signal number), as a
# parent sees it, within the time limit.
wait_status() {
    perl -e 'my $pid = fork // die "fork: $!";
             if (!$pid) { exec { $ARGV[0] } @ARGV or exit 127 }
             local $SIG{ALRM} = sub { kill "KILL", $pid };
             alarm $ENV{T};
             waitpid($pid, 0); print "$?\n"' -- "$@" 2>/dev/null
}
export T
# The value of VAR in `env` output ($tmp/out), or "<unset>".
env_value() {
    local line
    line=$(grep -m1 "^$1=" "$tmp/out") || { echo "<unset>"; return; }
    echo "${line#*=}"
}
# One stats field from $tmp/err: stat_of WORD (the number before WORD).
stat_of() {
    sed -n "s/^libunblock: .*[ ]\([0-9][0-9]*\) $1\b.*/\1/p" "$tmp/err" | head -n 1
}

# --------------------------------------------------------------------------
# Exit status and signals pass through.

for code in 0 3 255; do
    run "$L" sh -c "exit $code"
    is "$?" "$code" "unblock sh -c 'exit $code' exits with $code"
done
native=$(wait_status sh -c 'kill -TERM $$')
launched=$(wait_status "$L" sh -c 'kill -TERM $$')
if [ "$native" = 15 ] && [ "$launched" = "$native" ]; then
    pass "a command killed by SIGTERM has the native wait status ($native: killed, not exited)"
else
    fail "a command killed by SIGTERM has the native wait status"
    diag "raw wait status: native '$native', under unblock '$launched' (15 expected)"
fi
shell_saw=$(timeout -k 2 "$T" sh -c '"$0" sh -c "kill -TERM \$\$"; echo $?' "$L" 2>/dev/null)
is "$shell_saw" 143 "the shell sees 143 for a command that dies of SIGTERM"
run "$L" "$THREADS" 10
is "$?:$(cat "$tmp/out")" "0:45" "a threaded program runs preloaded to its end (10 threads, sum 45)"

# --------------------------------------------------------------------------
# LD_PRELOAD.

echo 'int unb_test_mark = 42;' >"$tmp/mark.c"
MARK=""
if timeout "$T" cc -shared -fPIC -o "$tmp/libmark.so" "$tmp/mark.c" 2>"$tmp/cc.err"; then
    MARK=$tmp/libmark.so
fi

run "$L" env
is "$(env_value LD_PRELOAD)" "$LIB" "with no LD_PRELOAD, unblock sets it to the library beside it"
if [ -n "$MARK" ]; then
    run env LD_PRELOAD="$MARK" "$L" env
    is "$(env_value LD_PRELOAD)" "$LIB:$MARK" "an existing LD_PRELOAD entry is kept, after the library"
    run env LD_PRELOAD="$MARK $LIB" "$L" cat /proc/self/maps &&
        grep -q "/libunblock\.so" "$tmp/out" && grep -q "$MARK" "$tmp/out" && [ ! -s "$tmp/err" ]
    ok "$?" "both the library and the user's entry are loaded into the command, silently" \
        "$(head -n 3 "$tmp/err")"
    run env LD_PRELOAD="$MARK:$B/libunblock.so.0 :$MARK" "$L" env
    is "$(env_value LD_PRELOAD)" "$LIB:$MARK:$MARK" \
        "an entry naming another libunblock.so* is dropped, the others kept in order"
else
    skip "an existing LD_PRELOAD entry is kept" "cc -shared failed: $(head -n 1 "$tmp/cc.err")"
fi
run env LD_PRELOAD="$LIB" "$L" env
is "$(env_value LD_PRELOAD)" "$LIB" "the library already in LD_PRELOAD is not added twice"

# A library of the user's that interposes read and write (a tracer, a fault
# injector) still sees the program's calls of them: the hooks call the next
# library's function, and make the syscall themselves only when that is
# glibc's (libunblock/real.h, "Direct calls").  dd's reads and writes of
# 777 bytes are what it counts.
if timeout "$T" cc -shared -fPIC -o "$tmp/count_io.so" "$ROOT/tests/interpose/count_io.c" \
    -ldl 2>"$tmp/cc.err"; then
    head -c 20000 /dev/zero >"$tmp/blocks"
    counts() {
        rm -f "$tmp/counts"
        run env LD_PRELOAD="$tmp/count_io.so" COUNT_IO_FILE="$tmp/counts" "$@" \
            dd if="$tmp/blocks" of=/dev/null bs=777 count=20
        cat "$tmp/counts"
    }
    is "$(counts) / $(counts "$L")" "count_io: read 20 write 20 / count_io: read 20 write 20" \
        "a library preloaded after ours that interposes read and write sees dd's 20 reads and writes, natively and under unblock"
else
    skip "a library preloaded after ours sees the calls" "cc -shared failed: $(head -n 1 "$tmp/cc.err")"
fi

# --------------------------------------------------------------------------
# Options set their variables, and the runtime reads them.

run "$L" -w 3 -s 512k --spare-threads 0 --stats --sched-batch --native-threads env
is "$(env_value UNBLOCK_WORKERS) $(env_value UNBLOCK_STACK_SIZE) $(env_value UNBLOCK_SPARE_THREADS) $(env_value UNBLOCK_STATS) $(env_value UNBLOCK_SCHED_BATCH) $(env_value UNBLOCK_THREADS)" \
    "3 512k 0 1 1 native" "-w -s --spare-threads --stats --sched-batch --native-threads set UNBLOCK_WORKERS, _STACK_SIZE, _SPARE_THREADS, _STATS, _SCHED_BATCH, _THREADS"
run "$L" --workers=2 --stack-size=1m --spare-threads=4096 env
is "$(env_value UNBLOCK_WORKERS) $(env_value UNBLOCK_STACK_SIZE) $(env_value UNBLOCK_SPARE_THREADS) $(env_value UNBLOCK_STATS) $(env_value UNBLOCK_SCHED_BATCH) $(env_value UNBLOCK_THREADS)" \
    "2 1m 4096 <unset> <unset> <unset>" "--workers=, --stack-size=, --spare-threads= set theirs, and no other"
run "$L" true
ok "$?" "options are optional"
run "$L" -- "$L" --workers 1 env
is "$(env_value UNBLOCK_WORKERS):$(env_value LD_PRELOAD)" "1:$LIB" \
    "after --, the command's own options are its own (a nested unblock adds no second copy)"
run "$L" --workers 3 --stats "$THREADS" 10
is "$(stat_of workers)" 3 "--workers 3 gives the runtime 3 workers (its statistics say)"
run "$L" --stats --native-threads "$THREADS" 10
is "$?:$(cat "$tmp/out"):$(grep -c '^libunblock:' "$tmp/err")" "0:45:0" \
    "--native-threads keeps threads native: the runtime never starts, so no statistics"
run "$L" --stack-size 16k --workers 1 --spare-threads 0 true
ok "$?" "the smallest values are accepted (16k, 1 worker, 0 spares)" "$(cat "$tmp/err")"
run "$L" -s 1g -w 1024 true
ok "$?" "the largest values are accepted (1g, 1024 workers)" "$(cat "$tmp/err")"
run "$L" -s 64KiB true && run "$L" -s 1G true && run "$L" -s 300000 true
ok "$?" "sizes take the runtime's forms (64KiB, 1G, plain bytes)" "$(cat "$tmp/err")"

# bad_value NAME ARGS...: unblock ARGS touch $tmp/ran exits 2 with one line
# on stderr, and the command does not run.
bad_value() {
    local name=$1
    shift
    rm -f "$tmp/ran"
    run "$L" "$@" touch "$tmp/ran"
    local st=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ "$st" = 2 ] && [ "$lines" = 1 ] && grep -q '^unblock: ' "$tmp/err" && [ ! -e "$tmp/ran" ]; then
        pass "$name: exit 2, one line ($(cat "$tmp/err"))"
    else
        fail "$name: exit 2 with one line, and the command does not run"
        diag "status $st (2 expected), $lines lines (1 expected), ran: $([ -e "$tmp/ran" ] && echo yes || echo no)"
        diag_file "$tmp/err"
    fi
}
bad_value "--workers 0" --workers 0
bad_value "--workers 1025" --workers 1025
bad_value "--workers abc" --workers abc
bad_value "--workers ''" --workers ''
bad_value "-w -1" -w -1
bad_value "--workers 99999999999999999999999" --workers 99999999999999999999999
bad_value "--spare-threads 4097" --spare-threads 4097
bad_value "--spare-threads 1x" --spare-threads 1x
bad_value "--stack-size 15k (below 16k)" --stack-size 15k
bad_value "--stack-size 2g (above 1g)" --stack-size 2g
bad_value "--stack-size 12q" --stack-size 12q
bad_value "--stack-size k" --stack-size k
bad_value "an unknown option" --bogus
bad_value "an unknown short option" -x
bad_value "--stats=1 (a flag given a value)" --stats=1
bad_value "--sched-batch=1 (a flag given a value)" --sched-batch=1
run "$L" --workers
is "$?:$(cat "$tmp/err")" "2:unblock: --workers needs a value (see unblock --help)" \
    "--workers without a value: exit 2, one line"
run "$L"
is "$?:$(cat "$tmp/err")" "2:unblock: no command given (see unblock --help)" "no command: exit 2, one line"

run "$L" --help
st=$?
missing=""
for o in --workers --stack-size --spare-threads --stats --native-threads --help --version UNBLOCK_LIBRARY; do
    grep -q -- "$o" "$tmp/out" || missing+=" $o"
done
is "$st:$(head -n 1 "$tmp/out")${missing:+ missing:$missing}" \
    "0:Usage: unblock [options] [--] command [args...]" "--help prints the usage of every option on stdout, exit 0"
hdr_version=$(awk '/#define UNBLOCK_VERSION_(MAJOR|MINOR|PATCH)/ {v = v sep $3; sep = "."} END {print v}' \
    "$ROOT/include/unblock.h")
mk_version=$(sed -n 's/^VERSION := *//p' "$ROOT/Makefile")
run "$L" --version
is "$?:$(cat "$tmp/out")" "0:unblock (libunblock) $mk_version" "--version prints the Makefile's version, exit 0"
is "$hdr_version" "$mk_version" "unblock.h's UNBLOCK_VERSION_* agree with the Makefile's VERSION"

# --------------------------------------------------------------------------
# Finding the command, and the library.

run "$L" unb-no-such-command-here
is "$?:$(cat "$tmp/err")" "127:unblock: unb-no-such-command-here: command not found" \
    "a command not found: exit 127 and a clear message"
run "$L" "$tmp/no/such/file"
is "$?" 127 "a path that does not exist: exit 127"
echo 'echo hello' >"$tmp/notexec"
run "$L" "$tmp/notexec"
is "$?:$(cat "$tmp/err")" "126:unblock: $tmp/notexec: Permission denied" \
    "a file that is not executable: exit 126"

UNBLOCK_LIBRARY=$B/libunblock.so.0 run "$L" env
is "$(env_value LD_PRELOAD)" "$B/libunblock.so.0" "UNBLOCK_LIBRARY overrides the library"
(cd "$B" && UNBLOCK_LIBRARY=libunblock.so.0 run "$L" env)
is "$(env_value LD_PRELOAD)" "$B/libunblock.so.0" "a relative UNBLOCK_LIBRARY is made absolute"
UNBLOCK_LIBRARY=$tmp/nowhere/libunblock.so run "$L" true
is "$?:$(wc -l <"$tmp/err")" "125:1" "a missing UNBLOCK_LIBRARY: exit 125, one line"
mkdir -p "$tmp/lonely"
cp "$L" "$tmp/lonely/unblock"
run "$tmp/lonely/unblock" true
st=$?
grep -q "cannot find libunblock" "$tmp/err"
is "$st:$?" "125:0" "a launcher with no library beside it or in ../lib: exit 125, cannot find libunblock"

# --------------------------------------------------------------------------
# UNBLOCK_STATS.

# (env sets the variables after timeout(1), so that only the program
# is preloaded and prints statistics.)
run env UNBLOCK_STATS=1 LD_PRELOAD="$LIB" "$THREADS" 10
st=$?
spawned=$(stat_of spawned)
if [ "$st" = 0 ] && [ -n "$spawned" ] && ((spawned >= 11)); then
    pass "UNBLOCK_STATS=1 under the preload: main and 10 threads are $spawned >= 11 coroutines spawned"
else
    fail "UNBLOCK_STATS=1 under the preload reports >= 11 coroutines spawned for 10 threads"
    diag "status $st, spawned '$spawned'; stderr:"
    diag_file "$tmp/err"
fi
missing=""
for w in "statistics of threads (pid" spawned "alive at peak" switches steals parks wakeups \
    handoffs "spare threads" mapped "parks by call: "; do
    grep -q "$w" "$tmp/err" || missing+=" '$w'"
done
is "$(grep -vc '^libunblock: ' "$tmp/err"):$(grep -c '^libunblock: ' "$tmp/err")${missing:+ missing:$missing}" \
    "0:6" "the statistics are 6 lines, each prefixed 'libunblock: ', with every counter"
is "$(cat "$tmp/out")" 45 "the program's own output is unchanged"
sw=$(stat_of switches)
[ -n "$sw" ] && ((sw >= 11))
ok "$?" "switches are counted ($sw >= 11)"
for v in unset 0 ''; do
    if [ "$v" = unset ]; then
        run env LD_PRELOAD="$LIB" "$THREADS" 10
    else
        run env UNBLOCK_STATS="$v" LD_PRELOAD="$LIB" "$THREADS" 10
    fi
    is "$?:$(cat "$tmp/err")" "0:" "UNBLOCK_STATS ${v:-empty}: nothing on stderr"
done
run "$L" --stats sleep 0
st=$?
spawned=$(stat_of spawned)
is "$st:${spawned:-none}" "0:1" \
    "statistics reach the initial stderr even when the program closes its own (coreutils sleep)"

# --------------------------------------------------------------------------
# UNBLOCK_SCHED_BATCH: with two workers or more, their threads run
# SCHED_BATCH; the monitor keeps the program's policy (it must preempt),
# and a thread the user gave another policy keeps it.  policies prints the
# policies of the threads other than the first, then main's.

if [ -x "$POLICIES" ]; then
    run "$POLICIES"
    is "$(tr '\n' ';' <"$tmp/out")" "batch 0 monitor none;main other;" \
        "policies natively: no thread SCHED_BATCH, no monitor"
    run "$L" -w 2 "$POLICIES"
    is "$(tr '\n' ';' <"$tmp/out")" "batch 0 monitor other;main other;" \
        "preloaded, 2 workers: every thread stays SCHED_OTHER by default"
    run "$L" -w 2 --sched-batch "$POLICIES"
    is "$?:$(tr '\n' ';' <"$tmp/out")$(cat "$tmp/err")" "0:batch 1 monitor other;main batch;" \
        "--sched-batch, 2 workers: both workers' threads SCHED_BATCH (main's too), the monitor SCHED_OTHER"
    run "$L" -w 1 --sched-batch "$POLICIES"
    is "$(tr '\n' ';' <"$tmp/out")" "batch 0 monitor other;main other;" \
        "--sched-batch, 1 worker: nothing changes (one worker does not compete with itself)"
    if chrt -i 0 true 2>/dev/null; then
        run "$L" -w 2 --sched-batch chrt -i 0 "$POLICIES"
        is "$(tr '\n' ';' <"$tmp/out")" "batch 0 monitor idle;main idle;" \
            "--sched-batch under chrt -i (SCHED_IDLE): the user's policy is kept, in every thread"
    else
        skip "--sched-batch under chrt -i keeps the user's policy" "chrt -i does not run here"
    fi
    run env UNBLOCK_SCHED_BATCH=yes UNBLOCK_WORKERS=2 LD_PRELOAD="$LIB" "$POLICIES"
    is "$(tr '\n' ';' <"$tmp/out")|$(cat "$tmp/err")" \
        "batch 0 monitor other;main other;|libunblock: UNBLOCK_SCHED_BATCH=yes is neither 0 nor 1; workers keep their scheduling policy" \
        "UNBLOCK_SCHED_BATCH=yes: one line naming it, and the policies stay"
else
    skip "UNBLOCK_SCHED_BATCH" "no $POLICIES: run make tests first"
fi

# --------------------------------------------------------------------------
# make install, pkg-config, the installed launcher, make uninstall.

DEST=$tmp/root
# The make we run is not part of a make -j's jobserver.  It builds with
# the flags $B was built with: a sanitizer build's (make test-asan,
# test-tsan) must not be relinked without its sanitizer.
case $(ldd "$LIB" 2>/dev/null) in
*libasan.so*) SAN_ARG=SAN=address ;;
*libtsan.so*) SAN_ARG=SAN=thread ;;
*) SAN_ARG= ;;
esac
mk() {
    timeout -k 2 60 env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
        make --no-print-directory -s -C "$ROOT" BUILD="$B" $SAN_ARG "$@" >"$tmp/make.log" 2>&1
}
mk install DESTDIR="$DEST" PREFIX=/usr
st=$?
expected="usr/bin/unblock
usr/include/unblock.h
usr/lib/libunblock.so -> libunblock.so.0
usr/lib/libunblock.so.0 -> libunblock.so.$mk_version
usr/lib/libunblock.so.$mk_version
usr/lib/pkgconfig/unblock.pc
usr/share/man/man1/unblock.1
usr/share/man/man3/libunblock.3"
got=$(cd "$DEST" 2>/dev/null && find . ! -type d | sed 's|^\./||' | sort |
    while read -r f; do
        if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f"; fi
    done)
if [ "$st" = 0 ] && [ "$got" = "$expected" ]; then
    pass "make install DESTDIR=... PREFIX=/usr installs exactly the library, its links, header, .pc, launcher and man pages"
else
    fail "make install DESTDIR=... PREFIX=/usr installs exactly the promised files"
    diag "status $st; expected:"
    diag "$expected"
    diag "got:"
    diag "$got"
    diag_file "$tmp/make.log"
fi
modes=$(cd "$DEST/usr" 2>/dev/null && stat -c '%a' bin/unblock "lib/libunblock.so.$mk_version" include/unblock.h \
    lib/pkgconfig/unblock.pc share/man/man1/unblock.1 share/man/man3/libunblock.3 | tr '\n' ' ')
is "$modes" "755 755 644 644 644 644 " "installed modes: programs 755, data 644"
is "$(sed -n 's/^prefix=//p' "$DEST/usr/lib/pkgconfig/unblock.pc" 2>/dev/null)" /usr \
    "unblock.pc is written for the PREFIX given"
cmp -s "$B/man/unblock.1" "$DEST/usr/share/man/man1/unblock.1" && ! grep -q '@VERSION@' "$DEST/usr/share/man/man1/unblock.1"
ok "$?" "the installed man page carries the version"

run "$DEST/usr/bin/unblock" env
is "$(env_value LD_PRELOAD)" "$DEST/usr/lib/libunblock.so.0" "the installed launcher finds the installed library (../lib/libunblock.so.0)"
run "$DEST/usr/bin/unblock" cat /proc/self/maps
grep -q "$DEST/usr/lib/libunblock.so.$mk_version" "$tmp/out"
ok "$?" "a command under the installed launcher has the installed library mapped" "$(head -n 2 "$tmp/err")"
run "$DEST/usr/bin/unblock" --stats "$THREADS" 10
spawned=$(stat_of spawned)
is "$(cat "$tmp/out"):${spawned:-none}" "45:11" "a threaded program runs under the installed launcher (11 coroutines)"

cat >"$tmp/linked.c" <<'EOF'
/* A program linked with -lunblock: spawns N coroutines, joins them. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <unblock.h>

static void *work(void *arg)
{
    usleep(1000); /* parks */
    unb_yield();
    return arg;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10, sum = 0;
    unb_coro_t **co = calloc((size_t)n + 1, sizeof *co);
    for (long i = 0; i < n; i++)
        if (!(co[i] = unb_spawn(work, (void *)i))) {
            perror("unb_spawn");
            return 1;
        }
    for (long i = 0; i < n; i++) {
        void *r;
        if (unb_join(co[i], &r) != 0)
            return 1;
        sum += (long)r;
    }
    unb_stats_t st;
    if (unb_stats(&st) != 0)
        return 1;
    printf("sum %ld spawned %llu\n", sum, (unsigned long long)st.spawned);
    return 0;
}
EOF
if command -v pkg-config >/dev/null 2>&1; then
    export PKG_CONFIG_LIBDIR=$DEST/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$DEST \
        PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
    flags=$(pkg-config --cflags --libs unblock 2>"$tmp/pc.err")
    st=$?
    want_flags="-I$DEST/usr/include -L$DEST/usr/lib -lunblock"
    is "$st:$(echo $flags)" "0:$want_flags" "pkg-config --cflags --libs unblock: -I, -L into the tree and -lunblock"
    static=$(pkg-config --static --libs unblock 2>/dev/null)
    [[ " $static " == *" -lev "* ]]
    ok "$?" "pkg-config --static --libs unblock adds libev ($static)"
    # shellcheck disable=SC2086
    if timeout "$T" cc -o "$tmp/linked" "$tmp/linked.c" $flags 2>"$tmp/cc.err"; then
        pass "a program builds against the installed tree with pkg-config's flags"
        export LD_LIBRARY_PATH=$DEST/usr/lib
        ldd "$tmp/linked" 2>/dev/null | grep -q "libunblock.so.0 => $DEST/usr/lib/libunblock.so.0"
        ok "$?" "it resolves libunblock.so.0 (the SONAME) in the installed tree" \
            "$(ldd "$tmp/linked" 2>&1 | grep unblock)"
        run "$tmp/linked" 20
        is "$?:$(cat "$tmp/out"):$(cat "$tmp/err")" "0:sum 190 spawned 20:" \
            "it runs: 20 coroutines spawned and joined, no message"
        UNBLOCK_STATS=1 run "$tmp/linked" 20
        spawned=$(stat_of spawned) sw=$(stat_of switches)
        if [ -n "$spawned" ] && [ -n "$sw" ] && ((spawned == 20 && sw >= 20)); then
            pass "UNBLOCK_STATS=1 when linked: 20 spawned, $sw switches (counted before the workers stop)"
        else
            fail "UNBLOCK_STATS=1 when linked reports 20 spawned and >= 20 switches"
            diag_file "$tmp/err"
        fi
        UNBLOCK_STATS=1 run "$tmp/linked" 0
        is "$?:$(cat "$tmp/out"):$(cat "$tmp/err")" "0:sum 0 spawned 0:" \
            "UNBLOCK_STATS=1 when the runtime never started: nothing printed"
        unset LD_LIBRARY_PATH
    else
        fail "a program builds against the installed tree with pkg-config's flags"
        diag "cc ... $flags:"
        diag_file "$tmp/cc.err"
    fi
    unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_ALLOW_SYSTEM_CFLAGS PKG_CONFIG_ALLOW_SYSTEM_LIBS
else
    skip "pkg-config --cflags --libs unblock, and a program built with it" "no pkg-config (tools/install-deps installs it)"
fi

mk uninstall DESTDIR="$DEST" PREFIX=/usr
st=$?
left=$(cd "$DEST" 2>/dev/null && find . ! -type d)
is "$st:$left" "0:" "make uninstall leaves no file or link behind"

# --------------------------------------------------------------------------
# Man pages.

render=""
if command -v groff >/dev/null 2>&1; then
    render=groff
elif command -v mandoc >/dev/null 2>&1; then
    render=mandoc
elif command -v man >/dev/null 2>&1; then
    render=man
fi
for page in unblock.1 libunblock.3; do
    f=$B/man/$page
    case $render in
    groff) timeout "$T" groff -man -Tutf8 -ww -z "$f" >"$tmp/man.err" 2>&1 ;;
    mandoc) timeout "$T" mandoc -T lint -W warning "$f" >"$tmp/man.err" 2>&1 ;;
    man) timeout "$T" man --warnings -l "$f" 2>"$tmp/man.err" >/dev/null ;;
    esac
    st=$?
    if [ -z "$render" ]; then
        skip "$page renders without warnings" "no groff, mandoc or man"
    elif [ "$st" = 0 ] && [ ! -s "$tmp/man.err" ]; then
        pass "$page renders without warnings ($render)"
    else
        fail "$page renders without warnings ($render)"
        diag_file "$tmp/man.err"
    fi
done
missing=""
for v in $(grep -oh 'UNBLOCK_[A-Z_]*' "$ROOT"/runtime/config.c | sort -u); do
    grep -q "^\.B $v\$" "$B/man/libunblock.3" || missing+=" $v (libunblock.3)"
    grep -q "| \`$v\` |" "$ROOT/README.md" || missing+=" $v (README)"
done
is "${missing:-none}" none "libunblock(3) and the README's table describe every UNBLOCK_* variable the runtime reads"
missing=""
for o in $(grep -o '{"[a-z-]*"' "$ROOT/tools/unblock.c" | tr -d '{"'); do
    # roff spells a hyphen in an option \-
    grep -qF -- "$(printf '%s' "--$o" | sed 's/-/\\-/g')" "$B/man/unblock.1" || missing+=" --$o"
done
is "${missing:-none}" none "unblock(1) describes every option of the launcher"

# The demo's first server cannot listen: another one holds its port.
dport=$((20000 + $$ % 9000))
"$B/examples/echo_server" $((dport + 1)) >/dev/null 2>&1 &
occupant=$!
sleep 0.3
if kill -0 "$occupant" 2>/dev/null; then
    BUILD=$B CONNS=10 SECS=1 PORT=$dport timeout $T sh "$ROOT/tools/echo-demo" \
        >"$tmp/demo.out" 2>"$tmp/demo.err"
    code=$?
    grep -q "the server did not start on port $((dport + 1))" "$tmp/demo.err"
    ok $? "echo-demo says that its server did not start on a port another holds" \
        "$(cat "$tmp/demo.err")"
    is "$code:$(grep -c 'requests/s of its native run' "$tmp/demo.out")" "1:0" \
        "echo-demo then exits with 1 and prints no figure"
    kill "$occupant"
    wait "$occupant" 2>/dev/null
else
    skip "echo-demo says that its server did not start on a port another holds" \
        "port $((dport + 1)) is taken"
    skip "echo-demo then exits with 1 and prints no figure" "port $((dport + 1)) is taken"
fi

echo "1..$n"
[ "$nfail" = 0 ]
