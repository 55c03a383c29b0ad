//! A dossier's lifecycle as the aggregator holds it in memory, for the tens of thousands
//! of dossiers per partition that stay there until the allowed lateness has passed.
//!
//! [`DossierLifecycle`] is written for clarity (nine `Option<i64>` times, two vectors):
//! 208 bytes, most of a dossier's memory. [`PackedLifecycle`] holds the same facts in 88:
//! a time is an `i64` with [`NONE`] for "not yet", the flags are bits, and the supplement
//! times, which most dossiers never have, sit behind one pointer. Judging and applying
//! still use [`DossierLifecycle`]: a dossier is unpacked, changed, packed again (moving
//! its supplement vectors, not copying them). docs/BENCHMARKS.md has the measurement.

use parpulse_core::lifecycle::DossierLifecycle;
use parpulse_core::Channel;

/// "No such time yet". Event times are validated to lie within decades of now, so this
/// one never occurs.
const NONE: i64 = i64::MIN;

/// Indexes into [`PackedLifecycle::times`].
const RECEIVED: usize = 0;
const DUE: usize = 1;
const PROCESSED: usize = 2;
const RETURNED: usize = 3;
const STOPPED: usize = 4;
const WITHDRAWN: usize = 5;
const REFUSED: usize = 6;
const APOLOGY: usize = 7;
const APOLOGY_DUE: usize = 8;

const RESULT_POSTAL: u8 = 1;
const FEE_BEARING: u8 = 2;
const PAID_ONLINE: u8 = 4;
const DIGITIZED: u8 = 8;

/// The facts of a [`DossierLifecycle`], packed (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedLifecycle {
    times: [i64; 9],
    /// `i32::MIN`: none.
    legal_max_days: i32,
    received_channel: Option<Channel>,
    flags: u8,
    /// Supplement requests and completions, when the dossier has any.
    supplements: Option<Box<(Vec<i64>, Vec<i64>)>>,
}

impl Default for PackedLifecycle {
    fn default() -> Self {
        PackedLifecycle::pack(DossierLifecycle::default())
    }
}

fn time(value: Option<i64>) -> i64 {
    value.unwrap_or(NONE)
}

fn maybe(value: i64) -> Option<i64> {
    (value != NONE).then_some(value)
}

impl PackedLifecycle {
    pub fn pack(l: DossierLifecycle) -> Self {
        let mut times = [NONE; 9];
        times[RECEIVED] = time(l.received_at);
        times[DUE] = time(l.due_at);
        times[PROCESSED] = time(l.processed_at);
        times[RETURNED] = time(l.returned_at);
        times[STOPPED] = time(l.stopped_at);
        times[WITHDRAWN] = time(l.withdrawn_at);
        times[REFUSED] = time(l.refused_at);
        times[APOLOGY] = time(l.apology_at);
        times[APOLOGY_DUE] = time(l.apology_due_at);
        let flag = |set: bool, bit: u8| if set { bit } else { 0 };
        let none = l.supplement_requested.is_empty() && l.supplement_received.is_empty();
        PackedLifecycle {
            times,
            legal_max_days: l.legal_max_days.unwrap_or(i32::MIN),
            received_channel: l.received_channel,
            flags: flag(l.result_postal, RESULT_POSTAL)
                | flag(l.fee_bearing, FEE_BEARING)
                | flag(l.paid_online, PAID_ONLINE)
                | flag(l.digitized, DIGITIZED),
            supplements: (!none).then(|| Box::new((l.supplement_requested, l.supplement_received))),
        }
    }

