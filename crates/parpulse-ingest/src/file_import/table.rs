//! Tables out of files: CSV (any of the encodings and separators of [`super::encoding`])
//! and workbooks (.xlsx, .xlsm, .xls, .ods through calamine), as rows of [`Cell`]s, with
//! the header row found by the profile's columns.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use calamine::{Data, DataType, Reader};
use chrono::{NaiveDate, NaiveDateTime};

use super::encoding::{self, TextEncoding};
use super::profile::{Binding, Profile};

/// One cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    /// A workbook cell formatted as a date: local time as written.
    Date(NaiveDateTime),
    /// A workbook error value (`#N/A`, `#VALUE!` ...).
    Error(String),
}

impl Cell {
    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(t) => t.trim().is_empty(),
            _ => false,
        }
    }

    /// The cell as text: whole numbers without a fraction, dates as `YYYY-MM-DD HH:MM:SS`.
    pub fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(t) => t.trim().to_owned(),
            Cell::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Cell::Number(n) => n.to_string(),
            Cell::Date(d) => d.format("%Y-%m-%d %H:%M:%S").to_string(),
            Cell::Error(e) => e.clone(),
        }
    }

    fn from_data(data: &Data) -> Cell {
        match data {
            Data::Empty => Cell::Empty,
            Data::String(s) => Cell::Text(s.clone()),
            Data::Int(i) => Cell::Number(*i as f64),
            Data::Float(f) => Cell::Number(*f),
            Data::Bool(b) => Cell::Text(b.to_string()),
            Data::DateTime(_) => match data.as_datetime() {
                Some(d) => Cell::Date(d),
                None => Cell::Error(format!("date cell {data} out of range")),
            },
            Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
            Data::Error(e) => Cell::Error(e.to_string()),
        }
    }
}

/// An Excel serial day number (1900 date system: day 1 is 1900-01-01, fractions are the
/// time of day) to a local date and time, rounded to the second.
pub fn excel_serial(serial: f64) -> Option<NaiveDateTime> {
    if !(1.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let base = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
    let seconds = (serial * 86_400.0).round() as i64;
    base.checked_add_signed(chrono::Duration::seconds(seconds))
}

/// A row: its line (CSV, 1-based) or row number (workbook, 1-based) and its cells.
#[derive(Debug, Clone)]
pub struct TableRow {
    pub line: u64,
    pub cells: Vec<Cell>,
}

/// Where the rows come from.
enum Rows {
    Csv { reader: csv::Reader<Box<dyn Read + Send>>, record: csv::ByteRecord, offset: u64 },
    Sheet { range: calamine::Range<Data>, next: usize, first_row: u64 },
}

/// Rows of one file, read one at a time.
pub struct Table {
    rows: Rows,
    /// Progress unit total: bytes (CSV) or rows (workbook).
    pub total: u64,
    pub unit: ProgressUnit,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    Bytes,
    Rows,
}

/// Options that change how a table is read.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    pub sheet: Option<String>,
    pub delimiter: Option<u8>,
}

