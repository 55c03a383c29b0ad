//! A deterministic simulated province: dossiers flowing through every unit's
//! one-stop desk in local working hours on weekdays, its administrative budget
//! over the fiscal year, and its staffing month by month.
//!
//! Each unit gets its own online share, spread around the province's 30% target
//! so that some units sit below it. Dossiers are submitted online or at the desk
//! or by post, received (or refused), sometimes paused for a supplement,
//! withdrawn or stopped, processed within or past their appointment date (late
//! ones mostly with an apology letter), paid online when fee-bearing and fully
//! online, and returned, some by post. Budgets are allocated, committed,
//! disbursed, saved and disclosed; staffing snapshots give quotas, filled
//! positions and deputies (some units above the limit), with hires and departures.
//!
//! The same seed gives the same events, byte for byte. Events come out in
//! event-time order, generated one day at a time, so memory stays flat however
//! long the run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{Datelike, Weekday};
use parpulse_core::time::now_micros;
use parpulse_core::{
    AgencyGroup, AgencyRegistry, BudgetEvent, BudgetEventKind, Channel, DossierEvent, DossierEventKind, Event,
    LocalDay, Position, StaffingEvent, StaffingEventKind,
};

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// SplitMix64: tiny, fast and stable across crate versions (determinism is a feature here).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high).
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next_u64() % (high - low).max(1) as u64) as i64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    pub seed: u64,
    pub first_day: LocalDay,
    pub days: u32,
    /// Mean dossiers received per unit per working day.
    pub dossiers_per_unit_day: u32,
    /// Events after this instant are not emitted (a simulation of "up to now").
    pub end_micros: i64,
    /// Share of dossiers (0 to 1) given one of the cases where the official rules differ
    /// from the obvious reading (docs/KPIS.md): an appointment date that is not the legal
    /// maximum, two supplement requests, a request still waiting, a request after the
    /// deadline, an apology on an on-time dossier or sent too late, a return recorded before
    /// the processing, a stop before a processing. 0 (the default) leaves the stream exactly
    /// as before; tests turn it up ([`SimulatorConfig::with_hard_cases`]).
    pub hard_cases: f64,
}

impl SimulatorConfig {
    /// The last `days` days up to today, ending now.
    pub fn recent(seed: u64, days: u32, dossiers_per_unit_day: u32) -> Self {
        Self::ending_at(seed, days, dossiers_per_unit_day, now_micros())
    }

    /// `days` days ending at the instant `end_micros`: the same arguments always
    /// give the same events (`recent` moves with the clock).
    pub fn ending_at(seed: u64, days: u32, dossiers_per_unit_day: u32, end_micros: i64) -> Self {
        let last_day = LocalDay::of_micros(end_micros);
        Self {
            seed,
            first_day: LocalDay(last_day.0 - days as u16 + 1),
            days,
            dossiers_per_unit_day,
            end_micros,
            hard_cases: 0.0,
        }
    }

    /// The same province with a share `rate` of dossiers in the hard cases.
    pub fn with_hard_cases(self, rate: f64) -> Self {
        Self { hard_cases: rate.clamp(0.0, 1.0), ..self }
    }
}

/// The cases where the official rules differ from the obvious reading (docs/KPIS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HardCase {
    ShortAppointment,
    LegalMaximumOnly,
    TwoSupplements,
    SupplementPending,
    RequestAfterDeadline,
    ApologyOnTime,
    ApologyTooLate,
    ReturnBeforeProcessing,
    StopBeforeProcessing,
}

impl HardCase {
    const ALL: [HardCase; 9] = [
        HardCase::ShortAppointment,
        HardCase::LegalMaximumOnly,
        HardCase::TwoSupplements,
        HardCase::SupplementPending,
        HardCase::RequestAfterDeadline,
        HardCase::ApologyOnTime,
        HardCase::ApologyTooLate,
        HardCase::ReturnBeforeProcessing,
        HardCase::StopBeforeProcessing,
    ];
}

/// Per-unit behaviour, drawn once from the seed.
#[derive(Debug, Clone)]
struct UnitProfile {
    code: String,
    group: AgencyGroup,
    online_share: f64,
    postal_share: f64,
    late_share: f64,
    /// Annual administrative budget, VND.
    budget_vnd: i64,
    staff_quota: i32,
    deputies: i32,
    /// The unit's procedure codes in the demo catalogue (deploy/procedures.toml); empty
    /// when the registry is not the demo's.
    procedures: Vec<String>,
}

