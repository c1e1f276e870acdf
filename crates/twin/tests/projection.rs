//! The plant-state projection (in `aifactory-plant`) fed the twin's events gives the twin's
//! own OEE: one definition of the KPIs for the twin and for a real plant.

use aifactory_core::{Plant, PlantEvent};
use aifactory_plant::projection::{Arrival, Projection, ProjectionConfig, StateCode, state_word};
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

/// Hour by hour, the projection shows the floor the twin shows from its insides: each machine's
/// state, operation and queue, each customer order's release, deliveries and completion, and
/// the KPIs so far. The live view of `serve` is built from the projection alone.
#[test]
fn the_projection_shows_the_floor_the_twin_shows_hour_by_hour() {
    for file in [
        "hangzhou-auto-parts.toml",
        "electronics-assembly.toml",
        "sme-textile.toml",
    ] {
        let model = Arc::new(PlantModel::new(plant(file)));
        let mut feed = Feed {
            projection: Projection::new(
                Arc::new(model.master().clone()),
                ProjectionConfig::default(),
            ),
            seq: 0,
            refused: Vec::new(),
        };
        let mut sim = Simulation::new(model.clone(), 3, Box::new(BaselinePolicy::default()), None);
        let (start, _) = model.plant().start();
        let mut busy_seen = 0;
        let mut queued_seen = 0;
        for hour in 1..=24 * 6 {
            let t = PlantTime(hour * 3_600_000);
            sim.run_until(t, &mut feed);
            let live = sim.live();
            let p = &mut feed.projection;
            p.advance_to(t);
            let at = format!("{file} at hour {hour}");
            for (i, m) in live.machines.iter().enumerate() {
                let code = p.state(i).map(|s| s.code).unwrap_or_default();
                assert_eq!(state_word(code), m.state, "{at}: {} state", m.id);
                let running = p.running(i);
                if m.state == "busy" {
                    busy_seen += 1;
                    assert_eq!(
                        running.map(|r| (r.work_order.clone(), r.step)),
                        m.work_order.clone().zip(m.step),
                        "{at}: {} operation",
                        m.id
                    );
                }
                queued_seen += m.queue;
                assert_eq!(p.queue(i), m.queue, "{at}: {} queue", m.id);
            }
            // Orders completed more than the dedup horizon ago are forgotten; open ones never.
            let orders = p.sales_orders();
            assert!(orders.len() <= live.orders.len(), "{at}: orders");
            for o in &live.orders {
                let Some(ours) = orders.get(&o.id) else {
                    assert!(o.completed.is_some(), "{at}: open order {} missing", o.id);
                    continue;
                };
                assert_eq!(ours.released, o.released, "{at}: {} released", o.id);
                assert_eq!(
                    ours.delivered.min(ours.quantity),
                    o.delivered,
                    "{at}: {} delivered",
                    o.id
                );
                assert_eq!(
                    ours.completed.map(|c| start.0 + c.0 as i64),
                    o.completed.map(|c| c.0),
                    "{at}: {} completed",
                    o.id
                );
            }
            let (ours, twin) = (p.kpis(), &live.result.kpis);
            assert!(
                (ours.oee - twin.oee).abs() <= 1e-9,
                "{at}: oee {} vs {}",
                ours.oee,
                twin.oee
            );
        }
        assert!(
            feed.refused.is_empty(),
            "{file}: {:?}",
            &feed.refused[..3.min(feed.refused.len())]
        );
        assert!(
            busy_seen > 0 && queued_seen > 0,
            "{file}: the floor was busy"
        );
    }
}
