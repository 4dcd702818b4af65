//! Reads a libvirt domain XML: the domain's identity, its interfaces, and vmguard's metadata
//! (namespace `urn:vmguard:1`), validated into the owned addresses of each guarded interface.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use crate::model::{DomainUuid, InvalidValue, MacAddr, PortName};

/// vmguard's metadata namespace; the prefix is free, the URI is what identifies it.
pub const NAMESPACE: &str = "urn:vmguard:1";

/// What is wrong with a domain's XML, naming the domain, the interface and the field.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DomainError {
    #[error("{}domain XML is malformed: {problem}", domain.as_ref().map(|d| format!("domain {d}: ")).unwrap_or_default())]
    Malformed {
        /// The domain's name when it can still be read from the broken text.
        domain: Option<String>,
        problem: String,
    },
    #[error("domain {domain}: {field}: {problem}")]
    Domain {
        domain: String,
        field: &'static str,
        problem: String,
    },
    #[error("domain {domain}: interface {iface}: {field}: {problem}")]
    Interface {
        domain: String,
        iface: String,
        field: &'static str,
        problem: String,
    },
}

/// A domain's `<interface>` as libvirt describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInterface {
    /// `<mac address>`; `None` when absent (a defined domain before libvirt fills it in).
    pub mac: Option<MacAddr>,
    /// `<source bridge>`, also present in the live XML of `type='network'` interfaces.
    pub bridge: Option<String>,
    /// `<target dev>`: the tap's name, known once the domain runs.
    pub dev: Option<PortName>,
    /// Position among the domain's interfaces, for messages.
    pub index: usize,
}

/// One `<vmguard:interface>` entry of the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaInterface {
    pub mac: MacAddr,
    pub addresses: Vec<IpAddr>,
}

/// A parsed domain XML, before checking it against the guarded bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainXml {
    pub name: String,
    pub uuid: Option<DomainUuid>,
    pub interfaces: Vec<DomainInterface>,
    /// `None` when the domain has no vmguard metadata element.
    pub meta: Option<Result<Vec<MetaInterface>, DomainError>>,
}

/// The identity removal needs: the domain's UUID and its interfaces' MACs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainIdentity {
    pub name: String,
    pub uuid: Option<DomainUuid>,
    pub macs: Vec<MacAddr>,
}

/// A guarded interface with everything the compiler needs; built only by [`DomainXml::guard`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardedInterface {
    pub mac: MacAddr,
    pub dev: Option<PortName>,
    /// Owned IPv4 addresses, in metadata order.
    pub ipv4: Vec<Ipv4Addr>,
    /// Owned IPv6 addresses: the EUI-64 link-local first, then the metadata's, deduplicated.
    pub ipv6: Vec<Ipv6Addr>,
}

/// A domain whose interfaces on the guarded bridge all have valid metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardedDomain {
    pub name: String,
    pub uuid: DomainUuid,
    pub interfaces: Vec<GuardedInterface>,
    /// Metadata entries ignored because their interface is on another bridge.
    pub warnings: Vec<String>,
}

/// A malformed-XML error naming the domain if a `<name>` can still be found in the text.
fn malformed(xml: &str, problem: String) -> DomainError {
    let domain = xml
        .split_once("<name>")
        .and_then(|(_, rest)| rest.split_once("</name>"))
        .map(|(name, _)| name.trim())
        .filter(|n| !n.is_empty() && n.len() <= 256 && !n.contains('<'))
        .map(str::to_string);
    DomainError::Malformed { domain, problem }
}

/// The first child element `<name>` in no namespace.
fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace().is_none()
    })
}

