//! The `vmguard` command line: reads inputs, calls the engine, prints plans and logs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use vmguard::compile::{base_flows, interface_flows};
use vmguard::config::Config;
use vmguard::domain::DomainXml;
use vmguard::engine::{Guard, Plan};
use vmguard::model::OfPort;
use vmguard::ovs::Ovs;
use vmguard::pipeline::IfaceKey;

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
        /// With --base, the uplinks' numbers: upstream=1.
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

/// A log line on stderr with stable `key=value` fields.
fn log(line: &str) {
    eprintln!("vmguard: {line}");
}

fn report(action: &str, domain: &str, plan: &Plan, dry_run: bool) {
    for n in &plan.notes {
        log(&format!("vm={domain} note: {n}"));
    }
    if dry_run {
        print!("{}", plan.render());
        return;
    }
    let (added, removed) = plan.counts();
    log(&format!(
        "{action} vm={domain} flows_added={added} flows_removed={removed}"
    ));
}

fn run(cli: Cli) -> Result<()> {
    let cfg = Config::load(cli.config.as_deref())?;
    let ovs = Ovs::new(cfg.ovs_rundir.as_deref());
    let guard = Guard::new(&ovs, &cfg);
    match cli.command {
        Cmd::Flows { xml, ofports, base } => {
            let given: BTreeMap<String, OfPort> = ofports.into_iter().collect();
            if base {
                let uplinks = cfg
                    .uplinks
                    .iter()
                    .map(|u| match u {
                        vmguard::config::Uplink::Local => Ok(OfPort::LOCAL),
                        vmguard::config::Uplink::Port(p) => match given
                            .get(&p.as_str().to_ascii_lowercase())
                        {
                            Some(n) => Ok(*n),
                            None => ovs
                                .port_ofport(p)
                                .with_context(|| {
                                    format!(
                                        "uplink {p}: cannot read its ofport (give --ofport {p}=N)"
                                    )
                                })?
                                .with_context(|| {
                                    format!(
                                        "uplink {p}: no such OVS interface (give --ofport {p}=N)"
                                    )
                                }),
                        },
                    })
                    .collect::<Result<Vec<_>>>()?;
                for f in base_flows(&uplinks) {
                    println!("{f}");
                }
                return Ok(());
            }
            let dom = DomainXml::parse(&read_input(&xml)?)?.guard(cfg.bridge.as_str())?;
            for w in &dom.warnings {
                log(&format!("vm={} warning: {w}", dom.name));
            }
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
                        ovs.port_ofport(dev)
                            .with_context(|| format!("domain {}: interface {}: cannot read ofport of {dev} (give --ofport {dev}=N)", dom.name, iface.mac))?
                            .with_context(|| format!("domain {}: interface {}: no OVS interface {dev} (give --ofport {dev}=N)", dom.name, iface.mac))?
                    }
                };
                let key = IfaceKey::derive(&dom.uuid, iface.mac);
                for f in interface_flows(iface, key, port, cfg.arp_mode) {
                    println!("{f}");
                }
            }
        }
        Cmd::Init { dry_run } => {
            let plan = guard.init(dry_run)?;
            for n in &plan.notes {
                log(&format!("bridge={} note: {n}", cfg.bridge));
            }
            if dry_run {
                print!("{}", plan.render());
            } else if plan.is_empty() {
                log(&format!(
                    "init bridge={} already prepared: nothing changed",
                    cfg.bridge
                ));
            } else {
                let (added, removed) = plan.counts();
                log(&format!(
                    "init bridge={} settings={} frag_mode={} flows_added={added} flows_removed={removed}",
                    cfg.bridge,
                    if plan.bridge_settings.is_empty() { "ok".to_string() } else { plan.bridge_settings.join(";") },
                    plan.frag_mode.unwrap_or("ok"),
                ));
            }
        }
        Cmd::Apply { xml, dry_run } => {
            let dom = DomainXml::parse(&read_input(&xml)?)?.guard(cfg.bridge.as_str())?;
            let plan = guard.apply(&dom, dry_run)?;
            report("apply", &dom.name, &plan, dry_run);
        }
        Cmd::Remove { xml, dry_run } => {
            let id = DomainXml::parse(&read_input(&xml)?)?.identity();
            let plan = guard.remove(&id, dry_run)?;
            report("remove", &id.name, &plan, dry_run);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmguard: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
