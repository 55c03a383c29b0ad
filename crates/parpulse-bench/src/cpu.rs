//! CPU time per process and per thread, read from /proc before and after a measured
//! phase: the CPU seconds per million events of the aggregator, the bare consumer,
//! the ClickHouse server and the Kafka broker (docs/BENCHMARKS.md, "CPU per event").
//!
//! Pure parts (parsing `/proc/PID/stat`, deltas, grouping threads by name, per
//! million events) apart from the reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What `/proc/PID/stat` (or `/proc/PID/task/TID/stat`) says of a process or thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTimes {
    /// The name (`comm`): a thread's own name, 15 bytes at most.
    pub comm: String,
    /// User + system time, in clock ticks (`USER_HZ`). For a process (the thread group
    /// leader's `stat`) it includes every thread, the exited ones too.
    pub ticks: u64,
}

/// Parses a `stat` line. The name sits in parentheses and may itself hold spaces and
/// parentheses, so the fields are counted from the last `)`: utime and stime are
/// fields 14 and 15 (`man 5 proc`).
pub fn parse_stat(text: &str) -> Result<TaskTimes> {
    let open = text.find('(').context("no '(' in a stat line")?;
    let close = text.rfind(')').context("no ')' in a stat line")?;
    if close < open {
        bail!("malformed stat line {text:?}");
    }
    let comm = text[open + 1..close].to_owned();
    // After ')': state (field 3) is index 0, so utime (14) is index 11, stime (15) index 12.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |index: usize, name: &str| -> Result<u64> {
        fields
            .get(index)
            .with_context(|| format!("no {name} in stat line {text:?}"))?
            .parse()
            .with_context(|| format!("{name} in stat line {text:?}"))
    };
    Ok(TaskTimes { comm, ticks: field(11, "utime")? + field(12, "stime")? })
}

/// A thread's family: its name without the trailing number librdkafka and tokio put
/// in (`rdk:broker-1`, `rdk:broker1` → `rdk:broker`).
pub fn family(comm: &str) -> String {
    let trimmed = comm.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
    if trimmed.is_empty() {
        comm.to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// CPU ticks per thread family between two snapshots of one process's threads. A
/// thread born in between counts whole (all its time is in the window); one that
/// exited in between is missing (its time shows only in the process's total:
/// [`exited`]).
pub fn thread_families(before: &BTreeMap<u32, TaskTimes>, after: &BTreeMap<u32, TaskTimes>) -> BTreeMap<String, u64> {
    let mut families = BTreeMap::new();
    for (tid, now) in after {
        let earlier = before.get(tid).filter(|b| b.comm == now.comm).map_or(0, |b| b.ticks);
        *families.entry(family(&now.comm)).or_insert(0) += now.ticks.saturating_sub(earlier);
    }
    families
}

/// The process's ticks not found in its live threads: threads that exited in the window.
pub fn exited(process_ticks: u64, families: &BTreeMap<String, u64>) -> u64 {
    process_ticks.saturating_sub(families.values().sum())
}

/// CPU seconds per million events.
pub fn per_million(cpu_seconds: f64, events: u64) -> f64 {
    if events == 0 {
        return f64::NAN;
    }
    cpu_seconds * 1e6 / events as f64
}

/// Clock ticks per second of /proc's times: `USER_HZ`, which the kernel fixes at 100
/// for user space on every architecture but alpha (what `sysconf(_SC_CLK_TCK)` returns).
pub const TICKS_PER_SECOND: f64 = 100.0;

pub fn seconds(ticks: u64) -> f64 {
    ticks as f64 / TICKS_PER_SECOND
}

/// A process's user + system ticks so far, its exited threads included.
pub fn process_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(parse_stat(&text)?.ticks)
}

/// The live threads of a process, by thread id. A thread that exits while the list is
/// read is left out.
pub fn threads(pid: u32) -> Result<BTreeMap<u32, TaskTimes>> {
    let dir = format!("/proc/{pid}/task");
    let mut threads = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else { continue };
        if let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) {
            threads.insert(tid, parse_stat(&text)?);
        }
    }
    Ok(threads)
}

/// One process's CPU over a window, whole and split by thread family.
#[derive(Debug, Clone, Default)]
pub struct ProcessCpu {
    pub seconds: f64,
    /// Seconds per thread family (see [`family`]), plus `exited threads`.
    pub threads: BTreeMap<String, f64>,
}

/// A window over one process: open it, run the phase, close it before the process
/// (or the threads of interest) ends.
pub struct Window {
    pid: u32,
    ticks: u64,
    threads: BTreeMap<u32, TaskTimes>,
}

impl Window {
    pub fn open(pid: u32) -> Result<Self> {
        Ok(Window { pid, ticks: process_ticks(pid)?, threads: threads(pid)? })
    }

    pub fn close(&self) -> Result<ProcessCpu> {
        // Threads first, then the process: the threads' sum never exceeds the process's.
        let threads_now = threads(self.pid)?;
        let ticks = process_ticks(self.pid)?;
        let total = ticks.saturating_sub(self.ticks);
        let families = thread_families(&self.threads, &threads_now);
        let gone = exited(total, &families);
        let mut threads: BTreeMap<String, f64> = families.into_iter().map(|(f, t)| (f, seconds(t))).collect();
        if gone > 0 {
            threads.insert("exited threads".to_owned(), seconds(gone));
        }
        Ok(ProcessCpu { seconds: seconds(total), threads })
    }
}

/// The local services' processes (deploy/local writes their pid files under
/// `$PARPULSE_HOME`, by default `.parpulse` in the repository).
#[derive(Debug, Clone, Default)]
pub struct Services {
    pub clickhouse: Option<u32>,
    pub broker: Option<u32>,
}

