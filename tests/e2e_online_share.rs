//! End to end through real Kafka and ClickHouse: simulator -> Kafka (Avro) ->
//! aggregator -> ClickHouse -> exporter -> /metrics over HTTP, checked against
//! an independent recount of the simulator's NDJSON output.

use std::sync::Arc;
use std::time::Duration;

use parpulse_core::{AgencyRegistry, DossierEventKind, Event, LocalDay};
use parpulse_export::{Exporter, ExporterConfig, Window};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaSink, Simulator, SimulatorConfig};
use parpulse_tests::prom_text::{self, find};
use parpulse_tests::recount::{self, recount_ndjson};
use parpulse_tests::TestEnv;
use tokio::sync::oneshot;

/// An agency (None: the province) and the labels of its series.
type Scope<'a> = (Option<&'a str>, [(&'static str, &'a str); 3]);

/// A simulated province with one dossier in ten in a hard case of the rules (two supplement
/// requests, one still waiting, a late apology, a return before the processing...), so the
/// independent recount and the pipeline must agree where the rules are subtle.
const DAY_MICROS: i64 = 86_400_000_000;

fn simulate(seed: u64, days: u32, per_unit_day: u32) -> (Vec<Event>, String) {
    let config = SimulatorConfig::recent(seed, days, per_unit_day).with_hard_cases(0.1);
    let events: Vec<_> = Simulator::new(config, &AgencyRegistry::demo()).collect();
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).expect("writing NDJSON to memory");
    (events, String::from_utf8(ndjson).expect("UTF-8"))
}

async fn produce(env: &TestEnv, events: &[Event]) {
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    let summary = sink.send(events.to_vec(), "test").await.expect("Kafka acknowledged the events");
    assert_eq!(summary.rejected, 0, "simulated events are valid");
    assert_eq!(summary.accepted, events.len() as u64);
}

