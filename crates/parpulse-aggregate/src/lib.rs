//! parpulse-aggregate: from Kafka events to KPI day buckets in ClickHouse,
//! exactly once in effect.
//!
//! [`state`] is the pure per-partition bucket state (what an event adds, which
//! buckets changed, which events a reloaded bucket already holds); [`runner`]
//! is the I/O loop: consume in a consumer group, hand partitions over on
//! rebalance, apply, checkpoint into ClickHouse, commit to Kafka.
//! docs/ARCHITECTURE.md explains the checkpoint protocol.

pub mod admit;
pub mod contribution;
pub mod metrics;
pub mod packed;
pub mod rebuild;
pub mod runner;
pub mod state;

pub use metrics::AggregatorMetrics;
pub use runner::{caught_up, run, AggregatorConfig};
pub use state::PartitionState;
