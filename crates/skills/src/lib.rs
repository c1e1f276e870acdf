//! AI skills: one per workflow, each a decision-maker over plant data that plugs into the same
//! [`aifactory_twin::Policy`] interface a real plant's coordinator drives.
//!
//! A skill owns its model and its reasoning, never the plant: it reads what the policy interface
//! shows (never the twin's hidden truth), and it never does I/O or reads the wall clock.
//! Today: the scheduling skill (advanced planning and scheduling on a rolling horizon).

mod scheduling;

pub use scheduling::{ApsConfig, ApsPolicy};
