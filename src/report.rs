//! Prints `verify` and `status` results as tables for operators or JSON for scripts (stdout).

use serde_json::json;

use vmguard::engine::{Audit, ProbeResult};
use vmguard::pipeline::Reason;

/// Drop reasons shown as status columns, with their short headers.
const DROP_COLUMNS: [(Reason, &str); 9] = [
    (Reason::MacSpoof, "MAC"),
    (Reason::IpSpoof, "IP"),
    (Reason::ArpSpoof, "ARP"),
    (Reason::RouterAdvert, "RA"),
    (Reason::NdSpoof, "ND"),
    (Reason::Redirect, "REDIR"),
    (Reason::DhcpServer, "DHCP"),
    (Reason::Ethertype, "VLAN/ETH"),
    (Reason::Evasion, "FRAG"),
];

/// Prints the verify report; true when the bridge is in sync and every probe held.
pub fn verify(audit: &Audit, probes: &[Vec<ProbeResult>], as_json: bool) -> bool {
    let failed: usize = probes.iter().flatten().filter(|p| !p.ok).count();
    let ok = audit.drift.is_empty() && failed == 0;
    if as_json {
        let ports: Vec<_> = audit
            .interfaces
            .iter()
            .filter(|i| i.live_ofport.is_some())
            .zip(probes)
            .map(|(i, results)| {
                json!({
                    "domain": i.record.domain,
                    "mac": i.record.mac.to_string(),
                    "ofport": i.live_ofport.map(|p| p.get()),
                    "probes": results.iter().map(|p| json!({
                        "probe": p.label,
                        "expect": format!("{:?}", p.expect).to_lowercase(),
                        "datapath_actions": p.actions,
                        "outputs": p.outputs,
                        "ok": p.ok,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        vmguard::outln!(
            "{}",
            json!({ "in_sync": audit.drift.is_empty(), "ok": ok, "drift": audit.drift, "ports": ports })
        );
        return ok;
    }
    if audit.drift.is_empty() {
        vmguard::outln!(
            "flows: in sync ({} guarded interface(s))",
            audit.interfaces.len()
        );
    } else {
        vmguard::outln!("flows: DRIFT");
        for d in &audit.drift {
            vmguard::outln!("  - {d}");
        }
    }
    for (i, results) in audit
        .interfaces
        .iter()
        .filter(|i| i.live_ofport.is_some())
        .zip(probes)
    {
        vmguard::outln!();
        vmguard::outln!(
            "{} {} (ofport {})",
            i.record.domain,
            i.record.mac,
            i.live_ofport.map(|p| p.to_string()).unwrap_or_default()
        );
        for p in results {
            let verdict = if p.ok { "pass" } else { "FAIL" };
            vmguard::outln!(
                "  {verdict:4}  {:55} expect {:7}  got {}",
                p.label,
                format!("{:?}", p.expect).to_lowercase(),
                p.outputs
            );
        }
    }
    let total: usize = probes.iter().map(Vec::len).sum();
    vmguard::outln!();
    vmguard::outln!("{} passed, {} failed", total - failed, failed);
    ok
}

/// Prints one row per recorded interface.
pub fn status(audit: &Audit, as_json: bool) {
    if as_json {
        let rows: Vec<_> = audit
            .interfaces
            .iter()
            .map(|i| {
                let drops: serde_json::Map<String, serde_json::Value> = DROP_COLUMNS
                    .iter()
                    .map(|(r, _)| {
                        (
                            r.name().to_string(),
                            json!(i.flows.drops.get(r).copied().unwrap_or(0)),
                        )
                    })
                    .collect();
                json!({
                    "domain": i.record.domain,
                    "uuid": i.record.uuid.to_string(),
                    "port": i.record.dev.as_ref().map(|d| d.to_string()),
                    "ofport": i.live_ofport.map(|p| p.get()),
                    "recorded_ofport": i.record.ofport.get(),
                    "mac": i.record.mac.to_string(),
                    "ipv4": i.record.ipv4.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "ipv6": i.record.ipv6.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "flows_expected": i.flows.expected,
                    "flows_installed": i.flows.installed,
                    "in_sync": i.flows.in_sync() && i.live_ofport == Some(i.record.ofport),
                    "dropped": drops,
                })
            })
            .collect();
        vmguard::outln!("{}", json!({ "interfaces": rows, "drift": audit.drift }));
        return;
    }
    let mut header = format!(
        "{:16} {:10} {:6} {:17} {:9}",
        "DOMAIN", "PORT", "OFPORT", "MAC", "FLOWS"
    );
    for (_, h) in DROP_COLUMNS {
        header.push_str(&format!(" {h:>8}"));
    }
    header.push_str("  ADDRESSES");
    vmguard::outln!("{header}");
    for i in &audit.interfaces {
        let addrs: Vec<String> = i
            .record
            .ipv4
            .iter()
            .map(|a| a.to_string())
            .chain(i.record.ipv6.iter().map(|a| a.to_string()))
            .collect();
        let mut row = format!(
            "{:16} {:10} {:6} {:17} {:9}",
            i.record.domain,
            i.record
                .dev
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            i.live_ofport
                .map(|p| p.to_string())
                .unwrap_or_else(|| "gone".into()),
            i.record.mac.to_string(),
            format!("{}/{}", i.flows.installed, i.flows.expected),
        );
        for (r, _) in DROP_COLUMNS {
            row.push_str(&format!(
                " {:>8}",
                i.flows.drops.get(&r).copied().unwrap_or(0)
            ));
        }
        row.push_str(&format!("  {}", addrs.join(",")));
        vmguard::outln!("{row}");
    }
    if !audit.drift.is_empty() {
        vmguard::outln!();
        vmguard::outln!("drift (details: `vmguard verify`; repair: `vmguard sync --libvirt`, and `vmguard init` for flows without vmguard's tag):");
        for d in &audit.drift {
            vmguard::outln!("  - {d}");
        }
    }
}
