//! Attack frames found in a security review of the guard pipeline. Each test asserts what SPEC
//! "Behaviour at a VM port" requires, so it fails while the weakness exists. Frames are injected
//! into a private OVS whose VMs were installed through the `vmguard` CLI, exactly as in
//! tests/behaviour.rs. Needs root and Open vSwitch (see tests/common).
//!
//! Every frame here was also checked against a real Linux 6.x stack (or ISC dhclient 4.4.3):
//! the victim acts on it, so a pass is not just a parsing curiosity.

mod common;
use common::counters::{drops_counted, flow_counters};

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use common::cli::{domain_xml, Vmguard};
use common::{datapath_actions, Ovs};
use vmguard::config::ArpMode;
use vmguard::frames::{
    self as fr, Frame, Ipv4, Ipv6, Mac, BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4, IPPROTO_ICMPV6,
    IPPROTO_UDP,
};
use vmguard::model::{DomainUuid, MacAddr};
use vmguard::pipeline::{IfaceKey, Reason};

const BR: &str = "vm-switch";
const PORTS: [(&str, u16); 5] = [
    ("upstream", 1),
    ("vnetA", 10),
    ("vnetB", 11),
    ("vnetC", 12),
    ("stray", 20),
];

const A_MAC: Mac = [0x52, 0x54, 0, 0, 0, 0x0a];
const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa);
const A_LLA: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 0xa);
const B_MAC: Mac = [0x52, 0x54, 0, 0, 0, 0x0b];
const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const B_LLA: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, 0xb);
const C_MAC: Mac = [0x52, 0x54, 0, 0, 0, 0x0c];
const GW_MAC: Mac = [0x52, 0x54, 0, 0xff, 0xff, 0x01];
const GW4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const NOBODY4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 99);
/// A MAC no port has: a victim that caches it floods its traffic to every port.
const NOBODY_MAC: Mac = [0x02, 0x99, 0x99, 0x99, 0x99, 0x99];
const ZERO_MAC: Mac = [0; 6];

const VMS: [(&str, &str, &str, &str, &[&str]); 3] = [
    (
        "vm-a",
        "aaaaaaaa-0000-4000-8000-00000000000a",
        "52:54:00:00:00:0a",
        "vnetA",
        &["10.0.0.10", "2001:db8::a"],
    ),
    (
        "vm-b",
        "bbbbbbbb-0000-4000-8000-00000000000b",
        "52:54:00:00:00:0b",
        "vnetB",
        &["10.0.0.11", "10.0.0.12", "2001:db8::b"],
    ),
    (
        "vm-c",
        "cccccccc-0000-4000-8000-00000000000c",
        "52:54:00:00:00:0c",
        "vnetC",
        &["10.0.0.13"],
    ),
];

// ---- harness (same topology and checks as tests/behaviour.rs) ---------------------------------

/// A private OVS with A, B, C installed through the CLI; returns it with each VM port's key.
fn install(mode: ArpMode) -> (Ovs, BTreeMap<&'static str, u64>) {
    let ovs = Ovs::start();
    ovs.add_bridge(BR);
    for (name, n) in PORTS {
        ovs.add_port(BR, name, n);
    }
    let vmguard = Vmguard::new(Some(&ovs), BR, &["upstream"], mode.as_str());
    vmguard.run(&["init"], "").ok();
    let mut keys = BTreeMap::new();
    for (name, uuid, mac, dev, addrs) in VMS {
        let xml = domain_xml(name, uuid, BR, &[(mac, dev, addrs)]);
        vmguard.run(&["apply", "-"], &xml).ok();
        let uuid: DomainUuid = uuid.parse().expect("uuid");
        let mac: MacAddr = mac.parse().expect("mac");
        keys.insert(dev, IfaceKey::derive(&uuid, mac).raw());
    }
    (ovs, keys)
}

fn ofport(port: &str) -> u16 {
    PORTS.iter().find(|(n, _)| *n == port).expect("port").1
}

fn explain(ovs: &Ovs, port: &str, frame: &Frame) -> String {
    let trace = ovs.trace(BR, ofport(port), &frame.hex());
    format!(
        "frame: {}\ndatapath actions: {}\n--- ofproto/trace:\n{trace}",
        frame.hex(),
        datapath_actions(&trace)
    )
}

