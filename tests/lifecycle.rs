//! The VM lifecycle against a real, private Open vSwitch (see tests/common): `init`, `apply`,
//! `remove` and `flows` as the libvirt hook and the operator run them, checked on the switch
//! itself (`ovs-ofctl dump-flows`, the Bridge row's `external_ids`).
//!
//! Needs root and Open vSwitch; fails loudly without them.

#[allow(unused_imports)]
mod common;

use std::collections::BTreeMap;

use common::cli::{domain_xml, Run, Vmguard};
use common::Ovs;
use vmguard::model::{DomainUuid, MacAddr};
use vmguard::pipeline::{Cookie, IfaceKey};

const BR: &str = "vm-switch";
const UPLINK: &str = "upstream";
const TAG: u64 = 0x7667 << 48;
const TAG_MASK: u64 = 0xffff << 48;
const KEY_MASK: u64 = (1 << 40) - 1;

/// A test VM with one interface.
struct Vm {
    name: &'static str,
    uuid: &'static str,
    mac: &'static str,
    dev: &'static str,
    addrs: &'static [&'static str],
}

const VM1: Vm = Vm {
    name: "vm1",
    uuid: "aaaaaaaa-0000-4000-8000-000000000001",
    mac: "52:54:00:00:00:11",
    dev: "vnet1",
    addrs: &["10.0.0.11", "2001:db8::11"],
};

const VM2: Vm = Vm {
    name: "vm2",
    uuid: "aaaaaaaa-0000-4000-8000-000000000002",
    mac: "52:54:00:00:00:12",
    dev: "vnet2",
    addrs: &["10.0.0.12", "2001:db8::12"],
};

impl Vm {
    fn xml(&self) -> String {
        domain_xml(
            self.name,
            self.uuid,
            BR,
            &[(self.mac, self.dev, self.addrs)],
        )
    }

    fn key(&self) -> u64 {
        key(self.uuid, self.mac)
    }
}

fn key(uuid: &str, mac: &str) -> u64 {
    let uuid: DomainUuid = uuid.parse().expect("uuid");
    let mac: MacAddr = mac.parse().expect("mac");
    IfaceKey::derive(&uuid, mac).raw()
}

/// A private OVS with bridge vm-switch and its uplink `upstream` on ofport 1.
fn switch() -> Ovs {
    let ovs = Ovs::start();
    ovs.add_bridge(BR);
    ovs.add_port(BR, UPLINK, 1);
    ovs
}

fn vmguard(ovs: &Ovs) -> Vmguard {
    Vmguard::new(Some(ovs), BR, &[UPLINK], "direct")
}

/// A switch after `init`, with vmguard configured for it.
fn prepared() -> (Ovs, Vmguard) {
    let ovs = switch();
    let vg = vmguard(&ovs);
    vg.run(&["init"], "").ok();
    (ovs, vg)
}

fn dump(ovs: &Ovs) -> String {
    ovs.ofctl(&["--no-stats", "dump-flows", BR])
}

fn external_ids(ovs: &Ovs) -> String {
    ovs.vsctl(&["get", "Bridge", BR, "external_ids"])
}

/// Flow lines of a dump (without the reply header, if any).
fn flow_lines(dump: &str) -> Vec<&str> {
    dump.lines()
        .map(str::trim)
        .filter(|l| l.contains(" actions=") || l.contains(",actions=") || l.starts_with("cookie="))
        .collect()
}

fn cookie_of(line: &str) -> u64 {
    let v = line
        .split(',')
        .find_map(|t| t.trim().strip_prefix("cookie="))
        .unwrap_or_else(|| panic!("no cookie in {line:?}"));
    u64::from_str_radix(v.trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("cookie {v:?} in {line:?}: {e}"))
}

/// The interface key of a vmguard flow; `None` for a flow without vmguard's tag.
fn key_of(line: &str) -> Option<u64> {
    let c = cookie_of(line);
    (c & TAG_MASK == TAG).then_some(c & KEY_MASK)
}

