//! Fills a [`PeriodReport`] from the dossiers' stored facts: each dossier is judged as
//! of the period's end with the one set of rules (`parpulse_core::lifecycle`), so a late
//! correction to a closed month changes that month's report, and the report is never a
//! frozen copy. Pure except [`read`], which fetches the facts.

use std::collections::{BTreeMap, HashMap};

use parpulse_clickhouse::dossier_state::{self, DossierStateRow};
use parpulse_clickhouse::event_log;
use parpulse_clickhouse::{Store, StoreError};
use parpulse_core::avro::AvroCodec;
use parpulse_core::calendar::WorkingCalendar;
use parpulse_core::decision766::Score766;
use parpulse_core::kpi::{DossierDayCounts, ResolvedCounts, ServiceCounts};
use parpulse_core::lifecycle::{ApologyTiming, DossierLifecycle, EndKind, Outcome, Timeliness};
use parpulse_core::period::Period;
use parpulse_core::procedures::ProcedureCatalogue;
use parpulse_core::{AgencyGroup, AgencyRegistry, Channel, Event};

use super::{PeriodCounts, PeriodReport, ReportRow, RowScope};

/// One scope's counts, with the Decision 766 facts of the period's new receptions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScopeTotals {
    pub counts: PeriodCounts,
    pub service: ServiceCounts,
}

impl ScopeTotals {
    fn add(&mut self, other: &ScopeTotals) {
        self.counts.add(&other.counts);
        self.service.add(&other.service);
    }

    /// The Decision 766 score of the period (0 to 1), from the same counts as the row.
    pub fn score_766(&self) -> Option<f64> {
        let c = &self.counts;
        let received = DossierDayCounts {
            received: c.received_new(),
            received_online: c.received_online,
            received_postal: c.received_postal,
        };
        let resolved = ResolvedCounts {
            resolved: c.resolved(),
            on_time: c.resolved_early + c.resolved_on_time,
            early: c.resolved_early,
            late: c.resolved_late,
            ..Default::default()
        };
        Score766::of(&received, &resolved, &self.service).ratio()
    }
}

/// What one dossier adds to its unit's row for `period`, judged as of the period's end.
pub fn judge(lifecycle: &DossierLifecycle, period: &Period, calendar: &WorkingCalendar) -> ScopeTotals {
    let (start, end) = (period.start_micros(), period.end_micros());
    let at = end - 1;
    let in_period = |t: i64| (start..end).contains(&t);
    let mut totals = ScopeTotals::default();
    let c = &mut totals.counts;
    if lifecycle.apology_at.is_some_and(in_period) {
        match lifecycle.apology(at, calendar) {
            ApologyTiming::Timely => c.apologies_timely += 1,
            ApologyTiming::Late => c.apologies_late += 1,
            ApologyTiming::None => {}
        }
    }
    let outcome = lifecycle.outcome(at, calendar);
    let received = match outcome {
        Outcome::NotReceived => return totals,
        Outcome::Refused { at } => {
            c.refused += u64::from(in_period(at));
            return totals;
        }
        _ => lifecycle.received_at.unwrap_or(start),
    };
    // Where the dossier stands at the period's end; resolved before it: not in this report.
    match outcome {
        Outcome::Resolved { end: ended, .. } if ended < start => return totals,
        Outcome::Resolved { kind, timeliness, .. } => {
            match timeliness {
                Timeliness::Early => c.resolved_early += 1,
                Timeliness::OnTime => c.resolved_on_time += 1,
                Timeliness::Late => c.resolved_late += 1,
            }
            c.withdrawn += u64::from(kind == EndKind::Withdrawn);
            c.stopped += u64::from(kind == EndKind::Stopped);
        }
        Outcome::Open { deadline } => match deadline {
            Some(deadline) if deadline < end => c.open_overdue += 1,
            _ => c.open_within_deadline += 1,
        },
        Outcome::NotReceived | Outcome::Refused { .. } => unreachable!("returned above"),
    }
    // Where it came from: carried over, or new in the period by channel.
    c.result_postal += u64::from(lifecycle.result_postal);
    if received < start {
        c.carried_over += 1;
    } else {
        match lifecycle.received_channel {
            Some(Channel::Online) => c.received_online += 1,
            Some(Channel::Postal) => c.received_postal += 1,
            Some(Channel::InPerson) | None => c.received_in_person += 1,
        }
        let s = &mut totals.service;
        s.received += 1;
        s.fee_bearing += u64::from(lifecycle.fee_bearing);
        s.paid_online += u64::from(lifecycle.fee_bearing && lifecycle.paid_online);
        s.digitized += u64::from(lifecycle.digitized);
        s.result_postal += u64::from(lifecycle.result_postal);
        s.postal_users += u64::from(lifecycle.result_postal || lifecycle.received_channel == Some(Channel::Postal));
    }
    totals
}

