//! `aifactory agent` and `aifactory mcp` end to end: an acting request held until a person
//! approves it from the CLI (and never by the agent role), the audit export without the names of
//! who asked, and MCP conformance with the official Python SDK over stdio and streamable HTTP.

use super::{aifactory, text};
use std::process::Command;

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

#[test]
fn an_acting_request_from_the_cli_waits_until_a_person_approves_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("plant.sqlite");
    let db = db.to_str().expect("path");
    let embedded = ["--db", db, "--warm-up-days", "0.2", "--user", "li.wei"];
    let ask = aifactory(
        &[
            &[
                "agent",
                "ask",
                "Create a work order to service TURN-01: spindle vibration is rising",
                "--json",
            ][..],
            &embedded,
        ]
        .concat(),
    );
    assert!(ask.status.success(), "{}", text(&ask.stderr));
    let answer = json_of(&ask);
    assert_eq!(answer["by"], "offline planner");
    assert_eq!(answer["steps"][0]["tool"], "create_work_order", "{answer}");
    assert_eq!(answer["steps"][0]["outcome"], "queued", "{answer}");
    let id = answer["pending_actions"][0]
        .as_str()
        .expect("held")
        .to_owned();

    let list = aifactory(&["agent", "approvals", "--db", db, "--json"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let list = json_of(&list);
    assert_eq!(list["actions"][0]["id"], id.as_str());
    assert_eq!(list["actions"][0]["status"], "pending");

    // The agent role never approves; a viewer may not either.
    for role in ["agent", "viewer"] {
        let refused = aifactory(
            &[
                &["agent", "approvals", "approve", &id, "--role", role][..],
                &embedded,
            ]
            .concat(),
        );
        assert!(!refused.status.success(), "{role} approved");
        assert!(
            text(&refused.stderr).contains("may not decide"),
            "{}",
            text(&refused.stderr)
        );
    }
    let pending = json_of(&aifactory(&["agent", "approvals", "--db", db, "--json"]));
    assert_eq!(
        pending["actions"].as_array().map(Vec::len),
        Some(1),
        "still pending: {pending}"
    );

    let approved = aifactory(
        &[
            &[
                "agent",
                "approvals",
                "approve",
                &id,
                "--role",
                "operator",
                "--json",
            ][..],
            &embedded,
        ]
        .concat(),
    );
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let approved = json_of(&approved);
    assert_eq!(approved["actions"][0]["status"], "executed", "{approved}");
    assert!(
        approved["actions"][0]["result"]["decision"]
            .as_str()
            .is_some_and(|d| d.starts_with("H-")),
        "{approved}"
    );
    let again = aifactory(
        &[
            &["agent", "approvals", "approve", &id, "--role", "admin"][..],
            &embedded,
        ]
        .concat(),
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already executed"),
        "{}",
        text(&again.stderr)
    );

    let zh = aifactory(&[&["agent", "ask", "工厂现在的状态怎么样？"][..], &embedded].concat());
    assert!(zh.status.success(), "{}", text(&zh.stderr));
    assert!(
        text(&zh.stdout).contains("离线规划器"),
        "{}",
        text(&zh.stdout)
    );

    let out = dir.path().join("train.jsonl");
    let export = aifactory(&[
        "agent",
        "export",
        "--db",
        db,
        "--out",
        out.to_str().expect("path"),
        "--json",
    ]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    assert_eq!(json_of(&export)["stats"]["conversations"], 2);
    let lines = std::fs::read_to_string(&out).expect("export written");
    assert_eq!(lines.lines().count(), 2);
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(v["messages"][0]["role"], "system");
        assert!(v["tools"].as_array().is_some_and(|t| t.len() == 12));
    }
    assert!(
        lines.contains("\"final_status\\\":\\\"executed\\\"") || lines.contains("final_status"),
        "outcomes exported"
    );
    assert!(!lines.contains("li.wei"), "who asked is not exported");

    let bad = aifactory(&["agent", "ask", "hi", "--db", db, "--model-preset", "gpt"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("qwen, deepseek, vllm or ollama"),
        "{}",
        text(&bad.stderr)
    );
    let bad = aifactory(&["agent", "approvals", "--db", db, "--status", "maybe"]);
    assert!(
        text(&bad.stderr).contains("use pending"),
        "{}",
        text(&bad.stderr)
    );
}

/// The Python with the `mcp` package that `.ci/run` prepares; without it the check says so.
fn python() -> Option<String> {
    let python = std::env::var("AIFACTORY_TEST_PYTHON").ok();
    if python.is_none() {
        eprintln!(
            "skipped: set AIFACTORY_TEST_PYTHON to a Python with the `mcp` package (.ci/run does)"
        );
    }
    python
}

fn conformance(python: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python)
        .arg(super::repo_file("tests/mcp/conformance.py"))
        .args(args)
        .env_remove("AIFACTORY_DB")
        .output()
        .expect("python runs");
    let last = text(&out.stdout).lines().last().unwrap_or("").to_owned();
    assert!(
        out.status.success(),
        "conformance failed: {last}\n{}",
        text(&out.stderr)
    );
    serde_json::from_str(&last).expect("a JSON line")
}

#[test]
fn mcp_over_stdio_and_streamable_http_passes_the_python_sdk_s_checks() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("stdio.sqlite");
    let seen = conformance(
        &python,
        &[
            "stdio",
            env!("CARGO_BIN_EXE_aifactory"),
            db.to_str().expect("path"),
        ],
    );
    assert_eq!(seen["ok"], true, "{seen}");
    let held = seen["held"].as_str().expect("held action");
    let list = json_of(&aifactory(&[
        "agent",
        "approvals",
        "--db",
        db.to_str().expect("path"),
        "--status",
        "all",
        "--json",
    ]));
    let actions = list["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{list}");
    assert_eq!(
        (
            actions[0]["id"].as_str(),
            actions[0]["status"].as_str(),
            actions[0]["role"].as_str(),
            actions[0]["via"].as_str()
        ),
        (
            Some(held),
            Some("pending"),
            Some("agent"),
            Some("mcp-stdio")
        )
    );

    // Streamable HTTP at serve's /mcp, with a token for the agent role.
    let db = dir.path().join("http.sqlite");
    let (serve, base, password) = super::serve::start(&db, &["--warm-up-days", "0.25"]);
    let http = super::serve::agent();
    let admin = super::serve::login(&http, &base, &password);
    let mut issued = http
        .post(&format!("{base}/api/v1/tokens"))
        .header("Authorization", &format!("Bearer {admin}"))
        .send_json(serde_json::json!({ "user": "dify", "role": "agent" }))
        .expect("token");
    let issued: serde_json::Value = issued.body_mut().read_json().expect("json");
    let token = issued["token"].as_str().expect("token");
    let refused = http
        .post(&format!("{base}/mcp"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .send(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#)
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 401, "no token, no MCP");
    let seen = conformance(&python, &["http", &format!("{base}/mcp"), token]);
    assert_eq!(seen["ok"], true, "{seen}");
    let (status, list) = super::serve::get(&http, &format!("{base}/api/v1/agent/actions"), &admin);
    assert_eq!(status, 200);
    let actions = list["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{list}");
    assert_eq!(
        (
            actions[0]["status"].as_str(),
            actions[0]["requested_by"].as_str(),
            actions[0]["via"].as_str()
        ),
        (Some("pending"), Some("dify"), Some("mcp-http"))
    );
    let (_, ledger) = super::serve::get(
        &http,
        &format!("{base}/api/v1/decisions?skill=maintenance_work_order"),
        &admin,
    );
    assert_eq!(
        ledger["decisions"].as_array().map(Vec::len),
        Some(0),
        "nothing executed: {ledger}"
    );
    drop(serve);
}
