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

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_avro_fast::ser::SerializerConfig;
use serde_avro_fast::Schema;

use crate::event::DossierEvent;

pub const MAGIC_BYTE: u8 = 0;
const HEADER_LEN: usize = 5;

/// What a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Dossier,
}

/// Every schema parpulse can read: (id, kind, Avro schema JSON). Ids are never reused.
pub const SCHEMAS: &[(u32, EventKind, &str)] = &[(
    1,
    EventKind::Dossier,
    include_str!("../../../schemas/avro/dossier_event.v1.avsc"),
)];

/// The id new dossier events are written with.
pub const DOSSIER_WRITER_SCHEMA_ID: u32 = 1;

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
    pub fn encode<T: Serialize>(&self, id: u32, kind: EventKind, value: &T, out: &mut Vec<u8>) -> Result<(), WireError> {
        let schema = self.schema(id, kind)?;
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&id.to_be_bytes());
        let buffer = std::mem::take(out);
        *out = serde_avro_fast::to_datum(value, buffer, &mut SerializerConfig::new(schema))
            .map_err(|e| WireError::Encode { id, message: e.to_string() })?;
        Ok(())
    }

    /// Decodes a framed message, with the writer schema named in its header.
    pub fn decode<T: DeserializeOwned>(&self, kind: EventKind, message: &[u8]) -> Result<T, WireError> {
        let (id, datum) = split_header(message)?;
        let schema = self.schema(id, kind)?;
        serde_avro_fast::from_datum_slice(datum, schema).map_err(|e| WireError::Decode { id, message: e.to_string() })
    }

    pub fn encode_dossier(&self, event: &DossierEvent, out: &mut Vec<u8>) -> Result<(), WireError> {
        self.encode(DOSSIER_WRITER_SCHEMA_ID, EventKind::Dossier, event, out)
    }

    pub fn decode_dossier(&self, message: &[u8]) -> Result<DossierEvent, WireError> {
        self.decode(EventKind::Dossier, message)
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
        }
    }

    #[test]
    fn dossier_event_round_trips_through_the_wire_format() {
        let codec = AvroCodec::new();
        let mut bytes = Vec::new();
        codec.encode_dossier(&sample(), &mut bytes).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1]);
        assert_eq!(codec.decode_dossier(&bytes).unwrap(), sample());
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
