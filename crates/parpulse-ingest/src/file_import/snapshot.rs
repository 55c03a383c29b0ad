//! Rows to events, through a profile: one event per row (`events` shape), or a dossier's
//! snapshot row expanded into the lifecycle events its dates and state imply
//! (`snapshot` shape), with ids derived from (unit, dossier, step, date) so that next
//! week's snapshot of the same dossiers adds only the steps that are new.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use parpulse_core::event::derive_event_id;
use parpulse_core::time::VIETNAM_UTC_OFFSET_SECONDS;
use parpulse_core::validate::{RejectReason, Rejection};
use parpulse_core::{Channel, DossierEvent, DossierEventKind, Event};

use super::profile::{normalize, Binding, Profile, Shape};
use super::table::{excel_serial, Cell};

/// Namespace of snapshot event ids (UUIDv5), fixed forever: changing it would make the
/// next snapshot's steps look new.
const SNAPSHOT_ID_NAMESPACE: uuid::Uuid = uuid::uuid!("0d3f6a52-7c1b-4e8a-b2f4-6a9e1c5d7b30");

/// The id of a snapshot step: UUIDv5 of unit, dossier, step and its time (UTC
/// microseconds), or `state` for a step known only from the state column.
pub fn snapshot_event_id(agency: &str, dossier: &str, kind: DossierEventKind, at: Option<i64>) -> String {
    let at = at.map_or_else(|| "state".to_owned(), |t| t.to_string());
    let name = format!("{agency}\u{1f}{dossier}\u{1f}{}\u{1f}{at}", kind.as_str());
    uuid::Uuid::new_v5(&SNAPSHOT_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// Dated snapshot fields and the step each one is, in lifecycle order.
const DATED_STEPS: [(&str, DossierEventKind); 6] = [
    ("submitted_at", DossierEventKind::Submitted),
    ("received_at", DossierEventKind::Received),
    ("supplement_requested_at", DossierEventKind::SupplementRequested),
    ("refused_at", DossierEventKind::Refused),
    ("processed_at", DossierEventKind::Processed),
    ("returned_at", DossierEventKind::ResultReturned),
];

fn malformed(message: String) -> Rejection {
    Rejection::new(RejectReason::Malformed, message)
}

/// Turns rows of one file into events.
pub struct Mapper {
    profile: Profile,
    binding: Binding,
    headers: Vec<String>,
    /// `--agency`: the unit of every row without its own unit column.
    agency: Option<String>,
    /// Registry names (normalized) -> unit code, for unit columns holding names.
    agency_names: HashMap<String, String>,
    /// An event with every optional field at its default, cloned for each new event (so that
    /// fields added to the schema later keep their defaults here without a change).
    template: DossierEvent,
}

/// A dossier event whose optional fields hold their serde defaults.
fn template() -> DossierEvent {
    serde_json::from_value(serde_json::json!({
        "event_id": "", "agency_code": "", "occurred_at": 0, "dossier_id": "", "procedure_code": "",
        "kind": "received", "channel": "in_person", "online_level": 2, "fee_bearing": false, "digitized": false
    }))
    .expect("the template is a dossier event")
}

impl Mapper {
    pub fn new(
        profile: Profile,
        binding: Binding,
        headers: Vec<String>,
        agency: Option<String>,
        agency_names: HashMap<String, String>,
    ) -> Self {
        Mapper { profile, binding, headers, agency, agency_names, template: template() }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The row as a header -> text JSON object (what the rejects file and dead letters keep).
    pub fn original(&self, cells: &[Cell]) -> String {
        let mut object = serde_json::Map::new();
        for (i, cell) in cells.iter().enumerate() {
            let key = match self.headers.get(i) {
                Some(h) if !h.is_empty() => h.clone(),
                _ => format!("column {}", i + 1),
            };
            if object.contains_key(&key) || cell.is_empty() && self.headers.get(i).is_none() {
                continue;
            }
            object.insert(key, serde_json::Value::String(cell.text()));
        }
        serde_json::Value::Object(object).to_string()
    }

    fn header(&self, field: &str) -> String {
        self.binding.get(field).and_then(|i| self.headers.get(i)).cloned().unwrap_or_else(|| field.to_owned())
    }

    fn cell<'a>(&self, cells: &'a [Cell], field: &str) -> Option<&'a Cell> {
        let cell = cells.get(self.binding.get(field)?)?;
        (!cell.is_empty()).then_some(cell)
    }

    fn text(&self, cells: &[Cell], field: &str) -> Result<Option<String>, Rejection> {
        match self.cell(cells, field) {
            None => Ok(None),
            Some(Cell::Error(e)) => Err(malformed(format!("{:?}: the cell holds an error ({e})", self.header(field)))),
            Some(cell) => Ok(Some(cell.text())),
        }
    }

    fn required_text(&self, cells: &[Cell], field: &str) -> Result<String, Rejection> {
        self.text(cells, field)?
            .ok_or_else(|| Rejection::new(RejectReason::MissingField, format!("{:?} is empty", self.header(field))))
    }

    /// A date field: a workbook date cell, an Excel serial number, RFC 3339 or one of
    /// the profile's formats (local Vietnam time), to UTC microseconds.
    fn time(&self, cells: &[Cell], field: &str) -> Result<Option<i64>, Rejection> {
        let Some(cell) = self.cell(cells, field) else { return Ok(None) };
        let header = self.header(field);
        let local = match cell {
            Cell::Date(d) => *d,
            Cell::Number(n) => {
                excel_serial(*n).ok_or_else(|| malformed(format!("{header:?}: {n} is not an Excel date serial")))?
            }
            Cell::Error(e) => return Err(malformed(format!("{header:?}: the cell holds an error ({e})"))),
            Cell::Text(t) => {
                let t = t.trim();
                if let Ok(at) = DateTime::parse_from_rfc3339(t) {
                    return Ok(Some(at.timestamp_micros()));
                }
                parse_local(t, &self.profile.date_formats).ok_or_else(|| {
                    malformed(format!(
                        "{header:?}: {t:?} is not a date of the {} profile ({})",
                        self.profile.name,
                        self.profile.date_formats.join(", ")
                    ))
                })?
            }
            Cell::Empty => return Ok(None),
        };
        Ok(Some(local.and_utc().timestamp_micros() - i64::from(VIETNAM_UTC_OFFSET_SECONDS) * 1_000_000))
    }

    fn channel(&self, cells: &[Cell], field: &str, result: bool) -> Result<Option<Channel>, Rejection> {
        let Some(value) = self.text(cells, field)? else { return Ok(None) };
        let table = if result { &self.profile.result_channels } else { &self.profile.channels };
        if let Some(channel) = table.get(&normalize(&value)) {
            return Ok(Some(*channel));
        }
        serde_json::from_value(serde_json::Value::String(normalize(&value))).map(Some).map_err(|_| {
            malformed(format!(
                "{:?}: {value:?} is not a channel of the {} profile",
                self.header(field),
                self.profile.name
            ))
        })
    }

    fn kind(&self, cells: &[Cell], field: &str) -> Result<Option<DossierEventKind>, Rejection> {
        let Some(value) = self.text(cells, field)? else { return Ok(None) };
        if let Some(kind) = self.profile.states.get(&normalize(&value)) {
            return Ok(Some(*kind));
        }
        if self.profile.shape == Shape::Events {
            if let Ok(kind) = serde_json::from_value(serde_json::Value::String(value.trim().to_owned())) {
                return Ok(Some(kind));
            }
        }
        Err(malformed(format!(
            "{:?}: {value:?} is not a state of the {} profile",
            self.header(field),
            self.profile.name
        )))
    }

    fn number(&self, cells: &[Cell], field: &str) -> Result<Option<i32>, Rejection> {
        let Some(value) = self.text(cells, field)? else { return Ok(None) };
        // "3", "3.0" or "Mức độ 3": a whole number, perhaps after a label.
        let number = value.trim().trim_end_matches(".0");
        let digits = number.trim_start_matches(|c: char| c.is_alphabetic() || c.is_whitespace());
        if digits.is_empty() || digits.len() > 9 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(malformed(format!("{:?}: {value:?} is not a whole number", self.header(field))));
        }
        Ok(Some(digits.parse().expect("at most 9 digits")))
    }

    fn boolean(&self, cells: &[Cell], field: &str) -> Result<bool, Rejection> {
        let Some(value) = self.text(cells, field)? else { return Ok(false) };
        match normalize(&value).as_str() {
            "false" | "0" | "no" | "không" | "chưa" => Ok(false),
            "true" | "1" | "yes" | "có" | "đã" | "x" => Ok(true),
            other => Err(malformed(format!("{:?}: {other:?} is not true/false/1/0/có/không", self.header(field)))),
        }
    }

    fn agency(&self, cells: &[Cell]) -> Result<String, Rejection> {
        match (self.text(cells, "agency_code")?, &self.agency) {
            (Some(value), _) => {
                Ok(self.agency_names.get(&normalize(&value)).cloned().unwrap_or_else(|| value.trim().to_owned()))
            }
            (None, Some(agency)) => Ok(agency.clone()),
            (None, None) => Err(Rejection::new(
                RejectReason::MissingField,
                format!("{:?} is empty (or pass --agency for a file of one unit)", self.header("agency_code")),
            )),
        }
    }

    /// The events of one row, or why the row is refused as a whole.
    pub fn map(&self, cells: &[Cell]) -> Result<Vec<Event>, Rejection> {
        match self.profile.shape {
            Shape::Events => self.event_row(cells).map(|e| vec![e]),
            Shape::Snapshot => self.snapshot_row(cells),
        }
    }

    fn event_row(&self, cells: &[Cell]) -> Result<Event, Rejection> {
        let kind = self.kind(cells, "kind")?.ok_or_else(|| self.missing("kind"))?;
        let channel = self.channel(cells, "channel", false)?.ok_or_else(|| self.missing("channel"))?;
        let online_level = self.number(cells, "online_level")?.ok_or_else(|| self.missing("online_level"))?;
        let mut event = self.template.clone();
        event.event_id = self.text(cells, "event_id")?.unwrap_or_default();
        event.agency_code = self.agency(cells)?;
        event.occurred_at = self.time(cells, "occurred_at")?.ok_or_else(|| self.missing("occurred_at"))?;
        event.dossier_id = self.required_text(cells, "dossier_id")?;
        event.procedure_code = self.required_text(cells, "procedure_code")?;
        event.kind = kind;
        event.channel = channel;
        event.online_level = online_level;
        event.result_channel = self.channel(cells, "result_channel", true)?;
        event.due_at = self.time(cells, "due_at")?;
        event.legal_max_days = self.number(cells, "legal_max_days")?;
        event.fee_bearing = self.boolean(cells, "fee_bearing")?;
        event.digitized = self.boolean(cells, "digitized")?;
        let mut event = Event::Dossier(event);
        if event.event_id().is_empty() {
            let id = derive_event_id(&event);
            if let Event::Dossier(e) = &mut event {
                e.event_id = id;
            }
        }
        Ok(event)
    }

    fn missing(&self, field: &str) -> Rejection {
        Rejection::new(RejectReason::MissingField, format!("{:?} is empty", self.header(field)))
    }

    fn snapshot_row(&self, cells: &[Cell]) -> Result<Vec<Event>, Rejection> {
        let agency = self.agency(cells)?;
        let dossier_id = self.required_text(cells, "dossier_id")?;
        let procedure_code = self.required_text(cells, "procedure_code")?;
        let channel = self.channel(cells, "channel", false)?.ok_or_else(|| self.missing("channel"))?;
        let online_level = self.number(cells, "online_level")?.unwrap_or(if channel == Channel::Online {
            self.profile.defaults.online_level_online
        } else {
            self.profile.defaults.online_level_other
        });
        let state = self.kind(cells, "state")?;
        let due_at = self.time(cells, "due_at")?;
        let legal_max_days = self.number(cells, "legal_max_days")?;
        let result_channel = self.channel(cells, "result_channel", true)?;
        let fee_bearing = self.boolean(cells, "fee_bearing")?;
        let digitized = self.boolean(cells, "digitized")?;
        let mut steps: Vec<(DossierEventKind, i64, bool)> = Vec::new();
        for (field, kind) in DATED_STEPS {
            if let Some(at) = self.time(cells, field)? {
                steps.push((kind, at, true));
            }
        }
        if let Some(state) = state {
            if !steps.iter().any(|(k, ..)| *k == state) {
                // A step known only from the state: at the row's latest date.
                let latest = steps.iter().map(|(_, at, _)| *at).max().ok_or_else(|| {
                    Rejection::new(
                        RejectReason::MissingField,
                        format!("no date: the dossier needs {:?} or another date", self.header("received_at")),
                    )
                })?;
                steps.push((state, latest, false));
            }
        }
        if steps.is_empty() {
            return Err(Rejection::new(
                RejectReason::MissingField,
                format!("no date and no state: {:?} is empty", self.header("received_at")),
            ));
        }
        Ok(steps
            .into_iter()
            .map(|(kind, at, dated)| {
                let mut event = self.template.clone();
                event.event_id = snapshot_event_id(&agency, &dossier_id, kind, dated.then_some(at));
                event.agency_code = agency.clone();
                event.occurred_at = at;
                event.dossier_id = dossier_id.clone();
                event.procedure_code = procedure_code.clone();
                event.kind = kind;
                event.channel = channel;
                event.online_level = online_level;
                event.result_channel = if kind == DossierEventKind::ResultReturned { result_channel } else { None };
                event.due_at = due_at;
                event.legal_max_days = legal_max_days;
                event.fee_bearing = fee_bearing;
                event.digitized = digitized;
                Event::Dossier(event)
            })
            .collect())
    }
}

