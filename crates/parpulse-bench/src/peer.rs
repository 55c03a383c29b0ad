//! The peer a user would otherwise deploy: ClickHouse's Kafka engine with a
//! materialized view counting received / online / postal dossiers per unit and day,
//! from the same events as JSONEachRow (ClickHouse 18.16 cannot read Avro).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clickhouse_http::Http;

use crate::workload::Record;

/// Counts per (unit, local day): received, received online (level 3/4), by post.
pub type DayCounts = BTreeMap<(String, u16), [u64; 3]>;

/// Minimal ClickHouse HTTP client for DDL with identifiers the harness made itself
/// (database, topic and group names of letters, digits, '_', '.', '-').
mod clickhouse_http {
    use anyhow::{bail, Result};

    pub struct Http {
        pub client: reqwest::Client,
        pub url: String,
    }

    impl Http {
        pub async fn run(&self, sql: &str) -> Result<String> {
            let response = self.client.post(&self.url).body(sql.to_owned()).send().await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("ClickHouse: {text} (in {sql})");
            }
            Ok(text)
        }
    }
}

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
pub async fn run(clickhouse_url: &str, brokers: &str, db: &str, topic: &str, records: &[Record]) -> Result<PeerRun> {
    let n = records.len() as u64 + 1;
    let http = Http { client: reqwest::Client::new(), url: clickhouse_url.to_owned() };
    let (db, topic) = (checked(db)?, checked(topic)?);
    if !brokers.bytes().all(|b| b.is_ascii_alphanumeric() || b":.,-_".contains(&b)) {
        bail!("unexpected broker list {brokers:?}");
    }
    let group = format!("{db}_group");
    http.run(&format!("CREATE DATABASE IF NOT EXISTS {db}")).await?;
    http.run(&format!(
        "CREATE TABLE {db}.peer_src (event_id String, agency_code String, dossier_id String, occurred_at Int64, \
         kind String, channel String, online_level Int32) \
         ENGINE = Kafka('{brokers}', '{topic}', '{group}', 'JSONEachRow')"
    ))
    .await?;
    http.run(&format!(
        "CREATE TABLE {db}.peer_day (agency_code String, day Date, received UInt64, received_online UInt64, \
         received_postal UInt64, events UInt64) ENGINE = SummingMergeTree ORDER BY (agency_code, day)"
    ))
    .await?;
    http.run(&format!(
        "CREATE MATERIALIZED VIEW {db}.peer_mv TO {db}.peer_day AS \
         SELECT agency_code, toDate(intDiv(occurred_at + 25200000000, 86400000000)) AS day, \
         countIf(kind = 'received') AS received, \
         countIf(kind = 'received' AND channel = 'online' AND online_level >= 3) AS received_online, \
         countIf(kind = 'received' AND channel = 'postal') AS received_postal, \
         count() AS events \
         FROM {db}.peer_src GROUP BY agency_code, day"
    ))
    .await?;
    let warm_up = Record {
        key: "warm-up".into(),
        value: br#"{"event_id":"","agency_code":"","dossier_id":"","occurred_at":0,"kind":"warm_up","channel":"","online_level":0}"#.to_vec(),
    };
    let deadline = Instant::now() + STALL;
    loop {
        crate::kafka::bare_produce(brokers, topic, std::slice::from_ref(&warm_up)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let text = http.run(&format!("SELECT sum(events) FROM {db}.peer_day")).await?;
        if text.trim().parse::<u64>().unwrap_or(0) > 0 {
            break;
        }
        if Instant::now() > deadline {
            let _ = http.run(&format!("DROP DATABASE {db}")).await;
            bail!("the Kafka engine did not consume a warm-up message within {STALL:?}");
        }
    }
    let warm_ups: u64 = http.run(&format!("SELECT sum(events) FROM {db}.peer_day")).await?.trim().parse()?;
    let n = n - 1 + warm_ups;
    let started = Instant::now();
    crate::kafka::bare_produce(brokers, topic, records).await?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut last_progress = (0, Instant::now());
    loop {
        let text = http.run(&format!("SELECT sum(events) FROM {db}.peer_day")).await?;
        let done: u64 = text.trim().parse().unwrap_or(0);
        if done >= n {
            break;
        }
        if done > last_progress.0 {
            last_progress = (done, Instant::now());
        }
        if Instant::now() > deadline || last_progress.1.elapsed() > STALL {
            let _ = http.run(&format!("DROP DATABASE {db}")).await;
            bail!("the Kafka engine counted {done} of {n} events and made no progress for {STALL:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    // Stop consuming before reading (and before the database is dropped).
    http.run(&format!("DROP TABLE {db}.peer_mv")).await?;
    let text = http
        .run(&format!(
            "SELECT agency_code, toUInt16(day), sum(received), sum(received_online), sum(received_postal) \
             FROM {db}.peer_day GROUP BY agency_code, day FORMAT TabSeparated"
        ))
        .await?;
    let mut counts = DayCounts::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let n = |i: usize| -> Result<u64> { f.get(i).context("column")?.parse().context("number") };
        let received = n(2)?;
        if received > 0 {
            counts.insert((f[0].to_owned(), n(1)? as u16), [received, n(3)?, n(4)?]);
        }
    }
    http.run(&format!("DROP DATABASE {db}")).await?;
    Ok(PeerRun { rows_per_sec: records.len() as f64 / seconds, counts })
}
