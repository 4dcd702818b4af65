//! Proves every "must be delivered" and "must be dropped" item of SPEC "Behaviour at a VM port"
//! with real frames injected into a private OVS whose VMs were installed through the `vmguard`
//! CLI, in both ARP modes. Each drop must also be counted by the vmguard flow of the right
//! reason and interface. Needs root and Open vSwitch (see tests/common).
//!
//! The expectations are the design; a case that fails is a product bug (or a wrong frame: the
//! failure message shows what OVS parsed), never a reason to change the expectation.

mod common;
use common::counters::{drops_counted, flow_counters};

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use common::cli::{domain_xml, Vmguard};
use common::{datapath_actions, Ovs};
use vmguard::config::ArpMode;
use vmguard::frames::{
    self as fr, Arp, ArpOp, Frame, Ipv4, Ipv6, Mac, BROADCAST, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
    IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
    IPPROTO_UDP,
};
use vmguard::model::{DomainUuid, MacAddr};
use vmguard::pipeline::{IfaceKey, Reason};

const BR: &str = "vm-switch";
/// Every port of the bridge and its ofport; the LOCAL port shows up in results as `BR`.
const PORTS: [(&str, u16); 5] = [
    ("upstream", 1),
    ("vnetA", 10),
    ("vnetB", 11),
    ("vnetC", 12),
    ("stray", 20),
];

const FLOOD_FROM_A: &[&str] = &["upstream", "vnetB", "vnetC", "stray", BR];
const FLOOD_FROM_B: &[&str] = &["upstream", "vnetA", "vnetC", "stray", BR];
const FLOOD_FROM_UPSTREAM: &[&str] = &["vnetA", "vnetB", "vnetC", "stray", BR];
const NOWHERE: &[&str] = &[];

const A_MAC: Mac = [0x52, 0x54, 0, 0, 0, 0x0a];
const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa);
const A_LLA: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 0xa);

const B_MAC: Mac = [0x52, 0x54, 0, 0, 0, 0x0b];
const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const B4_2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 12);
const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xb);
const B_LLA: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 0xb);
/// B's stable-privacy (non-EUI-64) link-local, listed in its metadata.
const B_STABLE_LLA: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x1c2d, 0x3e4f, 0x5a6b, 0x7c8d);

const C_MAC: Mac = [0x52, 0x54, 0, 0, 0, 0x0c];
const C4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 13);
const C_LLA: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 0xc);

const GW_MAC: Mac = [0x52, 0x54, 0, 0xff, 0xff, 0x01];
const GW4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

const NOBODY4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 99);
const NOBODY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);
const SUBNET_BCAST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 255);
const MDNS4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
const MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
const MDNS6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
const DHCP6_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
const UNSPEC6: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
const ZERO_MAC: Mac = [0; 6];

/// A VM as installed through `vmguard apply`.
struct Vm {
    name: &'static str,
    uuid: &'static str,
    mac: &'static str,
    dev: &'static str,
    addrs: &'static [&'static str],
}

const VMS: [Vm; 3] = [
    Vm {
        name: "vm-a",
        uuid: "aaaaaaaa-0000-4000-8000-00000000000a",
        mac: "52:54:00:00:00:0a",
        dev: "vnetA",
        addrs: &["10.0.0.10", "2001:db8::a"],
    },
    Vm {
        name: "vm-b",
        uuid: "bbbbbbbb-0000-4000-8000-00000000000b",
        mac: "52:54:00:00:00:0b",
        dev: "vnetB",
        addrs: &[
            "10.0.0.11",
            "10.0.0.12",
            "2001:db8::b",
            "fe80::1c2d:3e4f:5a6b:7c8d",
        ],
    },
    Vm {
        name: "vm-c",
        uuid: "cccccccc-0000-4000-8000-00000000000c",
        mac: "52:54:00:00:00:0c",
        dev: "vnetC",
        addrs: &["10.0.0.13"],
    },
];

// ---- frames (all built with vmguard::frames) ---------------------------------------------------

fn udp4(eth_dst: Mac, eth_src: Mac, src: Ipv4Addr, dst: Ipv4Addr, ports: (u16, u16)) -> Frame {
    udp4_with(eth_dst, eth_src, src, dst, ports, b"vmguard")
}

fn udp4_with(
    eth_dst: Mac,
    eth_src: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    (sport, dport): (u16, u16),
    data: &[u8],
) -> Frame {
    let udp = fr::udp_v4(src, dst, sport, dport, data);
    fr::ipv4_frame(eth_dst, eth_src, &Ipv4::new(src, dst, IPPROTO_UDP), &udp)
}

fn dhcp4(op: u8, msg_type: u8, chaddr: Mac, yiaddr: Ipv4Addr) -> Vec<u8> {
    fr::dhcpv4(op, msg_type, 0x5eed, chaddr, yiaddr)
}

/// Fragment `index` of a 3000-byte ICMPv6 echo request from A to B (a `ping -s 3000`).
fn echo6_fragment(index: usize) -> Frame {
    let h = Ipv6 {
        src: A6,
        dst: B6,
        next_header: fr::IPPROTO_FRAGMENT,
        hop_limit: 64,
    };
    let echo = fr::icmpv6(
        A6,
        B6,
        128,
        0,
        &[[0u8, 1, 0, 1].as_slice(), &[0x5a; 2996]].concat(),
    );
    let packet = fr::ipv6_fragments(&h, fr::IPPROTO_ICMPV6, &echo, 1448, 9).remove(index);
    fr::ethernet(B_MAC, A_MAC, fr::ETHERTYPE_IPV6, &packet)
}

/// An IPv6 frame with hop limit 255 (what ND requires; harmless elsewhere). A multicast
/// destination gets its 33:33 MAC; `eth_dst` is used for unicast destinations only.
fn ip6(
    eth_src: Mac,
    eth_dst: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    payload: &[u8],
) -> Frame {
    let h = Ipv6 {
        src,
        dst,
        next_header: next,
        hop_limit: 255,
    };
    fr::ipv6_frame(l2_dst(dst, eth_dst), eth_src, &h, payload)
}

fn l2_dst(dst: Ipv6Addr, unicast: Mac) -> Mac {
    if dst.is_multicast() {
        fr::ipv6_multicast_mac(dst)
    } else {
        unicast
    }
}

