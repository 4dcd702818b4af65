# shellcheck shell=bash
# Dependencies of the real-libvirt end-to-end test (tests/libvirt_e2e.rs).
#
# Source it or run it with bash, as root, after `apt-get update`. Idempotent: a second run
# installs and downloads nothing. It installs
#   - libvirt 9.0 (libvirt-daemon-system, libvirt-clients) from bookworm;
#   - qemu-system-x86 from bookworm-backports, because the machine's preinstalled qemu-utils 10
#     (from backports) Breaks bookworm's qemu-system-common 7.2: installing that would remove it;
# and unpacks into $VMGUARD_E2E_CACHE (default /var/cache/vmguard-e2e), without installing them:
#   - busybox from busybox-static (the guests' whole userland): busybox, BUSYBOX_VERSION. Not
#     installed because busybox-static Conflicts with busybox, which other tools pull in: the
#     second install silently removes the first;
#   - a Debian kernel plus the modules a guest needs for its virtio NIC: vmlinuz, modules/*.ko,
#     KERNEL_VERSION.
# Package scripts start no service here (policy-rc.d / no init); the test starts its own
# libvirtd, virtlogd and OVS in private namespaces.

vmguard_deps_libvirt() (
    set -euo pipefail
    local cache=${VMGUARD_E2E_CACHE:-/var/cache/vmguard-e2e}
    export DEBIAN_FRONTEND=noninteractive

    installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

    # qemu from bookworm-backports, through a temporary sources list on the configured mirror.
    if ! installed qemu-system-x86; then
        local bpo mirror
        bpo=$(mktemp -d)
        trap 'rm -rf "$bpo"' EXIT
        mkdir -p "$bpo"/lists/partial "$bpo"/archives/partial "$bpo"/parts
        cp /etc/apt/sources.list.d/debian.sources "$bpo"/parts/
        mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" >"$bpo"/parts/bpo.sources
        local opts=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$bpo/parts"
            -o "Dir::State::lists=$bpo/lists" -o "Dir::Cache::archives=$bpo/archives"
            -o APT::Sandbox::User=root)
        apt-get "${opts[@]}" -q update
        apt-get "${opts[@]}" -q install -y --no-install-recommends \
            qemu-system-x86/bookworm-backports qemu-system-common/bookworm-backports \
            qemu-system-data/bookworm-backports seabios/bookworm-backports
        rm -rf "$bpo"
        trap - EXIT
    fi

    if ! installed libvirt-daemon-system || ! installed libvirt-clients; then
        apt-get -q install -y --no-install-recommends libvirt-daemon-system libvirt-clients
    fi

    # Downloads package $1 into a fresh temp dir and unpacks it into $tmp/x.
    local tmp
    unpack() {
        tmp=$(mktemp -d)
        (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "$1")
        dpkg-deb -x "$tmp"/"$1"_*.deb "$tmp/x"
    }
    mkdir -p "$cache"
    trap 'rm -rf "${tmp:-}"' EXIT

    local bbver
    bbver=$(apt-cache policy busybox-static | awk '/Candidate:/{print $2}')
    if [ "$(cat "$cache/BUSYBOX_VERSION" 2>/dev/null)" != "$bbver" ]; then
        unpack busybox-static
        install -m 755 "$tmp/x/bin/busybox" "$cache/busybox"
        echo "$bbver" >"$cache/BUSYBOX_VERSION"
        rm -rf "$tmp"
    fi

    # The guest kernel: the one bookworm's linux-image-amd64 points at.
    local kpkg kver
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$kpkg" ] || { echo "libvirt.sh: cannot resolve linux-image-amd64" >&2; return 1; }
    kver=${kpkg#linux-image-}
    if [ "$(cat "$cache/KERNEL_VERSION" 2>/dev/null)" != "$kver" ]; then
        unpack "$kpkg"
        local k="$tmp/x/lib/modules/$kver/kernel"
        rm -rf "$cache/modules" "$cache/KERNEL_VERSION"
        mkdir -p "$cache/modules"
        cp "$tmp/x/boot/vmlinuz-$kver" "$cache/vmlinuz"
        # virtio-net and what it needs (modules in the Debian kernel); tests/e2e/init loads them.
        cp "$k"/drivers/virtio/{virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci}.ko \
            "$k"/net/core/failover.ko "$k"/drivers/net/{net_failover,virtio_net}.ko "$cache/modules/"
        chmod -R a+rX "$cache"
        echo "$kver" >"$cache/KERNEL_VERSION"
        rm -rf "$tmp"
    fi
    echo "libvirt e2e deps ready: $(virsh --version 2>/dev/null | sed 's/^/libvirt /'), $(qemu-system-x86_64 --version | head -1), busybox $bbver and kernel $kver in $cache"
)

vmguard_deps_libvirt
