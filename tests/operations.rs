//! Operating vmguard on a hypervisor (issue 3), against a real private Open vSwitch (see
//! tests/common): the libvirt qemu hook as libvirt calls it (by subcommand and by name), 50
//! concurrent VM starts, recovery after an ovs-vswitchd restart, `sync`, `verify`, `status` and
//! `install-hook`. No libvirt needed: the tests play libvirt's part (hook argv, XML on stdin, taps
//! appearing on the bridge).
//!
//! Every test has its own OVS with bridge vm-switch (dummy datapath) and the uplink `upstream` on
//! ofport 1. "Exactly right" flows are checked by `ovs-ofctl diff-flows` (order-insensitive,
//! OVS's own normal form) between the switch's flows of an interface (dumped by its cookie) and
//! what `vmguard flows` computes for the domain.
//!
//! Needs root and Open vSwitch; fails loudly without them.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{domain_xml, Run, Vmguard};
use common::Ovs;
use vmguard::frames::{self as fr, Frame, Ipv4, Ipv6, Mac, IPPROTO_ICMPV6, IPPROTO_UDP};
use vmguard::model::{DomainUuid, MacAddr};
use vmguard::pipeline::{Cookie, IfaceKey, Reason};

const BR: &str = "vm-switch";
const UPLINK: &str = "upstream";
const BIN: &str = env!("CARGO_BIN_EXE_vmguard");
/// A flow some other tool added (no vmguard tag); vmguard must never touch it after `init`.
const FOREIGN_FLOW: &str = "cookie=0x1234,table=99,priority=1,actions=drop";
const FOREIGN_SELECTOR: &str = "cookie=0x1234/-1";
/// The gateway behind the uplink.
const GW_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
const GW4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// libvirt runs hooks with only these variables (SPEC "Lifecycle").
const HOOK_ENV: [&str; 4] = ["HOME", "LC_ALL", "PATH", "PWD"];

// ---- VMs ---------------------------------------------------------------------------------------

/// A test domain with one interface.
#[derive(Clone, Debug)]
struct Vm {
    name: String,
    uuid: String,
    mac: String,
    dev: String,
    ofport: u16,
    addrs: Vec<String>,
}

/// VM number `i` (1..=200): vm<i>, tap vnet<i> on ofport 10+i, MAC 52:54:00:00:01:<i>,
/// 10.0.1.<i> and 2001:db8::1:<i>.
fn vm(i: u16) -> Vm {
    assert!((1..=200).contains(&i));
    Vm {
        name: format!("vm{i}"),
        uuid: format!("0e0e0e0e-0000-4000-8000-{i:012x}"),
        mac: format!("52:54:00:00:01:{i:02x}"),
        dev: format!("vnet{i}"),
        ofport: 10 + i,
        addrs: vec![format!("10.0.1.{i}"), format!("2001:db8::1:{i:x}")],
    }
}

impl Vm {
    fn xml(&self) -> String {
        let addrs: Vec<&str> = self.addrs.iter().map(String::as_str).collect();
        domain_xml(
            &self.name,
            &self.uuid,
            BR,
            &[(self.mac.as_str(), self.dev.as_str(), addrs.as_slice())],
        )
    }

    fn key(&self) -> IfaceKey {
        iface_key(&self.uuid, &self.mac)
    }

    fn mac_bytes(&self) -> Mac {
        mac_bytes(&self.mac)
    }

    fn ipv4(&self) -> Ipv4Addr {
        self.addrs
            .iter()
            .find_map(|a| a.parse().ok())
            .expect("the VM has an IPv4 address")
    }

    fn lla(&self) -> Ipv6Addr {
        MacAddr(self.mac_bytes()).eui64_link_local()
    }

    /// `--ofport DEV=N` for `vmguard flows`.
    fn ofport_arg(&self) -> String {
        format!("{}={}", self.dev, self.ofport)
    }
}

fn iface_key(uuid: &str, mac: &str) -> IfaceKey {
    let uuid: DomainUuid = uuid.parse().expect("uuid");
    IfaceKey::derive(&uuid, mac.parse().expect("mac"))
}

fn mac_bytes(mac: &str) -> Mac {
    mac.parse::<MacAddr>().expect("mac").0
}

// ---- the switch --------------------------------------------------------------------------------

/// A private OVS with vm-switch and its uplink on ofport 1 (not initialised).
fn switch() -> Ovs {
    let ovs = Ovs::start();
    ovs.add_bridge(BR);
    ovs.add_port(BR, UPLINK, 1);
    ovs
}

/// vmguard configured for `ovs`, with `extra` top-level keys added to its config file (put
/// first, so they stay top-level whatever tables the file has).
fn vmguard_with(ovs: &Ovs, extra: &str) -> Vmguard {
    let vg = Vmguard::new(Some(ovs), BR, &[UPLINK], "direct");
    if !extra.is_empty() {
        let text = std::fs::read_to_string(&vg.config).expect("read config");
        std::fs::write(&vg.config, format!("{extra}\n{text}")).expect("write config");
    }
    vg
}

/// A switch after `init`, with vmguard configured for it.
fn prepared() -> (Ovs, Vmguard) {
    let ovs = switch();
    let vg = vmguard_with(&ovs, "");
    vg.run(&["init"], "").ok();
    (ovs, vg)
}

/// vmguard configured for a run directory where no OVS listens.
fn unreachable_vmguard() -> Vmguard {
    Vmguard::new(None, BR, &[UPLINK], "direct")
}

fn plug(ovs: &Ovs, vm: &Vm) {
    ovs.add_port(BR, &vm.dev, vm.ofport);
}

fn ofctl14(ovs: &Ovs, args: &[&str]) -> String {
    let mut all = vec!["-O", "OpenFlow14"];
    all.extend_from_slice(args);
    ovs.ofctl(&all)
}

/// All flows, without statistics.
fn dump(ovs: &Ovs) -> String {
    ofctl14(ovs, &["--no-stats", "dump-flows", BR])
}

fn external_ids(ovs: &Ovs) -> String {
    ovs.vsctl(&["get", "Bridge", BR, "external_ids"])
}

/// The bridge as vmguard and other tools see it: flows and vmguard's records.
fn snapshot(ovs: &Ovs) -> (String, String) {
    (dump(ovs), external_ids(ovs))
}

/// Flow lines of a dump.
fn flow_lines(dump: &str) -> Vec<&str> {
    dump.lines()
        .map(str::trim)
        .filter(|l| l.contains("actions="))
        .collect()
}

