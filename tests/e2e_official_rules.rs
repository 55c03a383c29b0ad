//! Golden, hand-computed cases for the official counting rules (issue 12 item 1,
//! issue 18 item 2; the rules a-i of docs/KPIS.md).
//!
//! One department (STP, Sở Tư pháp) gets a hand-made October-December 2019 through
//! the real HTTP intake; an aggregator applies it; `parpulse report --period` writes
//! the periods 2019-10, 2019-11 and 2019-12 as CSV, and the unit's row is compared,
//! column by column (looked up by header name), with numbers computed by hand from
//! the rules; then the quarter and its last month on /metrics (`last_quarter`,
//! `last_month`) from an exporter with a fixed clock. Nothing here calls parpulse's rule code (lifecycle, kpi, calendar): the
//! expectations are written out with their arithmetic, so a change in the code that
//! breaks a rule shows up here, and a disagreement is for a person to settle.
//!
//! Local time is Asia/Ho_Chi_Minh (UTC+7); times below are local. Calendar used:
//! October 2019 starts on a Tuesday, November on a Friday, December on a Sunday;
//! deploy/holidays.toml has no day off between 1 October 2019 and 31 December 2019
//! (the 2019 ones end with 2 September), so the working days here are Monday-Friday.

use std::collections::BTreeMap;
use std::time::Duration;

use parpulse_tests::prom_text::{find, parse, Sample};
use parpulse_tests::{parpulse_command, start_intake, TestEnv, PROVINCE_TOKEN};
use serde_json::{json, Value};

/// The department all events are for (deploy/agencies.toml, group "department").
const UNIT: &str = "STP";

// CSV headers (crates/parpulse-export/src/period_report/mod.rs, levels joined by " - ").
const TO_PROCESS: &str = "Số hồ sơ nhận giải quyết - Tổng số";
const CARRIED: &str = "Số hồ sơ nhận giải quyết - Kỳ trước chuyển qua";
const NEW: &str = "Số hồ sơ nhận giải quyết - Mới tiếp nhận - Tổng số";
const ONLINE: &str = "Số hồ sơ nhận giải quyết - Mới tiếp nhận - Trực tuyến";
const IN_PERSON: &str = "Số hồ sơ nhận giải quyết - Mới tiếp nhận - Trực tiếp";
const POSTAL: &str = "Số hồ sơ nhận giải quyết - Mới tiếp nhận - Qua bưu chính công ích";
const RESOLVED: &str = "Số hồ sơ đã giải quyết - Tổng số";
const EARLY: &str = "Số hồ sơ đã giải quyết - Trước hạn";
const ON_TIME: &str = "Số hồ sơ đã giải quyết - Đúng hạn";
const LATE: &str = "Số hồ sơ đã giải quyết - Quá hạn";
const IN_PROGRESS: &str = "Số hồ sơ đang giải quyết - Tổng số";
const WITHIN: &str = "Số hồ sơ đang giải quyết - Trong hạn";
const OVERDUE: &str = "Số hồ sơ đang giải quyết - Quá hạn";
const REFUSED: &str = "Từ chối tiếp nhận";
const WITHDRAWN: &str = "Rút hồ sơ (trong số đã giải quyết)";
const STOPPED: &str = "Dừng xử lý (trong số đã giải quyết)";
const APOLOGY_TIMELY: &str = "Thư xin lỗi - Đúng hạn";
const APOLOGY_LATE: &str = "Thư xin lỗi - Muộn";
const RESULT_POSTAL: &str = "Kết quả trả qua bưu chính công ích";

/// Every count column of the report.
const COUNT_COLUMNS: [&str; 19] = [
    TO_PROCESS,
    CARRIED,
    NEW,
    ONLINE,
    IN_PERSON,
    POSTAL,
    RESOLVED,
    EARLY,
    ON_TIME,
    LATE,
    IN_PROGRESS,
    WITHIN,
    OVERDUE,
    REFUSED,
    WITHDRAWN,
    STOPPED,
    APOLOGY_TIMELY,
    APOLOGY_LATE,
    RESULT_POSTAL,
];

/// `"2019-11-05 08:00"`, local time (UTC+7), as UTC microseconds.
fn t(local: &str) -> i64 {
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").expect("a local time");
    naive.and_utc().timestamp_micros() - 7 * 3_600_000_000
}

