//! The driver asks a policy from a plant's projected state: dispatch lists with the policy's
//! pick first, maintenance when the rules say so (never twice for one need), the floor for a
//! planning policy, and sensor readings in the machine's view.

use aifactory_core::{EventKind, Plant, PlantEvent, Timestamp};
use aifactory_plant::drive::Driver;
use aifactory_plant::projection::{Arrival, DecisionPoint, Projection, ProjectionConfig};
use aifactory_plant::{
    Action, BaselinePolicy, Floor, MachineId, MachineView, MasterData, MaterialView, PlantTime,
    Policy, PurchaseRequest, QueuedOp,
};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn master() -> Arc<MasterData> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plants/hangzhou-auto-parts.toml");
    Arc::new(MasterData::new(
        Plant::load(&path).unwrap_or_else(|e| panic!("{e}")),
    ))
}

/// A plant fed by hand: events in, decision points out.
struct Floorplan {
    projection: Projection,
    seq: u64,
    start: Timestamp,
}

impl Floorplan {
    fn new() -> Floorplan {
        let master = master();
        let start = master.plant().start().0;
        Floorplan {
            projection: Projection::new(master, ProjectionConfig::default()),
            seq: 0,
            start,
        }
    }

    fn event(
        &mut self,
        at_ms: u64,
        kind: EventKind,
        machine: Option<&str>,
        order: Option<&str>,
        detail: serde_json::Value,
    ) -> Vec<DecisionPoint> {
        self.seq += 1;
        let arrival = Arrival {
            id: format!("e{}", self.seq),
            source: "mes".into(),
            seq: self.seq,
            event: PlantEvent {
                at: Timestamp(self.start.0 + at_ms as i64),
                kind,
                machine: machine.map(str::to_owned),
                order: order.map(str::to_owned),
                detail,
            },
        };
        let (_, mut points) = self
            .projection
            .offer(arrival)
            .unwrap_or_else(|e| panic!("{e}"));
        points.extend(self.projection.advance_to(PlantTime(at_ms)));
        points
    }

    /// An order with its one work order, released at `at_ms`.
    fn release(&mut self, at_ms: u64, n: u32, due_ms: u64) -> Vec<DecisionPoint> {
        let product = self.projection.master().plant().products[0].id.clone();
        let so = format!("SO-{n:06}");
        let due = self.start.0 + due_ms as i64;
        let mut points = self.event(
            at_ms,
            EventKind::OrderReceived,
            None,
            Some(&so),
            json!({"product": product, "quantity": 5, "due": due}),
        );
        points.extend(self.event(
            at_ms,
            EventKind::WorkOrderReleased,
            None,
            Some(&format!("WO-{n:06}")),
            json!({"product": product, "quantity": 5, "sales_order": so}),
        ));
        points
    }
}

fn first_step_machine(master: &MasterData) -> (MachineId, String) {
    let m = master.step(0, 0).map(|alts| alts[0].0).unwrap_or(0);
    (m, master.machine_id(m).unwrap_or_default().to_owned())
}

fn rtf() -> BaselinePolicy {
    BaselinePolicy {
        maintenance: "rtf".parse().unwrap_or_else(|e| panic!("{e}")),
        ..BaselinePolicy::default()
    }
}

#[test]
fn a_free_machine_gets_a_dispatch_list_with_the_policys_pick_first_and_only_once() {
    let mut plant = Floorplan::new();
    let master = Arc::new(plant.projection.master().clone());
    let (m, machine) = first_step_machine(&master);
    let mut driver = Driver::new(Box::new(rtf()), master.machine_ids().count());
    // WO-1 is released first but due later; earliest due date first puts WO-2 first.
    let mut points = plant.release(1_000, 1, 3 * 86_400_000);
    points.extend(plant.release(2_000, 2, 86_400_000));
    let decided = driver.decide(&plant.projection, &points);
    let lists: Vec<&Action> = decided
        .iter()
        .map(|d| &d.action)
        .filter(|a| a.machine() == Some(machine.as_str()))
        .collect();
    let Some(Action::DispatchList { jobs, .. }) = lists.first() else {
        panic!("no dispatch list for {machine}: {decided:?}");
    };
    let orders: Vec<&str> = jobs.iter().map(|j| j.order.as_str()).collect();
    assert_eq!(orders, ["WO-000002", "WO-000001"]);
    assert!(jobs.iter().all(|j| j.step == 0));
    let d = decided
        .iter()
        .find(|d| d.action.machine() == Some(machine.as_str()))
        .unwrap_or_else(|| panic!("{decided:?}"));
    assert_eq!(
        d.waiting.len(),
        2,
        "what was waiting, in the order it became ready"
    );
    assert_eq!(d.waiting[0].order, "WO-000001");
    // Asked again with nothing changed: the same list is not sent twice.
    let again = driver.decide(
        &plant.projection,
        &[DecisionPoint::MachineFree {
            machine: m,
            at: PlantTime(2_000),
        }],
    );
    assert!(again.is_empty(), "{again:?}");
    // Once the machine takes work, it is no longer offered any.
    let product = master.plant().products[0].id.clone();
    let points = plant.event(
        3_000,
        EventKind::OperationStarted,
        Some(&machine),
        Some("WO-000002"),
        json!({"product": product, "step": 0, "quantity": 5}),
    );
    let busy = driver.decide(&plant.projection, &points);
    assert!(
        busy.iter()
            .all(|d| d.action.machine() != Some(machine.as_str())),
        "{busy:?}"
    );
}

