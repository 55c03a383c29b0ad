//! The `event_log` table: every applied event whole (its Kafka message value), with its
//! Kafka position and admission time: the long-term record of the stream.

use std::sync::Arc;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct EventLogRow {
    pub event_id: String,
    pub agency_code: String,
    pub occurred_at: i64,
    pub day: u16,
    pub recorded_at: i64,
    pub schema_id: u32,
    /// The message value as produced: the wire header and the Avro datum.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub topic: Arc<str>,
    pub kafka_partition: u32,
    pub kafka_offset: i64,
}

pub async fn write(store: &Store, rows: &[EventLogRow]) -> Result<()> {
    store.insert_rows("event_log", rows, "writing event_log rows").await
}

/// One stored copy of every event (the table is deduplicated by event id), in no order.
pub async fn read_all(store: &Store) -> Result<Vec<EventLogRow>> {
    store
        .client()
        .query(
            "SELECT event_id, any(agency_code), any(occurred_at), any(day), any(recorded_at), any(schema_id), \
             any(payload), any(topic), any(kafka_partition), any(kafka_offset) FROM event_log GROUP BY event_id",
        )
        .fetch_all()
        .await
        .map_err(store.error("reading event_log"))
}

/// One stored copy of every event admitted (`recorded_at`) at or before `recorded_by` (UTC
/// micros): the stream as it was known then. Events of any time: facts dated after a
/// period are ignored by judging, while flags they carry (a result to be returned by post)
/// still count, as in the ordinary report.
pub fn known_by(store: &Store, recorded_by: i64) -> Result<KnownEvents> {
    let cursor = store
        .client()
        .query("SELECT any(payload) FROM event_log WHERE recorded_at <= ? GROUP BY event_id")
        .bind(recorded_by)
        .fetch()
        .map_err(store.error("reading event_log"))?;
    Ok(KnownEvents { cursor, store: store.clone() })
}

#[derive(Debug, Row, Deserialize)]
struct Payload {
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

/// The payloads of [`known_by`], streamed.
pub struct KnownEvents {
    cursor: clickhouse::query::RowCursor<Payload>,
    store: Store,
}

impl KnownEvents {
    /// The next event's message value (wire header and Avro datum), or None at the end.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.cursor.next().await.map_err(self.store.error("reading event_log"))?.map(|row| row.payload))
    }
}