/// A dossier's fixed fields, from which its events are made.
struct Dossier {
    id: &'static str,
    channel: &'static str,
    online_level: i32,
    /// Appointment date (`due_at`), local time; None: the legal maximum decides.
    due: Option<&'static str>,
    legal_max_days: Option<i32>,
}

impl Dossier {
    fn event(&self, kind: &str, at: &str) -> Value {
        let mut event = json!({
            "type": "dossier", "event_id": uuid::Uuid::new_v4().to_string(), "agency_code": UNIT,
            "occurred_at": t(at), "dossier_id": self.id, "procedure_code": "1.001234", "kind": kind,
            "channel": self.channel, "online_level": self.online_level,
            "fee_bearing": false, "digitized": true
        });
        if let Some(due) = self.due {
            event["due_at"] = json!(t(due));
        }
        if let Some(days) = self.legal_max_days {
            event["legal_max_days"] = json!(days);
        }
        event
    }
}

const fn due(id: &'static str, channel: &'static str, online_level: i32, due: &'static str) -> Dossier {
    Dossier { id, channel, online_level, due: Some(due), legal_max_days: None }
}

fn with(mut event: Value, field: &str, value: Value) -> Value {
    event[field] = value;
    event
}

/// The hand-made three months. Each dossier says what it is for; the expected
/// numbers per period are in `expected_*` below.
struct Scenario {
    /// Events posted in time order (the intake's normal flow).
    in_order: Vec<Value>,
    /// D04's apology, posted BEFORE D04's reception (rule b).
    apology_before_reception: Value,
    /// D04's reception, the point before which the apology is posted.
    d04_received_at: i64,
    /// D09's reception with an appointment before itself (rule d): refused by the intake.
    bad_deadline_id: String,
    /// D15's reception, posted a second time with the same event id.
    duplicate: Value,
}