fn lines_with_key(dump: &str, key: u64) -> Vec<String> {
    flow_lines(dump)
        .into_iter()
        .filter(|l| key_of(l) == Some(key))
        .map(str::to_string)
        .collect()
}

/// The flows of one interface key, read with the product's own cookie selector.
fn flows_of(ovs: &Ovs, key: u64) -> String {
    let sel = Cookie::owner_selector(IfaceKey::from_raw(key).expect("40-bit key"));
    ovs.ofctl(&["--no-stats", "dump-flows", BR, &sel])
}

/// True if the flow matches on `in_port=N` or outputs to port N.
fn mentions_port(line: &str, port: u32) -> bool {
    let (head, actions) = line.split_once("actions=").unwrap_or((line, ""));
    let in_port = format!("in_port={port}");
    let output = format!("output:{port}");
    head.split(',').map(str::trim).any(|t| t == in_port)
        || actions.split(',').map(str::trim).any(|a| a == output)
}

/// Packet counters by flow (the flow line without its statistics).
fn counters(ovs: &Ovs) -> BTreeMap<String, u64> {
    let out = ovs.ofctl(&["dump-flows", BR]);
    let mut map = BTreeMap::new();
    for line in flow_lines(&out) {
        let mut n = 0;
        let mut rest = Vec::new();
        let (head, actions) = line.split_once(" actions=").expect("actions");
        for tok in head.split(',').map(str::trim) {
            if let Some(v) = tok.strip_prefix("n_packets=") {
                n = v.parse().expect("n_packets");
            } else if ["duration=", "n_bytes=", "idle_age=", "hard_age="]
                .iter()
                .any(|p| tok.starts_with(p))
            {
                continue;
            } else {
                rest.push(tok);
            }
        }
        map.insert(format!("{} actions={actions}", rest.join(",")), n);
    }
    map
}

/// Every flow of `before` is still there and its counter did not go down (a flow deleted and
/// re-added starts again from 0).
fn assert_counters_kept(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
    for (flow, n) in before {
        match after.get(flow) {
            None => panic!("flow gone: {flow}"),
            Some(m) => assert!(m >= n, "counter reset from {n} to {m}: {flow}"),
        }
    }
    assert_eq!(before.len(), after.len(), "flows were added");
}

fn record_key(key: u64) -> String {
    format!("vmguard-if-{key:010x}")
}

/// An IPv4/UDP frame as hex, with a valid IPv4 header checksum.
fn ipv4_udp(src_mac: &str, dst_mac: &str, src: [u8; 4], dst: [u8; 4]) -> String {
    let payload = [0u8; 18];
    let udp_len = 8 + payload.len() as u16;
    let total = 20 + udp_len;
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0,
        0,
        64,
        17,
        0,
        0,
    ];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(c[1]))
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let csum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10] = (csum >> 8) as u8;
    ip[11] = csum as u8;
    let mut frame = Vec::new();
    for mac in [dst_mac, src_mac] {
        let m: MacAddr = mac.parse().expect("mac");
        frame.extend_from_slice(&m.0);
    }
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&[
        0x30,
        0x39,
        0x00,
        0x50,
        (udp_len >> 8) as u8,
        udp_len as u8,
        0,
        0,
    ]);
    frame.extend_from_slice(&payload);
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

