//! The built-in probe battery of `vmguard verify`: for one guarded interface, legitimate frames
//! that must pass and attack frames that must be dropped, built as real bytes (pure).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::domain::GuardedInterface;
use crate::frames::{
    self, Arp, Frame, Ipv4, Ipv6, BROADCAST, IPPROTO_FRAGMENT, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_UDP,
};

/// What must happen to a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Forwarded somewhere (not dropped).
    Pass,
    /// Forwarded to the uplinks and to no other port (unicast no VM may receive).
    Uplinks,
    /// Dropped by the switch.
    Drop,
}

/// One probe: a label, the frame, the verdict it must get.
#[derive(Clone, Debug)]
pub struct Probe {
    pub label: &'static str,
    pub frame: Frame,
    pub expect: Expect,
}

const GATEWAY_MAC: frames::Mac = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x01];
/// TEST-NET and documentation addresses: never owned by a guarded VM in practice; the battery
/// picks one the interface does not own.
const FOREIGN_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(192, 0, 2, 66),
    Ipv4Addr::new(198, 51, 100, 66),
];
const FOREIGN_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x66),
    Ipv6Addr::new(0x3fff, 0xffff, 0, 0, 0, 0, 0, 0x66),
];

fn ra_body(mac: frames::Mac) -> Vec<u8> {
    frames::nd_ra_body(
        Some(("2001:db8:bad::".parse().expect("valid"), 64)),
        Some(mac),
    )
}

