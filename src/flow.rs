//! OpenFlow flows as data: matches, actions, rendering in `ovs-ofctl` syntax, overlap checks,
//! and parsing of `ovs-ofctl dump-flows` lines into the same normal form for diffing.

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::model::{MacAddr, OfPort};
use crate::pipeline::{Cookie, Table};

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;
pub const ETH_ARP: u16 = 0x0806;
pub const ETH_RARP: u16 = 0x8035;
/// 802.1Q and 802.1ad tag protocol identifiers: a frame's type when OVS did not parse its
/// inner tag (OVS parses only the outer one by default).
pub const ETH_VLAN_TAGS: [u16; 2] = [0x8100, 0x88a8];
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
/// The NA flags word of an answered solicitation: Solicited and Override set, Router clear.
const ND_ADVERT_FLAGS: u32 = 0x6000_0000;

/// A match field, in the order OVS prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Reg0,
    Reg1,
    InPort,
    VlanTci,
    DlSrc,
    DlDst,
    DlType,
    /// nw_src, ipv6_src or arp_spa depending on dl_type.
    NwSrc,
    /// nw_dst, ipv6_dst or arp_tpa depending on dl_type.
    NwDst,
    /// nw_proto, or arp_op for ARP/RARP.
    NwProto,
    NwFrag,
    ArpSha,
    ArpTha,
    /// tp_src, or icmp_type for ICMP.
    TpSrc,
    /// tp_dst, or icmp_code for ICMP.
    TpDst,
    NdTarget,
    NdSll,
    NdTll,
    NdOptionsType,
    /// IPv4 TTL or IPv6 hop limit.
    NwTtl,
}

/// Fragment matches of `nw_frag` (value/mask over OVS's ANY=1, LATER=2 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frag {
    /// Not a fragment.
    No,
    /// A first fragment (offset 0, more fragments).
    First,
    /// Not a later fragment: unfragmented, or a first fragment (L4 fields present if any).
    NotLater,
    /// Any fragment.
    Yes,
}

impl Frag {
    fn value_mask(self) -> (u128, u128) {
        match self {
            Frag::No => (0, 1),
            Frag::First => (1, 3),
            Frag::NotLater => (0, 2),
            Frag::Yes => (1, 1),
        }
    }
}

/// One field constraint: the packet's field, masked, must equal `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    pub field: Field,
    pub value: u128,
    pub mask: u128,
}

/// A flow's actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Goto(Table),
    Resubmit(Table),
    Output(OfPort),
    Normal,
    InPort,
    Drop,
    SetReg0(u32),
    SetReg1(u32),
    /// The ARP responder's rewrite of a request into a reply from `mac`/`ip`.
    ArpReply(MacAddr, Ipv4Addr),
    /// The ND responder's rewrite of a solicitation into a solicited, overriding advertisement
    /// from `mac`/`ip` (hop limit 255, the option turned into a target link-layer address
    /// option); [`Action::SetNdTll`] fills that option in the next table.
    NdAdvert(MacAddr, Ipv6Addr),
    /// Sets the target link-layer address option of an NA.
    SetNdTll(MacAddr),
    /// Sets the Ethernet destination.
    SetEthDst(MacAddr),
}

/// One OpenFlow flow as vmguard installs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub table: Table,
    pub priority: u16,
    pub cookie: Cookie,
    pub matches: Vec<Match>,
    pub actions: Vec<Action>,
}

/// Builds a flow's match list fluently.
#[derive(Clone, Debug, Default)]
pub struct MatchBuilder(Vec<Match>);

impl MatchBuilder {
    pub fn new() -> Self {
        MatchBuilder(Vec::new())
    }

    fn push(mut self, field: Field, value: u128, mask: u128) -> Self {
        debug_assert!(
            self.0.iter().all(|m| m.field != field),
            "{field:?} set twice"
        );
        self.0.push(Match { field, value, mask });
        self
    }

