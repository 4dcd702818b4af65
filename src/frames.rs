//! Pure builders of raw Ethernet frames (ARP/RARP, IPv4, IPv6 with extension headers, ICMP, ND,
//! MLD, DHCP, with valid checksums) for tracing through and injecting into Open vSwitch.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// The Ethernet broadcast address.
pub const BROADCAST: Mac = [0xff; 6];

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of RARP.
pub const ETHERTYPE_RARP: u16 = 0x8035;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IPv6 next header of the hop-by-hop options header.
pub const IPPROTO_HOPOPTS: u8 = 0;
/// IPv6 next header of the routing header.
pub const IPPROTO_ROUTING: u8 = 43;
/// IPv6 next header of the fragment header.
pub const IPPROTO_FRAGMENT: u8 = 44;
/// IPv6 next header of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 next header of the destination options header.
pub const IPPROTO_DSTOPTS: u8 = 60;

/// Minimum Ethernet frame length without FCS.
const MIN_FRAME: usize = 60;

/// A built Ethernet frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(pub Vec<u8>);

impl Frame {
    /// The frame as lowercase hex without separators, as `ovs-appctl` expects.
    pub fn hex(&self) -> String {
        self.to_string()
    }

    /// The raw frame bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Formats the frame as lowercase hex without separators.
impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The RFC 1071 Internet checksum of `data`: the one's complement of its one's-complement sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Unfolded sum of `data` as big-endian 16-bit words, an odd tail padded with zero.
fn sum(data: &[u8]) -> u64 {
    data.chunks(2)
        .map(|w| u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum()
}

/// Folds carries back in to get the 16-bit one's-complement sum.
fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// `n` as a big-endian 16-bit length field.
fn be16(n: usize) -> [u8; 2] {
    u16::try_from(n)
        .expect("length does not fit in 16 bits")
        .to_be_bytes()
}

/// Writes the checksum over `pseudo` followed by `seg` into `seg[at..at + 2]`.
///
/// A computed zero is sent as 0xffff: required for UDP, equivalent elsewhere.
fn with_checksum(pseudo: &[u8], mut seg: Vec<u8>, at: usize) -> Vec<u8> {
    let c = match !fold(sum(pseudo) + sum(&seg)) {
        0 => 0xffff,
        c => c,
    };
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    [&src.octets()[..], &dst.octets(), &[0, proto], &be16(len)].concat()
}

fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: usize) -> Vec<u8> {
    let len = u32::try_from(len).expect("upper-layer length does not fit in 32 bits");
    [
        &src.octets()[..],
        &dst.octets(),
        &len.to_be_bytes(),
        &[0, 0, 0, next_header],
    ]
    .concat()
}

/// A UDP header followed by `data`, checksum left zero.
fn udp_unsummed(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    [
        &sport.to_be_bytes()[..],
        &dport.to_be_bytes(),
        &be16(8 + data.len()),
        &[0, 0],
        data,
    ]
    .concat()
}

/// A 20-byte TCP header (seq 0, ack 0, window 65535) followed by `data`, checksum left zero.
fn tcp_unsummed(sport: u16, dport: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut seg = [&sport.to_be_bytes()[..], &dport.to_be_bytes()].concat();
    seg.extend([0; 8]);
    seg.extend([5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    seg.extend_from_slice(data);
    seg
}

/// Pads to the Ethernet minimum.
fn padded(mut f: Vec<u8>) -> Frame {
    f.resize(f.len().max(MIN_FRAME), 0);
    Frame(f)
}

/// An untagged Ethernet frame, padded to 60 bytes.
pub fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Frame {
    ethernet_tagged(dst, src, &[], ethertype, payload)
}

/// 802.1Q tagged frame, padded to 60 bytes; `tags` outermost first as (tpid, tci), e.g.
/// `[(0x8100, 10)]` or `[(0x88a8, 100), (0x8100, 10)]`.
pub fn ethernet_tagged(
    dst: Mac,
    src: Mac,
    tags: &[(u16, u16)],
    ethertype: u16,
    payload: &[u8],
) -> Frame {
    let mut f = [dst, src].concat();
    for (tpid, tci) in tags {
        f.extend(tpid.to_be_bytes());
        f.extend(tci.to_be_bytes());
    }
    f.extend(ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    padded(f)
}

/// ARP operation codes; RARP is built by [`rarp_announce`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ArpOp {
    /// Who-has request.
    Request = 1,
    /// Is-at reply.
    Reply = 2,
}

impl From<ArpOp> for u16 {
    fn from(op: ArpOp) -> u16 {
        op as u16
    }
}

/// An Ethernet/IPv4 ARP (or RARP) packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// Operation code, e.g. `ArpOp::Request.into()`.
    pub op: u16,
    /// Sender hardware address.
    pub sha: Mac,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: Mac,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl Arp {
    /// The 28-byte packet.
    fn bytes(&self) -> Vec<u8> {
        let head = [0, 1, 8, 0, 6, 4];
        [
            &head[..],
            &self.op.to_be_bytes(),
            &self.sha,
            &self.spa.octets(),
            &self.tha,
            &self.tpa.octets(),
        ]
        .concat()
    }
}

/// An ARP frame (ethertype 0x0806).
pub fn arp(eth_dst: Mac, eth_src: Mac, a: &Arp) -> Frame {
    ethernet(eth_dst, eth_src, ETHERTYPE_ARP, &a.bytes())
}

/// Exactly what QEMU's announce-self sends after migration: a broadcast RARP request (op 3)
/// with sha = tha = `mac` and spa = tpa = 0.0.0.0, padded to 60 bytes.
pub fn rarp_announce(mac: Mac) -> Frame {
    let a = Arp {
        op: 3,
        sha: mac,
        spa: Ipv4Addr::UNSPECIFIED,
        tha: mac,
        tpa: Ipv4Addr::UNSPECIFIED,
    };
    ethernet(BROADCAST, mac, ETHERTYPE_RARP, &a.bytes())
}

/// IPv4 header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4 {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub proto: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification (matters for fragments).
    pub id: u16,
    /// The MF flag.
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units (13 bits).
    pub frag_offset_units: u16,
}

impl Ipv4 {
    /// A header with TTL 64, id 0, not fragmented.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Self {
        Self {
            src,
            dst,
            proto,
            ttl: 64,
            id: 0,
            more_fragments: false,
            frag_offset_units: 0,
        }
    }
}

/// A 20-byte IPv4 header (no options, DF clear) with its checksum, followed by `payload`.
///
/// # Panics
/// If the offset exceeds 13 bits or the packet exceeds 65535 bytes.
pub fn ipv4_packet(h: &Ipv4, payload: &[u8]) -> Vec<u8> {
    assert!(
        h.frag_offset_units < 1 << 13,
        "IPv4 fragment offset exceeds 13 bits"
    );
    let frag = (u16::from(h.more_fragments) << 13) | h.frag_offset_units;
    let mut p = [
        &[0x45, 0][..],
        &be16(20 + payload.len()),
        &h.id.to_be_bytes(),
        &frag.to_be_bytes(),
        &[h.ttl, h.proto, 0, 0],
        &h.src.octets(),
        &h.dst.octets(),
    ]
    .concat();
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A UDP segment with its checksum over the IPv4 pseudo-header.
pub fn udp_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let seg = udp_unsummed(sport, dport, data);
    with_checksum(&pseudo_v4(src, dst, IPPROTO_UDP, seg.len()), seg, 6)
}

/// A TCP segment (20-byte header, seq 0, ack 0, window 65535) with its checksum over the IPv4
/// pseudo-header; `flags` e.g. 0x02 SYN, 0x12 SYN|ACK, 0x10 ACK.
pub fn tcp_v4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let seg = tcp_unsummed(sport, dport, flags, data);
    with_checksum(&pseudo_v4(src, dst, IPPROTO_TCP, seg.len()), seg, 16)
}

