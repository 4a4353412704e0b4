#!/usr/bin/env bash
# Issue 16 item 8: WRITE with every slave at --fsync always against redis-server with
# appendonly yes + appendfsync always, alternating within each round (fresh cluster / fresh
# redis each run), and what the slaves' syncs did: from each slave's /metrics after the run,
# the syncs, the STOREs per sync (the group commit's batch) and the time in syncs.
#
# FB_BINS="DIR1 DIR2" (default target/release) alternates binaries for before/after runs;
# FB_VARIANTS="label:FLAGS;label2:FLAGS2" (default one variant, no flags) alternates more
# dsm-slave flags too (e.g. "spin:;nospin:--spin-us 0").
# FB_SLAVES=3 and FB_REPLICAS=2 shape the cluster (FB_SLAVES=1 FB_REPLICAS=1: one fsync per
# write, as redis does). FB_ROUNDS=3, FB_SERIAL=2000, FB_PIPELINED=200000, FB_PIN=1 (placement as make bench),
# FB_TRACE=1: during each 4x32 run, `perf trace` the first slave's fdatasync calls and print
# their durations, the share of the run spent in them, and the gaps between one's end and the
# next one's start (p10/p50/p90); needs perf (Debian package linux-perf).
# Results on stdout (one line per run, then medians).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${FB_ROUNDS:-3}
SERIAL_N=${FB_SERIAL:-2000}
PIPELINED_N=${FB_PIPELINED:-200000}
# shellcheck disable=SC2206 # a list of directories
BINS=(${FB_BINS:-target/release})
READY_TIMEOUT_S=30
PROG=fsync-bench
# shellcheck source=scripts/common.sh
. scripts/common.sh
set_placement "${FB_PIN:-1}"
for tool in redis-server redis-benchmark curl; do
    command -v "$tool" >/dev/null || die "needs $tool (Debian packages redis-server, redis-tools, curl)"
done
for b in "${BINS[@]}"; do
    for x in dsm-master dsm-slave dsm-client; do
        [ -x "$b/$x" ] || die "no $b/$x (make build)"
    done
done

json_field() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m=int((NR+1)/2); if (NR%2) print v[m]; else print (v[m]+v[m+1])/2}'; }

# The sum of METRIC over the slaves' /metrics (the address each printed when ready).
slave_metric() { # tag metric
    local tag=$1 m=$2 s=0 addr v
    for f in "$WORK/$tag"-slave-*.out; do
        addr=$(sed -n 's/.*metrics=\([^ ]*\).*/\1/p' "$f")
        v=$(curl -s "http://$addr/metrics" | awk -v m="$m" '$1 == m {print $2}')
        s=$(awk -v a="$s" -v b="${v:-0}" 'BEGIN {print a + b}')
    done
    echo "$s"
}

IFS=';' read -r -a VARIANTS <<<"${FB_VARIANTS:-:}"
LABELS=()
for bin in "${BINS[@]}"; do
    for v in "${VARIANTS[@]}"; do
        l=$(basename "$bin")
        [ -n "${v%%:*}" ] && l="$l+${v%%:*}"
        LABELS+=("$l")
    done
done

# CPU seconds (user + system, every thread) of the processes PIDS, summed.
cpu_s() {
    local t=0 p
    for p in "$@"; do
        t=$(awk -v t="$t" -v hz="$(getconf CLK_TCK)" '{print t + ($14 + $15) / hz}' "/proc/$p/stat")
    done
    echo "$t"
}

