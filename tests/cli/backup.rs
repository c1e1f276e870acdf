//! `aifactory backup` and `restore`: a checked copy of a recorded store, taken while `serve`
//! writes to it too, restored into a new file that assesses to the same tier with its chain
//! verified; and the refusals (an existing target, a PostgreSQL URL, a file that is no store).

use crate::{aifactory, text};
use std::path::Path;
use std::time::{Duration, Instant};

fn assess(db: &Path) -> serde_json::Value {
    let out = aifactory(&["assess", "--db", &db.display().to_string(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("assess --json")
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let out = aifactory(args);
    assert!(out.status.success(), "{:?}: {}", args, text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json")
}

#[test]
fn a_recorded_store_is_backed_up_and_restored_to_the_same_tier() {
    let dir = tempfile::tempdir().unwrap();
    let plant = crate::repo_file("plants/sme-textile.toml");
    let db = dir.path().join("plant.sqlite");
    let out = aifactory(&[
        "sim",
        "--plant",
        &plant,
        "--policy",
        "tier2",
        "--days",
        "20",
        "--seed",
        "4",
        "--db",
        &db.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let copy = dir.path().join("backups/plant-copy.sqlite");
    let backup = json_of(&[
        "backup",
        "--db",
        &db.display().to_string(),
        "--out",
        &copy.display().to_string(),
        "--json",
    ]);
    let original = assess(&db);
    assert_eq!(backup["integrity"], "ok", "{backup}");
    assert_eq!(backup["ledger_head"], original["ledger_head"], "{backup}");
    assert_eq!(
        backup["ledger_entries"], original["ledger_entries"],
        "{backup}"
    );
    assert!(backup["decisions"].as_u64().unwrap() > 0, "{backup}");

    // A second backup to the same file is refused and leaves the first alone.
    let again = aifactory(&[
        "backup",
        "--db",
        &db.display().to_string(),
        "--out",
        &copy.display().to_string(),
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    let restored = dir.path().join("elsewhere/serve.sqlite");
    let told = json_of(&[
        "restore",
        &copy.display().to_string(),
        "--db",
        &restored.display().to_string(),
        "--json",
    ]);
    assert_eq!(told["ledger_head"], original["ledger_head"], "{told}");
    let after = assess(&restored);
    assert_eq!(after["assessment"]["tier"], original["assessment"]["tier"]);
    assert_eq!(after["ledger_head"], original["ledger_head"]);
    assert_eq!(after["ledger_entries"], original["ledger_entries"]);
    // Nothing of the staging copy is left beside the restored store.
    let left: Vec<String> = std::fs::read_dir(restored.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restoring"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Restoring over a store is refused, naming it; the store is untouched.
    let over = aifactory(&[
        "restore",
        &copy.display().to_string(),
        "--db",
        &db.display().to_string(),
    ]);
    assert!(!over.status.success());
    let why = text(&over.stderr);
    assert!(
        why.contains("plant.sqlite exists") && why.contains("never overwrites"),
        "{why}"
    );
    assert_eq!(assess(&db)["ledger_head"], original["ledger_head"]);
}

#[test]
fn backup_and_restore_refuse_what_they_cannot_copy() {
    let dir = tempfile::tempdir().unwrap();
    let out = aifactory(&[
        "backup",
        "--db",
        "postgres://plant:s3cret@db.local/aifactory",
    ]);
    assert!(!out.status.success());
    let why = text(&out.stderr);
    assert!(why.contains("pg_dump") && !why.contains("s3cret"), "{why}");

    let missing = dir.path().join("none.sqlite");
    let out = aifactory(&["backup", "--db", &missing.display().to_string()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no store at"),
        "{}",
        text(&out.stderr)
    );

    let not_a_store = dir.path().join("notes.sqlite");
    std::fs::write(&not_a_store, "these are notes, not a database").unwrap();
    let target = dir.path().join("restored.sqlite");
    let out = aifactory(&[
        "restore",
        &not_a_store.display().to_string(),
        "--db",
        &target.display().to_string(),
    ]);
    assert!(!out.status.success());
    let why = text(&out.stderr);
    assert!(
        why.contains("notes.sqlite") && why.contains("not a SQLite database"),
        "{why}"
    );
    assert!(!target.exists());
}

#[test]
fn a_backup_taken_while_serve_runs_verifies_and_assesses() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.sqlite");
    let (served, base, password, _) =
        crate::serve::spawn(&db, &["--speed", "3000", "--warm-up-days", "2"], false);
    let password = password.expect("a new store's admin password");
    let agent = crate::serve::agent();
    let token = crate::serve::login(&agent, &base, &password);
    // Wait until the live twin has decided something after its warm-up.
    let start = Instant::now();
    loop {
        let (status, body) =
            crate::serve::get(&agent, &format!("{base}/api/v1/decisions?limit=5"), &token);
        if status == 200 && body["decisions"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no decisions: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let copy = dir.path().join("live-copy.sqlite");
    let backup = json_of(&[
        "backup",
        "--db",
        &db.display().to_string(),
        "--out",
        &copy.display().to_string(),
        "--json",
    ]);
    assert!(backup["ledger_entries"].as_u64().unwrap() > 0, "{backup}");
    // The server is still serving after the copy.
    let (status, _) = crate::serve::get(&agent, &format!("{base}/api/v1/kpis"), &token);
    assert_eq!(status, 200);
    drop(served);
    let copied = assess(&copy);
    assert_eq!(copied["ledger_head"], backup["ledger_head"], "{copied}");
}

#[test]
fn serve_logs_json_lines_that_name_each_request_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.sqlite");
    let (served, base, _, logs) =
        crate::serve::spawn(&db, &["--no-twin", "--log-format", "json"], true);
    let logs = logs.expect("the logs are kept");
    let agent = crate::serve::agent();
    let response = agent
        .get(&format!("{base}/health"))
        .header("x-request-id", "plant-probe-42")
        .call()
        .expect("health answers");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("plant-probe-42")
    );
    // Without an id from the caller the server makes one and returns it.
    let response = agent
        .get(&format!("{base}/health"))
        .call()
        .expect("health answers");
    let made = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an id is made")
        .to_owned();
    assert_eq!(made.len(), 36, "{made}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut probe, mut made_seen, mut started) = (None, false, false);
    while Instant::now() < deadline && (probe.is_none() || !made_seen || !started) {
        let Ok(line) = logs.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert!(
            value["timestamp"].is_string() && value["level"].is_string(),
            "{line}"
        );
        started |= value["fields"]["message"] == "serving";
        let span = &value["span"];
        if span["id"] == "plant-probe-42" && value["fields"]["status"] == 200 {
            assert_eq!(span["path"], "/health", "{line}");
            probe = Some(value.clone());
        }
        made_seen |= span["id"] == made.as_str();
    }
    assert!(started, "no start-up line");
    assert!(probe.is_some(), "no log line for request plant-probe-42");
    assert!(made_seen, "no log line for request {made}");
    drop(served);
}

#[test]
fn a_bad_log_level_is_refused_naming_it() {
    let out = aifactory(&["--log-level", "loud", "plant", "check", "nothing.toml"]);
    assert!(!out.status.success());
    let why = text(&out.stderr);
    assert!(why.contains("--log-level") && why.contains("loud"), "{why}");
}

#[test]
fn version_names_the_commit_and_the_build() {
    let out = aifactory(&["--version"]);
    assert!(out.status.success());
    let said = text(&out.stdout);
    assert!(said.starts_with("aifactory 0."), "{said}");
    assert!(said.contains("commit ") && said.contains("build"), "{said}");
}
