//! Two aggregators in one consumer group against one, side by side on the same
//! pre-loaded topic (issue 15: "at least 1.6x the CPU-normalised throughput of one").
//!
//! On 2 cores shared with the broker and ClickHouse a second aggregator gets no core of
//! its own, so the measured throughput ratio is bounded by how busy the machine already
//! is with one (`2 cores / busy cores`). The CPU-normalised ratio takes that out: each
//! configuration's throughput if every aggregator process had the CPU it used per event
//! to itself, `instances / (aggregator CPU seconds per event)`, so two against one is
//! `2 x (CPU per event of one) / (CPU per event of two)`: 2 when a second member costs
//! nothing in coordination (rebalances, duplicated work, smaller batches), less when it
//! does.

use crate::aggregator::AggregatorRun;
use crate::cpu::per_million;
use crate::report::Report;

#[derive(Default)]
struct Side {
    events_per_sec: Vec<f64>,
    settled: Vec<f64>,
    cpu_per_million: Vec<f64>,
    busy_cores: Vec<f64>,
}

#[derive(Default)]
pub struct GroupFigures {
    /// Index 0: one aggregator, 1: two in one group.
    sides: [Side; 2],
}

impl GroupFigures {
    pub fn add(&mut self, instances: usize, events: u64, run: &AggregatorRun) {
        let side = &mut self.sides[usize::from(instances > 1)];
        side.events_per_sec.push(run.events_per_sec);
        side.settled.push(run.events_per_sec_settled);
        side.cpu_per_million.push(per_million(run.cpu.seconds, events));
        let wall = events as f64 / run.events_per_sec_from_start;
        let services = run.services.clickhouse.unwrap_or(0.0) + run.services.broker.unwrap_or(0.0);
        side.busy_cores.push((run.cpu.seconds + services) / wall);
    }

    pub fn write(&self, report: &mut Report) {
        let [one, two] = &self.sides;
        if one.events_per_sec.is_empty() || two.events_per_sec.is_empty() {
            return;
        }
        let t1 = report.add(
            "group: one aggregator (audit on), first event to caught up",
            "events/s",
            one.events_per_sec.clone(),
            "",
        );
        report.add(
            "group: two aggregators in one group, first event to caught up",
            "events/s",
            two.events_per_sec.clone(),
            "includes the hand-over of half the partitions when the second joins",
        );
        let t2 = report.add(
            "group: two aggregators, from both holding partitions to caught up",
            "events/s",
            two.settled.clone(),
            "",
        );
        report.add("group: two / one, throughput as measured", "x", vec![t2 / t1], "bounded by the next line");
        let busy = report.add(
            "group: machine busy with one aggregator (aggregator + ClickHouse + broker)",
            "cores",
            one.busy_cores.clone(),
            "2 cores / this bounds the measured ratio",
        );
        report.add("group: bound on two / one on this machine", "x", vec![2.0 / busy], "");
        let c1 = report.add("group: aggregator CPU, one", "CPU s/M events", one.cpu_per_million.clone(), "");
        let c2 = report.add("group: aggregators' CPU, two (sum)", "CPU s/M events", two.cpu_per_million.clone(), "");
        report.add(
            "group: two / one, CPU-normalised (2 x CPU per event of one / of two)",
            "x",
            vec![2.0 * c1 / c2],
            "target >= 1.6",
        );
        report.add("group: busy cores with two", "cores", two.busy_cores.clone(), "");
    }
}
