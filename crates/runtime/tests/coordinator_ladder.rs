//! The ladder's acceptance: on every shipped plant each configuration is assessed — from its own
//! ledger — at the tier it was configured for; cutting one link of the shared plan drops the
//! assessment to tier 1 and names the link.

use aifactory_assess::{Coverage, Ledger, assess};
use aifactory_coordinator::{CoordinatorError, Links, Setup, Tier, build};
use aifactory_core::{DecisionLog, LedgerRecord, Plant};
use aifactory_twin::{PlantModel, PlantTime, Simulation, maintenance_history, order_book_history};
use std::path::PathBuf;
use std::sync::Arc;

fn model(file: &str) -> Arc<PlantModel> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plants")
        .join(file);
    let plant = Plant::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    Arc::new(PlantModel::new(plant))
}

struct Run {
    tier: u8,
    missing: Vec<String>,
    records: Vec<LedgerRecord>,
    kpis: aifactory_core::Kpis,
}

fn run(model: &Arc<PlantModel>, tier: Tier, links: Links, seed: u64, days: f64) -> Run {
    let log = DecisionLog::new();
    let order_book = order_book_history(model, 120, seed);
    let records = maintenance_history(model, 6_000.0, seed);
    let mut noise = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let mut trials = |product: usize, step: usize, values: &[f64]| {
        model.trial_batch(product, step, values, 1000, &mut noise)
    };
    let setup = Setup {
        master: model.master(),
        tier,
        links,
        log: Some(&log),
        seed,
        order_book: &order_book,
        maintenance_records: &records,
    };
    let configured = build(&setup, Some(&mut trials)).expect("configuration builds");
    let mut sim = Simulation::new(Arc::clone(model), seed, configured.policy, None);
    match configured.observer {
        Some(mut o) => sim.run_until(PlantTime::from_days(days), o.as_mut()),
        None => sim.run_until(PlantTime::from_days(days), &mut ()),
    }
    let kpis = sim.finish().kpis;
    let records = log.drain();
    let mut ledger = Ledger::new();
    for r in records.clone() {
        ledger.append(r).expect("record encodes");
    }
    let machines = model.master().machine_ids().count() as u32;
    let assessment = assess(
        ledger.entries(),
        &Coverage {
            machines,
            machines_streaming: machines,
            days,
        },
    );
    Run {
        tier: assessment.tier,
        missing: assessment.missing_for_next_tier,
        records,
        kpis,
    }
}

fn every_tier_is_assessed_as_configured(file: &str) {
    let model = model(file);
    for tier in Tier::ALL {
        let r = run(&model, tier, Links::ALL, 1, 60.0);
        assert_eq!(
            r.tier,
            tier.number(),
            "{file}: configured tier {}, assessed {} (missing: {:?})",
            tier.number(),
            r.tier,
            r.missing
        );
    }
}

#[test]
fn reference_plant_tiers_are_assessed_as_configured() {
    every_tier_is_assessed_as_configured("hangzhou-auto-parts.toml");
}

#[test]
fn electronics_plant_tiers_are_assessed_as_configured() {
    every_tier_is_assessed_as_configured("electronics-assembly.toml");
}

#[test]
fn textile_plant_tiers_are_assessed_as_configured() {
    every_tier_is_assessed_as_configured("sme-textile.toml");
}

#[test]
fn cutting_any_link_drops_tier_2_to_tier_1_and_names_it() {
    let model = model("sme-textile.toml");
    for id in Links::IDS {
        let links = Links::ALL.without(id).expect("a known link");
        let r = run(&model, Tier::Two, links, 2, 60.0);
        assert_eq!(r.tier, 1, "cut {id}: assessed {} ({:?})", r.tier, r.missing);
        assert!(
            r.missing.iter().any(|m| m.contains(id)),
            "cut {id}: the missing list does not name it: {:?}",
            r.missing
        );
    }
}

