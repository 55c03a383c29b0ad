//! What one dossier adds to the day buckets (`day_count`, docs/KPIS.md): its
//! Decision 766 service facts on the day it was received, and its ending (judged by
//! the lateness rules) on the day it ended. The counts of a window are the sums of
//! these, so every figure of a window is read from one table in one read.
//!
//! A dossier's contribution is a pure function of its lifecycle and its counted
//! reception. When an event changes it, the state takes the old contribution out of
//! its buckets and puts the new one in (`PartitionState::shift_contribution`), per bucket only if
//! the stored bucket does not reflect the event yet: the same exactly-once rule as a
//! reception (state.rs). Kept as bits (8 bytes a dossier), not as counts, because
//! every dossier in memory holds one.

use parpulse_clickhouse::dossier_state::{Judged, OUTCOME_EARLY, OUTCOME_LATE, OUTCOME_ON_TIME, OUTCOME_REFUSED};
use parpulse_core::kpi::{DayCounts, ResolvedCounts, ServiceCounts};
use parpulse_core::lifecycle::{DossierLifecycle, EndKind};
use parpulse_core::{Channel, LocalDay};

// Reception facts (on the reception day).
const RECEIVED: u8 = 1;
const FEE_BEARING: u8 = 1 << 1;
const PAID_ONLINE: u8 = 1 << 2;
const DIGITIZED: u8 = 1 << 3;
const RESULT_POSTAL: u8 = 1 << 4;
const POSTAL_USER: u8 = 1 << 5;

// Ending facts (on the end day).
const RESOLVED: u16 = 1;
const ON_TIME: u16 = 1 << 1;
const EARLY: u16 = 1 << 2;
const LATE: u16 = 1 << 3;
const LATE_WITH_APOLOGY: u16 = 1 << 4;
const REFUSED: u16 = 1 << 5;
const RETURNED: u16 = 1 << 6;
const RETURNED_POSTAL: u16 = 1 << 7;
const WITHDRAWN: u16 = 1 << 8;
const STOPPED: u16 = 1 << 9;
const LATE_WITHOUT_APOLOGY: u16 = 1 << 10;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contribution {
    /// A `LocalDay` (u16, as stored): the struct stays 8 bytes.
    reception_day: u16,
    /// 0: not counted as received (no reception yet, or refused before one).
    reception: u8,
    end_day: u16,
    /// 0: not ended (open, or never received).
    end: u16,
}

/// Whether a flag is set, as a count.
fn bit<T: Into<u64> + std::ops::BitAnd<Output = T> + PartialEq + Default + Copy>(flags: T, flag: T) -> u64 {
    u64::from(flags & flag != T::default())
}

impl Contribution {
    /// The contribution of a dossier with `lifecycle`, counted as received on `received`
    /// (None: no counted reception). Judged with every fact the lifecycle holds, as its
    /// row is (a fact is never in the future of the dossier's newest event).
    pub fn of(lifecycle: &DossierLifecycle, received: Option<LocalDay>, last_event_at: i64) -> Contribution {
        let mut contribution = Contribution::default();
        if let Some(day) = received {
            let l = lifecycle;
            contribution.reception_day = day.0;
            contribution.reception = RECEIVED
                | if l.fee_bearing { FEE_BEARING } else { 0 }
                | if l.fee_bearing && l.paid_online { PAID_ONLINE } else { 0 }
                | if l.digitized { DIGITIZED } else { 0 }
                | if l.result_postal { RESULT_POSTAL } else { 0 }
                | if l.result_postal || l.received_channel == Some(Channel::Postal) { POSTAL_USER } else { 0 };
        }
        if may_have_ended(lifecycle) {
            let judged = Judged::of(lifecycle, last_event_at, parpulse_core::lifecycle::active_calendar());
            contribution.end_day = judged.end_day;
            contribution.end = ending(lifecycle, &judged);
        }
        contribution
    }

    /// The reception day and its facts, if counted as received.
    pub fn reception(&self) -> Option<(LocalDay, ServiceCounts)> {
        let f = self.reception;
        (f != 0).then(|| {
            let counts = ServiceCounts {
                received: bit(f, RECEIVED),
                fee_bearing: bit(f, FEE_BEARING),
                paid_online: bit(f, PAID_ONLINE),
                digitized: bit(f, DIGITIZED),
                result_postal: bit(f, RESULT_POSTAL),
                postal_users: bit(f, POSTAL_USER),
            };
            (LocalDay(self.reception_day), counts)
        })
    }

    /// Its two parts as day-bucket counts: the reception facts on the reception day, the
    /// ending on the end day (None where the dossier has none).
    pub fn parts(&self) -> [Option<(LocalDay, DayCounts)>; 2] {
        let reception = self.reception().map(|(day, service)| (day, DayCounts { service, ..Default::default() }));
        let end = self.end().map(|(day, resolved)| (day, DayCounts { resolved, ..Default::default() }));
        [reception, end]
    }

