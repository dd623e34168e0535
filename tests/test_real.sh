#!/usr/bin/env bash
# test_real: ordinary programs nobody wrote for libunblock, run natively and
# under LD_PRELOAD=libunblock.so, must behave the same.  TAP on stdout.
#
#   UNB_BUILD=build prove -v --exec tests/run-test tests/test_real.sh
#
# - coreutils and everyday tools (cat, dd, sort with threads, sha256sum,
#   gzip, xargs -P, find, tar, sh pipelines, failing commands): the same
#   exit status, stdout, stderr and output files;
# - python3 -m http.server (a thread per request) natively, then under the
#   preload: curl and wget fetch small and multi-MB files one by one and 20
#   at once, bodies checked by sha256, 404 for a missing file, a log line per
#   request, and a clean exit on SIGINT;
# - curl and wget under the preload (curl resolves names on a thread)
#   against the native server, by 127.0.0.1 and by localhost;
# - examples/echo_threads (a thread per connection) under 200 connections
#   of echo_client load: no mismatches, no errors, and at most
#   UNBLOCK_WORKERS + 5 OS threads under the preload: the workers, the
#   monitor, its /proc reader, the spare it keeps ready, one more spare,
#   and a sanitizer's own thread (natively ~200, which shows the bound can
#   fail).
#
# Every command runs under timeout; servers are killed at exit; all files
# live in one mktemp -d directory, removed at exit.  A missing python3,
# curl or wget skips the checks that need it.
set -u
export LC_ALL=C

UNB_BUILD=${UNB_BUILD:-build}
WORKERS=2
MAX_THREADS=$((WORKERS + 5))
T=30            # limit for one command, seconds
SERVER_LIMIT=90 # limit for a background server, seconds

