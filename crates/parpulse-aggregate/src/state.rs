//! Per-Kafka-partition KPI state: the day buckets of the units whose events the
//! partition carries (the message key is the agency, so a unit lives in one
//! partition).
//!
//! Every stored row (day bucket, dossier) remembers the offset it is complete up
//! to (`version`, exclusive). After a restart, an event is applied only to the
//! rows that do not reflect it yet: that is what makes replay from the checkpoint
//! exact even if some rows were written past the checkpoint before a crash.
//!
//! A dossier is counted as received once: its state keeps the offset of the
//! first `received` event, and any other `received` event for it (the same
//! event delivered or imported again, or a repeated report) is a duplicate.
//! Because the offset itself is kept, a reloaded dossier that is ahead of its
//! bucket still tells whether a replayed event was the counted one.
//!
//! Allowed lateness: the partition's watermark is the newest event time applied.
//! An event older than the watermark minus the allowed lateness would change a
//! closed period; unless it changes nothing (a redelivered duplicate), it is not
//! applied and the caller sends it to the dead-letter topic as `too_late`. The
//! watermark is stored with each checkpoint, so a replay decides exactly as the
//! first run did.
//!
//! Bounded state: at checkpoints, dossiers with no event within the allowed lateness
//! behind the watermark are dropped from memory (their rows stay in ClickHouse). An
//! event for a dossier that is not in memory, of a kind that only follows a
//! reception, asks the caller to fetch the dossier's row first
//! ([`PartitionState::missing_dossier`]): a dossier is never rebuilt from a partial
//! history.

// FxHash: keys are unit codes and dossier ids from authenticated agencies, and the
// hasher is a measured share of the aggregator's time (docs/BENCHMARKS.md).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use parpulse_clickhouse::budget_staffing::{BudgetEventRow, DossierEventRow, StaffingEventRow};
use parpulse_clickhouse::dossier_day::DossierDayRow;
use parpulse_clickhouse::dossier_state::{DossierStateRow, OUTCOME_LATE, OUTCOME_ON_TIME, OUTCOME_OPEN};
use parpulse_core::kpi::DossierDayCounts;
use parpulse_core::lifecycle::{DossierLifecycle, Outcome};
use parpulse_core::{BudgetEvent, DossierEvent, DossierEventKind, Event, LocalDay, StaffingEvent};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub agency_code: String,
    pub day: LocalDay,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    counts: DossierDayCounts,
    /// Events of this partition with an offset below this are already counted.
    complete_through: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DossierKey {
    pub agency_code: String,
    pub dossier_id: String,
}

#[derive(Debug, Clone)]
struct Dossier {
    /// Offset of the first `received` event, the one counted.
    received_offset: Option<i64>,
    received_day: LocalDay,
    /// Facts for the lateness KPIs (judged when the row is written).
    lifecycle: DossierLifecycle,
    complete_through: i64,
    /// Newest event time applied (UTC micros): when the dossier may leave memory.
    last_event_at: i64,
}

fn some(value: i64) -> Option<i64> {
    (value != 0).then_some(value)
}

impl Dossier {
    fn from_row(row: &DossierStateRow) -> Self {
        let lifecycle = DossierLifecycle {
            received_at: some(row.received_at),
            due_at: some(row.due_at),
            legal_max_days: (row.legal_max_days != 0).then_some(row.legal_max_days),
            supplement_requested: row.supplement_requested.clone(),
            supplement_received: row.supplement_received.clone(),
            processed_at: some(row.processed_at),
            other_end_at: some(row.other_end_at),
            returned_at: some(row.returned_at),
            returned_postal: row.returned_postal != 0,
            apology: row.apology != 0,
            fee_bearing: row.fee_bearing != 0,
            paid_online: row.paid_online != 0,
            digitized: row.digitized != 0,
        };
        Dossier {
            received_offset: (row.received_offset >= 0).then_some(row.received_offset),
            received_day: LocalDay(row.received_day),
            lifecycle,
            complete_through: i64::try_from(row.version).unwrap_or(i64::MAX),
            // Rows from before migration 0006 say 0: the newest time they hold will do.
            last_event_at: row.last_event_at.max(row.received_at).max(row.processed_at).max(row.returned_at),
        }
    }

