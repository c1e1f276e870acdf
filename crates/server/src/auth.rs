//! Who may call what: roles, users with argon2 password hashes, API tokens (only their SHA-256
//! is kept), a limiter on failed logins, and the one authorisation matrix every route passes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// A role, from least to most trusted for people; `Agent` is a program acting through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Engineer,
    Admin,
    Agent,
}

impl Role {
    /// The name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    /// The role of a name as [`Role::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Operator,
        Role::Engineer,
        Role::Admin,
        Role::Agent,
    ];
}

/// Who may reach a route. Routes not listed here are refused to every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (health, login).
    Public,
    /// These roles only.
    Roles(&'static [Role]),
}

const EVERY_ROLE: &[Role] = &Role::ALL;
const STAFF: &[Role] = &[Role::Operator, Role::Engineer, Role::Admin];

/// Operator, engineer, admin: people who may change the plan.
const PLANNERS: &[Role] = STAFF;

/// The authorisation matrix: (method, route pattern as the router names it, who).
/// The web UI's files are public (the login page must load); they carry no plant data.
pub const MATRIX: &[(&str, &str, Access)] = &[
    ("GET", "/health", Access::Public),
    ("GET", "/", Access::Public),
    ("GET", "/ui/{*path}", Access::Public),
    ("POST", "/api/v1/login", Access::Public),
    ("POST", "/api/v1/session", Access::Public),
    ("POST", "/api/v1/logout", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/openapi.json", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/me", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/plant", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/machines/{id}", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/orders", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/schedule", Access::Roles(EVERY_ROLE)),
    (
        "POST",
        "/api/v1/schedule/what-if",
        Access::Roles(&[Role::Operator, Role::Engineer, Role::Admin, Role::Agent]),
    ),
    ("GET", "/api/v1/proposals", Access::Roles(EVERY_ROLE)),
    (
        "POST",
        "/api/v1/proposals/{id}/approve",
        Access::Roles(PLANNERS),
    ),
    (
        "POST",
        "/api/v1/proposals/{id}/reject",
        Access::Roles(PLANNERS),
    ),
    ("GET", "/api/v1/quality/spc", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/forecast", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/events", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/kpis", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/decisions", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/assessment", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/telemetry", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/telemetry/latest", Access::Roles(EVERY_ROLE)),
    ("GET", "/metrics", Access::Roles(STAFF)),
    ("POST", "/api/v1/tokens", Access::Roles(&[Role::Admin])),
    ("GET", "/api/v1/tokens", Access::Roles(&[Role::Admin])),
    (
        "DELETE",
        "/api/v1/tokens/{id}",
        Access::Roles(&[Role::Admin]),
    ),
    // The agent: every role may ask and call tools (the approval policy decides what runs);
    // only people who may change the plan decide on held actions.
    ("POST", "/api/v1/agent/ask", Access::Roles(EVERY_ROLE)),
    ("GET", "/api/v1/agent/tools", Access::Roles(EVERY_ROLE)),
    (
        "POST",
        "/api/v1/agent/tools/{name}",
        Access::Roles(EVERY_ROLE),
    ),
    ("GET", "/api/v1/agent/actions", Access::Roles(EVERY_ROLE)),
    (
        "POST",
        "/api/v1/agent/actions/{id}/approve",
        Access::Roles(PLANNERS),
    ),
    (
        "POST",
        "/api/v1/agent/actions/{id}/reject",
        Access::Roles(PLANNERS),
    ),
    ("GET", "/api/v1/agent/audit", Access::Roles(STAFF)),
    ("GET", "/api/v1/agent/usage", Access::Roles(STAFF)),
    ("POST", "/mcp", Access::Roles(EVERY_ROLE)),
    ("GET", "/mcp", Access::Roles(EVERY_ROLE)),
    ("DELETE", "/mcp", Access::Roles(EVERY_ROLE)),
];

/// The route each of the agent's tools stands in for: a tool is open to exactly the roles the
/// matrix opens its route to, whoever calls it (API, agent tool route, MCP, model, planner).
/// Acting tools stand for the agent's tool route, where the approval policy decides the rest.
pub const TOOL_ROUTES: &[(&str, &str, &str)] = &[
    ("plant_status", "GET", "/api/v1/plant"),
    ("query_kpis", "GET", "/api/v1/kpis"),
    ("query_telemetry", "GET", "/api/v1/telemetry"),
    ("list_orders", "GET", "/api/v1/orders"),
    ("show_schedule", "GET", "/api/v1/schedule"),
    ("explain_anomaly", "GET", "/api/v1/machines/{id}"),
    ("schedule_what_if", "POST", "/api/v1/schedule/what-if"),
    ("quote_delivery", "GET", "/api/v1/schedule"),
    ("search_manuals", "POST", "/api/v1/agent/ask"),
    ("draft_shift_report", "GET", "/api/v1/kpis"),
    ("create_work_order", "POST", "/api/v1/agent/tools/{name}"),
    ("change_set_point", "POST", "/api/v1/agent/tools/{name}"),
];

/// Whether `role` may use `tool`, by the rule of the route it stands in for; `Err` says why not.
pub fn tool_access(tool: &str, role: &str) -> Result<(), String> {
    let (method, route) = TOOL_ROUTES
        .iter()
        .find(|(t, _, _)| *t == tool)
        .map(|(_, m, r)| (*m, *r))
        .ok_or_else(|| format!("`{tool}` is open to no one on this server"))?;
    let allowed = match access(method, route) {
        Some(Access::Public) => true,
        Some(Access::Roles(roles)) => Role::parse(role).is_some_and(|r| roles.contains(&r)),
        None => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "the {role} role may not use `{tool}`: it does what {method} {route} does, which is not open to {role}"
        ))
    }
}

