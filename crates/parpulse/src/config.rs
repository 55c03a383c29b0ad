//! Configuration: flags, each with a `PARPULSE_*` environment variable.
//! Passwords are never flags, so they do not show in process listings or shell
//! history: the ClickHouse password comes from the environment, the Kafka SASL
//! password from the environment or a file ([`parpulse_kafka::security`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use parpulse_clickhouse::{ClickHouseConfig, Store};
use parpulse_core::topics::Topics;
use parpulse_core::AgencyRegistry;
use parpulse_ingest::KafkaConfig;
use parpulse_kafka::security::{SaslMechanism, SecurityProtocol, SecuritySettings};
use parpulse_kafka::{KafkaConnection, KafkaSecurity};

/// A path that may be given empty (`PARPULSE_KAFKA_CA_FILE=` in an environment file):
/// empty counts as unset (filtered where the settings are read) instead of a clap error.
fn path_or_empty() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// How long the first connection to Kafka may take before the process gives up.
const KAFKA_PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// A library default shown and used by a milliseconds flag: each default lives once, in
/// its library's config struct (`AggregatorConfig::DEFAULT_*`, `ExporterConfig::DEFAULT_*`...).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Kafka bootstrap servers.
    #[arg(long, env = "PARPULSE_KAFKA_BROKERS", default_value = "127.0.0.1:9092", global = true)]
    pub kafka_brokers: String,
    /// Kafka security protocol: plaintext, ssl (TLS) or sasl_ssl (SASL inside TLS).
    #[arg(long, env = "PARPULSE_KAFKA_SECURITY_PROTOCOL", default_value = "plaintext", global = true)]
    pub kafka_security_protocol: SecurityProtocol,
    /// SASL mechanism with sasl_ssl: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN.
    #[arg(long, env = "PARPULSE_KAFKA_SASL_MECHANISM", default_value = "SCRAM-SHA-512", global = true)]
    pub kafka_sasl_mechanism: SaslMechanism,
    /// SASL user with sasl_ssl; the password comes from PARPULSE_KAFKA_SASL_PASSWORD or
    /// the file PARPULSE_KAFKA_SASL_PASSWORD_FILE names, never from a flag.
    #[arg(long, env = "PARPULSE_KAFKA_SASL_USERNAME", global = true)]
    pub kafka_sasl_username: Option<String>,
    /// File holding the SASL password (its first line), instead of PARPULSE_KAFKA_SASL_PASSWORD.
    #[arg(long, env = "PARPULSE_KAFKA_SASL_PASSWORD_FILE", global = true, value_parser = path_or_empty())]
    pub kafka_sasl_password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the brokers' certificates (ssl, sasl_ssl); default: the system's roots.
    #[arg(long, env = "PARPULSE_KAFKA_CA_FILE", global = true, value_parser = path_or_empty())]
    pub kafka_ca_file: Option<PathBuf>,
    /// The Kafka security settings with the password read ([`Common::connect_kafka`]).
    #[arg(skip)]
    kafka_security: Option<KafkaSecurity>,
    /// Prefix for topic names (par.dossier.v1, par.deadletter.v1).
    #[arg(long, env = "PARPULSE_TOPIC_PREFIX", default_value = "", global = true)]
    pub topic_prefix: String,
    /// Partitions of each event topic when `migrate` creates it.
    #[arg(long, env = "PARPULSE_PARTITIONS", default_value_t = 4, global = true)]
    pub partitions: i32,
    /// Replication factor of the topics `migrate` creates (3 on a three-broker cluster).
    #[arg(long, env = "PARPULSE_TOPIC_REPLICATION", default_value_t = 1, global = true)]
    pub topic_replication: i32,
    /// `min.insync.replicas` of the topics `migrate` creates (2 with replication 3); unset: the broker's default.
    #[arg(long, env = "PARPULSE_TOPIC_MIN_INSYNC_REPLICAS", global = true)]
    pub topic_min_insync_replicas: Option<i32>,
    /// Retention of the topics `migrate` creates: forever, or e.g. 400d, 36h, or milliseconds.
    #[arg(long, env = "PARPULSE_TOPIC_RETENTION", default_value = "forever", global = true)]
    pub topic_retention: parpulse_kafka::Retention,
    /// ClickHouse HTTP URL.
    #[arg(long, env = "PARPULSE_CLICKHOUSE_URL", default_value = "http://127.0.0.1:8123", global = true)]
    pub clickhouse_url: String,
    /// ClickHouse database (created if missing).
    #[arg(long, env = "PARPULSE_CLICKHOUSE_DATABASE", default_value = "parpulse", global = true)]
    pub clickhouse_database: String,
    /// ClickHouse user; the password comes from PARPULSE_CLICKHOUSE_PASSWORD only.
    #[arg(long, env = "PARPULSE_CLICKHOUSE_USER", global = true)]
    pub clickhouse_user: Option<String>,
    /// ClickHouse cluster name: `migrate` then creates Replicated*MergeTree tables with
    /// Distributed tables over them, ON CLUSTER (docs/ARCHITECTURE.md). Unset: one node.
    #[arg(long, env = "PARPULSE_CLICKHOUSE_CLUSTER", global = true)]
    pub clickhouse_cluster: Option<String>,
    /// PEM file of the CA that signed ClickHouse's HTTPS certificate (with an https:// URL),
    /// trusted besides the system's roots.
    #[arg(long, env = "PARPULSE_CLICKHOUSE_CA_FILE", global = true, value_parser = path_or_empty())]
    pub clickhouse_ca_file: Option<PathBuf>,
    /// Agency registry TOML (default: the demo province built in, deploy/agencies.toml).
    #[arg(long, env = "PARPULSE_AGENCIES", global = true)]
    pub agencies: Option<PathBuf>,
    /// Working-day calendar TOML (default: the one built in, deploy/holidays.toml), read
    /// and validated at start; deadlines in working days and apology timing use it.
    #[arg(long, env = "PARPULSE_HOLIDAYS", global = true)]
    pub holidays: Option<PathBuf>,
    /// Procedure catalogue TOML (default: the demo's built in, deploy/procedures.toml), read
    /// and validated against the agency registry at start.
    #[arg(long, env = "PARPULSE_PROCEDURES", global = true)]
    pub procedures: Option<PathBuf>,
    /// Aggregator consumer group (the exporter and demo read its checkpoints).
    #[arg(long, env = "PARPULSE_CONSUMER_GROUP", default_value = "parpulse-aggregator", global = true)]
    pub consumer_group: String,
}

