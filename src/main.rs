//! The `vmguard` command line: reads inputs, calls the engine, prints plans, tables and logs.

mod hook;
mod lab;
mod log;
mod provisioning;
mod report;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use vmguard::compile::{base_flows, interface_flows};
use vmguard::config::{ArpMode, Config, Uplink};
use vmguard::domain::DomainXml;
use vmguard::engine::{Guard, Plan};
use vmguard::model::OfPort;
use vmguard::ovs::Ovs;
use vmguard::pipeline::IfaceKey;

use crate::log::Logger;

/// Guards libvirt/KVM VMs on a shared Open vSwitch bridge from each other: each VM interface
/// may only send from its own MAC and addresses, and ARP/ND broadcasts reach only their owner.
#[derive(Parser)]
#[command(name = "vmguard", version, about, long_about = None)]
struct Cli {
    /// Config file (TOML). Default: $VMGUARD_CONFIG, else /etc/vmguard/config.toml if it exists,
    /// else built-in defaults.
    #[arg(long, global = true, env = "VMGUARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a domain's flows in `ovs-ofctl add-flows` syntax. With every port number given by
    /// --ofport it needs no OVS; otherwise ofports are read from OVSDB.
    Flows {
        /// Domain XML file, or - for stdin.
        #[arg(default_value = "-")]
        xml: String,
        /// Port number of an interface, by <target dev> or MAC (repeatable): vnet0=5.
        /// With --base, the uplinks' numbers: upstream=1. A name that matches none is an error.
        #[arg(long = "ofport", value_name = "DEV=N", value_parser = parse_ofport)]
        ofports: Vec<(String, OfPort)>,
        /// Print the bridge-wide base flows instead of a domain's (XML not read).
        #[arg(long)]
        base: bool,
    },
    /// Prepare the configured bridge: fail_mode=secure, OpenFlow 1.3/1.4, fragment mode
    /// nx-match, vmguard's base flows; removes flows without vmguard's tag. Idempotent.
    Init {
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Install a domain's flows for all its interfaces on the bridge in one OpenFlow bundle,
    /// replacing its previous flows.
    Apply {
        /// Domain XML file, or - for stdin.
        #[arg(default_value = "-")]
        xml: String,
        /// Print the bundle that would be sent and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove a domain's flows (needs only its UUID and MACs; works when the ports are gone).
    Remove {
        /// Domain XML file, or - for stdin.
        #[arg(default_value = "-")]
        xml: String,
        /// Print the bundle that would be sent and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The libvirt qemu hook: DOMAIN OPERATION SUB-OPERATION EXTRA, domain XML on stdin.
    /// (Also runs when the binary is called as /etc/libvirt/hooks/qemu or from qemu.d/.)
    Hook {
        /// The domain's name.
        domain: String,
        /// libvirt's operation: prepare, start, started, stopped, release, reconnect, …
        operation: String,
        /// libvirt's sub-operation: begin, end or -.
        sub_operation: String,
        /// libvirt's extra argument (unused).
        #[arg(default_value = "-")]
        extra: String,
    },
    /// Link vmguard into libvirt's hook directory (idempotent); --uninstall removes the link.
    InstallHook {
        /// Remove the link (only if it points at this vmguard).
        #[arg(long)]
        uninstall: bool,
        /// libvirt's qemu hook directory.
        #[arg(long, default_value = "/etc/libvirt/hooks/qemu.d", value_name = "DIR")]
        hook_dir: PathBuf,
    },
    /// Reconcile the bridge with every running domain: restore bridge settings and base flows,
    /// install what is missing, remove flows of interfaces that are gone, change nothing that
    /// is right. Needs one source: --xml-dir DIR or --libvirt.
    #[command(group = clap::ArgGroup::new("source").required(true).multiple(false))]
    Sync {
        /// Read the running domains' XML from *.xml files in DIR.
        #[arg(long, value_name = "DIR", group = "source")]
        xml_dir: Option<PathBuf>,
        /// Ask libvirt (virsh list / virsh dumpxml on qemu:///system). Never from a hook.
        #[arg(long, group = "source")]
        libvirt: bool,
        /// Print the bundle that would be sent and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Exit 0 when the bridge holds exactly the expected flows and every guarded port passes a
    /// battery of legitimate and attack packets traced through the live bridge; 1 on drift or
    /// a failed probe; 2 on error.
    Verify {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Skip the packet traces (flow and settings comparison only).
        #[arg(long)]
        no_trace: bool,
    },
    /// One row per guarded interface, by domain name (vm9 before vm12) then MAC: domain, port,
    /// addresses, flows installed/expected and packets dropped so far per reason; drift is
    /// listed below the table. Exits 0 unless it cannot read the switch (2): `verify` is the
    /// check that fails on drift.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// A throwaway lab on this host (root): private OVS, namespaces as VMs, a real DHCP server
    /// and router, real attacks; prints what was delivered and what was blocked.
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// Create VMs USER-1…USER-K for each user and define them (virsh, qemu:///system). Each
    /// interface gets a MAC no domain has, the lowest free IPv4 of [pool] ipv4 and its SLAAC
    /// address in [pool] ipv6, written into the domain's vmguard metadata. All or nothing.
    Create {
        /// The users the VMs are for (a-z, 0-9 and '-').
        #[arg(required = true, value_name = "USER")]
        users: Vec<String>,
        /// How many VMs per user.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        count: u16,
        /// Interfaces per VM on the guarded bridge.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
        nics: u8,
        /// Domain XML to start from; @NAME@ and @USER@ in it are replaced. Default: a minimal
        /// built-in one (no disk, network boot).
        #[arg(long, value_name = "XML")]
        template: Option<PathBuf>,
        /// Start the VMs once they are all defined.
        #[arg(long)]
        start: bool,
        /// Print the domain XML that would be defined and define nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop and undefine every VM of the named users, or the named VMs, among those `create`
    /// made; their MACs and addresses become free. Disks are kept.
    Delete {
        /// User names or VM names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Seconds a running guest gets to shut down (ACPI) before it is powered off.
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        grace: u64,
    },
    /// List every interface in the defined domains' vmguard metadata: user, domain, MAC,
    /// addresses.
    Addresses {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write the DHCP server's reservations (MAC → IPv4 and IPv6) for every guarded interface.
    DhcpHosts {
        /// dnsmasq (a dhcp-hostsfile), kea4 or kea6 (a JSON array of Kea reservations).
        #[arg(long)]
        format: vmguard::provision::render::DhcpFormat,
        /// Replace FILE atomically instead of printing.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LabCmd {
    /// Build the lab, run every legitimate case and every attack, print the table. Exit 0 only
    /// if every case holds.
    Run {
        /// Number of VM namespaces (3 to 16).
        #[arg(long, default_value_t = 4)]
        vms: usize,
        /// ARP policy to guard the lab with.
        #[arg(long, default_value = "direct", value_parser = parse_arp_mode)]
        arp_mode: ArpMode,
        /// Leave the lab up afterwards (remove it with `vmguard lab down`).
        #[arg(long)]
        keep: bool,
    },
    /// Remove everything a lab run created.
    Down,
}

fn parse_arp_mode(s: &str) -> Result<ArpMode, String> {
    match s {
        "direct" => Ok(ArpMode::Direct),
        "responder" => Ok(ArpMode::Responder),
        _ => Err("expected direct or responder".into()),
    }
}

fn parse_ofport(s: &str) -> Result<(String, OfPort), String> {
    let (name, n) = s
        .split_once('=')
        .ok_or("expected NAME=NUMBER, e.g. vnet0=5")?;
    let port: OfPort = n.parse().map_err(|e| format!("{e}"))?;
    Ok((name.to_ascii_lowercase(), port))
}

fn read_input(path: &str) -> Result<String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read domain XML from stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read domain XML {path}"))?;
    }
    Ok(text)
}

/// Logs a plan's notes and counts; `per_interface` adds one line per installed interface.
fn log_plan(
    log: &Logger,
    action: &str,
    subject: &str,
    plan: &Plan,
    dry_run: bool,
    per_interface: bool,
) {
    for n in &plan.notes {
        log.warn(&format!("{subject} note: {n}"));
    }
    if dry_run {
        vmguard::out!("{}", plan.render());
        return;
    }
    for (mac, ofport, key) in plan.interfaces.iter().filter(|_| per_interface) {
        log.info(&format!(
            "{action} {subject} iface={mac} ofport={ofport} cookie={}",
            vmguard::pipeline::Cookie::new(*key, vmguard::pipeline::Reason::Pass)
        ));
    }
    let (added, removed) = plan.counts();
    log.info(&format!(
        "{action} {subject} flows_added={added} flows_removed={removed}"
    ));
}

/// Uplink ofports for `flows --base`: given on the command line, else read from OVSDB.
fn base_uplinks(cfg: &Config, ovs: &Ovs, given: &BTreeMap<String, OfPort>) -> Result<Vec<OfPort>> {
    let names: Vec<String> = cfg
        .uplinks
        .iter()
        .filter_map(|u| match u {
            Uplink::Local => None,
            Uplink::Port(p) => Some(p.as_str().to_ascii_lowercase()),
        })
        .collect();
    refuse_unknown_ofports(given, &names, || {
        let list = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(" ")
        };
        format!("a configured uplink port (uplinks: {list})")
    })?;
    cfg.uplinks
        .iter()
        .map(|u| match u {
            Uplink::Local => Ok(OfPort::LOCAL),
            Uplink::Port(p) => match given.get(&p.as_str().to_ascii_lowercase()) {
                Some(n) => Ok(*n),
                None => ovs
                    .port_ofport(p)
                    .with_context(|| {
                        format!("uplink {p}: cannot read its ofport (give --ofport {p}=N)")
                    })?
                    .with_context(|| {
                        format!("uplink {p}: no such OVS interface (give --ofport {p}=N)")
                    }),
            },
        })
        .collect()
}

fn print_flows(
    cfg: &Config,
    ovs: &Ovs,
    log: &Logger,
    xml: &str,
    given: &BTreeMap<String, OfPort>,
) -> Result<()> {
    let parsed = DomainXml::parse(&read_input(xml)?)?;
    // Any interface of the domain may be named (also one on another bridge, which gets no flows).
    let names: Vec<String> = parsed
        .interfaces
        .iter()
        .flat_map(|i| {
            let dev = i.dev.as_ref().map(|d| d.as_str().to_ascii_lowercase());
            dev.into_iter().chain(i.mac.map(|m| m.to_string()))
        })
        .collect();
    refuse_unknown_ofports(given, &names, || {
        format!(
            "the <target dev> or MAC of an interface of domain {} ({})",
            parsed.name,
            names.join(" ")
        )
    })?;
    let dom = parsed.guard(cfg.bridge.as_str())?;
    for w in &dom.warnings {
        log.warn(&format!("vm={} warning: {w}", dom.name));
    }
    let mut flows = Vec::new();
    for iface in &dom.interfaces {
        let by_dev = iface
            .dev
            .as_ref()
            .and_then(|d| given.get(&d.as_str().to_ascii_lowercase()));
        let port = match by_dev.or_else(|| given.get(&iface.mac.to_string())) {
            Some(p) => *p,
            None => {
                let Some(dev) = &iface.dev else {
                    bail!(
                        "domain {}: interface {}: no <target dev>: give --ofport {}=N",
                        dom.name,
                        iface.mac,
                        iface.mac
                    );
                };
                let ctx = |what: &str| {
                    format!(
                        "domain {}: interface {}: {what} {dev} (give --ofport {dev}=N)",
                        dom.name, iface.mac
                    )
                };
                ovs.port_ofport(dev)
                    .with_context(|| ctx("cannot read the ofport of"))?
                    .with_context(|| ctx("no OVS interface"))?
            }
        };
        let key = IfaceKey::derive(&dom.uuid, iface.mac);
        flows.extend(interface_flows(iface, key, port, cfg.arp_mode));
    }
    for f in flows {
        vmguard::outln!("{f}");
    }
    Ok(())
}

/// Refuses `--ofport` names that match nothing (a typo would otherwise be ignored and the
/// number read from OVS, or the flows printed for a port the operator did not mean).
fn refuse_unknown_ofports(
    given: &BTreeMap<String, OfPort>,
    names: &[String],
    expected: impl Fn() -> String,
) -> Result<()> {
    let unknown: Vec<&str> = given
        .keys()
        .filter(|k| !names.contains(k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        bail!("--ofport {}: not {}", unknown.join(", "), expected());
    }
    Ok(())
}

/// The running domains' XML from a directory of files or from libvirt.
fn running_domains(xml_dir: Option<&Path>) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(dir) = xml_dir {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            out.push((p.display().to_string(), text));
        }
        return Ok(out);
    }
    use vmguard::provision::virsh::{Libvirt, Virsh};
    let virsh = Virsh::system();
    for name in virsh
        .list(false)
        .context("cannot list the running domains")?
    {
        match virsh.dumpxml(&name, false) {
            Ok(xml) => out.push((name, xml)),
            // Stopped between the two calls: no longer running, nothing to guard.
            Err(e) if e.is_no_domain() => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read domain {name}")),
        }
    }
    Ok(out)
}

/// `install-hook`: a symlink `DIR/vmguard` to this binary.
fn install_hook(dir: &Path, uninstall: bool, log: &Logger) -> Result<()> {
    let link = dir.join("vmguard");
    if uninstall {
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::remove_file(&link)
                    .with_context(|| format!("cannot remove {}", link.display()))?;
                log.info(&format!("removed hook {}", link.display()));
            }
            Ok(_) => bail!(
                "{} is not a symlink vmguard made: leaving it alone",
                link.display()
            ),
            Err(_) => log.info(&format!("no hook at {}: nothing to remove", link.display())),
        }
        return Ok(());
    }
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find this binary's path")?;
    if std::fs::read_link(&link).is_ok_and(|t| t == exe) {
        log.info(&format!(
            "hook {} -> {} already installed: nothing changed",
            link.display(),
            exe.display()
        ));
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&link)
            .with_context(|| format!("cannot replace {}", link.display()))?,
        Ok(_) => bail!(
            "{} exists and is not a symlink: remove it first",
            link.display()
        ),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(&exe, &link)
        .with_context(|| format!("cannot create {}", link.display()))?;
    log.info(&format!(
        "installed hook {} -> {}; libvirtd reads its hooks when it starts: restart it (systemctl restart libvirtd, or virtqemud with split daemons) for the hook to run",
        link.display(),
        exe.display()
    ));
    Ok(())
}

/// Runs a command; `Ok(code)` is the process exit code for non-error outcomes (verify's 1).
fn run(cli: Cli, log: &Logger) -> Result<u8> {
    if let Cmd::Lab { cmd } = &cli.command {
        match cmd {
            LabCmd::Run {
                vms,
                arp_mode,
                keep,
            } => {
                let all_hold = lab::run(&lab::LabOptions {
                    vms: *vms,
                    arp_mode: *arp_mode,
                    keep: *keep,
                })?;
                if !all_hold {
                    bail!("lab: some cases did not hold (see the table above)");
                }
            }
            LabCmd::Down => lab::down()?,
        }
        return Ok(0);
    }
    if let Cmd::InstallHook {
        uninstall,
        hook_dir,
    } = &cli.command
    {
        install_hook(hook_dir, *uninstall, log)?;
        return Ok(0);
    }
    if let Cmd::Hook {
        domain,
        operation,
        sub_operation,
        ..
    } = &cli.command
    {
        // The XML is on stdin for every operation; read it all so libvirt's write never fails.
        let xml = read_input("-").unwrap_or_default();
        let action = hook::HookAction::of(operation, sub_operation);
        if action == hook::HookAction::Ignore {
            return Ok(0);
        }
        let cfg = match Config::load(cli.config.as_deref()) {
            Ok(cfg) => cfg,
            // Only a start may fail: a failing reconnect kills the running VM, a failing stop
            // leaves nothing better behind.
            Err(e) if action != hook::HookAction::Install => {
                log.error(&format!("{operation} vm={domain}: nothing done: {e}"));
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        };
        return match hook::run(&cfg, log, domain, operation, sub_operation, &xml) {
            Ok(()) => Ok(0),
            Err(reason) => {
                // libvirt shows the hook's last stderr line to the operator.
                eprintln!("{reason}");
                Ok(1)
            }
        };
    }
    let cfg = Config::load(cli.config.as_deref())?;
    let ovs = Ovs::new(cfg.ovs_rundir.as_deref());
    let guard = Guard::new(&ovs, &cfg);
    let bridge = format!("bridge={}", cfg.bridge);
    match cli.command {
        Cmd::Flows { xml, ofports, base } => {
            let given: BTreeMap<String, OfPort> = ofports.into_iter().collect();
            if base {
                for f in base_flows(&base_uplinks(&cfg, &ovs, &given)?) {
                    vmguard::outln!("{f}");
                }
            } else {
                print_flows(&cfg, &ovs, log, &xml, &given)?;
            }
        }
        Cmd::Init { dry_run } => {
            let plan = guard.init(dry_run)?;
            if !dry_run && plan.is_empty() {
                log.info(&format!("init {bridge} already prepared: nothing changed"));
            } else {
                if !dry_run && !plan.bridge_settings.is_empty() {
                    log.info(&format!(
                        "init {bridge} set {}",
                        plan.bridge_settings.join(" ")
                    ));
                }
                log_plan(log, "init", &bridge, &plan, dry_run, false);
            }
        }
        Cmd::Apply { xml, dry_run } => {
            let dom = DomainXml::parse(&read_input(&xml)?)?.guard(cfg.bridge.as_str())?;
            let plan = guard.apply(&dom, dry_run)?;
            log_plan(
                log,
                "apply",
                &format!("vm={}", dom.name),
                &plan,
                dry_run,
                true,
            );
        }
        Cmd::Remove { xml, dry_run } => {
            let id = DomainXml::parse(&read_input(&xml)?)?.identity();
            let plan = guard.remove(&id, dry_run)?;
            log_plan(
                log,
                "remove",
                &format!("vm={}", id.name),
                &plan,
                dry_run,
                true,
            );
        }
        Cmd::Sync {
            xml_dir,
            libvirt: _,
            dry_run,
        } => {
            let mut domains = Vec::new();
            let mut failed = Vec::new();
            for (source, xml) in running_domains(xml_dir.as_deref())? {
                match DomainXml::parse(&xml).and_then(|d| d.guard(cfg.bridge.as_str())) {
                    Ok(d) => domains.push(d),
                    Err(e) => failed.push(format!("{source}: {e}")),
                }
            }
            let outcome = guard.sync(&domains, dry_run)?;
            failed.extend(outcome.failed);
            log_plan(
                log,
                "sync",
                &format!("{bridge} domains={}", domains.len()),
                &outcome.plan,
                dry_run,
                false,
            );
            if !dry_run {
                let changes = outcome.plan.bundle.len()
                    + outcome.plan.records_set.len()
                    + outcome.plan.records_removed.len()
                    + outcome.plan.bridge_settings.len()
                    + usize::from(outcome.plan.frag_mode.is_some());
                log.info(&format!("sync {bridge} changes={changes}"));
            }
            if !failed.is_empty() {
                for f in &failed {
                    log.error(&format!("sync: not installed (its ports stay closed): {f}"));
                }
                bail!("sync: {} domain(s) could not be installed", failed.len());
            }
        }
        Cmd::Verify { json, no_trace } => {
            let audit = guard.audit()?;
            let mut probes = Vec::new();
            if !no_trace {
                for iface in audit.interfaces.iter().filter(|i| i.live_ofport.is_some()) {
                    probes.push(guard.probe(iface)?);
                }
            }
            let ok = report::verify(&audit, &probes, json);
            return Ok(if ok { 0 } else { 1 });
        }
        Cmd::Status { json } => report::status(&guard.audit()?, json),
        Cmd::Create {
            users,
            count,
            nics,
            template,
            start,
            dry_run,
        } => {
            return provisioning::create(
                &cfg,
                log,
                provisioning::CreateArgs {
                    users,
                    count,
                    nics,
                    template,
                    start,
                    dry_run,
                },
            );
        }
        Cmd::Delete { names, yes, grace } => return provisioning::delete(log, &names, yes, grace),
        Cmd::Addresses { json } => return provisioning::addresses(&cfg, log, json),
        Cmd::DhcpHosts { format, output } => {
            return provisioning::dhcp_hosts(&cfg, log, format, output)
        }
        Cmd::Lab { .. } | Cmd::InstallHook { .. } | Cmd::Hook { .. } => {
            unreachable!("handled before loading the config")
        }
    }
    Ok(0)
}

/// `vmguard hook …` as libvirt calls it: `/etc/libvirt/hooks/qemu DOMAIN OP SUBOP EXTRA`.
fn hook_argv(args: &[String]) -> Option<Vec<String>> {
    let argv0 = args.first()?;
    hook::invoked_as_hook(argv0).then(|| {
        let mut v = vec!["vmguard".to_string(), "hook".to_string()];
        v.extend(args[1..].iter().cloned());
        v
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let as_hook = hook_argv(&args);
    let cli = match &as_hook {
        Some(v) => Cli::parse_from(v),
        None => Cli::parse(),
    };
    let in_hook = matches!(cli.command, Cmd::Hook { .. });
    // A hook's logs go to the journal where there is one; an operator's command logs to stderr.
    let log = if in_hook {
        Logger::system()
    } else {
        Logger::stderr()
    };
    match run(cli, &log) {
        Ok(0) if vmguard::output_failed() => ExitCode::from(2),
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line, and the last on stderr: libvirt shows it when a hook fails.
            eprintln!("vmguard: error: {e:#}");
            ExitCode::from(if in_hook { 1 } else { 2 })
        }
    }
}
