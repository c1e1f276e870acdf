//! `aifactory plant check`: exit 0 for every shipped plant; for each kind of mistake, a non-zero
//! exit naming file:line:col and the field — never a panic.

use crate::{aifactory, repo_file, text};
use std::io::Write;

#[test]
fn shipped_plants_pass() {
    for plant in [
        "plants/hangzhou-auto-parts.toml",
        "plants/sme-textile.toml",
        "plants/electronics-assembly.toml",
        "bench/jobshop.toml",
    ] {
        let out = aifactory(&["plant", "check", &repo_file(plant)]);
        assert!(out.status.success(), "{plant}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(": ok"), "{}", text(&out.stdout));
    }
}

/// Writes the reference plant with one edit and checks it; returns (path, stderr).
fn check_edited(from: &str, to: &str) -> (String, String) {
    let original = std::fs::read_to_string(repo_file("plants/sme-textile.toml")).expect("read");
    assert!(original.contains(from), "fixture text `{from}` not found");
    let edited = original.replacen(from, to, 1);
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    file.write_all(edited.as_bytes()).expect("write");
    let path = file.path().display().to_string();
    let out = aifactory(&["plant", "check", &path]);
    assert!(!out.status.success(), "an invalid file must fail");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a plain failure exit, not a crash"
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = edited
        .lines()
        .position(|l| l.contains(to.lines().next().unwrap_or(to)))
        .map_or(0, |i| i + 1);
    assert!(
        stderr.contains(&format!("{path}:{line}:")) || to.is_empty(),
        "expected {path}:{line}: in {stderr}"
    );
    (path, stderr)
}

#[test]
fn syntax_error() {
    let (_, err) = check_edited("[plant]", "[plant");
    assert!(err.contains("plant"), "{err}");
}

#[test]
fn unknown_machine_in_routing() {
    let original = std::fs::read_to_string(repo_file("plants/sme-textile.toml")).expect("read");
    let line = original
        .lines()
        .find(|l| l.contains("times = {"))
        .expect("a routing with times");
    let machine = line
        .split("times = {")
        .nth(1)
        .and_then(|rest| {
            rest.trim_start()
                .trim_start_matches('"')
                .split(['"', ' ', '='])
                .next()
        })
        .expect("a machine id")
        .to_owned();
    let edited_line = line.replacen(&machine, "NO-SUCH-MACHINE", 1);
    let (_, err) = check_edited(line, &edited_line);
    assert!(err.contains("unknown machine `NO-SUCH-MACHINE`"), "{err}");
    assert!(err.contains(".times.NO-SUCH-MACHINE"), "{err}");
}

#[test]
fn negative_time_and_missing_field() {
    let (_, err) = check_edited("lot_size = ", "lot_size = -");
    assert!(err.contains("lot_size"), "{err}");
    let (_, err) = check_edited("order_qty = ", "order_qtty = ");
    assert!(
        err.contains("order_qtty") || err.contains("order_qty"),
        "{err}"
    );
}

#[test]
fn json_lists_the_problems() {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    file.write_all(b"[plant]\nid = \"x\"\n").expect("write");
    let path = file.path().display().to_string();
    let out = aifactory(&["plant", "check", &path, "--json"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("json");
    assert_eq!(v["valid"], false);
    let problems = v["problems"].as_array().expect("problems");
    assert!(!problems.is_empty());
    assert!(problems[0]["line"].as_u64().unwrap_or(0) >= 1);
    assert!(!problems[0]["field"].as_str().unwrap_or("").is_empty());
}
