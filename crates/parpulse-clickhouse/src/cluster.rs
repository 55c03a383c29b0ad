//! Migrations for a multi-node ClickHouse: the same files, rewritten per statement.
//!
//! With a cluster name (`PARPULSE_CLICKHOUSE_CLUSTER`), every table `T` of a
//! migration becomes two tables, created `ON CLUSTER`:
//!
//! - `T_local`: the data, `Replicated<engine>` with the ZooKeeper path
//!   `/clickhouse/tables/{shard}/<database>/T_local` and replica `{replica}` (macros
//!   every replicated ClickHouse defines);
//! - `T`: a `Distributed` table over `T_local`, sharded by `cityHash64` of the first
//!   column of the sorting key, so that all versions of a row land on one shard and
//!   ReplacingMergeTree and the readers' `argMax` see them together.
//!
//! parpulse reads and writes `T` and never needs to know. `ALTER TABLE T` statements
//! are applied to both: the replicated one `ON CLUSTER <name>_shards`, a cluster that
//! lists one replica of each shard, because ClickHouse before 19.11 runs an ALTER ON
//! CLUSTER on every replica, and the second replica of a shard, which already has the
//! change through replication, fails; the distributed one on every server. Every name is qualified with the database: a statement ON
//! CLUSTER runs on the other servers in their default database, not the session's
//! (found on the local cluster, ClickHouse 18.16). Inserts go through the Distributed tables synchronously
//! (`insert_distributed_sync = 1`, set by [`crate::Store::connect`]), so the order
//! "rows first, checkpoint last" still holds across shards.
//!
//! Without a cluster name the statements run as written (single node; what the tests
//! and chDB run).

use std::collections::BTreeMap;
use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;

use crate::{Result, Store, StoreError};

/// How long [`await_replicas`] waits before it gives up (the caller retries).
pub const REPLICA_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Row, Deserialize)]
struct TableLog {
    replica_name: String,
    zookeeper_path: String,
    log_max_index: u64,
    log_pointer: u64,
    is_readonly: u8,
}

/// Every replica of the store's cluster as one `remote()` address list (`host:port,...`):
/// each answers as a shard of its own, so one query reads them all, in parallel.
async fn all_replicas(store: &Store, cluster: &str) -> Result<String> {
    store
        .client()
        .query(
            "SELECT arrayStringConcat(groupArray(concat(host_address, ':', toString(port))), ',') \
             FROM system.clusters WHERE cluster = ?",
        )
        .bind(cluster)
        .fetch_one()
        .await
        .map_err(store.error("listing the cluster's replicas"))
}

/// The replication log positions of the database's tables on every replica that
/// answers (a stopped one is skipped: Distributed reads skip it too).
async fn table_logs(store: &Store, replicas: &str) -> Result<Vec<TableLog>> {
    // The addresses come from system.clusters (host and port), not from input.
    let sql = format!(
        "SELECT replica_name, zookeeper_path, log_max_index, log_pointer, is_readonly \
         FROM remote('{replicas}', system, replicas) WHERE database = ? SETTINGS skip_unavailable_shards = 1"
    );
    store
        .client()
        .query(&sql)
        .bind(store.database())
        .fetch_all()
        .await
        .map_err(store.error("reading the replicas' logs"))
}

/// One past the newest entry of a table's replication log (0 when it has none).
/// `log_max_index` is 0 both for an empty log and for a log of one entry, so that
/// case is told apart in ZooKeeper.
async fn log_end(store: &Store, log: &TableLog) -> Result<u64> {
    if log.log_max_index > 0 {
        return Ok(log.log_max_index + 1);
    }
    let entries: u64 = store
        .client()
        .query("SELECT count() FROM system.zookeeper WHERE path = ?")
        .bind(format!("{}/log", log.zookeeper_path))
        .fetch_one()
        .await
        .map_err(store.error("reading a replication log in ZooKeeper"))?;
    Ok(u64::from(entries > 0))
}

