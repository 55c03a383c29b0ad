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

/// One applied event as the audit table keeps it, borrowed from the Kafka message and
/// its decoded event: nothing is copied until it is encoded.
#[derive(Debug, Clone, Copy)]
pub struct AuditedEvent<'a> {
    pub event_id: &'a str,
    pub agency_code: &'a str,
    pub occurred_at: i64,
    pub day: u16,
    pub recorded_at: i64,
    pub schema_id: u32,
    pub payload: &'a [u8],
    pub topic: &'a str,
    pub kafka_partition: u32,
    pub kafka_offset: i64,
}

/// The columns [`EventLogBuffer`] encodes, in its order (the INSERT names them, so the
/// table's own column order does not matter).
const COLUMNS: &str =
    "event_id, agency_code, occurred_at, day, recorded_at, schema_id, payload, topic, kafka_partition, kafka_offset";

/// Audit rows encoded as ClickHouse RowBinary as events arrive: one growing byte buffer,
/// no allocation or row struct per event, and nothing left to serialise at checkpoint
/// time (the profile in docs/BENCHMARKS.md: per-event rows cost the consume loop about
/// a third of its time with the audit table on).
#[derive(Debug, Default)]
pub struct EventLogBuffer {
    bytes: Vec<u8>,
    rows: usize,
}

impl EventLogBuffer {
    /// Appends one row: String is a LEB128 length and the bytes, Date a little-endian
    /// UInt16 of days since 1970-01-01, integers little-endian.
    pub fn push(&mut self, event: &AuditedEvent<'_>) {
        let out = &mut self.bytes;
        put_string(out, event.event_id.as_bytes());
        put_string(out, event.agency_code.as_bytes());
        out.extend_from_slice(&event.occurred_at.to_le_bytes());
        out.extend_from_slice(&event.day.to_le_bytes());
        out.extend_from_slice(&event.recorded_at.to_le_bytes());
        out.extend_from_slice(&event.schema_id.to_le_bytes());
        put_string(out, event.payload);
        put_string(out, event.topic.as_bytes());
        out.extend_from_slice(&event.kafka_partition.to_le_bytes());
        out.extend_from_slice(&event.kafka_offset.to_le_bytes());
        self.rows += 1;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes encoded so far.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Takes the rows encoded so far; the buffer starts again with as much room (no
    /// regrowing on the hot path).
    pub fn take(&mut self) -> EventLogChunk {
        let room = self.bytes.len();
        let bytes = std::mem::replace(&mut self.bytes, Vec::with_capacity(room));
        EventLogChunk { bytes: bytes.into(), rows: std::mem::take(&mut self.rows) }
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.rows = 0;
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
}

/// Encoded rows taken from an [`EventLogBuffer`]; cheap to clone (shared bytes), so a
/// retried checkpoint sends the same bytes again.
#[derive(Debug, Clone, Default)]
pub struct EventLogChunk {
    bytes: bytes::Bytes,
    rows: usize,
}

impl EventLogChunk {
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Inserts the chunks' rows in one INSERT (one HTTP request, a chunk of body each).
pub async fn write(store: &Store, chunks: &[EventLogChunk]) -> Result<()> {
    if chunks.iter().all(|chunk| chunk.rows == 0) {
        return Ok(());
    }
    let doing = "writing event_log rows";
    let mut insert =
        store.client().insert_formatted_with(format!("INSERT INTO event_log ({COLUMNS}) FORMAT RowBinary"));
    for chunk in chunks.iter().filter(|chunk| chunk.rows > 0) {
        insert.send(chunk.bytes.clone()).await.map_err(store.error(doing))?;
    }
    insert.end().await.map_err(store.error(doing))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(event_id: &'a str, payload: &'a [u8]) -> AuditedEvent<'a> {
        AuditedEvent {
            event_id,
            agency_code: "SNV",
            occurred_at: -2,
            day: 0x0102,
            recorded_at: 3,
            schema_id: 4,
            payload,
            topic: "t",
            kafka_partition: 5,
            kafka_offset: 0x0708,
        }
    }

    #[test]
    fn a_row_is_encoded_as_rowbinary_in_the_insert_column_order() {
        let mut buffer = EventLogBuffer::default();
        buffer.push(&event("e1", &[0, 9]));
        let mut want: Vec<u8> = vec![2, b'e', b'1', 3, b'S', b'N', b'V'];
        want.extend([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // occurred_at -2
        want.extend([0x02, 0x01]); // day
        want.extend([3, 0, 0, 0, 0, 0, 0, 0]); // recorded_at
        want.extend([4, 0, 0, 0]); // schema_id
        want.extend([2, 0, 9]); // payload
        want.extend([1, b't']); // topic
        want.extend([5, 0, 0, 0]); // kafka_partition
        want.extend([0x08, 0x07, 0, 0, 0, 0, 0, 0]); // kafka_offset
        let chunk = buffer.take();
        assert_eq!(chunk.rows(), 1);
        assert_eq!(&chunk.bytes[..], &want[..]);
        assert_eq!(COLUMNS.split(", ").count(), 10, "one column per encoded field");
    }

    #[test]
    fn lengths_of_128_bytes_and_more_take_several_leb128_bytes() {
        for (len, prefix) in [(127usize, vec![0x7f]), (128, vec![0x80, 0x01]), (300, vec![0xac, 0x02])] {
            let mut out = Vec::new();
            put_string(&mut out, &vec![7; len]);
            assert_eq!(&out[..prefix.len()], &prefix[..], "length {len}");
            assert_eq!(out.len(), prefix.len() + len);
        }
    }

    #[test]
    fn take_starts_an_empty_buffer_and_clear_drops_rows() {
        let mut buffer = EventLogBuffer::default();
        buffer.push(&event("a", b"x"));
        buffer.push(&event("b", b"y"));
        let first = buffer.take();
        assert_eq!((first.rows(), buffer.rows()), (2, 0));
        buffer.push(&event("c", b"z"));
        let second = buffer.take();
        assert_eq!(second.rows(), 1);
        assert_eq!(second.bytes.len() * 2, first.bytes.len(), "rows of the same size");
        buffer.push(&event("d", b"w"));
        buffer.clear();
        assert_eq!((buffer.rows(), buffer.take().bytes.len()), (0, 0));
    }
}
