//! The twin behaves like a plant: each test states one cause → effect a plant engineer expects,
//! on the reference plant, over several seeds where noise could mislead.

use aifactory_core::Plant;
use aifactory_twin::{
    BaselinePolicy, DispatchRule, MaintenanceRule, PlantModel, PlantTime, PurchasingRule,
    SimResult, Simulation,
};
use std::path::Path;
use std::sync::Arc;

fn reference_plant() -> Plant {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plants/hangzhou-auto-parts.toml");
    Plant::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn run(plant: &Plant, days: f64, seed: u64, policy: BaselinePolicy) -> SimResult {
    let model = Arc::new(PlantModel::new(plant.clone()));
    let mut sim = Simulation::new(model, seed, Box::new(policy), Some(0.0));
    sim.run_until(PlantTime::from_days(days), &mut ());
    sim.finish()
}

fn policy(dispatch: DispatchRule, maintenance: MaintenanceRule) -> BaselinePolicy {
    BaselinePolicy {
        dispatch,
        maintenance,
        purchasing: PurchasingRule::ReorderPoint,
    }
}

const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

fn pm() -> MaintenanceRule {
    MaintenanceRule::FixedInterval { run_h: None }
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let plant = reference_plant();
    let p = policy(DispatchRule::Edd, pm());
    let a = serde_json::to_string(&run(&plant, 20.0, 7, p)).unwrap_or_default();
    let b = serde_json::to_string(&run(&plant, 20.0, 7, p)).unwrap_or_default();
    let c = serde_json::to_string(&run(&plant, 20.0, 8, p)).unwrap_or_default();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn faster_degradation_means_more_failures_and_defects() {
    let plant = reference_plant();
    let mut worn = plant.clone();
    for t in &mut worn.machine_types {
        t.health.wear_per_run_hour *= 3.0;
    }
    let p = policy(DispatchRule::Edd, MaintenanceRule::RunToFailure);
    let base: Vec<SimResult> = SEEDS.iter().map(|&s| run(&plant, 60.0, s, p)).collect();
    let fast: Vec<SimResult> = SEEDS.iter().map(|&s| run(&worn, 60.0, s, p)).collect();
    let failures = |rs: &[SimResult]| mean(rs.iter().map(|r| r.kpis.failures as f64));
    let scrap = |rs: &[SimResult]| mean(rs.iter().map(|r| r.kpis.scrap_rate));
    assert!(
        failures(&fast) > 1.3 * failures(&base),
        "failures {} vs {}",
        failures(&fast),
        failures(&base)
    );
    assert!(
        scrap(&fast) > scrap(&base),
        "scrap {} vs {}",
        scrap(&fast),
        scrap(&base)
    );
}

#[test]
fn preventive_maintenance_beats_run_to_failure_on_availability() {
    let plant = reference_plant();
    let availability = |m: MaintenanceRule| {
        mean(SEEDS.iter().map(|&s| {
            run(&plant, 60.0, s, policy(DispatchRule::Edd, m))
                .kpis
                .availability
        }))
    };
    let (with_pm, rtf) = (
        availability(pm()),
        availability(MaintenanceRule::RunToFailure),
    );
    assert!(with_pm > rtf, "pm {with_pm} vs rtf {rtf}");
}

#[test]
fn edd_beats_fifo_on_tardiness() {
    let plant = reference_plant();
    let tardiness = |d: DispatchRule| {
        mean(
            SEEDS
                .iter()
                .map(|&s| run(&plant, 60.0, s, policy(d, pm())).kpis.mean_tardiness_h),
        )
    };
    let (edd, fifo) = (tardiness(DispatchRule::Edd), tardiness(DispatchRule::Fifo));
    assert!(edd < fifo, "edd {edd} h vs fifo {fifo} h");
}

#[test]
fn starving_purchasing_causes_stockouts() {
    let plant = reference_plant();
    let with = |purchasing| BaselinePolicy {
        dispatch: DispatchRule::Edd,
        maintenance: pm(),
        purchasing,
    };
    let normal = run(&plant, 60.0, 1, with(PurchasingRule::ReorderPoint));
    let starved = run(&plant, 60.0, 1, with(PurchasingRule::None));
    assert!(
        starved.kpis.stockouts > 2 * normal.kpis.stockouts.max(1),
        "stockouts {} vs {}",
        starved.kpis.stockouts,
        normal.kpis.stockouts
    );
    assert!(starved.kpis.throughput < 0.8 * normal.kpis.throughput);
    assert!(starved.kpis.on_time_delivery < normal.kpis.on_time_delivery);
}

#[test]
fn energy_cost_follows_the_tariff() {
    let plant = reference_plant();
    let p = policy(DispatchRule::Edd, pm());
    let base = run(&plant, 14.0, 3, p);
    // Every period's cost is its energy at its own price.
    for (e, period) in base.energy_by_period.iter().zip(&plant.tariff.periods) {
        assert!((e.cost - e.kwh * period.price_per_kwh).abs() < 1e-6 * e.cost.max(1.0));
        assert!(
            e.kwh > 0.0,
            "a 24/7 plant uses energy in every period: {}",
            e.period
        );
    }
    // Raising only the peak price raises the bill by exactly the peak energy times the rise.
    let mut dearer = plant.clone();
    for period in &mut dearer.tariff.periods {
        if period.name == "peak" {
            period.price_per_kwh += 0.5;
        }
    }
    let dear = run(&dearer, 14.0, 3, p);
    let peak_kwh: f64 = base
        .energy_by_period
        .iter()
        .filter(|e| e.period == "peak")
        .map(|e| e.kwh)
        .sum();
    assert!(peak_kwh > 0.0);
    assert!((dear.kpis.energy_kwh - base.kpis.energy_kwh).abs() < 1e-9);
    let rise = dear.kpis.energy_cost - base.kpis.energy_cost;
    assert!(
        (rise - 0.5 * peak_kwh).abs() < 1e-6 * rise,
        "rise {rise} vs {}",
        0.5 * peak_kwh
    );
}

/// Sets every process parameter to one end of its range.
#[derive(Debug)]
struct Extreme(BaselinePolicy);

impl aifactory_twin::Policy for Extreme {
    fn name(&self) -> String {
        "extreme-params".into()
    }
    fn dispatch(&mut self, now: PlantTime, m: usize, c: &[aifactory_twin::QueuedOp]) -> usize {
        self.0.dispatch(now, m, c)
    }
    fn start_maintenance(&mut self, v: &aifactory_twin::MachineView) -> bool {
        self.0.start_maintenance(v)
    }
    fn process_params(
        &mut self,
        _: usize,
        _: usize,
        _: usize,
        specs: &[aifactory_twin::ParamSpec],
    ) -> Vec<f64> {
        specs.iter().map(|s| s.max).collect()
    }
    fn purchase(
        &mut self,
        now: PlantTime,
        s: &[aifactory_twin::MaterialView],
    ) -> Vec<aifactory_twin::PurchaseRequest> {
        self.0.purchase(now, s)
    }
}

#[test]
fn harsh_process_parameters_wear_machines_and_make_scrap() {
    let plant = reference_plant();
    let base = policy(DispatchRule::Edd, MaintenanceRule::RunToFailure);
    let model = Arc::new(PlantModel::new(plant.clone()));
    let mut sim = Simulation::new(model, 4, Box::new(Extreme(base)), Some(0.0));
    sim.run_until(PlantTime::from_days(60.0), &mut ());
    let harsh = sim.finish();
    let normal = run(&plant, 60.0, 4, base);
    assert!(
        harsh.kpis.scrap_rate > normal.kpis.scrap_rate,
        "{} vs {}",
        harsh.kpis.scrap_rate,
        normal.kpis.scrap_rate
    );
    assert!(
        harsh.kpis.failures > normal.kpis.failures,
        "{} vs {}",
        harsh.kpis.failures,
        normal.kpis.failures
    );
}

#[test]
fn a_closed_order_book_is_cleared_and_its_makespan_measured() {
    let plant = reference_plant();
    let model = Arc::new(PlantModel::new(plant));
    let mut sim = Simulation::new(
        model,
        3,
        Box::new(policy(DispatchRule::Edd, pm())),
        Some(0.0),
    );
    sim.stop_demand_after_days(5);
    sim.run_until(PlantTime::from_days(5.0), &mut ());
    let booked = sim.open_orders();
    assert!(
        booked > 0,
        "orders are still open at the end of the demand window"
    );
    sim.run_until(PlantTime::from_days(40.0), &mut ());
    assert_eq!(sim.open_orders(), 0, "the order book is cleared");
    let last = sim
        .last_order_completed()
        .map(PlantTime::days)
        .unwrap_or(0.0);
    assert!(last > 5.0 && last < 40.0, "last order done on day {last}");
    let result = sim.finish();
    assert!(result.kpis.on_time_delivery > 0.5);
}

/// Holds every machine through the first `hours` of the run.
#[derive(Debug)]
struct HoldFirst {
    inner: BaselinePolicy,
    hours: f64,
}

impl aifactory_twin::Layer for HoldFirst {
    type Inner = BaselinePolicy;
    fn inner(&self) -> &BaselinePolicy {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut BaselinePolicy {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "hold-first"
    }
    fn hold_until(
        &mut self,
        now: PlantTime,
        _machine: aifactory_twin::MachineId,
        _candidates: &[aifactory_twin::QueuedOp],
    ) -> Option<PlantTime> {
        let until = PlantTime::from_hours(self.hours);
        (now < until).then_some(until)
    }
}

#[test]
fn a_held_machine_stays_idle_until_released_then_works() {
    let plant = reference_plant();
    let model = std::sync::Arc::new(aifactory_twin::PlantModel::new(plant));
    let run = |hours: f64| {
        let policy = HoldFirst {
            inner: BaselinePolicy::default(),
            hours,
        };
        let mut sim = Simulation::new(std::sync::Arc::clone(&model), 3, Box::new(policy), None);
        sim.run_until(PlantTime::from_days(3.0), &mut ());
        sim.finish().kpis
    };
    let free = run(0.0);
    let held = run(24.0);
    // A day held: less produced in three days, and the plant does produce after the hold.
    assert!(
        held.good_units < free.good_units,
        "{} vs {}",
        held.good_units,
        free.good_units
    );
    assert!(held.good_units > 0);
    // Idle machines draw less than running ones: the held run used less energy.
    assert!(held.energy_kwh < free.energy_kwh);
}

#[test]
fn the_tariff_knows_its_price_and_next_change() {
    let model = aifactory_twin::PlantModel::new(reference_plant());
    // The reference plant starts at local midnight: valley 0.32 until 08:00, then peak.
    let (price, next) = model.master().tariff_at(PlantTime::from_hours(2.0));
    let (after, _) = model.master().tariff_at(next);
    assert!(price < after, "{price} then {after}");
    assert!(next > PlantTime::from_hours(2.0) && next <= PlantTime::from_hours(26.0));
    // At the change itself the new price holds.
    assert_eq!(model.master().tariff_at(next).0, after);
}

#[test]
fn records_before_day_zero_are_seeded_and_plausible() {
    let model = PlantModel::new(reference_plant());
    let book = aifactory_twin::order_book_history(&model, 60, 5);
    assert_eq!(book, aifactory_twin::order_book_history(&model, 60, 5));
    assert_ne!(book, aifactory_twin::order_book_history(&model, 60, 6));
    assert!(!book.is_empty());
    for (product, days) in &book {
        assert_eq!(days.len(), 60, "{product}");
        assert!(days.iter().all(|u| u.is_finite() && *u >= 0.0), "{product}");
    }
    let records = aifactory_twin::maintenance_history(&model, 2_000.0, 5);
    assert_eq!(records.len(), model.master().machine_ids().count());
    let maintenance = model.master().machine_maintenance();
    for (renewals, (_, m)) in records.iter().zip(&maintenance) {
        let hours: f64 = renewals.iter().map(|r| r.0).sum();
        assert!(hours >= 2_000.0, "{hours}");
        // Services come at the recommended interval; failures before it.
        for &(age, failed) in renewals {
            assert!(age > 0.0 && age <= m.pm_interval_run_h + 1e-9);
            assert!(failed || (age - m.pm_interval_run_h).abs() < 1e-9);
        }
    }
    let failures: usize = records.iter().flatten().filter(|r| r.1).count();
    assert!(failures > 0);
}

/// Opens every order as lots its `lots` function gives, otherwise the tier-0 rules.
struct Sized<F> {
    inner: BaselinePolicy,
    lots: F,
}

impl<F: FnMut(u32, u32) -> Vec<aifactory_twin::Lot>> aifactory_twin::Layer for Sized<F> {
    type Inner = BaselinePolicy;
    fn inner(&self) -> &BaselinePolicy {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut BaselinePolicy {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "sized"
    }
    fn lots(
        &mut self,
        _now: PlantTime,
        order: &aifactory_twin::OrderView,
        lot_size: u32,
    ) -> Vec<aifactory_twin::Lot> {
        (self.lots)(order.quantity, lot_size)
    }
}

/// Work orders opened for a sales order after its release: make-ups for scrap.
#[derive(Default)]
struct MakeUps {
    released_at: std::collections::HashMap<String, i64>,
    make_ups: u64,
    with_required: u64,
}

impl aifactory_twin::Observer for MakeUps {
    fn wants_events(&self) -> bool {
        true
    }
    fn event(&mut self, event: aifactory_core::PlantEvent) {
        use aifactory_core::EventKind;
        match event.kind {
            EventKind::OrderReleased => {
                if let Some(order) = event.order {
                    self.released_at.insert(order, event.at.0);
                }
            }
            EventKind::WorkOrderReleased if event.detail["parent"].is_null() => {
                self.with_required += u64::from(event.detail.get("required").is_some());
                let order = event.detail["sales_order"].as_str().unwrap_or_default();
                if self
                    .released_at
                    .get(order)
                    .is_some_and(|&at| at < event.at.0)
                {
                    self.make_ups += 1;
                }
            }
            _ => {}
        }
    }
}

#[test]
fn lots_started_with_a_scrap_allowance_need_fewer_make_ups_and_their_surplus_serves_later_orders() {
    let plant = reference_plant();
    let model = Arc::new(PlantModel::new(plant));
    let run = |lots: fn(u32, u32) -> Vec<aifactory_twin::Lot>| {
        let policy = Sized {
            inner: BaselinePolicy::default(),
            lots,
        };
        let mut sim = Simulation::new(Arc::clone(&model), 4, Box::new(policy), Some(0.0));
        let mut seen = MakeUps::default();
        sim.run_until(PlantTime::from_days(20.0), &mut seen);
        (sim.finish().kpis, seen)
    };
    let standard = run(aifactory_twin::standard_lots);
    let allowance = run(|quantity, lot_size| {
        aifactory_twin::standard_lots(quantity, lot_size)
            .into_iter()
            .map(|l| aifactory_twin::Lot {
                required: l.required,
                planned: l.required + l.required.div_ceil(8),
            })
            .collect()
    });
    assert_eq!(standard.1.with_required, 0);
    assert!(
        allowance.1.with_required > 0,
        "lots say what they must deliver"
    );
    assert!(
        allowance.1.make_ups * 3 < standard.1.make_ups,
        "make-ups {} with the allowance vs {} without",
        allowance.1.make_ups,
        standard.1.make_ups
    );
    assert!(allowance.0.work_orders < standard.0.work_orders);
    assert!(allowance.0.setup_h < standard.0.setup_h);
    // The surplus is delivered to later orders, and orders no longer wait for make-ups: at
    // least as many units reach customers in the same days.
    let (a, s) = (allowance.0.good_units, standard.0.good_units);
    assert!(a >= s, "{a} vs {s} units delivered");
}

#[test]
fn lots_that_do_not_open_the_order_are_replaced_by_the_plants_own() {
    let plant = reference_plant();
    let model = Arc::new(PlantModel::new(plant));
    let run = |lots: fn(u32, u32) -> Vec<aifactory_twin::Lot>| {
        let policy = Sized {
            inner: BaselinePolicy::default(),
            lots,
        };
        let mut sim = Simulation::new(Arc::clone(&model), 2, Box::new(policy), Some(0.0));
        sim.run_until(PlantTime::from_days(10.0), &mut ());
        sim.finish().kpis
    };
    let standard = run(aifactory_twin::standard_lots);
    for bad in [
        (|q, _| {
            vec![aifactory_twin::Lot {
                required: q + 1,
                planned: q + 1,
            }]
        }) as fn(u32, u32) -> Vec<aifactory_twin::Lot>,
        |_, _| Vec::new(),
        |q, _| {
            vec![aifactory_twin::Lot {
                required: q,
                planned: q - 1,
            }]
        },
    ] {
        assert_eq!(run(bad), standard);
    }
}
