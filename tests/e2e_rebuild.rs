//! `parpulse rebuild`: the derived tables recomputed from the event_log audit table
//! and swapped in. A wrong rule is simulated by rewriting the stored judgement of every
//! on-time dossier to late in the dossier rows, and the on-time counts of the day buckets
//! to 0 (what a wrong lateness rule would have written); the rebuild, with this build's rules and the
//! aggregators stopped (docs/OPERATIONS.md), brings every KPI back to the independent
//! recount. A rebuild while an aggregator consumes (same rules) keeps the events that
//! arrived during it; `--units` and `--from`/`--to` narrow it; a failed rebuild leaves
//! the tables serving as they were; a second run changes nothing.

use std::time::{Duration, Instant};

use parpulse_clickhouse::Store;
use parpulse_core::{AgencyRegistry, Event};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaSink, Simulator, SimulatorConfig};
use parpulse_tests::{InProcessAggregator, TestEnv};

/// Runs `parpulse rebuild ARGS`: whether it succeeded, and its output.
fn try_rebuild(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let output =
        parpulse_tests::parpulse_command(env, &["rebuild"]).args(args).output().expect("running parpulse rebuild");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn rebuild(env: &TestEnv, args: &[&str]) {
    let (ok, output) = try_rebuild(env, args);
    assert!(ok, "parpulse rebuild {args:?}: {output}");
}

/// Runs a mutation (ALTER .. UPDATE / DELETE) and waits until it is done.
async fn mutate(store: &Store, statement: &str) {
    store.client().query(statement).execute().await.expect("mutation");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending: u64 = store
            .client()
            .query("SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0")
            .bind(store.database())
            .fetch_one()
            .await
            .expect("mutation status");
        if pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the mutation did not finish within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// On-time dossiers (newest row of each) received inside and outside `[from, to]`.
async fn on_time_inside_and_outside(store: &Store, from: u16, to: u16) -> (u64, u64) {
    let (inside, outside): (u64, u64) = store
        .client()
        .query(
            "SELECT countIf(oc = 1 AND rd >= ? AND rd <= ?), countIf(oc = 1 AND (rd < ? OR rd > ?)) FROM \
             (SELECT argMax(outcome, version) AS oc, toUInt16(argMax(received_day, version)) AS rd \
              FROM dossier_state GROUP BY kafka_partition, agency_code, dossier_id)",
        )
        .bind(from)
        .bind(to)
        .bind(from)
        .bind(to)
        .fetch_one()
        .await
        .expect("on-time split");
    (inside, outside)
}

/// What a wrong lateness rule would have stored: every on-time dossier (not early) judged
/// late in its row, and no dossier on time in the day buckets.
async fn judge_on_time_dossiers_late(store: &Store) {
    mutate(store, "ALTER TABLE dossier_state UPDATE outcome = 2 WHERE outcome = 1").await;
    mutate(store, "ALTER TABLE day_count UPDATE value = 0 WHERE counter = 'on_time'").await;
}

/// Resolved counts of one unit: stored, and recounted from the file.
async fn resolved_of(store: &Store, text: &str, unit: &str) -> (Vec<String>, Vec<String>) {
    let (stored, _) = parpulse_tests::stored_resolved_counts(store).await;
    let (want, _) = parpulse_tests::recount::recount_resolved(text);
    let of = |counts: std::collections::BTreeMap<(String, i64), parpulse_tests::recount::ResolvedRecount>| {
        counts.into_iter().filter(|((u, _), _)| u == unit).map(|(k, v)| format!("{k:?} {v:?}")).collect()
    };
    (of(stored), of(want))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_corrects_stored_judgements_and_keeps_what_arrives_meanwhile() {
    let env = TestEnv::new("rebuild");
    let store = env.connect().await;
    env.migrate(&store).await;
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(41, 30, 20), &AgencyRegistry::demo()).collect();
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    let text = std::str::from_utf8(&ndjson).unwrap();
    let (before, during) = events.split_at(events.len() * 2 / 3);
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    for chunk in before.chunks(20_000) {
        sink.send(chunk.to_vec(), "test").await.expect("Kafka acknowledged");
    }
    env.aggregate_to_end(&store, Duration::from_secs(300)).await;
    let mut first_part = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut first_part, before).unwrap();
    let first_part = std::str::from_utf8(&first_part).unwrap();
    parpulse_tests::assert_all_kpis_equal_recount(&store, first_part).await;

    judge_on_time_dossiers_late(&store).await;
    let (stored, _) = parpulse_tests::stored_resolved_counts(&store).await;
    let (want, _) = parpulse_tests::recount::recount_resolved(first_part);
    assert_ne!(stored, want, "the wrong rule shows in the stored lateness");

    // The correction, with the aggregators stopped.
    rebuild(&env, &[]);
    parpulse_tests::assert_all_kpis_equal_recount(&store, first_part).await;

    // A rebuild while an aggregator consumes the rest of the province.
    let metrics = parpulse_aggregate::AggregatorMetrics::new();
    let live = InProcessAggregator::spawn(env.aggregator_config(), &store, &metrics);
    let producing = {
        let during = during.to_vec();
        tokio::spawn(async move {
            for chunk in during.chunks(2_000) {
                sink.send(chunk.to_vec(), "test").await.expect("Kafka acknowledged");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let rebuild_env = TestEnv {
        topics: env.topics.clone(),
        consumer_group: env.consumer_group.clone(),
        brokers: env.brokers.clone(),
        clickhouse_url: env.clickhouse_url.clone(),
        database: env.database.clone(),
    };
    tokio::task::spawn_blocking(move || rebuild(&rebuild_env, &[])).await.expect("rebuild ran");
    producing.await.expect("producer");
    env.wait_caught_up(&store, Duration::from_secs(300)).await;
    live.stop().await;
    parpulse_tests::assert_all_kpis_equal_recount(&store, text).await;

    // Narrowed to one unit: that unit is corrected, the others keep what they had.
    judge_on_time_dossiers_late(&store).await;
    rebuild(&env, &["--units", "SNV"]);
    let (snv, snv_want) = resolved_of(&store, text, "SNV").await;
    assert_eq!(snv, snv_want, "SNV rebuilt");
    let (stp, stp_want) = resolved_of(&store, text, "STP").await;
    assert_ne!(stp, stp_want, "STP not rebuilt");

    // Narrowed to ten days: dossiers received then are corrected, the others are not.
    judge_on_time_dossiers_late(&store).await;
    let today = parpulse_core::LocalDay::of_micros(parpulse_core::time::now_micros());
    let (from, to) = (parpulse_core::LocalDay(today.0 - 20), parpulse_core::LocalDay(today.0 - 11));
    rebuild(&env, &["--from", &from.to_string(), "--to", &to.to_string()]);
    let (inside, outside) = on_time_inside_and_outside(&store, from.0, to.0).await;
    assert!(inside > 0, "on-time dossiers received in the days rebuilt are on time again");
    assert_eq!(outside, 0, "the days not rebuilt keep what they had");

    // A rebuild that fails (an audit row that does not decode) swaps nothing in.
    let days_before = parpulse_tests::stored_day_counts(&store).await;
    store
        .client()
        .query(
            "INSERT INTO event_log (event_id, agency_code, occurred_at, day, recorded_at, schema_id, payload, topic, \
             kafka_partition, kafka_offset) VALUES ('bogus', 'SNV', 0, today(), 0, 1, 'not avro', ?, 0, 0)",
        )
        .bind(&env.topics.dossier)
        .execute()
        .await
        .expect("a bogus audit row");
    let (ok, output) = try_rebuild(&env, &[]);
    assert!(!ok && output.contains("does not decode"), "the rebuild fails and says why: {output}");
    assert_eq!(parpulse_tests::stored_day_counts(&store).await, days_before, "the old tables still serve");
    assert_eq!(on_time_inside_and_outside(&store, from.0, to.0).await, (inside, outside), "nothing swapped in");
    mutate(&store, "ALTER TABLE event_log DELETE WHERE event_id = 'bogus'").await;

    // Whole again, twice: the second run changes nothing.
    rebuild(&env, &[]);
    parpulse_tests::assert_all_kpis_equal_recount(&store, text).await;
    rebuild(&env, &[]);
    parpulse_tests::assert_all_kpis_equal_recount(&store, text).await;
    env.cleanup().await;
}
