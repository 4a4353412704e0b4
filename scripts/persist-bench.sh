#!/usr/bin/env bash
# The cost and the figures of slave persistence, in one run of release binaries:
#
#  1. WRITE throughput and latency with the slaves in memory only and with --fsync never,
#     interval and always, at 1 connection x pipeline 1 and 4 x 32 (a master, R=2, 3 slaves;
#     64-byte values, 1000 keys), and always with R=1 and one slave. The modes alternate within
#     each round, so load from other work on the machine falls on all alike; medians of
#     PB_ROUNDS rounds.
#  2. Compaction under load: 4 x 32 WRITEs overwriting PB_COMPACT_KEYS keys (16 B, 64 B) that
#     were each written once before, so every slave's log passes twice its live size in the
#     middle of the run; with --compact-min-bytes 1M (it compacts while the bench runs) and
#     with 1T (it never does), alternating; p50/p99/p99.9 and ops/s, medians.
#  3. Restart of a slave holding PB_KEYS keys (16 B keys, 64 B values; a master with R=1 and
#     that one slave): kill -9, start again, and time the replay (the slave's own log line),
#     the ready line (registered), and the first READ served; for the log as written (every
#     key twice) and compacted. Disk bytes per key after compaction.
#
# Results: a table on stdout and in PB_OUT (default bench-results/persist-latest.md).
#
# Environment: PB_ROUNDS=5, PB_SERIAL=5000 and PB_PIPELINED=200000 requests per run,
# PB_COMPACT_KEYS=300000, PB_KEYS=1000000, PB_RESTARTS=5, PB_PIN=1 (placement as make bench),
# PB_SKIP="" (any of: modes compaction restart).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${PB_ROUNDS:-5}
SERIAL_N=${PB_SERIAL:-5000}
PIPELINED_N=${PB_PIPELINED:-200000}
COMPACT_KEYS=${PB_COMPACT_KEYS:-300000}
KEYS=${PB_KEYS:-1000000}
RESTARTS=${PB_RESTARTS:-5}
OUT=${PB_OUT:-bench-results/persist-latest.md}
SKIP=${PB_SKIP:-}
BIN=target/release
READY_TIMEOUT_S=60

PROG=persist-bench
# shellcheck source=scripts/common.sh
. scripts/common.sh

json_field() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m=int((NR+1)/2); if (NR%2) print v[m]; else print (v[m]+v[m+1])/2}'; }
show() { awk -v v="$1" 'BEGIN { if (v >= 1000) printf "%.0f", v; else printf "%.1f", v }'; }
now_ms() { date +%s%3N; }

# Stop the cluster start_dsm started last.
stop_cluster() {
    kill "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
    wait "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
}

# bench OP CLIENTS PIPELINE REQUESTS KEYS [more dsm-client bench flags]: the JSON line.
bench() {
    local op=$1 c=$2 p=$3 n=$4 k=$5
    shift 5
    "${REST_PIN[@]}" "$BIN/dsm-client" --master "$MASTER" bench --op "$op" --clients "$c" --pipeline "$p" \
        --requests "$n" --keys "$k" --value-size 64 --json "$@" 2>/dev/null || true
}

errors() { # key: the errors of every run, summed
    # shellcheck disable=SC2086 # a list of numbers
    printf '%s\n' ${S[$1 errors]} | awk '{s += $1} END {print s + 0}'
}

declare -A S # samples: "section name metric" -> space-separated numbers
declare -A DROPS # mode -> slaves the master dropped in each round

record() { # key json
    local key=$1 js=$2
    [ -n "$js" ] || die "no result from the bench ($key)"
    # Errors are counted, not fatal: a slave the master dropped (an fsync slower than its
    # --ack-timeout-ms, on a noisy disk) is a finding.
    S[$key errors]+="$(json_field "$js" errors) "
    S[$key ops]+="$(json_field "$js" ops_per_sec) "
    S[$key p50]+="$(json_field "$js" p50_us) "
    S[$key p99]+="$(json_field "$js" p99_us) "
    S[$key p999]+="$(json_field "$js" p999_us) "
}