/// The frame must leave through exactly `expected`.
fn delivered(
    ovs: &Ovs,
    label: &str,
    port: &str,
    frame: &Frame,
    expected: &[&str],
) -> Result<(), String> {
    let got: BTreeSet<String> = ovs
        .send_capture(BR, port, &frame.hex())
        .into_keys()
        .collect();
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{label} (from {port}): came out of {got:?}, expected {want:?}\n{}",
            explain(ovs, port, frame)
        ))
    }
}

/// The frame must leave through no port and be counted by exactly one vmguard drop flow of the
/// ingress VM whose reason is one of `reasons`.
fn dropped(
    ovs: &Ovs,
    keys: &BTreeMap<&str, u64>,
    label: &str,
    port: &str,
    frame: &Frame,
    reasons: &[Reason],
) -> Result<(), String> {
    let before = flow_counters(ovs, BR);
    delivered(ovs, label, port, frame, &[])?;
    let hits = drops_counted(&before, &flow_counters(ovs, BR));
    let ok = |cookie: u64| {
        cookie & ((1 << 40) - 1) == keys[port]
            && reasons.iter().any(|r| (cookie >> 40) & 0xff == *r as u64)
    };
    match hits.as_slice() {
        [(_, cookie)] if ok(*cookie) => Ok(()),
        _ => Err(format!(
            "{label} (from {port}): dropped, but counted by {:#?}; expected one drop flow of \
             {port} with reason {:?}\n{}",
            hits.iter().map(|h| &h.0).collect::<Vec<_>>(),
            reasons.iter().map(|r| r.name()).collect::<Vec<_>>(),
            explain(ovs, port, frame)
        )),
    }
}

