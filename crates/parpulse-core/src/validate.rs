//! The one validation gate every source (HTTP intake, file import, simulator)
//! passes before an event reaches Kafka. A rejected event carries a stable
//! reason code (for metrics and the dead-letter topic) and a message a person
//! can act on.

use std::time::Duration;

use crate::agency::AgencyRegistry;
use crate::event::{Channel, DossierEvent};

/// 2000-01-01T00:00:00Z in microseconds: nothing older is plausible.
pub const EARLIEST_EVENT_MICROS: i64 = 946_684_800_000_000;

/// Why an event was refused. `code()` is stable: it is a metric label and a dead-letter header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    MissingField,
    BadEventId,
    UnknownAgency,
    FutureTime,
    TooOld,
    BadOnlineLevel,
    ChannelLevelMismatch,
    MissingDeadline,
    BadDeadline,
    /// The bytes were not a decodable event (used by decoders, not by [`validate_dossier`]).
    Malformed,
}

impl RejectReason {
    pub const ALL: [RejectReason; 10] = [
        RejectReason::MissingField,
        RejectReason::BadEventId,
        RejectReason::UnknownAgency,
        RejectReason::FutureTime,
        RejectReason::TooOld,
        RejectReason::BadOnlineLevel,
        RejectReason::ChannelLevelMismatch,
        RejectReason::MissingDeadline,
        RejectReason::BadDeadline,
        RejectReason::Malformed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RejectReason::MissingField => "missing_field",
            RejectReason::BadEventId => "bad_event_id",
            RejectReason::UnknownAgency => "unknown_agency",
            RejectReason::FutureTime => "future_time",
            RejectReason::TooOld => "too_old",
            RejectReason::BadOnlineLevel => "bad_online_level",
            RejectReason::ChannelLevelMismatch => "channel_level_mismatch",
            RejectReason::MissingDeadline => "missing_deadline",
            RejectReason::BadDeadline => "bad_deadline",
            RejectReason::Malformed => "malformed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.code())]
pub struct Rejection {
    pub reason: RejectReason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

/// Tunable limits of the gate.
#[derive(Debug, Clone, Copy)]
pub struct ValidationPolicy {
    /// How far in the future an event time may be (agency clocks drift).
    pub max_clock_skew: Duration,
}

impl Default for ValidationPolicy {
    fn default() -> Self {
        Self { max_clock_skew: Duration::from_secs(300) }
    }
}

fn require(value: &str, field: &str) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::new(RejectReason::MissingField, format!("{field} is empty; it is required")));
    }
    Ok(())
}

