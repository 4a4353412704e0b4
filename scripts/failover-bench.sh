#!/usr/bin/env bash
# make failover-bench: how long each fault of issue 17's table leaves the cluster without an
# acknowledged write, on release builds. Runs the election tests (tests/tests/elections.rs)
# ROUNDS times, one test at a time (so no other cluster competes for the CPUs), collects the
# `failover-measure` line each test prints, and writes the medians (with min and max) to
# bench-results/failover-<date>.md, with how they were made.
#
#   ROUNDS=5          rounds of every test (default 5)
#   LONG=1            the long variants too (the backup stopped 20 s, the primary 15 s, ...)
#   FILTER=primary    only the tests whose name contains this
#   OUT=path.md       where to write (default bench-results/failover-<date>.md)
#
# Needs root and `ip netns` (the partitions run every node in a network namespace of its own),
# as the tests themselves do.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
LONG=${LONG:-0}
FILTER=${FILTER:-}
DATE=$(date -u +%Y-%m-%d)
OUT=${OUT:-bench-results/failover-$DATE.md}
WORK=$(mktemp -d -t dsm-failover-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "failover-bench: building release binaries and the release test harness" >&2
cargo build --release --bins >&2
cargo test --release -p dsm-tests --test elections --no-run >&2

args=(--test-threads=1 --nocapture)
[ "$LONG" = 1 ] && args+=(--include-ignored)
[ -n "$FILTER" ] && args=("$FILTER" "${args[@]}")

started=$(date -u +%H:%M:%S)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
failed=0
for r in $(seq 1 "$ROUNDS"); do
    echo "failover-bench: round $r of $ROUNDS" >&2
    log="$WORK/round-$r.log"
    if ! DSM_BIN_DIR="$PWD/target/release" DSM_TEST_NO_BUILD=1 \
        cargo test --release -q -p dsm-tests --test elections -- "${args[@]}" >"$log" 2>&1; then
        failed=$((failed + 1))
        echo "failover-bench: round $r had a failing test:" >&2
        grep -E '^test .*FAILED|panicked' "$log" >&2 || true
    fi
    grep -h '^failover-measure ' "$log" >>"$WORK/measures" || true
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

[ -s "$WORK/measures" ] || { echo "failover-bench: no measurement was printed" >&2; exit 1; }

# `field NAME LINE`: the value of NAME=... in a measure line.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# `stats FAULT NAME`: "median (min–max)" of NAME over FAULT's lines ("-" values left out).
stats() {
    local values
    values=$(grep "fault=$1 " "$WORK/measures" | while read -r line; do field "$2" "$line"; done |
        grep -v '^-$' | sort -n || true)
    [ -n "$values" ] || { echo "–"; return; }
    local n med
    n=$(wc -l <<<"$values")
    med=$(sed -n "$(((n + 1) / 2))p" <<<"$values")
    if [ "$n" -gt 1 ]; then
        echo "$med ($(head -1 <<<"$values")–$(tail -1 <<<"$values"))"
    else
        echo "$med"
    fi
}

faults=$(sed 's/.* fault=\([^ ]*\).*/\1/' "$WORK/measures" | awk '!seen[$0]++')
{
    echo "# Failover: time without an acknowledged write, by fault ($DATE)"
    echo
    echo "\`make failover-bench\` (\`scripts/failover-bench.sh\`), ROUNDS=$ROUNDS$([ "$LONG" = 1 ] && echo ", LONG=1")$([ -n "$FILTER" ] && echo ", FILTER=$FILTER"),"
    echo "at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench-results' || echo ' (with uncommitted changes)'), $started–$(date -u +%H:%M:%S) UTC;"
    echo "$(nproc) CPUs, $(uname -sr); load average $load_before before, $load_after after."
    echo "Release builds of every binary and of the test harness; the tests of"
    echo "\`tests/tests/elections.rs\` one at a time ($failed of $ROUNDS rounds had a failing test)."
    echo
    echo "Each test runs a primary, a standby and 3 slaves (R=2, default flags: --lease-ms 400, the"
    echo "slaves' --master-timeout-ms 500) under a steady load, injects one fault, and measures from"
    echo "the fault on (milliseconds; median over the rounds, min–max in brackets):"
    echo
    echo "- **cluster**: the longest time no master acknowledged a write to anyone: the writers below"
    echo "  and one probe per master, which writes through that master alone with a 300 ms deadline."
    echo "  What the cluster can do, whatever the clients' failover does. Goal (issue 17): ≤ 1000."
    echo "- **writers**: the longest gap of 2 writers whose calls have a 2 s deadline and that connect"
    echo "  a new client (trying the masters in order) after a call runs out of it."
    echo "- **long-lived**: the same for a writer that keeps its client, as the client library does"
    echo "  today: on a frozen or vanished primary it waits until that primary answers again"
    echo "  (issue 17, item 5: clients leaving a frozen primary quickly)."
    echo "- **first write**: from the fault to the first acknowledgement of a write sent after it."
    echo "  Goal for kill -9: ≤ 500."
    echo "- **elected**: from the fault to the standby saying it is primary (STATUS polled)."
    echo "- **unknown**: writes of the writers whose outcome the client could not know (a broken"
    echo "  connection, TIMEOUT, a deadline), in all rounds together; 0 needs item 4 (exactly-once)."
    echo
    echo "| fault | cluster | writers | long-lived | first write | elected | unknown |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for f in $faults; do
        unknown=$(grep "fault=$f " "$WORK/measures" | while read -r line; do field unknown "$line"; done |
            awk '{ s += $1 } END { print s + 0 }')
        echo "| $f | $(stats "$f" cluster_gap_ms) | $(stats "$f" gap_ms) | $(stats "$f" sticky_gap_ms) | $(stats "$f" first_ack_ms) | $(stats "$f" takeover_ms) | $unknown |"
    done
    echo
    echo "The faults (each test's doc comment says what it asserts):"
    echo
    echo "- backup-sigstop: the standby SIGSTOPped (2 s; 20 s with LONG=1) and left stopped;"
    echo "- backup-isolated: the standby cut from every other node by blackhole routes (2 s; 10 s);"
    echo "- backup-typo: a standby started with a --backup-of where nothing listens;"
    echo "- backup-typo-slave-blink: the same, and a slave SIGSTOPped past the ACK timeout that"
    echo "  dials that standby when resumed (it must not elect it);"
    echo "- primary-cut-from-slaves: the primary cut from every slave, the clients and the standby"
    echo "  still reaching it (2 s; 10 s);"
    echo "- primary-sigstop: the primary SIGSTOPped (2 s; 15 s), then SIGCONT;"
    echo "- primary-kill-9: kill -9 of the primary;"
    echo "- primary-vanish: the primary's port on the namespaces' bridge taken down, so nothing reaches"
    echo "  it or leaves it, no FIN or RST (2 s; 10 s);"
    echo "- rejoined-standby-elected: a primary that stepped down after a SIGSTOP and followed the new"
    echo "  one by itself, elected again when the new one is killed -9;"
    echo "- slave-isolated: one slave cut from both masters (2 s; 10 s)."
    echo
    echo "Raw lines:"
    echo
    echo '```'
    cat "$WORK/measures"
    echo '```'
} >"$OUT"
echo "failover-bench: wrote $OUT" >&2
cat "$OUT"
