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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierEvent {
    pub event_id: String,
    pub agency_code: String,
    /// Event time, UTC microseconds.
    pub occurred_at: i64,
    /// Ingestion time, UTC microseconds.
    pub recorded_at: i64,
    pub source: String,
    pub dossier_id: String,
    pub procedure_code: String,
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
}
