//! The CPU-per-event lines of the report (issue 15): CPU seconds per million events
//! of each process, gathered over the repeats, and the ratios the goals are set on.

use std::collections::{BTreeMap, BTreeSet};

use crate::aggregator::AggregatorRun;
use crate::cpu::{per_million, ProcessCpu, ServicesCpu};
use crate::kafka::ConsumerWork;
use crate::report::{median, Report};

const UNIT: &str = "CPU s/M events";

/// Seconds per million events per thread family, one value per run.
type Families = BTreeMap<String, Vec<f64>>;

#[derive(Default)]
struct AggregatorSide {
    process: Vec<f64>,
    threads: Families,
    clickhouse: Vec<f64>,
    broker: Vec<f64>,
    /// Aggregator + ClickHouse, per run.
    pipeline: Vec<f64>,
}

#[derive(Default)]
pub struct CpuFigures {
    bare: Vec<f64>,
    bare_threads: Families,
    bare_broker: Vec<f64>,
    /// The bare consumer doing the aggregator's admission, nothing more.
    admit: Vec<f64>,
    /// The bare consumer doing the aggregator's admission and state update, nothing more.
    floor: Vec<f64>,
    floor_threads: Families,
    /// Index 1: audit table on (as deployed), 0: off.
    aggregator: [AggregatorSide; 2],
    peer_clickhouse: Vec<f64>,
    peer_broker: Vec<f64>,
    e2e_seen: BTreeSet<String>,
}

fn add_threads(families: &mut Families, cpu: &ProcessCpu, events: u64) {
    for (family, seconds) in &cpu.threads {
        families.entry(family.clone()).or_default().push(per_million(*seconds, events));
    }
}

/// Ratios of paired runs (run i of each side), or of the medians when the sides ran a
/// different number of times.
pub fn ratios(numerator: &[f64], denominator: &[f64]) -> Vec<f64> {
    if numerator.is_empty() || denominator.is_empty() {
        return Vec::new();
    }
    if numerator.len() == denominator.len() {
        numerator.iter().zip(denominator).map(|(a, b)| a / b).collect()
    } else {
        vec![median(numerator) / median(denominator)]
    }
}

impl CpuFigures {
    pub fn bare(&mut self, work: ConsumerWork, events: u64, cpu: &ProcessCpu, services: ServicesCpu) {
        match work {
            ConsumerWork::Nothing => {
                self.bare.push(per_million(cpu.seconds, events));
                add_threads(&mut self.bare_threads, cpu, events);
                self.bare_broker.extend(services.broker.map(|s| per_million(s, events)));
            }
            ConsumerWork::Admit => self.admit.push(per_million(cpu.seconds, events)),
            ConsumerWork::AdmitAndApply => {
                self.floor.push(per_million(cpu.seconds, events));
                add_threads(&mut self.floor_threads, cpu, events);
            }
        }
        self.note_e2e_tests();
    }

    pub fn aggregator(&mut self, audit: bool, events: u64, run: &AggregatorRun) {
        let side = &mut self.aggregator[usize::from(audit)];
        let process = per_million(run.cpu.seconds, events);
        side.process.push(process);
        add_threads(&mut side.threads, &run.cpu, events);
        if let Some(clickhouse) = run.services.clickhouse.map(|s| per_million(s, events)) {
            side.clickhouse.push(clickhouse);
            side.pipeline.push(process + clickhouse);
        }
        side.broker.extend(run.services.broker.map(|s| per_million(s, events)));
        self.note_e2e_tests();
    }

    pub fn peer(&mut self, events: u64, services: ServicesCpu) {
        self.peer_clickhouse.extend(services.clickhouse.map(|s| per_million(s, events)));
        self.peer_broker.extend(services.broker.map(|s| per_million(s, events)));
        self.note_e2e_tests();
    }

    /// Other helpers' end-to-end tests load the shared services: remember any seen.
    pub fn note_e2e_tests(&mut self) {
        self.e2e_seen.extend(crate::cpu::e2e_tests_running());
    }

