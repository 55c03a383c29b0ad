//! The procedure catalogue (danh mục thủ tục hành chính): which administrative
//! procedures each unit handles, with the national code (mã TTHC), the Vietnamese name,
//! the online level the unit offers (2: forms only, 3: partial online, 4: full online)
//! and whether the procedure bears a fee or charge (phí, lệ phí).
//!
//! `deploy/procedures.toml` is the demo province's catalogue, built in and replaceable
//! at start (`PARPULSE_PROCEDURES`). It is validated against the agency registry: every
//! error names the line of the entry and what is wrong. [`ProcedureCatalogue::from_csv`]
//! reads a list as the national procedure database exports it (docs/KPIS.md).
//!
//! With it the exporter computes, per unit and window, the share of the unit's
//! level-3/4 procedures that had at least one online dossier (tỷ lệ dịch vụ công trực
//! tuyến mức độ 3, 4 có phát sinh hồ sơ), and counts dossiers whose procedure is not in
//! the unit's catalogue (they still count everywhere else).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use toml::Spanned;

use crate::agency::AgencyRegistry;

/// The longest procedure code accepted (national codes look like `1.001234` or
/// `2.000986.000.00.00.H28`).
pub const MAX_CODE_LEN: usize = 64;

/// One procedure as a unit offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    /// Mã TTHC in the national procedure database.
    pub code: String,
    /// Vietnamese name (UTF-8).
    pub name: String,
    /// Online level offered: 2, 3 or 4.
    pub level: u8,
    /// Bears a fee or charge (phí, lệ phí).
    pub fee_bearing: bool,
}

impl Procedure {
    /// Offered as an online public service at level 3 or 4 (partial or full online).
    pub fn is_online_level(&self) -> bool {
        self.level >= 3
    }
}

