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
//! for it, so consumption stops (bounded memory) until ClickHouse answers.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parpulse_clickhouse::budget_staffing;
use parpulse_clickhouse::checkpoint::{self, CheckpointRow};
use parpulse_clickhouse::{dossier_day, dossier_state, Store, StoreError};
use parpulse_core::avro::AvroCodec;
use parpulse_core::time::now_micros;
use parpulse_core::topics::Topics;
use parpulse_core::validate::{RejectReason, Rejection, ValidationPolicy};
use parpulse_core::{AgencyRegistry, Event};
use parpulse_http::health::Dependency;
use parpulse_kafka::health::HealthContext;
use parpulse_kafka::{KafkaConnection, SourcePosition};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Mutex;

use crate::metrics::AggregatorMetrics;
use crate::state::{PartitionState, Verdict};

type Consumer = StreamConsumer<AggregatorContext>;

/// A partition of one topic.
type Key = (String, u32);

#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    pub kafka: KafkaConnection,
    pub consumer_group: String,
    pub topics: Topics,
    pub checkpoint_interval: Duration,
    pub checkpoint_max_events: u64,
    /// A checkpoint taking longer than this counts as failed and is retried
    /// (a ClickHouse that stops mid-request may otherwise leave it hanging).
    pub checkpoint_timeout: Duration,
    /// Events older than this behind their partition's newest event are `too_late`.
    pub allowed_lateness: Duration,
    /// Kafka group session timeout: how soon a dead aggregator's partitions move.
    pub session_timeout: Duration,
    /// Static group membership (`group.instance.id`): a restarted aggregator with
    /// the same id gets its partitions back without a rebalance.
    pub instance_id: Option<String>,
    /// Write every applied dossier event to the `dossier_event` audit table.
    pub audit_events: bool,
    /// The units events may name: the topics are untrusted input, so every message is
    /// validated again by the gate's rules (parpulse_core::validate).
    pub registry: AgencyRegistry,
    pub policy: ValidationPolicy,
}

impl AggregatorConfig {
    /// Defaults for everything but where the services are.
    pub fn new(kafka: KafkaConnection, consumer_group: &str, topics: Topics) -> Self {
        Self {
            kafka,
            consumer_group: consumer_group.to_owned(),
            topics,
            checkpoint_interval: Duration::from_secs(1),
            checkpoint_max_events: 200_000,
            checkpoint_timeout: Duration::from_secs(30),
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
            session_timeout: Duration::from_secs(10),
            instance_id: None,
            audit_events: true,
            registry: AgencyRegistry::demo(),
            policy: ValidationPolicy::default(),
        }
    }
}

/// 45 days: a month closes, its reports go out, corrections still come in.
pub const DEFAULT_ALLOWED_LATENESS: Duration = Duration::from_secs(45 * 86_400);

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
/// Attempts at the hand-over checkpoint before partitions are released anyway
/// (safe: the next owner replays from the previous checkpoint, exactly).
const REVOKE_ATTEMPTS: u32 = 3;

/// A refused message on its way to the dead-letter topic: its key and value as read,
/// why it was refused and where it was read from.
struct DeadLetter {
    key: Vec<u8>,
    payload: Vec<u8>,
    rejection: Rejection,
    from: SourcePosition,
}

/// Everything one checkpoint writes, taken from the state at one instant.
struct Snapshot {
    dead_letters: Vec<DeadLetter>,
    dossiers: Vec<parpulse_clickhouse::dossier_state::DossierStateRow>,
    days: Vec<parpulse_clickhouse::dossier_day::DossierDayRow>,
    budget: Vec<parpulse_clickhouse::budget_staffing::BudgetEventRow>,
    dossier_events: Vec<parpulse_clickhouse::budget_staffing::DossierEventRow>,
    staffing: Vec<parpulse_clickhouse::budget_staffing::StaffingEventRow>,
    checkpoints: Vec<CheckpointRow>,
}

impl Snapshot {
    /// The offsets to commit to Kafka (lag monitoring) once the snapshot is stored.
    fn commit_list(&self) -> TopicPartitionList {
        let mut commit = TopicPartitionList::new();
        for c in &self.checkpoints {
            let _ = commit.add_partition_offset(&c.topic, c.kafka_partition as i32, Offset::Offset(c.next_offset));
        }
        commit
    }
}

