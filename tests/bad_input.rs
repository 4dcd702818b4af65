//! Bad input to `vmguard apply` (SPEC "Lifecycle": bad input to an install) against a real,
//! private Open vSwitch that already guards one VM (VM0). Every case must
//!
//! * exit non-zero,
//! * print exactly one line on stderr (libvirt shows it to the operator) naming the domain and,
//!   where there is one, the interface and the field, and nothing on stdout,
//! * leave the bridge exactly as it was: `ovs-ofctl --no-stats dump-flows vm-switch` and
//!   `ovs-vsctl get Bridge vm-switch external_ids` byte-identical.
//!
//! Each test collects all failing cases and reports them together.
//!
//! Needs root and Open vSwitch; fails loudly without them.

#[allow(unused_imports)]
mod common;

use common::cli::{domain_xml, Run, Vmguard};
use common::Ovs;

const BR: &str = "vm-switch";
const UPLINK: &str = "upstream";

// VM0, already applied: owns these.
const VM0_NAME: &str = "vm0";
const VM0_UUID: &str = "aaaaaaaa-0000-4000-8000-000000000000";
const VM0_MAC: &str = "52:54:00:00:00:05";
const VM0_V4: &str = "10.0.0.5";
const VM0_V6: &str = "2001:db8::5";

// The domain under test.
const NAME: &str = "bad-vm";
const UUID: &str = "eeeeeeee-0000-4000-8000-000000000001";
const MAC: &str = "52:54:00:00:00:06";
const DEV: &str = "vnet1";

/// One bad input and what its error line must contain besides the domain's name.
struct Case {
    what: &'static str,
    xml: String,
    must_contain: Vec<String>,
}

fn case(what: &'static str, xml: String, must_contain: &[&str]) -> Case {
    Case {
        what,
        xml,
        must_contain: must_contain.iter().map(|s| s.to_string()).collect(),
    }
}

/// The domain under test with one interface (MAC, DEV) and these metadata addresses.
fn with_addrs(addrs: &[&str]) -> String {
    domain_xml(NAME, UUID, BR, &[(MAC, DEV, addrs)])
}

/// The domain under test with raw `<metadata>` content and raw `<interface>` elements.
fn raw(metadata: &str, interfaces: &str) -> String {
    format!(
        "<domain type='kvm'><name>{NAME}</name><uuid>{UUID}</uuid>\
         <metadata>{metadata}</metadata><devices>{interfaces}</devices></domain>"
    )
}

fn iface(mac: &str, dev: &str) -> String {
    format!(
        "<interface type='bridge'><mac address='{mac}'/><source bridge='{BR}'/>\
         <virtualport type='openvswitch'/><target dev='{dev}'/></interface>"
    )
}

fn guard(inner: &str) -> String {
    format!("<vg:guard xmlns:vg='urn:vmguard:1'>{inner}</vg:guard>")
}

fn entry(mac: &str, inner: &str) -> String {
    format!("<vg:interface mac='{mac}'>{inner}</vg:interface>")
}

fn ip(addr: &str) -> String {
    format!("<vg:ip address='{addr}'/>")
}

/// A private OVS with vm-switch (upstream=1, vnet0=5 for VM0, vnet1=6 for the domain under
/// test), `init` done and VM0 applied.
fn guarded_switch() -> (Ovs, Vmguard) {
    let ovs = Ovs::start();
    ovs.add_bridge(BR);
    ovs.add_port(BR, UPLINK, 1);
    ovs.add_port(BR, "vnet0", 5);
    ovs.add_port(BR, DEV, 6);
    let vg = Vmguard::new(Some(&ovs), BR, &[UPLINK], "direct");
    vg.run(&["init"], "").ok();
    vg.run(
        &["apply"],
        &domain_xml(
            VM0_NAME,
            VM0_UUID,
            BR,
            &[(VM0_MAC, "vnet0", &[VM0_V4, VM0_V6])],
        ),
    )
    .ok();
    // The domain under test is fine as such: only what each case breaks makes it fail.
    let good = with_addrs(&["10.0.0.6"]);
    let run = vg.run(&["apply", "--dry-run"], &good).ok();
    assert!(run.stdout.contains("add cookie="), "setup: {}", run.stdout);
    (ovs, vg)
}

fn snapshot(ovs: &Ovs) -> (String, String) {
    (
        ovs.ofctl(&["--no-stats", "dump-flows", BR]),
        ovs.vsctl(&["get", "Bridge", BR, "external_ids"]),
    )
}

