//! The closed-period report's budget, staffing and level-3/4 online-service columns
//! (issue 17), end to end and computed by hand.
//!
//! A small procedure catalogue (a file, `PARPULSE_PROCEDURES`), dossiers with known
//! procedure codes (one not in the catalogue), budget movements and headcount snapshots
//! of 2019 go through the real HTTP intake, an aggregator and ClickHouse; then
//! `parpulse report --period 2019-11 --format csv` and every new cell of a unit (STP),
//! its group (the departments) and the province are compared with the numbers worked
//! out below from the rules of docs/KPIS.md ("Closed periods", "The online-service
//! indicators"). Nothing here calls parpulse's KPI code. Then `parpulse export` with
//! a fixed now in December 2019: its `last_month` window (November) of the procedure
//! gauges on /metrics must show the same hand counts.
//!
//! Times are local (Asia/Ho_Chi_Minh, UTC+7).

use std::collections::BTreeMap;
use std::time::Duration;

use parpulse_tests::prom_text::{find, parse};
use parpulse_tests::{parpulse_command, start_intake, TestEnv, PROVINCE_TOKEN};
use serde_json::{json, Value};

/// The catalogue: P1 level 4 at STP and SNV, P2 level 3 at STP, P3 level 2 at STP, P4
/// level 3 at PHUCU (a district). Other units offer nothing.
const CATALOGUE: &str = r#"
[[procedure]]
code = "1.000101"
name = "Thủ tục P1"
level = 4
fee_bearing = false
units = ["STP", "SNV"]

[[procedure]]
code = "1.000102"
name = "Thủ tục P2"
level = 3
fee_bearing = true
units = ["STP"]

[[procedure]]
code = "1.000103"
name = "Thủ tục P3"
level = 2
fee_bearing = false
units = ["STP"]

[[procedure]]
code = "1.000104"
name = "Thủ tục P4"
level = 3
fee_bearing = false
units = ["PHUCU"]
"#;
const UNKNOWN: &str = "1.000999";

/// `"2019-11-05 08:00"`, local time, as UTC microseconds.
fn t(local: &str) -> i64 {
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").expect("a local time");
    naive.and_utc().timestamp_micros() - 7 * 3_600_000_000
}

fn reception(unit: &str, id: &str, procedure: &str, at: &str, channel: &str) -> Value {
    json!({
        "type": "dossier", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": unit,
        "occurred_at": t(at), "dossier_id": id, "procedure_code": procedure, "kind": "received",
        "channel": channel, "online_level": if channel == "online" { 4 } else { 2 },
        "due_at": t("2020-01-31 17:00"), "fee_bearing": false, "digitized": true
    })
}

fn budget(unit: &str, kind: &str, year: i32, at: &str, amount_vnd: i64) -> Value {
    json!({
        "type": "budget", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": unit,
        "occurred_at": t(at), "kind": kind, "fiscal_year": year, "category": "chi thường xuyên",
        "amount_vnd": amount_vnd
    })
}

fn headcount(unit: &str, position: &str, at: &str, quota: i32, filled: i32, baseline: Option<i32>) -> Value {
    let mut event = json!({
        "type": "staffing", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": unit,
        "occurred_at": t(at), "kind": "headcount_snapshot", "position": position,
        "quota": quota, "filled": filled
    });
    if let Some(baseline) = baseline {
        event["baseline_year"] = json!(2015);
        event["baseline_quota"] = json!(baseline);
    }
    event
}

