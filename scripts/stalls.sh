#!/usr/bin/env bash
# Where an open-loop tail comes from (issue 22, item 3): the machine's own stalls, and what each
# system makes of them. First dsm-stall-probe spins on every usable CPU at once for PROBE_S
# seconds with nothing else running and lists the gaps over 150 µs (time the CPU ran something
# else: an interrupt, a kernel thread, the host of a virtual machine). Then, per round, an
# open-loop WRITE at RATE (4 x 32 slots, 64-byte values, pinned as make bench pins) against a
# fresh dsm cluster and a fresh redis-server, both through `dsm-client bench --slow-log`: the
# requests over 1 ms are grouped into episodes (slow answers less than 0.3 ms apart) and each
# episode printed with when it began, how long it lasted, how many requests and the worst one.
# Episodes that recur with the probe's period are the machine's; what differs between the two
# systems is how long each one lasts, i.e. how fast the backlog a stall leaves drains.
# Usage: scripts/stalls.sh [ROUNDS (1)]; environment RATE (660000), OPEN_S (3), PROBE_S (3),
#   BIN (target/release), PIN (1).
set -euo pipefail
PROG=stalls
READY_TIMEOUT_S=20
cd "$(dirname "$0")/.."
. scripts/common.sh
ROUNDS=${1:-1}; RATE=${RATE:-660000}; OPEN_S=${OPEN_S:-3}; PROBE_S=${PROBE_S:-3}; BIN=${BIN:-target/release}
case $ROUNDS in '' | *[!0-9]* | 0*) die "ROUNDS must be a positive whole number" ;; esac
for x in dsm-master dsm-slave dsm-client dsm-stall-probe; do
    [ -x "$BIN/$x" ] || die "no $BIN/$x: run 'cargo build --release' first"
done
command -v redis-server >/dev/null || die "needs redis-server (Debian package redis-server)"
set_placement "${PIN:-1}"
N=$(awk -v r="$RATE" -v s="$OPEN_S" 'BEGIN {printf "%d", r * s}')

# Slow requests (a --slow-log file) as episodes.
episodes() {
    awk '!/^#/ { t = $1; l = $2
        if (n && t - last < 300) { last = t; k++; if (l > worst) worst = l; next }
        if (n) printf "  %9.1f ms  lasted %6.2f ms  %6d requests  worst %6d us\n", start / 1000, (last - start) / 1000, k, worst
        n++; start = t; last = t; k = 1; worst = l }
        END { if (n) printf "  %9.1f ms  lasted %6.2f ms  %6d requests  worst %6d us\n", start / 1000, (last - start) / 1000, k, worst
              printf "  %d episodes, %d requests over 1 ms\n", n, NR - 1 }' "$1"
}

echo "load before: $(cat /proc/loadavg); $PLACEMENT; open loop at $RATE/s for $OPEN_S s"
echo "== the machine alone: dsm-stall-probe on every usable CPU at once, $PROBE_S s"
probe_stalls "$PROBE_S"
for c in $PROBED_CPUS; do
    echo "CPU $c: $(head -1 "$WORK/probe-$c.txt" | sed 's/^# //')"
    tail -n +2 "$WORK/probe-$c.txt" | sed 's/^/  /'
done

for r in $(seq "$ROUNDS"); do
    start_dsm "$BIN" "r$r" 3
    "${REST_PIN[@]}" "$BIN/dsm-client" --master "$MASTER" bench --op write --clients 4 --pipeline 32 --requests 200000 --value-size 64 --keys 1000 --json >/dev/null
    out=$("${REST_PIN[@]}" "$BIN/dsm-client" --master "$MASTER" bench --op write --clients 4 --pipeline 32 --rate "$RATE" --requests "$N" --value-size 64 --keys 1000 --json --slow-log "$WORK/r$r-dsm.slow")
    echo "== round $r, dsm: $out"
    episodes "$WORK/r$r-dsm.slow"
    kill "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
    wait "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
    start_redis "redis-$r"
    out=$("${REST_PIN[@]}" "$BIN/dsm-client" bench --redis "127.0.0.1:$REDIS_PORT" --op write --clients 4 --pipeline 32 --rate "$RATE" --requests "$N" --value-size 64 --keys 1000 --json --slow-log "$WORK/r$r-redis.slow")
    echo "== round $r, redis: $out"
    episodes "$WORK/r$r-redis.slow"
    kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
done
echo "load after: $(cat /proc/loadavg)"
