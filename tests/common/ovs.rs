//! A private, throwaway Open vSwitch (ovsdb-server + userspace ovs-vswitchd
//! with dummy ports) per test.
//!
//! * All state lives in a fresh temporary directory, and every command gets
//!   `OVS_RUNDIR`/`OVS_DBDIR`/`OVS_LOGDIR`/`OVS_SYSCONFDIR` pointing at it, so
//!   `ovs-vsctl`, `ovs-ofctl BR` and `ovs-appctl` talk to this instance only.
//! * ovs-vswitchd runs in its own anonymous network namespace
//!   (`unshare --net`): two userspace datapaths in one namespace fight over
//!   the `ovs-netdev` tap device, and cargo runs tests in parallel.
//! * `Drop` stops exactly the two daemons this instance started (pids from its
//!   own pidfiles, cross-checked against `/proc/PID/cmdline`) and removes the
//!   directory. Set `VMGUARD_KEEP_OVS=1` to keep the directory for debugging.
//!
//! # How frame delivery is observed (see [`Ovs::send`])
//!
//! `send` diffs the per-port transmit counters of `ovs-ofctl dump-ports BR`
//! taken before and after `ovs-appctl netdev-dummy/receive PORT HEX`.
//!
//! * Why those counters: `dump-ports` reads the netdev's own counters, which
//!   netdev-dummy bumps in its send function, i.e. at the moment the frame
//!   is transmitted. The OVSDB `Interface:statistics` column is NOT usable:
//!   ovs-vswitchd copies counters there only every 5 s (measured: still all
//!   zero right after delivery, correct ~5 s later).
//! * Why no sleep is needed: `netdev-dummy/receive` only *queues* the frame.
//!   ovs-vswitchd's main thread serves appctl and OpenFlow requests and also
//!   polls the (non-PMD) `dummy` ports and does upcall, translation and
//!   output for them inline, in one loop. The queued frame is handled in the
//!   next loop iteration, before any request that connects after the
//!   `receive` reply was sent. So the first `dump-ports` after the `receive`
//!   already counts every output. Measured: 500 receive + dump-ports pairs
//!   in a row, 0 misses. As a safety net, `send` reads again until two
//!   consecutive reads agree (catches frames OVS re-queues for one more
//!   loop iteration); this costs one extra `ovs-ofctl` run (~10 ms).
//! * Before injecting, `send` runs `ovs-appctl revalidator/purge`, so no
//!   datapath flow cached from an earlier frame (made under an older
//!   OpenFlow table) can handle this one: each frame is translated against
//!   the current tables. In 960 alternating add-flow/del-flows + send
//!   rounds without the purge no stale result showed up, so this is
//!   defence in depth (~5 ms).
//! * The bridge's LOCAL port is a port like the others (NORMAL floods to
//!   it); it is reported under the bridge's name, e.g. `br0`.
//!
//! Frame contents ([`Ovs::send_capture`]) come from `options:tx_pcap=FILE`,
//! which [`Ovs::add_port`] and [`Ovs::add_bridge`] set on every port:
//! netdev-dummy appends and `fflush`es each frame in the same send call that
//! bumps the counter, and `send_capture` checks both agree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::pcap;

const PRECONDITIONS: &str = "these tests need root and Open vSwitch \
     (apt-get install openvswitch-switch); see README";
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// `--timeout` given to every ovs-vsctl/ovs-ofctl/ovs-appctl call, so a wedged
/// daemon makes a test fail instead of hang.
const CMD_TIMEOUT_SECS: u32 = 20;
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

const VSWITCHD: &str = "ovs-vswitchd";
const OVSDB_SERVER: &str = "ovsdb-server";
/// Programs the harness itself runs; all must be installed.
const REQUIRED: &[&str] = &[
    "ovsdb-tool",
    OVSDB_SERVER,
    VSWITCHD,
    "ovs-vsctl",
    "ovs-ofctl",
    "ovs-appctl",
    "unshare",
    "kill",
];

