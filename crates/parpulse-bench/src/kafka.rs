//! Kafka sides of the benchmark: topics, a bare producer and a bare consumer (the
//! limit parpulse is compared with), and parpulse's own producing path.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use parpulse_core::AgencyRegistry;
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaConfig, KafkaSink};
use parpulse_kafka::KafkaConnection;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::workload::Record;

pub const PARTITIONS: i32 = 4;

pub async fn create_topic(kafka: &KafkaConnection, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create().context("admin client")?;
    let results = admin
        .create_topics(&[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .context("creating a topic")?;
    for result in results {
        if let Err((name, code)) = result {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                bail!("creating {name}: {code}");
            }
        }
    }
    Ok(())
}

/// Deletes every topic whose name starts with `prefix` (a run's own); says how many.
pub async fn delete_topics_with_prefix(kafka: &KafkaConnection, prefix: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create().context("admin client")?;
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(30)).context("listing topics")?;
    let names: Vec<&str> = metadata.topics().iter().map(|t| t.name()).filter(|name| name.starts_with(prefix)).collect();
    if names.is_empty() {
        return Ok(());
    }
    let results = admin.delete_topics(&names, &AdminOptions::new()).await.context("deleting the run's topics")?;
    for result in results {
        if let Err((name, code)) = result {
            bail!("deleting {name}: {code}");
        }
    }
    eprintln!("deleted the run's {} topics ({prefix}*)", names.len());
    Ok(())
}

/// The producer settings parpulse's ingestors use (kafka.rs), without the gate.
fn bare_producer(kafka: &KafkaConnection) -> Result<FutureProducer> {
    kafka
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .context("bare producer")
}

/// Produces `records` to `topic` and waits for every acknowledgement: messages/s.
pub async fn bare_produce(kafka: &KafkaConnection, topic: &str, records: &[Record]) -> Result<f64> {
    let producer = bare_producer(kafka)?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        let future = FutureRecord::to(topic).key(&record.key).payload(&record.value);
        deliveries.push(parpulse_kafka::enqueue(&producer, future).await.context("producing")?);
    }
    for delivery in deliveries {
        delivery.await.context("delivery canceled")?.map_err(|(e, _)| e).context("delivery")?;
    }
    Ok(records.len() as f64 / started.elapsed().as_secs_f64())
}

/// parpulse's ingest path for values (validate, encode Avro, produce, wait for acks):
/// events/s.
pub async fn parpulse_produce(config: KafkaConfig, events: &[parpulse_core::Event]) -> Result<f64> {
    let sink = KafkaSink::new(config, Gate::new(AgencyRegistry::demo(), Default::default()))?;
    let started = Instant::now();
    for chunk in events.chunks(50_000) {
        let summary = sink.send(chunk.to_vec(), "bench").await?;
        if summary.rejected > 0 {
            bail!("{} simulated events rejected", summary.rejected);
        }
    }
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

/// What the bare consumer did.
pub struct BareConsume {
    /// Messages per second from the first message to the last.
    pub rate: f64,
    pub seen: u64,
    /// This process's CPU from creating the consumer to its last message, the consumer
    /// still open: the polling thread and librdkafka's threads (the harness does
    /// nothing else meanwhile).
    pub cpu: crate::cpu::ProcessCpu,
}

/// What a bare consumer does with each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerWork {
    /// Nothing: the limit.
    Nothing,
    /// Decode and validate each message (`admit`, as the aggregator does), nothing more.
    Admit,
    /// What no aggregator of an untrusted topic can skip, and nothing more: `admit`, then
    /// apply the event to its partition's KPI state in memory, marked as stored as often
    /// as the aggregator's checkpoints would (so idle dossiers leave memory as there). No
    /// row is built, no audit row encoded, nothing sent to ClickHouse.
    AdmitAndApply,
}

