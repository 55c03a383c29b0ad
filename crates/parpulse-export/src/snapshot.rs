//! KPI values for every unit, group and the province, per rolling window,
//! summed from day buckets at read time (never by averaging ratios).

use std::collections::BTreeMap;

use chrono::Datelike;
use parpulse_clickhouse::budget_staffing::{BudgetYear, Headcount};
use parpulse_clickhouse::day_count::UnitDay;
use parpulse_clickhouse::dossier_state::OpenDossiers;
use parpulse_clickhouse::procedure_day::UnitProcedureDay;
use parpulse_core::catalogue::{NowFigures, WindowFigures};
pub use parpulse_core::kpi::ProcedureCounts;
use parpulse_core::kpi::{BudgetTotals, DossierDayCounts, OpenCounts, ResolvedCounts, ServiceCounts, StaffingTotals};
use parpulse_core::period::Period;
use parpulse_core::procedures::ProcedureCatalogue;
use parpulse_core::{AgencyGroup, AgencyRegistry, LocalDay};

/// Reporting windows: the rolling ones end today (local time) inclusive; `LastMonth` and
/// `LastQuarter` are the last closed calendar month and quarter before today's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Day,
    Days7,
    Days30,
    MonthToDate,
    YearToDate,
    LastMonth,
    LastQuarter,
}

impl Window {
    pub const ALL: [Window; 7] = [
        Window::Day,
        Window::Days7,
        Window::Days30,
        Window::MonthToDate,
        Window::YearToDate,
        Window::LastMonth,
        Window::LastQuarter,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Window::Day => "day",
            Window::Days7 => "7d",
            Window::Days30 => "30d",
            Window::MonthToDate => "mtd",
            Window::YearToDate => "ytd",
            Window::LastMonth => "last_month",
            Window::LastQuarter => "last_quarter",
        }
    }

    /// First day of the window as of `today`.
    pub fn first_day(self, today: LocalDay) -> LocalDay {
        let back = |n: u16| LocalDay(today.0.saturating_sub(n));
        let date = today.date();
        match self {
            Window::Day => today,
            Window::Days7 => back(6),
            Window::Days30 => back(29),
            Window::MonthToDate => back(date.day0() as u16),
            Window::YearToDate => back(date.ordinal0() as u16),
            Window::LastMonth => Period::last_month(today).first,
            Window::LastQuarter => Period::last_quarter(today).first,
        }
    }

    /// Last day of the window as of `today`: today, or the closed period's last day.
    pub fn last_day(self, today: LocalDay) -> LocalDay {
        match self {
            Window::LastMonth => Period::last_month(today).last,
            Window::LastQuarter => Period::last_quarter(today).last,
            _ => today,
        }
    }

    /// The windows, as of `today`, that contain `day`.
    pub fn containing(day: LocalDay, today: LocalDay) -> impl Iterator<Item = Window> {
        Window::ALL.into_iter().filter(move |w| day <= w.last_day(today) && day >= w.first_day(today))
    }

    /// The earliest day any window as of `today` needs.
    pub fn earliest_needed(today: LocalDay) -> LocalDay {
        Window::ALL.iter().map(|w| w.first_day(today)).min().unwrap_or(today)
    }
}

/// A checkpoint of the staff-reduction roadmap (tinh giản biên chế): by the end of
/// `year`, staff quotas at least `target` below the 2015 baseline (docs/KPIS.md,
/// "Budget and staffing alerts").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaffCheckpoint {
    pub year: i32,
    pub target: f64,
    /// The Vietnamese source of the line, for people.
    pub basis_vi: &'static str,
}

/// The roadmap the project uses: Resolution 39-NQ/TW, at least 10% by 2021 against
/// 2015; then Conclusion 40-KL/TW, at least 5% of the 2021 civil-servant quota by 2026,
/// which against the 2015 baseline is 1 - 0.90 x 0.95 = 14.5%.
pub const STAFF_ROADMAP: [StaffCheckpoint; 2] = [
    StaffCheckpoint {
        year: 2021, target: 0.10, basis_vi: "Nghị quyết 39-NQ/TW: giảm ít nhất 10% so với 2015"
    },
    StaffCheckpoint {
        year: 2026, target: 0.145, basis_vi: "Kết luận 40-KL/TW: giảm thêm ít nhất 5% so với 2021"
    },
];

