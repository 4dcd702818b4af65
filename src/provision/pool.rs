//! Address pools and allocation: which name, MAC, IPv4 and IPv6 address a new VM interface gets,
//! given what the defined domains already own. Pure: no process, file or clock.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use thiserror::Error;

use crate::domain::{DomainError, DomainXml};
use crate::model::{InvalidValue, MacAddr};

/// QEMU's OUI, the prefix of every MAC vmguard allocates.
pub const QEMU_OUI: [u8; 3] = [0x52, 0x54, 0x00];

fn invalid(value: &str, reason: &'static str) -> InvalidValue {
    InvalidValue {
        value: value.to_string(),
        reason,
    }
}

/// Splits `ADDR/LEN` into the address text and a prefix length no longer than `max`.
fn split_cidr(s: &str, max: u8) -> Result<(&str, u8), InvalidValue> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| invalid(s, "a network in CIDR form is expected (ADDRESS/LENGTH)"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| invalid(s, "prefix length out of range"))?;
    Ok((addr, len))
}

/// An IPv4 network: address and prefix length, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    fn mask(self) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0)
    }

    pub fn contains(self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.addr)
    }

    /// The addresses a host may get: all but the network and broadcast addresses, except in a
    /// /31 or /32 where there are none (RFC 3021).
    pub fn hosts(self) -> std::ops::RangeInclusive<u32> {
        let first = u32::from(self.addr);
        let last = first | !self.mask();
        if self.len >= 31 {
            first..=last
        } else {
            first + 1..=last - 1
        }
    }
}

impl FromStr for Ipv4Net {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = split_cidr(s, 32)?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| invalid(s, "not an IPv4 network"))?;
        let net = Ipv4Net { addr, len };
        if u32::from(addr) & !net.mask() != 0 {
            return Err(invalid(s, "host bits are set (give the network address)"));
        }
        Ok(net)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An IPv6 network: address and prefix length, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    len: u8,
}

impl Ipv6Net {
    fn mask(self) -> u128 {
        u128::MAX
            .checked_shl(128 - u32::from(self.len))
            .unwrap_or(0)
    }

    pub fn contains(self, a: Ipv6Addr) -> bool {
        u128::from(a) & self.mask() == u128::from(self.addr)
    }

    pub fn prefix_len(self) -> u8 {
        self.len
    }

    /// The address a guest forms with SLAAC from this /64 and its MAC (RFC 4291 appendix A):
    /// the prefix with the MAC's modified EUI-64 interface identifier.
    pub fn slaac(self, mac: MacAddr) -> Ipv6Addr {
        let iid = u128::from(mac.eui64_link_local()) & u128::from(u64::MAX);
        Ipv6Addr::from(u128::from(self.addr) | iid)
    }
}

impl FromStr for Ipv6Net {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = split_cidr(s, 128)?;
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| invalid(s, "not an IPv6 network"))?;
        let net = Ipv6Net { addr, len };
        if u128::from(addr) & !net.mask() != 0 {
            return Err(invalid(s, "host bits are set (give the network prefix)"));
        }
        Ok(net)
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An address or network that is never allocated (the gateway, a DHCP server's dynamic range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reserved {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

impl Reserved {
    pub fn contains(self, a: IpAddr) -> bool {
        match (self, a) {
            (Reserved::V4(n), IpAddr::V4(a)) => n.contains(a),
            (Reserved::V6(n), IpAddr::V6(a)) => n.contains(a),
            _ => false,
        }
    }
}

impl FromStr for Reserved {
    type Err = InvalidValue;

    /// A plain address (`10.0.0.1`) or a network (`10.0.0.0/28`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.contains('/') {
            return match s.contains(':') {
                true => s.parse().map(Reserved::V6),
                false => s.parse().map(Reserved::V4),
            };
        }
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(addr)) => Ok(Reserved::V4(Ipv4Net { addr, len: 32 })),
            Ok(IpAddr::V6(addr)) => Ok(Reserved::V6(Ipv6Net { addr, len: 128 })),
            Err(_) => Err(invalid(s, "not an IP address or network")),
        }
    }
}