# From `perf trace -T` lines "START_MS ( DUR ms): ... fdatasync(...)": durations, busy share and
# gaps (gaps over 50 ms are taken as before or after the load, and left out).
trace_summary() {
    local f=$1 durs gaps busy
    durs=$(awk '/fdatasync/ { gsub(/[()]/, " "); print $2 * 1000 }' "$f" | sort -g)
    gaps=$(awk '/fdatasync/ { gsub(/[()]/, " "); s = $1; if (n++ && s - e < 50) print (s - e) * 1000; e = s + $2 }' "$f" | sort -g)
    [ -n "$durs" ] || { echo "  trace: no fdatasync seen"; return 0; }
    busy=$(awk -v d="$(tr '\n' ' ' <<<"$durs")" -v g="$(tr '\n' ' ' <<<"$gaps")" \
        'BEGIN { n = split(d, a, " "); for (i = 1; i <= n; i++) b += a[i]; m = split(g, c, " "); for (i = 1; i <= m; i++) h += c[i]; printf "%.2f", b / (b + h) }')
    echo "  trace of slave 1: $(wc -l <<<"$durs") syncs; fdatasync p10/p50/p90 $(pcts "$durs") µs; syncing $busy of the time; gap between syncs p10/p50/p90 $(pcts "$gaps") µs"
}
# p10/p50/p90 of sorted numbers, one a line.
pcts() { awk '{ v[NR] = $1 } END { printf "%d/%d/%d", v[int((NR - 1) * 0.1) + 1], v[int((NR - 1) * 0.5) + 1], v[int((NR - 1) * 0.9) + 1] }' <<<"$1"; }

