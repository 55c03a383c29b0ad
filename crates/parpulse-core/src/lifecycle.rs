//! A dossier's lifecycle facts and the rules that judge it (docs/KPIS.md, "Lateness
//! rules", with their legal sources), as pure functions.
//!
//! - **Reception.** The first `received` event; its appointment date (`due_at`) is the
//!   one lateness is judged against. An apology's new appointment is kept apart
//!   (`apology_due_at`) and never moves the deadline.
//! - **Refused at reception** (từ chối tiếp nhận): not a dossier received for
//!   processing: never resolved, never on time, counted apart.
//! - **End** = the first of processed, result returned, stopped, withdrawn, except that
//!   a processing date wins over a return date.
//! - **Supplements**: time from a request to its completion does not count (requests and
//!   completions paired in time order). A dossier still waiting for its supplement when
//!   it is judged ends on the request date. More than one request makes a dossier late.
//! - **Deadline**: the appointment date (+ supplement time); without one, the end of the
//!   `legal_max_days`-th working day after the reception day (+ supplement time), working
//!   days from the province's calendar ([`crate::calendar`]).
//! - **Early / on time / late**: late when the end is after the deadline (or more than one
//!   supplement was requested); early when it ends on a local day before the deadline's
//!   day; on time otherwise.
//! - **Apology letters** are timely when sent on or before the last working day before the
//!   deadline's day, late otherwise.
//!
//! Every judgment is made *as of* an instant (the end of a period, or now): facts after
//! it are ignored, so a closed month is judged as it stood at its end, from today's facts.
//! Facts are kept so that applying the same event twice, or events out of order, gives
//! the same result: times are minima, supplement times are sets paired in time order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::calendar::WorkingCalendar;
use crate::event::{Channel, DossierEvent, DossierEventKind};
use crate::time::LocalDay;

static ACTIVE_CALENDAR: OnceLock<WorkingCalendar> = OnceLock::new();

/// Makes `calendar` the one [`active_calendar`] returns, for the life of the process (a
/// province's own `deploy/holidays.toml`, loaded and validated at start). Only the first
/// call counts; returns false if a calendar was already active.
pub fn install_calendar(calendar: WorkingCalendar) -> bool {
    ACTIVE_CALENDAR.set(calendar).is_ok()
}

/// The working-day calendar in force: the installed one, else the one built in.
pub fn active_calendar() -> &'static WorkingCalendar {
    ACTIVE_CALENDAR.get().unwrap_or_else(|| WorkingCalendar::embedded())
}

/// Judgments that needed a day outside the working-day calendar and counted weekdays
/// only for it (a warning and `parpulse_calendar_beyond_total`, never a silent guess).
pub static DAYS_BEYOND_CALENDAR: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DossierLifecycle {
    pub received_at: Option<i64>,
    /// How the dossier came in (the channel of its reception).
    pub received_channel: Option<Channel>,
    /// The appointment date set at reception (ngày hẹn trả).
    pub due_at: Option<i64>,
    pub legal_max_days: Option<i32>,
    /// Times of supplement requests and completions (sorted, distinct).
    pub supplement_requested: Vec<i64>,
    pub supplement_received: Vec<i64>,
    pub processed_at: Option<i64>,
    pub returned_at: Option<i64>,
    pub stopped_at: Option<i64>,
    pub withdrawn_at: Option<i64>,
    pub refused_at: Option<i64>,
    /// The result is (to be) returned by public postal service, as any event said.
    pub result_postal: bool,
    /// The first apology letter, and the new appointment date it gave.
    pub apology_at: Option<i64>,
    pub apology_due_at: Option<i64>,
    pub fee_bearing: bool,
    pub paid_online: bool,
    pub digitized: bool,
}

/// How a dossier ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndKind {
    Processed,
    Returned,
    Stopped,
    Withdrawn,
    /// Still waiting for a supplement when judged: ends on the request date.
    SupplementPending,
}

impl EndKind {
    /// Stored code: the national sync state codes where one exists (9 processed,
    /// 10 returned, 8 stopped, 7 withdrawn, 5 supplement requested).
    pub fn code(self) -> u8 {
        match self {
            EndKind::Processed => 9,
            EndKind::Returned => 10,
            EndKind::Stopped => 8,
            EndKind::Withdrawn => 7,
            EndKind::SupplementPending => 5,
        }
    }
}

/// Early (trước hạn), on time (đúng hạn) or late (quá hạn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeliness {
    Early,
    OnTime,
    Late,
}

/// How a dossier stands as of an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No reception (yet): not counted anywhere.
    NotReceived,
    /// Refused at reception, at this time.
    Refused { at: i64 },
    /// Received, not ended. `deadline` is when it becomes overdue (None: unknown).
    Open { deadline: Option<i64> },
    /// Ended at `end`, judged against `deadline` (None: unknown, never late by time).
    Resolved { end: i64, kind: EndKind, timeliness: Timeliness, deadline: Option<i64> },
}

