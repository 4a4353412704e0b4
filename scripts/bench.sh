#!/usr/bin/env bash
# dsm against redis on loopback, in one run: PING, WRITE/SET and READ/GET at 1 connection x
# pipeline 1 and at 4 connections x pipeline 32, 64-byte values, each measured 3 times; the
# medians go to a table on stdout and in bench-results/latest.md, and the latency percentile
# distributions (every run's dsm-client --hist file and redis-benchmark percentile table, the
# runs of each pooled) to an SVG beside it, bench-results/latest.svg (dsm-latency-svg).
#
# Starts its own cluster (a master with R=2 and 3 slaves) and its own redis-server on free
# loopback ports, and stops everything it started on exit. Installs Debian's redis-server and
# redis-tools when missing (apt-get; run as root).
#
# Environment:
#   BENCH_REPEATS=3          runs per measurement (the median is reported)
#   BENCH_SERIAL_REQUESTS    requests per run at 1x1 (default 20000)
#   BENCH_PIPELINED_REQUESTS requests per run at 4x32 (default 200000)
#   BENCH_STRACE=1           also count the master's write syscalls per op (4x32 WRITE, strace)
#   BENCH_OUT                results file (default bench-results/latest.md)
#   BENCH_SVG                the latency distributions (default: BENCH_OUT with .svg for .md)
#   BENCH_METRICS=1          every dsm node with --metrics 127.0.0.1:0, each /metrics fetched
#                            (curl) once a second while the bench runs (issue 21, item 5: what
#                            serving metrics costs); recorded in the results file
#   BENCH_MASTER_ARGS        extra dsm-master flags (e.g. "--spin-us 50"), recorded in the file
#   BENCH_PIN=1              1: the master alone on the last CPU, slaves and dsm-client on the
#                            others; likewise redis-server alone there, redis-benchmark on the
#                            others (taskset). 0: the kernel places everything.
#   BENCH_FSYNC              always, interval or never: every slave keeps a log (--data-dir in
#                            the work folder, on the disk /tmp is on) with this --fsync. Unset:
#                            memory only, as before. Recorded in the results file.
#   BENCH_SLAVE_ARGS         more dsm-slave flags (e.g. "--fsync-interval-ms 100"), recorded
#   BENCH_PERSIST=1          1: also WRITE with the slaves on disk against redis with
#                            appendonly yes (issue 16, item 8): --fsync interval against
#                            appendfsync everysec and --fsync always against appendfsync always,
#                            at 1x1 and 4x32, a fresh cluster and redis-server for each, the two
#                            alternating within each of BENCH_REPEATS rounds. 0: skip (saves ~1 min).
#   BENCH_OPEN=1             1: also open-loop runs (issue 22, item 3): WRITE/SET and READ/GET at
#                            25%, 50% and 75% of the measured maximum (the lower of dsm's and
#                            redis's closed-loop 4x32 medians for that op), dsm and redis at the
#                            same offered rate, both driven by dsm-client bench (--redis for
#                            redis), 4 connections with up to 32 requests in flight each; latency
#                            from each request's due time (no coordinated omission). 0: skip.
#   BENCH_OPEN_SECONDS=3     length of each open-loop run (requests = rate x seconds)
#   BENCH_LARGE=1            1: also 1 MiB values (issue 22, item 1): WRITE/SET and READ/GET at
#                            1x1 and 4x8, dsm (a fresh cluster each round, the master logging
#                            at info so slaves suspected show) beside redis-benchmark -d 1048576,
#                            with errors, slaves dropped and slaves suspected counted. 0: skip.
#   BENCH_LARGE_SERIAL=1000  requests per such run at 1x1
#   BENCH_LARGE_PIPELINED=400 requests per such run at 4x8
#   BENCH_PERSIST_SERIAL     requests per such run at 1x1 (default 2000: ~1 s at `always`)
#   BENCH_PERSIST_PIPELINED  requests per such run at 4x32 (default 200000)
#   BENCH_PROBE_SECONDS=2    before the runs, dsm-stall-probe on every usable CPU at once for
#                            this long: the machine's own stalls (gaps over 150 µs), written in
#                            the results' header; 0: skip
set -euo pipefail
cd "$(dirname "$0")/.."

REPEATS=${BENCH_REPEATS:-3}
SERIAL_N=${BENCH_SERIAL_REQUESTS:-20000}
PIPELINED_N=${BENCH_PIPELINED_REQUESTS:-200000}
PERSIST=${BENCH_PERSIST:-1}
OPEN=${BENCH_OPEN:-1}
OPEN_SECONDS=${BENCH_OPEN_SECONDS:-3}
OPEN_FRACTIONS=(25 50 75)
LARGE=${BENCH_LARGE:-1}
PROBE_SECONDS=${BENCH_PROBE_SECONDS:-2}
LARGE_SERIAL_N=${BENCH_LARGE_SERIAL:-1000}
LARGE_PIPELINED_N=${BENCH_LARGE_PIPELINED:-400}
LARGE_VALUE=1048576
LARGE_KEYS=50
PERSIST_SERIAL_N=${BENCH_PERSIST_SERIAL:-2000}
PERSIST_PIPELINED_N=${BENCH_PERSIST_PIPELINED:-200000}
OUT=${BENCH_OUT:-bench-results/latest.md}
SVG=${BENCH_SVG:-${OUT%.md}.svg}
METRICS=${BENCH_METRICS:-0}
VALUE=64
KEYS=1000
BIN=target/release
READY_TIMEOUT_S=10

PROG=bench
# shellcheck source=scripts/common.sh
. scripts/common.sh

need_packages() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    [ "${BENCH_STRACE:-0}" = 1 ] && ! command -v strace >/dev/null && missing+=(strace)
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "bench.sh: installing ${missing[*]} (apt-get)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    # The package starts a system-wide redis on 6379; this script uses its own instance.
    if command -v service >/dev/null; then service redis-server stop >/dev/null 2>&1 || true; fi
}

# What every slave is given: a log with BENCH_FSYNC, and BENCH_SLAVE_ARGS.
slave_setup() {
    # shellcheck disable=SC2206 # BENCH_SLAVE_ARGS is a list of flags
    SLAVE_ARGS=(${BENCH_SLAVE_ARGS:-})
    if [ -n "${BENCH_FSYNC:-}" ]; then
        case $BENCH_FSYNC in always | interval | never) ;; *) die "BENCH_FSYNC must be always, interval or never" ;; esac
        SLAVE_DATA=1
        SLAVE_ARGS+=(--fsync "$BENCH_FSYNC")
    fi
    SLAVE_DESC="${SLAVE_ARGS[*]}"
    [ "${SLAVE_DATA:-0}" = 1 ] && SLAVE_DESC="--data-dir TMPDIR $SLAVE_DESC"
    SLAVE_DESC=${SLAVE_DESC:-"memory only (no --data-dir)"}
}

