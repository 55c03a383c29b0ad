//! parpulse's aggregator end to end: decode, aggregate, checkpoint into ClickHouse.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use parpulse_core::LocalDay;

use crate::cpu::Services;
use crate::peer::DayCounts;
use crate::process::{free_port, scrape, Deployment};
use crate::profile::Profile;

pub struct AggregatorRun {
    /// Events per second from the first event applied to the final checkpoint.
    pub events_per_sec: f64,
    /// Events per second from the process start (group join, state load) to the final checkpoint.
    pub events_per_sec_from_start: f64,
    /// Events per second once every instance holds partitions (the group's first
    /// hand-over done) to the final checkpoint; with one instance, `events_per_sec`.
    pub events_per_sec_settled: f64,
    pub peak_rss_mib: f64,
    /// Dossiers and day buckets the aggregators held at their last checkpoint (their
    /// gauges, summed): what the state amounts to, beside the peak RSS.
    pub state_in_memory: StateInMemory,
    /// The aggregator process's CPU from its start to the final checkpoint, by thread.
    pub cpu: crate::cpu::ProcessCpu,
    /// The ClickHouse server's and the broker's CPU over the same window.
    pub services: crate::cpu::ServicesCpu,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct StateInMemory {
    pub dossiers: f64,
    pub day_buckets: f64,
}

/// Starts `parpulse aggregate` on a migrated deployment whose dossier topic holds
/// `n` events and measures it until its checkpoints reach the end; `audit`: whether it
/// also writes every event whole to the `event_log` audit table (the default).
/// With `profile`, `perf record` samples the aggregator and the ClickHouse server from
/// the first event applied (see profile.rs).
pub async fn run(
    deployment: &Deployment,
    n: u64,
    audit: bool,
    services: &Services,
    profile: Option<&Profile>,
) -> Result<AggregatorRun> {
    run_group(deployment, n, audit, services, 1, profile).await
}

/// [`run`] with `instances` aggregators in one consumer group, started together: the
/// group's partitions are shared among them. CPU is the sum of the processes', peak RSS
/// the largest; the profile (if any) samples the first.
pub async fn run_group(
    deployment: &Deployment,
    n: u64,
    audit: bool,
    services: &Services,
    instances: usize,
    profile: Option<&Profile>,
) -> Result<AggregatorRun> {
    let store = deployment.store().await?;
    let services_start = services.mark();
    let started = Instant::now();
    let mut children = Vec::new();
    let mut endpoints = Vec::new();
    let mut windows = Vec::new();
    for _ in 0..instances {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut command = deployment.command(&["aggregate", "--listen", &listen]);
        command.env("PARPULSE_AUDIT_EVENTS", audit.to_string());
        let child = crate::process::Running(command.spawn()?);
        windows.push(crate::cpu::Window::open(child.0.id())?);
        endpoints.push(format!("http://127.0.0.1:{port}/metrics"));
        children.push(child);
    }
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let first = 'first: loop {
        for metrics in &endpoints {
            if scrape(&client, metrics, "parpulse_aggregator_events_total").await.unwrap_or(0.0) > 0.0 {
                break 'first Instant::now();
            }
        }
        if !children.iter_mut().all(|child| child.alive()) || Instant::now() > deadline {
            bail!("the aggregators applied nothing within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // With several instances the first to join takes every partition and hands half over
    // when the next joins (the local broker has no initial rebalance delay).
    let (settled, applied_when_settled) = if instances > 1 {
        loop {
            let mut holding = 0;
            let mut applied = 0.0;
            for metrics in &endpoints {
                if scrape(&client, metrics, "parpulse_aggregator_assigned_partitions").await.unwrap_or(0.0) > 0.0 {
                    holding += 1;
                }
                applied += scrape(&client, metrics, "parpulse_aggregator_events_total").await.unwrap_or(0.0);
            }
            if holding == instances {
                break (Instant::now(), applied);
            }
            if !children.iter_mut().all(|child| child.alive()) || Instant::now() > deadline {
                bail!("the {instances} aggregators never all held partitions");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    } else {
        (first, 0.0)
    };
    let recording = match profile {
        Some(profile) => {
            let label = if audit { "audit" } else { "no-audit" };
            let (aggregator, clickhouse) = (format!("aggregator-{label}"), format!("clickhouse-{label}"));
            let mut targets = vec![(aggregator.as_str(), children[0].0.id())];
            targets.extend(services.clickhouse.map(|pid| (clickhouse.as_str(), pid)));
            Some(profile.start(&targets)?)
        }
        None => None,
    };
    deployment.wait_caught_up(&store, Duration::from_secs(1800)).await?;
    let done = Instant::now();
    let services = services.since(&services_start);
    let mut cpu = crate::cpu::ProcessCpu::default();
    for window in &windows {
        let one = window.close()?;
        cpu.seconds += one.seconds;
        for (family, seconds) in one.threads {
            *cpu.threads.entry(family).or_default() += seconds;
        }
    }
    let mut state_in_memory = StateInMemory::default();
    for metrics in &endpoints {
        for (name, total) in [
            ("parpulse_aggregator_dossiers_in_memory", &mut state_in_memory.dossiers),
            ("parpulse_aggregator_day_buckets_in_memory", &mut state_in_memory.day_buckets),
        ] {
            *total += scrape(&client, metrics, name).await.with_context(|| format!("no {name} on {metrics}"))?;
        }
    }
    let mut peak_rss_mib: f64 = 0.0;
    for child in &children {
        peak_rss_mib = peak_rss_mib.max(child.peak_rss_mib()?);
    }
    drop(children);
    if let Some(recording) = recording {
        for file in recording.finish()? {
            println!("profile written to {}", file.display());
        }
    }
    Ok(AggregatorRun {
        events_per_sec: n as f64 / (done - first).as_secs_f64(),
        events_per_sec_from_start: n as f64 / (done - started).as_secs_f64(),
        events_per_sec_settled: (n as f64 - applied_when_settled).max(0.0) / (done - settled).as_secs_f64(),
        peak_rss_mib,
        state_in_memory,
        cpu,
        services,
    })
}

/// Bytes per event the `event_log` audit table takes on disk: (compressed, uncompressed).
pub async fn audit_bytes_per_event(deployment: &Deployment) -> Result<(f64, f64)> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Size {
        compressed: u64,
        uncompressed: u64,
        rows: u64,
    }
    let store = deployment.store().await?;
    let size: Size = store
        .client()
        .query(
            "SELECT sum(data_compressed_bytes), sum(data_uncompressed_bytes), sum(rows) FROM system.parts \
             WHERE database = ? AND table = 'event_log' AND active",
        )
        .bind(store.database())
        .fetch_one()
        .await?;
    if size.rows == 0 {
        bail!("event_log holds no row after a run with the audit table on");
    }
    Ok((size.compressed as f64 / size.rows as f64, size.uncompressed as f64 / size.rows as f64))
}

/// parpulse's stored day counts (received, online, postal) per unit and day, 2000 to 2099.
pub async fn stored_counts(deployment: &Deployment) -> Result<DayCounts> {
    let store = deployment.store().await?;
    let rows = parpulse_clickhouse::day_count::read_days(&store, LocalDay(10_957), LocalDay(47_482)).await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.counts.receptions.received > 0)
        .map(|r| {
            let d = r.counts.receptions;
            ((r.agency_code, r.day), [d.received, d.received_online, d.received_postal])
        })
        .collect())
}

/// Peak RSS of an aggregator that consumed `count` dossier events of a province
/// running at a fixed pace (100 dossiers per unit and working day), so that more
/// events mean a longer period, not a busier day; with it, the dossiers and day
/// buckets the aggregator held at its last checkpoint (its own gauges), which tell
/// whether the memory follows what is held or only how it is stored.
pub async fn memory(deployment: &Deployment, count: usize, services: &Services) -> Result<(f64, StateInMemory)> {
    deployment.migrate()?;
    let units = parpulse_core::AgencyRegistry::demo().iter().count();
    let per_day = units * 100 * 3 * 5 / 7;
    let days = (count / per_day + 2) as u32;
    let simulator = parpulse_ingest::Simulator::new(
        parpulse_ingest::SimulatorConfig::recent(3, days, 100),
        &parpulse_core::AgencyRegistry::demo(),
    );
    let mut events = simulator.filter(|e| matches!(e, parpulse_core::Event::Dossier(_))).take(count).peekable();
    let mut produced = 0;
    let topic = deployment.topics().dossier.clone();
    // 100,000 at a time: 10M events would not fit in memory at once.
    while events.peek().is_some() {
        let chunk: Vec<_> = events.by_ref().take(100_000).collect();
        crate::kafka::bare_produce(&deployment.kafka, &topic, &crate::workload::avro_records(&chunk)).await?;
        produced += chunk.len();
    }
    if produced != count {
        bail!("the simulator gave {produced} dossier events over {days} days, not {count}");
    }
    let result = run(deployment, count as u64, true, services, None).await?;
    deployment.drop_database().await?;
    Ok((result.peak_rss_mib, result.state_in_memory))
}
