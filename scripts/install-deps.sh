#!/usr/bin/env bash
# Installs what vmguard's lab and tests need on a fresh Debian 12 machine, as root. Idempotent.
#   scripts/install-deps.sh          everything: OVS, the lab's tools, libvirt + QEMU for the e2e test
#   scripts/install-deps.sh --lab    only what `vmguard lab run` needs
# Each fragment in scripts/deps/ installs one component's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (it installs Debian packages)" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo not found: install a Rust toolchain >= 1.89 (rustup) first" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update"
apt-get -q update >/dev/null
echo "install-deps: Open vSwitch and iproute2"
apt-get -q install -y --no-install-recommends openvswitch-switch openvswitch-common iproute2 >/dev/null

fragments=(scripts/deps/lab.sh)
[ "${1:-}" = "--lab" ] || fragments=(scripts/deps/*.sh)
for f in "${fragments[@]}"; do
    echo "install-deps: $(basename "$f" .sh)"
    bash "$f"
done
echo "install-deps: done"
