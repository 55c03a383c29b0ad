//! The leadership scorecard, rendered by a real browser (headless Chromium):
//! the page loads, its numbers equal the exporter's /metrics, and a screenshot
//! is produced.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use parpulse_core::{AgencyRegistry, Event};
use parpulse_export::{Exporter, ExporterConfig};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaSink, Simulator, SimulatorConfig};
use parpulse_tests::prom_text::{self, find};
use parpulse_tests::TestEnv;

fn chromium(args: &[String]) -> std::process::Output {
    let profile = std::env::temp_dir().join(format!("parpulse-chromium-{}", uuid::Uuid::new_v4().simple()));
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium not found: `make up` installs Debian's chromium package");
    let _ = std::fs::remove_dir_all(profile);
    output
}

/// (unit, kpi) -> text of the cell, from the rendered DOM.
fn cells(dom: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for row in dom.split("<tr").skip(1) {
        let Some(unit) = row.split("data-unit=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        for cell in row.split("data-kpi=\"").skip(1) {
            let kpi = cell.split('"').next().unwrap().to_owned();
            let value = if kpi == "online_share" || kpi == "on_time" {
                cell.split("data-value=\"").nth(1).and_then(|v| v.split('"').next()).unwrap_or("").to_owned()
            } else {
                cell.split('>').nth(1).and_then(|v| v.split('<').next()).unwrap_or("").to_owned()
            };
            out.insert((unit.to_owned(), kpi), value);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scorecard_renders_in_chromium_with_the_exporters_numbers() {
    let env = TestEnv::new("scorecard");
    let store = env.connect().await;
    env.migrate(&store).await;
    let registry = AgencyRegistry::demo();
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(23, 8, 6), &registry).collect();
    let sink = KafkaSink::new(env.kafka(), Gate::new(registry.clone(), Default::default())).expect("producer");
    sink.send(events, "test").await.expect("Kafka acknowledged");
    env.aggregate_to_end(&store, Duration::from_secs(120)).await;

    let exporter = Arc::new(Exporter::new(store.clone(), registry.clone(), ExporterConfig::default()));
    exporter.refresh().await.expect("refresh");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(parpulse_http::serve_router(listener, exporter.clone().router(), std::future::pending()));
    let metrics =
        prom_text::parse(&reqwest::get(format!("http://{address}/metrics")).await.unwrap().text().await.unwrap());

    let url = format!("http://{address}/report?window=30d");
    let dump = tokio::task::spawn_blocking({
        let url = url.clone();
        move || chromium(&["--dump-dom".to_owned(), url])
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(
        dump.status.success() && dom.contains("Bảng điểm cải cách hành chính"),
        "Chromium did not render the page:\n{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let cells = cells(&dom);
    let mut compared = 0;
    let mut units: Vec<(String, &str)> = registry.iter().map(|a| (a.code.to_string(), "unit")).collect();
    units.push(("department".into(), "group"));
    units.push(("district".into(), "group"));
    units.push(("HY".into(), "province"));
    for (unit, scope) in &units {
        let labels = [("scope", *scope), ("unit", unit.as_str()), ("window", "30d")];
        let received = find(&metrics, "parpulse_dossiers_received", &labels).expect("received on /metrics");
        let online = find(&metrics, "parpulse_dossiers_received_online", &labels).expect("online on /metrics");
        assert_eq!(cells[&(unit.clone(), "received".into())], format!("{received}"), "{unit} received");
        assert_eq!(cells[&(unit.clone(), "received_online".into())], format!("{online}"), "{unit} online");
        if let Some(rate) = find(&metrics, "parpulse_on_time_ratio", &labels) {
            let page: f64 = cells[&(unit.clone(), "on_time".into())].parse().expect("on-time rate on the page");
            assert!((page - rate).abs() < 1e-12, "{unit}: page on-time {page} vs metrics {rate}");
        }
        if let Some(share) = find(&metrics, "parpulse_online_share_ratio", &labels) {
            let page: f64 = cells[&(unit.clone(), "online_share".into())].parse().expect("share on the page");
            assert!((page - share).abs() < 1e-12, "{unit}: page {page} vs metrics {share}");
        }
        compared += 1;
    }
    assert_eq!(compared, registry.len() + 3);

    let shot = std::env::temp_dir().join(format!("parpulse-scorecard-{}.png", uuid::Uuid::new_v4().simple()));
    let screenshot = tokio::task::spawn_blocking({
        let shot = shot.clone();
        move || chromium(&[format!("--screenshot={}", shot.display()), "--window-size=1280,1800".to_owned(), url])
    })
    .await
    .unwrap();
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "no screenshot ({size} bytes): {}", String::from_utf8_lossy(&screenshot.stderr));
    println!("scorecard screenshot: {}", shot.display());
    env.cleanup().await;
}
