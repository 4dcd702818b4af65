//! Packet captures: one tcpdump per namespace for the whole run, read back as dissected frames,
//! so each case can count what left the attacker and what reached every victim.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use vmguard::model::MacAddr;

use super::host::Host;
use super::topology::GUEST_IF;

/// Which frames a capture keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// What the namespace received: a victim's view.
    In,
    /// What the namespace sent: the attacker's own record of an attack.
    Out,
}

/// One capture: a namespace's frames in one direction.
type Tap = (String, Direction);

/// A capture's frames as read at one file length.
struct Read {
    len: u64,
    frames: Rc<Vec<Frame>>,
}

/// The running captures.
pub struct Captures {
    files: BTreeMap<Tap, PathBuf>,
    pids: Vec<u32>,
    /// What was read of each capture so far.
    read: RefCell<BTreeMap<Tap, Read>>,
}

impl Captures {
    /// Starts tcpdump on the guest interface of each namespace and waits until every one
    /// listens. `-U --immediate-mode` writes each frame at once, so files can be read while
    /// tcpdump runs; `-Z root` keeps it able to write into the run directory.
    pub fn start(host: &mut Host, taps: &[Tap]) -> Result<Captures> {
        let mut files = BTreeMap::new();
        let mut pids = Vec::new();
        for (ns, dir) in taps {
            let q = match dir {
                Direction::In => "in",
                Direction::Out => "out",
            };
            let file = host.dir().join(format!("{ns}-{q}.pcap"));
            let path = file.display().to_string();
            let argv = [
                "tcpdump",
                "-i",
                GUEST_IF,
                "-n",
                "-U",
                "--immediate-mode",
                "-Z",
                "root",
                "-Q",
                q,
                "-s",
                "1024",
                "-w",
                &path,
            ];
            pids.push(host.spawn_in(ns, &argv, &format!("tcpdump-{ns}-{q}"))?);
            files.insert((ns.clone(), *dir), file);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for (ns, dir) in files.keys() {
            let q = if *dir == Direction::In { "in" } else { "out" };
            let log = host.dir().join(format!("tcpdump-{ns}-{q}.log"));
            while !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("listening on")
            {
                if Instant::now() > deadline {
                    bail!(
                        "tcpdump in {ns} did not start: {}",
                        std::fs::read_to_string(&log).unwrap_or_default().trim()
                    );
                }
                host.sleep(Duration::from_millis(20))?;
            }
        }
        Ok(Captures {
            files,
            pids,
            read: RefCell::new(BTreeMap::new()),
        })
    }

    /// Every frame captured so far in `ns` in direction `dir` (read again only when the file
    /// grew).
    pub fn frames(&self, ns: &str, dir: Direction) -> Result<Rc<Vec<Frame>>> {
        let key = (ns.to_string(), dir);
        let file = self
            .files
            .get(&key)
            .with_context(|| format!("no {dir:?} capture in {ns}"))?;
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let len = bytes.len() as u64;
        if let Some(r) = self.read.borrow().get(&key).filter(|r| r.len == len) {
            return Ok(Rc::clone(&r.frames));
        }
        let frames =
            Rc::new(read_pcap(&bytes).with_context(|| format!("capture {}", file.display()))?);
        let read = Read {
            len,
            frames: Rc::clone(&frames),
        };
        self.read.borrow_mut().insert(key, read);
        Ok(frames)
    }

    /// Stops every tcpdump (each flushes its file on SIGTERM).
    pub fn stop(&self, host: &mut Host) {
        host.stop(&self.pids);
    }
}

/// A capture's frames from pcap bytes (microsecond or nanosecond timestamps, Ethernet). A last
/// record cut short by a capture still being written is ignored.
pub fn read_pcap(bytes: &[u8]) -> Result<Vec<Frame>> {
    if bytes.len() < 24 {
        // tcpdump has not written its header yet: nothing captured.
        return Ok(Vec::new());
    }
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let frac_per_sec = match u32_at(bytes, 0) {
        0xa1b2_c3d4 => 1_000_000u64,
        0xa1b2_3c4d => 1_000_000_000,
        m => bail!("not a little-endian pcap file (magic {m:#x})"),
    };
    if u32_at(bytes, 20) != 1 {
        bail!("link type {} is not Ethernet", u32_at(bytes, 20));
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let secs = u64::from(u32_at(bytes, at));
        let frac = u64::from(u32_at(bytes, at + 4));
        let len = u32_at(bytes, at + 8) as usize;
        let start = at + 16;
        if start + len > bytes.len() {
            break;
        }
        let time = UNIX_EPOCH
            + Duration::from_secs(secs)
            + Duration::from_nanos(frac * (1_000_000_000 / frac_per_sec));
        if let Some(f) = Frame::parse(time, &bytes[start..start + len]) {
            frames.push(f);
        }
        at = start + len;
    }
    Ok(frames)
}

/// Whether a packet is a fragment, and which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frag {
    No,
    /// Offset 0: carries the headers the switch classifies.
    First,
    /// Offset > 0: no upper-layer header.
    Later,
}

