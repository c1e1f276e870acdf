//! `aifactory bench paced`: the paced twin under a plant feed against the same coordinator in
//! process, through the embedded broker; its arguments checked before anything runs.

use crate::{aifactory, text};

#[test]
fn bench_paced_compares_every_kpi_with_the_in_process_band() {
    // Half a day at 12,000×: 3.6 s of pacing per paced run, so a loaded CI machine (tests in
    // parallel on two cores) does not let the plant's release reviews expire.
    let out = aifactory(&[
        "bench", "paced", "--days", "0.5", "--tiers", "0,1", "--seeds", "2", "--speed", "12000",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let tiers = report["tiers"].as_array().expect("tiers");
    assert_eq!(tiers.len(), 2, "{report}");
    for tier in tiers {
        let band = &tier["in_process"]["oee"];
        let (low, mean, high) = (
            band["low"].as_f64().expect("low"),
            band["mean"].as_f64().expect("mean"),
            band["high"].as_f64().expect("high"),
        );
        assert!(low <= mean && mean <= high, "{band}");
        assert_eq!(band["values"].as_array().map(Vec::len), Some(2), "{band}");
        let paced = &tier["paced"][0];
        let oee = paced["kpis"]["oee"].as_f64().expect("paced oee");
        assert!(oee > 0.0 && oee <= 1.0, "{paced}");
        assert!(paced["events"].as_u64().is_some_and(|e| e > 0), "{paced}");
        // `outside` names exactly the KPIs outside their band.
        let outside: Vec<&str> = paced["outside"]
            .as_array()
            .expect("outside")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for (name, b) in tier["in_process"].as_object().expect("bands") {
            let v = paced["kpis"][name].as_f64().expect("kpi");
            let out_of_band = v < b["low"].as_f64().unwrap_or(f64::NAN)
                || v > b["high"].as_f64().unwrap_or(f64::NAN);
            assert_eq!(
                outside.contains(&name.as_str()),
                out_of_band,
                "{name}: {paced}"
            );
        }
    }
}

#[test]
fn bench_paced_refuses_what_it_cannot_measure() {
    for (args, says) in [
        (&["--seeds", "1"][..], "--seeds must be 2 to 30"),
        (
            &["--tiers", "4"][..],
            "--tiers: 4 is not a tier (0, 1, 2 or 3)",
        ),
        (&["--speed", "0"][..], "--speed must be at least 1"),
        (&["--days", "0"][..], "--days must be more than 0"),
    ] {
        let out = aifactory(&[&["bench", "paced"][..], args].concat());
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
