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
    stopped: Vec<i64>,
    withdrawn: Vec<i64>,
    refused: Vec<i64>,
    legal_max_days: Option<i64>,
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

/// What the rules make of one dossier, recounted from its events (docs/KPIS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgment {
    /// No `received` event and no refusal (e.g. only submitted).
    NotReceived,
    /// Refused at reception (rule c), on this local day: neither received nor resolved.
    Refused { day: i64 },
    /// Ended on local day `day`, by `kind` (rules a, g, i); `timely_apology` only for late
    /// ones (rule e), `no_apology` for late ones with no letter at all.
    Resolved {
        day: i64,
        kind: EndKind,
        early: bool,
        late: bool,
        timely_apology: bool,
        no_apology: bool,
        returned: bool,
    },
    /// Received and not ended; its deadline (UTC microseconds: appointment plus completed
    /// supplement waits) when it has one.
    Open { deadline: Option<i64> },
}

/// What ended a resolved dossier (rule g; a refusal after the reception ends it like a stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    Processed,
    Returned,
    Stopped,
    Withdrawn,
    /// Still waiting for a supplement: ended on the request date (rule a).
    SupplementPending,
}

/// One dossier, recounted: its reception facts and its judgment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DossierRecount {
    pub agency: String,
    /// The procedure code of its first reception (empty without one).
    pub procedure: String,
    /// Local day of its first reception (None: never received).
    pub received_day: Option<i64>,
    /// Channel of its first reception.
    pub received_channel: String,
    /// Received online at service level 3 or 4.
    pub received_online: bool,
    /// A result registered for return by post, on any event (rule h).
    pub result_postal: bool,
    pub fee_bearing: bool,
    pub paid_online: bool,
    pub digitized: bool,
    pub judgment: Judgment,
}

/// Recounts every dossier of the NDJSON, with the rules written out again here
/// (docs/KPIS.md): refused dossiers and dossiers never received are not resolved; end =
/// the first of processed-or-else-returned, stopped, withdrawn; a dossier still waiting
/// for a supplement ends on the request date; supplement waits extend the appointment
/// date of the first reception (or, without one, the end of the legal_max_days-th working
/// day); two requests or more = late; early = ended on a local day before the deadline's
/// day; a late dossier's apology is timely when its first letter was sent by the last
/// working day before the deadline's day (the deadline as it stood then).
pub fn recount_dossiers(text: &str) -> Vec<DossierRecount> {
    let calendar = WorkingDays::shipped();
    let mut dossiers: BTreeMap<(String, String), (DossierTimes, DossierRecount)> = BTreeMap::new();
    for e in events_of_type(text, "dossier") {
        let key = dossier_key(&e);
        let (d, facts) = dossiers.entry(key.clone()).or_insert_with(|| {
            let facts = DossierRecount {
                agency: key.0.clone(),
                procedure: String::new(),
                received_day: None,
                received_channel: String::new(),
                received_online: false,
                result_postal: false,
                fee_bearing: false,
                paid_online: false,
                digitized: false,
                judgment: Judgment::NotReceived,
            };
            (DossierTimes::default(), facts)
        });
        let at = e["occurred_at"].as_i64().unwrap();
        facts.result_postal |= e["result_channel"] == "postal";
        facts.fee_bearing |= e["fee_bearing"] == true;
        facts.digitized |= e["digitized"] == true;
        if let Some(days) = e["legal_max_days"].as_i64() {
            d.legal_max_days = Some(d.legal_max_days.map_or(days, |kept| kept.min(days)));
        }
        match e["kind"].as_str().unwrap() {
            "received" => {
                let due = e["due_at"].as_i64();
                // The first reception (the earliest; at one instant the earliest appointment).
                if d.received.iter().all(|&(t, u)| (at, due.unwrap_or(i64::MAX)) < (t, u.unwrap_or(i64::MAX))) {
                    facts.procedure = e["procedure_code"].as_str().unwrap_or_default().to_owned();
                    facts.received_channel = e["channel"].as_str().unwrap_or_default().to_owned();
                    let level = e["online_level"].as_i64().unwrap_or_default();
                    facts.received_online = facts.received_channel == "online" && (level == 3 || level == 4);
                    facts.received_day = Some(local_day(at));
                }
                d.received.push((at, due));
            }
            "supplement_requested" => d.requested.push(at),
            "supplement_received" => d.supplied.push(at),
            "processed" => d.processed.push(at),
            "result_returned" => d.returned.push(at),
            "stopped" => d.stopped.push(at),
            "withdrawn" => d.withdrawn.push(at),
            "refused" => d.refused.push(at),
            "apology_issued" => d.apologies.push(at),
            "paid_online" => facts.paid_online = true,
            _ => {}
        }
    }
    dossiers
        .into_values()
        .map(|(d, mut facts)| {
            facts.judgment = judge(d, &calendar);
            facts
        })
        .collect()
}