impl DomainXml {
    /// Parses the XML libvirt passes to the hook or `virsh dumpxml` prints.
    pub fn parse(xml: &str) -> Result<DomainXml, DomainError> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| malformed(xml, e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "domain" {
            return Err(malformed(
                xml,
                format!("root element is <{}>, not <domain>", root.tag_name().name()),
            ));
        }
        let name = child(root, "name")
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed(xml, "no <name>".into()))?
            .to_string();
        let uuid = match child(root, "uuid").and_then(|n| n.text()) {
            None => None,
            Some(text) => Some(
                text.parse()
                    .map_err(|e: InvalidValue| DomainError::Domain {
                        domain: name.clone(),
                        field: "uuid",
                        problem: e.to_string(),
                    })?,
            ),
        };
        let mut interfaces = Vec::new();
        if let Some(devices) = child(root, "devices") {
            for (index, iface) in devices
                .children()
                .filter(|c| c.is_element() && c.tag_name().name() == "interface")
                .enumerate()
            {
                let label = child(iface, "target")
                    .and_then(|t| t.attribute("dev"))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("#{index}"));
                let iface_err = |field, problem: String| DomainError::Interface {
                    domain: name.clone(),
                    iface: label.clone(),
                    field,
                    problem,
                };
                let mac = match child(iface, "mac").and_then(|m| m.attribute("address")) {
                    None => None,
                    Some(s) => Some(
                        MacAddr::parse_host(s)
                            .map_err(|e| iface_err("mac address", e.to_string()))?,
                    ),
                };
                let bridge = child(iface, "source")
                    .and_then(|s| s.attribute("bridge"))
                    .map(str::to_string);
                let dev = match child(iface, "target").and_then(|t| t.attribute("dev")) {
                    None => None,
                    Some(s) => Some(
                        s.parse()
                            .map_err(|e: InvalidValue| iface_err("target dev", e.to_string()))?,
                    ),
                };
                interfaces.push(DomainInterface {
                    mac,
                    bridge,
                    dev,
                    index,
                });
            }
        }
        let meta = child(root, "metadata").and_then(|m| parse_meta(m, &name));
        Ok(DomainXml {
            name,
            uuid,
            interfaces,
            meta,
        })
    }

    /// The identity removal needs; never fails on broken metadata.
    pub fn identity(&self) -> DomainIdentity {
        let mut macs: Vec<MacAddr> = self.interfaces.iter().filter_map(|i| i.mac).collect();
        if let Some(Ok(meta)) = &self.meta {
            macs.extend(meta.iter().map(|m| m.mac));
        }
        macs.sort();
        macs.dedup();
        DomainIdentity {
            name: self.name.clone(),
            uuid: self.uuid.clone(),
            macs,
        }
    }

    /// Checks the domain against the guarded bridge: every interface on it needs a metadata
    /// entry, every entry needs an interface, and no address may repeat.
    pub fn guard(&self, bridge: &str) -> Result<GuardedDomain, DomainError> {
        let domain_err = |field, problem: String| DomainError::Domain {
            domain: self.name.clone(),
            field,
            problem,
        };
        let on_bridge: Vec<&DomainInterface> = self
            .interfaces
            .iter()
            .filter(|i| i.bridge.as_deref() == Some(bridge))
            .collect();
        let meta: &[MetaInterface] = match &self.meta {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(e.clone()),
            None if on_bridge.is_empty() => &[],
            None => {
                let iface = on_bridge[0];
                return Err(DomainError::Interface {
                    domain: self.name.clone(),
                    iface: iface_label(iface),
                    field: "metadata",
                    problem: format!("interface is on bridge {bridge} but has no <vmguard:interface> entry in {NAMESPACE} metadata"),
                });
            }
        };
        let uuid = self.uuid.clone().ok_or_else(|| {
            domain_err(
                "uuid",
                "missing: the per-interface cookie is derived from it".into(),
            )
        })?;
        let mut warnings = Vec::new();
        for entry in meta {
            match self.interfaces.iter().find(|i| i.mac == Some(entry.mac)) {
                None => {
                    return Err(DomainError::Interface {
                        domain: self.name.clone(),
                        iface: entry.mac.to_string(),
                        field: "metadata mac",
                        problem: "matches no <interface> of the domain (typo?)".into(),
                    })
                }
                Some(i) if i.bridge.as_deref() != Some(bridge) => warnings.push(format!(
                    "metadata entry {} ignored: its interface is on bridge {}, not {bridge}",
                    entry.mac,
                    i.bridge.as_deref().unwrap_or("(none)")
                )),
                Some(_) => {}
            }
        }
        let mut seen_macs = BTreeSet::new();
        let mut seen_devs = BTreeSet::new();
        let mut interfaces = Vec::new();
        for iface in on_bridge {
            let label = iface_label(iface);
            let iface_err = |field, problem: String| DomainError::Interface {
                domain: self.name.clone(),
                iface: label.clone(),
                field,
                problem,
            };
            let mac = iface.mac.ok_or_else(|| {
                iface_err(
                    "mac address",
                    "missing on an interface of the guarded bridge".into(),
                )
            })?;
            if !seen_macs.insert(mac) {
                return Err(iface_err(
                    "mac address",
                    "two interfaces of the domain on the bridge share it".into(),
                ));
            }
            if let Some(dev) = &iface.dev {
                if !seen_devs.insert(dev.clone()) {
                    return Err(iface_err(
                        "target dev",
                        format!("'{dev}' is used by two interfaces"),
                    ));
                }
            }
            let entry = meta.iter().find(|m| m.mac == mac).ok_or_else(|| {
                iface_err(
                    "metadata",
                    format!("interface is on bridge {bridge} but has no <vmguard:interface mac='{mac}'> entry"),
                )
            })?;
            let link_local = mac.eui64_link_local();
            let mut ipv4 = Vec::new();
            let mut ipv6 = vec![link_local];
            for a in &entry.addresses {
                match a {
                    IpAddr::V4(v4) => ipv4.push(*v4),
                    // The EUI-64 link-local is always owned; listing it again is harmless.
                    IpAddr::V6(v6) if *v6 == link_local => {}
                    IpAddr::V6(v6) => ipv6.push(*v6),
                }
            }
            interfaces.push(GuardedInterface {
                mac,
                dev: iface.dev.clone(),
                ipv4,
                ipv6,
            });
        }
        // An address owned twice within the domain would make two interfaces' steering flows collide.
        let mut owners: BTreeSet<IpAddr> = BTreeSet::new();
        for i in &interfaces {
            for a in i
                .ipv4
                .iter()
                .map(|a| IpAddr::V4(*a))
                .chain(i.ipv6.iter().map(|a| IpAddr::V6(*a)))
            {
                if !owners.insert(a) {
                    return Err(DomainError::Interface {
                        domain: self.name.clone(),
                        iface: i.mac.to_string(),
                        field: "ip address",
                        problem: format!("{a} is owned by two interfaces of the domain"),
                    });
                }
            }
        }
        Ok(GuardedDomain {
            name: self.name.clone(),
            uuid,
            interfaces,
            warnings,
        })
    }
}

