//! HTTP intake: agencies `POST /v1/events` with their bearer token.
//!
//! Per event, not all-or-nothing: each event of a batch is accepted or refused
//! on its own, and the response lists the outcome of every one. Refused input
//! goes to the dead-letter topic with its reason. A 2xx answer is given only
//! after Kafka acknowledged every record of the request (acks=all), so 2xx
//! means durable; if Kafka does not acknowledge, the answer is 503 and the
//! client retries the whole request (event ids make that idempotent).
//!
//! | status | when |
//! |---|---|
//! | 200 | every event accepted |
//! | 207 | some accepted, some refused (see `results`) |
//! | 400 | body not UTF-8 (`invalid_utf8`) or not JSON / NDJSON of events (`malformed`) |
//! | 401 | no token, or an unknown one |
//! | 403 | every event refused, some because the token does not cover their unit |
//! | 413 | body larger than the limit |
//! | 415 | content type neither JSON nor NDJSON |
//! | 422 | every event refused by validation |
//! | 503 | Kafka did not acknowledge: nothing is promised, retry |

pub mod auth;
pub mod body;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use parpulse_core::time::now_micros;
use parpulse_core::validate::{RejectReason, Rejection};
use parpulse_http::MetricsSource;
use serde::Serialize;

use crate::gate::Outgoing;
use crate::kafka::KafkaSink;
use auth::TokenStore;

const SOURCE: &str = "http";

/// Intake settings.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
}

impl IntakeConfig {
    /// 8 MiB (`PARPULSE_INTAKE_BODY_LIMIT`).
    pub const DEFAULT_BODY_LIMIT_BYTES: usize = 8 * 1024 * 1024;
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self { body_limit_bytes: Self::DEFAULT_BODY_LIMIT_BYTES }
    }
}

pub struct Intake {
    sink: KafkaSink,
    tokens: TokenStore,
    config: IntakeConfig,
    kafka_ready: AtomicBool,
}

/// Outcome of one event.
#[derive(Debug, Serialize)]
pub struct EventResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BatchResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<EventResult>,
}

#[derive(Debug, Serialize)]
struct ErrorResponse<'a> {
    error: &'a str,
    message: String,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ErrorResponse { error: code, message: message.into() })).into_response()
}

impl Intake {
    pub fn new(sink: KafkaSink, tokens: TokenStore, config: IntakeConfig) -> Self {
        Self { sink, tokens, config, kafka_ready: AtomicBool::new(false) }
    }

