//! Alerting: the rule files pass promtool's checks and unit tests, and a real
//! Prometheus (Debian's package) scraping a live exporter raises the online
//! share alert for the one unit below 30%, and for no other.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parpulse_core::time::now_micros;
use parpulse_core::{AgencyRegistry, Channel, DossierEvent, DossierEventKind, Event};
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
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_raises_the_online_share_alert_for_the_unit_below_thirty_percent_only() {
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
    let sink = KafkaSink::new(env.kafka(), Gate::new(registry.clone(), Default::default())).expect("producer");
    sink.send(events, "test").await.expect("Kafka acknowledged");
    env.aggregate_to_end(&store, Duration::from_secs(120)).await;

    let exporter = Arc::new(Exporter::new(store.clone(), registry, ExporterConfig::default()));
    exporter.refresh().await.expect("exporter reads ClickHouse");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(parpulse_http::serve(listener, exporter.clone(), async {
        let _ = stopped.await;
    }));

    let prometheus = Prometheus::start(&[("parpulse-exporter", address)]).await;
    let api = prometheus.url("/api/v1/alerts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let alerting_units = loop {
        let units: Vec<(String, String)> = match reqwest::get(&api).await {
            Ok(response) => {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                body["data"]["alerts"]
                    .as_array()
                    .map(|alerts| {
                        alerts
                            .iter()
                            .filter(|a| a["labels"]["alertname"] == "ParOnlineShareBelowTarget")
                            .map(|a| {
                                (
                                    a["labels"]["unit"].as_str().unwrap_or("").to_owned(),
                                    a["state"].as_str().unwrap_or("").to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Err(_) => Vec::new(), // still starting
        };
        if !units.is_empty() {
            // One more evaluation round, so a second unit would have shown up too.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let body: serde_json::Value = reqwest::get(&api).await.unwrap().json().await.unwrap();
            let again: Vec<String> = body["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["labels"]["alertname"] == "ParOnlineShareBelowTarget")
                .map(|a| {
                    format!(
                        "{} {} {}",
                        a["labels"]["unit"].as_str().unwrap_or(""),
                        a["labels"]["name"].as_str().unwrap_or(""),
                        a["state"].as_str().unwrap_or("")
                    )
                })
                .collect();
            break again;
        }
        assert!(Instant::now() < deadline, "no alert within 60 s; Prometheus log: {}", prometheus.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // `for: 30m` keeps it pending within a test's time; pending is the alert being raised.
    assert_eq!(alerting_units, vec!["KIMDONG UBND huyện Kim Động pending".to_owned()]);
    let _ = stop.send(());
    drop(prometheus);
    env.cleanup().await;
}
