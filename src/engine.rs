//! Calculates and applies changes to the guarded bridge: `init`, `apply` and `remove` each build
//! a printable [`Plan`] from the switch's state, then carry it out in one OpenFlow bundle.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::battery::{probes, Expect};
use crate::compile::{base_flows, interface_flows};
use crate::config::{Config, Uplink};
use crate::domain::{DomainError, DomainIdentity, GuardedDomain, GuardedInterface};
use crate::flow::{DumpedFlow, Flow, FlowKey};
use crate::model::{natural_cmp, DomainUuid, MacAddr, OfPort, PortName};
use crate::ovs::{BridgeRow, InterfaceRow, Ovs, OvsError, REQUIRED_PROTOCOLS};
use crate::pipeline::{Cookie, IfaceKey, Reason};

/// Fragment mode under which first fragments keep their L4 fields, so the UDP/ICMP checks see them.
pub const FRAG_MODE: &str = "nx-match";
/// With the userspace datapath the host kernel also receives every frame a VM sends on its
/// tap, whatever the flows say.
pub const NETDEV_WARNING: &str = "the bridge uses the userspace datapath (datapath_type=netdev): \
    the host's own IP stack also sees every VM frame on its tap; disable IPv6 and ARP replies on \
    VM ports (sysctl net.ipv6.conf.default.disable_ipv6=1 before VMs start, \
    net.ipv4.conf.all.arp_ignore=8) — see README";

/// Prefix of the Bridge external_ids keys that record each guarded interface.
pub const RECORD_PREFIX: &str = "vmguard-if-";
/// Bridge external_ids key holding [`base_digest`] of the base flows last installed in full.
pub const BASE_RECORD: &str = "vmguard-base";

#[derive(Debug, Error)]
pub enum GuardError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("domain {domain}: interface {iface}: {field}: {problem}")]
    Interface {
        domain: String,
        iface: String,
        field: &'static str,
        problem: String,
    },
    #[error("bridge {bridge}: uplink {uplink}: {problem}")]
    Uplink {
        bridge: String,
        uplink: String,
        problem: String,
    },
    #[error("{context}")]
    Ovs {
        context: String,
        #[source]
        source: OvsError,
    },
}

/// What vmguard remembers about one installed interface, so `verify`, `status` and duplicate
/// checks work without the domain's XML and survive an ovs-vswitchd restart (OVSDB keeps it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub domain: String,
    pub uuid: DomainUuid,
    pub mac: MacAddr,
    pub dev: Option<PortName>,
    pub ofport: OfPort,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
}

impl Record {
    pub fn key(&self) -> IfaceKey {
        IfaceKey::derive(&self.uuid, self.mac)
    }

    pub fn interface(&self) -> GuardedInterface {
        GuardedInterface {
            mac: self.mac,
            dev: self.dev.clone(),
            ipv4: self.ipv4.clone(),
            ipv6: self.ipv6.clone(),
        }
    }

    /// The field and value of `i` that this record already owns, if any.
    fn owns(&self, i: &GuardedInterface) -> Option<(&'static str, String)> {
        if self.mac == i.mac {
            return Some(("mac address", i.mac.to_string()));
        }
        let v4 = i
            .ipv4
            .iter()
            .find(|a| self.ipv4.contains(a))
            .map(|a| a.to_string());
        let v6 = i
            .ipv6
            .iter()
            .find(|a| self.ipv6.contains(a))
            .map(|a| a.to_string());
        v4.or(v6).map(|a| ("ip address", a))
    }
}

/// Records by interface key, read from the Bridge's external_ids; unreadable entries are
/// reported, not dropped silently.
pub fn records(row: &BridgeRow) -> (BTreeMap<IfaceKey, Record>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    for (k, v) in &row.external_ids {
        let Some(hex) = k.strip_prefix(RECORD_PREFIX) else {
            continue;
        };
        match (
            u64::from_str_radix(hex, 16)
                .ok()
                .and_then(IfaceKey::from_raw),
            serde_json::from_str::<Record>(v),
        ) {
            (Some(key), Ok(r)) if r.key() == key => {
                out.insert(key, r);
            }
            _ => bad.push(k.clone()),
        }
    }
    (out, bad)
}

/// A digest of a flow set (FNV-1a over the flows' text, sorted), stable across builds.
pub fn base_digest(flows: &[Flow]) -> String {
    let mut lines: Vec<String> = flows.iter().map(|f| f.to_string()).collect();
    lines.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lines.join("\n").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{}:{h:016x}", flows.len())
}

fn record_id(key: IfaceKey) -> String {
    format!("{RECORD_PREFIX}{key}")
}

fn iface_error(
    dom: &GuardedDomain,
    iface: &GuardedInterface,
    field: &'static str,
    problem: String,
) -> GuardError {
    GuardError::Interface {
        domain: dom.name.clone(),
        iface: iface.mac.to_string(),
        field,
        problem,
    }
}

/// Who owns which MAC and addresses, for the duplicate check.
enum Owners<'a> {
    /// The bridge's records as read: one domain's few addresses are checked by a scan, which
    /// costs less than building an index of thousands of records for them (the hook).
    Recorded(&'a BTreeMap<IfaceKey, Record>),
    /// Owners accepted so far, indexed by MAC and address: a sync of N domains checks each
    /// against all before it, which a scan would make O(N²).
    Indexed(OwnerIndex),
}

#[derive(Default)]
struct OwnerIndex {
    records: BTreeMap<IfaceKey, Record>,
    by_mac: HashMap<MacAddr, Vec<IfaceKey>>,
    by_ip: HashMap<IpAddr, Vec<IfaceKey>>,
}

