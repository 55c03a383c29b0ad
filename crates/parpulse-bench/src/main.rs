//! `make bench`: parpulse measured side by side with the limit (a bare librdkafka
//! consumer and producer) and a peer (ClickHouse's Kafka engine), on the same
//! events, in one run, on the local services of deploy/local. Ratios are what
//! count: the machine is shared and noisy. docs/BENCHMARKS.md explains each figure.

mod aggregator;
mod cpu;
mod cpu_figures;
mod freshness;
mod group;
mod intake;
mod kafka;
mod peer;
mod process;
mod profile;
mod report;
mod workload;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use parpulse_clickhouse::{ClickHouseConfig, Store};

use crate::process::Deployment;
use crate::report::Report;

#[derive(Parser, Debug)]
#[command(about = "parpulse benchmarks against a bare librdkafka consumer and ClickHouse's Kafka engine")]
struct Args {
    /// Dossier events pre-loaded into Kafka for the throughput measurements.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Repetitions of each throughput measurement (medians are reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Event counts at which the aggregator's peak memory is measured.
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    memory_events: Vec<usize>,
    /// Produce rates (events/s) at which freshness is measured.
    #[arg(long, value_delimiter = ',', default_value = "20000,50000")]
    freshness_rates: Vec<u64>,
    /// Seconds of steady load per freshness rate.
    #[arg(long, default_value_t = 20)]
    freshness_seconds: u64,
    /// Events posted to the HTTP intake.
    #[arg(long, default_value_t = 400_000)]
    intake_events: usize,
    /// Measurements to skip: produce, consume, aggregator, group, peer, intake, freshness, memory.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// The parpulse release binary.
    #[arg(long, default_value = "target/release/parpulse")]
    parpulse: PathBuf,
    #[arg(long, env = "PARPULSE_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, env = "PARPULSE_CLICKHOUSE_URL", default_value = "http://127.0.0.1:8123")]
    clickhouse_url: String,
    /// Seconds of `perf record` (aggregator and ClickHouse, then the peer's ClickHouse)
    /// in the first repeat, written beside the table; 0: no profile. Sampling costs CPU,
    /// so take the CPU lines from a run without it.
    #[arg(long, default_value_t = 0)]
    perf_seconds: u64,
    /// Where the Markdown table is written.
    #[arg(long, default_value = "target/bench/report.md")]
    out: PathBuf,
}

impl Args {
    fn runs(&self, stage: &str) -> bool {
        !self.skip.iter().any(|s| s == stage)
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.parpulse.exists() {
        bail!("{} not found: build it with `cargo build --release -p parpulse`", args.parpulse.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        // The Kafka security settings come from the PARPULSE_KAFKA_* variables, as parpulse's.
        let security = parpulse_kafka::KafkaSecurity::from_env().context("Kafka security settings")?;
        let connection = parpulse_kafka::KafkaConnection { brokers: args.brokers.clone(), security };
        let args_url = args.clickhouse_url.clone();
        let result = run(args, stamp, connection.clone()).await;
        // Every topic of the run goes, whether it succeeded or not: a 10M-event run leaves
        // gigabytes, and runs left behind once filled this machine's disk.
        let topics = kafka::delete_topics_with_prefix(&connection, &format!("bench{stamp}.")).await;
        // Stages drop their databases when they end well; a failed one leaves its own.
        let databases = drop_databases_with_prefix(&args_url, &format!("bench_{stamp}_")).await;
        if result.is_err() {
            // The run's own error is the one returned: say what the clean-up could not do.
            for error in [&topics, &databases].into_iter().filter_map(|r| r.as_ref().err()) {
                eprintln!("clean-up after the failed run: {error:#}");
            }
        }
        result.and(topics).and(databases)
    })
}

/// Drops every database whose name starts with `prefix` (a run's own).
async fn drop_databases_with_prefix(clickhouse_url: &str, prefix: &str) -> Result<()> {
    let names = Store::databases(&ClickHouseConfig::local(clickhouse_url, "default")).await?;
    for name in names.into_iter().filter(|name| name.starts_with(prefix)) {
        Store::drop_database(&ClickHouseConfig::local(clickhouse_url, &name)).await?;
        eprintln!("dropped {name}, left by a failed stage");
    }
    Ok(())
}

async fn run(args: Args, stamp: u64, connection: parpulse_kafka::KafkaConnection) -> Result<()> {
    let started = Instant::now();
    let deployment = |name: &str| Deployment {
        binary: args.parpulse.clone(),
        kafka: connection.clone(),
        clickhouse_url: args.clickhouse_url.clone(),
        database: format!("bench_{stamp}_{name}"),
        topic_prefix: format!("bench{stamp}."),
        consumer_group: format!("bench-{stamp}-{name}"),
    };
    let mut report = Report::default();
    let n = args.events;
    let services = cpu::Services::local();
    let mut cpu_figures = cpu_figures::CpuFigures::default();
    let profile = (args.perf_seconds > 0).then(|| profile::Profile {
        seconds: args.perf_seconds,
        dir: args.out.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from),
    });
    if profile.is_some() {
        report.line("perf sampled the first repeat: its CPU lines include the sampling's cost");
    }
    let profiled = |repeat: usize| if repeat == 0 { profile.as_ref() } else { None };
    report.line(format!(
        "{} dossier events, {} repeats, {} cores, parpulse {}",
        n,
        args.repeats,
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        env!("CARGO_PKG_VERSION")
    ));

