//! End to end with a real libvirtd, real QEMU guests and a real Open vSwitch: vmguard installed
//! as libvirt's qemu hook guards two running guests, and the guests themselves show it.
//!
//! Needs root and `scripts/deps/libvirt.sh` (libvirt 9.0, qemu-system-x86, a Debian kernel and a
//! static busybox); without them it fails and says so. Everything it starts (OVS, virtlogd,
//! libvirtd, QEMU) lives in private network and mount namespaces (`tests/e2e/host.rs`) and is
//! stopped by pid at the end. The guests are TCG (`type='qemu'`) busybox initramfs guests whose
//! init (`tests/e2e/init`) prints `E2E:` markers and runs the test's commands from its serial
//! console. `VMGUARD_E2E_KEEP=1` keeps the temp dir (logs, consoles, overlays).
//!
//! The story, each step checked inside the guests and on the switch (functions below, in order):
//! 1. two guests (one `type='bridge'` with a fixed tap name and prefixed metadata, one on a
//!    libvirt OVS network with a `vnetN` tap and default-namespace metadata) start through the
//!    vmguard hook and reach the gateway and each other over IPv4 and IPv6;
//! 2. a guest that sends from an address it does not own (IPv4, IPv6), claims another guest's
//!    IP in ARP, or changes its MAC reaches nobody: the echo counters of the gateway and of the
//!    other guest stay put, while vmguard's drop counters (and `vmguard status`) grow;
//! 3. a hot-plugged NIC (no hook call) stays closed until `vmguard sync --libvirt`;
//! 4. a guest with broken metadata and one that claims another's IP do not start, `virsh start`
//!    shows vmguard's one-line reason, and the running guest's flows stay untouched;
//! 5. libvirtd restarted (by pid): the guests keep running and guarded, `reconnect` restores
//!    lost flows and leaves right ones alone;
//! 6. ovs-vswitchd restarted under running guests: closed until `vmguard sync --libvirt`, and a
//!    `reconnect` meanwhile does not kill them;
//! 7. `virsh destroy`: the guest's flows are gone;
//! 8. `virsh save` / `virsh restore`: flows removed, then back on the new ports.
//!
//! `vmguard verify` is checked along the way: exit 0 when in sync, 1 on drift.
//!
//! A second test, in its own sandbox, provisions: `vmguard create` defines two guests from a
//! template (`e2e/domain.xml` without interface and metadata, `dhcp` on the kernel command line),
//! `vmguard dhcp-hosts` feeds a dnsmasq on the gateway that leases reserved addresses only, the
//! guests lease exactly the addresses `vmguard addresses` lists and reach the gateway and each
//! other while guarded, and `vmguard delete` stops, undefines and frees them.

#[path = "e2e/guest.rs"]
mod guest;
#[path = "e2e/host.rs"]
mod host;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use vmguard::model::{DomainUuid, MacAddr};
use vmguard::pipeline::{Cookie, IfaceKey, Reason};

use guest::{Console, Ran};
use host::Sandbox;

/// The binary cargo built; the test installs a copy (`Lab::vmguard`), so that a rebuild while it
/// runs cannot change the hook under libvirtd's feet.
const BUILT_VMGUARD: &str = env!("CARGO_BIN_EXE_vmguard");
const BRIDGE: &str = "vm-switch";
const UPLINK: &str = "upstream";
/// A libvirt network for the guarded bridge, as many hosts define one.
const NETWORK: &str = "guarded";
const GW_MAC: &str = "02:00:00:77:00:01";
const GW4: &str = "10.77.0.1";
const GW6: &str = "fd77::1";
/// An address no guest owns, for the spoofing guest to take.
const FOREIGN4: &str = "10.77.0.99";
const FOREIGN6: &str = "fd77::99";
/// A MAC no guest owns.
const FOREIGN_MAC: &str = "52:54:00:77:00:99";

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
const GUEST_CMD_TIMEOUT: Duration = Duration::from_secs(40);

/// A test guest: one virtio NIC on the guarded bridge, vmguard metadata listing `claims`.
struct Guest {
    name: &'static str,
    uuid: &'static str,
    mac: &'static str,
    ip4: &'static str,
    ip6: &'static str,
    /// `<target dev>`; None lets libvirt name the tap (vnetN).
    dev: Option<&'static str>,
    /// `<interface type='network'>` on the libvirt network [`NETWORK`] (an OVS bridge network),
    /// rather than `type='bridge'` on the bridge itself.
    via_network: bool,
    /// The addresses in its metadata.
    claims: &'static [&'static str],
    /// Metadata with a `vmguard:` prefix, or in the default namespace (vmguard must match the
    /// namespace URI, not a prefix).
    prefixed: bool,
}

const A: Guest = Guest {
    name: "vg-a",
    uuid: "0e2e0000-0000-4000-8000-00000000000a",
    mac: "52:54:00:77:00:0a",
    ip4: "10.77.0.10",
    ip6: "fd77::10",
    dev: Some("vg-a"),
    via_network: false,
    claims: &["10.77.0.10", "fd77::10"],
    prefixed: true,
};

const B: Guest = Guest {
    name: "vg-b",
    uuid: "0e2e0000-0000-4000-8000-00000000000b",
    mac: "52:54:00:77:00:0b",
    ip4: "10.77.0.11",
    ip6: "fd77::11",
    dev: None,
    via_network: true,
    claims: &["10.77.0.11", "fd77::11"],
    prefixed: false,
};

/// Metadata with an address that is no IPv4 address.
const BROKEN: Guest = Guest {
    name: "vg-broken",
    uuid: "0e2e0000-0000-4000-8000-00000000000c",
    mac: "52:54:00:77:00:0c",
    ip4: "10.77.0.12",
    ip6: "fd77::12",
    dev: Some("vg-broken"),
    via_network: false,
    claims: &["10.77.0.300"],
    prefixed: true,
};

/// Claims A's IPv4 address.
const THIEF: Guest = Guest {
    name: "vg-thief",
    uuid: "0e2e0000-0000-4000-8000-00000000000d",
    mac: "52:54:00:77:00:0d",
    ip4: "10.77.0.10",
    ip6: "fd77::13",
    dev: Some("vg-thief"),
    via_network: false,
    claims: &["10.77.0.10", "fd77::13"],
    prefixed: true,
};

impl Guest {
    fn key(&self) -> IfaceKey {
        let uuid: DomainUuid = self.uuid.parse().expect("test UUID");
        let mac: MacAddr = self.mac.parse().expect("test MAC");
        IfaceKey::derive(&uuid, mac)
    }

    fn metadata(&self) -> String {
        let p = if self.prefixed { "vmguard:" } else { "" };
        let xmlns = if self.prefixed {
            "xmlns:vmguard"
        } else {
            "xmlns"
        };
        let ips: String = self
            .claims
            .iter()
            .map(|ip| format!("\n        <{p}ip address=\"{ip}\"/>"))
            .collect();
        format!(
            "    <{p}guard {xmlns}=\"urn:vmguard:1\">\n      <{p}interface mac=\"{}\">{ips}\n      </{p}interface>\n    </{p}guard>",
            self.mac
        )
    }
}

/// One flow of `ovs-ofctl dump-flows`: its cookie, packet count, and the rest without stats.
#[derive(Debug)]
struct Flow {
    cookie: u64,
    n_packets: u64,
    rule: String,
}