fn iface_label(i: &DomainInterface) -> String {
    match (&i.mac, &i.dev) {
        (Some(m), Some(d)) => format!("{m} ({d})"),
        (Some(m), None) => m.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => format!("#{}", i.index),
    }
}

/// Finds vmguard's element among `<metadata>`'s children and parses it; `None` if absent.
fn parse_meta(
    metadata: roxmltree::Node<'_, '_>,
    domain: &str,
) -> Option<Result<Vec<MetaInterface>, DomainError>> {
    let mut guards = metadata
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace() == Some(NAMESPACE));
    let guard = guards.next()?;
    if guards.next().is_some() {
        return Some(Err(meta_err(
            domain,
            "metadata",
            format!("more than one element in {NAMESPACE}"),
        )));
    }
    Some(parse_guard(guard, domain))
}

fn meta_err(domain: &str, field: &'static str, problem: String) -> DomainError {
    DomainError::Domain {
        domain: domain.to_string(),
        field,
        problem,
    }
}

fn elements<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    domain: &str,
) -> Result<Vec<roxmltree::Node<'a, 'input>>, DomainError> {
    let mut out = Vec::new();
    for c in node.children() {
        if c.is_element() {
            out.push(c);
        } else if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
            return Err(meta_err(
                domain,
                "metadata",
                format!(
                    "unexpected text '{}' in <{}>",
                    c.text().unwrap_or("").trim(),
                    node.tag_name().name()
                ),
            ));
        }
    }
    Ok(out)
}

