//! The KPI catalogue: every KPI gauge parpulse publishes, defined once.
//!
//! An entry names the Prometheus series, its Vietnamese label, the help text, what it is
//! measured over (a window, now, or a fiscal year), how its value is formed from the
//! summed counts of [`crate::kpi`], and its target when it has one. The exporter's
//! `/metrics` registers and fills its KPI gauges by walking [`KPIS`]; the tables of
//! docs/METRICS.md ("KPI gauges") are generated from it and checked by a test, so a KPI
//! added here appears on `/metrics` and in the docs without further code.
//!
//! Adding a counter KPI: a field in the counts struct of [`crate::kpi`] it belongs to (and
//! its `add`), the column that fills it (the query in schemas/clickhouse/queries/ and the
//! row type that reads it), and an entry here. Ratios are formed from summed counts at
//! read time, never stored.
//!
//! Breakdown families with extra labels (`parpulse_budget_vnd{kind}`,
//! `parpulse_staff_positions{position,measure}`, Decision 766 points per indicator) and the
//! PAR Index view are written by the exporter beside the catalogue; they read the same counts.

use crate::kpi::{
    postal_use, BudgetTotals, DossierDayCounts, OpenCounts, ProcedureCounts, ResolvedCounts, ServiceCounts,
    StaffingTotals, APOLOGY_COVERAGE_TARGET, ONLINE_SHARE_TARGET, ON_TIME_TARGET, STAFF_REDUCTION_TARGET,
};

/// The summed counts of one scope (unit, group, province) over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowFigures {
    /// Receptions, by reception day (the aggregator's day buckets).
    pub received: DossierDayCounts,
    /// Dossiers ended in the window, judged by the official rules.
    pub resolved: ResolvedCounts,
    /// Per-dossier facts (Decision 766 indicators, postal use), by reception day.
    pub service: ServiceCounts,
    /// The procedure catalogue's counts; `None` when no catalogue was applied.
    pub procedures: Option<ProcedureCounts>,
}

/// The figures of one scope now: open dossiers and the newest headcounts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NowFigures {
    pub open: OpenCounts,
    pub staffing: StaffingTotals,
}

/// What a KPI is measured over, and how its value is formed. `None` means "no value"
/// (a ratio with nothing in its denominator): the series is then absent, never a fake 0.
#[derive(Clone, Copy)]
pub enum Measure {
    /// Labels `scope`, `unit`, `group`, `window`.
    Window(fn(&WindowFigures) -> Option<f64>),
    /// Labels `scope`, `unit`, `group`: a value now, not a window.
    Now(fn(&NowFigures) -> Option<f64>),
    /// Labels `scope`, `unit`, `group`, `fiscal_year`: the current fiscal year's budget.
    FiscalYear(fn(&BudgetTotals) -> Option<f64>),
}

impl Measure {
    /// The label names of the series.
    pub fn labels(&self) -> &'static [&'static str] {
        match self {
            Measure::Window(_) => &["scope", "unit", "group", "window"],
            Measure::Now(_) => &["scope", "unit", "group"],
            Measure::FiscalYear(_) => &["scope", "unit", "group", "fiscal_year"],
        }
    }
}

/// A KPI's line, published as its own constant series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub metric: &'static str,
    pub help: &'static str,
    pub value: f64,
}

/// A counted quantity, or a ratio of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Dossiers,
    Procedures,
    Positions,
    Ratio,
}

/// One KPI.
#[derive(Clone, Copy)]
pub struct Kpi {
    /// The Prometheus series name.
    pub metric: &'static str,
    /// The Vietnamese name (dashboards, reports).
    pub name_vi: &'static str,
    /// Prometheus help text: the definition in English, with the Vietnamese term.
    pub help: &'static str,
    pub unit: Unit,
    pub measure: Measure,
    pub target: Option<Target>,
}

fn count(value: u64) -> Option<f64> {
    Some(value as f64)
}

fn signed(value: i64) -> Option<f64> {
    Some(value as f64)
}

const fn window(
    metric: &'static str,
    name_vi: &'static str,
    help: &'static str,
    unit: Unit,
    value: fn(&WindowFigures) -> Option<f64>,
) -> Kpi {
    Kpi { metric, name_vi, help, unit, measure: Measure::Window(value), target: None }
}

const fn now(
    metric: &'static str,
    name_vi: &'static str,
    help: &'static str,
    unit: Unit,
    value: fn(&NowFigures) -> Option<f64>,
) -> Kpi {
    Kpi { metric, name_vi, help, unit, measure: Measure::Now(value), target: None }
}

