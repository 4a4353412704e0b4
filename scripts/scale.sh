#!/usr/bin/env bash
# Scale curves (issue 22, item 4): throughput and p99 of dsm beside redis against connections,
# value size and key count, and memory per key at the largest key count. Both systems are
# driven by the same load generator, `dsm-client bench` (redis through `--redis ADDR`: the same
# event loop, keys, values, read checks and latency histogram). Writes a table with the command
# of every figure to bench-results/scale.md, the points to bench-results/scale.tsv and the
# curves to bench-results/scale.svg (drawn by dsm-scale-plot, bench/src/scale_plot.rs).
#
# Sweeps (each point: the median of SCALE_REPEATS runs; dsm and redis alternate in each round):
#   connections  SCALE_CONNS (1 16 64 256 1024), 1 request in flight each, 64-byte values,
#                10,000 keys; one cluster and one redis-server for the whole sweep
#   value size   SCALE_VALUES (16 256 4096 65536 1048576 bytes), 4 connections x 8 in flight;
#                a fresh cluster and redis-server for every run, so a run that loses slaves
#                (issue 22, item 1) does not carry over to the next
#   key count    SCALE_KEYS (1000 ... 10000000), 4 x 32, 16-byte keys, 64-byte values; a fresh
#                cluster and redis-server per key count; the first READ run writes all keys
#                (untimed), and the resident set (VmRSS) of every process before and after it
#                gives the memory per key
# A run that fails or reports errors is kept: its errors counted, its failure written down.
#
# Environment:
#   SHORT=1            a quick pass to try the machinery: 1 run per point, fewer requests,
#                      keys up to 100,000 (the results go to bench-results/scale-short.*)
#   SCALE_REPEATS      runs per point (default 3; SHORT: 1)
#   SCALE_CONNS, SCALE_VALUES, SCALE_KEYS   the sweep points (space-separated)
#   SCALE_PIN=1        as BENCH_PIN in bench.sh: the master (and redis-server) alone on the last
#                      CPU, everything else on the others; 0: the kernel places everything
#   SCALE_OUT          results prefix (default bench-results/scale)
# Installs Debian's redis-server and redis-tools when missing (apt-get), as make bench does.
set -euo pipefail
cd "$(dirname "$0")/.."

SHORT=${SHORT:-0}
if [ "$SHORT" = 1 ]; then
    REPEATS=${SCALE_REPEATS:-1}
    CONNS=${SCALE_CONNS:-1 16 64 256 1024}
    VALUES=${SCALE_VALUES:-16 4096 1048576}
    KEYCOUNTS=${SCALE_KEYS:-1000 100000}
    SCALE_DIV=10
    OUT=${SCALE_OUT:-bench-results/scale-short}
else
    REPEATS=${SCALE_REPEATS:-3}
    CONNS=${SCALE_CONNS:-1 16 64 256 1024}
    VALUES=${SCALE_VALUES:-16 256 4096 65536 1048576}
    KEYCOUNTS=${SCALE_KEYS:-1000 10000 100000 1000000 10000000}
    SCALE_DIV=1
    OUT=${SCALE_OUT:-bench-results/scale}
fi
BIN=target/release
READY_TIMEOUT_S=10
CONN_KEYS=10000
CONN_VALUE=64
KEY_VALUE=64
KEY_SIZE=16

PROG=scale
# shellcheck source=scripts/common.sh
. scripts/common.sh

need_packages() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "scale.sh: installing ${missing[*]} (apt-get)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    if command -v service >/dev/null; then service redis-server stop >/dev/null 2>&1 || true; fi
}