# Start a master (optionally under a wrapper command) and 3 slaves; sets MASTER.
start_cluster() {
    local tag=$1
    shift
    # shellcheck disable=SC2086 # BENCH_MASTER_ARGS is a list of flags
    start_dsm "$BIN" "$tag" 3 ${BENCH_MASTER_ARGS:-} -- "$@"
}

# Value of a numeric field in a flat JSON object.
json_field() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
# Median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m=int((NR+1)/2); if (NR%2) print v[m]; else print (v[m]+v[m+1])/2}'; }

# Samples, keyed "system op setting metric" (setting 1x1 or 4x32): space-separated numbers,
# one per run. RES holds their medians.
declare -A SAMPLES RES

# Set CMD to the dsm-client bench command line for: op clients pipeline requests.
dsm_cmd() {
    CMD=("$BIN/dsm-client" --master "$MASTER" bench --op "$1" --clients "$2" --pipeline "$3"
        --requests "$4" --value-size "$VALUE" --keys "$KEYS" --json)
}

# Every run's latency distribution, for the SVG: $HIST/SYSTEM-OP-SETTING-rROUND.hist (dsm) and
# $HIST/redis-SETTING-rROUND.txt (redis-benchmark's text output, all three tests).
HIST=$WORK/hist
mkdir -p "$HIST"
ROUND=0

sample_dsm() { # op clients pipeline requests
    local op=$1 setting="${2}x${3}" out
    dsm_cmd "$@"
    CMD+=(--hist "$HIST/dsm-$op-$setting-r$ROUND.hist")
    out=$("${REST_PIN[@]}" "${CMD[@]}") || die "dsm bench failed: ${CMD[*]}"
    [ "$(json_field "$out" errors)" = 0 ] || die "dsm bench reported errors: $out"
    SAMPLES[dsm $op $setting p50]+="$(json_field "$out" p50_us) "
    SAMPLES[dsm $op $setting p99]+="$(json_field "$out" p99_us) "
    SAMPLES[dsm $op $setting ops]+="$(json_field "$out" ops_per_sec) "
}

# Set CMD to the redis-benchmark command line for: clients pipeline requests.
redis_cmd() {
    CMD=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$1" -P "$2" -n "$3" -d "$VALUE"
        -r "$KEYS" -t "ping_mbulk,set,get")
}

# "RPS P50_US P99_US" of test $1 (PING_MBULK, SET, GET) in redis-benchmark's text output in
# file $2 (redis 7: the "throughput summary" line, and the "latency summary" columns avg, min,
# p50, p95, p99, max in ms). The same output holds the percentile table the SVG draws.
redis_summary() {
    awk -v t="====== $1 ======" '
        index($0, t) { sec = 1; next }
        sec && /====== / { sec = 0 }
        sec && /throughput summary:/ { rps = $3 }
        sec && cols { p50 = $3 * 1000; p99 = $5 * 1000; cols = 0 }
        sec && /avg +min +p50 +p95 +p99 +max/ { cols = 1 }
        END { if (rps != "" && p50 != "") print rps, p50, p99 }' "$2"
}

# One redis-benchmark invocation measures all three commands.
sample_redis() { # clients pipeline requests
    local setting="${1}x${2}" file test op line rps q50 q99
    redis_cmd "$@"
    file=$HIST/redis-$setting-r$ROUND.txt
    "${REST_PIN[@]}" "${CMD[@]}" >"$file" || die "redis-benchmark failed: ${CMD[*]}"
    for test in PING_MBULK SET GET; do
        case $test in PING_MBULK) op="ping" ;; SET) op="write" ;; GET) op="read" ;; esac
        line=$(redis_summary "$test" "$file")
        [ -n "$line" ] || die "redis-benchmark printed no $test summary (redis-benchmark 7 or later needed); see $file"
        read -r rps q50 q99 <<<"$line"
        SAMPLES[redis $op $setting p50]+="$q50 "
        SAMPLES[redis $op $setting p99]+="$q99 "
        SAMPLES[redis $op $setting ops]+="$rps "
    done
}

# dsm and redis alternate within each round, so load from other work on the machine falls on
# both alike rather than on whichever ran second.
measure() {
    local round op
    for round in $(seq "$REPEATS"); do
        ROUND=$round
        echo "bench.sh: round $round of $REPEATS" >&2
        for op in ping write read; do sample_dsm "$op" 1 1 "$SERIAL_N"; done
        sample_redis 1 1 "$SERIAL_N"
        for op in ping write read; do sample_dsm "$op" 4 32 "$PIPELINED_N"; done
        sample_redis 4 32 "$PIPELINED_N"
    done
    local key
    for key in "${!SAMPLES[@]}"; do
        # shellcheck disable=SC2086 # a space-separated list of numbers
        RES[$key]=$(median ${SAMPLES[$key]})
    done
}

# Set CMD to an open-loop dsm-client bench command line: system (dsm or redis) op rate.
open_cmd() {
    local -a target=(--master "$MASTER" bench)
    [ "$1" = redis ] && target=(bench --redis "127.0.0.1:$REDIS_PORT")
    local n
    n=$(awk -v r="$3" -v s="$OPEN_SECONDS" 'BEGIN {printf "%d", r * s}')
    CMD=("$BIN/dsm-client" "${target[@]}" --op "$2" --clients 4 --pipeline 32 --rate "$3"
        --requests "$n" --value-size "$VALUE" --keys "$KEYS" --json)
}

