//! parpulse-kafka: the Kafka plumbing every parpulse process shares.
//!
//! - [`KafkaConnection`]: where the brokers are and how to reach them securely;
//!   every parpulse Kafka client starts from [`KafkaConnection::client_config`].
//! - [`ensure_topics`]: creates the deployment's topics (idempotent).
//! - [`enqueue`]: hands a record to librdkafka, waiting while its queue is full.
//! - [`DeadLetter`]: the dead-letter record format (reason, message, who refused it,
//!   and where the input came from) shared by the ingestors and the aggregator.

pub mod security;
pub mod topic_settings;

use std::time::Duration;

use parpulse_core::topics::Topics;
use parpulse_core::validate::Rejection;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sha2::Digest as _;

pub use security::KafkaSecurity;
pub use topic_settings::{Retention, TopicSettings};

/// Where the brokers are and how to talk to them.
#[derive(Debug, Clone)]
pub struct KafkaConnection {
    pub brokers: String,
    pub security: KafkaSecurity,
}

impl KafkaConnection {
    /// A plaintext connection (the local broker, tests).
    pub fn plaintext(brokers: &str) -> Self {
        Self { brokers: brokers.to_owned(), security: KafkaSecurity::plaintext() }
    }

    /// A librdkafka configuration with the brokers and the security settings: the
    /// starting point of every parpulse Kafka client.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        self.security.apply(&mut config);
        config
    }
}

#[derive(Debug, thiserror::Error)]
#[error("Kafka at {brokers}: {doing}: {source}")]
pub struct KafkaFailure {
    pub brokers: String,
    pub doing: &'static str,
    #[source]
    pub source: KafkaError,
}

impl KafkaConnection {
    /// A producer whose acknowledgement means durable (`acks=all`, idempotent) and whose
    /// broker state reaches a [`health::HealthContext`] every second.
    pub fn durable_producer(
        &self,
        kafka: std::sync::Arc<parpulse_http::health::Dependency>,
        tune: impl FnOnce(&mut ClientConfig),
    ) -> Result<FutureProducer<health::HealthContext>, KafkaFailure> {
        let mut config = self.client_config();
        config.set("acks", "all").set("enable.idempotence", "true").set("statistics.interval.ms", "1000");
        tune(&mut config);
        config.create_with_context(health::HealthContext { kafka }).map_err(self.error("creating a producer"))
    }

