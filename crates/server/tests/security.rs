//! Regression tests for the findings of the outside review of `serve` (issue 20), one or more
//! per finding, named after it. Each failed on the code before its fix.

use aifactory_agent::Agent;
use aifactory_agent::manuals::Manuals;
use aifactory_agent::policy::Policy;
use aifactory_core::{Kpis, Timestamp};
use aifactory_schedule::{Alternative, Job, Operation, Problem, Schedule, SolveOptions};
use aifactory_server::auth::{Accounts, Role, TokenKind};
use aifactory_server::live::{
    Live, MachineNow, OrderCounts, Plan, PlanJob, PlantId, PlantNow, Publisher, Snapshot,
};
use aifactory_server::{AppState, router};
use aifactory_store::Store;
use aifactory_store::ingest::{IngestBatch, IngestMessage, Sample, SeriesName};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

const T0: i64 = 1_772_409_600_000; // 2026-03-02T00:00:00Z
const YEAR: Duration = Duration::from_secs(365 * 86_400);
const ADMIN_PASSWORD: &str = "admin-password-1";

fn machine(id: &str) -> MachineNow {
    MachineNow {
        id: id.into(),
        name: format!("{id} name"),
        group: "turning".into(),
        state: "busy".into(),
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

/// Two machines, two jobs that can each run on either.
fn plan() -> Plan {
    let job = |d: i64| Job {
        release: 0,
        due: Some(7_200),
        weight: 1.0,
        family: None,
        operations: vec![Operation {
            alternatives: (0..2)
                .map(|machine| Alternative {
                    machine,
                    duration: d,
                })
                .collect(),
            frozen: None,
        }],
    };
    let problem = Problem {
        name: "live".into(),
        machines: 2,
        jobs: vec![job(3_600), job(1_800)],
        downtime: Vec::new(),
        setup: None,
    };
    let schedule: Schedule = aifactory_schedule::solve(
        &problem,
        &SolveOptions {
            time_limit: None,
            max_iterations: Some(50),
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
        jobs: (1..=2)
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
            machines: vec![machine("TURN-01"), machine("TURN-02")],
            orders: OrderCounts::of(&[]),
            kpis: Kpis::compute(&aifactory_core::KpiInputs::default()),
            recent_events: Vec::new(),
        },
        orders: Vec::new(),
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
    state: Arc<AppState>,
    store: Store,
    commands: Arc<Mutex<Vec<aifactory_plant::Command>>>,
    /// Seconds the server's clock reads.
    clock: Arc<AtomicU64>,
    tokens: Vec<(Role, String)>,
    _publisher: Publisher,
}

impl Server {
    fn token(&self, role: Role) -> String {
        self.tokens
            .iter()
            .find(|t| t.0 == role)
            .map(|t| t.1.clone())
            .expect("token")
    }

    fn advance(&self, by: Duration) {
        self.clock.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

/// A server over `store` with users `admin` and `ana` (operator), a token per role, the live
/// view above, and the agent (offline planner) attached. Tokens and users the store keeps are
/// restored, as `serve` does at start.
async fn server_on(store: Store) -> Server {
    let mut accounts = Accounts::new();
    accounts
        .add_user("admin", ADMIN_PASSWORD, Role::Admin)
        .expect("admin");
    accounts
        .add_user("ana", "ana-password-1", Role::Operator)
        .expect("ana");
    for kept in store.tokens().await.expect("tokens") {
        accounts.restore_token(&kept).expect("role");
    }
    let tokens = Role::ALL
        .iter()
        .map(|&r| {
            let name = format!("{r:?}").to_lowercase();
            (r, accounts.issue(&name, r, TokenKind::Api, T0, YEAR).token)
        })
        .collect();
    let commands = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&commands);
    let (live, publisher) = Live::new(Some(Arc::new(move |c: aifactory_plant::Command| {
        sink.lock().expect("sink").push(c);
        Ok(())
    })));
    publisher.snapshot(snapshot());
    let clock = Arc::new(AtomicU64::new(1_000));
    let ticks = Arc::clone(&clock);
    let state = AppState::new(
        store.clone(),
        accounts,
        Arc::new(move || Duration::from_secs(ticks.load(Ordering::SeqCst))),
        live,
        T0,
    );
    let agent = Agent::new(
        store.clone(),
        Arc::new(aifactory_server::agent::PlantAccess::new(&state)),
        Arc::new(Manuals::sample().expect("manuals")),
        Policy::default(),
        None,
        Arc::new(|| Timestamp(T0 + 5_000)),
        42,
    );
    assert!(state.set_agent(Arc::new(agent)));
    Server {
        app: router(Arc::clone(&state)),
        state,
        store,
        commands,
        clock,
        tokens,
        _publisher: publisher,
    }
}

async fn server() -> Server {
    server_on(Store::open_in_memory().await.expect("store")).await
}

fn from(last_octet: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet))
}

/// A request as a client at `client` sends it (the connection info `serve` attaches).
fn request(
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    client: IpAddr,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let mut req = builder
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(client, 40_000)));
    req
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.clone().oneshot(req).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("body");
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn call(
    s: &Server,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, body) = send(&s.app, request(method, uri, token, body, from(1))).await;
    (status, body)
}