/// An ICMP message with its checksum; `rest` is everything after the 4-byte type/code/checksum.
pub fn icmp_v4(icmp_type: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    with_checksum(&[], [&[icmp_type, code, 0, 0][..], rest].concat(), 2)
}

/// A minimal valid BOOTP/DHCP message: op (1 request, 2 reply), chaddr, message type option 53
/// (1 DISCOVER, 2 OFFER, 5 ACK ...), yiaddr, end option.
///
/// Zero-padded to the 300-byte BOOTP minimum; carries no server identifier (option 54).
pub fn dhcpv4(op: u8, msg_type: u8, xid: u32, chaddr: Mac, yiaddr: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![op, 1, 6, 0];
    m.extend(xid.to_be_bytes());
    m.resize(16, 0); // secs, flags, ciaddr
    m.extend(yiaddr.octets());
    m.resize(28, 0); // siaddr, giaddr
    m.extend(chaddr);
    m.resize(236, 0); // rest of chaddr, sname, file
    m.extend([99, 130, 83, 99, 53, 1, msg_type, 255]);
    m.resize(300, 0);
    m
}

/// IPv6 fixed header fields (traffic class and flow label are zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6 {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Type of the first header in the payload.
    pub next_header: u8,
    /// Hop limit (255 for ND, 1 for MLD).
    pub hop_limit: u8,
}

