# shellcheck shell=bash
# Dependencies of the benchmark (scripts/bench.sh) and its smoke test (tests/bench_smoke.rs):
# iperf3 for the data-plane figure, ethtool, GNU time for peak memory, strace for profiles.
# Run with bash, as root, after `apt-get update`. Idempotent.
set -euo pipefail
DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends iperf3 ethtool time strace >/dev/null
echo "bench deps ready: $(iperf3 --version | head -1)"