impl Flow {
    fn parse(line: &str) -> Option<Flow> {
        let mut flow = Flow {
            cookie: 0,
            n_packets: 0,
            rule: String::new(),
        };
        let mut rule = Vec::new();
        for tok in line.split_whitespace() {
            let t = tok.trim_end_matches(',');
            if let Some(v) = t.strip_prefix("cookie=") {
                flow.cookie = u64::from_str_radix(v.trim_start_matches("0x"), 16).ok()?;
            } else if let Some(v) = t.strip_prefix("n_packets=") {
                flow.n_packets = v.parse().ok()?;
                continue;
            } else if ["duration=", "n_bytes=", "idle_age=", "hard_age="]
                .iter()
                .any(|s| t.starts_with(s))
            {
                continue;
            }
            rule.push(t);
        }
        flow.rule = rule.join(" ");
        line.trim_start().starts_with("cookie=").then_some(flow)
    }

    fn owner(&self) -> Option<(IfaceKey, Reason)> {
        Cookie::decode(self.cookie).map(|c| (c.key(), c.reason()))
    }

    fn matches_in_port(&self, ofport: u32) -> bool {
        self.rule
            .split([' ', ','])
            .any(|f| f == format!("in_port={ofport}"))
    }
}

/// The ICMP echo requests a host has received so far (IPv4, IPv6), from /proc/net/snmp{,6}.
fn echoes_received(snmp: &str) -> Result<(u64, u64)> {
    let icmp: Vec<Vec<&str>> = snmp
        .lines()
        .filter(|l| l.starts_with("Icmp:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let v4 = match icmp.as_slice() {
        [names, values, ..] => names
            .iter()
            .position(|n| *n == "InEchos")
            .and_then(|i| values.get(i)?.parse().ok()),
        _ => None,
    };
    let v6 = snmp.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some("Icmp6InEchos")).then(|| f.next()?.parse().ok())?
    });
    match (v4, v6) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => bail!("no Icmp InEchos / Icmp6InEchos in:\n{snmp}"),
    }
}

/// The running test: the sandbox, the guests' consoles and the order of events.
struct Lab {
    sb: Sandbox,
    /// The vmguard binary the hook runs.
    vmguard: PathBuf,
    consoles: BTreeMap<&'static str, Console>,
    kernel: PathBuf,
    initrd: PathBuf,
    started: Instant,
}

impl Lab {
    fn step(&self, what: &str) {
        eprintln!("[e2e {:6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// The sandbox and the guest images.
    fn new() -> Result<Lab> {
        host::preflight()?;
        let started = Instant::now();
        let sb = Sandbox::new()?;
        let cache = host::cache_dir();
        let initrd = sb.dir.join("initrd.cpio");
        guest::build_initramfs(
            include_bytes!("e2e/init"),
            &cache.join("busybox"),
            &cache.join("modules"),
            &initrd,
        )?;
        let kernel = sb.dir.join("vmlinuz");
        fs::copy(cache.join("vmlinuz"), &kernel)?;
        let vmguard = sb.dir.join("vmguard");
        fs::copy(BUILT_VMGUARD, &vmguard)
            .with_context(|| format!("cannot copy {BUILT_VMGUARD}"))?;
        Ok(Lab {
            vmguard,
            sb,
            consoles: BTreeMap::new(),
            kernel,
            initrd,
            started,
        })
    }

    /// OVS with the guarded netdev bridge and the uplink to the gateway, vmguard's config,
    /// `vmguard init`, the hook installed, then libvirtd (which looks for hooks at start).
    fn up(&mut self) -> Result<()> {
        let sb = &mut self.sb;
        sb.start_ovs()?;
        host::stdout(sb.host_cmd("ovs-vsctl").args([
            "--timeout=30",
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
        ]))?;
        // The gateway: a veth pair, one end an OVS port in the host, the other in the peer.
        let peer = sb.peer_pid().to_string();
        host::stdout(sb.host_cmd("ip").args(["link", "set", "lo", "up"]))?;
        host::stdout(sb.host_cmd("ip").args([
            "link", "add", UPLINK, "type", "veth", "peer", "name", "eth0", "netns", &peer,
        ]))?;
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "set", "eth0", "address", GW_MAC],
            &["addr", "add", &format!("{GW4}/24"), "dev", "eth0"],
            &[
                "-6",
                "addr",
                "add",
                &format!("{GW6}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
            &["link", "set", "eth0", "up"],
        ] {
            host::stdout(sb.peer_cmd("ip").args(args))?;
        }
        host::stdout(sb.host_cmd("ip").args(["link", "set", UPLINK, "up"]))?;
        host::stdout(
            sb.host_cmd("ovs-vsctl")
                .args(["--timeout=30", "add-port", BRIDGE, UPLINK]),
        )?;

        sb.write(
            "/etc/vmguard/config.toml",
            &format!(
                "# vmguard e2e test (private mount namespace)\nbridge = \"{BRIDGE}\"\n\
                 uplinks = [\"{UPLINK}\"]\narp_mode = \"direct\"\novs_rundir = \"{}\"\n",
                host::OVS_RUNDIR
            ),
        )?;
        let lab = self;
        lab.step("OVS up with the guarded bridge and the gateway");
        lab.vmguard_ok(&["init"])?;
        lab.sb.configure_libvirt()?;
        let out = lab.vmguard_ok(&["install-hook"])?;
        let link = lab.sb.inside("/etc/libvirt/hooks/qemu.d");
        // Links read, not followed: /proc/PID/root/… would resolve them in this namespace.
        let installed: Vec<_> = fs::read_dir(&link)
            .context("install-hook created no /etc/libvirt/hooks/qemu.d")?
            .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
            .collect();
        let me = fs::canonicalize(&lab.vmguard)?;
        ensure!(
            installed
                .iter()
                .any(|p| fs::canonicalize(p).is_ok_and(|p| p == me)),
            "install-hook left no link to {} in qemu.d: {installed:?} ({out})",
            lab.vmguard.display()
        );
        lab.step(&format!("vmguard init + install-hook: {}", out.trim()));
        lab.sb.start_libvirt()?;
        let net = lab.sb.dir.join("network.xml");
        fs::write(
            &net,
            format!(
                "<network>\n  <name>{NETWORK}</name>\n  <forward mode='bridge'/>\n  \
                 <bridge name='{BRIDGE}'/>\n  <virtualport type='openvswitch'/>\n</network>\n"
            ),
        )?;
        lab.sb.virsh(&["net-define", &net.to_string_lossy()])?;
        lab.sb.virsh(&["net-start", NETWORK])?;
        lab.step(&format!("libvirtd up, network {NETWORK} on {BRIDGE}"));
        Ok(())
    }

    /// Runs `vmguard ARGS` inside the sandbox (so with the private /etc/vmguard/config.toml).
    fn vmguard(&self, args: &[&str]) -> Result<Output> {
        host::output(
            self.sb.host_cmd(&self.vmguard.to_string_lossy()).args(args),
            Duration::from_secs(120),
        )
    }

    /// `vmguard ARGS`, which must exit 0; returns stdout and stderr.
    fn vmguard_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.vmguard(args)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            out.status.success(),
            "vmguard {} failed ({}):\n{text}",
            args.join(" "),
            out.status
        );
        Ok(text)
    }

