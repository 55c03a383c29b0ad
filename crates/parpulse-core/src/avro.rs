//! The Avro wire format of parpulse's Kafka messages.
//!
//! Each message value is framed as in the Confluent convention: one magic byte
//! `0`, the writer's schema id as a 4-byte big-endian integer, then the Avro
//! binary datum. Schema ids are assigned in this repository (see
//! [`SCHEMAS`] and docs/SCHEMAS.md) rather than by a schema registry, so the
//! pipeline runs without one; the framing stays compatible with registry-aware
//! tools if the same ids are registered there.
//!
//! A reader decodes with the *writer's* schema (looked up by id) into the Rust
//! type; serde fills fields the writer did not know from their defaults and
//! ignores fields the reader does not know. That is what makes adding an
//! optional field a compatible change.

use serde::de::Deserialize;
use serde::Serialize;
use serde_avro_fast::ser::SerializerConfig;
use serde_avro_fast::Schema;

use crate::event::{BudgetEvent, DossierEvent, Event, EventRef, StaffingEvent};

pub const MAGIC_BYTE: u8 = 0;
const HEADER_LEN: usize = 5;

/// What a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Dossier,
    Budget,
    Staffing,
}

impl EventKind {
    /// The id new events of this kind are written with.
    pub fn writer_schema_id(self) -> u32 {
        match self {
            EventKind::Dossier => 4,
            EventKind::Budget => 2,
            EventKind::Staffing => 3,
        }
    }
}

impl<S> Event<S> {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Dossier(_) => EventKind::Dossier,
            Event::Budget(_) => EventKind::Budget,
            Event::Staffing(_) => EventKind::Staffing,
        }
    }
}

/// Every schema parpulse can read: (id, kind, Avro schema JSON). Ids are never reused.
pub const SCHEMAS: &[(u32, EventKind, &str)] = &[
    (1, EventKind::Dossier, include_str!("../../../schemas/avro/dossier_event.v1.avsc")),
    (2, EventKind::Budget, include_str!("../../../schemas/avro/budget_event.v1.avsc")),
    (3, EventKind::Staffing, include_str!("../../../schemas/avro/staffing_event.v1.avsc")),
    (4, EventKind::Dossier, include_str!("../../../schemas/avro/dossier_event.v1.r2.avsc")),
];

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message is {0} bytes, shorter than the 5-byte header")]
    TooShort(usize),
    #[error("message starts with byte {0:#04x}, not the wire-format magic byte 0x00")]
    BadMagic(u8),
    #[error("schema id {0} is unknown to this version of parpulse")]
    UnknownSchema(u32),
    #[error("schema id {id} describes {actual:?} events, not {expected:?}")]
    WrongKind { id: u32, expected: EventKind, actual: EventKind },
    #[error("Avro datum does not decode with schema {id}: {message}")]
    Decode { id: u32, message: String },
    #[error("event does not encode with schema {id}: {message}")]
    Encode { id: u32, message: String },
}

struct KnownSchema {
    id: u32,
    kind: EventKind,
    schema: Schema,
}

/// Parsed schemas, built once and shared (parsing is not free).
pub struct AvroCodec {
    schemas: Vec<KnownSchema>,
}

impl Default for AvroCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl AvroCodec {
    pub fn new() -> Self {
        Self::with_schemas(SCHEMAS)
    }

    /// A codec knowing exactly these schemas (tests use it for evolution checks).
    pub fn with_schemas(schemas: &[(u32, EventKind, &str)]) -> Self {
        let schemas = schemas
            .iter()
            .map(|&(id, kind, json)| KnownSchema {
                id,
                kind,
                schema: json.parse().unwrap_or_else(|e| panic!("schema {id} does not parse: {e}")),
            })
            .collect();
        Self { schemas }
    }

    fn schema(&self, id: u32, expected: EventKind) -> Result<&Schema, WireError> {
        let known = self.schemas.iter().find(|s| s.id == id).ok_or(WireError::UnknownSchema(id))?;
        if known.kind != expected {
            return Err(WireError::WrongKind { id, expected, actual: known.kind });
        }
        Ok(&known.schema)
    }

