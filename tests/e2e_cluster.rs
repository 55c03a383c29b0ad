//! The pipeline on the local cluster (deploy/local/cluster.sh: three Kafka KRaft nodes,
//! ClickHouse 2 shards x 2 replicas with ZooKeeper): topics with replication 3 and
//! min.insync.replicas 2, every table migrated ON CLUSTER, a province of at least
//! 200,000 events (`PARPULSE_CLUSTER_EVENTS`) through TWO `parpulse aggregate`
//! processes, each talking to a different ClickHouse server, while one Kafka broker is
//! killed (SIGKILL) mid-run and one ClickHouse replica is stopped and brought back.
//! Producers and aggregators go on (acks=all with two brokers in sync; inserts through
//! the Distributed tables fail over to the other replica of the shard). At the end every
//! KPI, the exporter's /metrics and the audit trail equal the independent recount, and
//! the returning replica holds what its twin holds.
//!
//! The cluster is started by the project's own script (idempotent: one `make up
//! CLUSTER=1` started is reused, and left running with every node it had); the test
//! fails when it cannot start. A cluster the test started itself is stopped at the
//! end, pass or fail (it holds about 2.5 GiB while it runs).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parpulse_clickhouse::{ClickHouseConfig, Store};
use parpulse_core::{AgencyRegistry, Event};
use parpulse_export::{Exporter, ExporterConfig, Window};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaConfig, KafkaSink, Simulator, SimulatorConfig};
use parpulse_kafka::topic_settings::TopicSettings;
use parpulse_tests::aggregators::{committed_sum, high_watermark_sum, wait_readyz};
use parpulse_tests::process::{free_port, Reaped};
use parpulse_tests::prom_text::{self, find};
use parpulse_tests::recount;
use parpulse_tests::rng::size_from_env;
use parpulse_tests::TestEnv;

const CLUSTER: &str = "parpulse";
const BROKERS: &str = "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094";
/// HTTP ports of s1r1, s1r2, s2r1, s2r2.
const CLICKHOUSE: [(&str, u16); 4] = [("s1r1", 28121), ("s1r2", 28122), ("s2r1", 28123), ("s2r2", 28124)];
/// The broker killed and the replica stopped: neither is what a process was pointed at.
const VICTIM_BROKER: &str = "kafka2";
const VICTIM_REPLICA: &str = "s2r2";

fn cluster_sh(args: &[&str]) {
    let script = parpulse_tests::prometheus::repo().join("deploy/local/cluster.sh");
    let status = Command::new("bash").arg(&script).args(args).status().expect("running deploy/local/cluster.sh");
    assert!(
        status.success(),
        "deploy/local/cluster.sh {} failed: the local cluster cannot start (see .parpulse/cluster/)",
        args.join(" ")
    );
}

/// When dropped (a failing test too): a cluster the test started is stopped; one that
/// ran before (`make up CLUSTER=1`) gets back every node the test stopped.
struct Restore {
    started_here: bool,
}

impl Restore {
    fn start_cluster() -> Restore {
        let script = parpulse_tests::prometheus::repo().join("deploy/local/cluster.sh");
        let status = Command::new("bash").arg(&script).arg("status").output().expect("running deploy/local/cluster.sh");
        let started_here = !String::from_utf8_lossy(&status.stdout).contains(": running");
        cluster_sh(&["start"]);
        Restore { started_here }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        let script = parpulse_tests::prometheus::repo().join("deploy/local/cluster.sh");
        let action = if self.started_here { "stop" } else { "start" };
        let _ = Command::new("bash").arg(script).arg(action).stdout(Stdio::null()).status();
    }
}

fn clickhouse_config(env: &TestEnv, port: u16) -> ClickHouseConfig {
    ClickHouseConfig {
        cluster: Some(CLUSTER.to_owned()),
        ..ClickHouseConfig::local(&format!("http://127.0.0.1:{port}"), &env.database)
    }
}

fn kafka_config(env: &TestEnv) -> KafkaConfig {
    let topic_settings = TopicSettings { replication: 3, min_insync_replicas: Some(2), ..TopicSettings::default() };
    KafkaConfig { topic_settings, ..env.kafka() }
}

/// A simulated province of at least `target` events over 30 days.
fn province(target: usize) -> Vec<Event> {
    let registry = AgencyRegistry::demo();
    let mut per_unit_day = 10;
    loop {
        let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(13, 30, per_unit_day), &registry).collect();
        if events.len() >= target {
            return events;
        }
        per_unit_day = (per_unit_day * target as u32).div_ceil(events.len() as u32).max(per_unit_day + 1);
    }
}

