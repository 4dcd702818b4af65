//! The attacks (SPEC "must be dropped"), launched one at a time from the attacker VM with Debian
//! attack tools where one exists and hand-built frames (vmguard::frames, sent by tcpreplay)
//! where none does; each is judged on the victims: captures, neighbor caches, routes, leases.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use vmguard::frames::{self, Mac};
use vmguard::model::MacAddr;
use vmguard::pipeline::IfaceKey;

use super::capture::{Frag, Frame, Net, L4};
use super::setup::{addresses_v6, default_router_v6, dhcp4, start_dhcp6, wait_dhcp6};
use super::table::{Expect, Row};
use super::topology::{
    Vm, FOREIGN_MAC, GATEWAY_MAC, GATEWAY_NS, GATEWAY_V4, GATEWAY_V6, GUEST_IF, REMOTE_V4,
    REMOTE_V6, ROGUE_POOL_V4, ROGUE_PREFIX_V6, STRAY_MAC, STRAY_NS, UNOWNED_V4, UNOWNED_V6,
};
use super::{drop_delta, gateway_lla, list, progress, Lab};

/// A frame predicate that outlives the attack's setup.
type Pred = Box<dyn Fn(&Frame) -> bool>;

/// What an attack sends and what of it must never reach a victim.
struct Attack {
    spec: &'static str,
    case: String,
    /// The attack's frames, counted on the sender's own capture (which holds nothing else of
    /// the kind): proof it was launched.
    sent: Pred,
    /// The attack's frames as a victim would see them. Frames from a victim's or the gateway's
    /// own MAC are their legitimate traffic and not counted, unless the attack impersonates
    /// that MAC. Later fragments (no upper-layer header) are not counted either: they pass by
    /// design and cannot be reassembled without their first fragment.
    harmful: Pred,
    impersonates: bool,
}

impl Attack {
    fn new(
        spec: &'static str,
        case: &str,
        pred: impl Fn(&Frame) -> bool + Clone + 'static,
    ) -> Attack {
        let harmful = pred.clone();
        Attack {
            spec,
            case: case.to_string(),
            sent: Box::new(pred),
            harmful: Box::new(move |f| f.frag() != Frag::Later && harmful(f)),
            impersonates: false,
        }
    }

    /// Frames from a victim's own MAC count too: the attack forges it.
    fn impersonating(mut self) -> Attack {
        self.impersonates = true;
        self
    }
}

/// The attacker and its first victim, for the attack builders.
#[derive(Clone)]
struct Ctx {
    att: Vm,
    a: MacAddr,
    victim: Vm,
}

impl Ctx {
    fn owns_v6(&self, ip: Ipv6Addr) -> bool {
        self.att.ipv6().contains(&ip) || self.att.mac.eui64_link_local() == ip
    }
}

pub fn run(lab: &mut Lab) -> Result<Vec<Row>> {
    let ctx = Ctx {
        att: lab.topo.attacker().clone(),
        a: lab.topo.attacker().mac,
        victim: lab.topo.vms[0].clone(),
    };
    let mut rows = Vec::new();
    rows.extend(arp(lab, &ctx)?);
    rows.extend(ip_spoof(lab, &ctx)?);
    rows.extend(layer2(lab, &ctx)?);
    rows.extend(router_adverts(lab, &ctx)?);
    rows.extend(neighbor_discovery(lab, &ctx)?);
    rows.extend(redirects(lab, &ctx)?);
    rows.extend(dhcp(lab, &ctx)?);
    rows.push(unguarded_port(lab)?);
    Ok(rows)
}

/// Launches one attack from the attacker VM and judges it; `go` launches it and may return
/// an extra verdict on the victims (a lease, an address).
fn launch(
    lab: &mut Lab,
    attack: Attack,
    go: impl FnOnce(&mut Lab) -> Result<Result<String, String>>,
) -> Result<Row> {
    let att = lab.topo.attacker().clone();
    let key = lab.key(&att)?;
    judge(lab, (&att.name(), &att.netns), key, attack, go)
}

/// Runs `go` from `sender` (name, namespace; its drops counted under `key`) and builds the row:
/// the attack must have left the sender, reached no victim (nor the gateway), been counted by
/// vmguard's drop flows, and left every victim's neighbor cache, routes and addresses as they
/// were.
fn judge(
    lab: &mut Lab,
    (sender, sender_ns): (&str, &str),
    key: IfaceKey,
    attack: Attack,
    go: impl FnOnce(&mut Lab) -> Result<Result<String, String>>,
) -> Result<Row> {
    progress(&format!("attack: {}", attack.case));
    let before = lab.drops(key)?;
    let (extra, w) = lab.window(go)?;
    let after = lab.drops(key)?;
    let sent = lab.sent(sender_ns, w, &*attack.sent)?;
    let bystanders: Vec<MacAddr> = lab
        .topo
        .victims()
        .iter()
        .map(|v| v.mac)
        .chain([GATEWAY_MAC])
        .collect();
    let arrived =
        |f: &Frame| (attack.harmful)(f) && (attack.impersonates || !bystanders.contains(&f.src));
    let later = |f: &Frame| (attack.sent)(f) && f.frag() == Frag::Later;
    let mut reached = Vec::new();
    let mut later_passed = 0;
    let watched = receivers(lab);
    for (name, ns) in &watched {
        let n = lab.received(ns, w, &arrived)?;
        if n > 0 {
            reached.push(format!("{name} got {n}"));
        }
        later_passed += lab.received(ns, w, &later)?;
    }
    let (dropped, reasons) = drop_delta(&before, &after);
    let mut problems = Vec::new();
    if sent == 0 {
        problems.push("the attack sent nothing (not exercised)".to_string());
    }
    if !reached.is_empty() {
        problems.push(format!("reached victims: {}", list(&reached)));
    }
    if dropped == 0 {
        problems.push("vmguard counted no drop".to_string());
    }
    problems.extend(victim_state(lab)?);
    let extra = extra.unwrap_or_else(|e| {
        problems.push(e);
        String::new()
    });
    let outcome = if problems.is_empty() {
        let names = list(watched.iter().map(|(name, _)| name));
        let mut evidence = format!("sent {sent}, reached none of {names}; dropped {reasons}");
        if later_passed > 0 {
            evidence.push_str(&format!(
                " ({later_passed} later fragments passed: nothing to reassemble)"
            ));
        }
        if !extra.is_empty() {
            evidence.push_str("; ");
            evidence.push_str(&extra);
        }
        Ok(evidence + "; victims' neighbors and routes intact")
    } else {
        let reasons = if reasons.is_empty() {
            "nothing".into()
        } else {
            reasons
        };
        Err(format!(
            "{} [sent {sent}, dropped {reasons}]",
            problems.join("; ")
        ))
    };
    Ok(Row::new(
        attack.spec,
        attack.case,
        sender,
        Expect::Blocked,
        outcome,
    ))
}

