//! Every KPI value on /metrics checked (issue 18 item 2): a simulated province over more
//! than a year, a fifth of its dossiers in the hard cases of the rules, goes through Kafka,
//! a real `parpulse aggregate` and ClickHouse; two real `parpulse export` processes with a
//! fixed now (`PARPULSE_FAKE_NOW`) are scraped once each, and every series of every KPI
//! gauge family they emit, for every scope (unit, group, province) and window (day, 7d,
//! 30d, mtd, ytd, last_month, last_quarter), is compared with the value worked out from
//! the events by the independent recount (tests/support/recount.rs: the legal rules of
//! docs/KPIS.md written again, no parpulse rule code) and the lines of docs/KPIS.md.
//!
//! The gauge families are taken from the /metrics text itself: a family this test does
//! not compute and that is not on the commented allow-list of non-KPI families fails the
//! test, so a new gauge cannot go unchecked. Counts are compared exactly, ratios within
//! 1e-9; a ratio with a zero denominator must be absent (docs/KPIS.md: "absent, never 0").

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use parpulse_core::{AgencyRegistry, Event};
use parpulse_ingest::gate::Gate;
use parpulse_ingest::{KafkaSink, Simulator, SimulatorConfig};
use parpulse_tests::prom_text::{parse, Sample};
use parpulse_tests::recount::{self, DossierRecount, EndKind, Judgment};
use parpulse_tests::TestEnv;

/// A Thursday, in office hours: the day window has the morning's receptions. The
/// simulation ends here.
const THURSDAY: &str = "2025-11-27T10:30:00+07:00";
/// The Monday after, 1 December: month to date starts over (no events yet), last month
/// becomes November, 7 days reach back into the data.
const FIRST_OF_MONTH: &str = "2025-12-01T09:00:00+07:00";
/// Days simulated up to [`THURSDAY`]: from September 2024, so year to date, last quarter
/// (Q3 2025) and every rolling window are full of data.
const DAYS: u32 = 430;

/// Families on /metrics that are not KPIs of the events, each with why it is not compared.
const NOT_KPI: [&str; 8] = [
    // Always 1, labelled with the version the process runs.
    "parpulse_build_info",
    // 1 while ClickHouse answers: a health signal, not a figure of the events.
    "parpulse_dependency_up",
    // The working-day calendar's reach (deploy/holidays.toml), not a KPI.
    "parpulse_calendar_last_year",
    // Judgments beyond the calendar: asserted to be 0 below, as the data lies within it.
    "parpulse_calendar_beyond_total",
    // Refresh bookkeeping and freshness of the exporter itself.
    "parpulse_exporter_refreshes_total",
    "parpulse_exporter_refresh_errors_total",
    "parpulse_exporter_last_refresh_timestamp_seconds",
    "parpulse_exporter_stale",
];
/// The Prometheus client's process collector (CPU, memory, file descriptors).
const NOT_KPI_PREFIX: &str = "process_";

/// The simulated province: one dossier in five in a hard case (an appointment short of the
/// legal maximum, only a legal maximum in working days, two supplement requests, one still
/// waiting, a request after the deadline, apologies on an early dossier and on the
/// deadline's day, a return before the processing, a stop before a processing).
fn simulate() -> (Vec<Event>, String) {
    let end = instant(THURSDAY);
    let config = SimulatorConfig::ending_at(18, DAYS, 3, end).with_hard_cases(0.2);
    let events: Vec<_> = Simulator::new(config, &AgencyRegistry::demo()).collect();
    let mut ndjson = Vec::new();
    parpulse_ingest::ndjson::write_events(&mut ndjson, &events).expect("writing NDJSON to memory");
    (events, String::from_utf8(ndjson).expect("UTF-8"))
}

/// An RFC 3339 instant as UTC microseconds.
fn instant(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).expect("an RFC 3339 instant").timestamp_micros()
}