    pub fn write(&self, report: &mut Report) {
        if !self.bare.is_empty() {
            report.add(
                "CPU: bare consumer (polling thread + librdkafka's threads), first to last message",
                UNIT,
                self.bare.clone(),
                "",
            );
            for (family, runs) in &self.bare_threads {
                report.add(format!("CPU: bare consumer, thread `{family}`"), UNIT, runs.clone(), "");
            }
            report.add("CPU: broker during the bare consumer", UNIT, self.bare_broker.clone(), "for context");
        }
        if !self.admit.is_empty() {
            report.add(
                "CPU: bare consumer + the aggregator's admission (decode, validate), nothing more",
                UNIT,
                self.admit.clone(),
                "",
            );
        }
        if !self.floor.is_empty() {
            report.add(
                "CPU: bare consumer + the aggregator's admission (decode, validate) and state update, no I/O",
                UNIT,
                self.floor.clone(),
                "the work no aggregator of an untrusted topic skips",
            );
            for (family, runs) in &self.floor_threads {
                report.add(
                    format!("CPU: bare consumer + admission and state, thread `{family}`"),
                    UNIT,
                    runs.clone(),
                    "",
                );
            }
            report.add(
                "CPU: (bare consumer + admission and state) / bare consumer",
                "x",
                ratios(&self.floor, &self.bare),
                "above 2, the aggregator's goal of <= 2 is out of reach before rows, checkpoints and audit",
            );
        }
        for audit in [true, false] {
            let side = &self.aggregator[usize::from(audit)];
            if side.process.is_empty() {
                continue;
            }
            let label = if audit { "audit on (as deployed)" } else { "audit off" };
            report.add(format!("CPU: aggregator process, {label}, from process start"), UNIT, side.process.clone(), "");
            for (family, runs) in &side.threads {
                report.add(format!("CPU: aggregator, {label}, thread `{family}`"), UNIT, runs.clone(), "");
            }
            report.add(
                format!("CPU: aggregator / bare consumer, {label}"),
                "x",
                ratios(&side.process, &self.bare),
                "goal <= 2",
            );
            if !self.floor.is_empty() {
                report.add(
                    format!("CPU: aggregator / (bare consumer + admission and state), {label}"),
                    "x",
                    ratios(&side.process, &self.floor),
                    "what rows, checkpoints, audit and the runtime add",
                );
            }
            report.add(
                format!("CPU: ClickHouse server during the aggregator run, {label}"),
                UNIT,
                side.clickhouse.clone(),
                "",
            );
            report.add(format!("CPU: pipeline (aggregator + ClickHouse), {label}"), UNIT, side.pipeline.clone(), "");
            report.add(
                format!("CPU: broker during the aggregator run, {label}"),
                UNIT,
                side.broker.clone(),
                "for context",
            );
        }
        if !self.peer_clickhouse.is_empty() {
            report.add(
                "CPU: peer's ClickHouse server (Kafka engine + materialized view), first event produced to last row",
                UNIT,
                self.peer_clickhouse.clone(),
                "",
            );
            for audit in [true, false] {
                let side = &self.aggregator[usize::from(audit)];
                let label = if audit { "audit on (as deployed)" } else { "audit off" };
                report.add(
                    format!("CPU: pipeline / peer's ClickHouse, {label}"),
                    "x",
                    ratios(&side.pipeline, &self.peer_clickhouse),
                    "goal <= 0.5",
                );
            }
            report.add(
                "CPU: broker during the peer run (also takes the harness's produce)",
                UNIT,
                self.peer_broker.clone(),
                "for context",
            );
        }
        if self.e2e_seen.is_empty() {
            report.line("no end-to-end test (deps/e2e_*) seen running at the end of a CPU-measured phase");
        } else {
            let seen: Vec<&str> = self.e2e_seen.iter().map(String::as_str).collect();
            report.line(format!(
                "end-to-end tests seen running at the end of a CPU-measured phase (their load is in the services' CPU): {}",
                seen.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pair_runs_or_fall_back_to_medians() {
        assert_eq!(ratios(&[2.0, 6.0], &[1.0, 2.0]), vec![2.0, 3.0]);
        assert_eq!(ratios(&[2.0, 4.0, 9.0], &[2.0]), vec![2.0]);
        assert!(ratios(&[], &[1.0]).is_empty());
    }
}
