//! `vmguard lab`: a throwaway network of namespaces, a private OVS and real tools that shows
//! vmguard's guarantees on real kernel stacks. (Being built: see issue 4.)

use anyhow::{bail, Result};
use vmguard::config::ArpMode;

/// Options of `vmguard lab run`.
pub struct LabOptions {
    pub vms: usize,
    pub arp_mode: ArpMode,
    pub keep: bool,
}

/// Builds the lab, runs every case, prints the table; `Ok(true)` when every case holds.
pub fn run(_opts: &LabOptions) -> Result<bool> {
    bail!("lab is not built yet")
}

/// Removes everything a lab run created.
pub fn down() -> Result<()> {
    bail!("lab is not built yet")
}
