//! The portal's HTTP API: bearer tokens, one authorisation matrix every route passes, JSON
//! in and out, errors as `{"error": …}` with a status that says what kind of failure it is.
//! The handlers are thin: the [`Portal`] methods check the caller again and run every query
//! under the database's row-level security.

use crate::error::PortalError;
use crate::market::NewNeed;
use crate::model::{Caller, Role};
use crate::portal::Portal;
use crate::registry::{NewPlant, NewProvider, NewUser, Offer, PlantFilter, Target};
use crate::vouchers::{NewBudget, NewRedemption, NewVoucher, VoucherFilter};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, Extension, MatchedPath, Path, Query, Request, State,
};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// Who may reach a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Roles(&'static [Role]),
}

const EVERYONE: &[Role] = &Role::PEOPLE;
const OFFICER: &[Role] = &[Role::Officer];
const STAFF: &[Role] = &[Role::Officer, Role::Assessor];
const STAFF_AND_PLANT: &[Role] = &[Role::Officer, Role::Assessor, Role::Plant];
const OFFICER_AND_PLANT: &[Role] = &[Role::Officer, Role::Plant];
const OFFICER_AND_PROVIDER: &[Role] = &[Role::Officer, Role::Provider];
const PROVIDER: &[Role] = &[Role::Provider];

/// The authorisation matrix: (method, route as the router names it, who). A route missing
/// here is refused to everyone; a test checks that every routed path is listed.
pub const MATRIX: &[(&str, &str, Access)] = &[
    ("GET", "/health", Access::Public),
    // The web UI's files carry no programme data; the login page must load.
    ("GET", "/", Access::Public),
    ("GET", "/ui/{*path}", Access::Public),
    ("GET", "/api/v1/scenarios", Access::Roles(EVERYONE)),
    ("POST", "/api/v1/session", Access::Public),
    ("POST", "/api/v1/logout", Access::Roles(EVERYONE)),
    (
        "PUT",
        "/api/v1/users/{id}/password",
        Access::Roles(EVERYONE),
    ),
    ("GET", "/api/v1/me", Access::Roles(EVERYONE)),
    ("GET", "/api/v1/plants", Access::Roles(STAFF_AND_PLANT)),
    ("POST", "/api/v1/plants", Access::Roles(OFFICER)),
    ("GET", "/api/v1/plants/{id}", Access::Roles(STAFF_AND_PLANT)),
    (
        "GET",
        "/api/v1/plants/{id}/evidence",
        Access::Roles(STAFF_AND_PLANT),
    ),
    (
        "POST",
        "/api/v1/plants/{id}/evidence",
        Access::Roles(OFFICER_AND_PLANT),
    ),
    (
        "POST",
        "/api/v1/plants/{id}/benchmark",
        Access::Roles(STAFF),
    ),
    (
        "POST",
        "/api/v1/plants/{id}/onboard",
        Access::Roles(OFFICER_AND_PLANT),
    ),
    (
        "GET",
        "/api/v1/plants/{id}/onboarding",
        Access::Roles(STAFF_AND_PLANT),
    ),
    ("GET", "/api/v1/targets", Access::Roles(STAFF)),
    ("PUT", "/api/v1/targets", Access::Roles(OFFICER)),
    ("GET", "/api/v1/providers", Access::Roles(EVERYONE)),
    ("POST", "/api/v1/providers", Access::Roles(OFFICER)),
    (
        "PUT",
        "/api/v1/providers/{id}/offers",
        Access::Roles(OFFICER_AND_PROVIDER),
    ),
    ("GET", "/api/v1/users", Access::Roles(EVERYONE)),
    ("POST", "/api/v1/users", Access::Roles(OFFICER)),
    ("POST", "/api/v1/users/{id}/tokens", Access::Roles(OFFICER)),
    ("GET", "/api/v1/tokens", Access::Roles(OFFICER)),
    ("DELETE", "/api/v1/tokens/{id}", Access::Roles(OFFICER)),
    ("GET", "/api/v1/budgets", Access::Roles(STAFF)),
    ("POST", "/api/v1/budgets", Access::Roles(OFFICER)),
    ("GET", "/api/v1/vouchers", Access::Roles(EVERYONE)),
    ("POST", "/api/v1/vouchers", Access::Roles(OFFICER)),
    ("POST", "/api/v1/vouchers/expire", Access::Roles(OFFICER)),
    ("GET", "/api/v1/vouchers/{id}", Access::Roles(EVERYONE)),
    (
        "POST",
        "/api/v1/vouchers/{id}/provider",
        Access::Roles(OFFICER_AND_PLANT),
    ),
    (
        "POST",
        "/api/v1/vouchers/{id}/redeem",
        Access::Roles(PROVIDER),
    ),
    (
        "POST",
        "/api/v1/vouchers/{id}/withdraw",
        Access::Roles(OFFICER),
    ),
    ("GET", "/api/v1/ledger", Access::Roles(OFFICER)),
    ("GET", "/api/v1/audit", Access::Roles(OFFICER)),
    ("GET", "/api/v1/needs", Access::Roles(EVERYONE)),
    ("POST", "/api/v1/needs", Access::Roles(OFFICER_AND_PLANT)),
    (
        "POST",
        "/api/v1/needs/{id}/close",
        Access::Roles(OFFICER_AND_PLANT),
    ),
    (
        "GET",
        "/api/v1/needs/{id}/matches",
        Access::Roles(STAFF_AND_PLANT),
    ),
    ("GET", "/api/v1/matches", Access::Roles(PROVIDER)),
];

