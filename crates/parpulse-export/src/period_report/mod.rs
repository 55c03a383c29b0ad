//! The report of a closed period (issue 12, items 2 and 3): per unit, group and
//! province, dossiers carried over, received, resolved, refused and in progress,
//! apology letters and the Decision 766 score, in the shape of the form of
//! Circular 01/2020/TT-VPCP (Biểu số 06/VPCP/KSTT), as CSV, printable HTML and XLSX;
//! then (issue 17) the level-3/4 online-service criterion of the period and the budget
//! and staffing at its end ([`Administration`]).
//!
//! Pure: the caller fills a [`PeriodReport`] (from ClickHouse); the renderers
//! only lay it out. The three formats share one list of sections and columns
//! ([`SECTIONS`]), so they always carry the same headers and cells: the CSV has every
//! section's columns on one line per row, the HTML a table and the XLSX a sheet per section.

mod administration;
mod csv;
mod html;
mod judge;
mod xlsx;

pub use administration::{attach, read_inputs, snapshot_of, Administration, AdministrationInputs};
pub use csv::to_csv;
pub use html::to_html;
pub use judge::{build, judge, read, read_as_of, AsOfError, ScopeTotals};
pub use xlsx::{to_xlsx, XLSX_SHEET, XLSX_SHEETS};

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
    /// Level-3/4 procedures, budget and staffing of the period (zeros until
    /// [`attach`]ed).
    pub administration: Administration,
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
    /// Đồng or people: whole, never negative in valid data.
    Amount(i64),
    /// A year, printed without a thousands separator.
    Year(i32),
    /// A score out of 100 or a percentage, rounded to two decimals; empty when absent.
    Points(Option<f64>),
}

impl Cell {
    /// The cell as CSV and HTML print it: counts as integers, points with a '.'.
    pub(crate) fn text(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Amount(n) => n.to_string(),
            Cell::Year(year) => year.to_string(),
            Cell::Points(points) => points.map_or_else(String::new, |p| p.to_string()),
        }
    }
}

/// A ratio (a Decision 766 score, a share) on a scale of 100, two decimals.
pub(crate) fn out_of_100(ratio: Option<f64>) -> Option<f64> {
    ratio.map(|s| (s * 10_000.0).round() / 100.0)
}

/// Có / Không for a finding, empty when not judged.
fn yes_no(finding: Option<bool>) -> Cell {
    Cell::Text(finding.map_or("", |b| if b { "Có" } else { "Không" }).to_owned())
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

/// The row's code, name and kind: the first columns of every section.
pub(crate) const KEY_COLUMNS: &[Column] = &[
    Column { header: &["Mã"], key: "code", width: 12.0, value: |row| Cell::Text(row.code.clone()) },
    Column { header: &["Đơn vị"], key: "name", width: 38.0, value: |row| Cell::Text(row.name_vi.clone()) },
    Column {
        header: &["Phạm vi"], key: "scope", width: 10.0, value: |row| Cell::Text(row.scope.name_vi().to_owned())
    },
];

/// The dossier columns of the form (Biểu số 06/VPCP/KSTT), then what parpulse adds to it.
pub(crate) const DOSSIER_COLUMNS: &[Column] = &[
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
        value: |row| Cell::Points(out_of_100(row.score_766)),
    },
];

const OFFERED: &str = "Thủ tục cung cấp trực tuyến mức độ 3, 4";
const OFFERED_DOSSIERS: &str = "Hồ sơ của thủ tục cung cấp trực tuyến mức độ 3, 4";

macro_rules! admin {
    ($header:expr, $key:literal, |$a:ident| $value:expr) => {
        Column {
            header: $header,
            key: $key,
            width: 13.0,
            value: |row| (|$a: &Administration| $value)(&row.administration),
        }
    };
}

