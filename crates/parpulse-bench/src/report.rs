//! Figures of a run: medians of repeated measurements, ratios, a Markdown table.

use std::fmt::Write as _;

/// The median of repeated measurements (the machine is shared and noisy).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// One line of the report.
pub struct Row {
    pub what: String,
    pub unit: &'static str,
    pub runs: Vec<f64>,
    pub note: String,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub lines: Vec<String>,
}

impl Report {
    pub fn add(&mut self, what: impl Into<String>, unit: &'static str, runs: Vec<f64>, note: impl Into<String>) -> f64 {
        let value = median(&runs);
        let row = Row { what: what.into(), unit, runs, note: note.into() };
        println!("{:<58} {:>14} {:<10} {}", row.what, format_value(value), row.unit, row.note);
        self.rows.push(row);
        value
    }

    pub fn line(&mut self, text: impl Into<String>) {
        let text = text.into();
        println!("{text}");
        self.lines.push(text);
    }

    pub fn markdown(&self, header: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{header}\n");
        let _ = writeln!(out, "| measurement | median | unit | runs | note |");
        let _ = writeln!(out, "|---|---:|---|---|---|");
        for row in &self.rows {
            let runs: Vec<String> = row.runs.iter().map(|v| format_value(*v)).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.what,
                format_value(median(&row.runs)),
                row.unit,
                runs.join(", "),
                row.note
            );
        }
        if !self.lines.is_empty() {
            out.push('\n');
            for line in &self.lines {
                let _ = writeln!(out, "- {line}");
            }
        }
        out
    }
}

pub fn format_value(value: f64) -> String {
    if !value.is_finite() {
        "—".to_owned()
    } else if value.abs() >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if rounded < 0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn values_print_with_thousands_separators() {
        assert_eq!(format_value(1_234_567.4), "1,234,567");
        assert_eq!(format_value(0.8123), "0.812");
        assert_eq!(format_value(42.25), "42.2");
    }
}
