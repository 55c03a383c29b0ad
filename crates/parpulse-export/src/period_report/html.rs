//! The report as one printable HTML page (A4 landscape, Vietnamese), with the
//! leadership scorecard's look and the official form's multi-level header: a table
//! per section (the form, the online services, budget and staffing).

use parpulse_core::time::format_local;

use super::{as_of_vi, header_cells, Cell, Column, PeriodReport, Section, FORM_VI, HEADER_ROWS, SECTIONS, TITLE_VI};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The scorecard's fonts, colours and table rules, with an A4 landscape page and
/// a bordered, centred header as on the paper form.
const STYLE: &str = r#"
  @page { size: A4 landscape; margin: 10mm; }
  body { font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #222; }
  h1 { font-size: 18px; margin: 0 0 4px; text-align: center; }
  h2 { font-size: 15px; margin: 20px 0 6px; text-align: center; }
  p.period { font-size: 15px; font-weight: bold; margin: 0 0 4px; text-align: center; }
  p.meta { margin: 0 0 12px; color: #555; font-size: 13px; text-align: center; }
  p.form { margin: 0 0 8px; color: #555; font-size: 12px; }
  p.note { margin: 8px 0 0; color: #555; font-size: 11px; }
  table { border-collapse: collapse; width: 100%; font-size: 11px; }
  th, td { border: 1px solid #ccc; padding: 3px 4px; text-align: left; }
  th { background: #f3f3f3; text-align: center; vertical-align: middle; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.group td, tr.province td { font-weight: bold; background: #fafafa; }
  @media print { body { margin: 0; } tr { page-break-inside: avoid; } thead { display: table-header-group; } }
"#;

fn header(columns: &[&Column]) -> String {
    let cells = header_cells(columns);
    let mut out = String::from("<thead>\n");
    for row in 0..HEADER_ROWS {
        out.push_str("<tr>");
        for cell in cells.iter().filter(|c| c.row == row) {
            let mut spans = String::new();
            if cell.rows > 1 {
                spans.push_str(&format!(" rowspan=\"{}\"", cell.rows));
            }
            if cell.cols > 1 {
                spans.push_str(&format!(" colspan=\"{}\"", cell.cols));
            }
            out.push_str(&format!("<th{spans}>{}</th>", escape(cell.label)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</thead>\n");
    out
}

fn table(report: &PeriodReport, section: &Section) -> String {
    let columns = section.all_columns();
    let mut rows = String::new();
    for row in &report.rows {
        rows.push_str(&format!("<tr class=\"{}\" data-unit=\"{}\">", row.scope.class(), escape(&row.code)));
        for column in &columns {
            let cell = (column.value)(row);
            let class = if matches!(cell, Cell::Text(_)) { "" } else { " class=\"num\"" };
            rows.push_str(&format!("<td{class} data-kpi=\"{}\">{}</td>", column.key, escape(&cell.text())));
        }
        rows.push_str("</tr>\n");
    }
    format!(
        "<table id=\"{id}\">\n{header}<tbody>\n{rows}</tbody>\n</table>\n<p class=\"note\">{note}</p>\n",
        id = section.id,
        header = header(&columns),
        note = escape(section.note_vi),
    )
}

/// The report as a complete HTML document.
pub fn to_html(report: &PeriodReport) -> String {
    let title_vi = report.period.title_vi();
    let mut sections = String::new();
    for (n, section) in SECTIONS.iter().enumerate() {
        if n > 0 {
            sections.push_str(&format!(
                "<h2>{}</h2>\n<p class=\"meta\">{}</p>\n",
                escape(section.title_vi),
                escape(section.unit_vi)
            ));
        }
        sections.push_str(&table(report, section));
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<title>{title} — {period} — {province}</title>
<style>{STYLE}</style>
</head>
<body>
<p class="form">{FORM_VI}</p>
<h1>{TITLE_VI}</h1>
<p class="period" data-period="{label}">{period}</p>
<p class="meta">{province}; {as_of}; lập lúc {generated}. {unit}</p>
{sections}</body>
</html>
"#,
        title = TITLE_VI,
        period = escape(&title_vi),
        label = escape(&report.period.label()),
        province = escape(&report.province_vi),
        as_of = escape(&as_of_vi(report)),
        generated = escape(&format_local(report.generated_at_micros)),
        unit = escape(SECTIONS[0].unit_vi),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::report;
    use super::*;

    #[test]
    fn title_period_and_as_of_time() {
        let html = to_html(&report());
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"vi\">"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<h1>BÁO CÁO TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH</h1>"));
        assert!(html.contains("<p class=\"period\" data-period=\"2019-11\">Tháng 11 năm 2019</p>"));
        assert!(html.contains("số liệu tính đến 2019-12-01 00:00:00+07:00"), "{html}");
        assert!(html.contains("lập lúc 2019-12-02 01:00:00+07:00"));
        assert!(html.contains("size: A4 landscape"));
        let mut now = report();
        now.as_of_micros = None;
        assert!(to_html(&now).contains("số liệu tại thời điểm lập báo cáo"));
    }

    #[test]
    fn the_header_has_the_forms_levels() {
        let html = to_html(&report());
        let thead = &html[html.find("<thead>").unwrap()..html.find("</thead>").unwrap()];
        assert_eq!(thead.matches("<tr>").count(), 3);
        for cell in [
            "<th rowspan=\"3\">Mã</th>",
            "<th colspan=\"6\">Số hồ sơ nhận giải quyết</th>",
            "<th colspan=\"4\">Số hồ sơ đã giải quyết</th>",
            "<th colspan=\"3\">Số hồ sơ đang giải quyết</th>",
            "<th rowspan=\"2\">Kỳ trước chuyển qua</th>",
            "<th colspan=\"4\">Mới tiếp nhận</th>",
            "<th>Trực tuyến</th><th>Trực tiếp</th><th>Qua bưu chính công ích</th>",
            "<th rowspan=\"2\">Trước hạn</th>",
            "<th rowspan=\"3\">Từ chối tiếp nhận</th>",
            "<th rowspan=\"3\">Rút hồ sơ (trong số đã giải quyết)</th>",
            "<th rowspan=\"3\">Dừng xử lý (trong số đã giải quyết)</th>",
            "<th colspan=\"2\">Thư xin lỗi</th>",
            "<th rowspan=\"2\">Muộn</th>",
            "<th rowspan=\"3\">Điểm 766 (thang 100)</th>",
        ] {
            assert!(thead.contains(cell), "{cell} not in {thead}");
        }
    }

    #[test]
    fn rows_are_escaped_with_totals_bold() {
        let html = to_html(&report());
        let row = |code: &str| {
            let start = html.find(&format!("data-unit=\"{code}\">")).unwrap();
            html[start..].split("</tr>").next().unwrap().to_owned()
        };
        let snv = row("SNV");
        for cell in [
            "<td data-kpi=\"name\">Sở Nội vụ</td>",
            "<td class=\"num\" data-kpi=\"to_process\">46</td>",
            "<td class=\"num\" data-kpi=\"carried_over\">10</td>",
            "<td class=\"num\" data-kpi=\"received_new\">36</td>",
            "<td class=\"num\" data-kpi=\"resolved\">45</td>",
            "<td class=\"num\" data-kpi=\"open_overdue\">18</td>",
            "<td class=\"num\" data-kpi=\"apologies_late\">5</td>",
            "<td class=\"num\" data-kpi=\"score_766\">85.25</td>",
        ] {
            assert!(snv.contains(cell), "{cell} not in {snv}");
        }
        let stp = row("STP");
        assert!(stp.contains("Sở Tư pháp &lt;&quot;A&amp;B&quot;&gt;, &quot;số 2&quot;"), "{stp}");
        assert!(stp.contains("<td class=\"num\" data-kpi=\"score_766\"></td>"));
        assert!(!html.contains("<\"A&B\">"));
        assert!(html.contains("<tr class=\"unit\" data-unit=\"SNV\">"));
        assert!(html.contains("<tr class=\"group\" data-unit=\"department\">"));
        assert!(html.contains("<tr class=\"province\" data-unit=\"province\">"));
        assert!(html.contains("tr.group td, tr.province td { font-weight: bold;"));
        // The caller's order is kept.
        let order: Vec<usize> = ["SNV", "STP", "department", "province"]
            .iter()
            .map(|c| html.find(&format!("data-unit=\"{c}\"")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(escape("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }

    #[test]
    fn online_services_and_budget_and_staffing_are_tables_of_their_own() {
        let html = to_html(&report());
        let table = |id: &str| {
            let start = html.find(&format!("<table id=\"{id}\">")).unwrap_or_else(|| panic!("no table {id}"));
            html[start..].split("</table>").next().unwrap().to_owned()
        };
        let (form, online, admin) =
            (table("period-report"), table("period-report-online-services"), table("period-report-administration"));
        assert!(!form.contains("budget_allocated") && !form.contains("procedures_online_offered"));
        assert!(html.contains("<h2>DỊCH VỤ CÔNG TRỰC TUYẾN MỨC ĐỘ 3, 4</h2>"));
        assert!(html.contains("<h2>NGÂN SÁCH VÀ BIÊN CHẾ</h2>"));
        for cell in [
            "<th colspan=\"3\">Thủ tục cung cấp trực tuyến mức độ 3, 4</th>",
            "<th rowspan=\"3\">Hồ sơ có thủ tục ngoài danh mục</th>",
            "<td class=\"num\" data-kpi=\"procedures_online_offered\">4</td>",
            "<td class=\"num\" data-kpi=\"procedures_online_share\">50</td>",
            "<td class=\"num\" data-kpi=\"online_share_level34_procedures\">33.33</td>",
        ] {
            assert!(online.contains(cell), "{cell} not in {online}");
        }
        for cell in [
            "<th colspan=\"5\">Ngân sách (đồng)</th>",
            "<th colspan=\"6\">Biên chế</th>",
            "<th colspan=\"3\">Cấp phó</th>",
            "<td class=\"num\" data-kpi=\"fiscal_year\">2019</td>",
            "<td class=\"num\" data-kpi=\"budget_allocated\">2000000</td>",
            "<td class=\"num\" data-kpi=\"budget_execution\">25</td>",
            "<td class=\"num\" data-kpi=\"staff_reduction\">20</td>",
            "<td data-kpi=\"staff_reduction_behind\"></td>",
            "<td class=\"num\" data-kpi=\"deputies_over_limit\">1</td>",
        ] {
            assert!(admin.contains(cell), "{cell} not in {admin}");
        }
        // Every table has every row, its code and name first.
        for table in [&form, &online, &admin] {
            assert_eq!(table.matches("<tr class=").count(), 4);
            assert!(table.contains("<td data-kpi=\"code\">SNV</td><td data-kpi=\"name\">Sở Nội vụ</td>"));
        }
    }
}
