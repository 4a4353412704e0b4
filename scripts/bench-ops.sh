#!/usr/bin/env bash
# The operations of issue 19 under load: `dsm-client bench --op incr|delete|cas|mix-all`, with
# WRITE beside them for scale, against one cluster like make bench's (release binaries, R=2,
# 3 slaves, loopback, free ports, pinned the same way), 4 connections x 32 pipelined. Every
# answer is checked and every key read back, so a run with an error fails the script.
#
# Environment:
#   OPS_ROUNDS=3          rounds (every op once per round, in turn)
#   OPS_REQUESTS=200000   requests per run (delete: as many keys, so each DELETE removes a live key)
#   OPS_PIN=1             1: the master alone on the last CPU, slaves and client on the others
#                         (taskset, as make bench); 0: unpinned
#
# Prints one line per run, then the median ops/s, p50 and p99 per op, with the commit and load.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${OPS_ROUNDS:-3}
N=${OPS_REQUESTS:-200000}
BIN=target/release
READY_TIMEOUT_S=10
PROG=bench-ops
# shellcheck source=scripts/common.sh
. scripts/common.sh

case $ROUNDS in '' | *[!0-9]* | 0*) die "OPS_ROUNDS must be a positive whole number" ;; esac
case $N in '' | *[!0-9]* | 0*) die "OPS_REQUESTS must be a positive whole number" ;; esac
for b in dsm-master dsm-slave dsm-client; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: run cargo build --release first"
done

json_field() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m=int((NR+1)/2); if (NR%2) print v[m]; else print (v[m]+v[m+1])/2}'; }

set_placement "${OPS_PIN:-1}"
start_dsm "$BIN" ops 3
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $PLACEMENT; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

OPS=(write incr delete cas mix-all)
declare -A OPSS P50 P99
for round in $(seq "$ROUNDS"); do
    for op in "${OPS[@]}"; do
        keys=1000
        [ "$op" = delete ] && keys=$N
        out=$("${REST_PIN[@]}" "$BIN/dsm-client" --master "$MASTER" bench --op "$op" --clients 4 --pipeline 32 \
            --requests "$N" --keys "$keys" --json) || die "round $round: $op failed: $out"
        [ "$(json_field "$out" errors)" = 0 ] || die "round $round: $op had errors: $out"
        echo "round $round: $out"
        OPSS[$op]+="$(json_field "$out" ops_per_sec) "
        P50[$op]+="$(json_field "$out" p50_us) "
        P99[$op]+="$(json_field "$out" p99_us) "
    done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "median of $ROUNDS, 4 x 32, $N requests per run:"
for op in "${OPS[@]}"; do
    # shellcheck disable=SC2086 # the samples are a list of numbers
    printf '  %-8s %8.0f ops/s  p50 %7.1f us  p99 %7.1f us\n' "$op" "$(median ${OPSS[$op]})" \
        "$(median ${P50[$op]})" "$(median ${P99[$op]})"
done
