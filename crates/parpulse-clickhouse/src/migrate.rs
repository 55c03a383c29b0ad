//! Versioned migrations from `schemas/clickhouse/`, applied in name order.
//!
//! Each applied file is recorded with its SHA-256 in `schema_migrations`;
//! re-running is harmless, and a file changed after it was applied stops the
//! run with an error (add a new migration instead of editing an old one).

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Result, Store, StoreError};

/// The migrations, in the order they apply. File names are their identity.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_dossier_day_and_checkpoints.sql",
        include_str!("../../../schemas/clickhouse/0001_dossier_day_and_checkpoints.sql"),
    ),
    ("0002_dossier_state.sql", include_str!("../../../schemas/clickhouse/0002_dossier_state.sql")),
    ("0003_dossier_lifecycle.sql", include_str!("../../../schemas/clickhouse/0003_dossier_lifecycle.sql")),
    (
        "0004_budget_and_staffing_events.sql",
        include_str!("../../../schemas/clickhouse/0004_budget_and_staffing_events.sql"),
    ),
    ("0005_checkpoint_watermark.sql", include_str!("../../../schemas/clickhouse/0005_checkpoint_watermark.sql")),
    ("0006_dossier_last_event.sql", include_str!("../../../schemas/clickhouse/0006_dossier_last_event.sql")),
    ("0007_dossier_event.sql", include_str!("../../../schemas/clickhouse/0007_dossier_event.sql")),
    ("0008_event_log.sql", include_str!("../../../schemas/clickhouse/0008_event_log.sql")),
    ("0009_official_rules.sql", include_str!("../../../schemas/clickhouse/0009_official_rules.sql")),
    ("0010_procedure_day.sql", include_str!("../../../schemas/clickhouse/0010_procedure_day.sql")),
    ("0011_day_count.sql", include_str!("../../../schemas/clickhouse/0011_day_count.sql")),
];

#[derive(Debug, Row, Serialize, Deserialize)]
struct AppliedMigration {
    name: String,
    checksum: String,
    applied_at: u32,
}

pub fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits a migration file into statements: each ends with `;` at the end of a line.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            push_statement(&mut out, &current);
            current.clear();
        }
    }
    push_statement(&mut out, &current);
    out
}

fn push_statement(out: &mut Vec<String>, text: &str) {
    let has_code = text.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with("--")
    });
    if has_code {
        out.push(text.trim().trim_end_matches(';').to_owned());
    }
}

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
     (name String, checksum String, applied_at DateTime) ENGINE = MergeTree ORDER BY name";

/// A statement as the topology needs it: as written on a single node, in its
/// replicated and distributed form on a cluster (crate::cluster).
fn for_topology(cluster: Option<&str>, database: &str, statement: &str) -> Vec<String> {
    match cluster {
        Some(cluster) => crate::cluster::for_cluster(statement, cluster, database),
        None => vec![statement.to_owned()],
    }
}

/// Every statement a first `migrate` runs, for review (`parpulse migrate --print-sql`).
pub fn plan(cluster: Option<&str>, database: &str) -> Vec<String> {
    let mut out = for_topology(cluster, database, CREATE_MIGRATIONS_TABLE);
    for (_, sql) in MIGRATIONS {
        out.extend(statements(sql).iter().flat_map(|s| for_topology(cluster, database, s)));
    }
    out
}

/// What a migration run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied: Vec<String>,
    pub already_applied: Vec<String>,
}

pub async fn migrate(store: &Store) -> Result<MigrationReport> {
    let client = store.client();
    for statement in for_topology(store.cluster(), store.database(), CREATE_MIGRATIONS_TABLE) {
        client.query(&statement).execute().await.map_err(store.error("creating schema_migrations"))?;
    }
    // On a cluster, the record of a migration just applied elsewhere is read too.
    crate::cluster::await_replicas(store).await?;
    let applied: Vec<AppliedMigration> = client
        .query("SELECT ?fields FROM schema_migrations")
        .fetch_all()
        .await
        .map_err(store.error("reading schema_migrations"))?;

    let mut report = MigrationReport::default();
    for (name, sql) in MIGRATIONS {
        let current = checksum(sql);
        if let Some(done) = applied.iter().find(|m| m.name == *name) {
            if done.checksum != current {
                return Err(StoreError::MigrationChanged {
                    name: (*name).to_owned(),
                    applied: done.checksum.clone(),
                    current,
                });
            }
            report.already_applied.push((*name).to_owned());
            continue;
        }
        for statement in statements(sql).iter().flat_map(|s| for_topology(store.cluster(), store.database(), s)) {
            client.query(&statement).execute().await.map_err(store.error("applying a migration"))?;
        }
        let applied_at = u32::try_from(parpulse_core::time::now_micros() / 1_000_000).unwrap_or(u32::MAX);
        let record = AppliedMigration { name: (*name).to_owned(), checksum: current, applied_at };
        store.insert_rows("schema_migrations", &[record], "recording a migration").await?;
        tracing::info!(migration = name, "applied migration");
        report.applied.push((*name).to_owned());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons_ending_lines_and_skip_comments() {
        let sql = "-- header\n\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n-- between\nCREATE TABLE b\n(y String) ENGINE = Memory;\n-- trailing\n";
        assert_eq!(
            statements(sql),
            vec![
                "-- between\nCREATE TABLE b\n(y String) ENGINE = Memory".to_owned(),
                "-- header\n\nCREATE TABLE a (x UInt8) ENGINE = Memory".to_owned()
            ]
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn every_shipped_migration_has_statements() {
        for (name, sql) in MIGRATIONS {
            assert!(!statements(sql).is_empty(), "{name} is empty");
        }
    }

    #[test]
    fn checksum_changes_with_the_text() {
        assert_ne!(checksum("a"), checksum("b"));
        assert_eq!(checksum("a").len(), 64);
    }
}