/// The namespaces whose captures must stay clean: every victim and the gateway.
fn receivers(lab: &Lab) -> Vec<(String, String)> {
    lab.topo
        .victims()
        .iter()
        .map(|v| (v.name(), v.netns.clone()))
        .chain([("gw".to_string(), GATEWAY_NS.to_string())])
        .collect()
}

/// What an attack may have changed on the victims: neighbor entries pointing an address at a
/// MAC that does not own it, routers, routes and addresses that are not the gateway's, failed
/// DAD. Empty when all is as it should be.
fn victim_state(lab: &Lab) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let att = lab.topo.attacker().mac;
    for (name, ns) in receivers(lab) {
        for n in lab.ip_json(&ns, &["neigh", "show", "dev", GUEST_IF])? {
            let (Some(dst), Some(mac)) = (
                n["dst"].as_str().and_then(|s| s.parse::<IpAddr>().ok()),
                n["lladdr"].as_str().and_then(|s| s.parse::<MacAddr>().ok()),
            ) else {
                continue;
            };
            let wrong = match lab.owner_mac(dst) {
                Some(owner) => owner != mac,
                None => mac == att || mac == FOREIGN_MAC,
            };
            if wrong {
                problems.push(format!("{name}: neighbor {dst} is-at {mac}"));
            }
        }
        if ns == GATEWAY_NS {
            continue;
        }
        let routers = default_router_v6(lab, &ns)?;
        if routers != [gateway_lla()] {
            problems.push(format!("{name}: IPv6 default routers [{}]", list(&routers)));
        }
        let gw4 = route_gateway(lab, &ns, &REMOTE_V4.to_string())?;
        if gw4 != Some(IpAddr::V4(GATEWAY_V4)) {
            problems.push(format!("{name}: {REMOTE_V4} routed via {gw4:?}"));
        }
        let gw6 = route_gateway(lab, &ns, &REMOTE_V6.to_string())?;
        if gw6 != Some(IpAddr::V6(gateway_lla())) {
            problems.push(format!("{name}: {REMOTE_V6} routed via {gw6:?}"));
        }
        for r in lab.ip_json(&ns, &["-6", "route", "show"])? {
            let dst = r["dst"].as_str().unwrap_or_default();
            if dst
                .split('/')
                .next()
                .and_then(|d| d.parse().ok())
                .is_some_and(in_rogue_prefix)
            {
                problems.push(format!("{name}: route to {dst}"));
            }
        }
        for (a, _, failed) in addresses_v6(lab, &ns)? {
            if in_rogue_prefix(a) {
                problems.push(format!("{name}: address {a} from a rogue prefix"));
            }
            if failed {
                problems.push(format!("{name}: {a} failed DAD"));
            }
        }
    }
    Ok(problems)
}

fn in_rogue_prefix(a: Ipv6Addr) -> bool {
    a.segments()[..4] == ROGUE_PREFIX_V6.segments()[..4]
}

/// The next hop `ip route get` reports for `dst` in `ns` (`None` when on-link).
fn route_gateway(lab: &Lab, ns: &str, dst: &str) -> Result<Option<IpAddr>> {
    Ok(lab
        .ip_json(ns, &["route", "get", dst])?
        .first()
        .and_then(|r: &Value| r["gateway"].as_str())
        .and_then(|g| g.parse().ok()))
}

/// Runs an attack tool's command line in the attacker VM to completion (its exit status does
/// not matter: what counts is what it sent and what arrived).
fn tool(lab: &Lab, line: &str) -> Result<()> {
    lab.sh(&lab.topo.attacker().netns, line).map(drop)
}

/// Runs command lines in the attacker VM at once, to completion.
fn tools(lab: &Lab, lines: &[String]) -> Result<()> {
    let ns = &lab.topo.attacker().netns;
    let cmds: Vec<(String, String)> = lines.iter().map(|l| (ns.clone(), l.clone())).collect();
    lab.host.parallel(&cmds).map(drop)
}

/// Starts an attack tool that runs until stopped in the attacker VM; returns its pid.
fn start(lab: &mut Lab, line: &str) -> Result<u32> {
    let ns = lab.topo.attacker().netns.clone();
    let argv: Vec<&str> = line.split_whitespace().collect();
    let log = format!("attack-{}-{}", argv[0], lab.new_serial());
    lab.host.spawn_in(&ns, &argv, &log)
}

/// Runs an attack tool that repeats until stopped for `secs` seconds, then stops it.
fn tool_for(lab: &mut Lab, line: &str, secs: f64) -> Result<()> {
    let pid = start(lab, line)?;
    lab.host.sleep(Duration::from_secs_f64(secs))?;
    lab.host.stop(&[pid]);
    Ok(())
}

/// Sends hand-built frames from the attacker VM.
fn inject(lab: &mut Lab, frames: &[frames::Frame], loops: usize) -> Result<()> {
    let ns = lab.topo.attacker().netns.clone();
    lab.inject(&ns, frames, loops)
}

/// No verdict of its own: the row rests on captures, drop counters and the victims' state.
fn done() -> Result<Result<String, String>> {
    Ok(Ok(String::new()))
}

/// An NS or NA frame's fields: (type, source, target, link-layer address option).
fn nd(f: &Frame) -> Option<(u8, Ipv6Addr, Option<Ipv6Addr>, Option<MacAddr>)> {
    let (kind, target, lla) = f.icmp6().filter(|(k, _, _)| matches!(k, 135 | 136))?;
    Some((kind, f.src_v6()?, target, lla))
}

