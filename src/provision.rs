//! Provisioning guarded VMs: the defined domains' metadata is the only record of who owns which
//! MAC and address; `create` allocates from the configured pool under a host-wide lock and
//! defines each domain with its metadata in one step, `delete` frees by undefining.

pub mod pool;
pub mod render;
pub mod virsh;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::domain::{DomainError, DomainXml};
use crate::model::{natural_cmp, DomainUuid};
use pool::{AllocError, Inventory, Pool, UserName};
use render::{NewVm, Row, Template, TemplateError};
use virsh::{Libvirt, VirshError};

/// Serialises `create`s on this host: reading what is owned, allocating and defining are one
/// step, so two concurrent `create`s never hand out the same MAC or address.
pub const LOCK_PATH: &str = "/run/vmguard/provision.lock";

#[derive(Debug, Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Virsh(#[from] VirshError),
    #[error("domain {name}: its XML cannot be read, so what it owns is unknown: fix or undefine it first")]
    Unreadable {
        name: String,
        #[source]
        source: DomainError,
    },
    #[error("domain {name} has invalid vmguard metadata, so the addresses it owns are unknown: fix it before creating VMs")]
    BrokenMetadata {
        name: String,
        #[source]
        source: DomainError,
    },
    #[error(transparent)]
    Alloc(#[from] AllocError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read /dev/urandom for a domain UUID")]
    Random(#[source] std::io::Error),
    #[error("defining {name} failed; {rollback}")]
    Define {
        name: String,
        rollback: String,
        #[source]
        source: VirshError,
    },
    #[error("{0}: no user with VMs and no VM made by `vmguard create` has this name")]
    NoSuchName(String),
    #[error(
        "{0} was not made by `vmguard create` (no owner in its metadata): remove it with virsh"
    )]
    NotProvisioned(String),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A defined domain as provisioning sees it.
#[derive(Clone, Debug)]
pub struct Record {
    pub name: String,
    /// The user `create` made it for; `None` for a domain made by hand.
    pub owner: Option<String>,
    pub active: bool,
    /// The persistent definition: what the domain owns.
    pub config: Result<DomainXml, DomainError>,
    /// The live XML of an active domain (NICs hot-plugged without `--config` live only there).
    pub live: Option<Result<DomainXml, DomainError>>,
}

/// Reads every defined or running domain; one that vanishes meanwhile is skipped.
pub fn read_records(lv: &dyn Libvirt) -> Result<Vec<Record>, ProvisionError> {
    let active: BTreeSet<String> = lv.list(false)?.into_iter().collect();
    let mut out = Vec::new();
    for name in lv.list(true)? {
        let read = |inactive| match lv.dumpxml(&name, inactive) {
            Ok(xml) => Ok(Some(xml)),
            Err(e) if e.is_no_domain() => Ok(None),
            Err(e) => Err(e),
        };
        let Some(xml) = read(true)? else { continue };
        let is_active = active.contains(&name);
        let live = match is_active {
            true => read(false)?.map(|x| DomainXml::parse(&x)),
            false => None,
        };
        out.push(Record {
            owner: render::owner(&xml),
            config: DomainXml::parse(&xml),
            active: is_active,
            live,
            name,
        });
    }
    // A stable order whatever the domains' states (virsh lists running ones first), so the
    // reservations file only changes when an address does.
    out.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(out)
}

/// What every record owns. Unreadable XML or broken metadata is an error: allocating next to
/// a domain whose addresses are unknown could hand one out twice.
pub fn inventory(records: &[Record]) -> Result<Inventory, ProvisionError> {
    let mut inv = Inventory::default();
    for r in records {
        for xml in std::iter::once(&r.config).chain(&r.live) {
            let d = xml.as_ref().map_err(|e| ProvisionError::Unreadable {
                name: r.name.clone(),
                source: e.clone(),
            })?;
            inv.add_domain(d)
                .map_err(|source| ProvisionError::BrokenMetadata {
                    name: r.name.clone(),
                    source,
                })?;
        }
    }
    Ok(inv)
}

/// What `create` is asked for: `count` VMs for each user.
#[derive(Clone, Debug)]
pub struct CreateRequest<'a> {
    pub users: &'a [UserName],
    pub count: usize,
    pub nics: usize,
    pub template: &'a Template,
}

