//! parpulse-http: the endpoints every parpulse process serves for operators:
//! `/metrics` (Prometheus text), `/healthz` (the process runs) and `/readyz`
//! (it can do its job: for the exporter, values are fresh; for the intake,
//! Kafka answers). A process adds its own routes with [`router`]'s `merge`.

pub mod calendar;
pub mod health;

pub use calendar::register_calendar_metrics;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use tokio::net::TcpListener;

/// What `/metrics` shows and `/readyz` asks.
pub trait MetricsSource: Send + Sync + 'static {
    fn render(&self) -> String;
    fn ready(&self) -> bool;
}

/// A plain registry (e.g. the aggregator's health metrics): always ready.
pub struct RegistrySource(pub Registry);

impl MetricsSource for RegistrySource {
    fn render(&self) -> String {
        encode(&self.0)
    }

    fn ready(&self) -> bool {
        true
    }
}

/// A registry whose process is ready while every dependency answers (the aggregator).
pub struct HealthSource {
    pub registry: Registry,
    pub health: health::Health,
}

impl MetricsSource for HealthSource {
    fn render(&self) -> String {
        encode(&self.registry)
    }

    fn ready(&self) -> bool {
        self.health.all_up()
    }
}

/// Registers `parpulse_build_info{version}` (always 1) in `registry`: which parpulse
/// version a process runs, for dashboards and during rolling upgrades.
pub fn register_build_info(registry: &Registry) {
    let info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("parpulse_build_info", "The parpulse version this process runs (value always 1)"),
        &["version"],
    )
    .expect("valid metric");
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(info)).expect("parpulse_build_info is registered once");
}

/// Text-encodes a registry in the Prometheus exposition format.
pub fn encode(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut out).expect("text encoding into memory cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics(State(source): State<Arc<dyn MetricsSource>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], source.render())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(source): State<Arc<dyn MetricsSource>>) -> (StatusCode, &'static str) {
    if source.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

pub fn router(source: Arc<dyn MetricsSource>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(source)
}

/// Serves the endpoints on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn MetricsSource>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(source), shutdown).await
}

/// Serves any router (operator endpoints merged with a process's own) until `shutdown`.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