fn udp6(eth_src: Mac, eth_dst: Mac, src: Ipv6Addr, dst: Ipv6Addr, ports: (u16, u16)) -> Frame {
    let udp = fr::udp_v6(src, dst, ports.0, ports.1, b"vmguard");
    ip6(eth_src, eth_dst, src, dst, IPPROTO_UDP, &udp)
}

fn icmp6(eth_src: Mac, eth_dst: Mac, src: Ipv6Addr, dst: Ipv6Addr, ty: u8, body: &[u8]) -> Frame {
    let msg = fr::icmpv6(src, dst, ty, 0, body);
    ip6(eth_src, eth_dst, src, dst, IPPROTO_ICMPV6, &msg)
}

/// NS from `src` (A's or B's port) to `dst`; multicast `dst` uses its group MAC.
fn ns(
    eth_src: Mac,
    eth_dst: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    sll: Option<Mac>,
) -> Frame {
    icmp6(
        eth_src,
        eth_dst,
        src,
        dst,
        135,
        &fr::nd_ns_body(target, sll),
    )
}

/// NS to the target's solicited-node group.
fn ns_mcast(eth_src: Mac, src: Ipv6Addr, target: Ipv6Addr, sll: Option<Mac>) -> Frame {
    ns(
        eth_src,
        ZERO_MAC,
        src,
        fr::solicited_node(target),
        target,
        sll,
    )
}

/// DAD: NS from `::` to the target's solicited-node group, no SLL option.
fn dad(eth_src: Mac, target: Ipv6Addr) -> Frame {
    ns_mcast(eth_src, UNSPEC6, target, None)
}

fn na(
    eth_src: Mac,
    eth_dst: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    tll: Option<Mac>,
) -> Frame {
    icmp6(
        eth_src,
        eth_dst,
        src,
        dst,
        136,
        &fr::nd_na_body(target, 0x20, tll),
    )
}

/// RS to ff02::2.
fn rs(src: Ipv6Addr, sll: Option<Mac>) -> Frame {
    icmp6(A_MAC, ZERO_MAC, src, ALL_ROUTERS, 133, &fr::nd_rs_body(sll))
}

/// An RA ICMPv6 message (prefix 2001:db8::/64, SLL) from `src` to ff02::1.
fn ra_msg(src: Ipv6Addr, sll: Mac) -> Vec<u8> {
    let body = fr::nd_ra_body(
        Some((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 64)),
        Some(sll),
    );
    fr::icmpv6(src, ALL_NODES, 134, 0, &body)
}

/// MLD report from `src`, behind a hop-by-hop Router Alert header if `router_alert`.
fn mld(eth_src: Mac, src: Ipv6Addr, v2: bool, router_alert: bool) -> Frame {
    let (dst, ty, body) = if v2 {
        (MLDV2_ROUTERS, 143, fr::mldv2_report_body(&[MDNS6]))
    } else {
        (MDNS6, 131, fr::mldv1_report_body(MDNS6))
    };
    let msg = fr::icmpv6(src, dst, ty, 0, &body);
    if router_alert {
        let payload = [fr::hbh_router_alert(IPPROTO_ICMPV6), msg].concat();
        ip6(eth_src, ZERO_MAC, src, dst, IPPROTO_HOPOPTS, &payload)
    } else {
        ip6(eth_src, ZERO_MAC, src, dst, IPPROTO_ICMPV6, &msg)
    }
}

/// A raw IPv6 packet from A's LLA to ff02::1 whose payload starts with header `next`.
fn from_a_lla_to_all_nodes(next: u8, payload: &[u8]) -> Frame {
    ip6(A_MAC, ZERO_MAC, A_LLA, ALL_NODES, next, payload)
}

fn arp_frame(
    eth_dst: Mac,
    eth_src: Mac,
    op: ArpOp,
    (sha, spa): (Mac, Ipv4Addr),
    (tha, tpa): (Mac, Ipv4Addr),
) -> Frame {
    fr::arp(
        eth_dst,
        eth_src,
        &Arp {
            op: op.into(),
            sha,
            spa,
            tha,
            tpa,
        },
    )
}

/// Broadcast ARP request from `mac` (eth src = sha) asking for `tpa`.
fn who_has(mac: Mac, spa: Ipv4Addr, tpa: Ipv4Addr) -> Frame {
    arp_frame(BROADCAST, mac, ArpOp::Request, (mac, spa), (ZERO_MAC, tpa))
}

/// The reply a responder must send to `who_has(asker, asker_ip, ip)` for `owner`'s `ip`.
fn arp_answer(asker: Mac, asker_ip: Ipv4Addr, owner: Mac, ip: Ipv4Addr) -> Frame {
    arp_frame(asker, owner, ArpOp::Reply, (owner, ip), (asker, asker_ip))
}

/// The NA a responder must send to an NS from `asker`/`asker_ip` for `owner`'s `ip`: what the
/// owner's kernel sends — solicited and override set, router clear, hop limit 255, TLL option.
fn nd_answer(asker: Mac, asker_ip: Ipv6Addr, owner: Mac, ip: Ipv6Addr) -> Frame {
    icmp6(
        owner,
        asker,
        ip,
        asker_ip,
        136,
        &fr::nd_na_body(ip, 0x60, Some(owner)),
    )
}

/// The first fragment of an NS for `target` from the gateway, its SLL option in the second
/// (RFC 6980 forbids this; OVS still sees the first fragment's ICMPv6 fields).
fn ns_first_fragment(target: Ipv6Addr) -> Frame {
    let group = fr::solicited_node(target);
    let h = Ipv6 {
        src: GW6,
        dst: group,
        next_header: fr::IPPROTO_FRAGMENT,
        hop_limit: 255,
    };
    let msg = fr::icmpv6(GW6, group, 135, 0, &fr::nd_ns_body(target, Some(GW_MAC)));
    let packet = fr::ipv6_fragments(&h, fr::IPPROTO_ICMPV6, &msg, 24, 7).remove(0);
    fr::ethernet(
        fr::ipv6_multicast_mac(group),
        GW_MAC,
        fr::ETHERTYPE_IPV6,
        &packet,
    )
}

// ---- cases -------------------------------------------------------------------------------------