/// The 40-byte fixed header followed by `payload` (which may start with extension headers).
///
/// # Panics
/// If the payload exceeds 65535 bytes.
pub fn ipv6_packet(h: &Ipv6, payload: &[u8]) -> Vec<u8> {
    [
        &[0x60, 0, 0, 0][..],
        &be16(payload.len()),
        &[h.next_header, h.hop_limit],
        &h.src.octets(),
        &h.dst.octets(),
        payload,
    ]
    .concat()
}

/// A UDP segment with its checksum over the IPv6 pseudo-header.
pub fn udp_v6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let seg = udp_unsummed(sport, dport, data);
    with_checksum(&pseudo_v6(src, dst, IPPROTO_UDP, seg.len()), seg, 6)
}

/// A TCP segment like [`tcp_v4`] with its checksum over the IPv6 pseudo-header.
pub fn tcp_v6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let seg = tcp_unsummed(sport, dport, flags, data);
    with_checksum(&pseudo_v6(src, dst, IPPROTO_TCP, seg.len()), seg, 16)
}

/// An ICMPv6 message with its checksum over the pseudo-header; `body` is the bytes after
/// type/code/checksum.
///
/// `dst` is the final destination (the last routing-header address, if any).
pub fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, icmp_type: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let msg = [&[icmp_type, code, 0, 0][..], body].concat();
    with_checksum(&pseudo_v6(src, dst, IPPROTO_ICMPV6, msg.len()), msg, 2)
}

/// A generic hop-by-hop (0), destination options (60) or routing (43) extension header of
/// `len_8 * 8` bytes, padded with PadN.
///
/// It starts with an empty PadN so that, read as a routing
/// header, it is type 1 with Segments Left 0 (which receivers skip). Linux drops headers with
/// more than 7 consecutive padding bytes, so longer headers carry skippable RFC 4727
/// experimental options (type 0x1e) of zeros between pads.
///
/// # Panics
/// If `len_8` is 0.
pub fn ext_options(next_header: u8, len_8: u8) -> Vec<u8> {
    assert!(
        len_8 >= 1,
        "extension header length must be at least 8 bytes"
    );
    let total = 8 * usize::from(len_8);
    let mut h = vec![next_header, len_8 - 1, 1, 0];
    while total - h.len() > 7 {
        let n = u8::try_from(total - h.len() - 2).unwrap_or(u8::MAX);
        h.extend([0x1e, n]);
        h.resize(h.len() + usize::from(n), 0);
    }
    if let Ok(n @ 2..) = u8::try_from(total - h.len()) {
        h.extend([1, n - 2]);
    }
    h.resize(total, 0); // PadN data, or a lone Pad1
    h
}

/// An 8-byte IPv6 fragment header (44); `offset_units` counts 8-byte units.
///
/// # Panics
/// If `offset_units` exceeds 13 bits.
pub fn ext_fragment(next_header: u8, offset_units: u16, more: bool, id: u32) -> Vec<u8> {
    assert!(
        offset_units < 1 << 13,
        "IPv6 fragment offset exceeds 13 bits"
    );
    let off = (offset_units << 3) | u16::from(more);
    [&[next_header, 0][..], &off.to_be_bytes(), &id.to_be_bytes()].concat()
}

/// A hop-by-hop header with the Router Alert option, value 0 (MLD), as MLD reports carry.
pub fn hbh_router_alert(next_header: u8) -> Vec<u8> {
    vec![next_header, 0, 5, 2, 0, 0, 1, 0]
}

/// A source (type 1) or target (type 2) link-layer address option, if any.
fn lla_option(kind: u8, mac: Option<Mac>) -> Vec<u8> {
    mac.map_or_else(Vec::new, |m| [&[kind, 1][..], &m].concat())
}

/// Neighbor Solicitation body: 4 reserved bytes, target, optional source link-layer address
/// option.
pub fn nd_ns_body(target: Ipv6Addr, sll: Option<Mac>) -> Vec<u8> {
    [&[0; 4][..], &target.octets(), &lla_option(1, sll)].concat()
}

