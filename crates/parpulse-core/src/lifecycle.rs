//! A dossier's lifecycle facts and the lateness rules of the national indicator
//! specification (docs/KPIS.md), as pure functions.
//!
//! - End date: the processing date if the dossier was processed ("processed wins
//!   over returned"), otherwise the first of returned, stopped, withdrawn, refused.
//! - Time waiting for a supplement (request to completion) does not count; a
//!   dossier still waiting ends, for judging, on its request date. More than one
//!   supplement request makes a dossier late.
//! - On time: end <= appointment date (+ paused time); without an appointment
//!   date: end - reception - paused <= the legal maximum.
//!
//! Facts are kept so that applying the same event twice, or events out of
//! order, gives the same result: times are minima, supplement times are sets
//! paired in time order when judged.

use serde::{Deserialize, Serialize};

use crate::event::{Channel, DossierEvent, DossierEventKind};
use crate::time::LocalDay;

const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierLifecycle {
    pub received_at: Option<i64>,
    pub due_at: Option<i64>,
    pub legal_max_days: Option<i32>,
    /// Times of supplement requests and completions (sorted, distinct).
    pub supplement_requested: Vec<i64>,
    pub supplement_received: Vec<i64>,
    pub processed_at: Option<i64>,
    /// First of returned, stopped, withdrawn, refused.
    pub other_end_at: Option<i64>,
    pub returned_at: Option<i64>,
    pub returned_postal: bool,
    pub apology: bool,
    pub fee_bearing: bool,
    pub paid_online: bool,
    pub digitized: bool,
}

/// How a dossier stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not ended. `deadline` is when it becomes overdue (None: clock stopped or unknown).
    Open {
        deadline: Option<i64>,
    },
    OnTime {
        end: i64,
    },
    Late {
        end: i64,
    },
}

impl Outcome {
    /// The local day the dossier counts as resolved on.
    pub fn resolved_day(self) -> Option<LocalDay> {
        match self {
            Outcome::OnTime { end } | Outcome::Late { end } => Some(LocalDay::of_micros(end)),
            Outcome::Open { .. } => None,
        }
    }
}

// Each helper records one fact and says whether it changed anything.

fn min_into(slot: &mut Option<i64>, at: i64) -> bool {
    match *slot {
        Some(t) if t <= at => false,
        _ => {
            *slot = Some(at);
            true
        }
    }
}