pub fn access(method: &str, route: &str) -> Option<Access> {
    MATRIX
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map(|(_, _, a)| *a)
}

/// An error as the API returns it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<PortalError> for ApiError {
    fn from(e: PortalError) -> Self {
        let status = match &e {
            PortalError::Invalid(_) => StatusCode::BAD_REQUEST,
            PortalError::NotFound { .. } => StatusCode::NOT_FOUND,
            PortalError::Forbidden(_) => StatusCode::FORBIDDEN,
            PortalError::Conflict(_) => StatusCode::CONFLICT,
            PortalError::Evidence(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PortalError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            PortalError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            PortalError::Connect { .. }
            | PortalError::Migrate(_)
            | PortalError::Role(_)
            | PortalError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.message, "status": self.status.as_u16()})),
        )
            .into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn ok<T: serde::Serialize>(value: T) -> ApiResult {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(v)| v).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("request body: {}", e.body_text()),
        )
    })
}

fn query<T: DeserializeOwned>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("query string: {}", e.body_text()),
        )
    })
}

/// Largest evidence bundle accepted: a busy plant's year of ledger is tens of megabytes.
const EVIDENCE_LIMIT: usize = 256 * 1024 * 1024;

/// Largest set of onboarding CSV files: a small plant's exports are well under this.
const ONBOARD_LIMIT: usize = 16 * 1024 * 1024;

/// The portal's router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`:
/// the sign-in limiter keys failures by the client's address (without it, every client shares
/// one address, so one client's failures hold everyone off).
pub fn router(portal: Portal) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .route("/", get(crate::ui::index))
        .route("/ui/{*path}", get(crate::ui::asset))
        .route("/api/v1/scenarios", get(scenarios))
        .route("/api/v1/session", post(sign_in))
        .route("/api/v1/logout", post(sign_out))
        .route("/api/v1/users/{id}/password", put(set_password))
        .route("/api/v1/me", get(me))
        .route("/api/v1/plants", get(list_plants).post(register_plant))
        .route("/api/v1/plants/{id}", get(plant))
        .route(
            "/api/v1/plants/{id}/evidence",
            get(evidence_history)
                .post(submit_evidence)
                .layer(DefaultBodyLimit::max(EVIDENCE_LIMIT)),
        )
        .route("/api/v1/plants/{id}/benchmark", post(designate))
        .route(
            "/api/v1/plants/{id}/onboard",
            post(onboard).layer(DefaultBodyLimit::max(ONBOARD_LIMIT)),
        )
        .route("/api/v1/plants/{id}/onboarding", get(onboarding))
        .route("/api/v1/targets", get(targets).put(set_target))
        .route("/api/v1/providers", get(providers).post(register_provider))
        .route("/api/v1/providers/{id}/offers", put(set_offers))
        .route("/api/v1/users", get(users).post(add_user))
        .route("/api/v1/users/{id}/tokens", post(issue_token))
        .route("/api/v1/tokens", get(tokens))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/budgets", get(budgets).post(create_budget))
        .route("/api/v1/vouchers", get(vouchers).post(issue_voucher))
        .route("/api/v1/vouchers/expire", post(expire_vouchers))
        .route("/api/v1/vouchers/{id}", get(voucher))
        .route("/api/v1/vouchers/{id}/provider", post(assign_provider))
        .route("/api/v1/vouchers/{id}/redeem", post(redeem))
        .route("/api/v1/vouchers/{id}/withdraw", post(withdraw))
        .route("/api/v1/ledger", get(ledger))
        .route("/api/v1/audit", get(audit_trail))
        .route("/api/v1/needs", get(needs).post(post_need))
        .route("/api/v1/needs/{id}/close", post(close_need))
        .route("/api/v1/needs/{id}/matches", get(need_matches))
        .route("/api/v1/matches", get(provider_matches))
        .route_layer(axum::middleware::from_fn_with_state(
            portal.clone(),
            authorise,
        ));
    api.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route").into_response() })
        .with_state(portal)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn authorise(
    State(portal): State<Portal>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(|| "?".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let roles = match access(&method, &route) {
        None => {
            return ApiError::new(StatusCode::FORBIDDEN, "this route is not open to anyone")
                .into_response();
        }
        Some(Access::Public) => return next.run(req).await,
        Some(Access::Roles(roles)) => roles,
    };
    let Some(token) = bearer(req.headers()) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign in: send `Authorization: Bearer <token>`",
        )
        .into_response();
    };
    let caller = match portal.authenticate(token).await {
        Ok(Some(caller)) => caller,
        Ok(None) => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown token (or it expired or was revoked)",
            )
            .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    if !roles.contains(&caller.role) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the {} role may not call {method} {route}",
                caller.role.as_str()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "service": "aifactory-portal"}))
}

