//! The text provisioning writes and reads back: domain XML from a template with vmguard's
//! metadata and owner, the address listing, and DHCP reservations for dnsmasq and Kea. Pure.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use serde::Serialize;
use thiserror::Error;

use crate::domain::{DomainError, DomainXml, NAMESPACE};
use crate::model::{DomainUuid, MacAddr};
use crate::provision::pool::Allocation;

/// The namespace of the element recording which user a VM was created for. It is separate
/// from vmguard's guard element, whose schema the hook validates strictly.
pub const OWNER_NAMESPACE: &str = "urn:vmguard:owner:1";

/// The domain template used when `create` is given none: no disk (it boots from the network),
/// and `<acpi/>` because libvirt 9 otherwise passes `-no-acpi`, which QEMU 10 refuses.
pub const BUILTIN_TEMPLATE: &str = "<domain type='kvm'>
  <name>@NAME@</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>1</vcpu>
  <os>
    <type>hvm</type>
    <boot dev='network'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='pty'/>
    <console type='pty'/>
  </devices>
</domain>
";

/// What is wrong with a domain template.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template is not domain XML: {0}")]
    Malformed(String),
    #[error("template has an <interface> on the guarded bridge {0}: remove it, `create` adds one per --nics with its own MAC")]
    GuardedInterface(String),
    #[error("template has an <interface> with a <mac address>: remove it, every VM needs its own")]
    FixedMac,
    #[error("template already has metadata in {0}: remove it, `create` writes it")]
    OwnMetadata(&'static str),
    #[error("the domain generated for {name} fails vmguard's own check: {source}")]
    Generated {
        name: String,
        #[source]
        source: DomainError,
    },
}

/// A VM to define: its name and identity, its interfaces' allocations, and its domain XML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVm {
    pub name: String,
    /// The user it is created for.
    pub user: String,
    pub uuid: DomainUuid,
    pub interfaces: Vec<Allocation>,
    pub xml: String,
}

impl NewVm {
    /// The VM's interfaces as listing rows.
    pub fn rows(&self) -> Vec<Row> {
        self.interfaces
            .iter()
            .map(|a| Row {
                user: Some(self.user.clone()),
                domain: self.name.clone(),
                mac: a.mac,
                ipv4: a.ipv4.into_iter().collect(),
                ipv6: a.ipv6.into_iter().collect(),
            })
            .collect()
    }
}

/// A domain template: `@NAME@` and `@USER@` in its text become the VM's and the user's name
/// (for disk images, console logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    text: String,
}

fn element<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace().is_none()
    })
}

/// Where new children of `n` go: just before its closing tag and that tag's indentation
/// (`n` is never self-closing here).
fn before_close(text: &str, n: roxmltree::Node<'_, '_>) -> usize {
    let r = n.range();
    let at = r.start + text[r].rfind("</").expect("an element with a closing tag");
    at - text[..at].len() + text[..at].trim_end_matches([' ', '\t']).len()
}

/// Just after the opening tag of `n`.
fn after_open(text: &str, n: roxmltree::Node<'_, '_>) -> usize {
    let r = n.range();
    r.start + text[r].find('>').map_or(0, |i| i + 1)
}

/// Children for `n`: inserted before its closing tag, or replacing it when it is self-closing.
fn children_edit(text: &str, n: roxmltree::Node<'_, '_>, children: &str) -> (Range<usize>, String) {
    let r = n.range();
    if text[r.clone()].ends_with("/>") {
        let tag = n.tag_name().name();
        (r, format!("<{tag}>\n{children}  </{tag}>"))
    } else {
        let at = before_close(text, n);
        (at..at, children.to_string())
    }
}