n=0
nfail=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); nfail=$((nfail + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
# diag: "# ..." lines on stderr, which prove shows (what explains a failure);
# note: the same on stdout, which prove hides (figures printed on every run).
diag() { local l; while IFS= read -r l; do echo "# $l" >&2; done <<<"$*"; }
note() { local l; while IFS= read -r l; do echo "# $l"; done <<<"$*"; }
# diag_file FILE [LINES]: the first lines of a file, as diagnostics.
diag_file() { [ -s "$1" ] && diag "$(head -n "${2:-10}" "$1")"; return 0; }

LIB=$(realpath "$UNB_BUILD/libunblock.so" 2>/dev/null)
B=$(realpath "$UNB_BUILD" 2>/dev/null)
if [ -z "$LIB" ] || [ ! -f "$LIB" ]; then
    echo "Bail out! no $UNB_BUILD/libunblock.so: run make tests first"
    exit 1
fi

if [ "${UNB_TEST_TOOL:-}" = valgrind ]; then
    # Python and curl under memcheck take minutes a run and bring their
    # own noise; the preload's paths in ordinary programs are covered
    # under memcheck by test_preload and test_diff.
    echo "1..0 # SKIP real programs under valgrind: too slow; test_preload and test_diff cover the preload"
    exit 0
fi
# In a sanitizer build its runtime follows the library (tests/test_preload.c
# says why).
SAN_RT=$(ldd "$LIB" 2>/dev/null | awk '/lib[at]san\.so/ { print $3; exit }')
LIB_PRELOAD=$LIB${SAN_RT:+:$SAN_RT}
# The leak check is for our code, which test_preload and test_diff cover;
# these programs leave memory to exit by design, and LeakSanitizer in a
# program built without it made sort and xargs exit 1 without a word.
case $SAN_RT in *libasan*) export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/unb_real.XXXXXX") || { echo "Bail out! mktemp -d failed"; exit 1; }
bg_pids=() # timeout processes that run background servers

# The process timeout(1) started for us (env execs the program in place).
child_of() {
    local c=""
    [ -r "/proc/$1/task/$1/children" ] && read -r c _ <"/proc/$1/task/$1/children"
    [ -z "$c" ] && c=$(pgrep -P "$1" 2>/dev/null | head -n 1)
    echo "$c"
}

cleanup() {
    local p c
    for p in ${bg_pids[@]+"${bg_pids[@]}"}; do
        kill -0 "$p" 2>/dev/null || continue
        c=$(child_of "$p")
        [ -n "$c" ] && kill -KILL "$c" 2>/dev/null
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# runm MODE CMD...: CMD natively or under the preload, with the time limit.
runm() {
    local mode=$1
    shift
    if [ "$mode" = preload ]; then
        timeout -k 2 "$T" env LD_PRELOAD="$LIB_PRELOAD" UNBLOCK_WORKERS="$WORKERS" "$@"
    else
        timeout -k 2 "$T" "$@"
    fi
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# "Threads:" of /proc/PID/status, 0 if gone.
threads_of() {
    local k v
    while read -r k v; do
        [ "$k" = Threads: ] && { echo "$v"; return; }
    done <"/proc/$1/status" 2>/dev/null
    echo 0
}

PY=""
if command -v python3 >/dev/null 2>&1; then
    # The interpreter itself, not a pyenv-style shim script in front of it.
    PY=$(timeout 10 python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
    [ -n "$PY" ] && [ -x "$PY" ] || PY=$(command -v python3)
fi
HAVE_CURL=$(command -v curl >/dev/null 2>&1 && echo 1)
HAVE_WGET=$(command -v wget >/dev/null 2>&1 && echo 1)

# Whether PROG hangs with the sanitizer runtime alone preloaded (no
# libunblock): then its checks under the preload cannot pass and are
# skipped.  Seen with GCC 12's libasan, glibc 2.36 and Debian's curl and
# wget: libp11-kit's constructor calls newlocale(), which holds glibc's
# __libc_setlocale_lock for writing; inside it ASan initialises itself
# (its first interceptor runs there), looks up swift_demangle with dlsym,
# and the failed lookup's dlerror() -> dcgettext() read-locks and unlocks
# that same lock.  Its reader count underflows, and the program's first
# setlocale() in main waits on the lock forever, with one thread.  GCC
# 12's libtsan hangs the same programs the same way (the main thread
# waits for __libc_setlocale_lock in the program's first setlocale()).
SAN_ALONE_HANGS=""
sanitizer_alone_hangs() {
    case $SAN_RT in *libasan* | *libtsan*) ;; *) return 1 ;; esac
    timeout -k 2 10 env LD_PRELOAD="$SAN_RT" "$1" --version >/dev/null 2>&1
    [ $? = 124 ]
}
if [ -n "$HAVE_CURL" ] && sanitizer_alone_hangs curl; then SAN_ALONE_HANGS+=" curl"; fi
if [ -n "$HAVE_WGET" ] && sanitizer_alone_hangs wget; then SAN_ALONE_HANGS+=" wget"; fi
SAN_HANG_WHY="it hangs with only the sanitizer runtime preloaded, no libunblock (the sanitizer initialising inside libp11-kit's newlocale() corrupts glibc's setlocale lock: tests/test_real.sh)"

free_port() {
    local p=""
    [ -n "$PY" ] && p=$(timeout 10 "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null)
    [ -n "$p" ] || p=$((20000 + RANDOM % 40000))
    echo "$p"
}

# wait_port PORT TPID: until 127.0.0.1:PORT accepts (10 s at most), while
# the server's timeout process TPID lives.
wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$2" 2>/dev/null || return 1
        if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then
            kill -0 "$2" 2>/dev/null
            return
        fi
        sleep 0.1
    done
    return 1
}

# start_server MODE LOG CMD...: starts CMD in the background (@PORT@ in its
# arguments becomes a free port) and waits until it accepts.  Sets SRV_T
# (the timeout process), SRV_P (the server) and SRV_PORT.  Tries 3 ports.
start_server() {
    local mode=$1 log=$2 try port a args
    shift 2
    for try in 1 2 3; do
        port=$(free_port)
        args=()
        for a in "$@"; do args+=("${a//@PORT@/$port}"); done
        if [ "$mode" = preload ]; then
            timeout -k 2 "$SERVER_LIMIT" env LD_PRELOAD="$LIB_PRELOAD" UNBLOCK_WORKERS="$WORKERS" \
                "${args[@]}" </dev/null >"$log" 2>&1 &
        else
            timeout -k 2 "$SERVER_LIMIT" "${args[@]}" </dev/null >"$log" 2>&1 &
        fi
        SRV_T=$!
        bg_pids+=("$SRV_T")
        if wait_port "$port" "$SRV_T"; then
            SRV_PORT=$port
            SRV_P=$(child_of "$SRV_T")
            [ -n "$SRV_P" ] && return 0
        fi
        diag "try $try: server on port $port did not come up; its output:"
        diag_file "$log"
        kill_server KILL
    done
    return 1
}

# kill_server SIG: sends SIG to the server, waits (10 s at most) and sets
# SRV_STATUS to its exit status (128 + signal if a signal killed it; 124 or
# 137 if it had to be killed).
kill_server() {
    local i
    SRV_P=$(child_of "$SRV_T")
    [ -n "$SRV_P" ] && kill -"$1" "$SRV_P" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SRV_T" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SRV_T" 2>/dev/null; then
        diag "server $SRV_P still alive 10 s after SIG$1: killing it"
        SRV_P=$(child_of "$SRV_T")
        [ -n "$SRV_P" ] && kill -KILL "$SRV_P" 2>/dev/null
        kill -KILL "$SRV_T" 2>/dev/null
    fi
    wait "$SRV_T" 2>/dev/null
    SRV_STATUS=$?
}

loaded_in() { grep -q libunblock "/proc/$1/maps" 2>/dev/null; }

# --------------------------------------------------------------------------
# The preload is loaded at all (ld.so only warns when it cannot be).

maps=$(runm preload cat /proc/self/maps 2>"$tmp/maps.err")
if grep -q libunblock <<<"$maps" && [ ! -s "$tmp/maps.err" ]; then
    pass "LD_PRELOAD=$LIB is loaded into programs, silently"
else
    fail "LD_PRELOAD=$LIB is loaded into programs, silently"
    diag_file "$tmp/maps.err"
    echo "Bail out! the preload does not load"
    exit 1
fi

# --------------------------------------------------------------------------
# Data.

D=$tmp/data
mkdir -p "$D/tree/a/b" "$D/tree/c" "$D/tree/empty" "$D/www/sub"
head -c 8M /dev/urandom >"$D/big"
head -c 3M /dev/urandom | base64 -w 60 >"$D/lines" # ~4 MiB, 53k lines
for ((i = 0; i < 30; i++)); do
    case $((i % 3)) in 0) d=$D/tree ;; 1) d=$D/tree/a/b ;; *) d=$D/tree/c ;; esac
    head -c $((i * i * 250)) /dev/urandom >"$d/f$i.dat"
