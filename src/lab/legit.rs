//! The legitimate cases (SPEC "must be delivered"): leases, DAD and SLAAC, unicast, broadcast
//! and multicast, ARP requests, probes and unicast ARP, traffic from the uplink, RARP and an
//! unsolicited NA — each checked in the guests and in what the captures saw.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Result;
use vmguard::config::ArpMode;
use vmguard::frames;
use vmguard::model::MacAddr;

use super::capture::{Direction, Frame, Net};
use super::setup::{addresses_v6, default_router_v6};
use super::table::{Expect, Row};
use super::topology::{
    Vm, BROADCAST_V4, GATEWAY_MAC, GATEWAY_NS, GATEWAY_V4, GATEWAY_V6, GUEST_IF, UNOWNED_V4,
};
use super::{gateway_lla, list, progress, verdict, Lab};

pub fn run(lab: &mut Lab) -> Result<Vec<Row>> {
    let mut rows = addresses(lab)?;
    progress("pings: every VM to the gateway and to every address of every other VM");
    rows.extend(unicast(lab)?);
    progress("broadcast, multicast, ARP from VMs and from the uplink, RARP, unsolicited NA");
    rows.push(broadcast(lab)?);
    rows.extend(arp(lab)?);
    rows.push(uplink_arp(lab)?);
    rows.push(rarp(lab)?);
    rows.push(unsolicited_na(lab)?);
    Ok(rows)
}

/// D2, D3, D4 per VM: the leases, every address valid after DAD, the gateway as router, and
/// the gateway's capture of the DAD probes, MLD reports from `::`, RS and DHCPv6 requests.
fn addresses(lab: &Lab) -> Result<Vec<Row>> {
    let gw_frames = lab.caps.frames(GATEWAY_NS, Direction::In)?;
    let mut rows = Vec::new();
    for vm in &lab.topo.vms {
        let l = lab.leases4.get(&vm.index).cloned().unwrap_or_default();
        let shown = |a: Option<Ipv4Addr>| a.map_or("none".to_string(), |a| a.to_string());
        let text = format!(
            "udhcpc got {} from {}, router {} (reserved {})",
            shown(l.ip),
            shown(l.server),
            shown(l.router),
            vm.dhcp_v4
        );
        let ok = l.ip == Some(vm.dhcp_v4)
            && l.router == Some(GATEWAY_V4)
            && l.server == Some(GATEWAY_V4);
        let case = "DHCPv4 lease from the gateway's dnsmasq";
        rows.push(Row::new(
            "D2",
            case,
            vm.name(),
            Expect::Delivered,
            if ok { Ok(text) } else { Err(text) },
        ));

        let from_vm: Vec<&Frame> = gw_frames.iter().filter(|f| f.src == vm.mac).collect();
        let requests = from_vm
            .iter()
            .filter(|f| f.udp() == Some((546, 547)) && f.src_v6() == Some(vm.lla()))
            .count();
        let got = lab.leases6.get(&vm.index).copied().flatten();
        let text = format!(
            "dhclient -6 got {} (reserved {}); gateway saw {requests} requests from {}:546",
            got.map_or("none".into(), |a| a.to_string()),
            vm.dhcp_v6,
            vm.lla()
        );
        let ok = got == Some(vm.dhcp_v6) && requests > 0;
        let case = "DHCPv6 lease from the gateway's dnsmasq";
        rows.push(Row::new(
            "D3",
            case,
            vm.name(),
            Expect::Delivered,
            if ok { Ok(text) } else { Err(text) },
        ));

        let mut problems = Vec::new();
        let addrs = addresses_v6(lab, &vm.netns)?;
        for want in vm.ipv6() {
            match addrs.iter().find(|(a, _, _)| *a == want) {
                None => problems.push(format!("{want} missing")),
                Some((_, true, _)) => problems.push(format!("{want} still tentative")),
                Some((_, _, true)) => problems.push(format!("{want} failed DAD")),
                Some(_) => {}
            }
        }
        let eui64 = vm.mac.eui64_link_local();
        if vm.custom_lla.is_some() && addrs.iter().any(|(a, _, _)| *a == eui64) {
            problems.push("has an EUI-64 link-local despite addr_gen_mode=none".into());
        }
        let routers = default_router_v6(lab, &vm.netns)?;
        if routers != [gateway_lla()] {
            problems.push(format!("IPv6 default routers [{}]", list(&routers)));
        }
        let unspecified = |f: &&&Frame| f.src_v6() == Some(Ipv6Addr::UNSPECIFIED);
        let kind = |f: &&&Frame, k: &[u8]| f.icmp6_kind().is_some_and(|x| k.contains(&x));
        let mld = from_vm
            .iter()
            .filter(unspecified)
            .filter(|f| kind(f, &[131, 143]))
            .count();
        let dad = from_vm
            .iter()
            .filter(unspecified)
            .filter(|f| {
                f.icmp6()
                    .is_some_and(|(k, t, _)| k == 135 && t.is_some_and(|t| vm.ipv6().contains(&t)))
            })
            .count();
        let rs = from_vm.iter().filter(|f| kind(f, &[133])).count();
        for (n, what) in [(mld, "MLD report from ::"), (dad, "DAD NS"), (rs, "RS")] {
            if n == 0 {
                problems.push(format!("gateway saw no {what}"));
            }
        }
        let lla = match vm.custom_lla {
            Some(l) => format!("custom LLA {l}"),
            None => format!("LLA {}", vm.lla()),
        };
        let text = format!(
            "{lla}, SLAAC {}, DHCPv6 {} valid; default via gateway; \
             gateway saw {dad} DAD NS, {mld} MLD from ::, {rs} RS",
            vm.slaac_v6, vm.dhcp_v6
        );
        let case = "DAD, MLD/RS from ::, SLAAC from the RA";
        rows.push(Row::new(
            "D4",
            case,
            vm.name(),
            Expect::Delivered,
            verdict(problems, text),
        ));
    }
    Ok(rows)
}

