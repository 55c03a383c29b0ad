//! Intake fuzz with exact accounting: the real `parpulse ingest http` process (a
//! child, so its memory can be read from /proc) gets mutated requests at 8
//! concurrent connections: random bytes, wrong JSON types, huge and negative
//! numbers, truncated lines, CRLF, bad UTF-8, wrong tokens and content types,
//! oversized bodies, with valid events mixed in.
//!
//! Checks: the intake never exits; every request gets a JSON answer with a
//! documented status; the events the answers accept are exactly the records on the
//! event topics (by event id); the refusals the answers report are exactly the
//! dead-letter records (by reason); 401 and 413 are not kept (docs/INGEST.md) and
//! counted apart; the intake's own request counters agree; peak RSS stays bounded.
//!
//! Size: `PARPULSE_FUZZ_REQUESTS` (default 4000; `make chaos` runs 100,000). Seed:
//! `PARPULSE_FUZZ_SEED` (printed; the same seed sends the same requests).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parpulse_core::avro::AvroCodec;
use parpulse_core::time::now_micros;
use parpulse_core::{AgencyRegistry, LocalDay};
use parpulse_tests::kafka_read::read_topic;
use parpulse_tests::process::{listening_port, memory, wait_http_ok, Reaped};
use parpulse_tests::rng::{seed_from_env, size_from_env, Rng};
use parpulse_tests::{prom_text, TestEnv, PROVINCE_TOKEN, SNV_TOKEN};
use serde_json::{json, Value};

const CONNECTIONS: usize = 8;
const BODY_LIMIT: usize = 256 * 1024;
const DAY_MICROS: i64 = 86_400_000_000;
/// Peak RSS allowed to the intake, MiB (`PARPULSE_FUZZ_RSS_LIMIT_MIB` overrides).
const RSS_LIMIT_MIB: usize = 64;

/// What a generated request must get back, when that is known in advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exactly this status (wrong token, wrong content type, oversized body).
    Status(u16),
    /// 200 with every one of this many events accepted.
    AllAccepted(usize),
    /// Any documented status, with an answer that adds up.
    Documented,
}

struct Request {
    what: &'static str,
    token: Option<String>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    expect: Expect,
}

/// A valid event of a random type for a random unit (`agencies`), at most 30 days old.
fn valid_event(rng: &mut Rng, agencies: &[String], now: i64) -> Value {
    let agency = rng.pick(agencies).clone();
    let at = now - rng.between(60_000_000, 30 * DAY_MICROS);
    let id = rng.uuid().to_string();
    match rng.below(10) {
        0 => json!({"type": "budget", "event_id": id, "agency_code": agency, "occurred_at": at,
                    "kind": *rng.pick(&["allocated", "committed", "disbursed", "saved", "disclosed"]),
                    "fiscal_year": LocalDay::of_micros(at).year(), "category": "chi_quan_ly_hanh_chinh",
                    "amount_vnd": rng.between(0, 5_000_000_000)}),
        1 => json!({"type": "staffing", "event_id": id, "agency_code": agency, "occurred_at": at,
                    "kind": "headcount_snapshot", "position": *rng.pick(&["head", "deputy", "staff"]),
                    "quota": rng.between(1, 40), "filled": rng.between(0, 40)}),
        _ => {
            let (channel, level) = *rng.pick(&[("online", 3), ("online", 4), ("in_person", 2), ("postal", 2)]);
            json!({"type": "dossier", "event_id": id, "agency_code": agency, "occurred_at": at,
                   "dossier_id": format!("000.00.{}.H31-{}", rng.below(99), rng.below(1_000_000)),
                   "procedure_code": "1.001234", "kind": "received", "channel": channel, "online_level": level,
                   "due_at": at + rng.between(1, 20) * DAY_MICROS, "fee_bearing": rng.percent(30),
                   "digitized": rng.percent(50)})
        }
    }
}