#[test]
fn maintenance_is_ordered_when_due_and_not_again_until_the_machine_moves_on() {
    let mut plant = Floorplan::new();
    let master = Arc::new(plant.projection.master().clone());
    let (m, machine) = first_step_machine(&master);
    let interval_h = master
        .machine_maintenance()
        .get(m)
        .map(|(_, mm)| mm.pm_interval_run_h)
        .unwrap_or(0.0);
    // Fixed-interval service by the tier-0 rules.
    let mut driver = Driver::new(
        Box::new(BaselinePolicy::default()),
        master.machine_ids().count(),
    );
    let product = master.plant().products[0].id.clone();
    let run_ms = ((interval_h + 1.0) * 3_600_000.0) as u64;
    plant.release(1_000, 1, 86_400_000);
    plant.event(
        2_000,
        EventKind::OperationStarted,
        Some(&machine),
        Some("WO-000001"),
        json!({"product": product, "step": 0, "quantity": 5}),
    );
    let points = plant.event(
        2_000 + run_ms,
        EventKind::OperationCompleted,
        Some(&machine),
        Some("WO-000001"),
        json!({"step": 0, "good": 5}),
    );
    let decided = driver.decide(&plant.projection, &points);
    let service = decided
        .iter()
        .find(|d| {
            d.action
                == Action::StartMaintenance {
                    machine: machine.clone(),
                }
        })
        .unwrap_or_else(|| panic!("no maintenance after {interval_h} h: {decided:?}"));
    assert!(service.run_h_since_renewal > interval_h);
    let again = driver.decide(
        &plant.projection,
        &[DecisionPoint::MachineFree {
            machine: m,
            at: PlantTime(3_000 + run_ms),
        }],
    );
    assert!(again.is_empty(), "ordered once: {again:?}");
    // The service happens: the running hours start again and nothing more is due.
    plant.event(
        4_000 + run_ms,
        EventKind::MaintenanceStarted,
        Some(&machine),
        None,
        json!({}),
    );
    let points = plant.event(
        5_000 + run_ms,
        EventKind::MaintenanceCompleted,
        Some(&machine),
        None,
        json!({}),
    );
    let after = driver.decide(&plant.projection, &points);
    assert!(
        after
            .iter()
            .all(|d| !matches!(d.action, Action::StartMaintenance { .. })),
        "{after:?}"
    );
}

/// A policy that records what it was shown.
#[derive(Default, Clone)]
struct Recorder {
    floors: Arc<Mutex<Vec<Floor>>>,
    views: Arc<Mutex<Vec<MachineView>>>,
}

impl Policy for Recorder {
    fn name(&self) -> String {
        "recorder".into()
    }
    fn dispatch(&mut self, _now: PlantTime, _m: MachineId, _c: &[QueuedOp]) -> usize {
        0
    }
    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        self.views
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(*view);
        false
    }
    fn purchase(&mut self, _now: PlantTime, _stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        Vec::new()
    }
    fn wants_floor(&self) -> bool {
        true
    }
    fn plan(&mut self, floor: &Floor) {
        self.floors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(floor.clone());
    }
}