/// The procedure of a dossier from a draw in 0..100: one of the unit's catalogued
/// procedures, except 2% of dossiers (draws 98 and 99: codes 1.001098 and 1.001099, in no
/// catalogue) that show as dossiers of unknown procedures. Without a catalogue, codes
/// 1.001000-1.001099 as before.
fn procedure_code(procedures: &[String], draw: i64) -> String {
    match procedures {
        [] => format!("1.00{:04}", 1000 + draw),
        _ if draw >= 98 => format!("1.00{:04}", 1000 + draw),
        _ => procedures[draw as usize % procedures.len()].clone(),
    }
}

pub struct Simulator {
    config: SimulatorConfig,
    rng: SplitMix64,
    units: Vec<UnitProfile>,
    next_day: u32,
    pending: BinaryHeap<Reverse<(i64, u64, usize)>>,
    slots: Vec<Option<Event>>,
    free_slots: Vec<usize>,
    sequence: u64,
    /// Whether the first working day was generated (budgets and staffing open then).
    opened: bool,
}

impl Simulator {
    pub fn new(config: SimulatorConfig, registry: &AgencyRegistry) -> Self {
        let mut rng = SplitMix64::new(config.seed);
        let count = registry.len().max(1) as f64;
        // Spread shares from 12% to 55% over the units, in an order drawn from the seed.
        let mut rank: Vec<usize> = (0..registry.len()).collect();
        for i in (1..rank.len()).rev() {
            rank.swap(i, rng.range(0, i as i64 + 1) as usize);
        }
        // The demo catalogue, when it fits the registry: dossiers name the unit's procedures.
        let catalogue =
            parpulse_core::procedures::ProcedureCatalogue::from_toml(parpulse_core::procedures::DEMO_TOML, registry)
                .unwrap_or_default();
        let units = registry
            .iter()
            .zip(rank)
            .map(|(agency, rank)| {
                let spread = 0.12 + 0.43 * ((rank as f64 + rng.unit()) / count);
                let deputy_limit = deputy_limit(agency.group);
                UnitProfile {
                    code: agency.code.to_string(),
                    group: agency.group,
                    online_share: spread,
                    postal_share: 0.04 + 0.08 * rng.unit(),
                    late_share: 0.02 + 0.10 * rng.unit(),
                    budget_vnd: rng.range(8, 40) * 1_000_000_000,
                    staff_quota: rng.range(25, 90) as i32,
                    // About one unit in five keeps a deputy above the limit.
                    deputies: deputy_limit + i32::from(rng.chance(0.2)),
                    procedures: catalogue.of_unit(agency.code.as_str()).map(|p| p.code.clone()).collect(),
                }
            })
            .collect();
        Self {
            config,
            rng,
            units,
            next_day: 0,
            pending: BinaryHeap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            sequence: 0,
            opened: false,
        }
    }

    /// The drawn online share of each unit (what the simulator aims at, not a KPI result).
    pub fn target_online_shares(&self) -> Vec<(String, f64)> {
        self.units.iter().map(|u| (u.code.clone(), u.online_share)).collect()
    }