med() { # key metric
    # shellcheck disable=SC2086 # a list of numbers
    median ${S[$1 $2]}
}

modes() {
    local round mode
    for round in $(seq "$ROUNDS"); do
        for mode in memory never interval always; do
            echo "persist-bench: modes, round $round of $ROUNDS: $mode" >&2
            SLAVE_ARGS=()
            SLAVE_DATA=0
            if [ "$mode" != memory ]; then
                SLAVE_DATA=1
                SLAVE_ARGS=(--fsync "$mode")
            fi
            start_dsm "$BIN" "m$round-$mode" 3
            record "mode $mode 1x1" "$(bench write 1 1 "$SERIAL_N" 1000)"
            record "mode $mode 4x32" "$(bench write 4 32 "$PIPELINED_N" 1000)"
            stop_cluster
            DROPS[$mode]+="$(grep -c "dropped:" "$WORK/m$round-$mode-master.log" || true) "
            grep -h "dropped:" "$WORK/m$round-$mode-master.log" | head -3 >>"$WORK/drops.txt" || true
        done
        # One fsync per write instead of R=2 on one disk: a master with R=1 and one slave.
        echo "persist-bench: modes, round $round of $ROUNDS: always, R=1, one slave" >&2
        SLAVE_DATA=1
        SLAVE_ARGS=(--fsync always)
        MASTER_REPLICAS=1 start_dsm "$BIN" "m$round-always-r1" 1
        record "mode always-r1 1x1" "$(bench write 1 1 "$SERIAL_N" 1000)"
        record "mode always-r1 4x32" "$(bench write 4 32 "$PIPELINED_N" 1000)"
        stop_cluster
    done
}

compaction() {
    local round variant min
    for round in $(seq "$ROUNDS"); do
        for variant in off on; do
            echo "persist-bench: compaction under load, round $round of $ROUNDS: $variant" >&2
            min=1T
            [ "$variant" = on ] && min=1M
            SLAVE_DATA=1
            SLAVE_ARGS=(--fsync interval --compact-min-bytes "$min")
            # The compaction lines are at level info.
            SLAVE_LOG_LEVEL=info start_dsm "$BIN" "c$round-$variant" 3
            bench write 4 32 "$COMPACT_KEYS" "$COMPACT_KEYS" --key-size 16 >/dev/null
            record "compact $variant" "$(bench write 4 32 $((2 * COMPACT_KEYS)) "$COMPACT_KEYS" --key-size 16)"
            S[compact $variant runs]+="$(cat "$WORK"/c"$round-$variant"-slave-*.log | grep -c 'compacted .* bytes per key' || true) "
            COMPACT_SAMPLE=$(grep -h 'compacted .* bytes per key' "$WORK"/c"$round-$variant"-slave-*.log | tail -1 || true)
            stop_cluster
        done
    done
}

# Start the restart test's slave (id r-slave-1, data in $WORK/r.data) with more FLAGS; sets
# SLAVE_PID and START_MS.
start_slave() {
    : >"$WORK/r-slave.out"
    START_MS=$(now_ms)
    "${REST_PIN[@]}" "$BIN/dsm-slave" --master "$MASTER" --id r-slave-1 --data-dir "$WORK/r.data" \
        --fsync never "$@" >"$WORK/r-slave.out" 2>>"$WORK/r-slave.log" &
    SLAVE_PID=$!
    pids+=("$SLAVE_PID")
}

# Kill -9 the slave, start it again with FLAGS, and sample: replay ms (its log line), ms to
# the ready line, ms to the first READ served.
restart_once() { # label flags...
    local label=$1
    shift
    kill -9 "$SLAVE_PID"
    wait "$SLAVE_PID" 2>/dev/null || true
    local before
    before=$(grep -c "loaded .* keys from" "$WORK/r-slave.log" || true)
    start_slave "$@"
    wait_for_line "$WORK/r-slave.out" "dsm-slave ready" "$SLAVE_PID" "dsm-slave (restart)"
    local ready=$(($(now_ms) - START_MS))
    until "$BIN/dsm-client" --master "$MASTER" read bench:0000000007 >/dev/null 2>&1; do
        [ $(($(now_ms) - START_MS)) -lt 60000 ] || die "no READ served 60 s after the restart"
    done
    local served=$(($(now_ms) - START_MS))
    local line
    line=$(grep "loaded .* keys from" "$WORK/r-slave.log" | sed -n "$((before + 1))p")
    S[restart $label replay]+="$(sed -n 's/.* in \([0-9]*\) ms;.*/\1/p' <<<"$line") "
    S[restart $label ready]+="$ready "
    S[restart $label served]+="$served "
    RESTART_LINE[$label]=$line
}