impl Common {
    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }

    /// Reads the Kafka security settings (the password from the environment or its
    /// file), then connects once: a refused password, a certificate that does not verify
    /// or brokers that do not answer stop the process here, with a message that says which.
    /// Every command that uses Kafka runs this first (main.rs).
    ///
    /// `wait_while_unreachable` (the long-running commands: aggregate, ingest http): brokers
    /// that do not answer are waited for, with a log line per attempt window, instead of
    /// ending the process; refused credentials and TLS failures still stop it at once.
    pub async fn connect_kafka(&mut self, wait_while_unreachable: bool) -> Result<()> {
        let settings = SecuritySettings {
            protocol: self.kafka_security_protocol,
            mechanism: self.kafka_sasl_mechanism,
            username: self.kafka_sasl_username.clone().filter(|u| !u.is_empty()),
            password: None,
            password_file: self.kafka_sasl_password_file.clone().filter(|p| !p.as_os_str().is_empty()),
            ca_file: self.kafka_ca_file.clone().filter(|p| !p.as_os_str().is_empty()),
        };
        let security = settings.with_password_from_env().resolve().context("Kafka security settings")?;
        loop {
            let connection = KafkaConnection { brokers: self.kafka_brokers.clone(), security: security.clone() };
            let probed = tokio::task::spawn_blocking(move || {
                parpulse_kafka::security::probe(
                    &connection.client_config(),
                    &connection.brokers,
                    &connection.security,
                    KAFKA_PROBE_TIMEOUT,
                )
            })
            .await
            .context("Kafka connection check")?;
            match probed {
                Ok(()) => break,
                Err(error @ parpulse_kafka::security::ConnectError::Unreachable { .. }) if wait_while_unreachable => {
                    tracing::warn!(%error, "waiting for Kafka before starting");
                }
                Err(error) => return Err(error.into()),
            }
        }
        tracing::info!(brokers = %self.kafka_brokers, security = %security.describe(), "connected to Kafka");
        self.kafka_security = Some(security);
        Ok(())
    }

    /// Where the brokers are and how to reach them, as [`Common::connect_kafka`] found them.
    pub fn kafka_connection(&self) -> KafkaConnection {
        let security = self.kafka_security.clone();
        // A programming error, not a configuration one: main.rs connects before any Kafka client.
        let security = security.expect("Common::connect_kafka runs before any Kafka client is made");
        KafkaConnection { brokers: self.kafka_brokers.clone(), security }
    }

    pub fn kafka(&self) -> KafkaConfig {
        let topic_settings = parpulse_kafka::TopicSettings {
            partitions: self.partitions,
            replication: self.topic_replication,
            min_insync_replicas: self.topic_min_insync_replicas,
            retention: self.topic_retention,
        };
        KafkaConfig { connection: self.kafka_connection(), topics: self.topics(), topic_settings }
    }

    /// Makes the province's working-day calendar the one every judgment uses (the built-in
    /// one when `--holidays` is not given); a file that does not validate stops the process.
    pub fn install_calendar(&self) -> Result<()> {
        let Some(path) = &self.holidays else { return Ok(()) };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading holiday calendar {}", path.display()))?;
        let calendar = parpulse_core::calendar::WorkingCalendar::parse(&text)
            .with_context(|| format!("holiday calendar {}", path.display()))?;
        tracing::info!(path = %path.display(), first_year = calendar.first_year(), last_year = calendar.last_year(), "working-day calendar loaded");
        parpulse_core::lifecycle::install_calendar(calendar);
        Ok(())
    }

    pub fn registry(&self) -> Result<AgencyRegistry> {
        match &self.agencies {
            None => Ok(AgencyRegistry::demo()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading agency registry {}", path.display()))?;
                AgencyRegistry::from_toml(&text).with_context(|| format!("agency registry {}", path.display()))
            }
        }
    }

    /// The procedure catalogue (the demo's built in when `--procedures` is not given),
    /// validated against the registry: a file that does not validate stops the process.
    pub fn procedures(&self) -> Result<parpulse_core::procedures::ProcedureCatalogue> {
        let registry = self.registry()?;
        let (text, origin) = match &self.procedures {
            None => (parpulse_core::procedures::DEMO_TOML.to_owned(), "the built-in deploy/procedures.toml".to_owned()),
            Some(path) => (
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading procedure catalogue {}", path.display()))?,
                path.display().to_string(),
            ),
        };
        parpulse_core::procedures::ProcedureCatalogue::from_toml(&text, &registry)
            .with_context(|| format!("procedure catalogue {origin}"))
    }

    pub fn clickhouse(&self) -> ClickHouseConfig {
        ClickHouseConfig {
            url: self.clickhouse_url.clone(),
            database: self.clickhouse_database.clone(),
            user: self.clickhouse_user.clone(),
            password: std::env::var("PARPULSE_CLICKHOUSE_PASSWORD").ok().filter(|p| !p.is_empty()),
            cluster: self.clickhouse_cluster.clone().filter(|c| !c.is_empty()),
            ca_file: self.clickhouse_ca_file.clone().filter(|p| !p.as_os_str().is_empty()),
        }
    }

    pub async fn store(&self) -> Result<Store> {
        Store::connect(&self.clickhouse()).await.with_context(|| {
            format!(
                "cannot use ClickHouse at {}: is it running, and are PARPULSE_CLICKHOUSE_USER, PARPULSE_CLICKHOUSE_PASSWORD and PARPULSE_CLICKHOUSE_CA_FILE right? (`make up` starts a local one; PARPULSE_CLICKHOUSE_URL points elsewhere)",
                self.clickhouse_url
            )
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Seed: the same seed gives the same events.
    #[arg(long, default_value_t = 2019)]
    pub seed: u64,
    /// Days simulated, ending now.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Mean dossiers received per unit per working day.
    #[arg(long, default_value_t = 20)]
    pub dossiers_per_unit_day: u32,
    /// Simulate up to the end of this local day (YYYY-MM-DD) instead of up to now:
    /// with a fixed --seed, the output is then identical on every run.
    #[arg(long)]
    pub until: Option<chrono::NaiveDate>,
    /// Also write the events as NDJSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not send to Kafka (with --out: generate a file only).
    #[arg(long)]
    pub no_kafka: bool,
    /// Events per Kafka send batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Target rate in events per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// The producer setting of every command that sends to Kafka (ingest http, file, simulate).
#[derive(Args, Debug, Clone)]
pub struct DeliveryArgs {
    /// How long Kafka may take to acknowledge a record (milliseconds): `ingest http` then
    /// answers 503, `ingest file` and `ingest simulate` stop with an error (nothing lost: rerun).
    #[arg(long, env = "PARPULSE_DELIVERY_TIMEOUT_MS",
          default_value_t = millis(parpulse_ingest::kafka::ProducerSettings::DEFAULT_DELIVERY_TIMEOUT))]
    pub delivery_timeout_ms: u64,
}

impl DeliveryArgs {
    pub fn settings(&self) -> parpulse_ingest::kafka::ProducerSettings {
        parpulse_ingest::kafka::ProducerSettings { delivery_timeout: Duration::from_millis(self.delivery_timeout_ms) }
    }
}

#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    /// Print the SQL a first migration runs (for the database and cluster configured)
    /// and touch nothing: for review by a DBA, e.g. with PARPULSE_CLICKHOUSE_CLUSTER.
    #[arg(long)]
    pub print_sql: bool,
}

