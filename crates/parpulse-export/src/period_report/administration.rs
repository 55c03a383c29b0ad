//! The parts of a closed period's report beyond the dossier form (issue 17): the level-3/4
//! online-service criterion of the period (procedure catalogue and `procedure_day`), the
//! budget of the fiscal year containing the period's end, and staffing at its end.
//!
//! The arithmetic is the rolling windows' own (`crate::snapshot`): the period's
//! procedure rows are summed into one bucket (the period seen as one day) and passed to
//! [`Snapshot::with_procedures`]; the budget and headcount rows to
//! [`Snapshot::with_administration`], with the period's last day as "today" (its
//! fiscal year). So a unit, its group and the province add up exactly as on /metrics.

use std::collections::BTreeMap;

use parpulse_clickhouse::budget_staffing;
use parpulse_clickhouse::procedure_day::{self, UnitProcedureDay};
use parpulse_clickhouse::{Store, StoreError};
use parpulse_core::kpi::{BudgetTotals, StaffingTotals};
use parpulse_core::period::Period;
use parpulse_core::procedures::ProcedureCatalogue;
use parpulse_core::{AgencyGroup, AgencyRegistry, LocalDay};

use super::{PeriodReport, ReportRow, RowScope};
use crate::snapshot::{
    staff_checkpoint_due, staff_reduction_behind, AdministrationRows, ProcedureCounts, Scope, Snapshot, Window,
};

/// One row's budget, staffing and level-3/4 procedure figures for the period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Administration {
    /// The period's level-3/4 procedure criterion (receptions of the period's days).
    pub procedures: ProcedureCounts,
    /// The fiscal year (the calendar year) containing the period's last day.
    pub fiscal_year: i32,
    /// Budget of `fiscal_year` from the events that occurred before the period's end.
    pub budget: BudgetTotals,
    /// The newest headcount snapshots that occurred before the period's end.
    pub staffing: StaffingTotals,
    /// The staff-reduction line of the roadmap checkpoint in force at the period's end
    /// (none before the first checkpoint's year has ended).
    pub reduction_due: Option<f64>,
    /// Whether the reduction is below that line (None: no baseline, or no checkpoint due).
    pub reduction_behind: Option<bool>,
}

/// What the report's new parts are read from, for one period.
#[derive(Debug, Clone, Default)]
pub struct AdministrationInputs {
    /// Receptions per unit, procedure and day of the period.
    pub procedure_days: Vec<UnitProcedureDay>,
    /// Budget of the fiscal year and headcounts, as known at the period's end.
    pub rows: AdministrationRows,
}

/// Reads the inputs of `period`: `procedure_day` for its days, the budget of the fiscal
/// year containing its last day and the headcount snapshots, both from the events that
/// occurred before its end (`budget_event`, `staffing_event`; every event stored now).
pub async fn read_inputs(store: &Store, period: &Period) -> Result<AdministrationInputs, StoreError> {
    let end = period.end_micros();
    let procedure_days = procedure_day::read_days(store, period.first, period.last).await?;
    let budget = budget_staffing::read_budget_year_before(store, period.last.year(), end).await?;
    let headcounts = budget_staffing::read_headcounts_before(store, end).await?;
    Ok(AdministrationInputs { procedure_days, rows: AdministrationRows { budget, headcounts } })
}

/// The figures of every scope for `period`, summed by the snapshot's rules.
pub fn snapshot_of(
    inputs: &AdministrationInputs,
    period: &Period,
    catalogue: &ProcedureCatalogue,
    registry: &AgencyRegistry,
) -> Snapshot {
    let today = period.last;
    // The period as one day: every row of its days moved onto its last day, summed per
    // unit and procedure, and read in the one-day window below.
    let mut per_procedure: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for row in inputs.procedure_days.iter().filter(|r| period.contains(LocalDay(r.day))) {
        let sum = per_procedure.entry((&row.agency_code, &row.procedure_code)).or_default();
        sum.0 += row.received;
        sum.1 += row.received_online;
    }
    let one_day: Vec<UnitProcedureDay> = per_procedure
        .into_iter()
        .map(|((unit, code), (received, received_online))| UnitProcedureDay {
            agency_code: unit.to_owned(),
            procedure_code: code.to_owned(),
            day: today.0,
            received,
            received_online,
        })
        .collect();
    Snapshot::build(&[], registry, today)
        .with_procedures(&one_day, catalogue, registry)
        .with_administration(&inputs.rows, registry)
}

