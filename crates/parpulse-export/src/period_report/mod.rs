//! The report of a closed period (issue 12, items 2 and 3): per unit, group and
//! province, dossiers carried over, received, resolved, refused and in progress,
//! apology letters and the Decision 766 score, in the shape of the form of
//! Circular 01/2020/TT-VPCP (Biểu số 06/VPCP/KSTT), as CSV, printable HTML and XLSX.
//!
//! Pure: the caller fills a [`PeriodReport`] (from ClickHouse); the renderers
//! only lay it out. The three formats share one list of columns ([`COLUMNS`]),
//! so they always carry the same headers and cells.

mod csv;
mod html;
mod judge;
mod xlsx;

pub use csv::to_csv;
pub use html::to_html;
pub use judge::{build, judge, read, read_as_of, AsOfError, ScopeTotals};
pub use xlsx::{to_xlsx, XLSX_SHEET};

use parpulse_core::period::Period;

/// One row of the report form (Circular 01/2020/TT-VPCP, Biểu số 06/VPCP/KSTT shape).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PeriodCounts {
    /// Received before the period, still in progress at its start (kỳ trước chuyển qua).
    pub carried_over: u64,
    /// New in the period, by channel: online (trực tuyến).
    pub received_online: u64,
    /// New in the period, in person (trực tiếp).
    pub received_in_person: u64,
    /// New in the period, by public postal service (qua dịch vụ bưu chính công ích).
    pub received_postal: u64,
    /// Resolved in the period before the deadline (trước hạn).
    pub resolved_early: u64,
    /// Resolved on the deadline day (đúng hạn).
    pub resolved_on_time: u64,
    /// Resolved after the deadline (quá hạn).
    pub resolved_late: u64,
    /// Of the resolved: withdrawn by the citizen (công dân rút hồ sơ).
    pub withdrawn: u64,
    /// Of the resolved: processing stopped (dừng xử lý).
    pub stopped: u64,
    /// Refused at reception, apart from received and resolved (từ chối tiếp nhận).
    pub refused: u64,
    /// In progress at the period's end, within deadline (đang giải quyết, trong hạn).
    pub open_within_deadline: u64,
    /// In progress at the period's end, overdue (đang giải quyết, quá hạn).
    pub open_overdue: u64,
    /// Of the dossiers to process (carried over or new), results registered for return by
    /// public postal service by the period's end (trả kết quả qua bưu chính công ích).
    pub result_postal: u64,
    /// Apology letters sent at least one working day before the deadline.
    pub apologies_timely: u64,
    /// Apology letters sent later.
    pub apologies_late: u64,
}

impl PeriodCounts {
    /// New in the period, all channels (mới tiếp nhận).
    pub fn received_new(&self) -> u64 {
        self.received_online + self.received_in_person + self.received_postal
    }

    /// Carried over plus new: the form's "Số hồ sơ nhận giải quyết, tổng số".
    pub fn to_process(&self) -> u64 {
        self.carried_over + self.received_new()
    }

    /// Early, on time and late together (số hồ sơ đã giải quyết).
    pub fn resolved(&self) -> u64 {
        self.resolved_early + self.resolved_on_time + self.resolved_late
    }

    /// In progress at the period's end (số hồ sơ đang giải quyết).
    pub fn in_progress(&self) -> u64 {
        self.open_within_deadline + self.open_overdue
    }

    /// The form's balance: every dossier to process was resolved in the period or is
    /// still in progress at its end (refused dossiers are in neither side).
    pub fn is_balanced(&self) -> bool {
        self.to_process() == self.resolved() + self.in_progress()
    }

    /// Adds `other` field by field (units into their group, groups into the province).
    pub fn add(&mut self, other: &PeriodCounts) {
        let PeriodCounts {
            carried_over,
            received_online,
            received_in_person,
            received_postal,
            resolved_early,
            resolved_on_time,
            resolved_late,
            withdrawn,
            stopped,
            refused,
            open_within_deadline,
            open_overdue,
            result_postal,
            apologies_timely,
            apologies_late,
        } = *other;
        self.carried_over += carried_over;
        self.received_online += received_online;
        self.received_in_person += received_in_person;
        self.received_postal += received_postal;
        self.resolved_early += resolved_early;
        self.resolved_on_time += resolved_on_time;
        self.resolved_late += resolved_late;
        self.withdrawn += withdrawn;
        self.stopped += stopped;
        self.refused += refused;
        self.open_within_deadline += open_within_deadline;
        self.result_postal += result_postal;
        self.open_overdue += open_overdue;
        self.apologies_timely += apologies_timely;
        self.apologies_late += apologies_late;
    }
}

/// What a row of the report stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RowScope {
    #[default]
    Unit,
    Group,
    Province,
}