type AggregatorDefaults = parpulse_aggregate::AggregatorConfig;

#[derive(Args, Debug, Clone)]
pub struct AggregateArgs {
    /// Where the aggregator's own /metrics, /healthz and /readyz listen.
    #[arg(long, env = "PARPULSE_AGGREGATOR_LISTEN", default_value = AggregateArgs::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Checkpoint at least this often (milliseconds).
    #[arg(long, env = "PARPULSE_CHECKPOINT_INTERVAL_MS",
          default_value_t = millis(AggregatorDefaults::DEFAULT_CHECKPOINT_INTERVAL))]
    pub checkpoint_interval_ms: u64,
    /// Checkpoint after this many events, if sooner.
    #[arg(long, env = "PARPULSE_CHECKPOINT_MAX_EVENTS", default_value_t = AggregatorDefaults::DEFAULT_CHECKPOINT_MAX_EVENTS)]
    pub checkpoint_max_events: u64,
    /// A checkpoint not done within this many milliseconds is retried.
    #[arg(long, env = "PARPULSE_CHECKPOINT_TIMEOUT_MS",
          default_value_t = millis(AggregatorDefaults::DEFAULT_CHECKPOINT_TIMEOUT))]
    pub checkpoint_timeout_ms: u64,
    /// Events this many days older than the newest event of their partition are
    /// not counted but sent to the dead-letter topic as `too_late`.
    #[arg(long, env = "PARPULSE_ALLOWED_LATENESS_DAYS",
          default_value_t = AggregatorDefaults::DEFAULT_ALLOWED_LATENESS.as_secs() / 86_400)]
    pub allowed_lateness_days: u64,
    /// Consumer-group session timeout: how soon a dead aggregator's partitions move to the others.
    #[arg(long, env = "PARPULSE_SESSION_TIMEOUT_MS", default_value_t = millis(AggregatorDefaults::DEFAULT_SESSION_TIMEOUT))]
    pub session_timeout_ms: u64,
    /// Static group membership id (e.g. the host name): a restarted aggregator with the
    /// same id takes its partitions back at once, without a rebalance.
    #[arg(long, env = "PARPULSE_AGGREGATOR_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Keep every applied event whole in the `event_log` audit table (one more
    /// ClickHouse row per event: see docs/BENCHMARKS.md for its cost).
    #[arg(long, env = "PARPULSE_AUDIT_EVENTS", default_value_t = AggregatorDefaults::DEFAULT_AUDIT_EVENTS,
          action = clap::ArgAction::Set)]
    pub audit_events: bool,
    /// Audit rows are written ahead of their checkpoint in pieces of about this many
    /// bytes as they fill: the memory they take is at most about four pieces.
    #[arg(long, env = "PARPULSE_AUDIT_PIECE_BYTES", default_value_t = AggregatorDefaults::DEFAULT_AUDIT_PIECE_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(4096..))]
    pub audit_piece_bytes: u64,
}

