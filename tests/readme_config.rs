//! The README's configuration table says what `parpulse --help` says: every
//! `PARPULSE_*` variable a command reads is in the table, and the table names no
//! variable the commands do not read (besides the two read outside the flags).

use std::collections::BTreeSet;

/// Read outside clap: by the local service scripts, and by the log set-up in main.rs.
const NOT_FLAGS: [&str; 2] = ["PARPULSE_HOME", "PARPULSE_LOG"];

fn variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("PARPULSE_") {
        let tail = &rest[start..];
        let end =
            tail.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        found.insert(tail[..end].trim_end_matches('_').to_owned());
        rest = &tail[end..];
    }
    found
}

#[test]
fn the_readme_configuration_table_matches_every_commands_help() {
    let commands: [&[&str]; 13] = [
        &[],
        &["migrate"],
        &["ingest", "simulate"],
        &["ingest", "http"],
        &["ingest", "file"],
        &["ingest", "token"],
        &["aggregate"],
        &["export"],
        &["report"],
        &["demo"],
        &["backup"],
        &["restore"],
        &["rebuild"],
    ];
    let mut help = BTreeSet::new();
    for command in commands {
        let output = std::process::Command::new(parpulse_tests::parpulse_bin())
            .args(command)
            .arg("--help")
            .output()
            .expect("running parpulse --help");
        assert!(output.status.success(), "parpulse {command:?} --help failed");
        help.extend(variables(&String::from_utf8_lossy(&output.stdout)));
    }
    assert!(help.len() > 20, "the commands' help names their variables: {help:?}");
    let readme = std::fs::read_to_string(parpulse_tests::prometheus::repo().join("README.md")).expect("README.md");
    let table = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Configuration section");
    let documented = variables(table);
    let missing: Vec<_> = help.difference(&documented).collect();
    assert!(missing.is_empty(), "variables the commands read but the README's table lacks: {missing:?}");
    let unknown: Vec<_> =
        documented.iter().filter(|v| !help.contains(*v) && !NOT_FLAGS.contains(&v.as_str())).collect();
    assert!(unknown.is_empty(), "variables in the README's table that no command reads: {unknown:?}");
}