/// The VMs to define: names, allocations and domain XML, one UUID from `uuids` each, user by
/// user. Pure; takes what it hands out from `inv`, and fails as a whole: a pool that cannot
/// hold the whole request plans nothing.
pub fn plan_create(
    inv: &mut Inventory,
    pool: &Pool,
    bridge: &str,
    req: &CreateRequest<'_>,
    uuids: &[DomainUuid],
) -> Result<Vec<NewVm>, ProvisionError> {
    assert!(
        uuids.len() >= req.users.len() * req.count,
        "one UUID per VM"
    );
    let mut uuids = uuids.iter();
    let mut vms = Vec::new();
    for user in req.users {
        for name in inv.allocate_names(user, req.count) {
            let allocs = (0..req.nics)
                .map(|_| inv.allocate(pool))
                .collect::<Result<Vec<_>, _>>()?;
            let uuid = uuids.next().expect("counted above");
            vms.push(
                req.template
                    .render(&name, user.as_str(), uuid, bridge, &allocs)?,
            );
        }
    }
    Ok(vms)
}

/// Creates the VMs: under the lock, reads what every domain owns, plans, and defines each VM
/// with its metadata in one `virsh define`. If a define fails, the VMs defined before it are
/// undefined again. With `dry_run`, only plans (no lock, nothing defined).
pub fn create(
    lv: &dyn Libvirt,
    lock_path: &Path,
    pool: &Pool,
    bridge: &str,
    req: &CreateRequest<'_>,
    dry_run: bool,
) -> Result<Vec<NewVm>, ProvisionError> {
    let _lock = match dry_run {
        true => None,
        false => Some(lock(lock_path)?),
    };
    let records = read_records(lv)?;
    let mut inv = inventory(&records)?;
    let uuids = (0..req.users.len() * req.count)
        .map(|_| random_uuid())
        .collect::<Result<Vec<_>, _>>()?;
    let vms = plan_create(&mut inv, pool, bridge, req, &uuids)?;
    if dry_run {
        return Ok(vms);
    }
    for (i, vm) in vms.iter().enumerate() {
        if let Err(source) = lv.define(&vm.xml) {
            let undone: Vec<&str> = vms[..i].iter().map(|v| v.name.as_str()).collect();
            let failed: Vec<String> = undone
                .iter()
                .filter_map(|n| lv.undefine(n).err().map(|e| format!("{n}: {e}")))
                .collect();
            let rollback = match (undone.is_empty(), failed.is_empty()) {
                (true, _) => "nothing was defined".to_string(),
                (false, true) => format!("undefined again: {}", undone.join(" ")),
                (false, false) => format!(
                    "undefining the VMs defined before it failed too: {}",
                    failed.join("; ")
                ),
            };
            return Err(ProvisionError::Define {
                name: vm.name.clone(),
                rollback,
                source,
            });
        }
    }
    Ok(vms)
}

/// The domains `names` select for `delete`: every VM of a user, or one VM by name, only
/// among those `create` made. A name that selects nothing is an error, before anything is done.
pub fn select_for_delete<'r>(
    records: &'r [Record],
    names: &[String],
) -> Result<Vec<&'r Record>, ProvisionError> {
    let mut out: Vec<&Record> = Vec::new();
    for name in names {
        let hits: Vec<&Record> = records
            .iter()
            .filter(|r| {
                r.owner.as_deref() == Some(name.as_str()) || (r.owner.is_some() && r.name == *name)
            })
            .collect();
        if hits.is_empty() {
            return Err(match records.iter().any(|r| r.name == *name) {
                true => ProvisionError::NotProvisioned(name.clone()),
                false => ProvisionError::NoSuchName(name.clone()),
            });
        }
        for h in hits {
            if !out.iter().any(|o| o.name == h.name) {
                out.push(h);
            }
        }
    }
    Ok(out)
}

/// How a deleted VM was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running.
    WasOff,
    /// The guest shut down within the grace period.
    ShutDown,
    /// Powered off after the grace period.
    PoweredOff,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stopped::WasOff => "was-off",
            Stopped::ShutDown => "shut-down",
            Stopped::PoweredOff => "powered-off",
        })
    }
}

/// What `delete` did: each VM deleted and how it was stopped, each VM it could not delete.
#[derive(Debug, Default)]
pub struct Deletion {
    pub deleted: Vec<(String, Stopped)>,
    pub failed: Vec<(String, VirshError)>,
}

