//! Plant time: the clock every decision reads.

use aifactory_core::Timestamp;
use serde::{Deserialize, Serialize};

/// Milliseconds since the plant's start (the plant file's `start`). The twin advances it with
/// its own clock; a real plant's runtime converts the wall-clock time of its events with
/// [`PlantTime::since`]. Decisions never read the wall clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct PlantTime(pub u64);

impl PlantTime {
    pub fn from_hours(hours: f64) -> PlantTime {
        PlantTime((hours.max(0.0) * 3_600_000.0).round() as u64)
    }

    pub fn from_days(days: f64) -> PlantTime {
        PlantTime::from_hours(days * 24.0)
    }

    pub fn hours(self) -> f64 {
        self.0 as f64 / 3_600_000.0
    }

    pub fn days(self) -> f64 {
        self.0 as f64 / 86_400_000.0
    }

    /// The plant time of a wall-clock instant, given the plant's start; instants before the
    /// start are the start itself.
    pub fn since(start: Timestamp, at: Timestamp) -> PlantTime {
        PlantTime(u64::try_from(at.0.saturating_sub(start.0)).unwrap_or(0))
    }

    /// The wall-clock instant of this plant time, given the plant's start.
    pub fn at(self, start: Timestamp) -> Timestamp {
        Timestamp(
            start
                .0
                .saturating_add(i64::try_from(self.0).unwrap_or(i64::MAX)),
        )
    }
}