/// What must happen to a frame.
enum Verdict {
    /// It leaves through exactly these ports.
    To(&'static [&'static str]),
    /// The switch answers it: exactly one frame, out of the ingress port, that starts with this
    /// ARP reply or NA (padding after it not compared).
    Answered(Frame),
    /// It leaves through no port, counted by a vmguard drop flow of this reason whose cookie
    /// carries the ingress VM's key (key 0 for `Unguarded`).
    Dropped(Reason),
}
use Verdict::{Answered, Dropped, To};

struct Case {
    label: String,
    port: &'static str,
    frame: Frame,
    verdict: Verdict,
}

fn case(label: impl Into<String>, port: &'static str, frame: Frame, verdict: Verdict) -> Case {
    Case {
        label: label.into(),
        port,
        frame,
        verdict,
    }
}

/// Every "must be delivered" case, in the order they are sent (the first one teaches NORMAL the
/// gateway's MAC, so unicast to it is not flooded). Comments name the SPEC items.
#[rustfmt::skip] // a table: one case per entry
fn delivered(mode: ArpMode) -> Vec<Case> {
    // ARP requests for a VM's address: to its owner only, or answered by the switch.
    // The same for multicast NS with a source link-layer option.
    let owner_or_answer = |owner: &'static [&'static str], answer: Frame| match mode {
        ArpMode::Direct => To(owner),
        ArpMode::Responder => Answered(answer),
    };
    let dhcp_client = |msg_type| {
        let msg = dhcp4(1, msg_type, A_MAC, Ipv4Addr::UNSPECIFIED);
        udp4_with(BROADCAST, A_MAC, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, (68, 67), &msg)
    };
    let solicit = fr::udp_v6(A_LLA, DHCP6_SERVERS, 546, 547, &fr::dhcpv6(1, 0x1234));
    let offer = dhcp4(2, 2, A_MAC, A4);
    let tcp_syn = fr::ipv4_frame(GW_MAC, A_MAC, &Ipv4::new(A4, GW4, IPPROTO_TCP),
        &fr::tcp_v4(A4, GW4, 40000, 22, 0x02, b""));
    let internet4 = Ipv4Addr::new(192, 0, 2, 1);
    let internet6 = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    let mdns_mac = [0x01, 0, 0x5e, 0, 0, 0xfb];

    let mut v = vec![
        case("upstream: gateway IPv4 broadcast (NORMAL learns its MAC)", "upstream",
            udp4(BROADCAST, GW_MAC, GW4, SUBNET_BCAST, (5000, 5000)), To(FLOOD_FROM_UPSTREAM)),
        // 1, 12: owned sources, then ordinary L2 forwarding.
        case("IPv4 A -> B unicast", "vnetA", udp4(B_MAC, A_MAC, A4, B4, (5000, 80)), To(&["vnetB"])),
        case("IPv4 A -> B's second address", "vnetA",
            udp4(B_MAC, A_MAC, A4, B4_2, (5000, 80)), To(&["vnetB"])),
        case("IPv4 A -> gateway MAC (learned)", "vnetA",
            udp4(GW_MAC, A_MAC, A4, internet4, (5000, 443)), To(&["upstream"])),
        case("IPv4 TCP SYN A -> gateway", "vnetA", tcp_syn, To(&["upstream"])),
        case("IPv6 A -> B unicast", "vnetA", udp6(A_MAC, B_MAC, A6, B6, (5000, 80)), To(&["vnetB"])),
        // A later fragment carries no header to judge and cannot be reassembled without its
        // first fragment, which the drop list below refuses for ICMPv6.
        case("IPv6 echo request A -> B, later fragment", "vnetA", echo6_fragment(1), To(&["vnetB"])),
        case("IPv6 A -> gateway MAC (learned)", "vnetA",
            udp6(A_MAC, GW_MAC, A6, internet6, (5000, 443)), To(&["upstream"])),
        case("IPv4 broadcast 10.0.0.255", "vnetA",
            udp4(BROADCAST, A_MAC, A4, SUBNET_BCAST, (137, 137)), To(FLOOD_FROM_A)),
        case("IPv4 multicast 224.0.0.251", "vnetA",
            udp4(mdns_mac, A_MAC, A4, MDNS4, (5353, 5353)), To(FLOOD_FROM_A)),
        case("IPv6 multicast to ff02::1 from the global address", "vnetA",
            udp6(A_MAC, ZERO_MAC, A6, ALL_NODES, (5353, 5353)), To(FLOOD_FROM_A)),
        case("IPv6 from A's EUI-64 LLA to B's LLA", "vnetA",
            udp6(A_MAC, B_MAC, A_LLA, B_LLA, (5000, 80)), To(&["vnetB"])),
        case("IPv6 from B's non-EUI LLA to A's LLA", "vnetB",
            udp6(B_MAC, A_MAC, B_STABLE_LLA, A_LLA, (5000, 80)), To(&["vnetA"])),
        case("IPv6 from B's non-EUI LLA to ff02::1", "vnetB",
            udp6(B_MAC, ZERO_MAC, B_STABLE_LLA, ALL_NODES, (5353, 5353)), To(FLOOD_FROM_B)),
        // 2, 3: DHCP clients.
        case("DHCPv4 DISCOVER 0.0.0.0:68 -> 255.255.255.255:67", "vnetA", dhcp_client(1), To(&["upstream"])),
        case("DHCPv4 REQUEST 0.0.0.0:68 -> 255.255.255.255:67", "vnetA", dhcp_client(3), To(&["upstream"])),
        case("DHCPv6 Solicit LLA:546 -> ff02::1:2:547", "vnetA",
            ip6(A_MAC, ZERO_MAC, A_LLA, DHCP6_SERVERS, IPPROTO_UDP, &solicit), To(FLOOD_FROM_A)),
        // 4: DAD, MLD, RS.
        case("DAD NS for A's LLA", "vnetA", dad(A_MAC, A_LLA), To(&["upstream"])),
        case("DAD NS for A's global", "vnetA", dad(A_MAC, A6), To(&["upstream"])),
        case("DAD NS from B for its non-EUI LLA", "vnetB", dad(B_MAC, B_STABLE_LLA), To(&["upstream"])),
        case("MLDv2 report from :: with HBH Router Alert", "vnetA",
            mld(A_MAC, UNSPEC6, true, true), To(FLOOD_FROM_A)),
        case("MLDv2 report from :: without HBH", "vnetA", mld(A_MAC, UNSPEC6, true, false), To(FLOOD_FROM_A)),
        case("MLDv1 report from ::", "vnetA", mld(A_MAC, UNSPEC6, false, true), To(FLOOD_FROM_A)),
        case("MLDv1 report from A's LLA", "vnetA", mld(A_MAC, A_LLA, false, true), To(FLOOD_FROM_A)),
        case("MLDv2 report from A's LLA", "vnetA", mld(A_MAC, A_LLA, true, true), To(FLOOD_FROM_A)),
        case("RS from ::", "vnetA", rs(UNSPEC6, None), To(&["upstream"])),
        case("RS from A's LLA", "vnetA", rs(A_LLA, Some(A_MAC)), To(&["upstream"])),
        case("RS from A's global", "vnetA", rs(A6, Some(A_MAC)), To(&["upstream"])),
        // 5: broadcast ARP requests from A.
        case("ARP request A asks for B 10.0.0.11", "vnetA", who_has(A_MAC, A4, B4),
            owner_or_answer(&["vnetB"], arp_answer(A_MAC, A4, B_MAC, B4))),
        case("ARP request A asks for B 10.0.0.12", "vnetA", who_has(A_MAC, A4, B4_2),
            owner_or_answer(&["vnetB"], arp_answer(A_MAC, A4, B_MAC, B4_2))),
        case("ARP request A asks for C 10.0.0.13", "vnetA", who_has(A_MAC, A4, C4),
            owner_or_answer(&["vnetC"], arp_answer(A_MAC, A4, C_MAC, C4))),
        case("ARP request A asks for the gateway", "vnetA", who_has(A_MAC, A4, GW4), To(&["upstream"])),
        // 6: probes and gratuitous ARP.
        case("ARP probe (spa 0.0.0.0) for A's own IP", "vnetA",
            who_has(A_MAC, Ipv4Addr::UNSPECIFIED, A4), To(&["upstream"])),
        case("gratuitous ARP request spa=tpa=A", "vnetA", who_has(A_MAC, A4, A4), To(&["upstream"])),
        case("ARP request A asks for its own IP (tha ff:ff:ff:ff:ff:ff)", "vnetA",
            arp_frame(BROADCAST, A_MAC, ArpOp::Request, (A_MAC, A4), (BROADCAST, A4)), To(&["upstream"])),
        case("gratuitous ARP reply, broadcast", "vnetA",
            arp_frame(BROADCAST, A_MAC, ArpOp::Reply, (A_MAC, A4), (BROADCAST, A4)), To(FLOOD_FROM_A)),
        // 7: unicast ARP is plain L2.
        case("unicast ARP request A -> B's MAC", "vnetA",
            arp_frame(B_MAC, A_MAC, ArpOp::Request, (A_MAC, A4), (ZERO_MAC, B4)), To(&["vnetB"])),
        case("unicast ARP reply A -> B", "vnetA",
            arp_frame(B_MAC, A_MAC, ArpOp::Reply, (A_MAC, A4), (B_MAC, B4)), To(&["vnetB"])),
    ];
    // 8: NA for any owned target from any owned source, TLL own or absent.
    for (src, dst) in [(A_LLA, B_LLA), (A6, B6)] {
        for target in [A_LLA, A6] {
            for (tll, tll_name) in [(Some(A_MAC), "TLL=A"), (None, "no TLL")] {
                v.push(case(format!("NA src {src} target {target} {tll_name} unicast to B"), "vnetA",
                    na(A_MAC, B_MAC, src, dst, target, tll), To(&["vnetB"])));
            }
        }
    }
    v.extend([
        case("unsolicited NA to ff02::1", "vnetA",
            na(A_MAC, ZERO_MAC, A_LLA, ALL_NODES, A6, Some(A_MAC)), To(FLOOD_FROM_A)),
        // 9: NS steering (answered by the switch in responder mode when it can be).
        case("NS for B's global, SLL=A", "vnetA", ns_mcast(A_MAC, A_LLA, B6, Some(A_MAC)),
            owner_or_answer(&["vnetB"], nd_answer(A_MAC, A_LLA, B_MAC, B6))),
        case("NS for B's global, no SLL (nothing to answer with)", "vnetA",
            ns_mcast(A_MAC, A_LLA, B6, None), To(&["vnetB"])),
        case("NS from A's global for B's global", "vnetA", ns_mcast(A_MAC, A6, B6, Some(A_MAC)),
            owner_or_answer(&["vnetB"], nd_answer(A_MAC, A6, B_MAC, B6))),
        case("NS for B's non-EUI LLA", "vnetA", ns_mcast(A_MAC, A_LLA, B_STABLE_LLA, Some(A_MAC)),
            owner_or_answer(&["vnetB"], nd_answer(A_MAC, A_LLA, B_MAC, B_STABLE_LLA))),
        case("NS for B's EUI-64 LLA", "vnetA", ns_mcast(A_MAC, A_LLA, B_LLA, Some(A_MAC)),
            owner_or_answer(&["vnetB"], nd_answer(A_MAC, A_LLA, B_MAC, B_LLA))),
        case("NS from C for A's global", "vnetC", ns_mcast(C_MAC, C_LLA, A6, Some(C_MAC)),
            owner_or_answer(&["vnetA"], nd_answer(C_MAC, C_LLA, A_MAC, A6))),
        case("NS for the gateway fe80::1", "vnetA",
            ns_mcast(A_MAC, A_LLA, GW6, Some(A_MAC)), To(&["upstream"])),
        case("unicast NS to B's MAC", "vnetA", ns(A_MAC, B_MAC, A_LLA, B6, B6, Some(A_MAC)), To(&["vnetB"])),
        // 10: everything from the uplink.
        case("upstream: ARP request for A", "upstream", who_has(GW_MAC, GW4, A4),
            owner_or_answer(&["vnetA"], arp_answer(GW_MAC, GW4, A_MAC, A4))),
        case("upstream: ARP probe for A", "upstream",
            who_has(GW_MAC, Ipv4Addr::UNSPECIFIED, A4), To(&["vnetA"])),
        case("upstream: ARP request for 10.0.0.99 (nobody's)", "upstream",
            who_has(GW_MAC, GW4, NOBODY4), To(NOWHERE)),
        case("upstream: gratuitous ARP spa=tpa=10.0.0.1", "upstream",
            who_has(GW_MAC, GW4, GW4), To(FLOOD_FROM_UPSTREAM)),
        case("upstream: IPv4 unicast to A", "upstream",
            udp4(A_MAC, GW_MAC, GW4, A4, (53, 5000)), To(&["vnetA"])),
        case("upstream: RA from fe80::1 to ff02::1", "upstream",
            ip6(GW_MAC, ZERO_MAC, GW6, ALL_NODES, IPPROTO_ICMPV6, &ra_msg(GW6, GW_MAC)), To(FLOOD_FROM_UPSTREAM)),
        case("upstream: DHCPv4 OFFER 10.0.0.1:67 -> A:68", "upstream",
            udp4_with(A_MAC, GW_MAC, GW4, A4, (67, 68), &offer), To(&["vnetA"])),
        case("upstream: multicast NS for A's global", "upstream", ns_mcast(GW_MAC, GW6, A6, Some(GW_MAC)),
            owner_or_answer(&["vnetA"], nd_answer(GW_MAC, GW6, A_MAC, A6))),
        case("upstream: multicast NS for B's non-EUI LLA", "upstream",
            ns_mcast(GW_MAC, GW6, B_STABLE_LLA, Some(GW_MAC)),
            owner_or_answer(&["vnetB"], nd_answer(GW_MAC, GW6, B_MAC, B_STABLE_LLA))),
        case("upstream: multicast NS for A's global, no SLL", "upstream",
            ns_mcast(GW_MAC, GW6, A6, None), To(&["vnetA"])),
        // A host on the uplink probing (DAD) for A's address: A must see it to defend it.
        case("upstream: DAD NS from :: for A's global", "upstream", dad(GW_MAC, A6), To(&["vnetA"])),
        case("upstream: DAD NS from :: for A's global with an SLL option", "upstream",
            ns_mcast(GW_MAC, UNSPEC6, A6, Some(GW_MAC)), To(&["vnetA"])),
        case("upstream: NS for A's global, first fragment", "upstream", ns_first_fragment(A6),
            To(&["vnetA"])),
        case("upstream: multicast NS for an unowned target", "upstream",
            ns_mcast(GW_MAC, GW6, NOBODY6, Some(GW_MAC)), To(NOWHERE)),
        // 11: QEMU announce-self.
        case("RARP announce from A", "vnetA", fr::rarp_announce(A_MAC), To(&["upstream"])),
    ]);
    v
}