    fn define(&self, g: &Guest) -> Result<()> {
        let target = g
            .dev
            .map_or(String::new(), |d| format!("      <target dev='{d}'/>"));
        let interface = if g.via_network {
            format!("    <interface type='network'>\n      <source network='{NETWORK}'/>")
        } else {
            format!(
                "    <interface type='bridge'>\n      <source bridge='{BRIDGE}'/>\n      \
                 <virtualport type='openvswitch'/>"
            )
        };
        let console_log = self.sb.dir.join(format!("{}.console.log", g.name));
        let xml = include_str!("e2e/domain.xml")
            .replace("@NAME@", g.name)
            .replace("@UUID@", g.uuid)
            .replace("@METADATA@", &g.metadata())
            .replace("@KERNEL@", &self.kernel.to_string_lossy())
            .replace("@INITRD@", &self.initrd.to_string_lossy())
            .replace("@CIDR@", &format!("{}/24", g.ip4))
            .replace("@CIDR6@", &format!("{}/64", g.ip6))
            .replace("@INTERFACE@", &interface)
            .replace("@TARGET@", &target)
            .replace("@MAC@", g.mac)
            .replace(
                "@CONSOLE_SOCKET@",
                &self.console_socket(g).to_string_lossy(),
            )
            .replace("@CONSOLE_LOG@", &console_log.to_string_lossy());
        let file = self.sb.dir.join(format!("{}.xml", g.name));
        fs::write(&file, xml)?;
        self.sb.virsh(&["define", &file.to_string_lossy()])?;
        Ok(())
    }

    /// `virsh start`, then connects to its console.
    fn start(&mut self, g: &Guest) -> Result<()> {
        self.sb.virsh(&["start", g.name])?;
        let console = Console::connect(g.name, &self.console_socket(g), Duration::from_secs(20))?;
        self.consoles.insert(g.name, console);
        Ok(())
    }

    fn console_socket(&self, g: &Guest) -> PathBuf {
        self.sb.dir.join(format!("{}.sock", g.name))
    }

    fn wait_ready(&self, g: &Guest) -> Result<()> {
        let line = self.console(g)?.wait_for("E2E: READY", BOOT_TIMEOUT)?;
        self.step(&format!("{}: {line}", g.name));
        Ok(())
    }

    fn console(&self, g: &Guest) -> Result<&Console> {
        self.consoles
            .get(g.name)
            .with_context(|| format!("{} has no console", g.name))
    }

    /// Runs a shell command in guest `g`.
    fn sh(&mut self, g: &Guest, cmd: &str) -> Result<Ran> {
        self.consoles
            .get_mut(g.name)
            .with_context(|| format!("{} has no console", g.name))?
            .run(cmd, GUEST_CMD_TIMEOUT)
    }

    fn sh_ok(&mut self, g: &Guest, cmd: &str) -> Result<String> {
        let ran = self.sh(g, cmd)?;
        ensure!(
            ran.rc == 0,
            "{}: `{cmd}` exited {}:\n{}",
            g.name,
            ran.rc,
            ran.output
        );
        Ok(ran.output)
    }

    /// `g` pings `dst` (retrying while ARP/ND and DAD settle): must get an answer.
    fn reaches(&mut self, g: &Guest, dst: &str) -> Result<()> {
        let cmd = format!(
            "for i in 1 2 3 4 5 6 7 8; do ping -c 1 -W 1 -w 2 {dst} && exit 0; done; exit 1"
        );
        self.sh_ok(g, &cmd)
            .with_context(|| format!("{} should reach {dst} with its own addresses", g.name))?;
        Ok(())
    }

    /// `g` pings every one of `dsts` at once and must get no answer from any.
    /// With `source`, the pings are sent from that address (it must be on the guest).
    fn reaches_none(&mut self, g: &Guest, dsts: &[&str], source: Option<&str>) -> Result<()> {
        let from = source.map_or(String::new(), |s| format!("-I {s} "));
        let pings: String = dsts
            .iter()
            .map(|d| {
                format!(
                    "(ping -c 2 -W 1 -w 2 {from}{d} >/dev/null && echo \"E2E: REACHED {d}\" || \
                     echo \"E2E: no answer from {d}\") & "
                )
            })
            .collect();
        let ran = self.sh(g, &format!("{pings}wait"))?;
        ensure!(
            !ran.output.contains("REACHED"),
            "{} got answers it must not get:\n{}",
            g.name,
            ran.output
        );
        Ok(())
    }

    /// Echo requests received so far by the gateway and by guest `other`.
    fn echo_counters(&mut self, other: &Guest) -> Result<[(u64, u64); 2]> {
        let gw = host::stdout(
            self.sb
                .peer_cmd("cat")
                .args(["/proc/net/snmp", "/proc/net/snmp6"]),
        )?;
        let guest = self.sh_ok(other, "cat /proc/net/snmp /proc/net/snmp6")?;
        Ok([echoes_received(&gw)?, echoes_received(&guest)?])
    }

    fn flows(&self) -> Result<Vec<Flow>> {
        let text = host::stdout(self.sb.host_cmd("ovs-ofctl").args([
            "-O",
            "OpenFlow14",
            "--no-names",
            "dump-flows",
            BRIDGE,
        ]))?;
        Ok(text.lines().filter_map(Flow::parse).collect())
    }

    /// The flows vmguard tagged with `g`'s interface key, as rules (without counters).
    fn rules_of(&self, g: &Guest) -> Result<BTreeSet<String>> {
        Ok(self.counted_rules_of(g)?.into_keys().collect())
    }

    /// `g`'s flows with their packet counters.
    fn counted_rules_of(&self, g: &Guest) -> Result<BTreeMap<String, u64>> {
        let key = g.key();
        Ok(self
            .flows()?
            .into_iter()
            .filter(|f| f.owner().is_some_and(|(k, _)| k == key))
            .map(|f| (f.rule, f.n_packets))
            .collect())
    }

    /// Packets dropped so far by `g`'s flows for `reason` (from the cookies on the switch).
    fn drops(&self, g: &Guest, reason: Reason) -> Result<u64> {
        let key = g.key();
        Ok(self
            .flows()?
            .iter()
            .filter(|f| f.owner() == Some((key, reason)))
            .map(|f| f.n_packets)
            .sum())
    }

    /// Waits until `g`'s drop counter for `reason` exceeds `before` (OVS adds datapath stats
    /// to its flows in the background, up to a second or so late) and returns it.
    fn drops_above(&self, g: &Guest, reason: Reason, before: u64) -> Result<u64> {
        let mut now = before;
        host::wait_until(
            &format!(
                "{}'s {} drop counter to exceed {before}",
                g.name,
                reason.name()
            ),
            Duration::from_secs(10),
            || {
                now = self.drops(g, reason).unwrap_or(before);
                now > before
            },
        )?;
        Ok(now)
    }

    /// The OVS interface libvirt attached for `g`, by `external_ids:attached-mac`.
    fn port_of(&self, g: &Guest) -> Result<Option<(String, u32)>> {
        let out = host::stdout(self.sb.host_cmd("ovs-vsctl").args([
            "--bare",
            "--columns=name,ofport",
            "find",
            "Interface",
            &format!("external_ids:attached-mac=\"{}\"", g.mac),
        ]))?;
        let words: Vec<&str> = out.split_whitespace().collect();
        Ok(match words.as_slice() {
            [] => None,
            [name, ofport] => Some((name.to_string(), ofport.parse()?)),
            _ => bail!("unexpected ovs-vsctl find output: {out}"),
        })
    }

