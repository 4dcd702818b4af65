//! The lab's network on paper: names, MACs and addresses of every namespace, and the files
//! generated from them (domain XML with vmguard metadata, vmguard's config, dnsmasq's options).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use vmguard::config::ArpMode;
use vmguard::model::MacAddr;

/// The OVS bridge the lab guards.
pub const BRIDGE: &str = "vmg-lab";
/// Switch-side name of the uplink veth (the one trusted port).
pub const UPLINK_PORT: &str = "vmg-up";
/// Name of every guest-side interface.
pub const GUEST_IF: &str = "eth0";
/// Prefix of every network namespace the lab creates.
pub const NETNS_PREFIX: &str = "vmguard-lab-";
/// The namespace ovsdb-server and ovs-vswitchd run in (with the switch-side veth ends).
pub const SWITCH_NS: &str = "vmguard-lab-switch";
/// The namespace of the gateway: router, DHCPv4/DHCPv6 server, RA sender.
pub const GATEWAY_NS: &str = "vmguard-lab-gw";
/// The namespace of a port that no hook ever ran for (fail-closed check).
pub const STRAY_NS: &str = "vmguard-lab-stray";
/// Switch-side name of the stray port's veth.
pub const STRAY_PORT: &str = "vmg-stray";

/// The lab's IPv4 subnet (/24) and gateway.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The subnet's broadcast address.
pub const BROADCAST_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 255);
/// The lab's IPv6 prefix (/64), announced by the gateway's RA.
pub const PREFIX_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0);
/// The gateway's global IPv6 address.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 1);
/// The gateway's MAC (locally administered).
pub const GATEWAY_MAC: MacAddr = MacAddr([0x02, 0x77, 0, 0, 0, 0x01]);
/// An address behind the gateway (on its loopback), the destination redirect attacks target.
pub const REMOTE_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
/// IPv6 address behind the gateway.
pub const REMOTE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 1, 0, 0, 0, 1);

/// The stray (never guarded) port's MAC and static address.
pub const STRAY_MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x77, 0, 0xee]);
pub const STRAY_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 250);

/// A MAC nobody owns, for spoofing.
pub const FOREIGN_MAC: MacAddr = MacAddr([0x02, 0x66, 0x66, 0x66, 0x66, 0x66]);
/// An IPv4 address nobody owns.
pub const UNOWNED_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 99);
/// An IPv6 address nobody owns.
pub const UNOWNED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0x666);
/// The prefix rogue routers and DHCPv6 servers hand out.
pub const ROGUE_PREFIX_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x66, 0, 0, 0, 0, 0);
/// The rogue DHCPv4 server's pool.
pub const ROGUE_POOL_V4: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 77, 0, 200), Ipv4Addr::new(10, 77, 0, 210));
/// The stable-privacy style link-local the second VM uses instead of its EUI-64 one.
pub const CUSTOM_LLA: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x1c2d, 0x3e4f, 0x5a6b, 0x7c8d);

/// Fewest VMs the cases need: two victims with special addresses and the attacker.
pub const MIN_VMS: usize = 3;
/// Most VMs a lab run takes (addresses and the run time grow with it).
pub const MAX_VMS: usize = 16;

/// One VM namespace and everything the admin knows about it in advance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    /// 1-based.
    pub index: usize,
    /// libvirt domain name.
    pub domain: String,
    pub uuid: String,
    pub netns: String,
    /// Switch-side veth, the domain's `<target dev>`.
    pub port: String,
    pub mac: MacAddr,
    /// Reserved for it in the DHCPv4 server.
    pub dhcp_v4: Ipv4Addr,
    /// A second, static IPv4 (the first VM only).
    pub extra_v4: Option<Ipv4Addr>,
    /// Reserved for it in the DHCPv6 server.
    pub dhcp_v6: Ipv6Addr,
    /// The EUI-64 address SLAAC forms from the gateway's prefix.
    pub slaac_v6: Ipv6Addr,
    /// The non-EUI-64 link-local it uses (the second VM only): its EUI-64 one is never formed.
    pub custom_lla: Option<Ipv6Addr>,
}

