//! The `dossier_state` table: what the aggregator must remember per dossier
//! across restarts (versioned by Kafka offset, like `dossier_day`), and the
//! lateness KPIs summed from it when read.

use clickhouse::Row;
use parpulse_core::LocalDay;
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DossierStateRow {
    pub kafka_partition: u32,
    pub agency_code: String,
    pub dossier_id: String,
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
}

pub const OUTCOME_OPEN: u8 = 0;
pub const OUTCOME_ON_TIME: u8 = 1;
pub const OUTCOME_LATE: u8 = 2;

pub async fn write(store: &Store, rows: &[DossierStateRow]) -> Result<()> {
    store.insert_rows("dossier_state", rows, "writing dossier_state rows").await
}

/// The newest state of every dossier of one Kafka partition.
pub async fn load_partition(store: &Store, kafka_partition: u32) -> Result<Vec<DossierStateRow>> {
    store
        .client()
        .query(
            // argMax(tuple) takes every column of the newest row at once; outer names
            // differ from the inner ones (ClickHouse 18.16 alias resolution).
            "SELECT kafka_partition, agency_code, dossier_id, \
                    s.1 AS received_offset, s.2 AS received_day, v AS version, s.3 AS received_at, s.4 AS due_at, \
                    s.5 AS legal_max_days, s.6 AS supplement_requested, s.7 AS supplement_received, \
                    s.8 AS processed_at, s.9 AS other_end_at, s.10 AS returned_at, s.11 AS returned_postal, \
                    s.12 AS apology, s.13 AS fee_bearing, s.14 AS paid_online, s.15 AS digitized, s.16 AS outcome, \
                    s.17 AS end_day, s.18 AS deadline_at \
             FROM ( \
                 SELECT kafka_partition, agency_code, dossier_id, max(version) AS v, \
                        argMax(tuple(received_offset, received_day, received_at, due_at, legal_max_days, \
                                     supplement_requested, supplement_received, processed_at, other_end_at, \
                                     returned_at, returned_postal, apology, fee_bearing, paid_online, digitized, \
                                     outcome, end_day, deadline_at), version) AS s \
                 FROM dossier_state WHERE kafka_partition = ? \
                 GROUP BY kafka_partition, agency_code, dossier_id \
             )",
        )
        .bind(kafka_partition)
        .fetch_all()
        .await
        .map_err(store.error("loading a partition's dossier_state"))
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

/// Lateness counts per unit and end day for days in `[from, to]`, from the newest row of each dossier.
pub async fn read_resolved_days(store: &Store, from: LocalDay, to: LocalDay) -> Result<Vec<ResolvedDay>> {
    store
        .client()
        .query(
            "SELECT agency_code, e AS day, \
                    countIf(o != 0) AS resolved, countIf(o = 1) AS on_time, countIf(o = 2) AS late, \
                    countIf(o = 2 AND a = 1) AS late_with_apology, \
                    countIf(r != 0) AS returned, countIf(r != 0 AND p = 1) AS returned_postal \
             FROM ( \
                 SELECT agency_code, argMax(outcome, version) AS o, argMax(end_day, version) AS e, \
                        argMax(apology, version) AS a, argMax(returned_at, version) AS r, \
                        argMax(returned_postal, version) AS p \
                 FROM dossier_state GROUP BY kafka_partition, agency_code, dossier_id \
             ) WHERE o != 0 AND e >= toDate(?) AND e <= toDate(?) \
             GROUP BY agency_code, e ORDER BY agency_code, e",
        )
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

/// Open and overdue-open dossiers per unit as of `now_micros` (a snapshot, not a window).
pub async fn read_open(store: &Store, now_micros: i64) -> Result<Vec<OpenDossiers>> {
    store
        .client()
        .query(
            "SELECT agency_code, countIf(o = 0 AND r != 0) AS open, countIf(o = 0 AND d != 0 AND d < ?) AS overdue \
             FROM ( \
                 SELECT agency_code, argMax(outcome, version) AS o, argMax(deadline_at, version) AS d, \
                        argMax(received_at, version) AS r \
                 FROM dossier_state GROUP BY kafka_partition, agency_code, dossier_id \
             ) GROUP BY agency_code ORDER BY agency_code",
        )
        .bind(now_micros)
        .fetch_all()
        .await
        .map_err(store.error("reading open dossiers"))
}
