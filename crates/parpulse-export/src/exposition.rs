//! Rendering a [`Snapshot`]: Prometheus text for `/metrics`, and a table for
//! people at a terminal. Pure functions.
//!
//! Series and labels (docs/METRICS.md): every KPI gauge carries
//! `scope` (unit | group | province), `unit` (agency code, group name or
//! province code), `group` (department | district, empty for the province) and
//! `window` (day | 7d | 30d | mtd | ytd). With the demo registry that is
//! (31 units + 2 groups + 1 province) x 5 windows = 170 series per KPI.

use parpulse_core::decision766::{self, Score766};
use parpulse_core::kpi::{
    postal_use, BudgetTotals, DossierDayCounts, OpenCounts, ResolvedCounts, ServiceCounts, StaffingTotals,
    APOLOGY_COVERAGE_TARGET, ONLINE_SHARE_TARGET, ON_TIME_TARGET, STAFF_REDUCTION_TARGET,
};
use parpulse_core::{AgencyRegistry, LocalDay};
use prometheus::{Gauge, GaugeVec, Opts, Registry};

pub use parpulse_http::encode;

use crate::snapshot::{staff_checkpoint_due, ProcedureCounts, Scope, Snapshot, Window, STAFF_ROADMAP};

const KPI_LABELS: [&str; 4] = ["scope", "unit", "group", "window"];
const SNAPSHOT_LABELS: [&str; 3] = ["scope", "unit", "group"];

struct KpiGauges {
    received: GaugeVec,
    received_online: GaugeVec,
    received_postal: GaugeVec,
    online_share: GaugeVec,
    postal_share: GaugeVec,
    resolved: GaugeVec,
    on_time: GaugeVec,
    early: GaugeVec,
    late: GaugeVec,
    late_with_apology: GaugeVec,
    refused: GaugeVec,
    result_postal: GaugeVec,
    returned: GaugeVec,
    returned_postal: GaugeVec,
    on_time_rate: GaugeVec,
    apology_coverage: GaugeVec,
    postal_use: GaugeVec,
    open: GaugeVec,
    open_overdue: GaugeVec,
    overdue_ratio: GaugeVec,
    fee_bearing: GaugeVec,
    paid_online: GaugeVec,
    digitized: GaugeVec,
    payment_rate: GaugeVec,
    digitization_rate: GaugeVec,
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let vec = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(vec.clone())).expect("unique metric");
    vec
}