fn scenario() -> Scenario {
    let mut ev = Vec::new();

    // D01: October only. In person, received Mon 14/10 09:00, appointment Mon 21/10 17:00,
    // processed Fri 18/10 15:00, result returned Mon 21/10.
    let d01 = due("OR-D01", "in_person", 2, "2019-10-21 17:00");
    ev.push(d01.event("received", "2019-10-14 09:00"));
    ev.push(d01.event("processed", "2019-10-18 15:00"));
    ev.push(d01.event("result_returned", "2019-10-21 09:00"));

    // D02: carried into November, withdrawn there (rule g: withdrawal ends it).
    // Online, received Mon 28/10 09:00, appointment Tue 05/11 17:00, withdrawn Tue 05/11 09:00.
    let d02 = due("OR-D02", "online", 3, "2019-11-05 17:00");
    ev.push(d02.event("received", "2019-10-28 09:00"));
    ev.push(d02.event("withdrawn", "2019-11-05 09:00"));

    // D03: carried into November, then waiting for a supplement requested after the
    // appointment (rule a). In person, received Tue 29/10 10:00, appointment Mon 04/11 17:00,
    // supplement requested Wed 06/11 09:00, never supplied.
    let d03 = due("OR-D03", "in_person", 2, "2019-11-04 17:00");
    ev.push(d03.event("received", "2019-10-29 10:00"));
    ev.push(d03.event("supplement_requested", "2019-11-06 09:00"));

    // D04: an apology with a later date never moves the appointment (rule b), and is
    // timely (rule e). In person, received Tue 05/11 08:00, appointment Tue 12/11 17:00;
    // apology Mon 11/11 09:00 giving Wed 20/11 17:00 (as new_due_at and as due_at),
    // posted before the reception; processed Mon 18/11 14:00.
    let d04 = due("OR-D04", "in_person", 2, "2019-11-12 17:00");
    let d04_received = d04.event("received", "2019-11-05 08:00");
    let d04_received_at = t("2019-11-05 08:00");
    ev.push(d04_received);
    let apology_before_reception = with(
        with(d04.event("apology_issued", "2019-11-11 09:00"), "due_at", json!(t("2019-11-20 17:00"))),
        "new_due_at",
        json!(t("2019-11-20 17:00")),
    );
    ev.push(d04.event("processed", "2019-11-18 14:00"));

    // D05: an apology sent on a Saturday before a Monday appointment is late (rule e).
    // Online, received Mon 11/11 09:00, appointment Mon 18/11 17:00; apology Sat 16/11 10:00
    // (new date Fri 22/11 17:00); processed Wed 20/11 10:00.
    let d05 = due("OR-D05", "online", 4, "2019-11-18 17:00");
    ev.push(d05.event("received", "2019-11-11 09:00"));
    ev.push(with(d05.event("apology_issued", "2019-11-16 10:00"), "new_due_at", json!(t("2019-11-22 17:00"))));
    ev.push(d05.event("processed", "2019-11-20 10:00"));

    // D06: one completed supplement extends the appointment by its duration (rule a).
    // In person, received Mon 04/11 08:00, appointment Fri 08/11 17:00; supplement requested
    // Wed 06/11 09:00, supplied Mon 11/11 09:00 (120 h); processed Wed 13/11 10:00.
    let d06 = due("OR-D06", "in_person", 2, "2019-11-08 17:00");
    ev.push(d06.event("received", "2019-11-04 08:00"));
    ev.push(d06.event("supplement_requested", "2019-11-06 09:00"));
    ev.push(d06.event("supplement_received", "2019-11-11 09:00"));
    ev.push(d06.event("processed", "2019-11-13 10:00"));

    // D07: two supplement requests make a dossier late (rule a), however early it ends.
    // Online, received Mon 04/11 09:00, appointment Fri 22/11 17:00; requests Tue 05/11 and
    // Thu 07/11, supplied Wed 06/11 and Fri 08/11 (09:00 each); processed Fri 15/11 10:00.
    let d07 = due("OR-D07", "online", 3, "2019-11-22 17:00");
    ev.push(d07.event("received", "2019-11-04 09:00"));
    ev.push(d07.event("supplement_requested", "2019-11-05 09:00"));
    ev.push(d07.event("supplement_received", "2019-11-06 09:00"));
    ev.push(d07.event("supplement_requested", "2019-11-07 09:00"));
    ev.push(d07.event("supplement_received", "2019-11-08 09:00"));
    ev.push(d07.event("processed", "2019-11-15 10:00"));

    // D08: refused at reception, Thu 07/11 10:00 (rule c). No appointment.
    let d08 = Dossier { id: "OR-D08", channel: "in_person", online_level: 2, due: None, legal_max_days: None };
    ev.push(d08.event("refused", "2019-11-07 10:00"));

    // D09: a reception Thu 14/11 10:00 whose appointment, Wed 13/11 17:00, is before it (rule d).
    let d09 = due("OR-D09", "in_person", 2, "2019-11-13 17:00");
    let d09_received = d09.event("received", "2019-11-14 10:00");
    let bad_deadline_id = d09_received["event_id"].as_str().unwrap().to_owned();
    ev.push(d09_received);

    // D10: no appointment; a legal maximum of 3 working days across a weekend (rule f).
    // In person, received Fri 08/11 10:00, legal_max_days 3; processed Wed 13/11 16:00.
    let d10 = Dossier { id: "OR-D10", channel: "in_person", online_level: 2, due: None, legal_max_days: Some(3) };
    ev.push(d10.event("received", "2019-11-08 10:00"));
    ev.push(d10.event("processed", "2019-11-13 16:00"));

    // D11: a result returned before the processing does not end the dossier (rule g).
    // In person, received Mon 04/11 10:00, appointment Fri 15/11 17:00; result returned
    // Fri 08/11 10:00; processed Wed 20/11 10:00.
    let d11 = due("OR-D11", "in_person", 2, "2019-11-15 17:00");
    ev.push(d11.event("received", "2019-11-04 10:00"));
    ev.push(d11.event("result_returned", "2019-11-08 10:00"));
    ev.push(d11.event("processed", "2019-11-20 10:00"));

    // D12: an earlier stop wins over a later processing (rule g).
    // Online, received Tue 05/11 09:00, appointment Wed 13/11 17:00; stopped Tue 12/11 10:00;
    // processed Mon 18/11 10:00.
    let d12 = due("OR-D12", "online", 4, "2019-11-13 17:00");
    ev.push(d12.event("received", "2019-11-05 09:00"));
    ev.push(d12.event("stopped", "2019-11-12 10:00"));
    ev.push(d12.event("processed", "2019-11-18 10:00"));

    // D13: received by post (rule h). Postal, received Wed 06/11 09:00, appointment
    // Wed 20/11 17:00; processed Tue 19/11 10:00; result returned by post Wed 20/11 09:00.
    let d13 = due("OR-D13", "postal", 2, "2019-11-20 17:00");
    ev.push(d13.event("received", "2019-11-06 09:00"));
    ev.push(d13.event("processed", "2019-11-19 10:00"));
    ev.push(with(d13.event("result_returned", "2019-11-20 09:00"), "result_channel", json!("postal")));

    // D14: received in person, its result registered for return by post while open (rule h);
    // never ended. Received Thu 07/11 09:00, appointment Tue 10/12 17:00; in process
    // Fri 08/11 09:00 with result_channel postal.
    let d14 = due("OR-D14", "in_person", 2, "2019-12-10 17:00");
    ev.push(d14.event("received", "2019-11-07 09:00"));
    ev.push(with(d14.event("in_process", "2019-11-08 09:00"), "result_channel", json!("postal")));

    // D15: its reception arrives twice with the same event id (counted once).
    // In person, received Tue 19/11 09:00, appointment Tue 26/11 17:00; processed Tue 26/11 11:00.
    let d15 = due("OR-D15", "in_person", 2, "2019-11-26 17:00");
    let d15_received = d15.event("received", "2019-11-19 09:00");
    let duplicate = d15_received.clone();
    ev.push(d15_received);
    ev.push(d15.event("processed", "2019-11-26 11:00"));

    // D16: its reception sent again under a new event id, same content (one dossier).
    // Online, received Wed 20/11 10:00, appointment Wed 27/11 17:00; processed Fri 22/11 10:00.
    let d16 = due("OR-D16", "online", 4, "2019-11-27 17:00");
    ev.push(d16.event("received", "2019-11-20 10:00"));
    ev.push(d16.event("received", "2019-11-20 10:00"));
    ev.push(d16.event("processed", "2019-11-22 10:00"));

    // D17: open and overdue at the end of November; an apology and the processing in December.
    // Online, received Mon 18/11 09:00, appointment Mon 25/11 17:00; apology Mon 02/12 09:00
    // (new date Fri 06/12 17:00); processed Tue 03/12 10:00.
    let d17 = due("OR-D17", "online", 4, "2019-11-25 17:00");
    ev.push(d17.event("received", "2019-11-18 09:00"));
    ev.push(with(d17.event("apology_issued", "2019-12-02 09:00"), "new_due_at", json!(t("2019-12-06 17:00"))));
    ev.push(d17.event("processed", "2019-12-03 10:00"));

    // D18: open within its appointment at the end of November, processed in December.
    // Online, received Thu 28/11 09:00, appointment Thu 05/12 17:00; processed Thu 05/12 09:00.
    let d18 = due("OR-D18", "online", 3, "2019-12-05 17:00");
    ev.push(d18.event("received", "2019-11-28 09:00"));
    ev.push(d18.event("processed", "2019-12-05 09:00"));

    // D19: waiting for a supplement requested before the appointment's day (rule a).
    // In person, received Tue 05/11 10:00, appointment Tue 19/11 17:00; supplement requested
    // Tue 12/11 10:00, never supplied.
    let d19 = due("OR-D19", "in_person", 2, "2019-11-19 17:00");
    ev.push(d19.event("received", "2019-11-05 10:00"));
    ev.push(d19.event("supplement_requested", "2019-11-12 10:00"));

    // D20: December only. In person, received Mon 16/12 09:00, appointment Mon 23/12 17:00,
    // processed Fri 20/12 10:00.
    let d20 = due("OR-D20", "in_person", 2, "2019-12-23 17:00");
    ev.push(d20.event("received", "2019-12-16 09:00"));
    ev.push(d20.event("processed", "2019-12-20 10:00"));

    // D21: received on the year's last Monday, open at its end. Online, received
    // Mon 30/12 09:00, appointment Mon 06/01/2020 17:00.
    let d21 = due("OR-D21", "online", 4, "2020-01-06 17:00");
    ev.push(d21.event("received", "2019-12-30 09:00"));

    ev.sort_by_key(|e| e["occurred_at"].as_i64().unwrap());
    Scenario { in_order: ev, apology_before_reception, d04_received_at, bad_deadline_id, duplicate }
}