/// Parts logged at or before `before` (server time) that a replica that answers has
/// not fetched yet.
async fn parts_to_fetch(store: &Store, replicas: &str, before: u32) -> Result<u64> {
    let sql = format!(
        "SELECT count() FROM remote('{replicas}', system, replication_queue) \
         WHERE database = ? AND type = 'GET_PART' AND toUInt32(create_time) <= ? SETTINGS skip_unavailable_shards = 1"
    );
    store
        .client()
        .query(&sql)
        .bind(store.database())
        .bind(before)
        .fetch_one()
        .await
        .map_err(store.error("reading the replicas' queues"))
}

/// On a cluster, waits until every replica that answers holds every part inserted
/// before the call, so that what is read next through the Distributed tables, from
/// whichever replica of each shard, includes every acknowledged insert (replication is
/// asynchronous: an insert is acknowledged by one replica of each shard, the other
/// fetches it afterwards; a replica that was stopped catches up when it returns).
/// "Rows first, checkpoint last" then holds for readers too: a checkpoint read after
/// this call comes with every row written before it. A part that only a stopped
/// replica holds keeps the wait going until that replica is back; after
/// [`REPLICA_WAIT`] the call fails and the caller retries. Nothing on a single node.
pub async fn await_replicas(store: &Store) -> Result<()> {
    let Some(cluster) = store.cluster() else { return Ok(()) };
    let started = tokio::time::Instant::now();
    let now: u32 =
        store.client().query("SELECT toUInt32(now())").fetch_one().await.map_err(store.error("reading the time"))?;
    let replicas = all_replicas(store, cluster).await?;
    // How far each table's replication log (one per shard, shared by its replicas) goes
    // now: replicas must have read that far (log_pointer is the next entry they read).
    let mut marks: BTreeMap<String, u64> = BTreeMap::new();
    for log in table_logs(store, &replicas).await? {
        if !marks.contains_key(&log.zookeeper_path) || log.log_max_index > 0 {
            let end = log_end(store, &log).await?;
            let mark = marks.entry(log.zookeeper_path).or_default();
            *mark = (*mark).max(end);
        }
    }
    loop {
        let mut behind: Vec<String> = table_logs(store, &replicas)
            .await?
            .into_iter()
            .filter(|log| {
                log.is_readonly != 0 || log.log_pointer < marks.get(&log.zookeeper_path).copied().unwrap_or(0)
            })
            .map(|log| format!("{} {} at log entry {}", log.replica_name, log.zookeeper_path, log.log_pointer))
            .collect();
        let parts = parts_to_fetch(store, &replicas, now).await?;
        if parts > 0 {
            behind.push(format!("{parts} parts still to fetch"));
        }
        if behind.is_empty() {
            return Ok(());
        }
        if started.elapsed() > REPLICA_WAIT {
            return Err(StoreError::ReplicasBehind { seconds: REPLICA_WAIT.as_secs(), behind: behind.join(", ") });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `sql`, which reads the Distributed `table`, made to read `table_local` on every
/// replica that answers instead of one replica per shard: with `argMax(.., version)`
/// the newest row on any live replica wins, whichever replica lags. For the one-row
/// reads of the aggregator's hot path, where [`await_replicas`] would cost 70-150 ms a
/// row on the local cluster and this 12-18 ms (a row only a stopped replica holds is
/// not seen: docs/ARCHITECTURE.md "On a cluster").
pub async fn from_every_replica(store: &Store, sql: &str, table: &str) -> Result<String> {
    let Some(cluster) = store.cluster() else { return Ok(sql.to_owned()) };
    let replicas = all_replicas(store, cluster).await?;
    let from = format!("\nFROM {table}\n");
    let every = format!("\nFROM remote('{replicas}', {}, {table}_local)\n", store.database());
    assert!(sql.contains(&from), "a query reading {table} on its own line");
    Ok(format!("{}\nSETTINGS skip_unavailable_shards = 1", sql.replacen(&from, &every, 1).trim_end()))
}

/// The statement(s) to run for `statement` on `cluster`, in order.
pub fn for_cluster(statement: &str, cluster: &str, database: &str) -> Vec<String> {
    let code = strip_comments(statement);
    let words: Vec<&str> = code.split_whitespace().collect();
    match words.as_slice() {
        ["CREATE", "TABLE", "IF", "NOT", "EXISTS", table, ..] => create(&code, table, cluster, database),
        // Data (a migration copying rows between tables): once, through the Distributed
        // tables, so the rows are sharded by the target's key.
        ["INSERT", "INTO", ..] => vec![code],
        ["ALTER", "TABLE", table, ..] => {
            let rest = after_words(&code, 3);
            vec![
                format!("ALTER TABLE {database}.{table}_local ON CLUSTER {cluster}_shards {rest}"),
                format!("DROP TABLE IF EXISTS {database}.{table} ON CLUSTER {cluster}"),
                distributed(table, cluster, database, &shard_key_of(table)),
            ]
        }
        _ => vec![code],
    }
}

fn create(code: &str, table: &str, cluster: &str, database: &str) -> Vec<String> {
    let table = table.trim_end_matches('(');
    let body = after_words(code, 6);
    let Some(engine_at) = body.find("ENGINE = ") else {
        return vec![code.to_owned()];
    };
    let (columns, engine_clause) = body.split_at(engine_at);
    let engine_clause = &engine_clause["ENGINE = ".len()..];
    let name_end = engine_clause.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(engine_clause.len());
    let (engine, after_name) = engine_clause.split_at(name_end);
    let (args, tail) = match after_name.strip_prefix('(') {
        Some(rest) => {
            let close = rest.find(')').unwrap_or(rest.len());
            (rest[..close].trim().to_owned(), rest[close + 1..].to_owned())
        }
        None => (String::new(), after_name.to_owned()),
    };
    let path = format!("'/clickhouse/tables/{{shard}}/{database}/{table}_local', '{{replica}}'");
    let args = if args.is_empty() { path } else { format!("{path}, {args}") };
    let shard_key = sort_key_head(&tail).unwrap_or_else(|| "rand()".to_owned());
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.{table}_local ON CLUSTER {cluster}\n{}ENGINE = Replicated{engine}({args}){tail}",
            columns
        ),
        distributed(table, cluster, database, &shard_key),
    ]
}

/// The Distributed table `T` over `T_local`, with `T_local`'s columns as they are now.
fn distributed(table: &str, cluster: &str, database: &str, shard_key: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} AS {database}.{table}_local\n\
         ENGINE = Distributed({cluster}, {database}, {table}_local, cityHash64({shard_key}))"
    )
}

