//! The report as an Excel workbook (rust_xlsxwriter): a sheet per section (the form,
//! the online services, budget and staffing), each with the title, its merged
//! three-level header (frozen, repeated on every printed page) and the same cells as
//! the CSV, counts, amounts and percentages as numbers.

use rust_xlsxwriter::{Color, Format, FormatAlign, FormatBorder, Workbook, Worksheet};

use super::{
    as_of_vi, header_cells, Cell, PeriodReport, ReportError, RowScope, Section, FORM_VI, HEADER_ROWS, SECTIONS,
};
use parpulse_core::time::format_local;

/// The form's sheet, the first.
pub const XLSX_SHEET: &str = SECTIONS[0].sheet;
/// Every sheet, in order.
pub const XLSX_SHEETS: [&str; 3] = [SECTIONS[0].sheet, SECTIONS[1].sheet, SECTIONS[2].sheet];

/// Rows above the header: the form, the title, the period, the province and time.
const TITLE_ROWS: u32 = 4;
/// A4 in Excel's paper sizes.
const PAPER_A4: u8 = 9;

/// The cell formats of a row: text and numbers, plain (units) or bold (totals).
struct RowFormats {
    text: Format,
    number: Format,
    year: Format,
}

impl RowFormats {
    fn new(bold: bool) -> RowFormats {
        let mut base = Format::new().set_border(FormatBorder::Thin).set_border_color(Color::RGB(0xCCCCCC));
        if bold {
            base = base.set_bold().set_background_color(Color::RGB(0xFAFAFA));
        }
        let number = |format: &str| base.clone().set_num_format(format).set_align(FormatAlign::Right);
        RowFormats { number: number("#,##0.##"), year: number("0"), text: base }
    }
}

fn write_cell(sheet: &mut Worksheet, row: u32, col: u16, cell: &Cell, formats: &RowFormats) -> Result<(), ReportError> {
    match cell {
        Cell::Text(text) => sheet.write_string_with_format(row, col, text, &formats.text)?,
        // Counts of dossiers and amounts in đồng stay far below 2^53: exact as an f64.
        Cell::Count(n) => sheet.write_number_with_format(row, col, *n as f64, &formats.number)?,
        Cell::Amount(n) => sheet.write_number_with_format(row, col, *n as f64, &formats.number)?,
        Cell::Year(year) => sheet.write_number_with_format(row, col, f64::from(*year), &formats.year)?,
        Cell::Points(Some(points)) => sheet.write_number_with_format(row, col, *points, &formats.number)?,
        Cell::Points(None) => sheet.write_blank(row, col, &formats.number)?,
    };
    Ok(())
}

/// One section's sheet.
fn write_sheet(sheet: &mut Worksheet, report: &PeriodReport, section: &Section) -> Result<(), ReportError> {
    sheet.set_name(section.sheet)?;
    let columns = section.all_columns();
    let last_col = u16::try_from(columns.len() - 1).expect("a few columns");

    let title = Format::new().set_bold().set_font_size(14).set_align(FormatAlign::Center);
    let centred = Format::new().set_align(FormatAlign::Center);
    sheet.write_string(0, 0, FORM_VI)?;
    sheet.merge_range(1, 0, 1, last_col, section.title_vi, &title)?;
    sheet.merge_range(2, 0, 2, last_col, &report.period.title_vi(), &title)?;
    let meta = format!(
        "{}; {}; lập lúc {}. {}",
        report.province_vi,
        as_of_vi(report),
        format_local(report.generated_at_micros),
        section.unit_vi
    );
    sheet.merge_range(3, 0, 3, last_col, &meta, &centred)?;

    let head = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_border(FormatBorder::Thin)
        .set_background_color(Color::RGB(0xF3F3F3));
    for cell in header_cells(&columns) {
        let (row, col) = (TITLE_ROWS + cell.row as u32, cell.col as u16);
        let (last_row, last) = (row + cell.rows as u32 - 1, col + cell.cols as u16 - 1);
        if (last_row, last) == (row, col) {
            sheet.write_string_with_format(row, col, cell.label, &head)?;
        } else {
            sheet.merge_range(row, col, last_row, last, cell.label, &head)?;
        }
    }
    let first_data_row = TITLE_ROWS + HEADER_ROWS as u32;
    for row in TITLE_ROWS..first_data_row {
        sheet.set_row_height(row, 30)?;
    }

    let formats = [RowFormats::new(false), RowFormats::new(true)];
    for (n, row) in report.rows.iter().enumerate() {
        let at = first_data_row + u32::try_from(n).map_err(|_| rust_xlsxwriter::XlsxError::RowColumnLimitError)?;
        let formats = &formats[usize::from(row.scope != RowScope::Unit)];
        for (col, column) in columns.iter().enumerate() {
            write_cell(sheet, at, col as u16, &(column.value)(row), formats)?;
        }
    }

    for (col, column) in columns.iter().enumerate() {
        sheet.set_column_width(col as u16, column.width)?;
    }
    // The header and the code and name columns stay in view.
    sheet.set_freeze_panes(first_data_row, 2)?;
    sheet.set_repeat_rows(TITLE_ROWS, first_data_row - 1)?;
    sheet.set_landscape().set_paper_size(PAPER_A4).set_print_fit_to_pages(1, 0);
    Ok(())
}

/// The report as the bytes of an .xlsx file.
pub fn to_xlsx(report: &PeriodReport) -> Result<Vec<u8>, ReportError> {
    let mut workbook = Workbook::new();
    for section in SECTIONS {
        write_sheet(workbook.add_worksheet(), report, section)?;
    }
    Ok(workbook.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use super::super::tests::report;
    use super::*;

    #[test]
    fn a_workbook_is_written() {
        let bytes = to_xlsx(&report()).unwrap();
        assert!(bytes.starts_with(b"PK\x03\x04"), "a zip archive");
        let mut empty = report();
        empty.rows.clear();
        assert!(to_xlsx(&empty).unwrap().starts_with(b"PK"));
    }
}