    /// The days of its two parts (None where the dossier has none), without their counts.
    pub fn days(&self) -> [Option<LocalDay>; 2] {
        [
            (self.reception != 0).then_some(LocalDay(self.reception_day)),
            (self.end != 0).then_some(LocalDay(self.end_day)),
        ]
    }

    /// The end day and the ending's counts, if ended.
    pub fn end(&self) -> Option<(LocalDay, ResolvedCounts)> {
        let f = self.end;
        (f != 0).then(|| {
            let counts = ResolvedCounts {
                resolved: bit(f, RESOLVED),
                on_time: bit(f, ON_TIME),
                early: bit(f, EARLY),
                late: bit(f, LATE),
                late_with_apology: bit(f, LATE_WITH_APOLOGY),
                late_without_apology: bit(f, LATE_WITHOUT_APOLOGY),
                refused: bit(f, REFUSED),
                returned: bit(f, RETURNED),
                returned_postal: bit(f, RETURNED_POSTAL),
                withdrawn: bit(f, WITHDRAWN),
                stopped: bit(f, STOPPED),
            };
            (LocalDay(self.end_day), counts)
        })
    }
}

/// Whether the lifecycle holds a fact that can end the dossier (judging costs a
/// deadline computation: most events of an open dossier skip it).
fn may_have_ended(l: &DossierLifecycle) -> bool {
    l.refused_at.is_some()
        || l.processed_at.is_some()
        || l.returned_at.is_some()
        || l.stopped_at.is_some()
        || l.withdrawn_at.is_some()
        || !l.supplement_requested.is_empty()
}

