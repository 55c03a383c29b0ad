//! The province's working-day calendar (lịch ngày làm việc) for legal processing times.
//!
//! The law counts a dossier's processing time in working days: not Saturdays, Sundays
//! nor public-holiday days off (Labour Code 2019, art. 111-112). Those days off move
//! every year (Tết follows the lunar calendar, a holiday on a weekend is compensated on
//! a working day, the Government swaps working days to join holidays to weekends), so
//! they are data: `deploy/holidays.toml`, maintained by the province, one `[[year]]` a
//! year (its header describes the format). [`WorkingCalendar::parse`] validates such a
//! file; [`WorkingCalendar::embedded`] is the shipped one.
//!
//! Queries run per dossier in the aggregator's hot path, so everything is precomputed
//! at parse time: the number of working days before each covered day and the list of
//! working days, which makes every query O(1). A day outside the covered years is
//! never guessed at: queries that need it answer [`BeyondCalendar`]. No query panics,
//! whatever the [`LocalDay`].

use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;
use toml::Spanned;

use crate::time::LocalDay;

/// The shipped calendar file.
const EMBEDDED_TOML: &str = include_str!("../../../deploy/holidays.toml");

/// The years a calendar may cover: every day of them is a [`LocalDay`] (1970-01-01 to
/// 2149-06-06), and so is the day after the last.
const MIN_YEAR: i64 = 1970;
const MAX_YEAR: i64 = 2148;

/// The public holidays on fixed Gregorian dates: when one falls on a weekday, the
/// year's `days_off` must list it (a cheap guard against a forgotten or mistyped entry).
const FIXED_HOLIDAYS: [(u32, u32, &str); 4] = [
    (1, 1, "Tết Dương lịch (1 January)"),
    (4, 30, "Ngày Chiến thắng (30 April)"),
    (5, 1, "Ngày Quốc tế Lao động (1 May)"),
    (9, 2, "Quốc khánh (2 September)"),
];