/// Neighbor Advertisement body: flags (R=0x80 S=0x40 O=0x20), target, optional target
/// link-layer address option.
pub fn nd_na_body(target: Ipv6Addr, flags: u8, tll: Option<Mac>) -> Vec<u8> {
    [&[flags, 0, 0, 0][..], &target.octets(), &lla_option(2, tll)].concat()
}

/// Router Advertisement body: cur hop limit 64, router lifetime 1800 s, optional source
/// link-layer address option and a prefix information option (L and A set, host bits cleared).
///
/// # Panics
/// If the prefix length exceeds 128.
pub fn nd_ra_body(prefix: Option<(Ipv6Addr, u8)>, sll: Option<Mac>) -> Vec<u8> {
    let mut b = [
        &[64, 0][..],
        &1800u16.to_be_bytes(),
        &[0; 8],
        &lla_option(1, sll),
    ]
    .concat();
    if let Some((p, len)) = prefix {
        assert!(len <= 128, "IPv6 prefix length exceeds 128");
        let net = u128::from(p) & !u128::MAX.checked_shr(len.into()).unwrap_or(0);
        b.extend([3, 4, len, 0xc0]);
        b.extend(2_592_000u32.to_be_bytes()); // valid lifetime
        b.extend(604_800u32.to_be_bytes()); // preferred lifetime
        b.extend([0; 4]);
        b.extend(net.to_be_bytes());
    }
    b
}

/// Router Solicitation body: 4 reserved bytes, optional source link-layer address option.
pub fn nd_rs_body(sll: Option<Mac>) -> Vec<u8> {
    [&[0; 4][..], &lla_option(1, sll)].concat()
}

/// Redirect body: 4 reserved bytes, target (better next hop), destination; no options.
pub fn redirect_v6_body(target: Ipv6Addr, dest: Ipv6Addr) -> Vec<u8> {
    [&[0; 4][..], &target.octets(), &dest.octets()].concat()
}

/// MLDv2 report (type 143) body: reserved, record count, one CHANGE_TO_EXCLUDE record without
/// sources per group.
pub fn mldv2_report_body(groups: &[Ipv6Addr]) -> Vec<u8> {
    let mut b = [&[0, 0][..], &be16(groups.len())].concat();
    for g in groups {
        b.extend([4, 0, 0, 0]);
        b.extend(g.octets());
    }
    b
}

/// MLDv1 report (type 131) body: max response delay 0, reserved, group.
pub fn mldv1_report_body(group: Ipv6Addr) -> Vec<u8> {
    [&[0; 4][..], &group.octets()].concat()
}

/// A DHCPv6 message: msg-type, 3-byte transaction id and a client-id option holding the fixed
/// DUID-LL of 02:00:00:00:00:01.
///
/// # Panics
/// If `xid` does not fit in 24 bits.
pub fn dhcpv6(msg_type: u8, xid: u32) -> Vec<u8> {
    assert!(xid < 1 << 24, "DHCPv6 transaction id exceeds 24 bits");
    let mut m = xid.to_be_bytes().to_vec();
    m[0] = msg_type;
    m.extend([0, 1, 0, 10, 0, 3, 0, 1, 2, 0, 0, 0, 0, 1]);
    m
}

/// Convenience: an IPv4 packet in an Ethernet frame.
pub fn ipv4_frame(eth_dst: Mac, eth_src: Mac, h: &Ipv4, payload: &[u8]) -> Frame {
    ethernet(eth_dst, eth_src, ETHERTYPE_IPV4, &ipv4_packet(h, payload))
}

/// Convenience: an IPv6 packet in an Ethernet frame.
pub fn ipv6_frame(eth_dst: Mac, eth_src: Mac, h: &Ipv6, payload: &[u8]) -> Frame {
    ethernet(eth_dst, eth_src, ETHERTYPE_IPV6, &ipv6_packet(h, payload))
}

/// IPv6 multicast MAC 33:33:xx:xx:xx:xx for an address (its low 32 bits).
pub fn ipv6_multicast_mac(a: Ipv6Addr) -> Mac {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Solicited-node multicast address ff02::1:ffXX:XXXX of an address.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(0xff02_0000_0000_0000_0000_0001_ff00_0000 | (u128::from(a) & 0xff_ffff))
}