/// The checkpoint in force on `today`: the latest one whose year has ended (none
/// before 2022).
pub fn staff_checkpoint_due(today: LocalDay) -> Option<&'static StaffCheckpoint> {
    STAFF_ROADMAP.iter().rev().find(|c| today.year() > c.year)
}

/// Whether a staff reduction is behind the checkpoint in force (None: no data, or no
/// checkpoint due yet).
pub fn staff_reduction_behind(reduction: Option<f64>, today: LocalDay) -> Option<bool> {
    Some(reduction? < staff_checkpoint_due(today)?.target)
}

/// Who a value is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Unit { code: String, group: AgencyGroup },
    Group(AgencyGroup),
    Province,
}

/// Summed counts per scope and window, as of `today`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub today: Option<LocalDay>,
    /// Receptions, by reception day.
    pub counts: BTreeMap<(Scope, Window), DossierDayCounts>,
    /// Resolved dossiers and returns, by the day they ended.
    pub resolved: BTreeMap<(Scope, Window), ResolvedCounts>,
    /// Open dossiers now.
    pub open: BTreeMap<Scope, OpenCounts>,
    /// Decision 766 service facts, by reception day.
    pub service: BTreeMap<(Scope, Window), ServiceCounts>,
    /// Budget of the current fiscal year.
    pub fiscal_year: i32,
    pub budget: BTreeMap<Scope, BudgetTotals>,
    /// Staffing from the newest snapshots.
    pub staffing: BTreeMap<Scope, StaffingTotals>,
    /// The procedure catalogue's KPIs (empty until [`Snapshot::with_procedures`]).
    pub procedures: BTreeMap<(Scope, Window), ProcedureCounts>,
}

/// Budget and staffing inputs of a snapshot.
#[derive(Debug, Clone, Default)]
pub struct AdministrationRows {
    pub budget: Vec<BudgetYear>,
    pub headcounts: Vec<Headcount>,
}

/// The unit, group and province scopes a unit's counts add to.
fn scopes_of(registry: &AgencyRegistry, code: &str) -> Option<[Scope; 3]> {
    let agency = registry.get(code)?;
    Some([
        Scope::Unit { code: agency.code.to_string(), group: agency.group },
        Scope::Group(agency.group),
        Scope::Province,
    ])
}

/// Every scope of the registry.
fn all_scopes(registry: &AgencyRegistry) -> Vec<Scope> {
    let mut scopes: Vec<Scope> =
        registry.iter().map(|a| Scope::Unit { code: a.code.to_string(), group: a.group }).collect();
    scopes.extend(AgencyGroup::ALL.map(Scope::Group));
    scopes.push(Scope::Province);
    scopes
}

impl Snapshot {
    /// Builds a snapshot from day rows. Every registered unit appears (with zero
    /// counts if it reported nothing); rows of unknown units are ignored.
    pub fn build(rows: &[UnitDay], registry: &AgencyRegistry, today: LocalDay) -> Snapshot {
        Self::build_all(rows, &[], registry, today)
    }

