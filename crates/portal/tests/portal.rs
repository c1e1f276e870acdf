//! The portal against the real PostgreSQL named by `AIFACTORY_TEST_PG_URL` (each test in a
//! fresh schema, dropped afterwards even when the test fails); without the variable every test
//! says it skipped and passes.
//!
//! Requests go through the real router (authorisation matrix, tokens, JSON) into the real
//! database with its row-level security; a few checks bypass the API and speak SQL in a
//! tenant's settings, to show the database refuses on its own. Every test ends by checking that
//! the books balance.

use aifactory_portal::http::{Access, MATRIX, router};
use aifactory_portal::seed::{self, CitySpec};
use aifactory_portal::{Clock, Portal};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use tower::ServiceExt;

const PG_URL_VAR: &str = "AIFACTORY_TEST_PG_URL";

/// 2026-06-01T00:00:00+08:00: the tests' "now", moved by hand where a test needs time to pass.
const JUNE_1: i64 = 1_780_243_200_000;

struct World {
    portal: Portal,
    app: Router,
    clock: Arc<AtomicI64>,
    url: String,
    spec: CitySpec,
    plants: Vec<seed::CityPlant>,
}

/// The tokens of the fixture's users.
const OFFICER: &str = "t-officer";
const ASSESSOR: &str = "t-assessor";
const PLANT_A: &str = "t-plant-a";
const PLANT_B: &str = "t-plant-b";
const PROVIDER_P: &str = "t-provider-p";
const PROVIDER_Q: &str = "t-provider-q";

fn unique_schema() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "aifactory_portal_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn pg_admin(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
    let _ = conn.close().await;
}

/// Runs `body` against a fresh portal in a schema of its own, then drops the schema whatever
/// happened, then fails if the body failed.
async fn with_portal<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Arc<World>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
        println!("skipped {test}: {PG_URL_VAR} is not set");
        return;
    };
    let schema = unique_schema();
    pg_admin(&admin_url, &format!("CREATE SCHEMA {schema}")).await;
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options[search_path]={schema}");
    let clock = Arc::new(AtomicI64::new(JUNE_1));
    let reader = clock.clone();
    let clock_fn: Clock = Arc::new(move || reader.load(Ordering::SeqCst));
    let outcome = async {
        let portal = Portal::open(&url, 16, clock_fn)
            .await
            .unwrap_or_else(|e| panic!("opening the portal: {e}"));
        let spec = CitySpec {
            plants: 40,
            providers: 4,
            ..CitySpec::default()
        };
        let world = Arc::new(World {
            app: router(portal.clone()),
            portal: portal.clone(),
            clock,
            url: url.clone(),
            spec,
            plants: seed::city(&spec),
        });
        fixture(&world).await;
        let result = tokio::spawn(body(world.clone())).await;
        if result.is_ok() {
            assert_balanced(&world).await;
        }
        portal.close().await;
        result
    }
    .await;
    pg_admin(&admin_url, &format!("DROP SCHEMA {schema} CASCADE")).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Calls the API as the holder of `token` (none: no header); returns status and JSON body.
