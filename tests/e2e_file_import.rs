//! `parpulse ingest file` as a user runs it: a simulated province of over a
//! million NDJSON rows, imported under a pseudo-terminal (so the progress bar
//! shows), with the final summary checked against the file, and a re-import
//! that yields exactly the same event ids.

use std::process::Command;
use std::time::Duration;

use parpulse_tests::terminal::run_in_terminal;
use parpulse_tests::TestEnv;

fn parpulse(env: &TestEnv) -> Command {
    parpulse_tests::parpulse_command(env, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_import_shows_progress_and_a_true_summary_and_reimports_the_same_ids() {
    let env = TestEnv::new("file_import");
    let store = env.connect().await;
    env.migrate(&store).await;
    let dir = std::env::temp_dir().join(format!("parpulse-import-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("province.ndjson");

    let generated = parpulse(&env)
        .args([
            "ingest",
            "simulate",
            "--no-kafka",
            "--seed",
            "5",
            "--days",
            "105",
            "--dossiers-per-unit-day",
            "95",
            "--out",
        ])
        .arg(&file)
        .status()
        .expect("running parpulse ingest simulate");
    assert!(generated.success());
    let text = std::fs::read_to_string(&file).unwrap();
    let rows = text.lines().count() as u64;
    assert!(rows >= 1_000_000, "only {rows} rows");
    let mut ids: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"].as_str().unwrap().to_owned())
        .collect();
    drop(text);

    let mut import = parpulse(&env);
    import.args(["ingest", "file"]).arg(&file);
    let (ok, screen) = run_in_terminal(&import);
    assert!(ok, "import failed:\n{screen}");
    assert!(
        screen.contains("[=") || screen.contains("=>"),
        "no progress bar on the terminal:\n{}",
        &screen[..screen.len().min(2000)]
    );
    let summary_line = format!("total: read {rows}, accepted {rows}, rejected 0");
    assert!(
        screen.contains(&summary_line),
        "summary missing or wrong, wanted {summary_line:?}:\n{}",
        &screen[screen.len().saturating_sub(2000)..]
    );

    // Importing the same file again yields the same event ids (the idempotency key downstream).
    let again = parpulse(&env).args(["ingest", "file"]).arg(&file).output().expect("re-import");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains(&summary_line));
    let records = tokio::task::spawn_blocking({
        let brokers = env.brokers.clone();
        let topics = env.topics.clone();
        let expected = 2 * rows as usize;
        move || {
            let mut ids = Vec::with_capacity(expected);
            let codec = parpulse_core::avro::AvroCodec::new();
            for topic in topics.event_topics() {
                for r in parpulse_tests::kafka_read::read_topic(&brokers, topic, Duration::from_secs(180)) {
                    ids.push(codec.decode_event(&r.payload).expect("decodes").event_id().to_owned());
                }
            }
            ids
        }
    })
    .await
    .unwrap();
    assert_eq!(records.len() as u64, 2 * rows, "both imports are in Kafka");
    let mut stored = records;
    stored.sort();
    stored.dedup();
    ids.sort();
    assert_eq!(stored, ids, "the re-import carries exactly the ids of the first import");

    // Downstream, the re-import adds nothing: the KPIs equal a recount of the file, once.
    env.aggregate_to_end(&store, Duration::from_secs(600)).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(parpulse_tests::stored_day_counts(&store).await, parpulse_tests::recount::recount_ndjson(&text));
    std::fs::remove_dir_all(&dir).ok();
    env.cleanup().await;
}

#[test]
fn the_simulator_writes_the_same_file_for_the_same_seed_on_every_run() {
    let env = TestEnv::new("simulator_determinism");
    let dir = std::env::temp_dir().join(format!("parpulse-sim-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str| {
        let path = dir.join(name);
        let status = parpulse(&env)
            .args([
                "ingest",
                "simulate",
                "--no-kafka",
                "--seed",
                "301",
                "--until",
                "2019-12-31",
                "--days",
                "45",
                "--out",
            ])
            .arg(&path)
            .status()
            .expect("running parpulse ingest simulate");
        assert!(status.success());
        std::fs::read(&path).unwrap()
    };
    let first = run("a.ndjson");
    let second = run("b.ndjson");
    assert!(first.len() > 100_000, "the run produced a province ({} bytes)", first.len());
    assert!(first == second, "two runs with seed 301 differ");
    std::fs::remove_dir_all(&dir).ok();
}
