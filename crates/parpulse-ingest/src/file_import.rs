//! File import: exports of one-stop software, as NDJSON or CSV, into Kafka.
//!
//! - NDJSON (`.ndjson`, `.jsonl`, `.json`): one event per line, the JSON of the
//!   HTTP intake (`"type"` plus the fields of the Avro schema).
//! - CSV (`.csv`): dossier events, one per row, with a header row naming the
//!   columns (any order; docs/INGEST.md lists them). Times are RFC 3339
//!   (`2019-11-28T08:30:00+07:00`) or local Vietnam time (`2019-11-28 08:30:00`).
//!
//! Rows without an `event_id` get one derived from their content
//! ([`parpulse_core::event::derive_event_id`]), so importing the same file twice
//! yields the same ids and downstream deduplication drops the second copy.
//! Refused rows go to the dead-letter topic and to a rejects file (NDJSON:
//! line, reason, message, original).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime};
use parpulse_core::event::derive_event_id;
use parpulse_core::time::{now_micros, VIETNAM_UTC_OFFSET_SECONDS};
use parpulse_core::validate::{RejectReason, Rejection};
use parpulse_core::{Channel, DossierEvent, DossierEventKind, Event};
use serde::{Deserialize, Serialize};

use crate::gate::Outgoing;
use crate::kafka::{KafkaSink, SinkError};

const SOURCE: &str = "file";
const BATCH: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Ndjson,
    Csv,
}

impl FileFormat {
    pub fn of(path: &Path) -> Option<FileFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(FileFormat::Ndjson),
            "csv" => Some(FileFormat::Csv),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: unknown file type; use .ndjson/.jsonl/.json or .csv")]
    UnknownFormat(PathBuf),
    #[error("{path}: CSV header: {message}")]
    CsvHeader { path: PathBuf, message: String },
    #[error(transparent)]
    Kafka(#[from] SinkError),
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub read: u64,
    pub accepted: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
}

impl ImportSummary {
    pub fn rejected(&self) -> u64 {
        self.rejected_by_reason.values().sum()
    }
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "read {}, accepted {}, rejected {}", self.read, self.accepted, self.rejected())?;
        if !self.rejected_by_reason.is_empty() {
            let reasons: Vec<_> = self.rejected_by_reason.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            write!(f, " ({})", reasons.join(", "))?;
        }
        Ok(())
    }
}

/// One row turned into an event, or refused, with what to keep of it.
struct Row {
    line: u64,
    original: String,
    parsed: Result<Event, Rejection>,
}

#[derive(Serialize)]
struct RejectLine<'a> {
    line: u64,
    reason: &'a str,
    message: &'a str,
    original: &'a str,
}

/// Parses one NDJSON line; a missing or empty `event_id` is derived from the content.
pub fn parse_ndjson_line(line: &str) -> Result<Event, Rejection> {
    let malformed = |m: String| Rejection::new(RejectReason::Malformed, m);
    let mut value: serde_json::Value = serde_json::from_str(line).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let object = value.as_object_mut().ok_or_else(|| malformed("not a JSON object".into()))?;
    let needs_id = object.get("event_id").is_none_or(|id| id.as_str() == Some(""));
    if needs_id {
        object.insert("event_id".into(), serde_json::Value::String(String::new()));
    }
    let mut event: Event = serde_json::from_value(value).map_err(|e| malformed(format!("not a valid event: {e}")))?;
    if needs_id {
        let id = derive_event_id(&event);
        set_event_id(&mut event, id);
    }
    Ok(event)
}

fn set_event_id(event: &mut Event, id: String) {
    match event {
        Event::Dossier(e) => e.event_id = id,
        Event::Budget(e) => e.event_id = id,
        Event::Staffing(e) => e.event_id = id,
    }
}

/// The CSV columns of a dossier event row.
#[derive(Debug, Deserialize)]
struct CsvDossierRow {
    #[serde(default)]
    event_id: String,
    agency_code: String,
    dossier_id: String,
    procedure_code: String,
    kind: DossierEventKind,
    channel: Channel,
    online_level: i32,
    occurred_at: String,
    #[serde(default)]
    due_at: String,
    #[serde(default)]
    legal_max_days: Option<i32>,
    #[serde(default)]
    result_channel: Option<Channel>,
    #[serde(default)]
    fee_bearing: String,
    #[serde(default)]
    digitized: String,
}

/// Required CSV columns; the others are optional.
pub const CSV_REQUIRED_COLUMNS: [&str; 7] =
    ["agency_code", "dossier_id", "procedure_code", "kind", "channel", "online_level", "occurred_at"];