/// Probes for `iface`: spoofing attacks of every SPEC kind and a few legitimate frames.
pub fn probes(iface: &GuardedInterface) -> Vec<Probe> {
    let mac = iface.mac.0;
    let mut foreign_mac = mac;
    foreign_mac[5] ^= 0x01;
    let lla = iface.ipv6[0];
    let foreign4 = *FOREIGN_V4
        .iter()
        .find(|a| !iface.ipv4.contains(a))
        .expect("two candidates");
    let foreign6 = *FOREIGN_V6
        .iter()
        .find(|a| !iface.ipv6.contains(a))
        .expect("two candidates");
    let all_nodes: Ipv6Addr = "ff02::1".parse().expect("valid");
    let v6 = |src: Ipv6Addr, dst: Ipv6Addr, next: u8| Ipv6 {
        src,
        dst,
        next_header: next,
        hop_limit: 255,
    };
    let icmp6 = |src, dst, t, body: &[u8]| frames::icmpv6(src, dst, t, 0, body);
    let mut out = vec![
        Probe {
            label: "legit: IPv6 unicast to the gateway's MAC (not flooded)",
            frame: frames::ipv6_frame(
                GATEWAY_MAC,
                mac,
                &v6(lla, foreign6, IPPROTO_UDP),
                &frames::udp_v6(lla, foreign6, 5353, 5353, b"probe"),
            ),
            expect: Expect::Uplinks,
        },
        Probe {
            label: "legit: DHCPv4 discover from 0.0.0.0",
            frame: frames::ipv4_frame(
                BROADCAST,
                mac,
                &Ipv4::new(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, IPPROTO_UDP),
                &frames::udp_v4(
                    Ipv4Addr::UNSPECIFIED,
                    Ipv4Addr::BROADCAST,
                    68,
                    67,
                    &frames::dhcpv4(1, 1, 7, mac, Ipv4Addr::UNSPECIFIED),
                ),
            ),
            expect: Expect::Pass,
        },
        Probe {
            label: "legit: IPv6 multicast from the link-local",
            frame: frames::ipv6_frame(
                frames::ipv6_multicast_mac(all_nodes),
                mac,
                &v6(lla, all_nodes, IPPROTO_UDP),
                &frames::udp_v6(lla, all_nodes, 5353, 5353, b"probe"),
            ),
            expect: Expect::Pass,
        },
        Probe {
            label: "legit: DAD NS for the link-local",
            frame: {
                let sn = frames::solicited_node(lla);
                frames::ipv6_frame(
                    frames::ipv6_multicast_mac(sn),
                    mac,
                    &v6(Ipv6Addr::UNSPECIFIED, sn, IPPROTO_ICMPV6),
                    &icmp6(
                        Ipv6Addr::UNSPECIFIED,
                        sn,
                        135,
                        &frames::nd_ns_body(lla, None),
                    ),
                )
            },
            expect: Expect::Pass,
        },
        Probe {
            label: "attack: foreign eth src (MAC spoof)",
            frame: frames::ipv6_frame(
                frames::ipv6_multicast_mac(all_nodes),
                foreign_mac,
                &v6(lla, all_nodes, IPPROTO_UDP),
                &frames::udp_v6(lla, all_nodes, 5353, 5353, b"probe"),
            ),
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: IPv6 from a foreign source",
            frame: frames::ipv6_frame(
                GATEWAY_MAC,
                mac,
                &v6(foreign6, all_nodes, IPPROTO_UDP),
                &frames::udp_v6(foreign6, all_nodes, 5353, 5353, b"probe"),
            ),
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: IPv4 from a foreign source",
            frame: frames::ipv4_frame(
                GATEWAY_MAC,
                mac,
                &Ipv4::new(foreign4, Ipv4Addr::BROADCAST, IPPROTO_UDP),
                &frames::udp_v4(foreign4, Ipv4Addr::BROADCAST, 9, 9, b"probe"),
            ),
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: ARP claiming a foreign IP (paper's Listing 1)",
            frame: frames::arp(
                BROADCAST,
                mac,
                &Arp {
                    op: 2,
                    sha: mac,
                    spa: foreign4,
                    tha: BROADCAST,
                    tpa: foreign4,
                },
            ),
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: router advertisement",
            frame: frames::ipv6_frame(
                frames::ipv6_multicast_mac(all_nodes),
                mac,
                &v6(lla, all_nodes, IPPROTO_ICMPV6),
                &icmp6(lla, all_nodes, 134, &ra_body(mac)),
            ),
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: router advertisement in a first fragment",
            frame: {
                let ra = icmp6(lla, all_nodes, 134, &ra_body(mac));
                let first = frames::ipv6_fragments(
                    &v6(lla, all_nodes, IPPROTO_FRAGMENT),
                    IPPROTO_ICMPV6,
                    &ra,
                    16,
                    9,
                )
                .remove(0);
                frames::ethernet(
                    frames::ipv6_multicast_mac(all_nodes),
                    mac,
                    frames::ETHERTYPE_IPV6,
                    &first,
                )
            },
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: NA for a foreign target",
            frame: frames::ipv6_frame(
                frames::ipv6_multicast_mac(all_nodes),
                mac,
                &v6(lla, all_nodes, IPPROTO_ICMPV6),
                &icmp6(
                    lla,
                    all_nodes,
                    136,
                    &frames::nd_na_body(foreign6, 0x20, Some(mac)),
                ),
            ),
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: NS with a foreign SLL",
            frame: {
                let sn = frames::solicited_node(foreign6);
                frames::ipv6_frame(
                    frames::ipv6_multicast_mac(sn),
                    mac,
                    &v6(lla, sn, IPPROTO_ICMPV6),
                    &icmp6(
                        lla,
                        sn,
                        135,
                        &frames::nd_ns_body(foreign6, Some(foreign_mac)),
                    ),
                )
            },
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: ICMPv6 redirect",
            frame: frames::ipv6_frame(
                GATEWAY_MAC,
                mac,
                &v6(lla, "fe80::1".parse().expect("valid"), IPPROTO_ICMPV6),
                &icmp6(
                    lla,
                    "fe80::1".parse().expect("valid"),
                    137,
                    &frames::redirect_v6_body(lla, foreign6),
                ),
            ),
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: DHCPv6 server advertise",
            frame: {
                let dst: Ipv6Addr = "fe80::1".parse().expect("valid");
                frames::ipv6_frame(
                    GATEWAY_MAC,
                    mac,
                    &v6(lla, dst, IPPROTO_UDP),
                    &frames::udp_v6(lla, dst, 547, 546, &frames::dhcpv6(2, 7)),
                )
            },
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: 802.1Q tagged frame",
            frame: frames::ethernet_tagged(
                BROADCAST,
                mac,
                &[(0x8100, 10)],
                frames::ETHERTYPE_ARP,
                &frames::arp(
                    BROADCAST,
                    mac,
                    &Arp {
                        op: 1,
                        sha: mac,
                        spa: foreign4,
                        tha: [0; 6],
                        tpa: foreign4,
                    },
                )
                .0[14..],
            ),
            expect: Expect::Drop,
        },
        Probe {
            label: "attack: non-IP ethertype (LLDP)",
            frame: frames::ethernet([0x01, 0x80, 0xc2, 0, 0, 0x0e], mac, 0x88cc, &[0; 46]),
            expect: Expect::Drop,
        },
    ];
    if let Some(own4) = iface.ipv4.first().copied() {
        let gw = FOREIGN_V4[1];
        out.extend([
            Probe {
                label: "legit: ARP request from an owned IPv4",
                frame: frames::arp(
                    BROADCAST,
                    mac,
                    &Arp {
                        op: 1,
                        sha: mac,
                        spa: own4,
                        tha: [0; 6],
                        tpa: gw,
                    },
                ),
                expect: Expect::Pass,
            },
            Probe {
                label: "attack: ARP with a foreign sender MAC",
                frame: frames::arp(
                    BROADCAST,
                    mac,
                    &Arp {
                        op: 2,
                        sha: foreign_mac,
                        spa: own4,
                        tha: BROADCAST,
                        tpa: own4,
                    },
                ),
                expect: Expect::Drop,
            },
            Probe {
                label: "attack: DHCPv4 server offer",
                frame: frames::ipv4_frame(
                    BROADCAST,
                    mac,
                    &Ipv4::new(own4, Ipv4Addr::BROADCAST, IPPROTO_UDP),
                    &frames::udp_v4(
                        own4,
                        Ipv4Addr::BROADCAST,
                        67,
                        68,
                        &frames::dhcpv4(2, 2, 7, foreign_mac, foreign4),
                    ),
                ),
                expect: Expect::Drop,
            },
            Probe {
                label: "attack: ICMPv4 redirect",
                frame: frames::ipv4_frame(
                    GATEWAY_MAC,
                    mac,
                    &Ipv4::new(own4, gw, IPPROTO_ICMP),
                    &frames::icmp_v4(5, 1, &[0; 32]),
                ),
                expect: Expect::Drop,
            },
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn battery_covers_both_verdicts_and_skips_ipv4_without_one() {
        let mac: crate::model::MacAddr = "52:54:00:00:00:05".parse().unwrap();
        let with4 = GuardedInterface {
            mac,
            dev: None,
            ipv4: vec!["10.0.0.5".parse().unwrap()],
            ipv6: vec![mac.eui64_link_local()],
        };
        let without4 = GuardedInterface {
            ipv4: vec![],
            ..with4.clone()
        };
        let a = probes(&with4);
        let b = probes(&without4);
        assert!(a.len() > b.len());
        assert!(
            a.iter().any(|p| p.expect == Expect::Pass)
                && a.iter().any(|p| p.expect == Expect::Drop)
        );
        assert!(a.iter().all(|p| p.frame.bytes().len() >= 60));
    }
}