/// The flows of the given interfaces, dumped by their cookies.
fn installed(ovs: &Ovs, keys: &[IfaceKey]) -> String {
    keys.iter()
        .map(|k| {
            ofctl14(
                ovs,
                &["--no-stats", "dump-flows", BR, &Cookie::owner_selector(*k)],
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn vm_flows(ovs: &Ovs, vm: &Vm) -> String {
    installed(ovs, &[vm.key()])
}

fn record_id(key: IfaceKey) -> String {
    format!("vmguard-if-{key}")
}

fn has_record(ovs: &Ovs, key: IfaceKey) -> bool {
    external_ids(ovs).contains(&record_id(key))
}

fn add_foreign_flow(ovs: &Ovs) {
    ovs.ofctl(&["add-flow", BR, FOREIGN_FLOW]);
    assert_eq!(foreign_flows(ovs).len(), 1);
}

fn foreign_flows(ovs: &Ovs) -> Vec<String> {
    let out = ovs.ofctl(&["--no-stats", "dump-flows", BR, FOREIGN_SELECTOR]);
    flow_lines(&out).into_iter().map(str::to_string).collect()
}

fn assert_foreign_flow_untouched(ovs: &Ovs, after: &str) {
    assert_eq!(
        foreign_flows(ovs),
        vec!["cookie=0x1234, table=99, priority=1 actions=drop".to_string()],
        "{after} changed or removed the foreign flow; all flows:\n{}",
        dump(ovs)
    );
}

/// Compares two flow lists with `ovs-ofctl diff-flows` (OVS's own parser and normal form,
/// order-insensitive): `Err` holds the differences.
fn diff_flows(ovs: &Ovs, want: &str, have: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("want"), dir.path().join("have"));
    std::fs::write(&a, want).expect("write");
    std::fs::write(&b, have).expect("write");
    let out = ovs
        .command("ovs-ofctl")
        .args(["-O", "OpenFlow14", "diff-flows"])
        .arg(&a)
        .arg(&b)
        .output()
        .expect("run ovs-ofctl diff-flows");
    match out.status.code() {
        Some(0) => Ok(()),
        Some(2) => Err(format!(
            "(- computed by `vmguard flows` only, + on the switch only)\n{}",
            String::from_utf8_lossy(&out.stdout)
        )),
        _ => panic!(
            "ovs-ofctl diff-flows failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// What `vmguard flows` computes for a domain, every ofport given.
fn expected_flows(vg: &Vmguard, xml: &str, ofports: &[String]) -> String {
    let mut args = vec!["flows"];
    for p in ofports {
        args.extend(["--ofport", p.as_str()]);
    }
    let out = vg.run(&args, xml).ok().stdout;
    assert!(
        !flow_lines(&out).is_empty(),
        "`vmguard flows` printed no flow"
    );
    out
}

/// `Err` unless the switch holds exactly the flows `vmguard flows` computes for `vm`, and its
/// record.
fn check_guarded(ovs: &Ovs, vg: &Vmguard, vm: &Vm) -> Result<(), String> {
    let want = expected_flows(vg, &vm.xml(), &[vm.ofport_arg()]);
    diff_flows(ovs, &want, &vm_flows(ovs, vm)).map_err(|d| {
        format!(
            "{}: flows on the switch differ from `vmguard flows`:\n{d}",
            vm.name
        )
    })?;
    if !has_record(ovs, vm.key()) {
        return Err(format!(
            "{}: no record {} in the Bridge's external_ids: {}",
            vm.name,
            record_id(vm.key()),
            external_ids(ovs)
        ));
    }
    Ok(())
}

fn assert_guarded(ovs: &Ovs, vg: &Vmguard, vm: &Vm) {
    if let Err(e) = check_guarded(ovs, vg, vm) {
        panic!("{e}");
    }
}

/// No flow and no record of `vm` on the switch.
fn assert_unguarded(ovs: &Ovs, vm: &Vm, after: &str) {
    let flows = vm_flows(ovs, vm);
    assert!(
        flow_lines(&flows).is_empty(),
        "after {after}: {} still has flows:\n{flows}",
        vm.name
    );
    assert!(
        !has_record(ovs, vm.key()),
        "after {after}: {} still has its record: {}",
        vm.name,
        external_ids(ovs)
    );
}

/// Deletes one of `vm`'s flows by hand (`del-flows --strict`); returns the deleted line.
fn delete_one_flow(ovs: &Ovs, vm: &Vm) -> String {
    let before = vm_flows(ovs, vm);
    let line = flow_lines(&before)
        .into_iter()
        .find(|l| l.contains(&format!("in_port={}", vm.ofport)))
        .unwrap_or_else(|| panic!("no flow on {}'s port:\n{before}", vm.name))
        .to_string();
    let (head, _) = line.split_once(" actions=").expect("actions");
    let mut spec: Vec<&str> = head
        .split(',')
        .map(str::trim)
        .filter(|t| !t.starts_with("cookie="))
        .collect();
    if !spec.iter().any(|t| t.starts_with("table=")) {
        spec.insert(0, "table=0"); // OVS omits table 0; without it --strict spans all tables
    }
    ofctl14(ovs, &["del-flows", "--strict", BR, &spec.join(",")]);
    let after = vm_flows(ovs, vm);
    assert_eq!(
        flow_lines(&after).len() + 1,
        flow_lines(&before).len(),
        "deleting {line:?} by hand did not remove exactly one flow:\n{after}"
    );
    line
}

/// Packet counters by flow (the flow without its statistics).
fn counters(ovs: &Ovs) -> Vec<(String, u64)> {
    let out = ofctl14(ovs, &["dump-flows", BR]);
    let mut all: Vec<(String, u64)> = flow_lines(&out)
        .into_iter()
        .map(|line| {
            let (head, actions) = line.split_once(" actions=").expect("actions");
            let mut n = 0;
            let mut rest = Vec::new();
            for tok in head.split(',').map(str::trim) {
                if let Some(v) = tok.strip_prefix("n_packets=") {
                    n = v.parse().expect("n_packets");
                } else if !["duration=", "n_bytes=", "idle_age=", "hard_age="]
                    .iter()
                    .any(|p| tok.starts_with(p))
                {
                    rest.push(tok);
                }
            }
            (format!("{} actions={actions}", rest.join(",")), n)
        })
        .collect();
    all.sort();
    all
}

// ---- frames ------------------------------------------------------------------------------------

/// UDP from `src` (eth src `eth_src`) to the gateway.
fn udp_to_gateway(eth_src: Mac, src: Ipv4Addr) -> Frame {
    let udp = fr::udp_v4(src, GW4, 40000, 53, b"vmguard");
    fr::ipv4_frame(GW_MAC, eth_src, &Ipv4::new(src, GW4, IPPROTO_UDP), &udp)
}

/// Legitimate: from the VM's own MAC and IPv4.
fn legit_frame(vm: &Vm) -> Frame {
    udp_to_gateway(vm.mac_bytes(), vm.ipv4())
}

/// IP spoof: the VM's MAC with an address nobody owns.
fn ip_spoof_frame(vm: &Vm) -> Frame {
    udp_to_gateway(vm.mac_bytes(), Ipv4Addr::new(10, 0, 0, 99))
}

/// MAC spoof: the VM's IPv4 from a MAC that is not its own.
fn mac_spoof_frame(vm: &Vm) -> Frame {
    udp_to_gateway([0x52, 0x54, 0, 0x66, 0x66, 0x66], vm.ipv4())
}

/// A Router Advertisement from the VM's link-local address to all nodes.
fn ra_frame(vm: &Vm) -> Frame {
    let prefix = (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 64);
    let body = fr::nd_ra_body(Some(prefix), Some(vm.mac_bytes()));
    let msg = fr::icmpv6(vm.lla(), ALL_NODES, 134, 0, &body);
    let h = Ipv6 {
        src: vm.lla(),
        dst: ALL_NODES,
        next_header: IPPROTO_ICMPV6,
        hop_limit: 255,
    };
    fr::ipv6_frame(fr::ipv6_multicast_mac(ALL_NODES), vm.mac_bytes(), &h, &msg)
}

fn send(ovs: &Ovs, vm: &Vm, frame: &Frame) -> BTreeSet<String> {
    ovs.send(BR, &vm.dev, &frame.hex())
}

// ---- running vmguard ---------------------------------------------------------------------------

/// `vmguard --config C hook DOMAIN OP SUBOP -` with `xml` on stdin.
fn hook(vg: &Vmguard, domain: &str, op: &str, sub: &str, xml: &str) -> Run {
    vg.run(&["hook", domain, op, sub, "-"], xml)
}

/// Starts `program ARGS` with `stdin` written and closed; stdout and stderr captured.
fn spawn(mut cmd: Command, stdin: &str) -> Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.as_bytes()).expect("write stdin");
    drop(pipe);
    child
}

fn finish(child: Child) -> Run {
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A hook process as in [`hook`], started but not waited for.
fn spawn_hook(vg: &Vmguard, domain: &str, op: &str, sub: &str, xml: &str) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&vg.config)
        .args(["hook", domain, op, sub, "-"])
        .env_remove("OVS_RUNDIR")
        .env_remove("VMGUARD_CONFIG");
    spawn(cmd, xml)
}

/// Runs `program` (the binary under another name) as libvirt runs a hook: argv DOMAIN OP SUBOP
/// EXTRA, XML on stdin, only HOME/LC_ALL/PATH/PWD in the environment, plus `VMGUARD_CONFIG`
/// (libvirt would pass none: there the hook reads /etc/vmguard/config.toml, which a test must
/// not touch).
fn run_as_libvirt(program: &Path, config: &Path, argv: [&str; 4], xml: &str) -> Run {
    let mut cmd = Command::new(program);
    cmd.args(argv).env_clear();
    for k in HOOK_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("VMGUARD_CONFIG", config);
    finish(spawn(cmd, xml))
}

fn show(run: &Run) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    )
}

/// The last line on stderr: what libvirt shows the operator when a hook fails.
fn last_stderr_line(run: &Run) -> &str {
    run.stderr.trim_end().lines().last().unwrap_or("")
}

/// A hook's log lines go to the journal when there is one, else to stderr.
fn logs_on_stderr() -> bool {
    !Path::new("/run/systemd/journal/socket").exists()
}

fn assert_hook_ok(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what}: hook failed\n{}", show(run));
    assert_eq!(
        run.stdout,
        "",
        "{what}: a hook must never write to stdout (libvirt reads it as XML)\n{}",
        show(run)
    );
}

