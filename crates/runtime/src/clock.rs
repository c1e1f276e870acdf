//! The wall clock, injected: pacing and receive times read it through a [`Clock`] the caller
//! hands in, so the runtime picks no clock of its own and a test can script one.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Two readings of the wall clock: time since a fixed instant (pacing, stall timers) and
/// milliseconds since the Unix epoch (when ingest received a message).
#[derive(Clone)]
pub struct Clock {
    elapsed: Arc<dyn Fn() -> Duration + Send + Sync>,
    epoch_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl Clock {
    /// A clock from its two readings.
    pub fn new(
        elapsed: impl Fn() -> Duration + Send + Sync + 'static,
        epoch_ms: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Clock {
        Clock {
            elapsed: Arc::new(elapsed),
            epoch_ms: Arc::new(epoch_ms),
        }
    }

    /// The machine's clocks: monotonic time from now, and the system time.
    pub fn system() -> Clock {
        let origin = Instant::now();
        Clock::new(move || origin.elapsed(), system_epoch_ms)
    }

    /// Time since the clock's fixed instant; never goes back.
    pub fn elapsed(&self) -> Duration {
        (self.elapsed)()
    }

    /// Milliseconds since the Unix epoch.
    pub fn epoch_ms(&self) -> i64 {
        (self.epoch_ms)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock").finish_non_exhaustive()
    }
}

/// The system time in milliseconds since the Unix epoch (0 before it, `i64::MAX` far after).
pub fn system_epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripted_clock_reads_what_it_was_given() {
        let clock = Clock::new(|| Duration::from_secs(7), || 1_700_000_000_000);
        assert_eq!(clock.elapsed(), Duration::from_secs(7));
        assert_eq!(clock.epoch_ms(), 1_700_000_000_000);
        assert_eq!(format!("{clock:?}"), "Clock { .. }");
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let clock = Clock::system();
        let (a, b) = (clock.elapsed(), clock.elapsed());
        assert!(b >= a);
        assert!(clock.epoch_ms() > 1_600_000_000_000);
    }
}