/// Splits an IPv6 packet body (what follows the fixed header: `first_header` type + bytes) into
/// fragments carrying at most `chunk` bytes (multiple of 8 except the last): returns full IPv6
/// packets with a fragment header each.
///
/// For evasion tests a first fragment can carry only part of an ICMPv6 header, or only part of
/// an extension-header chain: the whole body is fragmentable, and the body must already carry
/// its final checksums; `h.next_header` is ignored (each packet's is 44). An empty
/// body gives one atomic fragment.
///
/// # Panics
/// If `chunk` is not a positive multiple of 8.
pub fn ipv6_fragments(
    h: &Ipv6,
    first_header: u8,
    body: &[u8],
    chunk: usize,
    id: u32,
) -> Vec<Vec<u8>> {
    let h = Ipv6 {
        next_header: IPPROTO_FRAGMENT,
        ..*h
    };
    split(body, chunk)
        .map(|(units, more, part)| {
            ipv6_packet(
                &h,
                &[&ext_fragment(first_header, units, more, id)[..], part].concat(),
            )
        })
        .collect()
}

/// Splits an IPv4 payload into fragments of at most `chunk` bytes, each a full IPv4 packet.
///
/// Offsets are relative to `h.frag_offset_units` and the last fragment keeps `h.more_fragments`,
/// so an existing fragment can be split further.
///
/// # Panics
/// If `chunk` is not a positive multiple of 8.
pub fn ipv4_fragments(h: &Ipv4, payload: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    split(payload, chunk)
        .map(|(units, more, part)| {
            let f = Ipv4 {
                more_fragments: more || h.more_fragments,
                frag_offset_units: h.frag_offset_units + units,
                ..*h
            };
            ipv4_packet(&f, part)
        })
        .collect()
}