const fn fiscal_year(
    metric: &'static str,
    name_vi: &'static str,
    help: &'static str,
    value: fn(&BudgetTotals) -> Option<f64>,
) -> Kpi {
    Kpi { metric, name_vi, help, unit: Unit::Ratio, measure: Measure::FiscalYear(value), target: None }
}

const fn with_target(kpi: Kpi, target: Target) -> Kpi {
    Kpi { target: Some(target), ..kpi }
}

fn procedures(f: &WindowFigures, value: fn(&ProcedureCounts) -> Option<f64>) -> Option<f64> {
    f.procedures.as_ref().and_then(value)
}

use Unit::{Dossiers, Positions, Procedures, Ratio};

/// Every KPI gauge, in the order of `/metrics` and of the docs' table.
pub const KPIS: &[Kpi] = &[
    // Receptions (aggregator day buckets).
    window(
        "parpulse_dossiers_received",
        "Hồ sơ tiếp nhận",
        "Dossiers received (hồ sơ tiếp nhận) in the window",
        Dossiers,
        |f| count(f.received.received),
    ),
    window(
        "parpulse_dossiers_received_online",
        "Hồ sơ tiếp nhận trực tuyến mức độ 3, 4",
        "Dossiers received online at service level 3/4 (hồ sơ trực tuyến mức độ 3, 4) in the window",
        Dossiers,
        |f| count(f.received.received_online),
    ),
    window(
        "parpulse_dossiers_received_postal",
        "Hồ sơ tiếp nhận qua bưu chính công ích",
        "Dossiers received through the public postal service (bưu chính công ích) in the window",
        Dossiers,
        |f| count(f.received.received_postal),
    ),
    with_target(
        window(
            "parpulse_online_share_ratio",
            "Tỷ lệ hồ sơ trực tuyến mức độ 3, 4",
            "Online share (tỷ lệ hồ sơ trực tuyến): received online at level 3/4 / received; absent when nothing was received",
            Ratio,
            |f| f.received.online_share(),
        ),
        Target {
            metric: "parpulse_online_share_target_ratio",
            help: "Province target for the online share (letter 301/UBND-NC, 2019)",
            value: ONLINE_SHARE_TARGET,
        },
    ),
    window(
        "parpulse_postal_intake_ratio",
        "Tỷ lệ tiếp nhận qua bưu chính công ích",
        "Postal intake share (tỷ lệ tiếp nhận qua bưu chính): received by post / received; absent when nothing was received",
        Ratio,
        |f| f.received.postal_intake_share(),
    ),
    // Dossiers ended in the window, by end day (official rules, lifecycle.rs).
    window(
        "parpulse_dossiers_resolved",
        "Hồ sơ đã giải quyết",
        "Dossiers resolved (giải quyết xong) in the window, by end date",
        Dossiers,
        |f| count(f.resolved.resolved),
    ),
    window(
        "parpulse_dossiers_resolved_on_time",
        "Hồ sơ giải quyết trước hạn và đúng hạn",
        "Resolved not late (early or on time: trước hạn, đúng hạn) in the window",
        Dossiers,
        |f| count(f.resolved.on_time),
    ),
    window(
        "parpulse_dossiers_resolved_early",
        "Hồ sơ giải quyết trước hạn",
        "Resolved early (trước hạn: on a day before the deadline's day) in the window; part of on time",
        Dossiers,
        |f| count(f.resolved.early),
    ),
    window(
        "parpulse_dossiers_refused",
        "Hồ sơ từ chối tiếp nhận",
        "Dossiers refused at reception (từ chối tiếp nhận) in the window, by day refused; never counted as resolved",
        Dossiers,
        |f| count(f.resolved.refused),
    ),
    window(
        "parpulse_dossiers_result_postal",
        "Hồ sơ trả kết quả qua bưu chính công ích",
        "Received dossiers whose result is registered for return by public postal service, by reception day",
        Dossiers,
        |f| count(f.service.result_postal),
    ),
    window(
        "parpulse_dossiers_resolved_late",
        "Hồ sơ giải quyết quá hạn",
        "Resolved late (trễ hạn) in the window",
        Dossiers,
        |f| count(f.resolved.late),
    ),
    window(
        "parpulse_dossiers_late_with_apology",
        "Hồ sơ quá hạn có văn bản xin lỗi kịp thời",
        "Late dossiers with a timely apology letter (thư xin lỗi, sent by the last working day before the deadline) in the window",
        Dossiers,
        |f| count(f.resolved.late_with_apology),
    ),
    window(
        "parpulse_dossiers_late_without_apology",
        "Hồ sơ quá hạn chưa có văn bản xin lỗi",
        "Late dossiers with no apology letter at all (neither timely nor late) in the window",
        Dossiers,
        |f| count(f.resolved.late_without_apology),
    ),
    window(
        "parpulse_dossiers_returned",
        "Hồ sơ đã trả kết quả",
        "Results returned (trả kết quả) among the resolved in the window",
        Dossiers,
        |f| count(f.resolved.returned),
    ),
    window(
        "parpulse_dossiers_returned_postal",
        "Hồ sơ trả kết quả qua bưu chính công ích",
        "Results returned through the public postal service in the window",
        Dossiers,
        |f| count(f.resolved.returned_postal),
    ),
    window(
        "parpulse_dossiers_withdrawn",
        "Hồ sơ công dân rút",
        "Of the resolved in the window: withdrawn by the citizen (công dân rút hồ sơ)",
        Dossiers,
        |f| count(f.resolved.withdrawn),
    ),
    window(
        "parpulse_dossiers_stopped",
        "Hồ sơ dừng xử lý",
        "Of the resolved in the window: processing stopped (dừng xử lý)",
        Dossiers,
        |f| count(f.resolved.stopped),
    ),
    with_target(
        window(
            "parpulse_on_time_ratio",
            "Tỷ lệ hồ sơ giải quyết đúng hạn",
            "On-time rate (tỷ lệ đúng hạn): on time / resolved",
            Ratio,
            |f| f.resolved.on_time_rate(),
        ),
        Target {
            metric: "parpulse_on_time_target_ratio",
            help: "On-time rate below which parpulse alerts (docs/KPIS.md)",
            value: ON_TIME_TARGET,
        },
    ),
    with_target(
        window(
            "parpulse_apology_coverage_ratio",
            "Tỷ lệ xin lỗi khi trễ hạn",
            "Apology coverage (tỷ lệ xin lỗi): late with a timely apology letter / late; target 1",
            Ratio,
            |f| f.resolved.apology_coverage(),
        ),
        Target {
            metric: "parpulse_apology_coverage_target_ratio",
            help: "Apology coverage target: every late dossier",
            value: APOLOGY_COVERAGE_TARGET,
        },
    ),
    window(
        "parpulse_postal_use_ratio",
        "Tỷ lệ sử dụng dịch vụ bưu chính công ích",
        "Postal use (bưu chính công ích): dossiers received or with a result returned by post / received, by reception day",
        Ratio,
        |f| postal_use(&f.service),
    ),
    // Decision 766 service facts, by reception day.
    window(
        "parpulse_dossiers_fee_bearing",
        "Hồ sơ có phí, lệ phí",
        "Received dossiers of fee-bearing procedures (có phí, lệ phí), by reception day",
        Dossiers,
        |f| count(f.service.fee_bearing),
    ),
    window(
        "parpulse_dossiers_paid_online",
        "Hồ sơ thanh toán trực tuyến",
        "Fee-bearing dossiers paid online (thanh toán trực tuyến), by reception day",
        Dossiers,
        |f| count(f.service.paid_online),
    ),
    window(
        "parpulse_dossiers_digitized",
        "Hồ sơ được số hoá",
        "Received dossiers digitised with an electronic result (số hoá), by reception day",
        Dossiers,
        |f| count(f.service.digitized),
    ),
    window(
        "parpulse_online_payment_ratio",
        "Tỷ lệ thanh toán trực tuyến",
        "Online payment rate (Decision 766): paid online / fee-bearing",
        Ratio,
        |f| f.service.online_payment_rate(),
    ),
    window(
        "parpulse_digitization_ratio",
        "Tỷ lệ số hoá hồ sơ, kết quả giải quyết",
        "Digitization rate (Decision 766, target 0.8): digitized / received",
        Ratio,
        |f| f.service.digitization_rate(),
    ),
    // The procedure catalogue (docs/KPIS.md, "The online-service indicators").
    window(
        "parpulse_procedures_online_offered",
        "Thủ tục cung cấp trực tuyến mức độ 3, 4",
        "Procedures the catalogue lists as offered online at level 3/4 (unit-procedure pairs)",
        Procedures,
        |f| procedures(f, |p| count(p.offered_online)),
    ),
    window(
        "parpulse_procedures_online_with_dossier",
        "Thủ tục mức độ 3, 4 có phát sinh hồ sơ trực tuyến",
        "Level-3/4 procedures with at least one online dossier received in the window",
        Procedures,
        |f| procedures(f, |p| count(p.offered_online_used)),
    ),
    window(
        "parpulse_procedures_online_share_ratio",
        "Tỷ lệ dịch vụ công trực tuyến mức độ 3, 4 có phát sinh hồ sơ",
        "Tỷ lệ dịch vụ công trực tuyến mức độ 3, 4 có phát sinh hồ sơ: level-3/4 procedures with an online dossier / level-3/4 procedures offered",
        Ratio,
        |f| procedures(f, ProcedureCounts::online_services_used),
    ),
    window(
        "parpulse_dossiers_received_level34_procedures",
        "Hồ sơ tiếp nhận của thủ tục mức độ 3, 4",
        "Dossiers received of procedures the unit offers at level 3/4 (catalogue), by reception day",
        Dossiers,
        |f| procedures(f, |p| count(p.received_offered_online)),
    ),
    window(
        "parpulse_dossiers_received_online_level34_procedures",
        "Hồ sơ trực tuyến của thủ tục mức độ 3, 4",
        "Of those, received online at level 3/4",
        Dossiers,
        |f| procedures(f, |p| count(p.received_online_offered_online)),
    ),
    window(
        "parpulse_online_share_level34_procedures_ratio",
        "Tỷ lệ hồ sơ trực tuyến trên thủ tục mức độ 3, 4",
        "Online share over the procedures offered at level 3/4 only (a reading beside parpulse_online_share_ratio, docs/KPIS.md)",
        Ratio,
        |f| procedures(f, ProcedureCounts::online_share_of_offered),
    ),
    window(
        "parpulse_dossiers_unknown_procedure",
        "Hồ sơ có thủ tục ngoài danh mục",
        "Dossiers received whose procedure is not in the unit's catalogue (counted in every other KPI too)",
        Dossiers,
        |f| procedures(f, |p| count(p.received_unknown)),
    ),
    // Now.
    now(
        "parpulse_dossiers_open",
        "Hồ sơ đang giải quyết",
        "Dossiers received and not yet resolved, now",
        Dossiers,
        |f| count(f.open.open),
    ),
    now(
        "parpulse_dossiers_open_overdue",
        "Hồ sơ đang giải quyết quá hạn",
        "Open dossiers past their deadline now (quá hạn); a dossier waiting for a supplement has ended on the request date",
        Dossiers,
        |f| count(f.open.overdue),
    ),
    now(
        "parpulse_open_overdue_ratio",
        "Tỷ lệ hồ sơ đang giải quyết quá hạn",
        "Open dossiers past their deadline / open dossiers; target 0",
        Ratio,
        |f| f.open.overdue_ratio(),
    ),
    with_target(
        now(
            "parpulse_staff_reduction_ratio",
            "Tỷ lệ tinh giản biên chế",
            "Staff reduction (tinh giản biên chế): 1 - quota / baseline quota; roadmap >= 0.10",
            Ratio,
            |f| f.staffing.reduction(),
        ),
        Target {
            metric: "parpulse_staff_reduction_target_ratio",
            help: "Staff reduction roadmap vs the 2015 baseline",
            value: STAFF_REDUCTION_TARGET,
        },
    ),
    now(
        "parpulse_deputies_over_limit",
        "Số cấp phó vượt quy định",
        "Deputies (cấp phó) above the limit, summed unit by unit; target 0",
        Positions,
        |f| signed(f.staffing.deputies_over_limit),
    ),
    // The current fiscal year's budget.
    fiscal_year(
        "parpulse_budget_execution_ratio",
        "Tỷ lệ giải ngân",
        "Budget execution (giải ngân): disbursed / allocated",
        BudgetTotals::execution,
    ),
    fiscal_year(
        "parpulse_budget_savings_ratio",
        "Tỷ lệ tiết kiệm chi",
        "Savings (tiết kiệm chi): saved / allocated",
        BudgetTotals::savings,
    ),
    fiscal_year(
        "parpulse_budget_disclosure_ratio",
        "Tỷ lệ công khai ngân sách",
        "Disclosure (công khai): disclosed / allocated",
        BudgetTotals::disclosure,
    ),
];