impl Table {
    pub fn open_csv(path: &Path, options: &TableOptions) -> Result<Table, String> {
        let mut file = File::open(path).map_err(|e| e.to_string())?;
        let length = file.metadata().map_err(|e| e.to_string())?.len();
        let mut head = Vec::with_capacity(64 * 1024);
        (&mut file).take(64 * 1024).read_to_end(&mut head).map_err(|e| e.to_string())?;
        let detected = encoding::sniff(&head).map_err(|e| e.0)?;
        let (input, total, head_text, offset): (Box<dyn Read + Send>, u64, String, u64) = match detected {
            TextEncoding::Utf8 { bom } => {
                let skip = if bom { 3 } else { 0 };
                let head_text = String::from_utf8_lossy(&head[skip..]).into_owned();
                let mut file = File::open(path).map_err(|e| e.to_string())?;
                if bom {
                    let mut bom = [0u8; 3];
                    file.read_exact(&mut bom).map_err(|e| e.to_string())?;
                }
                (Box::new(BufReader::with_capacity(1 << 20, file)), length, head_text, skip as u64)
            }
            utf16 => {
                let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
                let text = encoding::decode(&bytes, utf16).map_err(|e| e.0)?.into_owned();
                let head_text = text.chars().take(64 * 1024).collect();
                let total = text.len() as u64;
                (Box::new(Cursor::new(text.into_bytes())), total, head_text, 0)
            }
        };
        let delimiter = options.delimiter.unwrap_or_else(|| encoding::detect_delimiter(&head_text));
        let reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(input);
        let separator = match delimiter {
            b'\t' => "tab".to_owned(),
            d => format!("{:?}", d as char),
        };
        let description = match detected {
            TextEncoding::Utf8 { bom: true } => format!("CSV, UTF-8 with BOM, separator {separator}"),
            TextEncoding::Utf8 { bom: false } => format!("CSV, UTF-8, separator {separator}"),
            TextEncoding::Utf16Le => format!("text, UTF-16LE, separator {separator}"),
            TextEncoding::Utf16Be => format!("text, UTF-16BE, separator {separator}"),
        };
        Ok(Table {
            rows: Rows::Csv { reader, record: csv::ByteRecord::new(), offset },
            total,
            unit: ProgressUnit::Bytes,
            description,
        })
    }

    /// The sheet names of a workbook, in order.
    pub fn sheet_names(path: &Path) -> Result<Vec<String>, String> {
        let workbook = calamine::open_workbook_auto(path).map_err(|e| format!("not a readable workbook: {e}"))?;
        Ok(workbook.sheet_names())
    }

    pub fn open_workbook(path: &Path, options: &TableOptions) -> Result<Table, String> {
        let mut workbook = calamine::open_workbook_auto(path).map_err(|e| format!("not a readable workbook: {e}"))?;
        let names = workbook.sheet_names();
        let sheet = match &options.sheet {
            Some(name) => {
                names.iter().find(|n| *n == name || n.eq_ignore_ascii_case(name)).cloned().ok_or_else(|| {
                    format!(
                        "no sheet {name:?}; the workbook has {}",
                        names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
                    )
                })?
            }
            None => names.first().cloned().ok_or("the workbook has no sheet")?,
        };
        let range = workbook.worksheet_range(&sheet).map_err(|e| format!("sheet {sheet:?}: {e}"))?;
        let first_row = range.start().map_or(0, |(row, _)| u64::from(row));
        let total = range.height() as u64;
        Ok(Table {
            rows: Rows::Sheet { range, next: 0, first_row },
            total,
            unit: ProgressUnit::Rows,
            description: format!("workbook, sheet {sheet:?}"),
        })
    }

    /// The next row, or why it could not be read (with its line); `None` at the end.
    pub fn next_row(&mut self) -> Option<Result<TableRow, (u64, String)>> {
        match &mut self.rows {
            Rows::Csv { reader, record, .. } => match reader.read_byte_record(record) {
                Ok(false) => None,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    let mut cells = Vec::with_capacity(record.len());
                    for field in record.iter() {
                        match std::str::from_utf8(field) {
                            Ok(text) if text.trim().is_empty() => cells.push(Cell::Empty),
                            Ok(text) => cells.push(Cell::Text(text.to_owned())),
                            Err(_) => return Some(Err((line, "invalid UTF-8 in the row".into()))),
                        }
                    }
                    Some(Ok(TableRow { line, cells }))
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    Some(Err((line, format!("unreadable CSV row: {e}"))))
                }
            },
            Rows::Sheet { range, next, first_row } => {
                let row = range.rows().nth(*next)?;
                let line = *first_row + *next as u64 + 1;
                *next += 1;
                Some(Ok(TableRow { line, cells: row.iter().map(Cell::from_data).collect() }))
            }
        }
    }

    /// How far reading has come, in [`Table::unit`]s.
    pub fn position(&self) -> u64 {
        match &self.rows {
            Rows::Csv { reader, offset, .. } => reader.position().byte() + offset,
            Rows::Sheet { next, .. } => *next as u64,
        }
    }
}