json_field() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m=int((NR+1)/2); if (NR%2) print v[m]; else print (v[m]+v[m+1])/2}'; }
show() { awk -v v="$1" 'BEGIN { if (v == "") print "-"; else if (v >= 1000) printf "%.0f", v; else printf "%.1f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
vmrss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

stop_dsm() {
    kill "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
    wait "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
}
stop_redis() {
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
}

# Samples per point, keyed "sweep x system op metric": space-separated, one per run.
declare -A S
# Why runs failed, keyed as S without the metric: "; "-separated.
declare -A FAIL
# The command of each point (with MASTER / PORT for this run's addresses), keyed "sweep x system op".
declare -A CMDS

# One run: sweep x system (dsm|redis) op, then the bench options. Records ops/s, p50, p99,
# p99.9 and errors; a run that printed no JSON is a failure with its last stderr line.
sample() {
    local sweep=$1 x=$2 sys=$3 op=$4
    shift 4
    local -a cmd
    if [ "$sys" = redis ]; then
        cmd=("$BIN/dsm-client" bench --redis "127.0.0.1:$REDIS_PORT" --op "$op" "$@" --json)
    else
        cmd=("$BIN/dsm-client" --master "$MASTER" bench --op "$op" "$@" --json)
    fi
    local shown="${cmd[*]}"
    shown=${shown//"$MASTER"/MASTER}
    CMDS[$sweep $x $sys $op]=${shown//"127.0.0.1:$REDIS_PORT"/127.0.0.1:PORT}
    local out rc=0
    out=$("${REST_PIN[@]}" "${cmd[@]}" 2>"$WORK/last.err") || rc=$?
    local k="$sweep $x $sys $op" ops
    ops=$(json_field "$out" ops_per_sec)
    if [ -z "$ops" ]; then
        FAIL[$k]+="$(tail -1 "$WORK/last.err" | cut -c1-160); "
        echo "scale.sh:   $k: FAILED: $(tail -1 "$WORK/last.err")" >&2
        return 1
    fi
    S[$k ops]+="$ops "
    S[$k p50]+="$(json_field "$out" p50_us) "
    S[$k p99]+="$(json_field "$out" p99_us) "
    S[$k p999]+="$(json_field "$out" p999_us) "
    S[$k errors]+="$(json_field "$out" errors) "
    echo "scale.sh:   $k: $ops ops/s, p99 $(json_field "$out" p99_us) us, $(json_field "$out" errors) errors" >&2
}

sweep_connections() {
    start_dsm "$BIN" conns 3
    start_redis conns-redis
    local round c n op
    for round in $(seq "$REPEATS"); do
        for c in $CONNS; do
            n=$(((20000 + c * 200) / SCALE_DIV))
            echo "scale.sh: connections $c, round $round of $REPEATS" >&2
            for op in write read; do
                for sys in dsm redis; do
                    sample connections "$c" "$sys" "$op" --clients "$c" --pipeline 1 \
                        --requests "$n" --value-size "$CONN_VALUE" --keys "$CONN_KEYS" || true
                done
            done
        done
    done
    stop_dsm
    stop_redis
}

# Requests for a value size: about 256 MiB moved per run (divided by SCALE_DIV), between
# 400 and 100,000 (also divided; never below 100).
value_requests() { awk -v v="$1" -v d="$SCALE_DIV" 'BEGIN { n = int(268435456 / d / v); hi = 100000 / d; lo = 400 / d; if (lo < 100) lo = 100; if (n > hi) n = hi; if (n < lo) n = lo; print int(n) }'; }
# Keys for a value size: 1,000, or fewer so they hold at most 64 MiB.
value_keys() { awk -v v="$1" 'BEGIN { k = int(67108864 / v); if (k > 1000) k = 1000; print k }'; }

declare -A DROPPED
sweep_values() {
    local round v n k op
    for round in $(seq "$REPEATS"); do
        for v in $VALUES; do
            n=$(value_requests "$v")
            k=$(value_keys "$v")
            echo "scale.sh: value size $v, round $round of $REPEATS" >&2
            local -a big=()
            [ "$v" -gt 1048576 ] && big=(--max-value "$v")
            start_dsm "$BIN" "v$v-$round" 3 "${big[@]}"
            start_redis "v$v-$round-redis"
            for op in write read; do
                for sys in dsm redis; do
                    sample value "$v" "$sys" "$op" --clients 4 --pipeline 8 \
                        --requests "$n" --value-size "$v" --keys "$k" || true
                done
            done
            # Slaves the master dropped during these runs (its log says so at warn).
            local drops
            drops=$(grep -c "slave '.*' dropped:" "$WORK/v$v-$round-master.log" 2>/dev/null || true)
            DROPPED[$v]+="${drops:-0} "
            stop_dsm
            stop_redis
        done
    done
}

declare -A MEM
sweep_keys() {
    local round k op
    for k in $KEYCOUNTS; do
        for round in $(seq "$REPEATS"); do
            echo "scale.sh: $k keys, round $round of $REPEATS" >&2
            start_dsm "$BIN" "k$k-$round" 3
            start_redis "k$k-$round-redis"
            local -a procs=("$MASTER_PID" "${SLAVE_PIDS[@]}" "$REDIS_PID") before=() after=()
            local p
            for p in "${procs[@]}"; do before+=("$(vmrss_kb "$p")"); done
            local n=$((200000 / SCALE_DIV))
            local -A stored=()
            for sys in dsm redis; do
                # READ first: it writes every key (untimed) before its timed reads. A run that
                # failed may have stored only some: then no memory figure for that system.
                stored[$sys]=1
                sample keys "$k" "$sys" read --clients 4 --pipeline 32 --requests "$n" \
                    --value-size "$KEY_VALUE" --keys "$k" --key-size "$KEY_SIZE" || stored[$sys]=0
            done
            for p in "${procs[@]}"; do after+=("$(vmrss_kb "$p")"); done
            # Bytes per key: master, the 3 slaves together (2 copies of each key), redis.
            [ "${stored[dsm]}" = 1 ] && MEM[$k master]+="$(awk -v a="${after[0]}" -v b="${before[0]}" -v k="$k" 'BEGIN {print (a - b) * 1024 / k}') "
            [ "${stored[dsm]}" = 1 ] && MEM[$k slaves]+="$(awk -v a="${after[1]} ${after[2]} ${after[3]}" -v b="${before[1]} ${before[2]} ${before[3]}" -v k="$k" \
                'BEGIN {split(a, x, " "); split(b, y, " "); print (x[1] + x[2] + x[3] - y[1] - y[2] - y[3]) * 1024 / k}') "
            [ "${stored[redis]}" = 1 ] && MEM[$k redis]+="$(awk -v a="${after[4]}" -v b="${before[4]}" -v k="$k" 'BEGIN {print (a - b) * 1024 / k}') "
            for sys in dsm redis; do
                sample keys "$k" "$sys" write --clients 4 --pipeline 32 --requests "$n" \
                    --value-size "$KEY_VALUE" --keys "$k" --key-size "$KEY_SIZE" || true
            done
            stop_dsm
            stop_redis
        done
    done
}

# Median of key K's samples in array S ("" when none).
med() {
    local v=${S[$1]:-}
    [ -n "$v" ] || { echo ""; return; }
    # shellcheck disable=SC2086 # a list of numbers
    median $v
}
# "median (min–max)" of key K's samples, or the median alone for one sample.
medrange() {
    local v=${S[$1]:-}
    [ -n "$v" ] || { echo "-"; return; }
    # shellcheck disable=SC2086 # a list of numbers
    local m lo hi
    m=$(median $v)
    # shellcheck disable=SC2086
    lo=$(printf '%s\n' $v | sort -g | head -1)
    # shellcheck disable=SC2086
    hi=$(printf '%s\n' $v | sort -g | tail -1)
    if [ "$(wc -w <<<"$v")" -gt 1 ]; then echo "$(show "$m") ($(show "$lo")–$(show "$hi"))"; else show "$m"; fi
}
errsum() {
    # shellcheck disable=SC2086 # a list of numbers
    printf '%s\n' ${S[$1]:-} | awk '{s += $1} END {print s + 0}'
}

# A table for one sweep: a row per x and op, dsm beside redis.
table() {
    local sweep=$1 points=$2 xname=$3
    echo "| $xname | op | dsm ops/s (min–max) | dsm p50 µs | dsm p99 µs | dsm p99.9 µs | redis ops/s (min–max) | redis p50 µs | redis p99 µs | redis p99.9 µs | ops/s dsm/redis | p99 dsm/redis | runs ok dsm / redis | errors dsm / redis | failures |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
    local x op
    for x in $points; do
        for op in write read; do
            local d="$sweep $x dsm $op" r="$sweep $x redis $op" rop=SET
            [ "$op" = read ] && rop=GET
            local dn rn
            dn=$(wc -w <<<"${S[$d ops]:-}")
            rn=$(wc -w <<<"${S[$r ops]:-}")
            local fails="${FAIL[$d]:+dsm: ${FAIL[$d]}}${FAIL[$r]:+redis: ${FAIL[$r]}}"
            echo "| $x | ${op^^} / $rop | $(medrange "$d ops") | $(show "$(med "$d p50")") | $(show "$(med "$d p99")") | $(show "$(med "$d p999")") | $(medrange "$r ops") | $(show "$(med "$r p50")") | $(show "$(med "$r p99")") | $(show "$(med "$r p999")") | $(ratio "$(med "$d ops")" "$(med "$r ops")") | $(ratio "$(med "$d p99")" "$(med "$r p99")") | $dn / $rn of $REPEATS | $(errsum "$d errors") / $(errsum "$r errors") | ${fails:-} |"
        done
    done
}

# The points for the SVG: sweep x series ops p99 errors (medians; '-' where no run gave one).
tsv() {
    echo "# sweep	x	series	ops_per_sec	p99_us	errors (medians of $REPEATS runs; errors summed)"
    local sweep points x sys op
    for sweep in connections value keys; do
        case $sweep in connections) points=$CONNS ;; value) points=$VALUES ;; keys) points=$KEYCOUNTS ;; esac
        for x in $points; do
            for sys in dsm redis; do
                for op in write read; do
                    local k="$sweep $x $sys $op" name
                    if [ "$sys" = dsm ]; then name="dsm ${op^^}"; elif [ "$op" = write ]; then name="redis SET"; else name="redis GET"; fi
                    local o p
                    o=$(med "$k ops")
                    p=$(med "$k p99")
                    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sweep" "$x" "$name" "${o:--}" "${p:--}" "$(errsum "$k errors")"
                done
            done
        done
    done
}

