//! `vmguard lab`: a throwaway network of namespaces on a private OVS, guarded by vmguard through
//! its libvirt hook, where real clients, servers and attack tools show what it delivers and
//! what it blocks.

mod attacks;
mod capture;
mod fanout;
mod host;
mod legit;
mod lifecycle;
mod setup;
mod table;
mod topology;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use vmguard::config::ArpMode;
use vmguard::flow::FlowKey;
use vmguard::frames;
use vmguard::model::MacAddr;
use vmguard::pipeline::{Cookie, IfaceKey, Reason};

use capture::{Captures, Direction, Frame};
use host::Host;
use topology::{Topology, Vm, BRIDGE, GATEWAY_MAC, GATEWAY_V4, GATEWAY_V6, GUEST_IF};

/// Options of `vmguard lab run`.
pub struct LabOptions {
    pub vms: usize,
    pub arp_mode: ArpMode,
    pub keep: bool,
}

/// Programs the lab runs, with the Debian package of each (`scripts/deps/lab.sh` installs them).
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("sysctl", "procps"),
    ("ovsdb-tool", "openvswitch-switch"),
    ("ovsdb-server", "openvswitch-switch"),
    ("ovs-vswitchd", "openvswitch-switch"),
    ("ovs-vsctl", "openvswitch-switch"),
    ("ovs-ofctl", "openvswitch-switch"),
    ("ovs-appctl", "openvswitch-common"),
    ("dnsmasq", "dnsmasq-base"),
    ("busybox", "busybox"),
    ("dhclient", "isc-dhcp-client"),
    ("ethtool", "ethtool"),
    ("tcpdump", "tcpdump"),
    ("tcpreplay", "tcpreplay"),
    ("ping", "iputils-ping"),
    ("arping", "arping"),
    ("arpspoof", "dsniff"),
    ("atk6-fake_router26", "thc-ipv6"),
];

/// When this process started its lab work, for the progress lines' clock.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// A progress line on stderr, stamped with the seconds since the run started.
pub fn progress(line: &str) {
    let t = EPOCH.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("lab [{t:5.1}s]: {line}");
}

/// Builds the lab, runs every case, prints the table; `Ok(true)` when every case holds.
pub fn run(opts: &LabOptions) -> Result<bool> {
    let topo = Topology::new(opts.vms, opts.arp_mode).map_err(anyhow::Error::msg)?;
    preflight()?;
    host::catch_signals();
    let _lock = exclusive()?;
    let started = Instant::now();
    if host::remove_lab(Path::new(host::RUN_DIR), &progress)? {
        progress("removed a previous lab");
    }
    let exe = std::env::current_exe().context("cannot find the vmguard binary")?;
    let mut lab = setup::build(Host::create()?, topo, exe)?;
    progress(&format!(
        "lab is up after {:.0} s; legitimate traffic",
        started.elapsed().as_secs_f64()
    ));
    let mut rows = legit::run(&mut lab)?;
    progress("attacks from the attacker VM");
    rows.extend(attacks::run(&mut lab)?);
    progress("ARP and NS fan-out, with vmguard and on a plain NORMAL bridge");
    rows.extend(fanout::run(&mut lab)?);
    rows.extend(lifecycle::run(&mut lab)?);
    lab.caps.stop(&mut lab.host);
    println!(
        "vmguard lab: {} VMs ({} attacks), arp_mode={}, bridge {BRIDGE} on a private OVS",
        lab.topo.vms.len(),
        lab.topo.attacker().name(),
        lab.topo.arp_mode.as_str()
    );
    print!("{}", table::render(&rows));
    let all_hold = rows.iter().all(|r| r.ok);
    progress(&format!(
        "finished in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    if opts.keep {
        let dir = lab.host.dir().display().to_string();
        let ns = lab.topo.vms[0].netns.clone();
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "vmguard".into());
        lab.host.keep();
        progress(&format!(
            "the lab stays up:\n  enter a VM:      ip netns exec {ns} bash   (all: ip netns list | grep vmguard-lab)\n  \
             its flows:       OVS_RUNDIR={dir} ovs-ofctl -O OpenFlow14 dump-flows {BRIDGE}\n  \
             vmguard itself:  {exe} --config {dir}/config.toml status   (domain XML: {dir}/lab-vm1.xml)\n  \
             logs, captures:  {dir}\n  remove it:       {exe} lab down"
        ));
    }
    Ok(all_hold)
}

