//! Compiles guarded interfaces and the bridge's uplinks into flows (pure: no I/O).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::config::ArpMode;
use crate::domain::GuardedInterface;
use crate::flow::{
    Action, Flow, Frag, MatchBuilder as M, ETH_ARP, ETH_IPV4, ETH_IPV6, ETH_RARP, ETH_VLAN_TAGS,
};
use crate::frames::solicited_node;
use crate::model::{MacAddr, OfPort};
use crate::pipeline::{prio, Cookie, IfaceKey, Reason, Table, FROM_UPLINK};

const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
const DHCP6_SERVER_PORT: u16 = 547;
const DHCP6_CLIENT_PORT: u16 = 546;
const ICMP_REDIRECT: u8 = 5;
/// ICMPv4 Router Advertisement (IRDP, RFC 1256): IPv4's rogue-router announcement.
const ICMP_ROUTER_ADVERT: u8 = 9;
const ICMP6_MLD_REPORT: u8 = 131;
const ICMP6_RS: u8 = 133;
const ICMP6_RA: u8 = 134;
const ICMP6_NS: u8 = 135;
const ICMP6_NA: u8 = 136;
const ICMP6_REDIRECT: u8 = 137;
const ICMP6_MLD2_REPORT: u8 = 143;
const ARP_REQUEST: u16 = 1;
const RARP_REQUEST: u16 = 3;
/// Stages of the gratuitous-ARP comparison: one per 4-bit nibble of an IPv4 address.
const GARP_STAGES: u32 = 8;

/// Collects flows that share a table and cookie.
struct Emitter {
    flows: Vec<Flow>,
    key: IfaceKey,
}

impl Emitter {
    fn add(&mut self, table: Table, priority: u16, reason: Reason, m: M, actions: Vec<Action>) {
        self.flows.push(Flow {
            table,
            priority,
            cookie: Cookie::new(self.key, reason),
            matches: m.build(),
            actions,
        });
    }

    fn pass(&mut self, table: Table, priority: u16, m: M, actions: Vec<Action>) {
        self.add(table, priority, Reason::Pass, m, actions);
    }

    fn drop(&mut self, table: Table, priority: u16, reason: Reason, m: M) {
        self.add(table, priority, reason, m, vec![Action::Drop]);
    }
}

fn goto(t: Table) -> Vec<Action> {
    vec![Action::Goto(t)]
}

