//! Shared support for the end-to-end tests: real services (never mocks), an
//! isolated namespace per test, an independent recount of KPIs from NDJSON, and
//! a small Prometheus text parser.
//!
//! Services come from `PARPULSE_KAFKA_BROKERS` / `PARPULSE_CLICKHOUSE_URL`
//! (default: the local ones `make up` starts). A test that cannot reach them
//! fails with a message saying so; it never skips.

pub mod aggregators;
pub mod broker;
pub mod kafka_read;
pub use parpulse_prom_text as prom_text;
pub mod process;
pub mod prometheus;
pub mod recount;
pub mod rng;
pub mod spare_clickhouse;
pub mod terminal;

use std::time::Duration;

use parpulse_clickhouse::{ClickHouseConfig, Store};
use parpulse_core::topics::Topics;
use parpulse_ingest::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// One test's private corner of the shared services.
pub struct TestEnv {
    pub brokers: String,
    pub clickhouse_url: String,
    pub database: String,
    pub topics: Topics,
    pub consumer_group: String,
}

impl TestEnv {
    /// A fresh namespace: topics and database named after the test and a random id.
    pub fn new(test: &str) -> TestEnv {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        TestEnv {
            brokers: std::env::var("PARPULSE_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
            clickhouse_url: std::env::var("PARPULSE_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into()),
            database: format!("parpulse_test_{test}_{id}"),
            topics: Topics::with_prefix(&format!("test-{test}-{id}.")),
            consumer_group: format!("parpulse-test-{id}"),
        }
    }

    /// The prefix of the test's topic names (`PARPULSE_TOPIC_PREFIX` for a parpulse process).
    pub fn topic_prefix(&self) -> &str {
        self.topics.dossier.trim_end_matches("par.dossier.v1")
    }

    /// The shared local broker, plaintext.
    pub fn connection(&self) -> parpulse_kafka::KafkaConnection {
        parpulse_kafka::KafkaConnection::plaintext(&self.brokers)
    }

    pub fn kafka(&self) -> KafkaConfig {
        KafkaConfig { connection: self.connection(), topics: self.topics.clone(), topic_settings: Default::default() }
    }

    pub fn clickhouse(&self) -> ClickHouseConfig {
        ClickHouseConfig::local(&self.clickhouse_url, &self.database)
    }

    /// Connects to both services, or panics saying which one is missing and how to start it.
    pub async fn connect(&self) -> Store {
        let brokers = self.brokers.clone();
        let kafka = tokio::task::spawn_blocking(move || {
            let probe: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
            probe.fetch_metadata(None, Duration::from_secs(10)).map(|_| ())
        })
        .await
        .expect("probe task");
        if let Err(error) = kafka {
            panic!(
                "Kafka is not reachable at {} ({error}). Start it with `make up` or point PARPULSE_KAFKA_BROKERS at a broker.",
                self.brokers
            );
        }
        match Store::connect(&self.clickhouse()).await {
            Ok(store) => store,
            Err(error) => panic!(
                "ClickHouse is not reachable at {} ({error}). Start it with `make up` or point PARPULSE_CLICKHOUSE_URL at a server.",
                self.clickhouse_url
            ),
        }
    }

    /// Creates the topics and tables.
    pub async fn migrate(&self, store: &Store) {
        parpulse_ingest::kafka::ensure_topics(&self.kafka()).await.expect("creating test topics");
        parpulse_clickhouse::migrate::migrate(store).await.expect("applying migrations");
    }

    /// Removes the test's database and topics. Called at the end of a passing test;
    /// a failing one keeps its data for inspection (`make clean-data` removes all).
    pub async fn cleanup(&self) {
        Store::drop_database(&self.clickhouse()).await.expect("dropping the test database");
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.brokers).create().expect("admin client");
        let topics = [self.topics.dossier.as_str(), self.topics.deadletter.as_str()];
        admin.delete_topics(&topics, &rdkafka::admin::AdminOptions::new()).await.expect("deleting test topics");
    }

    /// Deletes more of the test's topics than [`TestEnv::cleanup`] does (budget, staffing).
    pub async fn delete_topics(&self, topics: &[&str]) {
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.brokers).create().expect("admin client");
        admin.delete_topics(topics, &rdkafka::admin::AdminOptions::new()).await.expect("deleting test topics");
    }