    /// Builds a snapshot from day rows (receptions with their facts, and endings: every
    /// count of a window, from one read) and open counts.
    pub fn build_all(
        rows: &[UnitDay],
        open_rows: &[OpenDossiers],
        registry: &AgencyRegistry,
        today: LocalDay,
    ) -> Snapshot {
        let mut snapshot = Snapshot { today: Some(today), ..Snapshot::default() };
        for scope in all_scopes(registry) {
            for window in Window::ALL {
                snapshot.counts.insert((scope.clone(), window), DossierDayCounts::default());
                snapshot.resolved.insert((scope.clone(), window), ResolvedCounts::default());
                snapshot.service.insert((scope.clone(), window), ServiceCounts::default());
            }
            snapshot.open.insert(scope.clone(), OpenCounts::default());
            snapshot.budget.insert(scope.clone(), BudgetTotals::default());
            snapshot.staffing.insert(scope, StaffingTotals::default());
        }
        snapshot.fiscal_year = today.year();
        for row in rows {
            let Some(scopes) = scopes_of(registry, &row.agency_code) else { continue };
            let counts = &row.counts;
            for window in Window::containing(row.day(), today) {
                for scope in &scopes {
                    let key = (scope.clone(), window);
                    snapshot.counts.get_mut(&key).expect("pre-filled").add(&counts.receptions);
                    snapshot.service.get_mut(&key).expect("pre-filled").add(&counts.service);
                    snapshot.resolved.get_mut(&key).expect("pre-filled").add(&counts.resolved);
                }
            }
        }
        for row in open_rows {
            let Some(scopes) = scopes_of(registry, &row.agency_code) else { continue };
            for scope in &scopes {
                snapshot.open.get_mut(scope).expect("pre-filled").add(&row.counts());
            }
        }
        snapshot
    }

    /// Adds the procedure catalogue's KPIs from receptions per unit, procedure and day.
    /// Every registered unit appears; a row of a procedure the unit's catalogue lacks counts
    /// as a reception of an unknown procedure, never dropped.
    pub fn with_procedures(
        mut self,
        rows: &[UnitProcedureDay],
        catalogue: &ProcedureCatalogue,
        registry: &AgencyRegistry,
    ) -> Snapshot {
        let Some(today) = self.today else { return self };
        for scope in all_scopes(registry) {
            for window in Window::ALL {
                self.procedures.insert((scope.clone(), window), ProcedureCounts::default());
            }
        }
        for agency in registry.iter() {
            let Some(scopes) = scopes_of(registry, agency.code.as_str()) else { continue };
            let offered = catalogue.of_unit(agency.code.as_str()).filter(|p| p.is_online_level()).count() as u64;
            let counts = ProcedureCounts { offered_online: offered, ..Default::default() };
            for window in Window::ALL {
                for scope in &scopes {
                    self.procedures.get_mut(&(scope.clone(), window)).expect("pre-filled").add(&counts);
                }
            }
        }
        // Receptions and online receptions per unit, procedure and window.
        let mut per_procedure: BTreeMap<(&str, &str, Window), (u64, u64)> = BTreeMap::new();
        for row in rows {
            for window in Window::containing(LocalDay(row.day), today) {
                let entry = per_procedure.entry((&row.agency_code, &row.procedure_code, window)).or_default();
                entry.0 += row.received;
                entry.1 += row.received_online;
            }
        }
        for ((unit, code, window), (received, online)) in per_procedure {
            let Some(scopes) = scopes_of(registry, unit) else { continue };
            let counts = match catalogue.get(unit, code) {
                None => ProcedureCounts { received_unknown: received, ..Default::default() },
                Some(p) if p.is_online_level() => ProcedureCounts {
                    offered_online_used: u64::from(online > 0),
                    received_offered_online: received,
                    received_online_offered_online: online,
                    ..Default::default()
                },
                Some(_) => continue,
            };
            for scope in &scopes {
                self.procedures.get_mut(&(scope.clone(), window)).expect("pre-filled").add(&counts);
            }
        }
        self
    }

    /// Adds the budget of the current fiscal year and the newest headcounts.
    pub fn with_administration(mut self, rows: &AdministrationRows, registry: &AgencyRegistry) -> Snapshot {
        for row in rows.budget.iter().filter(|r| r.fiscal_year == self.fiscal_year) {
            let Some(scopes) = scopes_of(registry, &row.agency_code) else { continue };
            let totals = row.totals();
            for scope in &scopes {
                self.budget.get_mut(scope).expect("pre-filled").add(&totals);
            }
        }
        for row in &rows.headcounts {
            let Some(scopes) = scopes_of(registry, &row.agency_code) else { continue };
            let totals = match row.position.as_str() {
                "staff" => StaffingTotals {
                    staff_quota: row.quota.max(0).into(),
                    staff_filled: row.filled.max(0).into(),
                    staff_baseline: row.baseline_quota.max(0).into(),
                    ..Default::default()
                },
                "deputy" => StaffingTotals {
                    deputies_filled: row.filled.max(0).into(),
                    deputies_limit: row.quota.max(0).into(),
                    deputies_over_limit: (row.filled - row.quota).max(0).into(),
                    ..Default::default()
                },
                _ => continue,
            };
            for scope in &scopes {
                self.staffing.get_mut(scope).expect("pre-filled").add(&totals);
            }
        }
        self
    }

