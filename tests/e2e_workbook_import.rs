//! `parpulse ingest file` on what a unit's IT officer has: the one-stop software's export
//! as an Excel workbook (written by openpyxl, an independent writer), a CSV saved from it
//! or Excel's UTF-16 "Unicode text", in the `vi-export` and `national-sync` shapes: one
//! row per dossier with its dates and current state.
//!
//! Week 1's snapshot, then week 2's with the same dossiers progressed, go through the real
//! binary into the local Kafka, an aggregator and ClickHouse; the KPIs must equal a recount
//! of the final state written from the generated dossiers (not from the files), with no
//! step counted twice. A second test feeds more than 20 kinds of malformed rows and files
//! and checks the rejects file, the summary and the dead-letter topic exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use parpulse_core::AgencyRegistry;
use parpulse_ingest::file_import::{import_file_with, ImportError, ImportOptions};
use parpulse_tests::kafka_read::read_topic;
use parpulse_tests::prometheus::repo;
use parpulse_tests::rng::Rng;
use parpulse_tests::terminal::run_in_terminal;
use parpulse_tests::TestEnv;
use serde_json::{json, Value};

/// The test virtualenv with openpyxl (`deploy/local/install.sh --test`; `PARPULSE_CHDB_PYTHON` overrides).
fn python() -> PathBuf {
    let path = std::env::var("PARPULSE_CHDB_PYTHON").map(PathBuf::from).unwrap_or_else(|_| {
        let home = std::env::var("PARPULSE_HOME").map(PathBuf::from).unwrap_or_else(|_| repo().join(".parpulse"));
        home.join("chdb-venv/bin/python")
    });
    assert!(
        path.exists(),
        "{} not found: `deploy/local/install.sh --test` installs openpyxl in the test virtualenv",
        path.display()
    );
    path
}

/// Writes a workbook with openpyxl: `sheets` is [(name, rows)], a cell is JSON (see
/// tests/workbook/write_xlsx.py: null, text, number, {"date": ...}, {"error": ...}).
fn write_xlsx(path: &Path, sheets: &[(&str, Vec<Vec<Value>>)]) {
    let spec = json!({
        "path": path,
        "sheets": sheets.iter().map(|(name, rows)| json!({"name": name, "rows": rows})).collect::<Vec<_>>(),
    });
    let mut child = Command::new(python())
        .arg(repo().join("tests/workbook/write_xlsx.py"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("running tests/workbook/write_xlsx.py");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "openpyxl could not write {}", path.display());
}

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 86_400_000_000;
const UNITS: [(&str, &str); 4] =
    [("SNV", "Sở Nội vụ"), ("STP", "Sở Tư pháp"), ("STC", "Sở Tài chính"), ("SCT", "Sở Công Thương")];

/// One generated dossier: the truth both snapshots are views of.
#[derive(Debug, Clone)]
struct Dossier {
    unit: usize,
    id: String,
    procedure: String,
    /// 1 in person, 2 online, 3 postal (the national codes).
    channel: u8,
    received: i64,
    due: i64,
    supplement: Option<i64>,
    processed: Option<i64>,
    returned: Option<(i64, u8)>,
    withdrawn: bool,
}

/// What a snapshot taken at `at` shows of a dossier: its dated steps up to then and its state.
struct View {
    supplement: Option<i64>,
    processed: Option<i64>,
    returned: Option<(i64, u8)>,
    state: u8,
}

impl Dossier {
    fn view(&self, at: i64, last: bool) -> View {
        let supplement = self.supplement.filter(|t| *t <= at);
        let processed = self.processed.filter(|t| *t <= at);
        let returned = self.returned.filter(|(t, _)| *t <= at);
        let state = if returned.is_some() {
            10
        } else if processed.is_some() {
            9
        } else if supplement.is_some() {
            5
        } else if self.withdrawn && last {
            7
        } else if at - self.received > DAY {
            4
        } else {
            2
        };
        View { supplement, processed, returned, state }
    }
}

/// Local wall-clock fields of a UTC instant (Vietnam, UTC+7), by hand.
fn local(utc_micros: i64) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp_micros(utc_micros + 7 * 3_600_000_000).unwrap().naive_utc()
}