/// One `ping` of `dst` from `ns` (a link-local through the guest interface), as
/// `(namespace, command line)`.
fn ping(ns: &str, dst: IpAddr, src: Option<IpAddr>) -> (String, String) {
    let mut line = "ping -c 1 -W 3 -q".to_string();
    if let IpAddr::V6(a) = dst {
        line.push_str(" -6");
        if a.is_unicast_link_local() {
            line.push_str(&format!(" -I {GUEST_IF}"));
        }
    }
    if let Some(s) = src {
        line.push_str(&format!(" -I {s}"));
    }
    (ns.to_string(), format!("{line} {dst}"))
}

/// Every address of `vm`, labelled `vm2 10.77.0.12`.
fn targets(vm: &Vm) -> Vec<(String, IpAddr)> {
    vm.ipv4()
        .into_iter()
        .map(IpAddr::V4)
        .chain(vm.ipv6().into_iter().map(IpAddr::V6))
        .map(|a| (format!("{} {a}", vm.name()), a))
        .collect()
}

/// D1 per VM and family: pings to the gateway and every address of every other VM (from the
/// first VM's second IPv4 too), after flushing every neighbor cache so that ARP and ND run
/// under the guard. The gateway's pings to every VM address make the D10 unicast row.
fn unicast(lab: &mut Lab) -> Result<Vec<Row>> {
    for ns in lab
        .topo
        .vms
        .iter()
        .map(|v| v.netns.as_str())
        .chain([GATEWAY_NS])
    {
        lab.sh_ok(ns, &format!("ip neigh flush dev {GUEST_IF}"))?;
    }
    // (who, IPv4?, label, command)
    let mut plan = Vec::new();
    for vm in &lab.topo.vms {
        let gw = [GATEWAY_V4.into(), GATEWAY_V6.into(), gateway_lla().into()]
            .map(|a: IpAddr| (format!("gw {a}"), a));
        let peers = lab
            .topo
            .vms
            .iter()
            .filter(|p| p.index != vm.index)
            .flat_map(targets);
        for (label, dst) in gw.into_iter().chain(peers) {
            plan.push((vm.name(), dst.is_ipv4(), label, ping(&vm.netns, dst, None)));
        }
        if let Some(extra) = vm.extra_v4 {
            let (dst, src) = (GATEWAY_V4.into(), Some(extra.into()));
            plan.push((
                vm.name(),
                true,
                format!("gw from {extra}"),
                ping(&vm.netns, dst, src),
            ));
        }
    }
    for (label, dst) in lab.topo.vms.iter().flat_map(targets) {
        plan.push((
            "gw".into(),
            dst.is_ipv4(),
            label,
            ping(GATEWAY_NS, dst, None),
        ));
    }
    let cmds: Vec<(String, String)> = plan.iter().map(|p| p.3.clone()).collect();
    let first = lab.host.parallel(&cmds)?;
    let mut answered: BTreeMap<(String, bool), Vec<String>> = BTreeMap::new();
    let mut failed: BTreeMap<(String, bool), Vec<String>> = BTreeMap::new();
    for ((who, v4, label, cmd), out) in plan.into_iter().zip(first) {
        // A lost first echo (address resolution racing it) gets one more try.
        let ok = out.status.success() || lab.host.parallel(&[cmd])?[0].status.success();
        let bucket = if ok { &mut answered } else { &mut failed };
        bucket.entry((who, v4)).or_default().push(label);
    }
    let count = |m: &BTreeMap<(String, bool), Vec<String>>, key: (String, bool)| {
        m.get(&key).map_or(0, Vec::len)
    };
    let mut rows = Vec::new();
    for vm in &lab.topo.vms {
        for (v4, case) in [
            (true, "IPv4 unicast to the gateway and every VM"),
            (false, "IPv6 unicast: global, DHCPv6, link-local"),
        ] {
            let good = count(&answered, (vm.name(), v4));
            let outcome = match failed.get(&(vm.name(), v4)) {
                None => Ok(format!("{good} pings answered")),
                Some(bad) => Err(format!("no answer from {}", list(bad))),
            };
            rows.push(Row::new("D1", case, vm.name(), Expect::Delivered, outcome));
        }
    }
    let good = count(&answered, ("gw".into(), true)) + count(&answered, ("gw".into(), false));
    let bad: Vec<&String> = [true, false]
        .iter()
        .filter_map(|v4| failed.get(&("gw".to_string(), *v4)))
        .flatten()
        .collect();
    let outcome = if bad.is_empty() {
        Ok(format!("gateway's {good} pings answered"))
    } else {
        Err(format!("gateway got no answer from {}", list(bad)))
    };
    let case = "uplink to VMs: unicast to every VM address";
    rows.push(Row::new("D10", case, "-", Expect::Delivered, outcome));
    Ok(rows)
}

