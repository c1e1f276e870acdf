//! `aifactory ladder --wire`: each rung with the twin as a separate `aifactory sim --lockstep`
//! process, through the embedded broker, writes the ledger and KPIs of the same rung in
//! process; the options that make no sense alone are refused before anything runs.

use crate::{aifactory, text};

fn runs(out: &std::process::Output) -> Vec<(u64, u64, String, serde_json::Value)> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap_or_default();
    let mut found = Vec::new();
    for rung in v["rungs"].as_array().cloned().unwrap_or_default() {
        for run in rung["runs"].as_array().cloned().unwrap_or_default() {
            found.push((
                rung["tier"].as_u64().unwrap_or(99),
                run["seed"].as_u64().unwrap_or(0),
                run["ledger_sha256"].as_str().unwrap_or_default().to_owned(),
                run["kpis"].clone(),
            ));
        }
    }
    found
}

#[test]
fn a_ladder_over_the_embedded_broker_gives_the_ledgers_and_kpis_of_the_ladder_in_process() {
    let args = [
        "ladder", "--days", "0.2", "--seeds", "2", "--tiers", "0,1", "--json",
    ];
    let in_process = runs(&aifactory(&args));
    let mut wired = args.to_vec();
    wired.push("--wire");
    let over_wire_out = aifactory(&wired);
    let over_wire = runs(&over_wire_out);
    assert_eq!(in_process.len(), 4);
    assert_eq!(over_wire, in_process);
    // It did go over the wire: the runtime's side answered the twin's requests.
    let v: serde_json::Value =
        serde_json::from_str(&text(&over_wire_out.stdout)).unwrap_or_default();
    let requests = v["rungs"][0]["timing"][0]["wire"]["requests"].as_u64();
    assert!(requests.is_some_and(|n| n > 10), "{v}");
}

#[test]
fn lockstep_and_wire_options_are_refused_where_they_make_no_sense() {
    let plant = crate::repo_file("plants/sme-textile.toml");
    let out = aifactory(&["sim", "--plant", &plant, "--lockstep"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--mqtt"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&["ladder", "--mqtt", "mqtt://127.0.0.1:1883"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--wire"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&[
        "sim",
        "--plant",
        &plant,
        "--days",
        "1",
        "--mqtt",
        "mqtt://127.0.0.1:9",
        "--lockstep",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("mqtt://127.0.0.1:9"), "{err}");
}
