//! The HTTP API of `aifactory serve`: read routes over the store (KPIs, the decision ledger, the
//! tier assessment, latest telemetry), login with API tokens, Prometheus metrics, and health.
//!
//! It owns the API's shape and who may call what: every route passes one authorisation check
//! against [`auth::MATRIX`] (method × route pattern × role), so a route missing from the matrix
//! is refused to everyone. It must never leak internals in an error body (errors are JSON with
//! a message a caller can act on), never keep a password or a token in clear (argon2 hashes,
//! SHA-256 of tokens), and never read the wall clock itself (the caller passes a clock).

pub mod agent;
pub mod auth;
pub mod evidence;
mod hasher;
pub mod live;
mod mcp_binding;
pub mod openapi;
mod plant;
mod ui;

pub use plant::Proposal;

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
    /// The live plant, when one is connected.
    pub live: live::Live,
    /// Numbers the people's decisions of this server's lifetime (ids `H-<start>-<n>`).
    human_decisions: std::sync::atomic::AtomicU64,
    /// Distinguishes this server's decision ids from an earlier run's on the same store.
    started_ms: i64,
    /// Requests answered, by (route, status), for `/metrics`.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// The last answer of `/api/v1/telemetry/latest`, encoded, with when it was read.
    latest_cache: tokio::sync::Mutex<Option<(Duration, axum::body::Bytes)>>,
    /// The agent, once [`AppState::set_agent`] attached one (its tools need this state).
    agent: std::sync::OnceLock<Arc<aifactory_agent::Agent>>,
    /// MCP session id → the SHA-256 of the credential that opened it.
    mcp_sessions: Mutex<mcp_binding::Owners>,
    /// Password checks, on threads of their own at a lower priority (half the cores), so a
    /// burst of logins queues instead of starving the requests that serve the plant.
    hasher: hasher::Hasher,
}

/// The snake_case name a unit enum serialises to.
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// How long a latest-values answer is reused.
const LATEST_FRESH: Duration = Duration::from_secs(1);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent between statements: keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppState {
    /// `started_ms`: when this server started (milliseconds since the epoch, from the caller's
    /// clock), to keep its decision ids apart from earlier runs'.
    pub fn new(
        store: Store,
        accounts: Accounts,
        clock: Clock,
        live: live::Live,
        started_ms: i64,
    ) -> Arc<Self> {
        Arc::new(AppState {
            store,
            accounts: Mutex::new(accounts),
            clock,
            live,
            human_decisions: std::sync::atomic::AtomicU64::new(0),
            started_ms,
            requests: Mutex::new(BTreeMap::new()),
            latest_cache: tokio::sync::Mutex::new(None),
            agent: std::sync::OnceLock::new(),
            mcp_sessions: Mutex::new(mcp_binding::Owners::default()),
            hasher: hasher::Hasher::start(
                std::thread::available_parallelism().map_or(1, |n| n.get() / 2),
            ),
        })
    }

    /// Milliseconds since the epoch by the server's clock: when tokens expire.
    pub fn now_ms(&self) -> i64 {
        self.started_ms
            .saturating_add(i64::try_from((self.clock)().as_millis()).unwrap_or(i64::MAX))
    }

    /// Attaches the agent; a second call is refused (returns `false`).
    pub fn set_agent(&self, agent: Arc<aifactory_agent::Agent>) -> bool {
        self.agent.set(agent).is_ok()
    }

    /// The agent, if one is attached.
    pub fn agent(&self) -> Option<Arc<aifactory_agent::Agent>> {
        self.agent.get().cloned()
    }
}

/// An error as callers see it: a status and a JSON body naming what to fix.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    #[schema(ignore)]
    pub status: StatusCode,
    pub error: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before trying again (sent as `Retry-After` with a 429).
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            field: None,
            retry_after_s: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.retry_after_s {
            Some(s) => (
                self.status,
                [(header::RETRY_AFTER, s.to_string())],
                Json(self),
            )
                .into_response(),
            None => (self.status, Json(self)).into_response(),
        }
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
pub(crate) fn body_error(rejection: &JsonRejection) -> ApiError {
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
        field,
        ..ApiError::new(
            rejection.status(),
            format!("the request body is not what this route takes: {text}"),
        )
    }
}

