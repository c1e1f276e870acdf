//! Who may call what: roles, users with argon2 password hashes, API tokens (only their SHA-256
//! is kept), a limiter on failed logins, and the one authorisation matrix every route passes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
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
    #[error("too many failed logins for this user; try again in {0} s")]
    RateLimited(u64),
    #[error("hashing a password failed")]
    Hash,
}

#[derive(Debug, Clone)]
struct User {
    password_hash: String,
    role: Role,
}

/// What a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

/// Failed logins allowed per user in `LOGIN_WINDOW` before the user is locked out for the rest
/// of the window.
const LOGIN_FAILURES: usize = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// Users, tokens and failed logins. Time comes from the caller (`now`: time since any fixed
/// instant), so tests drive the clock.
#[derive(Debug, Default)]
pub struct Accounts {
    users: HashMap<String, User>,
    /// SHA-256 of a token → who it is.
    tokens: HashMap<String, Principal>,
    failures: HashMap<String, Vec<Duration>>,
    /// SHA-256 of a session id → the session.
    sessions: HashMap<String, Session>,
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

impl Accounts {
    pub fn new() -> Self {
        Accounts::default()
    }

    /// Adds (or replaces) a user; the password is kept only as an argon2 hash.
    pub fn add_user(&mut self, name: &str, password: &str, role: Role) -> Result<(), AuthError> {
        let salt =
            SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|_| AuthError::Hash)?;
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|_| AuthError::Hash)?
            .to_string();
        self.users.insert(
            name.to_owned(),
            User {
                password_hash: hash,
                role,
            },
        );
        Ok(())
    }

    /// Checks a login and issues a token. Failed attempts count against the user name, known or
    /// not, so the limiter does not tell which names exist.
    pub fn login(
        &mut self,
        name: &str,
        password: &str,
        now: Duration,
    ) -> Result<(String, Role), AuthError> {
        let role = self.check(name, password, now)?;
        let token = self.issue(name, role);
        Ok((token, role))
    }

    /// Checks a login and opens a browser session: the session id goes in an HttpOnly cookie,
    /// the CSRF token to the page, which sends it back with every change it asks for.
    pub fn open_session(
        &mut self,
        name: &str,
        password: &str,
        now: Duration,
    ) -> Result<NewSession, AuthError> {
        let role = self.check(name, password, now)?;
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
        Ok(NewSession {
            id,
            csrf_token,
            role,
        })
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

    /// Verifies a password against the failed-login limiter; the user's role when it holds.
    fn check(&mut self, name: &str, password: &str, now: Duration) -> Result<Role, AuthError> {
        let recent = self.failures.entry(name.to_owned()).or_default();
        recent.retain(|t| now.saturating_sub(*t) < LOGIN_WINDOW);
        if recent.len() >= LOGIN_FAILURES {
            let oldest = recent.first().copied().unwrap_or(now);
            let wait = LOGIN_WINDOW.saturating_sub(now.saturating_sub(oldest));
            return Err(AuthError::RateLimited(wait.as_secs().max(1)));
        }
        let ok = self.users.get(name).filter(|u| {
            PasswordHash::new(&u.password_hash).is_ok_and(|h| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        });
        let Some(user) = ok else {
            recent.push(now);
            return Err(AuthError::BadCredentials);
        };
        let role = user.role;
        recent.clear();
        Ok(role)
    }

    /// A new token for `user` with `role`.
    pub fn issue(&mut self, user: &str, role: Role) -> String {
        let token = random_secret();
        self.tokens.insert(
            token_hash(&token),
            Principal {
                user: user.to_owned(),
                role,
            },
        );
        token
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

    /// Restores a token from the store by its hash.
    pub fn restore_token(&mut self, sha256: &str, principal: Principal) {
        self.tokens.insert(sha256.to_owned(), principal);
    }

    /// Withdraws a token by its hash.
    pub fn revoke_token(&mut self, sha256: &str) {
        self.tokens.remove(sha256);
    }

    pub fn principal(&self, token: &str) -> Option<Principal> {
        self.tokens.get(&token_hash(token)).cloned()
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
    fn login_issues_tokens_and_limits_failures() {
        let mut accounts = Accounts::new();
        accounts
            .add_user("ana", "s3cret-pass", Role::Engineer)
            .unwrap();
        let t0 = Duration::from_secs(100);
        let (token, role) = accounts.login("ana", "s3cret-pass", t0).unwrap();
        assert_eq!(role, Role::Engineer);
        assert_eq!(
            accounts.principal(&token).map(|p| p.role),
            Some(Role::Engineer)
        );
        assert_eq!(accounts.principal("not-a-token"), None);
        for _ in 0..LOGIN_FAILURES {
            assert_eq!(
                accounts.login("ana", "wrong", t0),
                Err(AuthError::BadCredentials)
            );
        }
        // Locked for the rest of the window, even with the right password.
        assert!(matches!(
            accounts.login("ana", "s3cret-pass", t0 + Duration::from_secs(10)),
            Err(AuthError::RateLimited(50))
        ));
        // Unknown users count the same way.
        assert_eq!(
            accounts.login("nobody", "x", t0),
            Err(AuthError::BadCredentials)
        );
        assert!(
            accounts
                .login("ana", "s3cret-pass", t0 + LOGIN_WINDOW)
                .is_ok()
        );
    }
}