done
cp "$D/lines" "$D/tree/a/lines.txt"
ln -s f3.dat "$D/tree/link"
: >"$D/www/empty"
echo "hello, libunblock" >"$D/www/small.txt"
head -c 64K /dev/urandom >"$D/www/64k.bin"
head -c 1M /dev/urandom >"$D/www/1m.bin"
head -c 6M /dev/urandom >"$D/www/6m.bin"
head -c 300K /dev/urandom >"$D/www/sub/nested.bin"
www_files=(empty small.txt 64k.bin 1m.bin 6m.bin sub/nested.bin)
declare -A sha
for f in "${www_files[@]}"; do
    sha[$f]=$(sha256sum <"$D/www/$f" | cut -d' ' -f1)
done
export D

# --------------------------------------------------------------------------
# Commands: native and preloaded runs agree.
#
# run_cmp NAME STATUS "FILES" SCRIPT: runs `bash -c SCRIPT` natively, then
# under the preload (bash and all it starts), each with $O a fresh output
# directory.  The native run must exit with STATUS (else the environment is
# at fault); the preloaded one must match its exit status, stdout, stderr
# and the output files FILES (names in $O).

k=0
run_cmp() {
    local name=$1 want=$2 files=$3 script=$4 mode f bad=""
    local -A status ms
    k=$((k + 1))
    for mode in native preload; do
        local o=$tmp/out/$k/$mode
        mkdir -p "$o"
        local t0
        t0=$(now_ms)
        O=$o runm "$mode" bash -c "$script" >"$o.stdout" 2>"$o.stderr"
        status[$mode]=$?
        ms[$mode]=$(($(now_ms) - t0))
    done
    local nd=$tmp/out/$k/native pd=$tmp/out/$k/preload
    if [ "${status[native]}" != "$want" ]; then
        fail "$name"
        diag "the native run exited with ${status[native]}, not $want: an environment problem, not libunblock"
        diag_file "$nd.stderr"
        return
    fi
    [ "${status[preload]}" = "$want" ] || bad+="exit status ${status[preload]}, native $want; "
    cmp -s "$nd.stdout" "$pd.stdout" || bad+="stdout differs; "
    cmp -s "$nd.stderr" "$pd.stderr" || bad+="stderr differs; "
    for f in $files; do
        if [ ! -e "$pd/$f" ]; then
            bad+="no output file $f; "
        elif ! cmp -s "$nd/$f" "$pd/$f"; then
            bad+="output file $f differs ($(stat -c %s "$pd/$f") bytes, native $(stat -c %s "$nd/$f")); "
        fi
    done
    if [ -z "$bad" ]; then
        pass "$name"
    else
        fail "$name"
        diag "under the preload: ${bad%; }"
        diag "native ${ms[native]} ms, preload ${ms[preload]} ms"
        if ! cmp -s "$nd.stdout" "$pd.stdout"; then
            diag "stdout: $(cmp "$nd.stdout" "$pd.stdout" 2>&1 | head -n 1)"
            diag "preload stdout:"
            diag_file "$pd.stdout" 5
        fi
        if ! cmp -s "$nd.stderr" "$pd.stderr"; then
            diag "native stderr:"
            diag_file "$nd.stderr" 5
            diag "preload stderr:"
            diag_file "$pd.stderr" 5
        fi
    fi
}

