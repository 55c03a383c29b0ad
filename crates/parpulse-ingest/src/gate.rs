//! The gate between a source and Kafka: stamp, validate, encode. No I/O.
//!
//! Every source (HTTP intake, file import, simulator) hands its events here, so
//! the rules are the same whatever the door. The result is a list of
//! [`Outgoing`] records: accepted events for their topic, rejected input for the
//! dead-letter topic with its reason.

use parpulse_core::avro::{AvroCodec, EventKind};
use parpulse_core::validate::{validate_event, RejectReason, Rejection, ValidationPolicy};
use parpulse_core::{AgencyRegistry, Event};

/// One record to produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// An accepted event: Avro-encoded, keyed by its agency code.
    Event { kind: EventKind, key: String, value: Vec<u8> },
    /// Rejected input, kept with its original bytes and the reason.
    DeadLetter { key: String, original: Vec<u8>, rejection: Rejection, source: String },
}

impl Outgoing {
    pub fn dead_letter(
        key: impl Into<String>,
        original: impl Into<Vec<u8>>,
        rejection: Rejection,
        source: &str,
    ) -> Self {
        Outgoing::DeadLetter { key: key.into(), original: original.into(), rejection, source: source.to_owned() }
    }

    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Outgoing::Event { .. } => None,
            Outgoing::DeadLetter { rejection, .. } => Some(rejection),
        }
    }
}

pub struct Gate {
    registry: AgencyRegistry,
    policy: ValidationPolicy,
    codec: AvroCodec,
}

impl Gate {
    pub fn new(registry: AgencyRegistry, policy: ValidationPolicy) -> Self {
        Self { registry, policy, codec: AvroCodec::new() }
    }

    pub fn registry(&self) -> &AgencyRegistry {
        &self.registry
    }

    /// Stamps `event` as admitted by `source` at `now_micros`, validates and encodes it.
    /// `original` is what the source received (kept in the dead-letter topic if refused).
    pub fn judge(&self, mut event: Event, original: &[u8], source: &str, now_micros: i64) -> Outgoing {
        event.stamp(source, now_micros);
        let key = event.agency_code().to_owned();
        if let Err(rejection) = validate_event(&event, &self.registry, &self.policy, now_micros) {
            return Outgoing::dead_letter(key, original, rejection, source);
        }
        let mut value = Vec::with_capacity(192);
        match self.codec.encode_event(&event, &mut value) {
            Ok(()) => Outgoing::Event { kind: event.kind(), key, value },
            Err(e) => {
                Outgoing::dead_letter(key, original, Rejection::new(RejectReason::Malformed, e.to_string()), source)
            }
        }
    }

    /// Judges an event that exists only as a value (the simulator): its JSON is the original.
    pub fn judge_value(&self, event: Event, source: &str, now_micros: i64) -> Outgoing {
        let original = serde_json::to_vec(&event).expect("events serialize to JSON");
        self.judge(event, &original, source, now_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_core::{Channel, DossierEvent, DossierEventKind};

    fn event(agency: &str) -> Event {
        Event::Dossier(DossierEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: agency.into(),
            occurred_at: 1_574_900_000_000_000,
            recorded_at: 0,
            source: String::new(),
            dossier_id: "D-1".into(),
            procedure_code: "1.000001".into(),
            kind: DossierEventKind::Submitted,
            channel: Channel::Online,
            online_level: 4,
            result_channel: None,
            due_at: None,
            legal_max_days: None,
            fee_bearing: false,
            digitized: false,
            new_due_at: None,
        })
    }

    const NOW: i64 = 1_600_000_000_000_000;

    #[test]
    fn accepted_events_are_stamped_keyed_by_agency_and_decode_back() {
        let gate = Gate::new(AgencyRegistry::demo(), ValidationPolicy::default());
        match gate.judge_value(event("SNV"), "http", NOW) {
            Outgoing::Event { kind, key, value } => {
                assert_eq!((kind, key.as_str()), (EventKind::Dossier, "SNV"));
                let decoded = AvroCodec::new().decode_event(&value).unwrap();
                let mut expected = event("SNV");
                expected.stamp("http", NOW);
                assert_eq!(decoded, expected);
            }
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    #[test]
    fn rejected_events_keep_their_original_bytes_and_reason() {
        let gate = Gate::new(AgencyRegistry::demo(), ValidationPolicy::default());
        match gate.judge(event("NOWHERE"), b"{original}", "file", NOW) {
            Outgoing::DeadLetter { key, original, rejection, source } => {
                assert_eq!(rejection.reason, RejectReason::UnknownAgency);
                assert_eq!(
                    (key.as_str(), original.as_slice(), source.as_str()),
                    ("NOWHERE", &b"{original}"[..], "file")
                );
            }
            other => panic!("expected rejection, got {other:?}"),
        }
    }
}