/// Expected row of STP for October 2019.
fn expected_2019_10() -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        // Nothing was received before 1/10.
        (CARRIED, 0),
        // Received in October: D01 (in person, 14/10), D02 (online, 28/10), D03 (in person, 29/10).
        (ONLINE, 1),    // D02
        (IN_PERSON, 2), // D01 + D03
        (POSTAL, 0),
        (NEW, 3),        // 1 + 2 + 0
        (TO_PROCESS, 3), // carried 0 + new 3
        // Rule g: D01 ends at its processing Fri 18/10 15:00; rule i: local day 18/10 is
        // before the appointment's day 21/10, so early.
        (EARLY, 1),
        (ON_TIME, 0),
        (LATE, 0),
        (RESOLVED, 1), // 1 + 0 + 0
        // In progress at 31/10 24:00 (facts after it ignored): D02 (withdrawal 5/11 comes
        // later) with appointment 5/11 17:00, D03 (its supplement request 6/11 comes later)
        // with appointment 4/11 17:00: neither appointment is before the period's end.
        (WITHIN, 2),
        (OVERDUE, 0),
        (IN_PROGRESS, 2), // 2 + 0; balance: 0 + 3 = 1 + 2
        (REFUSED, 0),
        (WITHDRAWN, 0),
        (STOPPED, 0),
        (APOLOGY_TIMELY, 0),
        (APOLOGY_LATE, 0),
        // Rule h: results registered for return by post among the dossiers to process: none in October.
        (RESULT_POSTAL, 0),
    ])
}

