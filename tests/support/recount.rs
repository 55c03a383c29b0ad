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

/// The events of one `type` in the NDJSON, as untyped JSON values.
fn events_of_type<'a>(text: &'a str, kind: &'a str) -> impl Iterator<Item = serde_json::Value> + 'a {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("simulator wrote valid JSON"))
        .filter(move |e| e["type"] == kind)
}

/// (agency code, dossier id) of a dossier event.
fn dossier_key(e: &serde_json::Value) -> (String, String) {
    (
        e["agency_code"].as_str().expect("agency_code").to_owned(),
        e["dossier_id"].as_str().expect("dossier_id").to_owned(),
    )
}

pub fn local_day(utc_micros: i64) -> i64 {
    (utc_micros.div_euclid(1_000_000) + 7 * 3600).div_euclid(86_400)
}

pub fn recount_ndjson(text: &str) -> DayCounts {
    let mut counts = DayCounts::new();
    for event in events_of_type(text, "dossier") {
        if event["kind"] != "received" {
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

/// Lateness counts of one unit on one end day, recounted from the raw events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedRecount {
    pub resolved: u64,
    pub on_time: u64,
    pub late: u64,
    pub late_with_apology: u64,
    /// Refused at reception, on the day refused (apart from resolved).
    pub refused: u64,
    pub returned: u64,
    pub returned_postal: u64,
}

#[derive(Default)]
struct DossierTimes {
    /// (time, appointment date) of each `received` event.
    received: Vec<(i64, Option<i64>)>,
    requested: Vec<i64>,
    supplied: Vec<i64>,
    processed: Vec<i64>,
    returned: Vec<i64>,
    stopped_or_withdrawn: Vec<i64>,
    refused: Vec<i64>,
    legal_max_days: Option<i64>,
    result_postal: bool,
    apologies: Vec<i64>,
}

/// The province's working days, read from deploy/holidays.toml by a scan of its date
/// lists (not with parpulse's calendar): Monday to Friday except `days_off`, plus
/// `working_saturdays`. Local days since 1970-01-01.
pub struct WorkingDays {
    off: std::collections::BTreeSet<i64>,
    worked_weekend: std::collections::BTreeSet<i64>,
}

impl WorkingDays {
    pub fn shipped() -> WorkingDays {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/holidays.toml")).unwrap();
        let (mut off, mut worked_weekend) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        let mut in_working_saturdays = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap();
            if line.contains("days_off") {
                in_working_saturdays = false;
            }
            if line.contains("working_saturdays") {
                in_working_saturdays = true;
            }
            for quoted in line.split('"').skip(1).step_by(2) {
                if let Ok(date) = chrono::NaiveDate::parse_from_str(quoted, "%Y-%m-%d") {
                    let day = (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days();
                    if in_working_saturdays {
                        worked_weekend.insert(day)
                    } else {
                        off.insert(day)
                    };
                }
            }
        }
        WorkingDays { off, worked_weekend }
    }

    pub fn is_working(&self, day: i64) -> bool {
        let weekday = (day + 3).rem_euclid(7); // 1970-01-01 was a Thursday; Monday = 0
        (weekday < 5 && !self.off.contains(&day)) || self.worked_weekend.contains(&day)
    }
}

/// Recounts, from the NDJSON, (agency, end day) -> lateness counts, with the rules
/// written out again here (docs/KPIS.md): refused dossiers and dossiers never received
/// are not resolved; end = the first of processed-or-else-returned, stopped, withdrawn;
/// a dossier still waiting for a supplement ends on the request date; supplement waits
/// extend the appointment date of the first reception; two requests or more = late;
/// late with apology = the first apology sent by the last working day before the
/// deadline's day. Also returns open dossiers per agency.
pub fn recount_resolved(text: &str) -> (BTreeMap<(String, i64), ResolvedRecount>, BTreeMap<String, u64>) {
    let calendar = WorkingDays::shipped();
    let mut dossiers: BTreeMap<(String, String), DossierTimes> = BTreeMap::new();
    for e in events_of_type(text, "dossier") {
        let d = dossiers.entry(dossier_key(&e)).or_default();
        let at = e["occurred_at"].as_i64().unwrap();
        d.result_postal |= e["result_channel"] == "postal";
        if let Some(days) = e["legal_max_days"].as_i64() {
            d.legal_max_days = Some(d.legal_max_days.map_or(days, |kept| kept.min(days)));
        }
        match e["kind"].as_str().unwrap() {
            "received" => d.received.push((at, e["due_at"].as_i64())),
            "supplement_requested" => d.requested.push(at),
            "supplement_received" => d.supplied.push(at),
            "processed" => d.processed.push(at),
            "result_returned" => d.returned.push(at),
            "stopped" | "withdrawn" => d.stopped_or_withdrawn.push(at),
            "refused" => d.refused.push(at),
            "apology_issued" => d.apologies.push(at),
            _ => {}
        }
    }
    let mut resolved: BTreeMap<(String, i64), ResolvedRecount> = BTreeMap::new();
    let mut open: BTreeMap<String, u64> = BTreeMap::new();
    for ((agency, _), mut d) in dossiers {
        d.received.sort_unstable_by_key(|&(at, due)| (at, due.unwrap_or(i64::MAX)));
        if let Some(&refused) = d.refused.iter().min() {
            // Refused at (or without) reception: counted apart. Refused after a reception:
            // the dossier was received, so the refusal ends it like a stop.
            if d.received.first().is_none_or(|&(received, _)| refused <= received) {
                resolved.entry((agency, local_day(refused))).or_default().refused += 1;
                continue;
            }
            d.stopped_or_withdrawn.push(refused);
        }
        if d.received.is_empty() {
            continue;
        }
        let received_at = d.received[0].0;
        // The appointment date of the first reception; without one, the end of the
        // legal_max_days-th working day after the reception's local day.
        let due = d.received[0].1.or_else(|| {
            d.legal_max_days.map(|days| {
                let mut day = local_day(received_at);
                let mut left = days;
                while left > 0 {
                    day += 1;
                    left -= i64::from(calendar.is_working(day));
                }
                (day + 1) * 86_400_000_000 - 7 * 3_600_000_000 - 1
            })
        });
        d.requested.sort_unstable();
        d.requested.dedup();
        d.supplied.sort_unstable();
        d.supplied.dedup();
        // Waits completed by `until`, and whether a request is still waiting then: each
        // request takes the first completion at or after it that no earlier request took.
        let waits = |until: i64| {
            let mut waited = 0;
            let mut next = 0;
            for request in d.requested.iter().filter(|r| **r <= until) {
                while d.supplied.get(next).is_some_and(|done| done < request) {
                    next += 1;
                }
                match d.supplied.get(next) {
                    Some(done) if *done <= until => {
                        waited += done - request;
                        next += 1;
                    }
                    _ => return (waited, Some(*request)),
                }
            }
            (waited, None)
        };
        let first_end = d.processed.iter().min().or(d.returned.iter().min()).copied();
        let end = first_end.into_iter().chain(d.stopped_or_withdrawn.iter().copied()).min();
        let (waited, pending) = waits(end.unwrap_or(i64::MAX));
        let Some(end) = end.or(pending) else {
            *open.entry(agency).or_default() += 1;
            continue;
        };
        let requests = d.requested.iter().filter(|r| **r <= end).count();
        let late = requests > 1 || due.is_some_and(|due| end > due + waited);
        let c = resolved.entry((agency, local_day(end))).or_default();
        c.resolved += 1;
        if late {
            c.late += 1;
            let timely = d.apologies.iter().min().is_some_and(|&sent| {
                let Some(due) = due else { return true };
                let deadline_day = local_day(due + waits(sent).0);
                let mut last_working = deadline_day - 1;
                while !calendar.is_working(last_working) {
                    last_working -= 1;
                }
                local_day(sent) <= last_working
            });
            c.late_with_apology += u64::from(timely);
        } else {
            c.on_time += 1;
        }
        c.returned += u64::from(!d.returned.is_empty());
        c.returned_postal += u64::from(!d.returned.is_empty() && d.result_postal);
    }
    (resolved, open)
}

/// Budget sums per (agency, fiscal year), each event id counted once:
/// [allocated, committed, disbursed, saved, disclosed] in VND.
pub fn recount_budget(text: &str) -> BTreeMap<(String, i32), [i64; 5]> {
    let mut seen = std::collections::BTreeSet::new();
    let mut sums: BTreeMap<(String, i32), [i64; 5]> = BTreeMap::new();
    for e in events_of_type(text, "budget") {
        if !seen.insert(e["event_id"].as_str().unwrap().to_owned()) {
            continue;
        }
        let slot = match e["kind"].as_str().unwrap() {
            "allocated" => 0,
            "committed" => 1,
            "disbursed" => 2,
            "saved" => 3,
            "disclosed" => 4,
            other => panic!("unknown budget kind {other}"),
        };
        let key = (e["agency_code"].as_str().unwrap().to_owned(), e["fiscal_year"].as_i64().unwrap() as i32);
        sums.entry(key).or_default()[slot] += e["amount_vnd"].as_i64().unwrap();
    }
    sums
}

/// (quota, filled, baseline quota) of one snapshot.
pub type Headcount = (i32, i32, i32);

/// The newest headcount snapshot per (agency, position).
pub fn recount_headcounts(text: &str) -> BTreeMap<(String, String), Headcount> {
    let mut newest: BTreeMap<(String, String), (i64, Headcount)> = BTreeMap::new();
    for e in events_of_type(text, "staffing") {
        if e["kind"] != "headcount_snapshot" {
            continue;
        }
        let key = (e["agency_code"].as_str().unwrap().to_owned(), e["position"].as_str().unwrap().to_owned());
        let at = e["occurred_at"].as_i64().unwrap();
        let value = |f: &str| e[f].as_i64().map_or(-1, |v| v as i32);
        let entry = (at, (value("quota"), value("filled"), value("baseline_quota")));
        if newest.get(&key).is_none_or(|(t, _)| at > *t) {
            newest.insert(key, entry);
        }
    }
    newest.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

/// Per (agency, reception day): (received, fee-bearing, paid online, digitized), for
/// dossiers with a `received` event, dated by their first reception.
pub fn recount_service(text: &str) -> BTreeMap<(String, i64), [u64; 4]> {
    #[derive(Default)]
    struct Facts {
        first_received: Option<i64>,
        fee_bearing: bool,
        paid_online: bool,
        digitized: bool,
    }
    let mut dossiers: BTreeMap<(String, String), Facts> = BTreeMap::new();
    for e in events_of_type(text, "dossier") {
        let d = dossiers.entry(dossier_key(&e)).or_default();
        d.fee_bearing |= e["fee_bearing"] == true;
        d.digitized |= e["digitized"] == true;
        match e["kind"].as_str().unwrap() {
            "paid_online" => d.paid_online = true,
            "received" => {
                let at = e["occurred_at"].as_i64().unwrap();
                d.first_received = Some(d.first_received.map_or(at, |t| t.min(at)));
            }
            _ => {}
        }
    }
    let mut out: BTreeMap<(String, i64), [u64; 4]> = BTreeMap::new();
    for ((agency, _), d) in dossiers {
        let Some(at) = d.first_received else { continue };
        let c = out.entry((agency, local_day(at))).or_default();
        c[0] += 1;
        c[1] += u64::from(d.fee_bearing);
        c[2] += u64::from(d.fee_bearing && d.paid_online);
        c[3] += u64::from(d.digitized);
    }
    out
}
