//! The systemd unit's exposure as `systemd-analyze security` scores it (0 safest, 10 unsafe),
//! offline, on the file the package installs: at most 1.0. `systemd-analyze` comes with the
//! `systemd` package (scripts/deps.sh); without it this test fails and says so.

use std::process::Command;

use crate::support::repo;

/// The most exposure the unit may have.
const MAX_EXPOSURE: f64 = 1.0;

#[test]
fn custodyd_service_scores_at_most_1_0_on_systemd_analyze_security() {
    let unit = repo().join("packaging/custodyd.service");
    // systemd 252 (Debian 12): --offline=yes reads the file alone; --threshold is in tenths
    // and makes the exit status non-zero above it.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={}", (MAX_EXPOSURE * 10.0) as u32))
        .arg(&unit)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze (package systemd) is required: run `make deps` ({e})")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let overall = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for custodyd.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"));
    assert!(
        overall <= MAX_EXPOSURE && out.status.success(),
        "custodyd.service scores {overall} (at most {MAX_EXPOSURE}); what is still open:\n{}",
        text.lines()
            .filter(|l| l.starts_with('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The settings the score rests on stay in the file.
    let file = std::fs::read_to_string(&unit).expect("the unit");
    for want in [
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "RemoveIPC=yes",
        "StateDirectory=custody",
        "RuntimeDirectory=custody",
        "PrivateNetwork=yes",
        "PrivateDevices=yes",
    ] {
        assert!(
            file.lines().any(|l| l == want),
            "{want} in {}",
            unit.display()
        );
    }
}
