//! `parpulse`: the command line. Thin wiring only: configuration comes from
//! flags and `PARPULSE_*` environment variables ([`config`]), the work is done
//! by the library crates.

mod config;
mod demo;
mod memory;
mod serve;
mod shutdown;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::{AggregateArgs, Common, ExportArgs, FileArgs, IntakeArgs, ReportArgs, SimulateArgs, TokenArgs};

#[derive(Parser)]
#[command(
    name = "parpulse",
    version,
    about = "Live KPIs of public-administration reform (cải cách hành chính): Kafka -> ClickHouse -> Prometheus"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the Kafka topics and apply ClickHouse migrations (idempotent).
    Migrate(config::MigrateArgs),
    /// Bring events into Kafka.
    #[command(subcommand)]
    Ingest(IngestCommand),
    /// Consume dossier events and maintain KPI day buckets in ClickHouse.
    Aggregate(AggregateArgs),
    /// Serve KPIs from ClickHouse as Prometheus metrics.
    Export(ExportArgs),
    /// Write the leadership scorecard (HTML, printable) from ClickHouse.
    Report(ReportArgs),
    /// Local services up, a simulated province through the pipeline, KPIs on screen and on /metrics.
    Demo(demo::DemoArgs),
    /// Back up the ClickHouse database (FREEZE; run on the ClickHouse host: docs/OPERATIONS.md).
    Backup(config::BackupArgs),
    /// Restore a backup into an empty database (run on the ClickHouse host).
    Restore(config::RestoreArgs),
    /// Recompute every derived table from the event_log audit table with this build's
    /// rules, and swap them in while the aggregators keep consuming.
    Rebuild(config::RebuildArgs),
    /// The procedure catalogue (PARPULSE_PROCEDURES).
    #[command(subcommand)]
    Procedures(ProceduresCommand),
}

#[derive(Subcommand)]
enum ProceduresCommand {
    /// Convert a CSV export of the national procedure database into a catalogue TOML
    /// (stdout), checked against the agency registry.
    Import(config::ProceduresImportArgs),
}

#[derive(Subcommand)]
enum IngestCommand {
    /// Generate a realistic province deterministically (to Kafka and/or an NDJSON file).
    Simulate(SimulateArgs),
    /// Serve the HTTP intake: agencies POST events with their bearer token.
    Http(IntakeArgs),
    /// Import NDJSON or CSV exports of one-stop software.
    File(FileArgs),
    /// Create a token for a unit: prints the token (give it to the unit) and its token-file entry.
    Token(TokenArgs),
}

impl Command {
    /// Whether the command runs until stopped: it then waits for Kafka at start instead of
    /// giving up after the connection check's timeout (outages are ordinary).
    fn long_running(&self) -> bool {
        matches!(self, Command::Aggregate(_) | Command::Ingest(IngestCommand::Http(_)))
    }

    /// Whether the command makes Kafka clients (it then checks the connection first).
    fn uses_kafka(&self) -> bool {
        match self {
            Command::Migrate(args) => !args.print_sql,
            Command::Ingest(IngestCommand::Simulate(args)) => !args.no_kafka,
            Command::Ingest(IngestCommand::Token(_))
            | Command::Export(_)
            | Command::Report(_)
            | Command::Backup(_)
            | Command::Restore(_)
            | Command::Rebuild(_)
            | Command::Procedures(_) => false,
            Command::Ingest(IngestCommand::Http(_) | IngestCommand::File(_))
            | Command::Aggregate(_)
            | Command::Demo(_) => true,
        }
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARPULSE_LOG")
                .unwrap_or_else(|_| "info,rdkafka=warn,librdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs piped to a file or journald stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .init();
    memory::return_large_blocks_to_the_system();
    let mut cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    cli.common.install_calendar()?;
    if !matches!(cli.command, Command::Procedures(_)) {
        // Validated at start, like the calendar: a bad catalogue stops every command here.
        let catalogue = cli.common.procedures()?;
        tracing::debug!(procedures = catalogue.len(), "procedure catalogue loaded");
    }
    runtime.block_on(async move {
        if cli.command.uses_kafka() {
            cli.common.connect_kafka(cli.command.long_running()).await?;
        }
        match cli.command {
            Command::Migrate(args) if args.print_sql => serve::print_migrations(&cli.common),
            Command::Migrate(_) => serve::migrate(&cli.common).await,
            Command::Ingest(IngestCommand::Simulate(args)) => serve::simulate(&cli.common, &args).await.map(|_| ()),
            Command::Ingest(IngestCommand::Http(args)) => serve::intake(&cli.common, &args).await,
            Command::Ingest(IngestCommand::File(args)) => serve::import(&cli.common, &args).await,
            Command::Ingest(IngestCommand::Token(args)) => serve::new_token(&cli.common, &args),
            Command::Aggregate(args) => serve::aggregate(&cli.common, &args).await,
            Command::Export(args) => serve::export(&cli.common, &args).await,
            Command::Report(args) => serve::report(&cli.common, &args).await,
            Command::Demo(args) => demo::run(&cli.common, &args).await,
            Command::Backup(args) => serve::backup(&cli.common, &args).await,
            Command::Restore(args) => serve::restore(&cli.common, &args).await,
            Command::Rebuild(args) => serve::rebuild(&cli.common, &args).await,
            Command::Procedures(ProceduresCommand::Import(args)) => serve::import_procedures(&cli.common, &args),
        }
    })
}
