//! vmguard's own OpenFlow requests (`src/openflow.rs`) against a real private Open vSwitch,
//! checked with `ovs-ofctl`: the fragment mode read and set both ways, flow counts by cookie,
//! and a clear error for a bridge that does not exist.
//!
//! Needs root and Open vSwitch; fails loudly without them.

mod common;

use common::Ovs;
use vmguard::ovs::Ovs as Switch;

const BR: &str = "br-of";
/// The modes the userspace switch supports (not `reassemble`).
const MODES: [&str; 3] = ["normal", "drop", "nx-match"];

fn setup() -> (Ovs, Switch) {
    let ovs = Ovs::start();
    ovs.add_bridge(BR);
    let switch = Switch::new(Some(ovs.rundir()));
    (ovs, switch)
}

#[test]
fn fragment_mode_agrees_with_ovs_ofctl_both_ways() {
    let (ovs, switch) = setup();
    // Set by vmguard, read by ovs-ofctl; then the other way round. Each mode differs from the
    // one before, so a request that silently did nothing fails.
    for mode in MODES.iter().chain(MODES.iter().rev().skip(1)) {
        switch.set_frags(BR, mode).expect("set_frags");
        assert_eq!(ovs.ofctl(&["get-frags", BR]).trim(), *mode, "set {mode}");
    }
    for mode in MODES {
        ovs.ofctl(&["set-frags", BR, mode]);
        assert_eq!(switch.get_frags(BR).expect("get_frags"), mode);
    }
    // OVS ignores a mode it does not support (the userspace switch cannot reassemble), as
    // `ovs-ofctl set-frags` reports; so must vmguard.
    switch.set_frags(BR, "nx-match").unwrap();
    let err = switch.set_frags(BR, "reassemble").unwrap_err().to_string();
    assert!(
        err.contains("kept mode nx-match") && err.contains("reassemble"),
        "{err}"
    );
}

#[test]
fn flows_are_counted_by_cookie_and_mask() {
    let (ovs, switch) = setup();
    let tag = 0x7667u64 << 48;
    let tag_mask = 0xffffu64 << 48;
    assert_eq!(switch.count_flows(BR, tag, tag_mask).unwrap(), 0);
    let mut lines = String::new();
    for (i, cookie) in [tag | 1, tag | 2, tag | (1 << 40) | 1, 0x1234]
        .iter()
        .enumerate()
    {
        for table in [0, 50] {
            lines.push_str(&format!(
                "cookie={cookie:#x},table={table},priority={},in_port={},actions=drop\n",
                100 + i,
                i + 1
            ));
        }
    }
    let file = std::env::temp_dir().join(format!("vmguard-openflow-{}.flows", std::process::id()));
    std::fs::write(&file, lines).unwrap();
    ovs.ofctl(&["add-flows", BR, file.to_str().unwrap()]);
    std::fs::remove_file(&file).ok();
    let key_mask = tag_mask | ((1u64 << 40) - 1);
    for (value, mask, want) in [
        (tag, tag_mask, 6),
        (tag | 1, key_mask, 4),
        (tag | 2, key_mask, 2),
        (tag | 1, u64::MAX, 2),
        (0x1234, u64::MAX, 2),
        (0, 0, 8 + 1), // and the bridge's own default NORMAL flow
        (tag | 3, key_mask, 0),
    ] {
        assert_eq!(
            switch.count_flows(BR, value, mask).unwrap(),
            want,
            "cookie={value:#x}/{mask:#x}"
        );
        let dumped = ovs
            .ofctl(&["dump-flows", BR, &format!("cookie={value:#x}/{mask:#x}")])
            .lines()
            .filter(|l| l.contains("actions="))
            .count();
        assert_eq!(
            dumped, want as usize,
            "ovs-ofctl disagrees on {value:#x}/{mask:#x}"
        );
    }
}

#[test]
fn a_missing_bridge_is_a_clear_error() {
    let (_ovs, switch) = setup();
    let err = switch.get_frags("no-such-br").unwrap_err().to_string();
    assert!(
        err.contains("no-such-br.mgmt") && err.contains("connecting"),
        "unclear error: {err}"
    );
}
