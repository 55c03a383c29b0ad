//! Outages are ordinary, and the event topics are untrusted input.
//!
//! One run on a private broker and a private ClickHouse (the shared ones stay up):
//! the aggregator, exporter and HTTP intake run as processes; poison messages are
//! written straight to the dossier topic by a plain Kafka producer; then the broker
//! is stopped for 60 s, and later ClickHouse for 60 s. No process exits, /readyz
//! and `parpulse_dependency_up` say what is down while it is, logs stay bounded,
//! work resumes by itself, the dead-letter topic holds exactly the poison (with its
//! reason and source position), and every KPI equals the independent recount.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use parpulse_core::avro::AvroCodec;
use parpulse_core::{AgencyRegistry, DossierEvent, Event};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaSink, Simulator, SimulatorConfig};
use parpulse_tests::broker::SpareBroker;
use parpulse_tests::kafka_read::read_topic;
use parpulse_tests::process::{listening_port, Reaped};
use parpulse_tests::spare_clickhouse::SpareClickHouse;
use parpulse_tests::{prom_text, TestEnv};
use rdkafka::producer::{FutureProducer, FutureRecord};

const OUTAGE: Duration = Duration::from_secs(60);
/// Log lines a process may write while a dependency stays down for [`OUTAGE`]
/// (a line when it goes down, a summary every 30 s, a few from the moments around).
const MAX_OUTAGE_LOG_LINES: usize = 20;

/// A parpulse process on the test's services; stderr (its log) goes to `log`.
fn parpulse(env: &TestEnv, args: &[&str], log: &std::path::Path) -> Reaped {
    let stderr = std::fs::File::create(log).expect("log file");
    Reaped(
        parpulse_tests::parpulse_command(env, args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting parpulse {args:?}: {e}")),
    )
}

fn log_lines(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log).map(|text| text.lines().count()).unwrap_or(0)
}

