//! Refused messages on their way to the dead-letter topic.

use parpulse_core::validate::Rejection;
use parpulse_kafka::SourcePosition;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;

use super::checkpoint::CheckpointError;
use super::Shared;

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
            let record = FutureRecord::to(&self.config.topics.deadletter)
                .key(&letter.key)
                .payload(&letter.payload)
                .headers(parpulse_kafka::dead_letter_headers(&letter.rejection, "aggregator", Some(&letter.from)));
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
