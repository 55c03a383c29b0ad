//! The one validation gate every source (HTTP intake, file import, simulator)
//! passes before an event reaches Kafka. A rejected event carries a stable
//! reason code (for metrics and the dead-letter topic) and a message a person
//! can act on.

use std::time::Duration;

use crate::agency::AgencyRegistry;
use crate::event::{BudgetEvent, Channel, DossierEvent, Event, StaffingEvent, StaffingEventKind};

/// 2000-01-01T00:00:00Z in microseconds: nothing older is plausible.
pub const EARLIEST_EVENT_MICROS: i64 = 946_684_800_000_000;
/// 2100-01-01T00:00:00Z in microseconds: no appointment date is later (and every
/// instant before it is a valid ClickHouse `Date`).
pub const LATEST_DEADLINE_MICROS: i64 = 4_102_444_800_000_000;
/// The longest legal processing time accepted, in days (ten years).
pub const MAX_LEGAL_DAYS: i32 = 3_650;
/// The longest identifier or code accepted (dossier id, procedure code, budget category),
/// in bytes: national one-stop ids are under 40; an event must also fit a Kafka message.
pub const MAX_FIELD_BYTES: usize = 256;

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
    NegativeAmount,
    BadFiscalYear,
    BadHeadcount,
    /// Not valid JSON, or JSON that is not an event of a known type with the right fields.
    Malformed,
    /// An identifier or code longer than [`MAX_FIELD_BYTES`].
    FieldTooLong,
    /// A Kafka message that is not an event in parpulse's Avro wire format (bad framing,
    /// unknown schema id, a datum that does not decode): set by the aggregator.
    Undecodable,
    /// An event of one kind in another kind's topic (a dossier event in the budget
    /// topic, ...): set by the aggregator.
    WrongTopic,
    /// The body is not UTF-8.
    InvalidUtf8,
    /// The caller's token does not cover the event's unit.
    Forbidden,
    /// Older than the aggregator's allowed lateness behind the newest event of its
    /// partition: the period it belongs to is closed (set by the aggregator, not the gate).
    TooLate,
}

