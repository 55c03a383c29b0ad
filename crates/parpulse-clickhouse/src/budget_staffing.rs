//! `budget_event` and `staffing_event`: one row per event, deduplicated by
//! `event_id` when read, and the budget and staffing KPIs summed from them.

use clickhouse::Row;
use parpulse_core::kpi::BudgetTotals;
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct BudgetEventRow {
    pub event_id: String,
    pub agency_code: String,
    pub occurred_at: i64,
    pub day: u16,
    pub kind: String,
    pub fiscal_year: i32,
    pub category: String,
    pub amount_vnd: i64,
    pub kafka_partition: u32,
    pub kafka_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StaffingEventRow {
    pub event_id: String,
    pub agency_code: String,
    pub occurred_at: i64,
    pub day: u16,
    pub kind: String,
    pub position: String,
    pub quota: i32,
    pub filled: i32,
    pub baseline_year: i32,
    pub baseline_quota: i32,
    pub people: i32,
    pub kafka_partition: u32,
    pub kafka_offset: i64,
}

pub async fn write_budget(store: &Store, rows: &[BudgetEventRow]) -> Result<()> {
    store.insert_rows("budget_event", rows, "writing budget_event rows").await
}

pub async fn write_staffing(store: &Store, rows: &[StaffingEventRow]) -> Result<()> {
    store.insert_rows("staffing_event", rows, "writing staffing_event rows").await
}

/// Budget sums of one unit for one fiscal year, in VND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct BudgetYear {
    pub agency_code: String,
    pub fiscal_year: i32,
    pub allocated: i64,
    pub committed: i64,
    pub disbursed: i64,
    pub saved: i64,
    pub disclosed: i64,
}

impl BudgetYear {
    pub fn totals(&self) -> BudgetTotals {
        BudgetTotals {
            allocated: self.allocated,
            committed: self.committed,
            disbursed: self.disbursed,
            saved: self.saved,
            disclosed: self.disclosed,
        }
    }
}

/// Budget sums per unit for `fiscal_year`, each event counted once.
pub async fn read_budget_year(store: &Store, fiscal_year: i32) -> Result<Vec<BudgetYear>> {
    read_budget_year_before(store, fiscal_year, i64::MAX).await
}

/// Budget sums per unit for `fiscal_year` from the events that occurred before
/// `occurred_before` (UTC micros): the year's budget as it stood then (the closed-period
/// report, at the period's end), each event counted once.
pub async fn read_budget_year_before(store: &Store, fiscal_year: i32, occurred_before: i64) -> Result<Vec<BudgetYear>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/budget_year.sql"))
        .bind(fiscal_year)
        .bind(occurred_before)
        .fetch_all()
        .await
        .map_err(store.error("reading budget_event"))
}

/// The newest headcount snapshot of one unit and position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Headcount {
    pub agency_code: String,
    pub position: String,
    pub quota: i32,
    pub filled: i32,
    pub baseline_quota: i32,
}

/// The newest snapshot per unit and position (by event time), each event counted once.
pub async fn read_headcounts(store: &Store) -> Result<Vec<Headcount>> {
    read_headcounts_before(store, i64::MAX).await
}

/// The newest snapshot per unit and position among those that occurred before
/// `occurred_before` (UTC micros): staffing as it stood then, each event counted once.
pub async fn read_headcounts_before(store: &Store, occurred_before: i64) -> Result<Vec<Headcount>> {
    store
        .client()
        .query(include_str!("../../../schemas/clickhouse/queries/headcounts.sql"))
        .bind(occurred_before)
        .fetch_all()
        .await
        .map_err(store.error("reading staffing_event"))
}
