//! Proves the private-OVS test harness in tests/common. Needs root and
//! Open vSwitch (the real daemons); fails loudly without them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use common::{datapath_actions, Ovs};

const MAC_A: &str = "020000000001";
const MAC_B: &str = "020000000002";
const BROADCAST: &str = "ffffffffffff";

/// Ethernet frame as hex, zero-padded to the 60-byte minimum.
fn eth(dst: &str, src: &str, ethertype: &str, payload: &str) -> String {
    let mut hex = format!("{dst}{src}{ethertype}{payload}");
    while hex.len() < 120 {
        hex.push_str("00");
    }
    hex
}

/// ARP request "who has 10.0.0.2, tell 10.0.0.1" from MAC_A, broadcast.
fn arp_request() -> String {
    let arp = format!("0001080006040001{MAC_A}0a000001{}0a000002", "000000000000");
    eth(BROADCAST, MAC_A, "0806", &arp)
}

/// A small IPv4 frame from B to A (contents are irrelevant to L2 switching).
fn unicast_b_to_a() -> String {
    let ip = "45000014000100004011000000a000020a000001"; // bogus checksum, fine for L2
    eth(MAC_A, MAC_B, "0800", ip)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn three_port_bridge(ovs: &Ovs) {
    ovs.add_bridge("br0");
    for (i, p) in ["p1", "p2", "p3"].iter().enumerate() {
        ovs.add_port("br0", p, i as u16 + 1);
    }
    ovs.ofctl(&["add-flow", "br0", "priority=0,actions=NORMAL"]);
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn switching_capture_trace_restart_and_cleanup() {
    let t0 = Instant::now();
    let ovs = Ovs::start();
    let started = t0.elapsed();
    three_port_bridge(&ovs);
    assert_eq!(ovs.vsctl(&["get", "Bridge", "br0", "fail_mode"]), "[]");
    assert_eq!(
        ovs.vsctl(&["get", "Interface", "p2", "ofport"]),
        "2",
        "ofport_request honoured"
    );

    // Broadcast floods to all other ports. The bridge's LOCAL port (named
    // like the bridge) is a port too: NORMAL floods there as well.
    let bcast = arp_request();
    assert_eq!(ovs.send("br0", "p1", &bcast), set(&["br0", "p2", "p3"]));

    // MAC_A was learned on p1: unicast to it leaves through p1 only.
    let uni = unicast_b_to_a();
    assert_eq!(ovs.send("br0", "p2", &uni), set(&["p1"]));

    // Capture returns the exact bytes that came out.
    let cap = ovs.send_capture("br0", "p2", &uni);
    assert_eq!(cap.len(), 1, "{cap:?}");
    assert_eq!(cap["p1"], vec![uni.clone()]);
    let cap = ovs.send_capture("br0", "p1", &bcast);
    assert_eq!(
        cap.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["br0", "p2", "p3"])
    );
    for frames in cap.values() {
        assert_eq!(frames, &vec![bcast.clone()]);
    }

    // A rewritten frame: swap MACs and send it back out of the in_port.
    ovs.ofctl(&[
        "add-flow",
        "br0",
        "priority=50,in_port=3,actions=mod_dl_src:02:00:00:00:00:33,IN_PORT",
    ]);
    let cap = ovs.send_capture("br0", "p3", &uni);
    let expected = format!("{MAC_A}020000000033{}", &uni[24..]);
    assert_eq!(cap.len(), 1, "{cap:?}");
    assert_eq!(cap["p3"], vec![expected]);

    // A drop flow installed right after traffic took a cached path: the next
    // frame must be dropped (send purges datapath flows first).
    ovs.ofctl(&["add-flow", "br0", "priority=100,in_port=2,actions=drop"]);
    assert_eq!(ovs.send("br0", "p2", &uni), BTreeSet::new());
    assert!(ovs.send_capture("br0", "p2", &uni).is_empty());

    // Trace.
    let trace = ovs.trace("br0", 2, &uni);
    assert_eq!(datapath_actions(&trace), "drop", "{trace}");
    let trace = ovs.trace("br0", 1, &bcast);
    assert!(trace.contains("NORMAL"), "{trace}");
    assert_ne!(datapath_actions(&trace), "drop", "{trace}");

    // external_ids, del_port.
    ovs.set_iface_external_id("p3", "vm-name", "guest \"three\"");
    assert_eq!(
        ovs.vsctl(&["get", "Interface", "p3", "external_ids:vm-name"]),
        r#""guest \"three\"""#
    );
    ovs.del_port("br0", "p3");
    assert_eq!(ovs.send("br0", "p1", &bcast), set(&["br0", "p2"]));
    ovs.add_port("br0", "p3", 3);

    // Restart: only vswitchd, flows and frag mode are gone, ports are back.
    ovs.ofctl(&["add-flow", "br0", "cookie=0x1234,priority=7,actions=drop"]);
    ovs.ofctl(&["set-frags", "br0", "drop"]);
    assert_eq!(ovs.ofctl(&["get-frags", "br0"]), "drop");
    let (db_pid, sw_pid) = (ovs.ovsdb_server_pid(), ovs.vswitchd_pid());
    let t = Instant::now();
    ovs.restart_vswitchd();
    let restarted = t.elapsed();
    assert!(!alive(sw_pid), "old ovs-vswitchd still running");
    assert_ne!(ovs.vswitchd_pid(), sw_pid);
    assert_eq!(ovs.ovsdb_server_pid(), db_pid, "ovsdb-server untouched");
    assert!(alive(db_pid));
    let flows = ovs.ofctl(&["dump-flows", "br0"]);
    assert!(
        !flows.contains("0x1234"),
        "flows survived restart:\n{flows}"
    );
    assert_eq!(ovs.ofctl(&["get-frags", "br0"]), "normal");
    assert_eq!(ovs.vsctl(&["get", "Interface", "p3", "ofport"]), "3");
    // Counters restarted from zero; pcap files are appended to.
    ovs.ofctl(&["add-flow", "br0", "priority=0,actions=NORMAL"]);
    let cap = ovs.send_capture("br0", "p1", &bcast);
    assert_eq!(
        cap.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["br0", "p2", "p3"])
    );
    assert_eq!(cap["p2"], vec![bcast.clone()]);

    // Drop stops exactly our two daemons and removes the directory.
    let dir = ovs.rundir().to_path_buf();
    let (db_pid, sw_pid) = (ovs.ovsdb_server_pid(), ovs.vswitchd_pid());
    let t = Instant::now();
    drop(ovs);
    let stopped = t.elapsed();
    assert!(!alive(db_pid) && !alive(sw_pid), "daemons survived drop");
    assert!(!Path::new(&dir).exists(), "{} not removed", dir.display());
    eprintln!("start {started:?}, restart_vswitchd {restarted:?}, drop {stopped:?}");
}

