//! Sensors tell the truth a real plant would tell: vibration rises as a machine wears towards
//! failure and drops after repair — the signal predictive maintenance will learn from.

use aifactory_core::{EventKind, Plant, PlantEvent, TelemetryReading};
use aifactory_twin::{
    BaselinePolicy, DispatchRule, MaintenanceRule, Observer, PlantModel, PlantTime, PurchasingRule,
    Simulation,
};
use std::path::Path;
use std::sync::Arc;

#[derive(Default)]
struct Capture {
    events: Vec<PlantEvent>,
    readings: Vec<TelemetryReading>,
}

impl Observer for Capture {
    fn wants_events(&self) -> bool {
        true
    }
    fn event(&mut self, event: PlantEvent) {
        self.events.push(event);
    }
    fn wants_telemetry(&self) -> bool {
        true
    }
    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        self.readings.extend(readings);
    }
}

fn plant(name: &str) -> Plant {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plants")
        .join(name);
    Plant::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn vibration_rises_before_failures_and_falls_after_repair() {
    let model = Arc::new(PlantModel::new(plant("hangzhou-auto-parts.toml")));
    let policy = BaselinePolicy {
        dispatch: DispatchRule::Edd,
        maintenance: MaintenanceRule::RunToFailure,
        purchasing: PurchasingRule::ReorderPoint,
    };
    let mut sim = Simulation::new(model, 11, Box::new(policy), Some(600.0));
    let mut capture = Capture::default();
    sim.run_until(PlantTime::from_days(120.0), &mut capture);

    let window_ms = 48 * 3_600_000;
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for failure in capture
        .events
        .iter()
        .filter(|e| e.kind == EventKind::MachineFailed)
    {
        let machine = failure.machine.as_deref().unwrap_or_default();
        let repaired = capture.events.iter().find(|e| {
            e.kind == EventKind::RepairCompleted
                && e.machine.as_deref() == Some(machine)
                && e.at > failure.at
        });
        let Some(repaired) = repaired else { continue };
        let vibration =
            |r: &&TelemetryReading| r.machine == machine && r.signal == "vibration_mm_s";
        let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let b: Vec<f64> = capture
            .readings
            .iter()
            .filter(vibration)
            .filter(|r| r.at.0 < failure.at.0 && r.at.0 >= failure.at.0 - window_ms)
            .map(|r| r.value)
            .collect();
        let a: Vec<f64> = capture
            .readings
            .iter()
            .filter(vibration)
            .filter(|r| r.at.0 > repaired.at.0 && r.at.0 <= repaired.at.0 + window_ms)
            .map(|r| r.value)
            .collect();
        if b.len() > 20 && a.len() > 20 {
            before.push(mean(b));
            after.push(mean(a));
        }
    }
    assert!(
        before.len() >= 5,
        "too few failures to compare: {}",
        before.len()
    );
    let higher = before.iter().zip(&after).filter(|(b, a)| b > a).count();
    assert!(
        higher * 4 >= before.len() * 3,
        "vibration was higher before failure in only {higher} of {} cases",
        before.len()
    );
}

#[test]
fn every_plant_and_seed_gives_sane_kpis() {
    for name in [
        "hangzhou-auto-parts.toml",
        "sme-textile.toml",
        "electronics-assembly.toml",
    ] {
        let model = Arc::new(PlantModel::new(plant(name)));
        for seed in 0..4 {
            let mut sim = Simulation::new(
                Arc::clone(&model),
                seed,
                Box::new(BaselinePolicy::default()),
                Some(0.0),
            );
            sim.run_until(PlantTime::from_days(21.0), &mut ());
            let k = sim.finish().kpis;
            for (what, v) in [
                ("oee", k.oee),
                ("availability", k.availability),
                ("performance", k.performance),
                ("quality", k.quality),
                ("on_time_delivery", k.on_time_delivery),
                ("scrap_rate", k.scrap_rate),
            ] {
                assert!((0.0..=1.0).contains(&v), "{name} seed {seed}: {what} = {v}");
            }
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert!(
                !json.contains("null") && !json.contains("NaN"),
                "{name}: {json}"
            );
            assert!(
                k.good_units > 0 && k.energy_kwh > 0.0,
                "{name} seed {seed} produced nothing"
            );
        }
    }
}

#[test]
fn the_current_climbs_in_the_p_f_interval_and_nothing_else_changes() {
    let shipped = plant("hangzhou-auto-parts.toml");
    assert!(
        shipped
            .machine_types
            .iter()
            .all(|t| t.sensors.precursor_h > 0.0)
    );
    let mut silent = shipped.clone();
    for t in &mut silent.machine_types {
        t.sensors.precursor_h = 0.0;
    }
    let run = |plant: Plant| {
        let policy = BaselinePolicy {
            dispatch: DispatchRule::Edd,
            maintenance: MaintenanceRule::RunToFailure,
            purchasing: PurchasingRule::ReorderPoint,
        };
        let mut sim = Simulation::new(
            Arc::new(PlantModel::new(plant)),
            11,
            Box::new(policy),
            Some(600.0),
        );
        let mut capture = Capture::default();
        sim.run_until(PlantTime::from_days(60.0), &mut capture);
        (sim.finish().kpis, capture)
    };
    let (kpis, warned) = run(shipped);
    let (silent_kpis, unwarned) = run(silent);
    // The warning draws no random number: the plant runs exactly as without it.
    assert_eq!(kpis, silent_kpis);
    assert_eq!(warned.events, unwarned.events);
    assert_eq!(warned.readings.len(), unwarned.readings.len());
    let failures: Vec<&PlantEvent> = warned
        .events
        .iter()
        .filter(|e| e.kind == EventKind::MachineFailed)
        .collect();
    assert!(failures.len() >= 5, "{} failures", failures.len());
    let (mut late, mut raised) = (Vec::new(), 0);
    for (w, u) in warned.readings.iter().zip(&unwarned.readings) {
        assert_eq!((&w.machine, &w.signal, w.at), (&u.machine, &u.signal, u.at));
        if w.signal != "current_a" {
            assert_eq!(w.value, u.value, "{} {} changed", w.machine, w.signal);
            continue;
        }
        // Only ever up, never down.
        assert!(w.value >= u.value, "{w:?} below {u:?}");
        if u.value <= 0.0 {
            continue;
        }
        raised += usize::from(w.value > u.value);
        let last_hour_before_failure = failures.iter().any(|f| {
            f.machine.as_deref() == Some(w.machine.as_str())
                && f.at.0 > w.at.0
                && f.at.0 - w.at.0 <= 3_600_000
        });
        if last_hour_before_failure {
            late.push(w.value / u.value);
        }
    }
    assert!(
        raised > 0 && late.len() > 10,
        "{raised} raised, {} late",
        late.len()
    );
    let mean = late.iter().sum::<f64>() / late.len() as f64;
    // 30 % at the failure; in its last hour at least 29/30 of the way there.
    assert!(mean > 1.25 && mean <= 1.3 + 1e-9, "mean ratio {mean}");
}