impl RejectReason {
    pub const ALL: [RejectReason; 19] = [
        RejectReason::MissingField,
        RejectReason::BadEventId,
        RejectReason::UnknownAgency,
        RejectReason::FutureTime,
        RejectReason::TooOld,
        RejectReason::BadOnlineLevel,
        RejectReason::ChannelLevelMismatch,
        RejectReason::MissingDeadline,
        RejectReason::BadDeadline,
        RejectReason::NegativeAmount,
        RejectReason::BadFiscalYear,
        RejectReason::BadHeadcount,
        RejectReason::Malformed,
        RejectReason::FieldTooLong,
        RejectReason::Undecodable,
        RejectReason::WrongTopic,
        RejectReason::InvalidUtf8,
        RejectReason::Forbidden,
        RejectReason::TooLate,
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
            RejectReason::NegativeAmount => "negative_amount",
            RejectReason::BadFiscalYear => "bad_fiscal_year",
            RejectReason::BadHeadcount => "bad_headcount",
            RejectReason::Malformed => "malformed",
            RejectReason::FieldTooLong => "field_too_long",
            RejectReason::Undecodable => "undecodable",
            RejectReason::WrongTopic => "wrong_topic",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::Forbidden => "forbidden",
            RejectReason::TooLate => "too_late",
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
    if value.len() > MAX_FIELD_BYTES {
        return Err(Rejection::new(
            RejectReason::FieldTooLong,
            format!("{field} is {} bytes long; at most {MAX_FIELD_BYTES} are accepted", value.len()),
        ));
    }
    Ok(())
}

/// Checks any event against the registry and the policy, at time `now_micros`.
pub fn validate_event<S: AsRef<str>>(
    event: &Event<S>,
    registry: &AgencyRegistry,
    policy: &ValidationPolicy,
    now_micros: i64,
) -> Result<(), Rejection> {
    match event {
        Event::Dossier(e) => validate_dossier(e, registry, policy, now_micros),
        Event::Budget(e) => validate_budget(e, registry, policy, now_micros),
        Event::Staffing(e) => validate_staffing(e, registry, policy, now_micros),
    }
}

/// The rules every kind of event shares: ids, the unit, the event time.
fn validate_envelope(
    event_id: &str,
    agency_code: &str,
    occurred_at: i64,
    registry: &AgencyRegistry,
    policy: &ValidationPolicy,
    now_micros: i64,
) -> Result<(), Rejection> {
    require(event_id, "event_id")?;
    require(agency_code, "agency_code")?;
    if uuid::Uuid::parse_str(event_id).is_err() {
        return Err(Rejection::new(
            RejectReason::BadEventId,
            format!("event_id {event_id:?} is not a UUID (e.g. 6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11)"),
        ));
    }
    if registry.get(agency_code).is_none() {
        return Err(Rejection::new(
            RejectReason::UnknownAgency,
            format!("agency_code {agency_code:?} is not in the agency registry"),
        ));
    }
    let skew = i64::try_from(policy.max_clock_skew.as_micros()).unwrap_or(i64::MAX);
    if occurred_at > now_micros.saturating_add(skew) {
        return Err(Rejection::new(
            RejectReason::FutureTime,
            format!(
                "occurred_at is {} s in the future (allowed clock skew {} s)",
                occurred_at.saturating_sub(now_micros) / 1_000_000,
                policy.max_clock_skew.as_secs()
            ),
        ));
    }
    if occurred_at < EARLIEST_EVENT_MICROS {
        return Err(Rejection::new(RejectReason::TooOld, "occurred_at is before 2000-01-01"));
    }
    if occurred_at >= LATEST_DEADLINE_MICROS {
        // Only reachable with a clock (or a Kafka timestamp) past 2100.
        return Err(Rejection::new(RejectReason::FutureTime, "occurred_at is after 2099-12-31"));
    }
    Ok(())
}

/// Checks a dossier event against the registry and the policy, at time `now_micros`.
pub fn validate_dossier<S: AsRef<str>>(
    event: &DossierEvent<S>,
    registry: &AgencyRegistry,
    policy: &ValidationPolicy,
    now_micros: i64,
) -> Result<(), Rejection> {
    require(event.dossier_id.as_ref(), "dossier_id")?;
    require(event.procedure_code.as_ref(), "procedure_code")?;
    validate_envelope(
        event.event_id.as_ref(),
        event.agency_code.as_ref(),
        event.occurred_at,
        registry,
        policy,
        now_micros,
    )?;
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
    if event.due_at.is_some_and(|due| due >= LATEST_DEADLINE_MICROS) {
        return Err(Rejection::new(RejectReason::BadDeadline, "due_at is after 2099-12-31"));
    }
    if event.kind == crate::event::DossierEventKind::Received && event.due_at.is_some_and(|due| due < event.occurred_at)
    {
        return Err(Rejection::new(
            RejectReason::BadDeadline,
            "due_at (ngày hẹn trả) is before the reception it is set at",
        ));
    }
    if event.new_due_at.is_some_and(|due| !(EARLIEST_EVENT_MICROS..LATEST_DEADLINE_MICROS).contains(&due)) {
        return Err(Rejection::new(RejectReason::BadDeadline, "new_due_at is not between 2000-01-01 and 2099-12-31"));
    }
    if event.legal_max_days.is_some_and(|days| !(1..=MAX_LEGAL_DAYS).contains(&days)) {
        return Err(Rejection::new(
            RejectReason::BadDeadline,
            format!("legal_max_days must be between 1 and {MAX_LEGAL_DAYS}"),
        ));
    }
    Ok(())
}

fn validate_fiscal_year(year: i32, occurred_at: i64) -> Result<(), Rejection> {
    let event_year = crate::time::LocalDay::of_micros(occurred_at).year();
    if !(2000..=2100).contains(&year) || (year - event_year).abs() > 1 {
        return Err(Rejection::new(
            RejectReason::BadFiscalYear,
            format!("fiscal_year {year} is not within a year of the event's year {event_year}"),
        ));
    }
    Ok(())
}

/// Checks a budget event: amounts are whole VND and never negative.
pub fn validate_budget(
    event: &BudgetEvent,
    registry: &AgencyRegistry,
    policy: &ValidationPolicy,
    now_micros: i64,
) -> Result<(), Rejection> {
    require(&event.category, "category")?;
    validate_envelope(&event.event_id, &event.agency_code, event.occurred_at, registry, policy, now_micros)?;
    if event.amount_vnd < 0 {
        return Err(Rejection::new(
            RejectReason::NegativeAmount,
            format!(
                "amount_vnd {} is negative; book a reversal as its own kind, not a negative amount",
                event.amount_vnd
            ),
        ));
    }
    validate_fiscal_year(event.fiscal_year, event.occurred_at)
}

/// Checks a staffing event: snapshots carry quota and filled, changes carry a count.
pub fn validate_staffing(
    event: &StaffingEvent,
    registry: &AgencyRegistry,
    policy: &ValidationPolicy,
    now_micros: i64,
) -> Result<(), Rejection> {
    validate_envelope(&event.event_id, &event.agency_code, event.occurred_at, registry, policy, now_micros)?;
    let bad = |message: String| Err(Rejection::new(RejectReason::BadHeadcount, message));
    match event.kind {
        StaffingEventKind::HeadcountSnapshot => {
            let (Some(quota), Some(filled)) = (event.quota, event.filled) else {
                return bad("a headcount_snapshot needs quota and filled".into());
            };
            if quota < 0 || filled < 0 {
                return bad(format!("quota {quota} and filled {filled} must not be negative"));
            }
            if event.baseline_quota.is_some_and(|q| q < 0) {
                return bad("baseline_quota must not be negative".into());
            }
            if event.baseline_year.is_some_and(|y| !(2000..=2100).contains(&y)) {
                return bad("baseline_year must be between 2000 and 2100".into());
            }
        }
        StaffingEventKind::Hired | StaffingEventKind::Departed => {
            if event.count.is_none_or(|c| c < 1) {
                return bad(format!("a {:?} event needs count >= 1", event.kind));
            }
        }
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
            new_due_at: None,
        }
    }

