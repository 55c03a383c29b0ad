//! An independent recount of the dossier KPIs from the simulator's NDJSON file.
//!
//! Deliberately separate code from the aggregator: it reads the JSON as untyped
//! values and computes local days with its own arithmetic (Vietnam is UTC+7),
//! so a bug in parpulse's event types or bucket logic cannot hide here.

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recount {
    pub received: u64,
    pub online: u64,
    pub postal: u64,
}

/// (agency code, days since 1970-01-01 in UTC+7) -> counts.
pub type DayCounts = BTreeMap<(String, i64), Recount>;

pub fn local_day(utc_micros: i64) -> i64 {
    (utc_micros.div_euclid(1_000_000) + 7 * 3600).div_euclid(86_400)
}

pub fn recount_ndjson(text: &str) -> DayCounts {
    let mut counts = DayCounts::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line).expect("simulator wrote valid JSON");
        if event["type"] != "dossier" || event["kind"] != "received" {
            continue;
        }
        let agency = event["agency_code"].as_str().expect("agency_code").to_owned();
        let day = local_day(event["occurred_at"].as_i64().expect("occurred_at"));
        let entry = counts.entry((agency, day)).or_default();
        entry.received += 1;
        let level = event["online_level"].as_i64().expect("online_level");
        if event["channel"] == "online" && (level == 3 || level == 4) {
            entry.online += 1;
        }
        if event["channel"] == "postal" {
            entry.postal += 1;
        }
    }
    counts
}

/// Sum for one agency (or all, with `None`) over days `first..=last`.
pub fn window(counts: &DayCounts, agency: Option<&str>, first: i64, last: i64) -> Recount {
    let mut total = Recount::default();
    for ((code, day), c) in counts {
        if agency.is_none_or(|a| a == code) && (first..=last).contains(day) {
            total.received += c.received;
            total.online += c.online;
            total.postal += c.postal;
        }
    }
    total
}
