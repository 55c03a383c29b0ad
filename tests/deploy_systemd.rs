//! The systemd units of deploy/systemd: `systemd-analyze verify` finds nothing in them
//! (deploy/systemd/verify.sh; no running systemd needed), each restarts on failure, runs
//! as the dedicated user with its configuration and secrets from the environment file,
//! and starts a command the parpulse binary really has.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_owned()
}

const UNITS: [&str; 3] = ["parpulse-aggregate.service", "parpulse-export.service", "parpulse-intake.service"];

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let output = Command::new("bash")
        .arg(repo().join("deploy/systemd/verify.sh"))
        .output()
        .expect("running deploy/systemd/verify.sh");
    assert!(
        output.status.success(),
        "deploy/systemd/verify.sh failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn each_unit_restarts_on_failure_as_the_parpulse_user_and_starts_a_real_command() {
    for unit in UNITS {
        let text = std::fs::read_to_string(repo().join("deploy/systemd").join(unit)).expect("reading a unit");
        let has = |line: &str| text.lines().any(|l| l.trim() == line);
        for line in [
            "Restart=on-failure",
            "User=parpulse",
            "Group=parpulse",
            "EnvironmentFile=/etc/parpulse/parpulse.env",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "CapabilityBoundingSet=",
        ] {
            assert!(has(line), "{unit} lacks {line}");
        }
        assert!(!text.contains("PASSWORD="), "{unit}: secrets belong in the environment file, not the unit");
        let command = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/parpulse "))
            .unwrap_or_else(|| panic!("{unit}: no ExecStart=/usr/local/bin/parpulse"));
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.push("--help");
        let output =
            Command::new(parpulse_tests::parpulse_bin()).args(&args).output().expect("running parpulse --help");
        assert!(
            output.status.success(),
            "{unit}: `parpulse {}` is not a parpulse command:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