fn fail(run: &Run, what: &str) {
    assert_ne!(
        run.code, 0,
        "{what}: expected failure\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

fn get_bridge(ovs: &Ovs, column: &str) -> String {
    ovs.vsctl(&["get", "Bridge", BR, column])
}

// ---------------------------------------------------------------------------------------------
// init

#[test]
fn init_twice_changes_nothing_the_second_time() {
    let ovs = switch();
    let vg = vmguard(&ovs);
    let first = vg.run(&["init"], "").ok();
    assert!(
        !first.stderr.contains("nothing changed"),
        "first init on a fresh bridge reported no change:\n{}",
        first.stderr
    );
    assert!(
        first.stdout.is_empty(),
        "init wrote to stdout: {}",
        first.stdout
    );
    let flows = dump(&ovs);
    let ids = external_ids(&ovs);

    let second = vg.run(&["init"], "").ok();
    assert!(
        second.stderr.contains("nothing changed"),
        "second init should say nothing changed:\n{}",
        second.stderr
    );
    assert_eq!(dump(&ovs), flows, "second init changed the flows");
    assert_eq!(external_ids(&ovs), ids);

    assert_eq!(get_bridge(&ovs, "fail_mode"), "secure");
    let protocols = get_bridge(&ovs, "protocols");
    for p in ["OpenFlow13", "OpenFlow14"] {
        assert!(protocols.contains(p), "protocols {protocols} lack {p}");
    }
    assert_eq!(ovs.ofctl(&["get-frags", BR]), "nx-match");

    // Exactly the base flows, all tagged.
    let base = Vmguard::new(None, BR, &[UPLINK], "direct")
        .run(&["flows", "--base", "--ofport", "upstream=1"], "")
        .ok();
    let lines = flow_lines(&flows);
    assert_eq!(
        lines.len(),
        base.stdout.lines().count(),
        "init installed a different number of flows than `flows --base` prints:\n{flows}"
    );
    for l in &lines {
        assert_eq!(key_of(l), Some(0), "not a base flow: {l}");
    }
}

#[test]
fn init_takes_over_a_standalone_bridge_with_foreign_flows() {
    let ovs = switch();
    ovs.vsctl(&["set", "Bridge", BR, "fail_mode=standalone"]);
    ovs.ofctl(&["add-flow", BR, "priority=0,actions=NORMAL"]);
    ovs.ofctl(&[
        "add-flow",
        BR,
        "cookie=0x99,table=3,priority=5,ip,actions=drop",
    ]);
    assert_eq!(flow_lines(&dump(&ovs)).len(), 2);

    vmguard(&ovs).run(&["init"], "").ok();
    let flows = dump(&ovs);
    assert!(!flow_lines(&flows).is_empty(), "no flows after init");
    for l in flow_lines(&flows) {
        assert!(
            key_of(l).is_some(),
            "flow without vmguard's tag after init: {l}"
        );
    }
    assert_eq!(get_bridge(&ovs, "fail_mode"), "secure");

    // The bridge is secure now, so the next init must remove foreign flows itself (changing the
    // fail mode above made OVS flush them). Added over OpenFlow 1.0 (ovs-ofctl's default), a
    // flow dumps over OpenFlow 1.4, as vmguard reads, as `reset_counts priority=7`: a flag
    // before the match, after a space.
    ovs.ofctl(&[
        "-O",
        "OpenFlow10",
        "add-flow",
        BR,
        "table=60,priority=7,actions=drop",
    ]);
    ovs.ofctl(&[
        "-O",
        "OpenFlow14",
        "add-flow",
        BR,
        "cookie=0x99,table=3,priority=5,ip,actions=drop",
    ]);
    let of14 = ovs.ofctl(&["-O", "OpenFlow14", "dump-flows", BR]);
    assert!(
        of14.contains("reset_counts priority=7"),
        "the OpenFlow 1.0 flow should dump with its flag: {of14}"
    );
    let run = vmguard(&ovs).run(&["init"], "").ok();
    assert!(
        run.stderr.contains("flows_removed=2"),
        "init should remove both foreign flows: {}",
        run.stderr
    );
    for l in flow_lines(&dump(&ovs)) {
        assert!(
            key_of(l).is_some(),
            "flow without vmguard's tag after the second init: {l}"
        );
    }
}

#[test]
fn init_on_a_missing_bridge_fails_naming_it() {
    let ovs = Ovs::start();
    let run = vmguard(&ovs).run(&["init"], "");
    fail(&run, "init without the bridge");
    assert!(
        run.stderr.contains(BR) && run.stderr.contains("does not exist"),
        "message should name the missing bridge: {}",
        run.stderr
    );
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    assert_eq!(ovs.vsctl(&["list-br"]), "", "init created a bridge");
}

#[test]
fn init_without_the_configured_uplink_fails_naming_it() {
    let ovs = Ovs::start();
    ovs.add_bridge(BR);
    let flows = dump(&ovs);
    let run = vmguard(&ovs).run(&["init"], "");
    fail(&run, "init without the uplink port");
    assert!(
        run.stderr.contains(UPLINK) && run.stderr.contains(BR),
        "message should name the uplink and the bridge: {}",
        run.stderr
    );
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    assert_eq!(dump(&ovs), flows, "failed init changed flows");
    assert_eq!(
        get_bridge(&ovs, "fail_mode"),
        "[]",
        "failed init changed fail_mode"
    );
}

// ---------------------------------------------------------------------------------------------
// apply

#[test]
fn apply_twice_is_identical_and_keeps_packet_counters() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    vg.run(&["apply"], &VM1.xml()).ok();
    let flows = dump(&ovs);
    let ids = external_ids(&ovs);
    assert!(
        !lines_with_key(&flows, VM1.key()).is_empty(),
        "no VM flows:\n{flows}"
    );
    assert!(ids.contains(&record_key(VM1.key())), "no record: {ids}");

    // A frame from the VM's own addresses: admitted, forwarded, counted.
    let frame = ipv4_udp(VM1.mac, "02:00:00:00:00:01", [10, 0, 0, 11], [10, 0, 0, 1]);
    let out = ovs.send(BR, VM1.dev, &frame);
    assert!(
        out.contains(UPLINK),
        "frame not forwarded to the uplink: {out:?}"
    );
    let before = counters(&ovs);
    let hit: Vec<(&String, &u64)> = before
        .iter()
        .filter(|(f, n)| **n > 0 && f.contains("in_port=5"))
        .collect();
    assert!(!hit.is_empty(), "no VM flow counted the frame: {before:#?}");

    let again = vg.run(&["apply"], &VM1.xml()).ok();
    assert!(
        again.stderr.contains("flows_added=0 flows_removed=0"),
        "re-apply should change no flow: {}",
        again.stderr
    );
    assert_eq!(dump(&ovs), flows, "re-apply changed the flows");
    assert_eq!(external_ids(&ovs), ids, "re-apply changed the records");
    assert_counters_kept(&before, &counters(&ovs));

    // A real change (one more address) touches only what differs: the counted flows stay.
    let more = domain_xml(
        VM1.name,
        VM1.uuid,
        BR,
        &[(
            VM1.mac,
            VM1.dev,
            &["10.0.0.11", "2001:db8::11", "10.0.0.111"],
        )],
    );
    let changed = vg.run(&["apply"], &more).ok();
    assert!(
        changed.stderr.contains("flows_removed=0"),
        "adding an address removed flows: {}",
        changed.stderr
    );
    let after = counters(&ovs);
    for (flow, n) in hit {
        assert!(
            after.get(flow).is_some_and(|m| m >= n),
            "flow lost its counter ({n} before, now {:?}): {flow}",
            after.get(flow)
        );
    }
    assert!(
        dump(&ovs).contains("nw_src=10.0.0.111"),
        "new address not installed"
    );
}

#[test]
fn remove_touches_neither_other_vms_nor_foreign_flows() {
    let (ovs, vg) = prepared();
    let foreign = "cookie=0x1234, table=99, priority=1 actions=drop";
    ovs.ofctl(&[
        "add-flow",
        BR,
        "cookie=0x1234,table=99,priority=1,actions=drop",
    ]);
    ovs.add_port(BR, VM1.dev, 5);
    ovs.add_port(BR, VM2.dev, 6);
    vg.run(&["apply"], &VM1.xml()).ok();
    vg.run(&["apply"], &VM2.xml()).ok();
    assert!(
        dump(&ovs).contains(foreign),
        "apply removed the foreign flow"
    );
    let vm2_flows = flows_of(&ovs, VM2.key());
    assert!(!flow_lines(&vm2_flows).is_empty());
    assert!(!flow_lines(&flows_of(&ovs, VM1.key())).is_empty());

    let run = vg.run(&["remove"], &VM1.xml()).ok();
    assert!(
        run.stdout.is_empty(),
        "remove wrote to stdout: {}",
        run.stdout
    );

    let flows = dump(&ovs);
    assert_eq!(flows_of(&ovs, VM2.key()), vm2_flows, "VM2's flows changed");
    assert!(flows.contains(foreign), "foreign flow removed:\n{flows}");
    assert_eq!(
        lines_with_key(&flows, VM1.key()),
        Vec::<String>::new(),
        "VM1's flows remain"
    );
    let ids = external_ids(&ovs);
    assert!(
        !ids.contains(&record_key(VM1.key())),
        "VM1's record remains: {ids}"
    );
    assert!(
        ids.contains(&record_key(VM2.key())),
        "VM2's record gone: {ids}"
    );
}

/// Every flow on `port` (in_port or output) must carry `owner`; none may carry `gone`.
fn assert_port_owned_by(dump: &str, port: u32, owner: u64, gone: u64) {
    let on_port: Vec<&str> = flow_lines(dump)
        .into_iter()
        .filter(|l| mentions_port(l, port))
        .collect();
    assert!(!on_port.is_empty(), "no flow on port {port}:\n{dump}");
    for l in on_port {
        assert_eq!(
            key_of(l),
            Some(owner),
            "flow on port {port} not of its new owner: {l}"
        );
    }
    assert_eq!(
        lines_with_key(dump, gone),
        Vec::<String>::new(),
        "flows of the port's previous owner remain"
    );
}

#[test]
fn a_reused_ofport_carries_only_the_new_owner_after_a_clean_remove() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    vg.run(&["apply"], &VM1.xml()).ok();
    vg.run(&["remove"], &VM1.xml()).ok();
    ovs.del_port(BR, VM1.dev);
    ovs.add_port(BR, VM2.dev, 5);
    vg.run(&["apply"], &VM2.xml()).ok();
    assert_port_owned_by(&dump(&ovs), 5, VM2.key(), VM1.key());
}