/// D12: an IPv4 broadcast and an IPv6 all-nodes ping from the first VM reach every other VM
/// and the gateway.
fn broadcast(lab: &mut Lab) -> Result<Row> {
    let vm = lab.topo.vms[0].clone();
    let all_nodes: Ipv6Addr = "ff02::1".parse()?;
    let ((), w) = lab.window(|lab| {
        lab.sh(&vm.netns, &format!("ping -b -c 1 -W 0.3 -q {BROADCAST_V4}"))?;
        lab.sh(
            &vm.netns,
            &format!("ping -6 -c 1 -W 0.3 -q -I {GUEST_IF} {all_nodes}"),
        )?;
        Ok(())
    })?;
    let bcast = |f: &Frame| {
        f.src == vm.mac
            && f.icmp4_kind() == Some(8)
            && f.src_v4() == Some(vm.dhcp_v4)
            && f.dst_v4() == Some(BROADCAST_V4)
    };
    let mcast = |f: &Frame| {
        f.src == vm.mac
            && f.icmp6_kind() == Some(128)
            && f.src_v6() == Some(vm.lla())
            && f.dst_v6() == Some(all_nodes)
    };
    let mut receivers: Vec<(String, String)> = lab
        .topo
        .vms
        .iter()
        .filter(|v| v.index != vm.index)
        .map(|v| (v.name(), v.netns.clone()))
        .collect();
    receivers.push(("gw".into(), GATEWAY_NS.into()));
    let mut problems = Vec::new();
    for (name, ns) in &receivers {
        if lab.received(ns, w, &bcast)? == 0 {
            problems.push(format!("{name} missed the IPv4 broadcast"));
        }
        if lab.received(ns, w, &mcast)? == 0 {
            problems.push(format!("{name} missed the ff02::1 echo"));
        }
    }
    let text = format!(
        "ping -b {BROADCAST_V4} and ping ff02::1 reached {} VMs and the gateway",
        receivers.len() - 1
    );
    let case = "IPv4 broadcast and IPv6 multicast from owned addresses";
    Ok(Row::new(
        "D12",
        case,
        vm.name(),
        Expect::Delivered,
        verdict(problems, text),
    ))
}

/// A broadcast ARP request from `sha` for `tpa` (any sender IP).
fn arp_request(sha: MacAddr, tpa: Ipv4Addr) -> impl Fn(&Frame) -> bool {
    move |f: &Frame| {
        f.dst == MacAddr::BROADCAST
            && f.arp()
                .is_some_and(|a| a.op == 1 && a.sha == sha && a.tpa == tpa)
    }
}