/// Who may call `method` on `route` (the router's pattern); `None`: the route is unknown.
pub fn access(method: &str, route: &str) -> Option<Access> {
    MATRIX
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map(|(_, _, a)| *a)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("too many failed logins from this address; try again in {0} s")]
    RateLimited(u64),
    #[error("hashing a password failed")]
    Hash,
}

#[derive(Debug, Clone)]
struct User {
    password_hash: String,
    role: Role,
}

/// What a valid token or session stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

/// Failed logins allowed per client address in `LOGIN_WINDOW` before that address is held off
/// for the rest of the window. Other addresses are not: a stranger cannot lock the admin out.
pub const LOGIN_FAILURES: usize = 5;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Past `LOGIN_FAILURES` failures on one name (from any address) within the window, each
/// further attempt on it waits this long per extra failure, up to `MAX_NAME_DELAY`: guessing
/// from many addresses slows down, the person still gets in.
const NAME_DELAY_STEP: Duration = Duration::from_millis(500);
const MAX_NAME_DELAY: Duration = Duration::from_secs(4);
/// The limiter keeps at most this many addresses and this many names; the stalest go first.
pub const LIMITER_CAPACITY: usize = 10_000;
/// Longest user name there is (tokens and users are refused longer ones), so a longer name
/// is wrong without being looked up or remembered.
pub const MAX_USER_NAME: usize = 64;

/// How long a token from `POST /api/v1/login` lasts.
pub const LOGIN_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long an admin-issued API token lasts unless the admin says otherwise.
pub const DEFAULT_API_TOKEN_DAYS: u32 = 90;

/// Recent failures per key, bounded in keys and in failures per key.
#[derive(Debug)]
struct FailureTable<K> {
    recent: HashMap<K, Vec<Duration>>,
}

impl<K> Default for FailureTable<K> {
    fn default() -> Self {
        FailureTable {
            recent: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> FailureTable<K> {
    /// Failures of `key` still inside the window (and forgets older ones).
    fn count(&mut self, key: &K, now: Duration) -> (usize, Option<Duration>) {
        let Some(times) = self.recent.get_mut(key) else {
            return (0, None);
        };
        times.retain(|t| now.saturating_sub(*t) < LOGIN_WINDOW);
        let oldest = times.first().copied();
        let n = times.len();
        if n == 0 {
            self.recent.remove(key);
        }
        (n, oldest)
    }

    fn record(&mut self, key: &K, now: Duration) {
        if !self.recent.contains_key(key) && self.recent.len() >= LIMITER_CAPACITY {
            // Forget whatever has left the window; if the table is still full, the entry whose
            // last failure is oldest goes.
            self.recent.retain(|_, times| {
                times
                    .last()
                    .is_some_and(|t| now.saturating_sub(*t) < LOGIN_WINDOW)
            });
            if self.recent.len() >= LIMITER_CAPACITY {
                let stalest = self
                    .recent
                    .iter()
                    .min_by_key(|(_, times)| times.last().copied())
                    .map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    self.recent.remove(&k);
                }
            }
        }
        let times = self.recent.entry(key.clone()).or_default();
        times.push(now);
        // More than this many in a window change nothing: keep the newest.
        if times.len() > 4 * LOGIN_FAILURES {
            times.remove(0);
        }
    }

    fn clear(&mut self, key: &K) {
        self.recent.remove(key);
    }

    fn len(&self) -> usize {
        self.recent.len()
    }
}

/// What the limiter counts a client by: its IPv4 address, or its IPv6 /64 (one host is
/// usually given a whole /64, so counting single IPv6 addresses would count nothing).
fn client_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !u128::from(u64::MAX),
        )),
    }
}

