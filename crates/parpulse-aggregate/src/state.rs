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
//! reception, is not applied until the caller fetched the dossier's row
//! ([`Verdict::NeedsStoredDossier`], [`PartitionState::restore_dossier`]): a dossier
//! is never rebuilt from a partial history. Day buckets of days before the allowed
//! lateness leave memory too, once written: no reception can reach them any more, but a
//! dossier received (or ended) on such a day still moves its contribution there when a
//! late fact of its own arrives. Such an event is not applied until the caller fetched
//! the buckets it may touch ([`Verdict::NeedsStoredBuckets`],
//! [`PartitionState::buckets_to_fetch`], [`PartitionState::restore_bucket`]), each with
//! its stored version, so the exactly-once rule below holds for a fetched bucket as for
//! a loaded one.
//!
//! Hot path (docs/BENCHMARKS.md): events arrive borrowed from the Kafka message
//! buffer; a dossier is found with one hash lookup by the borrowed (unit, id) pair;
//! its key is allocated once, when the dossier is first seen, and shared (`Arc<str>`)
//! with every row written for it; "changed since the last checkpoint" is a flag on
//! the dossier or bucket plus a list of keys, not a second hash set.

use std::hash::Hash;
use std::sync::Arc;

use hashbrown::hash_map::EntryRef;
use hashbrown::Equivalent;
// FxHash: keys are unit codes and dossier ids from authenticated agencies, and the
// hasher is a measured share of the aggregator's time (docs/BENCHMARKS.md).
use rustc_hash::FxBuildHasher;

use parpulse_clickhouse::budget_staffing::{BudgetEventRow, StaffingEventRow};
use parpulse_clickhouse::day_count::{DayCountRow, StoredBucket};
use parpulse_clickhouse::dossier_state::{DossierStateRow, Judged};
use parpulse_clickhouse::procedure_day::ProcedureDayRow;
use parpulse_core::kpi::{counts_as_online, DayCounts, DossierDayCounts, ResolvedCounts, ServiceCounts};
use parpulse_core::lifecycle::{active_calendar, DossierLifecycle};
use parpulse_core::{BudgetEvent, Channel, DossierEvent, DossierEventKind, Event, LocalDay, StaffingEvent};

use crate::contribution::Contribution;
use crate::packed::PackedLifecycle;

type HashMap<K, V> = hashbrown::HashMap<K, V, FxBuildHasher>;
type HashSet<K> = hashbrown::HashSet<K, FxBuildHasher>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub agency_code: Arc<str>,
    pub day: LocalDay,
}

/// A [`BucketKey`] borrowed from an event (hashes equal: `Arc<str>` hashes as `str`).
#[derive(Hash)]
struct BucketKeyRef<'a> {
    agency_code: &'a str,
    day: LocalDay,
}

impl Equivalent<BucketKey> for BucketKeyRef<'_> {
    fn equivalent(&self, key: &BucketKey) -> bool {
        self.day == key.day && *key.agency_code == *self.agency_code
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Receptions (counted per reception event), the facts of the dossiers received this
    /// day and the dossiers that ended this day (their [`Contribution`]s).
    counts: DayCounts,
    /// The counts as stored (written or loaded): a checkpoint writes those that differ.
    stored: DayCounts,
    /// Events of this partition with an offset below this are already counted.
    complete_through: i64,
    /// Changed since the last checkpoint (its key is in `dirty_buckets`).
    dirty: bool,
}

impl Bucket {
    /// A bucket as stored: complete up to its version.
    fn stored(row: &StoredBucket) -> Self {
        let complete_through = i64::try_from(row.version).unwrap_or(i64::MAX);
        Bucket { counts: row.counts, stored: row.counts, complete_through, dirty: false }
    }
}

/// A (unit, procedure, day) bucket of receptions (`procedure_day`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcedureBucketKey {
    pub agency_code: Arc<str>,
    pub procedure_code: Arc<str>,
    pub day: LocalDay,
}

/// A [`ProcedureBucketKey`] borrowed from an event (hashes equal, fields in the same order).
#[derive(Hash)]
struct ProcedureBucketKeyRef<'a> {
    agency_code: &'a str,
    procedure_code: &'a str,
    day: LocalDay,
}

impl Equivalent<ProcedureBucketKey> for ProcedureBucketKeyRef<'_> {
    fn equivalent(&self, key: &ProcedureBucketKey) -> bool {
        self.day == key.day && *key.procedure_code == *self.procedure_code && *key.agency_code == *self.agency_code
    }
}

/// Receptions of one procedure of one unit on one day, versioned like [`Bucket`].
#[derive(Debug, Clone, Copy, Default)]
struct ProcedureBucket {
    received: u64,
    received_online: u64,
    complete_through: i64,
    dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DossierKey {
    pub agency_code: Arc<str>,
    pub dossier_id: Arc<str>,
}

/// A [`DossierKey`] borrowed from an event: lookups without allocating.
#[derive(Hash)]
struct DossierKeyRef<'a> {
    agency_code: &'a str,
    dossier_id: &'a str,
}

impl Equivalent<DossierKey> for DossierKeyRef<'_> {
    fn equivalent(&self, key: &DossierKey) -> bool {
        *key.dossier_id == *self.dossier_id && *key.agency_code == *self.agency_code
    }
}

impl<'a, S: AsRef<str>> From<&'a DossierEvent<S>> for DossierKeyRef<'a> {
    fn from(event: &'a DossierEvent<S>) -> Self {
        DossierKeyRef { agency_code: event.agency_code.as_ref(), dossier_id: event.dossier_id.as_ref() }
    }
}

#[derive(Debug, Clone)]
struct Dossier {
    /// Offset of the first `received` event, the one counted.
    received_offset: Option<i64>,
    received_day: LocalDay,
    /// Facts for the lateness KPIs (judged when they change, for the contribution, and
    /// when the row is written), packed: most of a dossier's memory.
    lifecycle: PackedLifecycle,
    /// What the dossier adds to the day buckets now.
    contribution: Contribution,
    complete_through: i64,
    /// Newest event time applied (UTC micros): when the dossier may leave memory.
    last_event_at: i64,
    /// Changed since the last checkpoint (its key is in `dirty_dossiers`).
    dirty: bool,
}