impl KpiGauges {
    fn register(registry: &Registry) -> Self {
        Self {
            received: gauge_vec(registry, "parpulse_dossiers_received", "Dossiers received (hồ sơ tiếp nhận) in the window", &KPI_LABELS),
            received_online: gauge_vec(
                registry,
                "parpulse_dossiers_received_online",
                "Dossiers received online at service level 3/4 (hồ sơ trực tuyến mức độ 3, 4) in the window",
                &KPI_LABELS,
            ),
            received_postal: gauge_vec(
                registry,
                "parpulse_dossiers_received_postal",
                "Dossiers received through the public postal service (bưu chính công ích) in the window",
                &KPI_LABELS,
            ),
            online_share: gauge_vec(
                registry,
                "parpulse_online_share_ratio",
                "Online share (tỷ lệ hồ sơ trực tuyến): received online at level 3/4 / received; absent when nothing was received",
                &KPI_LABELS,
            ),
            postal_share: gauge_vec(
                registry,
                "parpulse_postal_intake_ratio",
                "Postal intake share (tỷ lệ tiếp nhận qua bưu chính): received by post / received; absent when nothing was received",
                &KPI_LABELS,
            ),
            resolved: gauge_vec(registry, "parpulse_dossiers_resolved", "Dossiers resolved (giải quyết xong) in the window, by end date", &KPI_LABELS),
            on_time: gauge_vec(
                registry,
                "parpulse_dossiers_resolved_on_time",
                "Resolved not late (early or on time: trước hạn, đúng hạn) in the window",
                &KPI_LABELS,
            ),
            early: gauge_vec(
                registry,
                "parpulse_dossiers_resolved_early",
                "Resolved early (trước hạn: on a day before the deadline's day) in the window; part of on time",
                &KPI_LABELS,
            ),
            refused: gauge_vec(
                registry,
                "parpulse_dossiers_refused",
                "Dossiers refused at reception (từ chối tiếp nhận) in the window, by day refused; never counted as resolved",
                &KPI_LABELS,
            ),
            result_postal: gauge_vec(
                registry,
                "parpulse_dossiers_result_postal",
                "Received dossiers whose result is registered for return by public postal service, by reception day",
                &KPI_LABELS,
            ),
            late: gauge_vec(registry, "parpulse_dossiers_resolved_late", "Resolved late (trễ hạn) in the window", &KPI_LABELS),
            late_with_apology: gauge_vec(
                registry,
                "parpulse_dossiers_late_with_apology",
                "Late dossiers with a timely apology letter (thư xin lỗi, sent by the last working day before the deadline) in the window",
                &KPI_LABELS,
            ),
            returned: gauge_vec(registry, "parpulse_dossiers_returned", "Results returned (trả kết quả) among the resolved in the window", &KPI_LABELS),
            returned_postal: gauge_vec(
                registry,
                "parpulse_dossiers_returned_postal",
                "Results returned through the public postal service in the window",
                &KPI_LABELS,
            ),
            on_time_rate: gauge_vec(registry, "parpulse_on_time_ratio", "On-time rate (tỷ lệ đúng hạn): on time / resolved", &KPI_LABELS),
            apology_coverage: gauge_vec(
                registry,
                "parpulse_apology_coverage_ratio",
                "Apology coverage (tỷ lệ xin lỗi): late with a timely apology letter / late; target 1",
                &KPI_LABELS,
            ),
            postal_use: gauge_vec(
                registry,
                "parpulse_postal_use_ratio",
                "Postal use (bưu chính công ích): dossiers received or with a result returned by post / received, by reception day",
                &KPI_LABELS,
            ),
            open: gauge_vec(registry, "parpulse_dossiers_open", "Dossiers received and not yet resolved, now", &SNAPSHOT_LABELS),
            open_overdue: gauge_vec(
                registry,
                "parpulse_dossiers_open_overdue",
                "Open dossiers past their deadline now (quá hạn); a dossier waiting for a supplement has ended on the request date",
                &SNAPSHOT_LABELS,
            ),
            overdue_ratio: gauge_vec(registry, "parpulse_open_overdue_ratio", "Open dossiers past their deadline / open dossiers; target 0", &SNAPSHOT_LABELS),
            fee_bearing: gauge_vec(
                registry,
                "parpulse_dossiers_fee_bearing",
                "Received dossiers of fee-bearing procedures (có phí, lệ phí), by reception day",
                &KPI_LABELS,
            ),
            paid_online: gauge_vec(
                registry,
                "parpulse_dossiers_paid_online",
                "Fee-bearing dossiers paid online (thanh toán trực tuyến), by reception day",
                &KPI_LABELS,
            ),
            digitized: gauge_vec(
                registry,
                "parpulse_dossiers_digitized",
                "Received dossiers digitised with an electronic result (số hoá), by reception day",
                &KPI_LABELS,
            ),
            payment_rate: gauge_vec(
                registry,
                "parpulse_online_payment_ratio",
                "Online payment rate (Decision 766): paid online / fee-bearing",
                &KPI_LABELS,
            ),
            digitization_rate: gauge_vec(
                registry,
                "parpulse_digitization_ratio",
                "Digitization rate (Decision 766, target 0.8): digitized / received",
                &KPI_LABELS,
            ),
        }
    }

    fn set_resolved(&self, labels: &[&str; 4], resolved: &ResolvedCounts) {
        self.resolved.with_label_values(labels).set(resolved.resolved as f64);
        self.on_time.with_label_values(labels).set(resolved.on_time as f64);
        self.early.with_label_values(labels).set(resolved.early as f64);
        self.late.with_label_values(labels).set(resolved.late as f64);
        self.late_with_apology.with_label_values(labels).set(resolved.late_with_apology as f64);
        self.refused.with_label_values(labels).set(resolved.refused as f64);
        self.returned.with_label_values(labels).set(resolved.returned as f64);
        self.returned_postal.with_label_values(labels).set(resolved.returned_postal as f64);
        for (gauge, value) in
            [(&self.on_time_rate, resolved.on_time_rate()), (&self.apology_coverage, resolved.apology_coverage())]
        {
            if let Some(value) = value {
                gauge.with_label_values(labels).set(value);
            }
        }
    }