/// Checks one failed run; returns what is wrong with it.
fn judge(ovs: &Ovs, before: &(String, String), c: &Case, run: &Run) -> Option<String> {
    let mut problems = Vec::new();
    if run.code == 0 {
        problems.push("exit status 0".to_string());
    }
    let lines: Vec<&str> = run.stderr.trim_end().lines().collect();
    if lines.len() != 1 {
        problems.push(format!("{} lines on stderr, want exactly 1", lines.len()));
    }
    if !run.stderr.contains(NAME) {
        problems.push(format!("stderr does not name the domain '{NAME}'"));
    }
    for want in &c.must_contain {
        if !run.stderr.contains(want.as_str()) {
            problems.push(format!("stderr lacks '{want}'"));
        }
    }
    if !run.stdout.is_empty() {
        problems.push(format!("wrote to stdout: {:?}", run.stdout));
    }
    let after = snapshot(ovs);
    if after.0 != before.0 {
        problems.push("dump-flows changed".to_string());
    }
    if after.1 != before.1 {
        problems.push(format!(
            "Bridge external_ids changed:\nbefore: {}\nafter:  {}",
            before.1, after.1
        ));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{}: {}\n  stderr: {:?}",
            c.what,
            problems.join("; "),
            run.stderr
        )
    })
}