fn generate(seed: u64, count: usize, now: i64) -> Vec<Dossier> {
    let mut rng = Rng::new(seed);
    // Local midnight today, in UTC micros.
    let today = (now + 7 * 3_600_000_000).div_euclid(DAY) * DAY - 7 * 3_600_000_000;
    (0..count)
        .map(|i| {
            let received = today - rng.between(3, 28) * DAY + rng.between(7 * 60 + 30, 16 * 60 + 30) * MINUTE;
            // The appointment: 17:00 local, 3 to 12 days after the reception's (UTC) day.
            let due = received.div_euclid(DAY) * DAY + rng.between(3, 12) * DAY + 10 * 3_600_000_000;
            let mut d = Dossier {
                unit: rng.below(UNITS.len() as u64) as usize,
                id: format!("000.00.{:02}.H31-{:06}", i % 40, i),
                procedure: format!("1.00{}", 1000 + rng.below(30)),
                channel: [1, 2, 2, 3][rng.below(4) as usize],
                received,
                due,
                supplement: None,
                processed: None,
                returned: None,
                withdrawn: false,
            };
            let outcome = rng.below(100);
            let step = |after: i64, rng: &mut Rng| (after + rng.between(2, 40) * 3_600_000_000).min(now - MINUTE);
            if outcome < 45 {
                // Processed on time (well before the appointment) or late (days after it).
                let at = if rng.percent(70) { d.received + (d.due - d.received) / 2 } else { d.due + 2 * DAY };
                let at = at - at.rem_euclid(MINUTE);
                if at < now - 2 * DAY {
                    d.processed = Some(at);
                    if rng.percent(60) {
                        let back = step(at, &mut rng);
                        d.returned = Some((back - back.rem_euclid(MINUTE), [1, 2, 3][rng.below(3) as usize]));
                    }
                }
            } else if outcome < 55 {
                let at = step(d.received, &mut rng);
                d.supplement = Some(at - at.rem_euclid(MINUTE));
            } else if outcome < 63 {
                d.withdrawn = true;
            }
            d
        })
        .collect()
}

/// The events the two snapshots imply, written from the dossiers (the specification of the
/// expansion: each dated step once; a step known from the state only, once, at the row's
/// latest date when first seen), as NDJSON for the recount.
fn truth_ndjson(dossiers: &[Dossier], weeks: &[i64]) -> (String, usize) {
    let channel = |code: u8| ["", "in_person", "online", "postal"][code as usize];
    let mut lines = Vec::new();
    for d in dossiers {
        let base = |kind: &str, at: i64| {
            json!({"type": "dossier", "event_id": "", "agency_code": UNITS[d.unit].0, "occurred_at": at,
                   "dossier_id": d.id, "procedure_code": d.procedure, "kind": kind, "channel": channel(d.channel),
                   "online_level": if d.channel == 2 { 4 } else { 2 }, "due_at": d.due,
                   "fee_bearing": false, "digitized": false})
        };
        let mut steps: BTreeMap<&str, i64> = BTreeMap::new();
        let mut result = None;
        for (w, at) in weeks.iter().enumerate() {
            if d.received > *at {
                continue;
            }
            let view = d.view(*at, w + 1 == weeks.len());
            steps.insert("received", d.received);
            if let Some(t) = view.supplement {
                steps.insert("supplement_requested", t);
            }
            if let Some(t) = view.processed {
                steps.insert("processed", t);
            }
            if let Some((t, c)) = view.returned {
                steps.insert("result_returned", t);
                result = Some(c);
            }
            let latest = [Some(d.received), view.supplement, view.processed, view.returned.map(|r| r.0)]
                .into_iter()
                .flatten()
                .max()
                .unwrap();
            match view.state {
                4 => {
                    steps.entry("in_process").or_insert(latest);
                }
                7 => {
                    steps.entry("withdrawn").or_insert(latest);
                }
                _ => {}
            }
        }
        for (kind, at) in steps {
            let mut event = base(kind, at);
            if kind == "result_returned" {
                event["result_channel"] = json!(channel(result.unwrap()));
            }
            lines.push(event.to_string());
        }
    }
    let count = lines.len();
    (lines.join("\n") + "\n", count)
}