    /// The times of the facts that can end the dossier (the day a judged ending falls on is
    /// one of theirs): processed, returned, stopped, withdrawn, refused, supplement requested.
    pub fn end_times(&self) -> impl Iterator<Item = i64> + '_ {
        let facts = self.times[PROCESSED..=REFUSED].iter().copied().filter(|&t| t != NONE);
        let requested = self.supplements.as_deref().map(|(requested, _)| requested.as_slice()).unwrap_or_default();
        facts.chain(requested.iter().copied())
    }

    /// The lifecycle, leaving this one without its supplement times (pack it back after).
    pub fn take(&mut self) -> DossierLifecycle {
        let (requested, received) = self.supplements.take().map(|both| *both).unwrap_or_default();
        self.unpacked(requested, received)
    }

    /// The lifecycle, this one unchanged (its supplement times copied, if any).
    pub fn unpack(&self) -> DossierLifecycle {
        let (requested, received) = self.supplements.as_deref().cloned().unwrap_or_default();
        self.unpacked(requested, received)
    }

    fn unpacked(&self, supplement_requested: Vec<i64>, supplement_received: Vec<i64>) -> DossierLifecycle {
        let t = &self.times;
        let has = |bit: u8| self.flags & bit != 0;
        DossierLifecycle {
            received_at: maybe(t[RECEIVED]),
            received_channel: self.received_channel,
            due_at: maybe(t[DUE]),
            legal_max_days: (self.legal_max_days != i32::MIN).then_some(self.legal_max_days),
            supplement_requested,
            supplement_received,
            processed_at: maybe(t[PROCESSED]),
            returned_at: maybe(t[RETURNED]),
            stopped_at: maybe(t[STOPPED]),
            withdrawn_at: maybe(t[WITHDRAWN]),
            refused_at: maybe(t[REFUSED]),
            result_postal: has(RESULT_POSTAL),
            apology_at: maybe(t[APOLOGY]),
            apology_due_at: maybe(t[APOLOGY_DUE]),
            fee_bearing: has(FEE_BEARING),
            paid_online: has(PAID_ONLINE),
            digitized: has(DIGITIZED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_fact() -> DossierLifecycle {
        DossierLifecycle {
            received_at: Some(1),
            received_channel: Some(Channel::Postal),
            due_at: Some(2),
            legal_max_days: Some(3),
            supplement_requested: vec![4, 5],
            supplement_received: vec![6],
            processed_at: Some(7),
            returned_at: Some(8),
            stopped_at: Some(9),
            withdrawn_at: Some(10),
            refused_at: Some(11),
            result_postal: true,
            apology_at: Some(12),
            apology_due_at: Some(13),
            fee_bearing: true,
            paid_online: true,
            digitized: true,
        }
    }

    #[test]
    fn packing_keeps_every_fact() {
        let full = every_fact();
        let mut packed = PackedLifecycle::pack(full.clone());
        assert_eq!(packed.unpack(), full);
        assert_eq!(packed.take(), full);
        assert_eq!(packed.take().supplement_requested, Vec::<i64>::new(), "take moved the supplement times out");
        // Each fact on its own: a time or flag packed into the wrong place shows up here.
        let one_at_a_time = [
            DossierLifecycle { received_at: Some(0), ..Default::default() },
            DossierLifecycle { due_at: Some(-1), ..Default::default() },
            DossierLifecycle { processed_at: Some(1), ..Default::default() },
            DossierLifecycle { returned_at: Some(1), ..Default::default() },
            DossierLifecycle { stopped_at: Some(1), ..Default::default() },
            DossierLifecycle { withdrawn_at: Some(1), ..Default::default() },
            DossierLifecycle { refused_at: Some(1), ..Default::default() },
            DossierLifecycle { apology_at: Some(1), ..Default::default() },
            DossierLifecycle { apology_due_at: Some(1), ..Default::default() },
            DossierLifecycle { legal_max_days: Some(0), ..Default::default() },
            DossierLifecycle { received_channel: Some(Channel::InPerson), ..Default::default() },
            DossierLifecycle { supplement_received: vec![1], ..Default::default() },
            DossierLifecycle { result_postal: true, ..Default::default() },
            DossierLifecycle { fee_bearing: true, ..Default::default() },
            DossierLifecycle { paid_online: true, ..Default::default() },
            DossierLifecycle { digitized: true, ..Default::default() },
        ];
        for full in one_at_a_time {
            assert_eq!(PackedLifecycle::pack(full.clone()).unpack(), full);
        }
        assert_eq!(PackedLifecycle::default().unpack(), DossierLifecycle::default());
    }

    #[test]
    fn the_end_times_are_those_of_the_facts_that_can_end_a_dossier() {
        let mut times: Vec<i64> = PackedLifecycle::pack(every_fact()).end_times().collect();
        times.sort_unstable();
        assert_eq!(
            times,
            [4, 5, 7, 8, 9, 10, 11],
            "supplement requests, processed to refused; no reception, due date, completion or apology"
        );
        assert_eq!(PackedLifecycle::default().end_times().count(), 0);
    }

    #[test]
    fn a_packed_lifecycle_is_under_half_the_size() {
        assert!(std::mem::size_of::<PackedLifecycle>() <= 88, "{}", std::mem::size_of::<PackedLifecycle>());
        assert!(std::mem::size_of::<DossierLifecycle>() >= 2 * std::mem::size_of::<PackedLifecycle>());
    }
}