#[test]
fn env_and_command_point_at_the_instance() {
    let ovs = Ovs::start();
    let env = ovs.env();
    for key in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
        assert!(
            env.iter()
                .any(|(k, v)| k == key && Path::new(v) == ovs.rundir()),
            "{key} missing in {env:?}"
        );
    }
    assert!(ovs.rundir().join("db.sock").exists());
    ovs.add_bridge("brx");
    let out = ovs
        .command("ovs-vsctl")
        .arg("list-br")
        .output()
        .expect("run ovs-vsctl");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "brx");
    assert!(ovs.try_vsctl(&["add-port", "nope", "x"]).is_err());
    assert!(ovs.try_ofctl(&["dump-flows", "nope"]).is_err());
    assert!(ovs.try_appctl(&["no-such-command"]).is_err());
}

#[test]
fn two_instances_in_parallel_do_not_collide() {
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let ovs = Ovs::start();
                three_port_bridge(&ovs);
                // Both instances are up with identical bridge/port names now.
                barrier.wait();
                for _ in 0..5 {
                    assert_eq!(
                        ovs.send("br0", "p1", &arp_request()),
                        set(&["br0", "p2", "p3"])
                    );
                    assert_eq!(ovs.send("br0", "p2", &unicast_b_to_a()), set(&["p1"]));
                }
                barrier.wait();
                ovs.vswitchd_pid()
            })
        })
        .collect();
    let pids: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_ne!(pids[0], pids[1]);
}
