//! Audit rows (the `event_log` table) leave memory as they fill, not with the checkpoint.
//!
//! Every applied event is encoded into one buffer shared by the partitions. Once it holds
//! `audit_piece_bytes`, the consume loop hands it as a piece to a writer task, which stores
//! pieces one at a time, retrying until ClickHouse answers. A checkpoint stores what is left
//! in the buffer itself, and waits until every piece handed over before it was taken is
//! stored before it writes its checkpoint rows: an event's audit row is stored before the
//! checkpoint that moves past the event, as when the audit rows went with the checkpoint.
//!
//! Storing an audit row ahead of its checkpoint is safe because audit rows are the events
//! themselves, deduplicated by event id when read: after a crash, the events past the last
//! checkpoint are applied again and their rows stored again, changing nothing.
//!
//! Memory: one piece being stored, one waiting in the channel (it holds one), and one
//! filling, or handed over and waiting in the consume loop, which stops until the channel
//! has room (back-pressure through a ClickHouse outage, as for checkpoints); and at most a
//! piece's worth of rest in the checkpoint in flight: about four pieces in all. Before,
//! the rows of two checkpoints (up to 2 x `checkpoint_max_events` events) were held: 72-89
//! MiB of the peak RSS while a backlog was replayed (docs/BENCHMARKS.md, seventh round).

use std::sync::Arc;

use parpulse_clickhouse::event_log::{self, EventLogChunk};
use tokio::sync::{mpsc, watch};

use super::{Shared, Work};

/// The consume loop's and the checkpoints' side of the writer task.
pub(super) struct AuditPieces {
    pieces: mpsc::Sender<EventLogChunk>,
    stored: watch::Receiver<u64>,
}

/// The writer task's side.
pub(super) struct AuditWriter {
    pieces: mpsc::Receiver<EventLogChunk>,
    stored: watch::Sender<u64>,
}

/// The two ends: pieces go in, the number of pieces stored comes back.
pub(super) fn channel() -> (AuditPieces, AuditWriter) {
    let (pieces_in, pieces_out) = mpsc::channel(1);
    let (stored_in, stored_out) = watch::channel(0);
    (AuditPieces { pieces: pieces_in, stored: stored_out }, AuditWriter { pieces: pieces_out, stored: stored_in })
}

impl Shared {
    /// Hands the audit buffer to the writer once it holds a piece's worth of rows (waits
    /// while the writer is storing one piece and another waits in the channel).
    pub(super) async fn audit_piece_if_full(&self, work: &mut Work) {
        if work.audit.len_bytes() < self.config.audit_piece_bytes {
            return;
        }
        let piece = work.audit.take();
        self.audit.pieces.send(piece).await.expect("the audit writer runs as long as the aggregator");
        work.audit_pieces_sent += 1;
    }

    /// Waits until the first `pieces` pieces handed to the writer are stored, showing how
    /// many it waits for meanwhile (`parpulse_aggregator_audit_pieces_awaited`).
    pub(super) async fn audit_stored_through(&self, pieces: u64) {
        let mut stored = self.audit.stored.clone();
        let awaited = pieces.saturating_sub(*stored.borrow());
        self.metrics.audit_pieces_awaited.set(i64::try_from(awaited).unwrap_or(i64::MAX));
        if awaited > 0 {
            let waited = stored.wait_for(|stored| *stored >= pieces).await.map(|_| ());
            waited.expect("the audit writer runs as long as the aggregator");
        }
        self.metrics.audit_pieces_awaited.set(0);
    }
}

/// Stores the pieces in the order given, each retried until ClickHouse takes it (within
/// the checkpoint timeout per attempt); runs until aborted.
pub(super) async fn store_pieces(shared: Arc<Shared>, mut writer: AuditWriter) {
    while let Some(piece) = writer.pieces.recv().await {
        let piece = [piece];
        shared
            .until_clickhouse_answers("storing audit rows failed; consumption pauses at the next piece", || {
                shared.within_checkpoint_timeout(shared.timed("event_log", event_log::write(&shared.store, &piece)))
            })
            .await;
        shared.metrics.audit_pieces.inc();
        writer.stored.send_modify(|stored| *stored += 1);
    }
}