async fn aggregate_to_end(env: &TestEnv, store: &parpulse_clickhouse::Store) {
    env.aggregate_to_end(store, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_share_on_metrics_equals_a_recount_of_the_events() {
    let env = TestEnv::new("online_share");
    let store = env.connect().await;
    env.migrate(&store).await;
    let (events, ndjson) = simulate(42, 12, 8);
    produce(&env, &events).await;
    aggregate_to_end(&env, &store).await;

    let registry = AgencyRegistry::demo();
    let exporter = Arc::new(Exporter::new(store.clone(), registry.clone(), ExporterConfig::default()));
    let snapshot = exporter.refresh().await.expect("exporter reads ClickHouse");
    let today = snapshot.today.expect("snapshot has a day");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    tokio::spawn(parpulse_http::serve(listener, exporter.clone(), async {
        let _ = http_stopped.await;
    }));
    let body =
        reqwest::get(format!("http://{address}/metrics")).await.expect("GET /metrics").text().await.expect("body");
    let samples = prom_text::parse(&body);
    let counts = recount_ndjson(&ndjson);

    let mut checked = 0;
    for window in Window::ALL {
        let first = i64::from(window.first_day(today).0);
        let last = i64::from(window.last_day(today).0);
        let mut scopes: Vec<Scope> = registry
            .iter()
            .map(|a| {
                (Some(a.code.as_str()), [("scope", "unit"), ("unit", a.code.as_str()), ("window", window.label())])
            })
            .collect();
        scopes.push((None, [("scope", "province"), ("unit", "HY"), ("window", window.label())]));
        for (agency, labels) in scopes {
            let expected = recount::window(&counts, agency, first, last);
            let received = find(&samples, "parpulse_dossiers_received", &labels);
            let online = find(&samples, "parpulse_dossiers_received_online", &labels);
            let share = find(&samples, "parpulse_online_share_ratio", &labels);
            assert_eq!(received, Some(expected.received as f64), "received {labels:?}");
            assert_eq!(online, Some(expected.online as f64), "online {labels:?}");
            assert_eq!(
                find(&samples, "parpulse_dossiers_received_postal", &labels),
                Some(expected.postal as f64),
                "postal {labels:?}"
            );
            if expected.received == 0 {
                assert_eq!(share, None, "no ratio without dossiers {labels:?}");
            } else {
                let want = expected.online as f64 / expected.received as f64;
                let got = share.unwrap_or_else(|| panic!("online share missing for {labels:?}"));
                assert!((got - want).abs() < 1e-12, "online share {labels:?}: {got} != {want}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, Window::ALL.len() * (registry.len() + 1));
    let month_total = recount::window(&counts, None, i64::from(LocalDay(today.0 - 29).0), i64::from(today.0));
    assert!(month_total.received > 1_000, "the simulation produced a meaningful volume ({month_total:?})");
    assert!(month_total.online > 0 && month_total.online < month_total.received);
    let _ = stop_http.send(());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_restart_continues_from_its_checkpoint_without_double_counting() {
    let env = TestEnv::new("restart");
    let store = env.connect().await;
    env.migrate(&store).await;
    // Twelve days, cut after the seventh: with one day of allowed lateness, the restarted
    // aggregator loads only the dossiers active in the last day and the day buckets from
    // the day before on, and fetches the others when an event needs them. A cut by time,
    // not by count: where a count falls depends on the weekday the test runs on.
    let (events, ndjson) = simulate(7, 12, 3);
    let start = events.iter().map(Event::occurred_at).min().expect("events");
    let cut = LocalDay::of_micros(start).start_micros() + 7 * DAY_MICROS;
    let (first_half, second_half): (Vec<Event>, Vec<Event>) = events.into_iter().partition(|e| e.occurred_at() < cut);
    // The events themselves call for fetched buckets: some dossier received before the
    // day of the restart's horizon (a day behind the first half's newest event; two days,
    // for the margin of a partition whose newest event is older) has an event after the cut.
    let newest = first_half.iter().map(Event::occurred_at).max().expect("events before the cut");
    let horizon_day = LocalDay::of_micros(newest - 2 * DAY_MICROS);
    let received_early: std::collections::HashSet<&str> = first_half
        .iter()
        .filter_map(|e| match e {
            Event::Dossier(d)
                if d.kind == DossierEventKind::Received && LocalDay::of_micros(d.occurred_at) < horizon_day =>
            {
                Some(d.dossier_id.as_str())
            }
            _ => None,
        })
        .collect();
    assert!(
        second_half.iter().any(|e| matches!(e, Event::Dossier(d) if received_early.contains(d.dossier_id.as_str()))),
        "the simulation has late facts of early dossiers"
    );

    let config = parpulse_aggregate::AggregatorConfig {
        allowed_lateness: Duration::from_secs(86_400),
        ..env.aggregator_config()
    };
    produce(&env, &first_half).await;
    let first = parpulse_aggregate::AggregatorMetrics::new();
    env.aggregate_to_end_with(config.clone(), &first, &store, Duration::from_secs(120)).await;
    produce(&env, &second_half).await;
    let second = parpulse_aggregate::AggregatorMetrics::new();
    env.aggregate_to_end_with(config, &second, &store, Duration::from_secs(120)).await;
    assert!(second.dossiers_fetched.get() > 0, "the restart fetched no dossier back");
    // It loaded the buckets of the last day only, and fetched older ones a late fact changed.
    assert!(
        second.day_buckets_fetched.get() > 0,
        "the restart fetched no day bucket back ({} dossiers fetched, {} buckets in memory, {} events)",
        second.dossiers_fetched.get(),
        second.day_buckets_in_memory.get(),
        second.events.get()
    );

    parpulse_tests::assert_all_kpis_equal_recount(&store, &ndjson).await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_events_produced_twice_change_nothing() {
    let env = TestEnv::new("duplicates");
    let store = env.connect().await;
    env.migrate(&store).await;
    let (events, ndjson) = simulate(9, 5, 5);
    produce(&env, &events).await;
    aggregate_to_end(&env, &store).await;
    produce(&env, &events).await; // a producer retry or a re-import: same ids, new offsets
    aggregate_to_end(&env, &store).await;

    // Every dossier counted once, every budget and staffing event once.
    parpulse_tests::assert_all_kpis_equal_recount(&store, &ndjson).await;
    env.cleanup().await;
}

/// Allowed lateness: events older than it behind their partition's newest event
/// go to the dead-letter topic as `too_late` and are counted there, not in the
/// KPIs; a late redelivery of an event already counted is only a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_beyond_the_allowed_lateness_go_to_the_dead_letter_topic() {
    let env = TestEnv::new("too_late");
    let store = env.connect().await;
    env.migrate(&store).await;
    let (events, ndjson) = simulate(11, 20, 5);
    produce(&env, &events).await;
    let newest = events.iter().map(Event::occurred_at).max().unwrap();
    let five_days = 5 * 86_400_000_000;
    // New dossiers received more than 5 days before the newest event, reported now.
    let late: Vec<Event> = events
        .iter()
        .filter_map(|e| match e {
            Event::Dossier(d)
                if d.kind == parpulse_core::DossierEventKind::Received && d.occurred_at < newest - 2 * five_days =>
            {
                let mut d = d.clone();
                d.dossier_id = format!("{}-TRE", d.dossier_id);
                d.event_id = uuid::Uuid::new_v4().to_string();
                Some(Event::Dossier(d))
            }
            _ => None,
        })
        .take(7)
        .collect();
    assert_eq!(late.len(), 7);
    // A redelivered event of a dossier idle for more than a week: by then the dossier has
    // left memory (state.rs, bounded state), so the aggregator cannot tell it from a new
    // fact and it is too late as well (a redelivery of a dossier still in memory is only a
    // duplicate: unit test in state.rs).
    let mut last_event: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for e in &events {
        if let Event::Dossier(d) = e {
            let at = last_event.entry(d.dossier_id.as_str()).or_default();
            *at = (*at).max(d.occurred_at);
        }
    }
    let redelivered = events
        .iter()
        .find(|e| matches!(e, Event::Dossier(d) if last_event[d.dossier_id.as_str()] < newest - 7 * 86_400_000_000))
        .unwrap()
        .clone();
    produce(&env, &late).await;
    produce(&env, std::slice::from_ref(&redelivered)).await;

    let config = parpulse_aggregate::AggregatorConfig {
        allowed_lateness: Duration::from_micros(five_days as u64),
        // Small checkpoints: idle dossiers leave memory while the 20 days stream by.
        checkpoint_max_events: 200,
        ..env.aggregator_config()
    };
    let metrics = parpulse_aggregate::AggregatorMetrics::new();
    env.aggregate_to_end_with(config, &metrics, &store, Duration::from_secs(120)).await;

    assert_eq!(metrics.too_late.get(), 8, "each late new dossier and the late redelivery counted as too late");
    // With 5 days allowed over 20, idle dossiers left memory and some came back for a
    // late event of theirs (results returned, apologies); the recount below still holds.
    assert!(metrics.dossiers_fetched.get() > 0, "no dossier was fetched back");
    // So did the day buckets of the days those dossiers were received or ended on.
    assert!(metrics.day_buckets_fetched.get() > 0, "no day bucket was fetched back");
    let dead = parpulse_tests::kafka_read::read_topic(&env.brokers, &env.topics.deadletter, Duration::from_secs(30));
    let too_late: Vec<_> =
        dead.iter().filter(|r| r.headers.get("reason").map(String::as_str) == Some("too_late")).collect();
    assert_eq!(
        too_late.len(),
        8,
        "every too-late event kept in the dead-letter topic: {:?}",
        dead.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
    let codec = parpulse_core::avro::AvroCodec::new();
    let mut dead_ids: Vec<String> =
        too_late.iter().map(|r| codec.decode_event(&r.payload).unwrap().event_id().to_owned()).collect();
    let mut late_ids: Vec<String> = late.iter().chain([&redelivered]).map(|e| e.event_id().to_owned()).collect();
    dead_ids.sort();
    late_ids.sort();
    assert_eq!(dead_ids, late_ids, "the dead-letter topic holds the original events");
    assert!(too_late.iter().all(|r| r.headers.get("source").map(String::as_str) == Some("aggregator")));
    assert!(too_late[0].headers["message"].contains("allowed lateness is 120 h"), "{:?}", too_late[0].headers);
    // The KPIs are those of the on-time events only.
    parpulse_tests::assert_all_kpis_equal_recount(&store, &ndjson).await;
    env.cleanup().await;
}