    fn push(&mut self, event: Event) {
        if event.occurred_at() > self.config.end_micros {
            return;
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                self.slots.len() - 1
            }
        };
        let at = self.slots[slot].as_ref().expect("just stored").occurred_at();
        self.sequence += 1;
        self.pending.push(Reverse((at, self.sequence, slot)));
    }

    fn event_id(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    /// Generates the lifecycles of dossiers received on day `index`.
    fn generate_day(&mut self, index: u32) {
        let day = LocalDay(self.config.first_day.0 + index as u16);
        if matches!(day.date().weekday(), Weekday::Sat | Weekday::Sun) {
            return;
        }
        let opening = day.start_micros() + (7 * 60 + 30) * MICROS_PER_MINUTE; // 07:30
        let working_minutes = 9 * 60; // until 16:30
        let first = !self.opened;
        self.opened = true;
        for u in 0..self.units.len() {
            let unit = self.units[u].clone();
            self.generate_budget(&unit, day, first, opening);
            self.generate_staffing(&unit, day, first, opening);
        }
        for u in 0..self.units.len() {
            let mean = self.config.dossiers_per_unit_day as i64;
            let count = self.rng.range(mean / 2, mean + mean / 2 + 1);
            for n in 0..count {
                let unit = self.units[u].clone();
                let received_at = opening + self.rng.range(0, working_minutes) * MICROS_PER_MINUTE;
                self.generate_dossier(&unit, day, n as u32, received_at);
            }
        }
    }

    fn generate_dossier(&mut self, unit: &UnitProfile, day: LocalDay, n: u32, received_at: i64) {
        let online = self.rng.chance(unit.online_share);
        let channel = if online {
            Channel::Online
        } else if self.rng.chance(unit.postal_share) {
            Channel::Postal
        } else {
            Channel::InPerson
        };
        let online_level = if online { 3 + self.rng.range(0, 2) as i32 } else { 2 + self.rng.range(0, 3) as i32 };
        let legal_max_days = [3, 5, 7, 10, 15, 20][self.rng.range(0, 6) as usize];
        // The hard case of this dossier, if any (drawn only when the mode is on, so the
        // default stream is unchanged).
        let hard = (self.config.hard_cases > 0.0 && self.rng.chance(self.config.hard_cases))
            .then(|| HardCase::ALL[self.rng.range(0, HardCase::ALL.len() as i64) as usize]);
        let due_at = match hard {
            // The appointment is set at 17:00 of the day before the legal maximum ends.
            Some(HardCase::ShortAppointment) => {
                LocalDay::of_micros(received_at + i64::from(legal_max_days - 1) * MICROS_PER_DAY).start_micros()
                    + 17 * 60 * MICROS_PER_MINUTE
            }
            _ => received_at + i64::from(legal_max_days) * MICROS_PER_DAY,
        };
        let result_channel = if self.rng.chance(unit.postal_share * 1.5) { Channel::Postal } else { channel };
        let fee_bearing = self.rng.chance(0.4);
        let template = DossierEvent {
            event_id: String::new(),
            agency_code: unit.code.clone(),
            occurred_at: 0,
            recorded_at: 0,
            source: "simulator".into(),
            dossier_id: format!("{}-{}-{:05}", unit.code, day.date().format("%y%m%d"), n),
            procedure_code: procedure_code(&unit.procedures, self.rng.range(0, 100)),
            kind: DossierEventKind::Received,
            channel,
            online_level,
            result_channel: Some(result_channel),
            // Without an appointment date the legal maximum decides, in working days.
            due_at: (hard != Some(HardCase::LegalMaximumOnly)).then_some(due_at),
            legal_max_days: Some(legal_max_days),
            fee_bearing,
            digitized: self.rng.chance(0.6),
            new_due_at: None,
        };
        let mut steps = Vec::with_capacity(8);
        if online {
            steps.push((DossierEventKind::Submitted, received_at - self.rng.range(5, 600) * MICROS_PER_MINUTE));
            if self.rng.chance(0.03) {
                // Incomplete online submission refused at reception (từ chối tiếp nhận).
                steps.push((DossierEventKind::Refused, received_at));
                self.push_steps(&template, steps);
                return;
            }
        }
        steps.push((DossierEventKind::Received, received_at));
        let started = received_at + self.rng.range(10, 240) * MICROS_PER_MINUTE;
        steps.push((DossierEventKind::InProcess, started));
        if let Some(case) = hard {
            if self.push_hard_case(&template, &mut steps, case, started, due_at, legal_max_days) {
                return;
            }
        }
        // A supplement request pauses the clock until the citizen completes the file.
        let mut paused = 0;
        if self.rng.chance(0.08) {
            let requested = started + self.rng.range(60, 2 * 24 * 60) * MICROS_PER_MINUTE;
            paused = self.rng.range(1, 5) * MICROS_PER_DAY;
            steps.push((DossierEventKind::SupplementRequested, requested));
            steps.push((DossierEventKind::SupplementReceived, requested + paused));
        }
        if self.rng.chance(0.01) {
            steps.push((
                DossierEventKind::Withdrawn,
                started + self.rng.range(60, 24 * 60) * MICROS_PER_MINUTE + paused,
            ));
            self.push_steps(&template, steps);
            return;
        }
        if self.rng.chance(0.005) {
            // Processing stopped by the authority (dừng xử lý), e.g. the matter belongs to
            // another procedure: the dossier ends without a result.
            steps.push((
                DossierEventKind::Stopped,
                started + self.rng.range(60, 3 * 24 * 60) * MICROS_PER_MINUTE + paused,
            ));
            self.push_steps(&template, steps);
            return;
        }
        let late = self.rng.chance(unit.late_share);
        let processed_at = paused
            + if late {
                due_at + self.rng.range(1, 5 * 24 * 60) * MICROS_PER_MINUTE
            } else {
                received_at + self.rng.range(60, (legal_max_days as i64 * 24 * 60).max(61)) * MICROS_PER_MINUTE
            };
        if late && self.rng.chance(0.7) {
            // The apology letter (thư xin lỗi) goes out a day before the deadline in most cases.
            steps.push((DossierEventKind::ApologyIssued, due_at + paused - MICROS_PER_DAY));
        }
        if fee_bearing {
            steps.push((DossierEventKind::AwaitingPayment, processed_at - 30 * MICROS_PER_MINUTE));
            if online_level == 4 && online {
                steps.push((DossierEventKind::PaidOnline, processed_at - 10 * MICROS_PER_MINUTE));
            }
        }
        steps.push((DossierEventKind::Processed, processed_at));
        steps.push((
            DossierEventKind::ResultReturned,
            processed_at + self.rng.range(30, 2 * 24 * 60) * MICROS_PER_MINUTE,
        ));
        self.push_steps(&template, steps);
    }

    /// Adds a hard case's steps after the dossier started; returns true when they end the
    /// dossier's story (the caller then adds nothing more).
    fn push_hard_case(
        &mut self,
        template: &DossierEvent,
        steps: &mut Vec<(DossierEventKind, i64)>,
        case: HardCase,
        started: i64,
        due_at: i64,
        legal_max_days: i32,
    ) -> bool {
        use DossierEventKind::*;
        let hours = |n: i64| n * 60 * MICROS_PER_MINUTE;
        let mut end = |steps: &mut Vec<(DossierEventKind, i64)>, rest: &[(DossierEventKind, i64)]| {
            steps.extend_from_slice(rest);
            self.push_steps(template, std::mem::take(steps));
            true
        };
        match case {
            HardCase::ShortAppointment => false,
            // Processed two calendar days after the legal maximum: on time or late depending
            // on the weekends and holidays in between (working days count).
            HardCase::LegalMaximumOnly => {
                let at = started + i64::from(legal_max_days + 2) * MICROS_PER_DAY;
                end(steps, &[(Processed, at), (ResultReturned, at + hours(3))])
            }
            // Two requests, both answered, processed in time: late by the rule.
            HardCase::TwoSupplements => end(
                steps,
                &[
                    (SupplementRequested, started + hours(2)),
                    (SupplementReceived, started + hours(5)),
                    (SupplementRequested, started + hours(7)),
                    (SupplementReceived, started + hours(9)),
                    (Processed, started + hours(20)),
                ],
            ),
            // Still waiting for its supplement: ends on the request date.
            HardCase::SupplementPending => end(steps, &[(SupplementRequested, started + hours(3))]),
            // A request after the appointment date, answered, then processed.
            HardCase::RequestAfterDeadline => end(
                steps,
                &[
                    (SupplementRequested, due_at + hours(2)),
                    (SupplementReceived, due_at + hours(30)),
                    (Processed, due_at + hours(40)),
                ],
            ),
            // An apology letter although the dossier ends early.
            HardCase::ApologyOnTime => {
                end(steps, &[(ApologyIssued, started + hours(1)), (Processed, started + hours(4))])
            }
            // Late, and the apology goes out on the deadline's day (not a working day before).
            HardCase::ApologyTooLate => {
                end(steps, &[(ApologyIssued, due_at - hours(1)), (Processed, due_at + hours(30))])
            }
            // The return is recorded before the processing, which is late: processing wins.
            HardCase::ReturnBeforeProcessing => {
                end(steps, &[(ResultReturned, started + hours(2)), (Processed, due_at + hours(3))])
            }
            // Stopped, then (wrongly) processed later: the earlier stop ends it.
            HardCase::StopBeforeProcessing => {
                end(steps, &[(Stopped, started + hours(2)), (Processed, due_at + hours(3))])
            }
        }
    }

    fn push_steps(&mut self, template: &DossierEvent, steps: Vec<(DossierEventKind, i64)>) {
        for (kind, at) in steps {
            let event = DossierEvent {
                event_id: self.event_id(),
                kind,
                occurred_at: at,
                recorded_at: at,
                due_at: if kind == DossierEventKind::Submitted || kind == DossierEventKind::Refused {
                    None
                } else {
                    template.due_at
                },
                ..template.clone()
            };
            self.push(Event::Dossier(event));
        }
    }

    /// The fiscal year runs January to December: allocation when the year (or the
    /// simulation) opens, commitments mid-month, disbursements and savings at the
    /// start of each month, disclosure each quarter.
    fn generate_budget(&mut self, unit: &UnitProfile, day: LocalDay, first: bool, opening: i64) {
        let date = day.date();
        let year = date.year();
        let monthly = unit.budget_vnd / 12;
        let at = opening + self.rng.range(0, 8 * 60) * MICROS_PER_MINUTE;
        if first || (date.month() == 1 && date.day() == first_weekday_of_month(day)) {
            self.push_budget(unit, BudgetEventKind::Allocated, year, unit.budget_vnd, at);
        }
        if date.day() == first_weekday_of_month(day) {
            let disbursed = monthly * self.rng.range(70, 105) / 100;
            self.push_budget(unit, BudgetEventKind::Disbursed, year, disbursed, at + MICROS_PER_MINUTE);
            if self.rng.chance(0.5) {
                let saved = monthly * self.rng.range(1, 8) / 100;
                self.push_budget(unit, BudgetEventKind::Saved, year, saved, at + 2 * MICROS_PER_MINUTE);
            }
            if matches!(date.month(), 1 | 4 | 7 | 10) && self.rng.chance(0.8) {
                self.push_budget(unit, BudgetEventKind::Disclosed, year, unit.budget_vnd, at + 3 * MICROS_PER_MINUTE);
            }
        }
        if date.day() == 15 {
            let committed = monthly * self.rng.range(80, 110) / 100;
            self.push_budget(unit, BudgetEventKind::Committed, year, committed, at);
        }
    }

    fn push_budget(&mut self, unit: &UnitProfile, kind: BudgetEventKind, fiscal_year: i32, amount_vnd: i64, at: i64) {
        let event = BudgetEvent {
            event_id: self.event_id(),
            agency_code: unit.code.clone(),
            occurred_at: at,
            recorded_at: at,
            source: "simulator".into(),
            kind,
            fiscal_year,
            category: "chi_quan_ly_hanh_chinh".into(),
            amount_vnd,
        };
        self.push(Event::Budget(event));
    }

    /// A headcount snapshot per position on the first working day of each month
    /// (and when the simulation starts), with hires and departures in between.
    fn generate_staffing(&mut self, unit: &UnitProfile, day: LocalDay, first: bool, opening: i64) {
        let at = opening + self.rng.range(0, 8 * 60) * MICROS_PER_MINUTE;
        let base = StaffingEvent {
            event_id: String::new(),
            agency_code: unit.code.clone(),
            occurred_at: at,
            recorded_at: at,
            source: "simulator".into(),
            kind: StaffingEventKind::HeadcountSnapshot,
            position: Position::Staff,
            quota: None,
            filled: None,
            baseline_year: None,
            baseline_quota: None,
            count: None,
        };
        if first || day.date().day() == first_weekday_of_month(day) {
            let limit = deputy_limit(unit.group);
            let filled_staff = unit.staff_quota - self.rng.range(0, 4) as i32;
            for (position, quota, filled, baseline) in [
                (Position::Head, 1, 1, 1),
                (Position::Deputy, limit, unit.deputies, limit + 1),
                // The 2015 baseline is about 10% above today's quota (tinh giản biên chế).
                (Position::Staff, unit.staff_quota, filled_staff, unit.staff_quota * 110 / 100),
            ] {
                let event = StaffingEvent {
                    event_id: self.event_id(),
                    position,
                    quota: Some(quota),
                    filled: Some(filled),
                    baseline_year: Some(2015),
                    baseline_quota: Some(baseline),
                    ..base.clone()
                };
                self.push(Event::Staffing(event));
            }
        } else if self.rng.chance(0.02) {
            let kind = if self.rng.chance(0.5) { StaffingEventKind::Hired } else { StaffingEventKind::Departed };
            let event = StaffingEvent { event_id: self.event_id(), kind, count: Some(1), ..base };
            self.push(Event::Staffing(event));
        }
    }
}