fn insert_sorted(times: &mut Vec<i64>, at: i64) -> bool {
    match times.binary_search(&at) {
        Ok(_) => false,
        Err(position) => {
            times.insert(position, at);
            true
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value);
    true
}

fn raise(flag: &mut bool, value: bool) -> bool {
    let changed = value && !*flag;
    *flag |= value;
    changed
}

impl DossierLifecycle {
    /// Records one event. Idempotent, and independent of arrival order. Returns whether
    /// any fact changed (so the caller need not copy and compare the lifecycle).
    pub fn apply<S>(&mut self, event: &DossierEvent<S>) -> bool {
        let at = event.occurred_at;
        let mut changed = false;
        if let Some(due) = event.due_at {
            changed |= set_once(&mut self.due_at, due);
        }
        if let Some(days) = event.legal_max_days {
            changed |= set_once(&mut self.legal_max_days, days);
        }
        changed |= raise(&mut self.fee_bearing, event.fee_bearing);
        changed |= raise(&mut self.digitized, event.digitized);
        changed |= match event.kind {
            DossierEventKind::Received => min_into(&mut self.received_at, at),
            DossierEventKind::SupplementRequested => insert_sorted(&mut self.supplement_requested, at),
            DossierEventKind::SupplementReceived => insert_sorted(&mut self.supplement_received, at),
            DossierEventKind::Processed => min_into(&mut self.processed_at, at),
            DossierEventKind::ResultReturned => {
                let returned = min_into(&mut self.returned_at, at);
                let ended = min_into(&mut self.other_end_at, at);
                let postal = raise(&mut self.returned_postal, event.result_channel == Some(Channel::Postal));
                returned | ended | postal
            }
            DossierEventKind::Stopped | DossierEventKind::Withdrawn | DossierEventKind::Refused => {
                min_into(&mut self.other_end_at, at)
            }
            DossierEventKind::ApologyIssued => raise(&mut self.apology, true),
            DossierEventKind::PaidOnline => raise(&mut self.paid_online, true),
            DossierEventKind::Submitted | DossierEventKind::InProcess | DossierEventKind::AwaitingPayment => false,
        };
        changed
    }

    /// The end date: processing wins over the other endings.
    pub fn end_at(&self) -> Option<i64> {
        self.processed_at.or(self.other_end_at)
    }

    /// Completed supplement pauses up to `until`, and the pending request, if any.
    fn pauses(&self, until: i64) -> (i64, Option<i64>) {
        let mut paused: i64 = 0;
        let mut pending = None;
        for (i, &requested) in self.supplement_requested.iter().enumerate() {
            if requested > until {
                break;
            }
            match self.supplement_received.get(i) {
                Some(&received) if received <= until => {
                    paused = paused.saturating_add(received.saturating_sub(requested).max(0))
                }
                _ => {
                    pending = Some(requested);
                    break;
                }
            }
        }
        (paused, pending)
    }

    /// The deadline given `paused` time, if the dossier has one.
    fn deadline(&self, paused: i64) -> Option<i64> {
        match (self.due_at, self.received_at, self.legal_max_days) {
            (Some(due), _, _) => Some(due.saturating_add(paused)),
            (None, Some(received), Some(days)) => {
                Some(received.saturating_add(i64::from(days).saturating_mul(MICROS_PER_DAY)).saturating_add(paused))
            }
            _ => None,
        }
    }

    /// Judges the dossier as of `now` (open dossiers are judged when the period ends).
    pub fn outcome(&self, now: i64) -> Outcome {
        let end = self.end_at();
        let (paused, pending) = self.pauses(end.unwrap_or(now));
        let too_many_supplements = self.supplement_requested.len() > 1;
        let Some(end) = end else {
            return Outcome::Open { deadline: if pending.is_some() { None } else { self.deadline(paused) } };
        };
        let on_time = !too_many_supplements && self.deadline(paused).is_none_or(|deadline| end <= deadline);
        if on_time {
            Outcome::OnTime { end }
        } else {
            Outcome::Late { end }
        }
    }

    /// Open, past its deadline at `now`, and not paused for a supplement.
    pub fn overdue_at(&self, now: i64) -> bool {
        matches!(self.outcome(now), Outcome::Open { deadline: Some(deadline) } if deadline < now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_574_899_200_000_000; // 2019-11-28 00:00 UTC
    const HOUR: i64 = 3_600_000_000;
    const DAY: i64 = 24 * HOUR;

    fn event(kind: DossierEventKind, at: i64) -> DossierEvent {
        DossierEvent {
            event_id: String::new(),
            agency_code: "SNV".into(),
            occurred_at: at,
            recorded_at: 0,
            source: String::new(),
            dossier_id: "D".into(),
            procedure_code: "P".into(),
            kind,
            channel: Channel::Online,
            online_level: 4,
            result_channel: Some(Channel::Postal),
            due_at: Some(T0 + 5 * DAY),
            legal_max_days: Some(5),
            fee_bearing: false,
            digitized: false,
        }
    }

    fn lifecycle(steps: &[(DossierEventKind, i64)]) -> DossierLifecycle {
        let mut d = DossierLifecycle::default();
        for (kind, at) in steps {
            d.apply(&event(*kind, *at));
        }
        d
    }

    use DossierEventKind::*;

    #[test]
    fn processed_by_the_appointment_date_is_on_time() {
        let d = lifecycle(&[(Received, T0), (Processed, T0 + 5 * DAY)]);
        assert_eq!(d.outcome(T0 + 30 * DAY), Outcome::OnTime { end: T0 + 5 * DAY });
    }

    #[test]
    fn processed_after_the_appointment_date_is_late() {
        let d = lifecycle(&[(Received, T0), (Processed, T0 + 5 * DAY + 1)]);
        assert!(matches!(d.outcome(T0 + 30 * DAY), Outcome::Late { .. }));
    }

    #[test]
    fn processed_wins_over_an_earlier_return() {
        // Returned reported before processing (data entry order): the end is the processing date.
        let d = lifecycle(&[(Received, T0), (ResultReturned, T0 + DAY), (Processed, T0 + 6 * DAY)]);
        assert_eq!(d.end_at(), Some(T0 + 6 * DAY));
        assert!(matches!(d.outcome(T0 + 30 * DAY), Outcome::Late { .. }));
    }

    #[test]
    fn supplement_waiting_time_does_not_count() {
        let d = lifecycle(&[
            (Received, T0),
            (SupplementRequested, T0 + DAY),
            (SupplementReceived, T0 + 4 * DAY),
            (Processed, T0 + 7 * DAY),
        ]);
        assert_eq!(d.outcome(T0 + 30 * DAY), Outcome::OnTime { end: T0 + 7 * DAY });
    }

    #[test]
    fn more_than_one_supplement_request_is_late() {
        let d = lifecycle(&[
            (Received, T0),
            (SupplementRequested, T0 + HOUR),
            (SupplementReceived, T0 + 2 * HOUR),
            (SupplementRequested, T0 + 3 * HOUR),
            (SupplementReceived, T0 + 4 * HOUR),
            (Processed, T0 + DAY),
        ]);
        assert!(matches!(d.outcome(T0 + 30 * DAY), Outcome::Late { .. }));
    }

    #[test]
    fn without_appointment_date_the_legal_maximum_applies() {
        let mut d = DossierLifecycle::default();
        for (kind, at) in [(Received, T0), (Processed, T0 + 4 * DAY)] {
            d.apply(&DossierEvent { due_at: None, legal_max_days: Some(3), ..event(kind, at) });
        }
        assert!(matches!(d.outcome(T0 + 30 * DAY), Outcome::Late { .. }));
    }

    #[test]
    fn open_dossiers_are_overdue_after_their_deadline_unless_waiting_for_a_supplement() {
        let open = lifecycle(&[(Received, T0)]);
        assert!(!open.overdue_at(T0 + 4 * DAY));
        assert!(open.overdue_at(T0 + 6 * DAY));
        let waiting = lifecycle(&[(Received, T0), (SupplementRequested, T0 + DAY)]);
        assert!(!waiting.overdue_at(T0 + 30 * DAY));
    }

    #[test]
    fn the_same_events_in_any_order_or_twice_give_the_same_facts() {
        let steps = [
            (Received, T0),
            (SupplementRequested, T0 + DAY),
            (SupplementReceived, T0 + 2 * DAY),
            (ApologyIssued, T0 + 4 * DAY),
            (Processed, T0 + 6 * DAY),
            (ResultReturned, T0 + 7 * DAY),
        ];
        let forward = lifecycle(&steps);
        let mut backward_twice: Vec<_> = steps.iter().rev().copied().collect();
        backward_twice.extend(steps);
        assert_eq!(lifecycle(&backward_twice), forward);
        assert!(forward.apology && forward.returned_postal);
    }

    #[test]
    fn withdrawn_ends_the_dossier() {
        let d = lifecycle(&[(Received, T0), (Withdrawn, T0 + DAY)]);
        assert_eq!(d.outcome(T0 + 30 * DAY), Outcome::OnTime { end: T0 + DAY });
    }

    /// `apply` says it changed something exactly when the lifecycle differs afterwards,
    /// for every kind, repeated and out of order, with and without optional fields.
    #[test]
    fn apply_reports_exactly_when_a_fact_changes() {
        let kinds = DossierEventKind::ALL;
        let mut steps = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            for (j, at) in [T0 + DAY, T0, T0 + 3 * DAY, T0 + DAY].into_iter().enumerate() {
                let mut e = event(*kind, at + i as i64 * HOUR);
                e.due_at = (j % 2 == 0).then_some(T0 + (5 + j as i64) * DAY);
                e.legal_max_days = (j == 1).then_some(7);
                e.fee_bearing = j == 2;
                e.digitized = i % 3 == 0 && j > 0;
                e.result_channel = [None, Some(Channel::Online), Some(Channel::Postal), None][j];
                steps.push(e);
            }
        }
        // A fixed shuffle (multiplicative step coprime to the length), then everything again.
        let n = steps.len();
        let order: Vec<usize> = (0..2 * n).map(|k| (k * 37 + 11) % n).collect();
        let mut d = DossierLifecycle::default();
        let mut changes = 0;
        for k in order {
            let before = d.clone();
            let changed = d.apply(&steps[k]);
            assert_eq!(changed, d != before, "step {k}: {:?}", steps[k].kind);
            changes += usize::from(changed);
        }
        assert!(changes > 10 && changes < 2 * n, "{changes} of {} applications changed something", 2 * n);
    }
}