    /// Every figure of one scope and window the catalogue's windowed KPIs read (zeros where
    /// the snapshot has none).
    pub fn window_figures(&self, scope: &Scope, window: Window) -> WindowFigures {
        let key = (scope.clone(), window);
        WindowFigures {
            received: self.counts.get(&key).copied().unwrap_or_default(),
            resolved: self.resolved.get(&key).copied().unwrap_or_default(),
            service: self.service.get(&key).copied().unwrap_or_default(),
            procedures: self.procedures.get(&key).copied(),
        }
    }

    /// Every figure of one scope now (open dossiers, newest headcounts).
    pub fn now_figures(&self, scope: &Scope) -> NowFigures {
        NowFigures {
            open: self.open.get(scope).copied().unwrap_or_default(),
            staffing: self.staffing.get(scope).copied().unwrap_or_default(),
        }
    }

    pub fn get(&self, scope: &Scope, window: Window) -> Option<&DossierDayCounts> {
        self.counts.get(&(scope.clone(), window))
    }

    pub fn get_resolved(&self, scope: &Scope, window: Window) -> Option<&ResolvedCounts> {
        self.resolved.get(&(scope.clone(), window))
    }
}

/// A headcount row, for the crate's tests.
#[cfg(test)]
pub(crate) fn headcount(unit: &str, position: &str, quota: i32, filled: i32, baseline_quota: i32) -> Headcount {
    Headcount { agency_code: unit.into(), position: position.into(), quota, filled, baseline_quota }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(code: &str, day: LocalDay, received: u64, online: u64) -> UnitDay {
        UnitDay::receptions(code, day, received, online, 0)
    }

    #[test]
    fn windows_end_today_and_start_where_expected() {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        assert_eq!(Window::Day.first_day(today), today);
        assert_eq!(Window::Days7.first_day(today), LocalDay::from_ymd(2019, 11, 22).unwrap());
        assert_eq!(Window::Days30.first_day(today), LocalDay::from_ymd(2019, 10, 30).unwrap());
        assert_eq!(Window::MonthToDate.first_day(today), LocalDay::from_ymd(2019, 11, 1).unwrap());
        assert_eq!(Window::YearToDate.first_day(today), LocalDay::from_ymd(2019, 1, 1).unwrap());
        let day = |m, d| LocalDay::from_ymd(2019, m, d).unwrap();
        assert_eq!((Window::LastMonth.first_day(today), Window::LastMonth.last_day(today)), (day(10, 1), day(10, 31)));
        assert_eq!(
            (Window::LastQuarter.first_day(today), Window::LastQuarter.last_day(today)),
            (day(7, 1), day(9, 30))
        );
        assert_eq!(Window::Days7.last_day(today), today);
        // The closed windows hold no day of the current month; on 1 January they are last year's.
        assert_eq!(
            Window::containing(today, today).filter(|w| matches!(w, Window::LastMonth | Window::LastQuarter)).count(),
            0
        );
        let new_year = LocalDay::from_ymd(2020, 1, 1).unwrap();
        assert_eq!(Window::LastQuarter.first_day(new_year), day(10, 1));
        assert_eq!(
            Window::containing(day(12, 31), new_year).collect::<Vec<_>>(),
            [Window::Days7, Window::Days30, Window::LastMonth, Window::LastQuarter]
        );
        assert_eq!(Window::earliest_needed(new_year), day(10, 1));
    }

    #[test]
    fn units_roll_up_to_groups_and_province_by_summing_counts() {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let rows = [row("SNV", today, 10, 1), row("STP", today, 10, 9), row("PHUCU", LocalDay(today.0 - 3), 20, 2)];
        let snapshot = Snapshot::build(&rows, &AgencyRegistry::demo(), today);
        let departments = snapshot.get(&Scope::Group(AgencyGroup::Department), Window::Day).unwrap();
        assert_eq!((departments.received, departments.received_online), (20, 10));
        let province_day = snapshot.get(&Scope::Province, Window::Day).unwrap();
        assert_eq!(province_day.received, 20, "PHUCU's row is 3 days old");
        let province_week = snapshot.get(&Scope::Province, Window::Days7).unwrap();
        assert_eq!((province_week.received, province_week.received_online), (40, 12));
    }

    #[test]
    fn the_staff_checkpoint_in_force_is_the_latest_year_that_has_ended() {
        let day = |y, m, d| LocalDay::from_ymd(y, m, d).unwrap();
        assert_eq!(staff_checkpoint_due(day(2021, 12, 31)), None, "2021 is not over yet");
        assert_eq!(staff_checkpoint_due(day(2022, 1, 1)).map(|c| c.year), Some(2021));
        assert_eq!(staff_checkpoint_due(day(2026, 11, 30)).map(|c| c.target), Some(0.10));
        assert_eq!(staff_checkpoint_due(day(2027, 1, 1)).map(|c| c.target), Some(0.145));
        assert!((1.0 - 0.90 * 0.95 - STAFF_ROADMAP[1].target).abs() < 1e-12);
        assert_eq!(staff_reduction_behind(Some(0.09), day(2026, 6, 1)), Some(true));
        assert_eq!(staff_reduction_behind(Some(0.10), day(2026, 6, 1)), Some(false));
        assert_eq!(staff_reduction_behind(Some(0.12), day(2027, 6, 1)), Some(true));
        assert_eq!(staff_reduction_behind(None, day(2026, 6, 1)), None);
        assert_eq!(staff_reduction_behind(Some(0.0), day(2020, 6, 1)), None);
    }

    #[test]
    fn deputies_over_the_limit_are_counted_unit_by_unit() {
        let today = LocalDay::from_ymd(2026, 11, 30).unwrap();
        let rows = AdministrationRows {
            budget: vec![],
            headcounts: vec![headcount("SNV", "deputy", 3, 5, 0), headcount("STP", "deputy", 3, 1, 0)],
        };
        let registry = AgencyRegistry::demo();
        let snapshot = Snapshot::build(&[], &registry, today).with_administration(&rows, &registry);
        let unit = Scope::Unit { code: "SNV".into(), group: AgencyGroup::Department };
        assert_eq!(snapshot.staffing[&unit].deputies_over_limit, 2);
        // STP's two free places offset nothing.
        assert_eq!(snapshot.staffing[&Scope::Province].deputies_over_limit, 2);
        assert_eq!(snapshot.staffing[&Scope::Province].deputies_filled, 6);
    }

    #[test]
    fn procedure_kpis_count_level_34_procedures_used_online_and_unknown_procedures() {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let registry = AgencyRegistry::demo();
        let catalogue = ProcedureCatalogue::demo();
        let stp: Vec<_> = catalogue.of_unit("STP").collect();
        assert!(stp.iter().all(|p| p.is_online_level()) && stp.len() == 2);
        let row = |unit: &str, code: &str, day: LocalDay, received, received_online| UnitProcedureDay {
            agency_code: unit.into(),
            procedure_code: code.into(),
            day: day.0,
            received,
            received_online,
        };
        let rows = [
            row("STP", &stp[0].code, today, 5, 2),
            row("STP", &stp[1].code, LocalDay(today.0 - 10), 3, 1),
            row("STP", "1.001099", today, 4, 1),
            // A level-2 procedure of a district: in neither the used nor the offered count.
            row("KHOAICHAU", "1.001053", today, 7, 0),
        ];
        let snapshot = Snapshot::build(&[], &registry, today).with_procedures(&rows, &catalogue, &registry);
        let unit = Scope::Unit { code: "STP".into(), group: AgencyGroup::Department };
        let day = snapshot.procedures[&(unit.clone(), Window::Day)];
        assert_eq!(
            day,
            ProcedureCounts {
                offered_online: 2,
                offered_online_used: 1,
                received_offered_online: 5,
                received_online_offered_online: 2,
                received_unknown: 4
            }
        );
        assert_eq!(day.online_services_used(), Some(0.5));
        let month = snapshot.procedures[&(unit, Window::Days30)];
        assert_eq!((month.offered_online_used, month.received_offered_online), (2, 8));
        let province = snapshot.procedures[&(Scope::Province, Window::Day)];
        let offered: u64 = registry
            .iter()
            .map(|a| catalogue.of_unit(a.code.as_str()).filter(|p| p.is_online_level()).count() as u64)
            .sum();
        assert_eq!((province.offered_online, province.offered_online_used, province.received_unknown), (offered, 1, 4));
        assert_eq!(province.received_offered_online, 5, "the level-2 procedure's receptions are not counted");
    }

    #[test]
    fn staff_positions_add_up_field_by_field() {
        let today = LocalDay::from_ymd(2026, 11, 30).unwrap();
        let rows = AdministrationRows {
            budget: vec![],
            headcounts: vec![headcount("SNV", "staff", 90, 85, 100), headcount("STP", "staff", 45, 44, 50)],
        };
        let registry = AgencyRegistry::demo();
        let snapshot = Snapshot::build(&[], &registry, today).with_administration(&rows, &registry);
        let province = snapshot.staffing[&Scope::Province];
        assert_eq!((province.staff_quota, province.staff_filled, province.staff_baseline), (135, 129, 150));
    }

    #[test]
    fn service_facts_and_resolved_counts_are_summed_per_scope_and_window() {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let registry = AgencyRegistry::demo();
        // One day row per unit: its receptions with their facts, and the dossiers ended that day.
        let row = |code: &str, day: LocalDay, received, digitized, resolved, late| {
            let mut row = UnitDay::receptions(code, day, received, 0, 0);
            let facts = ServiceCounts {
                fee_bearing: 2,
                paid_online: 1,
                digitized,
                result_postal: 1,
                postal_users: 1,
                received,
            };
            let ended = ResolvedCounts { resolved, on_time: resolved - late, late, stopped: 1, ..Default::default() };
            (row.counts.service, row.counts.resolved) = (facts, ended);
            row
        };
        let ten_days_ago = LocalDay(today.0 - 10);
        let rows = [row("SNV", today, 5, 4, 4, 1), row("STP", ten_days_ago, 3, 3, 6, 2)];
        let snapshot = Snapshot::build(&rows, &registry, today);
        let unit = Scope::Unit { code: "SNV".into(), group: AgencyGroup::Department };
        let day = snapshot.service[&(unit.clone(), Window::Day)];
        assert_eq!((day.received, day.digitized, day.fee_bearing), (5, 4, 2));
        let province = snapshot.service[&(Scope::Province, Window::Days30)];
        assert_eq!((province.received, province.digitized, province.paid_online, province.postal_users), (8, 7, 2, 2));
        assert_eq!(snapshot.service[&(Scope::Province, Window::Day)].received, 5);
        let resolved_day = snapshot.get_resolved(&unit, Window::Day).expect("pre-filled");
        assert_eq!((resolved_day.resolved, resolved_day.late, resolved_day.stopped), (4, 1, 1));
        let resolved_month = snapshot.get_resolved(&Scope::Province, Window::Days30).expect("pre-filled");
        assert_eq!((resolved_month.resolved, resolved_month.late, resolved_month.stopped), (10, 3, 2));
    }

    #[test]
    fn units_without_rows_are_present_with_zero_counts() {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let snapshot = Snapshot::build(&[], &AgencyRegistry::demo(), today);
        let unit = Scope::Unit { code: "SNV".into(), group: AgencyGroup::Department };
        assert_eq!(snapshot.get(&unit, Window::Days30), Some(&DossierDayCounts::default()));
    }
}
