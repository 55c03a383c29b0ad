//! The exporter: refreshes KPI values from ClickHouse on an interval and keeps
//! the rendered `/metrics` text, so scrapes are cheap and never wait on
//! ClickHouse. When ClickHouse is unreachable, the last values keep being served,
//! `parpulse_exporter_stale` turns 1 and `/readyz` fails.
//!
//! Two cadences: every count of a window (receptions, endings by the lateness rules,
//! Decision 766 facts: the day buckets, one small table, one read) every
//! `refresh_interval`; what is not a count of a window (open and overdue dossiers now,
//! which scan a row per dossier, budget and staffing) every `lateness_refresh_interval`,
//! in its own loop. Each refresh renders from the newest of both; no ratio takes its
//! numerator and denominator from different reads (docs/ARCHITECTURE.md).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use parpulse_clickhouse::{budget_staffing, day_count, dossier_state, procedure_day, Store, StoreError};
use parpulse_core::procedures::ProcedureCatalogue;
use parpulse_core::time::{now_micros, Clock};
use parpulse_core::{AgencyRegistry, LocalDay};
use prometheus::{IntCounter, IntGauge, Registry};

use crate::exposition::{encode, render_prometheus};
use crate::snapshot::{AdministrationRows, Snapshot, Window};
use parpulse_http::MetricsSource;

#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub refresh_interval: Duration,
    /// How often the per-dossier and administration reads run (at least `refresh_interval`).
    pub lateness_refresh_interval: Duration,
    /// After this long without a successful refresh, the values are stale.
    pub stale_after: Duration,
    /// "Now" for the windows, the fiscal year, open and overdue dossiers and the period
    /// report: the wall clock in production, a fixed one in tests (`PARPULSE_FAKE_NOW`).
    pub clock: Clock,
    /// The procedure catalogue (`PARPULSE_PROCEDURES`; the demo's by default), joined with
    /// the receptions per procedure when read.
    pub procedures: Arc<ProcedureCatalogue>,
}

impl ExporterConfig {
    // The defaults, here only: `parpulse export`'s flags show and use these.
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
    pub const DEFAULT_LATENESS_REFRESH_INTERVAL: Duration = Duration::from_secs(15);
    pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            refresh_interval: Self::DEFAULT_REFRESH_INTERVAL,
            lateness_refresh_interval: Self::DEFAULT_LATENESS_REFRESH_INTERVAL,
            stale_after: Self::DEFAULT_STALE_AFTER,
            clock: Clock::Wall,
            procedures: Arc::new(ProcedureCatalogue::demo()),
        }
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
    /// ClickHouse as the exporter sees it (`parpulse_dependency_up`, `/readyz`, bounded logs).
    dependencies: parpulse_http::health::Health,
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
        let dependencies = parpulse_http::health::Health::new(&registry, &["clickhouse"]);
        parpulse_http::register_build_info(&registry);
        parpulse_http::register_calendar_metrics(&registry);
        Self { registry, refreshes, refresh_errors, last_refresh, stale, dependencies }
    }
}

/// The read that scans a row per dossier (open dossiers now), plus budget and staffing (slow cadence).
struct DossierFacts {
    open: Vec<dossier_state::OpenDossiers>,
    administration: AdministrationRows,
}