#[test]
fn a_planning_policy_sees_the_floor_and_views_carry_the_latest_readings() {
    let mut plant = Floorplan::new();
    let master = Arc::new(plant.projection.master().clone());
    let (m, _) = first_step_machine(&master);
    let recorder = Recorder::default();
    let mut driver = Driver::new(Box::new(recorder.clone()), master.machine_ids().count());
    driver.reading(m, "vibration_mm_s", 4.5);
    driver.reading(m, "Temperature", 61.0);
    driver.reading(m, "current", f64::NAN);
    driver.reading(m, "spindle_speed", 3000.0);
    let points = plant.release(1_000, 7, 86_400_000);
    driver.decide(&plant.projection, &points);
    let floors = recorder
        .floors
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let floor = floors.last().unwrap_or_else(|| panic!("no floor planned"));
    assert_eq!(floor.jobs.len(), 1);
    assert_eq!(floor.jobs[0].job, 7, "the number in WO-000007");
    assert_eq!(floor.jobs[0].operations.len(), master.steps(0));
    assert_eq!(floor.jobs[0].due, PlantTime(86_400_000));
    assert!(!floor.jobs[0].waiting);
    assert_eq!(floor.machines.len(), master.machine_ids().count());
    let views = recorder
        .views
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let view = views
        .iter()
        .find(|v| v.machine == m)
        .unwrap_or_else(|| panic!("machine {m} was not asked"));
    assert_eq!(
        (
            view.last_vibration_mm_s,
            view.last_temperature_c,
            view.last_current_a
        ),
        (4.5, 61.0, 0.0),
        "a reading that is not a number is not taken"
    );
    assert_eq!(view.queue_len, 1);
}

