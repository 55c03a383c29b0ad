//! NDJSON: one event per line, the field names of the Avro schema. The simulator
//! writes it (so tests can recount KPIs independently), and file import reads it.

use std::io::{self, Write};

use parpulse_core::Event;

/// Writes each event as one JSON line.
pub fn write_events<W: Write>(out: &mut W, events: &[Event]) -> io::Result<()> {
    for event in events {
        serde_json::to_writer(&mut *out, event)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
