//! The digital twin: a discrete-event simulator of a plant described by a plant file,
//! deterministic from (plant, seed, policy).
//!
//! It owns its clock (plant time advanced by events, never the wall clock), the hidden state a
//! real plant hides too (machine wear, the true process optimum), and the physics linking them
//! to what can be observed (telemetry, failures, slowdowns, defects, energy). It is one plant
//! among others: decisions enter only through the plant interface's [`Policy`] — dispatch,
//! maintenance, process parameters, release, purchasing — and observations leave only through
//! its [`Observer`] (both in `aifactory-plant`, re-exported here). Nothing that decides depends
//! on this crate. It never reads the wall clock, the network or a database.
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
mod rng;
mod sim;

pub use aifactory_plant::{
    BaselinePolicy, Boxed, DispatchRule, Floor, FloorAlternative, FloorJob, FloorMachine, Layer,
    Lot, MachineId, MachineView, MaintenanceRule, MasterData, MaterialView, Observer, OrderView,
    ParamSpec, PlantTime, Policy, PurchaseRequest, PurchasingRule, QueuedOp, RuleError,
    standard_lots,
};
pub use commands::{CommandCounts, CommandInbox, Commanded};
pub use model::PlantModel;
pub use sim::{
    EnergyByPeriod, LiveMachine, LiveOrder, LiveView, MachineSummary, SimResult, Simulation,
    maintenance_history, order_book_history,
};
