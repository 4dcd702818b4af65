# shellcheck shell=bash
# Dependencies of `vmguard lab run` (src/lab/) and its test (tests/lab.rs).
#
# Source it or run it with bash, as root, after `apt-get update`. Idempotent: a second run
# installs nothing. It installs:
#   openvswitch-switch          the lab's private ovsdb-server and ovs-vswitchd, ovs-* tools
#   iproute2, procps, ethtool   namespaces, veths, sysctls, checksum offload off
#   dnsmasq-base                the gateway's DHCPv4/DHCPv6/RA server and the rogue DHCP server
#                               (the binary only: the dnsmasq package would start a host service)
#   busybox, isc-dhcp-client    the guests' DHCPv4 (udhcpc) and DHCPv6 (dhclient -6) clients
#   iputils-ping, tcpdump       traffic and the captures every verdict is read from
#   arping, dsniff, thc-ipv6    attack tools: arping -S/-U, arpspoof, fake_router26, parasite6, …
#   tcpreplay                   sends the hand-built frames no tool makes (VLAN stacks, fragments)

vmguard_deps_lab() (
    set -euo pipefail
    export DEBIAN_FRONTEND=noninteractive
    local pkgs=(openvswitch-switch iproute2 procps ethtool dnsmasq-base busybox isc-dhcp-client
        iputils-ping tcpdump arping dsniff thc-ipv6 tcpreplay)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt-get -q install -y --no-install-recommends "${missing[@]}"
    fi
    echo "lab deps ready: ${pkgs[*]}"
)

vmguard_deps_lab
