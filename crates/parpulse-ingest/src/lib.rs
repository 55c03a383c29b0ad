//! parpulse-ingest: everything that brings events into Kafka.
//!
//! Sources produce [`parpulse_core::DossierEvent`]s; [`gate`] validates and
//! encodes them (pure); [`kafka`] produces accepted events keyed by agency and
//! sends rejected ones to the dead-letter topic with their reason. The
//! [`simulator`] is the first source: a deterministic, realistic province.

pub mod file_import;
pub mod gate;
pub mod intake;
pub mod kafka;
pub mod metrics;
pub mod ndjson;
pub mod pacer;
pub mod simulator;

pub use gate::{Gate, Outgoing};
pub use kafka::{KafkaConfig, KafkaSink, SendSummary};
pub use metrics::IngestMetrics;
pub use simulator::{Simulator, SimulatorConfig};
