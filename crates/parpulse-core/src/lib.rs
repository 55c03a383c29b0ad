//! parpulse-core: the domain of provincial public-administration reform (PAR)
//! reporting, without any I/O.
//!
//! Everything the ingestors, aggregators and exporter must agree on lives here:
//! the event types and their Avro wire format ([`event`], [`avro`]), the agency
//! registry ([`agency`]), the validation gate every source passes ([`validate`]),
//! local reporting days ([`time`]), KPI arithmetic ([`kpi`]) and the catalogue of
//! every KPI published ([`catalogue`]).

pub mod agency;
pub mod avro;
pub mod calendar;
pub mod catalogue;
pub mod decision766;
pub mod event;
pub mod kpi;
pub mod lifecycle;
pub mod period;
pub mod procedures;
pub mod time;
pub mod topics;
pub mod validate;

pub use agency::{Agency, AgencyCode, AgencyGroup, AgencyRegistry};
pub use event::{
    BudgetEvent, BudgetEventKind, Channel, DossierEvent, DossierEventKind, DossierEventRef, Event, EventRef, Position,
    StaffingEvent, StaffingEventKind,
};
pub use time::LocalDay;