    /// The qemu hook calls libvirtd has made so far, as "DOMAIN OP SUBOP" (from its log).
    fn hook_calls(&self) -> Vec<String> {
        let log = fs::read_to_string(self.sb.libvirtd_log()).unwrap_or_default();
        log.lines()
            .filter_map(|l| l.split_once("Calling hook ")?.1.split_once(' '))
            .filter_map(|(_, args)| {
                let field = |k: &str| args.split(' ').find_map(|w| w.strip_prefix(k));
                Some(format!(
                    "{} {} {}",
                    field("id=")?,
                    field("op=")?,
                    field("subop=")?
                ))
            })
            .collect()
    }

    /// Stops libvirtd by pid and starts it again; waits until its `reconnect` hooks for A and
    /// B have run (libvirtd answers before its reconnect threads are done) and checks that
    /// both guests still run.
    fn restart_libvirtd(&mut self) -> Result<()> {
        let since = self.hook_calls().len();
        self.sb.stop_libvirtd()?;
        self.sb.start_libvirt()?;
        host::wait_until("the reconnect hooks", Duration::from_secs(30), || {
            let calls = self.hook_calls();
            let new = calls.get(since..).unwrap_or_default();
            [&A, &B]
                .iter()
                .all(|g| new.contains(&format!("{} reconnect begin", g.name)))
                && !self.sb.is_running("vmguard")
        })?;
        for g in [&A, &B] {
            let state = self.sb.virsh(&["domstate", g.name])?;
            ensure!(
                state.trim() == "running",
                "{} is {} after the libvirtd restart",
                g.name,
                state.trim()
            );
        }
        Ok(())
    }

    /// `vmguard status --json`'s row for `g`.
    fn status_row(&self, g: &Guest) -> Result<Value> {
        let out = self.vmguard_ok(&["status", "--json"])?;
        let json: Value = serde_json::from_str(out.lines().next().unwrap_or_default())
            .with_context(|| format!("status --json printed no JSON:\n{out}"))?;
        let rows = json.as_array().or_else(|| json["interfaces"].as_array());
        rows.and_then(|r| r.iter().find(|row| row["mac"] == g.mac).cloned())
            .with_context(|| format!("vmguard status has no row for {}:\n{out}", g.name))
    }

    /// `vmguard verify`: its exit code and report.
    fn verify(&self) -> Result<(i32, String)> {
        let out = self.vmguard(&["verify"])?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.code().unwrap_or(-1), text))
    }

    fn verify_exits(&self, want: i32, when: &str) -> Result<()> {
        let (code, text) = self.verify()?;
        ensure!(
            code == want,
            "vmguard verify {when}: exit {code}, expected {want}:\n{text}"
        );
        Ok(())
    }

    /// What to read when something failed: libvirtd's and OVS's logs, the guests' consoles.
    fn diagnostics(&self) -> String {
        let mut d = format!(
            "\n--- libvirtd log (last 40 lines, {}):\n{}\n",
            self.sb.libvirtd_log().display(),
            host::tail(&self.sb.libvirtd_log(), 40)
        );
        let vswitchd = self.sb.dir.join("ovs/ovs-vswitchd.log");
        d += &format!(
            "--- ovs-vswitchd log (last 15 lines):\n{}\n",
            host::tail(&vswitchd, 15)
        );
        let dnsmasq = self.sb.dir.join("dnsmasq.log");
        if dnsmasq.exists() {
            d += &format!(
                "--- dnsmasq log (last 15 lines):\n{}\n",
                host::tail(&dnsmasq, 15)
            );
        }
        for (name, c) in &self.consoles {
            d += &format!("--- console of {name} (last 40 lines):\n{}\n", c.tail(40));
        }
        if let Ok(flows) = self.flows() {
            let mine = flows
                .iter()
                .filter(|f| f.owner().is_some_and(|(k, _)| k != IfaceKey::BASE));
            d += &format!("--- per-VM flows on {BRIDGE}: {}\n", mine.count());
        }
        d
    }
}

/// The difference between two sets of flows: rules only in one of them, and rules whose packet
/// counter went down (the flow was replaced). Empty when `after` keeps every flow of `before`.
fn diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let mut out = String::new();
    for (rule, n) in before {
        match after.get(rule) {
            None => out += &format!("  - {rule}\n"),
            Some(m) if m < n => out += &format!("  reset n_packets {n} -> {m}: {rule}\n"),
            Some(_) => {}
        }
    }
    for rule in after.keys().filter(|r| !before.contains_key(*r)) {
        out += &format!("  + {rule}\n");
    }
    out
}

/// B's second NIC, hot-plugged later, on a second subnet of the gateway.
const B2: Guest = Guest {
    mac: "52:54:00:77:01:0b",
    ip4: "10.77.1.11",
    ..B
};
const GW2: &str = "10.77.1.1";

/// Step 1: A and B start through the hook and reach the gateway and each other (IPv4, IPv6).
fn start_guests(lab: &mut Lab) -> Result<()> {
    for g in [&A, &B] {
        lab.define(g)?;
        lab.start(g)?;
    }
    for g in [&A, &B] {
        let rules = lab.rules_of(g)?;
        ensure!(
            !rules.is_empty(),
            "{} runs but has no vmguard flows on {BRIDGE}",
            g.name
        );
        let (port, ofport) = lab
            .port_of(g)?
            .with_context(|| format!("{} has no OVS port", g.name))?;
        lab.step(&format!(
            "{} started: port {port} (ofport {ofport}), {} flows",
            g.name,
            rules.len()
        ));
    }
    lab.wait_ready(&A)?;
    lab.wait_ready(&B)?;
    let gw_before = lab.echo_counters(&B)?[0];
    for (g, other) in [(&A, &B), (&B, &A)] {
        for dst in [GW4, other.ip4, GW6, other.ip6] {
            lab.reaches(g, dst)?;
        }
    }
    let gw_after = lab.echo_counters(&B)?[0];
    ensure!(
        gw_after.0 > gw_before.0 && gw_after.1 > gw_before.1,
        "the gateway's echo counters missed the legitimate pings: {gw_before:?} -> {gw_after:?}"
    );
    lab.step("A and B reach the gateway and each other (IPv4, IPv6) with their own addresses");
    lab.verify_exits(0, "with A and B running")?;
    lab.step("vmguard verify: in sync, probes pass");
    Ok(())
}

/// A spoofing attempt by A: `setup` and `undo` are guest commands around the pings.
struct Spoof<'a> {
    what: &'a str,
    setup: String,
    /// The address the pings are sent from (None: the guest's own).
    source: Option<&'a str>,
    targets: &'a [&'a str],
    /// The drop counter that must grow.
    reason: Reason,
    undo: String,
}

fn mac_spoof(what: &str) -> Spoof<'_> {
    Spoof {
        what,
        setup: format!("ip link set eth0 address {FOREIGN_MAC}"),
        source: None,
        targets: &[GW4, B.ip4, GW6, B.ip6],
        reason: Reason::MacSpoof,
        undo: format!("ip link set eth0 address {}", A.mac),
    }
}

/// Runs `spoof` in A, pinging the gateway and B: nothing may arrive (their echo counters stay
/// put) and A's drop counter for the spoof's reason must grow.
fn spoof_reaches_nobody(lab: &mut Lab, spoof: Spoof) -> Result<()> {
    let Spoof { what, reason, .. } = spoof;
    let before = lab.echo_counters(&B)?;
    let dropped = lab.drops(&A, reason)?;
    lab.sh_ok(&A, &spoof.setup)?;
    lab.reaches_none(&A, spoof.targets, spoof.source)?;
    let after = lab.echo_counters(&B)?;
    let dropped_now = lab.drops_above(&A, reason, dropped);
    lab.sh_ok(&A, &spoof.undo)?;
    ensure!(
        before == after,
        "{what}: echo requests arrived anyway (gateway, {}: (v4, v6) before {before:?}, \
         after {after:?})",
        B.name
    );
    let dropped_now = dropped_now.with_context(|| format!("{what}: nothing dropped"))?;
    lab.step(&format!(
        "{what}: reached nobody; {} drops {dropped} -> {dropped_now}",
        reason.name()
    ));
    Ok(())
}

