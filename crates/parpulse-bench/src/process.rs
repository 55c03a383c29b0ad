//! parpulse's own processes (release binary), started the way an operator would,
//! each with its own database, topics and consumer group.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use parpulse_clickhouse::{ClickHouseConfig, Store};
use parpulse_core::topics::Topics;

/// Where one measurement's data lives.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub binary: PathBuf,
    /// The brokers and the security settings (PARPULSE_KAFKA_*, which the processes inherit).
    pub kafka: parpulse_kafka::KafkaConnection,
    pub clickhouse_url: String,
    pub database: String,
    pub topic_prefix: String,
    pub consumer_group: String,
}

impl Deployment {
    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }

    pub fn kafka(&self) -> parpulse_ingest::KafkaConfig {
        parpulse_ingest::KafkaConfig {
            connection: self.kafka.clone(),
            topics: self.topics(),
            topic_settings: parpulse_kafka::TopicSettings {
                partitions: crate::kafka::PARTITIONS,
                ..Default::default()
            },
        }
    }

    fn clickhouse(&self) -> ClickHouseConfig {
        ClickHouseConfig::local(&self.clickhouse_url, &self.database)
    }

    pub async fn store(&self) -> Result<Store> {
        Ok(Store::connect(&self.clickhouse()).await?)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .env("PARPULSE_KAFKA_BROKERS", &self.kafka.brokers)
            .env("PARPULSE_CLICKHOUSE_URL", &self.clickhouse_url)
            .env("PARPULSE_CLICKHOUSE_DATABASE", &self.database)
            .env("PARPULSE_TOPIC_PREFIX", &self.topic_prefix)
            .env("PARPULSE_CONSUMER_GROUP", &self.consumer_group)
            .env("PARPULSE_PARTITIONS", crate::kafka::PARTITIONS.to_string())
            .env("PARPULSE_LOG", "warn")
            .stdout(Stdio::null());
        command
    }

    /// `parpulse migrate`: topics and tables.
    pub fn migrate(&self) -> Result<()> {
        let status = self.command(&["migrate"]).status().context("running parpulse migrate")?;
        if !status.success() {
            bail!("parpulse migrate failed");
        }
        Ok(())
    }

    pub fn spawn(&self, args: &[&str]) -> Result<Running> {
        let child = self.command(args).spawn().with_context(|| format!("starting parpulse {args:?}"))?;
        Ok(Running(child))
    }

    /// Waits until the aggregator's checkpoints reach the end of the event topics.
    pub async fn wait_caught_up(&self, store: &Store, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let topics = self.topics();
        while !parpulse_aggregate::caught_up(store, &self.kafka, &self.consumer_group, &topics.event_topics()).await? {
            if Instant::now() > deadline {
                bail!("the aggregator did not catch up within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub async fn drop_database(&self) -> Result<()> {
        Ok(Store::drop_database(&self.clickhouse()).await?)
    }
}

/// A child process, killed when dropped.
pub struct Running(pub Child);

impl Running {
    /// Peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmHWM in /proc/PID/status")?;
        Ok(kib / 1024.0)
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One unlabelled sample (or the sum over its label sets) from a /metrics page.
pub async fn scrape(client: &reqwest::Client, url: &str, name: &str) -> Option<f64> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    let samples = parpulse_prom_text::parse(&text);
    let mut values = samples.iter().filter(|s| s.name == name).map(|s| s.value).peekable();
    values.peek()?;
    Some(values.sum())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}
