//! What the aggregator lets in from a Kafka message. Pure: no I/O.
//!
//! The event topics are untrusted input: agency systems, replays and tools can
//! write to them without passing the ingest gate. So every message is decoded and
//! then checked with the very rules the gate applies ([`validate_event`]), at the
//! instant the broker appended it (a replay judges alike). A refused message never
//! reaches the KPI state: the caller sends it to the dead-letter topic.

use parpulse_core::avro::{AvroCodec, EventKind};
use parpulse_core::event::EventRef;
use parpulse_core::time::now_micros;
use parpulse_core::validate::{validate_event, RejectReason, Rejection, ValidationPolicy};
use parpulse_core::AgencyRegistry;
use rdkafka::message::Timestamp;

/// Decodes `payload` (borrowing its strings), checks that it is an event of the kind
/// its topic carries (`topic_kind`: a dossier event in the budget topic would be
/// counted under the wrong partition numbering) and validates it as of
/// `judged_at_micros`; the reason if it is refused.
pub fn admit<'a>(
    codec: &AvroCodec,
    registry: &AgencyRegistry,
    policy: &ValidationPolicy,
    topic_kind: EventKind,
    payload: Option<&'a [u8]>,
    judged_at_micros: i64,
) -> Result<EventRef<'a>, Rejection> {
    let bytes = payload.ok_or_else(|| Rejection::new(RejectReason::Undecodable, "empty message value"))?;
    let event = codec.decode_event_ref(bytes).map_err(|e| Rejection::new(RejectReason::Undecodable, e.to_string()))?;
    if event.kind() != topic_kind {
        return Err(Rejection::new(
            RejectReason::WrongTopic,
            format!("a {:?} event in the topic of {:?} events", event.kind(), topic_kind),
        ));
    }
    validate_event(&event, registry, policy, judged_at_micros)?;
    Ok(event)
}

