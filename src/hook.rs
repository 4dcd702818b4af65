//! The libvirt qemu hook: `HOOK DOMAIN OPERATION SUB-OPERATION EXTRA` with the domain XML on
//! stdin. Installs flows at start, removes them at stop/release, re-applies on reconnect.

use std::path::Path;

use vmguard::config::Config;
use vmguard::domain::{DomainIdentity, DomainXml};
use vmguard::engine::{Guard, Plan};
use vmguard::ovs::Ovs;

use crate::log::Logger;

/// What a hook call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookAction {
    /// Install the flows; a failure must stop the VM from starting (non-zero exit).
    Install,
    /// Re-apply after a libvirtd restart; a failure is logged, never fatal (a failing
    /// `reconnect` hook makes libvirt kill the running VM).
    Reapply,
    /// Remove the flows; never fails.
    Remove,
    /// Anything else (migrate, restore, prepare, …): do nothing, print nothing.
    Ignore,
}

impl HookAction {
    pub fn of(operation: &str, sub_operation: &str) -> HookAction {
        match (operation, sub_operation) {
            ("start", "begin") | ("started", "begin") => HookAction::Install,
            ("reconnect", "begin") => HookAction::Reapply,
            ("stopped", "end") | ("release", "end") => HookAction::Remove,
            _ => HookAction::Ignore,
        }
    }
}

/// True when the binary runs as a libvirt hook by name: `/etc/libvirt/hooks/qemu` or a file
/// in `/etc/libvirt/hooks/qemu.d/`.
pub fn invoked_as_hook(argv0: &str) -> bool {
    let p = Path::new(argv0);
    p.file_name().is_some_and(|n| n == "qemu")
        || p.parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "qemu.d")
}

fn log_plan(log: &Logger, action: &str, domain: &str, plan: &Plan) {
    for n in &plan.notes {
        log.warn(&format!("vm={domain} note: {n}"));
    }
    for (mac, ofport, key) in &plan.interfaces {
        log.info(&format!(
            "{action} vm={domain} iface={mac} ofport={ofport} cookie={}",
            vmguard::pipeline::Cookie::new(*key, vmguard::pipeline::Reason::Pass)
        ));
    }
    let (added, removed) = plan.counts();
    log.info(&format!(
        "{action} vm={domain} flows_added={added} flows_removed={removed}"
    ));
}

/// Runs one hook call. `Err` carries the one-line reason libvirt shows the operator.
pub fn run(
    cfg: &Config,
    log: &Logger,
    domain: &str,
    operation: &str,
    sub_operation: &str,
    xml: &str,
) -> Result<(), String> {
    let action = HookAction::of(operation, sub_operation);
    if action == HookAction::Ignore {
        return Ok(());
    }
    let ovs = Ovs::new(cfg.ovs_rundir.as_deref());
    let guard = Guard::new(&ovs, cfg);
    // At start the tap may not have its ofport yet: wait for it. At reconnect the VM runs
    // already, so its tap exists; waiting would only delay libvirtd's startup.
    let install = |wait: bool| -> Result<Plan, String> {
        let dom = DomainXml::parse(xml)
            .and_then(|d| d.guard(cfg.bridge.as_str()))
            .map_err(|e| e.to_string())?;
        let plan = if wait {
            guard.apply_waiting(&dom)
        } else {
            guard.apply(&dom, false)
        };
        plan.map_err(|e| format!("{:#}", anyhow::Error::from(e)))
    };
    match action {
        HookAction::Install => {
            let plan = install(true).map_err(|e| format!("vmguard: {e}"))?;
            log_plan(log, operation, domain, &plan);
            Ok(())
        }
        HookAction::Reapply => {
            match install(false) {
                Ok(plan) => log_plan(log, "reconnect", domain, &plan),
                Err(e) => log.error(&format!("reconnect vm={domain} failed (the VM keeps running; its ports may be closed): {e}")),
            }
            Ok(())
        }
        HookAction::Remove => {
            // Removal needs only the UUID and MACs; with unreadable XML, the records by name.
            let id = DomainXml::parse(xml)
                .map(|d| d.identity())
                .unwrap_or_else(|e| {
                    log.warn(&format!(
                        "{operation} vm={domain}: domain XML unreadable ({e}); removing by name"
                    ));
                    DomainIdentity {
                        name: domain.to_string(),
                        uuid: None,
                        macs: Vec::new(),
                    }
                });
            match guard.remove(&id, false) {
                Ok(plan) => log_plan(log, operation, domain, &plan),
                Err(e) => log.error(&format!(
                    "{operation} vm={domain}: removing flows failed: {:#}",
                    anyhow::Error::from(e)
                )),
            }
            Ok(())
        }
        HookAction::Ignore => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_by_operation() {
        assert_eq!(HookAction::of("start", "begin"), HookAction::Install);
        assert_eq!(HookAction::of("started", "begin"), HookAction::Install);
        assert_eq!(HookAction::of("reconnect", "begin"), HookAction::Reapply);
        assert_eq!(HookAction::of("stopped", "end"), HookAction::Remove);
        assert_eq!(HookAction::of("release", "end"), HookAction::Remove);
        for (op, sub) in [
            ("prepare", "begin"),
            ("migrate", "begin"),
            ("restore", "begin"),
            ("attach", "begin"),
            ("start", "end"),
        ] {
            assert_eq!(HookAction::of(op, sub), HookAction::Ignore, "{op} {sub}");
        }
    }

    #[test]
    fn hook_names() {
        assert!(invoked_as_hook("/etc/libvirt/hooks/qemu"));
        assert!(invoked_as_hook("/etc/libvirt/hooks/qemu.d/vmguard"));
        assert!(invoked_as_hook("qemu"));
        assert!(!invoked_as_hook("/usr/local/bin/vmguard"));
        assert!(!invoked_as_hook("vmguard"));
    }
}