    fn reason_of(event: DossierEvent) -> Option<RejectReason> {
        validate_dossier(&event, &AgencyRegistry::demo(), &ValidationPolicy::default(), NOW).err().map(|r| r.reason)
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
    fn identifiers_longer_than_the_limit_are_refused() {
        let long = "D".repeat(MAX_FIELD_BYTES + 1);
        assert_eq!(reason_of(DossierEvent { dossier_id: long.clone(), ..valid() }), Some(RejectReason::FieldTooLong));
        assert_eq!(reason_of(DossierEvent { procedure_code: long, ..valid() }), Some(RejectReason::FieldTooLong));
        assert_eq!(reason_of(DossierEvent { dossier_id: "D".repeat(MAX_FIELD_BYTES), ..valid() }), None);
    }

    #[test]
    fn non_uuid_event_id_is_refused() {
        assert_eq!(reason_of(DossierEvent { event_id: "42".into(), ..valid() }), Some(RejectReason::BadEventId));
    }

    #[test]
    fn unknown_agency_is_refused() {
        assert_eq!(
            reason_of(DossierEvent { agency_code: "HANOI".into(), ..valid() }),
            Some(RejectReason::UnknownAgency)
        );
    }

    #[test]
    fn future_beyond_skew_is_refused_and_within_skew_passes() {
        assert_eq!(reason_of(DossierEvent { occurred_at: NOW + 60_000_000, ..valid() }), None);
        assert_eq!(
            reason_of(DossierEvent { occurred_at: NOW + 600_000_000, ..valid() }),
            Some(RejectReason::FutureTime)
        );
    }

    #[test]
    fn before_2000_is_refused() {
        assert_eq!(
            reason_of(DossierEvent { occurred_at: EARLIEST_EVENT_MICROS - 1, ..valid() }),
            Some(RejectReason::TooOld)
        );
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
        assert_eq!(reason_of(DossierEvent { due_at: None, kind: DossierEventKind::Submitted, ..valid() }), None);
    }

    #[test]
    fn nonsense_deadlines_are_refused() {
        assert_eq!(reason_of(DossierEvent { due_at: Some(5), ..valid() }), Some(RejectReason::BadDeadline));
        // An appointment date before the reception itself (rule d, docs/KPIS.md).
        let received = valid();
        assert_eq!(received.kind, DossierEventKind::Received);
        let before = DossierEvent { due_at: Some(received.occurred_at - 1), ..received.clone() };
        assert_eq!(reason_of(before.clone()), Some(RejectReason::BadDeadline));
        assert_eq!(reason_of(DossierEvent { due_at: Some(received.occurred_at), ..received.clone() }), None);
        // Other kinds may carry an earlier appointment date (they are not where it is set).
        assert_eq!(reason_of(DossierEvent { kind: DossierEventKind::Processed, ..before }), None);
        assert_eq!(reason_of(DossierEvent { new_due_at: Some(5), ..received }), Some(RejectReason::BadDeadline));
        assert_eq!(
            reason_of(DossierEvent { due_at: None, legal_max_days: Some(0), ..valid() }),
            Some(RejectReason::BadDeadline)
        );
    }

    fn budget(amount_vnd: i64, fiscal_year: i32) -> Event {
        Event::Budget(BudgetEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: "STC".into(),
            occurred_at: NOW - 1,
            recorded_at: 0,
            source: String::new(),
            kind: crate::event::BudgetEventKind::Allocated,
            fiscal_year,
            category: "chi_quan_ly_hanh_chinh".into(),
            amount_vnd,
        })
    }

