//! The live twin `serve` runs, at its default tier 3, left running for a simulated week: its
//! store alone — the chained ledger of decisions, outcomes and model updates, and the telemetry
//! — earns tier 3, and the same ledger without its outcomes or its model updates earns tier 2,
//! naming what is missing. A bundle signed from the store verifies at tier 3, as the portal
//! checks it.

use aifactory_assess::{Ledger, assess};
use aifactory_core::{LedgerRecord, Plant};
use aifactory_runtime::live::{LiveSpec, TwinCommands, start};
use aifactory_server::live::Live;
use aifactory_store::Store;
use aifactory_twin::CommandInbox;
use std::path::Path;
use std::sync::Arc;

fn plant() -> Plant {
    let text = include_str!("../../../plants/hangzhou-auto-parts.toml");
    Plant::parse(text, Path::new("hangzhou-auto-parts.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_twin_earns_tier3_from_its_store_after_a_week() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("served.db");
    let store = Store::open_path(&path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let commands = TwinCommands::new(CommandInbox::new());
    let (_live, publisher) = Live::new(Some(Arc::new(commands.clone())));
    let spec = LiveSpec {
        plant: plant(),
        seed: 7,
        tier: 3,
        // The week runs as the warm-up (as fast as the twin goes); then it is stopped.
        speed: 1.0,
        warm_up_days: 7.0,
        mqtt: None,
        clock: aifactory_runtime::Clock::system(),
    };
    let twin = start(spec, store.clone(), publisher, commands)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    twin.warmed_up().await;
    twin.stop().await.unwrap_or_else(|e| panic!("{e}"));
    store.close().await;

    // From the store alone, reopened.
    let store = Store::open_path(&path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (ledger, coverage) = aifactory_server::evidence::read(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let a = assess(ledger.entries(), &coverage);
    assert_eq!(a.tier, 3, "{:#?}", a);
    // The bundle a portal is sent: signed from this store, verified at the tier it earns.
    let bundle = aifactory_assess::sign(
        "PLANT-7",
        aifactory_core::Timestamp(0),
        coverage.clone(),
        ledger.entries().to_vec(),
        &aifactory_assess::signing_key(&[7; 32]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let verified = aifactory_assess::verify(&bundle).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(verified.tier, 3);
    let records: Vec<LedgerRecord> = ledger
        .into_entries()
        .into_iter()
        .map(|e| e.record)
        .collect();
    let count = |f: fn(&LedgerRecord) -> bool| records.iter().filter(|r| f(r)).count();
    assert!(count(|r| matches!(r, LedgerRecord::Outcome { .. })) > 0);
    assert!(count(|r| matches!(r, LedgerRecord::ModelUpdate { .. })) > 0);

    for (cut, named) in [
        (
            (|r: &LedgerRecord| matches!(r, LedgerRecord::Outcome { .. }))
                as fn(&LedgerRecord) -> bool,
            "measured outcome",
        ),
        (
            |r: &LedgerRecord| matches!(r, LedgerRecord::ModelUpdate { .. }),
            "model updates",
        ),
    ] {
        let mut without = Ledger::new();
        for r in records.iter().filter(|r| !cut(r)) {
            without.append(r.clone()).unwrap_or_else(|e| panic!("{e}"));
        }
        let a = assess(without.entries(), &coverage);
        assert_eq!(a.tier, 2, "without what `{named}` names: {a:#?}");
        let missing = a.missing_for_next_tier.join("; ");
        assert!(missing.contains(named), "{missing}");
    }
    store.close().await;
}