/// A local date and time in one of `formats` (a format without a time gives midnight).
pub fn parse_local(text: &str, formats: &[String]) -> Option<NaiveDateTime> {
    for format in formats {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t);
        }
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return d.and_hms_opt(0, 0, 0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(profile: &str, headers: &[&str]) -> Mapper {
        let profile = Profile::load(profile).unwrap();
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        let binding = profile.bind(&headers);
        Mapper::new(profile, binding, headers, None, HashMap::new())
    }

    fn text(cells: &[&str]) -> Vec<Cell> {
        cells.iter().map(|c| if c.is_empty() { Cell::Empty } else { Cell::Text(c.to_string()) }).collect()
    }

    const VI: [&str; 8] = [
        "Mã đơn vị",
        "Mã hồ sơ",
        "Mã thủ tục",
        "Ngày tiếp nhận",
        "Ngày hẹn trả",
        "Ngày có kết quả",
        "Hình thức nộp",
        "Trạng thái",
    ];

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                Event::Dossier(d) => d.kind.as_str(),
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn a_snapshot_row_becomes_its_steps_with_stable_ids() {
        let m = mapper("vi-export", &VI);
        let week1 =
            text(&["SNV", "HS-1", "1.001", "20/11/2026 08:30", "27/11/2026 17:00", "", "Trực tuyến", "Đang xử lý"]);
        let week2 = text(&[
            "SNV",
            "HS-1",
            "1.001",
            "20/11/2026 08:30",
            "27/11/2026 17:00",
            "25/11/2026 10:00",
            "Trực tuyến",
            "Đã xử lý",
        ]);
        let a = m.map(&week1).unwrap();
        let b = m.map(&week2).unwrap();
        assert_eq!(kinds(&a), ["received", "in_process"]);
        assert_eq!(kinds(&b), ["received", "processed"]);
        assert_eq!(a[0].event_id(), b[0].event_id(), "the reception is the same event in both weeks");
        assert_eq!(a[0].occurred_at(), parse_utc("2026-11-20T01:30:00Z"));
        let Event::Dossier(received) = &a[0] else { unreachable!() };
        assert_eq!((received.channel, received.online_level), (Channel::Online, 4));
        assert_eq!(received.due_at, Some(parse_utc("2026-11-27T10:00:00Z")));
        assert!(uuid::Uuid::parse_str(a[1].event_id()).is_ok());
    }

    fn parse_utc(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros()
    }

    #[test]
    fn national_sync_codes_and_compact_dates_map() {
        let m = mapper(
            "national-sync",
            &[
                "MaHoSo",
                "MaTTHC",
                "NgayTiepNhan",
                "NgayHenTra",
                "NgayTra",
                "KenhThucHien",
                "TrangThaiHoSo",
                "DonViXuLy",
                "HinhThuc",
            ],
        );
        let row =
            text(&["H31.1-1", "2.002", "20261120083000", "20261127170000", "20261126090000", "3", "10", "STP", "1"]);
        let events = m.map(&row).unwrap();
        assert_eq!(kinds(&events), ["received", "result_returned"]);
        let Event::Dossier(returned) = &events[1] else { unreachable!() };
        assert_eq!(
            (returned.channel, returned.result_channel, returned.online_level),
            (Channel::Postal, Some(Channel::Postal), 2)
        );
    }

    #[test]
    fn workbook_dates_and_serials_are_local_times() {
        let m = mapper("vi-export", &VI);
        let mut row = text(&["SNV", "HS-2", "1.001", "", "", "", "Trực tiếp", "2"]);
        row[3] = Cell::Number(46346.354166666664); // 2026-11-20 08:30
        row[4] = Cell::Date(NaiveDate::from_ymd_opt(2026, 11, 27).unwrap().and_hms_opt(17, 0, 0).unwrap());
        let events = m.map(&row).unwrap();
        assert_eq!(events[0].occurred_at(), parse_utc("2026-11-20T01:30:00Z"));
        let Event::Dossier(e) = &events[0] else { unreachable!() };
        assert_eq!(e.due_at, Some(parse_utc("2026-11-27T10:00:00Z")));
    }

    #[test]
    fn bad_cells_are_refused_with_the_header_named() {
        let m = mapper("vi-export", &VI);
        let cases: [(&[&str], &str); 6] = [
            (
                &["SNV", "HS", "1", "32/11/2026 08:30", "", "", "Trực tiếp", "2"],
                "\"Ngày tiếp nhận\": \"32/11/2026 08:30\" is not a date",
            ),
            (&["SNV", "HS", "1", "20/11/2026", "", "", "Fax", "2"], "\"Hình thức nộp\": \"Fax\" is not a channel"),
            (
                &["SNV", "HS", "1", "20/11/2026", "", "", "Trực tiếp", "Lưu kho"],
                "\"Trạng thái\": \"Lưu kho\" is not a state",
            ),
            (&["SNV", "", "1", "20/11/2026", "", "", "Trực tiếp", "2"], "\"Mã hồ sơ\" is empty"),
            (&["", "HS", "1", "20/11/2026", "", "", "Trực tiếp", "2"], "or pass --agency"),
            (&["SNV", "HS", "1", "", "", "", "Trực tiếp", "4"], "no date"),
        ];
        for (cells, message) in cases {
            let error = m.map(&text(cells)).unwrap_err();
            assert!(error.message.contains(message), "{cells:?}: {}", error.message);
        }
        let mut row = text(&["SNV", "HS", "1", "20/11/2026", "", "", "Trực tiếp", "2"]);
        row[3] = Cell::Error("#N/A".into());
        assert!(m.map(&row).unwrap_err().message.contains("holds an error"));
        let levels = mapper(
            "vi-export",
            &["Mã đơn vị", "Mã hồ sơ", "Mã thủ tục", "Ngày tiếp nhận", "Hình thức nộp", "Trạng thái", "Mức độ"],
        );
        for (level, ok) in
            [("3", true), ("4.0", true), ("Mức độ 3", true), ("3.5", false), ("cao", false), ("-3", false)]
        {
            let row = text(&["SNV", "HS", "1", "20/11/2026 08:30", "Trực tuyến", "3", level]);
            assert_eq!(levels.map(&row).is_ok(), ok, "level {level:?}");
        }
    }

    #[test]
    fn the_parpulse_profile_reads_todays_columns_and_vietnamese_dates() {
        let m = mapper(
            "parpulse",
            &["agency_code", "dossier_id", "procedure_code", "kind", "channel", "online_level", "occurred_at"],
        );
        let a = m.map(&text(&["SNV", "D", "1", "received", "online", "4", "20/11/2026 08:30"])).unwrap();
        let b = m.map(&text(&["SNV", "D", "1", "received", "online", "4", "2026-11-20 08:30:00"])).unwrap();
        assert_eq!(a, b);
        assert!(m.map(&text(&["SNV", "D", "1", "received", "online", "4", "20/11/2026"])).is_err());
        assert!(m.map(&text(&["SNV", "D", "1", "approved", "online", "4", "20/11/2026 08:30"])).is_err());
    }
}