/// Days since 1970-01-01 of a date (the recount's local days).
fn day_number(date: NaiveDate) -> i64 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
}

/// Every window as of local day `today`: (label, first day, last day), worked out here
/// from the calendar (docs/METRICS.md), not with parpulse's `Window`.
fn windows(today: NaiveDate) -> Vec<(&'static str, i64, i64)> {
    let t = day_number(today);
    let month_start = today.with_day(1).unwrap();
    let last_month_end = month_start.pred_opt().unwrap();
    let quarter_start = NaiveDate::from_ymd_opt(today.year(), (today.month0() / 3) * 3 + 1, 1).unwrap();
    let last_quarter_end = quarter_start.pred_opt().unwrap();
    let last_quarter_start =
        NaiveDate::from_ymd_opt(last_quarter_end.year(), (last_quarter_end.month0() / 3) * 3 + 1, 1).unwrap();
    vec![
        ("day", t, t),
        ("7d", t - 6, t),
        ("30d", t - 29, t),
        ("mtd", day_number(month_start), t),
        ("ytd", day_number(NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap()), t),
        ("last_month", day_number(last_month_end.with_day(1).unwrap()), day_number(last_month_end)),
        ("last_quarter", day_number(last_quarter_start), day_number(last_quarter_end)),
    ]
}

/// A scope: its `scope`, `unit` and `group` labels, and the units it sums.
struct Scope {
    labels: [(&'static str, String); 3],
    units: BTreeSet<String>,
}

fn scopes(registry: &AgencyRegistry) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = registry
        .iter()
        .map(|a| Scope {
            labels: [("scope", "unit".into()), ("unit", a.code.to_string()), ("group", a.group.as_str().into())],
            units: BTreeSet::from([a.code.to_string()]),
        })
        .collect();
    for group in parpulse_core::AgencyGroup::ALL {
        scopes.push(Scope {
            labels: [("scope", "group".into()), ("unit", group.as_str().into()), ("group", group.as_str().into())],
            units: registry.iter().filter(|a| a.group == group).map(|a| a.code.to_string()).collect(),
        });
    }
    scopes.push(Scope {
        labels: [("scope", "province".into()), ("unit", registry.province().code.to_string()), ("group", "".into())],
        units: registry.iter().map(|a| a.code.to_string()).collect(),
    });
    scopes
}

type Key = (String, BTreeMap<String, String>);

/// The series /metrics must hold, with their values.
#[derive(Default)]
struct Expected(BTreeMap<Key, f64>);

impl Expected {
    fn put(&mut self, name: &str, labels: &[(&str, String)], value: f64) {
        let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        assert!(self.0.insert((name.to_owned(), labels), value).is_none(), "{name} expected twice");
    }

    fn count(&mut self, name: &str, labels: &[(&str, String)], value: u64) {
        self.put(name, labels, value as f64);
    }

