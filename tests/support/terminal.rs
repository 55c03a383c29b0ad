//! Running a command as a person at a terminal sees it.

use std::process::Command;

/// Runs `command` under a pseudo-terminal (util-linux `script`), returning whether it
/// succeeded and what the terminal showed. Arguments are single-quoted for the shell.
pub fn run_in_terminal(command: &Command) -> (bool, String) {
    let mut line = vec![command.get_program().to_string_lossy().into_owned()];
    line.extend(command.get_args().map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''"))));
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"]);
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            script.env(key, value);
        }
    }
    let output = script.output().expect("running `script` (util-linux) for a pseudo-terminal");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}