commands() {
    local sweep points x
    for sweep in connections value keys; do
        case $sweep in connections) points=$CONNS ;; value) points=$VALUES ;; keys) points=$KEYCOUNTS ;; esac
        for x in $points; do
            for sys in dsm redis; do
                for op in write read; do
                    [ -n "${CMDS[$sweep $x $sys $op]:-}" ] && echo "${CMDS[$sweep $x $sys $op]}"
                done
            done
        done
    done
}

main() {
    echo "scale.sh: building release binaries" >&2
    cargo build --release --bins -q
    need_packages
    set_placement "${SCALE_PIN:-1}"
    local load_before started=$SECONDS
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "scale.sh: $PLACEMENT; $REPEATS run(s) per point" >&2
    sweep_connections
    sweep_values
    sweep_keys
    local load_after
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    mkdir -p "$(dirname "$OUT")"
    tsv >"$OUT.tsv"
    "$BIN/dsm-scale-plot" "$OUT.tsv" "$OUT.svg" \
        "dsm (master R=2 + 3 slaves) beside redis, $(date -u '+%Y-%m-%d'), medians of $REPEATS, load $load_before"
    local last_k
    last_k=$(awk '{print $NF}' <<<"$KEYCOUNTS")
    {
        echo "# Scale curves: dsm beside redis (issue 22, item 4)"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); took $(((SECONDS - started) / 60)) min"
        echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':(exclude)bench-results' 2>/dev/null || echo ' (with uncommitted changes)')"
        echo "- nproc: $(nproc); CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
        echo "- kernel: $(uname -sr); $(redis-server --version | cut -d' ' -f1-3); $(rustc --version)"
        echo "- load average before / after: $load_before / $load_after (other work on the machine makes numbers noisy; a quiet machine has a load near 0)"
        echo "- cluster: 1 master (R=2) + 3 slaves (memory only), all on 127.0.0.1; redis-server --save '' --appendonly no"
        echo "- placement (SCALE_PIN=${SCALE_PIN:-1}): $PLACEMENT; redis-server where the master is"
        echo "- load generator for both: \`dsm-client bench\` (redis via \`--redis\`), closed loop; latency from each request's send"
        echo "- each cell the median of the runs that gave figures ($REPEATS per point; \"runs ok\" says how many did); errors summed over all runs"
        echo "- made by \`make scale$([ "$SHORT" = 1 ] && echo " SHORT=1")\` (scripts/scale.sh); the curves: [$(basename "$OUT").svg]($(basename "$OUT").svg), the points: $(basename "$OUT").tsv"
        echo
        echo "![scale curves]($(basename "$OUT").svg)"
        echo
        echo "## Connections (1 request in flight each; $CONN_VALUE-byte values, $CONN_KEYS keys)"
        echo
        echo "One cluster and one redis-server for the whole sweep; (20000 + 200 x connections)$([ "$SCALE_DIV" != 1 ] && echo " / $SCALE_DIV") requests per run."
        echo
        table connections "$CONNS" connections
        echo
        echo "## Value size (4 connections x 8 in flight)"
        echo
        echo "A fresh cluster and redis-server for each size and round (a size over 1 MiB would need the master's --max-value"
        echo "raised: it gets --max-value SIZE). Requests per run: 256 MiB / size$([ "$SCALE_DIV" != 1 ] && echo " / $SCALE_DIV"), between 400 and 100,000; keys: 1,000,"
        echo "or fewer so they hold at most 64 MiB. Slaves dropped by the master (its log), per round:"
        local v
        local drops=""
        for v in $VALUES; do drops+="$v B: ${DROPPED[$v]:-n/a}; "; done
        echo "${drops%; }."
        echo
        table value "$VALUES" "value bytes"
        echo
        echo "## Key count (4 x 32; $KEY_SIZE-byte keys, $KEY_VALUE-byte values)"
        echo
        echo "A fresh cluster and redis-server for each count and round. The READ run writes every key"
        echo "first (untimed, 32 in flight per connection), then reads $((200000 / SCALE_DIV)) of them in key order"
        echo "(bench:0, bench:1, ...; the stores hash keys, so order does not favour either); the WRITE run"
        echo "then overwrites $((200000 / SCALE_DIV)) of them."
        echo
        table keys "$KEYCOUNTS" keys
        echo
        echo "## Memory per key"
        echo
        echo "Growth of the resident set (VmRSS) while every key was written once (the READ run's preload),"
        echo "divided by the key count: $KEY_SIZE-byte keys, $KEY_VALUE-byte values. dsm keeps 2 copies (R=2) on 3"
        echo "slaves; the master keeps its key index. Median of $REPEATS rounds, bytes per key."
        echo
        echo "| keys | dsm master | dsm 3 slaves (2 copies) | dsm total | redis | dsm total / redis | rounds with every key stored, dsm / redis |"
        echo "|---:|---:|---:|---:|---:|---:|---|"
        local k
        for k in $KEYCOUNTS; do
            local m sl rd
            # shellcheck disable=SC2086 # lists of numbers
            m=$(median ${MEM[$k master]:-})
            # shellcheck disable=SC2086
            sl=$(median ${MEM[$k slaves]:-})
            # shellcheck disable=SC2086
            rd=$(median ${MEM[$k redis]:-})
            local tot=""
            [ -n "${MEM[$k master]:-}" ] && tot=$(awk -v a="$m" -v b="$sl" 'BEGIN {print a + b}')
            echo "| $k | $(show "$m") | $(show "$sl") | $(show "$tot") | $(show "$rd") | $(ratio "$tot" "$rd") | $(wc -w <<<"${MEM[$k master]:-}") / $(wc -w <<<"${MEM[$k redis]:-}") of $REPEATS |"
        done
        echo
        echo "At $last_k keys (the largest count here): see the last row."
        echo
        echo "## Commands"
        echo
        echo '```'
        echo "cargo build --release --bins"
        if [ "${#MASTER_PIN[@]}" -gt 0 ]; then
            echo "# pinned: dsm-master and redis-server run under \`${MASTER_PIN[*]}\`, everything else under \`${REST_PIN[*]}\`"
        fi
        echo "dsm-master --listen 127.0.0.1:0 --heartbeat 127.0.0.1:0 --replicas 2 --discover-ms 0 --log-level warn"
        echo "dsm-slave --master MASTER --id TAG-slave-{1,2,3} --log-level warn"
        echo "redis-server --bind 127.0.0.1 --port PORT --save '' --appendonly no --dir TMPDIR"
        commands
        echo "$BIN/dsm-scale-plot $OUT.tsv $OUT.svg TITLE"
        echo '```'
    } >"$OUT.md"
    echo "scale.sh: results written to $OUT.md, $OUT.svg and $OUT.tsv" >&2
}

main "$@"
