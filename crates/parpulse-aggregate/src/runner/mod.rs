//! The aggregator loop: consume -> apply -> checkpoint -> commit.
//!
//! Aggregators share the partitions of the three event topics (dossier, budget,
//! staffing) through a Kafka consumer group. Partitions change hands cleanly
//! ([`AggregatorContext`]): on revocation the aggregator writes a checkpoint and
//! drops the partitions' state; on assignment it loads the state and the newest
//! checkpoint from ClickHouse and starts each partition there, whatever Kafka's
//! committed offsets say.
//!
//! A checkpoint is taken every `checkpoint_interval` or `checkpoint_max_events`,
//! whichever comes first, and written in the background while consumption goes on:
//! dead letters (acknowledged), bucket rows, then the checkpoint rows, then (for lag
//! monitoring only) a Kafka offset commit. At most one checkpoint is in flight: while
//! ClickHouse refuses one, it is retried with backoff and the next checkpoint waits
//! for it, so consumption stops (bounded memory) until ClickHouse answers. Audit rows
//! (`event_log`) do not wait for the checkpoint: they are stored in pieces as they fill
//! (see [`audit`]), each before the checkpoint that moves past its events.

mod audit;
mod checkpoint;
mod config;
mod consume;
mod dead_letter;
mod handover;
mod probe;
mod progress;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parpulse_clickhouse::Store;
use parpulse_core::avro::AvroCodec;
use parpulse_http::health::Dependency;
use parpulse_kafka::health::HealthContext;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::TopicPartitionList;
use tokio::sync::Mutex;

pub use config::{AggregateError, AggregatorConfig};
pub use handover::AggregatorContext;
pub use progress::caught_up;

use crate::metrics::AggregatorMetrics;
use crate::state::PartitionState;
use checkpoint::commit_for_lag;
use consume::{apply_message, ready, Position, Tally, MAX_BATCH};
use dead_letter::DeadLetter;

type Consumer = StreamConsumer<AggregatorContext>;

/// A partition of one topic.
type Key = (String, u32);

/// Wait after a first failed attempt at ClickHouse; it doubles with each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two attempts at ClickHouse.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the consume loop and the rebalance callback share.
#[derive(Default)]
struct Work {
    states: BTreeMap<Key, PartitionState>,
    /// Delivered (and acknowledged) before the checkpoint that moves past them.
    dead_letters: Vec<DeadLetter>,
    /// The checkpoint being written in the background (at most one).
    in_flight: Option<tokio::task::JoinHandle<Option<TopicPartitionList>>>,
    /// Applied events whole, for the `event_log` audit table (when kept), already encoded
    /// as the insert's rows: every partition's, since the last piece or checkpoint.
    audit: parpulse_clickhouse::event_log::EventLogBuffer,
    /// Pieces of audit rows handed to the writer so far (see [`audit`]).
    audit_pieces_sent: u64,
}

struct Shared {
    config: AggregatorConfig,
    store: Store,
    metrics: AggregatorMetrics,
    kafka: Arc<Dependency>,
    clickhouse: Arc<Dependency>,
    producer: FutureProducer<HealthContext>,
    runtime: tokio::runtime::Handle,
    work: Mutex<Work>,
    audit: audit::AuditPieces,
    /// Rebalances so far: the consume loop drops a batch taken across one.
    rebalances: AtomicU64,
}

impl Shared {
    /// Retries `attempt` with backoff until it succeeds.
    pub(super) async fn until_clickhouse_answers<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
        &self,
        what: &'static str,
        mut attempt: impl FnMut() -> F,
    ) -> T {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let under_way = self.clickhouse.attempt();
            let result = attempt().await;
            drop(under_way);
            match result {
                Ok(value) => {
                    self.clickhouse.succeeded();
                    return value;
                }
                Err(error) => backoff = self.failed(what, error, backoff).await,
            }
        }
    }

    /// Counts and reports a failed ClickHouse attempt (a log line when ClickHouse goes
    /// down, then a periodic summary), waits, and returns the next backoff.
    async fn failed(&self, what: &'static str, error: impl std::fmt::Display, backoff: Duration) -> Duration {
        self.clickhouse_failed(what, error);
        tokio::time::sleep(backoff).await;
        (backoff * 2).min(MAX_BACKOFF)
    }

    /// Counts and reports a failed ClickHouse attempt: retried ones and the idle probe's.
    fn clickhouse_failed(&self, what: &'static str, error: impl std::fmt::Display) {
        self.metrics.clickhouse_errors.inc();
        self.clickhouse.failed(&format_args!("{what}: {error}"));
    }
}

