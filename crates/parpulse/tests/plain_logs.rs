//! Log lines carry colour codes only on a terminal: piped into a file, journald or
//! `make demo`'s output they are plain text, and NO_COLOR turns colour off on a terminal
//! too. No services: `ingest token` logs the calendar it loads and prints a token.

use std::process::Command;

const ESC: char = '\u{1b}';

fn token_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parpulse"));
    let holidays = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/holidays.toml");
    command.args(["--holidays", holidays, "ingest", "token", "--agency", "SNV"]);
    command.env("PARPULSE_LOG", "info").env_remove("NO_COLOR");
    command
}

/// What a terminal shows of `command` run under a pseudo-terminal (util-linux `script`).
fn on_a_terminal(command: &Command) -> String {
    let mut line = vec![command.get_program().to_string_lossy().into_owned()];
    line.extend(command.get_args().map(|a| format!("'{}'", a.to_string_lossy())));
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"]);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let output = script.output().expect("running `script` (util-linux) for a pseudo-terminal");
    assert!(output.status.success(), "parpulse ingest token failed: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn piped_logs_are_plain_text() {
    let output = token_command().output().expect("running parpulse");
    assert!(output.status.success());
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("working-day calendar loaded"), "the calendar's log line: {logs}");
    assert!(!logs.contains(ESC), "colour codes in piped logs: {logs:?}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains(ESC), "colour codes in the output");
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let screen = on_a_terminal(&token_command());
    assert!(screen.contains("working-day calendar loaded"), "the calendar's log line: {screen}");
    assert!(screen.contains(ESC), "no colour on a terminal: {screen:?}");
    let mut plain = token_command();
    plain.env("NO_COLOR", "1");
    let screen = on_a_terminal(&plain);
    assert!(screen.contains("working-day calendar loaded"), "the calendar's log line: {screen}");
    assert!(!screen.contains(ESC), "colour despite NO_COLOR: {screen:?}");
}
