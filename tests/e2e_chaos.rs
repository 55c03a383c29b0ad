//! Chaos run: a simulated province goes through TWO `parpulse aggregate` processes
//! in one consumer group (static membership) while the test SIGKILLs one of them
//! at random moments (restarting it each time), restarts the Kafka broker once and
//! ClickHouse once (private spare servers, so the shared ones stay up), and writes
//! poison messages (about 1 per 10,000) straight into the dossier topic with a plain
//! producer: garbage bytes, an unknown schema id, a truncated Avro record, and
//! well-formed records dated year 2200, dated year 1, for an unknown unit, and with
//! an event id that is not a UUID.
//!
//! At the end every KPI equals the independent recount of the good events, the
//! audit table holds exactly their ids, and the dead-letter topic holds exactly the
//! poison set (matched by original bytes, with reason, source and position headers;
//! dead letters are at least once, so a repeat of the same position is counted, not
//! failed): nothing lost, nothing doubled.
//!
//! Size from the environment: `PARPULSE_CHAOS_EVENTS` (default 60,000),
//! `PARPULSE_CHAOS_KILLS` (default 3), `PARPULSE_CHAOS_OUTAGE_SECS` (default 4),
//! `PARPULSE_CHAOS_SEED` (printed). `make chaos` runs 1M events and 20 kills on a
//! release build and writes the figures to `PARPULSE_CHAOS_FIGURES`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parpulse_core::avro::AvroCodec;
use parpulse_core::{AgencyRegistry, DossierEvent, Event};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaSink, Simulator, SimulatorConfig};
use parpulse_tests::aggregators::{
    committed_sum, high_watermark_sum, on_spare_services, quantile, readyz, start_aggregator, wait_readyz,
};
use parpulse_tests::kafka_read::read_topic;
use parpulse_tests::process::{listening_port, Reaped};
use parpulse_tests::rng::{seed_from_env, size_from_env, Rng};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;

const DAY_MICROS: i64 = 86_400_000_000;
/// 2200-01-01 and 0001-01-01, UTC microseconds.
const YEAR_2200: i64 = 7_258_118_400_000_000;
const YEAR_1: i64 = -62_135_596_800_000_000;

/// The kinds of poison, each with the dead-letter reason the aggregator must give it.
const POISON: [(&str, &str); 7] = [
    ("garbage bytes", "undecodable"),
    ("unknown schema id", "undecodable"),
    ("truncated Avro record", "undecodable"),
    ("dated year 2200", "future_time"),
    ("dated year 1", "too_old"),
    ("unknown unit", "unknown_agency"),
    ("event id not a UUID", "bad_event_id"),
];

/// Poison of kind `kind` (an index into [`POISON`]), built from a valid dossier event.
fn poison(kind: usize, rng: &mut Rng, template: &DossierEvent) -> Vec<u8> {
    let codec = AvroCodec::new();
    let encode = |event: &DossierEvent| {
        let mut bytes = Vec::new();
        codec.encode_dossier(event, &mut bytes).expect("a well-formed record encodes");
        bytes
    };
    let fresh = DossierEvent { event_id: rng.uuid().to_string(), ..template.clone() };
    let dated =
        |at: i64| DossierEvent { occurred_at: at, due_at: Some(at.saturating_add(5 * DAY_MICROS)), ..fresh.clone() };
    match kind {
        0 => {
            let len = rng.between(1, 300) as usize;
            let mut bytes = rng.bytes(len);
            bytes[0] |= 0x80; // never the wire format's magic byte
            bytes
        }
        1 => {
            let mut bytes = encode(&fresh);
            let unknown_id = 1000 + rng.below(1_000_000) as u32;
            bytes[1..5].copy_from_slice(&unknown_id.to_be_bytes());
            bytes
        }
        2 => {
            let bytes = encode(&fresh);
            bytes[..5 + (bytes.len() - 5) / 2].to_vec()
        }
        3 => encode(&dated(YEAR_2200)),
        4 => encode(&dated(YEAR_1)),
        5 => encode(&DossierEvent { agency_code: "HANOI".into(), ..fresh }),
        _ => encode(&DossierEvent { event_id: format!("hs-{}", rng.below(1_000_000_000)), ..fresh }),
    }
}

/// A poison message as written: kind, bytes and where Kafka put it.
struct Written {
    kind: usize,
    bytes: Vec<u8>,
    partition: i32,
    offset: i64,
}

/// A simulated province of at least `target` events (60 days, the volume scaled).
fn province(target: usize) -> Vec<Event> {
    let registry = AgencyRegistry::demo();
    let pilot = Simulator::new(SimulatorConfig::recent(91, 60, 10), &registry).count();
    let mut per_unit_day = (target * 10).div_ceil(pilot).max(1) as u32;
    loop {
        let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(91, 60, per_unit_day), &registry).collect();
        if events.len() >= target {
            return events;
        }
        per_unit_day += per_unit_day.div_ceil(50);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    BrokerRestart,
    ClickHouseRestart,
}

