//! Alerting: the rule files pass promtool's checks and unit tests, and a real
//! Prometheus (Debian's package) scraping a live exporter raises the online
//! share, deputies, staff-reduction and budget-disclosure alerts each for the
//! one unit that misses its goal, and for no other.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parpulse_core::time::now_micros;
use parpulse_core::{
    AgencyRegistry, BudgetEvent, BudgetEventKind, Channel, DossierEvent, DossierEventKind, Event, LocalDay, Position,
    StaffingEvent, StaffingEventKind,
};
use parpulse_export::{Exporter, ExporterConfig};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::KafkaSink;
use parpulse_tests::prometheus::{repo, Prometheus};
use parpulse_tests::TestEnv;

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool not found: `make up` installs the prometheus package, which has it");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn rules_and_config_pass_promtool_checks_and_rule_unit_tests() {
    promtool(&["check", "rules", "deploy/prometheus/rules/parpulse.yml"]);
    promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
    let report = promtool(&["test", "rules", "deploy/prometheus/tests/parpulse_test.yml"]);
    assert!(report.contains("SUCCESS"), "{report}");
}

#[test]
fn the_alertmanager_example_passes_amtool() {
    let output = Command::new("amtool")
        .args(["check-config", "deploy/prometheus/alertmanager.yml"])
        .current_dir(repo())
        .output()
        .expect("amtool not found: `make up` installs the prometheus-alertmanager package, which has it");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}

fn received(agency: &str, n: usize, online: bool) -> Event {
    let now = now_micros();
    Event::Dossier(DossierEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        agency_code: agency.into(),
        occurred_at: now - 3_600_000_000,
        recorded_at: 0,
        source: String::new(),
        dossier_id: format!("{agency}-{n}"),
        procedure_code: "1.000001".into(),
        kind: DossierEventKind::Received,
        channel: if online { Channel::Online } else { Channel::InPerson },
        online_level: 4,
        result_channel: None,
        due_at: Some(now + 5 * 86_400_000_000),
        legal_max_days: None,
        fee_bearing: false,
        digitized: true,
        new_due_at: None,
    })
}

fn budget(agency: &str, kind: BudgetEventKind, amount_vnd: i64) -> Event {
    let now = now_micros();
    Event::Budget(BudgetEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        agency_code: agency.into(),
        occurred_at: now - 3_600_000_000,
        recorded_at: 0,
        source: String::new(),
        kind,
        fiscal_year: LocalDay::of_micros(now).year(),
        category: "chi_quan_ly_hanh_chinh".into(),
        amount_vnd,
    })
}

fn headcount(agency: &str, position: Position, quota: i32, filled: i32, baseline_quota: i32) -> Event {
    Event::Staffing(StaffingEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        agency_code: agency.into(),
        occurred_at: now_micros() - 3_600_000_000,
        recorded_at: 0,
        source: String::new(),
        kind: StaffingEventKind::HeadcountSnapshot,
        position,
        quota: Some(quota),
        filled: Some(filled),
        baseline_year: Some(2015),
        baseline_quota: Some(baseline_quota),
        count: None,
    })
}

/// The alerts this test raises, each for one unit only.
const EXPECTED: [(&str, &str); 4] = [
    ("ParOnlineShareBelowTarget", "KIMDONG"),
    ("ParDeputiesOverLimit", "STP"),
    ("ParStaffReductionBehindRoadmap", "PHUCU"),
    ("ParBudgetNotDisclosed", "SNV"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_raises_each_kpi_alert_for_the_one_unit_that_misses_its_goal() {
    let env = TestEnv::new("alerting");
    let store = env.connect().await;
    env.migrate(&store).await;
    let registry = AgencyRegistry::demo();
    // Every unit receives 10 dossiers, half online; KIMDONG only 1 online (10%).
    let mut events = Vec::new();
    for agency in registry.iter() {
        let online = if agency.code.as_str() == "KIMDONG" { 1 } else { 5 };
        for n in 0..10 {
            events.push(received(agency.code.as_str(), n, n < online));
        }
    }
    // Budget and staffing: SNV has disclosed half of its estimate, STP keeps a deputy above the
    // limit, PHUCU has cut 5% of its 2015 staff quota (10% is due since 2022); everyone else is in order.
    for agency in registry.iter() {
        let code = agency.code.as_str();
        let disclosed = if code == "SNV" { 500_000_000 } else { 1_000_000_000 };
        events.push(budget(code, BudgetEventKind::Allocated, 1_000_000_000));
        events.push(budget(code, BudgetEventKind::Disclosed, disclosed));
        let quota = if code == "PHUCU" { 95 } else { 88 };
        events.push(headcount(code, Position::Staff, quota, quota, 100));
        events.push(headcount(code, Position::Deputy, 3, if code == "STP" { 4 } else { 3 }, 3));
    }
    let sink = KafkaSink::new(env.kafka(), Gate::new(registry.clone(), Default::default())).expect("producer");
    sink.send(events, "test").await.expect("Kafka acknowledged");
    env.aggregate_to_end(&store, Duration::from_secs(120)).await;

    let exporter = Arc::new(Exporter::new(store.clone(), registry.clone(), ExporterConfig::default()));
    exporter.refresh().await.expect("exporter reads ClickHouse");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(parpulse_http::serve(listener, exporter.clone(), async {
        let _ = stopped.await;
    }));

    let prometheus = Prometheus::start(&[("parpulse-exporter", address)]).await;
    let alerts = || async {
        let body: serde_json::Value = match reqwest::get(prometheus.url("/api/v1/alerts")).await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null, // still starting
        };
        let mut alerts: Vec<String> = body["data"]["alerts"]
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .filter(|a| {
                        a["labels"]["alertname"].as_str().is_some_and(|n| EXPECTED.iter().any(|(e, _)| e == &n))
                    })
                    .map(|a| {
                        let label = |name: &str| a["labels"][name].as_str().unwrap_or("").to_owned();
                        format!(
                            "{} {} {} {}",
                            label("alertname"),
                            label("unit"),
                            label("name"),
                            a["state"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        alerts.sort();
        alerts
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let raised = loop {
        let raised = alerts().await;
        if EXPECTED.iter().all(|(alert, _)| raised.iter().any(|r| r.starts_with(&format!("{alert} ")))) {
            // One more evaluation of every rule group, so a second unit would have shown up too.
            prometheus.wait_rules_evaluated_after(chrono::Utc::now(), Duration::from_secs(30)).await;
            break alerts().await;
        }
        assert!(
            Instant::now() < deadline,
            "not every alert within 60 s ({raised:?}); Prometheus log: {}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // `for` (30m, 1h, 15d) keeps them pending within a test's time; pending is the alert being raised.
    let mut expected: Vec<String> = EXPECTED
        .iter()
        .map(|(alert, unit)| {
            let name = &registry.get(unit).expect("a demo unit").name;
            format!("{alert} {unit} {name} pending")
        })
        .collect();
    expected.sort();
    assert_eq!(raised, expected);
    let _ = stop.send(());
    drop(prometheus);
    env.cleanup().await;
}