/// Stops (ACPI shutdown, then power-off after `grace`) and undefines each domain. Disks are
/// kept. One failure does not stop the others.
pub fn delete(
    lv: &dyn Libvirt,
    names: &[String],
    grace: Duration,
) -> Result<Deletion, ProvisionError> {
    let active = |lv: &dyn Libvirt| -> Result<BTreeSet<String>, VirshError> {
        let running: BTreeSet<String> = lv.list(false)?.into_iter().collect();
        Ok(names
            .iter()
            .filter(|n| running.contains(*n))
            .cloned()
            .collect())
    };
    let was_active = active(lv)?;
    let mut failed: Vec<(String, VirshError)> = Vec::new();
    if !grace.is_zero() {
        for n in &was_active {
            // A guest without ACPI ignores this; it is powered off after the grace period.
            let _ = lv.shutdown(n);
        }
        let deadline = Instant::now() + grace;
        while !active(lv)?.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let still = active(lv)?;
    for n in &still {
        if let Err(e) = lv.power_off(n) {
            if active(lv)?.contains(n) {
                failed.push((n.clone(), e));
            }
        }
    }
    let mut done = Vec::new();
    for n in names {
        if failed.iter().any(|(f, _)| f == n) {
            continue;
        }
        match lv.undefine(n) {
            Ok(()) => done.push((
                n.clone(),
                match (was_active.contains(n), still.contains(n)) {
                    (false, _) => Stopped::WasOff,
                    (true, false) => Stopped::ShutDown,
                    (true, true) => Stopped::PoweredOff,
                },
            )),
            Err(e) => failed.push((n.clone(), e)),
        }
    }
    Ok(Deletion {
        deleted: done,
        failed,
    })
}

/// The address listing: every interface in the defined domains' vmguard metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub rows: Vec<Row>,
    /// Domains the hook would refuse to start (with why): listed, but given no DHCP
    /// reservation, since their VMs can never send guarded traffic.
    pub refused: Vec<(String, String)>,
}

impl Listing {
    pub fn new(records: &[Record], bridge: &str) -> Listing {
        let mut out = Listing::default();
        for r in records {
            match &r.config {
                Err(e) => out.refused.push((r.name.clone(), e.to_string())),
                Ok(d) => {
                    if let Err(e) = d.guard(bridge) {
                        out.refused.push((r.name.clone(), e.to_string()));
                    }
                    out.rows.extend(Row::of_domain(d, r.owner.as_deref()));
                }
            }
        }
        out
    }

    /// The rows that get a DHCP reservation: those of domains the hook accepts.
    pub fn reservable(&self) -> Vec<Row> {
        self.rows
            .iter()
            .filter(|r| !self.refused.iter().any(|(d, _)| *d == r.domain))
            .cloned()
            .collect()
    }
}