/// A value of the wrong type or out of any sensible range.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(16) {
        0 => json!("a string"),
        1 => json!(42),
        2 => json!(-1),
        3 => json!(true),
        4 => Value::Null,
        5 => json!([]),
        6 => json!({"nested": {"deeper": [1, 2, 3]}}),
        7 => json!(1.5),
        8 => json!(i64::MAX),
        9 => json!(i64::MIN),
        10 => json!(u64::MAX),
        11 => json!(1e300),
        12 => json!(-1e300),
        13 => json!(i32::MAX as i64 + 1),
        14 => json!("Sở Nội vụ 🏛️ \u{0}\u{7}\u{202e}"),
        _ => json!("x".repeat(rng.between(1, 20_000) as usize)),
    }
}

/// `count` events, each mutated with probability `percent` / 100.
fn some_mutated(rng: &mut Rng, agencies: &[String], now: i64, count: i64, percent: u64) -> Vec<Value> {
    (0..count)
        .map(|_| if rng.percent(percent) { mutated_event(rng, agencies, now) } else { valid_event(rng, agencies, now) })
        .collect()
}

/// One event, mutated: a field of the wrong type, removed, out of range, or refused by a gate rule.
fn mutated_event(rng: &mut Rng, agencies: &[String], now: i64) -> Value {
    let mut event = valid_event(rng, agencies, now);
    let object = event.as_object_mut().expect("object");
    let fields: Vec<String> = object.keys().cloned().collect();
    let field = rng.pick(&fields).clone();
    match rng.below(12) {
        0..=3 => {
            object.insert(field, odd_value(rng));
        }
        4 => {
            object.remove(&field);
        }
        5 => {
            object.insert("unexpected_field".into(), odd_value(rng));
        }
        6 => {
            object.insert("event_id".into(), json!(format!("hs-{}", rng.below(1000))));
        }
        7 => {
            object.insert("agency_code".into(), json!(*rng.pick(&["HANOI", "snv", "", "X", "SNV ", "ÝTẾ"])));
        }
        8 => {
            let at = *rng.pick(&[now + 2 * DAY_MICROS, 0, -1, 900_000_000_000_000, 7_258_118_400_000_000]);
            object.insert("occurred_at".into(), json!(at));
        }
        9 => {
            for numeric in ["online_level", "amount_vnd", "quota", "filled", "fiscal_year", "due_at"] {
                if object.contains_key(numeric) {
                    object.insert(numeric.into(), json!(*rng.pick(&[-5, -1, 0, 7, i64::MAX, i64::MIN])));
                }
            }
        }
        10 => {
            object.insert("type".into(), json!(*rng.pick(&["weather", "Dossier", "", "budget"])));
        }
        _ => {
            object.insert("kind".into(), json!(*rng.pick(&["teleported", "RECEIVED", "hired", ""])));
        }
    }
    event
}

/// Events as a body: an array, an envelope, one object, or NDJSON with LF or CRLF endings.
fn encode(rng: &mut Rng, events: &[Value]) -> (Option<&'static str>, Vec<u8>) {
    let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).expect("JSON")).collect();
    match rng.below(if events.len() == 1 { 6 } else { 5 }) {
        0 => (Some("application/json"), format!("[{}]", lines.join(",")).into_bytes()),
        1 => {
            (Some("application/json; charset=utf-8"), format!("{{\"events\": [{}]}}", lines.join(",\r\n")).into_bytes())
        }
        2 => (Some("application/x-ndjson"), (lines.join("\n") + "\n").into_bytes()),
        3 => (Some("application/x-ndjson"), (lines.join("\r\n") + "\r\n\r\n").into_bytes()),
        4 => (None, format!("  [\r\n{}\r\n]  ", lines.join(",\r\n")).into_bytes()),
        _ => (Some("application/json"), lines[0].clone().into_bytes()),
    }
}