/// A catalogue that cannot be used. Every message names the line of the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("procedure catalogue line {line}: not a valid catalogue file: {message}")]
    Syntax { line: usize, message: String },
    #[error("procedure catalogue line {line}: procedure code {code:?} is malformed: use 1-{MAX_CODE_LEN} characters of A-Z, a-z, 0-9, '.', '-' and '_' (e.g. 1.001234)")]
    BadCode { line: usize, code: String },
    #[error("procedure catalogue line {line}: procedure {code} has no name")]
    NoName { line: usize, code: String },
    #[error(
        "procedure catalogue line {line}: procedure {code} has level {level}: the online level offered is 2, 3 or 4"
    )]
    BadLevel { line: usize, code: String, level: i64 },
    #[error("procedure catalogue line {line}: procedure {code} names no unit")]
    NoUnit { line: usize, code: String },
    #[error(
        "procedure catalogue line {line}: procedure {code} names unit {unit:?}, which is not in the agency registry"
    )]
    UnknownUnit { line: usize, code: String, unit: String },
    #[error("procedure catalogue line {line}: procedure {code} is listed for unit {unit} again (first on line {first_line})")]
    Duplicate { line: usize, code: String, unit: String, first_line: usize },
    #[error("procedure catalogue lists no procedure")]
    Empty,
    #[error("procedure list: the header has no column for {column} (looked for: {aliases})")]
    MissingColumn { column: &'static str, aliases: String },
    #[error("procedure list line {line}: {message}")]
    Row { line: usize, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    procedure: Vec<Spanned<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    code: String,
    name: String,
    level: i64,
    fee_bearing: bool,
    units: Vec<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn well_formed_code(code: &str) -> bool {
    (1..=MAX_CODE_LEN).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Every unit's procedures, keyed by unit code then procedure code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcedureCatalogue {
    by_unit: BTreeMap<String, BTreeMap<String, Procedure>>,
}

impl ProcedureCatalogue {
    /// The demo province's catalogue shipped with parpulse (`deploy/procedures.toml`),
    /// checked against the demo registry.
    pub fn demo() -> Self {
        Self::from_toml(DEMO_TOML, &AgencyRegistry::demo())
            .expect("deploy/procedures.toml is valid (checked by a unit test)")
    }

    /// Parses and validates a catalogue against `registry`.
    pub fn from_toml(text: &str, registry: &AgencyRegistry) -> Result<Self, CatalogueError> {
        let file: CatalogueFile = toml::from_str(text).map_err(|e| CatalogueError::Syntax {
            line: e.span().map_or(1, |span| line_of(text, span.start)),
            message: e.message().to_owned(),
        })?;
        let mut builder = Builder::default();
        for entry in &file.procedure {
            let line = line_of(text, entry.span().start);
            let e = entry.get_ref();
            builder.add(line, &e.code, &e.name, e.level, e.fee_bearing, &e.units, registry)?;
        }
        builder.finish()
    }

    /// Reads a procedure list exported from the national procedure database (CSV, UTF-8,
    /// `,` or `;`): one row per procedure and unit. Columns are found by their Vietnamese
    /// header (docs/KPIS.md lists the names accepted); the unit column holds a registry
    /// code or a unit's Vietnamese name as in the registry.
    pub fn from_csv(text: &str, registry: &AgencyRegistry) -> Result<Self, CatalogueError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let first = text.lines().next().unwrap_or_default();
        let delimiter = if first.matches(';').count() > first.matches(',').count() { b';' } else { b',' };
        let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| CatalogueError::Row { line: 1, message: e.to_string() })?
            .iter()
            .map(normalise_header)
            .collect();
        let column = |name: &'static str, aliases: &[&str]| {
            header
                .iter()
                .position(|h| aliases.iter().any(|a| normalise_header(a) == *h))
                .ok_or_else(|| CatalogueError::MissingColumn { column: name, aliases: aliases.join(", ") })
        };
        let code_at = column("the procedure code", CSV_CODE)?;
        let name_at = column("the procedure name", CSV_NAME)?;
        let level_at = column("the online level", CSV_LEVEL)?;
        let unit_at = column("the unit", CSV_UNIT)?;
        let fee_at = column("the fee", CSV_FEE).ok();
        let by_name: BTreeMap<String, String> = registry.iter().map(|a| (fold(&a.name), a.code.to_string())).collect();
        let mut builder = Builder::default();
        for (index, record) in reader.records().enumerate() {
            let line = index + 2;
            let record = record.map_err(|e| CatalogueError::Row { line, message: e.to_string() })?;
            let cell = |at: usize| record.get(at).unwrap_or_default().trim();
            if record.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            let level = parse_level(cell(level_at)).ok_or_else(|| CatalogueError::Row {
                line,
                message: format!("online level {:?}: use 2, 3, 4, 'Một phần' or 'Toàn trình'", cell(level_at)),
            })?;
            let unit_cell = cell(unit_at);
            let unit = if registry.get(unit_cell).is_some() {
                unit_cell.to_owned()
            } else {
                by_name.get(&fold(unit_cell)).cloned().unwrap_or_else(|| unit_cell.to_owned())
            };
            let fee_bearing = fee_at.is_some_and(|at| fee_bearing(cell(at)));
            builder.add(line, cell(code_at), cell(name_at), level, fee_bearing, &[unit], registry)?;
        }
        builder.finish()
    }

    /// The catalogue as `deploy/procedures.toml` writes it: one entry per procedure,
    /// with every unit that offers it the same way.
    pub fn to_toml(&self) -> String {
        let mut grouped: BTreeMap<(&str, &str, u8, bool), Vec<&str>> = BTreeMap::new();
        for (unit, procedures) in &self.by_unit {
            for p in procedures.values() {
                grouped.entry((&p.code, &p.name, p.level, p.fee_bearing)).or_default().push(unit);
            }
        }
        // A JSON string is a valid TOML basic string (the same escapes).
        let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let mut out = String::from(
            "# Procedure catalogue (danh mục thủ tục hành chính), written by `parpulse procedures import`.\n",
        );
        for ((code, name, level, fee), units) in grouped {
            let units: Vec<String> = units.iter().map(|u| quote(u)).collect();
            let _ = write!(
                out,
                "\n[[procedure]]\ncode = {}\nname = {}\nlevel = {level}\nfee_bearing = {fee}\nunits = [{}]\n",
                quote(code),
                quote(name),
                units.join(", ")
            );
        }
        out
    }

    /// The procedure `code` as `unit` offers it, if catalogued.
    pub fn get(&self, unit: &str, code: &str) -> Option<&Procedure> {
        self.by_unit.get(unit)?.get(code)
    }

    /// The procedures of one unit, by code.
    pub fn of_unit(&self, unit: &str) -> impl Iterator<Item = &Procedure> {
        self.by_unit.get(unit).into_iter().flat_map(|p| p.values())
    }

    /// Units with at least one procedure.
    pub fn units(&self) -> impl Iterator<Item = &str> {
        self.by_unit.keys().map(String::as_str)
    }

    /// (unit, procedure) pairs.
    pub fn len(&self) -> usize {
        self.by_unit.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_unit.is_empty()
    }
}

/// The demo catalogue's text (`deploy/procedures.toml`).
pub const DEMO_TOML: &str = include_str!("../../../deploy/procedures.toml");