impl RowScope {
    /// The row's kind as the report prints it.
    pub fn name_vi(self) -> &'static str {
        match self {
            RowScope::Unit => "Đơn vị",
            RowScope::Group => "Khối",
            RowScope::Province => "Toàn tỉnh",
        }
    }

    fn class(self) -> &'static str {
        match self {
            RowScope::Unit => "unit",
            RowScope::Group => "group",
            RowScope::Province => "province",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportRow {
    pub scope: RowScope,
    /// Unit code, group code (`department`, `district`) or `province`.
    pub code: String,
    pub name_vi: String,
    pub counts: PeriodCounts,
    /// Decision 766 score of the period, 0 to 1; `None` when no indicator has data.
    pub score_766: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeriodReport {
    pub period: Period,
    pub province_vi: String,
    /// The time the data is shown as of (UTC micros); `None`: as the data stands now.
    pub as_of_micros: Option<i64>,
    pub generated_at_micros: i64,
    /// In the caller's order: the units of a group, then the group's total, ..., then the province.
    pub rows: Vec<ReportRow>,
}

/// The formats a period report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Html,
    Xlsx,
}

impl Format {
    /// `csv`, `html` or `xlsx`.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "csv" => Some(Format::Csv),
            "html" => Some(Format::Html),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// The report in `format`, as the bytes of a file or an HTTP body.
pub fn render(report: &PeriodReport, format: Format) -> Result<Vec<u8>, ReportError> {
    Ok(match format {
        Format::Csv => to_csv(report).into_bytes(),
        Format::Html => to_html(report).into_bytes(),
        Format::Xlsx => to_xlsx(report)?,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing the XLSX workbook: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}

/// The value of one cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Text(String),
    Count(u64),
    /// A score out of 100, rounded to two decimals; empty when absent.
    Points(Option<f64>),
}

impl Cell {
    /// The cell as CSV and HTML print it: counts as integers, points with a '.'.
    pub(crate) fn text(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Points(points) => points.map_or_else(String::new, |p| p.to_string()),
        }
    }
}

/// The Decision 766 score (a ratio) on the decision's scale of 100, two decimals.
pub(crate) fn points_766(score: Option<f64>) -> Option<f64> {
    score.map(|s| (s * 10_000.0).round() / 100.0)
}

/// A column of the report: its header path (top level first, one to three labels),
/// a stable key (HTML `data-kpi`) and its value in a row.
pub(crate) struct Column {
    pub header: &'static [&'static str],
    pub key: &'static str,
    /// Width in the XLSX sheet, in characters.
    pub width: f64,
    pub value: fn(&ReportRow) -> Cell,
}

impl Column {
    /// The header in one line (CSV): the levels joined by " - ".
    pub(crate) fn flat_header(&self) -> String {
        self.header.join(" - ")
    }
}

/// Header rows of the HTML table and the XLSX sheet.
pub(crate) const HEADER_ROWS: usize = 3;

const RECEIVED: &str = "Số hồ sơ nhận giải quyết";
const NEW: &str = "Mới tiếp nhận";
const RESOLVED: &str = "Số hồ sơ đã giải quyết";
const IN_PROGRESS: &str = "Số hồ sơ đang giải quyết";
const APOLOGIES: &str = "Thư xin lỗi";

macro_rules! count {
    ($header:expr, $key:literal, |$c:ident| $value:expr) => {
        Column {
            header: $header,
            key: $key,
            width: 11.0,
            value: |row| Cell::Count((|$c: &PeriodCounts| $value)(&row.counts)),
        }
    };
}

/// Every column, in order, as the three formats print them.
pub(crate) const COLUMNS: &[Column] = &[
    Column { header: &["Mã"], key: "code", width: 12.0, value: |row| Cell::Text(row.code.clone()) },
    Column { header: &["Đơn vị"], key: "name", width: 38.0, value: |row| Cell::Text(row.name_vi.clone()) },
    Column {
        header: &["Phạm vi"], key: "scope", width: 10.0, value: |row| Cell::Text(row.scope.name_vi().to_owned())
    },
    count!(&[RECEIVED, "Tổng số"], "to_process", |c| c.to_process()),
    count!(&[RECEIVED, "Kỳ trước chuyển qua"], "carried_over", |c| c.carried_over),
    count!(&[RECEIVED, NEW, "Tổng số"], "received_new", |c| c.received_new()),
    count!(&[RECEIVED, NEW, "Trực tuyến"], "received_online", |c| c.received_online),
    count!(&[RECEIVED, NEW, "Trực tiếp"], "received_in_person", |c| c.received_in_person),
    count!(&[RECEIVED, NEW, "Qua bưu chính công ích"], "received_postal", |c| c.received_postal),
    count!(&[RESOLVED, "Tổng số"], "resolved", |c| c.resolved()),
    count!(&[RESOLVED, "Trước hạn"], "resolved_early", |c| c.resolved_early),
    count!(&[RESOLVED, "Đúng hạn"], "resolved_on_time", |c| c.resolved_on_time),
    count!(&[RESOLVED, "Quá hạn"], "resolved_late", |c| c.resolved_late),
    count!(&[IN_PROGRESS, "Tổng số"], "in_progress", |c| c.in_progress()),
    count!(&[IN_PROGRESS, "Trong hạn"], "open_within_deadline", |c| c.open_within_deadline),
    count!(&[IN_PROGRESS, "Quá hạn"], "open_overdue", |c| c.open_overdue),
    count!(&["Từ chối tiếp nhận"], "refused", |c| c.refused),
    count!(&["Rút hồ sơ (trong số đã giải quyết)"], "withdrawn", |c| c.withdrawn),
    count!(&["Dừng xử lý (trong số đã giải quyết)"], "stopped", |c| c.stopped),
    count!(&["Kết quả trả qua bưu chính công ích"], "result_postal", |c| c.result_postal),
    count!(&[APOLOGIES, "Đúng hạn"], "apologies_timely", |c| c.apologies_timely),
    count!(&[APOLOGIES, "Muộn"], "apologies_late", |c| c.apologies_late),
    Column {
        header: &["Điểm 766 (thang 100)"],
        key: "score_766",
        width: 11.0,
        value: |row| Cell::Points(points_766(row.score_766)),
    },
];

/// A cell of the multi-level header: its label at `row`, `col`, spanning
/// `rows` x `cols` cells (row 0 is the top level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderCell {
    pub row: usize,
    pub col: usize,
    pub rows: usize,
    pub cols: usize,
    pub label: &'static str,
}

