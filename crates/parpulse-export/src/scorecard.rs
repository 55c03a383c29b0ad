//! The leadership scorecard: one printable HTML page, every unit against the
//! 30% online target for one window, with small SVG bars and Vietnamese
//! labels, then budget (letter 301/UBND-NC item e) and staffing (item đ) per unit. Pure: it renders a [`Snapshot`], the same one `/metrics` serves, so
//! both always show the same numbers.

use parpulse_core::kpi::{BudgetTotals, DossierDayCounts, ResolvedCounts, StaffingTotals, ONLINE_SHARE_TARGET};
use parpulse_core::{AgencyGroup, AgencyRegistry, LocalDay};

use crate::snapshot::{staff_checkpoint_due, staff_reduction_behind, Scope, Snapshot, Window};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn window_vi(window: Window) -> &'static str {
    match window {
        Window::Day => "hôm nay",
        Window::Days7 => "7 ngày gần nhất",
        Window::Days30 => "30 ngày gần nhất",
        Window::MonthToDate => "từ đầu tháng",
        Window::YearToDate => "từ đầu năm",
        Window::LastMonth => "tháng trước",
        Window::LastQuarter => "quý trước",
    }
}

/// A bar from 0 to 100% with the target marked.
fn bar(share: Option<f64>) -> String {
    let Some(share) = share else { return String::new() };
    let width = (share.clamp(0.0, 1.0) * 200.0).round();
    let target = ONLINE_SHARE_TARGET * 200.0;
    let color = if share < ONLINE_SHARE_TARGET { "#c62828" } else { "#2e7d32" };
    format!(
        "<svg width=\"204\" height=\"14\" role=\"img\" aria-label=\"{:.1}%\"><rect x=\"0\" y=\"2\" width=\"200\" height=\"10\" fill=\"#eee\"/>\
         <rect x=\"0\" y=\"2\" width=\"{width}\" height=\"10\" fill=\"{color}\"/>\
         <line x1=\"{target}\" y1=\"0\" x2=\"{target}\" y2=\"14\" stroke=\"#000\" stroke-width=\"1.5\"/></svg>",
        share * 100.0
    )
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn row(
    out: &mut String,
    class: &str,
    code: &str,
    name: &str,
    group: &str,
    counts: &DossierDayCounts,
    resolved: &ResolvedCounts,
) {
    let share = counts.online_share();
    let (status, status_class) = match share {
        None => ("Chưa có dữ liệu", "none"),
        Some(s) if s < ONLINE_SHARE_TARGET => ("Chưa đạt", "below"),
        Some(_) => ("Đạt", "met"),
    };
    out.push_str(&format!(
        "<tr class=\"{class} {status_class}\" data-unit=\"{code}\">\
         <td>{code}</td><td>{name}</td><td>{group}</td>\
         <td class=\"num\" data-kpi=\"received\">{}</td>\
         <td class=\"num\" data-kpi=\"received_online\">{}</td>\
         <td class=\"num\" data-kpi=\"online_share\" data-value=\"{}\">{}</td><td>{}</td>\
         <td class=\"num\" data-kpi=\"postal_share\">{}</td>\
         <td class=\"num\" data-kpi=\"on_time\" data-value=\"{}\">{}</td>\
         <td class=\"num\" data-kpi=\"apology\">{}</td><td class=\"status\">{status}</td></tr>\n",
        counts.received,
        counts.received_online,
        share.map_or_else(String::new, |s| s.to_string()),
        percent(share),
        bar(share),
        percent(counts.postal_intake_share()),
        resolved.on_time_rate().map_or_else(String::new, |s| s.to_string()),
        percent(resolved.on_time_rate()),
        percent(resolved.apology_coverage()),
        code = escape(code),
        name = escape(name),
        group = escape(group),
    ));
}

/// Whole VND as billions of đồng (tỷ đồng), two decimals with the Vietnamese decimal comma.
fn billion_vnd(vnd: i64) -> String {
    format!("{:.2}", vnd as f64 / 1e9).replace('.', ",")
}

/// What a unit's budget and staffing still owe, in Vietnamese; empty when nothing.
fn administration_findings(
    budget: &BudgetTotals,
    staffing: &StaffingTotals,
    today: Option<LocalDay>,
) -> Vec<&'static str> {
    let mut findings = Vec::new();
    if budget.disclosure().is_some_and(|d| d < 1.0) {
        findings.push("Chưa công khai đủ dự toán");
    }
    if today.and_then(|today| staff_reduction_behind(staffing.reduction(), today)) == Some(true) {
        findings.push("Chậm lộ trình tinh giản biên chế");
    }
    if staffing.deputies_over_limit > 0 {
        findings.push("Vượt số lượng cấp phó");
    }
    findings
}