/// `parpulse aggregate` on the cluster with static membership `instance`, talking to the
/// ClickHouse server on `clickhouse_port`, its log appended to `log`.
fn start_cluster_aggregator(env: &TestEnv, port: u16, clickhouse_port: u16, instance: &str, log: &Path) -> Reaped {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("aggregator log file");
    let listen = format!("127.0.0.1:{port}");
    let child = parpulse_tests::parpulse_command(env, &["aggregate", "--listen", &listen])
        .args(["--checkpoint-interval-ms", "500", "--checkpoint-max-events", "50000"])
        .env("PARPULSE_CLICKHOUSE_URL", format!("http://127.0.0.1:{clickhouse_port}"))
        .env("PARPULSE_CLICKHOUSE_CLUSTER", CLUSTER)
        .env("PARPULSE_AGGREGATOR_INSTANCE_ID", instance)
        .stderr(log)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting parpulse aggregate");
    Reaped(child)
}

/// What the aggregators' /metrics say about the run: inserts through the Distributed
/// tables (insert_distributed_sync) by table, checkpoints, rebalances, ClickHouse errors.
async fn print_aggregator_figures(ports: &[u16], events: usize, seconds: f64) {
    const WANTED: [&str; 7] = [
        "parpulse_aggregator_clickhouse_insert_duration_seconds_sum",
        "parpulse_aggregator_clickhouse_insert_duration_seconds_count",
        "parpulse_aggregator_checkpoint_duration_seconds_sum",
        "parpulse_aggregator_checkpoint_duration_seconds_count",
        "parpulse_aggregator_rebalances_total",
        "parpulse_aggregator_clickhouse_errors_total",
        "parpulse_aggregator_events_total",
    ];
    let mut sums: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for port in ports {
        let body =
            reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.expect("/metrics").text().await.unwrap();
        for sample in prom_text::parse(&body).into_iter().filter(|s| WANTED.contains(&s.name.as_str())) {
            let labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            *sums.entry(format!("{}{{{}}}", sample.name, labels.join(","))).or_default() += sample.value;
        }
    }
    for (name, value) in &sums {
        println!("figure {name} = {value}");
    }
    println!(
        "figure {events} events caught up in {seconds:.1} s: {:.0} events/s for the pair",
        events as f64 / seconds
    );
}

