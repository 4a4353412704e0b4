#!/usr/bin/env bash
# Small values (64 bytes, 1000 keys), an old build against a new one against redis, alternating
# within each round, pinned as `make bench` (the masters alone on the last CPU, slaves and load
# generators on the others; redis-server where the masters are): the figures of
# bench-results/read-path-2026-12-04.md. A cluster of each build (master R=2, 3 slaves) and one
# redis-server are started once; then per round, per setting (1x1: 20000 requests, 4x32:
# 200000), per op: dsm-client bench against the old build's master, the new build's, then
# redis-benchmark -t get/set/ping_mbulk. One line per run:
#   ROUND SETTING OP SYSTEM OPS_PER_S P50_US P99_US SERVER_CPU_US_PER_REQUEST
# where the server CPU is the master's (or redis-server's) user + system time over the run from
# /proc/PID/stat (10 ms ticks), divided by the requests. The same dsm-client (the first
# build's) drives both dsm builds. Then the medians and ratios (awk).
# Usage: scripts/small-compare.sh ROUNDS OLD_BIN_DIR NEW_BIN_DIR (e.g. 5 /tmp/main target/release)
# Environment: OPS ("read write ping"), SETTINGS ("1x1 4x32").
set -euo pipefail
PROG=small-compare
READY_TIMEOUT_S=20
cd "$(dirname "$0")/.."
. scripts/common.sh
ROUNDS=$1 OLD=$2 NEW=$3
OPS=${OPS:-"read write ping"}
SETTINGS=${SETTINGS:-"1x1 4x32"}
command -v redis-benchmark >/dev/null || die "needs redis-server and redis-tools (make bench installs them)"
set_placement 1
jf() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
per_req() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {printf "%.3f", (b - a) * 1e6 / 100 / n}'; }
start_dsm "$OLD" old 3
OLD_MASTER=$MASTER OLD_PID=$MASTER_PID
start_dsm "$NEW" new 3
NEW_MASTER=$MASTER NEW_PID=$MASTER_PID
start_redis redis
RUNS=$WORK/runs
echo "load before: $(cat /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    for s in $SETTINGS; do
        c=${s%x*} p=${s#*x} n=20000
        [ "$s" = 4x32 ] && n=200000
        for op in $OPS; do
            for sys in old new; do
                m=$OLD_MASTER pid=$OLD_PID
                [ $sys = new ] && m=$NEW_MASTER pid=$NEW_PID
                t0=$(cpu "$pid")
                out=$("${REST_PIN[@]}" "$OLD/dsm-client" --master "$m" bench --op "$op" --clients "$c" \
                    --pipeline "$p" --requests "$n" --value-size 64 --keys 1000 --json)
                t1=$(cpu "$pid")
                [ "$(jf "$out" errors)" = 0 ] || die "errors: $out"
                echo "$r $s $op $sys $(jf "$out" ops_per_sec) $(jf "$out" p50_us) $(jf "$out" p99_us) $(per_req "$t0" "$t1" "$n")"
            done
            t=get
            [ "$op" = ping ] && t=ping_mbulk
            [ "$op" = write ] && t=set
            t0=$(cpu "$REDIS_PID")
            "${REST_PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$c" -P "$p" -n "$n" -d 64 \
                -r 1000 -t "$t" >"$WORK/rb.txt"
            t1=$(cpu "$REDIS_PID")
            # redis 7: "throughput summary: N requests per second", then the latency summary
            # columns avg min p50 p95 p99 max in ms.
            line=$(awk '/throughput summary:/ {rps = $3} cols {p50 = $3 * 1000; p99 = $5 * 1000; cols = 0}
                /avg +min +p50 +p95 +p99 +max/ {cols = 1} END {print rps, p50, p99}' "$WORK/rb.txt")
            echo "$r $s $op redis $line $(per_req "$t0" "$t1" "$n")"
        done
    done
done | tee "$RUNS"
echo "load after: $(cat /proc/loadavg)"
echo
echo "medians of $ROUNDS rounds: ops/s, p50 us, p99 us, server CPU us/request; ratios of medians"
for s in $SETTINGS; do
    for op in $OPS; do
        for sys in old new redis; do
            printf '%s %s %s' "$s" "$op" "$sys"
            for col in 5 6 7 8; do
                printf ' %s' "$(awk -v s="$s" -v o="$op" -v y="$sys" -v c="$col" '$2 == s && $3 == o && $4 == y {print $c}' "$RUNS" |
                    sort -g | awk '{v[NR] = $1} END {m = int((NR + 1) / 2); print (NR % 2) ? v[m] : (v[m] + v[m + 1]) / 2}')"
            done
            echo
        done
    done
done >"$WORK/med"
cat "$WORK/med"
awk '{ops[$1 " " $2, $3] = $4; p50[$1 " " $2, $3] = $5; cpu[$1 " " $2, $3] = $7; keys[$1 " " $2] = 1}
    END {for (k in keys) printf "%s: new/old ops %.2f p50 %.2f cpu %.2f | old/redis ops %.2f p50 %.2f | new/redis ops %.2f p50 %.2f cpu %.2f\n", k,
        ops[k, "new"] / ops[k, "old"], p50[k, "new"] / p50[k, "old"], cpu[k, "new"] / cpu[k, "old"],
        ops[k, "old"] / ops[k, "redis"], p50[k, "old"] / p50[k, "redis"],
        ops[k, "new"] / ops[k, "redis"], p50[k, "new"] / p50[k, "redis"], cpu[k, "new"] / cpu[k, "redis"]}' "$WORK/med" | sort