fn ratio_cell(kpi: &str, value: Option<f64>) -> String {
    format!(
        "<td class=\"num\" data-kpi=\"{kpi}\" data-value=\"{}\">{}</td>",
        value.map_or_else(String::new, |v| v.to_string()),
        percent(value)
    )
}

fn administration_row(
    out: &mut String,
    class: &str,
    (code, name, group): (&str, &str, &str),
    budget: &BudgetTotals,
    staffing: &StaffingTotals,
    today: Option<LocalDay>,
) {
    let findings = administration_findings(budget, staffing, today);
    let has_data = budget.allocated > 0 || staffing.staff_baseline > 0 || staffing.deputies_limit > 0;
    let (status, status_class) = match (findings.is_empty(), has_data) {
        (false, _) => (findings.join("; "), "below"),
        (true, true) => ("Đạt".to_owned(), "met"),
        (true, false) => ("Chưa có dữ liệu".to_owned(), "none"),
    };
    out.push_str(&format!(
        "<tr class=\"{class} {status_class}\" data-unit=\"{code}\">\
         <td>{code}</td><td>{name}</td><td>{group}</td>\
         <td class=\"num\" data-kpi=\"budget_allocated\" data-value=\"{}\">{}</td>{}{}{}{}\
         <td class=\"num\" data-kpi=\"staff_quota\">{}</td>\
         <td class=\"num\" data-kpi=\"deputies_over_limit\">{}</td><td class=\"status\">{}</td></tr>\n",
        budget.allocated,
        billion_vnd(budget.allocated),
        ratio_cell("budget_execution", budget.execution()),
        ratio_cell("budget_savings", budget.savings()),
        ratio_cell("budget_disclosure", budget.disclosure()),
        ratio_cell("staff_reduction", staffing.reduction()),
        staffing.staff_quota,
        staffing.deputies_over_limit,
        escape(&status),
        code = escape(code),
        name = escape(name),
        group = escape(group),
    ));
}

