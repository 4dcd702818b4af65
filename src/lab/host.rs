//! What the lab does to this host: it creates namespaces and starts processes, writing each to
//! a journal first, so that `lab down`, an interrupted run or the next run removes exactly that.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Where a lab keeps its journal, logs, captures and its private OVS's sockets.
pub const RUN_DIR: &str = "/run/vmguard-lab";
const JOURNAL: &str = "journal";
/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The longest any single command of the lab may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

/// The signal that interrupted the run (SIGINT, SIGTERM, SIGHUP), 0 if none.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

mod sys {
    use std::os::raw::c_int;

    extern "C" {
        /// glibc's `signal`: BSD semantics (the handler stays installed, syscalls restart).
        pub fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
        pub fn kill(pid: c_int, sig: c_int) -> c_int;
    }
}

extern "C" fn on_signal(sig: std::os::raw::c_int) {
    // Only an atomic store: async-signal-safe. The run notices it at its next step.
    INTERRUPTED.store(sig, Ordering::SeqCst);
}

/// Makes Ctrl-C, SIGTERM and SIGHUP end the run through its normal error path, so the lab's
/// teardown runs. Every process the lab starts is in its own process group, so a Ctrl-C in
/// the terminal reaches vmguard only.
pub fn catch_signals() {
    for sig in [1, 2, SIGTERM] {
        // SAFETY: installs a handler that only stores to an atomic.
        unsafe {
            sys::signal(sig, on_signal);
        }
    }
}

/// `Err` once a signal asked the run to stop.
pub fn check_interrupt() -> Result<()> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => bail!("interrupted by signal {sig}"),
    }
}

/// Sends `sig` to `pid`; false if there is no such process.
fn send_signal(pid: u32, sig: i32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a positive pid signals that one process.
    unsafe { sys::kill(pid, sig) == 0 }
}

/// A process is alive while /proc lists it and it is not a zombie.
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The program name a process was started as (argv[0]'s file name).
fn program_of(pid: u32) -> Option<String> {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    Path::new(std::str::from_utf8(argv0).ok()?)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// The journal's entries.
#[derive(Debug, Default)]
struct Journal {
    netns: Vec<String>,
    pids: Vec<(u32, String)>,
}

impl Journal {
    fn read(dir: &Path) -> Option<Journal> {
        let text = fs::read_to_string(dir.join(JOURNAL)).ok()?;
        let mut j = Journal::default();
        for line in text.lines() {
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["netns", name] => j.netns.push(name.to_string()),
                ["pid", pid, prog] => {
                    if let Ok(pid) = pid.parse() {
                        j.pids.push((pid, prog.to_string()));
                    }
                }
                _ => {}
            }
        }
        Some(j)
    }
}

/// Removes a lab described by the journal in `dir`: stops its processes (each checked to
/// still be the program it started), deletes its namespaces (which destroys their veths and
/// any process left in them) and the directory. Returns false if there was no lab.
pub fn remove_lab(dir: &Path, say: &dyn Fn(&str)) -> Result<bool> {
    let Some(journal) = Journal::read(dir) else {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        return Ok(false);
    };
    let ours: Vec<u32> = journal
        .pids
        .iter()
        .filter(|(pid, prog)| alive(*pid) && program_of(*pid).as_deref() == Some(prog))
        .map(|(pid, _)| *pid)
        .collect();
    // Anything still running inside the lab's namespaces was started there by the lab (or a
    // shell someone opened with `ip netns exec` into a kept lab): the namespace goes away.
    let mut inside: Vec<u32> = Vec::new();
    for ns in &journal.netns {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
            inside.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok())
                    .filter(|p| !ours.contains(p)),
            );
        }
    }
    let all: Vec<u32> = ours.into_iter().chain(inside).collect();
    say(&format!(
        "removing the lab in {}: stopping {} processes, deleting {} namespaces",
        dir.display(),
        all.len(),
        journal.netns.len()
    ));
    stop_pids(&all);
    for ns in &journal.netns {
        if Path::new("/run/netns").join(ns).exists() {
            let out = Command::new("ip").args(["netns", "del", ns]).output();
            if !out.as_ref().is_ok_and(|o| o.status.success()) {
                say(&format!("warning: could not delete namespace {ns}"));
            }
        }
    }
    fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(true)
}