    /// A ratio: present only with a non-zero denominator.
    fn ratio(&mut self, name: &str, labels: &[(&str, String)], numerator: u64, denominator: u64) {
        if let Some(ratio) = ratio(numerator, denominator) {
            self.put(name, labels, ratio);
        }
    }
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// Sums over one scope and window, from the recounted dossiers.
#[derive(Debug, Default, Clone, Copy)]
struct Flow {
    // Receptions (day_count: each `received` event, by its day).
    received: u64,
    online: u64,
    postal: u64,
    // Resolved, by end day; refused, by day refused.
    resolved: u64,
    on_time: u64,
    early: u64,
    late: u64,
    late_with_apology: u64,
    late_without_apology: u64,
    returned: u64,
    returned_postal: u64,
    withdrawn: u64,
    stopped: u64,
    refused: u64,
    // Dossiers by their first reception's day.
    dossiers: u64,
    result_postal: u64,
    postal_users: u64,
    fee_bearing: u64,
    paid_online: u64,
    digitized: u64,
    // The procedure catalogue's figures.
    offered: u64,
    offered_used: u64,
    received_level34: u64,
    online_level34: u64,
    unknown_procedure: u64,
}

/// The recount of one export: what every KPI series must say as of `now`.
fn expected_metrics(
    now: i64,
    registry: &AgencyRegistry,
    ndjson: &str,
    dossiers: &[DossierRecount],
    catalogue: &BTreeMap<(String, String), i64>,
) -> Expected {
    let today_number = recount::local_day(now);
    let today = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(today_number as u64);
    let receptions = recount::recount_ndjson(ndjson);
    let budget = recount::recount_budget(ndjson);
    let headcounts = recount::recount_headcounts(ndjson);
    // The level each dossier's unit offers its procedure at (None: not in the catalogue).
    let levels: Vec<Option<i64>> =
        dossiers.iter().map(|d| catalogue.get(&(d.agency.clone(), d.procedure.clone())).copied()).collect();
    let mut want = Expected::default();
    for scope in scopes(registry) {
        let base = scope.labels.to_vec();
        let unit_of = |agency: &str| scope.units.contains(agency);
        for (window, first, last) in windows(today) {
            let within = |day: i64| (first..=last).contains(&day);
            let mut f = Flow::default();
            let r = receptions.iter().filter(|((unit, day), _)| unit_of(unit) && within(*day)).fold(
                recount::Recount::default(),
                |mut sum, (_, c)| {
                    sum.received += c.received;
                    sum.online += c.online;
                    sum.postal += c.postal;
                    sum
                },
            );
            (f.received, f.online, f.postal) = (r.received, r.online, r.postal);
            // Online receptions per (unit, procedure) in the window, for "used".
            let mut used: BTreeSet<(&str, &str)> = BTreeSet::new();
            for (d, level) in dossiers.iter().zip(&levels).filter(|(d, _)| unit_of(&d.agency)) {
                match d.judgment {
                    Judgment::Refused { day } if within(day) => f.refused += 1,
                    Judgment::Resolved { day, kind, early, late, timely_apology, no_apology, returned }
                        if within(day) =>
                    {
                        f.resolved += 1;
                        f.on_time += u64::from(!late);
                        f.early += u64::from(early);
                        f.late += u64::from(late);
                        f.late_with_apology += u64::from(timely_apology);
                        f.late_without_apology += u64::from(no_apology);
                        f.returned += u64::from(returned);
                        f.returned_postal += u64::from(returned && d.result_postal);
                        f.withdrawn += u64::from(kind == EndKind::Withdrawn);
                        f.stopped += u64::from(kind == EndKind::Stopped);
                    }
                    _ => {}
                }
                if !d.received_day.is_some_and(within) {
                    continue;
                }
                f.dossiers += 1;
                f.result_postal += u64::from(d.result_postal);
                f.postal_users += u64::from(d.result_postal || d.received_channel == "postal");
                f.fee_bearing += u64::from(d.fee_bearing);
                f.paid_online += u64::from(d.fee_bearing && d.paid_online);
                f.digitized += u64::from(d.digitized);
                match level {
                    None => f.unknown_procedure += 1,
                    Some(level) if *level >= 3 => {
                        f.received_level34 += 1;
                        f.online_level34 += u64::from(d.received_online);
                        if d.received_online {
                            used.insert((&d.agency, &d.procedure));
                        }
                    }
                    Some(_) => {}
                }
            }
            f.offered = catalogue.iter().filter(|((unit, _), level)| unit_of(unit) && **level >= 3).count() as u64;
            f.offered_used = used.len() as u64;
            let mut labels = base.clone();
            labels.push(("window", window.to_owned()));
            put_flow(&mut want, &labels, &f);
            if window == "30d" {
                put_par_index_flow(&mut want, &base, &f);
            }
        }
        put_snapshot(&mut want, &base, now, dossiers, &unit_of);
        put_administration(&mut want, &base, today.year(), (&budget, &headcounts), &unit_of);
    }
    put_constants(&mut want, registry, today.year());
    want
}

/// Every windowed family of one scope and window.
fn put_flow(want: &mut Expected, labels: &[(&str, String)], f: &Flow) {
    for (name, value) in [
        ("parpulse_dossiers_received", f.received),
        ("parpulse_dossiers_received_online", f.online),
        ("parpulse_dossiers_received_postal", f.postal),
        ("parpulse_dossiers_resolved", f.resolved),
        ("parpulse_dossiers_resolved_on_time", f.on_time),
        ("parpulse_dossiers_resolved_early", f.early),
        ("parpulse_dossiers_resolved_late", f.late),
        ("parpulse_dossiers_late_with_apology", f.late_with_apology),
        ("parpulse_dossiers_late_without_apology", f.late_without_apology),
        ("parpulse_dossiers_returned", f.returned),
        ("parpulse_dossiers_returned_postal", f.returned_postal),
        ("parpulse_dossiers_withdrawn", f.withdrawn),
        ("parpulse_dossiers_stopped", f.stopped),
        ("parpulse_dossiers_refused", f.refused),
        ("parpulse_dossiers_result_postal", f.result_postal),
        ("parpulse_dossiers_fee_bearing", f.fee_bearing),
        ("parpulse_dossiers_paid_online", f.paid_online),
        ("parpulse_dossiers_digitized", f.digitized),
        ("parpulse_procedures_online_offered", f.offered),
        ("parpulse_procedures_online_with_dossier", f.offered_used),
        ("parpulse_dossiers_received_level34_procedures", f.received_level34),
        ("parpulse_dossiers_received_online_level34_procedures", f.online_level34),
        ("parpulse_dossiers_unknown_procedure", f.unknown_procedure),
    ] {
        want.count(name, labels, value);
    }
    for (name, numerator, denominator) in [
        ("parpulse_online_share_ratio", f.online, f.received),
        ("parpulse_postal_intake_ratio", f.postal, f.received),
        ("parpulse_on_time_ratio", f.on_time, f.resolved),
        ("parpulse_apology_coverage_ratio", f.late_with_apology, f.late),
        ("parpulse_postal_use_ratio", f.postal_users, f.dossiers),
        ("parpulse_online_payment_ratio", f.paid_online, f.fee_bearing),
        ("parpulse_digitization_ratio", f.digitized, f.dossiers),
        ("parpulse_procedures_online_share_ratio", f.offered_used, f.offered),
        ("parpulse_online_share_level34_procedures_ratio", f.online_level34, f.received_level34),
    ] {
        want.ratio(name, labels, numerator, denominator);
    }
    // Decision 766 (docs/KPIS.md): (indicator, points, target, rate); full points at or
    // above the target, else rate x points / target; the score over the indicators with data.
    let indicators = [
        ("on_time", 20.0, 1.0, ratio(f.on_time, f.resolved)),
        ("online_dossier", 11.0, 0.5, ratio(f.online, f.received)),
        ("online_payment", 11.0, 0.5, ratio(f.paid_online, f.fee_bearing)),
        ("digitization", 22.0, 0.8, ratio(f.digitized, f.dossiers)),
        ("satisfaction", 18.0, 0.9, ratio(f.late, f.resolved).map(|late| 1.0 - late)),
    ];
    let (mut earned, mut available) = (0.0, 0.0);
    for (indicator, points, target, rate) in indicators {
        let Some(rate) = rate else { continue };
        let got = if rate >= target { points } else { rate * points / target };
        let mut with_indicator = labels.to_vec();
        with_indicator.push(("indicator", indicator.to_owned()));
        want.put("parpulse_766_points", &with_indicator, got);
        earned += got;
        available += points;
    }
    if available > 0.0 {
        want.put("parpulse_766_score_ratio", labels, earned / available);
    }
}

/// `parpulse_par_index_criterion_below_target` of one scope for its flow criteria, judged
/// over 30 days against the lines of docs/KPIS.md ("The PAR Index view"); absent without data.
fn put_par_index_flow(want: &mut Expected, base: &[(&str, String)], f: &Flow) {
    for (component, criterion, value, line) in [
        ("administrative_procedures", "on_time", ratio(f.on_time, f.resolved), 0.9),
        ("administrative_procedures", "apology", ratio(f.late_with_apology, f.late), 1.0),
        ("e_government", "online_share", ratio(f.online, f.received), 0.3),
        ("e_government", "online_services_used", ratio(f.offered_used, f.offered), 0.5),
        ("e_government", "online_payment", ratio(f.paid_online, f.fee_bearing), 0.5),
        ("e_government", "digitization", ratio(f.digitized, f.dossiers), 0.8),
    ] {
        if let Some(value) = value {
            put_below(want, base, component, criterion, value < line);
        }
    }
}

fn put_below(want: &mut Expected, base: &[(&str, String)], component: &str, criterion: &str, below: bool) {
    let mut labels = base.to_vec();
    labels.push(("component", component.to_owned()));
    labels.push(("criterion", criterion.to_owned()));
    want.put("parpulse_par_index_criterion_below_target", &labels, f64::from(u8::from(below)));
}

/// Open and overdue dossiers now (no window).
fn put_snapshot(
    want: &mut Expected,
    base: &[(&str, String)],
    now: i64,
    dossiers: &[DossierRecount],
    unit_of: &dyn Fn(&str) -> bool,
) {
    let (mut open, mut overdue) = (0, 0);
    for d in dossiers.iter().filter(|d| unit_of(&d.agency)) {
        if let Judgment::Open { deadline } = d.judgment {
            open += 1;
            overdue += u64::from(deadline.is_some_and(|deadline| deadline < now));
        }
    }
    want.count("parpulse_dossiers_open", base, open);
    want.count("parpulse_dossiers_open_overdue", base, overdue);
    want.ratio("parpulse_open_overdue_ratio", base, overdue, open);
    if open > 0 {
        put_below(want, base, "administrative_procedures", "open_overdue", overdue > 0);
    }
}

/// Budget sums per (unit, fiscal year): allocated, committed, disbursed, saved, disclosed.
type BudgetSums = BTreeMap<(String, i32), [i64; 5]>;
/// The newest (quota, filled, baseline) per (unit, position).
type Headcounts = BTreeMap<(String, String), recount::Headcount>;

/// Budget of the fiscal year (the calendar year of today) and staffing from the newest
/// headcount snapshots.
fn put_administration(
    want: &mut Expected,
    base: &[(&str, String)],
    year: i32,
    (budgets, headcounts): (&BudgetSums, &Headcounts),
    unit_of: &dyn Fn(&str) -> bool,
) {
    let mut budget = [0i64; 5];
    for ((unit, fiscal_year), sums) in budgets {
        if unit_of(unit) && *fiscal_year == year {
            budget.iter_mut().zip(sums).for_each(|(total, sum)| *total += sum);
        }
    }
    let mut with_year = base.to_vec();
    with_year.push(("fiscal_year", year.to_string()));
    for (kind, amount) in ["allocated", "committed", "disbursed", "saved", "disclosed"].into_iter().zip(budget) {
        let mut labels = with_year.clone();
        labels.push(("kind", kind.to_owned()));
        want.put("parpulse_budget_vnd", &labels, amount as f64);
    }
    let [allocated, _, disbursed, saved, disclosed] = budget.map(|v| v as u64);
    want.ratio("parpulse_budget_execution_ratio", &with_year, disbursed, allocated);
    want.ratio("parpulse_budget_savings_ratio", &with_year, saved, allocated);
    want.ratio("parpulse_budget_disclosure_ratio", &with_year, disclosed, allocated);
    if let Some(disclosure) = ratio(disclosed, allocated) {
        put_below(want, base, "public_finance", "budget_disclosure", disclosure < 1.0);
    }

    // Staff: quota, filled, 2015 baseline; deputies: limit and filled, and those above the
    // limit unit by unit (a unit's free places offset no other's).
    let (mut staff, mut deputies, mut over) = ([0u64; 3], [0u64; 2], 0u64);
    for ((unit, position), &(quota, filled, baseline)) in headcounts {
        if !unit_of(unit) {
            continue;
        }
        let n = |v: i32| v.max(0) as u64;
        match position.as_str() {
            "staff" => staff = [staff[0] + n(quota), staff[1] + n(filled), staff[2] + n(baseline)],
            "deputy" => {
                deputies = [deputies[0] + n(quota), deputies[1] + n(filled)];
                over += n(filled - quota);
            }
            _ => {}
        }
    }
    for (position, measure, value) in [
        ("staff", "quota", staff[0]),
        ("staff", "filled", staff[1]),
        ("staff", "baseline", staff[2]),
        ("deputy", "limit", deputies[0]),
        ("deputy", "filled", deputies[1]),
    ] {
        let mut labels = base.to_vec();
        labels.push(("position", position.to_owned()));
        labels.push(("measure", measure.to_owned()));
        want.count("parpulse_staff_positions", &labels, value);
    }
    want.ratio("parpulse_staff_reduction_ratio", base, staff[2] - staff[0], staff[2]);
    want.count("parpulse_deputies_over_limit", base, over);
    if deputies[0] > 0 {
        put_below(want, base, "organisation", "deputies", over > 0);
    }
    // The roadmap checkpoint in force: the 2021 one (10%) from 2022 to 2026.
    assert!((2022..=2026).contains(&year), "the checkpoint below holds from 2022 to 2026");
    if let Some(reduction) = ratio(staff[2] - staff[0], staff[2]) {
        put_below(want, base, "organisation", "staff_reduction", reduction < 0.10);
    }
}

/// The lines and tables of docs/KPIS.md and docs/METRICS.md, and one info series per unit.
fn put_constants(want: &mut Expected, registry: &AgencyRegistry, year: i32) {
    for (name, value) in [
        ("parpulse_online_share_target_ratio", 0.3),
        ("parpulse_on_time_target_ratio", 0.9),
        ("parpulse_apology_coverage_target_ratio", 1.0),
        ("parpulse_staff_reduction_target_ratio", 0.1),
    ] {
        want.put(name, &[], value);
    }
    for (checkpoint, value) in [("2021", 0.10), ("2026", 0.145)] {
        want.put("parpulse_staff_reduction_roadmap_ratio", &[("checkpoint", checkpoint.into())], value);
    }
    assert!(year <= 2026);
    want.put("parpulse_staff_reduction_due_ratio", &[("checkpoint", "2021".into())], 0.10);
    for (indicator, target) in [
        ("on_time", 1.0),
        ("online_dossier", 0.5),
        ("online_payment", 0.5),
        ("digitization", 0.8),
        ("satisfaction", 0.9),
    ] {
        want.put("parpulse_766_target_ratio", &[("indicator", indicator.into())], target);
    }
    // Series whose labels carry Vietnamese names: compared on their keys only (see `key_of`).
    for (indicator, points) in [
        ("on_time", 20.0),
        ("online_dossier", 11.0),
        ("online_payment", 11.0),
        ("digitization", 22.0),
        ("satisfaction", 18.0),
    ] {
        want.put("parpulse_766_indicator_points_max", &[("indicator", indicator.into())], points);
    }
    for unit in registry.iter().map(|a| a.code.to_string()).chain([registry.province().code.to_string()]) {
        want.put("parpulse_unit_info", &[("unit", unit)], 1.0);
    }
    for criterion in [
        "on_time",
        "apology",
        "open_overdue",
        "online_share",
        "online_services_used",
        "online_payment",
        "digitization",
        "deputies",
        "staff_reduction",
        "budget_disclosure",
    ] {
        want.put("parpulse_par_index_criterion_info", &[("criterion", criterion.into())], 1.0);
    }
}

/// A sample's key: its name and labels, for the info families only the identifying label
/// (their other labels are Vietnamese names and descriptions, not figures).
fn key_of(sample: &Sample) -> Key {
    let keep: Option<&str> = match sample.name.as_str() {
        "parpulse_766_indicator_points_max" => Some("indicator"),
        "parpulse_unit_info" => Some("unit"),
        "parpulse_par_index_criterion_info" => Some("criterion"),
        _ => None,
    };
    let labels = match keep {
        Some(label) => {
            sample.labels.iter().filter(|(k, _)| k.as_str() == label).map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        None => sample.labels.clone(),
    };
    (sample.name.clone(), labels)
}

/// Compares a scrape with the expected series: every family is compared or allow-listed;
/// every emitted series of a compared family is expected with its value; every expected
/// series is emitted. Returns the disagreements and the number of series compared.
fn compare(now: &str, samples: &[Sample], want: &Expected) -> (Vec<String>, usize) {
    let compared: BTreeSet<&str> = want.0.keys().map(|(name, _)| name.as_str()).collect();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let unchecked: BTreeSet<&str> = samples
        .iter()
        .map(|s| s.name.as_str())
        .filter(|name| !compared.contains(name) && !NOT_KPI.contains(name) && !name.starts_with(NOT_KPI_PREFIX))
        .collect();
    for name in unchecked {
        problems.push(format!("{now}: family {name} is on /metrics but neither compared nor allow-listed"));
    }
    for sample in samples.iter().filter(|s| compared.contains(s.name.as_str())) {
        let key = key_of(sample);
        match want.0.get(&key) {
            None => problems.push(format!("{now}: {key:?} = {} emitted, the recount expects it absent", sample.value)),
            Some(expected) => {
                let close = (sample.value - expected).abs() <= 1e-9 * expected.abs().max(1.0);
                if !close {
                    problems
                        .push(format!("{now}: {key:?} = {} on /metrics, the recount says {expected}", sample.value));
                }
            }
        }
        assert!(seen.insert(key.clone()), "{key:?} emitted twice");
    }
    for key in want.0.keys().filter(|key| !seen.contains(*key)) {
        problems.push(format!("{now}: {key:?} = {} expected, absent from /metrics", want.0[key]));
    }
    (problems, seen.len())
}

fn province(samples: &[Sample], name: &str, window: &str) -> f64 {
    let labels = [("scope", "province"), ("unit", "HY"), ("window", window)];
    parpulse_tests::prom_text::find(samples, name, &labels).unwrap_or_else(|| panic!("{name} {window} missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kpi_gauge_on_metrics_equals_the_recount_of_the_events() {
    let started = Instant::now();
    let env = TestEnv::new("every_gauge");
    let store = env.connect().await;
    env.migrate(&store).await;
    let (events, ndjson) = simulate();
    let sink = KafkaSink::new(env.kafka(), Gate::new(AgencyRegistry::demo(), Default::default())).expect("producer");
    let summary = sink.send(events.clone(), "test").await.expect("Kafka acknowledged the events");
    assert_eq!((summary.accepted, summary.rejected), (events.len() as u64, 0), "every simulated event is valid");
    let produced = started.elapsed();

    // A real aggregator process, on the wall clock: every event is before both instants
    // judged below, so judging now or then gives the same stored facts.
    let log = std::env::temp_dir().join(format!("parpulse-every-gauge-{}.log", std::process::id()));
    let mut aggregator = parpulse_tests::aggregators::start_aggregator(&env, "every-gauge", &log);
    env.wait_caught_up(&store, Duration::from_secs(300)).await;
    aggregator.assert_running("the aggregator");
    aggregator.kill();
    let aggregated = started.elapsed();

    let registry = AgencyRegistry::demo();
    let dossiers = recount::recount_dossiers(&ndjson);
    let catalogue = recount::procedure_levels();
    let mut problems = Vec::new();
    let mut compared = 0;
    let mut scrapes = Vec::new();
    let mut timings = Vec::new();
    for now in [THURSDAY, FIRST_OF_MONTH] {
        let asked = Instant::now();
        let (exporter, text) = parpulse_tests::metrics_as_of(&env, now).await;
        drop(exporter);
        timings.push(asked.elapsed());
        let samples = parse(&text);
        let want = expected_metrics(instant(now), &registry, &ndjson, &dossiers, &catalogue);
        let (found, count) = compare(now, &samples, &want);
        problems.extend(found);
        compared += count;
        let beyond = samples.iter().find(|s| s.name == "parpulse_calendar_beyond_total").map(|s| s.value);
        assert_eq!(beyond, Some(0.0), "{now}: no judgment needed a day beyond the calendar");
        scrapes.push(samples);
    }
    let listed: Vec<&String> = problems.iter().take(60).collect();
    assert!(problems.is_empty(), "{} disagreements between /metrics and the recount:\n{listed:#?}", problems.len());

    // The data made every window meaningful: on the Thursday every window of the province
    // has receptions and resolutions, and the hard cases show in the year's figures.
    let [thursday, first_of_month] = &scrapes[..] else { unreachable!() };
    for window in ["day", "7d", "30d", "mtd", "ytd", "last_month", "last_quarter"] {
        assert!(province(thursday, "parpulse_dossiers_received", window) > 0.0, "receptions in {window}");
    }
    for window in ["7d", "30d", "mtd", "ytd", "last_month", "last_quarter"] {
        assert!(province(thursday, "parpulse_dossiers_resolved", window) > 0.0, "resolutions in {window}");
    }
    for name in [
        "parpulse_dossiers_resolved_early",
        "parpulse_dossiers_resolved_late",
        "parpulse_dossiers_late_with_apology",
        "parpulse_dossiers_refused",
        "parpulse_dossiers_withdrawn",
        "parpulse_dossiers_stopped",
        "parpulse_dossiers_returned_postal",
        "parpulse_dossiers_unknown_procedure",
    ] {
        assert!(province(thursday, name, "ytd") > 0.0, "{name} has cases in the year");
    }
    let ytd_late = province(thursday, "parpulse_dossiers_resolved_late", "ytd");
    assert!(
        province(thursday, "parpulse_dossiers_late_with_apology", "ytd") < ytd_late,
        "some late without a timely letter"
    );
    // On 1 December: nothing yet this month (counts 0, ratios absent: the comparison above
    // required that of every empty window), November is last month.
    assert_eq!(province(first_of_month, "parpulse_dossiers_received", "mtd"), 0.0);
    let mtd = [("scope", "province"), ("unit", "HY"), ("window", "mtd")];
    for ratio in ["parpulse_online_share_ratio", "parpulse_on_time_ratio", "parpulse_766_score_ratio"] {
        assert_eq!(parpulse_tests::prom_text::find(first_of_month, ratio, &mtd), None, "{ratio} without data");
    }
    assert_eq!(
        province(first_of_month, "parpulse_dossiers_received", "last_month"),
        province(thursday, "parpulse_dossiers_received", "mtd")
    );
    eprintln!(
        "every gauge: {} events produced in {produced:.1?}, aggregated by {aggregated:.1?}, scrapes {timings:.1?}, \
         {compared} series compared, {:.1?} in all",
        events.len(),
        started.elapsed()
    );
    env.delete_topics(&[env.topics.budget.as_str(), env.topics.staffing.as_str()]).await;
    env.cleanup().await;
    let _ = std::fs::remove_file(log);
}
