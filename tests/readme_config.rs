//! The README's configuration table says what `parpulse <command> --help` says: every
//! `PARPULSE_*` variable a command reads is in the table, the table names no variable
//! the commands do not read (besides the two read outside the flags), each row's
//! defaults are the ones the help shows, and no variable or row is there twice.

use std::collections::{BTreeMap, BTreeSet};

/// Read outside clap: by the local service scripts, and by the log set-up in main.rs.
const NOT_FLAGS: [&str; 2] = ["PARPULSE_HOME", "PARPULSE_LOG"];

/// How the table says "no default value" (the help then shows no `[default: ...]`).
const NO_DEFAULT: [&str; 4] = ["none", "system roots", "broker default", "built-in"];

const COMMANDS: [&[&str]; 13] = [
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

/// Every `PARPULSE_*` name in `text`, in order of appearance.
fn variables(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("PARPULSE_") {
        let tail = &rest[start..];
        let end =
            tail.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        found.push(tail[..end].trim_end_matches('_').to_owned());
        rest = &tail[end..];
    }
    found
}

/// What the help says of the variables flags read: `[env: NAME=] [default: VALUE]`,
/// VALUE `None` without a default (`""` shows as an empty string).
fn flag_defaults(help: &str) -> BTreeMap<String, Option<String>> {
    let mut found = BTreeMap::new();
    let mut rest = help;
    while let Some(start) = rest.find("[env: ") {
        let tail = &rest[start + "[env: ".len()..];
        let name = &tail[..tail.find('=').expect("[env: NAME=]")];
        let after = &tail[tail.find(']').expect("[env: ...] closes") + 1..];
        let default = after.strip_prefix(" [default: ").map(|value| {
            let value = &value[..value.find(']').expect("[default: ...] closes")];
            value.trim_matches('"').to_owned()
        });
        found.insert(name.to_owned(), default);
        rest = after;
    }
    found
}

fn help_of(command: &[&str]) -> String {
    let mut run = std::process::Command::new(parpulse_tests::parpulse_bin());
    run.args(command).arg("--help");
    // The help shows a variable's value when it is set: show the defaults only.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PARPULSE_") {
            run.env_remove(name);
        }
    }
    let output = run.output().expect("running parpulse --help");
    assert!(output.status.success(), "parpulse {command:?} --help failed");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// One row of the table: its variables and what its default column says of each.
struct Row {
    line: String,
    defaults: Vec<(String, String)>,
}

fn table_rows(readme: &str) -> Vec<Row> {
    let section = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Configuration section");
    let rows: Vec<Row> = section
        .lines()
        .filter(|line| line.starts_with("| `PARPULSE_"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            assert!(cells.len() >= 3, "a row has variable, default and meaning: {line}");
            let names = variables(cells[0]);
            let stated: Vec<String> = cells[1].split(" / ").map(written_default).collect();
            let defaults = match stated.len() {
                1 => names.iter().map(|n| (n.clone(), stated[0].clone())).collect(),
                n if n == names.len() => names.into_iter().zip(stated).collect(),
                _ => panic!("one default, or one per variable separated by ' / ': {line}"),
            };
            Row { line: line.to_owned(), defaults }
        })
        .collect();
    assert!(rows.len() > 20, "the table was found: {} rows", rows.len());
    rows
}

/// The default as written, without backticks and without a remark in parentheses:
/// "`parpulse` (`parpulse_demo` for `make demo`)" is `parpulse`.
fn written_default(cell: &str) -> String {
    let cell = cell.trim();
    let cell = match cell.find(" (") {
        Some(remark) if cell.ends_with(')') => &cell[..remark],
        _ => cell,
    };
    cell.replace('`', "").trim().to_owned()
}

#[test]
fn the_readme_configuration_table_matches_every_commands_help() {
    let mut mentioned = BTreeSet::new();
    let mut flags: BTreeMap<String, Option<String>> = BTreeMap::new();
    for command in COMMANDS {
        let help = help_of(command);
        mentioned.extend(variables(&help));
        for (name, default) in flag_defaults(&help) {
            if let Some(other) = flags.insert(name.clone(), default.clone()) {
                assert_eq!(other, default, "{name} has two defaults in the commands' help");
            }
        }
    }
    assert!(flags.len() > 20, "the commands' help names their variables: {flags:?}");
    let readme = std::fs::read_to_string(parpulse_tests::prometheus::repo().join("README.md")).expect("README.md");
    let rows = table_rows(&readme);

    let mut seen_lines = BTreeSet::new();
    let mut documented = BTreeMap::new();
    for row in &rows {
        assert!(seen_lines.insert(row.line.as_str()), "a row of the table is repeated: {}", row.line);
        for (name, default) in &row.defaults {
            let earlier = documented.insert(name.clone(), default.clone());
            assert!(earlier.is_none(), "{name} is in two rows of the table");
        }
    }

    let missing: Vec<_> = mentioned.iter().filter(|v| !documented.contains_key(*v)).collect();
    assert!(missing.is_empty(), "variables the commands read but the README's table lacks: {missing:?}");
    let unknown: Vec<_> =
        documented.keys().filter(|v| !mentioned.contains(*v) && !NOT_FLAGS.contains(&v.as_str())).collect();
    assert!(unknown.is_empty(), "variables in the README's table that no command reads: {unknown:?}");

    let mut wrong = Vec::new();
    for (name, written) in &documented {
        if NOT_FLAGS.contains(&name.as_str()) {
            continue;
        }
        // Read outside the flags (the passwords): no default.
        let shown = flags.get(name).cloned().flatten();
        let agrees = match &shown {
            None => NO_DEFAULT.iter().any(|none| written.starts_with(none)),
            Some(value) if value.is_empty() => written == "empty",
            Some(value) => written == value,
        };
        if !agrees {
            wrong.push(format!("{name}: README says {written:?}, --help says {shown:?}"));
        }
    }
    assert!(wrong.is_empty(), "defaults in the README's table that --help contradicts:\n{}", wrong.join("\n"));
}

#[test]
fn a_stated_default_is_read_without_its_remark() {
    assert_eq!(written_default(" `parpulse` (`parpulse_demo` for `make demo`) "), "parpulse");
    assert_eq!(written_default("8388608 (8 MiB)"), "8388608");
    assert_eq!(written_default("`127.0.0.1:9464`"), "127.0.0.1:9464");
    let help = "x [env: PARPULSE_A=] [default: 5]\n y [env: PARPULSE_B=]\n z [env: PARPULSE_C=] [default: \"\"]";
    let defaults = flag_defaults(help);
    assert_eq!(defaults["PARPULSE_A"].as_deref(), Some("5"));
    assert_eq!(defaults["PARPULSE_B"], None);
    assert_eq!(defaults["PARPULSE_C"].as_deref(), Some(""));
}