pub use axum::Router;

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Connection info gives the login limiter each client's address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The router with every route, the authorisation check and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/health", get(health))
        .route("/", get(ui::index))
        .route("/ui/{*path}", get(ui::asset))
        .route("/api/v1/login", post(login))
        .route("/api/v1/session", post(open_session))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .route("/api/v1/plant", get(plant::plant))
        .route("/api/v1/machines/{id}", get(plant::machine))
        .route("/api/v1/orders", get(plant::orders))
        .route("/api/v1/schedule", get(plant::schedule))
        .route("/api/v1/schedule/what-if", post(plant::what_if))
        .route("/api/v1/proposals", get(plant::proposals))
        .route("/api/v1/proposals/{id}/approve", post(plant::approve))
        .route("/api/v1/proposals/{id}/reject", post(plant::reject))
        .route("/api/v1/quality/spc", get(plant::spc))
        .route("/api/v1/forecast", get(plant::forecast))
        .route("/api/v1/events", get(plant::events))
        .route("/api/v1/telemetry", get(plant::telemetry))
        .route("/api/v1/kpis", get(kpis))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/assessment", get(assessment))
        .route("/api/v1/telemetry/latest", get(latest))
        .route("/metrics", get(metrics))
        .route("/api/v1/agent/ask", post(agent::ask))
        .route("/api/v1/agent/tools", get(agent::list_tools))
        .route("/api/v1/agent/tools/{name}", post(agent::call_tool))
        .route("/api/v1/agent/actions", get(agent::actions))
        .route("/api/v1/agent/actions/{id}/approve", post(agent::approve))
        .route("/api/v1/agent/actions/{id}/reject", post(agent::reject))
        .route("/api/v1/agent/audit", get(agent::audit))
        .route("/api/v1/agent/usage", get(agent::usage))
        // MCP sessions are bound to the credential that opened them (inside the check below).
        .merge(
            Router::new()
                .route_service("/mcp", mcp_service(&state))
                .route_layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&state),
                    mcp_binding::bind,
                )),
        )
        .route("/api/v1/tokens", get(list_tokens).post(new_token))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            authorise,
        ))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    with_request_log(routes)
}

/// The header that carries a request's id: kept when the caller (a proxy, a script) sends one,
/// made up otherwise, returned on the response and named in every log line of the request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Request ids and one log line per request (method, path, status, latency), outermost so
/// that refused requests are logged too. Only the path is logged, never the query or a
/// header, so no token reaches the logs; the latency is the log line's own measurement.
fn with_request_log(router: Router) -> Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{DefaultOnResponse, TraceLayer};
    let header = header::HeaderName::from_static(REQUEST_ID_HEADER);
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let id = request
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                "request",
                id = %id,
                method = %request.method(),
                path = %request.uri().path(),
            )
        })
        .on_request(())
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO));
    // The last layer added runs first: the id is set before the span that names it opens.
    router
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}

/// MCP over streamable HTTP: the agent's tools for any MCP client, behind the same
/// authorisation layer as the API (the caller rides in the request's extensions).
fn mcp_service(
    state: &Arc<AppState>,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    aifactory_agent::mcp::McpServer,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    let state = Arc::clone(state);
    let config = rmcp::transport::streamable_http_server::StreamableHttpServerConfig::default()
        // Every request carries a bearer token checked before it gets here, which is what the
        // Host check guards against for unauthenticated local servers; plants reach the
        // server by names this process cannot know.
        .disable_allowed_hosts();
    rmcp::transport::streamable_http_server::StreamableHttpService::new(
        move || match state.agent() {
            Some(agent) => Ok(aifactory_agent::mcp::McpServer::http(agent)),
            None => Err(std::io::Error::other(
                "the agent is not configured on this server",
            )),
        },
        Default::default(),
        config,
    )
}

