//! The period report's XLSX, read back by an independent reader (openpyxl, in the
//! test virtualenv `deploy/local/install.sh --test` makes), holds the same headers
//! and cells as its CSV: every sheet (the form, the online services, budget and
//! staffing) has the code, name and scope columns, then the next columns of the CSV;
//! every header (the merged levels joined as in the CSV) and every cell, counts,
//! amounts and percentages as numbers, text as text. No services needed.

use std::path::PathBuf;
use std::process::Command;

use parpulse_core::kpi::{BudgetTotals, StaffingTotals};
use parpulse_core::period::Period;
use parpulse_core::LocalDay;
use parpulse_export::period_report::{
    to_csv, to_xlsx, Administration, PeriodCounts, PeriodReport, ReportRow, RowScope, XLSX_SHEET, XLSX_SHEETS,
};
use parpulse_tests::prometheus::repo;
use serde_json::Value;

/// The test virtualenv's Python (`PARPULSE_CHDB_PYTHON` overrides), as tests/e2e_chdb.rs finds it.
fn venv_python() -> PathBuf {
    let path = std::env::var("PARPULSE_CHDB_PYTHON").map(PathBuf::from).unwrap_or_else(|_| {
        let home = std::env::var("PARPULSE_HOME").map(PathBuf::from).unwrap_or_else(|_| repo().join(".parpulse"));
        home.join("chdb-venv/bin/python")
    });
    assert!(path.exists(), "{} not found: `deploy/local/install.sh --test` installs openpyxl there", path.display());
    path
}

/// Dumps the sheet as JSON: its name, every row's values (None as null), the merged
/// ranges (1-based, inclusive) and the frozen panes' top-left cell.
const DUMP: &str = r#"
import json, sys, openpyxl
book = openpyxl.load_workbook(sys.argv[1])
sheet = book[sys.argv[2]]
print(json.dumps({
    "sheets": book.sheetnames,
    "rows": [list(row) for row in sheet.iter_rows(values_only=True)],
    "merged": [[r.min_row, r.min_col, r.max_row, r.max_col] for r in sheet.merged_cells.ranges],
    "freeze": sheet.freeze_panes,
}, ensure_ascii=False))
"#;

fn counts(seed: u64) -> PeriodCounts {
    PeriodCounts {
        carried_over: seed * 3,
        received_online: seed * 7 + 1,
        received_in_person: seed * 5,
        received_postal: seed % 4,
        resolved_early: seed * 2,
        resolved_on_time: seed * 6,
        resolved_late: seed % 3,
        withdrawn: seed % 2,
        stopped: seed % 5,
        refused: seed % 7,
        open_within_deadline: seed * 4,
        open_overdue: seed % 6,
        result_postal: seed % 4 + 1,
        apologies_timely: seed % 3,
        apologies_late: seed % 2,
    }
}

/// Budget, staffing and procedures of a row, from the same seed.
fn administration(seed: u64) -> Administration {
    let n = seed as i64;
    let mut a = Administration {
        fiscal_year: 2019,
        budget: BudgetTotals {
            allocated: n * 1_000_000_000 + 7,
            committed: n * 300_000_000,
            disbursed: n * 250_000_000,
            saved: n * 10_000_000,
            disclosed: n * 1_000_000_000,
        },
        staffing: StaffingTotals {
            staff_quota: n * 9,
            staff_filled: n * 8,
            staff_baseline: n * 10,
            deputies_filled: 4,
            deputies_limit: 3,
            deputies_over_limit: 1,
        },
        reduction_due: Some(0.1),
        reduction_behind: Some(seed % 2 == 0),
        ..Default::default()
    };
    a.procedures.offered_online = seed % 9 + 3;
    a.procedures.offered_online_used = seed % 3;
    a.procedures.received_offered_online = seed * 2;
    a.procedures.received_online_offered_online = seed;
    a.procedures.received_unknown = seed % 5;
    a
}