/// X3: ARP poisoning with dsniff's arpspoof (the paper's Listing 1 attack and its reverse),
/// arping with a spoofed sender IP and a gratuitous claim, a foreign sender MAC, RARP.
fn arp(lab: &mut Lab, c: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (a, att_ip, v) = (c.a, c.att.dhcp_v4, c.victim.clone());
    let victims: Vec<Vm> = lab.topo.victims().to_vec();
    let attack = Attack::new(
        "X3",
        "arpspoof -r: claims the gateway's IP to each victim (Listing 1) and theirs to it",
        move |f| f.arp().is_some_and(|p| p.op == 2 && p.spa != att_ip),
    );
    rows.push(launch(lab, attack, |lab| {
        let mut pids = Vec::new();
        for v in &victims {
            let line = format!("arpspoof -i {GUEST_IF} -t {} -r {GATEWAY_V4}", v.dhcp_v4);
            pids.push(start(lab, &line)?);
        }
        lab.host.sleep(Duration::from_secs(2))?;
        // On SIGTERM arpspoof "restores" the caches for 5 s: more forged replies.
        lab.host.stop(&pids);
        Ok(Ok("victims' and gateway's ARP caches unchanged".into()))
    })?);
    let attack = Attack::new(
        "X3",
        "arping -S: requests with the gateway's IP as sender",
        |f| f.arp().is_some_and(|p| p.spa == GATEWAY_V4),
    );
    rows.push(launch(lab, attack, |lab| {
        let line = format!(
            "arping -S {GATEWAY_V4} -c 3 -W 0.1 -w 0.5 -i {GUEST_IF} {}",
            v.dhcp_v4
        );
        tool(lab, &line)?;
        done()
    })?);
    let vip = v.dhcp_v4;
    let attack = Attack::new(
        "X3",
        "arping -U: gratuitous ARP claiming a victim's IP",
        move |f| f.arp().is_some_and(|p| p.spa == vip),
    );
    rows.push(launch(lab, attack, |lab| {
        tool(
            lab,
            &format!("arping -U -S {vip} -c 3 -W 0.1 -w 0.5 -i {GUEST_IF} {vip}"),
        )?;
        done()
    })?);
    let attack = Attack::new(
        "X3",
        "ARP with a foreign sender MAC, own IP (crafted)",
        |f| f.arp().is_some_and(|p| p.sha == FOREIGN_MAC),
    );
    let reply = frames::Arp {
        op: 2,
        sha: FOREIGN_MAC.0,
        spa: att_ip,
        tha: v.mac.0,
        tpa: v.dhcp_v4,
    };
    let request = frames::Arp {
        op: 1,
        tha: [0; 6],
        ..reply
    };
    let forged = [
        frames::arp(v.mac.0, a.0, &reply),
        frames::arp(frames::BROADCAST, a.0, &request),
    ];
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &forged, 2)?;
        done()
    })?);
    let attack = Attack::new(
        "X3",
        "RARP announcing a foreign MAC (crafted)",
        |f| matches!(f.net, Net::Rarp(p) if p.sha == FOREIGN_MAC),
    );
    let mut rarp = frames::rarp_announce(FOREIGN_MAC.0);
    rarp.0[6..12].copy_from_slice(&a.0);
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &[rarp], 2)?;
        done()
    })?);
    Ok(rows)
}

/// X2: IPv4 and IPv6 from addresses the attacker does not own (an unowned one, a victim's)
/// sent by the attacker's own kernel with `ping -I`, and from 0.0.0.0 / `::`.
fn ip_spoof(lab: &mut Lab, c: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (a, v) = (c.a, c.victim.clone());
    for (case, src) in [
        (
            "ping -I from an IPv4 address nobody owns",
            IpAddr::V4(UNOWNED_V4),
        ),
        (
            "ping -I from a victim's IPv4 address",
            IpAddr::V4(v.dhcp_v4),
        ),
        (
            "ping -I from an IPv6 address nobody owns",
            IpAddr::V6(UNOWNED_V6),
        ),
        (
            "ping -I from a victim's SLAAC address",
            IpAddr::V6(v.slaac_v6),
        ),
    ] {
        let attack = Attack::new("X2", case, move |f| match src {
            IpAddr::V4(s) => f.src_v4() == Some(s) || f.arp().is_some_and(|p| p.spa == s),
            IpAddr::V6(s) => f.src_v6() == Some(s),
        });
        let (addr, targets) = match src {
            IpAddr::V4(_) => (
                format!("{src}/32"),
                [IpAddr::V4(GATEWAY_V4), IpAddr::V4(v.dhcp_v4)],
            ),
            IpAddr::V6(_) => (
                format!("{src}/128 nodad"),
                [IpAddr::V6(GATEWAY_V6), IpAddr::V6(v.slaac_v6)],
            ),
        };
        rows.push(launch(lab, attack, |lab| {
            tool(lab, &format!("ip addr add {addr} dev {GUEST_IF}"))?;
            let pings = targets.map(|t| format!("ping -c 1 -W 1 -q -I {src} {t}"));
            tools(lab, &pings)?;
            tool(lab, &format!("ip addr del {src} dev {GUEST_IF}"))?;
            done()
        })?);
    }
    let attack = Attack::new(
        "X2",
        "IPv4 and IPv6 from 0.0.0.0 / :: outside DHCP, DAD, MLD, RS (crafted)",
        |f| {
            f.src_v4() == Some(Ipv4Addr::UNSPECIFIED)
                || (f.src_v6() == Some(Ipv6Addr::UNSPECIFIED)
                    && !f
                        .icmp6_kind()
                        .is_some_and(|k| [131, 133, 135, 143].contains(&k)))
        },
    );
    let (z4, z6) = (Ipv4Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED);
    let udp = frames::udp_v4(z4, v.dhcp_v4, 5000, 5000, b"vmguard-lab");
    let echo = frames::icmp_v4(8, 0, &[0, 1, 0, 1]);
    let h6 = frames::Ipv6 {
        src: z6,
        dst: v.lla(),
        next_header: frames::IPPROTO_ICMPV6,
        hop_limit: 64,
    };
    let unspecified = [
        frames::ipv4_frame(
            v.mac.0,
            a.0,
            &frames::Ipv4::new(z4, v.dhcp_v4, frames::IPPROTO_UDP),
            &udp,
        ),
        frames::ipv4_frame(
            GATEWAY_MAC.0,
            a.0,
            &frames::Ipv4::new(z4, GATEWAY_V4, frames::IPPROTO_ICMP),
            &echo,
        ),
        frames::ipv6_frame(
            v.mac.0,
            a.0,
            &h6,
            &frames::icmpv6(z6, v.lla(), 128, 0, &[0, 1, 0, 1]),
        ),
    ];
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &unspecified, 2)?;
        done()
    })?);
    Ok(rows)
}

