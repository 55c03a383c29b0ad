//! The `dossier_state` table: what the aggregator must remember per dossier
//! across restarts (versioned by Kafka offset, like `dossier_day`).

use clickhouse::Row;
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
}

pub async fn write(store: &Store, rows: &[DossierStateRow]) -> Result<()> {
    store.insert_rows("dossier_state", rows, "writing dossier_state rows").await
}

/// The newest state of every dossier of one Kafka partition.
pub async fn load_partition(store: &Store, kafka_partition: u32) -> Result<Vec<DossierStateRow>> {
    store
        .client()
        .query(
            // Inner aliases differ from column names (see dossier_day::load_partition).
            "SELECT kafka_partition, agency_code, dossier_id, o AS received_offset, d AS received_day, v AS version \
             FROM ( \
                 SELECT kafka_partition, agency_code, dossier_id, \
                        argMax(received_offset, version) AS o, argMax(received_day, version) AS d, max(version) AS v \
                 FROM dossier_state WHERE kafka_partition = ? \
                 GROUP BY kafka_partition, agency_code, dossier_id \
             )",
        )
        .bind(kafka_partition)
        .fetch_all()
        .await
        .map_err(store.error("loading a partition's dossier_state"))
}