async fn login(s: &Server, name: &str, password: &str, client: IpAddr) -> (StatusCode, Value) {
    let body = json!({ "username": name, "password": password });
    let (status, _, body) = send(
        &s.app,
        request("POST", "/api/v1/login", None, Some(body), client),
    )
    .await;
    (status, body)
}

async fn what_if(s: &Server, token: &str, machine: &str, hours: f64) -> String {
    let (status, body) = call(
        s,
        "POST",
        "/api/v1/schedule/what-if",
        Some(token),
        Some(json!({ "machine_down": machine, "hours": hours })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["proposal"].as_str().expect("proposal id").to_owned()
}

async fn proposals(s: &Server) -> Vec<Value> {
    let (status, body) = call(
        s,
        "GET",
        "/api/v1/proposals",
        Some(&s.token(Role::Viewer)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["proposals"].as_array().cloned().unwrap_or_default()
}

// Finding 1 (high): approving one proposal could approve another.

#[tokio::test]
async fn finding_1_approving_a_proposal_never_approves_another_past_a_thousand() {
    let s = server().await;
    let operator = s.token(Role::Operator);
    for _ in 0..1_001 {
        what_if(&s, &operator, "TURN-01", 300.0).await;
    }
    // The proposal an operator means to approve: a short stop of the other machine.
    let mine = what_if(&s, &operator, "TURN-02", 2.0).await;
    let (status, approved) = call(
        &s,
        "POST",
        &format!("/api/v1/proposals/{mine}/approve"),
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["proposal"]["machine"], "TURN-02", "{approved}");
    assert_eq!(
        s.commands
            .lock()
            .expect("commands")
            .iter()
            .map(|c| c.action.clone())
            .collect::<Vec<_>>(),
        vec![aifactory_plant::Action::StartMaintenance {
            machine: "TURN-02".into()
        }],
        "only the approved proposal reaches the plant"
    );
    let decision = approved["decision"].as_str().expect("decision");
    let stored = s
        .store
        .decision(decision)
        .await
        .expect("store")
        .expect("ledger");
    assert_eq!(stored.output["machine"], "TURN-02");
    assert_eq!(stored.output["planned_hours"], 2.0);
    // Every id names one proposal.
    let mut ids: Vec<String> = proposals(&s)
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let listed = ids.len();
    assert_eq!(
        listed, 1_002,
        "every pending proposal is listed, however many"
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), listed, "no id twice");
}

#[tokio::test]
async fn finding_1_pending_proposals_survive_a_restart_and_ids_are_never_reused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("serve.sqlite");
    let path = path.to_str().expect("utf-8");
    let before = server_on(Store::open(path).await.expect("store")).await;
    let first = what_if(&before, &before.token(Role::Operator), "TURN-01", 4.0).await;
    drop(before);

    let after = server_on(Store::open(path).await.expect("store")).await;
    let operator = after.token(Role::Operator);
    let listed = proposals(&after).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], first.as_str());
    assert_eq!(listed[0]["status"], "pending");
    assert_eq!(listed[0]["by"], "operator", "who asked is kept");
    let second = what_if(&after, &operator, "TURN-02", 1.0).await;
    assert_ne!(second, first, "a restart does not start the numbers again");
    let (status, approved) = call(
        &after,
        "POST",
        &format!("/api/v1/proposals/{first}/approve"),
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["proposal"]["machine"], "TURN-01");
}

#[tokio::test]
async fn finding_1_approvals_racing_for_one_proposal_act_once() {
    let s = server().await;
    let operator = s.token(Role::Operator);
    let id = what_if(&s, &operator, "TURN-01", 3.0).await;
    let uri = format!("/api/v1/proposals/{id}/approve");
    let answers = futures_util::future::join_all(
        (0..8).map(|_| call(&s, "POST", &uri, Some(&operator), None)),
    )
    .await;
    let ok = answers.iter().filter(|a| a.0 == StatusCode::OK).count();
    let conflict = answers
        .iter()
        .filter(|a| a.0 == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflict), (1, 7), "{answers:?}");
    assert_eq!(s.commands.lock().expect("commands").len(), 1);
}

