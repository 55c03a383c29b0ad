//! The `dossier_state` table: what the aggregator must remember per dossier
//! across restarts (versioned by Kafka offset, like `day_count`), and the
//! lateness KPIs summed from it when read.

use std::sync::Arc;

use clickhouse::Row;
use parpulse_core::calendar::WorkingCalendar;
use parpulse_core::kpi::OpenCounts;
use parpulse_core::lifecycle::{ApologyTiming, DossierLifecycle, Outcome, Timeliness};
use parpulse_core::Channel;
use parpulse_core::LocalDay;
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DossierStateRow {
    pub kafka_partition: u32,
    /// Shared with the aggregator's in-memory key (no copy per written row).
    pub agency_code: Arc<str>,
    pub dossier_id: Arc<str>,
    /// Offset of the first `received` event, -1 before reception.
    pub received_offset: i64,
    pub received_day: u16,
    pub version: u64,
    pub received_at: i64,
    pub due_at: i64,
    pub legal_max_days: i32,
    pub supplement_requested: Vec<i64>,
    pub supplement_received: Vec<i64>,
    pub processed_at: i64,
    pub other_end_at: i64,
    pub returned_at: i64,
    pub returned_postal: u8,
    pub apology: u8,
    pub fee_bearing: u8,
    pub paid_online: u8,
    pub digitized: u8,
    /// 0 open, 1 on time, 2 late.
    pub outcome: u8,
    pub end_day: u16,
    pub deadline_at: i64,
    /// Newest event time applied to the dossier (UTC micros); 0 in rows older than migration 0006.
    pub last_event_at: i64,
    // Migration 0009 (the official rules, docs/KPIS.md); 0 in older rows.
    /// Channel of the reception: 1 in person, 2 online, 3 postal (national codes), 0 unknown.
    pub received_channel: u8,
    /// The result is (to be) returned by post, as any event said.
    pub result_postal: u8,
    pub stopped_at: i64,
    pub withdrawn_at: i64,
    pub refused_at: i64,
    pub apology_at: i64,
    /// The new appointment date the apology letter gave (shown, never judged).
    pub apology_due_at: i64,
    /// How it ended, as national state codes: 9 processed, 10 returned, 8 stopped,
    /// 7 withdrawn, 5 still waiting for a supplement; 0 not ended.
    pub end_kind: u8,
    /// 0 no apology letter, 1 timely, 2 late.
    pub apology_timing: u8,
}

/// `outcome` codes, as judged when the row was written.
pub const OUTCOME_OPEN: u8 = 0;
pub const OUTCOME_ON_TIME: u8 = 1;
pub const OUTCOME_LATE: u8 = 2;
pub const OUTCOME_EARLY: u8 = 3;
pub const OUTCOME_REFUSED: u8 = 4;

fn some(value: i64) -> Option<i64> {
    (value != 0).then_some(value)
}

impl DossierStateRow {
    /// The lifecycle facts the row holds. Rows written before migration 0009 have no end
    /// kinds: an end that is not the return is read as a stop, an apology without a time
    /// as sent at the dossier's newest event (docs/OPERATIONS.md: `parpulse rebuild` after
    /// upgrading re-judges every dossier from the audit trail).
    pub fn lifecycle(&self) -> DossierLifecycle {
        let legacy_end = (self.stopped_at == 0 && self.withdrawn_at == 0 && self.other_end_at != self.returned_at)
            .then_some(self.other_end_at);
        DossierLifecycle {
            received_at: some(self.received_at),
            received_channel: Channel::of_national_code(self.received_channel),
            due_at: some(self.due_at),
            legal_max_days: (self.legal_max_days != 0).then_some(self.legal_max_days),
            supplement_requested: self.supplement_requested.clone(),
            supplement_received: self.supplement_received.clone(),
            processed_at: some(self.processed_at),
            returned_at: some(self.returned_at),
            stopped_at: some(self.stopped_at).or(legacy_end.and_then(some)),
            withdrawn_at: some(self.withdrawn_at),
            refused_at: some(self.refused_at),
            result_postal: self.result_postal != 0 || self.returned_postal != 0,
            apology_at: some(self.apology_at).or((self.apology != 0).then_some(self.last_event_at.max(1))),
            apology_due_at: some(self.apology_due_at),
            fee_bearing: self.fee_bearing != 0,
            paid_online: self.paid_online != 0,
            digitized: self.digitized != 0,
        }
    }
}

