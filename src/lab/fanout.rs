//! After the attacks: ARP and ND steering over the whole guarded run, the ARP fan-out with
//! vmguard and with the bridge's flows replaced by one NORMAL flow, and control attacks that
//! must succeed on that unguarded bridge.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use vmguard::config::ArpMode;
use vmguard::model::MacAddr;

use super::attacks::icmp4_redirect;
use super::capture::{Direction, Frame, Net, L4};
use super::setup::default_router_v6;
use super::table::{Expect, Row};
use super::topology::{Vm, BRIDGE, GATEWAY_NS, GATEWAY_V4, GUEST_IF, REMOTE_V4, ROGUE_PREFIX_V6};
use super::{gateway_lla, list, progress, Lab, Window};

pub fn run(lab: &mut Lab) -> Result<Vec<Row>> {
    let guarded = Window {
        from: lab.started,
        to: SystemTime::now(),
    };
    let mut rows = steering(lab, guarded)?;
    let mode = Some(lab.topo.arp_mode);
    rows.push(fanout(lab, mode, Ask::Arp)?);
    rows.push(fanout(lab, mode, Ask::Nd)?);
    progress("replacing the bridge's flows with one NORMAL flow: fan-out and control attacks without vmguard");
    lab.ofctl(&["del-flows", BRIDGE])?;
    lab.ofctl(&["add-flow", BRIDGE, "priority=0,actions=NORMAL"])?;
    rows.push(fanout(lab, None, Ask::Arp)?);
    rows.push(fanout(lab, None, Ask::Nd)?);
    rows.extend(controls(lab)?);
    Ok(rows)
}

/// D5 and D9 over everything the VMs received while guarded: a broadcast ARP request reaches
/// a VM only if it owns the target (direct mode; in responder mode only probes), or it is
/// gratuitous; a multicast NS for a VM's address reaches only that VM (in responder mode only
/// if it has no source link-layer option to answer), a DAD NS none.
fn steering(lab: &Lab, w: Window) -> Result<Vec<Row>> {
    let (mut arp_seen, mut arp_bad, mut ns_seen, mut ns_bad) = (0, Vec::new(), 0, Vec::new());
    for vm in &lab.topo.vms {
        for f in lab
            .caps
            .frames(&vm.netns, Direction::In)?
            .iter()
            .filter(|f| w.contains(f.time))
        {
            if let Some(a) = f.arp() {
                if a.op != 1 || f.dst != MacAddr::BROADCAST || a.spa == a.tpa {
                    continue;
                }
                arp_seen += 1;
                let allowed = vm.ipv4().contains(&a.tpa)
                    && (lab.topo.arp_mode == ArpMode::Direct || a.spa == Ipv4Addr::UNSPECIFIED);
                if !allowed {
                    arp_bad.push(format!(
                        "{} got who-has {} from {}",
                        vm.name(),
                        a.tpa,
                        a.sha
                    ));
                }
            }
            if let Net::V6 {
                src,
                l4:
                    L4::Icmp6 {
                        kind: 135,
                        target: Some(t),
                        lla,
                    },
                ..
            } = &f.net
            {
                let owner = lab.topo.owner_v6(*t);
                if !f.dst.is_multicast() || (owner.is_none() && !src.is_unspecified()) {
                    continue;
                }
                ns_seen += 1;
                let has_sll = lla.is_some_and(|m| m != MacAddr::ZERO);
                if src.is_unspecified() {
                    ns_bad.push(format!("{} got a DAD NS for {t}", vm.name()));
                } else if let Some(o) = owner.filter(|o| o.index != vm.index) {
                    ns_bad.push(format!("{} got an NS for {t} of {}", vm.name(), o.name()));
                } else if lab.topo.arp_mode == ArpMode::Responder && has_sll {
                    ns_bad.push(format!(
                        "{} got an NS for its {t} that the switch should have answered",
                        vm.name()
                    ));
                }
            }
        }
    }
    let outcome = |bad: Vec<String>, ok: String| {
        if bad.is_empty() {
            Ok(ok)
        } else {
            Err(format!(
                "{} misdelivered: {}",
                bad.len(),
                list(bad.iter().take(5))
            ))
        }
    };
    let arp_ok = match lab.topo.arp_mode {
        ArpMode::Direct => {
            format!("{arp_seen} broadcast requests reached VMs, each only its target's owner")
        }
        ArpMode::Responder => {
            format!("{arp_seen} broadcast requests reached VMs (probes for their own address only)")
        }
    };
    let ns_ok = match lab.topo.arp_mode {
        ArpMode::Direct => format!(
            "{ns_seen} multicast NS for VM addresses reached only their owner; DAD NS no VM"
        ),
        ArpMode::Responder => format!(
            "{ns_seen} multicast NS for VM addresses reached only their owner, none the switch \
             could answer; DAD NS no VM"
        ),
    };
    Ok(vec![
        Row::new(
            "D5",
            "ARP steering over the whole guarded run",
            "-",
            Expect::Delivered,
            outcome(arp_bad, arp_ok),
        ),
        Row::new(
            "D9",
            "NS steering over the whole guarded run",
            "-",
            Expect::Delivered,
            outcome(ns_bad, ns_ok),
        ),
    ])
}

