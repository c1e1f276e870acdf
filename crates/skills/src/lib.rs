//! AI skills: one per workflow, each a decision-maker over plant data that plugs into the same
//! [`aifactory_twin::Policy`] interface a real plant's coordinator drives.
//!
//! A skill owns its model and its reasoning, never the plant: it reads what the policy interface
//! shows (never the twin's hidden truth), and it never reads the wall clock (callers pass a clock
//! where a figure needs one). The only I/O is reading public benchmark files (NAB, C-MAPSS) in
//! the modules that score skills on them.
//!
//! Today: scheduling (advanced planning and scheduling on a rolling horizon); streaming anomaly
//! detection on telemetry ([`anomaly`], scored on NAB by [`nab`]); remaining useful life from
//! run-to-failure histories ([`rul`], scored on NASA C-MAPSS).

pub mod anomaly;
pub mod bo;
pub mod bom;
pub mod ctp;
pub mod forecast;
pub mod maintenance;
pub mod nab;
pub mod oee;
pub mod quality;
pub mod rul;
mod scheduling;
pub mod spc;

pub use scheduling::{ApsConfig, ApsPolicy};
