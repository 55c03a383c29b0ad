//! Per-Kafka-partition KPI state: the day buckets of the units whose events the
//! partition carries (the message key is the agency, so a unit lives in one
//! partition).
//!
//! Every bucket remembers the offset it is complete up to (`version`, exclusive).
//! After a restart, events the bucket already counts are skipped: that is what
//! makes replay from the checkpoint exact even if some bucket rows were written
//! past the checkpoint before a crash.

use std::collections::{HashMap, HashSet};

use parpulse_clickhouse::dossier_day::DossierDayRow;
use parpulse_core::kpi::DossierDayCounts;
use parpulse_core::{DossierEvent, LocalDay};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub agency_code: String,
    pub day: LocalDay,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    counts: DossierDayCounts,
    /// Events of this partition with an offset below this are already counted.
    complete_through: i64,
}

#[derive(Debug)]
pub struct PartitionState {
    partition: u32,
    buckets: HashMap<BucketKey, Bucket>,
    dirty: HashSet<BucketKey>,
    next_offset: i64,
    checkpointed_offset: i64,
}

impl PartitionState {
    /// State as stored: the checkpoint's next offset and the newest bucket rows.
    pub fn load(partition: u32, next_offset: i64, rows: &[DossierDayRow]) -> Self {
        let buckets = rows
            .iter()
            .map(|row| {
                let key = BucketKey { agency_code: row.agency_code.clone(), day: LocalDay(row.day) };
                let complete_through = i64::try_from(row.version).unwrap_or(i64::MAX);
                (key, Bucket { counts: row.counts(), complete_through })
            })
            .collect();
        Self { partition, buckets, dirty: HashSet::new(), next_offset, checkpointed_offset: next_offset }
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The first offset not yet applied.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Whether anything was consumed since the last checkpoint.
    pub fn has_progress(&self) -> bool {
        self.next_offset != self.checkpointed_offset
    }

    /// Applies the event at `offset`. Offsets must come in increasing order.
    pub fn apply(&mut self, offset: i64, event: &DossierEvent) {
        self.skip(offset);
        let key = BucketKey { agency_code: event.agency_code.clone(), day: LocalDay::of_micros(event.occurred_at) };
        let bucket = self.buckets.entry(key.clone()).or_default();
        if offset < bucket.complete_through {
            return; // already counted before a restart
        }
        if bucket.counts.apply(event) {
            self.dirty.insert(key);
        }
    }

    /// Moves past an offset without counting anything (undecodable messages).
    pub fn skip(&mut self, offset: i64) {
        self.next_offset = self.next_offset.max(offset + 1);
    }

    /// Rows for the changed buckets, versioned with the current next offset.
    /// Call [`PartitionState::checkpoint_written`] once they and the checkpoint are stored.
    pub fn pending_rows(&self) -> Vec<DossierDayRow> {
        let version = u64::try_from(self.next_offset).unwrap_or(0);
        let mut keys: Vec<_> = self.dirty.iter().collect();
        keys.sort();
        keys.into_iter()
            .map(|key| {
                let counts = self.buckets[key].counts;
                DossierDayRow {
                    kafka_partition: self.partition,
                    agency_code: key.agency_code.clone(),
                    day: key.day.0,
                    received: counts.received,
                    received_online: counts.received_online,
                    received_postal: counts.received_postal,
                    version,
                }
            })
            .collect()
    }

    /// Marks everything up to `next_offset` as stored.
    pub fn checkpoint_written(&mut self, next_offset: i64) {
        self.dirty.clear();
        self.checkpointed_offset = next_offset;
    }

    pub fn counts(&self, agency_code: &str, day: LocalDay) -> Option<DossierDayCounts> {
        self.buckets.get(&BucketKey { agency_code: agency_code.to_owned(), day }).map(|b| b.counts)
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_core::{Channel, DossierEventKind};

    const DAY: LocalDay = LocalDay(18228);

    fn received(agency: &str, channel: Channel) -> DossierEvent {
        DossierEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: agency.into(),
            occurred_at: DAY.start_micros() + 3_600_000_000,
            recorded_at: 0,
            source: "test".into(),
            dossier_id: "D".into(),
            procedure_code: "P".into(),
            kind: DossierEventKind::Received,
            channel,
            online_level: 4,
            result_channel: None,
            due_at: Some(DAY.start_micros() + 864_000_000_000),
            legal_max_days: None,
            fee_bearing: false,
            digitized: false,
        }
    }

    #[test]
    fn received_events_land_in_their_local_day_bucket() {
        let mut state = PartitionState::load(0, 0, &[]);
        state.apply(0, &received("SNV", Channel::Online));
        state.apply(1, &received("SNV", Channel::InPerson));
        let counts = state.counts("SNV", DAY).unwrap();
        assert_eq!((counts.received, counts.received_online), (2, 1));
        assert_eq!(state.next_offset(), 2);
    }

    #[test]
    fn pending_rows_carry_the_next_offset_as_version_and_clear_after_checkpoint() {
        let mut state = PartitionState::load(3, 0, &[]);
        state.apply(0, &received("SNV", Channel::Online));
        let rows = state.pending_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].kafka_partition, rows[0].version, rows[0].received), (3, 1, 1));
        state.checkpoint_written(1);
        assert!(state.pending_rows().is_empty());
        assert!(!state.has_progress());
    }

    #[test]
    fn replay_after_restart_skips_events_a_bucket_already_counts() {
        // Before the crash: offsets 0..4 applied and the bucket row written at version 4,
        // but the checkpoint that would say "next offset 4" was only at 2.
        let mut before = PartitionState::load(0, 0, &[]);
        for offset in 0..4 {
            before.apply(offset, &received("SNV", Channel::Online));
        }
        let rows = before.pending_rows();
        // After the restart, replay from the checkpoint at offset 2.
        let mut after = PartitionState::load(0, 2, &rows);
        for offset in 2..6 {
            after.apply(offset, &received("SNV", Channel::Online));
        }
        assert_eq!(after.counts("SNV", DAY).unwrap().received, 6);
    }

    #[test]
    fn skipped_offsets_still_advance_the_position() {
        let mut state = PartitionState::load(0, 10, &[]);
        state.skip(10);
        assert_eq!(state.next_offset(), 11);
        assert!(state.has_progress());
    }
}
