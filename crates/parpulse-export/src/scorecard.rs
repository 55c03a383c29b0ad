//! The leadership scorecard: one printable HTML page, every unit against the
//! 30% online target for one window, with small SVG bars and Vietnamese
//! labels. Pure: it renders a [`Snapshot`], the same one `/metrics` serves, so
//! both always show the same numbers.

use parpulse_core::kpi::{DossierDayCounts, ResolvedCounts, ONLINE_SHARE_TARGET};
use parpulse_core::{AgencyGroup, AgencyRegistry};

use crate::snapshot::{Scope, Snapshot, Window};

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

/// The scorecard of `window` as a complete HTML document.
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
</body>
</html>
"#,
        province_name = escape(&province.name),
        window_vi = window_vi(window),
        window_label = window.label(),
        target = ONLINE_SHARE_TARGET * 100.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use parpulse_clickhouse::dossier_day::UnitDay;
    use parpulse_core::LocalDay;

    fn page() -> String {
        let today = LocalDay::from_ymd(2019, 11, 28).unwrap();
        let rows = [
            UnitDay { agency_code: "SNV".into(), day: today.0, received: 8, received_online: 2, received_postal: 0 },
            UnitDay { agency_code: "STP".into(), day: today.0, received: 10, received_online: 5, received_postal: 1 },
        ];
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
    fn the_page_is_vietnamese_utf8_and_escapes_names() {
        let html = page();
        assert!(html.contains("<html lang=\"vi\">") && html.contains("charset=\"utf-8\""));
        assert!(html.contains("Sở Văn hóa, Thể thao và Du lịch"));
        assert_eq!(escape("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
}
