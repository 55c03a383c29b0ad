//! Shutdown against a real ClickHouse: the exporter's refresh loop returns only once
//! both of its tasks (day buckets, and the dossier facts in a task of their own) are
//! done, and `parpulse export` stops on SIGTERM, as systemd sends it, with exit status 0
//! once its server and refresh tasks have ended.

use std::sync::Arc;
use std::time::Duration;

use parpulse_core::AgencyRegistry;
use parpulse_export::{Exporter, ExporterConfig};
use parpulse_http::MetricsSource;
use parpulse_tests::process::{listening_port, wait_http_ok, Reaped};
use parpulse_tests::{parpulse_command, TestEnv};

/// `parpulse_exporter_refreshes_total` as the exporter renders it.
fn refreshes(exporter: &Exporter) -> f64 {
    let samples = parpulse_tests::prom_text::parse(&exporter.render());
    parpulse_tests::prom_text::find(&samples, "parpulse_exporter_refreshes_total", &[]).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_loop_returns_with_every_task_it_started_done() {
    let env = TestEnv::new("shutdown");
    let store = env.connect().await;
    env.migrate(&store).await;
    let config = ExporterConfig {
        refresh_interval: Duration::from_millis(100),
        lateness_refresh_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let exporter = Arc::new(Exporter::new(store, AgencyRegistry::demo(), config));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(exporter.clone().run(async {
        let _ = stopped.await;
    }));
    // Running: the refresh loop and the facts task each hold the exporter, and refreshes count.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while Arc::strong_count(&exporter) < 3 || refreshes(&exporter) < 3.0 {
        assert!(tokio::time::Instant::now() < deadline, "the exporter did not refresh within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).expect("the loop waits for shutdown");
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the loop returns within 30 s of shutdown")
        .expect("the loop did not panic");
    // Nothing it started still runs: neither task holds the exporter any more.
    assert_eq!(Arc::strong_count(&exporter), 1, "a task of the exporter outlives its loop");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parpulse_export_stops_cleanly_on_sigterm() {
    let env = TestEnv::new("shutdown_export");
    let store = env.connect().await;
    env.migrate(&store).await;
    let log = std::env::temp_dir().join(format!("parpulse-shutdown-{}.log", uuid::Uuid::new_v4()));
    let mut exporter = Reaped(
        parpulse_command(&env, &["export", "--listen", "127.0.0.1:0", "--refresh-ms", "100"])
            .env("PARPULSE_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("starting parpulse export"),
    );
    let port = listening_port(&mut exporter.0, Duration::from_secs(60)).await;
    wait_http_ok(&format!("http://127.0.0.1:{port}/readyz"), Duration::from_secs(60)).await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.expect("GET /metrics");
    assert!(metrics.status().is_success());

    let sent = std::process::Command::new("kill").arg("-TERM").arg(exporter.pid().to_string()).status();
    assert!(sent.expect("running kill").success(), "SIGTERM sent");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = exporter.0.try_wait().expect("child status") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "parpulse export still runs 30 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let said = std::fs::read_to_string(&log).expect("the exporter's log");
    assert!(status.success(), "parpulse export ended with {status} after SIGTERM:\n{said}");
    assert!(said.contains("shutdown requested"), "the signal was not taken as a shutdown:\n{said}");
    assert!(!said.contains("ERROR"), "an error while stopping:\n{said}");
    let _ = std::fs::remove_file(&log);
    env.cleanup().await;
}
