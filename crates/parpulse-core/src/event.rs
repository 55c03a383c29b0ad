//! Event types shared by every part of the pipeline.
//!
//! The field names are the Avro field names (`schemas/avro/`) and the JSON names
//! accepted by the ingestors; times are UTC microseconds since the Unix epoch.

use serde::{Deserialize, Serialize};

/// A dossier lifecycle step (states of the national one-stop sync standard, plus
/// the apology letter and online payment that the KPIs need).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DossierEventKind {
    Submitted,
    Received,
    Refused,
    InProcess,
    SupplementRequested,
    SupplementReceived,
    AwaitingPayment,
    Withdrawn,
    Stopped,
    Processed,
    ResultReturned,
    ApologyIssued,
    PaidOnline,
}

impl DossierEventKind {
    /// Every kind, in lifecycle order.
    pub const ALL: [DossierEventKind; 13] = [
        DossierEventKind::Submitted,
        DossierEventKind::Received,
        DossierEventKind::Refused,
        DossierEventKind::InProcess,
        DossierEventKind::SupplementRequested,
        DossierEventKind::SupplementReceived,
        DossierEventKind::AwaitingPayment,
        DossierEventKind::Withdrawn,
        DossierEventKind::Stopped,
        DossierEventKind::Processed,
        DossierEventKind::ResultReturned,
        DossierEventKind::ApologyIssued,
        DossierEventKind::PaidOnline,
    ];

    /// The wire name (as in the Avro enum and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            DossierEventKind::Submitted => "submitted",
            DossierEventKind::Received => "received",
            DossierEventKind::Refused => "refused",
            DossierEventKind::InProcess => "in_process",
            DossierEventKind::SupplementRequested => "supplement_requested",
            DossierEventKind::SupplementReceived => "supplement_received",
            DossierEventKind::AwaitingPayment => "awaiting_payment",
            DossierEventKind::Withdrawn => "withdrawn",
            DossierEventKind::Stopped => "stopped",
            DossierEventKind::Processed => "processed",
            DossierEventKind::ResultReturned => "result_returned",
            DossierEventKind::ApologyIssued => "apology_issued",
            DossierEventKind::PaidOnline => "paid_online",
        }
    }

    /// From reception on, a dossier has an appointment date or a legal maximum.
    pub fn needs_deadline(self) -> bool {
        !matches!(self, DossierEventKind::Submitted | DossierEventKind::Refused)
    }
}

/// How a dossier comes in or a result goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    InPerson,
    Online,
    Postal,
}

impl Channel {
    /// The wire name (as in the Avro enum and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::InPerson => "in_person",
            Channel::Online => "online",
            Channel::Postal => "postal",
        }
    }

    /// The national one-stop sync standard's code: 1 in person, 2 online, 3 postal.
    pub fn national_code(self) -> u8 {
        match self {
            Channel::InPerson => 1,
            Channel::Online => 2,
            Channel::Postal => 3,
        }
    }

    /// The channel of a national code; None for any other number (0: unknown).
    pub fn of_national_code(code: u8) -> Option<Channel> {
        match code {
            1 => Some(Channel::InPerson),
            2 => Some(Channel::Online),
            3 => Some(Channel::Postal),
            _ => None,
        }
    }
}

