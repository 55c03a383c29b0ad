//! Mapping profiles: how a source's columns, dates, states and channels become
//! parpulse's fields (TOML, `deploy/profiles/*.toml`; docs/INGEST.md, "Profiles").
//!
//! A profile is checked when it is loaded: unknown fields, a required field without
//! columns, a header claimed twice, a bad date format or a state that is no lifecycle
//! step are errors naming the profile, before any file is read.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::format::{Item, StrftimeItems};
use parpulse_core::{Channel, DossierEventKind};
use serde::Deserialize;

/// The profiles shipped with parpulse (the files of `deploy/profiles/`, built in).
pub const BUILT_IN: [(&str, &str); 3] = [
    ("parpulse", include_str!("../../../../deploy/profiles/parpulse.toml")),
    ("vi-export", include_str!("../../../../deploy/profiles/vi-export.toml")),
    ("national-sync", include_str!("../../../../deploy/profiles/national-sync.toml")),
];

/// What one row of the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// One lifecycle event per row (parpulse's own columns).
    Events,
    /// One dossier per row with its dates and current state; expanded into events.
    Snapshot,
}

/// The parpulse fields a profile may map, per shape.
pub const EVENT_FIELDS: [&str; 13] = [
    "event_id",
    "agency_code",
    "dossier_id",
    "procedure_code",
    "kind",
    "channel",
    "online_level",
    "occurred_at",
    "due_at",
    "legal_max_days",
    "result_channel",
    "fee_bearing",
    "digitized",
];
pub const SNAPSHOT_FIELDS: [&str; 17] = [
    "agency_code",
    "dossier_id",
    "procedure_code",
    "channel",
    "online_level",
    "state",
    "submitted_at",
    "received_at",
    "due_at",
    "legal_max_days",
    "supplement_requested_at",
    "refused_at",
    "processed_at",
    "returned_at",
    "result_channel",
    "fee_bearing",
    "digitized",
];

/// Fields holding dates (parsed with the profile's formats, or Excel date cells).
pub const DATE_FIELDS: [&str; 8] = [
    "occurred_at",
    "due_at",
    "submitted_at",
    "received_at",
    "supplement_requested_at",
    "refused_at",
    "processed_at",
    "returned_at",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    #[serde(default)]
    description: String,
    shape: Shape,
    #[serde(default)]
    date_formats: Vec<String>,
    required: Vec<String>,
    columns: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    states: BTreeMap<String, String>,
    #[serde(default)]
    kinds: BTreeMap<String, String>,
    #[serde(default)]
    channels: BTreeMap<String, String>,
    #[serde(default)]
    result_channels: BTreeMap<String, String>,
    #[serde(default)]
    defaults: Defaults,
}

/// Values used when a column is absent or empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Online service level of online dossiers without a level column.
    #[serde(default = "four")]
    pub online_level_online: i32,
    /// Online service level of in-person and postal dossiers without a level column.
    #[serde(default = "two")]
    pub online_level_other: i32,
}

fn four() -> i32 {
    4
}
fn two() -> i32 {
    2
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { online_level_online: 4, online_level_other: 2 }
    }
}

/// A loaded, checked profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub shape: Shape,
    pub date_formats: Vec<String>,
    pub required: Vec<String>,
    /// parpulse field -> accepted headers (normalized).
    pub columns: BTreeMap<String, Vec<String>>,
    /// parpulse field -> accepted headers as the profile spells them (for messages).
    pub column_names: BTreeMap<String, Vec<String>>,
    /// Normalized source value -> lifecycle step (snapshot states, or event kinds).
    pub states: BTreeMap<String, DossierEventKind>,
    pub channels: BTreeMap<String, Channel>,
    pub result_channels: BTreeMap<String, Channel>,
    pub defaults: Defaults,
}

#[derive(Debug, thiserror::Error)]
#[error("profile {origin}: {message}")]
pub struct ProfileError {
    pub origin: String,
    pub message: String,
}

