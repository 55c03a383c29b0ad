//! Backup and restore of a parpulse database with ClickHouse's own means, for servers
//! without the `BACKUP` statement (18.16): `ALTER TABLE .. FREEZE` hard-links each
//! table's parts into the server's `shadow/` folder, the backup copies them out; a
//! restore creates the tables as they were and attaches the parts (`ALTER TABLE ..
//! ATTACH PARTITION ID`). Both run on the ClickHouse host: they need the server's
//! data folder (`<path>` in its config).
//!
//! Consistency while the aggregator runs: the `checkpoints` table is frozen first,
//! every other table after it. Rows written after a checkpoint carry the offsets they
//! are complete up to (docs/ARCHITECTURE.md), so rows "ahead" of the restored
//! checkpoints are harmless: the aggregator replays from the checkpoint and skips
//! what the rows already count. The reverse (a checkpoint ahead of its rows) cannot
//! happen in this order. One more order matters: a dossier row must never be ahead of
//! the day buckets its contribution moved (a checkpoint inserts `day_count` before
//! `dossier_state` for that), so `dossier_state` is frozen before `day_count`.

use std::path::{Path, PathBuf};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::connect::valid_database_name;
use crate::{Result, Store, StoreError};

/// The file that lists what a backup holds.
pub const MANIFEST: &str = "manifest.json";

