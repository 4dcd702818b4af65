//! Every call of `virsh -c qemu:///system` provisioning makes: the only place it touches
//! libvirt. Errors keep the argv, the exit status and virsh's stderr.

use std::io::Write;
use std::process::{Command, Stdio};

use thiserror::Error;

/// The libvirt connection vmguard provisions on (the one the qemu hook serves).
pub const SYSTEM_URI: &str = "qemu:///system";

#[derive(Debug, Error)]
pub enum VirshError {
    #[error("cannot run virsh: {source} (is libvirt-clients installed?)")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("`{argv}` failed ({status}): {stderr}")]
    Failed {
        argv: String,
        status: String,
        stderr: String,
    },
}

impl VirshError {
    /// The domain does not exist (any more): another process deleted it meanwhile.
    pub fn is_no_domain(&self) -> bool {
        matches!(self, VirshError::Failed { stderr, .. }
            if stderr.contains("failed to get domain") || stderr.contains("Domain not found"))
    }
}

/// What provisioning needs from libvirt; [`Virsh`] is the real one, tests bring their own.
pub trait Libvirt {
    /// Names of the domains: every defined and running one with `all`, else the active ones.
    fn list(&self, all: bool) -> Result<Vec<String>, VirshError>;
    /// The domain's XML: its persistent definition with `inactive`, else the live one.
    fn dumpxml(&self, name: &str, inactive: bool) -> Result<String, VirshError>;
    /// Defines (persistently) the domain described by `xml`.
    fn define(&self, xml: &str) -> Result<(), VirshError>;
    fn start(&self, name: &str) -> Result<(), VirshError>;
    /// Asks the guest to shut down (ACPI); returns at once.
    fn shutdown(&self, name: &str) -> Result<(), VirshError>;
    /// Forced power-off (what virsh calls `destroy`).
    fn power_off(&self, name: &str) -> Result<(), VirshError>;
    /// Removes the definition (not the disks).
    fn undefine(&self, name: &str) -> Result<(), VirshError>;
}

/// `virsh -c URI`.
#[derive(Clone, Debug)]
pub struct Virsh {
    uri: String,
}

impl Virsh {
    /// The system connection, `qemu:///system`.
    pub fn system() -> Virsh {
        Virsh {
            uri: SYSTEM_URI.to_string(),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, VirshError> {
        let mut child = Command::new("virsh")
            .args(["-q", "-c", &self.uri])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| VirshError::Spawn { source })?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            // A write error shows as virsh's own failure below.
            let _ = pipe.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|source| VirshError::Spawn { source })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(VirshError::Failed {
            argv: format!("virsh -c {} {}", self.uri, args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " | "),
        })
    }
}

impl Libvirt for Virsh {
    fn list(&self, all: bool) -> Result<Vec<String>, VirshError> {
        let args: &[&str] = if all {
            &["list", "--all", "--name"]
        } else {
            &["list", "--name"]
        };
        Ok(self
            .run(args, None)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn dumpxml(&self, name: &str, inactive: bool) -> Result<String, VirshError> {
        if inactive {
            self.run(&["dumpxml", "--inactive", "--domain", name], None)
        } else {
            self.run(&["dumpxml", "--domain", name], None)
        }
    }

    fn define(&self, xml: &str) -> Result<(), VirshError> {
        // From stdin: no temporary file to leak if vmguard dies here.
        self.run(&["define", "--file", "/dev/stdin"], Some(xml))
            .map(drop)
    }

    fn start(&self, name: &str) -> Result<(), VirshError> {
        self.run(&["start", "--domain", name], None).map(drop)
    }

    fn shutdown(&self, name: &str) -> Result<(), VirshError> {
        self.run(&["shutdown", "--domain", name], None).map(drop)
    }

    fn power_off(&self, name: &str) -> Result<(), VirshError> {
        self.run(&["destroy", "--domain", name], None).map(drop)
    }

    fn undefine(&self, name: &str) -> Result<(), VirshError> {
        self.run(
            &[
                "undefine",
                "--domain",
                name,
                "--managed-save",
                "--snapshots-metadata",
                "--checkpoints-metadata",
                "--nvram",
            ],
            None,
        )
        .map(drop)
    }
}
