#!/usr/bin/env bash
# 1 MiB values, old build against new against redis, alternating (bench-results/large-values-2026-12-03.md):
# per round, a fresh cluster (master R=2 at --log-level info, 3 slaves) of each build in turn runs
# WRITE and READ at 1x1 and 4x8, then a fresh redis-server runs redis-benchmark -t set,get at the
# same settings; one line per run, with the slaves the master dropped and suspected during it.
# Usage: scripts/large-compare.sh ROUNDS BIN_DIR... (e.g. 3 /tmp/old target/release)
# Environment: V (value bytes, 1048576), N11 (requests at 1x1, 100), N48 (at 4x8, 400), KEYS (50).
set -euo pipefail
PROG=large-compare
READY_TIMEOUT_S=20
cd "$(dirname "$0")/.."
. scripts/common.sh
ROUNDS=$1; shift; BINS=("$@")
V=${V:-1048576}; N11=${N11:-100}; N48=${N48:-400}; KEYS=${KEYS:-50}
jf() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
echo "load before: $(cat /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for BIN in "${BINS[@]}"; do
    tag="r$r-$(basename $BIN)"
    MASTER_LOG_LEVEL=info start_dsm "$BIN" "$tag" 3
    for cfg in "1 1 $N11" "4 8 $N48"; do
      set -- $cfg; c=$1; p=$2; n=$3
      for op in write read; do
        d0=$(grep -c "' dropped:" "$WORK/$tag-master.log" || true); s0=$(grep -c "is slow" "$WORK/$tag-master.log" || true)
        out=$("$BIN/dsm-client" --master "$MASTER" bench --op $op --clients $c --pipeline $p --requests $n --value-size $V --keys $KEYS --json 2>/dev/null || true)
        d1=$(grep -c "' dropped:" "$WORK/$tag-master.log" || true); s1=$(grep -c "is slow" "$WORK/$tag-master.log" || true)
        echo "DSM $BIN r=$r $op ${c}x$p ops=$(jf "$out" ops_per_sec) errors=$(jf "$out" errors) p50_us=$(jf "$out" p50_us) p99_us=$(jf "$out" p99_us) dropped=$((d1-d0)) suspected=$((s1-s0))"
      done
    done
    kill "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
    wait "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
  done
  start_redis "redis-$r"
  for cfg in "1 1 $N11" "4 8 $N48"; do
    set -- $cfg; c=$1; p=$2; n=$3
    redis-benchmark -p "$REDIS_PORT" -t set,get -n $n -c $c -P $p -d $V -r $KEYS > $WORK/redis-$r-$c.txt 2>&1 || true
    for t in SET GET; do
      echo "REDIS r=$r $t ${c}x$p $(awk -v t="====== $t ======" 'index($0,t){s=1;next} s&&/====== /{s=0} s&&/throughput summary:/{rps=$3} s&&c{p50=$3;p99=$5;c=0} s&&/avg +min +p50/{c=1} END{print "ops=" rps, "p50_ms=" p50, "p99_ms=" p99}' $WORK/redis-$r-$c.txt)"
    done
  done
  kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
  set -- "${@}"
  echo "load: $(cat /proc/loadavg)"
done