/// A failed start: non-zero, nothing on stdout, and a last stderr line naming the domain and
/// every `words`.
fn assert_start_refused(run: &Run, domain: &str, words: &[&str], what: &str) {
    assert_ne!(
        run.code,
        0,
        "{what}: the start was not refused\n{}",
        show(run)
    );
    assert_eq!(run.stdout, "", "{what}: wrote to stdout\n{}", show(run));
    let last = last_stderr_line(run);
    assert!(
        last.contains(domain),
        "{what}: the last stderr line must name the domain {domain:?}: {last:?}\n{}",
        show(run)
    );
    for w in words {
        assert!(
            last.contains(w),
            "{what}: the last stderr line should mention {w:?}: {last:?}"
        );
    }
}

/// `vmguard verify` with `args`; panics with the output unless it exits `code`.
fn verify(vg: &Vmguard, args: &[&str], code: i32, when: &str) -> Run {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let run = vg.run(&all, "");
    assert_eq!(
        run.code,
        code,
        "{when}: `vmguard {}` should exit {code}\n{}",
        all.join(" "),
        show(&run)
    );
    run
}

fn write_xml(dir: &Path, vm: &Vm) -> PathBuf {
    let path = dir.join(format!("{}.xml", vm.name));
    std::fs::write(&path, vm.xml()).expect("write XML");
    path
}

fn sync(vg: &Vmguard, dir: &Path) -> Run {
    vg.run(&["sync", "--xml-dir", &dir.display().to_string()], "")
}