# Open loop, issue 22 item 3: for each op, the offered rates are fractions of the lower of the
# two systems' closed-loop 4x32 medians just measured, so both can carry every rate; dsm and
# redis alternate at each rate within each round. Errors are counted, not fatal.
declare -A OSAMPLES ORES ORATE
open_loop() {
    local op frac round sys rate out
    for op in write read; do
        local max
        max=$(awk -v a="${RES[dsm $op 4x32 ops]}" -v b="${RES[redis $op 4x32 ops]}" 'BEGIN {print (a < b) ? a : b}')
        for frac in "${OPEN_FRACTIONS[@]}"; do
            ORATE[$op $frac]=$(awk -v m="$max" -v f="$frac" 'BEGIN {printf "%d", m * f / 100}')
        done
    done
    for round in $(seq "$REPEATS"); do
        for op in write read; do
            for frac in "${OPEN_FRACTIONS[@]}"; do
                rate=${ORATE[$op $frac]}
                echo "bench.sh: open loop, round $round of $REPEATS: $op at $rate/s ($frac% of max)" >&2
                for sys in dsm redis; do
                    open_cmd "$sys" "$op" "$rate"
                    # The generator's own CPU (user + system seconds), to tell its limits
                    # from the server's: bash's `time`, as CI may lack /usr/bin/time.
                    out=$( { TIMEFORMAT='%U %S'; time "${REST_PIN[@]}" "${CMD[@]}" 2>/dev/null; } 2>"$WORK/open-time") || true
                    [ -n "$(json_field "$out" ops_per_sec)" ] || die "open-loop bench failed: ${CMD[*]}"
                    OSAMPLES[$sys $op $frac cpu]+="$(awk '{printf "%.2f", $1 + $2}' "$WORK/open-time") "
                    local m
                    for m in p50 p99 p999; do
                        OSAMPLES[$sys $op $frac $m]+="$(json_field "$out" "${m}_us") "
                    done
                    OSAMPLES[$sys $op $frac ops]+="$(json_field "$out" ops_per_sec) "
                    OSAMPLES[$sys $op $frac errors]+="$(json_field "$out" errors) "
                done
            done
        done
    done
    local key
    for key in "${!OSAMPLES[@]}"; do
        # shellcheck disable=SC2086 # a space-separated list of numbers
        ORES[$key]=$(median ${OSAMPLES[$key]})
    done
}