fn run_cases(ovs: &Ovs, vg: &Vmguard, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        let before = snapshot(ovs);
        let run = vg.run(&["apply"], &c.xml);
        eprintln!("{}: exit {}: {}", c.what, run.code, run.stderr.trim_end());
        if let Some(f) = judge(ovs, &before, c, &run) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs handled wrongly:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn malformed_xml_and_invalid_values_are_refused() {
    let (ovs, vg) = guarded_switch();
    let good = with_addrs(&["10.0.0.6"]);
    let truncated = good[..good.len() - "</devices></domain>".len()].to_string();
    let bad_mac = raw(
        &guard(&entry(MAC, &ip("10.0.0.6"))),
        &iface("52:54:00:00:06", DEV),
    );
    let mut cases = vec![
        // The name is readable before the XML breaks off: the message must still name it.
        case("malformed XML (truncated)", truncated, &["XML"]),
        case(
            "malformed XML (unclosed element)",
            good.replace("<model type='virtio'/>", "<model type='virtio'>"),
            &["XML"],
        ),
        case(
            "invalid MAC in <mac address>",
            bad_mac,
            &["mac address", "52:54:00:00:06"],
        ),
    ];
    for (what, addr) in [
        ("invalid IP in metadata", "10.0.0.300"),
        ("IPv4 multicast", "224.0.0.1"),
        ("IPv4 broadcast", "255.255.255.255"),
        ("0.0.0.0", "0.0.0.0"),
        ("IPv4 loopback", "127.0.0.1"),
        ("IPv6 multicast", "ff02::1"),
        ("IPv6 unspecified ::", "::"),
        ("IPv6 loopback", "::1"),
        ("IPv4 with prefix length", "10.0.0.6/24"),
        ("IPv6 with prefix length", "2001:db8::6/64"),
    ] {
        cases.push(case(what, with_addrs(&[addr]), &["ip address", MAC, addr]));
    }
    cases.push(case(
        "address listed twice",
        with_addrs(&["10.0.0.6", "10.0.0.6"]),
        &["ip address", MAC, "10.0.0.6"],
    ));
    run_cases(&ovs, &vg, cases);
}

#[test]
fn missing_and_inconsistent_metadata_is_refused() {
    let (ovs, vg) = guarded_switch();
    let one = iface(MAC, DEV);
    let ok_entry = entry(MAC, &ip("10.0.0.6"));
    let cases = vec![
        case(
            "interface on the bridge, no vmguard metadata at all",
            raw("", &one),
            &["metadata", MAC],
        ),
        case(
            "interface on the bridge without its <vmguard:interface> entry",
            raw(&guard(""), &one),
            &["metadata", MAC],
        ),
        case(
            "second interface on the bridge without an entry",
            raw(
                &guard(&ok_entry),
                &format!("{one}{}", iface("52:54:00:00:00:07", "vnet7")),
            ),
            &["metadata", "52:54:00:00:00:07"],
        ),
        case(
            "metadata MAC that matches no interface (typo)",
            raw(
                &guard(&format!(
                    "{ok_entry}{}",
                    entry("52:54:00:00:00:60", &ip("10.0.0.60"))
                )),
                &one,
            ),
            &["metadata", "52:54:00:00:00:60"],
        ),
        case(
            "interface listed twice in metadata",
            raw(&guard(&format!("{ok_entry}{ok_entry}")), &one),
            &["metadata", MAC],
        ),
        case(
            "unknown element inside an interface entry",
            raw(
                &guard(&entry(MAC, &format!("{}<vg:vlan id='3'/>", ip("10.0.0.6")))),
                &one,
            ),
            &["metadata", "vlan", MAC],
        ),
        case(
            "unknown attribute on <ip>",
            raw(
                &guard(&entry(MAC, "<vg:ip address='10.0.0.6' prefix='24'/>")),
                &one,
            ),
            &["metadata", "prefix", MAC],
        ),
        case(
            "unknown attribute on <interface>",
            raw(
                &guard(&format!(
                    "<vg:interface mac='{MAC}' vlan='3'>{}</vg:interface>",
                    ip("10.0.0.6")
                )),
                &one,
            ),
            &["metadata", "vlan", MAC],
        ),
        case(
            "unknown element directly in <guard>",
            raw(&guard(&format!("{ok_entry}<vg:pool/>")), &one),
            &["metadata", "pool"],
        ),
        case(
            "unknown attribute on <guard>",
            raw(
                &format!("<vg:guard xmlns:vg='urn:vmguard:1' version='2'>{ok_entry}</vg:guard>"),
                &one,
            ),
            &["metadata", "version"],
        ),
    ];
    run_cases(&ovs, &vg, cases);
}

#[test]
fn addresses_and_macs_of_another_domain_are_refused() {
    let (ovs, vg) = guarded_switch();
    let cases = vec![
        case(
            "IPv4 address owned by VM0",
            with_addrs(&[VM0_V4]),
            &["ip address", MAC, VM0_V4],
        ),
        case(
            "IPv6 address owned by VM0",
            with_addrs(&["10.0.0.6", VM0_V6]),
            &["ip address", MAC, VM0_V6],
        ),
        case(
            "VM0's EUI-64 link-local listed by another domain",
            with_addrs(&["10.0.0.6", "fe80::5054:ff:fe00:5"]),
            &["ip address", MAC, "fe80::5054:ff:fe00:5"],
        ),
        case(
            "VM0's MAC on another domain",
            domain_xml(NAME, UUID, BR, &[(VM0_MAC, DEV, &["10.0.0.6"])]),
            &["mac address", VM0_MAC],
        ),
        case(
            "VM0's MAC in upper case on another domain",
            domain_xml(
                NAME,
                UUID,
                BR,
                &[(
                    "52:54:00:00:00:05".to_uppercase().as_str(),
                    DEV,
                    &["10.0.0.6"],
                )],
            ),
            &["mac address", VM0_MAC],
        ),
        case(
            "one address on two interfaces of the domain",
            domain_xml(
                NAME,
                UUID,
                BR,
                &[
                    (MAC, DEV, &["10.0.0.6"]),
                    ("52:54:00:00:00:07", "vnet7", &["10.0.0.6"]),
                ],
            ),
            &["ip address", "10.0.0.6"],
        ),
    ];
    run_cases(&ovs, &vg, cases);
}

#[test]
fn a_missing_port_or_an_unreachable_ovs_is_refused() {
    let (ovs, vg) = guarded_switch();
    run_cases(
        &ovs,
        &vg,
        vec![
            case(
                "the interface's port is not in OVS",
                domain_xml(NAME, UUID, BR, &[(MAC, "vnet77", &["10.0.0.6"])]),
                &[MAC, "vnet77"],
            ),
            // Its flows would overlap the uplink's admission flows in table 0.
            case(
                "the interface's port is the uplink",
                domain_xml(NAME, UUID, BR, &[(MAC, UPLINK, &["10.0.0.6"])]),
                &[MAC, UPLINK, "an uplink"],
            ),
            case(
                "the interface's port is the bridge's LOCAL port",
                domain_xml(NAME, UUID, BR, &[(MAC, BR, &["10.0.0.6"])]),
                &[MAC, "LOCAL"],
            ),
        ],
    );

    // The same good domain, but the config points at a run directory where no OVS listens.
    let empty = tempfile::tempdir().expect("tempdir");
    let unreachable = Vmguard::new(None, BR, &[UPLINK], "direct");
    std::fs::write(
        &unreachable.config,
        format!(
            "bridge = {BR:?}\nuplinks = [{UPLINK:?}]\narp_mode = \"direct\"\novs_rundir = {:?}\n",
            empty.path().display().to_string()
        ),
    )
    .expect("write config");
    run_cases(
        &ovs,
        &unreachable,
        vec![case(
            "OVS unreachable (empty rundir)",
            with_addrs(&["10.0.0.6"]),
            &[],
        )],
    );
}