#[test]
fn a_reused_ofport_evicts_a_stale_owner_whose_stop_hook_never_ran() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    vg.run(&["apply"], &VM1.xml()).ok();
    let vm1_flows = lines_with_key(&dump(&ovs), VM1.key());
    assert!(
        vm1_flows.iter().any(|l| !l.contains("in_port=")),
        "expected steering flows without in_port: {vm1_flows:#?}"
    );
    ovs.del_port(BR, VM1.dev);
    ovs.add_port(BR, VM2.dev, 5);

    let run = vg.run(&["apply"], &VM2.xml()).ok();
    let flows = dump(&ovs);
    assert_port_owned_by(&flows, 5, VM2.key(), VM1.key());
    let ids = external_ids(&ovs);
    assert!(
        !ids.contains(&record_key(VM1.key())),
        "stale record remains: {ids}"
    );
    assert!(
        ids.contains(&record_key(VM2.key())),
        "no record of VM2: {ids}"
    );
    assert!(
        run.stderr.contains(VM1.name) && run.stderr.contains("stale"),
        "stderr should note the evicted stale owner: {}",
        run.stderr
    );
    // The log line's count must include the stale owner's flows it just deleted.
    let removed = vm1_flows.len();
    assert!(
        run.stderr.contains(&format!("flows_removed={removed}")),
        "log should report the {removed} removed flows of the stale owner: {}",
        run.stderr
    );
}