/// Checks that `node` is `<name>` in vmguard's namespace with only the attributes `attrs`;
/// the problem otherwise, for the caller to place (domain or interface).
fn check_element(node: roxmltree::Node<'_, '_>, name: &str, attrs: &[&str]) -> Result<(), String> {
    if node.tag_name().namespace() != Some(NAMESPACE) || node.tag_name().name() != name {
        return Err(format!(
            "unknown element <{}> (namespace {}) where <{name}> is expected",
            node.tag_name().name(),
            node.tag_name().namespace().unwrap_or("none")
        ));
    }
    match node
        .attributes()
        .find(|a| a.namespace().is_some() || !attrs.contains(&a.name()))
    {
        Some(a) => Err(format!("unknown attribute '{}' on <{name}>", a.name())),
        None => Ok(()),
    }
}

fn parse_guard(
    guard: roxmltree::Node<'_, '_>,
    domain: &str,
) -> Result<Vec<MetaInterface>, DomainError> {
    check_element(guard, "guard", &[]).map_err(|p| meta_err(domain, "metadata", p))?;
    let mut out: Vec<MetaInterface> = Vec::new();
    for iface in elements(guard, domain)? {
        if iface.tag_name().namespace() != Some(NAMESPACE) || iface.tag_name().name() != "interface"
        {
            check_element(iface, "interface", &["mac"])
                .map_err(|p| meta_err(domain, "metadata", p))?;
        }
        let mac_text = iface.attribute("mac").ok_or_else(|| {
            meta_err(
                domain,
                "metadata",
                "<interface> without mac attribute".into(),
            )
        })?;
        let mac = MacAddr::parse_host(mac_text.trim()).map_err(|e| DomainError::Interface {
            domain: domain.to_string(),
            iface: mac_text.to_string(),
            field: "metadata mac",
            problem: e.to_string(),
        })?;
        let iface_err = |field, problem: String| DomainError::Interface {
            domain: domain.to_string(),
            iface: mac.to_string(),
            field,
            problem,
        };
        check_element(iface, "interface", &["mac"]).map_err(|p| iface_err("metadata", p))?;
        if out.iter().any(|m| m.mac == mac) {
            return Err(iface_err("metadata mac", "listed twice".into()));
        }
        let mut addresses: Vec<IpAddr> = Vec::new();
        for ip in elements(iface, domain)? {
            check_element(ip, "ip", &["address"]).map_err(|p| iface_err("metadata", p))?;
            let text = ip
                .attribute("address")
                .ok_or_else(|| iface_err("ip address", "<ip> without address attribute".into()))?;
            let addr =
                parse_host_address(text).map_err(|e| iface_err("ip address", e.to_string()))?;
            if addresses.contains(&addr) {
                return Err(iface_err("ip address", format!("{addr} is listed twice")));
            }
            addresses.push(addr);
        }
        out.push(MetaInterface { mac, addresses });
    }
    Ok(out)
}

