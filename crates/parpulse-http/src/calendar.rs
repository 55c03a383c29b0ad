//! The working-day calendar as the process sees it: `parpulse_calendar_last_year` (the last
//! year `deploy/holidays.toml` covers) and `parpulse_calendar_beyond_total` (judgments that
//! needed a day outside it and counted weekdays only for it, with a warning in the log).

use parpulse_core::lifecycle::{active_calendar, DAYS_BEYOND_CALENDAR};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, Registry};
use std::sync::atomic::Ordering;

struct CalendarCollector {
    beyond: IntCounter,
    last_year: IntGauge,
}

impl Collector for CalendarCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.beyond.desc().into_iter().chain(self.last_year.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let total = DAYS_BEYOND_CALENDAR.load(Ordering::Relaxed);
        let new = total.saturating_sub(self.beyond.get());
        if new > 0 {
            tracing::warn!(
                judgments = new,
                last_year = active_calendar().last_year(),
                "deadlines reached days beyond the working-day calendar and were counted in weekdays only: \
                 add the coming year to deploy/holidays.toml"
            );
            self.beyond.inc_by(new);
        }
        self.last_year.set(i64::from(active_calendar().last_year()));
        self.beyond.collect().into_iter().chain(self.last_year.collect()).collect()
    }
}

/// Registers the calendar's metrics in `registry` (processes that judge dossiers).
pub fn register_calendar_metrics(registry: &Registry) {
    let collector = CalendarCollector {
        beyond: IntCounter::new(
            "parpulse_calendar_beyond_total",
            "Judgments whose deadline needed a day beyond the working-day calendar (deploy/holidays.toml); \
             weekdays were counted for it",
        )
        .expect("valid metric"),
        last_year: IntGauge::new(
            "parpulse_calendar_last_year",
            "The last year the working-day calendar (deploy/holidays.toml) covers",
        )
        .expect("valid metric"),
    };
    registry.register(Box::new(collector)).expect("calendar metrics are registered once");
}