/// `changes=N` from sync's log.
fn sync_changes(run: &Run) -> usize {
    run.stderr
        .split_whitespace()
        .find_map(|t| t.strip_prefix("changes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("sync did not report changes=N\n{}", show(run)))
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", show(run)))
}

// =============================================================================================
// 1. The hook, as libvirt calls it

#[test]
fn hook_start_installs_silently_and_started_is_idempotent() {
    // Not even `init` ran: the hook's apply prepares the bridge itself.
    let ovs = switch();
    let vg = vmguard_with(&ovs, "");
    let a = vm(1);
    plug(&ovs, &a);

    let run = hook(&vg, &a.name, "start", "begin", &a.xml());
    assert_hook_ok(&run, "start begin");
    assert_guarded(&ovs, &vg, &a);
    verify(
        &vg,
        &["--no-trace"],
        0,
        "after start begin on a fresh bridge",
    );
    if logs_on_stderr() {
        let cookie = format!("cookie={:#x}", Cookie::new(a.key(), Reason::Pass).raw());
        for key in [
            format!("vm={}", a.name),
            format!("iface={}", a.mac),
            format!("ofport={}", a.ofport),
            cookie,
        ] {
            assert!(
                run.stderr.contains(&key),
                "the hook's log should carry {key}\n{}",
                show(&run)
            );
        }
    }

    // Traffic through it, so counters are non-zero and would show a reinstall.
    assert!(send(&ovs, &a, &legit_frame(&a)).contains(UPLINK));
    let (flows, ids) = snapshot(&ovs);
    let stats = counters(&ovs);
    assert!(
        stats.iter().any(|(_, n)| *n > 0),
        "no flow counted the frame"
    );

    let run = hook(&vg, &a.name, "started", "begin", &a.xml());
    assert_hook_ok(&run, "started begin");
    if logs_on_stderr() {
        assert!(
            run.stderr.contains("flows_added=0 flows_removed=0"),
            "started begin should find nothing to change\n{}",
            show(&run)
        );
    }
    assert_eq!(dump(&ovs), flows, "started begin changed the flows");
    assert_eq!(external_ids(&ovs), ids, "started begin changed the records");
    assert_eq!(counters(&ovs), stats, "started begin reset packet counters");
}

#[test]
fn hook_start_repairs_base_flows_changed_behind_its_back() {
    // The hook checks the base flows by their counts per cookie and the digest recorded with the
    // last full check; each way they can drift must still end in exactly the base `init` makes.
    let (ovs, vg) = prepared();
    let base_selector = Cookie::owner_selector(IfaceKey::BASE);
    let base = || ofctl14(&ovs, &["--no-stats", "dump-flows", BR, &base_selector]);
    let want = base();
    assert!(
        external_ids(&ovs).contains("vmguard-base"),
        "init should record the base digest: {}",
        external_ids(&ovs)
    );
    let assert_base = |after: &str| {
        if let Err(d) = diff_flows(&ovs, &want, &base()) {
            panic!("after {after}, the base flows differ from init's:\n{d}");
        }
    };

    // 1. One base flow deleted: its cookie's count drops.
    let victim = flow_lines(&want)
        .into_iter()
        .find(|l| l.contains("priority=200,arp,in_port=1 "))
        .expect("the base flow steering the uplink's ARP")
        .to_string();
    // `--strict` matches the flow's match and priority; its cookie must be given with a mask.
    let strict = victim
        .split(" actions=")
        .next()
        .unwrap()
        .split(", ")
        .map(|part| match part.strip_prefix("cookie=") {
            Some(c) => format!("cookie={c}/-1"),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    ofctl14(&ovs, &["--strict", "del-flows", BR, &strict]);
    assert!(
        diff_flows(&ovs, &want, &base()).is_err(),
        "{victim} not deleted"
    );
    let a = vm(1);
    plug(&ovs, &a);
    assert_hook_ok(
        &hook(&vg, &a.name, "start", "begin", &a.xml()),
        "start begin",
    );
    assert_base("one base flow was deleted and vm1 started");
    assert_guarded(&ovs, &vg, &a);

    // 2. The uplink moved to another port: as many flows per cookie, other flows. Only the
    //    digest tells; the hook must install the new base.
    ovs.add_port(BR, "upstream2", 2);
    let moved = Vmguard::new(Some(&ovs), BR, &["upstream2"], "direct");
    let b = vm(2);
    plug(&ovs, &b);
    assert_hook_ok(
        &hook(&moved, &b.name, "start", "begin", &b.xml()),
        "start begin with the uplink moved",
    );
    let moved_base = moved
        .run(&["flows", "--base", "--ofport", "upstream2=2"], "")
        .stdout;
    if let Err(d) = diff_flows(&ovs, &moved_base, &base()) {
        panic!("after the uplink moved, the hook left another base:\n{d}");
    }

    // 3. The record lost (as by a hand edit): a full check, nothing to change but the record.
    ovs.vsctl(&["remove", "Bridge", BR, "external_ids", "vmguard-base"]);
    let before = base();
    assert_hook_ok(
        &hook(&moved, &b.name, "started", "begin", &b.xml()),
        "started begin without the base record",
    );
    assert_eq!(base(), before, "a lost record changed the base flows");
    assert!(
        external_ids(&ovs).contains("vmguard-base"),
        "the hook should restore the base record: {}",
        external_ids(&ovs)
    );
}

#[test]
fn hook_stopped_and_release_remove_and_never_fail() {
    let (ovs, vg) = prepared();
    let (a, b) = (vm(1), vm(2));
    for v in [&a, &b] {
        plug(&ovs, v);
        assert_hook_ok(
            &hook(&vg, &v.name, "start", "begin", &v.xml()),
            "start begin",
        );
    }
    add_foreign_flow(&ovs);
    let b_flows = vm_flows(&ovs, &b);

    assert_hook_ok(
        &hook(&vg, &a.name, "stopped", "end", &a.xml()),
        "stopped end",
    );
    assert_unguarded(&ovs, &a, "stopped end");
    assert_hook_ok(
        &hook(&vg, &a.name, "release", "end", &a.xml()),
        "release end",
    );
    assert_unguarded(&ovs, &a, "release end");
    assert_eq!(vm_flows(&ovs, &b), b_flows, "stopping A changed B's flows");
    assert_foreign_flow_untouched(&ovs, "stopping A");

    // Start again; then the tap goes away and libvirt hands over garbage: still exit 0, and the
    // domain's flows are removed by its name from vmguard's records.
    assert_hook_ok(
        &hook(&vg, &a.name, "start", "begin", &a.xml()),
        "start begin",
    );
    ovs.del_port(BR, &a.dev);
    for garbage in [
        "<domain><name>vm1</name><devices>",
        "",
        "not xml at all \u{1}",
    ] {
        for (op, sub) in [("stopped", "end"), ("release", "end")] {
            assert_hook_ok(
                &hook(&vg, &a.name, op, sub, garbage),
                &format!("{op} {sub} with XML {garbage:?}"),
            );
        }
    }
    assert_unguarded(&ovs, &a, "stopped end with unreadable XML");
    assert_eq!(vm_flows(&ovs, &b), b_flows, "removing A changed B's flows");
    assert_foreign_flow_untouched(&ovs, "removing A");

    // OVS unreachable: nothing to do, and still exit 0.
    let nowhere = unreachable_vmguard();
    for (op, sub) in [("stopped", "end"), ("release", "end")] {
        let run = hook(&nowhere, &b.name, op, sub, &b.xml());
        assert_hook_ok(&run, &format!("{op} {sub} with OVS unreachable"));
        let run = hook(&nowhere, &b.name, op, sub, "garbage");
        assert_hook_ok(
            &run,
            &format!("{op} {sub} with OVS unreachable and garbage"),
        );
    }
}

#[test]
fn hook_reconnect_reapplies_and_never_fails() {
    let (ovs, vg) = prepared();
    let (a, b) = (vm(1), vm(2));
    plug(&ovs, &a);
    plug(&ovs, &b);
    assert_hook_ok(
        &hook(&vg, &a.name, "start", "begin", &a.xml()),
        "start begin",
    );

    // libvirtd restarts while A runs; meanwhile one of A's flows went missing.
    let deleted = delete_one_flow(&ovs, &a);
    let run = hook(&vg, &a.name, "reconnect", "begin", &a.xml());
    assert_hook_ok(&run, "reconnect begin");
    if let Err(e) = check_guarded(&ovs, &vg, &a) {
        panic!("reconnect did not restore the deleted flow {deleted:?}: {e}");
    }

    // B claims A's IPv4: the apply fails, but reconnect must not fail (libvirt would kill B).
    let thief = Vm {
        addrs: vec![a.addrs[0].clone()],
        ..b.clone()
    };
    let a_flows = vm_flows(&ovs, &a);
    let run = hook(&vg, &thief.name, "reconnect", "begin", &thief.xml());
    assert_hook_ok(&run, "reconnect begin with an address conflict");
    if logs_on_stderr() {
        assert!(
            run.stderr.contains(&thief.name) && run.stderr.contains(&a.addrs[0]),
            "reconnect should log the failure naming the VM and the address\n{}",
            show(&run)
        );
    }
    assert_unguarded(&ovs, &thief, "reconnect with a conflict");
    assert_eq!(
        vm_flows(&ovs, &a),
        a_flows,
        "the conflicting reconnect changed A's flows"
    );

    // Broken XML and an unreachable OVS: logged, exit 0.
    let run = hook(
        &vg,
        &b.name,
        "reconnect",
        "begin",
        "<domain><name>vm2</name>",
    );
    assert_hook_ok(&run, "reconnect begin with broken XML");
    let run = hook(
        &unreachable_vmguard(),
        &a.name,
        "reconnect",
        "begin",
        &a.xml(),
    );
    assert_hook_ok(&run, "reconnect begin with OVS unreachable");
    if logs_on_stderr() {
        assert!(
            run.stderr.contains(&a.name),
            "reconnect with OVS unreachable should log the problem naming the VM\n{}",
            show(&run)
        );
    }
}

#[test]
fn hook_other_operations_print_nothing_and_change_nothing() {
    let (ovs, vg) = prepared();
    let (a, b) = (vm(1), vm(2));
    plug(&ovs, &a);
    plug(&ovs, &b);
    assert_hook_ok(
        &hook(&vg, &a.name, "start", "begin", &a.xml()),
        "start begin",
    );
    let before = snapshot(&ovs);
    for (op, sub) in [
        ("migrate", "begin"),
        ("restore", "begin"),
        ("prepare", "begin"),
        ("attach", "begin"),
        ("prepare", "end"),
        ("no-such-operation", "begin"),
    ] {
        for (who, xml) in [(&a, a.xml()), (&b, b.xml()), (&b, "garbage".to_string())] {
            let what = format!(
                "{op} {sub} for {} with {} bytes of XML",
                who.name,
                xml.len()
            );
            assert_hook_ok(&hook(&vg, &who.name, op, sub, &xml), &what);
            assert_eq!(snapshot(&ovs), before, "{what} changed the bridge");
        }
    }
    assert_unguarded(&ovs, &b, "operations other than start");
}

#[test]
fn hook_start_refusals_end_with_a_one_line_reason_naming_the_domain() {
    let (ovs, vg) = prepared();
    let (a, b) = (vm(1), vm(2));
    plug(&ovs, &a);
    plug(&ovs, &b);
    assert_hook_ok(
        &hook(&vg, &a.name, "start", "begin", &a.xml()),
        "start begin",
    );
    let before = snapshot(&ovs);

    let bad_ip = Vm {
        addrs: vec!["10.0.1.300".into()],
        ..b.clone()
    };
    let meta_typo = b.xml().replace(
        &format!("<vg:interface mac='{}'>", b.mac),
        "<vg:interface mac='52:54:00:00:09:99'>",
    );
    let no_meta = {
        let x = b.xml();
        let (head, rest) = x.split_once("<metadata>").expect("metadata");
        let (_, tail) = rest.split_once("</metadata>").expect("metadata end");
        format!("{head}{tail}")
    };
    let thief = Vm {
        addrs: vec![a.addrs[1].clone()],
        ..b.clone()
    };
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "invalid IP in the metadata",
            bad_ip.xml(),
            vec!["10.0.1.300"],
        ),
        (
            "metadata MAC matching no interface",
            meta_typo,
            vec!["52:54:00:00:09:99"],
        ),
        (
            "interface on the bridge without metadata",
            no_meta,
            vec![b.mac.as_str()],
        ),
        (
            "address owned by a running VM",
            thief.xml(),
            vec![a.addrs[1].as_str()],
        ),
        (
            "truncated XML",
            b.xml()[..b.xml().len() - 20].to_string(),
            vec![],
        ),
    ];
    for (what, xml, words) in &cases {
        let run = hook(&vg, &b.name, "start", "begin", xml);
        assert_start_refused(&run, &b.name, words, what);
        assert_eq!(
            snapshot(&ovs),
            before,
            "{what}: the refused start changed the bridge"
        );
    }

    let run = hook(&unreachable_vmguard(), &b.name, "start", "begin", &b.xml());
    assert_start_refused(&run, &b.name, &[], "OVS unreachable");
}

#[test]
fn hook_start_waits_for_a_tap_that_appears_late() {
    let (ovs, vg) = prepared(); // default ofport_timeout_ms (5000)
    let a = vm(1);
    let started = Instant::now();
    let child = spawn_hook(&vg, &a.name, "start", "begin", &a.xml());
    std::thread::sleep(Duration::from_millis(300));
    plug(&ovs, &a);
    let run = finish(child);
    assert_hook_ok(&run, "start begin with the tap added 300 ms late");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the hook returned before the port existed"
    );
    assert_guarded(&ovs, &vg, &a);
}

#[test]
fn hook_start_gives_up_on_a_tap_that_never_appears() {
    let ovs = switch();
    let vg = vmguard_with(&ovs, "ofport_timeout_ms = 300");
    vg.run(&["init"], "").ok();
    let a = vm(9);
    let before = snapshot(&ovs);
    let started = Instant::now();
    let run = hook(&vg, &a.name, "start", "begin", &a.xml());
    let took = started.elapsed();
    assert_start_refused(&run, &a.name, &[&a.dev], "a tap that never appears");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "with ofport_timeout_ms = 300 the hook should give up after ~300 ms, took {took:?}"
    );
    assert_eq!(
        snapshot(&ovs),
        before,
        "the failed start changed the bridge"
    );
}

