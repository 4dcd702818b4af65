//! Packet counters of installed flows, to see which flow counted a frame.

use std::collections::BTreeMap;

use vmguard::flow::FlowKey;

use super::Ovs;

/// Cookie and packet counter of every flow of `br`, keyed by the flow's normal form
/// (`vmguard::flow::FlowKey`, the same parser the product uses).
pub fn flow_counters(ovs: &Ovs, br: &str) -> BTreeMap<String, (u64, u64)> {
    ovs.ofctl(&["-O", "OpenFlow14", "dump-flows", br])
        .lines()
        .filter_map(FlowKey::parse)
        .map(|d| {
            let k = &d.key;
            let matches: Vec<&str> = k.match_tokens().collect();
            let text = format!(
                "table={}, priority={},{} actions={}",
                k.table,
                k.priority,
                matches.join(","),
                k.actions
            );
            (text, (k.cookie, d.n_packets))
        })
        .collect()
}

/// Drop flows (a reason in the cookie, or `actions=drop`) whose counter grew between two
/// snapshots, as (flow, cookie).
pub fn drops_counted(
    before: &BTreeMap<String, (u64, u64)>,
    after: &BTreeMap<String, (u64, u64)>,
) -> Vec<(String, u64)> {
    after
        .iter()
        .filter(|(flow, (cookie, n))| {
            let was = before.get(*flow).map_or(0, |b| b.1);
            *n > was && ((cookie >> 40) & 0xff != 0 || flow.ends_with("actions=drop"))
        })
        .map(|(flow, (cookie, _))| (flow.clone(), *cookie))
        .collect()
}