/// The cookie that carries a browser session.
pub const SESSION_COOKIE: &str = "aifactory_session";
/// The header a browser session sends its CSRF token in with every change.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session id in the request's cookies, if any.
pub(crate) fn session_cookie(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The CSRF token of a browser session, for `/api/v1/me` to hand back to the page.
#[derive(Debug, Clone)]
pub(crate) struct SessionId(String);

/// Who is calling: a bearer token, or a session cookie (with its CSRF token on changes).
fn caller(state: &AppState, req: &Request) -> Result<(Principal, Option<SessionId>), ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "log in first: send `Authorization: Bearer TOKEN` (POST /api/v1/login gives one) or log in through the web UI",
        )
    };
    if let Some(token) = bearer(req.headers()) {
        return lock(&state.accounts)
            .principal(token, state.now_ms())
            .map(|p| (p, None))
            .ok_or_else(refused);
    }
    let id = session_cookie(req).ok_or_else(refused)?;
    let changes = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    let csrf = changes.then(|| {
        req.headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    });
    match lock(&state.accounts).session(&id, (state.clock)(), csrf) {
        auth::SessionCheck::Open(p) => Ok((p, Some(SessionId(id)))),
        auth::SessionCheck::Closed => Err(refused()),
        auth::SessionCheck::BadCsrf => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a browser session must send its CSRF token in the X-CSRF-Token header with every change",
        )),
    }
}

/// The one authorisation check: the matched route and method against the matrix, the caller
/// against the accounts. Counts every answer for `/metrics`.
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
        Some(Access::Roles(roles)) => match caller(&state, &req) {
            Err(e) => Err(e),
            Ok((p, _)) if !roles.contains(&p.role) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("the {:?} role may not call {method} {route}", p.role),
            )),
            Ok((p, session)) => {
                // The agent's and the MCP server's view of the caller.
                req.extensions_mut().insert(aifactory_agent::Caller::new(
                    p.user.clone(),
                    p.role.as_str(),
                ));
                req.extensions_mut().insert(p);
                if let Some(s) = session {
                    req.extensions_mut().insert(s);
                }
                Ok(())
            }
        },
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

#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, description = "The server is up", body = serde_json::Value)), security(()))]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

fn login_error(e: AuthError) -> ApiError {
    match e {
        AuthError::RateLimited(s) => ApiError {
            retry_after_s: Some(s),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed logins from this address; try again in {s} s"),
            )
        },
        AuthError::BadCredentials => {
            ApiError::new(StatusCode::UNAUTHORIZED, "wrong user name or password")
        }
        AuthError::Hash => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the login could not be checked",
        ),
    }
}

/// The address a request came from; one shared "unknown" address where the server was not
/// started with connection info (in-process tests).
fn client_address(extensions: &axum::http::Extensions) -> std::net::IpAddr {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
            c.0.ip()
        })
}

/// Checks a name and password: the limiter first (by address, with a slow-down per name),
/// then argon2 on a blocking thread with the accounts unlocked, then the outcome is counted.
async fn check_password(
    state: &AppState,
    client: std::net::IpAddr,
    name: &str,
    password: String,
) -> Result<auth::Role, ApiError> {
    let attempt = lock(&state.accounts)
        .begin_login(name, client, (state.clock)())
        .map_err(login_error)?;
    if !attempt.delay.is_zero() {
        tokio::time::sleep(attempt.delay).await;
    }
    let verified = state
        .hasher
        .verify(attempt.clone(), password)
        .await
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many logins are being checked; try again in a moment",
            )
        })?;
    lock(&state.accounts)
        .finish_login(&attempt, verified, (state.clock)())
        .map_err(login_error)
}