/// Step 2: A spoofs its IPv4 and IPv6 source, its MAC, and B's address in ARP: it reaches nobody,
/// and `vmguard status` counts the drops; back on its own addresses it reaches everyone.
fn spoofing(lab: &mut Lab) -> Result<()> {
    // Static ARP entries, so A sends the spoofed IPv4 packets themselves rather than ARP
    // requests (IPv6 uses the neighbour cache the pings filled: busybox sets no static ND
    // entries); no DAD, so an added address works at once. The foreign addresses are added
    // beside A's own (deleting the last address would flush the ARP entries).
    lab.sh_ok(
        &A,
        &format!(
            "arp -s {GW4} {GW_MAC} && arp -s {} {} && \
             echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad",
            B.ip4, B.mac
        ),
    )?;
    spoof_reaches_nobody(
        lab,
        Spoof {
            what: "IPv4 source spoof",
            setup: format!("ip addr add {FOREIGN4}/32 dev eth0"),
            source: Some(FOREIGN4),
            targets: &[GW4, B.ip4],
            reason: Reason::IpSpoof,
            undo: format!("ip addr del {FOREIGN4}/32 dev eth0"),
        },
    )?;
    spoof_reaches_nobody(
        lab,
        Spoof {
            what: "IPv6 source spoof",
            setup: format!("ip -6 addr add {FOREIGN6}/128 dev eth0"),
            source: Some(FOREIGN6),
            targets: &[GW6, B.ip6],
            reason: Reason::IpSpoof,
            undo: format!("ip -6 addr del {FOREIGN6}/128 dev eth0"),
        },
    )?;
    spoof_reaches_nobody(lab, mac_spoof("MAC spoof"))?;

    // ARP cache poisoning: A claims B's IPv4 address towards the gateway.
    let arp_drops = lab.drops(&A, Reason::ArpSpoof)?;
    lab.sh_ok(&A, &format!("ip addr add {}/32 dev eth0", B.ip4))?;
    lab.sh(&A, &format!("arping -c 2 -w 3 -s {} -I eth0 {GW4}", B.ip4))?;
    lab.sh(&A, &format!("arping -U -c 2 -s {0} -I eth0 {0}", B.ip4))?;
    lab.sh_ok(&A, &format!("ip addr del {}/32 dev eth0", B.ip4))?;
    let neigh = host::stdout(lab.sb.peer_cmd("ip").args(["neigh", "show", B.ip4]))?;
    ensure!(
        !neigh.contains(A.mac),
        "ARP spoof: the gateway now sends {}'s traffic to {}: {neigh}",
        B.ip4,
        A.mac
    );
    lab.drops_above(&A, Reason::ArpSpoof, arp_drops)
        .context("ARP spoof: nothing dropped")?;
    lab.step(&format!(
        "ARP spoof of {}: the gateway's cache stays right ({})",
        B.ip4,
        neigh.trim()
    ));

    let row = lab.status_row(&A)?;
    for reason in [Reason::IpSpoof, Reason::MacSpoof, Reason::ArpSpoof] {
        let n = row["dropped"][reason.name()].as_u64().unwrap_or(0);
        ensure!(
            n > 0,
            "vmguard status shows no {} drops for {}: {row}",
            reason.name(),
            A.name
        );
    }
    lab.step(&format!(
        "vmguard status for {}: dropped {}",
        A.name, row["dropped"]
    ));
    for dst in [GW4, B.ip4, GW6, B.ip6] {
        lab.reaches(&A, dst)?;
    }
    lab.step("A, back on its own addresses, reaches the gateway and B again");
    Ok(())
}

/// Step 3: `virsh attach-device --live` a second NIC to B: no hook runs, so its port must stay
/// closed; once B's metadata lists it (`virsh metadata --live`), `vmguard sync --libvirt`
/// guards it and B reaches the gateway through it. A second sync changes nothing.
fn hotplug(lab: &mut Lab) -> Result<()> {
    host::stdout(
        lab.sb
            .peer_cmd("ip")
            .args(["addr", "add", &format!("{GW2}/24"), "dev", "eth0"]),
    )?;
    let nic = lab.sb.dir.join("vg-b-nic2.xml");
    fs::write(
        &nic,
        format!(
            "<interface type='bridge'>\n  <source bridge='{BRIDGE}'/>\n  \
             <virtualport type='openvswitch'/>\n  <mac address='{}'/>\n  \
             <model type='virtio'/>\n  <rom enabled='no'/>\n</interface>\n",
            B2.mac
        ),
    )?;
    lab.sb
        .virsh(&["attach-device", B.name, &nic.to_string_lossy(), "--live"])?;
    let (port, ofport) = lab
        .port_of(&B2)?
        .context("the hot-plugged NIC has no OVS port")?;
    lab.sh_ok(
        &B,
        &format!(
            "i=0; while [ ! -e /sys/class/net/eth1 ] && [ $i -lt 100 ]; do sleep 0.2; \
             i=$((i+1)); done; ip link set eth1 up && ip addr add {}/24 dev eth1",
            B2.ip4
        ),
    )?;
    lab.reaches_none(&B, &[GW2], None)
        .context("a hot-plugged NIC must stay closed until vmguard guards it")?;
    ensure!(
        lab.rules_of(&B2)?.is_empty() && !lab.flows()?.iter().any(|f| f.matches_in_port(ofport)),
        "flows for the hot-plugged port {port} appeared without sync"
    );
    lab.step(&format!(
        "NIC hot-plugged into B: port {port} (ofport {ofport}) closed"
    ));

    let metadata = format!(
        "<guard><interface mac=\"{}\"><ip address=\"{}\"/><ip address=\"{}\"/></interface>\
         <interface mac=\"{}\"><ip address=\"{}\"/></interface></guard>",
        B.mac, B.ip4, B.ip6, B2.mac, B2.ip4
    );
    lab.sb.virsh(&[
        "metadata",
        B.name,
        "--uri",
        "urn:vmguard:1",
        "--key",
        "vmguard",
        "--set",
        &metadata,
        "--live",
        "--config",
    ])?;
    let out = lab.vmguard_ok(&["sync", "--libvirt"])?;
    let b2_rules = lab.rules_of(&B2)?.len();
    ensure!(
        b2_rules > 0,
        "sync installed no flows for the hot-plugged NIC:\n{out}"
    );
    lab.reaches(&B, GW2)?;
    lab.reaches(&B, GW4)?;
    lab.step(&format!(
        "vmguard sync --libvirt: {}; B reaches {GW2} through the new NIC ({b2_rules} flows)",
        one_line(&out)
    ));
    let again = lab.vmguard_ok(&["sync", "--libvirt"])?;
    lab.verify_exits(0, "after sync")?;
    lab.step(&format!("sync again: {}", one_line(&again)));
    Ok(())
}

