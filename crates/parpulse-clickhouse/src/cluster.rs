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
//! are applied to both. Inserts go through the Distributed tables synchronously
//! (`insert_distributed_sync = 1`, set by [`crate::Store::connect`]), so the order
//! "rows first, checkpoint last" still holds across shards.
//!
//! Without a cluster name the statements run as written (single node; what the tests
//! and chDB run).

/// The statement(s) to run for `statement` on `cluster`, in order.
pub fn for_cluster(statement: &str, cluster: &str, database: &str) -> Vec<String> {
    let code = strip_comments(statement);
    let words: Vec<&str> = code.split_whitespace().collect();
    match words.as_slice() {
        ["CREATE", "TABLE", "IF", "NOT", "EXISTS", table, ..] => create(&code, table, cluster, database),
        ["ALTER", "TABLE", table, ..] => {
            let rest = after_words(&code, 3);
            vec![
                format!("ALTER TABLE {table}_local ON CLUSTER {cluster} {rest}"),
                format!("ALTER TABLE {table} ON CLUSTER {cluster} {rest}"),
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
            "CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER {cluster}\n{}ENGINE = Replicated{engine}({args}){tail}",
            columns
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {cluster} AS {table}_local\n\
             ENGINE = Distributed({cluster}, {database}, {table}_local, cityHash64({shard_key}))"
        ),
    ]
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
            "CREATE TABLE IF NOT EXISTS dossier_day_local ON CLUSTER par\n(\n    agency_code String,\n    version UInt64\n)\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/parpulse/dossier_day_local', '{replica}', version)\nPARTITION BY toYYYYMM(day)\nORDER BY (agency_code, day, kafka_partition)"
        );
        assert_eq!(
            out[1],
            "CREATE TABLE IF NOT EXISTS dossier_day ON CLUSTER par AS dossier_day_local\nENGINE = Distributed(par, parpulse, dossier_day_local, cityHash64(agency_code))"
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
    fn alter_applies_to_the_local_and_the_distributed_table() {
        let out = for_cluster("-- why\nALTER TABLE checkpoints ADD COLUMN watermark Int64 DEFAULT 0", "c", "db");
        assert_eq!(
            out,
            [
                "ALTER TABLE checkpoints_local ON CLUSTER c ADD COLUMN watermark Int64 DEFAULT 0",
                "ALTER TABLE checkpoints ON CLUSTER c ADD COLUMN watermark Int64 DEFAULT 0"
            ]
        );
    }

    /// Every shipped migration statement is one the rewrite understands: each CREATE
    /// yields a replicated and a distributed table, each ALTER two ALTERs.
    #[test]
    fn every_shipped_statement_has_a_cluster_form() {
        for (name, sql) in MIGRATIONS {
            for statement in statements(sql) {
                let out = for_cluster(&statement, "c", "db");
                assert_eq!(out.len(), 2, "{name}: {statement}");
                if out[0].starts_with("CREATE") {
                    assert!(out[0].contains("ENGINE = Replicated"), "{name}: {}", out[0]);
                    assert!(out[1].contains("ENGINE = Distributed(c, db, "), "{name}: {}", out[1]);
                    assert!(!out[1].contains("rand()"), "{name}: no sort key found in {statement}");
                } else {
                    assert!(out.iter().all(|s| s.starts_with("ALTER TABLE") && s.contains("ON CLUSTER c")), "{name}");
                }
            }
        }
    }
}
