//! The aggregator loop: consume -> apply -> checkpoint -> commit.
//!
//! The aggregator takes every partition of the three event topics (dossier,
//! budget, staffing; manual assignment) and positions each at its newest
//! checkpoint in ClickHouse. A checkpoint is
//! written every `checkpoint_interval` or `checkpoint_max_events`, whichever comes
//! first: bucket rows first, then the checkpoint rows, then (for lag monitoring
//! only) a Kafka offset commit. While ClickHouse refuses a checkpoint, nothing
//! more is consumed (bounded memory) and the write is retried with backoff.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use parpulse_clickhouse::budget_staffing;
use parpulse_clickhouse::checkpoint::{self, CheckpointRow};
use parpulse_clickhouse::{dossier_day, dossier_state, Store, StoreError};
use parpulse_core::avro::AvroCodec;
use parpulse_core::time::now_micros;
use parpulse_core::topics::Topics;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::metrics::{AggregatorMetrics, LagContext};

type Consumer = StreamConsumer<LagContext>;

/// A partition of one topic.
type Key = (String, u32);
use crate::state::PartitionState;

#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    pub brokers: String,
    pub consumer_group: String,
    pub topics: Topics,
    pub checkpoint_interval: Duration,
    pub checkpoint_max_events: u64,
    /// A checkpoint taking longer than this counts as failed and is retried
    /// (a ClickHouse that stops mid-request may otherwise leave it hanging).
    pub checkpoint_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("Kafka at {brokers}: {doing}: {source}")]
    Kafka {
        brokers: String,
        doing: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("topic {0} does not exist; run `parpulse migrate` to create it")]
    NoSuchTopic(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs until `shutdown` completes, then writes a final checkpoint.
pub async fn run(
    config: AggregatorConfig,
    store: Store,
    metrics: AggregatorMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AggregateError> {
    let kafka_err = |doing| {
        let brokers = config.brokers.clone();
        move |source| AggregateError::Kafka { brokers, doing, source }
    };
    let consumer: Consumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.consumer_group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "1000")
        .create_with_context(LagContext { consumer_lag: metrics.consumer_lag.clone() })
        .map_err(kafka_err("creating a consumer"))?;

    let mut states = BTreeMap::new();
    for topic in config.topics.event_topics() {
        let partitions = partition_ids(&consumer, topic).await?;
        states.extend(load_states(&store, &config, topic, &partitions).await?);
    }
    let mut assignment = TopicPartitionList::new();
    for ((topic, partition), state) in &states {
        assignment
            .add_partition_offset(topic, *partition as i32, Offset::Offset(state.next_offset()))
            .map_err(kafka_err("building the assignment"))?;
    }
    consumer.assign(&assignment).map_err(kafka_err("assigning partitions"))?;
    tracing::info!(partitions = states.len(), group = %config.consumer_group, "aggregator assigned");

    let codec = AvroCodec::new();
    let mut since_checkpoint: u64 = 0;
    let mut ticker = tokio::time::interval(config.checkpoint_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = ticker.tick() => {
                checkpoint_with_retry(&store, &config, &consumer, &mut states, &metrics).await;
                since_checkpoint = 0;
                // A full interval of consuming before the next one, however long this took.
                ticker.reset();
            }
            message = consumer.recv() => {
                let message = message.map_err(kafka_err("receiving"))?;
                let key = (message.topic().to_owned(), message.partition() as u32);
                let Some(state) = states.get_mut(&key) else { continue };
                match message.payload().map(|bytes| codec.decode_event(bytes)) {
                    Some(Ok(event)) => {
                        let duplicates = state.duplicates();
                        state.apply_event(message.offset(), &event);
                        metrics.duplicate_receptions.inc_by(state.duplicates() - duplicates);
                        metrics.events.inc();
                        metrics.newest_event_time.set(metrics.newest_event_time.get().max(event.occurred_at() / 1_000_000));
                    }
                    other => {
                        let reason = match other { Some(Err(e)) => e.to_string(), _ => "empty payload".to_owned() };
                        tracing::warn!(topic = %key.0, partition = key.1, offset = message.offset(), %reason, "skipping undecodable message");
                        state.skip(message.offset());
                        metrics.undecodable.inc();
                    }
                }
                since_checkpoint += 1;
                if since_checkpoint >= config.checkpoint_max_events {
                    checkpoint_with_retry(&store, &config, &consumer, &mut states, &metrics).await;
                    since_checkpoint = 0;
                    ticker.reset();
                }
            }
        }
    }
    checkpoint_with_retry(&store, &config, &consumer, &mut states, &metrics).await;
    tracing::info!("aggregator stopped after a final checkpoint");
    Ok(())
}

async fn partition_ids(consumer: &Consumer, topic: &str) -> Result<Vec<u32>, AggregateError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|source| AggregateError::Kafka { brokers: String::new(), doing: "reading topic metadata", source })?;
    let partitions: Vec<u32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id() as u32))
        .collect();
    if partitions.is_empty() {
        return Err(AggregateError::NoSuchTopic(topic.to_owned()));
    }
    Ok(partitions)
}