/// Events a single snapshot holds (what its import must accept).
fn events_in_view(dossiers: &[Dossier], at: i64, last: bool) -> (usize, usize) {
    let mut rows = 0;
    let mut events = 0;
    for d in dossiers.iter().filter(|d| d.received <= at) {
        let v = d.view(at, last);
        rows += 1;
        events += 1
            + usize::from(v.supplement.is_some())
            + usize::from(v.processed.is_some())
            + usize::from(v.returned.is_some())
            + usize::from(v.state == 4 || v.state == 7);
    }
    (rows, events)
}

fn vi_date(micros: i64) -> String {
    local(micros).format("%d/%m/%Y %H:%M").to_string()
}

fn sync_date(micros: i64) -> String {
    local(micros).format("%Y%m%d%H%M%S").to_string()
}

const VI_STATES: [&str; 11] = [
    "",
    "Chờ tiếp nhận",
    "Đã tiếp nhận",
    "Từ chối",
    "Đang xử lý",
    "Yêu cầu bổ sung",
    "Chờ thực hiện nghĩa vụ tài chính",
    "Rút hồ sơ",
    "Dừng xử lý",
    "Đã có kết quả",
    "Đã trả kết quả",
];
const VI_CHANNELS: [&str; 4] = ["", "Trực tiếp", "Trực tuyến", "Bưu chính công ích"];

/// vi-export rows: a title, a blank row, the header (with columns no profile field claims:
/// STT, Ghi chú), then one row per dossier received by `at`. Dates alternate between
/// workbook date cells and dd/MM/yyyy text; units between codes and registry names;
/// states between words and national codes.
fn vi_rows(dossiers: &[Dossier], at: i64, last: bool, workbook: bool) -> Vec<Vec<Value>> {
    let date = |micros: Option<i64>, i: usize| match micros {
        None => Value::Null,
        Some(m) if workbook && i % 2 == 0 => json!({"date": local(m).format("%Y-%m-%dT%H:%M:%S").to_string()}),
        Some(m) => json!(vi_date(m)),
    };
    let mut rows = vec![
        vec![json!("BÁO CÁO TÌNH HÌNH GIẢI QUYẾT HỒ SƠ THỦ TỤC HÀNH CHÍNH")],
        vec![],
        [
            "STT",
            "Mã đơn vị",
            "Mã hồ sơ",
            "Mã thủ tục",
            "Ngày tiếp nhận",
            "Ngày hẹn trả",
            "Ngày yêu cầu bổ sung",
            "Ngày có kết quả",
            "Ngày trả kết quả",
            "Hình thức nộp",
            "Hình thức trả kết quả",
            "Trạng thái",
            "Ghi chú",
        ]
        .iter()
        .map(|h| json!(h))
        .collect(),
    ];
    for (i, d) in dossiers.iter().filter(|d| d.received <= at).enumerate() {
        let v = d.view(at, last);
        let unit = if i % 3 == 0 { UNITS[d.unit].1 } else { UNITS[d.unit].0 };
        let state = if i % 2 == 0 { json!(VI_STATES[v.state as usize]) } else { json!(v.state.to_string()) };
        rows.push(vec![
            json!(i + 1),
            json!(unit),
            json!(d.id),
            json!(d.procedure),
            date(Some(d.received), i),
            date(Some(d.due), i + 1),
            date(v.supplement, i),
            date(v.processed, i),
            date(v.returned.map(|r| r.0), i + 1),
            json!(VI_CHANNELS[d.channel as usize]),
            v.returned.map_or(Value::Null, |r| json!(VI_CHANNELS[r.1 as usize])),
            state,
            json!(if i % 5 == 0 { "hồ sơ liên thông" } else { "" }),
        ]);
    }
    rows
}