/// The budget and staffing section: units with findings first, then the totals.
fn administration_section(snapshot: &Snapshot, registry: &AgencyRegistry) -> String {
    let of = |scope: &Scope| {
        (
            snapshot.budget.get(scope).copied().unwrap_or_default(),
            snapshot.staffing.get(scope).copied().unwrap_or_default(),
        )
    };
    let mut units: Vec<_> = registry
        .iter()
        .map(|a| {
            let (budget, staffing) = of(&Scope::Unit { code: a.code.to_string(), group: a.group });
            (a, budget, staffing)
        })
        .collect();
    units.sort_by_key(|(a, budget, staffing)| {
        (administration_findings(budget, staffing, snapshot.today).is_empty(), a.code.to_string())
    });
    let mut rows = String::new();
    for (agency, budget, staffing) in &units {
        let labels = (agency.code.as_str(), agency.name.as_str(), agency.group.name_vi());
        administration_row(&mut rows, "unit", labels, budget, staffing, snapshot.today);
    }
    let mut totals = String::new();
    for group in AgencyGroup::ALL {
        let (budget, staffing) = of(&Scope::Group(group));
        administration_row(
            &mut totals,
            "group",
            (group.as_str(), group.name_vi(), ""),
            &budget,
            &staffing,
            snapshot.today,
        );
    }
    let province = registry.province();
    let (budget, staffing) = of(&Scope::Province);
    administration_row(
        &mut totals,
        "province",
        (&province.code, &province.name, ""),
        &budget,
        &staffing,
        snapshot.today,
    );
    let with_findings =
        units.iter().filter(|(_, b, s)| !administration_findings(b, s, snapshot.today).is_empty()).count();
    let roadmap = snapshot.today.and_then(staff_checkpoint_due).map_or_else(
        || "chưa đến mốc nào của lộ trình".to_owned(),
        |c| format!("mốc {}: giảm ít nhất {:.1}% so với 2015 ({})", c.year, c.target * 100.0, c.basis_vi),
    );
    format!(
        r#"<h2>Ngân sách và biên chế (Văn bản 301/UBND-NC, mục đ và e)</h2>
<p class="meta">Kinh phí hành chính năm ngân sách {year}: giải ngân, tiết kiệm chi và công khai so với dự toán được giao (mục tiêu công khai 100%); biên chế theo báo cáo mới nhất, tinh giản so với năm 2015 ({roadmap}); số cấp phó vượt quy định (mục tiêu 0).
<span id="administration-findings">{with_findings}</span> đơn vị cần lưu ý. Budget of fiscal year {year} and staffing from the newest snapshots, per unit.</p>
<table id="administration">
<thead><tr><th>Mã</th><th>Đơn vị</th><th>Khối</th><th>Dự toán được giao (tỷ đồng)</th><th>Giải ngân</th><th>Tiết kiệm chi</th><th>Công khai</th><th>Tinh giản biên chế (so với 2015)</th><th>Biên chế được giao</th><th>Cấp phó vượt quy định</th><th>Đánh giá</th></tr></thead>
<tbody>
{rows}</tbody>
<tfoot>
{totals}</tfoot>
</table>
"#,
        year = snapshot.fiscal_year,
    )
}

/// The scorecard of `window` as a complete HTML document.
/// Per unit, the PAR Index criteria below parpulse's line (crate::par_index).
fn par_index_section(snapshot: &Snapshot, registry: &AgencyRegistry) -> String {
    let mut rows = String::new();
    for agency in registry.iter() {
        let scope = Scope::Unit { code: agency.code.to_string(), group: agency.group };
        let below: Vec<String> = crate::par_index::judge(snapshot, &scope)
            .into_iter()
            .filter(|(_, below)| *below == Some(true))
            .map(|(c, _)| format!("{} ({})", escape(c.name_vi), escape(c.component_vi)))
            .collect();
        if below.is_empty() {
            continue;
        }
        rows.push_str(&format!(
            "<tr class=\"par-unit\" data-unit=\"{code}\"><td>{code}</td><td>{name}</td><td class=\"num\">{count}</td><td>{list}</td></tr>\n",
            code = escape(agency.code.as_str()),
            name = escape(&agency.name),
            count = below.len(),
            list = below.join("; "),
        ));
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"4\">Không có đơn vị nào dưới mức mục tiêu.</td></tr>\n");
    }
    format!(
        r#"<h2 id="par-index">Chỉ số cải cách hành chính (PAR Index): tiêu chí chưa đạt theo đơn vị</h2>
<p class="meta">Tiêu chí đánh giá trong 30 ngày gần nhất (hồ sơ), hiện tại (hồ sơ quá hạn, biên chế) và năm ngân sách; mức mục tiêu: docs/KPIS.md. PAR Index criteria below target, per unit.</p>
<table>
<thead><tr><th>Mã</th><th>Đơn vị</th><th>Số tiêu chí chưa đạt</th><th>Tiêu chí (lĩnh vực)</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
"#
    )
}