    fn set_service(&self, labels: &[&str; 4], service: &ServiceCounts) {
        self.fee_bearing.with_label_values(labels).set(service.fee_bearing as f64);
        self.paid_online.with_label_values(labels).set(service.paid_online as f64);
        self.digitized.with_label_values(labels).set(service.digitized as f64);
        self.result_postal.with_label_values(labels).set(service.result_postal as f64);
        if let Some(rate) = postal_use(service) {
            self.postal_use.with_label_values(labels).set(rate);
        }
        if let Some(rate) = service.online_payment_rate() {
            self.payment_rate.with_label_values(labels).set(rate);
        }
        if let Some(rate) = service.digitization_rate() {
            self.digitization_rate.with_label_values(labels).set(rate);
        }
    }

    fn set_open(&self, labels: &[&str; 3], open: &OpenCounts) {
        self.open.with_label_values(labels).set(open.open as f64);
        self.open_overdue.with_label_values(labels).set(open.overdue as f64);
        if let Some(ratio) = open.overdue_ratio() {
            self.overdue_ratio.with_label_values(labels).set(ratio);
        }
    }

    fn set(&self, labels: &[&str; 4], counts: &DossierDayCounts) {
        self.received.with_label_values(labels).set(counts.received as f64);
        self.received_online.with_label_values(labels).set(counts.received_online as f64);
        self.received_postal.with_label_values(labels).set(counts.received_postal as f64);
        if let Some(share) = counts.online_share() {
            self.online_share.with_label_values(labels).set(share);
        }
        if let Some(share) = counts.postal_intake_share() {
            self.postal_share.with_label_values(labels).set(share);
        }
    }
}

/// Decision 766 scoring of the stream's indicators (parpulse_core::decision766).
struct ScoreGauges {
    points: GaugeVec,
    ratio: GaugeVec,
}

impl ScoreGauges {
    fn register(registry: &Registry) -> Self {
        Self {
            points: gauge_vec(
                registry,
                "parpulse_766_points",
                "Decision 766 points earned per indicator (full points at or above target, else rate x points / target)",
                &["scope", "unit", "group", "window", "indicator"],
            ),
            ratio: gauge_vec(
                registry,
                "parpulse_766_score_ratio",
                "Decision 766 score of the indicators with data: earned / available points (x100 for the bands: >= 90 xuất sắc, < 50 yếu)",
                &KPI_LABELS,
            ),
        }
    }

    fn set(&self, labels: &[&str; 4], score: &Score766) {
        for (indicator, points) in decision766::INDICATORS.iter().zip(score.points) {
            if let Some(points) = points {
                let [scope, unit, group, window] = *labels;
                self.points.with_label_values(&[scope, unit, group, window, indicator.code]).set(points);
            }
        }
        if let Some(ratio) = score.ratio() {
            self.ratio.with_label_values(labels).set(ratio);
        }
    }
}

/// The `unit` and `group` label values of a scope.
pub fn scope_labels<'a>(scope: &'a Scope, province_code: &'a str) -> (&'static str, &'a str, &'static str) {
    match scope {
        Scope::Unit { code, group } => ("unit", code.as_str(), group.as_str()),
        Scope::Group(group) => ("group", group.as_str(), group.as_str()),
        Scope::Province => ("province", province_code, ""),
    }
}

/// Budget (VND per kind, and ratios) and staffing gauges.
struct AdministrationGauges {
    budget_vnd: GaugeVec,
    execution: GaugeVec,
    savings: GaugeVec,
    disclosure: GaugeVec,
    staff: GaugeVec,
    reduction: GaugeVec,
    deputies_over_limit: GaugeVec,
}

const BUDGET_LABELS: [&str; 4] = ["scope", "unit", "group", "fiscal_year"];