    /// An error of this connection, with what was being done.
    pub fn error(&self, doing: &'static str) -> impl FnOnce(KafkaError) -> KafkaFailure + '_ {
        move |source| KafkaFailure { brokers: self.brokers.clone(), doing, source }
    }
}

/// Creates the event topics (`settings.partitions` each) and the dead-letter topic (one
/// partition) if they do not exist (idempotent), with the replication, retention and
/// `min.insync.replicas` of `settings`. Event topics stamp each message with the
/// broker's append time (`LogAppendTime`): the aggregator judges "event time in the
/// future" against it, a time no producer can fake and a replay reads back unchanged.
/// Returns how existing topics differ from that (each also logged as a warning): they
/// are reported, never altered.
pub async fn ensure_topics(
    connection: &KafkaConnection,
    topics: &Topics,
    settings: &TopicSettings,
) -> Result<Vec<String>, KafkaFailure> {
    let admin: AdminClient<DefaultClientContext> =
        connection.client_config().create().map_err(connection.error("creating an admin client"))?;
    let wanted = parpulse_topics(topics, settings);
    let configs: Vec<_> =
        wanted.iter().map(|(_, _, event_topic)| topic_settings::wanted_configs(settings, *event_topic)).collect();
    let new: Vec<NewTopic> = wanted
        .iter()
        .zip(&configs)
        .map(|((name, partitions, _), configs)| {
            let topic = NewTopic::new(name, *partitions, TopicReplication::Fixed(settings.replication));
            configs.iter().fold(topic, |topic, (key, value)| topic.set(key, value))
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let mut created = Vec::new();
    for result in admin.create_topics(&new, &options).await.map_err(connection.error("creating topics"))? {
        match result {
            Ok(topic) => {
                tracing::info!(topic, "created topic");
                created.push(topic);
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                tracing::error!(topic, %code, "topic creation failed");
                return Err(connection.error("creating topics")(KafkaError::AdminOp(code)));
            }
        }
    }
    let existing: Vec<_> = wanted.into_iter().filter(|(name, ..)| !created.contains(name)).collect();
    let differences = compare_existing(&admin, &existing, settings, &options).await;
    for difference in &differences {
        tracing::warn!("{difference}: reported, not altered (docs/OPERATIONS.md, \"Topics\")");
    }
    Ok(differences)
}

/// Every topic of a deployment: (name, partitions, whether it is an event topic).
fn parpulse_topics(topics: &Topics, settings: &TopicSettings) -> Vec<(String, i32, bool)> {
    let mut all: Vec<_> =
        topics.event_topics().into_iter().map(|name| (name.to_owned(), settings.partitions, true)).collect();
    all.push((topics.deadletter.clone(), 1, false));
    all
}

/// How the existing topics differ from the settings (nothing if they cannot be read:
/// that is logged).
async fn compare_existing(
    admin: &AdminClient<DefaultClientContext>,
    existing: &[(String, i32, bool)],
    settings: &TopicSettings,
    options: &AdminOptions,
) -> Vec<String> {
    if existing.is_empty() {
        return Vec::new();
    }
    let resources: Vec<_> = existing.iter().map(|(name, ..)| ResourceSpecifier::Topic(name)).collect();
    let described = match admin.describe_configs(&resources, options).await {
        Ok(described) => described,
        Err(error) => {
            tracing::warn!(%error, "cannot read the existing topics' configuration");
            return Vec::new();
        }
    };
    let metadata = match admin.inner().fetch_metadata(None, Duration::from_secs(10)) {
        Ok(metadata) => metadata,
        Err(error) => {
            tracing::warn!(%error, "cannot read the existing topics' partitions");
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for ((name, partitions, event_topic), result) in existing.iter().zip(described) {
        let Ok(resource) = result else { continue };
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else { continue };
        let actual = topic_settings::ExistingTopic {
            partitions: topic.partitions().len(),
            replication: topic.partitions().first().map_or(0, |p| p.replicas().len()),
            configs: resource.entries.iter().filter_map(|e| Some((e.name.clone(), e.value.clone()?))).collect(),
        };
        found.extend(topic_settings::differences(name, settings, *event_topic, *partitions, &actual));
    }
    found
}

/// Hands `record` to librdkafka, waiting while its local queue is full; the returned
/// future resolves when Kafka acknowledges it. Enqueue many, then await them all:
/// one round trip for the lot instead of one per record.
pub async fn enqueue<K, P, C>(
    producer: &FutureProducer<C>,
    mut record: FutureRecord<'_, K, P>,
) -> Result<DeliveryFuture, KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
    C: rdkafka::ClientContext + 'static,
{
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                // Local queue full: let librdkafka drain, then retry the same record.
                record = returned;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((source, _)) => return Err(source),
        }
    }
}

/// The longest refusal message kept in a header or a log line, in bytes: a message that
/// quotes a 20,000-character field would otherwise be as long (the input itself is the
/// dead letter's value).
pub const MAX_MESSAGE_BYTES: usize = 1_000;

/// `message` cut to [`MAX_MESSAGE_BYTES`] at a character boundary.
pub fn clip(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// Where a refused input was read from, when it was a Kafka message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The most of an input a dead letter keeps, in bytes. Kafka refuses messages over about
/// 1 MB (librdkafka's `message.max.bytes`, the broker's `message.max.bytes`), and an
/// input can be larger (an 8 MiB intake body, a message written straight to a topic
/// with raised limits): a dead letter that could not be produced would stop its
/// ingestor (503 for ever) or its aggregator (a checkpoint retried for ever).
pub const MAX_DEAD_LETTER_BYTES: usize = 900_000;

/// A dead-letter record: the value to produce (the original input, or its first
/// [`MAX_DEAD_LETTER_BYTES`] when it is larger) and its headers: why it was refused (a
/// stable code and words), which ingestor or process refused it, for a message read
/// from Kafka its topic, partition and offset, and for a cut input `truncated_from`
/// (its length in bytes) and `sha256` (of the whole input, to match it with its source).
pub fn dead_letter<'a>(
    rejection: &Rejection,
    source: &str,
    from: Option<&SourcePosition>,
    original: &'a [u8],
) -> (OwnedHeaders, &'a [u8]) {
    let headers = dead_letter_headers(rejection, source, from);
    if original.len() <= MAX_DEAD_LETTER_BYTES {
        return (headers, original);
    }
    let digest: String = sha2::Sha256::digest(original).iter().map(|b| format!("{b:02x}")).collect();
    let headers = headers
        .insert(Header { key: "truncated_from", value: Some(&original.len().to_string()) })
        .insert(Header { key: "sha256", value: Some(&digest) });
    (headers, &original[..MAX_DEAD_LETTER_BYTES])
}

fn dead_letter_headers(rejection: &Rejection, source: &str, from: Option<&SourcePosition>) -> OwnedHeaders {
    let headers = OwnedHeaders::new()
        .insert(Header { key: "reason", value: Some(rejection.reason.code()) })
        .insert(Header { key: "message", value: Some(clip(&rejection.message)) })
        .insert(Header { key: "source", value: Some(source) });
    match from {
        None => headers,
        Some(position) => headers
            .insert(Header { key: "topic", value: Some(&position.topic) })
            .insert(Header { key: "partition", value: Some(&position.partition.to_string()) })
            .insert(Header { key: "offset", value: Some(&position.offset.to_string()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_keeps_the_input_whole_up_to_the_limit_then_its_head_and_says_so() {
        use rdkafka::message::Headers;
        let rejection = Rejection::new(parpulse_core::validate::RejectReason::Undecodable, "not Avro");
        let small = vec![7u8; 100];
        let (headers, value) = dead_letter(&rejection, "aggregator", None, &small);
        assert_eq!((value, headers.count()), (&small[..], 3));
        let big = vec![7u8; MAX_DEAD_LETTER_BYTES + 1];
        let (headers, value) = dead_letter(&rejection, "aggregator", None, &big);
        assert_eq!(value.len(), MAX_DEAD_LETTER_BYTES);
        let found: Vec<_> = headers.iter().map(|h| (h.key.to_owned(), h.value.map(|v| v.to_vec()))).collect();
        assert!(
            found.contains(&("truncated_from".to_owned(), Some((MAX_DEAD_LETTER_BYTES + 1).to_string().into_bytes())))
        );
        assert!(found.iter().any(|(k, v)| k == "sha256" && v.as_ref().is_some_and(|v| v.len() == 64)));
    }

    #[test]
    fn long_messages_are_clipped_at_a_character_boundary() {
        assert_eq!(clip("short"), "short");
        let long = "ồ".repeat(MAX_MESSAGE_BYTES);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_MESSAGE_BYTES && clipped.len() > MAX_MESSAGE_BYTES - 4);
        assert!(long.starts_with(clipped));
    }
}

/// Kafka's part in a process's health: librdkafka's statistics, errors and logs
/// mark the `kafka` [`Dependency`] up or down, and while it is down librdkafka's
/// own reconnect chatter goes to debug level (the dependency logs the state change
/// and a periodic summary instead): a broker restart costs a few log lines, not
/// twenty a second.
pub mod health {
    use std::sync::Arc;

    use parpulse_http::health::Dependency;
    use rdkafka::config::RDKafkaLogLevel;
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;
    use rdkafka::{ClientContext, Statistics};

    /// Marks Kafka up while any broker connection is up (needs `statistics.interval.ms`).
    pub fn observe_stats(kafka: &Dependency, statistics: &Statistics) {
        if statistics.brokers.values().any(|broker| broker.state == "UP") {
            kafka.succeeded();
        } else if !statistics.brokers.is_empty() {
            kafka.failed(&"no broker connection is up");
        }
    }

    /// librdkafka's global errors. All brokers down, authentication, TLS, name resolution
    /// and the like mark Kafka down. One broker's connection failing does not: on a
    /// cluster the others serve on (a broker restart is routine there), so the statistics,
    /// which see every broker's state each second, decide; with a single broker,
    /// librdkafka reports all brokers down as well, and the statistics see none up.
    pub fn observe_error(kafka: &Dependency, error: &KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::BrokerTransportFailure) {
            tracing::debug!(target: "librdkafka", "{error}: {reason}");
            return;
        }
        kafka.failed(&format_args!("{error}: {reason}"));
    }

    /// librdkafka's log lines: at their level while Kafka is up, at debug while it is down.
    pub fn forward_log(kafka: &Dependency, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let quiet = !kafka.is_up();
        match level {
            _ if quiet => tracing::debug!(target: "librdkafka", "{facility} {message}"),
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{facility} {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{facility} {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{facility} {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{facility} {message}"),
        }
    }

    /// A client context for producers and probes that reports to a `kafka` dependency.
    #[derive(Clone)]
    pub struct HealthContext {
        pub kafka: Arc<Dependency>,
    }

    impl ClientContext for HealthContext {
        fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
            forward_log(&self.kafka, level, facility, message);
        }

        fn stats(&self, statistics: Statistics) {
            observe_stats(&self.kafka, &statistics);
        }

        fn error(&self, error: KafkaError, reason: &str) {
            observe_error(&self.kafka, &error, reason);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use parpulse_http::health::Health;
        use prometheus::Registry;

        #[test]
        fn one_broker_failing_leaves_kafka_up_and_all_brokers_down_does_not() {
            let health = Health::new(&Registry::new(), &["kafka"]);
            let kafka = health.get("kafka");
            kafka.succeeded();
            let one_broker = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
            observe_error(&kafka, &one_broker, "127.0.0.1:29093/2: Connect failed");
            assert!(kafka.is_up(), "one broker of a cluster restarting is not Kafka down");
            let all = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
            observe_error(&kafka, &all, "3/3 brokers are down");
            assert!(!kafka.is_up());
            kafka.succeeded();
            observe_error(&kafka, &KafkaError::Global(RDKafkaErrorCode::Authentication), "SASL failed");
            assert!(!kafka.is_up(), "a wrong password is Kafka down for this process");
        }
    }
}
