//! The guard pipeline's layout in one place: tables, priority bands, the cookie layout and the
//! drop reasons. `docs/pipeline.md` explains each of them; change both together.

use std::fmt;

/// The OpenFlow tables vmguard uses, in the order a packet walks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Admits a frame by ingress port: a VM port with its own MAC as eth src, or an uplink.
    /// Everything else (unguarded ports, spoofed MACs) is dropped here.
    PortGuard = 0,
    /// VM frames only: untagged IPv4, IPv6, ARP and RARP pass; VLAN tags and other types drop.
    EthertypeGuard = 10,
    /// VM frames only: the L3 source (IPv4/IPv6) and the ARP sender fields must be owned;
    /// the DHCP-from-0.0.0.0, `::` (DAD/MLD/RS) and ARP-probe exceptions live here.
    SourceGuard = 20,
    /// VM IP packets with an owned source: RAs, redirects, DHCP server messages, forged NA/NS
    /// and fragments or header chains that hide L4 fields are dropped.
    PayloadGuard = 30,
    /// ARP steering: broadcast requests go to the owner's port, are answered, or go to uplinks.
    ArpSteer = 40,
    /// Compares arp_spa with arp_tpa nibble by nibble (OpenFlow cannot compare two fields):
    /// a gratuitous request is flooded, any other request for an unowned address goes to uplinks.
    GarpCheck = 45,
    /// NS steering: multicast solicitations go to the target's owner (or, in responder mode,
    /// are turned into the owner's advertisement), else to the uplinks.
    NdSteer = 50,
    /// Responder mode only: completes the advertisement `nd_steer` built from a solicitation
    /// (sets the target link-layer address, which OVS lets a flow set only on a packet it
    /// matches as an NA) and sends it back out of the ingress port.
    NdAnswer = 55,
    /// L2 forwarding: IPv6 from an uplink to an owned address goes to its owner with the
    /// owner's MAC; unicast to a guarded VM's MAC goes straight to its port, other unicast to
    /// the uplinks; broadcast and multicast to OVS's NORMAL switching.
    L2Forward = 60,
    /// Output to every uplink (shared so per-VM flows never name uplink port numbers).
    ToUplinks = 70,
}

impl Table {
    pub const ALL: [Table; 10] = [
        Table::PortGuard,
        Table::EthertypeGuard,
        Table::SourceGuard,
        Table::PayloadGuard,
        Table::ArpSteer,
        Table::GarpCheck,
        Table::NdSteer,
        Table::NdAnswer,
        Table::L2Forward,
        Table::ToUplinks,
    ];

    pub fn id(self) -> u8 {
        self as u8
    }

    pub fn from_id(id: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::PortGuard => "port_guard",
            Table::EthertypeGuard => "ethertype_guard",
            Table::SourceGuard => "source_guard",
            Table::PayloadGuard => "payload_guard",
            Table::ArpSteer => "arp_steer",
            Table::GarpCheck => "garp_check",
            Table::NdSteer => "nd_steer",
            Table::NdAnswer => "nd_answer",
            Table::L2Forward => "l2_forward",
            Table::ToUplinks => "to_uplinks",
        }
    }
}

/// `reg1` holds this value from `port_guard` on when the frame entered from an uplink: the
/// tables after it tell uplink traffic from a VM's without naming uplink port numbers.
pub const FROM_UPLINK: u32 = 1;