impl Vm {
    fn new(index: usize) -> Vm {
        let n = u8::try_from(index).expect("VM index fits a byte");
        let mac = MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, n]);
        Vm {
            index,
            domain: format!("lab-vm{index}"),
            uuid: format!("6c616276-6d00-4000-8000-{index:012x}"),
            netns: format!("{NETNS_PREFIX}vm{index}"),
            port: format!("vmg-vm{index}"),
            mac,
            dhcp_v4: Ipv4Addr::new(10, 77, 0, 10 + n),
            extra_v4: (index == 1).then(|| Ipv4Addr::new(10, 77, 0, 100 + n)),
            dhcp_v6: Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0xd6, u16::from(n)),
            slaac_v6: slaac(PREFIX_V6, mac),
            custom_lla: (index == 2).then_some(CUSTOM_LLA),
        }
    }

    /// Short name for the table: `vm3`.
    pub fn name(&self) -> String {
        format!("vm{}", self.index)
    }

    /// The link-local address the guest uses.
    pub fn lla(&self) -> Ipv6Addr {
        self.custom_lla
            .unwrap_or_else(|| self.mac.eui64_link_local())
    }

    /// Every IPv4 address the VM uses.
    pub fn ipv4(&self) -> Vec<Ipv4Addr> {
        std::iter::once(self.dhcp_v4).chain(self.extra_v4).collect()
    }

    /// Every IPv6 address the VM uses (link-local first).
    pub fn ipv6(&self) -> Vec<Ipv6Addr> {
        vec![self.lla(), self.slaac_v6, self.dhcp_v6]
    }

    /// The libvirt domain XML an admin would write: the interface on the lab bridge and the
    /// vmguard metadata listing every address the guest will use (the EUI-64 link-local is
    /// owned implicitly; a custom one must be listed).
    pub fn domain_xml(&self) -> String {
        let mut ips: Vec<String> = self.ipv4().iter().map(ToString::to_string).collect();
        ips.extend(self.custom_lla.iter().map(ToString::to_string));
        ips.push(self.slaac_v6.to_string());
        ips.push(self.dhcp_v6.to_string());
        let ips: String = ips
            .iter()
            .map(|a| format!("        <vmguard:ip address=\"{a}\"/>\n"))
            .collect();
        format!(
            "<domain type='kvm'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <metadata>
    <vmguard:guard xmlns:vmguard=\"urn:vmguard:1\">
      <vmguard:interface mac=\"{mac}\">
{ips}      </vmguard:interface>
    </vmguard:guard>
  </metadata>
  <devices>
    <interface type='bridge'>
      <mac address='{mac}'/>
      <source bridge='{BRIDGE}'/>
      <virtualport type='openvswitch'/>
      <target dev='{port}'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>
",
            name = self.domain,
            uuid = self.uuid,
            mac = self.mac,
            port = self.port,
        )
    }
}

/// The SLAAC address (RFC 4862, EUI-64 interface identifier) of `mac` in a /64 `prefix`.
pub fn slaac(prefix: Ipv6Addr, mac: MacAddr) -> Ipv6Addr {
    let iid = u128::from(mac.eui64_link_local()) & u128::from(u64::MAX);
    Ipv6Addr::from((u128::from(prefix) & !u128::from(u64::MAX)) | iid)
}

/// The whole lab: the VMs (the last one attacks the others) and the ARP mode guarding them.
#[derive(Clone, Debug)]
pub struct Topology {
    pub vms: Vec<Vm>,
    pub arp_mode: ArpMode,
}

impl Topology {
    /// `vms` must be within [`MIN_VMS`]..=[`MAX_VMS`].
    pub fn new(vms: usize, arp_mode: ArpMode) -> Result<Topology, String> {
        if !(MIN_VMS..=MAX_VMS).contains(&vms) {
            return Err(format!(
                "--vms {vms}: the lab needs {MIN_VMS} to {MAX_VMS} VMs (two victims with special addresses and one attacker at least)"
            ));
        }
        Ok(Topology {
            vms: (1..=vms).map(Vm::new).collect(),
            arp_mode,
        })
    }

    /// The VM that launches every attack: the last one.
    pub fn attacker(&self) -> &Vm {
        self.vms.last().expect("at least MIN_VMS VMs")
    }

    /// Every VM but the attacker.
    pub fn victims(&self) -> &[Vm] {
        &self.vms[..self.vms.len() - 1]
    }

