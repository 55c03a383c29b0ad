//! The services a process depends on (Kafka, ClickHouse), as operators see them:
//! `parpulse_dependency_up{dependency}` on /metrics, `/readyz` false while one is
//! down, and a bounded log: one line when a dependency goes down, one when it comes
//! back, and while it stays down a summary at most every [`SUMMARY_EVERY`], however
//! many attempts fail meanwhile.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

/// How often a dependency that stays down is reported again.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// One service this process needs.
pub struct Dependency {
    name: &'static str,
    up: AtomicBool,
    failures: AtomicU64,
    /// When it went down and when it was last reported (None while up).
    down: Mutex<Option<(Instant, Instant)>>,
    gauge: IntGauge,
    /// When an attempt last reported, either way: milliseconds since `created`.
    heard_ms: AtomicU64,
    created: Instant,
    /// Attempts under way ([`Dependency::attempt`]): each will report as it ends.
    under_way: AtomicUsize,
}

/// An attempt at a dependency under way, counted while alive (see [`Dependency::attempt`]).
pub struct Attempt<'a>(&'a AtomicUsize);

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Dependency {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Marks an attempt as under way until the value is dropped. An attempt may wait long
    /// for its answer (a checkpoint write, a state load), and it will report either way,
    /// so meanwhile the dependency is not silent: see [`Dependency::silent_for`].
    pub fn attempt(&self) -> Attempt<'_> {
        self.under_way.fetch_add(1, Ordering::AcqRel);
        Attempt(&self.under_way)
    }

    /// How long since an attempt last reported success or failure (since creation if
    /// none did), zero while an attempt is under way: a process that is idle hears
    /// nothing, and may probe once this is long enough.
    pub fn silent_for(&self) -> Duration {
        if self.under_way.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let heard = Duration::from_millis(self.heard_ms.load(Ordering::Acquire));
        self.created.elapsed().saturating_sub(heard)
    }

    /// Reports a probe's outcome: [`Dependency::succeeded`] or [`Dependency::failed`].
    pub fn record<T>(&self, outcome: Result<T, impl std::fmt::Display>) {
        match outcome {
            Ok(_) => self.succeeded(),
            Err(error) => self.failed(&error),
        }
    }

    fn heard(&self) {
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard_ms.store(now, Ordering::Release);
    }

    /// The dependency answered: logs its return if it was down.
    pub fn succeeded(&self) {
        self.heard();
        if self.up.swap(true, Ordering::AcqRel) {
            return;
        }
        self.gauge.set(1);
        let down = self.down.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let failures = self.failures.swap(0, Ordering::AcqRel);
        if let Some((since, _)) = down {
            tracing::info!(
                dependency = self.name,
                down_for_s = since.elapsed().as_secs(),
                failed_attempts = failures,
                "{} is reachable again",
                self.name
            );
        }
    }

    /// An attempt failed: the first failure logs the state change, later ones only a
    /// periodic summary.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.heard();
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let mut down = self.down.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match down.as_mut() {
            None => {
                *down = Some((now, now));
                self.up.store(false, Ordering::Release);
                self.gauge.set(0);
                tracing::warn!(dependency = self.name, %error, "{} is unreachable; retrying", self.name);
            }
            Some((since, reported)) if reported.elapsed() >= SUMMARY_EVERY => {
                *reported = now;
                tracing::warn!(
                    dependency = self.name,
                    down_for_s = since.elapsed().as_secs(),
                    failed_attempts = failures,
                    %error,
                    "{} still unreachable",
                    self.name
                );
            }
            Some(_) => {}
        }
    }
}

/// The dependencies of one process.
#[derive(Clone)]
pub struct Health {
    dependencies: Arc<Vec<Arc<Dependency>>>,
}