# shellcheck disable=SC2016 # the scripts expand $D and $O when they run
{
run_cmp "cat of an 8 MiB file" 0 "cat.out" \
    'cat "$D/big" >"$O/cat.out" && cmp "$D/big" "$O/cat.out"'
run_cmp "cat f | cat > out (8 MiB through a pipe)" 0 "catpipe.out" \
    'cat "$D/big" | cat >"$O/catpipe.out" && cmp "$D/big" "$O/catpipe.out"'
run_cmp "cat < f | sha256sum, and cat from a pipe to stdout" 0 "" \
    'cat <"$D/big" | sha256sum; cat "$D/lines" | cat | tail -c 200'
run_cmp "dd bs=64k count=37 skip=5: same file and record counts" 0 "dd.out" \
    'dd if="$D/big" of="$O/dd.out" bs=64k count=37 skip=5 2>"$O/dd.err"; st=$?
     head -n 2 "$O/dd.err"; exit $st'
run_cmp "dd bs=1M to a pipe, and dd of a pipe with iflag=fullblock" 0 "ddpipe.out" \
    'dd if="$D/big" bs=1M 2>/dev/null | dd of="$O/ddpipe.out" bs=256k iflag=fullblock 2>"$O/dd.err"; st=$?
     head -n 2 "$O/dd.err"; cmp "$D/big" "$O/ddpipe.out" && exit $st'
run_cmp "sort --parallel=4 -S 1M of 4 MiB of lines" 0 "sort.out" \
    'sort --parallel=4 -S 1M -T "$O" "$D/lines" >"$O/sort.out" && sort -c "$O/sort.out"'
run_cmp "sort --parallel=4 -S 1M -u -r from a pipe" 0 "" \
    'cat "$D/lines" "$D/lines" | sort --parallel=4 -S 1M -T "$O" -u -r | sha256sum'
run_cmp "sha256sum of several files" 0 "" \
    'cd "$D" && sha256sum big lines www/6m.bin www/empty'
run_cmp "gzip -c | gunzip -c round trip (and the same gzip stream)" 0 "z.gz z.out" \
    'gzip -c -n -6 "$D/lines" >"$O/z.gz" && gunzip -c "$O/z.gz" >"$O/z.out" && cmp "$D/lines" "$O/z.out" &&
     gzip -c -1 <"$D/big" | gunzip -c | cmp - "$D/big"'
run_cmp "find . -printf" 0 "" \
    'cd "$D/tree" && find . -printf "%y %s %m %p %l\n"'
run_cmp "find | xargs -0 -P 4 sha256sum" 0 "" \
    'cd "$D/tree" && find . -type f -print0 | sort -z | xargs -0 -P 4 -n 3 sha256sum | sort'
# Under TSan: tar -z forks gzip from its main coroutine, and in a child
# forked in a coroutine the tool's state (its support for a multi-threaded
# fork is partial) loses the ordering of the fiber switches and reports
# the child's own scheduler, which kills gzip (test_diff skips fork_wait
# and fork_exec for the same reason).
if [ "${UNB_TEST_TOOL:-}" = tsan ]; then
    skip "tar create + extract round trip (file and pipe)" \
        "tar forks gzip in a coroutine; ThreadSanitizer's state in a child forked in a coroutine reports the child's own scheduler (as test_diff's fork_wait)"
else
    run_cmp "tar create + extract round trip (file and pipe)" 0 "t.tar" \
        'tar -C "$D/tree" --sort=name -cf "$O/t.tar" . && mkdir "$O/x" && tar -C "$O/x" -xf "$O/t.tar" &&
         diff -r --no-dereference "$D/tree" "$O/x" && mkdir "$O/y" &&
         tar -C "$D/tree" -czf - . | tar -C "$O/y" -xzf - && diff -r --no-dereference "$D/tree" "$O/y" &&
         tar -tvf "$O/t.tar" | wc -l'
fi
run_cmp "sh -c pipelines" 0 "" \
    'sh -c "tr a-z A-Z <\"\$D/lines\" | grep -c \"^[A-M]\" ; seq 1 200000 | awk \"{ s += \\\$1 } END { print s }\"" &&
     sh -c "sort -r \"\$D/lines\" | head -n 3 | cut -c 3-12"'
run_cmp "SIGPIPE: yes | head -c 5 MB | sha256sum (yes dies of SIGPIPE)" 0 "" \
    'yes libunblock | head -c 5000000 | sha256sum; echo "pipestatus ${PIPESTATUS[*]}"'
run_cmp "sleeps and background jobs in sh" 0 "" \
    'sh -c "sleep 0.2 & sleep 0.1; echo first; wait \$!; echo waited \$?"'
run_cmp "cat /nonexistent: same status and message" 1 "" \
    'cat /nonexistent'
run_cmp "ls and sort of a missing file: same status and messages" 2 "" \
    'ls /nonexistent/x; sort /nonexistent/y; st=$?; sh -c "exit 7"; echo "sh exit $?"; exit $st'
}

