//! Pacing a source to a target rate (events per second), for simulations of a
//! live province and for freshness benchmarks. Pure arithmetic; the caller sleeps.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    events_per_second: f64,
}

impl Pacer {
    /// `None` for "as fast as possible".
    pub fn new(events_per_second: Option<f64>) -> Option<Pacer> {
        events_per_second.filter(|r| *r > 0.0).map(|events_per_second| Pacer { events_per_second })
    }

    /// How long to wait, `elapsed` after the start with `sent` events out, to keep the rate.
    pub fn wait(&self, sent: u64, elapsed: Duration) -> Duration {
        let due = Duration::from_secs_f64(sent as f64 / self.events_per_second);
        due.saturating_sub(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ahead_of_schedule_waits_behind_does_not() {
        let pacer = Pacer::new(Some(1000.0)).unwrap();
        assert_eq!(pacer.wait(500, Duration::from_millis(200)), Duration::from_millis(300));
        assert_eq!(pacer.wait(500, Duration::from_millis(900)), Duration::ZERO);
    }

    #[test]
    fn no_rate_means_no_pacing() {
        assert!(Pacer::new(None).is_none());
        assert!(Pacer::new(Some(0.0)).is_none());
    }
}