/// Removes everything a lab run created.
pub fn down() -> Result<()> {
    require_root()?;
    let _lock = exclusive()?;
    if !host::remove_lab(Path::new(host::RUN_DIR), &progress)? {
        progress("no lab to remove");
    }
    Ok(())
}

/// Held for a whole `lab run` or `lab down`: a second one must not take the running lab for a
/// stale one and remove it. Outside the run directory, which `down` deletes.
const LOCK_FILE: &str = "/run/vmguard-lab.lock";

fn exclusive() -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(LOCK_FILE)
        .with_context(|| format!("cannot open {LOCK_FILE}"))?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let pid = match holder.trim() {
            "" => String::new(),
            p => format!(" (pid {p})"),
        };
        bail!("another `vmguard lab` is running on this host{pid}: wait for it to finish, or stop it (Ctrl-C) first");
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

fn require_root() -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self")
        .context("cannot read /proc/self")?
        .uid()
        != 0
    {
        bail!(
            "the lab needs root (network namespaces, Open vSwitch, raw sockets): run it with sudo"
        );
    }
    Ok(())
}

fn preflight() -> Result<()> {
    require_root()?;
    let names: Vec<&str> = TOOLS.iter().map(|(t, _)| *t).collect();
    let missing = host::missing_programs(&names);
    if !missing.is_empty() {
        let pkgs: BTreeSet<&str> = TOOLS
            .iter()
            .filter(|(t, _)| missing.contains(t))
            .map(|(_, p)| *p)
            .collect();
        bail!(
            "the lab needs {} (Debian packages: {}); install them with `bash scripts/deps/lab.sh` (or scripts/install-deps.sh --lab)",
            missing.join(", "),
            pkgs.into_iter().collect::<Vec<_>>().join(" ")
        );
    }
    Ok(())
}

/// A stretch of the run's wall-clock time, compared with capture timestamps.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    from: SystemTime,
    to: SystemTime,
}

impl Window {
    fn contains(&self, t: SystemTime) -> bool {
        t >= self.from && t <= self.to
    }
}

/// A guest's DHCPv4 lease as its client's script recorded it.
#[derive(Clone, Debug, Default)]
pub struct Lease4 {
    pub ip: Option<Ipv4Addr>,
    pub router: Option<Ipv4Addr>,
    pub server: Option<Ipv4Addr>,
}

/// The running lab and what the cases need to drive and inspect it.
pub struct Lab {
    pub host: Host,
    pub topo: Topology,
    pub caps: Captures,
    config: PathBuf,
    exe: PathBuf,
    /// The DHCPv4 lease each VM got at start-up (by VM index).
    pub leases4: BTreeMap<usize, Lease4>,
    /// The DHCPv6 address each VM got at start-up.
    pub leases6: BTreeMap<usize, Option<Ipv6Addr>>,
    /// The DHCPv6 client of each VM, replaced when an attack makes the victims solicit again.
    pub dhcp6_clients: BTreeMap<usize, setup::Dhcp6Client>,
    /// Counts generated files, so every one is new.
    serial: usize,
    /// When the captures started: the guarded part of the run begins here.
    pub started: SystemTime,
}

/// How long after the last frame of a step the captures are read.
const SETTLE: Duration = Duration::from_millis(200);

impl Lab {
    /// Runs `step`, then waits for its frames to reach every capture; the window covers both.
    pub fn window<T>(&mut self, step: impl FnOnce(&mut Lab) -> Result<T>) -> Result<(T, Window)> {
        let from = SystemTime::now();
        let out = step(self)?;
        self.host.sleep(SETTLE)?;
        Ok((
            out,
            Window {
                from,
                to: SystemTime::now(),
            },
        ))
    }