/// national-sync rows: the sync standard's field names, compact dates, numeric codes
/// (numbers in a workbook, text in a text file).
fn sync_rows(dossiers: &[Dossier], at: i64, last: bool, workbook: bool) -> Vec<Vec<Value>> {
    let code = |c: u8| if workbook { json!(c) } else { json!(c.to_string()) };
    let date = |m: Option<i64>| m.map_or(Value::Null, |m| json!(sync_date(m)));
    let mut rows = vec![[
        "MaHoSo",
        "MaTTHC",
        "TenTTHC",
        "KenhThucHien",
        "ChuHoSo",
        "NgayTiepNhan",
        "NgayHenTra",
        "NgayYeuCauBoSung",
        "TrangThaiHoSo",
        "NgayKetThucXuLy",
        "NgayTra",
        "HinhThuc",
        "DonViXuLy",
    ]
    .iter()
    .map(|h| json!(h))
    .collect()];
    for d in dossiers.iter().filter(|d| d.received <= at) {
        let v = d.view(at, last);
        rows.push(vec![
            json!(d.id),
            json!(d.procedure),
            json!("Cấp bản sao trích lục hộ tịch"),
            code(d.channel),
            json!("Nguyễn Văn An"),
            date(Some(d.received)),
            date(Some(d.due)),
            date(v.supplement),
            code(v.state),
            date(v.processed),
            date(v.returned.map(|r| r.0)),
            // HinhThuc: 1 by post, 0 otherwise.
            v.returned.map_or(Value::Null, |r| code(u8::from(r.1 == 3))),
            json!(UNITS[d.unit].0),
        ]);
    }
    rows
}

fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A delimited text file of `rows`, quoting cells holding the separator.
fn delimited(rows: &[Vec<Value>], separator: char) -> String {
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .map(|c| {
                let t = cell_text(c);
                if t.contains(separator) || t.contains('"') {
                    format!("\"{}\"", t.replace('"', "\"\""))
                } else {
                    t
                }
            })
            .collect();
        text.push_str(&cells.join(&separator.to_string()));
        text.push_str("\r\n");
    }
    text
}

