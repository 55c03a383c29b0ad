//! The gate between a source and Kafka: validate, then encode (no I/O).

use std::time::Duration;

use parpulse_core::avro::AvroCodec;
use parpulse_core::validate::{validate_dossier, Rejection, ValidationPolicy};
use parpulse_core::{AgencyRegistry, DossierEvent};

/// What happens to one event.
#[derive(Debug)]
pub enum Verdict {
    /// Encoded message value, ready to produce with the agency code as key.
    Accepted { key: String, value: Vec<u8> },
    /// Refused: the reason and the event's original JSON (the dead-letter payload).
    Rejected { rejection: Rejection, original: Vec<u8> },
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

    pub fn with_clock_skew(registry: AgencyRegistry, max_clock_skew: Duration) -> Self {
        Self::new(registry, ValidationPolicy { max_clock_skew })
    }

    pub fn registry(&self) -> &AgencyRegistry {
        &self.registry
    }

    /// Judges one event at time `now_micros`.
    pub fn judge(&self, event: &DossierEvent, now_micros: i64) -> Verdict {
        let original = || serde_json::to_vec(event).expect("events serialize to JSON");
        if let Err(rejection) = validate_dossier(event, &self.registry, &self.policy, now_micros) {
            return Verdict::Rejected { rejection, original: original() };
        }
        let mut value = Vec::with_capacity(160);
        match self.codec.encode_dossier(event, &mut value) {
            Ok(()) => Verdict::Accepted { key: event.agency_code.clone(), value },
            Err(e) => Verdict::Rejected {
                rejection: Rejection::new(parpulse_core::validate::RejectReason::Malformed, e.to_string()),
                original: original(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_core::validate::RejectReason;
    use parpulse_core::{Channel, DossierEventKind};

    fn event(agency: &str) -> DossierEvent {
        DossierEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: agency.into(),
            occurred_at: 1_574_900_000_000_000,
            recorded_at: 1_574_900_000_000_000,
            source: "test".into(),
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
        }
    }

    #[test]
    fn accepted_events_are_keyed_by_agency_and_decode_back() {
        let gate = Gate::new(AgencyRegistry::demo(), ValidationPolicy::default());
        match gate.judge(&event("SNV"), 1_600_000_000_000_000) {
            Verdict::Accepted { key, value } => {
                assert_eq!(key, "SNV");
                assert_eq!(AvroCodec::new().decode_dossier(&value).unwrap(), event("SNV"));
            }
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    #[test]
    fn rejected_events_keep_their_original_json_and_reason() {
        let gate = Gate::new(AgencyRegistry::demo(), ValidationPolicy::default());
        match gate.judge(&event("NOWHERE"), 1_600_000_000_000_000) {
            Verdict::Rejected { rejection, original } => {
                assert_eq!(rejection.reason, RejectReason::UnknownAgency);
                let back: DossierEvent = serde_json::from_slice(&original).unwrap();
                assert_eq!(back, event("NOWHERE"));
            }
            other => panic!("expected rejection, got {other:?}"),
        }
    }
}