impl AdministrationGauges {
    fn register(registry: &Registry) -> Self {
        Self {
            budget_vnd: gauge_vec(
                registry,
                "parpulse_budget_vnd",
                "Administrative budget of the fiscal year, VND, by kind (allocated, committed, disbursed, saved, disclosed)",
                &["scope", "unit", "group", "fiscal_year", "kind"],
            ),
            execution: gauge_vec(registry, "parpulse_budget_execution_ratio", "Budget execution (giải ngân): disbursed / allocated", &BUDGET_LABELS),
            savings: gauge_vec(registry, "parpulse_budget_savings_ratio", "Savings (tiết kiệm chi): saved / allocated", &BUDGET_LABELS),
            disclosure: gauge_vec(registry, "parpulse_budget_disclosure_ratio", "Disclosure (công khai): disclosed / allocated", &BUDGET_LABELS),
            staff: gauge_vec(
                registry,
                "parpulse_staff_positions",
                "Positions from the newest headcount snapshots: quota, filled, baseline (2015) for staff; limit and filled for deputies",
                &["scope", "unit", "group", "position", "measure"],
            ),
            reduction: gauge_vec(
                registry,
                "parpulse_staff_reduction_ratio",
                "Staff reduction (tinh giản biên chế): 1 - quota / baseline quota; roadmap >= 0.10",
                &SNAPSHOT_LABELS,
            ),
            deputies_over_limit: gauge_vec(
                registry,
                "parpulse_deputies_over_limit",
                "Deputies (cấp phó) above the limit, summed unit by unit; target 0",
                &SNAPSHOT_LABELS,
            ),
        }
    }

    fn set_budget(&self, labels: &[&str; 3], year: &str, b: &BudgetTotals) {
        let [scope, unit, group] = *labels;
        for (kind, amount) in [
            ("allocated", b.allocated),
            ("committed", b.committed),
            ("disbursed", b.disbursed),
            ("saved", b.saved),
            ("disclosed", b.disclosed),
        ] {
            self.budget_vnd.with_label_values(&[scope, unit, group, year, kind]).set(amount as f64);
        }
        let labels = [scope, unit, group, year];
        for (gauge, value) in
            [(&self.execution, b.execution()), (&self.savings, b.savings()), (&self.disclosure, b.disclosure())]
        {
            if let Some(value) = value {
                gauge.with_label_values(&labels).set(value);
            }
        }
    }

    fn set_staffing(&self, labels: &[&str; 3], s: &StaffingTotals) {
        let [scope, unit, group] = *labels;
        for (position, measure, value) in [
            ("staff", "quota", s.staff_quota),
            ("staff", "filled", s.staff_filled),
            ("staff", "baseline", s.staff_baseline),
            ("deputy", "limit", s.deputies_limit),
            ("deputy", "filled", s.deputies_filled),
        ] {
            self.staff.with_label_values(&[scope, unit, group, position, measure]).set(value as f64);
        }
        if let Some(reduction) = s.reduction() {
            self.reduction.with_label_values(labels).set(reduction);
        }
        self.deputies_over_limit.with_label_values(labels).set(s.deputies_over_limit as f64);
    }
}

/// The procedure catalogue's KPIs (docs/KPIS.md, "The online-service indicators").
struct ProcedureGauges {
    offered_online: GaugeVec,
    offered_online_used: GaugeVec,
    used_ratio: GaugeVec,
    received_offered_online: GaugeVec,
    received_online_offered_online: GaugeVec,
    share_of_offered: GaugeVec,
    unknown: GaugeVec,
}

impl ProcedureGauges {
    fn register(registry: &Registry) -> Self {
        Self {
            offered_online: gauge_vec(
                registry,
                "parpulse_procedures_online_offered",
                "Procedures the catalogue lists as offered online at level 3/4 (unit-procedure pairs)",
                &KPI_LABELS,
            ),
            offered_online_used: gauge_vec(
                registry,
                "parpulse_procedures_online_with_dossier",
                "Level-3/4 procedures with at least one online dossier received in the window",
                &KPI_LABELS,
            ),
            used_ratio: gauge_vec(
                registry,
                "parpulse_procedures_online_share_ratio",
                "Tỷ lệ dịch vụ công trực tuyến mức độ 3, 4 có phát sinh hồ sơ: level-3/4 procedures with an online dossier / level-3/4 procedures offered",
                &KPI_LABELS,
            ),
            received_offered_online: gauge_vec(
                registry,
                "parpulse_dossiers_received_level34_procedures",
                "Dossiers received of procedures the unit offers at level 3/4 (catalogue), by reception day",
                &KPI_LABELS,
            ),
            received_online_offered_online: gauge_vec(
                registry,
                "parpulse_dossiers_received_online_level34_procedures",
                "Of those, received online at level 3/4",
                &KPI_LABELS,
            ),
            share_of_offered: gauge_vec(
                registry,
                "parpulse_online_share_level34_procedures_ratio",
                "Online share over the procedures offered at level 3/4 only (a reading beside parpulse_online_share_ratio, docs/KPIS.md)",
                &KPI_LABELS,
            ),
            unknown: gauge_vec(
                registry,
                "parpulse_dossiers_unknown_procedure",
                "Dossiers received whose procedure is not in the unit's catalogue (counted in every other KPI too)",
                &KPI_LABELS,
            ),
        }
    }

