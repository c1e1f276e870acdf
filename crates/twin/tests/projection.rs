//! The plant-state projection (in `aifactory-plant`) fed the twin's events gives the twin's
//! own OEE: one definition of the KPIs for the twin and for a real plant.

use aifactory_core::{Plant, PlantEvent};
use aifactory_plant::projection::{Arrival, Projection, ProjectionConfig, StateCode};
use aifactory_twin::{
    BaselinePolicy, DispatchRule, MaintenanceRule, Observer, PlantModel, PlantTime, PurchasingRule,
    Simulation,
};
use std::path::Path;
use std::sync::Arc;

struct Feed {
    projection: Projection,
    seq: u64,
    refused: Vec<String>,
}

impl Observer for Feed {
    fn wants_events(&self) -> bool {
        true
    }
    fn event(&mut self, event: PlantEvent) {
        self.seq += 1;
        let arrival = Arrival {
            id: format!("twin-{}", self.seq),
            source: "twin".to_owned(),
            seq: self.seq,
            event,
        };
        if let Err(e) = self.projection.offer(arrival) {
            self.refused.push(e.to_string());
        }
    }
}

fn plant(name: &str) -> Plant {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plants")
        .join(name);
    Plant::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn compare(file: &str, policy: BaselinePolicy, seed: u64, days: f64) {
    let model = Arc::new(PlantModel::new(plant(file)));
    let mut feed = Feed {
        projection: Projection::new(
            Arc::new(model.master().clone()),
            ProjectionConfig::default(),
        ),
        seq: 0,
        refused: Vec::new(),
    };
    let mut sim = Simulation::new(model.clone(), seed, Box::new(policy), None);
    sim.run_until(PlantTime::from_days(days), &mut feed);
    let twin = sim.finish().kpis;
    let projection = &mut feed.projection;
    projection.advance_to(PlantTime::from_days(days));
    assert!(
        feed.refused.is_empty(),
        "{:?}",
        &feed.refused[..3.min(feed.refused.len())]
    );
    let ours = projection.kpis();
    let label = format!("{file} seed {seed} {policy:?}");
    for (name, a, b) in [
        ("oee", ours.oee, twin.oee),
        ("availability", ours.availability, twin.availability),
        ("performance", ours.performance, twin.performance),
        ("quality", ours.quality, twin.quality),
        ("downtime_h", ours.downtime_h, twin.downtime_h),
    ] {
        eprintln!("{label}: {name} differs by {:e}", (a - b).abs());
        assert!(
            (a - b).abs() <= 1e-9,
            "{label}: {name} {a} (projection) vs {b} (twin)"
        );
    }
    assert_eq!(ours.failures, twin.failures, "{label}");
    assert_eq!(
        ours.preventive_maintenance, twin.preventive_maintenance,
        "{label}"
    );
    assert!(
        twin.oee > 0.1,
        "{label}: the run did produce ({})",
        twin.oee
    );
    assert_eq!(projection.intake().duplicates, 0);
    // Every machine is in a standard state its events imply (the twin reports no raw state).
    for m in 0..model.master().machine_ids().count() {
        let state = projection.state(m).expect("a machine of the plant");
        assert_eq!(
            Some(state.code),
            projection.derived_state(m).map(StateCode::code)
        );
        assert_eq!(state.raw, None);
    }
}

#[test]
fn projection_oee_equals_the_twins_on_every_shipped_plant() {
    let rules = [
        BaselinePolicy::default(),
        BaselinePolicy {
            dispatch: DispatchRule::Spt,
            maintenance: MaintenanceRule::RunToFailure,
            purchasing: PurchasingRule::ReorderPoint,
        },
    ];
    for file in [
        "hangzhou-auto-parts.toml",
        "electronics-assembly.toml",
        "sme-textile.toml",
    ] {
        for (i, policy) in rules.iter().enumerate() {
            compare(file, *policy, 1 + i as u64, 30.0);
        }
    }
}
