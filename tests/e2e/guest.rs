//! The test guests: a busybox initramfs built here (no cpio or gzip needed) and the serial
//! console through which the test drives each guest's init (`tests/e2e/init`).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Writes an uncompressed initramfs (cpio "newc") with `init` as /init, the static busybox as
/// /bin/busybox and every `*.ko` of `modules` in /mods.
pub fn build_initramfs(init: &[u8], busybox: &Path, modules: &Path, out: &Path) -> Result<()> {
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "mods", "proc", "sys", "tmp"] {
        cpio.entry(dir, 0o040_755, (0, 0), &[]);
    }
    // The kernel opens /dev/console for init before init mounts devtmpfs.
    cpio.entry("dev/console", 0o020_600, (5, 1), &[]);
    cpio.entry("init", 0o100_755, (0, 0), init);
    let bb = fs::read(busybox).with_context(|| format!("cannot read {}", busybox.display()))?;
    cpio.entry("bin/busybox", 0o100_755, (0, 0), &bb);
    let mut kos = fs::read_dir(modules)
        .with_context(|| format!("cannot list {}", modules.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    kos.retain(|p| p.extension().is_some_and(|x| x == "ko"));
    kos.sort();
    if kos.is_empty() {
        bail!("no kernel modules in {}", modules.display());
    }
    for ko in &kos {
        let name = format!("mods/{}", ko.file_name().unwrap().to_string_lossy());
        cpio.entry(&name, 0o100_644, (0, 0), &fs::read(ko)?);
    }
    fs::write(out, cpio.finish()).with_context(|| format!("cannot write {}", out.display()))
}

/// A cpio archive in the "newc" format the kernel unpacks as an initramfs.
#[derive(Default)]
struct Cpio {
    data: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), body: &[u8]) {
        self.inode += 1;
        let fields = [
            self.inode,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            u32::try_from(body.len()).expect("initramfs file under 4 GiB"),
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).expect("short name"),
            0, // check
        ];
        self.data.extend_from_slice(b"070701");
        for f in fields {
            self.data.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.data
    }
}

/// Connects to a console socket and starts a thread that appends each line read to `lines`.
fn attach(
    name: &str,
    path: &Path,
    timeout: Duration,
    lines: &Arc<Mutex<Vec<String>>>,
) -> Result<UnixStream> {
    let start = Instant::now();
    let stream = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(e) if start.elapsed() > timeout => {
                return Err(e).with_context(|| {
                    format!("{name}: cannot connect to its console {}", path.display())
                })
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    };
    let mut reader = stream.try_clone()?;
    let sink = Arc::clone(lines);
    thread::spawn(move || {
        let mut partial = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            partial.extend_from_slice(&buf[..n]);
            while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']).to_string();
                sink.lock().unwrap().push(text);
            }
        }
    });
    Ok(stream)
}

/// What a command run in a guest printed and how it exited.
#[derive(Debug)]
pub struct Ran {
    pub rc: i32,
    pub output: String,
}

/// A guest's serial console (a unix socket that QEMU listens on): everything the guest prints is
/// kept as a transcript; `run` sends a command line to the guest's init and waits for its end.
pub struct Console {
    name: String,
    stream: UnixStream,
    lines: Arc<Mutex<Vec<String>>>,
    next_id: u32,
}

impl Console {
    /// Connects to the socket QEMU creates at `path`, waiting up to `timeout` for it.
    pub fn connect(name: &str, path: &Path, timeout: Duration) -> Result<Console> {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stream = attach(name, path, timeout, &lines)?;
        Ok(Console {
            name: name.to_string(),
            stream,
            lines,
            next_id: 1,
        })
    }

    /// Connects again, to a new QEMU of the same guest (after `virsh restore`, say), keeping
    /// the transcript.
    pub fn reconnect(&mut self, path: &Path, timeout: Duration) -> Result<()> {
        self.stream = attach(&self.name, path, timeout, &self.lines)?;
        Ok(())
    }

    /// Waits for a console line starting with `prefix` and returns it.
    pub fn wait_for(&self, prefix: &str, timeout: Duration) -> Result<String> {
        self.wait_line(timeout, |l| l.starts_with(prefix))
            .with_context(|| format!("{}: no console line `{prefix}…`", self.name))
    }

    fn wait_line(&self, timeout: Duration, want: impl Fn(&str) -> bool) -> Result<String> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| want(l)) {
                return Ok(l.clone());
            }
            if start.elapsed() > timeout {
                bail!("not seen within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a shell command in the guest (one line, run by `sh -c`), waiting up to `timeout`.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<Ran> {
        assert!(!cmd.contains('\n'), "guest commands are one line");
        let id = self.next_id;
        self.next_id += 1;
        let started = Instant::now();
        self.stream
            .write_all(format!("CMD {id} {cmd}\n").as_bytes())
            .with_context(|| format!("{}: cannot write to its console", self.name))?;
        let (begin, end) = (format!("E2E: RUN {id}: "), format!("E2E: END {id} rc="));
        let last = self
            .wait_line(timeout, |l| l.starts_with(&end))
            .with_context(|| format!("{}: `{cmd}` did not finish", self.name))?;
        let rc = last[end.len()..].trim().parse().unwrap_or(-1);
        let lines = self.lines.lock().unwrap();
        let from = lines
            .iter()
            .rposition(|l| l.starts_with(&begin))
            .map_or(0, |i| i + 1);
        let to = lines
            .iter()
            .rposition(|l| l.starts_with(&end))
            .unwrap_or(lines.len());
        let output = lines[from..to.max(from)].join("\n");
        if std::env::var_os("VMGUARD_E2E_TRACE").is_some() {
            let secs = started.elapsed().as_secs_f64();
            eprintln!("  {} ({secs:.1}s, rc={rc}): {cmd}", self.name);
        }
        Ok(Ran { rc, output })
    }

    /// The last `n` console lines, for failure reports.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}
