//! Reporting days in the province's time zone.
//!
//! Asia/Ho_Chi_Minh has been UTC+7 without daylight saving since 1975, and
//! validation refuses events before 2000, so a fixed offset is exact here and
//! needs no time-zone database.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Offset of Asia/Ho_Chi_Minh from UTC, in seconds.
pub const VIETNAM_UTC_OFFSET_SECONDS: i32 = 7 * 3600;

const MICROS_PER_SECOND: i64 = 1_000_000;

/// A calendar day in Asia/Ho_Chi_Minh, stored as days since 1970-01-01
/// (the same number as ClickHouse's `Date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocalDay(pub u16);

fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(VIETNAM_UTC_OFFSET_SECONDS).expect("UTC+7 is a valid offset")
}

impl LocalDay {
    /// The local day an instant (UTC microseconds) falls on. Validated events fall
    /// between 2000 and 2100; an instant outside the range of a ClickHouse `Date`
    /// (1970-01-01 to 2149-06-06) is clamped to its nearest end, never a panic.
    pub fn of_micros(utc_micros: i64) -> LocalDay {
        let local_seconds = utc_micros.div_euclid(MICROS_PER_SECOND) + i64::from(VIETNAM_UTC_OFFSET_SECONDS);
        let days = local_seconds.div_euclid(86_400);
        LocalDay(u16::try_from(days.max(0)).unwrap_or(u16::MAX))
    }

    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<LocalDay> {
        let date = NaiveDate::from_ymd_opt(year, month, day)?;
        let days = date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days();
        u16::try_from(days).ok().map(LocalDay)
    }

    pub fn date(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Days::new(u64::from(self.0))
    }

    /// UTC microseconds of local midnight starting this day.
    pub fn start_micros(self) -> i64 {
        let midnight = self.date().and_hms_opt(0, 0, 0).expect("midnight exists");
        vietnam().from_local_datetime(&midnight).single().expect("a fixed offset has no gaps").timestamp_micros()
    }

    pub fn year(self) -> i32 {
        self.date().year()
    }
}

impl std::fmt::Display for LocalDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.date().format("%Y-%m-%d"))
    }
}

/// Current time, UTC microseconds.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Where "now" comes from for the judgments that depend on it (the exporter's
/// windows and fiscal year, the aggregator's "as of now" lateness): the wall clock in
/// production; a fixed or settable instant in tests, so that local midnight, the 1st
/// of a month, 1 January and weekends can be tested on any day.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    Wall,
    /// Always this instant (UTC microseconds).
    Fixed(i64),
    /// An instant tests move with [`Clock::set`]; clones share it.
    Settable(Arc<AtomicI64>),
}

impl Clock {
    /// A clock standing at `utc_micros` until [`Clock::set`] moves it.
    pub fn settable(utc_micros: i64) -> Clock {
        Clock::Settable(Arc::new(AtomicI64::new(utc_micros)))
    }

    /// A fixed clock at an RFC 3339 instant (`2020-01-01T00:00:00+07:00`).
    pub fn fixed_at(rfc3339: &str) -> Result<Clock, String> {
        DateTime::parse_from_rfc3339(rfc3339.trim())
            .map(|t| Clock::Fixed(t.timestamp_micros()))
            .map_err(|e| format!("{rfc3339:?} is not an RFC 3339 instant such as 2020-01-01T00:00:00+07:00: {e}"))
    }

    /// Moves a settable clock to `utc_micros`; false (and nothing moves) for the others.
    pub fn set(&self, utc_micros: i64) -> bool {
        match self {
            Clock::Settable(at) => {
                at.store(utc_micros, Ordering::SeqCst);
                true
            }
            Clock::Wall | Clock::Fixed(_) => false,
        }
    }

    /// Now, UTC microseconds.
    pub fn now_micros(&self) -> i64 {
        match self {
            Clock::Wall => now_micros(),
            Clock::Fixed(at) => *at,
            Clock::Settable(at) => at.load(Ordering::SeqCst),
        }
    }

    /// Today in Asia/Ho_Chi_Minh.
    pub fn today(&self) -> LocalDay {
        LocalDay::of_micros(self.now_micros())
    }

    pub fn is_wall(&self) -> bool {
        matches!(self, Clock::Wall)
    }
}