/// The typical scenarios of the tier rules, which needs and offers name.
async fn scenarios() -> Json<Value> {
    Json(Value::Array(
        aifactory_assess::rules::CATALOGUE
            .iter()
            .map(|s| json!({"id": s.id, "stage": s.stage}))
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    name: String,
    password: String,
}

/// Signs in; the client's address keys the failure limiter. The server must be served with
/// `into_make_service_with_connect_info::<SocketAddr>()`; without it (in-process tests) every
/// caller shares one unknown address.
async fn sign_in(
    State(portal): State<Portal>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    json: Result<Json<SignInBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body(json)?;
    let client = client.map(|Extension(ConnectInfo(address))| address.ip());
    let session = portal.sign_in(&body.name, &body.password, client).await?;
    Ok((StatusCode::CREATED, ok(session)?))
}

/// Ends a session, or revokes the API token the request carries.
async fn sign_out(State(portal): State<Portal>, headers: HeaderMap) -> ApiResult {
    if let Some(token) = bearer(&headers) {
        portal.sign_out(token).await?;
    }
    ok(json!({"signed_out": true}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

async fn set_password(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
    json: Result<Json<PasswordBody>, JsonRejection>,
) -> ApiResult {
    portal
        .set_password(&caller, &user, &body(json)?.password)
        .await?;
    ok(json!({"user": user, "password": "set"}))
}

async fn me(Extension(caller): Extension<Caller>) -> ApiResult {
    ok(caller)
}

async fn list_plants(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<PlantFilter>, QueryRejection>,
) -> ApiResult {
    ok(portal.plants(&caller, &query(q)?).await?)
}

async fn register_plant(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    json: Result<Json<NewPlant>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let plant = portal.register_plant(&caller, &body(json)?).await?;
    Ok((StatusCode::CREATED, ok(plant)?))
}

async fn plant(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    ok(portal.plant(&caller, &id).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<i64>,
}

async fn evidence_history(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> ApiResult {
    let limit = query(q)?.limit.unwrap_or(50);
    ok(portal.evidence_history(&caller, &id, limit).await?)
}

async fn submit_evidence(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let record = portal.submit_evidence(&caller, &id, bytes.to_vec()).await?;
    Ok((StatusCode::CREATED, ok(record)?))
}

async fn designate(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    ok(portal.designate_benchmark(&caller, &id).await?)
}

async fn onboard(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    json: Result<Json<crate::onboard::OnboardRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let record = portal.onboard(&caller, &id, body(json)?).await?;
    Ok((StatusCode::CREATED, ok(record)?))
}

async fn onboarding(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    ok(portal.latest_onboarding(&caller, &id).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearQuery {
    year: Option<i32>,
}

async fn targets(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<YearQuery>, QueryRejection>,
) -> ApiResult {
    let year = match query(q)?.year {
        Some(y) => y,
        None => current_year(portal.now_ms()),
    };
    ok(portal.targets_dashboard(&caller, year).await?)
}

/// The calendar year (UTC) of an instant.
pub fn current_year(ms: i64) -> i32 {
    aifactory_core::time::civil_from_days(ms.div_euclid(86_400_000)).0
}

async fn set_target(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    json: Result<Json<Target>, JsonRejection>,
) -> ApiResult {
    let target = body(json)?;
    portal.set_target(&caller, &target).await?;
    ok(target)
}

async fn providers(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    ok(portal.providers(&caller).await?)
}

async fn register_provider(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    json: Result<Json<NewProvider>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let provider = portal.register_provider(&caller, &body(json)?).await?;
    Ok((StatusCode::CREATED, ok(provider)?))
}

async fn set_offers(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    json: Result<Json<Vec<Offer>>, JsonRejection>,
) -> ApiResult {
    ok(portal.set_offers(&caller, &id, &body(json)?).await?)
}

async fn users(State(portal): State<Portal>, Extension(caller): Extension<Caller>) -> ApiResult {
    ok(portal.users(&caller).await?)
}

async fn add_user(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    json: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = body(json)?;
    let issued = portal.add_user(&caller, &user).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"name": user.name, "role": user.role, "token": issued.token,
                    "token_id": issued.id, "expires_at_ms": issued.expires_at_ms}),
        ),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueTokenBody {
    /// 1 to 3650; a year when absent.
    expires_in_days: Option<u32>,
}

/// Issues a token for a user (officers); the body is optional.
async fn issue_token(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: IssueTokenBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        IssueTokenBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("request body: {e}")))?
    };
    let issued = portal
        .issue_token(&caller, &user, request.expires_in_days)
        .await?;
    Ok((StatusCode::CREATED, ok(issued)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensQuery {
    user: Option<String>,
}

async fn tokens(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<TokensQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    ok(portal.tokens(&caller, q.user.as_deref()).await?)
}

async fn revoke_token(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    ok(portal.revoke_token(&caller, &id).await?)
}

async fn budgets(State(portal): State<Portal>, Extension(caller): Extension<Caller>) -> ApiResult {
    ok(portal.budgets(&caller).await?)
}

async fn create_budget(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    json: Result<Json<NewBudget>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let budget = portal.create_budget(&caller, &body(json)?).await?;
    Ok((StatusCode::CREATED, ok(budget)?))
}

async fn vouchers(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<VoucherFilter>, QueryRejection>,
) -> ApiResult {
    ok(portal.vouchers(&caller, &query(q)?).await?)
}

async fn issue_voucher(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    json: Result<Json<NewVoucher>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let voucher = portal.issue_voucher(&caller, &body(json)?).await?;
    Ok((StatusCode::CREATED, ok(voucher)?))
}

async fn expire_vouchers(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    let expired = portal.expire_due(&caller).await?;
    ok(json!({"expired": expired}))
}

async fn voucher(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let voucher = portal.voucher(&caller, &id).await?;
    let redemptions = portal.redemptions(&caller, &id).await?;
    ok(json!({"voucher": voucher, "redemptions": redemptions}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    provider: String,
}

async fn assign_provider(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    json: Result<Json<AssignBody>, JsonRejection>,
) -> ApiResult {
    let assign = body(json)?;
    ok(portal
        .assign_provider(&caller, &id, &assign.provider)
        .await?)
}

async fn redeem(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    json: Result<Json<NewRedemption>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let redemption = portal.redeem(&caller, &id, &body(json)?).await?;
    Ok((StatusCode::CREATED, ok(redemption)?))
}

async fn withdraw(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    ok(portal.withdraw_voucher(&caller, &id).await?)
}

async fn ledger(State(portal): State<Portal>, Extension(caller): Extension<Caller>) -> ApiResult {
    ok(portal.trial_balance(&caller).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    plant: Option<String>,
    limit: Option<i64>,
}

async fn audit_trail(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    ok(portal
        .audit_trail(&caller, q.plant.as_deref(), q.limit.unwrap_or(100))
        .await?)
}

async fn needs(State(portal): State<Portal>, Extension(caller): Extension<Caller>) -> ApiResult {
    ok(portal.needs(&caller).await?)
}

async fn post_need(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    json: Result<Json<NewNeed>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let need = portal.post_need(&caller, &body(json)?).await?;
    Ok((StatusCode::CREATED, ok(need)?))
}

fn need_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("need id {raw:?}: a number"),
        )
    })
}

async fn close_need(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    ok(portal.close_need(&caller, need_id(&id)?).await?)
}

async fn need_matches(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    ok(portal.matches_for_need(&caller, need_id(&id)?).await?)
}

async fn provider_matches(
    State(portal): State<Portal>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    ok(portal.matches_for_provider(&caller).await?)
}
