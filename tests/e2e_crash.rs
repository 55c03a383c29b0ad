//! Exactly once in effect, with real crashes: the aggregator process is killed
//! with SIGKILL at random moments while it works through a simulated province of
//! 60 days, restarted each time, and the final KPIs equal an independent recount.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parpulse_core::{AgencyRegistry, Event};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaSink, Simulator, SimulatorConfig};
use parpulse_tests::process::listening_port;
use parpulse_tests::{InProcessAggregator, TestEnv};

/// `parpulse aggregate` on a port of its own choosing ([`listening_port`] reads it).
fn start_aggregator(env: &TestEnv) -> Child {
    aggregator_command(env, "127.0.0.1:0")
        // Static membership: the restarted process takes its partitions back at once
        // instead of waiting for the killed one's session to time out.
        .env("PARPULSE_AGGREGATOR_INSTANCE_ID", "crash-test")
        .spawn()
        .expect("starting parpulse aggregate")
}

/// `parpulse aggregate` on the test's services, checkpointing often, its audit rows
/// stored in pieces of about 600 events, several per checkpoint (so kills land between
/// a piece stored and its checkpoint too).
fn aggregator_command(env: &TestEnv, listen: &str) -> Command {
    let mut command = parpulse_tests::parpulse_command(
        env,
        &[
            "aggregate",
            "--listen",
            listen,
            "--checkpoint-interval-ms",
            "100",
            "--checkpoint-max-events",
            "3000",
            "--audit-piece-bytes",
            "131072",
        ],
    );
    command.stdout(Stdio::null());
    command
}

/// When to kill each life: once the checkpoints have gone `events` further than where
/// the life started, then after `extra` more (a deterministic generator; the test prints
/// the schedule). Kills keyed on progress, not on time from the start, land mid-run on a
/// slow machine as on a fast one.
#[derive(Debug)]
struct Kill {
    events: i64,
    extra: Duration,
}

fn kill_schedule(seed: u64, count: usize) -> Vec<Kill> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        state >> 33
    };
    (0..count)
        .map(|_| Kill { events: 2_000 + (next() % 13_000) as i64, extra: Duration::from_millis(next() % 100) })
        .collect()
}

/// Runs a statement that must succeed (the tests' table surgery).
async fn sql(store: &parpulse_clickhouse::Store, statement: String) {
    store.client().query(&statement).execute().await.expect(&statement)
}