/// The judgment of one dossier's times (see [`recount_dossiers`]).
fn judge(mut d: DossierTimes, calendar: &WorkingDays) -> Judgment {
    d.received.sort_unstable_by_key(|&(at, due)| (at, due.unwrap_or(i64::MAX)));
    if let Some(&refused) = d.refused.iter().min() {
        // Refused at (or without) reception: counted apart. Refused after a reception:
        // the dossier was received, so the refusal ends it like a stop.
        if d.received.first().is_none_or(|&(received, _)| refused <= received) {
            return Judgment::Refused { day: local_day(refused) };
        }
        d.stopped.push(refused);
    }
    let Some(&(received_at, appointment)) = d.received.first() else { return Judgment::NotReceived };
    // The appointment date of the first reception; without one, the end of the
    // legal_max_days-th working day after the reception's local day.
    let due = appointment.or_else(|| {
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
    // The first of processed (else returned), stopped, withdrawn; on a tie, in that order.
    let first = |times: &[i64], kind| times.iter().min().map(|at| (*at, kind));
    let first_end = first(&d.processed, EndKind::Processed).or(first(&d.returned, EndKind::Returned));
    let ends = [first_end, first(&d.stopped, EndKind::Stopped), first(&d.withdrawn, EndKind::Withdrawn)];
    let end = ends.into_iter().flatten().min_by_key(|(at, _)| *at);
    let (waited, pending) = waits(end.map_or(i64::MAX, |(at, _)| at));
    let Some((end, kind)) = end.or(pending.map(|at| (at, EndKind::SupplementPending))) else {
        return Judgment::Open { deadline: due.map(|due| due + waited) };
    };
    let requests = d.requested.iter().filter(|r| **r <= end).count();
    let late = requests > 1 || due.is_some_and(|due| end > due + waited);
    let early = !late && due.is_some_and(|due| local_day(end) < local_day(due + waited));
    let timely_apology = late
        && d.apologies.iter().min().is_some_and(|&sent| {
            let Some(due) = due else { return true };
            let deadline_day = local_day(due + waits(sent).0);
            let mut last_working = deadline_day - 1;
            while !calendar.is_working(last_working) {
                last_working -= 1;
            }
            local_day(sent) <= last_working
        });
    let no_apology = late && d.apologies.is_empty();
    let returned = !d.returned.is_empty();
    Judgment::Resolved { day: local_day(end), kind, early, late, timely_apology, no_apology, returned }
}

/// Recounts, from the NDJSON, (agency, end day) -> lateness counts ([`recount_dossiers`]),
/// and open dossiers per agency.
pub fn recount_resolved(text: &str) -> (BTreeMap<(String, i64), ResolvedRecount>, BTreeMap<String, u64>) {
    let mut resolved: BTreeMap<(String, i64), ResolvedRecount> = BTreeMap::new();
    let mut open: BTreeMap<String, u64> = BTreeMap::new();
    for d in recount_dossiers(text) {
        match d.judgment {
            Judgment::NotReceived => {}
            Judgment::Refused { day } => resolved.entry((d.agency, day)).or_default().refused += 1,
            Judgment::Open { .. } => *open.entry(d.agency).or_default() += 1,
            Judgment::Resolved { day, late, timely_apology, returned, .. } => {
                let c = resolved.entry((d.agency, day)).or_default();
                c.resolved += 1;
                c.late += u64::from(late);
                c.on_time += u64::from(!late);
                c.late_with_apology += u64::from(timely_apology);
                c.returned += u64::from(returned);
                c.returned_postal += u64::from(returned && d.result_postal);
            }
        }
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
    let mut out: BTreeMap<(String, i64), [u64; 4]> = BTreeMap::new();
    for d in recount_dossiers(text) {
        let Some(day) = d.received_day else { continue };
        let c = out.entry((d.agency, day)).or_default();
        c[0] += 1;
        c[1] += u64::from(d.fee_bearing);
        c[2] += u64::from(d.fee_bearing && d.paid_online);
        c[3] += u64::from(d.digitized);
    }
    out
}

/// The shipped procedure catalogue (deploy/procedures.toml), read by a scan of its lines
/// (not with parpulse's parser): (unit, procedure code) -> the online level the unit
/// offers it at (2, 3 or 4).
pub fn procedure_levels() -> BTreeMap<(String, String), i64> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/procedures.toml")).unwrap();
    let mut levels = BTreeMap::new();
    let (mut code, mut level, mut units) = (String::new(), 0, Vec::<String>::new());
    let mut flush = |code: &str, level: i64, units: &mut Vec<String>| {
        for unit in units.drain(..) {
            assert!(levels.insert((unit, code.to_owned()), level).is_none(), "{code} listed twice for a unit");
        }
    };
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let quoted = || line.split('"').skip(1).step_by(2).map(str::to_owned);
        if line == "[[procedure]]" {
            flush(&code, level, &mut units);
        } else if let Some(value) = line.strip_prefix("code =") {
            code = value.trim().trim_matches('"').to_owned();
        } else if let Some(value) = line.strip_prefix("level =") {
            level = value.trim().parse().expect("a numeric level");
        } else if line.starts_with("units =") {
            units = quoted().collect();
        }
    }
    flush(&code, level, &mut units);
    levels
}