/// The level-3/4 online-service criterion of the period (docs/KPIS.md).
pub(crate) const ONLINE_SERVICE_COLUMNS: &[Column] = &[
    admin!(&[OFFERED, "Số thủ tục"], "procedures_online_offered", |a| Cell::Count(a.procedures.offered_online)),
    admin!(&[OFFERED, "Có phát sinh hồ sơ trực tuyến"], "procedures_online_with_dossier", |a| {
        Cell::Count(a.procedures.offered_online_used)
    }),
    admin!(&[OFFERED, "Tỷ lệ có phát sinh hồ sơ (%)"], "procedures_online_share", |a| {
        Cell::Points(out_of_100(a.procedures.online_services_used()))
    }),
    admin!(&[OFFERED_DOSSIERS, "Tiếp nhận"], "received_level34_procedures", |a| {
        Cell::Count(a.procedures.received_offered_online)
    }),
    admin!(&[OFFERED_DOSSIERS, "Trực tuyến"], "received_online_level34_procedures", |a| {
        Cell::Count(a.procedures.received_online_offered_online)
    }),
    admin!(&[OFFERED_DOSSIERS, "Tỷ lệ trực tuyến (%)"], "online_share_level34_procedures", |a| {
        Cell::Points(out_of_100(a.procedures.online_share_of_offered()))
    }),
    admin!(&["Hồ sơ có thủ tục ngoài danh mục"], "unknown_procedure", |a| Cell::Count(
        a.procedures.received_unknown
    )),
];

const BUDGET: &str = "Ngân sách (đồng)";
const BUDGET_RATIOS: &str = "So với dự toán được giao (%)";
const STAFF: &str = "Biên chế";
const DEPUTIES: &str = "Cấp phó";

/// Budget of the fiscal year and staffing at the period's end (docs/KPIS.md).
pub(crate) const ADMINISTRATION_COLUMNS: &[Column] = &[
    admin!(&["Năm ngân sách"], "fiscal_year", |a| Cell::Year(a.fiscal_year)),
    admin!(&[BUDGET, "Dự toán được giao"], "budget_allocated", |a| Cell::Amount(a.budget.allocated)),
    admin!(&[BUDGET, "Đã cam kết chi"], "budget_committed", |a| Cell::Amount(a.budget.committed)),
    admin!(&[BUDGET, "Đã giải ngân"], "budget_disbursed", |a| Cell::Amount(a.budget.disbursed)),
    admin!(&[BUDGET, "Tiết kiệm chi"], "budget_saved", |a| Cell::Amount(a.budget.saved)),
    admin!(&[BUDGET, "Đã công khai"], "budget_disclosed", |a| Cell::Amount(a.budget.disclosed)),
    admin!(&[BUDGET_RATIOS, "Giải ngân"], "budget_execution", |a| Cell::Points(out_of_100(a.budget.execution()))),
    admin!(&[BUDGET_RATIOS, "Tiết kiệm chi"], "budget_savings", |a| Cell::Points(out_of_100(a.budget.savings()))),
    admin!(&[BUDGET_RATIOS, "Công khai"], "budget_disclosure", |a| Cell::Points(out_of_100(a.budget.disclosure()))),
    admin!(&[STAFF, "Được giao"], "staff_quota", |a| Cell::Amount(a.staffing.staff_quota)),
    admin!(&[STAFF, "Có mặt"], "staff_filled", |a| Cell::Amount(a.staffing.staff_filled)),
    admin!(&[STAFF, "Được giao năm 2015"], "staff_baseline", |a| Cell::Amount(a.staffing.staff_baseline)),
    admin!(&[STAFF, "Tinh giản so với 2015 (%)"], "staff_reduction", |a| {
        Cell::Points(out_of_100(a.staffing.reduction()))
    }),
    admin!(&[STAFF, "Mức lộ trình (%)"], "staff_reduction_due", |a| Cell::Points(out_of_100(a.reduction_due))),
    admin!(&[STAFF, "Chậm lộ trình"], "staff_reduction_behind", |a| yes_no(a.reduction_behind)),
    admin!(&[DEPUTIES, "Hiện có"], "deputies_filled", |a| Cell::Amount(a.staffing.deputies_filled)),
    admin!(&[DEPUTIES, "Theo quy định"], "deputies_limit", |a| Cell::Amount(a.staffing.deputies_limit)),
    admin!(&[DEPUTIES, "Vượt quy định"], "deputies_over_limit", |a| Cell::Amount(a.staffing.deputies_over_limit)),
];

