//! One shutdown per process. Ctrl-C or SIGTERM (or the command itself, when its work
//! is done) triggers it once; every task of the process waits on the same signal, and
//! the command waits for its tasks to finish (HTTP servers drain the requests in
//! flight, the aggregator writes its final checkpoint) before it returns.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    requested: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    /// A shutdown that Ctrl-C and SIGTERM trigger.
    pub fn on_signals() -> Self {
        let shutdown = Shutdown { requested: Arc::new(watch::channel(false).0) };
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            signal().await;
            tracing::info!("shutdown requested");
            trigger.trigger();
        });
        shutdown
    }

    /// Asks every task to stop.
    pub fn trigger(&self) {
        self.requested.send_replace(true);
    }

    /// Completes once shutdown is requested (at once if it already was).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut requested = self.requested.subscribe();
        async move {
            // An error means every sender is gone: nobody can ask any more, so stop.
            let _ = requested.wait_for(|&requested| requested).await;
        }
    }
}

async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_once_triggered_even_those_that_come_later() {
        let shutdown = Shutdown { requested: Arc::new(watch::channel(false).0) };
        let early = tokio::spawn(shutdown.wait());
        tokio::task::yield_now().await;
        assert!(!early.is_finished(), "nobody asked yet");
        shutdown.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(5), early).await.expect("woken").expect("no panic");
        tokio::time::timeout(std::time::Duration::from_secs(5), shutdown.wait()).await.expect("a late waiter too");
    }
}
