//! The aggregator's settings and errors.

use std::time::Duration;

use parpulse_clickhouse::StoreError;
use parpulse_core::time::Clock;
use parpulse_core::topics::Topics;
use parpulse_core::validate::ValidationPolicy;
use parpulse_core::AgencyRegistry;
use parpulse_kafka::KafkaConnection;
use rdkafka::error::KafkaError;

#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    pub kafka: KafkaConnection,
    pub consumer_group: String,
    pub topics: Topics,
    pub checkpoint_interval: Duration,
    pub checkpoint_max_events: u64,
    /// A checkpoint taking longer than this counts as failed and is retried
    /// (a ClickHouse that stops mid-request may otherwise leave it hanging).
    pub checkpoint_timeout: Duration,
    /// Events older than this behind their partition's newest event are `too_late`.
    pub allowed_lateness: Duration,
    /// Kafka group session timeout: how soon a dead aggregator's partitions move.
    pub session_timeout: Duration,
    /// Static group membership (`group.instance.id`): a restarted aggregator with
    /// the same id gets its partitions back without a rebalance.
    pub instance_id: Option<String>,
    /// Keep every applied event whole in the `event_log` audit table.
    pub audit_events: bool,
    /// Audit rows leave memory in pieces of about this many bytes as they fill (written
    /// ahead of their checkpoint), so that the aggregator holds at most about four pieces
    /// of them (see `runner/audit.rs`), whatever the checkpoint's size.
    pub audit_piece_bytes: usize,
    /// The units events may name: the topics are untrusted input, so every message is
    /// validated again by the gate's rules (parpulse_core::validate).
    pub registry: AgencyRegistry,
    pub policy: ValidationPolicy,
    /// The instant dossiers are judged as of at each checkpoint (open, overdue, apology
    /// timing): the wall clock in production, a fixed one in tests.
    pub clock: Clock,
}

impl AggregatorConfig {
    // The defaults, here only: `parpulse aggregate`'s flags show and use these.
    pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
    pub const DEFAULT_CHECKPOINT_MAX_EVENTS: u64 = 200_000;
    pub const DEFAULT_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(30);
    /// 45 days: a month closes, its reports go out, corrections still come in.
    pub const DEFAULT_ALLOWED_LATENESS: Duration = Duration::from_secs(45 * 86_400);
    pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_AUDIT_EVENTS: bool = true;
    /// 16 MiB: about 70,000 events, two or three inserts a second while a backlog is replayed
    /// (docs/BENCHMARKS.md, eighth round).
    pub const DEFAULT_AUDIT_PIECE_BYTES: usize = 16 << 20;

    /// Defaults for everything but where the services are.
    pub fn new(kafka: KafkaConnection, consumer_group: &str, topics: Topics) -> Self {
        Self {
            kafka,
            consumer_group: consumer_group.to_owned(),
            topics,
            checkpoint_interval: Self::DEFAULT_CHECKPOINT_INTERVAL,
            checkpoint_max_events: Self::DEFAULT_CHECKPOINT_MAX_EVENTS,
            checkpoint_timeout: Self::DEFAULT_CHECKPOINT_TIMEOUT,
            allowed_lateness: Self::DEFAULT_ALLOWED_LATENESS,
            session_timeout: Self::DEFAULT_SESSION_TIMEOUT,
            instance_id: None,
            audit_events: Self::DEFAULT_AUDIT_EVENTS,
            audit_piece_bytes: Self::DEFAULT_AUDIT_PIECE_BYTES,
            registry: AgencyRegistry::demo(),
            policy: ValidationPolicy::default(),
            clock: Clock::Wall,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("Kafka at {brokers}: {doing}: {source}")]
    Kafka {
        brokers: String,
        doing: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("topic {0} does not exist; run `parpulse migrate` to create it")]
    NoSuchTopic(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