    fn full(bits: u32) -> u128 {
        if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        }
    }

    pub fn in_port(self, p: OfPort) -> Self {
        self.push(Field::InPort, p.get().into(), Self::full(32))
    }
    pub fn reg0(self, v: u32) -> Self {
        self.push(Field::Reg0, v.into(), Self::full(32))
    }
    pub fn reg1(self, v: u32) -> Self {
        self.push(Field::Reg1, v.into(), Self::full(32))
    }
    /// No 802.1Q tag present (the CFI/"present" bit of vlan_tci clear).
    pub fn untagged(self) -> Self {
        self.push(Field::VlanTci, 0, 0x1000)
    }
    pub fn dl_src(self, m: MacAddr) -> Self {
        self.push(Field::DlSrc, m.as_u64().into(), Self::full(48))
    }
    pub fn dl_dst(self, m: MacAddr) -> Self {
        self.push(Field::DlDst, m.as_u64().into(), Self::full(48))
    }
    /// Eth dst with the group bit clear: a unicast frame.
    pub fn dl_dst_unicast(self) -> Self {
        self.push(Field::DlDst, 0, 0x0100_0000_0000)
    }
    /// Eth dst with the group bit set: broadcast or multicast.
    pub fn dl_dst_group(self) -> Self {
        self.push(Field::DlDst, 0x0100_0000_0000, 0x0100_0000_0000)
    }
    pub fn dl_type(self, t: u16) -> Self {
        self.push(Field::DlType, t.into(), Self::full(16))
    }
    pub fn nw_proto(self, p: u8) -> Self {
        self.push(Field::NwProto, p.into(), Self::full(8))
    }
    pub fn ipv4(self) -> Self {
        self.dl_type(ETH_IPV4)
    }
    pub fn ipv6(self) -> Self {
        self.dl_type(ETH_IPV6)
    }
    pub fn arp(self) -> Self {
        self.dl_type(ETH_ARP)
    }
    pub fn udp(self) -> Self {
        self.ipv4().nw_proto(PROTO_UDP)
    }
    pub fn icmp(self) -> Self {
        self.ipv4().nw_proto(PROTO_ICMP)
    }
    pub fn udp6(self) -> Self {
        self.ipv6().nw_proto(PROTO_UDP)
    }
    pub fn icmp6(self) -> Self {
        self.ipv6().nw_proto(PROTO_ICMPV6)
    }
    pub fn arp_op(self, op: u16) -> Self {
        self.push(Field::NwProto, op.into(), Self::full(8))
    }
    pub fn nw_src4(self, a: Ipv4Addr) -> Self {
        self.push(Field::NwSrc, u32::from(a).into(), Self::full(32))
    }
    pub fn nw_dst4(self, a: Ipv4Addr) -> Self {
        self.push(Field::NwDst, u32::from(a).into(), Self::full(32))
    }
    pub fn nw_src4_masked(self, a: u32, mask: u32) -> Self {
        self.push(Field::NwSrc, a.into(), mask.into())
    }
    pub fn nw_dst4_masked(self, a: u32, mask: u32) -> Self {
        self.push(Field::NwDst, a.into(), mask.into())
    }
    pub fn ipv6_src(self, a: Ipv6Addr) -> Self {
        self.push(Field::NwSrc, u128::from(a), u128::MAX)
    }
    pub fn ipv6_dst(self, a: Ipv6Addr) -> Self {
        self.push(Field::NwDst, u128::from(a), u128::MAX)
    }
    pub fn nw_frag(self, f: Frag) -> Self {
        let (v, m) = f.value_mask();
        self.push(Field::NwFrag, v, m)
    }
    pub fn arp_sha(self, m: MacAddr) -> Self {
        self.push(Field::ArpSha, m.as_u64().into(), Self::full(48))
    }
    pub fn tp_src(self, p: u16) -> Self {
        self.push(Field::TpSrc, p.into(), Self::full(16))
    }
    pub fn tp_dst(self, p: u16) -> Self {
        self.push(Field::TpDst, p.into(), Self::full(16))
    }
    pub fn icmp_type(self, t: u8) -> Self {
        self.push(Field::TpSrc, t.into(), Self::full(16))
    }
    /// Requires `icmp6` and `icmp_type` 135 or 136 (OVS silently drops it otherwise).
    pub fn nd_target(self, a: Ipv6Addr) -> Self {
        self.push(Field::NdTarget, u128::from(a), u128::MAX)
    }
    pub fn nd_sll(self, m: MacAddr) -> Self {
        self.push(Field::NdSll, m.as_u64().into(), Self::full(48))
    }
    pub fn nd_tll(self, m: MacAddr) -> Self {
        self.push(Field::NdTll, m.as_u64().into(), Self::full(48))
    }
    /// Type of the link-layer option OVS extracted (1 = SLL, 2 = TLL); tells a zero MAC in an
    /// option from an absent option.
    pub fn nd_options_type(self, t: u8) -> Self {
        self.push(Field::NdOptionsType, t.into(), Self::full(8))
    }
    /// IPv4 TTL / IPv6 hop limit (ND messages arrive with 255, RFC 4861).
    pub fn nw_ttl(self, ttl: u8) -> Self {
        self.push(Field::NwTtl, ttl.into(), Self::full(8))
    }
    pub fn build(mut self) -> Vec<Match> {
        self.0.sort_by_key(|m| m.field);
        self.0
    }
}

