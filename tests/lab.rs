//! `vmguard lab run` end to end in both ARP modes, one lab at a time: real namespaces, a private
//! OVS, dnsmasq, DHCP clients and attack tools; every case must hold and nothing may be left.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// One attack of each SPEC "must be dropped" item, as the table names them.
const ATTACKS: &[&str] = &[
    "ip link set address to a foreign MAC",
    "ping -I from an IPv4 address nobody owns",
    "ping -I from an IPv6 address nobody owns",
    "arpspoof -r: claims the gateway's IP",
    "arping -S: requests with the gateway's IP",
    "fake_router26 -E D: RA behind a large destination header, fragmented",
    "RA whose first fragment cuts the header chain",
    "fake_advertise6: NA for the gateway's link-local",
    "fake_advertise6 and a crafted NA: own address, foreign TLL",
    "fake_solicitate6 and a crafted NS: foreign source link-layer address",
    "DAD DoS: dos-new-ip6",
    "redir6: ICMPv6 redirect",
    "ICMPv4 redirect to the attacker",
    "rogue DHCPv4 server: dnsmasq in the attacker",
    "fake_dhcps6: rogue DHCPv6 server",
    "DHCPv4 OFFER in 8-byte IPv4 fragments",
    "arping -V 10 / -V 0: 802.1Q-tagged",
    "stacked 802.1ad + 802.1Q tags",
    "other ethertypes",
    "unguarded port (no hook ran)",
];

fn lab_leftovers() -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vmguard-lab-"))
        .collect();
    if Path::new("/run/vmguard-lab").exists() {
        left.push("/run/vmguard-lab".into());
    }
    left
}

#[test]
fn lab_run_holds_in_both_arp_modes_and_leaves_nothing() {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    assert!(
        root,
        "tests/lab.rs needs root (network namespaces, Open vSwitch, raw sockets): run the tests as \
         root after `bash scripts/install-deps.sh --lab` (it installs the lab's tools)"
    );
    for mode in ["direct", "responder"] {
        let out = Command::new(env!("CARGO_BIN_EXE_vmguard"))
            .args(["lab", "run", "--arp-mode", mode])
            .output()
            .expect("cannot run the vmguard binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let report = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
        assert!(
            out.status.success(),
            "`vmguard lab run --arp-mode {mode}` failed ({}); a missing tool or a case that did \
             not hold is named below\n{report}",
            out.status
        );
        for attack in ATTACKS {
            let row = stdout.lines().find(|l| l.contains(attack));
            assert!(
                row.is_some_and(|r| r.contains(" blocked ") && r.contains(" ok ")),
                "arp_mode={mode}: no blocked row for {attack:?}\n{report}"
            );
        }
        for what in ["ARP", "NS"] {
            assert!(
                stdout.contains(&format!("{what} fan-out with vmguard ({mode})"))
                    && stdout.contains(&format!("{what} fan-out on a plain NORMAL bridge")),
                "arp_mode={mode}: the {what} fan-out rows are missing\n{report}"
            );
        }
        let summary = stdout
            .lines()
            .find(|l| l.starts_with("lab: ") && l.contains(" passed, "))
            .unwrap_or_default();
        assert!(
            summary.ends_with(" passed, 0 failed"),
            "arp_mode={mode}: summary {summary:?}\n{report}"
        );
        let left = lab_leftovers();
        assert!(
            left.is_empty(),
            "arp_mode={mode}: the lab left {left:?} behind"
        );
    }
}
