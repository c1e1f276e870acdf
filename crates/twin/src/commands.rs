//! Commands from outside the plant's own policy — a host application's Sparkplug DCMD, an OPC UA
//! write, an operator — taken in at the next decision they concern, as a real machine controller
//! would: maintenance starts when the machine is next free, a set-point holds from the next
//! operation on (the twin clamps it into the parameter's range, as for any policy).
//!
//! Commands arrive when they arrive: a run that takes commands is only as repeatable as their
//! timing. Runs without an inbox stay deterministic from (plant, seed, policy).

use crate::model::PlantModel;
use aifactory_plant::MachineId;
use aifactory_plant::{MachineView, ParamSpec, Policy};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start preventive maintenance on the machine as soon as it is free.
    StartMaintenance { machine: String },
    /// Run process parameter `param` at `value` on the machine from its next operation on.
    SetPoint {
        machine: String,
        param: String,
        value: f64,
    },
}

/// What became of the commands sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandCounts {
    pub received: u64,
    /// Maintenance started, or a set-point used in an operation, because of a command.
    pub obeyed: u64,
    /// Naming a machine or parameter the plant does not have, or a value that is not finite.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Inbox {
    waiting: Vec<Command>,
    counts: CommandCounts,
}

/// Where commands wait for the twin; clones share one queue.
#[derive(Debug, Clone, Default)]
pub struct CommandInbox(Arc<Mutex<Inbox>>);

impl CommandInbox {
    pub fn new() -> CommandInbox {
        CommandInbox::default()
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn send(&self, command: Command) {
        let mut inbox = self.inbox();
        inbox.counts.received += 1;
        inbox.waiting.push(command);
    }

    pub fn counts(&self) -> CommandCounts {
        self.inbox().counts
    }

    fn take(&self) -> Vec<Command> {
        std::mem::take(&mut self.inbox().waiting)
    }

    fn count(&self, f: impl FnOnce(&mut CommandCounts)) {
        f(&mut self.inbox().counts);
    }
}

/// A policy that obeys commands and otherwise leaves every decision to `inner`.
pub struct Commanded<P> {
    inner: P,
    inbox: CommandInbox,
    machines: HashMap<String, MachineId>,
    /// Parameter names per product and routing step, in the order of their specs.
    params: Vec<Vec<Vec<String>>>,
    maintenance: HashSet<MachineId>,
    set_points: HashMap<(MachineId, String), f64>,
}

impl<P> std::fmt::Debug for Commanded<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commanded")
            .field("maintenance", &self.maintenance)
            .field("set_points", &self.set_points)
            .finish_non_exhaustive()
    }
}

impl<P: Policy> Commanded<P> {
    pub fn new(inner: P, model: &PlantModel, inbox: CommandInbox) -> Commanded<P> {
        Commanded {
            inner,
            inbox,
            machines: model
                .machines
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.clone(), i))
                .collect(),
            params: model
                .products
                .iter()
                .map(|p| {
                    p.steps
                        .iter()
                        .map(|s| s.params.iter().map(|x| x.name.clone()).collect())
                        .collect()
                })
                .collect(),
            maintenance: HashSet::new(),
            set_points: HashMap::new(),
        }
    }

    /// Takes in what arrived since the last decision.
    fn collect(&mut self) {
        for command in self.inbox.take() {
            let accepted = match command {
                Command::StartMaintenance { machine } => match self.machines.get(&machine) {
                    Some(&m) => {
                        self.maintenance.insert(m);
                        true
                    }
                    None => false,
                },
                Command::SetPoint {
                    machine,
                    param,
                    value,
                } => {
                    let known_param = self.params.iter().flatten().flatten().any(|p| *p == param);
                    match self.machines.get(&machine) {
                        Some(&m) if known_param && value.is_finite() => {
                            self.set_points.insert((m, param), value);
                            true
                        }
                        _ => false,
                    }
                }
            };
            if !accepted {
                self.inbox.count(|c| c.refused += 1);
            }
        }
    }
}

