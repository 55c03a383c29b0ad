//! Grafana cannot run here, so the dashboards are tested as data: every JSON
//! parses, uses provisioned datasource uids, and every PromQL expression names
//! only metrics the live processes serve and is accepted by a real Prometheus.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use parpulse_aggregate::AggregatorMetrics;
use parpulse_core::AgencyRegistry;
use parpulse_export::{Exporter, ExporterConfig};
use parpulse_http::RegistrySource;
use parpulse_tests::prometheus::{read_repo_file, repo, Prometheus};
use parpulse_tests::{prom_text, start_intake, InProcessAggregator, TestEnv, SNV_TOKEN};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

const DASHBOARDS: [&str; 2] =
    ["deploy/grafana/dashboards/leadership.json", "deploy/grafana/dashboards/it-operations.json"];

/// Datasource uids declared in the provisioning file.
fn provisioned_uids() -> BTreeSet<String> {
    read_repo_file("deploy/grafana/provisioning/datasources/parpulse.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uid:").map(|u| u.trim().to_owned()))
        .collect()
}

/// (dashboard, panel title, expression) for every query of every panel.
fn expressions() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for path in DASHBOARDS {
        let dashboard: Value = serde_json::from_str(&read_repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        for panel in dashboard["panels"].as_array().expect("panels").iter().filter(|p| p["type"] != "row") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().unwrap_or_else(|| panic!("{path}: a target without expr"));
                out.push((path.to_owned(), panel["title"].as_str().unwrap_or("").to_owned(), expr.to_owned()));
            }
        }
    }
    out
}

/// Grafana variables replaced by values Prometheus understands.
fn concrete(expr: &str) -> String {
    expr.replace("$window", "30d").replace("$__rate_interval", "5m")
}

/// The parpulse metric names an expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("parpulse_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        names.insert(expr[start..end].to_owned());
        i = end;
    }
    names
}