/// A dossier event. `S` is the string type: owned (`String`, the default) wherever
/// events are kept, borrowed (`&str`, [`DossierEventRef`]) where the aggregator reads
/// them straight out of a Kafka message buffer without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierEvent<S = String> {
    pub event_id: S,
    pub agency_code: S,
    /// Event time, UTC microseconds.
    pub occurred_at: i64,
    /// Ingestion time, UTC microseconds (set by the ingestor).
    #[serde(default)]
    pub recorded_at: i64,
    /// The ingestor that admitted the event (set by the ingestor).
    #[serde(default)]
    pub source: S,
    pub dossier_id: S,
    pub procedure_code: S,
    pub kind: DossierEventKind,
    pub channel: Channel,
    /// 2 = forms only, 3 = partial online, 4 = full online.
    pub online_level: i32,
    #[serde(default)]
    pub result_channel: Option<Channel>,
    /// Appointment date (ngày hẹn trả), UTC microseconds.
    #[serde(default)]
    pub due_at: Option<i64>,
    #[serde(default)]
    pub legal_max_days: Option<i32>,
    pub fee_bearing: bool,
    pub digitized: bool,
    /// On an `apology_issued` event: the new appointment date the letter gives
    /// (ngày hẹn trả mới), UTC microseconds. Shown, never used to judge lateness.
    /// Schema 4 on; absent (None) in schema-1 messages.
    #[serde(default)]
    pub new_due_at: Option<i64>,
}

/// A dossier event borrowing its strings from the buffer it was decoded from.
pub type DossierEventRef<'a> = DossierEvent<&'a str>;

