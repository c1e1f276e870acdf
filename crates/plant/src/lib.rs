//! The plant interface: what every plant — the digital twin or a real one behind a connector —
//! shows a decision and takes from it, with nothing of any one plant inside.
//!
//! It owns plant time ([`PlantTime`], milliseconds since the plant file's `start`), the plant's
//! master data indexed for decisions ([`MasterData`]), the views a decision reads ([`QueuedOp`],
//! [`MachineView`], [`OrderView`], [`MaterialView`], [`Floor`]), the decisions themselves (the
//! [`Policy`] trait, its [`Layer`]s and the tier-0 rules in [`BaselinePolicy`]), and the
//! [`Observer`] that receives a plant's events and telemetry (the shapes in `aifactory-core`).
//! Skills and the coordinator depend on this crate and never on the twin; the twin implements
//! the other side. Commands to a plant and the acknowledgements it returns are in [`command`];
//! [`drive`] asks a policy from a plant's projected state and turns its answers into commands;
//! [`ask`] answers a plant that asks for its decisions itself (an MES, the twin in lockstep).
//! It never simulates, reads a clock, the network or a database.

pub mod ask;
pub mod command;
pub mod drive;
mod master;
mod policy;
pub mod projection;
mod time;

pub use command::{
    Ack, AckStatus, AckTracker, Action, Command, CommandSink, DispatchJob, SendError,
};
pub use master::{MachineId, MasterData};
pub use policy::{
    BaselinePolicy, Boxed, DispatchRule, Floor, FloorAlternative, FloorJob, FloorMachine, Layer,
    Lot, MachineView, MaintenanceRule, MaterialView, OrderView, ParamSpec, Policy, PurchaseRequest,
    PurchasingRule, QueuedOp, lots_cover, sized_lots, standard_lots,
};
pub use projection::{Arrival, DecisionPoint, Projection, ProjectionConfig, ProjectionError};
pub use time::PlantTime;

use aifactory_core::{PlantEvent, TelemetryReading};

/// Receives what the plant shows. A plant builds records only for what an observer wants, so
/// a benchmark run with no observer pays nothing for them.
pub trait Observer {
    fn wants_events(&self) -> bool {
        false
    }
    fn event(&mut self, _event: PlantEvent) {}
    fn wants_telemetry(&self) -> bool {
        false
    }
    fn telemetry(&mut self, _readings: [TelemetryReading; 3]) {}
    /// One reading as a plant sends it (a feed's series `{machine}/{signal}`), for observers
    /// that watch signals one at a time; only called when [`Observer::wants_telemetry`].
    fn reading(&mut self, _reading: TelemetryReading) {}
}

/// An observer that wants nothing.
impl Observer for () {}

/// Two observers fed the same plant: each gets what it wants.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn wants_events(&self) -> bool {
        self.0.wants_events() || self.1.wants_events()
    }
    fn event(&mut self, event: PlantEvent) {
        match (self.0.wants_events(), self.1.wants_events()) {
            (true, true) => {
                self.0.event(event.clone());
                self.1.event(event);
            }
            (true, false) => self.0.event(event),
            (false, true) => self.1.event(event),
            (false, false) => {}
        }
    }
    fn wants_telemetry(&self) -> bool {
        self.0.wants_telemetry() || self.1.wants_telemetry()
    }
    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        if self.0.wants_telemetry() {
            self.0.telemetry(readings.clone());
        }
        if self.1.wants_telemetry() {
            self.1.telemetry(readings);
        }
    }
    fn reading(&mut self, reading: TelemetryReading) {
        if self.0.wants_telemetry() {
            self.0.reading(reading.clone());
        }
        if self.1.wants_telemetry() {
            self.1.reading(reading);
        }
    }
}

/// A tier-0 rule name no plant knows.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("policy name `{0}` is unknown; expected fifo, edd or spt")]
    UnknownDispatchRule(String),
    #[error("maintenance rule `{0}` is unknown; expected rtf, pm or pm:HOURS (HOURS > 0)")]
    UnknownMaintenanceRule(String),
    #[error("purchasing rule `{0}` is unknown; expected reorder or none")]
    UnknownPurchasingRule(String),
}