/// Byte-level damage to a body: cut short, bytes flipped, invalid UTF-8 or NUL inserted.
fn damage(rng: &mut Rng, mut body: Vec<u8>) -> Vec<u8> {
    if body.is_empty() {
        return body;
    }
    match rng.below(5) {
        0 => body.truncate(rng.below(body.len() as u64) as usize),
        1 => {
            for _ in 0..rng.between(1, 8) {
                let at = rng.below(body.len() as u64) as usize;
                body[at] = rng.next_u64() as u8;
            }
        }
        2 => {
            let at = rng.below(body.len() as u64 + 1) as usize;
            let bad: &[u8] = rng.pick::<&[u8]>(&[b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]);
            body.splice(at..at, bad.iter().copied());
        }
        3 => {
            let at = rng.below(body.len() as u64 + 1) as usize;
            body.splice(at..at, [0u8, b'\r', b'\n', b'"']);
        }
        _ => {
            // A line cut short in the middle of NDJSON: the other lines stand.
            let cut = rng.below(body.len() as u64) as usize;
            let end = (cut + rng.between(1, 200) as usize).min(body.len());
            body.drain(cut..end);
        }
    }
    body
}

/// Request `index` of the run seeded `seed`; the same pair always gives the same request.
fn generate(seed: u64, index: u64, agencies: &[String], now: i64) -> Request {
    let mut rng = Rng::for_item(seed, index);
    let province = Some(PROVINCE_TOKEN.to_owned());
    let valid_batch = |rng: &mut Rng, max: i64| -> Vec<Value> {
        (0..rng.between(1, max)).map(|_| valid_event(rng, agencies, now)).collect()
    };
    let roll = rng.below(100);
    match roll {
        0..=24 => {
            let events = valid_batch(&mut rng, 12);
            let (content_type, body) = encode(&mut rng, &events);
            Request {
                what: "valid events",
                token: province,
                content_type,
                body,
                expect: Expect::AllAccepted(events.len()),
            }
        }
        25..=47 => {
            let count = rng.between(1, 12);
            let events = some_mutated(&mut rng, agencies, now, count, 50);
            let (content_type, body) = encode(&mut rng, &events);
            Request { what: "mutated events", token: province, content_type, body, expect: Expect::Documented }
        }
        48..=61 => {
            let events = valid_batch(&mut rng, 12);
            let (content_type, body) = encode(&mut rng, &events);
            let body = damage(&mut rng, body);
            Request { what: "damaged bytes", token: province, content_type, body, expect: Expect::Documented }
        }
        62..=66 => {
            let len = rng.below(4096) as usize;
            let body = rng.bytes(len);
            let content_type = *rng.pick(&[Some("application/json"), Some("application/x-ndjson"), None]);
            Request { what: "random bytes", token: province, content_type, body, expect: Expect::Documented }
        }
        67..=74 => {
            let events = valid_batch(&mut rng, 5);
            let (content_type, body) = encode(&mut rng, &events);
            let token = match rng.below(5) {
                0 => None,
                1 => Some(format!("guess-{}", rng.next_u64())),
                2 => Some(String::new()),
                3 => Some(format!("{PROVINCE_TOKEN}x")),
                _ => Some(PROVINCE_TOKEN[..PROVINCE_TOKEN.len() - 1].to_owned()),
            };
            Request { what: "wrong token", token, content_type, body, expect: Expect::Status(401) }
        }
        75..=81 => {
            let events = valid_batch(&mut rng, 5);
            let (_, body) = encode(&mut rng, &events);
            let content_type = *rng.pick(&[
                "text/csv",
                "text/plain",
                "application/xml",
                "application/octet-stream",
                "multipart/form-data; boundary=x",
                "application/x-www-form-urlencoded",
                "application/jsonx",
            ]);
            Request {
                what: "wrong content type",
                token: province,
                content_type: Some(content_type),
                body,
                expect: Expect::Status(415),
            }
        }
        82..=84 => {
            let len = BODY_LIMIT + 1 + rng.below(BODY_LIMIT as u64) as usize;
            let line = serde_json::to_string(&valid_event(&mut rng, agencies, now)).expect("JSON") + "\n";
            let body: Vec<u8> = line.bytes().cycle().take(len).collect();
            Request {
                what: "oversized body",
                token: province,
                content_type: Some("application/x-ndjson"),
                body,
                expect: Expect::Status(413),
            }
        }
        85..=89 => {
            // A unit token with other units' events among its own: 403 or 207.
            let snv = ["SNV".to_owned()];
            let events: Vec<Value> = (0..rng.between(1, 6))
                .map(|_| {
                    let units = if rng.percent(50) { &snv[..] } else { agencies };
                    valid_event(&mut rng, units, now)
                })
                .collect();
            let (content_type, body) = encode(&mut rng, &events);
            let token = Some(SNV_TOKEN.to_owned());
            Request { what: "unit token", token, content_type, body, expect: Expect::Documented }
        }
        _ => {
            // Large NDJSON batches, a few events damaged, far below the body limit.
            let count = rng.between(50, 300);
            let events = some_mutated(&mut rng, agencies, now, count, 5);
            let body = events.iter().map(|e| serde_json::to_string(e).expect("JSON") + "\n").collect::<String>();
            let content_type = Some("application/x-ndjson");
            Request {
                what: "large batch",
                token: province,
                content_type,
                body: body.into_bytes(),
                expect: Expect::Documented,
            }
        }
    }
}

