//! The provisioning commands (`create`, `delete`, `addresses`, `dhcp-hosts`): argument handling
//! and output around `vmguard::provision`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use vmguard::config::Config;

use crate::log::Logger;

/// `vmguard create`'s arguments.
pub struct CreateArgs {
    pub users: Vec<String>,
    pub count: u16,
    pub nics: u8,
    pub template: Option<PathBuf>,
    pub start: bool,
    pub dry_run: bool,
}

pub fn create(cfg: &Config, log: &Logger, args: CreateArgs) -> Result<u8> {
    let CreateArgs {
        users,
        count,
        nics,
        template,
        start,
        dry_run,
    } = args;
    use vmguard::provision::{self as pv, render, virsh::Libvirt};
    let pool = cfg.pool.as_ref().context(
        "create needs a [pool] table in the config (ipv4 = \"10.0.0.0/24\", reserved = [\"10.0.0.1\"])",
    )?;
    let text = match &template {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read template {}", p.display()))?,
        None => render::BUILTIN_TEMPLATE.to_string(),
    };
    let template = render::Template::new(&text, cfg.bridge.as_str())?;
    let users = users
        .iter()
        .map(|u| u.parse())
        .collect::<Result<Vec<pv::pool::UserName>, _>>()?;
    let req = pv::CreateRequest {
        users: &users,
        count: count.into(),
        nics: nics.into(),
        template: &template,
    };
    let virsh = pv::virsh::Virsh::system();
    let lock = Path::new(pv::LOCK_PATH);
    let vms = pv::create(&virsh, lock, pool, cfg.bridge.as_str(), &req, dry_run)?;
    let rows: Vec<_> = vms.iter().flat_map(|v| v.rows()).collect();
    if dry_run {
        vms.iter().for_each(|v| vmguard::out!("{}", v.xml));
        eprint!("{}", render::table(&rows));
        return Ok(0);
    }
    vmguard::out!("{}", render::table(&rows));
    let mut not_started = Vec::new();
    for vm in vms.iter().filter(|_| start) {
        match virsh.start(&vm.name) {
            Ok(()) => log.info(&format!("started vm={}", vm.name)),
            Err(e) => not_started.push(format!("{}: {e}", vm.name)),
        }
    }
    if !not_started.is_empty() {
        bail!("defined, but not started: {}", not_started.join("; "));
    }
    Ok(0)
}

pub fn delete(log: &Logger, names: &[String], yes: bool, grace: u64) -> Result<u8> {
    use vmguard::provision as pv;
    let virsh = pv::virsh::Virsh::system();
    let records = pv::read_records(&virsh)?;
    let targets: Vec<String> = pv::select_for_delete(&records, names)?
        .iter()
        .map(|r| r.name.clone())
        .collect();
    if !yes {
        eprint!(
            "vmguard: delete {} VM(s): {}? Running ones are stopped, definitions removed, disks kept. [y/N] ",
            targets.len(),
            targets.join(" ")
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            eprintln!();
        }
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            log.info("delete: nothing deleted");
            return Ok(1);
        }
    }
    let grace = std::time::Duration::from_secs(grace);
    let outcome = pv::delete(&virsh, &targets, grace)?;
    for (name, stop) in &outcome.deleted {
        log.info(&format!("deleted vm={name} stop={stop}"));
    }
    for (name, e) in &outcome.failed {
        log.error(&format!("delete vm={name} failed: {e}"));
    }
    if !outcome.failed.is_empty() {
        bail!("delete: {} VM(s) not deleted", outcome.failed.len());
    }
    Ok(0)
}

pub fn addresses(cfg: &Config, log: &Logger, json: bool) -> Result<u8> {
    use vmguard::provision::{self as pv, render};
    let records = pv::read_records(&pv::virsh::Virsh::system())?;
    let listing = pv::Listing::new(&records, cfg.bridge.as_str());
    for (vm, why) in &listing.refused {
        log.warn(&format!("vm={vm} the hook would refuse to start it: {why}"));
    }
    match json {
        true => vmguard::out!("{}", render::json(&listing.rows)),
        false => vmguard::out!("{}", render::table(&listing.rows)),
    }
    Ok(0)
}

pub fn dhcp_hosts(
    cfg: &Config,
    log: &Logger,
    format: vmguard::provision::render::DhcpFormat,
    output: Option<PathBuf>,
) -> Result<u8> {
    use vmguard::provision::{self as pv, render};
    let records = pv::read_records(&pv::virsh::Virsh::system())?;
    let listing = pv::Listing::new(&records, cfg.bridge.as_str());
    for (vm, why) in &listing.refused {
        log.warn(&format!(
            "vm={vm} no reservation: the hook would refuse it: {why}"
        ));
    }
    let rows = listing.reservable();
    let text = render::dhcp_hosts(&rows, format);
    match output {
        None => vmguard::out!("{text}"),
        Some(path) => {
            pv::write_atomic(&path, &text)?;
            log.info(&format!(
                "dhcp-hosts interfaces={} file={}",
                rows.len(),
                path.display()
            ));
        }
    }
    Ok(0)
}