/// Keeps a token's record in the store; a token the store did not take is withdrawn, so no
/// one holds a token that would vanish or could not be revoked.
async fn keep_token(state: &AppState, issued: &auth::Issued) -> Result<(), ApiError> {
    if let Err(e) = state.store.save_token(&issued.record).await {
        lock(&state.accounts).revoke_token_id(&issued.record.id);
        return Err(e.into());
    }
    Ok(())
}

/// Tokens that expired this long ago are forgotten by the store.
const FORGET_EXPIRED_AFTER_MS: i64 = 30 * 86_400_000;

#[utoipa::path(post, path = "/api/v1/login", tag = "auth", request_body = LoginBody, responses((status = 200, description = "An API token (12 hours), its id, role and expiry", body = serde_json::Value), (status = 401, body = ApiError), (status = 429, description = "Too many failed logins from this address", body = ApiError)), security(()))]
async fn login(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(|r| body_error(&r))?;
    let client = client_address(&extensions);
    let role = check_password(&state, client, &body.username, body.password).await?;
    let now_ms = state.now_ms();
    let issued = lock(&state.accounts).issue(
        &body.username,
        role,
        auth::TokenKind::Login,
        now_ms,
        auth::LOGIN_TOKEN_LIFETIME,
    );
    keep_token(&state, &issued).await?;
    // Logins leave a record each: old expired ones go as new ones come.
    let _ = state
        .store
        .delete_expired_tokens(aifactory_core::Timestamp(
            now_ms.saturating_sub(FORGET_EXPIRED_AFTER_MS),
        ))
        .await;
    Ok(Json(serde_json::json!({
        "token": issued.token,
        "id": issued.record.id,
        "role": role,
        "expires_at": issued.record.expires_at.to_rfc3339(),
    })))
}

/// Browser login: a session cookie (HttpOnly, SameSite=Strict) and the CSRF token for the page.
#[utoipa::path(post, path = "/api/v1/session", tag = "auth", request_body = LoginBody, responses((status = 200, description = "Sets the HttpOnly session cookie; the body has the CSRF token to send in X-CSRF-Token with every change", body = serde_json::Value), (status = 401, body = ApiError), (status = 429, body = ApiError)), security(()))]
async fn open_session(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|r| body_error(&r))?;
    let client = client_address(&extensions);
    let role = check_password(&state, client, &body.username, body.password).await?;
    let session = lock(&state.accounts).open_session(&body.username, role, (state.clock)());
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        session.id,
        auth::SESSION_LIFETIME.as_secs()
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({
            "user": body.username,
            "role": session.role,
            "csrf_token": session.csrf_token,
        })),
    )
        .into_response())
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &header::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

