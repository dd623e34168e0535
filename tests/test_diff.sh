#!/usr/bin/env bash
# test_diff: the differential suite.  Each program in tests/diff/ is an
# ordinary POSIX/pthread program that prints what it observes (results,
# errno names, flags, orderings made deterministic); it runs natively, then
# under LD_PRELOAD=libunblock.so, and the preloaded run must give
#
#   - the exit status the native run gave (which must be the expected one,
#     else the environment is at fault),
#   - byte-identical stdout,
#   - no "libunblock:" line on stderr.
#
#   UNB_BUILD=build prove -v --exec tests/run-test tests/test_diff.sh
#
# Preloaded runs use UNBLOCK_WORKERS=2; programs whose threads interact run
# again with UNBLOCK_WORKERS=1 (where a call that blocks its worker instead
# of parking it shows as a hang).  Every program runs once more with
# UNBLOCK_THREADS=native: threads stay threads, and the hooks' paths for
# plain threads (a program linking -lunblock takes the same) must give
# the native results too.  A known difference is a TAP TODO with
# its reason; where the difference is a hang, the program's own watchdog
# is shortened (DIFF_WATCHDOG_S) so that the suite stays fast.  Every run
# also has a time limit.  The build directory is $UNB_BUILD (default
# "build"); the programs are $UNB_BUILD/tests/diff/NAME.
set -u
export LC_ALL=C

UNB_BUILD=${UNB_BUILD:-build}
T=20 # limit for one run, seconds (the programs' watchdogs fire at 5 s)

# make test-valgrind: the preloaded runs go under memcheck, whose report
# makes the run exit 99 (so it differs from the native run); with the
# fair thread lock, as tests/run-test explains.
VALGRIND=()
if [ "${UNB_TEST_TOOL:-}" = valgrind ]; then
    VALGRIND=(valgrind -q --error-exitcode=99 --fair-sched=yes
        --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
        --suppressions="$(dirname "$0")/valgrind.supp")
    T=$((T * 10))
fi

LIB=$(realpath "$UNB_BUILD/libunblock.so" 2>/dev/null)
B=$(realpath "$UNB_BUILD" 2>/dev/null)
if [ -z "$LIB" ] || [ ! -f "$LIB" ]; then
    echo "Bail out! no $UNB_BUILD/libunblock.so: run make tests first"
    exit 1
fi
# In a sanitizer build the sanitizer's runtime goes into LD_PRELOAD right
# after the library, as tests/test_preload.c explains.
SAN_RT=$(ldd "$LIB" 2>/dev/null | awk '/lib[at]san\.so/ { print $3; exit }')
PRELOAD=$LIB${SAN_RT:+:$SAN_RT}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/unb_diff.XXXXXX") || { echo "Bail out! mktemp -d failed"; exit 1; }
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

n=0
nfail=0 # failures that are not TODO
# diag: "# ..." lines on stderr, which prove shows (what explains a failure);
# note: the same on stdout, which prove hides (figures printed on every run).
diag() { local l; while IFS= read -r l; do echo "# $l" >&2; done <<<"$*"; }
note() { local l; while IFS= read -r l; do echo "# $l"; done <<<"$*"; }
diag_file() { [ -s "$1" ] && diag "$(head -n "${2:-10}" "$1")"; return 0; }

# The environment without LD_PRELOAD and UNBLOCK_*: the runs add theirs.
clean_env=(-u LD_PRELOAD)
for v in $(compgen -e); do
    case $v in UNBLOCK_*) clean_env+=(-u "$v") ;; esac
done

# --------------------------------------------------------------------------
# The cases.
#
#   case_ NAME[:ARG] WANT W1 [TODO_W2 [TODO_W1]]
#
# NAME is the program, ARG its argv[1]; WANT the expected status (as the
# shell reports it: 128 + N for a death by signal N); W1 is 1 to run again
# with UNBLOCK_WORKERS=1; TODO_* a reason when that preloaded run is a
# known difference ("" for none; "hang:" before the reason shortens the
# watchdog).

declare -a C_NAME C_WANT C_W1 C_TODO2 C_TODO1
case_() {
    C_NAME+=("$1")
    C_WANT+=("$2")
    C_W1+=("$3")
    C_TODO2+=("${4:-}")
    C_TODO1+=("${5:-}")
}

