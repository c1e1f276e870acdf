//! `aifactory serve` end to end: the printed address and credentials, the live twin filling the
//! store (telemetry through the ingest path, decisions in the ledger), the plan, and the web
//! UI's shell served from the binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server, stopped when dropped.
pub(crate) struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

pub(crate) fn get(agent: &ureq::Agent, url: &str, token: &str) -> (u16, serde_json::Value) {
    let mut response = agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("the server answers");
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_json()
        .unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Polls `url` until `ready` holds for its answer (at most 90 s).
fn wait_for(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    ready: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_within(agent, url, token, Duration::from_secs(90), ready)
}

/// Polls `url` until `ready` holds for its answer, failing after `limit`.
fn wait_within(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    limit: Duration,
    ready: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (status, body) = get(agent, url, token);
        if ready(status, &body) {
            return body;
        }
        assert!(start.elapsed() < limit, "{url} not ready: {status} {body}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Starts `serve` with `extra` arguments; returns it with its address and the admin password
/// it printed (none when the store already has the admin).
fn start_kept(db: &std::path::Path, extra: &[&str]) -> (Serve, String, Option<String>) {
    let (serve, base, password, _) = spawn(db, extra, false);
    (serve, base, password)
}

/// Starts `serve` with `extra` arguments: it, its address, the admin password it printed, and
/// with `logs` its log lines (standard error) as they come.
pub(crate) fn spawn(
    db: &std::path::Path,
    extra: &[&str],
    logs: bool,
) -> (
    Serve,
    String,
    Option<String>,
    Option<std::sync::mpsc::Receiver<String>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aifactory"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(extra)
        .env_remove("AIFACTORY_ADMIN_PASSWORD")
        .env_remove("AIFACTORY_DB")
        .env_remove("AIFACTORY_CONFIG")
        .env_remove("AIFACTORY_LOG")
        .env_remove("AIFACTORY_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(if logs { Stdio::piped() } else { Stdio::null() })
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let log_lines = child.stderr.take().map(|stderr| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        rx
    });
    let serve = Serve(child);
    let mut lines = BufReader::new(stdout).lines();
    let (mut base, mut password, mut told) = (None, None, false);
    while base.is_none() || !told {
        let line = lines
            .next()
            .expect("serve prints its address and how to log in")
            .expect("utf-8");
        if let Some(rest) = line.strip_prefix("aifactory on ") {
            base = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.strip_prefix("log in as admin with password ") {
            password = rest.split_whitespace().next().map(str::to_owned);
        }
        told |= line.starts_with("log in as admin");
    }
    // Keep reading what it prints later: a closed pipe would fail its next line.
    std::thread::spawn(move || lines.for_each(drop));
    (serve, base.expect("address"), password, log_lines)
}

/// Starts `serve` on a new store: it prints the admin's password.
pub(crate) fn start(db: &std::path::Path, extra: &[&str]) -> (Serve, String, String) {
    let (serve, base, password) = start_kept(db, extra);
    (
        serve,
        base,
        password.expect("a new store's admin password is printed"),
    )
}

pub(crate) fn login(agent: &ureq::Agent, base: &str, password: &str) -> String {
    let mut login = agent
        .post(&format!("{base}/api/v1/login"))
        .send_json(serde_json::json!({ "username": "admin", "password": password }))
        .expect("login");
    assert_eq!(login.status().as_u16(), 200);
    let login: serde_json::Value = login.body_mut().read_json().expect("json");
    login["token"].as_str().expect("token").to_owned()
}

#[test]
fn serve_prints_where_and_how_to_log_in_and_runs_a_live_plant() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (serve, base, password) = start(&dir.path().join("serve.sqlite"), &["--speed", "600"]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let agent = agent();

    // The web UI's shell is served from the binary without a login; the data is not.
    let mut index = agent.get(&base).call().expect("index");
    assert_eq!(index.status().as_u16(), 200);
    let html = index.body_mut().read_to_string().expect("html");
    assert!(html.contains("<html"), "{html}");
    let (status, _) = get(&agent, &format!("{base}/api/v1/plant"), "nobody");
    assert_eq!(status, 401);
    let token = login(&agent, &base, &password);

    let plant = wait_for(&agent, &format!("{base}/api/v1/plant"), &token, |s, b| {
        s == 200 && b["machines"].as_array().is_some_and(|m| !m.is_empty())
    });
    assert_eq!(plant["plant"]["id"], "hz-auto-parts");
    assert_eq!(plant["machines"].as_array().map(Vec::len), Some(15));
    // Each machine's standard state code, projected from the twin's events as a real plant's
    // would be, agrees with the twin's own state.
    for m in plant["machines"].as_array().into_iter().flatten() {
        let allowed: &[u64] = match m["state"].as_str() {
            Some("idle") => &[170_000],
            Some("busy") => &[10_000, 100_000],
            Some("down") => &[180_000],
            Some("maintenance") => &[210_000],
            _ => &[],
        };
        assert!(
            m["state_code"]
                .as_u64()
                .is_some_and(|c| allowed.contains(&c)),
            "{m}"
        );
    }
    let schedule = wait_for(
        &agent,
        &format!("{base}/api/v1/schedule"),
        &token,
        |s, _| s == 200,
    );
    assert!(
        schedule["bars"].as_array().is_some_and(|b| !b.is_empty()),
        "{schedule}"
    );
    let decisions = wait_for(
        &agent,
        &format!("{base}/api/v1/decisions?limit=5"),
        &token,
        |s, b| s == 200 && b["decisions"].as_array().is_some_and(|d| !d.is_empty()),
    );
    assert!(
        decisions["decisions"][0]["skill"].is_string(),
        "{decisions}"
    );
    // Telemetry arrives through the ingest path and is queryable as a range and as roll-ups.
    let signals = wait_for(
        &agent,
        &format!("{base}/api/v1/machines/TURN-01"),
        &token,
        |s, b| s == 200 && b["signals"].as_array().is_some_and(|x| !x.is_empty()),
    );
    let signal = signals["signals"][0].as_str().expect("signal").to_owned();
    let raw = wait_for(
        &agent,
        &format!("{base}/api/v1/telemetry?machine=TURN-01&signal={signal}"),
        &token,
        |s, b| s == 200 && b["points"].as_array().is_some_and(|p| p.len() > 10),
    );
    let times: Vec<i64> = raw["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p[0].as_i64())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "points in time order"
    );
    let (status, hourly) = get(
        &agent,
        &format!("{base}/api/v1/telemetry?machine=TURN-01&signal={signal}&bucket=hour"),
        &token,
    );
    assert_eq!(status, 200, "{hourly}");
    assert!(
        hourly["buckets"]
            .as_array()
            .is_some_and(|b| b.iter().all(|x| x["min"].as_f64() <= x["max"].as_f64())),
        "{hourly}"
    );
    drop(serve);
}

/// With `--mqtt`, the twin's telemetry goes out as a Sparkplug B edge node through a real broker
/// and comes back in through ingest, as a plant's would.
#[test]
fn serve_with_mqtt_takes_the_twin_in_through_a_real_broker() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set (e.g. mqtt://127.0.0.1:1883)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // A plant id of its own, new on every run: other tests publish the reference plant's
    // Sparkplug group on the same broker at the same time, and a host cannot tell two edge nodes
    // of one name apart. Per run, because ingest's MQTT session is persistent and named after the
    // plant: a broker that outlived an earlier run would hand this run the old session's queue
    // (data of another edge node's births), overflow it and lose this run's births.
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let plant_id = format!("hz-serve-mqtt-{}-{unique}", std::process::id());
    let plant = dir.path().join("plant.toml");
    let reference = std::fs::read_to_string(super::repo_file("plants/hangzhou-auto-parts.toml"))
        .expect("the reference plant");
    std::fs::write(
        &plant,
        reference.replacen("id = \"hz-auto-parts\"", &format!("id = \"{plant_id}\""), 1),
    )
    .expect("plant file");
    let plant = plant.to_str().expect("path");
    let (serve, base, password) = start(
        &dir.path().join("serve.sqlite"),
        // A whole day of warm-up through the broker: the twin runs ahead of the ingest only as
        // far as the broker's queue for it holds, so nothing is dropped on a loaded machine.
        &["--speed", "600", "--mqtt", &url, "--plant", plant],
    );
    let agent = agent();
    let token = login(&agent, &base, &password);
    // Only ingest writes telemetry on this path: points there mean the broker round trip works.
    // The range is the plant's first day, not the default six hours before the twin's now: on
    // a loaded machine the ingest may lag the twin by more than that.
    let raw = wait_for(
        &agent,
        &format!(
            "{base}/api/v1/telemetry?machine=TURN-01&signal=vibration_mm_s&from=2026-03-01T16:00:00Z&to=2026-03-02T16:00:00Z"
        ),
        &token,
        |s, b| s == 200 && b["points"].as_array().is_some_and(|p| p.len() > 10),
    );
    assert!(raw["points"][0][1].as_f64().is_some(), "{raw}");
    // The whole warm-up day comes through the broker: hourly buckets from the plant's start
    // fill up (a session lost to an overfull broker queue would stop them early). This checks
    // that nothing is lost, not how fast it arrives: on a loaded machine the broker round trip
    // of a day's telemetry can take minutes.
    let hours = wait_within(
        &agent,
        &format!(
            "{base}/api/v1/telemetry?machine=TURN-01&signal=vibration_mm_s&from=2020-01-01T00:00:00Z&bucket=hour"
        ),
        &token,
        Duration::from_secs(600),
        |s, b| s == 200 && b["buckets"].as_array().is_some_and(|p| p.len() >= 20),
    );
    assert!(
        hours["buckets"].as_array().is_some_and(|p| p.len() >= 20),
        "{hours}"
    );
    let (status, latest) = get(&agent, &format!("{base}/api/v1/telemetry/latest"), &token);
    assert_eq!(status, 200);
    assert!(
        latest["latest"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["metric"] == "plant")),
        "the edge node's birth certificate is stored: {latest}"
    );
    drop(serve);
}

#[test]
fn serve_refuses_bad_options_before_it_listens() {
    let cases: [(&[&str], &str); 8] = [
        (&["serve", "--speed", "0"], "--speed"),
        (
            &["serve", "--plant-feed", "ftp://somewhere"],
            "--plant-feed ftp://somewhere",
        ),
        (
            &[
                "serve",
                "--plant-feed",
                "mqtt://127.0.0.1:1883",
                "--tier",
                "4",
            ],
            "--tier",
        ),
        (
            &[
                "serve",
                "--no-twin",
                "--plant-feed",
                "mqtt://127.0.0.1:1883",
            ],
            "--no-twin",
        ),
        (&["serve", "--warm-up-days", "400"], "--warm-up-days"),
        (
            &["serve", "--mqtt", "ftp://somewhere"],
            "--mqtt ftp://somewhere",
        ),
        (
            &["serve", "--no-twin", "--mqtt", "mqtt://127.0.0.1:1883"],
            "--no-twin",
        ),
        (
            &["serve", "--plant", "/nonexistent/plant.toml"],
            "/nonexistent/plant.toml",
        ),
    ];
    for (args, says) in cases {
        let out = crate::aifactory(args);
        let stderr = crate::text(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn the_admin_and_issued_tokens_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("serve.sqlite");
    let (serve, base, password) = start(&db, &["--no-twin"]);
    let agent = agent();
    let admin = login(&agent, &base, &password);
    let mut issued = agent
        .post(&format!("{base}/api/v1/tokens"))
        .header("Authorization", &format!("Bearer {admin}"))
        .send_json(serde_json::json!({ "user": "grafana", "role": "viewer" }))
        .expect("token");
    assert_eq!(issued.status().as_u16(), 200);
    let issued: serde_json::Value = issued.body_mut().read_json().expect("json");
    let dashboard = issued["token"].as_str().expect("token").to_owned();
    drop(serve);

    let (serve, base, printed) = start_kept(&db, &["--no-twin"]);
    assert_eq!(printed, None, "the password is printed on first start only");
    let (status, me) = get(&agent, &format!("{base}/api/v1/me"), &dashboard);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"], "grafana");
    login(&agent, &base, &password);
    drop(serve);
}

fn token_cli(base: &str, admin: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aifactory"))
        .arg("token")
        .args(args)
        .args(["--server", base, "--token", admin, "--json"])
        .env_remove("AIFACTORY_TOKEN")
        .env_remove("AIFACTORY_SERVER")
        .output()
        .expect("aifactory token runs")
}

#[test]
fn an_admin_issues_lists_and_revokes_tokens_from_the_cli_and_revoked_stays_revoked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("serve.sqlite");
    let (serve, base, password) = start(&db, &["--no-twin"]);
    let agent = agent();
    let admin = login(&agent, &base, &password);

    let out = token_cli(
        &base,
        &admin,
        &["issue", "grafana", "--role", "viewer", "--days", "7"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let issued: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let dashboard = issued["token"].as_str().expect("token").to_owned();
    let id = issued["id"].as_str().expect("id").to_owned();
    assert_eq!(get(&agent, &format!("{base}/api/v1/me"), &dashboard).0, 200);

    let out = token_cli(&base, &admin, &["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.contains(&dashboard),
        "a list never shows a secret: {text}"
    );
    let list: serde_json::Value = serde_json::from_str(&text).expect("json");
    let row = list
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"] == id.as_str()))
        .expect("listed");
    assert_eq!(row["state"], "active");

    let out = token_cli(&base, &admin, &["revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&agent, &format!("{base}/api/v1/me"), &dashboard).0, 401);
    // A second revocation and a token that is not an admin's are clear errors.
    let out = token_cli(&base, &admin, &["revoke", &id]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already revoked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = token_cli(&base, &dashboard, &["list"]);
    assert!(!out.status.success());
    drop(serve);

    let (serve, base, _) = start_kept(&db, &["--no-twin"]);
    assert_eq!(
        get(&agent, &format!("{base}/api/v1/me"), &dashboard).0,
        401,
        "revoked before the restart, revoked after"
    );
    drop(serve);
}

/// The broker and the Python with paho-mqtt the emulator tests need, or `None` (they skip).
fn emulator_services() -> Option<(String, String)> {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set (e.g. mqtt://127.0.0.1:1883)");
        return None;
    };
    let Ok(python) = std::env::var("AIFACTORY_TEST_EMULATOR_PYTHON") else {
        eprintln!("skipped: AIFACTORY_TEST_EMULATOR_PYTHON is not set (a python with paho-mqtt)");
        return None;
    };
    Some((url, python))
}

/// The emulator's job shop under a site of its own, new on every run: the feed's MQTT session is
/// persistent, and a broker that outlived an earlier run would hand it that run's messages.
fn emulated_shop(dir: &std::path::Path, name: &str) -> (String, String) {
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let site = format!("{name}-{}-{unique}", std::process::id());
    let shop = std::fs::read_to_string(super::repo_file("tests/plant-emulator/job-shop.toml"))
        .expect("the emulator's plant file");
    let plant = dir.join("shop.toml");
    std::fs::write(
        &plant,
        shop.replacen("id = \"emu-shop\"", &format!("id = \"{site}\""), 1),
    )
    .expect("plant file");
    (site, plant.to_str().expect("path").to_owned())
}

#[test]
fn serve_at_its_default_tier_3_tells_a_plant_without_a_trial_line_to_run_tier_2() {
    let Some((url, python)) = emulator_services() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (site, plant) = emulated_shop(dir.path(), "emu-tier3");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_aifactory"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("serve.sqlite"))
        .args(["--plant-feed", &url, "--plant", &plant])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    // The plant speaks (paced, so it is still there to answer the trial batch), refuses the
    // `trial_batch` it does not know, and serve stops with the reason and what to do.
    let mut emulator = Command::new(&python)
        .current_dir(super::repo_file(""))
        .args([
            "tests/plant-emulator/emulator.py",
            "--broker",
            &url,
            "--plant",
            &plant,
        ])
        .args(["--hours", "24", "--speed", "3600"])
        .args(["--client-id", &format!("{site}-plant")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while serve.try_wait().expect("serve's status").is_none() {
        assert!(std::time::Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = emulator.kill();
    let _ = emulator.wait();
    let out = serve.wait_with_output().expect("serve's output");
    assert!(!out.status.success());
    let err = super::text(&out.stderr);
    assert!(
        err.contains("trial batch T1") && err.contains("--tier 2"),
        "{err}"
    );
}

#[test]
fn serve_runs_a_real_plant_on_its_feed_and_shows_its_machines_and_telemetry() {
    let Some((url, python)) = emulator_services() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (site, plant) = emulated_shop(dir.path(), "emu-serve");
    let plant = plant.as_str();
    let (serve, base, password) = start(
        &dir.path().join("serve.sqlite"),
        &["--plant-feed", &url, "--plant", plant, "--tier", "2"],
    );
    // The plant: half a day of the emulated shop in lockstep with the feed.
    let emulator = Command::new(&python)
        .current_dir(super::repo_file(""))
        .args([
            "tests/plant-emulator/emulator.py",
            "--broker",
            &url,
            "--plant",
            plant,
        ])
        .args([
            "--hours",
            "12",
            "--seed",
            "3",
            "--lockstep",
            "--answer-timeout",
            "60",
        ])
        .args(["--client-id", &format!("{site}-plant")])
        .output()
        .expect("python3 runs");
    assert!(
        emulator.status.success(),
        "{}",
        String::from_utf8_lossy(&emulator.stderr)
    );
    let agent = agent();
    let token = login(&agent, &base, &password);
    // The live view comes from the plant's events: its machines, their states and work.
    let plant_now = wait_for(&agent, &format!("{base}/api/v1/plant"), &token, |s, b| {
        s == 200
            && b["plant"]["id"] == site.as_str()
            && b["machines"].as_array().is_some_and(|m| {
                m.len() == 4
                    && m.iter()
                        .all(|x| x["utilisation"].as_f64().is_some_and(|u| u > 0.0))
            })
    });
    let machines = plant_now["machines"].as_array().expect("machines");
    let ids: Vec<&str> = machines.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["SAW-01", "MILL-01", "MILL-02", "DRILL-01"]);
    assert!(
        machines
            .iter()
            .all(|m| m["state_code"].as_u64().is_some_and(|c| c != 30_000)),
        "every machine's state is known: {plant_now}"
    );
    assert_eq!(plant_now["tier"], 2);
    // Its telemetry, found by the plant's own names.
    let raw = wait_for(
        &agent,
        &format!(
            "{base}/api/v1/telemetry?machine=MILL-01&signal=vibration&from=2026-03-01T16:00:00Z&to=2026-03-02T16:00:00Z"
        ),
        &token,
        |s, b| s == 200 && b["points"].as_array().is_some_and(|p| p.len() > 60),
    );
    assert!(raw["points"][0][1].as_f64().is_some(), "{raw}");
    let (status, detail) = get(&agent, &format!("{base}/api/v1/machines/MILL-01"), &token);
    assert_eq!(status, 200, "{detail}");
    assert!(
        detail["signals"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == "vibration")),
        "{detail}"
    );
    // The ledger: the dispatch lists the coordinator sent, each settled by the plant.
    let decisions = wait_for(
        &agent,
        &format!("{base}/api/v1/decisions?skill=dispatching&limit=1000"),
        &token,
        |s, b| {
            s == 200
                && b["decisions"].as_array().is_some_and(|d| {
                    d.iter()
                        .filter(|x| x["outcome"]["measured"]["status"].is_string())
                        .count()
                        >= 4
                })
        },
    );
    assert!(
        decisions["decisions"].as_array().is_some_and(|d| d
            .iter()
            .any(|x| x["outcome"]["measured"]["status"] == "completed")),
        "{decisions}"
    );
    drop(serve);
}

#[test]
fn a_plant_feed_killed_mid_run_takes_up_where_it_was() {
    let Some((url, python)) = emulator_services() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (site, plant) = emulated_shop(dir.path(), "emu-kill");
    let plant = plant.as_str();
    let db = dir.path().join("serve.sqlite");
    let args = ["--plant-feed", &url, "--plant", plant, "--tier", "0"];
    let (first, _, password) = start(&db, &args);
    // The plant runs paced, a day in 48 s; a free machine waits up to ten plant minutes (a third
    // of a second) for its dispatch list, then takes first come, first served. It never answers
    // the third dispatch list: the feed is killed just after that one left, while it is open.
    let summary = dir.path().join("summary.json");
    let mut emulator = Command::new(&python)
        .current_dir(super::repo_file(""))
        .args([
            "tests/plant-emulator/emulator.py",
            "--broker",
            &url,
            "--plant",
            plant,
        ])
        .args([
            "--hours",
            "24",
            "--seed",
            "5",
            "--speed",
            "1800",
            "--dispatch-wait",
            "10",
            "--ignore",
            "3",
        ])
        .args(["--client-id", &format!("{site}-plant"), "--summary"])
        .arg(&summary)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let stderr = emulator.stderr.take().expect("stderr");
    let (ignored_tx, ignored_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut said = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("--ignore: ignoring") {
                let _ = ignored_tx.send(());
            }
            said.push(line);
        }
        said
    });
    ignored_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the plant ignores its third dispatch list");
    drop(first); // SIGKILL, mid-run, with a command open
    std::thread::sleep(Duration::from_secs(1));
    let (second, base, kept) = start_kept(&db, &args);
    assert!(kept.is_none(), "the store kept its admin");
    let status = emulator.wait().expect("the emulator ends");
    let said = reader.join().unwrap_or_default();
    assert!(
        status.success(),
        "the emulator failed: {status}\n{}",
        said.join("\n")
    );
    let agent = agent();
    let token = login(&agent, &base, &password);
    // Let the restarted feed take the plant's last messages and expire what is overdue.
    let decisions = wait_within(
        &agent,
        &format!("{base}/api/v1/decisions?limit=10000"),
        &token,
        Duration::from_secs(60),
        |s, b| {
            s == 200
                && b["decisions"].as_array().is_some_and(|d| {
                    d.iter()
                        .any(|x| x["id"].as_str().is_some_and(|i| i.starts_with("D-R2-")))
                })
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    drop(second);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("json");
    assert_eq!(
        summary["duplicates"], 0,
        "no command arrived twice: {summary}"
    );
    assert_eq!(summary["orders"]["completed"], 12, "{summary}");
    let decided = decisions["decisions"].as_array().expect("decisions").len();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = aifactory_store::Store::open(db.to_str().expect("path"))
            .await
            .expect("the store opens");
        let runs = store.runs(&site).await.expect("runs");
        assert_eq!(runs.len(), 2, "one run before the kill, one after");
        // Every event kept once: the restarted feed knew what the first had kept, and what the
        // broker delivered again is dropped as a duplicate.
        let mut ids = std::collections::BTreeSet::new();
        let mut kept = 0;
        for (run, _) in &runs {
            for e in store.events(Some(*run)).await.expect("events") {
                if let Some(id) = e.detail["envelope"]["id"].as_str() {
                    kept += 1;
                    assert!(ids.insert(id.to_owned()), "event {id} kept twice");
                }
            }
        }
        let published: u64 = summary["events"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.as_str() != "heartbeat")
                    .filter_map(|(_, v)| v.as_u64())
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(kept, published, "every event the plant published is kept");
        // The first run's commands were settled after the restart, none lost.
        let all = store.decisions(10_000).await.expect("decisions");
        assert_eq!(all.len(), decided);
        let first_run: Vec<_> = all.iter().filter(|d| d.id.starts_with("D-R1-")).collect();
        assert!(first_run.len() >= 3, "the first run decided");
        for d in &first_run {
            let outcome = d
                .outcome
                .as_ref()
                .unwrap_or_else(|| panic!("{} never settled", d.id));
            assert!(outcome.measured["status"].is_string(), "{outcome:?}");
        }
        // The ignored one was open at the kill: the restarted feed took it up and expired it.
        let ignored = summary["ignored"][0].as_str().expect("an ignored command");
        let decision = ignored.strip_prefix("C-").expect("a command id");
        let expired = first_run
            .iter()
            .find(|d| d.id == decision)
            .and_then(|d| d.outcome.as_ref())
            .map(|o| o.measured["status"].clone());
        assert_eq!(expired, Some(serde_json::json!("expired")), "{ignored}");
        store.close().await;
    });
}

/// The asyncua machine of `tests/plant-emulator/opcua_machine.py` named `machine`, killed on
/// drop, and the address it listens on.
fn opcua_machine(python: &str, machine: &str) -> (Serve, String) {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut child = Command::new(python)
        .current_dir(super::repo_file(""))
        .args(["tests/plant-emulator/opcua_machine.py", "--port"])
        .arg(port.to_string())
        .args(["--machine", machine, "--cycle", "0.5", "--seconds", "120"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its first line");
    let url = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("the OPC UA machine did not start: `{line}`"))
        .to_owned();
    (Serve(child), url)
}

#[test]
fn serve_shows_a_machine_served_over_opcua_on_the_plant_feed() {
    let Some((url, python)) = emulator_services() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_site, plant) = emulated_shop(dir.path(), "opc-serve");
    let (_machine, opcua) = opcua_machine(&python, "MILL-02");
    let (serve, base, password) = start(
        &dir.path().join("serve.sqlite"),
        &[
            "--plant-feed",
            &url,
            "--plant",
            &plant,
            "--plant-opcua",
            &opcua,
            // The OPC UA machine has no trial line for tier 3's trial batches.
            "--tier",
            "2",
        ],
    );
    let agent = agent();
    let token = login(&agent, &base, &password);
    // Its state, read over OPC UA by browse path: running and idle in turn, never "no data".
    let plant_now = wait_for(&agent, &format!("{base}/api/v1/plant"), &token, |s, b| {
        s == 200
            && b["machines"].as_array().is_some_and(|m| {
                m.iter().any(|x| {
                    x["id"] == "MILL-02"
                        && matches!(x["state_code"].as_u64(), Some(10_000 | 170_000))
                })
            })
    });
    assert!(plant_now["machines"].is_array(), "{plant_now}");
    // Its signals, under the names its server gives them.
    let detail = wait_for(
        &agent,
        &format!("{base}/api/v1/machines/MILL-02"),
        &token,
        |s, b| {
            s == 200
                && b["signals"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == "SpindleSpeed"))
        },
    );
    assert!(
        detail["signals"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == "Temperature")),
        "{detail}"
    );
    drop(serve);
}

#[test]
fn serve_names_the_opcua_server_that_has_none_of_the_plants_machines() {
    let Some((url, python)) = emulator_services() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // The reference plant has no LATHE-7.
    let (_machine, opcua) = opcua_machine(&python, "LATHE-7");
    let out = super::aifactory(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        dir.path().join("s.sqlite").to_str().expect("path"),
        "--plant-feed",
        &url,
        "--plant-opcua",
        &opcua,
    ]);
    assert!(!out.status.success());
    let err = super::text(&out.stderr);
    assert!(
        err.contains(&format!("--plant-opcua {opcua}"))
            && err.contains("serves none of the plant's machines"),
        "{err}"
    );
}
