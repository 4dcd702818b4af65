//! Every call of `ovs-vsctl`, `ovs-ofctl` and `ovs-appctl`, every OVSDB transaction and every
//! OpenFlow request vmguard sends itself ([`crate::openflow`]): the only place vmguard touches
//! the switch. Errors keep the argv, the exit status and OVS's stderr.
//!
//! Rows are read and records written as OVSDB transactions on ovsdb-server's socket (RFC 7047),
//! not with ovs-vsctl: ovs-vsctl fetches every Bridge, Port and Interface row before it runs a
//! command, which made each hook's cost grow with the number of ports (270 ms at 5,000).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use thiserror::Error;

use crate::flow::{DumpedFlow, FlowKey};
use crate::model::{OfPort, PortName};
use crate::openflow::Connection;

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
    #[error("OVSDB at {}: {what}: {problem}", .path.display())]
    Ovsdb {
        path: PathBuf,
        what: String,
        problem: String,
    },
    #[error(transparent)]
    OpenFlow(#[from] crate::openflow::OfError),
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
    pub ports: BTreeSet<String>,
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
        // vmguard's flows name ports by number: without --no-names every call would first fetch
        // all port names (80-110 ms at 5,000 ports).
        let mut all = vec!["-O", OPENFLOW, "--no-names", timeout.as_str()];
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
        let select = |table: &str, cond: Value, columns: &[&str]| json!({"op": "select", "table": table, "where": cond, "columns": columns});
        const PORT: [&str; 2] = ["_uuid", "name"];
        const IFACE: [&str; 3] = ["name", "ofport", "external_ids"];
        let mut ops = vec![select(
            "Bridge",
            json!([["name", "==", bridge]]),
            &[
                "fail_mode",
                "protocols",
                "external_ids",
                "ports",
                "datapath_type",
            ],
        )];
        // Which results hold Port rows; the Interface rows follow them.
        let ports_op = match scope {
            Scope::All => {
                ops.push(select("Port", json!([]), &PORT));
                ops.push(select("Interface", json!([]), &IFACE));
                1..2
            }
            Scope::Some(names, macs) => {
                // Ports by name, to tell which of them are on the bridge (its `ports` holds UUIDs).
                ops.extend(
                    names
                        .iter()
                        .map(|n| select("Port", json!([["name", "==", n]]), &PORT)),
                );
                ops.extend(
                    names
                        .iter()
                        .map(|n| select("Interface", json!([["name", "==", n]]), &IFACE)),
                );
                ops.extend(macs.iter().map(|m| {
                    let has_mac =
                        json!([["external_ids", "includes", ["map", [["attached-mac", m]]]]]);
                    select("Interface", has_mac, &IFACE)
                }));
                1..1 + names.len()
            }
        };
        let results = self.transact("reading Bridge, Port and Interface rows", ops)?;
        let bridge_rows = rows(&results[0]);
        let b = bridge_rows
            .first()
            .ok_or_else(|| OvsError::NoBridge(bridge.to_string()))?;
        let port_names: BTreeMap<String, String> = results[ports_op.clone()]
            .iter()
            .flat_map(rows)
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
        let mut seen = BTreeSet::new();
        let ifaces = results[ports_op.end..]
            .iter()
            .flat_map(rows)
            .map(|r| interface_row(&r))
            .filter(|row| seen.insert(row.name.clone()))
            .collect();
        Ok((bridge_row, ifaces))
    }

    /// One OVSDB transaction on ovsdb-server's socket (`db.sock` in the run directory, where
    /// ovs-vsctl finds it too): the result of each operation, in order. A failed operation fails
    /// the whole transaction, which OVSDB then does not commit.
    fn transact(&self, what: &str, ops: Vec<Value>) -> Result<Vec<Value>, OvsError> {
        let path = self.rundir().join("db.sock");
        let fail = |problem: String| OvsError::Ovsdb {
            path: path.clone(),
            what: what.to_string(),
            problem,
        };
        let io = |e: std::io::Error| fail(e.to_string());
        let count = ops.len();
        let mut params = vec![json!("Open_vSwitch")];
        params.extend(ops);
        let mut stream = UnixStream::connect(&path)
            .map_err(|e| {
                fail(format!(
                    "cannot connect: {e} (is ovsdb-server running? set ovs_rundir in the config or OVS_RUNDIR)"
                ))
            })?;
        stream.set_read_timeout(Some(OVSDB_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(OVSDB_TIMEOUT)).map_err(io)?;
        let request = json!({"method": "transact", "params": params, "id": 0});
        stream
            .write_all(request.to_string().as_bytes())
            .map_err(io)?;
        let mut reader = JsonFramer::default();
        while let Some(text) = reader.next(&mut stream).map_err(io)? {
            let mut message: Value = serde_json::from_slice(&text)
                .map_err(|e| fail(format!("unreadable reply: {e}")))?;
            if message["method"] == "echo" {
                let reply =
                    json!({"result": message["params"], "error": null, "id": message["id"]});
                stream.write_all(reply.to_string().as_bytes()).map_err(io)?;
                continue;
            }
            if message["id"] != 0 {
                continue;
            }
            if !message["error"].is_null() {
                return Err(fail(message["error"].to_string()));
            }
            let results = match message["result"].take() {
                Value::Array(results) => results,
                _ => Vec::new(),
            };
            if let Some(e) = results.iter().find(|r| r.get("error").is_some()) {
                let details = e["details"].as_str().unwrap_or_default();
                return Err(fail(format!("{} {details}", e["error"]).trim().to_string()));
            }
            if results.len() < count {
                return Err(fail(format!(
                    "{} results for {count} operations",
                    results.len()
                )));
            }
            return Ok(results);
        }
        Err(fail(
            "ovsdb-server closed the connection without a reply".into(),
        ))
    }

    /// The ofport of a port of the bridge (`LOCAL` for the bridge's own port).
    pub fn port_ofport(&self, name: &PortName) -> Result<Option<OfPort>, OvsError> {
        let op = json!({"op": "select", "table": "Interface",
                        "where": [["name", "==", name.as_str()]], "columns": ["ofport"]});
        let results = self.transact("reading an Interface's ofport", vec![op])?;
        Ok(rows(&results[0])
            .first()
            .and_then(|r| r.get("ofport"))
            .and_then(|v| v.as_u64())
            .and_then(|n| OfPort::new(n as u32).ok()))
    }

    /// Sets and removes Bridge external_ids in one OVSDB transaction. ovs-vswitchd does not
    /// read them, so nothing waits for it (with thousands of ports that wait took seconds).
    pub fn set_bridge_ids(
        &self,
        bridge: &str,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<(), OvsError> {
        if set.is_empty() && remove.is_empty() {
            return Ok(());
        }
        // A map "insert" leaves existing keys alone: delete every key first, then insert.
        let keys: Vec<&str> = set
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(remove.iter().map(String::as_str))
            .collect();
        let mut mutations = vec![json!(["external_ids", "delete", ["set", keys]])];
        if !set.is_empty() {
            let pairs: Vec<Value> = set.iter().map(|(k, v)| json!([k, v])).collect();
            mutations.push(json!(["external_ids", "insert", ["map", pairs]]));
        }
        let op = json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", bridge]],
                        "mutations": mutations});
        let results = self.transact("writing vmguard's records", vec![op])?;
        match results[0]["count"].as_u64() {
            Some(1) => Ok(()),
            _ => Err(OvsError::NoBridge(bridge.to_string())),
        }
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

    /// Port names by datapath port number (`ovs-appctl dpif/show`: `NAME OFPORT/DPPORT: …`):
    /// `ofproto/trace` gives datapath actions in datapath port numbers, which are neither
    /// ofports nor stable across an ovs-vswitchd restart.
    pub fn dp_port_names(&self) -> Result<BTreeMap<u32, String>, OvsError> {
        let out = self.appctl(&["dpif/show"])?;
        Ok(parse_dp_ports(&out))
    }

    /// Lets the datapath's revalidators finish a round, so flow packet counters include the
    /// latest traffic (the userspace datapath updates them up to a round late).
    pub fn settle_stats(&self) -> Result<(), OvsError> {
        self.appctl(&["revalidator/wait"]).map(drop)
    }

    /// An OpenFlow connection to `bridge`'s management socket (what `ovs-ofctl BRIDGE` uses).
    fn openflow(&self, bridge: &str) -> Result<Connection, OvsError> {
        let path = self.rundir().join(format!("{bridge}.mgmt"));
        Ok(Connection::open(&path)?)
    }

    /// The fragment mode, as `ovs-ofctl get-frags` names it.
    pub fn get_frags(&self, bridge: &str) -> Result<String, OvsError> {
        Ok(self.openflow(bridge)?.get_frags()?.to_string())
    }

    pub fn set_frags(&self, bridge: &str, mode: &str) -> Result<(), OvsError> {
        Ok(self.openflow(bridge)?.set_frags(mode)?)
    }

    /// How many flows of `bridge` have `cookie & mask == value & mask`.
    pub fn count_flows(&self, bridge: &str, value: u64, mask: u64) -> Result<u32, OvsError> {
        Ok(self.openflow(bridge)?.count_flows(value, mask)?)
    }

    /// How many flows of `bridge` have each of `cookies` (exactly; OVS's cookie index), in one
    /// round trip.
    pub fn count_cookies(&self, bridge: &str, cookies: &[u64]) -> Result<Vec<u32>, OvsError> {
        let selectors: Vec<(u64, u64)> = cookies.iter().map(|c| (*c, u64::MAX)).collect();
        Ok(self.openflow(bridge)?.count_flows_many(&selectors)?)
    }

    /// The fragment mode and how many flows have each of `cookies` (exactly), over one
    /// connection: the requests are pipelined, so the hook pays one round trip for them.
    pub fn frags_and_counts(
        &self,
        bridge: &str,
        cookies: &[u64],
    ) -> Result<(String, Vec<u32>), OvsError> {
        let selectors: Vec<(u64, u64)> = cookies.iter().map(|c| (*c, u64::MAX)).collect();
        let (mode, counts) = self.openflow(bridge)?.frags_and_counts(&selectors, true)?;
        Ok((mode.unwrap_or_default().to_string(), counts))
    }
}