fn check(results: Vec<Result<(), String>>) {
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Two tests, `NAME::direct_mode` and `NAME::responder_mode`, running `check` in each ARP mode.
macro_rules! in_both_modes {
    ($check:ident: $name:ident) => {
        mod $name {
            #[test]
            fn direct_mode() {
                super::$check(super::ArpMode::Direct);
            }

            #[test]
            fn responder_mode() {
                super::$check(super::ArpMode::Responder);
            }
        }
    };
}

// ---- frames --------------------------------------------------------------------------------------

/// Recomputes the IPv4 header checksum of `packet` (header length from its IHL).
fn fix_ipv4_checksum(packet: &mut [u8]) {
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    packet[10..12].copy_from_slice(&[0, 0]);
    let c = fr::checksum(&packet[..ihl]);
    packet[10..12].copy_from_slice(&c.to_be_bytes());
}

/// A DHCPv4 OFFER from A (10.0.0.10:67) to 255.255.255.255:68 whose IPv4 total length is
/// `total_len`, i.e. it ends before (or inside) the UDP header; the UDP header and the DHCP
/// message still follow in the frame. OVS trims to the total length and sees `tp_src=0,tp_dst=0`;
/// ISC dhclient reads the frame through a packet socket and accepts the offer.
fn offer_beyond_total_length(total_len: u16) -> Frame {
    let offer = fr::dhcpv4(2, 2, 0x5eed, B_MAC, B4);
    let udp = fr::udp_v4(A4, Ipv4Addr::BROADCAST, 67, 68, &offer);
    let mut p = fr::ipv4_packet(&Ipv4::new(A4, Ipv4Addr::BROADCAST, IPPROTO_UDP), &udp);
    p[2..4].copy_from_slice(&total_len.to_be_bytes());
    fix_ipv4_checksum(&mut p);
    fr::ethernet(BROADCAST, A_MAC, ETHERTYPE_IPV4, &p)
}

/// The same OFFER behind a 60-byte IPv4 header (IHL 15, 40 bytes of NOP options) whose total
/// length is 60: the whole UDP segment lies past the end of the IP packet.
fn offer_behind_long_header() -> Frame {
    let offer = fr::dhcpv4(2, 2, 0x5eed, B_MAC, B4);
    let udp = fr::udp_v4(A4, Ipv4Addr::BROADCAST, 67, 68, &offer);
    let mut p = fr::ipv4_packet(&Ipv4::new(A4, Ipv4Addr::BROADCAST, IPPROTO_UDP), &[]);
    p[0] = 0x4f;
    p.splice(20..20, [1u8; 40]);
    p[2..4].copy_from_slice(&60u16.to_be_bytes());
    fix_ipv4_checksum(&mut p);
    p.extend(udp);
    fr::ethernet(BROADCAST, A_MAC, ETHERTYPE_IPV4, &p)
}

/// An ICMPv6 message from `src` to `dst` (hop limit 255); multicast `dst` gets its 33:33 MAC.
fn icmp6(eth_src: Mac, eth_dst: Mac, src: Ipv6Addr, dst: Ipv6Addr, ty: u8, body: &[u8]) -> Frame {
    let msg = fr::icmpv6(src, dst, ty, 0, body);
    let h = Ipv6 {
        src,
        dst,
        next_header: IPPROTO_ICMPV6,
        hop_limit: 255,
    };
    let l2 = if dst.is_multicast() {
        fr::ipv6_multicast_mac(dst)
    } else {
        eth_dst
    };
    fr::ipv6_frame(l2, eth_src, &h, &msg)
}

/// A link-layer address option: 1 = source (SLL), 2 = target (TLL).
fn lla(kind: u8, mac: Mac) -> Vec<u8> {
    [&[kind, 1][..], &mac].concat()
}

fn ns_body(target: Ipv6Addr, options: &[Vec<u8>]) -> Vec<u8> {
    [fr::nd_ns_body(target, None), options.concat()].concat()
}

fn na_body(target: Ipv6Addr, options: &[Vec<u8>]) -> Vec<u8> {
    // Override flag, as an unsolicited update would carry.
    [fr::nd_na_body(target, 0x20, None), options.concat()].concat()
}

/// A broadcast ARP request with hardware type `htype` (6 = IEEE 802, which Linux accepts on
/// Ethernet exactly like 1, RFC 2625) and opcode `op`.
fn arp_raw(eth_src: Mac, htype: u16, op: u16, (sha, spa): (Mac, Ipv4Addr), tpa: Ipv4Addr) -> Frame {
    let a = [
        &htype.to_be_bytes()[..],
        &[8, 0, 6, 4],
        &op.to_be_bytes(),
        &sha,
        &spa.octets(),
        &ZERO_MAC,
        &tpa.octets(),
    ]
    .concat();
    fr::ethernet(BROADCAST, eth_src, ETHERTYPE_ARP, &a)
}

// ---- findings ------------------------------------------------------------------------------------

/// SPEC "Must be dropped" 7: DHCPv4 server-to-client messages, whatever their form. An OFFER/ACK
/// whose IPv4 total length stops before the end of the UDP header is seen by OVS as
/// `udp,tp_src=0,tp_dst=0,nw_frag=no` — no DHCP port, not a fragment — and is flooded; ISC
/// dhclient (Debian's default client) parses the raw frame and binds the offered lease, router
/// and DNS server.
#[test]
fn dhcp_server_message_whose_udp_header_lies_beyond_the_ip_total_length_is_dropped() {
    let (ovs, keys) = install(ArpMode::Direct);
    let server = [Reason::DhcpServer, Reason::Evasion];
    check(vec![
        dropped(
            &ovs,
            &keys,
            "OFFER, IPv4 total length 20 (no UDP byte inside)",
            "vnetA",
            &offer_beyond_total_length(20),
            &server,
        ),
        dropped(
            &ovs,
            &keys,
            "OFFER, IPv4 total length 24 (half a UDP header inside)",
            "vnetA",
            &offer_beyond_total_length(24),
            &server,
        ),
        dropped(
            &ovs,
            &keys,
            "OFFER behind IHL=15 options, IPv4 total length 60",
            "vnetA",
            &offer_behind_long_header(),
            &server,
        ),
        // The honest OFFER is already dropped; the fix must not open it.
        dropped(
            &ovs,
            &keys,
            "OFFER, honest lengths",
            "vnetA",
            &offer_beyond_total_length(20 + 8 + 300),
            &server,
        ),
    ]);
}

/// SPEC "Must be dropped" 5: NS whose SLL option is another MAC. With two SLL options OVS
/// declares the option list invalid and reports `nd_target=::,nd_sll=00:00:00:00:00:00`, which
/// the "SLL absent" pass flow accepts; Linux ignores the duplicate and caches the FIRST SLL for
/// the sender's address (checked: `fe80::5054:ff:fe00:a lladdr 52:54:00:00:00:0c`).
#[test]
fn ns_with_duplicate_sll_options_is_dropped() {
    let (ovs, keys) = install(ArpMode::Direct);
    let nd = [Reason::NdSpoof];
    let dup = |first: Mac, second: Mac| [lla(1, first), lla(1, second)];
    check(vec![
        dropped(
            &ovs,
            &keys,
            "unicast NS to B, SLL = C's MAC twice",
            "vnetA",
            &icmp6(
                A_MAC,
                B_MAC,
                A_LLA,
                B_LLA,
                135,
                &ns_body(B_LLA, &dup(C_MAC, C_MAC)),
            ),
            &nd,
        ),
        dropped(
            &ovs,
            &keys,
            "unicast NS to B, SLL = C's MAC then A's",
            "vnetA",
            &icmp6(
                A_MAC,
                B_MAC,
                A6,
                B_LLA,
                135,
                &ns_body(B_LLA, &dup(C_MAC, A_MAC)),
            ),
            &nd,
        ),
        dropped(
            &ovs,
            &keys,
            "multicast NS for the gateway, SLL = unknown MAC twice",
            "vnetA",
            &icmp6(
                A_MAC,
                ZERO_MAC,
                A_LLA,
                fr::solicited_node(GW6),
                135,
                &ns_body(GW6, &dup(NOBODY_MAC, NOBODY_MAC)),
            ),
            &nd,
        ),
        // Still delivered: one SLL option with A's own MAC.
        delivered(
            &ovs,
            "unicast NS to B, SLL = A",
            "vnetA",
            &icmp6(
                A_MAC,
                B_MAC,
                A_LLA,
                B_LLA,
                135,
                &ns_body(B_LLA, &[lla(1, A_MAC)]),
            ),
            &["vnetB"],
        ),
    ]);
}

/// SPEC "Must be dropped" 5: NA whose TLL option is another MAC, NS whose SLL option is another
/// MAC. An option carrying 00:00:00:00:00:00 reads as "option absent" in OVS, but Linux caches
/// the zero MAC for the sender/target (checked), and frames to 00:00:00:00:00:00 are unknown
/// unicast that NORMAL floods to every port.
#[test]
fn nd_with_an_all_zero_link_layer_address_option_is_dropped() {
    let (ovs, keys) = install(ArpMode::Direct);
    let nd = [Reason::NdSpoof];
    check(vec![
        dropped(
            &ovs,
            &keys,
            "NS to B with SLL = 00:00:00:00:00:00",
            "vnetA",
            &icmp6(
                A_MAC,
                B_MAC,
                A_LLA,
                B_LLA,
                135,
                &ns_body(B_LLA, &[lla(1, ZERO_MAC)]),
            ),
            &nd,
        ),
        dropped(
            &ovs,
            &keys,
            "NA for A's own 2001:db8::a with TLL = 00:00:00:00:00:00",
            "vnetA",
            &icmp6(
                A_MAC,
                B_MAC,
                A_LLA,
                B_LLA,
                136,
                &na_body(A6, &[lla(2, ZERO_MAC)]),
            ),
            &nd,
        ),
        // Still delivered: the options really absent (SPEC "Must be delivered" 8 and 9).
        delivered(
            &ovs,
            "NS to B without SLL",
            "vnetA",
            &icmp6(A_MAC, B_MAC, A_LLA, B_LLA, 135, &ns_body(B_LLA, &[])),
            &["vnetB"],
        ),
        delivered(
            &ovs,
            "NA for A's 2001:db8::a without TLL",
            "vnetA",
            &icmp6(A_MAC, B_MAC, A_LLA, B_LLA, 136, &na_body(A6, &[])),
            &["vnetB"],
        ),
    ]);
}

/// SPEC "Must be dropped" 5, the same zero MAC hidden behind another option: OVS reports the
/// type of the FIRST link-layer option only (`nd_options_type`), so an NA whose SLL comes before
/// a zero TLL, or an NS whose TLL comes before a zero SLL, escaped the zero-option drops and was
/// flooded; Linux caches 00:00:00:00:00:00 for the sender (checked end to end). And whatever way
/// a zero MAC gets into a neighbour cache (a zero option followed by a real one of the same
/// kind is invisible to OVS), frames to it must not be flooded to every port.
#[test]
fn a_zero_link_layer_option_behind_another_is_dropped_and_the_zero_mac_reaches_nobody() {
    let (ovs, keys) = install(ArpMode::Direct);
    let nd = [Reason::NdSpoof];
    let echo = |eth_src: Mac, src: Ipv6Addr, dst: Ipv6Addr| {
        icmp6(eth_src, ZERO_MAC, src, dst, 128, &[0, 1, 0, 1, b'v', b'g'])
    };
    check(vec![
        dropped(
            &ovs,
            &keys,
            "NA for A's 2001:db8::a to ff02::1, SLL = A then TLL = 00:00:00:00:00:00",
            "vnetA",
            &icmp6(
                A_MAC,
                ZERO_MAC,
                A_LLA,
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                136,
                &na_body(A6, &[lla(1, A_MAC), lla(2, ZERO_MAC)]),
            ),
            &nd,
        ),
        dropped(
            &ovs,
            &keys,
            "NS to B, TLL = A then SLL = 00:00:00:00:00:00",
            "vnetA",
            &icmp6(
                A_MAC,
                B_MAC,
                A6,
                B_LLA,
                135,
                &ns_body(B_LLA, &[lla(2, A_MAC), lla(1, ZERO_MAC)]),
            ),
            &nd,
        ),
        delivered(
            &ovs,
            "B's echo request to A's LLA sent to 00:00:00:00:00:00",
            "vnetB",
            &echo(B_MAC, B_LLA, A_LLA),
            &[],
        ),
        delivered(
            &ovs,
            "the gateway's echo request to A's LLA sent to 00:00:00:00:00:00",
            "upstream",
            &echo(GW_MAC, GW6, A_LLA),
            &[],
        ),
        // Still delivered: the same messages with A's MAC in both options.
        delivered(
            &ovs,
            "NS to B, TLL = A then SLL = A",
            "vnetA",
            &icmp6(
                A_MAC,
                B_MAC,
                A6,
                B_LLA,
                135,
                &ns_body(B_LLA, &[lla(2, A_MAC), lla(1, A_MAC)]),
            ),
            &["vnetB"],
        ),
    ]);
}

/// SPEC "Must be delivered" 10: "requests for an IP that no VM owns never reach a VM port", and
/// requests for a VM's IP go only to that VM. OVS extracts ARP fields only for hardware type 1;
/// a request with hardware type 6 (IEEE 802) has `arp_op=0` in OVS and is flooded by NORMAL,
/// while Linux answers it like any request and learns the sender.
fn uplink_ieee802_arp(mode: ArpMode) {
    let (ovs, _keys) = install(mode);
    let for_a = arp_raw(GW_MAC, 6, 1, (GW_MAC, GW4), A4);
    let to_a: BTreeSet<String> = ovs
        .send_capture(BR, "upstream", &for_a.hex())
        .into_keys()
        .collect();
    let only_a = to_a.iter().all(|p| p == "vnetA");
    check(vec![
        delivered(
            &ovs,
            "upstream: hardware type 6 request for 10.0.0.99 (nobody's)",
            "upstream",
            &arp_raw(GW_MAC, 6, 1, (GW_MAC, GW4), NOBODY4),
            &[],
        ),
        if only_a {
            Ok(())
        } else {
            Err(format!(
                "upstream: hardware type 6 request for A's 10.0.0.10 came out of {to_a:?}; \
                 only vnetA (or nothing) may get it\n{}",
                explain(&ovs, "upstream", &for_a)
            ))
        },
    ]);
}

in_both_modes!(uplink_ieee802_arp: uplink_arp_request_with_ieee802_hardware_type_is_steered);

/// A UDP datagram over IPv6 (ports 40000 → 53, hop limit 64).
fn udp6(dl_dst: Mac, dl_src: Mac, src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) -> Frame {
    let h = Ipv6 {
        src,
        dst,
        next_header: IPPROTO_UDP,
        hop_limit: 64,
    };
    fr::ipv6_frame(dl_dst, dl_src, &h, &fr::udp_v6(src, dst, 40000, 53, data))
}

/// `frame` with 802.1Q/802.1ad tags (outermost first, as (tpid, tci)) after its MAC addresses.
fn with_tags(frame: &Frame, tags: &[(u16, u16)]) -> Frame {
    let b = frame.bytes();
    let tags: Vec<u8> = tags
        .iter()
        .flat_map(|(tpid, tci)| [tpid.to_be_bytes(), tci.to_be_bytes()].concat())
        .collect();
    Frame([&b[..12], &tags, &b[12..]].concat())
}

/// SPEC "Must be delivered" 10: "ARP requests from an uplink for a VM's IP go only to that VM
/// (or are answered); requests for an IP that no VM owns never reach a VM port" — and NS the
/// same way. OVS parses one tag by default, so behind stacked tags (802.1ad + 802.1Q, or 802.1Q
/// twice or thrice, VID 0) a frame's type reads 0x8100 or 0x88a8 and no ARP/ND steering flow
/// sees it; Linux strips priority tags, stacked ones too, and answers and learns from the ARP
/// or NS inside (checked on 6.18). Unicast ones stay plain L2.
fn uplink_stacked_tags(mode: ArpMode) {
    let (ovs, _keys) = install(mode);
    let arp_for = |tpa| arp_raw(GW_MAC, 1, 1, (GW_MAC, GW4), tpa);
    let ns_for = |target| {
        let sn = fr::solicited_node(target);
        icmp6(
            GW_MAC,
            BROADCAST,
            GW6,
            sn,
            135,
            &ns_body(target, &[lla(1, GW_MAC)]),
        )
    };
    let unicast_to_a = {
        let mut f = arp_for(A4);
        f.0[..6].copy_from_slice(&A_MAC);
        f
    };
    let mut results = Vec::new();
    for (label, tags) in [
        ("802.1Q VID 0", &[(0x8100u16, 0u16)][..]),
        ("802.1ad VID 0 + 802.1Q VID 0", &[(0x88a8, 0), (0x8100, 0)]),
        ("802.1Q VID 0 twice", &[(0x8100, 0), (0x8100, 0)]),
        (
            "802.1Q VID 0 thrice",
            &[(0x8100, 0), (0x8100, 0), (0x8100, 0)],
        ),
        ("802.1Q VID 0 + 802.1ad VID 0", &[(0x8100, 0), (0x88a8, 0)]),
    ] {
        results.push(delivered(
            &ovs,
            &format!("ARP request for 10.0.0.99 (nobody's) behind {label}"),
            "upstream",
            &with_tags(&arp_for(NOBODY4), tags),
            &[],
        ));
        results.push(delivered(
            &ovs,
            &format!("NS for 2001:db8::99 (nobody's) behind {label}"),
            "upstream",
            &with_tags(&ns_for("2001:db8::99".parse().unwrap()), tags),
            &[],
        ));
        for (what, frame) in [
            ("ARP request for A's 10.0.0.10", arp_for(A4)),
            ("NS for A's 2001:db8::a", ns_for(A6)),
        ] {
            let frame = with_tags(&frame, tags);
            let to: BTreeSet<String> = ovs
                .send_capture(BR, "upstream", &frame.hex())
                .into_keys()
                .collect();
            // The uplink gets the switch's answer in responder mode.
            if !to.iter().all(|p| p == "vnetA" || p == "upstream") {
                results.push(Err(format!(
                    "{what} behind {label} (from upstream) came out of {to:?}; of the VMs only \
                     vnetA (or none) may get it\n{}",
                    explain(&ovs, "upstream", &frame)
                )));
            }
        }
        results.push(delivered(
            &ovs,
            &format!("unicast ARP request to A's MAC behind {label}"),
            "upstream",
            &with_tags(&unicast_to_a, tags),
            &["vnetA"],
        ));
    }
    check(results);
}

in_both_modes!(uplink_stacked_tags: uplink_arp_and_ns_behind_stacked_tags_reach_no_other_vm);

/// SPEC "Must be delivered" 4 lets an RS from A's addresses through, and OVS cannot see an RS's
/// options, so A can make the gateway cache any MAC for A's *own* address (RFC 4861 6.2.6: a
/// router updates its neighbour entry from an RS's source link-layer option; Linux does). The
/// gateway's traffic for A would then reach B, or every port as unknown unicast. vmguard
/// delivers IPv6 from an uplink to an owned address to its owner, with the owner's MAC,
/// whatever MAC the frame carries; a VM's own frames keep theirs (one sent to the router is
/// routed, not short-cut).
fn uplink_ipv6_to_an_owned_address(mode: ArpMode) {
    let (ovs, _keys) = install(mode);
    let mut results = Vec::new();
    // The attack itself: an RS from A naming the gateway's, B's or nobody's MAC reaches the
    // gateway (allowed: RS from owned addresses must be delivered).
    for sll in [NOBODY_MAC, B_MAC, GW_MAC] {
        let rs = icmp6(
            A_MAC,
            BROADCAST,
            A_LLA,
            "ff02::2".parse().unwrap(),
            133,
            &fr::nd_rs_body(Some(sll)),
        );
        results.push(delivered(
            &ovs,
            "RS from A naming another MAC",
            "vnetA",
            &rs,
            &["upstream"],
        ));
    }
    let multicast = fr::ipv6_multicast_mac("ff02::1".parse().unwrap());
    for dst in [A6, A_LLA] {
        for (label, dl_dst) in [
            ("nobody's MAC", NOBODY_MAC),
            ("B's MAC", B_MAC),
            ("C's MAC", C_MAC),
            ("a multicast MAC", multicast),
            ("A's MAC", A_MAC),
        ] {
            let frame = udp6(dl_dst, GW_MAC, GW6, dst, b"data");
            let mut want = frame.bytes().to_vec();
            want[..6].copy_from_slice(&A_MAC);
            let out = ovs.send_capture(BR, "upstream", &frame.hex());
            let to_a = Frame(want).hex();
            if out.len() != 1 || out.get("vnetA") != Some(&vec![to_a.clone()]) {
                results.push(Err(format!(
                    "gateway's IPv6 to A's {dst} sent to {label}: came out as {out:?}, expected \
                     only vnetA with A's MAC: {to_a}\n{}",
                    explain(&ovs, "upstream", &frame)
                )));
            }
        }
    }
    // A VM's frame for A's address sent to the router's MAC goes to the router, unchanged.
    results.push(delivered(
        &ovs,
        "B's IPv6 to A's 2001:db8::a via the router's MAC",
        "vnetB",
        &udp6(GW_MAC, B_MAC, B_LLA, A6, b"data"),
        &["upstream"],
    ));
    check(results);
}

in_both_modes!(uplink_ipv6_to_an_owned_address: uplink_ipv6_to_an_owned_address_reaches_its_owner_whatever_the_mac);

/// SPEC "Must be delivered" 12: unicast to a learned MAC goes to its port. `NORMAL` never learns
/// the gateway's MAC on a guarded bridge: the gateway's ARP and NS are steered and its unicast to
/// VMs goes straight to their ports, all around `NORMAL`. A VM's unicast to the gateway was then
/// flooded to every other VM port, where any VM could read it (a promiscuous socket sees it).
/// No VM can own a MAC that is not a guarded interface's, so such unicast goes to the uplinks
/// only; from an uplink (a departed VM's MAC) it reaches no VM.
fn unicast_to_a_mac_no_vm_has(mode: ArpMode) {
    let (ovs, _keys) = install(mode);
    let internet4 = Ipv4Addr::new(192, 0, 2, 80);
    let internet6: Ipv6Addr = "2001:db8:ffff::80".parse().unwrap();
    let udp4 = |dl_dst: Mac, dl_src: Mac, src: Ipv4Addr, dst: Ipv4Addr| {
        let h = Ipv4::new(src, dst, IPPROTO_UDP);
        fr::ipv4_frame(
            dl_dst,
            dl_src,
            &h,
            &fr::udp_v4(src, dst, 40000, 53, b"secret query"),
        )
    };
    // What a gateway sends toward A: ARP request, NS, unicast IPv4 and IPv6.
    for f in [
        arp_raw(GW_MAC, 1, 1, (GW_MAC, GW4), A4),
        icmp6(
            GW_MAC,
            BROADCAST,
            GW6,
            fr::solicited_node(A6),
            135,
            &ns_body(A6, &[lla(1, GW_MAC)]),
        ),
        udp4(A_MAC, GW_MAC, internet4, A4),
        udp6(A_MAC, GW_MAC, internet6, A6, b"answer"),
    ] {
        ovs.send_capture(BR, "upstream", &f.hex());
    }
    let reply = fr::arp(
        GW_MAC,
        A_MAC,
        &fr::Arp {
            op: 2,
            sha: A_MAC,
            spa: A4,
            tha: GW_MAC,
            tpa: GW4,
        },
    );
    let results = vec![
        delivered(
            &ovs,
            "A's ARP reply to the gateway",
            "vnetA",
            &reply,
            &["upstream"],
        ),
        delivered(
            &ovs,
            "A's IPv4 via the gateway's MAC",
            "vnetA",
            &udp4(GW_MAC, A_MAC, A4, internet4),
            &["upstream"],
        ),
        delivered(
            &ovs,
            "A's IPv6 via the gateway's MAC",
            "vnetA",
            &udp6(GW_MAC, A_MAC, A6, internet6, b"secret query"),
            &["upstream"],
        ),
        delivered(
            &ovs,
            "A's IPv4 to a MAC nobody has",
            "vnetA",
            &udp4(NOBODY_MAC, A_MAC, A4, internet4),
            &["upstream"],
        ),
        delivered(
            &ovs,
            "A's IPv4 to B's MAC",
            "vnetA",
            &udp4(B_MAC, A_MAC, A4, B4),
            &["vnetB"],
        ),
        delivered(
            &ovs,
            "A's IPv4 broadcast",
            "vnetA",
            &udp4(BROADCAST, A_MAC, A4, Ipv4Addr::BROADCAST),
            &["upstream", "vnetB", "vnetC", "stray", BR],
        ),
        delivered(
            &ovs,
            "the gateway's IPv4 to a departed VM's MAC",
            "upstream",
            &udp4(NOBODY_MAC, GW_MAC, internet4, NOBODY4),
            &[],
        ),
    ];
    check(results);
}

in_both_modes!(unicast_to_a_mac_no_vm_has: unicast_to_a_mac_no_vm_has_goes_to_the_uplinks_only);

/// RFC 4861 7.1.1: a host ignores an NS whose hop limit is not 255 (it may come from off-link).
/// In responder mode the switch must not answer one in the owner's name: the owner gets it, as
/// in direct mode, and its stack decides.
#[test]
fn ns_with_a_hop_limit_below_255_is_not_answered_by_the_switch() {
    let (ovs, _keys) = install(ArpMode::Responder);
    let solicit = |hop_limit: u8| {
        let dst = fr::solicited_node(A_LLA);
        let msg = fr::icmpv6(B_LLA, dst, 135, 0, &ns_body(A_LLA, &[lla(1, B_MAC)]));
        let h = Ipv6 {
            src: B_LLA,
            dst,
            next_header: IPPROTO_ICMPV6,
            hop_limit,
        };
        fr::ipv6_frame(fr::ipv6_multicast_mac(dst), B_MAC, &h, &msg)
    };
    check(vec![
        delivered(
            &ovs,
            "NS from B for A's LLA, hop limit 64",
            "vnetB",
            &solicit(64),
            &["vnetA"],
        ),
        // Still answered: the honest NS (the answer goes back out of B's port).
        delivered(
            &ovs,
            "NS from B for A's LLA, hop limit 255",
            "vnetB",
            &solicit(255),
            &["vnetB"],
        ),
    ]);
}