    let events = workload::dossier_events(1, n, 40);
    if events.len() < n {
        bail!("the simulator gave {} dossier events, not {n}", events.len());
    }
    let avro = workload::avro_records(&events);
    let json = workload::json_records(&events);
    let expected = workload::expected_counts(&events);
    let bytes: usize = avro.iter().map(|r| r.value.len()).sum();
    report.line(format!("Avro records: {:.0} bytes each on average", bytes as f64 / n as f64));
    report.line(format!(
        "CPU read from /proc: ClickHouse server pid {}, Kafka broker pid {} (pid files under $PARPULSE_HOME or .parpulse)",
        services.clickhouse.map_or("not found".to_owned(), |p| p.to_string()),
        services.broker.map_or("not found".to_owned(), |p| p.to_string())
    ));

    // Pre-load: parpulse's ingest path fills the dossier topic the consumers read.
    let main = deployment("main");
    main.migrate()?;
    let dossier_topic = main.topics().dossier.clone();
    let mut produce_parpulse = vec![kafka::parpulse_produce(main.kafka(), &events).await?];
    let mut produce_bare = Vec::new();
    if args.runs("produce") {
        for repeat in 0..args.repeats {
            let scratch = format!("bench{stamp}.scratch{repeat}");
            kafka::create_topic(&connection, &scratch).await?;
            produce_bare.push(kafka::bare_produce(&connection, &scratch, &avro).await?);
            if repeat > 0 {
                let scratch_deployment =
                    Deployment { topic_prefix: format!("bench{stamp}.p{repeat}."), ..main.clone() };
                parpulse_ingest::kafka::ensure_topics(&scratch_deployment.kafka()).await?;
                produce_parpulse.push(kafka::parpulse_produce(scratch_deployment.kafka(), &events).await?);
            }
        }
        let p = report.add("produce: parpulse ingest (validate, Avro, acks=all)", "events/s", produce_parpulse, "");
        let b = report.add("produce: bare librdkafka, same bytes and settings", "msgs/s", produce_bare, "");
        report.add("produce ratio parpulse / bare", "x", vec![p / b], "");
    }