/// Formats UTC microseconds as local time, for people.
pub fn format_local(utc_micros: i64) -> String {
    DateTime::from_timestamp_micros(utc_micros)
        .map(|t| t.with_timezone(&vietnam()).format("%Y-%m-%d %H:%M:%S%:z").to_string())
        .unwrap_or_else(|| format!("{utc_micros}us"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evening_in_utc_is_the_next_morning_in_vietnam() {
        // 2019-11-28 17:30 UTC = 2019-11-29 00:30 in Hưng Yên.
        let t = Utc.with_ymd_and_hms(2019, 11, 28, 17, 30, 0).unwrap().timestamp_micros();
        assert_eq!(LocalDay::of_micros(t), LocalDay::from_ymd(2019, 11, 29).unwrap());
    }

    #[test]
    fn local_midnight_belongs_to_its_own_day() {
        let day = LocalDay::from_ymd(2019, 12, 31).unwrap();
        assert_eq!(LocalDay::of_micros(day.start_micros()), day);
        assert_eq!(LocalDay::of_micros(day.start_micros() - 1), LocalDay(day.0 - 1));
    }

    #[test]
    fn instants_outside_the_date_range_are_clamped_not_a_panic() {
        assert_eq!(LocalDay::of_micros(i64::MIN), LocalDay(0));
        assert_eq!(LocalDay::of_micros(i64::MAX), LocalDay(u16::MAX));
        // Year 2200 and year 1.
        assert_eq!(LocalDay::of_micros(7_258_118_400_000_000), LocalDay(u16::MAX));
        assert_eq!(LocalDay::of_micros(-62_135_596_800_000_000), LocalDay(0));
    }

    fn at(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_micros()
    }

    #[test]
    fn a_fixed_clock_stands_still_at_its_instant() {
        let clock = Clock::fixed_at("2019-12-31T23:59:59+07:00").unwrap();
        assert_eq!(clock.now_micros(), at("2019-12-31T16:59:59Z"));
        assert_eq!(clock.now_micros(), clock.now_micros());
        assert_eq!(clock.today(), LocalDay::from_ymd(2019, 12, 31).unwrap());
        assert!(!clock.is_wall());
        assert!(!clock.set(0), "a fixed clock does not move");
        assert_eq!(clock.today(), LocalDay::from_ymd(2019, 12, 31).unwrap());
    }

    #[test]
    fn local_midnight_turns_the_day_while_utc_is_still_on_the_previous_one() {
        // 2020-01-01 00:00 in Hưng Yên is 2019-12-31 17:00 UTC.
        let one_second_before = Clock::fixed_at("2019-12-31T23:59:59.999999+07:00").unwrap();
        let midnight = Clock::fixed_at("2020-01-01T00:00:00+07:00").unwrap();
        assert_eq!(one_second_before.today().year(), 2019);
        assert_eq!(midnight.today(), LocalDay::from_ymd(2020, 1, 1).unwrap());
        assert_eq!(midnight.today().start_micros(), midnight.now_micros());
        assert_eq!(midnight.now_micros() - one_second_before.now_micros(), 1);
        assert_eq!(Clock::fixed_at("2019-12-31T17:00:00Z").unwrap().today().year(), 2020);
        assert_eq!(Clock::fixed_at("2019-12-31T16:59:59Z").unwrap().today().year(), 2019);
    }

    #[test]
    fn a_settable_clock_moves_for_every_clone() {
        let clock = Clock::settable(at("2019-11-30T23:59:00+07:00"));
        let seen_elsewhere = clock.clone();
        assert_eq!(seen_elsewhere.today(), LocalDay::from_ymd(2019, 11, 30).unwrap());
        assert!(clock.set(at("2019-12-01T00:00:00+07:00")));
        assert_eq!(seen_elsewhere.today(), LocalDay::from_ymd(2019, 12, 1).unwrap());
        assert_eq!(seen_elsewhere.now_micros(), at("2019-11-30T17:00:00Z"));
        assert!(!clock.is_wall());
    }

    #[test]
    fn the_wall_clock_is_the_default_and_reads_the_system_time() {
        let clock = Clock::default();
        assert!(clock.is_wall());
        assert!(!clock.set(0), "the wall clock cannot be set");
        let system = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        assert!((clock.now_micros() - system).abs() < 60_000_000, "within a minute of the system time");
        assert!((now_micros() - system).abs() < 60_000_000);
        assert_eq!(clock.today(), LocalDay::of_micros(now_micros()));
    }

    #[test]
    fn a_fake_now_must_be_a_complete_rfc3339_instant() {
        assert!(Clock::fixed_at("2019-12-01").is_err(), "a date alone is ambiguous: which hour, which zone");
        assert!(Clock::fixed_at("2019-12-01T00:00:00").is_err(), "no offset");
        assert!(Clock::fixed_at("tomorrow").unwrap_err().contains("RFC 3339"));
        let padded = Clock::fixed_at(" 2019-12-01T00:00:00+07:00\n").unwrap();
        assert_eq!(padded.now_micros(), at("2019-11-30T17:00:00Z"));
    }

    #[test]
    fn instants_are_shown_to_people_in_local_time() {
        assert_eq!(format_local(at("2019-11-28T17:30:00Z")), "2019-11-29 00:30:00+07:00");
    }

    #[test]
    fn day_number_matches_clickhouse_date() {
        // SELECT toUInt16(toDate('2019-11-28')) = 18228
        assert_eq!(LocalDay::from_ymd(2019, 11, 28).unwrap().0, 18228);
        assert_eq!(LocalDay(18228).to_string(), "2019-11-28");
    }
}
