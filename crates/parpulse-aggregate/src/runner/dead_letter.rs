//! Refused messages on their way to the dead-letter topic.

use parpulse_core::validate::Rejection;
use parpulse_kafka::SourcePosition;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;

use super::checkpoint::CheckpointError;
use super::Shared;

/// The most of a refused message's key a dead letter keeps, in bytes.
const MAX_KEY_BYTES: usize = 1_000;

/// A refused message on its way to the dead-letter topic: its key and value as read,
/// why it was refused and where it was read from.
pub(super) struct DeadLetter {
    pub(super) key: Vec<u8>,
    pub(super) payload: Vec<u8>,
    pub(super) rejection: Rejection,
    pub(super) from: SourcePosition,
}

impl Shared {
    /// Produces the pending dead letters and waits for Kafka's acknowledgement.
    pub(super) async fn deliver_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), CheckpointError> {
        let mut deliveries = Vec::with_capacity(letters.len());
        for letter in letters {
            let (headers, value) =
                parpulse_kafka::dead_letter(&letter.rejection, "aggregator", Some(&letter.from), &letter.payload);
            // A key is an agency code; a hostile one is cut like the value.
            let key = &letter.key[..letter.key.len().min(MAX_KEY_BYTES)];
            let record = FutureRecord::to(&self.config.topics.deadletter).key(key).payload(value).headers(headers);
            let delivery = parpulse_kafka::enqueue(&self.producer, record).await;
            deliveries.push(delivery.map_err(CheckpointError::DeadLetter)?);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(CheckpointError::DeadLetter(error)),
                Err(_) => return Err(CheckpointError::DeadLetter(KafkaError::Canceled)),
            }
        }
        Ok(())
    }
}