/// All flows of one guarded interface on port `port`, tagged with `key`.
pub fn interface_flows(
    iface: &GuardedInterface,
    key: IfaceKey,
    port: OfPort,
    mode: ArpMode,
) -> Vec<Flow> {
    let mut e = Emitter {
        flows: Vec::new(),
        key,
    };
    let mac = iface.mac;
    let at = || M::new().in_port(port);

    // Table port_guard: the port's own MAC only (Req1); any other source is a spoof.
    e.pass(
        Table::PortGuard,
        prio::ALLOW,
        at().dl_src(mac),
        goto(Table::EthertypeGuard),
    );
    e.drop(Table::PortGuard, prio::PORT_DROP, Reason::MacSpoof, at());

    // Table ethertype_guard: the allowed types are base flows; what falls through is counted here.
    e.drop(
        Table::EthertypeGuard,
        prio::PORT_DROP,
        Reason::Ethertype,
        at(),
    );

    source_guard(&mut e, iface, port);
    payload_guard(&mut e, iface, port);

    // Table arp_steer: requests for this port's addresses.
    for ip in &iface.ipv4 {
        let req = || M::new().arp().arp_op(ARP_REQUEST).nw_dst4(*ip);
        // Its own address (gratuitous ARP, or asking for itself): only the uplinks may answer.
        e.pass(
            Table::ArpSteer,
            prio::SELF_TARGET,
            req().in_port(port),
            goto(Table::ToUplinks),
        );
        match mode {
            ArpMode::Direct => e.pass(
                Table::ArpSteer,
                prio::OWNER,
                req(),
                vec![Action::Output(port)],
            ),
            ArpMode::Responder => {
                // A probe (spa 0.0.0.0) from an uplink must reach the owner, never be answered.
                e.pass(
                    Table::ArpSteer,
                    prio::OWNER_PROBE,
                    req().nw_src4(Ipv4Addr::UNSPECIFIED),
                    vec![Action::Output(port)],
                );
                e.pass(
                    Table::ArpSteer,
                    prio::OWNER,
                    req(),
                    vec![Action::ArpReply(mac, *ip)],
                );
            }
        }
    }

    // Table nd_steer: multicast solicitations for this port's addresses.
    for ip in &iface.ipv6 {
        let ns = || M::new().icmp6().icmp_type(ICMP6_NS).nd_target(*ip);
        e.pass(
            Table::NdSteer,
            prio::SELF_TARGET,
            ns().in_port(port),
            goto(Table::ToUplinks),
        );
        match mode {
            ArpMode::Direct => e.pass(
                Table::NdSteer,
                prio::OWNER,
                ns(),
                vec![Action::Output(port)],
            ),
            ArpMode::Responder => nd_responder(&mut e, *ip, mac, port),
        }
    }

    // Table l2_forward: unicast to this MAC goes straight to the port, without NORMAL's learning.
    e.pass(
        Table::L2Forward,
        prio::OWNER,
        M::new().dl_dst(mac),
        vec![Action::Output(port)],
    );
    // IPv6 from an uplink to an owned address goes to the owner with its MAC. A VM can make the
    // gateway cache another MAC for its own address through ND options OVS cannot see (a Router
    // Solicitation's source link-layer option): the gateway's traffic for it would then reach
    // another VM, or every port as unknown unicast. (A VM's own frames keep their destination:
    // one sent to the router is routed.)
    for ip in &iface.ipv6 {
        e.pass(
            Table::L2Forward,
            prio::OWNER_ADDRESS,
            M::new().reg1(FROM_UPLINK).ipv6().ipv6_dst(*ip),
            vec![Action::SetEthDst(mac), Action::Output(port)],
        );
    }
    e.flows
}

/// Responder mode, one owned IPv6 address: a multicast NS for it is answered by the switch
/// with the NA its owner would send; the owner gets only what the switch must not answer.
fn nd_responder(e: &mut Emitter, ip: Ipv6Addr, mac: MacAddr, port: OfPort) {
    let ns = || M::new().icmp6().icmp_type(ICMP6_NS).nd_target(ip);
    // DAD from `::` (from an uplink; a VM's own DAD went to the uplinks above): the owner must
    // see it to defend its address.
    e.pass(
        Table::NdSteer,
        prio::OWNER_PROBE,
        ns().ipv6_src(Ipv6Addr::UNSPECIFIED),
        vec![Action::Output(port)],
    );
    // Without a source link-layer option there is no option to turn into the target's (OVS
    // would write past the message).
    e.pass(
        Table::NdSteer,
        prio::OWNER_UNANSWERABLE,
        ns().nd_sll(MacAddr::ZERO),
        vec![Action::Output(port)],
    );
    // Fragmented ND is invalid (RFC 6980) and cannot be rewritten whole, and an NS whose hop
    // limit is not 255 may come from off-link (RFC 4861 7.1.1: a host ignores it): the owner
    // gets those, as in direct mode, and decides.
    e.pass(
        Table::NdSteer,
        prio::OWNER,
        ns().nw_frag(Frag::No).nw_ttl(255),
        vec![Action::NdAdvert(mac, ip), Action::Goto(Table::NdAnswer)],
    );
    e.pass(
        Table::NdSteer,
        prio::ALLOW,
        ns(),
        vec![Action::Output(port)],
    );
    e.pass(
        Table::NdAnswer,
        prio::OWNER,
        M::new().icmp6().icmp_type(ICMP6_NA).nd_target(ip),
        vec![Action::SetNdTll(mac), Action::InPort],
    );
}