/// The judgment columns of a row: a dossier as it stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    pub outcome: u8,
    pub end_day: u16,
    /// Open: when it becomes overdue; resolved: the deadline it was judged against; 0 none.
    pub deadline_at: i64,
    pub end_kind: u8,
    pub apology_timing: u8,
}

impl Judged {
    pub fn of(lifecycle: &DossierLifecycle, at: i64, calendar: &WorkingCalendar) -> Judged {
        let apology_timing = match lifecycle.apology(at, calendar) {
            ApologyTiming::None => 0,
            ApologyTiming::Timely => 1,
            ApologyTiming::Late => 2,
        };
        let (outcome, end_day, deadline, end_kind) = match lifecycle.outcome(at, calendar) {
            Outcome::NotReceived => (OUTCOME_OPEN, 0, None, 0),
            Outcome::Open { deadline } => (OUTCOME_OPEN, 0, deadline, 0),
            Outcome::Refused { at } => (OUTCOME_REFUSED, LocalDay::of_micros(at).0, None, 0),
            Outcome::Resolved { end, kind, timeliness, deadline } => {
                let code = match timeliness {
                    Timeliness::Early => OUTCOME_EARLY,
                    Timeliness::OnTime => OUTCOME_ON_TIME,
                    Timeliness::Late => OUTCOME_LATE,
                };
                (code, LocalDay::of_micros(end).0, deadline, kind.code())
            }
        };
        Judged { outcome, end_day, deadline_at: deadline.unwrap_or(0), end_kind, apology_timing }
    }
}

pub async fn write(store: &Store, rows: &[DossierStateRow]) -> Result<()> {
    store.insert_rows("dossier_state", rows, "writing dossier_state rows").await
}

/// The newest state of the dossiers of one Kafka partition with an event at or after
/// `active_since` (UTC micros): the ones an aggregator keeps in memory.
pub async fn load_partition(store: &Store, kafka_partition: u32, active_since: i64) -> Result<Vec<DossierStateRow>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/dossier_state_load_partition.sql"))
        .bind(kafka_partition)
        .bind(active_since)
        .fetch_all()
        .await
        .map_err(store.error("loading a partition's dossier_state"))
}

/// The newest state of one dossier, if it has any (on a cluster, the newest on any
/// live replica: [`crate::cluster::from_every_replica`]).
pub async fn load_one(
    store: &Store,
    kafka_partition: u32,
    agency_code: &str,
    dossier_id: &str,
) -> Result<Option<DossierStateRow>> {
    let sql = include_str!("../../../schemas/clickhouse/queries/dossier_state_load_one.sql");
    let sql = crate::cluster::from_every_replica(store, sql, "dossier_state").await?;
    store
        .client()
        .query(&sql)
        .bind(kafka_partition)
        .bind(agency_code)
        .bind(dossier_id)
        .fetch_optional()
        .await
        .map_err(store.error("loading one dossier's state"))
}

/// Open dossiers of one unit now, and how many of them are past their deadline.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct OpenDossiers {
    pub agency_code: String,
    pub open: u64,
    pub overdue: u64,
}

impl OpenDossiers {
    pub fn counts(&self) -> OpenCounts {
        OpenCounts { open: self.open, overdue: self.overdue }
    }
}

/// Open and overdue-open dossiers per unit as of `now_micros` (a snapshot, not a window).
pub async fn read_open(store: &Store, now_micros: i64) -> Result<Vec<OpenDossiers>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/open_dossiers.sql"))
        .bind(now_micros)
        .fetch_all()
        .await
        .map_err(store.error("reading open dossiers"))
}

/// The newest state of every dossier a report for `[start, end)` (UTC micros; local
/// midnights) needs: see `dossier_state_for_period.sql`.
pub async fn read_for_period(
    store: &Store,
    start_micros: i64,
    end_micros: i64,
    first_day: LocalDay,
) -> Result<Vec<DossierStateRow>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/dossier_state_for_period.sql"))
        // Conditions must apply after FINAL (ClickHouse 18.16 would move them before it).
        .with_setting("optimize_move_to_prewhere", "0")
        .with_setting("enable_optimize_predicate_expression", "0")
        .bind(end_micros)
        .bind(start_micros)
        .bind(end_micros)
        .bind(start_micros)
        .bind(end_micros)
        .bind(first_day.to_string())
        .bind(start_micros)
        .bind(end_micros)
        .fetch_all()
        .await
        .map_err(store.error("reading the dossiers of a period"))
}