impl Dossier {
    /// A dossier first seen with `event`.
    fn new<S>(event: &DossierEvent<S>) -> Self {
        Dossier {
            received_offset: None,
            received_day: LocalDay::of_micros(event.occurred_at),
            lifecycle: PackedLifecycle::default(),
            contribution: Contribution::default(),
            complete_through: 0,
            last_event_at: event.occurred_at,
            dirty: false,
        }
    }

    fn from_row(row: &DossierStateRow) -> Self {
        let mut dossier = Dossier {
            received_offset: (row.received_offset >= 0).then_some(row.received_offset),
            received_day: LocalDay(row.received_day),
            lifecycle: PackedLifecycle::pack(row.lifecycle()),
            contribution: Contribution::default(),
            complete_through: i64::try_from(row.version).unwrap_or(i64::MAX),
            // Rows from before migration 0006 say 0: the newest time they hold will do.
            last_event_at: row.last_event_at.max(row.received_at).max(row.processed_at).max(row.returned_at),
            dirty: false,
        };
        // What its stored buckets already count (they are written before the dossier rows).
        dossier.contribution = dossier.judge();
        dossier
    }

    /// The days of the buckets an event may move this dossier's contribution from or to:
    /// its reception day and the days of the facts that can end it (the event's own day
    /// too, which is never before the allowed lateness).
    fn bucket_days(&self) -> impl Iterator<Item = LocalDay> + '_ {
        let received = self.received_offset.map(|_| self.received_day);
        let contributed = self.contribution.days().into_iter().flatten();
        received.into_iter().chain(contributed).chain(self.lifecycle.end_times().map(LocalDay::of_micros))
    }

    /// Its contribution as the facts stand.
    fn judge(&self) -> Contribution {
        self.judge_with(&self.lifecycle.unpack())
    }

    /// Its contribution with `lifecycle` (its own, unpacked).
    fn judge_with(&self, lifecycle: &DossierLifecycle) -> Contribution {
        let counted = self.received_offset.map(|_| self.received_day);
        Contribution::of(lifecycle, counted, self.last_event_at)
    }

    fn to_row(&self, partition: u32, key: &DossierKey, version: u64, now_micros: i64) -> DossierStateRow {
        let l = self.lifecycle.unpack();
        let calendar = active_calendar();
        // Events up to the allowed clock skew ahead are accepted: judge with every applied
        // fact, or a dossier processed a few seconds "in the future" would be stored open.
        let judged = Judged::of(&l, now_micros.max(self.last_event_at), calendar);
        let min_end = [l.returned_at, l.stopped_at, l.withdrawn_at].into_iter().flatten().min();
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
            supplement_requested: l.supplement_requested,
            supplement_received: l.supplement_received,
            processed_at: l.processed_at.unwrap_or(0),
            other_end_at: min_end.unwrap_or(0),
            returned_at: l.returned_at.unwrap_or(0),
            returned_postal: u8::from(l.result_postal && l.returned_at.is_some()),
            apology: u8::from(l.apology_at.is_some()),
            fee_bearing: u8::from(l.fee_bearing),
            paid_online: u8::from(l.paid_online),
            digitized: u8::from(l.digitized),
            outcome: judged.outcome,
            end_day: judged.end_day,
            deadline_at: judged.deadline_at,
            last_event_at: self.last_event_at,
            received_channel: l.received_channel.map_or(0, Channel::national_code),
            result_postal: u8::from(l.result_postal),
            stopped_at: l.stopped_at.unwrap_or(0),
            withdrawn_at: l.withdrawn_at.unwrap_or(0),
            refused_at: l.refused_at.unwrap_or(0),
            apology_at: l.apology_at.unwrap_or(0),
            apology_due_at: l.apology_due_at.unwrap_or(0),
            end_kind: judged.end_kind,
            apology_timing: judged.apology_timing,
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
    /// Not applied: its dossier is not in memory but may be stored. The caller fetches
    /// the row, hands it to [`PartitionState::restore_dossier`] and applies the event again.
    NeedsStoredDossier,
    /// Not applied: it may change day buckets that left memory. The caller fetches those
    /// of [`PartitionState::buckets_to_fetch`], hands each to
    /// [`PartitionState::restore_bucket`] and applies the event again.
    NeedsStoredBuckets,
}

/// The shared copy of a unit code (one allocation per unit and partition).
fn intern(agencies: &mut HashSet<Arc<str>>, code: &str) -> Arc<str> {
    if let Some(shared) = agencies.get(code) {
        return shared.clone();
    }
    let shared: Arc<str> = Arc::from(code);
    agencies.insert(shared.clone());
    shared
}

/// The key of a dossier first seen with `event` (its id's one allocation).
fn new_key<S: AsRef<str>>(agencies: &mut HashSet<Arc<str>>, event: &DossierEvent<S>) -> DossierKey {
    DossierKey {
        agency_code: intern(agencies, event.agency_code.as_ref()),
        dossier_id: Arc::from(event.dossier_id.as_ref()),
    }
}

/// The days of the buckets `dossier` may touch (see [`Dossier::bucket_days`]) that are
/// not in memory and may be stored: before `stored_before` (recent days need no lookup).
fn missing_buckets<'a>(
    buckets: &'a HashMap<BucketKey, Bucket>,
    stored_before: u16,
    agency_code: &'a str,
    dossier: &'a Dossier,
) -> impl Iterator<Item = LocalDay> + 'a {
    dossier
        .bucket_days()
        .filter(move |day| day.0 < stored_before && !buckets.contains_key(&BucketKeyRef { agency_code, day: *day }))
}

/// Gives a table's room back once it holds far fewer entries than it has room for. A hash
/// map never shrinks by itself: one busy week would keep its table at double size for
/// good, and over months every partition reaches its own busiest week (heaptrack: the
/// dossier tables are the largest part of the aggregator's heap). A quarter of headroom
/// keeps the next days from growing it straight back.
fn shrink_to_fit_kept<K: Hash + Eq, V>(table: &mut HashMap<K, V>) {
    let keep = table.len() + table.len() / 4;
    if table.capacity() > 2 * keep {
        table.shrink_to(keep);
    }
}

