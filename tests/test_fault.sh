#!/usr/bin/env bash
# test_fault: fault injection (issue 7).  The programs in tests/fault/ are
# ordinary pthread programs that provoke a fault and print verdicts on
# what they observe (stderr gets the counts, which vary); each runs
# natively, then under LD_PRELOAD=libunblock.so, and the preloaded run must
# give the native run's exit status and stdout:
#
#   eintr_storm      SIGUSR1 at a high rate at threads blocked in read,
#                    write, accept, connect, nanosleep, cond_wait, sem_wait
#                    (with and without SA_RESTART): EINTR only where the
#                    native call may give it, no byte or wake-up lost
#   thread_rlimit    pthread_create under RLIMIT_AS until stacks cannot be
#                    mapped: EAGAIN, nothing lost, the process goes on
#   thread_overflow  a thread's unbounded recursion: death by SIGSEGV (and,
#                    preloaded, the overflow report); a 2 MiB stack
#                    attribute honoured before that
#   reset_load       clients resetting mid-transfer under load: the server's
#                    writes fail with EPIPE/ECONNRESET only, every
#                    acknowledged byte arrives, descriptors return
#
# and then a server under load loses a client to kill -9:
#
#   kill9            examples/echo_threads (native, then preloaded) serves
#                    tests/soak/soak_client; the client is killed with
#                    SIGKILL mid-load; the server stays up, serves a new
#                    client with every byte checked, and its descriptors
#                    return to the count before the load.
#
#   UNB_BUILD=build prove -v --exec tests/run-test tests/test_fault.sh
set -u
export LC_ALL=C

UNB_BUILD=${UNB_BUILD:-build}
T=150 # limit for one run, seconds

LIB=$(realpath "$UNB_BUILD/libunblock.so" 2>/dev/null)
B=$(realpath "$UNB_BUILD" 2>/dev/null)
if [ -z "$LIB" ] || [ ! -f "$LIB" ]; then
    echo "Bail out! no $UNB_BUILD/libunblock.so: run make tests first"
    exit 1
fi
SAN_RT=$(ldd "$LIB" 2>/dev/null | awk '/lib[at]san\.so/ { print $3; exit }')
# The sanitizer's runtime after the library, as tests/test_preload.c says
# why (first, its pthread_create would wrap each coroutine in a thread).
PRELOAD=$LIB${SAN_RT:+:$SAN_RT}
# shellcheck source=tests/soak/lib.sh
. "$(dirname "$0")/soak/lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/unb_fault.XXXXXX") || { echo "Bail out! mktemp -d failed"; exit 1; }
SRV_PID=
trap '[ -n "$SRV_PID" ] && stop_server; rm -rf "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

n=0
nfail=0
ok() { # ok PASS DESCRIPTION
    n=$((n + 1))
    if [ "$1" = 1 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        nfail=$((nfail + 1))
    fi
}
# diag: "# ..." lines on stderr, which prove shows (what explains a failure);
# note: the same on stdout, which prove hides (figures printed on every run).
diag() { local l; while IFS= read -r l; do echo "# $l" >&2; done <<<"$*"; }
note() { local l; while IFS= read -r l; do echo "# $l"; done <<<"$*"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

# Under TSan (make test-tsan) thread_rlimit fails alike, in the preloaded
# runs too (each coroutine is a fiber with the tool's own state).
# Under ASan (make test-asan) the native reference runs are the tool's:
# under thread_rlimit's RLIMIT_AS ASan cannot map its own per-thread state
# ("AddressSanitizer failed to allocate ... SetAlternateSignalStack") and
# aborts the program before pthread_create fails; and ASan's own SIGSEGV
# handler reports thread_overflow's overflow and exits 1 instead of the
# death by SIGSEGV a native program has (the preloaded run, where ours
# handles it, is still checked).
native_skip() {
    case $SAN_RT:$1 in
    *libasan*:thread_rlimit) echo "ASan's own per-thread mappings fail under the RLIMIT_AS first and abort the native run" ;;
    *libasan*:thread_overflow) echo "natively ASan's SIGSEGV handler reports the overflow and exits 1" ;;
    *libtsan*:thread_rlimit) echo "under the RLIMIT_AS ThreadSanitizer cannot map its own state for each coroutine (a fiber: ThreadSignalContext, error code 12) and exits before pthread_create fails, so the preloaded run has nothing to compare" ;;
    esac
}
diag_file() { [ -s "$1" ] && diag "$(head -n "${2:-12}" "$1")"; return 0; }

clean_env=(-u LD_PRELOAD)
for v in $(compgen -e); do
    case $v in UNBLOCK_*) clean_env+=(-u "$v") ;; esac
done

# run OUT MODE PROG: MODE native or a worker count (preloaded).
run() {
    local out=$1 mode=$2 prog=$3
    local -a envs=("${clean_env[@]}")
    [ "$mode" != native ] && envs+=(LD_PRELOAD="$PRELOAD" UNBLOCK_WORKERS="$mode")
    # thread_rlimit counts how many stacks fit under its RLIMIT_AS, twice.
    # A spare thread the monitor starts between the counts takes room (its
    # stack, and 64 MiB for a malloc arena), and CI saw 1023 and then 508:
    # the runtime's own threads, not the stacks this checks.  So no spares
    # there; the runtime with its monitor under RLIMIT_AS is test_config's
    # RLIMIT_AS child.
    [ "$mode" != native ] && [ "${prog##*/}" = thread_rlimit ] && envs+=(UNBLOCK_SPARE_THREADS=0)
    (
        timeout -k 2 "$T" env "${envs[@]}" "$prog" </dev/null >"$out.out" 2>"$out.err"
        exit $?
    ) 2>/dev/null
    echo $? >"$out.status"
}