impl Outcome {
    /// The local day the dossier counts as resolved on.
    pub fn resolved_day(self) -> Option<LocalDay> {
        match self {
            Outcome::Resolved { end, .. } => Some(LocalDay::of_micros(end)),
            _ => None,
        }
    }

    pub fn is_late(self) -> bool {
        matches!(self, Outcome::Resolved { timeliness: Timeliness::Late, .. })
    }
}

/// Whether an apology letter was sent in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApologyTiming {
    None,
    /// On or before the last working day before the deadline's day.
    Timely,
    Late,
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

fn raise(flag: &mut bool, value: bool) -> bool {
    let changed = value && !*flag;
    *flag |= value;
    changed
}

fn beyond_calendar() {
    DAYS_BEYOND_CALENDAR.fetch_add(1, Ordering::Relaxed);
}

fn is_weekday(day: LocalDay) -> bool {
    !crate::calendar::is_weekend(day.date())
}

/// The `n`-th working day after `start`; outside the calendar, the `n`-th weekday.
fn add_working_days(calendar: &WorkingCalendar, start: LocalDay, n: u32) -> LocalDay {
    calendar.add_working_days(start, n).unwrap_or_else(|_| {
        beyond_calendar();
        let mut day = start;
        let mut left = n;
        while left > 0 && day.0 < u16::MAX {
            day = LocalDay(day.0 + 1);
            left -= u32::from(is_weekday(day));
        }
        day
    })
}

/// The last working day before `day`; outside the calendar, the last weekday before it.
fn previous_working_day(calendar: &WorkingCalendar, day: LocalDay) -> LocalDay {
    calendar.previous_working_day(day).unwrap_or_else(|_| {
        beyond_calendar();
        // Day 0 (1970-01-01) is a Thursday, so the walk back stops there at the latest.
        let mut previous = LocalDay(day.0.saturating_sub(1));
        while !is_weekday(previous) {
            previous = LocalDay(previous.0 - 1);
        }
        previous
    })
}

fn known(time: Option<i64>, at: i64) -> Option<i64> {
    time.filter(|&t| t <= at)
}

impl DossierLifecycle {
    /// Records one event. Idempotent, and independent of arrival order. Returns whether
    /// any fact changed (so the caller need not copy and compare the lifecycle).
    pub fn apply<S>(&mut self, event: &DossierEvent<S>) -> bool {
        let at = event.occurred_at;
        let mut changed = false;
        if let Some(days) = event.legal_max_days {
            // Every event should carry the procedure's one maximum; if they differ, the
            // smallest is kept, whatever the arrival order.
            changed |= match self.legal_max_days {
                Some(kept) if kept <= days => false,
                _ => {
                    self.legal_max_days = Some(days);
                    true
                }
            };
        }
        changed |= raise(&mut self.fee_bearing, event.fee_bearing);
        changed |= raise(&mut self.digitized, event.digitized);
        changed |= raise(&mut self.result_postal, event.result_channel == Some(Channel::Postal));
        changed |= match event.kind {
            DossierEventKind::Received => {
                // The earliest reception's channel and appointment date are the dossier's;
                // between receptions at the same instant, the earliest appointment date
                // (then the smallest channel code) wins, whatever the arrival order.
                let key = (event.due_at.unwrap_or(i64::MAX), event.channel.national_code());
                let kept = (self.due_at.unwrap_or(i64::MAX), self.received_channel.map_or(0, Channel::national_code));
                let wins = self.received_at.is_none_or(|t| at < t || (at == t && key < kept));
                if wins {
                    self.received_at = Some(at);
                    self.received_channel = Some(event.channel);
                    self.due_at = event.due_at;
                }
                wins
            }
            DossierEventKind::SupplementRequested => insert_sorted(&mut self.supplement_requested, at),
            DossierEventKind::SupplementReceived => insert_sorted(&mut self.supplement_received, at),
            DossierEventKind::Processed => min_into(&mut self.processed_at, at),
            DossierEventKind::ResultReturned => min_into(&mut self.returned_at, at),
            DossierEventKind::Stopped => min_into(&mut self.stopped_at, at),
            DossierEventKind::Withdrawn => min_into(&mut self.withdrawn_at, at),
            DossierEventKind::Refused => min_into(&mut self.refused_at, at),
            DossierEventKind::ApologyIssued => {
                // The first letter, and the new date it gives (the earliest new date between
                // letters at the same instant).
                let new_due = event.new_due_at.or(event.due_at);
                let key = new_due.unwrap_or(i64::MAX);
                let kept = self.apology_due_at.unwrap_or(i64::MAX);
                let wins = self.apology_at.is_none_or(|t| at < t || (at == t && key < kept));
                if wins {
                    self.apology_at = Some(at);
                    self.apology_due_at = new_due;
                }
                wins
            }
            DossierEventKind::PaidOnline => raise(&mut self.paid_online, true),
            DossierEventKind::Submitted | DossierEventKind::InProcess | DossierEventKind::AwaitingPayment => false,
        };
        changed
    }