impl fmt::Display for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reserved::V4(n) if n.len == 32 => n.addr.fmt(f),
            Reserved::V6(n) if n.len == 128 => n.addr.fmt(f),
            Reserved::V4(n) => n.fmt(f),
            Reserved::V6(n) => n.fmt(f),
        }
    }
}

/// Why a `[pool]` table is refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("needs ipv4, ipv6 or both")]
    Empty,
    #[error("ipv6 prefix {0} must be a /64: guests form SLAAC (EUI-64) addresses only in a /64")]
    NotSlaac(Ipv6Net),
    #[error("reserved {0} is not inside the pool {1}")]
    ReservedOutside(Reserved, String),
}

/// Where new interfaces' addresses come from (the config's `[pool]` table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    ipv4: Option<Ipv4Net>,
    ipv6: Option<Ipv6Net>,
    reserved: Vec<Reserved>,
}

impl Pool {
    /// Checks that there is a family to allocate from, that the IPv6 prefix is a /64 and that
    /// every reserved entry lies in its family's pool (anything else is a typo).
    pub fn new(
        ipv4: Option<Ipv4Net>,
        ipv6: Option<Ipv6Net>,
        reserved: Vec<Reserved>,
    ) -> Result<Pool, PoolError> {
        if ipv4.is_none() && ipv6.is_none() {
            return Err(PoolError::Empty);
        }
        if let Some(p) = ipv6.filter(|p| p.len != 64) {
            return Err(PoolError::NotSlaac(p));
        }
        for r in &reserved {
            let inside = match r {
                Reserved::V4(n) => ipv4.is_some_and(|p| p.len <= n.len && p.contains(n.addr)),
                Reserved::V6(n) => ipv6.is_some_and(|p| p.len <= n.len && p.contains(n.addr)),
            };
            if !inside {
                let pool = match r {
                    Reserved::V4(_) => ipv4.map_or("(no ipv4 pool)".into(), |p| p.to_string()),
                    Reserved::V6(_) => ipv6.map_or("(no ipv6 pool)".into(), |p| p.to_string()),
                };
                return Err(PoolError::ReservedOutside(*r, pool));
            }
        }
        Ok(Pool {
            ipv4,
            ipv6,
            reserved,
        })
    }

    pub fn ipv4(&self) -> Option<Ipv4Net> {
        self.ipv4
    }

    pub fn ipv6(&self) -> Option<Ipv6Net> {
        self.ipv6
    }

    pub fn reserved(&self) -> &[Reserved] {
        &self.reserved
    }

    fn is_reserved(&self, a: IpAddr) -> bool {
        self.reserved.iter().any(|r| r.contains(a))
    }
}

