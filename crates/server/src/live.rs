//! The live plant as the API shows it: a view that whoever runs the plant (the CLI's live twin,
//! or a plant's own data path) publishes, the plan behind the schedule, what-if proposals, and
//! the commands an approved proposal sends back to the plant.
//!
//! The server only reads what is published here and never runs a plant itself, so the same
//! routes serve a simulated plant and a real one.

use aifactory_core::{Decision, Kpis, PlantEvent, Timestamp};
use aifactory_plant::{Action, Command, SendError};
use aifactory_schedule::{Objective, Problem, Schedule, SolveOptions};
use serde::{Serialize, Serializer};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

/// Times in the live view are RFC 3339 text, as dashboards and people read them.
fn rfc3339<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

fn rfc3339_opt<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_rfc3339()),
        None => s.serialize_none(),
    }
}

/// One machine now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MachineNow {
    pub id: String,
    pub name: String,
    /// Work centre.
    pub group: String,
    /// `idle`, `busy`, `down` or `maintenance`.
    pub state: String,
    /// The standard state code from the plant-state projection (UMH: 10000 running, 40000
    /// unplanned stop, 100000 changeover, 170000 no order, 180000 equipment failure, 210000
    /// preventive maintenance; 30000 no data yet), the same for the twin and a real plant.
    pub state_code: u32,
    /// The work order running on it.
    pub order: Option<String>,
    /// The routing step running.
    pub operation: Option<usize>,
    /// Work orders queued at it.
    pub queue: usize,
    /// Share of time so far spent running.
    pub utilisation: f64,
    /// Streaming anomaly score of its vibration, in [0, 1], once the detector has warmed up.
    pub anomaly_score: Option<f64>,
    pub anomaly: bool,
    pub failures: u64,
    pub maintenances: u64,
    /// Running hours since its last repair or service.
    pub age_h: f64,
    /// The chance, from the fleet's maintenance records, that it runs the next 24 running hours
    /// without a failure; `None` where the records cannot say.
    pub health: Option<f64>,
    /// Median remaining running hours before a failure, from the same records.
    pub rul_h: Option<f64>,
    /// When the maintenance skill's planned service starts, if one is planned.
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_service: Option<Timestamp>,
}

/// A sales order now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OrderNow {
    pub id: String,
    pub product: String,
    pub quantity: u32,
    pub delivered: u32,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received: Timestamp,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub due: Timestamp,
    pub released: bool,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed: Option<Timestamp>,
    /// `waiting`, `in_progress` or `completed`.
    pub status: String,
    /// Completed after its due date, or still open past it.
    pub late: bool,
}

/// Order counts for the overview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct OrderCounts {
    pub open: usize,
    pub released: usize,
    pub completed: usize,
    pub late: usize,
}

impl OrderCounts {
    pub fn of(orders: &[OrderNow]) -> OrderCounts {
        let mut c = OrderCounts::default();
        for o in orders {
            match o.completed {
                Some(_) => c.completed += 1,
                None => {
                    c.open += 1;
                    if o.released {
                        c.released += 1;
                    }
                }
            }
            if o.late {
                c.late += 1;
            }
        }
        c
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PlantId {
    pub id: String,
    pub name: String,
}

/// A plant event as the live view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventNow {
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[schema(value_type = String, example = "operation_started")]
    pub kind: aifactory_core::EventKind,
    pub machine: Option<String>,
    pub order: Option<String>,
    pub detail: serde_json::Value,
}

impl From<PlantEvent> for EventNow {
    fn from(e: PlantEvent) -> Self {
        EventNow {
            at: e.at,
            kind: e.kind,
            machine: e.machine,
            order: e.order,
            detail: e.detail,
        }
    }
}

/// The plant now: what `GET /api/v1/plant` and the `plant` server-sent event carry.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PlantNow {
    pub plant: PlantId,
    /// The tier of the configuration running (what it is built to reach; the assessment
    /// computes what the ledger shows).
    pub tier: u8,
    /// Twin seconds per wall-clock second (1 for a real plant).
    pub speed: f64,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub sim_time: Timestamp,
    pub running: bool,
    pub machines: Vec<MachineNow>,
    pub orders: OrderCounts,
    #[schema(value_type = Object)]
    pub kpis: Kpis,
    /// Newest first.
    pub recent_events: Vec<EventNow>,
}

/// What one job of the live plan is.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PlanJob {
    /// A work order (`WO-000123`) or a service (`service TURN-01`).
    pub label: String,
    pub order: Option<String>,
    /// The routing step of the job's first operation (work orders).
    pub first_step: usize,
    /// `work`, `service` or `setup`.
    pub kind: String,
}

/// The schedule in force: the problem the scheduling skill solved and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// When it was made; the problem's times are seconds from then.
    pub at: Timestamp,
    pub decision: Option<String>,
    /// Machine ids by the problem's machine numbers.
    pub machines: Vec<String>,
    pub problem: Problem,
    pub schedule: Schedule,
    pub jobs: Vec<PlanJob>,
}

