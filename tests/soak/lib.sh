# Shell helpers for the fault and soak scripts: an echo server on a free
# loopback port, and what /proc says about it.  Source it; needs $B (the
# build directory, absolute).

# start_server MODE: starts $B/examples/echo_threads natively (MODE native)
# or preloaded (MODE preload) on a free port; sets SRV_PID and SRV_PORT.
# Returns 1 if no server could be started.
start_server() {
    local mode=$1 try env=()
    [ "$mode" = preload ] && env=(LD_PRELOAD="$PRELOAD")
    for try in 1 2 3 4 5 6 7 8; do
        # Below the ephemeral range (from 32768 by default): there a
        # client socket of an earlier run may hold the port, and a probe
        # of a port nobody listens on can connect to itself.
        SRV_PORT=$((20000 + (RANDOM % 12000)))
        env -u LD_PRELOAD "${env[@]}" "$B/examples/echo_threads" "$SRV_PORT" \
            </dev/null >/dev/null 2>"${SRV_ERR:-/dev/null}" &
        SRV_PID=$!
        local i
        for i in $(seq 1 100); do
            # bind failed (the server exited, maybe not reaped): another port
            [ -r "/proc/$SRV_PID/status" ] && ! grep -q '^State:.*Z' "/proc/$SRV_PID/status" ||
                break
            # Only the server's own listening socket counts: another
            # process may answer on the port.
            if srv_listens && (exec 3<>"/dev/tcp/127.0.0.1/$SRV_PORT") 2>/dev/null; then
                return 0
            fi
            sleep 0.05
        done
        kill -9 "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
    done
    return 1
}

# Whether the server itself listens on SRV_PORT: /proc/net/tcp's listening
# socket on the port (state 0A) is one of the server's descriptors.
srv_listens() {
    local inode
    for inode in $(awk -v p="$(printf ':%04X' "$SRV_PORT")" \
                       '$2 ~ p"$" && $4 == "0A" { print $10 }' /proc/net/tcp); do
        ls -l "/proc/$SRV_PID/fd" 2>/dev/null | grep -q "socket:\[$inode\]" && return 0
    done
    return 1
}

stop_server() {
    kill -9 "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
}

# Open descriptors of the server.
srv_fds() { ls "/proc/$SRV_PID/fd" 2>/dev/null | wc -l; }

# The server's resident memory, KiB.
srv_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$SRV_PID/status" 2>/dev/null; }

# wait_fds N SECONDS: waits until the server holds at most N descriptors;
# returns 1 if it still holds more after SECONDS.
wait_fds() {
    local want=$1 limit=$2 i
    for i in $(seq 1 $((limit * 10))); do
        [ "$(srv_fds)" -le "$want" ] && return 0
        sleep 0.1
    done
    return 1
}