/// X1 and X8: a foreign MAC and a victim's MAC set with `ip link set address`, 802.1Q-tagged
/// ARP from arping (this kernel has no 802.1Q module for `ip link add type vlan`), stacked
/// 802.1ad tags and other ethertypes.
fn layer2(lab: &mut Lab, c: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (a, att, v) = (c.a, c.att.clone(), c.victim.clone());
    let set_mac = |mac: MacAddr| format!("ip link set dev {GUEST_IF} address {mac}");
    let attack = Attack::new(
        "X1",
        "ip link set address to a foreign MAC, then ping",
        |f| f.src == FOREIGN_MAC,
    );
    rows.push(launch(lab, attack, |lab| {
        tool(lab, &set_mac(FOREIGN_MAC))?;
        tools(
            lab,
            &[
                format!("ping -c 1 -W 1 -q {GATEWAY_V4}"),
                format!("ping -6 -c 1 -W 1 -q {GATEWAY_V6}"),
            ],
        )?;
        tool(lab, &set_mac(a))?;
        done()
    })?);
    let (att_v4, att_v6, vmac) = (att.ipv4(), att.ipv6(), v.mac);
    let attack = Attack::new(
        "X1",
        "ip link set address to a victim's MAC, then ping",
        move |f| {
            f.src == vmac
                && (f.arp().is_some_and(|p| att_v4.contains(&p.spa))
                    || f.src_v4().is_some_and(|s| att_v4.contains(&s))
                    || f.src_v6().is_some_and(|s| att_v6.contains(&s))
                    || f.carries(b"vmgvmg"))
        },
    )
    .impersonating();
    rows.push(launch(lab, attack, |lab| {
        tool(lab, &set_mac(v.mac))?;
        tool(
            lab,
            &format!("ping -c 2 -i 0.2 -W 1 -q -p 766d67766d67 {GATEWAY_V4}"),
        )?;
        tool(lab, &set_mac(a))?;
        let reach = lab.sh(GATEWAY_NS, &format!("ping -c 1 -W 2 -q {}", v.dhcp_v4))?;
        Ok(if reach.status.success() {
            Ok(format!(
                "the gateway still reaches {} (no MAC hijack)",
                v.name()
            ))
        } else {
            Err(format!("the gateway no longer reaches {}", v.name()))
        })
    })?);
    let attack = Attack::new(
        "X8",
        "arping -V 10 / -V 0: 802.1Q-tagged and priority-tagged ARP",
        |f| f.tags >= 1,
    );
    rows.push(launch(lab, attack, |lab| {
        let tagged = ["10", "0"].map(|vid| {
            format!(
                "arping -V {vid} -c 2 -W 0.1 -w 0.4 -i {GUEST_IF} {}",
                v.dhcp_v4
            )
        });
        tools(lab, &tagged)?;
        done()
    })?);
    let attack = Attack::new(
        "X8",
        "stacked 802.1ad + 802.1Q tags: ARP and ping (crafted)",
        |f| f.tags >= 2,
    );
    let tags = [(0x88a8, 100), (0x8100, 10)];
    let who_has = frames::Arp {
        op: 1,
        sha: a.0,
        spa: att.dhcp_v4,
        tha: [0; 6],
        tpa: v.dhcp_v4,
    };
    let arp = frames::arp(frames::BROADCAST, a.0, &who_has);
    let echo = frames::ipv4_packet(
        &frames::Ipv4::new(att.dhcp_v4, v.dhcp_v4, frames::IPPROTO_ICMP),
        &frames::icmp_v4(8, 0, &[0, 1, 0, 1]),
    );
    let stacked = [
        frames::ethernet_tagged(
            frames::BROADCAST,
            a.0,
            &tags,
            frames::ETHERTYPE_ARP,
            &arp.bytes()[14..42],
        ),
        frames::ethernet_tagged(v.mac.0, a.0, &tags, frames::ETHERTYPE_IPV4, &echo),
    ];
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &stacked, 2)?;
        done()
    })?);
    let attack = Attack::new(
        "X8",
        "other ethertypes: IPX, LLDP, local experimental (crafted)",
        |f| f.tags == 0 && ![0x0800, 0x86dd, 0x0806, 0x8035].contains(&f.ethertype),
    );
    let lldp: Mac = [0x01, 0x80, 0xc2, 0, 0, 0x0e];
    let others = [
        frames::ethernet(frames::BROADCAST, a.0, 0x8137, &[0xff; 30]),
        frames::ethernet(lldp, a.0, 0x88cc, &[2, 7, 4, 0x52, 0x54, 0, 0x77, 0, 9]),
        frames::ethernet(frames::BROADCAST, a.0, 0x88b5, b"vmguard-lab"),
    ];
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &others, 2)?;
        done()
    })?);
    Ok(rows)
}

/// An RA, or an IPv6 fragment that may carry one, or a packet whose header chain is cut.
fn ra_like(f: &Frame) -> bool {
    matches!(&f.net, Net::V6 { frag, l4, .. }
        if *frag != Frag::No || matches!(l4, L4::Icmp6 { kind: 134, .. } | L4::Missing))
}

