//! The `dossier_state` table: what the aggregator must remember per dossier
//! across restarts (versioned by Kafka offset, like `dossier_day`), and the
//! lateness KPIs summed from it when read.

use std::sync::Arc;

use clickhouse::Row;
use parpulse_core::kpi::{OpenCounts, ResolvedCounts, ServiceCounts};
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
}

pub const OUTCOME_OPEN: u8 = 0;
pub const OUTCOME_ON_TIME: u8 = 1;
pub const OUTCOME_LATE: u8 = 2;

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

/// The newest state of one dossier, if it has any.
pub async fn load_one(
    store: &Store,
    kafka_partition: u32,
    agency_code: &str,
    dossier_id: &str,
) -> Result<Option<DossierStateRow>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/dossier_state_load_one.sql"))
        .bind(kafka_partition)
        .bind(agency_code)
        .bind(dossier_id)
        .fetch_optional()
        .await
        .map_err(store.error("loading one dossier's state"))
}

/// Resolved dossiers of one unit on one local day (the day each ended).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ResolvedDay {
    pub agency_code: String,
    pub day: u16,
    pub resolved: u64,
    pub on_time: u64,
    pub late: u64,
    pub late_with_apology: u64,
    pub returned: u64,
    pub returned_postal: u64,
}

impl ResolvedDay {
    pub fn counts(&self) -> ResolvedCounts {
        ResolvedCounts {
            resolved: self.resolved,
            on_time: self.on_time,
            late: self.late,
            late_with_apology: self.late_with_apology,
            returned: self.returned,
            returned_postal: self.returned_postal,
        }
    }
}

/// Lateness counts per unit and end day for days in `[from, to]`, from the newest row of each dossier.
pub async fn read_resolved_days(store: &Store, from: LocalDay, to: LocalDay) -> Result<Vec<ResolvedDay>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/resolved_days.sql"))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all()
        .await
        .map_err(store.error("reading resolved dossiers"))
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

/// Received dossiers of one unit on one reception day, with the facts of the
/// Decision 766 service indicators.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ReceivedFacts {
    pub agency_code: String,
    pub day: u16,
    pub received: u64,
    pub fee_bearing: u64,
    pub paid_online: u64,
    pub digitized: u64,
}

impl ReceivedFacts {
    pub fn counts(&self) -> ServiceCounts {
        ServiceCounts {
            received: self.received,
            fee_bearing: self.fee_bearing,
            paid_online: self.paid_online,
            digitized: self.digitized,
        }
    }
}

/// Fee-bearing, paid-online and digitized dossiers per unit and reception day in `[from, to]`.
pub async fn read_received_facts(store: &Store, from: LocalDay, to: LocalDay) -> Result<Vec<ReceivedFacts>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/received_facts.sql"))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all()
        .await
        .map_err(store.error("reading received dossier facts"))
}