impl Template {
    /// Checks what can be checked without a VM: domain XML, no interface with a fixed MAC, no
    /// interface on the guarded bridge, no vmguard metadata of its own.
    pub fn new(text: &str, bridge: &str) -> Result<Template, TemplateError> {
        let t = Template {
            text: text.to_string(),
        };
        let probe = t.substitute("x-1", "x");
        let doc = roxmltree::Document::parse(&probe)
            .map_err(|e| TemplateError::Malformed(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "domain" {
            return Err(TemplateError::Malformed(format!(
                "root element is <{}>",
                root.tag_name().name()
            )));
        }
        if let Some(devices) = element(root, "devices") {
            for iface in devices
                .children()
                .filter(|c| c.is_element() && c.tag_name().name() == "interface")
            {
                if element(iface, "source").and_then(|s| s.attribute("bridge")) == Some(bridge) {
                    return Err(TemplateError::GuardedInterface(bridge.to_string()));
                }
                if element(iface, "mac").is_some() {
                    return Err(TemplateError::FixedMac);
                }
            }
        }
        if let Some(meta) = element(root, "metadata") {
            for ns in [NAMESPACE, OWNER_NAMESPACE] {
                if meta
                    .children()
                    .any(|c| c.is_element() && c.tag_name().namespace() == Some(ns))
                {
                    return Err(TemplateError::OwnMetadata(ns));
                }
            }
        }
        Ok(t)
    }

    fn substitute(&self, name: &str, user: &str) -> String {
        self.text.replace("@NAME@", name).replace("@USER@", user)
    }

    /// The VM's domain XML: the template with the VM's `<name>` and `<uuid>`, vmguard's metadata
    /// and owner element, and one bridge interface per allocation, checked with the same parser
    /// and validation the hook uses.
    pub fn render(
        &self,
        name: &str,
        user: &str,
        uuid: &DomainUuid,
        bridge: &str,
        interfaces: &[Allocation],
    ) -> Result<NewVm, TemplateError> {
        let mut text = self.substitute(name, user);
        let parse = |t: &str| {
            roxmltree::Document::parse(t)
                .map(|d| d.root_element().range())
                .map_err(|e| TemplateError::Malformed(e.to_string()))
        };
        // A self-closing root has nowhere to put children: open it first.
        let r = parse(&text)?;
        if text[r.clone()].ends_with("/>") {
            text.replace_range(r.end - 2..r.end, "></domain>");
        }
        let doc = roxmltree::Document::parse(&text)
            .map_err(|e| TemplateError::Malformed(e.to_string()))?;
        let root = doc.root_element();
        // Edits as (range replaced, new text), applied from the end so ranges stay valid.
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        let head = format!("<name>{name}</name>\n  <uuid>{uuid}</uuid>");
        match element(root, "name") {
            Some(n) => edits.push((n.range(), head)),
            None => {
                let at = after_open(&text, root);
                edits.push((at..at, format!("\n  {head}\n")));
            }
        }
        if let Some(u) = element(root, "uuid") {
            edits.push((u.range(), String::new()));
        }
        let meta = metadata_xml(user, interfaces);
        let nics: String = interfaces
            .iter()
            .map(|a| interface_xml(a.mac, bridge))
            .collect();
        for (tag, children) in [("metadata", meta), ("devices", nics)] {
            match element(root, tag) {
                Some(n) => edits.push(children_edit(&text, n, &children)),
                None => {
                    let at = before_close(&text, root);
                    edits.push((at..at, format!("  <{tag}>\n{children}  </{tag}>\n")));
                }
            }
        }
        edits.sort_by_key(|(r, _)| std::cmp::Reverse((r.start, r.end)));
        let mut xml = text.clone();
        for (range, new) in edits {
            xml.replace_range(range, &new);
        }
        let generated = |source| TemplateError::Generated {
            name: name.to_string(),
            source,
        };
        let guarded = DomainXml::parse(&xml)
            .and_then(|d| d.guard(bridge))
            .map_err(generated)?;
        let macs: Vec<MacAddr> = guarded.interfaces.iter().map(|i| i.mac).collect();
        let want: Vec<MacAddr> = interfaces.iter().map(|a| a.mac).collect();
        if macs != want {
            return Err(generated(DomainError::Domain {
                domain: name.to_string(),
                field: "interface",
                problem: format!("guarded interfaces are {macs:?}, expected {want:?}"),
            }));
        }
        Ok(NewVm {
            name: name.to_string(),
            user: user.to_string(),
            uuid: uuid.clone(),
            interfaces: interfaces.to_vec(),
            xml,
        })
    }
}

fn interface_xml(mac: MacAddr, bridge: &str) -> String {
    format!(
        "    <interface type='bridge'>\n      <mac address='{mac}'/>\n      <source bridge='{bridge}'/>\n      <virtualport type='openvswitch'/>\n      <model type='virtio'/>\n    </interface>\n"
    )
}

/// vmguard's metadata (SPEC "Inputs") for the allocations, and the owner element.
pub fn metadata_xml(user: &str, interfaces: &[Allocation]) -> String {
    let mut s = format!("    <vmguard:guard xmlns:vmguard=\"{NAMESPACE}\">\n");
    for a in interfaces {
        let _ = writeln!(s, "      <vmguard:interface mac=\"{}\">", a.mac);
        for ip in a.addresses() {
            let _ = writeln!(s, "        <vmguard:ip address=\"{ip}\"/>");
        }
        s.push_str("      </vmguard:interface>\n");
    }
    s.push_str("    </vmguard:guard>\n");
    let _ = writeln!(
        s,
        "    <owner xmlns=\"{OWNER_NAMESPACE}\" user=\"{user}\"/>"
    );
    s
}

/// The user a domain was created for, from its owner element; `None` for a domain `create`
/// did not make.
pub fn owner(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let meta = element(doc.root_element(), "metadata")?;
    meta.children()
        .find(|c| {
            c.is_element()
                && c.tag_name().namespace() == Some(OWNER_NAMESPACE)
                && c.tag_name().name() == "owner"
        })?
        .attribute("user")
        .map(str::to_string)
}

/// One interface of the address listing, from a defined domain's vmguard metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The user it was created for; `None` for a domain made by hand.
    pub user: Option<String>,
    pub domain: String,
    pub mac: MacAddr,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
}

impl Row {
    /// One row per metadata entry of the domain (none without metadata or with broken metadata).
    pub fn of_domain(d: &DomainXml, user: Option<&str>) -> Vec<Row> {
        let Some(Ok(entries)) = &d.meta else {
            return Vec::new();
        };
        entries
            .iter()
            .map(|e| Row {
                user: user.map(str::to_string),
                domain: d.name.clone(),
                mac: e.mac,
                ipv4: e
                    .addresses
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(*a),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
                ipv6: e
                    .addresses
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V6(a) => Some(*a),
                        IpAddr::V4(_) => None,
                    })
                    .collect(),
            })
            .collect()
    }

    /// The address a DHCPv6 server may hand out: the first listed one that is not link-local.
    fn dhcpv6_address(&self) -> Option<Ipv6Addr> {
        self.ipv6
            .iter()
            .copied()
            .find(|a| !a.is_unicast_link_local())
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "-".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The listing as a JSON array of `{user, domain, mac, ipv4: [], ipv6: []}`.
pub fn json(rows: &[Row]) -> String {
    let mut s = serde_json::to_string_pretty(rows).expect("JSON of strings");
    s.push('\n');
    s
}

/// The listing as an aligned table with a header.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.user.clone().unwrap_or_else(|| "-".into()),
                r.domain.clone(),
                r.mac.to_string(),
                join(&r.ipv4),
                join(&r.ipv6),
            ]
        })
        .collect();
    let header = ["USER", "DOMAIN", "MAC", "IPV4", "IPV6"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// A DHCP host name: the domain name when it is a valid DNS label, on the domain's first
/// interface only (two leases may not share a name).
fn host_name(rows: &[Row], i: usize) -> Option<&str> {
    let r = &rows[i];
    let first = rows.iter().position(|o| o.domain == r.domain) == Some(i);
    let label = !r.domain.is_empty()
        && r.domain.len() <= 63
        && r.domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !r.domain.starts_with('-')
        && !r.domain.ends_with('-');
    (first && label).then_some(r.domain.as_str())
}

/// Which DHCP server the reservations are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhcpFormat {
    /// dnsmasq `dhcp-hostsfile` lines: `MAC,IPv4,[IPv6],NAME`.
    Dnsmasq,
    /// A JSON array for Kea DHCPv4's `"reservations"`: hw-address → ip-address.
    Kea4,
    /// A JSON array for Kea DHCPv6's `"reservations"`: hw-address → ip-addresses.
    Kea6,
}