/// Every "must be dropped" case, all sent from A's port except the unguarded ones. Comments
/// name the SPEC items.
#[rustfmt::skip] // a table: one case per entry
fn dropped(local_mac: Mac) -> Vec<Case> {
    use Reason::*;
    let stray_mac = [0x02, 0, 0, 0, 0, 0x20];
    let stray_ip = Ipv4Addr::new(10, 0, 0, 20);
    let random_mac = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];
    let ping4 = |src: Ipv4Addr, dst: Ipv4Addr| {
        fr::ipv4_packet(&Ipv4::new(src, dst, IPPROTO_ICMP), &fr::icmp_v4(8, 0, &[0, 1, 0, 1]))
    };
    let to_host = |packet: Vec<u8>| fr::ethernet(local_mac, A_MAC, ETHERTYPE_IPV4, &packet);
    let redirect4 = fr::ipv4_frame(B_MAC, A_MAC, &Ipv4::new(A4, B4, IPPROTO_ICMP),
        &fr::icmp_v4(5, 1, &A4.octets()));
    let irdp = fr::ipv4_frame(fr::BROADCAST, A_MAC, &Ipv4::new(A4, Ipv4Addr::new(224, 0, 0, 1), IPPROTO_ICMP),
        &fr::icmp_v4(9, 0, &[1, 2, 0, 30, 10, 0, 0, 10, 0, 0, 0, 0]));
    let redirect6 = icmp6(A_MAC, B_MAC, A_LLA, B_LLA, 137, &fr::redirect_v6_body(A_LLA, NOBODY6));
    let tagged = |tags: &[(u16, u16)], ethertype: u16, payload: &[u8]| {
        fr::ethernet_tagged(B_MAC, A_MAC, tags, ethertype, payload)
    };
    let lldp_dst = [0x01, 0x80, 0xc2, 0, 0, 0x0e];

    // RAs hidden from a naive icmp_type=134 match.
    let ra = ra_msg(A_LLA, A_MAC);
    let lla_to_all = Ipv6 { src: A_LLA, dst: ALL_NODES, next_header: IPPROTO_FRAGMENT, hop_limit: 255 };
    let ra_frame = |packet: Vec<u8>| {
        fr::ethernet(fr::ipv6_multicast_mac(ALL_NODES), A_MAC, ETHERTYPE_IPV6, &packet)
    };
    let ra_first_fragment = |first_header: u8, body: &[u8], chunk: usize| {
        ra_frame(fr::ipv6_fragments(&lla_to_all, first_header, body, chunk, 7).remove(0))
    };
    let dstopts = |len_8: u8| [fr::ext_options(IPPROTO_ICMPV6, len_8), ra.clone()].concat();
    let first_4_bytes = [fr::ext_fragment(IPPROTO_ICMPV6, 0, true, 7), ra[..4].to_vec()].concat();
    // A destination-options header whose length field claims 256 bytes: the chain runs past
    // the end of the packet.
    let mut truncated = dstopts(1);
    truncated[1] = 31;
    let hbh_fragment = [fr::ext_options(IPPROTO_FRAGMENT, 1), fr::ext_fragment(IPPROTO_ICMPV6, 0, true, 7),
        ra[..16].to_vec()].concat();

    // DHCP server messages, whole and fragmented.
    let offer = dhcp4(2, 2, B_MAC, B4);
    let offer_from = |sport| udp4_with(BROADCAST, A_MAC, A4, Ipv4Addr::BROADCAST, (sport, 68), &offer);
    let offer_udp = fr::udp_v4(A4, Ipv4Addr::BROADCAST, 67, 68, &offer);
    let offer_ip = Ipv4 { id: 7, ..Ipv4::new(A4, Ipv4Addr::BROADCAST, IPPROTO_UDP) };
    let ipv4_bcast = |packet: Vec<u8>| fr::ethernet(BROADCAST, A_MAC, ETHERTYPE_IPV4, &packet);
    let offer_tiny = fr::ipv4_packet(&Ipv4 { more_fragments: true, ..offer_ip }, &offer_udp[..4]);
    let advertise = |sport| fr::udp_v6(A_LLA, B_LLA, sport, 546, &fr::dhcpv6(2, 0x1234));
    let lla_to_b = Ipv6 { src: A_LLA, dst: B_LLA, next_header: IPPROTO_FRAGMENT, hop_limit: 255 };
    let advertise_tiny = fr::ipv6_packet(&lla_to_b,
        &[fr::ext_fragment(IPPROTO_UDP, 0, true, 7), advertise(547)[..4].to_vec()].concat());

    vec![
        // 1: eth src.
        case("eth src = B's MAC from A's port", "vnetA",
            udp4(GW_MAC, B_MAC, B4, GW4, (5000, 53)), Dropped(MacSpoof)),
        case("eth src = random MAC from A's port", "vnetA",
            udp4(GW_MAC, random_mac, A4, GW4, (5000, 53)), Dropped(MacSpoof)),
        // 2: L3 source, also toward the host; 0.0.0.0 and :: outside the exceptions.
        case("IPv4 src = B's 10.0.0.11", "vnetA", udp4(GW_MAC, A_MAC, B4, GW4, (5000, 53)), Dropped(IpSpoof)),
        case("IPv4 src = 10.0.0.99", "vnetA", udp4(GW_MAC, A_MAC, NOBODY4, GW4, (5000, 53)), Dropped(IpSpoof)),
        case("IPv4 src = 10.0.0.99 to the host (LOCAL)", "vnetA", to_host(ping4(NOBODY4, GW4)), Dropped(IpSpoof)),
        case("IPv4 src = B's 10.0.0.11 to the host (LOCAL)", "vnetA", to_host(ping4(B4, GW4)), Dropped(IpSpoof)),
        case("IPv6 src = B's 2001:db8::b", "vnetA", udp6(A_MAC, GW_MAC, B6, NOBODY6, (5000, 53)), Dropped(IpSpoof)),
        case("IPv6 src = 2001:db8::99", "vnetA", udp6(A_MAC, GW_MAC, NOBODY6, B6, (5000, 53)), Dropped(IpSpoof)),
        case("IPv6 src = B's LLA", "vnetA", udp6(A_MAC, B_MAC, B_LLA, A_LLA, (5000, 53)), Dropped(IpSpoof)),
        case("IPv6 src = 2001:db8::99 to the host (LOCAL)", "vnetA",
            udp6(A_MAC, local_mac, NOBODY6, A6, (5000, 22)), Dropped(IpSpoof)),
        case("UDP 0.0.0.0 -> 10.0.0.1:53", "vnetA",
            udp4(GW_MAC, A_MAC, Ipv4Addr::UNSPECIFIED, GW4, (5000, 53)), Dropped(IpSpoof)),
        case("DHCP DISCOVER from 0.0.0.0 unicast to 10.0.0.1:67", "vnetA",
            udp4_with(GW_MAC, A_MAC, Ipv4Addr::UNSPECIFIED, GW4, (68, 67),
                &dhcp4(1, 1, A_MAC, Ipv4Addr::UNSPECIFIED)),
            Dropped(IpSpoof)),
        case("UDP from :: to ff02::1:2:547", "vnetA",
            udp6(A_MAC, ZERO_MAC, UNSPEC6, DHCP6_SERVERS, (546, 547)), Dropped(IpSpoof)),
        // 3: ARP sender fields.
        case("ARP request sha = B's MAC, spa = A's", "vnetA",
            arp_frame(BROADCAST, A_MAC, ArpOp::Request, (B_MAC, A4), (ZERO_MAC, GW4)), Dropped(ArpSpoof)),
        case("ARP request spa = B's 10.0.0.11", "vnetA", who_has(A_MAC, B4, GW4), Dropped(ArpSpoof)),
        case("Listing 1: ARP reply spa = gateway, broadcast", "vnetA",
            arp_frame(BROADCAST, A_MAC, ArpOp::Reply, (A_MAC, GW4), (BROADCAST, GW4)), Dropped(ArpSpoof)),
        case("Listing 1: ARP reply spa = gateway, unicast to B", "vnetA",
            arp_frame(B_MAC, A_MAC, ArpOp::Reply, (A_MAC, GW4), (B_MAC, B4)), Dropped(ArpSpoof)),
        case("ARP probe (spa 0.0.0.0) for B's IP", "vnetA",
            who_has(A_MAC, Ipv4Addr::UNSPECIFIED, B4), Dropped(ArpSpoof)),
        // 4: RAs, however hidden.
        case("RA from A's LLA", "vnetA", from_a_lla_to_all_nodes(IPPROTO_ICMPV6, &ra), Dropped(RouterAdvert)),
        case("RA behind a destination-options header", "vnetA",
            from_a_lla_to_all_nodes(IPPROTO_DSTOPTS, &dstopts(1)), Dropped(RouterAdvert)),
        case("RA as a first fragment", "vnetA", ra_first_fragment(IPPROTO_ICMPV6, &ra, 16), Dropped(Evasion)),
        case("RA first fragment with 4 bytes of the ICMPv6 header", "vnetA",
            ra_frame(fr::ipv6_packet(&lla_to_all, &first_4_bytes)), Dropped(Evasion)),
        case("RA first fragment holding only a destination-options header", "vnetA",
            ra_first_fragment(IPPROTO_DSTOPTS, &dstopts(1), 8), Dropped(Evasion)),
        case("RA first fragment holding half a destination-options header", "vnetA",
            ra_first_fragment(IPPROTO_DSTOPTS, &dstopts(2), 8), Dropped(Evasion)),
        case("RA behind a truncated extension header chain", "vnetA",
            from_a_lla_to_all_nodes(IPPROTO_DSTOPTS, &truncated), Dropped(Evasion)),
        case("RA behind hop-by-hop + fragment headers", "vnetA",
            from_a_lla_to_all_nodes(IPPROTO_HOPOPTS, &hbh_fragment), Dropped(Evasion)),
        // 5: forged ND.
        case("NA with target B's 2001:db8::b", "vnetA",
            na(A_MAC, ZERO_MAC, A_LLA, ALL_NODES, B6, Some(A_MAC)), Dropped(NdSpoof)),
        case("NA with own target, TLL = B's MAC", "vnetA",
            na(A_MAC, B_MAC, A_LLA, B_LLA, A6, Some(B_MAC)), Dropped(NdSpoof)),
        case("NS with SLL = B's MAC", "vnetA", ns_mcast(A_MAC, A_LLA, GW6, Some(B_MAC)), Dropped(NdSpoof)),
        case("DAD NS from :: for B's 2001:db8::b", "vnetA", dad(A_MAC, B6), Dropped(NdSpoof)),
        // 6: redirects.
        case("ICMPv6 redirect", "vnetA", redirect6, Dropped(Redirect)),
        case("ICMPv4 redirect", "vnetA", redirect4, Dropped(Redirect)),
        // Fragmented ICMPv6 is refused whatever its first type says: an overlapping later
        // fragment (fake_router26 -E o) could turn an echo into an RA on a lax receiver.
        case("ICMPv6 echo as a first fragment", "vnetA", echo6_fragment(0), Dropped(Evasion)),
        // ICMPv4 router advertisement (IRDP) is IPv4's rogue-router announcement.
        case("ICMPv4 router advertisement (IRDP)", "vnetA", irdp, Dropped(RouterAdvert)),
        // 7: DHCP servers, whatever the source port, fragmented or not.
        case("DHCPv4 OFFER 10.0.0.10:67 -> :68", "vnetA", offer_from(67), Dropped(DhcpServer)),
        case("DHCPv4 OFFER from port 1234 -> :68", "vnetA", offer_from(1234), Dropped(DhcpServer)),
        case("DHCPv4 OFFER, first fragment carrying the UDP header", "vnetA",
            ipv4_bcast(fr::ipv4_fragments(&offer_ip, &offer_udp, 64).remove(0)), Dropped(DhcpServer)),
        case("DHCPv4 OFFER, first fragment shorter than a UDP header", "vnetA",
            ipv4_bcast(offer_tiny), Dropped(Evasion)),
        case("DHCPv6 Advertise 547 -> 546", "vnetA",
            ip6(A_MAC, B_MAC, A_LLA, B_LLA, IPPROTO_UDP, &advertise(547)), Dropped(DhcpServer)),
        case("DHCPv6 Advertise from port 1234 -> 546", "vnetA",
            ip6(A_MAC, B_MAC, A_LLA, B_LLA, IPPROTO_UDP, &advertise(1234)), Dropped(DhcpServer)),
        case("DHCPv6 Advertise, first fragment shorter than a UDP header", "vnetA",
            fr::ethernet(B_MAC, A_MAC, ETHERTYPE_IPV6, &advertise_tiny), Dropped(Evasion)),
        // 8: tags and other ethertypes.
        case("802.1Q tag VID 10", "vnetA",
            tagged(&[(0x8100, 10)], ETHERTYPE_IPV4, &ping4(A4, B4)), Dropped(Ethertype)),
        case("priority tag VID 0, PCP 0", "vnetA",
            tagged(&[(0x8100, 0)], ETHERTYPE_IPV4, &ping4(A4, B4)), Dropped(Ethertype)),
        case("priority tag VID 0, PCP 5", "vnetA",
            tagged(&[(0x8100, 5 << 13)], ETHERTYPE_IPV4, &ping4(A4, B4)), Dropped(Ethertype)),
        case("QinQ 0x88a8 + 0x8100", "vnetA",
            tagged(&[(0x88a8, 100), (0x8100, 10)], ETHERTYPE_IPV4, &ping4(A4, B4)), Dropped(Ethertype)),
        case("LLDP 0x88cc", "vnetA", fr::ethernet(lldp_dst, A_MAC, 0x88cc, &[2, 7, 4]), Dropped(Ethertype)),
        case("PPPoE discovery 0x8863", "vnetA",
            fr::ethernet(BROADCAST, A_MAC, 0x8863, &[0x11, 0x09, 0, 0, 0, 0]), Dropped(Ethertype)),
        // 9: fail closed.
        case("IPv4 from the unguarded port", "stray",
            udp4(B_MAC, stray_mac, stray_ip, B4, (5000, 80)), Dropped(Unguarded)),
        case("ARP request from the unguarded port", "stray", who_has(stray_mac, stray_ip, B4), Dropped(Unguarded)),
    ]
}

