//! Reporting days in the province's time zone.
//!
//! Asia/Ho_Chi_Minh has been UTC+7 without daylight saving since 1975, and
//! validation refuses events before 2000, so a fixed offset is exact here and
//! needs no time-zone database.

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

    #[test]
    fn day_number_matches_clickhouse_date() {
        // SELECT toUInt16(toDate('2019-11-28')) = 18228
        assert_eq!(LocalDay::from_ymd(2019, 11, 28).unwrap().0, 18228);
        assert_eq!(LocalDay(18228).to_string(), "2019-11-28");
    }
}