impl Owners<'_> {
    fn insert(&mut self, key: IfaceKey, r: Record) {
        let Owners::Indexed(index) = self else {
            unreachable!("only an index of accepted owners grows");
        };
        index.by_mac.entry(r.mac).or_default().push(key);
        for ip in r
            .ipv4
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(r.ipv6.iter().map(|a| IpAddr::V6(*a)))
        {
            index.by_ip.entry(ip).or_default().push(key);
        }
        index.records.insert(key, r);
    }

    fn holds(&self, key: &IfaceKey) -> bool {
        match self {
            Owners::Recorded(records) => records.contains_key(key),
            Owners::Indexed(index) => index.records.contains_key(key),
        }
    }

    /// Records owning `i`'s MAC or one of its addresses (a record may come more than once).
    fn claimants<'s>(&'s self, i: &GuardedInterface) -> Vec<(&'s IfaceKey, &'s Record)> {
        match self {
            Owners::Recorded(records) => records
                .iter()
                .filter(|(_, r)| r.owns(i).is_some())
                .collect(),
            Owners::Indexed(index) => {
                let ips = i
                    .ipv4
                    .iter()
                    .map(|a| IpAddr::V4(*a))
                    .chain(i.ipv6.iter().map(|a| IpAddr::V6(*a)));
                index
                    .by_mac
                    .get(&i.mac)
                    .into_iter()
                    .chain(ips.filter_map(|ip| index.by_ip.get(&ip)))
                    .flatten()
                    .filter_map(|k| index.records.get_key_value(k))
                    .collect()
            }
        }
    }
}

/// The bridge's Interface rows by name and by `external_ids:attached-mac` (lowercase).
struct PortIndex<'r> {
    row: &'r BridgeRow,
    by_name: HashMap<&'r str, &'r InterfaceRow>,
    by_mac: HashMap<String, Vec<&'r InterfaceRow>>,
}

impl<'r> PortIndex<'r> {
    fn new(row: &'r BridgeRow, ifaces: &'r [InterfaceRow]) -> PortIndex<'r> {
        let mut by_mac: HashMap<String, Vec<&InterfaceRow>> = HashMap::new();
        for i in ifaces {
            if let Some(m) = &i.attached_mac {
                by_mac.entry(m.to_ascii_lowercase()).or_default().push(i);
            }
        }
        PortIndex {
            row,
            by_name: ifaces.iter().map(|i| (i.name.as_str(), i)).collect(),
            by_mac,
        }
    }
}

/// A change to make, described before it is made (`--dry-run` prints it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Bridge columns to set (`fail_mode=secure`, `protocols=…`).
    pub bridge_settings: Vec<String>,
    /// The fragment mode to set, if it is not already `nx-match`.
    pub frag_mode: Option<&'static str>,
    /// Lines of the OpenFlow bundle (`add …`, `delete_strict …`, `delete cookie=…`).
    pub bundle: Vec<String>,
    pub records_set: Vec<(String, String)>,
    pub records_removed: Vec<String>,
    /// Human-readable notes (evicted stale owners, ignored metadata, …).
    pub notes: Vec<String>,
    pub added: usize,
    pub removed: usize,
    /// Interfaces installed by this plan: MAC, ofport, key (for log lines).
    pub interfaces: Vec<(MacAddr, OfPort, IfaceKey)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.bridge_settings.is_empty()
            && self.frag_mode.is_none()
            && self.bundle.is_empty()
            && self.records_set.is_empty()
            && self.records_removed.is_empty()
    }

    /// The plan as text: settings as comments, then the bundle exactly as it will be sent.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.bridge_settings {
            out.push_str(&format!("# ovs-vsctl set Bridge … {s}\n"));
        }
        if let Some(m) = self.frag_mode {
            out.push_str(&format!("# ovs-ofctl set-frags … {m}\n"));
        }
        for (k, _) in &self.records_set {
            out.push_str(&format!("# record external_ids:{k}\n"));
        }
        for k in &self.records_removed {
            out.push_str(&format!("# remove record external_ids:{k}\n"));
        }
        for l in &self.bundle {
            out.push_str(l);
            out.push('\n');
        }
        out
    }

    /// Flow changes as `(added, removed)`.
    pub fn counts(&self) -> (usize, usize) {
        (self.added, self.removed)
    }

    /// Adds the bundle lines turning `current` into `desired` (flows already right are left alone
    /// and keep their counters).
    fn diff(&mut self, current: &[crate::flow::DumpedFlow], desired: &[Flow]) {
        if current.is_empty() {
            // Nothing to compare with (a new interface, an empty bridge): every flow is added,
            // without computing the keys a comparison needs.
            self.bundle
                .extend(desired.iter().map(|f| format!("add {f}")));
            self.added += desired.len();
            return;
        }
        let want: BTreeMap<FlowKey, &Flow> = desired.iter().map(|f| (f.key(), f)).collect();
        let have: BTreeSet<&FlowKey> = current.iter().map(|d| &d.key).collect();
        for d in current {
            if !want.contains_key(&d.key) {
                self.bundle.push(d.key.delete_strict());
                self.removed += 1;
            }
        }
        for (k, f) in &want {
            if !have.contains(k) {
                self.bundle.push(format!("add {f}"));
                self.added += 1;
            }
        }
    }
}

/// One interface ready to install: its key, its record and its flows.
struct Desired {
    key: IfaceKey,
    record: Record,
    flows: Vec<Flow>,
}

/// The result of a full resync.
#[derive(Debug)]
pub struct SyncOutcome {
    pub plan: Plan,
    /// One line per domain that could not be installed (its ports stay closed).
    pub failed: Vec<String>,
}