/// Waits up to 60 s for `done`, failing with `what` if it does not come.
async fn wait(what: &str, done: Box<dyn Fn() -> bool + Send>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The dossier topic's offsets checkpointed so far, summed over partitions.
async fn checkpointed(env: &TestEnv, store: &parpulse_clickhouse::Store) -> i64 {
    parpulse_clickhouse::checkpoint::committed(store, &env.consumer_group, &env.topics.dossier)
        .await
        .expect("checkpoints")
        .iter()
        .map(|c| c.next_offset)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_aggregator_at_random_moments_loses_and_doubles_nothing() {
    let env = TestEnv::new("crash");
    let store = env.connect().await;
    env.migrate(&store).await;
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(60, 60, 40), &AgencyRegistry::demo()).collect();
    assert!(events.len() >= 200_000, "only {} events", events.len());
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    for chunk in events.chunks(20_000) {
        sink.send(chunk.to_vec(), "test").await.expect("Kafka acknowledged");
    }

    let seed = std::env::var("PARPULSE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_u64);
    let schedule = kill_schedule(seed, 5);
    println!("kill -9 after each life's checkpoints advance by, then after: {schedule:?} (seed {seed})");
    let mut progress = vec![checkpointed(&env, &store).await];
    for (kill, life) in schedule.iter().zip(1..) {
        let mut child = Reaped(start_aggregator(&env));
        let target = progress.last().copied().unwrap_or(0) + kill.events;
        let deadline = Instant::now() + Duration::from_secs(120);
        while checkpointed(&env, &store).await < target {
            assert!(
                child.0.try_wait().expect("child status").is_none(),
                "the aggregator exited by itself in life {life}"
            );
            assert!(Instant::now() < deadline, "life {life}: checkpoints did not reach {target} within 120 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(kill.extra).await;
        assert!(child.0.try_wait().expect("child status").is_none(), "the aggregator exited by itself in life {life}");
        child.0.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        child.0.wait().expect("reaped");
        let done =
            parpulse_aggregate::caught_up(&store, &env.connection(), &env.consumer_group, &env.topics.event_topics())
                .await
                .expect("progress");
        assert!(
            !done,
            "the run finished before kill {life}: lower the schedule's event counts so every kill lands mid-run"
        );
        progress.push(checkpointed(&env, &store).await);
    }
    println!("checkpointed offsets before the first life and after each kill: {progress:?}");

    let mut child = Reaped(start_aggregator(&env));
    let metrics_port = listening_port(&mut child.0, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !parpulse_aggregate::caught_up(&store, &env.connection(), &env.consumer_group, &env.topics.event_topics())
        .await
        .unwrap()
    {
        assert!(Instant::now() < deadline, "the aggregator did not finish within 5 minutes after the crashes");
        assert!(child.0.try_wait().unwrap().is_none(), "the aggregator died");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pieces = scrape(metrics_port, "parpulse_aggregator_audit_pieces_total").await;
    assert!(
        pieces > 0.0,
        "the last life stored audit rows in pieces ahead of their checkpoints (so did the killed ones)"
    );
    drop(child);

    // After 5 crashes every KPI equals the recount, bucket by bucket.
    let text = std::str::from_utf8(&ndjson).unwrap();
    let (want_resolved, _) = parpulse_tests::recount::recount_resolved(text);
    assert!(
        want_resolved.values().any(|c| c.late > 0 && c.late_with_apology < c.late),
        "the province has late dossiers with and without apology letters"
    );
    parpulse_tests::assert_all_kpis_equal_recount(&store, text).await;
    env.cleanup().await;
}

/// An aggregator with nothing to write calls ClickHouse only through its idle probe: an
/// outage must still count in `parpulse_aggregator_clickhouse_errors_total`, the figure
/// the IT dashboard's errors panel and the runbook read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_aggregator_counts_a_clickhouse_outage() {
    let clickhouse = parpulse_tests::spare_clickhouse::SpareClickHouse::start();
    let mut env = TestEnv::new("idle_outage");
    env.clickhouse_url = clickhouse.url();
    let store = env.connect().await;
    env.migrate(&store).await;
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(67, 2, 2), &AgencyRegistry::demo()).collect();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    sink.send(events, "test").await.expect("Kafka acknowledged");
    let metrics = parpulse_aggregate::AggregatorMetrics::new();
    let aggregator = InProcessAggregator::spawn(env.aggregator_config(), &store, &metrics);
    env.wait_caught_up(&store, Duration::from_secs(60)).await;
    // Caught up and nothing more to read: no checkpoint, no fetch, only the probe.
    let before = metrics.clickhouse_errors.get();
    clickhouse.stop();
    let errors = metrics.clickhouse_errors.clone();
    wait("a failed idle ping counted", Box::new(move || errors.get() > before)).await;
    clickhouse.restart();
    aggregator.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_restarted_mid_run_pauses_the_aggregator_and_loses_nothing() {
    let clickhouse = parpulse_tests::spare_clickhouse::SpareClickHouse::start();
    let mut env = TestEnv::new("clickhouse_restart");
    env.clickhouse_url = clickhouse.url();
    let store = env.connect().await;
    env.migrate(&store).await;
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(61, 60, 40), &AgencyRegistry::demo()).collect();
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    // Most events before the start; the rest arrive while ClickHouse is down.
    let (before_outage, during_outage) = events.split_at(events.len() * 2 / 3);
    for chunk in before_outage.chunks(20_000) {
        sink.send(chunk.to_vec(), "test").await.expect("Kafka acknowledged");
    }

    let mut child = Reaped(start_aggregator(&env));
    let metrics_port = listening_port(&mut child.0, Duration::from_secs(60)).await;
    // Stop ClickHouse as soon as the first checkpoint landed, while most of the work remains.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let committed = parpulse_clickhouse::checkpoint::committed(&store, &env.consumer_group, &env.topics.dossier)
            .await
            .map(|c| c.iter().map(|c| c.next_offset).sum::<i64>())
            .unwrap_or(0);
        if committed > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    clickhouse.stop();
    for chunk in during_outage.chunks(20_000) {
        sink.send(chunk.to_vec(), "test").await.expect("Kafka acknowledged");
    }
    let scrape = || async {
        let text =
            reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
        let samples = parpulse_tests::prom_text::parse(&text);
        let value = |name: &str| parpulse_tests::prom_text::find(&samples, name, &[]).unwrap_or(0.0);
        (value("parpulse_aggregator_clickhouse_errors_total"), value("parpulse_aggregator_events_total"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut errors, _) = scrape().await;
    while errors < 1.0 {
        assert!(Instant::now() < deadline, "no failed checkpoint counted within 30 s of stopping ClickHouse");
        tokio::time::sleep(Duration::from_millis(200)).await;
        errors = scrape().await.0;
    }
    // The aggregator's own retries are the clock, not a sleep. Its consume loop goes on
    // until the next checkpoint, where it waits for the failing one: the events applied
    // must stop growing within three more failed attempts, then stay put over two more.
    let at_failures = |count: f64| {
        let scrape = &scrape;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (failures, events) = scrape().await;
                if failures >= count {
                    return (failures, events);
                }
                assert!(
                    Instant::now() < deadline,
                    "the aggregator stopped retrying its checkpoint ({failures} failures)"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (mut failures, mut events_before) = at_failures(errors + 1.0).await;
    for attempt in 1.. {
        let (now, events) = at_failures(failures + 1.0).await;
        if events == events_before {
            failures = now;
            break;
        }
        assert!(attempt < 3, "still consuming after {now} failed checkpoints: {events_before} then {events} events");
        (failures, events_before) = (now, events);
    }
    let (_, events_after) = at_failures(failures + 2.0).await;
    assert!(child.0.try_wait().unwrap().is_none(), "the aggregator must wait for ClickHouse, not exit");
    assert!(errors >= 1.0, "failed checkpoints are counted while ClickHouse is down: {errors}");
    assert_eq!(events_before, events_after, "nothing is consumed while checkpoints fail (bounded memory)");
    assert!(events_after < events.len() as f64, "the events produced during the outage wait in Kafka");
    clickhouse.restart();

    let deadline = Instant::now() + Duration::from_secs(300);
    while !parpulse_aggregate::caught_up(&store, &env.connection(), &env.consumer_group, &env.topics.event_topics())
        .await
        .unwrap()
    {
        assert!(Instant::now() < deadline, "the aggregator did not finish after ClickHouse came back");
        assert!(child.0.try_wait().unwrap().is_none(), "the aggregator died");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(child);
    parpulse_tests::assert_all_kpis_equal_recount(&store, std::str::from_utf8(&ndjson).unwrap()).await;
    env.cleanup().await;
}

/// Scrapes one sample (no labels) from an aggregator's /metrics.
async fn scrape(port: u16, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else { return 0.0 };
    let text = response.text().await.unwrap_or_default();
    parpulse_tests::prom_text::find(&parpulse_tests::prom_text::parse(&text), name, &[]).unwrap_or(0.0)
}

/// Two aggregators share the partitions through the consumer group; one is killed
/// with SIGKILL mid-run, the other takes its partitions over (after the group's
/// session timeout) from the dead one's last checkpoint, and the KPIs equal the recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_aggregators_in_one_group_one_killed_lose_and_double_nothing() {
    let env = TestEnv::new("two_aggregators");
    let store = env.connect().await;
    env.migrate(&store).await;
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(62, 30, 30), &AgencyRegistry::demo()).collect();
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    let (first, rest) = events.split_at(events.len() / 3);
    let (middle, rest) = rest.split_at(rest.len() / 4);
    sink.send(first.to_vec(), "test").await.expect("Kafka acknowledged");

    let start = || async {
        let mut command = aggregator_command(&env, "127.0.0.1:0");
        let mut child =
            Reaped(command.args(["--session-timeout-ms", "6000"]).spawn().expect("starting parpulse aggregate"));
        let port = listening_port(&mut child.0, Duration::from_secs(60)).await;
        (child, port)
    };
    let (mut a, port_a) = start().await;
    let (b, port_b) = start().await;
    // Both own partitions (12: three topics of 4)...
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (owned_a, owned_b) = (
            scrape(port_a, "parpulse_aggregator_assigned_partitions").await,
            scrape(port_b, "parpulse_aggregator_assigned_partitions").await,
        );
        if owned_a > 0.0 && owned_b > 0.0 && owned_a + owned_b == 12.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the two aggregators did not share the partitions within 60 s: A owns {owned_a}, B owns {owned_b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and A has applied events of its own. Whoever joined first may have taken all of
    // the first part already: the middle part arrives once the partitions are shared.
    sink.send(middle.to_vec(), "test").await.expect("Kafka acknowledged");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (owned_a, owned_b) = (
            scrape(port_a, "parpulse_aggregator_assigned_partitions").await,
            scrape(port_b, "parpulse_aggregator_assigned_partitions").await,
        );
        let applied_a = scrape(port_a, "parpulse_aggregator_events_total").await;
        if applied_a > 0.0 && owned_a + owned_b == 12.0 {
            println!("before the kill: A owns {owned_a} partitions and applied {applied_a} events, B owns {owned_b}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A applied nothing within 60 s: A owns {owned_a} and applied {applied_a}, B owns {owned_b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.0.kill().expect("SIGKILL");
    a.0.wait().expect("reaped");
    // The rest arrives after the kill: A's partitions have work only B can do.
    for chunk in rest.chunks(20_000) {
        sink.send(chunk.to_vec(), "test").await.expect("Kafka acknowledged");
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while !parpulse_aggregate::caught_up(&store, &env.connection(), &env.consumer_group, &env.topics.event_topics())
        .await
        .unwrap()
    {
        assert!(Instant::now() < deadline, "the survivor did not finish within 3 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(scrape(port_b, "parpulse_aggregator_assigned_partitions").await, 12.0, "B owns every partition");
    let samples = parpulse_tests::prom_text::parse(
        &reqwest::get(format!("http://127.0.0.1:{port_b}/metrics")).await.unwrap().text().await.unwrap(),
    );
    let assigns =
        parpulse_tests::prom_text::find(&samples, "parpulse_aggregator_rebalances_total", &[("kind", "assign")])
            .unwrap();
    assert!(assigns >= 2.0, "B was assigned partitions again after the kill: {assigns}");
    drop(b);
    parpulse_tests::assert_all_kpis_equal_recount(&store, std::str::from_utf8(&ndjson).unwrap()).await;
    env.cleanup().await;
}

/// A child process killed and reaped when dropped, so a failing test leaves none behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A checkpoint that fails part-way (here: one table missing) is retried from the first
/// part not stored. What was stored before the failure is not sent again: the dead letter
/// is delivered once, and the day buckets and dossier rows are each written once (merges
/// are stopped, so a duplicate row could not hide); the audit rows, stored after the
/// failing table, once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_failing_part_way_resumes_with_the_first_part_not_stored() {
    let env = TestEnv::new("resume");
    let store = env.connect().await;
    env.migrate(&store).await;
    let db = store.database().to_owned();
    for table in ["event_log", "day_count", "dossier_state"] {
        sql(&store, format!("SYSTEM STOP MERGES {db}.{table}")).await;
    }

    let metrics = parpulse_aggregate::AggregatorMetrics::new();
    // Checkpoints every 2 s: the poison and the events, written within milliseconds, are
    // almost always taken in one checkpoint, so its dead letter is among the parts stored
    // before the failing one. (If a checkpoint falls between them, the poison's is stored
    // whole before the failure and every check below still holds.)
    let config =
        parpulse_aggregate::AggregatorConfig { checkpoint_interval: Duration::from_secs(2), ..env.aggregator_config() };
    let aggregator = InProcessAggregator::spawn(config, &store, &metrics);
    let assigned = metrics.assigned_partitions.clone();
    wait("partitions assigned", Box::new(move || assigned.get() > 0)).await;
    // The aggregator has loaded its state; from now on every checkpoint fails at
    // procedure_day, after the dead letters, day_count and dossier_state.
    sql(&store, format!("RENAME TABLE {db}.procedure_day TO {db}.procedure_day_away")).await;

    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(63, 3, 5), &AgencyRegistry::demo()).collect();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    let rogue: rdkafka::producer::FutureProducer = env.connection().client_config().create().expect("rogue producer");
    let poison =
        rdkafka::producer::FutureRecord::to(env.topics.dossier.as_str()).key("SNV").payload(b"not avro".as_slice());
    rogue.send(poison, Duration::from_secs(10)).await.expect("poison written");
    sink.send(events.clone(), "test").await.expect("Kafka acknowledged");

    let errors = metrics.clickhouse_errors.clone();
    wait("three failed checkpoint attempts", Box::new(move || errors.get() >= 3)).await;
    let dead_letters =
        || parpulse_tests::kafka_read::read_topic(&env.brokers, &env.topics.deadletter, Duration::from_secs(30));
    assert_eq!(dead_letters().len(), 1, "while the checkpoint fails, its dead letter was delivered once");
    sql(&store, format!("RENAME TABLE {db}.procedure_day_away TO {db}.procedure_day")).await;
    env.wait_caught_up(&store, Duration::from_secs(60)).await;
    aggregator.stop().await;

    let count = |query: String| {
        let store = store.clone();
        async move { store.client().query(&query).fetch_one::<u64>().await.expect(&query) }
    };
    assert_eq!(count("SELECT count() FROM event_log".into()).await, events.len() as u64, "audit rows written once");
    for table in ["day_count", "dossier_state"] {
        let rows = count(format!("SELECT count() FROM {table}")).await;
        let distinct = count(format!("SELECT count() FROM (SELECT DISTINCT * FROM {table})")).await;
        assert!(rows > 0, "{table} has rows");
        assert_eq!(rows, distinct, "no {table} row written twice");
    }
    assert_eq!(dead_letters().len(), 1, "the poison's dead letter is delivered once");
    let procedures = count("SELECT count() FROM procedure_day".into()).await;
    assert!(procedures > 0, "the failing part is stored once its table is back");
    env.cleanup().await;
}

/// Audit rows leave memory in pieces as they fill, stored ahead of the checkpoint that
/// moves past their events: here before any checkpoint at all (none is due for an hour),
/// each once. The final checkpoint stores the rest and every event is in the audit table
/// once, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_are_stored_in_pieces_ahead_of_their_checkpoint() {
    let env = TestEnv::new("audit_pieces");
    let store = env.connect().await;
    env.migrate(&store).await;
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(64, 5, 5), &AgencyRegistry::demo()).collect();
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    sink.send(events.clone(), "test").await.expect("Kafka acknowledged");

    let metrics = parpulse_aggregate::AggregatorMetrics::new();
    let config = parpulse_aggregate::AggregatorConfig {
        checkpoint_interval: Duration::from_secs(3600),
        checkpoint_max_events: u64::MAX,
        audit_piece_bytes: 16 << 10,
        ..env.aggregator_config()
    };
    let aggregator = InProcessAggregator::spawn(config, &store, &metrics);
    let count = |query: &'static str| {
        let store = store.clone();
        async move { store.client().query(query).fetch_one::<u64>().await.expect(query) }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.events.get() < events.len() as u64 || metrics.audit_pieces.get() < 3 {
        assert!(
            Instant::now() < deadline,
            "within 60 s: {} of {} events applied, {} audit pieces stored",
            metrics.events.get(),
            events.len(),
            metrics.audit_pieces.get()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pieces = metrics.audit_pieces.get();
    let ahead = count("SELECT count() FROM event_log").await;
    assert_eq!(metrics.checkpoints.get(), 0, "no checkpoint yet");
    assert_eq!(count("SELECT count() FROM checkpoints").await, 0, "no checkpoint row yet");
    assert!(ahead > 0, "audit rows in ClickHouse, stored in {pieces} pieces, before any checkpoint");

    aggregator.stop().await;
    assert_eq!(metrics.checkpoints.get(), 1, "the final checkpoint");
    assert_eq!(count("SELECT count() FROM event_log").await, events.len() as u64, "each audit row stored once");
    parpulse_tests::assert_all_kpis_equal_recount(&store, std::str::from_utf8(&ndjson).unwrap()).await;
    env.cleanup().await;
}

/// A checkpoint never moves past an event whose audit row is not stored: with the
/// `event_log` table away, the audit writer cannot store its pieces, and the checkpoint
/// that covers their events writes its other parts, then waits (its gauge says so) and
/// writes no checkpoint row until the pieces are stored. Every event is its own piece
/// (pieces of one byte), so the checkpoint itself has no audit rows left to store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_waits_for_the_audit_pieces_of_its_events() {
    let env = TestEnv::new("audit_wait");
    let store = env.connect().await;
    env.migrate(&store).await;
    let db = store.database().to_owned();
    let metrics = parpulse_aggregate::AggregatorMetrics::new();
    let config = parpulse_aggregate::AggregatorConfig { audit_piece_bytes: 1, ..env.aggregator_config() };
    let aggregator = InProcessAggregator::spawn(config, &store, &metrics);
    let assigned = metrics.assigned_partitions.clone();
    wait("partitions assigned", Box::new(move || assigned.get() > 0)).await;
    sql(&store, format!("RENAME TABLE {db}.event_log TO {db}.event_log_away")).await;

    // Two dossier events: one piece for the writer to retry, one in its channel (room for
    // one), so the consume loop is not held and the checkpoint comes.
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(65, 2, 2), &AgencyRegistry::demo())
        .filter(|event| matches!(event, Event::Dossier(_)))
        .take(2)
        .collect();
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    sink.send(events.clone(), "test").await.expect("Kafka acknowledged");
    let (applied, awaited) = (metrics.events.clone(), metrics.audit_pieces_awaited.clone());
    wait(
        "both events applied and a checkpoint waiting for their audit pieces",
        Box::new(move || applied.get() == 2 && awaited.get() > 0),
    )
    .await;
    let committed = parpulse_clickhouse::checkpoint::committed(&store, &env.consumer_group, &env.topics.dossier)
        .await
        .expect("checkpoints");
    assert!(committed.is_empty(), "no checkpoint row while the audit rows of its events are not stored: {committed:?}");
    assert_eq!(metrics.audit_pieces.get(), 0, "no piece stored with the table away");

    sql(&store, format!("RENAME TABLE {db}.event_log_away TO {db}.event_log")).await;
    env.wait_caught_up(&store, Duration::from_secs(60)).await;
    assert_eq!(metrics.audit_pieces_awaited.get(), 0, "the checkpoint waits for nothing once the pieces are stored");
    aggregator.stop().await;
    assert_eq!(metrics.audit_pieces.get(), 2, "each event its own piece");
    parpulse_tests::assert_audit_trail_equals_events(&store, std::str::from_utf8(&ndjson).unwrap()).await;
    env.cleanup().await;
}
