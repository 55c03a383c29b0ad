//! The report as CSV for spreadsheets: UTF-8 with a byte-order mark (so Excel
//! reads the Vietnamese right), CRLF line ends, one header line, one line a row
//! holding every section's columns (the form's, then the online services', then
//! budget and staffing), so a script reads one record per unit.

use super::{all_columns, PeriodReport};

/// A field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn line(out: &mut String, fields: impl Iterator<Item = String>) {
    let fields: Vec<String> = fields.map(|f| field(&f)).collect();
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

/// The report as CSV: Vietnamese headers (levels joined by " - "), counts as
/// integers with the derived totals, the Decision 766 score out of 100 with a '.'
/// (empty when the period has no data for it).
pub fn to_csv(report: &PeriodReport) -> String {
    let columns = all_columns();
    let mut out = String::from("\u{feff}");
    line(&mut out, columns.iter().map(|c| c.flat_header()));
    for row in &report.rows {
        line(&mut out, columns.iter().map(|c| (c.value)(row).text()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::report;
    use super::*;

    #[test]
    fn bom_crlf_and_vietnamese_headers() {
        let csv = to_csv(&report());
        assert!(csv.starts_with("\u{feff}Mã,Đơn vị,Phạm vi,"), "{csv}");
        assert!(csv.ends_with("\r\n"));
        assert_eq!(csv.matches("\r\n").count(), 1 + 4, "a header and four rows");
        assert_eq!(csv.matches('\n').count(), csv.matches("\r\n").count(), "no bare LF");
        let header = csv.trim_start_matches('\u{feff}').split("\r\n").next().unwrap();
        assert_eq!(
            header,
            "Mã,Đơn vị,Phạm vi,\
             Số hồ sơ nhận giải quyết - Tổng số,\
             Số hồ sơ nhận giải quyết - Kỳ trước chuyển qua,\
             Số hồ sơ nhận giải quyết - Mới tiếp nhận - Tổng số,\
             Số hồ sơ nhận giải quyết - Mới tiếp nhận - Trực tuyến,\
             Số hồ sơ nhận giải quyết - Mới tiếp nhận - Trực tiếp,\
             Số hồ sơ nhận giải quyết - Mới tiếp nhận - Qua bưu chính công ích,\
             Số hồ sơ đã giải quyết - Tổng số,Số hồ sơ đã giải quyết - Trước hạn,\
             Số hồ sơ đã giải quyết - Đúng hạn,Số hồ sơ đã giải quyết - Quá hạn,\
             Số hồ sơ đang giải quyết - Tổng số,Số hồ sơ đang giải quyết - Trong hạn,\
             Số hồ sơ đang giải quyết - Quá hạn,\
             Từ chối tiếp nhận,Rút hồ sơ (trong số đã giải quyết),Dừng xử lý (trong số đã giải quyết),\
             Kết quả trả qua bưu chính công ích,Thư xin lỗi - Đúng hạn,Thư xin lỗi - Muộn,Điểm 766 (thang 100),\
             \"Thủ tục cung cấp trực tuyến mức độ 3, 4 - Số thủ tục\",\
             \"Thủ tục cung cấp trực tuyến mức độ 3, 4 - Có phát sinh hồ sơ trực tuyến\",\
             \"Thủ tục cung cấp trực tuyến mức độ 3, 4 - Tỷ lệ có phát sinh hồ sơ (%)\",\
             \"Hồ sơ của thủ tục cung cấp trực tuyến mức độ 3, 4 - Tiếp nhận\",\
             \"Hồ sơ của thủ tục cung cấp trực tuyến mức độ 3, 4 - Trực tuyến\",\
             \"Hồ sơ của thủ tục cung cấp trực tuyến mức độ 3, 4 - Tỷ lệ trực tuyến (%)\",\
             Hồ sơ có thủ tục ngoài danh mục,Năm ngân sách,\
             Ngân sách (đồng) - Dự toán được giao,Ngân sách (đồng) - Đã cam kết chi,Ngân sách (đồng) - Đã giải ngân,\
             Ngân sách (đồng) - Tiết kiệm chi,Ngân sách (đồng) - Đã công khai,\
             So với dự toán được giao (%) - Giải ngân,So với dự toán được giao (%) - Tiết kiệm chi,\
             So với dự toán được giao (%) - Công khai,\
             Biên chế - Được giao,Biên chế - Có mặt,Biên chế - Được giao năm 2015,Biên chế - Tinh giản so với 2015 (%),\
             Biên chế - Mức lộ trình (%),Biên chế - Chậm lộ trình,\
             Cấp phó - Hiện có,Cấp phó - Theo quy định,Cấp phó - Vượt quy định"
        );
    }

    #[test]
    fn a_row_holds_counts_derived_totals_and_the_score() {
        let csv = to_csv(&report());
        let lines: Vec<&str> = csv.split("\r\n").collect();
        // SNV: carried 10, online 11, in person 12, postal 13, early 14, on time 15,
        // late 16, withdrawn 1, stopped 2, refused 3, open 17 + 18, apologies 4 and 5.
        // Then procedures: 4 offered at level 3/4, 2 with an online dossier (50%), 9
        // receptions of them, 3 online (33.33%), 1 of a procedure not in the catalogue;
        // budget 2019: 2,000,000 allocated, 800,000 committed, 500,000 disbursed (25%),
        // 20,000 saved (1%), 1,000,000 disclosed (50%); staff 100 of 125 in 2015 (20%
        // fewer), 90 filled, no roadmap line in 2019; deputies 4 of 3, 1 over.
        assert_eq!(
            lines[1],
            "SNV,Sở Nội vụ,Đơn vị,46,10,36,11,12,13,45,14,15,16,35,17,18,3,1,2,6,4,5,85.25,\
             4,2,50,9,3,33.33,1,\
             2019,2000000,800000,500000,20000,1000000,25,1,50,100,90,125,20,,,4,3,1"
        );
        // Quotes and commas are quoted; no score is an empty field. STP (seed 20) has twice
        // SNV's procedures, budget and staffing.
        assert_eq!(
            lines[2],
            "STP,\"Sở Tư pháp <\"\"A&B\"\">, \"\"số 2\"\"\",Đơn vị,86,20,66,21,22,23,75,24,25,26,55,27,28,3,1,2,6,4,5,,\
             8,4,50,18,6,33.33,2,\
             2019,4000000,1600000,1000000,40000,2000000,25,1,50,200,180,250,20,,,8,6,2"
        );
        assert!(lines[3].starts_with("department,\"Khối sở, ban, ngành\",Khối,132,30,102,"), "{}", lines[3]);
        assert!(lines[3].contains(",90,12,6,50,27,9,33.33,3,2019,6000000,"), "{}", lines[3]);
        assert!(lines[4].starts_with("province,Tỉnh Hưng Yên,Toàn tỉnh,132,"));
        assert!(lines[4].contains(",100,12,"), "{}", lines[4]);
        assert!(lines[4].ends_with(",300,270,375,20,,,12,9,3"), "{}", lines[4]);
        assert_eq!(lines[5], "");
    }
}