    /// A refusal that came after the dossier's reception: not a refusal *at* reception
    /// (the dossier was received for processing), so it ends the dossier like a stop.
    fn refused_after_reception(&self) -> Option<i64> {
        self.refused_at.filter(|&refused| self.received_at.is_some_and(|received| received < refused))
    }

    /// The end known at `at`: the first of processed, returned, stopped, withdrawn,
    /// except that a processing date wins over a return date (whenever the dossier has
    /// one, even if it comes after `at`: a return recorded before the processing never
    /// ends the dossier, so a closed month never counts it resolved and the next one again).
    pub fn ending(&self, at: i64) -> Option<(i64, EndKind)> {
        let processed = known(self.processed_at, at);
        let returned = if self.processed_at.is_some() { None } else { known(self.returned_at, at) };
        let stopped = match (known(self.stopped_at, at), known(self.refused_after_reception(), at)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        [
            (processed, EndKind::Processed),
            (returned, EndKind::Returned),
            (stopped, EndKind::Stopped),
            (known(self.withdrawn_at, at), EndKind::Withdrawn),
        ]
        .into_iter()
        .filter_map(|(time, kind)| time.map(|time| (time, kind)))
        .min_by_key(|&(time, _)| time)
    }

    /// Completed supplement pauses up to `until`, and the request still waiting then, if any.
    /// Each request is paired with the first completion at or after it not yet paired (a
    /// completion recorded before any request pairs with nothing).
    fn pauses(&self, until: i64) -> (i64, Option<i64>) {
        let mut paused: i64 = 0;
        let mut completions = self.supplement_received.iter().copied().peekable();
        for &requested in &self.supplement_requested {
            if requested > until {
                break;
            }
            while completions.next_if(|&done| done < requested).is_some() {}
            match completions.next() {
                Some(done) if done <= until => paused = paused.saturating_add(done - requested),
                _ => return (paused, Some(requested)),
            }
        }
        (paused, None)
    }

    /// The deadline given `paused` time: the appointment date from reception, or the end
    /// of the `legal_max_days`-th working day after the reception day.
    fn deadline(&self, received: i64, paused: i64, calendar: &WorkingCalendar) -> Option<i64> {
        let base = match (self.due_at, self.legal_max_days) {
            (Some(due), _) => due,
            (None, Some(days)) => {
                let last = add_working_days(calendar, LocalDay::of_micros(received), u32::try_from(days).unwrap_or(0));
                LocalDay(last.0.saturating_add(1)).start_micros() - 1
            }
            (None, None) => return None,
        };
        Some(base.saturating_add(paused))
    }

    /// Judges the dossier as of `at` (the end of a period, or now): facts after it are ignored.
    pub fn outcome(&self, at: i64, calendar: &WorkingCalendar) -> Outcome {
        if let Some(refused) = known(self.refused_at, at).filter(|_| self.refused_after_reception().is_none()) {
            return Outcome::Refused { at: refused };
        }
        let Some(received) = known(self.received_at, at) else {
            return Outcome::NotReceived;
        };
        let ending = self.ending(at);
        let (paused, pending) = self.pauses(ending.map_or(at, |(end, _)| end));
        let (end, kind) = match (ending, pending) {
            (Some(ending), _) => ending,
            (None, Some(requested)) => (requested, EndKind::SupplementPending),
            (None, None) => return Outcome::Open { deadline: self.deadline(received, paused, calendar) },
        };
        let requests = self.supplement_requested.iter().take_while(|&&t| t <= end).count();
        let deadline = self.deadline(received, paused, calendar);
        let timeliness = match deadline {
            _ if requests > 1 => Timeliness::Late,
            Some(deadline) if end > deadline => Timeliness::Late,
            Some(deadline) if LocalDay::of_micros(end) < LocalDay::of_micros(deadline) => Timeliness::Early,
            _ => Timeliness::OnTime,
        };
        Outcome::Resolved { end, kind, timeliness, deadline }
    }

    /// Received, not ended, past its deadline at `at`.
    pub fn overdue_at(&self, at: i64, calendar: &WorkingCalendar) -> bool {
        matches!(self.outcome(at, calendar), Outcome::Open { deadline: Some(deadline) } if deadline < at)
    }

    /// Whether the first apology letter (sent by `at`) was sent on or before the last
    /// working day before the deadline's day, the deadline as it stood when the letter was
    /// sent (supplement waits completed by then). Without a known deadline it is timely.
    pub fn apology(&self, at: i64, calendar: &WorkingCalendar) -> ApologyTiming {
        let Some(sent) = known(self.apology_at, at) else {
            return ApologyTiming::None;
        };
        let Some(received) = known(self.received_at, at) else {
            return ApologyTiming::Timely;
        };
        let (paused, _) = self.pauses(sent);
        match self.deadline(received, paused, calendar) {
            Some(deadline)
                if LocalDay::of_micros(sent) > previous_working_day(calendar, LocalDay::of_micros(deadline)) =>
            {
                ApologyTiming::Late
            }
            _ => ApologyTiming::Timely,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_574_899_200_000_000; // 2019-11-28 00:00 UTC = Thursday 07:00 in Hà Nội
    const HOUR: i64 = 3_600_000_000;
    const DAY: i64 = 24 * HOUR;
    const LATER: i64 = T0 + 60 * DAY;

    fn calendar() -> &'static WorkingCalendar {
        WorkingCalendar::embedded()
    }

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
            result_channel: None,
            due_at: Some(T0 + 5 * DAY),
            legal_max_days: Some(5),
            fee_bearing: false,
            digitized: false,
            new_due_at: None,
        }
    }