/// X4: rogue RAs with thc-ipv6's fake_router26 and its RA-guard evasions, a spoofed router
/// with lifetime 0, hand-built fragments hiding an RA, and an IPv4 router advertisement.
fn router_adverts(lab: &mut Lab, c: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (a, att) = (c.a, c.att.clone());
    let gw_lla = gateway_lla();
    let variants = [
        (
            "fake_router26: rogue RA with prefix 2001:db8:66::/64",
            String::new(),
        ),
        (
            "fake_router26 -E H: RA behind a hop-by-hop header",
            "-E H".into(),
        ),
        (
            "fake_router26 -E D: RA behind a large destination header, fragmented",
            "-E D".into(),
        ),
        (
            "fake_router26 -E 1: RA in an atomic fragment",
            "-E 1".into(),
        ),
        (
            "fake_router26 -E o: RA in overlapping fragments (Linux keeps the last)",
            "-E o".into(),
        ),
        (
            "fake_router26 -s gateway -l 0: spoofed router lifetime 0",
            format!("-s {gw_lla} -l 0"),
        ),
    ];
    for (case, extra) in variants {
        let line =
            format!("atk6-fake_router26 -A {ROGUE_PREFIX_V6}/64 -n 2 -i 0 {extra} {GUEST_IF}");
        rows.push(launch(lab, Attack::new("X4", case, ra_like), |lab| {
            tool(lab, &line)?;
            done()
        })?);
    }
    let all_nodes: Ipv6Addr = "ff02::1".parse()?;
    let body = frames::nd_ra_body(Some((ROGUE_PREFIX_V6, 64)), Some(a.0));
    let ra = frames::icmpv6(att.lla(), all_nodes, 134, 0, &body);
    let h = frames::Ipv6 {
        src: att.lla(),
        dst: all_nodes,
        next_header: frames::IPPROTO_ICMPV6,
        hop_limit: 255,
    };
    let hidden = [frames::ext_options(frames::IPPROTO_ICMPV6, 2), ra].concat();
    let cut: Vec<frames::Frame> =
        frames::ipv6_fragments(&h, frames::IPPROTO_DSTOPTS, &hidden, 8, 0x766d)
            .iter()
            .map(|p| {
                frames::ethernet(
                    frames::ipv6_multicast_mac(all_nodes),
                    a.0,
                    frames::ETHERTYPE_IPV6,
                    p,
                )
            })
            .collect();
    let attack = Attack::new(
        "X4",
        "RA whose first fragment cuts the header chain (crafted)",
        ra_like,
    );
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &cut, 1)?;
        done()
    })?);
    let attack = Attack::new("X4", "ICMPv4 router advertisement, IRDP (crafted)", |f| {
        matches!(
            f.net,
            Net::V4 {
                l4: L4::Icmp { kind: 9 },
                ..
            }
        )
    });
    // One router entry (address size 2 words), lifetime 1800 s, preference 0.
    let body = [&[1, 2, 0x07, 0x08][..], &att.dhcp_v4.octets(), &[0; 4]].concat();
    let all_hosts = Ipv4Addr::new(224, 0, 0, 1);
    let ip = frames::Ipv4::new(att.dhcp_v4, all_hosts, frames::IPPROTO_ICMP);
    let irdp = frames::ipv4_frame(
        [1, 0, 0x5e, 0, 0, 1],
        a.0,
        &ip,
        &frames::icmp_v4(9, 0, &body),
    );
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &[irdp], 2)?;
        done()
    })?);
    Ok(rows)
}

/// X5: forged NA (fake_advertise6, also behind a hop-by-hop header and in fragments), the
/// NS-answering parasite6, forged NS (fake_solicitate6 and hand-built) and a DAD DoS
/// (dos-new-ip6 and hand-built DAD NS and NA for a victim's tentative address).
fn neighbor_discovery(lab: &mut Lab, c: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (a, att, v) = (c.a, c.att.clone(), c.victim.clone());
    let (gw_lla, att_lla, v_lla) = (gateway_lla(), att.lla(), v.lla());
    let cc = c.clone();
    // An NA for a target the attacker does not own, or advertising a MAC that is not its own.
    let forged_na = move |f: &Frame| {
        nd(f).is_some_and(|(k, _, target, tll)| {
            k == 136 && (target.is_none_or(|t| !cc.owns_v6(t)) || tll.is_some_and(|m| m != cc.a))
        })
    };
    for (case, args) in [
        (
            "fake_advertise6: NA for the gateway's link-local with own MAC",
            format!("{gw_lla} {v_lla} {a} {att_lla}"),
        ),
        (
            "fake_advertise6: NA from and for the gateway's address to ff02::1",
            GATEWAY_V6.to_string(),
        ),
    ] {
        let line = format!("atk6-fake_advertise6 -n 2 -w 0 {GUEST_IF} {args}");
        rows.push(launch(
            lab,
            Attack::new("X5", case, forged_na.clone()),
            |lab| {
                tool(lab, &line)?;
                done()
            },
        )?);
    }
    // fake_advertise6 sends from the MAC it advertises (its -m option mangles the MAC: it sent
    // 00:54:00:77:00:04 for 52:54:00:77:00:04), so a hand-built NA covers the TLL check alone.
    let na_foreign_tll = frames::ipv6_frame(
        v.mac.0,
        a.0,
        &frames::Ipv6 {
            src: att_lla,
            dst: v_lla,
            next_header: frames::IPPROTO_ICMPV6,
            hop_limit: 255,
        },
        &frames::icmpv6(
            att_lla,
            v_lla,
            136,
            0,
            &frames::nd_na_body(att.slaac_v6, 0x20, Some(FOREIGN_MAC.0)),
        ),
    );
    let attack = Attack::new(
        "X5",
        "fake_advertise6 and a crafted NA: own address, foreign TLL",
        forged_na.clone(),
    );
    rows.push(launch(lab, attack, |lab| {
        tool(
            lab,
            &format!(
                "atk6-fake_advertise6 -n 2 -w 0 {GUEST_IF} {} {v_lla} {FOREIGN_MAC} {att_lla}",
                att.slaac_v6
            ),
        )?;
        inject(lab, &[na_foreign_tll], 2)?;
        done()
    })?);
    for (case, flag) in [
        (
            "fake_advertise6 -H: forged NA behind a hop-by-hop header",
            "-H",
        ),
        (
            "fake_advertise6 -D: forged NA behind a large destination header, fragmented",
            "-D",
        ),
    ] {
        let na = forged_na.clone();
        let pred = move |f: &Frame| na(f) || (f.src_v6().is_some() && f.frag() != Frag::No);
        let line = format!(
            "atk6-fake_advertise6 {flag} -n 2 -w 0 {GUEST_IF} {gw_lla} {v_lla} {a} {att_lla}"
        );
        rows.push(launch(lab, Attack::new("X5", case, pred), |lab| {
            tool(lab, &line)?;
            done()
        })?);
    }
    let victims: Vec<Vm> = lab.topo.victims().to_vec();
    let attack = Attack::new(
        "X5",
        "parasite6: answers every NS it sees, claiming a foreign MAC",
        forged_na,
    );
    rows.push(launch(lab, attack, |lab| {
        let pid = start(lab, &format!("atk6-parasite6 -l {GUEST_IF} {FOREIGN_MAC}"))?;
        lab.host.sleep(Duration::from_millis(700))?;
        // Make the victims ask: forget the attacker's addresses, then ping them.
        for vm in &victims {
            for target in [att.slaac_v6, att_lla] {
                lab.sh(
                    &vm.netns,
                    &format!("ip -6 neigh del {target} dev {GUEST_IF}"),
                )?;
            }
        }
        let pings: Vec<(String, String)> = victims
            .iter()
            .flat_map(|vm| [att.slaac_v6, att_lla].map(|t| (vm.netns.clone(), t)))
            .map(|(ns, t)| (ns, format!("ping -6 -c 1 -W 1 -q -I {GUEST_IF} {t}")))
            .collect();
        lab.host.parallel(&pings)?;
        lab.host.stop(&[pid]);
        Ok(Ok("victims resolved the attacker to its own MAC".into()))
    })?);
    let attack = Attack::new(
        "X5",
        "fake_solicitate6 and a crafted NS: foreign source link-layer address",
        |f| nd(f).is_some_and(|(k, _, _, sll)| k == 135 && sll == Some(FOREIGN_MAC)),
    );
    let sn = frames::solicited_node(v_lla);
    let ns_foreign_sll = frames::ipv6_frame(
        frames::ipv6_multicast_mac(sn),
        a.0,
        &frames::Ipv6 {
            src: att_lla,
            dst: sn,
            next_header: frames::IPPROTO_ICMPV6,
            hop_limit: 255,
        },
        &frames::icmpv6(
            att_lla,
            sn,
            135,
            0,
            &frames::nd_ns_body(v_lla, Some(FOREIGN_MAC.0)),
        ),
    );
    rows.push(launch(lab, attack, |lab| {
        // fake_solicitate6 repeats until stopped; it also sends from the MAC it advertises.
        tool_for(
            lab,
            &format!("atk6-fake_solicitate6 {GUEST_IF} {v_lla} {v_lla} {FOREIGN_MAC} {att_lla}"),
            1.0,
        )?;
        inject(lab, &[ns_foreign_sll], 2)?;
        done()
    })?);
    let attack = Attack::new(
        "X5",
        "fake_solicitate6: NS from the gateway's link-local",
        move |f| nd(f).is_some_and(|(k, src, _, _)| k == 135 && src == gw_lla),
    );
    rows.push(launch(lab, attack, |lab| {
        tool_for(
            lab,
            &format!("atk6-fake_solicitate6 {GUEST_IF} {v_lla} {v_lla} {a} {gw_lla}"),
            1.0,
        )?;
        done()
    })?);
    let cc = c.clone();
    let attack = Attack::new(
        "X5",
        "DAD DoS: dos-new-ip6 plus forged DAD NS/NA for a victim's new address",
        move |f| {
            nd(f).is_some_and(|(k, src, target, _)| {
                target.is_some_and(|t| !cc.owns_v6(t)) && (k == 136 || src.is_unspecified())
            })
        },
    );
    rows.push(launch(lab, attack, |lab| dad_dos(lab, c))?);
    Ok(rows)
}