# Reasons, one per finding (see the report in the commit message).
# Under ThreadSanitizer only (make test-tsan): cases with no native run to
# compare with, or that the tool cannot follow; each skipped with why.
tsan_skip() {
    [ "${UNB_TEST_TOOL:-}" = tsan ] || return 0
    case $1 in
    signal_read | alarm_calls)
        echo "natively under ThreadSanitizer a pipe read restarted after an SA_RESTART handler that wrote the byte it waits for hangs (killed by the time limit): no native run to compare with" ;;
    thread_join)
        echo "natively under ThreadSanitizer the program dies by SIGSEGV after its detached threads end: no native run to compare with" ;;
    fork_wait | fork_exec | fork_thread)
        echo "a fork made in a coroutine: ThreadSanitizer's state in the child (its support for a multi-threaded fork is partial) loses the ordering of the fiber switches and reports the child's own scheduler" ;;
    esac
}

case_ pipe_blocking 0 1
case_ pipe_nonblock 0 1
case_ pipe_epipe 0 1
case_ pipe_full_writer 0 1
case_ pipe_workers 0 1
case_ sigpipe_default:pipe 141 0
case_ sigpipe_default:socket 141 0
case_ sigpipe_default:nosignal 0 0
case_ sigpipe_default:socket-partial 0 1
case_ sigpipe_default:tcp-partial 0 1
case_ socketpair_unix 0 1
case_ unix_path 0 1
case_ tcp_loopback 0 1
case_ tcp_connect_errors 0 0
case_ tcp_reset 0 1
case_ tcp_bulk 0 1
case_ tcp_echo_100 0 1
case_ udp_loopback 0 1
case_ recv_flags 0 1
case_ recv_edge 0 1
case_ iovec_io 0 1
case_ file_calls 0 1
case_ scm_rights 0 1
case_ sock_timeouts 0 1
case_ timeout_shared 0 1
case_ poll_cases 0 1
case_ poll_events 0 1
case_ select_cases 0 1
case_ ppoll_sigmask 0 1
case_ sigmask_threads 0 1
case_ sigmask_glibc 0 1
case_ pthread_kill_threads 0 1
case_ sigwait_thread 0 1
case_ signal_sleep 0 0
case_ signal_read 0 0
case_ alarm_calls 0 0
case_ alarm_calls:die 142 0
case_ sleep_order 0 1
case_ huge_timeouts 0 1
case_ fork_wait 0 1
case_ fork_exec 0 1
case_ fork_thread 0 1
case_ mutex_kinds 0 1
case_ cond_clock 0 1
case_ sem_calls 0 1
case_ rwlock_calls 0 1
case_ barrier_once 0 1
case_ thread_keys 0 1
case_ thread_join 0 1
case_ errno_calls 0 1
case_ errno_success 0 1
case_ dup_sockets 0 1
case_ fd_flags 0 1
case_ accept4_flags 0 1
case_ stdio_socket 0 0
case_ fd_lowest 0 1

# --------------------------------------------------------------------------
# Running.

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run OUT MODE WATCHDOG PROG [ARG]: runs PROG natively (MODE native),
# preloaded with UNBLOCK_WORKERS=MODE, or preloaded with threads native
# (MODE threads); OUT.out, OUT.err, OUT.status.
run() {
    local out=$1 mode=$2 wd=$3 prog=$4
    shift 4
    local -a envs=("${clean_env[@]}")
    [ -n "$wd" ] && envs+=(DIFF_WATCHDOG_S="$wd")
    local -a wrap=()
    if [ "$mode" = threads ]; then
        envs+=(LD_PRELOAD="$PRELOAD" UNBLOCK_THREADS=native)
        wrap=("${VALGRIND[@]}")
    elif [ "$mode" != native ]; then
        envs+=(LD_PRELOAD="$PRELOAD" UNBLOCK_WORKERS="$mode")
        wrap=("${VALGRIND[@]}")
    fi
    # In a subshell whose stderr is dropped: the shell's own "Alarm clock"
    # note about a death by signal stays out of the TAP stream.
    (
        timeout -k 2 "$T" env "${envs[@]}" "${wrap[@]}" "$prog" "$@" </dev/null >"$out.out" 2>"$out.err"
        exit $? # not exec'd in place: this subshell reports the death, to /dev/null
    ) 2>/dev/null
    echo $? >"$out.status"
}