/// Table source_guard: owned L3 sources and ARP/RARP senders, plus the unspecified-source
/// exceptions (DHCP discover, DAD, MLD, RS, ARP probes) — all on frames already admitted by MAC
/// and ethertype.
fn source_guard(e: &mut Emitter, iface: &GuardedInterface, port: OfPort) {
    let t = Table::SourceGuard;
    let mac = iface.mac;
    let at = || M::new().in_port(port);

    for ip in &iface.ipv4 {
        e.pass(
            t,
            prio::ALLOW,
            at().ipv4().nw_src4(*ip),
            goto(Table::PayloadGuard),
        );
        e.pass(
            t,
            prio::ALLOW,
            at().arp().nw_src4(*ip).arp_sha(mac),
            goto(Table::ArpSteer),
        );
        // RFC 5227 probe for its own address: to the uplinks only.
        e.pass(
            t,
            prio::ALLOW,
            at().arp()
                .arp_op(ARP_REQUEST)
                .nw_src4(Ipv4Addr::UNSPECIFIED)
                .nw_dst4(*ip)
                .arp_sha(mac),
            goto(Table::ToUplinks),
        );
    }
    // DHCP DISCOVER/REQUEST before the VM has an address.
    e.pass(
        t,
        prio::ALLOW,
        at().udp()
            .nw_src4(Ipv4Addr::UNSPECIFIED)
            .nw_dst4(Ipv4Addr::BROADCAST)
            .nw_frag(Frag::No)
            .tp_src(DHCP_CLIENT_PORT)
            .tp_dst(DHCP_SERVER_PORT),
        goto(Table::ToUplinks),
    );
    e.drop(t, prio::KIND_DROP, Reason::IpSpoof, at().ipv4());

    for ip in &iface.ipv6 {
        e.pass(
            t,
            prio::ALLOW,
            at().ipv6().ipv6_src(*ip),
            goto(Table::PayloadGuard),
        );
        // DAD: NS from :: to the target's solicited-node group, without SLL option (RFC 4862).
        e.pass(
            t,
            prio::ALLOW,
            at().icmp6()
                .ipv6_src(Ipv6Addr::UNSPECIFIED)
                .ipv6_dst(solicited_node(*ip))
                .nw_frag(Frag::No)
                .icmp_type(ICMP6_NS)
                .nd_target(*ip)
                .nd_sll(MacAddr::ZERO),
            goto(Table::NdSteer),
        );
    }
    let from_unspecified = || {
        at().icmp6()
            .ipv6_src(Ipv6Addr::UNSPECIFIED)
            .nw_frag(Frag::No)
    };
    for report in [ICMP6_MLD_REPORT, ICMP6_MLD2_REPORT] {
        e.pass(
            t,
            prio::ALLOW,
            from_unspecified().icmp_type(report),
            goto(Table::L2Forward),
        );
    }
    e.pass(
        t,
        prio::ALLOW,
        from_unspecified().icmp_type(ICMP6_RS),
        goto(Table::ToUplinks),
    );
    e.drop(
        t,
        prio::UNSPEC_ND_DROP,
        Reason::NdSpoof,
        at().icmp6()
            .ipv6_src(Ipv6Addr::UNSPECIFIED)
            .icmp_type(ICMP6_NS),
    );
    e.drop(t, prio::KIND_DROP, Reason::IpSpoof, at().ipv6());

    e.drop(t, prio::KIND_DROP, Reason::ArpSpoof, at().arp());
    // QEMU's announce-self after migration: RARP request from the VM's own MAC.
    e.pass(
        t,
        prio::ALLOW,
        at().dl_type(ETH_RARP).arp_op(RARP_REQUEST).arp_sha(mac),
        goto(Table::ToUplinks),
    );
    e.drop(t, prio::KIND_DROP, Reason::ArpSpoof, at().dl_type(ETH_RARP));
}