/// Expected versus installed flows of one owner (an interface, or the base).
#[derive(Clone, Debug)]
pub struct KeyAudit {
    pub expected: usize,
    pub installed: usize,
    pub missing: Vec<FlowKey>,
    pub extra: Vec<FlowKey>,
    /// Packets counted by this owner's drop flows, by reason.
    pub drops: BTreeMap<Reason, u64>,
}

impl KeyAudit {
    fn compare(expected: Vec<Flow>, installed: Vec<DumpedFlow>) -> KeyAudit {
        let want: BTreeSet<FlowKey> = expected.iter().map(Flow::key).collect();
        let have: BTreeSet<FlowKey> = installed.iter().map(|d| d.key.clone()).collect();
        let mut drops: BTreeMap<Reason, u64> = BTreeMap::new();
        for d in &installed {
            if let Some(c) = Cookie::decode(d.key.cookie).filter(|c| c.reason() != Reason::Pass) {
                *drops.entry(c.reason()).or_default() += d.n_packets;
            }
        }
        KeyAudit {
            expected: want.len(),
            installed: have.len(),
            missing: want.difference(&have).cloned().collect(),
            extra: have.difference(&want).cloned().collect(),
            drops,
        }
    }

    pub fn in_sync(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// One recorded interface as found on the switch.
#[derive(Clone, Debug)]
pub struct InterfaceAudit {
    pub key: IfaceKey,
    pub record: Record,
    /// The ofport its OVS interface has now (`None`: the port is gone).
    pub live_ofport: Option<OfPort>,
    pub flows: KeyAudit,
}

/// What `verify` and `status` report: every difference from the expected state, and each
/// recorded interface.
#[derive(Clone, Debug)]
pub struct Audit {
    pub drift: Vec<String>,
    pub interfaces: Vec<InterfaceAudit>,
}

/// One probe's outcome on the live bridge.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub label: &'static str,
    pub expect: Expect,
    /// The datapath actions `ofproto/trace` reported (output ports as datapath port numbers).
    pub actions: String,
    /// The same with each output port number replaced by its port's name.
    pub outputs: String,
    pub ok: bool,
}

/// vmguard's view of one bridge through one OVS.
pub struct Guard<'a> {
    pub ovs: &'a Ovs,
    pub cfg: &'a Config,
}

impl<'a> Guard<'a> {
    pub fn new(ovs: &'a Ovs, cfg: &'a Config) -> Self {
        Guard { ovs, cfg }
    }

    fn bridge(&self) -> &str {
        self.cfg.bridge.as_str()
    }

    fn ovs_err(&self, context: String) -> impl FnOnce(OvsError) -> GuardError {
        move |source| GuardError::Ovs { context, source }
    }

    fn uplink_names(&self) -> Vec<&str> {
        self.cfg
            .uplinks
            .iter()
            .filter_map(|u| match u {
                Uplink::Port(p) => Some(p.as_str()),
                Uplink::Local => None,
            })
            .collect()
    }

    /// Uplink ofports, in config order; a configured uplink missing from the bridge is an error.
    fn uplink_ports(
        &self,
        row: &BridgeRow,
        ifaces: &[InterfaceRow],
    ) -> Result<Vec<OfPort>, GuardError> {
        self.cfg
            .uplinks
            .iter()
            .map(|u| match u {
                Uplink::Local => Ok(OfPort::LOCAL),
                Uplink::Port(p) => {
                    let err = |problem: &str| GuardError::Uplink {
                        bridge: self.bridge().to_string(),
                        uplink: p.to_string(),
                        problem: problem.to_string(),
                    };
                    if !row.ports.iter().any(|n| n == p.as_str()) {
                        return Err(err("not a port of the bridge (fix `uplinks` in the config, or add the port)"));
                    }
                    ifaces
                        .iter()
                        .find(|i| i.name == p.as_str())
                        .and_then(|i| i.ofport)
                        .ok_or_else(|| err("has no valid ofport"))
                }
            })
            .collect()
    }

    /// Bridge settings vmguard depends on that are not in place.
    fn settings_plan(&self, row: &BridgeRow, plan: &mut Plan) -> Result<(), GuardError> {
        if row.fail_mode.as_deref() != Some("secure") {
            plan.bridge_settings.push("fail_mode=secure".into());
        }
        if REQUIRED_PROTOCOLS
            .iter()
            .any(|p| !row.protocols.iter().any(|q| q == p))
        {
            let mut all: BTreeSet<String> = row.protocols.iter().cloned().collect();
            if all.is_empty() {
                // An empty set means OpenFlow10 only; keep it for operators' plain ovs-ofctl.
                all.insert("OpenFlow10".into());
            }
            all.extend(REQUIRED_PROTOCOLS.iter().map(|p| p.to_string()));
            plan.bridge_settings.push(format!(
                "protocols={}",
                all.into_iter().collect::<Vec<_>>().join(",")
            ));
        }
        Ok(())
    }

    /// Applies bridge settings first: ovs-ofctl cannot speak OpenFlow 1.4 to the bridge before
    /// `protocols` allows it, and setting `fail_mode` may flush flows that the bundle must then see.
    fn apply_settings(&self, plan: &Plan) -> Result<(), GuardError> {
        let ctx = format!("bridge {}: cannot update bridge settings", self.bridge());
        if !plan.bridge_settings.is_empty() {
            self.ovs
                .set_bridge(self.bridge(), &plan.bridge_settings)
                .map_err(self.ovs_err(ctx.clone()))?;
        }
        Ok(())
    }