/// Marks a changed entry once per checkpoint and remembers its key.
fn mark_dirty<K: Clone>(dirty: &mut bool, keys: &mut Vec<K>, key: &K) {
    if !*dirty {
        *dirty = true;
        keys.push(key.clone());
    }
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
    agencies: HashSet<Arc<str>>,
    buckets: HashMap<BucketKey, Bucket>,
    /// A bucket of a day before this one that is not in memory may be stored (it left
    /// memory, or was not loaded): it is fetched before an event changes it. 0: none.
    buckets_stored_before: u16,
    buckets_evicted: u64,
    buckets_restored: u64,
    dirty_buckets: Vec<BucketKey>,
    /// Receptions per (unit, procedure, day); those older than the allowed lateness leave
    /// memory at checkpoints (no event can change them any more).
    procedure_buckets: HashMap<ProcedureBucketKey, ProcedureBucket>,
    dirty_procedure_buckets: Vec<ProcedureBucketKey>,
    dossiers: HashMap<DossierKey, Dossier>,
    dirty_dossiers: Vec<DossierKey>,
    duplicates: u64,
    /// Budget and staffing events since the last checkpoint, as rows (deduplicated when read).
    budget_rows: Vec<BudgetEventRow>,
    staffing_rows: Vec<StaffingEventRow>,
    next_offset: i64,
    checkpointed_offset: i64,
}

impl PartitionState {
    /// State as stored: the checkpoint's next offset and the newest bucket and dossier rows.
    pub fn load(partition: u32, next_offset: i64, rows: &[StoredBucket], dossier_rows: &[DossierStateRow]) -> Self {
        Self::load_with_procedures(partition, next_offset, rows, dossier_rows, &[])
    }

    /// [`PartitionState::load`] with the newest procedure buckets too (those within the
    /// allowed lateness suffice: older ones can no longer change).
    pub fn load_with_procedures(
        partition: u32,
        next_offset: i64,
        rows: &[StoredBucket],
        dossier_rows: &[DossierStateRow],
        procedure_rows: &[ProcedureDayRow],
    ) -> Self {
        let mut agencies = HashSet::default();
        let buckets = rows
            .iter()
            .map(|row| {
                let key = BucketKey { agency_code: intern(&mut agencies, &row.agency_code), day: row.day };
                (key, Bucket::stored(row))
            })
            .collect();
        let mut state = Self {
            partition,
            watermark: 0,
            allowed_lateness_micros: i64::MAX,
            too_late: 0,
            evicted_through_day: 0,
            evicted: 0,
            restored: 0,
            agencies,
            buckets,
            buckets_stored_before: 0,
            buckets_evicted: 0,
            buckets_restored: 0,
            dirty_buckets: Vec::new(),
            procedure_buckets: HashMap::default(),
            dirty_procedure_buckets: Vec::new(),
            dossiers: HashMap::default(),
            dirty_dossiers: Vec::new(),
            duplicates: 0,
            budget_rows: Vec::new(),
            staffing_rows: Vec::new(),
            next_offset,
            checkpointed_offset: next_offset,
        };
        state.dossiers.reserve(dossier_rows.len());
        for row in procedure_rows {
            let key = ProcedureBucketKey {
                agency_code: intern(&mut state.agencies, &row.agency_code),
                procedure_code: Arc::from(row.procedure_code.as_str()),
                day: LocalDay(row.day),
            };
            let complete_through = i64::try_from(row.version).unwrap_or(i64::MAX);
            let bucket = ProcedureBucket {
                received: row.received,
                received_online: row.received_online,
                complete_through,
                dirty: false,
            };
            state.procedure_buckets.insert(key, bucket);
        }
        for row in dossier_rows {
            state.insert_stored(row);
        }
        state
    }

    fn insert_stored(&mut self, row: &DossierStateRow) {
        let key = DossierKey {
            agency_code: intern(&mut self.agencies, &row.agency_code),
            dossier_id: row.dossier_id.clone(),
        };
        self.dossiers.entry(key).or_insert_with(|| Dossier::from_row(row));
    }