/// The instant a message is judged at for "is its event time in the future": the
/// time the broker appended it (topics are created with `LogAppendTime`), else the
/// producer's time, else now. Stored in the log, so a replay judges alike.
pub fn judged_at(timestamp: Timestamp) -> i64 {
    match timestamp {
        Timestamp::LogAppendTime(millis) | Timestamp::CreateTime(millis) => millis.saturating_mul(1000),
        Timestamp::NotAvailable => now_micros(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{PartitionState, Verdict};
    use parpulse_core::{Channel, DossierEvent, DossierEventKind, Event};
    use proptest::prelude::*;

    /// 2019-11-28 (UTC micros): the time messages are judged at in these tests.
    const NOW: i64 = 1_574_900_000_000_000;
    const DAY: i64 = 86_400_000_000;

    fn valid() -> DossierEvent {
        DossierEvent {
            event_id: "6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".into(),
            agency_code: "SNV".into(),
            occurred_at: NOW - DAY,
            recorded_at: NOW,
            source: "test".into(),
            dossier_id: "D-1".into(),
            procedure_code: "1.001234".into(),
            kind: DossierEventKind::Received,
            channel: Channel::Online,
            online_level: 4,
            result_channel: None,
            due_at: Some(NOW + 5 * DAY),
            legal_max_days: None,
            fee_bearing: false,
            digitized: false,
            new_due_at: None,
        }
    }

    fn encoded(event: &DossierEvent) -> Vec<u8> {
        let mut bytes = Vec::new();
        AvroCodec::new().encode_dossier(event, &mut bytes).expect("encodes");
        bytes
    }

    fn reason(payload: Option<&[u8]>) -> Option<&'static str> {
        let codec = AvroCodec::new();
        admit(&codec, &AgencyRegistry::demo(), &ValidationPolicy::default(), EventKind::Dossier, payload, NOW)
            .err()
            .map(|r| r.reason.code())
    }

    #[test]
    fn a_valid_event_is_admitted_borrowing_its_strings() {
        let bytes = encoded(&valid());
        let codec = AvroCodec::new();
        let (registry, policy) = (AgencyRegistry::demo(), ValidationPolicy::default());
        let event = admit(&codec, &registry, &policy, EventKind::Dossier, Some(&bytes), NOW).unwrap();
        assert_eq!(event.event_id(), valid().event_id);
        let refused = admit(&codec, &registry, &policy, EventKind::Budget, Some(&bytes), NOW).unwrap_err();
        assert_eq!(refused.reason.code(), "wrong_topic", "a dossier event in the budget topic");
    }

    /// The poison a hostile or broken producer writes straight to the topic.
    #[test]
    fn poison_messages_are_refused_with_their_reason() {
        let year_2200 = 7_258_118_400_000_000;
        let year_1 = -62_135_596_800_000_000;
        let truncated = encoded(&valid());
        let cases: [(Option<Vec<u8>>, &str); 10] = [
            (None, "undecodable"),
            (Some(b"\xde\xad\xbe\xef garbage".to_vec()), "undecodable"),
            (Some(vec![0, 0, 0, 0x30, 0x39, 2, 4]), "undecodable"), // unknown schema id 12345
            (Some(truncated[..truncated.len() / 2].to_vec()), "undecodable"),
            (Some(encoded(&DossierEvent { occurred_at: year_2200, ..valid() })), "future_time"),
            (Some(encoded(&DossierEvent { occurred_at: NOW + 3_600_000_000, ..valid() })), "future_time"),
            (Some(encoded(&DossierEvent { occurred_at: year_1, ..valid() })), "too_old"),
            (Some(encoded(&DossierEvent { agency_code: "HANOI".into(), ..valid() })), "unknown_agency"),
            (Some(encoded(&DossierEvent { event_id: "not-a-uuid".into(), ..valid() })), "bad_event_id"),
            (Some(encoded(&DossierEvent { due_at: Some(i64::MAX), ..valid() })), "bad_deadline"),
        ];
        for (payload, expected) in cases {
            assert_eq!(reason(payload.as_deref()), Some(expected), "payload {payload:?}");
        }
    }

    fn kind() -> impl Strategy<Value = DossierEventKind> {
        prop::sample::select(DossierEventKind::ALL.to_vec())
    }

    fn channel() -> impl Strategy<Value = Channel> {
        prop::sample::select(vec![Channel::InPerson, Channel::Online, Channel::Postal])
    }

    /// Times at and around every edge: the epoch, the validation window, the
    /// ClickHouse Date range, the i64 range.
    fn instant() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
            Just(-1),
            Just(parpulse_core::validate::EARLIEST_EVENT_MICROS),
            Just(parpulse_core::validate::LATEST_DEADLINE_MICROS),
            Just(NOW + 300_000_000),
            (NOW - 400 * DAY)..(NOW + DAY),
            any::<i64>(),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("SNV".to_owned()),
            Just("6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".to_owned()),
            ".{0,40}",
            "\\PC{200,400}",
        ]
    }

    prop_compose! {
        fn any_event()(
            kind in kind(),
            channel in channel(),
            result_channel in prop::option::of(channel()),
            occurred_at in instant(),
            due_at in prop::option::of(instant()),
            legal_max_days in prop::option::of(prop_oneof![Just(i32::MIN), Just(i32::MAX), Just(0), any::<i32>(), 1..400i32]),
            online_level in prop_oneof![Just(i32::MIN), Just(i32::MAX), 0..6i32],
            agency in prop_oneof![Just("SNV".to_owned()), Just("STP".to_owned()), text()],
            dossier in prop_oneof![Just("D-1".to_owned()), Just("D-2".to_owned()), text()],
            event_id in prop_oneof![Just("6f1c1f2e-3a52-4d3e-9a51-8f1a6c0f2b11".to_owned()), text()],
            procedure in text(),
            flags in any::<(bool, bool)>(),
        ) -> DossierEvent {
            DossierEvent {
                event_id,
                agency_code: agency,
                occurred_at,
                recorded_at: NOW,
                source: "proptest".into(),
                dossier_id: dossier,
                procedure_code: procedure,
                kind,
                channel,
                online_level,
                result_channel,
                due_at,
                legal_max_days,
                fee_bearing: flags.0,
                digitized: flags.1,
                new_due_at: None,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// No bytes make decoding or validation panic; nothing undecodable is admitted.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), id in 0u32..5) {
            let mut framed = vec![0];
            framed.extend_from_slice(&id.to_be_bytes());
            framed.extend_from_slice(&bytes);
            for payload in [&bytes, &framed] {
                let _ = reason(Some(payload));
            }
        }

        /// Well-formed records with extreme values go through decode, validate and
        /// apply (with lateness, eviction and the rows a checkpoint writes) without a
        /// panic; whatever is admitted lies in the validated time range.
        #[test]
        fn extreme_records_never_panic_the_state(events in prop::collection::vec(any_event(), 1..12)) {
            let codec = AvroCodec::new();
            let (registry, policy) = (AgencyRegistry::demo(), ValidationPolicy::default());
            let mut state = PartitionState::load(0, 0, &[], &[]).with_lateness(0, 45 * DAY);
            let messages: Vec<Vec<u8>> = events.iter().map(encoded).collect();
            for (offset, bytes) in messages.iter().enumerate() {
                let offset = offset as i64;
                match admit(&codec, &registry, &policy, EventKind::Dossier, Some(bytes), NOW) {
                    Ok(event) => {
                        prop_assert!(event.occurred_at() >= parpulse_core::validate::EARLIEST_EVENT_MICROS);
                        prop_assert!(event.occurred_at() <= NOW + 300_000_000);
                        let mut verdict = state.apply_event(offset, &event);
                        while matches!(verdict, Verdict::NeedsStoredDossier | Verdict::NeedsStoredBuckets) {
                            let Event::Dossier(dossier) = &event else { unreachable!() };
                            if verdict == Verdict::NeedsStoredDossier {
                                state.restore_dossier(None, dossier);
                            }
                            for day in state.buckets_to_fetch(dossier) {
                                state.restore_bucket(dossier.agency_code, day, None);
                            }
                            verdict = state.apply_event(offset, &event);
                        }
                    }
                    Err(_) => state.skip(offset),
                }
            }
            for now in [NOW, i64::MAX, i64::MIN, 0] {
                let _ = state.pending_dossier_rows(now).count();
            }
            let _ = state.pending_rows();
            state.checkpoint_written(state.next_offset());
            prop_assert_eq!(state.next_offset(), messages.len() as i64);
        }
    }
}