/// Takes what changed since the last snapshot out of the state (None: nothing did).
fn snapshot(work: &mut Work, consumer_group: &str) -> Option<Snapshot> {
    let progressed: Vec<Key> = work.states.iter().filter(|(_, s)| s.has_progress()).map(|(k, _)| k.clone()).collect();
    if progressed.is_empty() {
        return None;
    }
    let now = now_micros();
    let written_at = u32::try_from(now / 1_000_000).unwrap_or(u32::MAX);
    // Sized once: appending a dozen partitions' rows would otherwise regrow and copy them.
    let (dossier_rows, audit_rows) = progressed
        .iter()
        .map(|key| work.states[key].pending_sizes())
        .fold((0, 0), |total, sizes| (total.0 + sizes.0, total.1 + sizes.1));
    let mut snapshot = Snapshot {
        dead_letters: std::mem::take(&mut work.dead_letters),
        dossiers: Vec::with_capacity(dossier_rows),
        days: Vec::new(),
        budget: Vec::new(),
        dossier_events: Vec::with_capacity(audit_rows),
        staffing: Vec::new(),
        checkpoints: Vec::with_capacity(progressed.len()),
    };
    for key in progressed {
        let state = work.states.get_mut(&key).expect("progressed partition");
        snapshot.dossiers.extend(state.pending_dossier_rows(now));
        snapshot.days.extend(state.pending_rows());
        snapshot.dossier_events.append(&mut state.take_dossier_events());
        let (mut budget, mut staffing) = state.take_event_rows();
        snapshot.budget.append(&mut budget);
        snapshot.staffing.append(&mut staffing);
        snapshot.checkpoints.push(CheckpointRow {
            consumer_group: consumer_group.to_owned(),
            topic: key.0.clone(),
            kafka_partition: key.1,
            next_offset: state.next_offset(),
            written_at,
            watermark: state.watermark(),
        });
        state.checkpoint_written(state.next_offset());
    }
    Some(snapshot)
}

/// What the consume loop and the rebalance callback share.
#[derive(Default)]
struct Work {
    states: BTreeMap<Key, PartitionState>,
    /// Delivered (and acknowledged) before the checkpoint that moves past them.
    dead_letters: Vec<DeadLetter>,
    /// The checkpoint being written in the background (at most one).
    in_flight: Option<tokio::task::JoinHandle<Option<TopicPartitionList>>>,
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
    /// Rebalances so far: the consume loop drops a batch taken across one.
    rebalances: AtomicU64,
}

/// librdkafka client context: statistics become the lag gauge (no extra broker
/// round trips in the hot loop), and rebalances hand partitions over cleanly.
///
/// librdkafka calls the rebalance callback from inside `recv()`, on the consume
/// task, while the loop holds no lock; the callback blocks that task (not the
/// runtime: `block_in_place`) until the checkpoint or the state load is done, so
/// no message of a partition is applied before its state is loaded.
pub struct AggregatorContext {
    shared: Arc<Shared>,
}

impl rdkafka::ClientContext for AggregatorContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        parpulse_kafka::health::forward_log(&self.shared.kafka, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        parpulse_kafka::health::observe_error(&self.shared.kafka, &error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        parpulse_kafka::health::observe_stats(&self.shared.kafka, &statistics);
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // Partition -1 is librdkafka's internal "unassigned" queue.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.shared
                        .metrics
                        .consumer_lag
                        .with_label_values(&[topic, &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for AggregatorContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let shared = &self.shared;
        shared.rebalances.fetch_add(1, Ordering::AcqRel);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let keys = keys_of(tpl);
                let offsets = tokio::task::block_in_place(|| shared.runtime.block_on(shared.take_over(&keys)));
                for ((topic, partition), next_offset) in keys.iter().zip(offsets) {
                    if let Err(error) = tpl.set_partition_offset(topic, *partition as i32, Offset::Offset(next_offset))
                    {
                        tracing::error!(%error, topic, partition, "cannot position an assigned partition");
                    }
                }
                if let Err(error) = consumer.assign(tpl) {
                    tracing::error!(%error, "assigning partitions failed");
                }
            }
            _ => {
                let keys = keys_of(tpl);
                if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    let commit = tokio::task::block_in_place(|| shared.runtime.block_on(shared.hand_over(&keys)));
                    commit_for_lag(consumer, commit);
                } else {
                    tracing::error!(?err, "rebalance error; releasing the partitions");
                    tokio::task::block_in_place(|| shared.runtime.block_on(shared.release(&keys)));
                }
                if let Err(error) = consumer.unassign() {
                    tracing::error!(%error, "unassigning partitions failed");
                }
            }
        }
    }
}