/// The header row found, and the profile bound to it.
pub struct Header {
    pub profile: Profile,
    pub names: Vec<String>,
    pub binding: Binding,
    pub line: u64,
}

/// How many rows are searched for the header when `--header-row` is not given.
pub const HEADER_SEARCH_ROWS: u64 = 30;

/// Finds the header row: the `header_row`th row, or the first of the first
/// [`HEADER_SEARCH_ROWS`] rows that has every required column of one of `profiles` (tried
/// in order). `satisfied` are required fields given otherwise (`--agency`). Rows before
/// the header are skipped (titles). The error lists the columns found.
pub fn find_header(
    table: &mut Table,
    profiles: &[Profile],
    header_row: Option<u64>,
    satisfied: &[&str],
) -> Result<Header, String> {
    // (required columns found, non-empty cells, names, missing, profile, line)
    #[allow(clippy::type_complexity)]
    let mut best: Option<(usize, usize, Vec<String>, Vec<String>, String, u64)> = None;
    let mut count = 0u64;
    while let Some(row) = table.next_row() {
        count += 1;
        let row = match row {
            Ok(row) => row,
            Err((line, message)) => return Err(format!("line {line}, before the header: {message}")),
        };
        if let Some(wanted) = header_row {
            if count < wanted {
                continue;
            }
        }
        let names: Vec<String> = row.cells.iter().map(Cell::text).collect();
        if names.iter().all(|n| n.is_empty()) {
            if header_row.is_some() {
                return Err(format!("row {count} (--header-row) is empty"));
            }
            continue;
        }
        for profile in profiles {
            let mut binding = profile.bind(&names);
            binding.missing.retain(|f| !satisfied.contains(&f.as_str()));
            if binding.missing.is_empty() {
                return Ok(Header { profile: profile.clone(), names, binding, line: row.line });
            }
            let found = profile.required.len() - binding.missing.len();
            let filled = names.iter().filter(|n| !n.is_empty()).count();
            if best.as_ref().is_none_or(|(n, f, ..)| (found, filled) > (*n, *f)) {
                let missing = binding.missing.iter().map(|f| format!("{f} ({})", profile.headers_of(f))).collect();
                best = Some((found, filled, names.clone(), missing, profile.name.clone(), row.line));
            }
        }
        if header_row.is_some() || count >= HEADER_SEARCH_ROWS {
            break;
        }
    }
    match best {
        None => Err("no header row: the file has no rows".into()),
        Some((_, _, names, missing, profile, line)) => {
            let found: Vec<_> = names.iter().filter(|n| !n.is_empty()).map(|n| format!("{n:?}")).collect();
            let where_ = match header_row {
                Some(n) => format!("row {n} (--header-row)"),
                None => format!("the first {HEADER_SEARCH_ROWS} rows"),
            };
            Err(format!(
                "no header row with the required columns in {where_}; closest: line {line} for profile {profile}, \
                 missing {}; columns found there: {}",
                missing.join(", "),
                found.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excel_serials_are_local_dates_and_times() {
        // 45981.5 is 2025-11-20 12:00 (Excel's own rendering).
        let d = excel_serial(45981.5).unwrap();
        assert_eq!(d.format("%Y-%m-%d %H:%M:%S").to_string(), "2025-11-20 12:00:00");
        assert_eq!(excel_serial(45981.354166666664).unwrap().format("%H:%M:%S").to_string(), "08:30:00");
        assert!(excel_serial(-1.0).is_none());
        assert!(excel_serial(1e12).is_none());
    }

    #[test]
    fn cells_print_whole_numbers_without_fraction() {
        assert_eq!(Cell::Number(10.0).text(), "10");
        assert_eq!(Cell::Number(1.5).text(), "1.5");
        assert_eq!(Cell::Text("  a ".into()).text(), "a");
    }
}
