#!/usr/bin/env bash
# Installs everything the tests need, builds, and runs ALL tests: unit, golden, OVS sandbox,
# lab, and the real-libvirt end-to-end test (marked #[ignore] for quick local runs, included here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo test --locked -- --include-ignored
