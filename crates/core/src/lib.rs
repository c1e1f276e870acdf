//! The aifactory domain, shared by every other crate: the ISA-95 equipment hierarchy and the rest
//! of a plant's master data as written in plant files, orders, plant events, KPI definitions and
//! the `Decision` record that the ledger keeps.
//!
//! This crate owns *meaning*, not mechanics: it never does I/O beyond reading the text of a plant
//! file it is handed, never reads the clock, and never knows about the wire (MQTT, HTTP, SQL).
//! Everything here is plain data plus pure functions over it, so any component can depend on it.

pub mod decision;
pub mod event;
pub mod import;
pub mod kpi;
pub mod orders;
pub mod plant;
pub mod time;

pub use decision::{Decision, DecisionLog, ExecutedBy, LedgerRecord, LifecycleStage, Outcome};
pub use event::{EventKind, PlantEvent, SeriesName, TelemetryReading};
pub use kpi::{KpiInputs, Kpis};
pub use plant::{Plant, PlantFileError};
pub use time::Timestamp;
