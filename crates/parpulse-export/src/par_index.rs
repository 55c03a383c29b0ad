//! The PAR Index view (Chỉ số cải cách hành chính, PAR Index): each KPI parpulse computes,
//! tagged with the index's component and the criterion it feeds, and judged against the
//! line parpulse uses for it (docs/KPIS.md, "The PAR Index view"). Flow KPIs are judged
//! over the last 30 days ([`JUDGED_WINDOW`]); open dossiers now; budget over the fiscal
//! year; staffing on the newest headcounts. A criterion without data is not judged.

use parpulse_core::catalogue::NowFigures;
use parpulse_core::kpi::{APOLOGY_COVERAGE_TARGET, ONLINE_SHARE_TARGET, ON_TIME_TARGET};

use crate::snapshot::{staff_checkpoint_due, Scope, Snapshot, Window};

/// The window the flow KPIs are judged over.
pub const JUDGED_WINDOW: Window = Window::Days30;

/// The line for the share of level-3/4 procedures with an online dossier: a project
/// choice (docs/KPIS.md), the index scores it in steps this project has not confirmed.
pub const ONLINE_SERVICES_USED_TARGET: f64 = 0.50;

/// A PAR Index criterion parpulse judges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Criterion {
    /// `component` label: administrative_procedures, organisation, civil_service,
    /// public_finance, e_government.
    pub component: &'static str,
    pub component_vi: &'static str,
    /// `criterion` label.
    pub code: &'static str,
    pub name_vi: &'static str,
    /// The series it is judged on.
    pub kpi: &'static str,
}

const TTHC: (&str, &str) = ("administrative_procedures", "Cải cách thủ tục hành chính");
const ORG: (&str, &str) = ("organisation", "Cải cách tổ chức bộ máy hành chính");
const FIN: (&str, &str) = ("public_finance", "Cải cách tài chính công");
const EGOV: (&str, &str) = ("e_government", "Xây dựng, phát triển Chính phủ điện tử, Chính phủ số");

const fn criterion(
    c: (&'static str, &'static str),
    code: &'static str,
    name_vi: &'static str,
    kpi: &'static str,
) -> Criterion {
    Criterion { component: c.0, component_vi: c.1, code, name_vi, kpi }
}

/// Every criterion parpulse judges (the civil-service component has none: the stream
/// carries no recruitment, job-position or training facts).
pub const CRITERIA: [Criterion; 10] = [
    criterion(TTHC, "on_time", "Tỷ lệ hồ sơ giải quyết đúng hạn", "parpulse_on_time_ratio"),
    criterion(TTHC, "apology", "Xin lỗi người dân khi trễ hạn", "parpulse_apology_coverage_ratio"),
    criterion(TTHC, "open_overdue", "Không có hồ sơ quá hạn đang giải quyết", "parpulse_dossiers_open_overdue"),
    criterion(EGOV, "online_share", "Tỷ lệ hồ sơ trực tuyến mức độ 3, 4", "parpulse_online_share_ratio"),
    criterion(
        EGOV,
        "online_services_used",
        "Tỷ lệ dịch vụ công trực tuyến mức độ 3, 4 có phát sinh hồ sơ",
        "parpulse_procedures_online_share_ratio",
    ),
    criterion(EGOV, "online_payment", "Tỷ lệ thanh toán trực tuyến", "parpulse_online_payment_ratio"),
    criterion(EGOV, "digitization", "Tỷ lệ số hoá hồ sơ, kết quả giải quyết", "parpulse_digitization_ratio"),
    criterion(ORG, "deputies", "Số lượng cấp phó theo quy định", "parpulse_deputies_over_limit"),
    criterion(ORG, "staff_reduction", "Tinh giản biên chế theo lộ trình", "parpulse_staff_reduction_ratio"),
    criterion(FIN, "budget_disclosure", "Công khai dự toán ngân sách", "parpulse_budget_disclosure_ratio"),
];

