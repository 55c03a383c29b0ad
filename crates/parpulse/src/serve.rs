//! The long-running and one-shot commands: migrate, simulate, aggregate, export.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use parpulse_aggregate::AggregatorMetrics;
use parpulse_export::Exporter;
use parpulse_http::{HealthSource, MetricsSource};
use parpulse_ingest::{SendSummary, Simulator};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{AggregateArgs, Common, ExportArgs, FileArgs, IntakeArgs, SimulateArgs, TokenArgs};
use crate::shutdown::Shutdown;

pub fn print_migrations(common: &Common) -> Result<()> {
    let config = common.clickhouse();
    for statement in parpulse_clickhouse::migrate::plan(config.cluster.as_deref(), &config.database) {
        println!("{statement};\n");
    }
    Ok(())
}

pub async fn migrate(common: &Common) -> Result<()> {
    let differences = parpulse_ingest::kafka::ensure_topics(&common.kafka()).await.with_context(|| {
        format!("cannot create Kafka topics at {}: is Kafka running? (`make up`)", common.kafka_brokers)
    })?;
    for difference in &differences {
        println!("topic differs from the configuration (left as it is): {difference}");
    }
    let store = common.store().await?;
    let report = parpulse_clickhouse::migrate::migrate(&store).await.context("applying ClickHouse migrations")?;
    println!(
        "migrations: {} applied, {} already applied (ClickHouse {} at {}, database {})",
        report.applied.len(),
        report.already_applied.len(),
        store.server_version(),
        common.clickhouse_url,
        common.clickhouse_database
    );
    Ok(())
}

pub async fn simulate(common: &Common, args: &SimulateArgs) -> Result<SendSummary> {
    let registry = common.registry()?;
    let simulator = Simulator::new(args.simulator_config()?, &registry);
    let sink = if args.no_kafka { None } else { Some(common.sink(&args.delivery)?) };
    let mut out = match &args.out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let mut total = SendSummary::default();
    let pacer = parpulse_ingest::pacer::Pacer::new(args.rate);
    // With a rate, small batches keep the flow smooth.
    let batch_size = if pacer.is_some() { args.batch.min(500) } else { args.batch };
    let started = std::time::Instant::now();
    let mut batch = Vec::with_capacity(batch_size);
    let mut events = simulator.peekable();
    while events.peek().is_some() {
        batch.clear();
        if let Some(pacer) = &pacer {
            tokio::time::sleep(pacer.wait(total.accepted + total.rejected, started.elapsed())).await;
        }
        batch.reserve(batch_size);
        batch.extend(events.by_ref().take(batch_size.max(1)));
        if let Some(out) = out.as_mut() {
            parpulse_ingest::ndjson::write_events(out, &batch)?;
        }
        if let Some(sink) = &sink {
            let summary = sink
                .send(std::mem::take(&mut batch), "simulator")
                .await
                .with_context(|| format!("sending to Kafka at {}: is it running? (`make up`)", common.kafka_brokers))?;
            total.accepted += summary.accepted;
            total.rejected += summary.rejected;
        } else {
            total.accepted += batch.len() as u64;
        }
    }
    if let Some(mut out) = out {
        out.flush()?;
    }
    tracing::info!(accepted = total.accepted, rejected = total.rejected, "simulation done");
    Ok(total)
}

/// Binds `addr` and serves `source` there in the background until `shutdown`; the
/// task ends once the requests in flight are answered.
pub async fn spawn_http(
    addr: std::net::SocketAddr,
    source: Arc<dyn MetricsSource>,
    shutdown: &Shutdown,
) -> Result<(std::net::SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    let stop = shutdown.wait();
    let server = tokio::spawn(async move {
        if let Err(error) = parpulse_http::serve(listener, source, stop).await {
            tracing::error!(%error, "HTTP server failed");
        }
    });
    Ok((bound, server))
}

/// Waits for the tasks a command started (after shutdown was triggered).
pub async fn join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        if let Err(error) = task.await {
            tracing::error!(%error, "a task failed while stopping");
        }
    }
}

pub async fn aggregate(common: &Common, args: &AggregateArgs) -> Result<()> {
    let shutdown = Shutdown::on_signals();
    let store = common.store().await?;
    // Everything that may fail before the tasks start: past this point, every return
    // first stops and awaits them.
    let config = args.config(common)?;
    let metrics = AggregatorMetrics::new();
    let source = HealthSource { registry: metrics.registry.clone(), health: metrics.health.clone() };
    let (bound, server) = spawn_http(args.listen, Arc::new(source), &shutdown).await?;
    tracing::info!(%bound, "aggregator metrics on http://{bound}/metrics");
    let result = parpulse_aggregate::run(config, store, metrics, shutdown.wait()).await;
    shutdown.trigger();
    join(vec![server]).await;
    Ok(result?)
}

/// The exporter's HTTP server and refresh loop, running until `shutdown`.
pub struct RunningExporter {
    pub exporter: Arc<Exporter>,
    pub bound: std::net::SocketAddr,
    pub tasks: Vec<JoinHandle<()>>,
}