/// The aggregator's checkpoint size (`PARPULSE_CHECKPOINT_MAX_EVENTS`' default).
const CHECKPOINT_EVENTS: u64 = parpulse_aggregate::AggregatorConfig::DEFAULT_CHECKPOINT_MAX_EVENTS;

/// The aggregator's per-message work without its I/O.
struct Floor {
    codec: parpulse_core::avro::AvroCodec,
    registry: AgencyRegistry,
    policy: parpulse_core::validate::ValidationPolicy,
    /// `None` for [`ConsumerWork::Admit`].
    states: Option<Vec<parpulse_aggregate::PartitionState>>,
    since_checkpoint: u64,
}

impl Floor {
    fn new(apply: bool) -> Floor {
        let lateness = parpulse_aggregate::AggregatorConfig::DEFAULT_ALLOWED_LATENESS.as_micros() as i64;
        let state = |p| parpulse_aggregate::PartitionState::load(p, 0, &[], &[]).with_lateness(0, lateness);
        Floor {
            codec: parpulse_core::avro::AvroCodec::new(),
            registry: AgencyRegistry::demo(),
            policy: Default::default(),
            states: apply.then(|| (0..PARTITIONS as u32).map(state).collect()),
            since_checkpoint: 0,
        }
    }

    /// Admits and applies one message; an error if the message is refused (the
    /// workload holds valid events only) or needs stored state it cannot have.
    fn apply(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
        use parpulse_aggregate::state::Verdict;
        use rdkafka::Message;
        let event = parpulse_aggregate::admit::admit(
            &self.codec,
            &self.registry,
            &self.policy,
            parpulse_core::avro::EventKind::Dossier,
            message.payload(),
            parpulse_aggregate::admit::judged_at(message.timestamp()),
        )
        .map_err(|rejection| anyhow::anyhow!("offset {}: refused: {rejection}", message.offset()))?;
        let Some(states) = &mut self.states else { return Ok(()) };
        match states[usize::try_from(message.partition())?].apply_event(message.offset(), &event) {
            Verdict::NeedsStoredDossier | Verdict::NeedsStoredBuckets => {
                bail!("offset {}: needs stored state, never stored in this run", message.offset())
            }
            Verdict::Applied | Verdict::LateDuplicate | Verdict::TooLate => {}
        }
        self.since_checkpoint += 1;
        if self.since_checkpoint == CHECKPOINT_EVENTS {
            self.since_checkpoint = 0;
            for state in states {
                state.checkpoint_written(state.next_offset());
            }
        }
        Ok(())
    }
}

/// A consumer that reads `topic` from the beginning to its current end, doing `work`
/// with each message.
pub fn bare_consume(kafka: &KafkaConnection, topic: &str, work: ConsumerWork) -> Result<BareConsume> {
    let window = crate::cpu::Window::open(std::process::id())?;
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", format!("bench-bare-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        // As the aggregator (runner.rs): no idle second after a full prefetch queue.
        .set("fetch.queue.backoff.ms", "20")
        .create()
        .context("bare consumer")?;
    let mut assignment = TopicPartitionList::new();
    let mut total: i64 = 0;
    for p in 0..PARTITIONS {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        total += high - low;
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut floor = (work != ConsumerWork::Nothing).then(|| Floor::new(work == ConsumerWork::AdmitAndApply));
    let mut seen: i64 = 0;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < total {
        if Instant::now() > deadline {
            bail!("bare consumer: {seen} of {total} in 10 minutes");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                first.get_or_insert_with(Instant::now);
                if let Some(floor) = &mut floor {
                    floor.apply(&message).context("bare consumer with the aggregator's work")?;
                }
                seen += 1;
            }
            Some(Err(error)) => return Err(error).context("bare consumer"),
            None => {}
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
    let cpu = window.close()?;
    drop((consumer, floor));
    Ok(BareConsume { rate: seen as f64 / elapsed.as_secs_f64(), seen: seen as u64, cpu })
}
