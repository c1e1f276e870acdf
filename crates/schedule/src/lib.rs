//! Advanced planning and scheduling: in what order, on which machine and when should the
//! operations run?
//!
//! It owns the scheduling problem (flexible job shop with release and due dates, weights,
//! machine downtime, frozen operations and set-ups), its file formats, an independent feasibility
//! checker, lower bounds, and an anytime solver: a constructive start, then tabu search over the
//! critical path with machine reassignment for the flexible case. It is pure: no async, no I/O
//! beyond parsing text it is handed, no wall clock except the time limit the caller passes, and
//! the same (problem, seed, threads) always gives the same schedule.

pub mod bounds;
pub mod check;
pub mod formats;
pub mod gantt;
pub mod import;
pub mod problem;
pub mod solve;

pub use bounds::lower_bound;
pub use check::{Violation, check};
pub use formats::{Format, FormatError, parse};
pub use problem::{
    Alternative, Downtime, Frozen, Job, Objective, Operation, Placement, Problem, Schedule,
};
pub use solve::{Solution, SolveOptions, solve};