    pub fn aggregator_config(&self) -> parpulse_aggregate::AggregatorConfig {
        parpulse_aggregate::AggregatorConfig {
            checkpoint_interval: Duration::from_millis(200),
            checkpoint_max_events: 5_000,
            // Audit rows in pieces of about 1,000 events, several per checkpoint: every
            // test's aggregator stores some ahead of their checkpoint.
            audit_piece_bytes: 256 << 10,
            ..parpulse_aggregate::AggregatorConfig::new(self.connection(), &self.consumer_group, self.topics.clone())
        }
    }

    /// Runs an aggregator until it has checkpointed the whole dossier topic, then stops it.
    pub async fn aggregate_to_end(&self, store: &Store, within: Duration) {
        let metrics = parpulse_aggregate::AggregatorMetrics::new();
        self.aggregate_to_end_with(self.aggregator_config(), &metrics, store, within).await;
    }

    /// [`TestEnv::aggregate_to_end`] with a given configuration, reporting into `metrics`.
    pub async fn aggregate_to_end_with(
        &self,
        config: parpulse_aggregate::AggregatorConfig,
        metrics: &parpulse_aggregate::AggregatorMetrics,
        store: &Store,
        within: Duration,
    ) {
        let aggregator = InProcessAggregator::spawn(config, store, metrics);
        self.wait_caught_up(store, within).await;
        aggregator.stop().await;
    }