/// Named priorities. Within one table, flows of one band never overlap (checked by a test);
/// a higher band wins over a lower one.
pub mod prio {
    /// Table defaults (drop, NORMAL, goto next).
    pub const DEFAULT: u16 = 0;
    /// Per-port catch-all drops, counted per VM and reason.
    pub const PORT_DROP: u16 = 10;
    /// Per-port "everything else of this kind" drops (e.g. any other ARP from the port).
    pub const KIND_DROP: u16 = 20;
    /// NS from `::` that no DAD flow allowed (a DAD for an address the port does not own):
    /// counted as ND spoofing rather than as the generic `::` source drop below it.
    pub const UNSPEC_ND_DROP: u16 = 30;
    /// Uplink admission and generic allow/steer flows.
    pub const ALLOW: u16 = 100;
    /// "Anything else of this ND type" drops, below the owner-specific allows.
    pub const ND_DROP: u16 = 190;
    /// Owner-specific allow/steer flows.
    pub const OWNER: u16 = 200;
    /// IPv6 to an owned address goes to its owner with the owner's MAC, whatever MAC the
    /// sender used: above the per-MAC forwarding it corrects.
    pub const OWNER_ADDRESS: u16 = 220;
    /// Responder mode: solicitations the switch cannot answer (no source link-layer address
    /// option) go to the owner.
    pub const OWNER_UNANSWERABLE: u16 = 240;
    /// Responder mode: probes (ARP from 0.0.0.0, DAD from `::`) go to the owner instead of
    /// being answered.
    pub const OWNER_PROBE: u16 = 250;
    /// A VM's requests for its own addresses (gratuitous ARP, DAD) go to the uplinks.
    pub const SELF_TARGET: u16 = 300;
    /// Specific drops that must win over allows of the same packet kind.
    pub const DENY_LOW: u16 = 400;
    pub const DENY: u16 = 410;
    pub const DENY_HIGH: u16 = 420;
    /// Unicast ARP/NS bypass steering (plain L2).
    pub const UNICAST: u16 = 500;
}

/// Why a flow drops packets; kept in the cookie so `status` can count drops per VM and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Not a drop: admission, validation passed, steering or forwarding.
    Pass = 0,
    /// Eth src is not the port's MAC (Req1).
    MacSpoof = 1,
    /// VLAN-tagged frame or an ethertype other than IPv4, IPv6, ARP, RARP.
    Ethertype = 2,
    /// IPv4/IPv6 source not owned (Req2, Req3), or `::`/0.0.0.0 outside the exceptions.
    IpSpoof = 3,
    /// ARP or RARP whose sender MAC or IP is not owned (Req4).
    ArpSpoof = 4,
    /// Router Advertisement (Req5), IPv6 or IPv4 (IRDP).
    RouterAdvert = 5,
    /// NA/NS with a target or link-layer option the port does not own (Req6).
    NdSpoof = 6,
    /// ICMPv4 or ICMPv6 redirect (Req7).
    Redirect = 7,
    /// DHCPv4 or DHCPv6 server-to-client message (Req9).
    DhcpServer = 8,
    /// Fragmented ND/ICMPv6, tiny UDP first fragments, truncated IPv6 header chains:
    /// packets whose L4 fields the switch cannot see.
    Evasion = 9,
    /// A port that no vmguard flow admits (fail closed).
    Unguarded = 10,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::Pass,
        Reason::MacSpoof,
        Reason::Ethertype,
        Reason::IpSpoof,
        Reason::ArpSpoof,
        Reason::RouterAdvert,
        Reason::NdSpoof,
        Reason::Redirect,
        Reason::DhcpServer,
        Reason::Evasion,
        Reason::Unguarded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Pass => "pass",
            Reason::MacSpoof => "mac_spoof",
            Reason::Ethertype => "vlan_ethertype",
            Reason::IpSpoof => "ip_spoof",
            Reason::ArpSpoof => "arp_spoof",
            Reason::RouterAdvert => "router_advert",
            Reason::NdSpoof => "nd_spoof",
            Reason::Redirect => "redirect",
            Reason::DhcpServer => "dhcp_server",
            Reason::Evasion => "fragment_evasion",
            Reason::Unguarded => "unguarded_port",
        }
    }

    fn from_id(id: u8) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| *r as u8 == id)
    }
}

/// The 40-bit key of one guarded interface, derived from the domain UUID and the MAC; 0 is
/// reserved for the bridge-wide base flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfaceKey(u64);

impl IfaceKey {
    pub const BASE: IfaceKey = IfaceKey(0);
    const BITS: u32 = 40;
    const MASK: u64 = (1 << Self::BITS) - 1;

    /// FNV-1a 64 of "uuid/mac" folded to 40 bits: stable across releases and platforms.
    pub fn derive(uuid: &crate::model::DomainUuid, mac: crate::model::MacAddr) -> IfaceKey {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in format!("{}/{}", uuid.as_str(), mac).bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let folded = (h ^ (h >> Self::BITS)) & Self::MASK;
        IfaceKey(if folded == 0 { 1 } else { folded })
    }

    pub fn from_raw(raw: u64) -> Option<IfaceKey> {
        (raw & !Self::MASK == 0).then_some(IfaceKey(raw))
    }

    pub fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Display for IfaceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010x}", self.0)
    }
}

