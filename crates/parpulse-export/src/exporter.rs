//! The exporter: refreshes KPI values from ClickHouse on an interval and keeps
//! the rendered `/metrics` text, so scrapes are cheap and never wait on
//! ClickHouse. When ClickHouse is unreachable, the last values keep being served,
//! `parpulse_exporter_stale` turns 1 and `/readyz` fails.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use parpulse_clickhouse::{budget_staffing, dossier_day, dossier_state, Store, StoreError};
use parpulse_core::time::now_micros;
use parpulse_core::{AgencyRegistry, LocalDay};
use prometheus::{IntCounter, IntGauge, Registry};

use crate::exposition::{encode, render_prometheus};
use crate::snapshot::{AdministrationRows, Snapshot, Window};
use parpulse_http::MetricsSource;

#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub refresh_interval: Duration,
    /// After this long without a successful refresh, the values are stale.
    pub stale_after: Duration,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self { refresh_interval: Duration::from_secs(5), stale_after: Duration::from_secs(60) }
    }
}

struct Cached {
    kpi_text: Arc<String>,
    snapshot: Arc<Snapshot>,
    refreshed: Option<Instant>,
}

struct Health {
    registry: Registry,
    refreshes: IntCounter,
    refresh_errors: IntCounter,
    last_refresh: IntGauge,
    stale: IntGauge,
}

impl Health {
    fn new() -> Self {
        let registry = Registry::new();
        let refreshes =
            IntCounter::new("parpulse_exporter_refreshes_total", "Successful KPI refreshes from ClickHouse")
                .expect("valid");
        let refresh_errors = IntCounter::new(
            "parpulse_exporter_refresh_errors_total",
            "Failed KPI refreshes (ClickHouse unreachable or failing)",
        )
        .expect("valid");
        let last_refresh = IntGauge::new(
            "parpulse_exporter_last_refresh_timestamp_seconds",
            "Unix time of the last successful refresh",
        )
        .expect("valid");
        let stale =
            IntGauge::new("parpulse_exporter_stale", "1 when the served KPI values are older than the staleness limit")
                .expect("valid");
        for c in [
            Box::new(refreshes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refresh_errors.clone()),
            Box::new(last_refresh.clone()),
            Box::new(stale.clone()),
        ] {
            registry.register(c).expect("unique");
        }
        Self { registry, refreshes, refresh_errors, last_refresh, stale }
    }
}

pub struct Exporter {
    store: Store,
    registry: AgencyRegistry,
    config: ExporterConfig,
    cached: RwLock<Cached>,
    health: Health,
}

impl Exporter {
    pub fn new(store: Store, registry: AgencyRegistry, config: ExporterConfig) -> Self {
        Self {
            store,
            registry,
            config,
            cached: RwLock::new(Cached {
                kpi_text: Arc::new(String::new()),
                snapshot: Arc::new(Snapshot::default()),
                refreshed: None,
            }),
            health: Health::new(),
        }
    }

    /// Reads the day buckets every window needs and replaces the cached values.
    pub async fn refresh(&self) -> Result<Arc<Snapshot>, StoreError> {
        let now = now_micros();
        let today = LocalDay::of_micros(now);
        let from = Window::earliest_needed(today);
        let result = async {
            let rows = dossier_day::read_days(&self.store, from, today).await?;
            let resolved = dossier_state::read_resolved_days(&self.store, from, today).await?;
            let open = dossier_state::read_open(&self.store, now).await?;
            let service = dossier_state::read_received_facts(&self.store, from, today).await?;
            let administration = AdministrationRows {
                budget: budget_staffing::read_budget_year(&self.store, today.year()).await?,
                headcounts: budget_staffing::read_headcounts(&self.store).await?,
            };
            Ok::<_, StoreError>((rows, resolved, open, service, administration))
        }
        .await;
        let (rows, resolved, open, service, administration) = match result {
            Ok(read) => read,
            Err(error) => {
                self.health.refresh_errors.inc();
                return Err(error);
            }
        };
        let snapshot = Arc::new(
            Snapshot::build_all(&rows, &resolved, &open, &self.registry, today)
                .with_administration(&administration, &self.registry)
                .with_service(&service, &self.registry),
        );
        let text = Arc::new(render_prometheus(&snapshot, &self.registry));
        {
            let mut cached = self.cached.write().expect("cache lock poisoned");
            cached.kpi_text = text;
            cached.snapshot = snapshot.clone();
            cached.refreshed = Some(Instant::now());
        }
        self.health.refreshes.inc();
        self.health.last_refresh.set(now_micros() / 1_000_000);
        Ok(snapshot)
    }

    /// Refreshes every `refresh_interval` until `shutdown` completes.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.config.refresh_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => {
                    if let Err(error) = self.refresh().await {
                        tracing::warn!(%error, "KPI refresh failed; serving the last values");
                    }
                }
            }
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.cached.read().expect("cache lock poisoned").snapshot.clone()
    }

    pub fn registry(&self) -> &AgencyRegistry {
        &self.registry
    }

    fn is_fresh(&self) -> bool {
        let cached = self.cached.read().expect("cache lock poisoned");
        cached.refreshed.is_some_and(|at| at.elapsed() <= self.config.stale_after)
    }
}

#[derive(serde::Deserialize)]
struct ReportQuery {
    window: Option<String>,
}

async fn report(
    axum::extract::State(exporter): axum::extract::State<Arc<Exporter>>,
    axum::extract::Query(query): axum::extract::Query<ReportQuery>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let label = query.window.as_deref().unwrap_or("30d");
    let Some(window) = Window::ALL.into_iter().find(|w| w.label() == label) else {
        return (axum::http::StatusCode::BAD_REQUEST, format!("window {label:?}: use day, 7d, 30d, mtd or ytd\n"))
            .into_response();
    };
    let html = crate::scorecard::render_html(&exporter.snapshot(), &exporter.registry, window);
    ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

impl Exporter {
    /// `/report` (the scorecard, `?window=30d`) plus `/metrics`, `/healthz`, `/readyz`.
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/report", axum::routing::get(report))
            .with_state(self.clone())
            .merge(parpulse_http::router(self))
    }
}

impl MetricsSource for Exporter {
    fn render(&self) -> String {
        self.health.stale.set(i64::from(!self.is_fresh()));
        let kpi_text = self.cached.read().expect("cache lock poisoned").kpi_text.clone();
        let mut text = encode(&self.health.registry);
        text.push_str(&kpi_text);
        text
    }

    fn ready(&self) -> bool {
        self.is_fresh()
    }
}