/// Expected row of STP for November 2019.
fn expected_2019_11() -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        // Received before 1/11 and not ended at 1/11 00:00: D02 (ends 5/11) and D03 (its
        // supplement request is 6/11; nothing ended it before); D01 ended 18/10.
        (CARRIED, 2),
        // New in November, by the channel the dossier came in by (the form's "Mới tiếp
        // nhận" columns; rule h's postal *result* is postal use, a KPI of its own):
        //   online: D05, D07, D12, D16 (two reception events, one dossier), D17, D18 = 6;
        (ONLINE, 6),
        //   in person: D04, D06, D10, D11, D14 (its result goes by post, but it came in at
        //   the counter), D15 (same event twice, one dossier), D19 = 7;
        //   D08 was refused (rule c), D09's reception refused by the intake (rule d).
        (IN_PERSON, 7),
        //   postal: D13 (received by post) = 1.
        (POSTAL, 1),
        (NEW, 14),        // 6 + 7 + 1
        (TO_PROCESS, 16), // carried 2 + new 14
        // Resolved in November (ended 1/11-30/11 by rule g, or waiting for a supplement at
        // 30/11 24:00 by rule a), judged by rule i:
        //   D12: stopped Tue 12/11 10:00 wins over the processing 18/11 (rule g); 12/11 is
        //        before the appointment's day 13/11: early.
        //   D13: processed Tue 19/11, appointment Wed 20/11 17:00: earlier day, early.
        //   D16: processed Fri 22/11, appointment Wed 27/11: early.
        //   D19: waiting at the end; ends on its request Tue 12/11 10:00, a day before the
        //        appointment's day 19/11 (rule a): early.
        (EARLY, 4), // D12 + D13 + D16 + D19
        //   D02: withdrawn Tue 05/11 09:00 <= appointment 05/11 17:00, same day: on time.
        //   D06: appointment Fri 08/11 17:00 + supplement time (06/11 09:00 to 11/11 09:00 =
        //        120 h) = Wed 13/11 17:00 (rule a); processed 13/11 10:00 <= it, same day: on time.
        //   D10: legal maximum 3 working days after Fri 08/11 (rule f): Mon 11/11 (1),
        //        Tue 12/11 (2), Wed 13/11 (3), deadline end of Wed 13/11; processed 13/11 16:00:
        //        on time (3 calendar days would end on 11/11: late).
        //   D15: processed Tue 26/11 11:00 <= appointment 26/11 17:00, same day: on time.
        (ON_TIME, 4), // D02 + D06 + D10 + D15
        //   D03: waiting at the end; ends on its request Wed 06/11 09:00, after the appointment
        //        Mon 04/11 17:00 (rule a): late.
        //   D04: processed Mon 18/11 > appointment Tue 12/11 17:00 of the reception; the
        //        apology's 20/11 does not move it (rule b): late.
        //   D05: processed Wed 20/11 > appointment Mon 18/11 17:00: late.
        //   D07: two supplement requests (rule a): late although processed 15/11 before 22/11.
        //   D11: the return of Fri 08/11 does not end it; processed Wed 20/11 > appointment
        //        Fri 15/11 17:00 (rule g): late.
        (LATE, 5),      // D03 + D04 + D05 + D07 + D11
        (RESOLVED, 13), // 4 + 4 + 5
        // In progress at 30/11 24:00: D14 (appointment 10/12), D18 (appointment 05/12) within;
        // D17 (appointment Mon 25/11 17:00, before the period's end) overdue.
        (WITHIN, 2),
        (OVERDUE, 1),
        (IN_PROGRESS, 3), // 2 + 1; balance: 2 + 14 = 16 = 13 + 3
        // Rule c: D08's refusal Thu 07/11, in neither received nor resolved.
        (REFUSED, 1),
        // Of the resolved: D02 withdrawn, D12 stopped.
        (WITHDRAWN, 1),
        (STOPPED, 1),
        // Apology letters sent in November (rule e):
        //   D04, sent Mon 11/11; deadline's day Tue 12/11, the last working day before it is
        //        Mon 11/11: timely.
        //   D05, sent Sat 16/11; deadline's day Mon 18/11, the last working day before it is
        //        Fri 15/11: late.
        (APOLOGY_TIMELY, 1), // D04
        (APOLOGY_LATE, 1),   // D05
        // Rule h: D13 (returned by post 20/11) and D14 (registered for post on 08/11, still open) = 2.
        (RESULT_POSTAL, 2),
    ])
}