/// Habets' `arping`, one request (`args` before the target); true if a reply came.
fn arping(lab: &Lab, ns: &str, args: &str) -> Result<bool> {
    let line = format!("arping -c 1 -w 0.5 -i {GUEST_IF} {args}");
    Ok(lab.sh(ns, &line)?.status.success())
}

/// D5 (requests for the gateway and for an unowned address go to the uplink only), D6 (a
/// probe goes to the uplink only, unanswered; a gratuitous ARP reaches the uplink), D7 (a
/// unicast request is plain L2).
fn arp(lab: &mut Lab) -> Result<Vec<Row>> {
    let vm = lab.topo.vms[0].clone();
    let peer = lab.topo.vms[1].clone();
    let ns = vm.netns.clone();
    let (gw_answered, w) = lab.window(|lab| {
        let answered = arping(lab, &ns, &GATEWAY_V4.to_string())?;
        arping(lab, &ns, &UNOWNED_V4.to_string())?;
        Ok(answered)
    })?;
    let mut problems = Vec::new();
    for tpa in [GATEWAY_V4, UNOWNED_V4] {
        let pred = arp_request(vm.mac, tpa);
        if lab.received(GATEWAY_NS, w, &pred)? == 0 {
            problems.push(format!("gateway did not get the request for {tpa}"));
        }
        let vms = lab.vms_receiving(w, &pred)?;
        if !vms.is_empty() {
            problems.push(format!("{} got the request for {tpa}", list(vms)));
        }
    }
    if !gw_answered {
        problems.push("no reply from the gateway".into());
    }
    let text = format!(
        "arping {GATEWAY_V4} answered, arping {UNOWNED_V4} reached the gateway; no VM saw either"
    );
    let case = "ARP request for the gateway / an unowned IP: uplink only";
    let mut rows = vec![Row::new(
        "D5",
        case,
        vm.name(),
        Expect::Delivered,
        verdict(problems, text),
    )];

    let own = vm.dhcp_v4;
    let (probe_answered, w) = lab.window(|lab| {
        let answered = arping(lab, &ns, &format!("-0 {own}"))?;
        arping(lab, &ns, &format!("-U -S {own} {own}"))?;
        Ok(answered)
    })?;
    let probe = |f: &Frame| {
        f.arp()
            .is_some_and(|a| a.op == 1 && a.sha == vm.mac && a.spa.is_unspecified() && a.tpa == own)
    };
    let garp = |f: &Frame| {
        f.arp()
            .is_some_and(|a| a.sha == vm.mac && a.spa == own && a.tpa == own)
    };
    let mut problems = Vec::new();
    if lab.received(GATEWAY_NS, w, &probe)? == 0 {
        problems.push("gateway did not get the probe".into());
    }
    let vms = lab.vms_receiving(w, &probe)?;
    if !vms.is_empty() {
        problems.push(format!("{} got the probe", list(vms)));
    }
    if probe_answered {
        problems.push("the probe was answered".into());
    }
    if lab.received(GATEWAY_NS, w, &garp)? == 0 {
        problems.push("gateway did not get the gratuitous ARP".into());
    }
    let text = "probe reached the gateway only, unanswered, not reflected; \
                gratuitous ARP reached the gateway";
    let case = "ARP probe (arping -0) and gratuitous ARP (arping -U)";
    rows.push(Row::new(
        "D6",
        case,
        vm.name(),
        Expect::Delivered,
        verdict(problems, text.into()),
    ));

    let args = format!("-t {} {}", peer.mac, peer.dhcp_v4);
    let (answered, w) = lab.window(|lab| arping(lab, &ns, &args))?;
    let unicast =
        |f: &Frame| f.dst == peer.mac && f.arp().is_some_and(|a| a.op == 1 && a.sha == vm.mac);
    let got = lab.received(&peer.netns, w, &unicast)?;
    let outcome = if answered && got > 0 {
        Ok(format!("{} got it and answered", peer.name()))
    } else {
        Err(format!("{} got {got}, answered: {answered}", peer.name()))
    };
    rows.push(Row::new(
        "D7",
        "unicast ARP request (arping -t MAC)",
        vm.name(),
        Expect::Delivered,
        outcome,
    ));
    Ok(rows)
}

