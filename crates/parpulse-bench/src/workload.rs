//! The events every measurement of one run uses: simulated dossier events, their
//! Avro records as parpulse produces them, and a JSON projection for the peer.

use parpulse_core::avro::AvroCodec;
use parpulse_core::{AgencyRegistry, Channel, DossierEventKind, Event};
use parpulse_ingest::{Simulator, SimulatorConfig};

/// One Kafka record: key (agency code) and value.
pub struct Record {
    pub key: String,
    pub value: Vec<u8>,
}

/// `n` dossier events of a simulated province, in event-time order, over at most
/// `days` days ending now.
pub fn dossier_events(seed: u64, n: usize, days: u32) -> Vec<Event> {
    let registry = AgencyRegistry::demo();
    // About 3 dossier events per dossier and 5 working days in 7: enough dossiers per
    // unit and day that the first `n` dossier events fit in `days`.
    let units = registry.iter().count().max(1);
    let per_unit_day = (n / (units * days as usize * 5 / 7 * 3).max(1)).max(1) as u32 + 1;
    let events: Vec<Event> = Simulator::new(SimulatorConfig::recent(seed, days, per_unit_day), &registry)
        .filter(|e| matches!(e, Event::Dossier(_)))
        .take(n)
        .collect();
    events
}

/// The Avro records parpulse's ingestors produce for `events` (Confluent framing).
pub fn avro_records(events: &[Event]) -> Vec<Record> {
    let codec = AvroCodec::new();
    events
        .iter()
        .map(|event| {
            let mut value = Vec::with_capacity(256);
            codec.encode_event(event, &mut value).expect("simulated events encode");
            Record { key: event.agency_code().to_owned(), value }
        })
        .collect()
}

/// The same events as JSON lines with the fields the peer's counts need (ClickHouse
/// 18.16's Kafka engine reads JSONEachRow, not Avro).
pub fn json_records(events: &[Event]) -> Vec<Record> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Dossier(e) => {
                let value = serde_json::json!({
                    "event_id": e.event_id,
                    "agency_code": e.agency_code,
                    "dossier_id": e.dossier_id,
                    "occurred_at": e.occurred_at,
                    "kind": e.kind,
                    "channel": e.channel,
                    "online_level": e.online_level,
                });
                Some(Record { key: e.agency_code.clone(), value: value.to_string().into_bytes() })
            }
            _ => None,
        })
        .collect()
}

/// Per (unit, local day): received, received online (level 3/4), received by post,
/// counted directly from the events (the reference both pipelines must match).
pub fn expected_counts(events: &[Event]) -> std::collections::BTreeMap<(String, u16), [u64; 3]> {
    let mut out = std::collections::BTreeMap::new();
    for event in events {
        if let Event::Dossier(e) = event {
            if e.kind != DossierEventKind::Received {
                continue;
            }
            let day = parpulse_core::LocalDay::of_micros(e.occurred_at).0;
            let counts: &mut [u64; 3] = out.entry((e.agency_code.clone(), day)).or_default();
            counts[0] += 1;
            counts[1] += u64::from(e.channel == Channel::Online && e.online_level >= 3);
            counts[2] += u64::from(e.channel == Channel::Postal);
        }
    }
    out
}
