//! Every call of `ovs-vsctl`, `ovs-ofctl` and `ovs-appctl`: the only place vmguard touches the
//! switch. Errors keep the argv, the exit status and OVS's stderr.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use thiserror::Error;

use crate::flow::{DumpedFlow, FlowKey};
use crate::model::{OfPort, PortName};

/// OVS's compiled-in run directory, used when neither `OVS_RUNDIR` nor the config names one.
pub const DEFAULT_RUNDIR: &str = "/var/run/openvswitch";
/// The OpenFlow version vmguard speaks: bundles need 1.4.
pub const OPENFLOW: &str = "OpenFlow14";
/// Protocols vmguard makes sure the bridge enables.
pub const REQUIRED_PROTOCOLS: [&str; 2] = ["OpenFlow13", "OpenFlow14"];

#[derive(Debug, Error)]
pub enum OvsError {
    #[error("cannot run {program}: {source} (is Open vSwitch installed?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` failed ({status}): {stderr}", short(argv))]
    Failed {
        argv: String,
        status: String,
        stderr: String,
    },
    #[error("unexpected output from `{argv}`: {problem}")]
    Output { argv: String, problem: String },
    #[error("bridge {0} does not exist (create it first: ovs-vsctl add-br {0})")]
    NoBridge(String),
    #[error("OVS run directory {} does not exist: is Open vSwitch running? (set ovs_rundir in the config or OVS_RUNDIR)", .0.display())]
    NoRundir(PathBuf),
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A handle on one OVS instance, found through its run directory.
#[derive(Clone, Debug)]
pub struct Ovs {
    rundir: Option<PathBuf>,
}

/// One Interface row as vmguard needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceRow {
    pub name: String,
    /// `None` while OVS has not assigned a number yet or failed to (-1).
    pub ofport: Option<OfPort>,
    pub attached_mac: Option<String>,
    pub external_ids: BTreeMap<String, String>,
}

/// The Bridge row's settings and vmguard's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeRow {
    pub fail_mode: Option<String>,
    /// `netdev` for the userspace datapath, `system` or empty for the kernel one.
    pub datapath_type: String,
    pub protocols: Vec<String>,
    pub external_ids: BTreeMap<String, String>,
    /// Those of the queried names that are ports of this bridge.
    pub ports: Vec<String>,
}

impl Ovs {
    /// `OVS_RUNDIR` wins over the configured directory (SPEC precedence); `None` means the
    /// tools' own default.
    pub fn new(configured: Option<&Path>) -> Ovs {
        let env = std::env::var_os("OVS_RUNDIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Ovs {
            rundir: env.or_else(|| configured.map(Path::to_path_buf)),
        }
    }