/// How long a command from an approval may wait for the plant to carry it out (plant time):
/// maintenance waits for the machine to be free, a set-point for its next operation.
pub const COMMAND_TTL_MS: i64 = 24 * 3_600_000;

/// Where commands go; the plant's runner decides how to carry them out and reports their
/// acknowledgements.
pub type CommandSink = Arc<dyn aifactory_plant::CommandSink>;

/// What a live plant publishes, all at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub plant: PlantNow,
    pub orders: Vec<OrderNow>,
    pub plan: Option<Plan>,
    /// The site and node of the plant's telemetry series in the store (for range queries).
    pub series_site: String,
    pub series_node: String,
    /// Control charts of the machines' signals, live.
    pub spc: Vec<SpcChart>,
    /// Demand forecasts per product, refreshed daily.
    pub forecasts: Vec<ProductForecast>,
    /// Anomalies flagged so far (the most recent few hundred), newest first.
    pub anomalies: Vec<AnomalyMark>,
    /// The products with their routings: for quotes, set-point bounds and the agent's
    /// vocabulary.
    pub products: Vec<ProductInfo>,
}

/// A process parameter's range, from the plant file.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ParamRange {
    pub name: String,
    pub unit: String,
    pub min: f64,
    pub max: f64,
    pub default: f64,
}

/// One routing step: minutes per unit on each eligible machine, set-up and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StepInfo {
    pub name: String,
    pub minutes_per_unit: Vec<(String, f64)>,
    pub setup_min: f64,
    pub params: Vec<ParamRange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProductInfo {
    pub id: String,
    pub name: String,
    pub name_zh: Option<String>,
    pub steps: Vec<StepInfo>,
}

impl Snapshot {
    /// The range of `param` on `machine`: the widest over the routing steps that run on the
    /// machine with that parameter (the twin clamps into the step's own range).
    pub fn param_range(&self, machine: &str, param: &str) -> Option<ParamRange> {
        let mut found: Option<ParamRange> = None;
        for step in self.products.iter().flat_map(|p| &p.steps) {
            if !step.minutes_per_unit.iter().any(|(m, _)| m == machine) {
                continue;
            }
            for p in step.params.iter().filter(|p| p.name == param) {
                found = Some(match found {
                    None => p.clone(),
                    Some(f) => ParamRange {
                        min: f.min.min(p.min),
                        max: f.max.max(p.max),
                        ..f
                    },
                });
            }
        }
        found
    }
}

/// Centre line and limits of a control chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Limits {
    pub center: f64,
    pub ucl: f64,
    pub lcl: f64,
}

/// One subgroup on an X̄-R chart.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SpcPoint {
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub mean: f64,
    pub range: f64,
    /// Run rules the point broke (e.g. `nelson_1`).
    pub violations: Vec<String>,
}

/// An X̄-R chart of one machine's signal.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SpcChart {
    pub machine: String,
    pub signal: String,
    pub subgroup_size: usize,
    #[serde(flatten)]
    pub mean: Limits,
    pub range: Limits,
    /// The most recent subgroups, oldest first.
    pub points: Vec<SpcPoint>,
}

/// Units ordered on one day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DayQuantity {
    pub day: String,
    pub quantity: f64,
}

/// A forecast day with its prediction interval.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DayForecast {
    pub day: String,
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProductForecast {
    pub product: String,
    /// Coverage of the interval, e.g. 0.9.
    pub level: f64,
    pub history: Vec<DayQuantity>,
    pub forecast: Vec<DayForecast>,
}

/// A point the anomaly detector flagged.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AnomalyMark {
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub machine: String,
    pub signal: String,
    pub score: f64,
}

/// The live feed: the latest snapshot, the decisions as they are made, and the way back to
/// the plant. Cloned into the server state; the runner keeps the publishing half.
#[derive(Clone)]
pub struct Live {
    snapshot: watch::Receiver<Option<Arc<Snapshot>>>,
    decisions: broadcast::Sender<Arc<Decision>>,
    commands: Option<CommandSink>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

/// The runner's half of the feed.
#[derive(Debug)]
pub struct Publisher {
    snapshot: watch::Sender<Option<Arc<Snapshot>>>,
    decisions: broadcast::Sender<Arc<Decision>>,
}

impl Publisher {
    pub fn snapshot(&self, snapshot: Snapshot) {
        self.snapshot.send_replace(Some(Arc::new(snapshot)));
    }