    fn lifecycle(steps: &[(DossierEventKind, i64)]) -> DossierLifecycle {
        let mut d = DossierLifecycle::default();
        for (kind, at) in steps {
            d.apply(&event(*kind, *at));
        }
        d
    }

    fn timeliness(d: &DossierLifecycle, at: i64) -> Option<Timeliness> {
        match d.outcome(at, calendar()) {
            Outcome::Resolved { timeliness, .. } => Some(timeliness),
            _ => None,
        }
    }

    use DossierEventKind::*;

    #[test]
    fn processed_on_the_appointment_day_is_on_time_before_it_early_after_it_late() {
        let on_day = lifecycle(&[(Received, T0), (Processed, T0 + 5 * DAY)]);
        assert_eq!(timeliness(&on_day, LATER), Some(Timeliness::OnTime));
        let day_before = lifecycle(&[(Received, T0), (Processed, T0 + 4 * DAY)]);
        assert_eq!(timeliness(&day_before, LATER), Some(Timeliness::Early));
        let after = lifecycle(&[(Received, T0), (Processed, T0 + 5 * DAY + 1)]);
        assert_eq!(timeliness(&after, LATER), Some(Timeliness::Late));
    }

    #[test]
    fn processed_wins_over_an_earlier_return_but_not_over_an_earlier_stop_or_withdrawal() {
        let d = lifecycle(&[(Received, T0), (ResultReturned, T0 + DAY), (Processed, T0 + 6 * DAY)]);
        assert_eq!(d.ending(LATER), Some((T0 + 6 * DAY, EndKind::Processed)));
        assert_eq!(timeliness(&d, LATER), Some(Timeliness::Late));
        let stopped = lifecycle(&[(Received, T0), (Stopped, T0 + DAY), (Processed, T0 + 6 * DAY)]);
        assert_eq!(stopped.ending(LATER), Some((T0 + DAY, EndKind::Stopped)));
        let withdrawn = lifecycle(&[(Received, T0), (Processed, T0 + 6 * DAY), (Withdrawn, T0 + 2 * DAY)]);
        assert_eq!(withdrawn.ending(LATER), Some((T0 + 2 * DAY, EndKind::Withdrawn)));
        // Without a processing date, the return ends it.
        let returned = lifecycle(&[(Received, T0), (ResultReturned, T0 + 3 * DAY)]);
        assert_eq!(returned.ending(LATER), Some((T0 + 3 * DAY, EndKind::Returned)));
    }

    #[test]
    fn supplement_waiting_time_does_not_count() {
        let d = lifecycle(&[
            (Received, T0),
            (SupplementRequested, T0 + DAY),
            (SupplementReceived, T0 + 4 * DAY),
            (Processed, T0 + 7 * DAY),
        ]);
        assert_eq!(timeliness(&d, LATER), Some(Timeliness::Early));
        assert_eq!(
            timeliness(&DossierLifecycle { processed_at: Some(T0 + 8 * DAY), ..d }, LATER),
            Some(Timeliness::OnTime)
        );
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
        assert_eq!(timeliness(&d, LATER), Some(Timeliness::Late));
    }