/// Sent after `ovs-ofctl del-flows`: nothing gets through, from a VM or from the uplink.
#[rustfmt::skip] // a table: one case per entry
fn after_flush() -> Vec<Case> {
    vec![
        case("after del-flows: IPv4 A -> B", "vnetA", udp4(B_MAC, A_MAC, A4, B4, (5000, 80)), To(NOWHERE)),
        case("after del-flows: ARP request from A", "vnetA", who_has(A_MAC, A4, B4), To(NOWHERE)),
        case("after del-flows: upstream IPv4 unicast to A", "upstream",
            udp4(A_MAC, GW_MAC, GW4, A4, (53, 5000)), To(NOWHERE)),
        case("after del-flows: upstream broadcast", "upstream",
            udp4(BROADCAST, GW_MAC, GW4, SUBNET_BCAST, (5000, 5000)), To(NOWHERE)),
    ]
}

// ---- running and checking ----------------------------------------------------------------------

fn ofport(port: &str) -> u16 {
    PORTS
        .iter()
        .find(|(name, _)| *name == port)
        .unwrap_or_else(|| panic!("unknown port {port}"))
        .1
}

fn names(ports: &[&str]) -> BTreeSet<String> {
    ports.iter().map(|p| p.to_string()).collect()
}

/// The frame, what OVS made of it, and the flows of its ingress port: everything needed to
/// judge a failed case.
fn explain(ovs: &Ovs, port: &str, frame: &Frame) -> String {
    let n = ofport(port);
    let in_port = format!("in_port={n}");
    let flows = ovs.ofctl(&["-O", "OpenFlow14", "dump-flows", BR, &in_port]);
    let trace = ovs.trace(BR, n, &frame.hex());
    let actions = datapath_actions(&trace);
    format!(
        "frame: {}\ndatapath actions: {actions}\n--- ofproto/trace {in_port}:\n{trace}\n\
         --- flows with {in_port}:\n{flows}",
        frame.hex()
    )
}