/// The victim re-adds its DHCPv6 address (so DAD runs) while dos-new-ip6 listens for DAD
/// probes and forged DAD NS and NA for that address are sent; the address must survive.
fn dad_dos(lab: &mut Lab, c: &Ctx) -> Result<Result<String, String>> {
    let (a, v, att) = (c.a, c.victim.clone(), c.att.clone());
    let target = v.dhcp_v6;
    let sn = frames::solicited_node(target);
    let dad_ns = frames::ipv6_frame(
        frames::ipv6_multicast_mac(sn),
        a.0,
        &frames::Ipv6 {
            src: Ipv6Addr::UNSPECIFIED,
            dst: sn,
            next_header: frames::IPPROTO_ICMPV6,
            hop_limit: 255,
        },
        &frames::icmpv6(
            Ipv6Addr::UNSPECIFIED,
            sn,
            135,
            0,
            &frames::nd_ns_body(target, None),
        ),
    );
    let all_nodes: Ipv6Addr = "ff02::1".parse()?;
    let na = frames::ipv6_frame(
        frames::ipv6_multicast_mac(all_nodes),
        a.0,
        &frames::Ipv6 {
            src: att.lla(),
            dst: all_nodes,
            next_header: frames::IPPROTO_ICMPV6,
            hop_limit: 255,
        },
        &frames::icmpv6(
            att.lla(),
            all_nodes,
            136,
            0,
            &frames::nd_na_body(target, 0x20, Some(a.0)),
        ),
    );
    let file = lab.new_file("dad-dos", "pcap");
    std::fs::write(&file, super::write_pcap(&[dad_ns, na]))?;
    let dos = start(lab, &format!("atk6-dos-new-ip6 {GUEST_IF}"))?;
    let flood = start(
        lab,
        &format!(
            "tcpreplay -q --pps=40 --loop=40 -i {GUEST_IF} {}",
            file.display()
        ),
    )?;
    lab.host.sleep(Duration::from_millis(300))?;
    lab.sh_ok(
        &v.netns,
        &format!("ip -6 addr del {target}/128 dev {GUEST_IF}"),
    )?;
    lab.sh_ok(
        &v.netns,
        &format!("ip -6 addr add {target}/128 dev {GUEST_IF}"),
    )?;
    lab.host.sleep(Duration::from_millis(2000))?;
    lab.host.stop(&[dos, flood]);
    let state = addresses_v6(lab, &v.netns)?
        .into_iter()
        .find(|(x, _, _)| *x == target);
    Ok(match state {
        Some((_, false, false)) => Ok(format!("{} completed DAD for {target}", v.name())),
        other => Err(format!("{}: {target} after DAD: {other:?}", v.name())),
    })
}