fn keys_of(tpl: &TopicPartitionList) -> Vec<Key> {
    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition() as u32)).collect()
}

/// Kafka offset commits are for lag monitoring only: ClickHouse holds the offsets that count.
fn commit_for_lag<C: ConsumerContext>(
    consumer: &impl rdkafka::consumer::Consumer<C>,
    commit: Option<TopicPartitionList>,
) {
    if let Some(commit) = commit {
        if let Err(error) = consumer.commit(&commit, CommitMode::Async) {
            tracing::debug!(%error, "Kafka offset commit failed (monitoring only)");
        }
    }
}

impl Shared {
    /// Loads the state of newly assigned partitions (retrying while ClickHouse is
    /// unreachable) and returns the offset each must start from.
    async fn take_over(&self, keys: &[Key]) -> Vec<i64> {
        let loaded = self
            .until_clickhouse_answers("loading assigned partitions failed", || {
                load_states(&self.store, &self.config, keys)
            })
            .await;
        let offsets = loaded.iter().map(|(_, state)| state.next_offset()).collect();
        let mut work = self.work.lock().await;
        work.states.extend(loaded);
        self.metrics.assigned_partitions.set(work.states.len() as i64);
        self.metrics.rebalances.with_label_values(&["assign"]).inc();
        tracing::info!(partitions = keys.len(), owned = work.states.len(), group = %self.config.consumer_group, "partitions assigned");
        offsets
    }

    /// Checkpoints, then drops the revoked partitions' state. Returns the offsets to commit.
    async fn hand_over(&self, keys: &[Key]) -> Option<TopicPartitionList> {
        let mut commits = None;
        {
            let mut work = self.work.lock().await;
            let in_flight = self.finish_in_flight(&mut work).await;
            if let Some(snapshot) = snapshot(&mut work, &self.config.consumer_group) {
                for attempt in 1..=REVOKE_ATTEMPTS {
                    match self.write_once(&snapshot).await {
                        Ok(()) => {
                            commits = Some(snapshot.commit_list());
                            break;
                        }
                        Err(error) => {
                            self.metrics.clickhouse_errors.inc();
                            self.clickhouse.failed(&format_args!("hand-over checkpoint, attempt {attempt}: {error}"));
                            tracing::warn!(
                                attempt,
                                "hand-over checkpoint failed; the next owner replays from the last one"
                            );
                        }
                    }
                }
            }
            commits = commits.or(in_flight);
        }
        self.release(keys).await;
        self.metrics.rebalances.with_label_values(&["revoke"]).inc();
        commits
    }

    async fn release(&self, keys: &[Key]) {
        let mut work = self.work.lock().await;
        for key in keys {
            work.states.remove(key);
            let _ = self.metrics.consumer_lag.remove_label_values(&[&key.0, &key.1.to_string()]);
        }
        if work.states.is_empty() {
            // Unsent dead letters belong to released partitions: their next owner replays them.
            work.dead_letters.clear();
        }
        self.metrics.assigned_partitions.set(work.states.len() as i64);
        tracing::info!(partitions = keys.len(), owned = work.states.len(), "partitions released");
    }

    /// Waits for the checkpoint being written in the background, if any; returns its offsets.
    async fn finish_in_flight(&self, work: &mut Work) -> Option<TopicPartitionList> {
        let handle = work.in_flight.take()?;
        handle.await.unwrap_or_else(|error| {
            tracing::error!(%error, "checkpoint task failed");
            None
        })
    }

    /// Starts a checkpoint in the background (consumption goes on meanwhile) once the
    /// previous one is stored: at most one is in flight, so a slow or unreachable
    /// ClickHouse stops consumption at the next checkpoint (bounded memory).
    /// Returns the offsets of the previous checkpoint, to commit.
    async fn start_checkpoint(self: &Arc<Self>, work: &mut Work) -> Option<TopicPartitionList> {
        let done = self.finish_in_flight(work).await;
        let snapshot = snapshot(work, &self.config.consumer_group);
        let in_memory: usize = work.states.values().map(|state| state.dossier_counts().0).sum();
        self.metrics.dossiers_in_memory.set(in_memory as i64);
        if let Some(snapshot) = snapshot {
            let shared = self.clone();
            work.in_flight = Some(tokio::spawn(async move { Some(shared.write_with_retry(snapshot).await) }));
        }
        done
    }

