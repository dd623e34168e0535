#!/usr/bin/env bash
# test_dump: the coroutine dump and the parks-by-call statistics.  TAP on
# stdout.
#
#   UNB_BUILD=build prove -v --exec tests/run-test tests/test_dump.sh
#
# tests/helpers/parked (an ordinary pthread program) runs under the
# preload with UNBLOCK_DUMP_SIGNAL=USR2, five of its threads blocked in
# read, pthread_mutex_lock, pthread_cond_wait, nanosleep and accept, one
# computing, and main in a read of its stdin (a fifo this script holds
# open).  Then:
# - kill -USR2 writes the dump to its stderr: every coroutine with the
#   call it waits in and that call's object as the program knows it (the
#   fd numbers and the mutex address it printed), a backtrace through the
#   program's own functions in order, and the program goes on (a second
#   signal gives a second dump; at EOF it exits 0);
# - `unblock --dump PID` prints the dump on its own stdout, and none goes
#   to the program's stderr;
# - `unblock --dump` refuses, without sending anything, a process that has
#   no dump signal, and the process lives on; a bad --dump-signal is a
#   usage error; a bad UNBLOCK_DUMP_SIGNAL is one line on stderr and the
#   program runs as without it;
# - UNBLOCK_STATS=1: "parks by call" counts the program's 10 usleeps.
set -u
export LC_ALL=C
unset UNBLOCK_WORKERS UNBLOCK_STACK_SIZE UNBLOCK_SPARE_THREADS UNBLOCK_STATS \
    UNBLOCK_THREADS UNBLOCK_LIBRARY UNBLOCK_DUMP_SIGNAL LD_PRELOAD

UNB_BUILD=${UNB_BUILD:-build}
T=10 # limit for one command, seconds

n=0
nfail=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); nfail=$((nfail + 1)); echo "not ok $n - $1"; }
# diag: "# ..." lines on stderr, which prove shows (what explains a failure);
# note: the same on stdout, which prove hides (figures printed on every run).
diag() { local l; while IFS= read -r l; do echo "# $l" >&2; done <<<"$*"; }
note() { local l; while IFS= read -r l; do echo "# $l"; done <<<"$*"; }
diag_file() { [ -s "$1" ] && diag "$(head -n "${2:-10}" "$1")"; return 0; }
ok() {
    if [ "$1" = 0 ]; then pass "$2"; else fail "$2"; [ -n "${3:-}" ] && diag "$3"; fi
    return 0
}

B=$(realpath "$UNB_BUILD" 2>/dev/null)
L=$B/unblock
LIB=$B/libunblock.so
PARKED=$B/tests/helpers/parked
THREADS=$B/tests/helpers/threads
for f in "$L" "$LIB" "$PARKED" "$THREADS"; do
    if [ ! -e "$f" ]; then
        echo "1..0 # SKIP $f is not built (make tests)"
        exit 0
    fi
done

D=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    exec 7>&- 2>/dev/null
    rm -rf "$D"
}
trap cleanup EXIT

