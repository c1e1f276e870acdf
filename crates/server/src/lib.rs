//! The HTTP API of `aifactory serve`: read routes over the store (KPIs, the decision ledger, the
//! tier assessment, latest telemetry), login with API tokens, Prometheus metrics, and health.
//!
//! It owns the API's shape and who may call what: every route passes one authorisation check
//! against [`auth::MATRIX`] (method × route pattern × role), so a route missing from the matrix
//! is refused to everyone. It must never leak internals in an error body (errors are JSON with
//! a message a caller can act on), never keep a password or a token in clear (argon2 hashes,
//! SHA-256 of tokens), and never read the wall clock itself (the caller passes a clock).

pub mod auth;
pub mod evidence;

use aifactory_store::Store;
use aifactory_store::ingest::LatestValue;
use auth::{Access, Accounts, AuthError, Principal};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Request bodies larger than this are refused (413) before any handler sees them.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Time since a fixed instant, from the caller: the server never reads the clock itself.
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// What the routes share.
pub struct AppState {
    pub store: Store,
    pub accounts: Mutex<Accounts>,
    pub clock: Clock,
    /// Requests answered, by (route, status), for `/metrics`.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent between statements: keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppState {
    pub fn new(store: Store, accounts: Accounts, clock: Clock) -> Arc<Self> {
        Arc::new(AppState {
            store,
            accounts: Mutex::new(accounts),
            clock,
            requests: Mutex::new(BTreeMap::new()),
        })
    }
}

/// An error as callers see it: a status and a JSON body naming what to fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

impl From<aifactory_store::StoreError> for ApiError {
    fn from(_: aifactory_store::StoreError) -> Self {
        // The store's message may name tables and files: callers get a plain 500.
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the store could not answer",
        )
    }
}

/// A JSON body the extractor refused, as a 4xx naming the field where serde says which.
fn body_error(rejection: &JsonRejection) -> ApiError {
    let text = rejection.body_text();
    let field = ["missing field `", "unknown field `", "invalid type: "]
        .iter()
        .find_map(|p| text.split_once(p))
        .and_then(|(_, rest)| rest.split_once('`').map(|(f, _)| f.to_owned()))
        .filter(|f| !f.contains(' '));
    let field = field.or_else(|| {
        // "… at line 1 column 9" with the field before it: serde names it for type errors as
        // `name: invalid type …` in axum's text.
        text.split(": ")
            .nth(1)
            .filter(|f| !f.contains(' '))
            .map(str::to_owned)
    });
    ApiError {
        status: rejection.status(),
        error: format!("the request body is not what this route takes: {text}"),
        field,
    }
}

pub use axum::Router;

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The router with every route, the authorisation check and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/login", post(login))
        .route("/api/v1/me", get(me))
        .route("/api/v1/kpis", get(kpis))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/assessment", get(assessment))
        .route("/api/v1/telemetry/latest", get(latest))
        .route("/metrics", get(metrics))
        .route("/api/v1/tokens", post(new_token))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            authorise,
        ))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The one authorisation check: the matched route and method against the matrix, the bearer
/// token against the accounts. Counts every answer for `/metrics`.
async fn authorise(
    State(state): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(|| "?".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let verdict = match auth::access(&method, &route) {
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this route is not open to anyone",
        )),
        Some(Access::Public) => Ok(()),
        Some(Access::Roles(roles)) => {
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            match token.and_then(|t| lock(&state.accounts).principal(t)) {
                None => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "log in first: send `Authorization: Bearer TOKEN` (POST /api/v1/login gives one)",
                )),
                Some(p) if !roles.contains(&p.role) => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("the {:?} role may not call {method} {route}", p.role),
                )),
                Some(p) => {
                    req.extensions_mut().insert(p);
                    Ok(())
                }
            }
        }
    };
    let response = match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    *lock(&state.requests)
        .entry((route, response.status().as_u16()))
        .or_default() += 1;
    response
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(|r| body_error(&r))?;
    let now = (state.clock)();
    let result = lock(&state.accounts).login(&body.username, &body.password, now);
    match result {
        Ok((token, role)) => Ok(Json(serde_json::json!({ "token": token, "role": role }))),
        Err(AuthError::RateLimited(s)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed logins; try again in {s} s"),
        )),
        Err(AuthError::BadCredentials) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password",
        )),
        Err(AuthError::Hash) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the login could not be checked",
        )),
    }
}

async fn me(Extension(p): Extension<Principal>) -> Json<Principal> {
    Json(p)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    user: String,
    role: auth::Role,
}

/// An API token for a program (an agent, a dashboard), issued by an admin.
async fn new_token(
    State(state): State<Arc<AppState>>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(|r| body_error(&r))?;
    if body.user.trim().is_empty() || body.user.len() > 64 {
        return Err(ApiError {
            field: Some("user".into()),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "user must be 1 to 64 characters",
            )
        });
    }
    let token = lock(&state.accounts).issue(&body.user, body.role);
    Ok(Json(
        serde_json::json!({ "token": token, "role": body.role }),
    ))
}

async fn kpis(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let counts = state.store.counts().await?;
    // Runs are numbered from 1 in the order they were started: the last is the newest.
    let run = aifactory_store::RunId(i64::try_from(counts.runs).unwrap_or(i64::MAX));
    let kpis = match counts.runs {
        0 => None,
        _ => state.store.run_kpis(run).await?,
    };
    let kpis = kpis.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no run has KPIs yet"))?;
    Ok(Json(serde_json::json!({ "run": run.0, "kpis": kpis })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<u32>,
}

async fn decisions(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|r| ApiError {
        field: Some("limit".into()),
        ..ApiError::new(StatusCode::BAD_REQUEST, r.body_text())
    })?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError {
            field: Some("limit".into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "limit must be between 1 and 10000")
        });
    }
    let decisions = state.store.decisions(limit).await?;
    Ok(Json(serde_json::json!({ "decisions": decisions })))
}

async fn assessment(
    State(state): State<Arc<AppState>>,
) -> Result<Json<aifactory_assess::Assessment>, ApiError> {
    let (ledger, coverage) = evidence::read(&state.store).await.map_err(|e| match e {
        evidence::EvidenceError::Store(e) => ApiError::from(e),
        evidence::EvidenceError::Encode(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a decision could not be encoded",
        ),
    })?;
    Ok(Json(aifactory_assess::assess(ledger.entries(), &coverage)))
}

async fn latest(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = state.store.latest(None).await?;
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|l| {
            let value = match l.value {
                LatestValue::Number(x) => serde_json::json!(x),
                LatestValue::Text(t) => serde_json::json!(t),
            };
            serde_json::json!({
                "site": l.series.site,
                "device": l.series.device,
                "metric": l.series.metric,
                "at_ms": l.at_ms,
                "value": value,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "latest": rows })))
}

/// Prometheus text exposition of the requests answered.
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut out = String::from(
        "# HELP aifactory_http_requests_total Requests answered, by route and status.\n\
         # TYPE aifactory_http_requests_total counter\n",
    );
    for ((route, status), n) in lock(&state.requests).iter() {
        out.push_str(&format!(
            "aifactory_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