/// Whether `scope` is below the line of each criterion (None: no data, not judged).
pub fn judge(snapshot: &Snapshot, scope: &Scope) -> [(Criterion, Option<bool>); 10] {
    let below = |value: Option<f64>, line: f64| value.map(|v| v < line);
    let flow = snapshot.window_figures(scope, JUDGED_WINDOW);
    let NowFigures { open, staffing } = snapshot.now_figures(scope);
    let budget = snapshot.budget.get(scope).copied().unwrap_or_default();
    let due = snapshot.today.and_then(staff_checkpoint_due).map(|c| c.target);
    let results = [
        below(flow.resolved.on_time_rate(), ON_TIME_TARGET),
        below(flow.resolved.apology_coverage(), APOLOGY_COVERAGE_TARGET),
        (open.open > 0).then_some(open.overdue > 0),
        below(flow.received.online_share(), ONLINE_SHARE_TARGET),
        below(flow.procedures.and_then(|p| p.online_services_used()), ONLINE_SERVICES_USED_TARGET),
        below(flow.service.online_payment_rate(), 0.5),
        below(flow.service.digitization_rate(), 0.8),
        (staffing.deputies_limit > 0).then_some(staffing.deputies_over_limit > 0),
        staffing.reduction().zip(due).map(|(reduction, due)| reduction < due),
        below(budget.disclosure(), 1.0),
    ];
    let mut out = [(CRITERIA[0], None); 10];
    for (slot, (criterion, result)) in out.iter_mut().zip(CRITERIA.into_iter().zip(results)) {
        *slot = (criterion, result);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_clickhouse::day_count::UnitDay;
    use parpulse_core::{AgencyGroup, AgencyRegistry, LocalDay};

    #[test]
    fn a_unit_below_the_online_line_is_flagged_and_criteria_without_data_are_not_judged() {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let day = |code: &str, received, online| UnitDay::receptions(code, today, received, online, 0);
        let snapshot = Snapshot::build(&[day("SNV", 10, 2), day("STP", 10, 5)], &AgencyRegistry::demo(), today);
        let judged = |code: &str, group| {
            judge(&snapshot, &Scope::Unit { code: code.into(), group })
                .into_iter()
                .find(|(c, _)| c.code == "online_share")
                .unwrap()
                .1
        };
        assert_eq!(judged("SNV", AgencyGroup::Department), Some(true));
        assert_eq!(judged("STP", AgencyGroup::Department), Some(false));
        assert_eq!(judged("KHOAICHAU", AgencyGroup::District), None);
        // Receptions alone judge the criteria over received dossiers (nothing digitised:
        // below the line); nothing else has data.
        let snv = judge(&snapshot, &Scope::Unit { code: "SNV".into(), group: AgencyGroup::Department });
        let by_receptions = ["online_share", "digitization"];
        assert_eq!(snv.iter().find(|(c, _)| c.code == "digitization").unwrap().1, Some(true));
        assert!(snv.iter().filter(|(c, _)| !by_receptions.contains(&c.code)).all(|(_, r)| r.is_none()));
        let components: std::collections::BTreeSet<_> = CRITERIA.iter().map(|c| c.component).collect();
        assert_eq!(components.len(), 4, "every component but the civil service has a criterion");
    }

    #[test]
    fn exactly_at_the_line_is_not_below_and_overdue_is_judged_only_with_open_dossiers() {
        use parpulse_clickhouse::dossier_state::OpenDossiers;
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let registry = AgencyRegistry::demo();
        // 3 online of 10: exactly the 30% line.
        let rows = [UnitDay::receptions("SNV", today, 10, 3, 0)];
        let open = |code: &str, open, overdue| OpenDossiers { agency_code: code.into(), open, overdue };
        let snapshot = Snapshot::build_all(&rows, &[open("SNV", 4, 1), open("STP", 4, 0)], &registry, today);
        let judged = |code: &str, criterion: &str| {
            judge(&snapshot, &Scope::Unit { code: code.into(), group: AgencyGroup::Department })
                .into_iter()
                .find(|(c, _)| c.code == criterion)
                .unwrap()
                .1
        };
        assert_eq!(judged("SNV", "online_share"), Some(false), "30% is the line, not below it");
        assert_eq!(judged("SNV", "open_overdue"), Some(true));
        assert_eq!(judged("STP", "open_overdue"), Some(false));
        assert_eq!(judged("STC", "open_overdue"), None, "no open dossier: not judged");
    }

    #[test]
    fn deputies_and_the_staff_roadmap_are_judged_against_their_lines() {
        use crate::snapshot::headcount;
        use crate::snapshot::AdministrationRows;
        // 2023: the roadmap line in force is 2021's, a 10% reduction from the 2015 baseline.
        let today = LocalDay::from_ymd(2023, 3, 1).unwrap();
        let registry = AgencyRegistry::demo();
        let rows = AdministrationRows {
            budget: vec![],
            headcounts: vec![
                headcount("SNV", "deputy", 3, 4, 0),
                headcount("STP", "deputy", 3, 3, 0),
                headcount("SNV", "staff", 95, 90, 100), // 5% reduction: behind
                headcount("STP", "staff", 90, 90, 100), // exactly 10%: on the line
                headcount("STC", "staff", 80, 80, 100), // 20%: ahead
            ],
        };
        let snapshot = Snapshot::build(&[], &registry, today).with_administration(&rows, &registry);
        let judged = |code: &str, criterion: &str| {
            judge(&snapshot, &Scope::Unit { code: code.into(), group: AgencyGroup::Department })
                .into_iter()
                .find(|(c, _)| c.code == criterion)
                .unwrap()
                .1
        };
        assert_eq!(judged("SNV", "deputies"), Some(true));
        assert_eq!(judged("STP", "deputies"), Some(false), "at the limit is not over it");
        assert_eq!(judged("STC", "deputies"), None, "no deputy limit known: not judged");
        assert_eq!(judged("SNV", "staff_reduction"), Some(true));
        assert_eq!(judged("STP", "staff_reduction"), Some(false));
        assert_eq!(judged("STC", "staff_reduction"), Some(false));
        assert_eq!(judged("SKHDT", "staff_reduction"), None, "no baseline: not judged");
    }
}