fn utf16le_with_bom(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

fn import(env: &TestEnv, path: &Path, args: &[&str]) -> String {
    let output = parpulse_tests::parpulse_command(env, &["ingest", "file"])
        .arg(path)
        .args(args)
        .output()
        .expect("running parpulse ingest file");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "import of {} failed:\n{stdout}\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Week 1 then week 2 through the real binary; KPIs equal the recount of the final state.
async fn two_weeks(
    name: &str,
    seed: u64,
    write: impl Fn(&Path, &[Dossier], i64, bool) -> (PathBuf, Vec<&'static str>),
) {
    let env = TestEnv::new(name);
    let store = env.connect().await;
    env.migrate(&store).await;
    let dir = std::env::temp_dir().join(format!("parpulse-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let now = parpulse_core::time::now_micros();
    let dossiers = generate(seed, 400, now);
    let week1 = now - 8 * DAY;
    let (rows1, events1) = events_in_view(&dossiers, week1, false);
    let (rows2, events2) = events_in_view(&dossiers, now, true);
    assert!(rows1 > 100 && rows2 > rows1, "both snapshots have dossiers ({rows1}, {rows2})");

    let (file1, args1) = write(&dir.join("week1"), &dossiers, week1, false);
    let (file2, args2) = write(&dir.join("week2"), &dossiers, now, true);
    let out1 = import(&env, &file1, &args1);
    let want1 = format!("total: read {rows1} rows ({events1} events), accepted {events1}, rejected 0");
    assert!(out1.contains(&want1), "week 1, wanted {want1:?}:\n{out1}");
    let out2 = import(&env, &file2, &args2);
    let want2 = format!("total: read {rows2} rows ({events2} events), accepted {events2}, rejected 0");
    assert!(out2.contains(&want2), "week 2, wanted {want2:?}:\n{out2}");

    // Kafka holds both imports; their distinct ids are exactly the steps of the final state.
    let (truth, steps) = truth_ndjson(&dossiers, &[week1, now]);
    let records = tokio::task::spawn_blocking({
        let (brokers, topic) = (env.brokers.clone(), env.topics.dossier.clone());
        move || read_topic(&brokers, &topic, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(records.len(), events1 + events2, "every accepted event of both weeks is in the topic");
    let codec = parpulse_core::avro::AvroCodec::new();
    let ids: BTreeSet<String> =
        records.iter().map(|r| codec.decode_event(&r.payload).expect("decodes").event_id().to_owned()).collect();
    assert_eq!(ids.len(), steps, "week 2 added only the new steps (distinct ids = steps of the final state)");
    assert!(events1 + events2 > steps, "the second snapshot repeated steps of the first (the test covers re-import)");

    env.aggregate_to_end(&store, Duration::from_secs(180)).await;
    let day_counts = parpulse_tests::stored_day_counts(&store).await;
    let want_days = parpulse_tests::recount::recount_ndjson(&truth);
    assert!(want_days.values().any(|c| c.online > 0 && c.postal > 0), "the data has online and postal receptions");
    assert_eq!(day_counts, want_days, "receptions per unit and day equal the recount");
    let (resolved, open) = parpulse_tests::stored_resolved_counts(&store).await;
    let (want_resolved, want_open) = parpulse_tests::recount::recount_resolved(&truth);
    assert!(
        want_resolved.values().any(|c| c.late > 0 && c.on_time > 0 && c.returned > 0),
        "late, on-time and returned dossiers"
    );
    assert!(!want_open.is_empty(), "some dossiers are still open");
    assert_eq!(resolved, want_resolved, "resolved dossiers per unit and end day equal the recount");
    assert_eq!(open, want_open, "open dossiers per unit equal the recount");
    std::fs::remove_dir_all(&dir).ok();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vi_export_workbook_then_csv_a_week_later_equal_a_recount_of_the_final_state() {
    two_weeks("workbook_vi", 16, |base, dossiers, at, last| {
        if last {
            // Week 2: a CSV saved from Excel (UTF-8 with BOM, semicolons, CRLF), profile named.
            let path = base.with_extension("csv");
            let mut bytes = vec![0xEF, 0xBB, 0xBF];
            bytes.extend(delimited(&vi_rows(dossiers, at, last, false), ';').into_bytes());
            std::fs::write(&path, bytes).unwrap();
            (path, vec!["--profile", "vi-export"])
        } else {
            // Week 1: a workbook whose first sheet is a guide; the data sheet is found by its header.
            let path = base.with_extension("xlsx");
            let guide = vec![vec![json!("Hướng dẫn: danh sách hồ sơ ở trang sau")]];
            write_xlsx(&path, &[("Hướng dẫn", guide), ("Danh sách hồ sơ", vi_rows(dossiers, at, last, true))]);
            (path, vec![])
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_sync_unicode_text_then_workbook_a_week_later_equal_a_recount_of_the_final_state() {
    two_weeks("workbook_sync", 1610, |base, dossiers, at, last| {
        if last {
            let path = base.with_extension("xlsx");
            write_xlsx(&path, &[("Tổng hợp", vec![vec![json!("x")]]), ("HoSo", sync_rows(dossiers, at, last, true))]);
            (path, vec!["--sheet", "HoSo", "--profile", "national-sync"])
        } else {
            // Excel's "Unicode text": UTF-16LE with BOM, tab-separated.
            let path = base.with_extension("txt");
            std::fs::write(&path, utf16le_with_bom(&delimited(&sync_rows(dossiers, at, last, false), '\t'))).unwrap();
            (path, vec![])
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workbook_import_shows_a_progress_bar_and_lists_ignored_columns_once() {
    let env = TestEnv::new("workbook_terminal");
    let store = env.connect().await;
    env.migrate(&store).await;
    let dir = std::env::temp_dir().join(format!("parpulse-workbook-tty-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let now = parpulse_core::time::now_micros();
    let dossiers = generate(7, 300, now);
    let path = dir.join("export.xlsx");
    write_xlsx(&path, &[("Sheet1", vi_rows(&dossiers, now, true, true))]);
    let (rows, events) = events_in_view(&dossiers, now, true);
    let mut command = parpulse_tests::parpulse_command(&env, &["ingest", "file"]);
    command.arg(&path);
    let (ok, screen) = run_in_terminal(&command);
    assert!(ok, "import failed:\n{screen}");
    // The bar counts the sheet's rows: the title, the blank row and the header too.
    let bar = format!("{}/{} rows", rows + 3, rows + 3);
    assert!(screen.contains(&bar), "no progress bar at {bar:?}:\n{screen}");
    let summary = format!("read {rows} rows ({events} events), accepted {events}, rejected 0; profile vi-export");
    assert!(screen.contains(&summary), "wanted {summary:?}:\n{screen}");
    assert_eq!(screen.matches("ignored columns: STT, Ghi chú").count(), 1, "ignored columns listed once:\n{screen}");
    std::fs::remove_dir_all(&dir).ok();
    env.cleanup().await;
}

/// A file of malformed rows: its name, how to write it, the options, the reasons expected
/// in the rejects file, and the events accepted.
struct Case {
    name: &'static str,
    options: ImportOptions,
    reasons: Vec<&'static str>,
    accepted: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_and_files_get_their_reason_rejects_line_and_dead_letter_exactly() {
    let env = TestEnv::new("workbook_malformed");
    let store = env.connect().await;
    env.migrate(&store).await;
    let sink = parpulse_ingest::KafkaSink::new(
        env.kafka(),
        parpulse_ingest::Gate::new(AgencyRegistry::demo(), Default::default()),
    )
    .expect("producer");
    let dir = std::env::temp_dir().join(format!("parpulse-workbook-bad-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let now = parpulse_core::time::now_micros();
    let yesterday = vi_date(now - DAY);
    let due = vi_date(now + 5 * DAY);
    let header = [
        "Mã đơn vị",
        "Mã hồ sơ",
        "Mã thủ tục",
        "Ngày tiếp nhận",
        "Ngày hẹn trả",
        "Hình thức nộp",
        "Mức độ",
        "Trạng thái",
    ];
    let row = |unit: Value, id: &str, received: Value, due: Value, channel: &str, level: Value, state: &str| {
        vec![unit, json!(id), json!("1.001234"), received, due, json!(channel), level, json!(state)]
    };
    let long_id = "H".repeat(300);
    let vi_bad: Vec<(Vec<Value>, &str)> = vec![
        (row(json!("SNV"), "OK-1", json!(yesterday), json!(due), "Trực tiếp", Value::Null, "Đã tiếp nhận"), ""),
        (row(json!("SNV"), "B-1", json!("32/11/2026 08:30"), json!(due), "Trực tiếp", Value::Null, "2"), "malformed"),
        (row(json!("SNV"), "B-2", json!({"error": "#N/A"}), json!(due), "Trực tiếp", Value::Null, "2"), "malformed"),
        (row(json!("SNV"), "B-3", json!(yesterday), json!(due), "Trực tiếp", Value::Null, "Lưu kho"), "malformed"),
        (row(json!("SNV"), "B-4", json!(yesterday), json!(due), "Fax", Value::Null, "2"), "malformed"),
        (row(json!("SNV"), "", json!(yesterday), json!(due), "Trực tiếp", Value::Null, "2"), "missing_field"),
        (row(Value::Null, "B-6", json!(yesterday), json!(due), "Trực tiếp", Value::Null, "2"), "missing_field"),
        (row(json!("HANOI"), "B-7", json!(yesterday), json!(due), "Trực tiếp", Value::Null, "2"), "unknown_agency"),
        (row(json!("SNV"), "B-8", Value::Null, json!(due), "Trực tiếp", Value::Null, "4"), "missing_field"),
        (
            row(json!("SNV"), "B-9", json!(vi_date(now + 2 * DAY)), json!(due), "Trực tiếp", Value::Null, "2"),
            "future_time",
        ),
        (row(json!("SNV"), "B-10", json!("01/01/1999 08:00"), json!(due), "Trực tiếp", Value::Null, "2"), "too_old"),
        (
            row(json!("SNV"), "B-11", json!(yesterday), json!(due), "Trực tuyến", json!(2), "2"),
            "channel_level_mismatch",
        ),
        (row(json!("SNV"), "B-12", json!(yesterday), json!(due), "Trực tiếp", json!(5), "2"), "bad_online_level"),
        (row(json!("SNV"), "B-13", json!(yesterday), Value::Null, "Trực tiếp", Value::Null, "2"), "missing_deadline"),
        (
            row(json!("SNV"), "B-14", json!(yesterday), json!("01/01/2150 08:00"), "Trực tiếp", Value::Null, "2"),
            "bad_deadline",
        ),
        (row(json!("SNV"), &long_id, json!(yesterday), json!(due), "Trực tiếp", Value::Null, "2"), "field_too_long"),
        (row(json!("SNV"), "B-16", json!(9_999_999), json!(due), "Trực tiếp", Value::Null, "2"), "malformed"),
        (row(json!("SNV"), "B-17", json!(yesterday), json!(due), "Trực tiếp", json!("cao"), "2"), "malformed"),
        (row(json!("SNV"), "B-18", json!(yesterday), json!(due), "Trực tiếp", Value::Null, "Trả"), "malformed"),
    ];
    let mut rows = vec![header.iter().map(|h| json!(h)).collect::<Vec<_>>()];
    rows.extend(vi_bad.iter().map(|(r, _)| r.clone()));
    write_xlsx(&dir.join("vi.xlsx"), &[("Sheet1", rows)]);
    let sync_header = "MaHoSo,MaTTHC,KenhThucHien,NgayTiepNhan,NgayHenTra,TrangThaiHoSo,DonViXuLy\n";
    let (good, due_sync) = (sync_date(now - DAY), sync_date(now + 5 * DAY));
    let sync_csv = format!(
        "{sync_header}S-OK,2.001,2,{good},{due_sync},2,STP\nS-1,2.001,2,2026-13-45,{due_sync},2,STP\n\
         S-2,2.001,2,{good},{due_sync},11,STP\nS-3,2.001,4,{good},{due_sync},2,STP\nS-4,2.001,2,{good},{due_sync},3,STP\n\
         S-5,2.001\n"
    );
    std::fs::write(dir.join("sync.csv"), sync_csv).unwrap();
    // parpulse's own columns in a workbook, one bad kind.
    let own = vec![
        ["agency_code", "dossier_id", "procedure_code", "kind", "channel", "online_level", "occurred_at", "due_at"]
            .iter()
            .map(|h| json!(h))
            .collect::<Vec<_>>(),
        vec![
            json!("STC"),
            json!("P-1"),
            json!("1.1"),
            json!("received"),
            json!("online"),
            json!(4),
            json!({"date": local(now - DAY).format("%Y-%m-%dT%H:%M:%S").to_string()}),
            json!(due),
        ],
        vec![
            json!("STC"),
            json!("P-2"),
            json!("1.1"),
            json!("approved"),
            json!("online"),
            json!(4),
            json!(yesterday),
            json!(due),
        ],
    ];
    write_xlsx(&dir.join("own.xlsx"), &[("Sheet1", own)]);

    let cases = vec![
        Case {
            name: "vi.xlsx",
            options: ImportOptions::default(),
            reasons: vi_bad.iter().map(|(_, r)| *r).filter(|r| !r.is_empty()).collect(),
            accepted: 1,
        },
        Case {
            name: "sync.csv",
            options: ImportOptions { profile: Some("national-sync".into()), ..Default::default() },
            // S-4 is "3" (refused at reception) with no refusal date: a refused step at its
            // reception date, accepted with its reception.
            reasons: vec!["malformed", "malformed", "malformed", "malformed"],
            accepted: 3,
        },
        Case { name: "own.xlsx", options: ImportOptions::default(), reasons: vec!["malformed"], accepted: 1 },
    ];
    let mut expected_dead: BTreeMap<String, usize> = BTreeMap::new();
    let mut kinds = 0;
    for case in &cases {
        let mut rejects = Vec::new();
        let summary =
            import_file_with(&sink, &dir.join(case.name), &case.options, &mut rejects).await.expect("import runs");
        let lines: Vec<Value> =
            String::from_utf8(rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let mut got: Vec<String> = lines.iter().map(|l| l["reason"].as_str().unwrap().to_owned()).collect();
        let mut want: Vec<String> = case.reasons.iter().map(|r| (*r).to_owned()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}: rejects file {lines:#?}", case.name);
        assert!(lines.iter().all(|l| l["line"].as_u64().unwrap() > 1 && !l["message"].as_str().unwrap().is_empty()));
        assert_eq!(summary.accepted, case.accepted, "{}: {summary}", case.name);
        assert_eq!(summary.rejected(), case.reasons.len() as u64, "{}: {summary}", case.name);
        for reason in &case.reasons {
            *expected_dead.entry((*reason).to_owned()).or_default() += 1;
        }
        kinds += case.reasons.len();
    }
    // The rejects line keeps the row as header -> value.
    let mut rejects = Vec::new();
    import_file_with(&sink, &dir.join("sync.csv"), &cases[1].options, &mut rejects).await.unwrap();
    let first: Value = serde_json::from_str(String::from_utf8(rejects).unwrap().lines().next().unwrap()).unwrap();
    let original: Value = serde_json::from_str(first["original"].as_str().unwrap()).unwrap();
    assert_eq!(original["MaHoSo"], "S-1", "{first}");
    for reason in &cases[1].reasons {
        *expected_dead.entry((*reason).to_owned()).or_default() += 1;
    }

    // Whole files refused before any row is sent: nothing reaches either topic.
    let tcvn3 = b"Ma h\xE5 s\xAC;M\xE3 th\xF1 t\xF4c\nM\xE3 h\xE5 s\xAC;Tr\xB9ng th\xE1i\n".to_vec();
    std::fs::write(dir.join("tcvn3.csv"), tcvn3).unwrap();
    let mojibake: String =
        b"M\xE3 h\xE5 s\xAC,Tr\xB9ng th\xE1i,\xB8\xB5\xB6\n".iter().map(|b| char::from(*b)).collect();
    std::fs::write(dir.join("mojibake.csv"), mojibake).unwrap();
    std::fs::write(
        dir.join("no-state.csv"),
        "Mã đơn vị;Mã hồ sơ;Mã thủ tục;Ngày tiếp nhận;Hình thức nộp\nSNV;X;1;01/11/2026;1\n",
    )
    .unwrap();
    std::fs::write(dir.join("broken.xlsx"), b"PK\x03\x04 not really a zip").unwrap();
    std::fs::write(
        dir.join("bad-profile.toml"),
        "name = \"x\"\nshape = \"snapshot\"\nrequired = [\"dossier_id\"]\n[columns]\ndossier = [\"A\"]\n",
    )
    .unwrap();
    let refusals: Vec<(&str, ImportOptions, &str)> = vec![
        ("tcvn3.csv", ImportOptions::default(), "TCVN3"),
        ("mojibake.csv", ImportOptions::default(), "Latin-1"),
        ("no-state.csv", ImportOptions { profile: Some("vi-export".into()), ..Default::default() }, "\"Mã hồ sơ\""),
        (
            "no-state.csv",
            ImportOptions { profile: Some("vi-export".into()), ..Default::default() },
            "state (Trạng thái",
        ),
        ("vi.xlsx", ImportOptions { sheet: Some("Không có".into()), ..Default::default() }, "\"Sheet1\""),
        ("broken.xlsx", ImportOptions::default(), "not a readable workbook"),
        (
            "vi.xlsx",
            ImportOptions { profile: Some(dir.join("bad-profile.toml").display().to_string()), ..Default::default() },
            "not a field",
        ),
        ("vi.xlsx", ImportOptions { header_row: Some(2), ..Default::default() }, "row 2 (--header-row)"),
    ];
    for (name, options, says) in &refusals {
        let mut rejects = Vec::new();
        let error = import_file_with(&sink, &dir.join(name), options, &mut rejects).await.expect_err(name);
        let text = error.to_string();
        assert!(text.contains(says), "{name}: {text}");
        assert!(
            matches!(error, ImportError::Unreadable { .. } | ImportError::CsvHeader { .. } | ImportError::Profile(_)),
            "{name}: {error:?}"
        );
        assert!(rejects.is_empty(), "{name}: no rejects for a refused file");
    }
    kinds += refusals.len();
    assert!(kinds >= 20, "only {kinds} malformed cases");

    let records = read_topic(&env.brokers, &env.topics.deadletter, Duration::from_secs(30));
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for record in &records {
        assert_eq!(record.headers.get("source").map(String::as_str), Some("file"));
        *got.entry(record.headers["reason"].clone()).or_default() += 1;
    }
    assert_eq!(got, expected_dead, "the dead-letter topic holds exactly the refused rows");
    let accepted = read_topic(&env.brokers, &env.topics.dossier, Duration::from_secs(30)).len();
    assert_eq!(
        accepted as u64,
        cases.iter().map(|c| c.accepted).sum::<u64>() + cases[1].accepted,
        "accepted events only"
    );
    std::fs::remove_dir_all(&dir).ok();
    env.cleanup().await;
}