/// A part of the report: a table of the HTML, a sheet of the XLSX; the CSV puts every
/// section's columns after the key columns on one line.
pub(crate) struct Section {
    /// The HTML table's id.
    pub id: &'static str,
    pub title_vi: &'static str,
    /// What the counts are in, and the sources, under the title.
    pub unit_vi: &'static str,
    /// The XLSX sheet (ASCII, as some readers mangle others in sheet names).
    pub sheet: &'static str,
    /// The section's columns after [`KEY_COLUMNS`].
    pub columns: &'static [Column],
    /// How the columns are computed, under the table.
    pub note_vi: &'static str,
}

impl Section {
    /// The key columns, then the section's.
    pub(crate) fn all_columns(&self) -> Vec<&'static Column> {
        KEY_COLUMNS.iter().chain(self.columns).collect()
    }
}

/// Every section, in order, as the three formats print them.
pub(crate) const SECTIONS: &[Section] = &[
    Section {
        id: "period-report",
        title_vi: TITLE_VI,
        unit_vi: "Đơn vị tính: hồ sơ.",
        sheet: "Bieu 06",
        columns: DOSSIER_COLUMNS,
        note_vi: "Số hồ sơ nhận giải quyết = kỳ trước chuyển qua + mới tiếp nhận; số đã giải quyết = trước hạn + đúng hạn + quá hạn, gồm cả hồ sơ công dân rút và hồ sơ dừng xử lý; hồ sơ từ chối tiếp nhận không tính vào số nhận giải quyết. Thư xin lỗi đúng hạn: gửi trước hạn giải quyết ít nhất một ngày làm việc. Điểm 766: Bộ chỉ số theo Quyết định 766/QĐ-TTg, trên các chỉ số có dữ liệu trong kỳ, thang 100.",
    },
    Section {
        id: "period-report-online-services",
        title_vi: "DỊCH VỤ CÔNG TRỰC TUYẾN MỨC ĐỘ 3, 4",
        unit_vi: "Thủ tục theo danh mục thủ tục hành chính của đơn vị; hồ sơ tiếp nhận trong kỳ. Đơn vị tính: thủ tục, hồ sơ, %.",
        sheet: "DVCTT muc do 3, 4",
        columns: ONLINE_SERVICE_COLUMNS,
        note_vi: "Tỷ lệ dịch vụ công trực tuyến mức độ 3, 4 có phát sinh hồ sơ = số thủ tục cung cấp mức độ 3, 4 có ít nhất một hồ sơ tiếp nhận trực tuyến trong kỳ / số thủ tục cung cấp mức độ 3, 4 (mỗi thủ tục của mỗi đơn vị tính một lần). Hồ sơ có thủ tục ngoài danh mục vẫn được tính ở các chỉ tiêu khác.",
    },
    Section {
        id: "period-report-administration",
        title_vi: "NGÂN SÁCH VÀ BIÊN CHẾ",
        unit_vi: "Ngân sách năm chứa ngày cuối kỳ, đến hết kỳ; biên chế theo báo cáo mới nhất đến hết kỳ. Đơn vị tính: đồng, người, %.",
        sheet: "Ngan sach, bien che",
        columns: ADMINISTRATION_COLUMNS,
        note_vi: "Ngân sách năm chứa ngày cuối kỳ, tính các nghiệp vụ phát sinh đến hết kỳ; tỷ lệ so với dự toán được giao. Biên chế, cấp phó: báo cáo mới nhất đến hết kỳ; tinh giản so với biên chế được giao năm 2015, mức lộ trình tại thời điểm cuối kỳ (Nghị quyết 39-NQ/TW, Kết luận 40-KL/TW); cấp phó vượt quy định cộng theo từng đơn vị.",
    },
];