/// X6: ICMPv6 redirect with thc-ipv6's redir6 (spoofing the router) and from the attacker's
/// own link-local; ICMPv4 redirects spoofing the gateway and from the attacker's own address.
fn redirects(lab: &mut Lab, c: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (a, v, att) = (c.a, c.victim.clone(), c.att.clone());
    // redir6 first makes the victim answer an echo "from" the target, then redirects.
    let redirect6 = |f: &Frame| f.icmp6_kind() == Some(137) || f.src_v6() == Some(REMOTE_V6);
    let attack = Attack::new(
        "X6",
        "redir6: ICMPv6 redirect to the attacker, spoofing the router",
        redirect6,
    );
    rows.push(launch(lab, attack, |lab| {
        let line = format!(
            "atk6-redir6 {GUEST_IF} {} {REMOTE_V6} {} {} {a}",
            v.slaac_v6,
            gateway_lla(),
            att.lla()
        );
        tool(lab, &line)?;
        Ok(Ok(format!(
            "{} routes {REMOTE_V6} via the gateway",
            v.name()
        )))
    })?);
    let redirect = frames::ipv6_frame(
        v.mac.0,
        a.0,
        &frames::Ipv6 {
            src: att.lla(),
            dst: v.lla(),
            next_header: frames::IPPROTO_ICMPV6,
            hop_limit: 255,
        },
        &frames::icmpv6(
            att.lla(),
            v.lla(),
            137,
            0,
            &frames::redirect_v6_body(att.lla(), REMOTE_V6),
        ),
    );
    let attack = Attack::new(
        "X6",
        "ICMPv6 redirect from its own link-local (crafted)",
        redirect6,
    );
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &[redirect], 2)?;
        done()
    })?);
    for (case, src) in [
        (
            "ICMPv4 redirect to the attacker, spoofing the gateway (crafted)",
            GATEWAY_V4,
        ),
        (
            "ICMPv4 redirect from its own address (crafted)",
            att.dhcp_v4,
        ),
    ] {
        let f = icmp4_redirect(src, &v, a, att.dhcp_v4);
        let attack = Attack::new("X6", case, |f| {
            matches!(
                f.net,
                Net::V4 {
                    l4: L4::Icmp { kind: 5 },
                    ..
                }
            )
        });
        rows.push(launch(lab, attack, |lab| {
            inject(lab, &[f], 2)?;
            Ok(Ok(format!(
                "{} routes {REMOTE_V4} via the gateway",
                v.name()
            )))
        })?);
    }
    Ok(rows)
}

/// An ICMPv4 host redirect from `src` telling `v` to reach `REMOTE_V4` via `new_gw`. The quoted
/// packet is an echo reply: Linux honours redirects quoting ICMP without looking for a socket.
pub fn icmp4_redirect(src: Ipv4Addr, v: &Vm, a: MacAddr, new_gw: Ipv4Addr) -> frames::Frame {
    let quoted = frames::ipv4_packet(
        &frames::Ipv4::new(v.dhcp_v4, REMOTE_V4, frames::IPPROTO_ICMP),
        &frames::icmp_v4(0, 0, &[0, 1, 0, 1]),
    );
    let body = [&new_gw.octets()[..], &quoted[..28]].concat();
    let ip = frames::Ipv4::new(src, v.dhcp_v4, frames::IPPROTO_ICMP);
    frames::ipv4_frame(v.mac.0, a.0, &ip, &frames::icmp_v4(5, 1, &body))
}

/// A DHCPv4 or DHCPv6 server message, or an IP fragment that may carry one.
fn dhcp_server_msg(f: &Frame) -> bool {
    (f.frag() != Frag::No && !matches!(f.net, Net::Other))
        || f.udp()
            .is_some_and(|(sp, dp)| sp == 67 || dp == 68 || sp == 547 || dp == 546)
}

/// X7: a rogue dnsmasq and fake_dhcps6 in the attacker while the victims take fresh leases;
/// forged OFFER/ACK and DHCPv6 replies from other source ports and in fragments.
fn dhcp(lab: &mut Lab, c: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (a, att, v) = (c.a, c.att.clone(), c.victim.clone());
    let offer = |msg: u8, sport: u16| {
        let m = frames::dhcpv4(2, msg, 0x766d_6701, v.mac.0, ROGUE_POOL_V4.0);
        let udp = frames::udp_v4(att.dhcp_v4, Ipv4Addr::BROADCAST, sport, 68, &m);
        let ip = frames::Ipv4::new(att.dhcp_v4, Ipv4Addr::BROADCAST, frames::IPPROTO_UDP);
        frames::ipv4_frame(frames::BROADCAST, a.0, &ip, &udp)
    };
    let forged = [offer(2, 67), offer(5, 67)];
    let attack = Attack::new(
        "X7",
        "rogue DHCPv4 server: dnsmasq in the attacker, forged OFFER/ACK",
        dhcp_server_msg,
    );
    rows.push(launch(lab, attack, |lab| {
        let log = lab.new_file("rogue-dnsmasq", "log");
        let line = format!(
            "dnsmasq --conf-file=/dev/null --keep-in-foreground --port=0 --no-resolv --no-hosts \
             --bind-interfaces --interface={GUEST_IF} --dhcp-authoritative --log-dhcp \
             --dhcp-range={},{},1h --dhcp-option=option:router,{} --dhcp-leasefile={} \
             --pid-file={} --log-facility={}",
            ROGUE_POOL_V4.0,
            ROGUE_POOL_V4.1,
            att.dhcp_v4,
            lab.new_file("rogue-dnsmasq", "leases").display(),
            lab.new_file("rogue-dnsmasq", "pid").display(),
            log.display()
        );
        let pid = start(lab, &line)?;
        lab.host.sleep(Duration::from_millis(300))?;
        inject(lab, &forged, 2)?;
        let leases = fresh_leases4(lab)?;
        lab.host.stop(&[pid]);
        let seen = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("DHCPDISCOVER")
            .count();
        Ok(leases.map(|l| {
            format!("{l}; the rogue dnsmasq saw {seen} DISCOVERs (they go to the uplink only)")
        }))
    })?);
    let odd = [offer(2, 6767)];
    let attack = Attack::new(
        "X7",
        "DHCPv4 OFFER from source port 6767 to port 68 (crafted)",
        dhcp_server_msg,
    );
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &odd, 2)?;
        done()
    })?);
    let m = frames::dhcpv4(2, 2, 0x766d_6702, v.mac.0, ROGUE_POOL_V4.0);
    let udp = frames::udp_v4(att.dhcp_v4, Ipv4Addr::BROADCAST, 67, 68, &m);
    let ip = frames::Ipv4 {
        id: 0x766d,
        ..frames::Ipv4::new(att.dhcp_v4, Ipv4Addr::BROADCAST, frames::IPPROTO_UDP)
    };
    let pieces: Vec<frames::Frame> = frames::ipv4_fragments(&ip, &udp, 8)
        .iter()
        .map(|p| frames::ethernet(frames::BROADCAST, a.0, frames::ETHERTYPE_IPV4, p))
        .collect();
    let attack = Attack::new(
        "X7",
        "DHCPv4 OFFER in 8-byte IPv4 fragments (crafted)",
        dhcp_server_msg,
    );
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &pieces, 1)?;
        done()
    })?);
    let attack = Attack::new(
        "X7",
        "fake_dhcps6: rogue DHCPv6 server while the victims solicit",
        dhcp_server_msg,
    );
    rows.push(launch(lab, attack, |lab| {
        let pid = start(
            lab,
            &format!("atk6-fake_dhcps6 {GUEST_IF} {ROGUE_PREFIX_V6}/64 2001:db8:66::53"),
        )?;
        lab.host.sleep(Duration::from_millis(500))?;
        let leases = fresh_leases6(lab)?;
        lab.host.stop(&[pid]);
        Ok(leases)
    })?);
    let dst = v.lla();
    let h = frames::Ipv6 {
        src: att.lla(),
        dst,
        next_header: frames::IPPROTO_UDP,
        hop_limit: 64,
    };
    let reply = frames::udp_v6(att.lla(), dst, 5470, 546, &frames::dhcpv6(7, 0x766d67));
    let odd6 = [frames::ipv6_frame(v.mac.0, a.0, &h, &reply)];
    let attack = Attack::new(
        "X7",
        "DHCPv6 REPLY from source port 5470 to port 546 (crafted)",
        dhcp_server_msg,
    );
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &odd6, 2)?;
        done()
    })?);
    let advertise = frames::udp_v6(att.lla(), dst, 547, 546, &frames::dhcpv6(2, 0x766d68));
    let mut frags = frames::ipv6_fragments(&h, frames::IPPROTO_UDP, &advertise, 8, 0x766d_0001);
    let hidden = [frames::ext_options(frames::IPPROTO_UDP, 2), advertise].concat();
    frags.extend(frames::ipv6_fragments(
        &h,
        frames::IPPROTO_DSTOPTS,
        &hidden,
        8,
        0x766d_0002,
    ));
    let frags: Vec<frames::Frame> = frags
        .iter()
        .map(|p| frames::ethernet(v.mac.0, a.0, frames::ETHERTYPE_IPV6, p))
        .collect();
    let attack = Attack::new(
        "X7",
        "DHCPv6 ADVERTISE in fragments, also behind a cut header chain (crafted)",
        dhcp_server_msg,
    );
    rows.push(launch(lab, attack, |lab| {
        inject(lab, &frags, 1)?;
        done()
    })?);
    Ok(rows)
}