// =============================================================================================
// 2. Invoked by name: /etc/libvirt/hooks/qemu and /etc/libvirt/hooks/qemu.d/vmguard

#[test]
fn invoked_as_qemu_or_from_qemu_d_it_is_the_hook() {
    let (ovs, vg) = prepared();
    let a = vm(1);
    plug(&ovs, &a);
    let dir = tempfile::tempdir().expect("tempdir");
    let qemu = dir.path().join("qemu");
    std::os::unix::fs::symlink(BIN, &qemu).expect("symlink qemu");
    let hook_d = dir.path().join("hooks").join("qemu.d");
    std::fs::create_dir_all(&hook_d).expect("mkdir qemu.d");
    let in_dir = hook_d.join("vmguard");
    std::os::unix::fs::symlink(BIN, &in_dir).expect("symlink qemu.d/vmguard");

    for program in [&qemu, &in_dir] {
        let name = program.display().to_string();
        let run = run_as_libvirt(
            program,
            &vg.config,
            [&a.name, "start", "begin", "-"],
            &a.xml(),
        );
        assert_hook_ok(&run, &format!("{name} start begin"));
        assert_guarded(&ovs, &vg, &a);

        let before = snapshot(&ovs);
        for op in ["migrate", "restore", "prepare"] {
            let run = run_as_libvirt(program, &vg.config, [&a.name, op, "begin", "-"], &a.xml());
            assert_hook_ok(&run, &format!("{name} {op} begin"));
        }
        assert_eq!(
            snapshot(&ovs),
            before,
            "{name}: migrate/restore/prepare changed the bridge"
        );

        let run = run_as_libvirt(
            program,
            &vg.config,
            [&a.name, "stopped", "end", "-"],
            &a.xml(),
        );
        assert_hook_ok(&run, &format!("{name} stopped end"));
        assert_unguarded(&ovs, &a, &format!("{name} stopped end"));

        let broken = Vm {
            addrs: vec!["10.0.1.300".into()],
            ..a.clone()
        };
        let run = run_as_libvirt(
            program,
            &vg.config,
            [&a.name, "start", "begin", "-"],
            &broken.xml(),
        );
        assert_start_refused(
            &run,
            &a.name,
            &["10.0.1.300"],
            &format!("{name} broken start"),
        );
    }
}

// =============================================================================================
// 3. Concurrency

