//! Optional sampling profiles (`--perf-seconds`): `perf record` on the aggregator and
//! the ClickHouse server while the aggregator runs, and on the ClickHouse server while
//! the peer ingests. Read them with `perf report -i FILE --stdio --no-children`.
//! Sampling costs CPU: the CPU lines of a profiled run are not the figures to quote.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct Profile {
    pub seconds: u64,
    pub dir: PathBuf,
}

/// `perf record` processes that run for [`Profile::seconds`].
pub struct Recording(Vec<(PathBuf, Child)>);

impl Profile {
    /// Starts one `perf record` per (name, pid), written to `DIR/perf-NAME.data`.
    pub fn start(&self, targets: &[(&str, u32)]) -> Result<Recording> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let mut recording = Recording(Vec::new());
        for (name, pid) in targets {
            let out = self.dir.join(format!("perf-{name}.data"));
            let child = Command::new("perf")
                .args(["record", "-F", "250", "--call-graph", "dwarf,32768", "-p", &pid.to_string(), "-o"])
                .arg(&out)
                .args(["--", "sleep", &self.seconds.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting perf record (is perf installed? docs/BENCHMARKS.md, Profile)")?;
            recording.0.push((out, child));
        }
        Ok(recording)
    }
}

impl Recording {
    /// Waits for every `perf record` to finish; the files written. perf ends by a
    /// signal when its target exits before the time is up, with the file written; a
    /// profile that failed is reported, not an error of the run.
    pub fn finish(self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for (out, mut child) in self.0 {
            let status = child.wait().context("waiting for perf record")?;
            let written = std::fs::metadata(&out).map(|m| m.len() > 0).unwrap_or(false);
            if written {
                files.push(out);
            } else {
                eprintln!("perf record for {} wrote nothing ({status})", out.display());
            }
        }
        Ok(files)
    }
}
