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
#  4. Rejoin after a stop: a master with R=2 and 3 slaves holding PB_KEYS keys; one slave is
#     stopped (SIGSTOP) for PB_STOP_MS, a few WRITEs meanwhile make the master drop it (ACK
#     timeout), then SIGCONT: the time until the master's log says it is back in service (the
#     same process: its copies count again, so reads go to it), a STATUS right after, and
#     `copies_made` at the end (no copy should be made: the same process is back with its data).
#
# With redis-server installed (PB_REDIS=1), part 1 also runs redis-server --appendonly yes
# with --appendfsync everysec and always in each round (redis-benchmark -t set, the same
# settings), for the comparison issue 16 asks for.
#
# PB_BINS="DIR1 DIR2 ..." (default target/release, which is built) runs parts 1 and 3 with each
# directory's binaries in turn, alternating within each round (before/after comparisons);
# rows are labelled with the directory's last component. Parts 2 and 4 use the first.
#
# Results: a table on stdout and in PB_OUT (default bench-results/persist-latest.md).
#
# Environment: PB_ROUNDS=5, PB_SERIAL=5000 and PB_PIPELINED=200000 requests per run,
# PB_MODES="memory never interval always always-r1", PB_COMPACT_KEYS=300000, PB_KEYS=1000000,
# PB_RESTARTS=5, PB_REJOINS=5, PB_STOP_MS=2000, PB_PIN=1 (placement as make bench), PB_REDIS=1,
# PB_SKIP="" (any of: modes compaction restart rejoin).
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
MODES=${PB_MODES:-memory never interval always always-r1}
REJOINS=${PB_REJOINS:-5}
STOP_MS=${PB_STOP_MS:-2000}
# shellcheck disable=SC2206 # a list of directories
BINS=(${PB_BINS:-target/release})
BIN=${BINS[0]}
REDIS=${PB_REDIS:-1}
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || REDIS=0
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

# The row label of MODE run with the binaries in directory BIN: the mode alone when there is
# one directory, else mode@LAST-COMPONENT.
label() { # mode bin
    if [ "${#BINS[@]}" -gt 1 ]; then echo "$1@$(basename "$2")"; else echo "$1"; fi
}

# The rows of part 1, in table order.
ROWS=()

modes() {
    local round mode bin tag l n
    for mode in $MODES; do
        for bin in "${BINS[@]}"; do ROWS+=("$(label "$mode" "$bin")"); done
    done
    if [ "$REDIS" = 1 ]; then ROWS+=(redis-everysec redis-always); fi
    for round in $(seq "$ROUNDS"); do
        for mode in $MODES; do
            for bin in "${BINS[@]}"; do
                l=$(label "$mode" "$bin")
                echo "persist-bench: modes, round $round of $ROUNDS: $l" >&2
                SLAVE_ARGS=()
                SLAVE_DATA=0
                n=3
                local replicas=2
                case $mode in
                    memory) ;;
                    # One fsync per write instead of R=2 on one disk: R=1 and one slave.
                    always-r1) SLAVE_DATA=1 SLAVE_ARGS=(--fsync always) n=1 replicas=1 ;;
                    *) SLAVE_DATA=1 SLAVE_ARGS=(--fsync "$mode") ;;
                esac
                tag="m$round-${l//[@\/]/-}"
                MASTER_REPLICAS=$replicas start_dsm "$bin" "$tag" "$n"
                record "mode $l 1x1" "$(bench write 1 1 "$SERIAL_N" 1000)"
                record "mode $l 4x32" "$(bench write 4 32 "$PIPELINED_N" 1000)"
                stop_cluster
                DROPS[$l]+="$(grep -c "dropped:" "$WORK/$tag-master.log" || true) "
                grep -h "dropped:" "$WORK/$tag-master.log" | head -3 >>"$WORK/drops.txt" || true
            done
        done
        if [ "$REDIS" = 1 ]; then
            local aof out
            for aof in everysec always; do
                echo "persist-bench: modes, round $round of $ROUNDS: redis appendfsync $aof" >&2
                start_redis "redis-$round-$aof" --appendonly yes --appendfsync "$aof"
                record "mode redis-$aof 1x1" "$(redis_set 1 1 "$SERIAL_N")"
                record "mode redis-$aof 4x32" "$(redis_set 4 32 "$PIPELINED_N")"
                kill "$REDIS_PID" 2>/dev/null || true
                wait "$REDIS_PID" 2>/dev/null || true
            done
        fi
    done
}

