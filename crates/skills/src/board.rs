//! The plan board: where skills that share one plan (the coordinator's tier 2 and 3) post what
//! the others must plan around — maintenance windows the condition-based maintenance skill asks
//! for, and the live schedule the scheduling skill last made, which capable-to-promise quotes
//! from. A handle is cheap to clone; every skill holding one sees the same board.
//!
//! The board holds no logic of its own: each skill decides what to post and how to read it.

use aifactory_plant::{MachineId, PlantTime};
use aifactory_schedule::{Problem, Schedule};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// A maintenance window the maintenance skill asked the schedule for.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRequest {
    /// The maintenance decision that asked for it (cited by the plans that include it).
    pub decision: Option<String>,
    /// How long the service takes, seconds.
    pub duration_s: f64,
    pub requested_at: PlantTime,
    /// Where the last plan put it (start, in twin time), if a plan has seen it.
    pub planned_start: Option<PlantTime>,
    /// When its service began: from then on plans no longer place it, and cite it while the
    /// machine is out of service. The window leaves the board when the skill sees the renewal.
    pub started_at: Option<PlantTime>,
}

/// What one job of a [`LivePlan`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanJob {
    Work { number: u32, first_step: usize },
    Service(MachineId),
    SetUp,
}

/// The schedule the scheduling skill made last, as the problem it solved.
#[derive(Debug, Clone, PartialEq)]
pub struct LivePlan {
    pub at: PlantTime,
    /// The floor as a scheduling problem, times in seconds from `at`.
    pub problem: Problem,
    /// The plan the solver returned for it.
    pub schedule: Schedule,
    /// What each job of the problem is: a work order's number and first routing step, a
    /// maintenance window, or the placeholder that holds an idle machine's set-up.
    pub jobs: Vec<PlanJob>,
    /// The scheduling decision that made it.
    pub decision: Option<String>,
}

#[derive(Debug, Default)]
pub struct BoardState {
    pub windows: BTreeMap<MachineId, WindowRequest>,
    pub live_plan: Option<LivePlan>,
    /// In a closed loop: the maintenance decisions on each machine whose effect (serviced in
    /// time, or failed first) is still to be measured, with when each was made. All of them,
    /// not the last: the service or failure that follows answers every one.
    pub awaiting_service: BTreeMap<MachineId, Vec<(String, PlantTime)>>,
    /// A rate limit on planned services: at most this many machines in a planned service at
    /// once (urgent stops are never held back).
    pub max_planned_services: Option<usize>,
    /// Machines in a planned service started from a window, until the service ends.
    pub in_planned_service: BTreeSet<MachineId>,
    /// Windows the rate limit held back, so far.
    pub services_deferred: u64,
    /// In a closed loop with the condition watch: machines whose signals departed from their
    /// learnt behaviour, with the anomaly decision and when it was made, until their next
    /// service or failure. The maintenance skill brings their service forward.
    pub anomalies: BTreeMap<MachineId, (Option<String>, PlantTime)>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanBoard(Arc<Mutex<BoardState>>);

impl PlanBoard {
    pub fn new() -> Self {
        PlanBoard::default()
    }

    /// The board, locked. A poisoned lock still holds consistent data (every writer replaces
    /// whole entries), so it is used as is.
    pub fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