/// Sums judged dossiers per unit, then lays out the rows: each group's units (registry
/// order) and the group's total, then the province. Units unknown to the registry are
/// left out of the groups and the province (the intake refuses them; say so if seen).
pub fn build(
    rows: &[DossierStateRow],
    registry: &AgencyRegistry,
    period: &Period,
    calendar: &WorkingCalendar,
    generated_at_micros: i64,
) -> PeriodReport {
    build_from(
        rows.iter().map(|row| (&*row.agency_code, row.lifecycle())),
        registry,
        period,
        calendar,
        generated_at_micros,
    )
}

fn build_from<A: AsRef<str>>(
    dossiers: impl Iterator<Item = (A, DossierLifecycle)>,
    registry: &AgencyRegistry,
    period: &Period,
    calendar: &WorkingCalendar,
    generated_at_micros: i64,
) -> PeriodReport {
    let mut per_unit: BTreeMap<String, ScopeTotals> = BTreeMap::new();
    for (code, lifecycle) in dossiers {
        let totals = judge(&lifecycle, period, calendar);
        match per_unit.get_mut(code.as_ref()) {
            Some(unit) => unit.add(&totals),
            None => {
                per_unit.insert(code.as_ref().to_owned(), totals);
            }
        }
    }
    let mut report_rows = Vec::new();
    let mut province = ScopeTotals::default();
    for group in AgencyGroup::ALL {
        let mut group_totals = ScopeTotals::default();
        for agency in registry.iter().filter(|a| a.group == group) {
            let totals = per_unit.get(agency.code.as_str()).copied().unwrap_or_default();
            group_totals.add(&totals);
            report_rows.push(row(RowScope::Unit, agency.code.as_str(), &agency.name, &totals));
        }
        province.add(&group_totals);
        report_rows.push(row(RowScope::Group, group.as_str(), group.name_vi(), &group_totals));
    }
    let name = &registry.province().name;
    report_rows.push(row(RowScope::Province, "province", name, &province));
    PeriodReport {
        period: period.clone(),
        province_vi: name.clone(),
        as_of_micros: None,
        generated_at_micros,
        rows: report_rows,
    }
}

fn row(scope: RowScope, code: &str, name_vi: &str, totals: &ScopeTotals) -> ReportRow {
    ReportRow {
        scope,
        code: code.to_owned(),
        name_vi: name_vi.to_owned(),
        counts: totals.counts,
        score_766: totals.score_766(),
        administration: Default::default(),
    }
}

/// The report of `period` as it stood at `as_of_micros`: every dossier event admitted by
/// then (`event_log`, the audit table) replayed into fresh lifecycles and judged as of the
/// period's end. An audit table with no event up to then is an error, never an empty report.
/// The level-3/4 procedures, budget and staffing are those of [`read`], as stored now
/// (their tables keep no admission time; docs/KPIS.md).
pub async fn read_as_of(
    store: &Store,
    registry: &AgencyRegistry,
    catalogue: &ProcedureCatalogue,
    period: &Period,
    calendar: &WorkingCalendar,
    as_of_micros: i64,
    generated_at_micros: i64,
) -> Result<PeriodReport, AsOfError> {
    let codec = AvroCodec::new();
    let mut events = event_log::known_by(store, as_of_micros)?;
    let mut dossiers: HashMap<(String, String), DossierLifecycle> = HashMap::new();
    let (mut read, mut undecodable) = (0u64, 0u64);
    while let Some(payload) = events.next().await? {
        read += 1;
        match codec.decode_event(&payload) {
            Ok(Event::Dossier(event)) => {
                let key = (event.agency_code.clone(), event.dossier_id.clone());
                dossiers.entry(key).or_default().apply(&event);
            }
            Ok(_) => {}
            Err(_) => undecodable += 1,
        }
    }
    if read == 0 {
        return Err(AsOfError::NoAuditTrail);
    }
    if undecodable > 0 {
        tracing::warn!(undecodable, "audit events this build cannot decode were left out of the report");
    }
    let mut report = build_from(
        dossiers.into_iter().map(|((code, _), lifecycle)| (code, lifecycle)),
        registry,
        period,
        calendar,
        generated_at_micros,
    );
    report.as_of_micros = Some(as_of_micros);
    super::administration::read_and_attach(store, &mut report, catalogue, registry).await?;
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum AsOfError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit table (event_log) holds no event admitted by then: it was off (PARPULSE_AUDIT_EVENTS=false) or empty, so the report cannot be shown as it stood")]
    NoAuditTrail,
}

