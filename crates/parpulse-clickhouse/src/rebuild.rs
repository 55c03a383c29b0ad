//! The storage side of `parpulse rebuild`: fresh copies of the derived tables filled
//! beside the live ones, swapped in with one `RENAME`, then given the rows the live
//! aggregators wrote meanwhile. The replay itself is in `parpulse_aggregate::rebuild`.
//!
//! How the swap meets the live checkpoints: the rebuild replays `event_log` up to a
//! snapshot of the checkpoints (per topic and partition, offset `S`), so its rows carry
//! version `S` (day buckets, dossiers) or offsets below `S` (budget, staffing). Whatever
//! a live aggregator writes meanwhile carries a higher version or offset. After the swap
//! those rows are copied from the old table into the new one (`catch_up`); the readers
//! take the newest version of each row, so the result is the rebuild up to `S` plus the
//! live aggregators' work after it. Rows an aggregator writes after the swap go to the
//! new table by name. A rebuild that fails before the swap leaves the old tables serving
//! (its `_rebuild` tables are dropped by the next run).

use parpulse_core::avro::EventKind;

use crate::event_log::EventLogRow;
use crate::{Result, Store};

/// A table a rebuild recomputes.
#[derive(Debug, Clone, Copy)]
pub struct Rebuilt {
    pub name: &'static str,
    /// Where its recomputed rows go before the swap.
    pub rebuild: &'static str,
    /// The column that orders its rows in a partition.
    pub progress: Progress,
    /// The events its rows come from (their topic's checkpoints bound the replay).
    pub kind: EventKind,
}

const fn rebuilt(name: &'static str, rebuild: &'static str, progress: Progress, kind: EventKind) -> Rebuilt {
    Rebuilt { name, rebuild, progress, kind }
}

pub const DAY_COUNT: Rebuilt = rebuilt("day_count", "day_count_rebuild", Progress::Version, EventKind::Dossier);
pub const DOSSIER_STATE: Rebuilt =
    rebuilt("dossier_state", "dossier_state_rebuild", Progress::Version, EventKind::Dossier);
pub const BUDGET_EVENT: Rebuilt = rebuilt("budget_event", "budget_event_rebuild", Progress::Offset, EventKind::Budget);
pub const STAFFING_EVENT: Rebuilt =
    rebuilt("staffing_event", "staffing_event_rebuild", Progress::Offset, EventKind::Staffing);

pub const PROCEDURE_DAY: Rebuilt =
    rebuilt("procedure_day", "procedure_day_rebuild", Progress::Version, EventKind::Dossier);

/// Every table a rebuild recomputes.
pub const TABLES: [Rebuilt; 5] = [DAY_COUNT, DOSSIER_STATE, BUDGET_EVENT, STAFFING_EVENT, PROCEDURE_DAY];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// `version`: the partition's next offset when the row was written.
    Version,
    /// `kafka_offset`: the event's own offset.
    Offset,
}

/// Which rows of a table the rebuild keeps as they are (the others it recomputes):
/// rows of other units, or outside the days rebuilt.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Units rebuilt (None: all).
    pub units: Option<Vec<String>>,
    /// Local days rebuilt, inclusive, as ClickHouse `Date` numbers (None: all).
    pub days: Option<(u16, u16)>,
}

/// The day column that places a row in time, per table.
fn day_column(table: &str) -> &'static str {
    if table == "dossier_state" {
        "received_day"
    } else {
        "day"
    }
}

/// How many rows `event_log` holds (0: the audit table was never written).
pub async fn logged_events(store: &Store) -> Result<u64> {
    store.client().query("SELECT count() FROM event_log").fetch_one().await.map_err(store.error("counting event_log"))
}

/// Drops what a failed run left and creates empty `<table>_rebuild` copies.
pub async fn prepare(store: &Store) -> Result<()> {
    let db = store.database();
    for Rebuilt { name: table, .. } in TABLES {
        for statement in [
            format!("DROP TABLE IF EXISTS {db}.{table}_rebuild"),
            format!("DROP TABLE IF EXISTS {db}.{table}_old"),
            format!("CREATE TABLE {db}.{table}_rebuild AS {db}.{table}"),
        ] {
            store.client().query(&statement).execute().await.map_err(store.error("preparing rebuild tables"))?;
        }
    }
    Ok(())
}

