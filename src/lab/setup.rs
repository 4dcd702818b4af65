//! Brings the lab up: namespaces, the private OVS and bridge, vmguard's `init` and the libvirt
//! hook for every VM, the gateway's dnsmasq, captures, and the guests' DHCP and SLAAC.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use vmguard::model::MacAddr;

use super::capture::{Captures, Direction};
use super::host::{checked, Host};
use super::topology::{
    Topology, Vm, BRIDGE, GATEWAY_MAC, GATEWAY_NS, GATEWAY_V4, GATEWAY_V6, GUEST_IF, REMOTE_V4,
    REMOTE_V6, STRAY_MAC, STRAY_NS, STRAY_PORT, STRAY_V4, SWITCH_NS, UPLINK_PORT,
};
use super::{gateway_lla, ovs_command, progress, read_kv, run_vmguard, Lab, Lease4};

const OVS_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// How long the guests get for DAD and SLAAC.
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The DHCPv4 client's hook: records the lease, then configures it like a distribution's
/// script would (address and default route). `@LEASE@` is replaced by the record's path.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
# udhcpc hook of `vmguard lab`
case "$1" in
bound|renew)
    printf 'ip=%s\nrouter=%s\nserverid=%s\n' "$ip" "${router%% *}" "$serverid" > "@LEASE@"
    ip addr replace "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
"#;

/// The DHCPv6 client's hook (dhclient passes no environment of ours, hence the baked path).
const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
# dhclient -6 hook of `vmguard lab`
case "$reason" in
BOUND6|RENEW6|REBIND6|REBOOT6)
    printf 'ip6=%s\nserver=%s\n' "$new_ip6_address" "$new_dhcp6_server_id" > "@LEASE@"
    [ -n "$new_ip6_address" ] && ip -6 addr replace "$new_ip6_address/128" dev "$interface"
    ;;
esac
exit 0
"#;