/// Injects `frame` at `port` and checks it left through exactly `expected`; returns what each
/// port sent, or the explanation of the mismatch.
fn expect(
    ovs: &Ovs,
    port: &str,
    frame: &Frame,
    expected: &BTreeSet<String>,
    label: &str,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let out = ovs.send_capture(BR, port, &frame.hex());
    let got: BTreeSet<String> = out.keys().cloned().collect();
    if &got == expected {
        Ok(out)
    } else {
        Err(format!(
            "{label} (from {port}): came out of {got:?}, expected {expected:?}\n{}",
            explain(ovs, port, frame)
        ))
    }
}

const KEY_MASK: u64 = (1 << 40) - 1;

fn reason_of(cookie: u64) -> u64 {
    (cookie >> 40) & 0xff
}

fn run_case(ovs: &Ovs, keys: &BTreeMap<&str, u64>, c: &Case) -> Result<(), String> {
    match &c.verdict {
        To(ports) => expect(ovs, c.port, &c.frame, &names(ports), &c.label).map(drop),
        Answered(reply) => {
            let out = expect(ovs, c.port, &c.frame, &names(&[c.port]), &c.label)?;
            let sent = &out[c.port];
            let want = reply.hex();
            match sent.as_slice() {
                [one] if one.starts_with(&want) => Ok(()),
                _ => Err(format!(
                    "{} (from {}): answer {sent:?}, expected one frame starting {want}\n{}",
                    c.label,
                    c.port,
                    explain(ovs, c.port, &c.frame)
                )),
            }
        }
        Dropped(reason) => {
            let before = flow_counters(ovs, BR);
            expect(ovs, c.port, &c.frame, &BTreeSet::new(), &c.label)?;
            let hits = drops_counted(&before, &flow_counters(ovs, BR));
            let want_key = match reason {
                Reason::Unguarded => 0,
                _ => keys[c.port],
            };
            let counted_right =
                |cookie: u64| reason_of(cookie) == *reason as u64 && cookie & KEY_MASK == want_key;
            match hits.as_slice() {
                [(_, cookie)] if counted_right(*cookie) => Ok(()),
                _ => Err(format!(
                    "{} (from {}): dropped, but the drop flows that counted it are {:#?}; \
                     expected exactly one, with reason {} ({}) and key {want_key:#x}\n{}",
                    c.label,
                    c.port,
                    hits.iter().map(|(flow, _)| flow).collect::<Vec<_>>(),
                    *reason as u8,
                    reason.name(),
                    explain(ovs, c.port, &c.frame)
                )),
            }
        }
    }
}

