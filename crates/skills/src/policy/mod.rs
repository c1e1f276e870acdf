//! The policy layers that compose the skills' algorithms into decisions a plant takes: each
//! wraps an inner [`aifactory_plant::Policy`], decides what its skill owns and leaves the rest to
//! the inner one. The models, fits and searches they call live in the skill modules
//! ([`crate::maintenance`], [`crate::quality`], [`crate::forecast`], [`crate::replenish`],
//! `aifactory-schedule`); the skill modules re-export their layer for callers.

pub mod lots;
pub mod maintenance;
pub mod purchasing;
pub mod quality;
pub mod replenish;
pub mod scheduling;