    #[test]
    fn a_dossier_waiting_for_its_supplement_ends_on_the_request_date() {
        let d = lifecycle(&[(Received, T0), (SupplementRequested, T0 + 2 * DAY)]);
        assert_eq!(d.outcome(T0 + DAY, calendar()), Outcome::Open { deadline: Some(T0 + 5 * DAY) });
        assert_eq!(
            d.outcome(LATER, calendar()),
            Outcome::Resolved {
                end: T0 + 2 * DAY,
                kind: EndKind::SupplementPending,
                timeliness: Timeliness::Early,
                deadline: Some(T0 + 5 * DAY)
            }
        );
        // A request after the appointment date is a late end.
        let late = lifecycle(&[(Received, T0), (SupplementRequested, T0 + 6 * DAY)]);
        assert_eq!(timeliness(&late, LATER), Some(Timeliness::Late));
        // Completed after the period: judged as of the period's end, it was still waiting.
        let completed =
            lifecycle(&[(Received, T0), (SupplementRequested, T0 + 2 * DAY), (SupplementReceived, T0 + 9 * DAY)]);
        assert!(matches!(
            completed.outcome(T0 + 8 * DAY, calendar()),
            Outcome::Resolved { kind: EndKind::SupplementPending, .. }
        ));
        assert_eq!(completed.outcome(T0 + 10 * DAY, calendar()), Outcome::Open { deadline: Some(T0 + 12 * DAY) });
    }

    #[test]
    fn lateness_is_judged_against_the_reception_appointment_not_the_apology_one() {
        let mut d = DossierLifecycle::default();
        // The apology, carrying its new date, arrives before the reception.
        d.apply(&DossierEvent { due_at: Some(T0 + 20 * DAY), ..event(ApologyIssued, T0 + 4 * DAY) });
        d.apply(&event(Received, T0));
        d.apply(&event(Processed, T0 + 10 * DAY));
        assert_eq!(d.due_at, Some(T0 + 5 * DAY));
        assert_eq!(d.apology_due_at, Some(T0 + 20 * DAY));
        assert_eq!(timeliness(&d, LATER), Some(Timeliness::Late));
        // The new field wins over due_at for the apology's own date.
        let mut e = DossierLifecycle::default();
        e.apply(&DossierEvent { new_due_at: Some(T0 + 9 * DAY), ..event(ApologyIssued, T0 + 4 * DAY) });
        assert_eq!(e.apology_due_at, Some(T0 + 9 * DAY));
    }

    #[test]
    fn refused_dossiers_are_neither_resolved_nor_open() {
        let d = lifecycle(&[(Refused, T0)]);
        assert_eq!(d.outcome(LATER, calendar()), Outcome::Refused { at: T0 });
        assert_eq!(d.outcome(T0 - 1, calendar()), Outcome::NotReceived);
        assert_eq!(d.ending(LATER), None);
    }

    #[test]
    fn without_appointment_date_the_legal_maximum_counts_working_days() {
        // Received Thursday 28/11/2019; 3 working days: Fri 29/11, Mon 2/12, Tue 3/12.
        let with = |processed_local_day: (u32, u32), hour: i64| {
            let mut d = DossierLifecycle::default();
            let day = LocalDay::from_ymd(2019, processed_local_day.0, processed_local_day.1).unwrap();
            for (kind, at) in [(Received, T0), (Processed, day.start_micros() + hour * HOUR)] {
                d.apply(&DossierEvent { due_at: None, legal_max_days: Some(3), ..event(kind, at) });
            }
            timeliness(&d, LATER)
        };
        assert_eq!(with((12, 3), 23), Some(Timeliness::OnTime));
        assert_eq!(with((12, 2), 16), Some(Timeliness::Early));
        assert_eq!(with((12, 4), 8), Some(Timeliness::Late));
        // Calendar days would have made Sunday 1/12 the deadline.
        assert_eq!(with((12, 1), 23), Some(Timeliness::Early));
    }

    #[test]
    fn a_timely_apology_is_sent_by_the_last_working_day_before_the_deadline() {
        // Appointment Tuesday 3/12/2019 07:00; the last working day before it is Monday 2/12.
        let sent_on = |local: (u32, u32)| {
            let day = LocalDay::from_ymd(2019, local.0, local.1).unwrap();
            lifecycle(&[(Received, T0), (ApologyIssued, day.start_micros() + 10 * HOUR)]).apology(LATER, calendar())
        };
        assert_eq!(sent_on((12, 2)), ApologyTiming::Timely);
        assert_eq!(sent_on((11, 29)), ApologyTiming::Timely);
        assert_eq!(sent_on((12, 3)), ApologyTiming::Late);
        // The first letter is judged, whatever the arrival order: 2/12 (timely) before 3/12.
        let (timely, late) = (LocalDay::from_ymd(2019, 12, 2).unwrap(), LocalDay::from_ymd(2019, 12, 3).unwrap());
        let (timely, late) = (timely.start_micros() + 10 * HOUR, late.start_micros() + 10 * HOUR);
        for letters in [[timely, late], [late, timely]] {
            let d = lifecycle(&[(Received, T0), (ApologyIssued, letters[0]), (ApologyIssued, letters[1])]);
            assert_eq!(d.apology(LATER, calendar()), ApologyTiming::Timely, "letters arriving as {letters:?}");
        }
        assert_eq!(lifecycle(&[(Received, T0)]).apology(LATER, calendar()), ApologyTiming::None);
        // Sent after the judging instant: not yet sent.
        assert_eq!(
            lifecycle(&[(Received, T0), (ApologyIssued, T0 + DAY)]).apology(T0, calendar()),
            ApologyTiming::None
        );
    }