/// A private OVS with the topology of this suite, initialised and with A, B, C installed
/// through the CLI; returns it with each VM port's interface key.
fn install(mode: ArpMode) -> (Ovs, BTreeMap<&'static str, u64>) {
    let ovs = Ovs::start();
    ovs.add_bridge(BR);
    for (name, n) in PORTS {
        ovs.add_port(BR, name, n);
    }
    let vmguard = Vmguard::new(Some(&ovs), BR, &["upstream"], mode.as_str());
    vmguard.run(&["init"], "").ok();
    let mut keys = BTreeMap::new();
    for vm in &VMS {
        let xml = domain_xml(vm.name, vm.uuid, BR, &[(vm.mac, vm.dev, vm.addrs)]);
        vmguard.run(&["apply", "-"], &xml).ok();
        let uuid: DomainUuid = vm.uuid.parse().expect("uuid");
        let mac: MacAddr = vm.mac.parse().expect("mac");
        let key = IfaceKey::derive(&uuid, mac).raw();
        assert_ne!(key, 0, "{}: interface key", vm.name);
        keys.insert(vm.dev, key);
    }
    // vmguard's own audit agrees with the switch: every flow it installed reads back as it
    // computed it (OVS's normal form of every field it uses), and its probes pass.
    let verify = vmguard.run(&["verify"], "");
    assert_eq!(
        verify.code,
        0,
        "verify after installing in {} mode:\n{}\n{}",
        mode.as_str(),
        verify.stdout,
        verify.stderr
    );
    (ovs, keys)
}

