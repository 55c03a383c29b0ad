//! Splitting a request body into events (pure).
//!
//! Accepted bodies:
//! - `application/json`: one event object, an array of events, or `{"events": [...]}`;
//! - `application/x-ndjson` (or `application/ndjson`, `application/jsonl`): one event per line.
//!
//! Each event is a JSON object with `"type"` (`dossier`, `budget`, `staffing`) and the
//! fields of its Avro schema (times in UTC microseconds). A malformed event is
//! refused on its own; the others in the batch go on.

use parpulse_core::validate::{RejectReason, Rejection};
use parpulse_core::Event;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Ndjson,
}

/// The body format named by a Content-Type header; JSON when absent.
pub fn format_of(content_type: Option<&str>) -> Option<BodyFormat> {
    let Some(value) = content_type else { return Some(BodyFormat::Json) };
    let media = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => Some(BodyFormat::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" => {
            Some(BodyFormat::Ndjson)
        }
        _ => None,
    }
}

/// One event's text, with its position in the body (0-based; NDJSON: line number - 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    pub index: usize,
    pub raw: &'a str,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    events: Option<Vec<&'a RawValue>>,
}

fn malformed(message: impl Into<String>) -> Rejection {
    Rejection::new(RejectReason::Malformed, message)
}

/// Splits a whole body into items. An error refuses the whole body.
pub fn split(format: BodyFormat, text: &str) -> Result<Vec<Item<'_>>, Rejection> {
    let items = match format {
        BodyFormat::Ndjson => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, raw)| Item { index, raw })
            .collect(),
        BodyFormat::Json => {
            let trimmed = text.trim_start();
            if trimmed.starts_with('[') {
                let array: Vec<&RawValue> = serde_json::from_str(text)
                    .map_err(|e| malformed(format!("body is not a JSON array of events: {e}")))?;
                array.into_iter().enumerate().map(|(index, raw)| Item { index, raw: raw.get() }).collect()
            } else if trimmed.starts_with('{') {
                let envelope: Envelope<'_> =
                    serde_json::from_str(text).map_err(|e| malformed(format!("body is not a JSON object: {e}")))?;
                match envelope.events {
                    Some(events) => {
                        events.into_iter().enumerate().map(|(index, raw)| Item { index, raw: raw.get() }).collect()
                    }
                    None => vec![Item { index: 0, raw: text.trim() }],
                }
            } else {
                return Err(malformed("body is not JSON: expected an event object, an array, or {\"events\": [...]}"));
            }
        }
    };
    if items.is_empty() {
        return Err(malformed("body holds no events"));
    }
    Ok(items)
}

/// Parses one event; the error says what is wrong with it.
pub fn parse_event(raw: &str) -> Result<Event, Rejection> {
    serde_json::from_str(raw).map_err(|e| malformed(format!("not a valid event: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_map_to_formats() {
        assert_eq!(format_of(None), Some(BodyFormat::Json));
        assert_eq!(format_of(Some("application/json; charset=utf-8")), Some(BodyFormat::Json));
        assert_eq!(format_of(Some("application/x-ndjson")), Some(BodyFormat::Ndjson));
        assert_eq!(format_of(Some("text/csv")), None);
    }

    #[test]
    fn json_bodies_may_be_one_event_an_array_or_an_envelope() {
        assert_eq!(split(BodyFormat::Json, r#"{"type":"dossier"}"#).unwrap().len(), 1);
        assert_eq!(split(BodyFormat::Json, r#"[{"a":1}, {"b":2}]"#).unwrap()[1].raw, r#"{"b":2}"#);
        assert_eq!(split(BodyFormat::Json, r#"{"events": [{"a":1}, {"b":2}, 3]}"#).unwrap().len(), 3);
    }

    #[test]
    fn ndjson_keeps_line_positions_and_skips_blank_lines() {
        let items = split(BodyFormat::Ndjson, "{\"a\":1}\n\n{oops\n").unwrap();
        assert_eq!(items.iter().map(|i| i.index).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(items[1].raw, "{oops");
    }

    #[test]
    fn unparseable_or_empty_bodies_are_refused_whole() {
        for body in ["", "[", "[]", "hello", "{\"events\": 5}", "   "] {
            assert!(split(BodyFormat::Json, body).is_err(), "{body:?}");
        }
        assert!(split(BodyFormat::Ndjson, "\n\n").is_err());
    }

    #[test]
    fn a_bad_event_says_what_is_wrong() {
        let err = parse_event(r#"{"type":"dossier","event_id":5}"#).unwrap_err();
        assert_eq!(err.reason, RejectReason::Malformed);
        assert!(err.message.contains("invalid type"), "{}", err.message);
        assert!(parse_event(r#"{"type":"weather"}"#).unwrap_err().message.contains("unknown variant"));
    }
}
