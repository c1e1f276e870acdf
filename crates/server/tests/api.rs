//! The API against a real (in-memory SQLite) store: the authorisation matrix route by route and
//! role by role, unauthenticated refusals, logins, and bad requests answered with the field.

use aifactory_server::auth::{Access, Accounts, MATRIX, Role, TokenKind};
use aifactory_server::{AppState, BODY_LIMIT, router};
use aifactory_store::Store;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower::ServiceExt;

const YEAR: Duration = Duration::from_secs(365 * 86_400);

struct Server {
    app: axum::Router,
    tokens: Vec<(Role, String)>,
    clock_s: Arc<AtomicU64>,
}

async fn server() -> Server {
    server_on(Store::open_in_memory().await.expect("store")).await
}

async fn server_on(store: Store) -> Server {
    let mut accounts = Accounts::new();
    accounts
        .add_user("admin", "correct horse battery", Role::Admin)
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
    let clock_s = Arc::new(AtomicU64::new(1_000));
    let clock = Arc::clone(&clock_s);
    let state = AppState::new(
        store,
        accounts,
        Arc::new(move || Duration::from_secs(clock.load(Ordering::Relaxed))),
        aifactory_server::live::Live::none(),
        1,
    );
    Server {
        app: router(state),
        tokens,
        clock_s,
    }
}

impl Server {
    fn token(&self, role: Role) -> &str {
        self.tokens
            .iter()
            .find(|t| t.0 == role)
            .map(|t| t.1.as_str())
            .expect("a token per role")
    }

    /// The administrator's login with the right password.
    async fn admin_login(&self) -> (StatusCode, serde_json::Value) {
        call(
            &self.app,
            "POST",
            "/api/v1/login",
            None,
            valid_body("/api/v1/login"),
        )
        .await
    }
}

/// A request body each POST route accepts.
fn valid_body(route: &str) -> String {
    match route {
        "/api/v1/login" | "/api/v1/session" => {
            r#"{"username":"admin","password":"correct horse battery"}"#.into()
        }
        "/api/v1/schedule/what-if" => r#"{"machine_down":"TURN-01","hours":4}"#.into(),
        "/api/v1/tokens" => r#"{"user":"dashboard","role":"viewer"}"#.into(),
        _ => String::new(),
    }
}

/// A URI the route pattern matches.
fn concrete(route: &str) -> String {
    route
        .replace("{*path}", "app.js")
        .replace("{id}", "TURN-01")
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: String,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(concrete(uri));
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test]
async fn a_ledger_edited_around_the_store_earns_no_tier_and_the_answer_names_the_row() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("plant.db");
    let store = Store::open_path(&path).await.expect("store");
    for (i, id) in ["D-1", "D-2", "D-3"].into_iter().enumerate() {
        store
            .record_decision(&aifactory_core::Decision {
                id: id.into(),
                at: aifactory_core::Timestamp(i as i64),
                skill: "scheduling".into(),
                stage: aifactory_core::LifecycleStage::Production,
                inputs_ref: "floor".into(),
                model: "aps".into(),
                model_version: "1".into(),
                output: serde_json::json!({"jobs": i}),
                confidence: None,
                executed_by: aifactory_core::ExecutedBy::Auto,
                outcome: None,
            })
            .await
            .expect("recorded");
    }
    let s = server_on(store).await;
    let viewer = s.token(Role::Viewer);
    let (status, body) = call(
        &s.app,
        "GET",
        "/api/v1/assessment",
        Some(viewer),
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stages"][2]["decisions"], 3, "{body}");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("raw client");
    sqlx::raw_sql(
        "DROP TRIGGER decisions_append_only_update; \
         UPDATE decisions SET output = '{\"jobs\":9}' WHERE id = 'D-2'",
    )
    .execute(&mut conn)
    .await
    .expect("the intruder's edit");
    conn.close().await.expect("closed");
    let (status, body) = call(
        &s.app,
        "GET",
        "/api/v1/assessment",
        Some(viewer),
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ledger row 2") && error.contains("decision D-2"),
        "{error}"
    );
}

#[tokio::test]
async fn nothing_but_health_and_login_without_a_token() {
    let s = server().await;
    for (method, route, access) in MATRIX {
        let (status, body) = call(&s.app, method, route, None, valid_body(route)).await;
        match access {
            Access::Public => assert!(status.is_success(), "{method} {route}: {status} {body}"),
            Access::Roles(_) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {route}");
                assert!(
                    body["error"].as_str().is_some_and(|e| e.contains("Bearer")),
                    "{body}"
                );
            }
        }
        // A made-up token is no better than none.
        if let Access::Roles(_) = access {
            let (status, _) = call(&s.app, method, route, Some("forged"), valid_body(route)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {route}");
        }
    }
}

#[tokio::test]
async fn every_route_for_every_role_follows_the_matrix() {
    let s = server().await;
    // Logging out ends the token it is sent with: that route comes last.
    let logout = |r: &&(&str, &str, Access)| r.1 == "/api/v1/logout";
    let ordered = MATRIX
        .iter()
        .filter(|r| !logout(r))
        .chain(MATRIX.iter().filter(logout));
    for (method, route, access) in ordered {
        let Access::Roles(allowed) = access else {
            continue;
        };
        for (role, token) in &s.tokens {
            let (status, body) = call(&s.app, method, route, Some(token), valid_body(route)).await;
            if allowed.contains(role) {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{role:?} {method} {route}: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role:?} {method} {route}: {body}"
                );
                assert!(body["error"].as_str().is_some(), "{body}");
            }
        }
    }
    // Routes outside the matrix are refused or unknown, never served.
    let admin = &s
        .tokens
        .iter()
        .find(|t| t.0 == Role::Admin)
        .expect("admin")
        .1;
    let (status, _) = call(&s.app, "GET", "/api/v1/nothing", Some(admin), String::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&s.app, "DELETE", "/api/v1/kpis", Some(admin), String::new()).await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::METHOD_NOT_ALLOWED,
        "{status}"
    );
}