/// Cookie layout (64 bits): `0x7667` tag (bits 63-48) | reason (47-40) | interface key (39-0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cookie(u64);

impl Cookie {
    /// "vg": marks every flow vmguard owns.
    pub const TAG: u64 = 0x7667 << 48;
    pub const TAG_MASK: u64 = 0xffff << 48;
    const REASON_SHIFT: u32 = 40;
    /// Selects all flows of one interface (or of the base) whatever their reason.
    pub const OWNER_MASK: u64 = Self::TAG_MASK | IfaceKey::MASK;

    pub fn new(key: IfaceKey, reason: Reason) -> Cookie {
        Cookie(Self::TAG | (u64::from(reason as u8) << Self::REASON_SHIFT) | key.raw())
    }

    /// Decodes a cookie seen on the switch; `None` if it is not vmguard's.
    pub fn decode(raw: u64) -> Option<Cookie> {
        let c = Cookie(raw);
        (raw & Self::TAG_MASK == Self::TAG
            && Reason::from_id(((raw >> Self::REASON_SHIFT) & 0xff) as u8).is_some())
        .then_some(c)
    }

    pub fn key(self) -> IfaceKey {
        IfaceKey(self.0 & IfaceKey::MASK)
    }

    pub fn reason(self) -> Reason {
        Reason::from_id(((self.0 >> Self::REASON_SHIFT) & 0xff) as u8)
            .expect("cookie built from a Reason")
    }

    pub fn raw(self) -> u64 {
        self.0
    }

    /// `cookie=VALUE/MASK` selecting every flow of `key`.
    pub fn owner_selector(key: IfaceKey) -> String {
        format!(
            "cookie={:#x}/{:#x}",
            Self::TAG | key.raw(),
            Self::OWNER_MASK
        )
    }

    /// `cookie=VALUE/-1`: exactly this cookie, which OVS finds through its cookie index
    /// (any other mask makes it scan every flow of the bridge).
    pub fn selector(self) -> String {
        format!("cookie={:#x}/{:#x}", self.raw(), u64::MAX)
    }

    /// `cookie=VALUE/MASK` selecting every vmguard flow.
    pub fn tag_selector() -> String {
        format!("cookie={:#x}/{:#x}", Self::TAG, Self::TAG_MASK)
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DomainUuid, MacAddr};

    #[test]
    fn cookie_round_trip() {
        let uuid: DomainUuid = "11111111-2222-3333-4444-555555555555".parse().unwrap();
        let mac: MacAddr = "52:54:00:00:00:05".parse().unwrap();
        let key = IfaceKey::derive(&uuid, mac);
        assert_ne!(key, IfaceKey::BASE);
        assert_eq!(
            key,
            IfaceKey::derive(&uuid, "52:54:00:00:00:05".parse().unwrap())
        );
        assert_ne!(
            key,
            IfaceKey::derive(&uuid, "52:54:00:00:00:06".parse().unwrap())
        );
        for reason in Reason::ALL {
            let c = Cookie::new(key, reason);
            let d = Cookie::decode(c.raw()).unwrap();
            assert_eq!((d.key(), d.reason()), (key, reason));
            assert_eq!(c.raw() & Cookie::OWNER_MASK, Cookie::TAG | key.raw());
        }
        assert_eq!(Cookie::decode(0x1234), None);
        assert_eq!(Cookie::decode(Cookie::TAG | (0xee << 40)), None);
        assert_eq!(IfaceKey::from_raw(key.raw()), Some(key));
        assert_eq!(IfaceKey::from_raw(1 << 40), None);
    }

    #[test]
    fn key_is_stable() {
        // The key is an on-switch handle: changing the derivation orphans installed flows.
        let uuid: DomainUuid = "11111111-2222-3333-4444-555555555555".parse().unwrap();
        let key = IfaceKey::derive(&uuid, "52:54:00:00:00:05".parse().unwrap());
        assert_eq!(key.to_string().len(), 10);
        assert_eq!(
            key,
            IfaceKey::derive(
                &"11111111222233334444555555555555".parse().unwrap(),
                "52:54:00:00:00:05".parse().unwrap()
            )
        );
    }

    #[test]
    fn tables_are_ordered_for_goto() {
        let ids: Vec<u8> = Table::ALL.iter().map(|t| t.id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Table::from_id(45), Some(Table::GarpCheck));
    }
}