/// Yields (offset in 8-byte units, more follow, bytes) for each piece of `data`; at least one.
fn split(data: &[u8], chunk: usize) -> impl Iterator<Item = (u16, bool, &[u8])> {
    assert!(
        chunk > 0 && chunk.is_multiple_of(8),
        "fragment size must be a positive multiple of 8"
    );
    let last = data.len().saturating_sub(1) / chunk;
    (0..=last).map(move |i| {
        let start = i * chunk;
        let units = u16::try_from(start / 8).expect("fragment offset does not fit in 16 bits");
        (units, i < last, &data[start..data.len().min(start + chunk)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const A4: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const B4: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
    const A6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);
    const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5);

    /// A valid segment sums to 0xffff together with its pseudo-header.
    fn verifies(pseudo: &[u8], seg: &[u8]) -> bool {
        fold(sum(pseudo) + sum(seg)) == 0xffff
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
        assert_eq!(
            fold(sum(&data[..7])),
            fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0]))
        );
    }

    #[test]
    fn ipv4_header_checksum() {
        // Well-known example header (checksum field zeroed) whose checksum is 0xb861.
        assert_eq!(
            checksum(&hex("450000730000400040110000c0a80001c0a800c7")),
            0xb861
        );
        let p = ipv4_packet(
            &Ipv4 {
                id: 0x1234,
                ttl: 3,
                ..Ipv4::new(A4, B4, IPPROTO_UDP)
            },
            &[1, 2, 3],
        );
        assert_eq!(p.len(), 23);
        assert_eq!(&p[..4], &[0x45, 0, 0, 23]);
        assert_eq!(checksum(&p[..20]), 0);
    }

    #[test]
    fn transport_checksums_v4() {
        let udp = udp_v4(
            A4,
            B4,
            68,
            67,
            &dhcpv4(1, 1, 0xdead_beef, VM, Ipv4Addr::UNSPECIFIED),
        );
        assert_eq!(udp.len(), 308);
        assert!(verifies(&pseudo_v4(A4, B4, IPPROTO_UDP, udp.len()), &udp));
        let odd = udp_v4(A4, B4, 1, 2, b"odd");
        assert!(verifies(&pseudo_v4(A4, B4, IPPROTO_UDP, odd.len()), &odd));
        let tcp = tcp_v4(A4, B4, 40000, 22, 0x02, b"");
        assert_eq!(tcp.len(), 20);
        assert!(verifies(&pseudo_v4(A4, B4, IPPROTO_TCP, tcp.len()), &tcp));
        let icmp = icmp_v4(8, 0, &[0, 1, 0, 1, b'p']);
        assert_eq!(checksum(&icmp), 0);
    }

    #[test]
    fn udp_zero_checksum_is_sent_as_ones() {
        // Data equal to the checksum with zero data makes the sum 0xffff.
        let c = udp_v4(A4, B4, 1, 2, &[0, 0]);
        let u = udp_v4(A4, B4, 1, 2, &c[6..8]);
        assert_eq!(&u[6..8], &[0xff, 0xff]);
        assert!(verifies(&pseudo_v4(A4, B4, IPPROTO_UDP, u.len()), &u));
    }

    #[test]
    fn transport_checksums_v6() {
        let ns = icmpv6(A6, solicited_node(B6), 135, 0, &nd_ns_body(B6, Some(VM)));
        assert_eq!(ns.len(), 32);
        assert!(verifies(
            &pseudo_v6(A6, solicited_node(B6), IPPROTO_ICMPV6, ns.len()),
            &ns
        ));
        let udp = udp_v6(A6, B6, 546, 547, &dhcpv6(1, 0xabcdef));
        assert!(verifies(&pseudo_v6(A6, B6, IPPROTO_UDP, udp.len()), &udp));
        let tcp = tcp_v6(A6, B6, 1, 2, 0x12, b"x");
        assert!(verifies(&pseudo_v6(A6, B6, IPPROTO_TCP, tcp.len()), &tcp));
    }

    #[test]
    fn multicast_addresses() {
        assert_eq!(
            solicited_node(B6),
            "ff02::1:ff00:5".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            ipv6_multicast_mac(solicited_node(B6)),
            [0x33, 0x33, 0xff, 0, 0, 5]
        );
    }

    #[test]
    fn arp_request_bytes() {
        let a = Arp {
            op: ArpOp::Request.into(),
            sha: VM,
            spa: A4,
            tha: [0; 6],
            tpa: B4,
        };
        let expected = "ffffffffffff525400123456080600010800060400015254001234\
                        56c0a80101000000000000c0a80102000000000000000000000000000000000000";
        assert_eq!(arp(BROADCAST, VM, &a).hex(), expected);
    }

    #[test]
    fn rarp_matches_qemu() {
        let f = rarp_announce(VM);
        assert_eq!(f.bytes().len(), 60);
        assert_eq!(&f.bytes()[..14], &hex("ffffffffffff5254001234568035"));
        assert_eq!(
            &f.bytes()[14..42],
            &hex("00010800060400035254001234560000000052540012345600000000")
        );
        assert!(f.bytes()[42..].iter().all(|&b| b == 0));
    }

    #[test]
    fn frames_are_padded() {
        let h6 = Ipv6 {
            src: A6,
            dst: B6,
            next_header: 59,
            hop_limit: 64,
        };
        for f in [
            ethernet(BROADCAST, VM, 0x88b5, &[]),
            ethernet_tagged(
                BROADCAST,
                VM,
                &[(0x88a8, 100), (0x8100, 10)],
                ETHERTYPE_ARP,
                &[],
            ),
            rarp_announce(VM),
            ipv4_frame(
                BROADCAST,
                VM,
                &Ipv4::new(A4, B4, IPPROTO_ICMP),
                &icmp_v4(8, 0, &[0; 4]),
            ),
            ipv6_frame(BROADCAST, VM, &h6, &[]),
        ] {
            assert_eq!(f.bytes().len(), 60);
        }
        let big = ethernet(BROADCAST, VM, 0x88b5, &[7; 100]);
        assert_eq!(big.bytes().len(), 114);
        let q = ethernet_tagged(BROADCAST, VM, &[(0x8100, 10)], ETHERTYPE_IPV4, &[]);
        assert_eq!(&q.bytes()[12..18], &[0x81, 0, 0, 10, 8, 0]);
    }

    #[test]
    fn extension_headers() {
        assert_eq!(ext_options(58, 1), [58, 0, 1, 0, 1, 2, 0, 0]);
        assert_eq!(hbh_router_alert(58), [58, 0, 5, 2, 0, 0, 1, 0]);
        assert_eq!(ext_fragment(58, 3, true, 7), [58, 0, 0, 25, 0, 0, 0, 7]);
        for n in [2, 3, 33, 255] {
            let h = ext_options(17, n);
            assert_eq!(h.len(), 8 * usize::from(n));
            assert_eq!(h[1], n - 1);
            // Walk the options like Linux: at most 7 consecutive padding bytes, at most 8 others.
            let (mut i, mut pad, mut others) = (2, 0, 0);
            while i < h.len() {
                let len = if h[i] == 0 {
                    1
                } else {
                    usize::from(h[i + 1]) + 2
                };
                if h[i] <= 1 {
                    pad += len;
                } else {
                    (pad, others) = (0, others + 1);
                }
                assert!(pad <= 7 && others <= 8 && h[i + 2..i + len].iter().all(|&b| b == 0));
                i += len;
            }
            assert_eq!(i, h.len());
        }
    }

    #[test]
    fn nd_and_mld_bodies() {
        let ra = nd_ra_body(Some(("2001:db8::ff".parse().unwrap(), 64)), Some(VM));
        assert_eq!(ra.len(), 12 + 8 + 32);
        assert_eq!(&ra[..4], &[64, 0, 0x07, 0x08]);
        assert_eq!(&ra[20..24], &[3, 4, 64, 0xc0]);
        assert_eq!(&ra[36..], &hex("20010db8000000000000000000000000"));
        assert_eq!(
            nd_na_body(B6, 0x60, Some(VM))[20..],
            [2, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]
        );
        assert_eq!(nd_rs_body(None), [0; 4]);
        assert_eq!(redirect_v6_body(A6, B6).len(), 36);
        assert_eq!(mldv1_report_body(B6).len(), 20);
        let mld = mldv2_report_body(&[B6, solicited_node(B6)]);
        assert_eq!(mld.len(), 4 + 2 * 20);
        assert_eq!(&mld[..8], &[0, 0, 0, 2, 4, 0, 0, 0]);
        assert_eq!(dhcpv6(1, 0xabcdef)[..4], [1, 0xab, 0xcd, 0xef]);
    }

    #[test]
    fn ipv6_fragment_offsets() {
        let h = Ipv6 {
            src: A6,
            dst: B6,
            next_header: IPPROTO_ICMPV6,
            hop_limit: 64,
        };
        let body = [
            ext_options(IPPROTO_ICMPV6, 2),
            icmpv6(A6, B6, 128, 0, &[0; 20]),
        ]
        .concat();
        let frags = ipv6_fragments(&h, IPPROTO_DSTOPTS, &body, 16, 0x1234_5678);
        assert_eq!(frags.len(), 3);
        let mut joined = vec![];
        for (i, f) in frags.iter().enumerate() {
            assert_eq!(f[6], IPPROTO_FRAGMENT);
            assert_eq!(usize::from(u16::from_be_bytes([f[4], f[5]])), f.len() - 40);
            let off = u16::from_be_bytes([f[42], f[43]]);
            assert_eq!(
                (f[40], usize::from(off >> 3), off & 1),
                (IPPROTO_DSTOPTS, 2 * i, u16::from(i < 2))
            );
            assert_eq!(&f[44..48], &[0x12, 0x34, 0x56, 0x78]);
            joined.extend_from_slice(&f[48..]);
        }
        assert_eq!(joined, body);
        assert_eq!(
            ipv6_fragments(&h, 59, &[], 8, 1),
            [ipv6_packet(
                &Ipv6 {
                    next_header: 44,
                    ..h
                },
                &ext_fragment(59, 0, false, 1)
            )]
        );
    }

    #[test]
    fn ipv4_fragment_offsets() {
        let h = Ipv4 {
            id: 99,
            ..Ipv4::new(A4, B4, IPPROTO_UDP)
        };
        let payload = udp_v4(A4, B4, 1, 2, &[0xaa; 30]);
        let frags = ipv4_fragments(&h, &payload, 16);
        let flags: Vec<_> = frags
            .iter()
            .map(|f| u16::from_be_bytes([f[6], f[7]]))
            .collect();
        assert_eq!(flags, [0x2000, 0x2002, 0x0004]);
        assert!(frags
            .iter()
            .all(|f| checksum(&f[..20]) == 0 && f[4..6] == [0, 99]));
        assert_eq!(
            frags
                .iter()
                .flat_map(|f| &f[20..])
                .copied()
                .collect::<Vec<_>>(),
            payload
        );
        let again = ipv4_fragments(
            &Ipv4 {
                more_fragments: true,
                frag_offset_units: 2,
                ..h
            },
            &payload[16..32],
            8,
        );
        let flags: Vec<_> = again
            .iter()
            .map(|f| u16::from_be_bytes([f[6], f[7]]))
            .collect();
        assert_eq!(flags, [0x2002, 0x2003]);
    }
}