    let mut bare = Vec::new();
    let mut parpulse = Vec::new();
    let mut parpulse_from_start = Vec::new();
    let (mut audit_compressed, mut audit_uncompressed) = (Vec::new(), Vec::new());
    let (mut counts_only, mut counts_only_from_start) = (Vec::new(), Vec::new());
    for repeat in 0..args.repeats {
        if args.runs("consume") {
            for work in [kafka::ConsumerWork::Nothing, kafka::ConsumerWork::Admit, kafka::ConsumerWork::AdmitAndApply] {
                let services_start = services.mark();
                // A named thread of its own, so its CPU shows apart from librdkafka's threads.
                let consumed = tokio::task::spawn_blocking({
                    let (connection, topic) = (connection.clone(), dossier_topic.clone());
                    move || {
                        std::thread::Builder::new()
                            .name("bare-consumer".to_owned())
                            .spawn(move || kafka::bare_consume(&connection, &topic, work))?
                            .join()
                            .map_err(|_| anyhow::anyhow!("the bare consumer's thread panicked"))?
                    }
                })
                .await??;
                if consumed.seen != n as u64 {
                    bail!("the bare consumer ({work:?}) read {} messages, not {n}", consumed.seen);
                }
                if work == kafka::ConsumerWork::Nothing {
                    bare.push(consumed.rate);
                }
                cpu_figures.bare(work, consumed.seen, &consumed.cpu, services.since(&services_start));
            }
        }
        if args.runs("aggregator") {
            let run = Deployment { ..deployment(&format!("agg{repeat}")) };
            let run = Deployment { topic_prefix: main.topic_prefix.clone(), ..run };
            for audit in [true, false] {
                let run = Deployment {
                    database: format!("{}_{}", run.database, u8::from(audit)),
                    consumer_group: format!("{}-{}", run.consumer_group, u8::from(audit)),
                    ..run.clone()
                };
                run.migrate()?;
                let result = aggregator::run(&run, n as u64, audit, &services, profiled(repeat)).await?;
                cpu_figures.aggregator(audit, n as u64, &result);
                check_stored_counts(&run, &expected, "parpulse's").await?;
                if audit {
                    let (compressed, uncompressed) = aggregator::audit_bytes_per_event(&run).await?;
                    audit_compressed.push(compressed);
                    audit_uncompressed.push(uncompressed);
                    parpulse.push(result.events_per_sec);
                    parpulse_from_start.push(result.events_per_sec_from_start);
                } else {
                    counts_only.push(result.events_per_sec);
                    counts_only_from_start.push(result.events_per_sec_from_start);
                }
                run.drop_database().await?;
            }
        }
    }
    let mut group_figures = group::GroupFigures::default();
    if args.runs("group") {
        // One aggregator, then two in one group, per repeat, on the pre-loaded topic.
        for repeat in 0..args.repeats {
            for instances in [1, 2] {
                let run = Deployment {
                    topic_prefix: main.topic_prefix.clone(),
                    ..deployment(&format!("group{repeat}x{instances}"))
                };
                run.migrate()?;
                let result = aggregator::run_group(&run, n as u64, true, &services, instances, None).await?;
                check_stored_counts(&run, &expected, &format!("{instances} aggregators'")).await?;
                group_figures.add(instances, n as u64, &result);
                run.drop_database().await?;
            }
        }
    }
    group_figures.write(&mut report);
    let bare_rate = report.add("consume: bare librdkafka consumer, no work (the limit)", "msgs/s", bare, "");
    let parpulse_rate = report.add(
        "aggregator: decode, aggregate, checkpoint (first event to final checkpoint)",
        "events/s",
        parpulse.clone(),
        "day counts equal a direct count",
    );
    let from_start =
        report.add("aggregator: from process start (group join, state load)", "events/s", parpulse_from_start, "");
    report.add(
        "aggregator / bare consumer",
        "x",
        vec![parpulse_rate / bare_rate],
        "issue 15 sets CPU goals instead (CPU lines)",
    );
    let counts_rate = report.add(
        "aggregator without the audit table (PARPULSE_AUDIT_EVENTS=false): first event to final checkpoint",
        "events/s",
        counts_only,
        "day counts equal a direct count",
    );
    let counts_from_start =
        report.add("aggregator without the audit table: from process start", "events/s", counts_only_from_start, "");
    report.add(
        "aggregator without audit / bare consumer",
        "x",
        vec![counts_rate / bare_rate],
        "issue 15 sets CPU goals instead (CPU lines)",
    );
    report.add(
        "event_log on disk per event, compressed (LZ4)",
        "bytes",
        audit_compressed,
        "the audit table's cost in disk",
    );
    report.add("event_log per event, uncompressed", "bytes", audit_uncompressed, "");

    if args.runs("peer") {
        // The same events: parpulse read the Avro topic above, the Kafka engine reads a
        // JSONEachRow copy, produced once it has subscribed (peer.rs says why).
        let mut theirs = Vec::new();
        for repeat in 0..args.repeats {
            let db = format!("bench_{stamp}_peer{repeat}");
            let json_topic = format!("bench{stamp}.peer{repeat}.json");
            kafka::create_topic(&connection, &json_topic).await?;
            let peer_run =
                peer::run(&args.clickhouse_url, &connection, &db, &json_topic, &json, &services, profiled(repeat))
                    .await?;
            cpu_figures.peer(json.len() as u64, peer_run.services);
            if peer_run.counts != expected {
                bail!(
                    "the Kafka engine's day counts differ from a direct count of the events: {}",
                    diff(&peer_run.counts, &expected)
                );
            }
            theirs.push(peer_run.rows_per_sec);
        }
        let theirs = report.add(
            "peer: ClickHouse Kafka engine + materialized view (first event produced to last row)",
            "rows/s",
            theirs,
            "day counts equal a direct count",
        );
        report.add("aggregator (from process start) / peer", "x", vec![from_start / theirs], "target >= 3");
        report.add(
            "aggregator without audit (from process start) / peer",
            "x",
            vec![counts_from_start / theirs],
            "target >= 3; the peer keeps no audit trail either",
        );
    }
    cpu_figures.write(&mut report);

