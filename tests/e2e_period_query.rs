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
