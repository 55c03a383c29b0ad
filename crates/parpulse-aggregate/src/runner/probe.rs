//! ClickHouse as an idle aggregator sees it. An aggregator calls ClickHouse only when it
//! has work: a checkpoint, a state to load, a dossier or bucket to fetch. One that holds
//! no partition (the group gave them all to another member, or a rebalance is under
//! way) or whose partitions receive nothing would go on answering `/readyz` with 200
//! through a whole ClickHouse outage, and say nothing of the outage's end either. So
//! when ClickHouse has been silent for [`QUIET`] (no attempt reported either way, and
//! none under way: a checkpoint write, a state load or a fetch counts as silence only
//! once it has reported, however long it takes; see `Dependency::silent_for`), a ping
//! decides. While attempts retry, they decide alone: one is under way, or the wait
//! between two (at most `MAX_BACKOFF`) is shorter than [`QUIET`], and each reports as it
//! ends.

use std::sync::Arc;
use std::time::Duration;

use super::{Shared, MAX_BACKOFF};

/// How often the probe looks.
const EVERY: Duration = Duration::from_secs(5);
/// Silence after which it pings.
const QUIET: Duration = Duration::from_secs(15);
/// Longest wait for the ping's answer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

const _: () = assert!(QUIET.as_secs() > MAX_BACKOFF.as_secs(), "a retrying checkpoint is never overruled");

/// Whether to ping now: ClickHouse silent for long enough.
fn should_ping(silent_for: Duration) -> bool {
    silent_for >= QUIET
}

/// Pings ClickHouse whenever [`should_ping`], reporting the answer to the `clickhouse`
/// dependency; runs until aborted.
pub(super) async fn ping_when_quiet(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(EVERY).await;
        if !should_ping(shared.clickhouse.silent_for()) {
            continue;
        }
        let answer = match tokio::time::timeout(PING_TIMEOUT, shared.store.ping()).await {
            Ok(answer) => answer.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer within {PING_TIMEOUT:?}")),
        };
        // Counted as any failed attempt: an idle aggregator's errors panel shows the outage too.
        match answer {
            Ok(()) => shared.clickhouse.succeeded(),
            Err(error) => shared.clickhouse_failed("ping while idle", error),
        }
    }
}

/// Aborts the task when dropped: the probe ends with the aggregator, whichever way it returns.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_only_after_the_quiet_time() {
        assert!(!should_ping(QUIET - Duration::from_millis(1)));
        assert!(should_ping(QUIET));
        assert!(should_ping(QUIET * 4));
    }
}