/// RFC 3339, or a local Vietnam time `YYYY-MM-DD HH:MM[:SS]`, to UTC microseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(local.and_utc().timestamp_micros() - i64::from(VIETNAM_UTC_OFFSET_SECONDS) * 1_000_000);
        }
    }
    Err(format!("time {text:?} is neither RFC 3339 nor local 'YYYY-MM-DD HH:MM:SS'"))
}

fn parse_bool(text: &str, column: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" | "không" => Ok(false),
        "true" | "1" | "yes" | "có" => Ok(true),
        other => Err(format!("{column} {other:?} is not true/false/1/0")),
    }
}

fn csv_row_to_event(row: CsvDossierRow) -> Result<Event, Rejection> {
    let malformed = |m: String| Rejection::new(RejectReason::Malformed, m);
    let due_at = if row.due_at.trim().is_empty() { None } else { Some(parse_time(&row.due_at).map_err(malformed)?) };
    let mut event = Event::Dossier(DossierEvent {
        event_id: row.event_id.trim().to_owned(),
        agency_code: row.agency_code.trim().to_owned(),
        occurred_at: parse_time(&row.occurred_at).map_err(malformed)?,
        recorded_at: 0,
        source: String::new(),
        dossier_id: row.dossier_id.trim().to_owned(),
        procedure_code: row.procedure_code.trim().to_owned(),
        kind: row.kind,
        channel: row.channel,
        online_level: row.online_level,
        result_channel: row.result_channel,
        due_at,
        legal_max_days: row.legal_max_days,
        fee_bearing: parse_bool(&row.fee_bearing, "fee_bearing").map_err(malformed)?,
        digitized: parse_bool(&row.digitized, "digitized").map_err(malformed)?,
        new_due_at: None,
    });
    if event.event_id().is_empty() {
        let id = derive_event_id(&event);
        set_event_id(&mut event, id);
    }
    Ok(event)
}

/// Reads rows of a file in batches and hands each batch to `handle`.
fn read_rows(
    path: &Path,
    format: FileFormat,
    mut handle: impl FnMut(Vec<Row>, u64) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let io = |source| ImportError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io)?;
    let mut batch = Vec::with_capacity(BATCH);
    match format {
        FileFormat::Ndjson => {
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut line = String::new();
            let (mut number, mut bytes) = (0u64, 0u64);
            loop {
                line.clear();
                let read = reader.read_line(&mut line).map_err(io)?;
                if read == 0 {
                    break;
                }
                number += 1;
                bytes += read as u64;
                let text = line.trim_end_matches(['\n', '\r']);
                if text.trim().is_empty() {
                    continue;
                }
                batch.push(Row { line: number, original: text.to_owned(), parsed: parse_ndjson_line(text) });
                if batch.len() == BATCH {
                    handle(std::mem::take(&mut batch), bytes)?;
                }
            }
            handle(batch, bytes)?;
        }
        FileFormat::Csv => {
            let mut reader =
                csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(BufReader::new(file));
            let headers = reader
                .headers()
                .map_err(|e| ImportError::CsvHeader { path: path.to_owned(), message: e.to_string() })?
                .clone();
            let missing: Vec<_> = CSV_REQUIRED_COLUMNS.iter().filter(|c| !headers.iter().any(|h| h == **c)).collect();
            if !missing.is_empty() {
                return Err(ImportError::CsvHeader {
                    path: path.to_owned(),
                    message: format!("missing columns {missing:?}"),
                });
            }
            let mut record = csv::StringRecord::new();
            loop {
                let more = match reader.read_record(&mut record) {
                    Ok(more) => more,
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        let parsed = Err(Rejection::new(RejectReason::Malformed, format!("unreadable CSV row: {e}")));
                        batch.push(Row { line, original: String::new(), parsed });
                        true
                    }
                };
                if !more {
                    break;
                }
                let line = record.position().map_or(0, |p| p.line());
                let original: BTreeMap<&str, &str> = headers.iter().zip(record.iter()).collect();
                let original = serde_json::to_string(&original).expect("strings serialize");
                let parsed = record
                    .deserialize::<CsvDossierRow>(Some(&headers))
                    .map_err(|e| Rejection::new(RejectReason::Malformed, format!("row does not fit the columns: {e}")))
                    .and_then(csv_row_to_event);
                batch.push(Row { line, original, parsed });
                if batch.len() == BATCH {
                    let bytes = record.position().map_or(0, |p| p.byte());
                    handle(std::mem::take(&mut batch), bytes)?;
                }
            }
            let bytes = std::fs::metadata(path).map_err(io)?.len();
            handle(batch, bytes)?;
        }
    }
    Ok(())
}