    /// Every namespace of the lab, the switch's first.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all = vec![SWITCH_NS.to_string(), GATEWAY_NS.to_string()];
        all.extend(self.vms.iter().map(|v| v.netns.clone()));
        all.push(STRAY_NS.to_string());
        all
    }

    /// The VM owning `ip`, if any.
    pub fn owner_v4(&self, ip: Ipv4Addr) -> Option<&Vm> {
        self.vms.iter().find(|v| v.ipv4().contains(&ip))
    }

    /// The VM owning `ip` (its EUI-64 link-local included), if any.
    pub fn owner_v6(&self, ip: Ipv6Addr) -> Option<&Vm> {
        self.vms
            .iter()
            .find(|v| v.ipv6().contains(&ip) || v.mac.eui64_link_local() == ip)
    }

    /// vmguard's config for the lab: the bridge, the uplink, the ARP mode and the lab OVS.
    pub fn config_toml(&self, ovs_rundir: &Path) -> String {
        format!(
            "# vmguard config of the throwaway lab (vmguard lab run)\n\
             bridge = \"{BRIDGE}\"\n\
             uplinks = [\"{UPLINK_PORT}\"]\n\
             arp_mode = \"{}\"\n\
             ovs_rundir = \"{}\"\n",
            self.arp_mode.as_str(),
            ovs_rundir.display()
        )
    }

    /// dnsmasq's options for the gateway: DHCPv4 and DHCPv6 reservations by MAC, the router
    /// option, and RAs for SLAAC (A flag) with DHCPv6 for the reserved addresses (M flag).
    pub fn dnsmasq_args(&self, dir: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "--conf-file=/dev/null",
            "--keep-in-foreground",
            "--port=0",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--dhcp-authoritative",
            "--enable-ra",
            "--log-dhcp",
            "--dhcp-range=10.77.0.0,static,255.255.255.0,1h",
            "--dhcp-option=option:router,10.77.0.1",
            "--dhcp-range=2001:db8:77::,static,slaac,64,1h",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.push(format!("--interface={GUEST_IF}"));
        args.push(format!("--ra-param={GUEST_IF},10,1800"));
        args.push(format!("--pid-file={}", dir.join("dnsmasq.pid").display()));
        args.push(format!(
            "--dhcp-leasefile={}",
            dir.join("dnsmasq.leases").display()
        ));
        args.push(format!(
            "--log-facility={}",
            dir.join("dnsmasq-gw.log").display()
        ));
        for vm in &self.vms {
            args.push(format!(
                "--dhcp-host={},{},[{}]",
                vm.mac, vm.dhcp_v4, vm.dhcp_v6
            ));
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmguard::domain::DomainXml;

    #[test]
    fn slaac_is_eui64() {
        let mac: MacAddr = "52:54:00:77:00:03".parse().unwrap();
        assert_eq!(
            slaac(PREFIX_V6, mac),
            "2001:db8:77::5054:ff:fe77:3".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn roles_and_limits() {
        assert!(Topology::new(2, ArpMode::Direct).is_err());
        assert!(Topology::new(MAX_VMS + 1, ArpMode::Direct).is_err());
        let t = Topology::new(4, ArpMode::Direct).unwrap();
        assert_eq!(t.attacker().name(), "vm4");
        assert_eq!(t.victims().len(), 3);
        assert_eq!(t.vms[0].ipv4().len(), 2, "vm1 has two IPv4 addresses");
        assert_eq!(
            t.vms[1].lla(),
            CUSTOM_LLA,
            "vm2 uses a non-EUI-64 link-local"
        );
        assert_eq!(t.owner_v4("10.77.0.101".parse().unwrap()).unwrap().index, 1);
        assert_eq!(
            t.owner_v6(t.vms[2].mac.eui64_link_local()).unwrap().index,
            3
        );
        assert!(t.namespaces().iter().all(|n| n.starts_with(NETNS_PREFIX)));
        assert!(t
            .vms
            .iter()
            .all(|v| v.port.len() <= 15 && v.netns.len() <= 32));
    }

    /// The generated XML is what vmguard itself reads: every address the guest uses is owned.
    #[test]
    fn domain_xml_lists_every_address() {
        let t = Topology::new(MAX_VMS, ArpMode::Responder).unwrap();
        for vm in &t.vms {
            let dom = DomainXml::parse(&vm.domain_xml())
                .unwrap()
                .guard(BRIDGE)
                .unwrap();
            assert_eq!(dom.interfaces.len(), 1);
            let iface = &dom.interfaces[0];
            assert_eq!(iface.mac, vm.mac);
            assert_eq!(iface.dev.as_ref().unwrap().as_str(), vm.port);
            assert_eq!(iface.ipv4, vm.ipv4());
            for a in vm.ipv6() {
                assert!(iface.ipv6.contains(&a), "{} does not own {a}", vm.domain);
            }
        }
    }

    #[test]
    fn dnsmasq_reserves_each_vm() {
        let t = Topology::new(3, ArpMode::Direct).unwrap();
        let args = t.dnsmasq_args(Path::new("/run/x"));
        assert!(args
            .contains(&"--dhcp-host=52:54:00:77:00:02,10.77.0.12,[2001:db8:77::d6:2]".to_string()));
        assert!(t
            .config_toml(Path::new("/run/x"))
            .contains("uplinks = [\"vmg-up\"]"));
    }
}
