//! Decisions a plant asks for (`decision_request` in `docs/PLANT-CONTRACT.md`), as an MES
//! asks a real-time dispatcher: at each of its decision points the plant sends the views its own
//! loop has at that moment, and waits for the commands that answer it. The twin asks this way in
//! lockstep, so a run over the wire makes exactly the calls an in-process run makes.
//!
//! Both sides are here so they cannot drift apart: [`Ask::put`] asks a policy and turns its
//! answer into the commands' actions (the runtime's side); [`Ask::answer`] reads the commands a
//! plant received back into the answer its own loop applies (the plant's side). Every id in an
//! answer comes from the request or the master data: nothing here knows how a plant names its
//! orders.

use crate::command::{Action, DispatchJob};
use crate::policy::{
    Floor, Lot, MachineView, MaterialView, OrderView, ParamSpec, PurchaseRequest, sized_lots,
};
use crate::{MachineId, MasterData, PlantTime, Policy, QueuedOp};
use aifactory_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One decision point of a plant, with what the plant sees there. Machines, products and
/// materials are numbered by their position in the plant file; orders carry their ids beside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Ask {
    /// A machine is free: should it be serviced now?
    StartMaintenance { view: MachineView },
    /// Work waits at a free machine: should it stay idle until a later time?
    HoldUntil {
        now: PlantTime,
        machine: MachineId,
        candidates: Vec<QueuedOp>,
        /// The work-order id of each candidate.
        orders: Vec<String>,
    },
    /// Which of the waiting operations the machine starts.
    Dispatch {
        now: PlantTime,
        machine: MachineId,
        candidates: Vec<QueuedOp>,
        orders: Vec<String>,
    },
    /// The set-points of an operation about to start, in the step's parameter order.
    ProcessParams {
        machine: MachineId,
        product: usize,
        step: usize,
        specs: Vec<ParamSpec>,
    },
    /// Which sales orders to release to the floor.
    Release {
        now: PlantTime,
        pending: Vec<OrderView>,
        /// The sales-order id of each pending order.
        orders: Vec<String>,
    },
    /// What to buy at a stock review.
    Purchase {
        now: PlantTime,
        stock: Vec<MaterialView>,
    },
    /// The whole floor, for a planner that schedules ahead (answered by no command).
    Plan { floor: Floor },
}

/// What the plant's own loop applies, read from the commands that answered an [`Ask`].
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    StartMaintenance(bool),
    HoldUntil(Option<PlantTime>),
    /// The index of the chosen candidate.
    Dispatch(usize),
    /// One value per parameter spec (the spec's default where no set-point came).
    ProcessParams(Vec<f64>),
    /// Indices into the pending orders, and the lots of those sized otherwise than the
    /// plant's standard lots (by the same indices).
    Release {
        chosen: Vec<usize>,
        lots: BTreeMap<usize, Vec<Lot>>,
    },
    Purchase(Vec<PurchaseRequest>),
    Planned,
}

/// Why the commands received do not answer the request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    #[error("no dispatch list for machine {machine} names a waiting job")]
    NoDispatch { machine: String },
    #[error("the machine index {0} is not in the plant")]
    UnknownMachine(MachineId),
}

fn machine_id(master: &MasterData, m: MachineId) -> Option<String> {
    master.machine_id(m).map(str::to_owned)
}