    if args.runs("intake") {
        let intake = intake::run(&deployment("intake"), &events[..args.intake_events.min(n)], 3).await?;
        report.add("HTTP intake, batches of 1000, 4 connections", "events/s", intake, "target >= 100,000");
    }
    drop(avro);
    drop(json);
    drop(events);
    if args.runs("freshness") {
        for &rate in &args.freshness_rates {
            // Topics of its own: the shared ones hold the pre-loaded events, which the
            // aggregator would first catch up on, leaving ClickHouse merging them while
            // freshness is measured.
            let fresh = Deployment {
                topic_prefix: format!("bench{stamp}.fresh{rate}."),
                ..deployment(&format!("fresh{rate}"))
            };
            let result = freshness::run(&fresh, rate, args.freshness_seconds).await?;
            fresh.drop_database().await?;
            report.add(
                format!("freshness at {rate} events/s: p50"),
                "s",
                vec![result.p50],
                format!("{} markers", result.markers),
            );
            report.add(
                format!("freshness at {rate} events/s: p99"),
                "s",
                vec![result.p99],
                format!("achieved {:.0} events/s; target p99 < 0.5 s", result.achieved_rate),
            );
            let inserts: Vec<String> =
                result.insert_means.iter().map(|(table, mean)| format!("{table} {:.0} ms", mean * 1000.0)).collect();
            report.add(
                format!("freshness at {rate} events/s: aggregator's mean checkpoint write"),
                "s",
                vec![result.checkpoint_mean],
                format!("mean inserts: {}", inserts.join(", ")),
            );
            report.add(
                format!("freshness at {rate} events/s: exporter refreshes"),
                "per s",
                vec![result.refreshes_per_sec],
                "asked every 100 ms",
            );
        }
    }
    if args.runs("memory") {
        for &count in &args.memory_events {
            let memory = deployment(&format!("mem{count}"));
            let memory = Deployment { topic_prefix: format!("bench{stamp}.mem{count}."), ..memory };
            let (rss, state) = aggregator::memory(&memory, count, &services).await?;
            report.add(format!("aggregator peak RSS after {count} events"), "MiB", vec![rss], "target < 256, flat");
            report.add(format!("dossiers in memory at the end, {count} events"), "dossiers", vec![state.dossiers], "");
            report.add(
                format!("day buckets in memory at the end, {count} events"),
                "buckets",
                vec![state.day_buckets],
                "",
            );
        }
    }
    report.line(format!("whole run: {:.0} s", started.elapsed().as_secs_f64()));
    let header = format!("# parpulse bench, {} (`make bench`)", chrono_like_now());
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, report.markdown(&header)).with_context(|| format!("writing {}", args.out.display()))?;
    println!("table written to {}", args.out.display());
    main.drop_database().await?;
    Ok(())
}

fn chrono_like_now() -> String {
    let micros = parpulse_core::time::now_micros();
    format!("{} (UTC+7 day)", parpulse_core::LocalDay::of_micros(micros))
}

/// Fails unless the day counts `whose` aggregator run stored equal the direct count.
async fn check_stored_counts(run: &Deployment, expected: &peer::DayCounts, whose: &str) -> Result<()> {
    let stored = aggregator::stored_counts(run).await?;
    if stored != *expected {
        bail!("{whose} day counts differ from a direct count of the events: {}", diff(&stored, expected));
    }
    Ok(())
}

/// The first few (unit, day) keys where two counts differ, for the error message.
fn diff(got: &peer::DayCounts, want: &peer::DayCounts) -> String {
    let keys: std::collections::BTreeSet<_> = got.keys().chain(want.keys()).collect();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .take(5)
        .map(|k| format!("{k:?}: {:?} vs {:?}", got.get(k), want.get(k)))
        .collect();
    format!("{} of {} keys, e.g. {}", differing.len(), want.len(), differing.join("; "))
}