#[test]
fn fifty_concurrent_starts_each_end_exactly_right() {
    let (ovs, vg) = prepared();
    let vms: Vec<Vm> = (1..=50).map(vm).collect();
    for v in &vms {
        plug(&ovs, v);
    }
    add_foreign_flow(&ovs);

    let children: Vec<(&Vm, Child)> = vms
        .iter()
        .map(|v| (v, spawn_hook(&vg, &v.name, "start", "begin", &v.xml())))
        .collect();
    let failed: Vec<String> = children
        .into_iter()
        .map(|(v, c)| (v, finish(c)))
        .filter(|(_, r)| r.code != 0 || !r.stdout.is_empty())
        .map(|(v, r)| format!("{}: {}", v.name, show(&r)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} hooks failed:\n{}",
        failed.len(),
        failed.join("\n")
    );

    let wrong: Vec<String> = vms
        .iter()
        .filter_map(|v| check_guarded(&ovs, &vg, v).err())
        .collect();
    assert!(
        wrong.is_empty(),
        "{} VMs' flows are wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_foreign_flow_untouched(&ovs, "50 concurrent starts");

    // Nothing else vmguard owns: with the foreign flow gone, verify finds no drift at all.
    ofctl14(&ovs, &["del-flows", "--strict", BR, "table=99,priority=1"]);
    verify(&vg, &["--no-trace"], 0, "after 50 concurrent starts");
    let records = external_ids(&ovs).matches("vmguard-if-").count();
    assert_eq!(records, 50, "records: {}", external_ids(&ovs));
}

#[test]
fn two_concurrent_starts_claiming_one_ip_exactly_one_wins() {
    let (ovs, vg) = prepared();
    let shared = "10.0.9.9".to_string();
    let x = Vm {
        addrs: vec![shared.clone()],
        ..vm(1)
    };
    let y = Vm {
        addrs: vec![shared.clone(), "10.0.9.10".into()],
        ..vm(2)
    };
    plug(&ovs, &x);
    plug(&ovs, &y);
    for round in 1..=3 {
        let cx = spawn_hook(&vg, &x.name, "start", "begin", &x.xml());
        let cy = spawn_hook(&vg, &y.name, "start", "begin", &y.xml());
        let (rx, ry) = (finish(cx), finish(cy));
        let (winner, loser, lost) = match (rx.code, ry.code) {
            (0, c) if c != 0 => (&x, &y, &ry),
            (c, 0) if c != 0 => (&y, &x, &rx),
            _ => panic!(
                "round {round}: exactly one start must succeed\nx: {}\ny: {}",
                show(&rx),
                show(&ry)
            ),
        };
        assert_start_refused(lost, &loser.name, &[&shared], "the second claimant");
        assert_guarded(&ovs, &vg, winner);
        assert_unguarded(&ovs, loser, "the refused start");

        // libvirt runs the failed VM's stop hooks: they must not touch the winner.
        let winner_flows = vm_flows(&ovs, winner);
        for (op, sub) in [("stopped", "end"), ("release", "end")] {
            assert_hook_ok(&hook(&vg, &loser.name, op, sub, &loser.xml()), op);
        }
        assert_eq!(
            vm_flows(&ovs, winner),
            winner_flows,
            "round {round}: the loser's stop hooks changed the winner's flows"
        );
        verify(&vg, &["--no-trace"], 0, &format!("round {round}"));
        assert_hook_ok(
            &hook(&vg, &winner.name, "stopped", "end", &winner.xml()),
            "stop",
        );
        assert_unguarded(&ovs, winner, "stopped end");
    }
}

// =============================================================================================
// 4. ovs-vswitchd restart

#[test]
fn after_an_ovs_restart_the_bridge_stays_closed_until_sync_restores_it() {
    let (ovs, vg) = prepared();
    let vms: Vec<Vm> = (1..=3).map(vm).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    for v in &vms {
        plug(&ovs, v);
        vg.run(&["apply"], &v.xml()).ok();
        write_xml(dir.path(), v);
    }
    verify(&vg, &[], 0, "before the restart");

    ovs.restart_vswitchd();
    let run = verify(&vg, &[], 1, "after ovs-vswitchd restarted");
    assert!(
        run.stdout.contains("fragment mode") && run.stdout.contains("missing"),
        "verify should report the lost fragment mode and the missing flows\n{}",
        show(&run)
    );
    assert_eq!(
        ovs.vsctl(&["get", "Bridge", BR, "fail_mode"]),
        "secure",
        "fail_mode must survive the restart (it is in OVSDB)"
    );
    let a = &vms[0];
    assert_eq!(
        send(&ovs, a, &legit_frame(a)),
        BTreeSet::new(),
        "after the restart and before sync, a VM port must be closed\n{}",
        dump(&ovs)
    );

    let run = sync(&vg, dir.path());
    assert_eq!(run.code, 0, "sync after the restart\n{}", show(&run));
    assert!(
        sync_changes(&run) > 0,
        "the first sync changed nothing\n{}",
        show(&run)
    );
    let run = verify(&vg, &[], 0, "after sync");
    let summary = run
        .stdout
        .lines()
        .rev()
        .find(|l| l.contains(" passed, "))
        .unwrap_or("");
    let passed: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        summary.ends_with(", 0 failed") && passed >= vms.len(),
        "verify should trace every port and print \"N passed, 0 failed\": {summary:?}\n{}",
        run.stdout
    );
    for v in &vms {
        assert_guarded(&ovs, &vg, v);
    }
    assert_eq!(ovs.ofctl(&["get-frags", BR]), "nx-match");

    let again = sync(&vg, dir.path());
    assert_eq!(again.code, 0, "second sync\n{}", show(&again));
    assert_eq!(
        sync_changes(&again),
        0,
        "the second sync changed something\n{}",
        show(&again)
    );

    for v in &vms {
        assert!(
            send(&ovs, v, &legit_frame(v)).contains(UPLINK),
            "{}: a legitimate frame is not delivered after sync",
            v.name
        );
        assert_eq!(
            send(&ovs, v, &ip_spoof_frame(v)),
            BTreeSet::new(),
            "{}: an IP-spoofed frame is delivered after sync",
            v.name
        );
    }
}

// =============================================================================================
// 5. sync