/// The ending's flags (docs/KPIS.md, "Lateness rules"): resolved means processed or
/// otherwise ended, never refused; a late dossier counts as apologised for only with a
/// timely letter; returned (and by post) and withdrawn or stopped count among the resolved.
fn ending(l: &DossierLifecycle, judged: &Judged) -> u16 {
    let resolved = matches!(judged.outcome, OUTCOME_ON_TIME | OUTCOME_LATE | OUTCOME_EARLY);
    if !resolved {
        return if judged.outcome == OUTCOME_REFUSED { REFUSED } else { 0 };
    }
    let returned = l.returned_at.is_some();
    let flag = |on: bool, flag: u16| if on { flag } else { 0 };
    RESOLVED
        | flag(judged.outcome != OUTCOME_LATE, ON_TIME)
        | flag(judged.outcome == OUTCOME_EARLY, EARLY)
        | flag(judged.outcome == OUTCOME_LATE, LATE)
        | flag(judged.outcome == OUTCOME_LATE && judged.apology_timing == 1, LATE_WITH_APOLOGY)
        | flag(judged.outcome == OUTCOME_LATE && judged.apology_timing == 0, LATE_WITHOUT_APOLOGY)
        | flag(returned, RETURNED)
        | flag(returned && l.result_postal, RETURNED_POSTAL)
        | flag(judged.end_kind == EndKind::Withdrawn.code(), WITHDRAWN)
        | flag(judged.end_kind == EndKind::Stopped.code(), STOPPED)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2019-11-28 00:00 UTC = Thursday 07:00 in Hà Nội.
    const T0: i64 = 1_574_899_200_000_000;
    const HOUR: i64 = 3_600_000_000;
    const DAY: i64 = 24 * HOUR;

    fn received(days: i32) -> DossierLifecycle {
        DossierLifecycle { received_at: Some(T0), legal_max_days: Some(days), ..Default::default() }
    }

    #[test]
    fn an_open_dossier_adds_its_reception_facts_only() {
        let mut l = received(5);
        l.fee_bearing = true;
        l.digitized = true;
        l.received_channel = Some(Channel::Postal);
        let c = Contribution::of(&l, Some(LocalDay::of_micros(T0)), T0);
        let (day, facts) = c.reception().expect("received");
        assert_eq!(day, LocalDay::of_micros(T0));
        assert_eq!(
            facts,
            ServiceCounts {
                received: 1,
                fee_bearing: 1,
                paid_online: 0,
                digitized: 1,
                result_postal: 0,
                postal_users: 1
            }
        );
        assert_eq!(c.end(), None);
    }

    #[test]
    fn paid_online_counts_only_for_fee_bearing_dossiers() {
        let mut l = received(5);
        l.paid_online = true;
        let c = Contribution::of(&l, Some(LocalDay::of_micros(T0)), T0);
        assert_eq!(c.reception().unwrap().1.paid_online, 0);
        l.fee_bearing = true;
        let c = Contribution::of(&l, Some(LocalDay::of_micros(T0)), T0);
        assert_eq!(c.reception().unwrap().1.paid_online, 1);
    }

    #[test]
    fn no_counted_reception_adds_no_reception_facts() {
        let mut l = received(5);
        l.digitized = true;
        assert_eq!(Contribution::of(&l, None, T0).reception(), None);
    }

    #[test]
    fn a_late_return_by_post_with_a_timely_letter_counts_on_its_end_day() {
        // One working day allowed from Thursday: due at the end of Friday; returned Monday.
        let mut l = received(1);
        let returned = T0 + 4 * DAY;
        l.returned_at = Some(returned);
        l.result_postal = true;
        l.apology_at = Some(T0 + 2 * HOUR); // Thursday: before the deadline's day
        let c = Contribution::of(&l, Some(LocalDay::of_micros(T0)), returned);
        let (day, counts) = c.end().expect("ended");
        assert_eq!(day, LocalDay::of_micros(returned));
        assert_eq!(
            counts,
            ResolvedCounts {
                resolved: 1,
                late: 1,
                late_with_apology: 1,
                returned: 1,
                returned_postal: 1,
                ..Default::default()
            }
        );
        assert_eq!(c.reception().unwrap().1.postal_users, 1, "a result returned by post is postal use");
        assert_eq!(c.days(), [Some(LocalDay::of_micros(T0)), Some(day)], "the days of its two parts");
        let open = Contribution::of(&received(1), Some(LocalDay::of_micros(T0)), T0);
        assert_eq!(open.days(), [Some(LocalDay::of_micros(T0)), None]);
        assert_eq!(Contribution::of(&received(1), None, T0).days(), [None, None]);
    }

    #[test]
    fn a_late_letter_is_not_coverage() {
        let mut l = received(1);
        l.returned_at = Some(T0 + 4 * DAY);
        l.apology_at = Some(T0 + DAY + 2 * HOUR); // Friday: the deadline's own day
        let (_, counts) = Contribution::of(&l, Some(LocalDay::of_micros(T0)), T0 + 4 * DAY).end().unwrap();
        assert_eq!((counts.late, counts.late_with_apology, counts.late_without_apology), (1, 0, 0), "a letter, late");
        l.apology_at = None;
        let (_, counts) = Contribution::of(&l, Some(LocalDay::of_micros(T0)), T0 + 4 * DAY).end().unwrap();
        assert_eq!((counts.late, counts.late_with_apology, counts.late_without_apology), (1, 0, 1), "no letter");
    }

    #[test]
    fn an_early_end_is_on_time_too() {
        let mut l = received(5);
        l.processed_at = Some(T0 + HOUR);
        let (_, counts) = Contribution::of(&l, Some(LocalDay::of_micros(T0)), T0 + HOUR).end().unwrap();
        assert_eq!(
            counts,
            ResolvedCounts { resolved: 1, on_time: 1, early: 1, ..Default::default() },
            "processed, not returned"
        );
    }

    #[test]
    fn withdrawn_and_stopped_count_among_the_resolved() {
        for (kind, want) in [(EndKind::Withdrawn, (1, 0)), (EndKind::Stopped, (0, 1))] {
            let mut l = received(5);
            let at = Some(T0 + HOUR);
            match kind {
                EndKind::Withdrawn => l.withdrawn_at = at,
                _ => l.stopped_at = at,
            }
            let (_, counts) = Contribution::of(&l, Some(LocalDay::of_micros(T0)), T0 + HOUR).end().unwrap();
            assert_eq!((counts.resolved, counts.withdrawn, counts.stopped), (1, want.0, want.1), "{kind:?}");
        }
    }

    #[test]
    fn a_refusal_at_reception_is_counted_apart() {
        let l = DossierLifecycle { refused_at: Some(T0), ..Default::default() };
        let c = Contribution::of(&l, None, T0);
        assert_eq!(c.end(), Some((LocalDay::of_micros(T0), ResolvedCounts { refused: 1, ..Default::default() })));
        assert_eq!(c.reception(), None);
    }

    #[test]
    fn a_pending_supplement_request_ends_the_dossier_on_its_day() {
        let mut l = received(5);
        l.supplement_requested = vec![T0 + DAY];
        let (day, counts) = Contribution::of(&l, Some(LocalDay::of_micros(T0)), T0 + DAY).end().unwrap();
        assert_eq!(day, LocalDay::of_micros(T0 + DAY));
        assert_eq!((counts.resolved, counts.on_time), (1, 1));
    }

    #[test]
    fn taking_out_what_was_put_in_leaves_nothing() {
        let mut l = received(1);
        l.returned_at = Some(T0 + 4 * DAY);
        l.result_postal = true;
        l.fee_bearing = true;
        let c = Contribution::of(&l, Some(LocalDay::of_micros(T0)), T0 + 4 * DAY);
        let (mut service, mut resolved) = (ServiceCounts::default(), ResolvedCounts::default());
        let (_, s) = c.reception().unwrap();
        let (_, r) = c.end().unwrap();
        service.add(&s);
        resolved.add(&r);
        assert_eq!((service, resolved), (s, r));
        service.sub(&s);
        resolved.sub(&r);
        assert_eq!((service, resolved), (ServiceCounts::default(), ResolvedCounts::default()));
        resolved.sub(&r);
        assert_eq!(resolved, ResolvedCounts::default(), "never below zero");
    }
}