/// The catalogue entry of a series.
pub fn get(metric: &str) -> Option<&'static Kpi> {
    KPIS.iter().find(|k| k.metric == metric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_prometheus_names_with_the_unit_suffix_of_their_kind() {
        let mut seen = BTreeSet::new();
        for kpi in KPIS {
            assert!(seen.insert(kpi.metric), "{} twice", kpi.metric);
            assert!(kpi.metric.starts_with("parpulse_"), "{}", kpi.metric);
            assert!(kpi.metric.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            assert_eq!(kpi.unit == Unit::Ratio, kpi.metric.ends_with("_ratio"), "{}: ratios end in _ratio", kpi.metric);
            assert!(!kpi.name_vi.is_empty() && !kpi.help.is_empty());
            if let Some(target) = kpi.target {
                assert!(seen.insert(target.metric), "{} twice", target.metric);
                assert!(target.metric.ends_with("_target_ratio"));
            }
        }
    }

    #[test]
    fn ratios_are_absent_without_a_denominator_and_counts_are_zero() {
        let empty = WindowFigures { procedures: Some(ProcedureCounts::default()), ..Default::default() };
        for kpi in KPIS {
            let value = match kpi.measure {
                Measure::Window(f) => f(&empty),
                Measure::Now(f) => f(&NowFigures::default()),
                Measure::FiscalYear(f) => f(&BudgetTotals::default()),
            };
            match kpi.unit {
                Unit::Ratio => assert_eq!(value, None, "{}", kpi.metric),
                _ => assert_eq!(value, Some(0.0), "{}", kpi.metric),
            }
        }
    }

    #[test]
    fn values_read_the_counts_they_name() {
        let f = WindowFigures {
            received: DossierDayCounts { received: 10, received_online: 4, received_postal: 1 },
            resolved: ResolvedCounts {
                resolved: 8,
                on_time: 6,
                early: 2,
                late: 2,
                late_with_apology: 1,
                ..Default::default()
            },
            service: ServiceCounts { received: 10, postal_users: 3, ..Default::default() },
            procedures: None,
        };
        let value = |metric: &str| match get(metric).expect(metric).measure {
            Measure::Window(v) => v(&f),
            _ => panic!("{metric} is not windowed"),
        };
        assert_eq!(value("parpulse_dossiers_received_online"), Some(4.0));
        assert_eq!(value("parpulse_online_share_ratio"), Some(0.4));
        assert_eq!(value("parpulse_dossiers_resolved_early"), Some(2.0));
        assert_eq!(value("parpulse_on_time_ratio"), Some(0.75));
        assert_eq!(value("parpulse_apology_coverage_ratio"), Some(0.5));
        assert_eq!(value("parpulse_postal_use_ratio"), Some(0.3));
        assert_eq!(value("parpulse_procedures_online_offered"), None, "no catalogue applied: no procedure series");
        assert_eq!(get("parpulse_online_share_ratio").unwrap().target.unwrap().value, 0.30);
    }

    #[test]
    fn now_and_fiscal_year_values_read_their_totals_with_their_labels() {
        let now = NowFigures {
            open: OpenCounts { open: 4, overdue: 1 },
            staffing: StaffingTotals {
                staff_quota: 90,
                staff_baseline: 100,
                deputies_over_limit: 2,
                ..Default::default()
            },
        };
        let budget = BudgetTotals { allocated: 1_000, disbursed: 250, saved: 50, disclosed: 1_000, committed: 0 };
        let value = |metric: &str| match get(metric).expect(metric).measure {
            Measure::Now(v) => v(&now),
            Measure::FiscalYear(v) => v(&budget),
            Measure::Window(_) => panic!("{metric} is windowed"),
        };
        assert_eq!(value("parpulse_dossiers_open_overdue"), Some(1.0));
        assert_eq!(value("parpulse_open_overdue_ratio"), Some(0.25));
        assert_eq!(value("parpulse_deputies_over_limit"), Some(2.0));
        assert_eq!(value("parpulse_staff_reduction_ratio"), Some(0.1));
        assert_eq!(value("parpulse_budget_execution_ratio"), Some(0.25));
        assert_eq!(value("parpulse_budget_savings_ratio"), Some(0.05));
        let labels = |metric: &str| get(metric).expect(metric).measure.labels();
        assert_eq!(labels("parpulse_dossiers_received"), ["scope", "unit", "group", "window"]);
        assert_eq!(labels("parpulse_dossiers_open"), ["scope", "unit", "group"]);
        assert_eq!(labels("parpulse_budget_disclosure_ratio"), ["scope", "unit", "group", "fiscal_year"]);
        assert!(get("parpulse_no_such_kpi").is_none());
    }
}
