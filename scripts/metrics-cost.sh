#!/usr/bin/env bash
# What serving --metrics costs (issue 21, item 5), in two parts; results on stdout (markdown).
#  1. `make bench` ratios with --metrics off and on (scraped every second), alternating:
#     COST_RUNS runs of each (default 3), each a whole scripts/bench.sh (BENCH_REPEATS=1,
#     BENCH_PERSIST=0 BENCH_OPEN=0 BENCH_LARGE=0) with BENCH_METRICS=0, then =1, ...; every run's ratio row and the medians.
#  2. One scrape of a master holding COST_KEYS keys (default 1000000): time to first byte of
#     /metrics (the census walks the key map a slice per loop turn, so this is a pass's length,
#     not a stall), and PING p50/p99.9/max at 1x1 (100,000 requests) with /metrics fetched back to back meanwhile
#     against no scraping: what a scrape blocks the loop for.
# COST_PART=1 or 2 runs one part only.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${COST_RUNS:-3}
NKEYS=${COST_KEYS:-1000000}
PART=${COST_PART:-all}
BIN=target/release
READY_TIMEOUT_S=10
PROG=metrics-cost
# shellcheck source=scripts/common.sh
. scripts/common.sh

json_field() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m=int((NR+1)/2); if (NR%2) print v[m]; else print (v[m]+v[m+1])/2}'; }

# The ratio columns of a bench.sh results file: "op setting p50ratio opsratio" per row.
ratios() { awk -F'|' '/^\| (PING|WRITE|READ) \// {gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $10); gsub(/ /, "", $11); print $2, $3, $10, $11}' "$1"; }

part1() {
    declare -A R
    local i mode f
    echo "## make bench with --metrics off and on, alternating"
    echo
    echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    for i in $(seq "$RUNS"); do
        for mode in 0 1; do
            f=$WORK/bench-$i-$mode.md
            echo "metrics-cost.sh: bench run $i, BENCH_METRICS=$mode" >&2
            BENCH_REPEATS=1 BENCH_PERSIST=0 BENCH_OPEN=0 BENCH_LARGE=0 BENCH_METRICS=$mode BENCH_OUT=$f scripts/bench.sh >/dev/null
            while read -r op setting p50r opsr; do
                R[$mode $op $setting p50]+="$p50r "
                R[$mode $op $setting ops]+="$opsr "
            done < <(ratios "$f")
            grep -h '^- BENCH_METRICS=1' "$f" | sed 's/^- /- run '"$i"': /' || true
        done
    done
    echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "Runs in order off, on, off, on, ...; each cell lists the runs' ratios (dsm/redis) then their median."
    echo
    echo "| op | setting | p50 dsm/redis, off | p50 dsm/redis, on | ops/s dsm/redis, off | ops/s dsm/redis, on |"
    echo "|---|---|---|---|---|---|"
    local op setting k
    for setting in 1x1 4x32; do
        for op in PING/PING WRITE/SET READ/GET; do
            local row="| $op | $setting"
            for k in p50 ops; do
                for mode in 0 1; do
                    # shellcheck disable=SC2086 # a list of numbers
                    row+=" | ${R[$mode $op $setting $k]}→ **$(median ${R[$mode $op $setting $k]})**"
                done
            done
            echo "$row |"
        done
    done
    echo
}

part2() {
    echo "## One scrape of a master with $NKEYS keys"
    echo
    echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    start_dsm "$BIN" big 2 --metrics 127.0.0.1:0
    local mx
    mx=$(sed -n 's/.* metrics=\([^ ]*\).*/\1/p' "$WORK/big-master.out")
    "$BIN/dsm-client" --master "$MASTER" bench --op write --clients 4 --pipeline 32 --requests "$NKEYS" \
        --keys "$NKEYS" --value-size 16 --json >/dev/null || die "filling $NKEYS keys failed"
    local keys
    keys=$(curl -s "http://$mx/metrics" | sed -n 's/^dsm_master_keys //p')
    echo "- keys on the master: $keys (dsm_master_keys)"
    local t ttfb=() nope=()
    for _ in 1 2 3 4 5; do
        t=$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://$mx/metrics")
        ttfb+=("$(awk -v t="$t" 'BEGIN {printf "%.1f", t * 1000}')")
        t=$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://$mx/nope")
        nope+=("$(awk -v t="$t" 'BEGIN {printf "%.2f", t * 1000}')")
    done
    echo "- time to first byte of /metrics, 5 fetches, ms: ${ttfb[*]} (a 404, no census: ${nope[*]})"
    local ping=("$BIN/dsm-client" --master "$MASTER" bench --op ping --clients 1 --pipeline 1 --requests 100000 --json)
    local quiet loud scraper n
    quiet=$("${ping[@]}")
    (while :; do curl -s -o /dev/null "http://$mx/metrics"; echo x; done >"$WORK/scrapes") &
    scraper=$!
    pids+=("$scraper")
    loud=$("${ping[@]}")
    kill "$scraper" 2>/dev/null || true
    wait "$scraper" 2>/dev/null || true
    n=$(wc -l <"$WORK/scrapes")
    echo "- PING 1x1, 100000 requests: \`${ping[*]:1}\`"
    echo
    echo "| | p50 µs | p99.9 µs | max µs |"
    echo "|---|---:|---:|---:|"
    echo "| no scrapes | $(json_field "$quiet" p50_us) | $(json_field "$quiet" p999_us) | $(json_field "$quiet" max_us) |"
    echo "| /metrics fetched back to back ($n fetches) | $(json_field "$loud" p50_us) | $(json_field "$loud" p999_us) | $(json_field "$loud" max_us) |"
    echo
    echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
}

cargo build --release --bins -q
set_placement 0
echo "# What --metrics costs ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), nproc $(nproc))"
echo
echo "Made by \`scripts/metrics-cost.sh\` (COST_RUNS=$RUNS, COST_KEYS=$NKEYS)."
echo
if [ "$PART" != 2 ]; then part1; fi
if [ "$PART" != 1 ]; then part2; fi