/// The header as merged cells: a column's last label reaches down to the bottom
/// row; neighbouring columns under the same upper labels share one cell.
pub(crate) fn header_cells() -> Vec<HeaderCell> {
    let mut cells = Vec::new();
    for row in 0..HEADER_ROWS {
        let mut col = 0;
        while col < COLUMNS.len() {
            let header = COLUMNS[col].header;
            if row >= header.len() {
                col += 1;
                continue;
            }
            let leaf = row + 1 == header.len();
            let mut cols = 1;
            if !leaf {
                while COLUMNS
                    .get(col + cols)
                    .is_some_and(|next| next.header.len() > row + 1 && next.header[..=row] == header[..=row])
                {
                    cols += 1;
                }
            }
            let rows = if leaf { HEADER_ROWS - row } else { 1 };
            cells.push(HeaderCell { row, col, rows, cols, label: header[row] });
            col += cols;
        }
    }
    cells
}

/// Vietnamese label of a time for the report's heading.
pub(crate) fn as_of_vi(report: &PeriodReport) -> String {
    report.as_of_micros.map_or_else(
        || "số liệu tại thời điểm lập báo cáo".to_owned(),
        |t| format!("số liệu tính đến {}", parpulse_core::time::format_local(t)),
    )
}

/// The form this report follows, for the heading of every format.
pub(crate) const FORM_VI: &str = "Theo Biểu số 06/VPCP/KSTT (Thông tư 01/2020/TT-VPCP)";
/// The report's title.
pub(crate) const TITLE_VI: &str = "BÁO CÁO TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use parpulse_core::LocalDay;

    pub(crate) fn counts(seed: u64) -> PeriodCounts {
        PeriodCounts {
            carried_over: seed,
            received_online: seed + 1,
            received_in_person: seed + 2,
            received_postal: seed + 3,
            resolved_early: seed + 4,
            resolved_on_time: seed + 5,
            resolved_late: seed + 6,
            withdrawn: 1,
            stopped: 2,
            refused: 3,
            open_within_deadline: seed + 7,
            open_overdue: seed + 8,
            result_postal: 6,
            apologies_timely: 4,
            apologies_late: 5,
        }
    }

    /// Two units of the departments, their total, and the province.
    pub(crate) fn report() -> PeriodReport {
        let unit = |code: &str, name: &str, seed, score| ReportRow {
            scope: RowScope::Unit,
            code: code.into(),
            name_vi: name.into(),
            counts: counts(seed),
            score_766: score,
        };
        let a = unit("SNV", "Sở Nội vụ", 10, Some(0.8525));
        let b = unit("STP", "Sở Tư pháp <\"A&B\">, \"số 2\"", 20, None);
        let mut total = a.counts;
        total.add(&b.counts);
        let group = ReportRow {
            scope: RowScope::Group,
            code: "department".into(),
            name_vi: "Khối sở, ban, ngành".into(),
            counts: total,
            score_766: Some(0.9),
        };
        let province = ReportRow {
            scope: RowScope::Province,
            code: "province".into(),
            name_vi: "Tỉnh Hưng Yên".into(),
            counts: total,
            score_766: Some(1.0),
        };
        PeriodReport {
            period: Period::parse("2019-11").unwrap(),
            province_vi: "Tỉnh Hưng Yên".into(),
            as_of_micros: Some(LocalDay::from_ymd(2019, 12, 1).unwrap().start_micros()),
            generated_at_micros: LocalDay::from_ymd(2019, 12, 2).unwrap().start_micros() + 3_600_000_000,
            rows: vec![a, b, group, province],
        }
    }

    #[test]
    fn every_format_renders_by_its_name() {
        let report = report();
        for name in ["csv", "html", "xlsx"] {
            let format = Format::parse(name).expect("a known format");
            assert_eq!(format.extension(), name);
            let bytes = render(&report, format).expect("rendered");
            match format {
                Format::Csv => assert_eq!(bytes, to_csv(&report).into_bytes()),
                Format::Html => assert_eq!(bytes, to_html(&report).into_bytes()),
                Format::Xlsx => assert_eq!(&bytes[..2], b"PK", "an XLSX is a zip archive"),
            }
        }
        assert_eq!(Format::parse("pdf"), None);
    }

    #[test]
    fn derived_totals_and_sums() {
        let c = counts(10);
        assert_eq!(c.received_new(), 11 + 12 + 13);
        assert_eq!(c.to_process(), 10 + 36);
        assert_eq!(c.resolved(), 14 + 15 + 16);
        assert_eq!(c.in_progress(), 17 + 18);
        assert!(!c.is_balanced());
        let balanced = PeriodCounts {
            carried_over: 2,
            received_online: 3,
            resolved_on_time: 4,
            open_overdue: 1,
            refused: 9,
            ..Default::default()
        };
        assert!(balanced.is_balanced());
        let mut sum = counts(10);
        sum.add(&counts(20));
        assert_eq!(sum.carried_over, 30);
        assert_eq!(sum.apologies_late, 10);
        assert_eq!(sum.to_process(), counts(10).to_process() + counts(20).to_process());
        assert_eq!(sum.withdrawn + sum.stopped + sum.refused + sum.apologies_timely, 2 + 4 + 6 + 8);
    }

    #[test]
    fn the_header_merges_upper_levels_and_extends_leaves_down() {
        let cells = header_cells();
        let find = |label: &str, row: usize| cells.iter().find(|c| c.label == label && c.row == row).unwrap().clone();
        assert_eq!(find("Mã", 0), HeaderCell { row: 0, col: 0, rows: 3, cols: 1, label: "Mã" });
        assert_eq!(find(RECEIVED, 0), HeaderCell { row: 0, col: 3, rows: 1, cols: 6, label: RECEIVED });
        assert_eq!(find(NEW, 1), HeaderCell { row: 1, col: 5, rows: 1, cols: 4, label: NEW });
        assert_eq!(
            find("Kỳ trước chuyển qua", 1),
            HeaderCell { row: 1, col: 4, rows: 2, cols: 1, label: "Kỳ trước chuyển qua" }
        );
        assert_eq!(find("Trực tuyến", 2).col, 6);
        assert_eq!(find(RESOLVED, 0).cols, 4);
        assert_eq!(find(IN_PROGRESS, 0).cols, 3);
        assert_eq!(find(APOLOGIES, 0).cols, 2);
        // Every column is covered exactly once in every header row.
        for row in 0..HEADER_ROWS {
            let mut covered = vec![0; COLUMNS.len()];
            for cell in cells.iter().filter(|c| c.row <= row && row < c.row + c.rows) {
                for n in &mut covered[cell.col..cell.col + cell.cols] {
                    *n += 1;
                }
            }
            assert!(covered.iter().all(|&n| n == 1), "row {row}: {covered:?}");
        }
        let keys: std::collections::HashSet<_> = COLUMNS.iter().map(|c| c.key).collect();
        assert_eq!(keys.len(), COLUMNS.len(), "keys are unique");
    }

    #[test]
    fn the_766_score_is_printed_out_of_100() {
        assert_eq!(points_766(Some(0.8525)), Some(85.25));
        assert_eq!(points_766(Some(1.0)), Some(100.0));
        assert_eq!(points_766(Some(0.123456)), Some(12.35));
        assert_eq!(Cell::Points(points_766(Some(0.9))).text(), "90");
        assert_eq!(Cell::Points(None).text(), "");
    }
}
