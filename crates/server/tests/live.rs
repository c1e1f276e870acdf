//! The live routes over a published plant view: overview, machines, orders, the schedule, a
//! what-if and its approval (a person's decision in the ledger, a command to the plant),
//! browser sessions with CSRF, and the event stream.

use aifactory_core::{Kpis, Timestamp};
use aifactory_schedule::{Alternative, Job, Operation, Problem, Schedule, SolveOptions};
use aifactory_server::auth::{Accounts, Role, TokenKind};

const YEAR: Duration = Duration::from_secs(365 * 86_400);
use aifactory_server::live::{
    Live, MachineNow, OrderCounts, OrderNow, Plan, PlanJob, PlantId, PlantNow, Publisher, Snapshot,
};
use aifactory_server::{AppState, router};
use aifactory_store::Store;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

const T0: i64 = 1_772_409_600_000; // 2026-03-02T00:00:00Z

fn machine(id: &str, state: &str) -> MachineNow {
    MachineNow {
        id: id.into(),
        name: format!("{id} name"),
        group: "turning".into(),
        state: state.into(),
        state_code: 170_000,
        order: None,
        operation: None,
        queue: 0,
        utilisation: 0.5,
        anomaly_score: Some(0.1),
        anomaly: false,
        failures: 0,
        maintenances: 1,
        age_h: 12.0,
        health: Some(0.97),
        rul_h: Some(150.0),
        next_service: None,
    }
}

fn order(id: &str, completed: Option<i64>) -> OrderNow {
    OrderNow {
        id: id.into(),
        product: "P1".into(),
        quantity: 10,
        delivered: 0,
        received: Timestamp(T0),
        due: Timestamp(T0 + 86_400_000),
        released: true,
        completed: completed.map(Timestamp),
        status: if completed.is_some() {
            "completed".into()
        } else {
            "in_progress".into()
        },
        late: false,
    }
}

/// Two machines, three jobs that can each run on either: losing a machine for a while must
/// lengthen the plan.
fn plan() -> Plan {
    let job = |d: i64| Job {
        release: 0,
        due: Some(7_200),
        weight: 1.0,
        family: None,
        operations: vec![Operation {
            alternatives: vec![
                Alternative {
                    machine: 0,
                    duration: d,
                },
                Alternative {
                    machine: 1,
                    duration: d,
                },
            ],
            frozen: None,
        }],
    };
    let problem = Problem {
        name: "live".into(),
        machines: 2,
        jobs: vec![job(3_600), job(3_600), job(1_800)],
        downtime: Vec::new(),
        setup: None,
    };
    let schedule: Schedule = aifactory_schedule::solve(
        &problem,
        &SolveOptions {
            time_limit: None,
            max_iterations: Some(200),
            ..SolveOptions::default()
        },
    )
    .schedule;
    Plan {
        at: Timestamp(T0),
        decision: Some("D-1".into()),
        machines: vec!["TURN-01".into(), "TURN-02".into()],
        problem,
        schedule,
        jobs: (1..=3)
            .map(|n| PlanJob {
                label: format!("WO-{n:06}"),
                order: Some(format!("WO-{n:06}")),
                first_step: 0,
                kind: "work".into(),
            })
            .collect(),
    }
}

fn snapshot() -> Snapshot {
    let orders = vec![
        order("SO-000001", None),
        order("SO-000002", Some(T0 + 3_600_000)),
    ];
    Snapshot {
        plant: PlantNow {
            plant: PlantId {
                id: "test-plant".into(),
                name: "Test plant".into(),
            },
            tier: 2,
            speed: 60.0,
            sim_time: Timestamp(T0 + 1_800_000),
            running: true,
            machines: vec![machine("TURN-01", "busy"), machine("TURN-02", "down")],
            orders: OrderCounts::of(&orders),
            kpis: Kpis::compute(&aifactory_core::KpiInputs::default()),
            recent_events: Vec::new(),
        },
        orders,
        plan: Some(plan()),
        series_site: "test-plant".into(),
        series_node: "twin".into(),
        spc: Vec::new(),
        forecasts: Vec::new(),
        anomalies: Vec::new(),
        products: Vec::new(),
    }
}

struct Server {
    app: axum::Router,
    store: Store,
    commands: Arc<Mutex<Vec<aifactory_plant::Command>>>,
    // Kept so the feed stays open for the event stream.
    _publisher: Publisher,
}

async fn server() -> (Server, Vec<(Role, String)>) {
    let store = Store::open_in_memory().await.expect("store");
    let mut accounts = Accounts::new();
    accounts
        .add_user("ana", "correct horse battery", Role::Operator)
        .expect("user");
    let tokens = Role::ALL
        .iter()
        .map(|&r| {
            (
                r,
                accounts
                    .issue(&format!("{r:?}"), r, TokenKind::Api, 0, YEAR)
                    .token,
            )
        })
        .collect();
    let commands = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&commands);
    let (live, publisher) = Live::new(Some(Arc::new(move |c: aifactory_plant::Command| {
        sink.lock().expect("sink").push(c);
        Ok(())
    })));
    publisher.snapshot(snapshot());
    let state = AppState::new(
        store.clone(),
        accounts,
        Arc::new(|| Duration::from_secs(1_000)),
        live,
        7,
    );
    (
        Server {
            app: router(state),
            store,
            commands,
            _publisher: publisher,
        },
        tokens,
    )
}