/// Reads the facts a report of `period` needs and builds it: the dossiers judged as of
/// the period's end, then the level-3/4 procedures of its days (with `catalogue`), the
/// budget of the fiscal year containing its end and staffing at its end.
pub async fn read(
    store: &Store,
    registry: &AgencyRegistry,
    catalogue: &ProcedureCatalogue,
    period: &Period,
    calendar: &WorkingCalendar,
    generated_at_micros: i64,
) -> Result<PeriodReport, StoreError> {
    let rows = dossier_state::read_for_period(store, period.start_micros(), period.end_micros(), period.first).await?;
    let mut report = build(&rows, registry, period, calendar, generated_at_micros);
    super::administration::read_and_attach(store, &mut report, catalogue, registry).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_core::LocalDay;

    const HOUR: i64 = 3_600_000_000;

    fn at(month: u32, day: u32, hour: i64) -> i64 {
        LocalDay::from_ymd(2019, month, day).unwrap().start_micros() + hour * HOUR
    }

    fn dossier(received: i64, due: i64) -> DossierLifecycle {
        DossierLifecycle {
            received_at: Some(received),
            received_channel: Some(Channel::Online),
            due_at: Some(due),
            ..Default::default()
        }
    }

    #[test]
    fn a_month_balances_and_carries_into_the_next() {
        let calendar = WorkingCalendar::embedded();
        let november = Period::parse("2019-11").unwrap();
        let december = Period::parse("2019-12").unwrap();
        let dossiers = [
            // Carried over from October, resolved early in November.
            DossierLifecycle { processed_at: Some(at(11, 4, 9)), ..dossier(at(10, 28, 9), at(11, 6, 17)) },
            // New in November, still open at its end and overdue.
            dossier(at(11, 20, 9), at(11, 25, 17)),
            // New in November, open and within its deadline at its end.
            dossier(at(11, 29, 9), at(12, 5, 17)),
            // Waiting for a supplement since 15/11: ended on the request date, on time.
            DossierLifecycle { supplement_requested: vec![at(11, 15, 10)], ..dossier(at(11, 11, 9), at(11, 15, 17)) },
            // Resolved in October: not in November's report.
            DossierLifecycle { processed_at: Some(at(10, 3, 9)), ..dossier(at(10, 1, 9), at(10, 10, 17)) },
            // Refused in November.
            DossierLifecycle { refused_at: Some(at(11, 5, 9)), ..Default::default() },
            // Processed in December: in progress at November's end.
            DossierLifecycle { processed_at: Some(at(12, 2, 9)), ..dossier(at(11, 26, 9), at(11, 27, 17)) },
        ];
        let sum = |period: &Period| {
            let mut totals = ScopeTotals::default();
            for d in &dossiers {
                totals.add(&judge(d, period, calendar));
            }
            totals.counts
        };
        let nov = sum(&november);
        assert_eq!((nov.carried_over, nov.received_new(), nov.received_online), (1, 4, 4));
        assert_eq!((nov.resolved_early, nov.resolved_on_time, nov.resolved_late), (1, 1, 0));
        assert_eq!((nov.open_within_deadline, nov.open_overdue, nov.refused), (1, 2, 1));
        assert!(nov.is_balanced(), "{nov:?}");
        let dec = sum(&december);
        assert_eq!(dec.carried_over, nov.in_progress());
        assert_eq!((dec.resolved_late, dec.received_new()), (1, 0));
        assert!(dec.is_balanced(), "{dec:?}");
    }

    #[test]
    fn apology_letters_count_in_the_month_they_are_sent() {
        let calendar = WorkingCalendar::embedded();
        // Appointment Tuesday 3/12/2019; the last working day before it is Monday 2/12.
        let timely = DossierLifecycle { apology_at: Some(at(11, 29, 10)), ..dossier(at(11, 25, 9), at(12, 3, 17)) };
        let late = DossierLifecycle { apology_at: Some(at(12, 3, 10)), ..dossier(at(11, 25, 9), at(12, 3, 17)) };
        let november = Period::parse("2019-11").unwrap();
        let december = Period::parse("2019-12").unwrap();
        assert_eq!(judge(&timely, &november, calendar).counts.apologies_timely, 1);
        assert_eq!(judge(&timely, &december, calendar).counts.apologies_timely, 0);
        assert_eq!(judge(&late, &december, calendar).counts.apologies_late, 1);
        assert_eq!(judge(&late, &november, calendar).counts.apologies_late, 0);
    }
}