impl SimulateArgs {
    pub fn simulator_config(&self) -> Result<parpulse_ingest::SimulatorConfig> {
        use chrono::Datelike;
        match self.until {
            None => Ok(parpulse_ingest::SimulatorConfig::recent(self.seed, self.days, self.dossiers_per_unit_day)),
            Some(date) => {
                let day = parpulse_core::LocalDay::from_ymd(date.year(), date.month(), date.day())
                    .with_context(|| format!("--until {date} is out of range"))?;
                let end = parpulse_core::LocalDay(day.0 + 1).start_micros() - 1;
                Ok(parpulse_ingest::SimulatorConfig::ending_at(self.seed, self.days, self.dossiers_per_unit_day, end))
            }
        }
    }
}

impl AggregateArgs {
    /// Also the demo's (`parpulse demo --aggregator-listen`).
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:9465";

    pub fn config(&self, common: &Common) -> Result<parpulse_aggregate::AggregatorConfig> {
        Ok(parpulse_aggregate::AggregatorConfig {
            kafka: common.kafka_connection(),
            consumer_group: common.consumer_group.clone(),
            topics: common.topics(),
            checkpoint_interval: Duration::from_millis(self.checkpoint_interval_ms),
            checkpoint_max_events: self.checkpoint_max_events,
            checkpoint_timeout: Duration::from_millis(self.checkpoint_timeout_ms),
            allowed_lateness: Duration::from_secs(self.allowed_lateness_days.saturating_mul(86_400)),
            session_timeout: Duration::from_millis(self.session_timeout_ms),
            instance_id: self.instance_id.clone(),
            audit_events: self.audit_events,
            audit_piece_bytes: usize::try_from(self.audit_piece_bytes).unwrap_or(usize::MAX),
            registry: common.registry()?,
            policy: Default::default(),
            clock: Default::default(),
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long, env = "PARPULSE_EXPORTER_LISTEN", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// Milliseconds between refreshes from ClickHouse (at least 100).
    #[arg(long, env = "PARPULSE_EXPORTER_REFRESH_MS",
          default_value_t = millis(parpulse_export::ExporterConfig::DEFAULT_REFRESH_INTERVAL))]
    pub refresh_ms: u64,
    /// Milliseconds between reads of open and overdue dossiers now (a scan of a row per
    /// dossier), budget and staffing; windowed counts follow the refresh interval.
    #[arg(long, env = "PARPULSE_EXPORTER_LATENESS_REFRESH_MS",
          default_value_t = millis(parpulse_export::ExporterConfig::DEFAULT_LATENESS_REFRESH_INTERVAL))]
    pub lateness_refresh_ms: u64,
    /// Seconds without a successful refresh after which values are stale and /readyz fails.
    #[arg(long, env = "PARPULSE_EXPORTER_STALE_SECS",
          default_value_t = parpulse_export::ExporterConfig::DEFAULT_STALE_AFTER.as_secs())]
    pub stale_secs: u64,
    /// Tests only (hidden): judge as of this RFC 3339 instant instead of the wall clock
    /// (docs/OPERATIONS.md, "A fixed now for tests").
    #[arg(long, env = "PARPULSE_FAKE_NOW", hide = true, value_parser = parpulse_core::time::Clock::fixed_at)]
    pub fake_now: Option<parpulse_core::time::Clock>,
}