// Finding 2: the matrix was bypassed through the agent's tools.

#[tokio::test]
async fn finding_2_a_viewer_makes_no_proposal_through_the_agent_on_any_path() {
    let s = server().await;
    let viewer = s.token(Role::Viewer);
    let args = json!({ "machine": "TURN-01", "hours": 300 });
    let (status, body) = call(
        &s,
        "POST",
        "/api/v1/agent/tools/schedule_what_if",
        Some(&viewer),
        Some(args.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "refused", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("POST /api/v1/schedule/what-if")),
        "{body}"
    );
    // The offline planner, asked by a viewer, is held to the same rule.
    let (status, answer) = call(
        &s,
        "POST",
        "/api/v1/agent/ask",
        Some(&viewer),
        Some(json!({ "question": "What if TURN-01 is down for 6 hours?" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // And over MCP.
    let mcp = mcp_session(&s, &viewer).await;
    let (status, text) = mcp_call(
        &s,
        &viewer,
        &mcp,
        json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": { "name": "schedule_what_if", "arguments": args } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("may not use"), "{text}");
    assert!(
        proposals(&s).await.is_empty(),
        "a viewer made no proposal by any path"
    );

    // An operator's call through the agent is recorded as the operator's.
    let operator = s.token(Role::Operator);
    let (status, body) = call(
        &s,
        "POST",
        "/api/v1/agent/tools/schedule_what_if",
        Some(&operator),
        Some(json!({ "machine": "TURN-01", "hours": 2 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "done", "{body}");
    let listed = proposals(&s).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["by"], "operator", "{listed:?}");
    assert_eq!(listed[0]["role"], "operator", "{listed:?}");
    assert!(
        listed[0]["via"]
            .as_str()
            .is_some_and(|v| v.starts_with("agent")),
        "{listed:?}"
    );
}

// Finding 3: the failed-login table grew without bound.

#[tokio::test]
async fn finding_3_failed_logins_with_huge_names_leave_nothing_behind() {
    let s = server().await;
    let long = "n".repeat(60_000);
    for i in 0..300u16 {
        let client = IpAddr::V4(Ipv4Addr::new(127, 1, (i >> 8) as u8, i as u8));
        let (status, body) = login(&s, &format!("{long}{i}"), "x", client).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (_, names) = s.state.accounts.lock().expect("accounts").limiter_entries();
    assert_eq!(names, 0, "names longer than any user's are not remembered");
}

// Finding 4: bearer tokens could not be ended.

#[tokio::test]
async fn finding_4_logout_ends_a_bearer_token() {
    let s = server().await;
    let (status, body) = login(&s, "admin", ADMIN_PASSWORD, from(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    let (status, _) = call(&s, "GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&s, "POST", "/api/v1/logout", Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&s, "GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn finding_4_login_tokens_expire() {
    let s = server().await;
    let (status, body) = login(&s, "ana", "ana-password-1", from(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    s.advance(Duration::from_secs(12 * 3600 - 1));
    let (status, _) = call(&s, "GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "still valid just before 12 h");
    s.advance(Duration::from_secs(2));
    let (status, _) = call(&s, "GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "ended after 12 h");
}

#[tokio::test]
async fn finding_4_an_admin_lists_and_revokes_tokens_and_they_stay_revoked() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("serve.sqlite");
    let path = path.to_str().expect("utf-8");
    let s = server_on(Store::open(path).await.expect("store")).await;
    let admin = s.token(Role::Admin);
    let (status, issued) = call(
        &s,
        "POST",
        "/api/v1/tokens",
        Some(&admin),
        Some(json!({ "user": "grafana", "role": "viewer", "expires_in_days": 30 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let secret = issued["token"].as_str().expect("token").to_owned();
    let id = issued["id"].as_str().expect("id").to_owned();
    // Only an admin lists tokens, and a list never shows a secret or its hash.
    let (status, _) = call(
        &s,
        "GET",
        "/api/v1/tokens",
        Some(&s.token(Role::Operator)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list) = call(&s, "GET", "/api/v1/tokens", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let text = list.to_string();
    assert!(!text.contains(&secret), "{text}");
    assert!(
        !text.contains(&aifactory_server::auth::token_hash(&secret)),
        "{text}"
    );
    let listed = list["tokens"]
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"] == id.as_str()).cloned())
        .expect("listed");
    assert_eq!(listed["state"], "active", "{listed}");
    assert_eq!(listed["user"], "grafana");
    let (status, _) = call(&s, "GET", "/api/v1/me", Some(&secret), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, revoked) = call(
        &s,
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["token"]["state"], "revoked");
    let (status, _) = call(&s, "GET", "/api/v1/me", Some(&secret), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &s,
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = call(&s, "DELETE", "/api/v1/tokens/tok-nope", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(s);
    // After a restart the revoked token stays dead.
    let s = server_on(Store::open(path).await.expect("store")).await;
    let (status, _) = call(&s, "GET", "/api/v1/me", Some(&secret), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An issued token ends after the days it was given.
    let admin = s.token(Role::Admin);
    let (_, issued) = call(
        &s,
        "POST",
        "/api/v1/tokens",
        Some(&admin),
        Some(json!({ "user": "mes", "role": "operator", "expires_in_days": 1 })),
    )
    .await;
    let short = issued["token"].as_str().expect("token").to_owned();
    s.advance(Duration::from_secs(86_400 + 1));
    let (status, _) = call(&s, "GET", "/api/v1/me", Some(&short), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, bad) = call(
        &s,
        "POST",
        "/api/v1/tokens",
        Some(&admin),
        Some(json!({ "user": "mes", "role": "operator", "expires_in_days": 0 })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["field"], "expires_in_days");
}

// Finding 5: user names leaked by timing.

#[tokio::test]
async fn finding_5_an_unknown_name_takes_as_long_as_a_known_one() {
    let s = server().await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    // Each attempt from its own address, so no limiter interferes.
    for i in 0..4u8 {
        let started = std::time::Instant::now();
        let (status, _) = login(&s, "ana", "wrong-password", from(10 + i)).await;
        known.push(started.elapsed());
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let started = std::time::Instant::now();
        let (status, _) = login(&s, &format!("nobody{i}"), "wrong-password", from(20 + i)).await;
        unknown.push(started.elapsed());
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    known.sort();
    unknown.sort();
    // Medians: the same argon2 work on both paths; a gap of a factor of four would be noise
    // only on a machine far busier than any test run's.
    let (k, u) = (known[2], unknown[2]);
    assert!(
        u * 4 >= k,
        "unknown name {u:?} against known name {k:?}: the timing tells names apart"
    );
}

// Finding 6: anyone could keep `admin` locked out; argon2 held the workers and the lock.

#[tokio::test]
async fn finding_6_failures_from_one_address_do_not_lock_out_another() {
    let s = server().await;
    for _ in 0..5 {
        let (status, _) = login(&s, "admin", "guess", from(66)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let body = json!({ "username": "admin", "password": ADMIN_PASSWORD });
    let (status, headers, body) = send(
        &s.app,
        request("POST", "/api/v1/login", None, Some(body), from(66)),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let wait: u64 = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header");
    assert!((1..=60).contains(&wait), "{wait}");
    let (status, body) = login(&s, "admin", ADMIN_PASSWORD, from(1)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the admin's own address still gets in: {body}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn finding_6_password_checks_do_not_hold_up_other_requests() {
    let s = server().await;
    let operator = s.token(Role::Operator);
    let order = Arc::new(Mutex::new(Vec::new()));
    let logins = (0..3u8).map(|i| {
        let order = Arc::clone(&order);
        let s = &s;
        async move {
            login(s, "ana", "ana-password-1", from(30 + i)).await;
            order.lock().expect("order").push("login");
        }
    });
    let read = {
        let order = Arc::clone(&order);
        let s = &s;
        let operator = operator.clone();
        async move {
            let (status, _) = call(s, "GET", "/api/v1/me", Some(&operator), None).await;
            assert_eq!(status, StatusCode::OK);
            order.lock().expect("order").push("me");
        }
    };
    // One worker thread: a password check that ran on it would finish before the read.
    futures_util::future::join(futures_util::future::join_all(logins), read).await;
    let order = order.lock().expect("order").clone();
    assert_eq!(order.first(), Some(&"me"), "{order:?}");
}

// Finding 7: a hidden file was served with backslashes in its path.

#[tokio::test]
async fn finding_7_hidden_files_stay_hidden_however_the_path_is_written() {
    let s = server().await;
    for uri in [
        "/ui/vendor%5Cecharts-build%5Cbuild.sh",
        "/ui/vendor/echarts-build/build.sh",
        "/ui/vendor//echarts-build/entry.js",
        "/ui/./vendor/echarts-build/entry.js",
        "/ui/vendor%5C..%5Cindex.html",
    ] {
        let (status, _, _) = send(&s.app, request("GET", uri, None, None, from(1))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
    let (status, _, _) = send(&s.app, request("GET", "/ui/i18n.js", None, None, from(1))).await;
    assert_eq!(status, StatusCode::OK);
}

// Finding 8: raw telemetry read the whole range before cutting it.

#[tokio::test]
async fn finding_8_telemetry_ranges_are_bounded_before_anything_is_read() {
    let s = server().await;
    let series = SeriesName {
        site: "test-plant".into(),
        node: "twin".into(),
        device: "TURN-01".into(),
        metric: "vibration_mm_s".into(),
    };
    let samples = (0..100)
        .map(|i| Sample {
            series: series.clone(),
            at_ms: T0 + i * 1_000,
            value: 1.0,
        })
        .collect();
    s.store
        .commit_ingest(
            &IngestBatch {
                messages: vec![IngestMessage {
                    key: Some([7; 16]),
                    samples,
                    others: Vec::new(),
                }],
                quarantined: Vec::new(),
            },
            T0,
        )
        .await
        .expect("ingest");
    let viewer = s.token(Role::Viewer);
    let base = "/api/v1/telemetry?machine=TURN-01&signal=vibration_mm_s";
    // (query, status): each resolution answers up to its widest range, and no further.
    for (query, want) in [
        ("&from=0001-01-01T00:00:00Z", StatusCode::BAD_REQUEST),
        (
            "&from=2025-01-01T00:00:00Z&bucket=minute",
            StatusCode::BAD_REQUEST,
        ),
        (
            "&from=2015-01-01T00:00:00Z&bucket=hour",
            StatusCode::BAD_REQUEST,
        ),
        ("&from=2020-01-01T00:00:00Z&bucket=hour", StatusCode::OK),
    ] {
        let (status, body) = call(&s, "GET", &format!("{base}{query}"), Some(&viewer), None).await;
        assert_eq!(status, want, "{query}: {body}");
        if want == StatusCode::BAD_REQUEST {
            assert_eq!(body["field"], "from", "{query}: {body}");
        }
    }
    let (status, body) = call(
        &s,
        "GET",
        &format!("{base}&from=2026-03-01T00:00:00Z&to=2026-03-02T01:00:00Z"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["points"].as_array().map(Vec::len), Some(100), "{body}");
}

// Finding 9: MCP session ids were not tied to the token that opened them.

/// Opens an MCP session over streamable HTTP as `token`; its id.
async fn mcp_session(s: &Server, token: &str) -> String {
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {},
        "clientInfo": { "name": "security-test", "version": "1" } } });
    let response = s
        .app
        .clone()
        .oneshot(mcp_request(token, None, &init))
        .await
        .expect("response");
    let status = response.status();
    if status != StatusCode::OK {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        panic!("initialize: {status} {}", String::from_utf8_lossy(&bytes));
    }
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let response = s
        .app
        .clone()
        .oneshot(mcp_request(token, Some(&session), &initialized))
        .await
        .expect("response");
    assert!(response.status().is_success(), "{}", response.status());
    session
}

fn mcp_request(token: &str, session: Option<&str>, body: &Value) -> Request<Body> {
    let mut builder = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if let Some(id) = session {
        builder = builder.header("mcp-session-id", id);
    }
    builder.body(Body::from(body.to_string())).expect("request")
}

/// Sends one JSON-RPC request in a session; the status and the text until its answer arrives.
async fn mcp_call(s: &Server, token: &str, session: &str, body: Value) -> (StatusCode, String) {
    use futures_util::StreamExt;
    let response = s
        .app
        .clone()
        .oneshot(mcp_request(token, Some(session), &body))
        .await
        .expect("response");
    let status = response.status();
    let mut stream = response.into_body().into_data_stream();
    let mut text = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\"result\"") || text.contains("\"error\"") {
                break;
            }
        }
    })
    .await;
    (status, text)
}

#[tokio::test]
async fn finding_9_an_mcp_session_answers_only_the_credential_that_opened_it() {
    let s = server().await;
    let operator = s.token(Role::Operator);
    let engineer = s.token(Role::Engineer);
    let session = mcp_session(&s, &operator).await;
    let list = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/list" });
    let (status, text) = mcp_call(&s, &engineer, &session, list.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another's token: {text}");
    let (status, text) = mcp_call(&s, &operator, &session, list).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("schedule_what_if"), "{text}");
}