/// Runs until `shutdown` completes, then writes a final checkpoint.
pub async fn run(
    config: AggregatorConfig,
    store: Store,
    metrics: AggregatorMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AggregateError> {
    let kafka = metrics.health.get("kafka");
    let producer = config.kafka.durable_producer(kafka.clone(), |_| {}).map_err(|failure| AggregateError::Kafka {
        brokers: failure.brokers,
        doing: "creating the dead-letter producer",
        source: failure.source,
    })?;
    let (audit, audit_writer) = audit::channel();
    let shared = Arc::new(Shared {
        config: config.clone(),
        store,
        metrics: metrics.clone(),
        kafka,
        clickhouse: metrics.health.get("clickhouse"),
        producer,
        runtime: tokio::runtime::Handle::current(),
        work: Mutex::new(Work::default()),
        audit,
        rebalances: AtomicU64::new(0),
    });
    let _probe = probe::AbortOnDrop(tokio::spawn(probe::ping_when_quiet(shared.clone())));
    let _audit_writer = probe::AbortOnDrop(tokio::spawn(audit::store_pieces(shared.clone(), audit_writer)));
    let codec = AvroCodec::new();
    tokio::pin!(shutdown);
    loop {
        let consumer = subscribe(&shared).await?;
        match consume(&shared, &consumer, &codec, shutdown.as_mut()).await {
            Ended::Shutdown => {
                let mut work = shared.work.lock().await;
                for commit in shared.checkpoint_now(&mut work).await {
                    commit_for_lag(&consumer, Some(commit));
                }
                drop(work);
                tracing::info!("aggregator stopped after a final checkpoint");
                return Ok(());
            }
            Ended::Fatal { code, reason } => {
                // librdkafka gives up on a consumer after a fatal error (a static member
                // fenced after a broker restart, seen in the chaos run). The process does
                // not: it finishes the checkpoint in flight, drops its partitions (their
                // next owner, maybe this process again, replays from the last checkpoint,
                // exactly) and joins the group again with a new consumer.
                tracing::warn!(%code, %reason, "fatal Kafka consumer error; joining the group again with a new consumer");
                shared.metrics.rebalances.with_label_values(&["rejoin"]).inc();
                let keys: Vec<Key> = {
                    let mut work = shared.work.lock().await;
                    let _ = shared.finish_in_flight(&mut work).await;
                    work.states.keys().cloned().collect()
                };
                shared.release(&keys).await;
                drop(consumer);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// How a consumer's run ended.
enum Ended {
    Shutdown,
    Fatal { code: String, reason: String },
}

/// A consumer in the aggregators' group, subscribed to the event topics.
async fn subscribe(shared: &Arc<Shared>) -> Result<Consumer, AggregateError> {
    let config = &shared.config;
    let kafka_err = |doing| {
        let brokers = config.kafka.brokers.clone();
        move |source| AggregateError::Kafka { brokers, doing, source }
    };
    let mut client = config.kafka.client_config();
    client
        .set("group.id", &config.consumer_group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout.as_millis().to_string())
        // librdkafka waits this long before fetching again once a partition's prefetch
        // queue is full (default 1 s): long enough to leave the consumer idle between
        // drained queues. Measured in docs/BENCHMARKS.md.
        .set("fetch.queue.backoff.ms", "20")
        .set("statistics.interval.ms", "1000");
    if let Some(id) = &config.instance_id {
        client.set("group.instance.id", id);
    }
    let consumer: Consumer = client
        .create_with_context(AggregatorContext { shared: shared.clone() })
        .map_err(kafka_err("creating a consumer"))?;
    for topic in config.topics.event_topics() {
        check_topic(&consumer, topic).await?;
    }
    consumer.subscribe(&config.topics.event_topics()).map_err(kafka_err("subscribing"))?;
    tracing::info!(group = %config.consumer_group, instance = ?config.instance_id, "aggregator subscribed");
    Ok(consumer)
}

/// Consumes, applies and checkpoints until `shutdown` completes or the consumer hits a
/// fatal error.
async fn consume(
    shared: &Arc<Shared>,
    consumer: &Consumer,
    codec: &AvroCodec,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Ended {
    let config = &shared.config;
    let mut since_checkpoint: u64 = 0;
    let mut position = Position::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut ticker = tokio::time::interval(config.checkpoint_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ended::Shutdown,
            _ = ticker.tick() => {
                let mut work = shared.work.lock().await;
                commit_for_lag(consumer, shared.start_checkpoint(&mut work).await);
                since_checkpoint = 0;
                // A full interval of consuming before the next one, however long this took.
                ticker.reset();
            }
            message = consumer.recv() => {
                match message {
                    Ok(message) => batch.push(message),
                    Err(error) => {
                        // Broker outages surface here (AllBrokersDown, transport failures):
                        // librdkafka reconnects by itself; only a fatal error ends this consumer.
                        if let Some((code, reason)) = consumer.client().fatal_error() {
                            return Ended::Fatal { code: code.to_string(), reason };
                        }
                        parpulse_kafka::health::observe_error(&shared.kafka, &error, "consuming");
                        continue;
                    }
                }
                // Whatever else librdkafka already holds, up to a batch: one lock of the
                // state and one round of this select per batch, not per message.
                let mut generation = shared.rebalances.load(Ordering::Acquire);
                while batch.len() < MAX_BATCH {
                    let Some(Ok(next)) = ready(consumer.recv()) else { break };
                    let now = shared.rebalances.load(Ordering::Acquire);
                    if now != generation {
                        // A rebalance ran inside that poll: the messages taken before it
                        // belong to the former assignment, whose partitions start again
                        // from their checkpoints. Only the new message counts.
                        batch.clear();
                        generation = now;
                    }
                    batch.push(next);
                }
                let mut work = shared.work.lock().await;
                let mut tally = Tally::default();
                for message in batch.drain(..) {
                    apply_message(shared, &mut work, codec, &mut position, &message, &mut tally).await;
                    since_checkpoint += 1;
                    if since_checkpoint >= config.checkpoint_max_events {
                        commit_for_lag(consumer, shared.start_checkpoint(&mut work).await);
                        since_checkpoint = 0;
                        ticker.reset();
                    }
                }
                tally.record(&shared.metrics);
            }
        }
    }
}

/// Fails early, with a clear message, when a topic is missing.
async fn check_topic(consumer: &Consumer, topic: &str) -> Result<(), AggregateError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|source| AggregateError::Kafka { brokers: String::new(), doing: "reading topic metadata", source })?;
    let exists =
        metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if !exists {
        return Err(AggregateError::NoSuchTopic(topic.to_owned()));
    }
    Ok(())
}