/// Three departments, two districts, the groups' totals and the province.
fn report() -> PeriodReport {
    let units = [
        ("department", "SNV", "Sở Nội vụ", 11, Some(0.8525)),
        ("department", "STP", "Sở Tư pháp, \"Phòng 2\"", 23, None),
        ("department", "SVHTTDL", "Sở Văn hóa, Thể thao và Du lịch", 1_000_003, Some(0.5)),
        ("district", "KIMDONG", "UBND huyện Kim Động", 7, Some(0.733333)),
        ("district", "VANLAM", "UBND huyện Văn Lâm <x & y>", 0, None),
    ];
    let mut rows = Vec::new();
    let mut province = PeriodCounts::default();
    for (group, name) in [("department", "Khối sở, ban, ngành"), ("district", "Khối huyện, thị xã, thành phố")]
    {
        let mut total = PeriodCounts::default();
        for (_, code, name, seed, score) in units.iter().filter(|u| u.0 == group) {
            let counts = counts(*seed);
            total.add(&counts);
            rows.push(ReportRow {
                scope: RowScope::Unit,
                code: (*code).into(),
                name_vi: (*name).into(),
                counts,
                score_766: *score,
                administration: administration(*seed),
            });
        }
        province.add(&total);
        rows.push(ReportRow {
            scope: RowScope::Group,
            code: group.into(),
            name_vi: name.into(),
            counts: total,
            score_766: Some(0.8),
            administration: administration(100),
        });
    }
    rows.push(ReportRow {
        scope: RowScope::Province,
        code: "province".into(),
        name_vi: "Tỉnh Hưng Yên".into(),
        counts: province,
        score_766: Some(0.81234),
        administration: administration(200),
    });
    PeriodReport {
        period: Period::parse("2019-Q4").unwrap(),
        province_vi: "Tỉnh Hưng Yên".into(),
        as_of_micros: Some(LocalDay::from_ymd(2020, 1, 1).unwrap().start_micros()),
        generated_at_micros: LocalDay::from_ymd(2020, 1, 2).unwrap().start_micros(),
        rows,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[test]
fn the_xlsx_holds_the_same_headers_and_cells_as_the_csv() {
    let python = venv_python();
    let report = report();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("period_report_xlsx");
    std::fs::create_dir_all(&dir).unwrap();
    let (csv_path, xlsx_path) = (dir.join("report.csv"), dir.join("report.xlsx"));
    let csv = to_csv(&report);
    std::fs::write(&csv_path, &csv).unwrap();
    std::fs::write(&xlsx_path, to_xlsx(&report).expect("an xlsx")).unwrap();

    // The CSV, read by the csv crate: BOM, CRLF, a header and one record a row.
    let bytes = std::fs::read(&csv_path).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 byte-order mark");
    assert!(csv.ends_with("\r\n") && !csv.replace("\r\n", "").contains('\n'), "CRLF only");
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(&bytes[3..]);
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let records: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    assert_eq!(records.len(), report.rows.len());
    assert!(records.iter().all(|r| r.len() == headers.len()));

    // The XLSX, read by openpyxl, sheet by sheet: each the key columns, then the CSV's next ones.
    assert_eq!(XLSX_SHEET, XLSX_SHEETS[0]);
    let mut next_column = 3;
    for sheet in XLSX_SHEETS {
        let output = Command::new(&python).arg("-c").arg(DUMP).arg(&xlsx_path).arg(sheet).output().expect("python");
        assert!(output.status.success(), "openpyxl failed: {}", String::from_utf8_lossy(&output.stderr));
        let dump: Value = serde_json::from_slice(&output.stdout).expect("JSON from the dump");
        assert_eq!(dump["sheets"], serde_json::json!(XLSX_SHEETS));
        let mut grid: Vec<Vec<Value>> =
            dump["rows"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().clone()).collect();
        let width = grid.iter().map(Vec::len).max().unwrap();
        for row in &mut grid {
            row.resize(width, Value::Null);
        }
        // The CSV columns this sheet holds.
        let columns: Vec<usize> = (0..3).chain(next_column..next_column + width - 3).collect();
        next_column += width - 3;
        assert!(next_column <= headers.len(), "{sheet}: no column beyond the CSV's");
        // Title rows above the header.
        let title: Vec<String> = grid.iter().take(4).map(|r| text(&r[0])).collect();
        assert!(title.contains(&"Quý IV năm 2019".to_owned()), "{sheet}: {title:?}");
        assert!(title.iter().any(|t| t.contains("số liệu tính đến 2020-01-01 00:00:00+07:00")), "{sheet}: {title:?}");
        if sheet == XLSX_SHEET {
            let form = "BÁO CÁO TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH".to_owned();
            assert!(title.contains(&form), "{title:?}");
        }

        // Merged cells take their top-left value, as a reader of the printed form sees them.
        let mut resolved = grid.clone();
        for range in dump["merged"].as_array().unwrap() {
            let r: Vec<usize> = range.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize - 1).collect();
            let value = grid[r[0]][r[1]].clone();
            for row in &mut resolved[r[0]..=r[2]] {
                for cell in &mut row[r[1]..=r[3]] {
                    *cell = value.clone();
                }
            }
        }
        let header_row = resolved.iter().position(|r| r[0] == Value::String(headers[0].clone())).expect("the header");
        let data_row = header_row + 3;
        for (col, &csv_col) in columns.iter().enumerate() {
            let mut levels: Vec<String> = (header_row..data_row).map(|row| text(&resolved[row][col])).collect();
            levels.dedup();
            assert_eq!(&levels.join(" - "), &headers[csv_col], "{sheet}: header of column {col}");
        }
        // Three header rows, merged: at least the upper groups and the single-label columns.
        assert!(dump["merged"].as_array().unwrap().len() >= 4 + 3);
        assert_eq!(dump["freeze"], Value::String(format!("C{}", data_row + 1)), "header rows and two columns frozen");

        // Every cell: empty as empty, a number as a number, text as text.
        let cells = &grid[data_row..];
        assert_eq!(cells.len(), records.len(), "{sheet}: one sheet row a CSV record");
        for (n, (xlsx_row, csv_row)) in cells.iter().zip(&records).enumerate() {
            for (col, &csv_col) in columns.iter().enumerate() {
                let (xlsx, csv) = (&xlsx_row[col], &csv_row[csv_col]);
                let at = format!("{sheet}: row {n}, column {:?}", headers[csv_col]);
                if csv.is_empty() {
                    assert_eq!(xlsx, &Value::Null, "{at}: empty");
                } else if let (true, Ok(want)) = (col >= 3, csv.parse::<f64>()) {
                    let number = xlsx.as_f64().unwrap_or_else(|| panic!("{at}: {xlsx} is not a number"));
                    assert_eq!(number, want, "{at}");
                } else {
                    assert_eq!(xlsx, &Value::String(csv.clone()), "{at}: text");
                }
            }
        }
    }
    assert_eq!(next_column, headers.len(), "every CSV column is on a sheet");
    // A few cells by hand: SVHTTDL's big counts and budget, the province's score out of 100.
    let column = |header: &str| headers.iter().position(|h| h == header).unwrap_or_else(|| panic!("no {header:?}"));
    let svh = &records[2];
    assert_eq!(svh[4], "3000009", "carried over");
    assert_eq!(svh[column("Ngân sách (đồng) - Dự toán được giao")], "1000003000000007");
    assert_eq!(svh[column("Biên chế - Chậm lộ trình")], "Không");
    let score = column("Điểm 766 (thang 100)");
    assert_eq!(records.last().unwrap()[score], "81.23");
    assert_eq!(records[1][1], "Sở Tư pháp, \"Phòng 2\"");
    assert_eq!(records[1][score], "");
    // STP: 23 % 9 + 3 = 8 procedures offered, 23 % 3 = 2 with an online dossier: 25%.
    assert_eq!(records[1][column("Thủ tục cung cấp trực tuyến mức độ 3, 4 - Tỷ lệ có phát sinh hồ sơ (%)")], "25");
}