async fn call(
    world: &World,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_raw(
        world,
        token,
        method,
        path,
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

async fn call_raw(
    world: &World,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Body::from(body.unwrap_or_default()))
        .expect("a request");
    let response = world
        .app
        .clone()
        .oneshot(request)
        .await
        .expect("a response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

async fn expect(
    world: &World,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
) -> Value {
    let (got, value) = call(world, Some(token), method.clone(), path, body).await;
    assert_eq!(got, status, "{method} {path} as {token}: {value}");
    value
}

/// Two plants (A, B), two providers (P, Q), a user of each role, a budget, a voucher and a
/// need per plant, and a first verified bundle per plant.
async fn fixture(world: &World) {
    use aifactory_portal::{NewUser, Role};
    let system = aifactory_portal::Caller::system();
    let (a, b) = (&world.plants[0], &world.plants[1]);
    for (p, revenue) in [(a, 150.0), (b, 8.5)] {
        world
            .portal
            .register_plant(
                &system,
                &aifactory_portal::NewPlant {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    industry: p.industry.clone(),
                    district: p.district.clone(),
                    revenue_myuan: revenue,
                    public_key: None,
                },
            )
            .await
            .expect("register plant");
    }
    for (id, scenario) in [
        ("SP-P", "predictive-maintenance"),
        ("SP-Q", "demand-forecasting"),
    ] {
        world
            .portal
            .register_provider(
                &system,
                &aifactory_portal::NewProvider {
                    id: id.into(),
                    name: format!("Provider {id}"),
                    offers: vec![aifactory_portal::Offer {
                        scenario: scenario.into(),
                        stage: None,
                    }],
                },
            )
            .await
            .expect("register provider");
    }
    let users = [
        (OFFICER, "officer", Role::Officer, None, None),
        (ASSESSOR, "assessor", Role::Assessor, None, None),
        (PLANT_A, "plant-a", Role::Plant, Some(a.id.clone()), None),
        (PLANT_B, "plant-b", Role::Plant, Some(b.id.clone()), None),
        (
            PROVIDER_P,
            "prov-p",
            Role::Provider,
            None,
            Some("SP-P".to_owned()),
        ),
        (
            PROVIDER_Q,
            "prov-q",
            Role::Provider,
            None,
            Some("SP-Q".to_owned()),
        ),
    ];
    for (token, name, role, plant, provider) in users {
        world
            .portal
            .add_user_with_token(
                &system,
                &NewUser {
                    name: name.into(),
                    role,
                    plant,
                    provider,
                },
                token,
            )
            .await
            .expect("add user");
    }
    expect(
        world,
        OFFICER,
        Method::POST,
        "/api/v1/budgets",
        Some(
            json!({"id": "compute-2026", "category": "compute", "year": 2026,
                    "amount": "1000000.00", "max_share_pct": 30, "cap_per_firm": "300000"}),
        ),
        StatusCode::CREATED,
    )
    .await;
    for (plant, provider) in [(a, "SP-P"), (b, "SP-Q")] {
        expect(
            world,
            OFFICER,
            Method::POST,
            "/api/v1/vouchers",
            Some(
                json!({"budget": "compute-2026", "plant": plant.id, "amount": "50000",
                        "expires_at_ms": JUNE_1 + 180 * 86_400_000_i64, "provider": provider}),
            ),
            StatusCode::CREATED,
        )
        .await;
    }
    for (token, scenario) in [
        (PLANT_A, "predictive-maintenance"),
        (PLANT_B, "demand-forecasting"),
    ] {
        expect(
            world,
            token,
            Method::POST,
            "/api/v1/needs",
            Some(json!({"scenario": scenario, "title": "help wanted"})),
            StatusCode::CREATED,
        )
        .await;
    }
    for (token, plant) in [(PLANT_A, a), (PLANT_B, b)] {
        let bytes = serde_json::to_vec(&seed::bundle(plant, &world.spec, 1).unwrap()).unwrap();
        let (status, body) = call_raw(
            world,
            Some(token),
            Method::POST,
            &format!("/api/v1/plants/{}/evidence", plant.id),
            Some(bytes),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// The books balance: every journal sums to zero, every voucher matches its account.
async fn assert_balanced(world: &World) {
    let (status, tb) = call(world, Some(OFFICER), Method::GET, "/api/v1/ledger", None).await;
    assert_eq!(status, StatusCode::OK, "{tb}");
    assert_eq!(tb["balanced"], json!(true), "books out of balance: {tb}");
    assert_eq!(tb["total"], json!("0.00"), "{tb}");
}

fn voucher_of(book: &Value, plant: &str) -> String {
    book["vouchers"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["plant"] == json!(plant)))
        .and_then(|v| v["id"].as_str())
        .unwrap_or_else(|| panic!("no voucher of {plant} in {book}"))
        .to_owned()
}

/// What the officer sees of every tenant: compared before and after an intrusion attempt.
async fn snapshot(world: &World) -> Value {
    let mut all = serde_json::Map::new();
    for path in [
        "/api/v1/plants",
        "/api/v1/vouchers",
        "/api/v1/needs",
        "/api/v1/providers",
        "/api/v1/budgets",
    ] {
        let v = expect(world, OFFICER, Method::GET, path, None, StatusCode::OK).await;
        all.insert(path.into(), v);
    }
    for p in &world.plants[..2] {
        let path = format!("/api/v1/plants/{}/evidence", p.id);
        let v = expect(world, OFFICER, Method::GET, &path, None, StatusCode::OK).await;
        all.insert(path, v);
    }
    Value::Object(all)
}

fn role_token(role: &str) -> &'static str {
    match role {
        "officer" => OFFICER,
        "assessor" => ASSESSOR,
        "plant" => PLANT_A,
        _ => PROVIDER_P,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_is_guarded_by_the_matrix() {
    with_portal("every_route_is_guarded_by_the_matrix", |w| async move {
        let plant = w.plants[0].id.clone();
        // Logging out ends the credential it is sent with: that route gets tokens of its own.
        for (role, plant, provider) in [
            (aifactory_portal::Role::Officer, None, None),
            (aifactory_portal::Role::Assessor, None, None),
            (aifactory_portal::Role::Plant, Some(plant.clone()), None),
            (
                aifactory_portal::Role::Provider,
                None,
                Some("SP-P".to_owned()),
            ),
        ] {
            w.portal
                .add_user_with_token(
                    &aifactory_portal::Caller::system(),
                    &aifactory_portal::NewUser {
                        name: format!("logout-{}", role.as_str()),
                        role,
                        plant,
                        provider,
                    },
                    &format!("t-logout-{}", role.as_str()),
                )
                .await
                .unwrap();
        }
        for (method, route, access) in MATRIX {
            let path = route
                .replace("{id}", if route.contains("needs") { "1" } else { &plant })
                .replace("{*path}", "portal.js");
            let method: Method = method.parse().unwrap();
            let Access::Roles(allowed) = access else {
                let (status, body) = call(&w, None, method.clone(), &path, None).await;
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {route} is public: {status} {body}"
                );
                continue;
            };
            let (status, body) = call(&w, None, method.clone(), &path, Some(json!({}))).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {route} without a token: {body}"
            );
            let (status, _) = call(
                &w,
                Some("not-a-token"),
                method.clone(),
                &path,
                Some(json!({})),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {route} with a bad token"
            );
            for role in ["officer", "assessor", "plant", "provider"] {
                let is_allowed = allowed.iter().any(|r| r.as_str() == role);
                let token = if *route == "/api/v1/logout" {
                    format!("t-logout-{role}")
                } else {
                    role_token(role).to_owned()
                };
                let (status, body) =
                    call(&w, Some(&token), method.clone(), &path, Some(json!({}))).await;
                if is_allowed {
                    assert!(
                        status != StatusCode::FORBIDDEN
                            || body["error"]
                                .as_str()
                                .is_some_and(|e| !e.contains("role may not call")),
                        "{method} {route} refused to {role}, who is in the matrix: {body}"
                    );
                    assert!(
                        !(status == StatusCode::NOT_FOUND
                            && body["error"] == json!("no such route"))
                            && status != StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {route} is in the matrix but not routed: {status}"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{method} {route} as {role}: {body}"
                    );
                }
            }
        }
        // A routed path under a method the matrix does not list is refused to everyone.
        let (status, _) = call(&w, Some(OFFICER), Method::DELETE, "/api/v1/plants", None).await;
        assert!(status == StatusCode::FORBIDDEN || status == StatusCode::METHOD_NOT_ALLOWED);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plant_cannot_read_or_change_another_plants_data_through_any_route() {
    with_portal("cross_tenant", |w| async move {
        let (a, b) = (w.plants[0].id.clone(), w.plants[1].id.clone());
        let before = snapshot(&w).await;
        let book = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/vouchers",
            None,
            StatusCode::OK,
        )
        .await;
        let (va, vb) = (voucher_of(&book, &a), voucher_of(&book, &b));
        let needs = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/needs",
            None,
            StatusCode::OK,
        )
        .await;
        let need_of = |plant: &str| {
            needs
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["plant"] == json!(plant))
                .unwrap()["id"]
                .as_i64()
                .unwrap()
        };
        let (need_b, need_a) = (need_of(&b), need_of(&a));

        // Reads: lists hold only A's rows; B's rows are refused or not found.
        let plants = expect(
            &w,
            PLANT_A,
            Method::GET,
            "/api/v1/plants",
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(plants.as_array().unwrap().len(), 1);
        assert_eq!(plants[0]["id"], json!(a));
        let filtered = expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/plants?district={}", w.plants[1].district),
            None,
            StatusCode::OK,
        )
        .await;
        assert!(
            filtered
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["id"] == json!(a))
        );
        expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/plants/{b}"),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
        expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/plants/{b}/evidence"),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
        let mine = expect(
            &w,
            PLANT_A,
            Method::GET,
            "/api/v1/vouchers",
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(mine["count"], json!(1));
        assert_eq!(mine["vouchers"][0]["plant"], json!(a));
        let theirs = expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/vouchers?plant={b}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(theirs["count"], json!(0), "{theirs}");
        expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/vouchers/{vb}"),
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
        let my_needs = expect(
            &w,
            PLANT_A,
            Method::GET,
            "/api/v1/needs",
            None,
            StatusCode::OK,
        )
        .await;
        assert!(
            my_needs
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["plant"] == json!(a))
        );
        assert_eq!(my_needs.as_array().unwrap().len(), 1);
        expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/needs/{need_b}/matches"),
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/needs/{need_a}/matches"),
            None,
            StatusCode::OK,
        )
        .await;

        // Writes aimed at B: refused, and nothing of B's changes.
        let b_bundle =
            serde_json::to_vec(&seed::bundle(&w.plants[1], &w.spec, 2).unwrap()).unwrap();
        let (status, _) = call_raw(
            &w,
            Some(PLANT_A),
            Method::POST,
            &format!("/api/v1/plants/{b}/evidence"),
            Some(b_bundle),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // B's bundle sent to A's own route is A's evidence refused (another plant's), not B's.
        let b_bundle =
            serde_json::to_vec(&seed::bundle(&w.plants[1], &w.spec, 2).unwrap()).unwrap();
        let (status, body) = call_raw(
            &w,
            Some(PLANT_A),
            Method::POST,
            &format!("/api/v1/plants/{a}/evidence"),
            Some(b_bundle),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        expect(
            &w,
            PLANT_A,
            Method::POST,
            &format!("/api/v1/vouchers/{vb}/provider"),
            Some(json!({"provider": "SP-P"})),
            StatusCode::NOT_FOUND,
        )
        .await;
        expect(
            &w,
            PLANT_A,
            Method::POST,
            "/api/v1/needs",
            Some(json!({"plant": b, "scenario": "anomaly-detection", "title": "x"})),
            StatusCode::FORBIDDEN,
        )
        .await;
        expect(
            &w,
            PLANT_A,
            Method::POST,
            &format!("/api/v1/needs/{need_b}/close"),
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect(
            &w,
            PLANT_B,
            Method::POST,
            &format!("/api/v1/vouchers/{va}/redeem"),
            Some(json!({"invoice_no": "X", "invoice_total": "100"})),
            StatusCode::FORBIDDEN,
        )
        .await;

        // Users: a plant sees its own people only, never a token or a hash.
        let people = expect(
            &w,
            PLANT_A,
            Method::GET,
            "/api/v1/users",
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(people.as_array().unwrap().len(), 1, "{people}");
        assert_eq!(people[0]["name"], json!("plant-a"));
        assert!(!people.to_string().contains("token") && !people.to_string().contains("hash"));
        let everyone = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/users",
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(everyone.as_array().unwrap().len(), 6);

        // Providers: only their own vouchers; another's voucher cannot be read or redeemed.
        let p_book = expect(
            &w,
            PROVIDER_P,
            Method::GET,
            "/api/v1/vouchers",
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(p_book["count"], json!(1));
        assert_eq!(p_book["vouchers"][0]["id"], json!(va));
        expect(
            &w,
            PROVIDER_P,
            Method::GET,
            &format!("/api/v1/vouchers/{vb}"),
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect(
            &w,
            PROVIDER_P,
            Method::POST,
            &format!("/api/v1/vouchers/{vb}/redeem"),
            Some(json!({"invoice_no": "P-1", "invoice_total": "1000"})),
            StatusCode::NOT_FOUND,
        )
        .await;
        expect(
            &w,
            PROVIDER_P,
            Method::PUT,
            "/api/v1/providers/SP-Q/offers",
            Some(json!([{"scenario": "anomaly-detection"}])),
            StatusCode::FORBIDDEN,
        )
        .await;
        let matches = expect(
            &w,
            PROVIDER_P,
            Method::GET,
            "/api/v1/matches",
            None,
            StatusCode::OK,
        )
        .await;
        assert!(
            matches
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["provider"] == json!("SP-P")),
            "{matches}"
        );

        // Nothing any tenant saw or tried changed another's rows (A's refused bundle is A's history).
        let after = snapshot(&w).await;
        for key in [
            "/api/v1/plants",
            "/api/v1/vouchers",
            "/api/v1/needs",
            "/api/v1/providers",
            "/api/v1/budgets",
        ] {
            assert_eq!(before[key], after[key], "{key} changed");
        }
        let b_history = format!("/api/v1/plants/{b}/evidence");
        assert_eq!(
            before[&b_history], after[&b_history],
            "B's evidence changed"
        );
    })
    .await;
}

/// SQL in a tenant's settings, as the portal's role: what the database allows on its own.
async fn as_tenant(
    world: &World,
    role: &str,
    plant: &str,
    sql: &str,
) -> Result<Vec<String>, String> {
    let mut conn = sqlx::PgConnection::connect(&world.url)
        .await
        .map_err(|e| e.to_string())?;
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    sqlx::query("SELECT set_config('role', 'aifactory_portal', true), set_config('aifactory.role', $1, true), set_config('aifactory.plant', $2, true)")
        .bind(role)
        .bind(plant)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    let rows: Result<Vec<String>, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *tx)
        .await;
    let rows = rows.map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_isolates_tenants_without_the_api() {
    with_portal("database_isolation", |w| async move {
        let (a, b) = (w.plants[0].id.clone(), w.plants[1].id.clone());
        for table in ["plants", "evidence", "vouchers", "needs", "redemptions"] {
            let column = if table == "plants" { "id" } else { "plant_id" };
            let seen = as_tenant(&w, "plant", &a, &format!("SELECT DISTINCT {column} FROM {table}")).await.unwrap();
            assert!(seen.iter().all(|p| *p == a), "{table}: plant {a} sees {seen:?}");
        }
        for table in ["journal", "postings", "audit", "budgets", "targets"] {
            let seen = as_tenant(&w, "plant", &a, &format!("SELECT count(*)::text FROM {table}")).await.unwrap();
            assert_eq!(seen, vec!["0".to_owned()], "plant sees {table}");
        }
        // Writes into B's rows touch nothing; inserts in B's name are refused.
        let changed = as_tenant(&w, "plant", &a, &format!("UPDATE vouchers SET provider_id = NULL WHERE plant_id = '{b}' RETURNING id")).await.unwrap();
        assert!(changed.is_empty());
        let refused = as_tenant(&w, "plant", &a, &format!("INSERT INTO needs (plant_id, scenario, stage, title, posted_at_ms) VALUES ('{b}', 'x', 'design', 't', 0) RETURNING plant_id")).await;
        assert!(refused.unwrap_err().contains("row-level security"));
        // A plant cannot raise its own tier past its evidence, nor rename itself.
        let err = as_tenant(&w, "plant", &a, &format!("UPDATE plants SET tier = 3 WHERE id = '{a}' RETURNING id")).await.unwrap_err();
        assert!(err.contains("latest accepted evidence"), "{err}");
        let err = as_tenant(&w, "plant", &a, &format!("UPDATE plants SET name = 'x' WHERE id = '{a}' RETURNING id")).await.unwrap_err();
        assert!(err.contains("only programme staff"), "{err}");
        // The books are append-only, for officers too; an unbalanced journal is refused.
        let err = as_tenant(&w, "officer", "", "DELETE FROM postings RETURNING account").await.unwrap_err();
        assert!(err.contains("permission denied"), "{err}");
        let err = as_tenant(&w, "officer", "", "WITH j AS (INSERT INTO journal (at_ms, kind, memo, actor) VALUES (0, 'fund', 'x', 'x') RETURNING id) INSERT INTO postings (journal_id, account, amount_fen) SELECT id, 'funding:2026', -5 FROM j RETURNING account").await.unwrap_err();
        assert!(err.contains("does not balance"), "{err}");
        // Outside a tenant (no settings) nothing is visible at all.
        let seen = as_tenant(&w, "", "", "SELECT id FROM plants").await.unwrap();
        assert!(seen.is_empty());
    })
    .await;
}

fn tamper(bundle: &mut Value, pointer: &str, value: Value) {
    *bundle
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = value;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_bundles_are_refused_with_the_reason() {
    with_portal("tampered", |w| async move {
        // A plant that reaches tier 3 by the year's end.
        let plant = w.plants.iter().skip(2).find(|p| p.maturity == 3).expect("a mature plant").clone();
        expect(&w, OFFICER, Method::POST, "/api/v1/plants", Some(json!({
            "id": plant.id, "name": plant.name, "industry": plant.industry, "district": plant.district, "revenue_myuan": 300
        })), StatusCode::CREATED).await;
        let token = "t-mature";
        expect(&w, OFFICER, Method::POST, "/api/v1/users", Some(json!({"name": "mature", "role": "plant", "plant": plant.id})), StatusCode::CREATED).await;
        w.portal.add_user_with_token(&aifactory_portal::Caller::system(), &aifactory_portal::NewUser {
            name: "mature-2".into(), role: aifactory_portal::Role::Plant, plant: Some(plant.id.clone()), provider: None,
        }, token).await.unwrap();
        let path = format!("/api/v1/plants/{}/evidence", plant.id);
        let q2: Value = serde_json::to_value(seed::bundle(&plant, &w.spec, 2).unwrap()).unwrap();
        let submit = |bundle: Value| {
            let w = w.clone();
            let path = path.clone();
            async move { call_raw(&w, Some(token), Method::POST, &path, Some(bundle.to_string().into_bytes())).await }
        };
        let refused = |expected: &'static str| move |(status, body): (StatusCode, Value)| {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            let reason = body["error"].as_str().unwrap_or_default().to_owned();
            assert!(reason.contains(expected), "expected {expected:?} in {reason:?}");
        };

        // Edited decision: the chain names the row.
        let mut edited = q2.clone();
        tamper(&mut edited, "/ledger/3/record/confidence", json!(0.01));
        refused("ledger row 4")(submit(edited).await);
        // A row removed from the middle.
        let mut removed = q2.clone();
        removed["ledger"].as_array_mut().unwrap().remove(2);
        refused("ledger row 3")(submit(removed).await);
        // A better tier claimed than the ledger earns (signature covers the claim).
        let mut claimed = q2.clone();
        tamper(&mut claimed, "/assessment/tier", json!(3));
        refused("signature does not match")(submit(claimed).await);
        // Signed by another plant's key.
        let other = seed::bundle(&w.plants[0], &w.spec, 1).unwrap();
        let mut foreign = q2.clone();
        tamper(&mut foreign, "/public_key", json!(other.public_key));
        refused("signature does not match")(submit(foreign).await);
        refused("not an evidence bundle")(call_raw(&w, Some(token), Method::POST, &path, Some(b"{\"format\":1}".to_vec())).await);
        refused("not an evidence bundle")(call_raw(&w, Some(token), Method::POST, &path, Some(vec![0xff, 0xfe])).await);

        // The genuine Q2 bundle is accepted at its recomputed tier, and pins the key.
        let (status, body) = submit(q2.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["tier"], json!(2));
        // A bundle from a new key, validly signed by it, is not this plant's evidence.
        let impostor = seed::city(&CitySpec { seed: 99, ..w.spec });
        let mut stolen = seed::bundle(&plant, &w.spec, 4).unwrap();
        let key = impostor[0].key();
        stolen = aifactory_assess::sign(&stolen.plant, stolen.generated_at, stolen.coverage.clone(), stolen.ledger.clone(), &key).unwrap();
        refused("evidence key is")(submit(serde_json::to_value(&stolen).unwrap()).await);
        // Rewritten history, re-chained and re-signed with the right key: the portal remembers.
        let q3 = seed::bundle(&plant, &w.spec, 3).unwrap();
        let mut entries = q3.ledger.clone();
        if let aifactory_core::LedgerRecord::Decision(d) = &mut entries[0].record {
            d.confidence = Some(0.5);
        }
        let mut relinked = aifactory_assess::Ledger::new();
        for e in entries {
            relinked.append(e.record).unwrap();
        }
        let rewritten = aifactory_assess::sign(&q3.plant, q3.generated_at, q3.coverage.clone(), relinked.into_entries(), &plant.key()).unwrap();
        refused("the history was rewritten")(submit(serde_json::to_value(&rewritten).unwrap()).await);
        // Going back to an older, shorter ledger.
        let q1 = serde_json::to_value(seed::bundle(&plant, &w.spec, 1).unwrap()).unwrap();
        refused("a ledger only grows")(submit(q1).await);

        // The year-end bundle moves the plant to tier 3; every refusal is in the history with its reason.
        let (status, body) = submit(serde_json::to_value(seed::bundle(&plant, &w.spec, 4).unwrap()).unwrap()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["tier"], json!(3));
        let history = expect(&w, OFFICER, Method::GET, &path, None, StatusCode::OK).await;
        let history = history.as_array().unwrap();
        assert_eq!(history.iter().filter(|e| e["accepted"] == json!(true)).count(), 2);
        let reasons: Vec<&str> = history.iter().filter_map(|e| e["reason"].as_str()).collect();
        assert_eq!(reasons.len(), 9, "{reasons:?}");
        let record = expect(&w, OFFICER, Method::GET, &format!("/api/v1/plants/{}", plant.id), None, StatusCode::OK).await;
        assert_eq!(record["tier"], json!(3));
        // Only a tier-3 plant can be a benchmark factory.
        expect(&w, ASSESSOR, Method::POST, &format!("/api/v1/plants/{}/benchmark", plant.id), None, StatusCode::OK).await;
        expect(&w, ASSESSOR, Method::POST, &format!("/api/v1/plants/{}/benchmark", w.plants[1].id), None, StatusCode::CONFLICT).await;
        let dashboard = expect(&w, ASSESSOR, Method::GET, "/api/v1/targets?year=2026", None, StatusCode::OK).await;
        assert_eq!(dashboard["plants"], json!(3));
        assert_eq!(dashboard["benchmarks"], json!(1));
        assert_eq!(dashboard["at_least"][2], json!(1));
    })
    .await;
}

/// A voucher of `amount` yuan for plant A, contracted to provider P.
async fn voucher_for_a(w: &World, amount: &str) -> String {
    let voucher = expect(
        w,
        OFFICER,
        Method::POST,
        "/api/v1/vouchers",
        Some(json!({
            "budget": "compute-2026", "plant": w.plants[0].id, "amount": amount, "provider": "SP-P",
            "expires_at_ms": JUNE_1 + 86_400_000_i64
        })),
        StatusCode::CREATED,
    )
    .await;
    voucher["id"].as_str().unwrap().to_owned()
}

/// Sends every redemption body at once, as provider P; returns (paid bodies, conflict messages).
async fn redeem_at_once(w: &Arc<World>, id: &str, bodies: Vec<Value>) -> (Vec<Value>, Vec<String>) {
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let (w, path) = (w.clone(), format!("/api/v1/vouchers/{id}/redeem"));
        tasks.spawn(
            async move { call(&w, Some(PROVIDER_P), Method::POST, &path, Some(body)).await },
        );
    }
    let (mut paid, mut refused) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (status, body) = done.unwrap();
        match status {
            StatusCode::CREATED => paid.push(body),
            StatusCode::CONFLICT => {
                refused.push(body["error"].as_str().unwrap_or_default().to_owned())
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    (paid, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_redemptions_spend_a_voucher_at_most_once() {
    with_portal("concurrent_redemptions", |w| async move {
        // ¥10,000 at 30 %: every invoice of ¥40,000 would take all of it.
        let id = voucher_for_a(&w, "10000").await;
        let bodies = (0..32)
            .map(|i| json!({"invoice_no": format!("INV-{i}"), "invoice_total": "40000"}))
            .collect();
        let (paid, refused) = redeem_at_once(&w, &id, bodies).await;
        assert_eq!(paid.len(), 1, "{paid:?}");
        assert!(refused.iter().all(|e| e.contains("spent")), "{refused:?}");
        assert_eq!(paid[0]["covered"], json!("10000.00"));
        assert_eq!(paid[0]["plant_pays"], json!("30000.00"));
        let after = expect(
            &w,
            PROVIDER_P,
            Method::GET,
            &format!("/api/v1/vouchers/{id}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(after["voucher"]["remaining"], json!("0.00"));
        assert_eq!(after["voucher"]["status"], json!("spent"));
        assert_eq!(after["redemptions"].as_array().unwrap().len(), 1);
        assert_balanced(&w).await;

        // The same invoice sent many times at once on a roomy voucher is paid once.
        let id = voucher_for_a(&w, "100000").await;
        let same = json!({"invoice_no": "SAME-1", "invoice_total": "1000", "kind": "metered"});
        let (paid, refused) = redeem_at_once(&w, &id, vec![same; 24]).await;
        assert_eq!(paid.len(), 1, "{paid:?}");
        assert!(
            refused.iter().all(|e| e.contains("already been paid")),
            "{refused:?}"
        );
        let after = expect(
            &w,
            OFFICER,
            Method::GET,
            &format!("/api/v1/vouchers/{id}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(after["voucher"]["remaining"], json!("99700.00"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vouchers_keep_the_programme_rules_and_every_movement_is_audited() {
    with_portal("voucher_rules", |w| async move {
        let (a, b) = (w.plants[0].id.clone(), w.plants[1].id.clone());
        let far = JUNE_1 + 365 * 86_400_000_i64;
        // Cap per firm: A already holds ¥50,000 of the ¥300,000 cap.
        let over = expect(&w, OFFICER, Method::POST, "/api/v1/vouchers", Some(json!({
            "budget": "compute-2026", "plant": a, "amount": "250000.01", "expires_at_ms": far
        })), StatusCode::CONFLICT).await;
        assert!(over["error"].as_str().unwrap().contains("cap"), "{over}");
        expect(&w, OFFICER, Method::POST, "/api/v1/vouchers", Some(json!({
            "budget": "compute-2026", "plant": a, "amount": "250000", "expires_at_ms": far
        })), StatusCode::CREATED).await;
        // The budget: ¥1,000,000 less ¥350,000 issued.
        expect(&w, OFFICER, Method::POST, "/api/v1/budgets", Some(json!({
            "id": "tiny", "category": "services", "year": 2026, "amount": "100", "cap_per_firm": "1000"
        })), StatusCode::CREATED).await;
        let short = expect(&w, OFFICER, Method::POST, "/api/v1/vouchers", Some(json!({
            "budget": "tiny", "plant": b, "amount": "100.01", "expires_at_ms": far
        })), StatusCode::CONFLICT).await;
        assert!(short["error"].as_str().unwrap().contains("left"), "{short}");
        // Bad input says where and what.
        for (body, needle) in [
            (json!({"budget": "tiny", "plant": b, "amount": "1.234", "expires_at_ms": far}), "two decimals"),
            (json!({"budget": "tiny", "plant": b, "amount": "5", "expires_at_ms": far, "colour": 1}), "unknown field"),
            (json!({"budget": "tiny", "plant": b, "amount": "-5", "expires_at_ms": far}), "more than zero"),
            (json!({"budget": "tiny", "plant": b, "amount": "5", "expires_at_ms": 0}), "not in the future"),
        ] {
            let err = expect(&w, OFFICER, Method::POST, "/api/v1/vouchers", Some(body), StatusCode::BAD_REQUEST).await;
            assert!(err["error"].as_str().unwrap().contains(needle), "{err}");
        }
        expect(&w, OFFICER, Method::POST, "/api/v1/vouchers", Some(json!({"budget": "nope", "plant": b, "amount": "5", "expires_at_ms": far})), StatusCode::NOT_FOUND).await;
        let (status, err) = call_raw(&w, Some(OFFICER), Method::POST, "/api/v1/vouchers", Some(b"{not json".to_vec())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(err["error"].as_str().unwrap().contains("request body"), "{err}");
        let (status, _) = call(&w, Some(OFFICER), Method::GET, "/api/v1/vouchers?limit=many", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // Co-payment: B's voucher pays 30 % of a ¥10,000.55 invoice (rounded down to the fen).
        let book = expect(&w, OFFICER, Method::GET, &format!("/api/v1/vouchers?plant={b}"), None, StatusCode::OK).await;
        let vb = voucher_of(&book, &b);
        let paid = expect(&w, PROVIDER_Q, Method::POST, &format!("/api/v1/vouchers/{vb}/redeem"), Some(json!({
            "invoice_no": "Q-77", "invoice_total": "10000.55"
        })), StatusCode::CREATED).await;
        assert_eq!(paid["covered"], json!("3000.16"));
        assert_eq!(paid["plant_pays"], json!("7000.39"));
        // The plant may change its provider only before redemption.
        expect(&w, PLANT_B, Method::POST, &format!("/api/v1/vouchers/{vb}/provider"), Some(json!({"provider": "SP-P"})), StatusCode::CONFLICT).await;
        // Expiry: after the date the provider cannot redeem; the officer's sweep returns the rest.
        w.clock.store(JUNE_1 + 200 * 86_400_000_i64, Ordering::SeqCst);
        let late = expect(&w, PROVIDER_Q, Method::POST, &format!("/api/v1/vouchers/{vb}/redeem"), Some(json!({
            "invoice_no": "Q-78", "invoice_total": "10"
        })), StatusCode::CONFLICT).await;
        assert!(late["error"].as_str().unwrap().contains("expired"), "{late}");
        let swept = expect(&w, OFFICER, Method::POST, "/api/v1/vouchers/expire", None, StatusCode::OK).await;
        assert_eq!(swept["expired"], json!(2));
        let after = expect(&w, OFFICER, Method::GET, &format!("/api/v1/vouchers/{vb}"), None, StatusCode::OK).await;
        assert_eq!(after["voucher"]["status"], json!("expired"));
        assert_eq!(after["voucher"]["returned"], json!("46999.84"));
        let budgets = expect(&w, OFFICER, Method::GET, "/api/v1/budgets", None, StatusCode::OK).await;
        let compute = budgets.as_array().unwrap().iter().find(|b| b["id"] == json!("compute-2026")).unwrap();
        assert_eq!(compute["redeemed"], json!("3000.16"));
        // Withdrawal of the big voucher returns all of it.
        let book = expect(&w, OFFICER, Method::GET, "/api/v1/vouchers?status=active", None, StatusCode::OK).await;
        let big = book["vouchers"][0]["id"].as_str().unwrap().to_owned();
        expect(&w, OFFICER, Method::POST, &format!("/api/v1/vouchers/{big}/withdraw"), None, StatusCode::OK).await;
        expect(&w, OFFICER, Method::POST, &format!("/api/v1/vouchers/{big}/withdraw"), None, StatusCode::CONFLICT).await;
        let budgets = expect(&w, OFFICER, Method::GET, "/api/v1/budgets", None, StatusCode::OK).await;
        let compute = budgets.as_array().unwrap().iter().find(|b| b["id"] == json!("compute-2026")).unwrap();
        assert_eq!(compute["available"], json!("996999.84"));
        // Every money movement has its audit row.
        let audit = expect(&w, OFFICER, Method::GET, "/api/v1/audit?limit=1000", None, StatusCode::OK).await;
        let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|r| r["action"].as_str()).collect();
        for action in ["budget.create", "voucher.issue", "voucher.redeem", "voucher.expire", "voucher.withdraw"] {
            assert!(actions.contains(&action), "no {action} in {actions:?}");
        }
        let tb = expect(&w, OFFICER, Method::GET, "/api/v1/ledger", None, StatusCode::OK).await;
        let journals = tb["journals"].as_i64().unwrap();
        let money_rows = actions
            .iter()
            .filter(|a| {
                matches!(
                    **a,
                    "budget.create" | "voucher.issue" | "voucher.redeem" | "voucher.expire" | "voucher.withdraw"
                )
            })
            .count() as i64;
        assert_eq!(journals, money_rows, "one journal per audited money movement: {actions:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn needs_meet_providers_by_scenario_and_stage() {
    with_portal("matching", |w| async move {
        let needs = expect(
            &w,
            PLANT_A,
            Method::GET,
            "/api/v1/needs",
            None,
            StatusCode::OK,
        )
        .await;
        let need = needs[0]["id"].as_i64().unwrap();
        let matches = expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/needs/{need}/matches"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(matches[0]["provider"], json!("SP-P"));
        assert_eq!(matches[0]["fit"], json!("scenario"));
        // Q adds a production scenario: a stage match for A's maintenance need, ranked after P.
        expect(
            &w,
            PROVIDER_Q,
            Method::PUT,
            "/api/v1/providers/SP-Q/offers",
            Some(json!([
                {"scenario": "demand-forecasting"}, {"scenario": "anomaly-detection"}
            ])),
            StatusCode::OK,
        )
        .await;
        let matches = expect(
            &w,
            OFFICER,
            Method::GET,
            &format!("/api/v1/needs/{need}/matches"),
            None,
            StatusCode::OK,
        )
        .await;
        let order: Vec<(&str, &str)> = matches
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["provider"].as_str().unwrap(), m["fit"].as_str().unwrap()))
            .collect();
        assert_eq!(order, vec![("SP-P", "scenario"), ("SP-Q", "stage")]);
        let bad = expect(
            &w,
            PROVIDER_Q,
            Method::PUT,
            "/api/v1/providers/SP-Q/offers",
            Some(json!([{"scenario": "telepathy"}])),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            bad["error"]
                .as_str()
                .unwrap()
                .contains("typical scenarios are"),
            "{bad}"
        );
        let wrong_stage = expect(
            &w,
            PLANT_A,
            Method::POST,
            "/api/v1/needs",
            Some(json!({"scenario": "demand-forecasting", "stage": "design", "title": "t"})),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            wrong_stage["error"].as_str().unwrap().contains("sales"),
            "{wrong_stage}"
        );
        // A closed need no longer matches.
        expect(
            &w,
            PLANT_A,
            Method::POST,
            &format!("/api/v1/needs/{need}/close"),
            None,
            StatusCode::OK,
        )
        .await;
        let for_p = expect(
            &w,
            PROVIDER_P,
            Method::GET,
            "/api/v1/matches",
            None,
            StatusCode::OK,
        )
        .await;
        assert!(
            for_p
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["need"] != json!(need)),
            "{for_p}"
        );
    })
    .await;
}

fn example_csv() -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/sme-csv");
    let mut files = serde_json::Map::new();
    for f in ["machines.csv", "routings.csv", "orders.csv"] {
        files.insert(
            f.into(),
            json!(std::fs::read_to_string(format!("{dir}/{f}")).unwrap()),
        );
    }
    json!({ "files": files })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sme_onboards_from_csv_and_only_it_sees_the_result() {
    with_portal("onboarding", |w| async move {
        let (a, b) = (w.plants[0].id.clone(), w.plants[1].id.clone());
        let before = expect(
            &w,
            OFFICER,
            Method::GET,
            &format!("/api/v1/plants/{b}"),
            None,
            StatusCode::OK,
        )
        .await;
        let done = expect(
            &w,
            PLANT_B,
            Method::POST,
            &format!("/api/v1/plants/{b}/onboard"),
            Some(example_csv()),
            StatusCode::CREATED,
        )
        .await;
        let plan = &done["plan"];
        assert_eq!(
            plan["orders"].as_u64().unwrap() as usize,
            plan["promises"].as_array().unwrap().len()
        );
        assert_eq!(plan["tier"], json!(0));
        assert!(
            plan["missing_for_next_tier"]
                .to_string()
                .contains("streaming"),
            "{plan}"
        );
        let ceiling = plan["planned_oee_ceiling"].as_f64().unwrap();
        assert!(ceiling > 0.0 && ceiling <= 1.0);
        let again = expect(
            &w,
            PLANT_B,
            Method::GET,
            &format!("/api/v1/plants/{b}/onboarding"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(again["plan"], done["plan"]);
        // Onboarding never sets the verified tier.
        let after = expect(
            &w,
            OFFICER,
            Method::GET,
            &format!("/api/v1/plants/{b}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(before["tier"], after["tier"]);
        // Other tenants: refused; A has no onboarding of its own.
        expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/plants/{b}/onboarding"),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
        expect(
            &w,
            PLANT_A,
            Method::POST,
            &format!("/api/v1/plants/{b}/onboard"),
            Some(example_csv()),
            StatusCode::FORBIDDEN,
        )
        .await;
        let none = expect(
            &w,
            PLANT_A,
            Method::GET,
            &format!("/api/v1/plants/{a}/onboarding"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(none, Value::Null, "A has no onboarding of its own");
        expect(
            &w,
            ASSESSOR,
            Method::GET,
            &format!("/api/v1/plants/{b}/onboarding"),
            None,
            StatusCode::OK,
        )
        .await;
        // Bad files: where and what.
        let mut bad = example_csv();
        let orders = bad["files"]["orders.csv"].as_str().unwrap().to_owned()
            + "SO-X,NOPE,5,2026-12-09 12:00,,1\n";
        bad["files"]["orders.csv"] = json!(orders);
        let err = expect(
            &w,
            PLANT_A,
            Method::POST,
            &format!("/api/v1/plants/{a}/onboard"),
            Some(bad),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            err["error"].as_str().unwrap().contains("orders.csv"),
            "{err}"
        );
        let audit = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/audit",
            None,
            StatusCode::OK,
        )
        .await;
        assert!(audit.to_string().contains("plant.onboard"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn people_sign_in_with_a_password_and_sessions_end() {
    with_portal("sign_in", |w| async move {
        // An officer sets plant A's user's password; the user then changes it themself.
        expect(
            &w,
            OFFICER,
            Method::PUT,
            "/api/v1/users/plant-a/password",
            Some(json!({"password": "first-password-1"})),
            StatusCode::OK,
        )
        .await;
        expect(
            &w,
            PLANT_A,
            Method::PUT,
            "/api/v1/users/plant-a/password",
            Some(json!({"password": "second-password-2"})),
            StatusCode::OK,
        )
        .await;
        expect(
            &w,
            PLANT_A,
            Method::PUT,
            "/api/v1/users/plant-b/password",
            Some(json!({"password": "not-yours-at-all"})),
            StatusCode::FORBIDDEN,
        )
        .await;
        let short = expect(
            &w,
            PLANT_A,
            Method::PUT,
            "/api/v1/users/plant-a/password",
            Some(json!({"password": "short"})),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            short["error"].as_str().unwrap().contains("10 characters"),
            "{short}"
        );
        // The old password no longer works; the new one opens a session that acts as the user.
        let (status, _) = call(
            &w,
            None,
            Method::POST,
            "/api/v1/session",
            Some(json!({"name": "plant-a", "password": "first-password-1"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, session) = call(
            &w,
            None,
            Method::POST,
            "/api/v1/session",
            Some(json!({"name": "plant-a", "password": "second-password-2"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        let token = session["token"].as_str().unwrap().to_owned();
        let me = expect(&w, &token, Method::GET, "/api/v1/me", None, StatusCode::OK).await;
        assert_eq!(me["user"], json!("plant-a"));
        assert_eq!(me["plant"], json!(w.plants[0].id));
        // The session is the plant's tenant like its token: B stays out of reach.
        expect(
            &w,
            &token,
            Method::GET,
            &format!("/api/v1/plants/{}", w.plants[1].id),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
        // Sessions expire; signing out ends one at once.
        w.clock
            .fetch_add(aifactory_portal::SESSION_MS + 1, Ordering::SeqCst);
        let (status, _) = call(&w, Some(&token), Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (_, session) = call(
            &w,
            None,
            Method::POST,
            "/api/v1/session",
            Some(json!({"name": "plant-a", "password": "second-password-2"})),
        )
        .await;
        let token = session["token"].as_str().unwrap().to_owned();
        expect(
            &w,
            &token,
            Method::POST,
            "/api/v1/logout",
            None,
            StatusCode::OK,
        )
        .await;
        let (status, _) = call(&w, Some(&token), Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Five wrong passwords hold the address off, whatever names it tries, known or not,
        // and the answers do not say which names exist. (In-process requests carry no address:
        // they share one; addresses apart are in the limiter tests below.)
        for name in ["plant-a", "nobody", "plant-a", "nobody", "plant-a"] {
            let (status, body) = call(
                &w,
                None,
                Method::POST,
                "/api/v1/session",
                Some(json!({"name": name, "password": "wrong-password"})),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["error"], json!("wrong user name or password"));
        }
        for name in ["plant-a", "nobody"] {
            let (status, body) = call(
                &w,
                None,
                Method::POST,
                "/api/v1/session",
                Some(json!({"name": name, "password": "second-password-2"})),
            )
            .await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        }
        let audit = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/audit?limit=1000",
            None,
            StatusCode::OK,
        )
        .await;
        assert!(
            audit.to_string().contains("user.sign_in")
                && audit.to_string().contains("user.password")
        );
    })
    .await;
}

// Issue 20, the portal's part of the security review: money that would overflow, the sign-in
// limiter's memory and keying, and API tokens that expire, end at logout and can be revoked.

/// Signs in from `ip` (as `into_make_service_with_connect_info` would tell the router).
async fn sign_in_from(world: &World, ip: &str, name: &str, password: &str) -> (StatusCode, Value) {
    let address: std::net::SocketAddr = format!("{ip}:40000").parse().expect("an address");
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/session")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"name": name, "password": password}).to_string(),
        ))
        .expect("a request");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(address));
    let response = world
        .app
        .clone()
        .oneshot(request)
        .await
        .expect("a response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invoice_total_that_would_overflow_is_refused_naming_the_field() {
    with_portal("money_overflow", |w| async move {
        let a = w.plants[0].id.clone();
        let book = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/vouchers",
            None,
            StatusCode::OK,
        )
        .await;
        let va = voucher_of(&book, &a);
        // 30 % of these totals does not fit in 64 bits of fen: unchecked, the first wrapped to a
        // small positive share (the voucher paid out in full), the second to nothing at all.
        for total in ["7686143364045646.51", "92233720368547758.07"] {
            let refused = expect(
                &w,
                PROVIDER_P,
                Method::POST,
                &format!("/api/v1/vouchers/{va}/redeem"),
                Some(json!({"invoice_no": format!("BIG-{total}"), "invoice_total": total})),
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert!(
                refused["error"].as_str().unwrap().contains("invoice_total"),
                "{refused}"
            );
        }
        let after = expect(
            &w,
            OFFICER,
            Method::GET,
            &format!("/api/v1/vouchers/{va}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(after["voucher"]["remaining"], json!("50000.00"), "{after}");
        assert_eq!(after["redemptions"], json!([]), "{after}");
        // The largest total that fits still redeems (the voucher pays at most what it holds).
        let paid = expect(
            &w,
            PROVIDER_P,
            Method::POST,
            &format!("/api/v1/vouchers/{va}/redeem"),
            Some(json!({"invoice_no": "BIG-OK", "invoice_total": "922337203685477.58"})),
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(paid["covered"], json!("50000.00"), "{paid}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_from_one_address_lock_out_that_address_not_another() {
    with_portal("limiter_by_address", |w| async move {
        expect(
            &w,
            OFFICER,
            Method::PUT,
            "/api/v1/users/plant-a/password",
            Some(json!({"password": "right-password-1"})),
            StatusCode::OK,
        )
        .await;
        for _ in 0..5 {
            let (status, body) = sign_in_from(&w, "10.0.0.1", "plant-a", "wrong-password").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"], json!("wrong user name or password"));
        }
        // Address A is held off, whatever name or password it sends next.
        let (status, body) = sign_in_from(&w, "10.0.0.1", "plant-a", "right-password-1").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let (status, body) = sign_in_from(&w, "10.0.0.1", "plant-b", "anything-at-all").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        // Address B signs in with the right password: slowed (the name failed five times),
        // not refused.
        let started = std::time::Instant::now();
        let (status, body) = sign_in_from(&w, "10.0.0.2", "plant-a", "right-password-1").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(200),
            "a name that failed five times is slowed down: {:?}",
            started.elapsed()
        );
        // Wrong passwords for that name from yet more addresses are slowed and refused as
        // wrong, never locked out by another address's failures.
        for ip in ["10.0.0.3", "10.0.0.4"] {
            let (status, _) = sign_in_from(&w, ip, "plant-a", "wrong-password").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        // After the window, A may try again.
        w.clock.fetch_add(5 * 60_000 + 1, Ordering::SeqCst);
        let (status, body) = sign_in_from(&w, "10.0.0.1", "plant-a", "right-password-1").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_longer_than_a_user_name_are_refused_without_growing_the_limiter() {
    with_portal("limiter_long_names", |w| async move {
        let before = w.portal.sign_in_limiter_entries();
        for i in 0..20 {
            let name = format!("{i}{}", "x".repeat(100_000));
            let (status, body) =
                sign_in_from(&w, &format!("10.1.0.{i}"), &name, "wrong-password").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"], json!("wrong user name or password"));
        }
        // 65 characters: one more than the users table allows.
        let (status, _) = sign_in_from(&w, "10.1.1.1", &"y".repeat(65), "wrong-password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(w.portal.sign_in_limiter_entries(), before);
    })
    .await;
}

/// Issues a token for `user` as the officer; returns (id, token).
async fn issue_token(world: &World, user: &str, body: Option<Value>) -> (String, String) {
    let issued = expect(
        world,
        OFFICER,
        Method::POST,
        &format!("/api/v1/users/{user}/tokens"),
        body,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(issued["user"], json!(user), "{issued}");
    (
        issued["id"].as_str().unwrap().to_owned(),
        issued["token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_token_past_its_expiry_is_refused() {
    with_portal("token_expiry", |w| async move {
        let (_, token) = issue_token(&w, "plant-a", Some(json!({"expires_in_days": 1}))).await;
        expect(&w, &token, Method::GET, "/api/v1/me", None, StatusCode::OK).await;
        w.clock.fetch_add(86_400_000, Ordering::SeqCst);
        let (status, body) = call(&w, Some(&token), Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        // The fixture's tokens were made with the default lifetime, a year.
        expect(&w, PLANT_A, Method::GET, "/api/v1/me", None, StatusCode::OK).await;
        w.clock.store(JUNE_1 + 365 * 86_400_000, Ordering::SeqCst);
        let (status, _) = call(&w, Some(PLANT_A), Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        w.clock.store(JUNE_1, Ordering::SeqCst);
        // A lifetime is 1 to 3650 days.
        for days in [0, 3651] {
            let bad = expect(
                &w,
                OFFICER,
                Method::POST,
                "/api/v1/users/plant-a/tokens",
                Some(json!({"expires_in_days": days})),
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert!(
                bad["error"].as_str().unwrap().contains("expires_in_days"),
                "{bad}"
            );
        }
        expect(
            &w,
            OFFICER,
            Method::POST,
            "/api/v1/users/nobody/tokens",
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
        // Without a body: the default lifetime.
        let (_, token) = issue_token(&w, "plant-b", None).await;
        w.clock.store(JUNE_1 + 364 * 86_400_000, Ordering::SeqCst);
        expect(&w, &token, Method::GET, "/api/v1/me", None, StatusCode::OK).await;
        w.clock.store(JUNE_1, Ordering::SeqCst);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logging_out_with_an_api_token_revokes_it() {
    with_portal("token_logout", |w| async move {
        expect(&w, PLANT_A, Method::GET, "/api/v1/me", None, StatusCode::OK).await;
        expect(
            &w,
            PLANT_A,
            Method::POST,
            "/api/v1/logout",
            None,
            StatusCode::OK,
        )
        .await;
        let (status, body) = call(&w, Some(PLANT_A), Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let tokens = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/tokens",
            None,
            StatusCode::OK,
        )
        .await;
        let mine: Vec<&Value> = tokens
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["user"] == json!("plant-a"))
            .collect();
        assert_eq!(mine.len(), 1, "{tokens}");
        assert_eq!(mine[0]["revoked_by"], json!("plant-a"), "{tokens}");
        assert_eq!(mine[0]["state"], json!("revoked"), "{tokens}");
        // Plant B's token is untouched.
        expect(&w, PLANT_B, Method::GET, "/api/v1/me", None, StatusCode::OK).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn officers_list_and_revoke_tokens_and_no_one_else_can() {
    with_portal("token_revoke", |w| async move {
        let tokens = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/tokens",
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(tokens.as_array().unwrap().len(), 6, "{tokens}");
        // Never the token nor its hash.
        let text = tokens.to_string();
        let hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(PLANT_B.as_bytes()))
        };
        assert!(
            !text.contains(PLANT_B) && !text.contains(&hash) && !text.contains("sha256"),
            "{text}"
        );
        let of_b = tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["user"] == json!("plant-b"))
            .unwrap();
        assert_eq!(of_b["state"], json!("valid"), "{of_b}");
        assert_eq!(
            of_b["expires_at_ms"],
            json!(JUNE_1 + 365 * 86_400_000),
            "{of_b}"
        );
        let id = of_b["id"].as_str().unwrap().to_owned();
        for token in [PLANT_A, PLANT_B, PROVIDER_P, ASSESSOR] {
            expect(
                &w,
                token,
                Method::GET,
                "/api/v1/tokens",
                None,
                StatusCode::FORBIDDEN,
            )
            .await;
            expect(
                &w,
                token,
                Method::DELETE,
                &format!("/api/v1/tokens/{id}"),
                None,
                StatusCode::FORBIDDEN,
            )
            .await;
            expect(
                &w,
                token,
                Method::POST,
                "/api/v1/users/plant-b/tokens",
                None,
                StatusCode::FORBIDDEN,
            )
            .await;
        }
        expect(&w, PLANT_B, Method::GET, "/api/v1/me", None, StatusCode::OK).await;
        let revoked = expect(
            &w,
            OFFICER,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(revoked["state"], json!("revoked"), "{revoked}");
        assert_eq!(revoked["revoked_by"], json!("officer"), "{revoked}");
        let (status, _) = call(&w, Some(PLANT_B), Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        expect(
            &w,
            OFFICER,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None,
            StatusCode::CONFLICT,
        )
        .await;
        expect(
            &w,
            OFFICER,
            Method::DELETE,
            "/api/v1/tokens/tok_0000000000000000",
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
        // A new token for B works at once and is listed; the audit trail has both changes.
        let (new_id, token) =
            issue_token(&w, "plant-b", Some(json!({"expires_in_days": 30}))).await;
        let me = expect(&w, &token, Method::GET, "/api/v1/me", None, StatusCode::OK).await;
        assert_eq!(me["user"], json!("plant-b"));
        let tokens = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/tokens?user=plant-b",
            None,
            StatusCode::OK,
        )
        .await;
        let ids: Vec<&str> = tokens
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(&id.as_str()) && ids.contains(&new_id.as_str()) && ids.len() == 2,
            "{tokens}"
        );
        assert!(!tokens.to_string().contains(&token));
        let audit = expect(
            &w,
            OFFICER,
            Method::GET,
            "/api/v1/audit?limit=1000",
            None,
            StatusCode::OK,
        )
        .await;
        let audit = audit.to_string();
        assert!(
            audit.contains("token.revoke") && audit.contains("token.issue"),
            "{audit}"
        );
        assert!(
            !audit.contains(&token),
            "the audit trail never holds a token"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plants_and_providers_cannot_read_tokens_in_sql() {
    with_portal("token_isolation", |w| async move {
        let a = w.plants[0].id.clone();
        for (role, plant) in [("plant", a.as_str()), ("provider", ""), ("assessor", "")] {
            let seen = as_tenant(&w, role, plant, "SELECT count(*)::text FROM tokens").await.unwrap();
            assert_eq!(seen, vec!["0".to_owned()], "{role} sees tokens");
            let changed = as_tenant(&w, role, plant, "UPDATE tokens SET revoked_at_ms = 1, revoked_by = 'x' RETURNING id").await;
            assert!(changed.is_err() || changed.unwrap().is_empty(), "{role} revoked a token");
        }
        // Officers read them (never the token itself: only its hash is kept) and only revoke them:
        // a revoked token is not brought back, a token's user and lifetime never change.
        let seen = as_tenant(&w, "officer", "", "SELECT count(*)::text FROM tokens").await.unwrap();
        assert_eq!(seen, vec!["6".to_owned()]);
        let err = as_tenant(&w, "officer", "", "UPDATE tokens SET expires_at_ms = expires_at_ms + 1 RETURNING id").await.unwrap_err();
        assert!(err.contains("only its revocation"), "{err}");
        as_tenant(&w, "officer", "", "UPDATE tokens SET revoked_at_ms = 1, revoked_by = 'officer' WHERE user_name = 'plant-a' RETURNING id").await.unwrap();
        let err = as_tenant(&w, "officer", "", "UPDATE tokens SET revoked_at_ms = NULL, revoked_by = NULL WHERE user_name = 'plant-a' RETURNING id").await.unwrap_err();
        assert!(err.contains("only its revocation"), "{err}");
        let err = as_tenant(&w, "officer", "", "DELETE FROM tokens RETURNING id").await.unwrap_err();
        assert!(err.contains("permission denied"), "{err}");
        let (status, _) = call(&w, Some(PLANT_A), Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    })
    .await;
}

/// Before the tokens table each user had one token in `users.token_sha256`, forever. The
/// migration moves it, valid for a year from when the user was added, and runs as an owner that
/// is no superuser (so the forced row-level security binds it too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_before_the_tokens_table_keep_working_for_a_year() {
    let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
        println!("skipped tokens_from_before_the_tokens_table: {PG_URL_VAR} is not set");
        return;
    };
    let schema = unique_schema();
    let owner = format!("{schema}_owner");
    pg_admin(
        &admin_url,
        &format!(
            "CREATE ROLE {owner} LOGIN; GRANT aifactory_portal TO {owner}; \
             CREATE SCHEMA {schema} AUTHORIZATION {owner}"
        ),
    )
    .await;
    // The same server and database as the owner (trust authentication in the tests' server).
    let (scheme, rest) = admin_url.split_once("://").expect("a URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let separator = if host.contains('?') { '&' } else { '?' };
    let url = format!("{scheme}://{owner}@{host}{separator}options[search_path]={schema}");
    let outcome = tokio::spawn({
        let url = url.clone();
        async move {
            let pool = sqlx::PgPool::connect(&url)
                .await
                .expect("the owner connects");
            let mut before = sqlx::migrate!("./migrations");
            before.migrations = before.migrations[..3].to_vec().into();
            before.run(&pool).await.expect("migrations 1 to 3");
            let added = JUNE_1 - 100 * 86_400_000;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "BEGIN; SELECT set_config('aifactory.role', 'system', true); \
                 INSERT INTO users (name, role, token_sha256, created_at_ms) \
                 VALUES ('old-officer', 'officer', '{}', {added}); COMMIT;",
                {
                    use sha2::Digest;
                    hex::encode(sha2::Sha256::digest(b"t-old-officer"))
                }
            )))
            .execute(&pool)
            .await
            .expect("a user of the old schema");
            pool.close().await;
            let clock = Arc::new(AtomicI64::new(JUNE_1));
            let reader = clock.clone();
            let portal = Portal::open(&url, 2, Arc::new(move || reader.load(Ordering::SeqCst)))
                .await
                .expect("the tokens migration");
            let me = portal
                .authenticate("t-old-officer")
                .await
                .unwrap()
                .expect("still valid");
            assert_eq!(me.user, "old-officer");
            let listed = portal.tokens(&me, None).await.unwrap();
            assert_eq!(listed.len(), 1, "{listed:?}");
            assert!(
                listed[0].id.starts_with("tok_") && listed[0].id.len() == 20,
                "{listed:?}"
            );
            assert_eq!(listed[0].expires_at_ms, added + 365 * 86_400_000);
            clock.store(added + 365 * 86_400_000, Ordering::SeqCst);
            assert!(
                portal
                    .authenticate("t-old-officer")
                    .await
                    .unwrap()
                    .is_none()
            );
            portal.close().await;
        }
    })
    .await;
    pg_admin(
        &admin_url,
        &format!("DROP SCHEMA {schema} CASCADE; DROP ROLE {owner}"),
    )
    .await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