#[test]
fn a_stale_owner_on_the_reused_ofport_does_not_block_its_old_addresses() {
    // VM1 crashed without its stop hook; the tap of the next VM gets VM1's ofport and (a
    // re-created student VM) VM1's addresses. The port proves VM1 is gone: VM2 must install.
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    vg.run(&["apply"], &VM1.xml()).ok();
    ovs.del_port(BR, VM1.dev);
    ovs.add_port(BR, VM2.dev, 5);
    let successor = Vm {
        addrs: VM1.addrs,
        ..VM2
    };
    vg.run(&["apply"], &successor.xml()).ok();
    assert_port_owned_by(&dump(&ovs), 5, successor.key(), VM1.key());
    assert!(!external_ids(&ovs).contains(&record_key(VM1.key())));
}

#[test]
fn a_live_owner_keeps_its_addresses() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    ovs.add_port(BR, VM2.dev, 6);
    vg.run(&["apply"], &VM1.xml()).ok();
    let before = dump(&ovs);
    let thief = Vm {
        addrs: &["10.0.0.11"],
        ..VM2
    };
    let run = vg.run(&["apply"], &thief.xml());
    assert_ne!(run.code, 0, "a live owner's address must be refused");
    assert!(
        run.stderr
            .contains("10.0.0.11 is already owned by domain vm1"),
        "{}",
        run.stderr
    );
    assert_eq!(dump(&ovs), before);
}