/// Every column once, in the CSV's order: the key columns, then each section's.
pub(crate) fn all_columns() -> Vec<&'static Column> {
    KEY_COLUMNS.iter().chain(SECTIONS.iter().flat_map(|s| s.columns)).collect()
}

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

/// The header of `columns` as merged cells: a column's last label reaches down to the
/// bottom row; neighbouring columns under the same upper labels share one cell.
pub(crate) fn header_cells(columns: &[&Column]) -> Vec<HeaderCell> {
    let mut cells = Vec::new();
    for row in 0..HEADER_ROWS {
        let mut col = 0;
        while col < columns.len() {
            let header = columns[col].header;
            if row >= header.len() {
                col += 1;
                continue;
            }
            let leaf = row + 1 == header.len();
            let mut cols = 1;
            if !leaf {
                while columns
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

    /// Budget, staffing and procedures in proportion to `seed` (10: SNV, 20: STP).
    pub(crate) fn administration(seed: u64) -> Administration {
        let n = seed as i64;
        Administration {
            procedures: crate::snapshot::ProcedureCounts {
                offered_online: seed / 10 * 4,
                offered_online_used: seed / 10 * 2,
                received_offered_online: seed / 10 * 9,
                received_online_offered_online: seed / 10 * 3,
                received_unknown: seed / 10,
            },
            fiscal_year: 2019,
            budget: parpulse_core::kpi::BudgetTotals {
                allocated: n * 200_000,
                committed: n * 80_000,
                disbursed: n * 50_000,
                saved: n * 2_000,
                disclosed: n * 100_000,
            },
            staffing: parpulse_core::kpi::StaffingTotals {
                staff_quota: n * 10,
                staff_filled: n * 9,
                staff_baseline: n * 25 / 2,
                deputies_filled: n / 10 * 4,
                deputies_limit: n / 10 * 3,
                deputies_over_limit: n / 10,
            },
            reduction_due: None,
            reduction_behind: None,
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
            administration: administration(seed),
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
            administration: administration(30),
        };
        let province = ReportRow {
            scope: RowScope::Province,
            code: "province".into(),
            name_vi: "Tỉnh Hưng Yên".into(),
            counts: total,
            score_766: Some(1.0),
            administration: administration(30),
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
        let columns = SECTIONS[0].all_columns();
        let cells = header_cells(&columns);
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
        // In every section, every column is covered exactly once in every header row.
        for section in SECTIONS {
            let columns = section.all_columns();
            let cells = header_cells(&columns);
            for row in 0..HEADER_ROWS {
                let mut covered = vec![0; columns.len()];
                for cell in cells.iter().filter(|c| c.row <= row && row < c.row + c.rows) {
                    for n in &mut covered[cell.col..cell.col + cell.cols] {
                        *n += 1;
                    }
                }
                assert!(covered.iter().all(|&n| n == 1), "{} row {row}: {covered:?}", section.id);
            }
        }
        let online = SECTIONS[1].all_columns();
        let cells = header_cells(&online);
        assert!(cells.contains(&HeaderCell { row: 0, col: 3, rows: 1, cols: 3, label: OFFERED }), "{cells:?}");
        assert!(cells.contains(&HeaderCell { row: 1, col: 3, rows: 2, cols: 1, label: "Số thủ tục" }), "{cells:?}");
        let budget = SECTIONS[2].all_columns();
        let cells = header_cells(&budget);
        assert!(cells.contains(&HeaderCell { row: 0, col: 4, rows: 1, cols: 5, label: BUDGET }), "{cells:?}");
        assert!(cells.contains(&HeaderCell { row: 0, col: 12, rows: 1, cols: 6, label: STAFF }), "{cells:?}");
        // Keys (HTML data-kpi) and one-line headers (CSV) are unique over the whole report.
        let all = all_columns();
        assert_eq!(all.len(), 3 + DOSSIER_COLUMNS.len() + ONLINE_SERVICE_COLUMNS.len() + ADMINISTRATION_COLUMNS.len());
        let keys: std::collections::HashSet<_> = all.iter().map(|c| c.key).collect();
        assert_eq!(keys.len(), all.len(), "keys are unique");
        let headers: std::collections::HashSet<_> = all.iter().map(|c| c.flat_header()).collect();
        assert_eq!(headers.len(), all.len(), "headers are unique");
        let sheets: std::collections::HashSet<_> = SECTIONS.iter().map(|s| s.sheet).collect();
        assert!(sheets.len() == SECTIONS.len() && sheets.iter().all(|s| s.is_ascii() && s.len() <= 31));
    }

    #[test]
    fn the_766_score_and_shares_are_printed_out_of_100() {
        assert_eq!(out_of_100(Some(0.8525)), Some(85.25));
        assert_eq!(out_of_100(Some(1.0)), Some(100.0));
        assert_eq!(out_of_100(Some(0.123456)), Some(12.35));
        assert_eq!(Cell::Points(out_of_100(Some(0.9))).text(), "90");
        assert_eq!(Cell::Points(out_of_100(Some(1.0 / 3.0))).text(), "33.33");
        assert_eq!(Cell::Points(None).text(), "");
        assert_eq!((Cell::Amount(1_250_000_000).text(), Cell::Year(2019).text()), ("1250000000".into(), "2019".into()));
        assert_eq!(
            (yes_no(Some(true)), yes_no(Some(false)), yes_no(None)),
            (Cell::Text("Có".into()), Cell::Text("Không".into()), Cell::Text(String::new()))
        );
    }

    #[test]
    fn the_new_sections_read_the_rows_administration() {
        let report = report();
        let snv = &report.rows[0];
        let cell = |columns: &[Column], key: &str| {
            (columns.iter().find(|c| c.key == key).unwrap_or_else(|| panic!("no column {key}")).value)(snv)
        };
        // SNV: 2 of 4 level-3/4 procedures with an online dossier; 3 of 9 receptions online.
        assert_eq!(cell(ONLINE_SERVICE_COLUMNS, "procedures_online_offered"), Cell::Count(4));
        assert_eq!(cell(ONLINE_SERVICE_COLUMNS, "procedures_online_share"), Cell::Points(Some(50.0)));
        assert_eq!(cell(ONLINE_SERVICE_COLUMNS, "online_share_level34_procedures"), Cell::Points(Some(33.33)));
        assert_eq!(cell(ONLINE_SERVICE_COLUMNS, "unknown_procedure"), Cell::Count(1));
        // Budget 2,000,000 allocated, 500,000 disbursed: 25%; 100 staff of 2015's 125: 20%.
        assert_eq!(cell(ADMINISTRATION_COLUMNS, "fiscal_year"), Cell::Year(2019));
        assert_eq!(cell(ADMINISTRATION_COLUMNS, "budget_allocated"), Cell::Amount(2_000_000));
        assert_eq!(cell(ADMINISTRATION_COLUMNS, "budget_execution"), Cell::Points(Some(25.0)));
        assert_eq!(cell(ADMINISTRATION_COLUMNS, "budget_disclosure"), Cell::Points(Some(50.0)));
        assert_eq!(cell(ADMINISTRATION_COLUMNS, "staff_reduction"), Cell::Points(Some(20.0)));
        assert_eq!(cell(ADMINISTRATION_COLUMNS, "staff_reduction_due"), Cell::Points(None));
        assert_eq!(cell(ADMINISTRATION_COLUMNS, "staff_reduction_behind"), Cell::Text(String::new()));
        assert_eq!(cell(ADMINISTRATION_COLUMNS, "deputies_over_limit"), Cell::Amount(1));
    }
}