/// Step 4: A guest with broken metadata, and one that claims A's IPv4 address, do not start; `virsh
/// start` shows vmguard's one-line reason; their stopped/release hooks leave A's flows alone.
fn refused_starts(lab: &mut Lab) -> Result<()> {
    let a_rules = lab.rules_of(&A)?;
    for (g, expect) in [(&BROKEN, "10.77.0.300"), (&THIEF, A.ip4)] {
        lab.define(g)?;
        let out = host::output(
            lab.sb.virsh_cmd().args(["start", g.name]),
            Duration::from_secs(60),
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success(),
            "{} started despite its metadata",
            g.name
        );
        // virsh: "error: Failed to start domain …" and "error: Hook script execution failed: …
        // unexpected exit status 1: <the hook's stderr>": vmguard's reason must be one line.
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let reason = match lines.as_slice() {
            [_, hook] => hook.split_once(": vmguard: ").map(|(_, r)| r),
            _ => None,
        }
        .with_context(|| {
            format!(
                "virsh start {}: expected two error lines, the last ending in vmguard's \
                 one-line reason:\n{stderr}",
                g.name
            )
        })?;
        ensure!(
            reason.contains(expect),
            "virsh start {}: vmguard's reason does not name {expect}:\n{stderr}",
            g.name
        );
        let state = lab.sb.virsh(&["domstate", g.name])?;
        ensure!(state.trim() == "shut off", "{} is {state}", g.name);
        ensure!(lab.rules_of(g)?.is_empty(), "{} left flows behind", g.name);
        ensure!(
            lab.port_of(g)?.is_none(),
            "{} left its OVS port behind",
            g.name
        );
        let calls: Vec<String> = lab
            .hook_calls()
            .into_iter()
            .filter(|c| c.starts_with(&format!("{} ", g.name)))
            .collect();
        let expected = ["prepare begin", "start begin", "stopped end", "release end"]
            .map(|op| format!("{} {op}", g.name));
        ensure!(
            calls == expected,
            "{}: hook calls {calls:?}, expected {expected:?}",
            g.name
        );
        lab.step(&format!("{} refused: {}", g.name, reason.trim()));
    }
    ensure!(
        lab.rules_of(&A)? == a_rules,
        "the refused guests' stopped/release hooks changed {}'s flows",
        A.name
    );
    lab.reaches(&A, GW4)?;
    lab.step("A's flows untouched by the refused starts");
    Ok(())
}

/// Step 5: libvirtd restarts (SIGTERM by pid, started again) while the guests run; B's flows, lost
/// meanwhile, come back with `reconnect`; A's flows are left as they were (same rules, counters
/// not reset); a spoof still fails.
fn libvirtd_restart(lab: &mut Lab) -> Result<()> {
    host::stdout(lab.sb.host_cmd("ovs-ofctl").args([
        "-O",
        "OpenFlow14",
        "del-flows",
        BRIDGE,
        &Cookie::owner_selector(B.key()),
    ]))?;
    lab.reaches_none(&B, &[GW4], None)
        .context("B without flows must be closed")?;
    lab.verify_exits(1, "with B's flows deleted")?;
    lab.step("B's flows deleted: B is cut off, verify reports drift");
    let a_before = lab.counted_rules_of(&A)?;
    lab.restart_libvirtd()?;
    ensure!(
        !lab.rules_of(&B)?.is_empty(),
        "reconnect did not re-apply B's flows"
    );
    let changed = diff(&a_before, &lab.counted_rules_of(&A)?);
    ensure!(
        changed.is_empty(),
        "reconnect changed A's flows:\n{changed}"
    );
    lab.step("libvirtd restarted: guests running, B's flows back, A's untouched");
    lab.reaches(&B, GW4)?;
    lab.reaches(&A, B.ip4)?;
    spoof_reaches_nobody(lab, mac_spoof("MAC spoof after the restart"))?;
    lab.verify_exits(0, "after reconnect")
}

/// Step 6: ovs-vswitchd restarts (every flow lost) and libvirtd restarts meanwhile, so `reconnect`
/// finds no switch: it must not fail (libvirt would kill the guests). The bridge stays closed
/// (fail_mode=secure) until `vmguard sync --libvirt`.
fn ovs_restart(lab: &mut Lab) -> Result<()> {
    lab.sb.stop_vswitchd()?;
    lab.restart_libvirtd()?;
    lab.step("ovs-vswitchd stopped, libvirtd restarted: reconnect failed softly, guests run");
    lab.sb.start_vswitchd()?;
    host::wait_until("ovs-vswitchd's bridge", Duration::from_secs(30), || {
        host::stdout(
            lab.sb
                .host_cmd("ovs-ofctl")
                .args(["-O", "OpenFlow14", "show", BRIDGE]),
        )
        .is_ok()
    })?;
    lab.reaches_none(&B, &[GW4], None)
        .context("after an ovs-vswitchd restart the bridge must stay closed until sync")?;
    lab.verify_exits(1, "after an ovs-vswitchd restart")?;
    lab.step("ovs-vswitchd restarted: bridge closed, verify reports drift");
    let out = lab.vmguard_ok(&["sync", "--libvirt"])?;
    lab.reaches(&B, GW4)?;
    lab.reaches(&A, B.ip4)?;
    lab.reaches(&B, GW2)?;
    lab.verify_exits(0, "after sync")?;
    lab.step(&format!(
        "vmguard sync --libvirt: {}; the guests reach again",
        one_line(&out)
    ));
    Ok(())
}

/// Step 7: `virsh destroy A`: no flow with A's cookie or its old ofport is left; B keeps working.
fn destroy(lab: &mut Lab) -> Result<()> {
    let (_, ofport) = lab.port_of(&A)?.context("A has no OVS port")?;
    lab.sb.virsh(&["destroy", A.name])?;
    ensure!(
        lab.rules_of(&A)?.is_empty(),
        "A's flows remain after virsh destroy"
    );
    let left: Vec<String> = lab
        .flows()?
        .into_iter()
        .filter(|f| f.matches_in_port(ofport))
        .map(|f| f.rule)
        .collect();
    ensure!(
        left.is_empty(),
        "flows on A's old ofport {ofport} remain:\n{}",
        left.join("\n")
    );
    lab.step(&format!(
        "virsh destroy {}: no flow with its cookie or in_port={ofport} left",
        A.name
    ));
    lab.reaches(&B, GW4)
}

/// Step 8: `virsh save` / `virsh restore` of B (what libvirt-guests does at host shutdown): its
/// flows go with its QEMU and come back on its new ports; `restore begin` reads the hook's
/// stdout as domain XML, so vmguard must print nothing there.
fn save_restore(lab: &mut Lab) -> Result<()> {
    let b_flows =
        |lab: &Lab| -> Result<usize> { Ok(lab.rules_of(&B)?.len() + lab.rules_of(&B2)?.len()) };
    let before = b_flows(lab)?;
    let image = lab.sb.dir.join("vg-b.save");
    lab.sb.virsh(&["save", B.name, &image.to_string_lossy()])?;
    let saved = b_flows(lab)?;
    ensure!(saved == 0, "{saved} flows of B remain after virsh save");
    lab.sb.virsh(&["restore", &image.to_string_lossy()])?;
    ensure!(
        lab.hook_calls()
            .contains(&format!("{} restore begin", B.name)),
        "libvirtd made no `restore begin` hook call"
    );
    let socket = lab.console_socket(&B);
    lab.consoles
        .get_mut(B.name)
        .context("B has no console")?
        .reconnect(&socket, Duration::from_secs(20))?;
    let restored = b_flows(lab)?;
    ensure!(
        restored == before,
        "B had {before} flows before virsh save, {restored} after restore"
    );
    lab.reaches(&B, GW4)?;
    lab.reaches(&B, GW2)?;
    lab.verify_exits(0, "after virsh restore")?;
    lab.step(&format!(
        "virsh save {0}: flows removed; virsh restore: {restored} flows back, {0} reaches the \
         gateway through both NICs",
        B.name
    ));
    lab.sb.virsh(&["destroy", B.name])?;
    let per_vm = lab
        .flows()?
        .into_iter()
        .filter(|f| f.owner().is_some_and(|(k, _)| k != IfaceKey::BASE))
        .count();
    ensure!(
        per_vm == 0,
        "{per_vm} per-VM flows remain with no guest running"
    );
    lab.step("all guests destroyed: only the base flows remain");
    Ok(())
}