    fn frag_plan(&self, plan: &mut Plan) -> Result<(), GuardError> {
        let ctx = format!("bridge {}: cannot read the fragment mode", self.bridge());
        if self
            .ovs
            .get_frags(self.bridge())
            .map_err(self.ovs_err(ctx))?
            != FRAG_MODE
        {
            plan.frag_mode = Some(FRAG_MODE);
        }
        Ok(())
    }

    fn base_plan(&self, uplinks: &[OfPort], plan: &mut Plan) -> Result<(), GuardError> {
        let ctx = format!("bridge {}: cannot read flows", self.bridge());
        let current = self
            .ovs
            .dump_flows(self.bridge(), &Cookie::owner_selector(IfaceKey::BASE))
            .map_err(self.ovs_err(ctx))?;
        plan.diff(&current, &base_flows(uplinks));
        Ok(())
    }

    /// The hook's fragment-mode and base-flow check without a dump (which makes OVS scan every
    /// flow of the bridge): one OpenFlow round trip reads the fragment mode and counts the base
    /// flows by their exact cookies; when the counts and the digest recorded with the last full
    /// check match what `uplinks` give, the base is intact. Otherwise, a full dump and diff.
    fn checked_base_plan(
        &self,
        row: &BridgeRow,
        uplinks: &[OfPort],
        plan: &mut Plan,
    ) -> Result<(), GuardError> {
        let desired = base_flows(uplinks);
        let mut expected: BTreeMap<u64, u32> = BTreeMap::new();
        for f in &desired {
            *expected.entry(f.cookie.raw()).or_default() += 1;
        }
        let cookies: Vec<u64> = expected.keys().copied().collect();
        let ctx = format!(
            "bridge {}: cannot read the fragment mode and flows",
            self.bridge()
        );
        let (mode, counts) = self
            .ovs
            .frags_and_counts(self.bridge(), &cookies)
            .map_err(self.ovs_err(ctx))?;
        if mode != FRAG_MODE {
            plan.frag_mode = Some(FRAG_MODE);
        }
        let digest = base_digest(&desired);
        let intact = row.external_ids.get(BASE_RECORD) == Some(&digest)
            && counts.iter().eq(expected.values());
        if !intact {
            self.base_plan(uplinks, plan)?;
            Self::record_base(row, &digest, plan);
        }
        Ok(())
    }

    /// Records the digest of the base flows a plan leaves on the bridge, if it changed.
    fn record_base(row: &BridgeRow, digest: &str, plan: &mut Plan) {
        if row.external_ids.get(BASE_RECORD).map(String::as_str) != Some(digest) {
            plan.records_set
                .push((BASE_RECORD.to_string(), digest.to_string()));
        }
    }

    /// Deletes every flow of `keys` by exact cookie (one per reason: OVS finds them through its
    /// cookie index, where a masked cookie makes it scan every flow), counting them first over
    /// OpenFlow in one round trip.
    fn clear_keys(&self, keys: &[IfaceKey], plan: &mut Plan, ctx: &str) -> Result<(), GuardError> {
        if keys.is_empty() {
            return Ok(());
        }
        let cookies: Vec<Cookie> = keys
            .iter()
            .flat_map(|k| Reason::ALL.iter().map(|r| Cookie::new(*k, *r)))
            .collect();
        let raw: Vec<u64> = cookies.iter().map(|c| c.raw()).collect();
        let counts = self
            .ovs
            .count_cookies(self.bridge(), &raw)
            .map_err(self.ovs_err(format!("{ctx}: cannot read flows")))?;
        for (cookie, n) in cookies.iter().zip(counts) {
            if n > 0 {
                plan.bundle.push(format!("delete {}", cookie.selector()));
                plan.removed += n as usize;
            }
        }
        Ok(())
    }

    fn execute(&self, plan: &Plan, context: &str) -> Result<(), GuardError> {
        if let Some(mode) = plan.frag_mode {
            self.ovs
                .set_frags(self.bridge(), mode)
                .map_err(self.ovs_err(format!("{context}: cannot set fragment mode")))?;
        }
        if !plan.bundle.is_empty() {
            let text = plan.bundle.join("\n") + "\n";
            self.ovs
                .bundle(self.bridge(), &text)
                .map_err(self.ovs_err(format!(
                    "{context}: OVS refused the flows (nothing was changed)"
                )))?;
        }
        self.ovs
            .set_bridge_ids(self.bridge(), &plan.records_set, &plan.records_removed)
            .map_err(self.ovs_err(format!(
                "{context}: flows installed but recording them in OVSDB failed"
            )))
    }