/// A login under way: the limiter let it through; the password is checked next, off the async
/// workers and outside the accounts lock ([`LoginAttempt::verify`]), then
/// [`Accounts::finish_login`] counts the outcome.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    name: String,
    client: IpAddr,
    /// The user's hash, or a dummy one of the same cost for an unknown name, so both take the
    /// same time.
    hash: String,
    role: Option<Role>,
    /// Wait this long first (the per-name slow-down).
    pub delay: Duration,
}

impl LoginAttempt {
    /// Checks the password (argon2: tens of milliseconds; call it on a blocking thread).
    pub fn verify(&self, password: &str) -> bool {
        let ok = PasswordHash::new(&self.hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        ok && self.role.is_some()
    }
}

/// A token kept in memory: its public id, who it stands for, when it ends.
#[derive(Debug, Clone)]
struct TokenEntry {
    id: String,
    principal: Principal,
    expires_ms: i64,
}

/// The kind of a token: from a login (short) or issued by an admin for a program (long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Login,
    Api,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Login => "login",
            TokenKind::Api => "api",
        }
    }
}

/// A token just issued: the secret (shown once) and the record to keep in the store.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub record: aifactory_store::StoredToken,
}

/// Users, tokens, sessions and the failed-login limiter. Time comes from the caller (`now`:
/// time since any fixed instant; `now_ms`: milliseconds since the epoch for token expiry), so
/// tests drive the clock.
#[derive(Debug)]
pub struct Accounts {
    users: HashMap<String, User>,
    /// SHA-256 of a token → the token.
    tokens: HashMap<String, TokenEntry>,
    failures_by_client: FailureTable<IpAddr>,
    failures_by_name: FailureTable<String>,
    /// SHA-256 of a session id → the session.
    sessions: HashMap<String, Session>,
    /// What an unknown name's password is checked against.
    dummy_hash: String,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts::new()
    }
}

/// How long a browser session lasts after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone)]
struct Session {
    principal: Principal,
    /// Kept in clear: the page gets it back from `/api/v1/me` after a reload, and it is worth
    /// nothing without the session cookie.
    csrf_token: String,
    expires: Duration,
}

/// A session just opened: its id (for the cookie) and CSRF token (for the page).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub csrf_token: String,
    pub role: Role,
}

/// What a session cookie is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCheck {
    Open(Principal),
    /// Unknown or expired.
    Closed,
    /// Open, but the change came without its CSRF token.
    BadCsrf,
}

/// What is kept of a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random secret, 32 bytes as hex.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|_| AuthError::Hash)?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| AuthError::Hash)?
        .to_string())
}

/// One dummy hash per process, made with the same parameters as real ones.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password(&random_secret()).unwrap_or_default())
        .clone()
}

impl Accounts {
    pub fn new() -> Self {
        Accounts {
            users: HashMap::new(),
            tokens: HashMap::new(),
            failures_by_client: FailureTable::default(),
            failures_by_name: FailureTable::default(),
            sessions: HashMap::new(),
            dummy_hash: dummy_hash(),
        }
    }

    /// Adds (or replaces) a user; the password is kept only as an argon2 hash.
    pub fn add_user(&mut self, name: &str, password: &str, role: Role) -> Result<(), AuthError> {
        let hash = hash_password(password)?;
        self.users.insert(
            name.to_owned(),
            User {
                password_hash: hash,
                role,
            },
        );
        Ok(())
    }