declare -A RESTART_LINE

restart() {
    echo "persist-bench: restart with $KEYS keys" >&2
    "${MASTER_PIN[@]}" "$BIN/dsm-master" --listen 127.0.0.1:0 --heartbeat 127.0.0.1:0 --replicas 1 \
        --log-level warn >"$WORK/r-master.out" 2>"$WORK/r-master.log" &
    MASTER_PID=$!
    pids+=("$MASTER_PID")
    wait_for_line "$WORK/r-master.out" "dsm-master ready" "$MASTER_PID" "dsm-master (restart)"
    MASTER=$(sed -n 's/^dsm-master ready: listen=\([^ ]*\) .*/\1/p' "$WORK/r-master.out")
    start_slave --compact-min-bytes 1T
    wait_for_line "$WORK/r-slave.out" "dsm-slave ready" "$SLAVE_PID" "dsm-slave (restart)"
    # Every key twice and a tenth of them thrice: the log holds over twice what it must.
    local pass
    for pass in 1 2; do
        bench write 4 32 "$KEYS" "$KEYS" --key-size 16 >/dev/null
    done
    bench write 4 32 $((KEYS / 10)) "$KEYS" --key-size 16 >/dev/null
    local i
    for i in $(seq "$RESTARTS"); do restart_once written --compact-min-bytes 1T; done
    LOG_WRITTEN=$(stat -c %s "$WORK/r.data/slave.log")
    # Now it compacts at start (the log is over twice its live size).
    restart_once compacting --compact-min-bytes 1M
    local deadline=$((SECONDS + 120))
    until grep -q "compacted .* bytes per key" "$WORK/r-slave.log"; do
        [ "$SECONDS" -lt "$deadline" ] || die "no compaction after 120 s"
        sleep 0.2
    done
    COMPACT_LINE=$(grep "compacted .* bytes per key" "$WORK/r-slave.log" | tail -1)
    LOG_COMPACTED=$(stat -c %s "$WORK/r.data/slave.log")
    for i in $(seq "$RESTARTS"); do restart_once compacted --compact-min-bytes 1M; done
    SLAVE_RSS_KB=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$SLAVE_PID/status")
}