/// Every victim takes a fresh DHCPv4 lease; it must be its reservation from the gateway.
fn fresh_leases4(lab: &mut Lab) -> Result<Result<String, String>> {
    let mut bad = Vec::new();
    let victims: Vec<Vm> = lab.topo.victims().to_vec();
    for v in &victims {
        let l = dhcp4(lab, v)?;
        if l.ip != Some(v.dhcp_v4) || l.router != Some(GATEWAY_V4) || l.server != Some(GATEWAY_V4) {
            bad.push(format!("{}: {l:?}", v.name()));
        }
    }
    Ok(if bad.is_empty() {
        Ok(format!(
            "{} victims' fresh leases came from {GATEWAY_V4} with their reserved address",
            victims.len()
        ))
    } else {
        Err(format!("fresh DHCPv4 leases wrong: {}", list(bad)))
    })
}

/// Every victim restarts its DHCPv6 client with a new lease database (same DUID), so it
/// solicits again; each must bind its reservation from the gateway.
fn fresh_leases6(lab: &mut Lab) -> Result<Result<String, String>> {
    let victims: Vec<Vm> = lab.topo.victims().to_vec();
    let mut pending = Vec::new();
    for v in &victims {
        let old = lab.dhcp6_clients.remove(&v.index);
        if let Some(old) = &old {
            lab.host.stop(&[old.pid]);
        }
        let client = start_dhcp6(lab, v, old.as_ref().map(|o| o.db.as_path()))?;
        pending.push((v.clone(), client));
    }
    let mut bad = Vec::new();
    for (v, client) in pending {
        let got = wait_dhcp6(lab, &client.lease)?;
        if got != Some(v.dhcp_v6) {
            bad.push(format!("{}: {got:?}", v.name()));
        }
        lab.dhcp6_clients.insert(v.index, client);
    }
    Ok(if bad.is_empty() {
        Ok(format!(
            "{} victims solicited again and bound their reserved DHCPv6 address",
            victims.len()
        ))
    } else {
        Err(format!("DHCPv6 leases wrong: {}", list(bad)))
    })
}

/// X9: a port whose hook never ran (a new VM, a hot-plugged NIC) is closed: its pings, ARP,
/// DHCP and IPv6 reach nobody, and the base flows count them.
fn unguarded_port(lab: &mut Lab) -> Result<Row> {
    let attack = Attack::new(
        "X9",
        "unguarded port (no hook ran): ping, arping, udhcpc, ping6",
        |f| f.src == STRAY_MAC,
    );
    judge(lab, ("stray", STRAY_NS), IfaceKey::BASE, attack, |lab| {
        let lines = [
            format!("ping -c 2 -i 0.2 -W 1 -q {GATEWAY_V4}"),
            format!("arping -c 1 -w 0.5 -i {GUEST_IF} {GATEWAY_V4}"),
            format!("ping -6 -c 1 -W 1 -q -I {GUEST_IF} ff02::1"),
            format!("busybox udhcpc -i {GUEST_IF} -f -q -n -t 2 -T 1 -s /bin/true"),
        ];
        let cmds: Vec<(String, String)> = lines
            .into_iter()
            .map(|l| (STRAY_NS.to_string(), l))
            .collect();
        let outs = lab.host.parallel(&cmds)?;
        Ok(if outs[3].status.success() {
            Err("the unguarded port got a DHCP lease".into())
        } else {
            Ok("no DHCP lease".into())
        })
    })
}
