//! The tier rules end to end: ledgers written as tier-1, tier-2 and tier-3 plants would write
//! them, assessed, bundled, signed, tampered with.

use aifactory_assess::ledger::Record;
use aifactory_assess::{
    BundleError, ChainError, Coverage, Ledger, assess, report, sign, signing_key, verify,
};
use aifactory_core::{Decision, ExecutedBy, LifecycleStage, Outcome, Timestamp};
use serde_json::json;

/// (skill, stage, producer it cites in a shared plan)
const SKILLS: &[(&str, LifecycleStage, Option<&str>)] = &[
    (
        "process-settings",
        LifecycleStage::Design,
        Some("defect-risk"),
    ),
    ("spc", LifecycleStage::Testing, None),
    ("defect-risk", LifecycleStage::Testing, None),
    ("inspection", LifecycleStage::Testing, Some("defect-risk")),
    ("maintenance", LifecycleStage::Production, None),
    (
        "scheduling",
        LifecycleStage::Production,
        Some("maintenance"),
    ),
    ("anomaly", LifecycleStage::Production, None),
    ("forecast", LifecycleStage::Sales, None),
    (
        "replenishment",
        LifecycleStage::Management,
        Some("forecast"),
    ),
    ("oee-loss", LifecycleStage::Management, None),
    ("ctp", LifecycleStage::Sales, Some("scheduling")),
];

/// A ledger as a plant at `tier` writes it: tier 1 skills decide alone (advice), tier 2 cite
/// each other's decisions, tier 3 also execute automatically, measure and retrain.
fn plant_ledger(tier: u8, cut: Option<&str>) -> Ledger {
    let mut ledger = Ledger::new();
    let mut last: std::collections::HashMap<&str, String> = Default::default();
    let mut n = 0;
    for round in 0..5 {
        for &(skill, stage, cites) in SKILLS {
            n += 1;
            let id = format!("D-{n:05}");
            let mut inputs_ref = format!("window:{round}");
            if tier >= 2
                && Some(skill) != cut
                && let Some(producer) = cites
                && let Some(pid) = last.get(producer)
            {
                inputs_ref.push_str(&format!(";decision:{pid}"));
            }
            let decision = Decision {
                id: id.clone(),
                at: Timestamp(n),
                skill: skill.into(),
                stage,
                inputs_ref,
                model: format!("{skill}-model"),
                model_version: "1".into(),
                output: json!({"round": round}),
                confidence: Some(0.8),
                executed_by: if tier >= 3 {
                    ExecutedBy::Auto
                } else {
                    ExecutedBy::None
                },
                outcome: (tier >= 3).then(|| Outcome {
                    measured_at: Timestamp(n + 1),
                    measured: json!({"ok": true}),
                    success: Some(true),
                }),
            };
            ledger.append(Record::Decision(decision)).unwrap();
            last.insert(skill, id);
        }
    }
    if tier >= 3 {
        for &(skill, ..) in SKILLS {
            ledger
                .append(Record::ModelUpdate {
                    at: Timestamp(10_000),
                    skill: skill.into(),
                    model: format!("{skill}-model"),
                    from_version: "1".into(),
                    to_version: "2".into(),
                    trigger: "outcomes".into(),
                })
                .unwrap();
        }
    }
    ledger
}

fn coverage() -> Coverage {
    Coverage {
        machines: 10,
        machines_streaming: 10,
        days: 60.0,
    }
}

#[test]
fn each_configuration_is_assessed_at_its_own_tier() {
    for tier in 1..=3 {
        let a = assess(plant_ledger(tier, None).entries(), &coverage());
        assert_eq!(a.tier, tier, "{:#?}", a.missing_for_next_tier);
    }
    let a = assess(plant_ledger(3, None).entries(), &coverage());
    assert!(a.stages.iter().all(|s| s.depth == 3), "{a:#?}");
    assert!(a.missing_for_next_tier.is_empty());
    assert_eq!(a.scenarios_live, a.scenarios_total);
    // Nothing in the ledger: tier 0, and it says what tier 1 needs.
    let empty = assess(&[], &coverage());
    assert_eq!(empty.tier, 0);
    assert!(empty.missing_for_next_tier[0].contains("AI decisions"));
}