/// Header and value comparison: trimmed, lower case, inner spaces collapsed, a trailing
/// `:` or `(*)` dropped.
pub fn normalize(text: &str) -> String {
    let text = text.trim().trim_end_matches("(*)").trim_end_matches(':').trim();
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

fn parse_wire<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

impl Profile {
    /// A built-in profile by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(name, _)| *name == name_or_path) {
            return Profile::from_toml(text, name_or_path);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            let names: Vec<_> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            return Err(ProfileError {
                origin: name_or_path.to_owned(),
                message: format!("neither a built-in profile ({}) nor a file", names.join(", ")),
            });
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProfileError { origin: path.display().to_string(), message: e.to_string() })?;
        Profile::from_toml(&text, &path.display().to_string())
    }

    /// Every built-in profile (they are checked by the unit tests).
    pub fn built_in() -> Vec<Profile> {
        BUILT_IN
            .iter()
            .map(|(name, text)| Profile::from_toml(text, name).expect("built-in profiles are valid"))
            .collect()
    }

    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let error = |message: String| ProfileError { origin: origin.to_owned(), message };
        let file: ProfileFile = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        let fields: &[&str] = match file.shape {
            Shape::Events => &EVENT_FIELDS,
            Shape::Snapshot => &SNAPSHOT_FIELDS,
        };
        let shape = if file.shape == Shape::Events { "events" } else { "snapshot" };
        let mut columns = BTreeMap::new();
        let mut claimed: BTreeMap<String, String> = BTreeMap::new();
        for (field, headers) in &file.columns {
            if !fields.contains(&field.as_str()) {
                return Err(error(format!(
                    "[columns] {field:?} is not a field of the {shape} shape (fields: {})",
                    fields.join(", ")
                )));
            }
            if headers.is_empty() || headers.iter().any(|h| normalize(h).is_empty()) {
                return Err(error(format!("[columns] {field}: give at least one non-empty header")));
            }
            let mut normalized = Vec::new();
            for header in headers {
                let key = normalize(header);
                if let Some(other) = claimed.insert(key.clone(), field.clone()) {
                    return Err(error(format!("[columns] header {header:?} is claimed by both {other} and {field}")));
                }
                normalized.push(key);
            }
            columns.insert(field.clone(), normalized);
        }
        for field in &file.required {
            if !fields.contains(&field.as_str()) {
                return Err(error(format!("required field {field:?} is not a field of the {shape} shape")));
            }
            if !columns.contains_key(field) {
                return Err(error(format!("required field {field:?} has no [columns] entry")));
            }
        }
        for must in ["dossier_id", "procedure_code", "channel"] {
            if !file.required.iter().any(|f| f == must) {
                return Err(error(format!("{must:?} must be required")));
            }
        }
        match file.shape {
            Shape::Events => {
                for must in ["kind", "occurred_at"] {
                    if !file.required.iter().any(|f| f == must) {
                        return Err(error(format!("{must:?} must be required in the events shape")));
                    }
                }
                if !file.states.is_empty() {
                    return Err(error("[states] belongs to the snapshot shape; use [kinds]".into()));
                }
            }
            Shape::Snapshot => {
                if !file.kinds.is_empty() {
                    return Err(error("[kinds] belongs to the events shape; use [states]".into()));
                }
                if columns.contains_key("state") && file.states.is_empty() {
                    return Err(error("a state column needs a [states] table".into()));
                }
            }
        }
        for format in &file.date_formats {
            if format.trim().is_empty() || StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
                return Err(error(format!("date format {format:?} is not a valid chrono format")));
            }
        }
        let mut states = BTreeMap::new();
        for (value, kind) in file.states.iter().chain(&file.kinds) {
            let parsed: DossierEventKind = parse_wire(kind).ok_or_else(|| {
                let names: Vec<_> = DossierEventKind::ALL.iter().map(|k| k.as_str()).collect();
                error(format!("{value:?} = {kind:?}: not a lifecycle step ({})", names.join(", ")))
            })?;
            if states.insert(normalize(value), parsed).is_some() {
                return Err(error(format!("state {value:?} is given twice")));
            }
        }
        let channel_table = |table: &BTreeMap<String, String>| -> Result<BTreeMap<String, Channel>, ProfileError> {
            let mut out = BTreeMap::new();
            for (value, channel) in table {
                let parsed: Channel = parse_wire(channel).ok_or_else(|| {
                    error(format!("{value:?} = {channel:?}: not a channel (in_person, online, postal)"))
                })?;
                if out.insert(normalize(value), parsed).is_some() {
                    return Err(error(format!("channel {value:?} is given twice")));
                }
            }
            Ok(out)
        };
        let channels = channel_table(&file.channels)?;
        let mut result_channels = channel_table(&file.result_channels)?;
        if result_channels.is_empty() {
            result_channels = channels.clone();
        }
        for level in [file.defaults.online_level_online, file.defaults.online_level_other] {
            if !(2..=4).contains(&level) {
                return Err(error(format!("default online level {level} is not 2, 3 or 4")));
            }
        }
        Ok(Profile {
            name: file.name,
            description: file.description,
            shape: file.shape,
            date_formats: file.date_formats,
            required: file.required,
            columns,
            column_names: file.columns,
            states,
            channels,
            result_channels,
            defaults: file.defaults,
        })
    }

    /// Maps a header row onto fields: field -> column index. Headers no field claims are
    /// returned as ignored (in their original spelling).
    pub fn bind(&self, headers: &[String]) -> Binding {
        let mut fields = BTreeMap::new();
        let mut ignored = Vec::new();
        for (index, header) in headers.iter().enumerate() {
            let key = normalize(header);
            if key.is_empty() {
                continue;
            }
            match self.columns.iter().find(|(_, names)| names.contains(&key)) {
                Some((field, _)) => {
                    fields.entry(field.clone()).or_insert(index);
                }
                None => ignored.push(header.trim().to_owned()),
            }
        }
        let missing = self.required.iter().filter(|f| !fields.contains_key(*f)).cloned().collect();
        Binding { fields, ignored, missing }
    }

    /// The headers a field may have, as the profile spells them (for messages).
    pub fn headers_of(&self, field: &str) -> String {
        self.column_names.get(field).map(|h| h.join(" / ")).unwrap_or_else(|| field.to_owned())
    }
}

