//! The leadership scorecard, rendered by a real browser (headless Chromium):
//! the page loads, its numbers equal the exporter's /metrics, and a screenshot
//! is produced.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use parpulse_core::time::now_micros;
use parpulse_core::{AgencyRegistry, BudgetEventKind, Event, LocalDay, Position, StaffingEventKind};
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
            // The exact value where the cell carries one (ratios, VND), else the text shown.
            let tag = cell.split('>').next().unwrap_or("");
            let value = match tag.split("data-value=\"").nth(1) {
                Some(v) => v.split('"').next().unwrap_or("").to_owned(),
                None => cell.split('>').nth(1).and_then(|v| v.split('<').next()).unwrap_or("").to_owned(),
            };
            out.insert((unit.to_owned(), kpi), value);
        }
    }
    out
}

/// A unit's budget sums of the current fiscal year, by kind (VND).
#[derive(Debug, Clone, Copy, Default)]
struct Budget {
    allocated: i64,
    disbursed: i64,
    saved: i64,
    disclosed: i64,
}

impl Budget {
    fn ratio(&self, amount: i64) -> Option<f64> {
        (self.allocated > 0).then(|| amount as f64 / self.allocated as f64)
    }
}

/// A unit's newest staff snapshot: quota and 2015 baseline.
#[derive(Debug, Clone, Copy, Default)]
struct Staff {
    quota: i64,
    baseline: i64,
}

impl Staff {
    fn reduction(&self) -> Option<f64> {
        (self.baseline > 0).then(|| (self.baseline - self.quota) as f64 / self.baseline as f64)
    }
}

/// Per unit, recounted from the simulated events without parpulse's code: budget sums of
/// this fiscal year, the newest staff snapshot, and deputies above the limit in the newest
/// deputy snapshot.
fn recount_administration(events: &[Event]) -> BTreeMap<String, (Budget, Staff, i64)> {
    let fiscal_year = LocalDay::of_micros(now_micros()).year();
    let mut out: BTreeMap<String, (Budget, Staff, i64)> = BTreeMap::new();
    let mut newest: HashMap<(String, Position), i64> = HashMap::new();
    for event in events {
        match event {
            Event::Budget(b) if b.fiscal_year == fiscal_year => {
                let budget = &mut out.entry(b.agency_code.clone()).or_default().0;
                match b.kind {
                    BudgetEventKind::Allocated => budget.allocated += b.amount_vnd,
                    BudgetEventKind::Disbursed => budget.disbursed += b.amount_vnd,
                    BudgetEventKind::Saved => budget.saved += b.amount_vnd,
                    BudgetEventKind::Disclosed => budget.disclosed += b.amount_vnd,
                    BudgetEventKind::Committed => {}
                }
            }
            Event::Staffing(s) if s.kind == StaffingEventKind::HeadcountSnapshot => {
                let key = (s.agency_code.clone(), s.position);
                if newest.get(&key).is_some_and(|&t| t >= s.occurred_at) {
                    continue;
                }
                newest.insert(key, s.occurred_at);
                let entry = out.entry(s.agency_code.clone()).or_default();
                let (quota, filled) = (i64::from(s.quota.unwrap_or(0)), i64::from(s.filled.unwrap_or(0)));
                match s.position {
                    Position::Staff => entry.1 = Staff { quota, baseline: i64::from(s.baseline_quota.unwrap_or(0)) },
                    Position::Deputy => entry.2 = (filled - quota).max(0),
                    Position::Head => {}
                }
            }
            _ => {}
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
    let administration = recount_administration(&events);
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
    let mut with_ratio: BTreeMap<&str, usize> = BTreeMap::new();
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
        // A ratio without dossiers is absent from /metrics and empty on the page: both
        // cases are checked, never skipped.
        for (kpi, metric) in [("on_time", "parpulse_on_time_ratio"), ("online_share", "parpulse_online_share_ratio")] {
            let cell = &cells[&(unit.clone(), kpi.into())];
            let page = (!cell.is_empty()).then(|| cell.parse::<f64>().expect("a ratio on the page"));
            match (find(&metrics, metric, &labels), page) {
                (Some(value), Some(page)) => {
                    assert!((page - value).abs() < 1e-12, "{unit}: page {kpi} {page} vs metrics {value}");
                    *with_ratio.entry(kpi).or_insert(0) += 1;
                }
                (None, None) => {}
                (value, page) => panic!("{unit} {kpi}: /metrics {value:?}, page {page:?}"),
            }
        }
        compared += 1;
    }
    assert_eq!(compared, registry.len() + 3);
    assert!(
        with_ratio.get("on_time") > Some(&0) && with_ratio.get("online_share") > Some(&0),
        "some scopes have ratios to compare: {with_ratio:?}"
    );

    // Budget and staffing: every unit's cells equal /metrics and a recount from the events.
    let mut over_limit_units = 0;
    for agency in registry.iter() {
        let unit = agency.code.to_string();
        let cell = |kpi: &str| {
            cells.get(&(unit.clone(), kpi.to_owned())).cloned().unwrap_or_else(|| panic!("{unit}: no {kpi}"))
        };
        let ratio = |kpi: &str| cell(kpi).parse::<f64>().ok();
        let labels = [("scope", "unit"), ("unit", unit.as_str())];
        let (budget, staff, deputies) = administration.get(&unit).copied().unwrap_or_default();
        assert_eq!(cell("budget_allocated"), budget.allocated.to_string(), "{unit} allocated");
        for (kpi, metric, recount) in [
            ("budget_execution", "parpulse_budget_execution_ratio", budget.ratio(budget.disbursed)),
            ("budget_savings", "parpulse_budget_savings_ratio", budget.ratio(budget.saved)),
            ("budget_disclosure", "parpulse_budget_disclosure_ratio", budget.ratio(budget.disclosed)),
            ("staff_reduction", "parpulse_staff_reduction_ratio", staff.reduction()),
        ] {
            let page = ratio(kpi);
            assert_eq!(page.is_some(), recount.is_some(), "{unit} {kpi}: page {page:?}, recount {recount:?}");
            if let (Some(page), Some(recount)) = (page, recount) {
                assert!((page - recount).abs() < 1e-12, "{unit} {kpi}: page {page} vs recount {recount}");
                let metric = find(&metrics, metric, &labels).expect("on /metrics");
                assert!((page - metric).abs() < 1e-12, "{unit} {kpi}: page {page} vs /metrics {metric}");
            }
        }
        assert_eq!(cell("staff_quota"), staff.quota.to_string(), "{unit} staff quota");
        assert_eq!(cell("deputies_over_limit"), deputies.to_string(), "{unit} deputies over the limit");
        assert_eq!(
            find(&metrics, "parpulse_deputies_over_limit", &labels),
            Some(deputies as f64),
            "{unit} on /metrics"
        );
        over_limit_units += usize::from(deputies > 0);
    }
    let province_over: i64 = administration.values().map(|(_, _, d)| d).sum();
    assert_eq!(cells[&("HY".to_owned(), "deputies_over_limit".to_owned())], province_over.to_string());
    assert!(over_limit_units > 0, "the simulation keeps some deputies above the limit");

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
