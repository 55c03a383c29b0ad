//! Reading a topic back from the beginning, as an independent consumer would.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    /// Whether the broker stamped the record (`LogAppendTime`) rather than its producer.
    pub broker_time: bool,
}

/// Reads every record of `topic` up to its high watermarks as they are now
/// (everything acknowledged before the call), failing if `timeout` passes first.
pub fn read_topic(brokers: &str, topic: &str, timeout: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("parpulse-test-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("test consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    let mut remaining: BTreeMap<i32, i64> = BTreeMap::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).expect("watermarks");
            if high > low {
                remaining.insert(p.id(), high);
            }
            assignment.add_partition_offset(topic, p.id(), Offset::Beginning).expect("assignment");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let deadline = Instant::now() + timeout;
    while !remaining.is_empty() {
        assert!(Instant::now() < deadline, "reading {topic}: not at the end within {timeout:?} ({remaining:?} left)");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|hdr| {
                                (
                                    hdr.key.to_owned(),
                                    String::from_utf8_lossy(hdr.value.unwrap_or_default()).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if remaining.get(&message.partition()).is_some_and(|high| message.offset() + 1 >= *high) {
                    remaining.remove(&message.partition());
                }
                records.push(Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers,
                    broker_time: matches!(message.timestamp(), rdkafka::Timestamp::LogAppendTime(_)),
                });
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    records
}