    /// The intake routes plus `/metrics`, `/healthz`, `/readyz`.
    pub fn router(self: Arc<Self>) -> Router {
        let limit = self.config.body_limit_bytes;
        Router::new()
            .route("/v1/events", post(post_events))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self.clone())
            .merge(parpulse_http::router(self))
    }

    /// Re-checks every `period` that Kafka answers (for `/readyz`), until `shutdown`.
    pub async fn watch_kafka(self: Arc<Self>, period: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let ready = self.sink.reachable(Duration::from_secs(2)).await;
            self.kafka_ready.store(ready, Ordering::Relaxed);
            let outcome = if ready { Ok(()) } else { Err("no broker answers a metadata request") };
            self.sink.metrics().health.get("kafka").record(outcome);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    fn authenticate<'a>(&'a self, headers: &HeaderMap) -> Option<&'a str> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?.trim();
        self.tokens.authenticate(token)
    }

    async fn handle(&self, headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
        let Some(holder) = self.authenticate(headers) else {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send `Authorization: Bearer <token>` with your unit's token",
            );
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        };
        let holder = holder.to_owned();
        let body = match body {
            Ok(body) => body,
            Err(rejection) => {
                // The body was not read whole, so there is nothing to keep; the metric counts it.
                self.sink.metrics().rejected.with_label_values(&[SOURCE, "too_large"]).inc();
                return error(
                    rejection.status(),
                    "too_large",
                    format!("{} (limit {} bytes)", rejection.body_text(), self.config.body_limit_bytes),
                );
            }
        };
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let Some(format) = body::format_of(content_type) else {
            let rejection = Rejection::new(
                RejectReason::Malformed,
                format!("content type {content_type:?} is neither JSON nor NDJSON"),
            );
            return self.refuse_whole(StatusCode::UNSUPPORTED_MEDIA_TYPE, &holder, &body, rejection).await;
        };
        let Ok(text) = std::str::from_utf8(&body) else {
            let rejection =
                Rejection::new(RejectReason::InvalidUtf8, "body is not valid UTF-8 (send UTF-8 encoded JSON)");
            return self.refuse_whole(StatusCode::BAD_REQUEST, &holder, &body, rejection).await;
        };
        let items = match body::split(format, text) {
            Ok(items) => items,
            Err(rejection) => return self.refuse_whole(StatusCode::BAD_REQUEST, &holder, &body, rejection).await,
        };

        let now = now_micros();
        let registry = self.sink.gate().registry();
        let mut outgoing = Vec::with_capacity(items.len());
        let mut event_ids = Vec::with_capacity(items.len());
        for item in &items {
            let judged = match body::parse_event(item.raw) {
                Err(rejection) => {
                    event_ids.push(None);
                    Outgoing::dead_letter(holder.clone(), item.raw, rejection, SOURCE)
                }
                Ok(event) => {
                    event_ids.push(Some(event.event_id().to_owned()));
                    if auth::covers(registry, &holder, event.agency_code()) {
                        self.sink.gate().judge(event, item.raw.as_bytes(), SOURCE, now)
                    } else {
                        let rejection = Rejection::new(
                            RejectReason::Forbidden,
                            format!("this token speaks for {holder}, not for {:?}", event.agency_code()),
                        );
                        Outgoing::dead_letter(event.agency_code(), item.raw, rejection, SOURCE)
                    }
                }
            };
            outgoing.push(judged);
        }
        if let Err(e) = self.sink.deliver(&outgoing, SOURCE).await {
            return self.unavailable(&e);
        }

        let results: Vec<EventResult> = items
            .iter()
            .zip(&outgoing)
            .zip(event_ids)
            .map(|((item, out), event_id)| match out.rejection() {
                None => EventResult { index: item.index, event_id, status: "accepted", reason: None, message: None },
                Some(r) => EventResult {
                    index: item.index,
                    event_id,
                    status: "rejected",
                    reason: Some(r.reason.code()),
                    message: Some(r.message.clone()),
                },
            })
            .collect();
        let rejected = results.iter().filter(|r| r.status == "rejected").count();
        let accepted = results.len() - rejected;
        let status = if rejected == 0 {
            StatusCode::OK
        } else if accepted > 0 {
            StatusCode::MULTI_STATUS
        } else if results.iter().any(|r| r.reason == Some(RejectReason::Forbidden.code())) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        (status, Json(BatchResponse { accepted, rejected, results })).into_response()
    }

    /// Refuses a whole body: keeps it in the dead-letter topic, then answers `status`.
    async fn refuse_whole(&self, status: StatusCode, holder: &str, body: &[u8], rejection: Rejection) -> Response {
        let outgoing = [Outgoing::dead_letter(holder, body, rejection.clone(), SOURCE)];
        if let Err(e) = self.sink.deliver(&outgoing, SOURCE).await {
            return self.unavailable(&e);
        }
        error(status, rejection.reason.code(), rejection.message)
    }

    /// 503: Kafka did not acknowledge. Logged through the `kafka` dependency (a line when
    /// it goes down, then a periodic summary), not once per request.
    fn unavailable(&self, e: &crate::kafka::SinkError) -> Response {
        self.sink.metrics().health.get("kafka").failed(e);
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "kafka_unavailable",
            format!("events not stored ({e}); retry the same request later"),
        );
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        response
    }
}

async fn post_events(
    State(intake): State<Arc<Intake>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // A body over the limit is not read to its end: the connection cannot carry another
    // request, so the client is told to open a new one (keep-alive clients would
    // otherwise send their next request into a connection the server drops).
    let unread = body.is_err();
    let mut response = intake.handle(&headers, body).await;
    if unread {
        response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    intake.sink.metrics().requests.with_label_values(&[response.status().as_str()]).inc();
    response
}

impl MetricsSource for Intake {
    fn render(&self) -> String {
        parpulse_http::encode(&self.sink.metrics().registry)
    }

    fn ready(&self) -> bool {
        self.kafka_ready.load(Ordering::Relaxed) && self.sink.metrics().health.all_up()
    }
}