/// Progress on a terminal (a bar), or a log line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_log: Instant,
    path: String,
}

impl Progress {
    fn new(path: &Path, total_bytes: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(path.display().to_string());
            bar
        });
        Self { bar, last_log: Instant::now(), path: path.display().to_string() }
    }

    fn update(&mut self, bytes: u64, summary: &ImportSummary) {
        match &self.bar {
            Some(bar) => bar.set_position(bytes),
            None if self.last_log.elapsed() >= Duration::from_secs(5) => {
                tracing::info!(file = %self.path, bytes, read = summary.read, accepted = summary.accepted, rejected = summary.rejected(), "importing");
                self.last_log = Instant::now();
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Imports one file through `sink`; refused rows are appended to `rejects`.
pub async fn import_file(
    sink: &KafkaSink,
    path: &Path,
    rejects: &mut impl Write,
) -> Result<ImportSummary, ImportError> {
    let format = FileFormat::of(path).ok_or_else(|| ImportError::UnknownFormat(path.to_owned()))?;
    let total = std::fs::metadata(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?.len();
    let mut progress = Progress::new(path, total);
    let mut summary = ImportSummary::default();
    // Reading is blocking and cheap; batches are sent as they fill.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<Row>, u64)>(2);
    let reader_path = path.to_owned();
    let reader = tokio::task::spawn_blocking(move || {
        read_rows(&reader_path, format, |rows, bytes| {
            // A closed channel means the sender side failed; its error is reported there.
            let _ = tx.blocking_send((rows, bytes));
            Ok(())
        })
    });
    while let Some((rows, bytes)) = rx.recv().await {
        let now = now_micros();
        let outgoing: Vec<Outgoing> = rows
            .iter()
            .map(|row| match &row.parsed {
                Ok(event) => sink.gate().judge(event.clone(), row.original.as_bytes(), SOURCE, now),
                Err(rejection) => Outgoing::dead_letter("", row.original.as_bytes(), rejection.clone(), SOURCE),
            })
            .collect();
        let sent = sink.deliver(&outgoing, SOURCE).await?;
        summary.read += rows.len() as u64;
        summary.accepted += sent.accepted;
        for (row, out) in rows.iter().zip(&outgoing) {
            if let Some(rejection) = out.rejection() {
                *summary.rejected_by_reason.entry(rejection.reason.code().to_owned()).or_default() += 1;
                let line = RejectLine {
                    line: row.line,
                    reason: rejection.reason.code(),
                    message: &rejection.message,
                    original: &row.original,
                };
                let mut text = serde_json::to_string(&line).expect("reject lines serialize");
                text.push('\n');
                rejects
                    .write_all(text.as_bytes())
                    .map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
            }
        }
        progress.update(bytes, &summary);
    }
    reader.await.expect("file reader does not panic")?;
    progress.finish();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_rfc3339_times_agree() {
        let local = parse_time("2019-11-28 08:30:00").unwrap();
        let rfc = parse_time("2019-11-28T08:30:00+07:00").unwrap();
        assert_eq!(local, rfc);
        assert_eq!(parse_time("2019-11-28T01:30:00Z").unwrap(), rfc);
        assert!(parse_time("28/11/2019").is_err());
    }

    #[test]
    fn ndjson_rows_without_id_get_the_same_derived_id_every_time() {
        let line = r#"{"type":"budget","agency_code":"STC","occurred_at":1574900000000000,"kind":"saved","fiscal_year":2019,"category":"c","amount_vnd":5}"#;
        let a = parse_ndjson_line(line).unwrap();
        let b = parse_ndjson_line(line).unwrap();
        assert_eq!(a.event_id(), b.event_id());
        assert!(uuid::Uuid::parse_str(a.event_id()).is_ok());
    }

    #[test]
    fn ndjson_rows_keep_their_own_id() {
        let line = r#"{"type":"budget","event_id":"6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11","agency_code":"STC","occurred_at":1,"kind":"saved","fiscal_year":2019,"category":"c","amount_vnd":5}"#;
        assert_eq!(parse_ndjson_line(line).unwrap().event_id(), "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11");
    }

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(FileFormat::of(Path::new("a/b.NDJSON")), Some(FileFormat::Ndjson));
        assert_eq!(FileFormat::of(Path::new("export.csv")), Some(FileFormat::Csv));
        assert_eq!(FileFormat::of(Path::new("export.xlsx")), None);
    }

    #[test]
    fn booleans_accept_vietnamese_yes_and_no() {
        assert_eq!(parse_bool("có", "x"), Ok(true));
        assert_eq!(parse_bool("Không", "x"), Ok(false));
        assert!(parse_bool("maybe", "x").is_err());
    }
}
