//! The `day_count` table: every count of a window, per unit and local day, one row per
//! count: receptions and the facts of the dossiers received that day, and the dossiers
//! that ended that day (`parpulse_core::kpi::DayCounts`). The exporter reads them all in
//! one read (docs/ARCHITECTURE.md, "One source per count").
//!
//! Rows are versioned by the Kafka offset they are complete up to. When a bucket
//! changed, a checkpoint writes the counts that differ from what is stored (a count that
//! fell to zero too), all with the checkpoint's version: the stored counts are then the
//! bucket's, and the bucket is complete up to the newest version among them. A reader
//! takes the highest version of each (unit, day, count, partition), then sums partitions. A count is named after its field
//! in `parpulse_core::kpi`, so a new count needs no change here.

use std::collections::BTreeMap;

use clickhouse::Row;
use parpulse_core::kpi::DayCounts;
use parpulse_core::LocalDay;
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

/// One count of one bucket as stored. `day` is a ClickHouse `Date` (days since 1970-01-01).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DayCountRow {
    pub kafka_partition: u32,
    pub agency_code: String,
    pub day: u16,
    pub counter: String,
    pub value: u64,
    pub version: u64,
}

/// A bucket of one partition: its counts and the version they are complete up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBucket {
    pub agency_code: String,
    pub day: LocalDay,
    pub counts: DayCounts,
    pub version: u64,
}

impl DayCountRow {
    /// The rows of one bucket: the counts that differ from `stored`, zeros included (a
    /// count that fell to zero must replace the one stored before).
    pub fn of_bucket<'a>(
        kafka_partition: u32,
        agency_code: &'a str,
        day: LocalDay,
        (counts, stored): (&'a DayCounts, &'a DayCounts),
        version: u64,
    ) -> impl Iterator<Item = DayCountRow> + 'a {
        let changed = counts.named().zip(stored.named()).filter(|((_, now), (_, then))| now != then);
        changed.map(move |((counter, value), _)| DayCountRow {
            kafka_partition,
            agency_code: agency_code.to_owned(),
            day: day.0,
            counter: counter.to_owned(),
            value,
            version,
        })
    }
}

/// Latest counts of one unit on one day, all partitions summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitDay {
    pub agency_code: String,
    pub day: u16,
    pub counts: DayCounts,
}

impl UnitDay {
    pub fn day(&self) -> LocalDay {
        LocalDay(self.day)
    }

    /// A unit's receptions of one day (tests and examples).
    pub fn receptions(agency_code: &str, day: LocalDay, received: u64, online: u64, postal: u64) -> UnitDay {
        let mut counts = DayCounts::default();
        counts.receptions.received = received;
        counts.receptions.received_online = online;
        counts.receptions.received_postal = postal;
        counts.service.received = received;
        UnitDay { agency_code: agency_code.to_owned(), day: day.0, counts }
    }
}

/// One summed count as read.
#[derive(Debug, Clone, Row, Deserialize)]
struct UnitDayCount {
    agency_code: String,
    day: u16,
    counter: String,
    value: u64,
}

/// Inserts bucket rows in one statement.
pub async fn write(store: &Store, rows: &[DayCountRow]) -> Result<()> {
    store.insert_rows("day_count", rows, "writing day_count rows").await
}

/// The newest version of every bucket of one Kafka partition from `from` on (the
/// aggregator's state on assignment; an older bucket is fetched with [`load_bucket`] when
/// an event needs it). Counts this build does not know (a newer build's) are left out.
pub async fn load_partition(store: &Store, kafka_partition: u32, from: LocalDay) -> Result<Vec<StoredBucket>> {
    let rows: Vec<DayCountRow> = store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/day_count_load_partition.sql"))
        .bind(kafka_partition)
        .bind(from.to_string())
        .fetch_all()
        .await
        .map_err(store.error("loading a partition's day_count buckets"))?;
    Ok(buckets_of(rows))
}

