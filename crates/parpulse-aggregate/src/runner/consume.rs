//! The per-message path: batches taken from librdkafka, each message decoded,
//! validated (the topics are untrusted) and applied to its partition's state, or
//! queued for the dead-letter topic with the reason.

use std::future::Future;
use std::time::Duration;

use parpulse_clickhouse::event_log::AuditedEvent;
use parpulse_clickhouse::{day_count, dossier_state};
use parpulse_core::avro::{split_header, AvroCodec, EventKind};
use parpulse_core::event::EventRef;
use parpulse_core::topics::Topics;
use parpulse_core::validate::{RejectReason, Rejection};
use parpulse_core::Event;
use parpulse_core::LocalDay;
use parpulse_kafka::SourcePosition;
use rdkafka::message::{BorrowedMessage, Message};

use super::dead_letter::DeadLetter;
use super::{Key, Shared, Work};
use crate::metrics::AggregatorMetrics;
use crate::state::Verdict;

/// Messages applied per lock of the state.
pub(super) const MAX_BATCH: usize = 512;

/// The output of `future` if it is ready now (never waits): the messages librdkafka
/// already holds.
pub(super) fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// The partition of the previous message, kept so that a run of messages from one
/// partition costs no allocation and no lookup: its key and the kind of events its
/// topic carries.
pub(super) struct Position {
    key: Key,
    kind: Option<EventKind>,
}

impl Default for Position {
    fn default() -> Self {
        Position { key: (String::new(), u32::MAX), kind: None }
    }
}

impl Position {
    pub(super) fn of(&mut self, message: &BorrowedMessage<'_>, topics: &Topics) -> (&Key, Option<EventKind>) {
        if self.key.1 != message.partition() as u32 || self.key.0 != message.topic() {
            if self.key.0 != message.topic() {
                self.kind = topics.kind_of(message.topic());
            }
            self.key = (message.topic().to_owned(), message.partition() as u32);
        }
        (&self.key, self.kind)
    }
}

/// Metric changes of one batch, recorded together.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) applied: u64,
    pub(super) duplicates: u64,
    pub(super) newest_event_secs: i64,
}

impl Tally {
    pub(super) fn record(&self, metrics: &AggregatorMetrics) {
        metrics.events.inc_by(self.applied);
        metrics.duplicate_receptions.inc_by(self.duplicates);
        if self.newest_event_secs > metrics.newest_event_time.get() {
            metrics.newest_event_time.set(self.newest_event_secs);
        }
    }
}