/// The services' CPU seconds over a window (None: not running here).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServicesCpu {
    pub clickhouse: Option<f64>,
    pub broker: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub struct ServicesMark {
    clickhouse: Option<u64>,
    broker: Option<u64>,
}

impl Services {
    pub fn local() -> Self {
        let home = std::env::var_os("PARPULSE_HOME").map_or_else(|| PathBuf::from(".parpulse"), PathBuf::from);
        Services {
            clickhouse: running_pid(&home.join("clickhouse/clickhouse.pid")),
            broker: running_pid(&home.join("kafka/kafka.pid")),
        }
    }

    pub fn mark(&self) -> ServicesMark {
        ServicesMark {
            clickhouse: self.clickhouse.and_then(|p| process_ticks(p).ok()),
            broker: self.broker.and_then(|p| process_ticks(p).ok()),
        }
    }

    /// CPU seconds since `start`.
    pub fn since(&self, start: &ServicesMark) -> ServicesCpu {
        let now = self.mark();
        let delta = |a: Option<u64>, b: Option<u64>| Some(seconds(b?.saturating_sub(a?)));
        ServicesCpu { clickhouse: delta(start.clickhouse, now.clickhouse), broker: delta(start.broker, now.broker) }
    }
}

/// The pid in a pid file, if that process runs.
fn running_pid(file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    process_ticks(pid).ok().map(|_| pid)
}

/// Command lines of end-to-end test binaries (`deps/e2e_*`) running now: the machine
/// is shared, and their load shows in the services' CPU.
pub fn e2e_tests_running() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter_map(|cmdline| {
            let program = cmdline.split(|&b| b == 0).next()?;
            let program = String::from_utf8_lossy(program);
            let name = program.rsplit('/').next()?;
            (program.contains("deps/e2e_")).then(|| name.split('-').next().unwrap_or(name).to_owned())
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(comm: &str, ticks: u64) -> TaskTimes {
        TaskTimes { comm: comm.to_owned(), ticks }
    }

    #[test]
    fn stat_lines_give_name_and_user_plus_system_ticks() {
        // A real line of a tokio worker (fields 14 and 15: 1234 and 56).
        let line = "4242 (tokio-runtime-w) S 4200 4200 4200 0 -1 4194624 900 0 0 0 1234 56 0 0 20 0 7 0 \
                    123456 1000000 5000 18446744073709551615 1 1 0 0 0 0 0 4096 17663 0 0 0 -1 1 0 0 0 0 0";
        assert_eq!(parse_stat(line).unwrap(), task("tokio-runtime-w", 1290));
    }

    #[test]
    fn names_with_spaces_and_parentheses_do_not_shift_the_fields() {
        let line = "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(line).unwrap(), task("a) b (c", 30));
    }

    #[test]
    fn truncated_or_garbled_lines_are_errors() {
        assert!(parse_stat("7 (x) R 1 7").is_err());
        assert!(parse_stat("7 x R").is_err());
        assert!(parse_stat("7 (x) R 1 7 7 0 -1 0 0 0 0 0 ten 20 0").is_err());
    }

    #[test]
    fn thread_families_drop_the_trailing_number() {
        assert_eq!(family("rdk:broker-1"), "rdk:broker");
        assert_eq!(family("rdk:broker1001"), "rdk:broker");
        assert_eq!(family("rdk:main"), "rdk:main");
        assert_eq!(family("tokio-runtime-w"), "tokio-runtime-w");
        assert_eq!(family("1234"), "1234");
    }

    #[test]
    fn deltas_count_new_threads_whole_and_miss_exited_ones() {
        let before = BTreeMap::from([(1, task("parpulse", 5)), (2, task("rdk:broker1", 100)), (3, task("gone", 40))]);
        let after = BTreeMap::from([
            (1, task("parpulse", 7)),
            (2, task("rdk:broker1", 160)),
            (4, task("rdk:broker2", 30)),
            // A thread id reused by a new thread of another name counts whole.
            (5, task("tokio-runtime-w", 11)),
        ]);
        let families = thread_families(&before, &after);
        assert_eq!(
            families,
            BTreeMap::from([
                ("parpulse".to_owned(), 2),
                ("rdk:broker".to_owned(), 90),
                ("tokio-runtime-w".to_owned(), 11)
            ])
        );
        // The process gained 120 ticks; 103 are in live threads, 17 in the one that exited.
        assert_eq!(exited(120, &families), 17);
        assert_eq!(exited(50, &families), 0);
    }

    #[test]
    fn per_million_events() {
        assert_eq!(per_million(3.0, 2_000_000), 1.5);
        assert_eq!(per_million(0.5, 500_000), 1.0);
        assert!(per_million(1.0, 0).is_nan());
    }

    #[test]
    fn this_process_and_its_threads_are_read() {
        let pid = std::process::id();
        let window = Window::open(pid).unwrap();
        let own = || parse_stat(&std::fs::read_to_string("/proc/thread-self/stat").unwrap()).unwrap();
        let (name, start) = (own().comm, own().ticks);
        // Busy until this thread has used 20 ticks (the machine may be shared: wait on CPU, not time).
        let mut x = 0u64;
        while own().ticks < start + 20 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        let cpu = window.close().unwrap();
        let twenty_ticks = seconds(20);
        assert!(cpu.seconds >= twenty_ticks, "{cpu:?}");
        assert!(cpu.threads[&family(&name)] >= twenty_ticks, "{name}: {cpu:?}");
        assert!(cpu.threads.values().sum::<f64>() <= cpu.seconds + 1e-9, "{cpu:?}");
    }
}
