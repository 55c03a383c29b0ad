//! The `day_count` table: every count of a window, per unit and local day, one row per
//! count: receptions and the facts of the dossiers received that day, and the dossiers
//! that ended that day (`parpulse_core::kpi::DayCounts`). The exporter reads them all in
//! one read (docs/ARCHITECTURE.md, "One source per count").
//!
//! Rows are versioned by the Kafka offset they are complete up to; a bucket's counts
//! are written together, with one version. A reader takes the highest version of each
//! (unit, day, count, partition), then sums partitions. A count is named after its field
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
    /// The rows of one bucket: every count, zeros included (a count that fell to zero
    /// must replace the one stored before).
    pub fn of_bucket<'a>(
        kafka_partition: u32,
        agency_code: &'a str,
        day: LocalDay,
        counts: &'a DayCounts,
        version: u64,
    ) -> impl Iterator<Item = DayCountRow> + 'a {
        counts.named().map(move |(counter, value)| DayCountRow {
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

/// The newest version of every bucket of one Kafka partition (the aggregator's state on
/// assignment). Counts this build does not know (a newer build's) are left out.
pub async fn load_partition(store: &Store, kafka_partition: u32) -> Result<Vec<StoredBucket>> {
    let rows: Vec<DayCountRow> = store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/day_count_load_partition.sql"))
        .bind(kafka_partition)
        .fetch_all()
        .await
        .map_err(store.error("loading a partition's day_count buckets"))?;
    Ok(buckets_of(rows))
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
        let mut rows: Vec<_> = DayCountRow::of_bucket(3, "SNV", day, &counts, 17).collect();
        assert!(rows.iter().all(|r| r.version == 17 && r.kafka_partition == 3 && r.day == day.0));
        assert!(rows.iter().any(|r| r.counter == "late" && r.value == 1));
        assert!(rows.iter().any(|r| r.counter == "early" && r.value == 0), "zeros are written too");
        rows.push(DayCountRow { counter: "a_newer_count".into(), value: 9, ..rows[0].clone() });
        let buckets = buckets_of(rows);
        assert_eq!(
            buckets,
            vec![StoredBucket { agency_code: "SNV".into(), day, counts, version: 17 }],
            "an unknown count is left out"
        );
    }
}