    /// Writes a checkpoint now (shutdown), after the one in flight.
    async fn checkpoint_now(&self, work: &mut Work) -> Vec<TopicPartitionList> {
        let mut commits: Vec<_> = self.finish_in_flight(work).await.into_iter().collect();
        if let Some(snapshot) = snapshot(work, &self.config.consumer_group) {
            commits.push(self.write_with_retry(snapshot).await);
        }
        commits
    }

    /// Writes a checkpoint, retrying with backoff until ClickHouse takes it.
    async fn write_with_retry(&self, snapshot: Snapshot) -> TopicPartitionList {
        self.until_clickhouse_answers("checkpoint failed; consumption paused", || self.write_once(&snapshot)).await;
        snapshot.commit_list()
    }

    /// Retries `attempt` with backoff until it succeeds.
    async fn until_clickhouse_answers<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
        &self,
        what: &'static str,
        mut attempt: impl FnMut() -> F,
    ) -> T {
        let mut backoff = Duration::from_millis(100);
        loop {
            match attempt().await {
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
        self.metrics.clickhouse_errors.inc();
        self.clickhouse.failed(&format_args!("{what}: {error}"));
        tokio::time::sleep(backoff).await;
        (backoff * 2).min(MAX_BACKOFF)
    }

    async fn write_once(&self, snapshot: &Snapshot) -> Result<(), String> {
        let timeout = self.config.checkpoint_timeout;
        match tokio::time::timeout(timeout, self.write(snapshot)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// Dead letters (acknowledged), then rows, then the checkpoint rows. Any order of
    /// the row inserts is safe: each row carries its own version (state.rs), and budget
    /// and staffing rows are the events themselves, deduplicated by id when read.
    async fn write(&self, snapshot: &Snapshot) -> Result<(), String> {
        let started = Instant::now();
        self.deliver_dead_letters(&snapshot.dead_letters).await?;
        self.timed("dossier_state", dossier_state::write(&self.store, &snapshot.dossiers)).await?;
        self.timed("dossier_day", dossier_day::write(&self.store, &snapshot.days)).await?;
        self.timed("dossier_event", budget_staffing::write_dossier_events(&self.store, &snapshot.dossier_events))
            .await?;
        self.timed("budget_event", budget_staffing::write_budget(&self.store, &snapshot.budget)).await?;
        self.timed("staffing_event", budget_staffing::write_staffing(&self.store, &snapshot.staffing)).await?;
        self.timed("checkpoints", checkpoint::write(&self.store, &snapshot.checkpoints)).await?;
        self.metrics.checkpoints.inc();
        self.metrics.checkpoint_seconds.observe(started.elapsed().as_secs_f64());
        tracing::debug!(rows = snapshot.days.len(), partitions = snapshot.checkpoints.len(), "checkpoint written");
        Ok(())
    }

    async fn timed(&self, table: &str, insert: impl Future<Output = Result<(), StoreError>>) -> Result<(), String> {
        let started = Instant::now();
        insert.await.map_err(|e| e.to_string())?;
        self.metrics.insert_seconds.with_label_values(&[table]).observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Produces the pending dead letters and waits for Kafka's acknowledgement.
    async fn deliver_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), String> {
        let mut deliveries = Vec::with_capacity(letters.len());
        for letter in letters {
            let record = FutureRecord::to(&self.config.topics.deadletter)
                .key(&letter.key)
                .payload(&letter.payload)
                .headers(parpulse_kafka::dead_letter_headers(&letter.rejection, "aggregator", Some(&letter.from)));
            let delivery = parpulse_kafka::enqueue(&self.producer, record).await;
            deliveries.push(delivery.map_err(|error| format!("dead-letter enqueue: {error}"))?);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(format!("dead-letter delivery: {error}")),
                Err(_) => return Err("dead-letter delivery canceled".to_owned()),
            }
        }
        Ok(())
    }
}

/// Runs until `shutdown` completes, then writes a final checkpoint.
pub async fn run(
    config: AggregatorConfig,
    store: Store,
    metrics: AggregatorMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AggregateError> {
    let kafka_err = |doing| {
        let brokers = config.kafka.brokers.clone();
        move |source| AggregateError::Kafka { brokers, doing, source }
    };
    let kafka = metrics.health.get("kafka");
    let producer: FutureProducer<HealthContext> = config
        .kafka
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create_with_context(HealthContext { kafka: kafka.clone() })
        .map_err(kafka_err("creating the dead-letter producer"))?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        store,
        metrics: metrics.clone(),
        kafka,
        clickhouse: metrics.health.get("clickhouse"),
        producer,
        runtime: tokio::runtime::Handle::current(),
        work: Mutex::new(Work::default()),
        rebalances: AtomicU64::new(0),
    });
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

    let codec = AvroCodec::new();
    let mut since_checkpoint: u64 = 0;
    let mut position = Position::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut ticker = tokio::time::interval(config.checkpoint_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = ticker.tick() => {
                let mut work = shared.work.lock().await;
                commit_for_lag(&consumer, shared.start_checkpoint(&mut work).await);
                since_checkpoint = 0;
                // A full interval of consuming before the next one, however long this took.
                ticker.reset();
            }
            message = consumer.recv() => {
                match message {
                    Ok(message) => batch.push(message),
                    Err(error) => {
                        // Broker outages surface here (AllBrokersDown, transport failures):
                        // librdkafka reconnects by itself; only a fatal error ends the loop.
                        if let Some((code, reason)) = consumer.client().fatal_error() {
                            tracing::error!(%code, %reason, "fatal Kafka error; the aggregator stops");
                            return Err(kafka_err("receiving")(error));
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
                    apply_message(&shared, &mut work, &codec, &mut position, &message, &mut tally).await;
                    since_checkpoint += 1;
                    if since_checkpoint >= config.checkpoint_max_events {
                        commit_for_lag(&consumer, shared.start_checkpoint(&mut work).await);
                        since_checkpoint = 0;
                        ticker.reset();
                    }
                }
                tally.record(&metrics);
            }
        }
    }
    let mut work = shared.work.lock().await;
    for commit in shared.checkpoint_now(&mut work).await {
        commit_for_lag(&consumer, Some(commit));
    }
    drop(work);
    tracing::info!("aggregator stopped after a final checkpoint");
    Ok(())
}

/// Messages applied per lock of the state.
const MAX_BATCH: usize = 512;

/// The output of `future` if it is ready now (never waits): the messages librdkafka
/// already holds.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// The partition of the previous message, kept so that a run of messages from one
/// partition costs no allocation.
struct Position {
    key: Key,
}

impl Default for Position {
    fn default() -> Self {
        Position { key: (String::new(), u32::MAX) }
    }
}

impl Position {
    fn of(&mut self, message: &BorrowedMessage<'_>) -> &Key {
        if self.key.1 != message.partition() as u32 || self.key.0 != message.topic() {
            self.key = (message.topic().to_owned(), message.partition() as u32);
        }
        &self.key
    }
}

/// Metric changes of one batch, recorded together.
#[derive(Default)]
struct Tally {
    applied: u64,
    duplicates: u64,
    newest_event_secs: i64,
}

impl Tally {
    fn record(&self, metrics: &AggregatorMetrics) {
        metrics.events.inc_by(self.applied);
        metrics.duplicate_receptions.inc_by(self.duplicates);
        if self.newest_event_secs > metrics.newest_event_time.get() {
            metrics.newest_event_time.set(self.newest_event_secs);
        }
    }
}

/// The instant a message is judged at for "is its event time in the future": the
/// time the broker appended it (topics are created with `LogAppendTime`), else the
/// producer's time, else now. Stored in the log, so a replay judges alike.
fn judged_at(message: &BorrowedMessage<'_>) -> i64 {
    match message.timestamp() {
        Timestamp::LogAppendTime(millis) | Timestamp::CreateTime(millis) => millis.saturating_mul(1000),
        Timestamp::NotAvailable => now_micros(),
    }
}

/// Decodes one message (borrowing its strings), validates it with the gate's rules
/// (the topic is untrusted: anything can write to it) and applies it to its
/// partition's state, fetching a dossier that left memory first if the event needs
/// it. A message that does not decode, is invalid or is too late is not applied: it
/// goes to the dead-letter topic with the reason and its position.
async fn apply_message(
    shared: &Shared,
    work: &mut Work,
    codec: &AvroCodec,
    position: &mut Position,
    message: &BorrowedMessage<'_>,
    tally: &mut Tally,
) {
    let key = position.of(message);
    let Some(state) = work.states.get_mut(key) else { return };
    if message.offset() < state.next_offset() {
        return; // fetched before a hand-over; already applied
    }
    let admitted = crate::admit::admit(
        codec,
        &shared.config.registry,
        &shared.config.policy,
        message.payload(),
        judged_at(message),
    );
    let event = match admitted {
        Ok(event) => event,
        Err(rejection) => {
            state.skip(message.offset());
            refuse(shared, &mut work.dead_letters, message, rejection);
            return;
        }
    };
    let duplicates = state.duplicates();
    let mut verdict = state.apply_event(message.offset(), &event);
    if verdict == Verdict::NeedsStoredDossier {
        let Event::Dossier(dossier) = &event else { unreachable!("only dossier events need a stored dossier") };
        let partition = state.partition();
        let row = shared
            .until_clickhouse_answers("fetching a dossier's state failed", || {
                dossier_state::load_one(&shared.store, partition, dossier.agency_code, dossier.dossier_id)
            })
            .await;
        shared.metrics.dossiers_fetched.inc();
        state.restore_dossier(row.as_ref(), dossier);
        verdict = state.apply_event(message.offset(), &event);
    }
    tally.duplicates += state.duplicates() - duplicates;
    match verdict {
        Verdict::TooLate => {
            shared.metrics.too_late.inc();
            let behind = Duration::from_micros(u64::try_from(state.watermark() - event.occurred_at()).unwrap_or(0));
            let allowed_lateness = shared.config.allowed_lateness;
            let rejection = Rejection::new(
                RejectReason::TooLate,
                format!(
                    "event time is {} h behind the newest event of its partition; allowed lateness is {} h",
                    behind.as_secs() / 3600,
                    allowed_lateness.as_secs() / 3600
                ),
            );
            refuse(shared, &mut work.dead_letters, message, rejection);
        }
        Verdict::Applied | Verdict::LateDuplicate | Verdict::NeedsStoredDossier => {
            tally.applied += 1;
            tally.newest_event_secs = tally.newest_event_secs.max(event.occurred_at() / 1_000_000);
        }
    }
}

/// Queues a refused message for the dead-letter topic (delivered and acknowledged
/// before the checkpoint that moves past it) and counts it by reason.
fn refuse(shared: &Shared, dead_letters: &mut Vec<DeadLetter>, message: &BorrowedMessage<'_>, rejection: Rejection) {
    shared.metrics.rejected.with_label_values(&[rejection.reason.code()]).inc();
    if rejection.reason != RejectReason::TooLate {
        tracing::debug!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %rejection, "message refused");
    }
    dead_letters.push(DeadLetter {
        key: message.key().unwrap_or_default().to_vec(),
        payload: message.payload().unwrap_or_default().to_vec(),
        rejection,
        from: SourcePosition {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        },
    });
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

/// The stored state and newest checkpoint of each partition (in the order given).
async fn load_states(
    store: &Store,
    config: &AggregatorConfig,
    keys: &[Key],
) -> Result<Vec<(Key, PartitionState)>, StoreError> {
    let lateness = i64::try_from(config.allowed_lateness.as_micros()).unwrap_or(i64::MAX);
    let mut committed = BTreeMap::new();
    let mut loaded = Vec::with_capacity(keys.len());
    for (topic, partition) in keys {
        if !committed.contains_key(topic) {
            committed.insert(topic.clone(), checkpoint::committed(store, &config.consumer_group, topic).await?);
        }
        let checkpoint = committed[topic].iter().find(|c| c.kafka_partition == *partition);
        let (next_offset, watermark) = checkpoint.map_or((0, 0), |c| (c.next_offset, c.watermark_micros));
        // Dossiers idle for longer than the allowed lateness stay in ClickHouse (state.rs).
        let active_since = watermark.saturating_sub(lateness);
        // Only dossier partitions keep state; budget and staffing rows are idempotent by event id.
        let (rows, dossiers) = if *topic == config.topics.dossier {
            (
                dossier_day::load_partition(store, *partition).await?,
                dossier_state::load_partition(store, *partition, active_since).await?,
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
        let state = PartitionState::load(*partition, next_offset, &rows, &dossiers)
            .with_lateness(watermark, lateness)
            .with_audit(config.audit_events);
        loaded.push(((topic.clone(), *partition), state));
    }
    Ok(loaded)
}

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