/// The snapshot scope a report row stands for (None: a unit or group the registry lacks).
fn scope_of(row: &ReportRow, registry: &AgencyRegistry) -> Option<Scope> {
    match row.scope {
        RowScope::Unit => registry.get(&row.code).map(|a| Scope::Unit { code: a.code.to_string(), group: a.group }),
        RowScope::Group => AgencyGroup::ALL.into_iter().find(|g| g.as_str() == row.code).map(Scope::Group),
        RowScope::Province => Some(Scope::Province),
    }
}

/// Fills every row's [`Administration`] from the period's figures.
pub fn attach(report: &mut PeriodReport, snapshot: &Snapshot, registry: &AgencyRegistry) {
    // The roadmap is judged on the first day after the period: a report of 2021 is held
    // to the checkpoint "by the end of 2021" (docs/KPIS.md).
    let judged_on = LocalDay(report.period.last.0.saturating_add(1));
    let reduction_due = staff_checkpoint_due(judged_on).map(|c| c.target);
    for row in &mut report.rows {
        let Some(scope) = scope_of(row, registry) else { continue };
        let staffing = snapshot.staffing.get(&scope).copied().unwrap_or_default();
        row.administration = Administration {
            procedures: snapshot.procedures.get(&(scope.clone(), Window::Day)).copied().unwrap_or_default(),
            fiscal_year: snapshot.fiscal_year,
            budget: snapshot.budget.get(&scope).copied().unwrap_or_default(),
            staffing,
            reduction_due,
            reduction_behind: staff_reduction_behind(staffing.reduction(), judged_on),
        };
    }
}