impl ExportArgs {
    pub fn config(&self) -> parpulse_export::ExporterConfig {
        parpulse_export::ExporterConfig {
            refresh_interval: Duration::from_millis(self.refresh_ms.max(100)),
            lateness_refresh_interval: Duration::from_millis(self.lateness_refresh_ms.max(100)),
            stale_after: Duration::from_secs(self.stale_secs),
            clock: self.fake_now.clone().unwrap_or_default(),
            // The catalogue is read with the registry (Common::procedures, serve.rs).
            ..Default::default()
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct IntakeArgs {
    /// Where POST /v1/events, /metrics, /healthz and /readyz listen.
    #[arg(long, env = "PARPULSE_INTAKE_LISTEN", default_value = "127.0.0.1:9466")]
    pub listen: SocketAddr,
    /// Token file: `[[token]] agency = "SNV" sha256 = "<hex>"` (see `parpulse ingest token`).
    #[arg(long, env = "PARPULSE_INTAKE_TOKENS")]
    pub tokens: PathBuf,
    /// Largest accepted request body, bytes.
    #[arg(long, env = "PARPULSE_INTAKE_BODY_LIMIT",
          default_value_t = parpulse_ingest::intake::IntakeConfig::DEFAULT_BODY_LIMIT_BYTES)]
    pub body_limit: usize,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

#[derive(Args, Debug, Clone)]
pub struct FileArgs {
    /// NDJSON (.ndjson, .jsonl, .json), CSV or text (.csv, .tsv, .txt) or workbook (.xlsx, .xlsm, .xls, .ods) files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Where refused rows go (NDJSON); default: <first file>.rejects.ndjson.
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Column mapping of tables: parpulse, vi-export, national-sync or a profile file (TOML);
    /// default: the built-in profile whose required columns the header has.
    #[arg(long)]
    pub profile: Option<String>,
    /// Workbook sheet to read; default: the first.
    #[arg(long)]
    pub sheet: Option<String>,
    /// Row (1-based) holding the column names; default: found among the first 30 rows.
    #[arg(long)]
    pub header_row: Option<u64>,
    /// Column separator of CSV/text files: , ; tab or |; default: detected.
    #[arg(long, value_parser = parpulse_ingest::file_import::encoding::parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Unit code for every row of files without a unit column (one unit's export).
    #[arg(long)]
    pub agency: Option<String>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

impl FileArgs {
    pub fn import_options(&self) -> parpulse_ingest::file_import::ImportOptions {
        parpulse_ingest::file_import::ImportOptions {
            profile: self.profile.clone(),
            sheet: self.sheet.clone(),
            header_row: self.header_row,
            delimiter: self.delimiter,
            agency: self.agency.clone(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    /// The unit (or the province code, for all units) the new token speaks for.
    #[arg(long)]
    pub agency: String,
}

impl Common {
    pub fn sink(&self, delivery: &DeliveryArgs) -> Result<parpulse_ingest::KafkaSink> {
        let gate = parpulse_ingest::Gate::new(self.registry()?, Default::default());
        let metrics = parpulse_ingest::IngestMetrics::new();
        Ok(parpulse_ingest::KafkaSink::with_settings(self.kafka(), gate, metrics, &delivery.settings())?)
    }
}

/// The ClickHouse server's data folder (`<path>` in its config), for backup and restore.
#[derive(Args, Debug, Clone)]
pub struct DataPathArg {
    /// The server's data folder: /var/lib/clickhouse for the Debian package, .parpulse/clickhouse/data for `make up`.
    #[arg(long, env = "PARPULSE_CLICKHOUSE_DATA_PATH", default_value = "/var/lib/clickhouse")]
    pub clickhouse_data: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// A new folder for the backup.
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    pub data: DataPathArg,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// A folder `parpulse backup` wrote.
    #[arg(long)]
    pub from: PathBuf,
    #[command(flatten)]
    pub data: DataPathArg,
}

#[derive(Args, Debug, Clone)]
pub struct RebuildArgs {
    /// Rebuild only these units (comma-separated codes); the others' rows stay as they are.
    #[arg(long, value_delimiter = ',')]
    pub units: Option<Vec<String>>,
    /// Rebuild only rows of local days from this one (YYYY-MM-DD; dossiers by their reception day).
    #[arg(long)]
    pub from: Option<chrono::NaiveDate>,
    /// ... up to this one, inclusive.
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
}

impl RebuildArgs {
    pub fn scope(&self) -> Result<parpulse_clickhouse::rebuild::Scope> {
        use chrono::Datelike;
        let day = |date: chrono::NaiveDate| {
            parpulse_core::LocalDay::from_ymd(date.year(), date.month(), date.day())
                .map(|d| d.0)
                .with_context(|| format!("{date} is out of range"))
        };
        let days = match (self.from, self.to) {
            (None, None) => None,
            (from, to) => Some((from.map(day).transpose()?.unwrap_or(0), to.map(day).transpose()?.unwrap_or(u16::MAX))),
        };
        if let Some((from, to)) = days {
            anyhow::ensure!(from <= to, "--from must not be after --to");
        }
        Ok(parpulse_clickhouse::rebuild::Scope { units: self.units.clone(), days })
    }
}

#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["html", "period"])))]
pub struct ReportArgs {
    /// Where to write the HTML scorecard (rolling window).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Window of the scorecard: day, 7d, 30d, mtd, ytd, last_month or last_quarter.
    #[arg(long, default_value = "30d")]
    pub window: String,
    /// A closed period's report (Biểu số 06 shape): 2019-11, 2019-Q4, 2019-H2, 2019 or
    /// 2019-10-01..2019-12-31; judged as of the period's end from today's facts.
    #[arg(long, value_parser = parse_period)]
    pub period: Option<parpulse_core::period::Period>,
    /// Format of the period report: csv, html or xlsx (default: from --output's extension, else csv).
    #[arg(long)]
    pub format: Option<String>,
    /// Where to write the period report (default: standard output; required for xlsx).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The period report as it stood at this RFC 3339 instant (e.g. 2019-12-05T17:00:00+07:00):
    /// only events admitted by then, replayed from the audit table (event_log).
    #[arg(long, value_parser = parse_instant, requires = "period")]
    pub as_of: Option<i64>,
}

fn parse_instant(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("{text:?} is not an RFC 3339 instant (2019-12-05T17:00:00+07:00): {e}"))
}

fn parse_period(text: &str) -> Result<parpulse_core::period::Period, String> {
    parpulse_core::period::Period::parse(text).map_err(|e| e.to_string())
}

#[derive(Args, Debug, Clone)]
pub struct ProceduresImportArgs {
    /// A procedure list as the national procedure database exports it (CSV, UTF-8, `,` or `;`):
    /// columns Mã thủ tục, Tên thủ tục, Mức độ, Cơ quan thực hiện (or Mã đơn vị) and
    /// optionally Phí, lệ phí (docs/KPIS.md). The catalogue TOML goes to stdout.
    pub file: PathBuf,
}