declare -A S
run_dsm() { # bin round variant
    local bin=$1 round=$2 v=$3 tag l out syncs0 stores0 secs0 syncs stores secs
    l=$(basename "$bin")
    [ -n "${v%%:*}" ] && l="$l+${v%%:*}"
    tag="r$round-$l"
    SLAVE_DATA=1
    # shellcheck disable=SC2206 # a list of flags
    SLAVE_ARGS=(--fsync always --metrics 127.0.0.1:0 ${v#*:})
    MASTER_REPLICAS=${FB_REPLICAS:-2} start_dsm "$bin" "$tag" "${FB_SLAVES:-3}"
    for setting in 1x1 4x32; do
        syncs0=$(slave_metric "$tag" dsm_slave_fsync_duration_seconds_count)
        secs0=$(slave_metric "$tag" dsm_slave_fsync_duration_seconds_sum)
        stores0=$(slave_metric "$tag" 'dsm_slave_requests_total{request="store"}')
        local scpu0 mcpu0
        scpu0=$(cpu_s "${SLAVE_PIDS[@]}") mcpu0=$(cpu_s "$MASTER_PID")
        if [ "$setting" = 1x1 ]; then c=1 p=1 n=$SERIAL_N; else c=4 p=32 n=$PIPELINED_N; fi
        local tracer=
        if [ "${FB_TRACE:-0}" = 1 ] && [ "$setting" = 4x32 ]; then
            perf trace -T -e fdatasync -p "${SLAVE_PIDS[0]}" -o "$WORK/trace-$tag.txt" 2>/dev/null &
            tracer=$!
            sleep 0.5
        fi
        out=$("${REST_PIN[@]}" "$bin/dsm-client" --master "$MASTER" bench --op write --clients $c --pipeline $p \
            --requests "$n" --keys 1000 --value-size 64 --json 2>/dev/null) || true
        if [ -n "$tracer" ]; then
            kill -INT "$tracer"
            wait "$tracer" || true
            trace_summary "$WORK/trace-$tag.txt"
        fi
        syncs=$(slave_metric "$tag" dsm_slave_fsync_duration_seconds_count)
        secs=$(slave_metric "$tag" dsm_slave_fsync_duration_seconds_sum)
        stores=$(slave_metric "$tag" 'dsm_slave_requests_total{request="store"}')
        local scpu mcpu
        scpu=$(awk -v a="$(cpu_s "${SLAVE_PIDS[@]}")" -v b="$scpu0" -v n="$n" 'BEGIN {printf "%.1f", (a - b) / n * 1e6}')
        mcpu=$(awk -v a="$(cpu_s "$MASTER_PID")" -v b="$mcpu0" -v n="$n" 'BEGIN {printf "%.1f", (a - b) / n * 1e6}')
        local ops p50 err ds dt dn
        ops=$(json_field "$out" ops_per_sec) p50=$(json_field "$out" p50_us) err=$(json_field "$out" errors)
        ds=$(awk -v a="$syncs" -v b="$syncs0" 'BEGIN {print a - b}')
        dt=$(awk -v a="$secs" -v b="$secs0" 'BEGIN {print a - b}')
        dn=$(awk -v a="$stores" -v b="$stores0" 'BEGIN {print a - b}')
        local per us
        per=$(awk -v n="$dn" -v s="$ds" 'BEGIN {printf "%.1f", s ? n / s : 0}')
        us=$(awk -v t="$dt" -v s="$ds" 'BEGIN {printf "%.0f", s ? t / s * 1e6 : 0}')
        echo "round $round dsm@$l $setting: ops/s $ops p50 $p50 µs errors $err | ${FB_SLAVES:-3} slaves (R=${FB_REPLICAS:-2}): syncs $ds, STOREs $dn, STOREs/sync $per, µs/sync (start to outcome taken) $us | CPU µs per write: slaves $scpu, master $mcpu"
        S[dsm@$l $setting ops]+="$ops " S[dsm@$l $setting p50]+="$p50 " S[dsm@$l $setting per]+="$per " S[dsm@$l $setting us]+="$us " S[dsm@$l $setting scpu]+="$scpu "
    done
    kill "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
    wait "$MASTER_PID" "${SLAVE_PIDS[@]}" 2>/dev/null || true
}

run_redis() { # round
    local round=$1 csv _t rps _avg _min q50 _rest
    start_redis "redis-$round" --appendonly yes --appendfsync always
    for setting in 1x1 4x32; do
        if [ "$setting" = 1x1 ]; then c=1 p=1 n=$SERIAL_N; else c=4 p=32 n=$PIPELINED_N; fi
        csv=$("${REST_PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c $c -P $p -n "$n" -d 64 \
            -r 1000 -t set --csv | grep '^"SET"')
        IFS=, read -r _t rps _avg _min q50 _rest <<<"${csv//\"/}"
        q50=$(awk -v q="$q50" 'BEGIN {print q * 1000}')
        echo "round $round redis always $setting: ops/s $rps p50 $q50 µs"
        S[redis $setting ops]+="$rps " S[redis $setting p50]+="$q50 "
    done
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $PLACEMENT"
for round in $(seq "$ROUNDS"); do
    for bin in "${BINS[@]}"; do
        for v in "${VARIANTS[@]}"; do run_dsm "$bin" "$round" "$v"; done
    done
    run_redis "$round"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
# The ratio of each round's dsm run to the same round's redis run, then their median: load from
# other work moves both of one round alike more than it moves rounds apart.
ratios() { # dsm-samples redis-samples
    paste <(tr ' ' '\n' <<<"$1" | sed '/^$/d') <(tr ' ' '\n' <<<"$2" | sed '/^$/d') |
        awk '{printf "%.2f ", $1 / $2}'
}
echo "medians of $ROUNDS:"
for setting in 1x1 4x32; do
    # shellcheck disable=SC2086 # lists of numbers
    echo "  redis always $setting: ops/s $(median ${S[redis $setting ops]}) p50 $(median ${S[redis $setting p50]}) µs"
    for l in "${LABELS[@]}"; do
        rs=$(ratios "${S[dsm@$l $setting ops]}" "${S[redis $setting ops]}")
        # shellcheck disable=SC2086 # lists of numbers
        echo "  dsm@$l $setting: ops/s $(median ${S[dsm@$l $setting ops]}) p50 $(median ${S[dsm@$l $setting p50]}) µs, STOREs/sync $(median ${S[dsm@$l $setting per]}), µs/sync $(median ${S[dsm@$l $setting us]}), slaves' CPU µs/write $(median ${S[dsm@$l $setting scpu]}); dsm/redis by round: $rs(median $(median $rs))"
    done
done
