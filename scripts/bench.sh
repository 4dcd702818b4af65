#!/usr/bin/env bash
# Regenerates docs/performance.md (issue 5): builds vmguard in release mode and runs the benchmark
# binary (src/bin/vmguard-bench.rs) against private Open vSwitch instances it starts and stops
# itself. Needs root, Open vSwitch and a Rust toolchain, like the tests; installs iperf3 (and
# ethtool, time, strace) if they are missing.
#
#   bash scripts/bench.sh            the report, ~30 minutes on 2 cores: N = 100, 900, 5,000 VMs
#                                    with one NIC and with two
#   bash scripts/bench.sh --skip-large-two-nic
#                                    without 5,000 VMs × 2 NICs (10,000 ports): ~20 minutes less
#   bash scripts/bench.sh --quick    tiny sizes, ~1 minute: proves the benchmark works; writes
#                                    target/bench/performance-quick.md, not docs/
#
# Other options go to the benchmark (`target/release/vmguard-bench --help`), e.g.
# `--sizes 100,900`, `--repeats 5`, `--only install,hook`, `--keep`, `--out FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bench: run as root (it starts private OVS instances and network namespaces)" >&2
    exit 1
fi

quick=0
has_out=0
for a in "$@"; do
    case "$a" in
    --quick) quick=1 ;;
    --out | --out=*) has_out=1 ;;
    esac
done

missing=()
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v ethtool >/dev/null 2>&1 || missing+=(ethtool)
command -v strace >/dev/null 2>&1 || missing+=(strace)
[ -x /usr/bin/time ] || missing+=(time)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get -q install -y --no-install-recommends "${missing[@]}" >/dev/null; then
        apt-get -q update >/dev/null &&
            apt-get -q install -y --no-install-recommends "${missing[@]}" >/dev/null ||
            echo "bench: could not install ${missing[*]}; the report says what was skipped" >&2
    fi
fi

cargo build --release --locked --bins

args=(--vmguard target/release/vmguard)
if [ "$has_out" -eq 0 ]; then
    if [ "$quick" -eq 1 ]; then
        args+=(--out target/bench/performance-quick.md)
    else
        args+=(--out docs/performance.md)
    fi
fi
exec target/release/vmguard-bench "${args[@]}" "$@"