/// What one fault cost.
#[derive(Debug, serde::Serialize)]
struct FaultFigures {
    fault: String,
    /// The aggregator killed (kills only).
    victim: Option<&'static str>,
    /// Messages written but not checkpointed when the fault struck.
    lag_at_fault: i64,
    /// Stop to restart (outages only).
    outage_seconds: Option<f64>,
    /// End of the fault until /readyz of both aggregators answered 200 again.
    ready_seconds: Option<f64>,
    /// End of the fault until the group's checkpoints moved past where they were when it struck.
    resume_seconds: Option<f64>,
    /// End of the fault until everything written by then was checkpointed.
    caught_up_seconds: f64,
}

/// Writes the good events through the gate and, in step with them, the poison
/// straight into the dossier topic, so poison is spread over the run.
struct Producer {
    sink: KafkaSink,
    poisoner: FutureProducer,
    topic: String,
    rng: Rng,
    templates: Vec<DossierEvent>,
    produced: usize,
    total: usize,
    poison_count: usize,
    written: Vec<Written>,
}

impl Producer {
    async fn produce(&mut self, events: &[Event]) {
        for piece in events.chunks(20_000) {
            self.sink.send(piece.to_vec(), "chaos").await.expect("Kafka acknowledged");
        }
        self.produced += events.len();
        let due = self.poison_count * self.produced / self.total;
        while self.written.len() < due {
            let kind = self.written.len() % POISON.len();
            let template = self.rng.pick(&self.templates).clone();
            let bytes = poison(kind, &mut self.rng, &template);
            let record = FutureRecord::to(&self.topic).payload(&bytes).key(template.agency_code.as_str());
            let delivery =
                self.poisoner.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("poison written");
            self.written.push(Written { kind, bytes, partition: delivery.partition, offset: delivery.offset });
        }
    }
}

struct Aggregator {
    name: &'static str,
    port: u16,
    process: Reaped,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_aggregators_survive_kills_outages_and_poison_losing_and_doubling_nothing() {
    let target = size_from_env("PARPULSE_CHAOS_EVENTS", 60_000);
    let kills = size_from_env("PARPULSE_CHAOS_KILLS", 3);
    let outage = Duration::from_secs(size_from_env("PARPULSE_CHAOS_OUTAGE_SECS", 4) as u64);
    let seed = seed_from_env("PARPULSE_CHAOS_SEED");
    let mut rng = Rng::new(seed);
    let run_started = Instant::now();

    let (broker, clickhouse, env, store) = on_spare_services("chaos").await;

    let events = province(target);
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).unwrap();
    let templates: Vec<DossierEvent> = events
        .iter()
        .filter_map(|e| match e {
            Event::Dossier(d) => Some(d.clone()),
            _ => None,
        })
        .take(1000)
        .collect();
    let poison_count = (events.len() / 10_000).max(POISON.len());

    // The faults in order: kills, with the broker restart a third of the way and
    // ClickHouse two thirds of the way; one chunk of events before each, one at the start.
    let mut faults = vec![Fault::Kill; kills];
    faults.insert(faults.len() / 3, Fault::BrokerRestart);
    faults.insert(faults.len() * 2 / 3 + 1, Fault::ClickHouseRestart);
    let chunk_len = events.len().div_ceil(faults.len() + 1);
    let chunks: Vec<&[Event]> = events.chunks(chunk_len).collect();
    println!(
        "chaos: {} events in {} chunks, {poison_count} poison messages, faults {faults:?}, outages {outage:?}",
        events.len(),
        chunks.len()
    );