#[test]
fn sync_reconciles_removed_domains_hot_plugged_nics_and_broken_ones() {
    let (ovs, vg) = prepared();
    let (a, b, c, d) = (vm(1), vm(2), vm(3), vm(4));
    for v in [&a, &b, &c, &d] {
        plug(&ovs, v);
    }
    add_foreign_flow(&ovs);
    let dir = tempfile::tempdir().expect("tempdir");
    write_xml(dir.path(), &a);
    let b_xml = write_xml(dir.path(), &b);

    let run = sync(&vg, dir.path());
    assert_eq!(run.code, 0, "first sync\n{}", show(&run));
    assert_guarded(&ovs, &vg, &a);
    assert_guarded(&ovs, &vg, &b);
    assert_foreign_flow_untouched(&ovs, "sync");

    // B is no longer running: its flows and record go, A's flows stay as they are.
    let a_flows = vm_flows(&ovs, &a);
    std::fs::remove_file(&b_xml).expect("rm");
    let run = sync(&vg, dir.path());
    assert_eq!(run.code, 0, "sync without B\n{}", show(&run));
    assert_unguarded(&ovs, &b, "sync without B's XML");
    assert_eq!(
        vm_flows(&ovs, &a),
        a_flows,
        "sync without B changed A's flows"
    );
    assert_foreign_flow_untouched(&ovs, "sync without B");

    // A NIC hot-plugged into A (`virsh attach-interface` runs no hook): closed until sync.
    let nic = ("52:54:00:00:02:01", "vnet201", 201u16);
    ovs.add_port(BR, nic.1, nic.2);
    let nic_vm = Vm {
        mac: nic.0.into(),
        dev: nic.1.into(),
        ofport: nic.2,
        addrs: vec!["10.0.2.1".into()],
        ..a.clone()
    };
    assert_eq!(
        send(&ovs, &nic_vm, &legit_frame(&nic_vm)),
        BTreeSet::new(),
        "a hot-plugged NIC must stay closed before sync"
    );
    let a_addrs: Vec<&str> = a.addrs.iter().map(String::as_str).collect();
    let a2_xml = domain_xml(
        &a.name,
        &a.uuid,
        BR,
        &[
            (a.mac.as_str(), a.dev.as_str(), a_addrs.as_slice()),
            (nic.0, nic.1, &["10.0.2.1"]),
        ],
    );
    std::fs::write(dir.path().join("vm1.xml"), &a2_xml).expect("write");
    let run = sync(&vg, dir.path());
    assert_eq!(run.code, 0, "sync with the hot-plugged NIC\n{}", show(&run));
    let want = expected_flows(&vg, &a2_xml, &[a.ofport_arg(), nic_vm.ofport_arg()]);
    if let Err(e) = diff_flows(&ovs, &want, &installed(&ovs, &[a.key(), nic_vm.key()])) {
        panic!("after sync, A with its hot-plugged NIC:\n{e}");
    }
    assert_eq!(
        vm_flows(&ovs, &a),
        a_flows,
        "the hot-plug changed A's first NIC's flows"
    );
    assert!(
        send(&ovs, &nic_vm, &legit_frame(&nic_vm)).contains(UPLINK),
        "the hot-plugged NIC is not open after sync"
    );

    // C's metadata is broken and junk.xml is not XML: both reported, non-zero exit; D (new) is
    // still installed and A left alone.
    let broken_c = Vm {
        addrs: vec!["10.0.1.300".into()],
        ..c.clone()
    };
    write_xml(dir.path(), &broken_c);
    std::fs::write(dir.path().join("junk.xml"), "<domain><name>junk").expect("write");
    write_xml(dir.path(), &d);
    let guarded_a = installed(&ovs, &[a.key(), nic_vm.key()]);
    let run = sync(&vg, dir.path());
    assert_ne!(
        run.code,
        0,
        "sync with broken domains must fail\n{}",
        show(&run)
    );
    assert_eq!(run.stdout, "", "sync wrote to stdout");
    for w in ["vm3", "10.0.1.300", "junk.xml"] {
        assert!(
            run.stderr.contains(w),
            "sync's report should mention {w:?}\n{}",
            show(&run)
        );
    }
    assert_guarded(&ovs, &vg, &d);
    assert_unguarded(&ovs, &c, "sync with C's metadata broken");
    assert_eq!(
        installed(&ovs, &[a.key(), nic_vm.key()]),
        guarded_a,
        "sync with broken domains changed A"
    );
    assert_foreign_flow_untouched(&ovs, "every sync");
}

// =============================================================================================
// 6. verify and status

#[test]
fn verify_reports_drift_by_vm_and_foreign_flows() {
    let (ovs, vg) = prepared();
    let (a, b) = (vm(1), vm(2));
    for v in [&a, &b] {
        plug(&ovs, v);
        vg.run(&["apply"], &v.xml()).ok();
    }

    let run = verify(&vg, &["--json"], 0, "a guarded bridge");
    let j = json(&run);
    assert_eq!(j["in_sync"], true, "{j:#}");
    assert_eq!(j["drift"], serde_json::json!([]), "{j:#}");
    let ports = j["ports"].as_array().expect("ports[]");
    assert_eq!(ports.len(), 2, "one entry per guarded port: {j:#}");
    for p in ports {
        assert!(p["ofport"].is_u64(), "ofport is a number: {p:#}");
        let probes = p["probes"].as_array().expect("ports[].probes[]");
        assert!(!probes.is_empty(), "no probes for {p:#}");
        for probe in probes {
            assert_eq!(probe["ok"], true, "failed probe {probe:#}");
        }
        // Outputs are named by port, not by datapath port number: a DHCP discover goes to the
        // uplink only.
        let discover = probes
            .iter()
            .find(|p| p["probe"] == "legit: DHCPv4 discover from 0.0.0.0")
            .expect("a DHCPv4 discover probe");
        assert_eq!(discover["outputs"], UPLINK, "{discover:#}");
    }
    let text = verify(&vg, &[], 0, "a guarded bridge, as text");
    assert!(
        text.stdout.contains(&format!("got {UPLINK}")),
        "verify should name the ports a probe leaves by:\n{}",
        show(&text)
    );

    // One of A's flows deleted by hand: drift, naming A (and not B).
    let deleted = delete_one_flow(&ovs, &a);
    let run = verify(
        &vg,
        &["--no-trace"],
        1,
        &format!("after deleting {deleted:?}"),
    );
    assert!(
        run.stdout.contains(&format!("vm={}", a.name))
            && !run.stdout.contains(&format!("vm={} ", b.name)),
        "verify should name {} (only)\n{}",
        a.name,
        show(&run)
    );
    let j = json(&verify(
        &vg,
        &["--json", "--no-trace"],
        1,
        "the same, as JSON",
    ));
    assert_eq!(j["in_sync"], false, "{j:#}");
    let drift = j["drift"].to_string();
    assert!(drift.contains(&a.name) && !drift.contains(&b.name), "{j:#}");

    vg.run(&["apply"], &a.xml()).ok();
    verify(&vg, &[], 0, "after re-applying A");

    add_foreign_flow(&ovs);
    let run = verify(&vg, &["--no-trace"], 1, "with a foreign flow");
    assert!(
        run.stdout.contains("without vmguard's tag"),
        "{}",
        show(&run)
    );
    assert_foreign_flow_untouched(&ovs, "verify");
}

/// The battery proves on the live switch that a VM's unicast to the gateway is not flooded to
/// the other VMs: with the base flow that sends unicast for MACs no VM has to the uplinks
/// removed by hand, `NORMAL` floods it (it never learns the gateway's MAC) and the probe fails.
#[test]
fn verify_probe_fails_when_unicast_to_the_gateway_floods() {
    const PROBE: &str = "legit: IPv6 unicast to the gateway's MAC (not flooded)";
    let (ovs, vg) = prepared();
    let (a, b) = (vm(1), vm(2));
    for v in [&a, &b] {
        plug(&ovs, v);
        vg.run(&["apply"], &v.xml()).ok();
    }
    let probe_of = |run: &Run| {
        let j = json(run);
        j["ports"][0]["probes"]
            .as_array()
            .expect("ports[].probes[]")
            .iter()
            .find(|p| p["probe"] == PROBE)
            .unwrap_or_else(|| panic!("no probe {PROBE:?}: {j:#}"))
            .clone()
    };
    let good = probe_of(&verify(&vg, &["--json"], 0, "a guarded bridge"));
    assert_eq!(good["ok"], true, "{good:#}");
    assert_eq!(good["outputs"], UPLINK, "{good:#}");

    ofctl14(
        &ovs,
        &[
            "del-flows",
            "--strict",
            BR,
            "table=60,priority=100,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00",
        ],
    );
    let bad = probe_of(&verify(
        &vg,
        &["--json"],
        1,
        "without the unicast-to-uplinks flow",
    ));
    assert_eq!(bad["ok"], false, "a flood must fail the probe: {bad:#}");
    let outputs = bad["outputs"].as_str().unwrap_or_default();
    assert!(outputs.contains(&b.dev), "flooded to B: {bad:#}");
}

