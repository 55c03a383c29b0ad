//! A deterministic simulated province: dossiers flowing through every unit's
//! one-stop desk, in local working hours on weekdays.
//!
//! Each unit gets its own online share, spread around the province's 30% target
//! so that some units sit below it; dossiers are received, processed within or
//! past their appointment date, and returned (some by post). The same seed gives
//! the same events, byte for byte. Events come out in event-time order, generated
//! one day at a time, so memory stays flat however long the run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{Datelike, Weekday};
use parpulse_core::time::now_micros;
use parpulse_core::{AgencyRegistry, Channel, DossierEvent, DossierEventKind, LocalDay};

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
}

impl SimulatorConfig {
    /// The last `days` days up to today, ending now.
    pub fn recent(seed: u64, days: u32, dossiers_per_unit_day: u32) -> Self {
        let now = now_micros();
        let today = LocalDay::of_micros(now);
        Self {
            seed,
            first_day: LocalDay(today.0 - days as u16 + 1),
            days,
            dossiers_per_unit_day,
            end_micros: now,
        }
    }
}

/// Per-unit behaviour, drawn once from the seed.
#[derive(Debug, Clone)]
struct UnitProfile {
    code: String,
    online_share: f64,
    postal_share: f64,
    late_share: f64,
}

pub struct Simulator {
    config: SimulatorConfig,
    rng: SplitMix64,
    units: Vec<UnitProfile>,
    next_day: u32,
    pending: BinaryHeap<Reverse<(i64, u64, usize)>>,
    slots: Vec<Option<DossierEvent>>,
    free_slots: Vec<usize>,
    sequence: u64,
}

impl Simulator {
    pub fn new(config: SimulatorConfig, registry: &AgencyRegistry) -> Self {
        let mut rng = SplitMix64::new(config.seed);
        let count = registry.len().max(1) as f64;
        let units = registry
            .iter()
            .enumerate()
            .map(|(i, agency)| {
                // Spread shares from 12% to 55% over the units, shuffled by the seed's draw.
                let spread = 0.12 + 0.43 * ((i as f64 + rng.unit()) / count);
                UnitProfile {
                    code: agency.code.to_string(),
                    online_share: spread,
                    postal_share: 0.04 + 0.08 * rng.unit(),
                    late_share: 0.02 + 0.10 * rng.unit(),
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
        }
    }

    /// The drawn online share of each unit (what the simulator aims at, not a KPI result).
    pub fn target_online_shares(&self) -> Vec<(String, f64)> {
        self.units.iter().map(|u| (u.code.clone(), u.online_share)).collect()
    }

    fn push(&mut self, event: DossierEvent) {
        if event.occurred_at > self.config.end_micros {
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
        let at = self.slots[slot].as_ref().expect("just stored").occurred_at;
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
        let due_at = received_at + i64::from(legal_max_days) * MICROS_PER_DAY;
        let late = self.rng.chance(unit.late_share);
        let processed_at = if late {
            due_at + self.rng.range(1, 5 * 24 * 60) * MICROS_PER_MINUTE
        } else {
            received_at + self.rng.range(60, (legal_max_days as i64 * 24 * 60).max(61)) * MICROS_PER_MINUTE
        };
        let result_channel = if self.rng.chance(unit.postal_share * 1.5) { Channel::Postal } else { channel };
        let template = DossierEvent {
            event_id: String::new(),
            agency_code: unit.code.clone(),
            occurred_at: 0,
            recorded_at: 0,
            source: "simulator".into(),
            dossier_id: format!("{}-{}-{:05}", unit.code, day.date().format("%y%m%d"), n),
            procedure_code: format!("1.00{:04}", self.rng.range(1000, 1100)),
            kind: DossierEventKind::Received,
            channel,
            online_level,
            result_channel: Some(result_channel),
            due_at: Some(due_at),
            legal_max_days: Some(legal_max_days),
            fee_bearing: self.rng.chance(0.4),
            digitized: self.rng.chance(0.6),
        };
        let mut steps = Vec::with_capacity(6);
        if online {
            steps.push((DossierEventKind::Submitted, received_at - self.rng.range(5, 600) * MICROS_PER_MINUTE));
        }
        steps.push((DossierEventKind::Received, received_at));
        steps.push((DossierEventKind::InProcess, received_at + self.rng.range(10, 240) * MICROS_PER_MINUTE));
        if late {
            // The apology letter (thư xin lỗi) goes out before the deadline in most cases.
            if self.rng.chance(0.7) {
                steps.push((DossierEventKind::ApologyIssued, due_at - MICROS_PER_DAY));
            }
        }
        steps.push((DossierEventKind::Processed, processed_at));
        steps.push((DossierEventKind::ResultReturned, processed_at + self.rng.range(30, 2 * 24 * 60) * MICROS_PER_MINUTE));
        for (kind, at) in steps {
            let event = DossierEvent {
                event_id: self.event_id(),
                kind,
                occurred_at: at,
                recorded_at: at,
                due_at: if kind == DossierEventKind::Submitted { None } else { template.due_at },
                ..template.clone()
            };
            self.push(event);
        }
    }
}

impl Iterator for Simulator {
    type Item = DossierEvent;

    fn next(&mut self) -> Option<DossierEvent> {
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
        }
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
        assert!(events.windows(2).all(|w| w[0].occurred_at <= w[1].occurred_at));
        assert!(events.iter().all(|e| e.occurred_at <= config().end_micros));
    }

    #[test]
    fn every_event_passes_validation() {
        let registry = AgencyRegistry::demo();
        let policy = parpulse_core::validate::ValidationPolicy::default();
        for event in Simulator::new(config(), &registry) {
            parpulse_core::validate::validate_dossier(&event, &registry, &policy, config().end_micros)
                .unwrap_or_else(|r| panic!("{r} for {event:?}"));
        }
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
            if event.kind == DossierEventKind::Received {
                let weekday = LocalDay::of_micros(event.occurred_at).date().weekday();
                assert!(!matches!(weekday, Weekday::Sat | Weekday::Sun), "{event:?}");
            }
        }
    }
}