#[test]
fn reapply_with_a_dropped_nic_removes_its_flows() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, "vnet1", 5);
    ovs.add_port(BR, "vnet2", 6);
    let uuid = "bbbbbbbb-0000-4000-8000-000000000001";
    let nic1 = ("52:54:00:00:00:21", "vnet1", &["10.0.0.21"][..]);
    let nic2 = (
        "52:54:00:00:00:22",
        "vnet2",
        &["10.0.0.22", "2001:db8::22"][..],
    );
    vg.run(&["apply"], &domain_xml("twonic", uuid, BR, &[nic1, nic2]))
        .ok();
    let (k1, k2) = (key(uuid, nic1.0), key(uuid, nic2.0));
    let nic1_flows = flows_of(&ovs, k1);
    let nic2_count = flow_lines(&flows_of(&ovs, k2)).len();
    assert!(nic2_count > 0);

    let run = vg
        .run(&["apply"], &domain_xml("twonic", uuid, BR, &[nic1]))
        .ok();
    let flows = dump(&ovs);
    assert_eq!(
        lines_with_key(&flows, k2),
        Vec::<String>::new(),
        "dropped NIC's flows remain"
    );
    assert!(
        !flow_lines(&flows).iter().any(|l| mentions_port(l, 6)),
        "flows on the dropped NIC's port remain:\n{flows}"
    );
    assert_eq!(
        flows_of(&ovs, k1),
        nic1_flows,
        "the kept NIC's flows changed"
    );
    let ids = external_ids(&ovs);
    assert!(
        !ids.contains(&record_key(k2)),
        "dropped NIC's record remains: {ids}"
    );
    assert!(
        ids.contains(&record_key(k1)),
        "kept NIC's record gone: {ids}"
    );
    // The log line's count must include the dropped NIC's flows it just deleted.
    let removed = nic2_count;
    assert!(
        run.stderr.contains(&format!("flows_removed={removed}")),
        "log should report the {removed} removed flows of the dropped NIC: {}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// remove

fn assert_vm1_gone(ovs: &Ovs) {
    assert_eq!(
        lines_with_key(&dump(ovs), VM1.key()),
        Vec::<String>::new(),
        "VM1's flows remain"
    );
    let ids = external_ids(ovs);
    assert!(
        !ids.contains(&record_key(VM1.key())),
        "VM1's record remains: {ids}"
    );
}

#[test]
fn remove_works_with_broken_metadata() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    vg.run(&["apply"], &VM1.xml()).ok();
    let broken = domain_xml(
        VM1.name,
        VM1.uuid,
        BR,
        &[(VM1.mac, VM1.dev, &["10.0.0.300"])],
    );
    fail(&vg.run(&["apply"], &broken), "apply with an invalid IP");
    vg.run(&["remove"], &broken).ok();
    assert_vm1_gone(&ovs);
}