/// A header row bound to a profile.
#[derive(Debug, Clone, Default)]
pub struct Binding {
    pub fields: BTreeMap<String, usize>,
    pub ignored: Vec<String>,
    pub missing: Vec<String>,
}

impl Binding {
    pub fn get(&self, field: &str) -> Option<usize> {
        self.fields.get(field).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_profiles_load_and_know_the_national_codes() {
        let profiles = Profile::built_in();
        assert_eq!(profiles.len(), 3);
        let sync = Profile::load("national-sync").unwrap();
        assert_eq!(sync.states["5"], DossierEventKind::SupplementRequested);
        assert_eq!(sync.states["10"], DossierEventKind::ResultReturned);
        assert_eq!(sync.channels["3"], Channel::Postal);
        let vi = Profile::load("vi-export").unwrap();
        assert_eq!(vi.states[&normalize("ĐÃ TRẢ KẾT QUẢ")], DossierEventKind::ResultReturned);
    }

    #[test]
    fn headers_bind_whatever_their_case_and_spacing() {
        let vi = Profile::load("vi-export").unwrap();
        let headers: Vec<String> =
            ["STT", "MÃ HỒ SƠ", " Mã  thủ tục ", "Ngày tiếp nhận (*)", "Hình thức nộp", "Trạng thái", "Mã đơn vị"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let binding = vi.bind(&headers);
        assert_eq!(binding.get("dossier_id"), Some(1));
        assert_eq!(binding.get("procedure_code"), Some(2));
        assert_eq!(binding.ignored, vec!["STT".to_string()]);
        assert!(binding.missing.is_empty(), "{:?}", binding.missing);
    }

    fn broken(replace: &str, with: &str) -> String {
        let text = BUILT_IN[1].1.replace(replace, with);
        assert_ne!(text, BUILT_IN[1].1, "the test edits the profile");
        Profile::from_toml(&text, "test.toml").unwrap_err().to_string()
    }

    #[test]
    fn bad_profiles_are_refused_with_a_clear_reason() {
        assert!(broken("\"10\" = \"result_returned\"", "\"10\" = \"finished\"").contains("not a lifecycle step"));
        assert!(broken("\"3\" = \"postal\"", "\"3\" = \"pigeon\"").contains("not a channel"));
        assert!(broken("received_at = [", "received_on = [").contains("not a field of the snapshot shape"));
        assert!(broken("\"%d/%m/%Y %H:%M:%S\"", "\"%d/%m/%Y %Q\"").contains("not a valid chrono format"));
        assert!(broken("due_at = [\"Ngày hẹn trả\"", "due_at = [\"Mã hồ sơ\"").contains("claimed by both"));
        assert!(broken("shape = \"snapshot\"", "shape = \"rows\"").contains("unknown variant"));
        assert!(broken(
            "\"Đã trả\" = \"result_returned\"",
            "\"đã  trả\" = \"processed\"\n\"Đã trả\" = \"result_returned\""
        )
        .contains("given twice"));
        assert!(Profile::load("no-such-profile").unwrap_err().to_string().contains("neither a built-in profile"));
    }
}
