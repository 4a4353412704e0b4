#!/usr/bin/env bash
# 64-byte WRITEs, several builds or flag sets against each other and against redis SET, alternating
# within each round (issue 22, items 2 and 3, the write path): per round, a fresh cluster (master R=2,
# 3 slaves, pinned as bench.sh pins: the master alone on the last CPU, the rest on the others) of
# each variant in turn runs WRITE at 1x1 and 4x32 (closed loop) and an open-loop WRITE at RATE
# (4x32 slots, requests due at start + i/RATE); then a fresh redis-server runs redis-benchmark SET at
# 1x1 and 4x32 and the same open loop through `dsm-client bench --redis`. One line per run; the
# medians per variant at the end.
# Usage: scripts/write-compare.sh ROUNDS VARIANT... where VARIANT is NAME=BIN_DIR[,MASTER_FLAGS[,SLAVE_FLAGS]]
#   e.g. scripts/write-compare.sh 5 base=/tmp/wpath-base new=target/release "spin0=target/release,--spin-us 0,--spin-us 0"
# Environment: OPS (write, or "write read"), RATE (open-loop WRITEs/s, 370000), RATE_READ (880000), OPEN_S (3), N11 (requests at 1x1, 20000), N432 (200000),
#   KEYS (1000), PIN (1).
set -euo pipefail
PROG=write-compare
READY_TIMEOUT_S=20
cd "$(dirname "$0")/.."
. scripts/common.sh
ROUNDS=$1; shift; VARIANTS=("$@")
RATE=${RATE:-370000}; RATE_READ=${RATE_READ:-880000}; OPS=${OPS:-write}; OPEN_S=${OPEN_S:-3}; N11=${N11:-20000}; N432=${N432:-200000}; KEYS=${KEYS:-1000}
set_placement "${PIN:-1}"
jf() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
declare -A S
add() { S[$1]+="$2 "; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
CLIENT=""
echo "load before: $(cat /proc/loadavg); $PLACEMENT; open loop at $RATE/s for $OPEN_S s"
NAMES=()
for r in $(seq "$ROUNDS"); do
  for v in "${VARIANTS[@]}"; do
    name=${v%%=*}; rest=${v#*=}
    IFS=, read -r bin mflags sflags <<<"$rest"
    [ "$r" = 1 ] && NAMES+=("$name")
    CLIENT=$bin/dsm-client
    # shellcheck disable=SC2206 # flag lists
    SLAVE_ARGS=($sflags)
    # shellcheck disable=SC2086 # flag lists
    start_dsm "$bin" "r$r-$name" 3 $mflags
    for op in $OPS; do
      rate=$RATE; [ "$op" = read ] && rate=$RATE_READ
      out=$("${REST_PIN[@]}" "$bin/dsm-client" --master "$MASTER" bench --op "$op" --clients 1 --pipeline 1 --requests "$N11" --value-size 64 --keys "$KEYS" --json 2>/dev/null) || true
      add "$name $op 1x1 p50" "$(jf "$out" p50_us)"; add "$name $op 1x1 ops" "$(jf "$out" ops_per_sec)"
      echo "$name r=$r $op 1x1 ops=$(jf "$out" ops_per_sec) p50=$(jf "$out" p50_us) errors=$(jf "$out" errors)"
      out=$("${REST_PIN[@]}" "$bin/dsm-client" --master "$MASTER" bench --op "$op" --clients 4 --pipeline 32 --requests "$N432" --value-size 64 --keys "$KEYS" --json 2>/dev/null) || true
      add "$name $op 4x32 ops" "$(jf "$out" ops_per_sec)"; add "$name $op 4x32 p50" "$(jf "$out" p50_us)"
      echo "$name r=$r $op 4x32 ops=$(jf "$out" ops_per_sec) p50=$(jf "$out" p50_us) p99=$(jf "$out" p99_us) errors=$(jf "$out" errors)"
      n=$(awk -v r="$rate" -v s="$OPEN_S" 'BEGIN {printf "%d", r * s}')
      out=$("${REST_PIN[@]}" "$bin/dsm-client" --master "$MASTER" bench --op "$op" --clients 4 --pipeline 32 --rate "$rate" --requests "$n" --value-size 64 --keys "$KEYS" --json 2>/dev/null) || true
      add "$name $op open p50" "$(jf "$out" p50_us)"; add "$name $op open p99" "$(jf "$out" p99_us)"; add "$name $op open p999" "$(jf "$out" p999_us)"
      echo "$name r=$r $op open ops=$(jf "$out" ops_per_sec) p50=$(jf "$out" p50_us) p99=$(jf "$out" p99_us) p999=$(jf "$out" p999_us) errors=$(jf "$out" errors)"
    done
    dropped=$(grep -c "' dropped:" "$WORK/r$r-$name-master.log" || true)
    [ "$dropped" = 0 ] || echo "$name r=$r: the master dropped $dropped slave(s)"
    kill "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
    wait "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
  done
  start_redis "redis-$r"
  for op in $OPS; do
    t=set; [ "$op" = read ] && t=get
    rate=$RATE; [ "$op" = read ] && rate=$RATE_READ
    for cfg in "1 1 $N11" "4 32 $N432"; do
      set -- $cfg
      "${REST_PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$1" -P "$2" -n "$3" -d 64 -r "$KEYS" -t "$t" >"$WORK/redis-$r.txt" 2>&1 || true
      line=$(awk '/throughput summary:/ {rps=$3} c {p50=$3*1000; c=0} /avg +min +p50/ {c=1} END {print rps, p50}' "$WORK/redis-$r.txt")
      read -r rps p50 <<<"$line"
      add "redis $op ${1}x$2 ops" "$rps"; add "redis $op ${1}x$2 p50" "$p50"
      echo "redis r=$r $op ${1}x$2 ops=$rps p50=$p50"
    done
    n=$(awk -v r="$rate" -v s="$OPEN_S" 'BEGIN {printf "%d", r * s}')
    out=$("${REST_PIN[@]}" "$CLIENT" bench --redis "127.0.0.1:$REDIS_PORT" --op "$op" --clients 4 --pipeline 32 --rate "$rate" --requests "$n" --value-size 64 --keys "$KEYS" --json 2>/dev/null) || true
    add "redis $op open p50" "$(jf "$out" p50_us)"; add "redis $op open p99" "$(jf "$out" p99_us)"; add "redis $op open p999" "$(jf "$out" p999_us)"
    echo "redis r=$r $op open ops=$(jf "$out" ops_per_sec) p50=$(jf "$out" p50_us) p99=$(jf "$out" p99_us) p999=$(jf "$out" p999_us)"
  done
  kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
  echo "load: $(cat /proc/loadavg)"
done
echo
echo "medians of $ROUNDS rounds:"
for op in $OPS; do
  printf '%-12s %10s %9s %10s %9s %9s %9s %9s\n' "$op" 1x1-ops 1x1-p50 4x32-ops 4x32-p50 open-p50 open-p99 open-p999
  for name in "${NAMES[@]}" redis; do
    m() { median <<<"${S[$name $op $1]:-}"; }
    printf '%-12s %10s %9s %10s %9s %9s %9s %9s\n' "$name" "$(m '1x1 ops')" "$(m '1x1 p50')" "$(m '4x32 ops')" "$(m '4x32 p50')" "$(m 'open p50')" "$(m 'open p99')" "$(m 'open p999')"
  done
done
