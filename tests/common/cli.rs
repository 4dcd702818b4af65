//! Runs the built `vmguard` binary against a private OVS with a config file of its own.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::Ovs;

/// A config file for one test's sandbox, and the binary to run with it.
pub struct Vmguard {
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

/// The result of one `vmguard` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with both streams unless the run exited 0.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "vmguard failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Vmguard {
    /// Writes a config for `bridge` with `uplinks` and `arp_mode`, pointing at `ovs`'s rundir
    /// (no OVS at all when `ovs` is `None`).
    pub fn new(ovs: Option<&Ovs>, bridge: &str, uplinks: &[&str], arp_mode: &str) -> Vmguard {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        let uplinks: Vec<String> = uplinks.iter().map(|u| format!("{u:?}")).collect();
        let rundir = match ovs {
            Some(o) => format!("ovs_rundir = {:?}\n", o.rundir().display().to_string()),
            None => format!(
                "ovs_rundir = {:?}\n",
                dir.path().join("no-ovs-here").display().to_string()
            ),
        };
        std::fs::write(
            &config,
            format!(
                "bridge = {bridge:?}\nuplinks = [{}]\narp_mode = {arp_mode:?}\n{rundir}",
                uplinks.join(", ")
            ),
        )
        .expect("write config");
        Vmguard { config, _dir: dir }
    }

    /// Runs `vmguard --config CONFIG ARGS…` with `stdin`, without OVS_RUNDIR from the test's
    /// environment (the config decides).
    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmguard"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("OVS_RUNDIR")
            .env_remove("VMGUARD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vmguard");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("wait vmguard");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// A domain XML with one interface per `(mac, dev, addresses)` on `bridge`.
pub fn domain_xml(
    name: &str,
    uuid: &str,
    bridge: &str,
    ifaces: &[(&str, &str, &[&str])],
) -> String {
    let mut meta = String::new();
    let mut devs = String::new();
    for (mac, dev, addrs) in ifaces {
        meta.push_str(&format!("<vg:interface mac='{mac}'>"));
        for a in *addrs {
            meta.push_str(&format!("<vg:ip address='{a}'/>"));
        }
        meta.push_str("</vg:interface>");
        devs.push_str(&format!(
            "<interface type='bridge'><mac address='{mac}'/><source bridge='{bridge}'/>\
             <virtualport type='openvswitch'/><target dev='{dev}'/><model type='virtio'/></interface>"
        ));
    }
    format!(
        "<domain type='kvm'><name>{name}</name><uuid>{uuid}</uuid>\
         <metadata><vg:guard xmlns:vg='urn:vmguard:1'>{meta}</vg:guard></metadata>\
         <devices>{devs}</devices></domain>"
    )
}