/// The deputy limit: on average 3 deputy directors per department, 2 deputy heads
/// per district office (docs/KPIS.md).
fn deputy_limit(group: AgencyGroup) -> i32 {
    match group {
        AgencyGroup::Department => 3,
        AgencyGroup::District => 2,
    }
}

/// Day of month of the first Monday-to-Friday day of `day`'s month.
fn first_weekday_of_month(day: LocalDay) -> u32 {
    let date = day.date();
    (1..=7)
        .find(|d| date.with_day(*d).is_some_and(|x| !matches!(x.weekday(), Weekday::Sat | Weekday::Sun)))
        .unwrap_or(1)
}

impl Iterator for Simulator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            // Dossiers generated for a day have no event earlier than the previous day
            // (an online submission precedes reception by at most 10 hours), so pending
            // events before that point are final in order.
            let horizon = if self.next_day < self.config.days {
                LocalDay(self.config.first_day.0 + self.next_day as u16).start_micros() - MICROS_PER_DAY
            } else {
                i64::MAX
            };
            if let Some(&Reverse((at, _, slot))) = self.pending.peek() {
                if at < horizon {
                    self.pending.pop();
                    self.free_slots.push(slot);
                    return self.slots[slot].take();
                }
            }
            if self.next_day >= self.config.days {
                return None;
            }
            let index = self.next_day;
            self.next_day += 1;
            self.generate_day(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SimulatorConfig {
        SimulatorConfig {
            seed: 7,
            first_day: LocalDay::from_ymd(2019, 11, 1).unwrap(),
            days: 10,
            dossiers_per_unit_day: 6,
            end_micros: LocalDay::from_ymd(2019, 11, 11).unwrap().start_micros(),
            hard_cases: 0.0,
        }
    }

    /// With the hard cases turned up, every event still passes the gate, and each case
    /// leaves its mark in the stream.
    #[test]
    fn hard_cases_are_valid_and_all_present() {
        let registry = AgencyRegistry::demo();
        let events: Vec<Event> = Simulator::new(config().with_hard_cases(0.5), &registry).collect();
        let policy = parpulse_core::validate::ValidationPolicy::default();
        let mut requests: std::collections::HashMap<String, usize> = Default::default();
        let (mut stopped_then_processed, mut returned_first) = (0, 0);
        let mut kinds_by_dossier: std::collections::HashMap<String, Vec<DossierEventKind>> = Default::default();
        for event in &events {
            parpulse_core::validate::validate_event(event, &registry, &policy, config().end_micros)
                .unwrap_or_else(|r| panic!("{r} for {event:?}"));
            if let Event::Dossier(e) = event {
                kinds_by_dossier.entry(e.dossier_id.clone()).or_default().push(e.kind);
                if e.kind == DossierEventKind::SupplementRequested {
                    *requests.entry(e.dossier_id.clone()).or_default() += 1;
                }
            }
        }
        for kinds in kinds_by_dossier.values() {
            let position = |k| kinds.iter().position(|x| *x == k);
            match (position(DossierEventKind::Stopped), position(DossierEventKind::Processed)) {
                (Some(s), Some(p)) if s < p => stopped_then_processed += 1,
                _ => {}
            }
            match (position(DossierEventKind::ResultReturned), position(DossierEventKind::Processed)) {
                (Some(r), Some(p)) if r < p => returned_first += 1,
                _ => {}
            }
        }
        let pending = kinds_by_dossier
            .values()
            .filter(|k| {
                k.contains(&DossierEventKind::SupplementRequested) && !k.contains(&DossierEventKind::SupplementReceived)
            })
            .count();
        assert!(requests.values().any(|n| *n >= 2), "two supplement requests");
        assert!(
            pending > 0 && stopped_then_processed > 0 && returned_first > 0,
            "{pending} {stopped_then_processed} {returned_first}"
        );
        // The default stream is unchanged by the mode's existence.
        let plain: Vec<Event> = Simulator::new(config(), &registry).collect();
        let again: Vec<Event> = Simulator::new(config().with_hard_cases(0.0), &registry).collect();
        assert_eq!(plain, again);
        assert_ne!(plain.len(), 0);
    }

    #[test]
    fn same_seed_same_events() {
        let registry = AgencyRegistry::demo();
        let a: Vec<_> = Simulator::new(config(), &registry).collect();
        let b: Vec<_> = Simulator::new(config(), &registry).collect();
        assert!(a.len() > 1000);
        assert_eq!(a, b);
    }

    #[test]
    fn events_come_out_in_event_time_order_and_before_the_end() {
        let events: Vec<_> = Simulator::new(config(), &AgencyRegistry::demo()).collect();
        assert!(events.windows(2).all(|w| w[0].occurred_at() <= w[1].occurred_at()));
        assert!(events.iter().all(|e| e.occurred_at() <= config().end_micros));
    }

    #[test]
    fn every_event_passes_validation() {
        let registry = AgencyRegistry::demo();
        let policy = parpulse_core::validate::ValidationPolicy::default();
        for event in Simulator::new(config(), &registry) {
            parpulse_core::validate::validate_event(&event, &registry, &policy, config().end_micros)
                .unwrap_or_else(|r| panic!("{r} for {event:?}"));
        }
    }

    #[test]
    fn dossiers_name_their_units_catalogued_procedures_except_about_two_percent() {
        let catalogue = parpulse_core::procedures::ProcedureCatalogue::demo();
        let (mut known, mut unknown) = (0, 0);
        for event in Simulator::new(config(), &AgencyRegistry::demo()) {
            let Event::Dossier(e) = event else { continue };
            if e.kind != DossierEventKind::Received {
                continue;
            }
            match catalogue.get(&e.agency_code, &e.procedure_code) {
                Some(_) => known += 1,
                None => {
                    assert!(["1.001098", "1.001099"].contains(&e.procedure_code.as_str()), "{}", e.procedure_code);
                    unknown += 1
                }
            }
        }
        let share = unknown as f64 / (known + unknown) as f64;
        assert!((0.01..0.03).contains(&share), "{unknown} unknown of {}", known + unknown);
    }

    #[test]
    fn some_units_fall_below_the_thirty_percent_line_and_some_above() {
        let sim = Simulator::new(config(), &AgencyRegistry::demo());
        let shares = sim.target_online_shares();
        assert!(shares.iter().any(|(_, s)| *s < 0.30));
        assert!(shares.iter().any(|(_, s)| *s > 0.30));
    }

    #[test]
    fn no_dossier_is_received_on_a_weekend() {
        for event in Simulator::new(config(), &AgencyRegistry::demo()) {
            let Event::Dossier(event) = event else { continue };
            if event.kind == DossierEventKind::Received {
                let weekday = LocalDay::of_micros(event.occurred_at).date().weekday();
                assert!(!matches!(weekday, Weekday::Sat | Weekday::Sun), "{event:?}");
            }
        }
    }

    #[test]
    fn the_province_has_every_kind_of_event() {
        use std::collections::HashSet;
        let events: Vec<_> = Simulator::new(config(), &AgencyRegistry::demo()).collect();
        let mut dossier_kinds = HashSet::new();
        let mut budget_kinds = HashSet::new();
        let mut staffing_kinds = HashSet::new();
        for event in &events {
            match event {
                Event::Dossier(e) => dossier_kinds.insert(format!("{:?}", e.kind)),
                Event::Budget(e) => budget_kinds.insert(format!("{:?}", e.kind)),
                Event::Staffing(e) => staffing_kinds.insert(format!("{:?}", e.kind)),
            };
        }
        for kind in [
            "Submitted",
            "Received",
            "Refused",
            "InProcess",
            "SupplementRequested",
            "SupplementReceived",
            "AwaitingPayment",
            "Withdrawn",
            "Stopped",
            "Processed",
            "ResultReturned",
            "ApologyIssued",
            "PaidOnline",
        ] {
            assert!(dossier_kinds.contains(kind), "no {kind} dossier event");
        }
        // Committed is booked on the 15th, so a 10-day run from the 1st may lack it.
        for kind in ["Allocated", "Disbursed"] {
            assert!(budget_kinds.contains(kind), "no {kind} budget event");
        }
        assert!(staffing_kinds.contains("HeadcountSnapshot"));
    }

    #[test]
    fn some_units_have_more_deputies_than_the_limit() {
        let events: Vec<_> = Simulator::new(SimulatorConfig { seed: 3, ..config() }, &AgencyRegistry::demo()).collect();
        let over = events.iter().any(|e| {
            matches!(e, Event::Staffing(s)
            if s.position == Position::Deputy && s.filled > s.quota)
        });
        assert!(over);
    }
}