/// Every event, in time order.
fn events() -> Vec<Value> {
    let mut events = vec![
        // Budget of 2019. STP: 1,000,000,000 allocated and disclosed, 400,000,000 committed,
        // 300,000,000 disbursed by November and 200,000,000 more on 10 December, 20,000,000
        // saved. SNV: 500,000,000 allocated, 100,000,000 disbursed, 250,000,000 disclosed.
        // PHUCU: 2,000,000,000 allocated, 1,500,000,000 disbursed, 50,000,000 saved.
        budget("STP", "allocated", 2019, "2019-01-10 09:00", 1_000_000_000),
        budget("SNV", "allocated", 2019, "2019-01-10 09:00", 500_000_000),
        budget("PHUCU", "allocated", 2019, "2019-01-15 09:00", 2_000_000_000),
        budget("STP", "disclosed", 2019, "2019-01-20 09:00", 1_000_000_000),
        budget("SNV", "disclosed", 2019, "2019-02-01 09:00", 250_000_000),
        budget("STP", "committed", 2019, "2019-03-01 09:00", 400_000_000),
        budget("SNV", "disbursed", 2019, "2019-05-01 09:00", 100_000_000),
        budget("STP", "disbursed", 2019, "2019-06-01 09:00", 300_000_000),
        budget("STP", "saved", 2019, "2019-09-01 09:00", 20_000_000),
        budget("PHUCU", "disbursed", 2019, "2019-10-01 09:00", 1_500_000_000),
        budget("PHUCU", "saved", 2019, "2019-11-20 09:00", 50_000_000),
        budget("STP", "disbursed", 2019, "2019-12-10 09:00", 200_000_000),
        // Next year's estimate, allocated in December: never 2019's.
        budget("STP", "allocated", 2020, "2019-12-20 09:00", 1_200_000_000),
        // Headcounts. STP staff: 50 of 55 (2015) in March, 48 (47 filled) on 15 November,
        // 45 on 15 December (after November). Deputies: STP 4 of 3, SNV 2 of 3, PHUCU 3 of 2.
        headcount("PHUCU", "staff", "2019-02-01 09:00", 100, 95, Some(110)),
        headcount("PHUCU", "deputy", "2019-02-01 09:00", 2, 3, None),
        headcount("STP", "staff", "2019-03-01 09:00", 50, 48, Some(55)),
        headcount("SNV", "staff", "2019-06-01 09:00", 40, 40, Some(44)),
        headcount("SNV", "deputy", "2019-06-01 09:00", 3, 2, None),
        // Dossiers. D6 (STP, P2 online) on 30 October: not November's.
        reception("STP", "D6", "1.000102", "2019-10-30 09:00", "online"),
        headcount("STP", "deputy", "2019-11-01 09:00", 3, 4, None),
        // November: STP D1 P1 online, D2 P1 in person, D3 P2 in person, D4 P3 (level 2)
        // online, D5 a procedure not in the catalogue, online; SNV D7 P1 online; PHUCU D8 P4
        // in person.
        reception("STP", "D1", "1.000101", "2019-11-05 09:00", "online"),
        reception("STP", "D2", "1.000101", "2019-11-06 09:00", "in_person"),
        reception("STP", "D3", "1.000102", "2019-11-07 09:00", "in_person"),
        reception("STP", "D4", "1.000103", "2019-11-07 10:00", "online"),
        reception("STP", "D5", UNKNOWN, "2019-11-08 09:00", "online"),
        reception("SNV", "D7", "1.000101", "2019-11-12 09:00", "online"),
        headcount("STP", "staff", "2019-11-15 09:00", 48, 47, Some(55)),
        reception("PHUCU", "D8", "1.000104", "2019-11-15 09:00", "in_person"),
        headcount("STP", "staff", "2019-12-15 09:00", 45, 45, Some(55)),
    ];
    events.sort_by_key(|e| e["occurred_at"].as_i64().unwrap());
    events
}

// CSV headers (crates/parpulse-export/src/period_report/mod.rs, levels joined by " - ").
const OFFERED: &str = "Thủ tục cung cấp trực tuyến mức độ 3, 4 - Số thủ tục";
const USED: &str = "Thủ tục cung cấp trực tuyến mức độ 3, 4 - Có phát sinh hồ sơ trực tuyến";
const USED_SHARE: &str = "Thủ tục cung cấp trực tuyến mức độ 3, 4 - Tỷ lệ có phát sinh hồ sơ (%)";
const RECEIVED: &str = "Hồ sơ của thủ tục cung cấp trực tuyến mức độ 3, 4 - Tiếp nhận";
const ONLINE: &str = "Hồ sơ của thủ tục cung cấp trực tuyến mức độ 3, 4 - Trực tuyến";
const ONLINE_SHARE: &str = "Hồ sơ của thủ tục cung cấp trực tuyến mức độ 3, 4 - Tỷ lệ trực tuyến (%)";
const UNKNOWN_COLUMN: &str = "Hồ sơ có thủ tục ngoài danh mục";
const YEAR: &str = "Năm ngân sách";
const ALLOCATED: &str = "Ngân sách (đồng) - Dự toán được giao";
const COMMITTED: &str = "Ngân sách (đồng) - Đã cam kết chi";
const DISBURSED: &str = "Ngân sách (đồng) - Đã giải ngân";
const SAVED: &str = "Ngân sách (đồng) - Tiết kiệm chi";
const DISCLOSED: &str = "Ngân sách (đồng) - Đã công khai";
const EXECUTION: &str = "So với dự toán được giao (%) - Giải ngân";
const SAVINGS: &str = "So với dự toán được giao (%) - Tiết kiệm chi";
const DISCLOSURE: &str = "So với dự toán được giao (%) - Công khai";
const QUOTA: &str = "Biên chế - Được giao";
const FILLED: &str = "Biên chế - Có mặt";
const BASELINE: &str = "Biên chế - Được giao năm 2015";
const REDUCTION: &str = "Biên chế - Tinh giản so với 2015 (%)";
const DUE: &str = "Biên chế - Mức lộ trình (%)";
const BEHIND: &str = "Biên chế - Chậm lộ trình";
const DEPUTIES: &str = "Cấp phó - Hiện có";
const DEPUTY_LIMIT: &str = "Cấp phó - Theo quy định";
const DEPUTIES_OVER: &str = "Cấp phó - Vượt quy định";