    /// Waits until the aggregator's checkpoints reach the end of the topic.
    pub async fn wait_caught_up(&self, store: &Store, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let done = parpulse_aggregate::caught_up(
                store,
                &self.connection(),
                &self.consumer_group,
                &self.topics.event_topics(),
            )
            .await
            .expect("checking aggregator progress");
            if done {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "aggregator did not catch up within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An aggregator running as a task of the test (`parpulse_aggregate::run`), until stopped.
pub struct InProcessAggregator {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), parpulse_aggregate::runner::AggregateError>>,
}

impl InProcessAggregator {
    /// Starts `run` with `config` on `store`, reporting into `metrics`.
    pub fn spawn(
        config: parpulse_aggregate::AggregatorConfig,
        store: &Store,
        metrics: &parpulse_aggregate::AggregatorMetrics,
    ) -> InProcessAggregator {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(parpulse_aggregate::run(config, store.clone(), metrics.clone(), async {
            let _ = stopped.await;
        }));
        InProcessAggregator { stop, task }
    }

    /// Asks it to shut down (a last checkpoint) and waits: panics if it had already
    /// ended, or ends with an error.
    pub async fn stop(self) {
        self.stop.send(()).expect("aggregator still running");
        self.task.await.expect("aggregator task").expect("aggregator ran without error");
    }
}

/// Tokens the intake tests use: one for SNV (Sở Nội vụ), one for the province.
pub const SNV_TOKEN: &str = "test-token-snv-0123456789abcdef";
pub const PROVINCE_TOKEN: &str = "test-token-province-fedcba9876543210";

/// A running in-process HTTP intake.
pub struct RunningIntake {
    pub address: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningIntake {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for RunningIntake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The token file (docs/INGEST.md) admitting [`SNV_TOKEN`] and [`PROVINCE_TOKEN`].
pub fn test_token_file() -> String {
    use parpulse_ingest::intake::auth::sha256_hex;
    format!(
        "[[token]]\nagency = \"SNV\"\nsha256 = \"{}\"\n[[token]]\nagency = \"HY\"\nsha256 = \"{}\"\n",
        sha256_hex(SNV_TOKEN),
        sha256_hex(PROVINCE_TOKEN)
    )
}

/// Starts the HTTP intake on a free port, producing to `brokers` with the test's topics.
pub async fn start_intake(
    env: &TestEnv,
    brokers: &str,
    body_limit_bytes: usize,
    delivery_timeout: Duration,
) -> RunningIntake {
    use parpulse_ingest::intake::{auth, Intake, IntakeConfig};
    let registry = parpulse_core::AgencyRegistry::demo();
    let tokens = auth::TokenStore::from_toml(&test_token_file(), &registry).expect("test tokens");
    let kafka = KafkaConfig { connection: parpulse_kafka::KafkaConnection::plaintext(brokers), ..env.kafka() };
    let gate = parpulse_ingest::Gate::new(registry, Default::default());
    let settings = parpulse_ingest::kafka::ProducerSettings { delivery_timeout };
    let sink = parpulse_ingest::KafkaSink::with_settings(kafka, gate, parpulse_ingest::IngestMetrics::new(), &settings)
        .expect("producer");
    let intake = std::sync::Arc::new(Intake::new(sink, tokens, IntakeConfig { body_limit_bytes }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(parpulse_http::serve_router(listener, intake.router(), async {
        let _ = stopped.await;
    }));
    RunningIntake { address, stop: Some(stop) }
}

/// Every stored (unit, day) bucket of the last 400 days, in the recount's shape.
pub async fn stored_day_counts(store: &Store) -> recount::DayCounts {
    let today = parpulse_core::LocalDay::of_micros(parpulse_core::time::now_micros());
    let rows = parpulse_clickhouse::day_count::read_days(store, parpulse_core::LocalDay(today.0 - 400), today)
        .await
        .expect("reading day_count");
    // Days with receptions (a day bucket also holds the endings of its day).
    rows.iter()
        .filter(|r| r.counts.receptions.received > 0)
        .map(|r| {
            let d = r.counts.receptions;
            let c = recount::Recount { received: d.received, online: d.received_online, postal: d.received_postal };
            ((r.agency_code.clone(), i64::from(r.day)), c)
        })
        .collect()
}

/// `parpulse ARGS` on the test's services and namespace (brokers, ClickHouse, database,
/// topic prefix, consumer group), logging at warn.
pub fn parpulse_command(env: &TestEnv, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(parpulse_bin());
    command
        .args(args)
        .env("PARPULSE_KAFKA_BROKERS", &env.brokers)
        .env("PARPULSE_CLICKHOUSE_URL", &env.clickhouse_url)
        .env("PARPULSE_CLICKHOUSE_DATABASE", &env.database)
        .env("PARPULSE_TOPIC_PREFIX", env.topic_prefix())
        .env("PARPULSE_CONSUMER_GROUP", &env.consumer_group)
        .env("PARPULSE_LOG", "warn");
    command
}

/// `parpulse export` with a fixed now (`PARPULSE_FAKE_NOW`, test-only) on a port it binds
/// itself, and its /metrics text once `/readyz` answers. The exporter is killed when the
/// returned guard drops.
pub async fn metrics_as_of(env: &TestEnv, now: &str) -> (process::Reaped, String) {
    metrics_as_of_with(env, now, &[]).await
}

/// [`metrics_as_of`] with more environment for the exporter (`PARPULSE_PROCEDURES`, ...).
pub async fn metrics_as_of_with(
    env: &TestEnv,
    now: &str,
    vars: &[(&str, &std::ffi::OsStr)],
) -> (process::Reaped, String) {
    let mut exporter = process::Reaped(
        parpulse_command(env, &["export", "--listen", "127.0.0.1:0", "--refresh-ms", "200"])
            .env("PARPULSE_FAKE_NOW", now)
            .envs(vars.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting parpulse export"),
    );
    let port = process::listening_port(&mut exporter.0, Duration::from_secs(60)).await;
    process::wait_http_ok(&format!("http://127.0.0.1:{port}/readyz"), Duration::from_secs(60)).await;
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the body of /metrics");
    (exporter, text)
}

/// The rows of a period report in CSV (`parpulse report --format csv`), by their code
/// (column "Mã"), each a header -> cell map; the byte-order mark Excel needs is skipped.
pub fn report_rows_by_code(
    csv_text: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(csv_text.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader.headers().expect("a header line").clone();
    reader
        .records()
        .map(|record| {
            let row: std::collections::BTreeMap<String, String> = headers
                .iter()
                .zip(record.expect("a CSV row").iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect();
            (row.get("Mã").expect("a code column (Mã)").clone(), row)
        })
        .collect()
}

/// The parpulse binary `make test` builds (`cargo build --workspace` first);
/// `PARPULSE_BIN` overrides.
pub fn parpulse_bin() -> std::path::PathBuf {
    use std::path::PathBuf;
    let path = std::env::var("PARPULSE_BIN").map(PathBuf::from).unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("debug/parpulse")
    });
    assert!(
        path.exists(),
        "{} not found: build it first (`cargo build -p parpulse`, as `make test` does)",
        path.display()
    );
    path
}

/// Every stored (unit, end day) lateness count, and open dossiers per unit, in the recount's shape.
pub async fn stored_resolved_counts(
    store: &Store,
) -> (std::collections::BTreeMap<(String, i64), recount::ResolvedRecount>, std::collections::BTreeMap<String, u64>) {
    let now = parpulse_core::time::now_micros();
    let today = parpulse_core::LocalDay::of_micros(now);
    let rows = parpulse_clickhouse::day_count::read_days(store, parpulse_core::LocalDay(today.0 - 400), today)
        .await
        .expect("reading the day buckets");
    let resolved = rows
        .iter()
        .map(|r| r.counts.resolved)
        .zip(&rows)
        .filter(|(counts, _)| *counts != parpulse_core::kpi::ResolvedCounts::default())
        .map(|(r, row)| {
            let c = recount::ResolvedRecount {
                resolved: r.resolved,
                on_time: r.on_time,
                late: r.late,
                late_with_apology: r.late_with_apology,
                refused: r.refused,
                returned: r.returned,
                returned_postal: r.returned_postal,
            };
            ((row.agency_code.clone(), i64::from(row.day)), c)
        })
        .collect();
    let open = parpulse_clickhouse::dossier_state::read_open(store, now)
        .await
        .expect("reading open dossiers")
        .into_iter()
        .filter(|o| o.open > 0)
        .map(|o| (o.agency_code, o.open))
        .collect();
    (resolved, open)
}

/// Stored budget sums and headcounts, in the recount's shape.
#[allow(clippy::type_complexity)]
pub async fn stored_administration(
    store: &Store,
    years: &[i32],
) -> (std::collections::BTreeMap<(String, i32), [i64; 5]>, std::collections::BTreeMap<(String, String), (i32, i32, i32)>)
{
    use parpulse_clickhouse::budget_staffing::{read_budget_year, read_headcounts};
    let mut budget = std::collections::BTreeMap::new();
    for year in years {
        for b in read_budget_year(store, *year).await.expect("reading budget") {
            budget
                .insert((b.agency_code, b.fiscal_year), [b.allocated, b.committed, b.disbursed, b.saved, b.disclosed]);
        }
    }
    let headcounts = read_headcounts(store)
        .await
        .expect("reading headcounts")
        .into_iter()
        .map(|h| ((h.agency_code, h.position), (h.quota, h.filled, h.baseline_quota)))
        .collect();
    (budget, headcounts)
}

/// Checks budget and staffing in ClickHouse against a recount of the NDJSON.
pub async fn assert_administration_equals_recount(store: &Store, ndjson: &str) {
    let want_budget = recount::recount_budget(ndjson);
    let want_headcounts = recount::recount_headcounts(ndjson);
    assert!(!want_budget.is_empty() && !want_headcounts.is_empty(), "the simulation has budget and staffing events");
    let years: std::collections::BTreeSet<i32> = want_budget.keys().map(|(_, y)| *y).collect();
    let (budget, headcounts) = stored_administration(store, &years.into_iter().collect::<Vec<_>>()).await;
    assert_eq!(budget, want_budget, "budget sums equal the recount");
    assert_eq!(headcounts, want_headcounts, "newest headcounts equal the recount");
}

/// Checks the Decision 766 service facts in ClickHouse against a recount of the NDJSON.
pub async fn assert_service_equals_recount(store: &Store, ndjson: &str) {
    let today = parpulse_core::LocalDay::of_micros(parpulse_core::time::now_micros());
    let rows = parpulse_clickhouse::day_count::read_days(store, parpulse_core::LocalDay(today.0 - 400), today)
        .await
        .expect("reading the day buckets");
    let stored: std::collections::BTreeMap<(String, i64), [u64; 4]> = rows
        .into_iter()
        .filter(|r| r.counts.service.received > 0)
        .map(|r| {
            let s = r.counts.service;
            ((r.agency_code, i64::from(r.day)), [s.received, s.fee_bearing, s.paid_online, s.digitized])
        })
        .collect();
    let want = recount::recount_service(ndjson);
    assert!(
        want.values().any(|c| c[2] > 0 && c[2] < c[1]),
        "the simulation has fee-bearing dossiers paid online and not"
    );
    assert_eq!(stored, want, "fee-bearing, paid-online and digitized dossiers equal the recount");
}

/// Every KPI stored in ClickHouse equals the independent recount of the NDJSON:
/// receptions by day, lateness by end day and open dossiers, budget and
/// staffing, and the Decision 766 service facts.
pub async fn assert_all_kpis_equal_recount(store: &Store, ndjson: &str) {
    assert_eq!(stored_day_counts(store).await, recount::recount_ndjson(ndjson), "receptions per unit and day");
    let (resolved, open) = stored_resolved_counts(store).await;
    let (want_resolved, want_open) = recount::recount_resolved(ndjson);
    assert!(!want_resolved.is_empty(), "the simulation has resolved dossiers");
    assert_eq!(resolved, want_resolved, "lateness counts per unit and end day");
    assert_eq!(open, want_open, "open dossiers per unit");
    assert_administration_equals_recount(store, ndjson).await;
    assert_service_equals_recount(store, ndjson).await;
    assert_audit_trail_equals_events(store, ndjson).await;
}

/// The `event_log` audit table holds every event of the file (dossier, budget, staffing),
/// each once by id and whole: its stored bytes decode to the file's event, field by
/// field (the ingestor's stamp aside, which the file does not have), and the row's own
/// columns agree with the bytes.
pub async fn assert_audit_trail_equals_events(store: &Store, ndjson: &str) {
    use std::collections::BTreeMap;
    let unstamped = |mut event: parpulse_core::Event| {
        event.stamp("", 0);
        event
    };
    let want: BTreeMap<String, parpulse_core::Event> = ndjson
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| parpulse_ingest::file_import::parse_ndjson_line(line).expect("the file's events parse"))
        .map(|event| (event.event_id().to_owned(), unstamped(event)))
        .collect();
    let codec = parpulse_core::avro::AvroCodec::new();
    let rows = parpulse_clickhouse::event_log::read_all(store).await.expect("reading event_log");
    let mut stored = BTreeMap::new();
    for row in rows {
        let event = codec.decode_event(&row.payload).expect("stored payloads decode");
        assert_eq!(
            (event.event_id(), event.agency_code(), event.occurred_at(), event.recorded_at()),
            (row.event_id.as_str(), row.agency_code.as_str(), row.occurred_at, row.recorded_at),
            "the row's columns are the event's own"
        );
        assert!(row.recorded_at > 0, "the ingestor's admission time is kept");
        assert_eq!(parpulse_core::avro::split_header(&row.payload).unwrap().0, row.schema_id);
        assert_eq!(row.day, parpulse_core::LocalDay::of_micros(row.occurred_at).0);
        stored.insert(row.event_id.clone(), unstamped(event));
    }
    assert_eq!(stored.len(), want.len(), "events in the audit table");
    assert!(stored == want, "the audit table holds exactly the file's events, every field");
}
