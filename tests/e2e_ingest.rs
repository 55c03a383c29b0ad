//! The ingest side against a real Kafka: HTTP intake round trip, token
//! isolation, a table of malformed inputs (HTTP and file) with the dead-letter
//! topic holding exactly the rejected ones, and durability when the broker stops.

use std::collections::BTreeMap;
use std::time::Duration;

use parpulse_core::avro::AvroCodec;
use parpulse_core::time::now_micros;
use parpulse_core::{AgencyRegistry, Event};
use parpulse_ingest::file_import::import_file;
use parpulse_ingest::{Simulator, SimulatorConfig};
use parpulse_tests::broker::SpareBroker;
use parpulse_tests::kafka_read::read_topic;
use parpulse_tests::{start_intake, TestEnv, PROVINCE_TOKEN, SNV_TOKEN};
use serde_json::{json, Value};

const DAY_MICROS: i64 = 86_400_000_000;

fn dossier(agency: &str, id: &str) -> Value {
    let now = now_micros();
    json!({
        "type": "dossier", "event_id": id, "agency_code": agency, "occurred_at": now - 3_600_000_000,
        "dossier_id": "000.00.12.H31-1", "procedure_code": "1.001234", "kind": "received",
        "channel": "online", "online_level": 4, "due_at": now + 5 * DAY_MICROS,
        "fee_bearing": false, "digitized": true
    })
}