/// What the answers say, summed over requests.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    by_status: BTreeMap<u16, u64>,
    by_kind: BTreeMap<&'static str, u64>,
    accepted_ids: Vec<String>,
    /// Refusals the intake keeps (refused events, and whole bodies refused with 400/415), by reason.
    dead_letters: BTreeMap<String, u64>,
    /// Refusals not kept by design (401, 413), by status.
    not_kept: BTreeMap<u16, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        for (k, v) in other.by_status {
            *self.by_status.entry(k).or_default() += v;
        }
        for (k, v) in other.by_kind {
            *self.by_kind.entry(k).or_default() += v;
        }
        self.accepted_ids.extend(other.accepted_ids);
        for (k, v) in other.dead_letters {
            *self.dead_letters.entry(k).or_default() += v;
        }
        for (k, v) in other.not_kept {
            *self.not_kept.entry(k).or_default() += v;
        }
    }

    /// Checks one answer against the documented statuses and its request, and counts it.
    fn record(&mut self, request: &Request, status: u16, body: &Value) -> Result<(), String> {
        self.requests += 1;
        *self.by_status.entry(status).or_default() += 1;
        *self.by_kind.entry(request.what).or_default() += 1;
        match request.expect {
            Expect::Status(want) if want != status => return Err(format!("expected status {want}")),
            Expect::AllAccepted(n) if status != 200 || body["accepted"] != n => {
                return Err(format!("expected 200 with {n} accepted"))
            }
            _ => {}
        }
        match status {
            200 | 207 | 403 | 422 => {
                let (accepted, rejected) = (body["accepted"].as_u64(), body["rejected"].as_u64());
                let (Some(accepted), Some(rejected), Some(results)) = (accepted, rejected, body["results"].as_array())
                else {
                    return Err("a batch answer needs accepted, rejected and results".into());
                };
                if results.len() as u64 != accepted + rejected {
                    return Err("results do not add up to accepted + rejected".into());
                }
                let mut forbidden = false;
                for result in results {
                    match (result["status"].as_str(), result["reason"].as_str()) {
                        (Some("accepted"), None) => match result["event_id"].as_str() {
                            Some(id) => self.accepted_ids.push(id.to_owned()),
                            None => return Err("an accepted event without event_id".into()),
                        },
                        (Some("rejected"), Some(reason)) if result["message"].is_string() => {
                            forbidden |= reason == "forbidden";
                            *self.dead_letters.entry(reason.to_owned()).or_default() += 1;
                        }
                        _ => return Err(format!("result {result} is neither accepted nor rejected with a reason")),
                    }
                }
                let want = match (accepted, rejected) {
                    (_, 0) => 200,
                    (0, _) if forbidden => 403,
                    (0, _) => 422,
                    _ => 207,
                };
                if status != want {
                    return Err(format!("{accepted} accepted and {rejected} rejected must answer {want}"));
                }
            }
            400 | 415 => match body["error"].as_str() {
                Some(code @ ("malformed" | "invalid_utf8")) if body["message"].is_string() => {
                    *self.dead_letters.entry(code.to_owned()).or_default() += 1;
                }
                _ => return Err("a refused body needs error malformed/invalid_utf8 and a message".into()),
            },
            401 | 413 => {
                let want = if status == 401 { "unauthorized" } else { "too_large" };
                if body["error"] != want || !body["message"].is_string() {
                    return Err(format!("expected error {want:?} and a message"));
                }
                *self.not_kept.entry(status).or_default() += 1;
            }
            _ => return Err("not a documented status (503 would mean the local Kafka did not acknowledge)".into()),
        }
        Ok(())
    }
}