impl Health {
    /// Registers `parpulse_dependency_up{dependency}` for `names` in `registry`; every
    /// dependency starts as up (a process learns otherwise at its first attempt).
    pub fn new(registry: &Registry, names: &[&'static str]) -> Self {
        let gauges = IntGaugeVec::new(
            Opts::new("parpulse_dependency_up", "1 while the service this process depends on answers, else 0"),
            &["dependency"],
        )
        .expect("valid metric");
        registry.register(Box::new(gauges.clone())).expect("parpulse_dependency_up is registered once");
        let dependencies = names
            .iter()
            .map(|&name| {
                let gauge = gauges.with_label_values(&[name]);
                gauge.set(1);
                Arc::new(Dependency {
                    name,
                    up: AtomicBool::new(true),
                    failures: AtomicU64::new(0),
                    down: Mutex::new(None),
                    gauge,
                    heard_ms: AtomicU64::new(0),
                    created: Instant::now(),
                    under_way: AtomicUsize::new(0),
                })
            })
            .collect();
        Self { dependencies: Arc::new(dependencies) }
    }

    /// The dependency called `name` (one of those given to [`Health::new`]).
    pub fn get(&self, name: &str) -> Arc<Dependency> {
        self.dependencies
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("dependency {name} was not declared"))
            .clone()
    }

    /// Whether every dependency is up.
    pub fn all_up(&self) -> bool {
        self.dependencies.iter().all(|d| d.is_up())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_goes_down_on_failure_and_up_on_success_with_its_gauge() {
        let registry = Registry::new();
        let health = Health::new(&registry, &["kafka", "clickhouse"]);
        let kafka = health.get("kafka");
        assert!(health.all_up());
        kafka.failed(&"connection refused");
        kafka.failed(&"connection refused");
        assert!(!kafka.is_up() && !health.all_up() && health.get("clickhouse").is_up());
        let text = crate::encode(&registry);
        assert!(text.contains("parpulse_dependency_up{dependency=\"kafka\"} 0"), "{text}");
        assert!(text.contains("parpulse_dependency_up{dependency=\"clickhouse\"} 1"), "{text}");
        kafka.succeeded();
        assert!(health.all_up());
        crate::register_build_info(&registry);
        let text = crate::encode(&registry);
        assert!(
            text.contains(&format!("parpulse_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))),
            "{text}"
        );
        assert!(crate::encode(&registry).contains("parpulse_dependency_up{dependency=\"kafka\"} 1"));
    }

    #[test]
    fn silence_counts_from_the_last_report_either_way() {
        let health = Health::new(&Registry::new(), &["clickhouse"]);
        let clickhouse = health.get("clickhouse");
        std::thread::sleep(Duration::from_millis(30));
        assert!(clickhouse.silent_for() >= Duration::from_millis(30), "silent since creation");
        clickhouse.failed(&"refused");
        assert!(clickhouse.silent_for() < Duration::from_millis(30), "a failure is heard");
        std::thread::sleep(Duration::from_millis(30));
        assert!(clickhouse.silent_for() >= Duration::from_millis(30));
        clickhouse.succeeded();
        assert!(clickhouse.silent_for() < Duration::from_millis(30), "a success is heard");
        std::thread::sleep(Duration::from_millis(30));
        clickhouse.succeeded(); // already up: still heard
        assert!(clickhouse.silent_for() < Duration::from_millis(30));
    }

    #[test]
    fn an_attempt_under_way_is_not_silence_and_its_end_reports_through_record() {
        let health = Health::new(&Registry::new(), &["clickhouse"]);
        let clickhouse = health.get("clickhouse");
        std::thread::sleep(Duration::from_millis(30));
        let first = clickhouse.attempt();
        let second = clickhouse.attempt();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(clickhouse.silent_for(), Duration::ZERO, "two attempts under way");
        drop(first);
        assert_eq!(clickhouse.silent_for(), Duration::ZERO, "one attempt still under way");
        drop(second);
        assert!(clickhouse.silent_for() >= Duration::from_millis(60), "silent again, since creation");
        clickhouse.record(Err::<(), _>("refused"));
        assert!(!clickhouse.is_up() && clickhouse.silent_for() < Duration::from_millis(30));
        clickhouse.record(Ok::<_, &str>(()));
        assert!(clickhouse.is_up());
    }
}
