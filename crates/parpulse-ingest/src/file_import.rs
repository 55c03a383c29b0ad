//! File import: exports of one-stop software, as NDJSON, CSV or Excel workbooks, into Kafka.
//!
//! - NDJSON (`.ndjson`, `.jsonl`, `.json`): one event per line, the JSON of the
//!   HTTP intake (`"type"` plus the fields of the Avro schema).
//! - Tables: CSV and text exports (`.csv`, `.tsv`, `.txt`; UTF-8 with or without BOM or
//!   UTF-16, comma, semicolon or tab: [`encoding`]) and workbooks (`.xlsx`, `.xlsm`, `.xls`,
//!   `.ods`: [`table`]). A mapping [`profile`] says what the columns are: parpulse's own
//!   (one event per row), or a one-stop export with a row per dossier whose dates and state
//!   are expanded into lifecycle events ([`snapshot`]). Without `--profile` the profile
//!   whose required columns the header row has is used.
//!
//! Rows without an `event_id` get one derived from their content
//! ([`parpulse_core::event::derive_event_id`]), snapshot steps one derived from unit,
//! dossier, step and date ([`snapshot::snapshot_event_id`]), so importing the same file
//! (or next week's snapshot) again yields the same ids and downstream deduplication drops
//! the copies. Refused rows go to the dead-letter topic and to a rejects file (NDJSON:
//! line, reason, message, original).

pub mod encoding;
pub mod profile;
pub mod snapshot;
pub mod table;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime};
use parpulse_core::event::derive_event_id;
use parpulse_core::time::{now_micros, VIETNAM_UTC_OFFSET_SECONDS};
use parpulse_core::validate::{RejectReason, Rejection};
use parpulse_core::Event;
use serde::Serialize;

use crate::gate::Outgoing;
use crate::kafka::{KafkaSink, SinkError};
use profile::{Profile, Shape};
use table::{ProgressUnit, Table, TableOptions};

const SOURCE: &str = "file";
const BATCH: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Ndjson,
    /// CSV and text exports (tab-separated "Unicode text" too).
    Csv,
    /// Excel (.xlsx, .xlsm, .xls) and OpenDocument (.ods) workbooks.
    Workbook,
}

impl FileFormat {
    pub fn of(path: &Path) -> Option<FileFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(FileFormat::Ndjson),
            "csv" | "tsv" | "txt" => Some(FileFormat::Csv),
            "xlsx" | "xlsm" | "xls" | "ods" => Some(FileFormat::Workbook),
            _ => None,
        }
    }
}

/// How tables are read: `parpulse ingest file` flags (docs/INGEST.md).
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// A built-in profile name or a profile file; `None`: the profile the header fits.
    pub profile: Option<String>,
    /// Workbook sheet; `None`: the first.
    pub sheet: Option<String>,
    /// 1-based header row; `None`: found among the first rows.
    pub header_row: Option<u64>,
    /// Column separator; `None`: detected.
    pub delimiter: Option<u8>,
    /// The unit of every row of a file without a unit column.
    pub agency: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: unknown file type; use .ndjson/.jsonl/.json, .csv/.tsv/.txt or .xlsx/.xls/.ods")]
    UnknownFormat(PathBuf),
    /// The file cannot be read as a table (encoding, workbook, sheet): nothing was sent.
    #[error("{path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    /// No header row with the profile's required columns: nothing was sent.
    #[error("{path}: header: {message}")]
    CsvHeader { path: PathBuf, message: String },
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
    #[error(transparent)]
    Kafka(#[from] SinkError),
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Rows (lines) read.
    pub read: u64,
    /// Events the rows became, for snapshot profiles (a row per dossier); `None` when
    /// every row is one event.
    pub events: Option<u64>,
    pub accepted: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Columns no field of the profile claims (ignored), as the header spells them.
    pub ignored_columns: Vec<String>,
    /// The profile used for a table, and how the file was read.
    pub profile: Option<String>,
    pub format: Option<String>,
}

impl ImportSummary {
    pub fn rejected(&self) -> u64 {
        self.rejected_by_reason.values().sum()
    }

    /// Adds another file's counts (for the total line).
    pub fn add(&mut self, other: &ImportSummary) {
        self.read += other.read;
        if let Some(events) = other.events {
            *self.events.get_or_insert(0) += events;
        }
        self.accepted += other.accepted;
        for (reason, n) in &other.rejected_by_reason {
            *self.rejected_by_reason.entry(reason.clone()).or_default() += n;
        }
    }
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.events {
            Some(events) => write!(f, "read {} rows ({events} events)", self.read)?,
            None => write!(f, "read {}", self.read)?,
        }
        write!(f, ", accepted {}, rejected {}", self.accepted, self.rejected())?;
        if !self.rejected_by_reason.is_empty() {
            let reasons: Vec<_> = self.rejected_by_reason.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            write!(f, " ({})", reasons.join(", "))?;
        }
        if let Some(profile) = &self.profile {
            write!(f, "; profile {profile}")?;
        }
        if let Some(format) = &self.format {
            write!(f, ", {format}")?;
        }
        if !self.ignored_columns.is_empty() {
            write!(f, "; ignored columns: {}", self.ignored_columns.join(", "))?;
        }
        Ok(())
    }
}