/// The upper-layer header, as far as the (first) fragment shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        kind: u8,
    },
    Icmp6 {
        kind: u8,
        /// NS/NA target, redirect target.
        target: Option<Ipv6Addr>,
        /// The source (NS, RA) or target (NA) link-layer address option.
        lla: Option<MacAddr>,
    },
    /// Another protocol.
    Other(u8),
    /// Not in this packet: a later fragment, or a header chain cut short.
    Missing,
}

/// An ARP or RARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sha: MacAddr,
    pub spa: Ipv4Addr,
    pub tpa: Ipv4Addr,
}

/// The network layer of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Net {
    Arp(Arp),
    Rarp(Arp),
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        frag: Frag,
        l4: L4,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        /// Extension headers before the upper layer, in order (next-header values).
        exts: Vec<u8>,
        frag: Frag,
        l4: L4,
    },
    /// Another ethertype, or a frame too short for its header.
    Other,
}

/// One captured frame, dissected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub time: SystemTime,
    pub dst: MacAddr,
    pub src: MacAddr,
    /// 802.1Q / 802.1ad tags in front of the ethertype.
    pub tags: usize,
    pub ethertype: u16,
    pub net: Net,
    /// Everything after the Ethernet header (for payload patterns).
    pub payload: Vec<u8>,
}

fn mac_at(b: &[u8], i: usize) -> MacAddr {
    MacAddr([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5]])
}

fn v4_at(b: &[u8], i: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3])
}

fn v6_at(b: &[u8], i: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[i..i + 16]);
    Ipv6Addr::from(o)
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

impl Frame {
    /// Dissects an Ethernet frame; `None` if it is shorter than an Ethernet header.
    pub fn parse(time: SystemTime, b: &[u8]) -> Option<Frame> {
        if b.len() < 14 {
            return None;
        }
        let mut at = 12;
        let mut tags = 0;
        while b.len() >= at + 6 && matches!(u16_at(b, at), 0x8100 | 0x88a8 | 0x9100) {
            tags += 1;
            at += 4;
        }
        let ethertype = u16_at(b, at);
        let payload = b[at + 2..].to_vec();
        let net = match (tags, ethertype) {
            (0, 0x0806) => parse_arp(&payload).map_or(Net::Other, Net::Arp),
            (0, 0x8035) => parse_arp(&payload).map_or(Net::Other, Net::Rarp),
            (0, 0x0800) => parse_v4(&payload).unwrap_or(Net::Other),
            (0, 0x86dd) => parse_v6(&payload).unwrap_or(Net::Other),
            _ => Net::Other,
        };
        Some(Frame {
            time,
            dst: mac_at(b, 0),
            src: mac_at(b, 6),
            tags,
            ethertype,
            net,
            payload,
        })
    }

    /// The ARP packet, if this is ARP (not RARP).
    pub fn arp(&self) -> Option<&Arp> {
        match &self.net {
            Net::Arp(a) => Some(a),
            _ => None,
        }
    }

    /// The ICMPv6 type, for an unfragmented packet or a first fragment.
    pub fn icmp6_kind(&self) -> Option<u8> {
        match &self.net {
            Net::V6 {
                l4: L4::Icmp6 { kind, .. },
                ..
            } => Some(*kind),
            _ => None,
        }
    }

    /// An ICMPv6 message's type, target (NS, NA, redirect) and link-layer address option, for
    /// an unfragmented packet or a first fragment.
    pub fn icmp6(&self) -> Option<(u8, Option<Ipv6Addr>, Option<MacAddr>)> {
        match &self.net {
            Net::V6 {
                l4: L4::Icmp6 { kind, target, lla },
                ..
            } => Some((*kind, *target, *lla)),
            _ => None,
        }
    }

    /// The ICMPv4 type, for an unfragmented packet or a first fragment.
    pub fn icmp4_kind(&self) -> Option<u8> {
        match &self.net {
            Net::V4 {
                l4: L4::Icmp { kind },
                ..
            } => Some(*kind),
            _ => None,
        }
    }

    /// The IPv6 destination address, if IPv6.
    pub fn dst_v6(&self) -> Option<Ipv6Addr> {
        match &self.net {
            Net::V6 { dst, .. } => Some(*dst),
            _ => None,
        }
    }

    /// The IPv4 destination address, if IPv4.
    pub fn dst_v4(&self) -> Option<Ipv4Addr> {
        match &self.net {
            Net::V4 { dst, .. } => Some(*dst),
            _ => None,
        }
    }

