//! The exporter's clock, end to end: hand-made dossiers and budgets of autumn 2019
//! through Kafka, the aggregator and ClickHouse, then two real `parpulse export`
//! processes with a fixed now (`PARPULSE_FAKE_NOW`, test-only) one second apart across
//! the turn of the year in Asia/Ho_Chi_Minh: 2019-12-31 23:59:59 and 2020-01-01 00:00:00
//! local time (UTC is still on 31 December for both). Every window of /metrics, the
//! fiscal year of the budget and the overdue dossiers are checked against values
//! worked out by hand below; none depends on the day the test runs.

use std::time::Duration;

use parpulse_core::time::Clock;
use parpulse_core::{AgencyRegistry, Event};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::KafkaSink;
use parpulse_tests::process::Reaped;
use parpulse_tests::prom_text::{find, parse, Sample};
use parpulse_tests::TestEnv;
use serde_json::{json, Value};

const NEW_YEAR_EVE: &str = "2019-12-31T23:59:59+07:00";
const NEW_YEAR: &str = "2020-01-01T00:00:00+07:00";

/// `"2019-12-31 23:59:59"`, local time (UTC+7), as UTC microseconds.
fn t(local: &str) -> i64 {
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").expect("a local time");
    naive.and_utc().timestamp_micros() - 7 * 3_600_000_000
}

fn dossier(unit: &str, id: &str, kind: &str, at: &str, channel: &str, due: &str) -> Value {
    json!({
        "type": "dossier", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": unit,
        "occurred_at": t(at), "dossier_id": id, "procedure_code": "1.001234", "kind": kind,
        "channel": channel, "online_level": if channel == "online" { 4 } else { 2 },
        "due_at": t(due), "fee_bearing": false, "digitized": true
    })
}

fn budget(year: i32, at: &str, amount: i64) -> Value {
    json!({
        "type": "budget", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": "SNV",
        "occurred_at": t(at), "kind": "allocated", "fiscal_year": year, "category": "chi thường xuyên",
        "amount_vnd": amount
    })
}

/// The province's history, in time order (the lateness limit is counted from each
/// partition's newest event):
/// - F (PHUCU) received 30 Sep 23:59:59 in person, processed 2 Oct;
/// - E (PHUCU) received 1 Oct in person, processed 10 Oct;
/// - D (STP) received 30 Nov online, due 5 Dec, still open: overdue;
/// - C (STP) received Sunday 1 Dec in person, processed 31 Dec 23:00;
/// - A (SNV) received 31 Dec 23:59:59 online, due 10 Jan: open, not overdue;
/// - B (SNV) received 1 Jan 00:00:00 in person, due 3 Jan: open, not overdue;
/// - SNV's budget: 1,000,000 VND for 2019 (January 2019), 3,000,000 for 2020 (allocated
///   in December 2019).
fn history() -> Vec<Event> {
    let events = [
        budget(2019, "2019-01-15 09:00:00", 1_000_000),
        dossier("PHUCU", "F", "received", "2019-09-30 23:59:59", "in_person", "2019-10-14 17:00:00"),
        dossier("PHUCU", "E", "received", "2019-10-01 09:00:00", "in_person", "2019-10-15 17:00:00"),
        dossier("PHUCU", "F", "processed", "2019-10-02 10:00:00", "in_person", "2019-10-14 17:00:00"),
        dossier("PHUCU", "E", "processed", "2019-10-10 10:00:00", "in_person", "2019-10-15 17:00:00"),
        dossier("STP", "D", "received", "2019-11-30 09:00:00", "online", "2019-12-05 17:00:00"),
        dossier("STP", "C", "received", "2019-12-01 08:00:00", "in_person", "2019-12-20 17:00:00"),
        budget(2020, "2019-12-20 09:00:00", 3_000_000),
        dossier("STP", "C", "processed", "2019-12-31 23:00:00", "in_person", "2019-12-20 17:00:00"),
        dossier("SNV", "A", "received", "2019-12-31 23:59:59", "online", "2020-01-10 17:00:00"),
        dossier("SNV", "B", "received", "2020-01-01 00:00:00", "in_person", "2020-01-03 17:00:00"),
    ];
    events.into_iter().map(|e| serde_json::from_value(e).expect("a valid event")).collect()
}

/// `parpulse export` with a fixed now; its /metrics once ready, parsed.
async fn metrics_as_of(env: &TestEnv, now: &str) -> (Reaped, Vec<Sample>) {
    let (exporter, text) = parpulse_tests::metrics_as_of(env, now).await;
    (exporter, parse(&text))
}

const WINDOWS: [&str; 7] = ["day", "7d", "30d", "mtd", "ytd", "last_month", "last_quarter"];

/// A gauge of the province, window by window.
fn province(samples: &[Sample], name: &str) -> Vec<(&'static str, Option<f64>)> {
    WINDOWS.map(|w| (w, find(samples, name, &[("scope", "province"), ("unit", "HY"), ("window", w)]))).to_vec()
}