impl std::str::FromStr for DhcpFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dnsmasq" => Ok(DhcpFormat::Dnsmasq),
            "kea4" => Ok(DhcpFormat::Kea4),
            "kea6" => Ok(DhcpFormat::Kea6),
            _ => Err("expected dnsmasq, kea4 (Kea DHCPv4) or kea6 (Kea DHCPv6)".into()),
        }
    }
}

/// The reservations for every interface with an address of the format's family.
pub fn dhcp_hosts(rows: &[Row], format: DhcpFormat) -> String {
    match format {
        DhcpFormat::Dnsmasq => {
            let mut out = String::from("# Generated by `vmguard dhcp-hosts`: do not edit.\n");
            for (i, r) in rows.iter().enumerate() {
                let v4 = r.ipv4.first().map(ToString::to_string);
                let v6 = r.dhcpv6_address().map(|a| format!("[{a}]"));
                if v4.is_none() && v6.is_none() {
                    continue;
                }
                let fields: Vec<String> = std::iter::once(r.mac.to_string())
                    .chain(v4)
                    .chain(v6)
                    .chain(host_name(rows, i).map(str::to_string))
                    .collect();
                let _ = writeln!(out, "{}", fields.join(","));
            }
            out
        }
        DhcpFormat::Kea4 | DhcpFormat::Kea6 => {
            let entries: Vec<serde_json::Value> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let mut e = serde_json::Map::new();
                    e.insert("hw-address".into(), r.mac.to_string().into());
                    if format == DhcpFormat::Kea4 {
                        e.insert("ip-address".into(), r.ipv4.first()?.to_string().into());
                    } else {
                        let v6 = r.dhcpv6_address()?;
                        e.insert("ip-addresses".into(), vec![v6.to_string()].into());
                    }
                    if let Some(h) = host_name(rows, i) {
                        e.insert("hostname".into(), h.into());
                    }
                    Some(serde_json::Value::Object(e))
                })
                .collect();
            let mut s = serde_json::to_string_pretty(&entries).expect("JSON of strings");
            s.push('\n');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(mac: &str, v4: &str, v6: &str) -> Allocation {
        Allocation {
            mac: mac.parse().unwrap(),
            ipv4: Some(v4.parse().unwrap()),
            ipv6: Some(v6.parse().unwrap()),
        }
    }

    fn uuid() -> DomainUuid {
        "11111111-2222-3333-4444-555555555555".parse().unwrap()
    }

    #[test]
    fn builtin_template_renders_a_domain_the_hook_accepts() {
        let t = Template::new(BUILTIN_TEMPLATE, "vm-switch").unwrap();
        let a = alloc("52:54:00:00:00:05", "10.0.0.5", "2001:db8::5054:ff:fe00:5");
        let vm = t
            .render("alice-1", "alice", &uuid(), "vm-switch", &[a])
            .unwrap();
        let d = DomainXml::parse(&vm.xml).unwrap();
        assert_eq!(d.name, "alice-1");
        assert_eq!(d.uuid, Some(uuid()));
        let g = d.guard("vm-switch").unwrap();
        assert_eq!(g.interfaces.len(), 1);
        assert_eq!(g.interfaces[0].ipv4, vec![a.ipv4.unwrap()]);
        assert!(g.interfaces[0].ipv6.contains(&a.ipv6.unwrap()));
        assert_eq!(owner(&vm.xml).as_deref(), Some("alice"));
        assert!(vm.xml.contains("<acpi/>"), "libvirt 9 + QEMU 10 need it");
    }

    #[test]
    fn template_edits_keep_everything_else() {
        let text =
            "<domain type='qemu'><name>old</name><uuid>99999999-2222-3333-4444-555555555555</uuid>\
            <metadata><x:keep xmlns:x='urn:other'/></metadata>\
            <os><type>hvm</type><kernel>/k/@USER@</kernel></os>\
            <devices><serial type='file'><source path='/log/@NAME@.log'/></serial>\
            <interface type='network'><source network='mgmt'/></interface></devices></domain>";
        let t = Template::new(text, "vm-switch").unwrap();
        let allocs = [
            alloc("52:54:00:00:00:05", "10.0.0.5", "2001:db8::5054:ff:fe00:5"),
            alloc("52:54:00:00:00:06", "10.0.0.6", "2001:db8::5054:ff:fe00:6"),
        ];
        let vm = t
            .render("bob-2", "bob", &uuid(), "vm-switch", &allocs)
            .unwrap();
        assert!(
            vm.xml.contains("/log/bob-2.log") && vm.xml.contains("/k/bob"),
            "{}",
            vm.xml
        );
        assert!(
            vm.xml.contains("<x:keep xmlns:x='urn:other'/>"),
            "{}",
            vm.xml
        );
        assert!(
            !vm.xml.contains("old") && !vm.xml.contains("99999999"),
            "{}",
            vm.xml
        );
        let d = DomainXml::parse(&vm.xml).unwrap();
        assert_eq!(d.interfaces.len(), 3);
        assert_eq!(d.guard("vm-switch").unwrap().interfaces.len(), 2);
    }

    #[test]
    fn templates_without_metadata_devices_or_name() {
        for text in [
            "<domain type='kvm'><os><type>hvm</type></os></domain>",
            "<domain type='kvm'><name>n</name><metadata/><devices/></domain>",
            "<domain type='kvm'/>",
        ] {
            let t = Template::new(text, "br0").unwrap();
            let a = alloc("52:54:00:00:00:05", "10.0.0.5", "2001:db8::5054:ff:fe00:5");
            let vm = t
                .render("c-1", "c", &uuid(), "br0", &[a])
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            let g = DomainXml::parse(&vm.xml).unwrap().guard("br0").unwrap();
            assert_eq!(g.name, "c-1", "{}", vm.xml);
            assert_eq!(g.interfaces.len(), 1, "{}", vm.xml);
        }
    }

    #[test]
    fn bad_templates() {
        let cases = [
            ("<network/>", "not domain XML"),
            ("<domain>", "not domain XML"),
            (
                "<domain><devices><interface type='bridge'><source bridge='vm-switch'/></interface></devices></domain>",
                "guarded bridge vm-switch",
            ),
            (
                "<domain><devices><interface type='network'><mac address='52:54:00:00:00:01'/></interface></devices></domain>",
                "<mac address>",
            ),
            (
                "<domain><metadata><guard xmlns='urn:vmguard:1'/></metadata></domain>",
                "urn:vmguard:1",
            ),
        ];
        for (text, want) in cases {
            let e = Template::new(text, "vm-switch").unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    fn rows() -> Vec<Row> {
        vec![
            Row {
                user: Some("alice".into()),
                domain: "alice-1".into(),
                mac: "52:54:00:00:00:05".parse().unwrap(),
                ipv4: vec!["10.0.0.5".parse().unwrap()],
                ipv6: vec![
                    "fe80::1".parse().unwrap(),
                    "2001:db8::5054:ff:fe00:5".parse().unwrap(),
                ],
            },
            Row {
                user: Some("alice".into()),
                domain: "alice-1".into(),
                mac: "52:54:00:00:00:06".parse().unwrap(),
                ipv4: vec!["10.0.0.6".parse().unwrap()],
                ipv6: vec![],
            },
            Row {
                user: None,
                domain: "web_1".into(),
                mac: "52:54:00:00:00:07".parse().unwrap(),
                ipv4: vec![],
                ipv6: vec!["2001:db8::7".parse().unwrap()],
            },
            Row {
                user: None,
                domain: "quiet".into(),
                mac: "52:54:00:00:00:08".parse().unwrap(),
                ipv4: vec![],
                ipv6: vec![],
            },
        ]
    }

    #[test]
    fn dnsmasq_hosts() {
        assert_eq!(
            dhcp_hosts(&rows(), DhcpFormat::Dnsmasq),
            "# Generated by `vmguard dhcp-hosts`: do not edit.\n\
             52:54:00:00:00:05,10.0.0.5,[2001:db8::5054:ff:fe00:5],alice-1\n\
             52:54:00:00:00:06,10.0.0.6\n\
             52:54:00:00:00:07,[2001:db8::7]\n"
        );
    }

    #[test]
    fn kea_reservations() {
        let v4: serde_json::Value =
            serde_json::from_str(&dhcp_hosts(&rows(), DhcpFormat::Kea4)).unwrap();
        assert_eq!(
            v4,
            serde_json::json!([
                {"hw-address": "52:54:00:00:00:05", "ip-address": "10.0.0.5", "hostname": "alice-1"},
                {"hw-address": "52:54:00:00:00:06", "ip-address": "10.0.0.6"},
            ])
        );
        let v6: serde_json::Value =
            serde_json::from_str(&dhcp_hosts(&rows(), DhcpFormat::Kea6)).unwrap();
        assert_eq!(
            v6,
            serde_json::json!([
                {"hw-address": "52:54:00:00:00:05", "ip-addresses": ["2001:db8::5054:ff:fe00:5"], "hostname": "alice-1"},
                {"hw-address": "52:54:00:00:00:07", "ip-addresses": ["2001:db8::7"]},
            ])
        );
        assert_eq!(dhcp_hosts(&[], DhcpFormat::Kea4), "[]\n");
    }

    #[test]
    fn listing_table() {
        assert_eq!(
            table(&rows()[..3]),
            "USER   DOMAIN   MAC                IPV4      IPV6\n\
             alice  alice-1  52:54:00:00:00:05  10.0.0.5  fe80::1,2001:db8::5054:ff:fe00:5\n\
             alice  alice-1  52:54:00:00:00:06  10.0.0.6  -\n\
             -      web_1    52:54:00:00:00:07  -         2001:db8::7\n"
        );
    }

    #[test]
    fn owner_round_trip_and_absent() {
        let meta = metadata_xml("carol", &[]);
        let xml = format!("<domain><name>c</name><metadata>{meta}</metadata></domain>");
        assert_eq!(owner(&xml).as_deref(), Some("carol"));
        assert_eq!(owner("<domain><name>c</name></domain>"), None);
    }
}
