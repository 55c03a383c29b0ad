//! `parpulse rebuild`: every derived table recomputed from the `event_log` audit table
//! with the rules of this build, then swapped in while the aggregators keep consuming
//! (parpulse_clickhouse::rebuild explains how the swap meets the live checkpoints).
//!
//! Each topic partition is replayed through the same [`PartitionState`] the aggregator
//! uses, in offset order, up to a snapshot of the group's checkpoints, so a rebuilt row
//! is what an aggregator running this build from the start would have written. No event
//! is judged too late again: the audit table holds only events the aggregators applied.
//! Memory: one partition's dossiers at a time (nothing is evicted during a replay).

use parpulse_clickhouse::checkpoint;
use parpulse_clickhouse::rebuild::{
    self as storage, Scope, BUDGET_EVENT, DAY_COUNT, DOSSIER_STATE, PROCEDURE_DAY, STAFFING_EVENT, TABLES,
};
use parpulse_clickhouse::{Store, StoreError};
use parpulse_core::avro::AvroCodec;
use parpulse_core::time::now_micros;
use parpulse_core::topics::Topics;

use crate::state::PartitionState;

/// What a rebuild did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub events: u64,
    pub day_rows: usize,
    pub dossier_rows: usize,
    pub budget_rows: usize,
    pub staffing_rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event_log holds an event that does not decode (topic {topic}, offset {offset}): {message}")]
    Undecodable { topic: String, offset: i64, message: String },
    #[error("event_log is empty while the checkpoints say {0} events were applied: the audit table was off (PARPULSE_AUDIT_EVENTS=false), so it cannot be the source of a rebuild; nothing was changed")]
    NoAuditTrail(i64),
}

/// Rebuilds the derived tables of `store` for the units and days of `scope`, from the
/// checkpoints of `consumer_group` on `topics`. `progress` is told the events replayed so far.
pub async fn rebuild(
    store: &Store,
    topics: &Topics,
    consumer_group: &str,
    scope: &Scope,
    mut progress: impl FnMut(u64),
) -> Result<RebuildReport, RebuildError> {
    let mut snapshots: Vec<(String, Vec<(u32, i64)>)> = Vec::new();
    for topic in topics.event_topics() {
        let committed = checkpoint::committed(store, consumer_group, topic).await?;
        snapshots.push((topic.to_owned(), committed.iter().map(|c| (c.kafka_partition, c.next_offset)).collect()));
    }
    let applied: i64 = snapshots.iter().flat_map(|(_, s)| s.iter().map(|(_, offset)| offset)).sum();
    if applied > 0 && storage::logged_events(store).await? == 0 {
        return Err(RebuildError::NoAuditTrail(applied));
    }
    storage::prepare(store).await?;
    storage::keep_outside(store, scope).await?;
    let codec = AvroCodec::new();
    let mut report = RebuildReport::default();
    for (topic, partitions) in &snapshots {
        for &(partition, below) in partitions {
            replay(store, &codec, topic, partition, below, scope, &mut report, &mut progress).await?;
        }
    }
    storage::swap(store).await?;
    for table in TABLES {
        let topic = topics.for_kind(table.kind);
        let snapshot = snapshots.iter().find(|(t, _)| t == topic).map(|(_, s)| s.as_slice()).unwrap_or_default();
        storage::catch_up(store, table, snapshot).await?;
    }
    storage::drop_old(store).await?;
    Ok(report)
}

/// Replays one topic partition below offset `below` and writes its rows in `scope`.
#[allow(clippy::too_many_arguments)]
async fn replay(
    store: &Store,
    codec: &AvroCodec,
    topic: &str,
    partition: u32,
    below: i64,
    scope: &Scope,
    report: &mut RebuildReport,
    progress: &mut impl FnMut(u64),
) -> Result<(), RebuildError> {
    let mut state = PartitionState::load(partition, 0, &[], &[]);
    let mut events = storage::events(store, topic, partition, below)?;
    while let Some(row) = events.next().await? {
        let event = codec.decode_event_ref(&row.payload).map_err(|e| RebuildError::Undecodable {
            topic: topic.to_owned(),
            offset: row.kafka_offset,
            message: e.to_string(),
        })?;
        if scope.units.as_ref().is_none_or(|units| units.iter().any(|u| u == event.agency_code())) {
            state.apply_event(row.kafka_offset, &event);
        }
        report.events += 1;
        if report.events % 10_000 == 0 {
            progress(report.events);
        }
    }
    // Every row is complete up to the snapshot, like a checkpoint taken there.
    state.skip(below - 1);
    let in_days = |day: u16| scope.days.is_none_or(|(from, to)| (from..=to).contains(&day));
    let days: Vec<_> = state.pending_rows().into_iter().filter(|r| in_days(r.day)).collect();
    let procedures: Vec<_> = state.pending_procedure_rows().into_iter().filter(|r| in_days(r.day)).collect();
    let dossiers: Vec<_> = state.pending_dossier_rows(now_micros()).filter(|r| in_days(r.received_day)).collect();
    let (budget, staffing) = state.take_event_rows();
    let budget: Vec<_> = budget.into_iter().filter(|r| in_days(r.day)).collect();
    let staffing: Vec<_> = staffing.into_iter().filter(|r| in_days(r.day)).collect();
    storage::write(store, DAY_COUNT, &days).await?;
    storage::write(store, PROCEDURE_DAY, &procedures).await?;
    for chunk in dossiers.chunks(100_000) {
        storage::write(store, DOSSIER_STATE, chunk).await?;
    }
    storage::write(store, BUDGET_EVENT, &budget).await?;
    storage::write(store, STAFFING_EVENT, &staffing).await?;
    report.day_rows += days.len();
    report.dossier_rows += dossiers.len();
    report.budget_rows += budget.len();
    report.staffing_rows += staffing.len();
    progress(report.events);
    Ok(())
}
