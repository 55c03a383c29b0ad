//! Checkpoints: what changed since the last one, taken from the state at one instant
//! and written in the background: dead letters (acknowledged), rows, then the
//! checkpoint rows, then (for lag monitoring only) a Kafka offset commit. Each part of a
//! checkpoint is dropped once stored, so a retry resumes with the first part not stored:
//! dead letters whose delivery was acknowledged are not delivered again, stored rows not
//! sent again.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parpulse_clickhouse::budget_staffing;
use parpulse_clickhouse::checkpoint::{self, CheckpointRow};
use parpulse_clickhouse::{day_count, dossier_state, procedure_day, StoreError};
use parpulse_core::time::now_micros;
use rdkafka::consumer::{CommitMode, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::dead_letter::DeadLetter;
use super::{Key, Shared, Work};

/// Why a checkpoint was not stored (it is retried; nothing was lost).
#[derive(Debug, thiserror::Error)]
pub(super) enum CheckpointError {
    #[error("dead-letter delivery: {0}")]
    DeadLetter(#[source] KafkaError),
    #[error("inserting into {table}: {source}")]
    Insert {
        table: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Everything one checkpoint writes, taken from the state at one instant. A part is
/// emptied once stored (see `Shared::write`); the checkpoint rows stay to the end.
pub(super) struct CheckpointBatch {
    pub(super) dead_letters: Vec<DeadLetter>,
    pub(super) dossiers: Vec<parpulse_clickhouse::dossier_state::DossierStateRow>,
    pub(super) days: Vec<parpulse_clickhouse::day_count::DayCountRow>,
    pub(super) procedures: Vec<parpulse_clickhouse::procedure_day::ProcedureDayRow>,
    pub(super) budget: Vec<parpulse_clickhouse::budget_staffing::BudgetEventRow>,
    pub(super) event_log: Vec<parpulse_clickhouse::event_log::EventLogChunk>,
    /// Pieces of audit rows handed to the writer before this batch was taken: stored
    /// before its checkpoint rows.
    pub(super) audit_pieces: u64,
    pub(super) staffing: Vec<parpulse_clickhouse::budget_staffing::StaffingEventRow>,
    pub(super) checkpoints: Vec<CheckpointRow>,
}

impl CheckpointBatch {
    /// The offsets to commit to Kafka (lag monitoring) once the batch is stored.
    pub(super) fn commit_list(&self) -> TopicPartitionList {
        let mut commit = TopicPartitionList::new();
        for c in &self.checkpoints {
            let _ = commit.add_partition_offset(&c.topic, c.kafka_partition as i32, Offset::Offset(c.next_offset));
        }
        commit
    }
}

/// Takes what changed since the last batch out of the state (None: nothing did),
/// its dossiers judged as of `judged_at` (UTC micros, the aggregator's clock).
pub(super) fn take_batch(work: &mut Work, consumer_group: &str, judged_at: i64) -> Option<CheckpointBatch> {
    let progressed: Vec<Key> = work.states.iter().filter(|(_, s)| s.has_progress()).map(|(k, _)| k.clone()).collect();
    if progressed.is_empty() {
        return None;
    }
    let written_at = u32::try_from(now_micros() / 1_000_000).unwrap_or(u32::MAX);
    // Sized once: appending a dozen partitions' rows would otherwise regrow and copy them.
    let dossier_rows = progressed.iter().map(|key| work.states[key].pending_dossiers()).sum();
    let mut batch = CheckpointBatch {
        dead_letters: std::mem::take(&mut work.dead_letters),
        dossiers: Vec::with_capacity(dossier_rows),
        days: Vec::new(),
        procedures: Vec::new(),
        budget: Vec::new(),
        event_log: Vec::new(),
        audit_pieces: work.audit_pieces_sent,
        staffing: Vec::new(),
        checkpoints: Vec::with_capacity(progressed.len()),
    };
    if work.audit.rows() > 0 {
        batch.event_log.push(work.audit.take());
    }
    for key in progressed {
        let state = work.states.get_mut(&key).expect("progressed partition");
        batch.dossiers.extend(state.pending_dossier_rows(judged_at));
        batch.days.extend(state.pending_rows());
        batch.procedures.extend(state.pending_procedure_rows());
        let (mut budget, mut staffing) = state.take_event_rows();
        batch.budget.append(&mut budget);
        batch.staffing.append(&mut staffing);
        batch.checkpoints.push(CheckpointRow {
            consumer_group: consumer_group.to_owned(),
            topic: key.0.clone(),
            kafka_partition: key.1,
            next_offset: state.next_offset(),
            written_at,
            watermark: state.watermark(),
        });
        state.checkpoint_written(state.next_offset());
    }
    Some(batch)
}

/// Kafka offset commits are for lag monitoring only: ClickHouse holds the offsets that count.
pub(super) fn commit_for_lag<C: ConsumerContext>(
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
    /// Waits for the checkpoint being written in the background, if any; returns its offsets.
    pub(super) async fn finish_in_flight(&self, work: &mut Work) -> Option<TopicPartitionList> {
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
    pub(super) async fn start_checkpoint(self: &Arc<Self>, work: &mut Work) -> Option<TopicPartitionList> {
        let done = self.finish_in_flight(work).await;
        let batch = take_batch(work, &self.config.consumer_group, self.config.clock.now_micros());
        let in_memory: usize = work.states.values().map(|state| state.dossier_counts().0).sum();
        self.metrics.dossiers_in_memory.set(in_memory as i64);
        let buckets: usize = work.states.values().map(|state| state.bucket_counts().0).sum();
        self.metrics.day_buckets_in_memory.set(buckets as i64);
        if let Some(batch) = batch {
            let shared = self.clone();
            work.in_flight = Some(tokio::spawn(async move { Some(shared.write_with_retry(batch).await) }));
        }
        done
    }

    /// Writes a checkpoint now (shutdown), after the one in flight.
    pub(super) async fn checkpoint_now(&self, work: &mut Work) -> Vec<TopicPartitionList> {
        let mut commits: Vec<_> = self.finish_in_flight(work).await.into_iter().collect();
        if let Some(batch) = take_batch(work, &self.config.consumer_group, self.config.clock.now_micros()) {
            commits.push(self.write_with_retry(batch).await);
        }
        commits
    }

    /// Writes a checkpoint, retrying with backoff until ClickHouse takes it.
    /// (The loop of [`Shared::until_clickhouse_answers`], written out: each attempt
    /// borrows the batch mutably.)
    async fn write_with_retry(&self, mut batch: CheckpointBatch) -> TopicPartitionList {
        let mut backoff = super::FIRST_BACKOFF;
        while let Err(error) = self.write_once(&mut batch).await {
            backoff = self.failed("checkpoint failed; consumption paused", error, backoff).await;
        }
        self.clickhouse.succeeded();
        batch.commit_list()
    }

    /// One attempt. The parts stored before a failure are not sent again by the next attempt.
    pub(super) async fn write_once(&self, batch: &mut CheckpointBatch) -> Result<(), CheckpointError> {
        let _under_way = self.clickhouse.attempt();
        self.within_checkpoint_timeout(self.write(batch)).await
    }

    /// One ClickHouse step (a checkpoint, an audit piece), failed as
    /// [`CheckpointError::Timeout`] when it has no answer within `checkpoint_timeout`.
    pub(super) async fn within_checkpoint_timeout(
        &self,
        step: impl Future<Output = Result<(), CheckpointError>>,
    ) -> Result<(), CheckpointError> {
        let timeout = self.config.checkpoint_timeout;
        tokio::time::timeout(timeout, step).await.unwrap_or(Err(CheckpointError::Timeout(timeout)))
    }

    /// Dead letters (acknowledged), then rows (the audit rows' earlier pieces included, see
    /// [`super::audit`]), then the checkpoint rows. Each row carries
    /// its own version (state.rs), and audit, budget and staffing rows are the events
    /// themselves, deduplicated by id when read, so a part stored twice (a crash, an answer
    /// lost) changes nothing. One order matters: the day buckets are stored before the
    /// dossier rows, so that a dossier reloaded after a crash is never ahead of its buckets
    /// (a replayed event then moves its contribution wherever it is missing). The day
    /// buckets also go first because the exporter reads them: the sooner, the fresher.
    async fn write(&self, batch: &mut CheckpointBatch) -> Result<(), CheckpointError> {
        /// Stores one part unless it is empty (stored by an earlier attempt, or nothing to
        /// write), then drops it: with `$step`, or as an insert into `$table`.
        macro_rules! store {
            ($table:literal, $part:ident, $insert:path) => {
                store!($part, self.timed($table, $insert(&self.store, &batch.$part)))
            };
            ($part:ident, $step:expr) => {
                if !batch.$part.is_empty() {
                    $step.await?;
                    batch.$part = Vec::new();
                }
            };
        }
        let started = Instant::now();
        store!(dead_letters, self.deliver_dead_letters(&batch.dead_letters));
        store!("day_count", days, day_count::write);
        store!("dossier_state", dossiers, dossier_state::write);
        store!("procedure_day", procedures, procedure_day::write);
        store!("event_log", event_log, parpulse_clickhouse::event_log::write);
        self.audit_stored_through(batch.audit_pieces).await;
        store!("budget_event", budget, budget_staffing::write_budget);
        store!("staffing_event", staffing, budget_staffing::write_staffing);
        // Kept: the offsets to commit once the checkpoint is stored.
        self.timed("checkpoints", checkpoint::write(&self.store, &batch.checkpoints)).await?;
        self.metrics.checkpoints.inc();
        self.metrics.checkpoint_seconds.observe(started.elapsed().as_secs_f64());
        tracing::debug!(partitions = batch.checkpoints.len(), "checkpoint written");
        Ok(())
    }

    pub(super) async fn timed(
        &self,
        table: &'static str,
        insert: impl Future<Output = Result<(), StoreError>>,
    ) -> Result<(), CheckpointError> {
        let started = Instant::now();
        insert.await.map_err(|source| CheckpointError::Insert { table, source })?;
        self.metrics.insert_seconds.with_label_values(&[table]).observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_core::validate::{RejectReason, Rejection};
    use parpulse_core::{Channel, DossierEvent, DossierEventKind, Event};
    use parpulse_kafka::SourcePosition;

    use crate::state::PartitionState;

    fn reception(dossier: &str, occurred_at: i64) -> Event {
        Event::Dossier(DossierEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: "SNV".into(),
            occurred_at,
            recorded_at: 0,
            source: "test".into(),
            dossier_id: dossier.into(),
            procedure_code: "P".into(),
            kind: DossierEventKind::Received,
            channel: Channel::Online,
            online_level: 4,
            result_channel: None,
            due_at: Some(occurred_at + 86_400_000_000),
            legal_max_days: None,
            fee_bearing: false,
            digitized: false,
            new_due_at: None,
        })
    }

    const T0: i64 = 1_574_900_000_000_000;

    #[test]
    fn a_batch_takes_what_changed_with_one_checkpoint_row_per_progressed_partition() {
        let mut work = Work::default();
        let mut busy = PartitionState::load(2, 10, &[], &[]);
        busy.apply_event(10, &reception("D1", T0));
        busy.apply_event(11, &reception("D2", T0 + 1));
        let idle = PartitionState::load(3, 7, &[], &[]);
        work.states.insert(("par.dossier.v1".into(), 2), busy);
        work.states.insert(("par.dossier.v1".into(), 3), idle);
        work.dead_letters.push(DeadLetter {
            key: b"SNV".to_vec(),
            payload: b"garbage".to_vec(),
            rejection: Rejection::new(RejectReason::Undecodable, "bad magic byte"),
            from: SourcePosition { topic: "par.dossier.v1".into(), partition: 2, offset: 9 },
        });

        let taken = take_batch(&mut work, "group", T0 + 2).expect("partition 2 progressed");
        assert_eq!(taken.checkpoints.len(), 1, "the idle partition writes no checkpoint row");
        let row = &taken.checkpoints[0];
        assert_eq!((row.consumer_group.as_str(), row.kafka_partition, row.next_offset), ("group", 2, 12));
        assert_eq!(row.watermark, T0 + 1, "the newest event time applied");
        assert_eq!(taken.dossiers.len(), 2);
        let received = taken.days.iter().find(|r| r.counter == "received").expect("the bucket's receptions");
        assert_eq!((received.value, received.version), (2, 12));
        assert!(taken.days.iter().all(|r| r.value > 0), "a new bucket writes its counts that are not 0");
        assert_eq!(taken.dead_letters.len(), 1, "dead letters go with the checkpoint that moves past them");
        assert!(work.dead_letters.is_empty());
        let commit = taken.commit_list();
        let element = commit.find_partition("par.dossier.v1", 2).expect("offset to commit");
        assert_eq!(element.offset(), Offset::Offset(12));

        assert!(take_batch(&mut work, "group", T0 + 2).is_none(), "nothing changed since");
    }

    #[test]
    fn a_batch_judges_each_dossier_with_every_fact_applied_whatever_the_instant_given() {
        let deadlines = |judged_at: i64| {
            let mut work = Work::default();
            let mut state = PartitionState::load(2, 10, &[], &[]);
            state.apply_event(10, &reception("D1", T0));
            state.apply_event(11, &reception("D2", T0 + 1));
            work.states.insert(("par.dossier.v1".into(), 2), state);
            let taken = take_batch(&mut work, "group", judged_at).expect("progressed");
            let mut rows: Vec<_> = taken.dossiers.iter().map(|r| (r.dossier_id.clone(), r.deadline_at)).collect();
            rows.sort();
            rows
        };
        let day = 86_400_000_000;
        assert_eq!(deadlines(T0 + 2), [("D1".into(), T0 + day), ("D2".into(), T0 + 1 + day)]);
        // A fact ahead of the judging instant (an event within the allowed clock skew) is
        // still applied: each dossier is judged at least as of its newest event, or it would
        // be stored open for good (review of 972c1c0).
        assert_eq!(deadlines(T0), [("D1".into(), T0 + day), ("D2".into(), T0 + 1 + day)]);
    }

    #[test]
    fn checkpoint_errors_say_what_failed() {
        let timeout = CheckpointError::Timeout(Duration::from_secs(30));
        assert_eq!(timeout.to_string(), "no answer within 30s");
        let dead = CheckpointError::DeadLetter(KafkaError::Canceled);
        assert!(dead.to_string().starts_with("dead-letter delivery: "), "{dead}");
    }
}