    /// Starts a login from `client`: refused while that address is held off; otherwise the
    /// hash to check the password against and how long to wait first.
    pub fn begin_login(
        &mut self,
        name: &str,
        client: IpAddr,
        now: Duration,
    ) -> Result<LoginAttempt, AuthError> {
        let client = client_key(client);
        let (from_client, oldest) = self.failures_by_client.count(&client, now);
        if from_client >= LOGIN_FAILURES {
            let oldest = oldest.unwrap_or(now);
            let wait = LOGIN_WINDOW.saturating_sub(now.saturating_sub(oldest));
            return Err(AuthError::RateLimited(wait.as_secs().max(1)));
        }
        let plausible = !name.is_empty() && name.len() <= MAX_USER_NAME;
        let (on_name, _) = if plausible {
            self.failures_by_name.count(&name.to_owned(), now)
        } else {
            (0, None)
        };
        let extra = u32::try_from(on_name.saturating_sub(LOGIN_FAILURES - 1)).unwrap_or(u32::MAX);
        let delay = (NAME_DELAY_STEP.saturating_mul(extra)).min(MAX_NAME_DELAY);
        let user = plausible.then(|| self.users.get(name)).flatten();
        Ok(LoginAttempt {
            // An implausible name is not kept anywhere: only its address is counted.
            name: if plausible {
                name.to_owned()
            } else {
                String::new()
            },
            client,
            hash: user.map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone()),
            role: user.map(|u| u.role),
            delay,
        })
    }

    /// Counts the outcome of a checked attempt: a failure against its address and its name;
    /// a success clears the address's failures.
    pub fn finish_login(
        &mut self,
        attempt: &LoginAttempt,
        verified: bool,
        now: Duration,
    ) -> Result<Role, AuthError> {
        match attempt.role.filter(|_| verified) {
            Some(role) => {
                self.failures_by_client.clear(&attempt.client);
                Ok(role)
            }
            None => {
                self.failures_by_client.record(&attempt.client, now);
                if !attempt.name.is_empty() {
                    self.failures_by_name.record(&attempt.name, now);
                }
                Err(AuthError::BadCredentials)
            }
        }
    }

    /// How many addresses and names the limiter remembers (bounded by [`LIMITER_CAPACITY`]).
    pub fn limiter_entries(&self) -> (usize, usize) {
        (self.failures_by_client.len(), self.failures_by_name.len())
    }

    /// Login in one call, on this thread (tests and tools; the server splits it so argon2 runs
    /// outside the lock).
    pub fn login(
        &mut self,
        name: &str,
        password: &str,
        client: IpAddr,
        now: Duration,
        now_ms: i64,
    ) -> Result<Issued, AuthError> {
        let attempt = self.begin_login(name, client, now)?;
        let ok = attempt.verify(password);
        let role = self.finish_login(&attempt, ok, now)?;
        Ok(self.issue(name, role, TokenKind::Login, now_ms, LOGIN_TOKEN_LIFETIME))
    }

    /// Opens a browser session for a user whose password was checked: the session id goes in
    /// an HttpOnly cookie, the CSRF token to the page, which sends it back with every change.
    pub fn open_session(&mut self, name: &str, role: Role, now: Duration) -> NewSession {
        let id = random_secret();
        let csrf_token = random_secret();
        // Expired sessions are dropped as new ones open, so the table stays small.
        self.sessions.retain(|_, s| s.expires > now);
        self.sessions.insert(
            token_hash(&id),
            Session {
                principal: Principal {
                    user: name.to_owned(),
                    role,
                },
                csrf_token: csrf_token.clone(),
                expires: now + SESSION_LIFETIME,
            },
        );
        NewSession {
            id,
            csrf_token,
            role,
        }
    }

    /// Who a session cookie stands for, if it is open; checks `csrf` when given (changes).
    pub fn session(&self, id: &str, now: Duration, csrf: Option<&str>) -> SessionCheck {
        match self.sessions.get(&token_hash(id)) {
            Some(s) if s.expires > now => match csrf {
                Some(c) if !bool::from(c.as_bytes().ct_eq(s.csrf_token.as_bytes())) => {
                    SessionCheck::BadCsrf
                }
                _ => SessionCheck::Open(s.principal.clone()),
            },
            _ => SessionCheck::Closed,
        }
    }

    /// The CSRF token of an open session.
    pub fn csrf_of(&self, id: &str) -> Option<String> {
        self.sessions
            .get(&token_hash(id))
            .map(|s| s.csrf_token.clone())
    }

    pub fn close_session(&mut self, id: &str) {
        self.sessions.remove(&token_hash(id));
    }

    /// A new token for `user` with `role`, valid from `now_ms` for `lifetime`.
    pub fn issue(
        &mut self,
        user: &str,
        role: Role,
        kind: TokenKind,
        now_ms: i64,
        lifetime: Duration,
    ) -> Issued {
        let token = random_secret();
        let sha256 = token_hash(&token);
        let expires_ms =
            now_ms.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX));
        // The public id is random too: it tells nothing about the token.
        let id = format!("tok-{}", &random_secret()[..16]);
        self.tokens.insert(
            sha256.clone(),
            TokenEntry {
                id: id.clone(),
                principal: Principal {
                    user: user.to_owned(),
                    role,
                },
                expires_ms,
            },
        );
        Issued {
            token,
            record: aifactory_store::StoredToken {
                sha256,
                id,
                user: user.to_owned(),
                role: role.as_str().to_owned(),
                kind: kind.as_str().to_owned(),
                issued_at: aifactory_core::Timestamp(now_ms),
                expires_at: aifactory_core::Timestamp(expires_ms),
                revoked_at: None,
                revoked_by: None,
            },
        }
    }

    /// A user's stored password hash and role, for saving to the store.
    pub fn stored_user(&self, name: &str) -> Option<(String, Role)> {
        self.users
            .get(name)
            .map(|u| (u.password_hash.clone(), u.role))
    }

    /// Restores a user from the store: the hash as saved.
    pub fn restore_user(&mut self, name: &str, password_hash: &str, role: Role) {
        self.users.insert(
            name.to_owned(),
            User {
                password_hash: password_hash.to_owned(),
                role,
            },
        );
    }

    /// Restores a token from the store; a revoked one is left out. `Err` names an unknown role.
    pub fn restore_token(&mut self, record: &aifactory_store::StoredToken) -> Result<(), String> {
        let role = Role::parse(&record.role).ok_or_else(|| record.role.clone())?;
        if record.revoked_at.is_none() {
            self.tokens.insert(
                record.sha256.clone(),
                TokenEntry {
                    id: record.id.clone(),
                    principal: Principal {
                        user: record.user.clone(),
                        role,
                    },
                    expires_ms: record.expires_at.0,
                },
            );
        }
        Ok(())
    }

    /// Withdraws a token by its public id; whether it was held.
    pub fn revoke_token_id(&mut self, id: &str) -> bool {
        let before = self.tokens.len();
        self.tokens.retain(|_, t| t.id != id);
        before != self.tokens.len()
    }

    /// The public id of a token, if it is held.
    pub fn token_id(&self, token: &str) -> Option<String> {
        self.tokens.get(&token_hash(token)).map(|t| t.id.clone())
    }

    /// Who a token stands for, while it has not expired or been revoked.
    pub fn principal(&self, token: &str, now_ms: i64) -> Option<Principal> {
        self.tokens
            .get(&token_hash(token))
            .filter(|t| t.expires_ms > now_ms)
            .map(|t| t.principal.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_in_the_matrix_is_unique_and_known() {
        for (i, (m, r, _)) in MATRIX.iter().enumerate() {
            assert!(
                !MATRIX[i + 1..].iter().any(|(m2, r2, _)| m2 == m && r2 == r),
                "{m} {r} twice"
            );
        }
        assert_eq!(access("GET", "/health"), Some(Access::Public));
        assert_eq!(access("DELETE", "/health"), None);
    }

    #[test]
    fn every_tool_follows_the_rule_of_its_route() {
        for spec in aifactory_agent::tools::catalogue() {
            let (_, method, route) = TOOL_ROUTES
                .iter()
                .find(|(t, _, _)| *t == spec.name)
                .unwrap_or_else(|| panic!("{} has no route in TOOL_ROUTES", spec.name));
            assert!(
                access(method, route).is_some(),
                "{method} {route} is not in the matrix"
            );
        }
        assert!(tool_access("schedule_what_if", "operator").is_ok());
        assert!(tool_access("schedule_what_if", "agent").is_ok());
        let refused = tool_access("schedule_what_if", "viewer").unwrap_err();
        assert!(
            refused.contains("POST /api/v1/schedule/what-if"),
            "{refused}"
        );
        assert!(tool_access("plant_status", "viewer").is_ok());
        assert!(tool_access("no_such_tool", "admin").is_err());
        assert!(tool_access("plant_status", "nobody").is_err());
    }

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn login_issues_tokens_and_limits_failures_per_address() {
        let mut accounts = Accounts::new();
        accounts
            .add_user("ana", "s3cret-pass", Role::Engineer)
            .unwrap();
        let t0 = Duration::from_secs(100);
        let ms = 1_000_000;
        let issued = accounts.login("ana", "s3cret-pass", HERE, t0, ms).unwrap();
        assert_eq!(
            accounts.principal(&issued.token, ms).map(|p| p.role),
            Some(Role::Engineer)
        );
        assert_eq!(issued.record.kind, "login");
        assert_eq!(accounts.principal("not-a-token", ms), None);
        // A login token ends after its lifetime.
        let end = ms + i64::try_from(LOGIN_TOKEN_LIFETIME.as_millis()).unwrap();
        assert!(accounts.principal(&issued.token, end - 1).is_some());
        assert_eq!(accounts.principal(&issued.token, end), None);
        for _ in 0..LOGIN_FAILURES {
            assert_eq!(
                accounts.login("ana", "wrong", HERE, t0, ms).err(),
                Some(AuthError::BadCredentials)
            );
        }
        // This address is held off for the rest of the window, even with the right password…
        assert_eq!(
            accounts
                .login("ana", "s3cret-pass", HERE, t0 + Duration::from_secs(10), ms)
                .err(),
            Some(AuthError::RateLimited(50))
        );
        // …another address is not, though it waits a little for the name's failures.
        let attempt = accounts
            .begin_login("ana", THERE, t0 + Duration::from_secs(10))
            .unwrap();
        assert_eq!(attempt.delay, NAME_DELAY_STEP);
        assert!(accounts.login("ana", "s3cret-pass", THERE, t0, ms).is_ok());
        assert!(
            accounts
                .login("ana", "s3cret-pass", HERE, t0 + LOGIN_WINDOW, ms)
                .is_ok()
        );
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let mut accounts = Accounts::new();
        let t0 = Duration::from_secs(1);
        let host =
            |last: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, last));
        for i in 0..LOGIN_FAILURES {
            let a = accounts
                .begin_login("x", host(u16::try_from(i).unwrap()), t0)
                .unwrap();
            let _ = accounts.finish_login(&a, false, t0);
        }
        assert!(matches!(
            accounts.begin_login("x", host(999), t0),
            Err(AuthError::RateLimited(_))
        ));
        let elsewhere = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 8, 0, 0, 0, 1));
        assert!(accounts.begin_login("x", elsewhere, t0).is_ok());
    }

    #[test]
    fn the_limiter_stays_bounded_whatever_names_it_is_sent() {
        let mut accounts = Accounts::new();
        let t0 = Duration::from_secs(1);
        let long = "x".repeat(60_000);
        for i in 0..(LIMITER_CAPACITY + 500) {
            let client = IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(i).unwrap()));
            // Checked by hand rather than through `login`, which would spend argon2 on each.
            let a = accounts
                .begin_login(&format!("{long}{i}"), client, t0)
                .unwrap();
            let _ = accounts.finish_login(&a, false, t0);
            let a = accounts
                .begin_login(&format!("user{i}"), client, t0)
                .unwrap();
            let _ = accounts.finish_login(&a, false, t0);
        }
        let (clients, names) = accounts.limiter_entries();
        assert!(clients <= LIMITER_CAPACITY, "{clients} addresses");
        assert!(names <= LIMITER_CAPACITY, "{names} names");
        // Over-long names are never kept.
        assert!(
            accounts
                .failures_by_name
                .recent
                .keys()
                .all(|n| n.len() <= MAX_USER_NAME)
        );
    }
}