    /// Restores the watermark stored with the checkpoint and sets the allowed lateness.
    /// With a bound, the buckets loaded need only be those from the day of the allowed
    /// lateness on: an older one is fetched when an event needs it.
    pub fn with_lateness(mut self, watermark: i64, allowed_lateness_micros: i64) -> Self {
        self.watermark = watermark;
        self.allowed_lateness_micros = allowed_lateness_micros;
        if allowed_lateness_micros != i64::MAX {
            self.buckets_stored_before = self.horizon_day().0;
        }
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

    fn too_late_horizon(&self) -> i64 {
        self.watermark.saturating_sub(self.allowed_lateness_micros)
    }

    /// The local day of the allowed lateness: a reception before it is too late.
    fn horizon_day(&self) -> LocalDay {
        LocalDay::of_micros(self.too_late_horizon().max(0))
    }

    /// Applies an event of any kind at `offset`, unless it is too late or needs a
    /// stored dossier first. Offsets must come in increasing order.
    pub fn apply_event<S: AsRef<str>>(&mut self, offset: i64, event: &Event<S>) -> Verdict {
        let occurred_at = event.occurred_at();
        if occurred_at < self.too_late_horizon() {
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
        let verdict = match event {
            Event::Dossier(e) => self.apply(offset, e),
            Event::Budget(e) => self.record_budget(offset, e),
            Event::Staffing(e) => self.record_staffing(offset, e),
        };
        if verdict == Verdict::Applied {
            self.watermark = self.watermark.max(occurred_at);
        }
        verdict
    }

    /// Whether the state already holds everything `event` says (a redelivery).
    fn changes_nothing<S: AsRef<str>>(&self, event: &DossierEvent<S>) -> bool {
        let Some(dossier) = self.dossiers.get(&DossierKeyRef::from(event)) else { return false };
        if event.kind == DossierEventKind::Received && dossier.received_offset.is_none() {
            return false;
        }
        !dossier.lifecycle.unpack().apply(event)
    }

    fn record_budget(&mut self, offset: i64, e: &BudgetEvent) -> Verdict {
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
        Verdict::Applied
    }

    fn record_staffing(&mut self, offset: i64, e: &StaffingEvent) -> Verdict {
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
        Verdict::Applied
    }

    /// Dossier rows the next snapshot takes.
    pub fn pending_dossiers(&self) -> usize {
        self.dirty_dossiers.len()
    }

    /// Takes the budget and staffing rows recorded since the last snapshot.
    pub fn take_event_rows(&mut self) -> (Vec<BudgetEventRow>, Vec<StaffingEventRow>) {
        (std::mem::take(&mut self.budget_rows), std::mem::take(&mut self.staffing_rows))
    }

    /// Whether an event of this kind, for a dossier not in memory, needs the stored
    /// row first: kinds that only follow a reception do, once dossiers can leave memory.
    fn needs_stored(&self, kind: DossierEventKind) -> bool {
        self.allowed_lateness_micros != i64::MAX
            && !matches!(kind, DossierEventKind::Submitted | DossierEventKind::Received | DossierEventKind::Refused)
    }

    /// Applies the dossier event at `offset` (one hash lookup for its dossier, one more
    /// for its day bucket if it is a counted reception). Offsets must come in
    /// increasing order. Returns [`Verdict::NeedsStoredDossier`], changing nothing,
    /// when the dossier must be fetched first.
    pub fn apply<S: AsRef<str>>(&mut self, offset: i64, event: &DossierEvent<S>) -> Verdict {
        let needs_stored = self.needs_stored(event.kind);
        let (key, dossier) = match self.dossiers.entry_ref(&DossierKeyRef::from(event)) {
            EntryRef::Occupied(entry) => (entry.key().clone(), entry.into_mut()),
            EntryRef::Vacant(_) if needs_stored => return Verdict::NeedsStoredDossier,
            EntryRef::Vacant(entry) => {
                let key = new_key(&mut self.agencies, event);
                (key.clone(), entry.insert_with_key(key, Dossier::new(event)))
            }
        };
        if self.buckets_stored_before > 0
            && offset >= dossier.complete_through
            && missing_buckets(&self.buckets, self.buckets_stored_before, &key.agency_code, dossier).next().is_some()
        {
            return Verdict::NeedsStoredBuckets;
        }
        self.next_offset = self.next_offset.max(offset + 1);
        dossier.last_event_at = dossier.last_event_at.max(event.occurred_at);
        if offset < dossier.complete_through {
            // The stored dossier already reflects this event: a reception was counted
            // iff it is the one the dossier remembers.
            if event.kind != DossierEventKind::Received || dossier.received_offset != Some(offset) {
                return Verdict::Applied;
            }
        } else {
            let mut lifecycle = dossier.lifecycle.take();
            let mut changed = lifecycle.apply(event);
            let counted_reception = event.kind == DossierEventKind::Received && dossier.received_offset.is_none();
            if counted_reception {
                dossier.received_offset = Some(offset);
                dossier.received_day = LocalDay::of_micros(event.occurred_at);
                changed = true;
            } else if event.kind == DossierEventKind::Received {
                self.duplicates += 1;
            }
            let judged = changed.then(|| dossier.judge_with(&lifecycle));
            dossier.lifecycle = PackedLifecycle::pack(lifecycle);
            if let Some(judged) = judged {
                mark_dirty(&mut dossier.dirty, &mut self.dirty_dossiers, &key);
                let before = std::mem::replace(&mut dossier.contribution, judged);
                if before != judged {
                    self.shift_contribution(offset, &key.agency_code, &before, &judged);
                }
            }
            if !counted_reception {
                return Verdict::Applied; // receptions are counted once; the rest comes with the contribution
            }
        }
        self.count_reception(offset, key.agency_code, event);
        Verdict::Applied
    }

    /// Moves a dossier's contribution from `before` to `after` in the buckets of its
    /// reception day and end day, a part only where it changed, in each bucket unless the
    /// stored bucket reflects the event at `offset` already (a bucket is written before the
    /// dossier's row, so a reloaded dossier is never ahead of its buckets).
    fn shift_contribution(&mut self, offset: i64, agency_code: &Arc<str>, before: &Contribution, after: &Contribution) {
        for (was, now) in before.parts().into_iter().zip(after.parts()) {
            if was == now {
                continue;
            }
            if let Some((day, counts)) = was {
                if let Some(bucket) = self.bucket_behind(offset, agency_code, day) {
                    bucket.counts.sub(&counts);
                }
            }
            if let Some((day, counts)) = now {
                if let Some(bucket) = self.bucket_behind(offset, agency_code, day) {
                    bucket.counts.add(&counts);
                }
            }
        }
    }

    /// The (unit, day) bucket, created if new and marked changed, unless it already
    /// reflects the event at `offset` (None).
    fn bucket_behind(&mut self, offset: i64, agency_code: &Arc<str>, day: LocalDay) -> Option<&mut Bucket> {
        let bucket_ref = BucketKeyRef { agency_code, day };
        let (key, bucket) = match self.buckets.entry_ref(&bucket_ref) {
            EntryRef::Occupied(entry) => (entry.key().clone(), entry.into_mut()),
            EntryRef::Vacant(entry) => {
                let key = BucketKey { agency_code: agency_code.clone(), day };
                (key.clone(), entry.insert_with_key(key, Bucket::default()))
            }
        };
        if offset < bucket.complete_through {
            return None; // already counted before a restart
        }
        mark_dirty(&mut bucket.dirty, &mut self.dirty_buckets, &key);
        Some(bucket)
    }

    /// Adds a counted reception to its unit's day bucket, unless the stored bucket has it.
    fn count_reception<S: AsRef<str>>(&mut self, offset: i64, agency_code: Arc<str>, event: &DossierEvent<S>) {
        let day = LocalDay::of_micros(event.occurred_at);
        let Some(bucket) = self.bucket_behind(offset, &agency_code, day) else { return };
        bucket.counts.receptions.apply(event);
        self.count_procedure_reception(offset, agency_code, day, event);
    }

    /// Adds a counted reception to its (unit, procedure, day) bucket, unless the stored
    /// bucket has it: the same skip rule as the day buckets, per bucket.
    fn count_procedure_reception<S: AsRef<str>>(
        &mut self,
        offset: i64,
        agency_code: Arc<str>,
        day: LocalDay,
        event: &DossierEvent<S>,
    ) {
        let procedure_code = event.procedure_code.as_ref();
        let key_ref = ProcedureBucketKeyRef { agency_code: &agency_code, procedure_code, day };
        let (key, bucket) = match self.procedure_buckets.entry_ref(&key_ref) {
            EntryRef::Occupied(entry) => (entry.key().clone(), entry.into_mut()),
            EntryRef::Vacant(entry) => {
                let key = ProcedureBucketKey {
                    agency_code: agency_code.clone(),
                    procedure_code: Arc::from(procedure_code),
                    day,
                };
                (key.clone(), entry.insert_with_key(key, ProcedureBucket::default()))
            }
        };
        if offset < bucket.complete_through {
            return; // already counted before a restart
        }
        bucket.received += 1;
        bucket.received_online += u64::from(counts_as_online(event));
        mark_dirty(&mut bucket.dirty, &mut self.dirty_procedure_buckets, &key);
    }

    /// Rows for the changed procedure buckets, versioned with the current next offset.
    pub fn pending_procedure_rows(&self) -> Vec<ProcedureDayRow> {
        let version = u64::try_from(self.next_offset).unwrap_or(0);
        self.dirty_procedure_buckets
            .iter()
            .map(|key| {
                let bucket = self.procedure_buckets[key];
                ProcedureDayRow {
                    kafka_partition: self.partition,
                    agency_code: key.agency_code.to_string(),
                    procedure_code: key.procedure_code.to_string(),
                    day: key.day.0,
                    received: bucket.received,
                    received_online: bucket.received_online,
                    version,
                }
            })
            .collect()
    }

    /// Receptions and online receptions of one unit's procedure on one day, if any.
    pub fn procedure_counts(&self, agency_code: &str, procedure_code: &str, day: LocalDay) -> Option<(u64, u64)> {
        self.procedure_buckets
            .get(&ProcedureBucketKeyRef { agency_code, procedure_code, day })
            .map(|b| (b.received, b.received_online))
    }

    /// Procedure buckets in memory.
    pub fn procedure_bucket_count(&self) -> usize {
        self.procedure_buckets.len()
    }

    /// Receptions not counted because the dossier was already received.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Dossier rows for the changed dossiers, versioned with the current next offset
    /// and judged as of `now_micros`.
    pub fn pending_dossier_rows(&self, now_micros: i64) -> impl Iterator<Item = DossierStateRow> + '_ {
        let version = u64::try_from(self.next_offset).unwrap_or(0);
        // Unordered: each row carries its own key and version.
        self.dirty_dossiers.iter().map(move |key| self.dossiers[key].to_row(self.partition, key, version, now_micros))
    }

    /// Moves past an offset without counting anything (undecodable messages).
    pub fn skip(&mut self, offset: i64) {
        self.next_offset = self.next_offset.max(offset + 1);
    }

    /// Rows for the changed buckets (a row per count that differs from the stored one),
    /// versioned with the current next offset.
    /// Call [`PartitionState::checkpoint_written`] once they and the checkpoint are stored.
    pub fn pending_rows(&self) -> Vec<DayCountRow> {
        let version = u64::try_from(self.next_offset).unwrap_or(0);
        let mut rows = Vec::with_capacity(self.dirty_buckets.len() * 4); // a few counts change at a time
        for key in &self.dirty_buckets {
            let b = &self.buckets[key];
            rows.extend(DayCountRow::of_bucket(
                self.partition,
                &key.agency_code,
                key.day,
                (&b.counts, &b.stored),
                version,
            ));
        }
        rows
    }

    /// Marks everything up to `next_offset` as stored (or being stored: the caller writes
    /// the pending rows it just took), and drops from memory the dossiers idle for longer
    /// than the allowed lateness and the buckets of days before it, except those whose
    /// rows are pending (the caller took this checkpoint after the previous one was
    /// written, so the rows of all others are stored).
    pub fn checkpoint_written(&mut self, next_offset: i64) {
        self.evict_idle();
        for key in self.dirty_buckets.drain(..) {
            if let Some(bucket) = self.buckets.get_mut(&key) {
                bucket.dirty = false;
                bucket.stored = bucket.counts;
            }
        }
        for key in self.dirty_dossiers.drain(..) {
            if let Some(dossier) = self.dossiers.get_mut(&key) {
                dossier.dirty = false;
            }
        }
        for key in self.dirty_procedure_buckets.drain(..) {
            if let Some(bucket) = self.procedure_buckets.get_mut(&key) {
                bucket.dirty = false;
            }
        }
        self.budget_rows.clear();
        self.staffing_rows.clear();
        self.checkpointed_offset = next_offset;
    }

    fn evict_idle(&mut self) {
        let horizon = self.too_late_horizon();
        // Once per local day of watermark progress: a scan of the map per checkpoint would cost more.
        let day = LocalDay::of_micros(self.watermark.max(0)).0;
        if self.allowed_lateness_micros == i64::MAX || day <= self.evicted_through_day {
            return;
        }
        self.evicted_through_day = day;
        let before = self.dossiers.len();
        self.dossiers.retain(|_, d| d.last_event_at >= horizon || d.dirty);
        self.evicted += (before - self.dossiers.len()) as u64;
        shrink_to_fit_kept(&mut self.dossiers);
        // A reception before the horizon's day is too late (refused), so its bucket is final.
        let horizon_day = self.horizon_day();
        self.procedure_buckets.retain(|key, b| key.day >= horizon_day || b.dirty);
        // A day bucket is not: a dossier's late fact still moves its contribution there,
        // and the bucket is fetched back for it (`NeedsStoredBuckets`). The written ones go.
        let before = self.buckets.len();
        self.buckets.retain(|key, b| key.day >= horizon_day || b.dirty);
        self.buckets_evicted += (before - self.buckets.len()) as u64;
        self.buckets_stored_before = self.buckets_stored_before.max(horizon_day.0);
        shrink_to_fit_kept(&mut self.buckets);
    }

    /// Puts a fetched dossier back in memory after [`Verdict::NeedsStoredDossier`]:
    /// its stored row, or, if nothing is stored for it, a dossier first seen with `event`.
    pub fn restore_dossier<S: AsRef<str>>(&mut self, row: Option<&DossierStateRow>, event: &DossierEvent<S>) {
        match row {
            Some(row) => {
                self.insert_stored(row);
                self.restored += 1;
            }
            None => {
                let key = new_key(&mut self.agencies, event);
                self.dossiers.entry(key).or_insert_with(|| Dossier::new(event));
            }
        }
    }

    /// The days of the buckets an event for `event`'s dossier may change that are not in
    /// memory and may be stored (after [`Verdict::NeedsStoredBuckets`]), each once.
    pub fn buckets_to_fetch<S: AsRef<str>>(&self, event: &DossierEvent<S>) -> Vec<LocalDay> {
        let Some((key, dossier)) = self.dossiers.get_key_value(&DossierKeyRef::from(event)) else { return Vec::new() };
        let mut days: Vec<LocalDay> =
            missing_buckets(&self.buckets, self.buckets_stored_before, &key.agency_code, dossier).collect();
        days.sort_unstable_by_key(|day| day.0);
        days.dedup();
        days
    }

    /// Puts a fetched day bucket back in memory after [`Verdict::NeedsStoredBuckets`]:
    /// as stored (complete up to its version), or empty if nothing is stored for it.
    pub fn restore_bucket(&mut self, agency_code: &str, day: LocalDay, stored: Option<&StoredBucket>) {
        let key = BucketKey { agency_code: intern(&mut self.agencies, agency_code), day };
        self.buckets.entry(key).or_insert_with(|| stored.map_or_else(Bucket::default, Bucket::stored));
        self.buckets_restored += 1;
    }

    /// Day buckets in memory, dropped once written and older than the allowed lateness,
    /// and fetched back, since the state was loaded.
    pub fn bucket_counts(&self) -> (usize, u64, u64) {
        (self.buckets.len(), self.buckets_evicted, self.buckets_restored)
    }

    #[cfg(test)]
    fn dossier_capacity(&self) -> usize {
        self.dossiers.capacity()
    }

    /// Dossiers in memory, dropped as idle, and fetched back, since the state was loaded.
    pub fn dossier_counts(&self) -> (usize, u64, u64) {
        (self.dossiers.len(), self.evicted, self.restored)
    }

    pub fn counts(&self, agency_code: &str, day: LocalDay) -> Option<DossierDayCounts> {
        self.buckets.get(&BucketKeyRef { agency_code, day }).map(|b| b.counts.receptions)
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The facts of the dossiers received on `day`, and the dossiers that ended on it.
    pub fn day_facts(&self, agency_code: &str, day: LocalDay) -> Option<(ServiceCounts, ResolvedCounts)> {
        self.buckets.get(&BucketKeyRef { agency_code, day }).map(|b| (b.counts.service, b.counts.resolved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_clickhouse::day_count::buckets_of;
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
            new_due_at: None,
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
    }

    #[test]
    fn pending_rows_carry_the_next_offset_as_version_and_clear_after_checkpoint() {
        let mut state = PartitionState::load(3, 0, &[], &[]);
        state.apply(0, &received("SNV", Channel::Online));
        let rows = buckets_of(state.pending_rows());
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].version, rows[0].counts.receptions.received), (1, 1));
        assert!(state.pending_rows().iter().all(|row| row.kafka_partition == 3));
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
        let dossiers: Vec<_> = before.pending_dossier_rows(0).collect();
        // After the restart, replay from the checkpoint at offset 2.
        let mut after = PartitionState::load(0, 2, &buckets_of(rows), &dossiers);
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
        let mut after = PartitionState::load(0, 0, &buckets_of(buckets), &[]);
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
        let dossiers: Vec<_> = before.pending_dossier_rows(0).collect(); // version 2, counted offset 0
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
        at(DossierEvent { kind, ..reception("SNV", dossier, Channel::Online) }, occurred_at)
    }

    #[test]
    fn idle_dossiers_leave_memory_and_come_back_whole_when_an_event_needs_them() {
        let t0 = DAY.start_micros() + HOUR;
        let mut state = PartitionState::load(0, 0, &[], &[]).with_lateness(0, 48 * HOUR);
        state.apply_event(0, &event("OLD", DossierEventKind::Received, t0));
        state.apply_event(1, &event("OLD", DossierEventKind::Processed, t0 + HOUR));
        // What ClickHouse holds after the checkpoint.
        let stored: Vec<_> = state.pending_dossier_rows(0).collect();
        let stored_buckets = buckets_of(state.pending_rows());
        state.checkpoint_written(2);
        state.apply_event(2, &event("NEW", DossierEventKind::Received, t0 + 100 * HOUR));
        state.checkpoint_written(3);
        assert_eq!(state.dossier_counts(), (1, 1, 0), "OLD was idle for 99 h with 48 h allowed");
        assert_eq!(state.bucket_counts(), (1, 1, 0), "OLD's day (received, ended) is 4 days behind with 2 allowed");

        // A new dossier needs nothing; OLD's late result return needs its stored row first,
        // and changes nothing until it is there.
        let new = event("NEWER", DossierEventKind::Received, t0 + 101 * HOUR);
        assert_eq!(state.apply_event(3, &new), Verdict::Applied);
        let returned = event("OLD", DossierEventKind::ResultReturned, t0 + 101 * HOUR);
        assert_eq!(state.apply_event(4, &returned), Verdict::NeedsStoredDossier);
        assert_eq!((state.next_offset(), state.dossier_counts().0), (4, 2), "nothing applied");
        let Event::Dossier(returned_event) = &returned else { unreachable!() };
        state.restore_dossier(stored.iter().find(|r| &*r.dossier_id == "OLD"), returned_event);
        // Then the bucket of the day it was received and ended on, which left memory too.
        assert_eq!(state.apply_event(4, &returned), Verdict::NeedsStoredBuckets);
        assert_eq!(state.next_offset(), 4, "nothing applied");
        assert_eq!(state.buckets_to_fetch(returned_event), [DAY]);
        state.restore_bucket("SNV", DAY, stored_buckets.iter().find(|b| b.day == DAY));
        assert_eq!(state.apply_event(4, &returned), Verdict::Applied);
        let row = state.pending_dossier_rows(0).find(|r| &*r.dossier_id == "OLD").unwrap();
        assert_eq!((row.received_at, row.processed_at, row.returned_at), (t0, t0 + HOUR, t0 + 101 * HOUR));
        assert_eq!(row.received_offset, 0, "still counted once, at its first reception");
        assert_eq!(state.dossier_counts(), (3, 1, 1));
        assert_eq!(state.bucket_counts(), (2, 1, 1));
        // The fetched bucket kept what it held and took the return on the day OLD ended.
        let (service, resolved) = state.day_facts("SNV", DAY).unwrap();
        assert_eq!((service.received, resolved.resolved, resolved.returned), (1, 1, 1));
        let written = buckets_of(state.pending_rows());
        let day = written.iter().find(|b| b.day == DAY).expect("the fetched bucket is written again");
        assert_eq!(day.counts.resolved.returned, 1);
        // A dossier the store does not know either starts from the event.
        let unknown = event("UNKNOWN", DossierEventKind::Processed, t0 + 101 * HOUR);
        assert_eq!(state.apply_event(5, &unknown), Verdict::NeedsStoredDossier);
        let Event::Dossier(unknown_event) = &unknown else { unreachable!() };
        state.restore_dossier(None, unknown_event);
        assert_eq!(state.apply_event(5, &unknown), Verdict::Applied);
        assert_eq!(state.dossier_counts(), (4, 1, 1));
        // An event too late to apply is not worth a fetch.
        let ancient = event("GONE", DossierEventKind::Processed, t0 - 100 * HOUR);
        assert_eq!(state.apply_event(6, &ancient), Verdict::TooLate);
    }

    #[test]
    fn a_fetched_day_bucket_is_complete_up_to_its_stored_version() {
        // After a crash, the bucket of OLD's day was stored by a checkpoint that never
        // finished (version 5): it reflects the return at offset 4, replayed now.
        let t0 = DAY.start_micros() + HOUR;
        let mut state = PartitionState::load(0, 0, &[], &[]).with_lateness(0, 48 * HOUR);
        state.apply_event(0, &event("OLD", DossierEventKind::Received, t0));
        state.apply_event(1, &event("OLD", DossierEventKind::Processed, t0 + HOUR));
        let mut stored = buckets_of(state.pending_rows());
        state.checkpoint_written(2);
        state.apply_event(2, &event("NEW", DossierEventKind::Received, t0 + 100 * HOUR));
        state.apply_event(3, &event("OLD", DossierEventKind::Submitted, t0 + 100 * HOUR)); // keeps OLD in memory
        state.checkpoint_written(4);
        assert_eq!(state.bucket_counts(), (1, 1, 0));
        let day = stored.iter_mut().find(|b| b.day == DAY).unwrap();
        day.counts.resolved.returned = 1;
        day.version = 5;

        let returned = event("OLD", DossierEventKind::ResultReturned, t0 + 101 * HOUR);
        let Event::Dossier(returned_event) = &returned else { unreachable!() };
        assert_eq!(state.apply_event(4, &returned), Verdict::NeedsStoredBuckets, "OLD is in memory, its day is not");
        assert_eq!(state.buckets_to_fetch(returned_event), [DAY]);
        state.restore_bucket("SNV", DAY, Some(day));
        assert_eq!(state.apply_event(4, &returned), Verdict::Applied);
        let (_, resolved) = state.day_facts("SNV", DAY).unwrap();
        assert_eq!(resolved.returned, 1, "counted once: the stored bucket had it");
        assert!(buckets_of(state.pending_rows()).iter().all(|b| b.day != DAY), "nothing to write for it");
        // A bucket nothing was stored for starts empty.
        state.restore_bucket("SNV", LocalDay(DAY.0 - 1), None);
        assert_eq!(state.day_facts("SNV", LocalDay(DAY.0 - 1)), Some(Default::default()));
    }

    #[test]
    fn the_dossier_table_gives_its_room_back_when_idle_dossiers_leave() {
        let t0 = DAY.start_micros() + HOUR;
        let mut state = PartitionState::load(0, 0, &[], &[]).with_lateness(0, 48 * HOUR);
        for i in 0..10_000 {
            state.apply_event(i, &event(&format!("BUSY-{i}"), DossierEventKind::Received, t0));
        }
        state.checkpoint_written(10_000);
        let busy = state.dossier_capacity();
        assert!(busy >= 10_000);
        for i in 0..100 {
            state.apply_event(10_000 + i, &event(&format!("QUIET-{i}"), DossierEventKind::Received, t0 + 100 * HOUR));
        }
        state.checkpoint_written(10_100);
        assert_eq!(state.dossier_counts().0, 100, "the busy day's dossiers were idle for 99 h with 48 h allowed");
        assert!(state.dossier_capacity() < 1_000, "capacity {} kept for 100 dossiers", state.dossier_capacity());
        assert!(state.dossier_capacity() >= 125, "a quarter of headroom is kept");
    }

    #[test]
    fn without_an_allowed_lateness_nothing_leaves_memory() {
        let mut state = PartitionState::load(0, 0, &[], &[]);
        state.apply_event(0, &event("A", DossierEventKind::Received, DAY.start_micros()));
        state.apply_event(1, &event("B", DossierEventKind::Received, DAY.start_micros() + 900 * HOUR));
        state.checkpoint_written(2);
        assert_eq!(state.dossier_counts().0, 2);
        assert_eq!(state.apply_event(2, &event("C", DossierEventKind::Processed, 0)), Verdict::Applied);
    }

    const DAYS: i64 = 24 * HOUR;

    /// D1's life: received on DAY (appointment 10 days later), processed 12 days later
    /// (late), then the supplement wait it had (3 days) arrives and makes it early, then
    /// its result is returned.
    fn late_then_early() -> Vec<Event> {
        let t0 = DAY.start_micros() + HOUR;
        vec![
            event("D1", DossierEventKind::Received, t0),
            event("D1", DossierEventKind::Processed, t0 + 12 * DAYS),
            event("D1", DossierEventKind::SupplementRequested, t0 + DAYS),
            event("D1", DossierEventKind::SupplementReceived, t0 + 4 * DAYS),
            event("D1", DossierEventKind::ResultReturned, t0 + 20 * DAYS),
        ]
    }

    fn ended_on(state: &PartitionState, day: LocalDay) -> ResolvedCounts {
        state.day_facts("SNV", day).map(|(_, resolved)| resolved).unwrap_or_default()
    }

    #[test]
    fn an_ending_is_counted_on_its_end_day_and_moves_with_the_facts() {
        let events = late_then_early();
        let end_day = LocalDay(DAY.0 + 12);
        let mut state = PartitionState::load(0, 0, &[], &[]);
        state.apply_event(0, &events[0]);
        let (received, ended) = state.day_facts("SNV", DAY).unwrap();
        assert_eq!((received.received, ended), (1, ResolvedCounts::default()), "received, open");
        state.apply_event(1, &events[1]);
        let late = ResolvedCounts { resolved: 1, late: 1, late_without_apology: 1, ..Default::default() };
        assert_eq!(ended_on(&state, end_day), late, "no apology letter either");
        state.apply_event(2, &events[2]);
        assert_eq!(ended_on(&state, end_day).late, 1, "the wait is not over: no pause yet");
        state.apply_event(3, &events[3]);
        let early = ResolvedCounts { resolved: 1, on_time: 1, early: 1, ..Default::default() };
        assert_eq!(ended_on(&state, end_day), early, "3 days' pause: the deadline moves past the end");
        state.apply_event(4, &events[4]);
        assert_eq!(ended_on(&state, end_day), ResolvedCounts { returned: 1, ..early });
        assert_eq!(ended_on(&state, LocalDay(DAY.0 + 20)), ResolvedCounts::default(), "ended when processed");
        // The stored row says the same as the buckets.
        let row = state.pending_dossier_rows(0).next().unwrap();
        assert_eq!((row.outcome, row.end_day), (parpulse_clickhouse::dossier_state::OUTCOME_EARLY, end_day.0));
    }

    /// A crash after the day buckets were stored and before the dossier rows were: the
    /// replay finds the buckets ahead and moves nothing twice; a later change moves the
    /// reloaded dossier's contribution out of the right bucket.
    #[test]
    fn replay_moves_a_contribution_once_when_buckets_were_stored_ahead_of_dossiers() {
        let events = late_then_early();
        let mut straight = PartitionState::load(0, 0, &[], &[]);
        for (offset, e) in events.iter().enumerate() {
            straight.apply_event(offset as i64, e);
        }

        let mut before = PartitionState::load(0, 0, &[], &[]);
        before.apply_event(0, &events[0]);
        let mut buckets = before.pending_rows();
        let dossiers: Vec<_> = before.pending_dossier_rows(0).collect(); // version 1
        before.checkpoint_written(1);
        for offset in 1..3 {
            before.apply_event(offset, &events[offset as usize]);
        }
        buckets.extend(before.pending_rows()); // version 3: stored; its dossier rows are not
        let mut after = PartitionState::load(0, 1, &buckets_of(buckets), &dossiers);
        for offset in 1..5 {
            after.apply_event(offset, &events[offset as usize]);
        }
        for day in [DAY, LocalDay(DAY.0 + 12), LocalDay(DAY.0 + 20)] {
            assert_eq!(after.day_facts("SNV", day), straight.day_facts("SNV", day), "day {day}");
        }
        assert_eq!(ended_on(&after, LocalDay(DAY.0 + 12)).resolved, 1);
    }

    #[test]
    fn a_reloaded_dossier_takes_its_stored_contribution_out_when_it_changes() {
        let events = late_then_early();
        let mut before = PartitionState::load(0, 0, &[], &[]);
        for offset in 0..2 {
            before.apply_event(offset, &events[offset as usize]);
        }
        let (buckets, dossiers) = (before.pending_rows(), before.pending_dossier_rows(0).collect::<Vec<_>>());
        let mut after = PartitionState::load(0, 2, &buckets_of(buckets), &dossiers);
        for offset in 2..4 {
            after.apply_event(offset, &events[offset as usize]);
        }
        let ended = ended_on(&after, LocalDay(DAY.0 + 12));
        assert_eq!((ended.resolved, ended.late, ended.early), (1, 0, 1), "late taken out, early put in");
        // The checkpoint writes the counts that moved, still resolved once.
        let mut written: Vec<_> = after
            .pending_rows()
            .into_iter()
            .filter(|r| r.day == DAY.0 + 12)
            .map(|r| (r.counter, r.value, r.version))
            .collect();
        written.sort();
        let want = [("early", 1, 4), ("late", 0, 4), ("late_without_apology", 0, 4), ("on_time", 1, 4)];
        assert_eq!(written, want.map(|(c, v, ver)| (c.to_owned(), v, ver)));
    }

    fn of_procedure(dossier: &str, procedure: &str, channel: Channel) -> DossierEvent {
        DossierEvent { procedure_code: procedure.into(), ..reception("SNV", dossier, channel) }
    }

    #[test]
    fn procedure_buckets_count_each_dossier_once_and_replay_exactly() {
        let mut before = PartitionState::load(0, 0, &[], &[]);
        before.apply(0, &of_procedure("D1", "1.001000", Channel::Online));
        before.apply(1, &of_procedure("D2", "1.001000", Channel::InPerson));
        before.apply(2, &of_procedure("D3", "1.001001", Channel::Online));
        before.apply(3, &of_procedure("D1", "1.001000", Channel::Online)); // a duplicate reception
        assert_eq!(before.procedure_counts("SNV", "1.001000", DAY), Some((2, 1)));
        assert_eq!(before.procedure_counts("SNV", "1.001001", DAY), Some((1, 1)));
        let rows = before.pending_procedure_rows();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.version == 4 && r.kafka_partition == 0));
        // Crash: procedure rows stored at version 4, dossier rows and checkpoint not.
        // Replay from offset 0 counts nothing twice and the next reception once.
        let mut after = PartitionState::load_with_procedures(0, 0, &[], &[], &rows);
        for (offset, (dossier, procedure, channel)) in [
            ("D1", "1.001000", Channel::Online),
            ("D2", "1.001000", Channel::InPerson),
            ("D3", "1.001001", Channel::Online),
            ("D1", "1.001000", Channel::Online),
            ("D4", "1.001000", Channel::InPerson),
        ]
        .into_iter()
        .enumerate()
        {
            after.apply(offset as i64, &of_procedure(dossier, procedure, channel));
        }
        assert_eq!(after.procedure_counts("SNV", "1.001000", DAY), Some((3, 1)));
        assert_eq!(after.procedure_counts("SNV", "1.001001", DAY), Some((1, 1)));
        assert_eq!(after.pending_procedure_rows().len(), 1, "only the bucket D4 changed");
        after.checkpoint_written(5);
        assert!(after.pending_procedure_rows().is_empty());
    }

    #[test]
    fn procedure_buckets_beyond_the_allowed_lateness_leave_memory() {
        let t0 = DAY.start_micros() + HOUR;
        let mut state = PartitionState::load(0, 0, &[], &[]).with_lateness(0, 48 * HOUR);
        state.apply_event(0, &at(of_procedure("A", "1.001000", Channel::Online), t0));
        state.checkpoint_written(1);
        state.apply_event(1, &at(of_procedure("B", "1.001000", Channel::Online), t0 + 100 * HOUR));
        assert_eq!(state.procedure_bucket_count(), 2);
        state.checkpoint_written(2);
        assert_eq!(state.procedure_bucket_count(), 1, "the first day is 99 h behind with 48 h allowed");
        assert_eq!(state.procedure_counts("SNV", "1.001000", DAY), None);
    }

    #[test]
    fn skipped_offsets_still_advance_the_position() {
        let mut state = PartitionState::load(0, 10, &[], &[]);
        state.skip(10);
        assert_eq!(state.next_offset(), 11);
        assert!(state.has_progress());
    }
}