#[tokio::test]
async fn login_gives_a_token_and_failures_are_rate_limited() {
    let s = server().await;
    let (status, body) = s.admin_login().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "admin");
    let token = body["token"].as_str().expect("token").to_owned();
    let (status, me) = call(&s.app, "GET", "/api/v1/me", Some(&token), String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"], "admin");
    let wrong = r#"{"username":"admin","password":"guess"}"#;
    for _ in 0..5 {
        let (status, body) = call(&s.app, "POST", "/api/v1/login", None, wrong.into()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, body) = s.admin_login().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // A minute later the window has passed.
    s.clock_s.fetch_add(61, Ordering::Relaxed);
    let (status, _) = s.admin_login().await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_get_a_clear_4xx_naming_the_field() {
    let s = server().await;
    let cases = [
        (r#"{"username":"admin"}"#, Some("password")),
        (
            r#"{"username":"admin","password":"x","extra":1}"#,
            Some("extra"),
        ),
        (r#"{"username":7,"password":"x"}"#, Some("username")),
        ("{not json", None),
    ];
    for (body, field) in cases {
        let (status, json) = call(&s.app, "POST", "/api/v1/login", None, body.into()).await;
        assert!(status.is_client_error(), "{body}: {status}");
        assert!(json["error"].as_str().is_some(), "{body}: {json}");
        if let Some(f) = field {
            assert_eq!(json["field"], f, "{body}: {json}");
        }
    }
    let viewer = s.token(Role::Viewer);
    for uri in ["/api/v1/decisions?limit=0", "/api/v1/decisions?limit=many"] {
        let (status, json) = call(&s.app, "GET", uri, Some(viewer), String::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {json}");
        assert_eq!(json["field"], "limit", "{uri}: {json}");
    }
    let admin = &s
        .tokens
        .iter()
        .find(|t| t.0 == Role::Admin)
        .expect("admin")
        .1;
    let (status, json) = call(
        &s.app,
        "POST",
        "/api/v1/tokens",
        Some(admin),
        r#"{"user":"","role":"viewer"}"#.into(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(json["field"], "user");
    let (status, json) = call(
        &s.app,
        "POST",
        "/api/v1/tokens",
        Some(admin),
        r#"{"user":"x","role":"superuser"}"#.into(),
    )
    .await;
    assert!(status.is_client_error(), "{json}");
    // Bodies over the limit are refused before any handler.
    let huge = format!(
        r#"{{"username":"{}","password":"x"}}"#,
        "a".repeat(BODY_LIMIT + 1)
    );
    let (status, _) = call(&s.app, "POST", "/api/v1/login", None, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn reads_answer_from_the_store_and_metrics_count_them() {
    let s = server().await;
    let viewer = s.token(Role::Viewer);
    let (status, body) = call(&s.app, "GET", "/api/v1/kpis", Some(viewer), String::new()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an empty store has no KPIs: {body}"
    );
    let (status, body) = call(
        &s.app,
        "GET",
        "/api/v1/decisions",
        Some(viewer),
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decisions"], serde_json::json!([]));
    let (status, body) = call(
        &s.app,
        "GET",
        "/api/v1/assessment",
        Some(viewer),
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tier"], 0, "{body}");
    let operator = &s
        .tokens
        .iter()
        .find(|t| t.0 == Role::Operator)
        .expect("op")
        .1;
    let response = s
        .app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .header(header::AUTHORIZATION, format!("Bearer {operator}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body")
            .to_vec(),
    )
    .expect("utf-8");
    assert!(
        text.contains(r#"aifactory_http_requests_total{route="/api/v1/kpis",status="404"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_api_route_of_the_matrix() {
    let s = server().await;
    let viewer = s.token(Role::Viewer);
    let (status, doc) = call(
        &s.app,
        "GET",
        "/api/v1/openapi.json",
        Some(viewer),
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    for (method, route, _) in MATRIX {
        if *route == "/" || route.starts_with("/ui/") || *route == "/mcp" {
            continue; // the web UI's files, and MCP's own JSON-RPC protocol: not this API
        }
        let op = &paths
            .get(*route)
            .unwrap_or_else(|| panic!("{route} is not documented"))[method.to_lowercase()];
        assert!(op.is_object(), "{method} {route} is not documented");
    }
    // And nothing is documented that the matrix does not let someone call.
    for (route, ops) in paths {
        for method in ops.as_object().expect("operations").keys() {
            assert!(
                MATRIX
                    .iter()
                    .any(|(m, r, _)| r == route && m.eq_ignore_ascii_case(method)),
                "{method} {route} is documented but not in the matrix"
            );
        }
    }
}

#[tokio::test]
async fn the_web_ui_is_served_from_the_binary_and_nothing_else_is() {
    let s = server().await;
    for (uri, status) in [
        ("/", StatusCode::OK),
        ("/ui/vendor/echarts.min.js", StatusCode::OK),
        ("/ui/i18n.js", StatusCode::OK),
        ("/ui/vendor/echarts-build/entry.js", StatusCode::NOT_FOUND),
        ("/ui/../Cargo.toml", StatusCode::NOT_FOUND),
        ("/ui/nothing.js", StatusCode::NOT_FOUND),
    ] {
        let response = s
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(response.status(), status, "{uri}");
    }
}