/// Table payload_guard: what an owned source may still not send.
fn payload_guard(e: &mut Emitter, iface: &GuardedInterface, port: OfPort) {
    let t = Table::PayloadGuard;
    let at = || M::new().in_port(port);

    // L4 fields the switch cannot see are refused where they decide a verdict. UDP whose
    // ports read 0/0 outside a later fragment: a first fragment too short for the UDP header,
    // or an IP total/payload length that ends inside it — OVS then sees no ports while a
    // raw-socket DHCP client (ISC dhclient) still reads the message behind it. Also a
    // truncated IPv6 header chain, and any fragmented ICMPv6 (ND is never fragmented,
    // RFC 6980). Needs fragment mode nx-match.
    for udp in [at().udp(), at().udp6()] {
        e.drop(
            t,
            prio::DENY_HIGH,
            Reason::Evasion,
            udp.nw_frag(Frag::NotLater).tp_src(0).tp_dst(0),
        );
    }
    e.drop(
        t,
        prio::DENY_HIGH,
        Reason::Evasion,
        at().icmp6().nw_frag(Frag::First),
    );
    e.drop(t, prio::DENY_HIGH, Reason::Evasion, at().ipv6().nw_proto(0));

    e.drop(
        t,
        prio::DENY,
        Reason::DhcpServer,
        at().udp().tp_src(DHCP_SERVER_PORT),
    );
    e.drop(
        t,
        prio::DENY_LOW,
        Reason::DhcpServer,
        at().udp().tp_dst(DHCP_CLIENT_PORT),
    );
    e.drop(
        t,
        prio::DENY,
        Reason::DhcpServer,
        at().udp6().tp_src(DHCP6_SERVER_PORT),
    );
    e.drop(
        t,
        prio::DENY_LOW,
        Reason::DhcpServer,
        at().udp6().tp_dst(DHCP6_CLIENT_PORT),
    );
    e.drop(
        t,
        prio::DENY,
        Reason::Redirect,
        at().icmp().icmp_type(ICMP_REDIRECT),
    );
    e.drop(
        t,
        prio::DENY,
        Reason::Redirect,
        at().icmp6().icmp_type(ICMP6_REDIRECT),
    );
    e.drop(
        t,
        prio::DENY,
        Reason::RouterAdvert,
        at().icmp6().icmp_type(ICMP6_RA),
    );
    e.drop(
        t,
        prio::DENY,
        Reason::RouterAdvert,
        at().icmp().icmp_type(ICMP_ROUTER_ADVERT),
    );

    // A link-layer option holding 00:00:00:00:00:00 reads like an absent option. OVS gives the
    // type of the first link-layer option only (`nd_options_type`, 0 when there is none), so an
    // NS whose SLL reads 0 while it has some link-layer option — a zero SLL, or a TLL put first
    // to hide one — is dropped, and likewise an NA whose TLL reads 0. A duplicated option
    // makes OVS zero the whole ND parse (target ::, SLL 0) while Linux uses the first.
    for options_type in [1, 2] {
        e.drop(
            t,
            prio::DENY,
            Reason::NdSpoof,
            at().icmp6()
                .icmp_type(ICMP6_NS)
                .nd_options_type(options_type)
                .nd_sll(MacAddr::ZERO),
        );
        e.drop(
            t,
            prio::DENY,
            Reason::NdSpoof,
            at().icmp6()
                .icmp_type(ICMP6_NA)
                .nd_options_type(options_type)
                .nd_tll(MacAddr::ZERO),
        );
    }
    e.drop(
        t,
        prio::DENY_LOW,
        Reason::NdSpoof,
        at().icmp6()
            .icmp_type(ICMP6_NS)
            .nd_target(std::net::Ipv6Addr::UNSPECIFIED),
    );
    // NA only for owned targets, TLL absent or its own MAC (Req6).
    for ip in &iface.ipv6 {
        for tll in [MacAddr::ZERO, iface.mac] {
            e.pass(
                t,
                prio::OWNER,
                at().icmp6().icmp_type(ICMP6_NA).nd_target(*ip).nd_tll(tll),
                goto(Table::L2Forward),
            );
        }
    }
    e.drop(
        t,
        prio::ND_DROP,
        Reason::NdSpoof,
        at().icmp6().icmp_type(ICMP6_NA),
    );
    // NS with SLL absent or its own MAC: a foreign SLL would poison the target's cache.
    for sll in [MacAddr::ZERO, iface.mac] {
        e.pass(
            t,
            prio::OWNER,
            at().icmp6().icmp_type(ICMP6_NS).nd_sll(sll),
            goto(Table::NdSteer),
        );
    }
    e.drop(
        t,
        prio::ND_DROP,
        Reason::NdSpoof,
        at().icmp6().icmp_type(ICMP6_NS),
    );
}

