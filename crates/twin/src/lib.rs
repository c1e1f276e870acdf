//! The digital twin: a discrete-event simulator of a plant described by a plant file,
//! deterministic from (plant, seed, policy).
//!
//! It owns simulated time ([`SimTime`], never the wall clock), the hidden state a real plant
//! hides too (machine wear, the true process optimum), and the physics linking them to what can
//! be observed (telemetry, failures, slowdowns, defects, energy). Decisions enter only through
//! the [`Policy`] interface — dispatch, maintenance, process parameters, release, purchasing —
//! the same interface AI skills use. Observations leave only through an [`Observer`].
//! It never reads the wall clock, the network or a database.
//!
//! ```text
//!  demand ─► sales orders ─► release ─► work orders ─► queues ─► dispatch ─► machines
//!                                                            ▲          │ wear, failures,
//!  Policy: release · dispatch · maintain · params · purchase ┘          ▼ defects, energy
//!  Observer ◄── events · telemetry                  KPIs ◄── counters
//! ```

mod commands;
mod energy;
mod model;
pub mod physics;
mod policy;
mod rng;
mod sim;

pub use commands::{Command, CommandCounts, CommandInbox, Commanded};
pub use model::{MachineId, PlantModel};
pub use policy::{
    BaselinePolicy, Boxed, DispatchRule, Floor, FloorAlternative, FloorJob, FloorMachine, Layer,
    MachineView, MaintenanceRule, MaterialView, OrderView, ParamSpec, Policy, PurchaseRequest,
    PurchasingRule, QueuedOp,
};
pub use sim::{
    EnergyByPeriod, LiveMachine, LiveOrder, LiveView, MachineSummary, Observer, SimResult, SimTime,
    Simulation, maintenance_history, order_book_history,
};

/// A plant the twin cannot simulate. Plant files are validated before they get here, so this
/// only names what validation cannot know about.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error("policy name `{0}` is unknown; expected fifo, edd or spt")]
    UnknownDispatchRule(String),
    #[error("maintenance rule `{0}` is unknown; expected rtf, pm or pm:HOURS (HOURS > 0)")]
    UnknownMaintenanceRule(String),
    #[error("purchasing rule `{0}` is unknown; expected reorder or none")]
    UnknownPurchasingRule(String),
}