# The preloaded run MODE, in words.
mode_str() {
    case $1 in
    threads) echo "UNBLOCK_THREADS=native" ;;
    *) echo "UNBLOCK_WORKERS=$1" ;;
    esac
}

status_str() {
    case $1 in
    124 | 137) echo "killed after $T s (a hang)" ;;
    1[2-9][0-9] | 2[0-5][0-9]) echo "status $1 (signal $(($1 - 128)))" ;;
    *) echo "status $1" ;;
    esac
}

t_start=$(now_ms)
for ((i = 0; i < ${#C_NAME[@]}; i++)); do
    spec=${C_NAME[i]}
    name=${spec%%:*}
    arg=()
    [ "$spec" != "$name" ] && arg=("${spec#*:}")
    label="${name}${arg[*]:+ ${arg[*]}}"
    prog=$B/tests/diff/$name
    want=${C_WANT[i]}
    base=$tmp/$i
    modes=(2)
    [ "${C_W1[i]}" = 1 ] && modes+=(1)
    modes+=(threads)

    skip_reason=$(tsan_skip "$name")
    if [ -n "$skip_reason" ]; then
        for m in "${modes[@]}"; do
            n=$((n + 1))
            echo "ok $n - $label: under the preload ($(mode_str "$m")) the same stdout and $(status_str "$want") as natively # SKIP $skip_reason"
        done
        continue
    fi
    if [ ! -x "$prog" ]; then
        for m in "${modes[@]}"; do
            n=$((n + 1))
            echo "not ok $n - $label, $(mode_str "$m"): no $prog (run make tests)"
            nfail=$((nfail + 1))
        done
        continue
    fi
    t0=$(now_ms)
    run "$base.native" native "" "$prog" "${arg[@]}"
    echo "$(($(now_ms) - t0)) $label native" >>"$tmp/times"
    nst=$(cat "$base.native.status")

    for m in "${modes[@]}"; do
        n=$((n + 1))
        todo=${C_TODO2[i]}
        [ "$m" = 1 ] && todo=${C_TODO1[i]}
        [ "$m" = threads ] && todo=""
        wd=""
        case $todo in hang:*) wd=1 ;; esac
        desc="$label: under the preload ($(mode_str "$m")) the same stdout and $(status_str "$want") as natively"
        if [ "$nst" != "$want" ]; then
            echo "not ok $n - $desc"
            nfail=$((nfail + 1))
            diag "the native run gave $(status_str "$nst"), not $(status_str "$want"): the environment, not libunblock"
            diag_file "$base.native.out" 20
            diag_file "$base.native.err" 10
            continue
        fi
        p=$base.w$m
        t0=$(now_ms)
        run "$p" "$m" "$wd" "$prog" "${arg[@]}"
        ms=$(($(now_ms) - t0))
        echo "$ms $label $(mode_str "$m")" >>"$tmp/times"
        pst=$(cat "$p.status")
        bad=""
        [ "$pst" = "$nst" ] || bad+="$(status_str "$pst") instead of $(status_str "$nst"); "
        cmp -s "$base.native.out" "$p.out" || bad+="stdout differs; "
        grep -q '^libunblock:' "$p.err" && bad+="a libunblock: line on stderr; "
        result="ok"
        [ -n "$bad" ] && result="not ok"
        if [ -n "$todo" ]; then
            echo "$result $n - $desc # TODO ${todo#hang: }"
        else
            echo "$result $n - $desc"
            [ -n "$bad" ] && nfail=$((nfail + 1))
        fi
        if [ -n "$bad" ]; then
            diag "${bad%; } (preloaded run: $ms ms)"
            if ! cmp -s "$base.native.out" "$p.out"; then
                diag "$(diff -u --label native --label "preload $(mode_str "$m")" "$base.native.out" "$p.out" | head -n 30)"
            fi
            if [ -s "$p.err" ]; then
                diag "preloaded stderr:"
                diag_file "$p.err" 5
            fi
        fi
    done
done

echo "1..$n"
note "${#C_NAME[@]} cases, $n checks, $(($(now_ms) - t_start)) ms; the slowest runs (ms):"
note "$(sort -rn "$tmp/times" | head -n 8)"
[ "$nfail" = 0 ]