# redis-benchmark SET at CLIENTS x PIPELINE, REQUESTS, as the JSON fields record() reads.
redis_set() { # clients pipeline requests
    local csv _t rps _avg _min q50 _q95 q99 _max
    csv=$("${REST_PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$1" -P "$2" -n "$3" -d 64 \
        -r 1000 -t set --csv | grep '^"SET"') || die "redis-benchmark failed"
    IFS=, read -r _t rps _avg _min q50 _q95 q99 _max <<<"${csv//\"/}"
    awk -v r="$rps" -v a="$q50" -v b="$q99" 'BEGIN {printf "{\"errors\":0,\"ops_per_sec\":%s,\"p50_us\":%s,\"p99_us\":%s,\"p999_us\":0}\n", r, a * 1000, b * 1000}'
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

# Start the restart test's slave (id r-slave-1, data in $WORK/r.data) with more FLAGS, from the
# binaries in SLAVE_BIN (default BIN); sets SLAVE_PID and START_MS.
start_slave() {
    : >"$WORK/r-slave.out"
    START_MS=$(now_ms)
    "${REST_PIN[@]}" "${SLAVE_BIN:-$BIN}/dsm-slave" --master "$MASTER" --id r-slave-1 --data-dir "$WORK/r.data" \
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
    "${MASTER_PIN[@]}" "$BIN/dsm-master" --listen 127.0.0.1:0 --heartbeat 127.0.0.1:0 --replicas 1 --discover-ms 0 \
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
    local i bin
    for i in $(seq "$RESTARTS"); do
        for bin in "${BINS[@]}"; do
            SLAVE_BIN=$bin restart_once "$(label written "$bin")" --compact-min-bytes 1T
        done
    done
    SLAVE_BIN=$BIN
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
    for i in $(seq "$RESTARTS"); do
        for bin in "${BINS[@]}"; do
            SLAVE_BIN=$bin restart_once "$(label compacted "$bin")" --compact-min-bytes 1M
        done
    done
    SLAVE_BIN=$BIN
    SLAVE_RSS_KB=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$SLAVE_PID/status")
}

# The field of slave ID in `status --json` (live or keys).
slave_field() { # json id field
    sed -n "s/.*{\"id\":\"$2\",[^}]*\"$3\":\([a-z0-9]*\)[,}].*/\1/p" <<<"$1"
}

# The epoch ms of the Nth line (1-based) of FILE matching PATTERN: the line's own timestamp.
line_ms() { # file pattern n
    local ts
    ts=$(grep "$2" "$1" | sed -n "$3p" | cut -d' ' -f1)
    [ -n "$ts" ] || return 1
    date -d "$ts" +%s%3N
}

rejoin() {
    echo "persist-bench: rejoin after a ${STOP_MS} ms stop, $KEYS keys" >&2
    SLAVE_DATA=1
    SLAVE_ARGS=(--fsync interval)
    MASTER_LOG_LEVEL=info SLAVE_LOG_LEVEL=info start_dsm "$BIN" j 3
    bench write 4 32 "$KEYS" "$KEYS" --key-size 16 >/dev/null
    local victim=${SLAVE_PIDS[0]} id=j-slave-1 log=$WORK/j-master.log i st t0 cont back drops backs
    # A slave dropped while the keys were written (a stall on a busy machine) could leave keys
    # short of copies: let re-replication (after --repair-after-ms, 10 s) make those first.
    sleep 11
    st=$("$BIN/dsm-client" --master "$MASTER" status --json)
    REJOIN_COPIES_BEFORE=$(sed -n 's/.*"copies_made":\([0-9]*\).*/\1/p' <<<"$st")
    for i in $(seq "$REJOINS"); do
        st=$("$BIN/dsm-client" --master "$MASTER" status --json)
        S[rejoin keys]+="$(slave_field "$st" "$id" keys) "
        drops=$(grep -c "'$id' dropped:" "$log" || true)
        backs=$(grep -c "'$id' is back from" "$log" || true)
        kill -STOP "$victim"
        t0=$(now_ms)
        # A few writes: those placed on the stopped slave get no ACK, and the master drops it.
        bench write 1 1 50 "$KEYS" --key-size 16 >/dev/null
        until [ "$(grep -c "'$id' dropped:" "$log" || true)" -gt "$drops" ]; do
            [ $(($(now_ms) - t0)) -lt "$STOP_MS" ] || die "the master did not drop the stopped slave within $STOP_MS ms"
            sleep 0.01
        done
        S[rejoin dropped]+="$(($(line_ms "$log" "'$id' dropped:" $((drops + 1))) - t0)) "
        sleep "$(awk -v ms="$((STOP_MS - ($(now_ms) - t0)))" 'BEGIN {print (ms > 0 ? ms / 1000 : 0)}')"
        kill -CONT "$victim"
        cont=$(now_ms)
        until [ "$(grep -c "'$id' is back from" "$log" || true)" -gt "$backs" ]; do
            [ $(($(now_ms) - cont)) -lt 30000 ] || die "the slave was not back 30 s after SIGCONT"
            sleep 0.01
        done
        back=$(line_ms "$log" "'$id' is back from" $((backs + 1)))
        S[rejoin back]+="$((back - cont)) "
        # Its copies count again: a STATUS right after lists it live with its keys.
        st=$("$BIN/dsm-client" --master "$MASTER" status --json)
        S[rejoin status]+="$(($(now_ms) - cont)):$(slave_field "$st" "$id" live):$(slave_field "$st" "$id" keys) "
        sleep 1
    done
    # Past --repair-after-ms (10 s) since the first stop: any copy would have been made.
    sleep 8
    st=$("$BIN/dsm-client" --master "$MASTER" status --json)
    REJOIN_COPIES=$(sed -n 's/.*"copies_made":\([0-9]*\).*/\1/p' <<<"$st")
    REJOIN_UNDER=$(sed -n 's/.*"under_replicated":\([0-9]*\).*/\1/p' <<<"$st")
    REJOIN_LINES=$(grep -h "is back from\|dropped:\|re-replication" "$log" | tail -4 | sed 's/^[^ ]* //')
    stop_cluster
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
    [[ $SKIP == *rejoin* ]] || rejoin
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
                base=$(med "mode ${ROWS[0]} $s" ops)
                for mode in "${ROWS[@]}"; do
                    local k="mode $mode $s"
                    echo "| $mode | $s | $(show "$(med "$k" ops)") | $(show "$(med "$k" p50)") | $(show "$(med "$k" p99)") | $(show "$(med "$k" p999)") | $(awk -v a="$(med "$k" ops)" -v b="$base" 'BEGIN {printf "%.2f", a / b}') | $(errors "$k") |"
                done
            done
            echo
            echo "$SERIAL_N requests per 1x1 run, $PIPELINED_N per 4x32 run; \`memory\`: no --data-dir;"
            echo "\`always-r1\`: --fsync always with a master at R=1 and a single slave (one fsync per write, as"
            echo "Redis's appendfsync always, instead of two on the same disk). \`ops/s vs\`: against the first row."
            if [ "$REDIS" = 1 ]; then
                echo "\`redis-everysec\`, \`redis-always\`: redis-server --save '' --appendonly yes --appendfsync everysec|always"
                echo "(pinned where the master is), redis-benchmark -c C -P P -n N -d 64 -r 1000 -t set (where dsm-client is);"
                echo "its p99.9 is not measured (0)."
            fi
            echo -n "Slaves the master dropped (ACK timeout, 200 ms), per round:"
            local d
            for d in "${!DROPS[@]}"; do echo -n " $d: ${DROPS[$d]};"; done
            echo
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
            echo "| log | replay ms (slave's log line) | to ready line (registered) ms | to first READ served ms | each restart: to READ served ms |"
            echo "|---|---:|---:|---:|---|"
            local l bin
            local -a labels=()
            for bin in "${BINS[@]}"; do labels+=("$(label written "$bin")"); done
            labels+=(compacting)
            for bin in "${BINS[@]}"; do labels+=("$(label compacted "$bin")"); done
            for l in "${labels[@]}"; do
                echo "| $l | $(med "restart $l" replay) | $(med "restart $l" ready) | $(med "restart $l" served) | ${S[restart $l served]} |"
            done
            echo
            echo "- log as written (every key twice, a tenth thrice): $LOG_WRITTEN bytes, $(awk -v a="$LOG_WRITTEN" -v n="$KEYS" 'BEGIN {printf "%.1f", a / n}') bytes per key"
            echo "- after compaction: $LOG_COMPACTED bytes, $(awk -v a="$LOG_COMPACTED" -v n="$KEYS" 'BEGIN {printf "%.1f", a / n}') bytes per key (16 B key + 64 B value + 21 B of record)"
            echo "- the slave's line: \`${COMPACT_LINE#*Z }\`"
            echo "- replay lines: \`${RESTART_LINE[$(label written "$BIN")]#*Z }\` / \`${RESTART_LINE[$(label compacted "$BIN")]#*Z }\`"
            echo "- slave VmRSS after the last restart: $((SLAVE_RSS_KB / 1024)) MiB"
        fi
        if [[ $SKIP != *rejoin* ]]; then
            echo
            echo "## Rejoin after a ${STOP_MS} ms stop of a slave ($KEYS keys, R=2, 3 slaves)"
            echo
            echo "SIGSTOP of one slave (--fsync interval, holding about 2/3 of the keys), 50 WRITEs meanwhile"
            echo "(those placed on it get no ACK: the master drops it), SIGCONT at ${STOP_MS} ms; times from the"
            echo "master's own log lines (their timestamps) against the script's clock at SIGSTOP and SIGCONT;"
            echo "$REJOINS stops, medians (each run in the last column)."
            echo
            echo "| measure | median ms | each run |"
            echo "|---|---:|---|"
            echo "| stop to dropped by the master (its log line) | $(med "rejoin" dropped) | ${S[rejoin dropped]} |"
            echo "| SIGCONT to back in service (the master's line: the same process, its copies count again) | $(med "rejoin" back) | ${S[rejoin back]} |"
            echo
            echo "- a \`status --json\` right after each, ms after SIGCONT:live:keys held: ${S[rejoin status]}"
            echo "- keys it held before each stop: ${S[rejoin keys]}"
            echo "- copies_made in STATUS before the first stop: $REJOIN_COPIES_BEFORE; at the end (past --repair-after-ms since the first stop): $REJOIN_COPIES; under_replicated: $REJOIN_UNDER"
            echo "- the master's lines: \`$(tr '\n' ' ' <<<"$REJOIN_LINES")\`"
        fi
    )
    echo "$report"
    mkdir -p "$(dirname "$OUT")"
    echo "$report" >"$OUT"
    echo "persist-bench: written to $OUT" >&2
}

main "$@"
