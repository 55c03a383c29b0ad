//! Shared support for the end-to-end tests: real services (never mocks), an
//! isolated namespace per test, an independent recount of KPIs from NDJSON, and
//! a small Prometheus text parser.
//!
//! Services come from `PARPULSE_KAFKA_BROKERS` / `PARPULSE_CLICKHOUSE_URL`
//! (default: the local ones `make up` starts). A test that cannot reach them
//! fails with a message saying so; it never skips.

pub mod prom_text;
pub mod recount;

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

    pub fn kafka(&self) -> KafkaConfig {
        KafkaConfig { brokers: self.brokers.clone(), topics: self.topics.clone(), partitions: 4 }
    }

    pub fn clickhouse(&self) -> ClickHouseConfig {
        ClickHouseConfig { url: self.clickhouse_url.clone(), database: self.database.clone(), user: None, password: None }
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

    pub fn aggregator_config(&self) -> parpulse_aggregate::AggregatorConfig {
        parpulse_aggregate::AggregatorConfig {
            brokers: self.brokers.clone(),
            consumer_group: self.consumer_group.clone(),
            topic: self.topics.dossier.clone(),
            checkpoint_interval: Duration::from_millis(200),
            checkpoint_max_events: 5_000,
        }
    }

    /// Waits until the aggregator's checkpoints reach the end of the topic.
    pub async fn wait_caught_up(&self, store: &Store, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let done = parpulse_aggregate::caught_up(store, &self.brokers, &self.consumer_group, &self.topics.dossier)
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