#[test]
fn the_closed_loop_measures_outcomes_and_updates_models() {
    let model = model("sme-textile.toml");
    let r = run(&model, Tier::Three, Links::ALL, 3, 60.0);
    let outcomes = r
        .records
        .iter()
        .filter(|x| matches!(x, LedgerRecord::Outcome { .. }))
        .count();
    let updates: Vec<&str> = r
        .records
        .iter()
        .filter_map(|x| match x {
            LedgerRecord::ModelUpdate { skill, .. } => Some(skill.as_str()),
            _ => None,
        })
        .collect();
    assert!(outcomes > 100, "{outcomes} outcomes");
    for skill in ["maintenance", "forecast", "defect-risk"] {
        assert!(updates.contains(&skill), "no {skill} update in {updates:?}");
    }
    // Every outcome refers to a decision made earlier in the same ledger.
    let mut seen = std::collections::BTreeSet::new();
    for x in &r.records {
        match x {
            LedgerRecord::Decision(d) => {
                seen.insert(d.id.clone());
            }
            LedgerRecord::Outcome { decision, .. } => {
                assert!(seen.contains(decision), "outcome of unknown {decision}");
            }
            LedgerRecord::ModelUpdate { .. } => {}
        }
    }
    // The condition watch raised anomalies, and maintenance decisions cite them; the
    // continuing search put moves under test, each answered by its outcome.
    let cited = |prefix: &str| {
        r.records.iter().any(|x| {
            matches!(x, LedgerRecord::Decision(d)
                if d.skill == "maintenance" && d.inputs_ref.contains(prefix))
        })
    };
    assert!(
        cited("decision:D-ANOM-"),
        "no maintenance decision cites an anomaly"
    );
    let (moves, judged) = search_moves(&r.records);
    // A small plant's steps make few units: its moves are put under test, and may still be
    // when the run ends.
    assert!(
        moves > 0 && judged <= moves,
        "{judged} of {moves} moves judged"
    );
    // Tier 3 replans on services: more plans than tier 2 on the same seed.
    let plans = |records: &[LedgerRecord]| {
        records
            .iter()
            .filter(|x| matches!(x, LedgerRecord::Decision(d) if d.skill == "scheduling"))
            .count()
    };
    let two = run(&model, Tier::Two, Links::ALL, 3, 60.0);
    assert!(plans(&r.records) > plans(&two.records));
}

/// The continuing search's moves in a ledger, and how many got their measured outcome.
fn search_moves(records: &[LedgerRecord]) -> (usize, usize) {
    let moves: std::collections::BTreeSet<&str> = records
        .iter()
        .filter_map(|x| match x {
            LedgerRecord::Decision(d) if d.model == "evop" => Some(d.id.as_str()),
            _ => None,
        })
        .collect();
    let judged = records
        .iter()
        .filter(|x| {
            matches!(x, LedgerRecord::Outcome { decision, .. } if moves.contains(decision.as_str()))
        })
        .count();
    (moves.len(), judged)
}

#[test]
fn the_reference_plants_search_judges_its_moves_and_adopts_only_judged_ones() {
    let model = model("hangzhou-auto-parts.toml");
    let r = run(&model, Tier::Three, Links::ALL, 1, 30.0);
    let (moves, judged) = search_moves(&r.records);
    assert!(
        judged > 0 && judged <= moves,
        "{judged} of {moves} moves judged"
    );
    let adopted = r
        .records
        .iter()
        .filter(|x| matches!(x, LedgerRecord::ModelUpdate { model, .. } if model == "evop"))
        .count();
    let met = r
        .records
        .iter()
        .filter(|x| matches!(x, LedgerRecord::Outcome { outcome, .. } if outcome.measured["adopted"] == true))
        .count();
    assert_eq!(adopted, met, "every adoption is a judged move that met");
    // Cut, the search leaves no trace.
    let cut = run(
        &model,
        Tier::Three,
        Links::ALL.without("process-search").expect("a loop link"),
        1,
        30.0,
    );
    assert_eq!(search_moves(&cut.records), (0, 0));
    assert_eq!(cut.tier, 3);
}

#[test]
fn same_seed_same_ledger() {
    let model = model("sme-textile.toml");
    let a = run(&model, Tier::Three, Links::ALL, 4, 30.0);
    let b = run(&model, Tier::Three, Links::ALL, 4, 30.0);
    assert_eq!(a.records, b.records);
    assert_eq!(a.kpis, b.kpis);
}

#[test]
fn configuration_errors_are_clear() {
    assert_eq!(Tier::from_number(4), Err(CoordinatorError::Tier(4)));
    assert_eq!(
        Links::ALL.without("energy-to-plan"),
        Err(CoordinatorError::Link("energy-to-plan".into()))
    );
    let model = model("sme-textile.toml");
    let book = Default::default();
    let setup = Setup {
        master: model.master(),
        tier: Tier::Two,
        links: Links::ALL,
        log: None,
        seed: 1,
        order_book: &book,
        maintenance_records: &[],
    };
    let err = build(&setup, None).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("the quality link needs trial batches, and none were offered")
    );
    // A trial line that cannot run a step is named.
    let mut broken = |_: usize, _: usize, _: &[f64]| None;
    let err = build(&setup, Some(&mut broken)).err();
    assert!(
        matches!(err, Some(CoordinatorError::Trial { .. })),
        "{err:?}"
    );
}