/// Creates everything and returns the running lab. On error the `Host` is dropped, which
/// removes whatever was created.
pub fn build(mut host: Host, topo: Topology, exe: PathBuf) -> Result<Lab> {
    progress(&format!(
        "creating {} network namespaces (switch, gateway, {} VMs, one unguarded port)",
        topo.namespaces().len(),
        topo.vms.len()
    ));
    for ns in topo.namespaces() {
        host.add_netns(&ns)?;
    }
    // The switch-side veths are kernel interfaces too, and the userspace datapath reads them
    // with packet sockets: the switch namespace's own IPv6 stack would see every guest frame
    // (and take a rogue RA) and send its own DAD and MLD straight down to the guests.
    host.sh_ok(
        SWITCH_NS,
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
    )?;
    progress(&format!(
        "starting ovsdb-server and ovs-vswitchd (userspace datapath) in {SWITCH_NS}, state in {}",
        host.dir().display()
    ));
    start_ovs(&mut host)?;
    wire_gateway(&host)?;
    let config = host.dir().join("config.toml");
    fs::write(&config, topo.config_toml(host.dir())).context("writing the lab's config")?;
    progress(&format!(
        "vmguard init on bridge {BRIDGE} (arp_mode={})",
        topo.arp_mode.as_str()
    ));
    let init = run_vmguard(&host, &exe, &config, &["init"], "")?;
    checked(&["vmguard", "init"], init)?;
    progress(&format!(
        "attaching {} VMs and one unguarded port by veth",
        topo.vms.len()
    ));
    for vm in &topo.vms {
        attach(&host, &vm.netns, &vm.port, vm.mac, Some(vm))?;
    }
    attach(&host, STRAY_NS, STRAY_PORT, STRAY_MAC, None)?;
    progress("starting tcpdump in every namespace");
    let mut taps: Vec<(String, Direction)> = topo
        .vms
        .iter()
        .map(|v| (v.netns.clone(), Direction::In))
        .collect();
    taps.extend([
        (GATEWAY_NS.to_string(), Direction::In),
        (topo.attacker().netns.clone(), Direction::Out),
        (STRAY_NS.to_string(), Direction::Out),
    ]);
    let started = SystemTime::now();
    let caps = Captures::start(&mut host, &taps)?;
    let mut lab = Lab {
        host,
        topo,
        caps,
        config,
        exe,
        leases4: BTreeMap::new(),
        leases6: BTreeMap::new(),
        dhcp6_clients: BTreeMap::new(),
        serial: 0,
        started,
    };
    progress("running the libvirt hook (prepare, start, started) for each VM");
    for vm in lab.topo.vms.clone() {
        // For whoever keeps the lab and wants to run vmguard by hand.
        fs::write(
            lab.host.dir().join(format!("{}.xml", vm.domain)),
            vm.domain_xml(),
        )?;
        for op in ["prepare", "start", "started"] {
            let out = lab.vmguard(&["hook", &vm.domain, op, "begin", "-"], &vm.domain_xml())?;
            if !out.status.success() || !out.stdout.is_empty() {
                bail!(
                    "hook {} {op} begin failed (exit {}, {} bytes on stdout): {}",
                    vm.domain,
                    out.status,
                    out.stdout.len(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
    progress("starting dnsmasq on the gateway: DHCPv4, DHCPv6 and RA for 2001:db8:77::/64");
    let args = lab.topo.dnsmasq_args(lab.host.dir());
    let argv: Vec<&str> = std::iter::once("dnsmasq")
        .chain(args.iter().map(String::as_str))
        .collect();
    lab.host.spawn_in(GATEWAY_NS, &argv, "dnsmasq-gw")?;
    lab.host.sleep(Duration::from_millis(300))?;
    progress("guests up: carrier, DHCPv4 (udhcpc), DAD and SLAAC, then DHCPv6 (dhclient -6)");
    for vm in lab.topo.vms.clone() {
        if let Some(lla) = vm.custom_lla {
            lab.sh_ok(
                &vm.netns,
                &format!("ip -6 addr add {lla}/64 dev {GUEST_IF}"),
            )?;
        }
        plug(&lab.host, &vm.port)?;
    }
    lab.sh_ok(
        STRAY_NS,
        &format!("ip addr add {STRAY_V4}/24 dev {GUEST_IF}"),
    )?;
    plug(&lab.host, STRAY_PORT)?;
    for vm in lab.topo.vms.clone() {
        let lease = dhcp4(&mut lab, &vm)?;
        lab.leases4.insert(vm.index, lease);
        if let Some(extra) = vm.extra_v4 {
            // The second address the admin configured statically (and listed in the metadata).
            lab.sh_ok(&vm.netns, &format!("ip addr add {extra}/24 dev {GUEST_IF}"))?;
        }
    }
    wait_for_slaac(&lab)?;
    let mut clients = Vec::new();
    for vm in lab.topo.vms.clone() {
        clients.push((vm.index, start_dhcp6(&mut lab, &vm, None)?));
    }
    for (index, client) in clients {
        let ip6 = wait_dhcp6(&lab, &client.lease)?;
        lab.leases6.insert(index, ip6);
        lab.dhcp6_clients.insert(index, client);
    }
    wait_for_dad(&lab)?;
    Ok(lab)
}

/// ovsdb-server and ovs-vswitchd inside the switch namespace (so the userspace datapath's
/// `ovs-netdev` tap never meets another OVS's), then a `datapath_type=netdev` bridge.
fn start_ovs(host: &mut Host) -> Result<()> {
    let dir = host.dir().display().to_string();
    let db = format!("{dir}/conf.db");
    checked(
        &["ovsdb-tool"],
        host.output(ovs_command(
            host,
            &["ovsdb-tool", "create", &db, OVS_SCHEMA],
        ))?,
    )?;
    // Both daemons run in the foreground as lab processes; OVS_RUNDIR and friends point them
    // (and every OVS tool the lab runs) at the run directory.
    let daemon = |host: &Host, line: String| {
        let argv: Vec<&str> = line.split_whitespace().collect();
        let mut cmd = host.command(Some(SWITCH_NS), &argv);
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            cmd.env(var, &dir);
        }
        cmd
    };
    let server = daemon(host, format!(
        "ovsdb-server --no-chdir --pidfile={dir}/ovsdb-server.pid --log-file={dir}/ovsdb-server.log --remote=punix:{dir}/db.sock {db}"
    ));
    host.spawn(server, "ovsdb-server", "ovsdb-server")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host
        .output(ovs_command(
            host,
            &["ovs-vsctl", "--timeout=2", "--no-wait", "init"],
        ))?
        .status
        .success()
    {
        if Instant::now() > deadline {
            bail!("ovsdb-server did not answer (see {dir}/ovsdb-server.log)");
        }
        host.sleep(Duration::from_millis(50))?;
    }
    let vswitchd = daemon(
        host,
        format!(
            "ovs-vswitchd --enable-dummy --disable-system --disable-system-route --no-chdir \
         --pidfile={dir}/ovs-vswitchd.pid --log-file={dir}/ovs-vswitchd.log unix:{dir}/db.sock"
        ),
    );
    host.spawn(vswitchd, "ovs-vswitchd", "ovs-vswitchd")?;
    let add_br = [
        "ovs-vsctl",
        "--timeout=20",
        "add-br",
        BRIDGE,
        "--",
        "set",
        "Bridge",
        BRIDGE,
        "datapath_type=netdev",
    ];
    checked(&add_br, host.output(ovs_command(host, &add_br))?)
        .with_context(|| format!("see {dir}/ovs-vswitchd.log"))?;
    Ok(())
}

/// A veth from the switch namespace (`port`) to `ns` (`eth0` with `mac`), on the bridge. A VM's
/// port gets the external_ids libvirt sets.
fn attach(host: &Host, ns: &str, port: &str, mac: MacAddr, vm: Option<&Vm>) -> Result<()> {
    let veth = format!("ip link add {port} netns {SWITCH_NS} type veth peer name {GUEST_IF} address {mac} netns {ns}");
    checked(
        &["ip", "link", "add"],
        host.output(host.command(None, &veth.split_whitespace().collect::<Vec<_>>()))?,
    )?;
    // The kernel leaves checksums of locally sent UDP/TCP to the NIC; the userspace datapath
    // forwards such frames unchanged, so the receiving guest would drop them. Compute them.
    host.sh_ok(ns, &format!("ethtool -K {GUEST_IF} tx off"))?;
    if vm.is_some_and(|v| v.custom_lla.is_some()) {
        // No EUI-64 link-local: the guest uses only the one listed in its metadata.
        host.sh_ok(
            ns,
            &format!("sysctl -qw net.ipv6.conf.{GUEST_IF}.addr_gen_mode=1"),
        )?;
    }
    // The guest side is up (tcpdump needs that), the switch side stays down: no carrier, so
    // the guest sends nothing until [`plug`] — like a VM whose QEMU has not started yet.
    host.sh_ok(ns, &format!("ip link set {GUEST_IF} up"))?;
    let mut argv: Vec<String> = ["ovs-vsctl", "--timeout=20", "add-port", BRIDGE, port]
        .map(String::from)
        .to_vec();
    if let Some(vm) = vm {
        argv.extend([
            "--".to_string(),
            "set".into(),
            "Interface".into(),
            port.into(),
            format!("external_ids:attached-mac=\"{mac}\""),
            format!("external_ids:vm-id=\"{}\"", vm.uuid),
            format!("external_ids:iface-id=\"{}-{port}\"", vm.domain),
            "external_ids:iface-status=active".into(),
        ]);
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    checked(&argv, host.output(ovs_command(host, &argv))?)?;
    Ok(())
}

/// Gives a guest carrier: up goes the switch side of its veth.
fn plug(host: &Host, port: &str) -> Result<()> {
    host.sh_ok(SWITCH_NS, &format!("ip link set {port} up"))
        .map(drop)
}

/// The gateway: uplink port, addresses, a network behind it (on its loopback), forwarding on.
fn wire_gateway(host: &Host) -> Result<()> {
    progress(&format!(
        "wiring the gateway {GATEWAY_NS}: {GATEWAY_V4}/24, {GATEWAY_V6}/64 on uplink port {UPLINK_PORT}"
    ));
    attach(host, GATEWAY_NS, UPLINK_PORT, GATEWAY_MAC, None)?;
    for line in [
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1".to_string(),
        format!("ip addr add {GATEWAY_V4}/24 dev {GUEST_IF}"),
        format!("ip -6 addr add {GATEWAY_V6}/64 dev {GUEST_IF} nodad"),
        format!("ip addr add {REMOTE_V4}/24 dev lo"),
        format!("ip -6 addr add {REMOTE_V6}/64 dev lo"),
    ] {
        host.sh_ok(GATEWAY_NS, &line)?;
    }
    plug(host, UPLINK_PORT)
}

/// Writes an executable client hook with its lease record path baked in.
fn hook_script(lab: &mut Lab, template: &str, stem: &str) -> Result<(PathBuf, PathBuf)> {
    let lease = lab.new_file(stem, "lease");
    let script = lab.new_file(stem, "sh");
    fs::write(
        &script,
        template.replace("@LEASE@", &lease.display().to_string()),
    )
    .context("writing a DHCP client hook")?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    Ok((script, lease))
}

/// One DHCPv4 exchange with busybox udhcpc (exits once bound, or after 3 tries). Returns what
/// the client's hook recorded.
pub fn dhcp4(lab: &mut Lab, vm: &Vm) -> Result<Lease4> {
    let (script, lease) = hook_script(lab, UDHCPC_SCRIPT, &format!("{}-udhcpc", vm.name()))?;
    let line = format!(
        "busybox udhcpc -i {GUEST_IF} -f -q -n -t 3 -T 1 -A 1 -s {}",
        script.display()
    );
    lab.sh(&vm.netns, &line)?;
    let kv = read_kv(&lease);
    let ip = |k: &str| kv.get(k).and_then(|v| v.parse().ok());
    Ok(Lease4 {
        ip: ip("ip"),
        router: ip("router"),
        server: ip("serverid"),
    })
}

/// A running DHCPv6 client of one guest.
pub struct Dhcp6Client {
    pub pid: u32,
    /// What its hook records once bound.
    pub lease: PathBuf,
    /// Its lease database, which holds its DUID.
    pub db: PathBuf,
}

/// Starts dhclient -6 (stateful DHCPv6) in the foreground as a lab process, with a new lease
/// database so it solicits; with `same_duid_as`, it keeps that client's DUID (the server
/// holds the reservation for that client).
pub fn start_dhcp6(lab: &mut Lab, vm: &Vm, same_duid_as: Option<&Path>) -> Result<Dhcp6Client> {
    let stem = format!("{}-dhclient6", vm.name());
    let (script, lease) = hook_script(lab, DHCLIENT_SCRIPT, &stem)?;
    let conf = lab.new_file(&stem, "conf");
    fs::write(&conf, "# dhclient -6 of vmguard lab: defaults only\n")?;
    let db = lab.new_file(&stem, "leases");
    if let Some(old) = same_duid_as {
        let duid: String = fs::read_to_string(old)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("default-duid"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&db, duid)?;
    }
    let pidfile = lab.new_file(&stem, "pid");
    let line = format!(
        "dhclient -6 -d -1 -v -cf {} -lf {} -pf {} -sf {} {GUEST_IF}",
        conf.display(),
        db.display(),
        pidfile.display(),
        script.display()
    );
    let argv: Vec<&str> = line.split_whitespace().collect();
    let log = format!("{stem}-{}", lab.new_serial());
    let pid = lab.host.spawn_in(&vm.netns, &argv, &log)?;
    Ok(Dhcp6Client { pid, lease, db })
}

/// Waits for a DHCPv6 client's hook to record a lease; `None` after the timeout.
pub fn wait_dhcp6(lab: &Lab, lease: &Path) -> Result<Option<Ipv6Addr>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(ip) = read_kv(lease).get("ip6").and_then(|v| v.parse().ok()) {
            return Ok(Some(ip));
        }
        lab.host.sleep(Duration::from_millis(50))?;
    }
    Ok(None)
}

/// The IPv6 addresses on a guest interface with their DAD state: (address, tentative, dadfailed).
pub fn addresses_v6(lab: &Lab, ns: &str) -> Result<Vec<(Ipv6Addr, bool, bool)>> {
    let mut out = Vec::new();
    for link in lab.ip_json(ns, &["-6", "addr", "show", "dev", GUEST_IF])? {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                let flag = |k: &str| a[k].as_bool().unwrap_or(false);
                out.push((ip, flag("tentative"), flag("dadfailed")));
            }
        }
    }
    Ok(out)
}

/// The IPv6 default routers of a guest (from RAs).
pub fn default_router_v6(lab: &Lab, ns: &str) -> Result<Vec<Ipv6Addr>> {
    let gateway = |v: &serde_json::Value| {
        v["gateway"]
            .as_str()
            .and_then(|g| g.parse::<Ipv6Addr>().ok())
    };
    Ok(lab
        .ip_json(ns, &["-6", "route", "show", "default"])?
        .iter()
        .flat_map(|r| {
            let nexthops = r["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(gateway);
            gateway(r).into_iter().chain(nexthops).collect::<Vec<_>>()
        })
        .collect())
}

/// Waits until every guest has its link-local and SLAAC addresses and the gateway as router.
fn wait_for_slaac(lab: &Lab) -> Result<()> {
    let started = Instant::now();
    let mut told = Instant::now();
    loop {
        let mut waiting = Vec::new();
        for vm in &lab.topo.vms {
            let addrs = addresses_v6(lab, &vm.netns)?;
            let has = |ip: Ipv6Addr| addrs.iter().any(|(a, tentative, _)| *a == ip && !tentative);
            if !has(vm.lla())
                || !has(vm.slaac_v6)
                || !default_router_v6(lab, &vm.netns)?.contains(&gateway_lla())
            {
                waiting.push(vm.name());
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if started.elapsed() > ADDRESS_TIMEOUT {
            bail!(
                "no SLAAC address or default route from the gateway's RA after {} s on {} (see {}/dnsmasq-gw.log)",
                ADDRESS_TIMEOUT.as_secs(),
                waiting.join(", "),
                lab.host.dir().display()
            );
        }
        if told.elapsed() > Duration::from_secs(5) {
            progress(&format!(
                "still waiting for DAD and SLAAC on {}",
                waiting.join(", ")
            ));
            told = Instant::now();
        }
        lab.host.sleep(Duration::from_millis(100))?;
    }
}

/// Waits (up to 5 s) until no guest address is tentative, the DHCPv6 ones included.
fn wait_for_dad(lab: &Lab) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut tentative = false;
        for vm in &lab.topo.vms {
            tentative |= addresses_v6(lab, &vm.netns)?.iter().any(|(_, t, _)| *t);
        }
        if !tentative || Instant::now() > deadline {
            return Ok(());
        }
        lab.host.sleep(Duration::from_millis(100))?;
    }
}