fn param_names(master: &MasterData, product: usize, step: usize) -> Vec<String> {
    master
        .plant()
        .products
        .get(product)
        .and_then(|p| p.routing.get(step))
        .map(|s| s.params.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default()
}

impl Ask {
    /// The call's name in the contract (`data.call`).
    pub fn call(&self) -> &'static str {
        match self {
            Ask::StartMaintenance { .. } => "start_maintenance",
            Ask::HoldUntil { .. } => "hold_until",
            Ask::Dispatch { .. } => "dispatch",
            Ask::ProcessParams { .. } => "process_params",
            Ask::Release { .. } => "release",
            Ask::Purchase { .. } => "purchase",
            Ask::Plan { .. } => "plan",
        }
    }

    /// Why the request cannot be put to a policy: an index outside the plant, or ids that do
    /// not pair with the views.
    pub fn refusal(&self, master: &MasterData) -> Option<String> {
        let machines = master.plant().machines.len();
        let machine_ok = |m: MachineId| m < machines;
        match self {
            Ask::StartMaintenance { view } if !machine_ok(view.machine) => {
                Some(format!("view.machine {} is not in the plant", view.machine))
            }
            Ask::HoldUntil {
                machine,
                candidates,
                orders,
                ..
            }
            | Ask::Dispatch {
                machine,
                candidates,
                orders,
                ..
            } => {
                if !machine_ok(*machine) {
                    Some(format!("machine {machine} is not in the plant"))
                } else if candidates.is_empty() {
                    Some("candidates is empty".to_owned())
                } else if orders.len() != candidates.len() {
                    Some(format!(
                        "orders has {} ids for {} candidates",
                        orders.len(),
                        candidates.len()
                    ))
                } else {
                    None
                }
            }
            Ask::ProcessParams {
                machine, product, ..
            } => {
                if !machine_ok(*machine) {
                    Some(format!("machine {machine} is not in the plant"))
                } else if *product >= master.plant().products.len() {
                    Some(format!("product {product} is not in the plant"))
                } else {
                    None
                }
            }
            Ask::Release {
                pending, orders, ..
            } if orders.len() != pending.len() => Some(format!(
                "orders has {} ids for {} pending orders",
                orders.len(),
                pending.len()
            )),
            _ => None,
        }
    }

    /// Puts the request to `policy` and answers with the actions that carry its decision out
    /// (`start`: the plant's start, for times). Call [`Ask::refusal`] first.
    pub fn put(
        &self,
        policy: &mut dyn Policy,
        master: &MasterData,
        start: Timestamp,
    ) -> Vec<Action> {
        match self {
            Ask::StartMaintenance { view } => {
                if policy.start_maintenance(view) {
                    machine_id(master, view.machine)
                        .map(|machine| Action::StartMaintenance { machine })
                        .into_iter()
                        .collect()
                } else {
                    Vec::new()
                }
            }
            Ask::HoldUntil {
                now,
                machine,
                candidates,
                ..
            } => match (
                policy.hold_until(*now, *machine, candidates),
                machine_id(master, *machine),
            ) {
                (Some(until), Some(machine)) => vec![Action::Hold {
                    machine,
                    until: until.at(start),
                }],
                _ => Vec::new(),
            },
            Ask::Dispatch {
                now,
                machine,
                candidates,
                orders,
            } => {
                let pick = policy
                    .dispatch(*now, *machine, candidates)
                    .min(candidates.len().saturating_sub(1));
                match (
                    candidates.get(pick),
                    orders.get(pick),
                    machine_id(master, *machine),
                ) {
                    (Some(op), Some(order), Some(machine)) => vec![Action::DispatchList {
                        machine,
                        jobs: vec![DispatchJob {
                            order: order.clone(),
                            step: op.step,
                        }],
                    }],
                    _ => Vec::new(),
                }
            }
            Ask::ProcessParams {
                machine,
                product,
                step,
                specs,
            } => {
                let values = policy.process_params(*machine, *product, *step, specs);
                let Some(machine) = machine_id(master, *machine) else {
                    return Vec::new();
                };
                param_names(master, *product, *step)
                    .into_iter()
                    .zip(values)
                    // A value that is not finite is no set-point: the plant keeps its default.
                    .filter(|(_, value)| value.is_finite())
                    .map(|(param, value)| Action::SetPoint {
                        machine: machine.clone(),
                        param,
                        value,
                    })
                    .collect()
            }
            Ask::Release {
                now,
                pending,
                orders,
            } => {
                let mut chosen = policy.release(*now, pending);
                chosen.retain(|&i| i < orders.len() && i < pending.len());
                chosen.sort_unstable();
                chosen.dedup();
                if chosen.is_empty() {
                    return Vec::new();
                }
                // Asked in the order a plant opens them, as the twin asks in-process.
                let lots = chosen
                    .iter()
                    .filter_map(|&i| {
                        let view = &pending[i];
                        let lot_size = master
                            .plant()
                            .products
                            .get(view.product)
                            .map_or(1, |p| p.lot_size);
                        sized_lots(policy, *now, view, lot_size)
                            .map(|lots| (orders[i].clone(), lots))
                    })
                    .collect();
                vec![Action::Release {
                    orders: chosen.into_iter().map(|i| orders[i].clone()).collect(),
                    lots,
                }]
            }
            Ask::Purchase { now, stock } => policy
                .purchase(*now, stock)
                .into_iter()
                .filter(|r| r.quantity.is_finite() && r.quantity > 0.0)
                .filter_map(|r| {
                    let material = master.plant().materials.get(r.material)?.id.clone();
                    Some(Action::Purchase {
                        material,
                        quantity: r.quantity,
                    })
                })
                .collect(),
            Ask::Plan { floor } => {
                policy.plan(floor);
                Vec::new()
            }
        }
    }

    /// Reads the actions of the commands that answered this request back into the answer the
    /// plant's loop applies. Actions for other machines are ignored.
    pub fn answer(
        &self,
        actions: &[Action],
        master: &MasterData,
        start: Timestamp,
    ) -> Result<Answer, AnswerError> {
        let for_machine = |m: MachineId| -> Result<String, AnswerError> {
            machine_id(master, m).ok_or(AnswerError::UnknownMachine(m))
        };
        Ok(match self {
            Ask::StartMaintenance { view } => {
                let id = for_machine(view.machine)?;
                Answer::StartMaintenance(
                    actions.iter().any(
                        |a| matches!(a, Action::StartMaintenance { machine } if *machine == id),
                    ),
                )
            }
            Ask::HoldUntil { machine, .. } => {
                let id = for_machine(*machine)?;
                Answer::HoldUntil(actions.iter().find_map(|a| match a {
                    Action::Hold { machine, until } if *machine == id => {
                        Some(PlantTime::since(start, *until))
                    }
                    _ => None,
                }))
            }
            Ask::Dispatch {
                machine,
                candidates,
                orders,
                ..
            } => {
                let id = for_machine(*machine)?;
                let pick = actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::DispatchList { machine, jobs } if *machine == id => Some(jobs),
                        _ => None,
                    })
                    .flatten()
                    .find_map(|job| {
                        candidates
                            .iter()
                            .zip(orders)
                            .position(|(op, order)| *order == job.order && op.step == job.step)
                    });
                Answer::Dispatch(pick.ok_or(AnswerError::NoDispatch { machine: id })?)
            }
            Ask::ProcessParams {
                machine,
                product,
                step,
                specs,
            } => {
                let id = for_machine(*machine)?;
                let names = param_names(master, *product, *step);
                Answer::ProcessParams(
                    specs
                        .iter()
                        .enumerate()
                        .map(|(i, spec)| {
                            actions
                                .iter()
                                .find_map(|a| match a {
                                    Action::SetPoint {
                                        machine,
                                        param,
                                        value,
                                    } if *machine == id && Some(param) == names.get(i) => {
                                        Some(*value)
                                    }
                                    _ => None,
                                })
                                .unwrap_or(spec.default)
                        })
                        .collect(),
                )
            }
            Ask::Release { orders, .. } => {
                let releases = || {
                    actions.iter().filter_map(|a| match a {
                        Action::Release { orders, lots } => Some((orders, lots)),
                        _ => None,
                    })
                };
                let mut chosen: Vec<usize> = releases()
                    .flat_map(|(released, _)| released)
                    .filter_map(|o| orders.iter().position(|p| p == o))
                    .collect();
                chosen.sort_unstable();
                chosen.dedup();
                let lots = releases()
                    .flat_map(|(_, lots)| lots)
                    .filter_map(|(o, lots)| {
                        Some((orders.iter().position(|p| p == o)?, lots.clone()))
                    })
                    .collect();
                Answer::Release { chosen, lots }
            }
            Ask::Purchase { .. } => Answer::Purchase(
                actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::Purchase { material, quantity } => Some(PurchaseRequest {
                            material: master.material_index(material)?,
                            quantity: *quantity,
                        }),
                        _ => None,
                    })
                    .collect(),
            ),
            Ask::Plan { .. } => Answer::Planned,
        })
    }
}
