//! Skills run on the twin: the recorders read the twin's events, and a skill with nothing
//! learnt yet decides exactly as the policy it wraps. (Here, not in `skills`: the skills never
//! depend on the twin.)

use aifactory_core::Plant;
use aifactory_skills::defect_risk::DefectRecorder;
use aifactory_skills::replenish::{ForecastReplenishment, ReplenishConfig};
use aifactory_twin::{BaselinePolicy, PlantModel, PlantTime, Policy, Simulation};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

fn reference() -> Plant {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plants/hangzhou-auto-parts.toml");
    Plant::load(&path).expect("the reference plant loads")
}

#[test]
fn the_recorder_builds_rows_from_the_twins_events() {
    let plant = reference();
    let mut recorder = DefectRecorder::new(&plant);
    let model = std::sync::Arc::new(PlantModel::new(plant));
    let mut sim = Simulation::new(model, 9, Box::new(BaselinePolicy::default()), None);
    sim.run_until(PlantTime::from_days(40.0), &mut recorder);
    let kpis = sim.finish().kpis;
    assert!(recorder.rows.len() > 100);
    for r in &recorder.rows {
        assert!(r.processed > 0 && r.scrapped <= r.processed, "{r:?}");
        assert!(r.run_h >= 0.0 && r.params.iter().all(|x| (0.0..=1.0).contains(x)));
    }
    // Services reset the running hours: some machine's hours fall back between operations.
    assert!(kpis.preventive_maintenance + kpis.failures > 0);
    let mut last: HashMap<&str, f64> = HashMap::new();
    let mut resets = 0;
    for r in &recorder.rows {
        if last
            .insert(&r.machine, r.run_h)
            .is_some_and(|h| r.run_h < h)
        {
            resets += 1;
        }
    }
    assert!(resets > 0);
}

#[test]
fn without_history_it_buys_exactly_as_the_inner_policy() {
    let plant = reference();
    let model = Arc::new(PlantModel::new(plant.clone()));
    let run = |policy: Box<dyn Policy + Send>| {
        let mut sim = Simulation::new(Arc::clone(&model), 3, policy, None);
        sim.run_until(PlantTime::from_days(20.0), &mut ());
        sim.finish().kpis
    };
    let skill = ForecastReplenishment::new(
        BaselinePolicy::default(),
        &plant,
        ReplenishConfig::default(),
        &BTreeMap::new(),
    )
    .unwrap();
    assert!(skill.plans().all(|p| p.is_none()));
    let tier0: Box<dyn Policy + Send> = Box::new(BaselinePolicy::default());
    assert_eq!(run(Box::new(skill)), run(tier0));
}