pub async fn start_exporter(common: &Common, args: &ExportArgs, shutdown: &Shutdown) -> Result<RunningExporter> {
    let store = common.store().await?;
    let config = parpulse_export::ExporterConfig { procedures: Arc::new(common.procedures()?), ..args.config() };
    let exporter = Arc::new(Exporter::new(store, common.registry()?, config));
    if let Err(error) = exporter.refresh().await {
        tracing::warn!(%error, "first KPI refresh failed; /readyz stays unready until one succeeds");
    }
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr()?;
    let app = exporter.clone().router();
    let stop = shutdown.wait();
    let server = tokio::spawn(async move {
        if let Err(error) = parpulse_http::serve_router(listener, app, stop).await {
            tracing::error!(%error, "exporter HTTP server failed");
        }
    });
    let refresh = tokio::spawn(exporter.clone().run(shutdown.wait()));
    tracing::info!(%bound, "exporter serving http://{bound}/metrics");
    Ok(RunningExporter { exporter, bound, tasks: vec![server, refresh] })
}

pub async fn export(common: &Common, args: &ExportArgs) -> Result<()> {
    let shutdown = Shutdown::on_signals();
    let running = start_exporter(common, args, &shutdown).await?;
    shutdown.wait().await;
    join(running.tasks).await;
    Ok(())
}

pub async fn intake(common: &Common, args: &IntakeArgs) -> Result<()> {
    use parpulse_ingest::intake::{auth::TokenStore, Intake, IntakeConfig};
    let registry = common.registry()?;
    let text = std::fs::read_to_string(&args.tokens)
        .with_context(|| format!("reading token file {}", args.tokens.display()))?;
    let tokens =
        TokenStore::from_toml(&text, &registry).with_context(|| format!("token file {}", args.tokens.display()))?;
    if tokens.is_empty() {
        anyhow::bail!(
            "token file {} lists no token: create one with `parpulse ingest token --agency CODE`",
            args.tokens.display()
        );
    }
    let sink = common.sink(&args.delivery)?;
    let intake = Arc::new(Intake::new(sink, tokens, IntakeConfig { body_limit_bytes: args.body_limit }));
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let shutdown = Shutdown::on_signals();
    let watch = tokio::spawn(intake.clone().watch_kafka(std::time::Duration::from_secs(5), shutdown.wait()));
    tracing::info!(listen = %args.listen, "HTTP intake serving POST /v1/events");
    // Graceful: requests in flight are answered (after Kafka's acknowledgement) before it returns.
    let served = parpulse_http::serve_router(listener, intake.router(), shutdown.wait()).await;
    shutdown.trigger();
    join(vec![watch]).await;
    Ok(served?)
}

pub async fn import(common: &Common, args: &FileArgs) -> Result<()> {
    let sink = common.sink(&args.delivery)?;
    let rejects_path = args.rejects.clone().unwrap_or_else(|| {
        let mut name = args.paths[0].clone().into_os_string();
        name.push(".rejects.ndjson");
        name.into()
    });
    let mut rejects = std::io::BufWriter::new(
        std::fs::File::create(&rejects_path).with_context(|| format!("creating {}", rejects_path.display()))?,
    );
    let mut total = parpulse_ingest::file_import::ImportSummary::default();
    let options = args.import_options();
    for path in &args.paths {
        let summary = parpulse_ingest::file_import::import_file_with(&sink, path, &options, &mut rejects)
            .await
            .with_context(|| format!("importing {}", path.display()))?;
        println!("{}: {summary}", path.display());
        total.add(&summary);
    }
    rejects.flush()?;
    println!("total: {total}");
    if total.rejected() > 0 {
        println!(
            "rejected rows: {} (also in the dead-letter topic {})",
            rejects_path.display(),
            common.topics().deadletter
        );
    }
    Ok(())
}

pub fn new_token(common: &Common, args: &TokenArgs) -> Result<()> {
    let registry = common.registry()?;
    if args.agency != registry.province().code && registry.get(&args.agency).is_none() {
        anyhow::bail!(
            "{} is neither the province ({}) nor a unit of the registry",
            args.agency,
            registry.province().code
        );
    }
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    println!("token (give it to {}; it is not stored anywhere): {token}", args.agency);
    println!();
    println!("add to the token file:");
    println!(
        "[[token]]\nagency = \"{}\"\nsha256 = \"{}\"",
        args.agency,
        parpulse_ingest::intake::auth::sha256_hex(&token)
    );
    Ok(())
}

pub async fn report(common: &Common, args: &crate::config::ReportArgs) -> Result<()> {
    let store = common.store().await?;
    if let Some(period) = &args.period {
        return period_report(&store, &common.registry()?, &common.procedures()?, period, args).await;
    }
    let html_path = args.html.as_ref().context("--html or --period is required")?;
    let config = parpulse_export::ExporterConfig { procedures: Arc::new(common.procedures()?), ..Default::default() };
    let exporter = Exporter::new(store, common.registry()?, config);
    let snapshot = exporter.refresh().await.context("reading KPIs from ClickHouse")?;
    let window = parpulse_export::Window::ALL
        .into_iter()
        .find(|w| w.label() == args.window)
        .with_context(|| format!("--window {}: use day, 7d, 30d, mtd, ytd, last_month or last_quarter", args.window))?;
    let html = parpulse_export::scorecard::render_html(&snapshot, exporter.registry(), window);
    std::fs::write(html_path, html).with_context(|| format!("writing {}", html_path.display()))?;
    println!("scorecard written to {}", html_path.display());
    Ok(())
}