#[utoipa::path(post, path = "/api/v1/logout", tag = "auth", responses((status = 204, description = "The session is closed, or the bearer token revoked")), security(("bearer" = []), ("session" = [])))]
async fn logout(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    session: Option<Extension<SessionId>>,
    headers: header::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(Extension(SessionId(id))) = session {
        lock(&state.accounts).close_session(&id);
    } else if let Some(token) = bearer(&headers) {
        // The token ends for good: in the store first, so a restart does not bring it back.
        let id = lock(&state.accounts).token_id(token);
        if let Some(id) = id {
            let at = aifactory_core::Timestamp(state.now_ms());
            state.store.revoke_token(&id, &who.user, at).await?;
            lock(&state.accounts).revoke_token_id(&id);
        }
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, description = "Who is calling: user, role, and the CSRF token of a browser session", body = serde_json::Value), (status = 401, body = ApiError)), security(("bearer" = []), ("session" = [])))]
async fn me(
    State(state): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    session: Option<Extension<SessionId>>,
) -> Json<serde_json::Value> {
    let csrf = session.and_then(|Extension(SessionId(id))| lock(&state.accounts).csrf_of(&id));
    Json(serde_json::json!({ "user": p.user, "role": p.role, "csrf_token": csrf }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    user: String,
    role: auth::Role,
    /// Days until it expires (1 to 3650) [default: 90].
    expires_in_days: Option<u32>,
}

/// An API token for a program (an agent, a dashboard), issued by an admin.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "auth", request_body = NewToken, responses((status = 200, description = "A new API token (shown once), its id and expiry", body = serde_json::Value), (status = 422, body = ApiError)), security(("bearer" = []), ("session" = [])))]
async fn new_token(
    State(state): State<Arc<AppState>>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(|r| body_error(&r))?;
    let unprocessable = |field: &str, message: &str| ApiError {
        field: Some(field.into()),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    };
    if body.user.trim().is_empty() || body.user.len() > auth::MAX_USER_NAME {
        return Err(unprocessable("user", "user must be 1 to 64 characters"));
    }
    let days = body.expires_in_days.unwrap_or(auth::DEFAULT_API_TOKEN_DAYS);
    if !(1..=3650).contains(&days) {
        return Err(unprocessable(
            "expires_in_days",
            "expires_in_days must be between 1 and 3650",
        ));
    }
    let issued = lock(&state.accounts).issue(
        &body.user,
        body.role,
        auth::TokenKind::Api,
        state.now_ms(),
        Duration::from_secs(u64::from(days) * 86_400),
    );
    keep_token(&state, &issued).await?;
    Ok(Json(serde_json::json!({
        "token": issued.token,
        "id": issued.record.id,
        "role": body.role,
        "expires_at": issued.record.expires_at.to_rfc3339(),
    })))
}

/// A token as an admin sees it: never the token or its hash.
fn token_json(t: &aifactory_store::StoredToken, now_ms: i64) -> serde_json::Value {
    let state = match (t.revoked_at, t.expires_at.0 <= now_ms) {
        (Some(_), _) => "revoked",
        (None, true) => "expired",
        (None, false) => "active",
    };
    serde_json::json!({
        "id": t.id, "user": t.user, "role": t.role, "kind": t.kind, "state": state,
        "issued_at": t.issued_at.to_rfc3339(), "expires_at": t.expires_at.to_rfc3339(),
        "revoked_at": t.revoked_at.map(|r| r.to_rfc3339()), "revoked_by": t.revoked_by,
    })
}

/// Every token the store keeps (logins' and programs'), newest first.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "auth", responses((status = 200, description = "Tokens: id, user, role, kind, state (active, expired, revoked), issued, expires, revoked", body = serde_json::Value)), security(("bearer" = []), ("session" = [])))]
async fn list_tokens(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now_ms = state.now_ms();
    let tokens: Vec<serde_json::Value> = state
        .store
        .tokens()
        .await?
        .iter()
        .rev()
        .map(|t| token_json(t, now_ms))
        .collect();
    Ok(Json(serde_json::json!({ "tokens": tokens })))
}

/// Revokes a token by its id: it stops working at once and after a restart.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "auth", params(("id" = String, Path, description = "The token's id, e.g. tok-…")), responses((status = 200, description = "Revoked", body = serde_json::Value), (status = 404, body = ApiError), (status = 409, description = "Already revoked", body = ApiError)), security(("bearer" = []), ("session" = [])))]
async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let at = aifactory_core::Timestamp(state.now_ms());
    let revoked = state.store.revoke_token(&id, &who.user, at).await?;
    lock(&state.accounts).revoke_token_id(&id);
    let now = state.store.tokens().await?;
    let Some(token) = now.iter().find(|t| t.id == id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no token `{id}`"),
        ));
    };
    if !revoked {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("token {id} is already revoked"),
        ));
    }
    Ok(Json(
        serde_json::json!({ "token": token_json(token, at.0) }),
    ))
}