    #[test]
    fn a_result_registered_for_postal_return_is_known_from_any_event() {
        let mut d = DossierLifecycle::default();
        d.apply(&DossierEvent { result_channel: Some(Channel::Postal), ..event(Received, T0) });
        assert!(d.result_postal);
        assert!(matches!(d.outcome(LATER, calendar()), Outcome::Open { .. }));
    }

    #[test]
    fn judged_as_of_an_instant_later_facts_do_not_count() {
        let d = lifecycle(&[(Received, T0), (Processed, T0 + 7 * DAY)]);
        assert_eq!(d.outcome(T0 + 6 * DAY, calendar()), Outcome::Open { deadline: Some(T0 + 5 * DAY) });
        assert!(d.overdue_at(T0 + 6 * DAY, calendar()));
        assert!(!d.overdue_at(T0 + 4 * DAY, calendar()));
        assert!(!d.overdue_at(LATER, calendar()));
        assert_eq!(d.outcome(T0 - 1, calendar()), Outcome::NotReceived);
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
        assert!(forward.apology_at.is_some());
    }

    #[test]
    fn withdrawn_ends_the_dossier() {
        let d = lifecycle(&[(Received, T0), (Withdrawn, T0 + DAY)]);
        assert_eq!(d.ending(LATER), Some((T0 + DAY, EndKind::Withdrawn)));
        assert_eq!(timeliness(&d, LATER), Some(Timeliness::Early));
    }

    #[test]
    fn days_beyond_the_calendar_count_weekdays_and_are_counted() {
        let before = DAYS_BEYOND_CALENDAR.load(Ordering::Relaxed);
        let received = LocalDay::from_ymd(2090, 3, 2).unwrap(); // a Thursday
        let mut d = DossierLifecycle::default();
        for (kind, at) in [(Received, received.start_micros()), (Processed, received.start_micros() + 4 * DAY)] {
            d.apply(&DossierEvent { due_at: None, legal_max_days: Some(2), ..event(kind, at) });
        }
        // Fri 3/3 and Mon 6/3 are the two weekdays: processed Monday is on time.
        assert_eq!(timeliness(&d, i64::MAX), Some(Timeliness::OnTime));
        assert!(DAYS_BEYOND_CALENDAR.load(Ordering::Relaxed) > before);
        assert_eq!(
            previous_working_day(calendar(), LocalDay::from_ymd(2090, 3, 6).unwrap()),
            LocalDay::from_ymd(2090, 3, 3).unwrap()
        );
    }

    /// Events that disagree (two receptions at one instant with different appointments
    /// and channels, different legal maxima, two letters at one instant) give the same
    /// facts in every arrival order.
    #[test]
    fn conflicting_events_give_the_same_facts_in_every_order() {
        let events = [
            DossierEvent { due_at: Some(T0 + 10 * DAY), channel: Channel::Postal, ..event(Received, T0) },
            DossierEvent { due_at: Some(T0 + 3 * DAY), channel: Channel::InPerson, ..event(Received, T0) },
            DossierEvent { due_at: None, legal_max_days: Some(3), ..event(InProcess, T0 + HOUR) },
            DossierEvent { due_at: None, legal_max_days: Some(10), ..event(InProcess, T0 + 2 * HOUR) },
            DossierEvent { new_due_at: Some(T0 + 20 * DAY), ..event(ApologyIssued, T0 + DAY) },
            DossierEvent { new_due_at: Some(T0 + 9 * DAY), ..event(ApologyIssued, T0 + DAY) },
            event(Processed, T0 + 4 * DAY),
        ];
        let mut orders = vec![(0..events.len()).collect::<Vec<_>>()];
        // Multiplicative steps coprime to the length (7) give permutations.
        for k in (1..40usize).filter(|k| (2 * k + 1) % events.len() != 0) {
            orders.push((0..events.len()).map(|i| (i * (2 * k + 1) + k) % events.len()).collect());
        }
        let facts: Vec<DossierLifecycle> = orders
            .iter()
            .map(|order| {
                let mut d = DossierLifecycle::default();
                for &i in order {
                    d.apply(&events[i]);
                }
                d
            })
            .collect();
        assert!(facts.windows(2).all(|w| w[0] == w[1]), "{facts:#?}");
        let d = &facts[0];
        assert_eq!(
            (d.due_at, d.received_channel, d.legal_max_days),
            (Some(T0 + 3 * DAY), Some(Channel::InPerson), Some(3))
        );
        assert_eq!(d.apology_due_at, Some(T0 + 9 * DAY));
        assert_eq!(timeliness(d, LATER), Some(Timeliness::Late));
    }

