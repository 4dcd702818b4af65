//! `vmguard create / addresses / dhcp-hosts / delete` run as built: against a stand-in `virsh`
//! over a directory of domain XML (several `create`s at once), and against a real libvirtd in
//! private mount and network namespaces (`#[ignore]`d for quick runs).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use vmguard::domain::DomainXml;

/// The result of one `vmguard` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "vmguard failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

const POOL: &str = "bridge = \"vm-switch\"\n[pool]\nipv4 = \"10.0.0.0/24\"\nipv6 = \"2001:db8::/64\"\nreserved = [\"10.0.0.1\"]\n";

/// `virsh` as vmguard calls it, over `$FAKE_VIRSH_DIR/NAME.xml` (+ `NAME.running`). Like
/// libvirt it refuses to define a second domain with an existing name; every call sleeps
/// `$FAKE_VIRSH_DELAY` seconds to widen the window a missing lock would leave open.
const FAKE_VIRSH: &str = r#"#!/bin/bash
set -u
D=$FAKE_VIRSH_DIR
while [ $# -gt 0 ]; do case $1 in -q) shift;; -c) shift 2;; *) break;; esac; done
cmd=$1; shift
name=""; all=0
while [ $# -gt 0 ]; do case $1 in --domain) name=$2; shift 2;; --all) all=1; shift;; *) shift;; esac; done
nodom() { echo "error: failed to get domain '$name'" >&2; exit 1; }
sleep "${FAKE_VIRSH_DELAY:-0}"
case $cmd in
list) for f in "$D"/*.xml; do [ -e "$f" ] || continue; n=$(basename "$f" .xml)
        if [ $all = 1 ] || [ -e "$D/$n.running" ]; then echo "$n"; fi; done; echo;;
dumpxml) [ -e "$D/$name.xml" ] || nodom; cat "$D/$name.xml";;
define) x=$(cat); n=$(printf '%s' "$x" | sed -n 's:.*<name>\(.*\)</name>.*:\1:p' | head -1)
        if ! (set -o noclobber; printf '%s\n' "$x" > "$D/$n.xml") 2>/dev/null; then
            echo "error: operation failed: domain '$n' already exists" >&2; exit 1; fi;;
start) [ -e "$D/$name.xml" ] || nodom; touch "$D/$name.running";;
shutdown) ;;
destroy) rm "$D/$name.running" 2>/dev/null || { echo "error: domain is not running" >&2; exit 1; };;
undefine) [ -e "$D/$name.xml" ] || nodom; rm "$D/$name.xml";;
*) echo "fake virsh: unknown command $cmd" >&2; exit 1;;
esac
"#;

/// A directory of domains behind a fake `virsh` first on PATH, and a config with a pool.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new(config: &str) -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::create_dir(dir.path().join("domains")).unwrap();
        let virsh = dir.path().join("bin/virsh");
        std::fs::write(&virsh, FAKE_VIRSH).unwrap();
        std::fs::set_permissions(&virsh, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Fake { dir }
    }

    fn domains(&self) -> PathBuf {
        self.dir.path().join("domains")
    }

    fn command(&self, args: &[&str], delay: &str) -> Command {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(env!("CARGO_BIN_EXE_vmguard"));
        c.arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args)
            .env("PATH", path)
            .env("FAKE_VIRSH_DIR", self.domains())
            .env("FAKE_VIRSH_DELAY", delay)
            .env_remove("VMGUARD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self.command(args, "0").spawn().expect("spawn vmguard");
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        Run::from(child.wait_with_output().unwrap())
    }

    fn names(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.domains())
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_suffix(".xml").map(str::to_string)
            })
            .collect()
    }
}

/// `addresses --json` as (domain, MAC, IPv4s, IPv6s).
fn listed(out: &str) -> Vec<(String, String, Vec<String>, Vec<String>)> {
    let rows: serde_json::Value = serde_json::from_str(out).expect("addresses --json");
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["domain"].as_str().unwrap().to_string(),
                r["mac"].as_str().unwrap().to_string(),
                strings(&r["ipv4"]),
                strings(&r["ipv6"]),
            )
        })
        .collect()
}

/// Every MAC, IPv4 and IPv6 in the listing is distinct.
fn assert_no_duplicates(rows: &[(String, String, Vec<String>, Vec<String>)]) {
    let mut seen = BTreeSet::new();
    for (domain, mac, v4, v6) in rows {
        for item in std::iter::once(mac).chain(v4).chain(v6) {
            assert!(
                seen.insert(item.clone()),
                "{item} ({domain}) handed out twice: {rows:#?}"
            );
        }
    }
}

fn need_root() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "provisioning tests need root: the create lock is in /run/vmguard"
    );
}

#[test]
fn concurrent_creates_never_hand_out_an_address_twice() {
    need_root();
    let fake = Fake::new(POOL);
    // Three processes at once, two for the same user (names can collide too).
    let children: Vec<Child> = [("alice", "5"), ("alice", "5"), ("bob", "5")]
        .iter()
        .map(|(user, count)| {
            fake.command(&["create", user, "--count", count, "--nics", "2"], "0.02")
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn vmguard")
        })
        .collect();
    for child in children {
        Run::from(child.wait_with_output().unwrap()).ok();
    }
    let want: BTreeSet<String> = (1..=10)
        .map(|i| format!("alice-{i}"))
        .chain((1..=5).map(|i| format!("bob-{i}")))
        .collect();
    assert_eq!(fake.names(), want);
    let rows = listed(&fake.run(&["addresses", "--json"], "").ok().stdout);
    assert_eq!(rows.len(), 30);
    assert_no_duplicates(&rows);
    // Every definition is one the hook accepts.
    for name in &want {
        let xml = std::fs::read_to_string(fake.domains().join(format!("{name}.xml"))).unwrap();
        let g = DomainXml::parse(&xml).unwrap().guard("vm-switch").unwrap();
        assert_eq!(g.interfaces.len(), 2, "{name}");
    }
}

#[test]
fn create_waits_for_the_lock_held_by_another_create() {
    need_root();
    let fake = Fake::new(POOL);
    let lock = vmguard::provision::lock(Path::new(vmguard::provision::LOCK_PATH)).unwrap();
    let mut child = fake
        .command(&["create", "carol"], "0")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "create finished while another process held the lock"
    );
    assert!(fake.names().is_empty());
    drop(lock);
    Run::from(child.wait_with_output().unwrap()).ok();
    assert_eq!(fake.names(), BTreeSet::from(["carol-1".to_string()]));
}

#[test]
fn create_list_reserve_delete_cycle() {
    need_root();
    let fake = Fake::new(POOL);
    let dry = fake
        .run(&["create", "dan", "--count", "2", "--dry-run"], "")
        .ok();
    assert!(fake.names().is_empty(), "--dry-run defined something");
    assert_eq!(dry.stdout.matches("<domain").count(), 2, "{}", dry.stdout);
    assert!(
        dry.stderr.contains("dan-2   52:54:00:00:00:03  10.0.0.3"),
        "{}",
        dry.stderr
    );

    let made = fake.run(&["create", "dan", "--count", "3"], "").ok();
    assert_eq!(
        made.stdout,
        "USER  DOMAIN  MAC                IPV4      IPV6\n\
         dan   dan-1   52:54:00:00:00:02  10.0.0.2  2001:db8::5054:ff:fe00:2\n\
         dan   dan-2   52:54:00:00:00:03  10.0.0.3  2001:db8::5054:ff:fe00:3\n\
         dan   dan-3   52:54:00:00:00:04  10.0.0.4  2001:db8::5054:ff:fe00:4\n"
    );
    let hosts = fake.dir.path().join("dnsmasq.hosts");
    let hosts_arg = hosts.to_str().unwrap();
    fake.run(
        &["dhcp-hosts", "--format", "dnsmasq", "--output", hosts_arg],
        "",
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(&hosts).unwrap(),
        "# Generated by `vmguard dhcp-hosts`: do not edit.\n\
         52:54:00:00:00:02,10.0.0.2,[2001:db8::5054:ff:fe00:2],dan-1\n\
         52:54:00:00:00:03,10.0.0.3,[2001:db8::5054:ff:fe00:3],dan-2\n\
         52:54:00:00:00:04,10.0.0.4,[2001:db8::5054:ff:fe00:4],dan-3\n"
    );

    // No answer, or "n": nothing is deleted.
    let refused = fake.run(&["delete", "dan-2"], "");
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("delete 1 VM(s): dan-2?"),
        "{}",
        refused.stderr
    );
    assert_eq!(fake.run(&["delete", "dan"], "n\n").code, 1);
    assert_eq!(fake.names().len(), 3);
    fake.run(&["delete", "dan-2"], "y\n").ok();
    // dan-2's addresses are free again: the next VM gets them.
    fake.run(&["create", "erin"], "").ok();
    let rows = listed(&fake.run(&["addresses", "--json"], "").ok().stdout);
    assert!(rows.contains(&(
        "erin-1".into(),
        "52:54:00:00:00:03".into(),
        vec!["10.0.0.3".into()],
        vec!["2001:db8::5054:ff:fe00:3".into()]
    )));
    // A running VM is stopped first; a user name selects all their VMs.
    fake.run(&["create", "erin"], "").ok();
    std::fs::write(fake.domains().join("erin-2.running"), "").unwrap();
    let gone = fake
        .run(&["delete", "erin", "--yes", "--grace", "0"], "")
        .ok();
    assert!(
        gone.stderr.contains("deleted vm=erin-2 stop=powered-off"),
        "{}",
        gone.stderr
    );
    assert_eq!(
        fake.names(),
        BTreeSet::from(["dan-1".to_string(), "dan-3".to_string()])
    );
    // Several users in one command, all or nothing.
    let class = fake.run(&["create", "ann", "bea", "--count", "2"], "").ok();
    assert_eq!(class.stdout.lines().count(), 5, "{}", class.stdout);
    assert!(fake.names().contains("bea-2"));
    // A domain not made by create is never deleted.
    std::fs::write(
        fake.domains().join("web.xml"),
        "<domain><name>web</name></domain>",
    )
    .unwrap();
    let e = fake.run(&["delete", "web", "--yes"], "");
    assert_eq!(e.code, 2);
    assert!(
        e.stderr.contains("web was not made by `vmguard create`"),
        "{}",
        e.stderr
    );
    assert!(fake.names().contains("web"));
}

#[test]
fn a_full_pool_and_a_missing_pool_are_clear_errors() {
    need_root();
    let fake = Fake::new("[pool]\nipv4 = \"10.9.0.0/29\"\nreserved = [\"10.9.0.1\"]\n");
    fake.run(&["create", "fred", "--count", "5"], "").ok();
    let full = fake.run(&["create", "gina"], "");
    assert_eq!(full.code, 2);
    assert!(
        full.stderr.contains("IPv4 pool 10.9.0.0/29 is exhausted"),
        "{}",
        full.stderr
    );
    assert_eq!(
        fake.names().len(),
        5,
        "nothing defined by the failed create"
    );
    // A create that does not fit as a whole defines nothing.
    fake.run(&["delete", "fred-1", "fred-2", "--yes"], "").ok();
    let partial = fake.run(&["create", "gina", "--count", "3"], "");
    assert_eq!(partial.code, 2, "{}", partial.stderr);
    assert_eq!(fake.names().len(), 3);

    let no_pool = Fake::new("bridge = \"vm-switch\"\n");
    let e = no_pool.run(&["create", "hank"], "");
    assert_eq!(e.code, 2);
    assert!(e.stderr.contains("[pool]"), "{}", e.stderr);
    let bad_user = fake.run(&["create", "Hank-2"], "");
    assert!(bad_user.stderr.contains("user name"), "{}", bad_user.stderr);
}

/// libvirtd, virtlogd and Open vSwitch in private mount and network namespaces: their own
/// `/run`, a copy of `/etc/libvirt` without domains or hooks, private `/var/lib/libvirt`,
/// `/var/log/libvirt` and `/var/cache/libvirt`. Nothing on the host is touched; on drop every
/// process in the namespace is stopped by pid.
struct Sandbox {
    holder: Child,
    dir: tempfile::TempDir,
}

const SANDBOX_SETUP: &str = r#"set -euo pipefail
T=$1
mount -t tmpfs tmpfs /run
mkdir -p /run/lock /run/openvswitch "$T"/etc "$T"/lib "$T"/log "$T"/cache "$T"/ovs
cp -a /etc/libvirt "$T"/etc/libvirt
rm -rf "$T"/etc/libvirt/qemu/* "$T"/etc/libvirt/hooks/*
printf 'user = "root"\ngroup = "root"\n' >> "$T"/etc/libvirt/qemu.conf
mount --bind "$T"/etc/libvirt /etc/libvirt
mount --bind "$T"/lib /var/lib/libvirt
mount --bind "$T"/log /var/log/libvirt
mount --bind "$T"/cache /var/cache/libvirt
ip link set lo up
ovsdb-tool create "$T"/ovs/conf.db /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server --detach --no-chdir --pidfile=/run/openvswitch/ovsdb-server.pid \
  --log-file="$T"/ovs/ovsdb-server.log --remote=punix:/run/openvswitch/db.sock "$T"/ovs/conf.db
ovs-vsctl --no-wait init
ovs-vswitchd --detach --no-chdir --pidfile=/run/openvswitch/ovs-vswitchd.pid \
  --log-file="$T"/ovs/ovs-vswitchd.log --enable-dummy --disable-system --disable-system-route
ovs-vsctl --timeout=10 add-br vm-switch -- set bridge vm-switch datapath_type=netdev
virtlogd -d
libvirtd -d
for _ in $(seq 1 300); do virsh -c qemu:///system version >/dev/null 2>&1 && exit 0; sleep 0.1; done
echo "libvirtd did not answer within 30 s" >&2
exit 1
"#;

impl Sandbox {
    fn start() -> Sandbox {
        need_root();
        for tool in [
            "libvirtd",
            "virtlogd",
            "virsh",
            "unshare",
            "nsenter",
            "ovs-vswitchd",
            "qemu-system-x86_64",
        ] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "{tool} is missing: run `bash scripts/install-deps.sh`"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let holder = Command::new("unshare")
            .args([
                "--mount",
                "--net",
                "--propagation",
                "private",
                "sleep",
                "3600",
            ])
            .spawn()
            .expect("unshare");
        let sb = Sandbox { holder, dir };
        // The holder is in its namespaces once its mount namespace differs from ours.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{}/ns/mnt", sb.holder.id())).ok()
            == std::fs::read_link("/proc/self/ns/mnt").ok()
        {
            assert!(Instant::now() < deadline, "unshare did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = sb.dir.path().to_str().unwrap().to_string();
        let out = sb.exec(&["bash", "-c", SANDBOX_SETUP, "setup", &t]);
        assert!(
            out.status.success(),
            "sandbox setup failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        sb
    }

    fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "-n", "--"])
            .args(argv)
            .env_remove("VMGUARD_CONFIG")
            .stdin(Stdio::null());
        c
    }

    fn exec(&self, argv: &[&str]) -> Output {
        self.command(argv).output().expect("nsenter")
    }

    fn virsh(&self, args: &[&str]) -> String {
        let mut argv = vec!["virsh", "-q", "-c", "qemu:///system"];
        argv.extend_from_slice(args);
        let out = self.exec(&argv);
        assert!(
            out.status.success(),
            "virsh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn vmguard(&self, args: &[&str]) -> Run {
        let config = self.dir.path().join("config.toml");
        let mut argv = vec![
            env!("CARGO_BIN_EXE_vmguard"),
            "--config",
            config.to_str().unwrap(),
        ];
        argv.extend_from_slice(args);
        Run::from(self.exec(&argv))
    }

    /// Pids of every process in the sandbox's network namespace but the holder.
    fn inside(&self) -> Vec<u32> {
        let ns = std::fs::read_link(format!("/proc/{}/ns/net", self.holder.id())).ok();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != self.holder.id())
            .filter(|pid| {
                ns.is_some() && std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() == ns
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Guests first, so libvirt removes their ports; then every process left, by pid.
        if let Ok(out) = self
            .command(&["virsh", "-c", "qemu:///system", "list", "--name"])
            .output()
        {
            for name in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                let _ = self.exec(&["virsh", "-c", "qemu:///system", "destroy", name.trim()]);
            }
        }
        for signal in ["-TERM", "-KILL"] {
            let pids = self.inside();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[test]
#[ignore = "starts a real libvirtd and QEMU (about 15 s); run with --include-ignored"]
fn real_libvirtd_create_list_reserve_delete() {
    let sb = Sandbox::start();
    let dir = sb.dir.path().display().to_string();
    std::fs::write(
        sb.dir.path().join("config.toml"),
        "bridge = \"vm-switch\"\n[pool]\nipv4 = \"10.77.0.0/24\"\nipv6 = \"2001:db8:77::/64\"\nreserved = [\"10.77.0.1\"]\n",
    )
    .unwrap();
    // TCG, no disk: SeaBIOS finds nothing to boot and keeps the VM running, which is all
    // `delete` needs to stop.
    let template = sb.dir.path().join("template.xml");
    std::fs::write(
        &template,
        format!(
            "<domain type='qemu'><name>x</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>\
             <devices><memballoon model='none'/><serial type='file'><source path='{dir}/@NAME@.log'/></serial></devices></domain>"
        ),
    )
    .unwrap();
    let t = template.to_str().unwrap();

    sb.vmguard(&["create", "alice", "--count", "2", "--template", t])
        .ok();
    let bob = sb
        .vmguard(&["create", "bob", "--nics", "2", "--template", t, "--start"])
        .ok();
    // MACs come from the IPv4's low 24 bits: 10.77.0.5 → 52:54:00:4d:00:05.
    assert!(
        bob.stdout.contains("bob-1   52:54:00:4d:00:05  10.77.0.5"),
        "{}",
        bob.stdout
    );
    assert_eq!(sb.virsh(&["list", "--name"]).trim(), "bob-1", "started");
    assert!(
        sb.exec(&["ovs-vsctl", "list-ports", "vm-switch"])
            .stdout
            .len()
            > 1,
        "libvirt put bob-1's taps on the bridge"
    );

    // libvirt kept the metadata as written: the hook's parser accepts it.
    let xml = sb.virsh(&["dumpxml", "--inactive", "alice-2"]);
    let g = DomainXml::parse(&xml).unwrap().guard("vm-switch").unwrap();
    assert_eq!(g.interfaces[0].mac.to_string(), "52:54:00:4d:00:03");
    assert_eq!(
        g.interfaces[0].ipv4,
        vec!["10.77.0.3".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert!(g.interfaces[0]
        .ipv6
        .contains(&"2001:db8:77::5054:ff:fe4d:3".parse().unwrap()));

    let rows = listed(&sb.vmguard(&["addresses", "--json"]).ok().stdout);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_no_duplicates(&rows);

    let hosts = sb.dir.path().join("hosts");
    sb.vmguard(&[
        "dhcp-hosts",
        "--format",
        "dnsmasq",
        "--output",
        hosts.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(&hosts).unwrap(),
        "# Generated by `vmguard dhcp-hosts`: do not edit.\n\
         52:54:00:4d:00:02,10.77.0.2,[2001:db8:77:0:5054:ff:fe4d:2],alice-1\n\
         52:54:00:4d:00:03,10.77.0.3,[2001:db8:77:0:5054:ff:fe4d:3],alice-2\n\
         52:54:00:4d:00:04,10.77.0.4,[2001:db8:77:0:5054:ff:fe4d:4],bob-1\n\
         52:54:00:4d:00:05,10.77.0.5,[2001:db8:77:0:5054:ff:fe4d:5]\n"
    );

    // Two creates at once through real libvirt.
    let children: Vec<Child> = ["carol", "dave"]
        .iter()
        .map(|u| {
            sb.command(&[
                env!("CARGO_BIN_EXE_vmguard"),
                "--config",
                sb.dir.path().join("config.toml").to_str().unwrap(),
                "create",
                u,
                "--count",
                "4",
                "--template",
                t,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        Run::from(c.wait_with_output().unwrap()).ok();
    }
    let rows = listed(&sb.vmguard(&["addresses", "--json"]).ok().stdout);
    assert_eq!(rows.len(), 12);
    assert_no_duplicates(&rows);

    // The running VM is powered off (SeaBIOS ignores ACPI) and undefined; its addresses free.
    let gone = sb.vmguard(&["delete", "bob", "--yes", "--grace", "1"]).ok();
    assert!(
        gone.stderr.contains("deleted vm=bob-1 stop=powered-off"),
        "{}",
        gone.stderr
    );
    assert!(!sb.virsh(&["list", "--all", "--name"]).contains("bob-1"));
    assert!(sb.virsh(&["list", "--name"]).trim().is_empty());
    let erin = sb
        .vmguard(&["create", "erin", "--nics", "2", "--template", t])
        .ok();
    assert!(
        erin.stdout.contains("52:54:00:4d:00:04  10.77.0.4"),
        "{}",
        erin.stdout
    );
    assert!(
        erin.stdout.contains("52:54:00:4d:00:05  10.77.0.5"),
        "{}",
        erin.stdout
    );
}