/// One row turned into events, or refused, with what to keep of it.
struct Row {
    line: u64,
    original: String,
    parsed: Result<Vec<Event>, Rejection>,
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

/// Required columns of parpulse's own CSV (the `parpulse` profile); the others are optional.
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

/// What the reader tells the sender.
enum Message {
    /// The table's header was found (tables only): the summary's header facts and progress total.
    Start {
        profile: Option<String>,
        format: Option<String>,
        ignored: Vec<String>,
        snapshot: bool,
        total: u64,
        unit: ProgressUnit,
    },
    Batch(Vec<Row>, u64),
}

/// Reads the NDJSON lines of a file in batches and hands each batch to `handle`.
fn read_ndjson(path: &Path, mut handle: impl FnMut(Message) -> Result<(), ImportError>) -> Result<(), ImportError> {
    let io = |source| ImportError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io)?;
    let total = file.metadata().map_err(io)?.len();
    handle(Message::Start {
        profile: None,
        format: None,
        ignored: Vec::new(),
        snapshot: false,
        total,
        unit: ProgressUnit::Bytes,
    })?;
    let mut batch = Vec::with_capacity(BATCH);
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
        batch.push(Row { line: number, original: text.to_owned(), parsed: parse_ndjson_line(text).map(|e| vec![e]) });
        if batch.len() == BATCH {
            handle(Message::Batch(std::mem::take(&mut batch), bytes))?;
        }
    }
    handle(Message::Batch(batch, bytes))
}

