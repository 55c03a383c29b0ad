//! Closed reporting periods: calendar month, quarter, half-year, year, or an
//! inclusive range of days, in the province's local time (issue 12, item 2).
//!
//! The text forms are `2019-11`, `2019-Q4`, `2019-H2`, `2019` and
//! `2019-10-01..2019-12-31`; [`Period::label`] gives the canonical form back and
//! [`Period::title_vi`] the title of a Vietnamese report.

use chrono::{Datelike, Months, NaiveDate};

use crate::time::LocalDay;

/// First and last year a period may touch: the years a [`LocalDay`] is used for.
pub const FIRST_YEAR: i32 = 1970;
pub const LAST_YEAR: i32 = 2099;
/// The longest range accepted, in years (a range must end before the same day
/// this many years after it starts).
pub const MAX_RANGE_YEARS: u32 = 3;

const FORMS: &str = "YYYY-MM, YYYY-Qn (n 1-4), YYYY-Hn (n 1-2), YYYY or YYYY-MM-DD..YYYY-MM-DD";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeriodKind {
    Month,
    Quarter,
    Half,
    Year,
    Range,
}

/// A period of whole local days, `first` to `last` inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Period {
    pub first: LocalDay,
    pub last: LocalDay,
    pub kind: PeriodKind,
}

/// Why a period's text was refused; each says what was expected and quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("period {input:?} not understood: expected {FORMS}")]
    Form { input: String },
    #[error("period {input:?}: month {month} is not 01 to 12")]
    Month { input: String, month: u32 },
    #[error("period {input:?}: quarter {quarter} is not Q1 to Q4")]
    Quarter { input: String, quarter: u32 },
    #[error("period {input:?}: half {half} is not H1 or H2")]
    Half { input: String, half: u32 },
    #[error("period {input:?}: year {year} is outside {FIRST_YEAR} to {LAST_YEAR}")]
    Year { input: String, year: i32 },
    #[error("period {input:?}: {date:?} is not a calendar date (expected YYYY-MM-DD)")]
    Date { input: String, date: String },
    #[error("period {input:?}: the range starts after it ends (expected first..last, first <= last)")]
    Reversed { input: String },
    #[error("period {input:?}: the range is longer than {MAX_RANGE_YEARS} years")]
    TooLong { input: String },
}