pub fn render_html(snapshot: &Snapshot, registry: &AgencyRegistry, window: Window) -> String {
    let province = registry.province();
    let today = snapshot.today.map_or_else(|| "—".to_owned(), |d| d.to_string());
    let mut rows = String::new();
    let resolved_of = |scope: &Scope| snapshot.get_resolved(scope, window).copied().unwrap_or_default();
    let mut units: Vec<_> = registry
        .iter()
        .filter_map(|a| {
            let scope = Scope::Unit { code: a.code.to_string(), group: a.group };
            Some((a, *snapshot.get(&scope, window)?, resolved_of(&scope)))
        })
        .collect();
    // Lowest share first: who needs attention leads the page.
    units.sort_by(|(a, x, _), (b, y, _)| {
        x.online_share().unwrap_or(f64::MAX).total_cmp(&y.online_share().unwrap_or(f64::MAX)).then(a.code.cmp(&b.code))
    });
    for (agency, counts, resolved) in &units {
        row(&mut rows, "unit", agency.code.as_str(), &agency.name, agency.group.name_vi(), counts, resolved);
    }
    let mut totals = String::new();
    for group in AgencyGroup::ALL {
        if let Some(counts) = snapshot.get(&Scope::Group(group), window) {
            row(&mut totals, "group", group.as_str(), group.name_vi(), "", counts, &resolved_of(&Scope::Group(group)));
        }
    }
    if let Some(counts) = snapshot.get(&Scope::Province, window) {
        row(&mut totals, "province", &province.code, &province.name, "", counts, &resolved_of(&Scope::Province));
    }
    let below = units.iter().filter(|(_, c, _)| c.online_share().is_some_and(|s| s < ONLINE_SHARE_TARGET)).count();
    format!(
        r#"<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<title>Bảng điểm cải cách hành chính — {province_name}</title>
<style>
  body {{ font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #222; }}
  h1 {{ font-size: 20px; margin: 0 0 4px; }}
  p.meta {{ margin: 0 0 12px; color: #555; }}
  table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
  th, td {{ border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; }}
  th {{ background: #f3f3f3; }}
  td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
  tr.below td.status {{ color: #c62828; font-weight: bold; }}
  tr.met td.status {{ color: #2e7d32; }}
  tr.group td, tr.province td {{ font-weight: bold; background: #fafafa; }}
  h2 {{ font-size: 16px; margin: 24px 0 4px; }}
  @media print {{ body {{ margin: 0; }} tr {{ page-break-inside: avoid; }} }}
</style>
</head>
<body>
<h1>Bảng điểm cải cách hành chính — {province_name}</h1>
<p class="meta">Tỷ lệ hồ sơ tiếp nhận trực tuyến mức độ 3, 4 ({window_vi}, đến ngày {today}); mục tiêu ≥ {target:.0}% (Văn bản 301/UBND-NC).
<span id="below-count">{below}</span> đơn vị chưa đạt. Online share per unit against the 30% target; window {window_label}.</p>
<table>
<thead><tr><th>Mã</th><th>Đơn vị</th><th>Khối</th><th>Hồ sơ tiếp nhận</th><th>Trực tuyến mức độ 3, 4</th><th>Tỷ lệ trực tuyến</th><th></th><th>Qua bưu chính</th><th>Đúng hạn</th><th>Trễ hạn có thư xin lỗi</th><th>Đánh giá (30%)</th></tr></thead>
<tbody>
{rows}</tbody>
<tfoot>
{totals}</tfoot>
</table>
{administration}{par_index}</body>
</html>
"#,
        administration = administration_section(snapshot, registry),
        par_index = par_index_section(snapshot, registry),
        province_name = escape(&province.name),
        window_vi = window_vi(window),
        window_label = window.label(),
        target = ONLINE_SHARE_TARGET * 100.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_clickhouse::day_count::UnitDay;
    use parpulse_core::LocalDay;

    fn page() -> String {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let rows = [UnitDay::receptions("SNV", today, 8, 2, 0), UnitDay::receptions("STP", today, 10, 5, 1)];
        render_html(&Snapshot::build(&rows, &AgencyRegistry::demo(), today), &AgencyRegistry::demo(), Window::Days30)
    }

    #[test]
    fn units_below_target_lead_the_page_and_are_marked() {
        let html = page();
        let snv = html.find("data-unit=\"SNV\"").unwrap();
        let stp = html.find("data-unit=\"STP\"").unwrap();
        assert!(snv < stp, "the lower share comes first");
        assert!(html.contains("<tr class=\"unit below\" data-unit=\"SNV\">"));
        assert!(html.contains("<span id=\"below-count\">1</span>"));
    }

    #[test]
    fn budget_and_staffing_are_shown_per_unit_with_their_findings() {
        use crate::snapshot::headcount;
        use crate::snapshot::AdministrationRows;
        use parpulse_clickhouse::budget_staffing::BudgetYear;
        let registry = AgencyRegistry::demo();
        let today = LocalDay::from_ymd(2026, 11, 30).unwrap();
        let budget = |code: &str, disclosed| BudgetYear {
            agency_code: code.into(),
            fiscal_year: 2026,
            allocated: 12_000_000_000,
            committed: 0,
            disbursed: 9_000_000_000,
            saved: 600_000_000,
            disclosed,
        };
        let rows = AdministrationRows {
            // SNV disclosed half, is 5% below its 2015 quota and has one deputy too many; STP is fine.
            budget: vec![budget("SNV", 6_000_000_000), budget("STP", 12_000_000_000)],
            headcounts: vec![
                headcount("SNV", "staff", 95, 90, 100),
                headcount("SNV", "deputy", 3, 4, 4),
                headcount("STP", "staff", 80, 80, 100),
                headcount("STP", "deputy", 3, 3, 4),
            ],
        };
        let snapshot = Snapshot::build(&[], &registry, today).with_administration(&rows, &registry);
        let html = render_html(&snapshot, &registry, Window::Days30);
        let section = &html[html.find("<table id=\"administration\">").expect("the section")..];
        let row = |code: &str| {
            let start = section.find(&format!("data-unit=\"{code}\">")).unwrap();
            section[start..].split("</tr>").next().unwrap().to_owned()
        };
        let snv = row("SNV");
        for cell in [
            "data-kpi=\"budget_allocated\" data-value=\"12000000000\">12,00</td>",
            "data-kpi=\"budget_execution\" data-value=\"0.75\">75.0%</td>",
            "data-kpi=\"budget_savings\" data-value=\"0.05\">5.0%</td>",
            "data-kpi=\"budget_disclosure\" data-value=\"0.5\">50.0%</td>",
            "data-kpi=\"staff_reduction\" data-value=\"0.05\">5.0%</td>",
            "data-kpi=\"deputies_over_limit\">1</td>",
            "Chưa công khai đủ dự toán; Chậm lộ trình tinh giản biên chế; Vượt số lượng cấp phó",
        ] {
            assert!(snv.contains(cell), "{cell} not in {snv}");
        }
        assert!(row("STP").contains("data-kpi=\"staff_reduction\" data-value=\"0.2\">20.0%</td>"));
        assert!(row("STP").contains("<td class=\"status\">Đạt</td>"));
        assert!(row("KIMDONG").contains("Chưa có dữ liệu"));
        assert!(section.find("data-unit=\"SNV\"").unwrap() < section.find("data-unit=\"STP\"").unwrap());
        assert!(html.contains("<span id=\"administration-findings\">1</span>"));
        assert!(row("HY").contains("data-kpi=\"deputies_over_limit\">1</td>"));
        assert!(html.contains("mốc 2021: giảm ít nhất 10.0% so với 2015"));
        assert_eq!(billion_vnd(1_234_567_890_123), "1234,57");
        assert_eq!(billion_vnd(0), "0,00");
    }

    #[test]
    fn the_par_index_section_lists_each_units_criteria_below_target() {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let rows = [UnitDay::receptions("SNV", today, 10, 1, 0)];
        let snapshot = Snapshot::build(&rows, &AgencyRegistry::demo(), today);
        let html = render_html(&snapshot, &AgencyRegistry::demo(), Window::Days30);
        let section = &html[html.find("id=\"par-index\"").expect("the PAR Index section")..];
        let snv = section.lines().find(|l| l.contains("data-unit=\"SNV\"")).expect("SNV is below a criterion");
        assert!(snv.contains("Tỷ lệ hồ sơ trực tuyến mức độ 3, 4 (Xây dựng, phát triển Chính phủ điện tử"), "{snv}");
        assert_eq!(section.matches("class=\"par-unit\"").count(), 1, "no other unit has data");
    }

    #[test]
    fn the_page_is_vietnamese_utf8_and_escapes_names() {
        let html = page();
        assert!(html.contains("<html lang=\"vi\">") && html.contains("charset=\"utf-8\""));
        assert!(html.contains("Sở Văn hóa, Thể thao và Du lịch"));
        assert_eq!(escape("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
}