    /// The IPv6 source address, if IPv6.
    pub fn src_v6(&self) -> Option<Ipv6Addr> {
        match &self.net {
            Net::V6 { src, .. } => Some(*src),
            _ => None,
        }
    }

    /// The IPv4 source address, if IPv4.
    pub fn src_v4(&self) -> Option<Ipv4Addr> {
        match &self.net {
            Net::V4 { src, .. } => Some(*src),
            _ => None,
        }
    }

    /// The fragment state of an IP packet (`No` for anything else).
    pub fn frag(&self) -> Frag {
        match &self.net {
            Net::V4 { frag, .. } | Net::V6 { frag, .. } => *frag,
            _ => Frag::No,
        }
    }

    /// The UDP ports, for an unfragmented packet or a first fragment.
    pub fn udp(&self) -> Option<(u16, u16)> {
        match &self.net {
            Net::V4 {
                l4: L4::Udp { sport, dport },
                ..
            }
            | Net::V6 {
                l4: L4::Udp { sport, dport },
                ..
            } => Some((*sport, *dport)),
            _ => None,
        }
    }

    /// True when `pattern` occurs in the frame after the Ethernet header.
    pub fn carries(&self, pattern: &[u8]) -> bool {
        self.payload.windows(pattern.len()).any(|w| w == pattern)
    }
}

fn parse_arp(p: &[u8]) -> Option<Arp> {
    (p.len() >= 28 && p[..6] == [0, 1, 8, 0, 6, 4]).then(|| Arp {
        op: u16_at(p, 6),
        sha: mac_at(p, 8),
        spa: v4_at(p, 14),
        tpa: v4_at(p, 24),
    })
}

fn parse_v4(p: &[u8]) -> Option<Net> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0xf) * 4;
    let flags = u16_at(p, 6);
    let offset = flags & 0x1fff;
    let frag = match (offset, flags & 0x2000 != 0) {
        (0, false) => Frag::No,
        (0, true) => Frag::First,
        _ => Frag::Later,
    };
    let proto = p[9];
    let l4b = p.get(ihl..).unwrap_or_default();
    let l4 = match (frag, proto) {
        (Frag::Later, _) => L4::Missing,
        (_, 17) if l4b.len() >= 4 => L4::Udp {
            sport: u16_at(l4b, 0),
            dport: u16_at(l4b, 2),
        },
        (_, 1) if !l4b.is_empty() => L4::Icmp { kind: l4b[0] },
        (_, 17 | 1) => L4::Missing,
        (_, other) => L4::Other(other),
    };
    Some(Net::V4 {
        src: v4_at(p, 12),
        dst: v4_at(p, 16),
        frag,
        l4,
    })
}

fn parse_v6(p: &[u8]) -> Option<Net> {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return None;
    }
    let (src, dst) = (v6_at(p, 8), v6_at(p, 24));
    let mut next = p[6];
    let mut at = 40;
    let mut exts = Vec::new();
    let mut frag = Frag::No;
    let l4 = loop {
        match next {
            0 | 43 | 60 | 51 | 44 if p.len() < at + 8 => break L4::Missing,
            44 => {
                exts.push(next);
                let off = u16_at(p, at + 2);
                frag = if off >> 3 != 0 {
                    Frag::Later
                } else {
                    Frag::First
                };
                if frag == Frag::Later {
                    break L4::Missing;
                }
                next = p[at];
                at += 8;
            }
            0 | 43 | 60 | 51 => {
                exts.push(next);
                let len = if next == 51 {
                    (usize::from(p[at + 1]) + 2) * 4
                } else {
                    (usize::from(p[at + 1]) + 1) * 8
                };
                next = p[at];
                at += len;
            }
            17 if p.len() >= at + 4 => {
                break L4::Udp {
                    sport: u16_at(p, at),
                    dport: u16_at(p, at + 2),
                }
            }
            58 if p.len() > at => break parse_icmp6(&p[at..]),
            17 | 58 => break L4::Missing,
            other => break L4::Other(other),
        }
    };
    Some(Net::V6 {
        src,
        dst,
        exts,
        frag,
        l4,
    })
}