    let mut producer = Producer {
        sink: KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer"),
        poisoner: ClientConfig::new()
            .set("bootstrap.servers", &env.brokers)
            .set("message.timeout.ms", "30000")
            .create()
            .expect("plain producer"),
        topic: env.topics.dossier.clone(),
        rng: Rng::new(seed.wrapping_add(1)),
        templates,
        produced: 0,
        total: events.len(),
        poison_count,
        written: Vec::new(),
    };
    producer.produce(chunks[0]).await;
    let logs = std::env::temp_dir().join(format!("parpulse-chaos-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&logs).unwrap();
    println!("aggregator logs in {}", logs.display());
    let mut aggregators: Vec<Aggregator> = Vec::new();
    for name in ["chaos-a", "chaos-b"] {
        let mut process = start_aggregator(&env, name, &logs.join(name));
        let port = listening_port(&mut process.0, Duration::from_secs(60)).await;
        aggregators.push(Aggregator { name, port, process });
    }
    let mut ports: Vec<u16> = aggregators.iter().map(|a| a.port).collect();
    wait_readyz(&ports, 200, Duration::from_secs(60)).await;

    let mut figures: Vec<FaultFigures> = Vec::new();
    let mut last_caught_up = Duration::from_millis(500);
    for (index, fault) in faults.iter().enumerate() {
        let chunk = chunks.get(index + 1).copied().unwrap_or(&[]);
        let (now_part, outage_part) =
            if *fault == Fault::ClickHouseRestart { chunk.split_at(chunk.len() / 2) } else { (chunk, &[][..]) };
        producer.produce(now_part).await;
        // A random moment while the aggregators work through the chunk.
        // The first fault strikes at once, so at least one kill finds work waiting.
        let window = last_caught_up.min(Duration::from_secs(1)).as_millis() as u64;
        let delay = Duration::from_millis(if index == 0 { 0 } else { rng.below(window * 6 / 10 + 20) });
        tokio::time::sleep(delay).await;
        let before = committed_sum(&env, &store).await.expect("checkpoints");
        let lag_at_fault = high_watermark_sum(&env).await - before;
        let mut outage_seconds = None;
        let mut victim = None;
        let mut restarted = None;
        match fault {
            Fault::Kill => {
                let index = rng.below(2) as usize;
                let killed = &mut aggregators[index];
                killed.process.assert_running(killed.name);
                killed.process.kill();
                killed.process = start_aggregator(&env, killed.name, &logs.join(killed.name));
                victim = Some(killed.name);
                restarted = Some(index);
            }
            Fault::BrokerRestart | Fault::ClickHouseRestart => {
                let stopped = Instant::now();
                if *fault == Fault::BrokerRestart {
                    broker.stop();
                } else {
                    clickhouse.stop();
                    // Events keep arriving while ClickHouse is away; they wait in Kafka.
                    producer.produce(outage_part).await;
                }
                wait_readyz(&ports, 503, Duration::from_secs(60)).await;
                while stopped.elapsed() < outage {
                    for a in &mut aggregators {
                        a.process.assert_running(a.name);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                for a in &mut aggregators {
                    a.process.assert_running(a.name);
                }
                if *fault == Fault::BrokerRestart {
                    broker.restart();
                } else {
                    clickhouse.restart();
                }
                outage_seconds = Some(stopped.elapsed().as_secs_f64());
            }
        }
        // Recovery: /readyz answers 200 again, the checkpoints move past where they were
        // when the fault struck, and everything written by now is checkpointed.
        let ended = Instant::now();
        if let Some(index) = restarted {
            // The restarted process binds a new port of the OS's choosing (the recovery
            // time below counts from the restart, this wait included).
            let again = &mut aggregators[index];
            again.port = listening_port(&mut again.process.0, Duration::from_secs(60)).await;
            ports[index] = again.port;
        }
        let high = high_watermark_sum(&env).await;
        let (mut ready_seconds, mut resume_seconds, mut caught_up_seconds) = (None, None, None);
        let deadline = Duration::from_secs(300);
        while ready_seconds.is_none() || caught_up_seconds.is_none() {
            let seconds = Some(ended.elapsed().as_secs_f64());
            if ready_seconds.is_none() {
                let mut all = true;
                for port in &ports {
                    all &= readyz(*port).await == Some(200);
                }
                ready_seconds = ready_seconds.or(seconds.filter(|_| all));
            }
            let committed = committed_sum(&env, &store).await;
            if committed.is_some_and(|c| c > before) {
                resume_seconds = resume_seconds.or(seconds);
            }
            if committed.is_some_and(|c| c >= high) {
                caught_up_seconds = caught_up_seconds.or(seconds);
            }
            for a in &mut aggregators {
                a.process.assert_running(a.name);
            }
            assert!(
                ended.elapsed() < deadline,
                "after {fault:?} (#{index}) within {deadline:?}: ready after {ready_seconds:?} s, {committed:?} of {high} messages checkpointed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        last_caught_up = Duration::from_secs_f64(caught_up_seconds.unwrap_or_default());
        let figure = FaultFigures {
            fault: format!("{fault:?}"),
            victim,
            lag_at_fault,
            outage_seconds,
            ready_seconds,
            resume_seconds,
            caught_up_seconds: caught_up_seconds.unwrap_or_default(),
        };
        println!("fault {index}: {}", serde_json::to_string(&figure).unwrap());
        figures.push(figure);
    }
    // The rest of the events (and any poison left), then the end of the topics.
    for chunk in chunks.iter().skip(faults.len() + 1) {
        producer.produce(chunk).await;
    }
    let written = std::mem::take(&mut producer.written);
    assert_eq!(written.len(), poison_count, "every poison message written");
    let deadline = Instant::now() + Duration::from_secs(600);
    while !parpulse_aggregate::caught_up(&store, &env.connection(), &env.consumer_group, &env.topics.event_topics())
        .await
        .expect("progress")
    {
        assert!(Instant::now() < deadline, "the aggregators did not finish within 10 minutes of the last fault");
        for a in &mut aggregators {
            a.process.assert_running(a.name);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for a in &mut aggregators {
        a.process.assert_running(a.name);
        assert_eq!(readyz(a.port).await, Some(200), "{} ready at the end", a.name);
    }
    let aggregate_seconds = run_started.elapsed().as_secs_f64();

    // The dead-letter topic holds exactly the poison, each once, with its reason and position.
    let by_position: BTreeMap<(i32, i64), &Written> = written.iter().map(|w| ((w.partition, w.offset), w)).collect();
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut strangers = Vec::new();
    for record in read_topic(&env.brokers, &env.topics.deadletter, Duration::from_secs(120)) {
        let h = &record.headers;
        let reason = h.get("reason").cloned().unwrap_or_default();
        *by_reason.entry(reason.clone()).or_default() += 1;
        let position = (
            h.get("partition").and_then(|p| p.parse().ok()).unwrap_or(-1),
            h.get("offset").and_then(|o| o.parse().ok()).unwrap_or(-1),
        );
        match by_position.get(&position) {
            Some(w) if h.get("topic") == Some(&env.topics.dossier) => {
                assert_eq!(record.payload, w.bytes, "dead letter of {position:?} keeps the original bytes");
                assert_eq!(reason, POISON[w.kind].1, "reason of the {} at {position:?}", POISON[w.kind].0);
                assert_eq!(h.get("source").map(String::as_str), Some("aggregator"), "{h:?}");
                assert!(h.get("message").is_some_and(|m| !m.is_empty()), "{h:?}");
                *seen.entry(position).or_default() += 1;
            }
            _ => strangers.push(format!("{reason} from {:?} {position:?}", h.get("topic"))),
        }
    }
    assert!(strangers.is_empty(), "dead letters that are not poison (a good event refused?): {strangers:?}");
    // Dead letters are at least once (docs/ARCHITECTURE.md): a kill between a dead letter
    // and the checkpoint past it writes it again, identical, with the same position. Each
    // poison message has one distinct dead letter; repeats are counted.
    let missing: Vec<_> = by_position.keys().filter(|p| !seen.contains_key(p)).collect();
    assert!(missing.is_empty(), "poison without a dead letter (lost): {missing:?}");
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    // Every KPI equals the recount of the good events; the audit table holds exactly their ids.
    parpulse_tests::assert_all_kpis_equal_recount(&store, std::str::from_utf8(&ndjson).unwrap()).await;

    let kills_survived = figures.iter().filter(|f| f.fault == "Kill").count();
    assert_eq!(kills_survived, kills);
    let series = |fault: Option<&str>, pick: fn(&FaultFigures) -> Option<f64>| {
        let values: Vec<f64> = figures.iter().filter(|f| fault.is_none_or(|k| f.fault == k)).filter_map(pick).collect();
        json!({"n": values.len(), "p50": quantile(&values, 0.5), "p99": quantile(&values, 0.99),
               "max": quantile(&values, 1.0)})
    };
    let landed = figures.iter().filter(|f| f.fault == "Kill" && f.lag_at_fault > 0).count();
    let summary = json!({
        "seed": seed, "events": events.len(), "poison": written.len(), "kills_survived": kills_survived,
        "kills_with_work_waiting": landed,
        "broker_outage_seconds": figures.iter().find(|f| f.fault == "BrokerRestart").and_then(|f| f.outage_seconds),
        "clickhouse_outage_seconds":
            figures.iter().find(|f| f.fault == "ClickHouseRestart").and_then(|f| f.outage_seconds),
        "kill_resume_seconds": series(Some("Kill"), |f| f.resume_seconds),
        "kill_caught_up_seconds": series(Some("Kill"), |f| Some(f.caught_up_seconds)),
        "kill_ready_seconds": series(Some("Kill"), |f| f.ready_seconds),
        "outage_ready_seconds": series(None, |f| f.outage_seconds.and(f.ready_seconds)),
        "outage_resume_seconds": series(None, |f| f.outage_seconds.and(f.resume_seconds)),
        "outage_caught_up_seconds": series(None, |f| f.outage_seconds.map(|_| f.caught_up_seconds)),
        "dead_letters_by_reason": by_reason, "dead_letter_repeats": repeats, "run_seconds": aggregate_seconds, "faults": figures,
    });
    println!("chaos figures: {summary:#}");
    if let Ok(path) = std::env::var("PARPULSE_CHAOS_FIGURES") {
        std::fs::write(&path, serde_json::to_vec_pretty(&summary).unwrap()).expect("writing the figures");
    }
    assert!(landed > 0, "no kill struck while work was waiting: the run is too small or too fast");
    drop(aggregators);
    std::fs::remove_dir_all(&logs).ok();
}
