#!/usr/bin/env bash
# CPU time per request, by process: the master, the slaves together, the bench client. Starts
# a cluster like make bench's (R=2, 3 slaves, loopback, free ports) for every run, runs
# `dsm-client bench` at 4 connections x 32 pipelined, 64-byte values, 1000 keys, and reads
# user + system time from /proc/PID/stat (the client's from /usr/bin/time). Throughput on a
# small shared VM moves by 20% between runs; CPU per request moves less, and comparing two
# builds in alternation, by the median, is what this is for.
#
# Environment:
#   CPU_BINS="target/release"   directories of builds to compare, alternated every round
#                               (e.g. CPU_BINS="/tmp/old target/release")
#   CPU_ROUNDS=3                rounds (every build, every op, once per round)
#   CPU_OPS="write read"        ops to run (ping, write, read, mixed)
#   CPU_REQUESTS=300000         requests per run
#   MASTER_ARGS                 extra dsm-master options (e.g. "--spin-us 0")
#   CPU_CLIENTS=4 CPU_PIPELINE=32 CPU_VALUE=64 CPU_KEYS=1000
#                               the load (e.g. CPU_PIPELINE=8 CPU_VALUE=1048576 CPU_KEYS=50
#                               CPU_REQUESTS=1000 for 1 MiB values; a READ run's CPU then
#                               includes the untimed writes of its keys)
#   CPU_PIN=1                   1: the master alone on the last CPU, slaves and client on the
#                               others, as make bench does (taskset); 0: unpinned
#
# Prints one line per run, then the median per build and op. Needs /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."

BINS=${CPU_BINS:-target/release}
ROUNDS=${CPU_ROUNDS:-3}
OPS=${CPU_OPS:-write read}
N=${CPU_REQUESTS:-300000}
CLIENTS=${CPU_CLIENTS:-4}
PIPELINE=${CPU_PIPELINE:-32}
VALUE=${CPU_VALUE:-64}
KEYS=${CPU_KEYS:-1000}
READY_TIMEOUT_S=10

case $ROUNDS in '' | *[!0-9]* | 0*) echo "cpu.sh: CPU_ROUNDS must be a positive whole number" >&2; exit 2 ;; esac
case $N in '' | *[!0-9]* | 0*) echo "cpu.sh: CPU_REQUESTS must be a positive whole number" >&2; exit 2 ;; esac
[ -x /usr/bin/time ] || { echo "cpu.sh: needs /usr/bin/time (Debian package 'time')" >&2; exit 2; }
for b in $BINS; do
    for x in dsm-master dsm-slave dsm-client; do
        [ -x "$b/$x" ] || { echo "cpu.sh: no $b/$x (cargo build --release --bins?)" >&2; exit 2; }
    done
done

PROG=cpu
# shellcheck source=scripts/common.sh
. scripts/common.sh

TICKS=$(getconf CLK_TCK)
# utime + stime of the given pids, in clock ticks.
ticks() {
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}
per_op() { awk -v t="$1" -v hz="$TICKS" -v n="$N" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }'; }

# One cluster, one run of OP with the build in BIN; prints "ops m s c total".
run() {
    local bin=$1 op=$2 i
    # shellcheck disable=SC2086 # MASTER_ARGS is a list of options
    start_dsm "$bin" cpu 3 ${MASTER_ARGS:-}
    local mpid=$MASTER_PID master=$MASTER
    local -a slaves=("${SLAVE_PIDS[@]}") mine=("$MASTER_PID" "${SLAVE_PIDS[@]}")
    local m0 s0 m1 s1 out
    m0=$(ticks "$mpid")
    s0=$(ticks "${slaves[@]}")
    out=$(/usr/bin/time -f "%U %S" -o "$WORK/time" "${REST_PIN[@]}" "$bin/dsm-client" --master "$master" bench \
        --op "$op" --clients "$CLIENTS" --pipeline "$PIPELINE" --requests "$N" --value-size "$VALUE" --keys "$KEYS" --json) ||
        die "the $op run with $bin failed: $out"
    m1=$(ticks "$mpid")
    s1=$(ticks "${slaves[@]}")
    for i in "${mine[@]}"; do kill "$i" 2>/dev/null || true; wait "$i" 2>/dev/null || true; done
    local ops c
    ops=$(sed -n 's/.*"ops_per_sec":\([0-9]*\).*/\1/p' <<<"$out")
    # The client's seconds, as ticks, so every figure goes through per_op.
    c=$(awk -v hz="$TICKS" '{ printf "%d", ($1 + $2) * hz }' "$WORK/time")
    echo "$ops $(per_op $((m1 - m0))) $(per_op $((s1 - s0))) $(per_op "$c") $(per_op $((m1 - m0 + s1 - s0 + c)))"
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print (a[int((NR + 1) / 2)] + a[int(NR / 2) + 1]) / 2 }'; }

set_placement "${CPU_PIN:-1}"
echo "# CPU µs per request (user + system), $CLIENTS x $PIPELINE, $VALUE-byte values, $KEYS keys, $N requests per run; $PLACEMENT"
printf '%-24s %-6s %10s %8s %8s %8s %8s\n' build op ops/s master slaves client total
: >"$WORK/runs"
for _ in $(seq "$ROUNDS"); do
    for b in $BINS; do
        for op in $OPS; do
            line=$(run "$b" "$op")
            echo "$b $op $line" >>"$WORK/runs"
            # shellcheck disable=SC2086 # five numbers
            printf '%-24s %-6s %10s %8s %8s %8s %8s\n' "$b" "$op" $line
        done
    done
done
echo "# medians over $ROUNDS rounds"
for b in $BINS; do
    for op in $OPS; do
        cols=()
        for f in 3 4 5 6 7; do
            cols+=("$(awk -v b="$b" -v o="$op" -v f="$f" '$1 == b && $2 == o { print $f }' "$WORK/runs" | median)")
        done
        printf '%-24s %-6s %10s %8s %8s %8s %8s\n' "$b" "$op" "${cols[@]}"
    done
done
