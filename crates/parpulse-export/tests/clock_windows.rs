//! The windows, the fiscal year and the rendered /metrics as of a fixed clock at the
//! instants where a wrong "today" shows: 23:59 and 00:00 in Asia/Ho_Chi_Minh (UTC is
//! then still on the previous day), the 1st of a month, 1 January (a new fiscal year:
//! the budget's fiscal year is the calendar year) and a weekend. Pure: no services, and
//! no test depends on the day it runs.

use parpulse_clickhouse::budget_staffing::BudgetYear;
use parpulse_clickhouse::day_count::UnitDay;
use parpulse_core::time::Clock;
use parpulse_core::{AgencyGroup, AgencyRegistry, LocalDay};
use parpulse_export::exposition::render_prometheus;
use parpulse_export::snapshot::AdministrationRows;
use parpulse_export::{Scope, Snapshot, Window};
use parpulse_prom_text::{find, parse};

fn clock(rfc3339: &str) -> Clock {
    Clock::fixed_at(rfc3339).expect("a valid instant")
}

fn day(y: i32, m: u32, d: u32) -> LocalDay {
    LocalDay::from_ymd(y, m, d).expect("a valid day")
}

/// SNV's receptions on `day`: `received`, of which one online.
fn snv(day: LocalDay, received: u64) -> UnitDay {
    UnitDay::receptions("SNV", day, received, 1, 0)
}

/// The province's receptions per window, as of `clock`, from `rows`.
fn received(rows: &[UnitDay], clock: &Clock) -> Vec<(&'static str, u64)> {
    let snapshot = Snapshot::build(rows, &AgencyRegistry::demo(), clock.today());
    Window::ALL
        .iter()
        .map(|w| (w.label(), snapshot.get(&Scope::Province, *w).expect("every window").received))
        .collect()
}

#[test]
fn at_23_59_the_day_window_holds_today_and_at_local_midnight_it_starts_empty() {
    // Receptions on Wednesday 27 and Thursday 28 November 2019.
    let rows = [snv(day(2019, 11, 27), 3), snv(day(2019, 11, 28), 5)];
    let evening = clock("2019-11-28T23:59:59+07:00");
    let midnight = clock("2019-11-29T00:00:00+07:00");
    assert_eq!(evening.today(), day(2019, 11, 28));
    // Local midnight is 17:00 UTC on the 28th: a UTC "today" would still say the 28th.
    assert_eq!(LocalDay::of_micros(midnight.now_micros() - 7 * 3_600_000_000), day(2019, 11, 28));
    assert_eq!(midnight.today(), day(2019, 11, 29));
    let expect = |d, mtd| {
        vec![("day", d), ("7d", 8), ("30d", 8), ("mtd", mtd), ("ytd", 8), ("last_month", 0), ("last_quarter", 0)]
    };
    assert_eq!(received(&rows, &evening), expect(5, 8));
    assert_eq!(received(&rows, &midnight), expect(0, 8));
    // The exposition says so too: no online share for a day without dossiers.
    let samples = parse(&render_prometheus(
        &Snapshot::build(&rows, &AgencyRegistry::demo(), midnight.today()),
        &AgencyRegistry::demo(),
    ));
    let province = |window| [("scope", "province"), ("unit", "HY"), ("window", window)];
    assert_eq!(find(&samples, "parpulse_dossiers_received", &province("day")), Some(0.0));
    assert_eq!(find(&samples, "parpulse_online_share_ratio", &province("day")), None);
    assert_eq!(find(&samples, "parpulse_online_share_ratio", &province("7d")), Some(2.0 / 8.0));
}

#[test]
fn the_first_of_a_month_starts_month_to_date_afresh_and_closes_last_month() {
    let rows = [
        snv(day(2019, 9, 30), 1),  // Q3's last day
        snv(day(2019, 10, 31), 2), // October
        snv(day(2019, 11, 1), 4),  // November's first day
        snv(day(2019, 11, 30), 8), // November's last day (a Saturday)
        snv(day(2019, 12, 1), 16), // December's first day (a Sunday)
    ];
    let end_of_november = clock("2019-11-30T23:59:59.999999+07:00");
    assert_eq!(
        received(&rows[..4], &end_of_november),
        [("day", 8), ("7d", 8), ("30d", 12), ("mtd", 12), ("ytd", 15), ("last_month", 2), ("last_quarter", 1)]
    );
    let first_of_december = clock("2019-12-01T00:00:00+07:00");
    assert_eq!(
        received(&rows, &first_of_december),
        [("day", 16), ("7d", 24), ("30d", 24), ("mtd", 16), ("ytd", 31), ("last_month", 12), ("last_quarter", 1)]
    );
    // The reads ClickHouse is asked for reach back to the start of the last closed quarter.
    assert_eq!(Window::earliest_needed(first_of_december.today()), day(2019, 1, 1));
    assert_eq!(Window::LastQuarter.first_day(first_of_december.today()), day(2019, 7, 1));
    assert_eq!(Window::LastQuarter.last_day(first_of_december.today()), day(2019, 9, 30));
}

