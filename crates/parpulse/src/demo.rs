//! `parpulse demo`: a simulated province through the whole pipeline in one
//! process (migrate, simulate into Kafka, aggregate into ClickHouse, export),
//! then the KPI table on screen and /metrics served until Ctrl-C.
//! `make demo` starts the local services first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use parpulse_aggregate::{AggregatorConfig, AggregatorMetrics};
use parpulse_export::exposition::render_table;
use parpulse_export::Window;
use parpulse_http::HealthSource;

use crate::config::{AggregateArgs, Common, ExportArgs, SimulateArgs};
use crate::serve;
use crate::shutdown::Shutdown;

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    #[command(flatten)]
    simulate: SimulateArgs,
    #[command(flatten)]
    export: ExportArgs,
    /// Where the aggregator's own metrics listen.
    #[arg(long, default_value = AggregateArgs::DEFAULT_LISTEN)]
    aggregator_listen: std::net::SocketAddr,
    /// Print the table and exit instead of serving until Ctrl-C.
    #[arg(long)]
    exit_after_report: bool,
    /// Start from nothing: drop the ClickHouse database and use new topics (named by the time).
    #[arg(long)]
    fresh: bool,
}

pub async fn run(common: &Common, args: &DemoArgs) -> Result<()> {
    let mut common = common.clone();
    if args.fresh {
        // Bucket versions are Kafka offsets, so a database must never outlive its topics:
        // a fresh demo gets both new.
        parpulse_clickhouse::Store::drop_database(&common.clickhouse()).await.context("dropping the demo database")?;
        common.topic_prefix = format!("{}demo-{}.", common.topic_prefix, parpulse_core::time::now_micros() / 1_000_000);
        println!("fresh demo: database {} emptied, topics {}*", common.clickhouse_database, common.topic_prefix);
    }
    let common = &common;
    serve::migrate(common).await?;
    let started = Instant::now();
    let sent = serve::simulate(common, &args.simulate).await?;
    println!("simulated province: {} events accepted into Kafka, {} rejected", sent.accepted, sent.rejected);

    // The aggregator's defaults, with smaller checkpoints sooner: the table shows quickly.
    let config = AggregatorConfig {
        checkpoint_interval: Duration::from_millis(500),
        checkpoint_max_events: 50_000,
        registry: common.registry()?,
        ..AggregatorConfig::new(common.kafka_connection(), &common.consumer_group, common.topics())
    };
    let store = common.store().await?;
    let metrics = AggregatorMetrics::new();
    let shutdown = Shutdown::on_signals();
    let source = HealthSource { registry: metrics.registry.clone(), health: metrics.health.clone() };
    let (_, aggregator_http) = serve::spawn_http(args.aggregator_listen, Arc::new(source), &shutdown).await?;
    let aggregator = tokio::spawn(parpulse_aggregate::run(config, store.clone(), metrics, shutdown.wait()));

    // From here every return, with an error too, stops the tasks and waits for them
    // (the aggregator writes its final checkpoint, the servers answer what is in flight).
    let mut tasks = vec![aggregator_http];
    let shown = report_and_serve(common, args, &store, &shutdown, &aggregator, &mut tasks, started).await;
    shutdown.trigger();
    let aggregated = aggregator.await.context("aggregator task").and_then(|r| r.context("the aggregator stopped"));
    serve::join(tasks).await;
    // The aggregator's own error explains a demo that could not catch up.
    aggregated?;
    shown
}

/// Waits until the aggregator caught up, starts the exporter (its tasks join `tasks`),
/// prints the KPI table and serves until Ctrl-C (or not, with --exit-after-report).
async fn report_and_serve(
    common: &Common,
    args: &DemoArgs,
    store: &parpulse_clickhouse::Store,
    shutdown: &Shutdown,
    aggregator: &tokio::task::JoinHandle<Result<(), parpulse_aggregate::runner::AggregateError>>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let topics = common.topics();
    let topic = topics.dossier.clone();
    while !parpulse_aggregate::caught_up(
        store,
        &common.kafka_connection(),
        &common.consumer_group,
        &topics.event_topics(),
    )
    .await?
    {
        if aggregator.is_finished() {
            bail!("the aggregator stopped before catching up with {topic}");
        }
        if Instant::now() > deadline {
            bail!("the aggregator did not catch up with {topic} within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("aggregated into ClickHouse in {:.1} s", started.elapsed().as_secs_f64());

    let serve::RunningExporter { exporter, bound, tasks: exporter_tasks } =
        serve::start_exporter(common, &args.export, shutdown).await?;
    tasks.extend(exporter_tasks);
    let snapshot = exporter.refresh().await.context("reading KPIs from ClickHouse")?;
    println!();
    println!("{}", render_table(&snapshot, exporter.registry(), Window::Days30));
    println!(
        "Prometheus metrics: http://{bound}/metrics   (aggregator health: http://{}/metrics)",
        args.aggregator_listen
    );
    println!("Leadership scorecard: http://{bound}/report?window=30d");

    if !args.exit_after_report {
        println!("Serving until Ctrl-C.");
        shutdown.wait().await;
    }
    Ok(())
}