/// Every new column, so each row's expectation must name them all.
const NEW_COLUMNS: [&str; 25] = [
    OFFERED,
    USED,
    USED_SHARE,
    RECEIVED,
    ONLINE,
    ONLINE_SHARE,
    UNKNOWN_COLUMN,
    YEAR,
    ALLOCATED,
    COMMITTED,
    DISBURSED,
    SAVED,
    DISCLOSED,
    EXECUTION,
    SAVINGS,
    DISCLOSURE,
    QUOTA,
    FILLED,
    BASELINE,
    REDUCTION,
    DUE,
    BEHIND,
    DEPUTIES,
    DEPUTY_LIMIT,
    DEPUTIES_OVER,
];

/// November 2019, by hand. Percentages have two decimals; empty: no ratio or not judged.
fn expected_2019_11() -> BTreeMap<&'static str, BTreeMap<&'static str, &'static str>> {
    let no_roadmap = [(DUE, ""), (BEHIND, "")]; // no checkpoint before the end of 2021
    let stp = [
        // Level 3/4 at STP: P1, P2 (P3 is level 2). P1 had D1 online: 1 of 2 = 50%.
        (OFFERED, "2"),
        (USED, "1"),
        (USED_SHARE, "50"),
        // Receptions of P1 and P2 in November: D1, D2, D3 (D6 is October's); online D1: 1/3.
        (RECEIVED, "3"),
        (ONLINE, "1"),
        (ONLINE_SHARE, "33.33"),
        (UNKNOWN_COLUMN, "1"), // D5
        (YEAR, "2019"),
        // Budget 2019 up to 30 November (the 10 December disbursement is December's).
        (ALLOCATED, "1000000000"),
        (COMMITTED, "400000000"),
        (DISBURSED, "300000000"),
        (SAVED, "20000000"),
        (DISCLOSED, "1000000000"),
        (EXECUTION, "30"),   // 300/1000
        (SAVINGS, "2"),      // 20/1000
        (DISCLOSURE, "100"), // 1000/1000
        // The newest snapshot before 1 December: 15 November's.
        (QUOTA, "48"),
        (FILLED, "47"),
        (BASELINE, "55"),
        (REDUCTION, "12.73"), // 1 - 48/55 = 7/55 = 0.12727
        (DEPUTIES, "4"),
        (DEPUTY_LIMIT, "3"),
        (DEPUTIES_OVER, "1"),
    ];
    let departments = [
        // STP's 2 + SNV's P1 = 3 offered; used: STP's P1, SNV's P1 (D7) = 2: 66.67%.
        (OFFERED, "3"),
        (USED, "2"),
        (USED_SHARE, "66.67"),
        (RECEIVED, "4"), // D1, D2, D3, D7
        (ONLINE, "2"),   // D1, D7
        (ONLINE_SHARE, "50"),
        (UNKNOWN_COLUMN, "1"),
        (YEAR, "2019"),
        // STP + SNV: 1,500,000,000 allocated, 400,000,000 committed, 300 + 100 = 400,000,000
        // disbursed, 20,000,000 saved, 1,000 + 250 = 1,250,000,000 disclosed.
        (ALLOCATED, "1500000000"),
        (COMMITTED, "400000000"),
        (DISBURSED, "400000000"),
        (SAVED, "20000000"),
        (DISCLOSED, "1250000000"),
        (EXECUTION, "26.67"),  // 400/1500
        (SAVINGS, "1.33"),     // 20/1500
        (DISCLOSURE, "83.33"), // 1250/1500
        // Staff 48 + 40 = 88 of 55 + 44 = 99: 1 - 88/99 = 11.11%; filled 47 + 40.
        (QUOTA, "88"),
        (FILLED, "87"),
        (BASELINE, "99"),
        (REDUCTION, "11.11"),
        // Deputies 4 + 2 = 6 of 3 + 3 = 6, yet 1 over: STP's, SNV's free place offsets nothing.
        (DEPUTIES, "6"),
        (DEPUTY_LIMIT, "6"),
        (DEPUTIES_OVER, "1"),
    ];
    let province = [
        // + PHUCU's P4 (D8 in person, not online): 4 offered, 2 used = 50%.
        (OFFERED, "4"),
        (USED, "2"),
        (USED_SHARE, "50"),
        (RECEIVED, "5"), // + D8
        (ONLINE, "2"),
        (ONLINE_SHARE, "40"), // 2/5
        (UNKNOWN_COLUMN, "1"),
        (YEAR, "2019"),
        // + PHUCU: 2,000,000,000 allocated, 1,500,000,000 disbursed, 50,000,000 saved.
        (ALLOCATED, "3500000000"),
        (COMMITTED, "400000000"),
        (DISBURSED, "1900000000"),
        (SAVED, "70000000"),
        (DISCLOSED, "1250000000"),
        (EXECUTION, "54.29"),  // 1900/3500 = 0.542857
        (SAVINGS, "2"),        // 70/3500
        (DISCLOSURE, "35.71"), // 1250/3500 = 0.357142
        // + PHUCU 100 (95 filled) of 110: 188 of 209, 1 - 188/209 = 21/209 = 0.100478.
        (QUOTA, "188"),
        (FILLED, "182"),
        (BASELINE, "209"),
        (REDUCTION, "10.05"),
        // + PHUCU 3 of 2: 9 of 8, over 1 + 1 = 2.
        (DEPUTIES, "9"),
        (DEPUTY_LIMIT, "8"),
        (DEPUTIES_OVER, "2"),
    ];
    [("STP", &stp[..]), ("department", &departments[..]), ("province", &province[..])]
        .into_iter()
        .map(|(code, cells)| (code, cells.iter().chain(&no_roadmap).copied().collect()))
        .collect()
}

