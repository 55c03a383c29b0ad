//! The period query against ClickHouse 18.16: it must judge each dossier by its newest
//! stored version, even when an older version matches the period's conditions and the
//! newest does not (a condition applied before FINAL would return the older one), and the
//! report built from it must count each dossier once.

use std::sync::Arc;

use parpulse_clickhouse::dossier_state::{self, DossierStateRow};
use parpulse_clickhouse::Store;
use parpulse_core::calendar::WorkingCalendar;
use parpulse_core::period::Period;
use parpulse_core::{AgencyRegistry, LocalDay};
use parpulse_tests::TestEnv;

const HOUR: i64 = 3_600_000_000;

fn at(month: u32, day: u32) -> i64 {
    LocalDay::from_ymd(2019, month, day).unwrap().start_micros() + 9 * HOUR
}

/// A dossier of SNV received at `received`, due ten days later, as stored at `version`.
fn row(id: &str, version: u64, received: i64, processed: Option<i64>) -> DossierStateRow {
    let (outcome, end_day, end_kind) = match processed {
        Some(end) => (1, LocalDay::of_micros(end).0, 9),
        None => (0, 0, 0),
    };
    DossierStateRow {
        kafka_partition: 0,
        agency_code: Arc::from("SNV"),
        dossier_id: Arc::from(id),
        received_offset: 0,
        received_day: LocalDay::of_micros(received).0,
        version,
        received_at: received,
        due_at: received + 240 * HOUR,
        legal_max_days: 0,
        supplement_requested: vec![],
        supplement_received: vec![],
        processed_at: processed.unwrap_or(0),
        other_end_at: 0,
        returned_at: 0,
        returned_postal: 0,
        apology: 0,
        fee_bearing: 0,
        paid_online: 0,
        digitized: 0,
        outcome,
        end_day,
        deadline_at: received + 240 * HOUR,
        last_event_at: processed.unwrap_or(received),
        received_channel: 1,
        result_postal: 0,
        stopped_at: 0,
        withdrawn_at: 0,
        refused_at: 0,
        apology_at: 0,
        apology_due_at: 0,
        end_kind,
        apology_timing: 0,
    }
}

#[tokio::test]
async fn the_period_query_reads_each_dossiers_newest_version_only() {
    let env = TestEnv::new("period_query");
    let store = match Store::connect(&env.clickhouse()).await {
        Ok(store) => store,
        Err(error) => {
            panic!("ClickHouse is not reachable at {} ({error}): start it with `make up`", env.clickhouse_url)
        }
    };
    parpulse_clickhouse::migrate::migrate(&store).await.expect("applying migrations");
    // Older versions first, in their own part; then the newer ones, in another. Filler
    // dossiers make the table big enough for ClickHouse's PREWHERE heuristics to act.
    let filler: Vec<_> =
        (0..20_000).map(|i| row(&format!("F{i}"), 1, at(3, 1 + i % 28), Some(at(3, 1 + i % 28)))).collect();
    dossier_state::write(&store, &filler).await.expect("filler rows");
    let older = [row("A", 1, at(10, 10), None), row("B", 1, at(10, 25), None), row("C", 1, at(11, 3), None)];
    dossier_state::write(&store, &older).await.expect("older versions");
    // A ended in October (not in November's report); B ended in November; C is still open.
    let newer = [row("A", 2, at(10, 10), Some(at(10, 20))), row("B", 2, at(10, 25), Some(at(11, 5)))];
    dossier_state::write(&store, &newer).await.expect("newer versions");

    let november = Period::parse("2019-11").unwrap();
    let rows = dossier_state::read_for_period(&store, november.start_micros(), november.end_micros(), november.first)
        .await
        .expect("reading the period's dossiers");
    let mut got: Vec<(String, u64)> = rows.iter().map(|r| (r.dossier_id.to_string(), r.version)).collect();
    got.sort();
    assert_eq!(got, [("B".to_owned(), 2), ("C".to_owned(), 1)], "the newest version of the needed dossiers, once each");

    let report = parpulse_export::period_report::build(
        &rows,
        &AgencyRegistry::demo(),
        &november,
        WorkingCalendar::embedded(),
        0,
    );
    let snv = report.rows.iter().find(|r| r.code == "SNV").expect("a row for SNV");
    let c = &snv.counts;
    assert_eq!((c.carried_over, c.received_new(), c.resolved(), c.in_progress()), (1, 1, 1, 1), "{c:?}");
    Store::drop_database(&env.clickhouse()).await.expect("dropping the test database");
}

/// A reception in November, then, after an instant T, a late correction (its processing,
/// also in November) within the allowed lateness: the closed month's report changes, and
/// `--as-of T` still shows the month as it stood at T, from the audit table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_correction_changes_a_closed_month_and_as_of_shows_it_before() {
    use parpulse_tests::{parpulse_command, start_intake, PROVINCE_TOKEN};
    use serde_json::{json, Value};
    use std::time::Duration;

    let env = TestEnv::new("period_as_of");
    let store = env.connect().await;
    env.migrate(&store).await;
    let intake = start_intake(&env, &env.brokers, 1 << 20, Duration::from_secs(10)).await;
    let url = intake.url("/v1/events");
    let event = |kind: &str, occurred: i64| {
        json!({"type": "dossier", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": "SNV",
               "occurred_at": occurred, "dossier_id": "LATE-1", "procedure_code": "1.001234", "kind": kind,
               "channel": "online", "online_level": 4, "due_at": at(11, 15) + 8 * HOUR,
               "fee_bearing": false, "digitized": false})
    };
    let post = |events: Vec<Value>| {
        let url = url.clone();
        async move {
            let response = reqwest::Client::new()
                .post(&url)
                .header("authorization", format!("Bearer {PROVINCE_TOKEN}"))
                .json(&json!({ "events": events }))
                .send()
                .await
                .expect("intake answers");
            assert_eq!(response.status().as_u16(), 200, "{:?}", response.text().await);
        }
    };
    post(vec![event("received", at(11, 5))]).await;
    env.aggregate_to_end(&store, Duration::from_secs(60)).await;
    // T: after the reception was admitted (its answer came back), before the correction is
    // sent; a microsecond earlier, so the correction's admission time is certainly after it.
    let t = chrono::Utc::now() - chrono::Duration::microseconds(1);
    post(vec![event("processed", at(11, 12))]).await;
    env.aggregate_to_end(&store, Duration::from_secs(60)).await;
    drop(intake);

    let snv = |extra: &[&str]| {
        let mut args = vec!["report", "--period", "2019-11", "--format", "csv"];
        args.extend_from_slice(extra);
        let output = parpulse_command(&env, &args).output().expect("running parpulse report");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8(output.stdout).expect("UTF-8 CSV");
        let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let headers = reader.headers().expect("header").clone();
        let record = reader.records().map(|r| r.expect("a row")).find(|r| &r[0] == "SNV").expect("a row for SNV");
        let cell = |name: &str| -> u64 {
            let i = headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name:?}"));
            record[i].parse().expect("a count")
        };
        (cell("Số hồ sơ đã giải quyết - Trước hạn"), cell("Số hồ sơ đang giải quyết - Quá hạn"))
    };
    // Now: processed on 12/11, three days before its appointment: resolved early, nothing open.
    assert_eq!(snv(&[]), (1, 0), "the correction changes the closed month");
    // As of T: the processing was not known; at the month's end the dossier was open and overdue.
    let as_of = t.to_rfc3339();
    assert_eq!(snv(&["--as-of", &as_of]), (0, 1), "the month as it stood at {as_of}");
    env.cleanup().await;
}