# --------------------------------------------------------------------------
# HTTP: python3 -m http.server, curl, wget.

# curl_get MODE URL OUT [CURL-OPTIONS...]: prints the HTTP status code.
curl_get() {
    runm "$1" curl -s -S --noproxy '*' --max-time 25 -o "$3" -w '%{http_code}' "${@:4}" "$2"
}

# body_ok FILE NAME: FILE holds exactly www/NAME.
body_ok() { [ "$(sha256sum <"$1" | cut -d' ' -f1)" = "${sha[$2]}" ]; }

# fetch_seq CMODE HOST LABEL: curl (in CMODE) fetches every file, one by one.
fetch_seq() {
    local cmode=$1 host=$2 label=$3 f code bad="" dir
    dir=$(mktemp -d "$tmp/f.XXXX")
    for f in "${www_files[@]}"; do
        code=$(curl_get "$cmode" "http://$host:$SRV_PORT/$f" "$dir/${f//\//_}" 2>>"$dir/err")
        if [ "$code" != 200 ]; then
            bad+="$f: HTTP '$code'; "
        elif ! body_ok "$dir/${f//\//_}" "$f"; then
            bad+="$f: body differs ($(stat -c %s "$dir/${f//\//_}") bytes); "
        fi
        ok200=$((ok200 + 1))
    done
    if [ -z "$bad" ]; then pass "$label"; else fail "$label"; diag "${bad%; }"; diag_file "$dir/err"; fi
}

# fetch_par CMODE LABEL: 20 curls at once, the files in turn, each reading
# at most 10 MB/s so that the requests overlap (the server's writes fill
# the socket buffers and wait).
fetch_par() {
    local cmode=$1 label=$2 i f code bad="" dir
    local -a pids=()
    dir=$(mktemp -d "$tmp/p.XXXX")
    for ((i = 0; i < 20; i++)); do
        f=${www_files[i % ${#www_files[@]}]}
        curl_get "$cmode" "http://127.0.0.1:$SRV_PORT/$f" "$dir/$i" --limit-rate 10M \
            >"$dir/code$i" 2>"$dir/err$i" &
        pids+=($!)
    done
    # While they run: the server's OS threads (a note, not a check).
    local maxth=0 th alive=1
    while [ "$alive" = 1 ]; do
        th=$(threads_of "$SRV_P")
        ((th > maxth)) && maxth=$th
        alive=0
        for i in "${pids[@]}"; do kill -0 "$i" 2>/dev/null && { alive=1; break; }; done
        [ "$alive" = 1 ] && sleep 0.05
    done
    for i in "${pids[@]}"; do wait "$i"; done
    for ((i = 0; i < 20; i++)); do
        f=${www_files[i % ${#www_files[@]}]}
        code=$(cat "$dir/code$i")
        if [ "$code" != 200 ]; then
            bad+="#$i $f: HTTP '$code' $(head -c 200 "$dir/err$i"); "
        elif ! body_ok "$dir/$i" "$f"; then
            bad+="#$i $f: body differs ($(stat -c %s "$dir/$i") bytes); "
        fi
        ok200=$((ok200 + 1))
    done
    if [ -z "$bad" ]; then pass "$label"; else fail "$label"; diag "${bad%; }"; fi
    note "server OS threads while serving 20 at once: at most $maxth (sampled every 50 ms)"
}

# http_section SMODE: the python server in SMODE (native or preload).
http_section() {
    local smode=$1 log=$tmp/http-$1.log pre=""
    [ "$smode" = preload ] && pre="under the preload: "
    local what="${pre}python3 http.server"
    if [ -z "$PY" ]; then
        skip "$what starts and accepts" "no python3"
        return
    fi
    ok200=0 ok404=0
    if ! start_server "$smode" "$log" "$PY" -m http.server --bind 127.0.0.1 @PORT@ --directory "$D/www"; then
        fail "$what starts and accepts within 10 s"
        return
    fi
    if [ "$smode" = preload ] && ! loaded_in "$SRV_P"; then
        fail "$what starts and accepts within 10 s, with libunblock loaded"
        diag "libunblock is not in /proc/$SRV_P/maps"
    else
        pass "$what starts and accepts within 10 s (port $SRV_PORT)"
    fi

    local t0 code dir
    dir=$(mktemp -d "$tmp/h.XXXX")
    if [ -n "$HAVE_CURL" ]; then
        t0=$(now_ms)
        fetch_seq native 127.0.0.1 "$what: curl fetches 6 files (0 B to 6 MiB) one by one, bodies identical"
        fetch_par native "$what: 20 curls at once, bodies identical"
        note "curl fetches took $(($(now_ms) - t0)) ms"
        code=$(curl_get native "http://127.0.0.1:$SRV_PORT/no/such/file" /dev/null 2>&1)
        ok404=$((ok404 + 1))
        if [ "$code" = 404 ]; then pass "$what: 404 for a missing file"; else fail "$what: 404 for a missing file"; diag "got '$code'"; fi
    else
        skip "$what: curl fetches" "no curl"
    fi
    if [ -n "$HAVE_WGET" ]; then
        local bad=""
        for f in 6m.bin small.txt; do
            runm native wget -q --no-proxy -O "$dir/w_$f" "http://127.0.0.1:$SRV_PORT/$f" 2>>"$dir/werr" ||
                bad+="wget $f exited with $?; "
            body_ok "$dir/w_$f" "$f" || bad+="$f: body differs; "
            ok200=$((ok200 + 1))
        done
        runm native wget -q --no-proxy -O "$dir/w_missing" "http://127.0.0.1:$SRV_PORT/missing" 2>>"$dir/werr"
        code=$?
        ok404=$((ok404 + 1))
        [ "$code" = 8 ] || bad+="wget of a missing file exited with $code, not 8; "
        if [ -z "$bad" ]; then pass "$what: wget fetches, and fails on 404"; else fail "$what: wget fetches, and fails on 404"; diag "${bad%; }"; diag_file "$dir/werr"; fi
    else
        skip "$what: wget fetches" "no wget"
    fi

    # Clients under the preload, against the native server.
    if [ "$smode" = native ]; then
        if [[ " $SAN_ALONE_HANGS " == *" curl "* ]]; then
            skip "curl under the preload" "$SAN_HANG_WHY"
        elif [ -n "$HAVE_CURL" ]; then
            fetch_seq preload 127.0.0.1 "curl under the preload fetches 6 files from 127.0.0.1, bodies identical"
            fetch_seq preload localhost "curl under the preload fetches 6 files from localhost (resolver thread), bodies identical"
            code=$(curl_get preload "http://localhost:$SRV_PORT/no/such/file" /dev/null 2>&1)
            ok404=$((ok404 + 1))
            if [ "$code" = 404 ]; then pass "curl under the preload: 404 from localhost"; else fail "curl under the preload: 404 from localhost"; diag "got '$code'"; fi
            # One curl, 12 transfers at once: several resolver threads.
            local -a args=()
            local i f bad=""
            for ((i = 0; i < 12; i++)); do
                f=${www_files[i % ${#www_files[@]}]}
                args+=(-o "$dir/z$i" "http://localhost:$SRV_PORT/$f")
            done
            runm preload curl -s -S --noproxy '*' --max-time 25 -Z --parallel-max 12 "${args[@]}" 2>"$dir/zerr" ||
                bad+="curl -Z exited with $?; "
            for ((i = 0; i < 12; i++)); do
                f=${www_files[i % ${#www_files[@]}]}
                if [ ! -f "$dir/z$i" ] || ! body_ok "$dir/z$i" "$f"; then bad+="#$i $f differs; "; fi
                ok200=$((ok200 + 1))
            done
            if [ -z "$bad" ]; then pass "curl -Z under the preload: 12 parallel transfers from localhost, bodies identical"; else fail "curl -Z under the preload: 12 parallel transfers from localhost, bodies identical"; diag "${bad%; }"; diag_file "$dir/zerr"; fi
        else
            skip "curl under the preload" "no curl"
        fi
        if [[ " $SAN_ALONE_HANGS " == *" wget "* ]]; then
            skip "wget under the preload" "$SAN_HANG_WHY"
        elif [ -n "$HAVE_WGET" ]; then
            local bad=""
            runm preload wget -q --no-proxy -O "$dir/pw" "http://localhost:$SRV_PORT/6m.bin" 2>"$dir/pwerr" ||
                bad+="wget exited with $?; "
            ok200=$((ok200 + 1))
            [ -f "$dir/pw" ] && body_ok "$dir/pw" 6m.bin || bad+="body differs; "
            if [ -z "$bad" ]; then pass "wget under the preload fetches 6 MiB from localhost"; else fail "wget under the preload fetches 6 MiB from localhost"; diag "${bad%; }"; diag_file "$dir/pwerr"; fi
        else
            skip "wget under the preload" "no wget"
        fi
    fi

    # One log line per request: http.server logs from the request's thread.
    local n200 n404
    n200=$(grep -c '"GET /[^ ]* HTTP/1\.[01]" 200 ' "$log")
    n404=$(grep -c '"GET /[^ ]* HTTP/1\.[01]" 404 ' "$log")
    if [ "$n200" = "$ok200" ] && [ "$n404" = "$ok404" ] && ! grep -q Traceback "$log"; then
        pass "$what: its log has one line per request ($n200 x 200, $n404 x 404), no traceback"
    else
        fail "$what: its log has one line per request ($ok200 x 200, $ok404 x 404), no traceback"
        diag "log: $n200 x 200, $n404 x 404"
        grep -v '" 200 -$' "$log" | head -n 20 | while IFS= read -r l; do diag "$l"; done
    fi

    # SIGINT: KeyboardInterrupt in main, "exiting", status 0.
    kill_server INT
    if [ "$SRV_STATUS" = 0 ] && grep -q 'Keyboard interrupt received, exiting' "$log"; then
        pass "$what exits cleanly on SIGINT (status 0)"
    else
        fail "$what exits cleanly on SIGINT (status 0)"
        diag "exit status $SRV_STATUS; end of its log:"
        diag "$(tail -n 10 "$log")"
    fi
}

http_section native
http_section preload

# --------------------------------------------------------------------------
# echo_threads: a thread per connection, under 200 connections of load.

ECHO_SERVER=$B/examples/echo_threads
ECHO_CLIENT=$B/examples/echo_client

echo_section() {
    local mode=$1 log=$tmp/echo-$1.log what="echo_threads"
    [ "$mode" = preload ] && what="under the preload: echo_threads"
    if [ ! -x "$ECHO_SERVER" ] || [ ! -x "$ECHO_CLIENT" ]; then
        fail "$what serves 200 connections"
        diag "no $ECHO_SERVER or $ECHO_CLIENT: run make tests"
        return
    fi
    if ! start_server "$mode" "$log" "$ECHO_SERVER" @PORT@; then
        fail "$what starts and accepts within 10 s"
        return
    fi
    if [ "$mode" = preload ] && ! loaded_in "$SRV_P"; then
        fail "$what runs with libunblock loaded"
    fi
    local out=$tmp/echo-client-$mode.out
    timeout -k 2 "$T" "$ECHO_CLIENT" -p "$SRV_PORT" -c 200 -d 2 -s 64 >"$out" 2>&1 &
    local cpid=$! maxth=0 th samples=0
    while kill -0 "$cpid" 2>/dev/null; do
        th=$(threads_of "$SRV_P")
        ((th > maxth)) && maxth=$th
        samples=$((samples + 1))
        sleep 0.1
    done
    wait "$cpid"
    local cst=$? line req mis err conns
    line=$(grep '^requests=' "$out" | head -n 1)
    req=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
    mis=$(sed -n 's/.*mismatches=\([0-9]*\).*/\1/p' <<<"$line")
    err=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
    conns=$(sed -n 's/.*connections=\([0-9]*\).*/\1/p' <<<"$line")
    if [ "$cst" = 0 ] && [ "${req:-0}" -gt 0 ] && [ "$mis" = 0 ] && [ "$err" = 0 ] && [ "$conns" = 200 ]; then
        pass "$what: 200 connections for 2 s, $req requests, 0 mismatches, 0 errors"
    else
        fail "$what: 200 connections for 2 s, requests > 0, 0 mismatches, 0 errors"
        diag "echo_client exited with $cst:"
        diag_file "$out"
        diag "server output:"
        diag_file "$log"
    fi
    note "$line"
    if [ "$mode" = native ]; then
        # Natively a thread per connection: shows the bound below can fail.
        if ((maxth > MAX_THREADS)); then
            pass "natively echo_threads runs a thread per connection (at most $maxth OS threads, > $MAX_THREADS)"
        else
            fail "natively echo_threads runs a thread per connection (more than $MAX_THREADS OS threads)"
            diag "at most $maxth OS threads over $samples samples"
        fi
    else
        if ((maxth > 0 && maxth <= MAX_THREADS)); then
            pass "$what uses at most UNBLOCK_WORKERS + 5 = $MAX_THREADS OS threads (at most $maxth seen)"
        else
            fail "$what uses at most UNBLOCK_WORKERS + 5 = $MAX_THREADS OS threads"
            diag "at most $maxth OS threads over $samples samples of /proc/$SRV_P/status"
        fi
    fi
    kill_server TERM
    if [ "$SRV_STATUS" = 143 ]; then
        pass "$what dies of SIGTERM when killed"
    else
        fail "$what dies of SIGTERM when killed"
        diag "exit status $SRV_STATUS (143 expected); its output:"
        diag_file "$log"
    fi
}

echo_section native
echo_section preload

echo "1..$n"
[ "$nfail" = 0 ]
