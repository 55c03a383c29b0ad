//! A minimal reader of the Prometheus text format, enough to look up samples by
//! name and labels: the tests and the benchmark harness read parpulse's /metrics over
//! HTTP as Prometheus would. Test support, not a library API (`publish = false`): it
//! reads what parpulse-export's exposition and the `prometheus` crate write and panics
//! on anything else (a malformed line is a bug in the exposition, not input to recover
//! from). No maintained crate fits: prometheus-parse merges a histogram's series into
//! one sample (the tests look `_bucket` and `_count` series up by name) and splits label
//! values at `=`; openmetrics-parser groups samples into families too.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(parse_line).collect()
}

fn parse_line(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("malformed sample line {line:?}"));
    let value: f64 = value.parse().unwrap_or_else(|_| panic!("malformed value in {line:?}"));
    let (name, labels) = match series.split_once('{') {
        None => (series.to_owned(), BTreeMap::new()),
        Some((name, rest)) => (name.to_owned(), parse_labels(rest.strip_suffix('}').expect("closing brace"))),
    };
    Sample { name, labels, value }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end..].trim_start_matches(',');
    }
    labels
}

/// The value of the one sample named `name` whose labels include all of `want`.
pub fn find(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<_> = samples
        .iter()
        .filter(|s| s.name == name && want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    assert!(matching.len() <= 1, "{name} {want:?} matches {} samples", matching.len());
    matching.first().map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_with_utf8_commas_and_escapes_parse() {
        let samples = parse(
            "# HELP x y\nparpulse_unit_info{name=\"Sở Văn hóa, Thể thao \\\"VH\\\"\",unit=\"SVHTTDL\"} 1\nplain 0.25\n",
        );
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].labels["name"], "Sở Văn hóa, Thể thao \"VH\"");
        assert_eq!(find(&samples, "parpulse_unit_info", &[("unit", "SVHTTDL")]), Some(1.0));
        assert_eq!(find(&samples, "plain", &[]), Some(0.25));
    }
}