    fn staffing(kind: StaffingEventKind, quota: Option<i32>, filled: Option<i32>, count: Option<i32>) -> Event {
        Event::Staffing(StaffingEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: "SNV".into(),
            occurred_at: NOW - 1,
            recorded_at: 0,
            source: String::new(),
            kind,
            position: crate::event::Position::Staff,
            quota,
            filled,
            baseline_year: Some(2015),
            baseline_quota: Some(60),
            count,
        })
    }

    fn reason_of_event(event: Event) -> Option<RejectReason> {
        validate_event(&event, &AgencyRegistry::demo(), &ValidationPolicy::default(), NOW).err().map(|r| r.reason)
    }

    #[test]
    fn budget_amounts_are_whole_vnd_and_never_negative() {
        assert_eq!(reason_of_event(budget(0, 2023)), None);
        assert_eq!(reason_of_event(budget(-1, 2023)), Some(RejectReason::NegativeAmount));
    }

    #[test]
    fn budget_fiscal_year_must_match_the_event_time() {
        // NOW is in November 2023.
        assert_eq!(reason_of_event(budget(5, 2024)), None);
        assert_eq!(reason_of_event(budget(5, 2019)), Some(RejectReason::BadFiscalYear));
    }

    #[test]
    fn staffing_snapshots_need_quota_and_filled() {
        let snapshot = StaffingEventKind::HeadcountSnapshot;
        assert_eq!(reason_of_event(staffing(snapshot, Some(50), Some(48), None)), None);
        assert_eq!(reason_of_event(staffing(snapshot, None, Some(48), None)), Some(RejectReason::BadHeadcount));
        assert_eq!(reason_of_event(staffing(snapshot, Some(-1), Some(0), None)), Some(RejectReason::BadHeadcount));
    }

    #[test]
    fn staffing_changes_need_a_positive_count() {
        assert_eq!(reason_of_event(staffing(StaffingEventKind::Hired, None, None, Some(2))), None);
        assert_eq!(
            reason_of_event(staffing(StaffingEventKind::Departed, None, None, Some(0))),
            Some(RejectReason::BadHeadcount)
        );
    }

    #[test]
    fn every_kind_shares_the_envelope_rules() {
        let Event::Budget(mut e) = budget(5, 2023) else { unreachable!() };
        e.agency_code = "NOWHERE".into();
        assert_eq!(reason_of_event(Event::Budget(e)), Some(RejectReason::UnknownAgency));
    }

    #[test]
    fn reason_codes_are_unique() {
        let mut codes: Vec<_> = RejectReason::ALL.iter().map(|r| r.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), RejectReason::ALL.len());
    }

    #[test]
    fn the_limits_themselves_are_allowed_one_microsecond_past_them_is_not() {
        let skew = 300_000_000;
        let at = |occurred_at| DossierEvent { occurred_at, due_at: Some(occurred_at), ..valid() };
        assert_eq!(reason_of(at(NOW + skew)), None, "exactly the allowed clock skew ahead");
        assert_eq!(reason_of(at(NOW + skew + 1)), Some(RejectReason::FutureTime));
        assert_eq!(reason_of(at(EARLIEST_EVENT_MICROS)), None, "2000-01-01 00:00 UTC itself");
        assert_eq!(reason_of(at(EARLIEST_EVENT_MICROS - 1)), Some(RejectReason::TooOld));
    }

    #[test]
    fn an_appointment_at_the_reception_instant_is_allowed_one_before_it_is_not() {
        let received = valid().occurred_at;
        assert_eq!(reason_of(DossierEvent { due_at: Some(received), ..valid() }), None);
        assert_eq!(reason_of(DossierEvent { due_at: Some(received - 1), ..valid() }), Some(RejectReason::BadDeadline));
    }

    #[test]
    fn zero_headcounts_and_a_count_of_one_are_allowed_negatives_are_not() {
        let snapshot = StaffingEventKind::HeadcountSnapshot;
        let with_baseline = |quota, filled, baseline: i32| {
            let Event::Staffing(mut e) = staffing(snapshot, Some(quota), Some(filled), None) else { unreachable!() };
            e.baseline_quota = Some(baseline);
            reason_of_event(Event::Staffing(e))
        };
        assert_eq!(with_baseline(0, 0, 0), None, "a unit with no positions yet");
        assert_eq!(with_baseline(5, -1, 60), Some(RejectReason::BadHeadcount));
        assert_eq!(with_baseline(5, 3, -1), Some(RejectReason::BadHeadcount));
        assert_eq!(reason_of_event(staffing(StaffingEventKind::Hired, None, None, Some(1))), None);
    }
}
