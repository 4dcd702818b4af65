//! The benchmark still works: one `vmguard-bench --quick` run (tiny sizes, one repeat) must
//! produce every figure of `docs/performance.md`. It never looks at a timing or a goal — the
//! benchmark is not a test; `bash scripts/bench.sh` regenerates the real report.
//!
//! Needs what the benchmark needs: root, Open vSwitch, and iperf3 for the data-plane figure. It
//! fails with a clear message when those are missing, never passes silently.

use std::path::Path;
use std::process::Command;

fn find(prog: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .map(Into::into),
        )
        .any(|d| d.join(prog).is_file())
}

#[test]
fn quick_benchmark_produces_every_figure() {
    assert!(
        find("ovs-vswitchd") && Path::new("/usr/share/openvswitch/vswitch.ovsschema").exists(),
        "the benchmark needs Open vSwitch (apt-get install openvswitch-switch); see README"
    );
    assert!(
        find("iperf3"),
        "the benchmark's data-plane figure needs iperf3 (apt-get install iperf3; \
         scripts/bench.sh installs it)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("performance.md");
    let run = Command::new(env!("CARGO_BIN_EXE_vmguard-bench"))
        .arg("--quick")
        .arg("--vmguard")
        .arg(env!("CARGO_BIN_EXE_vmguard"))
        .arg("--out")
        .arg(&out)
        .env_remove("OVS_RUNDIR")
        .env_remove("VMGUARD_CONFIG")
        .output()
        .expect("run vmguard-bench");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "vmguard-bench --quick failed ({}); it needs root and Open vSwitch:\n{stderr}",
        run.status
    );
    let text = std::fs::read_to_string(&out).expect("the report was written");
    for heading in [
        "## Machine",
        "## Summary",
        "## 1. Full install / resync",
        "### Where a sync's time goes",
        "### 3. Idempotent resync",
        "## 2. One VM's hook",
        "## 4. ARP / ND fan-out",
        "## 5. Data-plane cost",
        "## 6. Size",
    ] {
        assert!(
            text.contains(heading),
            "no {heading:?} in the report:\n{text}"
        );
    }
    // Every figure has its summary row, with a number in it rather than a failure.
    for row in [
        "| 1 | install 10 VMs × 1 NIC",
        "| 1 | install 30 VMs × 2 NIC",
        "| 2 | hook `start begin` with 30 VMs installed vs with 10",
        "| 3 | idempotent second `sync`, 30 VMs × 2 NIC",
        "| 4 | VM ports reached by one broadcast ARP request, 30 VMs",
        "| 4 | VM ports reached by one multicast NS, 30 VMs",
        "| 5 | TCP throughput between two VM namespaces",
        "| 6 | size: flows per interface",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no summary row {row:?} in the report:\n{text}"));
        assert!(
            !line.contains("failed") && !line.contains("skipped") && !line.contains("not measured"),
            "summary row did not measure anything: {line}"
        );
    }
    // The hook's reads of the switch are timed apart from vmguard, each with a number.
    for row in [
        "| reading the Bridge row as the hook does (",
        "| one OpenFlow round trip to ovs-vswitchd",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?} in the report:\n{text}"));
        assert!(
            line.contains(" ms") && !line.contains("| – |"),
            "row without a time: {line}"
        );
    }
    assert!(
        !text.contains("## Problems during the run") || !text.contains("- error:"),
        "a figure failed:\n{text}"
    );
    // The fan-out counting works: without vmguard a broadcast reaches every other VM port.
    assert!(
        text.contains("30 VMs (NORMAL / direct / responder) | 29 / "),
        "the NORMAL bridge did not flood to the 29 other VM ports; the counting is broken:\n{text}"
    );
    // …and vmguard steers: the owner only (direct), no VM at all (responder), ARP and NS alike.
    for what in ["broadcast ARP request", "multicast NS"] {
        let row = text
            .lines()
            .find(|l| l.starts_with("| 4 |") && l.contains(what))
            .unwrap_or_default();
        assert!(
            row.contains("| 29 / 1 / 0 |"),
            "{what}: fan-out is not 29 / 1 / 0 ({row:?}):\n{text}"
        );
    }
}