    /// Frames `ns` received within `w` that match `pred`.
    pub fn received(&self, ns: &str, w: Window, pred: &dyn Fn(&Frame) -> bool) -> Result<usize> {
        self.count(ns, Direction::In, w, pred)
    }

    /// Frames `ns` sent within `w` that match `pred` (attacker and stray port only).
    pub fn sent(&self, ns: &str, w: Window, pred: &dyn Fn(&Frame) -> bool) -> Result<usize> {
        self.count(ns, Direction::Out, w, pred)
    }

    fn count(
        &self,
        ns: &str,
        dir: Direction,
        w: Window,
        pred: &dyn Fn(&Frame) -> bool,
    ) -> Result<usize> {
        Ok(self
            .caps
            .frames(ns, dir)?
            .iter()
            .filter(|f| w.contains(f.time) && pred(f))
            .count())
    }

    /// The VMs (by short name) whose capture shows a frame matching `pred` within `w`.
    pub fn vms_receiving(&self, w: Window, pred: &dyn Fn(&Frame) -> bool) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for vm in &self.topo.vms {
            if self.received(&vm.netns, w, pred)? > 0 {
                names.push(vm.name());
            }
        }
        Ok(names)
    }

    /// [`Host::sh`] in `ns`.
    pub fn sh(&self, ns: &str, line: &str) -> Result<Output> {
        self.host.sh(ns, line)
    }

    /// [`Host::sh_ok`] in `ns`.
    pub fn sh_ok(&self, ns: &str, line: &str) -> Result<String> {
        self.host.sh_ok(ns, line)
    }

    /// `ovs-ofctl -O OpenFlow14 ARGS` on the lab's OVS; its stdout.
    pub fn ofctl(&self, args: &[&str]) -> Result<String> {
        let argv: Vec<&str> = ["ovs-ofctl", "-O", "OpenFlow14"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        host::checked(&argv, self.host.output(ovs_command(&self.host, &argv))?)
    }

    /// Runs the vmguard binary with the lab's config; see [`run_vmguard`].
    pub fn vmguard(&self, args: &[&str], stdin: &str) -> Result<Output> {
        run_vmguard(&self.host, &self.exe, &self.config, args, stdin)
    }

    /// Packets dropped so far by an interface's vmguard flows, per reason.
    pub fn drops(&self, key: IfaceKey) -> Result<BTreeMap<Reason, u64>> {
        // The userspace datapath credits its cached flows' packets to the OpenFlow rules only
        // in revalidation rounds; purging the cached flows credits them at once.
        let purge = ["ovs-appctl", "revalidator/purge"];
        host::checked(&purge, self.host.output(ovs_command(&self.host, &purge))?)?;
        let out = self.ofctl(&["dump-flows", BRIDGE, &Cookie::owner_selector(key)])?;
        let mut by_reason = BTreeMap::new();
        for f in out.lines().filter_map(FlowKey::parse) {
            if let Some(c) = Cookie::decode(f.key.cookie) {
                if c.reason() != Reason::Pass {
                    *by_reason.entry(c.reason()).or_insert(0) += f.n_packets;
                }
            }
        }
        Ok(by_reason)
    }

    /// The cookie key of a VM's interface.
    pub fn key(&self, vm: &Vm) -> Result<IfaceKey> {
        Ok(IfaceKey::derive(&vm.uuid.parse()?, vm.mac))
    }

    /// `ip -j ARGS` in `ns`, parsed.
    pub fn ip_json(&self, ns: &str, args: &[&str]) -> Result<Vec<Value>> {
        let argv: Vec<&str> = ["ip", "-j"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let out = self.host.ok_in(ns, &argv)?;
        if out.trim().is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(&out)
            .with_context(|| format!("parsing `{}` in {ns}", argv.join(" ")))?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The MAC an address really belongs to (a VM's or the gateway's).
    pub fn owner_mac(&self, ip: IpAddr) -> Option<MacAddr> {
        match ip {
            IpAddr::V4(a) if a == GATEWAY_V4 => Some(GATEWAY_MAC),
            IpAddr::V6(a) if a == GATEWAY_V6 || a == gateway_lla() => Some(GATEWAY_MAC),
            IpAddr::V4(a) => self.topo.owner_v4(a).map(|v| v.mac),
            IpAddr::V6(a) => self.topo.owner_v6(a).map(|v| v.mac),
        }
    }

    /// A number not handed out before, for unique file names.
    pub fn new_serial(&mut self) -> usize {
        self.serial += 1;
        self.serial
    }

    /// A new file name in the run directory.
    pub fn new_file(&mut self, stem: &str, ext: &str) -> PathBuf {
        let n = self.new_serial();
        self.host.dir().join(format!("{stem}-{n}.{ext}"))
    }

    /// Sends hand-built frames from `ns` with tcpreplay (`loops` times each, 200 frames/s).
    pub fn inject(&mut self, ns: &str, frames: &[frames::Frame], loops: usize) -> Result<()> {
        let file = self.new_file("frames", "pcap");
        std::fs::write(&file, write_pcap(frames)).context("writing frames to inject")?;
        let path = file.display().to_string();
        self.host.ok_in(
            ns,
            &[
                "tcpreplay",
                "-q",
                "--pps=200",
                &format!("--loop={loops}"),
                "-i",
                GUEST_IF,
                &path,
            ],
        )?;
        Ok(())
    }
}

/// An OVS tool pointed at the lab's own OVS (never the system's).
fn ovs_command(host: &Host, argv: &[&str]) -> Command {
    let mut cmd = host.command(None, argv);
    for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
        cmd.env(var, host.dir());
    }
    cmd
}

/// Runs the vmguard binary as libvirt runs its hook: no environment but HOME, LC_ALL, PATH and
/// PWD, so only the lab's config file points it at the lab's OVS; `stdin` is its input.
fn run_vmguard(
    host: &Host,
    exe: &Path,
    config: &Path,
    args: &[&str],
    stdin: &str,
) -> Result<Output> {
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("PATH", host.path_env())
        .env("HOME", "/root")
        .env("LC_ALL", "C")
        .env("PWD", "/")
        .current_dir("/")
        .arg("--config")
        .arg(config)
        .args(args);
    host.output_fed(cmd, stdin)
}

/// The gateway's link-local address (EUI-64 of its MAC).
pub fn gateway_lla() -> Ipv6Addr {
    GATEWAY_MAC.eui64_link_local()
}

/// A pcap file holding `frames` (for tcpreplay).
fn write_pcap(frames: &[frames::Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend(v.to_le_bytes());
    }
    for f in frames {
        let len = u32::try_from(f.bytes().len()).expect("frame fits a pcap record");
        for v in [0, 0, len, len] {
            out.extend(v.to_le_bytes());
        }
        out.extend(f.bytes());
    }
    out
}

/// A row's outcome: the evidence if nothing went wrong, else the problems.
pub fn verdict(problems: Vec<String>, evidence: String) -> Result<String, String> {
    if problems.is_empty() {
        Ok(evidence)
    } else {
        Err(problems.join("; "))
    }
}

/// `a, b, c` of displayable items.
pub fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders a drop-counter difference: `router_advert +4, ip_spoof +1`.
pub fn drop_delta(before: &BTreeMap<Reason, u64>, after: &BTreeMap<Reason, u64>) -> (u64, String) {
    let mut total = 0;
    let mut parts = Vec::new();
    for (r, n) in after {
        // Saturating: a flow replaced in between starts counting from zero again.
        let d = n.saturating_sub(before.get(r).copied().unwrap_or(0));
        if d > 0 {
            total += d;
            parts.push(format!("{} +{d}", r.name()));
        }
    }
    (total, parts.join(", "))
}

/// Parses the `KEY=VALUE` lines a DHCP client script wrote.
pub fn read_kv(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}