impl Flow {
    fn get(&self, field: Field) -> Option<&Match> {
        self.matches.iter().find(|m| m.field == field)
    }

    fn dl_type(&self) -> Option<u16> {
        self.get(Field::DlType).map(|m| m.value as u16)
    }

    fn nw_proto(&self) -> Option<u8> {
        self.get(Field::NwProto).map(|m| m.value as u8)
    }

    /// True if some packet can match both flows (each shared field agrees under both masks).
    pub fn overlaps(&self, other: &Flow) -> bool {
        self.matches.iter().all(|a| match other.get(a.field) {
            Some(b) => (a.value ^ b.value) & a.mask & b.mask == 0,
            None => true,
        })
    }

    /// The match part in OVS's canonical spelling, e.g. `arp,in_port=5,arp_spa=10.0.0.5`.
    pub fn match_string(&self) -> String {
        let dl_type = self.dl_type();
        let proto = self.nw_proto();
        let is_arp = matches!(dl_type, Some(ETH_ARP) | Some(ETH_RARP));
        let is_v6 = dl_type == Some(ETH_IPV6);
        let is_icmp = matches!(
            (dl_type, proto),
            (Some(ETH_IPV4), Some(PROTO_ICMP)) | (Some(ETH_IPV6), Some(PROTO_ICMPV6))
        );
        let full = match (dl_type, proto) {
            (Some(ETH_IPV4), Some(PROTO_ICMP)) => Some("icmp"),
            (Some(ETH_IPV4), Some(PROTO_TCP)) => Some("tcp"),
            (Some(ETH_IPV4), Some(PROTO_UDP)) => Some("udp"),
            (Some(ETH_IPV6), Some(PROTO_ICMPV6)) => Some("icmp6"),
            (Some(ETH_IPV6), Some(PROTO_TCP)) => Some("tcp6"),
            (Some(ETH_IPV6), Some(PROTO_UDP)) => Some("udp6"),
            _ => None,
        };
        // Without a known protocol OVS still abbreviates the ethertype and prints nw_proto.
        let shorthand = full.or(match dl_type {
            Some(ETH_IPV4) => Some("ip"),
            Some(ETH_IPV6) => Some("ipv6"),
            Some(ETH_ARP) => Some("arp"),
            Some(ETH_RARP) => Some("rarp"),
            _ => None,
        });
        let mut parts: Vec<String> = Vec::new();
        if let Some(s) = shorthand {
            parts.push(s.to_string());
        }
        for m in &self.matches {
            let name = match m.field {
                Field::Reg0 => "reg0",
                Field::Reg1 => "reg1",
                Field::InPort => "in_port",
                Field::VlanTci => "vlan_tci",
                Field::DlSrc => "dl_src",
                Field::DlDst => "dl_dst",
                Field::DlType if shorthand.is_some() => continue,
                Field::DlType => "dl_type",
                Field::NwSrc if is_arp => "arp_spa",
                Field::NwSrc if is_v6 => "ipv6_src",
                Field::NwSrc => "nw_src",
                Field::NwDst if is_arp => "arp_tpa",
                Field::NwDst if is_v6 => "ipv6_dst",
                Field::NwDst => "nw_dst",
                Field::NwProto if is_arp => "arp_op",
                Field::NwProto if full.is_some() => continue,
                Field::NwProto => "nw_proto",
                Field::NwFrag => "nw_frag",
                Field::ArpSha => "arp_sha",
                Field::ArpTha => "arp_tha",
                Field::TpSrc if is_icmp => "icmp_type",
                Field::TpSrc => "tp_src",
                Field::TpDst if is_icmp => "icmp_code",
                Field::TpDst => "tp_dst",
                Field::NdTarget => "nd_target",
                Field::NdSll => "nd_sll",
                Field::NdTll => "nd_tll",
                Field::NdOptionsType => "nd_options_type",
                Field::NwTtl => "nw_ttl",
            };
            parts.push(format!("{name}={}", format_value(m, is_v6)));
        }
        parts.join(",")
    }