/// Sends request `index` and checks its answer; an error names the request so it can be replayed.
async fn send(client: &reqwest::Client, url: &str, seed: u64, index: u64, request: &Request, tally: &mut Tally) -> u16 {
    let mut builder = client.post(url).body(request.body.clone());
    if let Some(content_type) = request.content_type {
        builder = builder.header("content-type", content_type);
    }
    if let Some(token) = &request.token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let replay = format!("request {index} ({}, {} bytes; seed {seed})", request.what, request.body.len());
    let response = builder.send().await.unwrap_or_else(|e| panic!("{replay}: no answer: {e:?}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_else(|e| panic!("{replay}: answer not read: {e}"));
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{replay}: status {status}, not JSON ({e}): {text:.300}"));
    if let Err(problem) = tally.record(request, status, &body) {
        panic!("{replay}: status {status}: {problem}: {text:.500}");
    }
    status
}

/// One client per connection (no pool beyond one idle connection).
fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(1).timeout(Duration::from_secs(30)).build().expect("HTTP client")
}

/// `parpulse ingest http` on a port of its own choosing, producing to the test's topics.
async fn start_intake_process(env: &TestEnv, token_file: &std::path::Path) -> (Reaped, String) {
    let child = Command::new(parpulse_tests::parpulse_bin())
        .args(["ingest", "http", "--listen", "127.0.0.1:0", "--body-limit", &BODY_LIMIT.to_string()])
        .arg("--tokens")
        .arg(token_file)
        .env("PARPULSE_KAFKA_BROKERS", &env.brokers)
        .env("PARPULSE_TOPIC_PREFIX", env.topic_prefix())
        .env("PARPULSE_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("starting parpulse ingest http");
    let mut child = Reaped(child);
    let base = format!("http://127.0.0.1:{}", listening_port(&mut child.0, Duration::from_secs(30)).await);
    wait_http_ok(&format!("{base}/healthz"), Duration::from_secs(30)).await;
    child.assert_running("the intake");
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_requests_are_answered_and_accounted_for_exactly() {
    let requests = size_from_env("PARPULSE_FUZZ_REQUESTS", 4000);
    let seed = seed_from_env("PARPULSE_FUZZ_SEED");
    let rss_limit_mib = size_from_env("PARPULSE_FUZZ_RSS_LIMIT_MIB", RSS_LIMIT_MIB);
    let env = TestEnv::new("intake_fuzz");
    let store = env.connect().await;
    env.migrate(&store).await;
    let token_file = std::env::temp_dir().join(format!("parpulse-fuzz-tokens-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&token_file, parpulse_tests::test_token_file()).expect("writing the token file");
    let (mut intake, base) = start_intake_process(&env, &token_file).await;
    let pid = intake.pid();
    let agencies: Arc<Vec<String>> =
        Arc::new(AgencyRegistry::demo().iter().map(|a| a.code.as_str().to_owned()).collect());
    let now = now_micros();

    let started = Instant::now();
    let deadline = Duration::from_secs(60 + requests as u64 / 20);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (next, agencies, url) = (next.clone(), agencies.clone(), format!("{base}/v1/events"));
        workers.push(tokio::spawn(async move {
            let mut client = client();
            let mut tally = Tally::default();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= requests {
                    return tally;
                }
                assert!(started.elapsed() < deadline, "{index} of {requests} requests sent within {deadline:?}");
                let request = generate(seed, index as u64, &agencies, now);
                if send(&client, &url, seed, index as u64, &request, &mut tally).await == 413 {
                    // The intake answers 413 without reading the body and without
                    // `Connection: close`, then drops the connection: a new one for the next
                    // request (docs/RELIABILITY.md).
                    client = self::client();
                }
            }
        }));
    }
    let mut peak_seen_kib = 0;
    while !workers.iter().all(|w| w.is_finished()) {
        intake.assert_running("the intake");
        peak_seen_kib = peak_seen_kib.max(memory(pid).rss_kib);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await.expect("a fuzz worker failed (its message names the request and seed)"));
    }
    let elapsed = started.elapsed();
    intake.assert_running("the intake");
    let rss = memory(pid);
    assert_eq!(tally.requests, requests as u64);

    // The intake counted the same answers.
    let metrics = reqwest::get(format!("{base}/metrics")).await.expect("intake /metrics").text().await.unwrap();
    let samples = prom_text::parse(&metrics);
    for (status, count) in &tally.by_status {
        let counted = prom_text::find(&samples, "parpulse_intake_requests_total", &[("status", &status.to_string())]);
        assert_eq!(counted, Some(*count as f64), "intake's own count of {status} answers");
    }
    let too_large = tally.not_kept.get(&413).copied().unwrap_or(0);
    let counted =
        prom_text::find(&samples, "parpulse_ingest_rejected_total", &[("source", "http"), ("reason", "too_large")]);
    assert_eq!(counted.unwrap_or(0.0), too_large as f64, "413s are not kept but counted");

    // Accepted events are exactly the records on the event topics.
    let codec = AvroCodec::new();
    let mut stored_ids = Vec::new();
    for topic in env.topics.event_topics() {
        for record in read_topic(&env.brokers, topic, Duration::from_secs(120)) {
            let event = codec.decode_event(&record.payload).expect("records on event topics decode");
            stored_ids.push(event.event_id().to_owned());
        }
    }
    let mut accepted_ids = std::mem::take(&mut tally.accepted_ids);
    let accepted = accepted_ids.len();
    accepted_ids.sort_unstable();
    stored_ids.sort_unstable();
    assert_eq!(stored_ids.len(), accepted, "records on the event topics vs events the answers accepted");
    assert!(stored_ids == accepted_ids, "the event topics hold exactly the accepted event ids");

    // Refusals are exactly the dead letters, reason by reason.
    let mut dead: BTreeMap<String, u64> = BTreeMap::new();
    for record in read_topic(&env.brokers, &env.topics.deadletter, Duration::from_secs(120)) {
        assert_eq!(record.headers.get("source").map(String::as_str), Some("http"), "{:?}", record.headers);
        assert!(record.headers.contains_key("message"), "{:?}", record.headers);
        *dead.entry(record.headers.get("reason").cloned().unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(dead, tally.dead_letters, "dead letters by reason vs refusals in the answers");
    for (status, kind) in [
        (200, "valid"),
        (207, "mixed"),
        (400, "bad body"),
        (401, "token"),
        (413, "size"),
        (415, "type"),
        (422, "invalid"),
    ] {
        assert!(
            requests < 1000 || tally.by_status.get(&status).is_some_and(|n| *n > 0),
            "no {status} ({kind}) answer in {requests} requests: the generator must reach every status"
        );
    }
    assert!(
        rss.peak_kib < rss_limit_mib as u64 * 1024,
        "intake peak RSS {} MiB over the {rss_limit_mib} MiB bound",
        rss.peak_kib / 1024
    );

    let figures = json!({
        "seed": seed, "requests": requests, "connections": CONNECTIONS, "seconds": elapsed.as_secs_f64(),
        "by_status": tally.by_status, "by_kind": tally.by_kind, "accepted_events": accepted,
        "dead_letters": tally.dead_letters.values().sum::<u64>(), "dead_letters_by_reason": tally.dead_letters,
        "not_kept_by_status": tally.not_kept, "rss_mib": rss.rss_kib / 1024, "peak_rss_mib": rss.peak_kib / 1024,
        "peak_rss_sampled_mib": peak_seen_kib / 1024, "body_limit_bytes": BODY_LIMIT,
    });
    println!("intake fuzz figures: {figures:#}");
    if let Ok(path) = std::env::var("PARPULSE_FUZZ_FIGURES") {
        std::fs::write(&path, serde_json::to_vec_pretty(&figures).unwrap()).expect("writing the figures");
    }
    drop(intake);
    std::fs::remove_file(&token_file).ok();
    env.delete_topics(&[&env.topics.budget, &env.topics.staffing]).await;
    env.cleanup().await;
}