async fn status(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

async fn dependency_up(port: u16, dependency: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.ok()?.text().await.ok()?;
    prom_text::find(&prom_text::parse(&text), "parpulse_dependency_up", &[("dependency", dependency)])
}

/// Sends `events` through parpulse's own sink, retrying while the broker comes back.
async fn send(sink: &KafkaSink, events: &[Event]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for chunk in events.chunks(10_000) {
        loop {
            match sink.send(chunk.to_vec(), "test").await {
                Ok(_) => break,
                Err(error) => {
                    assert!(Instant::now() < deadline, "Kafka did not take the events within 120 s: {error}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

async fn wait_caught_up(env: &TestEnv, store: &parpulse_clickhouse::Store, processes: &mut [(&str, &mut Reaped)]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done =
            parpulse_aggregate::caught_up(store, &env.connection(), &env.consumer_group, &env.topics.event_topics())
                .await
                .unwrap_or(false);
        if done {
            return;
        }
        for (what, process) in processes.iter_mut() {
            process.assert_running(what);
        }
        assert!(Instant::now() < deadline, "the aggregator did not catch up within 180 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A well-formed dossier event, Avro-encoded as parpulse writes it.
fn poison_event(event_id: &str, dossier_id: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    AvroCodec::new().encode_dossier(&valid_event(event_id, dossier_id), &mut bytes).expect("encodes");
    bytes
}

fn valid_event(event_id: &str, dossier_id: &str) -> DossierEvent {
    DossierEvent {
        event_id: event_id.to_owned(),
        agency_code: "SNV".to_owned(),
        occurred_at: parpulse_core::time::now_micros() - 86_400_000_000,
        recorded_at: 0,
        source: "rogue".to_owned(),
        dossier_id: dossier_id.to_owned(),
        procedure_code: "1.000001".to_owned(),
        kind: parpulse_core::DossierEventKind::Received,
        channel: parpulse_core::Channel::Online,
        online_level: 4,
        result_channel: None,
        due_at: Some(parpulse_core::time::now_micros() + 5 * 86_400_000_000),
        legal_max_days: None,
        fee_bearing: false,
        digitized: false,
        new_due_at: None,
    }
}

/// The poison: what a broken or hostile producer can write to the topic.
fn poison() -> Vec<(Vec<u8>, &'static str)> {
    let codec = AvroCodec::new();
    let valid = || valid_event("5a0c7a52-6f7e-4d8f-9f39-0d1a5c1e2b01", "POISON-1");
    let encode = |event: DossierEvent| {
        let mut bytes = Vec::new();
        codec.encode_dossier(&event, &mut bytes).expect("encodes");
        bytes
    };
    let whole = encode(valid());
    vec![
        (b"\x13\x37 not avro at all".to_vec(), "undecodable"),
        (vec![0, 0, 0, 0x30, 0x39, 2, 4, 6], "undecodable"),
        (whole[..whole.len() / 2].to_vec(), "undecodable"),
        (encode(DossierEvent { occurred_at: 7_258_118_400_000_000, ..valid() }), "future_time"),
        (encode(DossierEvent { occurred_at: -62_135_596_800_000_000, ..valid() }), "too_old"),
        (encode(DossierEvent { agency_code: "NOWHERE".to_owned(), ..valid() }), "unknown_agency"),
        (encode(DossierEvent { event_id: "42".to_owned(), ..valid() }), "bad_event_id"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_outages_neither_stop_nor_skew_the_pipeline() {
    let broker = SpareBroker::start();
    let clickhouse = SpareClickHouse::start();
    let mut env = TestEnv::new("outage");
    env.brokers = broker.brokers();
    env.clickhouse_url = clickhouse.url();
    let store = env.connect().await;
    env.migrate(&store).await;
    let logs = tempdir();

    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(11, 10, 8), &AgencyRegistry::demo()).collect();
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    // Four parts: before the processes start, after, after the broker outage, during
    // the ClickHouse outage.
    let quarter = events.len() / 4;
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    send(&sink, &events[..quarter]).await;

    // Poison straight into the topic, around good events, with an ordinary producer.
    // Limits raised as far as the broker allows: a message near 1 MB is poison too (its
    // dead letter, with headers, would not fit: it is kept cut, and says so).
    let rogue: FutureProducer =
        env.connection().client_config().set("message.max.bytes", "1048000").create().expect("rogue producer");
    // Each with the topic it is written to: a well-formed dossier event in the budget
    // topic is poison too (it would be counted under the budget topic's partitions).
    let mut poison: Vec<(Vec<u8>, &str, &str)> =
        poison().into_iter().map(|(bytes, reason)| (bytes, reason, env.topics.dossier.as_str())).collect();
    let misplaced = poison_event("0d6c2b1e-8d4f-4b6a-a1f3-6b2f1c9e7d02", "MISPLACED-1");
    poison.push((misplaced, "wrong_topic", env.topics.budget.as_str()));
    let huge: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8 + 1).collect();
    poison.push((huge, "undecodable", env.topics.dossier.as_str()));
    for (bytes, _, topic) in &poison {
        let record = FutureRecord::to(topic).key("SNV").payload(bytes);
        rogue.send(record, Duration::from_secs(10)).await.expect("poison written");
    }

    let tokens = logs.join("tokens.toml");
    std::fs::write(&tokens, parpulse_tests::test_token_file()).unwrap();
    let aggregator_log = logs.join("aggregator.log");
    let exporter_log = logs.join("exporter.log");
    let intake_log = logs.join("intake.log");
    let mut aggregator =
        parpulse(&env, &["aggregate", "--listen", "127.0.0.1:0", "--checkpoint-interval-ms", "200"], &aggregator_log);
    let mut exporter = parpulse(
        &env,
        &["export", "--listen", "127.0.0.1:0", "--refresh-ms", "500", "--lateness-refresh-ms", "1000"],
        &exporter_log,
    );
    let mut intake = parpulse(
        &env,
        &["ingest", "http", "--listen", "127.0.0.1:0", "--tokens", tokens.to_str().unwrap()],
        &intake_log,
    );
    // Each binds a port the OS chooses; /proc tells which.
    let aggregator_port = listening_port(&mut aggregator.0, Duration::from_secs(60)).await;
    let exporter_port = listening_port(&mut exporter.0, Duration::from_secs(60)).await;
    let intake_port = listening_port(&mut intake.0, Duration::from_secs(60)).await;
    let ready = |port: u16| format!("http://127.0.0.1:{port}/readyz");
    send(&sink, &events[quarter..2 * quarter]).await;
    wait_caught_up(&env, &store, &mut [("aggregator", &mut aggregator)]).await;
    for port in [aggregator_port, exporter_port, intake_port] {
        wait_for(&format!("{} answers 200", ready(port)), Duration::from_secs(60), || async {
            status(&ready(port)).await == Some(200)
        })
        .await;
    }

    // Event topics are stamped by the broker: the future-time check trusts no producer clock.
    let stamped = read_topic(&env.brokers, &env.topics.dossier, Duration::from_secs(30));
    assert!(!stamped.is_empty() && stamped.iter().all(|r| r.broker_time), "event topics use LogAppendTime");

    // The dead-letter topic holds exactly the poison, with its reason and position.
    let dead = read_topic(&env.brokers, &env.topics.deadletter, Duration::from_secs(30));
    let mut by_payload: BTreeMap<Vec<u8>, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for record in &dead {
        by_payload.entry(record.payload.clone()).or_default().push(record.headers.clone());
    }
    assert_eq!(by_payload.len(), poison.len(), "one dead letter per poison message: {:?}", by_payload.values());
    for (bytes, reason, topic) in &poison {
        let kept = &bytes[..bytes.len().min(parpulse_kafka::MAX_DEAD_LETTER_BYTES)];
        let headers = by_payload.get(kept).unwrap_or_else(|| panic!("poison ({reason}) not in the dead-letter topic"));
        let h = &headers[0];
        if kept.len() < bytes.len() {
            assert_eq!(h.get("truncated_from"), Some(&bytes.len().to_string()), "a cut dead letter says so: {h:?}");
            assert_eq!(h.get("sha256").map(String::len), Some(64));
        }
        assert_eq!(h.get("reason").map(String::as_str), Some(*reason), "{h:?}");
        assert_eq!(h.get("source").map(String::as_str), Some("aggregator"));
        assert_eq!(h.get("topic").map(String::as_str), Some(*topic));
        assert!(h.get("offset").is_some_and(|o| o.parse::<i64>().is_ok()) && h.contains_key("partition"), "{h:?}");
        assert!(h.get("message").is_some_and(|m| !m.is_empty()));
    }
    let text = reqwest::get(format!("http://127.0.0.1:{aggregator_port}/metrics")).await.unwrap().text().await.unwrap();
    let samples = prom_text::parse(&text);
    let rejected = |reason: &str| {
        prom_text::find(&samples, "parpulse_aggregator_rejected_total", &[("reason", reason)]).unwrap_or(0.0)
    };
    assert_eq!(rejected("undecodable"), 4.0, "{text}");
    assert_eq!(
        rejected("future_time") + rejected("too_old") + rejected("unknown_agency") + rejected("bad_event_id"),
        4.0
    );
    assert_eq!(rejected("wrong_topic"), 1.0);

    // The broker stops for 60 s.
    let lines_before = [log_lines(&aggregator_log), log_lines(&intake_log)];
    broker.stop();
    let stopped = Instant::now();
    let (mut aggregator_unready, mut intake_unready, mut kafka_down_seen) = (false, false, false);
    let mut answered_503 = false;
    while stopped.elapsed() < OUTAGE {
        aggregator.assert_running("the aggregator (broker down)");
        exporter.assert_running("the exporter (broker down)");
        intake.assert_running("the intake (broker down)");
        aggregator_unready |= status(&ready(aggregator_port)).await == Some(503);
        intake_unready |= status(&ready(intake_port)).await == Some(503);
        kafka_down_seen |= dependency_up(aggregator_port, "kafka").await == Some(0.0);
        if !answered_503 && stopped.elapsed() > Duration::from_secs(20) {
            let response = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{intake_port}/v1/events"))
                .bearer_auth(parpulse_tests::SNV_TOKEN)
                .header("content-type", "application/x-ndjson")
                .body(String::from_utf8(ndjson[..ndjson.iter().position(|&b| b == b'\n').unwrap()].to_vec()).unwrap())
                .send()
                .await
                .expect("the intake answers while Kafka is down");
            assert_eq!(response.status().as_u16(), 503, "no broker: 503 with Retry-After");
            let body: serde_json::Value = response.json().await.expect("a JSON answer");
            assert_eq!(body["error"], "kafka_unavailable", "{body}");
            answered_503 = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(aggregator_unready && intake_unready, "/readyz says 503 while Kafka is down");
    assert!(kafka_down_seen, "parpulse_dependency_up{{dependency=\"kafka\"}} 0 while Kafka is down");
    assert!(answered_503);
    let outage_lines = [log_lines(&aggregator_log) - lines_before[0], log_lines(&intake_log) - lines_before[1]];
    println!("log lines during the 60 s broker outage (aggregator, intake): {outage_lines:?}");
    assert!(
        outage_lines.iter().all(|&n| n <= MAX_OUTAGE_LOG_LINES),
        "bounded logs while Kafka is down: {outage_lines:?} lines (see {})",
        logs.display()
    );
    broker.restart();
    let back = Instant::now();
    send(&sink, &events[2 * quarter..3 * quarter]).await;
    wait_caught_up(&env, &store, &mut [("aggregator", &mut aggregator)]).await;
    for port in [aggregator_port, intake_port] {
        wait_for("ready again after the broker came back", Duration::from_secs(60), || async {
            status(&ready(port)).await == Some(200)
        })
        .await;
    }
    println!("caught up {:.1} s after the broker came back", back.elapsed().as_secs_f64());
    let mut sent = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut sent, &events[..3 * quarter]).unwrap();
    parpulse_tests::assert_all_kpis_equal_recount(&store, std::str::from_utf8(&sent).unwrap()).await;

    // ClickHouse stops for 60 s while events keep coming.
    let lines_before = [log_lines(&aggregator_log), log_lines(&exporter_log)];
    clickhouse.stop();
    let stopped = Instant::now();
    send(&sink, &events[3 * quarter..]).await;
    let (mut aggregator_unready, mut exporter_unready, mut clickhouse_down_seen) = (false, false, false);
    while stopped.elapsed() < OUTAGE {
        aggregator.assert_running("the aggregator (ClickHouse down)");
        exporter.assert_running("the exporter (ClickHouse down)");
        intake.assert_running("the intake (ClickHouse down)");
        aggregator_unready |= status(&ready(aggregator_port)).await == Some(503);
        exporter_unready |= status(&ready(exporter_port)).await == Some(503);
        clickhouse_down_seen |= dependency_up(exporter_port, "clickhouse").await == Some(0.0)
            && dependency_up(aggregator_port, "clickhouse").await == Some(0.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(aggregator_unready && exporter_unready, "/readyz says 503 while ClickHouse is down");
    assert!(clickhouse_down_seen, "parpulse_dependency_up{{dependency=\"clickhouse\"}} 0 while ClickHouse is down");
    let outage_lines = [log_lines(&aggregator_log) - lines_before[0], log_lines(&exporter_log) - lines_before[1]];
    println!("log lines during the 60 s ClickHouse outage (aggregator, exporter): {outage_lines:?}");
    assert!(outage_lines.iter().all(|&n| n <= MAX_OUTAGE_LOG_LINES), "bounded logs: {outage_lines:?}");
    clickhouse.restart();
    let back = Instant::now();
    wait_caught_up(&env, &store, &mut [("aggregator", &mut aggregator), ("exporter", &mut exporter)]).await;
    for port in [aggregator_port, exporter_port] {
        wait_for("ready again after ClickHouse came back", Duration::from_secs(60), || async {
            status(&ready(port)).await == Some(200)
        })
        .await;
    }
    println!("caught up {:.1} s after ClickHouse came back", back.elapsed().as_secs_f64());
    parpulse_tests::assert_all_kpis_equal_recount(&store, std::str::from_utf8(&ndjson).unwrap()).await;
    parpulse_tests::assert_audit_trail_equals_events(&store, std::str::from_utf8(&ndjson).unwrap()).await;
    drop((aggregator, exporter, intake));
    env.cleanup().await;
    let _ = std::fs::remove_dir_all(&logs);
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, within: Duration, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("parpulse-outage-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