/// The bridge-wide flows: uplink admission, shared validation steps, steering defaults and the
/// default drop that keeps unguarded ports closed.
pub fn base_flows(uplinks: &[OfPort]) -> Vec<Flow> {
    let mut e = Emitter {
        flows: Vec::new(),
        key: IfaceKey::BASE,
    };

    // port_guard: uplinks are trusted (and marked as such in reg1); everything else without a
    // VM's flows is dropped.
    let from_uplink = |t: Table| vec![Action::SetReg1(FROM_UPLINK), Action::Goto(t)];
    for u in uplinks {
        e.pass(
            Table::PortGuard,
            prio::OWNER,
            M::new().in_port(*u).arp(),
            from_uplink(Table::ArpSteer),
        );
        e.pass(
            Table::PortGuard,
            prio::OWNER,
            M::new().in_port(*u).icmp6().icmp_type(ICMP6_NS),
            from_uplink(Table::NdSteer),
        );
        // Stacked tags: OVS reads the frame's type as a tag, Linux strips priority tags and
        // acts on the ARP or NS inside. A broadcast or multicast one cannot be steered to an
        // owner, so it never reaches a VM (unicast ones are plain L2).
        for tpid in ETH_VLAN_TAGS {
            e.pass(
                Table::PortGuard,
                prio::OWNER,
                M::new().in_port(*u).dl_type(tpid).dl_dst_group(),
                from_uplink(Table::ToUplinks),
            );
        }
        e.pass(
            Table::PortGuard,
            prio::ALLOW,
            M::new().in_port(*u),
            from_uplink(Table::L2Forward),
        );
    }
    e.drop(Table::PortGuard, prio::DEFAULT, Reason::Unguarded, M::new());

    for dl_type in [ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_RARP] {
        e.pass(
            Table::EthertypeGuard,
            prio::ALLOW,
            M::new().untagged().dl_type(dl_type),
            goto(Table::SourceGuard),
        );
    }
    for t in [Table::EthertypeGuard, Table::SourceGuard] {
        e.drop(t, prio::DEFAULT, Reason::Unguarded, M::new());
    }

    e.pass(
        Table::PayloadGuard,
        prio::ALLOW,
        M::new().icmp6().icmp_type(ICMP6_RS),
        goto(Table::ToUplinks),
    );
    e.pass(
        Table::PayloadGuard,
        prio::DEFAULT,
        M::new(),
        goto(Table::L2Forward),
    );

    // arp_steer: unicast ARP is plain L2; broadcast requests for unowned addresses go through
    // the gratuitous-ARP check; other broadcast ARP (replies) is flooded.
    e.pass(
        Table::ArpSteer,
        prio::UNICAST,
        M::new().arp().dl_dst_unicast(),
        goto(Table::L2Forward),
    );
    e.pass(
        Table::ArpSteer,
        prio::ALLOW,
        M::new().arp().arp_op(ARP_REQUEST),
        goto(Table::GarpCheck),
    );
    // ARP OVS could not parse (hardware type != 1, opcode > 255): arp_op reads 0. Linux
    // accepts hardware type 6 on Ethernet, so never flood it to the VMs.
    e.pass(
        Table::ArpSteer,
        prio::DENY_LOW,
        M::new().arp().arp_op(0),
        goto(Table::ToUplinks),
    );
    e.pass(
        Table::ArpSteer,
        prio::DEFAULT,
        M::new(),
        goto(Table::L2Forward),
    );

    // garp_check: reg0 counts equal nibbles of arp_spa and arp_tpa; all eight equal means a
    // gratuitous request (e.g. a gateway failing over), which every port may see.
    for stage in 0..GARP_STAGES {
        let shift = 4 * stage;
        for nibble in 0..16u32 {
            e.pass(
                Table::GarpCheck,
                prio::ALLOW,
                M::new()
                    .arp()
                    .reg0(stage)
                    .nw_src4_masked(nibble << shift, 0xf << shift)
                    .nw_dst4_masked(nibble << shift, 0xf << shift),
                vec![
                    Action::SetReg0(stage + 1),
                    Action::Resubmit(Table::GarpCheck),
                ],
            );
        }
    }
    e.pass(
        Table::GarpCheck,
        prio::ALLOW,
        M::new().arp().reg0(GARP_STAGES),
        goto(Table::L2Forward),
    );
    e.pass(
        Table::GarpCheck,
        prio::DEFAULT,
        M::new(),
        goto(Table::ToUplinks),
    );

    e.pass(
        Table::NdSteer,
        prio::UNICAST,
        M::new().dl_dst_unicast(),
        goto(Table::L2Forward),
    );
    e.pass(
        Table::NdSteer,
        prio::DEFAULT,
        M::new(),
        goto(Table::ToUplinks),
    );

    // No host has the all-zero MAC, but a neighbour cache can be made to hold it (an ND option
    // OVS cannot see, such as a zero SLL followed by a real one): frames to it would be flooded
    // to every port by NORMAL. Dropped, whichever side they come from.
    e.drop(
        Table::L2Forward,
        prio::DENY,
        Reason::NdSpoof,
        M::new().dl_dst(MacAddr::ZERO),
    );
    // Unicast to a MAC no guarded interface has (theirs are forwarded above) is for a host
    // behind an uplink: no VM can own it. NORMAL would flood it to every VM until it learned the
    // gateway's MAC, and it never does: the gateway's ARP, NS and unicast to VMs are steered
    // around it. So any VM could read the others' traffic to the gateway.
    e.pass(
        Table::L2Forward,
        prio::ALLOW,
        M::new().dl_dst_unicast(),
        goto(Table::ToUplinks),
    );
    e.pass(
        Table::L2Forward,
        prio::DEFAULT,
        M::new(),
        vec![Action::Normal],
    );

    let to_uplinks = if uplinks.is_empty() {
        vec![Action::Drop]
    } else {
        uplinks.iter().map(|u| Action::Output(*u)).collect()
    };
    e.pass(Table::ToUplinks, prio::DEFAULT, M::new(), to_uplinks);
    e.flows
}