fn parse_icmp6(m: &[u8]) -> L4 {
    let kind = m[0];
    // Body offset of the target address and of the options, by message type.
    let (target_at, opts_at) = match kind {
        135 | 136 => (Some(8), 24),
        137 => (Some(8), 40),
        133 => (None, 8),
        134 => (None, 16),
        _ => {
            return L4::Icmp6 {
                kind,
                target: None,
                lla: None,
            }
        }
    };
    let target = target_at.filter(|t| m.len() >= t + 16).map(|t| v6_at(m, t));
    let mut lla = None;
    let mut at = opts_at;
    while m.len() >= at + 8 {
        let len = usize::from(m[at + 1]) * 8;
        if len == 0 {
            break;
        }
        if matches!(m[at], 1 | 2) {
            lla = Some(mac_at(m, at + 2));
        }
        at += len;
    }
    L4::Icmp6 { kind, target, lla }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmguard::frames;

    const A: frames::Mac = [0x52, 0x54, 0, 0x77, 0, 1];

    fn parse(f: &frames::Frame) -> Frame {
        Frame::parse(UNIX_EPOCH, f.bytes()).unwrap()
    }

    #[test]
    fn dissects_what_the_attacks_send() {
        let lla: Ipv6Addr = "fe80::5054:ff:fe77:1".parse().unwrap();
        let h = frames::Ipv6 {
            src: lla,
            dst: "ff02::1".parse().unwrap(),
            next_header: frames::IPPROTO_DSTOPTS,
            hop_limit: 255,
        };
        let ra = frames::icmpv6(h.src, h.dst, 134, 0, &frames::nd_ra_body(None, Some(A)));
        let body = [frames::ext_options(frames::IPPROTO_ICMPV6, 1), ra.clone()].concat();
        let f = parse(&frames::ipv6_frame(frames::BROADCAST, A, &h, &body));
        assert_eq!(f.icmp6_kind(), Some(134));
        assert!(
            matches!(&f.net, Net::V6 { exts, frag: Frag::No, .. } if exts == &[60])
                && f.icmp6().is_some_and(|(_, _, m)| m == Some(MacAddr(A)))
        );

        let pieces = frames::ipv6_fragments(&h, frames::IPPROTO_DSTOPTS, &body, 8, 7);
        let first = parse(&frames::ethernet(frames::BROADCAST, A, 0x86dd, &pieces[0]));
        assert!(matches!(
            first.net,
            Net::V6 {
                frag: Frag::First,
                l4: L4::Missing,
                ..
            }
        ));
        let later = parse(&frames::ethernet(frames::BROADCAST, A, 0x86dd, &pieces[1]));
        assert_eq!(later.frag(), Frag::Later);

        let na = frames::icmpv6(lla, h.dst, 136, 0, &frames::nd_na_body(lla, 0x20, Some(A)));
        let f = parse(&frames::ipv6_frame(
            frames::BROADCAST,
            A,
            &frames::Ipv6 {
                next_header: frames::IPPROTO_ICMPV6,
                ..h
            },
            &na,
        ));
        assert!(f
            .icmp6()
            .is_some_and(|(k, t, m)| k == 136 && t == Some(lla) && m.is_some()));

        let tagged = frames::ethernet_tagged(
            frames::BROADCAST,
            A,
            &[(0x88a8, 1), (0x8100, 2)],
            0x0806,
            &[],
        );
        let f = parse(&tagged);
        assert_eq!(
            (f.tags, f.ethertype, f.net.clone()),
            (2, 0x0806, Net::Other)
        );

        let src = Ipv4Addr::new(10, 77, 0, 14);
        let udp = frames::udp_v4(src, Ipv4Addr::BROADCAST, 67, 68, &[0; 20]);
        let ip = frames::Ipv4 {
            id: 9,
            ..frames::Ipv4::new(src, Ipv4Addr::BROADCAST, frames::IPPROTO_UDP)
        };
        let fr = frames::ipv4_fragments(&ip, &udp, 8);
        let f = parse(&frames::ethernet(frames::BROADCAST, A, 0x0800, &fr[0]));
        assert_eq!((f.frag(), f.udp()), (Frag::First, Some((67, 68))));
        let f = parse(&frames::ethernet(frames::BROADCAST, A, 0x0800, &fr[1]));
        assert_eq!((f.frag(), f.udp()), (Frag::Later, None));

        let arp = frames::arp(
            frames::BROADCAST,
            A,
            &frames::Arp {
                op: 2,
                sha: A,
                spa: src,
                tha: [0; 6],
                tpa: src,
            },
        );
        assert_eq!(parse(&arp).arp().unwrap().op, 2);
        assert!(matches!(parse(&frames::rarp_announce(A)).net, Net::Rarp(_)));
    }

    #[test]
    fn reads_pcap_and_ignores_a_cut_record() {
        let f = frames::rarp_announce(A);
        let mut pcap = vec![];
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            pcap.extend(v.to_le_bytes());
        }
        for (secs, usec) in [(100u32, 5u32), (101, 0)] {
            for v in [secs, usec, 60, 60] {
                pcap.extend(v.to_le_bytes());
            }
            pcap.extend(f.bytes());
        }
        pcap.truncate(pcap.len() - 3);
        let got = read_pcap(&pcap).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].time, UNIX_EPOCH + Duration::from_micros(100_000_005));
        assert!(read_pcap(&[]).unwrap().is_empty());
    }
}