    #[test]
    fn a_return_before_the_processing_never_ends_the_dossier() {
        // Returned 30/11, processed 5/12: as of 1/12 it is open, not resolved on 30/11.
        let d = lifecycle(&[(Received, T0), (ResultReturned, T0 + 2 * DAY), (Processed, T0 + 7 * DAY)]);
        assert_eq!(d.outcome(T0 + 3 * DAY, calendar()), Outcome::Open { deadline: Some(T0 + 5 * DAY) });
        assert_eq!(d.ending(LATER), Some((T0 + 7 * DAY, EndKind::Processed)));
    }

    #[test]
    fn a_refusal_after_the_reception_ends_the_dossier_as_a_stop() {
        let d = lifecycle(&[(Received, T0), (Refused, T0 + DAY)]);
        assert_eq!(d.ending(LATER), Some((T0 + DAY, EndKind::Stopped)));
        assert!(matches!(d.outcome(LATER, calendar()), Outcome::Resolved { kind: EndKind::Stopped, .. }));
        // At the reception's instant (or without one) it is a refusal at reception.
        assert_eq!(lifecycle(&[(Received, T0), (Refused, T0)]).outcome(LATER, calendar()), Outcome::Refused { at: T0 });
    }

    #[test]
    fn a_completion_before_any_request_pairs_with_nothing() {
        // Completion on day 1 (stray), request on day 2, completion on day 16: a 14-day wait.
        let d = lifecycle(&[
            (Received, T0),
            (SupplementReceived, T0 + DAY),
            (SupplementRequested, T0 + 2 * DAY),
            (SupplementReceived, T0 + 16 * DAY),
            (Processed, T0 + 17 * DAY),
        ]);
        assert_eq!(timeliness(&d, LATER), Some(Timeliness::Early));
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
                e.channel = [Channel::Online, Channel::Postal, Channel::InPerson, Channel::Online][j];
                e.new_due_at = (j == 3).then_some(T0 + 11 * DAY);
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

    #[test]
    fn installing_a_calendar_counts_once() {
        // The shipped calendar again: the other tests of this process see no difference.
        let shipped = || WorkingCalendar::parse(include_str!("../../../deploy/holidays.toml")).unwrap();
        assert!(install_calendar(shipped()), "the first calendar installed is the active one");
        assert!(!install_calendar(shipped()), "a second one is refused");
        assert_eq!(active_calendar().last_year(), 2027);
    }

    #[test]
    fn end_kinds_are_stored_as_the_national_sync_state_codes() {
        let kinds =
            [EndKind::Processed, EndKind::Returned, EndKind::Stopped, EndKind::Withdrawn, EndKind::SupplementPending];
        assert_eq!(kinds.map(EndKind::code), [9, 10, 8, 7, 5]);
    }

    #[test]
    fn only_a_resolved_outcome_has_a_resolved_day_and_only_a_late_one_is_late() {
        let resolved = |timeliness| Outcome::Resolved { end: T0, kind: EndKind::Processed, timeliness, deadline: None };
        assert_eq!(resolved(Timeliness::OnTime).resolved_day(), Some(LocalDay::from_ymd(2019, 11, 28).unwrap()));
        assert_eq!(Outcome::Open { deadline: Some(T0) }.resolved_day(), None);
        assert_eq!(Outcome::Refused { at: T0 }.resolved_day(), None);
        assert!(resolved(Timeliness::Late).is_late());
        assert!(!resolved(Timeliness::OnTime).is_late() && !resolved(Timeliness::Early).is_late());
        assert!(!Outcome::Open { deadline: Some(T0) }.is_late());
    }

    #[test]
    fn an_earlier_reception_arriving_later_replaces_the_later_one() {
        let mut d = DossierLifecycle::default();
        let late_copy =
            DossierEvent { channel: Channel::Postal, due_at: Some(T0 + 9 * DAY), ..event(Received, T0 + HOUR) };
        assert!(d.apply(&late_copy));
        assert!(d.apply(&event(Received, T0)), "an earlier reception changes the dossier");
        assert_eq!(
            (d.received_at, d.received_channel, d.due_at),
            (Some(T0), Some(Channel::Online), Some(T0 + 5 * DAY))
        );
        assert!(!d.apply(&late_copy), "the later one changes nothing now");
        assert_eq!(d.received_at, Some(T0));
    }

    #[test]
    fn a_flag_raised_by_a_later_event_is_a_change() {
        let mut d = lifecycle(&[(Received, T0)]);
        let fee = DossierEvent { fee_bearing: true, ..event(InProcess, T0 + HOUR) };
        assert!(d.apply(&fee) && d.fee_bearing);
        assert!(!d.apply(&fee), "raised once");
        let postal = DossierEvent { result_channel: Some(Channel::Postal), ..event(InProcess, T0 + 2 * HOUR) };
        assert!(d.apply(&postal) && d.result_postal);
        assert!(!d.apply(&postal), "raised once");
    }

    #[test]
    fn the_earliest_end_wins_whatever_the_arrival_order() {
        let mut d = lifecycle(&[(Received, T0), (Processed, T0 + 2 * HOUR)]);
        assert!(d.apply(&event(Processed, T0 + HOUR)), "an earlier processing date changes the dossier");
        assert_eq!(d.processed_at, Some(T0 + HOUR));
        assert!(!d.apply(&event(Processed, T0 + 2 * HOUR)), "the later one changes nothing now");
        assert_eq!(d.processed_at, Some(T0 + HOUR));
    }

    #[test]
    fn receptions_at_one_instant_with_one_appointment_keep_the_smallest_channel_code() {
        let at = |channel| DossierEvent { channel, online_level: 3, ..event(Received, T0) };
        for order in [[Channel::Postal, Channel::InPerson], [Channel::InPerson, Channel::Postal]] {
            let mut d = DossierLifecycle::default();
            for channel in order {
                d.apply(&at(channel));
            }
            assert_eq!(d.received_channel, Some(Channel::InPerson), "{order:?}");
        }
        let mut d = DossierLifecycle::default();
        d.apply(&at(Channel::Postal));
        assert!(d.apply(&at(Channel::Online)), "online (2) before postal (3)");
        assert_eq!(d.received_channel, Some(Channel::Online));
    }

    #[test]
    fn letters_at_one_instant_keep_the_earliest_new_date_whatever_the_arrival_order() {
        let letter = |days| DossierEvent { new_due_at: Some(T0 + days * DAY), ..event(ApologyIssued, T0 + DAY) };
        for order in [[9, 7], [7, 9]] {
            let mut d = lifecycle(&[(Received, T0)]);
            for days in order {
                d.apply(&letter(days));
            }
            assert_eq!(d.apology_due_at, Some(T0 + 7 * DAY), "{order:?}");
        }
    }

    #[test]
    fn a_supplement_completed_at_the_instant_it_was_requested_pauses_nothing_and_leaves_none_pending() {
        let d = lifecycle(&[
            (Received, T0),
            (SupplementRequested, T0 + DAY),
            (SupplementReceived, T0 + DAY),
            (Processed, T0 + 3 * DAY),
        ]);
        assert!(
            matches!(d.outcome(LATER, calendar()), Outcome::Resolved { kind: EndKind::Processed, end, .. } if end == T0 + 3 * DAY),
            "{:?}",
            d.outcome(LATER, calendar())
        );
        // Between the request and the processing, nothing is pending: the dossier is open.
        assert!(
            matches!(d.outcome(T0 + 2 * DAY, calendar()), Outcome::Open { .. }),
            "{:?}",
            d.outcome(T0 + 2 * DAY, calendar())
        );
    }

    #[test]
    fn a_legal_maximum_learned_from_a_later_event_is_a_change() {
        let mut d = DossierLifecycle::default();
        d.apply(&DossierEvent { legal_max_days: None, ..event(Received, T0) });
        let later = DossierEvent { legal_max_days: Some(15), ..event(InProcess, T0 + HOUR) };
        assert!(d.apply(&later), "the legal maximum is the only new fact");
        assert_eq!(d.legal_max_days, Some(15));
        assert!(!d.apply(&later));
    }

    #[test]
    fn a_supplement_requested_at_the_instant_judged_is_pending_then() {
        let d = lifecycle(&[(Received, T0), (SupplementRequested, T0 + DAY)]);
        assert!(matches!(d.outcome(T0 + DAY - 1, calendar()), Outcome::Open { .. }));
        assert!(
            matches!(d.outcome(T0 + DAY, calendar()), Outcome::Resolved { end, kind: EndKind::SupplementPending, .. } if end == T0 + DAY),
            "{:?}",
            d.outcome(T0 + DAY, calendar())
        );
    }

    #[test]
    fn weekdays_beyond_the_calendar_stop_at_the_last_representable_day() {
        assert_eq!(add_working_days(calendar(), LocalDay(u16::MAX - 2), 10), LocalDay(u16::MAX));
    }
}
