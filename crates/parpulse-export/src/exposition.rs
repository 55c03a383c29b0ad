//! Rendering a [`Snapshot`]: Prometheus text for `/metrics`, and a table for
//! people at a terminal. Pure functions.
//!
//! Series and labels (docs/METRICS.md): every KPI gauge carries
//! `scope` (unit | group | province), `unit` (agency code, group name or
//! province code), `group` (department | district, empty for the province) and
//! `window` (day | 7d | 30d | mtd | ytd). With the demo registry that is
//! (31 units + 2 groups + 1 province) x 5 windows = 170 series per KPI.

use parpulse_core::catalogue::{self, Kpi, Measure};
use parpulse_core::decision766::{self, Score766};
use parpulse_core::kpi::{BudgetTotals, DossierDayCounts, StaffingTotals, ONLINE_SHARE_TARGET};
use parpulse_core::{AgencyRegistry, LocalDay};
use prometheus::{Gauge, GaugeVec, Opts, Registry};

pub use parpulse_http::encode;

use crate::snapshot::{staff_checkpoint_due, Scope, Snapshot, Window, STAFF_ROADMAP};

const KPI_LABELS: [&str; 4] = ["scope", "unit", "group", "window"];

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let vec = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(vec.clone())).expect("unique metric");
    vec
}