    pub fn actions_string(&self) -> String {
        let mut out = String::new();
        for (i, a) in self.actions.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match a {
                Action::Goto(t) => write!(out, "goto_table:{}", t.id()),
                Action::Resubmit(t) => write!(out, "resubmit(,{})", t.id()),
                Action::Output(p) if *p == OfPort::LOCAL => write!(out, "LOCAL"),
                Action::Output(p) => write!(out, "output:{p}"),
                Action::Normal => write!(out, "NORMAL"),
                Action::InPort => write!(out, "IN_PORT"),
                Action::Drop => write!(out, "drop"),
                Action::SetReg0(v) => write!(out, "set_field:{v:#x}->reg0"),
                Action::SetReg1(v) => write!(out, "set_field:{v:#x}->reg1"),
                Action::ArpReply(mac, ip) => write!(
                    out,
                    "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{mac}->eth_src,set_field:2->arp_op,\
                     move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],\
                     set_field:{mac}->arp_sha,set_field:{ip}->arp_spa,IN_PORT"
                ),
                // OVS prints nd_reserved in decimal: R=0, S=1, O=1 is 0x60000000.
                Action::NdAdvert(mac, ip) => write!(
                    out,
                    "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{mac}->eth_src,\
                     move:NXM_NX_IPV6_SRC[]->NXM_NX_IPV6_DST[],set_field:{ip}->ipv6_src,\
                     set_field:255->nw_ttl,set_field:136->icmpv6_type,\
                     set_field:{}->nd_reserved,set_field:2->nd_options_type",
                    ND_ADVERT_FLAGS
                ),
                Action::SetNdTll(mac) => write!(out, "set_field:{mac}->nd_tll"),
                Action::SetEthDst(mac) => write!(out, "set_field:{mac}->eth_dst"),
            }
            .expect("writing to a String cannot fail");
        }
        out
    }

    /// This flow's normal form, as [`FlowKey::parse`] gives it for a dumped flow.
    pub fn key(&self) -> FlowKey {
        FlowKey {
            cookie: self.cookie.raw(),
            table: self.table.id(),
            priority: self.priority,
            matches: split_match(&self.match_string()),
            actions: self.actions_string(),
        }
    }
}

fn format_mac(v: u128) -> String {
    let b = (v as u64).to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]).to_string()
}

fn format_value(m: &Match, is_v6: bool) -> String {
    match m.field {
        Field::DlSrc
        | Field::DlDst
        | Field::ArpSha
        | Field::ArpTha
        | Field::NdSll
        | Field::NdTll => {
            if m.mask == (1u128 << 48) - 1 {
                format_mac(m.value)
            } else {
                format!("{}/{}", format_mac(m.value), format_mac(m.mask))
            }
        }
        Field::NwSrc | Field::NwDst if is_v6 => format!("{}", Ipv6Addr::from(m.value)),
        Field::NdTarget => format!("{}", Ipv6Addr::from(m.value)),
        Field::NwSrc | Field::NwDst => {
            let (v, mask) = (m.value as u32, m.mask as u32);
            if mask == u32::MAX {
                Ipv4Addr::from(v).to_string()
            } else if mask.leading_ones() + mask.trailing_zeros() == 32 {
                format!("{}/{}", Ipv4Addr::from(v), mask.leading_ones())
            } else {
                format!("{}/{}", Ipv4Addr::from(v), Ipv4Addr::from(mask))
            }
        }
        Field::VlanTci => format!("{:#06x}/{:#06x}", m.value, m.mask),
        Field::DlType => format!("{:#06x}", m.value),
        Field::NwFrag => match (m.value, m.mask) {
            (0, 1) => "no".into(),
            (1, 3) => "first".into(),
            (1, 1) => "yes".into(),
            (3, 3) => "later".into(),
            (0, 2) => "not_later".into(),
            (v, mk) => format!("{v:#x}/{mk:#x}"),
        },
        Field::InPort => OfPort::new(m.value as u32)
            .map(|p| p.to_string())
            .unwrap_or_else(|_| m.value.to_string()),
        Field::Reg0
        | Field::Reg1
        | Field::NwProto
        | Field::TpSrc
        | Field::TpDst
        | Field::NdOptionsType
        | Field::NwTtl => {
            if matches!(m.field, Field::Reg0 | Field::Reg1) && m.value != 0 {
                format!("{:#x}", m.value)
            } else {
                m.value.to_string()
            }
        }
    }
}