/// Checks a dossier event against the registry and the policy, at time `now_micros`.
pub fn validate_dossier(
    event: &DossierEvent,
    registry: &AgencyRegistry,
    policy: &ValidationPolicy,
    now_micros: i64,
) -> Result<(), Rejection> {
    require(&event.event_id, "event_id")?;
    require(&event.agency_code, "agency_code")?;
    require(&event.dossier_id, "dossier_id")?;
    require(&event.procedure_code, "procedure_code")?;
    if uuid::Uuid::parse_str(&event.event_id).is_err() {
        return Err(Rejection::new(
            RejectReason::BadEventId,
            format!("event_id {:?} is not a UUID (e.g. 6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11)", event.event_id),
        ));
    }
    if registry.get(&event.agency_code).is_none() {
        return Err(Rejection::new(
            RejectReason::UnknownAgency,
            format!("agency_code {:?} is not in the agency registry", event.agency_code),
        ));
    }
    let skew = i64::try_from(policy.max_clock_skew.as_micros()).unwrap_or(i64::MAX);
    if event.occurred_at > now_micros.saturating_add(skew) {
        return Err(Rejection::new(
            RejectReason::FutureTime,
            format!(
                "occurred_at is {} s in the future (allowed clock skew {} s)",
                (event.occurred_at - now_micros) / 1_000_000,
                policy.max_clock_skew.as_secs()
            ),
        ));
    }
    if event.occurred_at < EARLIEST_EVENT_MICROS {
        return Err(Rejection::new(RejectReason::TooOld, "occurred_at is before 2000-01-01"));
    }
    if !(2..=4).contains(&event.online_level) {
        return Err(Rejection::new(
            RejectReason::BadOnlineLevel,
            format!("online_level {} is not 2, 3 or 4", event.online_level),
        ));
    }
    if event.channel == Channel::Online && event.online_level < 3 {
        return Err(Rejection::new(
            RejectReason::ChannelLevelMismatch,
            "channel is online but online_level 2 procedures cannot be submitted online",
        ));
    }
    if event.kind.needs_deadline() && event.due_at.is_none() && event.legal_max_days.is_none() {
        return Err(Rejection::new(
            RejectReason::MissingDeadline,
            format!("a {:?} event needs due_at (ngày hẹn trả) or legal_max_days", event.kind),
        ));
    }
    if event.due_at.is_some_and(|due| due < EARLIEST_EVENT_MICROS) {
        return Err(Rejection::new(RejectReason::BadDeadline, "due_at is before 2000-01-01"));
    }
    if event.legal_max_days.is_some_and(|days| days <= 0) {
        return Err(Rejection::new(RejectReason::BadDeadline, "legal_max_days must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DossierEventKind;

    const NOW: i64 = 1_700_000_000_000_000;

    fn valid() -> DossierEvent {
        DossierEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: "SNV".into(),
            occurred_at: NOW - 3_600_000_000,
            recorded_at: NOW,
            source: "test".into(),
            dossier_id: "D-1".into(),
            procedure_code: "1.001234".into(),
            kind: DossierEventKind::Received,
            channel: Channel::Online,
            online_level: 3,
            result_channel: None,
            due_at: Some(NOW + 86_400_000_000),
            legal_max_days: None,
            fee_bearing: false,
            digitized: true,
        }
    }

    fn reason_of(event: DossierEvent) -> Option<RejectReason> {
        validate_dossier(&event, &AgencyRegistry::demo(), &ValidationPolicy::default(), NOW)
            .err()
            .map(|r| r.reason)
    }

    #[test]
    fn a_well_formed_event_passes() {
        assert_eq!(reason_of(valid()), None);
    }

    #[test]
    fn empty_dossier_id_is_missing_field() {
        assert_eq!(reason_of(DossierEvent { dossier_id: " ".into(), ..valid() }), Some(RejectReason::MissingField));
    }

    #[test]
    fn non_uuid_event_id_is_refused() {
        assert_eq!(reason_of(DossierEvent { event_id: "42".into(), ..valid() }), Some(RejectReason::BadEventId));
    }

    #[test]
    fn unknown_agency_is_refused() {
        assert_eq!(reason_of(DossierEvent { agency_code: "HANOI".into(), ..valid() }), Some(RejectReason::UnknownAgency));
    }

    #[test]
    fn future_beyond_skew_is_refused_and_within_skew_passes() {
        assert_eq!(reason_of(DossierEvent { occurred_at: NOW + 60_000_000, ..valid() }), None);
        assert_eq!(reason_of(DossierEvent { occurred_at: NOW + 600_000_000, ..valid() }), Some(RejectReason::FutureTime));
    }

    #[test]
    fn before_2000_is_refused() {
        assert_eq!(reason_of(DossierEvent { occurred_at: EARLIEST_EVENT_MICROS - 1, ..valid() }), Some(RejectReason::TooOld));
    }

    #[test]
    fn online_level_out_of_range_is_refused() {
        assert_eq!(reason_of(DossierEvent { online_level: 5, ..valid() }), Some(RejectReason::BadOnlineLevel));
    }

    #[test]
    fn online_channel_at_level_two_is_refused() {
        assert_eq!(reason_of(DossierEvent { online_level: 2, ..valid() }), Some(RejectReason::ChannelLevelMismatch));
    }

    #[test]
    fn received_without_any_deadline_is_refused() {
        assert_eq!(reason_of(DossierEvent { due_at: None, ..valid() }), Some(RejectReason::MissingDeadline));
        assert_eq!(reason_of(DossierEvent { due_at: None, legal_max_days: Some(10), ..valid() }), None);
        assert_eq!(
            reason_of(DossierEvent { due_at: None, kind: DossierEventKind::Submitted, ..valid() }),
            None
        );
    }

    #[test]
    fn nonsense_deadlines_are_refused() {
        assert_eq!(reason_of(DossierEvent { due_at: Some(5), ..valid() }), Some(RejectReason::BadDeadline));
        assert_eq!(
            reason_of(DossierEvent { due_at: None, legal_max_days: Some(0), ..valid() }),
            Some(RejectReason::BadDeadline)
        );
    }
}