#[derive(Default)]
struct Builder {
    by_unit: BTreeMap<String, BTreeMap<String, (Procedure, usize)>>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        line: usize,
        code: &str,
        name: &str,
        level: i64,
        fee_bearing: bool,
        units: &[String],
        registry: &AgencyRegistry,
    ) -> Result<(), CatalogueError> {
        let code = code.trim();
        if !well_formed_code(code) {
            return Err(CatalogueError::BadCode { line, code: code.to_owned() });
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(CatalogueError::NoName { line, code: code.to_owned() });
        }
        if !(2..=4).contains(&level) {
            return Err(CatalogueError::BadLevel { line, code: code.to_owned(), level });
        }
        if units.is_empty() {
            return Err(CatalogueError::NoUnit { line, code: code.to_owned() });
        }
        for unit in units {
            if registry.get(unit).is_none() {
                return Err(CatalogueError::UnknownUnit { line, code: code.to_owned(), unit: unit.clone() });
            }
            let procedures = self.by_unit.entry(unit.clone()).or_default();
            if let Some((_, first_line)) = procedures.get(code) {
                return Err(CatalogueError::Duplicate {
                    line,
                    code: code.to_owned(),
                    unit: unit.clone(),
                    first_line: *first_line,
                });
            }
            let procedure = Procedure { code: code.to_owned(), name: name.to_owned(), level: level as u8, fee_bearing };
            procedures.insert(code.to_owned(), (procedure, line));
        }
        Ok(())
    }

    fn finish(self) -> Result<ProcedureCatalogue, CatalogueError> {
        if self.by_unit.is_empty() {
            return Err(CatalogueError::Empty);
        }
        let by_unit = self
            .by_unit
            .into_iter()
            .map(|(unit, procedures)| (unit, procedures.into_iter().map(|(code, (p, _))| (code, p)).collect()))
            .collect();
        Ok(ProcedureCatalogue { by_unit })
    }
}

/// Header names accepted for each column of a procedure list (compared without case,
/// diacritics' composition or surrounding spaces).
pub const CSV_CODE: &[&str] = &["Mã thủ tục", "Mã TTHC", "Mã thủ tục hành chính", "MaTTHC", "code"];
pub const CSV_NAME: &[&str] = &["Tên thủ tục", "Tên thủ tục hành chính", "Tên TTHC", "TenTTHC", "name"];
pub const CSV_LEVEL: &[&str] =
    &["Mức độ", "Mức độ DVC", "Mức độ dịch vụ công", "Mức độ DVCTT", "Dịch vụ công trực tuyến", "MucDo", "level"];
pub const CSV_UNIT: &[&str] = &["Mã đơn vị", "Cơ quan thực hiện", "Đơn vị thực hiện", "Đơn vị", "unit"];
pub const CSV_FEE: &[&str] = &["Phí, lệ phí", "Phí/Lệ phí", "Phí lệ phí", "Lệ phí", "Phí", "fee_bearing"];

fn normalise_header(text: &str) -> String {
    fold(text.trim().trim_matches('"'))
}

/// Lower case with collapsed spaces (Vietnamese stays Vietnamese: precomposed and
/// decomposed forms of the same letter are not folded; exports use precomposed text).
fn fold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// `4`, `Mức độ 4`, `Toàn trình` (full online, Decree 42/2022) -> 4; `3`, `Một phần`
/// (partial online) -> 3; `2`, `Mức độ 2`, `Cung cấp thông tin` -> 2.
fn parse_level(text: &str) -> Option<i64> {
    let folded = fold(text);
    if folded.contains("toàn trình") {
        return Some(4);
    }
    if folded.contains("một phần") {
        return Some(3);
    }
    if folded.contains("cung cấp thông tin") {
        return Some(2);
    }
    let digits: Vec<i64> = folded.chars().filter_map(|c| c.to_digit(10)).map(i64::from).collect();
    match digits.as_slice() {
        [level] => Some(*level),
        _ => None,
    }
}

