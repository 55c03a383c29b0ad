//! The `checkpoints` table: where each Kafka partition's aggregation stands.
//!
//! ClickHouse, not Kafka's committed offsets, is the source of truth: a
//! checkpoint row is written after the bucket rows it covers, and on assignment
//! the aggregator seeks to the newest checkpoint's `next_offset`.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct CheckpointRow {
    pub consumer_group: String,
    pub topic: String,
    pub kafka_partition: u32,
    pub next_offset: i64,
    /// Unix seconds.
    pub written_at: u32,
    /// Newest event time applied in the partition (UTC micros).
    pub watermark: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PartitionOffset {
    pub kafka_partition: u32,
    pub next_offset: i64,
    /// The watermark stored with that checkpoint (UTC micros).
    pub watermark_micros: i64,
}

pub async fn write(store: &Store, rows: &[CheckpointRow]) -> Result<()> {
    store.insert_rows("checkpoints", rows, "writing checkpoints").await
}

/// The newest checkpoint of every partition of `topic` for `consumer_group`; on a
/// cluster, read once every replica holds what was inserted before the call
/// ([`crate::cluster::await_replicas`]), so the rows it covers are there too.
pub async fn committed(store: &Store, consumer_group: &str, topic: &str) -> Result<Vec<PartitionOffset>> {
    crate::cluster::await_replicas(store).await?;
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/checkpoints_committed.sql"))
        .bind(consumer_group)
        .bind(topic)
        .fetch_all()
        .await
        .map_err(store.error("reading checkpoints"))
}