/// What the fan-out rows send from the first VM for the second VM's address.
#[derive(Clone, Copy)]
enum Ask {
    /// A broadcast ARP request (`arping`).
    Arp,
    /// A multicast NS with a source link-layer option: what the kernel sends when `ping -6`
    /// finds no neighbor entry.
    Nd,
}

/// How many VMs see one broadcast ARP request / multicast NS from the first VM for the second
/// VM's address: with vmguard in `mode`, or (`None`) with the bridge in plain NORMAL mode.
fn fanout(lab: &mut Lab, mode: Option<ArpMode>, ask: Ask) -> Result<Row> {
    let (from, to) = (lab.topo.vms[0].clone(), lab.topo.vms[1].clone());
    let (what, target, line) = match ask {
        Ask::Arp => (
            "ARP",
            IpAddr::from(to.dhcp_v4),
            format!("arping -c 1 -w 1 -i {GUEST_IF} {}", to.dhcp_v4),
        ),
        Ask::Nd => (
            "NS",
            IpAddr::from(to.slaac_v6),
            format!("ping -6 -c 1 -W 1 -I {GUEST_IF} {}", to.slaac_v6),
        ),
    };
    if let Ask::Nd = ask {
        // No entry, so the kernel solicits before it pings.
        let flush = format!("ip -6 neigh flush to {} dev {GUEST_IF}", to.slaac_v6);
        lab.sh_ok(&from.netns, &flush)?;
    }
    let (answered, w) = lab.window(|lab| Ok(lab.sh(&from.netns, &line)?.status.success()))?;
    let request = |f: &Frame| match ask {
        Ask::Arp => {
            f.dst == MacAddr::BROADCAST
                && f.arp()
                    .is_some_and(|a| a.op == 1 && a.sha == from.mac && a.tpa == to.dhcp_v4)
        }
        Ask::Nd => {
            f.src == from.mac
                && f.dst.is_multicast()
                && f.icmp6()
                    .is_some_and(|(k, t, _)| k == 135 && t == Some(to.slaac_v6))
        }
    };
    let seen = lab.vms_receiving(w, &request)?;
    let uplink = lab.received(GATEWAY_NS, w, &request)? > 0;
    let (how, expected) = match mode {
        Some(ArpMode::Direct) => ("with vmguard (direct)", vec![to.name()]),
        Some(ArpMode::Responder) => ("with vmguard (responder)", Vec::new()),
        None => (
            "on a plain NORMAL bridge (flows replaced)",
            lab.topo.vms[1..].iter().map(Vm::name).collect(),
        ),
    };
    let text = format!(
        "{what} for {target} from {}: {} of {} other VMs saw it [{}], uplink {}, {}",
        from.name(),
        seen.len(),
        lab.topo.vms.len() - 1,
        list(&seen),
        if uplink { "saw it" } else { "did not" },
        if answered { "answered" } else { "unanswered" }
    );
    let ok = seen == expected && answered && uplink == mode.is_none();
    let spec = match ask {
        Ask::Arp => "D5",
        Ask::Nd => "D9",
    };
    Ok(Row::new(
        spec,
        format!("{what} fan-out {how}"),
        from.name(),
        Expect::Measured,
        if ok { Ok(text) } else { Err(text) },
    ))
}