pub struct Exporter {
    store: Store,
    registry: AgencyRegistry,
    config: ExporterConfig,
    cached: RwLock<Cached>,
    facts: RwLock<Option<Arc<DossierFacts>>>,
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
            facts: RwLock::new(None),
            health: Health::new(),
        }
    }

    /// Reads everything (day buckets and dossier facts) and replaces the cached values.
    pub async fn refresh(&self) -> Result<Arc<Snapshot>, StoreError> {
        self.refresh_facts().await?;
        self.refresh_days().await
    }

    /// Re-reads the per-dossier facts, budget and staffing (the slow cadence).
    pub async fn refresh_facts(&self) -> Result<(), StoreError> {
        let now = self.config.clock.now_micros();
        let today = LocalDay::of_micros(now);
        let result = async {
            Ok::<_, StoreError>(DossierFacts {
                open: dossier_state::read_open(&self.store, now).await?,
                administration: AdministrationRows {
                    budget: budget_staffing::read_budget_year(&self.store, today.year()).await?,
                    headcounts: budget_staffing::read_headcounts(&self.store).await?,
                },
            })
        }
        .await;
        match result {
            Ok(facts) => {
                *self.facts.write().expect("facts lock poisoned") = Some(Arc::new(facts));
                Ok(())
            }
            Err(error) => {
                self.health.refresh_errors.inc();
                Err(error)
            }
        }
    }

    /// Re-reads the day buckets and renders with the newest dossier facts (reading
    /// those first if there are none yet).
    pub async fn refresh_days(&self) -> Result<Arc<Snapshot>, StoreError> {
        let now = self.config.clock.now_micros();
        let today = LocalDay::of_micros(now);
        let from = Window::earliest_needed(today);
        if self.facts.read().expect("facts lock poisoned").is_none() {
            self.refresh_facts().await?;
        }
        let read = async {
            Ok::<_, StoreError>((
                day_count::read_days(&self.store, from, today).await?,
                procedure_day::read_days(&self.store, from, today).await?,
            ))
        };
        let (rows, procedure_rows) = match read.await {
            Ok(rows) => rows,
            Err(error) => {
                self.health.refresh_errors.inc();
                return Err(error);
            }
        };
        let facts = self.facts.read().expect("facts lock poisoned").clone().expect("read above");
        let snapshot = Arc::new(
            Snapshot::build_all(&rows, &facts.open, &self.registry, today)
                .with_administration(&facts.administration, &self.registry)
                .with_procedures(&procedure_rows, &self.config.procedures, &self.registry),
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

    /// Refreshes every `refresh_interval` until `shutdown` completes, then returns once
    /// the reads under way are done. The dossier facts refresh in a task of their own, so
    /// a long scan never delays the day buckets; it stops with this one and is awaited.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let (stop_facts, mut facts_stopped) = tokio::sync::watch::channel(false);
        let facts = tokio::spawn({
            let exporter = self.clone();
            let every = self.config.lateness_refresh_interval.max(self.config.refresh_interval);
            async move {
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let clickhouse = exporter.health.dependencies.get("clickhouse");
                loop {
                    tokio::select! {
                        // The watch's guard is not Send: dropped before the arm runs.
                        _ = async { facts_stopped.wait_for(|&stop| stop).await.map(|_| ()) } => break,
                        _ = ticker.tick() => match exporter.refresh_facts().await {
                            Ok(()) => clickhouse.succeeded(),
                            Err(error) => clickhouse.failed(&format_args!("dossier facts refresh: {error}")),
                        },
                    }
                }
            }
        });
        let mut ticker = tokio::time::interval(self.config.refresh_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let clickhouse = self.health.dependencies.get("clickhouse");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticker.tick() => {
                    // Failures are logged by the dependency (state changes and a periodic
                    // summary); the last values are served meanwhile.
                    match self.refresh_days().await {
                        Ok(_) => clickhouse.succeeded(),
                        Err(error) => clickhouse.failed(&format_args!("KPI refresh: {error}")),
                    }
                }
            }
        }
        stop_facts.send_replace(true);
        if let Err(error) = facts.await {
            tracing::error!(%error, "the dossier facts refresh task failed");
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
    /// A closed period (`2019-11`, `2019-Q4`, ...): the period report instead of the scorecard.
    period: Option<String>,
    /// Of the period report: html (default), csv or xlsx.
    format: Option<String>,
}

/// `/report?period=P[&format=csv|xlsx]`: the period report, read from ClickHouse on request.
async fn period_report(exporter: &Exporter, period: &str, format: Option<&str>) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let period = match parpulse_core::period::Period::parse(period) {
        Ok(period) => period,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let name = format.unwrap_or("html");
    let Some(format) = crate::period_report::Format::parse(name) else {
        return (StatusCode::BAD_REQUEST, format!("format {name:?}: use html, csv or xlsx\n")).into_response();
    };
    let calendar = parpulse_core::lifecycle::active_calendar();
    let now = exporter.config.clock.now_micros();
    let (store, registry, catalogue) = (&exporter.store, &exporter.registry, &exporter.config.procedures);
    let report = match crate::period_report::read(store, registry, catalogue, &period, calendar, now).await {
        Ok(report) => report,
        Err(e) => {
            tracing::warn!(error = %e, period = %period.label(), "period report failed");
            return (StatusCode::SERVICE_UNAVAILABLE, format!("reading the period's dossiers failed: {e}\n"))
                .into_response();
        }
    };
    let bytes = match crate::period_report::render(&report, format) {
        Ok(bytes) => bytes,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let content_type = (header::CONTENT_TYPE, format.content_type().to_owned());
    match format {
        crate::period_report::Format::Html => ([content_type], bytes).into_response(),
        _ => {
            let file = format!("attachment; filename=\"bao-cao-{}.{}\"", period.label(), format.extension());
            ([content_type, (header::CONTENT_DISPOSITION, file)], bytes).into_response()
        }
    }
}

async fn report(
    axum::extract::State(exporter): axum::extract::State<Arc<Exporter>>,
    axum::extract::Query(query): axum::extract::Query<ReportQuery>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(period) = query.period.as_deref() {
        return period_report(&exporter, period, query.format.as_deref()).await;
    }
    let label = query.window.as_deref().unwrap_or("30d");
    let Some(window) = Window::ALL.into_iter().find(|w| w.label() == label) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            format!("window {label:?}: use day, 7d, 30d, mtd, ytd, last_month or last_quarter\n"),
        )
            .into_response();
    };
    let html = crate::scorecard::render_html(&exporter.snapshot(), &exporter.registry, window);
    ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

impl Exporter {
    /// `/report` (the scorecard, `?window=30d`; a period's report, `?period=2019-11&format=csv`) plus `/metrics`, `/healthz`, `/readyz`.
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
        self.is_fresh() && self.health.dependencies.all_up()
    }
}