# 1 MiB values, issue 22 item 1: WRITE and READ at 1x1 and 4x8 on a fresh cluster each round
# (its master logging at info, so that slaves suspected show beside those dropped), then SET and
# GET from one redis-benchmark run at the same setting on a fresh redis-server, then the same
# runs as dsm's through dsm-client bench --redis on that server (the same generator, value
# checks and clock as dsm's: at 1 MiB the generator's own work, a value generated per WRITE and
# checked per READ, is a large part of a 1x1 request). Errors, slaves dropped ("' dropped:" in
# the master's log) and suspected ("is slow") are counted, not fatal.
declare -A LSAMPLES LRES
large_cmd() { # op clients pipeline requests
    CMD=("$BIN/dsm-client" --master "$MASTER" bench --op "$1" --clients "$2" --pipeline "$3"
        --requests "$4" --value-size "$LARGE_VALUE" --keys "$LARGE_KEYS" --json)
}
large_gen_cmd() { # op clients pipeline requests
    CMD=("$BIN/dsm-client" bench --redis "127.0.0.1:$REDIS_PORT" --op "$1" --clients "$2" --pipeline "$3"
        --requests "$4" --value-size "$LARGE_VALUE" --keys "$LARGE_KEYS" --json)
}
large_redis_cmd() { # clients pipeline requests
    CMD=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$1" -P "$2" -n "$3" -d "$LARGE_VALUE"
        -r "$LARGE_KEYS" -t set,get)
}
large() {
    local round setting c p n op out log before_d before_s file line rps q50 q99
    for round in $(seq "$REPEATS"); do
        echo "bench.sh: 1 MiB values, round $round of $REPEATS" >&2
        MASTER_LOG_LEVEL=info start_dsm "$BIN" "l$round" 3 ${BENCH_MASTER_ARGS:-}
        log=$WORK/l$round-master.log
        for setting in 1x1 4x8; do
            c=${setting%x*}
            p=${setting#*x}
            n=$LARGE_SERIAL_N
            [ "$setting" = 4x8 ] && n=$LARGE_PIPELINED_N
            for op in write read; do
                before_d=$(grep -c "' dropped:" "$log" || true)
                before_s=$(grep -c "is slow" "$log" || true)
                large_cmd "$op" "$c" "$p" "$n"
                CMD+=(--hist "$HIST/large-dsm-$op-$setting-r$round.hist")
                out=$("${REST_PIN[@]}" "${CMD[@]}" 2>/dev/null) || true
                [ -n "$(json_field "$out" ops_per_sec)" ] || die "dsm bench failed: ${CMD[*]}"
                LSAMPLES[dsm $op $setting p50]+="$(json_field "$out" p50_us) "
                LSAMPLES[dsm $op $setting p99]+="$(json_field "$out" p99_us) "
                LSAMPLES[dsm $op $setting ops]+="$(json_field "$out" ops_per_sec) "
                LSAMPLES[dsm $op $setting errors]+="$(json_field "$out" errors) "
                LSAMPLES[dsm $op $setting dropped]+="$(($(grep -c "' dropped:" "$log" || true) - before_d)) "
                LSAMPLES[dsm $op $setting suspected]+="$(($(grep -c "is slow" "$log" || true) - before_s)) "
            done
        done
        kill "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
        wait "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
        start_redis "l$round-redis"
        for setting in 1x1 4x8; do
            c=${setting%x*}
            p=${setting#*x}
            n=$LARGE_SERIAL_N
            [ "$setting" = 4x8 ] && n=$LARGE_PIPELINED_N
            large_redis_cmd "$c" "$p" "$n"
            file=$HIST/large-redis-$setting-r$round.txt
            "${REST_PIN[@]}" "${CMD[@]}" >"$file" || die "redis-benchmark failed: ${CMD[*]}"
            for op in write read; do
                local test=SET
                [ "$op" = read ] && test=GET
                line=$(redis_summary "$test" "$file")
                [ -n "$line" ] || die "redis-benchmark printed no $test summary; see $file"
                read -r rps q50 q99 <<<"$line"
                LSAMPLES[redis $op $setting p50]+="$q50 "
                LSAMPLES[redis $op $setting p99]+="$q99 "
                LSAMPLES[redis $op $setting ops]+="$rps "
            done
            for op in write read; do
                large_gen_cmd "$op" "$c" "$p" "$n"
                out=$("${REST_PIN[@]}" "${CMD[@]}" 2>/dev/null) || true
                [ -n "$(json_field "$out" ops_per_sec)" ] || die "dsm-client bench --redis failed: ${CMD[*]}"
                LSAMPLES[gen $op $setting ops]+="$(json_field "$out" ops_per_sec) "
                LSAMPLES[gen $op $setting p50]+="$(json_field "$out" p50_us) "
            done
        done
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    done
    local key
    for key in "${!LSAMPLES[@]}"; do
        # shellcheck disable=SC2086 # a space-separated list of numbers
        LRES[$key]=$(median ${LSAMPLES[$key]})
    done
}
# Sum of the numbers given as arguments.
total() { printf '%s\n' "$@" | awk '{s += $1} END {print s + 0}'; }

# WRITE with the slaves on disk against redis with an append-only file, fsync policy by policy:
# interval against everysec, always against always. Each run gets a fresh cluster (its slaves
# with new data dirs) or a fresh redis-server, so no run starts with another's log; the two
# systems alternate within each round. Errors are counted, not fatal: a slave the master drops
# for a slow fsync (its --ack-timeout-ms) is a finding.
declare -A PSAMPLES PRES
persist() {
    local round pair fsync aof setting out
    for round in $(seq "$REPEATS"); do
        for pair in interval:everysec always:always; do
            fsync=${pair%%:*}
            aof=${pair##*:}
            echo "bench.sh: on disk, round $round of $REPEATS: dsm --fsync $fsync, redis appendfsync $aof" >&2
            local -a saved_args=("${SLAVE_ARGS[@]}")
            local saved_data=${SLAVE_DATA:-0}
            SLAVE_DATA=1
            SLAVE_ARGS=(--fsync "$fsync")
            # shellcheck disable=SC2086 # BENCH_MASTER_ARGS is a list of flags
            start_dsm "$BIN" "p$round-$fsync" 3 ${BENCH_MASTER_ARGS:-}
            SLAVE_ARGS=("${saved_args[@]}")
            SLAVE_DATA=$saved_data
            for setting in 1x1 4x32; do
                if [ "$setting" = 1x1 ]; then dsm_cmd write 1 1 "$PERSIST_SERIAL_N"; else dsm_cmd write 4 32 "$PERSIST_PIPELINED_N"; fi
                CMD+=(--hist "$HIST/disk-dsm-$fsync-$setting-r$round.hist")
                # dsm-client exits non-zero when some requests failed; the JSON still says how many.
                out=$("${REST_PIN[@]}" "${CMD[@]}" 2>/dev/null) || true
                [ -n "$(json_field "$out" ops_per_sec)" ] || die "dsm bench failed: ${CMD[*]}"
                PSAMPLES[dsm $fsync $setting p50]+="$(json_field "$out" p50_us) "
                PSAMPLES[dsm $fsync $setting p99]+="$(json_field "$out" p99_us) "
                PSAMPLES[dsm $fsync $setting ops]+="$(json_field "$out" ops_per_sec) "
                PSAMPLES[dsm $fsync $setting errors]+="$(json_field "$out" errors) "
            done
            kill "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
            wait "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
            start_redis "p$round-redis-$aof" --appendonly yes --appendfsync "$aof"
            for setting in 1x1 4x32; do
                if [ "$setting" = 1x1 ]; then redis_set_cmd 1 1 "$PERSIST_SERIAL_N"; else redis_set_cmd 4 32 "$PERSIST_PIPELINED_N"; fi
                local file=$HIST/disk-redis-$fsync-$setting-r$round.txt rps q50 q99
                "${REST_PIN[@]}" "${CMD[@]}" >"$file" || die "redis-benchmark failed: ${CMD[*]}"
                out=$(redis_summary SET "$file")
                [ -n "$out" ] || die "redis-benchmark printed no SET summary; see $file"
                read -r rps q50 q99 <<<"$out"
                PSAMPLES[redis $fsync $setting p50]+="$q50 "
                PSAMPLES[redis $fsync $setting p99]+="$q99 "
                PSAMPLES[redis $fsync $setting ops]+="$rps "
            done
            kill "$REDIS_PID" 2>/dev/null || true
            wait "$REDIS_PID" 2>/dev/null || true
        done
    done
    local key
    for key in "${!PSAMPLES[@]}"; do
        # shellcheck disable=SC2086 # a space-separated list of numbers
        PRES[$key]=$(median ${PSAMPLES[$key]})
    done
}

# Set CMD to the redis-benchmark command line for SET alone: clients pipeline requests.
redis_set_cmd() {
    CMD=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$1" -P "$2" -n "$3" -d "$VALUE"
        -r "$KEYS" -t set)
}

# Count the master's write syscalls during one 4x32 WRITE run (strace -c on a fresh master).
strace_writes() {
    local n=$PIPELINED_N
    start_cluster strace strace -c -f -e trace=write,writev,sendto,sendmsg -o "$WORK/strace.txt"
    local tracer=${pids[-4]}
    dsm_cmd write 4 32 "$n"
    "${CMD[@]}" >"$WORK/strace-bench.json" || die "dsm bench under strace failed: ${CMD[*]}"
    # Stop the traced master (not strace) so strace prints its summary and exits.
    pkill -TERM -P "$tracer" 2>/dev/null || true
    wait "$tracer" 2>/dev/null || true
    local calls
    calls=$(awk '$NF ~ /^(write|writev|sendto|sendmsg)$/ {s += $4} END {print s + 0}' "$WORK/strace.txt")
    STRACE_CALLS=$calls
    STRACE_OPS=$n
    STRACE_SUMMARY=$(cat "$WORK/strace.txt")
    STRACE_BENCH=$(cat "$WORK/strace-bench.json")
}

# Print CMD with this run's addresses replaced by placeholders.
show_cmd() {
    local line="${CMD[*]}"
    line=${line//"$MASTER"/MASTER}
    line=${line//"127.0.0.1:$REDIS_PORT"/127.0.0.1:PORT}
    echo "${line//"-p $REDIS_PORT"/-p PORT}"
}

# BENCH_METRICS=1: fetch every dsm node's /metrics once a second, in the background, until the
# script ends; each fetch's HTTP status goes to $WORK/scrapes.txt.
start_scraper() {
    local -a addrs=()
    local f a
    for f in "$WORK"/main-master.out "$WORK"/main-slave-*.out; do
        a=$(sed -n 's/.* metrics=\([^ ]*\).*/\1/p' "$f")
        [ -n "$a" ] || die "no metrics= address in $f"
        addrs+=("$a")
    done
    SCRAPED=("${addrs[@]}")
    (
        while :; do
            for a in "${addrs[@]}"; do
                # One line per fetch: the status, 000 when none came within 2 s.
                curl -s -o /dev/null -w '%{http_code}\n' --max-time 2 "http://$a/metrics" >>"$WORK/scrapes.txt" || true
            done
            sleep 1
        done
    ) &
    SCRAPER_PID=$!
    pids+=("$SCRAPER_PID")
}

# The latency distributions as an SVG: a panel per op and setting, dsm against redis, each
# curve the runs of its cell pooled (dsm-latency-svg, latplot/). Writes $SVG.
draw_svg() {
    local m=$WORK/latency.manifest setting op test files rfiles
    {
        echo "title dsm vs redis on loopback: latency by percentile ($(date -u '+%Y-%m-%d'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
        echo "note Each curve pools the $REPEATS runs of its cell in $(basename "$OUT") (dsm-client bench --hist files; redis-benchmark's percentile tables)."
        echo "note x: percentile on a log scale of 1/(1-p), a series' last request at 1/(1-p) = n; y: latency, log scale."
        echo "note Setting CxP: C connections, P requests outstanding on each (dsm: closed loop per slot; redis-benchmark -P: P sent, all P awaited)."
        if [ "$METRICS" = 1 ]; then echo "note $PLACEMENT; dsm with --metrics, scraped every second."; else echo "note $PLACEMENT."; fi
        echo "columns 2"
        for op in ping write read; do
            case $op in ping) test=PING_MBULK ;; write) test=SET ;; read) test=GET ;; esac
            for setting in 1x1 4x32; do
                echo "panel ${op^^} / ${test%_MBULK}, $setting"
                files=$(printf '%s ' "$HIST"/dsm-$op-$setting-r*.hist)
                rfiles=$(printf '%s ' "$HIST"/redis-$setting-r*.txt)
                echo "series dsm hdr $files"
                echo "series redis redis:$test $rfiles"
            done
        done
        if [ "$PERSIST" = 1 ]; then
            local fsync aof
            for fsync in interval always; do
                aof=everysec
                [ "$fsync" = always ] && aof=always
                for setting in 1x1 4x32; do
                    echo "panel WRITE / SET on disk ($fsync / $aof), $setting"
                    echo "series dsm hdr $(printf '%s ' "$HIST"/disk-dsm-$fsync-$setting-r*.hist)"
                    echo "series redis redis:SET $(printf '%s ' "$HIST"/disk-redis-$fsync-$setting-r*.txt)"
                done
            done
        fi
    } >"$m"
    mkdir -p "$(dirname "$SVG")"
    "$BIN/dsm-latency-svg" "$m" "$SVG" || die "dsm-latency-svg failed on $m"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
show() { awk -v v="$1" 'BEGIN { if (v >= 1000) printf "%.0f", v; else printf "%.1f", v }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == "<=") ? v <= t : v >= t; print (ok ? "met" : "NOT met") }'; }

# The machine's own stalls: dsm-stall-probe on every usable CPU at once for PROBE_SECONDS, one
# summary per CPU ("CPU c: N gaps, T ms in all, longest L ms"), joined with "; ". A tail can be
# no better than these, and a server near its capacity turns each into a backlog
# (bench-results/open-loop-stalls-2026-12-04.md).
machine_stalls() {
    local c
    command -v taskset >/dev/null || { echo "not probed (no taskset: Debian package util-linux)"; return 0; }
    probe_stalls "$PROBE_SECONDS"
    for c in $PROBED_CPUS; do
        awk -v c="$c" 'NR == 1 { n = $2; total = $(NF - 3) } NR > 1 && $3 > max { max = $3 }
            END { printf "CPU %s: %d gaps, %.1f ms in all, longest %.1f ms\n", c, n, total / 1000, max / 1000 }' "$WORK/probe-$c.txt"
    done | paste -sd';' | sed 's/;/; /g'
}

main() {
    echo "bench.sh: building release binaries" >&2
    cargo build --release --bins -q
    need_packages
    set_placement "${BENCH_PIN:-1}"
    slave_setup
    echo "bench.sh: $PLACEMENT; slaves: $SLAVE_DESC" >&2
    local stalls="not probed (BENCH_PROBE_SECONDS=0)"
    if [ "$PROBE_SECONDS" != 0 ]; then
        echo "bench.sh: probing the machine's own stalls for $PROBE_SECONDS s" >&2
        stalls=$(machine_stalls)
    fi
    if [ "$METRICS" = 1 ]; then
        local -a saved=("${SLAVE_ARGS[@]}")
        SLAVE_ARGS+=(--metrics 127.0.0.1:0)
        # shellcheck disable=SC2086 # BENCH_MASTER_ARGS is a list of flags
        start_dsm "$BIN" main 3 ${BENCH_MASTER_ARGS:-} --metrics 127.0.0.1:0
        SLAVE_ARGS=("${saved[@]}")
        start_scraper
    else
        start_cluster main
    fi
    start_redis redis
    local load_before
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)

    echo "bench.sh: $REPEATS runs each; dsm master $MASTER, redis 127.0.0.1:$REDIS_PORT" >&2
    measure
    if [ "$OPEN" = 1 ]; then open_loop; fi
    if [ "$LARGE" = 1 ]; then large; fi
    if [ "$PERSIST" = 1 ]; then persist; fi
    if [ "${BENCH_STRACE:-0}" = 1 ]; then strace_writes; fi
    local load_after
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    local scrapes=""
    if [ "$METRICS" = 1 ]; then
        kill "$SCRAPER_PID" 2>/dev/null || true
        wait "$SCRAPER_PID" 2>/dev/null || true
        scrapes="$(grep -c '^200$' "$WORK/scrapes.txt" || true) answered 200, $(grep -vc '^200$' "$WORK/scrapes.txt" || true) not (000: no answer within curl's --max-time 2)"
    fi
    draw_svg

    local table
    table=$(
        echo "| op | setting | dsm p50 µs | dsm p99 µs | dsm ops/s | redis p50 µs | redis p99 µs | redis ops/s | p50 dsm/redis | ops/s dsm/redis |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        for setting in 1x1 4x32; do
            for op in ping write read; do
                local r="$op $setting"
                local rop=$op
                [ "$op" = write ] && rop=SET
                [ "$op" = read ] && rop=GET
                [ "$op" = ping ] && rop=PING
                echo "| ${op^^} / $rop | $setting | $(show "${RES[dsm $r p50]}") | $(show "${RES[dsm $r p99]}") | $(show "${RES[dsm $r ops]}") | $(show "${RES[redis $r p50]}") | $(show "${RES[redis $r p99]}") | $(show "${RES[redis $r ops]}") | $(ratio "${RES[dsm $r p50]}" "${RES[redis $r p50]}") | $(ratio "${RES[dsm $r ops]}" "${RES[redis $r ops]}") |"
            done
        done
    )
    local w_over_p w_set r_get w_ops r_ops
    w_over_p=$(ratio "${RES[dsm write 1x1 p50]}" "${RES[dsm ping 1x1 p50]}")
    w_set=$(ratio "${RES[dsm write 1x1 p50]}" "${RES[redis write 1x1 p50]}")
    r_get=$(ratio "${RES[dsm read 1x1 p50]}" "${RES[redis read 1x1 p50]}")
    w_ops=$(ratio "${RES[dsm write 4x32 ops]}" "${RES[redis write 4x32 ops]}")
    r_ops=$(ratio "${RES[dsm read 4x32 ops]}" "${RES[redis read 4x32 ops]}")
    local targets
    targets=$(
        echo "| target | measured | |"
        echo "|---|---:|---|"
        echo "| WRITE p50 / PING p50 at 1x1 ≤ 2.5 | $w_over_p | $(verdict "$w_over_p" "<=" 2.5) |"
        echo "| WRITE p50 / redis SET p50 at 1x1 ≤ 2 | $w_set | $(verdict "$w_set" "<=" 2) |"
        echo "| READ p50 / redis GET p50 at 1x1 ≤ 2 | $r_get | $(verdict "$r_get" "<=" 2) |"
        echo "| WRITE ops/s / redis SET ops/s at 4x32 ≥ 0.35 | $w_ops | $(verdict "$w_ops" ">=" 0.35) |"
        echo "| READ ops/s / redis GET ops/s at 4x32 ≥ 0.5 | $r_ops | $(verdict "$r_ops" ">=" 0.5) |"
    )
    local otable=""
    if [ "$OPEN" = 1 ]; then
        otable=$(
            echo "| op | offered ops/s | of max | dsm p50 µs | dsm p99 µs | dsm p99.9 µs | dsm ops/s | redis p50 µs | redis p99 µs | redis p99.9 µs | redis ops/s | p99 dsm/redis | ≤ 2 | errors dsm / redis (all runs) | bench CPU s dsm / redis |"
            echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
            for op in write read; do
                local rop=SET
                [ "$op" = read ] && rop=GET
                for frac in "${OPEN_FRACTIONS[@]}"; do
                    local k="$op $frac" r de re
                    r=$(ratio "${ORES[dsm $k p99]}" "${ORES[redis $k p99]}")
                    # shellcheck disable=SC2086 # lists of numbers
                    de=$(printf '%s\n' ${OSAMPLES[dsm $k errors]} | awk '{s += $1} END {print s + 0}')
                    # shellcheck disable=SC2086
                    re=$(printf '%s\n' ${OSAMPLES[redis $k errors]} | awk '{s += $1} END {print s + 0}')
                    echo "| ${op^^} / $rop | ${ORATE[$k]} | $frac% | $(show "${ORES[dsm $k p50]}") | $(show "${ORES[dsm $k p99]}") | $(show "${ORES[dsm $k p999]}") | $(show "${ORES[dsm $k ops]}") | $(show "${ORES[redis $k p50]}") | $(show "${ORES[redis $k p99]}") | $(show "${ORES[redis $k p999]}") | $(show "${ORES[redis $k ops]}") | $r | $(verdict "$r" "<=" 2) | $de / $re | ${ORES[dsm $k cpu]} / ${ORES[redis $k cpu]} |"
                done
            done
        )
        local frac op
        for op in write read; do
            for frac in "${OPEN_FRACTIONS[@]}"; do
                local r
                r=$(ratio "${ORES[dsm $op $frac p99]}" "${ORES[redis $op $frac p99]}")
                targets+=$'\n'"| open loop ${op^^} at $frac% of max: dsm p99 / redis p99 ≤ 2 (issue 22) | $r | $(verdict "$r" "<=" 2) |"
            done
        done
    fi
    local ltable=""
    if [ "$LARGE" = 1 ]; then
        ltable=$(
            echo "| op | setting | dsm p50 µs | dsm p99 µs | dsm ops/s | redis p50 µs | redis p99 µs | redis ops/s | ops/s dsm/redis | ≥ 0.8 | redis ops/s, same generator | p50 µs | ops/s dsm/redis, same generator | ≥ 0.8 | dsm errors | slaves dropped | slaves suspected |"
            echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|"
            for setting in 1x1 4x8; do
                for op in write read; do
                    local k="$op $setting" rop=SET r g
                    [ "$op" = read ] && rop=GET
                    r=$(ratio "${LRES[dsm $k ops]}" "${LRES[redis $k ops]}")
                    g=$(ratio "${LRES[dsm $k ops]}" "${LRES[gen $k ops]}")
                    # shellcheck disable=SC2086 # lists of numbers
                    echo "| ${op^^} / $rop | $setting | $(show "${LRES[dsm $k p50]}") | $(show "${LRES[dsm $k p99]}") | $(show "${LRES[dsm $k ops]}") | $(show "${LRES[redis $k p50]}") | $(show "${LRES[redis $k p99]}") | $(show "${LRES[redis $k ops]}") | $r | $(verdict "$r" ">=" 0.8) | $(show "${LRES[gen $k ops]}") | $(show "${LRES[gen $k p50]}") | $g | $(verdict "$g" ">=" 0.8) | $(total ${LSAMPLES[dsm $k errors]}) | $(total ${LSAMPLES[dsm $k dropped]}) | $(total ${LSAMPLES[dsm $k suspected]}) |"
                done
            done
        )
        local setting op
        for setting in 1x1 4x8; do
            for op in write read; do
                local k="$op $setting" rop=SET r g bad
                [ "$op" = read ] && rop=GET
                r=$(ratio "${LRES[dsm $k ops]}" "${LRES[redis $k ops]}")
                # shellcheck disable=SC2086 # lists of numbers
                bad=$(($(total ${LSAMPLES[dsm $k errors]}) + $(total ${LSAMPLES[dsm $k dropped]})))
                targets+=$'\n'"| 1 MiB ${op^^} ops/s / redis $rop at $setting ≥ 0.8 (issue 22) | $r | $(verdict "$r" ">=" 0.8) |"
                g=$(ratio "${LRES[dsm $k ops]}" "${LRES[gen $k ops]}")
                targets+=$'\n'"| 1 MiB ${op^^} ops/s / redis $rop at $setting, both through dsm-client bench, ≥ 0.8 (issue 22) | $g | $(verdict "$g" ">=" 0.8) |"
                targets+=$'\n'"| 1 MiB ${op^^} at $setting: errors + slaves dropped (all runs) = 0 (issue 22) | $bad | $(verdict "$bad" "<=" 0) |"
            done
        done
    fi
    local ptable="" always_ratio=""
    if [ "$PERSIST" = 1 ]; then
        always_ratio=$(ratio "${PRES[dsm always 4x32 ops]}" "${PRES[redis always 4x32 ops]}")
        ptable=$(
            echo "| dsm slaves | redis | setting | dsm p50 µs | dsm p99 µs | dsm ops/s | redis p50 µs | redis p99 µs | redis ops/s | p50 dsm/redis | ops/s dsm/redis | dsm errors (all runs) |"
            echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            for fsync in interval always; do
                local aof=everysec
                [ "$fsync" = always ] && aof=always
                for setting in 1x1 4x32; do
                    local r="$fsync $setting"
                    local errs
                    # shellcheck disable=SC2086 # a list of numbers
                    errs=$(printf '%s\n' ${PSAMPLES[dsm $r errors]} | awk '{s += $1} END {print s + 0}')
                    echo "| --fsync $fsync | appendfsync $aof | $setting | $(show "${PRES[dsm $r p50]}") | $(show "${PRES[dsm $r p99]}") | $(show "${PRES[dsm $r ops]}") | $(show "${PRES[redis $r p50]}") | $(show "${PRES[redis $r p99]}") | $(show "${PRES[redis $r ops]}") | $(ratio "${PRES[dsm $r p50]}" "${PRES[redis $r p50]}") | $(ratio "${PRES[dsm $r ops]}" "${PRES[redis $r ops]}") | $errs |"
                done
            done
        )
        targets+=$'\n'"| WRITE ops/s, slaves --fsync always / redis appendfsync always, at 4x32 ≥ 1 (issue 16) | $always_ratio | $(verdict "$always_ratio" ">=" 1) |"
    fi
    echo "$table"
    echo
    if [ -n "$otable" ]; then
        echo "$otable"
        echo
    fi
    if [ -n "$ltable" ]; then
        echo "$ltable"
        echo
    fi
    if [ -n "$ptable" ]; then
        echo "$ptable"
        echo
    fi
    echo "$targets"

    mkdir -p "$(dirname "$OUT")"
    {
        echo "# dsm vs redis on loopback"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':(exclude)bench-results' 2>/dev/null || echo ' (with uncommitted changes)')"
        echo "- nproc: $(nproc); CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
        echo "- kernel: $(uname -sr); $(redis-server --version | cut -d' ' -f1-3); $(rustc --version)"
        echo "- load average before / after: $load_before / $load_after (other work on the machine makes numbers noisy)"
        echo "- the machine's own stalls before the runs (dsm-stall-probe on each CPU at once, $PROBE_SECONDS s, gaps over 150 µs: time the CPU ran something else): $stalls"
        echo "- cluster: 1 master (R=2${BENCH_MASTER_ARGS:+, $BENCH_MASTER_ARGS}) + 3 slaves, all on 127.0.0.1; redis-server --save '' --appendonly no"
        echo "- slaves: $SLAVE_DESC"
        if [ "$METRICS" = 1 ]; then
            echo "- BENCH_METRICS=1: the master and the 3 slaves of the main cluster with --metrics 127.0.0.1:0, each /metrics fetched once a second by curl (where dsm-client runs) during the main table; fetches: $scrapes"
        fi
        echo "- placement (BENCH_PIN=${BENCH_PIN:-1}): $PLACEMENT; redis-server where the master is, redis-benchmark where dsm-client is"
        echo "- each cell is the median of $REPEATS runs; values $VALUE bytes, $KEYS keys;" \
            "$SERIAL_N requests per run at 1x1, $PIPELINED_N at 4x32"
        echo
        echo "$table"
        echo
        echo "Setting CxP: C connections, P requests outstanding on each. dsm latency runs from each"
        echo "request's send (closed loop: a slot is refilled as soon as its reply arrives);"
        echo "redis-benchmark -P sends P commands, waits for all P replies, then sends the next P."
        echo
        echo "The whole distributions, dsm against redis for each op and setting, HdrHistogram style"
        echo "(the runs of each cell pooled): [$(basename "$SVG")]($(basename "$SVG"))."
        echo
        if [ -n "$otable" ]; then
            echo "## Open loop: tails at a fixed offered rate (no coordinated omission)"
            echo
            echo "Request i is due at start + i/rate and its latency runs from that instant, also while"
            echo "it waits for one of the 4 x 32 slots, so a stall shows in the tail instead of pausing the"
            echo "load. The rates are 25/50/75% of the lower of dsm's and redis's closed-loop 4x32 medians"
            echo "for that op in the table above (the \"maximum\"); dsm and redis get the same rate, both"
            echo "driven by \`dsm-client bench\` (redis through \`--redis\`: the same loop, schedule, keys, value"
            echo "checks and histogram). ${OPEN_SECONDS} s per run, each cell the median of $REPEATS runs."
            echo "The generator sends the requests due by now in one batch at most every 250 µs (runs of"
            echo "about a batch's requests to one connection), so a request can leave up to ~0.3 ms after"
            echo "its due time while a slot is free, and that is in its latency. \"bench CPU s\": the"
            echo "generator's own user + system CPU seconds per run (median), beside the run's ${OPEN_SECONDS} s."
            echo
            echo "$otable"
            echo
        fi
        if [ -n "$ltable" ]; then
            echo "## 1 MiB values (issue 22, item 1)"
            echo
            echo "Values of $LARGE_VALUE bytes, $LARGE_KEYS keys; $LARGE_SERIAL_N requests per 1x1 run, $LARGE_PIPELINED_N per 4x8"
            echo "run. Each round a fresh dsm cluster (its master at --log-level info) runs WRITE then READ at"
            echo "1x1, then at 4x8 (READ writes its keys first, untimed), then a fresh redis-server runs"
            echo "redis-benchmark -t set,get at each setting, then the same dsm-client bench runs as dsm's with"
            echo "--redis (\"same generator\": the same loop, value generation and checks, clock); each cell"
            echo "the median of $REPEATS rounds. The two Redis columns differ by what the generator costs: at"
            echo "1 MiB dsm-client generates each WRITE's value and checks each READ's, inside the request's"
            echo "latency, and redis-benchmark sends one fixed payload and checks nothing. Errors,"
            echo "slaves dropped (the master's \"slave '...' dropped:\" lines) and slaves suspected (late but"
            echo "still talking: \"is slow\") are totals over all rounds."
            echo
            echo "$ltable"
            echo
        fi
        if [ -n "$ptable" ]; then
            echo "## WRITE on disk: slaves with --fsync against redis with appendonly yes"
            echo
            echo "Slaves with --data-dir (in the work folder, on $(df -T "$WORK" | awk 'NR == 2 {print $2}')) and --fsync interval"
            echo "(1000 ms) or always; redis-server --appendonly yes --appendfsync everysec or always, its"
            echo "file in the same folder. Each cell the median of $REPEATS runs, each on a fresh cluster or"
            echo "redis-server, the two alternating within each round; $PERSIST_SERIAL_N requests per 1x1 run,"
            echo "$PERSIST_PIPELINED_N per 4x32 run. R=2: every dsm write is synced by two slaves on the same disk."
            echo
            echo "$ptable"
            echo
        fi
        echo "## Targets"
        echo
        echo "$targets"
        if [ -n "${STRACE_CALLS:-}" ]; then
            echo
            echo "## Master write syscalls (BENCH_STRACE=1)"
            echo
            echo "One 4x32 WRITE run of $STRACE_OPS requests on a fresh master under"
            echo "\`strace -c -f -e trace=write,writev,sendto,sendmsg\`: $STRACE_CALLS calls,"
            echo "$(ratio "$STRACE_CALLS" "$STRACE_OPS") master write syscalls per client op (replies to the"
            echo "client and STOREs to 2 slaves together; includes HELLO replies and slave PINGs)."
            echo "Tracing slows the master, so each loop turn gathers more requests than at full"
            echo "speed: read this as a lower bound on the untraced rate."
            echo "Bench under strace (slowed by tracing): \`$STRACE_BENCH\`"
            echo
            echo '```'
            echo "$STRACE_SUMMARY"
            echo '```'
        fi
        echo
        echo "## Commands"
        echo
        echo '```'
        echo "cargo build --release --bins"
        if [ "$PROBE_SECONDS" != 0 ]; then
            echo "taskset -c CPU target/release/dsm-stall-probe $PROBE_SECONDS 150   # on every CPU at once, before the runs"
        fi
        if [ "${#MASTER_PIN[@]}" -gt 0 ]; then
            echo "# pinned: dsm-master and redis-server run under \`${MASTER_PIN[*]}\`, everything else under \`${REST_PIN[*]}\`"
        fi
        echo "dsm-master --listen 127.0.0.1:0 --heartbeat 127.0.0.1:0 --replicas 2 --discover-ms 0 --log-level warn"
        echo "dsm-slave --master MASTER --id main-slave-{1,2,3} --log-level warn${SLAVE_DATA:+ --data-dir TMPDIR/main-slave-N.data}${SLAVE_ARGS[*]:+ ${SLAVE_ARGS[*]}}"
        echo "redis-server --bind 127.0.0.1 --port PORT --save '' --appendonly no --dir TMPDIR"
        if [ "$METRICS" = 1 ]; then
            echo "# BENCH_METRICS=1: the master and each slave also with --metrics 127.0.0.1:0, and once a second for each"
            echo "curl -s -o /dev/null --max-time 2 http://METRICS_ADDR/metrics"
        fi
        for op in ping write read; do
            dsm_cmd "$op" 1 1 "$SERIAL_N"
            CMD+=(--hist "TMPDIR/dsm-$op-1x1-rN.hist")
            show_cmd
            dsm_cmd "$op" 4 32 "$PIPELINED_N"
            CMD+=(--hist "TMPDIR/dsm-$op-4x32-rN.hist")
            show_cmd
        done
        redis_cmd 1 1 "$SERIAL_N"
        show_cmd
        redis_cmd 4 32 "$PIPELINED_N"
        show_cmd
        echo "# the SVG: a manifest naming every run's file (scripts/bench.sh, draw_svg), then"
        echo "target/release/dsm-latency-svg TMPDIR/latency.manifest $SVG"
        if [ "$OPEN" = 1 ]; then
            echo "# open loop, RATE one of: $(for op in write read; do for f in "${OPEN_FRACTIONS[@]}"; do printf '%s ' "${ORATE[$op $f]}"; done; done)(requests = RATE x $OPEN_SECONDS)"
            for op in write read; do
                open_cmd dsm "$op" RATE
                show_cmd | sed 's/--requests [0-9]*/--requests RATEx'"$OPEN_SECONDS"'/'
                open_cmd redis "$op" RATE
                show_cmd | sed 's/--requests [0-9]*/--requests RATEx'"$OPEN_SECONDS"'/'
            done
        fi
        if [ "$LARGE" = 1 ]; then
            echo "# 1 MiB values: a fresh cluster per round (master --log-level info), then"
            for op in write read; do
                large_cmd "$op" 1 1 "$LARGE_SERIAL_N"
                show_cmd
                large_cmd "$op" 4 8 "$LARGE_PIPELINED_N"
                show_cmd
            done
            large_redis_cmd 1 1 "$LARGE_SERIAL_N"
            show_cmd
            large_redis_cmd 4 8 "$LARGE_PIPELINED_N"
            show_cmd
            for op in write read; do
                large_gen_cmd "$op" 1 1 "$LARGE_SERIAL_N"
                show_cmd
                large_gen_cmd "$op" 4 8 "$LARGE_PIPELINED_N"
                show_cmd
            done
        fi
        if [ "$PERSIST" = 1 ]; then
            echo "# on disk: slaves with --data-dir TMPDIR/p-slave-N.data --fsync interval|always, and"
            echo "redis-server --bind 127.0.0.1 --port PORT --save '' --appendonly yes --appendfsync everysec|always --dir TMPDIR"
            dsm_cmd write 1 1 "$PERSIST_SERIAL_N"
            show_cmd
            dsm_cmd write 4 32 "$PERSIST_PIPELINED_N"
            show_cmd
            redis_set_cmd 1 1 "$PERSIST_SERIAL_N"
            show_cmd
            redis_set_cmd 4 32 "$PERSIST_PIPELINED_N"
            show_cmd
        fi
        echo '```'
    } >"$OUT"
    echo "bench.sh: results written to $OUT" >&2
}

main "$@"