/// CPU seconds (user and system) a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (in parentheses): utime and stime are the 12th and 13th.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The cluster's processes: (node, pid).
fn cluster_pids() -> Vec<(&'static str, u32)> {
    let home = std::env::var("PARPULSE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| parpulse_tests::prometheus::repo().join(".parpulse"))
        .join("cluster");
    let nodes = ["zookeeper", "kafka1", "kafka2", "kafka3"].map(|n| (n, home.join(n).join("pid")));
    let servers = CLICKHOUSE.map(|(n, _)| (n, home.join(n).join("clickhouse/clickhouse.pid")));
    nodes
        .iter()
        .chain(&servers)
        .filter_map(|(node, pidfile)| {
            std::fs::read_to_string(pidfile).ok().and_then(|p| p.trim().parse().ok()).map(|pid| (*node, pid))
        })
        .collect()
}

/// CPU seconds used so far by each node of the cluster.
fn cluster_cpu() -> Vec<(&'static str, u32, f64)> {
    cluster_pids().into_iter().map(|(node, pid)| (node, pid, cpu_seconds(pid))).collect()
}

/// CPU the aggregation took, per component, and per million events.
fn print_cpu(at_start: &[(&str, u32, f64)], aggregators: &[Reaped], events: usize) {
    let million = events as f64 / 1e6;
    for (node, pid, before) in at_start {
        let used = cpu_seconds(*pid) - before;
        if used >= 0.0 {
            println!("figure cpu {node}: {used:.1} s, {:.1} s per million events", used / million);
        }
    }
    for (aggregator, name) in aggregators.iter().zip(["a", "b"]) {
        let used = cpu_seconds(aggregator.pid());
        println!("figure cpu aggregator {name}: {used:.1} s, {:.1} s per million events", used / million);
    }
}

/// Resident memory of the cluster's processes (now and peak), for docs/OPERATIONS.md.
fn print_memory() {
    for (node, pid) in cluster_pids() {
        let memory = parpulse_tests::process::memory(pid);
        println!("memory {node}: {} MiB now, {} MiB peak", memory.rss_kib / 1024, memory.peak_kib / 1024);
    }
}

/// Rows of a local table on one server (its replica's share).
async fn local_rows(port: u16, database: &str, table: &str) -> u64 {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/"))
        .body(format!("SELECT count() FROM {database}.{table}_local"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("counting {table}_local on port {port}: {e}"));
    let text = response.text().await.expect("count");
    text.trim().parse().unwrap_or_else(|_| panic!("counting {table}_local on port {port}: {text}"))
}

/// /metrics of an exporter on the cluster: the day, 7-day and 30-day receptions and
/// online share of every unit and the province equal the recount.
async fn assert_metrics_equal_recount(store: &Store, ndjson: &str) {
    let registry = AgencyRegistry::demo();
    let exporter = Arc::new(Exporter::new(store.clone(), registry.clone(), ExporterConfig::default()));
    let snapshot = exporter.refresh().await.expect("the exporter reads the cluster");
    let today = snapshot.today.expect("snapshot has a day");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(parpulse_http::serve(listener, exporter, async {
        let _ = stopped.await;
    }));
    let body = reqwest::get(format!("http://{address}/metrics")).await.expect("GET /metrics").text().await.unwrap();
    let samples = prom_text::parse(&body);
    let counts = recount::recount_ndjson(ndjson);
    for window in [Window::Day, Window::Days7, Window::Days30] {
        let (first, last) = (i64::from(window.first_day(today).0), i64::from(today.0));
        let scopes = registry
            .iter()
            .map(|a| (Some(a.code.as_str()), ("unit", a.code.as_str())))
            .chain([(None, ("province", "HY"))]);
        for (agency, (scope, unit)) in scopes {
            let labels = [("scope", scope), ("unit", unit), ("window", window.label())];
            let want = recount::window(&counts, agency, first, last);
            let received = find(&samples, "parpulse_dossiers_received", &labels);
            let online = find(&samples, "parpulse_dossiers_received_online", &labels);
            assert_eq!(received, Some(want.received as f64), "received {labels:?}");
            assert_eq!(online, Some(want.online as f64), "online {labels:?}");
        }
    }
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_province_through_the_cluster_survives_a_broker_kill_and_a_replica_restart() {
    let target = size_from_env("PARPULSE_CLUSTER_EVENTS", 200_000);
    let run_started = Instant::now();
    let _restore = Restore::start_cluster();

    let mut env = TestEnv::new("cluster");
    env.brokers = BROKERS.to_owned();
    env.clickhouse_url = format!("http://127.0.0.1:{}", CLICKHOUSE[0].1);
    let store = Store::connect(&clickhouse_config(&env, CLICKHOUSE[0].1))
        .await
        .expect("ClickHouse s1r1 of the local cluster answers (deploy/local/cluster.sh start)");
    parpulse_ingest::kafka::ensure_topics(&kafka_config(&env)).await.expect("creating the topics on three brokers");
    let migrated = Instant::now();
    parpulse_clickhouse::migrate::migrate(&store).await.expect("every table created ON CLUSTER");
    println!("migrate ON CLUSTER: {:.1} s", migrated.elapsed().as_secs_f64());

    let events = province(target);
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    let ndjson = String::from_utf8(ndjson).unwrap();
    println!("{} events", events.len());

    // Two aggregators, one on each shard's first replica. Measuring (PARPULSE_CLUSTER_MEASURE=1,
    // docs/OPERATIONS.md "Capacity"): every event is produced first, without faults, then
    // PARPULSE_CLUSTER_AGGREGATORS of them (2) start and catch up.
    let measure = std::env::var("PARPULSE_CLUSTER_MEASURE").is_ok_and(|v| v == "1");
    let instances = if measure { size_from_env("PARPULSE_CLUSTER_AGGREGATORS", 2).clamp(1, 2) } else { 2 };
    let logs = std::env::temp_dir().join(format!("parpulse-cluster-{}", env.consumer_group));
    std::fs::create_dir_all(&logs).unwrap();
    let ports: Vec<u16> = (0..instances).map(|_| free_port()).collect();
    let start = |i: usize| {
        let (name, server) = [("a", CLICKHOUSE[0].1), ("b", CLICKHOUSE[2].1)][i];
        start_cluster_aggregator(&env, ports[i], server, &format!("cluster-{name}"), &logs.join(format!("{name}.log")))
    };
    let mut aggregators: Vec<Reaped> = if measure { Vec::new() } else { (0..instances).map(start).collect() };
    println!("aggregator logs in {}", logs.display());

    // Produce in pieces; the faults strike between them while the aggregators run.
    let sink =
        KafkaSink::new(kafka_config(&env), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    let produced_at = Instant::now();
    let pieces: Vec<&[Event]> = events.chunks(events.len().div_ceil(10)).collect();
    let mut outage = None;
    for (i, piece) in pieces.iter().enumerate() {
        match i {
            _ if measure => {}
            2 => {
                // Mid-run: once the aggregators have checkpointed something.
                let deadline = Instant::now() + Duration::from_secs(60);
                while committed_sum(&env, &store).await.unwrap_or(0) == 0 {
                    assert!(Instant::now() < deadline, "no checkpoint within 60 s (logs in {})", logs.display());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let checkpointed = committed_sum(&env, &store).await.unwrap_or(0);
                println!("{checkpointed} messages checkpointed when {VICTIM_BROKER} is killed");
                cluster_sh(&["kill", VICTIM_BROKER]);
                println!("killed {VICTIM_BROKER} after {:.1} s", produced_at.elapsed().as_secs_f64());
            }
            4 => {
                cluster_sh(&["stop", VICTIM_REPLICA]);
                outage = Some(Instant::now());
                println!("stopped {VICTIM_REPLICA} after {:.1} s", produced_at.elapsed().as_secs_f64());
            }
            7 => {
                cluster_sh(&["start", VICTIM_REPLICA]);
                let stopped = outage.expect("stopped before").elapsed().as_secs_f64();
                println!("started {VICTIM_REPLICA} again after {stopped:.1} s stopped");
            }
            _ => {}
        }
        let summary = sink.send(piece.to_vec(), "cluster").await.expect("Kafka acknowledged with a broker down");
        assert_eq!(summary.accepted, piece.len() as u64);
        for (aggregator, name) in aggregators.iter_mut().zip(["a", "b"]) {
            aggregator.assert_running(&format!("aggregator {name}"));
        }
    }
    println!("produced in {:.1} s", produced_at.elapsed().as_secs_f64());

    let cpu_at_start = cluster_cpu();
    let aggregating_at = Instant::now();
    if measure {
        aggregators = (0..instances).map(start).collect();
    }

    // Both aggregators go on until every message is checkpointed.
    let written = high_watermark_sum(&env).await;
    assert!(written >= events.len() as i64, "{written} messages for {} events", events.len());
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let committed = committed_sum(&env, &store).await;
        if committed == Some(written) {
            break;
        }
        for (aggregator, name) in aggregators.iter_mut().zip(["a", "b"]) {
            aggregator.assert_running(&format!("aggregator {name}"));
        }
        assert!(
            Instant::now() < deadline,
            "checkpoints at {committed:?} of {written} after 180 s (logs in {})",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let caught_up = if measure { aggregating_at } else { produced_at }.elapsed().as_secs_f64();
    let since = if measure { "the aggregators started" } else { "the first event was produced" };
    println!("caught up {caught_up:.1} s after {since}");
    wait_readyz(&ports, 200, Duration::from_secs(30)).await;
    print_aggregator_figures(&ports, events.len(), caught_up).await;
    if measure {
        print_cpu(&cpu_at_start, &aggregators, events.len());
    }
    for aggregator in &mut aggregators {
        aggregator.kill();
    }
    cluster_sh(&["start", VICTIM_BROKER]);

    // Every KPI, the audit trail and /metrics equal the recount.
    parpulse_tests::assert_all_kpis_equal_recount(&store, &ndjson).await;
    assert_metrics_equal_recount(&store, &ndjson).await;

    // The replica that was stopped caught up: it holds what its twin holds; the data
    // is spread over both shards (checkpoints go to one: their shard key is the group).
    let mut waits = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        parpulse_clickhouse::cluster::await_replicas(&store).await.expect("replicas in sync");
        waits.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!("figure await_replicas with the replicas in sync: {waits:.0?} ms");
    for table in ["day_count", "dossier_state", "checkpoints", "event_log"] {
        let mut shards = Vec::new();
        for (first, second) in [(CLICKHOUSE[0], CLICKHOUSE[1]), (CLICKHOUSE[2], CLICKHOUSE[3])] {
            let rows = local_rows(first.1, &env.database, table).await;
            let twin = local_rows(second.1, &env.database, table).await;
            assert_eq!(rows, twin, "{table}: {} has {rows} rows, {} {twin}", first.0, second.0);
            shards.push(rows);
        }
        println!("{table}: {shards:?} rows on the two shards");
        assert!(table == "checkpoints" || shards.iter().all(|rows| *rows > 0), "{table} on both shards: {shards:?}");
    }
    print_memory();

    println!("cluster run: {:.1} s in all", run_started.elapsed().as_secs_f64());
    Store::drop_database(&clickhouse_config(&env, CLICKHOUSE[0].1)).await.expect("dropping the test database");
    let topics = env.topics.clone();
    env.delete_topics(&[&topics.dossier, &topics.budget, &topics.staffing, &topics.deadletter]).await;
}