    fn to_row(&self, partition: u32, key: &DossierKey, version: u64, now_micros: i64) -> DossierStateRow {
        let l = &self.lifecycle;
        let outcome = l.outcome(now_micros);
        let (code, end_day, deadline_at) = match outcome {
            Outcome::Open { deadline } => (OUTCOME_OPEN, 0, deadline.unwrap_or(0)),
            Outcome::OnTime { end } => (OUTCOME_ON_TIME, LocalDay::of_micros(end).0, 0),
            Outcome::Late { end } => (OUTCOME_LATE, LocalDay::of_micros(end).0, 0),
        };
        DossierStateRow {
            kafka_partition: partition,
            agency_code: key.agency_code.clone(),
            dossier_id: key.dossier_id.clone(),
            received_offset: self.received_offset.unwrap_or(-1),
            received_day: self.received_day.0,
            version,
            received_at: l.received_at.unwrap_or(0),
            due_at: l.due_at.unwrap_or(0),
            legal_max_days: l.legal_max_days.unwrap_or(0),
            supplement_requested: l.supplement_requested.clone(),
            supplement_received: l.supplement_received.clone(),
            processed_at: l.processed_at.unwrap_or(0),
            other_end_at: l.other_end_at.unwrap_or(0),
            returned_at: l.returned_at.unwrap_or(0),
            returned_postal: u8::from(l.returned_postal),
            apology: u8::from(l.apology),
            fee_bearing: u8::from(l.fee_bearing),
            paid_online: u8::from(l.paid_online),
            digitized: u8::from(l.digitized),
            outcome: code,
            end_day,
            deadline_at,
            last_event_at: self.last_event_at,
        }
    }
}

/// What [`PartitionState::apply_event`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Applied,
    /// Too late and a duplicate of what the state holds: nothing to do, nothing to report.
    LateDuplicate,
    /// Too late to change its period: not applied, for the dead-letter topic.
    TooLate,
}

#[derive(Debug)]
pub struct PartitionState {
    partition: u32,
    /// Newest event time applied (UTC micros), 0 before the first.
    watermark: i64,
    allowed_lateness_micros: i64,
    too_late: u64,
    evicted_through_day: u16,
    evicted: u64,
    restored: u64,
    buckets: HashMap<BucketKey, Bucket>,
    dirty: HashSet<BucketKey>,
    dossiers: HashMap<DossierKey, Dossier>,
    dirty_dossiers: HashSet<DossierKey>,
    duplicates: u64,
    /// Budget and staffing events since the last checkpoint, as rows (deduplicated when read).
    budget_rows: Vec<BudgetEventRow>,
    staffing_rows: Vec<StaffingEventRow>,
    /// Dossier events applied since the last checkpoint (audit table), when kept.
    dossier_event_rows: Vec<DossierEventRow>,
    audit: bool,
    next_offset: i64,
    checkpointed_offset: i64,
}

impl PartitionState {
    /// State as stored: the checkpoint's next offset and the newest bucket and dossier rows.
    pub fn load(partition: u32, next_offset: i64, rows: &[DossierDayRow], dossier_rows: &[DossierStateRow]) -> Self {
        let buckets = rows
            .iter()
            .map(|row| {
                let key = BucketKey { agency_code: row.agency_code.clone(), day: LocalDay(row.day) };
                let complete_through = i64::try_from(row.version).unwrap_or(i64::MAX);
                (key, Bucket { counts: row.counts(), complete_through })
            })
            .collect();
        let dossiers = dossier_rows
            .iter()
            .map(|row| {
                let key = DossierKey { agency_code: row.agency_code.clone(), dossier_id: row.dossier_id.clone() };
                (key, Dossier::from_row(row))
            })
            .collect();
        Self {
            partition,
            watermark: 0,
            allowed_lateness_micros: i64::MAX,
            too_late: 0,
            evicted_through_day: 0,
            evicted: 0,
            restored: 0,
            buckets,
            dirty: HashSet::default(),
            dossiers,
            dirty_dossiers: HashSet::default(),
            duplicates: 0,
            budget_rows: Vec::new(),
            staffing_rows: Vec::new(),
            dossier_event_rows: Vec::new(),
            audit: true,
            next_offset,
            checkpointed_offset: next_offset,
        }
    }