    fn set(&self, labels: &[&str; 4], p: &ProcedureCounts) {
        for (gauge, value) in [
            (&self.offered_online, p.offered_online),
            (&self.offered_online_used, p.offered_online_used),
            (&self.received_offered_online, p.received_offered_online),
            (&self.received_online_offered_online, p.received_online_offered_online),
            (&self.unknown, p.received_unknown),
        ] {
            gauge.with_label_values(labels).set(value as f64);
        }
        for (gauge, value) in
            [(&self.used_ratio, p.online_services_used()), (&self.share_of_offered, p.online_share_of_offered())]
        {
            if let Some(value) = value {
                gauge.with_label_values(labels).set(value);
            }
        }
    }
}

/// Prometheus text exposition of a snapshot, with unit names and targets.
pub fn render_prometheus(snapshot: &Snapshot, registry: &AgencyRegistry) -> String {
    let prom = Registry::new();
    let gauges = KpiGauges::register(&prom);
    let scores = ScoreGauges::register(&prom);
    let province = registry.province().code.as_str();
    for ((scope, window), counts) in &snapshot.counts {
        let (scope_label, unit, group) = scope_labels(scope, province);
        let labels = [scope_label, unit, group, window.label()];
        gauges.set(&labels, counts);
        if let Some(resolved) = snapshot.get_resolved(scope, *window) {
            gauges.set_resolved(&labels, resolved);
        }
        if let Some(service) = snapshot.service.get(&(scope.clone(), *window)) {
            gauges.set_service(&labels, service);
        }
        let resolved = snapshot.get_resolved(scope, *window).copied().unwrap_or_default();
        let service = snapshot.service.get(&(scope.clone(), *window)).copied().unwrap_or_default();
        scores.set(&labels, &Score766::of(counts, &resolved, &service));
    }
    for (scope, open) in &snapshot.open {
        let (scope_label, unit, group) = scope_labels(scope, province);
        gauges.set_open(&[scope_label, unit, group], open);
    }
    let procedures = ProcedureGauges::register(&prom);
    for ((scope, window), counts) in &snapshot.procedures {
        let (scope_label, unit, group) = scope_labels(scope, province);
        procedures.set(&[scope_label, unit, group, window.label()], counts);
    }
    let below_target = gauge_vec(
        &prom,
        "parpulse_par_index_criterion_below_target",
        "PAR Index criteria (docs/KPIS.md): 1 when the scope is below parpulse's line for the criterion (flow KPIs over 30 days), 0 when not; absent without data",
        &["scope", "unit", "group", "component", "criterion"],
    );
    for scope in snapshot.open.keys() {
        let (scope_label, unit, group) = scope_labels(scope, province);
        for (criterion, below) in crate::par_index::judge(snapshot, scope) {
            if let Some(below) = below {
                below_target
                    .with_label_values(&[scope_label, unit, group, criterion.component, criterion.code])
                    .set(f64::from(u8::from(below)));
            }
        }
    }
    let criterion_info = gauge_vec(
        &prom,
        "parpulse_par_index_criterion_info",
        "PAR Index criteria parpulse judges: component and criterion with their Vietnamese names and the series judged",
        &["component", "component_name", "criterion", "criterion_name", "kpi"],
    );
    for c in crate::par_index::CRITERIA {
        criterion_info.with_label_values(&[c.component, c.component_vi, c.code, c.name_vi, c.kpi]).set(1.0);
    }
    let administration = AdministrationGauges::register(&prom);
    let year = snapshot.fiscal_year.to_string();
    for (scope, budget) in &snapshot.budget {
        let (scope_label, unit, group) = scope_labels(scope, province);
        administration.set_budget(&[scope_label, unit, group], &year, budget);
    }
    for (scope, staffing) in &snapshot.staffing {
        let (scope_label, unit, group) = scope_labels(scope, province);
        administration.set_staffing(&[scope_label, unit, group], staffing);
    }
    let info = gauge_vec(
        &prom,
        "parpulse_unit_info",
        "Reporting units: code, Vietnamese name and group (join on `unit` for dashboards)",
        &["unit", "name", "group", "group_name"],
    );
    for agency in registry.iter() {
        info.with_label_values(&[agency.code.as_str(), &agency.name, agency.group.as_str(), agency.group.name_vi()])
            .set(1.0);
    }
    info.with_label_values(&[province, &registry.province().name, "", ""]).set(1.0);
    let indicator_points = gauge_vec(
        &prom,
        "parpulse_766_indicator_points_max",
        "Decision 766 indicators parpulse scores: full points, with the Vietnamese name and the decision's group",
        &["indicator", "name", "group766"],
    );
    let indicator_target = gauge_vec(
        &prom,
        "parpulse_766_target_ratio",
        "Decision 766 target rate per indicator (full points at or above it)",
        &["indicator"],
    );
    for indicator in decision766::INDICATORS {
        indicator_points.with_label_values(&[indicator.code, indicator.name_vi, indicator.group]).set(indicator.points);
        indicator_target.with_label_values(&[indicator.code]).set(indicator.target);
    }
    let roadmap = gauge_vec(
        &prom,
        "parpulse_staff_reduction_roadmap_ratio",
        "Staff reduction roadmap: reduction vs the 2015 baseline due by the end of the checkpoint year (docs/KPIS.md)",
        &["checkpoint"],
    );
    for checkpoint in STAFF_ROADMAP {
        roadmap.with_label_values(&[&checkpoint.year.to_string()]).set(checkpoint.target);
    }
    let due = gauge_vec(
        &prom,
        "parpulse_staff_reduction_due_ratio",
        "The roadmap checkpoint in force today (the latest whose year has ended): reduction due vs the 2015 baseline",
        &["checkpoint"],
    );
    if let Some(checkpoint) = snapshot.today.and_then(staff_checkpoint_due) {
        due.with_label_values(&[&checkpoint.year.to_string()]).set(checkpoint.target);
    }
    for (name, help, value) in [
        (
            "parpulse_online_share_target_ratio",
            "Province target for the online share (letter 301/UBND-NC, 2019)",
            ONLINE_SHARE_TARGET,
        ),
        ("parpulse_on_time_target_ratio", "On-time rate below which parpulse alerts (docs/KPIS.md)", ON_TIME_TARGET),
        (
            "parpulse_apology_coverage_target_ratio",
            "Apology coverage target: every late dossier",
            APOLOGY_COVERAGE_TARGET,
        ),
        (
            "parpulse_staff_reduction_target_ratio",
            "Staff reduction roadmap vs the 2015 baseline",
            STAFF_REDUCTION_TARGET,
        ),
    ] {
        let target = Gauge::new(name, help).expect("valid metric");
        target.set(value);
        prom.register(Box::new(target)).expect("unique metric");
    }
    encode(&prom)
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

/// A per-unit table of one window, for the terminal (Vietnamese names, UTF-8).
pub fn render_table(snapshot: &Snapshot, registry: &AgencyRegistry, window: Window) -> String {
    let today = snapshot.today.map_or_else(|| "?".to_owned(), |d: LocalDay| d.to_string());
    let mut out = format!(
        "Tỷ lệ hồ sơ trực tuyến mức độ 3, 4 (online share), window {} ending {}; target >= {:.0}%\n",
        window.label(),
        today,
        ONLINE_SHARE_TARGET * 100.0
    );
    out.push_str(&format!(
        "{:<10} {:<40} {:>9} {:>9} {:>8} {:>8}  {}\n",
        "unit", "đơn vị", "received", "online", "share", "postal", "status"
    ));
    let mut line = |code: &str, name: &str, counts: &DossierDayCounts| {
        let status = match counts.online_share() {
            None => "no data",
            Some(s) if s < ONLINE_SHARE_TARGET => "BELOW 30%",
            Some(_) => "ok",
        };
        let name: String = name.chars().take(40).collect();
        out.push_str(&format!(
            "{:<10} {:<40} {:>9} {:>9} {:>8} {:>8}  {}\n",
            code,
            name,
            counts.received,
            counts.received_online,
            percent(counts.online_share()),
            percent(counts.postal_intake_share()),
            status
        ));
    };
    for agency in registry.iter() {
        let scope = Scope::Unit { code: agency.code.to_string(), group: agency.group };
        if let Some(counts) = snapshot.get(&scope, window) {
            line(agency.code.as_str(), &agency.name, counts);
        }
    }
    for group in parpulse_core::AgencyGroup::ALL {
        if let Some(counts) = snapshot.get(&Scope::Group(group), window) {
            line(group.as_str(), group.name_vi(), counts);
        }
    }
    if let Some(counts) = snapshot.get(&Scope::Province, window) {
        line(&registry.province().code, &registry.province().name, counts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_clickhouse::dossier_day::UnitDay;

    fn snapshot() -> Snapshot {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let rows =
            [UnitDay { agency_code: "SNV".into(), day: today.0, received: 8, received_online: 2, received_postal: 1 }];
        Snapshot::build(&rows, &AgencyRegistry::demo(), today)
    }

    #[test]
    fn online_share_is_exposed_per_unit_and_window() {
        let text = render_prometheus(&snapshot(), &AgencyRegistry::demo());
        assert!(
            text.contains(
                r#"parpulse_online_share_ratio{group="department",scope="unit",unit="SNV",window="day"} 0.25"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"parpulse_dossiers_received{group="",scope="province",unit="HY",window="30d"} 8"#));
    }

    #[test]
    fn units_without_dossiers_have_counts_but_no_ratio() {
        let text = render_prometheus(&snapshot(), &AgencyRegistry::demo());
        assert!(
            text.contains(r#"parpulse_dossiers_received{group="department",scope="unit",unit="STP",window="day"} 0"#)
        );
        assert!(!text.contains(r#"parpulse_online_share_ratio{group="department",scope="unit",unit="STP""#));
    }

    #[test]
    fn unit_names_are_vietnamese_utf8() {
        let text = render_prometheus(&snapshot(), &AgencyRegistry::demo());
        assert!(text.contains(r#"name="UBND huyện Khoái Châu""#));
    }

    #[test]
    fn staffing_and_the_roadmap_in_force_are_exposed() {
        use parpulse_clickhouse::budget_staffing::Headcount;
        let registry = AgencyRegistry::demo();
        let today = LocalDay::from_ymd(2026, 11, 30).unwrap();
        let headcount = |position: &str, quota, filled, baseline_quota| Headcount {
            agency_code: "SNV".into(),
            position: position.into(),
            quota,
            filled,
            baseline_quota,
        };
        let rows = crate::snapshot::AdministrationRows {
            budget: vec![],
            headcounts: vec![headcount("staff", 95, 90, 100), headcount("deputy", 3, 4, 4)],
        };
        let snapshot = Snapshot::build(&[], &registry, today).with_administration(&rows, &registry);
        let text = render_prometheus(&snapshot, &registry);
        for line in [
            r#"parpulse_deputies_over_limit{group="department",scope="unit",unit="SNV"} 1"#,
            r#"parpulse_staff_reduction_ratio{group="department",scope="unit",unit="SNV"} 0.05"#,
            r#"parpulse_staff_reduction_roadmap_ratio{checkpoint="2021"} 0.1"#,
            r#"parpulse_staff_reduction_roadmap_ratio{checkpoint="2026"} 0.145"#,
            r#"parpulse_staff_reduction_due_ratio{checkpoint="2021"} 0.1"#,
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        let next_year = Snapshot::build(&[], &registry, LocalDay::from_ymd(2027, 1, 1).unwrap());
        assert!(render_prometheus(&next_year, &registry)
            .contains(r#"parpulse_staff_reduction_due_ratio{checkpoint="2026"} 0.145"#));
        let before = Snapshot::build(&[], &registry, LocalDay::from_ymd(2021, 6, 1).unwrap());
        assert!(!render_prometheus(&before, &registry).contains("parpulse_staff_reduction_due_ratio{"));
    }

    #[test]
    fn table_flags_units_below_target() {
        let table = render_table(&snapshot(), &AgencyRegistry::demo(), Window::Day);
        let snv = table.lines().find(|l| l.starts_with("SNV ")).unwrap();
        assert!(snv.contains("25.0%") && snv.contains("BELOW 30%"), "{snv}");
    }
}