    /// Appends the framed encoding of `value` with writer schema `id` to `out`.
    pub fn encode<T: Serialize>(
        &self,
        id: u32,
        kind: EventKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let schema = self.schema(id, kind)?;
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&id.to_be_bytes());
        let buffer = std::mem::take(out);
        *out = serde_avro_fast::to_datum(value, buffer, &mut SerializerConfig::new(schema))
            .map_err(|e| WireError::Encode { id, message: e.to_string() })?;
        Ok(())
    }

    /// Decodes a framed message, with the writer schema named in its header. `T` may
    /// borrow strings from `message` (Avro strings are stored as UTF-8 bytes in place).
    pub fn decode<'a, T: Deserialize<'a>>(&self, kind: EventKind, message: &'a [u8]) -> Result<T, WireError> {
        let (id, datum) = split_header(message)?;
        let schema = self.schema(id, kind)?;
        serde_avro_fast::from_datum_slice(datum, schema).map_err(|e| WireError::Decode { id, message: e.to_string() })
    }

    /// Encodes any event with its kind's current writer schema.
    pub fn encode_event(&self, event: &Event, out: &mut Vec<u8>) -> Result<(), WireError> {
        let id = event.kind().writer_schema_id();
        match event {
            Event::Dossier(e) => self.encode(id, EventKind::Dossier, e, out),
            Event::Budget(e) => self.encode(id, EventKind::Budget, e, out),
            Event::Staffing(e) => self.encode(id, EventKind::Staffing, e, out),
        }
    }

    pub fn encode_dossier(&self, event: &DossierEvent, out: &mut Vec<u8>) -> Result<(), WireError> {
        self.encode(EventKind::Dossier.writer_schema_id(), EventKind::Dossier, event, out)
    }

    pub fn decode_dossier(&self, message: &[u8]) -> Result<DossierEvent, WireError> {
        self.decode(EventKind::Dossier, message)
    }

    pub fn decode_budget(&self, message: &[u8]) -> Result<BudgetEvent, WireError> {
        self.decode(EventKind::Budget, message)
    }

    pub fn decode_staffing(&self, message: &[u8]) -> Result<StaffingEvent, WireError> {
        self.decode(EventKind::Staffing, message)
    }

    /// Decodes a message of any known kind (the header's schema id says which).
    pub fn decode_event(&self, message: &[u8]) -> Result<Event, WireError> {
        self.decode_any(message)
    }

    /// As [`AvroCodec::decode_event`], but a dossier event borrows its strings from
    /// `message`: no allocation per event (the aggregator's hot path).
    pub fn decode_event_ref<'a>(&self, message: &'a [u8]) -> Result<EventRef<'a>, WireError> {
        self.decode_any(message)
    }

    fn decode_any<'a, S: Deserialize<'a> + Default>(&self, message: &'a [u8]) -> Result<Event<S>, WireError> {
        let (id, _) = split_header(message)?;
        let known = self.schemas.iter().find(|s| s.id == id).ok_or(WireError::UnknownSchema(id))?;
        Ok(match known.kind {
            EventKind::Dossier => Event::Dossier(self.decode(EventKind::Dossier, message)?),
            EventKind::Budget => Event::Budget(self.decode(EventKind::Budget, message)?),
            EventKind::Staffing => Event::Staffing(self.decode(EventKind::Staffing, message)?),
        })
    }
}

