# Shared by bench.sh, mem.sh and cpu.sh (sourced, not run): a work folder, every child stopped on exit
# (logs kept when the script failed, or with KEEP_WORK=1), a readiness wait with a deadline, and a
# cluster start.
# Set PROG (the script's name, for messages) and READY_TIMEOUT_S before sourcing.
# shellcheck shell=bash

WORK=$(mktemp -d -t "dsm-$PROG.XXXXXX")
pids=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$rc" -eq 0 ] && [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "$PROG.sh: logs kept in $WORK (KEEP_WORK=1)" >&2
    elif [ "$rc" -eq 0 ]; then
        rm -rf "$WORK"
    else
        echo "$PROG.sh: failed (exit $rc); logs kept in $WORK" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "$PROG.sh: $*" >&2; exit 1; }

# Wait until FILE contains PATTERN, failing if PID dies or the deadline passes.
wait_for_line() {
    local file=$1 pattern=$2 pid=$3 what=$4
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    until grep -q "$pattern" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "$what exited at start-up: $(tail -3 "$file" "${file%.out}.log" 2>/dev/null)"
        [ "$SECONDS" -lt "$deadline" ] || die "$what not ready after ${READY_TIMEOUT_S} s"
        sleep 0.05
    done
}

# Placement of the processes on CPUs. `set_placement 1` (with 2 or more CPUs usable) gives the
# master the last usable CPU to itself and every other process (slaves, load generator) the
# rest; `set_placement 0` leaves placement to the kernel. On 2 vCPUs the kernel often put the
# master beside the client and a slave while one spinning slave had the other CPU alone, and
# throughput moved by 20-40% from run to run with where it landed (see README, "Placement").
# Sets MASTER_PIN and REST_PIN (command prefixes, empty when unpinned) and PLACEMENT (words).
MASTER_PIN=()
REST_PIN=()
SLAVE_ARGS=()
# shellcheck disable=SC2034 # read by the scripts that source this one
PLACEMENT="unpinned: the kernel places every process"
# The CPUs this script may run on, one per line (taskset's list expanded: "0-2,5" gives 0 1 2 5).
usable_cpus() {
    taskset -pc $$ | sed 's/.*: *//' | tr ',' '\n' | awk -F- '{ for (c = $1; c <= ($2 == "" ? $1 : $2); c++) print c }'
}

# dsm-stall-probe (from $BIN) on every usable CPU at once for SECONDS, printing gaps over 150 µs:
# the machine's own stalls. Each CPU's output goes to $WORK/probe-CPU.txt; sets PROBED_CPUS.
# Needs taskset.
probe_stalls() {
    local seconds=$1 c p
    local -a probes=()
    PROBED_CPUS=$(usable_cpus)
    for c in $PROBED_CPUS; do
        taskset -c "$c" "$BIN/dsm-stall-probe" "$seconds" 150 >"$WORK/probe-$c.txt" &
        probes+=("$!")
        pids+=("$!")
    done
    for p in "${probes[@]}"; do wait "$p"; done
}

# shellcheck disable=SC2034 # PLACEMENT, as above
set_placement() {
    MASTER_PIN=()
    REST_PIN=()
    PLACEMENT="unpinned: the kernel places every process"
    [ "$1" = 1 ] || return 0
    command -v taskset >/dev/null || die "pinning needs taskset (Debian package util-linux); set the PIN variable to 0 to run unpinned"
    local -a all
    mapfile -t all < <(usable_cpus)
    if [ "${#all[@]}" -lt 2 ]; then
        PLACEMENT="unpinned: one CPU usable"
        return 0
    fi
    local last=${all[-1]} rest
    rest=$(IFS=,; echo "${all[*]:0:${#all[@]}-1}")
    MASTER_PIN=(taskset -c "$last")
    REST_PIN=(taskset -c "$rest")
    PLACEMENT="pinned: the master alone on CPU $last; slaves and load generators on CPU $rest"
}

