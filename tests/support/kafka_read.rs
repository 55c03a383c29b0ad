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
}

/// Reads every record of `topic` until `expected` were read (then a little longer,
/// to catch extras) or `timeout` passes. Returns what was read.
pub fn read_topic(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("parpulse-test-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("test consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment.add_partition_offset(topic, p.id(), Offset::Beginning).expect("assignment");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    while Instant::now() < deadline && settle_until.is_none_or(|t| Instant::now() < t) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|hdr| (hdr.key.to_owned(), String::from_utf8_lossy(hdr.value.unwrap_or_default()).into_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                if records.len() >= expected && settle_until.is_none() {
                    settle_until = Some(Instant::now() + Duration::from_millis(1500));
                }
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    records
}
