//! Ingest metrics, shared by every source (label `source`).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct IngestMetrics {
    pub registry: Registry,
    pub accepted: IntCounterVec,
    pub rejected: IntCounterVec,
    pub produce_seconds: HistogramVec,
    pub requests: IntCounterVec,
    /// Kafka as this process sees it (`parpulse_dependency_up`, the intake's `/readyz`).
    pub health: parpulse_http::health::Health,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl IngestMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let accepted = IntCounterVec::new(
            Opts::new("parpulse_ingest_accepted_total", "Events accepted and acknowledged by Kafka"),
            &["source", "type"],
        )
        .expect("valid");
        let rejected = IntCounterVec::new(
            Opts::new("parpulse_ingest_rejected_total", "Input rejected and kept in the dead-letter topic, by reason"),
            &["source", "reason"],
        )
        .expect("valid");
        let produce_seconds = HistogramVec::new(
            HistogramOpts::new(
                "parpulse_ingest_produce_duration_seconds",
                "Time from handing a batch to Kafka to its acknowledgement",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["source"],
        )
        .expect("valid");
        let requests = IntCounterVec::new(
            Opts::new("parpulse_intake_requests_total", "HTTP intake requests by response status"),
            &["status"],
        )
        .expect("valid");
        for c in [
            Box::new(accepted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rejected.clone()),
            Box::new(produce_seconds.clone()),
            Box::new(requests.clone()),
        ] {
            registry.register(c).expect("unique");
        }
        let health = parpulse_http::health::Health::new(&registry, &["kafka"]);
        parpulse_http::register_build_info(&registry);
        Self { registry, accepted, rejected, produce_seconds, requests, health }
    }
}