/// The catalogue's gauges, registered in its order, and their targets.
struct CatalogueGauges(Vec<(&'static Kpi, GaugeVec)>);

impl CatalogueGauges {
    fn register(registry: &Registry) -> Self {
        Self(
            catalogue::KPIS
                .iter()
                .map(|kpi| (kpi, gauge_vec(registry, kpi.metric, kpi.help, kpi.measure.labels())))
                .collect(),
        )
    }

    /// Sets every KPI of the snapshot, for each scope and window (or now, or the fiscal
    /// year); each scope's figures are gathered once for all the KPIs that read them.
    fn set(&self, snapshot: &Snapshot, province: &str) {
        let year = snapshot.fiscal_year.to_string();
        let set = |gauge: &GaugeVec, labels: &[&str], value: Option<f64>| {
            if let Some(value) = value {
                gauge.with_label_values(labels).set(value);
            }
        };
        for (scope, window) in snapshot.counts.keys() {
            let (scope_label, unit, group) = scope_labels(scope, province);
            let figures = snapshot.window_figures(scope, *window);
            for (kpi, gauge) in &self.0 {
                if let Measure::Window(value) = kpi.measure {
                    set(gauge, &[scope_label, unit, group, window.label()], value(&figures));
                }
            }
        }
        for scope in snapshot.open.keys() {
            let (scope_label, unit, group) = scope_labels(scope, province);
            let figures = snapshot.now_figures(scope);
            for (kpi, gauge) in &self.0 {
                if let Measure::Now(value) = kpi.measure {
                    set(gauge, &[scope_label, unit, group], value(&figures));
                }
            }
        }
        for (scope, budget) in &snapshot.budget {
            let (scope_label, unit, group) = scope_labels(scope, province);
            for (kpi, gauge) in &self.0 {
                if let Measure::FiscalYear(value) = kpi.measure {
                    set(gauge, &[scope_label, unit, group, &year], value(budget));
                }
            }
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

/// The breakdown families beside the catalogue: budget in VND per kind, and positions.
struct AdministrationGauges {
    budget_vnd: GaugeVec,
    staff: GaugeVec,
}

impl AdministrationGauges {
    fn register(registry: &Registry) -> Self {
        Self {
            budget_vnd: gauge_vec(
                registry,
                "parpulse_budget_vnd",
                "Administrative budget of the fiscal year, VND, by kind (allocated, committed, disbursed, saved, disclosed)",
                &["scope", "unit", "group", "fiscal_year", "kind"],
            ),
            staff: gauge_vec(
                registry,
                "parpulse_staff_positions",
                "Positions from the newest headcount snapshots: quota, filled, baseline (2015) for staff; limit and filled for deputies",
                &["scope", "unit", "group", "position", "measure"],
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
    }
}

/// Prometheus text exposition of a snapshot, with unit names and targets.
pub fn render_prometheus(snapshot: &Snapshot, registry: &AgencyRegistry) -> String {
    let prom = Registry::new();
    let province = registry.province().code.as_str();
    CatalogueGauges::register(&prom).set(snapshot, province);
    let scores = ScoreGauges::register(&prom);
    for (scope, window) in snapshot.counts.keys() {
        let (scope_label, unit, group) = scope_labels(scope, province);
        let f = snapshot.window_figures(scope, *window);
        scores.set(&[scope_label, unit, group, window.label()], &Score766::of(&f.received, &f.resolved, &f.service));
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
    for target in catalogue::KPIS.iter().filter_map(|kpi| kpi.target) {
        let gauge = Gauge::new(target.metric, target.help).expect("valid metric");
        gauge.set(target.value);
        prom.register(Box::new(gauge)).expect("unique metric");
    }
    encode(&prom)
}

/// The docs' table of the catalogue (docs/METRICS.md, "KPI gauges"): one row per KPI, with
/// what it is measured over, its Vietnamese name, definition, target and PAR Index criterion.
pub fn catalogue_markdown() -> String {
    let mut out = String::from(
        "| metric | over | tên (vi) | definition | target | PAR Index criterion |\n|---|---|---|---|---|---|\n",
    );
    for kpi in catalogue::KPIS {
        let over = match kpi.measure {
            Measure::Window(_) => "window",
            Measure::Now(_) => "now",
            Measure::FiscalYear(_) => "fiscal year",
        };
        let target = kpi.target.map_or_else(String::new, |t| format!("{} (`{}`)", t.value, t.metric));
        let criteria: Vec<String> = crate::par_index::CRITERIA
            .iter()
            .filter(|c| c.kpi == kpi.metric)
            .map(|c| format!("{}: {} (`{}`)", c.component_vi, c.name_vi, c.code))
            .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            kpi.metric,
            over,
            kpi.name_vi,
            kpi.help.replace('|', "\\|"),
            target,
            criteria.join("; ")
        ));
    }
    out
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
    use parpulse_clickhouse::day_count::UnitDay;

    /// docs/METRICS.md carries the catalogue's table between its markers, as generated.
    #[test]
    fn docs_tables_match_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/METRICS.md");
        let doc = std::fs::read_to_string(path).expect("docs/METRICS.md");
        let (begin, end) = ("<!-- catalogue:begin", "<!-- catalogue:end -->");
        let start = doc.find(begin).expect("begin marker");
        let start = start + doc[start..].find("-->\n").expect("end of the begin marker") + 4;
        let stop = doc.find(end).expect("end marker");
        let table = catalogue_markdown();
        if std::env::var_os("PARPULSE_UPDATE_DOCS").is_some() {
            std::fs::write(path, format!("{}{}{}", &doc[..start], table, &doc[stop..])).expect("write docs");
        } else {
            assert_eq!(
                doc[start..stop],
                table,
                "docs/METRICS.md is not the catalogue's table: run PARPULSE_UPDATE_DOCS=1 cargo test -p parpulse-export docs_tables"
            );
        }
    }

    /// Every PAR Index criterion is judged on a series of the catalogue.
    #[test]
    fn every_par_index_criterion_names_a_catalogue_kpi() {
        for criterion in crate::par_index::CRITERIA {
            assert!(catalogue::get(criterion.kpi).is_some(), "{} judges {}", criterion.code, criterion.kpi);
        }
    }

    fn snapshot() -> Snapshot {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let rows = [UnitDay::receptions("SNV", today, 8, 2, 1)];
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
        use crate::snapshot::headcount;
        let registry = AgencyRegistry::demo();
        let today = LocalDay::from_ymd(2026, 11, 30).unwrap();
        let rows = crate::snapshot::AdministrationRows {
            budget: vec![],
            headcounts: vec![headcount("SNV", "staff", 95, 90, 100), headcount("SNV", "deputy", 3, 4, 4)],
        };
        let snapshot = Snapshot::build(&[], &registry, today).with_administration(&rows, &registry);
        let text = render_prometheus(&snapshot, &registry);
        let position = |position: &str, measure: &str, value: u32| {
            format!(
                r#"parpulse_staff_positions{{group="department",measure="{measure}",position="{position}",scope="unit",unit="SNV"}} {value}"#
            )
        };
        for line in [
            position("staff", "quota", 95),
            position("staff", "filled", 90),
            position("staff", "baseline", 100),
            position("deputy", "limit", 3),
            position("deputy", "filled", 4),
        ] {
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
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

    #[test]
    fn a_unit_exactly_at_the_target_is_not_below_it_and_one_without_data_says_so() {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let rows = [UnitDay::receptions("SNV", today, 10, 3, 0)];
        let snapshot = Snapshot::build(&rows, &AgencyRegistry::demo(), today);
        let table = render_table(&snapshot, &AgencyRegistry::demo(), Window::Day);
        let line = |code: &str| table.lines().find(|l| l.starts_with(&format!("{code} "))).unwrap().to_owned();
        assert!(line("SNV").contains("30.0%") && line("SNV").ends_with(" ok"), "{}", line("SNV"));
        assert!(line("STP").ends_with(" no data"), "{}", line("STP"));
    }

    #[test]
    fn decision_766_points_and_score_are_exposed_per_indicator() {
        // 10 received, 3 online: the online-dossier indicator (11 points, target 0.5) earns
        // 0.3 x 11 / 0.5 = 6.6; on-time rate 1 of 2 resolved (20 points, target 1) earns 10;
        // satisfaction, 1 - late rate = 0.5 (18 points, target 0.9), earns 0.5 x 18 / 0.9 = 10;
        // digitization 4 of 10 (22 points, target 0.8) earns 0.4 x 22 / 0.8 = 11.
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let mut row = UnitDay::receptions("SNV", today, 10, 3, 0);
        row.counts.service.digitized = 4;
        row.counts.resolved =
            parpulse_core::kpi::ResolvedCounts { resolved: 2, on_time: 1, late: 1, ..Default::default() };
        let rows = [row];
        let snapshot = Snapshot::build(&rows, &AgencyRegistry::demo(), today);
        let text = render_prometheus(&snapshot, &AgencyRegistry::demo());
        let unit = r#"group="department",indicator="#;
        for line in [
            format!(r#"parpulse_766_points{{{unit}"online_dossier",scope="unit",unit="SNV",window="day"}} 6.6"#),
            format!(r#"parpulse_766_points{{{unit}"on_time",scope="unit",unit="SNV",window="day"}} 10"#),
            format!(r#"parpulse_766_points{{{unit}"satisfaction",scope="unit",unit="SNV",window="day"}} 10"#),
            format!(r#"parpulse_766_points{{{unit}"digitization",scope="unit",unit="SNV",window="day"}} 11"#),
        ] {
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        // Earned / available points of the indicators with data (payment has none, no
        // dossier bears a fee): (6.6 + 10 + 10 + 11) / (11 + 20 + 18 + 22).
        let score = text
            .lines()
            .find(|l| {
                l.starts_with(r#"parpulse_766_score_ratio{group="department",scope="unit",unit="SNV",window="day"}"#)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .expect("the unit's score");
        assert!((score - 37.6 / 71.0).abs() < 1e-9, "{score}");
    }
}