/// A budget movement (kinh phí hành chính).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetEventKind {
    Allocated,
    Committed,
    Disbursed,
    Saved,
    Disclosed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetEvent {
    pub event_id: String,
    pub agency_code: String,
    pub occurred_at: i64,
    #[serde(default)]
    pub recorded_at: i64,
    #[serde(default)]
    pub source: String,
    pub kind: BudgetEventKind,
    pub fiscal_year: i32,
    pub category: String,
    /// Whole đồng; integers only, never floats.
    pub amount_vnd: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffingEventKind {
    HeadcountSnapshot,
    Hired,
    Departed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    Head,
    Deputy,
    Staff,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffingEvent {
    pub event_id: String,
    pub agency_code: String,
    pub occurred_at: i64,
    #[serde(default)]
    pub recorded_at: i64,
    #[serde(default)]
    pub source: String,
    pub kind: StaffingEventKind,
    pub position: Position,
    #[serde(default)]
    pub quota: Option<i32>,
    #[serde(default)]
    pub filled: Option<i32>,
    #[serde(default)]
    pub baseline_year: Option<i32>,
    #[serde(default)]
    pub baseline_quota: Option<i32>,
    #[serde(default)]
    pub count: Option<i32>,
}

/// Any event, as agencies submit it in JSON: `{"type": "dossier", ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", bound(deserialize = "S: Deserialize<'de> + Default"))]
pub enum Event<S = String> {
    Dossier(DossierEvent<S>),
    Budget(BudgetEvent),
    Staffing(StaffingEvent),
}

/// An event whose dossier variant borrows its strings (budget and staffing events are
/// rare and stay owned).
pub type EventRef<'a> = Event<&'a str>;

impl<S: AsRef<str>> Event<S> {
    pub fn event_id(&self) -> &str {
        match self {
            Event::Dossier(e) => e.event_id.as_ref(),
            Event::Budget(e) => &e.event_id,
            Event::Staffing(e) => &e.event_id,
        }
    }

    pub fn agency_code(&self) -> &str {
        match self {
            Event::Dossier(e) => e.agency_code.as_ref(),
            Event::Budget(e) => &e.agency_code,
            Event::Staffing(e) => &e.agency_code,
        }
    }

    pub fn occurred_at(&self) -> i64 {
        match self {
            Event::Dossier(e) => e.occurred_at,
            Event::Budget(e) => e.occurred_at,
            Event::Staffing(e) => e.occurred_at,
        }
    }

    /// When the ingestor admitted it (UTC micros; 0 if no ingestor stamped it).
    pub fn recorded_at(&self) -> i64 {
        match self {
            Event::Dossier(e) => e.recorded_at,
            Event::Budget(e) => e.recorded_at,
            Event::Staffing(e) => e.recorded_at,
        }
    }
}

impl Event {
    /// Stamps the ingestor's name and acceptance time (never trusted from the client).
    pub fn stamp(&mut self, source: &str, recorded_at: i64) {
        let (s, r) = match self {
            Event::Dossier(e) => (&mut e.source, &mut e.recorded_at),
            Event::Budget(e) => (&mut e.source, &mut e.recorded_at),
            Event::Staffing(e) => (&mut e.source, &mut e.recorded_at),
        };
        source.clone_into(s);
        *r = recorded_at;
    }
}

/// Namespace of derived event ids (UUIDv5), fixed forever: changing it would make
/// re-imports look like new events.
const DERIVED_ID_NAMESPACE: uuid::Uuid = uuid::uuid!("5b0e2c9a-4f3d-4c1e-9d6a-1f2e3d4c5b6a");

/// A stable event id for input that carries none (file rows): a UUIDv5 of the
/// event's content without its id and ingestion stamps, so importing the same
/// row twice yields the same id, and downstream deduplication sees a duplicate.
pub fn derive_event_id(event: &Event) -> String {
    let mut canonical = event.clone();
    match &mut canonical {
        Event::Dossier(e) => e.event_id.clear(),
        Event::Budget(e) => e.event_id.clear(),
        Event::Staffing(e) => e.event_id.clear(),
    }
    canonical.stamp("", 0);
    let text = serde_json::to_string(&canonical).expect("events serialize to JSON");
    uuid::Uuid::new_v5(&DERIVED_ID_NAMESPACE, text.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Event {
        Event::Budget(BudgetEvent {
            event_id: String::new(),
            agency_code: "STC".into(),
            occurred_at: 1_574_900_000_000_000,
            recorded_at: 0,
            source: String::new(),
            kind: BudgetEventKind::Disbursed,
            fiscal_year: 2019,
            category: "chi_quan_ly_hanh_chinh".into(),
            amount_vnd: 10,
        })
    }

    #[test]
    fn derived_ids_ignore_ingestion_stamps_but_not_content() {
        let mut stamped = budget();
        stamped.stamp("file", 123);
        assert_eq!(derive_event_id(&budget()), derive_event_id(&stamped));
        let Event::Budget(mut other) = budget() else { unreachable!() };
        other.amount_vnd = 11;
        assert_ne!(derive_event_id(&budget()), derive_event_id(&Event::Budget(other)));
        assert!(uuid::Uuid::parse_str(&derive_event_id(&budget())).is_ok());
    }

    #[test]
    fn json_events_are_tagged_by_type() {
        let json = r#"{"type":"budget","event_id":"x","agency_code":"STC","occurred_at":1,"kind":"saved","fiscal_year":2019,"category":"c","amount_vnd":5}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        assert!(matches!(event, Event::Budget(BudgetEvent { amount_vnd: 5, .. })));
    }
}

impl BudgetEventKind {
    /// The wire name (as in the Avro enum and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetEventKind::Allocated => "allocated",
            BudgetEventKind::Committed => "committed",
            BudgetEventKind::Disbursed => "disbursed",
            BudgetEventKind::Saved => "saved",
            BudgetEventKind::Disclosed => "disclosed",
        }
    }
}

impl StaffingEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffingEventKind::HeadcountSnapshot => "headcount_snapshot",
            StaffingEventKind::Hired => "hired",
            StaffingEventKind::Departed => "departed",
        }
    }
}

impl Position {
    pub fn as_str(self) -> &'static str {
        match self {
            Position::Head => "head",
            Position::Deputy => "deputy",
            Position::Staff => "staff",
        }
    }
}

#[cfg(test)]
mod wire_names {
    use super::*;

    #[test]
    fn as_str_matches_the_serde_names() {
        for kind in [
            BudgetEventKind::Allocated,
            BudgetEventKind::Committed,
            BudgetEventKind::Disbursed,
            BudgetEventKind::Saved,
            BudgetEventKind::Disclosed,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for kind in [StaffingEventKind::HeadcountSnapshot, StaffingEventKind::Hired, StaffingEventKind::Departed] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for position in [Position::Head, Position::Deputy, Position::Staff] {
            assert_eq!(serde_json::to_value(position).unwrap(), position.as_str());
        }
    }
}
