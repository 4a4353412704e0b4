#!/usr/bin/env bash
# What a 1 MiB WRITE at 1 x 1 can cost at best with a relay (the master) between the client and
# two sinks (the slaves), against one hop straight to a server (as to Redis), with nothing of
# dsm's in the path: `dsm-relay-bound` (bench/src/bin/dsm-relay-bound.rs). Placement as make
# bench: the relay, or the one-hop server, alone on the last CPU; sinks and client on the rest.
# Per round, in turn: one hop (client -> sink), store-and-forward (the relay reads the whole
# frame, then writes it to each sink: dsm's master today) and cut-through (the relay writes each
# piece to both sinks as it arrives), then store-and-forward to one sink (R=1). Prints every
# run, then the medians and their ratios; with redis-server and redis-benchmark installed, also
# redis-benchmark SET of the same size at 1 x 1 (redis-server where the relay is) each round.
# Last in each round, no relay at all: the client writes each frame to both sinks itself (the
# sinks where the relay would be), the least any design that keeps a write on two nodes moves.
# With SMALL=1 (the default) the same again with 64-byte frames, 4 connections x 32 in flight
# (make bench's WRITE 4 x 32): a mio relay (one loop, as dsm's master) to two sinks and to one,
# beside a dsm cluster's WRITE and redis-benchmark SET in the same rounds, and the clients
# writing to two mio sinks themselves with no relay.
# Usage: scripts/relay-bound.sh [ROUNDS (5)]; environment FRAMES (1000), BYTES (1048576),
#   SMALL (1), SMALL_FRAMES (2000000), BIN (target/release), PIN (1).
set -euo pipefail
PROG=relay-bound
READY_TIMEOUT_S=10
cd "$(dirname "$0")/.."
. scripts/common.sh
ROUNDS=${1:-5}; FRAMES=${FRAMES:-1000}; BYTES=${BYTES:-1048576}; BIN=${BIN:-target/release}
SMALL=${SMALL:-1}; SMALL_FRAMES=${SMALL_FRAMES:-2000000}
case $ROUNDS in '' | *[!0-9]* | 0*) die "ROUNDS must be a positive whole number" ;; esac
[ -x "$BIN/dsm-relay-bound" ] || die "no $BIN/dsm-relay-bound: run 'cargo build --release' first"
set_placement "${PIN:-1}"
R=$BIN/dsm-relay-bound
WITH_REDIS=0
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && WITH_REDIS=1

# Start ROLE ARGS... with the given pin prefix (an array name); sets PORT and adds the pid.
start() {
    local -n pin=$1
    local tag=$2
    shift 2
    "${pin[@]}" "$R" "$@" >"$WORK/$tag.out" 2>"$WORK/$tag.err" &
    pids+=("$!")
    wait_for_line "$WORK/$tag.out" "^listening " "$!" "$tag"
    PORT=$(sed -n 's/^listening //p' "$WORK/$tag.out")
}
rate() { sed -n 's/.*: \([0-9.]*\)\/s$/\1/p' <<<"$1"; }
declare -A S
echo "load before: $(cat /proc/loadavg); $PLACEMENT; $FRAMES frames of $BYTES bytes per run"
for r in $(seq "$ROUNDS"); do
    start MASTER_PIN "r$r-one" sink
    out=$("${REST_PIN[@]}" "$R" client "$PORT" "$FRAMES" "$BYTES"); S[one]+="$(rate "$out") "
    echo "round $r one hop:           $out"
    for mode in store cut; do
        start REST_PIN "r$r-$mode-a" sink; a=$PORT
        start REST_PIN "r$r-$mode-b" sink; b=$PORT
        start MASTER_PIN "r$r-$mode-relay" relay "$mode" "$a" "$b"
        out=$("${REST_PIN[@]}" "$R" client "$PORT" "$FRAMES" "$BYTES"); S[$mode]+="$(rate "$out") "
        printf 'round %s relay, %-6s %s\n' "$r" "$mode:" "$out"
    done
    if [ "$WITH_REDIS" = 1 ]; then
        start_redis "r$r-redis"
        "${REST_PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c 1 -P 1 -n "$FRAMES" -d "$BYTES" -t set >"$WORK/r$r-redis.txt" 2>&1 || true
        rps=$(awk '/throughput summary:/ {print $3}' "$WORK/r$r-redis.txt")
        S[redis]+="$rps "
        echo "round $r redis-benchmark SET: $rps/s"
        kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
    fi
    start REST_PIN "r$r-r1-a" sink; a=$PORT
    start MASTER_PIN "r$r-r1-relay" relay store "$a"
    out=$("${REST_PIN[@]}" "$R" client "$PORT" "$FRAMES" "$BYTES"); S[r1]+="$(rate "$out") "
    echo "round $r relay to one sink, store: $out"
    start MASTER_PIN "r$r-fan-a" sink; a=$PORT
    start MASTER_PIN "r$r-fan-b" sink; b=$PORT
    out=$("${REST_PIN[@]}" "$R" fanout "$FRAMES" "$BYTES" "$a" "$b"); S[fan]+="$(rate "$out") "
    echo "round $r no relay, client to two sinks: $out"
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
one=$(median <<<"${S[one]}"); store=$(median <<<"${S[store]}"); cut=$(median <<<"${S[cut]}"); r1=$(median <<<"${S[r1]}"); fan=$(median <<<"${S[fan]}")
# The same shapes with small pipelined frames, as make bench's WRITE 4 x 32: a mio relay to two
# sinks and to one, beside dsm (a fresh cluster, R=2, 3 slaves) and redis-benchmark SET.
if [ "$SMALL" = 1 ]; then
    for r in $(seq "$ROUNDS"); do
        for n in 2 1; do
            ports=()
            for i in $(seq "$n"); do start REST_PIN "r$r-p$n-$i" psink; ports+=("$PORT"); done
            start MASTER_PIN "r$r-p$n-relay" prelay 4 "${ports[@]}"
            out=$("${REST_PIN[@]}" "$R" pclient "$PORT" 4 32 "$SMALL_FRAMES" 64); S[p$n]+="$(rate "$out") "
            echo "round $r 4x32 relay to $n sink(s): $out"
        done
        start MASTER_PIN "r$r-pf-a" msink 4; a=$PORT
        start MASTER_PIN "r$r-pf-b" msink 4; b=$PORT
        out=$("${REST_PIN[@]}" "$R" pfanout 4 32 "$SMALL_FRAMES" 64 "$a" "$b"); S[pfan]+="$(rate "$out") "
        echo "round $r 4x32 no relay, clients to two sinks: $out"
        start_dsm "$BIN" "r$r-dsm" 3
        out=$("${REST_PIN[@]}" "$BIN/dsm-client" --master "$MASTER" bench --op write --clients 4 --pipeline 32 --requests "$SMALL_FRAMES" --value-size 64 --keys 1000 --json)
        ops=$(sed -n 's/.*"ops_per_sec":\([0-9.]*\).*/\1/p' <<<"$out"); S[pdsm]+="$ops "
        echo "round $r 4x32 dsm WRITE: $ops/s"
        kill "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
        wait "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
        if [ "$WITH_REDIS" = 1 ]; then
            start_redis "r$r-predis"
            "${REST_PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c 4 -P 32 -n "$SMALL_FRAMES" -d 64 -r 1000 -t set >"$WORK/r$r-predis.txt" 2>&1 || true
            rps=$(awk '/throughput summary:/ {print $3}' "$WORK/r$r-predis.txt")
            S[predis]+="$rps "
            echo "round $r 4x32 redis-benchmark SET: $rps/s"
            kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
        fi
    done