    /// The run directory in effect.
    pub fn rundir(&self) -> PathBuf {
        self.rundir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNDIR))
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, OvsError> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        if let Some(dir) = &self.rundir {
            cmd.env("OVS_RUNDIR", dir);
        }
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let spawn_err = |source| OvsError::Spawn {
            program: program.to_string(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            // A write error surfaces as the tool's own failure below.
            let _ = pipe.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(OvsError::Failed {
                argv: std::iter::once(program)
                    .chain(args.iter().copied())
                    .collect::<Vec<_>>()
                    .join(" "),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .replace('\n', " | "),
            })
        }
    }

    pub fn vsctl(&self, args: &[&str]) -> Result<String, OvsError> {
        let mut all = vec!["--timeout=10"];
        all.extend_from_slice(args);
        self.run("ovs-vsctl", &all, None)
    }

    pub fn ofctl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, OvsError> {
        self.ofctl_within(30, args, stdin)
    }

    fn ofctl_within(
        &self,
        seconds: u32,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, OvsError> {
        let timeout = format!("--timeout={seconds}");
        let mut all = vec!["-O", OPENFLOW, timeout.as_str()];
        all.extend_from_slice(args);
        self.run("ovs-ofctl", &all, stdin)
    }

    pub fn appctl(&self, args: &[&str]) -> Result<String, OvsError> {
        self.run("ovs-appctl", args, None)
    }

    /// Serialises vmguard's changes to one bridge across processes (concurrent hooks): the
    /// duplicate-address check and the install must be one step. Released on drop.
    pub fn lock(&self, bridge: &str) -> Result<File, OvsError> {
        let dir = self.rundir();
        if !dir.is_dir() {
            return Err(OvsError::NoRundir(dir));
        }
        let path = dir.join(format!("vmguard-{bridge}.lock"));
        let lock_err = |source| OvsError::Lock {
            path: path.clone(),
            source,
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_err)?;
        file.lock().map_err(lock_err)?;
        Ok(file)
    }

    /// Reads the bridge row and the Interface rows named in `names` or carrying one of
    /// `macs` as `external_ids:attached-mac`, in one OVSDB round trip.
    pub fn query(
        &self,
        bridge: &str,
        names: &[&str],
        macs: &[String],
    ) -> Result<(BridgeRow, Vec<InterfaceRow>), OvsError> {
        self.query_scope(bridge, Scope::Some(names, macs))
    }

    /// Reads the bridge row, every Port and every Interface, in one OVSDB round trip (for a
    /// full resync or an audit, where every row is needed anyway).
    pub fn query_all(&self, bridge: &str) -> Result<(BridgeRow, Vec<InterfaceRow>), OvsError> {
        self.query_scope(bridge, Scope::All)
    }

    fn query_scope(
        &self,
        bridge: &str,
        scope: Scope<'_>,
    ) -> Result<(BridgeRow, Vec<InterfaceRow>), OvsError> {
        let mut args: Vec<String> = vec![
            "--format=json".into(),
            "--".into(),
            "--columns=fail_mode,protocols,external_ids,ports,datapath_type".into(),
            "list".into(),
            "Bridge".into(),
            bridge.into(),
        ];
        let (names, macs) = match scope {
            Scope::Some(names, macs) => (names, macs),
            Scope::All => {
                args.extend([
                    "--".into(),
                    "--columns=_uuid,name".into(),
                    "list".into(),
                    "Port".into(),
                ]);
                args.extend([
                    "--".into(),
                    "--columns=name,ofport,external_ids".into(),
                    "list".into(),
                    "Interface".into(),
                ]);
                (&[][..], &[][..])
            }
        };
        let port_tables = if matches!(scope, Scope::All) {
            1
        } else {
            names.len()
        };
        // Ports by name, to tell which of them are on the bridge (its `ports` holds UUIDs).
        for n in names {
            args.extend([
                "--".into(),
                "--columns=_uuid,name".into(),
                "find".into(),
                "Port".into(),
                format!("name={}", quote(n)),
            ]);
        }
        let iface_cols = "--columns=name,ofport,external_ids";
        for n in names {
            args.extend([
                "--".into(),
                iface_cols.into(),
                "find".into(),
                "Interface".into(),
                format!("name={}", quote(n)),
            ]);
        }
        for m in macs {
            args.extend([
                "--".into(),
                iface_cols.into(),
                "find".into(),
                "Interface".into(),
                format!("external_ids:attached-mac={}", quote(m)),
            ]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = match self.vsctl(&argv) {
            Err(OvsError::Failed { stderr, .. })
                if stderr.contains("no row") && stderr.contains("in table Bridge") =>
            {
                return Err(OvsError::NoBridge(bridge.to_string()))
            }
            other => other?,
        };
        let bad = |problem: &str| OvsError::Output {
            argv: "ovs-vsctl list Bridge/Interface".into(),
            problem: problem.into(),
        };
        let tables: Vec<Value> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e.to_string()))?;
        let mut tables = tables.iter();
        let bridge_rows = rows(tables.next().ok_or_else(|| bad("no Bridge table"))?);
        let b = bridge_rows
            .first()
            .ok_or_else(|| OvsError::NoBridge(bridge.to_string()))?;
        let mut port_rows = Vec::new();
        for _ in 0..port_tables {
            port_rows.extend(rows(
                tables.next().ok_or_else(|| bad("missing Port table"))?,
            ));
        }
        let port_names: BTreeMap<String, String> = port_rows
            .iter()
            .filter_map(|r| {
                Some((
                    uuid_of(r.get("_uuid")?)?,
                    r.get("name")?.as_str()?.to_string(),
                ))
            })
            .collect();
        let bridge_row = BridgeRow {
            fail_mode: b
                .get("fail_mode")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            datapath_type: b
                .get("datapath_type")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            protocols: set_of(b.get("protocols"))
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            external_ids: map_of(b.get("external_ids")),
            ports: set_of(b.get("ports"))
                .iter()
                .filter_map(|v| port_names.get(&uuid_of(v)?).cloned())
                .collect(),
        };
        let mut ifaces: Vec<InterfaceRow> = Vec::new();
        for t in tables {
            for r in rows(t) {
                let external_ids = map_of(r.get("external_ids"));
                let row = InterfaceRow {
                    name: r
                        .get("name")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    ofport: r
                        .get("ofport")
                        .and_then(|v| v.as_u64())
                        .and_then(|n| OfPort::new(n as u32).ok()),
                    attached_mac: external_ids.get("attached-mac").cloned(),
                    external_ids,
                };
                if !ifaces.iter().any(|i| i.name == row.name) {
                    ifaces.push(row);
                }
            }
        }
        Ok((bridge_row, ifaces))
    }

    /// The ofport of a port of the bridge (`LOCAL` for the bridge's own port).
    pub fn port_ofport(&self, name: &PortName) -> Result<Option<OfPort>, OvsError> {
        let out = self.vsctl(&[
            "--format=json",
            "--columns=ofport",
            "find",
            "Interface",
            &format!("name={}", quote(name.as_str())),
        ])?;
        let v: Value = serde_json::from_str(&out).map_err(|e| OvsError::Output {
            argv: "ovs-vsctl find Interface".into(),
            problem: e.to_string(),
        })?;
        Ok(rows(&v)
            .first()
            .and_then(|r| r.get("ofport"))
            .and_then(|v| v.as_u64())
            .and_then(|n| OfPort::new(n as u32).ok()))
    }

    /// Sets and removes Bridge external_ids in one transaction.
    pub fn set_bridge_ids(
        &self,
        bridge: &str,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<(), OvsError> {
        if set.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let mut ops: Vec<Vec<String>> = set
            .iter()
            .map(|(k, v)| {
                let kv = format!("external_ids:{k}={}", quote(v));
                vec![
                    "--".into(),
                    "set".into(),
                    "Bridge".into(),
                    bridge.into(),
                    kv,
                ]
            })
            .collect();
        ops.extend(remove.iter().map(|k| {
            let op = ["--", "remove", "Bridge", bridge, "external_ids", k];
            op.iter().map(|a| a.to_string()).collect()
        }));
        for call in pack(ops, ARGV_BUDGET) {
            // external_ids mean nothing to ovs-vswitchd: do not wait for it to reconfigure the
            // bridge (with thousands of ports that wait took seconds per hook).
            let mut argv: Vec<&str> = vec!["--no-wait"];
            argv.extend(call.iter().flatten().map(String::as_str));
            self.vsctl(&argv)?;
        }
        Ok(())
    }

    /// Sets Bridge columns (e.g. `fail_mode=secure`), waiting until ovs-vswitchd applied them.
    pub fn set_bridge(&self, bridge: &str, assignments: &[String]) -> Result<(), OvsError> {
        let mut args = vec!["set", "Bridge", bridge];
        args.extend(assignments.iter().map(String::as_str));
        self.vsctl(&args).map(drop)
    }

    /// Flows selected by an `ovs-ofctl` flow spec (e.g. a cookie selector).
    pub fn dump_flows(&self, bridge: &str, selector: &str) -> Result<Vec<DumpedFlow>, OvsError> {
        let mut args = vec!["dump-flows", bridge];
        if !selector.is_empty() {
            args.push(selector);
        }
        let out = self.ofctl(&args, None)?;
        Ok(out.lines().filter_map(FlowKey::parse).collect())
    }

    /// Sends flow mods as one OpenFlow bundle: all of them take effect, or none.
    /// The time allowed grows with the bundle: OVS 3.1 took about 47 s for 305,000 flows here.
    pub fn bundle(&self, bridge: &str, lines: &str) -> Result<(), OvsError> {
        let seconds = 30
            + u32::try_from(lines.len() / 100_000)
                .unwrap_or(u32::MAX / 2)
                .saturating_mul(5);
        self.ofctl_within(
            seconds,
            &["--bundle", "add-flows", bridge, "-"],
            Some(lines),
        )
        .map(drop)
    }

    /// The datapath actions `ofproto/trace` computes for a raw frame entering at `in_port`
    /// (`drop` when nothing is output).
    pub fn trace_actions(
        &self,
        bridge: &str,
        in_port: OfPort,
        frame_hex: &str,
    ) -> Result<String, OvsError> {
        let flow = format!("in_port={in_port}");
        let out = self.appctl(&["ofproto/trace", bridge, &flow, frame_hex])?;
        out.lines()
            .find_map(|l| l.strip_prefix("Datapath actions:"))
            .map(|a| a.trim().to_string())
            .ok_or_else(|| OvsError::Output {
                argv: format!("ovs-appctl ofproto/trace {bridge} {flow} …"),
                problem: "no 'Datapath actions:' line".into(),
            })
    }

    /// Lets the datapath's revalidators finish a round, so flow packet counters include the
    /// latest traffic (the userspace datapath updates them up to a round late).
    pub fn settle_stats(&self) -> Result<(), OvsError> {
        self.appctl(&["revalidator/wait"]).map(drop)
    }

    pub fn get_frags(&self, bridge: &str) -> Result<String, OvsError> {
        Ok(self.ofctl(&["get-frags", bridge], None)?.trim().to_string())
    }

    pub fn set_frags(&self, bridge: &str, mode: &str) -> Result<(), OvsError> {
        self.ofctl(&["set-frags", bridge, mode], None).map(drop)
    }
}

/// Bytes of arguments per ovs-vsctl call: well under Linux's 2 MiB argv limit, which 10,000
/// records in one call exceeded (found by the benchmark at 5,000 VMs x 2 NICs).
const ARGV_BUDGET: usize = 512 * 1024;

/// Groups whole operations into calls whose arguments stay within `budget` bytes (an operation
/// larger than the budget gets a call of its own).
fn pack(ops: Vec<Vec<String>>, budget: usize) -> Vec<Vec<Vec<String>>> {
    let mut calls: Vec<Vec<Vec<String>>> = Vec::new();
    let mut used = 0;
    for op in ops {
        let size: usize = op.iter().map(|a| a.len() + 1).sum();
        match calls.last_mut() {
            Some(call) if used + size <= budget => call.push(op),
            _ => {
                calls.push(vec![op]);
                used = 0;
            }
        }
        used += size;
    }
    calls
}

/// Which Port and Interface rows a query reads.
enum Scope<'a> {
    /// Ports and interfaces named so, and interfaces with one of these attached MACs.
    Some(&'a [&'a str], &'a [String]),
    All,
}