#[test]
fn remove_works_without_any_metadata() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    vg.run(&["apply"], &VM1.xml()).ok();
    let stripped = VM1.xml();
    let start = stripped.find("<metadata>").unwrap();
    let end = stripped.find("</metadata>").unwrap() + "</metadata>".len();
    let stripped = format!("{}{}", &stripped[..start], &stripped[end..]);
    vg.run(&["remove"], &stripped).ok();
    assert_vm1_gone(&ovs);
}

#[test]
fn remove_works_when_the_port_is_already_gone() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    vg.run(&["apply"], &VM1.xml()).ok();
    ovs.del_port(BR, VM1.dev);
    vg.run(&["remove"], &VM1.xml()).ok();
    assert_vm1_gone(&ovs);
}

#[test]
fn remove_of_an_unknown_domain_is_a_successful_no_op() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    vg.run(&["apply"], &VM1.xml()).ok();
    let (flows, ids) = (dump(&ovs), external_ids(&ovs));
    let unknown = domain_xml(
        "never-applied",
        "cccccccc-0000-4000-8000-000000000009",
        BR,
        &[("52:54:00:00:00:99", "vnet9", &["10.0.0.99"])],
    );
    let run = vg.run(&["remove"], &unknown).ok();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(dump(&ovs), flows);
    assert_eq!(external_ids(&ovs), ids);
}

// ---------------------------------------------------------------------------------------------
// atomicity, dry run, offline

#[test]
fn a_bundle_ovs_rejects_changes_nothing() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    ovs.add_port(BR, "vnet9", 9);
    vg.run(&["apply"], &VM1.xml()).ok();
    // Table 20 (source_guard) may hold 20 flows: the base flow and VM1's fit, VM9's do not.
    ovs.vsctl(&[
        "--",
        "--id=@ft",
        "create",
        "Flow_Table",
        "flow_limit=20",
        "overflow_policy=refuse",
        "--",
        "set",
        "Bridge",
        BR,
        "flow_tables:20=@ft",
    ]);
    let in_table_20 = flow_lines(&dump(&ovs))
        .iter()
        .filter(|l| l.contains(" table=20,"))
        .count();
    assert!(
        in_table_20 < 20,
        "setup: table 20 already holds {in_table_20} flows"
    );
    let (flows, ids) = (dump(&ovs), external_ids(&ovs));

    let big = domain_xml(
        "vm9",
        "dddddddd-0000-4000-8000-000000000009",
        BR,
        &[(
            "52:54:00:00:00:99",
            "vnet9",
            &[
                "10.0.0.91",
                "10.0.0.92",
                "10.0.0.93",
                "2001:db8::91",
                "2001:db8::92",
            ],
        )],
    );
    let run = vg.run(&["apply"], &big);
    fail(&run, "apply beyond the table's flow limit");
    assert!(
        run.stderr.contains("vm9"),
        "error should name the domain: {}",
        run.stderr
    );
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    assert_eq!(dump(&ovs), flows, "a rejected bundle changed the flows");
    assert_eq!(
        external_ids(&ovs),
        ids,
        "a rejected bundle changed the records"
    );

    // A re-apply that deletes flows (10.0.0.11 goes) and adds too many: the deleted flows and
    // VM1's record must be back exactly as they were.
    let replaced = domain_xml(
        VM1.name,
        VM1.uuid,
        BR,
        &[(
            VM1.mac,
            VM1.dev,
            &[
                "10.0.0.14",
                "10.0.0.15",
                "10.0.0.16",
                "10.0.0.17",
                "10.0.0.18",
                "2001:db8::11",
            ],
        )],
    );
    let run = vg.run(&["apply", "--dry-run"], &replaced).ok();
    assert!(
        run.stdout.contains("delete_strict") && run.stdout.contains("add "),
        "setup: the re-apply should both delete and add:\n{}",
        run.stdout
    );
    let run = vg.run(&["apply"], &replaced);
    fail(&run, "re-apply beyond the table's flow limit");
    assert_eq!(dump(&ovs), flows, "a rejected re-apply changed the flows");
    assert_eq!(
        external_ids(&ovs),
        ids,
        "a rejected re-apply changed the records"
    );
}

