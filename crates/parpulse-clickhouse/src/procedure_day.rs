//! The `procedure_day` table: receptions per unit, administrative procedure (mã TTHC)
//! and local day, for the procedure catalogue's KPIs (parpulse_core::procedures).
//!
//! Versioned like `day_count` (docs/ARCHITECTURE.md): each row carries the Kafka
//! offset its partition's events are counted up to; readers take the highest version
//! of each (unit, procedure, day, partition), then sum partitions.

use clickhouse::Row;
use parpulse_core::LocalDay;
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

/// One bucket as stored. `day` is a ClickHouse `Date` (days since 1970-01-01).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ProcedureDayRow {
    pub kafka_partition: u32,
    pub agency_code: String,
    pub procedure_code: String,
    pub day: u16,
    pub received: u64,
    pub received_online: u64,
    pub version: u64,
}

/// Latest counts of one unit's procedure on one day, all partitions summed.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct UnitProcedureDay {
    pub agency_code: String,
    pub procedure_code: String,
    pub day: u16,
    pub received: u64,
    pub received_online: u64,
}

/// Inserts bucket rows in one statement.
pub async fn write(store: &Store, rows: &[ProcedureDayRow]) -> Result<()> {
    store.insert_rows("procedure_day", rows, "writing procedure_day rows").await
}

/// The newest version of every bucket of one Kafka partition from `from` on (the
/// aggregator's state on assignment; older buckets can no longer change).
pub async fn load_partition(store: &Store, kafka_partition: u32, from: LocalDay) -> Result<Vec<ProcedureDayRow>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/procedure_day_load_partition.sql"))
        .bind(kafka_partition)
        .bind(from.to_string())
        .fetch_all()
        .await
        .map_err(store.error("loading a partition's procedure_day buckets"))
}

/// Latest counts per unit, procedure and day for days in `[from, to]`, partitions summed.
pub async fn read_days(store: &Store, from: LocalDay, to: LocalDay) -> Result<Vec<UnitProcedureDay>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/procedure_day_read_days.sql"))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all()
        .await
        .map_err(store.error("reading procedure_day"))
}