# Start a master (R=2 unless MASTER_REPLICAS says, free loopback ports) and N slaves from the binaries in BIN, waiting
# for each to say it is ready; logs go to $WORK/TAG-*. Sets MASTER (its client address),
# MASTER_PID and SLAVE_PIDS; every pid is also in pids, so cleanup stops them. Runs them
# where set_placement said (unpinned unless it was called). SLAVE_ARGS (an array) adds flags
# to every slave; with SLAVE_DATA=1 each slave also gets --data-dir $WORK/TAG-slave-I.data.
# SLAVE_LOG_LEVEL and MASTER_LOG_LEVEL (default warn) are the --log-level of the slaves and of
# the master; MASTER_REPLICAS (default 2) the master's --replicas.
# Usage: start_dsm BIN TAG N [MASTER_OPTION...] [-- WRAPPER...]
# WRAPPER (e.g. strace -c -o FILE) runs the master under another command.
start_dsm() {
    local bin=$1 tag=$2 n=$3 i
    shift 3
    local -a opts=() wrap=()
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    [ "$#" -gt 0 ] && shift && wrap=("$@")
    "${wrap[@]}" "${MASTER_PIN[@]}" "$bin/dsm-master" --listen 127.0.0.1:0 --heartbeat 127.0.0.1:0 --replicas "${MASTER_REPLICAS:-2}" --discover-ms 0 \
        "${opts[@]}" --log-level "${MASTER_LOG_LEVEL:-warn}" >"$WORK/$tag-master.out" 2>"$WORK/$tag-master.log" &
    MASTER_PID=$!
    pids+=("$MASTER_PID")
    # The whole line (its address and the space after it), not a part written so far: a
    # match on "dsm-master ready" alone read the address from half a line now and then.
    wait_for_line "$WORK/$tag-master.out" "dsm-master ready: listen=[^ ]* " "$MASTER_PID" "dsm-master ($tag)"
    MASTER=$(sed -n 's/^dsm-master ready: listen=\([^ ]*\) .*/\1/p' "$WORK/$tag-master.out")
    [ -n "$MASTER" ] || die "cannot read the master's address from $WORK/$tag-master.out"
    SLAVE_PIDS=()
    for i in $(seq "$n"); do
        local -a extra=("${SLAVE_ARGS[@]}")
        [ "${SLAVE_DATA:-0}" = 1 ] && extra+=(--data-dir "$WORK/$tag-slave-$i.data")
        "${REST_PIN[@]}" "$bin/dsm-slave" --master "$MASTER" --id "$tag-slave-$i" --log-level "${SLAVE_LOG_LEVEL:-warn}" \
            "${extra[@]}" >"$WORK/$tag-slave-$i.out" 2>"$WORK/$tag-slave-$i.log" &
        pids+=("$!")
        SLAVE_PIDS+=("$!")
        wait_for_line "$WORK/$tag-slave-$i.out" "dsm-slave ready" "$!" "dsm-slave $tag-slave-$i"
    done
}

# Start a redis-server (where the master would be pinned) with its data in $WORK/TAG and more
# FLAGS (e.g. --appendonly yes --appendfsync always); sets REDIS_PORT and REDIS_PID. Without
# FLAGS: --appendonly no. redis-server has no "port 0": try free ports below the ephemeral
# range until one binds.
# Usage: start_redis TAG [FLAG...]
start_redis() {
    local tag=$1 low
    shift
    local -a flags=("$@")
    [ "${#flags[@]}" -gt 0 ] || flags=(--appendonly no)
    low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range)
    for _ in 1 2 3 4 5; do
        REDIS_PORT=$((10000 + RANDOM % (low - 10000)))
        mkdir -p "$WORK/$tag"
        "${MASTER_PIN[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' "${flags[@]}" \
            --dir "$WORK/$tag" --daemonize no --logfile "$WORK/$tag.log" &
        REDIS_PID=$!
        local deadline=$((SECONDS + READY_TIMEOUT_S))
        while kill -0 "$REDIS_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
                pids+=("$REDIS_PID")
                return 0
            fi
            sleep 0.05
        done
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    done
    die "redis-server did not start; see $WORK/$tag.log"
}