    /// Prepares the bridge: settings, fragment mode, base flows, and removal of flows that do
    /// not carry vmguard's tag (the bridge's tables belong to vmguard). Idempotent.
    pub fn init(&self, dry_run: bool) -> Result<Plan, GuardError> {
        let _lock = self
            .ovs
            .lock(self.bridge())
            .map_err(self.ovs_err("cannot lock the bridge".into()))?;
        let ctx = format!("bridge {}", self.bridge());
        let (row, ifaces) = self
            .ovs
            .query(self.bridge(), &self.uplink_names(), &[])
            .map_err(self.ovs_err(ctx.clone()))?;
        let mut plan = Plan::default();
        if row.datapath_type == "netdev" {
            plan.notes.push(NETDEV_WARNING.into());
        }
        self.settings_plan(&row, &mut plan)?;
        let uplinks = self.uplink_ports(&row, &ifaces)?;
        if dry_run && !plan.bridge_settings.is_empty() {
            // The switch may not speak OpenFlow 1.4 yet: plan the base flows from scratch.
            plan.frag_mode = Some(FRAG_MODE);
            plan.diff(&[], &base_flows(&uplinks));
            return Ok(plan);
        }
        if !dry_run {
            self.apply_settings(&plan)?;
        }
        self.frag_plan(&mut plan)?;
        let all = self
            .ovs
            .dump_flows(self.bridge(), "")
            .map_err(self.ovs_err(ctx.clone()))?;
        for f in all
            .iter()
            .filter(|f| Cookie::decode(f.key.cookie).is_none())
        {
            plan.bundle.push(f.key.delete_strict());
            plan.removed += 1;
            plan.notes.push(format!(
                "removing flow without vmguard's tag: cookie={:#x} table={} priority={}",
                f.key.cookie, f.key.table, f.key.priority
            ));
        }
        self.base_plan(&uplinks, &mut plan)?;
        Self::record_base(&row, &base_digest(&base_flows(&uplinks)), &mut plan);
        if !dry_run {
            self.execute(&plan, &ctx)?;
        }
        Ok(plan)
    }

    /// Resolves each interface's port and checks it against what `owners` already own: the
    /// interfaces ready to install, all or none.
    fn desire(
        &self,
        dom: &GuardedDomain,
        index: &PortIndex<'_>,
        owners: &Owners,
    ) -> Result<Vec<Desired>, GuardError> {
        let ports = dom
            .interfaces
            .iter()
            .map(|i| self.resolve_port(dom, i, index))
            .collect::<Result<Vec<OfPort>, GuardError>>()?;
        let mut out: Vec<Desired> = Vec::new();
        for (iface, port) in dom.interfaces.iter().zip(ports.iter().copied()) {
            let key = IfaceKey::derive(&dom.uuid, iface.mac);
            // A record on one of our ports is an owner that is gone (a port belongs to one
            // interface at a time): its addresses do not block us, `apply` evicts it.
            let conflict = owners
                .claimants(iface)
                .into_iter()
                .filter(|(k, r)| **k != key && r.uuid != dom.uuid && !ports.contains(&r.ofport))
                .find_map(|(_, r)| Some((r, r.owns(iface)?)));
            if let Some((r, (field, value))) = conflict {
                return Err(iface_error(
                    dom,
                    iface,
                    field,
                    format!(
                        "{value} is already owned by domain {} (interface {})",
                        r.domain, r.mac
                    ),
                ));
            }
            if out.iter().any(|d| d.key == key) {
                return Err(iface_error(
                    dom,
                    iface,
                    "mac address",
                    "interface key collides with another interface of the domain".into(),
                ));
            }
            let record = Record {
                domain: dom.name.clone(),
                uuid: dom.uuid.clone(),
                mac: iface.mac,
                dev: iface.dev.clone(),
                ofport: port,
                ipv4: iface.ipv4.clone(),
                ipv6: iface.ipv6.clone(),
            };
            let flows = interface_flows(iface, key, port, self.cfg.arp_mode);
            out.push(Desired { key, record, flows });
        }
        Ok(out)
    }

    /// Records to write for `desired` where the recorded one differs.
    fn record_changes(desired: &[Desired], records: &BTreeMap<IfaceKey, Record>, plan: &mut Plan) {
        for d in desired {
            if records.get(&d.key) != Some(&d.record) {
                let json = serde_json::to_string(&d.record).expect("records serialise");
                plan.records_set.push((record_id(d.key), json));
            }
            plan.interfaces.push((d.record.mac, d.record.ofport, d.key));
        }
    }

    /// Installs one domain's flows for all its interfaces on the bridge, replacing its previous
    /// flows, in one bundle. The bridge is left exactly as it was on any error.
    pub fn apply(&self, dom: &GuardedDomain, dry_run: bool) -> Result<Plan, GuardError> {
        let ctx = format!("domain {}", dom.name);
        let _lock = self
            .ovs
            .lock(self.bridge())
            .map_err(self.ovs_err(format!("{ctx}: cannot lock the bridge")))?;
        let mut names: Vec<&str> = self.uplink_names();
        names.extend(
            dom.interfaces
                .iter()
                .filter_map(|i| i.dev.as_ref().map(PortName::as_str)),
        );
        let macs: Vec<String> = dom.interfaces.iter().map(|i| i.mac.to_string()).collect();
        let (row, ifaces) = self
            .ovs
            .query(self.bridge(), &names, &macs)
            .map_err(self.ovs_err(format!("{ctx}: cannot read OVS")))?;
        let mut plan = Plan::default();
        plan.notes.extend(dom.warnings.iter().cloned());
        self.settings_plan(&row, &mut plan)?;
        let uplinks = self.uplink_ports(&row, &ifaces)?;
        let (records, unreadable) = records(&row);
        plan.notes.extend(
            unreadable
                .iter()
                .map(|k| format!("ignoring unreadable record external_ids:{k}")),
        );

        let desired = self.desire(
            dom,
            &PortIndex::new(&row, &ifaces),
            &Owners::Recorded(&records),
        )?;
        // The domain's previous interfaces that it no longer has, and any interface recorded on
        // a port one of ours now holds: a port belongs to one interface at a time, so that
        // owner is gone without its stop hook having run.
        let mut stale: BTreeSet<IfaceKey> = BTreeSet::new();
        for (k, r) in &records {
            if desired.iter().any(|d| d.key == *k) {
                continue;
            }
            if r.uuid == dom.uuid {
                stale.insert(*k);
            } else if let Some(d) = desired.iter().find(|d| d.record.ofport == r.ofport) {
                plan.notes.push(format!(
                    "ofport {} was recorded for domain {} interface {}: removing its stale flows",
                    d.record.ofport, r.domain, r.mac
                ));
                stale.insert(*k);
            }
        }
        Self::record_changes(&desired, &records, &mut plan);

        if dry_run && !plan.bridge_settings.is_empty() {
            for d in &desired {
                plan.diff(&[], &d.flows);
            }
            return Ok(plan);
        }
        if !dry_run {
            self.apply_settings(&plan)?;
        }
        self.checked_base_plan(&row, &uplinks, &mut plan)?;
        let stale: Vec<IfaceKey> = stale.into_iter().collect();
        self.clear_keys(&stale, &mut plan, &ctx)?;
        plan.records_removed
            .extend(stale.iter().map(|k| record_id(*k)));
        for d in &desired {
            if !records.contains_key(&d.key) {
                // Not recorded, so nothing of it should be installed: clear whatever a failed
                // earlier run left by exact cookie (OVS indexes those; a masked cookie makes it
                // scan every flow of the bridge) and add its flows, instead of dumping first.
                plan.bundle.extend(
                    Reason::ALL
                        .iter()
                        .map(|r| format!("delete {}", Cookie::new(d.key, *r).selector())),
                );
                plan.diff(&[], &d.flows);
                continue;
            }
            let current = self
                .ovs
                .dump_flows(self.bridge(), &Cookie::owner_selector(d.key))
                .map_err(self.ovs_err(format!("{ctx}: cannot read flows")))?;
            plan.diff(&current, &d.flows);
        }
        if !dry_run {
            self.execute(&plan, &ctx)?;
        }
        Ok(plan)
    }

