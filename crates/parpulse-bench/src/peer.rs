//! The peer a user would otherwise deploy: ClickHouse's Kafka engine with a
//! materialized view counting received / online / postal dossiers per unit and day,
//! from the same events as JSONEachRow (ClickHouse 18.16 cannot read Avro).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clickhouse::Row;
use parpulse_clickhouse::{ClickHouseConfig, Store};
use serde::Deserialize;

use crate::workload::Record;

/// Counts per (unit, local day): received, received online (level 3/4), by post.
pub type DayCounts = BTreeMap<(String, u16), [u64; 3]>;

#[derive(Row, Deserialize)]
struct PeerDay {
    agency_code: String,
    day_number: u16,
    received_total: u64,
    online_total: u64,
    postal_total: u64,
}

/// Identifiers the harness made itself go into the DDL (letters, digits, '_', '.', '-').
fn checked(name: &str) -> Result<&str> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        bail!("unexpected identifier {name:?}");
    }
    Ok(name)
}

/// No new row for this long: the engine is stuck (see docs/BENCHMARKS.md).
const STALL: Duration = Duration::from_secs(60);

pub struct PeerRun {
    /// Rows per second from creating the materialized view to the last row counted.
    pub rows_per_sec: f64,
    pub counts: DayCounts,
    /// The ClickHouse server's and the broker's CPU over the same window (the broker
    /// also takes the harness's produce).
    pub services: crate::cpu::ServicesCpu,
}

/// Runs the peer on the empty `topic` into database `db`: once the engine consumes
/// (a warm-up message is counted), `records` are produced, and the peer is timed from
/// the first of them to the last row counted.
///
/// ClickHouse 18.16's engine starts a new consumer group at the end of the topic
/// (librdkafka's default `auto.offset.reset`), so it cannot read events produced
/// before it subscribed: hence subscribe first, then produce. Producing overlaps with
/// consuming, so the figure is the engine's rate as long as it is slower than the
/// producer (the report gives the bare producer's rate to compare).
pub async fn run(
    clickhouse_url: &str,
    kafka: &parpulse_kafka::KafkaConnection,
    db: &str,
    topic: &str,
    records: &[Record],
    services: &crate::cpu::Services,
    profile: Option<&crate::profile::Profile>,
) -> Result<PeerRun> {
    let (db, topic) = (checked(db)?, checked(topic)?);
    if kafka.security.protocol() != parpulse_kafka::security::SecurityProtocol::Plaintext {
        // ClickHouse's Kafka engine takes TLS and SASL from the server's own config, not from here.
        bail!("the peer (ClickHouse's Kafka engine) is measured on a plaintext listener only: --skip peer");
    }
    let brokers = kafka.brokers.as_str();
    if !brokers.bytes().all(|b| b.is_ascii_alphanumeric() || b":.,-_".contains(&b)) {
        bail!("unexpected broker list {brokers:?}");
    }
    let config = ClickHouseConfig::local(clickhouse_url, db);
    let store = Store::connect(&config).await?; // creates the database
    let ddl = |sql: String| {
        let store = store.clone();
        async move { store.client().query(&sql).execute().await.map_err(anyhow::Error::from) }
    };
    ddl(format!(
        "CREATE TABLE peer_src (event_id String, agency_code String, dossier_id String, occurred_at Int64, \
         kind String, channel String, online_level Int32) \
         ENGINE = Kafka('{brokers}', '{topic}', '{db}_group', 'JSONEachRow')"
    ))
    .await?;
    ddl("CREATE TABLE peer_day (agency_code String, day Date, received UInt64, received_online UInt64, \
         received_postal UInt64, events UInt64) ENGINE = SummingMergeTree ORDER BY (agency_code, day)"
        .to_owned())
    .await?;
    ddl(format!(
        "CREATE MATERIALIZED VIEW peer_mv TO {db}.peer_day AS \
         SELECT agency_code, toDate(intDiv(occurred_at + 25200000000, 86400000000)) AS day, \
         countIf(kind = 'received') AS received, \
         countIf(kind = 'received' AND channel = 'online' AND online_level >= 3) AS received_online, \
         countIf(kind = 'received' AND channel = 'postal') AS received_postal, \
         count() AS events \
         FROM {db}.peer_src GROUP BY agency_code, day"
    ))
    .await?;
    let counted = || async {
        Ok::<u64, anyhow::Error>(store.client().query("SELECT sum(events) FROM peer_day").fetch_one().await?)
    };
    let give_up = |why: String| async {
        let _ = Store::drop_database(&config).await;
        anyhow::anyhow!(why)
    };
    let warm_up = Record {
        key: "warm-up".into(),
        value: br#"{"event_id":"","agency_code":"","dossier_id":"","occurred_at":0,"kind":"warm_up","channel":"","online_level":0}"#.to_vec(),
    };
    let deadline = Instant::now() + STALL;
    loop {
        crate::kafka::bare_produce(kafka, topic, std::slice::from_ref(&warm_up)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if counted().await? > 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(give_up(format!("the Kafka engine did not consume a warm-up message within {STALL:?}")).await);
        }
    }
    let n = records.len() as u64 + counted().await?;
    let services_start = services.mark();
    let started = Instant::now();
    let recording = match (profile, services.clickhouse) {
        (Some(profile), Some(pid)) => Some(profile.start(&[("clickhouse-peer", pid)])?),
        _ => None,
    };
    crate::kafka::bare_produce(kafka, topic, records).await?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut last_progress = (0, Instant::now());
    loop {
        let done = counted().await?;
        if done >= n {
            break;
        }
        if done > last_progress.0 {
            last_progress = (done, Instant::now());
        }
        if Instant::now() > deadline || last_progress.1.elapsed() > STALL {
            let why = format!("the Kafka engine counted {done} of {n} events and made no progress for {STALL:?}");
            return Err(give_up(why).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let services = services.since(&services_start);
    if let Some(recording) = recording {
        for file in recording.finish()? {
            println!("profile written to {}", file.display());
        }
    }
    // Stop consuming before reading (and before the database is dropped).
    ddl("DROP TABLE peer_mv".to_owned()).await?;
    let days: Vec<PeerDay> = store
        .client()
        .query(
            "SELECT agency_code, toUInt16(day) AS day_number, sum(received) AS received_total, \
             sum(received_online) AS online_total, sum(received_postal) AS postal_total \
             FROM peer_day GROUP BY agency_code, day",
        )
        .fetch_all()
        .await?;
    let counts = days
        .into_iter()
        .filter(|d| d.received_total > 0)
        .map(|d| ((d.agency_code, d.day_number), [d.received_total, d.online_total, d.postal_total]))
        .collect();
    Store::drop_database(&config).await?;
    Ok(PeerRun { rows_per_sec: records.len() as f64 / seconds, counts, services })
}