/// An argv cut to a readable length for one-line messages (the error keeps it whole).
fn short(argv: &str) -> String {
    const MAX: usize = 80;
    match argv.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &argv[..i]),
        None => argv.to_string(),
    }
}

/// Quotes a string as an OVSDB atom for ovs-vsctl (JSON string syntax).
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialise")
}

/// Rows of an `ovs-vsctl --format=json` table as column-name maps.
fn rows(table: &Value) -> Vec<BTreeMap<String, Value>> {
    let headings: Vec<&str> = table["headings"]
        .as_array()
        .map(|h| h.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    table["data"]
        .as_array()
        .map(|data| {
            data.iter()
                .filter_map(|row| row.as_array())
                .map(|row| {
                    headings
                        .iter()
                        .map(|h| h.to_string())
                        .zip(row.iter().cloned())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `["set", [...]]` or a single atom, as a list.
fn set_of(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) if a.first().and_then(|t| t.as_str()) == Some("set") => a
            .get(1)
            .and_then(|s| s.as_array())
            .cloned()
            .unwrap_or_default(),
        Some(Value::Array(a)) if a.first().and_then(|t| t.as_str()) == Some("uuid") => {
            vec![Value::Array(a.clone())]
        }
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        _ => Vec::new(),
    }
}

fn uuid_of(v: &Value) -> Option<String> {
    let a = v.as_array()?;
    (a.first()?.as_str()? == "uuid").then(|| a.get(1)?.as_str().map(str::to_string))?
}

fn map_of(v: Option<&Value>) -> BTreeMap<String, String> {
    let Some(Value::Array(a)) = v else {
        return BTreeMap::new();
    };
    a.get(1)
        .and_then(|pairs| pairs.as_array())
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    Some((
                        p.first()?.as_str()?.to_string(),
                        p.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_writes_are_packed_into_bounded_calls() {
        let op = |n: usize| vec!["--".to_string(), "x".repeat(n)];
        let calls = pack(vec![op(10), op(10), op(10), op(30)], 30);
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(
            sizes,
            vec![2, 1, 1],
            "whole operations, none split, each call within budget"
        );
        assert!(pack(Vec::new(), 30).is_empty());
    }

    #[test]
    fn parses_vsctl_json() {
        let t: Value = serde_json::from_str(r#"{"data":[["br0","secure",["set",["OpenFlow10","OpenFlow14"]],["map",[["vmguard-x","{\"a\":1}"]]],["set",[["uuid","54a8"]]]]],"headings":["name","fail_mode","protocols","external_ids","ports"]}"#).unwrap();
        let r = &rows(&t)[0];
        assert_eq!(r["fail_mode"], "secure");
        assert_eq!(set_of(r.get("protocols")).len(), 2);
        assert_eq!(map_of(r.get("external_ids"))["vmguard-x"], "{\"a\":1}");
        assert_eq!(uuid_of(&set_of(r.get("ports"))[0]).unwrap(), "54a8");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }
}
