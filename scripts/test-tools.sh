#!/usr/bin/env bash
# Tools some tests use besides cargo: promtool (Debian's `prometheus` package: tests/tests/
# metrics.rs checks /metrics with it) and chromium (tests/tests/status_page.rs renders the
# master's status page). Installs whatever is missing with apt-get when it can (as root, or
# with sudo); otherwise says so, and those checks are skipped with a message.
set -uo pipefail
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[[ ${#missing[@]} == 0 ]] && exit 0
as_root=()
if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "test-tools: ${missing[*]} missing and no root to install them: their checks will be skipped" >&2
        exit 0
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-tools: ${missing[*]} missing and no apt-get: their checks will be skipped" >&2
    exit 0
fi
echo "test-tools: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be stale or absent on a fresh machine.
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { "${as_root[@]}" apt-get update -q >/dev/null 2>&1 &&
      "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } ||
    echo "test-tools: could not install ${missing[*]}: their checks will be skipped" >&2
exit 0
