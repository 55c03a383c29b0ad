//! Producing to Kafka: accepted events to the dossier topic (key = agency code,
//! acks=all, idempotent producer), rejected ones to the dead-letter topic with
//! their reason in headers. A send returns only once Kafka has acknowledged
//! every message, so a successful return means durable.

use std::time::Duration;

use parpulse_core::time::now_micros;
use parpulse_core::topics::Topics;
use parpulse_core::DossierEvent;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::gate::{Gate, Verdict};

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topics: Topics,
    pub partitions: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("Kafka at {brokers}: {doing}: {source}")]
    Kafka {
        brokers: String,
        doing: &'static str,
        #[source]
        source: KafkaError,
    },
}

/// Creates the topics if they do not exist (idempotent).
pub async fn ensure_topics(config: &KafkaConfig) -> Result<(), SinkError> {
    let err = |doing| {
        let brokers = config.brokers.clone();
        move |source| SinkError::Kafka { brokers, doing, source }
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()
        .map_err(err("creating an admin client"))?;
    let topics = [
        NewTopic::new(&config.topics.dossier, config.partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&config.topics.deadletter, 1, TopicReplication::Fixed(1)),
    ];
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))).request_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&topics, &options).await.map_err(err("creating topics"))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(SinkError::Kafka {
                    brokers: config.brokers.clone(),
                    doing: "creating topics",
                    source: KafkaError::AdminOp(code),
                })
                .inspect_err(|_| tracing::error!(topic, %code, "topic creation failed"));
            }
        }
    }
    Ok(())
}

/// Counts of one send.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendSummary {
    pub accepted: u64,
    pub rejected: u64,
}

pub struct KafkaSink {
    producer: FutureProducer,
    config: KafkaConfig,
    gate: Gate,
}

impl KafkaSink {
    pub fn new(config: KafkaConfig, gate: Gate) -> Result<Self, SinkError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|source| SinkError::Kafka { brokers: config.brokers.clone(), doing: "creating a producer", source })?;
        Ok(Self { producer, config, gate })
    }

    /// Validates, encodes and produces `events`; returns after Kafka acknowledged all of them.
    /// `source` names the ingestor in dead-letter headers.
    pub async fn send(&self, events: &[DossierEvent], source: &str) -> Result<SendSummary, SinkError> {
        let now = now_micros();
        let mut summary = SendSummary::default();
        let mut deliveries = Vec::with_capacity(events.len());
        for event in events {
            let delivery = match self.gate.judge(event, now) {
                Verdict::Accepted { key, value } => {
                    summary.accepted += 1;
                    self.enqueue(&self.config.topics.dossier, &key, value, None).await?
                }
                Verdict::Rejected { rejection, original } => {
                    summary.rejected += 1;
                    tracing::warn!(agency = %event.agency_code, reason = rejection.reason.code(), message = %rejection.message, "event rejected");
                    let headers = OwnedHeaders::new()
                        .insert(Header { key: "reason", value: Some(rejection.reason.code()) })
                        .insert(Header { key: "message", value: Some(&rejection.message) })
                        .insert(Header { key: "source", value: Some(source) });
                    self.enqueue(&self.config.topics.deadletter, &event.agency_code, original, Some(headers)).await?
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
        Ok(summary)
    }

    async fn enqueue(
        &self,
        topic: &str,
        key: &str,
        value: Vec<u8>,
        headers: Option<OwnedHeaders>,
    ) -> Result<rdkafka::producer::DeliveryFuture, SinkError> {
        let mut record = FutureRecord::to(topic).key(key).payload(&value);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // Local queue full: let librdkafka drain, then retry the same record.
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((source, _)) => return Err(self.error("enqueueing a message", source)),
            }
        }
    }

    fn error(&self, doing: &'static str, source: KafkaError) -> SinkError {
        SinkError::Kafka { brokers: self.config.brokers.clone(), doing, source }
    }

    /// Waits for everything in flight.
    pub fn flush(&self) -> Result<(), SinkError> {
        self.producer.flush(Duration::from_secs(30)).map_err(|e| self.error("flushing", e))
    }
}
