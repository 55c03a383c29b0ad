//! parpulse-clickhouse: everything parpulse stores in ClickHouse, in one place.
//!
//! [`connect`] opens a client suited to the server's version, [`migrate`] applies
//! the versioned DDL of `schemas/clickhouse/`, and [`day_count`] / [`checkpoint`]
//! hold the row types and the queries the aggregator writes with and the exporter
//! reads with. All SQL takes values through bound parameters, never by pasting input.

pub mod backup;
pub mod budget_staffing;
pub mod checkpoint;
pub mod cluster;
pub mod connect;
pub mod day_count;
pub mod dossier_state;
pub mod event_log;
pub mod migrate;
pub mod procedure_day;
pub mod rebuild;

pub use connect::{ClickHouseConfig, Store};

/// Errors talking to ClickHouse, with the statement's purpose for context.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ClickHouse at {url} failed while {doing}: {source}")]
    Query {
        url: String,
        doing: &'static str,
        #[source]
        source: clickhouse::error::Error,
    },
    #[error("migration {name} was applied with checksum {applied} but the file now has {current}; migrations are immutable, add a new file instead")]
    MigrationChanged { name: String, applied: String, current: String },
    #[error("database name {0:?} is not allowed: use letters, digits and _")]
    BadDatabaseName(String),
    #[error("ClickHouse CA file {}: {reason}", path.display())]
    CaFile { path: std::path::PathBuf, reason: String },
    #[error("ClickHouse replicas still behind after {seconds} s: {behind}")]
    ReplicasBehind { seconds: u64, behind: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;