/// D10: the gateway's ARP request for a VM reaches only that VM (direct) or is answered by
/// the switch (responder); one for an unowned address reaches no VM; its gratuitous ARP
/// reaches every VM.
fn uplink_arp(lab: &mut Lab) -> Result<Row> {
    let vm = lab.topo.vms[0].clone();
    let (answered, w) = lab.window(|lab| {
        let answered = arping(lab, GATEWAY_NS, &vm.dhcp_v4.to_string())?;
        arping(lab, GATEWAY_NS, &UNOWNED_V4.to_string())?;
        arping(lab, GATEWAY_NS, &format!("-U -S {GATEWAY_V4} {GATEWAY_V4}"))?;
        Ok(answered)
    })?;
    let mut problems = Vec::new();
    let to_vm = lab.vms_receiving(w, &arp_request(GATEWAY_MAC, vm.dhcp_v4))?;
    let (expected, how) = match lab.topo.arp_mode {
        ArpMode::Direct => (vec![vm.name()], format!("reached only {}", vm.name())),
        ArpMode::Responder => (Vec::new(), "was answered by the switch".to_string()),
    };
    if to_vm != expected {
        problems.push(format!(
            "request for {} reached [{}]",
            vm.dhcp_v4,
            list(&to_vm)
        ));
    }
    if !answered {
        problems.push(format!("request for {} unanswered", vm.dhcp_v4));
    }
    let unowned = lab.vms_receiving(w, &arp_request(GATEWAY_MAC, UNOWNED_V4))?;
    if !unowned.is_empty() {
        problems.push(format!(
            "request for {UNOWNED_V4} reached {}",
            list(unowned)
        ));
    }
    let garp = |f: &Frame| {
        f.arp()
            .is_some_and(|a| a.sha == GATEWAY_MAC && a.spa == GATEWAY_V4 && a.tpa == GATEWAY_V4)
    };
    let garp_vms = lab.vms_receiving(w, &garp)?;
    if garp_vms.len() != lab.topo.vms.len() {
        problems.push(format!("gratuitous ARP reached only [{}]", list(garp_vms)));
    }
    let text = format!(
        "request for {} {how}; for {UNOWNED_V4} reached no VM; gratuitous ARP reached all {} VMs",
        vm.dhcp_v4,
        lab.topo.vms.len()
    );
    let case = "uplink ARP: for a VM, for an unowned IP, gratuitous";
    Ok(Row::new(
        "D10",
        case,
        "-",
        Expect::Delivered,
        verdict(problems, text),
    ))
}

/// D11: QEMU's announce-self RARP from a VM's own MAC reaches the uplink.
fn rarp(lab: &mut Lab) -> Result<Row> {
    let vm = lab.topo.vms[0].clone();
    let ((), w) = lab.window(|lab| lab.inject(&vm.netns, &[frames::rarp_announce(vm.mac.0)], 1))?;
    let pred = |f: &Frame| matches!(f.net, Net::Rarp(a) if a.op == 3 && a.sha == vm.mac);
    let outcome = if lab.received(GATEWAY_NS, w, &pred)? > 0 {
        Ok("the gateway got it".into())
    } else {
        Err("the gateway did not get it".into())
    };
    let case = "RARP announce (as QEMU sends after migration)";
    Ok(Row::new("D11", case, vm.name(), Expect::Delivered, outcome))
}

/// D8: an unsolicited NA for the VM's own address to ff02::1 (thc-ipv6 fake_advertise6 with
/// the VM's own MAC: legitimate) reaches the other VMs and the gateway.
fn unsolicited_na(lab: &mut Lab) -> Result<Row> {
    let vm = lab.topo.vms[0].clone();
    let own = vm.slaac_v6;
    let ((), w) = lab.window(|lab| {
        lab.sh_ok(
            &vm.netns,
            &format!("atk6-fake_advertise6 -n 1 {GUEST_IF} {own}"),
        )?;
        Ok(())
    })?;
    let pred = |f: &Frame| {
        f.src == vm.mac
            && f.icmp6()
                .is_some_and(|(k, t, _)| k == 136 && t == Some(own))
    };
    let mut missing = Vec::new();
    for peer in lab.topo.vms.iter().filter(|p| p.index != vm.index) {
        if lab.received(&peer.netns, w, &pred)? == 0 {
            missing.push(peer.name());
        }
    }
    if lab.received(GATEWAY_NS, w, &pred)? == 0 {
        missing.push("gw".into());
    }
    let outcome = if missing.is_empty() {
        Ok(format!("NA for {own} reached every VM and the gateway"))
    } else {
        Err(format!("not received by {}", list(missing)))
    };
    let case = "unsolicited NA for its own address (fake_advertise6)";
    Ok(Row::new("D8", case, vm.name(), Expect::Delivered, outcome))
}
