//! The lab's one result table: a row per case (per VM where it applies) and a summary line.

use std::fmt::Write;

/// What a case is expected to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Legitimate traffic arrives (SPEC "must be delivered").
    Delivered,
    /// The attack has no effect on any victim (SPEC "must be dropped").
    Blocked,
    /// A measurement whose value is checked (ARP fan-out).
    Measured,
    /// The same attack without vmguard succeeds: proves the check can see a hit.
    Control,
}

impl Expect {
    fn label(self) -> &'static str {
        match self {
            Expect::Delivered => "delivered",
            Expect::Blocked => "blocked",
            Expect::Measured => "measured",
            Expect::Control => "control",
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// SPEC reference, e.g. `D1` (delivered item 1) or `X4` (dropped item 4).
    pub spec: &'static str,
    pub case: String,
    /// The VM the row is about, or `-`.
    pub vm: String,
    pub expect: Expect,
    pub ok: bool,
    pub evidence: String,
}

impl Row {
    pub fn new(
        spec: &'static str,
        case: impl Into<String>,
        vm: impl Into<String>,
        expect: Expect,
        outcome: Result<String, String>,
    ) -> Row {
        let (ok, evidence) = match outcome {
            Ok(e) => (true, e),
            Err(e) => (false, e),
        };
        Row {
            spec,
            case: case.into(),
            vm: vm.into(),
            expect,
            ok,
            evidence,
        }
    }
}

/// The table, with a header, and the closing `N passed, M failed` line.
pub fn render(rows: &[Row]) -> String {
    let case_w = rows.iter().map(|r| r.case.len()).max().unwrap_or(4).max(4);
    let vm_w = rows.iter().map(|r| r.vm.len()).max().unwrap_or(2).max(2);
    let mut out = String::new();
    let header = format!(
        "{:>3}  {:<4}  {:<case_w$}  {:<vm_w$}  {:<9}  {:<6}  evidence",
        "#", "spec", "case", "vm", "expect", "result"
    );
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "-".repeat(header.len() + 20));
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>3}  {:<4}  {:<case_w$}  {:<vm_w$}  {:<9}  {:<6}  {}",
            i + 1,
            r.spec,
            r.case,
            r.vm,
            r.expect.label(),
            if r.ok { "ok" } else { "FAIL" },
            r.evidence
        );
    }
    let passed = rows.iter().filter(|r| r.ok).count();
    let _ = writeln!(out, "lab: {passed} passed, {} failed", rows.len() - passed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts() {
        let rows = [
            Row::new("D1", "ping", "vm1", Expect::Delivered, Ok("4/4".into())),
            Row::new(
                "X1",
                "spoof",
                "-",
                Expect::Blocked,
                Err("got through".into()),
            ),
        ];
        let t = render(&rows);
        assert!(
            t.contains("  1  D1    ping   vm1  delivered  ok      4/4"),
            "{t}"
        );
        assert!(t.contains("FAIL    got through"), "{t}");
        assert!(t.ends_with("lab: 1 passed, 1 failed\n"), "{t}");
    }
}