/// Exactly `n` ASCII digits, as a number.
fn digits(text: &str, n: usize) -> Option<u32> {
    (text.len() == n && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

fn day(date: NaiveDate) -> LocalDay {
    LocalDay::from_ymd(date.year(), date.month(), date.day()).expect("dates of 1970-2099 are local days")
}

fn ymd(year: i32, month: u32, day_of_month: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day_of_month).expect("a valid calendar date")
}

const ROMAN: [&str; 4] = ["I", "II", "III", "IV"];

impl Period {
    /// The calendar period of `kind` (not `Range`) numbered `index` (month 1-12,
    /// quarter 1-4, half 1-2, ignored for a year) in `year`.
    fn calendar(kind: PeriodKind, year: i32, index: u32) -> Period {
        let (first_month, months) = match kind {
            PeriodKind::Month => (index, 1),
            PeriodKind::Quarter => (3 * index - 2, 3),
            PeriodKind::Half => (6 * index - 5, 6),
            PeriodKind::Year | PeriodKind::Range => (1, 12),
        };
        let first = ymd(year, first_month, 1);
        let next = first + Months::new(months);
        Period { first: day(first), last: day(next.pred_opt().expect("not the first day of time")), kind }
    }

    /// Parses `2019-11`, `2019-Q4` (or `q4`), `2019-H2` (or `h2`), `2019` or
    /// `2019-10-01..2019-12-31` (both ends included). Surrounding blanks are ignored.
    pub fn parse(text: &str) -> Result<Period, PeriodError> {
        let input = text.trim();
        let form = || PeriodError::Form { input: input.to_owned() };
        let check_year = |year: i32| {
            if (FIRST_YEAR..=LAST_YEAR).contains(&year) {
                Ok(year)
            } else {
                Err(PeriodError::Year { input: input.to_owned(), year })
            }
        };
        if let Some((from, to)) = input.split_once("..") {
            let date = |text: &str| -> Result<NaiveDate, PeriodError> {
                let bad = || PeriodError::Date { input: input.to_owned(), date: text.to_owned() };
                let mut parts = text.split('-');
                let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                    return Err(bad());
                };
                let (Some(y), Some(m), Some(d)) = (digits(y, 4), digits(m, 2), digits(d, 2)) else {
                    return Err(bad());
                };
                let date = NaiveDate::from_ymd_opt(y as i32, m, d).ok_or_else(bad)?;
                check_year(date.year())?;
                Ok(date)
            };
            let (first, last) = (date(from.trim())?, date(to.trim())?);
            if first > last {
                return Err(PeriodError::Reversed { input: input.to_owned() });
            }
            if last >= first + Months::new(12 * MAX_RANGE_YEARS) {
                return Err(PeriodError::TooLong { input: input.to_owned() });
            }
            return Ok(Period { first: day(first), last: day(last), kind: PeriodKind::Range });
        }
        let (year_text, rest) = match input.split_once('-') {
            Some((year, rest)) => (year, Some(rest)),
            None => (input, None),
        };
        let year = check_year(digits(year_text, 4).ok_or_else(form)? as i32)?;
        let Some(rest) = rest else { return Ok(Period::calendar(PeriodKind::Year, year, 1)) };
        if let Some(month) = digits(rest, 2) {
            if !(1..=12).contains(&month) {
                return Err(PeriodError::Month { input: input.to_owned(), month });
            }
            return Ok(Period::calendar(PeriodKind::Month, year, month));
        }
        let (letter, number) = rest.split_at(rest.chars().next().map_or(0, char::len_utf8));
        let number = digits(number, 1).ok_or_else(form)?;
        match letter {
            "Q" | "q" if (1..=4).contains(&number) => Ok(Period::calendar(PeriodKind::Quarter, year, number)),
            "Q" | "q" => Err(PeriodError::Quarter { input: input.to_owned(), quarter: number }),
            "H" | "h" if (1..=2).contains(&number) => Ok(Period::calendar(PeriodKind::Half, year, number)),
            "H" | "h" => Err(PeriodError::Half { input: input.to_owned(), half: number }),
            _ => Err(form()),
        }
    }

    fn year(&self) -> i32 {
        self.first.year()
    }

    /// Month 1-12, quarter 1-4 or half 1-2 of a calendar period (1 for a year or range).
    fn index(&self) -> u32 {
        let month = self.first.date().month();
        match self.kind {
            PeriodKind::Month => month,
            PeriodKind::Quarter => month.div_ceil(3),
            PeriodKind::Half => month.div_ceil(6),
            PeriodKind::Year | PeriodKind::Range => 1,
        }
    }

    /// The canonical text: `2019-11`, `2019-Q4`, `2019-H2`, `2019`, `2019-10-01..2019-12-31`.
    pub fn label(&self) -> String {
        let (year, index) = (self.year(), self.index());
        match self.kind {
            PeriodKind::Month => format!("{year}-{index:02}"),
            PeriodKind::Quarter => format!("{year}-Q{index}"),
            PeriodKind::Half => format!("{year}-H{index}"),
            PeriodKind::Year => year.to_string(),
            PeriodKind::Range => format!("{}..{}", self.first, self.last),
        }
    }

    /// The period as a Vietnamese report names it: `Tháng 11 năm 2019`,
    /// `Quý IV năm 2019`, `6 tháng đầu năm 2019` / `6 tháng cuối năm 2019`,
    /// `Năm 2019`, `Từ ngày 01/10/2019 đến ngày 31/12/2019`.
    pub fn title_vi(&self) -> String {
        let (year, index) = (self.year(), self.index());
        match self.kind {
            PeriodKind::Month => format!("Tháng {index} năm {year}"),
            PeriodKind::Quarter => format!("Quý {} năm {year}", ROMAN[index as usize - 1]),
            PeriodKind::Half if index == 1 => format!("6 tháng đầu năm {year}"),
            PeriodKind::Half => format!("6 tháng cuối năm {year}"),
            PeriodKind::Year => format!("Năm {year}"),
            PeriodKind::Range => format!(
                "Từ ngày {} đến ngày {}",
                self.first.date().format("%d/%m/%Y"),
                self.last.date().format("%d/%m/%Y")
            ),
        }
    }

    /// Number of days in the period.
    pub fn days(&self) -> u32 {
        u32::from(self.last.0 - self.first.0) + 1
    }

    /// Whether `day` falls in the period.
    pub fn contains(&self, day: LocalDay) -> bool {
        self.first <= day && day <= self.last
    }

    /// The period before: the previous month, quarter, half or year; for a range,
    /// the equally long range ending the day before `first`. Nothing before
    /// 1970-01-01 can be represented: the previous of a period that starts then is
    /// the period itself, and a range reaching back past it starts on 1970-01-01.
    pub fn previous(&self) -> Period {
        if self.first.0 == 0 {
            return self.clone();
        }
        match self.kind {
            PeriodKind::Range => {
                let last = LocalDay(self.first.0 - 1);
                let first = LocalDay(self.first.0.saturating_sub(self.last.0 - self.first.0 + 1));
                Period { first, last, kind: PeriodKind::Range }
            }
            kind => {
                let before = LocalDay(self.first.0 - 1);
                Period::of_day(kind, before)
            }
        }
    }

    /// The calendar period of `kind` (a range is taken as a year) containing `day`.
    fn of_day(kind: PeriodKind, day: LocalDay) -> Period {
        let date = day.date();
        let month = date.month();
        let index = match kind {
            PeriodKind::Month => month,
            PeriodKind::Quarter => month.div_ceil(3),
            PeriodKind::Half => month.div_ceil(6),
            PeriodKind::Year | PeriodKind::Range => 1,
        };
        let kind = if kind == PeriodKind::Range { PeriodKind::Year } else { kind };
        Period::calendar(kind, date.year(), index)
    }

    /// UTC microseconds of the local midnight that starts `first`.
    pub fn start_micros(&self) -> i64 {
        self.first.start_micros()
    }

    /// UTC microseconds of the local midnight after `last` (exclusive end).
    pub fn end_micros(&self) -> i64 {
        LocalDay(self.last.0 + 1).start_micros()
    }

    /// The last calendar month closed before `today`'s month (in January 1970,
    /// that month itself: nothing earlier exists).
    pub fn last_month(today: LocalDay) -> Period {
        Period::of_day(PeriodKind::Month, today).previous()
    }

    /// The last calendar quarter closed before `today`'s quarter (in 1970's first
    /// quarter, that quarter itself).
    pub fn last_quarter(today: LocalDay) -> Period {
        Period::of_day(PeriodKind::Quarter, today).previous()
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl std::str::FromStr for Period {
    type Err = PeriodError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Period::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, dd: u32) -> LocalDay {
        LocalDay::from_ymd(y, m, dd).unwrap()
    }

    fn p(text: &str) -> Period {
        Period::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_form_parses_to_its_days_label_and_title() {
        let cases = [
            ("2019-11", (2019, 11, 1), (2019, 11, 30), PeriodKind::Month, "2019-11", "Tháng 11 năm 2019"),
            ("2020-02", (2020, 2, 1), (2020, 2, 29), PeriodKind::Month, "2020-02", "Tháng 2 năm 2020"),
            ("2019-Q4", (2019, 10, 1), (2019, 12, 31), PeriodKind::Quarter, "2019-Q4", "Quý IV năm 2019"),
            ("2019-q1", (2019, 1, 1), (2019, 3, 31), PeriodKind::Quarter, "2019-Q1", "Quý I năm 2019"),
            ("2019-Q2", (2019, 4, 1), (2019, 6, 30), PeriodKind::Quarter, "2019-Q2", "Quý II năm 2019"),
            ("2019-Q3", (2019, 7, 1), (2019, 9, 30), PeriodKind::Quarter, "2019-Q3", "Quý III năm 2019"),
            ("2019-H2", (2019, 7, 1), (2019, 12, 31), PeriodKind::Half, "2019-H2", "6 tháng cuối năm 2019"),
            ("2019-h1", (2019, 1, 1), (2019, 6, 30), PeriodKind::Half, "2019-H1", "6 tháng đầu năm 2019"),
            ("2019", (2019, 1, 1), (2019, 12, 31), PeriodKind::Year, "2019", "Năm 2019"),
            (
                " 2019-10-01..2019-12-31 ",
                (2019, 10, 1),
                (2019, 12, 31),
                PeriodKind::Range,
                "2019-10-01..2019-12-31",
                "Từ ngày 01/10/2019 đến ngày 31/12/2019",
            ),
            (
                "2019-11-05..2019-11-05",
                (2019, 11, 5),
                (2019, 11, 5),
                PeriodKind::Range,
                "2019-11-05..2019-11-05",
                "Từ ngày 05/11/2019 đến ngày 05/11/2019",
            ),
            ("1970-01", (1970, 1, 1), (1970, 1, 31), PeriodKind::Month, "1970-01", "Tháng 1 năm 1970"),
            ("2099-Q4", (2099, 10, 1), (2099, 12, 31), PeriodKind::Quarter, "2099-Q4", "Quý IV năm 2099"),
        ];
        for (text, first, last, kind, label, title) in cases {
            let period = p(text);
            assert_eq!(period.first, d(first.0, first.1, first.2), "{text}");
            assert_eq!(period.last, d(last.0, last.1, last.2), "{text}");
            assert_eq!(period.kind, kind, "{text}");
            assert_eq!(period.label(), label, "{text}");
            assert_eq!(period.to_string(), label, "{text}");
            assert_eq!(period.title_vi(), title, "{text}");
            assert_eq!(p(&period.label()), period, "the label parses back: {text}");
        }
        assert_eq!(p("2019-11").days(), 30);
        assert_eq!("2019-Q4".parse::<Period>().unwrap(), p("2019-Q4"));
    }

    #[test]
    fn bad_inputs_are_refused_with_what_was_expected() {
        type Expected = fn(&PeriodError) -> bool;
        let cases: [(&str, Expected); 22] = [
            ("", |e| matches!(e, PeriodError::Form { .. })),
            ("19-11", |e| matches!(e, PeriodError::Form { .. })),
            ("2019-13", |e| matches!(e, PeriodError::Month { month: 13, .. })),
            ("2019-00", |e| matches!(e, PeriodError::Month { month: 0, .. })),
            ("2019-1", |e| matches!(e, PeriodError::Form { .. })),
            ("2019-Q5", |e| matches!(e, PeriodError::Quarter { quarter: 5, .. })),
            ("2019-Q0", |e| matches!(e, PeriodError::Quarter { quarter: 0, .. })),
            ("2019-H3", |e| matches!(e, PeriodError::Half { half: 3, .. })),
            ("2019-Q", |e| matches!(e, PeriodError::Form { .. })),
            ("2019-Q12", |e| matches!(e, PeriodError::Form { .. })),
            ("2019-X1", |e| matches!(e, PeriodError::Form { .. })),
            ("2019-11-", |e| matches!(e, PeriodError::Form { .. })),
            ("1969", |e| matches!(e, PeriodError::Year { year: 1969, .. })),
            ("2100-01", |e| matches!(e, PeriodError::Year { year: 2100, .. })),
            ("2019-02-30..2019-03-01", |e| matches!(e, PeriodError::Date { .. })),
            ("2019-10-1..2019-12-31", |e| matches!(e, PeriodError::Date { .. })),
            ("2019-10-01..", |e| matches!(e, PeriodError::Date { .. })),
            ("2019-12-31..2019-10-01", |e| matches!(e, PeriodError::Reversed { .. })),
            ("2019-01-01..2022-01-01", |e| matches!(e, PeriodError::TooLong { .. })),
            ("1969-12-31..1970-01-31", |e| matches!(e, PeriodError::Year { year: 1969, .. })),
            ("2099-12-01..2100-01-01", |e| matches!(e, PeriodError::Year { year: 2100, .. })),
            ("năm 2019", |e| matches!(e, PeriodError::Form { .. })),
        ];
        for (text, expected) in cases {
            let error = Period::parse(text).expect_err(text);
            assert!(expected(&error), "{text}: {error:?}");
            let message = error.to_string();
            assert!(message.contains(&format!("{:?}", text.trim())), "{message} quotes the input");
        }
        let message = Period::parse("2019/11").unwrap_err().to_string();
        assert!(
            message.contains("YYYY-MM, YYYY-Qn (n 1-4), YYYY-Hn (n 1-2), YYYY or YYYY-MM-DD..YYYY-MM-DD"),
            "{message}"
        );
        assert!(Period::parse("2019-H0").is_err());
        // Three years less a day is the longest range.
        assert_eq!(p("2019-01-01..2021-12-31").days(), 1096);
    }

    #[test]
    fn previous_steps_back_across_year_boundaries() {
        assert_eq!(p("2020-01").previous(), p("2019-12"));
        assert_eq!(p("2019-11").previous(), p("2019-10"));
        assert_eq!(p("2020-Q1").previous(), p("2019-Q4"));
        assert_eq!(p("2019-Q4").previous(), p("2019-Q3"));
        assert_eq!(p("2020-H1").previous(), p("2019-H2"));
        assert_eq!(p("2019-H2").previous(), p("2019-H1"));
        assert_eq!(p("2020").previous(), p("2019"));
        // A range: equally long, ending the day before.
        assert_eq!(p("2020-01-01..2020-01-10").previous(), p("2019-12-22..2019-12-31"));
        assert_eq!(p("2020-03-01..2020-03-01").previous(), p("2020-02-29..2020-02-29"));
        let quarter_range = p("2019-10-01..2019-12-31");
        assert_eq!(quarter_range.previous().days(), quarter_range.days());
        assert_eq!(quarter_range.previous().last, d(2019, 9, 30));
        // Nothing before 1970.
        assert_eq!(p("1970-01").previous(), p("1970-01"));
        assert_eq!(p("1970-01-05..1970-01-14").previous(), p("1970-01-01..1970-01-04"));
    }

    #[test]
    fn last_closed_month_and_quarter() {
        assert_eq!(Period::last_month(d(2020, 1, 1)), p("2019-12"));
        assert_eq!(Period::last_month(d(2019, 12, 31)), p("2019-11"));
        assert_eq!(Period::last_month(d(2019, 3, 1)), p("2019-02"));
        assert_eq!(Period::last_quarter(d(2020, 4, 1)), p("2020-Q1"));
        assert_eq!(Period::last_quarter(d(2020, 3, 31)), p("2019-Q4"));
        assert_eq!(Period::last_quarter(d(2020, 1, 1)), p("2019-Q4"));
        assert_eq!(Period::last_quarter(d(2019, 12, 31)), p("2019-Q3"));
    }

    #[test]
    fn bounds_are_local_midnights() {
        let period = p("2019-11");
        // 2019-11-01 00:00 +07:00 = 2019-10-31 17:00 UTC.
        assert_eq!(period.start_micros(), 1_572_541_200_000_000);
        // 2019-12-01 00:00 +07:00 = 2019-11-30 17:00 UTC.
        assert_eq!(period.end_micros(), 1_575_133_200_000_000);
        assert_eq!(LocalDay::of_micros(period.end_micros() - 1), d(2019, 11, 30));
        assert_eq!(period.end_micros(), period.previous().end_micros() + 30 * 86_400_000_000);
        assert_eq!(p("2099").end_micros(), d(2099, 12, 31).start_micros() + 86_400_000_000);
        assert!(period.contains(d(2019, 11, 30)) && !period.contains(d(2019, 12, 1)));
    }
}
