//! Validated identifiers and numbers shared by every stage: MACs, port names, ofports, domain UUIDs.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use thiserror::Error;

/// A value that failed validation, with the reason.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("'{value}': {reason}")]
pub struct InvalidValue {
    pub value: String,
    pub reason: &'static str,
}

fn invalid(value: &str, reason: &'static str) -> InvalidValue {
    InvalidValue {
        value: value.to_string(),
        reason,
    }
}

/// An Ethernet address. Parsing accepts any case; display is lowercase, as OVS prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Group (multicast or broadcast) addresses have the I/G bit set.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The address as a 48-bit number (for `set_field` values).
    pub fn as_u64(self) -> u64 {
        self.0.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b))
    }

    /// A MAC a VM interface may own: unicast and not all zeros.
    pub fn parse_host(s: &str) -> Result<MacAddr, InvalidValue> {
        let mac: MacAddr = s.parse()?;
        if mac.is_multicast() {
            return Err(invalid(s, "multicast MAC cannot be an interface's"));
        }
        if mac == MacAddr::ZERO {
            return Err(invalid(s, "all-zero MAC cannot be an interface's"));
        }
        Ok(mac)
    }

    /// The EUI-64 link-local address (RFC 4291 appendix A): flip the U/L bit, insert ff:fe.
    pub fn eui64_link_local(self) -> Ipv6Addr {
        let m = self.0;
        Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }
}