/// Reads and attaches the report's budget, staffing and procedure figures.
pub async fn read_and_attach(
    store: &Store,
    report: &mut PeriodReport,
    catalogue: &ProcedureCatalogue,
    registry: &AgencyRegistry,
) -> Result<(), StoreError> {
    let inputs = read_inputs(store, &report.period).await?;
    let snapshot = snapshot_of(&inputs, &report.period, catalogue, registry);
    attach(report, &snapshot, registry);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::headcount;
    use parpulse_clickhouse::budget_staffing::BudgetYear;

    /// A: level 4 at SNV and STP; B: level 3 at SNV; C: level 2 at SNV and PHUCU; D: level 3 at PHUCU.
    const CATALOGUE: [(&str, u8, &str); 4] = [
        ("1.000001", 4, r#""SNV", "STP""#),
        ("1.000002", 3, r#""SNV""#),
        ("1.000003", 2, r#""SNV", "PHUCU""#),
        ("1.000004", 3, r#""PHUCU""#),
    ];

    fn catalogue(registry: &AgencyRegistry) -> ProcedureCatalogue {
        let toml: String = CATALOGUE
            .iter()
            .map(|(code, level, units)| {
                format!(
                    "[[procedure]]\ncode = \"{code}\"\nname = \"Thủ tục {code}\"\nlevel = {level}\n\
                     fee_bearing = false\nunits = [{units}]\n\n"
                )
            })
            .collect();
        ProcedureCatalogue::from_toml(&toml, registry).expect("a valid catalogue")
    }

    fn day(m: u32, d: u32) -> LocalDay {
        LocalDay::from_ymd(2019, m, d).unwrap()
    }

    fn procedure_row(unit: &str, code: &str, on: LocalDay, received: u64, online: u64) -> UnitProcedureDay {
        UnitProcedureDay {
            agency_code: unit.into(),
            procedure_code: code.into(),
            day: on.0,
            received,
            received_online: online,
        }
    }

    fn budget(unit: &str, allocated: i64, committed: i64, disbursed: i64, saved: i64, disclosed: i64) -> BudgetYear {
        BudgetYear { agency_code: unit.into(), fiscal_year: 2021, allocated, committed, disbursed, saved, disclosed }
    }

    /// A report of `period` with every registered unit, both groups and the province.
    fn report_of(period: &str, inputs: &AdministrationInputs) -> PeriodReport {
        let registry = AgencyRegistry::demo();
        let catalogue = catalogue(&registry);
        let period = Period::parse(period).unwrap();
        let calendar = parpulse_core::calendar::WorkingCalendar::embedded();
        let mut report = super::super::judge::build(&[], &registry, &period, calendar, 0);
        attach(&mut report, &snapshot_of(inputs, &period, &catalogue, &registry), &registry);
        report
    }

    fn row<'a>(report: &'a PeriodReport, code: &str) -> &'a Administration {
        &report.rows.iter().find(|r| r.code == code).unwrap_or_else(|| panic!("no row {code}")).administration
    }

    #[test]
    fn the_level_34_criterion_counts_the_periods_days_only_and_keeps_unknown_procedures() {
        let inputs = AdministrationInputs {
            procedure_days: vec![
                // SNV, November: A online on two days (one procedure, counted once), B in
                // person only, C (level 2) online, an unknown procedure twice.
                procedure_row("SNV", "1.000001", day(11, 4), 3, 1),
                procedure_row("SNV", "1.000001", day(11, 20), 2, 2),
                procedure_row("SNV", "1.000002", day(11, 5), 4, 0),
                procedure_row("SNV", "1.000003", day(11, 6), 5, 5),
                procedure_row("SNV", "9.999999", day(11, 7), 2, 1),
                // STP: A online on 31 October only: outside November.
                procedure_row("STP", "1.000001", day(10, 31), 6, 6),
                // PHUCU: D online on 30 November; its C in person.
                procedure_row("PHUCU", "1.000004", day(11, 30), 1, 1),
                procedure_row("PHUCU", "1.000003", day(11, 30), 7, 0),
                // December: not in November.
                procedure_row("PHUCU", "1.000004", day(12, 1), 9, 9),
            ],
            ..Default::default()
        };
        let report = report_of("2019-11", &inputs);
        // SNV offers A and B at level 3/4 (2); A had an online dossier (1): 50%.
        // Receptions of A and B: 3 + 2 + 4 = 9, online 1 + 2 = 3; unknown 2.
        let snv = row(&report, "SNV").procedures;
        assert_eq!(
            snv,
            ProcedureCounts {
                offered_online: 2,
                offered_online_used: 1,
                received_offered_online: 9,
                received_online_offered_online: 3,
                received_unknown: 2
            }
        );
        assert_eq!(snv.online_services_used(), Some(0.5));
        assert_eq!(snv.online_share_of_offered(), Some(3.0 / 9.0));
        // STP offers A (1), no dossier in November: 0%, no reception ratio.
        let stp = row(&report, "STP").procedures;
        assert_eq!((stp.offered_online, stp.offered_online_used, stp.received_offered_online), (1, 0, 0));
        assert_eq!((stp.online_services_used(), stp.online_share_of_offered()), (Some(0.0), None));
        // Departments: SNV + STP = 3 offered, 1 used. Province: + PHUCU's D (used) = 4, 2.
        let departments = row(&report, "department").procedures;
        assert_eq!((departments.offered_online, departments.offered_online_used), (3, 1));
        let province = row(&report, "province").procedures;
        assert_eq!(
            (province.offered_online, province.offered_online_used, province.received_offered_online),
            (4, 2, 10)
        );
        assert_eq!((province.received_online_offered_online, province.received_unknown), (4, 2));
        assert_eq!(province.online_services_used(), Some(0.5));
        // A unit without a level-3/4 procedure has no ratio.
        assert_eq!(row(&report, "SNNPTNT").procedures.online_services_used(), None);
        // The quarter: STP's A counts too (October), PHUCU's December rows as well.
        let quarter = report_of("2019-Q4", &inputs);
        assert_eq!(row(&quarter, "STP").procedures.offered_online_used, 1);
        assert_eq!(row(&quarter, "PHUCU").procedures.received_offered_online, 1 + 9);
        assert_eq!(row(&quarter, "province").procedures.offered_online_used, 3);
    }

    #[test]
    fn budget_staffing_and_the_roadmap_per_unit_group_and_province() {
        let inputs = AdministrationInputs {
            rows: AdministrationRows {
                budget: vec![
                    budget("SNV", 1_000_000, 600_000, 500_000, 30_000, 1_000_000),
                    budget("PHUCU", 3_000_000, 0, 600_000, 0, 0),
                ],
                headcounts: vec![
                    headcount("SNV", "staff", 90, 85, 100),
                    headcount("SNV", "deputy", 3, 5, -1),
                    headcount("STP", "deputy", 3, 1, -1),
                    headcount("PHUCU", "staff", 45, 45, 48),
                ],
            },
            ..Default::default()
        };
        let report = report_of("2021", &inputs);
        let snv = row(&report, "SNV");
        assert_eq!(snv.fiscal_year, 2021);
        assert_eq!(
            (snv.budget.execution(), snv.budget.savings(), snv.budget.disclosure()),
            (Some(0.5), Some(0.03), Some(1.0))
        );
        // 1 - 90/100 = 10%: on the 2021 line, not behind; PHUCU 1 - 45/48 = 6.25%: behind.
        assert_eq!(
            (snv.staffing.reduction(), snv.reduction_due, snv.reduction_behind),
            (Some(0.1), Some(0.10), Some(false))
        );
        let phucu = row(&report, "PHUCU");
        assert_eq!((phucu.staffing.reduction(), phucu.reduction_behind), (Some(0.0625), Some(true)));
        // Deputies over the limit add unit by unit: SNV 2, STP's free places offset nothing.
        assert_eq!(
            (snv.staffing.deputies_filled, snv.staffing.deputies_limit, snv.staffing.deputies_over_limit),
            (5, 3, 2)
        );
        let departments = row(&report, "department");
        assert_eq!((departments.staffing.deputies_filled, departments.staffing.deputies_over_limit), (6, 2));
        let province = row(&report, "province");
        // Budget: 4,000,000 allocated, 1,100,000 disbursed, 1,000,000 disclosed.
        assert_eq!(province.budget.allocated, 4_000_000);
        assert_eq!(province.budget.execution(), Some(1_100_000.0 / 4_000_000.0));
        assert_eq!(province.budget.disclosure(), Some(0.25));
        // Staff 90 + 45 = 135 of 100 + 48 = 148: 13/148 = 8.8%, below the 10% line: behind.
        assert_eq!((province.staffing.staff_quota, province.staffing.staff_baseline), (135, 148));
        assert_eq!((province.staffing.reduction(), province.reduction_behind), (Some(13.0 / 148.0), Some(true)));
        // A unit without data: zeros, no ratios, not judged.
        let stc = row(&report, "STC");
        assert_eq!((stc.budget, stc.staffing.reduction(), stc.reduction_behind), (BudgetTotals::default(), None, None));
        // Before the first checkpoint's year has ended: no line, nothing judged.
        let november_2021 = report_of("2021-11", &inputs);
        assert_eq!(
            (row(&november_2021, "PHUCU").reduction_due, row(&november_2021, "PHUCU").reduction_behind),
            (None, None)
        );
        // Another fiscal year's rows are not this period's budget.
        let year_2020 = report_of("2020", &inputs);
        assert_eq!((row(&year_2020, "province").fiscal_year, row(&year_2020, "province").budget.allocated), (2020, 0));
    }
}
