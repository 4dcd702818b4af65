#!/usr/bin/env bash
# Installs everything the tests need, builds, and runs ALL tests: unit, golden, OVS sandbox,
# lab, and the real-libvirt end-to-end tests (marked #[ignore] for quick local runs, included
# here). Ends with one line summing every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --all-targets -- --include-ignored 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