impl FromStr for MacAddr {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts
                .next()
                .ok_or_else(|| invalid(s, "MAC needs six ':'-separated bytes"))?;
            if part.len() != 2 {
                return Err(invalid(s, "MAC needs six ':'-separated two-digit bytes"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| invalid(s, "MAC byte is not hex"))?;
        }
        if parts.next().is_some() {
            return Err(invalid(s, "MAC needs six ':'-separated bytes"));
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// An OpenFlow port number as OVS assigns it; `LOCAL` is the bridge's internal port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OfPort(u32);

impl OfPort {
    /// OpenFlow's reserved number for the bridge's LOCAL port (OFPP_LOCAL as OVS shows it).
    pub const LOCAL: OfPort = OfPort(65534);

    /// A real port: 1..=65279 (OpenFlow 1.0 range OVS uses), or LOCAL.
    pub fn new(n: u32) -> Result<OfPort, InvalidValue> {
        if (1..=0xfeff).contains(&n) || n == Self::LOCAL.0 {
            Ok(OfPort(n))
        } else {
            Err(invalid(&n.to_string(), "not a valid ofport"))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl FromStr for OfPort {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("LOCAL") {
            return Ok(Self::LOCAL);
        }
        let n: u32 = s
            .parse()
            .map_err(|_| invalid(s, "ofport is not a number"))?;
        OfPort::new(n)
    }
}

impl fmt::Display for OfPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::LOCAL {
            f.write_str("LOCAL")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// An OVS port / interface name (libvirt's `<target dev>`), as the kernel allows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortName(String);

impl PortName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PortName {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // IFNAMSIZ is 16 including the NUL; '/', ':' and whitespace are refused by the kernel or OVS.
        if s.is_empty() || s.len() > 15 {
            return Err(invalid(s, "port name must be 1-15 bytes"));
        }
        if s.chars().any(|c| {
            c == '/' || c == ':' || c == ',' || c == '=' || c.is_whitespace() || c.is_control()
        }) {
            return Err(invalid(
                s,
                "port name has a character OVS or the kernel refuses",
            ));
        }
        Ok(PortName(s.to_string()))
    }
}

impl fmt::Display for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A libvirt domain UUID, kept in canonical lowercase hyphenated form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainUuid(String);

impl DomainUuid {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DomainUuid {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Already in normal form (as every record holds it): nothing to rebuild.
        let canonical = s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        if canonical {
            return Ok(DomainUuid(s.to_string()));
        }
        // libvirt accepts the 32 hex digits with or without hyphens; normalise to 8-4-4-4-12.
        let hex: String = s.trim().chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(s, "UUID must be 32 hex digits"));
        }
        let h = hex.to_ascii_lowercase();
        Ok(DomainUuid(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )))
    }
}

impl fmt::Display for DomainUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Serialises the identifier types as their display strings and parses them back with the same
/// validation as everywhere else.
macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_via_str!(MacAddr, OfPort, PortName, DomainUuid);

/// Compares names as people read them, runs of digits as numbers: `vm-2` before `vm-10`,
/// `vm9` before `vm12`. Names equal that way (`vm01`, `vm1`) fall back to their bytes.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn digits(s: &[u8]) -> usize {
        s.iter().take_while(|c| c.is_ascii_digit()).count()
    }
    fn unpadded(s: &[u8]) -> &[u8] {
        &s[s.iter().take_while(|&&c| c == b'0').count()..]
    }
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (n, m) = (digits(x), digits(y));
                let (nx, ny) = (unpadded(&x[..n]), unpadded(&y[..m]));
                let o = nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny));
                if o != Ordering::Equal {
                    return o;
                }
                (x, y) = (&x[n..], &y[m..]);
            }
            (Some(c), Some(d)) if c != d => return c.cmp(d),
            _ => (x, y) = (&x[1..], &y[1..]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_with_their_numbers_as_numbers() {
        let mut names = vec![
            "vm12", "vm-10", "vm3", "ann-2", "vm-9", "vm", "ann-10", "vm01", "vm1", "b", "ann-1x",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "ann-1x", "ann-2", "ann-10", "b", "vm", "vm-9", "vm-10", "vm01", "vm1", "vm3",
                "vm12"
            ]
        );
        assert_eq!(natural_cmp("x", "x"), std::cmp::Ordering::Equal);
    }

    #[test]
    fn mac_round_trip_and_case() {
        let m: MacAddr = "52:54:00:AB:cd:0F".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(m.to_string().parse::<MacAddr>().unwrap(), m);
        for bad in [
            "52:54:00:00:00",
            "52:54:00:00:00:00:01",
            "5254.0000.0001",
            "52:54:00:00:00:zz",
            "52:54:0:00:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(MacAddr::parse_host("01:00:5e:00:00:01").is_err());
        assert!(MacAddr::parse_host("ff:ff:ff:ff:ff:ff").is_err());
        assert!(MacAddr::parse_host("00:00:00:00:00:00").is_err());
    }

    #[test]
    fn eui64_rfc4291_appendix_a() {
        // RFC 4291 appendix A: 34-56-78-9A-BC-DE -> interface identifier 3656:78FF:FE9A:BCDE.
        let m: MacAddr = "34:56:78:9a:bc:de".parse().unwrap();
        assert_eq!(
            m.eui64_link_local(),
            "fe80::3656:78ff:fe9a:bcde".parse::<Ipv6Addr>().unwrap()
        );
        let a: MacAddr = "52:54:00:00:00:05".parse().unwrap();
        assert_eq!(
            a.eui64_link_local(),
            "fe80::5054:ff:fe00:5".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn ofport_and_port_name() {
        assert_eq!("LOCAL".parse::<OfPort>().unwrap(), OfPort::LOCAL);
        assert_eq!("7".parse::<OfPort>().unwrap().to_string(), "7");
        assert!("0".parse::<OfPort>().is_err());
        assert!("-1".parse::<OfPort>().is_err());
        assert!("vnet0".parse::<PortName>().is_ok());
        assert!("a/b".parse::<PortName>().is_err());
        assert!("abcdefghijklmnop".parse::<PortName>().is_err());
    }

    #[test]
    fn uuid_normalised() {
        let u: DomainUuid = "11111111222233334444555555555555".parse().unwrap();
        assert_eq!(u.as_str(), "11111111-2222-3333-4444-555555555555");
        let v: DomainUuid = "11111111-2222-3333-4444-55555555555A".parse().unwrap();
        assert_eq!(v.as_str(), "11111111-2222-3333-4444-55555555555a");
        assert!("1111".parse::<DomainUuid>().is_err());
        // The normal form is kept as it is; near misses still go through normalisation.
        let w: DomainUuid = "0123abcd-ef01-4000-8000-00000000beef".parse().unwrap();
        assert_eq!(w.as_str(), "0123abcd-ef01-4000-8000-00000000beef");
        let x: DomainUuid = "0123abcd0-ef1-4000-8000-00000000beef".parse().unwrap();
        assert_eq!(x.as_str(), "0123abcd-0ef1-4000-8000-00000000beef");
        assert!("0123abcd-ef01-4000-8000-00000000beeg"
            .parse::<DomainUuid>()
            .is_err());
        assert!("0123abcd-ef01-4000-8000-00000000bee-"
            .parse::<DomainUuid>()
            .is_err());
    }
}