/// An address a host interface can own: a plain address (no prefix length), not multicast,
/// unspecified, broadcast, loopback or IPv4-mapped.
pub fn parse_host_address(text: &str) -> Result<IpAddr, InvalidValue> {
    let bad = |reason| InvalidValue {
        value: text.to_string(),
        reason,
    };
    if text.contains('/') {
        return Err(bad("a plain address is expected, without prefix length"));
    }
    let addr: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| bad("not an IPv4 or IPv6 address"))?;
    let reason = match addr {
        IpAddr::V4(a) if a.is_unspecified() => Some("0.0.0.0 cannot be a host's address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("broadcast cannot be a host's address"),
        IpAddr::V4(a) if a.is_multicast() => Some("multicast cannot be a host's address"),
        IpAddr::V4(a) if a.is_loopback() => Some("loopback cannot be a host's address"),
        IpAddr::V4(a) if a.octets()[0] >= 240 => {
            Some("reserved (240.0.0.0/4) cannot be a host's address")
        }
        IpAddr::V6(a) if a.is_unspecified() => Some(":: cannot be a host's address"),
        IpAddr::V6(a) if a.is_multicast() => Some("multicast cannot be a host's address"),
        IpAddr::V6(a) if a.is_loopback() => Some("loopback cannot be a host's address"),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            Some("IPv4-mapped IPv6 cannot be a host's address")
        }
        _ => None,
    };
    match reason {
        Some(r) => Err(bad(r)),
        None => Ok(addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(meta: &str, ifaces: &str) -> String {
        format!(
            "<domain type='kvm'><name>web1</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
             <metadata>{meta}</metadata><devices>{ifaces}</devices></domain>"
        )
    }

    const IFACE: &str = "<interface type='bridge'><mac address='52:54:00:00:00:05'/>\
        <source bridge='vm-switch'/><target dev='vnet0'/><virtualport type='openvswitch'/></interface>";

    fn guard(meta: &str, ifaces: &str) -> Result<GuardedDomain, DomainError> {
        DomainXml::parse(&domain(meta, ifaces))?.guard("vm-switch")
    }

    #[test]
    fn any_prefix_or_default_namespace() {
        for meta in [
            "<vmguard:guard xmlns:vmguard='urn:vmguard:1'><vmguard:interface mac='52:54:00:00:00:05'><vmguard:ip address='10.0.0.5'/></vmguard:interface></vmguard:guard>",
            "<g:guard xmlns:g='urn:vmguard:1'><g:interface mac='52:54:00:00:00:05'><g:ip address='10.0.0.5'/></g:interface></g:guard>",
            "<guard xmlns='urn:vmguard:1'><interface mac='52:54:00:00:00:05'><ip address='10.0.0.5'/></interface></guard>",
        ] {
            let g = guard(meta, IFACE).unwrap();
            assert_eq!(g.interfaces.len(), 1);
            assert_eq!(g.interfaces[0].ipv4, vec!["10.0.0.5".parse::<Ipv4Addr>().unwrap()]);
            assert_eq!(g.interfaces[0].ipv6, vec!["fe80::5054:ff:fe00:5".parse::<Ipv6Addr>().unwrap()]);
            assert_eq!(g.interfaces[0].dev.as_ref().unwrap().as_str(), "vnet0");
        }
    }

    #[test]
    fn mac_case_insensitive_and_addresses_split() {
        let meta = "<v:guard xmlns:v='urn:vmguard:1'><v:interface mac='52:54:00:00:00:05'>\
            <v:ip address='10.0.0.5'/><v:ip address='2001:db8::5'/><v:ip address='fe80::1c2d:3e4f:5a6b:7c8d'/>\
            <v:ip address='fe80::5054:ff:fe00:5'/></v:interface></v:guard>";
        let ifaces = IFACE.replace(
            "52:54:00:00:00:05",
            "52:54:00:00:00:05".to_uppercase().as_str(),
        );
        let g = guard(meta, &ifaces).unwrap();
        let i = &g.interfaces[0];
        assert_eq!(i.ipv6.len(), 3, "EUI-64 LLA not duplicated: {:?}", i.ipv6);
        assert_eq!(
            i.ipv6[0],
            "fe80::5054:ff:fe00:5".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn other_bridges_ignored_with_warning() {
        let ifaces = format!(
            "{IFACE}<interface type='bridge'><mac address='52:54:00:00:00:06'/><source bridge='other'/></interface>\
             <interface type='network'><mac address='52:54:00:00:00:07'/><source network='lab' bridge='vm-switch'/><target dev='vnet9'/></interface>"
        );
        let meta = "<v:guard xmlns:v='urn:vmguard:1'><v:interface mac='52:54:00:00:00:05'/>\
            <v:interface mac='52:54:00:00:00:06'><v:ip address='10.9.9.9'/></v:interface>\
            <v:interface mac='52:54:00:00:00:07'><v:ip address='10.0.0.7'/></v:interface></v:guard>";
        let g = guard(meta, &ifaces).unwrap();
        assert_eq!(g.interfaces.len(), 2);
        assert!(
            g.interfaces[0].ipv4.is_empty(),
            "no address listed: sends no IPv4"
        );
        assert_eq!(g.warnings.len(), 1, "{:?}", g.warnings);
        assert!(g.warnings[0].contains("52:54:00:00:00:06"));
    }

    #[test]
    fn no_interface_on_bridge_no_metadata_is_fine() {
        let g = DomainXml::parse(&domain("", ""))
            .unwrap()
            .guard("vm-switch")
            .unwrap();
        assert!(g.interfaces.is_empty());
    }

    fn err(meta: &str, ifaces: &str) -> String {
        guard(meta, ifaces).unwrap_err().to_string()
    }

    fn wrap(inner: &str) -> String {
        format!("<v:guard xmlns:v='urn:vmguard:1'>{inner}</v:guard>")
    }

    fn one_ip(addr: &str) -> String {
        wrap(&format!(
            "<v:interface mac='52:54:00:00:00:05'><v:ip address='{addr}'/></v:interface>"
        ))
    }

    #[test]
    fn bad_metadata_of_every_kind() {
        let cases: Vec<(String, String, &str)> = vec![
            ("".into(), IFACE.into(), "no <vmguard:interface>"),
            (wrap("<v:interface mac='52:54:00:00:00:05'/><v:interface mac='52:54:00:00:00:05'/>"), IFACE.into(), "listed twice"),
            (wrap("<v:interface mac='52:54:00:00:00:99'/>"), IFACE.into(), "matches no <interface>"),
            (wrap("<v:interface mac='52:54:00:00:00:05'/><v:interface mac='52:54:00:00:00:09'/>"), IFACE.into(), "typo"),
            (wrap("<v:interface mac='52:54:00:zz:00:05'/>"), IFACE.into(), "not hex"),
            (wrap("<v:interface mac='01:00:5e:00:00:05'/>"), IFACE.into(), "multicast MAC"),
            (wrap("<v:interface mac='52:54:00:00:00:05' vlan='3'/>"), IFACE.into(), "unknown attribute 'vlan'"),
            (wrap("<v:interface mac='52:54:00:00:00:05'><v:ipv4 address='10.0.0.5'/></v:interface>"), IFACE.into(), "unknown element <ipv4>"),
            (wrap("<v:interface mac='52:54:00:00:00:05'><v:ip addr='10.0.0.5'/></v:interface>"), IFACE.into(), "unknown attribute 'addr'"),
            (wrap("<v:interface mac='52:54:00:00:00:05'><v:ip/></v:interface>"), IFACE.into(), "without address"),
            (wrap("<v:interface mac='52:54:00:00:00:05'><v:ip address='10.0.0.5'/><v:ip address='10.0.0.5'/></v:interface>"), IFACE.into(), "listed twice"),
            (wrap("<v:interface mac='52:54:00:00:00:05'><x:foo xmlns:x='urn:other'/></v:interface>"), IFACE.into(), "unknown element <foo>"),
            (wrap("hello"), IFACE.into(), "unexpected text"),
            (format!("{}{}", wrap(""), wrap("")), IFACE.into(), "more than one"),
            (one_ip("10.0.0.5/24"), IFACE.into(), "without prefix length"),
            (one_ip("10.0.0.256"), IFACE.into(), "not an IPv4 or IPv6"),
            (one_ip("0.0.0.0"), IFACE.into(), "0.0.0.0"),
            (one_ip("255.255.255.255"), IFACE.into(), "broadcast"),
            (one_ip("224.0.0.1"), IFACE.into(), "multicast"),
            (one_ip("239.1.2.3"), IFACE.into(), "multicast"),
            (one_ip("127.0.0.1"), IFACE.into(), "loopback"),
            (one_ip("::"), IFACE.into(), ":: cannot"),
            (one_ip("::1"), IFACE.into(), "loopback"),
            (one_ip("ff02::1"), IFACE.into(), "multicast"),
            (one_ip("::ffff:10.0.0.5"), IFACE.into(), "IPv4-mapped"),
            (wrap("<v:interface mac='52:54:00:00:00:05'/>"), IFACE.replace("52:54:00:00:00:05'/>", "52:54:00:00:00:05'/><mac address='x'/>").replace("<mac address='x'/>", ""), ""),
        ];
        for (meta, ifaces, want) in cases {
            if want.is_empty() {
                continue;
            }
            let e = err(&meta, &ifaces);
            assert!(e.contains(want), "meta {meta}: got '{e}', want '{want}'");
            assert!(e.contains("web1"), "names the domain: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn errors_name_the_interface_and_field() {
        let e = err(&one_ip("224.0.0.1"), IFACE);
        assert_eq!(
            e,
            "domain web1: interface 52:54:00:00:00:05: ip address: '224.0.0.1': multicast cannot be a host's address"
        );
    }

    #[test]
    fn malformed_xml_and_bad_interface_fields() {
        assert!(matches!(
            DomainXml::parse("<domain><name>x</name>"),
            Err(DomainError::Malformed { .. })
        ));
        assert!(matches!(
            DomainXml::parse("<network><name>x</name></network>"),
            Err(DomainError::Malformed { .. })
        ));
        assert!(matches!(
            DomainXml::parse("<domain/>"),
            Err(DomainError::Malformed { .. })
        ));
        let bad_mac = IFACE.replace("52:54:00:00:00:05", "52:54:00:00:05");
        let e = DomainXml::parse(&domain("", &bad_mac))
            .unwrap_err()
            .to_string();
        assert!(e.contains("web1") && e.contains("mac address"), "{e}");
        let bad_uuid = domain("", IFACE).replace("11111111-2222", "zz");
        let e = DomainXml::parse(&bad_uuid).unwrap_err().to_string();
        assert!(e.contains("uuid"), "{e}");
        let no_uuid = domain(&one_ip("10.0.0.5"), IFACE)
            .replace("<uuid>11111111-2222-3333-4444-555555555555</uuid>", "");
        let e = DomainXml::parse(&no_uuid)
            .unwrap()
            .guard("vm-switch")
            .unwrap_err()
            .to_string();
        assert!(e.contains("uuid"), "{e}");
    }

    #[test]
    fn same_address_on_two_interfaces_refused() {
        let ifaces = format!(
            "{IFACE}{}",
            IFACE.replace("00:05", "00:06").replace("vnet0", "vnet1")
        );
        let meta = wrap(
            "<v:interface mac='52:54:00:00:00:05'><v:ip address='10.0.0.5'/></v:interface>\
             <v:interface mac='52:54:00:00:00:06'><v:ip address='10.0.0.5'/></v:interface>",
        );
        assert!(err(&meta, &ifaces).contains("owned by two interfaces"));
    }

    #[test]
    fn identity_survives_broken_metadata() {
        let x = DomainXml::parse(&domain(&one_ip("224.0.0.1"), IFACE)).unwrap();
        let id = x.identity();
        assert_eq!(
            id.macs,
            vec!["52:54:00:00:00:05".parse::<MacAddr>().unwrap()]
        );
        assert_eq!(
            id.uuid.unwrap().as_str(),
            "11111111-2222-3333-4444-555555555555"
        );
    }
}
