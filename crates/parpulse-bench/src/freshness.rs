//! Freshness: at a fixed produce rate, the time from producing an event to the
//! exporter's /metrics showing its KPI change.
//!
//! Background load: simulated dossier events (all units but the marker unit) at the
//! given rate. Every 200 ms a marker: a new dossier received now at the marker unit.
//! The exporter's `parpulse_dossiers_received` of that unit for today counts the
//! markers seen; each marker's latency is the first time the count covers it minus
//! the time it was handed to the producer.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use parpulse_core::avro::AvroCodec;
use parpulse_core::time::now_micros;
use parpulse_core::{Channel, DossierEvent, DossierEventKind, Event};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::process::{free_port, Deployment};
use crate::report::median;

const MARKER_UNIT: &str = "SNV";
const MARKER_EVERY: Duration = Duration::from_millis(200);

pub struct Freshness {
    pub p50: f64,
    pub p99: f64,
    pub markers: usize,
    pub achieved_rate: f64,
    /// Where the time goes, from the processes' own metrics over the whole run: the
    /// aggregator's mean checkpoint write and each table's mean insert (seconds), and the
    /// exporter's refreshes per second.
    pub checkpoint_mean: f64,
    pub insert_means: Vec<(String, f64)>,
    pub refreshes_per_sec: f64,
}

fn marker(i: usize) -> Event {
    let now = now_micros();
    Event::Dossier(DossierEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        agency_code: MARKER_UNIT.into(),
        occurred_at: now,
        recorded_at: now,
        source: "bench".into(),
        dossier_id: format!("MARKER-{i}-{}", uuid::Uuid::new_v4().simple()),
        procedure_code: "1.000001".into(),
        kind: DossierEventKind::Received,
        channel: Channel::Online,
        online_level: 4,
        result_channel: None,
        due_at: Some(now + 10 * 86_400_000_000),
        legal_max_days: None,
        fee_bearing: false,
        digitized: true,
        new_due_at: None,
    })
}

async fn markers_seen(client: &reqwest::Client, url: &str) -> Option<usize> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    let samples = parpulse_prom_text::parse(&text);
    let want = [("scope", "unit"), ("unit", MARKER_UNIT), ("window", "day")];
    parpulse_prom_text::find(&samples, "parpulse_dossiers_received", &want).map(|v| v as usize)
}