/// The shard key of a table the shipped migrations create (the head of its sort key).
fn shard_key_of(table: &str) -> String {
    let create = format!("CREATE TABLE IF NOT EXISTS {table}");
    crate::migrate::MIGRATIONS
        .iter()
        .flat_map(|(_, sql)| crate::migrate::statements(sql))
        .map(|statement| strip_comments(&statement))
        .find(|code| code.starts_with(&create) && code[create.len()..].starts_with(char::is_whitespace))
        .and_then(|code| sort_key_head(&code[code.find("ENGINE = ").unwrap_or(0)..]))
        .unwrap_or_else(|| "rand()".to_owned())
}

/// The first column of `ORDER BY (a, b)` or `ORDER BY a`.
fn sort_key_head(tail: &str) -> Option<String> {
    let at = tail.find("ORDER BY")?;
    let key = tail[at + "ORDER BY".len()..].trim_start().trim_start_matches('(');
    let end = key.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(key.len());
    (end > 0).then(|| key[..end].to_owned())
}

fn strip_comments(statement: &str) -> String {
    statement
        .lines()
        .map(|line| line.find("--").map_or(line, |at| &line[..at]).trim_end())
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text after the first `n` whitespace-separated words.
fn after_words(code: &str, n: usize) -> String {
    let mut rest = code.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::{statements, MIGRATIONS};

    #[test]
    fn a_replacing_table_becomes_replicated_and_distributed_by_its_sort_key() {
        let sql = "CREATE TABLE IF NOT EXISTS dossier_day\n(\n    agency_code String, -- unit\n    version UInt64\n)\nENGINE = ReplacingMergeTree(version)\nPARTITION BY toYYYYMM(day)\nORDER BY (agency_code, day, kafka_partition)";
        let out = for_cluster(sql, "par", "parpulse");
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            "CREATE TABLE IF NOT EXISTS parpulse.dossier_day_local ON CLUSTER par\n(\n    agency_code String,\n    version UInt64\n)\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/parpulse/dossier_day_local', '{replica}', version)\nPARTITION BY toYYYYMM(day)\nORDER BY (agency_code, day, kafka_partition)"
        );
        assert_eq!(
            out[1],
            "CREATE TABLE IF NOT EXISTS parpulse.dossier_day ON CLUSTER par AS parpulse.dossier_day_local\nENGINE = Distributed(par, parpulse, dossier_day_local, cityHash64(agency_code))"
        );
    }

    #[test]
    fn an_engine_without_arguments_gets_only_the_replication_ones() {
        let sql = "CREATE TABLE IF NOT EXISTS budget_event\n(\n    event_id String\n)\nENGINE = ReplacingMergeTree\nORDER BY (agency_code, fiscal_year, event_id)";
        let out = for_cluster(sql, "c", "db");
        assert!(out[0].contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/budget_event_local', '{replica}')\nORDER BY"
        ));
        assert!(out[1].ends_with("cityHash64(agency_code))"));
    }

    #[test]
    fn alter_applies_to_the_local_table_and_recreates_the_distributed_one() {
        let out = for_cluster("-- why\nALTER TABLE checkpoints ADD COLUMN watermark Int64 DEFAULT 0", "c", "db");
        assert_eq!(
            out,
            [
                "ALTER TABLE db.checkpoints_local ON CLUSTER c_shards ADD COLUMN watermark Int64 DEFAULT 0",
                "DROP TABLE IF EXISTS db.checkpoints ON CLUSTER c",
                "CREATE TABLE IF NOT EXISTS db.checkpoints ON CLUSTER c AS db.checkpoints_local\n\
                 ENGINE = Distributed(c, db, checkpoints_local, cityHash64(consumer_group))"
            ]
        );
    }

    /// Every shipped migration statement is one the rewrite understands: each CREATE
    /// yields a replicated and a distributed table, each ALTER two ALTERs, each INSERT
    /// itself.
    #[test]
    fn every_shipped_statement_has_a_cluster_form() {
        for (name, sql) in MIGRATIONS {
            for statement in statements(sql) {
                let out = for_cluster(&statement, "c", "db");
                if statement.trim_start().starts_with("INSERT INTO") {
                    assert_eq!(out, vec![strip_comments(&statement)], "{name}");
                    continue;
                }
                let distributed = out.last().expect("a cluster form");
                assert!(distributed.contains("ENGINE = Distributed(c, db, "), "{name}: {distributed}");
                assert!(!distributed.contains("rand()"), "{name}: no sort key found for {statement}");
                if out[0].starts_with("CREATE") {
                    assert_eq!(out.len(), 2, "{name}: {statement}");
                    assert!(out[0].contains("ENGINE = Replicated"), "{name}: {}", out[0]);
                } else {
                    assert_eq!(out.len(), 3, "{name}: {statement}");
                    assert!(out[0].starts_with("ALTER TABLE db.") && out[0].contains("_local ON CLUSTER c_shards"));
                    assert!(out[1].starts_with("DROP TABLE IF EXISTS db.") && out[1].ends_with(" ON CLUSTER c"));
                }
            }
        }
    }
}
