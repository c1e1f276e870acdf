//! `aifactory sim --json`: the documented keys, and byte-identical output for the same seed.

use crate::{aifactory, repo_file, text};

fn sim(plant: &str, seed: &str, policy: &str) -> String {
    let plant = repo_file(plant);
    let out = aifactory(&[
        "sim", "--plant", &plant, "--days", "10", "--seed", seed, "--policy", policy, "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn json_has_every_documented_key() {
    let out = sim("plants/hangzhou-auto-parts.toml", "1", "edd");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    for key in [
        "oee",
        "availability",
        "performance",
        "quality",
        "on_time_delivery",
        "throughput",
        "mean_tardiness_h",
        "avg_wip",
        "scrap_rate",
        "energy_kwh_per_good_unit",
        "maintenance_cost",
        "total_cost",
        "events_processed",
        "sim_days",
    ] {
        assert!(
            v.get(key).is_some_and(|x| x.is_number()),
            "missing {key} in {out}"
        );
    }
    assert_eq!(v["sim_days"], 10.0);
    assert!(v["events_processed"].as_u64().unwrap_or(0) > 1000);
    assert_eq!(out.lines().count(), 1, "exactly one line of JSON");
}

#[test]
fn same_seed_is_byte_identical_and_other_seeds_differ() {
    for plant in [
        "plants/hangzhou-auto-parts.toml",
        "plants/sme-textile.toml",
        "plants/electronics-assembly.toml",
    ] {
        let a = sim(plant, "5", "fifo");
        let b = sim(plant, "5", "fifo");
        let c = sim(plant, "6", "fifo");
        assert_eq!(a, b, "{plant}");
        assert_ne!(a, c, "{plant}");
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let plant = repo_file("plants/sme-textile.toml");
    let out = aifactory(&["sim", "--plant", &plant, "--policy", "random"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("expected fifo, edd or spt"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&["sim", "--plant", &plant, "--maintenance", "pm:-3"]);
    assert!(
        text(&out.stderr).contains("pm:HOURS"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&["sim", "--plant", &plant, "--days=-1"]);
    assert!(
        text(&out.stderr).contains("--days"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&["sim", "--plant", "/nonexistent/plant.toml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot read plant file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tier1_runs_the_skills_and_is_reproducible() {
    let plant = repo_file("plants/sme-textile.toml");
    let run = || {
        let out = aifactory(&[
            "sim", "--plant", &plant, "--days", "3", "--seed", "5", "--policy", "tier1", "--json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let first = run();
    let v: serde_json::Value = serde_json::from_str(&first).expect("one JSON object");
    let policy = v["policy"].as_str().unwrap();
    assert!(
        policy.starts_with("aps")
            && policy.contains("+cbm")
            && policy.ends_with("+forecast-replenishment"),
        "{policy}"
    );
    assert!(v["throughput"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(first, run(), "same seed, same run");
}
