//! parpulse-export: what leadership and the IT department see.
//!
//! [`snapshot`] turns day buckets read from ClickHouse into KPI values per unit,
//! group and province for each rolling window (pure); [`exposition`] renders a
//! snapshot as Prometheus text and as a terminal table (pure); [`exporter`]
//! refreshes the snapshot from ClickHouse on an interval and serves it through
//! `parpulse-http` from the cached result, so a scrape never waits on ClickHouse.

pub mod exporter;
pub mod exposition;
pub mod par_index;
pub mod period_report;
pub mod scorecard;
pub mod snapshot;

pub use exporter::{Exporter, ExporterConfig};
pub use snapshot::{Scope, Snapshot, Window};