#[utoipa::path(get, path = "/api/v1/kpis", tag = "plant", responses((status = 200, description = "KPIs of the live run, or of the last run recorded", body = serde_json::Value), (status = 404, body = ApiError)), security(("bearer" = []), ("session" = [])))]
async fn kpis(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(live) = state.live.latest() {
        return Ok(Json(serde_json::json!({
            "run": "live",
            "at": live.plant.sim_time.to_rfc3339(),
            "kpis": live.plant.kpis,
        })));
    }
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// How many decisions, newest first (1 to 10000; default 100).
    limit: Option<u32>,
    /// Only this skill's decisions, e.g. `scheduling`.
    skill: Option<String>,
    /// Only this lifecycle stage's, e.g. `production`.
    stage: Option<String>,
    /// Only those executed so: `auto`, `human`, `agent` or `none`.
    executed_by: Option<String>,
}

/// How far back a filtered ledger query looks for matches.
const FILTER_WINDOW: u32 = 10_000;

#[utoipa::path(get, path = "/api/v1/decisions", tag = "ledger", params(Limit), responses((status = 200, description = "Decisions, newest first", body = serde_json::Value), (status = 400, body = ApiError)), security(("bearer" = []), ("session" = [])))]
async fn decisions(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|r| {
        let text = r.body_text();
        let field = ["skill", "stage", "executed_by"]
            .into_iter()
            .find(|f| text.contains(&format!("`{f}`")))
            .unwrap_or("limit");
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, text)
        }
    })?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError {
            field: Some("limit".into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "limit must be between 1 and 10000")
        });
    }
    let filtered = q.skill.is_some() || q.stage.is_some() || q.executed_by.is_some();
    let mut decisions = state
        .store
        .decisions(if filtered { FILTER_WINDOW } else { limit })
        .await?;
    if filtered {
        decisions.retain(|d| {
            q.skill.as_ref().is_none_or(|s| *s == d.skill)
                && q.stage.as_ref().is_none_or(|s| *s == name_of(&d.stage))
                && q.executed_by
                    .as_ref()
                    .is_none_or(|e| *e == name_of(&d.executed_by))
        });
        decisions.truncate(limit as usize);
    }
    Ok(Json(serde_json::json!({ "decisions": decisions })))
}

#[utoipa::path(get, path = "/api/v1/assessment", tag = "ledger", responses((status = 200, description = "The tier computed from the ledger and data coverage", body = serde_json::Value), (status = 409, description = "The store's ledger does not verify; the message names the first bad row")), security(("bearer" = []), ("session" = [])))]
async fn assessment(
    State(state): State<Arc<AppState>>,
) -> Result<Json<aifactory_assess::Assessment>, ApiError> {
    // A ledger edited behind the store's back earns no tier: 409 names the first bad row.
    let (ledger, coverage) = evidence::read(&state.store).await.map_err(|e| {
        if e.is_tampering() {
            ApiError::new(StatusCode::CONFLICT, e.explain())
        } else {
            match e {
                evidence::EvidenceError::Store(e) => ApiError::from(e),
                other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.explain()),
            }
        }
    })?;
    Ok(Json(aifactory_assess::assess(ledger.entries(), &coverage)))
}

#[utoipa::path(get, path = "/api/v1/telemetry/latest", tag = "telemetry", responses((status = 200, description = "The latest value of every series", body = serde_json::Value)), security(("bearer" = []), ("session" = [])))]
async fn latest(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    // One store query per second at most, however many dashboards poll: the answer is kept
    // as encoded JSON and shared until it is older than `LATEST_FRESH`.
    let mut cache = state.latest_cache.lock().await;
    let now = (state.clock)();
    let fresh = cache
        .as_ref()
        .filter(|(at, _)| now.saturating_sub(*at) < LATEST_FRESH);
    let body = match fresh {
        Some((_, body)) => body.clone(),
        None => {
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
            let body = axum::body::Bytes::from(
                serde_json::to_vec(&serde_json::json!({ "latest": rows })).map_err(|_| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed")
                })?,
            );
            *cache = Some((now, body.clone()));
            body
        }
    };
    drop(cache);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Prometheus text exposition of the requests answered.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")), security(("bearer" = []), ("session" = [])))]
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