pub async fn run(deployment: &Deployment, rate: u64, seconds: u64) -> Result<Freshness> {
    deployment.migrate()?;
    let total = (rate * seconds) as usize;
    let background = {
        let events: Vec<Event> = crate::workload::dossier_events(7, total * 11 / 10, 7)
            .into_iter()
            .filter(|e| e.agency_code() != MARKER_UNIT)
            .take(total)
            .collect();
        crate::workload::avro_records(&events)
    };
    let (aggregator_port, exporter_port) = (free_port(), free_port());
    let aggregator_metrics = format!("http://127.0.0.1:{aggregator_port}/metrics");
    let _aggregator = deployment.spawn(&[
        "aggregate",
        "--listen",
        &format!("127.0.0.1:{aggregator_port}"),
        "--checkpoint-interval-ms",
        "100",
    ])?;
    let _exporter =
        deployment.spawn(&["export", "--listen", &format!("127.0.0.1:{exporter_port}"), "--refresh-ms", "100"])?;
    let metrics = format!("http://127.0.0.1:{exporter_port}/metrics");
    let client = reqwest::Client::new();
    let producer: FutureProducer = deployment
        .kafka
        .client_config()
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .context("producer")?;
    let topic = deployment.topics().dossier.clone();
    // The exporter is up and the first marker counted before the load starts.
    let codec = AvroCodec::new();
    let produce_marker = |i: usize| -> Result<()> {
        let mut value = Vec::new();
        codec.encode_event(&marker(i), &mut value)?;
        producer
            .send_result(FutureRecord::to(&topic).key(MARKER_UNIT).payload(&value))
            .map_err(|(e, _)| e)
            .context("producing a marker")?;
        Ok(())
    };
    produce_marker(0)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while markers_seen(&client, &metrics).await.unwrap_or(0) < 1 {
        if Instant::now() > deadline {
            bail!("the first marker never reached /metrics");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut sent: Vec<Instant> = vec![Instant::now()];
    let mut latencies: Vec<f64> = Vec::new();
    let seen_task = {
        let (client, metrics) = (client.clone(), metrics.clone());
        let (tx, rx) = tokio::sync::watch::channel((1usize, Instant::now()));
        let handle = tokio::spawn(async move {
            let mut last = 1;
            loop {
                if let Some(seen) = markers_seen(&client, &metrics).await {
                    if seen > last {
                        last = seen;
                        if tx.send((seen, Instant::now())).is_err() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        (handle, rx)
    };
    let (poller, mut seen_rx) = seen_task;
    let mut accounted = 1usize;
    let started = Instant::now();
    let tick = Duration::from_millis(10);
    let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0) as usize;
    let mut produced = 0usize;
    let mut next_marker = started + MARKER_EVERY;
    while produced < background.len() {
        let due = ((started.elapsed().as_secs_f64() / tick.as_secs_f64()) as usize + 1) * per_tick;
        while produced < due.min(background.len()) {
            let record = &background[produced];
            match producer.send_result(FutureRecord::to(&topic).key(&record.key).payload(&record.value)) {
                Ok(_) => produced += 1,
                Err(_) => {
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
        if Instant::now() >= next_marker {
            produce_marker(sent.len())?;
            sent.push(Instant::now());
            next_marker += MARKER_EVERY;
        }
        if seen_rx.has_changed().unwrap_or(false) {
            let (seen, at) = *seen_rx.borrow_and_update();
            account(&mut accounted, seen, at, &sent, &mut latencies);
        }
        producer.poll(Duration::ZERO);
        tokio::time::sleep(tick.saturating_sub(Duration::from_micros(500))).await;
    }
    let achieved_rate = produced as f64 / started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    while accounted < sent.len() && Instant::now() < deadline {
        if tokio::time::timeout(Duration::from_secs(1), seen_rx.changed()).await.is_ok() {
            let (seen, at) = *seen_rx.borrow_and_update();
            account(&mut accounted, seen, at, &sent, &mut latencies);
        }
    }
    poller.abort();
    let refreshes = crate::process::scrape(&client, &metrics, "parpulse_exporter_refreshes_total").await.unwrap_or(0.0);
    let refreshes_per_sec = refreshes / started.elapsed().as_secs_f64();
    let (checkpoint_mean, insert_means) = checkpoint_times(&client, &aggregator_metrics).await;
    let missing = sent.len() - accounted;
    if missing > 0 {
        bail!("{missing} markers never reached /metrics within 2 minutes after the load");
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let p99 = latencies[((latencies.len() as f64 * 0.99).ceil() as usize).saturating_sub(1).min(latencies.len() - 1)];
    Ok(Freshness {
        p50: median(&latencies),
        p99,
        markers: latencies.len(),
        achieved_rate,
        checkpoint_mean,
        insert_means,
        refreshes_per_sec,
    })
}

/// The aggregator's mean checkpoint write, and each table's mean insert, in seconds.
async fn checkpoint_times(client: &reqwest::Client, url: &str) -> (f64, Vec<(String, f64)>) {
    let Some(text) = async { client.get(url).send().await.ok()?.text().await.ok() }.await else {
        return (f64::NAN, Vec::new());
    };
    let samples = parpulse_prom_text::parse(&text);
    let mean = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let sum = parpulse_prom_text::find(&samples, &format!("{name}_sum"), labels);
        let count = parpulse_prom_text::find(&samples, &format!("{name}_count"), labels);
        match (sum, count) {
            (Some(sum), Some(count)) if count > 0.0 => sum / count,
            _ => f64::NAN,
        }
    };
    let checkpoint = mean("parpulse_aggregator_checkpoint_duration_seconds", &[]);
    let inserts = ["day_count", "dossier_state", "procedure_day", "event_log", "checkpoints"]
        .into_iter()
        .map(|table| {
            (table.to_owned(), mean("parpulse_aggregator_clickhouse_insert_duration_seconds", &[("table", table)]))
        })
        .collect();
    (checkpoint, inserts)
}

/// Records the latency of every marker the count `seen` (observed `at`) newly covers.
fn account(accounted: &mut usize, seen: usize, at: Instant, sent: &[Instant], latencies: &mut Vec<f64>) {
    while *accounted < seen.min(sent.len()) {
        latencies.push((at - sent[*accounted]).as_secs_f64());
        *accounted += 1;
    }
}
