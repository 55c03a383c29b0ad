//! `parpulse aggregate` processes for the chaos test: started as an operator would,
//! watched through their /readyz and /metrics, and their progress read from the
//! checkpoints in ClickHouse and the high watermarks in Kafka.

use std::process::Stdio;
use std::time::Duration;

use parpulse_clickhouse::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::broker::SpareBroker;
use crate::process::Reaped;
use crate::spare_clickhouse::SpareClickHouse;
use crate::TestEnv;

/// A private Kafka broker and ClickHouse server (for a test that restarts them), and
/// the test's namespace on them, migrated.
pub async fn on_spare_services(test: &str) -> (SpareBroker, SpareClickHouse, TestEnv, Store) {
    let broker = SpareBroker::start();
    let clickhouse = SpareClickHouse::start();
    let mut env = TestEnv::new(test);
    env.brokers = broker.brokers();
    env.clickhouse_url = clickhouse.url();
    let store = env.connect().await;
    env.migrate(&store).await;
    (broker, clickhouse, env, store)
}

/// `parpulse aggregate` on the test's services with static membership `instance`,
/// its log appended to `log`, on a port of its own choosing (see
/// [`crate::process::listening_port`]).
pub fn start_aggregator(env: &TestEnv, instance: &str, log: &std::path::Path) -> Reaped {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("aggregator log file");
    let child = crate::parpulse_command(env, &["aggregate", "--listen", "127.0.0.1:0"])
        .args(["--checkpoint-interval-ms", "200", "--checkpoint-max-events", "20000"])
        .env("PARPULSE_AGGREGATOR_INSTANCE_ID", instance)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting parpulse aggregate");
    Reaped(child)
}

/// The status of an aggregator's /readyz, or `None` when it does not answer.
pub async fn readyz(port: u16) -> Option<u16> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let response = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.ok()?;
    Some(response.status().as_u16())
}

/// Waits until every port's /readyz answers `status`; the time it took.
pub async fn wait_readyz(ports: &[u16], status: u16, within: Duration) -> Duration {
    let started = tokio::time::Instant::now();
    loop {
        let mut all = true;
        for port in ports {
            all &= readyz(*port).await == Some(status);
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/readyz of the aggregators on {ports:?} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Offsets checkpointed by the test's consumer group, summed over the event topics
/// (`None` while ClickHouse does not answer).
pub async fn committed_sum(env: &TestEnv, store: &Store) -> Option<i64> {
    let mut sum = 0;
    for topic in env.topics.event_topics() {
        let committed = parpulse_clickhouse::checkpoint::committed(store, &env.consumer_group, topic).await.ok()?;
        sum += committed.iter().map(|c| c.next_offset).sum::<i64>();
    }
    Some(sum)
}

/// High watermarks of the event topics, summed (every message written so far).
/// Retries for up to a minute: just after a broker restart, partitions answer
/// "not leader" until their leadership is settled.
pub async fn high_watermark_sum(env: &TestEnv) -> i64 {
    let (brokers, topics) = (env.brokers.clone(), env.topics.clone());
    tokio::task::spawn_blocking(move || {
        let probe: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("probe");
        let sum = || -> Result<i64, rdkafka::error::KafkaError> {
            let mut sum = 0;
            for topic in topics.event_topics() {
                let metadata = probe.fetch_metadata(Some(topic), Duration::from_secs(10))?;
                for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                    sum += probe.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?.1;
                }
            }
            Ok(sum)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match sum() {
                Ok(sum) => return sum,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("high watermarks not readable yet ({e}); retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("high watermarks of the event topics not readable within 60 s: {e}"),
            }
        }
    })
    .await
    .expect("watermark probe")
}

/// The `q` quantile (0..=1) of `values`, nearest rank; `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}