/// A match's tokens in one order (sorted, deduplicated), joined by commas: the form both sides
/// of a comparison take, in one allocation.
fn normal_match<'a>(tokens: impl Iterator<Item = &'a str>) -> String {
    let mut t: Vec<&str> = tokens.map(str::trim).filter(|t| !t.is_empty()).collect();
    t.sort_unstable();
    t.dedup();
    t.join(",")
}

fn split_match(s: &str) -> String {
    normal_match(s.split(','))
}

impl fmt::Display for Flow {
    /// `ovs-ofctl add-flows` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cookie={}, table={}, priority={},{} actions={}",
            self.cookie,
            self.table.id(),
            self.priority,
            self.match_string(),
            self.actions_string()
        )
    }
}

/// A flow in normal form: what identifies it on the switch and what it does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    pub cookie: u64,
    pub table: u8,
    pub priority: u16,
    /// The match fields (`name=value` or a protocol shorthand such as `icmp6`), sorted and
    /// joined by commas; see [`FlowKey::match_tokens`].
    pub matches: String,
    pub actions: String,
}

/// A flow read back from `ovs-ofctl dump-flows`, with its packet counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpedFlow {
    pub key: FlowKey,
    pub n_packets: u64,
}

impl FlowKey {
    /// Parses one `dump-flows` line (with or without statistics).
    pub fn parse(line: &str) -> Option<DumpedFlow> {
        let (head, actions) = line.trim().split_once(" actions=")?;
        let mut key = FlowKey {
            cookie: 0,
            table: 0,
            priority: 32768,
            matches: String::new(),
            actions: actions.trim().to_string(),
        };
        let mut matches: Vec<&str> = Vec::new();
        let mut n_packets = 0;
        // Fields are separated by commas, and flags (`reset_counts`, `send_flow_rem`, …) from the
        // match by a space: no field value holds either.
        for tok in head.split([',', ' ']).filter(|t| !t.is_empty()) {
            let (name, value) = tok.split_once('=').unwrap_or((tok, ""));
            match name {
                "cookie" => {
                    key.cookie = u64::from_str_radix(value.trim_start_matches("0x"), 16).ok()?
                }
                "table" => key.table = value.parse().ok()?,
                "priority" => key.priority = value.parse().ok()?,
                "n_packets" => n_packets = value.parse().ok()?,
                "duration" | "n_bytes" | "idle_age" | "hard_age" | "idle_timeout"
                | "hard_timeout" | "reset_counts" | "send_flow_rem" | "check_overlap"
                | "no_packet_counts" | "no_byte_counts" | "importance" => {}
                _ => matches.push(tok),
            }
        }
        key.matches = normal_match(matches.into_iter());
        Some(DumpedFlow { key, n_packets })
    }

    /// The match fields, in the order of [`FlowKey::matches`].
    pub fn match_tokens(&self) -> impl Iterator<Item = &str> {
        self.matches.split(',').filter(|t| !t.is_empty())
    }