# case_ NAME WANT_STATUS MODES...
case_() {
    local name=$1 want=$2
    shift 2
    local prog=$B/tests/fault/$name base=$tmp/$name
    if [ ! -x "$prog" ]; then
        ok 0 "$name: no $prog (run make tests)"
        return
    fi
    local why_native
    why_native=$(native_skip "$name")
    if [ "$name" = thread_rlimit ] && [ -n "$why_native" ]; then
        skip "$name natively and under the preload" "$why_native"
        return
    fi
    run "$base.native" native "$prog"
    local st
    st=$(cat "$base.native.status")
    if [ -n "$why_native" ]; then
        skip "$name natively: status $st (want $want)" "$why_native"
        st=$want # the preloaded runs are compared with what a native run gives
    else
        ok "$([ "$st" = "$want" ] && echo 1 || echo 0)" "$name natively: status $st (want $want)"
    fi
    [ "$st" = "$want" ] || { diag_file "$base.native.out"; diag_file "$base.native.err"; }
    note "native: $(tr '\n' ' ' <"$base.native.err" | cut -c1-400)"
    local m
    for m in "$@"; do
        run "$base.$m" "$m" "$prog"
        st=$(cat "$base.$m.status")
        local pass=1 why=""
        [ "$st" = "$want" ] || { pass=0; why="status $st, not $want"; }
        if ! cmp -s "$base.native.out" "$base.$m.out"; then
            pass=0
            why="${why:+$why; }stdout differs"
        fi
        ok $pass "$name under the preload, UNBLOCK_WORKERS=$m: the native status and output${why:+ ($why)}"
        if [ $pass = 0 ]; then
            diag "$(diff "$base.native.out" "$base.$m.out" | head -20)"
            diag "native stderr:"
            diag_file "$base.native.err"
            diag "preloaded ($m) stderr:"
            diag_file "$base.$m.err" 20
        fi
        note "preloaded ($m): $(tr '\n' ' ' <"$base.$m.err" | cut -c1-400)"
    done
}

case_ eintr_storm 0 2 1
case_ thread_rlimit 0 2
case_ reset_load 0 2 1
case_ thread_overflow 139 2

# The preloaded overflow names itself; nothing else says "libunblock:".
b=$tmp/thread_overflow.2
ok "$(grep -q 'libunblock: coroutine stack overflow' "$b.err" 2>/dev/null && echo 1 || echo 0)" \
    "thread_overflow under the preload: stderr reports the coroutine stack overflow"
for f in eintr_storm.2 eintr_storm.1 thread_rlimit.2 reset_load.2 reset_load.1; do
    if [ ! -e "$tmp/$f.err" ]; then
        skip "${f%.*} under the preload (UNBLOCK_WORKERS=${f##*.}): no libunblock: message" "not run"
    elif grep -q 'libunblock:' "$tmp/$f.err" 2>/dev/null; then
        ok 0 "${f%.*} under the preload (UNBLOCK_WORKERS=${f##*.}): no libunblock: message"
        diag_file "$tmp/$f.err"
    else
        ok 1 "${f%.*} under the preload (UNBLOCK_WORKERS=${f##*.}): no libunblock: message"
    fi
done

# --------------------------------------------------------------------------
# kill -9 of a client under load.

CLIENT=$B/tests/soak/soak_client
kill9() {
    local mode=$1
    if [ ! -x "$CLIENT" ] || [ ! -x "$B/examples/echo_threads" ]; then
        ok 0 "kill9 ($mode): no $CLIENT or echo_threads (run make tests)"
        return
    fi
    SRV_ERR=$tmp/srv.$mode.err
    if ! start_server "$mode"; then
        ok 0 "kill9 ($mode): the echo server starts"
        diag_file "$SRV_ERR"
        SRV_PID=
        return
    fi
    sleep 0.3
    local fds0
    fds0=$(srv_fds)
    # Load: 50 connections at a time, far more than can finish in 1.5 s.
    "$CLIENT" "$SRV_PORT" 1000000 50 7 60 >"$tmp/load.$mode.out" 2>&1 &
    local cpid=$!
    sleep 1.5
    local fds_load
    fds_load=$(srv_fds)
    kill -9 "$cpid"
    wait "$cpid" 2>/dev/null
    ok "$(kill -0 "$SRV_PID" 2>/dev/null && echo 1 || echo 0)" \
        "kill9 ($mode): the server is up after its client was killed under load"
    note "kill9 ($mode): server descriptors $fds0 before the load, $fds_load under it"
    # The next client: every byte checked.
    "$CLIENT" "$SRV_PORT" 300 20 8 60 >"$tmp/next.$mode.out" 2>&1
    local st=$?
    ok "$([ $st = 0 ] && echo 1 || echo 0)" \
        "kill9 ($mode): the next client's 300 connections are served, every byte intact"
    if [ $st = 0 ]; then note "$(cat "$tmp/next.$mode.out")"; else diag "$(cat "$tmp/next.$mode.out")"; fi
    if wait_fds "$fds0" 10; then
        ok 1 "kill9 ($mode): the server's descriptors return to $fds0"
    else
        ok 0 "kill9 ($mode): the server's descriptors return to $fds0 (still $(srv_fds))"
    fi
    ok "$([ ! -s "$SRV_ERR" ] && echo 1 || echo 0)" "kill9 ($mode): the server said nothing on stderr"
    diag_file "$SRV_ERR"
    stop_server
    SRV_PID=
}
kill9 native
kill9 preload

echo "1..$n"
[ $nfail = 0 ]
