//! The test's private hypervisor host: Open vSwitch, virtlogd and libvirtd in their own network
//! and mount namespaces, and a second network namespace playing the gateway.
//!
//! Nothing of the machine's is touched: the namespaces are pinned by two `sleep` processes this
//! test starts (`unshare`), every command enters them with `nsenter`, and in the private mount
//! namespace `/run` is a fresh tmpfs, `/sys` a fresh sysfs (this netns's devices, no cgroups), and
//! `/etc`, `/var/lib/libvirt`, `/var/log/libvirt`, `/var/cache/libvirt` are overlays whose
//! writes land in the test's temp dir: `/etc/libvirt/hooks`, `/etc/vmguard/config.toml` and
//! OVS's default `/var/run/openvswitch` are private, so the hook needs no environment. On drop,
//! every process left in the two namespaces (all started by this test) is stopped by pid.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// Where `scripts/deps/libvirt.sh` leaves the guest kernel, its modules and a static busybox.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("VMGUARD_E2E_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/vmguard-e2e"), PathBuf::from)
}

/// The PATH of every process started in the sandbox (libvirtd hands it on to the hook).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// OVS's compiled-in run directory: private in the sandbox, so every OVS client finds it.
pub const OVS_RUNDIR: &str = "/var/run/openvswitch";
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Fails, saying what is missing, unless this is root with everything the test needs.
pub fn preflight() -> Result<()> {
    let mut missing = Vec::new();
    let status = fs::read_to_string("/proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1));
    if euid != Some("0") {
        missing.push("root (namespaces, OVS, libvirtd)".to_string());
    }
    for tool in [
        "unshare",
        "nsenter",
        "ip",
        "mount",
        "ovsdb-tool",
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-ofctl",
        "libvirtd",
        "virtlogd",
        "virsh",
        "qemu-system-x86_64",
    ] {
        if !PATH.split(':').any(|d| Path::new(d).join(tool).is_file()) {
            missing.push(format!("command {tool}"));
        }
    }
    let cache = cache_dir();
    for f in ["vmlinuz", "busybox", "modules/virtio_net.ko"] {
        if !cache.join(f).is_file() {
            missing.push(cache.join(f).display().to_string());
        }
    }
    for d in [
        "/etc/libvirt",
        "/var/lib/libvirt",
        "/var/log/libvirt",
        "/var/cache/libvirt",
    ] {
        if !Path::new(d).is_dir() {
            missing.push(format!("directory {d} (libvirt-daemon-system)"));
        }
    }
    if !missing.is_empty() {
        bail!(
            "the libvirt end-to-end test cannot run here: missing {}. As root, run \
             `bash scripts/deps/libvirt.sh` (installs libvirt, qemu-system-x86 and unpacks a \
             guest kernel and busybox into {}).",
            missing.join(", "),
            cache.display()
        );
    }
    Ok(())
}

/// Runs `cmd` to its end within `timeout` (else kills it), capturing stdout and stderr.
pub fn output(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let desc = describe(cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{desc}`"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(timeout) {
        Ok(out) => Ok(out.with_context(|| format!("`{desc}` failed"))?),
        Err(_) => {
            signal(pid, "KILL");
            bail!("`{desc}` did not finish within {timeout:?}")
        }
    }
}

/// Like [`output`], but a non-zero exit is an error carrying stderr; returns stdout.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    let out = output(cmd, CMD_TIMEOUT)?;
    ensure!(
        out.status.success(),
        "`{}` failed ({}): {}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Sends a signal to a process this test started (`kill -SIG PID`); a gone process is fine.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Polls `check` every 100 ms until it returns true, or fails after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The last `n` lines of a file ("" if it does not exist).
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A long-running process of the sandbox, started in the foreground so its pid is known.
struct Daemon {
    name: &'static str,
    child: Child,
}

/// The private host. See the module doc.
pub struct Sandbox {
    /// The temp dir: overlay upper dirs, OVS database, logs, guest images and consoles.
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    host: Child,
    peer: Child,
    daemons: Vec<Daemon>,
}

impl Sandbox {
    /// Creates the namespaces and the private mounts. Set VMGUARD_E2E_KEEP=1 to keep the temp
    /// dir (logs, consoles) after the test.
    pub fn new() -> Result<Sandbox> {
        // Short path: QEMU's console sockets live here (unix socket paths max 107 bytes).
        let tmp = tempfile::Builder::new()
            .prefix("vge2e.")
            .tempdir_in("/tmp")?;
        let dir = tmp.path().to_path_buf();
        let keep = std::env::var_os("VMGUARD_E2E_KEEP").is_some();
        let pin = |args: &[&str]| {
            Command::new("unshare")
                .args(args)
                .args(["sleep", "infinity"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start `unshare … sleep infinity`")
        };
        let host = pin(&["--mount", "--net", "--propagation", "private"])?;
        let peer = match pin(&["--net"]) {
            Ok(p) => p,
            Err(e) => {
                let mut host = host;
                let _ = host.kill();
                let _ = host.wait();
                return Err(e);
            }
        };
        let sb = Sandbox {
            dir,
            _tmp: if keep {
                drop(tmp.keep());
                None
            } else {
                Some(tmp)
            },
            host,
            peer,
            daemons: Vec::new(),
        };
        let own_net = fs::read_link("/proc/self/ns/net")?;
        for pid in [sb.host.id(), sb.peer.id()] {
            wait_until("the namespaces to exist", Duration::from_secs(10), || {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
                    && fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|n| n != own_net)
            })?;
        }
        // Never mount over the machine's /run, /sys or /etc.
        let own_mnt = fs::read_link("/proc/self/ns/mnt")?;
        ensure!(
            fs::read_link(format!("/proc/{}/ns/mnt", sb.host.id()))? != own_mnt,
            "`unshare --mount` gave no private mount namespace"
        );
        sb.mount_private()?;
        Ok(sb)
    }

    fn mount_private(&self) -> Result<()> {
        stdout(
            self.host_cmd("mount")
                .args(["-t", "tmpfs", "tmpfs", "/run"]),
        )?;
        stdout(self.host_cmd("umount").args(["--lazy", "/sys"]))?;
        stdout(
            self.host_cmd("mount")
                .args(["-t", "sysfs", "sysfs", "/sys"]),
        )?;
        for lower in [
            "/etc",
            "/var/lib/libvirt",
            "/var/log/libvirt",
            "/var/cache/libvirt",
        ] {
            let base = self
                .dir
                .join("overlay")
                .join(lower.trim_start_matches('/').replace('/', "_"));
            let (upper, work) = (base.join("upper"), base.join("work"));
            fs::create_dir_all(&upper)?;
            fs::create_dir_all(&work)?;
            let opts = format!(
                "lowerdir={lower},upperdir={},workdir={}",
                upper.display(),
                work.display()
            );
            stdout(
                self.host_cmd("mount")
                    .args(["-t", "overlay", "overlay", "-o", &opts, lower]),
            )?;
        }
        Ok(())
    }

    /// A command that runs in the private host's namespaces with a service's bare environment.
    pub fn host_cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.env_clear()
            .env("PATH", PATH)
            .env("HOME", "/root")
            .env("LC_ALL", "C")
            .arg(format!("--target={}", self.host.id()))
            .args(["--mount", "--net", "--", program]);
        cmd
    }

    /// A command that runs in the gateway's network namespace.
    pub fn peer_cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.env_clear()
            .env("PATH", PATH)
            .arg(format!("--target={}", self.peer.id()))
            .args(["--net", "--", program]);
        cmd
    }

    pub fn peer_pid(&self) -> u32 {
        self.peer.id()
    }

    /// `path` as seen inside the private mount namespace, reachable from the test through
    /// `/proc/PID/root`. An absolute symlink on the way would resolve in the test's own mount
    /// namespace (the machine's!), so the one such link used here, /var/run, is resolved first.
    pub fn inside(&self, path: &str) -> PathBuf {
        let path = match path.strip_prefix("/var/run/") {
            Some(rest) => format!("run/{rest}"),
            None => path.trim_start_matches('/').to_string(),
        };
        Path::new(&format!("/proc/{}/root", self.host.id())).join(path)
    }

    /// Writes a file inside the private mount namespace (creating its directory).
    pub fn write(&self, path: &str, contents: &str) -> Result<()> {
        let p = self.inside(path);
        fs::create_dir_all(p.parent().unwrap())?;
        fs::write(&p, contents).with_context(|| format!("cannot write {path} in the sandbox"))
    }

    fn start_daemon(&mut self, name: &'static str, args: &[&str]) -> Result<()> {
        let log = fs::File::create(self.dir.join(format!("{name}.out")))?;
        let child = self
            .host_cmd(name)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        self.daemons.push(Daemon { name, child });
        Ok(())
    }

    fn stop_daemon(&mut self, name: &str) -> Result<()> {
        let i = self
            .daemons
            .iter()
            .position(|d| d.name == name)
            .with_context(|| format!("{name} is not running"))?;
        let mut d = self.daemons.remove(i);
        signal(d.child.id(), "TERM");
        let exited = wait_until(&format!("{name} to exit"), Duration::from_secs(20), || {
            matches!(d.child.try_wait(), Ok(Some(_)))
        });
        if exited.is_err() {
            let _ = d.child.kill();
        }
        d.child.wait()?;
        Ok(())
    }

    /// Starts ovsdb-server and ovs-vswitchd (userspace datapath only) on a fresh database.
    pub fn start_ovs(&mut self) -> Result<()> {
        let ovs = self.dir.join("ovs");
        fs::create_dir_all(&ovs)?;
        fs::create_dir_all(self.inside(OVS_RUNDIR))?;
        let db = ovs.join("conf.db");
        stdout(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg("/usr/share/openvswitch/vswitch.ovsschema"),
        )?;
        let sock = format!("{OVS_RUNDIR}/db.sock");
        self.start_daemon(
            "ovsdb-server",
            &[
                &format!("--remote=punix:{sock}"),
                "--pidfile",
                &format!("--log-file={}", ovs.join("ovsdb-server.log").display()),
                &db.to_string_lossy(),
            ],
        )?;
        let inside_sock = self.inside(&sock);
        wait_until("ovsdb-server's socket", Duration::from_secs(10), || {
            inside_sock.exists()
        })?;
        stdout(self.host_cmd("ovs-vsctl").args(["--no-wait", "init"]))?;
        self.start_vswitchd()
    }

    /// Starts ovs-vswitchd (userspace datapath only) on the running ovsdb-server.
    pub fn start_vswitchd(&mut self) -> Result<()> {
        let log = self.dir.join("ovs/ovs-vswitchd.log");
        self.start_daemon(
            "ovs-vswitchd",
            &[
                "--pidfile",
                &format!("--log-file={}", log.display()),
                "--disable-system",
                "--disable-system-route",
                &format!("unix:{OVS_RUNDIR}/db.sock"),
            ],
        )
    }

    /// Stops ovs-vswitchd by pid (SIGTERM): the flows and the datapath go with it.
    pub fn stop_vswitchd(&mut self) -> Result<()> {
        self.stop_daemon("ovs-vswitchd")
    }

    /// A private copy of the host's libvirt configuration: no domains, no hooks, QEMU as root
    /// without cgroups, warnings (and hook calls) logged to `libvirtd.log` in the temp dir.
    pub fn configure_libvirt(&self) -> Result<()> {
        for gone in [
            "/etc/libvirt/hooks",
            "/etc/libvirt/qemu/autostart",
            "/etc/libvirt/qemu/networks/autostart",
        ] {
            let p = self.inside(gone);
            if p.exists() {
                fs::remove_dir_all(&p)?;
            }
        }
        for entry in fs::read_dir(self.inside("/etc/libvirt/qemu"))? {
            let p = entry?.path();
            if p.extension().is_some_and(|x| x == "xml") {
                fs::remove_file(p)?;
            }
        }
        fs::create_dir_all(self.inside("/etc/libvirt/hooks"))?;
        let append = |path: &str, text: &str| -> Result<()> {
            let old = fs::read_to_string(self.inside(path)).unwrap_or_default();
            self.write(path, &format!("{old}\n# vmguard e2e test\n{text}"))
        };
        // root: /dev/kvm stays as it is (pitfall P2); no cgroups: the private /sys has none.
        append(
            "/etc/libvirt/qemu.conf",
            "user = \"root\"\ngroup = \"root\"\ncgroup_controllers = [ ]\n",
        )?;
        append(
            "/etc/libvirt/libvirtd.conf",
            &format!(
                "log_level = 3\nlog_filters = \"1:util.hook 1:util.command\"\nlog_outputs = \"1:file:{}\"\n",
                self.libvirtd_log().display()
            ),
        )
    }

    pub fn libvirtd_log(&self) -> PathBuf {
        self.dir.join("libvirtd.log")
    }

    /// Starts virtlogd (if needed) and libvirtd, and waits until `virsh` gets an answer.
    pub fn start_libvirt(&mut self) -> Result<()> {
        if !self.daemons.iter().any(|d| d.name == "virtlogd") {
            self.start_daemon("virtlogd", &[])?;
        }
        self.start_daemon("libvirtd", &[])?;
        // Cold, libvirt probes QEMU's capabilities first: 8-12 s on this kind of machine.
        let start = Instant::now();
        loop {
            let out = output(self.virsh_cmd().arg("version"), Duration::from_secs(30));
            if out.as_ref().is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(90) {
                bail!("libvirtd did not answer within 90 s: {out:?}");
            }
            if let Some(d) = self.daemons.iter_mut().find(|d| d.name == "libvirtd") {
                if let Ok(Some(status)) = d.child.try_wait() {
                    bail!("libvirtd exited ({status}) at start");
                }
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops libvirtd by pid (SIGTERM), leaving its guests running.
    pub fn stop_libvirtd(&mut self) -> Result<()> {
        self.stop_daemon("libvirtd")
    }

    pub fn virsh_cmd(&self) -> Command {
        let mut cmd = self.host_cmd("virsh");
        cmd.args(["--connect", "qemu:///system"]);
        cmd
    }

    /// `virsh ARGS`, which must succeed; returns its stdout.
    pub fn virsh(&self, args: &[&str]) -> Result<String> {
        stdout(self.virsh_cmd().args(args))
    }

    /// Whether a process named `comm` runs in the sandbox (a hook libvirtd started, say).
    pub fn is_running(&self, comm: &str) -> bool {
        self.processes().iter().any(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
    }

    /// The pids of every process in the sandbox's two network namespaces but the pinning ones.
    fn processes(&self) -> Vec<u32> {
        let nets: Vec<PathBuf> = [self.host.id(), self.peer.id()]
            .iter()
            .filter_map(|p| fs::read_link(format!("/proc/{p}/ns/net")).ok())
            .collect();
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != self.host.id() && pid != self.peer.id())
            .filter(|pid| {
                fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|n| nets.contains(&n))
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Every process in the namespaces was started by this test (daemons, QEMU, commands):
        // TERM them by pid, reap our own children, KILL what is left after 10 s.
        let pids = self.processes();
        for &pid in &pids {
            signal(pid, "TERM");
        }
        let _ = wait_until(
            "the sandbox's processes to exit",
            Duration::from_secs(10),
            || {
                for d in &mut self.daemons {
                    let _ = d.child.try_wait();
                }
                self.processes().is_empty()
            },
        );
        for pid in self.processes() {
            signal(pid, "KILL");
        }
        for d in &mut self.daemons {
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
        for pin in [&mut self.host, &mut self.peer] {
            let _ = pin.kill();
            let _ = pin.wait();
        }
        if self._tmp.is_none() {
            eprintln!("e2e: kept {}", self.dir.display());
        }
    }
}