    /// Restores the watermark stored with the checkpoint and sets the allowed lateness.
    pub fn with_lateness(mut self, watermark: i64, allowed_lateness_micros: i64) -> Self {
        self.watermark = watermark;
        self.allowed_lateness_micros = allowed_lateness_micros;
        self
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Newest event time applied (UTC micros): stored with each checkpoint.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Events refused as too late since the state was loaded.
    pub fn too_late(&self) -> u64 {
        self.too_late
    }

    /// The first offset not yet applied.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Whether anything was consumed since the last checkpoint.
    pub fn has_progress(&self) -> bool {
        self.next_offset != self.checkpointed_offset
    }

    /// Applies an event of any kind at `offset`, unless it is too late. Offsets must
    /// come in increasing order.
    pub fn apply_event(&mut self, offset: i64, event: &Event) -> Verdict {
        let occurred_at = event.occurred_at();
        if occurred_at < self.watermark.saturating_sub(self.allowed_lateness_micros) {
            self.skip(offset);
            if let Event::Dossier(e) = event {
                if self.changes_nothing(e) {
                    self.duplicates += u64::from(e.kind == DossierEventKind::Received);
                    return Verdict::LateDuplicate;
                }
            }
            self.too_late += 1;
            return Verdict::TooLate;
        }
        self.watermark = self.watermark.max(occurred_at);
        match event {
            Event::Dossier(e) => self.apply(offset, e),
            Event::Budget(e) => self.record_budget(offset, e),
            Event::Staffing(e) => self.record_staffing(offset, e),
        }
        Verdict::Applied
    }

    /// Whether the state already holds everything `event` says (a redelivery).
    fn changes_nothing(&self, event: &DossierEvent) -> bool {
        let key = DossierKey { agency_code: event.agency_code.clone(), dossier_id: event.dossier_id.clone() };
        let Some(dossier) = self.dossiers.get(&key) else { return false };
        if event.kind == DossierEventKind::Received && dossier.received_offset.is_none() {
            return false;
        }
        let mut lifecycle = dossier.lifecycle.clone();
        lifecycle.apply(event);
        lifecycle == dossier.lifecycle
    }

    fn record_budget(&mut self, offset: i64, e: &BudgetEvent) {
        self.skip(offset);
        self.budget_rows.push(BudgetEventRow {
            event_id: e.event_id.clone(),
            agency_code: e.agency_code.clone(),
            occurred_at: e.occurred_at,
            day: LocalDay::of_micros(e.occurred_at).0,
            kind: e.kind.as_str().to_owned(),
            fiscal_year: e.fiscal_year,
            category: e.category.clone(),
            amount_vnd: e.amount_vnd,
            kafka_partition: self.partition,
            kafka_offset: offset,
        });
    }

    fn record_staffing(&mut self, offset: i64, e: &StaffingEvent) {
        self.skip(offset);
        self.staffing_rows.push(StaffingEventRow {
            event_id: e.event_id.clone(),
            agency_code: e.agency_code.clone(),
            occurred_at: e.occurred_at,
            day: LocalDay::of_micros(e.occurred_at).0,
            kind: e.kind.as_str().to_owned(),
            position: e.position.as_str().to_owned(),
            quota: e.quota.unwrap_or(-1),
            filled: e.filled.unwrap_or(-1),
            baseline_year: e.baseline_year.unwrap_or(-1),
            baseline_quota: e.baseline_quota.unwrap_or(-1),
            people: e.count.unwrap_or(0),
            kafka_partition: self.partition,
            kafka_offset: offset,
        });
    }

    /// Whether applied dossier events are kept as audit rows (on by default).
    pub fn with_audit(mut self, audit: bool) -> Self {
        self.audit = audit;
        self
    }

    /// Takes the dossier events applied since the last snapshot, as audit rows.
    pub fn take_dossier_events(&mut self) -> Vec<DossierEventRow> {
        std::mem::take(&mut self.dossier_event_rows)
    }

    /// Takes the budget and staffing rows recorded since the last snapshot.
    pub fn take_event_rows(&mut self) -> (Vec<BudgetEventRow>, Vec<StaffingEventRow>) {
        (std::mem::take(&mut self.budget_rows), std::mem::take(&mut self.staffing_rows))
    }

    /// Applies the dossier event at `offset`. Offsets must come in increasing order.
    pub fn apply(&mut self, offset: i64, event: &DossierEvent) {
        self.skip(offset);
        if self.audit {
            self.audit_row(offset, event);
        }
        let key = DossierKey { agency_code: event.agency_code.clone(), dossier_id: event.dossier_id.clone() };
        self.record_lifecycle(offset, event, &key);
        if event.kind != DossierEventKind::Received {
            return; // day buckets count receptions; the rest is judged from the lifecycle
        }
        let day = LocalDay::of_micros(event.occurred_at);
        if !self.first_reception(offset, &key, day) {
            return;
        }
        let key = BucketKey { agency_code: key.agency_code, day };
        let bucket = self.buckets.entry(key.clone()).or_default();
        if offset < bucket.complete_through {
            return; // already counted before a restart
        }
        if bucket.counts.apply(event) {
            self.dirty.insert(key);
        }
    }

    fn audit_row(&mut self, offset: i64, event: &DossierEvent) {
        self.dossier_event_rows.push(DossierEventRow {
            event_id: event.event_id.clone(),
            agency_code: event.agency_code.clone(),
            dossier_id: event.dossier_id.clone(),
            kind: event.kind.as_str().to_owned(),
            occurred_at: event.occurred_at,
            day: LocalDay::of_micros(event.occurred_at).0,
            channel: event.channel.as_str().to_owned(),
            online_level: event.online_level,
            kafka_partition: self.partition,
            kafka_offset: offset,
        });
    }

    /// Adds the event to its dossier's lifecycle facts, unless the stored dossier already has it.
    fn record_lifecycle(&mut self, offset: i64, event: &DossierEvent, key: &DossierKey) {
        if !self.dossiers.contains_key(key) {
            let dossier = Dossier {
                received_offset: None,
                received_day: LocalDay::of_micros(event.occurred_at),
                lifecycle: DossierLifecycle::default(),
                complete_through: 0,
                last_event_at: event.occurred_at,
            };
            self.dossiers.insert(key.clone(), dossier);
        }
        let dossier = self.dossiers.get_mut(key).expect("inserted above");
        dossier.last_event_at = dossier.last_event_at.max(event.occurred_at);
        if offset < dossier.complete_through {
            return;
        }
        let before = dossier.lifecycle.clone();
        dossier.lifecycle.apply(event);
        if dossier.lifecycle != before && !self.dirty_dossiers.contains(key) {
            self.dirty_dossiers.insert(key.clone());
        }
    }

    /// Whether the `received` event at `offset` is the dossier's counted reception.
    fn first_reception(&mut self, offset: i64, key: &DossierKey, day: LocalDay) -> bool {
        let dossier = self.dossiers.get_mut(key).expect("record_lifecycle created it");
        if offset < dossier.complete_through {
            // The stored dossier already reflects this event: it was counted iff it set the reception.
            return dossier.received_offset == Some(offset);
        }
        if dossier.received_offset.is_some() {
            self.duplicates += 1;
            return false;
        }
        dossier.received_offset = Some(offset);
        dossier.received_day = day;
        if !self.dirty_dossiers.contains(key) {
            self.dirty_dossiers.insert(key.clone());
        }
        true
    }

    /// Receptions not counted because the dossier was already received.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Dossier rows for the changed dossiers, versioned with the current next offset
    /// and judged as of `now_micros`.
    pub fn pending_dossier_rows(&self, now_micros: i64) -> Vec<DossierStateRow> {
        let version = u64::try_from(self.next_offset).unwrap_or(0);
        // Unordered: each row carries its own key and version.
        self.dirty_dossiers
            .iter()
            .map(|key| self.dossiers[key].to_row(self.partition, key, version, now_micros))
            .collect()
    }

    /// Moves past an offset without counting anything (undecodable messages).
    pub fn skip(&mut self, offset: i64) {
        self.next_offset = self.next_offset.max(offset + 1);
    }

    /// Rows for the changed buckets, versioned with the current next offset.
    /// Call [`PartitionState::checkpoint_written`] once they and the checkpoint are stored.
    pub fn pending_rows(&self) -> Vec<DossierDayRow> {
        let version = u64::try_from(self.next_offset).unwrap_or(0);
        self.dirty
            .iter()
            .map(|key| {
                let counts = self.buckets[key].counts;
                DossierDayRow {
                    kafka_partition: self.partition,
                    agency_code: key.agency_code.clone(),
                    day: key.day.0,
                    received: counts.received,
                    received_online: counts.received_online,
                    received_postal: counts.received_postal,
                    version,
                }
            })
            .collect()
    }

    /// Marks everything up to `next_offset` as stored (or being stored: the caller writes
    /// the pending rows it just took), and drops from memory the dossiers idle for longer
    /// than the allowed lateness, except those whose rows are pending.
    pub fn checkpoint_written(&mut self, next_offset: i64) {
        self.evict_idle_dossiers();
        self.dirty.clear();
        self.dirty_dossiers.clear();
        self.budget_rows.clear();
        self.staffing_rows.clear();
        self.dossier_event_rows.clear();
        self.checkpointed_offset = next_offset;
    }

    fn evict_idle_dossiers(&mut self) {
        let horizon = self.watermark.saturating_sub(self.allowed_lateness_micros);
        // Once per local day of watermark progress: a scan of the map per checkpoint would cost more.
        let day = LocalDay::of_micros(self.watermark.max(0)).0;
        if self.allowed_lateness_micros == i64::MAX || day <= self.evicted_through_day {
            return;
        }
        self.evicted_through_day = day;
        let dirty = &self.dirty_dossiers;
        let before = self.dossiers.len();
        self.dossiers.retain(|key, d| d.last_event_at >= horizon || dirty.contains(key));
        self.evicted += (before - self.dossiers.len()) as u64;
    }

    /// The dossier an event needs that is not in memory but may be stored (it was
    /// evicted, or not loaded as idle): the caller fetches its row and
    /// [`PartitionState::restore_dossier`]s it before applying the event. None for
    /// kinds that start a dossier (submitted, received, refused at the desk) and for
    /// events that are too late anyway.
    pub fn missing_dossier(&self, event: &Event) -> Option<(String, String)> {
        let Event::Dossier(e) = event else { return None };
        if self.allowed_lateness_micros == i64::MAX
            || matches!(e.kind, DossierEventKind::Submitted | DossierEventKind::Received | DossierEventKind::Refused)
            // Too late anyway (apply_event refuses it): no fetch, or re-importing an old
            // file would cost a ClickHouse round trip per event.
            || e.occurred_at < self.watermark.saturating_sub(self.allowed_lateness_micros)
        {
            return None;
        }
        let key = DossierKey { agency_code: e.agency_code.clone(), dossier_id: e.dossier_id.clone() };
        (!self.dossiers.contains_key(&key)).then_some((key.agency_code, key.dossier_id))
    }

    /// Puts a fetched dossier row back in memory (see [`PartitionState::missing_dossier`]).
    pub fn restore_dossier(&mut self, row: &DossierStateRow) {
        let key = DossierKey { agency_code: row.agency_code.clone(), dossier_id: row.dossier_id.clone() };
        self.dossiers.entry(key).or_insert_with(|| Dossier::from_row(row));
        self.restored += 1;
    }

    /// Dossiers in memory, dropped as idle, and fetched back, since the state was loaded.
    pub fn dossier_counts(&self) -> (usize, u64, u64) {
        (self.dossiers.len(), self.evicted, self.restored)
    }

    pub fn counts(&self, agency_code: &str, day: LocalDay) -> Option<DossierDayCounts> {
        self.buckets.get(&BucketKey { agency_code: agency_code.to_owned(), day }).map(|b| b.counts)
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_core::{Channel, DossierEventKind};

    const DAY: LocalDay = LocalDay(18228);

    fn received(agency: &str, channel: Channel) -> DossierEvent {
        reception(agency, "D", channel)
    }

    fn reception(agency: &str, dossier: &str, channel: Channel) -> DossierEvent {
        DossierEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: agency.into(),
            occurred_at: DAY.start_micros() + 3_600_000_000,
            recorded_at: 0,
            source: "test".into(),
            dossier_id: dossier.into(),
            procedure_code: "P".into(),
            kind: DossierEventKind::Received,
            channel,
            online_level: 4,
            result_channel: None,
            due_at: Some(DAY.start_micros() + 864_000_000_000),
            legal_max_days: None,
            fee_bearing: false,
            digitized: false,
        }
    }

    #[test]
    fn received_events_land_in_their_local_day_bucket() {
        let mut state = PartitionState::load(0, 0, &[], &[]);
        state.apply(0, &reception("SNV", "D1", Channel::Online));
        state.apply(1, &reception("SNV", "D2", Channel::InPerson));
        let counts = state.counts("SNV", DAY).unwrap();
        assert_eq!((counts.received, counts.received_online), (2, 1));
        assert_eq!(state.next_offset(), 2);
        let audit = state.take_dossier_events();
        assert_eq!(audit.len(), 2, "every applied event is kept for audit");
        assert_eq!(
            (audit[1].kind.as_str(), audit[1].channel.as_str(), audit[1].kafka_offset),
            ("received", "in_person", 1)
        );
        let mut quiet = PartitionState::load(0, 0, &[], &[]).with_audit(false);
        quiet.apply(0, &reception("SNV", "D1", Channel::Online));
        assert!(quiet.take_dossier_events().is_empty(), "no audit rows when the audit table is off");
    }

    #[test]
    fn pending_rows_carry_the_next_offset_as_version_and_clear_after_checkpoint() {
        let mut state = PartitionState::load(3, 0, &[], &[]);
        state.apply(0, &received("SNV", Channel::Online));
        let rows = state.pending_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].kafka_partition, rows[0].version, rows[0].received), (3, 1, 1));
        state.checkpoint_written(1);
        assert!(state.pending_rows().is_empty());
        assert!(!state.has_progress());
    }

    #[test]
    fn replay_after_restart_skips_events_a_bucket_already_counts() {
        // Before the crash: offsets 0..4 applied and the bucket row written at version 4,
        // but the checkpoint that would say "next offset 4" was only at 2.
        let mut before = PartitionState::load(0, 0, &[], &[]);
        for offset in 0..4 {
            before.apply(offset, &reception("SNV", &format!("D{offset}"), Channel::Online));
        }
        let rows = before.pending_rows();
        let dossiers = before.pending_dossier_rows(0);
        // After the restart, replay from the checkpoint at offset 2.
        let mut after = PartitionState::load(0, 2, &rows, &dossiers);
        for offset in 2..6 {
            after.apply(offset, &reception("SNV", &format!("D{offset}"), Channel::Online));
        }
        assert_eq!(after.counts("SNV", DAY).unwrap().received, 6);
    }

    #[test]
    fn a_dossier_received_twice_counts_once() {
        let mut state = PartitionState::load(0, 0, &[], &[]);
        state.apply(0, &reception("SNV", "D1", Channel::Online));
        state.apply(1, &reception("SNV", "D1", Channel::Online));
        assert_eq!(state.counts("SNV", DAY).unwrap().received, 1);
        assert_eq!(state.duplicates(), 1);
    }

    /// Crash between the bucket insert and the dossier insert: buckets ahead, dossiers behind.
    #[test]
    fn replay_is_exact_when_buckets_were_stored_ahead_of_dossiers() {
        let mut before = PartitionState::load(0, 0, &[], &[]);
        before.apply(0, &reception("SNV", "D1", Channel::Online));
        let buckets = before.pending_rows(); // version 1, holds D1
        let mut after = PartitionState::load(0, 0, &buckets, &[]);
        after.apply(0, &reception("SNV", "D1", Channel::Online));
        after.apply(1, &reception("SNV", "D1", Channel::Online)); // a duplicate delivery
        assert_eq!(after.counts("SNV", DAY).unwrap().received, 1);
    }

    /// Crash between the dossier insert and the bucket insert: dossiers ahead, buckets behind.
    #[test]
    fn replay_is_exact_when_dossiers_were_stored_ahead_of_buckets() {
        let mut before = PartitionState::load(0, 0, &[], &[]);
        before.apply(0, &reception("SNV", "D1", Channel::Online));
        before.apply(1, &reception("SNV", "D1", Channel::Online));
        let dossiers = before.pending_dossier_rows(0); // version 2, counted offset 0
        let mut after = PartitionState::load(0, 0, &[], &dossiers);
        after.apply(0, &reception("SNV", "D1", Channel::Online));
        after.apply(1, &reception("SNV", "D1", Channel::Online));
        assert_eq!(after.counts("SNV", DAY).unwrap().received, 1);
    }

    const HOUR: i64 = 3_600_000_000;

    fn at(mut event: DossierEvent, occurred_at: i64) -> Event {
        event.occurred_at = occurred_at;
        Event::Dossier(event)
    }

    #[test]
    fn events_beyond_the_allowed_lateness_are_refused_unless_they_change_nothing() {
        let t0 = DAY.start_micros() + HOUR;
        let mut state = PartitionState::load(0, 0, &[], &[]).with_lateness(0, 48 * HOUR);
        assert_eq!(state.apply_event(0, &at(reception("SNV", "OLD", Channel::Online), t0)), Verdict::Applied);
        assert_eq!(
            state.apply_event(1, &at(reception("SNV", "NEW", Channel::Online), t0 + 72 * HOUR)),
            Verdict::Applied
        );
        assert_eq!(state.watermark(), t0 + 72 * HOUR);
        // 72 h behind the watermark with 48 h allowed: a new dossier is too late...
        let late = at(reception("SNV", "LATE", Channel::InPerson), t0);
        assert_eq!(state.apply_event(2, &late), Verdict::TooLate);
        // ...the old one delivered again changes nothing and is only a duplicate.
        let again = at(reception("SNV", "OLD", Channel::Online), t0);
        assert_eq!(state.apply_event(3, &again), Verdict::LateDuplicate);
        // Within the allowed lateness, late events still rewrite their day.
        let within = at(reception("SNV", "WITHIN", Channel::Online), t0 + 25 * HOUR);
        assert_eq!(state.apply_event(4, &within), Verdict::Applied);
        assert_eq!(state.counts("SNV", DAY).unwrap().received, 1);
        assert_eq!(state.counts("SNV", LocalDay(DAY.0 + 1)).unwrap().received, 1);
        assert_eq!((state.too_late(), state.duplicates(), state.next_offset()), (1, 1, 5));
        // The watermark never moves back.
        assert_eq!(state.watermark(), t0 + 72 * HOUR);
    }

    #[test]
    fn a_replay_from_the_stored_watermark_decides_as_the_first_run() {
        let t0 = DAY.start_micros() + HOUR;
        let events = [
            at(reception("SNV", "A", Channel::Online), t0 + 100 * HOUR),
            at(reception("SNV", "B", Channel::Online), t0),
            at(reception("SNV", "C", Channel::Online), t0 + 90 * HOUR),
        ];
        let mut first = PartitionState::load(0, 0, &[], &[]).with_lateness(0, 24 * HOUR);
        let verdicts: Vec<_> = events.iter().enumerate().map(|(o, e)| first.apply_event(o as i64, e)).collect();
        assert_eq!(verdicts, [Verdict::Applied, Verdict::TooLate, Verdict::Applied]);
        // Checkpoint after offset 0 (watermark stored), crash, replay offsets 1 and 2.
        let mut replay = PartitionState::load(0, 1, &[], &[]).with_lateness(t0 + 100 * HOUR, 24 * HOUR);
        assert_eq!(replay.apply_event(1, &events[1]), Verdict::TooLate);
        assert_eq!(replay.apply_event(2, &events[2]), Verdict::Applied);
    }

    fn event(dossier: &str, kind: DossierEventKind, occurred_at: i64) -> Event {
        let mut e = reception("SNV", dossier, Channel::Online);
        e.kind = kind;
        e.occurred_at = occurred_at;
        Event::Dossier(e)
    }

    #[test]
    fn idle_dossiers_leave_memory_and_come_back_whole_when_an_event_needs_them() {
        let t0 = DAY.start_micros() + HOUR;
        let mut state = PartitionState::load(0, 0, &[], &[]).with_lateness(0, 48 * HOUR);
        state.apply_event(0, &event("OLD", DossierEventKind::Received, t0));
        state.apply_event(1, &event("OLD", DossierEventKind::Processed, t0 + HOUR));
        let stored = state.pending_dossier_rows(0); // what ClickHouse holds after the checkpoint
        state.checkpoint_written(2);
        state.apply_event(2, &event("NEW", DossierEventKind::Received, t0 + 100 * HOUR));
        state.checkpoint_written(3);
        assert_eq!(state.dossier_counts(), (1, 1, 0), "OLD was idle for 99 h with 48 h allowed");

        // A new dossier needs nothing; OLD's late result return needs its stored row first.
        let new = event("NEWER", DossierEventKind::Received, t0 + 101 * HOUR);
        assert_eq!(state.missing_dossier(&new), None);
        let returned = event("OLD", DossierEventKind::ResultReturned, t0 + 101 * HOUR);
        assert_eq!(state.missing_dossier(&returned), Some(("SNV".to_owned(), "OLD".to_owned())));
        state.restore_dossier(stored.iter().find(|r| r.dossier_id == "OLD").unwrap());
        assert_eq!(state.missing_dossier(&returned), None);
        state.apply_event(3, &returned);
        let row = state.pending_dossier_rows(0).into_iter().find(|r| r.dossier_id == "OLD").unwrap();
        assert_eq!((row.received_at, row.processed_at, row.returned_at), (t0, t0 + HOUR, t0 + 101 * HOUR));
        assert_eq!(row.received_offset, 0, "still counted once, at its first reception");
        assert_eq!(state.dossier_counts(), (2, 1, 1));
        // An event too late to apply is not worth a fetch.
        let ancient = event("GONE", DossierEventKind::Processed, t0 - 100 * HOUR);
        assert_eq!(state.missing_dossier(&ancient), None);
    }

    #[test]
    fn without_an_allowed_lateness_nothing_leaves_memory() {
        let mut state = PartitionState::load(0, 0, &[], &[]);
        state.apply_event(0, &event("A", DossierEventKind::Received, DAY.start_micros()));
        state.apply_event(1, &event("B", DossierEventKind::Received, DAY.start_micros() + 900 * HOUR));
        state.checkpoint_written(2);
        assert_eq!(state.dossier_counts().0, 2);
        assert_eq!(state.missing_dossier(&event("C", DossierEventKind::Processed, 0)), None);
    }

    #[test]
    fn skipped_offsets_still_advance_the_position() {
        let mut state = PartitionState::load(0, 10, &[], &[]);
        state.skip(10);
        assert_eq!(state.next_offset(), 11);
        assert!(state.has_progress());
    }
}
