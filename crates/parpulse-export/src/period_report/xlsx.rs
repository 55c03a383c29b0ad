//! The report as an Excel workbook (rust_xlsxwriter): one sheet with the title,
//! the form's merged three-level header (frozen, repeated on every printed page)
//! and the same cells as the CSV, counts and scores as numbers.

use rust_xlsxwriter::{Color, Format, FormatAlign, FormatBorder, Workbook, Worksheet};

use super::{
    as_of_vi, header_cells, Cell, PeriodReport, ReportError, RowScope, COLUMNS, FORM_VI, HEADER_ROWS, TITLE_VI,
};
use parpulse_core::time::format_local;

/// The sheet's name (ASCII, as some readers mangle others in sheet names).
pub const XLSX_SHEET: &str = "Bieu 06";

/// Rows above the header: the form, the title, the period, the province and time.
const TITLE_ROWS: u32 = 4;
/// A4 in Excel's paper sizes.
const PAPER_A4: u8 = 9;

fn cell_format(bold: bool, number: bool) -> Format {
    let mut format = Format::new().set_border(FormatBorder::Thin).set_border_color(Color::RGB(0xCCCCCC));
    if number {
        format = format.set_num_format("#,##0.##").set_align(FormatAlign::Right);
    }
    if bold {
        format = format.set_bold().set_background_color(Color::RGB(0xFAFAFA));
    }
    format
}

fn write_cell(sheet: &mut Worksheet, row: u32, col: u16, cell: &Cell, format: &Format) -> Result<(), ReportError> {
    match cell {
        Cell::Text(text) => sheet.write_string_with_format(row, col, text, format)?,
        // Counts of dossiers stay far below 2^53: exact as an f64.
        Cell::Count(n) => sheet.write_number_with_format(row, col, *n as f64, format)?,
        Cell::Points(Some(points)) => sheet.write_number_with_format(row, col, *points, format)?,
        Cell::Points(None) => sheet.write_blank(row, col, format)?,
    };
    Ok(())
}

/// The report as the bytes of an .xlsx file.
pub fn to_xlsx(report: &PeriodReport) -> Result<Vec<u8>, ReportError> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name(XLSX_SHEET)?;
    let last_col = u16::try_from(COLUMNS.len() - 1).expect("a few columns");

    let title = Format::new().set_bold().set_font_size(14).set_align(FormatAlign::Center);
    let centred = Format::new().set_align(FormatAlign::Center);
    sheet.write_string(0, 0, FORM_VI)?;
    sheet.merge_range(1, 0, 1, last_col, TITLE_VI, &title)?;
    sheet.merge_range(2, 0, 2, last_col, &report.period.title_vi(), &title)?;
    let meta = format!(
        "{}; {}; lập lúc {}. Đơn vị tính: hồ sơ.",
        report.province_vi,
        as_of_vi(report),
        format_local(report.generated_at_micros)
    );
    sheet.merge_range(3, 0, 3, last_col, &meta, &centred)?;

    let head = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_border(FormatBorder::Thin)
        .set_background_color(Color::RGB(0xF3F3F3));
    for cell in header_cells() {
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

    let formats = [false, true].map(|bold| (cell_format(bold, false), cell_format(bold, true)));
    for (n, row) in report.rows.iter().enumerate() {
        let at = first_data_row + u32::try_from(n).map_err(|_| rust_xlsxwriter::XlsxError::RowColumnLimitError)?;
        let (text, number) = &formats[usize::from(row.scope != RowScope::Unit)];
        for (col, column) in COLUMNS.iter().enumerate() {
            let cell = (column.value)(row);
            let format = if matches!(cell, Cell::Text(_)) { text } else { number };
            write_cell(sheet, at, col as u16, &cell, format)?;
        }
    }

    for (col, column) in COLUMNS.iter().enumerate() {
        sheet.set_column_width(col as u16, column.width)?;
    }
    // The header and the code and name columns stay in view.
    sheet.set_freeze_panes(first_data_row, 2)?;
    sheet.set_repeat_rows(TITLE_ROWS, first_data_row - 1)?;
    sheet.set_landscape().set_paper_size(PAPER_A4).set_print_fit_to_pages(1, 0);
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