    /// Like [`Guard::apply`], but waits up to the configured `ofport_timeout` for interfaces whose
    /// OVS port or ofport does not exist yet (a tap libvirt has just created).
    pub fn apply_waiting(&self, dom: &GuardedDomain) -> Result<Plan, GuardError> {
        let deadline = std::time::Instant::now() + self.cfg.ofport_timeout;
        loop {
            match self.apply(dom, false) {
                Err(GuardError::Interface {
                    field: "ofport" | "target dev",
                    ..
                }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Reconciles the bridge with exactly these domains (every running one): restores bridge
    /// settings and base flows, installs what is missing, removes vmguard flows and records of
    /// interfaces not among them, and leaves flows that are already right alone. One dump, one
    /// bundle. A domain that cannot be installed (a conflict, a missing port) is reported in
    /// `failed` and its ports stay closed; the others are still reconciled.
    pub fn sync(
        &self,
        domains: &[GuardedDomain],
        dry_run: bool,
    ) -> Result<SyncOutcome, GuardError> {
        let ctx = format!("bridge {}", self.bridge());
        let _lock = self
            .ovs
            .lock(self.bridge())
            .map_err(self.ovs_err(format!("{ctx}: cannot lock the bridge")))?;
        let (row, ifaces) = self
            .ovs
            .query_all(self.bridge())
            .map_err(self.ovs_err(format!("{ctx}: cannot read OVS")))?;
        let mut plan = Plan::default();
        self.settings_plan(&row, &mut plan)?;
        let uplinks = self.uplink_ports(&row, &ifaces)?;
        let (records, unreadable) = records(&row);
        plan.records_removed.extend(unreadable);

        // Interfaces already installed keep precedence over newcomers that claim their addresses.
        let installed: HashSet<&DomainUuid> = records.values().map(|r| &r.uuid).collect();
        let mut order: Vec<&GuardedDomain> = domains.iter().collect();
        order.sort_by_key(|d| !installed.contains(&d.uuid));
        let index = PortIndex::new(&row, &ifaces);
        let mut accepted = Owners::Indexed(OwnerIndex::default());
        let mut desired: Vec<Desired> = Vec::new();
        let mut failed = Vec::new();
        for dom in order {
            plan.notes.extend(
                dom.warnings
                    .iter()
                    .map(|w| format!("domain {}: {w}", dom.name)),
            );
            match self.desire(dom, &index, &accepted) {
                Ok(list) => {
                    for d in list {
                        accepted.insert(d.key, d.record.clone());
                        desired.push(d);
                    }
                }
                Err(e) => failed.push(e.to_string()),
            }
        }
        Self::record_changes(&desired, &records, &mut plan);
        plan.records_removed.extend(
            records
                .keys()
                .filter(|k| !accepted.holds(k))
                .map(|k| record_id(*k)),
        );

        if dry_run && !plan.bridge_settings.is_empty() {
            plan.diff(&[], &base_flows(&uplinks));
            for d in &desired {
                plan.diff(&[], &d.flows);
            }
            return Ok(SyncOutcome { plan, failed });
        }
        if !dry_run {
            self.apply_settings(&plan)?;
        }
        self.frag_plan(&mut plan)?;
        let mut current = self.installed_by_key()?;
        let base = base_flows(&uplinks);
        plan.diff(&current.remove(&IfaceKey::BASE).unwrap_or_default(), &base);
        Self::record_base(&row, &base_digest(&base), &mut plan);
        for d in &desired {
            plan.diff(&current.remove(&d.key).unwrap_or_default(), &d.flows);
        }
        for (key, flows) in current {
            plan.bundle
                .push(format!("delete {}", Cookie::owner_selector(key)));
            plan.removed += flows.len();
        }
        if !dry_run {
            self.execute(&plan, &ctx)?;
        }
        Ok(SyncOutcome { plan, failed })
    }

    /// Every vmguard flow on the bridge, by interface key (one dump, skipped when a count over
    /// OpenFlow finds none: a fresh or restarted switch).
    fn installed_by_key(&self) -> Result<BTreeMap<IfaceKey, Vec<DumpedFlow>>, GuardError> {
        let ctx = || format!("bridge {}: cannot read flows", self.bridge());
        let n = self
            .ovs
            .count_flows(self.bridge(), Cookie::TAG, Cookie::TAG_MASK)
            .map_err(self.ovs_err(ctx()))?;
        if n == 0 {
            return Ok(BTreeMap::new());
        }
        let all = self
            .ovs
            .dump_flows(self.bridge(), &Cookie::tag_selector())
            .map_err(self.ovs_err(ctx()))?;
        let mut out: BTreeMap<IfaceKey, Vec<DumpedFlow>> = BTreeMap::new();
        for f in all {
            if let Some(c) = Cookie::decode(f.key.cookie) {
                out.entry(c.key()).or_default().push(f);
            }
        }
        Ok(out)
    }

    /// Traces the built-in probe battery through the live bridge from `iface`'s port.
    pub fn probe(&self, iface: &InterfaceAudit) -> Result<Vec<ProbeResult>, GuardError> {
        let port = iface.live_ofport.unwrap_or(iface.record.ofport);
        let names = self.ovs.dp_port_names().map_err(self.ovs_err(format!(
            "bridge {}: cannot read the datapath's ports",
            self.bridge()
        )))?;
        // The datapath names of the uplinks (LOCAL's is the bridge's).
        let uplinks: Vec<&str> = self
            .cfg
            .uplinks
            .iter()
            .map(|u| match u {
                Uplink::Port(p) => p.as_str(),
                Uplink::Local => self.bridge(),
            })
            .collect();
        probes(&iface.record.interface())
            .into_iter()
            .map(|p| {
                let actions = self
                    .ovs
                    .trace_actions(self.bridge(), port, &p.frame.hex())
                    .map_err(self.ovs_err(format!(
                        "vm={} iface={}: cannot trace",
                        iface.record.domain, iface.record.mac
                    )))?;
                let dropped = actions == "drop";
                let outputs = crate::ovs::name_dp_ports(&actions, &names);
                let ok = match p.expect {
                    Expect::Drop => dropped,
                    Expect::Pass => !dropped,
                    Expect::Uplinks => {
                        let ports: Vec<&str> = outputs
                            .split(',')
                            .filter(|o| names.values().any(|n| n == o))
                            .collect();
                        ports.iter().all(|o| uplinks.contains(o))
                            && (uplinks.is_empty() || !ports.is_empty())
                    }
                };
                Ok(ProbeResult {
                    label: p.label,
                    expect: p.expect,
                    ok,
                    outputs,
                    actions,
                })
            })
            .collect()
    }

    /// Compares the bridge with what vmguard's records say it should hold: settings, base
    /// flows, every recorded interface's flows and port, and flows vmguard does not own.
    pub fn audit(&self) -> Result<Audit, GuardError> {
        let ctx = format!("bridge {}", self.bridge());
        // Counters only; a switch that cannot do it still has flows to compare.
        let _ = self.ovs.settle_stats();
        let (row, ifaces) = self
            .ovs
            .query_all(self.bridge())
            .map_err(self.ovs_err(format!("{ctx}: cannot read OVS")))?;
        let mut drift = Vec::new();
        let mut settings = Plan::default();
        self.settings_plan(&row, &mut settings)?;
        drift.extend(
            settings
                .bridge_settings
                .iter()
                .map(|s| format!("bridge setting differs: want {s}")),
        );
        let uplinks = match self.uplink_ports(&row, &ifaces) {
            Ok(u) => u,
            Err(e) => {
                drift.push(e.to_string());
                Vec::new()
            }
        };
        let (records, unreadable) = records(&row);
        drift.extend(
            unreadable
                .iter()
                .map(|k| format!("unreadable record external_ids:{k}")),
        );
        let frags = self
            .ovs
            .get_frags(self.bridge())
            .map_err(self.ovs_err(format!("{ctx}: cannot read the fragment mode")))?;
        if frags != FRAG_MODE {
            drift.push(format!(
                "fragment mode is {frags}, not {FRAG_MODE} (ovs-vswitchd restarted?)"
            ));
        }
        let all = self
            .ovs
            .dump_flows(self.bridge(), "")
            .map_err(self.ovs_err(format!("{ctx}: cannot read flows")))?;
        let foreign = all
            .iter()
            .filter(|f| Cookie::decode(f.key.cookie).is_none())
            .count();
        if foreign > 0 {
            drift.push(format!(
                "{foreign} flow(s) without vmguard's tag on the bridge"
            ));
        }
        let mut installed: BTreeMap<IfaceKey, Vec<DumpedFlow>> = BTreeMap::new();
        for f in all {
            if let Some(c) = Cookie::decode(f.key.cookie) {
                installed.entry(c.key()).or_default().push(f);
            }
        }
        let base = KeyAudit::compare(
            base_flows(&uplinks),
            installed.remove(&IfaceKey::BASE).unwrap_or_default(),
        );
        if !base.in_sync() {
            drift.push(format!(
                "base flows: {} missing, {} unexpected",
                base.missing.len(),
                base.extra.len()
            ));
        }
        // Rows and drift by domain name and MAC, not by the keys' hash order.
        let mut records: Vec<_> = records.into_iter().collect();
        records.sort_by(|(_, a), (_, b)| natural_cmp(&a.domain, &b.domain).then(a.mac.cmp(&b.mac)));
        let mut interfaces = Vec::new();
        for (key, record) in records {
            let live = ifaces
                .iter()
                .find(|i| record.dev.as_ref().is_some_and(|d| d.as_str() == i.name))
                .or_else(|| {
                    ifaces.iter().find(|i| {
                        i.attached_mac.as_deref().map(str::to_ascii_lowercase)
                            == Some(record.mac.to_string())
                    })
                });
            let live_ofport = live.and_then(|i| i.ofport);
            let flows = KeyAudit::compare(
                interface_flows(&record.interface(), key, record.ofport, self.cfg.arp_mode),
                installed.remove(&key).unwrap_or_default(),
            );
            match live_ofport {
                None => drift.push(format!(
                    "vm={} iface={}: port is gone (run vmguard sync)",
                    record.domain, record.mac
                )),
                Some(p) if p != record.ofport => drift.push(format!(
                    "vm={} iface={}: port moved from ofport {} to {p} (run vmguard sync)",
                    record.domain, record.mac, record.ofport
                )),
                Some(_) => {}
            }
            if !flows.in_sync() {
                drift.push(format!(
                    "vm={} iface={}: {} flow(s) missing, {} unexpected",
                    record.domain,
                    record.mac,
                    flows.missing.len(),
                    flows.extra.len()
                ));
            }
            interfaces.push(InterfaceAudit {
                key,
                record,
                live_ofport,
                flows,
            });
        }
        for (key, flows) in installed {
            drift.push(format!(
                "{} flow(s) of unrecorded interface key {key}",
                flows.len()
            ));
        }
        Ok(Audit { drift, interfaces })
    }

    /// The ofport of an interface: by `<target dev>`, else by `external_ids:attached-mac`.
    fn resolve_port(
        &self,
        dom: &GuardedDomain,
        iface: &GuardedInterface,
        index: &PortIndex<'_>,
    ) -> Result<OfPort, GuardError> {
        let err = |field, problem| iface_error(dom, iface, field, problem);
        let by_dev = iface
            .dev
            .as_ref()
            .and_then(|d| index.by_name.get(d.as_str()).copied());
        let mac = iface.mac.to_string();
        let found = match by_dev {
            Some(r) => r,
            None => match index.by_mac.get(&mac).map(Vec::as_slice).unwrap_or_default() {
                [one] => *one,
                [] => {
                    return Err(err(
                        "target dev",
                        match &iface.dev {
                            Some(d) => format!("no OVS interface named {d} or with external_ids:attached-mac={mac}"),
                            None => format!("no <target dev> and no OVS interface with external_ids:attached-mac={mac}"),
                        },
                    ))
                }
                many => {
                    return Err(err(
                        "mac address",
                        format!("{} OVS interfaces carry attached-mac={mac}: {}", many.len(), many.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")),
                    ))
                }
            },
        };
        // An uplink is trusted whatever it sends, and the bridge's own port is the host: a VM's
        // flows there would overlap the uplink's admission flows.
        let uplink = self.cfg.uplinks.iter().any(|u| match u {
            Uplink::Port(p) => p.as_str() == found.name,
            Uplink::Local => false,
        });
        if uplink || found.name == self.bridge() {
            return Err(err(
                "target dev",
                format!(
                    "OVS port {} is {} of bridge {}, not a VM's port",
                    found.name,
                    if uplink {
                        "an uplink"
                    } else {
                        "the LOCAL port"
                    },
                    self.bridge()
                ),
            ));
        }
        let on_bridge = if index.row.ports.contains(&found.name) {
            true
        } else {
            // Found by MAC under a name we did not ask the bridge about: ask once more.
            let (r, _) = self
                .ovs
                .query(self.bridge(), &[found.name.as_str()], &[])
                .map_err(self.ovs_err(format!("domain {}: cannot read OVS", dom.name)))?;
            r.ports.contains(&found.name)
        };
        if !on_bridge {
            return Err(err(
                "source bridge",
                format!("OVS port {} is not on bridge {}", found.name, self.bridge()),
            ));
        }
        found.ofport.ok_or_else(|| {
            err(
                "ofport",
                format!("OVS interface {} has no valid ofport yet", found.name),
            )
        })
    }

    /// Removes every flow and record of a domain's interfaces. Needs only the domain's UUID (or,
    /// failing that, its name) and its MACs; works when the ports are already gone.
    pub fn remove(&self, id: &DomainIdentity, dry_run: bool) -> Result<Plan, GuardError> {
        let ctx = format!("domain {}", id.name);
        let _lock = self
            .ovs
            .lock(self.bridge())
            .map_err(self.ovs_err(format!("{ctx}: cannot lock the bridge")))?;
        let (row, _) = self
            .ovs
            .query(self.bridge(), &[], &[])
            .map_err(self.ovs_err(format!("{ctx}: cannot read OVS")))?;
        let (records, _) = records(&row);
        let mut keys: BTreeSet<IfaceKey> = BTreeSet::new();
        if let Some(uuid) = &id.uuid {
            keys.extend(id.macs.iter().map(|m| IfaceKey::derive(uuid, *m)));
        }
        keys.extend(
            records
                .iter()
                .filter(|(_, r)| match &id.uuid {
                    Some(u) => r.uuid == *u,
                    None => r.domain == id.name,
                })
                .map(|(k, _)| *k),
        );
        let mut plan = Plan::default();
        let keys: Vec<IfaceKey> = keys.into_iter().collect();
        self.clear_keys(&keys, &mut plan, &ctx)?;
        plan.records_removed.extend(
            keys.iter()
                .filter(|k| records.contains_key(k))
                .map(|k| record_id(*k)),
        );
        if !dry_run {
            self.execute(&plan, &ctx)?;
        }
        Ok(plan)
    }
}