/// Copies the rows outside `scope` from the live tables into the `_rebuild` ones.
pub async fn keep_outside(store: &Store, scope: &Scope) -> Result<()> {
    if scope.units.is_none() && scope.days.is_none() {
        return Ok(());
    }
    let db = store.database();
    for Rebuilt { name: table, .. } in TABLES {
        let mut inside = Vec::new();
        if let Some(units) = &scope.units {
            inside.push(format!("agency_code IN ({})", vec!["?"; units.len()].join(", ")));
        }
        if scope.days.is_some() {
            // ClickHouse 18.16 does not compare a Date with a number: compare day numbers.
            inside.push(format!("toUInt16({0}) >= ? AND toUInt16({0}) <= ?", day_column(table)));
        }
        let sql =
            format!("INSERT INTO {db}.{table}_rebuild SELECT * FROM {db}.{table} WHERE NOT ({})", inside.join(" AND "));
        let mut query = store.client().query(&sql);
        for unit in scope.units.iter().flatten() {
            query = query.bind(unit);
        }
        if let Some((from, to)) = scope.days {
            query = query.bind(from).bind(to);
        }
        query.execute().await.map_err(store.error("keeping rows outside the rebuild"))?;
    }
    Ok(())
}

/// The events of one topic partition below `below`, in offset order, one row per
/// (event, offset): what the aggregators applied there, as the audit table keeps it.
pub fn events<'a>(store: &'a Store, topic: &str, partition: u32, below: i64) -> Result<Events<'a>> {
    let cursor = store
        .client()
        .query(
            "SELECT event_id, any(agency_code), any(occurred_at), any(day), any(recorded_at), any(schema_id), \
             any(payload), any(topic), any(kafka_partition), kafka_offset \
             FROM event_log WHERE topic = ? AND kafka_partition = ? AND kafka_offset < ? \
             GROUP BY event_id, kafka_offset ORDER BY kafka_offset",
        )
        .bind(topic)
        .bind(partition)
        .bind(below)
        .fetch()
        .map_err(store.error("reading event_log"))?;
    Ok(Events { cursor, store })
}

/// The events of a partition, streamed (a partition's history need not fit in memory).
pub struct Events<'a> {
    cursor: clickhouse::query::RowCursor<EventLogRow>,
    store: &'a Store,
}

impl Events<'_> {
    pub async fn next(&mut self) -> Result<Option<EventLogRow>> {
        self.cursor.next().await.map_err(self.store.error("reading event_log"))
    }
}

/// Writes recomputed rows into the table's `_rebuild` copy.
pub async fn write<T>(store: &Store, table: Rebuilt, rows: &[T]) -> Result<()>
where
    T: clickhouse::RowOwned + clickhouse::RowWrite,
{
    store.insert_rows(table.rebuild, rows, "writing rebuilt rows").await
}

/// Swaps every rebuilt table in, in one statement: readers see the old tables or the
/// new ones, never a mix.
pub async fn swap(store: &Store) -> Result<()> {
    let db = store.database();
    let renames: Vec<String> = TABLES
        .iter()
        .map(|Rebuilt { name: t, .. }| format!("{db}.{t} TO {db}.{t}_old, {db}.{t}_rebuild TO {db}.{t}"))
        .collect();
    store
        .client()
        .query(&format!("RENAME TABLE {}", renames.join(", ")))
        .execute()
        .await
        .map_err(store.error("swapping the rebuilt tables in"))
}

/// Copies into the swapped-in table what the live aggregators wrote after the snapshot:
/// for each (partition, offset `S`) of `snapshot`, rows beyond `S`, and every row of a
/// partition the snapshot does not know.
pub async fn catch_up(store: &Store, table: Rebuilt, snapshot: &[(u32, i64)]) -> Result<()> {
    let db = store.database();
    let Rebuilt { name: table, progress, .. } = table;
    let beyond = match progress {
        Progress::Version => "version > ?",
        Progress::Offset => "kafka_offset >= ?",
    };
    let mut conditions: Vec<String> = snapshot.iter().map(|_| format!("(kafka_partition = ? AND {beyond})")).collect();
    if !snapshot.is_empty() {
        conditions.push(format!("kafka_partition NOT IN ({})", vec!["?"; snapshot.len()].join(", ")));
    } else {
        conditions.push("1".to_owned());
    }
    let sql = format!("INSERT INTO {db}.{table} SELECT * FROM {db}.{table}_old WHERE {}", conditions.join(" OR "));
    let mut query = store.client().query(&sql);
    for (partition, offset) in snapshot {
        query = match progress {
            Progress::Version => query.bind(*partition).bind(u64::try_from(*offset).unwrap_or(0)),
            Progress::Offset => query.bind(*partition).bind(*offset),
        };
    }
    for (partition, _) in snapshot {
        query = query.bind(*partition);
    }
    query.execute().await.map_err(store.error("copying the live rows written during the rebuild"))
}

/// Drops the tables the swap replaced.
pub async fn drop_old(store: &Store) -> Result<()> {
    let db = store.database();
    for Rebuilt { name: table, .. } in TABLES {
        store
            .client()
            .query(&format!("DROP TABLE IF EXISTS {db}.{table}_old"))
            .execute()
            .await
            .map_err(store.error("dropping the replaced tables"))?;
    }
    Ok(())
}