/// A fee cell bears a fee unless it is empty, `0`, `Không` or says free (miễn phí).
fn fee_bearing(text: &str) -> bool {
    let folded = fold(text);
    let free = ["", "0", "không", "không có", "miễn phí", "không thu", "false", "no"];
    !free.contains(&folded.as_str()) && !folded.starts_with("miễn")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> AgencyRegistry {
        AgencyRegistry::demo()
    }

    #[test]
    fn the_demo_catalogue_validates_and_covers_every_unit() {
        let catalogue = ProcedureCatalogue::demo();
        for agency in registry().iter() {
            assert!(catalogue.of_unit(agency.code.as_str()).count() >= 2, "{} has no procedures", agency.code);
        }
        let p = catalogue.get("STP", "1.001000").expect("STP's first demo procedure");
        assert!(p.name.starts_with("Cấp"), "{}", p.name);
        assert!(catalogue.of_unit("KHOAICHAU").any(|p| p.level == 2), "a district procedure only at level 2");
    }

    fn entry(code: &str, level: i64, units: &str) -> String {
        format!("[[procedure]]\ncode = \"{code}\"\nname = \"Cấp phép\"\nlevel = {level}\nfee_bearing = false\nunits = [{units}]\n")
    }

    #[test]
    fn errors_name_the_line_of_the_entry() {
        let ok = entry("1.000001", 3, "\"SNV\"");
        let cases = [
            (format!("{ok}\n{}", entry("1.000002", 5, "\"SNV\"")), "line 8: procedure 1.000002 has level 5"),
            (format!("{ok}\n{}", entry("1 000", 3, "\"SNV\"")), "line 8: procedure code \"1 000\" is malformed"),
            (format!("{ok}\n{}", entry("1.000002", 3, "\"NOWHERE\"")), "line 8: procedure 1.000002 names unit \"NOWHERE\""),
            (format!("{ok}\n{}", entry("1.000001", 4, "\"STP\", \"SNV\"")), "line 8: procedure 1.000001 is listed for unit SNV again (first on line 1)"),
            (format!("{ok}\n{}", entry("1.000002", 3, "")), "line 8: procedure 1.000002 names no unit"),
            (format!("{ok}\n[[procedure]]\ncode = \"x\"\n"), "line 8: not a valid catalogue file"),
            (format!("{ok}\n[[procedure]]\ncode = \"1\"\nname = \" \"\nlevel = 3\nfee_bearing = true\nunits = [\"SNV\"]\n"), "line 8: procedure 1 has no name"),
            ("# nothing\n".to_owned(), "lists no procedure"),
        ];
        for (text, expected) in cases {
            let message = ProcedureCatalogue::from_toml(&text, &registry()).unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} does not contain {expected:?}");
        }
    }

    #[test]
    fn a_unit_offers_each_procedure_once_at_its_own_level() {
        let text = format!("{}\n{}", entry("1.000001", 4, "\"SNV\", \"STP\""), entry("1.000002", 2, "\"STP\""));
        let catalogue = ProcedureCatalogue::from_toml(&text, &registry()).unwrap();
        assert_eq!(catalogue.len(), 3);
        assert!(catalogue.get("SNV", "1.000001").unwrap().is_online_level());
        assert!(!catalogue.get("STP", "1.000002").unwrap().is_online_level());
        assert_eq!(catalogue.get("SNV", "1.000002"), None);
        let again = ProcedureCatalogue::from_toml(&catalogue.to_toml(), &registry()).unwrap();
        assert_eq!(again, catalogue, "to_toml reads back the same catalogue");
    }

    #[test]
    fn a_national_export_imports_with_names_levels_and_fees() {
        let csv = "\u{feff}STT;Mã thủ tục;Tên thủ tục;Lĩnh vực;Mức độ DVC;Phí, lệ phí;Cơ quan thực hiện\n\
                   1;1.001000;Cấp Phiếu lý lịch tư pháp;Lý lịch tư pháp;Toàn trình;200.000 đồng;Sở Tư pháp\n\
                   2;1.001001;Chứng thực bản sao;Chứng thực;Mức độ 3;Miễn phí;STP\n\
                   3;1.001002;Đăng ký khai sinh;Hộ tịch;Một phần;Không;UBND huyện Khoái Châu\n\
                   ;;;;;;\n";
        let catalogue = ProcedureCatalogue::from_csv(csv, &registry()).unwrap();
        assert_eq!(
            catalogue.get("STP", "1.001000"),
            Some(&Procedure {
                code: "1.001000".into(),
                name: "Cấp Phiếu lý lịch tư pháp".into(),
                level: 4,
                fee_bearing: true
            })
        );
        assert_eq!(catalogue.get("STP", "1.001001").map(|p| (p.level, p.fee_bearing)), Some((3, false)));
        assert_eq!(catalogue.get("KHOAICHAU", "1.001002").map(|p| (p.level, p.fee_bearing)), Some((3, false)));
        let bad_unit = "Mã thủ tục,Tên thủ tục,Mức độ,Cơ quan thực hiện\n1.1,Cấp phép,4,Sở Không Có\n";
        assert_eq!(
            ProcedureCatalogue::from_csv(bad_unit, &registry()).unwrap_err().to_string(),
            "procedure catalogue line 2: procedure 1.1 names unit \"Sở Không Có\", which is not in the agency registry"
        );
        let bad_level = "Mã thủ tục,Tên thủ tục,Mức độ,Cơ quan thực hiện\n1.1,Cấp phép,cao,SNV\n";
        assert!(ProcedureCatalogue::from_csv(bad_level, &registry())
            .unwrap_err()
            .to_string()
            .starts_with("procedure list line 2: online level \"cao\""));
        let no_level = "Mã thủ tục,Tên thủ tục,Cơ quan thực hiện\n1.1,Cấp phép,SNV\n";
        assert!(matches!(
            ProcedureCatalogue::from_csv(no_level, &registry()),
            Err(CatalogueError::MissingColumn { column: "the online level", .. })
        ));
    }
}
