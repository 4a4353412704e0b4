# Shared by bench.sh and mem.sh (sourced, not run): a work folder, every child stopped on exit
# (logs kept when the script failed), and a readiness wait with a deadline.
# Set PROG (the script's name, for messages) and READY_TIMEOUT_S before sourcing.
# shellcheck shell=bash

WORK=$(mktemp -d -t "dsm-$PROG.XXXXXX")
pids=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$rc" -eq 0 ]; then
        rm -rf "$WORK"
    else
        echo "$PROG.sh: failed (exit $rc); logs kept in $WORK" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "$PROG.sh: $*" >&2; exit 1; }

# Wait until FILE contains PATTERN, failing if PID dies or the deadline passes.
wait_for_line() {
    local file=$1 pattern=$2 pid=$3 what=$4
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    until grep -q "$pattern" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "$what exited at start-up: $(tail -3 "$file" "${file%.out}.log" 2>/dev/null)"
        [ "$SECONDS" -lt "$deadline" ] || die "$what not ready after ${READY_TIMEOUT_S} s"
        sleep 0.05
    done
}