/// A user a VM is created for; VMs are named `USER-N`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UserName {
    type Err = InvalidValue;

    /// A DNS label (VM names become DHCP host names) that does not itself look like a VM name:
    /// with `bob` owning `bob-2`, a user `bob-2` would make `delete bob-2` ambiguous.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 50 {
            return Err(invalid(s, "user name must be 1-50 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(s, "user name may only have a-z, 0-9 and '-'"));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(invalid(s, "user name cannot start or end with '-'"));
        }
        if vm_number(s).is_some() {
            return Err(invalid(
                s,
                "user name cannot end in -NUMBER (that is how its VMs are named)",
            ));
        }
        Ok(UserName(s.to_string()))
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Some(n)` when `name` ends in `-n` with n a positive decimal number.
fn vm_number(name: &str) -> Option<u64> {
    let (_, n) = name.rsplit_once('-')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// What one new interface gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub mac: MacAddr,
    pub ipv4: Option<Ipv4Addr>,
    /// The SLAAC address the guest forms from the pool's /64 and `mac`.
    pub ipv6: Option<Ipv6Addr>,
}

impl Allocation {
    /// The addresses to list in the metadata, IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ipv6.map(IpAddr::V6))
            .collect()
    }
}

/// Why an allocation failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AllocError {
    #[error("IPv4 pool {0} is exhausted: every usable address is owned by a defined domain or reserved (widen [pool] ipv4 or delete VMs)")]
    Ipv4Exhausted(Ipv4Net),
    #[error("no free MAC address left in {:02x}:{:02x}:{:02x}:00:00:00/24", QEMU_OUI[0], QEMU_OUI[1], QEMU_OUI[2])]
    MacExhausted,
}

/// Everything the defined domains own: names, MACs and addresses. An allocation never returns
/// anything in it, and adds what it returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    names: BTreeSet<String>,
    macs: BTreeSet<MacAddr>,
    ipv4: BTreeSet<Ipv4Addr>,
    ipv6: BTreeSet<Ipv6Addr>,
}

impl Inventory {
    /// Adds a domain's name, every interface's MAC (on any bridge) and its EUI-64 link-local,
    /// and every MAC and address of its vmguard metadata. Broken metadata is an error: its
    /// addresses are unknown, so allocating next to it could hand one out twice.
    pub fn add_domain(&mut self, d: &DomainXml) -> Result<(), DomainError> {
        self.names.insert(d.name.clone());
        for mac in d.interfaces.iter().filter_map(|i| i.mac) {
            self.add_mac(mac);
        }
        match &d.meta {
            Some(Err(e)) => return Err(e.clone()),
            Some(Ok(entries)) => {
                for e in entries {
                    self.add_mac(e.mac);
                    for a in &e.addresses {
                        self.add_ip(*a);
                    }
                }
            }
            None => {}
        }
        Ok(())
    }

    fn add_mac(&mut self, mac: MacAddr) {
        self.macs.insert(mac);
        self.ipv6.insert(mac.eui64_link_local());
    }

    fn add_ip(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(a) => self.ipv4.insert(a),
            IpAddr::V6(a) => self.ipv6.insert(a),
        };
    }

    pub fn owns_name(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    pub fn owns_mac(&self, mac: MacAddr) -> bool {
        self.macs.contains(&mac)
    }

    pub fn owns_ip(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => self.ipv4.contains(&a),
            IpAddr::V6(a) => self.ipv6.contains(&a),
        }
    }

    /// The next `count` free names `USER-N`, lowest N first (gaps are reused); marks them taken.
    pub fn allocate_names(&mut self, user: &UserName, count: usize) -> Vec<String> {
        let names: Vec<String> = (1u64..)
            .map(|n| format!("{user}-{n}"))
            .filter(|name| !self.names.contains(name))
            .take(count)
            .collect();
        self.names.extend(names.iter().cloned());
        names
    }

    /// One interface's MAC and addresses: the lowest free IPv4 of the pool (gaps are reused;
    /// network, broadcast and reserved addresses never), a MAC of QEMU's OUI derived from that
    /// IPv4's low 24 bits (10.0.0.5 → 52:54:00:00:00:05, so hypervisors with disjoint pools
    /// never pick the same MAC), else the next free one, and the SLAAC address of that MAC in
    /// the IPv6 prefix. Marks all of it taken.
    pub fn allocate(&mut self, pool: &Pool) -> Result<Allocation, AllocError> {
        let ipv4 = match pool.ipv4 {
            None => None,
            Some(net) => Some(
                net.hosts()
                    .map(Ipv4Addr::from)
                    .find(|a| !self.ipv4.contains(a) && !pool.is_reserved(IpAddr::V4(*a)))
                    .ok_or(AllocError::Ipv4Exhausted(net))?,
            ),
        };
        let start = ipv4.map_or(1, |a| u32::from(a) & 0xff_ffff);
        let mac = (0..1u32 << 24)
            .map(|i| (start + i) & 0xff_ffff)
            .filter(|low| *low != 0)
            .map(|low| {
                let [_, a, b, c] = low.to_be_bytes();
                MacAddr([QEMU_OUI[0], QEMU_OUI[1], QEMU_OUI[2], a, b, c])
            })
            .find(|m| self.mac_is_free(*m, pool))
            .ok_or(AllocError::MacExhausted)?;
        let alloc = Allocation {
            mac,
            ipv4,
            ipv6: pool.ipv6.map(|p| p.slaac(mac)),
        };
        self.add_mac(mac);
        for a in alloc.addresses() {
            self.add_ip(a);
        }
        Ok(alloc)
    }

    /// A MAC is free when no domain has it and neither of the IPv6 addresses a guest derives
    /// from it (link-local, SLAAC) is owned or reserved.
    fn mac_is_free(&self, mac: MacAddr, pool: &Pool) -> bool {
        let derived =
            std::iter::once(mac.eui64_link_local()).chain(pool.ipv6.map(|p| p.slaac(mac)));
        !self.macs.contains(&mac)
            && derived
                .into_iter()
                .all(|a| !self.ipv6.contains(&a) && !pool.is_reserved(IpAddr::V6(a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(v4: &str, v6: Option<&str>, reserved: &[&str]) -> Pool {
        Pool::new(
            Some(v4.parse().unwrap()),
            v6.map(|p| p.parse().unwrap()),
            reserved.iter().map(|r| r.parse().unwrap()).collect(),
        )
        .unwrap()
    }

    fn domain(name: &str, mac: &str, addrs: &[&str]) -> DomainXml {
        let ips: String = addrs
            .iter()
            .map(|a| format!("<ip address='{a}'/>"))
            .collect();
        DomainXml::parse(&format!(
            "<domain><name>{name}</name><metadata><guard xmlns='urn:vmguard:1'>\
             <interface mac='{mac}'>{ips}</interface></guard></metadata><devices>\
             <interface type='bridge'><mac address='{mac}'/><source bridge='vm-switch'/></interface>\
             </devices></domain>"
        ))
        .unwrap()
    }

    fn v4(s: &str) -> Option<Ipv4Addr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn networks_parse_and_refuse_host_bits() {
        let n: Ipv4Net = "10.0.0.0/24".parse().unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/24");
        assert!(n.contains("10.0.0.255".parse().unwrap()));
        assert!(!n.contains("10.0.1.0".parse().unwrap()));
        assert_eq!(n.hosts().count(), 254);
        assert_eq!("10.0.0.0/31".parse::<Ipv4Net>().unwrap().hosts().count(), 2);
        assert_eq!("10.0.0.7/32".parse::<Ipv4Net>().unwrap().hosts().count(), 1);
        assert_eq!(
            "0.0.0.0/0".parse::<Ipv4Net>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        for bad in ["10.0.0.5/24", "10.0.0.0", "10.0.0.0/33", "10.0.0/24", "x/8"] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
        let p: Ipv6Net = "2001:db8::/64".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8::/64");
        assert!("2001:db8::1/64".parse::<Ipv6Net>().is_err());
        assert!("2001:db8::/129".parse::<Ipv6Net>().is_err());
    }

    #[test]
    fn slaac_is_rfc4291_eui64() {
        let p: Ipv6Net = "2001:db8::/64".parse().unwrap();
        let mac: MacAddr = "52:54:00:00:00:05".parse().unwrap();
        assert_eq!(
            p.slaac(mac),
            "2001:db8::5054:ff:fe00:5".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn pool_checks() {
        let v6: Ipv6Net = "2001:db8::/56".parse().unwrap();
        assert_eq!(
            Pool::new(None, Some(v6), vec![]),
            Err(PoolError::NotSlaac(v6))
        );
        assert_eq!(Pool::new(None, None, vec![]), Err(PoolError::Empty));
        let outside = Pool::new(
            Some("10.0.0.0/24".parse().unwrap()),
            None,
            vec!["10.0.1.1".parse().unwrap()],
        )
        .unwrap_err();
        assert_eq!(
            outside.to_string(),
            "reserved 10.0.1.1 is not inside the pool 10.0.0.0/24"
        );
        let no_v6 = Pool::new(
            Some("10.0.0.0/24".parse().unwrap()),
            None,
            vec!["2001:db8::1".parse().unwrap()],
        );
        assert!(matches!(no_v6, Err(PoolError::ReservedOutside(..))));
        assert!(Pool::new(
            Some("10.0.0.0/24".parse().unwrap()),
            None,
            vec!["10.0.0.0/16".parse().unwrap()]
        )
        .is_err());
    }

    #[test]
    fn first_allocation_skips_network_and_reserved_and_derives_mac() {
        let p = pool(
            "10.0.0.0/24",
            Some("2001:db8::/64"),
            &["10.0.0.1", "10.0.0.2"],
        );
        let a = Inventory::default().allocate(&p).unwrap();
        assert_eq!(a.ipv4, v4("10.0.0.3"));
        assert_eq!(a.mac.to_string(), "52:54:00:00:00:03");
        assert_eq!(a.ipv6, Some("2001:db8::5054:ff:fe00:3".parse().unwrap()));
    }

    #[test]
    fn reserved_range_is_never_allocated() {
        let p = pool("10.0.0.0/28", None, &["10.0.0.0/29", "10.0.0.9"]);
        let mut inv = Inventory::default();
        let got: Vec<_> = (0..5)
            .map(|_| inv.allocate(&p).unwrap().ipv4.unwrap())
            .collect();
        let want: Vec<Ipv4Addr> = [
            "10.0.0.8",
            "10.0.0.10",
            "10.0.0.11",
            "10.0.0.12",
            "10.0.0.13",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(got, want);
        assert!(inv.allocate(&p).is_ok(), "10.0.0.14 is usable");
        // 10.0.0.15 is the broadcast address.
        assert_eq!(
            inv.allocate(&p).unwrap_err().to_string(),
            "IPv4 pool 10.0.0.0/28 is exhausted: every usable address is owned by a defined domain or reserved (widen [pool] ipv4 or delete VMs)"
        );
    }

    #[test]
    fn exhaustion_names_the_pool_and_takes_nothing() {
        let p = pool("192.168.7.0/30", None, &[]);
        let mut inv = Inventory::default();
        inv.allocate(&p).unwrap();
        inv.allocate(&p).unwrap();
        let before = inv.clone();
        let e = inv.allocate(&p).unwrap_err();
        assert_eq!(
            e,
            AllocError::Ipv4Exhausted("192.168.7.0/30".parse().unwrap())
        );
        assert!(e.to_string().contains("192.168.7.0/30"), "{e}");
        assert_eq!(inv, before);
    }

    #[test]
    fn owned_addresses_and_macs_are_skipped_and_gaps_reused() {
        let p = pool("10.0.0.0/24", Some("2001:db8::/64"), &["10.0.0.1"]);
        let mut inv = Inventory::default();
        inv.add_domain(&domain("a-1", "52:54:00:00:00:02", &["10.0.0.2"]))
            .unwrap();
        inv.add_domain(&domain("a-3", "52:54:00:00:00:04", &["10.0.0.4"]))
            .unwrap();
        // Someone gave 10.0.0.5's derived MAC to a VM with another address.
        inv.add_domain(&domain("b-1", "52:54:00:00:00:03", &["10.0.0.50"]))
            .unwrap();
        let a = inv.allocate(&p).unwrap();
        assert_eq!(a.ipv4, v4("10.0.0.3"), "the gap is reused");
        assert_eq!(
            a.mac.to_string(),
            "52:54:00:00:00:05",
            "03 is taken, 04 too"
        );
        let b = inv.allocate(&p).unwrap();
        assert_eq!(b.ipv4, v4("10.0.0.5"));
        assert_eq!(
            b.mac.to_string(),
            "52:54:00:00:00:06",
            "05 was just handed out"
        );
        assert!(inv.owns_ip("10.0.0.5".parse().unwrap()));
        assert!(inv.owns_mac(b.mac));
    }

    #[test]
    fn a_mac_whose_slaac_address_is_owned_is_skipped() {
        let p = pool("10.0.0.0/24", Some("2001:db8::/64"), &["10.0.0.1"]);
        let mut inv = Inventory::default();
        // A hand-made VM lists the SLAAC address that 52:54:00:00:00:02 would form.
        inv.add_domain(&domain(
            "x",
            "52:54:00:99:00:01",
            &["10.0.0.99", "2001:db8::5054:ff:fe00:2"],
        ))
        .unwrap();
        let a = inv.allocate(&p).unwrap();
        assert_eq!(a.ipv4, v4("10.0.0.2"));
        assert_eq!(a.mac.to_string(), "52:54:00:00:00:03");
        assert_eq!(a.ipv6, Some("2001:db8::5054:ff:fe00:3".parse().unwrap()));
    }

    #[test]
    fn ipv6_only_pool() {
        let p = Pool::new(None, Some("2001:db8::/64".parse().unwrap()), vec![]).unwrap();
        let mut inv = Inventory::default();
        let a = inv.allocate(&p).unwrap();
        assert_eq!(a.ipv4, None);
        assert_eq!(a.mac.to_string(), "52:54:00:00:00:01");
        assert_eq!(
            inv.allocate(&p).unwrap().mac.to_string(),
            "52:54:00:00:00:02"
        );
    }

    #[test]
    fn broken_metadata_blocks_allocation() {
        let d = DomainXml::parse(
            "<domain><name>bad</name><metadata><guard xmlns='urn:vmguard:1'><nic/></guard></metadata></domain>",
        )
        .unwrap();
        let e = Inventory::default().add_domain(&d).unwrap_err();
        assert!(e.to_string().contains("bad"), "{e}");
    }

    #[test]
    fn names_fill_gaps_and_users_are_validated() {
        let mut inv = Inventory::default();
        inv.add_domain(&domain("alice-1", "52:54:00:00:00:02", &[]))
            .unwrap();
        inv.add_domain(&domain("alice-3", "52:54:00:00:00:03", &[]))
            .unwrap();
        let alice: UserName = "alice".parse().unwrap();
        assert_eq!(
            inv.allocate_names(&alice, 3),
            vec!["alice-2", "alice-4", "alice-5"]
        );
        assert_eq!(inv.allocate_names(&alice, 1), vec!["alice-6"]);
        for bad in [
            "",
            "Alice",
            "bob-2",
            "-x",
            "x-",
            "a_b",
            "a.b",
            &"x".repeat(51),
        ] {
            assert!(bad.parse::<UserName>().is_err(), "{bad}");
        }
        for good in ["s1234567", "bob-smith", "b2"] {
            assert!(good.parse::<UserName>().is_ok(), "{good}");
        }
    }

    #[test]
    fn reserved_parses_addresses_and_networks() {
        assert_eq!(
            "10.0.0.1".parse::<Reserved>().unwrap().to_string(),
            "10.0.0.1"
        );
        assert_eq!(
            "10.0.0.0/28".parse::<Reserved>().unwrap().to_string(),
            "10.0.0.0/28"
        );
        assert_eq!(
            "2001:db8::1".parse::<Reserved>().unwrap().to_string(),
            "2001:db8::1"
        );
        assert!("10.0.0.1/28".parse::<Reserved>().is_err());
        assert!("gateway".parse::<Reserved>().is_err());
    }
}
