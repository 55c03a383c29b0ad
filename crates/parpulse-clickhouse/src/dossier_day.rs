//! The `dossier_day` table: dossier counts per unit and local day.
//!
//! Rows are versioned by the Kafka offset they are complete up to; a reader takes
//! the highest version of each (unit, day, partition), then sums partitions.

use clickhouse::Row;
use parpulse_core::kpi::DossierDayCounts;
use parpulse_core::LocalDay;
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

/// One bucket as stored. `day` is a ClickHouse `Date` (days since 1970-01-01).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DossierDayRow {
    pub kafka_partition: u32,
    pub agency_code: String,
    pub day: u16,
    pub received: u64,
    pub received_online: u64,
    pub received_postal: u64,
    pub version: u64,
}

impl DossierDayRow {
    pub fn counts(&self) -> DossierDayCounts {
        DossierDayCounts {
            received: self.received,
            received_online: self.received_online,
            received_postal: self.received_postal,
        }
    }
}

/// Latest counts of one unit on one day, all partitions summed.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct UnitDay {
    pub agency_code: String,
    pub day: u16,
    pub received: u64,
    pub received_online: u64,
    pub received_postal: u64,
}

impl UnitDay {
    pub fn day(&self) -> LocalDay {
        LocalDay(self.day)
    }

    pub fn counts(&self) -> DossierDayCounts {
        DossierDayCounts {
            received: self.received,
            received_online: self.received_online,
            received_postal: self.received_postal,
        }
    }
}

/// Inserts bucket rows in one statement.
pub async fn write(store: &Store, rows: &[DossierDayRow]) -> Result<()> {
    store.insert_rows("dossier_day", rows, "writing dossier_day rows").await
}

/// The newest version of every bucket of one Kafka partition (the aggregator's state on assignment).
pub async fn load_partition(store: &Store, kafka_partition: u32) -> Result<Vec<DossierDayRow>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/dossier_day_load_partition.sql"))
        .bind(kafka_partition)
        .fetch_all()
        .await
        .map_err(store.error("loading a partition's dossier_day buckets"))
}

/// Latest counts per unit and day for days in `[from, to]`, partitions summed.
pub async fn read_days(store: &Store, from: LocalDay, to: LocalDay) -> Result<Vec<UnitDay>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/dossier_day_read_days.sql"))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all()
        .await
        .map_err(store.error("reading dossier_day"))
}