#[test]
fn dry_run_prints_the_bundle_and_changes_nothing() {
    let (ovs, vg) = prepared();
    ovs.add_port(BR, VM1.dev, 5);
    let (flows, ids) = (dump(&ovs), external_ids(&ovs));
    let run = vg.run(&["apply", "--dry-run"], &VM1.xml()).ok();
    let adds = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("add cookie="))
        .count();
    let offline = Vmguard::new(None, BR, &[UPLINK], "direct")
        .run(&["flows", "--ofport", "vnet1=5"], &VM1.xml())
        .ok();
    assert_eq!(
        adds,
        offline.stdout.lines().count(),
        "dry run should add every flow of the VM:\n{}",
        run.stdout
    );
    assert_eq!(dump(&ovs), flows, "dry run changed the flows");
    assert_eq!(external_ids(&ovs), ids, "dry run changed the records");

    // And for removal.
    vg.run(&["apply"], &VM1.xml()).ok();
    let (flows, ids) = (dump(&ovs), external_ids(&ovs));
    let run = vg.run(&["remove", "--dry-run"], &VM1.xml()).ok();
    assert!(
        run.stdout.lines().any(|l| l.starts_with("delete cookie=")),
        "remove --dry-run printed no delete: {}",
        run.stdout
    );
    assert_eq!(dump(&ovs), flows, "remove --dry-run changed the flows");
    assert_eq!(
        external_ids(&ovs),
        ids,
        "remove --dry-run changed the records"
    );
}

#[test]
fn flows_with_every_ofport_given_needs_no_ovs() {
    let vg = Vmguard::new(None, BR, &[UPLINK], "direct");
    let run = vg.run(&["flows", "--ofport", "vnet1=5"], &VM1.xml()).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.len() > 10, "{}", run.stdout);
    for l in &lines {
        assert_eq!(key_of(l), Some(VM1.key()), "{l}");
        if l.contains("in_port=") {
            assert!(mentions_port(l, 5), "{l}");
        }
    }
    // Without the port number it has to ask OVS, which is not there: a clear hint.
    let run = vg.run(&["flows"], &VM1.xml());
    fail(&run, "flows without --ofport and without OVS");
    assert!(run.stderr.contains("--ofport"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn flows_refuses_an_ofport_for_no_interface_or_uplink() {
    let vg = Vmguard::new(None, BR, &[UPLINK], "direct");
    // A typo must not be ignored (the number would silently come from OVS, or not be used).
    for args in [
        &["flows", "--ofport", "vnet1=5", "--ofport", "vnet9=9"][..],
        &[
            "flows",
            "--ofport",
            "vnet1=5",
            "--ofport",
            "52:54:00:00:99:99=9",
        ][..],
        &[
            "flows",
            "--base",
            "--ofport",
            "upstream=1",
            "--ofport",
            "uplink=2",
        ][..],
    ] {
        let run = vg.run(args, &VM1.xml());
        fail(&run, &format!("{args:?}"));
        let bad = args.last().and_then(|a| a.split('=').next()).unwrap_or("");
        assert!(
            run.stderr.contains(&format!("--ofport {bad}: not ")),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    // The interface's MAC is as good as its device name.
    let by_dev = vg.run(&["flows", "--ofport", "vnet1=5"], &VM1.xml()).ok();
    let mac = format!("{}=5", VM1.mac.to_ascii_uppercase());
    let by_mac = vg.run(&["flows", "--ofport", &mac], &VM1.xml()).ok();
    assert_eq!(by_dev.stdout, by_mac.stdout);
}