main() {
    echo "persist-bench: building release binaries" >&2
    cargo build --release --bins -q
    set_placement "${PB_PIN:-1}"
    local load_before
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    [[ $SKIP == *modes* ]] || modes
    [[ $SKIP == *compaction* ]] || compaction
    [[ $SKIP == *restart* ]] || restart
    local load_after
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)

    local report
    report=$(
        echo "# Slave persistence: cost and figures"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':(exclude)bench-results' 2>/dev/null || echo ' (with uncommitted changes)')"
        echo "- nproc: $(nproc); CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); kernel $(uname -sr)"
        echo "- data dirs in $(dirname "$WORK") on $(df -T "$WORK" | awk 'NR == 2 {print $2 " (" $1 ")"}')"
        echo "- load average before / after: $load_before / $load_after"
        echo "- placement (PB_PIN=${PB_PIN:-1}): $PLACEMENT"
        echo "- made by \`scripts/persist-bench.sh\`; every cell the median of the runs named"
        if [[ $SKIP != *modes* ]]; then
            echo
            echo "## WRITE by --fsync ($ROUNDS alternating rounds; R=2, 3 slaves, 1000 keys, 64 B values)"
            echo
            echo "| slaves | setting | ops/s | p50 µs | p99 µs | p99.9 µs | ops/s vs memory | errors (all runs) |"
            echo "|---|---|---:|---:|---:|---:|---:|---:|"
            local mode s base
            for s in 1x1 4x32; do
                base=$(med "mode memory $s" ops)
                for mode in memory never interval always always-r1; do
                    local k="mode $mode $s"
                    echo "| $mode | $s | $(show "$(med "$k" ops)") | $(show "$(med "$k" p50)") | $(show "$(med "$k" p99)") | $(show "$(med "$k" p999)") | $(awk -v a="$(med "$k" ops)" -v b="$base" 'BEGIN {printf "%.2f", a / b}') | $(errors "$k") |"
                done
            done
            echo
            echo "$SERIAL_N requests per 1x1 run, $PIPELINED_N per 4x32 run; \`memory\`: no --data-dir;"
            echo "\`always-r1\`: --fsync always with a master at R=1 and a single slave (one fsync per write, as"
            echo "Redis's appendfsync always, instead of two on the same disk)."
            echo "Slaves the master dropped (ACK timeout, 200 ms), per round: memory ${DROPS[memory]}; never ${DROPS[never]};"
            echo "interval ${DROPS[interval]}; always ${DROPS[always]}."
            if [ -s "$WORK/drops.txt" ]; then
                echo
                echo '```'
                sed 's/^[^ ]* //' "$WORK/drops.txt" | head -6
                echo '```'
            fi
        fi
        if [[ $SKIP != *compaction* ]]; then
            echo
            echo "## 4x32 WRITE with and without a compaction under way ($ROUNDS alternating rounds)"
            echo
            echo "$COMPACT_KEYS keys of 16 B written once, then $((2 * COMPACT_KEYS)) WRITEs over them measured;"
            echo "slaves with --fsync interval and --compact-min-bytes 1M (on) or 1T (off)."
            echo
            echo "| compaction | ops/s | p50 µs | p99 µs | p99.9 µs | compactions finished per run (3 slaves) | errors |"
            echo "|---|---:|---:|---:|---:|---|---:|"
            local v
            for v in off on; do
                echo "| $v | $(show "$(med "compact $v" ops)") | $(show "$(med "compact $v" p50)") | $(show "$(med "compact $v" p99)") | $(show "$(med "compact $v" p999)") | ${S[compact $v runs]} | $(errors "compact $v") |"
            done
            echo
            echo "A compaction as one slave logged it: \`${COMPACT_SAMPLE#*Z }\`"
        fi
        if [[ $SKIP != *restart* ]]; then
            echo
            echo "## Restart of a slave holding $KEYS keys (16 B keys, 64 B values)"
            echo
            echo "kill -9, then a new process on the same data dir; times from its start, medians of"
            echo "$RESTARTS restarts (compacting: one restart, which compacts right after loading)."
            echo
            echo "| log | replay ms (slave's log line) | to ready line (registered) ms | to first READ served ms |"
            echo "|---|---:|---:|---:|"
            local l
            for l in written compacting compacted; do
                echo "| $l | $(med "restart $l" replay) | $(med "restart $l" ready) | $(med "restart $l" served) |"
            done
            echo
            echo "- log as written (every key twice, a tenth thrice): $LOG_WRITTEN bytes, $(awk -v a="$LOG_WRITTEN" -v n="$KEYS" 'BEGIN {printf "%.1f", a / n}') bytes per key"
            echo "- after compaction: $LOG_COMPACTED bytes, $(awk -v a="$LOG_COMPACTED" -v n="$KEYS" 'BEGIN {printf "%.1f", a / n}') bytes per key (16 B key + 64 B value + 21 B of record)"
            echo "- the slave's line: \`${COMPACT_LINE#*Z }\`"
            echo "- replay lines: \`${RESTART_LINE[written]#*Z }\` / \`${RESTART_LINE[compacted]#*Z }\`"
            echo "- slave VmRSS after the last restart: $((SLAVE_RSS_KB / 1024)) MiB"
        fi
    )
    echo "$report"
    mkdir -p "$(dirname "$OUT")"
    echo "$report" >"$OUT"
    echo "persist-bench: written to $OUT" >&2
}

main "$@"