/// The newest version of one bucket of one Kafka partition, if stored (the aggregator
/// fetches a bucket it no longer keeps in memory; read from every live replica on a
/// cluster, as a dossier is: [`crate::cluster::from_every_replica`]).
pub async fn load_bucket(
    store: &Store,
    kafka_partition: u32,
    agency_code: &str,
    day: LocalDay,
) -> Result<Option<StoredBucket>> {
    let sql = include_str!("../../../schemas/clickhouse/queries/day_count_load_bucket.sql");
    let sql = crate::cluster::from_every_replica(store, sql, "day_count").await?;
    let rows: Vec<DayCountRow> = store
        .client()
        .query(&sql)
        .bind(kafka_partition)
        .bind(agency_code)
        .bind(day.to_string())
        .fetch_all()
        .await
        .map_err(store.error("loading one day_count bucket"))?;
    Ok(buckets_of(rows).pop())
}

/// Groups a partition's count rows into buckets; a bucket is complete up to the newest
/// version among its counts (they are written together).
pub fn buckets_of(mut rows: Vec<DayCountRow>) -> Vec<StoredBucket> {
    // The newest version of a count wins, whatever order the rows come in.
    rows.sort_by_key(|row| row.version);
    let mut buckets: BTreeMap<(String, u16), StoredBucket> = BTreeMap::new();
    for row in rows {
        let bucket = buckets.entry((row.agency_code.clone(), row.day)).or_insert_with(|| StoredBucket {
            agency_code: row.agency_code,
            day: LocalDay(row.day),
            counts: DayCounts::default(),
            version: 0,
        });
        bucket.counts.set_named(&row.counter, row.value);
        bucket.version = bucket.version.max(row.version);
    }
    buckets.into_values().collect()
}

/// Latest counts per unit and day for days in `[from, to]`, partitions summed.
pub async fn read_days(store: &Store, from: LocalDay, to: LocalDay) -> Result<Vec<UnitDay>> {
    let rows: Vec<UnitDayCount> = store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/day_count_read_days.sql"))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all()
        .await
        .map_err(store.error("reading day_count"))?;
    let mut days: BTreeMap<(String, u16), UnitDay> = BTreeMap::new();
    for row in rows {
        let day = days.entry((row.agency_code.clone(), row.day)).or_insert_with(|| UnitDay {
            agency_code: row.agency_code,
            day: row.day,
            counts: DayCounts::default(),
        });
        day.counts.set_named(&row.counter, row.value);
    }
    Ok(days.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_written_as_rows_reads_back_whole() {
        let mut counts = DayCounts::default();
        counts.receptions.received = 4;
        counts.service.received = 4;
        counts.service.digitized = 2;
        counts.resolved.late = 1;
        let day = LocalDay(18_228);
        let mut rows: Vec<_> = DayCountRow::of_bucket(3, "SNV", day, (&counts, &DayCounts::default()), 17).collect();
        assert!(rows.iter().all(|r| r.version == 17 && r.kafka_partition == 3 && r.day == day.0));
        let names: Vec<_> = rows.iter().map(|r| r.counter.as_str()).collect();
        assert_eq!(names, ["received", "digitized", "late"], "the counts that differ from the stored ones");
        // Later the late dossier moves to another day and one more is received.
        let mut later = counts;
        later.resolved.late = 0;
        later.receptions.received = 5;
        later.service.received = 5;
        let changed: Vec<_> = DayCountRow::of_bucket(3, "SNV", day, (&later, &counts), 20).collect();
        let changed_names: Vec<_> = changed.iter().map(|r| (r.counter.as_str(), r.value)).collect();
        assert_eq!(changed_names, [("received", 5), ("late", 0)], "a count that fell to zero is written");
        rows.extend(changed);
        rows.push(DayCountRow { counter: "a_newer_count".into(), value: 9, ..rows[0].clone() });
        rows.reverse(); // whatever order the reader returns
        let buckets = buckets_of(rows);
        assert_eq!(
            buckets,
            vec![StoredBucket { agency_code: "SNV".into(), day, counts: later, version: 20 }],
            "the newest of each count, complete up to the newest version; an unknown count is left out"
        );
    }
}