    /// `delete_strict` bundle line removing exactly this flow (cookie included).
    pub fn delete_strict(&self) -> String {
        let m: Vec<&str> = self.match_tokens().collect();
        // The protocol shorthand must come first in ovs-ofctl's parser: it sets dl_type that
        // later fields need as their prerequisite.
        let (protos, fields): (Vec<&str>, Vec<&str>) = m.iter().partition(|t| !t.contains('='));
        let mut all = protos;
        all.extend(fields);
        format!(
            "delete_strict cookie={:#x}/-1, table={}, priority={},{}",
            self.cookie,
            self.table,
            self.priority,
            all.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{IfaceKey, Reason};

    fn flow(matches: Vec<Match>, actions: Vec<Action>) -> Flow {
        Flow {
            table: Table::SourceGuard,
            priority: 100,
            cookie: Cookie::new(IfaceKey::BASE, Reason::Pass),
            matches,
            actions,
        }
    }

    #[test]
    fn renders_like_ovs_dump() {
        let f = flow(
            MatchBuilder::new()
                .arp()
                .in_port(OfPort::new(5).unwrap())
                .arp_sha("52:54:00:00:00:05".parse().unwrap())
                .nw_src4("10.0.0.5".parse().unwrap())
                .build(),
            vec![Action::Goto(Table::ArpSteer)],
        );
        assert_eq!(
            f.to_string(),
            "cookie=0x7667000000000000, table=20, priority=100,arp,in_port=5,arp_spa=10.0.0.5,arp_sha=52:54:00:00:00:05 actions=goto_table:40"
        );
        let dumped = FlowKey::parse(" cookie=0x7667000000000000, duration=3.2s, table=20, n_packets=7, n_bytes=420, priority=100,arp,in_port=5,arp_spa=10.0.0.5,arp_sha=52:54:00:00:00:05 actions=goto_table:40").unwrap();
        assert_eq!(dumped.key, f.key());
        assert_eq!(dumped.n_packets, 7);
        // Flags come before the match, after a space (a flow added over OpenFlow 1.0, dumped
        // over 1.4), with or without statistics.
        for line in [
            " cookie=0x7667000000000000, duration=3.2s, table=20, n_packets=7, n_bytes=420, reset_counts priority=100,arp,in_port=5,arp_spa=10.0.0.5,arp_sha=52:54:00:00:00:05 actions=goto_table:40",
            " cookie=0x7667000000000000, table=20, send_flow_rem reset_counts no_packet_counts no_byte_counts priority=100,arp,in_port=5,arp_spa=10.0.0.5,arp_sha=52:54:00:00:00:05 actions=goto_table:40",
        ] {
            assert_eq!(FlowKey::parse(line).unwrap().key, f.key(), "{line}");
        }
        let k = FlowKey::parse(" reset_counts priority=5 actions=drop")
            .unwrap()
            .key;
        assert_eq!((k.table, k.priority, k.matches.as_str()), (0, 5, ""));
        assert_eq!(
            k.delete_strict(),
            "delete_strict cookie=0x0/-1, table=0, priority=5,"
        );
    }

    #[test]
    fn overlap_rules() {
        let a = flow(
            MatchBuilder::new()
                .in_port(OfPort::new(1).unwrap())
                .dl_src("52:54:00:00:00:01".parse().unwrap())
                .build(),
            vec![],
        );
        let b = flow(
            MatchBuilder::new()
                .in_port(OfPort::new(1).unwrap())
                .arp()
                .build(),
            vec![],
        );
        let c = flow(
            MatchBuilder::new().in_port(OfPort::new(2).unwrap()).build(),
            vec![],
        );
        assert!(
            a.overlaps(&b),
            "the paper's Listing 1 bug: same port, one frame matches both"
        );
        assert!(!a.overlaps(&c));
        let u = flow(MatchBuilder::new().arp().dl_dst_unicast().build(), vec![]);
        let bc = flow(
            MatchBuilder::new().arp().dl_dst(MacAddr::BROADCAST).build(),
            vec![],
        );
        assert!(!u.overlaps(&bc));
        let first = flow(
            MatchBuilder::new().icmp6().nw_frag(Frag::First).build(),
            vec![],
        );
        let no = flow(
            MatchBuilder::new().icmp6().nw_frag(Frag::No).build(),
            vec![],
        );
        assert!(!first.overlaps(&no));
    }

    #[test]
    fn delete_strict_puts_protocol_first() {
        let k = FlowKey::parse("cookie=0x7667000000000001, table=20, priority=100,in_port=5,arp,arp_spa=10.0.0.5 actions=drop").unwrap().key;
        assert_eq!(k.delete_strict(), "delete_strict cookie=0x7667000000000001/-1, table=20, priority=100,arp,arp_spa=10.0.0.5,in_port=5");
    }
}
