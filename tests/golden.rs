//! Golden files: the exact flows `vmguard flows` prints for every domain in `examples/` (ARP mode
//! `direct`, one example also in `responder`) and for the bridge-wide base flows, compared with
//! `tests/golden/<name>.flows`. No OVS is needed: every port number is given with `--ofport`.
//!
//! After an intended change to the compiler, regenerate the files and review the diff:
//!
//! ```text
//! VMGUARD_BLESS=1 cargo test --test golden
//! git diff tests/golden/
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::cli::Vmguard;

const BLESS_VAR: &str = "VMGUARD_BLESS";
const BLESS_HINT: &str = "if the change is intended, regenerate with \
     `VMGUARD_BLESS=1 cargo test --test golden` and review `git diff tests/golden/`";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_dir() -> PathBuf {
    root().join("tests/golden")
}

fn blessing() -> bool {
    std::env::var_os(BLESS_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The example domain XML files, sorted by name.
fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("read examples/")
        .map(|e| e.expect("examples/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples/*.xml found");
    files
}

/// `--ofport DEV=N` for every `<target dev='vnetN'/>` of the XML (vnet5=5, vnet11=11, …), so
/// `vmguard flows` never needs OVS. A target dev of another shape is a test setup error.
fn ofport_args(xml: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<target dev=") {
        let after = &rest[at + "<target dev=".len()..];
        let quote = after.chars().next().expect("quote after dev=");
        let value: String = after[1..].chars().take_while(|c| *c != quote).collect();
        let n = value
            .strip_prefix("vnet")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or_else(|| {
                panic!("target dev '{value}' is not vnetN: give it an ofport in golden.rs")
            });
        args.push("--ofport".to_string());
        args.push(format!("{value}={n}"));
        rest = &after[1..];
    }
    args
}

/// Lines only in `expected` with '-', only in `actual` with '+', sorted (as multisets, so a
/// duplicated line counts).
fn line_diff(expected: &str, actual: &str) -> String {
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    for l in expected.lines() {
        *count.entry(l).or_default() += 1;
    }
    for l in actual.lines() {
        *count.entry(l).or_default() -= 1;
    }
    let mut out = String::new();
    for (line, n) in &count {
        for _ in 0..n.unsigned_abs() {
            out.push(if *n > 0 { '-' } else { '+' });
            out.push_str(line);
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push_str("(the same lines in a different order)\n");
    }
    out
}

/// Compares `actual` with `tests/golden/NAME.flows`, or writes it when blessing. Returns a
/// description of the mismatch.
fn check(name: &str, actual: &str) -> Result<(), String> {
    let path = golden_dir().join(format!("{name}.flows"));
    if blessing() {
        std::fs::create_dir_all(golden_dir()).expect("create tests/golden");
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        eprintln!("blessed {}", path.display());
        return Ok(());
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return Err(format!(
                "{name}: cannot read {}: {e}\n{BLESS_HINT}",
                path.display()
            ))
        }
    };
    if expected == actual {
        return Ok(());
    }
    Err(format!(
        "{name}: output differs from {} ('-' only in the golden file, '+' only in the output):\n{}{BLESS_HINT}",
        path.display(),
        line_diff(&expected, actual)
    ))
}

/// Runs `vmguard flows` with no OVS reachable and returns stdout; panics unless it exits 0.
fn flows(arp_mode: &str, args: &[String]) -> String {
    let vg = Vmguard::new(None, "vm-switch", &["upstream"], arp_mode);
    let mut argv = vec!["flows"];
    argv.extend(args.iter().map(String::as_str));
    let run = vg.run(&argv, "").ok();
    assert!(!run.stdout.is_empty(), "no flows printed for {argv:?}");
    for line in run.stdout.lines() {
        assert!(
            line.starts_with("cookie=0x7667"),
            "not a tagged flow line: {line:?}"
        );
    }
    run.stdout
}

fn example_args(xml_path: &Path) -> Vec<String> {
    let xml = std::fs::read_to_string(xml_path).expect("read example");
    let mut args = vec![xml_path.display().to_string()];
    args.extend(ofport_args(&xml));
    args
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// (golden name, ARP mode, `vmguard flows` arguments) of every case.
fn cases() -> Vec<(String, &'static str, Vec<String>)> {
    let mut out = Vec::new();
    for xml in examples() {
        out.push((stem(&xml), "direct", example_args(&xml)));
    }
    let one_nic = root().join("examples/one-nic.xml");
    out.push((
        "one-nic.responder".to_string(),
        "responder",
        example_args(&one_nic),
    ));
    out.push((
        "base".to_string(),
        "direct",
        vec!["--base".into(), "--ofport".into(), "upstream=1".into()],
    ));
    out
}

fn run_cases(filter: impl Fn(&str) -> bool) {
    let mut failures = Vec::new();
    for (name, mode, args) in cases().into_iter().filter(|c| filter(&c.0)) {
        if let Err(e) = check(&name, &flows(mode, &args)) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden file(s) differ:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn examples_in_direct_mode_match_golden_files() {
    run_cases(|name| !name.contains('.') && name != "base");
}

#[test]
fn one_nic_in_responder_mode_matches_golden_file() {
    run_cases(|name| name == "one-nic.responder");
}

#[test]
fn base_flows_match_golden_file() {
    run_cases(|name| name == "base");
}

#[test]
fn every_golden_file_belongs_to_a_case() {
    if blessing() {
        return;
    }
    let names: Vec<String> = cases().into_iter().map(|c| c.0).collect();
    let stale: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("read tests/golden")
        .map(|e| {
            e.expect("tests/golden entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|f| {
            f.strip_suffix(".flows")
                .is_some_and(|n| !names.iter().any(|c| c == n))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "golden files without a case (an example was renamed or removed?): {stale:?}; delete them"
    );
}

#[test]
fn responder_mode_differs_from_direct_only_in_arp_and_nd_steering() {
    // Guards the golden files themselves: the modes must differ, and only in arp_steer (40),
    // nd_steer (50) and nd_answer (55), which only the responder uses.
    let args = example_args(&root().join("examples/one-nic.xml"));
    let direct = flows("direct", &args);
    let responder = flows("responder", &args);
    let diff = line_diff(&direct, &responder);
    assert_ne!(direct, responder);
    for table in [" table=40,", " table=50,", " table=55,"] {
        assert!(
            diff.lines()
                .any(|l| l.starts_with('+') && l.contains(table)),
            "the responder adds nothing to{table}\n{diff}"
        );
    }
    for line in diff.lines() {
        assert!(
            [" table=40,", " table=50,", " table=55,"]
                .iter()
                .any(|t| line.contains(t)),
            "outside arp_steer, nd_steer and nd_answer: {line}"
        );
        assert!(
            !line.contains(" table=55,") || line.starts_with('+'),
            "direct mode has nd_answer flows: {line}"
        );
    }
}

#[test]
fn the_line_diff_is_readable() {
    let d = line_diff("a\nb\nc\n", "c\nd\na\n");
    assert_eq!(d, "-b\n+d\n");
    assert_eq!(
        line_diff("a\nb\n", "b\na\n"),
        "(the same lines in a different order)\n"
    );
    assert_eq!(line_diff("a\na\n", "a\n"), "-a\n");
}

/// docs/pipeline.md shows the flows of examples/ipv4-only.xml on ofport 7: they must be exactly
/// the golden ones, so the documentation cannot drift from the code.
#[test]
fn pipeline_doc_example_matches_golden_file() {
    let doc =
        std::fs::read_to_string(root().join("docs/pipeline.md")).expect("read docs/pipeline.md");
    let golden =
        std::fs::read_to_string(golden_dir().join("ipv4-only.flows")).expect("read golden");
    let in_doc: std::collections::BTreeSet<&str> = doc
        .lines()
        .filter(|l| {
            l.starts_with("cookie=") && l.contains("in_port=7")
                || l.starts_with("cookie=0x766700a4a883b796")
        })
        .collect();
    let want: std::collections::BTreeSet<&str> = golden.lines().collect();
    assert_eq!(
        in_doc,
        want,
        "docs/pipeline.md's example dump differs from tests/golden/ipv4-only.flows:\n{}",
        line_diff(
            &golden,
            &in_doc.iter().copied().collect::<Vec<_>>().join("\n")
        )
    );
}

/// Output cut short by its reader (`vmguard flows | head -1`) ends quietly with exit 0; output
/// that cannot be written (a full disk) is an error: one line on stderr, exit 2.
#[test]
fn a_closed_pipe_ends_output_quietly_and_a_failed_write_is_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let vg = Vmguard::new(None, "vm-switch", &["upstream"], "direct");
    let cmd = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vmguard"));
        c.arg("--config")
            .arg(&vg.config)
            .args(["flows", "--base", "--ofport", "upstream=1"])
            .env_remove("VMGUARD_CONFIG")
            .stderr(Stdio::piped());
        c
    };

    // The reader takes one line and closes the pipe; vmguard has many more to write.
    let mut child = cmd().stdout(Stdio::piped()).spawn().expect("spawn vmguard");
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("read the first bytes");
    drop(stdout);
    let out = child.wait_with_output().expect("wait for vmguard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a closed pipe is not an error; stderr:\n{stderr}"
    );
    assert!(stderr.is_empty(), "a closed pipe printed:\n{stderr}");

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let out = cmd().stdout(full).output().expect("run vmguard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr:\n{stderr}");
    assert!(
        stderr.contains("cannot write the output"),
        "stderr:\n{stderr}"
    );
}