fn one_line(text: &str) -> String {
    text.trim().replace('\n', " | ")
}

#[test]
#[ignore = "needs libvirt+qemu; run with --include-ignored (CI does)"]
fn guests_under_libvirt_are_guarded() {
    let mut lab = match Lab::new() {
        Ok(lab) => lab,
        Err(e) => panic!("libvirt e2e: {e:#}"),
    };
    let story = [
        start_guests,
        spoofing,
        hotplug,
        refused_starts,
        libvirtd_restart,
        ovs_restart,
        destroy,
        save_restore,
    ];
    let run = |lab: &mut Lab| -> Result<()> {
        lab.up()?;
        story.iter().try_for_each(|step| step(lab))
    };
    if let Err(e) = run(&mut lab) {
        panic!("libvirt e2e failed: {e:#}\n{}", lab.diagnostics());
    }
    lab.step("done");
}

// ---------------------------------------------------------------------------------------------
// Provisioning: `vmguard create` makes the guests, `vmguard dhcp-hosts` feeds dnsmasq, and the
// guests get exactly their reserved addresses over DHCP and pass traffic while guarded;
// `vmguard delete` stops, undefines and frees them.

/// The user whose VMs `vmguard create` makes.
const STUDENT: &str = "stud";
/// What `create` hands out: the gateway's subnet, the gateway reserved.
const POOL4: &str = "10.77.0.0/24";

/// [`Guest`]'s fields are `&'static str`; the created guests' few strings live to the end.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A dnsmasq this test started in the gateway's namespace; stopped by pid on drop.
struct Dnsmasq {
    child: std::process::Child,
    log: PathBuf,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        host::signal(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

impl Lab {
    /// `vmguard ARGS`, which must exit 0; returns its stdout alone (stderr only for errors).
    fn vmguard_stdout(&self, args: &[&str]) -> Result<String> {
        let out = self.vmguard(args)?;
        ensure!(
            out.status.success(),
            "vmguard {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The provisioning template: the test guests' domain XML (`e2e/domain.xml`) without its
    /// interface, MAC and metadata, its kernel command line asking the init for DHCP, and
    /// `@NAME@` (filled in by `vmguard create`) naming the console socket and log.
    fn student_template(&self) -> Result<PathBuf> {
        let mut kept = Vec::new();
        let mut skipping: Option<&str> = None;
        for line in include_str!("e2e/domain.xml").lines() {
            if let Some(end) = skipping {
                if line.trim() == end {
                    skipping = None;
                }
                continue;
            }
            match line.trim() {
                "<metadata>" => skipping = Some("</metadata>"),
                "@INTERFACE@" => skipping = Some("</interface>"),
                "<uuid>@UUID@</uuid>" => {}
                _ => kept.push(line),
            }
        }
        let dir = self.sb.dir.to_string_lossy();
        let xml = kept
            .join("\n")
            .replace("gip=@CIDR@ gip6=@CIDR6@", "dhcp")
            .replace("@KERNEL@", &self.kernel.to_string_lossy())
            .replace("@INITRD@", &self.initrd.to_string_lossy())
            .replace("@CONSOLE_SOCKET@", &format!("{dir}/@NAME@.sock"))
            .replace("@CONSOLE_LOG@", &format!("{dir}/@NAME@.console.log"));
        ensure!(
            xml.contains(" dhcp</cmdline>")
                && !xml.contains("<interface")
                && !xml.contains("<metadata")
                && !xml
                    .replace("@KEYS@", "")
                    .replace("@NAME@", "")
                    .contains('@'),
            "e2e/domain.xml changed shape; the template derived from it is wrong:\n{xml}"
        );
        let path = self.sb.dir.join("student.xml");
        fs::write(&path, xml)?;
        Ok(path)
    }

    /// Adds a `[pool]` to the sandbox's vmguard config.
    fn add_pool(&self) -> Result<()> {
        let path = "/etc/vmguard/config.toml";
        let old = fs::read_to_string(self.sb.inside(path))?;
        self.sb.write(
            path,
            &format!("{old}\n[pool]\nipv4 = \"{POOL4}\"\nreserved = [\"{GW4}\"]\n"),
        )
    }

    /// dnsmasq in the gateway's namespace, handing out the reserved addresses of `hosts` only.
    fn start_dnsmasq(&self, hosts: &std::path::Path) -> Result<Dnsmasq> {
        // The kernel leaves a locally sent UDP packet's checksum to the NIC; the userspace
        // datapath forwards the veth's frames as they are, so udhcpc (which checks UDP
        // checksums on its raw socket) would ignore every OFFER. Compute them in software.
        host::stdout(
            self.sb
                .peer_cmd("ethtool")
                .args(["-K", "eth0", "tx", "off"]),
        )
        .context("the provisioning test needs ethtool and dnsmasq (dnsmasq-base)")?;
        let log = self.sb.dir.join("dnsmasq.log");
        let net = POOL4.split('/').next().unwrap_or_default();
        let arg = |k: &str, v: &std::path::Path| format!("--{k}={}", v.display());
        let child = self
            .sb
            .peer_cmd("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=0",
                "--interface=eth0",
                "--bind-interfaces",
                "--user=root",
                "--group=root",
                &format!("--dhcp-range={net},static,255.255.255.0"),
                &arg("dhcp-hostsfile", hosts),
                &arg("dhcp-leasefile", &self.sb.dir.join("dnsmasq.leases")),
                &arg("pid-file", &self.sb.dir.join("dnsmasq.pid")),
                "--log-dhcp",
                &arg("log-facility", &log),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(self.sb.dir.join("dnsmasq.out"))?)
            .spawn()
            .context("cannot start dnsmasq")?;
        let mut d = Dnsmasq { child, log };
        host::wait_until("dnsmasq's DHCP service", Duration::from_secs(20), || {
            fs::read_to_string(&d.log).is_ok_and(|l| l.contains("static leases only"))
                || matches!(d.child.try_wait(), Ok(Some(_)))
        })?;
        ensure!(
            d.child.try_wait()?.is_none(),
            "dnsmasq exited: {}",
            fs::read_to_string(self.sb.dir.join("dnsmasq.out")).unwrap_or_default()
        );
        Ok(d)
    }

    /// `vmguard addresses --json`: (domain, MAC, IPv4 addresses) of every interface.
    fn addresses(&self) -> Result<Vec<(String, String, Vec<String>)>> {
        let out = self.vmguard_stdout(&["addresses", "--json"])?;
        let json: Value = serde_json::from_str(&out)
            .with_context(|| format!("addresses --json printed no JSON:\n{out}"))?;
        let rows = json.as_array().context("addresses --json: not an array")?;
        rows.iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().map(str::to_string);
                let v4 = r["ipv4"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                });
                match (s("domain"), s("mac"), v4) {
                    (Some(d), Some(m), Some(v4)) => Ok((d, m, v4)),
                    _ => bail!("addresses --json: odd row {r}"),
                }
            })
            .collect()
    }
}

/// The provisioning story: see the section comment above.
fn provisioned_guests(lab: &mut Lab) -> Result<()> {
    lab.add_pool()?;
    let template = lab.student_template()?;
    let template = template.to_string_lossy().into_owned();
    let out = lab.vmguard_ok(&["create", STUDENT, "--count", "2", "--template", &template])?;
    lab.step(&format!("vmguard create: {}", one_line(&out)));

    // What vmguard says it handed out: the lowest free addresses, the gateway skipped.
    let rows = lab.addresses()?;
    let want = [("stud-1", "10.77.0.2"), ("stud-2", "10.77.0.3")];
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|(d, _, v4)| (d.as_str(), v4.first().map_or("", String::as_str)))
        .collect();
    ensure!(
        got == want && rows.iter().all(|(_, _, v4)| v4.len() == 1),
        "vmguard addresses: expected {want:?}, got {rows:?}"
    );
    let guests: Vec<Guest> = rows
        .iter()
        .map(|(d, mac, v4)| -> Result<Guest> {
            let uuid = lab.sb.virsh(&["domuuid", d])?;
            Ok(Guest {
                name: leak(d.clone()),
                uuid: leak(uuid.trim().to_string()),
                mac: leak(mac.clone()),
                ip4: leak(v4[0].clone()),
                ip6: "",
                dev: None,
                via_network: false,
                claims: &[],
                prefixed: true,
            })
        })
        .collect::<Result<_>>()?;