fi
echo "load after: $(cat /proc/loadavg)"
if [ "$SMALL" = 1 ]; then
    p2=$(median <<<"${S[p2]}"); p1=$(median <<<"${S[p1]}"); pdsm=$(median <<<"${S[pdsm]}"); pfan=$(median <<<"${S[pfan]}")
    echo "4x32, 64-byte frames, medians of $ROUNDS: relay to two sinks $p2/s, to one sink $p1/s, dsm WRITE $pdsm/s ($(awk -v a="$pdsm" -v b="$p2" 'BEGIN {printf "%.2f", a / b}')x the relay to two sinks)"
    if [ "$WITH_REDIS" = 1 ]; then
        predis=$(median <<<"${S[predis]}")
        echo "4x32 against redis-benchmark SET ($predis/s): relay to two sinks $(awk -v a="$p2" -v b="$predis" 'BEGIN {printf "%.2f", a / b}')x, to one sink $(awk -v a="$p1" -v b="$predis" 'BEGIN {printf "%.2f", a / b}')x, no relay (clients to two sinks) $(awk -v a="$pfan" -v b="$predis" 'BEGIN {printf "%.2f", a / b}')x, dsm $(awk -v a="$pdsm" -v b="$predis" 'BEGIN {printf "%.2f", a / b}')x"
    fi
fi
if [ "$WITH_REDIS" = 1 ]; then
    redis=$(median <<<"${S[redis]}")
    echo "medians of $ROUNDS against redis-benchmark SET ($redis/s): one hop $(awk -v a="$one" -v b="$redis" 'BEGIN {printf "%.2f", a / b}')x, relay store-and-forward $(awk -v a="$store" -v b="$redis" 'BEGIN {printf "%.2f", a / b}')x, cut-through $(awk -v a="$cut" -v b="$redis" 'BEGIN {printf "%.2f", a / b}')x, no relay (client to two sinks) $(awk -v a="$fan" -v b="$redis" 'BEGIN {printf "%.2f", a / b}')x, one sink $(awk -v a="$r1" -v b="$redis" 'BEGIN {printf "%.2f", a / b}')x"
fi
echo "medians of $ROUNDS: one hop $one/s; relay store-and-forward $store/s ($(awk -v a="$store" -v b="$one" 'BEGIN {printf "%.2f", a / b}')x one hop); relay cut-through $cut/s ($(awk -v a="$cut" -v b="$one" 'BEGIN {printf "%.2f", a / b}')x one hop); relay to one sink (R=1) $r1/s ($(awk -v a="$r1" -v b="$one" 'BEGIN {printf "%.2f", a / b}')x one hop)"