async fn post(url: &str, events: &[Value]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {PROVINCE_TOKEN}"))
        .json(&json!({ "events": events }))
        .send()
        .await
        .expect("intake answers");
    let status = response.status().as_u16();
    (status, response.json::<Value>().await.unwrap_or(Value::Null))
}

/// `parpulse report --period PERIOD` (CSV on standard output), the rows by code.
fn report_rows(env: &TestEnv, catalogue: &std::path::Path, period: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let output = parpulse_command(env, &["report", "--period", period, "--format", "csv"])
        .env("PARPULSE_PROCEDURES", catalogue)
        .output()
        .expect("running parpulse report");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "parpulse report --period {period} failed ({}): {stderr}", output.status);
    parpulse_tests::report_rows_by_code(&String::from_utf8(output.stdout).expect("UTF-8"))
}

/// `parpulse export` with now fixed at `now` and the test's catalogue; its /metrics once ready.
async fn metrics_at(env: &TestEnv, catalogue: &std::path::Path, now: &str) -> Vec<parpulse_tests::prom_text::Sample> {
    let (exporter, text) =
        parpulse_tests::metrics_as_of_with(env, now, &[("PARPULSE_PROCEDURES", catalogue.as_os_str())]).await;
    drop(exporter);
    parse(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_period_report_carries_budget_staffing_and_the_level_34_criterion_computed_by_hand() {
    let env = TestEnv::new("period_admin");
    let store = env.connect().await;
    env.migrate(&store).await;
    let catalogue = std::env::temp_dir().join(format!("parpulse-period-admin-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&catalogue, CATALOGUE).expect("writing the catalogue");

    let intake = start_intake(&env, &env.brokers, 8 << 20, Duration::from_secs(10)).await;
    let events = events();
    let (status, body) = post(&intake.url("/v1/events"), &events).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(events.len() as u64)), "{body}");
    drop(intake);
    let metrics = parpulse_aggregate::AggregatorMetrics::new();
    env.aggregate_to_end_with(env.aggregator_config(), &metrics, &store, Duration::from_secs(120)).await;
    assert_eq!(metrics.too_late.get(), 0, "no event is beyond the allowed lateness");

    // November 2019: every new cell of STP, the departments and the province.
    let rows = report_rows(&env, &catalogue, "2019-11");
    let mut wrong = Vec::new();
    for (code, want) in expected_2019_11() {
        assert_eq!(want.len(), NEW_COLUMNS.len(), "{code}: every new column has a hand-computed value");
        let row = rows.get(code).unwrap_or_else(|| panic!("no row {code}: {:?}", rows.keys()));
        for header in NEW_COLUMNS {
            let got = row.get(header).unwrap_or_else(|| panic!("no column {header:?} in the report"));
            if got != want[header] {
                wrong.push(format!("2019-11 {code} {header:?}: hand computation {:?}, report {got:?}", want[header]));
            }
        }
    }
    // The fourth quarter: STP's 10 December disbursement and 15 December snapshot count now,
    // and D6 (30 October, P2 online) makes P2 used: 2 of 2; receptions D6, D1, D2, D3.
    let quarter = report_rows(&env, &catalogue, "2019-Q4");
    let stp = &quarter["STP"];
    for (header, want) in [
        (DISBURSED, "500000000"),
        (EXECUTION, "50"),
        (QUOTA, "45"),
        (REDUCTION, "18.18"), // 1 - 45/55 = 10/55
        (USED, "2"),
        (USED_SHARE, "100"),
        (RECEIVED, "4"),
        (ONLINE, "2"),
        (UNKNOWN_COLUMN, "1"),
        (YEAR, "2019"),
    ] {
        if stp[header] != want {
            wrong.push(format!("2019-Q4 STP {header:?}: hand computation {want:?}, report {:?}", stp[header]));
        }
    }
    assert!(wrong.is_empty(), "the report disagrees with the hand computation:\n{}", wrong.join("\n"));

    // The same counts on /metrics: with now on 5 December 2019, last_month is November.
    let samples = metrics_at(&env, &catalogue, "2019-12-05T10:00:00+07:00").await;
    let gauge = |name: &str, scope: &str, unit: &str| {
        find(&samples, name, &[("scope", scope), ("unit", unit), ("window", "last_month")])
            .unwrap_or_else(|| panic!("no {name} of {scope} {unit} for last_month on /metrics"))
    };
    for (scope, unit, offered, used, received, online, unknown) in [
        ("unit", "STP", 2.0, 1.0, 3.0, 1.0, 1.0),
        ("unit", "SNV", 1.0, 1.0, 1.0, 1.0, 0.0),
        ("unit", "PHUCU", 1.0, 0.0, 1.0, 0.0, 0.0),
        ("group", "department", 3.0, 2.0, 4.0, 2.0, 1.0),
        ("group", "district", 1.0, 0.0, 1.0, 0.0, 0.0),
        ("province", "HY", 4.0, 2.0, 5.0, 2.0, 1.0),
    ] {
        let at = format!("{scope} {unit}");
        assert_eq!(gauge("parpulse_procedures_online_offered", scope, unit), offered, "{at}");
        assert_eq!(gauge("parpulse_procedures_online_with_dossier", scope, unit), used, "{at}");
        assert_eq!(gauge("parpulse_procedures_online_share_ratio", scope, unit), used / offered, "{at}");
        assert_eq!(gauge("parpulse_dossiers_received_level34_procedures", scope, unit), received, "{at}");
        assert_eq!(gauge("parpulse_dossiers_received_online_level34_procedures", scope, unit), online, "{at}");
        assert_eq!(gauge("parpulse_online_share_level34_procedures_ratio", scope, unit), online / received, "{at}");
        assert_eq!(gauge("parpulse_dossiers_unknown_procedure", scope, unit), unknown, "{at}");
    }

    std::fs::remove_file(&catalogue).ok();
    env.delete_topics(&[env.topics.budget.as_str(), env.topics.staffing.as_str()]).await;
    env.cleanup().await;
}
