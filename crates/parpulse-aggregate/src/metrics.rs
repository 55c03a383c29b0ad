//! The aggregator's own health metrics (Prometheus conventions).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct AggregatorMetrics {
    pub registry: Registry,
    pub events: IntCounter,
    pub duplicate_receptions: IntCounter,
    pub checkpoints: IntCounter,
    pub audit_pieces: IntCounter,
    pub audit_pieces_awaited: IntGauge,
    pub checkpoint_seconds: Histogram,
    pub clickhouse_errors: IntCounter,
    pub consumer_lag: IntGaugeVec,
    pub newest_event_time: IntGauge,
    pub too_late: IntCounter,
    pub insert_seconds: HistogramVec,
    pub assigned_partitions: IntGauge,
    pub rebalances: IntCounterVec,
    pub dossiers_in_memory: IntGauge,
    pub dossiers_fetched: IntCounter,
    pub day_buckets_in_memory: IntGauge,
    pub day_buckets_fetched: IntCounter,
    pub rejected: IntCounterVec,
    /// Kafka and ClickHouse as this aggregator sees them (`/readyz`, `parpulse_dependency_up`).
    pub health: parpulse_http::health::Health,
}

impl Default for AggregatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregatorMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let events = IntCounter::new(
            "parpulse_aggregator_events_total",
            "Events applied to KPI state (dossier, budget and staffing)",
        )
        .expect("valid metric");
        let duplicate_receptions = IntCounter::new(
            "parpulse_aggregator_duplicate_receptions_total",
            "received events not counted because their dossier was already received (redelivery, re-import)",
        )
        .expect("valid metric");
        let checkpoints = IntCounter::new("parpulse_aggregator_checkpoints_total", "Checkpoints written to ClickHouse")
            .expect("valid metric");
        let audit_pieces = IntCounter::new(
            "parpulse_aggregator_audit_pieces_total",
            "Pieces of audit rows (event_log) stored as their buffer filled, ahead of the checkpoint that moves past them",
        )
        .expect("valid metric");
        let audit_pieces_awaited = IntGauge::new(
            "parpulse_aggregator_audit_pieces_awaited",
            "Audit pieces the checkpoint being written waits for before its checkpoint rows (stored ahead of them; 0 when it waits for none)",
        )
        .expect("valid metric");
        let checkpoint_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "parpulse_aggregator_checkpoint_duration_seconds",
                "Time to write one checkpoint (buckets and offsets)",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )
        .expect("valid metric");
        let clickhouse_errors = IntCounter::new(
            "parpulse_aggregator_clickhouse_errors_total",
            "Failed ClickHouse attempts: checkpoints, audit pieces, state loads and fetches (retried with backoff; consumption pauses meanwhile), and pings while idle",
        )
        .expect("valid metric");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "parpulse_aggregator_consumer_lag_messages",
                "High watermark minus the next offset to apply, per partition",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        let newest_event_time = IntGauge::new(
            "parpulse_aggregator_newest_event_time_seconds",
            "Event time of the newest event applied, Unix seconds (freshness = time() - this)",
        )
        .expect("valid metric");
        let too_late = IntCounter::new(
            "parpulse_aggregator_too_late_total",
            "Events older than the allowed lateness behind their partition's newest event: not counted, sent to the dead-letter topic with reason too_late",
        )
        .expect("valid metric");
        let insert_seconds = HistogramVec::new(
            HistogramOpts::new(
                "parpulse_aggregator_clickhouse_insert_duration_seconds",
                "Time of one ClickHouse INSERT during a checkpoint, by table",
            )
            .buckets(vec![0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["table"],
        )
        .expect("valid metric");
        let assigned_partitions = IntGauge::new(
            "parpulse_aggregator_assigned_partitions",
            "Kafka partitions (all three event topics) this aggregator owns in its consumer group",
        )
        .expect("valid metric");
        let rebalances = IntCounterVec::new(
            Opts::new(
                "parpulse_aggregator_rebalances_total",
                "Consumer-group rebalances seen, by kind (assign: state loaded; revoke: checkpointed and released; rejoin: a new consumer after a fatal error)",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let dossiers_in_memory = IntGauge::new(
            "parpulse_aggregator_dossiers_in_memory",
            "Dossiers kept in memory: those with an event within the allowed lateness (the others stay in ClickHouse)",
        )
        .expect("valid metric");
        let dossiers_fetched = IntCounter::new(
            "parpulse_aggregator_dossiers_fetched_total",
            "Dossiers fetched back from ClickHouse because an event arrived after they left memory",
        )
        .expect("valid metric");
        let day_buckets_in_memory = IntGauge::new(
            "parpulse_aggregator_day_buckets_in_memory",
            "Day buckets (unit, day) in memory at the last checkpoint: those from the day of the allowed lateness on, older ones fetched back or not yet written (the others stay in ClickHouse)",
        )
        .expect("valid metric");
        let day_buckets_fetched = IntCounter::new(
            "parpulse_aggregator_day_buckets_fetched_total",
            "Day buckets fetched back from ClickHouse because a dossier received or ended on their day changed after they left memory",
        )
        .expect("valid metric");
        let rejected = IntCounterVec::new(
            Opts::new(
                "parpulse_aggregator_rejected_total",
                "Kafka messages not applied and sent to the dead-letter topic, by reason (undecodable, a gate rule, too_late)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duplicate_receptions.clone()),
            Box::new(checkpoints.clone()),
            Box::new(audit_pieces.clone()),
            Box::new(audit_pieces_awaited.clone()),
            Box::new(checkpoint_seconds.clone()),
            Box::new(clickhouse_errors.clone()),
            Box::new(consumer_lag.clone()),
            Box::new(newest_event_time.clone()),
            Box::new(too_late.clone()),
            Box::new(insert_seconds.clone()),
            Box::new(assigned_partitions.clone()),
            Box::new(rebalances.clone()),
            Box::new(dossiers_in_memory.clone()),
            Box::new(dossiers_fetched.clone()),
            Box::new(day_buckets_in_memory.clone()),
            Box::new(day_buckets_fetched.clone()),
            Box::new(rejected.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        let health = parpulse_http::health::Health::new(&registry, &["kafka", "clickhouse"]);
        parpulse_http::register_build_info(&registry);
        parpulse_http::register_calendar_metrics(&registry);
        Self {
            registry,
            events,
            duplicate_receptions,
            checkpoints,
            audit_pieces,
            audit_pieces_awaited,
            checkpoint_seconds,
            clickhouse_errors,
            consumer_lag,
            newest_event_time,
            too_late,
            insert_seconds,
            assigned_partitions,
            rebalances,
            dossiers_in_memory,
            dossiers_fetched,
            day_buckets_in_memory,
            day_buckets_fetched,
            rejected,
            health,
        }
    }
}