/// One private Open vSwitch instance. See the module documentation.
pub struct Ovs {
    /// `None` only while dropping with `VMGUARD_KEEP_OVS` set.
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Ovs {
    /// Starts ovsdb-server and ovs-vswitchd in a new temporary directory and
    /// waits until both answer. Panics (never skips) if the preconditions are
    /// not met or anything fails.
    pub fn start() -> Ovs {
        check_preconditions();
        let dir = make_tempdir();
        let path = dir.path().to_path_buf();
        // From here on, a panic drops `ovs`, which stops whatever was started.
        let ovs = Ovs {
            dir: Some(dir),
            path,
        };
        let p = ovs.path.clone();
        let s = |name: &str| p.join(name).display().to_string();

        ovs.run_ok(
            "ovsdb-tool",
            &["create", &s("conf.db"), SCHEMA],
            "creating the database",
        );
        let mut cmd = ovs.command(OVSDB_SERVER);
        cmd.args([
            "--detach",
            "--no-chdir",
            &format!("--pidfile={}", s("ovsdb-server.pid")),
            &format!("--log-file={}", s("ovsdb-server.log")),
            &format!("--remote=punix:{}", s("db.sock")),
            &s("conf.db"),
        ]);
        ovs.launch(cmd, OVSDB_SERVER);
        ovs.wait_for(OVSDB_SERVER, || {
            ovs.try_vsctl(&["--no-wait", "show"]).map(drop)
        });
        ovs.vsctl(&["--no-wait", "init"]);
        ovs.start_vswitchd();
        ovs
    }

    /// The instance's directory: OVS_RUNDIR (db.sock, `BR.mgmt`, `*.ctl`),
    /// OVS_DBDIR, OVS_LOGDIR (`*.log`, plus `*.stderr`) and OVS_SYSCONFDIR.
    pub fn rundir(&self) -> &Path {
        &self.path
    }

    /// The environment that points OVS tools (and vmguard) at this instance.
    pub fn env(&self) -> Vec<(String, String)> {
        let dir = self.path.display().to_string();
        ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"]
            .iter()
            .map(|k| (k.to_string(), dir.clone()))
            .collect()
    }

    /// A `Command` for `prog` with [`Ovs::env`] set. OVS programs are looked up
    /// in PATH and the sbin directories (cargo's PATH may lack /usr/sbin).
    pub fn command(&self, prog: &str) -> Command {
        let mut cmd = Command::new(find_program(prog).unwrap_or_else(|| PathBuf::from(prog)));
        cmd.envs(self.env());
        cmd
    }

    /// Runs `ovs-vsctl --timeout=20 ARGS` (which waits for ovs-vswitchd to
    /// apply changes unless `--no-wait` is passed); returns stdout without
    /// trailing whitespace; panics with argv and stderr on failure.
    pub fn vsctl(&self, args: &[&str]) -> String {
        self.try_vsctl(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Ovs::vsctl`], `Err` holds argv, exit status and stderr.
    pub fn try_vsctl(&self, args: &[&str]) -> Result<String, String> {
        self.run_timed("ovs-vsctl", args)
    }

    /// Runs `ovs-ofctl --timeout=20 ARGS`, e.g. `&["add-flow", "br0", "actions=NORMAL"]`.
    pub fn ofctl(&self, args: &[&str]) -> String {
        self.try_ofctl(args).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_ofctl(&self, args: &[&str]) -> Result<String, String> {
        self.run_timed("ovs-ofctl", args)
    }

    /// Runs `ovs-appctl --timeout=20 ARGS` against this instance's
    /// ovs-vswitchd (default target, found through OVS_RUNDIR); pass
    /// `-t`/`--target` first to address something else.
    pub fn appctl(&self, args: &[&str]) -> String {
        self.try_appctl(args).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_appctl(&self, args: &[&str]) -> Result<String, String> {
        self.run_timed("ovs-appctl", args)
    }

    /// pid of the running ovs-vswitchd (changes with [`Ovs::restart_vswitchd`]).
    pub fn vswitchd_pid(&self) -> u32 {
        self.read_pid(VSWITCHD)
            .unwrap_or_else(|| panic!("no ovs-vswitchd pidfile in {}", self.path.display()))
    }

    pub fn ovsdb_server_pid(&self) -> u32 {
        self.read_pid(OVSDB_SERVER)
            .unwrap_or_else(|| panic!("no ovsdb-server pidfile in {}", self.path.display()))
    }

    /// Adds bridge `name` with `datapath_type=dummy`. fail_mode is left unset
    /// (the code under test sets it). The bridge's LOCAL port (interface
    /// `name`) gets a tx_pcap too, so it shows up in `send`/`send_capture`
    /// under the bridge's name.
    pub fn add_bridge(&self, name: &str) {
        let pcap = self.pcap_opt(name);
        self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "Bridge",
            name,
            "datapath_type=dummy",
            "--",
            "set",
            "Interface",
            name,
            &pcap,
        ]);
    }

    /// Adds a `type=dummy` port `name` to `br` with `ofport_request=ofport`
    /// (checked) and a tx_pcap capture file.
    pub fn add_port(&self, br: &str, name: &str, ofport: u16) {
        let pcap = self.pcap_opt(name);
        let request = format!("ofport_request={ofport}");
        self.vsctl(&[
            "add-port",
            br,
            name,
            "--",
            "set",
            "Interface",
            name,
            "type=dummy",
            &request,
            &pcap,
        ]);
        let got = self.vsctl(&["get", "Interface", name, "ofport"]);
        assert_eq!(
            got,
            ofport.to_string(),
            "port {name} on {br}: asked for ofport {ofport}, OVS assigned {got}"
        );
    }

    /// Sets `Interface:external_ids:KEY=VALUE` (VALUE is quoted for ovs-vsctl).
    pub fn set_iface_external_id(&self, name: &str, key: &str, value: &str) {
        let quoted = serde_json::to_string(value).expect("string to JSON");
        self.vsctl(&[
            "set",
            "Interface",
            name,
            &format!("external_ids:{key}={quoted}"),
        ]);
    }

    pub fn del_port(&self, br: &str, name: &str) {
        self.vsctl(&["del-port", br, name]);
    }

    /// Queues one frame (hex, whitespace/`:`/`.` ignored) as received on dummy
    /// port `port`. Raw: no purge, no waiting; see [`Ovs::send`].
    pub fn inject(&self, port: &str, frame_hex: &str) {
        let hex = normalize_hex(frame_hex);
        self.appctl(&["netdev-dummy/receive", port, &hex]);
    }

    /// Transmit-packet counter of every port of `br`, by interface name (the
    /// LOCAL port under the bridge's own name), read from the netdevs via
    /// `ovs-ofctl dump-ports` (current, unlike OVSDB's `statistics`).
    pub fn tx_packets(&self, br: &str) -> BTreeMap<String, u64> {
        let out = self.ofctl(&["--names", "dump-ports", br]);
        parse_dump_ports_tx(&out, br).unwrap_or_else(|e| panic!("{e}\nin:\n{out}"))
    }

    /// Injects `frame_hex` at `port` of `br` and returns exactly the set of
    /// ports of `br` it (or whatever OVS made of it) was transmitted on,
    /// including `in_port` (e.g. for a generated ARP reply) and the bridge's
    /// LOCAL port, named like the bridge. Empty set = dropped.
    /// See the module documentation for why this is deterministic.
    pub fn send(&self, br: &str, port: &str, frame_hex: &str) -> BTreeSet<String> {
        let (before, after) = self.inject_and_settle(br, port, frame_hex);
        after
            .iter()
            .filter(|(name, n)| **n > before.get(*name).copied().unwrap_or(0))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Like [`Ovs::send`], but returns for every port that transmitted the
    /// frames it transmitted (lowercase hex, in order), read from the ports'
    /// tx_pcap files. Panics if a transmitting port has no capture (ports
    /// must be created with [`Ovs::add_port`]/[`Ovs::add_bridge`]) or if the
    /// capture disagrees with the counters.
    pub fn send_capture(
        &self,
        br: &str,
        port: &str,
        frame_hex: &str,
    ) -> BTreeMap<String, Vec<String>> {
        let ports: Vec<String> = self.tx_packets(br).into_keys().collect();
        let mut seen = BTreeMap::new();
        for name in &ports {
            seen.insert(name.clone(), self.captured(name).len());
        }
        let (before, after) = self.inject_and_settle(br, port, frame_hex);
        let mut out = BTreeMap::new();
        for (name, n_after) in after {
            let n_before = before.get(&name).copied().unwrap_or(0);
            if n_after <= n_before {
                continue;
            }
            let sent = (n_after - n_before) as usize;
            let pcap_path = self.pcap_path(&name);
            assert!(
                pcap_path.exists(),
                "port {name} transmitted {sent} frame(s) but has no capture file {} \
                 (create ports with Ovs::add_port / Ovs::add_bridge)",
                pcap_path.display()
            );
            let frames = self.captured(&name);
            let skip = seen.get(&name).copied().unwrap_or(0);
            let new: Vec<String> = frames.into_iter().skip(skip).collect();
            assert_eq!(
                new.len(),
                sent,
                "port {name}: tx counter says {sent} frame(s), capture has {new:?}"
            );
            out.insert(name, new);
        }
        out
    }

    /// `ovs-appctl ofproto/trace BR in_port=N HEX`: stdout (see [`datapath_actions`]).
    pub fn trace(&self, br: &str, in_port: u16, frame_hex: &str) -> String {
        let hex = normalize_hex(frame_hex);
        self.appctl(&["ofproto/trace", br, &format!("in_port={in_port}"), &hex])
    }

    /// Stops only this instance's ovs-vswitchd (by pid) and starts it again
    /// the same way, in a new network namespace. Like a real restart, this
    /// loses everything not in OVSDB: OpenFlow flows, groups, meters, the
    /// fragment handling mode (back to `normal`), learned MACs. Bridges,
    /// ports and their ofports come back from the database.
    pub fn restart_vswitchd(&self) {
        if let Err(e) = self.stop_daemon(VSWITCHD) {
            panic!("restart_vswitchd: {e}");
        }
        self.start_vswitchd();
    }

    // ---- internals -------------------------------------------------------

    fn start_vswitchd(&self) {
        let s = |name: &str| self.path.join(name).display().to_string();
        let vswitchd = find_program(VSWITCHD).expect("checked in check_preconditions");
        let mut cmd = self.command("unshare");
        cmd.arg("--net").arg(vswitchd).args([
            "--enable-dummy",
            "--disable-system",
            "--disable-system-route",
            "--detach",
            "--no-chdir",
            &format!("--pidfile={}", s("ovs-vswitchd.pid")),
            &format!("--log-file={}", s("ovs-vswitchd.log")),
        ]);
        self.launch(cmd, VSWITCHD);
        // `--detach` returns once the daemon has applied the initial config;
        // check that it answers on its control socket, and that OVSDB does.
        self.wait_for(VSWITCHD, || {
            let pid = self
                .read_pid(VSWITCHD)
                .ok_or_else(|| "no pidfile yet".to_string())?;
            let ctl = self.path.join(format!("{VSWITCHD}.{pid}.ctl"));
            self.try_appctl(&["-t", &ctl.display().to_string(), "version"])?;
            self.try_vsctl(&["show"]).map(drop)
        });
    }

    /// Runs a daemon's launcher (`--detach`: it exits once the daemon is up),
    /// bounded by START_TIMEOUT. The daemon's stderr (a few INFO lines before
    /// it detaches) goes to DIR/NAME.stderr, not to the test output.
    fn launch(&self, mut cmd: Command, name: &str) {
        let err_path = self.path.join(format!("{name}.stderr"));
        let err = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&err_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", err_path.display()));
        let out = err.try_clone().expect("dup stderr file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => break,
                Ok(Some(status)) => panic!(
                    "{name} failed to start ({status}): {cmd:?}\n{}",
                    self.log_tail()
                ),
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{name} did not detach within {START_TIMEOUT:?}: {cmd:?}\n{}",
                        self.log_tail()
                    );
                }
                Ok(None) => sleep(Duration::from_millis(5)),
                Err(e) => panic!("waiting for {name} launcher: {e}"),
            }
        }
    }

    /// Polls `probe` until it succeeds; panics with the last error and the
    /// log tails after START_TIMEOUT.
    fn wait_for(&self, what: &str, probe: impl Fn() -> Result<(), String>) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match probe() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!(
                    "{what} in {} not ready after {START_TIMEOUT:?}: {e}\n{}",
                    self.path.display(),
                    self.log_tail()
                ),
                Err(_) => sleep(Duration::from_millis(10)),
            }
        }
    }

    fn read_pid(&self, daemon: &str) -> Option<u32> {
        let text = fs::read_to_string(self.path.join(format!("{daemon}.pid"))).ok()?;
        text.trim().parse().ok()
    }

    /// Stops `daemon` if it runs: SIGTERM to the pid from our pidfile (after
    /// checking that pid really is our daemon), then SIGKILL after
    /// STOP_TIMEOUT; waits until it is gone.
    fn stop_daemon(&self, daemon: &str) -> Result<(), String> {
        let Some(pid) = self.read_pid(daemon) else {
            return Ok(()); // never started (or start failed before the pidfile)
        };
        if !is_alive(pid) {
            return Ok(());
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let ours = format!(
            "--pidfile={}",
            self.path.join(format!("{daemon}.pid")).display()
        );
        if !cmdline.contains(daemon) || !cmdline.contains(&ours) {
            return Err(format!(
                "pid {pid} from our {daemon} pidfile is not our daemon \
                 (cmdline {cmdline:?}); not touching it"
            ));
        }
        for (signal, wait) in [("-TERM", STOP_TIMEOUT), ("-KILL", STOP_TIMEOUT)] {
            let _ = Command::new(find_program("kill").unwrap_or_else(|| "kill".into()))
                .args([signal, &pid.to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                if !is_alive(pid) {
                    return Ok(());
                }
                sleep(Duration::from_millis(2));
            }
        }
        Err(format!("{daemon} (pid {pid}) survived SIGTERM and SIGKILL"))
    }

    fn run(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let out = self
            .command(prog)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {prog}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(format!(
                "`{prog} {}` failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    /// `run` with `--timeout=CMD_TIMEOUT_SECS` before `args`.
    fn run_timed(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let timeout = format!("--timeout={CMD_TIMEOUT_SECS}");
        let mut argv = vec![timeout.as_str()];
        argv.extend_from_slice(args);
        self.run(prog, &argv)
    }

    fn run_ok(&self, prog: &str, args: &[&str], what: &str) {
        if let Err(e) = self.run(prog, args) {
            panic!("{what}: {e}");
        }
    }

    /// purge datapath flows; counters; inject; counters until stable.
    fn inject_and_settle(
        &self,
        br: &str,
        port: &str,
        frame_hex: &str,
    ) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        self.appctl(&["revalidator/purge"]);
        let before = self.tx_packets(br);
        assert!(
            before.contains_key(port),
            "send: {port} is not a port of {br} (ports: {:?})",
            before.keys().collect::<Vec<_>>()
        );
        self.inject(port, frame_hex);
        let mut last = self.tx_packets(br);
        for _ in 0..100 {
            let now = self.tx_packets(br);
            if now == last {
                for (name, n) in &now {
                    let was = before.get(name).copied().unwrap_or(0);
                    assert!(
                        *n >= was,
                        "tx counter of {name} went down ({was} -> {n}): \
                         was ovs-vswitchd restarted during send?"
                    );
                }
                return (before, now);
            }
            last = now;
            sleep(Duration::from_millis(5));
        }
        panic!("tx counters of {br} keep changing after injecting at {port}: {last:?}");
    }

    fn pcap_path(&self, iface: &str) -> PathBuf {
        self.path.join(format!("{iface}.tx.pcap"))
    }

    fn pcap_opt(&self, iface: &str) -> String {
        let path = serde_json::to_string(&self.pcap_path(iface).display().to_string())
            .expect("string to JSON");
        format!("options:tx_pcap={path}")
    }

    fn captured(&self, iface: &str) -> Vec<String> {
        pcap::read_frames_hex(&self.pcap_path(iface)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn log_tail(&self) -> String {
        let mut s = String::new();
        for f in [
            "ovsdb-server.stderr",
            "ovsdb-server.log",
            "ovs-vswitchd.stderr",
            "ovs-vswitchd.log",
        ] {
            let p = self.path.join(f);
            let text = fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            s.push_str(&format!(
                "--- tail of {}:\n{}\n",
                p.display(),
                tail.join("\n")
            ));
        }
        s
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        // Never panic here (it may run during a panic): report and go on.
        for daemon in [VSWITCHD, OVSDB_SERVER] {
            if let Err(e) = self.stop_daemon(daemon) {
                eprintln!("vmguard test harness: {e}");
            }
        }
        if std::env::var_os("VMGUARD_KEEP_OVS").is_some_and(|v| !v.is_empty() && v != "0") {
            if let Some(dir) = self.dir.take() {
                eprintln!("vmguard test harness: keeping {}", dir.keep().display());
            }
        }
        // Otherwise `self.dir` (a TempDir) removes the directory.
    }
}

/// The actions of the first `Datapath actions:` line of an `ofproto/trace`
/// output (e.g. `drop`, `2,3`, `100,2,3`; note these are datapath port
/// numbers, not OpenFlow ones). With recirculation (ct, ...) later stages
/// have further lines; look at the full trace for those. Panics if absent.
pub fn datapath_actions(trace_out: &str) -> String {
    trace_out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Datapath actions:"))
        .map(|a| a.trim().to_string())
        .unwrap_or_else(|| panic!("no `Datapath actions:` line in trace:\n{trace_out}"))
}

/// Parses `ovs-ofctl --names dump-ports BR` (OpenFlow 1.0 format):
/// `  port  p1: rx pkts=1, ...` followed by `           tx pkts=0, ...`.
fn parse_dump_ports_tx(out: &str, br: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut map = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("port ") {
            let (name, _) = rest
                .split_once(": rx ")
                .ok_or_else(|| format!("unexpected dump-ports line {line:?}"))?;
            let name = name.trim().trim_matches('"');
            current = Some(if name == "LOCAL" {
                br.to_string()
            } else {
                name.to_string()
            });
        } else if let Some(rest) = t.strip_prefix("tx pkts=") {
            let name = current
                .take()
                .ok_or_else(|| format!("tx line without port: {line:?}"))?;
            let n = rest.split(',').next().unwrap_or("");
            let n = n.parse().unwrap_or(0); // "?" = not supported
            map.insert(name, n);
        }
    }
    Ok(map)
}

fn normalize_hex(frame_hex: &str) -> String {
    let hex: String = frame_hex
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':' && *c != '.')
        .collect::<String>()
        .to_ascii_lowercase();
    assert!(
        hex.len().is_multiple_of(2) && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "not a hex frame: {frame_hex:?}"
    );
    assert!(
        hex.len() >= 28,
        "frame shorter than an Ethernet header: {frame_hex:?}"
    );
    hex
}

fn check_preconditions() {
    let euid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    if euid != "0" {
        panic!("{PRECONDITIONS} (not running as root: euid {euid:?})");
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|p| find_program(p).is_none())
        .collect();
    if !missing.is_empty() {
        panic!("{PRECONDITIONS} (missing programs: {})", missing.join(", "));
    }
    if !Path::new(SCHEMA).exists() {
        panic!("{PRECONDITIONS} (missing {SCHEMA})");
    }
}

fn find_program(prog: &str) -> Option<PathBuf> {
    if prog.contains('/') {
        return Some(PathBuf::from(prog));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// The socket paths (`DIR/ovs-vswitchd.PID.ctl`) must stay below the
/// 108-byte sun_path limit, so fall back to /tmp if TMPDIR is long.
fn make_tempdir() -> tempfile::TempDir {
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 48 {
        base = PathBuf::from("/tmp");
    }
    tempfile::Builder::new()
        .prefix("vmguard-ovs.")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("creating a temporary directory in {}: {e}", base.display()))
}

/// Alive = /proc entry exists and is not a zombie. The detached daemons are
/// re-parented to init; if init does not reap (some containers), they stay
/// zombies after exiting, which counts as stopped.
fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => match stat.rsplit_once(')') {
            Some((_, rest)) => !matches!(rest.trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
    }
}