#[test]
fn dashboards_parse_and_use_only_provisioned_datasources() {
    let uids = provisioned_uids();
    assert!(uids.contains("parpulse-prometheus"), "{uids:?}");
    for path in DASHBOARDS {
        let dashboard: Value = serde_json::from_str(&read_repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(dashboard["uid"].as_str().is_some_and(|u| u.starts_with("parpulse-")), "{path}: uid");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(panels.len() >= 5, "{path}: only {} panels", panels.len());
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("");
            assert!(!title.is_empty(), "{path}: a panel without title");
            if panel["type"] == "row" {
                continue; // a row only groups the panels below it
            }
            let uid =
                panel["datasource"]["uid"].as_str().unwrap_or_else(|| panic!("{path} / {title}: no datasource uid"));
            assert!(uids.contains(uid), "{path} / {title}: datasource {uid} is not provisioned");
            for target in panel["targets"].as_array().expect("targets") {
                let uid = target["datasource"]["uid"].as_str().unwrap_or(uid);
                assert!(uids.contains(uid), "{path} / {title}: target datasource {uid} is not provisioned");
            }
        }
    }
    // Vietnamese titles, UTF-8: the leadership dashboard speaks the province's language.
    assert!(read_repo_file(DASHBOARDS[0]).contains("Tỷ lệ hồ sơ trực tuyến"));
    // Every goal of letter 301/UBND-NC has its row, budget (item e) and staffing (item đ) included.
    let leadership: Value = serde_json::from_str(&read_repo_file(DASHBOARDS[0])).unwrap();
    let rows: Vec<&str> = leadership["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for topic in ["Ngân sách", "Biên chế"] {
        assert!(rows.iter().any(|r| r.starts_with(topic)), "no {topic} row in {rows:?}");
    }
    assert!(repo().join("deploy/grafana/provisioning/dashboards/parpulse.yml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_resolves_against_the_live_processes_and_prometheus() {
    let env = TestEnv::new("dashboards");
    let store = env.connect().await;
    env.migrate(&store).await;

    // The three processes, in-process: intake (one accepted, one rejected event), aggregator, exporter.
    let intake = start_intake(&env, &env.brokers, 1 << 20, Duration::from_secs(10)).await;
    let now = parpulse_core::time::now_micros();
    let event = serde_json::json!({
        "type": "dossier", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": "SNV", "occurred_at": now - 60_000_000,
        "dossier_id": "HS-1", "procedure_code": "1.000001", "kind": "received", "channel": "online", "online_level": 4,
        "due_at": now + 86_400_000_000i64, "fee_bearing": true, "digitized": true});
    // A second dossier, received, processed late, with an apology: the lateness series exist too.
    let late: Vec<serde_json::Value> = [
        ("received", now - 10 * 86_400_000_000i64),
        ("apology_issued", now - 5 * 86_400_000_000),
        ("processed", now - 3_600_000_000),
    ]
    .iter()
    .map(|(kind, at)| {
        serde_json::json!({
            "type": "dossier", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": "SNV", "occurred_at": at,
            "dossier_id": "HS-2", "procedure_code": "1.000001", "kind": kind, "channel": "in_person", "online_level": 2,
            "due_at": now - 4 * 86_400_000_000i64, "fee_bearing": false, "digitized": false})
    })
    .collect();
    // SNV's budget of this fiscal year (half disclosed) and its newest headcounts: 5% below
    // the 2015 staff quota, one deputy above the limit. The budget and staffing panels have data.
    let fiscal_year = parpulse_core::LocalDay::of_micros(now).year();
    let mut administration: Vec<serde_json::Value> = [
        ("allocated", 12_000_000_000i64),
        ("disbursed", 3_000_000_000),
        ("saved", 600_000_000),
        ("disclosed", 6_000_000_000),
    ]
    .iter()
    .map(|(kind, amount)| {
        serde_json::json!({
            "type": "budget", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": "SNV", "occurred_at": now - 120_000_000,
            "kind": kind, "fiscal_year": fiscal_year, "category": "chi_quan_ly_hanh_chinh", "amount_vnd": amount})
    })
    .collect();
    administration.extend([("staff", 95, 90, 100), ("deputy", 3, 4, 4)].iter().map(|(position, quota, filled, baseline)| {
        serde_json::json!({
            "type": "staffing", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": "SNV", "occurred_at": now - 120_000_000,
            "kind": "headcount_snapshot", "position": position, "quota": quota, "filled": filled,
            "baseline_year": 2015, "baseline_quota": baseline})
    }));
    let bad = serde_json::json!({"type": "dossier", "event_id": "nope"});
    let mut batch = vec![event, late[0].clone(), late[1].clone(), late[2].clone()];
    batch.extend(administration);
    batch.push(bad);
    let response = reqwest::Client::new()
        .post(intake.url("/v1/events"))
        .bearer_auth(SNV_TOKEN)
        .json(&batch)
        .send()
        .await
        .expect("intake");
    assert_eq!(response.status().as_u16(), 207);
    // And one message written around the gate, which the aggregator refuses: the dead-letter
    // panels of the IT dashboard (parpulse_aggregator_rejected_total) have a series too.
    let rogue: FutureProducer = env.connection().client_config().create().expect("rogue producer");
    let record = FutureRecord::to(env.topics.dossier.as_str()).key("SNV").payload(b"not avro at all".as_slice());
    rogue.send(record, Duration::from_secs(10)).await.expect("poison written");

    let metrics = AggregatorMetrics::new();
    let aggregator = InProcessAggregator::spawn(env.aggregator_config(), &store, &metrics);
    env.wait_caught_up(&store, Duration::from_secs(60)).await;
    // The lag gauge is set from librdkafka's statistics, about once a second: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metrics
        .registry
        .gather()
        .iter()
        .all(|f| f.name() != "parpulse_aggregator_consumer_lag_messages" || f.get_metric().is_empty())
    {
        assert!(std::time::Instant::now() < deadline, "no consumer lag reported within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let serve = |source: Arc<dyn parpulse_http::MetricsSource>| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(parpulse_http::serve(listener, source, std::future::pending()));
        address
    };
    let aggregator_address = serve(Arc::new(RegistrySource(metrics.registry.clone()))).await;
    let exporter = Arc::new(Exporter::new(store.clone(), AgencyRegistry::demo(), ExporterConfig::default()));
    exporter.refresh().await.expect("exporter refresh");
    let exporter_address = serve(exporter.clone()).await;

    let mut served = BTreeSet::new();
    for address in [intake.address, aggregator_address, exporter_address] {
        let text = reqwest::get(format!("http://{address}/metrics")).await.unwrap().text().await.unwrap();
        served.extend(prom_text::parse(&text).into_iter().map(|s| s.name));
    }

    let prometheus = Prometheus::start(&[
        ("parpulse-intake", intake.address),
        ("parpulse-aggregator", aggregator_address),
        ("parpulse-exporter", exporter_address),
    ])
    .await;
    let expressions = expressions();
    assert!(expressions.len() >= 15, "only {} queries", expressions.len());
    for (path, title, expr) in &expressions {
        for name in metric_names(expr) {
            assert!(
                served.contains(&name),
                "{path} / {title}: {name} is not served by any parpulse process (served: {served:?})"
            );
        }
        if let Err(error) = prometheus.query(&concrete(expr)).await {
            panic!("{path} / {title}: Prometheus refuses {expr:?}: {error}");
        }
    }
    // And the data flows: once scraped, SNV's online share query returns its value.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let data =
            prometheus.query("parpulse_online_share_ratio{scope=\"unit\",unit=\"SNV\",window=\"30d\"}").await.unwrap();
        if data["result"].as_array().is_some_and(|r| !r.is_empty()) {
            // HS-1 online, HS-2 in person.
            assert_eq!(data["result"][0]["value"][1], "0.5");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Prometheus never scraped the exporter: {}", prometheus.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every leadership query returns data: the fixture has dossiers, a budget and headcounts
    // for SNV, so an empty answer is a panel showing nothing (a wrong label, a typo'd value).
    for (path, title, expr) in expressions.iter().filter(|(path, _, _)| path == DASHBOARDS[0]) {
        let data = prometheus.query(&concrete(expr)).await.unwrap();
        assert!(
            data["result"].as_array().is_some_and(|r| !r.is_empty()),
            "{path} / {title}: {expr:?} returns nothing although the fixture has data: {data}"
        );
    }
    // The budget and staffing panels show the fixture's numbers, recounted from the events above.
    for (expr, expected) in [
        ("parpulse_budget_disclosure_ratio{scope=\"province\"}", 0.5),
        ("parpulse_budget_execution_ratio{scope=\"group\",unit=\"department\"}", 0.25),
        ("parpulse_budget_savings_ratio{scope=\"province\"}", 0.05),
        ("count(parpulse_budget_disclosure_ratio{scope=\"unit\"} < 1) or vector(0)", 1.0),
        ("parpulse_deputies_over_limit{scope=\"province\"}", 1.0),
        ("parpulse_staff_reduction_ratio{scope=\"unit\",unit=\"SNV\"}", 0.05),
        (
            "count(parpulse_staff_reduction_ratio{scope=\"unit\"} < on() group_left() parpulse_staff_reduction_due_ratio) or vector(0)",
            1.0,
        ),
    ] {
        let data = prometheus.query(expr).await.unwrap();
        let value: f64 = data["result"][0]["value"][1].as_str().unwrap_or_else(|| panic!("{expr}: {data}")).parse().unwrap();
        assert!((value - expected).abs() < 1e-9, "{expr}: {value}, expected {expected}");
    }
    // The Decision 766 score, recounted by hand from the two dossiers: on time 0 of 1 (0 of
    // 20 points), online 1 of 2 = the 50% target (11 of 11), payment 0 of 1 fee-bearing
    // (0 of 11), digitized 1 of 2 against 80% (0.5 x 22 / 0.8 = 13.75 of 22), satisfaction
    // proxy 1 - 1 late of 1 resolved (0 of 18): 24.75 of 82 points.
    let data = prometheus.query("parpulse_766_score_ratio{scope=\"province\",window=\"30d\"}").await.unwrap();
    let score: f64 = data["result"][0]["value"][1].as_str().expect("a province 766 score").parse().unwrap();
    assert!((score - 24.75 / 82.0).abs() < 1e-9, "766 score {score}");
    let data = prometheus
        .query("parpulse_766_points{scope=\"province\",window=\"30d\"} / on(indicator) group_left(name) parpulse_766_indicator_points_max")
        .await
        .unwrap();
    assert_eq!(data["result"].as_array().map(Vec::len), Some(5), "one bar per indicator: {data}");
    aggregator.stop().await;
    drop(prometheus);
    drop(intake);
    env.cleanup().await;
}

#[test]
fn metric_names_are_found_in_expressions() {
    let names = metric_names("histogram_quantile(0.99, sum by (le) (rate(parpulse_a_bucket[5m]))) / parpulse_b");
    assert_eq!(names, ["parpulse_a_bucket".to_owned(), "parpulse_b".to_owned()].into_iter().collect());
}

/// docker-compose cannot run here (no Docker engine); at least every file it mounts
/// or builds from exists, and it uses the ports of the local scripts.
#[test]
fn docker_compose_mounts_files_that_exist_and_uses_the_local_ports() {
    let compose = read_repo_file("deploy/docker-compose.yml");
    for line in compose.lines() {
        let line = line.trim().trim_start_matches("- ");
        if let Some(source) = line.strip_prefix("./") {
            let path = source.split(':').next().unwrap();
            if path != "intake-tokens.toml" {
                assert!(
                    repo().join("deploy").join(path).exists(),
                    "docker-compose mounts deploy/{path}, which does not exist"
                );
            }
        }
    }
    assert!(repo().join("deploy/Dockerfile").exists());
    for address in ["127.0.0.1:9092", "http://127.0.0.1:8123"] {
        assert!(compose.contains(address), "docker-compose does not use {address}");
    }
    let prometheus = read_repo_file("deploy/prometheus/prometheus.yml");
    for port in ["9464", "9465", "9466"] {
        assert!(prometheus.contains(&format!("127.0.0.1:{port}")), "prometheus.yml does not scrape :{port}");
    }
}