#[test]
fn cutting_one_link_drops_to_tier_1_and_names_it() {
    for tier in [2, 3] {
        let a = assess(
            plant_ledger(tier, Some("scheduling")).entries(),
            &coverage(),
        );
        assert_eq!(a.tier, 1, "{a:#?}");
        let missing = a.missing_for_next_tier.join("\n");
        assert!(missing.contains("maintenance-to-schedule"), "{missing}");
        assert!(!missing.contains("forecast-to-plan"), "{missing}");
    }
}

#[test]
fn a_closed_loop_needs_outcomes_and_retraining() {
    // Tier 3 decisions without model updates: every stage stays at depth 2.
    let mut ledger = Ledger::new();
    for e in plant_ledger(3, None).into_entries() {
        if !matches!(e.record, Record::ModelUpdate { .. }) {
            ledger.append(e.record).unwrap();
        }
    }
    let a = assess(ledger.entries(), &coverage());
    assert_eq!(a.tier, 2);
    assert!(a.stages.iter().all(|s| s.depth == 2));
    assert!(
        a.stages[0]
            .missing
            .iter()
            .any(|m| m.contains("model updates"))
    );
    // Without streaming machines a ledger earns nothing.
    let dark = Coverage {
        machines_streaming: 0,
        ..coverage()
    };
    assert_eq!(assess(plant_ledger(3, None).entries(), &dark).tier, 0);
}

#[test]
fn a_signed_bundle_verifies_and_any_tampering_is_caught() {
    let key = signing_key(&[7; 32]);
    let ledger = plant_ledger(2, None).into_entries();
    let bundle = sign("PLANT-A", Timestamp(99), coverage(), ledger, &key).unwrap();
    assert_eq!(verify(&bundle).unwrap().tier, 2);
    // Round trip through JSON, as a file.
    let text = serde_json::to_string(&bundle).unwrap();
    let back: aifactory_assess::EvidenceBundle = serde_json::from_str(&text).unwrap();
    assert_eq!(verify(&back).unwrap().tier, 2);

    // One ledger row edited: the error names the row.
    let mut edited = bundle.clone();
    if let Record::Decision(d) = &mut edited.ledger[6].record {
        d.executed_by = ExecutedBy::Auto;
    }
    let e = verify(&edited).unwrap_err();
    assert!(
        matches!(e, BundleError::Chain(ChainError::Edited { row: 7, .. })),
        "{e}"
    );
    assert!(e.to_string().contains("row 7"), "{e}");

    // Anything else changed after signing: the signature fails.
    let mut renamed = bundle.clone();
    renamed.plant = "PLANT-B".into();
    assert_eq!(verify(&renamed).unwrap_err(), BundleError::Signature);
    let mut claimed = bundle.clone();
    claimed.assessment.tier = 3;
    assert_eq!(verify(&claimed).unwrap_err(), BundleError::Signature);

    // Re-signed by whoever edited the claim: the signature holds, the tier is recomputed.
    let forger = signing_key(&[9; 32]);
    let mut forged = sign(
        "PLANT-A",
        Timestamp(99),
        coverage(),
        bundle.ledger.clone(),
        &forger,
    )
    .unwrap();
    forged.assessment.tier = 3;
    forged.signature.clear();
    let resigned = {
        use ed25519_dalek::Signer;
        let unsigned = aifactory_assess::ledger::canonical(&forged).unwrap();
        hex::encode(forger.sign(unsigned.as_bytes()).to_bytes())
    };
    forged.signature = resigned;
    assert_eq!(
        verify(&forged).unwrap_err(),
        BundleError::Assessment {
            claimed: 3,
            recomputed: 2
        }
    );
    let mut wrong_format = bundle;
    wrong_format.format = "other/1".into();
    assert!(matches!(verify(&wrong_format), Err(BundleError::Format(_))));
}

#[test]
fn the_report_shows_the_tier_and_escapes_text() {
    let a = assess(plant_ledger(1, None).entries(), &coverage());
    let page = report::html("<Plant & Co>", &a, "abc");
    assert!(page.contains("Tier <strong>1</strong>"));
    assert!(page.contains("&lt;Plant &amp; Co&gt;") && !page.contains("<Plant"));
    assert!(page.contains("maintenance-to-schedule"));
}