#[test]
fn the_first_of_january_starts_year_to_date_and_a_new_fiscal_year() {
    let rows = [snv(day(2019, 10, 1), 1), snv(day(2019, 12, 31), 2), snv(day(2020, 1, 1), 4)];
    let budget = |year, allocated| BudgetYear {
        agency_code: "SNV".into(),
        fiscal_year: year,
        allocated,
        committed: 0,
        disbursed: allocated / 2,
        saved: 0,
        disclosed: 0,
    };
    let administration =
        AdministrationRows { budget: vec![budget(2019, 1_000), budget(2020, 3_000)], headcounts: vec![] };
    let registry = AgencyRegistry::demo();
    let as_of = |clock: &Clock| {
        Snapshot::build(&rows, &registry, clock.today()).with_administration(&administration, &registry)
    };
    let new_year_eve = clock("2019-12-31T23:59:59+07:00");
    let new_year = clock("2020-01-01T00:00:00+07:00");
    // 2020 begins in Hưng Yên while it is still 2019 in UTC.
    assert_eq!(new_year.now_micros(), clock("2019-12-31T17:00:00Z").now_micros());
    assert_eq!(
        received(&rows[..2], &new_year_eve),
        [("day", 2), ("7d", 2), ("30d", 2), ("mtd", 2), ("ytd", 3), ("last_month", 0), ("last_quarter", 0)]
    );
    assert_eq!(
        received(&rows, &new_year),
        [("day", 4), ("7d", 6), ("30d", 6), ("mtd", 4), ("ytd", 4), ("last_month", 2), ("last_quarter", 3)]
    );
    let unit = Scope::Unit { code: "SNV".into(), group: AgencyGroup::Department };
    let before = as_of(&new_year_eve);
    assert_eq!((before.fiscal_year, before.budget[&unit].allocated), (2019, 1_000));
    let after = as_of(&new_year);
    assert_eq!((after.fiscal_year, after.budget[&unit].allocated), (2020, 3_000));
    assert_eq!(after.budget[&Scope::Province].allocated, 3_000, "2019's budget is not added to 2020's");
    let samples = parse(&render_prometheus(&after, &registry));
    let labels = [("scope", "unit"), ("unit", "SNV"), ("fiscal_year", "2020"), ("kind", "allocated")];
    assert_eq!(find(&samples, "parpulse_budget_vnd", &labels), Some(3_000.0));
    let old = [("scope", "unit"), ("unit", "SNV"), ("fiscal_year", "2019"), ("kind", "allocated")];
    assert_eq!(find(&samples, "parpulse_budget_vnd", &old), None, "last year's budget is not exported");
    let execution = [("scope", "unit"), ("unit", "SNV"), ("fiscal_year", "2020")];
    assert_eq!(find(&samples, "parpulse_budget_execution_ratio", &execution), Some(0.5));
}

#[test]
fn on_a_weekend_the_day_window_is_empty_while_the_week_keeps_friday() {
    // Friday 6 December 2019 had receptions; the civil service does not work on
    // Saturday 7 or Sunday 8 (deploy/holidays.toml: no make-up Saturday then).
    let calendar = parpulse_core::lifecycle::active_calendar();
    assert_eq!(calendar.is_working_day(day(2019, 12, 7)), Ok(false));
    assert_eq!(calendar.is_working_day(day(2019, 12, 8)), Ok(false));
    let rows = [snv(day(2019, 12, 6), 7)];
    for sunday_noon in ["2019-12-08T12:00:00+07:00", "2019-12-08T05:00:00Z"] {
        assert_eq!(
            received(&rows, &clock(sunday_noon)),
            [("day", 0), ("7d", 7), ("30d", 7), ("mtd", 7), ("ytd", 7), ("last_month", 0), ("last_quarter", 0)]
        );
    }
    // Friday evening, after office hours, the day still holds Friday's dossiers.
    assert_eq!(received(&rows, &clock("2019-12-06T21:00:00+07:00"))[0], ("day", 7));
}
