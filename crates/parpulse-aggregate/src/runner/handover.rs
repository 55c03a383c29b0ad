//! Partitions changing hands in the consumer group: on revocation a checkpoint and
//! the partitions' state dropped; on assignment the state and newest checkpoint
//! loaded from ClickHouse, and each partition started there, whatever Kafka's
//! committed offsets say.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parpulse_clickhouse::checkpoint;
use parpulse_clickhouse::{day_count, dossier_state, procedure_day, Store, StoreError};
use parpulse_core::LocalDay;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::checkpoint::{commit_for_lag, take_batch};
use super::{AggregatorConfig, Key, Shared};
use crate::state::PartitionState;

/// Attempts at the hand-over checkpoint before partitions are released anyway
/// (safe: the next owner replays from the previous checkpoint, exactly).
const REVOKE_ATTEMPTS: u32 = 3;

/// librdkafka client context: statistics become the lag gauge (no extra broker
/// round trips in the hot loop), and rebalances hand partitions over cleanly.
///
/// librdkafka calls the rebalance callback from inside `recv()`, on the consume
/// task, while the loop holds no lock; the callback blocks that task (not the
/// runtime: `block_in_place`) until the checkpoint or the state load is done, so
/// no message of a partition is applied before its state is loaded.
pub struct AggregatorContext {
    pub(super) shared: Arc<Shared>,
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

impl Shared {
    /// Loads the state of newly assigned partitions (retrying while ClickHouse is
    /// unreachable) and returns the offset each must start from.
    pub(super) async fn take_over(&self, keys: &[Key]) -> Vec<i64> {
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
    pub(super) async fn hand_over(&self, keys: &[Key]) -> Option<TopicPartitionList> {
        let mut commits = None;
        {
            let mut work = self.work.lock().await;
            let in_flight = self.finish_in_flight(&mut work).await;
            if let Some(mut batch) = take_batch(&mut work, &self.config.consumer_group, self.config.clock.now_micros())
            {
                for attempt in 1..=REVOKE_ATTEMPTS {
                    match self.write_once(&mut batch).await {
                        Ok(()) => {
                            commits = Some(batch.commit_list());
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

    pub(super) async fn release(&self, keys: &[Key]) {
        let mut work = self.work.lock().await;
        if work.states.keys().all(|key| keys.contains(key)) {
            // No partition left: the audit rows not yet stored are of events their next
            // owner applies again (and logs again).
            work.audit.clear();
        }
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
        let (rows, dossiers, procedures) = if *topic == config.topics.dossier {
            // Buckets of older days stay there too (fetched when an event needs one).
            let buckets_from = LocalDay::of_micros(active_since.max(0));
            (
                day_count::load_partition(store, *partition, buckets_from).await?,
                dossier_state::load_partition(store, *partition, active_since).await?,
                procedure_day::load_partition(store, *partition, buckets_from).await?,
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        tracing::info!(
            topic,
            partition,
            next_offset,
            buckets = rows.len(),
            dossiers = dossiers.len(),
            procedure_buckets = procedures.len(),
            "loaded partition state"
        );
        let state = PartitionState::load_with_procedures(*partition, next_offset, &rows, &dossiers, &procedures)
            .with_lateness(watermark, lateness);
        loaded.push(((topic.clone(), *partition), state));
    }
    Ok(loaded)
}