/// Expected row of STP for December 2019.
fn expected_2019_12() -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        // Received before 1/12 and not ended at 1/12 00:00: D14, D17, D18 (November's in
        // progress). D03 and D19 were waiting for their supplement at 1/12 00:00, so they had
        // ended on their request dates in November (rule a): not carried over.
        (CARRIED, 3),
        // New in December: D20 (in person, 16/12), D21 (online, 30/12).
        (ONLINE, 1),    // D21
        (IN_PERSON, 1), // D20
        (POSTAL, 0),
        (NEW, 2),        // 1 + 1 + 0
        (TO_PROCESS, 5), // carried 3 + new 2
        //   D20: processed Fri 20/12, appointment Mon 23/12: earlier day, early.
        (EARLY, 1),
        //   D18: processed Thu 05/12 09:00 <= appointment 05/12 17:00, same day: on time.
        (ON_TIME, 1),
        //   D17: processed Tue 03/12 > appointment Mon 25/11 17:00: late.
        (LATE, 1),
        (RESOLVED, 3), // 1 + 1 + 1
        // In progress at 31/12 24:00: D21 (appointment 06/01/2020) within; D14 (appointment
        // Tue 10/12 17:00, before the period's end) overdue.
        (WITHIN, 1),
        (OVERDUE, 1),
        (IN_PROGRESS, 2), // 1 + 1; balance: 3 + 2 = 5 = 3 + 2
        (REFUSED, 0),
        (WITHDRAWN, 0),
        (STOPPED, 0),
        // D17's apology sent Mon 02/12; deadline's day Mon 25/11, last working day before it
        // Fri 22/11: late (rule e). Counted in the period it was sent in.
        (APOLOGY_TIMELY, 0),
        (APOLOGY_LATE, 1),
        // Rule h: D14, carried over and still open, its result registered for post = 1.
        (RESULT_POSTAL, 1),
    ])
}

async fn post(url: &str, events: &[Value]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {PROVINCE_TOKEN}"))
        .json(&json!({ "events": events }))
        .send()
        .await
        .expect("intake answers");
    let status = response.status().as_u16();
    (status, response.json::<Value>().await.unwrap_or(Value::Null))
}