#[test]
fn status_counts_drops_per_vm_and_reason() {
    let (ovs, vg) = prepared();
    let (a, b) = (vm(1), vm(2));
    for v in [&a, &b] {
        plug(&ovs, v);
        vg.run(&["apply"], &v.xml()).ok();
    }
    for _ in 0..3 {
        let out = send(&ovs, &a, &mac_spoof_frame(&a));
        assert!(out.is_empty(), "MAC-spoofed frame delivered to {out:?}");
    }
    for _ in 0..2 {
        let out = send(&ovs, &a, &ra_frame(&a));
        assert!(out.is_empty(), "RA delivered to {out:?}");
    }
    assert!(send(&ovs, &b, &legit_frame(&b)).contains(UPLINK));

    let run = vg.run(&["status", "--json"], "").ok();
    let j = json(&run);
    let rows = j["interfaces"].as_array().expect("interfaces[]");
    assert_eq!(rows.len(), 2, "one row per guarded interface: {j:#}");
    let row = |v: &Vm| {
        rows.iter()
            .find(|r| r["domain"] == v.name.as_str())
            .unwrap_or_else(|| panic!("no status row for {}: {j:#}", v.name))
    };
    for v in [&a, &b] {
        let r = row(v);
        assert_eq!(r["mac"], v.mac.as_str(), "{r:#}");
        assert_eq!(r["port"], v.dev.as_str(), "{r:#}");
        assert_eq!(r["ofport"], v.ofport, "{r:#}");
        assert_eq!(r["recorded_ofport"], v.ofport, "{r:#}");
        let expected = r["flows_expected"].as_u64().expect("flows_expected");
        assert!(expected > 0, "{r:#}");
        assert_eq!(r["flows_installed"], expected, "{r:#}");
    }
    let (ra, rb) = (row(&a), row(&b));
    assert_eq!(ra["dropped"]["mac_spoof"], 3, "A's drops: {ra:#}");
    assert_eq!(ra["dropped"]["router_advert"], 2, "A's drops: {ra:#}");
    let b_drops = rb["dropped"].as_object().expect("dropped{}");
    assert!(!b_drops.is_empty(), "{rb:#}");
    for (reason, n) in b_drops {
        assert_eq!(
            n, 0,
            "B sent nothing bad, yet dropped.{reason} = {n}: {rb:#}"
        );
    }

    // The table for operators shows both domains.
    let table = vg.run(&["status"], "").ok().stdout;
    for v in [&a, &b] {
        assert!(table.contains(&v.name) && table.contains(&v.mac), "{table}");
    }
}

#[test]
fn status_lists_interfaces_by_domain_name() {
    let (ovs, vg) = prepared();
    // Installed in an order that is neither the names' nor the cookies'.
    let vms: Vec<Vm> = [7, 3, 12, 1, 9, 5].into_iter().map(vm).collect();
    for v in &vms {
        plug(&ovs, v);
        vg.run(&["apply"], &v.xml()).ok();
    }
    // Numbers in names count as numbers: vm9 before vm12.
    let want = ["vm1", "vm3", "vm5", "vm7", "vm9", "vm12"];

    let j = json(&vg.run(&["status", "--json"], "").ok());
    let got: Vec<&str> = j["interfaces"]
        .as_array()
        .expect("interfaces[]")
        .iter()
        .map(|r| r["domain"].as_str().expect("domain"))
        .collect();
    assert_eq!(got, want, "status --json rows");

    let table = vg.run(&["status"], "").ok().stdout;
    let got: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|d| want.contains(d))
        .collect();
    assert_eq!(got, want, "status table rows:\n{table}");
}

// =============================================================================================
// 7. install-hook

#[test]
fn install_hook_links_once_and_uninstalls_only_its_link() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hook_dir = tmp.path().join("hooks").join("qemu.d");
    let dir_arg = hook_dir.display().to_string();
    let link = hook_dir.join("vmguard");
    let vg = unreachable_vmguard(); // install-hook needs no OVS
    let install = |extra: &[&str]| {
        let mut args = vec!["install-hook", "--hook-dir", dir_arg.as_str()];
        args.extend_from_slice(extra);
        vg.run(&args, "")
    };
    let binary = std::fs::canonicalize(BIN).expect("canonical binary path");

    let run = install(&[]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("restart"),
        "should tell that libvirtd must be restarted to see a new hook\n{}",
        show(&run)
    );
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_link(&link).expect("readlink"), binary);

    let stamp = std::fs::symlink_metadata(&link)
        .expect("link")
        .modified()
        .ok();
    let run = install(&[]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert!(run.stderr.contains("nothing changed"), "{}", show(&run));
    assert_eq!(std::fs::read_link(&link).expect("readlink"), binary);
    assert_eq!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .modified()
            .ok(),
        stamp,
        "the second install re-created the link"
    );

    let run = install(&["--uninstall"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is still there"
    );
    let run = install(&["--uninstall"]);
    assert_eq!(run.code, 0, "uninstalling twice\n{}", show(&run));

    // Somebody else's file in the way: refused both ways, left as it was.
    std::fs::write(&link, "#!/bin/sh\nexit 0\n").expect("write");
    for extra in [&[][..], &["--uninstall"][..]] {
        let run = install(extra);
        assert_ne!(
            run.code,
            0,
            "install-hook {extra:?} over a file\n{}",
            show(&run)
        );
        assert!(
            last_stderr_line(&run).contains(&link.display().to_string()),
            "the refusal should name the file\n{}",
            show(&run)
        );
        assert_eq!(
            std::fs::read_to_string(&link).expect("file"),
            "#!/bin/sh\nexit 0\n",
            "install-hook {extra:?} changed a file it does not own"
        );
    }
}

/// A config file vmguard cannot read must not turn every libvirt call into a failure: only a
/// start may fail (a failing reconnect kills the running VM; a stop cannot be refused).
#[test]
fn a_broken_config_fails_only_starts() {
    let (ovs, vg) = prepared();
    let a = vm(1);
    plug(&ovs, &a);
    vg.run(&["hook", &a.name, "start", "begin", "-"], &a.xml())
        .ok();
    let before = ovs.ofctl(&["-O", "OpenFlow14", "--no-stats", "dump-flows", BR]);
    std::fs::write(&vg.config, "uplink = [\"upstream\"]\n").expect("write broken config");
    for (op, sub) in [
        ("reconnect", "begin"),
        ("stopped", "end"),
        ("release", "end"),
        ("migrate", "begin"),
    ] {
        let run = vg.run(&["hook", &a.name, op, sub, "-"], &a.xml());
        assert_eq!(
            run.code, 0,
            "{op} {sub} must not fail on a broken config: {}",
            run.stderr
        );
        assert!(
            run.stdout.is_empty(),
            "{op} {sub} printed on stdout: {}",
            run.stdout
        );
    }
    let start = vg.run(&["hook", &a.name, "start", "begin", "-"], &a.xml());
    assert_ne!(
        start.code, 0,
        "a start with a broken config must be refused"
    );
    let last = start.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("uplink") && last.contains("line 1"),
        "last stderr line: {last}"
    );
    assert_eq!(
        ovs.ofctl(&["-O", "OpenFlow14", "--no-stats", "dump-flows", BR]),
        before,
        "nothing changed"
    );
}