/// SIGTERM, then SIGKILL for whatever still runs after the grace period.
fn stop_pids(pids: &[u32]) {
    for &pid in pids {
        send_signal(pid, SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        sleep(Duration::from_millis(20));
    }
    for &pid in pids.iter().filter(|&&p| alive(p)) {
        send_signal(pid, SIGKILL);
    }
}

/// The lab's hold on this host. Dropping it removes everything, unless [`Host::keep`] was called.
pub struct Host {
    dir: PathBuf,
    journal: File,
    /// Background processes started by this run, by pid.
    children: Vec<Child>,
    path_env: String,
    kept: bool,
}

impl Host {
    /// Creates the run directory and its journal. A previous lab must be removed first.
    pub fn create() -> Result<Host> {
        let dir = PathBuf::from(RUN_DIR);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(JOURNAL))
            .with_context(|| format!("creating the journal in {}", dir.display()))?;
        Ok(Host {
            dir,
            journal,
            children: Vec::new(),
            path_env: search_path(),
            kept: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PATH every lab command runs with.
    pub fn path_env(&self) -> &str {
        &self.path_env
    }

    fn note(&mut self, entry: &str) -> Result<()> {
        writeln!(self.journal, "{entry}")
            .and_then(|()| self.journal.sync_data())
            .context("writing the lab journal")
    }

    /// Creates network namespace `name` (journaled first) with its loopback up.
    pub fn add_netns(&mut self, name: &str) -> Result<()> {
        self.note(&format!("netns {name}"))?;
        self.ok(&["ip", "netns", "add", name])?;
        self.ok_in(name, &["ip", "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// A command for `argv`, inside namespace `ns` if given, in its own process group (so the
    /// terminal's Ctrl-C reaches only vmguard) with the sbin directories on PATH.
    pub fn command(&self, ns: Option<&str>, argv: &[&str]) -> Command {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).args(argv);
                c
            }
            None => {
                let mut c = Command::new(argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        cmd.env("PATH", &self.path_env)
            .stdin(Stdio::null())
            .process_group(0);
        cmd
    }

    /// Runs a command to completion and returns its output, whatever its exit status. A
    /// command still running after [`COMMAND_LIMIT`], or when a signal interrupts the run, is
    /// stopped and reported as an error: nothing the lab runs can hang it.
    pub fn output(&self, mut cmd: Command) -> Result<Output> {
        check_interrupt()?;
        let what = format!("{cmd:?}");
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {what}"))?;
        finish(child, Instant::now() + COMMAND_LIMIT, &what)
    }

    /// Like [`Host::output`], with `input` on the command's stdin.
    pub fn output_fed(&self, mut cmd: Command, input: &str) -> Result<Output> {
        check_interrupt()?;
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot run {what}"))?;
        if let Some(mut pipe) = child.stdin.take() {
            // A command that stops reading early fails on its own; its output tells why.
            let _ = pipe.write_all(input.as_bytes());
        }
        finish(child, Instant::now() + COMMAND_LIMIT, &what)
    }

    /// Runs `argv` in `ns`; its output whatever the exit status.
    pub fn run_in(&self, ns: &str, argv: &[&str]) -> Result<Output> {
        self.output(self.command(Some(ns), argv))
    }

    /// Runs `argv` in `ns`; its stdout, or an error with its stderr.
    pub fn ok_in(&self, ns: &str, argv: &[&str]) -> Result<String> {
        checked(argv, self.run_in(ns, argv)?)
    }

    /// Runs a command line in `ns`, split on whitespace (no argument the lab passes contains
    /// any); its output whatever the exit status.
    pub fn sh(&self, ns: &str, line: &str) -> Result<Output> {
        self.run_in(ns, &line.split_whitespace().collect::<Vec<_>>())
    }

    /// Like [`Host::sh`], but an error unless it exits 0; its stdout.
    pub fn sh_ok(&self, ns: &str, line: &str) -> Result<String> {
        self.ok_in(ns, &line.split_whitespace().collect::<Vec<_>>())
    }

    /// Runs `argv` on the host; its stdout, or an error with its stderr.
    pub fn ok(&self, argv: &[&str]) -> Result<String> {
        checked(argv, self.output(self.command(None, argv))?)
    }

    /// Runs several command lines at once, each `(namespace, line)` split like [`Host::sh`];
    /// their outputs in order.
    pub fn parallel(&self, cmds: &[(String, String)]) -> Result<Vec<Output>> {
        check_interrupt()?;
        let deadline = Instant::now() + COMMAND_LIMIT;
        let children = cmds
            .iter()
            .map(|(ns, line)| {
                let argv: Vec<&str> = line.split_whitespace().collect();
                let child = self
                    .command(Some(ns), &argv)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .with_context(|| format!("cannot run `{line}` in {ns}"))?;
                Ok((child, format!("`{line}` in {ns}")))
            })
            .collect::<Result<Vec<(Child, String)>>>()?;
        children
            .into_iter()
            .map(|(child, what)| finish(child, deadline, &what))
            .collect()
    }

    /// Starts a background process (journaled) with stdout and stderr in `<log>.log` in the run
    /// directory; returns its pid.
    pub fn spawn(&mut self, mut cmd: Command, program: &str, log: &str) -> Result<u32> {
        check_interrupt()?;
        let file = File::create(self.dir.join(format!("{log}.log")))
            .with_context(|| format!("creating {log}.log"))?;
        let child = cmd
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let pid = child.id();
        self.children.push(child);
        self.note(&format!("pid {pid} {program}"))?;
        Ok(pid)
    }

    /// Starts `argv` in the background inside `ns`; see [`Host::spawn`].
    pub fn spawn_in(&mut self, ns: &str, argv: &[&str], log: &str) -> Result<u32> {
        let cmd = self.command(Some(ns), argv);
        self.spawn(cmd, argv[0], log)
    }

    /// Stops background processes this run started, all at once: SIGTERM, then SIGKILL after
    /// the grace period; reaps them.
    pub fn stop(&mut self, pids: &[u32]) {
        let mut stopping = Vec::new();
        for &pid in pids {
            if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
                stopping.push(self.children.swap_remove(i));
            }
        }
        let running: Vec<u32> = stopping
            .iter_mut()
            .filter_map(|c| matches!(c.try_wait(), Ok(None)).then(|| c.id()))
            .collect();
        stop_pids(&running);
        for mut c in stopping {
            // Dead by now; this only reaps it.
            let _ = c.wait();
        }
    }

    /// Sleeps, waking early with an error when interrupted.
    pub fn sleep(&self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        loop {
            check_interrupt()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            sleep((end - now).min(Duration::from_millis(50)));
        }
    }

    /// Leaves everything running; `vmguard lab down` removes it later.
    pub fn keep(mut self) {
        self.kept = true;
        // The children run on without us: dropping a `Child` neither kills nor waits.
        self.children.clear();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let pids: Vec<u32> = self
            .children
            .iter_mut()
            .filter_map(|c| matches!(c.try_wait(), Ok(None)).then(|| c.id()))
            .collect();
        stop_pids(&pids);
        for c in &mut self.children {
            let _ = c.wait();
        }
        if let Err(e) = remove_lab(&self.dir, &|s| super::progress(s)) {
            super::progress(&format!("warning: {e:#}"));
        }
    }
}

/// Waits for a command, collecting its output; stops it at `deadline` or on a signal.
fn finish(child: Child, deadline: Instant, what: &str) -> Result<Output> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // The receiver only goes away after an error was already returned.
        let _ = tx.send(child.wait_with_output());
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(out) => {
                check_interrupt()?;
                return out.with_context(|| format!("waiting for {what}"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let interrupted = check_interrupt();
                if interrupted.is_err() || Instant::now() > deadline {
                    stop_pids(&[pid]);
                    // Reaped by the waiting thread.
                    let _ = rx.recv();
                    interrupted?;
                    bail!("{what} did not finish within {} s", COMMAND_LIMIT.as_secs());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("lost track of {what}"),
        }
    }
}

/// A command's stdout, or an error with its argv, exit status and stderr.
pub fn checked(argv: &[&str], out: Output) -> Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        bail!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

/// PATH with the sbin directories added (a test harness's PATH may lack them).
fn search_path() -> String {
    let mut dirs: Vec<String> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        if !dirs.iter().any(|x| x == d) {
            dirs.push(d.to_string());
        }
    }
    dirs.join(":")
}

/// The programs (of `names`) that are not on the search path.
pub fn missing_programs<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let path = search_path();
    names
        .iter()
        .copied()
        .filter(|n| !path.split(':').any(|d| Path::new(d).join(n).is_file()))
        .collect()
}