/// Decodes one message (borrowing its strings), validates it with the gate's rules
/// (the topic is untrusted: anything can write to it) and applies it to its
/// partition's state, fetching a dossier that left memory first if the event needs
/// it. A message that does not decode, is invalid or is too late is not applied: it
/// goes to the dead-letter topic with the reason and its position.
pub(super) async fn apply_message(
    shared: &Shared,
    work: &mut Work,
    codec: &AvroCodec,
    position: &mut Position,
    message: &BorrowedMessage<'_>,
    tally: &mut Tally,
) {
    let (key, topic_kind) = position.of(message, &shared.config.topics);
    let Some(state) = work.states.get_mut(key) else { return };
    if message.offset() < state.next_offset() {
        return; // fetched before a hand-over; already applied
    }
    // Subscribed to the event topics only: a state exists only for their partitions.
    let Some(topic_kind) = topic_kind else { return };
    let admitted = crate::admit::admit(
        codec,
        &shared.config.registry,
        &shared.config.policy,
        topic_kind,
        message.payload(),
        crate::admit::judged_at(message.timestamp()),
    );
    let event = match admitted {
        Ok(event) => event,
        Err(rejection) => {
            state.skip(message.offset());
            refuse(shared, &mut work.dead_letters, message, rejection);
            return;
        }
    };
    let duplicates = state.duplicates();
    let mut verdict = state.apply_event(message.offset(), &event);
    // Fetch what the state no longer holds (the dossier, then the buckets it touches) and apply again.
    while matches!(verdict, Verdict::NeedsStoredDossier | Verdict::NeedsStoredBuckets) {
        let Event::Dossier(dossier) = &event else { unreachable!("only dossier events need stored state") };
        let partition = state.partition();
        if verdict == Verdict::NeedsStoredDossier {
            let row = shared
                .until_clickhouse_answers("fetching a dossier's state failed", || {
                    dossier_state::load_one(&shared.store, partition, dossier.agency_code, dossier.dossier_id)
                })
                .await;
            shared.metrics.dossiers_fetched.inc();
            state.restore_dossier(row.as_ref(), dossier);
        } else {
            for day in state.buckets_to_fetch(dossier) {
                let bucket = shared
                    .until_clickhouse_answers("fetching a day bucket failed", || {
                        day_count::load_bucket(&shared.store, partition, dossier.agency_code, day)
                    })
                    .await;
                shared.metrics.day_buckets_fetched.inc();
                state.restore_bucket(dossier.agency_code, day, bucket.as_ref());
            }
        }
        verdict = state.apply_event(message.offset(), &event);
    }
    tally.duplicates += state.duplicates() - duplicates;
    match verdict {
        Verdict::TooLate => {
            shared.metrics.too_late.inc();
            let behind = Duration::from_micros(u64::try_from(state.watermark() - event.occurred_at()).unwrap_or(0));
            let allowed_lateness = shared.config.allowed_lateness;
            let rejection = Rejection::new(
                RejectReason::TooLate,
                format!(
                    "event time is {} h behind the newest event of its partition; allowed lateness is {} h",
                    behind.as_secs() / 3600,
                    allowed_lateness.as_secs() / 3600
                ),
            );
            refuse(shared, &mut work.dead_letters, message, rejection);
        }
        Verdict::Applied | Verdict::LateDuplicate | Verdict::NeedsStoredDossier | Verdict::NeedsStoredBuckets => {
            tally.applied += 1;
            tally.newest_event_secs = tally.newest_event_secs.max(event.occurred_at() / 1_000_000);
            if verdict == Verdict::Applied && shared.config.audit_events {
                work.audit.push(&audited(&event, message));
                shared.audit_piece_if_full(work).await;
            }
        }
    }
}

/// The event whole, as the `event_log` audit table keeps it: the message value as
/// produced, with its Kafka position.
fn audited<'a>(event: &'a EventRef<'_>, message: &'a BorrowedMessage<'_>) -> AuditedEvent<'a> {
    let payload = message.payload().unwrap_or_default();
    AuditedEvent {
        event_id: event.event_id(),
        agency_code: event.agency_code(),
        occurred_at: event.occurred_at(),
        day: LocalDay::of_micros(event.occurred_at()).0,
        recorded_at: event.recorded_at(),
        schema_id: split_header(payload).map_or(0, |(id, _)| id),
        payload,
        topic: message.topic(),
        kafka_partition: message.partition() as u32,
        kafka_offset: message.offset(),
    }
}

/// Queues a refused message for the dead-letter topic (delivered and acknowledged
/// before the checkpoint that moves past it) and counts it by reason.
fn refuse(shared: &Shared, dead_letters: &mut Vec<DeadLetter>, message: &BorrowedMessage<'_>, rejection: Rejection) {
    shared.metrics.rejected.with_label_values(&[rejection.reason.code()]).inc();
    if rejection.reason != RejectReason::TooLate {
        tracing::debug!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %rejection, "message refused");
    }
    dead_letters.push(DeadLetter {
        key: message.key().unwrap_or_default().to_vec(),
        payload: message.payload().unwrap_or_default().to_vec(),
        rejection,
        from: SourcePosition {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_takes_what_is_there_and_never_waits() {
        assert_eq!(ready(async { 7 }), Some(7));
        assert_eq!(ready(std::future::pending::<u8>()), None);
    }
}
