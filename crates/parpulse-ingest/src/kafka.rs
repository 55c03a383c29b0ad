//! Producing to Kafka: accepted events to their topic (key = agency code,
//! acks=all, idempotent producer), rejected input to the dead-letter topic with
//! `reason`, `message` and `source` headers. [`KafkaSink::deliver`] returns only
//! once Kafka has acknowledged every record, so success means durable.

use std::time::{Duration, Instant};

use parpulse_core::avro::EventKind;
use parpulse_core::time::now_micros;
use parpulse_core::topics::Topics;
use parpulse_core::Event;
use parpulse_kafka::health::HealthContext;
use parpulse_kafka::{dead_letter, enqueue, KafkaConnection};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::gate::{Gate, Outgoing};
use crate::metrics::IngestMetrics;

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub connection: KafkaConnection,
    pub topics: Topics,
    /// How `migrate` creates the topics (partitions, replication, retention).
    pub topic_settings: parpulse_kafka::TopicSettings,
}

pub type SinkError = parpulse_kafka::KafkaFailure;

/// Creates the topics if they do not exist (idempotent); returns how existing ones
/// differ from the settings (reported, never altered).
pub async fn ensure_topics(config: &KafkaConfig) -> Result<Vec<String>, SinkError> {
    parpulse_kafka::ensure_topics(&config.connection, &config.topics, &config.topic_settings).await
}

/// Counts of one delivery.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendSummary {
    pub accepted: u64,
    pub rejected: u64,
}

impl SendSummary {
    pub fn add(&mut self, other: &SendSummary) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
    }
}

/// Producer settings a deployment may tune.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// How long Kafka may take to acknowledge before a delivery counts as failed.
    pub delivery_timeout: Duration,
}

impl ProducerSettings {
    /// The default of every producing command (`PARPULSE_DELIVERY_TIMEOUT_MS`): long enough
    /// for a partition's new leader to be elected after a broker is lost.
    pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for ProducerSettings {
    fn default() -> Self {
        Self { delivery_timeout: Self::DEFAULT_DELIVERY_TIMEOUT }
    }
}

pub struct KafkaSink {
    producer: FutureProducer<HealthContext>,
    config: KafkaConfig,
    gate: Gate,
    metrics: IngestMetrics,
}

impl KafkaSink {
    pub fn new(config: KafkaConfig, gate: Gate) -> Result<Self, SinkError> {
        Self::with_settings(config, gate, IngestMetrics::new(), &ProducerSettings::default())
    }

    pub fn with_settings(
        config: KafkaConfig,
        gate: Gate,
        metrics: IngestMetrics,
        settings: &ProducerSettings,
    ) -> Result<Self, SinkError> {
        let kafka = metrics.health.get("kafka");
        let producer = config.connection.durable_producer(kafka, |client| {
            client
                .set("compression.type", "lz4")
                .set("linger.ms", "5")
                .set("message.timeout.ms", settings.delivery_timeout.as_millis().to_string());
        })?;
        Ok(Self { producer, config, gate, metrics })
    }

    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    /// Judges and delivers events that exist only as values (simulator).
    pub async fn send(&self, events: Vec<Event>, source: &str) -> Result<SendSummary, SinkError> {
        let now = now_micros();
        let outgoing: Vec<_> = events.into_iter().map(|e| self.gate.judge_value(e, source, now)).collect();
        self.deliver(&outgoing, source).await
    }

    /// Produces every record and waits until Kafka acknowledged all of them.
    /// On error nothing can be assumed stored: the caller retries the whole batch
    /// (event ids make the retry idempotent downstream).
    pub async fn deliver(&self, outgoing: &[Outgoing], source: &str) -> Result<SendSummary, SinkError> {
        let started = Instant::now();
        let mut summary = SendSummary::default();
        let mut deliveries = Vec::with_capacity(outgoing.len());
        for item in outgoing {
            let delivery = match item {
                Outgoing::Event { kind, key, value } => {
                    summary.accepted += 1;
                    self.enqueue(self.config.topics.for_kind(*kind), key, value, None).await?
                }
                Outgoing::DeadLetter { key, original, rejection, source } => {
                    summary.rejected += 1;
                    // Per input at debug only: refusals are counted by reason
                    // (parpulse_ingest_rejected_total) and kept whole in the dead-letter
                    // topic; a flood of bad input must not become a flood of log lines.
                    tracing::debug!(agency = %key, reason = rejection.reason.code(), message = %parpulse_kafka::clip(&rejection.message), source = %source, "input rejected");
                    let (headers, value) = dead_letter(rejection, source, None, original);
                    self.enqueue(&self.config.topics.deadletter, key, value, Some(headers)).await?
                }
            };
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => return Err(self.error("awaiting delivery", source)),
                Err(_) => return Err(self.error("awaiting delivery", KafkaError::Canceled)),
            }
        }
        self.metrics.produce_seconds.with_label_values(&[source]).observe(started.elapsed().as_secs_f64());
        for item in outgoing {
            match item {
                Outgoing::Event { kind, .. } => {
                    self.metrics.accepted.with_label_values(&[source, kind_label(*kind)]).inc()
                }
                Outgoing::DeadLetter { rejection, .. } => {
                    self.metrics.rejected.with_label_values(&[source, rejection.reason.code()]).inc()
                }
            }
        }
        Ok(summary)
    }

    async fn enqueue(
        &self,
        topic: &str,
        key: &str,
        value: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<DeliveryFuture, SinkError> {
        let mut record = FutureRecord::to(topic).key(key).payload(value);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        enqueue(&self.producer, record).await.map_err(|source| self.error("enqueueing a message", source))
    }

    fn error(&self, doing: &'static str, source: KafkaError) -> SinkError {
        self.config.connection.error(doing)(source)
    }

    /// Whether a broker answers a metadata request within `timeout`.
    pub async fn reachable(&self, timeout: Duration) -> bool {
        let client = self.producer.clone();
        tokio::task::spawn_blocking(move || client.client().fetch_metadata(None, timeout).is_ok())
            .await
            .unwrap_or(false)
    }
}

pub fn kind_label(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Dossier => "dossier",
        EventKind::Budget => "budget",
        EventKind::Staffing => "staffing",
    }
}