async fn load_states(
    store: &Store,
    config: &AggregatorConfig,
    topic: &str,
    partitions: &[u32],
) -> Result<BTreeMap<Key, PartitionState>, AggregateError> {
    let committed = checkpoint::committed(store, &config.consumer_group, topic).await?;
    let mut states = BTreeMap::new();
    for &partition in partitions {
        let next_offset = committed.iter().find(|c| c.kafka_partition == partition).map_or(0, |c| c.next_offset);
        // Only dossier partitions keep state; budget and staffing rows are idempotent by event id.
        let (rows, dossiers) = if topic == config.topics.dossier {
            (
                dossier_day::load_partition(store, partition).await?,
                dossier_state::load_partition(store, partition).await?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        tracing::info!(
            topic,
            partition,
            next_offset,
            buckets = rows.len(),
            dossiers = dossiers.len(),
            "loaded partition state"
        );
        states.insert((topic.to_owned(), partition), PartitionState::load(partition, next_offset, &rows, &dossiers));
    }
    Ok(states)
}

/// Writes a checkpoint, retrying with backoff until ClickHouse takes it. Consumption
/// waits meanwhile: that is the backpressure.
async fn checkpoint_with_retry(
    store: &Store,
    config: &AggregatorConfig,
    consumer: &Consumer,
    states: &mut BTreeMap<Key, PartitionState>,
    metrics: &AggregatorMetrics,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let error =
            match tokio::time::timeout(config.checkpoint_timeout, checkpoint(store, config, consumer, states, metrics))
                .await
            {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no answer from ClickHouse within {:?}", config.checkpoint_timeout),
            };
        metrics.clickhouse_errors.inc();
        tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "checkpoint failed; consumption paused");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn checkpoint(
    store: &Store,
    config: &AggregatorConfig,
    consumer: &Consumer,
    states: &mut BTreeMap<Key, PartitionState>,
    metrics: &AggregatorMetrics,
) -> Result<(), StoreError> {
    let progressed: Vec<Key> = states.iter().filter(|(_, s)| s.has_progress()).map(|(k, _)| k.clone()).collect();
    if progressed.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    // Any order of these inserts is safe: each row carries its own version (state.rs), and
    // budget and staffing rows are the events themselves, deduplicated by id when read.
    let now = now_micros();
    let dossiers: Vec<_> = progressed.iter().flat_map(|k| states[k].pending_dossier_rows(now)).collect();
    dossier_state::write(store, &dossiers).await?;
    let rows: Vec<_> = progressed.iter().flat_map(|k| states[k].pending_rows()).collect();
    dossier_day::write(store, &rows).await?;
    let budget: Vec<_> = progressed.iter().flat_map(|k| states[k].pending_event_rows().0.iter().cloned()).collect();
    budget_staffing::write_budget(store, &budget).await?;
    let staffing: Vec<_> = progressed.iter().flat_map(|k| states[k].pending_event_rows().1.iter().cloned()).collect();
    budget_staffing::write_staffing(store, &staffing).await?;
    let written_at = u32::try_from(now_micros() / 1_000_000).unwrap_or(u32::MAX);
    let checkpoints: Vec<_> = progressed
        .iter()
        .map(|key| CheckpointRow {
            consumer_group: config.consumer_group.clone(),
            topic: key.0.clone(),
            kafka_partition: key.1,
            next_offset: states[key].next_offset(),
            written_at,
        })
        .collect();
    checkpoint::write(store, &checkpoints).await?;
    let mut commit = TopicPartitionList::new();
    for c in &checkpoints {
        let key = (c.topic.clone(), c.kafka_partition);
        states.get_mut(&key).expect("progressed partition").checkpoint_written(c.next_offset);
        let _ = commit.add_partition_offset(&c.topic, c.kafka_partition as i32, Offset::Offset(c.next_offset));
    }
    // For lag monitoring only: ClickHouse holds the offsets that count.
    if let Err(error) = consumer.commit(&commit, CommitMode::Async) {
        tracing::debug!(%error, "Kafka offset commit failed (monitoring only)");
    }
    metrics.checkpoints.inc();
    metrics.checkpoint_seconds.observe(started.elapsed().as_secs_f64());
    tracing::debug!(rows = rows.len(), partitions = progressed.len(), "checkpoint written");
    Ok(())
}

/// Whether the checkpoints of `consumer_group` have reached the end of every
/// partition of `topics` (used by `parpulse demo` and the tests to wait for the
/// aggregator, never to decide what it counts).
pub async fn caught_up(
    store: &Store,
    brokers: &str,
    consumer_group: &str,
    topics: &[&str],
) -> Result<bool, AggregateError> {
    for topic in topics {
        if !topic_caught_up(store, brokers, consumer_group, topic).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn topic_caught_up(
    store: &Store,
    brokers: &str,
    consumer_group: &str,
    topic: &str,
) -> Result<bool, AggregateError> {
    let kafka_err = |doing| {
        let brokers = brokers.to_owned();
        move |source| AggregateError::Kafka { brokers, doing, source }
    };
    let probe: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(kafka_err("creating a probe consumer"))?;
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