fn token(tokens: &[(Role, String)], role: Role) -> String {
    tokens
        .iter()
        .find(|t| t.0 == role)
        .map(|t| t.1.clone())
        .expect("token")
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, header::HeaderMap, String) {
    let response = app.clone().oneshot(req).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("body");
    (
        status,
        headers,
        String::from_utf8(bytes.to_vec()).expect("utf-8"),
    )
}

async fn get(app: &axum::Router, uri: &str, token: &str) -> (StatusCode, serde_json::Value) {
    let req = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = send(app, req).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

async fn post(
    app: &axum::Router,
    uri: &str,
    token: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let req = Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request");
    let (status, _, body) = send(app, req).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn the_overview_machines_orders_and_schedule_come_from_the_live_view() {
    let (s, tokens) = server().await;
    let viewer = token(&tokens, Role::Viewer);
    let (status, plant) = get(&s.app, "/api/v1/plant", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{plant}");
    assert_eq!(plant["plant"]["id"], "test-plant");
    assert_eq!(plant["sim_time"], "2026-03-02T00:30:00.000Z");
    assert_eq!(plant["machines"][1]["state"], "down");
    assert_eq!(plant["orders"]["open"], 1);
    assert_eq!(plant["orders"]["completed"], 1);

    let (status, m) = get(&s.app, "/api/v1/machines/TURN-02", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["machine"]["name"], "TURN-02 name");
    let (status, m) = get(&s.app, "/api/v1/machines/NOPE", &viewer).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{m}");

    let (_, open) = get(&s.app, "/api/v1/orders?status=open", &viewer).await;
    assert_eq!(open["orders"].as_array().map(Vec::len), Some(1), "{open}");
    assert_eq!(open["orders"][0]["id"], "SO-000001");
    let (status, bad) = get(&s.app, "/api/v1/orders?status=lost", &viewer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["field"], "status", "{bad}");

    let (status, schedule) = get(&s.app, "/api/v1/schedule", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    let bars = schedule["bars"].as_array().expect("bars");
    assert_eq!(bars.len(), 3, "{schedule}");
    assert!(bars.iter().all(|b| b["start"].as_str() < b["end"].as_str()));
    assert!(schedule["makespan_h"].as_f64().is_some_and(|h| h >= 1.0));
}

#[tokio::test]
async fn a_what_if_becomes_a_proposal_an_operator_approves_into_the_ledger() {
    let (s, tokens) = server().await;
    let operator = token(&tokens, Role::Operator);
    let viewer = token(&tokens, Role::Viewer);
    let body = r#"{"machine_down":"TURN-01","hours":8}"#;
    let (status, what_if) = post(&s.app, "/api/v1/schedule/what-if", &operator, body).await;
    assert_eq!(status, StatusCode::OK, "{what_if}");
    let before = what_if["before"]["makespan_h"].as_f64().expect("before");
    let after = what_if["after"]["makespan_h"].as_f64().expect("after");
    assert!(
        after > before,
        "one machine for 8 h must lengthen the plan: {what_if}"
    );
    assert!(
        what_if["bars"]
            .as_array()
            .expect("bars")
            .iter()
            .all(|b| b["machine"] == "TURN-02"),
        "with TURN-01 down for 8 h every job moves to TURN-02: {what_if}"
    );
    let id = what_if["proposal"].as_str().expect("id").to_owned();

    // A viewer may look, not decide.
    let (status, _) = post(
        &s.app,
        &format!("/api/v1/proposals/{id}/approve"),
        &viewer,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, approved) = post(
        &s.app,
        &format!("/api/v1/proposals/{id}/approve"),
        &operator,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["proposal"]["status"], "approved");
    let decision = approved["decision"].as_str().expect("decision id");
    let stored = s
        .store
        .decision(decision)
        .await
        .expect("store")
        .expect("the approval is in the ledger");
    assert_eq!(stored.executed_by, aifactory_core::ExecutedBy::Human);
    assert!(stored.inputs_ref.contains("decision:D-1"), "{stored:?}");
    assert_eq!(
        s.commands
            .lock()
            .expect("commands")
            .iter()
            .map(|c| c.action.clone())
            .collect::<Vec<_>>(),
        vec![aifactory_plant::Action::StartMaintenance {
            machine: "TURN-01".into()
        }]
    );
    let sent = s.commands.lock().expect("commands")[0].clone();
    assert_eq!(
        sent.decision.as_deref(),
        Some(decision),
        "the command names the ledger decision it executes"
    );
    assert_eq!(approved["command"], sent.id.as_str());
    assert!(
        sent.expires.is_some_and(|e| e > stored.at),
        "the command expires after it was decided: {sent:?}"
    );
    let (status, human) = get(
        &s.app,
        "/api/v1/decisions?executed_by=human&skill=what_if&stage=production",
        &viewer,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{human}");
    assert_eq!(human["decisions"][0]["id"], decision, "{human}");
    let (_, none) = get(&s.app, "/api/v1/decisions?executed_by=auto", &viewer).await;
    assert_eq!(none["decisions"], serde_json::json!([]), "{none}");
    // Once decided, a proposal cannot be decided again.
    let (status, again) = post(
        &s.app,
        &format!("/api/v1/proposals/{id}/reject"),
        &operator,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, _) = post(&s.app, "/api/v1/proposals/P-99/approve", &operator, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_what_ifs_name_the_field() {
    let (s, tokens) = server().await;
    let operator = token(&tokens, Role::Operator);
    let cases = [
        (r#"{"machine_down":"TURN-01","hours":-1}"#, "hours"),
        (r#"{"machine_down":"TURN-01","hours":1e9}"#, "hours"),
        (r#"{"machine_down":"MILL-99","hours":2}"#, "machine_down"),
        (r#"{"machine_down":"TURN-01"}"#, "hours"),
        (r#"{"machine_down":3,"hours":2}"#, "machine_down"),
    ];
    for (body, field) in cases {
        let (status, json) = post(&s.app, "/api/v1/schedule/what-if", &operator, body).await;
        assert!(status.is_client_error(), "{body}: {status} {json}");
        assert_eq!(json["field"], field, "{body}: {json}");
    }
    let viewer = token(&tokens, Role::Viewer);
    for (uri, field) in [
        ("/api/v1/telemetry?machine=TURN-01", "signal"),
        (
            "/api/v1/telemetry?machine=TURN-01&signal=x&from=yesterday",
            "from",
        ),
        (
            "/api/v1/telemetry?machine=TURN-01&signal=x&bucket=week",
            "bucket",
        ),
    ] {
        let (status, json) = get(&s.app, uri, &viewer).await;
        assert!(status.is_client_error(), "{uri}: {status} {json}");
        assert_eq!(json["field"], field, "{uri}: {json}");
    }
}

#[tokio::test]
async fn browser_sessions_need_their_csrf_token_for_changes() {
    let (s, _) = server().await;
    let login = Request::post("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"username":"ana","password":"correct horse battery"}"#,
        ))
        .expect("request");
    let (status, headers, body) = send(&s.app, login).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    let csrf = body["csrf_token"].as_str().expect("csrf").to_owned();

    // Reads need only the cookie, and /me hands the page its CSRF token back.
    let me = Request::get("/api/v1/me")
        .header(header::COOKIE, &session)
        .body(Body::empty())
        .expect("request");
    let (status, _, me) = send(&s.app, me).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let me: serde_json::Value = serde_json::from_str(&me).expect("json");
    assert_eq!(me["role"], "operator");
    assert_eq!(me["csrf_token"], csrf.as_str());

    let what_if = |csrf: Option<&str>| {
        let mut req = Request::post("/api/v1/schedule/what-if")
            .header(header::COOKIE, &session)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        req.body(Body::from(r#"{"machine_down":"TURN-01","hours":2}"#))
            .expect("request")
    };
    let (status, _, body) = send(&s.app, what_if(None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let (status, _, _) = send(&s.app, what_if(Some("forged"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = send(&s.app, what_if(Some(&csrf))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let logout = Request::post("/api/v1/logout")
        .header(header::COOKIE, &session)
        .header("x-csrf-token", &csrf)
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = send(&s.app, logout).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let me = Request::get("/api/v1/me")
        .header(header::COOKIE, &session)
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = send(&s.app, me).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_event_stream_starts_with_the_plant() {
    let (s, tokens) = server().await;
    let viewer = token(&tokens, Role::Viewer);
    let response = s
        .app
        .clone()
        .oneshot(
            Request::get("/api/v1/events")
                .header(header::AUTHORIZATION, format!("Bearer {viewer}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = response.into_body().into_data_stream();
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::StreamExt::next(&mut body),
    )
    .await
    .expect("an event within 5 s")
    .expect("a chunk")
    .expect("bytes");
    let text = String::from_utf8(first.to_vec()).expect("utf-8");
    assert!(text.starts_with("event: plant\n"), "{text}");
    assert!(text.contains("\"test-plant\""), "{text}");
}

#[tokio::test]
async fn issued_tokens_are_kept_in_the_store_as_hashes() {
    let (s, tokens) = server().await;
    let admin = token(&tokens, Role::Admin);
    let (status, issued) = post(
        &s.app,
        "/api/v1/tokens",
        &admin,
        r#"{"user":"grafana","role":"viewer"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let secret = issued["token"].as_str().expect("token");
    let stored = s.store.tokens().await.expect("tokens");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].sha256, aifactory_server::auth::token_hash(secret));
    assert_eq!(
        (stored[0].user.as_str(), stored[0].role.as_str()),
        ("grafana", "viewer")
    );
    assert!(!stored[0].sha256.contains(secret), "only the hash is kept");
    // The token works at once.
    let (status, me) = get(&s.app, "/api/v1/me", secret).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["role"], "viewer");
}