/// Splits the byte stream of a JSON-RPC connection into its messages (concatenated JSON
/// values) by tracking brackets outside strings, so that each message is parsed once from a
/// slice: serde_json's reader-based parser goes byte by byte, and the bridge row of 5,000 VMs
/// is megabytes.
#[derive(Default)]
struct JsonFramer {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned, and the scanner's state there.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonFramer {
    /// The next whole message, or `None` at the end of the stream.
    fn next(&mut self, stream: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            while self.scanned < self.buf.len() {
                if self.escaped {
                    self.escaped = false;
                    self.scanned += 1;
                    continue;
                }
                if self.in_string {
                    // Jump to the string's next quote or backslash.
                    let rest = &self.buf[self.scanned..];
                    match rest.iter().position(|b| matches!(b, b'"' | b'\\')) {
                        None => self.scanned = self.buf.len(),
                        Some(p) => {
                            self.scanned += p + 1;
                            match rest[p] {
                                b'"' => self.in_string = false,
                                _ => self.escaped = true,
                            }
                        }
                    }
                    continue;
                }
                let b = self.buf[self.scanned];
                self.scanned += 1;
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            let rest = self.buf.split_off(self.scanned);
                            let message = std::mem::replace(&mut self.buf, rest);
                            self.scanned = 0;
                            return Ok(Some(message));
                        }
                    }
                    _ => {}
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn parse_dp_ports(dpif_show: &str) -> BTreeMap<u32, String> {
    dpif_show
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let (_, dp) = words.next()?.strip_suffix(':')?.split_once('/')?;
            Some((dp.parse().ok()?, name.to_string()))
        })
        .collect()
}

