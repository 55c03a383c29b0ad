//! Backup and restore with ClickHouse's own means (`parpulse backup` / `restore`,
//! FREEZE and ATTACH on 18.16), against the local server `make up` starts: a backup
//! taken while the aggregator works restores into a dropped database, the aggregator
//! resumes exactly from the restored checkpoints, and a restored backup of a finished
//! run holds the same KPIs to the row.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parpulse_core::{AgencyRegistry, Event};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaSink, Simulator, SimulatorConfig};
use parpulse_tests::process::Reaped;
use parpulse_tests::TestEnv;

/// The data folder of the local ClickHouse (deploy/local/clickhouse.sh).
fn data_path() -> PathBuf {
    let home = std::env::var("PARPULSE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| parpulse_tests::prometheus::repo().join(".parpulse"));
    let path = home.join("clickhouse/data");
    assert!(
        path.join("data").exists(),
        "{} is not the local ClickHouse's data folder: backup tests need the server `make up` starts on this host",
        path.display()
    );
    path
}

fn parpulse(env: &TestEnv, args: &[&str]) -> Command {
    let mut command = parpulse_tests::parpulse_command(env, args);
    command.env("PARPULSE_CLICKHOUSE_DATA_PATH", data_path());
    command
}

/// Runs a one-shot parpulse command; its output, and whether it succeeded.
fn run(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let output = parpulse(env, args).output().expect("running parpulse");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn committed_offsets(store: &parpulse_clickhouse::Store, env: &TestEnv) -> i64 {
    parpulse_clickhouse::checkpoint::committed(store, &env.consumer_group, &env.topics.dossier)
        .await
        .map(|c| c.iter().map(|c| c.next_offset).sum())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_exactly_and_the_aggregator_resumes_from_its_checkpoints() {
    let env = TestEnv::new("backup");
    let store = env.connect().await;
    env.migrate(&store).await;
    let backups = std::env::temp_dir().join(format!("parpulse-backup-{}", uuid::Uuid::new_v4().simple()));
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(31, 30, 30), &AgencyRegistry::demo()).collect();
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    let text = std::str::from_utf8(&ndjson).unwrap();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    for chunk in events.chunks(20_000) {
        sink.send(chunk.to_vec(), "test").await.expect("Kafka acknowledged");
    }

    // A backup while the aggregator works: checkpoints frozen first, rows after them.
    let mut aggregator = Reaped(
        parpulse(&env, &["aggregate", "--listen", "127.0.0.1:0", "--checkpoint-interval-ms", "100"])
            .args(["--checkpoint-max-events", "3000"])
            .stdout(Stdio::null())
            .spawn()
            .expect("starting parpulse aggregate"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_offsets(&store, &env).await == 0 {
        assert!(Instant::now() < deadline, "no checkpoint within 120 s");
        aggregator.assert_running("the aggregator");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mid_run = backups.join("mid-run");
    let (ok, output) = run(&env, &["backup", "--to", mid_run.to_str().unwrap()]);
    assert!(ok, "backup while the aggregator runs: {output}");
    let done =
        parpulse_aggregate::caught_up(&store, &env.connection(), &env.consumer_group, &env.topics.event_topics())
            .await
            .unwrap();
    assert!(!done, "the backup must land mid-run (a bigger province, or an earlier backup)");
    aggregator.kill();
    let (again, output) = run(&env, &["backup", "--to", mid_run.to_str().unwrap()]);
    assert!(!again && output.contains("exists already"), "a backup never overwrites one: {output}");

    // The database is lost; the backup comes back; the aggregator replays from its checkpoints.
    parpulse_clickhouse::Store::drop_database(&env.clickhouse()).await.expect("dropped");
    let (ok, output) = run(&env, &["restore", "--from", mid_run.to_str().unwrap()]);
    assert!(ok, "restore: {output}");
    let restored = committed_offsets(&store, &env).await;
    assert!(restored > 0, "the restored checkpoints are where the aggregator resumes");
    let (again, output) = run(&env, &["restore", "--from", mid_run.to_str().unwrap()]);
    assert!(!again && output.contains("has tables already"), "a restore never mixes into data: {output}");
    env.aggregate_to_end(&store, Duration::from_secs(300)).await;
    parpulse_tests::assert_all_kpis_equal_recount(&store, text).await;
    parpulse_tests::assert_audit_trail_equals_events(&store, text).await;

    // A backup of the finished run holds the same figures, row for row.
    let before = parpulse_tests::stored_day_counts(&store).await;
    let resolved_before = parpulse_tests::stored_resolved_counts(&store).await;
    let finished = backups.join("finished");
    let (ok, output) = run(&env, &["backup", "--to", finished.to_str().unwrap()]);
    assert!(ok, "backup: {output}");
    parpulse_clickhouse::Store::drop_database(&env.clickhouse()).await.expect("dropped");
    let (ok, output) = run(&env, &["restore", "--from", finished.to_str().unwrap()]);
    assert!(ok, "restore: {output}");
    assert_eq!(parpulse_tests::stored_day_counts(&store).await, before, "day buckets identical after restore");
    assert_eq!(parpulse_tests::stored_resolved_counts(&store).await, resolved_before, "lateness identical");
    assert!(
        parpulse_aggregate::caught_up(&store, &env.connection(), &env.consumer_group, &env.topics.event_topics())
            .await
            .unwrap(),
        "the restored checkpoints are at the end of the topics"
    );
    parpulse_tests::assert_all_kpis_equal_recount(&store, text).await;
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(&backups);
}
