//! The scheduling skill runs the twin's plants end to end: it replans, dispatches by its plans,
//! keeps up with EDD on due dates, and is reproducible.

use aifactory_core::Plant;
use aifactory_skills::{ApsConfig, ApsPolicy};
use aifactory_twin::{BaselinePolicy, DispatchRule, PlantModel, PlantTime, SimResult, Simulation};
use std::path::Path;
use std::sync::Arc;

fn run(plant: &str, policy: Box<dyn aifactory_twin::Policy + Send>, days: f64) -> SimResult {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plants")
        .join(plant);
    let plant = Plant::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = Simulation::new(Arc::new(PlantModel::new(plant)), 3, policy, Some(0.0));
    sim.run_until(PlantTime::from_days(days), &mut ());
    sim.finish()
}

fn aps() -> Box<ApsPolicy> {
    Box::new(ApsPolicy::new(
        ApsConfig {
            iterations: 500,
            ..ApsConfig::default()
        },
        BaselinePolicy::default(),
    ))
}

#[test]
fn aps_runs_every_plant_and_keeps_up_with_edd() {
    for plant in [
        "sme-textile.toml",
        "electronics-assembly.toml",
        "hangzhou-auto-parts.toml",
    ] {
        let planned = run(plant, aps(), 10.0);
        let edd = run(
            plant,
            Box::new(BaselinePolicy {
                dispatch: DispatchRule::Edd,
                ..BaselinePolicy::default()
            }),
            10.0,
        );
        assert!(planned.policy.starts_with("aps"), "{}", planned.policy);
        assert!(planned.kpis.good_units > 0, "{plant}");
        // Not worse than EDD by more than a tenth of on-time delivery on any plant.
        assert!(
            planned.kpis.on_time_delivery + 0.1 >= edd.kpis.on_time_delivery,
            "{plant}: aps {} vs edd {}",
            planned.kpis.on_time_delivery,
            edd.kpis.on_time_delivery
        );
    }
}

#[test]
fn aps_is_reproducible() {
    let a = serde_json::to_string(&run("sme-textile.toml", aps(), 7.0)).unwrap_or_default();
    let b = serde_json::to_string(&run("sme-textile.toml", aps(), 7.0)).unwrap_or_default();
    assert_eq!(a, b);
}