/// Pairs of flows in one table with equal priority that some packet can match both — the
/// paper's Listing 1 fault. Empty for a well-formed flow set.
pub fn ambiguous_pairs(flows: &[Flow]) -> Vec<(&Flow, &Flow)> {
    let mut sorted: Vec<&Flow> = flows.iter().collect();
    sorted.sort_by_key(|f| (f.table, f.priority));
    let mut out = Vec::new();
    for group in sorted.chunk_by(|a, b| (a.table, a.priority) == (b.table, b.priority)) {
        for (i, a) in group.iter().enumerate() {
            for b in &group[i + 1..] {
                if a.overlaps(b) {
                    out.push((*a, *b));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DomainUuid;

    fn iface(mac: &str, v4: &[&str], v6: &[&str]) -> GuardedInterface {
        let mac: MacAddr = mac.parse().unwrap();
        let mut ipv6 = vec![mac.eui64_link_local()];
        ipv6.extend(v6.iter().map(|a| a.parse::<Ipv6Addr>().unwrap()));
        GuardedInterface {
            mac,
            dev: None,
            ipv4: v4.iter().map(|a| a.parse().unwrap()).collect(),
            ipv6,
        }
    }

    #[test]
    fn base_flows_have_no_ambiguity() {
        let base = base_flows(&[OfPort::new(1).unwrap(), OfPort::LOCAL]);
        assert!(ambiguous_pairs(&base).is_empty());
    }

    /// A tiny deterministic PRNG so the property test needs no extra crate and is repeatable.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn no_two_flows_of_many_generated_vms_are_ambiguous() {
        for mode in [ArpMode::Direct, ArpMode::Responder] {
            let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
            let uplinks = [OfPort::new(1).unwrap(), OfPort::new(2).unwrap()];
            let mut flows = base_flows(&uplinks);
            let mut next_port = 10;
            let mut next_v4 = 0u32;
            let mut next_v6 = 0u128;
            for vm in 0..60u64 {
                let uuid: DomainUuid =
                    format!("{:032x}", u128::from(rng.next()) << 64 | u128::from(vm))
                        .parse()
                        .unwrap();
                for _nic in 0..=rng.below(3) {
                    let mut m = rng.next().to_be_bytes();
                    m[2] &= 0xfe; // unicast
                    let mac = MacAddr([m[2] & 0xfe | 0x02, m[3], m[4], m[5], m[6], m[7]]);
                    let v4: Vec<Ipv4Addr> = (0..rng.below(5))
                        .map(|_| {
                            next_v4 += 1 + rng.below(3) as u32;
                            Ipv4Addr::from(0x0a00_0000 + next_v4)
                        })
                        .collect();
                    let mut v6 = vec![mac.eui64_link_local()];
                    v6.extend((0..rng.below(5)).map(|_| {
                        next_v6 += 1 + u128::from(rng.below(3));
                        Ipv6Addr::from((0x2001_0db8u128 << 96) + next_v6)
                    }));
                    let g = GuardedInterface {
                        mac,
                        dev: None,
                        ipv4: v4,
                        ipv6: v6,
                    };
                    next_port += 1 + rng.below(2) as u32;
                    flows.extend(interface_flows(
                        &g,
                        IfaceKey::derive(&uuid, mac),
                        OfPort::new(next_port).unwrap(),
                        mode,
                    ));
                }
            }
            let bad = ambiguous_pairs(&flows);
            assert!(
                bad.is_empty(),
                "{mode:?}: {} ambiguous pairs, first:\n{}\n{}",
                bad.len(),
                bad[0].0,
                bad[0].1
            );
        }
    }

    #[test]
    fn every_flow_carries_the_interface_cookie() {
        let uuid: DomainUuid = "11111111-2222-3333-4444-555555555555".parse().unwrap();
        let i = iface("52:54:00:00:00:05", &["10.0.0.5"], &["2001:db8::5"]);
        let key = IfaceKey::derive(&uuid, i.mac);
        for f in interface_flows(&i, key, OfPort::new(5).unwrap(), ArpMode::Responder) {
            assert_eq!(f.cookie.key(), key, "{f}");
            assert_eq!(f.cookie.raw() & Cookie::TAG_MASK, Cookie::TAG);
            let drops = f.actions == vec![Action::Drop];
            assert_eq!(
                drops,
                f.cookie.reason() != Reason::Pass,
                "reason only on drops: {f}"
            );
        }
    }

    #[test]
    fn nd_fields_always_have_their_prerequisites() {
        // OVS silently ignores nd_target/nd_sll/nd_tll without icmp6 + type 135/136, which would
        // make the flow match more than written.
        let i = iface("52:54:00:00:00:05", &["10.0.0.5"], &["2001:db8::5"]);
        for f in interface_flows(&i, IfaceKey::BASE, OfPort::new(5).unwrap(), ArpMode::Direct) {
            let s = f.match_string();
            if s.contains("nd_target") || s.contains("nd_sll") || s.contains("nd_tll") {
                assert!(s.starts_with("icmp6,"), "{s}");
                assert!(
                    s.contains("icmp_type=135") || s.contains("icmp_type=136"),
                    "{s}"
                );
            }
        }
    }
}