fn counts(values: [u32; 7]) -> Vec<(&'static str, Option<f64>)> {
    WINDOWS.iter().zip(values).map(|(w, v)| (*w, Some(f64::from(v)))).collect()
}

fn unit(samples: &[Sample], name: &str, code: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let mut labels = vec![("scope", "unit"), ("unit", code)];
    labels.extend_from_slice(extra);
    find(samples, name, &labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_with_a_fixed_now_turns_the_year_at_local_midnight() {
    let env = TestEnv::new("clock");
    let store = env.connect().await;
    env.migrate(&store).await;
    let events = history();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    let summary = sink.send(events.clone(), "test").await.expect("Kafka acknowledged the events");
    assert_eq!((summary.accepted, summary.rejected), (events.len() as u64, 0), "every hand-made event is valid");
    // The aggregator judges the dossiers as of the later instant, as it would have then.
    let config =
        parpulse_aggregate::AggregatorConfig { clock: Clock::fixed_at(NEW_YEAR).unwrap(), ..env.aggregator_config() };
    let metrics = parpulse_aggregate::AggregatorMetrics::new();
    env.aggregate_to_end_with(config, &metrics, &store, Duration::from_secs(120)).await;
    assert_eq!(metrics.too_late.get(), 0, "no event beyond the allowed lateness");

    let (eve_exporter, eve) = metrics_as_of(&env, NEW_YEAR_EVE).await;
    let (new_year_exporter, new_year) = metrics_as_of(&env, NEW_YEAR).await;

    // Receptions, by reception day. On the eve: day = A; 7d (25-31 Dec) = A; 30d (2-31
    // Dec) = A; mtd = C, A; ytd = F, E, D, C, A; last month (November) = D; last
    // quarter (Q3) = F. At midnight: day = B; 7d (26 Dec-1 Jan) and 30d = A, B; mtd = ytd
    // = B; last month (December) = C, A; last quarter (Q4) = E, D, C, A.
    assert_eq!(province(&eve, "parpulse_dossiers_received"), counts([1, 1, 1, 2, 5, 1, 1]));
    assert_eq!(province(&new_year, "parpulse_dossiers_received"), counts([1, 2, 2, 1, 1, 2, 4]));
    // Online: A and D.
    assert_eq!(province(&eve, "parpulse_dossiers_received_online"), counts([1, 1, 1, 1, 2, 1, 0]));
    assert_eq!(province(&new_year, "parpulse_dossiers_received_online"), counts([0, 1, 1, 0, 0, 1, 2]));
    assert_eq!(unit(&eve, "parpulse_dossiers_received", "SNV", &[("window", "day")]), Some(1.0), "A");
    assert_eq!(unit(&new_year, "parpulse_dossiers_received", "SNV", &[("window", "day")]), Some(1.0), "B");
    assert_eq!(unit(&new_year, "parpulse_dossiers_received_online", "SNV", &[("window", "day")]), Some(0.0));
    assert_eq!(unit(&new_year, "parpulse_online_share_ratio", "SNV", &[("window", "7d")]), Some(0.5));

    // Resolved, by the day they ended: F 2 Oct, E 10 Oct, C 31 Dec.
    assert_eq!(province(&eve, "parpulse_dossiers_resolved"), counts([1, 1, 1, 1, 3, 0, 0]));
    assert_eq!(province(&new_year, "parpulse_dossiers_resolved"), counts([0, 1, 1, 0, 0, 1, 3]));

    // Open at midnight: D (overdue since 5 Dec), A and B (due in January: not overdue;
    // the wall clock would call them overdue).
    let open = |name| find(&new_year, name, &[("scope", "province"), ("unit", "HY")]);
    assert_eq!((open("parpulse_dossiers_open"), open("parpulse_dossiers_open_overdue")), (Some(3.0), Some(1.0)));
    assert_eq!(unit(&new_year, "parpulse_dossiers_open_overdue", "STP", &[]), Some(1.0));
    assert_eq!(unit(&new_year, "parpulse_dossiers_open_overdue", "SNV", &[]), Some(0.0));

    // The fiscal year is the calendar year of the local day.
    let allocated = |samples: &[Sample], year| {
        unit(samples, "parpulse_budget_vnd", "SNV", &[("fiscal_year", year), ("kind", "allocated")])
    };
    assert_eq!((allocated(&eve, "2019"), allocated(&eve, "2020")), (Some(1_000_000.0), None));
    assert_eq!((allocated(&new_year, "2019"), allocated(&new_year, "2020")), (None, Some(3_000_000.0)));

    drop((eve_exporter, new_year_exporter));
    env.delete_topics(&[env.topics.budget.as_str(), env.topics.staffing.as_str()]).await;
    env.cleanup().await;
}