/// What a backup holds: the tables in the order they were frozen, with their DDL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub database: String,
    pub server_version: String,
    /// Unix seconds.
    pub taken_at: u64,
    pub tables: Vec<TableBackup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableBackup {
    pub name: String,
    /// `SHOW CREATE TABLE` as the server printed it.
    pub create: String,
    /// Partition ids present, attached one by one on restore.
    pub partitions: Vec<String>,
    pub parts: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{doing} {}: {source}", path.display())]
    Files {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

fn files(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Files { doing, path, source }
}

#[derive(Debug, Row, Deserialize)]
struct TableRow {
    name: String,
    engine: String,
}

#[derive(Debug, Row, Deserialize)]
struct CreateRow {
    statement: String,
}

/// The MergeTree tables of the store's database, `checkpoints` first (see the module doc).
async fn tables(store: &Store) -> Result<Vec<String>> {
    let rows: Vec<TableRow> = store
        .client()
        .query("SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name")
        .bind(store.database())
        .fetch_all()
        .await
        .map_err(store.error("listing tables"))?;
    Ok(freeze_order(rows.into_iter().filter(|t| t.engine.ends_with("MergeTree")).map(|t| t.name).collect()))
}

/// The order to freeze tables in (see the module doc): `checkpoints`, then
/// `dossier_state`, then the others by name (`day_count` among them).
fn freeze_order(mut names: Vec<String>) -> Vec<String> {
    names.sort_by_key(|name| {
        let rank = match name.as_str() {
            "checkpoints" => 0,
            "dossier_state" => 1,
            _ => 2,
        };
        (rank, name.clone())
    });
    names
}

/// A table name from `system.tables`, checked before it is used as an identifier
/// (identifiers cannot be bound as values in 18.16).
fn identifier(name: &str) -> std::result::Result<&str, BackupError> {
    if valid_database_name(name) {
        Ok(name)
    } else {
        Err(BackupError::Refused(format!("table name {name:?} is not a plain identifier; not backed up")))
    }
}

fn newest_increment(data_path: &Path) -> std::result::Result<String, BackupError> {
    let path = data_path.join("shadow/increment.txt");
    let text = std::fs::read_to_string(&path).map_err(files("reading", &path))?;
    Ok(text.trim().to_owned())
}

fn copy_tree(from: &Path, to: &Path) -> std::result::Result<usize, BackupError> {
    std::fs::create_dir_all(to).map_err(files("creating", to))?;
    let mut copied = 0;
    for entry in std::fs::read_dir(from).map_err(files("reading", from))? {
        let entry = entry.map_err(files("reading", from))?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(files("reading", &entry.path()))?.is_dir() {
            copied += copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(files("copying", &entry.path()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Backs up every MergeTree table of the store's database into `to` (which must not
/// exist yet), reading the frozen parts from the server's `data_path`.
pub async fn backup(store: &Store, data_path: &Path, to: &Path) -> std::result::Result<Manifest, BackupError> {
    if to.exists() {
        return Err(BackupError::Refused(format!("{} exists already; back up into a new folder", to.display())));
    }
    let database = store.database();
    let mut manifest = Manifest {
        database: database.to_owned(),
        server_version: store.server_version().to_owned(),
        taken_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        tables: Vec::new(),
    };
    for name in tables(store).await? {
        let table = identifier(&name)?;
        let create: CreateRow = store
            .client()
            .query(&format!("SHOW CREATE TABLE {database}.{table}"))
            .fetch_one()
            .await
            .map_err(store.error("reading a table's definition"))?;
        store
            .client()
            .query(&format!("ALTER TABLE {database}.{table} FREEZE"))
            .execute()
            .await
            .map_err(store.error("freezing a table"))?;
        let increment = newest_increment(data_path)?;
        let shadow = data_path.join("shadow").join(&increment);
        let frozen = shadow.join("data").join(database).join(table);
        // The partitions are those of the parts frozen (not a list read before the
        // freeze, which a new month's first insert could make stale).
        let mut partitions = Vec::new();
        let mut parts = 0;
        if frozen.exists() {
            for entry in std::fs::read_dir(&frozen).map_err(files("reading", &frozen))? {
                let name = entry.map_err(files("reading", &frozen))?.file_name().to_string_lossy().into_owned();
                parts += 1;
                partitions.push(partition_of_part(&name).to_owned());
            }
            partitions.sort();
            partitions.dedup();
            copy_tree(&frozen, &to.join("data").join(table))?;
        } // an empty table freezes nothing
        if shadow.exists() {
            std::fs::remove_dir_all(&shadow).map_err(files("removing", &shadow))?;
        }
        tracing::info!(table, parts, "table backed up");
        manifest.tables.push(TableBackup { name: name.clone(), create: create.statement, partitions, parts });
    }
    let path = to.join(MANIFEST);
    std::fs::create_dir_all(to).map_err(files("creating", to))?;
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest serializes");
    std::fs::write(&path, text).map_err(files("writing", &path))?;
    Ok(manifest)
}

/// The partition id of a MergeTree part directory (`<partition>_<min>_<max>_<level>`).
fn partition_of_part(name: &str) -> &str {
    name.rsplitn(4, '_').last().unwrap_or(name)
}

/// `create` (from `SHOW CREATE TABLE database.table`) aimed at `into` instead.
pub fn retarget(create: &str, database: &str, table: &str, into: &str) -> std::result::Result<String, BackupError> {
    let from = format!("CREATE TABLE {database}.{table} ");
    let rest = create.strip_prefix(&from).ok_or_else(|| {
        BackupError::Refused(format!("the backed-up definition of {table} does not start with {from:?}"))
    })?;
    Ok(format!("CREATE TABLE {into}.{table} {rest}"))
}

/// Restores a backup into the store's database, which must hold no table yet: the
/// tables are created as they were backed up and their parts attached. `data_path`
/// is the server's data folder (the parts are copied into each table's `detached/`;
/// they must be readable by the server's user).
pub async fn restore(store: &Store, data_path: &Path, from: &Path) -> std::result::Result<Manifest, BackupError> {
    let path = from.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(files("reading", &path))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| BackupError::Refused(format!("{} is not a parpulse backup manifest: {e}", path.display())))?;
    let database = store.database();
    if !tables(store).await?.is_empty() {
        return Err(BackupError::Refused(format!(
            "database {database} has tables already; restore into an empty database (drop it, or set PARPULSE_CLICKHOUSE_DATABASE)"
        )));
    }
    for table in &manifest.tables {
        let name = identifier(&table.name)?;
        let create = retarget(&table.create, identifier(&manifest.database)?, name, database)?;
        store.client().query(&create).execute().await.map_err(store.error("creating a table"))?;
        let backed_up = from.join("data").join(name);
        if backed_up.exists() {
            let detached = data_path.join("data").join(database).join(name).join("detached");
            copy_tree(&backed_up, &detached)?;
        }
        for partition in &table.partitions {
            if !partition.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err(BackupError::Refused(format!("partition id {partition:?} of {name} is not plain")));
            }
            store
                .client()
                .query(&format!("ALTER TABLE {database}.{name} ATTACH PARTITION ID '{partition}'"))
                .execute()
                .await
                .map_err(store.error("attaching a partition"))?;
        }
        tracing::info!(table = name, partitions = table.partitions.len(), "table restored");
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_is_retargeted_to_the_restored_database_only_at_its_head() {
        let create = "CREATE TABLE old.dossier_day ( day Date,  note String DEFAULT 'old.dossier_day ') ENGINE = MergeTree ORDER BY day";
        let restored = retarget(create, "old", "dossier_day", "new").unwrap();
        assert_eq!(
            restored,
            "CREATE TABLE new.dossier_day ( day Date,  note String DEFAULT 'old.dossier_day ') ENGINE = MergeTree ORDER BY day"
        );
        assert!(retarget(create, "other", "dossier_day", "new").is_err(), "a definition of another table is refused");
    }

    #[test]
    fn a_parts_partition_is_read_from_its_directory_name() {
        assert_eq!(partition_of_part("201911_1_1_0"), "201911");
        assert_eq!(partition_of_part("all_12_40_3"), "all");
        assert_eq!(partition_of_part("a_b_1_2_0"), "a_b");
    }

    #[test]
    fn only_plain_identifiers_become_sql() {
        assert!(identifier("dossier_day").is_ok());
        assert!(identifier("x; DROP DATABASE parpulse").is_err());
        assert!(identifier("").is_err());
    }

    #[test]
    fn checkpoints_are_frozen_first_and_dossier_rows_before_the_day_buckets() {
        let names = ["budget_event", "day_count", "checkpoints", "dossier_state", "event_log", "procedure_day"];
        let order = freeze_order(names.iter().map(|n| n.to_string()).collect());
        let want = ["checkpoints", "dossier_state", "budget_event", "day_count", "event_log", "procedure_day"];
        assert_eq!(order, want);
    }
}