/// Replaces `path` with `text` atomically (temporary file in the same directory, fsync,
/// rename): a DHCP server re-reading it never sees half a file. Mode 0644: dnsmasq re-reads
/// its hosts file after dropping privileges.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), ProvisionError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| ProvisionError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| err(std::io::Error::other("not a file name")))?;
    let tmp = dir.join(format!(
        ".{}.vmguard-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Best effort: make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Takes the provisioning lock (waiting for another `create` to finish); released on drop,
/// also when the process dies.
pub fn lock(path: &Path) -> Result<File, ProvisionError> {
    let err = |source| ProvisionError::Lock {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(err)?;
    file.lock().map_err(err)?;
    Ok(file)
}

/// A random (version 4) UUID, so the printed plan names the domain libvirt will have.
fn random_uuid() -> Result<DomainUuid, ProvisionError> {
    let mut b = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(ProvisionError::Random)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(hex.parse().expect("32 hex digits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// libvirt in memory: name → (xml, running); `fail_define` makes the n-th define fail.
    #[derive(Default)]
    struct Fake {
        domains: RefCell<BTreeMap<String, (String, bool)>>,
        fail_define: Option<usize>,
        defines: RefCell<usize>,
        /// Guests that shut down when asked.
        obedient: bool,
    }

    fn failed(what: &str) -> VirshError {
        VirshError::Failed {
            argv: what.into(),
            status: "exit status: 1".into(),
            stderr: "error: failed to get domain".into(),
        }
    }

    impl Libvirt for Fake {
        fn list(&self, all: bool) -> Result<Vec<String>, VirshError> {
            Ok(self
                .domains
                .borrow()
                .iter()
                .filter(|(_, (_, on))| all || *on)
                .map(|(n, _)| n.clone())
                .collect())
        }
        fn dumpxml(&self, name: &str, _: bool) -> Result<String, VirshError> {
            self.domains
                .borrow()
                .get(name)
                .map(|(x, _)| x.clone())
                .ok_or_else(|| failed("dumpxml"))
        }
        fn define(&self, xml: &str) -> Result<(), VirshError> {
            *self.defines.borrow_mut() += 1;
            if self.fail_define == Some(*self.defines.borrow()) {
                return Err(failed("define"));
            }
            let name = DomainXml::parse(xml).unwrap().name;
            self.domains
                .borrow_mut()
                .insert(name, (xml.to_string(), false));
            Ok(())
        }
        fn start(&self, name: &str) -> Result<(), VirshError> {
            self.domains.borrow_mut().get_mut(name).unwrap().1 = true;
            Ok(())
        }
        fn shutdown(&self, name: &str) -> Result<(), VirshError> {
            if self.obedient {
                self.domains.borrow_mut().get_mut(name).unwrap().1 = false;
            }
            Ok(())
        }
        fn power_off(&self, name: &str) -> Result<(), VirshError> {
            self.domains.borrow_mut().get_mut(name).unwrap().1 = false;
            Ok(())
        }
        fn undefine(&self, name: &str) -> Result<(), VirshError> {
            self.domains
                .borrow_mut()
                .remove(name)
                .map(drop)
                .ok_or_else(|| failed("undefine"))
        }
    }

    fn pool() -> Pool {
        Pool::new(
            Some("10.0.0.0/24".parse().unwrap()),
            Some("2001:db8::/64".parse().unwrap()),
            vec!["10.0.0.1".parse().unwrap()],
        )
        .unwrap()
    }

    fn create_for(
        lv: &Fake,
        user: &str,
        count: usize,
        nics: usize,
    ) -> Result<Vec<NewVm>, ProvisionError> {
        let dir = tempfile::tempdir().unwrap();
        let users: Vec<UserName> = user.split(' ').map(|u| u.parse().unwrap()).collect();
        let t = Template::new(render::BUILTIN_TEMPLATE, "vm-switch").unwrap();
        let req = CreateRequest {
            users: &users,
            count,
            nics,
            template: &t,
        };
        create(
            lv,
            &dir.path().join("lock"),
            &pool(),
            "vm-switch",
            &req,
            false,
        )
    }

    fn listed(lv: &Fake) -> Vec<String> {
        let records = read_records(lv).unwrap();
        let listing = Listing::new(&records, "vm-switch");
        assert!(listing.refused.is_empty(), "{:?}", listing.refused);
        listing
            .rows
            .iter()
            .map(|r| format!("{} {} {}", r.domain, r.mac, r.ipv4[0]))
            .collect()
    }

    #[test]
    fn create_defines_with_metadata_and_delete_frees() {
        let lv = Fake::default();
        let vms = create_for(&lv, "alice", 2, 2).unwrap();
        assert_eq!(vms.len(), 2);
        assert_eq!(
            listed(&lv),
            [
                "alice-1 52:54:00:00:00:02 10.0.0.2",
                "alice-1 52:54:00:00:00:03 10.0.0.3",
                "alice-2 52:54:00:00:00:04 10.0.0.4",
                "alice-2 52:54:00:00:00:05 10.0.0.5",
            ]
        );
        create_for(&lv, "bob", 1, 1).unwrap();
        let records = read_records(&lv).unwrap();
        let names = vec!["alice-1".to_string()];
        let targets: Vec<String> = select_for_delete(&records, &names)
            .unwrap()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(targets, ["alice-1"]);
        lv.start("alice-1").unwrap();
        let d = delete(&lv, &targets, Duration::ZERO).unwrap();
        assert!(d.failed.is_empty());
        assert_eq!(d.deleted, [("alice-1".to_string(), Stopped::PoweredOff)]);
        // The gap is reused by the next VM: its two addresses and MACs were freed.
        create_for(&lv, "carol", 1, 2).unwrap();
        assert!(listed(&lv).contains(&"carol-1 52:54:00:00:00:02 10.0.0.2".to_string()));
        assert!(listed(&lv).contains(&"carol-1 52:54:00:00:00:03 10.0.0.3".to_string()));
    }

    #[test]
    fn a_failed_define_undefines_the_vms_before_it() {
        let lv = Fake {
            fail_define: Some(3),
            ..Fake::default()
        };
        let e = create_for(&lv, "dave", 4, 1).unwrap_err().to_string();
        assert_eq!(e, "defining dave-3 failed; undefined again: dave-1 dave-2");
        assert!(lv.domains.borrow().is_empty());
    }

    #[test]
    fn exhaustion_defines_nothing() {
        let lv = Fake::default();
        let e = create_for(&lv, "eve", 300, 1).unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/24 is exhausted"), "{e}");
        assert!(lv.domains.borrow().is_empty());
    }

    #[test]
    fn several_users_at_once_in_order() {
        let lv = Fake::default();
        let vms = create_for(&lv, "kim lee", 2, 1).unwrap();
        let made: Vec<(&str, &str)> = vms
            .iter()
            .map(|v| (v.user.as_str(), v.name.as_str()))
            .collect();
        assert_eq!(
            made,
            [
                ("kim", "kim-1"),
                ("kim", "kim-2"),
                ("lee", "lee-1"),
                ("lee", "lee-2")
            ]
        );
        // 250 usable addresses left: a class of 126 users with 2 VMs each does not fit, and
        // nothing of it is defined.
        let class: Vec<String> = (0..126).map(|i| format!("s{i}")).collect();
        let e = create_for(&lv, &class.join(" "), 2, 1).unwrap_err();
        assert!(matches!(e, ProvisionError::Alloc(_)), "{e}");
        assert_eq!(lv.domains.borrow().len(), 4);
    }

    #[test]
    fn broken_metadata_anywhere_blocks_create() {
        let lv = Fake::default();
        lv.domains.borrow_mut().insert(
            "hand".into(),
            (
                "<domain><name>hand</name><metadata><guard xmlns='urn:vmguard:1' x='1'/></metadata></domain>".into(),
                false,
            ),
        );
        let e = create_for(&lv, "fay", 1, 1).unwrap_err();
        assert!(
            matches!(e, ProvisionError::BrokenMetadata { ref name, .. } if name == "hand"),
            "{e}"
        );
    }

    #[test]
    fn delete_selects_users_and_vms_made_by_create_only() {
        let lv = Fake::default();
        create_for(&lv, "gus", 3, 1).unwrap();
        lv.domains.borrow_mut().insert(
            "gus-9".into(),
            ("<domain><name>gus-9</name></domain>".into(), false),
        );
        let records = read_records(&lv).unwrap();
        let sel = |names: &[&str]| -> Result<Vec<String>, String> {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            select_for_delete(&records, &names)
                .map(|v| v.iter().map(|r| r.name.clone()).collect())
                .map_err(|e| e.to_string())
        };
        assert_eq!(sel(&["gus"]).unwrap(), ["gus-1", "gus-2", "gus-3"]);
        assert_eq!(sel(&["gus-2", "gus"]).unwrap(), ["gus-2", "gus-1", "gus-3"]);
        assert!(sel(&["gus-9"])
            .unwrap_err()
            .contains("not made by `vmguard create`"));
        assert!(sel(&["gus", "nobody"])
            .unwrap_err()
            .contains("nobody: no user"));
    }

    #[test]
    fn delete_shuts_down_within_grace() {
        let lv = Fake {
            obedient: true,
            ..Fake::default()
        };
        create_for(&lv, "hal", 1, 1).unwrap();
        lv.start("hal-1").unwrap();
        let d = delete(&lv, &["hal-1".to_string()], Duration::from_secs(5)).unwrap();
        assert_eq!(d.deleted, [("hal-1".to_string(), Stopped::ShutDown)]);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        write_atomic(&path, "one\n").unwrap();
        write_atomic(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let e = write_atomic(&dir.path().join("no/such/dir"), "x").unwrap_err();
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }

    #[test]
    fn records_sort_naturally_whatever_their_state() {
        let lv = Fake::default();
        create_for(&lv, "ann", 11, 1).unwrap();
        lv.start("ann-10").unwrap();
        let names: Vec<String> = read_records(&lv)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        let want: Vec<String> = (1..=11).map(|i| format!("ann-{i}")).collect();
        assert_eq!(names, want);
    }

    #[test]
    fn listing_keeps_refused_domains_out_of_the_reservations() {
        let lv = Fake::default();
        create_for(&lv, "ivy", 1, 1).unwrap();
        // A typo: the metadata names a MAC the domain does not have.
        lv.domains.borrow_mut().insert(
            "typo".into(),
            (
                "<domain><name>typo</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
                 <metadata><guard xmlns='urn:vmguard:1'><interface mac='52:54:00:00:00:99'>\
                 <ip address='10.0.0.99'/></interface></guard></metadata></domain>"
                    .into(),
                false,
            ),
        );
        let listing = Listing::new(&read_records(&lv).unwrap(), "vm-switch");
        assert_eq!(listing.rows.len(), 2);
        assert_eq!(listing.refused.len(), 1);
        assert!(
            listing.refused[0].1.contains("typo"),
            "{:?}",
            listing.refused
        );
        let reservable: Vec<String> = listing.reservable().into_iter().map(|r| r.domain).collect();
        assert_eq!(reservable, ["ivy-1"]);
    }

    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = random_uuid().unwrap();
        assert_ne!(a, random_uuid().unwrap());
        assert_eq!(&a.as_str()[14..15], "4");
    }
}