/// `parpulse report --period PERIOD --format csv`: the rows by code, each a header -> cell map.
fn report(env: &TestEnv, period: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let path = std::env::temp_dir().join(format!("parpulse-official-rules-{}-{period}.csv", uuid::Uuid::new_v4()));
    let output = parpulse_command(
        env,
        &["report", "--period", period, "--format", "csv", "--output", path.to_str().expect("UTF-8 path")],
    )
    .output()
    .expect("running parpulse report");
    assert!(
        output.status.success(),
        "parpulse report --period {period} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&path).expect("the report file");
    std::fs::remove_file(&path).ok();
    parpulse_tests::report_rows_by_code(&text)
}

fn count(row: &BTreeMap<String, String>, header: &str) -> u64 {
    let cell = row.get(header).unwrap_or_else(|| panic!("no column {header:?} in the report: {row:?}"));
    cell.parse().unwrap_or_else(|_| panic!("column {header:?} is not a count: {cell:?}"))
}

/// Compares the unit's row with the hand computation; the disagreements of the period.
fn disagreements(period: &str, rows: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<String> {
    let want = match period {
        "2019-10" => expected_2019_10(),
        "2019-11" => expected_2019_11(),
        "2019-12" => expected_2019_12(),
        _ => unreachable!(),
    };
    assert_eq!(want.len(), COUNT_COLUMNS.len(), "{period}: every count column has a hand-computed value");
    let row = rows.get(UNIT).unwrap_or_else(|| panic!("{period}: no row for {UNIT}: {:?}", rows.keys()));
    let mut wrong = Vec::new();
    for header in COUNT_COLUMNS {
        let (got, want) = (count(row, header), want[header]);
        if got != want {
            wrong.push(format!("{period} {UNIT} {header:?}: hand computation {want}, report {got}"));
        }
    }
    // The form's invariants on the report's own numbers.
    let c = |h| count(row, h);
    assert_eq!(c(NEW), c(ONLINE) + c(IN_PERSON) + c(POSTAL), "{period}: received = online + in person + postal");
    assert_eq!(c(RESOLVED), c(EARLY) + c(ON_TIME) + c(LATE), "{period}: resolved = early + on time + late");
    assert_eq!(c(IN_PROGRESS), c(WITHIN) + c(OVERDUE), "{period}: in progress = within + overdue");
    assert_eq!(
        c(CARRIED) + c(NEW),
        c(RESOLVED) + c(IN_PROGRESS),
        "{period}: carried over + new = resolved + in progress"
    );
    // STP is the only unit with data: its group and the province show the same counts.
    for total in ["department", "province"] {
        let total_row = rows.get(total).unwrap_or_else(|| panic!("{period}: no {total} row: {:?}", rows.keys()));
        for header in COUNT_COLUMNS {
            assert_eq!(count(total_row, header), count(row, header), "{period}: {total} {header:?} = {UNIT}'s");
        }
    }
    wrong
}

/// The rolling window `window` of /metrics against the hand-computed months it covers, for
/// the unit and the province (only the unit has events). Flow counts are the months' sums:
/// receptions by reception day, endings by end day (the aggregator judges as of its own
/// clock, later than the quarter; no dossier of the scenario changes after 2019). The two
/// figures the form has no column for are given: late dossiers with a timely letter, and
/// received dossiers whose result is registered for post, by reception day.
fn metrics_disagreements(
    samples: &[Sample],
    window: &str,
    months: &[BTreeMap<&'static str, u64>],
    late_with_apology: u64,
    result_postal: u64,
) -> Vec<String> {
    let sum = |header: &str| months.iter().map(|m| m[header]).sum::<u64>();
    let want = [
        ("parpulse_dossiers_received", sum(NEW)),
        // Every online dossier of the scenario is at level 3 or 4.
        ("parpulse_dossiers_received_online", sum(ONLINE)),
        ("parpulse_dossiers_received_postal", sum(POSTAL)),
        ("parpulse_dossiers_resolved", sum(RESOLVED)),
        ("parpulse_dossiers_resolved_early", sum(EARLY)),
        // "On time" on /metrics is "not late": early and on time.
        ("parpulse_dossiers_resolved_on_time", sum(EARLY) + sum(ON_TIME)),
        ("parpulse_dossiers_resolved_late", sum(LATE)),
        ("parpulse_dossiers_withdrawn", sum(WITHDRAWN)),
        ("parpulse_dossiers_stopped", sum(STOPPED)),
        ("parpulse_dossiers_refused", sum(REFUSED)),
        ("parpulse_dossiers_late_with_apology", late_with_apology),
        ("parpulse_dossiers_result_postal", result_postal),
    ];
    let mut wrong = Vec::new();
    for (scope, unit) in [("unit", UNIT), ("province", "HY")] {
        let labels = [("scope", scope), ("unit", unit), ("window", window)];
        for (name, want) in want {
            let got = find(samples, name, &labels);
            if got != Some(want as f64) {
                wrong
                    .push(format!("/metrics {name}{{{scope} {unit}, {window}}}: hand computation {want}, got {got:?}"));
            }
        }
        let ratio = find(samples, "parpulse_on_time_ratio", &labels);
        let hand = (sum(EARLY) + sum(ON_TIME)) as f64 / sum(RESOLVED) as f64;
        if ratio.is_none_or(|r| (r - hand).abs() > 1e-9) {
            wrong.push(format!(
                "/metrics parpulse_on_time_ratio{{{scope} {unit}, {window}}}: hand {hand}, got {ratio:?}"
            ));
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_period_report_follows_the_official_rules_on_a_hand_computed_quarter() {
    let env = TestEnv::new("official_rules");
    let store = env.connect().await;
    env.migrate(&store).await;
    let intake = start_intake(&env, &env.brokers, 8 << 20, Duration::from_secs(10)).await;
    let url = intake.url("/v1/events");
    let Scenario { in_order, apology_before_reception, d04_received_at, bad_deadline_id, duplicate } = scenario();

    // In time order, as a unit's system sends them, except: D04's apology before D04's
    // reception (rule b), the refused D09 in a batch with good events (rule d), and D15's
    // reception again after November (same event id).
    let at = |e: &Value| e["occurred_at"].as_i64().unwrap();
    let before: Vec<Value> = in_order.iter().filter(|e| at(e) < d04_received_at).cloned().collect();
    let november: Vec<Value> =
        in_order.iter().filter(|e| (d04_received_at..t("2019-12-01 00:00")).contains(&at(e))).cloned().collect();
    let december: Vec<Value> = in_order.iter().filter(|e| at(e) >= t("2019-12-01 00:00")).cloned().collect();
    assert_eq!(before.len() + november.len() + december.len(), in_order.len());

    let (status, body) = post(&url, &before).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(before.len() as u64)), "{body}");
    let (status, body) = post(&url, &[apology_before_reception]).await;
    assert_eq!(status, 200, "the apology before its dossier's reception is accepted: {body}");
    let (status, body) = post(&url, &november).await;
    // Rule d: 207, every event accepted but D09's reception, refused as bad_deadline.
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["accepted"].as_u64(), Some(november.len() as u64 - 1), "{body}");
    let refused: Vec<(&str, &str)> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == "rejected")
        .map(|r| (r["event_id"].as_str().unwrap_or(""), r["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(refused, vec![(bad_deadline_id.as_str(), "bad_deadline")], "{body}");
    let (status, body) = post(&url, &[duplicate]).await;
    assert_eq!(status, 200, "a repeated event is accepted (the event id deduplicates downstream): {body}");
    let (status, body) = post(&url, &december).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(december.len() as u64)), "{body}");
    drop(intake);

    // The aggregator has applied everything once its checkpoints reach the topic's end.
    let metrics = parpulse_aggregate::AggregatorMetrics::new();
    env.aggregate_to_end_with(env.aggregator_config(), &metrics, &store, Duration::from_secs(120)).await;
    assert_eq!(metrics.too_late.get(), 0, "no event of the scenario is beyond the allowed lateness");

    let mut wrong = Vec::new();
    for period in ["2019-10", "2019-11", "2019-12"] {
        wrong.extend(disagreements(period, &report(&env, period)));
    }
    assert!(wrong.is_empty(), "the report disagrees with the hand computation:\n{}", wrong.join("\n"));

    // The same quarter and its last month on /metrics, from an exporter whose clock says
    // Wednesday 15 January 2020, 10:00: last_quarter is 2019-Q4, last_month December.
    let (exporter, text) = parpulse_tests::metrics_as_of(&env, "2020-01-15T10:00:00+07:00").await;
    let samples = parse(&text);
    let quarter = [expected_2019_10(), expected_2019_11(), expected_2019_12()];
    // Late with a timely letter: D04 only (D05's and D17's letters were late). Result for
    // post, by reception day: D13 and D14, both received in November.
    wrong.extend(metrics_disagreements(&samples, "last_quarter", &quarter, 1, 2));
    wrong.extend(metrics_disagreements(&samples, "last_month", &[expected_2019_12()], 0, 0));
    drop(exporter);
    assert!(wrong.is_empty(), "/metrics disagrees with the hand computation:\n{}", wrong.join("\n"));
    env.cleanup().await;
}
