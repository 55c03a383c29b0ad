//! The SQL must run on current ClickHouse too, not only on Debian's 18.16: the
//! same migrations and KPI read queries run on chDB (ClickHouse 26, in-process)
//! over the data the pipeline wrote to the server, and every result is identical.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use parpulse_core::{AgencyRegistry, Event};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaSink, Simulator, SimulatorConfig};
use parpulse_tests::prometheus::repo;
use parpulse_tests::TestEnv;

/// The virtualenv deploy/local/install.sh makes for chDB (`PARPULSE_CHDB_PYTHON` overrides).
fn chdb_python() -> PathBuf {
    let path = std::env::var("PARPULSE_CHDB_PYTHON").map(PathBuf::from).unwrap_or_else(|_| {
        let home = std::env::var("PARPULSE_HOME").map(PathBuf::from).unwrap_or_else(|_| repo().join(".parpulse"));
        home.join("chdb-venv/bin/python")
    });
    assert!(path.exists(), "{} not found: `make up` (deploy/local/install.sh) installs chdb", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_and_kpi_queries_give_the_same_results_on_chdb_as_on_the_server() {
    let env = TestEnv::new("chdb");
    let store = env.connect().await;
    env.migrate(&store).await;
    // Hard cases of the rules too (SimulatorConfig::with_hard_cases): every outcome, end kind
    // and apology timing is in the data both engines read.
    let config = SimulatorConfig::recent(26, 20, 4).with_hard_cases(0.2);
    let events: Vec<Event> = Simulator::new(config, &AgencyRegistry::demo()).collect();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    sink.send(events, "test").await.expect("Kafka acknowledged");
    env.aggregate_to_end(&store, Duration::from_secs(120)).await;

    let output = Command::new(chdb_python())
        .arg(repo().join("tests/chdb/compare.py"))
        .args(["--url", &env.clickhouse_url, "--database", &env.database])
        .args(["--group", &env.consumer_group, "--topic", &env.topics.dossier])
        .output()
        .expect("running tests/chdb/compare.py");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{report}");
    assert!(output.status.success(), "chDB and the server disagree:\n{report}");
    assert!(report.contains("chDB comparison: all queries identical"), "{report}");
    assert!(report.contains("day_count_read_days:") && report.contains("budget_year:"), "{report}");
    env.cleanup().await;
}

/// The cluster form of the migrations (Replicated*MergeTree + Distributed, ON CLUSTER)
/// runs on ClickHouse 18.16 in tests/e2e_cluster.rs; every statement of it parses on
/// current ClickHouse too.
#[test]
fn the_cluster_form_of_every_migration_parses_on_current_clickhouse() {
    let sql = Command::new(parpulse_tests::parpulse_bin())
        .args(["migrate", "--print-sql", "--clickhouse-cluster", "parpulse_cluster", "--clickhouse-database", "par"])
        .output()
        .expect("parpulse migrate --print-sql");
    assert!(sql.status.success(), "{}", String::from_utf8_lossy(&sql.stderr));
    let text = String::from_utf8(sql.stdout).unwrap();
    assert!(text.contains("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/par/dossier_state_local'"));
    assert!(text.contains("ENGINE = Distributed(parpulse_cluster, par, checkpoints_local, cityHash64(consumer_group))"));
    let mut child = Command::new(chdb_python())
        .arg(repo().join("tests/chdb/parse.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running tests/chdb/parse.py");
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert!(output.status.success(), "{report}");
    let statements = text.matches(";\n\n").count();
    assert!(report.contains(&format!("parsed {statements} of {statements} statements")), "{report}");
}
