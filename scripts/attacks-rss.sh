#!/usr/bin/env bash
# `make attacks`: issue 18's memory and connection attacks (tests/tests/attacks_bounds.rs)
# against release binaries, one at a time, with their figures: each process's RSS before and
# at its peak (VmHWM), and a real client's READ latency during the attack. Writes them to
# bench-results/attacks-bounds.md (ATTACKS_OUT=FILE to choose).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${ATTACKS_OUT:-bench-results/attacks-bounds.md}
cargo build --release --bins
log=$(mktemp -t dsm-attacks.XXXXXX)
trap 'rm -f "$log"' EXIT
status=0
DSM_BIN_DIR="$PWD/target/release" DSM_TEST_NO_BUILD=1 nice cargo test --release -p dsm-tests \
    --test attacks_bounds -- --nocapture --test-threads=1 >"$log" 2>&1 || status=$?
figures=$(grep -E '^(test |slave [0-9]:|master:|real client|the burst|client past|dsm-client:|[0-9]+ clients welcomed)|panicked at' -A1 "$log" | grep -v '^--$' || true)
echo "$figures"
{
    echo "# Issue 18 attacks on memory and connection slots (\`make attacks\`)"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Release binaries; each test of tests/tests/attacks_bounds.rs alone (--test-threads=1)."
    echo "RSS figures are VmRSS before the attack and VmHWM (the peak) after it."
    echo
    echo '```'
    echo "$figures"
    echo '```'
} >"$OUT"
echo "written to $OUT"
exit "$status"