fn local_mac(ovs: &Ovs) -> Mac {
    let text = ovs.vsctl(&["get", "Interface", BR, "mac_in_use"]);
    let mac: MacAddr = text.trim_matches('"').parse().expect("LOCAL mac_in_use");
    mac.0
}

/// Runs `cases` in order, printing one line per case; returns the failures' explanations.
fn run_cases(ovs: &Ovs, keys: &BTreeMap<&str, u64>, mode: ArpMode, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let result = run_case(ovs, keys, c);
        let verdict = if result.is_ok() { "ok  " } else { "FAIL" };
        eprintln!("[{}] {verdict} {}", mode.as_str(), c.label);
        failures.extend(result.err());
    }
    failures
}

fn behaviour(mode: ArpMode) {
    let (ovs, keys) = install(mode);
    let mut cases = delivered(mode);
    cases.extend(dropped(local_mac(&ovs)));
    let mut failures = run_cases(&ovs, &keys, mode, &cases);

    // SPEC "Must be dropped" 9 and Lifecycle: after a flush the bridge (fail_mode=secure) is
    // closed, uplink included.
    ovs.ofctl(&["del-flows", BR]);
    let flushed = after_flush();
    failures.extend(run_cases(&ovs, &keys, mode, &flushed));

    let total = cases.len() + flushed.len();
    eprintln!(
        "[{}] {total} cases, {} failed",
        mode.as_str(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed in {} mode:\n\n{}",
        failures.len(),
        mode.as_str(),
        failures.join("\n\n")
    );
}

#[test]
fn behaviour_direct_mode() {
    behaviour(ArpMode::Direct);
}

#[test]
fn behaviour_responder_mode() {
    behaviour(ArpMode::Responder);
}