/// Datapath actions with each output port number replaced by its port's name (`2,3` →
/// `upstream,vnet5`); everything inside parentheses is left alone.
pub fn name_dp_ports(actions: &str, names: &BTreeMap<u32, String>) -> String {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let bytes = actions.as_bytes();
    for i in 0..=bytes.len() {
        match bytes.get(i) {
            Some(b'(') => depth += 1,
            Some(b')') => depth = depth.saturating_sub(1),
            Some(b',') if depth > 0 => {}
            Some(b',') | None => {
                let tok = &actions[start..i];
                let named = tok.parse::<u32>().ok().and_then(|n| names.get(&n));
                out.push(named.map_or(tok, String::as_str).to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.join(",")
}

/// How long vmguard waits for ovsdb-server, as for the tools (`--timeout=10`).
const OVSDB_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The rows of a `select` result as column-name maps.
fn rows(result: &Value) -> Vec<BTreeMap<String, Value>> {
    result["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r.as_object())
                .map(|r| r.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .collect()
        })
        .unwrap_or_default()
}

fn interface_row(r: &BTreeMap<String, Value>) -> InterfaceRow {
    let external_ids = map_of(r.get("external_ids"));
    InterfaceRow {
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
    }
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

    /// Yields `data` in pieces of `size` bytes, as a socket might.
    struct Trickle<'a> {
        data: &'a [u8],
        size: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.size.min(self.data.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn frames_concatenated_messages_split_anywhere() {
        // Brackets and escaped quotes and backslashes inside strings, whitespace between messages.
        let messages = [
            r#"{"id":"echo","method":"echo","params":[]}"#,
            r#"{"id":0,"result":[{"rows":[{"external_ids":["map",[["k","{\"a\":\"}]\\\"\"}"]]]}]}],"error":null}"#,
            r#" [1,{"s":"\\"}]"#,
        ];
        for m in messages {
            serde_json::from_str::<Value>(m).expect("test message is JSON");
        }
        let stream = messages.concat();
        for size in [1, 2, 3, 7, 64, stream.len()] {
            let mut t = Trickle {
                data: stream.as_bytes(),
                size,
            };
            let mut framer = JsonFramer::default();
            let mut got = Vec::new();
            while let Some(m) = framer.next(&mut t).unwrap() {
                got.push(String::from_utf8(m).unwrap());
            }
            assert_eq!(got, messages, "read in pieces of {size}");
        }
    }

    #[test]
    fn names_datapath_ports() {
        let show = "dummy@ovs-dummy: hit:0 missed:0\n  vm-switch:\n    upstream 1/2: (dummy)\n    vm-switch 65534/1: (dummy-internal)\n    vnet5 2/3: (dummy)\n";
        let names = parse_dp_ports(show);
        assert_eq!(names.len(), 3);
        assert_eq!(name_dp_ports("2", &names), "upstream");
        assert_eq!(name_dp_ports("3,2", &names), "vnet5,upstream");
        assert_eq!(name_dp_ports("drop", &names), "drop");
        assert_eq!(
            name_dp_ports("set(eth(src=1,dst=2)),3,9", &names),
            "set(eth(src=1,dst=2)),vnet5,9"
        );
    }

    #[test]
    fn parses_ovsdb_rows() {
        let t: Value = serde_json::from_str(r#"{"rows":[{"name":"br0","fail_mode":"secure","protocols":["set",["OpenFlow10","OpenFlow14"]],"external_ids":["map",[["vmguard-x","{\"a\":1}"]]],"ports":["set",[["uuid","54a8"]]]}]}"#).unwrap();
        let r = &rows(&t)[0];
        assert_eq!(r["fail_mode"], "secure");
        assert_eq!(set_of(r.get("protocols")).len(), 2);
        assert_eq!(map_of(r.get("external_ids"))["vmguard-x"], "{\"a\":1}");
        assert_eq!(uuid_of(&set_of(r.get("ports"))[0]).unwrap(), "54a8");
    }
}