/// `report --period`: the closed period's report as CSV, HTML or XLSX.
async fn period_report(
    store: &parpulse_clickhouse::Store,
    registry: &parpulse_core::AgencyRegistry,
    catalogue: &parpulse_core::procedures::ProcedureCatalogue,
    period: &parpulse_core::period::Period,
    args: &crate::config::ReportArgs,
) -> Result<()> {
    use parpulse_export::period_report;
    let extension =
        args.output.as_ref().and_then(|p| p.extension()).and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let name = args.format.clone().or(extension).unwrap_or_else(|| "csv".into());
    let format =
        period_report::Format::parse(&name).with_context(|| format!("--format {name}: use csv, html or xlsx"))?;
    anyhow::ensure!(
        args.output.is_some() || format != period_report::Format::Xlsx,
        "--format xlsx needs --output FILE"
    );
    let calendar = parpulse_core::lifecycle::active_calendar();
    let now = parpulse_core::time::now_micros();
    let report = match args.as_of {
        Some(as_of) => period_report::read_as_of(store, registry, catalogue, period, calendar, as_of, now)
            .await
            .with_context(|| {
                format!(
                    "replaying the audit table for {} as of {}",
                    period.label(),
                    parpulse_core::time::format_local(as_of)
                )
            })?,
        None => period_report::read(store, registry, catalogue, period, calendar, now)
            .await
            .with_context(|| format!("reading the dossiers of {}", period.label()))?,
    };
    let bytes = period_report::render(&report, format).context("writing the XLSX report")?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("report of {} ({}) written to {}", period.label(), period.title_vi(), path.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes).context("writing the report to standard output")?;
        }
    }
    Ok(())
}

pub async fn backup(common: &Common, args: &crate::config::BackupArgs) -> Result<()> {
    let store = common.store().await?;
    let manifest = parpulse_clickhouse::backup::backup(&store, &args.data.clickhouse_data, &args.to)
        .await
        .with_context(|| format!("backing up database {} into {}", common.clickhouse_database, args.to.display()))?;
    let parts: usize = manifest.tables.iter().map(|t| t.parts).sum();
    println!(
        "backed up {} tables ({parts} parts) of {} into {}",
        manifest.tables.len(),
        manifest.database,
        args.to.display()
    );
    Ok(())
}

pub async fn restore(common: &Common, args: &crate::config::RestoreArgs) -> Result<()> {
    let store = common.store().await?;
    let manifest = parpulse_clickhouse::backup::restore(&store, &args.data.clickhouse_data, &args.from)
        .await
        .with_context(|| format!("restoring {} into database {}", args.from.display(), common.clickhouse_database))?;
    println!(
        "restored {} tables of {} (taken at {}) into {}; start the aggregators: they resume from the restored checkpoints",
        manifest.tables.len(),
        manifest.database,
        manifest.taken_at,
        common.clickhouse_database
    );
    Ok(())
}

pub async fn rebuild(common: &Common, args: &crate::config::RebuildArgs) -> Result<()> {
    let scope = args.scope()?;
    if let Some(units) = &scope.units {
        let registry = common.registry()?;
        for unit in units {
            anyhow::ensure!(registry.get(unit).is_some(), "--units: {unit} is not a unit of the agency registry");
        }
    }
    let store = common.store().await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("a valid template"));
    let report = parpulse_aggregate::rebuild::rebuild(&store, &common.topics(), &common.consumer_group, &scope, |n| {
        bar.set_message(format!("{n} events replayed"));
        bar.tick();
    })
    .await
    .context("rebuilding the derived tables (the old tables still serve if this failed before the swap)")?;
    bar.finish_and_clear();
    println!(
        "rebuilt from {} events: {} day buckets, {} dossiers, {} budget and {} staffing events; swapped in",
        report.events, report.day_rows, report.dossier_rows, report.budget_rows, report.staffing_rows
    );
    Ok(())
}

/// `parpulse procedures import FILE.csv`: the catalogue TOML of a national export, to stdout.
pub fn import_procedures(common: &Common, args: &crate::config::ProceduresImportArgs) -> Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{}: not UTF-8 (save the export as CSV UTF-8)", args.file.display()))?;
    let catalogue = parpulse_core::procedures::ProcedureCatalogue::from_csv(&text, &common.registry()?)
        .with_context(|| format!("procedure list {}", args.file.display()))?;
    eprintln!("{} procedures of {} units", catalogue.len(), catalogue.units().count());
    print!("{}", catalogue.to_toml());
    Ok(())
}
