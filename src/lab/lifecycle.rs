//! The hook's lifecycle on the live lab: restoring a flushed bridge with `init` and the
//! `reconnect` hook (then `vmguard verify`), and a VM stopped and started again.

use std::process::Output;
use std::time::Duration;

use anyhow::Result;
use vmguard::frames;
use vmguard::pipeline::IfaceKey;

use super::capture::Frame;
use super::table::{Expect, Row};
use super::topology::{FOREIGN_MAC, GATEWAY_NS, GATEWAY_V4};
use super::{drop_delta, progress, verdict, Lab};

pub fn run(lab: &mut Lab) -> Result<Vec<Row>> {
    Ok(vec![restore(lab)?, stop_start(lab)?])
}

/// The last non-empty line a command printed (stdout, then stderr).
fn last_line(o: &Output) -> String {
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Runs the hook for `vm` with its domain XML; the problem, if it failed.
fn hook(lab: &Lab, domain: &str, xml: &str, op: &str, sub: &str) -> Result<Option<String>> {
    let out = lab.vmguard(&["hook", domain, op, sub, "-"], xml)?;
    Ok((!out.status.success()).then(|| format!("hook {domain} {op} {sub}: {}", last_line(&out))))
}

/// Restores the guard the way an operator would after a flush: `vmguard init`, then the hook's
/// `reconnect begin` (what libvirtd runs for each VM when it restarts), then `vmguard verify`;
/// a guest reaches the gateway and a forged frame is dropped again.
fn restore(lab: &mut Lab) -> Result<Row> {
    progress("restoring vmguard: init, reconnect hook per VM, verify");
    let mut problems = Vec::new();
    let init = lab.vmguard(&["init"], "")?;
    if !init.status.success() {
        problems.push(format!("init: {}", last_line(&init)));
    }
    for vm in lab.topo.vms.clone() {
        problems.extend(hook(
            lab,
            &vm.domain,
            &vm.domain_xml(),
            "reconnect",
            "begin",
        )?);
    }
    let verify = lab.vmguard(&["verify"], "")?;
    if !verify.status.success() {
        problems.push(format!(
            "verify exit {}: {}",
            verify.status,
            last_line(&verify)
        ));
    }
    let v = lab.topo.vms[0].clone();
    if !lab
        .sh(&v.netns, &format!("ping -c 1 -W 2 -q {GATEWAY_V4}"))?
        .status
        .success()
    {
        problems.push(format!("{} cannot reach the gateway afterwards", v.name()));
    }
    let att = lab.topo.attacker().clone();
    let key = lab.key(&att)?;
    let before = lab.drops(key)?;
    let mut rarp = frames::rarp_announce(FOREIGN_MAC.0);
    rarp.0[6..12].copy_from_slice(&att.mac.0);
    lab.inject(&att.netns, &[rarp], 1)?;
    if drop_delta(&before, &lab.drops(key)?).0 == 0 {
        problems.push("the attacker's forged RARP was not dropped after the restore".into());
    }
    let text = format!(
        "verify exit 0 ({}); {} reaches the gateway; a forged RARP is dropped again",
        last_line(&verify),
        v.name()
    );
    let case = "restore after a flush: init + reconnect hooks, verify";
    Ok(Row::new(
        "L",
        case,
        "-",
        Expect::Delivered,
        verdict(problems, text),
    ))
}

/// A VM stopped by libvirt (`stopped end`, `release end`) loses its flows and its port is
/// closed (fail closed: nothing it sends reaches anyone); started again, it works again.
fn stop_start(lab: &mut Lab) -> Result<Row> {
    let vm = lab
        .topo
        .victims()
        .last()
        .expect("at least two victims")
        .clone();
    progress(&format!(
        "stopping and starting {} through the hook",
        vm.domain
    ));
    let xml = vm.domain_xml();
    let mut problems = Vec::new();
    for (op, sub) in [("stopped", "end"), ("release", "end")] {
        problems.extend(hook(lab, &vm.domain, &xml, op, sub)?);
    }
    let before = lab.drops(IfaceKey::BASE)?;
    let ping = format!("ping -c 1 -W 1 -q {GATEWAY_V4}");
    let (answered, w) = lab.window(|lab| Ok(lab.sh(&vm.netns, &ping)?.status.success()))?;
    let (dropped, reasons) = drop_delta(&before, &lab.drops(IfaceKey::BASE)?);
    let from_vm = |f: &Frame| f.src == vm.mac;
    let mut reached = Vec::new();
    for (name, ns) in lab
        .topo
        .vms
        .iter()
        .filter(|v| v.index != vm.index)
        .map(|v| (v.name(), v.netns.clone()))
        .chain([("gw".to_string(), GATEWAY_NS.to_string())])
    {
        if lab.received(&ns, w, &from_vm)? > 0 {
            reached.push(name);
        }
    }
    if answered || !reached.is_empty() {
        problems.push(format!(
            "stopped, it still reached [{}]",
            reached.join(", ")
        ));
    }
    if dropped == 0 {
        problems.push("no unguarded_port drop counted".into());
    }
    for op in ["prepare", "start", "started"] {
        problems.extend(hook(lab, &vm.domain, &xml, op, "begin")?);
    }
    lab.host.sleep(Duration::from_millis(200))?;
    if !lab.sh(&vm.netns, &ping)?.status.success() {
        problems.push("started again, it cannot reach the gateway".into());
    }
    let text = format!(
        "stopped: its ping reached nobody ({reasons}); started again: it reaches the gateway"
    );
    let case = "stop and start through the hook: closed, then open";
    Ok(Row::new(
        "L",
        case,
        vm.name(),
        Expect::Delivered,
        verdict(problems, text),
    ))
}