/// The same attacks on the unguarded bridge must change the victim: otherwise the blocked
/// verdicts above would prove nothing.
fn controls(lab: &mut Lab) -> Result<Vec<Row>> {
    let att = lab.topo.attacker().clone();
    let v = lab.topo.vms[0].clone();
    let mut rows = Vec::new();
    lab.sh(&v.netns, &format!("ping -c 1 -W 1 -q {GATEWAY_V4}"))?;
    let line = format!("arpspoof -i {GUEST_IF} -t {} {GATEWAY_V4}", v.dhcp_v4);
    let spoof = lab.host.spawn_in(
        &att.netns,
        &line.split_whitespace().collect::<Vec<_>>(),
        "control-arpspoof",
    )?;
    let poisoned = poll(lab, || {
        Ok(neigh(lab, &v, GATEWAY_V4.into())? == Some(att.mac))
    })?;
    lab.host.stop(&[spoof]);
    let effect = format!("{GATEWAY_V4} is-at {} (the attacker)", att.mac);
    rows.push(control(
        "X3",
        "arpspoof (Listing 1) without vmguard",
        &v,
        poisoned,
        effect,
    ));

    let lla = gateway_lla();
    let line = format!(
        "atk6-fake_advertise6 -n 1 {GUEST_IF} {lla} {} {} {}",
        v.lla(),
        att.mac,
        att.lla()
    );
    lab.sh(&att.netns, &line)?;
    let poisoned = poll(lab, || Ok(neigh(lab, &v, lla.into())? == Some(att.mac)))?;
    let effect = format!("{lla} is-at {} (the attacker)", att.mac);
    rows.push(control(
        "X5",
        "fake_advertise6 for the gateway without vmguard",
        &v,
        poisoned,
        effect,
    ));

    let rogue = format!("{ROGUE_PREFIX_V6}/64");
    lab.sh(
        &att.netns,
        &format!("atk6-fake_router26 -A {rogue} -n 1 {GUEST_IF}"),
    )?;
    let took = poll(lab, || {
        Ok(default_router_v6(lab, &v.netns)?.contains(&att.lla()))
    })?;
    let effect = format!("default route via {} (the attacker)", att.lla());
    rows.push(control(
        "X4",
        "fake_router26 without vmguard",
        &v,
        took,
        effect,
    ));

    lab.inject(
        &att.netns,
        &[icmp4_redirect(GATEWAY_V4, &v, att.mac, att.dhcp_v4)],
        1,
    )?;
    let took = poll(lab, || {
        let r = lab.ip_json(&v.netns, &["route", "get", &REMOTE_V4.to_string()])?;
        Ok(r.first().and_then(|r| r["gateway"].as_str()) == Some(&att.dhcp_v4.to_string()))
    })?;
    let effect = format!("{REMOTE_V4} routed via {} (the attacker)", att.dhcp_v4);
    rows.push(control(
        "X6",
        "ICMPv4 redirect (crafted) without vmguard",
        &v,
        took,
        effect,
    ));

    // Undo what the controls did to the victim before vmguard comes back.
    for line in [
        format!("ip neigh flush dev {GUEST_IF}"),
        format!("ip -6 route del default via {} dev {GUEST_IF}", att.lla()),
        format!("ip -6 route del {rogue} dev {GUEST_IF}"),
        format!("ip -6 addr flush dev {GUEST_IF} to {rogue}"),
        "ip route flush cache".to_string(),
    ] {
        lab.sh(&v.netns, &line)?;
    }
    lab.sh_ok(GATEWAY_NS, &format!("ip neigh flush dev {GUEST_IF}"))?;
    Ok(rows)
}

fn control(spec: &'static str, case: &str, v: &Vm, took: bool, effect: String) -> Row {
    let outcome = if took {
        Ok(format!(
            "{}: {effect}: the attack works, so its blocked rows are meaningful",
            v.name()
        ))
    } else {
        Err(format!(
            "{}: no effect ({effect} expected): the check cannot see this attack",
            v.name()
        ))
    };
    Row::new(spec, case, v.name(), Expect::Control, outcome)
}

/// Polls `check` for up to 3 s.
fn poll(lab: &Lab, check: impl Fn() -> Result<bool>) -> Result<bool> {
    for _ in 0..30 {
        if check()? {
            return Ok(true);
        }
        lab.host.sleep(Duration::from_millis(100))?;
    }
    Ok(false)
}

/// The MAC `vm`'s neighbor cache holds for `ip`.
fn neigh(lab: &Lab, vm: &Vm, ip: IpAddr) -> Result<Option<MacAddr>> {
    Ok(lab
        .ip_json(
            &vm.netns,
            &["neigh", "show", "to", &ip.to_string(), "dev", GUEST_IF],
        )?
        .first()
        .and_then(|n| n["lladdr"].as_str())
        .and_then(|m| m.parse().ok()))
}