/// Each dispatch list decided, as (machine, the job it lists first).
fn first_picks(decided: &[aifactory_plant::drive::Decided]) -> Vec<(&str, &str)> {
    decided
        .iter()
        .filter_map(|d| match &d.action {
            Action::DispatchList { machine, jobs } => {
                jobs.first().map(|j| (machine.as_str(), j.order.as_str()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_job_is_offered_first_to_one_free_machine_only() {
    let mut plant = Floorplan::new();
    let master = Arc::new(plant.projection.master().clone());
    let alternatives = master.step(0, 0).map_or(0, <[_]>::len);
    assert!(alternatives >= 3, "the first step needs several machines");
    let mut driver = Driver::new(Box::new(rtf()), master.machine_ids().count());
    // One job, every alternative free: one list, not one per machine.
    let points = plant.release(1_000, 1, 86_400_000);
    let decided = driver.decide(&plant.projection, &points);
    let firsts = first_picks(&decided);
    assert_eq!(firsts.len(), 1, "{firsts:?}");
    // A second job goes first to another free machine; the first machine's job stays its own.
    let points = plant.release(2_000, 2, 86_400_000);
    let decided = driver.decide(&plant.projection, &points);
    let firsts_now = first_picks(&decided);
    assert!(
        firsts_now
            .iter()
            .all(|(m, o)| *o == "WO-000002" && *m != firsts[0].0),
        "{firsts_now:?} after {firsts:?}"
    );
    assert!(
        !firsts_now.is_empty(),
        "the second job goes to a free machine"
    );
}

/// The tier-0 rules, with every process parameter at its maximum and only orders due within a
/// day released.
struct Tuned(BaselinePolicy);

impl Policy for Tuned {
    fn name(&self) -> String {
        "tuned".into()
    }
    fn dispatch(&mut self, now: PlantTime, machine: MachineId, candidates: &[QueuedOp]) -> usize {
        self.0.dispatch(now, machine, candidates)
    }
    fn start_maintenance(&mut self, _view: &MachineView) -> bool {
        false
    }
    fn process_params(
        &mut self,
        _machine: MachineId,
        _product: usize,
        _step: usize,
        specs: &[aifactory_plant::ParamSpec],
    ) -> Vec<f64> {
        specs.iter().map(|s| s.max).collect()
    }
    fn release(&mut self, now: PlantTime, pending: &[aifactory_plant::OrderView]) -> Vec<usize> {
        (0..pending.len())
            .filter(|&i| pending[i].due.0 <= now.0 + 86_400_000)
            .collect()
    }
    fn purchase(&mut self, now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        self.0.purchase(now, stock)
    }
}

#[test]
fn set_points_go_out_before_the_dispatch_list_and_releases_only_where_the_plant_plans_them() {
    let mut plant = Floorplan::new();
    let master = Arc::new(plant.projection.master().clone());
    let (_, machine) = first_step_machine(&master);
    let machines = master.machine_ids().count();
    let mut driver =
        Driver::new(Box::new(Tuned(rtf())), machines).planning_releases(PlantTime(3_600_000));
    let product = master.plant().products[0].id.clone();
    let start = plant.start.0;
    let received = |plant: &mut Floorplan, at: u64, so: &str, due_ms: u64| {
        plant.event(
            at,
            EventKind::OrderReceived,
            None,
            Some(so),
            json!({"product": product, "quantity": 5, "due": start + due_ms as i64}),
        )
    };
    // Two orders come in: the one due tomorrow is released, the one due next week waits.
    let mut points = received(&mut plant, 1_000, "SO-000001", 20 * 3_600_000);
    points.extend(received(&mut plant, 1_000, "SO-000002", 7 * 86_400_000));
    let decided = driver.decide(&plant.projection, &points);
    let releases: Vec<&Action> = decided
        .iter()
        .map(|d| &d.action)
        .filter(|a| matches!(a, Action::Release { .. }))
        .collect();
    assert_eq!(
        releases,
        [&Action::Release {
            orders: vec!["SO-000001".into()],
            lots: Default::default(),
        }]
    );
    // Not sent twice while the plant has not released it; the other one is reviewed hourly.
    let points = plant.projection.advance_to(PlantTime(2_000));
    let again = driver.decide(&plant.projection, &points);
    assert!(again.is_empty(), "{again:?}");
    let points = plant
        .projection
        .advance_to(PlantTime(7 * 86_400_000 - 10 * 3_600_000));
    let later = driver.decide(&plant.projection, &points);
    let released: Vec<&Action> = later
        .iter()
        .map(|d| &d.action)
        .filter(|a| matches!(a, Action::Release { .. }))
        .collect();
    assert_eq!(
        released,
        [&Action::Release {
            orders: vec!["SO-000002".into()],
            lots: Default::default(),
        }],
        "reviewed again: the second is now due within a day; the first was sent already"
    );
    // The first release expired unmet at the plant: the next review sends it again.
    driver.unmet(
        &plant.projection,
        &Action::Release {
            orders: vec!["SO-000001".into()],
            lots: Default::default(),
        },
    );
    let points = plant
        .projection
        .advance_to(PlantTime(7 * 86_400_000 - 9 * 3_600_000));
    let resent = driver.decide(&plant.projection, &points);
    assert!(
        resent.iter().any(|d| d.action
            == Action::Release {
                orders: vec!["SO-000001".into()],
                lots: Default::default(),
            }),
        "{resent:?}"
    );
    // Its work order is released: the machine is told the tuned set-points, then the list.
    let points = plant.event(
        7 * 86_400_000 - 8 * 3_600_000,
        EventKind::WorkOrderReleased,
        None,
        Some("WO-000001"),
        json!({"product": product, "quantity": 5, "sales_order": "SO-000001"}),
    );
    let decided = driver.decide(&plant.projection, &points);
    let for_machine: Vec<&Action> = decided
        .iter()
        .map(|d| &d.action)
        .filter(|a| a.machine() == Some(machine.as_str()))
        .collect();
    let params = &master.plant().products[0].routing[0].params;
    assert_eq!(for_machine.len(), params.len() + 1, "{for_machine:?}");
    for (action, param) in for_machine.iter().zip(params) {
        assert_eq!(
            **action,
            Action::SetPoint {
                machine: machine.clone(),
                param: param.name.clone(),
                value: param.max,
            }
        );
    }
    assert!(matches!(
        for_machine.last(),
        Some(Action::DispatchList { .. })
    ));
    // A plant that releases its own orders is never sent a release.
    let mut own = Driver::new(Box::new(Tuned(rtf())), machines);
    let mut fresh = Floorplan::new();
    let points = received(&mut fresh, 1_000, "SO-000001", 3_600_000);
    assert!(
        own.decide(&fresh.projection, &points)
            .iter()
            .all(|d| !matches!(d.action, Action::Release { .. }))
    );
    // After a restart, a release still open is taken up from the ledger, not sent again.
    let mut restarted =
        Driver::new(Box::new(Tuned(rtf())), machines).planning_releases(PlantTime(3_600_000));
    let mut replayed = Floorplan::new();
    let points = received(&mut replayed, 1_000, "SO-000001", 3_600_000);
    restarted.resume(
        &replayed.projection,
        &Action::Release {
            orders: vec!["SO-000001".into()],
            lots: Default::default(),
        },
    );
    assert!(
        restarted
            .decide(&replayed.projection, &points)
            .iter()
            .all(|d| !matches!(d.action, Action::Release { .. }))
    );
}