impl<P: Policy> aifactory_plant::Layer for Commanded<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "commands"
    }

    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        self.collect();
        if self.maintenance.remove(&view.machine) {
            self.inbox.count(|c| c.obeyed += 1);
            return true;
        }
        self.inner.start_maintenance(view)
    }

    fn process_params(
        &mut self,
        machine: MachineId,
        product: usize,
        step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        self.collect();
        let mut values = self.inner.process_params(machine, product, step, specs);
        let names = self
            .params
            .get(product)
            .and_then(|p| p.get(step))
            .cloned()
            .unwrap_or_default();
        for (i, name) in names.iter().enumerate() {
            if let (Some(v), Some(&set)) = (
                values.get_mut(i),
                self.set_points.get(&(machine, name.clone())),
            ) {
                *v = set;
                self.inbox.count(|c| c.obeyed += 1);
            }
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_core::Plant;
    use aifactory_plant::BaselinePolicy;
    use aifactory_plant::PlantTime;
    use std::path::Path;

    fn model() -> PlantModel {
        let text = include_str!("../../../plants/hangzhou-auto-parts.toml");
        let plant = Plant::parse(text, Path::new("hangzhou-auto-parts.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        PlantModel::new(plant)
    }

    fn view(machine: MachineId) -> MachineView {
        MachineView {
            machine,
            now: PlantTime(0),
            run_h_since_maintenance: 0.0,
            recommended_interval_h: 1000.0,
            last_vibration_mm_s: 0.0,
            last_temperature_c: 0.0,
            last_current_a: 0.0,
            queue_len: 0,
        }
    }

    #[test]
    fn maintenance_starts_once_where_commanded_and_unknown_machines_are_refused() {
        let model = model();
        let inbox = CommandInbox::new();
        let rtf: BaselinePolicy = BaselinePolicy {
            maintenance: "rtf".parse().unwrap_or_else(|e| panic!("{e}")),
            ..BaselinePolicy::default()
        };
        let mut policy = Commanded::new(rtf, &model, inbox.clone());
        let turn = model.master().machine_ids().position(|m| m == "TURN-01");
        let turn = turn.unwrap_or_else(|| panic!("no TURN-01"));
        assert!(
            !policy.start_maintenance(&view(turn)),
            "run to failure by itself"
        );
        inbox.send(Command::StartMaintenance {
            machine: "TURN-01".into(),
        });
        inbox.send(Command::StartMaintenance {
            machine: "LATHE-99".into(),
        });
        assert!(
            !policy.start_maintenance(&view(turn + 1)),
            "not another machine"
        );
        assert!(policy.start_maintenance(&view(turn)));
        assert!(!policy.start_maintenance(&view(turn)), "once per command");
        assert_eq!(
            inbox.counts(),
            CommandCounts {
                received: 2,
                obeyed: 1,
                refused: 1
            }
        );
    }

    #[test]
    fn a_set_point_holds_for_its_machine_and_parameter_only() {
        let model = model();
        let inbox = CommandInbox::new();
        let mut policy = Commanded::new(BaselinePolicy::default(), &model, inbox.clone());
        // The first product's first step has a `cutting_speed` parameter.
        let specs = [ParamSpec {
            min: 120.0,
            max: 260.0,
            default: 180.0,
        }];
        assert_eq!(policy.process_params(0, 0, 0, &specs), vec![180.0]);
        let machine = model
            .master()
            .machine_ids()
            .next()
            .unwrap_or_default()
            .to_owned();
        inbox.send(Command::SetPoint {
            machine: machine.clone(),
            param: "cutting_speed".into(),
            value: 205.0,
        });
        inbox.send(Command::SetPoint {
            machine: machine.clone(),
            param: "no_such_param".into(),
            value: 1.0,
        });
        inbox.send(Command::SetPoint {
            machine,
            param: "cutting_speed".into(),
            value: f64::NAN,
        });
        assert_eq!(policy.process_params(0, 0, 0, &specs), vec![205.0]);
        assert_eq!(
            policy.process_params(0, 0, 0, &specs),
            vec![205.0],
            "it holds"
        );
        assert_eq!(
            policy.process_params(1, 0, 0, &specs),
            vec![180.0],
            "other machines keep theirs"
        );
        assert_eq!(
            inbox.counts(),
            CommandCounts {
                received: 3,
                obeyed: 2,
                refused: 2
            }
        );
    }
}