/// Splits a framed message into the writer schema id and the Avro datum.
pub fn split_header(message: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if message.len() < HEADER_LEN {
        return Err(WireError::TooShort(message.len()));
    }
    if message[0] != MAGIC_BYTE {
        return Err(WireError::BadMagic(message[0]));
    }
    let id = u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
    Ok((id, &message[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Channel, DossierEventKind};

    fn sample() -> DossierEvent {
        DossierEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: "SNV".into(),
            occurred_at: 1_574_900_000_000_000,
            recorded_at: 1_574_900_000_100_000,
            source: "simulator".into(),
            dossier_id: "000.00.12.H31-191128-0001".into(),
            procedure_code: "1.001234".into(),
            kind: DossierEventKind::Received,
            channel: Channel::Online,
            online_level: 4,
            result_channel: Some(Channel::Postal),
            due_at: Some(1_575_500_000_000_000),
            legal_max_days: None,
            fee_bearing: true,
            digitized: false,
            new_due_at: None,
        }
    }

    #[test]
    fn dossier_event_round_trips_through_the_wire_format() {
        let codec = AvroCodec::new();
        let mut bytes = Vec::new();
        codec.encode_dossier(&sample(), &mut bytes).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 4]);
        assert_eq!(codec.decode_dossier(&bytes).unwrap(), sample());
    }

    #[test]
    fn borrowed_decoding_reads_the_same_event_without_copying_its_strings() {
        let codec = AvroCodec::new();
        let mut bytes = Vec::new();
        codec.encode_dossier(&sample(), &mut bytes).unwrap();
        let Event::Dossier(borrowed) = codec.decode_event_ref(&bytes).unwrap() else { panic!("not a dossier event") };
        let owned = sample();
        assert_eq!(
            (borrowed.event_id, borrowed.agency_code, borrowed.dossier_id, borrowed.procedure_code),
            (&*owned.event_id, &*owned.agency_code, &*owned.dossier_id, &*owned.procedure_code)
        );
        assert_eq!(
            (borrowed.kind, borrowed.due_at, borrowed.fee_bearing),
            (owned.kind, owned.due_at, owned.fee_bearing)
        );
        let inside = bytes.as_ptr_range();
        assert!(inside.contains(&borrowed.dossier_id.as_ptr()), "the id points into the message buffer");
    }

    #[test]
    fn budget_and_staffing_events_round_trip() {
        use crate::event::{BudgetEventKind, Position, StaffingEventKind};
        let codec = AvroCodec::new();
        let events = [
            Event::Budget(BudgetEvent {
                event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b12".into(),
                agency_code: "STC".into(),
                occurred_at: 1_574_900_000_000_000,
                recorded_at: 1,
                source: "test".into(),
                kind: BudgetEventKind::Disbursed,
                fiscal_year: 2019,
                category: "chi_quan_ly_hanh_chinh".into(),
                amount_vnd: 1_250_000_000,
            }),
            Event::Staffing(StaffingEvent {
                event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b13".into(),
                agency_code: "SNV".into(),
                occurred_at: 1_574_900_000_000_000,
                recorded_at: 1,
                source: "test".into(),
                kind: StaffingEventKind::HeadcountSnapshot,
                position: Position::Deputy,
                quota: Some(3),
                filled: Some(4),
                baseline_year: Some(2015),
                baseline_quota: Some(5),
                count: None,
            }),
        ];
        for event in events {
            let mut bytes = Vec::new();
            codec.encode_event(&event, &mut bytes).unwrap();
            assert_eq!(codec.decode_event(&bytes).unwrap(), event);
        }
    }

    /// Schema evolution: a writer schema that added an optional field (id 101)
    /// is read by today's reader, and today's data is read by a reader that
    /// knows the new field. Both decode.
    #[test]
    fn adding_an_optional_field_is_compatible_both_ways() {
        let v1 = include_str!("../../../schemas/avro/dossier_event.v1.r2.avsc");
        let v2 = v1.replacen(
            r#""fields": ["#,
            r#""fields": [
    {"name": "channel_note", "type": ["null", "string"], "default": null},"#,
            1,
        );
        let codec = AvroCodec::with_schemas(&[(4, EventKind::Dossier, v1), (101, EventKind::Dossier, &v2)]);

        // New writer, today's reader: the unknown field is skipped.
        let mut bytes = Vec::new();
        let newer = NewWriter { channel_note: Some("qua Zalo"), event: sample() };
        codec.encode(101, EventKind::Dossier, &newer, &mut bytes).unwrap();
        assert_eq!(codec.decode_dossier(&bytes).unwrap(), sample());

        // Today's writer, new reader: the missing optional field takes its default.
        let mut old_bytes = Vec::new();
        codec.encode_dossier(&sample(), &mut old_bytes).unwrap();
        let read: NewReader = codec.decode(EventKind::Dossier, &old_bytes).unwrap();
        assert_eq!(read.channel_note, None);
        assert_eq!(read.dossier_id, sample().dossier_id);
    }

    /// Messages written with schema 1 (before `new_due_at`) still decode, the new field
    /// absent; today's writer (schema 4) carries it.
    #[test]
    fn schema_one_messages_decode_without_the_new_appointment() {
        let codec = AvroCodec::new();
        let old_writer = AvroCodec::with_schemas(&[(
            1,
            EventKind::Dossier,
            include_str!("../../../schemas/avro/dossier_event.v1.avsc"),
        )]);
        let mut old_bytes = Vec::new();
        old_writer.encode(1, EventKind::Dossier, &OldWriter::from(&sample()), &mut old_bytes).unwrap();
        assert_eq!(&old_bytes[..5], &[0, 0, 0, 0, 1]);
        assert_eq!(codec.decode_dossier(&old_bytes).unwrap(), DossierEvent { new_due_at: None, ..sample() });
        let with_date = DossierEvent { new_due_at: Some(1_575_000_000_000_000), ..sample() };
        let mut bytes = Vec::new();
        codec.encode_dossier(&with_date, &mut bytes).unwrap();
        assert_eq!(codec.decode_dossier(&bytes).unwrap(), with_date);
    }

    /// A schema-1 writer: every field but `new_due_at`.
    #[derive(serde::Serialize)]
    struct OldWriter<'a> {
        event_id: &'a str,
        agency_code: &'a str,
        occurred_at: i64,
        recorded_at: i64,
        source: &'a str,
        dossier_id: &'a str,
        procedure_code: &'a str,
        kind: crate::event::DossierEventKind,
        channel: crate::event::Channel,
        online_level: i32,
        result_channel: Option<crate::event::Channel>,
        due_at: Option<i64>,
        legal_max_days: Option<i32>,
        fee_bearing: bool,
        digitized: bool,
    }

    impl<'a> From<&'a DossierEvent> for OldWriter<'a> {
        fn from(e: &'a DossierEvent) -> Self {
            OldWriter {
                event_id: &e.event_id,
                agency_code: &e.agency_code,
                occurred_at: e.occurred_at,
                recorded_at: e.recorded_at,
                source: &e.source,
                dossier_id: &e.dossier_id,
                procedure_code: &e.procedure_code,
                kind: e.kind,
                channel: e.channel,
                online_level: e.online_level,
                result_channel: e.result_channel,
                due_at: e.due_at,
                legal_max_days: e.legal_max_days,
                fee_bearing: e.fee_bearing,
                digitized: e.digitized,
            }
        }
    }

    /// A future writer: the new field first (as in its schema), then today's fields.
    #[derive(serde::Serialize)]
    struct NewWriter {
        channel_note: Option<&'static str>,
        #[serde(flatten)]
        event: DossierEvent,
    }

    /// A future reader that knows the new optional field.
    #[derive(serde::Deserialize)]
    struct NewReader {
        #[serde(default)]
        channel_note: Option<String>,
        dossier_id: String,
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        let codec = AvroCodec::new();
        assert!(matches!(codec.decode_dossier(&[0, 0]), Err(WireError::TooShort(2))));
        assert!(matches!(codec.decode_dossier(b"{\"json\":1}"), Err(WireError::BadMagic(b'{'))));
        assert!(matches!(codec.decode_dossier(&[0, 0, 0, 0, 99, 1]), Err(WireError::UnknownSchema(99))));
        assert!(matches!(codec.decode_dossier(&[0, 0, 0, 0, 1, 0xff]), Err(WireError::Decode { id: 1, .. })));
    }
}