/// A calendar file that cannot be used. Every message names the line, and the year,
/// list and date at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("calendar line {line}: not a valid calendar file: {message}")]
    Syntax { line: usize, message: String },
    #[error("calendar: the file lists no [[year]]")]
    NoYears,
    #[error("calendar line {line}: year {year} is outside the years a calendar can cover ({MIN_YEAR} to {MAX_YEAR})")]
    YearOutOfRange { line: usize, year: i64 },
    #[error(
        "calendar line {line}: year {year} follows year {previous}; years must be listed once each, ascending, \
         with no gap (expected {})",
        previous + 1
    )]
    YearNotNext { line: usize, year: i64, previous: i32 },
    #[error("calendar line {line}: year {year} names no source (the official notice its days follow)")]
    NoSource { line: usize, year: i32 },
    #[error("calendar line {line}: year {year}, {list}: {text:?} is not a date written YYYY-MM-DD")]
    BadDate { line: usize, year: i32, list: &'static str, text: String },
    #[error("calendar line {line}: year {year}, {list}: {date} is not in {year}")]
    DateOutsideYear { line: usize, year: i32, list: &'static str, date: NaiveDate },
    #[error("calendar line {line}: year {year}, days_off: {date} is a {weekday}; list only weekdays as days off")]
    DayOffOnWeekend { line: usize, year: i32, date: NaiveDate, weekday: Weekday },
    #[error(
        "calendar line {line}: year {year}, working_saturdays: {date} is a {weekday}, not a weekend day made a \
         working day"
    )]
    WorkingDayNotOnWeekend { line: usize, year: i32, date: NaiveDate, weekday: Weekday },
    #[error("calendar line {line}: year {year}: {date} is listed both in days_off and in working_saturdays")]
    BothOffAndWorking { line: usize, year: i32, date: NaiveDate },
    #[error("calendar line {line}: year {year}, {list}: {date} is listed twice")]
    DuplicateDate { line: usize, year: i32, list: &'static str, date: NaiveDate },
    #[error("calendar line {line}: year {year}, {list}: {date} comes after {previous}; list dates in ascending order")]
    Unsorted { line: usize, year: i32, list: &'static str, date: NaiveDate, previous: NaiveDate },
    #[error("calendar line {line}: year {year}: {holiday} falls on {date}, a {weekday}, but is not in days_off")]
    MissingHoliday { line: usize, year: i32, holiday: &'static str, date: NaiveDate, weekday: Weekday },
}

/// A day outside the years the calendar covers: whether it is a working day is not
/// known, so a deadline that needs it cannot be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{day} is outside the working-day calendar")]
pub struct BeyondCalendar {
    pub day: LocalDay,
}

/// What the calendar says of one year besides its days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarYear {
    pub year: i32,
    /// The official documents the year's entry follows.
    pub source: String,
    /// Only the legal minimum: the year's days off are not officially fixed yet.
    pub provisional: bool,
}

/// Working days of the covered years, precomputed for O(1) queries.
#[derive(Debug, Clone)]
pub struct WorkingCalendar {
    years: Vec<CalendarYear>,
    /// Day number of 1 January of the first year.
    start: u32,
    /// `before[i]`: working days among the first `i` covered days; one entry more
    /// than there are covered days.
    before: Vec<u32>,
    /// Day numbers of the working days, ascending.
    working: Vec<u16>,
}

/// The file as written; dates stay text (with their place) until checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(default)]
    year: Vec<YearEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearEntry {
    year: Spanned<i64>,
    #[serde(default)]
    source: String,
    #[serde(default)]
    provisional: bool,
    days_off: Vec<Spanned<String>>,
    #[serde(default)]
    working_saturdays: Vec<Spanned<String>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

pub(crate) fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn day_number(date: NaiveDate) -> u32 {
    // Only called on dates of checked years, all within LocalDay's range.
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    u32::try_from(date.signed_duration_since(epoch).num_days()).unwrap_or(0)
}

/// Parses one list of a year: strict YYYY-MM-DD dates of that year, ascending, once each.
fn parse_dates(
    text: &str,
    year: i32,
    list: &'static str,
    entries: &[Spanned<String>],
) -> Result<Vec<(NaiveDate, usize)>, CalendarError> {
    let mut dates: Vec<(NaiveDate, usize)> = Vec::with_capacity(entries.len());
    for entry in entries {
        let line = line_of(text, entry.span().start);
        let raw = entry.get_ref().as_str();
        let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .filter(|d| d.format("%Y-%m-%d").to_string() == raw)
            .ok_or_else(|| CalendarError::BadDate { line, year, list, text: raw.to_owned() })?;
        if date.year() != year {
            return Err(CalendarError::DateOutsideYear { line, year, list, date });
        }
        if let Some(&(previous, _)) = dates.last() {
            if date == previous || dates.iter().any(|&(d, _)| d == date) {
                return Err(CalendarError::DuplicateDate { line, year, list, date });
            }
            if date < previous {
                return Err(CalendarError::Unsorted { line, year, list, date, previous });
            }
        }
        dates.push((date, line));
    }
    Ok(dates)
}

impl WorkingCalendar {
    /// Parses and checks a calendar file (the format of `deploy/holidays.toml`).
    pub fn parse(toml_text: &str) -> Result<WorkingCalendar, CalendarError> {
        let file: CalendarFile = toml::from_str(toml_text).map_err(|e| CalendarError::Syntax {
            line: e.span().map_or(1, |span| line_of(toml_text, span.start)),
            message: e.message().to_owned(),
        })?;
        if file.year.is_empty() {
            return Err(CalendarError::NoYears);
        }

        let mut years: Vec<CalendarYear> = Vec::with_capacity(file.year.len());
        // Per covered day: is it a working day? Filled year by year.
        let mut is_working: Vec<bool> = Vec::new();
        let mut start = 0;
        for entry in &file.year {
            let line = line_of(toml_text, entry.year.span().start);
            let raw_year = *entry.year.get_ref();
            if !(MIN_YEAR..=MAX_YEAR).contains(&raw_year) {
                return Err(CalendarError::YearOutOfRange { line, year: raw_year });
            }
            let year = i32::try_from(raw_year).unwrap_or_default();
            if let Some(previous) = years.last().map(|y| y.year) {
                if year != previous + 1 {
                    return Err(CalendarError::YearNotNext { line, year: raw_year, previous });
                }
            }
            if entry.source.trim().is_empty() {
                return Err(CalendarError::NoSource { line, year });
            }

            let days_off = parse_dates(toml_text, year, "days_off", &entry.days_off)?;
            let working_weekend = parse_dates(toml_text, year, "working_saturdays", &entry.working_saturdays)?;
            for &(date, line) in &working_weekend {
                if days_off.iter().any(|&(d, _)| d == date) {
                    return Err(CalendarError::BothOffAndWorking { line, year, date });
                }
                if !is_weekend(date) {
                    return Err(CalendarError::WorkingDayNotOnWeekend { line, year, date, weekday: date.weekday() });
                }
            }
            for &(date, line) in &days_off {
                if is_weekend(date) {
                    return Err(CalendarError::DayOffOnWeekend { line, year, date, weekday: date.weekday() });
                }
            }
            for (month, day, holiday) in FIXED_HOLIDAYS {
                let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else { continue };
                if !is_weekend(date) && !days_off.iter().any(|&(d, _)| d == date) {
                    return Err(CalendarError::MissingHoliday { line, year, holiday, date, weekday: date.weekday() });
                }
            }

            let first = NaiveDate::from_ymd_opt(year, 1, 1).expect("checked year");
            if years.is_empty() {
                start = day_number(first);
            }
            let mut date = first;
            while date.year() == year {
                let working = if is_weekend(date) {
                    working_weekend.iter().any(|&(d, _)| d == date)
                } else {
                    !days_off.iter().any(|&(d, _)| d == date)
                };
                is_working.push(working);
                date = date.succ_opt().expect("checked year");
            }
            years.push(CalendarYear { year, source: entry.source.trim().to_owned(), provisional: entry.provisional });
        }

        let mut before = Vec::with_capacity(is_working.len() + 1);
        let mut working = Vec::new();
        let mut count = 0u32;
        before.push(0);
        for (offset, &is_working_day) in (0u32..).zip(&is_working) {
            if is_working_day {
                count += 1;
                working.push(u16::try_from(start + offset).unwrap_or(u16::MAX));
            }
            before.push(count);
        }
        Ok(WorkingCalendar { years, start, before, working })
    }

    /// The shipped calendar, `deploy/holidays.toml`, parsed once. Panics only if that
    /// file is invalid, which a unit test rules out.
    pub fn embedded() -> &'static WorkingCalendar {
        static EMBEDDED: OnceLock<WorkingCalendar> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            WorkingCalendar::parse(EMBEDDED_TOML).unwrap_or_else(|e| panic!("deploy/holidays.toml is invalid: {e}"))
        })
    }

    pub fn first_year(&self) -> i32 {
        self.years.first().map_or(0, |y| y.year)
    }

    pub fn last_year(&self) -> i32 {
        self.years.last().map_or(0, |y| y.year)
    }

    /// Every covered year with its source and whether it is provisional.
    pub fn years(&self) -> &[CalendarYear] {
        &self.years
    }

    /// The covered years whose days off are not officially fixed yet.
    pub fn provisional_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().filter(|y| y.provisional).map(|y| y.year)
    }

    /// Number of covered days.
    fn len(&self) -> u32 {
        u32::try_from(self.before.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The first day after the covered years.
    fn day_after(&self) -> LocalDay {
        LocalDay(u16::try_from(self.start + self.len()).unwrap_or(u16::MAX))
    }

    /// The last day before the covered years.
    fn day_before(&self) -> LocalDay {
        LocalDay(u16::try_from(self.start.saturating_sub(1)).unwrap_or(0))
    }

    /// Position of a covered day.
    fn index(&self, day: LocalDay) -> Result<usize, BeyondCalendar> {
        u32::from(day.0)
            .checked_sub(self.start)
            .filter(|&offset| offset < self.len())
            .and_then(|offset| usize::try_from(offset).ok())
            .ok_or(BeyondCalendar { day })
    }

    pub fn covers(&self, day: LocalDay) -> bool {
        self.index(day).is_ok()
    }

    pub fn is_working_day(&self, day: LocalDay) -> Result<bool, BeyondCalendar> {
        let i = self.index(day)?;
        Ok(self.before[i + 1] > self.before[i])
    }

    /// The day on which `n` working days after `start` end: the n-th working day
    /// strictly after `start` (n = 0 -> start itself). `start` must be covered; a
    /// result past the last covered year is an error naming the first day after it.
    pub fn add_working_days(&self, start: LocalDay, n: u32) -> Result<LocalDay, BeyondCalendar> {
        let i = self.index(start)?;
        if n == 0 {
            return Ok(start);
        }
        // Working days up to and including `start`; the next one is working[that].
        let up_to_start = self.before[i + 1] as usize;
        up_to_start
            .checked_add(n as usize - 1)
            .and_then(|k| self.working.get(k))
            .map(|&day| LocalDay(day))
            .ok_or(BeyondCalendar { day: self.day_after() })
    }

    /// Working days in (from, to]: 0 when to <= from. Both days must be covered.
    pub fn working_days_between(&self, from: LocalDay, to: LocalDay) -> Result<u32, BeyondCalendar> {
        let i = self.index(from)?;
        let j = self.index(to)?;
        Ok(if j > i { self.before[j + 1] - self.before[i + 1] } else { 0 })
    }

    /// The last working day strictly before `day`. `day` must be covered; when no
    /// covered day before it is a working day, the error names the day before the
    /// calendar.
    pub fn previous_working_day(&self, day: LocalDay) -> Result<LocalDay, BeyondCalendar> {
        let i = self.index(day)?;
        let before_day = self.before[i] as usize;
        before_day
            .checked_sub(1)
            .and_then(|k| self.working.get(k))
            .map(|&d| LocalDay(d))
            .ok_or(BeyondCalendar { day: self.day_before() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> LocalDay {
        LocalDay::from_ymd(y, m, d).unwrap()
    }

    fn cal() -> &'static WorkingCalendar {
        WorkingCalendar::embedded()
    }

    /// A minimal valid year, for the validation tests.
    fn year_block(year: i32, days_off: &str, working: &str) -> String {
        format!(
            "[[year]]\nyear = {year}\nsource = \"test\"\ndays_off = [{days_off}]\nworking_saturdays = [{working}]\n"
        )
    }

    /// The fixed holidays of `year` that fall on weekdays, as TOML list items.
    fn fixed(year: i32) -> String {
        FIXED_HOLIDAYS
            .iter()
            .map(|&(m, d, _)| NaiveDate::from_ymd_opt(year, m, d).unwrap())
            .filter(|&d| !is_weekend(d))
            .map(|d| format!("\"{d}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn a_date_repeated_after_another_is_a_duplicate_not_merely_unsorted() {
        let with_off = |extra: &str| year_block(2030, &format!("{}, {extra}", fixed(2030)), "");
        let e = error_of(&with_off("\"2030-12-09\", \"2030-12-10\", \"2030-12-09\""));
        assert!(matches!(e, CalendarError::DuplicateDate { list: "days_off", .. }), "{e}");
    }

    #[test]
    fn every_covered_year_is_listed_once_in_order() {
        let years: Vec<i32> = cal().years().iter().map(|y| y.year).collect();
        assert_eq!(years, (2019..=2027).collect::<Vec<_>>());
    }

    #[test]
    fn the_shipped_file_is_valid_and_covers_2019_to_2027() {
        let parsed = WorkingCalendar::parse(EMBEDDED_TOML).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((parsed.first_year(), parsed.last_year()), (2019, 2027));
        assert_eq!(cal().provisional_years().collect::<Vec<_>>(), vec![2027]);
        assert!(cal().years().iter().all(|y| !y.source.is_empty()));
        assert!(cal().covers(day(2019, 1, 1)) && cal().covers(day(2027, 12, 31)));
        assert!(!cal().covers(day(2018, 12, 31)) && !cal().covers(day(2028, 1, 1)));
    }

    #[test]
    fn each_shipped_year_has_one_weekday_off_per_statutory_holiday_day() {
        // Labour Code 2012: 10 holiday days a year; 2019 code (from 2021): 11. Every
        // holiday day gives civil servants one weekday off (itself or its compensation);
        // a swap adds a weekday off and a working weekend day, which cancel out.
        for year in 2019..=2027 {
            let (mut weekdays_off, mut weekends_worked) = (0, 0);
            let mut d = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
            while d.year() == year {
                let working = cal().is_working_day(LocalDay(day_number(d) as u16)).unwrap();
                match (is_weekend(d), working) {
                    (false, false) => weekdays_off += 1,
                    (true, true) => weekends_worked += 1,
                    _ => {}
                }
                d = d.succ_opt().unwrap();
            }
            let statutory = if year >= 2021 { 11 } else { 10 };
            // Sat 5/1/2019 made up for Mon 31/12/2018, a day off of 2018.
            let cross_year = if year == 2019 { 1 } else { 0 };
            assert_eq!(weekdays_off - weekends_worked + cross_year, statutory, "year {year}");
        }
    }

    #[test]
    fn five_working_days_from_the_friday_before_tet_2020() {
        // Tết Canh Tý: off Thu 23/1 to Wed 29/1/2020. From Fri 17/1: Mon 20, Tue 21,
        // Wed 22, then Thu 30, Fri 31.
        assert_eq!(cal().add_working_days(day(2020, 1, 17), 5), Ok(day(2020, 1, 31)));
        assert_eq!(cal().add_working_days(day(2020, 1, 17), 3), Ok(day(2020, 1, 22)));
        assert_eq!(cal().working_days_between(day(2020, 1, 17), day(2020, 1, 31)), Ok(5));
        assert_eq!(cal().working_days_between(day(2020, 1, 22), day(2020, 1, 29)), Ok(0));
        assert_eq!(cal().previous_working_day(day(2020, 1, 30)), Ok(day(2020, 1, 22)));
    }

    #[test]
    fn national_day_2021_has_its_adjacent_day() {
        assert_eq!(cal().is_working_day(day(2021, 9, 1)), Ok(true));
        assert_eq!(cal().is_working_day(day(2021, 9, 2)), Ok(false));
        assert_eq!(cal().is_working_day(day(2021, 9, 3)), Ok(false));
        assert_eq!(cal().add_working_days(day(2021, 9, 1), 1), Ok(day(2021, 9, 6)));
        assert_eq!(cal().previous_working_day(day(2021, 9, 6)), Ok(day(2021, 9, 1)));
        // Before 2021 only 2/9 itself: Thu 3/9/2020 was a working day.
        assert_eq!(cal().is_working_day(day(2020, 9, 2)), Ok(false));
        assert_eq!(cal().is_working_day(day(2020, 9, 3)), Ok(true));
    }

    #[test]
    fn a_swap_saturday_is_a_working_day_and_its_monday_is_not() {
        // 2024: Mon 29/4 off, Sat 4/5 worked (Công văn 2450/VPCP-KGVX).
        assert_eq!(cal().is_working_day(day(2024, 5, 4)), Ok(true));
        assert_eq!(cal().is_working_day(day(2024, 5, 5)), Ok(false));
        assert_eq!(cal().is_working_day(day(2024, 4, 29)), Ok(false));
        // From Fri 26/4: Thu 2/5, Fri 3/5, Sat 4/5, Mon 6/5.
        assert_eq!(cal().add_working_days(day(2024, 4, 26), 1), Ok(day(2024, 5, 2)));
        assert_eq!(cal().add_working_days(day(2024, 4, 26), 3), Ok(day(2024, 5, 4)));
        assert_eq!(cal().add_working_days(day(2024, 4, 26), 4), Ok(day(2024, 5, 6)));
        assert_eq!(cal().working_days_between(day(2024, 4, 26), day(2024, 5, 6)), Ok(4));
        assert_eq!(cal().previous_working_day(day(2024, 5, 6)), Ok(day(2024, 5, 4)));
        assert_eq!(cal().previous_working_day(day(2024, 5, 2)), Ok(day(2024, 4, 26)));
        // An ordinary Saturday and a compensatory Monday (Giỗ Tổ 2022 on Sun 10/4).
        assert_eq!(cal().is_working_day(day(2024, 5, 11)), Ok(false));
        assert_eq!(cal().is_working_day(day(2022, 4, 11)), Ok(false));
        // 2026 New Year swap: Fri 2/1 off, Sat 10/1 worked.
        assert_eq!(cal().add_working_days(day(2025, 12, 31), 1), Ok(day(2026, 1, 5)));
        assert_eq!(cal().is_working_day(day(2026, 1, 10)), Ok(true));
    }

    #[test]
    fn deadlines_cross_new_year_within_the_calendar() {
        // Wed 31/12/2025 + 3: Mon 5, Tue 6, Wed 7 January 2026.
        assert_eq!(cal().add_working_days(day(2025, 12, 31), 3), Ok(day(2026, 1, 7)));
        assert_eq!(cal().working_days_between(day(2025, 12, 30), day(2026, 1, 7)), Ok(4));
    }

    #[test]
    fn days_beyond_the_calendar_are_errors_not_guesses() {
        let before = day(2018, 12, 31);
        let after = day(2028, 1, 1);
        assert_eq!(cal().is_working_day(before), Err(BeyondCalendar { day: before }));
        assert_eq!(cal().is_working_day(after), Err(BeyondCalendar { day: after }));
        // Thu 30/12/2027 + 1 = Fri 31/12; + 2 needs 2028.
        assert_eq!(cal().add_working_days(day(2027, 12, 30), 1), Ok(day(2027, 12, 31)));
        assert_eq!(cal().add_working_days(day(2027, 12, 30), 2), Err(BeyondCalendar { day: after }));
        assert_eq!(cal().add_working_days(day(2019, 6, 3), u32::MAX), Err(BeyondCalendar { day: after }));
        assert_eq!(cal().working_days_between(day(2027, 6, 1), after), Err(BeyondCalendar { day: after }));
        // 1/1/2019 is a holiday, so no covered working day precedes 2/1/2019.
        assert_eq!(cal().previous_working_day(day(2019, 1, 2)), Err(BeyondCalendar { day: before }));
        assert_eq!(cal().previous_working_day(day(2019, 1, 3)), Ok(day(2019, 1, 2)));
        assert_eq!(BeyondCalendar { day: after }.to_string(), "2028-01-01 is outside the working-day calendar");
    }

    #[test]
    fn extreme_days_never_panic() {
        for d in [LocalDay(0), LocalDay(1), LocalDay(u16::MAX - 1), LocalDay(u16::MAX)] {
            assert!(!cal().covers(d));
            assert!(cal().is_working_day(d).is_err());
            assert!(cal().add_working_days(d, 0).is_err());
            assert!(cal().add_working_days(d, u32::MAX).is_err());
            assert!(cal().working_days_between(d, day(2020, 1, 1)).is_err());
            assert!(cal().working_days_between(day(2020, 1, 1), d).is_err());
            assert!(cal().previous_working_day(d).is_err());
        }
        // A calendar starting in 1970 (day 0) and one ending in 2148 (next to u16::MAX).
        let first = WorkingCalendar::parse(&year_block(1970, &fixed(1970), "")).unwrap();
        assert_eq!(first.previous_working_day(LocalDay(0)), Err(BeyondCalendar { day: LocalDay(0) }));
        assert_eq!(first.add_working_days(LocalDay(0), 1), Ok(day(1970, 1, 2)));
        let last = WorkingCalendar::parse(&year_block(2148, &fixed(2148), "")).unwrap();
        let after = day(2149, 1, 1);
        assert_eq!(last.add_working_days(day(2148, 12, 31), 1), Err(BeyondCalendar { day: after }));
        assert!(last.is_working_day(LocalDay(u16::MAX)).is_err());
    }

    #[test]
    fn a_minimal_file_parses() {
        let text = format!("{}{}", year_block(2030, &fixed(2030), ""), year_block(2031, &fixed(2031), ""));
        let c = WorkingCalendar::parse(&text).unwrap();
        assert_eq!((c.first_year(), c.last_year()), (2030, 2031));
        assert_eq!(c.provisional_years().count(), 0);
        // Tue 1/1/2030 is a day off; Wed 2/1 a working day.
        assert_eq!(c.is_working_day(day(2030, 1, 1)), Ok(false));
        assert_eq!(c.is_working_day(day(2030, 1, 2)), Ok(true));
    }

    fn error_of(text: &str) -> CalendarError {
        WorkingCalendar::parse(text).expect_err("the file must be refused")
    }

    #[test]
    fn bad_files_are_refused_with_the_line_and_entry_at_fault() {
        let ok_2030 = year_block(2030, &fixed(2030), "");
        let ok_2031 = year_block(2031, &fixed(2031), "");
        let ok_2032 = year_block(2032, &fixed(2032), "");

        assert!(matches!(error_of("[[year]\n"), CalendarError::Syntax { line: 1, .. }));
        assert_eq!(error_of("# nothing\n"), CalendarError::NoYears);
        // A typo in a key is refused, not ignored.
        let typo = format!("{ok_2030}day_off = []\n");
        assert!(matches!(error_of(&typo), CalendarError::Syntax { .. }), "{}", error_of(&typo));
        // Missing days_off.
        let missing = "[[year]]\nyear = 2030\nsource = \"x\"\n";
        assert!(matches!(error_of(missing), CalendarError::Syntax { .. }));

        // Years: gap, duplicate, descending, out of range (line of the `year =` key).
        let gap = format!("{ok_2030}{ok_2032}");
        assert_eq!(error_of(&gap), CalendarError::YearNotNext { line: 7, year: 2032, previous: 2030 });
        assert!(error_of(&gap).to_string().contains("expected 2031"), "{}", error_of(&gap));
        let duplicate = format!("{ok_2030}{ok_2030}");
        assert_eq!(error_of(&duplicate), CalendarError::YearNotNext { line: 7, year: 2030, previous: 2030 });
        let descending = format!("{ok_2031}{ok_2030}");
        assert!(matches!(error_of(&descending), CalendarError::YearNotNext { year: 2030, previous: 2031, .. }));
        let old = year_block(1969, "", "");
        assert_eq!(error_of(&old), CalendarError::YearOutOfRange { line: 2, year: 1969 });
        assert!(matches!(error_of(&year_block(2149, "", "")), CalendarError::YearOutOfRange { .. }));

        let no_source = ok_2030.replace("source = \"test\"", "source = \"  \"");
        assert_eq!(error_of(&no_source), CalendarError::NoSource { line: 2, year: 2030 });

        // Dates: malformed, impossible, not zero-padded, in another year.
        let with_off = |extra: &str| year_block(2030, &format!("{}, {extra}", fixed(2030)), "");
        let e = error_of(&with_off("\"2030-02-30\""));
        assert!(
            matches!(&e, CalendarError::BadDate { line: 4, year: 2030, list: "days_off", text } if text == "2030-02-30")
        );
        assert!(e.to_string().contains("line 4") && e.to_string().contains("2030-02-30"), "{e}");
        assert!(matches!(error_of(&with_off("\"2030-2-4\"")), CalendarError::BadDate { .. }));
        assert!(matches!(error_of(&with_off("\"4/2/2030\"")), CalendarError::BadDate { .. }));
        assert!(matches!(
            error_of(&year_block(2030, &format!("\"2029-12-31\", {}", fixed(2030)), "")),
            CalendarError::DateOutsideYear { year: 2030, list: "days_off", .. }
        ));

        // A Saturday as a day off; a Monday as a make-up day; a date in both lists.
        let e = error_of(&with_off("\"2030-12-07\""));
        assert!(matches!(e, CalendarError::DayOffOnWeekend { weekday: Weekday::Sat, .. }), "{e}");
        assert!(e.to_string().contains("2030-12-07 is a Sat"), "{e}");
        let e = error_of(&year_block(2030, &fixed(2030), "\"2030-02-04\""));
        assert!(matches!(e, CalendarError::WorkingDayNotOnWeekend { weekday: Weekday::Mon, .. }), "{e}");
        let both = year_block(2030, &format!("{}, \"2030-12-07\"", fixed(2030)), "\"2030-12-07\"");
        let e = error_of(&both);
        assert_eq!(
            e,
            CalendarError::BothOffAndWorking {
                line: 5,
                year: 2030,
                date: NaiveDate::from_ymd_opt(2030, 12, 7).unwrap()
            }
        );
        assert!(e.to_string().contains("line 5") && e.to_string().contains("2030-12-07"), "{e}");
        let e = error_of(&format!(
            "[[year]]\nyear = 2030\nsource = \"x\"\ndays_off = [{}]\nworking_saturdays = [\"2030-01-05\", \"2030-01-05\"]\n",
            fixed(2030)
        ));
        assert!(matches!(e, CalendarError::DuplicateDate { list: "working_saturdays", .. }), "{e}");

        // Duplicates and order.
        let e = error_of(&with_off("\"2030-12-09\", \"2030-12-09\""));
        assert!(matches!(e, CalendarError::DuplicateDate { list: "days_off", .. }), "{e}");
        let e = error_of(&year_block(2030, &format!("{}, \"2030-12-10\", \"2030-12-09\"", fixed(2030)), ""));
        assert!(matches!(e, CalendarError::Unsorted { .. }), "{e}");

        // A fixed holiday on a weekday left out: Tue 30/4/2030.
        let without = year_block(2030, "\"2030-01-01\", \"2030-05-01\", \"2030-09-02\"", "");
        let e = error_of(&without);
        assert!(matches!(e, CalendarError::MissingHoliday { line: 2, year: 2030, .. }), "{e}");
        assert!(e.to_string().contains("30 April") && e.to_string().contains("2030-04-30"), "{e}");
        // On a weekend it need not be listed: 1/1/2033 is a Saturday.
        assert!(WorkingCalendar::parse(&year_block(2033, &fixed(2033), "")).is_ok());
    }

    fn covered_day() -> impl Strategy<Value = LocalDay> {
        let first = u32::from(day(2019, 1, 1).0);
        let last = u32::from(day(2027, 12, 31).0);
        (first..=last).prop_map(|d| LocalDay(d as u16))
    }

    proptest! {
        #[test]
        fn adding_then_counting_gives_back_n(start in covered_day(), n in 0u32..400) {
            match cal().add_working_days(start, n) {
                Ok(end) => {
                    prop_assert!(end >= start);
                    prop_assert_eq!(cal().working_days_between(start, end), Ok(n));
                    if n > 0 {
                        prop_assert_eq!(cal().is_working_day(end), Ok(true));
                        prop_assert_eq!(cal().add_working_days(cal().previous_working_day(end).unwrap(), 1), Ok(end));
                    }
                }
                Err(BeyondCalendar { day }) => {
                    prop_assert_eq!(day, LocalDay::from_ymd(2028, 1, 1).unwrap());
                    let available = cal().working_days_between(start, LocalDay(day.0 - 1)).unwrap();
                    prop_assert!(available < n);
                }
            }
        }

        #[test]
        fn counting_then_adding_reaches_the_last_working_day(from in covered_day(), to in covered_day()) {
            let m = cal().working_days_between(from, to).unwrap();
            if to <= from {
                prop_assert_eq!(m, 0);
            } else {
                let reached = cal().add_working_days(from, m).unwrap();
                prop_assert!(reached <= to);
                // The next working day is after `to`, or beyond the calendar.
                if let Ok(next) = cal().add_working_days(from, m + 1) {
                    prop_assert!(next > to);
                }
                // Counting is additive over a split point.
                let mid = LocalDay(from.0 + (to.0 - from.0) / 2);
                prop_assert_eq!(
                    cal().working_days_between(from, mid).unwrap() + cal().working_days_between(mid, to).unwrap(),
                    m
                );
            }
        }

        #[test]
        fn no_day_and_no_count_panics(d in any::<u16>(), e in any::<u16>(), n in any::<u32>()) {
            let (d, e) = (LocalDay(d), LocalDay(e));
            let _ = cal().is_working_day(d);
            let _ = cal().add_working_days(d, n);
            let _ = cal().working_days_between(d, e);
            let _ = cal().previous_working_day(d);
            prop_assert_eq!(cal().covers(d), cal().is_working_day(d).is_ok());
        }
    }
}