    /// A handle that announces decisions, for whoever writes them to the store.
    pub fn announcer(&self) -> Announcer {
        Announcer(self.decisions.clone())
    }
}

/// Announces decisions to live subscribers.
#[derive(Debug, Clone)]
pub struct Announcer(broadcast::Sender<Arc<Decision>>);

impl Announcer {
    /// Nobody listening is fine.
    pub fn decision(&self, decision: Decision) {
        let _ = self.0.send(Arc::new(decision));
    }
}

impl Live {
    /// A feed with nothing published yet; `commands` is where approved changes go (`None`:
    /// this plant takes no commands, and approving says so).
    pub fn new(commands: Option<CommandSink>) -> (Live, Publisher) {
        let (tx, rx) = watch::channel(None);
        let (decisions, _) = broadcast::channel(256);
        (
            Live {
                snapshot: rx,
                decisions: decisions.clone(),
                commands,
            },
            Publisher {
                snapshot: tx,
                decisions,
            },
        )
    }

    /// A feed that never publishes: a server over a store alone.
    pub fn none() -> Live {
        Live::new(None).0
    }

    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.snapshot.clone()
    }

    pub fn subscribe_decisions(&self) -> broadcast::Receiver<Arc<Decision>> {
        self.decisions.subscribe()
    }

    pub fn announce(&self, decision: Decision) {
        let _ = self.decisions.send(Arc::new(decision));
    }

    /// Sends `action` to the plant as the command that executes `decision`, which must already
    /// be in the ledger; answers the command's id (its acknowledgements name it).
    pub fn command(&self, decision: &Decision, action: Action) -> Result<String, SendError> {
        let sink = self.commands.as_ref().ok_or(SendError::NotAccepted)?;
        let command = Command {
            id: format!("C-{}", decision.id),
            decision: Some(decision.id.clone()),
            expires: Some(Timestamp(decision.at.0 + COMMAND_TTL_MS)),
            action,
        };
        let id = command.id.clone();
        sink.send(command)?;
        Ok(id)
    }
}

/// One bar of a Gantt chart.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Bar {
    pub machine: String,
    pub job: String,
    pub order: Option<String>,
    pub op: usize,
    pub kind: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

/// How good a schedule is, in the terms a planner uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct PlanScore {
    pub makespan_h: f64,
    pub weighted_tardiness_h: f64,
    pub late_jobs: usize,
}

impl Plan {
    /// The plan's bars (set-up placeholders left out).
    pub fn bars(&self, schedule: &Schedule) -> Vec<Bar> {
        let at = |s: i64| Timestamp(self.at.0.saturating_add(s.saturating_mul(1000)));
        let mut bars = Vec::new();
        for (job, ops) in self.jobs.iter().zip(&schedule.placements) {
            if job.kind == "setup" {
                continue;
            }
            for p in ops {
                bars.push(Bar {
                    machine: self
                        .machines
                        .get(p.machine)
                        .cloned()
                        .unwrap_or_else(|| p.machine.to_string()),
                    job: job.label.clone(),
                    order: job.order.clone(),
                    op: job.first_step + p.op,
                    kind: job.kind.clone(),
                    start: at(p.start),
                    end: at(p.end),
                });
            }
        }
        bars
    }

    pub fn score(&self, schedule: &Schedule) -> PlanScore {
        let late_jobs = self
            .problem
            .jobs
            .iter()
            .zip(&schedule.placements)
            .filter(|(job, ops)| {
                let end = ops.iter().map(|p| p.end).max().unwrap_or(0);
                job.due.is_some_and(|due| end > due)
            })
            .count();
        PlanScore {
            makespan_h: schedule.makespan() as f64 / 3600.0,
            weighted_tardiness_h: schedule.weighted_tardiness(&self.problem) / 3600.0,
            late_jobs,
        }
    }

    /// Re-plans with `machine` unavailable for the first `hours`; `None` if the plan has no
    /// such machine. Deterministic: a fixed seed and iteration budget.
    pub fn without_machine(
        &self,
        machine: &str,
        hours: f64,
    ) -> Option<Result<Schedule, aifactory_schedule::formats::FormatError>> {
        let number = self.machines.iter().position(|m| m == machine)?;
        let mut problem = self.problem.clone();
        let end = (hours * 3600.0).round() as i64;
        // Work already running on it finishes first: the machine goes down when it is free.
        let start = self
            .problem
            .jobs
            .iter()
            .flat_map(|j| &j.operations)
            .filter_map(|o| {
                let f = o.frozen.filter(|f| f.machine == number)?;
                let d = o.alternatives.iter().find(|a| a.machine == number)?;
                Some(f.start + d.duration)
            })
            .max()
            .unwrap_or(0);
        problem.downtime.push(aifactory_schedule::Downtime {
            machine: number,
            start,
            end: start + end,
        });
        if let Err(e) = aifactory_schedule::formats::validate(&problem) {
            return Some(Err(e));
        }
        let options = SolveOptions {
            objective: Objective::Mix {
                makespan_weight: 1.0,
            },
            time_limit: None,
            max_iterations: Some(2_000),
            threads: 1,
            seed: 1,
        };
        Some(Ok(aifactory_schedule::solve(&problem, &options).schedule))
    }
}