    // The DHCP server gets the same reservations, and runs before the guests boot.
    let hosts = lab.sb.dir.join("dnsmasq.hosts");
    lab.vmguard_ok(&[
        "dhcp-hosts",
        "--format",
        "dnsmasq",
        "--output",
        &hosts.to_string_lossy(),
    ])?;
    let text = fs::read_to_string(&hosts)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let expected: Vec<String> = guests
        .iter()
        .map(|g| format!("{},{},{}", g.mac, g.ip4, g.name))
        .collect();
    ensure!(
        lines == expected,
        "dhcp-hosts wrote {lines:?}, expected {expected:?}"
    );
    let dnsmasq = lab.start_dnsmasq(&hosts)?;
    lab.step(&format!(
        "dnsmasq on the gateway with {} reservations from vmguard dhcp-hosts",
        lines.len()
    ));

    for g in &guests {
        lab.start(g)?;
        ensure!(
            !lab.rules_of(g)?.is_empty(),
            "{} runs but has no vmguard flows",
            g.name
        );
    }
    for g in &guests {
        let console = lab.console(g)?;
        let dhcp = console.wait_for("E2E: DHCP", BOOT_TIMEOUT)?;
        ensure!(
            dhcp == format!("E2E: DHCP ip={}/24", g.ip4),
            "{} was to lease {}: {dhcp}",
            g.name,
            g.ip4
        );
        console.wait_for("E2E: READY", BOOT_TIMEOUT)?;
        let addrs = lab.sh_ok(g, "ip -4 -o addr show dev eth0")?;
        let words: Vec<&str> = addrs.split_whitespace().collect();
        let inet: Vec<&str> = words
            .windows(2)
            .filter(|w| w[0] == "inet")
            .map(|w| w[1])
            .collect();
        ensure!(
            inet == [format!("{}/24", g.ip4)],
            "{}: eth0 has {addrs}, expected {} alone",
            g.name,
            g.ip4
        );
        lab.step(&format!("{}: {dhcp} (reserved for {})", g.name, g.mac));
    }
    let log = fs::read_to_string(&dnsmasq.log)?;
    for g in &guests {
        ensure!(
            log.contains(&format!("DHCPACK(eth0) {} {}", g.ip4, g.mac)),
            "dnsmasq acked no {} to {}:\n{log}",
            g.ip4,
            g.mac
        );
    }

    // Only the reserved clients hold leases, on exactly their reserved addresses.
    let leases = fs::read_to_string(lab.sb.dir.join("dnsmasq.leases"))?;
    let mut held: Vec<(&str, &str)> = leases
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.get(1)?, *f.get(2)?))
        })
        .collect();
    held.sort();
    let reserved: Vec<(&str, &str)> = guests.iter().map(|g| (g.mac, g.ip4)).collect();
    ensure!(
        held == reserved,
        "dnsmasq's leases {held:?}, expected {reserved:?}"
    );
    let (a, b) = (&guests[0], &guests[1]);
    for (g, other) in [(a, b), (b, a)] {
        lab.reaches(g, GW4)?;
        lab.reaches(g, other.ip4)?;
    }
    lab.verify_exits(0, "with the created guests running")?;
    lab.step("the created guests reach the gateway and each other; vmguard verify: in sync");

    let out = lab.vmguard_ok(&["delete", STUDENT, "--yes", "--grace", "1"])?;
    let domains = lab.sb.virsh(&["list", "--all", "--name"])?;
    ensure!(
        domains.split_whitespace().next().is_none(),
        "domains left after vmguard delete: {domains}"
    );
    let calls = lab.hook_calls();
    for g in &guests {
        ensure!(
            calls.contains(&format!("{} release end", g.name)),
            "{} was not stopped through the hook: {calls:?}",
            g.name
        );
        ensure!(lab.rules_of(g)?.is_empty(), "{}'s flows remain", g.name);
    }
    let per_vm = lab
        .flows()?
        .into_iter()
        .filter(|f| f.owner().is_some_and(|(k, _)| k != IfaceKey::BASE))
        .count();
    ensure!(per_vm == 0, "{per_vm} per-VM flows remain after delete");
    ensure!(
        lab.addresses()?.is_empty(),
        "vmguard addresses still lists interfaces after delete"
    );
    lab.step(&format!(
        "vmguard delete: {}; no domain, no per-VM flow left",
        one_line(&out)
    ));

    // The freed addresses are handed out again, lowest first.
    let plan = lab.vmguard_stdout(&[
        "create",
        STUDENT,
        "--count",
        "1",
        "--template",
        &template,
        "--dry-run",
    ])?;
    ensure!(
        plan.contains("<name>stud-1</name>")
            && plan.contains(&format!("address=\"{}\"", a.ip4))
            && plan.contains(&format!("address='{}'", a.mac))
            && !plan.contains(&format!("address=\"{}\"", b.ip4)),
        "create --dry-run after delete does not reuse stud-1's {} / {}:\n{plan}",
        a.ip4,
        a.mac
    );
    lab.step(&format!(
        "create --dry-run after delete: stud-1 with {} / {} again",
        a.ip4, a.mac
    ));
    drop(dnsmasq);
    Ok(())
}

#[test]
#[ignore = "needs libvirt+qemu; run with --include-ignored (CI does)"]
fn created_guests_get_their_reserved_addresses() {
    let mut lab = match Lab::new() {
        Ok(lab) => lab,
        Err(e) => panic!("libvirt e2e: {e:#}"),
    };
    let run = |lab: &mut Lab| -> Result<()> {
        lab.up()?;
        provisioned_guests(lab)
    };
    if let Err(e) = run(&mut lab) {
        panic!(
            "libvirt e2e (provisioning) failed: {e:#}\n{}",
            lab.diagnostics()
        );
    }
    lab.step("done");
}
