//! Whether the aggregators have caught up with the topics (for `parpulse demo` and
//! the tests to wait on; it never decides what is counted).

use std::time::Duration;

use parpulse_clickhouse::checkpoint;
use parpulse_clickhouse::Store;
use parpulse_kafka::KafkaConnection;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;

use super::AggregateError;

/// Whether the checkpoints of `consumer_group` have reached the end of every
/// partition of `topics` (used by `parpulse demo` and the tests to wait for the
/// aggregator, never to decide what it counts).
pub async fn caught_up(
    store: &Store,
    kafka: &KafkaConnection,
    consumer_group: &str,
    topics: &[&str],
) -> Result<bool, AggregateError> {
    for topic in topics {
        if !topic_caught_up(store, kafka, consumer_group, topic).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn topic_caught_up(
    store: &Store,
    kafka: &KafkaConnection,
    consumer_group: &str,
    topic: &str,
) -> Result<bool, AggregateError> {
    let kafka_err = |doing| {
        let brokers = kafka.brokers.clone();
        move |source| AggregateError::Kafka { brokers, doing, source }
    };
    let probe: rdkafka::consumer::BaseConsumer =
        kafka.client_config().create().map_err(kafka_err("creating a probe consumer"))?;
    let committed = checkpoint::committed(store, consumer_group, topic).await?;
    let topic_owned = topic.to_owned();
    let highs = tokio::task::spawn_blocking(move || -> Result<Vec<(u32, i64)>, KafkaError> {
        let metadata = probe.fetch_metadata(Some(&topic_owned), Duration::from_secs(10))?;
        let mut highs = Vec::new();
        for t in metadata.topics().iter().filter(|t| t.name() == topic_owned) {
            for p in t.partitions() {
                let (_, high) = probe.fetch_watermarks(&topic_owned, p.id(), Duration::from_secs(10))?;
                highs.push((p.id() as u32, high));
            }
        }
        Ok(highs)
    })
    .await
    .expect("watermark probe does not panic")
    .map_err(kafka_err("reading watermarks"))?;
    if highs.is_empty() {
        return Err(AggregateError::NoSuchTopic(topic.to_owned()));
    }
    Ok(highs.iter().all(|&(partition, high)| {
        high == 0 || committed.iter().any(|c| c.kafka_partition == partition && c.next_offset >= high)
    }))
}