/// Reads a table (CSV or workbook): finds the header with the profile(s), then maps
/// rows in batches. A header error returns before any row is handed over.
fn read_table(
    path: &Path,
    format: FileFormat,
    options: &ImportOptions,
    agency_names: HashMap<String, String>,
    mut handle: impl FnMut(Message) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let unreadable = |message: String| ImportError::Unreadable { path: path.to_owned(), message };
    let profiles = match &options.profile {
        Some(name) => vec![Profile::load(name)?],
        None => Profile::built_in(),
    };
    let satisfied: &[&str] = if options.agency.is_some() { &["agency_code"] } else { &[] };
    let open = |sheet: Option<String>| -> Result<(Table, table::Header), ImportError> {
        let table_options = TableOptions { sheet, delimiter: options.delimiter };
        let mut table = match format {
            FileFormat::Workbook => Table::open_workbook(path, &table_options),
            _ => Table::open_csv(path, &table_options),
        }
        .map_err(unreadable)?;
        let header = table::find_header(&mut table, &profiles, options.header_row, satisfied)
            .map_err(|message| ImportError::CsvHeader { path: path.to_owned(), message })?;
        Ok((table, header))
    };
    // A workbook without --sheet: its first sheet with a header row (a guide or a title
    // sheet before the data is common).
    let (mut table, header) = match (format, &options.sheet) {
        (FileFormat::Workbook, None) => {
            let names = Table::sheet_names(path).map_err(unreadable)?;
            let mut first_error = None;
            let mut found = None;
            for name in &names {
                match open(Some(name.clone())) {
                    Ok(opened) => {
                        found = Some(opened);
                        break;
                    }
                    Err(e @ ImportError::CsvHeader { .. }) => {
                        first_error.get_or_insert(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            match (found, first_error) {
                (Some(opened), _) => opened,
                (None, Some(ImportError::CsvHeader { path, message })) if names.len() > 1 => {
                    return Err(ImportError::CsvHeader {
                        path,
                        message: format!(
                            "no sheet has a header row (sheets: {}); first sheet: {message}",
                            names.join(", ")
                        ),
                    })
                }
                (None, Some(e)) => return Err(e),
                (None, None) => return Err(unreadable("the workbook has no sheet".into())),
            }
        }
        (_, sheet) => open(sheet.clone())?,
    };
    let snapshot = header.profile.shape == Shape::Snapshot;
    handle(Message::Start {
        profile: Some(header.profile.name.clone()),
        format: Some(table.description.clone()),
        ignored: header.binding.ignored.clone(),
        snapshot,
        total: table.total,
        unit: table.unit,
    })?;
    // A CSV row shorter than the header is broken (a workbook's rows always have every column).
    let width = header.names.iter().rposition(|n| !n.is_empty()).map_or(0, |i| i + 1);
    let check_width = format != FileFormat::Workbook;
    let mapper =
        snapshot::Mapper::new(header.profile, header.binding, header.names, options.agency.clone(), agency_names);
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(row) = table.next_row() {
        let row = match row {
            Ok(row) if row.cells.iter().all(|c| c.is_empty()) => continue,
            Ok(row) if check_width && row.cells.len() < width => Row {
                line: row.line,
                original: mapper.original(&row.cells),
                parsed: Err(Rejection::new(
                    RejectReason::Malformed,
                    format!("the row has {} fields, the header {width}", row.cells.len()),
                )),
            },
            Ok(row) => Row { line: row.line, original: mapper.original(&row.cells), parsed: mapper.map(&row.cells) },
            Err((line, message)) => {
                let reason =
                    if message.contains("UTF-8") { RejectReason::InvalidUtf8 } else { RejectReason::Malformed };
                Row { line, original: String::new(), parsed: Err(Rejection::new(reason, message)) }
            }
        };
        batch.push(row);
        if batch.len() == BATCH {
            handle(Message::Batch(std::mem::take(&mut batch), table.position()))?;
        }
    }
    handle(Message::Batch(batch, table.total))
}

/// Progress on a terminal (a bar), or a log line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_log: Instant,
    path: String,
}

impl Progress {
    fn new(path: &Path, total: u64, unit: ProgressUnit) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            let template = match unit {
                ProgressUnit::Bytes => "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                ProgressUnit::Rows => "{msg} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})",
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "),
            );
            bar.set_message(path.display().to_string());
            bar
        });
        Self { bar, last_log: Instant::now(), path: path.display().to_string() }
    }

    fn update(&mut self, position: u64, summary: &ImportSummary) {
        match &self.bar {
            Some(bar) => bar.set_position(position),
            None if self.last_log.elapsed() >= Duration::from_secs(5) => {
                tracing::info!(file = %self.path, position, read = summary.read, accepted = summary.accepted, rejected = summary.rejected(), "importing");
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

/// Imports one file through `sink` with the default options (NDJSON, or a table whose
/// header fits a built-in profile); refused rows are appended to `rejects`.
pub async fn import_file(
    sink: &KafkaSink,
    path: &Path,
    rejects: &mut impl Write,
) -> Result<ImportSummary, ImportError> {
    import_file_with(sink, path, &ImportOptions::default(), rejects).await
}

/// Imports one file through `sink`; refused rows are appended to `rejects`. A table
/// whose header lacks a required column is refused before any row is sent.
pub async fn import_file_with(
    sink: &KafkaSink,
    path: &Path,
    options: &ImportOptions,
    rejects: &mut impl Write,
) -> Result<ImportSummary, ImportError> {
    let format = FileFormat::of(path).ok_or_else(|| ImportError::UnknownFormat(path.to_owned()))?;
    std::fs::metadata(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
    let mut summary = ImportSummary::default();
    let agency_names: HashMap<String, String> =
        sink.gate().registry().iter().map(|a| (profile::normalize(&a.name), a.code.as_str().to_owned())).collect();
    // Reading is blocking and cheap; batches are sent as they fill.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(2);
    let reader_path = path.to_owned();
    let reader_options = options.clone();
    let reader = tokio::task::spawn_blocking(move || {
        // A closed channel means the sender side failed; its error is reported there.
        let handle = |message| {
            let _ = tx.blocking_send(message);
            Ok(())
        };
        match format {
            FileFormat::Ndjson => read_ndjson(&reader_path, handle),
            _ => read_table(&reader_path, format, &reader_options, agency_names, handle),
        }
    });
    let mut progress = None;
    while let Some(message) = rx.recv().await {
        let (rows, position) = match message {
            Message::Start { profile, format, ignored, snapshot, total, unit } => {
                summary.profile = profile;
                summary.format = format;
                summary.ignored_columns = ignored;
                summary.events = snapshot.then_some(0);
                progress = Some(Progress::new(path, total, unit));
                continue;
            }
            Message::Batch(rows, position) => (rows, position),
        };
        let now = now_micros();
        // One record for every event, or the row's own refusal; `owners` holds each one's row.
        let mut records: Vec<Outgoing> = Vec::with_capacity(rows.len());
        let mut owners: Vec<usize> = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            match &row.parsed {
                Ok(events) => {
                    if let Some(n) = summary.events.as_mut() {
                        *n += events.len() as u64;
                    }
                    for event in events {
                        records.push(sink.gate().judge(event.clone(), row.original.as_bytes(), SOURCE, now));
                        owners.push(index);
                    }
                }
                Err(rejection) => {
                    records.push(Outgoing::dead_letter("", row.original.as_bytes(), rejection.clone(), SOURCE));
                    owners.push(index);
                }
            }
        }
        let sent = sink.deliver(&records, SOURCE).await?;
        summary.read += rows.len() as u64;
        summary.accepted += sent.accepted;
        for (index, out) in owners.iter().zip(&records) {
            if let Some(rejection) = out.rejection() {
                let row = &rows[*index];
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
        if let Some(progress) = progress.as_mut() {
            progress.update(position, &summary);
        }
    }
    reader.await.expect("file reader does not panic")?;
    if let Some(progress) = &progress {
        progress.finish();
    }
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
        assert_eq!(FileFormat::of(Path::new("export.XLSX")), Some(FileFormat::Workbook));
        assert_eq!(FileFormat::of(Path::new("unicode.txt")), Some(FileFormat::Csv));
        assert_eq!(FileFormat::of(Path::new("export.pdf")), None);
    }
}
