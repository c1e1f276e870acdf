//! AI skills: one per workflow, each a decision-maker over plant data that plugs into the same
//! [`aifactory_plant::Policy`] interface a real plant's coordinator drives.
//!
//! A skill owns its model and its reasoning, never the plant: it reads what the policy interface
//! shows (never the twin's hidden truth), and it never reads the wall clock (callers pass a clock
//! where a figure needs one). The only I/O is reading public benchmark files (NAB, C-MAPSS) and
//! labelled CSV folders ([`anomaly_eval`]) in the modules that score skills on them.
//!
//! Skills by lifecycle stage: production — scheduling (APS on a rolling horizon), streaming
//! anomaly detection ([`anomaly`], scored on NAB by [`nab`]; on machines' no-load current by
//! the [`condition`] watch; a machine's signals together by [`multivariate`], scored on labelled
//! folders by [`anomaly_eval`]), remaining useful life ([`rul`],
//! scored on NASA C-MAPSS), condition-based [`maintenance`], OEE losses ([`oee`]); testing —
//! [`spc`] and adaptive inspection; design — Bayesian optimisation ([`bo`], [`quality`]);
//! sales — demand [`forecast`]s and capable-to-promise ([`ctp`]); management — [`bom`]
//! explosion and [`replenish`]ment from forecasts. The layers that turn them into a plant's
//! decisions are in [`policy`].

pub mod anomaly;
pub mod anomaly_eval;
pub mod bo;
pub mod board;
pub mod bom;
pub mod condition;
pub mod ctp;
pub mod defect_risk;
pub mod forecast;
pub mod log;
pub mod maintenance;
pub mod multivariate;
pub mod nab;
pub mod oee;
pub mod policy;
pub mod quality;
pub mod replenish;
pub mod rul;
pub mod spc;

pub use policy::scheduling::{ApsConfig, ApsPolicy};