fn with(mut value: Value, field: &str, new: Value) -> Value {
    if new.is_null() {
        value.as_object_mut().expect("object").remove(field);
    } else {
        value[field] = new;
    }
    value
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn post(url: &str, token: Option<&str>, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).header("content-type", content_type).body(body);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.expect("intake answers");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// The reason codes of a response: the whole-request `error`, or every rejected event's `reason`.
fn reasons(body: &Value) -> Vec<String> {
    if let Some(error) = body["error"].as_str() {
        return vec![error.to_owned()];
    }
    body["results"]
        .as_array()
        .map(|results| results.iter().filter_map(|r| r["reason"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_intake_round_trip_decodes_to_the_same_events() {
    let env = TestEnv::new("intake_round_trip");
    let store = env.connect().await;
    env.migrate(&store).await;
    let intake = start_intake(&env, &env.brokers, 8 << 20, Duration::from_secs(10)).await;

    let config = SimulatorConfig::recent(11, 3, 2);
    let events: Vec<Event> = Simulator::new(config, &AgencyRegistry::demo()).collect();
    let ndjson: String = events.iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
    let (status, body) =
        post(&intake.url("/v1/events"), Some(PROVINCE_TOKEN), "application/x-ndjson", ndjson.into_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], events.len());

    let codec = AvroCodec::new();
    let mut stored = Vec::new();
    for topic in [&env.topics.dossier, &env.topics.budget, &env.topics.staffing] {
        for record in read_topic(&env.brokers, topic, Duration::from_secs(20)) {
            let event = codec.decode_event(&record.payload).expect("stored records decode");
            assert_eq!(record.key.as_deref(), Some(event.agency_code()), "the key is the agency code");
            stored.push(event);
        }
    }
    let mut sent: Vec<Event> = events
        .into_iter()
        .map(|mut e| {
            e.stamp("http", 0);
            e
        })
        .collect();
    for event in &mut stored {
        assert_eq!(
            match event {
                Event::Dossier(d) => d.source.as_str(),
                Event::Budget(b) => &b.source,
                Event::Staffing(s) => &s.source,
            },
            "http"
        );
        event.stamp("http", 0);
    }
    let by_id = |events: &mut Vec<Event>| events.sort_by(|a, b| a.event_id().cmp(b.event_id()));
    by_id(&mut sent);
    by_id(&mut stored);
    assert_eq!(stored, sent, "Kafka holds exactly the posted events");
    drop(intake);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_token_cannot_submit_another_units_events() {
    let env = TestEnv::new("intake_tokens");
    let store = env.connect().await;
    env.migrate(&store).await;
    let intake = start_intake(&env, &env.brokers, 8 << 20, Duration::from_secs(10)).await;
    let url = intake.url("/v1/events");
    let own = serde_json::to_vec(&dossier("SNV", &uuid())).unwrap();
    let other = serde_json::to_vec(&dossier("STP", &uuid())).unwrap();

    assert_eq!(post(&url, Some(SNV_TOKEN), "application/json", own.clone()).await.0, 200);
    let (status, body) = post(&url, Some(SNV_TOKEN), "application/json", other.clone()).await;
    assert_eq!((status, reasons(&body)), (403, vec!["forbidden".to_owned()]), "{body}");
    assert_eq!(post(&url, Some(PROVINCE_TOKEN), "application/json", other.clone()).await.0, 200);
    assert_eq!(post(&url, None, "application/json", own.clone()).await.0, 401);
    assert_eq!(post(&url, Some("not-a-token"), "application/json", own).await.0, 401);
    drop(intake);
    env.cleanup().await;
}

/// One malformed input: what is sent, what must come back, what the dead-letter topic must keep.
struct Case {
    name: &'static str,
    token: Option<&'static str>,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    reasons: Vec<&'static str>,
    dead_letters: usize,
}

fn case(name: &'static str, body: Value, status: u16, reason: &'static str) -> Case {
    Case {
        name,
        token: Some(PROVINCE_TOKEN),
        content_type: "application/json",
        body: serde_json::to_vec(&json!([body])).unwrap(),
        status,
        reasons: vec![reason],
        dead_letters: 1,
    }
}

fn raw(
    name: &'static str,
    token: Option<&'static str>,
    content_type: &'static str,
    body: &[u8],
    status: u16,
    reason: &'static str,
    dead_letters: usize,
) -> Case {
    Case { name, token, content_type, body: body.to_vec(), status, reasons: vec![reason], dead_letters }
}

fn http_cases(body_limit: usize) -> Vec<Case> {
    let now = now_micros();
    let d = || dossier("SNV", &uuid());
    let budget = || {
        json!({"type": "budget", "event_id": uuid(), "agency_code": "STC", "occurred_at": now - 1_000_000,
                          "kind": "disbursed", "fiscal_year": parpulse_core::LocalDay::of_micros(now).year(),
                          "category": "chi_quan_ly_hanh_chinh", "amount_vnd": 1_000_000})
    };
    let staffing = || {
        json!({"type": "staffing", "event_id": uuid(), "agency_code": "SNV", "occurred_at": now - 1_000_000,
                            "kind": "headcount_snapshot", "position": "deputy", "quota": 3, "filled": 3})
    };
    let valid = serde_json::to_string(&d()).unwrap();
    vec![
        raw("no token", None, "application/json", valid.as_bytes(), 401, "unauthorized", 0),
        raw("unknown token", Some("guess"), "application/json", valid.as_bytes(), 401, "unauthorized", 0),
        raw(
            "body over the limit",
            Some(SNV_TOKEN),
            "application/json",
            &vec![b' '; body_limit + 1],
            413,
            "too_large",
            0,
        ),
        raw("CSV sent to the JSON intake", Some(SNV_TOKEN), "text/csv", b"a,b\n1,2\n", 415, "malformed", 1),
        raw(
            "invalid UTF-8",
            Some(SNV_TOKEN),
            "application/json",
            b"[{\"dossier_id\": \"\xff\xfe\"}]",
            400,
            "invalid_utf8",
            1,
        ),
        raw("empty body", Some(SNV_TOKEN), "application/json", b"", 400, "malformed", 1),
        raw("truncated JSON", Some(SNV_TOKEN), "application/json", b"[{\"type\": \"dossier\"", 400, "malformed", 1),
        raw("empty array", Some(SNV_TOKEN), "application/json", b"[]", 400, "malformed", 1),
        raw("not JSON", Some(SNV_TOKEN), "application/json", b"xin chao", 400, "malformed", 1),
        raw("events is not a list", Some(SNV_TOKEN), "application/json", b"{\"events\": 5}", 400, "malformed", 1),
        raw("NDJSON of blank lines", Some(SNV_TOKEN), "application/x-ndjson", b"\n \n", 400, "malformed", 1),
        raw(
            "NDJSON line cut short",
            Some(SNV_TOKEN),
            "application/x-ndjson",
            b"{\"type\": \"dossier\", \"event_id\n",
            422,
            "malformed",
            1,
        ),
        case("a number instead of an event", json!(5), 422, "malformed"),
        case("no type", with(d(), "type", Value::Null), 422, "malformed"),
        case("unknown type", with(d(), "type", json!("weather")), 422, "malformed"),
        case("event_id is a number", with(d(), "event_id", json!(42)), 422, "malformed"),
        case("occurred_at is a string", with(d(), "occurred_at", json!("yesterday")), 422, "malformed"),
        case("online_level is a string", with(d(), "online_level", json!("four")), 422, "malformed"),
        case("unknown lifecycle step", with(d(), "kind", json!("teleported")), 422, "malformed"),
        case("unknown channel", with(d(), "channel", json!("fax")), 422, "malformed"),
        case("dossier_id missing", with(d(), "dossier_id", Value::Null), 422, "malformed"),
        case("dossier_id empty", with(d(), "dossier_id", json!("")), 422, "missing_field"),
        case("event_id not a UUID", with(d(), "event_id", json!("hs-0001")), 422, "bad_event_id"),
        case("unknown unit", with(d(), "agency_code", json!("HANOI")), 422, "unknown_agency"),
        case("event in the future", with(d(), "occurred_at", json!(now + DAY_MICROS)), 422, "future_time"),
        case("event before 2000", with(d(), "occurred_at", json!(900_000_000_000_000i64)), 422, "too_old"),
        case("online level 7", with(d(), "online_level", json!(7)), 422, "bad_online_level"),
        case("online at level 2", with(d(), "online_level", json!(2)), 422, "channel_level_mismatch"),
        case("received without a deadline", with(d(), "due_at", Value::Null), 422, "missing_deadline"),
        case(
            "legal maximum of 0 days",
            with(with(d(), "due_at", Value::Null), "legal_max_days", json!(0)),
            422,
            "bad_deadline",
        ),
        case("negative budget amount", with(budget(), "amount_vnd", json!(-5)), 422, "negative_amount"),
        case("budget amount with decimals", with(budget(), "amount_vnd", json!(10.5)), 422, "malformed"),
        case("fiscal year far from the event", with(budget(), "fiscal_year", json!(1999)), 422, "bad_fiscal_year"),
        case("snapshot without quota", with(staffing(), "quota", Value::Null), 422, "bad_headcount"),
        case("nobody hired", with(with(staffing(), "kind", json!("hired")), "count", json!(0)), 422, "bad_headcount"),
        Case {
            name: "another unit's event with a unit token",
            token: Some(SNV_TOKEN),
            content_type: "application/json",
            body: serde_json::to_vec(&dossier("STP", &uuid())).unwrap(),
            status: 403,
            reasons: vec!["forbidden"],
            dead_letters: 1,
        },
        Case {
            name: "one good, one bad in a batch",
            token: Some(PROVINCE_TOKEN),
            content_type: "application/json",
            body: serde_json::to_vec(&json!({"events": [d(), with(d(), "agency_code", json!("NOWHERE"))]})).unwrap(),
            status: 207,
            reasons: vec!["unknown_agency"],
            dead_letters: 1,
        },
    ]
}

/// File rows: (file name, content, expected rejected reasons, accepted count).
fn file_cases() -> Vec<(&'static str, String, Vec<&'static str>, u64)> {
    let header =
        "agency_code,dossier_id,procedure_code,kind,channel,online_level,occurred_at,due_at,fee_bearing,digitized\n";
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let row = |agency: &str, kind: &str, time: &str, fee: &str| {
        format!("{agency},HS-{kind}-{time},1.000123,{kind},in_person,2,{time},{today} 16:00:00,{fee},true\n")
    };
    let good_time = format!("{} 00:05:00", (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d"));
    let csv = format!(
        "{header}{}{}{}{}{}",
        row("SNV", "received", &good_time, "false"),
        row("SNV", "received", "28/11/2019", "false"),
        row("SNV", "approved", &good_time, "false"),
        row("SNV", "received", &good_time, "perhaps"),
        row("HANOI", "received", &good_time, "false"),
    ) + "SNV,too,few\n";
    let ndjson = format!(
        "{}\n{{\"type\": \"dossier\",\n{}\n",
        serde_json::to_string(&dossier("SNV", &uuid())).unwrap(),
        serde_json::to_string(&with(dossier("SNV", &uuid()), "online_level", json!(9))).unwrap()
    );
    vec![
        ("rows.csv", csv, vec!["malformed", "malformed", "malformed", "unknown_agency", "malformed"], 1),
        ("rows.ndjson", ndjson, vec!["malformed", "bad_online_level"], 1),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_inputs_get_their_status_and_reason_and_only_they_reach_the_dead_letter_topic() {
    let env = TestEnv::new("intake_malformed");
    let store = env.connect().await;
    env.migrate(&store).await;
    let body_limit = 64 * 1024;
    let intake = start_intake(&env, &env.brokers, body_limit, Duration::from_secs(10)).await;
    let url = intake.url("/v1/events");

    let mut expected_dead: BTreeMap<String, usize> = BTreeMap::new();
    let mut kinds = 0;
    for case in http_cases(body_limit) {
        let (status, body) = post(&url, case.token, case.content_type, case.body).await;
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(reasons(&body), case.reasons, "{}: {body}", case.name);
        if case.dead_letters > 0 {
            for reason in &case.reasons {
                *expected_dead.entry((*reason).to_owned()).or_default() += case.dead_letters / case.reasons.len();
            }
        }
        kinds += 1;
    }

    let sink = parpulse_ingest::KafkaSink::new(
        env.kafka(),
        parpulse_ingest::Gate::new(AgencyRegistry::demo(), Default::default()),
    )
    .expect("producer");
    let dir = std::env::temp_dir().join(format!("parpulse-file-cases-{}", uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, content, rejected, accepted) in file_cases() {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let mut rejects = Vec::new();
        let summary = import_file(&sink, &path, &mut rejects).await.expect("import runs");
        let mut got: Vec<_> = String::from_utf8(rejects)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["reason"].as_str().unwrap().to_owned())
            .collect();
        let mut want: Vec<_> = rejected.iter().map(|r| (*r).to_owned()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}: rejects file");
        assert_eq!(summary.accepted, accepted, "{name}: {summary}");
        assert_eq!(summary.rejected(), rejected.len() as u64, "{name}: {summary}");
        for reason in rejected {
            *expected_dead.entry(reason.to_owned()).or_default() += 1;
        }
        kinds += 1;
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(kinds >= 30, "only {kinds} kinds of malformed input");

    let health = reqwest::get(intake.url("/healthz")).await.expect("intake still up");
    assert_eq!(health.status().as_u16(), 200);

    let records = read_topic(&env.brokers, &env.topics.deadletter, Duration::from_secs(30));
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for record in &records {
        assert!(
            record.headers.contains_key("message") && record.headers.contains_key("source"),
            "{:?}",
            record.headers
        );
        *got.entry(record.headers["reason"].clone()).or_default() += 1;
    }
    assert_eq!(got, expected_dead, "the dead-letter topic holds exactly the rejected inputs");
    drop(intake);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_2xx_without_kafka_and_nothing_lost_when_the_client_retries() {
    let env = TestEnv::new("intake_broker_down");
    let broker = SpareBroker::start();
    let store = env.connect().await;
    let spare_kafka = parpulse_ingest::KafkaConfig {
        connection: parpulse_kafka::KafkaConnection::plaintext(&broker.brokers()),
        ..env.kafka()
    };
    parpulse_ingest::kafka::ensure_topics(&spare_kafka).await.expect("topics on the spare broker");
    drop(store);
    let intake = start_intake(&env, &broker.brokers(), 8 << 20, Duration::from_secs(3)).await;
    let url = intake.url("/v1/events");
    let events = json!([dossier("SNV", &uuid()), dossier("SNV", &uuid())]);
    let body = serde_json::to_vec(&events).unwrap();
    assert_eq!(post(&url, Some(SNV_TOKEN), "application/json", body.clone()).await.0, 200);

    broker.stop();
    let (status, answer) = post(&url, Some(SNV_TOKEN), "application/json", body.clone()).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "kafka_unavailable");

    broker.restart();
    let mut status = 0;
    for _ in 0..20 {
        status = post(&url, Some(SNV_TOKEN), "application/json", body.clone()).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status, 200, "the retry succeeds once the broker is back");
    let ids: Vec<String> = read_topic(&broker.brokers(), &env.topics.dossier, Duration::from_secs(20))
        .iter()
        .map(|r| AvroCodec::new().decode_event(&r.payload).unwrap().event_id().to_owned())
        .collect();
    for event in events.as_array().unwrap() {
        let id = event["event_id"].as_str().unwrap();
        assert!(ids.iter().any(|stored| stored == id), "event {id} was acknowledged, so it must be stored");
    }
    drop(intake);
}

/// Inputs too big for a Kafka message are refused like any other, never stuck at 503:
/// a body over 1 MB that is not JSON is kept cut in the dead-letter topic (and says so),
/// and an identifier over the limit is refused before it could make an oversized event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_larger_than_a_kafka_message_are_refused_and_kept_cut() {
    let env = TestEnv::new("intake_huge");
    let store = env.connect().await;
    env.migrate(&store).await;
    let intake = start_intake(&env, &env.brokers, 4 << 20, Duration::from_secs(10)).await;
    let url = intake.url("/v1/events");
    let huge: Vec<u8> = std::iter::once(b'{').chain(std::iter::repeat_n(b'x', 2_000_000)).collect();
    let (status, body) = post(&url, Some(SNV_TOKEN), "application/json", huge.clone()).await;
    assert_eq!((status, reasons(&body)), (400, vec!["malformed".to_owned()]), "{body}");
    let long_id = with(dossier("SNV", &uuid()), "dossier_id", Value::from("D".repeat(300)));
    let (status, body) = post(&url, Some(SNV_TOKEN), "application/json", long_id.to_string().into_bytes()).await;
    assert_eq!((status, reasons(&body)), (422, vec!["field_too_long".to_owned()]), "{body}");

    let records = read_topic(&env.brokers, &env.topics.deadletter, Duration::from_secs(30));
    assert_eq!(records.len(), 2, "both refusals are kept");
    let cut = records.iter().find(|r| r.headers.get("reason").map(String::as_str) == Some("malformed")).unwrap();
    assert_eq!(cut.payload, huge[..parpulse_kafka::MAX_DEAD_LETTER_BYTES], "the input's head, byte for byte");
    assert_eq!(cut.headers.get("truncated_from"), Some(&huge.len().to_string()));
    assert_eq!(cut.headers.get("sha256").map(String::len), Some(64));
    env.cleanup().await;
}