# wait_for FILE PATTERN [SECONDS]: until grep finds PATTERN in FILE.
wait_for() {
    local i
    for ((i = 0; i < ${3:-5} * 20; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# block FILE ID: the lines of coroutine ID's entry in the first dump in
# FILE, from its heading to the blank line after its frames.
block() {
    awk -v id="$2" '
        /^coroutine / { inside = ($2 == id) }
        inside && /^$/ { exit }
        inside { print }' "$1"
}

# --- the dump on stderr --------------------------------------------------

mkfifo "$D/in"
# env after timeout: timeout itself runs without the preload.
timeout 60 env UNBLOCK_DUMP_SIGNAL=USR2 LD_PRELOAD="$LIB" "$PARKED" <"$D/in" \
    >"$D/out" 2>"$D/err" &
pid=$!
exec 7>"$D/in" # main's stdin stays open until we close it
if ! wait_for "$D/out" '^ready' "$T"; then
    fail "parked starts under the preload"
    diag_file "$D/err"
    echo "1..$n"
    exit 1
fi
read -r _ rfd addr lfd <"$D/out"
# pid is timeout's; the program is its child.
ppid=$(pgrep -P "$pid" -x parked)
ok $? "the program runs (pid ${ppid:-none})"

kill -USR2 "$ppid"
wait_for "$D/err" 'end of the coroutine dump' "$T"
ok $? "kill -USR2 writes a dump to the program's stderr" "$(head -5 "$D/err")"
cp "$D/err" "$D/dump1"

grep -q "^libunblock: coroutine dump of parked (pid $ppid)" "$D/dump1"
ok $? "the dump names the program and its pid"
grep -q '^libunblock: 7 coroutines: 1 running, 0 runnable, 6 parked, 0 new;' "$D/dump1"
ok $? "it counts 7 coroutines, 6 parked and 1 running" "$(sed -n 2p "$D/dump1")"
grep -qE '^worker 0: thread [0-9]+, (asleep in its loop|busy), [0-9]+ queued$' "$D/dump1"
ok $? "it shows the workers"

# Which coroutine waits in what: ids follow creation (main first).
expect_wait() { # ID PATTERN NAME
    if block "$D/dump1" "$1" | head -1 | grep -qE -- "$2"; then
        pass "$3"
    else
        fail "$3"
        diag "expected /$2/ in: $(block "$D/dump1" "$1" | head -1)"
    fi
}
expect_wait 1 '\[read\(fd 0\), parked [0-9.]+ s, worker [0-9], a thread of the program\]:$' \
    "main waits in read(fd 0), its stdin"
expect_wait 2 "\\[read\\(fd $rfd\\), parked" "the reader waits in read(fd $rfd), the pipe"
expect_wait 3 "\\[pthread_mutex_lock\\($addr\\), parked" \
    "the locker waits in pthread_mutex_lock($addr), the mutex main holds"
expect_wait 4 '\[pthread_cond_wait\(0x[0-9a-f]+\), parked' "the waiter waits in pthread_cond_wait"
expect_wait 5 '\[nanosleep, (59|60)\.[0-9]+ s left, parked' \
    "the sleeper waits in nanosleep with about 60 s left"
expect_wait 6 "\\[accept\\(fd $lfd\\), parked" "the acceptor waits in accept(fd $lfd)"
expect_wait 7 '\[running on thread [0-9]+, worker [0-9], a thread of the program\]:$' \
    "the spinner is running, on its OS thread"

# Backtraces: the function that made the call, then the thread's start
# routine, and no frame of the runtime in between.
expect_frames() { # ID INNER OUTER
    local b
    b=$(block "$D/dump1" "$1")
    if grep -qE "^    #0 0x[0-9a-f]+ $2\+0x[0-9a-f]+ \(.*/parked\+0x[0-9a-f]+\)$" <<<"$b" &&
        grep -qE "^    #1 0x[0-9a-f]+ $3\+0x[0-9a-f]+ " <<<"$b" &&
        ! grep -q 'libunblock' <<<"$b"; then
        pass "coroutine $1's backtrace: $2, then $3"
    else
        fail "coroutine $1's backtrace: $2, then $3"
        diag "$b"
    fi
}
expect_frames 2 wait_in_read reader_main
expect_frames 3 wait_in_lock locker_main
expect_frames 4 wait_in_cond waiter_main
expect_frames 5 wait_in_sleep sleeper_main
expect_frames 6 wait_in_accept acceptor_main
block "$D/dump1" 1 | grep -qE '^    #0 0x[0-9a-f]+ main\+0x'
ok $? "main's backtrace starts in main"

kill -0 "$ppid" 2>/dev/null
ok $? "the program goes on after the dump"
kill -USR2 "$ppid"
for ((i = 0; i < 100; i++)); do
    [ "$(grep -c 'end of the coroutine dump' "$D/err")" -ge 2 ] && break
    sleep 0.05
done
is_two=$(grep -c 'end of the coroutine dump' "$D/err")
[ "$is_two" = 2 ]
ok $? "a second signal writes a second dump" "dumps: $is_two"

# --- unblock --dump -------------------------------------------------------

timeout "$T" "$L" --dump "$ppid" >"$D/launcher.out" 2>"$D/launcher.err"
rc=$?
ok $rc "unblock --dump PID succeeds" "$(cat "$D/launcher.err")"
grep -q "^libunblock: coroutine dump of parked (pid $ppid)" "$D/launcher.out" &&
    grep -q 'end of the coroutine dump' "$D/launcher.out" &&
    grep -q "\\[accept(fd $lfd), parked" "$D/launcher.out"
ok $? "it prints the whole dump on its stdout"
sleep 0.2
[ "$(grep -c 'end of the coroutine dump' "$D/err")" = 2 ]
ok $? "and none goes to the program's stderr"

exec 7>&- # EOF on main's stdin
wait "$pid"
rc=$?
pid=
ok $rc "the program exits 0 at EOF, as natively"
grep -v '^libunblock: \|^worker \|^coroutine \|^    \|^$' "$D/err" >"$D/other"
[ ! -s "$D/other" ]
ok $? "its stderr holds nothing but the dumps" "$(head -3 "$D/other")"

# --- refusals ------------------------------------------------------------

sleep 30 &
victim=$!
timeout "$T" "$L" --dump "$victim" >/dev/null 2>"$D/refuse.err"
rc=$?
[ $rc = 1 ] && grep -q "has no dump signal" "$D/refuse.err"
ok $? "unblock --dump refuses a process without a dump signal (status $rc)" \
    "$(cat "$D/refuse.err")"
kill -0 "$victim" 2>/dev/null
ok $? "and sends it nothing: it lives on"
kill "$victim" 2>/dev/null
wait "$victim" 2>/dev/null

timeout "$T" "$L" --dump-signal KILL true 2>"$D/kill.err"
rc=$?
[ $rc = 2 ] && grep -q -- "--dump-signal KILL is not a signal the dump can use" "$D/kill.err"
ok $? "--dump-signal KILL is a usage error (status $rc)" "$(cat "$D/kill.err")"
timeout "$T" "$L" --dump nope 2>"$D/nope.err"
rc=$?
[ $rc = 2 ]
ok $? "--dump with no pid is a usage error (status $rc)" "$(cat "$D/nope.err")"

timeout "$T" env UNBLOCK_DUMP_SIGNAL=bogus LD_PRELOAD="$LIB" "$THREADS" 4 \
    >"$D/bogus.out" 2>"$D/bogus.err"
rc=$?
[ $rc = 0 ] && [ "$(cat "$D/bogus.out")" = "$("$THREADS" 4)" ] &&
    [ "$(wc -l <"$D/bogus.err")" = 1 ] &&
    grep -q '^libunblock: UNBLOCK_DUMP_SIGNAL=bogus is not a signal' "$D/bogus.err"
ok $? "a bad UNBLOCK_DUMP_SIGNAL is one line on stderr; the program runs as natively" \
    "$(cat "$D/bogus.err")"

# --- parks by call ---------------------------------------------------------

timeout "$T" env UNBLOCK_STATS=1 LD_PRELOAD="$LIB" "$THREADS" 10 >/dev/null \
    2>"$D/stats.err"
line=$(grep 'parks by call:' "$D/stats.err")
grep -qE '(: |, )usleep 10(,|$)' <<<"$line"
ok $? "UNBLOCK_STATS counts the 10 threads' usleeps under parks by call" "$line"

echo "1..$n"
[ "$nfail" = 0 ]
